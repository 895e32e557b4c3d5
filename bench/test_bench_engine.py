"""The engine's hot path: one decision on the CRM policy, against what users would use instead.

Run: pytest bench/test_bench_engine.py --benchmark-enable --benchmark-columns=median,iqr,ops
Compare rows within one run (the machine is shared): the table's ratios are what counts.
"""

from __future__ import annotations

import pytest

import alternatives
from cases import ALLOW, DENY, json_form

CASES = {"allow": ALLOW, "deny": DENY}


@pytest.mark.parametrize("name", CASES)
def test_callgate_evaluate(benchmark, crm, name):
    """callgate Engine.evaluate() from Python values."""
    c = CASES[name]
    d = benchmark(crm.evaluate, c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"],
                  resource_attributes=c["resource_attributes"])
    assert d.decision == name.capitalize()


@pytest.mark.parametrize("name", CASES)
def test_callgate_evaluate_json(benchmark, crm, name):
    """callgate Engine.evaluate_json() with ready bytes (the proxy's and wasm ABI's shape)."""
    tool, args, ctx = json_form(CASES[name])
    d = benchmark(crm.evaluate_json, tool, args, ctx)
    assert d.decision == name.capitalize()


@pytest.mark.parametrize("name", CASES)
def test_callgate_with_reason(benchmark, crm, name):
    """evaluate() and reading the reason text (built on demand)."""
    c = CASES[name]

    def run():
        return crm.evaluate(c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"],
                            resource_attributes=c["resource_attributes"]).reason

    assert "process_refund" in benchmark(run)


@pytest.mark.parametrize("name", CASES)
def test_reference_evaluator(benchmark, name):
    """The pure-Python reference evaluator (tests/support/reference.py): correct, not fast."""
    from support.reference import ReferenceEngine

    from callgate import examples
    ref = ReferenceEngine(examples.policy("crm"))
    c = CASES[name]
    out = benchmark(ref.evaluate, c["tool"], c["args"], c["role"], c["agent_attributes"], c["resource_attributes"])
    assert out[0] == name.capitalize()


@pytest.mark.parametrize("name", CASES)
def test_handwritten_python(benchmark, name):
    """A hand-written Python function with dict lookups: the floor for 'no engine at all'."""
    f = alternatives.handwritten()
    c = CASES[name]
    assert benchmark(f, c["tool"], c["args"], c["role"], c["agent_attributes"], c["resource_attributes"]) == (name == "allow")


@pytest.mark.parametrize("engine", ["cedar", "casbin"])
@pytest.mark.parametrize("name", CASES)
def test_other_engines(benchmark, engine, name):
    """cedarpy (Cedar) and pycasbin (Casbin) deciding the same CRM call (the `bench` extra)."""
    f = getattr(alternatives, engine)()
    if f is None:
        pytest.skip(f"{engine} is not installed (pip install 'callgate[bench]')")
    c = CASES[name]
    assert benchmark(f, c["tool"], c["args"], c["role"], c["agent_attributes"], c["resource_attributes"]) == (name == "allow")
