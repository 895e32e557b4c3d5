"""The SQLite example (src/callgate/examples/sqlite_policy.json, sqlite_cases.json): a
read-only analytics policy for the reference `mcp-server-sqlite` (PyPI). Its cases hold on the
native engine, the wasm module and `callgate test`; through the proxy, in front of the real
server on a temporary database, the analyst's reads come back with their rows, every denied
call is answered by the proxy and never reaches the server, and the database file is left
byte for byte as it was.

mcp-server-sqlite 2025.4.25 (the last release; the server was archived) is written against the
1.x SDK's decorator API (`Server.list_resources()`, ...), which mcp 2.x no longer has: it
installs beside mcp 2.x but stops at start-up. When the installed SDK is 2.x, the server runs
with a 1.x SDK installed for it alone (`pip install --target`, once per session; the proxy and
the tests keep mcp 2.x), and the tests skip with the reason when that cannot be installed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Callable

import orjson
import pytest

from callgate import Engine, examples
from support.backends import evaluate_case
from support.mcp_helpers import PY, Wire, tapped, text_of

POLICY = examples.path("sqlite_policy.json")
CASES = json.loads(examples.path("sqlite_cases.json").read_text(encoding="utf-8"))["cases"]

EVENTS = [(1, "2025-01-01", "view"), (2, "2025-01-01", "click"), (1, "2025-01-02", "view")]


def _seed(path: Path) -> Path:
    """An analytics database: events and daily_sessions (listed by the policy) and users (not)."""
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE events (user_id INTEGER, day TEXT, kind TEXT);
            CREATE TABLE daily_sessions (day TEXT, sessions INTEGER);
            CREATE TABLE users (id INTEGER, email TEXT);
            INSERT INTO daily_sessions VALUES ('2025-01-01', 10), ('2025-01-02', 7);
            INSERT INTO users VALUES (1, 'a@example.com'), (2, 'b@example.com');
        """)
        db.executemany("INSERT INTO events VALUES (?, ?, ?)", EVENTS)
    db.close()
    return path


def _rows(path: Path, table: str) -> list[tuple]:
    with sqlite3.connect(path) as db:
        rows = db.execute(f"SELECT * FROM {table}").fetchall()
    db.close()
    return rows


def _calls(received: bytes) -> list[dict]:
    out = []
    for line in received.splitlines():
        if line.strip():
            m = orjson.loads(line)
            if m.get("method") == "tools/call":
                out.append(m["params"])
    return out


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], list[str]]:
    """The command that runs mcp-server-sqlite on a database file, with an SDK it can run on."""
    pytest.importorskip("mcp_server_sqlite", reason="mcp-server-sqlite is not installed")
    from mcp.server.lowlevel import Server

    prelude = ""
    if not hasattr(Server, "list_resources"):   # mcp 2.x: give the server a 1.x SDK of its own
        target = tmp_path_factory.mktemp("sdk1")
        try:
            done = subprocess.run([PY, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                                   "--target", str(target), "mcp>=1.6,<2"], capture_output=True, timeout=300)
        except subprocess.TimeoutExpired:
            pytest.skip("mcp-server-sqlite needs the 1.x MCP SDK; installing it took over 300 s")
        if done.returncode != 0 or not (target / "mcp").is_dir():
            pytest.skip("mcp-server-sqlite needs the 1.x MCP SDK, which pip could not install: "
                        + done.stderr.decode(errors="replace")[-500:])
        prelude = f"import sys; sys.path.insert(0, {str(target)!r}); "
    code = prelude + "from mcp_server_sqlite import main; main()"
    return lambda db: [PY, "-c", code, "--db-path", str(db)]


def _proxy(server: list[str]) -> Wire:
    return Wire([PY, "-m", "callgate", "proxy", "--policy", str(POLICY), "--role", "analyst", "--", *server])


def test_sqlite_example_cases_hold_on_both_backends() -> None:
    """Every case of the SQLite example (decision and exact reason) holds on the native engine
    and on the wasm module."""
    policy = json.loads(POLICY.read_text(encoding="utf-8"))
    engines = [Engine.from_dict(policy)]
    wasm = pytest.importorskip("callgate.wasm")
    engines.append(wasm.WasmEngine.from_dict(policy))
    for engine in engines:
        for case in CASES:
            d = evaluate_case(engine, case)
            assert (d.decision, d.reason) == (case["expect"]["decision"], case["expect"]["reason"]), case["name"]


def test_sqlite_example_passes_callgate_test() -> None:
    """`callgate test` accepts the example's policy and cases file: every case passes, exit 0."""
    done = subprocess.run([PY, "-m", "callgate", "test", str(POLICY), str(examples.path("sqlite_cases.json"))],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(CASES)}/{len(CASES)} passed, 0 failed".encode() in done.stdout


def test_sqlite_example_cases_cover_what_a_reviewer_tries() -> None:
    """The cases pin the attempts the example exists for: stacked statements, a write through
    read_query, an unlisted table, ATTACH, PRAGMA, load_extension, the quoted spellings of a
    listed table, comments after `;`, write_query and create_table."""
    by_name = {c["name"]: c["expect"]["decision"] for c in CASES}
    queries = {c["args"].get("query"): c["expect"]["decision"] for c in CASES if c["tool"] == "read_query"}
    assert queries["SELECT 1; DROP TABLE events"] == "Deny"
    assert queries["INSERT INTO events(user_id, day, kind) VALUES (1, '2025-01-01', 'x')"] == "Deny"
    assert queries["SELECT * FROM users"] == "Deny"
    assert queries["ATTACH DATABASE '/tmp/other.db' AS other"] == "Deny"
    assert queries["PRAGMA writable_schema=1"] == "Deny"
    assert queries["SELECT load_extension('x')"] == "Deny"
    for spelling in ['"events"', "[events]", "`events`", '"Events"']:
        assert queries[f"SELECT * FROM {spelling}"] == "Allow", spelling
    assert queries["SELECT * FROM events; -- DROP TABLE events"] == "Allow"
    assert by_name["write_query is denied"] == by_name["create_table is denied"] == "Deny"


def test_sqlite_server_lists_only_what_the_analyst_may_call(tmp_path, sqlite_server) -> None:
    """tools/list through the proxy: the server offers its six tools; the analyst is shown the
    four the policy can allow (write_query and create_table, denied by rule, are left out)."""
    db = _seed(tmp_path / "analytics.db")
    server, _, sent = tapped(tmp_path, "sqlite", sqlite_server(db))
    with _proxy(server) as w:
        w.initialize()
        listed = w.call(1, "tools/list")
        assert [t["name"] for t in listed["result"]["tools"]] == [
            "read_query", "list_tables", "describe_table", "append_insight"]
        assert w.close() == 0
    offered = [orjson.loads(line) for line in sent.read_bytes().splitlines() if line.strip()]
    tools = [m["result"]["tools"] for m in offered if "tools" in m.get("result", {})]
    assert [t["name"] for t in tools[-1]] == ["read_query", "write_query", "create_table", "list_tables",
                                              "describe_table", "append_insight"]


def test_sqlite_server_receives_exactly_the_allowed_cases(tmp_path, sqlite_server) -> None:
    """Every analyst case of the example, sent through the proxy: a denied one is answered
    `Denied by policy: <the case's reason>` (isError) by the proxy; the server receives the
    allowed ones, in order, with their arguments unchanged, and nothing else; the database file
    is byte for byte unchanged and its tables are all there."""
    db = _seed(tmp_path / "analytics.db")
    before = db.read_bytes()
    server, received, _ = tapped(tmp_path, "sqlite", sqlite_server(db))
    cases = [c for c in CASES if c["role"] == "analyst"]
    with _proxy(server) as w:
        w.initialize()
        for k, case in enumerate(cases, start=1):
            reply = w.answer_to(k, "tools/call", {"name": case["tool"], "arguments": case["args"]})
            if case["expect"]["decision"] == "Deny":
                assert reply["result"]["isError"] is True, case["name"]
                assert text_of(reply) == "Denied by policy: " + case["expect"]["reason"], case["name"]
            else:
                assert not text_of(reply).startswith("Denied by policy"), (case["name"], reply)
        assert w.close() == 0
    allowed = [{"name": c["tool"], "arguments": c["args"]} for c in cases if c["expect"]["decision"] == "Allow"]
    assert _calls(received.read_bytes()) == allowed
    assert db.read_bytes() == before
    assert _rows(db, "events") == EVENTS
    assert len(_rows(db, "users")) == 2


def test_sqlite_server_answers_the_analysts_reads(tmp_path, sqlite_server) -> None:
    """Allowed reads come back from the real server with the database's rows: an aggregate, a
    join of the two listed tables, a query with a `-- DROP TABLE` comment after its `;`, a `;`
    inside a string, the table list and the schema of `events`. A read-only CTE passes the
    policy, and the server refuses it itself (it runs only text starting with SELECT)."""
    db = _seed(tmp_path / "analytics.db")
    server, _, _ = tapped(tmp_path, "sqlite", sqlite_server(db))
    calls = [
        ("read_query", {"query": "SELECT day, count(*) AS n FROM events GROUP BY day ORDER BY day"},
         "[{'day': '2025-01-01', 'n': 2}, {'day': '2025-01-02', 'n': 1}]"),
        ("read_query", {"query": "SELECT s.day, s.sessions, count(*) AS n FROM daily_sessions s "
                                 "JOIN events e ON e.day = s.day GROUP BY s.day ORDER BY s.day"},
         "[{'day': '2025-01-01', 'sessions': 10, 'n': 2}, {'day': '2025-01-02', 'sessions': 7, 'n': 1}]"),
        ("read_query", {"query": "SELECT count(*) AS n FROM events; -- DROP TABLE events"}, "[{'n': 3}]"),
        ("read_query", {"query": "SELECT * FROM events WHERE kind = 'a'';DROP TABLE events;--'"}, "[]"),
        ("list_tables", {}, "[{'name': 'events'}, {'name': 'daily_sessions'}, {'name': 'users'}]"),
        ("describe_table", {"table_name": "events"},
         "[{'cid': 0, 'name': 'user_id', 'type': 'INTEGER', 'notnull': 0, 'dflt_value': None, 'pk': 0}, "
         "{'cid': 1, 'name': 'day', 'type': 'TEXT', 'notnull': 0, 'dflt_value': None, 'pk': 0}, "
         "{'cid': 2, 'name': 'kind', 'type': 'TEXT', 'notnull': 0, 'dflt_value': None, 'pk': 0}]"),
        ("read_query", {"query": "WITH t AS (SELECT * FROM events) SELECT count(*) FROM t"},
         "Error: Only SELECT queries are allowed for read_query"),
    ]
    with _proxy(server) as w:
        w.initialize()
        for k, (tool, args, text) in enumerate(calls, start=1):
            reply = w.call(k, "tools/call", {"name": tool, "arguments": args})
            assert text_of(reply) == text, (tool, args, reply)
        assert w.close() == 0
    assert _rows(db, "events") == EVENTS


def test_sqlite_write_query_is_denied_though_the_server_would_run_it(tmp_path, sqlite_server) -> None:
    """Without the proxy, the server's write_query deletes rows (the control); through the
    proxy, the same write_query, a create_table and a `DROP TABLE` stacked behind a SELECT are
    denied by rule, never reach the server, and the table keeps its rows."""
    control = _seed(tmp_path / "control.db")
    with Wire(sqlite_server(control)) as direct:
        direct.initialize()
        done = direct.call(1, "tools/call", {"name": "write_query", "arguments": {"query": "DELETE FROM events"}})
        assert text_of(done) == "[{'affected_rows': 3}]"
        direct.close()
    assert _rows(control, "events") == []

    db = _seed(tmp_path / "analytics.db")
    server, received, _ = tapped(tmp_path, "sqlite", sqlite_server(db))
    denied = [
        ("write_query", {"query": "DELETE FROM events"},
         "write_query denied for role 'analyst': rule no-write-query forbids it"),
        ("create_table", {"query": "CREATE TABLE t (a INTEGER)"},
         "create_table denied for role 'analyst': rule no-create-table forbids it"),
        ("read_query", {"query": "SELECT 1; DROP TABLE events"},
         "read_query denied for role 'analyst': Arguments.query has 2 statements, more than 1 "
         "(rule read-analytics-tables)"),
    ]
    with _proxy(server) as w:
        w.initialize()
        for k, (tool, args, reason) in enumerate(denied, start=1):
            reply = w.call(k, "tools/call", {"name": tool, "arguments": args})
            assert reply["result"]["isError"] is True
            assert text_of(reply) == f"Denied by policy: {reason}"
        assert w.close() == 0
    assert _calls(received.read_bytes()) == []
    assert _rows(db, "events") == EVENTS


def test_sqlite_in_table_names_a_table() -> None:
    """Pins: `... WHERE (1, 'a@example.com') IN users` (SQLite's `expr IN table-name`, which
    asks whether a users row exists) names the unlisted table users, so the example's
    read_query rule denies it, naming users."""
    engine = Engine.from_dict(json.loads(POLICY.read_text(encoding="utf-8")))
    d = engine.evaluate("read_query", {"query": "SELECT count(*) FROM events WHERE (1, 'a@example.com') IN users"},
                        role="analyst")
    assert d.decision == "Deny"
    assert "names table users" in d.reason
