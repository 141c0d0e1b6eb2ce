"""`replay`: the published messages of this run again, for a subscriber that joined late or dropped
some (PROTOCOL.md, "Replay"). Against the real worker: control socket only, outside the published
stream (no ack, no number of its own), bad arguments, paging, topic prefixes, ids not remembered,
messages exactly as published, the ring's bound; then what it is for: a late subscriber after a
restart, a slow subscriber past its high-water mark, and a gap under load (100,000 commands), each
of which ends up holding every message (or every error record) of the run.

Needs ECP_WORKER_BIN (the binary) and python3-zmq; see README.md.
"""

import datetime
import json
import os
import time

import pytest

import requires  # noqa: E402

zmq = requires.worker_and_zmq()

from ecp_schemas import strip_envelope  # noqa: E402
from harness import DEFAULT_TIMEOUT, encode, machine_uuid, new_id  # noqa: E402

MAX_PAGE = 5000


# --- clients ------------------------------------------------------------------------------------

def replay_command(cid=None, **args):
    command = {"v": 1, "id": cid or new_id("rp"), "op": "replay"}
    if args:
        command["args"] = args
    return command


def replay(w, cid=None, **args):
    """One replay over a fresh REQ; the reply, checked against its schema (every replayed message
    against the schema for its type)."""
    command = replay_command(cid, **args)
    w.schemas.check("command.json", command)
    return w.request(command)


def replay_ok(w, cid=None, **args):
    """A replay that must succeed: its `data`, after the checks every page must pass."""
    reply = replay(w, cid, **args)
    assert reply["type"] == "result", f"replay refused: {reply}"
    assert reply["op"] == "replay" and reply["ok"] is True, reply
    assert reply.get("duplicate", False) is False, f"a replay answered as a duplicate: {reply}"
    data = reply["data"]
    check_page(w, data, args.get("since_seq", 0), args.get("limit", 1000), args.get("topics"))
    assert reply["seq"] >= data["next_seq"] or not data["messages"], (
        f"reply seq {reply['seq']} is older than the newest message it replays ({data['next_seq']})")
    return reply, data


def check_page(w, data, since, limit, topics):
    """What holds for every page: this run, oldest first above `since`, at most `limit`, only
    matching topics, each message of this worker and run under its type's topic."""
    if w.events.run_id is not None:
        assert data["run"] == w.events.run_id, f"replay of run {data['run']}, the live run is {w.events.run_id}"
    seqs = [m["message"]["seq"] for m in data["messages"]]
    assert len(seqs) <= limit, f"{len(seqs)} messages on a page of limit {limit}"
    assert seqs == sorted(set(seqs)), f"replayed seqs not strictly rising: {seqs[:50]}"
    assert all(s > since for s in seqs), f"a message at or below since_seq {since}: {seqs[:50]}"
    if seqs:
        assert data["next_seq"] >= seqs[-1], data["next_seq"]
        if topics is None:
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "unfiltered page with a hole"
    assert data["next_seq"] >= since, f"next_seq {data['next_seq']} went back from since_seq {since}"
    assert data["truncated"] == (since + 1 < data["oldest_seq"]), data
    for item in data["messages"]:
        m = item["message"]
        if topics is not None:
            assert any(item["topic"].startswith(p) for p in topics), f"{item['topic']} matches none of {topics}"
        assert m["worker"] == w.worker_id and m["run"] == data["run"], m
        assert not (m["type"] == "result" and m["op"] == "replay"), f"a replay result was published: {m}"


class RawDealer:
    """A DEALER on the control socket for bulk work: pipelined requests, replies read as they come,
    nothing validated unless asked (a schema check per message would not keep up)."""

    def __init__(self, w):
        self.socket = w.context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.setsockopt(zmq.SNDHWM, 0)
        self.socket.setsockopt(zmq.RCVHWM, 0)
        self.socket.connect(w.control_endpoint)

    def send(self, command):
        self.socket.send_multipart([b"", encode(command)])

    def recv(self, timeout=DEFAULT_TIMEOUT):
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"no reply on the control socket within {timeout:g} s")
        return json.loads(self.socket.recv_multipart()[-1])

    def request(self, command, timeout=DEFAULT_TIMEOUT):
        self.send(command)
        reply = self.recv(timeout)
        assert reply.get("id") == command["id"], f"reply to {command['id']} carries {reply.get('id')!r}"
        return reply

    def close(self):
        self.socket.close()


def replay_pages(w, since, *, topics=None, until=None, limit=MAX_PAGE, dealer=None, validate=True):
    """Pages from `since` on until `more` is false (or `next_seq` reaches `until`); the messages
    (topic, message) in order, and the last page's data. `next_seq` must rise on every page."""
    own = dealer is None and not validate
    if own:
        dealer = RawDealer(w)
    try:
        held, pages, data = [], 0, None
        deadline = time.monotonic() + 4 * DEFAULT_TIMEOUT
        while True:
            args = {"since_seq": since, "limit": limit}
            if topics is not None:
                args["topics"] = topics
            if validate:
                _, data = replay_ok(w, **args)
            else:
                reply = dealer.request(replay_command(**args))
                assert reply["type"] == "result" and reply["ok"] is True, reply
                data = reply["data"]
                check_page(w, data, since, limit, topics)
            pages += 1
            held.extend((item["topic"], item["message"]) for item in data["messages"])
            if not data["more"] or (until is not None and data["next_seq"] >= until):
                return held, data
            assert data["next_seq"] > since, f"paging stuck at since_seq {since}: {data}"
            since = data["next_seq"]
            assert time.monotonic() < deadline, f"replay paging did not end ({pages} pages, at seq {since})"
    finally:
        if own:
            dealer.close()


class Subscriber:
    """A SUB of its own on the events socket, read only when the test says so. Holds what it
    received by seq (topic, message); `live` lists the seqs it received live, in order."""

    def __init__(self, w, *, rcvhwm=None, rcvbuf=None):
        self.w = w
        self.socket = w.context.socket(zmq.SUB)
        self.socket.setsockopt(zmq.LINGER, 0)
        if rcvhwm is not None:
            self.socket.setsockopt(zmq.RCVHWM, rcvhwm)
        if rcvbuf is not None:
            self.socket.setsockopt(zmq.RCVBUF, rcvbuf)
        self.socket.setsockopt(zmq.SUBSCRIBE, b"")
        self.socket.connect(w.events_endpoint)
        self.held = {}
        self.live = []
        self.run = None

    def read(self, timeout=0.0, most=None):
        """Reads what has arrived (waiting up to `timeout` s for the first); how many were read."""
        count = 0
        if not self.socket.poll(int(timeout * 1000)):
            return 0
        while most is None or count < most:
            try:
                topic, body = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            message = json.loads(body)
            if self.run is None:
                self.run = message["run"]
            assert message["run"] == self.run, f"run changed within one process: {message}"
            seq = message["seq"]
            assert not self.live or seq > self.live[-1], f"seq {seq} after {self.live[-1]}"
            self.live.append(seq)
            self.held[seq] = (topic.decode(), message)
            count += 1
        return count

    def newest(self):
        return max(self.held) if self.held else 0

    def wait_connected(self):
        """Until a message reaches it (pings on the control socket make some)."""
        deadline = time.monotonic() + DEFAULT_TIMEOUT
        while not self.held:
            assert time.monotonic() < deadline, "the subscriber received nothing"
            self.w.request(self.w.command("ping"))
            self.read(timeout=0.2)

    def wait_seq(self, seq):
        """Reads until it holds a message at `seq` or later. A message sent while its queue was full
        is lost, so when nothing arrives for a moment, a ping makes one more."""
        deadline = time.monotonic() + 4 * DEFAULT_TIMEOUT
        while self.newest() < seq:
            assert time.monotonic() < deadline, f"subscriber holds up to seq {self.newest()}, not {seq}"
            if not self.read(timeout=0.3):
                self.w.request(self.w.command("ping"))

    def gaps(self, upto):
        """(last seq held before, first seq held after) for every hole in 1..upto."""
        seqs = sorted(s for s in self.held if s <= upto)
        holes, previous = [], 0
        for s in seqs:
            if s != previous + 1:
                holes.append((previous, s))
            previous = s
        if previous < upto:
            holes.append((previous, upto + 1))
        return holes

    def fill(self, *, topics=None, validate=True, dealer=None, merge=False):
        """Fills every hole up to what it holds by replay, as the protocol says: asks with the last
        seq held before the hole, pages to the next seq held (with `merge`, once from the first
        hole to the newest held, for a subscriber with many small holes). Replayed copies of
        messages it already holds must be the same. Returns the holes it found."""
        holes = self.gaps(self.newest())
        asks = [(holes[0][0], self.newest() + 1)] if merge and holes else holes
        for before, after in asks:
            replayed, data = replay_pages(self.w, before, topics=topics, until=after - 1, validate=validate,
                                          dealer=dealer)
            assert before + 1 >= data["oldest_seq"], f"the ring lost seq {before + 1}: {data}"
            for topic, message in replayed:
                seq = message["seq"]
                if seq in self.held:
                    assert self.held[seq] == (topic, message), f"seq {seq} replayed differently from live"
                else:
                    self.held[seq] = (topic, message)
        return holes

    def close(self):
        self.socket.close()


def sentinel(w):
    """A ping over the control socket; the seq of its published result (nothing of the test's is
    newer)."""
    reply = w.request(w.command("ping"))
    assert reply["type"] == "result" and reply["ok"] is True, reply
    return reply["seq"]


def live_copy(w, upto):
    """What the suite's own subscriber (connected before the worker bound) received, seq → (topic,
    message), once it holds `upto`."""
    w.events.wait_for(lambda e: e.seq is not None and e.seq >= upto, what=f"seq {upto}")
    return {e.seq: (e.topic, e.message) for e in w.events.snapshot() if e.seq <= upto}


# --- semantics ----------------------------------------------------------------------------------

def test_replay_returns_published_messages(worker):
    first = worker.ctl("ping")
    newest = sentinel(worker)
    since = first["seq"] - 2  # the ping's ack and result on
    reply, data = replay_ok(worker, since_seq=since)
    seqs = [m["message"]["seq"] for m in data["messages"]]
    assert seqs[:2] == [since + 1, since + 2] and newest in seqs, seqs
    by_seq = {m["message"]["seq"]: m for m in data["messages"]}
    assert by_seq[first["seq"]]["message"]["id"] == first["id"]
    assert by_seq[first["seq"]]["topic"] == f"result.{worker.worker_id}"
    assert by_seq[first["seq"] - 1]["message"]["type"] == "accepted"
    assert data["truncated"] is False and data["oldest_seq"] <= since + 1


@pytest.mark.parametrize("topic", ["id", "all"])
def test_replay_on_commands_socket_is_a_request_error(worker, topic):
    command = replay_command()
    mark = worker.events.mark()
    worker.publish(f"cmd.{worker.worker_id}" if topic == "id" else "cmd.all", command)
    published = worker.events.wait_for(lambda e: e.type == "request_error" and e.id == command["id"], start=mark,
                                       what=f"request_error for replay {command['id']} on the commands socket")
    assert published.topic == f"error.request.{worker.worker_id}"
    assert published.message["reason"] == "invalid_field", published.message
    assert published.message["field"] == "op", published.message
    newest = sentinel(worker)
    worker.events.wait_for(lambda e: e.seq == newest, start=mark)
    other = [e for e in worker.events.snapshot(mark) if e.id == command["id"] and e.type != "request_error"]
    assert not other, f"a replay on the commands socket was answered on the events socket: {other}"


def test_replay_is_not_published_and_takes_no_seq(worker):
    before = sentinel(worker)
    mark = worker.events.mark()
    cid = new_id("rp")
    reply, data = replay_ok(worker, cid=cid, since_seq=before - 1)
    assert reply["id"] == cid and reply.get("machine") is None, reply
    after = sentinel(worker)
    assert before <= reply["seq"] < after, f"reply seq {reply['seq']}, published around it: {before}, {after}"
    assert [m["message"]["seq"] for m in data["messages"]][0] == before
    assert data["messages"][-1]["message"]["seq"] <= reply["seq"]
    # The subscriber sees every seq (the event collector fails the test on a gap), and the reply's
    # seq is a published message's, one that is not the replay's: the reply took no number.
    worker.events.wait_for(lambda e: e.seq == after, start=mark)
    at_reply = [e for e in worker.events.snapshot() if e.seq == reply["seq"]]
    assert len(at_reply) == 1, f"seq {reply['seq']} published {len(at_reply)} times"
    assert at_reply[0].id != cid, f"the replay's reply was published: {at_reply[0]!r}"
    leaked = [e for e in worker.events.snapshot(mark) if e.id == cid]
    assert not leaked, f"replay's ack or result published: {leaked}"


BAD_ARGS = [
    ("limit_0", {"limit": 0}, "limit"),
    ("limit_5001", {"limit": 5001}, "limit"),
    ("limit_string", {"limit": "10"}, "limit"),
    ("since_seq_negative", {"since_seq": -1}, "since_seq"),
    ("since_seq_string", {"since_seq": "x"}, "since_seq"),
    ("since_seq_fraction", {"since_seq": 1.5}, "since_seq"),
    ("topics_not_array", {"topics": "result."}, "topics"),
    ("topics_with_a_number", {"topics": ["result.", 5]}, "topics"),
]


@pytest.mark.parametrize("name,args,field", BAD_ARGS, ids=[c[0] for c in BAD_ARGS])
def test_replay_bad_args_are_answered_to_the_client_only(worker, name, args, field):
    command = {"v": 1, "id": new_id("rp"), "op": "replay", "args": args}
    assert worker.schemas.errors("command.json", command), "command.json must reject it too"
    before = sentinel(worker)
    mark = worker.events.mark()
    reply = worker.request(command)
    assert reply["type"] == "request_error", reply
    assert reply["reason"] == "invalid_field", reply
    assert reply.get("field") in (field, f"args.{field}"), reply
    assert reply.get("id") == command["id"], reply
    after = sentinel(worker)
    assert before <= reply["seq"] < after, f"reply seq {reply['seq']} between {before} and {after}"
    worker.events.wait_for(lambda e: e.seq == after, start=mark)
    published = [e for e in worker.events.snapshot(mark) if e.type == "request_error" or e.id == command["id"]]
    assert not published, f"a refused replay was published: {published}"


def test_replay_pages_advance_to_the_end(worker):
    mark_seq = sentinel(worker)
    for _ in range(12):
        worker.ctl("ping")
    last = sentinel(worker)
    since, seen, pages = mark_seq, [], 0
    while True:
        _, data = replay_ok(worker, since_seq=since, limit=5)
        pages += 1
        seqs = [m["message"]["seq"] for m in data["messages"]]
        assert len(seqs) <= 5
        if seqs:
            assert seqs[0] == since + 1, f"page from {since} starts at {seqs[0]}"
            assert data["next_seq"] == seqs[-1], f"next_seq {data['next_seq']} is not the page's newest {seqs[-1]}"
        seen.extend(seqs)
        if not data["more"]:
            break
        assert len(seqs) == 5, "a page with more to come must be full (no topic filter)"
        assert data["next_seq"] > since
        since = data["next_seq"]
        assert pages < 200, "paging does not end"
    assert pages >= 5, f"{len(seen)} messages in {pages} pages of 5"
    assert seen[:1] == [mark_seq + 1] and seen == list(range(mark_seq + 1, seen[-1] + 1))
    assert seen[-1] >= last
    # asked again from where it ended: nothing older comes back
    _, data = replay_ok(worker, since_seq=data["next_seq"], limit=5)
    assert all(m["message"]["seq"] > seen[-1] for m in data["messages"])


def test_replay_topic_filter_still_advances(worker):
    start = sentinel(worker)
    failing = worker.ctl("status", f"no-such-{new_id('m')}")
    assert failing["ok"] is False
    for _ in range(3):
        worker.ctl("ping")
    last = sentinel(worker)
    libvirt = f"error.libvirt.{worker.worker_id}"

    _, data = replay_ok(worker, since_seq=start, topics=["error.libvirt."])
    assert [(m["topic"], m["message"]["id"]) for m in data["messages"]] == [(libvirt, failing["id"])]
    assert strip_envelope(data["messages"][0]["message"]) == failing["error"]
    assert data["next_seq"] >= last and data["more"] is False, data

    _, data = replay_ok(worker, since_seq=start, topics=["no.such.topic."])
    assert data["messages"] == []
    assert data["next_seq"] >= last, f"a page that matched nothing must still advance: {data}"
    assert data["more"] is False

    # one matching message per page: next_seq is the newest message examined, not the ring's end
    _, data = replay_ok(worker, since_seq=start, topics=["result.", "heartbeat."], limit=1)
    assert len(data["messages"]) == 1 and data["more"] is True
    assert data["next_seq"] == data["messages"][0]["message"]["seq"]
    results, _ = replay_pages(worker, start, topics=["result."], limit=2)
    ids = [m["id"] for _, m in results if m["seq"] <= last]
    assert failing["id"] in ids and len(ids) == 5, ids
    assert all(t == f"result.{worker.worker_id}" for t, _ in results)


def test_replay_ids_are_not_remembered(worker):
    cid = new_id("rp")
    since = sentinel(worker) - 1
    first, one = replay_ok(worker, cid=cid, since_seq=since)
    worker.ctl("ping")
    second, two = replay_ok(worker, cid=cid, since_seq=since)
    for reply in (first, second):
        assert "duplicate" not in reply or reply["duplicate"] is False, reply
    assert len(two["messages"]) > len(one["messages"]), "the second replay was not answered afresh"
    assert two["messages"][:len(one["messages"])] == one["messages"]
    # nor is a replay's id taken: a ping with it runs
    ex = worker.execute(worker.command("ping", cid=cid), "control")
    assert ex.r.get("duplicate", False) is False, ex.r


def test_replayed_message_is_the_published_message(worker):
    start = sentinel(worker)
    worker.ctl("status", "static-running")
    worker.ctl("start", f"no-such-{new_id('m')}")
    worker.ctl("list")
    worker.request(worker.command("explode"))  # a request_error
    last = sentinel(worker)
    live = live_copy(worker, last)
    replayed, _ = replay_pages(worker, start, until=last)
    replayed = [(t, m) for t, m in replayed if m["seq"] <= last]
    assert [m["seq"] for _, m in replayed] == list(range(start + 1, last + 1))
    assert {m["type"] for _, m in replayed} >= {"accepted", "result", "E2LibvirtError", "request_error"}
    for topic, message in replayed:
        assert (topic, message) == live[message["seq"]], (
            f"seq {message['seq']} replayed differs from the live copy:\n  replayed: {topic} {message}\n"
            f"  live:     {live[message['seq']]}")


def test_replay_ring_keeps_the_newest(worker_factory):
    w = worker_factory(extra_args=["--replay-messages", "10"])
    for _ in range(8):
        w.ctl("ping")
    newest = sentinel(w)
    assert newest > 10
    _, data = replay_ok(w, since_seq=0)
    seqs = [m["message"]["seq"] for m in data["messages"]]
    assert len(seqs) == 10, seqs
    assert data["truncated"] is True, data
    assert data["oldest_seq"] == seqs[0] == seqs[-1] - 9, data
    assert seqs[-1] >= newest
    live = live_copy(w, seqs[-1])
    assert all(live[m["message"]["seq"]] == (m["topic"], m["message"]) for m in data["messages"])
    _, exact = replay_ok(w, since_seq=data["oldest_seq"] - 1)
    assert exact["truncated"] is False, exact
    _, short = replay_ok(w, since_seq=data["oldest_seq"] - 2)
    assert short["truncated"] is True, short


# --- what it is for -----------------------------------------------------------------------------

def _now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _restore_table(worker_id):
    machines = {machine_uuid(name): {"name": name, "desired": desired, "observed": desired, "updated_at": _now()}
                for name, desired in (("restore-start", "running"), ("restore-resume", "running"),
                                      ("restore-running", "running"), ("restore-skip", "shutoff"))}
    machines["00000000-0000-4000-8000-00000000dead"] = {"name": "restore-missing", "desired": "running",
                                                        "observed": "running", "updated_at": _now()}
    return {"version": 1, "worker": worker_id, "saved_at": _now(), "machines": machines}


def _wait_replayed(w, predicate, topics, what):
    """The first replayed message satisfying `predicate`; between tries it waits for the next
    published message (heartbeats come every 500 ms), never a fixed time."""
    deadline = time.monotonic() + DEFAULT_TIMEOUT
    while True:
        mark = w.events.mark()
        held, _ = replay_pages(w, 0, topics=topics)
        found = [m for _, m in held if predicate(m)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no {what} replayed"
        w.events.wait_quiet_for(lambda e: True, start=mark, timeout=1.0)


def test_late_subscriber_after_restart_holds_the_whole_run(worker_factory, schemas):
    worker_id = new_id("conf-replay")
    table = _restore_table(worker_id)
    schemas.check("state_table.json", table)
    first = worker_factory(state_table=table, worker_id=worker_id)
    first.ctl("ping")
    assert first.stop() == 0
    saved = first.read_state_file()
    assert machine_uuid("restore-start") in {k.lower() for k in saved["machines"]}
    restarted = worker_factory(state_table=saved, worker_id=worker_id)
    summary = _wait_replayed(restarted, lambda m: m["type"] == "restore.summary" and m["trigger"] == "startup",
                             ["restore."], "startup restore.summary")
    assert summary["total"] == len(saved["machines"])

    late = Subscriber(restarted)
    try:
        late.wait_connected()
        first_live = late.live[0]
        assert first_live > summary["seq"], "the late subscriber was in time for the restore"
        assert late.run != first.events.run_id, "a restarted worker keeps its run"
        # a new run: ask from 0, then keep the live stream, dropping what is already held
        replayed, data = replay_pages(restarted, 0, until=first_live)
        assert data["run"] == late.run
        for topic, message in replayed:
            if message["seq"] in late.held:
                assert late.held[message["seq"]] == (topic, message)
            late.held.setdefault(message["seq"], (topic, message))
        last = sentinel(restarted)
        late.wait_seq(last)
        assert late.gaps(last) == [], f"the late subscriber lacks {late.gaps(last)}"

        # the early subscriber, connected before the worker bound: what it missed at the start
        # (it may have been slower than worker.started) it takes from replay too
        early = live_copy(restarted, last)
        missing = min(early) - 1
        if missing:
            prefix, _ = replay_pages(restarted, 0, until=missing)
            early.update({m["seq"]: (t, m) for t, m in prefix if m["seq"] <= missing})
        assert sorted(early) == list(range(1, last + 1))
        late_copy = {s: v for s, v in late.held.items() if s <= last}
        assert sorted(late_copy) == list(range(1, last + 1))
        for seq in range(1, last + 1):
            assert late_copy[seq] == early[seq], f"seq {seq}: late {late_copy[seq]} vs early {early[seq]}"
        types = [late_copy[s][1]["type"] for s in range(1, last + 1)]
        assert types[0] == "worker.started"
        outcomes = [late_copy[s][1] for s in range(1, last + 1) if types[s - 1] == "restore.outcome"]
        assert len(outcomes) == summary["total"]
        assert {o["machine"] for o in outcomes} >= {e["name"] for e in table["machines"].values()}
    finally:
        late.close()


def _burst(w, count, *, window=300, failing_every=10, subscriber=None, read_most=None):
    """`count` status commands over one DEALER, `window` in flight; every `failing_every`-th names
    a machine that does not exist (a published E2LibvirtError). Returns the failing commands' replies
    by id. With `subscriber`, reads at most `read_most` of its messages between replies."""
    dealer = RawDealer(w)
    failed = {}
    try:
        sent = answered = 0
        deadline = time.monotonic() + 120
        while answered < count:
            while sent < count and sent - answered < window:
                if sent % failing_every == 0:
                    command = {"v": 1, "id": f"b{sent}-{new_id('f')}", "op": "status", "machine": f"no-such-{sent}"}
                else:
                    command = {"v": 1, "id": f"b{sent}-{new_id('s')}", "op": "status", "machine": "static-running"}
                dealer.send(command)
                sent += 1
            reply = dealer.recv(timeout=DEFAULT_TIMEOUT)
            answered += 1
            assert reply["type"] == "result", reply
            if not reply["ok"]:
                assert reply["error"]["type"] == "E2LibvirtError", reply
                failed[reply["id"]] = reply
            if subscriber is not None and read_most:
                subscriber.read(most=read_most)
            assert time.monotonic() < deadline, f"{answered} of {count} answered in time"
        return failed
    finally:
        dealer.close()


def test_slow_subscriber_recovers_what_it_dropped(worker_factory):
    w = worker_factory(extra_args=["--events-hwm", "10"], lossy_events=True)
    slow = Subscriber(w, rcvhwm=10, rcvbuf=4096)
    try:
        slow.wait_connected()
        failed = _burst(w, 3000)  # the subscriber reads nothing meanwhile
        last = sentinel(w)
        slow.wait_seq(last)
        holes = slow.fill(validate=False)
        assert holes, "the slow subscriber dropped nothing: the test did not reach its high-water mark"
        first = min(slow.held)
        if first > 1:
            prefix, _ = replay_pages(w, 0, until=first - 1, validate=False)
            for t, m in prefix:
                slow.held.setdefault(m["seq"], (t, m))
        assert slow.gaps(last) == [], f"still missing after replay: {slow.gaps(last)[:10]}"
        errors = {m["id"] for t, m in slow.held.values() if m["type"] == "E2LibvirtError"}
        assert set(failed) <= errors
    finally:
        slow.close()


def test_gap_under_load_every_error_record_recovered(worker_factory):
    """100,000 commands, a few hundred in flight, a tenth failing; a subscriber with a small
    receive buffer that reads slowly drops messages, then recovers every E2LibvirtError by replay
    of `error.libvirt.` from each gap. About 15 s with a debug build on two cores."""
    w = worker_factory(extra_args=["--events-hwm", "100", "--replay-messages", "1000000",
                                   "--replay-bytes", str(1 << 30)], lossy_events=True)
    sub = Subscriber(w, rcvhwm=100, rcvbuf=16384)
    try:
        sub.wait_connected()
        started = time.monotonic()
        failed = _burst(w, 100_000, window=300, failing_every=10, subscriber=sub, read_most=1)
        assert len(failed) == 10_000
        last = sentinel(w)
        sub.wait_seq(last)
        dealer = RawDealer(w)
        try:
            holes = sub.fill(topics=["error.libvirt."], validate=False, dealer=dealer, merge=True)
        finally:
            dealer.close()
        assert holes, "the subscriber dropped nothing under load: the test did not make a gap"
        records = {}
        for topic, message in sub.held.values():
            if message["type"] == "E2LibvirtError":
                assert topic == f"error.libvirt.{w.worker_id}"
                assert message["id"] not in records, f"two records for {message['id']}"
                records[message["id"]] = message
        lost = set(failed) - set(records)
        assert not lost, f"{len(lost)} error records not recovered, e.g. {sorted(lost)[:5]}"
        for cid, reply in failed.items():
            assert strip_envelope(records[cid]) == reply["error"], f"record of {cid} differs from its result's"
        sample = [records[cid] for cid in sorted(records)[:20]]
        for message in sample:
            w.schemas.check_message(message)
        assert time.monotonic() - started < 90, "the load test ran too long"
    finally:
        sub.close()
