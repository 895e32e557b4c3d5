"""Policy v2 through the public Engine API: the ops example, Elevate, context, approvals.

docs/policy-v2.md is the contract; tests/engine/test_v2_differential.py holds the engine to the
reference evaluator on random policies. These tests pin the API a host programs against.
"""

from __future__ import annotations

import logging
import re
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callgate import Call, Decision, Engine, examples

OPS_CASES = examples.cases("ops")
MONDAY = "2026-11-23T10:00:00+01:00"
SMALL_TRANSFER = {"payment": {"amount": 500, "currency": "EUR"}}


@pytest.fixture(scope="module")
def ops() -> Engine:
    return Engine.from_dict(examples.policy("ops"))


@pytest.mark.parametrize("case", OPS_CASES, ids=[c["name"] for c in OPS_CASES])
def test_ops_example_decisions(ops, case):
    """Every case of the shipped v2 example decides as its file says (decision, rule, approvals)."""
    d = ops.evaluate(case["tool"], case["args"], role=case["role"], context=case.get("context"))
    want = case["expected"]
    assert (d.decision, d.rule, d.approvals_required) == (want["decision"], want["rule"], want["approvals_required"])


@pytest.mark.parametrize("case", OPS_CASES, ids=[c["name"] for c in OPS_CASES])
def test_ops_example_matches_reference(ops, case):
    """The native engine and the reference evaluator agree on decision, rule, approvals and
    the exact reason for every ops case."""
    from support.reference import ReferenceEngine

    ref = ReferenceEngine(examples.policy("ops"))
    d = ops.evaluate(case["tool"], case["args"], role=case["role"], context=case.get("context"))
    out = ref.evaluate(case["tool"], case["args"], case["role"], {}, {}, context=case.get("context"))
    assert (d.decision, d.reason, d.rule, d.approvals_required) == (*out, out.approvals_required)


def test_reasons_of_the_new_outcomes(ops):
    """The decision texts of docs/policy-v2.md: tier defaults, deny rules (passed and
    undetermined), elevate rules, a time window outside its hours."""
    assert ops.evaluate("search_docs", {}, role="agent").reason == (
        "search_docs allowed for role 'agent': no rule covers this tool for this role (tier 'public' default Allow)")
    assert ops.evaluate("read_file", {"path": "/home/a"}, role="agent").reason == (
        "read_file allowed for role 'agent': no rule grants this tool for this role (tier 'read' default Allow)")
    assert ops.evaluate("delete_file", {}, role="oncall").reason == (
        "delete_file requires 2 approvals for role 'oncall': no rule covers this tool for this role "
        "(tier 'destructive' default Elevate)")
    assert ops.evaluate("delete_file", {}, role="agent").reason == "delete_file denied for role 'agent': rule 2 forbids it"
    assert ops.evaluate("read_file", {"path": "/etc/passwd"}, role="agent").reason == (
        "read_file denied for role 'agent': rule 1 forbids it: Arguments.path = \"/etc/passwd\" matches glob \"/etc/*\"")
    assert ops.evaluate("read_file", {}, role="agent").reason == (
        "read_file denied for role 'agent': rule 1 forbids it and could not be evaluated: Arguments.path is missing")
    assert ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent").reason == (
        "transfer_funds requires 2 approvals for role 'agent': rule 6 condition passed")
    saturday = ops.evaluate("transfer_funds", {"payment": {"amount": 3000}}, role="oncall",
                            context={"time": "2026-11-21T10:00:00Z", "risk_score": 10})
    assert saturday.reason == (
        "transfer_funds denied for role 'oncall': Context.time = \"2026-11-21T10:00:00Z\" is outside "
        "Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris (rule 5)")


def test_decision_object_carries_elevate():
    """Decision(...) validates approvals against the decision; to_dict and equality include them."""
    d = Decision("Elevate", 3, "needs two", approvals_required=2)
    assert (d.decision, d.rule, d.approvals_required, d.allowed) == ("Elevate", 3, 2, False)
    assert d.to_dict() == {"decision": "Elevate", "reason": "needs two", "rule": 3, "approvals_required": 2}
    assert d != Decision("Elevate", 3, "needs two", approvals_required=1)
    assert Decision("Allow", None, "ok").approvals_required == 0
    assert Decision("Allow", None, "ok").to_dict() == {"decision": "Allow", "reason": "ok", "rule": None}
    with pytest.raises(ValueError):
        Decision("Elevate", 1, "x")
    with pytest.raises(ValueError):
        Decision("Allow", 1, "x", approvals_required=1)


def test_context_reaches_conditions(ops):
    """context= is the Context source: the same call flips with the host-supplied time."""
    args = {"payment": {"amount": 3000}}
    assert ops.evaluate("transfer_funds", args, role="oncall", context={"time": MONDAY, "risk_score": 10}).allowed
    assert not ops.evaluate("transfer_funds", args, role="oncall", context={"time": MONDAY, "risk_score": 90}).allowed
    assert not ops.evaluate("transfer_funds", args, role="oncall").allowed  # no context: the window is U


def _signed(ops, approver, key, call, **kw):
    ops.trust_approver(approver, key.public_key())
    return ops.approve(call, approver=approver, key=key, **kw)


def test_two_approvals_turn_elevate_into_allow(engine_class):
    """Two valid approvals from distinct trusted approvers, bound to this very call, make the
    Elevate an Allow with the same rule; the reason names the approvers."""
    ops = engine_class.from_dict(examples.policy("ops"))
    call = Call("transfer_funds", SMALL_TRANSFER, "agent")
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    tokens = [_signed(ops, "alice", alice, call), _signed(ops, "bob", bob, call)]
    d = ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=tokens)
    assert (d.decision, d.rule, d.approvals_required) == ("Allow", 5, 0)
    assert d.reason == ("transfer_funds requires 2 approvals for role 'agent': rule 6 condition passed; "
                        "approved by 'alice', 'bob'")


def test_approvals_do_not_count_when_they_should_not(engine_class):
    """One approver twice counts once; an approval for other arguments does not count; a
    spent approval does not count again; each time the call stays Elevate and says why."""
    ops = engine_class.from_dict(examples.policy("ops"))
    call = Call("transfer_funds", SMALL_TRANSFER, "agent")
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    a1, a2 = _signed(ops, "alice", alice, call), _signed(ops, "alice", alice, call)
    d = ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=[a1, a2])
    assert d.decision == "Elevate" and "same approver counted once" in d.reason
    other = _signed(ops, "bob", bob, Call("transfer_funds", {"payment": {"amount": 999}}, "agent"))
    d = ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=[a1, other])
    assert d.decision == "Elevate" and "different arguments" in d.reason
    b1 = _signed(ops, "bob", bob, call)
    assert ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=[a1, b1]).allowed
    again = ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=[a1, b1])
    assert again.decision == "Elevate" and "already used" in again.reason


def test_approvals_are_bound_to_the_policy(engine_class):
    """A reload changes the policy digest: approvals signed before it no longer count."""
    ops = engine_class.from_dict(examples.policy("ops"))
    call = Call("transfer_funds", SMALL_TRANSFER, "agent")
    alice, bob = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    tokens = [_signed(ops, "alice", alice, call), _signed(ops, "bob", bob, call)]
    changed = examples.policy("ops")
    changed["version"] = "ops-2.0.1"
    ops.reload(changed)
    d = ops.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=tokens)
    assert d.decision == "Elevate" and "different policy" in d.reason


def test_approvals_never_touch_allow_or_deny(ops):
    """Approvals only ever turn an Elevate into an Allow: a Deny stays a Deny."""
    d = ops.evaluate("transfer_funds", {"payment": {"amount": 20000}}, role="agent", approvals=["cga1.x.y"])
    assert (d.decision, d.rule) == ("Deny", 3)


ELEVATE = {"version": "approvals-1", "default_action": "Deny", "tools": ["delete_customer", "transfer"],
           "roles": ["agent", "intern"],
           "rules": [{"tool_name": "delete_customer", "roles": ["agent"], "effect": "elevate", "approvals": 1},
                     {"tool_name": "transfer", "roles": ["agent", "intern"], "effect": "elevate", "approvals": 1}]}
DELETE = ("delete_customer", {"customer_id": "C-2038"})


def test_an_approval_is_spent_in_one_process_only(engine_class):
    """Finding 3a: two engines (two proxy processes) with the same policy and the same trusted
    approver: an approval signed for the first runs the call there once; the second refuses
    it as "different ledger" (its ledger never saw it spent), and the first refuses it again
    as "already used". Each engine's own approvals work in it, and so do approvals signed
    elsewhere for its ledger id (Engine.approve(ledger=...))."""
    key = Ed25519PrivateKey.generate()
    first, second = engine_class.from_dict(ELEVATE), engine_class.from_dict(ELEVATE)
    for e in (first, second):
        e.trust_approver("bob", key.public_key())
    call = Call(*DELETE, "agent")
    token = first.approve(call, approver="bob", key=key)
    assert first.evaluate(*DELETE, role="agent", approvals=[token]).allowed
    elsewhere = second.evaluate(*DELETE, role="agent", approvals=[token])
    assert elsewhere.decision == "Elevate"
    assert elsewhere.reason == ("delete_customer requires 1 approval for role 'agent': rule 1 has no condition; "
                                "0 of 1 approvals valid: approval 1 (bob): different ledger")
    again = first.evaluate(*DELETE, role="agent", approvals=[token])
    assert again.decision == "Elevate" and again.reason.endswith("approval 1 (bob): already used")
    assert second.evaluate(*DELETE, role="agent", approvals=[second.approve(call, approver="bob", key=key)]).allowed
    # an approval service (any engine with the same policy) signs for the ledger of the process that runs the call
    for_second = first.approve(call, approver="bob", key=key, ledger=second.ledger_id)
    assert second.evaluate(*DELETE, role="agent", approvals=[for_second]).allowed
    not_here = first.approve(call, approver="bob", key=key, ledger=second.ledger_id)
    assert first.evaluate(*DELETE, role="agent", approvals=[not_here]).decision == "Elevate"


def test_ledger_id_is_per_engine_random_and_survives_reload(engine_class):
    """Engine.ledger_id: "mem-" and 32 random hex digits, different for every engine, the same
    for the life of one engine (a reload keeps the ledger, and the policy digest already binds
    the policy)."""
    a, b = engine_class.from_dict(ELEVATE), engine_class.from_dict(ELEVATE)
    assert re.fullmatch(r"mem-[0-9a-f]{32}", a.ledger_id) and a.ledger_id != b.ledger_id
    before = a.ledger_id
    a.reload(dict(ELEVATE, version="approvals-2"))
    assert a.ledger_id == before


def test_trusting_an_approver_warns_once_that_the_ledger_is_local(caplog, engine_class):
    """Every engine that accepts approvals says, once, at WARNING on logger
    "callgate.approvals", that its nonce ledger is local to this process, naming its id; an
    engine that only signs says nothing."""
    caplog.set_level(logging.WARNING, logger="callgate.approvals")
    key = Ed25519PrivateKey.generate()
    signer = engine_class.from_dict(ELEVATE)
    signer.approve(Call(*DELETE, "agent"), approver="bob", key=key)
    assert [r for r in caplog.records if r.name == "callgate.approvals"] == []
    e = engine_class.from_dict(ELEVATE)
    e.trust_approver("bob", key.public_key())
    e.trust_approver("carol", Ed25519PrivateKey.generate().public_key())
    other = engine_class.from_dict(ELEVATE)
    other.trust_approver("bob", key.public_key())
    records = [r for r in caplog.records if r.name == "callgate.approvals"]
    assert [r.levelno for r in records] == [logging.WARNING, logging.WARNING]
    assert e.ledger_id in records[0].getMessage() and other.ledger_id in records[1].getMessage()
    assert "local to this process" in records[0].getMessage()


def test_one_key_cannot_be_two_approvers(engine_class):
    """Finding 3b: trusting one public key under a second name is refused, so one key holder
    cannot satisfy a 2-approval Elevate by signing as two names."""
    engine = engine_class.from_dict(examples.policy("ops"))
    key = Ed25519PrivateKey.generate()
    engine.trust_approver("alice", key.public_key())
    with pytest.raises(ValueError, match="already trusted as approver 'alice'"):
        engine.trust_approver("alice2", key.public_key())
    call = Call("transfer_funds", SMALL_TRANSFER, "agent")
    tokens = [engine.approve(call, approver=name, key=key) for name in ("alice", "alice2")]
    d = engine.evaluate("transfer_funds", SMALL_TRANSFER, role="agent", approvals=tokens)
    assert d.decision == "Elevate"
    assert d.reason.endswith("; 1 of 2 approvals valid: approval 2 (alice2): unknown approver")


def test_approvals_bind_role_attributes_and_context(engine_class):
    """Finding 3c: an approval signed for role "agent" at risk 10 does not allow the call as
    role "intern" at risk 99, nor with any other role, agent attributes, resource attributes
    or context; the exact call it was signed for is allowed."""
    engine = engine_class.from_dict(ELEVATE)
    key = Ed25519PrivateKey.generate()
    engine.trust_approver("bob", key.public_key())
    args, agent, resource = {"amount": 5}, {"user_id": "u-1"}, {"owner": "u-1"}
    signed = Call("transfer", args, "agent", agent_attributes=agent, resource_attributes=resource,
                  context={"risk": 10})
    token = engine.approve(signed, approver="bob", key=key)
    exact = dict(role="agent", agent_attributes=agent, resource_attributes=resource, context={"risk": 10})
    for change, cause in [(dict(role="intern", context={"risk": 99}), "different role"),
                          (dict(context={"risk": 99}), "different context"),
                          (dict(agent_attributes={"user_id": "u-2"}), "different agent attributes"),
                          (dict(resource_attributes={}), "different resource attributes")]:
        d = engine.evaluate("transfer", args, approvals=[token], **{**exact, **change})
        assert d.decision == "Elevate" and d.reason.endswith(f"approval 1 (bob): {cause}"), (change, d.reason)
    d = engine.evaluate("transfer", args, approvals=[token], **exact)
    assert d.allowed, d.reason


def test_a_future_now_does_not_block_later_approvals(engine_class):
    """Finding 3d: evaluate(now=<far future>) with approvals issued then is allowed, and does
    not move the nonce ledger's horizon: an ordinary approval evaluated afterwards (now=None,
    the real time) is still allowed."""
    engine = engine_class.from_dict(ELEVATE)
    key = Ed25519PrivateKey.generate()
    engine.trust_approver("bob", key.public_key())
    call = Call(*DELETE, "agent")
    far = time.time() + 10**8
    future = engine.approve(call, approver="bob", key=key, now=far)
    assert engine.evaluate(*DELETE, role="agent", approvals=[future], now=far).allowed
    later = engine.evaluate(*DELETE, role="agent", approvals=[engine.approve(call, approver="bob", key=key)])
    assert later.allowed, later.reason
    replayed = engine.evaluate(*DELETE, role="agent", approvals=[future], now=far)
    assert replayed.decision == "Elevate" and replayed.reason.endswith("already used")


def test_discovered_tools_get_their_tier_and_survive_reload(engine_class):
    """Tools found at run time join the policy with their tier (so tier rules and defaults
    cover them), and a reload keeps them unless new ones are given."""
    policy = examples.policy("ops")
    e = engine_class.from_dict(policy, discovered_tools={"fetch_url": "read", "drop_table": "destructive"})
    assert e.evaluate("fetch_url", {}, role="agent").allowed
    assert e.evaluate("drop_table", {}, role="agent").rule == 1  # the agents' destructive deny
    assert e.evaluate("drop_table", {}, role="oncall").approvals_required == 2
    e.reload(policy)
    assert e.evaluate("fetch_url", {}, role="agent").allowed
    e.reload(policy, discovered_tools={})
    assert not e.evaluate("fetch_url", {}, role="agent").allowed


def test_v1_policies_decide_as_before(crm_engine, engine_class):
    """A v1 policy's results keep their meaning under the new result layout."""
    d = crm_engine.evaluate("process_refund", {"amount": 800}, role="agent")
    assert (d.decision, d.rule, d.approvals_required) == ("Deny", 3, 0)
    assert d.reason == "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"


def _quantifier_policy(condition: dict) -> Engine:
    return Engine.from_dict({"version": "q", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
                             "rules": [{"tool_name": "t", "roles": ["r"], "condition": condition}]})


def test_nested_loops_over_the_request_end_in_an_error():
    """Every over a, whose body runs Every over b (work ~ len(a) * len(b)), stops at the
    work bound with RequestError 'work_limit' instead of running quadratically; the reason
    call fails the same way. No decision comes out of an unfinished evaluation."""
    from callgate import RequestError

    e = _quantifier_policy({"Every": {"source": "Arguments", "field": "a", "condition": {
        "Every": {"source": "Arguments", "field": "b", "condition": {"Type": {"source": "Element", "is": "number"}}}}}})
    n = 20_000
    with pytest.raises(RequestError) as exc:
        e.evaluate("t", {"a": list(range(n)), "b": list(range(n))}, role="r")
    assert exc.value.code == "work_limit"
    assert e.evaluate("t", {"a": [1, 2], "b": [3, 4]}, role="r").allowed  # small: decided


def test_loop_invariant_reads_are_charged_and_linear_bodies_are_not():
    """A body that re-reads a big field per element hits the bound; a body that reads only
    its element decides over 100k elements."""
    from callgate import RequestError

    invariant = _quantifier_policy({"Every": {"source": "Arguments", "field": "a", "condition": {
        "Length": {"source": "Arguments", "field": "big", "op": "Gte", "value": 0}}}})
    with pytest.raises(RequestError) as exc:
        invariant.evaluate("t", {"a": list(range(5_000)), "big": list(range(50_000))}, role="r")
    assert exc.value.code == "work_limit"
    linear = _quantifier_policy({"Every": {"source": "Arguments", "field": "a", "condition": {
        "NumericCheck": {"source": "Element", "op": "Gte", "value": 0}}}})
    assert linear.evaluate("t", {"a": list(range(100_000))}, role="r").allowed
