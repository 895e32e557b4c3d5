"""Policy loading: validation errors with exact locations, perso's leniency, expansion."""

from __future__ import annotations

import copy

import pytest

from callgate import Engine, PolicyError, examples
from callgate.compiler import compile_policy, glob_match
from callgate.policy import json_schema


def base(**over) -> dict:
    p = {"version": "1", "default_action": "Deny", "tools": ["read", "write", "delete_a", "delete_b"],
         "roles": ["user", "admin"], "rules": []}
    p.update(over)
    return p


def rule(tool="read", roles=("user",), condition=None) -> dict:
    return {"tool_name": tool, "roles": list(roles), "condition": condition}


def num(field="amount", op="Lte", value=10, source="Arguments") -> dict:
    return {"NumericCheck": {"source": source, "field": field, "op": op, "value": value}}


def error_of(policy, semantics="strict") -> str:
    with pytest.raises(PolicyError) as exc:
        Engine.from_dict(policy, semantics)
    return str(exc.value)


def test_unknown_op_location_and_message():
    """The issue's example: the exact location and the expected values."""
    cond = {"All": [num(), num(op="Ne")]}
    p = base(rules=[rule(), rule(), rule(), rule(condition=cond)])
    assert error_of(p) == "rules[3].condition.All[1].NumericCheck.op: unknown op 'Ne'; expected Lt, Lte, Gt, Gte, Eq"


def test_unknown_key_rejected_in_strict():
    """A typo like 'conditon' must never turn into an unconditional allow."""
    r = rule()
    r["conditon"] = num()
    assert error_of(base(rules=[r])) == "rules[0].conditon: unknown key 'conditon'"


def test_unknown_keys_ignored_in_perso():
    """perso semantics drops unknown keys everywhere, as the original deserializer did."""
    p = base(extra=1, rules=[dict(rule(condition={"NumericCheck": dict(num()["NumericCheck"], note="x")}), why="y")])
    engine = Engine.from_dict(p, "perso")
    assert engine.evaluate("read", {"amount": 5}, role="user").allowed


def test_unknown_condition_kind():
    """An unknown condition kind names the kinds that exist."""
    p = base(rules=[rule(condition={"Maybe": []})])
    assert error_of(p).startswith("rules[0].condition: unknown condition 'Maybe'; expected NumericCheck")


def test_condition_with_two_keys():
    """A condition object must have exactly one key."""
    p = base(rules=[rule(condition={"All": [], "Any": []})])
    assert "a condition is an object with one key" in error_of(p)


def test_bad_source_and_types():
    """Wrong source names, string numbers and bool numbers are refused with their location."""
    assert error_of(base(rules=[rule(condition=num(source="Args"))])) == \
        "rules[0].condition.NumericCheck.source: unknown source 'Args'; expected Arguments, AgentAttributes, ResourceAttributes"
    assert "rules[0].condition.NumericCheck.value" in error_of(base(rules=[rule(condition=num(value="10"))]))
    assert "rules[0].condition.NumericCheck.value" in error_of(base(rules=[rule(condition=num(value=True))]))


def test_missing_required_keys():
    """version and default_action are required in both semantics."""
    p = base()
    del p["default_action"]
    for sem in ("strict", "perso"):
        assert error_of(p, sem) == "default_action: required key is missing"


def test_bad_default_action():
    """default_action is Allow or Deny."""
    assert error_of(base(default_action="Permit")) == "default_action: unknown default_action 'Permit'; expected Allow, Deny"


def test_duplicate_keys_in_policy_json():
    """Duplicate keys in policy JSON are an error (no silent last-wins)."""
    with pytest.raises(PolicyError, match="duplicate key 'version'"):
        Engine.from_json('{"version":"1","version":"2"}')


def test_json_syntax_error_location():
    """A JSON syntax error names line and column."""
    with pytest.raises(PolicyError, match=r"line 2 column \d+"):
        Engine.from_json('{\n "version": }')


def test_nan_in_policy_json():
    """NaN is not JSON, also in policies."""
    with pytest.raises(PolicyError, match="NaN is not JSON"):
        Engine.from_json('{"version":"1","default_action":"Deny","tools":[],"roles":[],"rules":[{"tool_name":"a",'
                         '"roles":[],"condition":{"NumericCheck":{"source":"Arguments","field":"a","op":"Lt","value":NaN}}}]}')


def test_undeclared_role_strict_vs_perso():
    """strict rejects an undeclared role; perso drops it silently (and keeps the rest)."""
    p = base(rules=[rule(roles=("user", "guest"))])
    assert error_of(p) == "rules[0].roles[1]: role 'guest' is not declared in roles"
    engine = Engine.from_dict(p, "perso")
    assert engine.evaluate("read", {}, role="user").allowed
    assert not engine.evaluate("read", {}, role="guest").allowed


def test_undeclared_tool_strict_vs_perso():
    """strict rejects an undeclared tool name; perso uses it as is."""
    p = base(rules=[rule(tool="other")])
    assert error_of(p) == "rules[0].tool_name: tool 'other' is not declared in tools"
    assert Engine.from_dict(p, "perso").evaluate("other", {}, role="user").allowed


def test_glob_semantics():
    """`*` is any run (possibly empty); `?` and everything else is literal."""
    assert glob_match("delete_*", "delete_a") and glob_match("delete_*", "delete_")
    assert glob_match("*", "") and glob_match("*_*", "a_b") and glob_match("a*b*c", "abc")
    assert not glob_match("a?", "ab") and glob_match("a?", "a?")
    assert not glob_match("a*b*c", "acb")
    p = base(rules=[rule(tool="delete_*", roles=("admin",))])
    engine = Engine.from_dict(p)
    assert engine.evaluate("delete_b", {}, role="admin").allowed
    assert not engine.evaluate("delete_*", {}, role="admin").allowed


def test_perso_last_rule_wins_strict_any_rule_allows():
    """perso keeps only the last rule per (tool, role); strict allows when any rule does."""
    p = base(rules=[rule(condition=num(value=10)), rule(condition=num(value=1))])
    perso = Engine.from_dict(p, "perso")
    strict = Engine.from_dict(p)
    d = perso.evaluate("read", {"amount": 5}, role="user")
    assert (d.decision, d.rule) == ("Deny", 1)
    d = strict.evaluate("read", {"amount": 5}, role="user")
    assert (d.decision, d.rule) == ("Allow", 0)
    d = strict.evaluate("read", {"amount": 50}, role="user")
    assert d.reason == "read denied for role 'user': Arguments.amount = 50 is not <= 10 (rule 1; 1 other rule did not match)"


def test_default_allow_but_failed_condition_denies():
    """A failed condition denies even when default_action is Allow (both semantics)."""
    p = base(default_action="Allow", rules=[rule(condition=num())])
    for sem in ("strict", "perso"):
        e = Engine.from_dict(p, sem)
        assert e.evaluate("read", {"amount": 50}, role="user").decision == "Deny"
        assert e.evaluate("write", {}, role="user").decision == "Allow"


def test_deep_condition_refused_cleanly():
    """A condition nested beyond the core's stack is a PolicyError, not a broken blob."""
    cond = num()
    for _ in range(70):
        cond = {"All": [num(), cond]}
    assert "nested too deeply" in error_of(base(rules=[rule(condition=cond)]))


def test_policy_strings_must_be_unicode():
    """A lone surrogate in a policy string (possible via JSON escapes) is a PolicyError."""
    p = base(rules=[rule(condition={"StringCheck": {"source": "Arguments", "field": "x", "op": "In", "value": ["\ud800"]}})])
    assert "not valid Unicode" in error_of(p)


def test_schema_describes_policy():
    """The JSON Schema comes from the models: conditions, ops and required keys are there."""
    schema = json_schema()
    text = str(schema)
    for word in ("NumericCheck", "FieldEquals", "Lte", "NotIn", "default_action"):
        assert word in text
    assert set(schema["required"]) >= {"version", "default_action", "rules"}


def test_examples_compile_in_both_semantics():
    """The bundled examples compile in both semantics."""
    for name in ("crm", "spec"):
        for sem in ("strict", "perso"):
            assert compile_policy(copy.deepcopy(examples.policy(name)), sem).blob[:4] == b"CGPB"
