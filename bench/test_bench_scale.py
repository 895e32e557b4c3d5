"""Cost must not grow with the policy or with data the rules never read.

Run: pytest bench/test_bench_scale.py --benchmark-enable --benchmark-columns=median,iqr
"""

from __future__ import annotations

import orjson
import pytest

from callgate import Engine
from callgate.compiler import compile_policy


def policy_with_rules(n: int) -> dict:
    """n tools, one rule each with a numeric condition; the benchmark calls the last tool."""
    tools = [f"tool_{i}" for i in range(n)]
    return {"version": f"scale-{n}", "default_action": "Deny", "tools": tools, "roles": ["agent"],
            "rules": [{"tool_name": t, "roles": ["agent"], "condition": {"NumericCheck": {
                "source": "Arguments", "field": f"f{i % 50}", "op": "Lte", "value": 100.0}}} for i, t in enumerate(tools)]}


def policy_with_list(n: int) -> dict:
    """One StringCheck In with n values."""
    return {"version": f"list-{n}", "default_action": "Deny", "tools": ["t"], "roles": ["agent"],
            "rules": [{"tool_name": "t", "roles": ["agent"], "condition": {"StringCheck": {
                "source": "Arguments", "field": "region", "op": "In", "value": [f"r{i}" for i in range(n)]}}}]}


@pytest.mark.parametrize("rules", [10, 10_000])
def test_rules_flat(benchmark, rules):
    """10 vs 10,000 rules: a hashed (tool, role) lookup, so the same cost per call."""
    engine = Engine.from_dict(policy_with_rules(rules))
    tool = f"tool_{rules - 1}"
    field = f"f{(rules - 1) % 50}"
    d = benchmark(engine.evaluate, tool, {field: 7}, role="agent")
    assert d.allowed


@pytest.mark.parametrize("values", [3, 100_000])
def test_in_list_flat(benchmark, values):
    """A 3- vs 100,000-value In list: a hashed set, so the same cost per call."""
    engine = Engine.from_dict(policy_with_list(values))
    d = benchmark(engine.evaluate, "t", {"region": f"r{values - 1}"}, role="agent")
    assert d.allowed


BIG = {"amount": 100, "attachment": "x" * (1 << 20)}


def test_big_unread_argument_evaluate_json(benchmark, crm):
    """A 1 MB argument the rules never read: validated and skipped (target <= 1 ms)."""
    args = orjson.dumps(BIG)
    ctx = b'{"role":"agent","agent_attrs":{},"resource_attrs":{}}'
    assert benchmark(crm.evaluate_json, b"process_refund", args, ctx).allowed


def test_big_unread_argument_evaluate(benchmark, crm):
    """The same through evaluate() from Python values (target <= 2 ms)."""
    assert benchmark(crm.evaluate, "process_refund", BIG, role="agent").allowed


def test_compile_and_load_10k_rules(benchmark):
    """Compiling and loading a 10,000-rule policy (target <= 200 ms)."""
    policy = policy_with_rules(10_000)
    engine = benchmark.pedantic(Engine.from_dict, args=(policy,), rounds=5, iterations=1)
    assert engine.evaluate("tool_3", {"f3": 1}, role="agent").allowed


def test_compile_only_10k_rules(benchmark):
    """The Python compiler alone on 10,000 rules (validate, expand, lower, encode)."""
    policy = policy_with_rules(10_000)
    benchmark.pedantic(compile_policy, args=(policy,), rounds=5, iterations=1)
