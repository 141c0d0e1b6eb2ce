"""CURVE: a worker started with --curve-key-file and --curve-clients serves the admitted client
key, over the control and commands sockets and on its events, and gives nothing to an unknown
key or to a client without CURVE.

These tests switch CURVE on whatever ECP_CONFORMANCE_CURVE says; with ECP_CONFORMANCE_CURVE=1 the
rest of the suite runs over CURVE too (see curve.py).
"""

import json
import time

import pytest

zmq = pytest.importorskip("zmq", reason="python3-zmq is required")

MACHINES = {"curve-a": "shutoff", "curve-b": "shutoff"}


def test_ping_and_start_through_curve(worker_factory):
    w = worker_factory(machines=MACHINES, curve_keys=True)
    assert w.curve is not None and "--curve-key-file" in w.args and "--curve-clients" in w.args

    ping = w.ctl("ping")
    assert ping["ok"] is True, ping

    # Through the commands socket (the admitted PUB), then checked over the control socket.
    start = w.execute(w.command("start", "curve-a"), "pub-id").r
    assert start["ok"] is True and start["changed"] is True and start["state"] == "running", start
    assert w.state_of("curve-a") == "running"
    assert w.events.wait_for(lambda e: e.type == "heartbeat", what="a heartbeat"), "the admitted subscriber gets heartbeats"


def test_unknown_key_gets_nothing(worker_factory):
    w = worker_factory(machines=MACHINES, curve_keys=True)
    stranger_public, stranger_secret = zmq.curve_keypair()
    context = zmq.Context()
    sockets = []

    def socket(kind, endpoint, keys=True):
        s = context.socket(kind)
        s.setsockopt(zmq.LINGER, 0)
        if keys:
            w.curve.secure(s, stranger_public, stranger_secret)
        if kind == zmq.SUB:
            s.setsockopt(zmq.SUBSCRIBE, b"")
        s.connect(endpoint)
        sockets.append(s)
        return s

    try:
        dealer = socket(zmq.DEALER, w.control_endpoint)
        plain = socket(zmq.DEALER, w.control_endpoint, keys=False)
        publisher = socket(zmq.PUB, w.commands_endpoint)
        subscriber = socket(zmq.SUB, w.events_endpoint)
        mark = w.events.mark()

        def start(cid):
            return json.dumps({"v": 1, "id": cid, "op": "start", "machine": "curve-b"}).encode()

        dealer.send_multipart([b"", start("intruder-control")])
        plain.send_multipart([b"", start("intruder-plain")])
        for n in range(10):  # a PUB drops what it sends before a subscription reaches it
            publisher.send_multipart([f"cmd.{w.worker_id}".encode(), start(f"intruder-pub-{n}")])
            time.sleep(0.05)

        assert not dealer.poll(1000), "no reply to an unknown key"
        assert not plain.poll(300), "no reply to a client without CURVE"
        assert not subscriber.poll(1500), "an unknown key receives no event"
        assert w.events.first(lambda e: e.type == "heartbeat", start=mark) is not None, \
            "meanwhile the admitted subscriber receives heartbeats"

        # The barrier: the admitted client finds the machine as it was.
        assert w.state_of("curve-b") == "shutoff", "nothing an intruder sent ran"
        leaked = w.events.find(lambda e: str(e.id or "").startswith("intruder-"))
        assert not leaked, f"nothing published for an intruder's command: {leaked}"

        refused = []
        for _, line in w.log_lines():
            if "client refused" in line:
                record = json.loads(line)
                if record.get("client.key") == stranger_public.decode("ascii"):
                    refused.append(record)
        assert refused, "the worker logs the refused key\n" + w.output_tail()
        assert "127.0.0.1" in refused[0].get("client.address", ""), refused[0]
    finally:
        for s in sockets:
            s.close()
        context.term()
