"""Cedar-style properties of policy language v2 (docs/policy-v2.md "Effects"), by hypothesis.

Each property holds for every policy and request, whatever the conditions say; they pin
the precedence of deny, allow, elevate and defaults rather than any one leaf:

(a) no allow or elevate rule applies and the default would not allow => not Allow;
(b) a deny rule applies (condition T or U, or none) => Deny, by the first such rule;
(c) adding a deny rule never turns a Deny into Allow/Elevate (nor makes any decision other
    than the old one or Deny);
(d) adding an allow rule never turns an Allow decided by a rule into a Deny;
(e) permuting or duplicating rules never changes the decision and approvals_required;
(f) a deny rule whose condition is U, for the request's (tool, role) => Deny.

They run against the reference evaluator (tests/support/reference.py), and against the native
engine once callgate.Engine.from_dict accepts v2 policies (skipped, saying why, until then).
"Applies" and E are computed with the reference's own pieces (its rule table and condition
walker), so for the native engine these are properties of the native decision given the
reference's reading of each condition.

Set CALLGATE_HYPOTHESIS_EXAMPLES to change the number of examples (default 150; tests/conftest.py
defines no hypothesis profile, and the other differential files use the same variable).
"""

from __future__ import annotations

import copy
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support.backends import native_v2_unavailable
from support.reference import T, U, ReferenceEngine, ReferenceRequestError
from support.strategies import V2_TIERS, v2_policies, v2_requests, v2_rules

# 150 examples per test keeps the file well under a minute with the native half running.
EXAMPLES = int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "150"))
prop_settings = settings(max_examples=EXAMPLES, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
BACKENDS = ["reference", "native"]


def decide(backend: str, policy: dict, request: tuple):
    """``(decision, approvals_required, rule)`` from the reference or the native engine;
    None when the request is a RequestError (properties say nothing about errors)."""
    tool, role, args, agent, resource, context = request
    if backend == "reference":
        try:
            d = ReferenceEngine(policy).evaluate(tool, args, role, agent, resource, context)
        except ReferenceRequestError:
            return None
        return d.decision, d.approvals_required, d.rule
    import callgate
    engine = callgate.Engine.from_dict(policy)
    try:
        d = engine.evaluate(tool, args, role=role, agent_attributes=agent,
                            resource_attributes=resource, context=context)
    except callgate.RequestError:
        return None
    return d.decision, d.approvals_required, d.rule


def backend_or_skip(backend: str) -> None:
    if backend == "native":
        why = native_v2_unavailable()
        if why:
            pytest.skip(why)


def facts(policy: dict, request: tuple):
    """E and each collected rule's condition value, from the reference, or None when
    the request is a RequestError."""
    tool, role, args, agent, resource, context = request
    ref = ReferenceEngine(policy)
    try:
        sources = ref.sources_for(args, agent, resource, context)
    except ReferenceRequestError:
        return None
    collected = ref.collected(tool, role)
    values = {i: ref.condition_value(i, sources)[0] for i in collected}
    return ref, collected, values


@st.composite
def policy_request(draw, max_rules: int = 6):
    policy = draw(v2_policies(max_rules))
    return policy, draw(v2_requests(policy))


def _show(policy, request) -> str:
    import json
    return f"\npolicy = {json.dumps(policy, ensure_ascii=False)}\nrequest = {request!r}"


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=policy_request())
def test_a_no_grant_and_default_not_allow_is_not_allow(backend, data):
    """(a) If no allow or elevate rule of E applies (its condition is T) and the default
    of step 5 (the tier default, else default_action) is not Allow, the decision is not
    Allow: only step 2 and step 5 ever allow."""
    backend_or_skip(backend)
    policy, request = data
    found = facts(policy, request)
    if found is None:
        return
    ref, collected, values = found
    grant_applies = any(ref.effect(i) != "deny" and values[i] == T for i in collected)
    default_allows = ref.default_for(request[0])[0] == "Allow"
    outcome = decide(backend, policy, request)
    if not grant_applies and not default_allows:
        assert outcome[0] != "Allow", _show(policy, request)


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=policy_request())
def test_b_applying_deny_rule_denies(backend, data):
    """(b) If a deny rule of E applies (condition T or U, or no condition), the decision
    is Deny and the deciding rule is the first such rule in policy order."""
    backend_or_skip(backend)
    policy, request = data
    found = facts(policy, request)
    if found is None:
        return
    ref, collected, values = found
    applying = [i for i in collected if ref.effect(i) == "deny" and values[i] in (T, U)]
    if applying:
        decision, approvals, rule = decide(backend, policy, request)
        assert (decision, approvals, rule) == ("Deny", 0, applying[0]), _show(policy, request)


def _insert(policy: dict, rule: dict, position: int) -> dict:
    bigger = copy.deepcopy(policy)
    rules = bigger["rules"]
    rules.insert(min(position, len(rules)), rule)
    return bigger


@st.composite
def with_extra_rule(draw, effect: dict):
    """A policy, a request, and the policy with one more rule of ``effect`` inserted at a
    random position; the new rule often covers the request's (tool, role)."""
    policy, request = draw(policy_request())
    tools, roles = policy["tools"], policy["roles"]
    rule = draw(v2_rules(tools, roles, effect=st.just(effect)))
    if draw(st.booleans()) and request[0] in tools and request[1] in roles:
        aimed = {k: v for k, v in rule.items() if k not in ("tool_name", "tier")}
        rule = {"tool_name": request[0], **aimed, "roles": [request[1]]}
    position = draw(st.integers(0, len(policy["rules"])))
    return policy, _insert(policy, rule, position), request


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=with_extra_rule({"effect": "deny"}))
def test_c_adding_deny_never_loosens(backend, data):
    """(c) Adding a deny rule never turns a Deny into Allow or Elevate; more generally the
    new decision is the old one or Deny (a deny that does not apply leaves steps 2-5 as
    they were: the grants are the same, and step 5 only changes "covers" to "grants")."""
    backend_or_skip(backend)
    policy, bigger, request = data
    before, after = decide(backend, policy, request), decide(backend, bigger, request)
    if before is None:
        return
    if before[0] == "Deny":
        assert after[0] == "Deny", _show(bigger, request)
    assert after[:2] == before[:2] or after[0] == "Deny", _show(bigger, request)


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=with_extra_rule({}))
def test_d_adding_allow_keeps_rule_allow(backend, data):
    """(d) Adding an allow rule never turns an Allow decided by a rule (step 2) into a Deny:
    the old allow rule still applies and no deny was added. (An Allow by a default may
    become a Deny: a grant that does not apply replaces the default, step 4.)"""
    backend_or_skip(backend)
    policy, bigger, request = data
    before = decide(backend, policy, request)
    if before is None or before[0] != "Allow" or before[2] is None:
        return
    assert decide(backend, bigger, request)[0] == "Allow", _show(bigger, request)


@st.composite
def reordered(draw):
    """A policy, a request, and the policy with its rules permuted and some duplicated
    (inserted anywhere)."""
    policy, request = draw(policy_request())
    rules = list(policy["rules"])
    shuffled = draw(st.permutations(rules)) if rules else []
    if rules:
        for _ in range(draw(st.integers(0, 3))):
            extra = copy.deepcopy(draw(st.sampled_from(rules)))
            shuffled.insert(draw(st.integers(0, len(shuffled))), extra)
    other = dict(policy, rules=shuffled)
    return policy, other, request


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=reordered())
def test_e_rule_order_and_duplicates_do_not_matter(backend, data):
    """(e) Permuting or duplicating rules never changes the decision or approvals_required
    (the deciding rule's index may change): step 1 denies whichever deny applies first,
    step 3 takes the largest count over a set, steps 4 and 5 do not depend on order."""
    backend_or_skip(backend)
    policy, other, request = data
    before, after = decide(backend, policy, request), decide(backend, other, request)
    if before is None:
        return
    assert after[:2] == before[:2], _show(other, request)


# Conditions that are U for every request the strategies draw: the key "__absent__" is
# never in a request object, so the leaf reads a missing value; the wrappers keep U
# (Not U = U, All [T, U] = U, Any [F, U] = U).
_U_LEAVES = [
    {"NumericCheck": {"source": "Context", "pointer": "/__absent__/x", "op": "Gt", "value": 0}},
    {"StringCheck": {"source": "Arguments", "field": "__absent__", "op": "Glob", "value": "*"}},
    {"Length": {"source": "AgentAttributes", "field": "__absent__", "op": "Eq", "value": 0}},
    {"TimeWindow": {"source": "Context", "field": "__absent__", "start": "00:00", "end": "24:00",
                    "timezone": "UTC"}},
    {"Every": {"source": "ResourceAttributes", "pointer": "/__absent__", "condition": {"All": []}}},
    {"FieldEquals": {"source_a": "Arguments", "field_a": "__absent__", "source_b": "Context",
                     "field_b": "__absent__"}},
]


def _wrap_u(leaf: dict, how: int) -> dict:
    return [leaf, {"Not": leaf}, {"Not": {"Not": leaf}}, {"All": [{"All": []}, leaf]},
            {"Any": [{"Any": []}, leaf]}, {"Some": {"source": "Context", "field": "__absent__",
                                                   "condition": {"All": []}}}][how]


@st.composite
def with_u_deny(draw):
    """A policy and a request for a declared (tool, role), plus a deny rule for exactly
    that pair whose condition is U, inserted anywhere."""
    policy, request = draw(policy_request())
    tool, role = draw(st.sampled_from(policy["tools"])), draw(st.sampled_from(policy["roles"]))
    request = (tool, role) + request[2:]
    condition = _wrap_u(draw(st.sampled_from(_U_LEAVES)), draw(st.integers(0, 5)))
    target = draw(st.one_of(st.just({"tool_name": tool}), st.just({"tool_name": "*"})))
    rule = {**target, "roles": [role], "effect": "deny", "condition": condition}
    return _insert(policy, rule, draw(st.integers(0, len(policy["rules"])))), request


@pytest.mark.parametrize("backend", BACKENDS)
@prop_settings
@given(data=with_u_deny())
def test_f_undetermined_deny_denies(backend, data):
    """(f) A deny rule covering the request whose condition is U (missing data, under Not,
    All, Any or a quantifier) makes the decision Deny: a deny that cannot be evaluated
    denies. With the reference, the reason of the first applying deny rule says so when
    that rule is U."""
    backend_or_skip(backend)
    policy, request = data
    found = facts(policy, request)
    if found is None:
        return
    ref, collected, values = found
    u_denies = [i for i in collected if ref.effect(i) == "deny" and values[i] == U]
    assert u_denies, "the constructed rule must be collected and U"
    decision, approvals, _ = decide(backend, policy, request)
    assert (decision, approvals) == ("Deny", 0), _show(policy, request)
    if backend == "reference":
        first = min(i for i in collected if ref.effect(i) == "deny" and values[i] in (T, U))
        reason = ref.evaluate(*request[:1], request[2], request[1], *request[3:]).reason
        if values[first] == U:
            assert f"rule {first + 1} forbids it and could not be evaluated: " in reason


def test_tiers_listed_in_strictness_order():
    """The strategies and the reference agree on the tiers and their order."""
    from support.reference import TIERS
    assert list(TIERS) == V2_TIERS
