"""Durable decisions: durable=True (evaluate() returns once the decision's event is durable,
concurrent decisions sharing one write and sync), the non-blocking durable_mark() /
wait_durable() pair a host such as the MCP proxy uses, fail-closed denials when the trail
cannot make a decision durable, and on_failure="deny" refusing the very next decision once
the sink is known to fail."""

from __future__ import annotations

import errno
import threading

import pytest

from callgate import Engine, audit, examples
from callgate.audit.options import Options
from callgate.audit.records import Record
from callgate.audit.sinks import Sink
from support.audit import wait_for

ALLOWED = ("view_customer", {"customer_id": "C-1"})
HANG_GUARD = 30.0  # seconds: a bound on waits that must not hang, never a timing assertion


class SyncedSink(Sink):
    """Keeps records in memory and counts them as durable only once sync() returned. sync()
    waits for `gate` (set: open); writes raise ENOSPC while `broken` is set. Records the size
    of every synced batch."""

    concurrent_writes = True

    def __init__(self, **options) -> None:
        options.setdefault("retry_interval", 0.01)
        super().__init__(**options)
        self.gate = threading.Event()
        self.gate.set()
        self.broken = threading.Event()
        self.syncing = threading.Event()
        self.pending: list[Record] = []
        self.synced: list[Record] = []
        self.batches: list[int] = []
        self.lock = threading.Lock()

    def write(self, records) -> None:
        if self.broken.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        with self.lock:
            self.pending.extend(records)

    def sync(self) -> None:
        self.syncing.set()
        self.gate.wait(HANG_GUARD)
        with self.lock:
            self.batches.append(len(self.pending))
            self.synced.extend(self.pending)
            self.pending = []

    def synced_principals(self) -> set:
        with self.lock:
            return {r.event.get("principal") for r in self.synced}


def _in_thread(fn):
    """Run fn() on a thread; (thread, result list) to join with a hang guard."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    thread.start()
    return thread, out


# ---------------------------------------------------------------- options


def test_durable_needs_a_sync():
    """durable=True with fsync="never" is refused with ValueError (nothing would be durable),
    from every sink and from Audit(); so is a durable_timeout that is not positive."""
    with pytest.raises(ValueError, match="durable=True needs fsync"):
        audit.JsonlSink("x.jsonl", durable=True, fsync="never")
    with pytest.raises(ValueError, match="durable=True needs fsync"):
        audit.SqliteSink("x.db", durable=True, fsync="never")
    with pytest.raises(ValueError, match="durable=True needs fsync"):
        Engine.from_dict(examples.policy("crm"), audit=audit.Audit(SyncedSink(fsync="never"), durable=True))
    with pytest.raises(ValueError, match="durable_timeout"):
        Options(durable=True, durable_timeout=0)


def test_every_builtin_sink_takes_the_durable_options():
    """durable and durable_timeout are keyword options of every built-in sink and of
    Audit(any_sink); the sinks that default to fsync="never" (console, HTTP) sync when
    durable=True is asked for."""
    sinks = [audit.JsonlSink("x.jsonl", durable=True, durable_timeout=3),
             audit.SqliteSink("x.db", durable=True, durable_timeout=3),
             audit.PostgresSink("postgresql://nobody@127.0.0.1:1/x", durable=True, durable_timeout=3),
             audit.HttpSink("http://127.0.0.1:1/audit", durable=True, durable_timeout=3),
             audit.ConsoleSink(durable=True, durable_timeout=3)]
    for sink in sinks:
        assert (sink.audit_options.durable, sink.audit_options.durable_timeout) == (True, 3)
        assert sink.audit_options.fsync == "batch"
    assert audit.HttpSink("http://127.0.0.1:1/audit").audit_options.fsync == "never"

    class Target:
        def emit(self, event) -> None:
            pass

    engine = Engine.from_dict(examples.policy("crm"), audit=audit.Audit(Target(), durable=True, durable_timeout=3))
    options = audit.recorder(engine).options
    assert (options.durable, options.durable_timeout) == (True, 3)
    engine.close()


def test_the_default_queue_bound_is_small():
    """What an unclean stop can lose without durable=True is bounded by max_queue (plus the
    batch in flight): the default is at most 10,000 events, not 100,000."""
    assert Options().max_queue <= 10_000


# ---------------------------------------------------------------- durable=True


def test_a_durable_decision_returns_only_once_its_event_is_synced():
    """With durable=True, every evaluate() returns after the sink's sync() covered its
    event: the returned decision's event is among the synced records, each time."""
    sink = SyncedSink(durable=True)
    with Engine.from_dict(examples.policy("crm"), audit=sink) as engine:
        for i in range(20):
            d = engine.evaluate(*ALLOWED, role="agent", principal=f"user:{i}")
            assert d.decision == "Allow"
            assert f"user:{i}" in sink.synced_principals()


def test_concurrent_durable_decisions_share_one_write_and_sync():
    """Group commit: while one batch's sync is held, seven more durable decisions from seven
    threads wait in the queue; once it is released they are sealed into one batch and made
    durable by one write and one sync, and every caller gets its Allow."""
    sink = SyncedSink(durable=True)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    sink.gate.clear()
    first, first_out = _in_thread(lambda: engine.evaluate(*ALLOWED, role="agent", principal="user:first"))
    wait_for(sink.syncing.is_set, "the first sync to be held")
    others = [_in_thread(lambda k=k: engine.evaluate(*ALLOWED, role="agent", principal=f"user:{k}"))
              for k in range(7)]
    wait_for(lambda: rec.stats["queued"] == 7, "the seven decisions to wait in the queue")
    sink.gate.set()
    for thread, out in [(first, first_out), *others]:
        thread.join(HANG_GUARD)
        assert not thread.is_alive() and out[0].decision == "Allow"
    engine.close()
    assert sink.batches == [1, 7]
    assert sink.synced_principals() == {"user:first", *(f"user:{k}" for k in range(7))}


def test_the_writer_does_not_linger_while_a_durable_decision_waits():
    """A batch normally lingers flush_interval seconds to fill; with an hour-long interval a
    durable decision still returns at once (within the hang guard), and so does the next."""
    sink = SyncedSink(durable=True, flush_interval=3600)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    for i in range(3):
        thread, out = _in_thread(lambda: engine.evaluate(*ALLOWED, role="agent", principal=f"user:{i}"))
        thread.join(HANG_GUARD)
        assert not thread.is_alive() and out[0].decision == "Allow"
    engine.close()


def test_a_decision_not_durable_in_time_is_denied():
    """When the sink does not make the event durable within durable_timeout, evaluate()
    returns a Deny saying the audit trail could not make the decision durable."""
    sink = SyncedSink(durable=True, durable_timeout=0.2)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    sink.gate.clear()
    d = engine.evaluate(*ALLOWED, role="agent")
    assert d.decision == "Deny"
    assert d.reason == ("the audit trail could not make the decision durable (not durable within 0.2 s); "
                        "denied (durable)")
    sink.gate.set()
    engine.close()


def test_a_failing_sink_under_deny_refuses_durable_decisions_at_once():
    """durable=True with on_failure="deny": while the sink fails, a durable decision is
    denied as soon as the failure is known, without waiting out durable_timeout (an hour:
    the hang guard would fail first), with the sink's error in the reason."""
    sink = SyncedSink(durable=True, on_failure="deny", durable_timeout=3600)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    sink.broken.set()
    for _ in range(3):
        thread, out = _in_thread(lambda: engine.evaluate(*ALLOWED, role="agent"))
        thread.join(HANG_GUARD)
        assert not thread.is_alive()
        assert out[0].decision == "Deny"
        assert "could not make the decision durable" in out[0].reason or "cannot record" in out[0].reason
        assert "No space left on device" in out[0].reason
    sink.broken.clear()
    wait_for(lambda: audit.recorder(engine).stats["failing"] is None, "recovery")
    assert engine.evaluate(*ALLOWED, role="agent").decision == "Allow"
    engine.close()


def test_a_spooled_event_counts_as_durable(tmp_path):
    """durable=True with on_failure="spool": while the sink fails, the event reaches the
    fsynced spool file, and that makes the decision durable: evaluate() returns the Allow."""
    spool = tmp_path / "spool.jsonl"
    sink = SyncedSink(durable=True, on_failure="spool", spool_path=str(spool), durable_timeout=3600)
    sink.broken.set()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    thread, out = _in_thread(lambda: engine.evaluate(*ALLOWED, role="agent", principal="user:spooled"))
    thread.join(HANG_GUARD)
    assert not thread.is_alive() and out[0].decision == "Allow"
    assert b'"principal":"user:spooled"' in spool.read_bytes()
    audit.recorder(engine).close(timeout=0.2)


def test_a_durable_approval_event_is_acknowledged_once_durable():
    """record_approval() with durable=True returns True once the approval event is synced,
    and False (the host must not act on it) when it cannot be made durable in time."""
    sink = SyncedSink(durable=True, durable_timeout=0.2)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    fields = dict(tool="view_customer", args={}, role="agent", principal="user:approver", decision="Allow",
                  reason="approved", rule=None, approvals_required=1,
                  approval={"method": "elicitation", "outcome": "approved", "required": 1})
    assert rec.record_approval(**fields)
    assert "user:approver" in sink.synced_principals()
    sink.gate.clear()
    assert not rec.record_approval(**fields)
    sink.gate.set()
    engine.close()


# ---------------------------------------------------------------- durable_mark / wait_durable


def test_durable_mark_covers_what_was_queued_and_wait_durable_waits_for_it():
    """durable_mark() right after evaluate() is at least the number of events queued so far
    (here exactly, with the writer asleep); wait_durable(mark) returns None once they are
    durable, and stats["durable"] has reached the mark."""
    sink = SyncedSink(flush_interval=3600)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    for i in range(5):
        engine.evaluate(*ALLOWED, role="agent", principal=f"user:{i}")
    mark = rec.durable_mark()
    assert mark == 5
    assert rec.wait_durable(mark, HANG_GUARD) is None
    assert rec.stats["durable"] >= mark and {f"user:{i}" for i in range(5)} <= sink.synced_principals()
    assert rec.wait_durable(mark, HANG_GUARD) is None  # already durable: at once
    engine.close()


def test_waiting_elsewhere_leaves_the_deciding_thread_free_and_groups_the_writes():
    """A host deciding on one thread and waiting for durability on others: while a sync is
    held, the deciding thread makes 20 decisions (it never waits), each waited for on a
    thread of its own; once released, all 20 are durable and they took at most two more
    syncs, not twenty."""
    sink = SyncedSink()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    sink.gate.clear()
    engine.evaluate(*ALLOWED, role="agent", principal="user:first")
    first = rec.durable_mark()
    waiter, _ = _in_thread(lambda: rec.wait_durable(first, HANG_GUARD))
    wait_for(sink.syncing.is_set, "the first sync to be held")
    waits = []
    for i in range(20):
        engine.evaluate(*ALLOWED, role="agent", principal=f"user:{i}")
        mark = rec.durable_mark()
        waits.append(_in_thread(lambda m=mark: rec.wait_durable(m, HANG_GUARD)))
    assert len(sink.batches) == 0  # all 20 decided while the first sync was held
    sink.gate.set()
    waiter.join(HANG_GUARD)
    for thread, out in waits:
        thread.join(HANG_GUARD)
        assert not thread.is_alive() and out == [None]
    engine.close()
    assert {f"user:{i}" for i in range(20)} <= sink.synced_principals()
    assert len(sink.batches) <= 3


def test_wait_durable_says_why_not(tmp_path):
    """wait_durable returns one line instead of None: the sink is failing under
    on_failure="deny" (at once), the timeout passed, or the recorder was closed first."""
    sink = SyncedSink(on_failure="deny", spool_path=str(tmp_path / "spool.jsonl"))
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    sink.broken.set()
    engine.evaluate(*ALLOWED, role="agent")
    mark = rec.durable_mark()
    assert rec.wait_durable(mark, HANG_GUARD) == \
        "the audit sink is failing (OSError: [Errno 28] No space left on device); on_failure=deny"
    rec.close(timeout=0.2)  # (the sink still fails: what is left goes to the spool)

    sink = SyncedSink()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    sink.gate.clear()
    engine.evaluate(*ALLOWED, role="agent")
    mark = rec.durable_mark()
    assert rec.wait_durable(mark, 0.05) == "not durable within 0.05 s"
    thread, out = _in_thread(lambda: rec.wait_durable(mark + 1, HANG_GUARD))  # an event that never comes
    rec.close(timeout=0.1)  # the sync is still held: close gives up on it
    thread.join(HANG_GUARD)
    assert out == ["the audit trail was closed before the event was durable"]
    sink.gate.set()


def test_deny_mode_refuses_the_very_next_decision_once_the_failure_is_seen():
    """on_failure="deny" (not durable): once the writer has seen the sink fail
    (stats["failing"] is set), the very next decision is a Deny, every time, round after
    round of failing and recovering."""
    sink = SyncedSink(on_failure="deny")
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    for _ in range(10):
        sink.broken.set()
        engine.evaluate(*ALLOWED, role="agent")  # its write fails
        wait_for(lambda: rec.stats["failing"] is not None, "the failure to be seen")
        d = engine.evaluate(*ALLOWED, role="agent")
        assert d.decision == "Deny"
        assert d.reason.startswith("the audit trail cannot record decisions (OSError: ")
        sink.broken.clear()
        wait_for(lambda: rec.stats["failing"] is None, "recovery")
    engine.close()
