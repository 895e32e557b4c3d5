"""The command line: one-line errors, exit codes, machine output."""

from __future__ import annotations

import json
import subprocess
import sys


from callgate import examples

CLI = [sys.executable, "-m", "callgate"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


def test_eval_default_runs_crm_scenarios():
    """`callgate eval` with no arguments plays the bundled CRM scenarios; all match."""
    r = run("eval")
    assert r.returncode == 0, r.stderr
    assert "20 calls, 9 allowed, 0 unexpected" in r.stdout


def test_eval_one_call_json():
    """--json prints the wasm ABI's response shape."""
    r = run("eval", "crm", "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 800}', "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"decision": "Deny", "rule": 3,
                                    "reason": "process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)"}


def test_eval_perso_semantics():
    """--semantics perso gives the original engine's reasons."""
    r = run("eval", "crm", "--tool", "view_customer", "--role", "agent", "--semantics", "perso")
    assert "no condition required" in r.stdout


def test_check_reports_location_in_one_line(tmp_path):
    """check prints the location and exits 1 on an invalid policy, with no traceback."""
    p = examples.policy("crm")
    p["rules"][3]["condition"]["NumericCheck"]["op"] = "Approx"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(p))
    r = run("check", str(path))
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: rules[3].condition.NumericCheck.op: unknown op 'Approx'; "
                                "expected Lt, Lte, Gt, Gte, Eq, Ne, Between")
    assert "Traceback" not in r.stderr


def test_check_v2_op_in_perso_file_is_a_note(tmp_path):
    """A v2 op (Ne) is valid in the default semantics, so check passes; in a file whose
    version says perso- it is a perso-compatibility note (the original engine refuses the
    unknown variant), counted apart from warnings; --semantics perso refuses the op."""
    p = examples.policy("crm")
    p["rules"][3]["condition"]["NumericCheck"]["op"] = "Ne"
    path = tmp_path / "ne.json"
    path.write_text(json.dumps(p))
    r = run("check", str(path))
    assert r.returncode == 0, r.stderr
    assert ("note: rules[3].condition.NumericCheck.op: perso compatibility: op 'Ne' is v2: "
            "the original engine rejects the policy (unknown variant)") in r.stdout.splitlines()
    assert r.stdout.splitlines()[-1] == f"{path}: ok (8 rules, 2 warnings, 1 note)"
    r = run("check", str(path), "--semantics", "perso")
    assert r.returncode == 1
    assert r.stderr.startswith("error: rules[3].condition.NumericCheck.op: unknown op 'Ne'; expected Lt, Lte, Gt, Gte, Eq")


def test_check_v1_ok_line_unchanged():
    """A v1 policy without findings of the new kinds keeps the v1 summary line (no notes part)."""
    r = run("check", "crm")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "crm: ok (8 rules, 2 warnings)"


def test_new_commands_listed():
    """`callgate --help` lists the test and explain commands."""
    r = run("--help")
    assert r.returncode == 0
    assert " test " in r.stdout and " explain " in r.stdout


def test_check_perso_warnings(tmp_path):
    """check warns about perso's fail-open corners: dropped duplicates, undeclared roles,
    empty globs, FieldPresent on falsy values, Not over a maybe-missing field."""
    p = {"version": "perso-1", "default_action": "Deny", "tools": ["a", "b"], "roles": ["r"], "rules": [
        {"tool_name": "a", "roles": ["r"], "condition": None},
        {"tool_name": "a", "roles": ["r", "ghost"], "condition": {"Not": {"NumericCheck": {
            "source": "Arguments", "field": "x", "op": "Gt", "value": 5}}}},
        {"tool_name": "z*", "roles": ["r"], "condition": {"FieldPresent": {"source": "AgentAttributes", "field": "mfa"}}},
    ]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(p))
    r = run("check", str(path), "--semantics", "perso")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "rules[0]: ignored for (a, r): rules[1] names the same pair later" in out
    assert "rules[1].roles[1]: role 'ghost' is not declared" in out
    assert "rules[2].tool_name: glob 'z*' matches no declared tool" in out
    assert "rules[2].condition.FieldPresent: FieldPresent on AgentAttributes.mfa passes for false" in out
    assert "rules[1].condition.Not: Not over a field that may be missing" in out


def test_missing_file_one_line():
    """A missing policy file is one error line."""
    r = run("check", "/nonexistent/p.json")
    assert r.returncode == 1
    assert r.stderr.startswith("error: /nonexistent/p.json:")


def test_bad_json_argument():
    """A malformed --args is a one-line usage error (exit 2)."""
    r = run("eval", "crm", "--tool", "t", "--role", "agent", "--args", "{nope")
    assert r.returncode == 2
    assert r.stderr.startswith("error: --args: not valid JSON")


def test_request_error_one_line():
    """A request the engine refuses (NaN is not JSON) is one error line, exit 1."""
    r = run("eval", "crm", "--tool", "process_refund", "--role", "agent", "--args", '{"amount": 1e400}')
    assert r.returncode in (1, 2)
    assert r.stderr.startswith("error:")


def test_schema_is_json():
    """schema prints a JSON Schema document."""
    r = run("schema")
    assert json.loads(r.stdout)["title"] == "callgate policy"


def test_disasm_lists_instructions():
    """disasm prints entries and instructions readably."""
    r = run("disasm", "crm")
    assert r.returncode == 0
    assert "NUM     Arguments.amount <= 500" in r.stdout
    assert "entry 'process_refund' x 'agent' -> rule 4" in r.stdout


def test_compile_writes_blob(tmp_path):
    """compile writes the blob the core loads."""
    out = tmp_path / "crm.blob"
    r = run("compile", "crm", "-o", str(out))
    assert r.returncode == 0
    assert out.read_bytes()[:4] == b"CGPB"


def test_eval_with_context_and_elevate():
    """eval passes --context to the Context source and prints an Elevate with its count."""
    monday = '{"time": "2026-11-23T10:00:00+01:00", "risk_score": 1}'
    r = run("eval", "ops", "--tool", "transfer_funds", "--role", "oncall", "--args", '{"payment": {"amount": 3000}}',
            "--context", monday)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Allow  transfer_funds allowed for role 'oncall': rule 5 condition passed"
    r = run("eval", "ops", "--tool", "delete_file", "--role", "oncall", "--json")
    assert json.loads(r.stdout) == {"decision": "Elevate", "rule": None, "approvals_required": 2, "reason": (
        "delete_file requires 2 approvals for role 'oncall': no rule covers this tool for this role "
        "(tier 'destructive' default Elevate)")}
