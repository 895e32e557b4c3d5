"""Reading a log back: a .db file (SQLite), a .jsonl file (with its rotated segments) or a
postgres DSN. Every source yields Entry objects in storage order (insertion order for the
databases, file order for JSONL), which verify, query, tail, stats and replay share."""

from __future__ import annotations

import sqlite3
from urllib.parse import quote
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from .jsonl import segments
from .postgres import check_table
from .records import decode_line, looks_torn
from .sqlite import COLUMNS, TABLE


@dataclass
class Entry:
    """One stored record: `where` names it for people (``line 12 of audit.jsonl``, ``row
    pos=7``); body/hash as stored; columns: the database's copies of record fields (or
    None); `torn`/`junk` mark a JSONL line that is not a complete record."""

    where: str
    body: bytes = b""
    hash: bytes = b""
    columns: Optional[Dict[str, Any]] = None
    torn: bool = False
    junk: bool = False
    pos: Any = None


def is_postgres(spec: str) -> bool:
    return spec.startswith(("postgresql://", "postgres://")) or (" " in spec and "dbname=" in spec)


class Source:
    def __init__(self, spec: str, table: Optional[str] = None) -> None:
        self.spec = spec
        self.table = table
        if is_postgres(spec):
            self.kind = "postgres"
            self.table = check_table(table or "callgate_audit")
        elif _is_sqlite(spec):
            self.kind = "sqlite"
        else:
            self.kind = "jsonl"
            if not segments(spec):
                raise FileNotFoundError(f"{spec}: no such file")

    def entries(self, after: Any = None, where_sql: str = "", params: tuple = ()) -> Iterator[Entry]:
        """Every stored record in storage order (after: a position to resume from, for tail -f)."""
        if self.kind == "jsonl":
            yield from self._jsonl(after)
        else:
            yield from self._db(after, where_sql, params)

    # ---------------------------------------------------------------- JSONL

    def _jsonl(self, after: Any) -> Iterator[Entry]:
        files = segments(self.spec)
        # a position is (inode, offset): a rotation renames the file, the inode stays, so
        # tail -f finishes the rotated segment and goes on with the newer ones
        skip_inode, skip_offset = after if after else (None, 0)
        skipping = skip_inode is not None and any(f.stat().st_ino == skip_inode for f in files)
        for f in files:
            inode = f.stat().st_ino
            if skipping and inode != skip_inode:
                continue
            offset = skip_offset if skipping else 0
            skipping = False
            with open(f, "rb") as fh:
                fh.seek(offset)
                for line in fh:
                    start = offset
                    offset += len(line)
                    complete = line.endswith(b"\n")
                    text = line[:-1] if complete else line
                    where = f"{f.name} byte {start}"
                    got = decode_line(text) if complete or text.endswith(b"}") else None
                    if got is not None:
                        yield Entry(where, got[0], got[1], pos=(inode, offset))
                    elif not complete and after is not None:
                        return  # tail -f: a line still being written
                    elif text.strip() == b"":
                        continue
                    elif looks_torn(text):
                        yield Entry(where, text, torn=True, pos=(inode, offset))
                    else:
                        yield Entry(where, text, junk=True, pos=(inode, offset))

    # ---------------------------------------------------------------- databases

    def _db(self, after: Any, where_sql: str, params: tuple) -> Iterator[Entry]:
        cols = ", ".join(("chain", "seq") + COLUMNS)
        start = after if after is not None else -1
        if self.kind == "sqlite":
            db = sqlite3.connect(f"file:{quote(str(Path(self.spec).resolve()))}?mode=ro", uri=True)
            try:
                sql = f"SELECT pos, {cols}, record, hash FROM {TABLE} WHERE pos > ? {where_sql} ORDER BY pos"
                for row in db.execute(sql, (start, *params)):
                    yield _row_entry(row)
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
                    yield _row_entry(row)


def _is_sqlite(spec: str) -> bool:
    """By content (the SQLite header), not by name; a missing .db file is an error."""
    try:
        with open(spec, "rb") as fh:
            return fh.read(16) == b"SQLite format 3\x00"
    except OSError:
        if spec.endswith((".db", ".sqlite", ".sqlite3")):
            raise FileNotFoundError(f"{spec}: no such file") from None
        return False


def _row_entry(row: tuple) -> Entry:
    pos = row[0]
    columns = dict(zip(("chain", "seq") + COLUMNS, row[1:3 + len(COLUMNS)]))
    return Entry(f"row pos={pos}", bytes(row[-2]), bytes(row[-1]), columns, pos=pos)
