"""`callgate explain`: every rule for (tool, role) in precedence order, each condition as a
tree of T/F/U values with what the request holds, the deciding rule and the engine's reason.

explain.py evaluates the policy model in Python, independently of the C core, and checks
that it reaches the engine's decision: the property tests below hold it to that on random
v1 (strict and perso) and v2 policies."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings

from callgate import examples
from callgate import explain as explain_module
from callgate.compiler import compile_policy
from callgate.engine import Engine
from callgate.errors import PolicyError, RequestError
from callgate.explain import explain_request
from support.cli import invoke as invoke_cli
from support.strategies import policy_and_request, v2_leaf_policy_and_request, v2_policy_and_request

EXAMPLES = int(os.environ.get("CALLGATE_HYPOTHESIS_EXAMPLES", "100"))
prop_settings = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
# v2 policies are costly to generate (hypothesis spends most of the time drawing them)
v2_settings = settings(max_examples=max(EXAMPLES // 4, 25), deadline=None, suppress_health_check=list(HealthCheck))

V2_POLICY = {
    "version": "v2", "default_action": "Deny", "tools": ["pay", "delete_file", "read_file"], "roles": ["agent"],
    "tool_tiers": {"pay": "write", "delete_*": "destructive", "read_file": "read"},
    "tier_defaults": {"destructive": {"effect": "elevate", "approvals": 2}},
    "rules": [
        {"tool_name": "pay", "roles": ["agent"], "effect": "deny", "condition": {"Any": [
            {"NumericCheck": {"source": "Context", "field": "risk", "op": "Gt", "value": 0.8}},
            {"Not": {"TimeWindow": {"days": ["Mon", "Tue", "Wed", "Thu", "Fri"], "start": "09:00", "end": "17:00",
                                    "timezone": "Europe/Paris"}}}]}},
        {"tool_name": "pay", "roles": ["agent"], "condition": {"All": [
            {"Every": {"source": "Arguments", "field": "items", "condition": {
                "NumericCheck": {"source": "Element", "field": "amount", "op": "Lte", "value": 100}}}},
            {"StringCheck": {"source": "Arguments", "pointer": "/payee/iban", "op": "StartsWith", "value": "FR"}}]}},
        {"tier": "write", "roles": ["agent"], "effect": "elevate", "approvals": 1,
         "condition": {"Type": {"source": "Arguments", "field": "memo", "is": "string"}}},
        {"tool_name": "pay", "roles": ["agent"], "effect": "elevate", "approvals": 2},
    ],
}
OFFICE_HOURS = {"risk": 0.2, "time": "2024-06-03T10:00:00+02:00"}  # a Monday, 10:00 in Paris


def invoke(*args: str):
    return invoke_cli(*args)


def explain_json(*args: str) -> dict:
    r = invoke("explain", *args, "--format", "json")
    assert r.exit_code == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


@pytest.fixture
def v2_path(tmp_path) -> str:
    path = tmp_path / "v2.json"
    path.write_text(json.dumps(V2_POLICY))
    return str(path)


def _strip(node: dict) -> tuple:
    """(kind, value, children...) of a JSON tree node, for structural comparison."""
    return (node["kind"], node["value"], *(_strip(c) for c in node.get("children", [])))


# ---------------------------------------------------------------- v1


def test_v1_json_tree_and_reason():
    """v1 (crm): the one rule for the pair, its Any tree with every node's value, the values
    seen (present or missing), the blamed leaf, and the engine's exact reason."""
    doc = explain_json("crm", "--tool", "delete_customer", "--role", "manager",
                       "--agent", '{"user_id": "u1"}', "--resource", '{"owner_id": "u2"}')
    assert (doc["decision"], doc["rule"], doc["approvals_required"]) == ("Deny", 2, 0)
    assert doc["reason"] == ("delete_customer denied for role 'manager': AgentAttributes.user_id = \"u1\" does not "
                             "equal ResourceAttributes.owner_id = \"u2\", and AgentAttributes.role is missing (rule 3)")
    assert doc["agrees"] is True and doc["problems"] == []
    assert doc["engine"] == doc["explain"] == {"decision": "Deny", "rule": 2, "approvals_required": 0}
    [rule] = doc["rules"]
    assert (rule["rule"], rule["number"], rule["effect"], rule["value"], rule["applies"]) == (2, 3, "allow", "U", False)
    tree = rule["condition"]
    assert _strip(tree) == ("Any", "U", ("FieldEquals", "F"), ("StringCheck", "U"))
    equals, role = tree["children"]
    assert equals["label"] == "AgentAttributes.user_id equals ResourceAttributes.owner_id"
    assert equals["seen"] == [
        {"name": "AgentAttributes.user_id", "present": True, "value": "u1", "text": '"u1"'},
        {"name": "ResourceAttributes.owner_id", "present": True, "value": "u2", "text": '"u2"'}]
    assert role["location"] == "rules[2].condition.Any[1].StringCheck"
    assert role["seen"] == [{"name": "AgentAttributes.role", "present": False, "text": "missing"}]
    assert role["blame"] is True and equals["blame"] is True  # the Any failed: both branches are named


def test_v1_text_output():
    """Text: a tree headed by the call, one branch per rule, leaves with their values, then the
    decision and the reason lines."""
    r = invoke("explain", "crm", "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 800}')
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "process_refund as role 'agent' (strict semantics): rules in precedence order (deny, allow, elevate)"
    assert lines[1] == "└── rule 4 (rules[3]) allow  process_refund: condition F -> does not apply   ◀ decides"
    assert lines[2] == "    └── F  Arguments.amount <= 500   (Arguments.amount = 800)   ◀ blamed"
    assert lines[-2] == "decision: Deny: no rule granted it; rule 4 (rules[3]) is the one explained"
    assert lines[-1] == ("reason: process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 "
                         "(rule 4)")


def test_text_output_is_coloured_only_on_a_terminal():
    """The same lines on a terminal carry colours (F red, the deciding rule's mark magenta);
    without their escape codes they are the plain text, character for character."""
    import re

    from callgate.explain import render

    compiled = compile_policy(examples.policy("crm"), "strict")
    ex = explain_request(compiled, Engine(compiled), "process_refund", "agent", args={"amount": 800})
    lines = render(ex)
    coloured = [line.render(True) for line in lines]
    assert [re.sub(r"\x1b\[[0-9;]*m", "", c) for c in coloured] == [line.plain for line in lines]
    assert "\x1b[1;31mF\x1b[0m" in coloured[2] and "\x1b[1;35m   ◀ decides\x1b[0m" in coloured[1]
    assert all("\x1b" not in line.render(False) for line in lines)


def test_v1_default_action_and_no_rule():
    """No rule for the pair: the default decides (rule null), the tree says so."""
    doc = explain_json("crm", "--tool", "nothing", "--role", "agent")
    assert (doc["decision"], doc["rule"], doc["decided_by"], doc["rules"]) == ("Deny", None, "default_action", [])
    r = invoke("explain", "crm", "--tool", "nothing", "--role", "agent")
    assert "└── no rule covers this tool for this role" in r.stdout
    assert "decision: Deny by default_action" in r.stdout


def test_perso_semantics_not_over_missing():
    """--semantics perso: two-valued (a missing field is F, so Not passes) and perso's reason."""
    doc = explain_json("spec", "--tool", "open_tool", "--role", "viewer", "--semantics", "perso")
    assert doc["semantics"] == "perso"
    assert (doc["decision"], doc["rule"]) == ("Allow", 6)
    assert doc["reason"] == "rule matched tool 'open_tool' for role 'viewer'; condition passed"
    assert _strip(doc["rules"][0]["condition"]) == ("Not", "T", ("StringCheck", "F"))


def test_short_circuit_marked_skipped():
    """Children the engine does not evaluate (after an All's first F) are shown, marked skipped."""
    doc = explain_json("crm", "--tool", "bulk_update", "--role", "admin", "--agent", '{"env": "staging"}')
    tree = doc["rules"][0]["condition"]
    assert tree["kind"] == "All" and tree["value"] == "F"
    first, second = tree["children"]
    assert first["value"] == "F" and "skipped" not in first
    assert second["skipped"] is True


# ---------------------------------------------------------------- v2


def test_v2_elevate_precedence_and_quantifier(v2_path):
    """v2: rules listed deny, allow, elevate (approvals descending); Every shows each element
    (those after the deciding F marked skipped); pointer names read as written; the largest
    approval count among applying elevate rules decides."""
    doc = explain_json(v2_path, "--tool", "pay", "--role", "agent",
                       "--args", '{"items": [{"amount": 50}, {"amount": 150}, {"amount": 1}], "payee": {"iban": "FR76"}}',
                       "--context", json.dumps(OFFICE_HOURS))
    assert [(r["rule"], r["effect"], r["approvals"]) for r in doc["rules"]] == [
        (0, "deny", 0), (1, "allow", 0), (3, "elevate", 2), (2, "elevate", 1)]
    assert doc["tier"] == "write"
    assert (doc["decision"], doc["rule"], doc["approvals_required"]) == ("Elevate", 3, 2)
    assert doc["reason"] == "pay requires 2 approvals for role 'agent': rule 4 has no condition"
    deny, allow, elevate2, elevate1 = doc["rules"]
    assert _strip(deny["condition"]) == ("Any", "F", ("NumericCheck", "F"), ("Not", "F", ("TimeWindow", "T")))
    every, iban = allow["condition"]["children"]
    assert every["label"] == "every element of Arguments.items satisfies"
    assert [(e["label"], e["value"], e.get("skipped", False)) for e in every["children"]] == [
        ("element 0", "T", False), ("element 1", "F", False), ("element 2", "T", True)]
    assert every["children"][1]["children"][0]["seen"][0] == {"name": "element.amount", "present": True,
                                                              "value": 150, "text": "150"}
    assert iban["label"] == 'Arguments/payee/iban starts with "FR"' and iban["skipped"] is True
    assert elevate2["applies"] and elevate2["condition"] is None
    assert elevate1["tier"] == "write" and elevate1["value"] == "F"  # Type on a missing value is F, not U
    assert elevate1["reached"] is False  # an elevate(2) rule applied first


def test_v2_deny_on_undetermined(v2_path):
    """A deny rule whose condition is U applies (and blames both branches of its Any, each
    on a missing value); the rules after it are listed as not reached."""
    doc = explain_json(v2_path, "--tool", "pay", "--role", "agent", "--args", '{"items": []}')
    assert (doc["decision"], doc["rule"]) == ("Deny", 0)
    assert doc["reason"] == ("pay denied for role 'agent': rule 1 forbids it and could not be evaluated: "
                             "Context.risk is missing, and Context.time is missing")
    deny = doc["rules"][0]
    assert (deny["value"], deny["applies"], deny["reached"]) == ("U", True, True)
    assert deny["condition"]["children"][0]["blame"] is True
    assert deny["condition"]["children"][1]["children"][0]["blame"] is True  # the TimeWindow under Not
    assert [r["reached"] for r in doc["rules"][1:]] == [False, False, False]
    text = invoke("explain", v2_path, "--tool", "pay", "--role", "agent", "--args", '{"items": []}').stdout
    assert "├── rule 1 (rules[0]) deny  pay: condition U -> applies   ◀ decides" in text
    assert "not reached (an earlier rule decided)" in text


def test_v2_tier_default(v2_path):
    """No rule for the pair: the tool's tier default decides (Elevate with its approvals)."""
    doc = explain_json(v2_path, "--tool", "delete_file", "--role", "agent")
    assert (doc["decision"], doc["rule"], doc["approvals_required"], doc["decided_by"]) == (
        "Elevate", None, 2, "tier default")
    text = invoke("explain", v2_path, "--tool", "delete_file", "--role", "agent").stdout
    assert "decision: Elevate (2 approvals) by the default of tier 'destructive'" in text


def test_v2_allow_passes(v2_path):
    """All true: the allow rule decides; the elevate rules after it are not reached."""
    doc = explain_json(v2_path, "--tool", "pay", "--role", "agent",
                       "--args", '{"items": [{"amount": 5}], "payee": {"iban": "FR1"}}',
                       "--context", json.dumps(OFFICE_HOURS))
    assert (doc["decision"], doc["rule"]) == ("Allow", 1)
    assert [r["reached"] for r in doc["rules"]] == [True, True, False, False]


# ---------------------------------------------------------------- errors and disagreement


def test_bad_inputs_one_line():
    """A malformed JSON option and one the engine would refuse (an array where an object
    belongs) are bad input: exit 2, one line naming the option."""
    r = invoke("explain", "crm", "--tool", "t", "--role", "agent", "--context", "{nope")
    assert r.exit_code == 2 and r.stderr.startswith("error: --context: not valid JSON")
    r = invoke("explain", "crm", "--tool", "t", "--role", "agent", "--context", "[1]")
    assert r.exit_code == 2 and r.stderr.startswith("error: --context: expected a JSON object")
    assert len(r.stderr.splitlines()) == 1
    r = invoke("explain", "crm", "--tool", "t", "--role", "agent", "--format", "yaml")
    assert r.exit_code == 2 and r.stderr.startswith("error: --format:")


def test_disagreement_exits_3(monkeypatch):
    """If explain's evaluation and the engine ever disagree, the output says so loudly on
    stderr and the exit status is 3 (a bug in one of them)."""
    wrong = explain_module.Evaluator._leaf_NumericCheck

    def says_true(self, spec, loc):   # a bug in explain's evaluator: every NumericCheck holds
        node = wrong(self, spec, loc)
        node.value = "T"
        return node

    monkeypatch.setattr(explain_module.Evaluator, "_leaf_NumericCheck", says_true)
    r = invoke("explain", "crm", "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 800}')
    assert r.exit_code == 3
    assert r.stderr.strip() == ("error: BUG: explain and the engine disagree: the engine says Deny by rule 4 "
                                "(rules[3]); explain's evaluation says Allow by rule 4 (rules[3])")
    assert "DISAGREEMENT" in r.stdout
    r = invoke("explain", "crm", "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 800}',
               "--format", "json")
    assert r.exit_code == 3
    assert json.loads(r.stdout)["agrees"] is False


# ---------------------------------------------------------------- agreement with the engine


@pytest.mark.parametrize("time_text", [
    "\uff12\uff10\uff12\uff14-06-03T10:00:00+02:00",   # fullwidth year
    "\u0662\u0660\u0662\u0664-06-03T10:00:00+02:00",   # Arabic-Indic year
    "2024-06-03T1\u0966:00:00+02:00",                     # a Devanagari zero in the hour
    "2024-06-03T10:00:00.\uff15+02:00",                   # a fullwidth digit in the fraction
    "2024-06-03T10:00:00+0\uff12:00",                     # and in the offset
], ids=["fullwidth", "arabic-indic", "devanagari", "fraction", "offset"])
def test_non_ascii_digits_in_a_time_are_not_a_time(v2_path, time_text):
    """Finding 13: RFC 3339 takes ASCII digits only, as the C core does. A context time
    written with other Unicode digits (which Python's \\d and int() accept) is not a time for
    explain either: the TimeWindow is U, so the deny rule over it applies, and explain and the
    engine agree (exit 0, not 3)."""
    context = {"risk": 0.2, "time": time_text}
    args = '{"items": [{"amount": 5}], "payee": {"iban": "FR1"}}'
    doc = explain_json(v2_path, "--tool", "pay", "--role", "agent", "--args", args,
                       "--context", json.dumps(context, ensure_ascii=False))
    assert doc["agrees"] is True and doc["problems"] == []
    assert (doc["decision"], doc["rule"]) == ("Deny", 0)
    window = doc["rules"][0]["condition"]["children"][1]["children"][0]
    assert (window["kind"], window["value"]) == ("TimeWindow", "U")
    assert explain_module.parse_instant(time_text) is None
    engine = Engine.from_dict(V2_POLICY)
    d = engine.evaluate("pay", json.loads(args), role="agent", context=context)
    assert (d.decision, d.rule) == ("Deny", 0)
    ascii_time = dict(context, time="2024-06-03T10:00:00+02:00")   # the same instant in ASCII: a time
    assert engine.evaluate("pay", json.loads(args), role="agent", context=ascii_time).allowed


@pytest.mark.parametrize("name, semantics", [("crm", "strict"), ("crm", "perso"), ("spec", "strict"),
                                             ("spec", "perso"), ("ops", "strict")])
def test_agrees_on_bundled_cases(name, semantics):
    """explain decides every bundled example case as the engine does."""
    if name not in examples.EXAMPLES:
        pytest.skip(f"no bundled example {name!r}")
    compiled = compile_policy(examples.policy(name), semantics)
    engine = Engine(compiled)
    for case in examples.cases(name):
        ex = explain_request(compiled, engine, case["tool"], case["role"], case.get("args"),
                             case.get("agent_attributes"), case.get("resource_attributes"), case.get("context"))
        assert ex.problems == [], case


def _agrees(policy: dict, request: tuple, semantics: str = "strict") -> None:
    try:
        compiled = compile_policy(policy, semantics)
    except PolicyError:
        return
    tool, role, args, agent, resource, *context = request
    try:
        ex = explain_request(compiled, Engine(compiled), tool, role, args, agent, resource,
                             context[0] if context else None)
    except RequestError:
        return
    assert ex.problems == [], (policy, request)


@prop_settings
@given(pr=policy_and_request("strict"))
def test_agrees_with_engine_v1_strict(pr):
    """On random v1 policies and requests (strict), explain decides as the engine does."""
    _agrees(*pr)


@prop_settings
@given(pr=policy_and_request("perso"))
def test_agrees_with_engine_perso(pr):
    """On random perso policies and requests, explain decides as the engine does."""
    _agrees(*pr, semantics="perso")


@v2_settings
@given(pr=v2_policy_and_request())
def test_agrees_with_engine_v2(pr):
    """On random v2 policies (effects, tiers, every node kind) explain decides as the engine does."""
    _agrees(*pr)


@prop_settings
@given(pr=v2_leaf_policy_and_request())
def test_agrees_with_engine_v2_leaves(pr):
    """On one-leaf v2 policies (dense on leaf corners: pointers, times, globs) explain agrees."""
    _agrees(*pr)
