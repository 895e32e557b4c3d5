"""Rules with `"mode": "shadow"` (issue 21): evaluated beside the policy and recorded, never
deciding. The call is decided without them; its audit event carries what the shadow rule
would have decided (`shadow`), and `callgate audit stats` counts it under
"shadow_would_have"."""

from __future__ import annotations

import json

import callgate
from callgate.audit import JsonlSink
from support.cli import run

POLICY = {"version": "shadow-rules", "default_action": "Deny", "tools": ["refund"], "roles": ["agent"],
          "rules": [{"tool_name": "refund", "roles": ["agent"]},
                    {"id": "no-big-refunds", "tool_name": "refund", "roles": ["agent"], "effect": "deny",
                     "mode": "shadow", "condition": {"NumericCheck": {"source": "Arguments", "field": "amount",
                                                                      "op": "Gt", "value": 100}}}]}


def test_a_shadow_rule_never_decides_but_is_recorded(tmp_path):
    """Both refunds are allowed (the deny rule is in shadow mode); the big one's event says
    the shadow rule would have denied it, naming the rule; stats count it; the small one
    has no shadow verdict."""
    log = tmp_path / "audit.jsonl"
    engine = callgate.Engine.from_dict(POLICY, audit=JsonlSink(log))
    assert engine.evaluate("refund", {"amount": 500}, role="agent").decision == "Allow"
    assert engine.evaluate("refund", {"amount": 50}, role="agent").decision == "Allow"
    engine.close()
    events = [json.loads(line)["record"] for line in log.read_text().splitlines()]
    big, small = [e for e in events if e.get("kind") == "decision"]
    assert big["decision"] == "Allow" and big["shadow"]["decision"] == "Deny" and big["shadow"]["rule"] == 1
    assert "rule no-big-refunds forbids it" in big["shadow"]["reason"]
    assert "shadow" not in small
    stats = json.loads(run("audit", "stats", str(log), "--json").stdout)
    assert stats["shadow_would_have"] == [{"tool": "refund", "rule": 1, "decision": "Deny", "count": 1}]


def test_without_an_audit_trail_shadow_rules_are_simply_left_out():
    """No audit trail: the policy decides as if the shadow rules were not there (no
    recorder is started for them)."""
    engine = callgate.Engine.from_dict(POLICY)
    assert engine.evaluate("refund", {"amount": 500}, role="agent").decision == "Allow"
    assert engine.recorder is None
