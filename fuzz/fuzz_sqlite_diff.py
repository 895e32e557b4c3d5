"""Differential fuzzing of the core's SQLite scanner (csrc/cg_sql.c) against SQLite itself:
atheris builds a text from pieces that reach the scanner's SQLite branches (the quotes SQLite
takes for names, `x IN t`, the operators that are functions, CTEs, RETURNING, upserts,
table-valued functions, comments, parameters) mixed with raw text; SQLite prepares it on a
fresh in-memory database whose authorizer records every action, and the run stops at the first
text where the core would under-report:

- SQLite runs the text as one statement (Python's sqlite3 refuses more) but the core counts
  another number;
- the core calls the statement a query that does not write (kind select, no write word), yet
  SQLite's authorizer sees an action other than a read, a select, a function call or a
  recursive CTE (an insert, update, delete, pragma, attach, schema change, ...);
- in a statement whose tables the check reads, a table SQLite reads or writes is not among the
  core's tables (by its last name part, in lower case: the core reports `main.t` or `t` as
  written);
- in a statement the core calls read-only, a function SQLite calls by name is not among the
  core's calls (SQLite's operator forms `x LIKE y`, `x GLOB y`, `x REGEXP y`, `x MATCH y`
  call like/glob/regexp/match, which the check reads as the operators they are).

The core may report more than SQLite, never less.

    LD_PRELOAD=.../ubsan_with_fuzzer.so python fuzz/fuzz_sqlite_diff.py fuzz/build/sqlprobe.so \
        -max_total_time=600 fuzz/corpus-sqlite-diff

(scripts/fuzz.sh builds the probe library from csrc/cg_sql.c and tests/core/sql_probe.c with
coverage, and preloads the libFuzzer that atheris ships to steer by it.)
"""

from __future__ import annotations

import sqlite3
import sys

import atheris

from sqlprobe import SQLITE, SqlProbe

PROBE = SqlProbe(sys.argv.pop(1))
TABLES_READ = {"select", "insert", "update", "delete", "explain"}   # docs/arguments.md
QUIET_ACTIONS = {sqlite3.SQLITE_READ, sqlite3.SQLITE_SELECT, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
TABLE_ACTIONS = {sqlite3.SQLITE_READ, sqlite3.SQLITE_INSERT, sqlite3.SQLITE_UPDATE, sqlite3.SQLITE_DELETE}
OPERATOR_FUNCTIONS = {"like", "glob", "regexp", "match"}
SCHEMA = ("CREATE TABLE t (a); CREATE TABLE u (a); CREATE INDEX i ON t (a); CREATE TABLE \"Q\" (a);"
          "ATTACH ':memory:' AS s; CREATE TABLE s.t (a);")
# statements with slots ({...}), so that most texts are SQL SQLite runs; a slot takes one of its
# choices, and now and then a piece from PIECES or raw text lands anywhere
TEMPLATES = [
    "{explain}SELECT {col} FROM {table}{alias}{join}{where}{tail}",
    "{explain}SELECT {col}{where}",
    "{explain}WITH {cte} SELECT {col} FROM {from_cte}{where}",
    "{explain}{insert} {table} {values}{upsert}{returning}",
    "{explain}WITH {cte} {insert} {table} SELECT a FROM {from_cte}",
    "{explain}UPDATE{or} {table} SET a = {expr}{where}{returning}",
    "{explain}DELETE FROM {table}{where}{returning}",
    "{explain}SELECT {col} FROM {table} WHERE {expr} {in} {table}",
    "{explain}SELECT {col} FROM {tvf}",
    "{explain}{other}",
]
SLOTS = {
    "explain": ["", "", "", "EXPLAIN ", "EXPLAIN QUERY PLAN ", "explain "],
    "col": ["*", "a", "t.a", "1", "count(*)", "lower(a)", "a LIKE 'x'", "like('x', a)", "glob('x', a)",
            "a GLOB 'x'", "(SELECT a FROM {table})", "EXISTS (SELECT 1 FROM {table})", "a IN {table}",
            "printf('%d', a)", "iif(a, 1, 2)", "typeof(a)", "'$.a' -> 'b'", "json_extract('{{}}', '$')",
            "row_number() OVER (PARTITION BY a)", "max(a) FILTER (WHERE 1)", "CAST(a AS int)", "a || 'x'",
            "CASE WHEN a THEN 1 END", "a COLLATE nocase", "a BETWEEN 1 AND 2", "a IS NOT NULL", "?", ":p",
            "@p", "$p", "x'00'", "'a;b'", "1 /* ; */", "[a]", "`a`", "\"a\"", "a AS update", "a copy"],
    "table": ["t", "u", "s.t", "main.t", "temp.t", "[t]", "`u`", "\"t\"", "\"Q\"", "T", "main.[u]",
              "sqlite_master", "sqlite_schema", "\"s\".\"t\"", "t INDEXED BY i", "t NOT INDEXED"],
    "alias": ["", "", " x", " AS x", " AS \"y\""],
    "join": ["", "", " JOIN {table} ON 1", " LEFT JOIN {table} USING (a)", ", {table}", " NATURAL JOIN {table}",
             " CROSS JOIN {tvf}", " JOIN (SELECT a FROM {table}) q"],
    "where": ["", "", " WHERE a = 1", " WHERE a IN (SELECT a FROM {table})", " WHERE a {in} {table}",
              " WHERE a IN (1, 2)", " WHERE a REGEXP 'x'", " WHERE a MATCH 'x'", " WHERE {expr}"],
    "tail": ["", "", " GROUP BY a", " ORDER BY a DESC LIMIT 1", " UNION SELECT a FROM {table}",
             " UNION ALL VALUES (1)", " LIMIT 1 OFFSET 1"],
    "expr": ["1", "a", "a + 1", "lower(a)", "(SELECT max(a) FROM {table})", "coalesce(a, 0)", "random()",
             "changes()", "last_insert_rowid()", "abs(-1)", "a {in} {table}"],
    "in": ["IN", "NOT IN", "in", "IN", "IN"],
    "cte": ["w AS (SELECT a FROM {table})", "w(a) AS (VALUES (1))", "RECURSIVE w(a) AS (SELECT 1 UNION ALL "
            "SELECT a + 1 FROM w LIMIT 3)", "w AS MATERIALIZED (SELECT 1 AS a)", "w AS (SELECT a FROM {table}), "
            "v AS (SELECT a FROM w)"],
    "from_cte": ["w", "w JOIN {table} USING (a)", "w, {table}"],
    "insert": ["INSERT INTO", "INSERT OR IGNORE INTO", "REPLACE INTO", "INSERT OR REPLACE INTO", "insert into"],
    "values": ["VALUES (1)", "(a) VALUES (1)", "DEFAULT VALUES", "SELECT a FROM {table}", "VALUES ({expr})"],
    "upsert": ["", "", " ON CONFLICT DO NOTHING", " ON CONFLICT DO UPDATE SET a = 1"],
    "returning": ["", "", " RETURNING *", " RETURNING a, lower(a)"],
    "or": ["", "", " OR IGNORE", " OR REPLACE"],
    "tvf": ["json_each('[1]')", "pragma_table_info('t')", "json_tree('{{}}')", "generate_series(1, 3)",
            "main.json_each('[1]')"],
    "other": ["CREATE TABLE z (a)", "DROP TABLE u", "PRAGMA table_info(t)", "PRAGMA user_version = 1",
              "ATTACH ':memory:' AS y", "DETACH s", "BEGIN", "COMMIT", "VALUES (1)", "ANALYZE", "VACUUM",
              "CREATE INDEX j ON u (a)", "ALTER TABLE u ADD COLUMN c", "REINDEX", "SAVEPOINT p",
              "CREATE TEMP VIEW v2 AS SELECT * FROM {table}", "DELETE FROM {table} WHERE a IN {table}"],
}
PIECES = [" ", ";", "(", ")", ", ", "-- c\n", "/* c */", " IN ", " AS ", "t", "u", "update", "delete", "copy",
          "in", "[in]", "\"from\"", " LIKE ", " REGEXP ", "regexp(", "WITH w AS (SELECT 1) ", "EXPLAIN ",
          " RETURNING *", "'", "\"", "[", "`", ".", "main.", "x", "?"]


def sqlite_actions(text: str) -> tuple[str, list[tuple[int, str | None, str | None]]]:
    """("ran" or "refused", the authorizer's actions while preparing)."""
    db = sqlite3.connect(":memory:")
    try:
        db.executescript(SCHEMA)
        seen: list[tuple[int, str | None, str | None]] = []

        def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None,
                      _view: str | None) -> int:
            seen.append((action, arg1, arg2))
            # a mutated ATTACH would create a file: refused, so never run (such a text is not a
            # query the core could call read-only, and names no table it reads)
            return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK
        db.set_authorizer(authorize)
        try:
            db.execute(text)
        except (sqlite3.Error, ValueError, OverflowError):
            return "refused", seen
        return "ran", seen
    finally:
        db.close()


def _fill(fdp: atheris.FuzzedDataProvider, text: str, depth: int = 0) -> str:
    while "{" in text and depth < 40:
        start = text.index("{")
        if text.startswith("{{", start):   # a literal brace (JSON)
            head, rest = text[:start + 2], _fill(fdp, text[start + 2:], depth + 1)
            return head + rest
        end = text.index("}", start)
        choice = fdp.PickValueInList(SLOTS[text[start + 1:end]])
        text = text[:start] + choice + text[end + 1:]
        depth += 1
    return text


def test_one(data: bytes) -> None:
    """One text: SQLite does not do more than the core reports (module docstring)."""
    fdp = atheris.FuzzedDataProvider(data)
    text = _fill(fdp, fdp.PickValueInList(TEMPLATES)).replace("{{", "{").replace("}}", "}")
    for _ in range(fdp.ConsumeIntInRange(0, 3)):   # now and then, something lands anywhere
        at = fdp.ConsumeIntInRange(0, len(text))
        extra = (fdp.PickValueInList(PIECES) if fdp.ConsumeBool()
                 else fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 4)))
        text = text[:at] + extra.replace("\t", " ") + text[at:]
    # a NUL ends the text for SQLite's C interface: it sees less than the core reads
    text = text.replace("\x00", " ")
    if "vacuum" in text.lower():
        return   # VACUUM INTO 'name' writes a file of that name: not run here (DDL to the check)
    status, count, events = PROBE.scan(text, SQLITE)
    if status != 0:
        return   # not read with certainty: U, which never grants
    outcome, actions = sqlite_actions(text)
    if outcome != "ran":   # (Python's sqlite3 refuses a text of several statements, empty ones too)
        return   # SQLite refuses it: nothing runs
    if not actions:
        return   # comments only, or a statement with nothing to authorize (BEGIN, ...)
    assert count == 1, ("SQLite ran one statement", text, count, events)
    kinds = [e.split(":", 1)[1] for e in events if e.startswith("S")]
    quiet = kinds == ["select"] and not any(e[0] in "WL" for e in events)
    calls = {e.split(":", 1)[1].rsplit(".", 1)[-1].lower() for e in events if e.startswith("F")}

    def internal(a: tuple[int, str | None, str | None]) -> bool:
        """SQLite's own work: on its schema tables when the text names none (table-valued
        functions touch them), a pragma run by its table-valued function pragma_NAME (a call
        the core reports, decided by the function list)."""
        schema_table = bool(a[1]) and (a[1] or "").lower().startswith("sqlite_")
        if schema_table and (a[1] or "").lower() not in text.lower():
            return True
        # preparing a table-valued function, SQLite reads its schema table, and authorizes an
        # update of its columns it never runs (a text that updates it has the word UPDATE, never
        # quiet): with a call, the schema table's actions are SQLite's own
        if schema_table and calls:
            return True
        return a[0] == sqlite3.SQLITE_PRAGMA and f"pragma_{(a[1] or '').lower()}" in calls
    actions = [a for a in actions if not internal(a)]
    if quiet:
        loud = [a for a in actions if a[0] not in QUIET_ACTIONS]
        assert not loud, ("SQLite writes what the core calls read-only", text, loud, events)
    if set(kinds) <= TABLES_READ:
        tables = {e.split(":", 1)[1].rsplit(".", 1)[-1].lower() for e in events if e.startswith("T")}
        ctes = {"w", "v"}   # the templates' WITH queries (no table has their names)
        touched = {a[1].lower() for a in actions if a[0] in TABLE_ACTIONS and a[1]}
        missing = touched - tables - ctes - calls   # a table-valued function reads itself
        assert not missing, ("SQLite reads a table the core does not report", text, missing, events)
    if quiet:
        named = {a[2].lower() for a in actions if a[0] == sqlite3.SQLITE_FUNCTION and a[2]}
        missing_calls = {f for f in named - calls - OPERATOR_FUNCTIONS if f.replace("_", "").isalnum()}
        assert not missing_calls, ("SQLite calls a function the core does not report", text, missing_calls,
                                   events)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
