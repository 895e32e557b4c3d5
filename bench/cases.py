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
