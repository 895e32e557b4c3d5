"""Differential tests: the engine against the reference evaluator, on random policies.

For random policies and requests (tests/support/strategies.py) the engine must give the same
decision, the same reason byte for byte and the same rule index as tests/support/reference.py, in
both semantics; it must reject exactly the policies strict semantics rejects; and its
(tool, role) index must agree with a brute-force scan over every rule.

Set CALLGATE_HYPOTHESIS_EXAMPLES to run more (or fewer) examples than the default 300.
"""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

callgate = pytest.importorskip("callgate")

from support.reference import (  # noqa: E402
    ReferenceEngine,
    ReferencePolicyError,
    ReferenceRequestError,
    scan_decide,
)
from support.strategies import (  # noqa: E402
    EQUALITY_CORNERS,
    leaf_policy_and_request,
    policies,
    policy_and_request,
)

SEMANTICS = ["strict", "perso"]
EXAMPLES = int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "300"))
diff_settings = settings(max_examples=EXAMPLES, deadline=None)


def _show(policy, request) -> str:
    """The failing input, printable (repr keeps -0.0, NUL and big ints visible)."""
    return f"\npolicy = {json.dumps(policy, ensure_ascii=False)}\nrequest = {request!r}"


def _engine_outcome(policy, semantics, request):
    """The engine's (decision, reason, rule), or the RequestError class if it raised."""
    tool, role, args, agent, resource = request
    engine = callgate.Engine.from_dict(policy, semantics=semantics)
    try:
        d = engine.evaluate(tool, args, role=role, agent_attributes=agent,
                            resource_attributes=resource)
    except callgate.RequestError:
        return callgate.RequestError
    return d.decision, d.reason, d.rule


@pytest.mark.parametrize("semantics", SEMANTICS)
@diff_settings
@given(data=st.data())
def test_engine_matches_reference(semantics, data):
    """Decision, exact reason and rule index equal the reference's, in both semantics.

    Strict runs on strict-valid policies; perso runs on perso policies, which also name
    undeclared roles and tools."""
    policy, request = data.draw(policy_and_request(semantics))
    tool, role, args, agent, resource = request
    try:
        expected = ReferenceEngine(policy, semantics).evaluate(tool, args, role, agent, resource)
    except ReferenceRequestError:
        expected = callgate.RequestError
    assert _engine_outcome(policy, semantics, request) == expected, _show(policy, request)


@pytest.mark.parametrize("semantics", SEMANTICS)
@diff_settings
@given(data=st.data())
def test_single_leaf_matches_reference(semantics, data):
    """Same as above on one-leaf policies fed corner values: number and equality corners
    (1 vs 1.0, -0.0, 64-bit edges, true vs 1), set and value display in reasons."""
    policy, request = data.draw(leaf_policy_and_request(semantics))
    tool, role, args, agent, resource = request
    expected = ReferenceEngine(policy, semantics).evaluate(tool, args, role, agent, resource)
    assert _engine_outcome(policy, semantics, request) == expected, _show(policy, request)


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_field_equals_corners_exhaustive(semantics):
    """FieldEquals over every ordered pair of equality corners (int vs float, -0.0, 64-bit
    edges, big ints, true vs 1, nested [1] vs [1.0]), plain and under Not: decision,
    reason and rule equal the reference's. Deterministic, so a corner can't be missed."""
    leaf = {"FieldEquals": {"source_a": "AgentAttributes", "field_a": "x",
                            "source_b": "ResourceAttributes", "field_b": "y"}}
    for condition in (leaf, {"Not": leaf}):
        policy = {"version": "eq", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
                  "rules": [{"tool_name": "t", "roles": ["r"], "condition": condition}]}
        ref = ReferenceEngine(policy, semantics)
        engine = callgate.Engine.from_dict(policy, semantics=semantics)
        for a in EQUALITY_CORNERS:
            for b in EQUALITY_CORNERS:
                d = engine.evaluate("t", {}, role="r", agent_attributes={"x": a},
                                    resource_attributes={"y": b})
                expected = ref.evaluate("t", {}, "r", {"x": a}, {"y": b})
                assert (d.decision, d.reason, d.rule) == expected, (condition, a, b)


@pytest.mark.parametrize("semantics", SEMANTICS)
def test_numeric_corners_exhaustive(semantics):
    """NumericCheck for every op, a few thresholds (0, -0.0, 2**53, 2**63, 1e16, 0.5) and
    every corner value (ints rounded to the nearest double, non-numbers), plain and under
    Not: decision, reason (K and V display) and rule equal the reference's."""
    thresholds = [0, -0.0, 0.5, 500.0, 9007199254740992.0, 9223372036854775808.0, 1e16, -1e300]
    for op in ("Lt", "Lte", "Gt", "Gte", "Eq"):
        for k in thresholds:
            leaf = {"NumericCheck": {"source": "Arguments", "field": "x", "op": op, "value": k}}
            for condition in (leaf, {"Not": leaf}):
                policy = {"version": "num", "default_action": "Allow", "tools": ["t"],
                          "roles": ["r"],
                          "rules": [{"tool_name": "t", "roles": ["r"], "condition": condition}]}
                ref = ReferenceEngine(policy, semantics)
                engine = callgate.Engine.from_dict(policy, semantics=semantics)
                for x in EQUALITY_CORNERS:
                    d = engine.evaluate("t", {"x": x}, role="r")
                    expected = ref.evaluate("t", {"x": x}, "r")
                    assert (d.decision, d.reason, d.rule) == expected, (condition, x)


@diff_settings
@given(policy=policies("perso"))
def test_strict_loader_rejects_what_reference_rejects(policy):
    """A policy naming an undeclared role or an undeclared non-glob tool is a PolicyError
    under strict semantics; one the reference accepts loads (a glob matching nothing is
    only a warning)."""
    try:
        ReferenceEngine(policy, "strict")
    except ReferencePolicyError:
        with pytest.raises(callgate.PolicyError):
            callgate.Engine.from_dict(policy, semantics="strict")
        return
    callgate.Engine.from_dict(policy, semantics="strict")
    # perso accepts every one of these policies.
    callgate.Engine.from_dict(policy, semantics="perso")


@pytest.mark.parametrize("semantics", SEMANTICS)
@diff_settings
@given(data=st.data())
def test_engine_index_matches_scan(semantics, data):
    """The engine's hashed (tool, role) index picks the same decision and rule as a plain
    scan over every rule (reference.scan_decide), which never builds an index."""
    policy, request = data.draw(policy_and_request(semantics))
    tool, role, args, agent, resource = request
    expected = scan_decide(policy, semantics, tool, role, args, agent, resource)
    outcome = _engine_outcome(policy, semantics, request)
    assert outcome is not callgate.RequestError, _show(policy, request)
    assert (outcome[0], outcome[2]) == expected, _show(policy, request)
