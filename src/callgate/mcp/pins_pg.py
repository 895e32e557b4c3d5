"""Pins in PostgreSQL, so that every replica of a proxy agrees on what was reviewed.

`--pins postgresql://...` (or `postgres://`, or a libpq `key=value` string): the same
questions and answers as a pins file (pins.PinStore), kept in one table

    callgate_pins(name text PRIMARY KEY, digest text NOT NULL, approved_at timestamptz NOT NULL)

`callgate pins approve` writes it (one transaction); a proxy reads it at most every
`ttl` seconds (2 by default: an approval reaches every replica within that), and a database
it cannot reach approves nothing: the calls are denied saying why (fail closed).
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any, Callable, Iterable, Mapping, Optional

from ..extras import require
from .pins import PinStore, pin_problem, tool_digest

_TABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")


def is_postgres(spec: str) -> bool:
    """Whether a --pins value names a PostgreSQL database rather than a file."""
    return spec.startswith(("postgres://", "postgresql://")) or ("=" in spec and "dbname" in spec)


class PostgresPins:
    """Pins kept in PostgreSQL: pins(), problem(), approve() as PinStore's."""

    def __init__(self, dsn: str, *, table: str = "callgate_pins", ttl: float = 2.0, connect_timeout: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if not _TABLE_RE.fullmatch(table):
            raise ValueError(f"pins table {table!r}: a plain table name (schema.table at most)")
        self.dsn, self.table, self.ttl = dsn, table, ttl
        self.path = "PostgreSQL"   # what messages name (PinStore names its file)
        self._connect_timeout = connect_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: Optional[dict[str, dict[str, Any]]] = None
        self._until = 0.0

    def _connect(self) -> Any:
        psycopg = require("psycopg", "pins in PostgreSQL", "audit")
        conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=max(1, int(self._connect_timeout)))
        conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (name text PRIMARY KEY, digest text NOT NULL, "
                     "approved_at timestamptz NOT NULL DEFAULT now())")
        return conn

    def pins(self) -> dict[str, dict[str, Any]]:
        """tool name -> {"digest", "approved_at"}, as the table holds them (read at most every
        ttl seconds). OSError when the database cannot be read."""
        with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._until:
                return dict(self._cached)
            try:
                with self._connect() as conn:
                    rows = conn.execute(f"SELECT name, digest, approved_at FROM {self.table}").fetchall()
            except Exception as exc:   # psycopg's errors: the pins cannot be known
                self._cached = None
                raise OSError(f"the pins database cannot be read ({type(exc).__name__}: {exc})") from None
            self._cached = {name: {"digest": digest, "approved_at": approved.strftime("%Y-%m-%dT%H:%M:%SZ")}
                            for name, digest, approved in rows}
            self._until = now + self.ttl
            return dict(self._cached)

    def problem(self, tool: str, digest: Optional[str]) -> Optional[str]:
        """None when `digest` is the approved definition of `tool`; otherwise why not (a
        database that cannot be read approves nothing)."""
        try:
            pinned = self.pins().get(tool)
        except OSError as exc:
            return str(exc)
        return pin_problem(tool, pinned, digest)

    def approve(self, tools: Iterable[Mapping[str, Any]], only: Optional[set[str]] = None) -> list[tuple[str, str, str]]:
        """Pin the given definitions (all, or those named in `only`) in one transaction;
        returns (name, old digest or '', new digest) for each."""
        changes = []
        with self._connect() as conn, conn.transaction():
            old = dict(conn.execute(f"SELECT name, digest FROM {self.table} FOR UPDATE").fetchall())
            for tool in tools:
                name = tool.get("name")
                if not isinstance(name, str) or (only is not None and name not in only):
                    continue
                digest = tool_digest(tool)
                conn.execute(f"INSERT INTO {self.table} (name, digest) VALUES (%s, %s) ON CONFLICT (name) DO UPDATE "
                             f"SET digest = EXCLUDED.digest, approved_at = CASE WHEN {self.table}.digest = "
                             f"EXCLUDED.digest THEN {self.table}.approved_at ELSE now() END", (name, digest))
                changes.append((name, old.get(name, ""), digest))
        with self._lock:
            self._cached = None
        return changes


def open_pins(spec: str) -> Any:
    """The pin store a --pins value names: a PostgreSQL DSN (PostgresPins, shared by
    replicas) or a file (pins.PinStore)."""
    return PostgresPins(spec) if is_postgres(spec) else PinStore(spec)
