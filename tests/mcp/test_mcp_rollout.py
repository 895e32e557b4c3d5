"""Taking a policy live through the stdio proxy (issue 21): the policy file reloaded when it
changes and on SIGHUP (a broken edit keeps the old policy, says so on stderr and in the
audit trail with both digests), shadow mode (every call decided, recorded as not enforced,
and forwarded), what the model reads of a denial (--denial-detail), and the proxy-only
environment (the chain token, the wrapped host entry) never passed to the server."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

import pytest

from callgate import examples
from support.mcp_helpers import PY, Wire, journal_lines, text_of

REFUND = {"name": "process_refund", "arguments": {"order_id": "ORD-9910", "amount": 800}}
VIEW = {"name": "view_customer", "arguments": {"customer_id": "C-1042"}}


def _doc(limit: int) -> str:
    """The CRM policy with the agents' refund limit set to `limit`."""
    doc = examples.policy("crm")
    for rule in doc["rules"]:
        body = (rule.get("condition") or {}).get("NumericCheck")
        if rule["tool_name"] == "process_refund" and body and body["value"] == 500:
            body["value"] = limit
    return json.dumps(doc, indent=2)


def _policy(tmp_path, limit: int = 500):
    path = tmp_path / "policy.json"
    path.write_text(_doc(limit))
    return path


def _argv(tmp_path, policy, *options):
    journal = tmp_path / "crm.jsonl"
    return [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent",
            "--agent-attr", "user_id=agt-099", *options,
            "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)], journal


def _records(path):
    return [json.loads(line)["record"] for line in path.read_text().splitlines()]


def _touch(path, text):
    path.write_text(text)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))   # a new stamp, whatever the clock


def test_an_edited_policy_decides_the_next_call_and_a_broken_edit_keeps_the_old_one(tmp_path):
    """The refund of 800 is denied (limit 500); the file edited to a limit of 1000: the next
    call (after the check interval) is allowed; a broken edit: the previous policy stays in
    force, stderr says so, and the audit trail holds a "policy_change" event for each
    reload (loaded, then refused) with the digests of the policy before and of the file."""
    policy = _policy(tmp_path)
    audit = tmp_path / "audit.jsonl"
    argv, journal = _argv(tmp_path, policy, "--audit", str(audit))
    with Wire(argv) as wire:
        wire.initialize()
        assert wire.answer_to(1, "tools/call", REFUND)["result"]["isError"] is True
        _touch(policy, _doc(1000))
        time.sleep(1.2)
        assert wire.answer_to(2, "tools/call", REFUND)["result"].get("isError") is not True
        _touch(policy, '{"version": "broken", "rules": [')
        time.sleep(1.2)
        assert wire.answer_to(3, "tools/call", REFUND)["result"].get("isError") is not True
        assert wire.close() == 0
    assert "policy NOT reloaded" in wire.stderr.decode()
    changes = [r for r in _records(audit) if r.get("kind") == "policy_change"]
    assert [c["outcome"] for c in changes] == ["loaded", "refused"]
    assert changes[0]["old_digest"] != changes[0]["new_digest"]
    assert changes[1]["old_digest"] == changes[0]["new_digest"] and changes[1]["new_digest"]
    assert [e["tool"] for e in journal_lines(journal)].count("process_refund") == 2


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP on this platform")
def test_sighup_reloads_when_watching_is_off(tmp_path):
    """With --no-reload an edit changes nothing by itself; SIGHUP reloads it at once."""
    policy = _policy(tmp_path)
    argv, _ = _argv(tmp_path, policy, "--no-reload")
    with Wire(argv) as wire:
        wire.initialize()
        _touch(policy, _doc(1000))
        time.sleep(1.2)
        assert wire.answer_to(1, "tools/call", REFUND)["result"]["isError"] is True
        wire.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        assert wire.answer_to(2, "tools/call", REFUND)["result"].get("isError") is not True


def test_shadow_mode_forwards_what_it_would_deny_and_records_it(tmp_path):
    """--mode shadow: the refund the policy denies reaches the server (its journal has it);
    its audit event says Deny, with the reason, marked "mode": "shadow"."""
    audit = tmp_path / "audit.jsonl"
    argv, journal = _argv(tmp_path, _policy(tmp_path), "--mode", "shadow", "--audit", str(audit))
    with Wire(argv) as wire:
        wire.initialize()
        reply = wire.answer_to(1, "tools/call", REFUND)
    assert reply["result"].get("isError") is not True
    assert [e["tool"] for e in journal_lines(journal)] == ["process_refund"]
    event = next(r for r in _records(audit) if r.get("kind") == "decision")
    assert event["decision"] == "Deny" and "is not <= 500" in event["reason"]
    assert event["extras"] == {"mode": "shadow"}


@pytest.mark.parametrize("detail, shown", [
    ("full", "Denied by policy: process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"),
    ("rule", "Denied by policy: this call is not allowed (rule 4)"),
    ("generic", "Denied by policy: this call is not allowed"),
])
def test_what_the_model_reads_of_a_denial(tmp_path, detail, shown):
    """--denial-detail: the full reason, only the rule, or a generic line; the audit trail
    keeps the full reason in every case."""
    audit = tmp_path / "audit.jsonl"
    argv, _ = _argv(tmp_path, _policy(tmp_path), "--denial-detail", detail, "--audit", str(audit))
    with Wire(argv) as wire:
        wire.initialize()
        assert text_of(wire.answer_to(1, "tools/call", REFUND)) == shown
    event = next(r for r in _records(audit) if r.get("kind") == "decision")
    assert event["reason"].endswith("Arguments.amount = 800 is not <= 500 (rule 4)")


def test_the_server_never_sees_the_proxys_own_environment(tmp_path):
    """CALLGATE_CHAIN (a credential) and CALLGATE_WRAPPED are the proxy's: the server it
    starts gets the rest of the environment without them."""
    server = tmp_path / "env_server.py"
    server.write_text(
        "import os\nfrom mcp.server.mcpserver import MCPServer\n"
        "s = MCPServer('env')\n"
        "@s.tool(description='names of the environment variables')\n"
        "def env_names() -> str:\n    return ','.join(sorted(os.environ))\n"
        "s.run()\n")
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({"version": "e", "default_action": "Allow", "tools": ["env_names"],
                                  "roles": ["agent"], "rules": []}))
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent", "--", sys.executable, str(server)]
    env = {"CALLGATE_WRAPPED": "eyJ9", "CALLGATE_SEEN_BY_SERVER": "1"}
    with Wire(argv, env=env) as wire:
        wire.initialize()
        names = text_of(wire.answer_to(1, "tools/call", {"name": "env_names", "arguments": {}})).split(",")
    assert "CALLGATE_SEEN_BY_SERVER" in names and "CALLGATE_WRAPPED" not in names and "CALLGATE_CHAIN" not in names


def test_audit_stats_show_what_shadow_mode_would_have_denied(tmp_path):
    """After a shadow-mode session, `callgate audit stats` lists the calls that ran but that
    enforcement would have denied, per tool and rule."""
    from support.cli import run

    audit = tmp_path / "audit.jsonl"
    argv, _ = _argv(tmp_path, _policy(tmp_path), "--mode", "shadow", "--audit", str(audit))
    with Wire(argv) as wire:
        wire.initialize()
        wire.answer_to(1, "tools/call", REFUND)
        wire.answer_to(2, "tools/call", VIEW)
    out = run("audit", "stats", str(audit), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["shadow_would_have"] == [{"tool": "process_refund", "rule": 3, "decision": "Deny",
                                                            "count": 1}]
    text = run("audit", "stats", str(audit)).stdout
    assert "not enforced (shadow mode)" in text and "Deny" in text
