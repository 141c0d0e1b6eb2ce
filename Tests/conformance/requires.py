"""What the tests that run the worker need: a worker binary in ECP_WORKER_BIN and python3-zmq.
A module that lacks them is skipped with the reason, at import (`worker_and_zmq`) or in a
fixture (`worker_binary` in conftest.py)."""

import os

import pytest


def worker_problem():
    """Why ECP_WORKER_BIN cannot be run, or None."""
    path = os.environ.get("ECP_WORKER_BIN", "").strip()
    if not path:
        return ("ECP_WORKER_BIN is not set: point it at the ecp-worker binary "
                "(e.g. ECP_WORKER_BIN=$PWD/.build/debug/ecp-worker) to run the conformance tests")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"ECP_WORKER_BIN={path!r} is not an executable file"
    return None


def worker_and_zmq():
    """Skips the importing module unless the worker and python3-zmq are there; returns zmq."""
    problem = worker_problem()
    if problem:
        pytest.skip(problem, allow_module_level=True)
    return pytest.importorskip("zmq", reason="python3-zmq is required")
