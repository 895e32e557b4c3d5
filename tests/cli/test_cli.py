"""The command line: one-line errors, exit codes, machine output.

`run` (a process) and `invoke` (in-process: callgate.cli.main(argv), what the other test
files use to reach the command line without a subprocess) live in tests/support/cli.py."""

from __future__ import annotations

import io
import json

from callgate import examples
from support.cli import invoke, run


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
    """check prints each finding as FILE:LINE:COLUMN: LEVEL: PATH: MESSAGE (the line and column
    of the value at fault in the file), then a count, and exits 1, with no traceback."""
    p = examples.policy("crm")
    p["rules"][3]["condition"]["NumericCheck"]["op"] = "Approx"
    path = tmp_path / "bad.json"
    text = json.dumps(p, indent=2)
    path.write_text(text)
    line = text[:text.index('"Approx"')].count("\n") + 1
    column = len(text[:text.index('"Approx"')].rsplit("\n", 1)[-1]) + 1
    r = run("check", str(path))
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0] == (f"{path}:{line}:{column}: error: rules[3].condition.NumericCheck.op: unknown op 'Approx'; "
                        "expected Lt, Lte, Gt, Gte, Eq, Ne, Between")
    assert lines[-1] == f"{path}: 1 error"   # (the other lines: the checks that still run)
    assert r.stderr == ""


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
    assert any(line.endswith(": note: rules[3].condition.NumericCheck.op: perso compatibility: op 'Ne' is v2: "
                             "the original engine rejects the policy (unknown variant)")
               for line in r.stdout.splitlines())
    assert r.stdout.splitlines()[-1] == f"{path}: ok (8 rules, 2 warnings, 1 note)"
    r = run("check", str(path), "--semantics", "perso")
    assert r.returncode == 1
    assert r.stdout.startswith(f"{path}:1:")
    assert ": error: rules[3].condition.NumericCheck.op: unknown op 'Ne'; expected Lt, Lte, Gt, Gte, Eq" in r.stdout


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


# ---------------------------------------------------------------- the renderer (callgate.textout)


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_without_no_color(monkeypatch):
    """textout colours what goes to a terminal, and writes plain text to anything else (a pipe,
    a file, a buffer) and to a terminal when NO_COLOR is set."""
    from callgate import textout

    line = textout.Text("Deny", "bold red").append("  the reason")
    monkeypatch.delenv("NO_COLOR", raising=False)
    tty, buffer = _Terminal(), io.StringIO()
    textout.echo(line, tty)
    textout.echo(line, buffer)
    assert tty.getvalue() == "\x1b[1;31mDeny\x1b[0m  the reason\n"
    assert buffer.getvalue() == "Deny  the reason\n"
    monkeypatch.setenv("NO_COLOR", "1")
    tty = _Terminal()
    textout.echo(line, tty)
    assert tty.getvalue() == "Deny  the reason\n"


def test_table_and_tree_are_plain_text():
    """A table pads every column to its widest cell and cuts nothing; a tree hangs each child
    under `├── ` (the last under `└── `) with `│   ` guides below an earlier sibling."""
    from callgate import textout

    lines = [t.plain for t in textout.table(("a", "long header"), [["xxxx", "y"], [textout.Text("z", "red"), "w"]],
                                            title="T")]
    assert lines == ["T", "a     long header", "----  -----------", "xxxx  y", "z     w"]
    root = textout.Node(textout.Text("root"))
    first = root.add("one")
    first.add("one.a")
    root.add("two").add("two.a")
    assert [t.plain for t in textout.tree(root)] == [
        "root", "├── one", "│   └── one.a", "└── two", "    └── two.a"]


def test_eval_table_lists_every_case():
    """`callgate eval` (the CRM cases) prints a table with a header and one row per call."""
    r = invoke("eval")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "callgate eval: crm (strict semantics)"
    assert lines[1].split() == ["call", "role", "decision", "reason"]
    assert set(lines[2]) == {"-", " "}
    assert len(lines[3:-1]) == 20 and lines[3].split()[:3] == ['view_customer({"customer_id":"C-1042"})', "agent",
                                                                 "Allow"]
    assert lines[-1] == "20 calls, 9 allowed, 0 unexpected"
