"""`callgate check` on v2 policies: rules that can never apply, grants shadowed by an
unconditional deny (or allow, for elevate), contradictory numeric bounds, and the
perso-compatibility notes for v2 constructs in a file whose version starts with "perso-"."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

from callgate import examples
from callgate.lint import Finding, lint

CLI = [sys.executable, "-m", "callgate"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


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
    "note: rules[1].condition.All[0].StringCheck.op: perso compatibility: op 'Eq' is v2: the original engine rejects "
    "the policy (unknown variant)",
    "note: rules[1].condition.All[0].StringCheck.source: perso compatibility: source 'Context' is v2: the original "
    "engine rejects the policy (unknown variant)",
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
    warnings; the constructs perso cannot read are a validation error, shown first."""
    found = lint(PERSO_V2, "perso")
    assert found[0].level == "error"
    levels = {f.location: f.level for f in found[1:]}
    assert levels["rules[0].effect"] == "warning" and levels["tier_defaults"] == "warning"
    assert levels["rules[1].condition.All[2].Length"] == "note"


def test_check_cli_notes_and_exit_codes(tmp_path):
    """The command prints notes on stdout after the warnings, counts them apart, exits 0;
    under --semantics perso the error makes it exit 1."""
    path = tmp_path / "p.json"
    path.write_text(json.dumps(PERSO_V2))
    r = run("check", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == PERSO_NOTES + [f"{path}: ok (3 rules, 0 warnings, 9 notes)"]
    r = run("check", str(path), "--semantics", "perso")
    assert r.returncode == 1
    assert r.stderr.startswith("error: rules[")


def test_check_cli_v2_warnings(tmp_path):
    """The CLI prints each new finding as `warning: LOCATION: message` and still exits 0."""
    p = policy({"tool_name": "pay", "roles": ["agent"], "condition": {"All": [num("Gte", 10), num("Lte", 5)]}},
               {"tier": "public", "roles": ["agent"]})
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p))
    r = run("check", str(path))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "warning: rules[1].tier: tier 'public' has no tools (no tool_tiers entry gives a declared tool that tier); "
        "the rule covers nothing",
        "warning: rules[0].condition.All: Arguments.amount >= 10 and <= 5 can never all hold: this All is never true",
        f"{path}: ok (2 rules, 2 warnings)",
    ]


def test_v1_examples_unchanged():
    """The bundled v1 examples get exactly their v1 findings (no new kinds, no notes)."""
    assert messages(lint(examples.policy("crm"))) == [
        "warning: rules[5].condition.FieldPresent: FieldPresent on AgentAttributes.mfa_verified passes for false, "
        "0 and \"\" as well",
        "warning: rules[7].condition.All[1].FieldPresent: FieldPresent on AgentAttributes.mfa_verified passes for "
        "false, 0 and \"\" as well",
    ]
    assert all(f.level == "warning" for f in lint(examples.policy("spec"), "perso"))
