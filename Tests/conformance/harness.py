"""A real `ecp-worker` process and the ZeroMQ clients that talk to it, the way a Python front-end
does: a PUB for commands, REQ/DEALER for the control socket, a SUB on every event topic.

Every message the worker publishes is checked as it arrives (schema for its `type`, topic for
that type, worker id, constant `run`, `seq` rising by exactly 1); problems are collected in
`EventCollector.violations` and reported by the tests.
"""

import json
import os
import pathlib
import secrets
import shlex
import signal
import socket
import subprocess
import threading
import time
import uuid
from xml.sax.saxutils import escape

import zmq

import curve
from ecp_schemas import expected_topic

#: Upper bound for one expected message, seconds (ECP_CONFORMANCE_TIMEOUT overrides).
DEFAULT_TIMEOUT = float(os.environ.get("ECP_CONFORMANCE_TIMEOUT", "10"))
#: Upper bound for the worker to answer its first ping and for subscriptions to settle, seconds.
READY_TIMEOUT = float(os.environ.get("ECP_CONFORMANCE_READY_TIMEOUT", "20"))
#: Upper bound for the worker to exit after SIGTERM, seconds.
STOP_TIMEOUT = 20.0
HEARTBEAT_MS = 500

CHANNELS = ("control", "pub-id", "pub-all")

TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RUNSTATE = {"running": 1, "paused": 3, "shutoff": 5}


def new_id(prefix="c"):
    """A fresh command id: `[A-Za-z0-9._:-]`, unique per call."""
    return f"{prefix}-{secrets.token_hex(6)}"


def machine_uuid(name):
    """The UUID a machine of the node file has (stable per name)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:ecp:conformance:{name}"))


def _node_machines():
    machines = {"static-running": "running", "static-off": "shutoff", "static-paused": "paused"}
    for channel in CHANNELS:
        machines.update({
            f"start-{channel}": "shutoff",
            f"paused-{channel}": "shutoff",
            f"suspend-{channel}": "running",
            f"resume-{channel}": "paused",
            f"shutdown-{channel}": "running",
            f"reboot-{channel}": "running",
            f"destroy-{channel}": "running",
            f"undefine-{channel}": "shutoff",
            f"dup-{channel}": "shutoff",
        })
    machines.update({
        "idem-start": "running", "idem-destroy": "shutoff", "idem-shutdown": "shutoff",
        "idem-suspend": "paused", "idem-resume": "running",
        "undefine-running": "running", "shutdown-wait": "running", "event-machine": "shutoff",
        "reqerr-machine": "shutoff", "error-suspend": "shutoff", "lifecycle-a": "shutoff",
        # the startup-restore test's machines (see test_conformance.RESTORE_TABLE)
        "restore-start": "shutoff", "restore-resume": "paused", "restore-running": "running",
        "restore-paused": "shutoff", "restore-skip": "running",
    })
    return machines


#: name -> initial state of every machine in the node file.
NODE_MACHINES = _node_machines()


def domain_xml(name, machine_uuid_=None, *, runstate=None, memory_kib=65536, vcpus=1):
    """A minimal domain for libvirt's test driver; `runstate` only inside a node file."""
    uuid_line = f"    <uuid>{machine_uuid_}</uuid>\n" if machine_uuid_ else ""
    runstate_line = f"    <test:runstate>{RUNSTATE[runstate]}</test:runstate>\n" if runstate else ""
    return (
        "  <domain type='test'>\n"
        f"    <name>{escape(name)}</name>\n"
        f"{uuid_line}"
        f"    <memory unit='KiB'>{memory_kib}</memory>\n"
        f"    <vcpu>{vcpus}</vcpu>\n"
        "    <os><type>hvm</type></os>\n"
        f"{runstate_line}"
        "  </domain>\n"
    )


def write_node_file(path, machines=None):
    """A node file of libvirt's test driver (URI test://<path>) with `machines` (name -> state)."""
    machines = NODE_MACHINES if machines is None else machines
    body = "".join(domain_xml(name, machine_uuid(name), runstate=state) for name, state in machines.items())
    path = pathlib.Path(path)
    path.write_text(f"<node xmlns:test='{TEST_NS}'>\n{body}</node>\n", encoding="utf-8")
    return path


def free_tcp_ports(count):
    """`count` distinct TCP ports of 127.0.0.1 that were free a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def encode(payload):
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload).encode("utf-8")


def same_message(a, b, ignore=("ts",)):
    """Equal but for `ignore` (a control reply and its published copy)."""
    return {k: v for k, v in a.items() if k not in ignore} == {k: v for k, v in b.items() if k not in ignore}


def is_uuid(text):
    try:
        uuid.UUID(str(text))
        return True
    except ValueError:
        return False


def _echoes(echoed, given):
    """`machine` in an ack or result is the command's, as given; a machine given by UUID may be
    echoed by name."""
    return echoed == given or (is_uuid(given) and isinstance(echoed, str) and echoed != "")


def worker_environment():
    """This process's environment without ECP_* variables: the worker reads its options from
    ECP_<OPTION> too, and a stray one must not change what is tested (ECP_WORKER_EXTRA_ARGS is the
    way to add options)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ECP_")}


class Event:
    """One message received on the events socket."""

    __slots__ = ("index", "topic", "message", "received_at")

    def __init__(self, index, topic, message, received_at):
        self.index, self.topic, self.message, self.received_at = index, topic, message, received_at

    def _get(self, key):
        return self.message.get(key) if isinstance(self.message, dict) else None

    @property
    def type(self):
        return self._get("type")

    @property
    def id(self):
        return self._get("id")

    @property
    def seq(self):
        return self._get("seq")

    def __repr__(self):
        return f"[{self.topic}] {json.dumps(self.message, sort_keys=True)[:300]}"


class EventCollector:
    """Subscribes to every topic of the events socket on a thread of its own and checks each
    message as it arrives."""

    def __init__(self, context, endpoint, worker_id, schemas, *, lossy=False):
        self.context, self.endpoint, self.worker_id, self.schemas = context, endpoint, worker_id, schemas
        #: Under load (a test that floods the worker on purpose) this subscriber may fall behind
        #: and lose messages: then it skips the schema (too slow to keep up) and records gaps in
        #: `gaps` instead of reporting them; topic, worker, run and rising seq are still checked.
        self.lossy = lossy
        #: (last seq held, next seq held) for every gap seen in lossy mode
        self.gaps = []
        self.violations = []
        #: how many violations a test has already reported (the rest are reported at teardown)
        self.reported = 0
        self.run_id = None
        self._events = []
        self._last_seq = None
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._subscribed = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"events-{worker_id}", daemon=True)

    def start(self):
        self._thread.start()
        if not self._subscribed.wait(5):
            raise RuntimeError("event subscriber did not start")

    def stop(self):
        self._stopping.set()
        self._thread.join(5)

    def _loop(self):
        sub = self.context.socket(zmq.SUB)
        sub.setsockopt(zmq.LINGER, 0)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        # connected before the worker binds: retry often, to catch its first messages
        sub.setsockopt(zmq.RECONNECT_IVL, 10)
        sub.connect(self.endpoint)
        self._subscribed.set()
        try:
            while not self._stopping.is_set():
                if sub.poll(100):
                    while True:
                        try:
                            frames = sub.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        self._handle(frames)
        finally:
            sub.close()

    def _violation(self, text):
        self.violations.append(text)

    def _handle(self, frames):
        received_at = time.monotonic()
        if len(frames) != 2:
            self._violation(f"event with {len(frames)} frames, expected [topic][json]: {frames!r:.300}")
            return
        try:
            topic = frames[0].decode("utf-8")
        except UnicodeDecodeError:
            self._violation(f"topic is not UTF-8: {frames[0]!r:.100}")
            return
        try:
            message = json.loads(frames[1])
        except ValueError as error:
            self._violation(f"[{topic}] body is not JSON ({error}): {frames[1]!r:.300}")
            return
        if not isinstance(message, dict):
            self._violation(f"[{topic}] body is not a JSON object: {message!r:.300}")
        else:
            try:
                self._check(topic, message)
            except Exception as error:  # keep collecting: a checker failure is reported, not fatal
                self._violation(f"[{topic}] could not be checked ({type(error).__name__}: {error}): {message!r:.300}")
        with self._cond:
            self._events.append(Event(len(self._events), topic, message, received_at))
            self._cond.notify_all()

    def _check(self, topic, message):
        problems = [] if self.lossy else self.schemas.message_errors(message)
        if problems:
            self._violation(f"[{topic}] seq {message.get('seq')} type {message.get('type')!r}: "
                            + "; ".join(problems) + f"\n      in {json.dumps(message, sort_keys=True)[:400]}")
        wanted = expected_topic(message.get("type"), self.worker_id)
        if topic != wanted:
            self._violation(f"type {message.get('type')!r} on topic {topic!r}, expected {wanted!r}")
        if message.get("worker") != self.worker_id:
            self._violation(f"[{topic}] worker {message.get('worker')!r}, expected {self.worker_id!r}")
        run = message.get("run")
        if self.run_id is None:
            self.run_id = run
        elif run != self.run_id:
            self._violation(f"[{topic}] run changed from {self.run_id!r} to {run!r} within one process")
        seq = message.get("seq")
        if isinstance(seq, int) and not isinstance(seq, bool):
            if self._last_seq is not None and seq != self._last_seq + 1:
                if self.lossy and seq > self._last_seq:
                    self.gaps.append((self._last_seq, seq))
                else:
                    self._violation(f"[{topic}] seq {seq} follows {self._last_seq} (gap, repeat or reorder)")
            self._last_seq = seq

    # -- queries -------------------------------------------------------------------------------

    def mark(self):
        """The index the next message will get: a starting point for waits and searches."""
        with self._cond:
            return len(self._events)

    def snapshot(self, start=0):
        with self._cond:
            return list(self._events[start:])

    def find(self, predicate, start=0):
        return [e for e in self.snapshot(start) if predicate(e)]

    def first(self, predicate, start=0):
        found = self.find(predicate, start)
        return found[0] if found else None

    def wait_for(self, predicate, *, start=0, timeout=DEFAULT_TIMEOUT, what="a message"):
        """The first message from index `start` on that satisfies `predicate`; waits for it at
        most `timeout` seconds, then fails naming `what` and the latest messages."""
        deadline = time.monotonic() + timeout
        index = start
        with self._cond:
            while True:
                while index < len(self._events):
                    event = self._events[index]
                    index += 1
                    if predicate(event):
                        return event
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            recent = [e for e in self._events[start:] if e.type != "heartbeat"][-8:]
        listing = "\n    ".join(repr(e) for e in recent) or "(none)"
        raise AssertionError(f"no {what} on events within {timeout:g} s; latest since start "
                             f"(heartbeats left out):\n    {listing}")

    def wait_quiet_for(self, predicate, *, start=0, timeout=DEFAULT_TIMEOUT):
        """Like wait_for but returns None instead of failing."""
        try:
            return self.wait_for(predicate, start=start, timeout=timeout)
        except AssertionError:
            return None


class Dealer:
    """A DEALER on the control socket, owned by one test."""

    def __init__(self, context, endpoint):
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.socket.connect(endpoint)

    def send(self, frames):
        self.socket.send_multipart([encode(f) for f in frames])

    def recv(self, timeout=DEFAULT_TIMEOUT):
        """The next reply's frames; fails after `timeout` seconds."""
        if not self.socket.poll(int(timeout * 1000)):
            raise AssertionError(f"no reply on the control socket within {timeout:g} s")
        return self.socket.recv_multipart()

    def close(self):
        self.socket.close()


class Exchange:
    """A command and what came of it: the ack and result as published, the control reply."""

    def __init__(self, command, ack, result, reply):
        self.command, self.ack, self.result, self.reply = command, ack, result, reply

    @property
    def r(self):
        """The result message."""
        return self.result.message


class Worker:
    """One `ecp-worker` process on free ports of 127.0.0.1, with its clients."""

    def __init__(self, binary, workdir, schemas, *, machines=None, state_table=None, worker_id=None, curve_keys=None,
                 extra_args=(), lossy_events=False):
        self.binary = str(binary)
        self.workdir = pathlib.Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.schemas = schemas
        self.worker_id = worker_id or f"conf-{secrets.token_hex(4)}"
        self.node_file = write_node_file(self.workdir / "node.xml", machines)
        self.libvirt_uri = f"test://{self.node_file.resolve()}"
        self.state_file = self.workdir / "state.json"
        if state_table is not None:
            self.state_file.write_text(json.dumps(state_table, indent=2), encoding="utf-8")
        # CURVE (see curve.py): True or False, or None to follow ECP_CONFORMANCE_CURVE.
        self.curve = curve.keys_for(curve_keys, self.workdir)
        commands_port, events_port, control_port = free_tcp_ports(3)
        self.commands_endpoint = f"tcp://127.0.0.1:{commands_port}"
        self.events_endpoint = f"tcp://127.0.0.1:{events_port}"
        self.control_endpoint = f"tcp://127.0.0.1:{control_port}"
        self.args = [
            self.binary,
            "--worker-id", self.worker_id,
            "--libvirt-uri", self.libvirt_uri,
            "--commands", "@" + self.commands_endpoint,
            "--events", "@" + self.events_endpoint,
            "--control", "@" + self.control_endpoint,
            "--state-file", str(self.state_file),
            "--heartbeat-ms", str(HEARTBEAT_MS),
            "--log-format", "json",
        ] + (self.curve.worker_args() if self.curve else []) \
            + ([] if any(a.startswith("--metrics") for a in extra_args) else ["--metrics", "none"]) + list(extra_args) \
            + shlex.split(os.environ.get("ECP_WORKER_EXTRA_ARGS", ""))
        self.stdout_path = self.workdir / "stdout.log"
        self.stderr_path = self.workdir / "stderr.log"
        self.context = self.curve.context() if self.curve else zmq.Context()
        self.events = EventCollector(self.context, self.events_endpoint, self.worker_id, schemas, lossy=lossy_events)
        self.publisher = None
        self.proc = None
        self.returncode = None

    # -- process -------------------------------------------------------------------------------

    def start(self, ready_timeout=READY_TIMEOUT):
        """Starts the process, subscribed to its events from the first moment, and returns once
        it answers a ping on the control socket and both command topics reach it."""
        self.events.start()
        self.publisher = self.context.socket(zmq.PUB)
        self.publisher.setsockopt(zmq.LINGER, 0)
        self.publisher.connect(self.commands_endpoint)
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=worker_environment())
        deadline = time.monotonic() + ready_timeout
        self._wait_control_ready(deadline)
        self._wait_topic_ready(f"cmd.{self.worker_id}", deadline)
        self._wait_topic_ready("cmd.all", deadline)
        return self

    def _check_alive(self):
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"worker exited with code {self.proc.returncode} before it was ready\n"
                f"command: {shlex.join(self.args)}\n{self.output_tail()}")

    def _not_ready(self, what):
        raise RuntimeError(f"worker not ready: {what} in time\n"
                           f"command: {shlex.join(self.args)}\n{self.output_tail()}")

    def _wait_control_ready(self, deadline):
        """Pings over a DEALER (which, unlike REQ, never gets stuck on a lost reply) until a reply
        comes back and the published result of an answered ping has reached the subscriber."""
        dealer = Dealer(self.context, self.control_endpoint)
        sent, answered = [], False
        try:
            while time.monotonic() < deadline:
                self._check_alive()
                cid = f"ready-{len(sent) + 1}-{secrets.token_hex(3)}"
                sent.append(cid)
                dealer.send([b"", {"v": 1, "id": cid, "op": "ping"}])
                if dealer.socket.poll(500):
                    reply = json.loads(dealer.socket.recv_multipart()[-1])
                    answered = answered or reply.get("id") in sent
                if answered and self.events.wait_quiet_for(lambda e: e.type == "result" and e.id in sent,
                                                           timeout=0.2):
                    return
            self._not_ready("no ping answered on the control socket" if not answered
                            else "ping results never reached the events subscriber")
        finally:
            dealer.close()

    def _wait_topic_ready(self, topic, deadline):
        """Publishes pings on `topic` until one's result is published (PUB→SUB subscriptions
        take a moment to reach the publisher: the slow joiner)."""
        sent = []
        while time.monotonic() < deadline:
            self._check_alive()
            cid = f"ready-pub-{len(sent) + 1}-{secrets.token_hex(3)}"
            sent.append(cid)
            self.publish(topic, {"v": 1, "id": cid, "op": "ping"})
            if self.events.wait_quiet_for(lambda e: e.type == "result" and e.id in sent, timeout=0.2):
                return
        self._not_ready(f"no command published on {topic!r} was executed")

    def signal(self, signum=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signum)

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, then the exit code (killed, and a failure, past `timeout` seconds)."""
        if self.proc is None:
            return None
        self.signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.returncode = self.proc.wait()
            raise AssertionError(f"worker did not exit within {timeout:g} s of SIGTERM\n{self.output_tail()}")
        return self.returncode

    def stopping_event(self, timeout=3.0):
        """The `worker.stopping` message, or None."""
        return self.events.wait_quiet_for(lambda e: e.type == "worker.stopping", timeout=timeout)

    def close(self):
        """Kills the process if it still runs, closes every socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.events.stop()
        if self.publisher is not None:
            self.publisher.close()
        self.context.term()

    def output_tail(self, lines=40):
        parts = []
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            except FileNotFoundError:
                continue
            parts.append(f"--- {path.name} (last {len(text)} lines)\n" + "\n".join(text))
        return "\n".join(parts)

    def log_lines(self):
        """Every non-empty line the worker wrote to stdout and stderr, with the stream's name."""
        result = []
        for path in (self.stdout_path, self.stderr_path):
            if path.exists():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    if line.strip():
                        result.append((path.name, line))
        return result

    def read_state_file(self):
        with open(self.state_file, encoding="utf-8") as f:
            return json.load(f)

    # -- clients -------------------------------------------------------------------------------

    def publish(self, topic, payload):
        """A command on the commands socket: [topic][json]."""
        self.publisher.send_multipart([topic.encode("utf-8"), encode(payload)])

    def publish_frames(self, frames):
        self.publisher.send_multipart([encode(f) for f in frames])

    def dealer(self):
        return Dealer(self.context, self.control_endpoint)

    def request(self, payload, timeout=DEFAULT_TIMEOUT):
        """One request over a fresh REQ socket (REQ adds and strips the empty delimiter); returns
        the decoded reply and checks it against its schema."""
        req = self.context.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(self.control_endpoint)
        try:
            req.send(encode(payload))
            if not req.poll(int(timeout * 1000)):
                raise AssertionError(f"no reply on the control socket within {timeout:g} s to {encode(payload)[:200]!r}")
            raw = req.recv()
        finally:
            req.close()
        reply = json.loads(raw)
        self.schemas.check_message(reply)
        return reply

    def command(self, op, machine=None, *, args=None, cid=None, **extra):
        cmd = {"v": 1, "id": cid or new_id(op), "op": op}
        if machine is not None:
            cmd["machine"] = machine
        if args is not None:
            cmd["args"] = args
        cmd.update(extra)
        return cmd

    def send(self, command, via):
        """Sends `command` over `via` (control, pub-id, pub-all); returns the control reply or None."""
        if via == "control":
            return self.request(command)
        if via == "pub-id":
            self.publish(f"cmd.{self.worker_id}", command)
        elif via == "pub-all":
            self.publish("cmd.all", command)
        else:
            raise ValueError(f"unknown channel {via!r}")
        return None

    def execute(self, command, via="control", *, expect_ack=True, timeout=DEFAULT_TIMEOUT):
        """Sends a valid command and returns its Exchange once the result is published. Checks
        that the command conforms to command.json, that an `accepted` with the same id, op and
        machine was published before the result, and that a control reply is the published
        result (same message, `ts` aside)."""
        self.schemas.check("command.json", command)
        cid = command["id"]
        mark = self.events.mark()
        reply = self.send(command, via)
        if reply is not None:
            assert reply.get("type") == "result", f"control reply to {cid} is not a result: {reply}"
            assert reply.get("id") == cid, f"control reply to {cid} carries id {reply.get('id')!r}"
        result = self.events.wait_for(lambda e: e.type == "result" and e.id == cid, start=mark,
                                      timeout=timeout, what=f"result of {command['op']} {cid}")
        ack = self.events.first(lambda e: e.type == "accepted" and e.id == cid, start=mark)
        if expect_ack:
            assert ack is not None, f"no accepted published for {cid} before its result"
            assert ack.seq < result.seq, f"accepted (seq {ack.seq}) after result (seq {result.seq}) for {cid}"
            assert ack.message["op"] == command["op"], ack.message
            if "machine" in command:
                assert _echoes(ack.message.get("machine"), command["machine"]), ack.message
        r = result.message
        assert r["op"] == command["op"], r
        if "machine" in command:
            assert _echoes(r.get("machine"), command["machine"]), r
        if reply is not None:
            assert same_message(reply, r), (
                f"control reply differs from the published result (ts aside):\n  reply:     {reply}\n  published: {r}")
        return Exchange(command, ack, result, reply)

    def ctl(self, op, machine=None, **kw):
        """Executes over the control socket and returns the result message."""
        return self.execute(self.command(op, machine, **kw), "control").r

    def state_of(self, machine):
        r = self.ctl("status", machine)
        assert r["ok"] is True, f"status of {machine} failed: {r}"
        return r["state"]
