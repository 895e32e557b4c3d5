"""Differential fuzzing of the core's PostgreSQL scanner (csrc/cg_sql.c) against PostgreSQL's
own parser (pglast): atheris builds statements from pieces that reach the scanner's branches
(keywords, quotes and dollar quotes, comments, CTEs, subqueries, locking clauses, functions,
qualified and quoted names, semicolons) mixed with raw text, and the run stops at the first
text that both read where the core would under-report:

- the statement count differs;
- the core calls every statement a query that does not write (kind select, no write and no
  lock event), yet PostgreSQL parses a statement that is not a plain SELECT, or has INTO, a
  locking clause or a data-modifying WITH query;
- in statements whose tables the check reads (queries and DML), a table PostgreSQL reads
  (outside WITH names) is not among the core's tables; in a text the core calls read-only, a
  function PostgreSQL calls is not among the core's functions (either would let tables_in or
  read_only pass what they should refuse).

The core may report more than PostgreSQL (it errs towards "not read-only"), never less.

    LD_PRELOAD=.../ubsan_with_fuzzer.so python fuzz/fuzz_sql_diff.py fuzz/build/sqlprobe.so -max_total_time=600 fuzz/corpus-sql-diff

(scripts/fuzz.sh builds the probe library from csrc/cg_sql.c and tests/core/sql_probe.c with
coverage, and preloads the libFuzzer that atheris ships, in atheris.path(), to steer by it.)
"""

from __future__ import annotations

import sys

import atheris

import pglast
from pglast import ast
from pglast.visitors import Visitor

from sqlprobe import POSTGRES, SqlProbe

PROBE = SqlProbe(sys.argv.pop(1))
TABLES_READ = {"select", "insert", "update", "delete", "merge", "explain"}   # docs/arguments.md
PIECES = ["SELECT ", "select ", "WITH w AS (", ")", "(", " ", ", ", "; ", ";", "FROM ", " JOIN ", " ON true ",
          "WHERE ", " IN ", "(SELECT 1 FROM ", " UNION ", "TABLE ", "VALUES (1)", "INSERT INTO t VALUES (1)",
          "DELETE FROM t RETURNING *", "UPDATE t SET a = 1", " FOR UPDATE", " FOR SHARE", " INTO ", "x", "t",
          "a.b", "\"Q\"", "\"a\"\"b\"", "s.\"T\"", "lower(", "now()", "pg_catalog.lower(", "nextval('s')",
          "count(*)", "'str'", "E'\\''", "'it''s'", "$$;$$", "$a$ ; $a$", "/* c */", "/* /* n */ */",
          "-- c\n", "\n", "1", "*", " AS ", " AS v(x)", "EXPLAIN ", "EXPLAIN ANALYZE ", "COPY t TO STDOUT",
          "SET x = 1", "BEGIN", "LATERAL ", "generate_series(1, 3)", "CAST(x AS int)", "x::text",
          "ORDER BY 1", "LIMIT 1", "GROUP BY x", "DISTINCT ", "ROW(1)", "ARRAY[1]", "U&\"d\\0061t\"",
          "B'01'", "X'ff'", "$1", "x->'k'", "EXISTS (", "NOT ", "CASE WHEN true THEN 1 END",
          "EXPLAIN (ANALYZE) ", "EXPLAIN (ANALYZE, FORMAT JSON) ", "MERGE INTO s.u USING t ON true ",
          "WHEN MATCHED THEN DELETE", "UPDATE s.u SET a = 1", "INSERT INTO s.u SELECT 1", "grouping(x)",
          "GROUPING SETS ((x), ())", "copy", "s.copy"]


class _Reads(Visitor):  # type: ignore[misc]
    """What PostgreSQL's parse tree reads: tables (less WITH names) and functions."""

    def __init__(self) -> None:
        self.tables: set[str] = set()
        self.ctes: set[str] = set()
        self.functions: set[str] = set()
        self.writes = False

    def visit_RangeVar(self, ancestors, node) -> None:
        self.tables.add(".".join(p for p in (node.catalogname, node.schemaname, node.relname) if p))

    def visit_CommonTableExpr(self, ancestors, node) -> None:
        self.ctes.add(node.ctename)
        if not isinstance(node.ctequery, ast.SelectStmt):
            self.writes = True

    def visit_FuncCall(self, ancestors, node) -> None:
        self.functions.add(".".join(part.sval for part in node.funcname))

    def visit_SelectStmt(self, ancestors, node) -> None:
        if node.intoClause is not None or node.lockingClause:
            self.writes = True


def test_one(data: bytes) -> None:
    """One text: PostgreSQL does not read more than the core reports (module docstring)."""
    fdp = atheris.FuzzedDataProvider(data)
    parts = []
    for _ in range(fdp.ConsumeIntInRange(1, 14)):
        if fdp.ConsumeIntInRange(0, 11) == 0:
            parts.append(fdp.ConsumeUnicodeNoSurrogates(fdp.ConsumeIntInRange(0, 5)).replace("\t", " "))
        else:
            parts.append(fdp.PickValueInList(PIECES))
    # a NUL ends the text for PostgreSQL's C-string interfaces (pglast included): the server
    # sees less than the core reads, never more, so such texts are not compared
    text = "".join(parts).replace("\x00", " ")
    status, count, events = PROBE.scan(text, POSTGRES)
    if status != 0:
        return   # not read with certainty: U, which never grants
    try:
        statements = pglast.parse_sql(text)
    except Exception:   # not SQL to PostgreSQL: nothing runs
        return
    assert count == len(statements), (text, count, len(statements))
    kinds = [e.split(":", 1)[1] for e in events if e.startswith("S")]
    quiet = all(k == "select" for k in kinds) and not any(e[0] in "WL" for e in events)
    tables = {e.split(":", 1)[1] for e in events if e.startswith("T")}
    functions = {e.split(":", 1)[1] for e in events if e.startswith("F")}
    reads = _Reads()
    for s in statements:
        reads(s.stmt)
    if quiet:
        assert all(isinstance(s.stmt, ast.SelectStmt) for s in statements) and not reads.writes, (text, events)
    if set(kinds) <= TABLES_READ:   # any other statement makes tables_in and schemas_in U
        missing_tables = reads.tables - reads.ctes - tables
        assert not missing_tables, (text, missing_tables, events)
    if quiet:   # otherwise read_only fails anyway
        missing = {f for f in reads.functions if f not in functions and f.rsplit(".", 1)[-1] not in functions}
        assert not missing, (text, missing, events)


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one)
    atheris.Fuzz()
