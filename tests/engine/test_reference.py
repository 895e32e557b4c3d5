"""Tests of the reference evaluator alone (tests/support/reference.py), pinned to docs/semantics.md.

These run without the engine. The example cases check decisions in both semantics; the
focused tests pin the corners of the contract where a reimplementation could plausibly
differ, with the exact reason strings the doc prescribes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings

from support import REPO
from support.reference import (
    ReferenceEngine,
    ReferencePolicyError,
    ReferenceRequestError,
    display_number,
    display_set,
    display_value,
    glob_matches,
    parse_instant,
    path_glob_matches,
    resolve_pointer,
    scan_decide,
)
from support.strategies import policy_and_request, v2_policy_and_request

SEMANTICS = ["strict", "perso"]


# --------------------------------------------------------------------------------------
# Example data: the shared case files (or the package copy of them).
# --------------------------------------------------------------------------------------


def data_dir() -> Path:
    """../shared/data next to the repo, else the copy shipped in src/callgate/examples."""
    for candidate in (REPO.parent / "shared" / "data",
                      REPO / "src" / "callgate" / "examples"):
        if (candidate / "crm_policy.json").is_file():
            return candidate
    pytest.skip("no example data found")


CASE_FILES = [("crm_policy.json", "crm_scenarios.json"), ("spec_policy.json", "spec_cases.json")]


def load_cases():
    """(policy, case) pairs from every example file, with readable ids."""
    base = data_dir()
    out = []
    for policy_file, cases_file in CASE_FILES:
        policy = json.loads((base / policy_file).read_text(encoding="utf-8"))
        for case in json.loads((base / cases_file).read_text(encoding="utf-8"))["cases"]:
            out.append(pytest.param(policy, case, id=f"{cases_file}:{case['name']}"))
    return out


@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("policy,case", load_cases())
def test_example_cases(policy, case, semantics):
    """Every example case gives its expected decision under both semantics."""
    ref = ReferenceEngine(policy, semantics)
    decision, reason, rule = ref.evaluate(case["tool"], case["args"], case["role"],
                                          case["agent_attributes"], case["resource_attributes"])
    assert decision == case["expected"], reason


def test_example_reasons_spot_check():
    """A few example reasons, byte for byte, in both semantics (CRM refund over the cap)."""
    base = data_dir()
    policy = json.loads((base / "crm_policy.json").read_text(encoding="utf-8"))
    args = {"order_id": "ORD-8821", "amount": 800}
    assert ReferenceEngine(policy).evaluate("process_refund", args, "agent") == (
        "Deny",
        "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)",
        3)
    assert ReferenceEngine(policy, "perso").evaluate("process_refund", args, "agent") == (
        "Deny", "rule matched tool 'process_refund' for role 'agent'; condition failed", 3)
    assert ReferenceEngine(policy).evaluate("drop_database", {}, "admin") == (
        "Deny",
        "drop_database denied for role 'admin': no rule covers this tool for this role "
        "(default_action Deny)",
        None)


# --------------------------------------------------------------------------------------
# Helpers for the focused tests.
# --------------------------------------------------------------------------------------


def one_rule(condition, default="Deny", tools=("t",), roles=("r",)):
    """A policy with a single rule for tool "t" and role "r"."""
    return {"version": "1", "default_action": default, "tools": list(tools), "roles": list(roles),
            "rules": [{"tool_name": "t", "roles": ["r"], "condition": condition}]}


def run(policy, semantics="strict", args=None, agent=None, resource=None, tool="t", role="r"):
    """Evaluate on the reference; return (decision, reason, rule)."""
    return ReferenceEngine(policy, semantics).evaluate(tool, args, role, agent, resource)


def strict_reason(condition, args=None, agent=None, resource=None):
    """The strict explanation text for a single-rule deny (without the prefix and suffix)."""
    decision, reason, rule = run(one_rule(condition), "strict", args, agent, resource)
    assert decision == "Deny", reason
    prefix, suffix = "t denied for role 'r': ", " (rule 1)"
    assert reason.startswith(prefix) and reason.endswith(suffix), reason
    return reason[len(prefix):-len(suffix)]


def num(field="x", op="Lte", value=500.0, source="Arguments"):
    return {"NumericCheck": {"source": source, "field": field, "op": op, "value": value}}


def sc(values, op="In", field="x", source="Arguments"):
    return {"StringCheck": {"source": source, "field": field, "op": op, "value": values}}


def present(field="x", source="Arguments"):
    return {"FieldPresent": {"source": source, "field": field}}


def eq(fa="a", fb="b", sa="AgentAttributes", sb="ResourceAttributes"):
    return {"FieldEquals": {"source_a": sa, "field_a": fa, "source_b": sb, "field_b": fb}}


# --------------------------------------------------------------------------------------
# Three-valued logic, All/Any, rule selection.
# --------------------------------------------------------------------------------------


def test_missing_data_never_passes_through_not():
    """Strict: Not(U) stays U, so Not over a missing field denies and names the missing
    field; perso has no U, so the same Not passes."""
    policy = one_rule({"Not": num()})
    assert run(policy) == (
        "Deny", "t denied for role 'r': Arguments.x is missing (rule 1)", 0)
    assert run(policy, "perso") == (
        "Allow", "rule matched tool 't' for role 'r'; condition passed", 0)
    # Double negation keeps U, and blames the leaf with its U text.
    assert strict_reason({"Not": {"Not": num()}}, args={"x": None}) == "Arguments.x is null"


def test_kleene_all_and_any_with_u():
    """Kleene: All [U, T] is U (deny), Any [U, T] is T (allow), Any [U, F] is U (deny) and
    blames both branches, All [U, F] is F and blames the F child, not the U one."""
    u, t, f = num("missing"), num("n", "Lt", 10), num("n", "Gt", 10)
    args = {"n": 5}
    assert run(one_rule({"All": [u, t]}), args=args)[0] == "Deny"
    assert run(one_rule({"Any": [u, t]}), args=args)[0] == "Allow"
    assert strict_reason({"Any": [u, f]}, args=args) == (
        "Arguments.missing is missing, and Arguments.n = 5 is not > 10")
    assert strict_reason({"All": [u, f]}, args=args) == "Arguments.n = 5 is not > 10"


def test_empty_all_and_any():
    """All [] is T and Any [] is F in both semantics; an empty node has no blame, so the
    strict explanation reads "condition not satisfied", also when it propagates up."""
    for sem in SEMANTICS:
        assert run(one_rule({"All": []}), sem)[0] == "Allow"
        assert run(one_rule({"Any": []}), sem)[0] == "Deny"
        assert run(one_rule({"Not": {"Any": []}}), sem)[0] == "Allow"
    assert strict_reason({"Any": []}) == "condition not satisfied"
    assert strict_reason({"Not": {"All": []}}) == "condition not satisfied"
    assert strict_reason({"All": [present("y", "AgentAttributes"), {"Any": []}]},
                         agent={"y": 1}) == "condition not satisfied"


def test_perso_last_rule_wins_even_against_default_allow():
    """perso keeps only the last rule naming a pair: an earlier unconditional rule is
    forgotten, and a failing last rule denies even with default_action Allow. Strict keeps
    every rule, and the first unconditional one allows."""
    policy = {"version": "1", "default_action": "Allow", "tools": ["t"], "roles": ["r"],
              "rules": [{"tool_name": "t", "roles": ["r"], "condition": None},
                        {"tool_name": "*", "roles": ["r"], "condition": num()}]}
    assert run(policy, "perso", args={"x": 600}) == (
        "Deny", "rule matched tool 't' for role 'r'; condition failed", 1)
    assert run(policy, "strict", args={"x": 600}) == (
        "Allow", "t allowed for role 'r': rule 1 has no condition", 0)


def test_strict_first_match_and_other_rule_counts():
    """Strict: the first matching rule allows with its own index; when none match, the
    deny explains the FIRST rule and counts the others (singular for one, plural above)."""
    rules = [{"tool_name": "t", "roles": ["r"], "condition": num("x", "Lt", v)} for v in (1, 2, 3)]
    policy = {"version": "1", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
              "rules": rules}
    assert run(policy, args={"x": 1.5}) == (
        "Allow", "t allowed for role 'r': rule 2 condition passed", 1)
    assert run(policy, args={"x": 5}) == (
        "Deny", "t denied for role 'r': Arguments.x = 5 is not < 1 "
        "(rule 1; 2 other rules did not match)", 0)
    policy["rules"] = rules[:2]
    assert run(policy, args={"x": 5})[1] == (
        "t denied for role 'r': Arguments.x = 5 is not < 1 (rule 1; 1 other rule did not match)")


def test_default_action_reasons():
    """With no rule for the pair: default_action decides, rule is None, in both wordings."""
    for default in ("Allow", "Deny"):
        policy = one_rule(None, default=default, roles=("r", "s"))
        verb = "allowed" if default == "Allow" else "denied"
        assert run(policy, role="s") == (
            default, f"t {verb} for role 's': no rule covers this tool for this role "
            f"(default_action {default})", None)
        assert run(policy, "perso", role="s") == (
            default, "no rule matched tool 't' for role 's'; applying default_action", None)


# --------------------------------------------------------------------------------------
# Expansion.
# --------------------------------------------------------------------------------------


def test_expansion_strict_rejects_and_perso_drops():
    """Strict rejects an undeclared role or an undeclared plain tool; perso drops the role
    and keeps the tool as is. A glob matching nothing is accepted by both."""
    bad_role = one_rule(None)
    bad_role["rules"][0]["roles"] = ["r", "ghost"]
    bad_tool = one_rule(None)
    bad_tool["rules"][0]["tool_name"] = "ghost_tool"
    for policy in (bad_role, bad_tool):
        with pytest.raises(ReferencePolicyError):
            ReferenceEngine(policy, "strict")
    assert run(bad_role, "perso", role="ghost")[2] is None  # dropped
    assert run(bad_tool, "perso", tool="ghost_tool")[0] == "Allow"  # kept although undeclared
    no_match = one_rule(None)
    no_match["rules"][0]["tool_name"] = "zz*"
    assert run(no_match)[2] is None


def test_glob_star_only_question_mark_literal():
    """Only '*' is special: it matches any run, even empty; '?' is a literal character;
    and globs reach only declared tools."""
    assert glob_matches("a*", "a") and glob_matches("*_x", "_x") and glob_matches("*", "")
    assert glob_matches("a?b*", "a?b") and not glob_matches("a?b*", "axb")
    assert glob_matches("a*b", "a\nb")
    policy = one_rule(None, tools=("a?b", "axb"))
    policy["rules"][0]["tool_name"] = "a?b*"
    assert run(policy, tool="a?b")[0] == "Allow"
    assert run(policy, tool="axb")[0] == "Deny"
    assert run(policy, tool="a?bc")[0] == "Deny"  # would match, but not declared


def test_names_and_fields_are_exact():
    """Roles compare by exact code points ("admin\\u0000x" is not "admin"), and a field
    "a.b" is the literal top-level key, never a path."""
    policy = one_rule(present("a.b"), roles=("admin",))
    policy["rules"][0]["roles"] = ["admin"]
    assert run(policy, role="admin\u0000x")[2] is None
    assert run(policy, role="admin", args={"a.b": 0})[0] == "Allow"
    assert run(policy, role="admin", args={"a": {"b": 1}})[1] == (
        "t denied for role 'admin': Arguments.a.b is missing (rule 1)")


def test_arguments_type_per_semantics():
    """Strict arguments must be an object (None means {}); perso takes any JSON value and
    a non-object has no fields. Attributes must be objects in both."""
    policy = one_rule({"Not": present()})
    assert run(policy, args=None)[0] == "Allow"
    with pytest.raises(ReferenceRequestError):
        run(policy, args=[1, 2])
    assert run(policy, "perso", args=[1, 2])[0] == "Allow"
    assert run(policy, "perso", args="x")[0] == "Allow"
    for sem in SEMANTICS:
        with pytest.raises(ReferenceRequestError):
            run(policy, sem, agent=["no"])
        with pytest.raises(ReferenceRequestError):
            run(policy, sem, args={"x": float("nan")})


# --------------------------------------------------------------------------------------
# Numbers and equality.
# --------------------------------------------------------------------------------------


def test_numeric_check_types_and_rounding():
    """NumericCheck: bools and strings are not numbers (strict U, perso F); an int is
    rounded to the nearest double before comparing (2**53+1 == 2**53)."""
    assert strict_reason(num(), args={"x": True}) == "Arguments.x = true is not a number"
    assert strict_reason(num(), args={"x": "200"}) == 'Arguments.x = "200" is not a number'
    assert run(one_rule(num()), "perso", args={"x": "200"})[0] == "Deny"
    assert run(one_rule(num("x", "Eq", 9007199254740992.0)), args={"x": 2**53 + 1})[0] == "Allow"
    assert run(one_rule(num("x", "Eq", 0.0)), args={"x": -0.0})[0] == "Allow"
    assert run(one_rule(num("x", "Gte", 1e300)), args={"x": 2**64 + 1})[0] == "Deny"


def test_strict_field_equals_exact_decimal():
    """Strict FieldEquals: numbers by exact decimal value (1 == 1.0, -0.0 == 0, big ints
    exactly, 2**53+1 != 2**53 as a float), no equality across types (true != 1), arrays
    element-wise, objects as key/value sets; null is U ("is null")."""
    def strict_eq(a, b):
        return run(one_rule(eq()), agent={"a": a}, resource={"b": b})[0] == "Allow"
    assert strict_eq(1, 1.0) and strict_eq(-0.0, 0) and strict_eq(0.1, 0.1)
    assert strict_eq(2**64 + 1, 2**64 + 1) and not strict_eq(2**64 + 1, 2**64)
    assert not strict_eq(2**53 + 1, 9007199254740992.0)
    assert strict_eq(1e16, 10**16) and strict_eq(1e300, 10**300)
    assert not strict_eq(True, 1) and not strict_eq("1", 1)
    assert strict_eq([1, {"k": 2.0}], [1.0, {"k": 2}]) and not strict_eq([1], [1, 1])
    assert strict_eq({"p": 1, "q": 2}, {"q": 2, "p": 1}) and not strict_eq({"p": 1}, {"p": 1, "q": None})
    assert strict_eq([None], [None])
    assert strict_reason(eq(), agent={"a": None}, resource={"b": None}) == "AgentAttributes.a is null"


def test_perso_field_equals_serde_corners():
    """Perso FieldEquals emulates serde_json: an integer never equals a float (1 != 1.0,
    0 != -0.0), floats compare as doubles (0.0 == -0.0), ints beyond 64 bits become doubles,
    null is a value (null == null) but a missing key is F, objects ignore key order."""
    def perso_eq(a, b, agent_has=True):
        agent = {"a": a} if agent_has else {}
        return run(one_rule(eq()), "perso", agent=agent, resource={"b": b})[0] == "Allow"
    assert not perso_eq(1, 1.0) and not perso_eq(0, -0.0) and perso_eq(0.0, -0.0)
    assert perso_eq(2**64 - 1, 2**64 - 1) and perso_eq(-(2**63), -(2**63))
    assert perso_eq(2**64 + 1, float(2**64))  # both parsed as the same double
    assert not perso_eq(2**64 - 1, float(2**64 - 1))  # PosInt vs Float
    assert not perso_eq(-(2**63), float(-(2**63)))  # NegInt vs Float
    assert perso_eq(-(2**63) - 1, float(-(2**63)))  # below i64: a double
    assert not perso_eq(True, 1) and perso_eq(None, None)
    assert not perso_eq(None, None, agent_has=False)
    assert perso_eq({"p": [1, 2.5], "q": "s"}, {"q": "s", "p": [1, 2.5]})
    assert not perso_eq([1], [1.0])


# --------------------------------------------------------------------------------------
# Blame and reason text.
# --------------------------------------------------------------------------------------


def test_blame_selection():
    """Blame: All F -> first F child; All U -> first U child; All T -> first child; Any T ->
    first T child; an Any of two or more that is F or U -> every child, in order; only
    evaluated children count (All stops at the first F)."""
    args = {"n": 5, "s": "x"}
    lo, hi = num("n", "Lt", 10), num("n", "Gt", 10)  # T and F
    miss1, miss2 = num("m1"), num("m2")  # U, U
    assert strict_reason({"All": [miss1, hi, miss2]}, args=args) == "Arguments.n = 5 is not > 10"
    assert strict_reason({"All": [lo, miss1, miss2]}, args=args) == "Arguments.m1 is missing"
    assert strict_reason({"Any": [hi, miss2, miss1]}, args=args) == (
        "Arguments.n = 5 is not > 10, and Arguments.m2 is missing, and Arguments.m1 is missing")
    assert strict_reason({"Any": [hi, num("n", "Eq", 1)]}, args=args) == (
        "Arguments.n = 5 is not > 10, and Arguments.n = 5 is not == 1")
    assert strict_reason({"Not": {"All": [lo, num("n", "Gt", 1)]}}, args=args) == (
        "Arguments.n = 5 is < 10 (negated by Not)")
    # All stops at the first F, so the later U is never evaluated nor blamed.
    assert strict_reason({"All": [hi, miss1]}, args=args) == "Arguments.n = 5 is not > 10"


def test_reason_numeric_and_present_leaves():
    """Exact texts for NumericCheck (missing, null, not a number, F, negated T) and
    FieldPresent (missing, null, negated present)."""
    assert strict_reason(num(source="AgentAttributes")) == "AgentAttributes.x is missing"
    assert strict_reason(num(), args={"x": None}) == "Arguments.x is null"
    assert strict_reason(num(), args={"x": [1]}) == "Arguments.x = [1] is not a number"
    assert strict_reason(num("x", "Gte", 0.5), args={"x": 0.25}) == "Arguments.x = 0.25 is not >= 0.5"
    assert strict_reason({"Not": num("x", "Eq", 1e20)}, args={"x": 1e20}) == (
        "Arguments.x = 1e+20 is == 1e+20 (negated by Not)")
    assert strict_reason(present("o", "ResourceAttributes")) == "ResourceAttributes.o is missing"
    assert strict_reason(present(), args={"x": None}) == "Arguments.x is null"
    assert strict_reason({"Not": present()}, args={"x": False}) == (
        "Arguments.x is present (negated by Not)")


def test_reason_string_and_equals_leaves():
    """Exact texts for StringCheck In / NotIn (F and negated T, not-a-string) and
    FieldEquals (A checked before B, mismatch, negated equality)."""
    assert strict_reason(sc(["a", "b"]), args={"x": "c"}) == 'Arguments.x = "c" is not in ["a", "b"]'
    assert strict_reason(sc(["a"], "NotIn"), args={"x": "a"}) == 'Arguments.x = "a" is in ["a"]'
    assert strict_reason({"Not": sc(["a"])}, args={"x": "a"}) == (
        'Arguments.x = "a" is in ["a"] (negated by Not)')
    assert strict_reason({"Not": sc([], "NotIn")}, args={"x": "é"}) == (
        'Arguments.x = "é" is not in [] (negated by Not)')
    assert strict_reason(sc(["1"]), args={"x": 1}) == "Arguments.x = 1 is not a string"
    assert strict_reason(eq()) == "AgentAttributes.a is missing"
    assert strict_reason(eq(), agent={"a": 1}, resource={"b": None}) == "ResourceAttributes.b is null"
    assert strict_reason(eq(), agent={"a": None}) == "AgentAttributes.a is null"
    assert strict_reason(eq(), agent={"a": "u1"}, resource={"b": "u2"}) == (
        'AgentAttributes.a = "u1" does not equal ResourceAttributes.b = "u2"')
    assert strict_reason({"Not": eq()}, agent={"a": 1}, resource={"b": 1.0}) == (
        "AgentAttributes.a = 1 equals ResourceAttributes.b (negated by Not)")


def test_set_display_truncates_after_five():
    """SET lists the first 5 values as orjson strings, then ", … and N more]"."""
    assert display_set([]) == "[]"
    assert display_set(list("abcde")) == '["a", "b", "c", "d", "e"]'
    assert display_set(list("abcdef")) == '["a", "b", "c", "d", "e", … and 1 more]'
    assert display_set(list("abcdefg")) == '["a", "b", "c", "d", "e", … and 2 more]'
    assert display_set(["admin\u0000x", "é"]) == '["admin\\u0000x", "é"]'
    assert strict_reason(sc(list("abcdefg")), args={"x": "z"}) == (
        'Arguments.x = "z" is not in ["a", "b", "c", "d", "e", … and 2 more]')


def test_value_display_cut_at_64_bytes():
    """V is the orjson text cut to at most 64 bytes at a character boundary, plus "…"
    only when the text is longer; big ints show their digits."""
    assert display_value("a" * 62) == '"' + "a" * 62 + '"'  # exactly 64 bytes: kept
    assert display_value("a" * 63) == '"' + "a" * 63 + "…"
    # '"' + 31 × 'é' is 63 bytes; a 32nd 'é' would end at byte 65, so it is dropped.
    assert display_value("é" * 40) == '"' + "é" * 31 + "…"
    assert display_value("\U0001F600" * 20) == '"' + "\U0001F600" * 15 + "…"
    assert display_value({"k": [1, 2.0, None, True]}) == '{"k":[1,2.0,null,true]}'
    assert display_value(2**64 + 1) == "18446744073709551617"
    assert display_value(-0.0) == "-0.0"


def test_number_display():
    """K: integral and below 1e16 in magnitude -> integer digits; else repr(float)."""
    assert display_number(500.0) == "500" and display_number(500) == "500"
    assert display_number(-0.0) == "0" and display_number(-3.0) == "-3"
    assert display_number(9999999999999998.0) == "9999999999999998"
    assert display_number(1e16) == "1e+16" and display_number(1e20) == "1e+20"
    assert display_number(0.5) == "0.5" and display_number(-1e300) == "-1e+300"


# --------------------------------------------------------------------------------------
# The reference's own index against its brute-force scan.
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("semantics", SEMANTICS)
@settings(max_examples=200, deadline=None)
@given(data=policy_and_request("strict"))
def test_reference_index_matches_scan(semantics, data):
    """The reference's (tool, role) table agrees with a plain scan over every rule.

    Strict-valid policies are used for both semantics (perso accepts them too)."""
    policy, (tool, role, args, agent, resource) = data
    decision, _, rule = ReferenceEngine(policy, semantics).evaluate(tool, args, role, agent, resource)
    assert (decision, rule) == scan_decide(policy, semantics, tool, role, args, agent, resource)


@settings(max_examples=200, deadline=None)
@given(data=policy_and_request("perso"))
def test_reference_index_matches_scan_perso_policies(data):
    """Same as above on perso policies (undeclared roles and tools in rules)."""
    policy, (tool, role, args, agent, resource) = data
    decision, _, rule = ReferenceEngine(policy, "perso").evaluate(tool, args, role, agent, resource)
    assert (decision, rule) == scan_decide(policy, "perso", tool, role, args, agent, resource)


# ======================================================================================
# Policy language v2 (docs/policy-v2.md), strict semantics.
# ======================================================================================

_MISSING_MARK = "<missing>"


def ptr(document, pointer):
    """resolve_pointer, with the missing sentinel shown as a string."""
    from support.reference import _MISSING
    value = resolve_pointer(document, pointer)
    return _MISSING_MARK if value is _MISSING else value


def v2_rule(condition=None, tool="t", role="r", **extra):
    rule = {"tool_name": tool, "roles": [role], **extra}
    if condition is not None:
        rule["condition"] = condition
    return rule


def v2_policy(*rules, default="Deny", tools=("t",), roles=("r",), **extra):
    return {"version": "2", "default_action": default, "tools": list(tools),
            "roles": list(roles), **extra, "rules": list(rules)}


def v2_run(policy, args=None, agent=None, resource=None, context=None, tool="t", role="r"):
    """Evaluate a v2 policy on the reference: (decision, reason, rule, approvals)."""
    return ReferenceEngine(policy).evaluate(tool, args, role, agent, resource, context).full


def test_pointer_tokens_and_array_indexes():
    """RFC 6901: ~1 is '/', ~0 is '~' (in that order, so ~01 is the key "~1"); "/" names
    the empty key; arrays take "0" or a decimal without leading zeros below the length;
    "-", "01", "+1" never index; a step into a scalar or a missing key is missing."""
    doc = {"a/b": {"m~n": [10, 20]}, "~1": "tilde-one", "": {"": 0}, "list": [1, 2, 3],
           "obj": {"01": "key"}, "s": "text"}
    assert ptr(doc, "/a~1b/m~0n/1") == 20
    assert ptr(doc, "/~01") == "tilde-one"
    assert ptr(doc, "/") == {"": 0} and ptr(doc, "//") == 0
    assert ptr(doc, "/list/0") == 1 and ptr(doc, "/list/2") == 3
    for bad in ("/list/3", "/list/01", "/list/-", "/list/+1", "/list/ 1", "/list/1.0",
                "/a/b", "/s/0", "/obj/1", "/nope"):
        assert ptr(doc, bad) == _MISSING_MARK, bad
    assert ptr(doc, "/obj/01") == "key"  # an object takes any token as a key
    assert ptr(doc, "") == doc


def test_instants_numbers_and_rfc3339():
    """TimeWindow instants: Unix seconds (fraction ignored, bools are not numbers) or RFC
    3339 with an offset (T/Z may be lowercase, seconds 00-59, real dates); anything else,
    and anything outside [1970-01-01, 2100-01-01) UTC, is not a time."""
    assert parse_instant(0) == 0 and parse_instant(-0.0) == 0 and parse_instant(1.9) == 1
    assert parse_instant(4102444799.5) == 4102444799
    for out in (-1, -0.5, 4102444800, 1e300, True, None, [0], "0", "1717372800"):
        assert parse_instant(out) is None, out
    assert parse_instant("2024-06-03T00:00:00Z") == 1717372800
    assert parse_instant("2024-06-03t02:00:00.999+02:00") == 1717372800
    assert parse_instant("2024-06-02T19:00:00-05:00") == 1717372800
    assert parse_instant("2024-06-03T00:00:00-00:00") == 1717372800
    assert parse_instant("2024-02-29T00:00:00z") is not None  # leap year
    assert parse_instant("1970-01-01T00:00:00Z") == 0
    assert parse_instant("2099-12-31T23:59:59.999Z") == 4102444799
    for bad in ("2023-02-29T00:00:00Z", "2024-04-31T00:00:00Z", "2024-06-03T24:00:00Z",
                "2024-06-03T12:60:00Z", "2024-06-03T12:00:60Z", "2024-06-03T12:00:00",
                "2024-06-03 12:00:00Z", "2024-06-03T12:00Z", "2024-06-03T12:00:00.Z",
                "2024-06-03T12:00:00+24:00", "2024-06-03T12:00:00+05:60",
                "2024-06-03T12:00:00Z\n", "\uff12024-06-03T12:00:00Z", "0000-01-01T00:00:00Z",
                "1969-12-31T23:59:59Z", "1970-01-01T00:30:00+01:00", "2100-01-01T00:00:00Z",
                "2099-12-31T23:30:00-01:00", "2024-13-01T00:00:00Z"):
        assert parse_instant(bad) is None, bad


def test_glob_and_path_glob():
    """Glob: '*' is any run, '/' included; PathGlob: '*' never matches '/'. Every other
    character is literal; the whole string must match."""
    assert glob_matches("/data/*.csv", "/data/x/a.csv")
    assert path_glob_matches("/data/*.csv", "/data/a.csv")
    assert not path_glob_matches("/data/*.csv", "/data/x/a.csv")
    assert path_glob_matches("/data/*", "/data/") and not path_glob_matches("/data/*", "/data")
    assert path_glob_matches("**", "abc") and not path_glob_matches("*", "a/b")
    assert not glob_matches("a.c", "abc") and glob_matches("a?c*", "a?c")


def test_v2_decision_shape_and_approvals():
    """evaluate() still unpacks and compares as (decision, reason, rule), and carries
    approvals_required: 1 or 2 for Elevate, 0 otherwise."""
    policy = v2_policy(v2_rule(effect="elevate", approvals=2))
    d = ReferenceEngine(policy).evaluate("t", {}, "r")
    decision, reason, rule = d
    assert d == ("Elevate", "t requires 2 approvals for role 'r': rule 1 has no condition", 0)
    assert d.approvals_required == 2 and (decision, rule) == ("Elevate", 0)
    assert ReferenceEngine(v2_policy(v2_rule())).evaluate("t", {}, "r").approvals_required == 0


def test_v2_precedence_steps():
    """Steps 1-5: deny (T or U) first; then allow; then elevate with the largest count
    (first rule with it); then a denial explained by the first grant (allow rules, then
    elevates by approvals descending); then the tier default or default_action."""
    gt = lambda k: {"NumericCheck": {"source": "Context", "field": "x", "op": "Gt", "value": k}}  # noqa: E731
    policy = v2_policy(v2_rule(gt(1), effect="elevate", approvals=1),
                       v2_rule(gt(5), effect="elevate", approvals=2),
                       v2_rule(gt(100), effect="deny"))
    assert v2_run(policy, context={"x": 2}) == (
        "Elevate", "t requires 1 approval for role 'r': rule 1 condition passed", 0, 1)
    assert v2_run(policy, context={"x": 6})[2:] == (1, 2)
    assert v2_run(policy, context={"x": 101}) == (
        "Deny", "t denied for role 'r': rule 3 forbids it: Context.x = 101 is > 100", 2, 0)
    assert v2_run(policy, context={}) == (
        "Deny", "t denied for role 'r': rule 3 forbids it and could not be evaluated: "
        "Context.x is missing", 2, 0)
    assert v2_run(policy, context={"x": 0}) == (
        "Deny", "t denied for role 'r': Context.x = 0 is not > 5 (rule 2; 1 other rule did "
        "not match)", 1, 0)
    only_deny = v2_policy(v2_rule(gt(1), effect="deny"), default="Allow")
    assert v2_run(only_deny, context={"x": 0}) == (
        "Allow", "t allowed for role 'r': no rule grants this tool for this role "
        "(default_action Allow)", None, 0)


def test_v2_tiers_exact_beats_glob_and_strictest_glob():
    """tool_tiers: an exact key wins over globs; among globs the strictest tier wins; tier
    rules expand to the tools of their tier; tier_defaults apply at step 5."""
    policy = v2_policy({"tier": "read", "roles": ["r"]}, tools=("a_x", "b_x", "c"),
                       tool_tiers={"*_x": "read", "b_*": "destructive", "a_x": "public"},
                       tier_defaults={"destructive": {"effect": "elevate", "approvals": 2},
                                      "public": "deny"})
    ref = ReferenceEngine(policy)
    assert ref.tiers == {"a_x": "public", "b_x": "destructive"}
    assert ref.collected("b_x", "r") == [] and ref.collected("a_x", "r") == []
    assert v2_run(policy, tool="b_x") == (
        "Elevate", "b_x requires 2 approvals for role 'r': no rule covers this tool for this "
        "role (tier 'destructive' default Elevate)", None, 2)
    assert v2_run(policy, tool="a_x")[:2] == (
        "Deny", "a_x denied for role 'r': no rule covers this tool for this role (tier "
        "'public' default Deny)")
    policy["tool_tiers"]["c"] = "read"
    assert ReferenceEngine(policy).collected("c", "r") == [0]


def test_v2_quantifier_texts_and_parity():
    """Every/Some blame the deciding element and explain it with that element; the Nots
    inside the quantifier's condition give the element's suffix, the ones outside the
    quantifier's; an empty All/Any explains as "condition passed" when T, "condition not
    satisfied" otherwise."""
    eq_root = {"StringCheck": {"source": "Element", "op": "Eq", "value": "root"}}
    some = lambda c: {"Some": {"source": "Arguments", "field": "u", "condition": c}}  # noqa: E731
    assert v2_run(v2_policy(v2_rule({"Not": some(eq_root)})), args={"u": ["a", "root"]})[1] == (
        "t denied for role 'r': Arguments.u: element 1: element = \"root\" is \"root\" "
        "(negated by Not) (rule 1)")
    assert v2_run(v2_policy(v2_rule(some({"Not": eq_root}), effect="deny")),
                  args={"u": ["root", "b"]})[1] == (
        "t denied for role 'r': rule 1 forbids it: Arguments.u: element 1: element = \"b\" "
        "is not \"root\"")
    assert v2_run(v2_policy(v2_rule({"All": []}, effect="deny")))[1] == (
        "t denied for role 'r': rule 1 forbids it: condition passed")
    assert v2_run(v2_policy(v2_rule(some({"All": []}), effect="deny")), args={"u": [0]})[1] == (
        "t denied for role 'r': rule 1 forbids it: Arguments.u: element 0: condition passed")
    every_any = {"Every": {"source": "Arguments", "field": "u", "condition": {"Any": []}}}
    assert v2_run(v2_policy(v2_rule(every_any)), args={"u": [0]})[1] == (
        "t denied for role 'r': Arguments.u: element 0: condition not satisfied (rule 1)")


def test_v2_time_window_overnight_and_display():
    """Overnight windows count the previous weekday before `end`; W lists the days in week
    order (each once), start-end as written and the zone."""
    window = {"TimeWindow": {"days": ["Sun", "Fri"], "start": "22:00", "end": "02:00",
                             "timezone": "UTC"}}
    policy = v2_policy(v2_rule(window))
    # 2024-06-07 is a Friday.
    assert v2_run(policy, context={"time": "2024-06-07T22:00:00Z"})[0] == "Allow"
    assert v2_run(policy, context={"time": "2024-06-08T01:59:59Z"})[0] == "Allow"
    assert v2_run(policy, context={"time": "2024-06-08T22:00:00Z"})[1] == (
        "t denied for role 'r': Context.time = \"2024-06-08T22:00:00Z\" is outside "
        "Fri,Sun 22:00-02:00 UTC (rule 1)")
    assert v2_run(policy, context={"time": "2024-06-10T01:00:00Z"})[0] == "Allow"  # Mon after Sun


def test_v2_context_input():
    """context: missing or null means {}, any other type is a request error."""
    policy = v2_policy(v2_rule({"Not": {"FieldPresent": {"source": "Context", "field": "x"}}}))
    assert v2_run(policy, context=None)[0] == "Allow"
    for bad in ([], "x", 1):
        with pytest.raises(ReferenceRequestError):
            v2_run(policy, context=bad)
    with pytest.raises(ReferenceRequestError):
        v2_run(policy, context={"x": float("inf")})


def test_perso_ignores_v2_keys_and_refuses_v2_nodes():
    """perso ignores keys the original engine does not know: a deny rule is an allow, and
    tool_tiers / tier_defaults are dropped. v2 nodes, sources and tier rules are refused."""
    policy = v2_policy(v2_rule(effect="deny"), tool_tiers={"t": "read"},
                       tier_defaults={"read": "deny"})
    assert run(policy, "perso") == ("Allow", "rule matched tool 't' for role 'r'; no condition "
                                    "required", 0)
    for condition in ({"Length": {"source": "Arguments", "field": "x", "op": "Eq", "value": 1}},
                      {"FieldPresent": {"source": "Context", "field": "x"}},
                      {"FieldPresent": {"source": "Arguments", "pointer": "/x"}}):
        with pytest.raises(ReferencePolicyError):
            ReferenceEngine(v2_policy(v2_rule(condition)), "perso")
    with pytest.raises(ReferencePolicyError):
        ReferenceEngine(v2_policy({"tier": "read", "roles": ["r"]}), "perso")


@settings(max_examples=150, deadline=None)
@given(data=v2_policy_and_request(6))
def test_reference_v2_index_matches_scan(data):
    """On v2 policies (tier rules, globs, effects) the reference's (tool, role) table
    agrees with a scan over every rule, and every decision is well formed: approvals 1|2
    exactly for Elevate, a rule index exactly when the reason does not name a default."""
    policy, (tool, role, args, agent, resource, context) = data
    d = ReferenceEngine(policy).evaluate(tool, args, role, agent, resource, context)
    assert (d.decision, d.rule) == scan_decide(policy, "strict", tool, role, args, agent,
                                              resource, context)
    assert (d.decision == "Elevate") == (d.approvals_required in (1, 2))
    defaulted = "no rule covers this tool" in d.reason or "no rule grants this tool" in d.reason
    assert (d.rule is None) == defaulted, d
