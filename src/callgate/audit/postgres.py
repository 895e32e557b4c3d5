"""PostgresSink (psycopg 3): one log for many hosts. Each writer keeps its own chain, named
by host and process, so writers never contend on a shared head; `pos` (an identity
column) keeps insertion order for verify. Table name is configurable (schema.table)."""

from __future__ import annotations

import re
from typing import Any, Optional, Sequence, Tuple

from ..extras import require
from .records import Record
from .sinks import Sink, process_chain_id
from .sqlite import rows as sink_rows

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def check_table(table: str) -> str:
    """Table names go into SQL text, so only plain (optionally schema-qualified) identifiers."""
    if not _NAME.match(table):
        raise ValueError(f"not a plain table name: {table!r}")
    return table


def schema_sql(table: str) -> str:
    """The CREATE TABLE and CREATE INDEX statements (IF NOT EXISTS) of a sink's table."""
    idx = table.replace(".", "_")
    return f"""
CREATE TABLE IF NOT EXISTS {table} (
    pos BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    chain TEXT NOT NULL, seq BIGINT NOT NULL, ts TEXT NOT NULL, kind TEXT NOT NULL,
    principal TEXT, tool TEXT, role TEXT, decision TEXT, rule INTEGER,
    record BYTEA NOT NULL, hash BYTEA NOT NULL);
CREATE INDEX IF NOT EXISTS {idx}_ts ON {table}(ts);
CREATE INDEX IF NOT EXISTS {idx}_principal ON {table}(principal, ts);
CREATE INDEX IF NOT EXISTS {idx}_tool ON {table}(tool, ts);
CREATE INDEX IF NOT EXISTS {idx}_decision ON {table}(decision, ts);
CREATE INDEX IF NOT EXISTS {idx}_chain ON {table}(chain, seq);
"""


class PostgresSink(Sink):
    """Records in a PostgreSQL table (created if missing)."""

    concurrent_writes = True
    writer_markers = True

    def __init__(self, dsn: str, table: str = "callgate_audit", **options: Any) -> None:
        require("psycopg", "the PostgreSQL audit sink", "audit")   # at construction: a one-line error at start
        super().__init__(**options)
        self.dsn = dsn
        self.table = check_table(table)
        self.default_chain = process_chain_id()
        self.conn: Any = None
        self._uncertain = False  # a failed write may have committed (a lost COMMIT reply)

    def identity(self) -> str:
        """The DSN and the table: what names this sink's spool."""
        return f"{self.dsn}|{self.table}"

    def open(self, chain: str) -> Optional[Tuple[int, bytes]]:
        """Connect, create the table if missing, and find `chain`'s last record."""
        import psycopg

        self.conn = psycopg.connect(self.dsn, autocommit=False)
        with self.conn.transaction():
            # concurrent CREATE ... IF NOT EXISTS can still collide in PostgreSQL: serialize it
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            if "." in self.table:
                self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.table.split('.')[0]}")
            self.conn.execute(schema_sql(self.table))
        if self.audit_options.fsync == "never":
            self.conn.execute("SET synchronous_commit = off")
            self.conn.commit()
        row = self.conn.execute(f"SELECT seq, hash FROM {self.table} WHERE chain=%s ORDER BY seq DESC LIMIT 1",
                                (chain,)).fetchone()
        self.conn.commit()
        return None if row is None else (row[0], bytes(row[1]))

    def write(self, records: Sequence[Record]) -> None:
        """Insert the records in one transaction (reconnecting after a failure; a retry after
        an uncertain commit skips the records already stored)."""
        import psycopg

        if self.conn is None or self.conn.closed:
            self.conn = psycopg.connect(self.dsn, autocommit=False)  # reconnect after a failure
        if self._uncertain:  # resending after a failure: skip what did get committed
            rows = self.conn.execute(f"SELECT seq FROM {self.table} WHERE chain=%s AND seq BETWEEN %s AND %s",
                                     (records[0].chain, records[0].seq, records[-1].seq)).fetchall()
            self.conn.commit()
            have = {row[0] for row in rows}
            records = [r for r in records if r.seq not in have]
            self._uncertain = False
            if not records:
                return
        insert = (f"INSERT INTO {self.table} (chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash) "
                  "VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)")
        try:
            with self.conn.transaction(), self.conn.cursor() as cur:
                cur.executemany(insert, sink_rows(records))
        except Exception:
            self._uncertain = True
            try:
                self.conn.rollback()
            except Exception:  # the connection itself is gone: reconnect on the next write
                self.conn.close()
            raise

    def close(self) -> None:
        """Close the connection."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None
