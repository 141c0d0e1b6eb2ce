"""Self-test of schemas/: the protocol's own examples (PROTOCOL.md, with the envelope fields
added) must validate, and a set of broken messages must be rejected. Needs no worker.

    /usr/bin/python3 -m pytest Tests/conformance/test_schemas.py -q
"""

import copy
import json
import pathlib

import pytest

from ecp_schemas import SCHEMA_DIR, SCHEMA_FOR_TYPE, TOPIC_TYPES, SchemaSet, expected_topic, strip_envelope

RUN = "0b5e8f0e-4c4e-4a8b-9d55-5d1f3f7b9a10"
UUID_WEB1 = "6695eb01-f6a4-8304-79aa-97f2502e193f"
UUID_WEB2 = "6695eb01-f6a4-8304-79aa-97f2502e1940"
UUID_WEB9 = "6695eb01-f6a4-8304-79aa-97f2502e1999"
RESTORE_ID = "2f1d6c8e-3a57-4f0e-8a1b-6b2c1d0e9f11"


@pytest.fixture(scope="module")
def schemas():
    return SchemaSet()


_seq = [0]


def env(body, **overrides):
    """`body` with the envelope fields of PROTOCOL.md's "Every message the worker sends"."""
    _seq[0] += 1
    message = {"v": 1, "worker": "host1", "run": RUN, "seq": _seq[0], "ts": "2026-11-25T20:31:07.123Z"}
    message.update(copy.deepcopy(body))
    message.update(overrides)
    return message


# --- the protocol's examples, verbatim where they are complete ---------------------------------

COMMAND = {"v": 1, "id": "7f3c-12", "op": "start", "machine": "web1", "args": {}, "timeout_ms": 30000}

ACCEPTED = {"type": "accepted", "id": "7f3c-12", "op": "start", "machine": "web1"}

RESULT_OK = {"type": "result", "id": "7f3c-12", "op": "start", "machine": "web1", "ok": True,
             "changed": True, "state": "running", "data": {}, "duration_ms": 3.2}

E2LIBVIRTERROR = {
    "type": "E2LibvirtError", "id": "7f3c-13", "op": "start", "machine": "web9",
    "code": 42, "code_name": "VIR_ERR_NO_DOMAIN",
    "domain": 12, "domain_name": "VIR_FROM_TEST",
    "level": "error", "message": "Domain not found",
    "str1": "Domain not found", "str2": None, "str3": None, "int1": -1, "int2": -1,
    "category": "not_found", "retryable": False,
    "summary": "test driver: cannot start machine 'web9': it does not exist (VIR_ERR_NO_DOMAIN)",
}

# The example's `"error": {"type": "E2LibvirtError", "...": "..."}`, completed with the record above.
RESULT_FAILED = {"type": "result", "id": "7f3c-13", "op": "start", "machine": "web9", "ok": False,
                 "error": E2LIBVIRTERROR, "duration_ms": 0.4}

REQUEST_ERROR = {"type": "request_error", "id": "7f3c-14", "reason": "invalid_field", "field": "machine",
                 "detail": "machine must be a name or UUID, got an empty string"}

STATE_TABLE = {"version": 1, "worker": "host1", "saved_at": "2026-11-25T20:31:07.123Z",
               "machines": {UUID_WEB1: {"name": "web1", "desired": "running", "observed": "running",
                                        "updated_at": "2026-11-25T20:31:07.120Z"}}}

RESTORE_OUTCOME = {"type": "restore.outcome", "restore_id": RESTORE_ID, "trigger": "startup", "machine": "web1",
                   "uuid": UUID_WEB1, "desired": "running", "found": "shutoff", "action": "started",
                   "duration_ms": 812.0}

RESTORE_SUMMARY = {"type": "restore.summary", "restore_id": RESTORE_ID, "trigger": "startup", "table": "present",
                   "state_file": "/var/lib/ecp/state.json", "total": 3,
                   "counts": {"started": 1, "resumed": 0, "already_running": 1, "missing": 1, "skipped": 0,
                              "failed": 0},
                   "duration_ms": 815.5}

# --- built from the protocol's field lists ------------------------------------------------------

MACHINE_EVENT = {"type": "machine.event", "machine": "web1", "uuid": UUID_WEB1, "event": "started",
                 "detail": "booted", "state": "running"}

HEARTBEAT = {"type": "heartbeat", "uptime_s": 12.5, "libvirt": "connected", "in_flight": 0, "processed": 7,
             "failed": 1, "interval_ms": 5000, "state_table": "saved"}

WORKER_STARTED = {"type": "worker.started", "version": "1.0.0", "libvirt_uri": "qemu:///system",
                  "endpoints": {"commands": ">tcp://127.0.0.1:5555", "control": "@tcp://127.0.0.1:5557",
                                "events": "@tcp://127.0.0.1:5556"}}

WORKER_STOPPING = {"type": "worker.stopping", "reason": "SIGTERM"}

STATS_RUNNING = {"name": "web1", "uuid": UUID_WEB1, "state": "running", "cpu_time_ns": 18846957000,
                 "cpu_percent": 12.5, "vcpus": 2, "memory_kib": 1048576, "max_memory_kib": 2097152,
                 "block": [{"name": "vda", "rd_bytes": 1024, "wr_bytes": 2048, "rd_reqs": 3, "wr_reqs": 4, "errs": 0}],
                 "net": [{"name": "vnet0", "rx_bytes": 10, "tx_bytes": 20, "rx_pkts": 1, "tx_pkts": 2, "rx_errs": 0,
                          "tx_errs": 0, "rx_drop": 0, "tx_drop": 0}]}
STATS_SHUTOFF = dict(STATS_RUNNING, name="db1", state="shutoff", cpu_time_ns=None, cpu_percent=None, block=[],
                     net=[])
STATS_DATA = {"machines": [STATS_RUNNING, STATS_SHUTOFF], "collected_at": "2026-11-25T20:31:07.123Z"}
STATS = dict(STATS_DATA, type="stats")

STATUS_DATA = {"state": "running", "reason": "booted", "vcpus": 2, "memory_kib": 1048576,
               "max_memory_kib": 2097152, "cpu_time_ns": 123456789, "persistent": True, "autostart": False}


# A replay page: the messages exactly as published (envelope included), each with its topic.
REPLAYED = [
    {"topic": "ack.host1", "message": dict(ACCEPTED, v=1, worker="host1", run=RUN, seq=41, ts="2026-11-25T20:31:07.120Z")},
    {"topic": "result.host1", "message": dict(RESULT_OK, v=1, worker="host1", run=RUN, seq=42,
                                              ts="2026-11-25T20:31:07.123Z")},
    {"topic": "error.libvirt.host1", "message": dict(E2LIBVIRTERROR, v=1, worker="host1", run=RUN, seq=43,
                                                     ts="2026-11-25T20:31:07.124Z")},
    {"topic": "heartbeat.host1", "message": dict(HEARTBEAT, v=1, worker="host1", run=RUN, seq=44,
                                                 ts="2026-11-25T20:31:07.125Z")},
]

REPLAY_DATA = {"run": RUN, "messages": REPLAYED, "next_seq": 44, "more": False, "oldest_seq": 1, "truncated": False}


def result(op, machine=None, **fields):
    body = {"type": "result", "id": f"r-{op}", "op": op, "ok": True, "duration_ms": 1.0}
    if machine is not None:
        body["machine"] = machine
    body.update(fields)
    return body


GOOD_MESSAGES = {
    "accepted": ACCEPTED,
    "accepted without machine": {"type": "accepted", "id": "p-1", "op": "ping"},
    "accepted with null machine": {"type": "accepted", "id": "p-1", "op": "list", "machine": None},
    "result ok": RESULT_OK,
    "result failed (E2LibvirtError inline)": RESULT_FAILED,
    "result duplicate": dict(RESULT_OK, duplicate=True),
    "result not saved": dict(RESULT_OK, saved=False),
    "result saved (second edition)": dict(RESULT_OK, saved=True),
    "result timeout": result("shutdown", "web1", ok=False,
                             error={"type": "timeout", "message": "shutdown of web1 took longer than 5000 ms",
                                    "timeout_ms": 5000}),
    "result other error": result("start", "web1", ok=False,
                                 error={"type": "state_table", "message": "could not write the state table"}),
    "result idempotent": result("destroy", "web1", changed=False, state="shutoff"),
    "result start without data": result("start", "web1", changed=True, state="running"),
    "result start by uuid": result("start", UUID_WEB1, changed=False, state="running", data={}),
    "result shutdown": result("shutdown", "web1", changed=True, state="shutoff", data={}),
    "result reboot": result("reboot", "web1", changed=True, state="running"),
    "result suspend": result("suspend", "web1", changed=True, state="paused"),
    "result resume": result("resume", "web1", changed=False, state="running"),
    "result undefine": result("undefine", "web1", changed=True),
    "result undefine with state": result("undefine", "web1", changed=True, state="running", data={}),
    "result define": result("define", changed=True, state="shutoff", data={"name": "web2", "uuid": UUID_WEB2}),
    "result status": result("status", "web1", state="running", data=STATUS_DATA),
    "result status numeric reason": result("status", "web1", state="paused",
                                           data=dict(STATUS_DATA, state="paused", reason=1)),
    "result list": result("list", data={"machines": [{"name": "web1", "uuid": UUID_WEB1, "state": "running"},
                                                     {"name": "web2", "uuid": UUID_WEB2, "state": "shutoff"}]}),
    "result list empty": result("list", data={"machines": []}),
    "result ping": result("ping", machine=None, data={"uptime_s": 42.125}),
    "result ping null machine": dict(result("ping", data={"uptime_s": 0}), machine=None),
    "result restore": result("restore", data=dict(RESTORE_SUMMARY, trigger="command")),
    "result restore (summary with envelope)": result("restore", data=env(RESTORE_SUMMARY)),
    "result report": result("report", data={"restore": RESTORE_SUMMARY, "outcomes": [RESTORE_OUTCOME],
                                            "machines": STATE_TABLE["machines"]}),
    "result report before any restore": result("report", data={"restore": None, "outcomes": [], "machines": {}}),
    "result replay": result("replay", data=REPLAY_DATA),
    "result replay, empty page": result("replay", data=dict(REPLAY_DATA, messages=[], next_seq=44, oldest_seq=45)),
    "result replay, truncated, more": result("replay", data=dict(REPLAY_DATA, messages=REPLAYED[:2], next_seq=42,
                                                                 more=True, oldest_seq=41, truncated=True)),
    "result replay, filtered out": result("replay", data=dict(REPLAY_DATA, messages=REPLAYED[3:])),
    "result replay refused": result("replay", ok=False, error={"type": "internal", "message": "no ring"}),
    "E2LibvirtError": E2LIBVIRTERROR,
    "E2LibvirtError outside a command": {k: v for k, v in E2LIBVIRTERROR.items() if k not in ("id", "op", "machine")},
    "E2LibvirtError system error, unknown code": dict(
        E2LIBVIRTERROR, code=250, code_name="VIR_ERR_UNKNOWN_250", domain=99, domain_name="VIR_FROM_UNKNOWN_99",
        level="warning", str1=None, int1=2, category="connection", retryable=True),
    "request_error": REQUEST_ERROR,
    "request_error without id": {"type": "request_error", "reason": "malformed_json",
                                 "detail": "Expecting ',' delimiter: line 1 column 12"},
    "restore.outcome": RESTORE_OUTCOME,
    "restore.outcome missing": dict(RESTORE_OUTCOME, found=None, action="missing"),
    "restore.outcome missing without found": {k: v for k, v in dict(RESTORE_OUTCOME, action="missing").items()
                                              if k != "found"},
    "restore.outcome failed": dict(RESTORE_OUTCOME, action="failed",
                                   error={k: v for k, v in E2LIBVIRTERROR.items() if k not in ("id", "op")}),
    "restore.summary": RESTORE_SUMMARY,
    "restore.summary corrupt": dict(RESTORE_SUMMARY, table="corrupt", total=0,
                                    counts={k: 0 for k in RESTORE_SUMMARY["counts"]},
                                    error={"type": "state_table",
                                           "message": "state table is corrupt; kept as state.json.corrupt-1"}),
    "machine.event": MACHINE_EVENT,
    "machine.event numeric detail": dict(MACHINE_EVENT, event="stopped", detail=2, state="shutoff"),
    "machine.event undefined without state": {k: v for k, v in dict(MACHINE_EVENT, event="undefined",
                                                                    detail="removed").items() if k != "state"},
    "machine.event undefined, state null": dict(MACHINE_EVENT, event="undefined", detail="removed", state=None),
    "heartbeat": HEARTBEAT,
    "heartbeat disconnected": dict(HEARTBEAT, libvirt="disconnected"),
    "heartbeat unsaved": dict(HEARTBEAT, state_table="unsaved", unsaved_since="2026-11-25T20:31:07.123Z"),
    "worker.started": WORKER_STARTED,
    "worker.started, commands off": dict(WORKER_STARTED, endpoints=dict(WORKER_STARTED["endpoints"], commands=None)),
    "worker.stopping": WORKER_STOPPING,
    "stats": STATS,
    "stats, no machines": dict(STATS, machines=[]),
    "stats, first sample": dict(STATS, machines=[dict(STATS_RUNNING, cpu_percent=None)]),
    "stats result, all": result("stats", data=STATS_DATA),
    "stats result, one": result("stats", "web1", data=dict(STATS_DATA, machines=[STATS_RUNNING])),
}


@pytest.mark.parametrize("name", sorted(GOOD_MESSAGES))
def test_protocol_example_validates(schemas, name):
    message = env(GOOD_MESSAGES[name])
    schemas.check_message(message)
    assert expected_topic(message["type"], "host1") is not None


GOOD_COMMANDS = {
    "protocol example": COMMAND,
    "ping": {"v": 1, "id": "p", "op": "ping"},
    "list": {"v": 1, "id": "l.1", "op": "list", "args": {}},
    "start paused": {"v": 1, "id": "s:1", "op": "start", "machine": "web1", "args": {"paused": True}},
    "start by uuid": {"v": 1, "id": "s-2", "op": "start", "machine": UUID_WEB1},
    "shutdown wait force": {"v": 1, "id": "sd", "op": "shutdown", "machine": "web1",
                            "args": {"wait_ms": 10000, "force": True}},
    "define": {"v": 1, "id": "d", "op": "define", "args": {"xml": "<domain type='test'/>"}},
    "unknown fields": {"v": 1, "id": "x" * 128, "op": "status", "machine": "web1", "priority": 3,
                       "args": {"future": [1, 2]}},
    "restore": {"v": 1, "id": "rs", "op": "restore"},
    "report": {"v": 1, "id": "rp", "op": "report"},
    "stats of every machine": {"v": 1, "id": "st", "op": "stats"},
    "stats of one machine": {"v": 1, "id": "st", "op": "stats", "machine": "web1"},
    "replay": {"v": 1, "id": "rl", "op": "replay"},
    "replay all args": {"v": 1, "id": "rl", "op": "replay",
                        "args": {"since_seq": 0, "limit": 5000, "topics": ["result.", "error.libvirt."]}},
    "replay limit 1": {"v": 1, "id": "rl", "op": "replay", "args": {"since_seq": 123456789, "limit": 1}},
    "replay no topics": {"v": 1, "id": "rl", "op": "replay", "args": {"topics": []}},
}


@pytest.mark.parametrize("name", sorted(GOOD_COMMANDS))
def test_command_validates(schemas, name):
    schemas.check("command.json", GOOD_COMMANDS[name])


def test_state_table_example_validates(schemas):
    schemas.check("state_table.json", STATE_TABLE)
    schemas.check("state_table.json", dict(STATE_TABLE, machines={}))
    # the worker may keep fields of its own in an entry
    entry = dict(STATE_TABLE["machines"][UUID_WEB1], desired_from="command")
    schemas.check("state_table.json", dict(STATE_TABLE, machines={UUID_WEB1: entry}))


# --- broken messages: each must be rejected -----------------------------------------------------

def without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


BAD_MESSAGES = {
    "result missing ok": without(RESULT_OK, "ok"),
    "result missing duration_ms": without(RESULT_OK, "duration_ms"),
    "result ok with error": dict(RESULT_OK, error=E2LIBVIRTERROR),
    "result failed without error": without(dict(RESULT_FAILED), "error"),
    "result start without state": without(RESULT_OK, "state"),
    "result start without changed": without(RESULT_OK, "changed"),
    "result bad state": dict(RESULT_OK, state="off"),
    "result unknown field": dict(RESULT_OK, extra=1),
    "result start with data": dict(RESULT_OK, data={"x": 1}),
    "result status without data": result("status", "web1", state="running"),
    "result status data incomplete": result("status", "web1", state="running", data=without(STATUS_DATA, "vcpus")),
    "result define without uuid": result("define", changed=True, data={"name": "web2"}),
    "result list bad item": result("list", data={"machines": [{"name": "web1", "state": "running"}]}),
    "result ping without data": result("ping"),
    "result bad id": dict(RESULT_OK, id="has space"),
    "result duplicate not boolean": dict(RESULT_OK, duplicate="yes"),
    "result saved not boolean": dict(RESULT_OK, saved="no"),
    "result failed with saved": dict(RESULT_FAILED, saved=False),
    "result inline error bad category": dict(RESULT_FAILED, error=dict(E2LIBVIRTERROR, category="oops")),
    "result inline error missing str2": dict(RESULT_FAILED, error=without(E2LIBVIRTERROR, "str2")),
    "result timeout without timeout_ms": result("start", "web1", ok=False, error={"type": "timeout", "message": "t"}),
    "result other error without message": result("start", "web1", ok=False, error={"type": "internal"}),
    "result replay without data": result("replay"),
    "result replay data without next_seq": result("replay", data=without(REPLAY_DATA, "next_seq")),
    "result replay data without truncated": result("replay", data=without(REPLAY_DATA, "truncated")),
    "result replay data without run": result("replay", data=without(REPLAY_DATA, "run")),
    "result replay data extra field": result("replay", data=dict(REPLAY_DATA, extra=1)),
    "result replay more not boolean": result("replay", data=dict(REPLAY_DATA, more="no")),
    "result replay negative next_seq": result("replay", data=dict(REPLAY_DATA, next_seq=-1)),
    "result replay oldest_seq 0": result("replay", data=dict(REPLAY_DATA, oldest_seq=0)),
    "result replay run not a uuid": result("replay", data=dict(REPLAY_DATA, run="run-1")),
    "result replay messages not an array": result("replay", data=dict(REPLAY_DATA, messages={})),
    "result replay item without topic": result("replay", data=dict(REPLAY_DATA, messages=[
        {"message": REPLAYED[0]["message"]}])),
    "result replay item extra field": result("replay", data=dict(REPLAY_DATA, messages=[
        dict(REPLAYED[0], seq=41)])),
    "result replay message without envelope": result("replay", data=dict(REPLAY_DATA, messages=[
        {"topic": "result.host1", "message": RESULT_OK}])),
    "result replay message breaks its schema": result("replay", data=dict(REPLAY_DATA, messages=[
        {"topic": "result.host1", "message": without(REPLAYED[1]["message"], "ok")}])),
    "result replay message unknown type": result("replay", data=dict(REPLAY_DATA, messages=[
        {"topic": "x.host1", "message": dict(REPLAYED[3]["message"], type="gossip")}])),
    "result replay holds a replay result": result("replay", data=dict(REPLAY_DATA, messages=[
        {"topic": "result.host1", "message": env(result("replay", data=dict(REPLAY_DATA, messages=[])))}])),
    "accepted replay": dict(ACCEPTED, op="replay", machine=None),
    "E2LibvirtError bad category": dict(E2LIBVIRTERROR, category="not-found"),
    "E2LibvirtError bad level": dict(E2LIBVIRTERROR, level="fatal"),
    "E2LibvirtError bad code_name": dict(E2LIBVIRTERROR, code_name="NO_DOMAIN"),
    "E2LibvirtError lower-case code_name": dict(E2LIBVIRTERROR, code_name="VIR_ERR_no_domain"),
    "E2LibvirtError bad domain_name": dict(E2LIBVIRTERROR, domain_name="VIR_ERR_TEST"),
    "E2LibvirtError str1 number": dict(E2LIBVIRTERROR, str1=5),
    "E2LibvirtError int1 null": dict(E2LIBVIRTERROR, int1=None),
    "E2LibvirtError retryable missing": without(E2LIBVIRTERROR, "retryable"),
    "E2LibvirtError summary missing": without(E2LIBVIRTERROR, "summary"),
    "request_error bad reason": dict(REQUEST_ERROR, reason="bad_json"),
    "request_error missing detail": without(REQUEST_ERROR, "detail"),
    "accepted missing op": without(ACCEPTED, "op"),
    "accepted with ok": dict(ACCEPTED, ok=True),
    "restore.outcome bad action": dict(RESTORE_OUTCOME, action="stopped"),
    "restore.outcome failed without error": dict(RESTORE_OUTCOME, action="failed"),
    "restore.outcome started without found": without(RESTORE_OUTCOME, "found"),
    "restore.summary bad table": dict(RESTORE_SUMMARY, table="missing"),
    "restore.summary counts incomplete": dict(RESTORE_SUMMARY, counts=without(RESTORE_SUMMARY["counts"], "failed")),
    "machine.event bad event": dict(MACHINE_EVENT, event="rebooted"),
    "machine.event started without state": without(MACHINE_EVENT, "state"),
    "machine.event defined without state": without(dict(MACHINE_EVENT, event="defined", detail="added"), "state"),
    "machine.event started, state null": dict(MACHINE_EVENT, state=None),
    "heartbeat bad libvirt": dict(HEARTBEAT, libvirt="maybe"),
    "heartbeat negative in_flight": dict(HEARTBEAT, in_flight=-1),
    "heartbeat without state_table": without(HEARTBEAT, "state_table"),
    "heartbeat bad state_table": dict(HEARTBEAT, state_table="dirty"),
    "heartbeat unsaved without unsaved_since": dict(HEARTBEAT, state_table="unsaved"),
    "heartbeat saved with unsaved_since": dict(HEARTBEAT, unsaved_since="2026-11-25T20:31:07.123Z"),
    "heartbeat unsaved_since not a timestamp": dict(HEARTBEAT, state_table="unsaved", unsaved_since="yesterday"),
    "worker.started without endpoints": without(WORKER_STARTED, "endpoints"),
    "stats without collected_at": without(STATS, "collected_at"),
    "stats machine without cpu_time_ns": dict(STATS, machines=[without(STATS_RUNNING, "cpu_time_ns")]),
    "stats vcpus a string": dict(STATS, machines=[dict(STATS_RUNNING, vcpus="2")]),
    "stats negative cpu_percent": dict(STATS, machines=[dict(STATS_RUNNING, cpu_percent=-1)]),
    "stats block without errs": dict(STATS, machines=[dict(STATS_RUNNING, block=[without(STATS_RUNNING["block"][0], "errs")])]),
    "stats result without data": result("stats"),
    "stats result with a stray field": result("stats", data=dict(STATS_DATA, extra=1)),
    "worker.stopping without reason": without(WORKER_STOPPING, "reason"),
    "unknown type": {"type": "result.v2", "id": "x"},
}


@pytest.mark.parametrize("name", sorted(BAD_MESSAGES))
def test_broken_message_is_rejected(schemas, name):
    problems = schemas.message_errors(env(BAD_MESSAGES[name]))
    assert problems, f"{name}: accepted, but must be rejected"


BAD_ENVELOPES = {
    "v 2": {"v": 2},
    "seq 0": {"seq": 0},
    "seq string": {"seq": "1"},
    "ts without ms": {"ts": "2026-11-25T20:31:07Z"},
    "ts with offset": {"ts": "2026-11-25T20:31:07.123+00:00"},
    "ts with microseconds": {"ts": "2026-11-25T20:31:07.123456Z"},
    "run not a uuid": {"run": "run-1"},
    "empty worker": {"worker": ""},
}


@pytest.mark.parametrize("name", sorted(BAD_ENVELOPES))
def test_broken_envelope_is_rejected(schemas, name):
    assert schemas.message_errors(env(RESULT_OK, **BAD_ENVELOPES[name]))


@pytest.mark.parametrize("missing", ["v", "type", "worker", "run", "seq", "ts"])
def test_envelope_field_required(schemas, missing):
    assert schemas.message_errors(without(env(HEARTBEAT), missing))


BAD_COMMANDS = {
    "id with space": dict(COMMAND, id="7f3c 12"),
    "id empty": dict(COMMAND, id=""),
    "id too long": dict(COMMAND, id="x" * 129),
    "id number": dict(COMMAND, id=12),
    "missing id": without(COMMAND, "id"),
    "missing op": without(COMMAND, "op"),
    "unknown op": dict(COMMAND, op="explode"),
    "start without machine": without(COMMAND, "machine"),
    "empty machine": dict(COMMAND, machine=""),
    "machine number": dict(COMMAND, machine=5),
    "args not an object": dict(COMMAND, args=[]),
    "paused not boolean": dict(COMMAND, args={"paused": "yes"}),
    "wait_ms not integer": {"v": 1, "id": "a", "op": "shutdown", "machine": "w", "args": {"wait_ms": "5s"}},
    "define without xml": {"v": 1, "id": "a", "op": "define", "args": {}},
    "define without args": {"v": 1, "id": "a", "op": "define"},
    "timeout_ms string": dict(COMMAND, timeout_ms="30s"),
    "timeout_ms zero": dict(COMMAND, timeout_ms=0),
    "v 2": dict(COMMAND, v=2),
    "not an object": [COMMAND],
    "replay limit 0": {"v": 1, "id": "rl", "op": "replay", "args": {"limit": 0}},
    "replay limit 5001": {"v": 1, "id": "rl", "op": "replay", "args": {"limit": 5001}},
    "replay limit string": {"v": 1, "id": "rl", "op": "replay", "args": {"limit": "10"}},
    "replay since_seq -1": {"v": 1, "id": "rl", "op": "replay", "args": {"since_seq": -1}},
    "replay since_seq string": {"v": 1, "id": "rl", "op": "replay", "args": {"since_seq": "x"}},
    "replay since_seq fraction": {"v": 1, "id": "rl", "op": "replay", "args": {"since_seq": 1.5}},
    "replay topics string": {"v": 1, "id": "rl", "op": "replay", "args": {"topics": "result."}},
    "replay topics with a number": {"v": 1, "id": "rl", "op": "replay", "args": {"topics": ["result.", 5]}},
}


@pytest.mark.parametrize("name", sorted(BAD_COMMANDS))
def test_broken_command_is_rejected(schemas, name):
    assert schemas.errors("command.json", BAD_COMMANDS[name]), f"{name}: accepted, but must be rejected"


BAD_STATE_TABLES = {
    "key not a uuid": dict(STATE_TABLE, machines={"web1": STATE_TABLE["machines"][UUID_WEB1]}),
    "bad desired": dict(STATE_TABLE, machines={UUID_WEB1: dict(STATE_TABLE["machines"][UUID_WEB1], desired="on")}),
    "entry missing name": dict(STATE_TABLE, machines={UUID_WEB1: without(STATE_TABLE["machines"][UUID_WEB1], "name")}),
    "version 2": dict(STATE_TABLE, version=2),
    "missing machines": without(STATE_TABLE, "machines"),
}


@pytest.mark.parametrize("name", sorted(BAD_STATE_TABLES))
def test_broken_state_table_is_rejected(schemas, name):
    assert schemas.errors("state_table.json", BAD_STATE_TABLES[name])


# --- the folder itself --------------------------------------------------------------------------

def test_every_type_has_a_schema_and_a_topic(schemas):
    envelope_types = set(schemas.by_file["envelope.json"]["$defs"]["message_type"]["enum"])
    assert envelope_types == set(SCHEMA_FOR_TYPE)
    assert envelope_types == set().union(*TOPIC_TYPES.values())
    for message_type, file_name in SCHEMA_FOR_TYPE.items():
        fields = schemas.by_file[file_name]["$defs"]["fields"]
        assert fields["properties"]["type"] == {"const": message_type}, file_name


def test_every_schema_is_draft_2020_12_with_an_id(schemas):
    expected = {"command.json", "envelope.json", "accepted.json", "result.json", "e2libvirterror.json",
                "request_error.json", "restore_outcome.json", "restore_summary.json", "machine_event.json",
                "heartbeat.json", "worker_started.json", "worker_stopping.json", "state_table.json", "stats.json",
                "host_stop_outcome.json", "host_stop_summary.json"}
    assert set(schemas.by_file) == expected
    for name, schema in schemas.by_file.items():
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema", name
        assert schema["$id"] == f"https://ecp.example/schemas/v1/{name}", name


def test_readme_lists_every_schema(schemas):
    readme = (pathlib.Path(SCHEMA_DIR) / "README.md").read_text(encoding="utf-8")
    for name in schemas.by_file:
        assert f"`{name}`" in readme, name


def test_published_error_equals_inline_record(schemas):
    published = env(E2LIBVIRTERROR)
    schemas.check_message(published)
    schemas.check_message(env(dict(RESULT_FAILED, error=strip_envelope(published))))


def test_examples_are_json_round_trip_stable():
    for body in GOOD_MESSAGES.values():
        assert json.loads(json.dumps(body)) == body
