"""`stats` (PROTOCOL.md): the op, one machine or all in one bulk libvirt call, with nulls for what
libvirt does not give, and the CPU share from the previous sample; and the `stats.<worker-id>`
topic, sampled at startup and every --stats-interval-ms.

Needs ECP_WORKER_BIN (the binary) and python3-zmq; see README.md.
"""

import json
import os
import time

import pytest

import requires  # noqa: E402

requires.worker_and_zmq()

from harness import machine_uuid  # noqa: E402

MACHINES = {"st-running": "running", "st-off": "shutoff", "st-paused": "paused"}
FIELDS = {"name", "uuid", "state", "cpu_time_ns", "cpu_percent", "vcpus", "memory_kib", "max_memory_kib",
          "block", "net"}


def stats(worker, machine=None):
    r = worker.execute(worker.command("stats", machine), "control").r
    assert r["ok"] is True, json.dumps(r.get("error"), sort_keys=True)
    return r


def by_name(data):
    return {m["name"]: m for m in data["machines"]}


@pytest.fixture
def quiet(worker_factory):
    # Periodic samples off: every sample in the test is one the test asked for.
    return worker_factory(machines=MACHINES, extra_args=["--stats-interval-ms", "0"])


def test_all_machines_fields_and_nulls(quiet):
    data = stats(quiet)["data"]
    assert set(data) == {"machines", "collected_at"}
    machines = by_name(data)
    assert set(machines) == set(MACHINES)
    for name, m in machines.items():
        assert set(m) == FIELDS, name
        assert m["uuid"] == machine_uuid(name)
        assert m["state"] == MACHINES[name]
        assert m["vcpus"] == 1 and m["max_memory_kib"] == 65536 and 0 < m["memory_kib"] <= 65536
        assert m["cpu_percent"] is None, "the first sample has nothing to compare with"
    assert isinstance(machines["st-running"]["cpu_time_ns"], int)
    # A shut-off machine has no CPU time: null, not 0.
    assert machines["st-off"]["cpu_time_ns"] is None


def test_cpu_percent_on_the_second_sample(quiet):
    stats(quiet)
    time.sleep(0.2)
    machines = by_name(stats(quiet)["data"])
    assert isinstance(machines["st-running"]["cpu_percent"], (int, float))
    assert machines["st-running"]["cpu_percent"] >= 0
    assert machines["st-off"]["cpu_percent"] is None


def test_one_machine_by_name_and_uuid(quiet):
    r = stats(quiet, "st-running")
    assert r["machine"] == "st-running"
    assert [m["name"] for m in r["data"]["machines"]] == ["st-running"]
    uuid = machine_uuid("st-off")
    for given in (uuid, uuid.upper(), uuid.replace("-", "")):
        machines = stats(quiet, given)["data"]["machines"]
        assert [m["name"] for m in machines] == ["st-off"], given
        assert machines[0]["cpu_time_ns"] is None and machines[0]["cpu_percent"] is None


def test_unknown_machine(quiet):
    r = quiet.execute(quiet.command("stats", "st-nobody"), "control").r
    assert r["ok"] is False
    assert r["error"]["code_name"] == "VIR_ERR_NO_DOMAIN"
    assert r["error"]["category"] == "not_found"


def test_no_topic_with_interval_zero(quiet):
    time.sleep(1.2)
    assert not quiet.events.find(lambda e: e.type == "stats")


def test_stats_topic(worker_factory):
    w = worker_factory(machines=MACHINES, extra_args=["--stats-interval-ms", "1000"])
    first = w.events.wait_for(lambda e: e.type == "stats", timeout=5, what="the startup stats sample")
    assert first.topic == f"stats.{w.worker_id}"
    second = w.events.wait_for(lambda e: e.type == "stats" and e.index > first.index, timeout=5,
                               what="the second stats sample")
    machines = by_name(second.message)
    assert set(machines) == set(MACHINES)
    assert isinstance(machines["st-running"]["cpu_percent"], (int, float))
    assert machines["st-off"]["cpu_time_ns"] is None
    assert second.message["collected_at"] > first.message["collected_at"]
