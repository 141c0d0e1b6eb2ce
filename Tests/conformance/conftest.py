"""Fixtures of the conformance suite.

`schemas` needs nothing. `worker` and `worker_factory` start the binary named by ECP_WORKER_BIN
(see README.md); tests that use them are skipped when it is unset or not executable. ZeroMQ
(python3-zmq) is imported only by those fixtures, so the schema self-test runs without it.
"""

import os

import pytest

import requires

from ecp_schemas import SchemaSet


def worker_binary():
    """The worker binary from ECP_WORKER_BIN, or a pytest skip saying why there is none."""
    problem = requires.worker_problem()
    if problem:
        pytest.skip(problem)
    return os.environ["ECP_WORKER_BIN"].strip()


@pytest.fixture(scope="session")
def schemas():
    return SchemaSet()


@pytest.fixture(scope="session")
def worker_bin():
    return worker_binary()


def _finish(worker):
    """Stops a worker and lists what went wrong: exit code, missing worker.stopping, stream
    violations. Always closes its sockets."""
    problems = []
    try:
        if worker.proc is not None and worker.returncode is None:
            code = worker.stop()
            if code != 0:
                problems.append(f"exit code {code} after SIGTERM, expected 0")
            if worker.stopping_event() is None:
                problems.append("no worker.stopping published before exit")
        unreported = worker.events.violations[worker.events.reported:]
        if unreported:
            problems.append("event stream violations:\n    " + "\n    ".join(unreported[:50]))
    except AssertionError as error:
        problems.append(str(error))
    finally:
        tail = worker.output_tail()
        worker.close()
    if problems:
        return f"worker {worker.worker_id}: " + "\n".join(problems) + "\n" + tail
    return None


@pytest.fixture(scope="module")
def worker(worker_bin, schemas, tmp_path_factory):
    """One worker for a test module: started, ready, stopped with SIGTERM at the end (exit code
    0 and a published worker.stopping are asserted then)."""
    pytest.importorskip("zmq", reason="python3-zmq is required")
    from harness import Worker

    w = Worker(worker_bin, tmp_path_factory.mktemp("worker"), schemas)
    try:
        w.start()
    except BaseException:
        w.close()
        raise
    yield w
    problem = _finish(w)
    assert problem is None, problem


@pytest.fixture
def worker_factory(worker_bin, schemas, tmp_path):
    """Starts workers of their own for one test (extra keyword arguments go to harness.Worker);
    each is stopped and checked at the end of the test unless the test stopped it."""
    pytest.importorskip("zmq", reason="python3-zmq is required")
    from harness import Worker

    started = []

    def make(**kwargs):
        w = Worker(worker_bin, tmp_path / f"worker{len(started)}", schemas, **kwargs)
        started.append(w)
        w.start()
        return w

    yield make
    problems = [p for p in (_finish(w) for w in started) if p]
    assert not problems, "\n\n".join(problems)


@pytest.fixture(autouse=True)
def _event_stream_guard(request):
    """Fails the test during which the shared worker published a non-conforming message."""
    if "worker" not in request.fixturenames:
        yield
        return
    w = request.getfixturevalue("worker")
    before = len(w.events.violations)
    yield
    new = w.events.violations[before:]
    w.events.reported = len(w.events.violations)
    assert not new, "event stream violations during this test:\n    " + "\n    ".join(new)
