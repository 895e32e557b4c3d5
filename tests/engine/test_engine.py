"""The Python API of the native engine: decisions, reasons, rules, both request forms."""

from __future__ import annotations

import threading

import orjson
import pytest

import callgate
from callgate import PolicyError, RequestError, examples

from support.backends import evaluate_case

ALL_CASES = [(ex, sem, case) for ex in ("crm", "spec") for sem in ("strict", "perso") for case in examples.cases(ex)]


@pytest.mark.parametrize("example,semantics,case", ALL_CASES,
                         ids=[f"{e}-{s}-{c['name']}" for e, s, c in ALL_CASES])
def test_shared_cases(example, semantics, case, engine_class):
    """Every case of ../shared/data (shipped as callgate.examples) gets its expected decision in both semantics."""
    engine = engine_class.from_dict(examples.policy(example), semantics)
    d = evaluate_case(engine, case)
    assert d.decision == case["expected"]
    assert d.allowed == (case["expected"] == "Allow")


def test_issue_example_reason(crm_engine):
    """The reason names the tool, role, field, value seen, requirement and rule (1-based in text)."""
    d = crm_engine.evaluate("process_refund", {"order_id": "ORD-8821", "amount": 800}, role="agent",
                            agent_attributes={"user_id": "agt-099"}, resource_attributes={})
    assert d.decision == "Deny" and not d.allowed
    assert d.rule == 3
    assert d.reason == "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"


def test_default_action_has_no_rule(crm_engine):
    """A (tool, role) no rule covers is decided by default_action, with rule None."""
    d = crm_engine.evaluate("delete_customer", {}, role="agent")
    assert (d.decision, d.rule) == ("Deny", None)
    assert d.reason == ("delete_customer denied for role 'agent': no rule covers this tool for this role "
                        "(default_action Deny)")


def test_evaluate_json_matches_evaluate(crm_engine):
    """evaluate_json (the wasm ABI's shape) gives the same decision, rule and reason as evaluate."""
    for case in examples.cases("crm"):
        d1 = evaluate_case(crm_engine, case)
        ctx = orjson.dumps({"role": case["role"], "agent_attrs": case["agent_attributes"],
                            "resource_attrs": case["resource_attributes"]})
        d2 = crm_engine.evaluate_json(case["tool"], orjson.dumps(case["args"]), ctx)
        assert (d1.decision, d1.rule, d1.reason) == (d2.decision, d2.rule, d2.reason)


def test_evaluate_json_accepts_str(crm_engine):
    """evaluate_json takes str as well as bytes, and an escaped role is decoded before lookup."""
    d = crm_engine.evaluate_json("view_customer", "{}", '{"role": "\\u0061gent"}')
    assert d.decision == "Allow"
    assert d.reason == "view_customer allowed for role 'agent': rule 1 has no condition"


def test_perso_reasons(engine_class):
    """perso semantics reproduces the original engine's four reason strings."""
    e = engine_class.from_dict(examples.policy("crm"), "perso")
    assert e.evaluate("view_customer", {}, role="agent").reason == \
        "rule matched tool 'view_customer' for role 'agent'; no condition required"
    assert e.evaluate("process_refund", {"amount": 1}, role="agent").reason == \
        "rule matched tool 'process_refund' for role 'agent'; condition passed"
    assert e.evaluate("process_refund", {"amount": 501}, role="agent").reason == \
        "rule matched tool 'process_refund' for role 'agent'; condition failed"
    assert e.evaluate("nope", {}, role="agent").reason == \
        "no rule matched tool 'nope' for role 'agent'; applying default_action"


def test_nul_in_role_is_not_a_prefix_match(crm_engine):
    """'agent\\x00x' is a different role from 'agent' (exact code points, explicit lengths)."""
    assert crm_engine.evaluate("view_customer", {}, role="agent\x00x").decision == "Deny"
    assert crm_engine.evaluate_json("view_customer", b"{}", b'{"role":"agent\\u0000x"}').decision == "Deny"


def test_policy_version_and_semantics(crm_engine):
    """The engine exposes the loaded policy's version and its semantics."""
    assert crm_engine.policy_version == "perso-1.0.0"
    assert crm_engine.semantics == "strict"


def test_from_file_and_json(tmp_path, crm_policy, engine_class):
    """from_file and from_json load the same policy as from_dict."""
    path = tmp_path / "p.json"
    path.write_bytes(orjson.dumps(crm_policy))
    for engine in (engine_class.from_file(path), engine_class.from_json(path.read_text())):
        assert engine.evaluate("process_refund", {"amount": 200}, role="agent").allowed


def test_missing_file_is_a_policy_error(tmp_path, engine_class):
    """A missing policy file is a PolicyError naming the path."""
    with pytest.raises(PolicyError, match="cannot read"):
        engine_class.from_file(tmp_path / "nope.json")


def test_unknown_semantics_rejected(crm_policy, engine_class):
    """Only 'strict' and 'perso' are semantics."""
    with pytest.raises(ValueError, match="semantics"):
        engine_class.from_dict(crm_policy, "lenient")


def test_reload_swaps_policy(tmp_path, crm_policy, engine_class):
    """reload() replaces the policy; decisions follow the new one."""
    engine = engine_class.from_dict(crm_policy)
    stricter = dict(crm_policy, version="v2", rules=[r for r in crm_policy["rules"] if r["tool_name"] != "view_customer"])
    path = tmp_path / "v2.json"
    path.write_bytes(orjson.dumps(stricter))
    assert engine.evaluate("view_customer", {}, role="agent").allowed
    engine.reload(path)
    assert engine.policy_version == "v2"
    assert not engine.evaluate("view_customer", {}, role="agent").allowed


def test_reload_with_bad_policy_keeps_old(crm_policy, engine_class):
    """A reload that fails validation raises and leaves the old policy in force."""
    engine = engine_class.from_dict(crm_policy)
    with pytest.raises(PolicyError):
        engine.reload({"version": "x"})
    assert engine.evaluate("view_customer", {}, role="agent").allowed


def test_concurrent_evaluate_during_reload(crm_policy, engine_class):
    """While one thread reloads back and forth, evaluating threads always see one whole
    policy: a call is decided either as the old policy or as the new one would."""
    old = crm_policy
    new = dict(crm_policy, version="new", rules=[dict(r, condition={"NumericCheck": {
        "source": "Arguments", "field": "amount", "op": "Lte", "value": 100.0}}) if r["tool_name"] == "process_refund"
        else r for r in crm_policy["rules"]])
    engine = engine_class.from_dict(old)
    stop = threading.Event()
    bad: list = []

    def reader() -> None:
        while not stop.is_set():
            d = engine.evaluate("process_refund", {"amount": 300}, role="agent")
            if d.allowed:
                ok = d.reason == "process_refund allowed for role 'agent': rule 4 condition passed"
            else:
                ok = d.reason.startswith("process_refund denied for role 'agent': Arguments.amount = 300 is not <= 100")
            if not ok:
                bad.append(d.reason)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    for i in range(200):
        engine.reload(new if i % 2 == 0 else old)
    stop.set()
    for t in threads:
        t.join()
    assert bad == []


def test_decision_repr_and_dict(crm_engine):
    """Decision has a readable repr and the wasm ABI's dict shape."""
    d = crm_engine.evaluate("view_customer", {}, role="agent")
    assert d.to_dict() == {"decision": "Allow", "reason": "view_customer allowed for role 'agent': rule 1 has no condition", "rule": 0}
    assert "Allow" in repr(d)


def test_public_names():
    """The package's public surface is pinned: __all__ is exactly these names, each resolves,
    and the submodules a user reaches from `import callgate` alone are there on first use
    (without being imported by `import callgate` itself: it stays light)."""
    assert callgate.__all__ == ["BlobError", "Call", "CallgateError", "Decision", "Engine", "PolicyError",
                                "RequestError", "__version__"]
    for name in callgate.__all__:
        assert getattr(callgate, name) is not None
    assert issubclass(RequestError, callgate.CallgateError)
    assert set(callgate.SUBMODULES) == {"approvals", "audit", "examples", "language", "mcp", "policy",
                                        "policy_tests", "principals", "scopes", "wasm"}
    import subprocess
    import sys

    probe = ("import sys, callgate; assert 'pydantic' not in sys.modules and 'callgate.audit' not in sys.modules; "
             "callgate.audit.SqliteSink; callgate.examples.policy_path('crm'); print('ok')")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "ok", run.stderr
