"""Restore policy and host stop (PROTOCOL.md, second edition): `set_policy` merges and clears,
`report` shows every member, `host_stop` stops in the reverse of the restore's order and publishes
an outcome per machine and a summary on `restore.<worker-id>`, all of it valid against schemas/.

Needs ECP_WORKER_BIN (the binary) and python3-zmq; see README.md.
"""

import json

import pytest

import requires  # noqa: E402

requires.worker_and_zmq()

from harness import machine_uuid  # noqa: E402

MACHINES = {"hp-a": "running", "hp-b": "running", "hp-c": "running", "hp-off": "shutoff"}


@pytest.fixture
def worker(worker_factory):
    return worker_factory(machines=MACHINES)


def run(worker, op, machine=None, args=None):
    r = worker.execute(worker.command(op, machine, args=args), "control").r
    assert r["ok"] is True, json.dumps(r.get("error"), sort_keys=True)
    return r


def test_set_policy_merges_clears_and_report_shows_every_member(worker):
    first = run(worker, "set_policy", "hp-a", {"order": 3, "up_delay_ms": 250, "host_stop": "managedsave"})
    assert first["changed"] is True and first["state"] == "running"
    assert first["data"] == {"policy": {"order": 3, "up_delay_ms": 250, "retries": 2, "host_stop": "managedsave"}}
    second = run(worker, "set_policy", "hp-a", {"order": None, "retries": 0})
    assert second["data"]["policy"] == {"order": None, "up_delay_ms": 250, "retries": 0, "host_stop": "managedsave"}
    assert run(worker, "set_policy", "hp-a", {})["changed"] is False
    report = run(worker, "report")["data"]
    assert report["machines"][machine_uuid("hp-a")]["policy"] == second["data"]["policy"]


@pytest.mark.parametrize("args, field", [
    ({"order": 1001}, "args.order"),
    ({"retries": "2"}, "args.retries"),
    ({"up_delay_ms": -5}, "args.up_delay_ms"),
    ({"host_stop": "hibernate"}, "args.host_stop"),
])
def test_set_policy_refuses_bad_arguments(worker, args, field):
    reply = worker.request(worker.command("set_policy", "hp-a", args=args))
    assert reply["type"] == "request_error" and reply["reason"] == "invalid_field" and reply["field"] == field
    assert run(worker, "report")["data"]["machines"].get(machine_uuid("hp-a"), {}).get("policy") in (None, {
        "order": None, "up_delay_ms": 0, "retries": 2, "host_stop": "shutdown"})


def test_host_stop_in_reverse_order_with_outcomes_and_summary(worker):
    run(worker, "set_policy", "hp-a", {"order": 1})
    run(worker, "set_policy", "hp-b", {"order": 2, "host_stop": "destroy"})
    run(worker, "set_policy", "hp-c", {"host_stop": "none"})
    mark = worker.events.mark()
    result = run(worker, "host_stop", args={"timeout_ms": 1000})
    data = result["data"]
    assert data["type"] == "host_stop.summary" and data["total"] == 4
    assert data["counts"] == {"shut_down": 1, "forced": 0, "saved": 0, "destroyed": 1, "left_running": 1,
                              "already_off": 1, "failed": 0}
    published = [e.message for e in worker.events.snapshot(mark) if e.type == "host_stop.outcome"]
    assert [o["machine"] for o in published] == [o["machine"] for o in data["outcomes"]]
    names = [o["machine"] for o in published]
    # No order first (hp-c, hp-off), then order 2, then order 1.
    assert set(names[:2]) == {"hp-c", "hp-off"} and names[2:] == ["hp-b", "hp-a"]
    summary = worker.events.wait_for(lambda e: e.type == "host_stop.summary", start=mark, what="host_stop.summary")
    assert summary.topic == f"restore.{worker.worker_id}"
    assert {o["machine"]: o["action"] for o in published} == {
        "hp-a": "shut_down", "hp-b": "destroyed", "hp-c": "left_running", "hp-off": "already_off"}
    # The next restore brings back exactly what ran.
    restore = run(worker, "restore")["data"]
    assert restore["counts"]["started"] == 2 and restore["counts"]["already_running"] == 1
