"""`callgate playground` in a real browser: headless Chromium (Debian's chromium and its
chromedriver, driven by selenium) loads the page with every name but 127.0.0.1 unresolvable
(offline), plays the CRM demo's three scenes, tries a call, edits the policy (a typo shows
the located error, the fix changes the next decision) and checks the session's audit trail
with `callgate audit verify`. Decisions, reasons and colours are asserted against the Python
engine; a screenshot of each step is written to test-artifacts/playground/ (or
$CALLGATE_ARTIFACTS/playground/).

Skipped only where no browser can be had (no chromium or chromedriver, or selenium not
installed); under CI (CI set) that is a failure instead: .ci/run installs them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from callgate import Engine, examples
from callgate.playground_cli import PlaygroundServer, start_playground
from support import REPO

GREEN = "rgba(26, 127, 55, 1)"
RED = "rgba(207, 34, 46, 1)"
COLOUR = {"Allow": GREEN, "Deny": RED}
ARTIFACTS = Path(os.environ.get("CALLGATE_ARTIFACTS", REPO / "test-artifacts")) / "playground"


def _unavailable(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI installs it: see .ci/run)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def server() -> Iterator[PlaygroundServer]:
    s = start_playground("crm", 0)
    yield s
    s.shutdown()
    s.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not chromium or not driver_path:
        _unavailable("no headless browser: apt-get install chromium chromium-driver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed: pip install 'callgate[test]'")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1600,1300", "--no-first-run", "--disable-extensions",
                # offline: no name resolves but the playground's address
                "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"):
        options.add_argument(arg)
    options.binary_location = chromium
    d = webdriver.Chrome(service=Service(driver_path), options=options)
    d.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield d
    d.quit()


def _open(browser: Any, server: PlaygroundServer) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url)
    WebDriverWait(browser, 30).until(lambda d: _by_id(d, "status").get_attribute("data-state") != "loading")
    status = _by_id(browser, "status")
    assert status.get_attribute("data-state") == "ready", status.text
    assert "callgate.wasm" in status.text


def _by_id(d: Any, name: str) -> Any:
    from selenium.webdriver.common.by import By

    return d.find_element(By.ID, name)


def _all(d: Any, css: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(d.find_elements(By.CSS_SELECTOR, css))


def _select(d: Any, name: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(_by_id(d, name)).select_by_value(value)


def _shot(d: Any, name: str, element: Any = None) -> None:
    if element is not None:
        d.execute_script("arguments[0].scrollIntoView({block: 'start'})", element)
    path = ARTIFACTS / f"{name}.png"
    assert d.save_screenshot(str(path)), f"could not write {path}"
    assert path.stat().st_size > 1000


def _wait(d: Any, until: Any, timeout: float = 20) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout).until(until)


def _expected(policy: dict[str, Any], case: dict[str, Any]) -> tuple[str, str]:
    d = Engine.from_dict(policy).evaluate(case["tool"], case.get("args"), role=case["role"],
                                         agent_attributes=case.get("agent_attributes"),
                                         resource_attributes=case.get("resource_attributes"))
    return d.decision, d.reason


def _play(d: Any, role: str) -> list[Any]:
    _select(d, "role", role)
    _by_id(d, "play").click()
    n = len([c for c in examples.cases("crm") if c["role"] == role])
    _wait(d, lambda d: len(_all(d, "#transcript li.call")) == n)
    return _all(d, "#transcript li.call")


def _replace_in_editor(d: Any, old: str, new: str) -> int:
    """Select `old` in the policy editor and type `new` over it, as a user would; the offset
    of the edit."""
    editor = _by_id(d, "policy")
    text = editor.get_attribute("value")
    at = text.index(old)
    d.execute_script("arguments[0].focus(); arguments[0].setSelectionRange(arguments[1], arguments[2])",
                     editor, at, at + len(old))
    editor.send_keys(new)
    assert editor.get_attribute("value") == text[:at] + new + text[at + len(old):]
    return at


def test_page_loads_offline_with_nothing_from_elsewhere(browser, server):
    """With no name resolvable but 127.0.0.1 the page starts, decides with the wasm module,
    and every resource it loaded came from the playground's own origin."""
    _open(browser, server)
    origins = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => new URL(e.name).origin)")
    here = server.url.rstrip("/")
    assert origins and set(origins) == {here}, origins
    assert "callgate.wasm" in " ".join(browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"))
    _shot(browser, "0-start")


@pytest.mark.parametrize("role", ["agent", "manager", "admin"])
def test_each_scene_shows_the_engines_decisions_in_green_and_red(browser, server, role):
    """Each of the CRM demo's three scenes: every call is decided inline as the Python engine
    decides it (and as the original demo expects), with its exact reason, green for Allow and
    red for Deny; the listing shows what the role may call."""
    _open(browser, server)
    policy = examples.policy("crm")
    cases = [c for c in examples.cases("crm") if c["role"] == role]
    rows = _play(browser, role)
    allows = denies = 0
    for row, case in zip(rows, cases):
        decision, reason = _expected(policy, case)
        assert decision == case["expected"], case["name"]
        assert row.get_attribute("data-decision") == decision, case["name"]
        badge = row.find_element("css selector", ".badge")
        assert badge.text == decision
        assert row.find_element("css selector", ".text").text == reason, case["name"]
        assert row.value_of_css_property("border-left-color") == COLOUR[decision]
        assert badge.value_of_css_property("background-color") == COLOUR[decision]
        allows += decision == "Allow"
        denies += decision == "Deny"
    assert allows and denies, "each scene has both outcomes"
    assert _by_id(browser, "scene-title").text.endswith({"agent": "the support agent", "manager": "the manager",
                                                          "admin": "the admin"}[role])
    engine = Engine.from_dict(policy)
    shown = [t for t in sorted(engine.compiled.policy.tools) if engine.compiled.visible(t, role)]
    assert _by_id(browser, "listing").text == f"tools/list as {role}: {', '.join(shown)}"
    # the JSON panel holds the last call's request and decision
    last = cases[-1]
    panel = browser.execute_script("return JSON.parse(document.getElementById('json').textContent)")
    assert panel["request"]["tool"] == last["tool"] and panel["decision"]["decision"] == _expected(policy, last)[0]
    _shot(browser, f"1-scene-{role}", _by_id(browser, "demo-pane"))


def test_call_builder_decides_and_explains(browser, server):
    """The call builder: a call decided in the browser with the Python engine's reason, the
    explain tree pins the failing condition; arguments that are not JSON decide nothing."""
    _open(browser, server)
    _by_id(browser, "decide").click()
    _wait(browser, lambda d: "Arguments.amount" in _by_id(d, "explain").text)
    decision, reason = _expected(examples.policy("crm"), {
        "tool": "process_refund", "role": "agent", "args": {"order_id": "ORD-8821", "amount": 800},
        "agent_attributes": {"user_id": "agt-099"}, "resource_attributes": {}})
    assert _by_id(browser, "decision").text == decision == "Deny"
    assert _by_id(browser, "reason").text == reason
    assert _by_id(browser, "decision").value_of_css_property("background-color") == RED
    explain = _by_id(browser, "explain").text
    assert "F Arguments.amount <= 500" in explain and "Arguments.amount = 800" in explain
    _shot(browser, "2-call-builder", _by_id(browser, "result"))

    args = _by_id(browser, "args")
    args.clear()
    args.send_keys('{"amount": 8')
    _by_id(browser, "decide").click()
    _wait(browser, lambda d: _by_id(d, "decision").text == "—")
    assert "Arguments" in _by_id(browser, "reason").text
    assert "bad" in args.get_attribute("class")


def test_a_typo_shows_its_location_and_a_fix_changes_the_next_decision(browser, server):
    """Editing the policy: a misspelled key is an error at its line and column and the
    policy in force stays; raising the agent's refund cap makes the next $800 refund an
    Allow, as the Python engine decides under the edited policy."""
    _open(browser, server)
    original = _by_id(browser, "policy").get_attribute("value")
    at = _replace_in_editor(browser, '"condition"', '"conditon"')
    line = original[:at].count("\n") + 1
    column = at - original.rfind("\n", 0, at)
    _by_id(browser, "apply").click()
    _wait(browser, lambda d: _by_id(d, "policy-status").get_attribute("data-state") == "error")
    errors = _all(browser, "#errors li.error")
    assert len(errors) == 1
    assert errors[0].get_attribute("data-line") == str(line)
    assert errors[0].get_attribute("data-column") == str(column)
    assert errors[0].text == f"line {line}, column {column}: error: rules[0].conditon: unknown key 'conditon'"
    assert _all(browser, "#gutter .bad")[0].text == str(line)
    # clicking the error selects its place in the editor
    errors[0].click()
    start = browser.execute_script("return document.getElementById('policy').selectionStart")
    assert start == at
    _shot(browser, "3-typo", _by_id(browser, "policy-pane"))
    # the policy in force is unchanged: the $800 refund is still refused
    rows = _play(browser, "agent")
    refund = next(r for r in rows if "$800" in r.text)
    assert refund.get_attribute("data-decision") == "Deny"

    _replace_in_editor(browser, '"conditon"', '"condition"')
    _replace_in_editor(browser, "500.0", "1000")
    _by_id(browser, "apply").click()
    _wait(browser, lambda d: _by_id(d, "policy-status").get_attribute("data-state") == "ok")
    assert _all(browser, "#errors li.error") == []
    edited_text = _by_id(browser, "policy").get_attribute("value")
    import json

    edited = json.loads(edited_text)
    rows = _play(browser, "agent")
    case = next(c for c in examples.cases("crm") if c["role"] == "agent" and "$800" in c["name"])
    decision, reason = _expected(edited, case)
    assert decision == "Allow"
    refund = next(r for r in rows if "$800" in r.text)
    assert refund.get_attribute("data-decision") == "Allow"
    assert refund.find_element("css selector", ".text").text == reason
    assert refund.value_of_css_property("border-left-color") == GREEN
    _shot(browser, "4-fixed", _by_id(browser, "demo-pane"))


def test_the_session_audit_trail_verifies(browser, server, tmp_path):
    """The page's audit trail (hash-chained in the browser by the npm package's audit module)
    lists each decision, and `callgate audit verify` accepts it as written."""
    _open(browser, server)
    _play(browser, "manager")
    _wait(browser, lambda d: len(_all(d, "#audit li")) >= 2)
    lines = browser.execute_script("return window.callgatePlayground.auditLines()")
    n = len([c for c in examples.cases("crm") if c["role"] == "manager"])
    assert len(lines) == n + 1   # the writer's start marker, then one record per decision
    shown = _all(browser, "#audit li")
    assert len(shown) == len(lines)
    assert any("Deny" in li.text for li in shown) and any("Allow" in li.text for li in shown)
    log = tmp_path / "session.jsonl"
    log.write_text("".join(f"{line}\n" for line in lines))
    r = subprocess.run([sys.executable, "-m", "callgate", "audit", "verify", str(log)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # an edited record is caught
    tampered = lines[2].replace('"Deny"', '"Allow"', 1) if '"Deny"' in lines[2] else lines[2].replace('"Allow"', '"Deny"', 1)
    log.write_text("".join(f"{line}\n" for line in [*lines[:2], tampered, *lines[3:]]))
    r = subprocess.run([sys.executable, "-m", "callgate", "audit", "verify", str(log)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    _shot(browser, "5-audit", _by_id(browser, "side-pane"))


def test_a_bundled_example_is_applied_and_an_elevate_shows_amber(browser, server):
    """Choosing the bundled ops example applies it; a call its tiers send to approval is an
    Elevate with its approval count, in amber, with the Python engine's reason."""
    _open(browser, server)
    _select(browser, "example", "ops")
    _wait(browser, lambda d: "ops-2.0.0" in _by_id(d, "policy-status").text)
    for name, value in (("tool", "deploy"), ("call-role", "agent"), ("args", '{"services": ["api"]}'),
                        ("agent", "{}")):
        box = _by_id(browser, name)
        box.clear()
        box.send_keys(value)
    _by_id(browser, "decide").click()
    _wait(browser, lambda d: _by_id(d, "decision").text.startswith("Elevate"))
    d = Engine.from_dict(examples.policy("ops")).evaluate("deploy", {"services": ["api"]}, role="agent",
                                                         agent_attributes={}, resource_attributes={})
    assert (d.decision, d.approvals_required) == ("Elevate", 1)
    assert _by_id(browser, "decision").text == "Elevate (1)"
    assert _by_id(browser, "reason").text == d.reason
    assert _by_id(browser, "decision").value_of_css_property("background-color") == "rgba(154, 103, 0, 1)"
    _wait(browser, lambda d: "by" in _by_id(d, "explain").text)
    _shot(browser, "6-ops-elevate", _by_id(browser, "result"))
