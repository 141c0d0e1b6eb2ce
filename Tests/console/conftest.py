"""Fixtures of the console's browser suite: two workers on libvirt's test driver, the console
following both, and headless Chromium. The binaries come from ECP_WORKER_BIN and
ECP_CONSOLE_BIN (default: the debug build); Chromium, chromedriver and python3-selenium from
Debian (scripts/install-deps.sh --test). Screenshots go to $ECP_TEST_ARTIFACTS, else
.build/console-artifacts."""

import os
import shutil

import pytest

import support

#: The hostile name: shown as text, never run.
HOSTILE = "<img src=x onerror=alert(1)>"

MACHINES_A = {"web1": "shutoff", "web2": "shutoff", "db1": "running", "cache1": "running"}
MACHINES_B = {"app1": "running", "app2": "paused", "batch1": "shutoff", HOSTILE: "running"}


def _require():
    missing = []
    for variable, name in (("ECP_WORKER_BIN", "ecp-worker"), ("ECP_CONSOLE_BIN", "ecp-console")):
        if support.binary(variable, name) is None:
            missing.append(f"{name} (build it: swift build --product {name}, or set {variable})")
    for path in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        if not os.path.exists(path):
            missing.append(path + " (Debian: chromium, chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("python3-selenium")
    return missing


@pytest.fixture(scope="session")
def binaries():
    missing = _require()
    if missing:
        if os.environ.get("CI") == "true":
            pytest.fail("missing for the console suite: " + "; ".join(missing))
        pytest.skip("missing for the console suite: " + "; ".join(missing))
    return support.binary("ECP_WORKER_BIN", "ecp-worker"), support.binary("ECP_CONSOLE_BIN", "ecp-console")


@pytest.fixture(scope="session")
def artifacts():
    path = support.artifacts_dir()
    print(f"\nconsole suite: screenshots in {path}")
    return path


@pytest.fixture(scope="module")
def workers(binaries, tmp_path_factory):
    """Two workers: host-a (no periodic samples, so that an undefined machine stays shown) and
    host-b (a sample every second), both with 200 ms heartbeats."""
    worker_bin, _ = binaries
    base = tmp_path_factory.mktemp("workers")
    a = support.Worker(worker_bin, base / "a", "host-a", MACHINES_A, stats_interval_ms=0)
    b = support.Worker(worker_bin, base / "b", "host-b", MACHINES_B, stats_interval_ms=1000)
    started = []
    try:
        for w in (a, b):
            w.start()
            started.append(w)
        yield a, b
    finally:
        for w in started + [x for x in (a, b) if x not in started]:
            w.stop()


@pytest.fixture(scope="module")
def console(binaries, workers, tmp_path_factory):
    _, console_bin = binaries
    c = support.Console(console_bin, tmp_path_factory.mktemp("console"), workers)
    c.start()
    yield c
    code = c.stop()
    assert code == 0, f"the console exited with {code} after SIGTERM\n{c.log_text()}"


@pytest.fixture(scope="module")
def driver(binaries):
    d = support.make_driver()
    yield d
    d.quit()


@pytest.fixture
def shot(driver, artifacts, request):
    """Saves a screenshot of the page as <test>-<name>.png and returns its path."""
    def take(name):
        path = artifacts / f"{request.node.name}-{name}.png"
        driver.save_screenshot(str(path))
        return path
    return take


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(support.ROOT / "Tests" / "console" / "__pycache__", ignore_errors=True)
