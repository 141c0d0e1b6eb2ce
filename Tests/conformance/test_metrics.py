"""The metrics endpoint: GET /metrics in Prometheus's text format, read by Prometheus's own
parser, by promtool, and by a real Prometheus server scraping the worker."""

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from harness import NODE_MACHINES, free_tcp_ports

MACHINE = next(iter(NODE_MACHINES))

PROMETHEUS = "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def scrape(port, path="/metrics"):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.headers.get("Content-Type"), response.read().decode("utf-8")


@pytest.fixture
def metrics_worker(worker_factory):
    port = free_tcp_ports(1)[0]
    w = worker_factory(extra_args=["--metrics", f"127.0.0.1:{port}"])
    deadline = time.monotonic() + 10
    while True:
        try:
            scrape(port)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    return w, port


def families(text):
    parser = pytest.importorskip("prometheus_client.parser", reason="python3-prometheus-client is required")
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def test_metrics_parse_with_prometheus_client(metrics_worker):
    w, port = metrics_worker
    w.execute(w.command("ping"))
    w.execute(w.command("status", MACHINE))
    content_type, text = scrape(port)
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    parsed = families(text)
    # The parser names counters without their _total suffix.
    for name, kind in [("ecp_worker_commands", "counter"), ("ecp_worker_command_duration_seconds", "histogram"),
                       ("ecp_worker_request_errors", "counter"), ("ecp_worker_messages_published", "counter"),
                       ("ecp_worker_in_flight_commands", "gauge"), ("ecp_worker_libvirt_connected", "gauge"),
                       ("ecp_worker_uptime_seconds", "gauge"), ("ecp_worker_state_commits", "counter"),
                       ("ecp_worker_restore_outcomes", "counter")]:
        assert name in parsed, f"{name} missing: {sorted(parsed)}"
        assert parsed[name].type == kind, (name, parsed[name].type)
        assert parsed[name].documentation, f"{name} has no help text"
    commands = {(s.labels["op"], s.labels["outcome"]): s.value
                for s in parsed["ecp_worker_commands"].samples if s.name == "ecp_worker_commands_total"}
    assert commands[("ping", "ok")] >= 1
    assert commands[("status", "ok")] >= 1
    published = {s.labels["topic_kind"]: s.value for s in parsed["ecp_worker_messages_published"].samples
                 if s.name.endswith("_total")}
    assert published["result"] >= 2 and published["ack"] >= 2, published


def test_metrics_other_paths_are_404(metrics_worker):
    _, port = metrics_worker
    for path in ["/", "/metric", "/metrics/extra", "/api"]:
        with pytest.raises(urllib.error.HTTPError) as err:
            scrape(port, path)
        assert err.value.code == 404


def test_promtool_check_metrics_is_clean(metrics_worker):
    if not os.access(PROMTOOL, os.X_OK):
        pytest.skip("promtool (Debian package prometheus) is not installed")
    w, port = metrics_worker
    w.execute(w.command("ping"))
    _, text = scrape(port)
    check = subprocess.run([PROMTOOL, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0 and not check.stdout.strip() and not check.stderr.strip(), \
        f"promtool check metrics:\n{check.stdout}{check.stderr}"


def query(api_port, expr):
    url = f"http://127.0.0.1:{api_port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_query(api_port, expr, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = query(api_port, expr)
            if result:
                return result
        except OSError:
            pass
        if time.monotonic() > deadline:
            return []
        time.sleep(0.5)


@pytest.fixture
def prometheus_server(metrics_worker, tmp_path):
    if not os.access(PROMETHEUS, os.X_OK):
        pytest.skip("prometheus (Debian package prometheus) is not installed")
    w, port = metrics_worker
    api_port = free_tcp_ports(1)[0]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: ecp-worker\n    scrape_interval: 1s\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{port}']\n", encoding="utf-8")
    log = open(tmp_path / "prometheus.log", "w")
    proc = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{api_port}"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        yield w, api_port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_prometheus_scrapes_the_worker(prometheus_server):
    w, api_port = prometheus_server
    w.execute(w.command("ping"))
    result = wait_query(api_port, 'ecp_worker_commands_total{op="ping",outcome="ok"} >= 1')
    assert result, "Prometheus never saw ecp_worker_commands_total for ping"
    assert result[0]["metric"]["job"] == "ecp-worker"
    up = wait_query(api_port, 'up{job="ecp-worker"} == 1')
    assert up, "the scrape target is not up"


def test_prometheus_sees_domain_metrics(prometheus_server):
    """Skipped while the worker samples no machine stats (its StatsSource gives none)."""
    w, api_port = prometheus_server
    _, text = scrape_port_of(w)
    if "libvirt_domain_info_vstate" not in text:
        pytest.skip("the worker publishes no machine stats yet (libvirt_domain_info_vstate absent)")
    result = wait_query(api_port, 'libvirt_domain_info_vstate{domain="%s"}' % MACHINE)
    assert result, f"Prometheus never saw libvirt_domain_info_vstate for {MACHINE}"
    assert "uuid" in result[0]["metric"]


def scrape_port_of(w):
    args = w.args
    address = args[args.index("--metrics") + 1]
    return scrape(int(address.rsplit(":", 1)[1]))


def test_metrics_none_leaves_the_port_closed(worker_factory):
    w = worker_factory(extra_args=["--metrics", "none"])
    w.execute(w.command("ping"))
    assert not any("metrics endpoint" in line for _, line in w.log_lines()), "no endpoint is opened"


def test_metrics_bind_conflict_logs_an_error_and_runs_on(worker_factory):
    import socket
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    try:
        port = holder.getsockname()[1]
        w = worker_factory(extra_args=["--metrics", f"127.0.0.1:{port}"])
        deadline = time.monotonic() + 10
        while not any("metrics endpoint cannot listen" in line for _, line in w.log_lines()):
            assert time.monotonic() < deadline, w.output_tail()
            time.sleep(0.05)
        assert w.ctl("ping")["ok"] is True
    finally:
        holder.close()
