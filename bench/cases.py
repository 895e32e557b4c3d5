"""The benchmark calls, shared by the pytest-benchmark suites and compare.py."""

from __future__ import annotations

import orjson

ALLOW = {"tool": "process_refund", "args": {"order_id": "ORD-8821", "amount": 200}, "role": "agent",
         "agent_attributes": {"user_id": "agt-099", "env": "production"}, "resource_attributes": {}}
DENY = dict(ALLOW, args={"order_id": "ORD-8821", "amount": 800})


def json_form(case: dict) -> tuple[bytes, bytes, bytes]:
    """The case as evaluate_json's ready bytes: tool, arguments, context."""
    ctx = orjson.dumps({"role": case["role"], "agent_attrs": case["agent_attributes"],
                        "resource_attrs": case["resource_attributes"]})
    return case["tool"].encode(), orjson.dumps(case["args"]), ctx


# Policy v2 (the `ops` example): a transfer by the on-call role on a Monday morning in Paris
# runs a deny rule reading a JSON Pointer, then an allow rule with a time window, a Context
# field and a Between on a pointer; the policy also has tiers and tier defaults.
V2_ALLOW = {"tool": "transfer_funds", "args": {"payment": {"amount": 3000, "currency": "EUR"}}, "role": "oncall",
            "agent_attributes": {}, "resource_attributes": {},
            "context": {"time": "2026-11-23T10:00:00+01:00", "risk_score": 10}}
V2_DENY = dict(V2_ALLOW, context={"time": "2026-11-21T10:00:00Z", "risk_score": 10})  # a Saturday
