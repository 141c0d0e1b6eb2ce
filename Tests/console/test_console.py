"""The web console in a real browser, against two real workers on libvirt's test driver.

Every wait is on a condition of the page (WebDriverWait), never a fixed sleep."""

import json
import os
import pathlib
import shutil

import pytest
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

import support
from conftest import HOSTILE

TIMEOUT = float(os.environ.get("ECP_CONSOLE_TEST_TIMEOUT", "20"))

ROW_JS = """
const [host, uuid] = arguments;
const section = Array.from(document.querySelectorAll('section.host')).find((s) => s.getAttribute('data-host') === host);
if (!section) return null;
const row = Array.from(section.querySelectorAll('tr.machine')).find((r) => r.getAttribute('data-uuid') === uuid);
if (!row) return null;
return {name: row.cells[0].textContent, state: row.cells[1].textContent, cpu: row.cells[2].textContent,
        memory: row.cells[3].textContent, pending: row.classList.contains('pending')};
"""

HOST_JS = """
const section = Array.from(document.querySelectorAll('section.host')).find((s) => s.getAttribute('data-host') === arguments[0]);
if (!section) return null;
return {status: section.querySelector('.status').textContent, meta: section.querySelector('.meta').textContent,
        reason: section.querySelector('.reason').textContent, rows: section.querySelectorAll('tr.machine').length};
"""


def wait(driver, condition, message, timeout=TIMEOUT):
    return WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: condition(d), message)


def row(driver, host, uuid):
    return driver.execute_script(ROW_JS, host, uuid)


def host_view(driver, host):
    return driver.execute_script(HOST_JS, host)


def click_action(driver, host, uuid, action):
    section = driver.find_element(By.CSS_SELECTOR, f'section.host[data-host="{host}"]')
    button = section.find_element(By.CSS_SELECTOR, f'tr.machine[data-uuid="{uuid}"] button[data-action="{action}"]')
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", button)
    button.click()


def dialog_open(driver):
    return driver.execute_script("return document.getElementById('error-dialog').open;")


def close_dialog(driver):
    driver.find_element(By.ID, "dialog-close").click()
    wait(driver, lambda d: not dialog_open(d), "the dialog closes")


def open_page(driver, console):
    driver.get(console.url + "/")
    wait(driver, lambda d: d.find_element(By.ID, "connection").text == "live", "the page's event stream is live")


def state_of(worker, name):
    reply = worker.command("status", name)
    assert reply["ok"], reply
    return reply["state"]


# MARK: the page


def test_page_shows_every_host_and_machine(console, workers, driver, shot):
    a, b = workers
    open_page(driver, console)
    for w in (a, b):
        wait(driver, lambda d: (host_view(d, w.id) or {}).get("status") == "up", f"{w.id} shown up")
        listed = w.command("list")["data"]["machines"]
        for m in listed:
            wait(driver, lambda d: (row(d, w.id, m["uuid"]) or {}).get("state") == m["state"],
                 f"{w.id} {m['name']} shown {m['state']}")
            shown = row(driver, w.id, m["uuid"])
            assert shown["name"] == m["name"]
        assert host_view(driver, w.id)["rows"] == len(listed)
    # Memory comes from the stats sample: 256 MiB of each test machine.
    shown = row(driver, a.id, a.uuid("db1"))
    assert shown["memory"].startswith("256.0 MiB"), shown
    # host-b samples every second: a running machine gets a CPU figure.
    wait(driver, lambda d: row(d, b.id, b.uuid("app1"))["cpu"] not in ("", "–"), "host-b's CPU % shown")
    # The startup restore, machine by machine, per host.
    summary = driver.find_element(By.CSS_SELECTOR, f'section.host[data-host="{a.id}"] details.restore summary').text
    assert summary.startswith("Last restore (startup)"), summary
    shot("page")


def test_headers_and_csrf(console, workers):
    status, headers, body = console.request("GET", "/")
    assert status == 200
    csp = headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp, csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert b"<script src=\"/app.js\"" in body and b"<script>" not in body
    a, _ = workers
    path = f"/api/hosts/{a.id}/machines/web1/start"
    status, headers, _ = console.request("POST", path)
    assert status == 403
    assert headers["X-Content-Type-Options"] == "nosniff"
    status, _, _ = console.request("POST", path, {"X-CSRF-Token": "0" * 64})
    assert status == 403
    assert state_of(a, "web1") == "shutoff", "a refused POST ran nothing"
    # Another host name (DNS rebinding) gets nothing, not even the token.
    status, _, body = console.request("GET", "/api/state", {"Host": "evil.example:80"})
    assert status == 421 and b"csrf" not in body


def test_action_changes_the_state_on_the_page(console, workers, driver):
    a, _ = workers
    open_page(driver, console)
    uuid = a.uuid("db1")
    wait(driver, lambda d: (row(d, a.id, uuid) or {}).get("state") == "running", "db1 shown running")
    click_action(driver, a.id, uuid, "suspend")
    wait(driver, lambda d: row(d, a.id, uuid)["state"] == "paused", "db1 shown paused after Suspend")
    assert state_of(a, "db1") == "paused"
    wait(driver, lambda d: "now paused" in d.find_element(By.CSS_SELECTOR, "#commands tbody tr").text,
         "the command list shows the result")
    click_action(driver, a.id, uuid, "resume")
    wait(driver, lambda d: row(d, a.id, uuid)["state"] == "running", "db1 shown running after Resume")
    assert not dialog_open(driver)
    # Changes made by another client show too, from the worker's events.
    assert a.command("destroy", "cache1")["ok"]
    wait(driver, lambda d: row(d, a.id, a.uuid("cache1"))["state"] == "shutoff", "cache1 shown shut off")


def test_failed_start_opens_the_dialog(console, workers, driver, shot):
    a, _ = workers
    open_page(driver, console)
    uuid = a.uuid("web2")
    wait(driver, lambda d: (row(d, a.id, uuid) or {}).get("state") == "shutoff", "web2 shown shut off")
    # Another client undefines web2: the page marks it, and a start of it must fail.
    assert a.command("undefine", "web2")["ok"]
    wait(driver, lambda d: row(d, a.id, uuid)["state"] == "undefined", "web2 shown undefined")
    click_action(driver, a.id, uuid, "start")
    wait(driver, dialog_open, "the error dialog opens")
    summary = driver.find_element(By.ID, "dialog-summary").text
    commands = console.state()["commands"]
    failed = [c for c in commands if c["machine"] == "web2" and c["action"] == "start"]
    assert failed and failed[-1]["status"] == "failed", commands
    record = failed[-1]["error"]
    assert record["type"] == "E2LibvirtError" and record["code_name"] == "VIR_ERR_NO_DOMAIN", record
    assert summary == record["summary"], "the dialog's first line is libvirt's summary"
    assert "web2" in summary and "does not exist" in summary
    assert driver.find_element(By.ID, "dialog-layer").text == "test driver"
    assert driver.find_element(By.ID, "dialog-category").text == "not_found"
    assert driver.find_element(By.ID, "dialog-retry").text.startswith("will not help")
    driver.find_element(By.CSS_SELECTOR, "#dialog-details summary").click()
    fields = {r.get_attribute("data-field"): r.find_elements(By.TAG_NAME, "td")[1].text
              for r in driver.find_elements(By.CSS_SELECTOR, "#dialog-fields tbody tr")}
    for key in ("code", "code_name", "domain", "domain_name", "level", "message", "str1", "str2", "str3",
                "int1", "int2", "category", "retryable", "summary"):
        assert key in fields, f"the details show {key}: {fields}"
    assert fields["code_name"] == "VIR_ERR_NO_DOMAIN" and fields["code"] == "42"
    shot("dialog")
    close_dialog(driver)
    # The command's error also went out on error.libvirt: it is in the error list.
    wait(driver, lambda d: any(summary == r.find_elements(By.TAG_NAME, "td")[4].text
                               for r in d.find_elements(By.CSS_SELECTOR, "#errors tbody tr")),
         "the error list holds the failure")


def test_hostile_machine_name_is_text(console, workers, driver):
    _, b = workers
    open_page(driver, console)
    uuid = b.uuid(HOSTILE)
    wait(driver, lambda d: (row(d, b.id, uuid) or {}).get("state") == "running", "the hostile machine shown")
    assert row(driver, b.id, uuid)["name"] == HOSTILE
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    # An action on it works (its name travels as text, its UUID in the URL).
    click_action(driver, b.id, uuid, "suspend")
    wait(driver, lambda d: row(d, b.id, uuid)["state"] == "paused", "the hostile machine shown paused")
    assert state_of(b, HOSTILE) == "paused"
    # A failure naming it: the dialog holds the name as text.
    click_action(driver, b.id, uuid, "destroy")
    wait(driver, lambda d: row(d, b.id, uuid)["state"] == "shutoff", "the hostile machine shown shut off")
    click_action(driver, b.id, uuid, "suspend")
    wait(driver, dialog_open, "a suspend of a shut-off machine fails: the dialog opens")
    assert HOSTILE in driver.find_element(By.ID, "dialog-summary").text
    assert HOSTILE in driver.find_element(By.ID, "dialog-command").text
    close_dialog(driver)
    assert driver.execute_script("return document.querySelectorAll('img').length") == 0
    assert driver.execute_script("return window.__alerts") == [], "no script of the name ran"


def test_errors_of_other_clients_are_listed_and_survive(console, workers, driver, binaries, tmp_path):
    _, b = workers
    open_page(driver, console)
    reply = b.command("start", "nosuch9")
    assert not reply["ok"]
    summary = reply["error"]["summary"]

    def listed(d):
        for r in d.find_elements(By.CSS_SELECTOR, "#errors tbody tr"):
            cells = r.find_elements(By.TAG_NAME, "td")
            if cells[4].text == summary:
                return r
        return None

    entry = wait(driver, listed, "another client's failure is listed")
    assert driver.find_element(By.ID, "connection").text == "live", "an error event leaves the stream open"
    entry.find_element(By.TAG_NAME, "button").click()
    wait(driver, dialog_open, "the listed error opens in the dialog")
    assert driver.find_element(By.ID, "dialog-summary").text == summary
    close_dialog(driver)
    # A reload keeps it: it comes from the console, not the browser.
    open_page(driver, console)
    wait(driver, listed, "the failure is still listed after a reload")
    # A console started now has it too: from the worker's replay.
    _, console_bin = binaries
    second = support.Console(console_bin, tmp_path / "second", workers).start()
    try:
        open_page(driver, second)
        wait(driver, listed, "a new console lists the failure from the worker's replay")
    finally:
        assert second.stop() == 0


def test_restarted_worker_is_shown_down_then_caught_up(console, workers, driver, shot):
    _, b = workers
    open_page(driver, console)
    wait(driver, lambda d: (host_view(d, b.id) or {}).get("status") == "up", "host-b shown up")
    old_run = console.state()["hosts"][1]["run"]
    # Something the next run will not have: app1 shut off.
    assert b.command("destroy", "app1")["ok"]
    wait(driver, lambda d: row(d, b.id, b.uuid("app1"))["state"] == "shutoff", "app1 shown shut off")
    b.kill()
    wait(driver, lambda d: host_view(d, b.id)["status"] == "down", "host-b shown down after its heartbeats stop")
    assert "no heartbeat" in host_view(driver, b.id)["reason"]
    shot("down")
    b.start()
    # An error published at once by the new run reaches the page (live or by replay).
    failure = b.command("start", "nosuch-after-restart")
    new_run = failure["run"]
    assert new_run != old_run
    wait(driver, lambda d: host_view(d, b.id)["status"] == "up", "host-b shown up again")
    wait(driver, lambda d: new_run[:8] in host_view(d, b.id)["meta"], "host-b shows its new run")
    for m in b.command("list")["data"]["machines"]:
        wait(driver, lambda d: (row(d, b.id, m["uuid"]) or {}).get("state") == m["state"],
             f"{m['name']} shown as the new run has it ({m['state']})")
    assert row(driver, b.id, b.uuid("app1"))["state"] == "running", "the node file's state is back"
    wait(driver, lambda d: any(failure["error"]["summary"] == r.find_elements(By.TAG_NAME, "td")[4].text
                               for r in d.find_elements(By.CSS_SELECTOR, "#errors tbody tr")),
         "the new run's error is listed")
    host = next(h for h in console.state()["hosts"] if h["id"] == b.id)
    assert host["run"] == new_run and host["synced"] and host["lost"] == 0, host
    # The restore of the new run (from the state table the first run wrote).
    assert host["restore"]["summary"]["trigger"] == "startup"


def test_logs_who_did_what(console, workers):
    a, _ = workers
    token = console.state()["csrf"]
    status, _, body = console.request("POST", f"/api/hosts/{a.id}/machines/db1/suspend", {"X-CSRF-Token": token})
    assert status == 202, body
    command_id = json.loads(body)["id"]
    answered = console.wait_log(lambda e: e.get("msg") == "command answered" and e.get("command.id") == command_id)
    assert answered is not None, console.log_text()
    assert answered["command.outcome"] == "ok" and answered["worker.id"] == a.id
    assert answered["machine.name"] == "db1" and answered["command.op"] == "suspend"
    assert answered["command.id"].startswith("con-")
    assert answered["http.remote"].startswith("127.0.0.1:")
    sent = console.wait_log(lambda e: e.get("msg") == "command sent" and e.get("command.id") == answered["command.id"])
    assert sent is not None


# MARK: with --auth


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("# console users\nalice:0123456789abcdef0123456789abcdef\n", encoding="utf-8")
    path.chmod(0o600)
    return path


def test_auth_login_and_bearer(binaries, workers, driver, token_file, tmp_path):
    _, console_bin = binaries
    a, _ = workers
    c = support.Console(console_bin, tmp_path / "auth", workers, extra=["--auth", str(token_file)]).start()
    try:
        status, headers, _ = c.request("GET", "/")
        assert status == 303 and headers["Location"] == "/login"
        status, _, _ = c.request("GET", "/api/state")
        assert status == 401
        status, _, _ = c.request("GET", "/api/state", {"Authorization": "Bearer wrong-token-0123456789"})
        assert status == 401
        bearer = {"Authorization": "Bearer 0123456789abcdef0123456789abcdef"}
        state = c.state(bearer)
        assert state["user"] == "alice"
        status, _, _ = c.request("POST", f"/api/hosts/{a.id}/machines/web1/start", bearer)
        assert status == 403, "a POST needs the CSRF token even with a bearer token"
        # The browser logs in through the form; the cookie is HttpOnly and SameSite=Strict.
        driver.get(c.url + "/")
        wait(driver, lambda d: d.current_url.endswith("/login"), "the page sends the browser to the login form")
        driver.find_element(By.ID, "token").send_keys("0123456789abcdef0123456789abcdef")
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait(driver, lambda d: d.find_element(By.ID, "connection").text == "live", "logged in, the page is live")
        assert driver.find_element(By.ID, "who").text == "signed in as alice"
        cookie = driver.get_cookie("ecp_console_session")
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        click_action(driver, a.id, a.uuid("web1"), "start")
        wait(driver, lambda d: row(d, a.id, a.uuid("web1"))["state"] == "running", "web1 started by alice")
        logged = c.wait_log(lambda e: e.get("msg") == "command answered" and e.get("user.name") == "alice")
        assert logged is not None and logged["machine.name"] == "web1" and logged["command.outcome"] == "ok"
    finally:
        assert c.stop() == 0


def test_listening_beyond_loopback_needs_auth(binaries, workers, tmp_path):
    _, console_bin = binaries
    c = support.Console(console_bin, tmp_path / "open", workers, listen="0.0.0.0:0")
    with pytest.raises(RuntimeError):
        c.start(timeout=15)
    assert c.proc.returncode not in (0, None)
    assert any("--auth" in json.dumps(e) for e in c.lines), c.log_text()


def test_screenshot_for_the_readme(console, workers, driver, artifacts):
    """Leaves docs/console.png's candidate in the artifacts (copied by hand when the page changes)."""
    open_page(driver, console)
    for w in workers:
        wait(driver, lambda d: (host_view(d, w.id) or {}).get("status") == "up", f"{w.id} up")
    path = artifacts / "console-readme.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000
