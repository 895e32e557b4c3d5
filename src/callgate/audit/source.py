"""Reading a log back: a .db file (SQLite), a .jsonl file (with its rotated segments) or a
postgres DSN. Every source yields Entry objects in storage order (insertion order for the
databases, file order for JSONL), which verify, query, tail, stats and replay share.

Nothing stored is trusted to have the right shape: a JSONL line that is not exactly an
envelope is an Entry with `stray` set (verify decides whether a crash explains it), a
database row whose record or hash is not a BLOB (or a hash not 32 bytes long) has `defect`,
and a store that cannot be read at all raises SourceError (one line)."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..extras import require
from .jsonl import segments
from .postgres import check_table
from .records import cut_short, decode_line
from .sqlite import COLUMNS, TABLE


class SourceError(Exception):
    """The store cannot be read (not a database, unreadable file, lost connection): `where`
    names it, `detail` says why."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"{where}: cannot be read ({detail})")
        self.where = where
        self.detail = detail


@dataclass(slots=True)
class Entry:
    """One stored record: `where` names it for people (``audit.jsonl byte 5120``, ``row
    pos=7``); body/hash as stored; columns: the database's copies of record fields (or
    None). For JSONL: `stray` holds a line that is not exactly an envelope (without its
    newline), `segment` is the file's index among the log's files (oldest first), `offset`
    the line's byte offset in it, `terminated` whether a newline ends it and `last` whether
    it is the log's last line. `defect`: why a database row is not a record (a TEXT
    column where a BLOB belongs)."""

    where: str
    body: bytes = b""
    hash: bytes = b""
    columns: Optional[Dict[str, Any]] = None
    pos: Any = None
    stray: Optional[bytes] = None
    segment: int = 0
    offset: int = 0
    terminated: bool = True
    last: bool = False
    defect: Optional[str] = None

    @property
    def is_record(self) -> bool:
        """Whether this is a record as the writer stores it (neither stray nor defective)."""
        return self.stray is None and self.defect is None

    @property
    def cut_short(self) -> bool:
        """A stray line that is what a write cut short leaves (records.cut_short)."""
        return self.stray is not None and cut_short(self.stray)


def is_postgres(spec: str) -> bool:
    """Whether a source spec is a PostgreSQL DSN (a URL, or key=value words with dbname)."""
    return spec.startswith(("postgresql://", "postgres://")) or (" " in spec and "dbname=" in spec)


class Source:
    """An audit log to read: `spec` a .db (SQLite), a .jsonl (with its rotated segments) or
    a postgres DSN; `kind` is "sqlite", "jsonl" or "postgres"."""

    def __init__(self, spec: str, table: Optional[str] = None) -> None:
        self.spec = spec
        self.table = table
        if is_postgres(spec):
            require("psycopg", "reading a PostgreSQL audit log", "audit")
            self.kind = "postgres"
            self.table = check_table(table or "callgate_audit")
        elif _is_sqlite(spec):
            self.kind = "sqlite"
        else:
            self.kind = "jsonl"
            if not segments(spec):
                raise FileNotFoundError(f"{spec}: no such file")

    def entries(self, after: Any = None, where_sql: str = "", params: tuple[Any, ...] = ()) -> Iterator[Entry]:
        """Every stored record in storage order (after: a position to resume from, for tail -f).
        SourceError when the store cannot be read."""
        try:
            if self.kind == "jsonl":
                yield from self._jsonl(after)
            else:
                yield from self._db(after, where_sql, params)
        except SourceError:
            raise
        except Exception as exc:
            if not _read_error(exc):
                raise
            raise SourceError(self.spec if self.kind != "postgres" else f"postgres table {self.table}",
                              f"{type(exc).__name__}: {_one_line(exc)}") from None

    def read_range(self, segment: int, offset: int, length: int) -> bytes:
        """`length` bytes at `offset` of the JSONL file with index `segment` (as Entry.segment)."""
        files = segments(self.spec)
        if not 0 <= segment < len(files):
            return b""
        try:
            with open(files[segment], "rb") as fh:
                fh.seek(offset)
                return fh.read(length)
        except OSError as exc:
            raise SourceError(str(files[segment]), str(exc)) from None

    # ---------------------------------------------------------------- JSONL

    def _jsonl(self, after: Any) -> Iterator[Entry]:
        files = segments(self.spec)
        # a position is (inode, offset): a rotation renames the file, the inode stays, so
        # tail -f finishes the rotated segment and goes on with the newer ones
        skip_inode, skip_offset = after if after else (None, 0)
        skipping = skip_inode is not None and any(f.stat().st_ino == skip_inode for f in files)
        for index, f in enumerate(files):
            inode = f.stat().st_ino
            name = f.name
            if skipping and inode != skip_inode:
                continue
            offset = skip_offset if skipping else 0
            skipping = False
            newest = index == len(files) - 1
            with open(f, "rb") as fh:
                size = fh.seek(0, 2)  # (a line past it, written meanwhile, counts as the last too)
                fh.seek(offset)
                for line in fh:
                    start = offset
                    offset += len(line)
                    complete = line.endswith(b"\n")
                    text = line[:-1] if complete else line
                    where = f"{name} byte {start}"
                    got = decode_line(text)
                    if got is not None:
                        yield Entry(where, got[0], got[1], pos=(inode, offset), segment=index, offset=start,
                                    terminated=complete)
                    elif not complete and after is not None:
                        return  # tail -f: a line still being written
                    else:
                        yield Entry(where, pos=(inode, offset), stray=text, segment=index, offset=start,
                                    terminated=complete, last=newest and offset >= size)

    # ---------------------------------------------------------------- databases

    def _db(self, after: Any, where_sql: str, params: tuple[Any, ...]) -> Iterator[Entry]:
        cols = ", ".join(("chain", "seq") + COLUMNS)
        start = after if after is not None else -1
        if self.kind == "sqlite":
            # record and hash as stored, whatever their type (typeof says which: only a BLOB
            # is a record's); TEXT that is not UTF-8 in a column the reader decodes stops a
            # query, so it goes on from the row where it stopped, reading such text with
            # surrogate escapes (it then differs from the record, and verify says so)
            sql = (f"SELECT pos, {cols}, CAST(record AS BLOB), CAST(hash AS BLOB), typeof(record), typeof(hash) "
                   f"FROM {TABLE} WHERE pos > ? {where_sql} ORDER BY pos")
            tolerant = False
            while True:
                db = sqlite3.connect(f"file:{quote(str(Path(self.spec).resolve()))}?mode=ro", uri=True)
                if tolerant:
                    db.text_factory = _tolerant_text
                try:
                    for row in db.execute(sql, (start, *params)):
                        start = row[0]
                        yield _row_entry(row, row[-4], row[-3]) if row[-1] == "blob" == row[-2] \
                            else _odd_row(row[:-2], row[-2:])
                    return
                except sqlite3.OperationalError as exc:
                    if tolerant or "decode" not in str(exc):
                        raise
                    tolerant = True
                finally:
                    db.close()
        else:
            import psycopg

            with psycopg.connect(self.spec) as conn, conn.cursor(name="callgate_audit_read") as cur:
                sql = (f"SELECT pos, {cols}, record, hash FROM {self.table} WHERE pos > %s "
                       f"{where_sql.replace('?', '%s')} ORDER BY pos")
                cur.itersize = 10_000
                cur.execute(sql, (start, *params))
                for row in cur:
                    yield _row_entry(row, row[-2], row[-1]) if type(row[-1]) is bytes \
                        else _odd_row(row, ("blob", "blob"))


def _is_sqlite(spec: str) -> bool:
    """By content (the SQLite header), not by name; a missing .db file is an error."""
    try:
        with open(spec, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        if spec.endswith((".db", ".sqlite", ".sqlite3")):
            raise FileNotFoundError(f"{spec}: no such file") from None
        return False


def _tolerant_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


_NAMES = ("chain", "seq") + COLUMNS
_COLUMNS_END = 1 + len(_NAMES)


def _row_entry(row: tuple[Any, ...], record: Any, digest: Any) -> Entry:
    """An Entry from a row (pos, chain, seq, COLUMNS..., ...) whose record and hash columns
    are BLOBs (bytes)."""
    if type(record) is not bytes or type(digest) is not bytes or len(digest) != 32:
        return _odd_row(row[:_COLUMNS_END] + (record, digest), ("blob", "blob"))
    pos = row[0]
    return Entry(f"row pos={pos}", record, digest, dict(zip(_NAMES, row[1:_COLUMNS_END])), pos)


def _odd_row(row: tuple[Any, ...], types: tuple[str, str]) -> Entry:
    """A row that is not a record's as the writer stores it: (pos, chain, seq, COLUMNS...,
    record, hash) with `types` the typeof() of record and hash; a defect says what is wrong
    (psycopg's memoryview for a bytea is read as the bytes it is)."""
    pos = row[0]
    columns = dict(zip(_NAMES, row[1:_COLUMNS_END]))
    where = f"row pos={pos}"
    values = []
    for name, value, kind in (("record", row[-2], types[0]), ("hash", row[-1], types[1])):
        if isinstance(value, memoryview):
            value = bytes(value)
        if type(value) is not bytes or kind != "blob":
            shown = kind.upper() if kind != "blob" else _sql_type(value)
            return Entry(where, columns=columns, pos=pos,
                         defect=f"column {name} is {shown}, not a BLOB (the row was written by something other "
                                "than the audit writer)")
        values.append(value)
    if len(values[1]) != 32:
        return Entry(where, columns=columns, pos=pos,
                     defect=f"column hash holds {len(values[1])} bytes, not a 32-byte SHA-256")
    return Entry(where, values[0], values[1], columns, pos=pos)


def _sql_type(value: Any) -> str:
    return {str: "TEXT", int: "INTEGER", float: "REAL", type(None): "NULL"}.get(type(value), type(value).__name__)


def _read_error(exc: Exception) -> bool:
    """An error of the store itself (as opposed to a bug here)."""
    if isinstance(exc, (OSError, sqlite3.Error, UnicodeDecodeError, MemoryError)):
        return True
    try:
        import psycopg
    except ImportError:
        return False
    return isinstance(exc, psycopg.Error)


def _one_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "no detail"
