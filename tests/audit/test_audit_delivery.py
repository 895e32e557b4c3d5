"""How sealed batches reach the sink: the courier thread (one batch in flight while the
next is sealed) and SqliteSink's one-statement batch insert."""

from __future__ import annotations

import errno
import sqlite3
import threading

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.courier import Courier
from callgate.audit.records import Record, event_columns
from callgate.audit.sinks import Sink
from callgate.audit.source import Source
from callgate.audit.sqlite import TABLE
from callgate.audit.verify import verify
from support.audit import wait_for

ALLOWED = ("view_customer", {"customer_id": "C-1042"})


# ---------------------------------------------------------------- the courier


def test_courier_reports_each_outcome_and_carries_one_batch_at_a_time():
    """A batch's outcome is (batch, None) once sent and (batch, exception) when sending
    raised; a second batch is refused while one is in flight; stop() ends the thread."""
    gate = threading.Event()
    sent = []

    def send(batch):
        gate.wait(10)
        if batch == "bad":
            raise OSError(errno.EIO, "I/O error")
        sent.append(batch)

    courier = Courier(send)
    assert not courier.busy()
    courier.start("a")
    assert courier.busy()
    with pytest.raises(RuntimeError, match="one batch at a time"):
        courier.start("b")
    gate.set()
    assert courier.outcome() == ("a", None)
    assert not courier.busy()
    courier.start("bad")
    batch, exc = courier.outcome()
    assert batch == "bad" and isinstance(exc, OSError) and exc.errno == errno.EIO
    assert sent == ["a"]
    with pytest.raises(RuntimeError, match="no batch in flight"):
        courier.outcome()
    thread = courier._thread
    courier.stop()
    thread.join(10)
    assert not thread.is_alive()


class GatedSink(Sink):
    """Keeps records in memory; each write waits for `gate`, and raises ENOSPC while
    `broken` is set; open() waits for `opened` (a writer held there has taken nothing off
    its queue yet). Records which thread wrote. Allows the courier, as the built-in sinks do."""

    concurrent_writes = True

    def __init__(self, **options) -> None:
        options.setdefault("retry_interval", 0.01)
        super().__init__(**options)
        self.gate = threading.Event()
        self.gate.set()
        self.opened = threading.Event()
        self.opened.set()
        self.broken = threading.Event()
        self.records: list[Record] = []
        self.writing = threading.Event()
        self.threads: set[str] = set()

    def open(self, chain):
        self.opened.wait(30)
        return None

    def write(self, records) -> None:
        self.threads.add(threading.current_thread().name)
        self.writing.set()
        self.gate.wait(30)
        if self.broken.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        self.records.extend(records)


def _first_held_second_sealed(sink: "GatedSink", batches: int = 2) -> tuple:
    """An engine on `sink` whose first batch is held in the sink's write with the next
    sealed behind it: (engine, recorder). Deterministic: all the decisions are queued while
    the writer is held in open(), so it takes a full batch (batch_size) and, finding a full
    batch still queued, seals it at once behind the first instead of waiting for it."""
    sink.opened.clear()
    sink.gate.clear()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    n = batches * sink.audit_options.batch_size
    for _ in range(n):
        engine.evaluate(*ALLOWED, role="agent")
    sink.opened.set()
    wait_for(sink.writing.is_set, "the first write")
    wait_for(lambda: rec.stats["claimed"] == n, "the second batch to be sealed while the first is held")
    return engine, rec


def test_the_next_batch_is_sealed_while_one_is_written():
    """With fsync="batch" the sink writes on the courier thread, and while a write is held
    the writer takes the next batch off the queue and seals it instead of waiting; once
    released every record arrives once, in chain order."""
    sink = GatedSink(batch_size=5, max_queue=1000)
    engine, rec = _first_held_second_sealed(sink)
    assert rec.stats["queued"] == 0 and rec.writer.courier.carrying() == 5 and sink.records == []
    sink.gate.set()
    engine.close()
    assert [r.seq for r in sink.records] == list(range(10))
    assert sink.threads == {"callgate-audit-io"}


def test_a_failed_write_in_flight_is_retried_before_the_batch_sealed_behind_it():
    """A batch that fails on the courier is retried as sealed, and the batch sealed while
    it was in flight goes after it: the sink ends with every record once, in order."""
    sink = GatedSink(batch_size=3, max_queue=1000, on_failure="block")
    sink.broken.set()
    engine, rec = _first_held_second_sealed(sink)
    sink.gate.set()  # the first write now fails
    wait_for(lambda: rec.stats["failing"] is not None, "the failure")
    sink.broken.clear()
    engine.close()
    assert [r.seq for r in sink.records] == list(range(6))
    assert rec.stats["written"] == 6


def _assert_three_written_on_the_writer_thread(sink: "GatedSink") -> None:
    """Three decisions through `sink`: written in order, every write from the writer thread."""
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    for _ in range(3):
        engine.evaluate(*ALLOWED, role="agent")
    engine.close()
    assert [r.seq for r in sink.records] == [0, 1, 2]
    assert sink.threads == {"callgate-audit-writer"}


def test_fsync_always_writes_on_the_writer_thread_record_by_record():
    """fsync="always" keeps each record durable before the next is written: no courier."""
    _assert_three_written_on_the_writer_thread(GatedSink(fsync="always"))


def test_closing_ends_the_courier_thread():
    """close() leaves no courier thread behind."""
    engine = Engine.from_dict(examples.policy("crm"), audit=GatedSink())
    rec = audit.recorder(engine)
    engine.evaluate(*ALLOWED, role="agent")
    wait_for(lambda: rec.writer.courier._thread is not None, "the courier to start")
    thread = rec.writer.courier._thread
    engine.close()
    thread.join(10)
    assert not thread.is_alive()


# ---------------------------------------------------------------- SQLite batch insert


def test_sqlite_rows_equal_the_records_whatever_the_values(tmp_path):
    """The sink stores exactly what row_values says for each record, including a NUL
    character, non-BMP characters, quotes and line breaks; the log verifies."""
    path = tmp_path / "a.db"
    engine = Engine.from_dict(examples.policy("crm"), audit=audit.SqliteSink(path))
    principals = ["user:alice", 'user:"q"\\\n\u2028', "user:\U0001f600", None, "user:nul\x00byte", ""]
    for p in principals:
        engine.evaluate(*ALLOWED, role="agent", principal=p)
        engine.evaluate("process_refund", {"order_id": "X", "amount": 900}, role="agent", principal=p)
    engine.close()
    stored = sqlite3.connect(path).execute(
        f"SELECT chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash FROM {TABLE} ORDER BY pos"
    ).fetchall()
    for row in stored:
        event = orjson.loads(row[9])
        assert row[:9] == (event["chain"], event["seq"], *event_columns(event))
        assert type(row[9]) is bytes and type(row[10]) is bytes and len(row[10]) == 32
    assert [row[1] for row in stored] == list(range(len(stored)))
    assert [row[3] for row in stored] == ["writer"] + ["decision"] * 2 * len(principals) + ["writer"]
    assert [row[4] for row in stored[1:-1:2]] == principals
    report = verify(Source(str(path)))
    assert report.ok and report.records == len(stored)


def test_sqlite_new_files_get_16k_pages_and_existing_ones_keep_theirs(tmp_path):
    """A database the sink creates uses 16 KiB pages; one that already exists keeps its
    page size, and the sink appends to it as before."""
    fresh = tmp_path / "fresh.db"
    engine = Engine.from_dict(examples.policy("crm"), audit=audit.SqliteSink(fresh))
    engine.evaluate(*ALLOWED, role="agent")
    engine.close()
    assert sqlite3.connect(fresh).execute("PRAGMA page_size").fetchone() == (16384,)

    old = tmp_path / "old.db"
    db = sqlite3.connect(old)
    db.execute("PRAGMA page_size=4096")
    db.execute("CREATE TABLE unrelated (x)")
    db.close()
    for _ in range(2):
        engine = Engine.from_dict(examples.policy("crm"), audit=audit.SqliteSink(old))
        engine.evaluate(*ALLOWED, role="agent")
        engine.close()
    db = sqlite3.connect(old)
    assert db.execute("PRAGMA page_size").fetchone() == (4096,)
    # each run: its start marker, its decision, its stop marker
    assert db.execute(f"SELECT seq, kind FROM {TABLE} ORDER BY pos").fetchall() == \
        [(0, "writer"), (1, "decision"), (2, "writer"), (3, "writer"), (4, "decision"), (5, "writer")]
    assert verify(Source(str(old))).ok


class _SinkGaveUp(BaseException):
    """Not an Exception: what a sink raising, say, SystemExit looks like to the writer."""


def test_a_base_exception_in_flight_keeps_the_batch_sealed_behind_it(tmp_path, caplog):
    """When the courier reports a BaseException (not a sink failure) the writer thread
    stops, and both the batch in flight and the one sealed behind it are kept for close(),
    which spools them with what is still queued: every sequence number once, no gap."""
    sink = GatedSink(batch_size=3, max_queue=1000, spool_path=str(tmp_path / "spool.jsonl"))
    fail_once = {"armed": True}
    real_write = sink.write

    def write(records):
        if fail_once.pop("armed", False):
            sink.writing.set()
            sink.gate.wait(30)
            raise _SinkGaveUp("the sink gave up")
        real_write(records)

    sink.write = write
    engine, rec = _first_held_second_sealed(sink)
    sink.gate.set()
    wait_for(lambda: not rec.writer.thread.is_alive(), "the writer thread to stop")
    for _ in range(2):
        engine.evaluate(*ALLOWED, role="agent")
    rec.close(timeout=0.5)
    spooled = [orjson.loads(line)["record"]["seq"] for line in (tmp_path / "spool.jsonl").read_bytes().splitlines()]
    assert [r.seq for r in sink.records] + spooled == list(range(8))


class ThreadBoundSink(GatedSink):
    """A custom sink that does not set concurrent_writes (a thread-bound resource)."""

    concurrent_writes = False


def test_sinks_that_do_not_allow_it_are_written_on_the_writer_thread():
    """A Sink subclass keeps the single-thread contract unless it sets concurrent_writes,
    and so does an object with emit(): every call comes from the writer thread."""
    _assert_three_written_on_the_writer_thread(ThreadBoundSink())

    seen = set()

    class Target:
        def emit(self, event) -> None:
            seen.add(threading.current_thread().name)

    engine = Engine.from_dict(examples.policy("crm"), audit=Target())
    engine.evaluate(*ALLOWED, role="agent")
    engine.close()
    assert seen == {"callgate-audit-writer"}


def _sqlite_rows(n: int, start: int = 0) -> list:
    return [("c", start + i, f"2026-11-21T08:00:00.{i:06d}Z", "decision", None if i % 5 == 0 else f"user:{i % 3}",
             "process_refund", "agent", ("Allow", "Deny")[i % 2], i % 4 - 1 if i % 4 else None,
             b'{"seq":%d}' % (start + i), bytes([i % 256]) * 32) for i in range(n)]


def _flat(rows: list) -> list:
    return [v for row in rows for v in row]


def _stored(db: sqlite3.Connection) -> list:
    return db.execute(f"SELECT chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash "
                      f"FROM {TABLE} ORDER BY pos").fetchall()


@pytest.mark.parametrize("most", [4096, 64])
def test_sqlite_batches_of_any_size_are_stored_in_order(most):
    """Batches of every size, in one padded statement when they fit and in several (inside
    one transaction) when this SQLite allows fewer rows (64: the 999-variable limit before
    3.32), store exactly the rows given, in order, with no padding row."""
    from callgate.audit import sqlite as sqlite_sink

    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(sqlite_sink.SCHEMA)
    want: list = []
    for n in (1, 2, 3, 63, 64, 65, 100, 129, 0, 1000):
        batch = _sqlite_rows(n, len(want))
        sqlite_sink.insert(db, _flat(batch), most)
        want += batch
        assert not db.in_transaction
    assert _stored(db) == want


@pytest.mark.parametrize("most", [4096, 64])
def test_sqlite_a_failing_batch_leaves_nothing(most):
    """A batch whose insert fails on one row (here a trigger refusing seq 100, in the second
    statement when statements hold 64 rows) leaves none of its rows, and the next batch
    goes in after the rows of the batch before."""
    from callgate.audit import sqlite as sqlite_sink

    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(sqlite_sink.SCHEMA)
    db.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON {TABLE} WHEN NEW.seq = 100 "
               "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    first = _sqlite_rows(50)
    sqlite_sink.insert(db, _flat(first), most)
    with pytest.raises(sqlite3.IntegrityError, match="disk full"):
        sqlite_sink.insert(db, _flat(_sqlite_rows(100, 50)), most)
    assert not db.in_transaction
    assert _stored(db) == first
    db.execute("DROP TRIGGER refuse")
    rest = _sqlite_rows(100, 50)
    sqlite_sink.insert(db, _flat(rest), most)
    assert _stored(db) == first + rest


def test_sqlite_statement_size_is_what_this_sqlite_can_bind():
    """The rows one statement takes are a power of two up to 4,096 whose statement this
    SQLite prepares (11 variables a row), and twice as many would not fit unless 4,096 is
    the cap."""
    from callgate.audit import sqlite as sqlite_sink

    rows = sqlite_sink.rows_per_statement()
    assert rows & (rows - 1) == 0 and 1 <= rows <= sqlite_sink.MAX_ROWS_PER_STATEMENT
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(sqlite_sink.SCHEMA)
    sqlite_sink.insert_statement(db, _flat(_sqlite_rows(rows)))
    if rows < sqlite_sink.MAX_ROWS_PER_STATEMENT:
        with pytest.raises(sqlite3.OperationalError):
            sqlite_sink.insert_statement(db, _flat(_sqlite_rows(2 * rows)))
