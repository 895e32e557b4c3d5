"""Policy loading: validation errors with exact locations, perso's leniency, expansion."""

from __future__ import annotations

import copy

import pytest

from callgate import Engine, PolicyError, examples
from callgate.compiler import compile_policy
from callgate.language import glob_match
from callgate.policy import DAYS, json_schema


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
    """The issue's example: the exact location and the expected values. `Ne` is a v2 op, so
    the v1 message is perso's; strict names its own ops for an op that exists in neither."""
    cond = {"All": [num(), num(op="Ne")]}
    p = base(rules=[rule(), rule(), rule(), rule(condition=cond)])
    assert error_of(p, "perso") == "rules[3].condition.All[1].NumericCheck.op: unknown op 'Ne'; expected Lt, Lte, Gt, Gte, Eq"
    cond = {"All": [num(), num(op="Neq")]}
    p = base(rules=[rule(), rule(), rule(), rule(condition=cond)])
    assert error_of(p) == ("rules[3].condition.All[1].NumericCheck.op: unknown op 'Neq'; "
                           "expected Lt, Lte, Gt, Gte, Eq, Ne, Between")


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
    assert error_of(base(rules=[rule(condition=num(source="Args"))]), "perso") == \
        "rules[0].condition.NumericCheck.source: unknown source 'Args'; expected Arguments, AgentAttributes, ResourceAttributes"
    assert error_of(base(rules=[rule(condition=num(source="Args"))])) == (
        "rules[0].condition.NumericCheck.source: unknown source 'Args'; "
        "expected Arguments, AgentAttributes, ResourceAttributes, Context, Principal, Element")
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


# ---------------------------------------------------------------- policy language v2


def leaf(kind: str, **body) -> dict:
    return {kind: body}


def v2_error(cond=None, semantics="strict", **rule_over) -> str:
    r = rule(condition=cond)
    r.update(rule_over)
    return error_of(base(rules=[r]), semantics)


ARGS = {"source": "Arguments"}


@pytest.mark.parametrize("cond, expected", [
    (leaf("NumericCheck", source="Arguments", op="Lt", value=1),
     "rules[0].condition.NumericCheck: field or pointer is required (only source Element may have neither)"),
    (leaf("NumericCheck", source="Arguments", field="a", pointer="/a", op="Lt", value=1),
     "rules[0].condition.NumericCheck.pointer: give field or pointer, not both"),
    (leaf("NumericCheck", source="Arguments", field=None, op="Lt", value=1),
     "rules[0].condition.NumericCheck.field: expected a string, got null"),
    (leaf("FieldPresent", source="Arguments", pointer="a/b"),
     "rules[0].condition.FieldPresent.pointer: 'a/b' is not a JSON Pointer: it must be empty or start with '/'"),
    (leaf("FieldPresent", source="Arguments", pointer="/a~2b"),
     "rules[0].condition.FieldPresent.pointer: '/a~2b' is not a JSON Pointer: '~' must be followed by 0 or 1"),
    (leaf("FieldPresent", source="Arguments", pointer="/a~"),
     "rules[0].condition.FieldPresent.pointer: '/a~' is not a JSON Pointer: '~' must be followed by 0 or 1"),
    (leaf("FieldPresent", source="Context", pointer=""),
     "rules[0].condition.FieldPresent.pointer: the empty pointer is only valid with source Element; "
     "Context needs at least one token"),
    (leaf("FieldEquals", source_a="Arguments", pointer_a="/a", source_b="Context"),
     "rules[0].condition.FieldEquals: field_b or pointer_b is required (only source Element may have neither)"),
    (leaf("FieldEquals", source_a="Arguments", field_a="a", pointer_a="/a", source_b="Context", field_b="b"),
     "rules[0].condition.FieldEquals.pointer_a: give field_a or pointer_a, not both"),
    (leaf("FieldEquals", source_a="Arguments", field_a="a", source_b="Context", pointer_b="b"),
     "rules[0].condition.FieldEquals.pointer_b: 'b' is not a JSON Pointer: it must be empty or start with '/'"),
    (leaf("FieldPresent", source="Element", field="a"),
     "rules[0].condition.FieldPresent.source: source 'Element' is only valid inside Every or Some"),
    (leaf("FieldEquals", source_a="Arguments", field_a="a", source_b="Element"),
     "rules[0].condition.FieldEquals.source_b: source 'Element' is only valid inside Every or Some"),
    (leaf("Every", source="Element", condition=leaf("FieldPresent", source="Element")),
     "rules[0].condition.Every.source: source 'Element' is only valid inside Every or Some"),
    ({"Not": {"All": [leaf("Type", source="Element", **{"is": "null"})]}},
     "rules[0].condition.Not.All[0].Type.source: source 'Element' is only valid inside Every or Some"),
    (leaf("FieldPresent", source="Elements", field="a"),
     "rules[0].condition.FieldPresent.source: unknown source 'Elements'; "
     "expected Arguments, AgentAttributes, ResourceAttributes, Context, Principal, Element"),
])
def test_v2_reference_errors(cond, expected):
    """field vs pointer (exactly one; only Element may have neither), RFC 6901 pointer syntax,
    the empty pointer only for Element, and Element only inside Every/Some: each refused
    with its exact location and message."""
    assert v2_error(cond) == expected


@pytest.mark.parametrize("cond, expected", [
    (leaf("NumericCheck", **ARGS, field="a", op="Between", value=[5, 1]),
     "rules[0].condition.NumericCheck.value: lo 5 is greater than hi 1"),
    (leaf("NumericCheck", **ARGS, field="a", op="Between", value=[1, "2"]),
     "rules[0].condition.NumericCheck.value[1]: expected a finite number, got '2'"),
    (leaf("NumericCheck", **ARGS, field="a", op="Between", value=[True, 2]),
     "rules[0].condition.NumericCheck.value[0]: expected a finite number, got true"),
    (leaf("NumericCheck", **ARGS, field="a", op="Between", value=3),
     "rules[0].condition.NumericCheck.value: op 'Between' needs [lo, hi], got 3"),
    (leaf("NumericCheck", **ARGS, field="a", op="Between", value=[1, 2, 3]),
     "rules[0].condition.NumericCheck.value: op 'Between' needs [lo, hi], got a list of 3"),
    (leaf("NumericCheck", **ARGS, field="a", op="Ne", value=[1, 2]),
     "rules[0].condition.NumericCheck.value: expected a finite number, got a list (a list is only valid with op Between)"),
    (leaf("NumericCheck", **ARGS, field="a", op="Ne", value="1"),
     "rules[0].condition.NumericCheck.value: expected a finite number, got '1'"),
    (leaf("NumericCheck", **ARGS, field="a", op="Lt", value=10 ** 400),
     "rules[0].condition.NumericCheck.value: expected a finite number, got " + str(10 ** 400)),
    (leaf("StringCheck", **ARGS, field="a", op="In", value="x"),
     "rules[0].condition.StringCheck.value: op 'In' needs a list of strings, got 'x'"),
    (leaf("StringCheck", **ARGS, field="a", op="NotIn", value=["x", 1]),
     "rules[0].condition.StringCheck.value[1]: expected a string, got 1"),
    (leaf("StringCheck", **ARGS, field="a", op="Eq", value=["x"]),
     "rules[0].condition.StringCheck.value: op 'Eq' needs one string, got a list"),
    (leaf("StringCheck", **ARGS, field="a", op="PathGlob", value=None),
     "rules[0].condition.StringCheck.value: op 'PathGlob' needs one string, got null"),
    (leaf("StringCheck", **ARGS, field="a", op="Matches", value="x"),
     "rules[0].condition.StringCheck.op: unknown op 'Matches'; "
     "expected In, NotIn, Eq, Ne, StartsWith, EndsWith, Contains, Glob, PathGlob"),
    (leaf("Length", **ARGS, field="a", op="Between", value=1),
     "rules[0].condition.Length.op: unknown op 'Between'; expected Lt, Lte, Gt, Gte, Eq, Ne"),
    (leaf("Length", **ARGS, field="a", op="Lt", value=-1),
     "rules[0].condition.Length.value: expected an integer from 0 to 9007199254740992, got -1"),
    (leaf("Length", **ARGS, field="a", op="Lt", value=2.0),
     "rules[0].condition.Length.value: expected an integer from 0 to 9007199254740992, got 2.0"),
    (leaf("Length", **ARGS, field="a", op="Lt", value=True),
     "rules[0].condition.Length.value: expected an integer from 0 to 9007199254740992, got true"),
    (leaf("Type", **ARGS, field="a", **{"is": "int"}),
     "rules[0].condition.Type.is: unknown type 'int'; expected string, number, integer, boolean, null, array, object"),
    (leaf("Type", **ARGS, field="a"), "rules[0].condition.Type.is: required key is missing"),
])
def test_v2_operator_value_errors(cond, expected):
    """Each op takes the value shape the doc gives (Between [lo, hi] with lo <= hi, In/NotIn a
    list, the match ops one string, Length an integer >= 0, Type one of seven names); a
    mismatch is refused at the value (or the element of it) with a precise message."""
    assert v2_error(cond) == expected


TW = {"start": "09:00", "end": "17:00", "timezone": "Europe/Paris"}


@pytest.mark.parametrize("over, expected", [
    ({"start": "9:00"}, "start: expected a start time as HH:MM from 00:00 to 23:59, got '9:00'"),
    ({"start": "24:00"}, "start: expected a start time as HH:MM from 00:00 to 23:59, got '24:00'"),
    ({"start": "10:60"}, "start: expected a start time as HH:MM from 00:00 to 23:59, got '10:60'"),
    ({"end": "00:00"}, "end: expected an end time as HH:MM from 00:01 to 24:00, got '00:00'"),
    ({"end": "24:01"}, "end: expected an end time as HH:MM from 00:01 to 24:00, got '24:01'"),
    ({"end": "٠٩:٠٠"}, "end: expected an end time as HH:MM from 00:01 to 24:00, got '٠٩:٠٠'"),
    ({"end": "09:00"}, "end: end equals start: the window would be empty"),
    ({"timezone": "Mars/Olympus"},
     "timezone: unknown time zone 'Mars/Olympus'; expected an IANA name such as Europe/Paris"),
    ({"timezone": "../etc"}, "timezone: unknown time zone '../etc'; expected an IANA name such as Europe/Paris"),
    ({"timezone": "localtime"},
     "timezone: unknown time zone 'localtime'; expected an IANA name such as Europe/Paris"),
    ({"days": []}, "days: needs at least one day"),
    ({"days": ["Mon", "Tues"]}, "days[1]: unknown day 'Tues'; expected Mon, Tue, Wed, Thu, Fri, Sat, Sun"),
    ({"days": ["Mon", "Fri", "Mon"]}, "days[2]: day 'Mon' is listed twice"),
    ({"timezone": None}, "timezone: expected a string, got null"),
    ({"source": "Element"}, "source: source 'Element' is only valid inside Every or Some"),
])
def test_v2_time_window_errors(over, expected):
    """TimeWindow: HH:MM bounds (start 00:00-23:59, end 00:01-24:00, start != end), days
    non-empty without repeats, a time zone that zoneinfo loads (never the host's own
    `localtime`)."""
    body = dict(TW, **over)
    assert v2_error(leaf("TimeWindow", **body)) == "rules[0].condition.TimeWindow." + expected


def test_v2_time_window_missing_keys():
    """start, end and timezone are required; source, field and days have defaults."""
    for key in ("start", "end", "timezone"):
        body = dict(TW)
        del body[key]
        assert v2_error(leaf("TimeWindow", **body)) == f"rules[0].condition.TimeWindow.{key}: required key is missing"


def test_v2_quantifier_errors():
    """Every/Some need a condition, their own reference follows the leaf rules, and they nest
    at most 8 deep (the 9th is refused at its own location)."""
    assert v2_error(leaf("Every", source="Arguments", field="xs")) == \
        "rules[0].condition.Every.condition: required key is missing"
    assert v2_error(leaf("Some", source="Arguments", condition=leaf("FieldPresent", source="Element"))) == \
        "rules[0].condition.Some: field or pointer is required (only source Element may have neither)"
    inner = leaf("StringCheck", source="Element", op="Eq", value=1)
    assert v2_error(leaf("Every", source="Arguments", field="xs", condition=inner)) == \
        "rules[0].condition.Every.condition.StringCheck.value: op 'Eq' needs one string, got 1"

    def nest(levels: int) -> dict:
        cond = leaf("FieldPresent", source="Element")
        for _ in range(levels - 1):
            cond = leaf("Some", source="Element", condition=cond)
        return leaf("Every", source="Arguments", field="xs", condition=cond)

    Engine.from_dict(base(rules=[rule(condition=nest(8))]))
    assert v2_error(nest(9)) == "rules[0].condition" + ".Every.condition" + ".Some.condition" * 7 + \
        ".Some: Every/Some nested too deeply (at most 8 levels)"


@pytest.mark.parametrize("over, expected", [
    ({"effect": "elevate"}, "rules[0].approvals: required when effect is 'elevate' (1 or 2)"),
    ({"effect": "deny", "approvals": 1}, "rules[0].approvals: only valid with effect 'elevate', not 'deny'"),
    ({"approvals": 2}, "rules[0].approvals: only valid with effect 'elevate', not 'allow'"),
    ({"effect": "elevate", "approvals": 3}, "rules[0].approvals: expected 1 or 2, got 3"),
    ({"effect": "elevate", "approvals": True}, "rules[0].approvals: expected 1 or 2, got true"),
    ({"effect": "elevate", "approvals": 1.0}, "rules[0].approvals: expected 1 or 2, got 1.0"),
    ({"effect": "elevate", "approvals": None}, "rules[0].approvals: expected 1 or 2, got null"),
    ({"effect": "Deny"}, "rules[0].effect: unknown effect 'Deny'; expected allow, deny, elevate"),
    ({"tier": "read"}, "rules[0].tier: give tool_name or tier, not both"),
    ({"tool_name": None}, "rules[0].tool_name: expected a string, got null"),
])
def test_v2_rule_errors(over, expected):
    """A rule's effect is allow/deny/elevate; approvals (1 or 2, never a bool) exactly for
    elevate; tool_name and tier exclusive."""
    assert v2_error(**over) == expected


def test_v2_rule_needs_tool_name_or_tier():
    """Without tool_name and tier a rule covers nothing: refused at the rule; an unknown tier
    names the four tiers."""
    assert error_of(base(rules=[{"roles": ["user"]}])) == "rules[0]: tool_name or tier is required"
    assert error_of(base(rules=[{"tier": "secret", "roles": ["user"]}])) == \
        "rules[0].tier: unknown tier 'secret'; expected public, read, write, destructive"


@pytest.mark.parametrize("over, expected", [
    ({"tool_tiers": {"read": "secret"}},
     "tool_tiers.read: unknown tier 'secret'; expected public, read, write, destructive"),
    ({"tool_tiers": {"nope": "read"}}, "tool_tiers.nope: tool 'nope' is not declared in tools"),
    ({"tool_tiers": []}, "tool_tiers: expected an object, got list"),
    ({"tier_defaults": {"secret": "allow"}},
     "tier_defaults.secret: unknown tier 'secret'; expected public, read, write, destructive"),
    ({"tier_defaults": {"write": "elevate"}},
     "tier_defaults.write: unknown tier default 'elevate'; expected allow, deny, or an object with effect and approvals"),
    ({"tier_defaults": {"write": 1}},
     "tier_defaults.write: expected 'allow', 'deny' or an object with effect and approvals, got 1"),
    ({"tier_defaults": {"write": {"effect": "elevate"}}},
     "tier_defaults.write.approvals: required when effect is 'elevate' (1 or 2)"),
    ({"tier_defaults": {"write": {"effect": "deny", "approvals": 2}}},
     "tier_defaults.write.approvals: only valid with effect 'elevate', not 'deny'"),
    ({"tier_defaults": {"write": {"effect": "elevate", "approvals": False}}},
     "tier_defaults.write.approvals: expected 1 or 2, got false"),
    ({"tier_defaults": {"write": {"effect": "allow", "note": 1}}}, "tier_defaults.write.note: unknown key 'note'"),
])
def test_v2_tier_errors(over, expected):
    """tool_tiers values are tiers and exact keys name declared tools; tier_defaults keys are
    tiers and values "allow", "deny" or {effect, approvals} (approvals exactly for elevate)."""
    assert error_of(base(**over)) == expected


def test_v2_tool_tiers_globs_need_not_match():
    """A glob key that matches no declared tool is not an error (the glob contributes nothing)."""
    Engine.from_dict(base(tool_tiers={"nothing_*": "destructive"}))


@pytest.mark.parametrize("cond, expected", [
    (num(op="Between", value=[1, 2]), "rules[0].condition.NumericCheck.op: unknown op 'Between'; expected Lt, Lte, Gt, Gte, Eq"),
    (num(source="Context"), "rules[0].condition.NumericCheck.source: unknown source 'Context'; "
                            "expected Arguments, AgentAttributes, ResourceAttributes"),
    (leaf("StringCheck", **ARGS, field="a", op="Eq", value="x"),
     "rules[0].condition.StringCheck.op: unknown op 'Eq'; expected In, NotIn"),
    (leaf("Length", **ARGS, field="a", op="Lt", value=1),
     "rules[0].condition: unknown condition 'Length'; expected NumericCheck, StringCheck, FieldPresent, "
     "FieldEquals, All, Any, Not"),
    ({"Not": leaf("Every", **ARGS, field="a", condition=num())},
     "rules[0].condition.Not: unknown condition 'Every'; expected NumericCheck, StringCheck, FieldPresent, "
     "FieldEquals, All, Any, Not"),
    (leaf("FieldPresent", **ARGS, pointer="/a"), "rules[0].condition.FieldPresent.field: required key is missing"),
])
def test_v2_constructs_are_unknown_in_perso(cond, expected):
    """perso reproduces the original engine: v2 kinds, ops and sources are unknown variants
    (with v1's lists of what exists), and `pointer` is an unknown key, dropped."""
    assert v2_error(cond, "perso") == expected


def test_v2_keys_dropped_in_perso():
    """perso drops effect, approvals, tier, tool_tiers and tier_defaults like any unknown key:
    a deny rule becomes an allow, as in the original engine."""
    p = base(tool_tiers={"read": "read"}, tier_defaults={"read": "deny"},
             rules=[dict(rule(), effect="deny"), dict(rule(tool="write"), effect="elevate", approvals=2, tier="x")])
    engine = Engine.from_dict(p, "perso")
    assert engine.compiled.policy.rules[0].effect == "allow"
    assert engine.compiled.policy.tool_tiers == {} and engine.compiled.policy.tier_defaults == {}
    assert engine.compiled.tiers == {}
    from callgate.bytecode import decode
    blob = decode(engine.compiled.blob)
    assert {r[3] for r in blob.rules} == {1} and blob.defaults == []


def test_v2_valid_constructs_accepted():
    """Every v2 construct of the doc validates in strict semantics, with the documented
    defaults (effect allow, TimeWindow: source Context, field "time", all days)."""
    from callgate.policy import validate

    p = base(
        tool_tiers={"read": "read", "delete_*": "destructive"},
        tier_defaults={"public": "allow", "read": "deny", "write": {"effect": "elevate", "approvals": 1},
                       "destructive": {"effect": "allow"}},
        rules=[
            rule(condition={"All": [
                leaf("NumericCheck", source="Context", pointer="/risk/0", op="Between", value=[0, 1.5]),
                leaf("NumericCheck", **ARGS, field="a", op="Ne", value=-0.0),
                leaf("StringCheck", **ARGS, pointer="/~0a~1b", op="PathGlob", value="/data/*.csv"),
                leaf("Length", **ARGS, field="xs", op="Ne", value=0),
                leaf("Type", **ARGS, field="xs", **{"is": "integer"}),
                leaf("TimeWindow", start="22:00", end="24:00", timezone="Australia/Lord_Howe"),
                leaf("Every", **ARGS, field="xs", condition=leaf("Some", source="Element", pointer="/ys",
                                                                 condition=leaf("Type", source="Element",
                                                                                **{"is": "null"}))),
                leaf("FieldEquals", source_a="Context", field_a="a", source_b="Context", pointer_b="/x"),
            ]}),
            {"tier": "read", "roles": ["admin"], "effect": "deny"},
            dict(rule(tool="delete_*"), effect="elevate", approvals=2),
        ])
    policy = validate(p)
    assert policy.rules[0].effect == "allow" and policy.rules[2].approvals == 2
    tw = policy.rules[0].condition.All[5].TimeWindow
    assert (tw.source, tw.field, tw.pointer, tw.days) == ("Context", "time", None, list(DAYS))
    assert policy.rules[0].condition.All[0].NumericCheck.value == [0.0, 1.5]
    assert policy.tier_defaults["write"].approvals == 1 and policy.tier_defaults["read"] == "deny"


def test_v2_time_window_element_reads_the_element():
    """Inside a quantifier, a TimeWindow on Element without field/pointer reads the element
    itself (no default field); with another source the default field is "time"."""
    from callgate.policy import validate

    cond = leaf("Every", **ARGS, field="ts", condition=leaf("TimeWindow", source="Element", **TW))
    tw = validate(base(rules=[rule(condition=cond)])).rules[0].condition.Every.condition.TimeWindow
    assert (tw.field, tw.pointer) == (None, None)


def test_v2_schema_describes_everything():
    """`callgate schema` covers v2: every condition kind, the new ops, Context/Element, pointer,
    effects, tiers, tool_tiers, tier_defaults and the Type key `is` (by its alias)."""
    schema = json_schema()
    text = str(schema)
    for word in ("Length", "Type", "TimeWindow", "Every", "Some", "Between", "PathGlob", "StartsWith",
                 "Context", "Element", "pointer", "pointer_a", "elevate", "approvals", "destructive",
                 "tool_tiers", "tier_defaults", "timezone", "days", "Principal", "ScopeCheck", "principals",
                 "principals_default", "max_scopes"):
        assert word in text, word
    defs = schema["$defs"]
    assert "is" in defs["TypeBody"]["properties"] and "is_" not in defs["TypeBody"]["properties"]
    assert defs["TypeBody"]["required"] == ["source", "is"]
    assert set(defs["Rule"]["properties"]) == {"id", "tool_name", "tier", "roles", "effect", "approvals", "condition",
                                             "mode"}
    assert defs["Rule"]["required"] == ["roles"]
    # absent-but-never-null keys are plain strings in the schema
    assert defs["NumericCheckBody"]["properties"]["pointer"]["type"] == "string"
    assert set(schema["properties"]) >= {"tool_tiers", "tier_defaults"}
    kinds = {ref["$ref"].rsplit("/", 1)[1] for ref in defs["All"]["properties"]["All"]["items"]["oneOf"]}
    assert kinds == {"NumericCheck", "StringCheck", "FieldPresent", "FieldEquals", "All", "AnyOf", "Not",
                     "Length", "Type", "BooleanCheck", "TimeWindow", "Every", "Some", "ScopeCheck", "UrlCheck",
                     "PathCheck", "SqlCheck"}
    import json
    json.dumps(schema)  # serializable as is


def test_v2_schema_accepts_the_examples_and_refuses_bad_shapes():
    """The schema is valid JSON Schema 2020-12, accepts every bundled example (v1 and v2) and
    refuses what the models refuse on shape (an unknown effect, a null pointer, an unknown
    condition kind, a bad tier default)."""
    jsonschema = pytest.importorskip("jsonschema")
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in ("crm", "spec", "ops"):
        assert list(validator.iter_errors(examples.policy(name))) == [], name
    bad = [
        base(rules=[dict(rule(), effect="permit")]),
        base(rules=[rule(condition=leaf("FieldPresent", source="Arguments", pointer=None))]),
        base(rules=[rule(condition={"Maybe": {}})]),
        base(tier_defaults={"write": "elevate"}),
        base(tool_tiers={"read": "secret"}),
    ]
    for p in bad:
        assert list(validator.iter_errors(p)), p


# ---------------------------------------------------------------- every error, and where it is


def test_validation_errors_lists_every_problem_in_document_order():
    """validation_errors gives every problem the models find, in the order of their places
    in the document (keys in the order given, not the order the models declare them), each
    a PolicyError with its location; validate raises the first of them."""
    from callgate.policy import validate, validation_errors

    p = {"rules": [rule(roles=(5,)), rule(condition=num(op="Nope"))], "version": "1", "extra": 1,
         "default_action": "Permit", "tools": ["read"], "roles": ["user"]}
    model, problems = validation_errors(p)
    assert model is None
    assert [str(e) for e in problems] == [
        "rules[0].roles[0]: expected a string, got 5",
        "rules[1].condition.NumericCheck.op: unknown op 'Nope'; expected Lt, Lte, Gt, Gte, Eq, Ne, Between",
        "extra: unknown key 'extra'",
        "default_action: unknown default_action 'Permit'; expected Allow, Deny",
    ]
    assert [e.at_key for e in problems] == [False, False, True, False]
    with pytest.raises(PolicyError) as exc:
        validate(p)
    assert str(exc.value) == str(problems[0])


def test_structure_errors_all_listed():
    """The checks of a node's place report every misplaced Element, not only the first."""
    from callgate.policy import validation_errors

    element = {"FieldPresent": {"source": "Element", "field": "x"}}
    model, problems = validation_errors(base(rules=[rule(condition=element), rule(condition={"Not": element})]))
    assert model is not None
    assert [e.location for e in problems] == ["rules[0].condition.FieldPresent.source",
                                              "rules[1].condition.Not.FieldPresent.source"]


def test_nested_conditions_of_one_kind_keep_every_step():
    """A Not inside a Not reads Not.Not in the location (each condition kind is one step of
    the path); a dict key equal to its parent's name is kept too."""
    cond = {"Not": {"Not": {"All": [{"Not": num(op="Nope")}]}}}
    assert error_of(base(rules=[rule(condition=cond)])).startswith(
        "rules[0].condition.Not.Not.All[0].Not.NumericCheck.op: unknown op 'Nope'")
    assert error_of(base(tool_tiers={"tool_tiers": "secret"})).startswith(
        "tool_tiers.tool_tiers: unknown tier 'secret'")


def test_location_path_reads_locations_against_the_document():
    """location_path finds the node a location names even when keys hold '.' or '[' (the
    longest key that fits first), and names the deepest existing node for a missing key."""
    from callgate.policy import document_order, location_path

    data = {"version": "1", "tool_tiers": {"a.b": "read", "a": {"b[0]": 1}, "x[1]": {"y": [0, 1]}},
            "rules": [{"condition": {"TimeWindow": {"start": "09:00"}}}]}
    assert location_path(data, "tool_tiers.a.b") == (("tool_tiers", "a.b"), True)
    assert location_path(data, "tool_tiers.a.b[0]") == (("tool_tiers", "a", "b[0]"), True)
    assert location_path(data, "tool_tiers.x[1].y[1]") == (("tool_tiers", "x[1]", "y", 1), True)
    assert location_path(data, "rules[0].condition.TimeWindow.field") == (("rules", 0, "condition", "TimeWindow"),
                                                                         False)
    assert location_path(data, "rules[3].tool_name") == (("rules",), False)
    assert location_path(data, "(policy)") == ((), True)
    assert location_path(data, "(discovered_tools)") == ((), False)
    assert document_order(data, "rules[0]") > document_order(data, "tool_tiers.x[1].y[1]") > \
        document_order(data, "tool_tiers.a.b") > document_order(data, "version")


def test_policy_error_text_forms():
    """str(PolicyError): FILE:LINE:COLUMN: PATH: MESSAGE with a file and a position,
    `line L column C: PATH: MESSAGE` with a position only, `FILE: MESSAGE` for the file as a
    whole, `PATH: MESSAGE` otherwise (as before); the attributes are set after raising too."""
    exc = PolicyError("unknown key 'x'", "rules[0].x")
    assert str(exc) == "rules[0].x: unknown key 'x'"
    assert (exc.file, exc.line, exc.column, exc.at_key) == (None, None, None, False)
    exc.line, exc.column = 3, 7
    assert str(exc) == "line 3 column 7: rules[0].x: unknown key 'x'"
    exc.file = "p.json"
    assert str(exc) == "p.json:3:7: rules[0].x: unknown key 'x'"
    assert (exc.message, exc.location) == ("unknown key 'x'", "rules[0].x")
    assert str(PolicyError("cannot read policy file: gone", "(file)", file="p.json")) == \
        "p.json: cannot read policy file: gone"
    assert str(PolicyError("expected an object, got null", file="p.yaml")) == \
        "p.yaml: (policy): expected an object, got null"
