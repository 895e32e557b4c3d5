"""SqliteSink: the embedded default. WAL mode, one transaction per batch, indexed by time,
principal, tool and decision (what `callgate audit query` filters on).

The indexed columns are copies of fields of the hashed record, for queries; verify checks
that they still agree with the record, so editing a column is detected like editing the
record. `pos` is the insertion order, which verify reads in."""

from __future__ import annotations

import os
import sqlite3
from typing import Any, List, Optional, Tuple, Union

import orjson

from .records import Batch, Record, event_columns
from .sinks import FileLock, Sink

TABLE = "audit_events"
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    pos INTEGER PRIMARY KEY,
    chain TEXT NOT NULL,
    seq INTEGER NOT NULL,
    ts TEXT NOT NULL,
    kind TEXT NOT NULL,
    principal TEXT,
    tool TEXT,
    role TEXT,
    decision TEXT,
    rule INTEGER,
    record BLOB NOT NULL,
    hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS {TABLE}_ts ON {TABLE}(ts);
CREATE INDEX IF NOT EXISTS {TABLE}_principal ON {TABLE}(principal, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_tool ON {TABLE}(tool, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_decision ON {TABLE}(decision, ts);
CREATE INDEX IF NOT EXISTS {TABLE}_chain ON {TABLE}(chain, seq);
"""
INSERT = (f"INSERT INTO {TABLE} (chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash) "
          "VALUES (?,?,?,?,?,?,?,?,?,?,?)")
# A whole batch in one statement: SQLite reads the rows from one JSON array (chain, seq,
# the indexed columns and the record's length) and cuts records and hashes out of two
# blobs. One step for the batch means one release of the GIL, where executemany releases
# and re-takes it for every row (and waits for it behind the deciding threads each time).
# (json_each, json_extract and window functions: SQLite 3.25 with JSON1; an older SQLite,
# found at open, gets executemany.)
_COL = [f"json_extract(value, '$[{i}]')" for i in range(10)]
INSERT_BATCH = (f"INSERT INTO {TABLE} (chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash) "
                f"SELECT {', '.join(_COL[:9])}, substr(?1, ends - n + 1, n), substr(?2, 32 * key + 1, 32) "
                f"FROM (SELECT key, value, {_COL[9]} AS n, sum({_COL[9]}) OVER (ORDER BY key) AS ends "
                "FROM json_each(?3)) ORDER BY key")
COLUMNS = ("ts", "kind", "principal", "tool", "role", "decision", "rule")
FIELDS = ("timestamp", "kind", "principal", "tool", "role", "decision", "rule")  # the record's names for COLUMNS


def row_values(r: Record) -> tuple:
    return (r.chain, r.seq, *event_columns(r.event), r.body, r.hash)


def rows(records: Union[Batch, List[Record]]) -> List[tuple]:
    """The rows of `records` (a Batch gives them without a Record per event)."""
    if type(records) is Batch:
        return records.rows()
    return [row_values(r) for r in records]


def insert(db: sqlite3.Connection, batch: List[tuple], in_one: bool = True) -> None:
    """Insert rows (row_values' shape) in order: in one statement (in_one) where SQLite's
    JSON can carry every value (it cuts a string at an escaped NUL: such a batch goes row
    by row, as everything does on an SQLite without JSON or window functions)."""
    meta = orjson.dumps([(*r[:9], len(r[9])) for r in batch]) if in_one else None
    if meta is None or b"\\u0000" in meta:
        db.executemany(INSERT, batch)
    else:  # the JSON as text: SQLite reads a blob argument as its binary JSON format
        db.execute(INSERT_BATCH, (b"".join([r[9] for r in batch]), b"".join([r[10] for r in batch]), meta.decode()))


def batch_insert_works(db: sqlite3.Connection) -> bool:
    """Whether this SQLite can prepare INSERT_BATCH (JSON1 and window functions)."""
    try:
        db.execute("EXPLAIN " + INSERT_BATCH, (b"", b"", "[]")).fetchall()
    except sqlite3.OperationalError:
        return False
    return True


class SqliteSink(Sink):
    """Records in a SQLite database file (created if missing)."""

    concurrent_writes = True

    def __init__(self, path: str | os.PathLike, **options: Any) -> None:
        super().__init__(**options)
        self.path = str(path)
        self.db: Optional[sqlite3.Connection] = None
        self.in_one = True  # a batch in one statement (see insert)
        self._lock: Optional[FileLock] = None

    def spool_path(self) -> str:
        return self.audit_options.spool_path or self.path + ".spool.jsonl"

    def open(self, chain: str) -> Optional[Tuple[int, bytes]]:
        # one writer per chain: a second one would fork it (other chains: use chain=...)
        if self._lock is None:
            self._lock = FileLock(f"{self.path}.{chain.replace('/', '_')}.lock")
        # opened on the writer thread; written from the courier too (never at the same time)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        # 16 KiB pages (for a new file; an existing one keeps its own): records are
        # ~1 KB, and larger pages make the batch inserts a third cheaper
        db.execute("PRAGMA page_size=16384")
        db.execute("PRAGMA journal_mode=WAL")
        # batch/always: the commit is durable when it returns; never: left to the OS
        db.execute("PRAGMA synchronous=" + ("OFF" if self.audit_options.fsync == "never" else "FULL"))
        db.executescript(SCHEMA)
        self.in_one = batch_insert_works(db)
        self.db = db
        row = db.execute(f"SELECT seq, hash FROM {TABLE} WHERE chain=? ORDER BY seq DESC LIMIT 1", (chain,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def write(self, records: List[Record]) -> None:
        db = self.db
        assert db is not None
        db.execute("BEGIN IMMEDIATE")
        try:
            insert(db, rows(records), self.in_one)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
