"""Every error of the command line is one line on stderr saying what to fix, with exit 2 for
bad usage or input (1 for a failed run), never a traceback or a usage block; and the proxy
refuses a setup it cannot honour before anything starts (no server process, no directory)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from callgate import examples
from callgate.version import __version__
from support.cli import invoke

PY = sys.executable


def one_error(r, code: int = 2) -> str:
    """The one stderr line of a refused command (asserting there is exactly one, the exit
    status, and no traceback); returned for the test to check what it says."""
    lines = r.stderr.splitlines()
    assert r.exit_code == code, (r.exit_code, r.output)
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("error: "), r.stderr
    assert "Traceback" not in r.output and "usage:" not in r.stderr
    assert r.exception is None, r.exception
    return lines[0]


@pytest.fixture
def policy_file(tmp_path) -> Path:
    path = tmp_path / "crm.json"
    path.write_text(json.dumps(examples.policy("crm")))
    return path


@pytest.fixture
def log(tmp_path) -> Path:
    """A JSONL audit log with one decision in it."""
    from callgate import Engine, audit

    path = tmp_path / "audit.jsonl"
    with Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path)) as engine:
        engine.evaluate("view_customer", {"customer_id": "C-1"}, role="agent", agent_attributes={"user_id": "a"})
    return path


# ---------------------------------------------------------------- output files


@pytest.mark.parametrize("command,name", [("compile", "x.blob"), ("build-wasm", "x.wasm")])
def test_output_in_a_missing_directory_is_one_line(tmp_path, command, name):
    """compile / build-wasm -o into a directory that does not exist: one line naming the
    directory, exit 2, nothing created."""
    target = tmp_path / "missing" / "dir" / name
    line = one_error(invoke(command, "crm", "-o", str(target)))
    assert f"-o {target}: cannot write: the directory {target.parent} does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_keygen_into_a_missing_directory_is_one_line(tmp_path):
    """audit keygen PATH in a directory that does not exist: one line, exit 2, no key written."""
    target = tmp_path / "missing" / "key.pem"
    line = one_error(invoke("audit", "keygen", str(target)))
    assert f"the directory {target.parent} does not exist" in line
    assert not target.parent.exists()


# ---------------------------------------------------------------- audit sources


def test_an_unreachable_postgres_source_is_one_line():
    """A PostgreSQL source nobody answers: one line saying it cannot connect (the DSN, which
    may hold a password, is not repeated), exit 2, for reading and verifying alike."""
    pytest.importorskip("psycopg")
    dsn = "postgresql://nobody:secret@127.0.0.1:1/db"
    for command in ("stats", "verify", "query", "tail"):
        line = one_error(invoke("audit", command, dsn))
        assert "cannot connect" in line and "secret" not in line


def test_postgres_without_psycopg_names_the_extra(monkeypatch):
    """With psycopg not importable (a base install), a PostgreSQL source is one line naming
    the extra to install, exit 2."""
    monkeypatch.setitem(sys.modules, "psycopg", None)
    line = one_error(invoke("audit", "stats", "postgresql://nobody@127.0.0.1:1/db"))
    assert "psycopg" in line and "pip install 'callgate[audit]'" in line


@pytest.mark.parametrize("value", ["deny", "Maybe"])
def test_query_decision_must_be_one_of_the_three(log, value):
    """--decision that no record can have (a wrong case, a made-up word) is an error listing
    the three decisions, not an empty answer."""
    line = one_error(invoke("audit", "query", str(log), "--decision", value))
    assert "--decision" in line and "Allow, Deny or Elevate" in line and repr(value) in line


def test_tail_takes_no_negative_count(log):
    """tail -n -3 is an error, not the whole log or nothing."""
    line = one_error(invoke("audit", "tail", str(log), "-n", "-3"))
    assert line.startswith("error: -n: expected 0 or more, got -3")


@pytest.mark.parametrize("command", ["stats", "verify", "query", "tail"])
def test_a_file_that_is_not_an_audit_log_is_said_so(tmp_path, policy_file, command):
    """stats / verify / query / tail on a policy file (pretty-printed, or one line without a
    newline, which looks like a torn record): an error saying it is not an audit log (exit 2),
    not "0 records" nor "byte 0 torn"."""
    compact = tmp_path / "compact.json"
    compact.write_bytes(json.dumps(examples.policy("crm")).encode())
    pretty = tmp_path / "pretty.json"
    pretty.write_text(json.dumps(examples.policy("crm"), indent=2))
    for path in (policy_file, compact, pretty):
        line = one_error(invoke("audit", command, str(path)))
        assert f"{path}: not an audit log" in line


def test_an_empty_log_and_a_real_log_are_still_logs(tmp_path, log):
    """The not-an-audit-log check leaves real logs alone: an empty file has 0 records, a
    written log verifies."""
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    r = invoke("audit", "stats", str(empty), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["records"] == 0
    r = invoke("audit", "verify", str(log))
    assert r.exit_code == 0 and r.stdout.splitlines()[-1].startswith("ok: ")


def test_a_sqlite_file_without_the_audit_table_is_not_a_log(tmp_path):
    """A SQLite database that holds no audit table: one line saying so, exit 2."""
    import sqlite3

    db = tmp_path / "other.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x)")
    line = one_error(invoke("audit", "stats", str(db)))
    assert "not an audit log" in line and "audit_events" in line


# ---------------------------------------------------------------- JSON options


def test_duplicate_keys_in_args_are_refused_with_their_place():
    """--args is read as strictly as the engine reads a request: a duplicate key is refused,
    named, with its byte offset in the option (exit 2), not silently the last value."""
    line = one_error(invoke("eval", "crm", "--tool", "view_customer", "--role", "agent", "--args", '{"a":1,"a":2}'))
    assert line == 'error: --args: duplicate key "a" at byte 8'


def test_a_json_option_of_the_wrong_type_names_the_option():
    """--agent must be an object: an array is a type error naming the option (exit 2)."""
    line = one_error(invoke("eval", "crm", "--tool", "view_customer", "--role", "agent", "--agent", "[1]"))
    assert line == "error: --agent: expected a JSON object, got an array"


def test_json_options_read_from_a_file(tmp_path):
    """--args @FILE reads the JSON from the file (same strictness); a missing file is one line."""
    args = tmp_path / "args.json"
    args.write_text('{"amount": 800}')
    r = invoke("eval", "crm", "--tool", "process_refund", "--role", "agent", "--args", f"@{args}", "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["decision"] == "Deny"
    dup = tmp_path / "dup.json"
    dup.write_text('{"amount": 1, "amount": 2}')
    line = one_error(invoke("eval", "crm", "--tool", "process_refund", "--role", "agent", "--args", f"@{dup}"))
    assert line.startswith(f'error: --args @{dup}: duplicate key "amount" at byte ')
    missing = tmp_path / "nope.json"
    line = one_error(invoke("explain", "crm", "--tool", "process_refund", "--role", "agent", "--args", f"@{missing}"))
    assert line.startswith(f"error: --args @{missing}: cannot read the file: ")


def test_options_for_one_call_need_tool():
    """eval --role/--args without --tool would be ignored (eval runs cases then): refused."""
    line = one_error(invoke("eval", "crm", "--args", "{}"))
    assert "--args" in line and "give --tool" in line


# ---------------------------------------------------------------- argparse's own errors


@pytest.mark.parametrize("argv,needle", [
    (["explain", "crm"], "the following arguments are required: --tool, --role"),
    (["eval", "crm", "--nope"], "unrecognized arguments: --nope"),
    (["evl"], "unknown command 'evl'; the commands are check, eval, test, explain"),
    (["audit", "vrfy"], "unknown command 'vrfy'; the commands are tail, query, stats, verify"),
    (["eval", "crm", "--tool"], "--tool: expected one argument"),
    (["test", "crm", "c.json", "--semantics", "loose"], "--semantics: expected strict or perso, got 'loose'"),
    (["proxy", "--policy", "crm", "--max-in-flight", "many", "--", "x"],
     "--max-in-flight: expected an integer, got 'many'"),
    (["eval", "crm", "--tol", "x"], "unrecognized arguments: --tol"),   # no abbreviations
])
def test_usage_errors_are_one_line(argv, needle):
    """argparse's errors come out as one `error:` line naming what to fix and where to look
    (the command's --help), exit 2, without the usage block."""
    line = one_error(invoke(*argv))
    assert needle in line and "--help" in line


def test_help_and_version_still_work():
    """--help prints the usage (exit 0) for the top level and every command; --version prints
    the version."""
    r = invoke("--version")
    assert r.exit_code == 0 and r.stdout.strip() == f"callgate {__version__}"
    for argv in (["--help"], ["proxy", "--help"], ["audit", "verify", "--help"], ["pins", "approve", "--help"]):
        r = invoke(*argv)
        assert r.exit_code == 0 and r.stdout.startswith("usage: callgate"), argv


def test_the_console_script_exits_with_the_status():
    """`python -m callgate` (as the console script) exits with the command's status."""
    r = subprocess.run([PY, "-m", "callgate", "audit", "tail", "/nonexistent/a.jsonl"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip() == "error: /nonexistent/a.jsonl: no such file"


# ---------------------------------------------------------------- the proxy refuses before starting


def _server(tmp_path) -> list[str]:
    """A server command that leaves a mark when it runs (the proxy must not start it)."""
    mark = tmp_path / "server-ran"
    return [PY, "-c", f"open({str(mark)!r}, 'w').close()"]


def _refused(tmp_path, *options: str) -> str:
    r = invoke("proxy", "--policy", "crm", *options, "--", *_server(tmp_path))
    line = one_error(r)
    assert not (tmp_path / "server-ran").exists()
    return line


def test_proxy_refuses_audit_to_stdout_on_stdio(tmp_path):
    """--audit - on stdio would write into the MCP stream: refused, saying what to use instead."""
    line = _refused(tmp_path, "--role", "agent", "--audit", "-")
    assert "stdout is the MCP stream" in line and "--listen" in line


def test_proxy_refuses_audit_in_a_missing_directory_and_creates_none(tmp_path):
    """--audit DIR/a.jsonl with DIR missing: refused at start, and DIR is not created."""
    target = tmp_path / "missing" / "dir" / "a.jsonl"
    line = _refused(tmp_path, "--role", "agent", "--audit", str(target))
    assert f"the directory {target.parent} does not exist" in line
    assert not (tmp_path / "missing").exists()


def test_the_spool_creates_no_directory(tmp_path):
    """The audit spool does not create the directory it is to live in (a mistyped path must
    not make directories appear): appending there fails instead."""
    from callgate.audit.spool import Spool

    spool = Spool(str(tmp_path / "missing" / "audit.jsonl.spool"))
    with pytest.raises(FileNotFoundError):
        spool.append([])
    assert not (tmp_path / "missing").exists()


def test_proxy_refuses_an_undeclared_role(tmp_path):
    """--role naming no role of the policy: refused (strict), listing the declared roles."""
    line = _refused(tmp_path, "--role", "ghost")
    assert "--role 'ghost'" in line and "agent" in line and "manager" in line


def test_proxy_warns_about_an_undeclared_role_under_perso(tmp_path):
    """Under perso semantics an undeclared role is a warning on stderr, and the proxy runs."""
    server = [PY, "-c", "import sys; sys.stdin.read()"]
    r = subprocess.run([PY, "-m", "callgate", "proxy", "--policy", "crm", "--semantics", "perso", "--role", "ghost",
                        "--", *server], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert "warning: --role 'ghost' is not declared" in r.stderr, r.stderr
    assert "error:" not in r.stderr and r.returncode == 0, r.stderr


def test_proxy_refuses_missing_or_foreign_pins(tmp_path, policy_file):
    """--pins FILE that does not exist (every call would be denied): refused, saying how to
    create it; a file that is not a pins file: refused."""
    missing = tmp_path / "pins.json"
    line = _refused(tmp_path, "--role", "agent", "--pins", str(missing))
    assert "no such file" in line and "callgate pins approve" in line
    line = _refused(tmp_path, "--role", "agent", "--pins", str(policy_file))
    assert "not a pins file" in line
    garbage = tmp_path / "garbage.json"
    garbage.write_text("not json")
    assert "not a pins file" in _refused(tmp_path, "--role", "agent", "--pins", str(garbage))


@pytest.mark.parametrize("option", [
    ["--jwt-key", "k.pem"], ["--jwks", "j.json"], ["--jwt-issuer", "I"], ["--jwt-audience", "A"],
    ["--jwt-algorithm", "RS256"], ["--role-claim", "role"], ["--attr-claim", "team"], ["--max-sessions", "3"],
    ["--max-sessions-per-principal", "2"], ["--max-body", "100"], ["--head-timeout", "5"], ["--body-timeout", "5"],
    ["--allow-host", "h:1"], ["--allow-origin", "https://x"], ["--session-idle-timeout", "60"],
    ["--upstream", "http://127.0.0.1:1/mcp"],
], ids=lambda o: o[0])
def test_proxy_refuses_http_options_on_stdio(tmp_path, option):
    """An option of the HTTP front given without --listen does nothing on stdio: refused,
    naming it (even with its default value)."""
    line = _refused(tmp_path, "--role", "agent", *option)
    assert f"{option[0]} applies only to the HTTP front" in line and "--listen" in line


@pytest.mark.parametrize("option", [["--role", "agent"], ["--agent-attr", "k=v"], ["--principal", "p"]],
                         ids=lambda o: o[0])
def test_proxy_refuses_stdio_identity_with_listen(tmp_path, option):
    """With --listen the identity comes from each request's token: --role, --agent-attr and
    --principal are refused."""
    line = _refused(tmp_path, "--listen", "127.0.0.1:0", *option)
    assert "do not apply with --listen" in line


# ---------------------------------------------------------------- the demo without its extra


def test_demo_without_rich_names_the_extra(monkeypatch):
    """A base install has no rich: `callgate demo` says in one line which extra to install
    (exit 2) instead of a traceback, and so does run_demo() called from Python."""
    monkeypatch.setitem(sys.modules, "rich", None)
    monkeypatch.setitem(sys.modules, "rich.console", None)
    line = one_error(invoke("demo"))
    assert line == "error: callgate demo needs rich, which is not installed: pip install 'callgate[mcp]'"
    pytest.importorskip("mcp")
    from callgate.demo import DemoError, run_demo

    with pytest.raises(DemoError, match=r"pip install 'callgate\[mcp\]'"):
        run_demo()


def test_no_command_imports_typer_or_rich():
    """The command line (every command's --help, and a run of eval/explain/audit) imports
    neither typer nor rich: the base install has neither."""
    code = ("import sys\n"
            "from callgate.cli import main\n"
            "for argv in (['--help'], ['proxy', '--help'], ['audit', 'verify', '--help'], ['pins', 'list', '--help'],\n"
            "             ['demo', '--help'], ['eval'],\n"
            "             ['explain', 'crm', '--tool', 'view_customer', '--role', 'agent']):\n"
            "    main(argv)\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'click')))\n")
    r = subprocess.run([PY, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_proxy_refuses_a_bad_approver_key_before_starting(tmp_path, policy_file):
    """--trust-approver with a file that is no Ed25519 public key, or no file: one line, exit 2,
    the server never started."""
    pytest.importorskip("cryptography")
    line = _refused(tmp_path, "--role", "agent", "--trust-approver", f"bob={policy_file}")
    assert line.startswith("error: --trust-approver bob: ")
    line = _refused(tmp_path, "--role", "agent", "--trust-approver", f"bob={tmp_path / 'nope.pem'}")
    assert line.startswith("error: --trust-approver bob: cannot read ")
