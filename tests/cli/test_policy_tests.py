"""`callgate test POLICY CASES`: expected decisions checked against a policy, like `opa test`.

The runner (callgate.policy_tests) is a pure function from an engine and cases to results;
the command prints them and exits 0 (all pass), 1 (some fail) or 2 (unusable input)."""

from __future__ import annotations

import json
import re

import pytest

from callgate import Engine, examples
from callgate.policy_tests import CasesError, parse_cases, run_cases, summary
from support.cli import invoke, run


def write(tmp_path, name: str, data) -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


PASSING = {"cases": [
    {"name": "agent refunds 200", "tool": "process_refund", "role": "agent", "args": {"amount": 200},
     "expect": "Allow"},
    {"name": "agent refunds 800", "tool": "process_refund", "role": "agent", "args": {"amount": 800},
     "expect": {"decision": "Deny", "rule": 3, "approvals_required": 0,
                "reason": "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"}},
    {"tool": "view_customer", "role": "agent", "expect": {"decision": "Allow", "reason_contains": "no condition"}},
]}

FAILING = [
    {"name": "agent refunds 800", "tool": "process_refund", "role": "agent", "args": {"amount": 800},
     "expect": "Allow"},
    {"name": "manager deletes", "tool": "delete_customer", "role": "manager",
     "agent_attributes": {"user_id": "m1"}, "resource_attributes": {"owner_id": "m1"},
     "expect": {"decision": "Allow", "rule": 3, "reason_contains": "passed!"}},
    {"name": "view", "tool": "view_customer", "role": "agent", "expect": "Allow"},
]

V2_POLICY = {
    "version": "v2-test", "default_action": "Deny", "tools": ["read_file", "delete_file", "pay"],
    "roles": ["agent"],
    "tool_tiers": {"read_file": "read", "delete_*": "destructive", "pay": "write"},
    "tier_defaults": {"read": "allow", "destructive": {"effect": "elevate", "approvals": 2}},
    "rules": [
        {"tool_name": "pay", "roles": ["agent"], "effect": "deny",
         "condition": {"NumericCheck": {"source": "Context", "field": "risk", "op": "Gt", "value": 0.8}}},
        {"tool_name": "pay", "roles": ["agent"], "effect": "elevate", "approvals": 1},
    ],
}


def test_passing_file_report_and_exit_0(tmp_path):
    """All cases pass: one PASS line per case (the case's name, or cases[i] TOOL as ROLE),
    the summary line, exit 0."""
    r = run("test", "crm", write(tmp_path, "ok.json", PASSING))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [
        "PASS  agent refunds 200",
        "PASS  agent refunds 800",
        "PASS  cases[2] view_customer as agent",
        "3/3 passed, 0 failed",
    ]
    assert r.stderr == ""


def test_failing_file_report_and_exit_1(tmp_path):
    """A failing case prints FAIL, each mismatch (expected vs got) and what the engine said
    with its reason; a bare list of cases is accepted; exit 1."""
    r = run("test", "crm", write(tmp_path, "bad.json", FAILING))
    assert r.returncode == 1, r.stderr
    assert r.stdout.splitlines() == [
        "FAIL  agent refunds 800",
        "      decision: expected Allow, got Deny",
        "      got Deny: process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)",
        "FAIL  manager deletes",
        "      rule: expected rules[3] (rule 4), got rules[2] (rule 3)",
        "      reason: does not contain \"passed!\"",
        "      got Allow: delete_customer allowed for role 'manager': rule 3 condition passed",
        "PASS  view",
        "1/3 passed, 2 failed",
    ]


def test_bundled_scenarios_pass():
    """The bundled scenario files (which spell the key `expected`) run as test files: the
    perso examples in perso semantics, the v2 one (ops, with expected objects) in strict."""
    for name in examples.EXAMPLES:
        path = examples.path(examples.EXAMPLES[name][1])
        semantics = "strict" if name == "ops" else "perso"
        r = run("test", name, str(path), "--semantics", semantics)
        assert r.returncode == 0, r.stdout
        n = len(examples.cases(name))
        assert r.stdout.splitlines()[-1] == f"{n}/{n} passed, 0 failed"


def test_json_format(tmp_path):
    """--format json: one document with every result (status, expect, got, failures) and
    the counts."""
    r = run("test", "crm", write(tmp_path, "bad.json", FAILING), "--format", "json")
    assert r.returncode == 1
    doc = json.loads(r.stdout)
    assert (doc["total"], doc["passed"], doc["failed"], doc["errors"]) == (3, 1, 2, 0)
    assert doc["semantics"] == "strict" and doc["policy"] == "crm"
    first = doc["results"][0]
    assert first["status"] == "fail" and first["name"] == "agent refunds 800"
    assert first["expect"] == {"decision": "Allow"}
    assert first["got"] == {"decision": "Deny", "rule": 3, "approvals_required": 0,
                            "reason": "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"}
    assert first["failures"] == ["decision: expected Allow, got Deny"]
    assert doc["results"][2]["status"] == "pass"


def test_v2_elevate_deny_context(tmp_path):
    """v2 expectations: Elevate with approvals_required, a deny rule reading Context, a tier
    default (rule null)."""
    policy = write(tmp_path, "v2.json", V2_POLICY)
    cases = [
        {"name": "pay low risk", "tool": "pay", "role": "agent", "context": {"risk": 0.1},
         "expect": {"decision": "Elevate", "approvals_required": 1, "rule": 1}},
        {"name": "pay high risk", "tool": "pay", "role": "agent", "context": {"risk": 0.9},
         "expect": {"decision": "Deny", "rule": 0, "reason_contains": "rule 1 forbids it"}},
        {"name": "pay unknown risk", "tool": "pay", "role": "agent",
         "expect": {"decision": "Deny", "reason_contains": "could not be evaluated"}},
        {"name": "delete", "tool": "delete_file", "role": "agent",
         "expect": {"decision": "Elevate", "approvals_required": 2, "rule": None}},
        {"name": "read", "tool": "read_file", "role": "agent", "expect": {"decision": "Allow", "rule": None}},
    ]
    r = run("test", policy, write(tmp_path, "cases.json", cases))
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "5/5 passed, 0 failed"


def test_elevate_failure_shows_approvals(tmp_path):
    """A failing case whose engine answer is Elevate says how many approvals it needs."""
    policy = write(tmp_path, "v2.json", V2_POLICY)
    cases = [{"name": "delete", "tool": "delete_file", "role": "agent", "expect": "Allow"}]
    r = run("test", policy, write(tmp_path, "cases.json", cases))
    assert r.returncode == 1
    assert r.stdout.splitlines()[:3] == [
        "FAIL  delete",
        "      decision: expected Allow, got Elevate",
        "      got Elevate (2 approvals): delete_file requires 2 approvals for role 'agent': "
        "no rule covers this tool for this role (tier 'destructive' default Elevate)",
    ]


def test_request_error_is_an_error_case(tmp_path):
    """A request the engine refuses (arguments that are not an object) is an ERROR case:
    reported, counted, exit 1; the other cases still run."""
    cases = [{"name": "list args", "tool": "process_refund", "role": "agent", "args": [1], "expect": "Deny"},
             {"name": "view", "tool": "view_customer", "role": "agent", "expect": "Allow"}]
    r = run("test", "crm", write(tmp_path, "c.json", cases))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0] == "ERROR  list args"
    assert lines[1].startswith("      the request was refused: ")
    assert lines[-2:] == ["PASS  view", "1/2 passed, 0 failed, 1 error"]


@pytest.mark.parametrize("content, message", [
    ("{nope", "line 1 column 2: not valid JSON"),
    ('[{"tool": "t", "role": "r", "expect": "Allow", "expect": "Deny"}]',
     "(json): not valid JSON: duplicate key 'expect'"),
    (json.dumps({"tests": []}), "(file): expected a list of cases, or an object with a \"cases\" list"),
    (json.dumps({"cases": 5}), "cases: expected a list of cases, got a number"),
    (json.dumps([{"tool": "t", "role": "r", "expct": "Allow"}]),
     "cases[0]: unknown key 'expct'; expected agent_attributes, args, chain, context, expect, name, resource_attributes, "
     "role, tool"),
    (json.dumps([{"tool": "t", "role": "r"}]), "cases[0].expect: required key is missing"),
    (json.dumps([{"tool": "t", "expect": "Allow"}]), "cases[0].role: required key is missing"),
    (json.dumps([{"tool": "t", "role": "r", "expect": "Permit"}]),
     "cases[0].expect: unknown decision 'Permit'; expected Allow, Deny, Elevate"),
    (json.dumps([{"tool": "t", "role": "r", "expect": {"decision": "Allow", "rule": "4"}}]),
     "cases[0].expect.rule: expected a rule index (from 0, as Decision.rule), a rule id or null"),
    (json.dumps([{"tool": "t", "role": "r", "expect": {"decision": "Allow", "why": "x"}}]),
     "cases[0].expect: unknown key 'why'; expected approvals_required, decision, reason, reason_contains, rule"),
])
def test_unusable_cases_file_exit_2(tmp_path, content, message):
    """An unusable cases file is one error line naming the file and the location; exit 2."""
    path = write(tmp_path, "c.json", content)
    r = run("test", "crm", path)
    assert r.returncode == 2, r.stdout
    assert r.stdout == ""
    assert r.stderr.startswith(f"error: {path}: {message}"), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unusable_policy_exit_2(tmp_path):
    """A missing or invalid policy is also unusable input: one line naming it, exit 2."""
    cases = write(tmp_path, "c.json", PASSING)
    r = run("test", "/nonexistent/p.json", cases)
    assert r.returncode == 2
    assert r.stderr.startswith("error: /nonexistent/p.json: ")
    bad = examples.policy("crm")
    bad["rules"][0]["roles"] = ["ghost"]
    path = write(tmp_path, "p.json", bad)
    r = run("test", path, cases)
    assert r.returncode == 2
    assert re.fullmatch(rf"error: {re.escape(path)}:1:\d+: rules\[0\]\.roles\[0\]: role 'ghost' is not declared in roles",
                        r.stderr.strip())


def test_yaml_cases(tmp_path):
    """A .yaml cases file runs like JSON (PyYAML is a dependency); bad YAML is one line, exit 2."""
    path = write(tmp_path, "c.yaml", "- {tool: view_customer, role: agent, expect: Allow}\n")
    r = run("test", "crm", path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["PASS  cases[0] view_customer as agent", "1/1 passed, 0 failed"]
    bad = write(tmp_path, "bad.yaml", "- {tool: [unclosed\n")
    r = run("test", "crm", bad)
    assert r.returncode == 2 and r.stderr.startswith(f"error: {bad}: line ") and len(r.stderr.splitlines()) == 1


def test_run_cases_is_pure():
    """run_cases returns results without printing: status, got, failures per case."""
    engine = Engine.from_dict(examples.policy("crm"))
    results = run_cases(engine, parse_cases(FAILING))
    assert [r.status for r in results] == ["fail", "fail", "pass"]
    assert results[1].failures == ["rule: expected rules[3] (rule 4), got rules[2] (rule 3)",
                                   "reason: does not contain \"passed!\""]
    assert summary(results) == {"total": 3, "passed": 1, "failed": 2, "errors": 0}


def test_expect_and_expected_together_refused():
    """`expect` and its alias `expected` cannot both be given."""
    with pytest.raises(CasesError) as exc:
        parse_cases([{"tool": "t", "role": "r", "expect": "Allow", "expected": "Deny"}])
    assert str(exc.value) == "cases[0]: give one of 'expect' and 'expected'"


def test_a_case_may_carry_a_verified_chain(tmp_path):
    """A case's `chain` (user, agents, scopes) stands for a chain that verified: the policy's
    ceilings narrow its scopes, so the same scopes pass for a supervisor and fail for a
    worker under a read-only ceiling; a bad scope in it is a located error (exit 2)."""
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps({
        "version": "c", "default_action": "Deny", "tools": ["drop"], "roles": ["agent"],
        "principals": {"worker:*": {"max_scopes": ["pg.read.*"]}},
        "rules": [{"tool_name": "drop", "roles": ["agent"], "condition": {"ScopeCheck": {"requires": ["pg.write.t"]}}}]}))
    cases = tmp_path / "c.json"
    chain = {"user": "user:alice", "agents": ["supervisor:triage"], "scopes": ["pg.*.*"]}
    cases.write_text(json.dumps([
        {"tool": "drop", "role": "agent", "chain": chain, "expect": "Allow"},
        {"tool": "drop", "role": "agent", "chain": {**chain, "agents": ["supervisor:triage", "worker:sql"]},
         "expect": {"decision": "Deny", "reason_contains": "Principal.scopes"}},
        {"tool": "drop", "role": "agent", "expect": {"decision": "Deny", "reason_contains": "Principal.scopes is missing"}},
    ]))
    r = invoke("test", str(policy), str(cases))
    assert r.exit_code == 0 and "3/3 passed" in r.stdout, r.stdout
    cases.write_text(json.dumps([{"tool": "drop", "role": "agent", "chain": {"user": "u", "scopes": ["a..b"]},
                                  "expect": "Deny"}]))
    r = invoke("test", str(policy), str(cases))
    assert r.exit_code == 2 and "cases[0].chain.scopes[0]" in r.stderr
