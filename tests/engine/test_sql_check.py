"""SqlCheck through the engine (docs/arguments.md): the policy language refuses what the
check cannot compare, the native engine and the wasm module give the same decision and exact
reason for each bypass in the corpus, JSON escapes cannot hide a statement, a megabyte
statement is decided in time linear in its size, and `callgate explain` shows the scan and
agrees with the engine. (The scanner itself, and the verdicts against pglast, SQLite and
PostgreSQL: tests/core/test_sql_parser.py.)"""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest

import callgate
from callgate import PolicyError
from callgate.compiler import compile_policy
from callgate.explain import explain_request

Q = {"source": "Arguments", "field": "q"}
PG_RO = {"SqlCheck": {**Q, "dialect": "postgres", "read_only": True, "max_statements": 1,
                      "schemas_in": ["analytics"], "functions_allowed": ["analytics.safe_fn"]}}
LITE_TABLES = {"SqlCheck": {**Q, "dialect": "sqlite", "read_only": True, "tables_in": ["events", "Users"]}}


def _policy(cond: dict[str, Any], effect: str = "allow") -> dict[str, Any]:
    return {"version": "sql-test", "default_action": "Deny", "tools": ["t"], "roles": ["r"],
            "rules": [{"tool_name": "t", "roles": ["r"], "effect": effect, "condition": cond}]}


def _engines(cond: dict[str, Any]) -> list[Any]:
    out = [callgate.Engine.from_dict(_policy(cond))]
    wasm = pytest.importorskip("callgate.wasm")
    out.append(wasm.WasmEngine.from_dict(_policy(cond)))
    return out


@pytest.mark.parametrize("cond,message", [
    ({"SqlCheck": {**Q, "dialect": "mysql"}}, "dialect"),
    ({"SqlCheck": {**Q}}, "dialect"),
    ({"SqlCheck": {**Q, "dialect": "postgres", "max_statements": 0}}, "max_statements"),
    ({"SqlCheck": {**Q, "dialect": "postgres", "schemas_in": ["a.b"]}}, "at most 1"),
    ({"SqlCheck": {**Q, "dialect": "postgres", "tables_in": ["a..b"]}}, "at most 3"),
    ({"SqlCheck": {**Q, "dialect": "postgres", "tables_in": ["w.x.y.z"]}}, "at most 3"),
    ({"SqlCheck": {**Q, "dialect": "postgres", "read_only": "yes"}}, "read_only"),
])
def test_policy_refuses_what_the_check_cannot_compare(cond: dict[str, Any], message: str) -> None:
    """A dialect the scanner does not know, a malformed name or count is a PolicyError."""
    with pytest.raises(PolicyError) as exc:
        compile_policy(_policy(cond))
    assert message in str(exc.value)


H = "t allowed for role 'r': rule 1 condition passed"
D = "t denied for role 'r': Arguments.q"


@pytest.mark.parametrize("cond,sql,reason", [
    (PG_RO, "SELECT count(*) FROM analytics.events WHERE day > $1", H),
    (PG_RO, "SELECT analytics.safe_fn(a) FROM analytics.t", H),
    (PG_RO, "SELECT 1; DROP TABLE analytics.t", f"{D} has 2 statements, more than 1 (rule 1)"),
    (PG_RO, "DELETE FROM analytics.t", f"{D} statement 1 of 1 is delete, not read-only (rule 1)"),
    (PG_RO, "WITH d AS (DELETE FROM analytics.t RETURNING *) SELECT * FROM d",
     f"{D} statement 1 of 1 contains delete, not read-only (rule 1)"),
    (PG_RO, "SELECT * INTO analytics.c FROM analytics.t", f"{D} statement 1 of 1 contains into, not read-only (rule 1)"),
    (PG_RO, "SELECT * FROM analytics.t FOR UPDATE",
     f"{D} statement 1 of 1 locks rows (FOR UPDATE / SHARE), not read-only (rule 1)"),
    (PG_RO, "COPY analytics.t TO PROGRAM 'sh'", f"{D} statement 1 of 1 is copy, not read-only (rule 1)"),
    (PG_RO, "EXPLAIN ANALYZE UPDATE analytics.t SET a = 1",
     f"{D} statement 1 of 1 contains update, not read-only (rule 1)"),
    (PG_RO, "SELECT pg_read_file('/etc/passwd') FROM analytics.t",
     f"{D} statement 1 of 1 calls function pg_read_file, not known to be read-only (rule 1)"),
    (PG_RO, "SELECT * FROM public.users", f'{D} statement 1 of 1 names table public.users, whose schema public '
                                          'is not in ["analytics"] (rule 1)'),
    (PG_RO, "SELECT * FROM users", f'{D} = "SELECT * FROM users" is not SQL the check can read (rule 1)'),
    (PG_RO, "SELECT '\\'; DELETE FROM analytics.t; --'",
     f'{D} = "SELECT \'\\\\\'; DELETE FROM analytics.t; --\'" is not SQL the check can read (rule 1)'),
    (PG_RO, "SELECT 1 /* ", f'{D} = "SELECT 1 /* " is not SQL the check can read (rule 1)'),
    (PG_RO, 7, f"{D} = 7 is not a string (rule 1)"),
    (LITE_TABLES, "select * from EVENTS e join users u on e.u = u.id", H),
    (LITE_TABLES, "select * from events, [secret]",
     f'{D} statement 1 of 1 names table secret, not in ["events", "Users"] (rule 1)'),
    (LITE_TABLES, "PRAGMA writable_schema = 1", f"{D} statement 1 of 1 is set, not read-only (rule 1)"),
    (LITE_TABLES, "select load_extension('x') from events",
     f"{D} statement 1 of 1 calls function load_extension, not known to be read-only (rule 1)"),
])
def test_decisions_and_reasons(cond: dict[str, Any], sql: Any, reason: str) -> None:
    """The native engine and the wasm module give this exact reason."""
    for engine in _engines(cond):
        assert engine.evaluate("t", {"q": sql}, role="r").reason == reason


def test_a_deny_applies_to_what_cannot_be_read() -> None:
    """A deny over SqlCheck applies when the text cannot be scanned (U denies)."""
    cond = {"SqlCheck": {**Q, "dialect": "postgres", "tables_in": ["audit.log"]}}
    engine = callgate.Engine.from_dict(_policy({"Not": cond}, "deny") | {"default_action": "Allow"})
    assert engine.evaluate("t", {"q": "SELECT * FROM audit.log"}, role="r").decision == "Allow"
    assert engine.evaluate("t", {"q": "SELECT * FROM audit.secret"}, role="r").decision == "Deny"
    assert engine.evaluate("t", {"q": "SELECT 'unterminated"}, role="r").decision == "Deny"


def test_escaped_text_is_decoded_and_bounded() -> None:
    """Statements in JSON with escapes (newlines, quotes, \\u003b for ';') are decoded before the
    scan; an escaped text over 64 KB is U, an unescaped one of any size is scanned."""
    for engine in _engines(PG_RO):
        raw = b'{"q":"SELECT 1\\u003b DELETE FROM analytics.t"}'
        assert "has 2 statements" in engine.evaluate_json("t", raw, b'{"role":"r"}').reason
        raw = b'{"q":"SELECT\\n  a\\nFROM analytics.t\\nWHERE b = \'x\'"}'
        assert engine.evaluate_json("t", raw, b'{"role":"r"}').decision == "Allow"
        big = "SELECT 1\n" + " " * 70000
        assert engine.evaluate("t", {"q": big}, role="r").reason.endswith("is not SQL the check can read (rule 1)")
        assert engine.evaluate("t", {"q": big.replace("\n", " ")}, role="r").decision == "Allow"


def test_a_megabyte_statement_is_linear() -> None:
    """A 1 MB read-only statement is decided, in time that scales linearly from 64 KB (16x the
    text, at most 40x the time) and far from anything quadratic (under 0.25 s on a loaded
    machine; bench/bench_arguments.py measures the core alone)."""
    engine = callgate.Engine.from_dict(_policy(PG_RO))
    unit = "SELECT a, lower(b), count(*) FROM analytics.events e JOIN analytics.u ON e.k = u.k WHERE x = 'y' "
    small = unit + "UNION ALL " + "UNION ALL ".join([unit] * 600)
    big = unit + "UNION ALL " + "UNION ALL ".join([unit] * 9800)
    assert len(big) > 1 << 20
    assert engine.evaluate("t", {"q": big}, role="r").decision == "Allow"

    def best(sql: str) -> float:
        times = []
        for _ in range(5):
            start = time.perf_counter()
            engine.evaluate("t", {"q": sql}, role="r")
            times.append(time.perf_counter() - start)
        return min(times)
    t_small, t_big = best(small), best(big)
    assert t_big < 0.25, t_big
    assert t_big < 40 * t_small, (t_small, t_big)   # 16x the text: linear, with slack


def test_explain_shows_the_scan() -> None:
    """`callgate explain` lists the statements' kinds and agrees with the engine."""
    compiled = compile_policy(_policy(PG_RO))
    engine = callgate.Engine.from_dict(_policy(PG_RO))
    ex = explain_request(compiled, engine, "t", "r", {"q": "SELECT 1; DELETE FROM analytics.t"})
    assert ex.agrees
    text = orjson.dumps(ex.to_dict()).decode()
    assert "2 statements: select, delete" in text
    ex = explain_request(compiled, engine, "t", "r", {"q": "SELECT nextval('s')"})
    assert ex.agrees and "statement 1 contains nextval" in orjson.dumps(ex.to_dict()).decode()
