"""The writer thread: takes what the hot path enqueued, builds and seals events, and hands
batches to the sink, applying the durability and failure policies.

Sealed records are never rebuilt: a batch that failed is retried as is (same sequence
numbers and hashes), so the chain stays intact however often the sink fails. With
fsync "batch" or "never" a batch is written by the courier (audit.courier) while the next
one is sealed; its outcome is taken before anything else reaches the sink.

A writer starts its chain's segment with a start marker and ends it, when it stops
cleanly, with a stop marker (audit.markers; for the sinks that keep a log verify reads); a
chain it starts begins with a signed genesis record when it has a writer key
(audit.genesis). What is durable is counted in audit.durability, for durable=True and the
recorder's wait_durable()."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from typing import Any, Callable, List, Optional, Sequence, Union

from ..decision import DECISIONS
from .builder import Builder, QueueItem
from .chain import ChainHead
from .courier import Courier
from .durability import Durability
from .genesis import genesis_event
from .markers import START, STOP, writer_event
from .options import Options
from .records import Batch, Record
from .sealer import Sealer
from .sinks import Sink
from .spool import Spool

log = logging.getLogger("callgate.audit")
_MAX_BACKOFF = 1.0


class Writer:
    """The audit writer thread and its queue: builds and seals what the recorder queued and
    writes it to the sink, applying fsync, on_failure and durability (module docstring)."""

    def __init__(self, sink: Optional[Sink], builder: Builder, options: Options,
                 observe: Optional[Callable[[QueueItem, dict[str, Any]], None]], core_events: bool = True) -> None:
        self.sink = sink
        self.builder = builder
        self.options = options
        self.observe = observe  # shadow and burst checks, before sealing (None: nothing to check)
        self.after_batch: Callable[[], None] = lambda: None  # lets the recorder make room for waiting callers
        self.queue: deque[QueueItem] = deque()
        self.wake = threading.Event()
        self.idle = threading.Condition()
        self.head: Optional[ChainHead] = None
        self.failing: Optional[str] = None  # the sink's last error while it is failing
        self.written = 0  # records durable in the sink
        self.spooled = 0  # records durable in the local spool
        self.errors = 0
        self.lost = 0  # counted by the hot path (deny mode, no room); written as gap records
        self.lost_lock = threading.Lock()
        self._lost_span = (0, 0)
        self.unwritten: Sequence[Record] = []   # a sealed Batch, or records kept for a retry
        self.leading: List[dict[str, Any]] = []  # genesis and marker events, sealed ahead of the next items
        self.durability = Durability()
        self.ended = False  # close() is done: nothing more will become durable
        # the sinks whose logs verify reads carry writer markers (an emit() target does not)
        self.markers = sink is not None and sink.writer_markers
        self._started = False  # a start marker was queued for the current chain segment
        self._stop_queued = False
        self.stopping = False  # close() asked: finish what is queued
        self.stopping_hard = False  # close() gave up on a sink that makes no progress
        self.busy = False
        self._delay = options.retry_interval
        self.on_state: Callable[[], None] = lambda: None  # tells the recorder the failing state changed
        # how `failing` is set: the recorder replaces it so that under on_failure="deny" its
        # slow path is armed before the failure can be seen (no decision passes in between)
        self.set_failing: Callable[[Optional[str]], None] = self._store_failing
        self.spool = Spool(sink.spool_path()) if sink is not None else None
        self.courier = Courier(self._send)
        # a sink that allows it is written by the courier, beside the sealing of the next batch
        self.write_aside = sink is not None and sink.concurrent_writes and options.fsync != "always"
        # decision events built by the core (audit.sealer) unless something needs every event as a dict
        self.sealer = Sealer(builder, self._python_event, use_core=core_events)
        self.thread = threading.Thread(target=self._run, name="callgate-audit-writer", daemon=True)

    # ------------------------------------------------------------ hot-path side

    def count_lost(self, t_ns: int) -> None:
        """An event that could not be queued: counted, and later written as a gap record."""
        with self.lost_lock:
            first = self._lost_span[0] if self.lost else t_ns
            self.lost += 1
            self._lost_span = (first, t_ns)

    # ------------------------------------------------------------ thread

    def start(self) -> None:
        """Start the writer thread."""
        self.thread.start()

    def _run(self) -> None:
        try:
            if not self._open():
                return
            while not self.stopping_hard:
                if not self.queue and not self.unwritten and not self.lost and not self.leading \
                        and not self._spool_due():
                    if self.courier.busy():  # the last batch's outcome before idling or leaving
                        self._settle()
                        continue
                    if self.stopping:
                        # close() may have come between the test above and this one, after a
                        # last decision was queued: look again before leaving
                        if self.queue or self.unwritten or self.lost:
                            continue
                        if self._stop_owed():  # everything is written: the stop marker goes last
                            continue
                        return
                    with self.idle:
                        self.busy = False
                        self.idle.notify_all()
                    self.wake.wait(self.options.flush_interval)
                    self.wake.clear()
                    continue
                self.busy = True
                self._step()
                if len(self.queue) < self.options.batch_size and not self.stopping and not self.unwritten \
                        and not self.durability.waiters:
                    # linger: let a batch gather rather than take the GIL for every few events
                    # (each hand-over costs the deciding threads more than the batching delay);
                    # not while a caller waits for durability: it would wait the linger out
                    self.wake.wait(self.options.flush_interval)
                    self.wake.clear()
        except BaseException:  # a bug here must not lose what is queued: keep it for close()
            log.exception("callgate audit writer stopped")
        finally:
            self._settle_last()
            with self.idle:
                self.busy = False
                self.idle.notify_all()
            self.durability.poke()  # nobody makes anything durable from here: waiters look again

    def _open(self) -> bool:
        """Open the sink and find where its chain stands. Retried until it works: records are
        only sealed once the chain's head is known (sealing onto a guessed head would fork
        it). False if the recorder was closed first."""
        if self.sink is None:
            return True
        chain = self.sink.chain
        while True:
            try:
                last = self.sink.open(chain)
                break
            except Exception as exc:
                self._fail(exc)
                if self.stopping_hard:
                    return False
                self._backoff()
        self._recovered()
        if self.spool is not None:
            spooled = self.spool.last(chain)
            if spooled is not None and (last is None or spooled[0] > last[0]):
                last = spooled  # the sink is behind the spool: continue after the spooled records
        self.head = ChainHead(chain, last)
        self._chain_started(last is None, self.sink.start_details())
        return True

    def _chain_started(self, new: bool, details: dict[str, Any]) -> None:
        """Queue what opens this writer's part of the chain: the signed genesis record of a
        new chain (with a writer key), then the start marker (for sinks that keep markers)."""
        build = self.builder
        if new and self.options.signing_key is not None:
            # (self.head is set before a chain is started)
            self.leading.append(genesis_event(self.head.chain, self.options.signing_key, build.ids.next(),  # type: ignore[union-attr]
                                              build.clock.format(time.time_ns())))
        if self.markers:
            self.leading.append(writer_event(START, build.ids.next(), build.clock.format(time.time_ns()), details))
            self._started = True

    def _stop_owed(self) -> bool:
        """Queue the stop marker, once, if this writer wrote a start marker: True if queued."""
        if not self._started or self._stop_queued or self.head is None:
            return False
        self._stop_queued = True
        build = self.builder
        self.leading.append(writer_event(STOP, build.ids.next(), build.clock.format(time.time_ns())))
        return True

    def _spool_due(self) -> bool:
        return self.spool is not None and self.sink is not None and not self.stopping_hard and self.spool.pending()

    def _step(self) -> None:
        if self.failing is not None or self.durability.waiters:
            # no sealing ahead while the sink fails: what waits stays in the queue, where
            # on_failure (back-pressure, deny) applies. Nor while callers wait for
            # durability (group commit): sealed behind the batch in flight, the next batch
            # would hold only what was queued so far, and whatever comes while the batch in
            # flight is synced would wait for a third sync; sealed once it is done, it takes
            # all of that and shares one write and sync
            self._settle()
        records: Sequence[Record]
        if self.unwritten:
            records, self.unwritten = self.unwritten, []
        else:
            records = self._build_batch()  # sealed while the batch before is in flight
            self.after_batch()
        if self.sink is None:
            return
        try:
            self._settle()
        except BaseException:  # keep what was sealed ahead too (behind the batch in flight)
            self.unwritten = [*self.unwritten, *records]
            raise
        if self.unwritten:  # the batch in flight failed and waits for a retry: these go behind it
            self.unwritten = [*self.unwritten, *records]
            return
        if self.spool is not None and self.spool.pending() and not self._resend():
            if self.options.on_failure == "spool":
                if records:
                    self._to_spool(records)  # keep the order: behind what is already spooled
            else:
                self.unwritten = records
            self._backoff()
            return
        if records:
            self._deliver(records)

    def _build_batch(self) -> Union[Batch, List[Record]]:
        leading, self.leading = self.leading, []  # genesis and markers, then a gap record, go first
        if self.lost:
            with self.lost_lock:
                lost, (first, last), self.lost = self.lost, self._lost_span, 0
            why = self.failing or "the queue was full"
            leading.append(self.builder.gap(lost, f"{lost} decisions could not be recorded: {why}", first, last))
        q = self.queue
        observe = self.observe
        n = min(len(q), self.options.batch_size)
        durability = self.durability
        durability.claimed += n  # before the pops: claimed + len(queue) never undercounts (audit.durability)
        items = [q.popleft() for _ in range(n)]
        if self.head is None:  # no sink (shadow or alerts only): build and observe, nothing to chain
            for item in items:
                event = self._build(item)
                if observe is not None:
                    observe(item, event)
            durability.sealed(0)
            return []
        try:
            batch = self.sealer.seal(items, self.head, leading, observe)
        except Exception:  # a bug in the core's path must not lose these: the Python builder seals them
            log.exception("callgate audit: sealing with the core failed; building this batch in Python")
            batch = self.sealer.seal(items, self.head, leading, observe, core=False)
        durability.sealed(len(batch))
        return batch

    def _python_event(self, item: QueueItem) -> dict[str, Any]:
        """An item's event from the Python builder (what the core does not build)."""
        if type(item[0]) is not _ERROR:
            try:
                return self.builder.decision(*item)
            except Exception:
                pass
        return self._build(item)

    def _build(self, item: QueueItem) -> dict[str, Any]:
        build = self.builder
        try:
            if type(item[0]) is not _ERROR:
                return build.decision(*item)
            if item[0] is APPROVAL_MARK:
                return build.approval(item[1], item[-1])
            if item[0] is POLICY_MARK:
                return build.policy_change(item[1], item[-1])
            return build.error(*item[1:])
        except Exception as exc:  # never drop: record what we know and why the rest is missing
            return {"kind": "decision", "id": build.ids.next(), "timestamp": build.clock.format(item[-1]),
                    "decision": DECISIONS[item[0] & 3] if type(item[0]) is int else "Deny",
                    "reason": f"event could not be built: {exc!r}"}

    def _deliver(self, records: Sequence[Record]) -> None:
        # While callers wait for durability the batch is written here, not by the courier:
        # nothing is sealed ahead of it then (_step), so the courier would overlap nothing
        # and only add a hand-over to the wait (~100 us a decision, measured with a no-op sink)
        waiting = self.durability.waiters
        if self.write_aside and not waiting:
            self.courier.start(records)  # its outcome is taken at the next step, or before idling
            return
        sink: Sink = self.sink  # type: ignore[assignment]  # (_step returned first when there is no sink)
        done = 0
        try:
            if self.options.fsync == "always":  # record by record, each durable before the next
                for r in records:
                    sink.write([r])
                    sink.sync()
                    done += 1
                    self.written += 1
                    self.durability.made_durable(1)
            else:
                self._send(records)
                self.written += len(records)
        except Exception as exc:
            self._failed(records[done:], exc)  # with fsync="always" the ones before are durable already
            return
        self._recovered()
        if waiting:
            # group commit: let the callers just released have the GIL first, so that those
            # that decide again are queued before the next batch is sealed (with 4 callers
            # that made batches of 3.2 rather than 2.0 and cut the wait by a fifth)
            time.sleep(0)

    def _send(self, records: Sequence[Record]) -> None:
        """The courier's work: one batch written, and synced if fsync is "batch". Callers
        waiting for durability are told from here, not when the writer next takes the outcome."""
        # (self.sink: only a writer with a sink delivers)
        self.sink.write(records)  # type: ignore[union-attr]
        if self.options.fsync == "batch":
            self.sink.sync()  # type: ignore[union-attr]
        self.durability.made_durable(len(records))

    def _settle(self) -> None:
        """Take the outcome of the batch in flight, if there is one."""
        if not self.courier.busy():
            return
        records, exc = self.courier.outcome()
        if exc is None:
            self.written += len(records)
            self._recovered()
        elif isinstance(exc, Exception):
            self._failed(records, exc)
        else:  # not a sink failure (the interpreter is going down): keep the batch for close()
            self.unwritten = [*records, *self.unwritten]
            raise exc

    def _settle_last(self) -> None:
        """The writer is stopping: a batch in flight still counts, or (failed) is kept for
        close() like any other; then the courier's thread ends."""
        try:
            self._settle()
        except BaseException:  # not a sink failure: the batch is in unwritten, for close()
            log.exception("callgate audit: the last batch in flight did not complete")
        self.courier.stop()

    def _failed(self, records: Sequence[Record], exc: Exception) -> None:
        self._fail(exc)
        if self.options.on_failure == "spool":
            self._to_spool(records)
        else:
            self.unwritten = records  # retried as sealed, after a pause
            self._backoff()

    def _resend(self) -> bool:
        """Resend the spool, oldest first; False while the sink still fails."""
        # (self.spool and self.sink: a spool is pending only with both, see _spool_due)
        try:
            for batch, offset in self.spool.batches(self.options.batch_size):  # type: ignore[union-attr]
                self.sink.write(batch)  # type: ignore[union-attr]
                if self.options.fsync != "never":
                    self.sink.sync()  # type: ignore[union-attr]
                self.spool.done(offset)  # type: ignore[union-attr]
                self.written += len(batch)
        except Exception as exc:
            self._fail(exc)
            return False
        self._recovered()
        return True

    def _to_spool(self, records: Sequence[Record]) -> None:
        try:
            self.spool.append(records)  # type: ignore[union-attr]  # (only a writer with a sink, hence a spool, gets here)
            self.spooled += len(records)
            self.durability.made_durable(len(records))  # the spool is fsynced
        except Exception as exc:  # the spool fails too: keep them and retry both
            self._fail(exc)
            self.unwritten = records
            self._backoff()

    def _store_failing(self, message: Optional[str]) -> None:
        self.failing = message

    def _fail(self, exc: Exception) -> None:
        self.errors += 1
        message = f"{type(exc).__name__}: {exc}"
        if self.failing is None:
            log.error("callgate audit sink failing: %s", message)
        self.set_failing(message)
        self.on_state()
        self.durability.poke()
        self._delay = min(self._delay * 2, _MAX_BACKOFF)

    def _recovered(self) -> None:
        if self.failing is not None:
            log.warning("callgate audit sink recovered")
            self.set_failing(None)
            self._delay = self.options.retry_interval
            self.on_state()
            self.durability.poke()

    def _backoff(self) -> None:
        if not self.stopping:
            # the whole delay, unless close() comes: callers that wait for durability (or
            # for room) wake the writer each time one starts waiting, and a failing sink
            # must not be retried that often
            deadline = time.monotonic() + self._delay
            while not self.stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.wake.wait(left)
                self.wake.clear()
        elif not self.stopping_hard:
            time.sleep(self.options.retry_interval)

    # ------------------------------------------------------------ flush and close

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until everything queued so far is written (or spooled); False on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.wake.set()
        with self.idle:
            # spooled records count as written while the sink fails; once it is back, wait for the resend
            while self.busy or self.queue or self.unwritten or self.lost or self.leading \
                    or (self.failing is None and self._spool_due()):
                if not self.thread.is_alive():
                    return False
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self.wake.set()
                self.idle.wait(0.05 if left is None else min(left, 0.05))
        return True

    def close(self, timeout: float) -> None:
        """Flush, waiting up to `timeout` for a failing sink; what still cannot be written is
        put in the spool file and reported (never dropped silently)."""
        try:
            self._close(timeout)
        finally:
            self.ended = True
            self.durability.poke()

    def _close(self, timeout: float) -> None:
        self.stopping = True
        self.wake.set()
        # a healthy sink gets all the time it needs; a sink that makes no progress for
        # `timeout` seconds is given up on (and what is left goes to the spool)
        progress, idle_since = None, time.monotonic()
        while self.thread.is_alive():
            self.thread.join(0.05)
            now = (self.written, self.spooled, len(self.queue))
            if now != progress:
                progress, idle_since = now, time.monotonic()
            elif time.monotonic() - idle_since > timeout:
                break
        if self.thread.is_alive():
            self.stopping_hard = True
            self.wake.set()
            self.thread.join(timeout)
        if self.thread.is_alive():  # stuck inside the sink: do not touch its chain from here
            log.error("callgate audit: the writer is stuck in the sink (%s); at least %d decisions are not recorded",
                      self.failing, len(self.queue) + len(self.unwritten) + self.courier.carrying())
            return
        if self.unwritten or self.queue or self.lost or self.leading:
            self._rescue()
        if self.sink is not None:
            try:
                self.sink.close()
            except Exception:
                log.exception("closing the audit sink failed")

    def _rescue(self) -> None:
        """The writer gave up (the sink kept failing): seal what is left and spool it."""
        if self.sink is None or self.spool is None:
            return
        if self.head is None:
            # the sink never opened, so its chain's head is unknown: start a chain of our own
            # rather than guess (a guessed head would fork the sink's chain)
            self.head = ChainHead(f"{self.sink.chain}~{uuid.uuid4().hex[:12]}")
            self._chain_started(True, {})
        records = list(self.unwritten)
        self.unwritten = []
        while self.queue or self.lost or self.leading:
            records.extend(self._build_batch())
        if self._stop_owed():  # all of it is in the spool: this writer stopped without losing any
            records.extend(self._build_batch())
        if records:
            self.spool.append(records)
            self.spooled += len(records)
            self.durability.made_durable(len(records))
            log.error("callgate audit: %d records could not reach the sink (%s); they are in %s and are resent "
                      "when a writer with this spool starts", len(records), self.failing, self.spool.path)


class _Error:
    """Marks an enqueued item that is not a decision: a refused request (RequestError,
    ERROR_MARK), what followed an Elevate (APPROVAL_MARK) or a policy reload (POLICY_MARK)."""

    __slots__ = ()


_ERROR = _Error
ERROR_MARK = _Error()
APPROVAL_MARK = _Error()
POLICY_MARK = _Error()   # a policy reload, loaded or refused (Recorder.record_policy_change)
