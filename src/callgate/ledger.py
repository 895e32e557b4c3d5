"""Spent-token ledgers shared by replicas (docs/deploy.md): approval nonces, MCP
`requestState` ids and replay-protected chain `jti`s, each kept until its token expires.

    ledger = open_ledger("postgresql://...")     # or "memory"
    ledger.claim([(nonce, expiry)])              # None: spent now; else why not

`PostgresLedger` implements callgate.approvals.Ledger over one PostgreSQL table, so N engines,
proxies or service workers spend each key exactly once between them. A claim is one
transaction: ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired``, whose row locks make two
concurrent claims of one key wait for each other; the one that commits first wins, the other
sees the row and is refused ("already used"). Keys are stored as their SHA-256 (any text,
NUL included, fits; nothing a caller sends reaches SQL text).

Time is the database's (`clock_timestamp()`), one clock for every replica; a process also
keeps the latest database time it has seen, so a clock stepping back cannot replay a key it
already forgot. Rows are deleted only `purge_grace` seconds after they expired.

Fail closed: when the database cannot be reached (or does not answer within
`statement_timeout`), `claim` returns ``ledger unavailable (WHY)`` and records nothing, and
`is_spent` raises approvals.LedgerUnavailable, so approvals are refused with that reason. A
COMMIT whose reply was lost counts as a refusal: the key may be spent, the call is not allowed.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import threading
import time
from typing import Any, Iterable, Optional

from .approvals import ALREADY_USED, EXPIRED, LEDGER_UNAVAILABLE, Ledger, LedgerUnavailable, NonceLedger
from .extras import require

__all__ = ["PostgresLedger", "NonceLedger", "open_ledger", "is_postgres_dsn"]

_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,40}(\.[A-Za-z_][A-Za-z0-9_]{0,40})?$")
_LEDGER_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+:-]{0,127}")
PURGE_EVERY = 60.0   # seconds between purges of long-expired rows (per process)
MAX_KEYS = 64        # keys in one claim (approvals: at most 32 per request)


def is_postgres_dsn(text: str) -> bool:
    """Whether `text` names a PostgreSQL server (a postgres:// or postgresql:// URL, or a
    libpq key=value string with host= or dbname=)."""
    return text.startswith(("postgres://", "postgresql://")) or \
        ("=" in text and any(k in text for k in ("host=", "dbname=")))


def _digest(key: str) -> bytes:
    if not isinstance(key, str):
        raise TypeError("ledger keys are str")
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()


def _finite(x: Any) -> bool:
    return not isinstance(x, bool) and isinstance(x, (int, float)) and math.isfinite(x)


def _why(exc: BaseException) -> str:
    """One line from a database error (the first line of its message, bounded)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


class PostgresLedger(Ledger):
    """Spent keys in a PostgreSQL table shared by every replica (module docstring).

    dsn: a libpq connection string or URL. table: a plain (optionally schema-qualified)
    name, created if missing, with a `<table>_meta` table beside it holding the ledger id.
    ledger_id: the id approvals bind; None reads it from the meta table, where the first
    replica stores a random ``pg-<32 hex>`` (so every replica sharing the table agrees, and
    no approval can be prepared before the ledger exists). connect_timeout and
    statement_timeout (seconds) bound how long an unreachable or stuck database can hold a
    decision. purge_grace: seconds past expiry before a row may be deleted.

    Thread-safe: one connection, one claim at a time (claims are rare: approvals)."""

    def __init__(self, dsn: str, *, table: str = "callgate_ledger", ledger_id: Optional[str] = None,
                 connect_timeout: float = 3.0, statement_timeout: float = 3.0, purge_grace: float = 300.0) -> None:
        require("psycopg", "the PostgreSQL ledger", "audit")
        if not isinstance(dsn, str) or not dsn:
            raise ValueError("dsn must be a non-empty PostgreSQL connection string")
        if not isinstance(table, str) or not _TABLE.match(table):
            raise ValueError(f"not a plain table name: {table!r}")
        if ledger_id is not None and (not isinstance(ledger_id, str) or not _LEDGER_ID.fullmatch(ledger_id)):
            raise ValueError(f"ledger_id {ledger_id!r} must match {_LEDGER_ID.pattern}")
        for name, value in (("connect_timeout", connect_timeout), ("statement_timeout", statement_timeout),
                            ("purge_grace", purge_grace)):
            if not _finite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
        self.dsn = dsn
        self.table = table
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.purge_grace = purge_grace
        self._given_id = ledger_id
        self._id: Optional[str] = ledger_id
        self._lock = threading.Lock()
        self._conn: Any = None
        self._horizon = -math.inf      # the latest database time seen (never moves back)
        self._next_purge = 0.0         # time.monotonic() of the next purge
        self.last_error: Optional[str] = None

    # ------------------------------------------------------------ connection

    def _connect(self) -> Any:
        """The open connection, made (and the tables created) if needed; psycopg errors pass."""
        import psycopg

        if self._conn is not None and not self._conn.closed:
            return self._conn
        conn = psycopg.connect(self.dsn, autocommit=False, connect_timeout=max(1, math.ceil(self.connect_timeout)))
        try:
            # SET, not the connection's `options`: those would replace any the DSN carries
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{int(self.statement_timeout * 1000)}ms",))
            conn.commit()
            with conn.transaction():
                # concurrent CREATE ... IF NOT EXISTS can collide in PostgreSQL: serialize it
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
                if "." in self.table:
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self.table.split('.')[0]}")
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (ledger TEXT NOT NULL, key BYTEA NOT NULL, "
                             "expires DOUBLE PRECISION NOT NULL, PRIMARY KEY (ledger, key))")
                conn.execute(f"CREATE INDEX IF NOT EXISTS {self.table.replace('.', '_')}_expires "
                             f"ON {self.table} (expires)")
                conn.execute(f"CREATE TABLE IF NOT EXISTS {self.table}_meta (name TEXT PRIMARY KEY, "
                             "ledger_id TEXT NOT NULL)")
                if self._given_id is None:
                    conn.execute(f"INSERT INTO {self.table}_meta (name, ledger_id) VALUES ('ledger', %s) "
                                 "ON CONFLICT (name) DO NOTHING", ("pg-" + secrets.token_hex(16),))
                    row: Any = conn.execute(f"SELECT ledger_id FROM {self.table}_meta WHERE name = 'ledger'").fetchone()
                    self._id = row[0]
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # closing a broken connection: nothing more to do
                pass
        self._conn = None

    def _now(self, conn: Any) -> float:
        """The database's clock, never behind the latest this process has seen."""
        now = float(conn.execute("SELECT extract(epoch from clock_timestamp())").fetchone()[0])
        if now > self._horizon:
            self._horizon = now
        return self._horizon

    # ------------------------------------------------------------ Ledger

    @property
    def ledger_id(self) -> str:
        """The id approvals bind: given, or the one the shared meta table holds (read on first
        use; LedgerUnavailable when the database cannot be reached to read it)."""
        if self._id is None:
            with self._lock:
                if self._id is None:
                    import psycopg

                    try:
                        self._connect()
                    except psycopg.Error as exc:
                        self._drop()
                        self.last_error = _why(exc)
                        raise LedgerUnavailable(f"the ledger's id cannot be read: {self.last_error}") from None
        assert self._id is not None
        return self._id

    def claim(self, nonces: Iterable[tuple[str, float]]) -> Optional[str]:
        """Atomically record every (key, expiry) pair and return None; or record none and return
        why: "already used" (spent by any replica, or twice in `nonces`), "expired" (an expiry
        not after the database's time), or "ledger unavailable (WHY)"."""
        import psycopg

        items = [(k, e) for k, e in nonces]
        for k, e in items:
            if not isinstance(k, str) or not _finite(e):
                raise TypeError("nonces must be (str, finite number) pairs")
        if len(items) > MAX_KEYS:
            raise ValueError(f"at most {MAX_KEYS} keys in one claim")
        if not items:
            return None
        digests = [_digest(k) for k, _ in items]
        if len(set(digests)) != len(digests):
            return ALREADY_USED
        # sorted by key: concurrent claims of overlapping sets lock rows in one order (no deadlock)
        rows = sorted(zip(digests, (float(e) for _, e in items)))
        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction():
                    now = self._now(conn)
                    if any(e <= now for _, e in rows):
                        return EXPIRED
                    got = conn.execute(
                        f"INSERT INTO {self.table} AS t (ledger, key, expires) "
                        "SELECT %s, u.k, u.e FROM unnest(%s::bytea[], %s::float8[]) AS u(k, e) "
                        "ON CONFLICT (ledger, key) DO UPDATE SET expires = EXCLUDED.expires "
                        "WHERE t.expires <= %s RETURNING 1",
                        (self._id, [k for k, _ in rows], [e for _, e in rows], now)).fetchall()
                    if len(got) != len(rows):
                        raise _Refused(ALREADY_USED)   # rolls the transaction back: none recorded
                self._purge(conn, now)
                self.last_error = None
                return None
            except _Refused as refused:
                return refused.cause
            except psycopg.Error as exc:
                self._drop()
                self.last_error = _why(exc)
                return f"{LEDGER_UNAVAILABLE} ({self.last_error})"

    def is_spent(self, nonce: str) -> bool:
        """Whether any replica spent `nonce` and it has not expired; LedgerUnavailable when the
        database cannot say."""
        import psycopg

        key = _digest(nonce)
        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction():
                    now = self._now(conn)
                    row = conn.execute(f"SELECT 1 FROM {self.table} WHERE ledger = %s AND key = %s AND expires > %s",
                                       (self._id, key, now)).fetchone()
                return row is not None
            except psycopg.Error as exc:
                self._drop()
                self.last_error = _why(exc)
                raise LedgerUnavailable(self.last_error) from None

    def __len__(self) -> int:
        """Unexpired keys of this ledger (LedgerUnavailable when the database cannot say)."""
        import psycopg

        with self._lock:
            try:
                conn = self._connect()
                with conn.transaction():
                    now = self._now(conn)
                    row = conn.execute(f"SELECT count(*) FROM {self.table} WHERE ledger = %s AND expires > %s",
                                       (self._id, now)).fetchone()
                return int(row[0])
            except psycopg.Error as exc:
                self._drop()
                self.last_error = _why(exc)
                raise LedgerUnavailable(self.last_error) from None

    def _purge(self, conn: Any, now: float) -> None:
        """Delete rows long expired (at most once per PURGE_EVERY seconds per process); a
        failure here is left for the next claim to meet."""
        tick = time.monotonic()
        if tick < self._next_purge:
            return
        self._next_purge = tick + PURGE_EVERY
        import psycopg

        try:
            with conn.transaction():
                conn.execute(f"DELETE FROM {self.table} WHERE ledger = %s AND expires <= %s",
                             (self._id, now - self.purge_grace))
        except psycopg.Error:  # the claim itself is committed: only the housekeeping failed
            self._drop()

    def close(self) -> None:
        """Close the connection (the next use opens a new one)."""
        with self._lock:
            self._drop()


class _Refused(Exception):
    """Raised inside a claim's transaction to roll it back with a cause."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


def open_ledger(spec: Optional[str], **options: Any) -> Ledger:
    """The ledger `spec` names: None or "memory" -> an in-memory NonceLedger (this process
    only); a PostgreSQL DSN -> a PostgresLedger (options: its keyword arguments). ValueError
    (one line) for anything else."""
    if spec is None or spec == "memory":
        return NonceLedger(**{k: v for k, v in options.items() if k in ("ledger_id", "max_entries")})
    if isinstance(spec, str) and is_postgres_dsn(spec):
        return PostgresLedger(spec, **options)
    raise ValueError(f"--ledger {spec!r}: expected 'memory' or a PostgreSQL DSN (postgresql://...)")
