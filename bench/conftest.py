"""Benchmarks: fixtures shared by bench/*.py (run with `pytest bench/ --benchmark-enable`)."""

from __future__ import annotations

import sys
from pathlib import Path

import orjson
import pytest

from callgate import Engine, examples

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

ALLOW = {"tool": "process_refund", "args": {"order_id": "ORD-8821", "amount": 200}, "role": "agent",
         "agent_attributes": {"user_id": "agt-099", "env": "production"}, "resource_attributes": {}}
DENY = dict(ALLOW, args={"order_id": "ORD-8821", "amount": 800})


@pytest.fixture(scope="session")
def crm() -> Engine:
    return Engine.from_dict(examples.policy("crm"))


def json_form(case: dict) -> tuple[bytes, bytes, bytes]:
    """The case as evaluate_json's ready bytes: tool, arguments, context."""
    ctx = orjson.dumps({"role": case["role"], "agent_attrs": case["agent_attributes"],
                        "resource_attrs": case["resource_attributes"]})
    return case["tool"].encode(), orjson.dumps(case["args"]), ctx
