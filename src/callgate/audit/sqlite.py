"""SqliteSink: the embedded default. WAL mode, one transaction per batch, indexed by time,
principal, tool and decision (what `callgate audit query` filters on).

The indexed columns are copies of fields of the hashed record, for queries; verify checks
that they still agree with the record, so editing a column is detected like editing the
record. `pos` is the insertion order, which verify reads in."""

from __future__ import annotations

import functools
import os
import sqlite3
from typing import Any, List, Optional, Sequence, Tuple, Union

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
_INSERTED = ("chain", "seq", "ts", "kind", "principal", "tool", "role", "decision", "rule", "record", "hash")
ROW_WIDTH = len(_INSERTED)  # values a row (row_values' shape)
_INTO = f"INSERT INTO {TABLE} ({', '.join(_INSERTED)}) "
_ROW = "(" + ",".join("?" * ROW_WIDTH) + ")"
# A batch goes in as one INSERT of all its rows, bound as they are, with no BEGIN or COMMIT
# around it (a statement is its own transaction). SQLite runs a statement outside the GIL,
# and taking the GIL back after it may wait for the deciding threads (up to the 5 ms switch
# interval): once per batch, where executemany waits for every row, and BEGIN and COMMIT
# would add two more waits. Measured end to end, this form cut the CPU time per audited
# decision by a quarter against the json_each form it replaced (which parsed each row's JSON
# ten times), and one statement per batch beat a transaction of 1,024-row statements.
# The connection caches prepared statements (~1.2 KB a row), so their sizes are powers of
# two, padded with rows of NULLs that the WHERE drops: 13 statements of up to 4,096 rows
# (~15 MB once all are used) serve every batch size. SQLite reads the VALUES rows in order
# (a co-routine), so `pos` follows `seq`; verify would report any other order.
# A row takes 11 variables: 4,096 rows need an SQLite that binds 45,056 (Debian's allows
# 250,000). With the default limit since 3.32 (32,766) a statement takes 2,048 rows, and a
# full batch is two statements in one transaction; before 3.32 (999), 64 rows.
MAX_ROWS_PER_STATEMENT = 4096


@functools.lru_cache(maxsize=None)
def values_insert(rows: int) -> str:
    """The INSERT statement of `rows` rows (those whose chain is NULL are padding)."""
    return f"{_INTO} SELECT * FROM (VALUES {','.join([_ROW] * rows)}) WHERE column1 IS NOT NULL"


@functools.lru_cache(maxsize=1)
def rows_per_statement() -> int:
    """The most rows, a power of two up to MAX_ROWS_PER_STATEMENT, that one INSERT can bind
    with this SQLite (11 variables a row: its limit is 32,766 variables since 3.32, 999
    before). Probed once, on a scratch database (so the probe stays out of a sink's cache),
    with a statement of padding only."""
    probe = sqlite3.connect(":memory:")
    try:
        probe.execute(SCHEMA.split(";")[0])
        rows = MAX_ROWS_PER_STATEMENT
        while rows > 1:
            try:
                probe.execute(values_insert(rows), [None] * (ROW_WIDTH * rows))
                return rows
            except sqlite3.OperationalError:  # too many SQL variables
                rows //= 2
        return 1
    finally:
        probe.close()


COLUMNS = ("ts", "kind", "principal", "tool", "role", "decision", "rule")
FIELDS = ("timestamp", "kind", "principal", "tool", "role", "decision", "rule")  # the record's names for COLUMNS


def row_values(r: Record) -> tuple[Any, ...]:
    """The row a Record is stored as: (chain, seq, COLUMNS..., body, hash)."""
    return (r.chain, r.seq, *event_columns(r.event), r.body, r.hash)


def rows(records: Union[Batch, Sequence[Record]]) -> List[tuple[Any, ...]]:
    """The rows of `records` (a Batch gives them without a Record per event)."""
    if type(records) is Batch:
        return records.rows()
    return [row_values(r) for r in records]


def values(records: Union[Batch, Sequence[Record]]) -> list[Any]:
    """The values of the rows of `records`, one row after the other (what insert takes)."""
    if type(records) is Batch:
        return records.values()
    return [v for r in records for v in row_values(r)]


def insert_statement(db: sqlite3.Connection, values: list[Any]) -> None:
    """Insert rows (row_values' shape, their values one after the other), in order, in one
    statement: that of the next power of two rows, the rest padding."""
    n = len(values) // ROW_WIDTH
    size = 1 << (n - 1).bit_length()
    db.execute(values_insert(size), values + [None] * (ROW_WIDTH * (size - n)) if size > n else values)


def insert(db: sqlite3.Connection, values: list[Any], most: Optional[int] = None) -> None:
    """Insert rows (ROW_WIDTH values each) in order, as one transaction: one statement when
    they fit, else a transaction of statements of `most` rows (by default what this SQLite
    binds: rows_per_statement)."""
    if not values:
        return
    width = ROW_WIDTH * (most or rows_per_statement())
    if len(values) <= width:
        insert_statement(db, values)
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        for at in range(0, len(values), width):
            insert_statement(db, values[at:at + width])
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


class SqliteSink(Sink):
    """Records in a SQLite database file (created if missing)."""

    concurrent_writes = True
    writer_markers = True

    def __init__(self, path: str | os.PathLike[str], **options: Any) -> None:
        super().__init__(**options)
        # fixed now: a process that changes directory later still writes here
        self.path = os.path.abspath(path)
        self.db: Optional[sqlite3.Connection] = None
        self._lock: Optional[FileLock] = None

    def spool_path(self) -> str:
        """The `spool_path` option, else the database's path + ".spool.jsonl"."""
        return self.audit_options.spool_path or self.path + ".spool.jsonl"

    def open(self, chain: str) -> Optional[Tuple[int, bytes]]:
        """Lock `chain` (one writer), open the database (creating the table) and find the chain's last record."""
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
        self.db = db
        row = db.execute(f"SELECT seq, hash FROM {TABLE} WHERE chain=? ORDER BY seq DESC LIMIT 1", (chain,)).fetchone()
        return None if row is None else (row[0], bytes(row[1]))

    def write(self, records: Sequence[Record]) -> None:
        """Insert the records, in order, as one transaction (audit.sqlite.insert)."""
        assert self.db is not None
        insert(self.db, values(records))

    def close(self) -> None:
        """Close the database and release the chain's lock."""
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
