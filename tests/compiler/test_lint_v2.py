"""`callgate check` on v2 policies: rules that can never apply, grants shadowed by an
unconditional deny (or allow, for elevate), contradictory numeric bounds, the
perso-compatibility notes for v2 constructs in a file whose version starts with "perso-";
every problem in one run, in the order of the file; the declarations (no roles or tools,
names declared twice, default_action Allow); deny rules over globs and tiers that cannot
be evaluated when a call lacks a value (checked against the engine by a property test)."""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callgate import Engine, RequestError, examples
from callgate.lint import Finding, lint
from support.cli import run
from support.strategies import v2_conditions, v2_requests


BASE = {"version": "v2", "default_action": "Deny", "tools": ["read_file", "delete_file", "pay"],
        "roles": ["agent", "admin"], "tool_tiers": {"read_file": "read", "delete_*": "destructive"}, "rules": []}


def policy(*rules: dict, **top) -> dict:
    p = copy.deepcopy(BASE)
    p["rules"] = list(rules)
    p.update(top)
    return p


def messages(findings: list[Finding]) -> list[str]:
    return [str(f) for f in findings]


def num(op: str, value, field: str = "amount", **ref) -> dict:
    body = {"source": "Arguments", "op": op, "value": value}
    body.update(ref or {"field": field})
    return {"NumericCheck": body}


def test_tier_rule_without_tools():
    """A tier rule whose tier no tool has covers nothing: a warning at its tier."""
    found = lint(policy({"tier": "write", "roles": ["agent"]}))
    assert messages(found) == ["warning: rules[0].tier: tier 'write' has no tools (no tool_tiers entry gives a "
                               "declared tool that tier); the rule covers nothing"]
    assert lint(policy({"tier": "read", "roles": ["agent"]})) == []


def test_glob_without_tools_still_warned():
    """The v1 warning for a glob that matches no tool stays, in the default semantics too."""
    found = lint(policy({"tool_name": "zz*", "roles": ["agent"]}))
    assert messages(found) == ["warning: rules[0].tool_name: glob 'zz*' matches no declared tool; the rule grants nothing"]


def test_contradictory_bounds_in_all():
    """Gt 10 and Lt 5 on one value inside an All (nested Alls opened) can never both hold."""
    cond = {"All": [num("Gt", 10), {"All": [num("Lt", 5)]}]}
    found = lint(policy({"tool_name": "pay", "roles": ["agent"], "condition": cond}))
    assert messages(found) == ["warning: rules[0].condition.All: Arguments.amount > 10 and < 5 can never all hold: "
                               "this All is never true"]


def test_contradictory_bounds_corners():
    """Touching bounds: Gte 5 and Lte 5 can hold (5), Gt 5 and Lte 5 cannot; Eq k with Ne k
    cannot; Between and Gt; pointers are one value; Length bounds too; different values or
    an Any are no contradiction."""
    def finds(*conds, kind="All") -> bool:
        found = lint(policy({"tool_name": "pay", "roles": ["agent"], "condition": {kind: list(conds)}}))
        return any("can never all hold" in f.message for f in found)

    assert not finds(num("Gte", 5), num("Lte", 5))
    assert finds(num("Gt", 5), num("Lte", 5))
    assert finds(num("Eq", 3), num("Ne", 3))
    assert finds(num("Between", [1, 3]), num("Gt", 3))
    assert not finds(num("Between", [1, 3]), num("Gte", 3))
    assert finds(num("Gt", 1, pointer="/a/0"), num("Lt", 0, pointer="/a/0"))
    assert not finds(num("Gt", 10, field="a"), num("Lt", 5, field="b"))
    assert not finds(num("Gt", 10), num("Lt", 5), kind="Any")
    length = lambda op, v: {"Length": {"source": "Arguments", "field": "tags", "op": op, "value": v}}  # noqa: E731
    found = lint(policy({"tool_name": "pay", "roles": ["agent"], "condition": {"All": [length("Gt", 3), length("Lt", 2)]}}))
    assert messages(found) == ["warning: rules[0].condition.All: length of Arguments.tags > 3 and < 2 can never "
                               "all hold: this All is never true"]


def test_contradiction_inside_quantifier():
    """Element references are checked inside Every/Some conditions as well."""
    cond = {"Every": {"source": "Arguments", "field": "items", "condition": {"All": [
        {"NumericCheck": {"source": "Element", "field": "n", "op": "Gt", "value": 2}},
        {"NumericCheck": {"source": "Element", "field": "n", "op": "Lt", "value": 1}}]}}}
    found = lint(policy({"tool_name": "pay", "roles": ["agent"], "condition": cond}))
    assert messages(found) == ["warning: rules[0].condition.Every.condition.All: element.n > 2 and < 1 can never all "
                               "hold: this All is never true"]


def test_allow_shadowed_by_unconditional_deny():
    """An allow rule every pair of which an unconditional deny covers never applies; a deny
    with a condition, or one missing a pair, shadows nothing."""
    deny = {"tool_name": "delete_file", "roles": ["agent", "admin"], "effect": "deny"}
    allow = {"tool_name": "delete_*", "roles": ["agent"], "condition": num("Lt", 5)}
    found = lint(policy(allow, deny))
    assert messages(found) == ["warning: rules[0]: this allow rule never applies: every (tool, role) pair it covers "
                               "is denied first by an unconditional rule: rules[1] (deny)"]
    assert lint(policy(allow, {**deny, "condition": num("Gt", 1)})) == []
    assert lint(policy({**allow, "roles": ["agent", "admin"]}, {**deny, "roles": ["agent"]})) == []


def test_allow_shadowed_by_several_denies():
    """The covering denies may be several rules together (a glob allow, one deny per tool)."""
    allow = {"tool_name": "*", "roles": ["agent"]}
    denies = [{"tool_name": t, "roles": ["agent"], "effect": "deny"} for t in ("read_file", "delete_file", "pay")]
    found = lint(policy(allow, *denies))
    assert messages(found) == ["warning: rules[0]: this allow rule never applies: every (tool, role) pair it covers "
                               "is denied first by an unconditional rule: rules[1] (deny), rules[2] (deny), "
                               "rules[3] (deny)"]


def test_elevate_shadowed_by_unconditional_allow():
    """An elevate rule every pair of which an unconditional allow (or deny) covers never applies."""
    elevate = {"tool_name": "pay", "roles": ["agent"], "effect": "elevate", "approvals": 2}
    found = lint(policy(elevate, {"tool_name": "pay", "roles": ["agent", "admin"]}))
    assert messages(found) == ["warning: rules[0]: this elevate rule never applies: every (tool, role) pair it "
                               "covers is decided first by an unconditional rule: rules[1] (allow)"]
    found = lint(policy(elevate, {"tool_name": "pay", "roles": ["agent"], "effect": "deny"}))
    assert messages(found)[0].endswith("is denied first by an unconditional rule: rules[1] (deny)")
    assert lint(policy(elevate, {"tool_name": "pay", "roles": ["agent"], "condition": num("Lt", 1)})) == []


def test_compiler_errors_reported():
    """Errors only the compiler finds (an exact tool_tiers key that is not a tool) are errors."""
    found = lint(policy(tool_tiers={"nope": "read"}))
    assert messages(found) == ["error: tool_tiers.nope: tool 'nope' is not declared in tools"]


PERSO_V2 = {
    "version": "perso-2.0", "default_action": "Deny", "tools": ["read_file", "delete_file"], "roles": ["agent", "admin"],
    "tool_tiers": {"read_file": "read"},
    "tier_defaults": {"read": "allow"},
    "rules": [
        {"tool_name": "delete_file", "roles": ["agent"], "effect": "deny"},
        {"tool_name": "read_file", "roles": ["agent"], "effect": "elevate", "approvals": 1,
         "condition": {"All": [
             {"StringCheck": {"source": "Context", "field": "env", "op": "Eq", "value": "prod"}},
             {"NumericCheck": {"source": "Arguments", "pointer": "/a/0", "op": "Lt", "value": 3}},
             {"Length": {"source": "Arguments", "field": "p", "op": "Lt", "value": 3}}]}},
        {"tier": "read", "roles": ["admin"]},
    ],
}

PERSO_NOTES = [
    "note: tool_tiers: perso compatibility: the original engine ignores \"tool_tiers\": tools have no tier there, "
    "and tier rules cover nothing",
    "note: tier_defaults: perso compatibility: the original engine ignores \"tier_defaults\": a tool no rule covers "
    "gets default_action Deny there",
    "note: rules[0].effect: perso compatibility: the original engine ignores \"effect\": this deny rule would ALLOW "
    "there unconditionally",
    "note: rules[1].effect: perso compatibility: the original engine ignores \"effect\" and \"approvals\": this "
    "elevate rule would ALLOW there, without approvals, when its condition holds",
    "note: rules[1].condition.All[0].StringCheck.source: perso compatibility: source 'Context' is v2: the original "
    "engine rejects the policy (unknown variant)",
    "note: rules[1].condition.All[0].StringCheck.op: perso compatibility: op 'Eq' is v2: the original engine rejects "
    "the policy (unknown variant)",
    "note: rules[1].condition.All[1].NumericCheck.pointer: perso compatibility: \"pointer\" is v2: the original "
    "engine ignores it and, lacking \"field\", rejects the policy",
    "note: rules[1].condition.All[2].Length: perso compatibility: condition Length is v2: the original engine "
    "rejects the policy (unknown variant)",
    "note: rules[2].tier: perso compatibility: \"tier\" is v2 and the original engine requires tool_name: it "
    "rejects the policy",
]


def test_perso_compat_notes():
    """Every v2 construct in a perso- file is a note naming its location and what the
    original engine does with it (ignores it, changing the decision, or rejects the file)."""
    assert messages(lint(PERSO_V2)) == PERSO_NOTES


def test_perso_compat_only_for_perso_versions():
    """The same policy with a version that does not start with perso- has no notes."""
    assert lint({**PERSO_V2, "version": "2.0"}) == []


def test_perso_compat_under_perso_semantics():
    """With --semantics perso callgate itself drops the ignored keys, so those notes become
    warnings; the constructs perso cannot read are validation errors, every one of them,
    each at its place in the file beside the note that explains it."""
    found = lint(PERSO_V2, "perso")
    assert [(f.level, f.location) for f in found] == [
        ("warning", "tool_tiers"),
        ("warning", "tier_defaults"),
        ("warning", "rules[0].effect"),
        ("warning", "rules[1].effect"),
        ("error", "rules[1].condition.All[0].StringCheck.source"),
        ("note", "rules[1].condition.All[0].StringCheck.source"),
        ("error", "rules[1].condition.All[0].StringCheck.op"),
        ("note", "rules[1].condition.All[0].StringCheck.op"),
        ("error", "rules[1].condition.All[0].StringCheck.value"),
        ("error", "rules[1].condition.All[1].NumericCheck.field"),   # missing: placed at its object
        ("note", "rules[1].condition.All[1].NumericCheck.pointer"),
        ("error", "rules[1].condition.All[2]"),
        ("note", "rules[1].condition.All[2].Length"),
        ("error", "rules[2].tool_name"),
        ("note", "rules[2].tier"),
    ]


def test_check_cli_notes_and_exit_codes(tmp_path):
    """The command prints notes on stdout after the warnings, counts them apart, exits 0;
    under --semantics perso the error makes it exit 1."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(PERSO_V2))
    r = run("check", str(path))
    assert r.returncode == 0, r.stderr
    assert unplaced(path, r.stdout) == PERSO_NOTES + [f"{path}: ok (3 rules, 0 warnings, 9 notes)"]
    r = run("check", str(path), "--semantics", "perso")
    assert r.returncode == 1
    assert any(line.startswith("error: rules[") for line in unplaced(path, r.stdout))
    assert r.stdout.splitlines()[-1].endswith(" error") or r.stdout.splitlines()[-1].endswith(" errors")


def test_check_cli_v2_warnings(tmp_path):
    """The CLI prints each new finding as `FILE:LINE:COLUMN: warning: LOCATION: message`, in
    the order of the file, and still exits 0."""
    p = policy({"tool_name": "pay", "roles": ["agent"], "condition": {"All": [num("Gte", 10), num("Lte", 5)]}},
               {"tier": "public", "roles": ["agent"]})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p))
    r = run("check", str(path))
    assert r.returncode == 0, r.stderr
    assert all(re.match(rf"{re.escape(str(path))}:1:\d+: warning: ", line) for line in r.stdout.splitlines()[:2])
    assert unplaced(path, r.stdout) == [
        "warning: rules[0].condition.All: Arguments.amount >= 10 and <= 5 can never all hold: this All is never true",
        "warning: rules[1].tier: tier 'public' has no tools (no tool_tiers entry gives a declared tool that tier); "
        "the rule covers nothing",
        f"{path}: ok (2 rules, 2 warnings)",
    ]


def unplaced(path: Path, output: str) -> list[str]:
    """The lines of `check` output without their leading `PATH:LINE:COLUMN: `."""
    return [re.sub(rf"^{re.escape(str(path))}:\d+:\d+: ", "", line) for line in output.splitlines()]


def test_v1_examples_unchanged():
    """The bundled v1 examples get exactly their v1 findings (no new kinds, no notes)."""
    assert messages(lint(examples.policy("crm"))) == [
        "warning: rules[5].condition.FieldPresent: FieldPresent on AgentAttributes.mfa_verified passes for false, "
        "0 and \"\" as well",
        "warning: rules[7].condition.All[1].FieldPresent: FieldPresent on AgentAttributes.mfa_verified passes for "
        "false, 0 and \"\" as well",
    ]
    assert all(f.level == "warning" for f in lint(examples.policy("spec"), "perso"))


# ---------------------------------------------------------------- every problem, in file order


def test_every_validation_error_in_file_order():
    """All the validation errors are reported, not just the first, each with its level, in
    the order of their places in the file (rules[2] before rules[10], an unknown top-level
    key where it stands), whatever order the models check them in."""
    rules = [{"tool_name": "pay", "roles": ["agent"]} for _ in range(11)]
    rules[10] = {"tool_name": "pay", "roles": ["agent"], "condition": num("Nope", 1)}
    rules[2] = {"tool_name": "pay", "roles": [5]}
    p = {"version": "v2", "extra": True, "default_action": "Permit", "tools": ["pay"], "roles": ["agent"],
         "rules": rules}
    assert messages(lint(p)) == [
        "error: extra: unknown key 'extra'",
        "error: default_action: unknown default_action 'Permit'; expected Allow, Deny",
        "error: rules[2].roles[0]: expected a string, got 5",
        "error: rules[10].condition.NumericCheck.op: unknown op 'Nope'; expected Lt, Lte, Gt, Gte, Eq, Ne, Between",
    ]


def test_order_is_the_files_not_the_checks():
    """The same findings come in the order the file has them: with rules written before
    tools, a rule's error comes before a duplicate tool's warning, and after it otherwise."""
    rule = {"tool_name": "pay", "roles": ["nobody"]}
    tools_first = policy(rule, tools=["pay", "pay"], tool_tiers={})
    rules_first = {"rules": tools_first["rules"], **{k: v for k, v in tools_first.items() if k != "rules"}}
    expected = ["warning: tools[1]: tool 'pay' is declared twice: tools[0] and tools[1]",
                "error: rules[0].roles[0]: role 'nobody' is not declared in roles"]
    assert messages(lint(tools_first)) == expected
    assert messages(lint(rules_first)) == expected[::-1]


def test_checks_still_run_beside_a_broken_rule():
    """A rule that does not validate has its errors; the other rules are still checked (a
    contradiction, an undeclared role, a grant shadowed by a deny), and nothing else is
    said about the broken rule."""
    p = policy({"tool_name": "pay", "roles": ["agent"], "condition": {"All": [num("Gt", 10), num("Lt", 5)]}},
               {"tool_name": "pay", "roles": ["agent"], "effect": "deny", "approvals": 1},
               {"tool_name": "pay", "roles": ["ghost"]},
               {"tool_name": "zz*", "roles": ["agent"], "condition": {"NumericCheck": {"source": "Arguments"}}})
    assert messages(lint(p)) == [
        "warning: rules[0].condition.All: Arguments.amount > 10 and < 5 can never all hold: this All is never true",
        "error: rules[1].approvals: only valid with effect 'elevate', not 'deny'",
        "error: rules[2].roles[0]: role 'ghost' is not declared in roles",
        "error: rules[3].condition.NumericCheck.op: required key is missing",
        "error: rules[3].condition.NumericCheck.value: required key is missing",
    ]


def test_a_broken_top_level_leaves_the_document_checks():
    """An error outside the rules (tools not a list of strings) stops the checks that need
    the validated policy, but the ones that read the document still run."""
    p = policy({"tool_name": "pay", "roles": ["agent"], "condition": {"All": [num("Gt", 10), num("Lt", 5)]}},
               tools=["pay", 3], roles=["agent", "agent"], default_action="Allow")
    assert [(f.level, f.location) for f in lint(p)] == [
        ("warning", "default_action"), ("error", "tools[1]"), ("warning", "roles[1]")]


def test_every_place_error_and_tier_key_reported():
    """Element outside a quantifier in two rules, and two tool_tiers keys that are not
    tools: four errors (loading stops at the first)."""
    element = {"NumericCheck": {"source": "Element", "field": "n", "op": "Lt", "value": 1}}
    p = policy({"tool_name": "pay", "roles": ["agent"], "condition": element},
               {"tool_name": "pay", "roles": ["agent"], "condition": {"Not": element}},
               tool_tiers={"nope": "read", "pay": "write", "gone": "read"})
    assert messages(lint(p)) == [
        "error: tool_tiers.nope: tool 'nope' is not declared in tools",
        "error: tool_tiers.gone: tool 'gone' is not declared in tools",
        "error: rules[0].condition.NumericCheck.source: source 'Element' is only valid inside Every or Some",
        "error: rules[1].condition.Not.NumericCheck.source: source 'Element' is only valid inside Every or Some",
    ]


# ---------------------------------------------------------------- declarations


def test_no_roles_no_tools():
    """An empty roles or tools list is a warning that says what every call gets instead;
    for tools, that only tools found at run time can then be covered (strict) or that only
    exact names apply (perso)."""
    found = {f.location: f.message for f in lint(policy(roles=[], tools=[]))}
    assert found["roles"] == ("no roles are declared: a rule's roles count only when declared, so no rule "
                              "applies to any call and every call gets default_action Deny")
    assert found["tools"] == ("no tools are declared: a rule can name none (an exact name must be declared, a glob "
                              "or tier matches none), so every call gets default_action Deny; only tools found at "
                              "run time (an MCP proxy's) can be covered, by globs and tiers")
    with_defaults = lint(policy(roles=[], tier_defaults={"read": "allow"}))
    assert with_defaults[0].message.endswith("every call gets its tier's default, else default_action Deny")
    perso = {f.location: f.message for f in lint(policy(tools=[], tool_tiers={}), "perso")}
    assert perso["tools"].startswith("no tools are declared: a glob matches none, so only rules naming a tool "
                                     "exactly (perso takes undeclared names as written) apply")


def test_declared_twice():
    """A tool or a role declared twice is a warning at the second, naming both positions."""
    assert messages(lint(policy(tools=["pay", "read_file", "pay", "pay"], roles=["agent", "admin", "agent"]))) == [
        "warning: tools[2]: tool 'pay' is declared twice: tools[0] and tools[2]",
        "warning: tools[3]: tool 'pay' is declared twice: tools[0] and tools[3]",
        "warning: roles[2]: role 'agent' is declared twice: roles[0] and roles[2]",
    ]


def test_default_allow_warned():
    """default_action Allow is a warning saying that every call no rule grants or denies is
    allowed, for every role, declared or not; with tier defaults, that they come first."""
    found = lint(policy(default_action="Allow", tool_tiers={}))
    assert messages(found) == [
        "warning: default_action: default_action Allow: a call no rule grants or denies is allowed: any tool the "
        "rules do not cover (a new or misspelled tool name included), for every role, declared or not; prefer Deny, "
        "and rules that allow what is meant"]
    found = lint(policy(default_action="Allow", tier_defaults={"read": "deny"}))
    assert ", unless its tier has a default;" in found[0].message
    assert lint(policy()) == []


# ---------------------------------------------------------------- denies that cannot be evaluated

RISK = {"NumericCheck": {"source": "Context", "field": "risk", "op": "Gt", "value": 0.8}}
HAS_RISK = {"FieldPresent": {"source": "Context", "field": "risk"}}


def deny_all(condition, **target) -> dict:
    return policy({**(target or {"tool_name": "*"}), "roles": ["agent"], "effect": "deny", "condition": condition})


def unevaluable(p: dict, semantics: str = "strict") -> list[str]:
    return [f"{f.location}: {f.message}" for f in lint(p, semantics) if "a deny that cannot be evaluated" in f.message]


def test_deny_on_a_missing_context_field():
    """The issue's example: "deny * when Context.risk > 0.8" denies every call without a
    risk; the warning names the value and says that a missing value denies, and why."""
    assert unevaluable(deny_all(RISK)) == [
        "rules[0].condition.NumericCheck: deny rule on '*' reads Context.risk, which a call may not carry: when it is "
        "missing or null, this condition cannot be evaluated, and a deny that cannot be evaluated denies: the rule "
        "denies every call it covers whose Context.risk is missing or null; to deny only calls that carry it, check "
        "FieldPresent on Context.risk first, in an All"]


@pytest.mark.parametrize("condition, target, flagged", [
    (RISK, {"tool_name": "delete_*"}, ["Context.risk"]),
    (RISK, {"tier": "read"}, ["Context.risk"]),
    ({"Not": RISK}, {}, ["Context.risk"]),
    ({"Not": {"TimeWindow": {"start": "09:00", "end": "17:00", "timezone": "UTC"}}}, {}, ["Context.time"]),
    ({"StringCheck": {"source": "Arguments", "pointer": "/path/0", "op": "NotIn", "value": ["a"]}}, {},
     ["Arguments/path/0"]),
    ({"FieldEquals": {"source_a": "AgentAttributes", "field_a": "org", "source_b": "ResourceAttributes",
                      "field_b": "org"}}, {}, ["AgentAttributes.org", "ResourceAttributes.org"]),
    ({"Length": {"source": "Arguments", "field": "tags", "op": "Gt", "value": 3}}, {}, ["Arguments.tags"]),
    ({"Every": {"source": "Arguments", "field": "items", "condition": {
        "NumericCheck": {"source": "Element", "field": "n", "op": "Gt", "value": 1}}}}, {}, ["Arguments.items"]),
    ({"Some": {"source": "Arguments", "field": "items", "condition": RISK}}, {}, ["Arguments.items", "Context.risk"]),
    ({"Any": [HAS_RISK, RISK]}, {}, ["Context.risk"]),             # missing: Any(F, U) = U
    ({"All": [HAS_RISK, RISK]}, {}, []),                           # missing: All(F, U) = F: guarded
    ({"Any": [{"Not": HAS_RISK}, RISK]}, {}, []),                  # missing: Any(T, U) = T: denies on purpose
    (HAS_RISK, {}, []),                                            # FieldPresent is never U
    ({"Type": {"source": "Context", "field": "risk", "is": "number"}}, {}, []),   # nor Type
    (RISK, {"tool_name": "pay"}, []),                              # one tool: its own arguments
])
def test_which_denies_cannot_be_evaluated(condition, target, flagged):
    """A deny over a glob or tier is flagged for each call value whose absence can make its
    condition U (comparisons, string checks, FieldEquals, Length, TimeWindow, quantifiers
    over it); FieldPresent and Type never are U, a FieldPresent guard in an All silences
    it, and a deny on one exact tool is not flagged."""
    found = unevaluable(deny_all(condition, **target))
    assert [m.split(" reads ", 1)[1].split(",", 1)[0] for m in found] == flagged


def test_unevaluable_deny_wording_when_other_checks_may_decide():
    """When the other checks may still decide (an Any with another value), the warning says
    the rule *can* deny such calls; a Type check on null says null only."""
    cond = {"Any": [num("Gt", 5), RISK]}
    found = unevaluable(deny_all(cond))
    assert len(found) == 2
    assert "this condition can be left undetermined (as its other checks fall)" in found[1]
    assert "the rule can deny calls it covers whose Context.risk is missing or null" in found[1]
    null_only = {"All": [{"Not": {"Type": {"source": "Context", "field": "risk", "is": "null"}}}, RISK]}
    assert "when it is missing," in unevaluable(deny_all(null_only))[0]
    null_only = {"All": [{"Type": {"source": "Context", "field": "risk", "is": "null"}}, RISK]}
    assert "when it is null," in unevaluable(deny_all(null_only))[0]


def test_no_unevaluable_warning_for_grants_or_perso():
    """Allow and elevate rules with the same condition are not flagged (U does not grant),
    nor a deny under perso semantics (no deny, no U there)."""
    allow = policy({"tool_name": "*", "roles": ["agent"], "condition": RISK})
    assert unevaluable(allow) == []
    p = policy({"tool_name": "*", "roles": ["agent"], "effect": "deny", "condition": num("Gt", 1)}, tool_tiers={})
    assert unevaluable(p) and unevaluable(p, "perso") == []


SOURCE_ARGS = {"Arguments": 2, "AgentAttributes": 3, "ResourceAttributes": 4, "Context": 5}


def without(request: tuple, ref: str) -> tuple:
    """The request with the value `ref` (a display name: Source.field or Source/pointer)
    made missing: its top-level key removed from the source object."""
    source = next(s for s in SOURCE_ARGS if ref.startswith(s) and ref[len(s):][:1] in (".", "/"))
    rest = ref[len(source):]
    key = rest[1:] if rest[0] == "." else rest[1:].split("/")[0].replace("~1", "/").replace("~0", "~")
    out = list(request)
    obj = out[SOURCE_ARGS[source]]
    if isinstance(obj, dict):
        out[SOURCE_ARGS[source]] = {k: v for k, v in obj.items() if k != key}
    return tuple(out)


@settings(max_examples=int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "150")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(condition=v2_conditions(3), data=st.data())
def test_a_deny_said_not_evaluable_denies_without_the_value(condition, data):
    """Property, against the engine: when check says a deny rule on '*' *cannot* be
    evaluated when a call lacks a value, then a call without that value (everything else
    random, other values missing too or not) is denied by that rule "and could not be
    evaluated". (The analysis takes the other checks as T or F; Kleene logic is monotone,
    so U for all of those is U for any of them, U included.)"""
    p = {"version": "p", "default_action": "Allow", "tools": ["t"], "roles": ["r"],
         "rules": [{"tool_name": "*", "roles": ["r"], "effect": "deny", "condition": condition}]}
    claims = [f.message.split(" reads ", 1)[1].split(", which a call", 1)[0]
              for f in lint(p) if "this condition cannot be evaluated" in f.message and "missing" in f.message]
    assume(claims)
    engine = Engine.from_dict(p)
    request = data.draw(v2_requests(p))
    for ref in claims:
        _, _, args, agent, resource, context = without(request, ref)
        try:
            d = engine.evaluate("t", args, role="r", agent_attributes=agent, resource_attributes=resource,
                                context=context)
        except RequestError:
            continue
        assert d.decision == "Deny" and "rule 1 forbids it and could not be evaluated" in d.reason, (ref, d.reason)
