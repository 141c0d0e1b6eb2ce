"""Real processes for the console's browser tests: `ecp-worker`s on libvirt's test driver, the
`ecp-console` following them, a control client that talks to a worker behind the console's back,
and headless Chromium driven by Selenium (all from Debian's packages)."""

import json
import os
import pathlib
import secrets
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from xml.sax.saxutils import escape

import zmq

ROOT = pathlib.Path(__file__).resolve().parents[2]
TEST_NS = "http://libvirt.org/schemas/domain/test/1.0"
RUNSTATE = {"running": 1, "paused": 3, "shutoff": 5}


def binary(variable, name):
    """An executable from `variable`, else the debug build's."""
    path = os.environ.get(variable, "").strip() or str(ROOT / ".build" / "debug" / name)
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def artifacts_dir():
    """Where screenshots go: $ECP_TEST_ARTIFACTS, else .build/console-artifacts."""
    path = pathlib.Path(os.environ.get("ECP_TEST_ARTIFACTS", "") or ROOT / ".build" / "console-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def free_ports(count):
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


def machine_uuid(worker_id, name):
    """A stable UUID per worker and machine name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:ecp:console-test:{worker_id}:{name}"))


def node_xml(worker_id, machines):
    """A test-driver node file holding `machines` (name -> state)."""
    parts = [f"<node xmlns:test='{TEST_NS}'>\n"]
    for name, state in machines.items():
        runstate = f"    <test:runstate>{RUNSTATE[state]}</test:runstate>\n" if state != "running" else ""
        parts.append(
            "  <domain type='test'>\n"
            f"    <name>{escape(name)}</name>\n"
            f"    <uuid>{machine_uuid(worker_id, name)}</uuid>\n"
            "    <memory unit='KiB'>262144</memory>\n"
            "    <currentMemory unit='KiB'>262144</currentMemory>\n"
            "    <vcpu>1</vcpu>\n"
            "    <os><type>hvm</type></os>\n"
            f"{runstate}"
            "  </domain>\n")
    parts.append("</node>\n")
    return "".join(parts)


def clean_env():
    """This environment without ECP_* variables (the worker reads options from them)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("ECP_")}


class ControlClient:
    """A DEALER on a worker's control socket: one command, one reply."""

    def __init__(self, endpoint):
        self.endpoint = endpoint
        self.context = zmq.Context.instance()

    def command(self, op, machine=None, args=None, timeout=10.0):
        command = {"v": 1, "id": f"t-{secrets.token_hex(6)}", "op": op}
        if machine is not None:
            command["machine"] = machine
        if args:
            command["args"] = args
        s = self.context.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        try:
            s.connect(self.endpoint)
            s.send_multipart([b"", json.dumps(command).encode()])
            if not s.poll(int(timeout * 1000)):
                raise TimeoutError(f"no reply to {op} from {self.endpoint}")
            reply = json.loads(s.recv_multipart()[-1])
            assert reply.get("id") == command["id"], reply
            return reply
        finally:
            s.close()


class Worker:
    """An `ecp-worker` on its own test-driver node file, state file and log, on fixed ports (so
    that it can be restarted where the console expects it)."""

    def __init__(self, binary_path, directory, worker_id, machines, *, heartbeat_ms=200, stats_interval_ms=60000,
                 extra=()):
        self.binary = binary_path
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.id = worker_id
        self.machines = machines
        self.heartbeat_ms = heartbeat_ms
        self.stats_interval_ms = stats_interval_ms
        self.extra = list(extra)
        self.events_port, self.control_port = free_ports(2)
        self.node_file = self.directory / "node.xml"
        self.node_file.write_text(node_xml(worker_id, machines), encoding="utf-8")
        self.proc = None
        self.starts = 0

    @property
    def control(self):
        return f"tcp://127.0.0.1:{self.control_port}"

    @property
    def events(self):
        return f"tcp://127.0.0.1:{self.events_port}"

    @property
    def console_arg(self):
        return f"{self.id}={self.control},{self.events}"

    def uuid(self, name):
        return machine_uuid(self.id, name)

    def start(self, ready_timeout=20.0):
        self.starts += 1
        log = open(self.directory / f"worker-{self.starts}.log", "wb")
        args = [
            self.binary, "--worker-id", self.id, "--libvirt-uri", f"test://{self.node_file}",
            "--commands", "none", f"--events=@{self.events}", f"--control=@{self.control}",
            "--state-file", str(self.directory / "state.json"), "--heartbeat-ms", str(self.heartbeat_ms),
            "--stats-interval-ms", str(self.stats_interval_ms), "--metrics", "none", "--log-format", "json",
        ] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=clean_env(), cwd=self.directory)
        log.close()
        client = ControlClient(self.control)
        deadline = time.monotonic() + ready_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker {self.id} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                reply = client.command("ping", timeout=0.5)
                if reply.get("ok"):
                    return reply
            except TimeoutError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker {self.id} did not answer ping:\n{self.log_tail()}")

    def command(self, op, machine=None, args=None):
        return ControlClient(self.control).command(op, machine, args)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_tail(self, lines=30):
        text = ""
        for path in sorted(self.directory.glob("worker-*.log")):
            text += path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])


class Console:
    """An `ecp-console` process on a free port of 127.0.0.1 (or as asked); its log lines are
    collected as they come."""

    def __init__(self, binary_path, directory, workers, *, listen="127.0.0.1:0", extra=()):
        self.binary = binary_path
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.args = [binary_path, "--listen", listen, "--shutdown-wait-ms", "5000"]
        for w in workers:
            self.args += ["--worker", w.console_arg]
        self.args += list(extra)
        self.lines = []
        self.cond = threading.Condition()
        self.proc = None
        self.url = None

    def start(self, timeout=30.0):
        self.proc = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=clean_env(), cwd=self.directory)
        threading.Thread(target=self._read, daemon=True).start()
        line = self.wait_log(lambda e: e.get("msg") == "console listening", timeout)
        if line is None:
            raise RuntimeError(f"the console did not start:\n{self.log_text()}")
        self.url = line["http.url"].rstrip("/")
        return self

    def _read(self):
        with open(self.directory / "console.log", "wb") as out:
            for raw in self.proc.stderr:
                out.write(raw)
                out.flush()
                try:
                    entry = json.loads(raw)
                except ValueError:
                    entry = {"text": raw.decode(errors="replace")}
                with self.cond:
                    self.lines.append(entry)
                    self.cond.notify_all()

    def wait_log(self, predicate, timeout=15.0):
        """The first log entry `predicate` accepts, waiting for it; None after `timeout`."""
        deadline = time.monotonic() + timeout
        with self.cond:
            seen = 0
            while True:
                for entry in self.lines[seen:]:
                    if predicate(entry):
                        return entry
                seen = len(self.lines)
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.proc.poll() is not None and seen == len(self.lines)):
                    return None
                self.cond.wait(min(remaining, 0.5))

    def log_text(self):
        with self.cond:
            return "\n".join(json.dumps(e) for e in self.lines[-40:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode if self.proc else None

    # HTTP

    def request(self, method, path, headers=None, body=None):
        """(status, headers, body bytes) of one request, errors included."""
        req = urllib.request.Request(self.url + path, method=method, headers=headers or {}, data=body)
        opener = urllib.request.build_opener(NoRedirect)
        try:
            with opener.open(req, timeout=10) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def state(self, headers=None):
        status, _, body = self.request("GET", "/api/state", headers)
        assert status == 200, (status, body)
        return json.loads(body)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def make_driver(size=(1500, 1100)):
    """Headless Chromium through chromedriver, with window.alert recorded instead of shown."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={size[0]},{size[1]}", "--disable-extensions", "--no-first-run"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {
        "source": "window.__alerts = []; window.alert = function (m) { window.__alerts.push(String(m)); };"
                  "window.confirm = function (m) { window.__alerts.push(String(m)); return false; };"})
    return driver
