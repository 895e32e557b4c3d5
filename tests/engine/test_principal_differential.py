"""The `Principal` source and `ScopeCheck` (docs/principals.md) decided by the native core,
the wasm module and the independent reference evaluator (tests/support/reference.py), which
must agree on the decision, the exact reason, the rule and the approvals required.

The Principal object reaches the core as one more request element (the request array's 7th,
the json form's "principal" key); without one every Principal field is missing, so a
condition over it is unknown and a deny rule that cannot be evaluated denies.
"""

from __future__ import annotations

import functools

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate.values import dumps_exact
from support.backends import native_v2_unavailable, wasm_v2_unavailable
from support.reference import ReferenceEngine, ReferenceRequestError, scope_covers
from support.strategies import v2_policy_and_request

SEGMENTS = ["pg", "read", "write", "analytics", "x", "*"]


def _outcome(d) -> tuple:
    return (d.decision, d.reason, d.rule, d.approvals_required)


def _engines() -> list:
    import callgate

    out = [("native", callgate.Engine)]
    if not wasm_v2_unavailable():
        from callgate.wasm import WasmEngine

        out.append(("wasm", WasmEngine))
    return out


@functools.lru_cache(maxsize=64)
def _engine(engine_cls, policy_json: bytes):
    # a wasm engine instantiates a module (~0.1 s): examples that repeat a policy reuse it
    return engine_cls.from_dict(orjson.loads(policy_json))


def _decide(engine_cls, policy: dict, tool: str, role: str, args, agent, resource, context, principal):
    """One request through the json form, the principal under its "principal" key."""
    import callgate

    engine = _engine(engine_cls, orjson.dumps(policy, option=orjson.OPT_SORT_KEYS))
    ctx = {"role": role, "agent_attrs": agent or {}, "resource_attrs": resource or {}}
    if context is not None:
        ctx["context"] = context
    if principal is not None:
        ctx["principal"] = principal
    try:
        d = engine.evaluate_json(tool, dumps_exact(args if args is not None else {}), dumps_exact(ctx))
    except (callgate.RequestError, orjson.JSONEncodeError):
        return "RequestError"
    return _outcome(d)


def _reference(policy: dict, tool, role, args, agent, resource, context, principal):
    try:
        r = ReferenceEngine(policy).evaluate(tool, args, role, agent, resource, context, principal)
    except ReferenceRequestError:
        return "RequestError"
    return r.full


def _as_principal(cond):
    """The same condition reading Principal where it read Context."""
    if isinstance(cond, dict):
        return {k: ("Principal" if k.startswith("source") and v == "Context" else _as_principal(v))
                for k, v in cond.items()}
    if isinstance(cond, list):
        return [_as_principal(c) for c in cond]
    return cond


scopes = st.lists(st.sampled_from(SEGMENTS), min_size=1, max_size=3).map(".".join)
concrete = st.lists(st.sampled_from(SEGMENTS[:-1]), min_size=1, max_size=3).map(".".join)
principal_objects = st.one_of(
    st.none(),
    st.fixed_dictionaries({"user": st.sampled_from(["user:alice", "user:bob"]),
                           "actor": st.sampled_from(["worker:sql", "supervisor:triage"]),
                           "depth": st.integers(1, 4),
                           "scopes": st.lists(st.one_of(scopes, scopes, st.integers(0, 3)), max_size=4)}),
    st.fixed_dictionaries({"scopes": st.one_of(st.text(max_size=3), st.integers(), st.none())}),
)
scope_checks = st.fixed_dictionaries(
    {"requires": st.lists(concrete, min_size=1, max_size=3)},
    optional={"mode": st.sampled_from(["all", "any"])}).map(lambda body: {"ScopeCheck": body})


def _one_rule(cond, effect: str) -> dict:
    rule = {"tool_name": "t", "roles": ["r"], "effect": effect, "condition": cond}
    if effect == "elevate":
        rule["approvals"] = 1
    return {"version": "p", "default_action": "Deny", "tools": ["t"], "roles": ["r"], "rules": [rule]}


settings_ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module", autouse=True)
def _native():
    if native_v2_unavailable():
        pytest.skip(native_v2_unavailable())
    yield
    _engine.cache_clear()   # the wasm instances go before the interpreter's shutdown


@settings_
@given(cond=st.one_of(scope_checks, scope_checks.map(lambda c: {"Not": c}),
                      st.tuples(scope_checks, scope_checks).map(lambda cs: {"Any": list(cs)})),
       effect=st.sampled_from(["allow", "deny", "elevate"]), principal=principal_objects)
def test_scope_checks_agree(cond, effect, principal):
    """Random ScopeChecks (all/any, under Not and Any), every effect, random Principal
    objects (wildcard patterns, non-strings, a non-array, none): native, wasm and reference
    agree exactly."""
    policy = _one_rule(cond, effect)
    want = _reference(policy, "t", "r", {}, None, None, None, principal)
    for name, cls in _engines():
        assert _decide(cls, policy, "t", "r", {}, None, None, None, principal) == want, (name, policy, principal)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_policies_over_the_principal_source_agree(data):
    """The random v2 policies of the main differential suite with every Context reference
    turned into a Principal one, and the request's context object given as the principal:
    every leaf kind, pointer and quantifier over Principal agrees across the backends."""
    policy, (tool, role, args, agent, resource, context) = data.draw(v2_policy_and_request())
    policy = {**policy, "rules": [{**r, **({"condition": _as_principal(r["condition"])} if "condition" in r else {})}
                                  for r in policy["rules"]]}
    principal = context if isinstance(context, dict) else None
    want = _reference(policy, tool, role, args, agent, resource, None, principal)
    for name, cls in _engines():
        assert _decide(cls, policy, tool, role, args, agent, resource, None, principal) == want, (name, policy)


@given(pattern=scopes, scope=concrete)
def test_the_reference_cover_rule_is_the_products(pattern, scope):
    """The reference's own cover rule and callgate.scopes.covers agree on every pair; the
    compiled form (the set of covering patterns) holds exactly the patterns that cover."""
    from callgate.scopes import covering_patterns, covers

    assert scope_covers(pattern, scope) == covers(pattern, scope)
    assert (pattern in covering_patterns(scope)) == covers(pattern, scope)


def test_missing_principal_is_unknown_and_a_deny_rule_denies():
    """No chain: an allow over Principal does not apply (reason: Principal.scopes is
    missing) and a deny over Principal denies because it cannot be evaluated."""
    allow = _one_rule({"ScopeCheck": {"requires": ["pg.read.x"]}}, "allow")
    deny = _one_rule({"StringCheck": {"source": "Principal", "field": "user", "op": "Eq", "value": "user:bob"}}, "deny")
    deny["default_action"] = "Allow"
    for name, cls in _engines():
        got = _decide(cls, allow, "t", "r", {}, None, None, None, None)
        assert got == ("Deny", "t denied for role 'r': Principal.scopes is missing (rule 1)", 0, 0), name
        got = _decide(cls, deny, "t", "r", {}, None, None, None, None)
        assert got[0] == "Deny" and "could not be evaluated: Principal.user is missing" in got[1], name


def test_the_request_array_takes_the_principal_as_its_seventh_element():
    """The request array form: a 7th element is the principal (after the context, which may
    be null); an 8th element is a syntax error, a non-object principal a type error."""
    import callgate
    from callgate import _native

    engine = callgate.Engine.from_dict(_one_rule({"ScopeCheck": {"requires": ["a.b"]}}, "allow"))
    scratch = engine._state.scratch()
    ok = _native.eval_request(scratch.address, b'["t","r",{},{},{},null,{"scopes":["a.*"]}]')
    assert ok >= 0 and ok & 3 == 1
    for bad in (b'["t","r",{},{},{},{},{"scopes":[]},{}]', b'["t","r",{},{},{},{},"alice"]'):
        assert _native.eval_request(scratch.address, bad) < 0
