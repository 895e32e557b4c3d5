"""The recorder the engine calls after every decision (see Engine's docstring).

record() is the hot path: it appends one tuple to a deque and returns. Everything else,
parsing the request bytes back, the reason, masks, canonical JSON, the hash chain and the
I/O, happens on the writer thread. The slow path is taken only when the queue is full,
the sink is failing under on_failure="deny", the recorder is closed, or durable=True (each
decision then waits until its event is durable: audit.durability).

A host that must not act on a decision before its event is durable, without blocking the
thread that decides (the MCP proxy), takes durable_mark() right after evaluate() returned
and later calls wait_durable(mark, timeout) where it can wait; concurrent decisions then
share one write and sync (group commit)."""

from __future__ import annotations

import atexit
import logging
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Callable, Optional

from ..decision import Decision
from .builder import Builder, QueueItem
from .burst import DenyBursts
from .options import Options
from .shadow import Shadow
from .sinks import Sink, resolve
from .writer import APPROVAL_MARK, ERROR_MARK, POLICY_MARK, Writer

if TYPE_CHECKING:
    from ..decision import Request

log = logging.getLogger("callgate.audit")
_time_ns = time.time_ns
_CLOSE_TIMEOUT = 5.0


def _item(decision: Decision, request: Request, principal: Optional[str], trace_id: Optional[str],
          extras: Any) -> QueueItem:
    """A decision's queue item: (rc, request, principal, trace_id, extras, source, t_ns), where
    source is the policy state that decided (the reason is computed from it and the request
    on the writer thread) or the reason itself when already known. Of its fields only the
    state is an object the cyclic collector tracks (the request tuple is untracked at the
    collector's first pass), so a waiting event costs the collector one object, the item.
    Holding the Decision cost three, and waiting events lived long enough to reach the
    oldest generation, whose full passes took a fifth of a JSONL throughput run."""
    why = decision._why
    return (decision._rc, request, principal, trace_id, extras, why[0] if type(why) is tuple else why, _time_ns())


def _denial(reason: str) -> Decision:
    return Decision("Deny", None, reason)  # a Decision whose why is already its reason


class Recorder:
    """What an engine hands every decision to when it has an audit trail or a shadow policy
    (see Engine's docstring): queues it for the writer thread, applying on_failure and
    durable; `stats` counts what happened."""

    def __init__(self, engine: Any, sink: Optional[Sink], shadow: Optional[Shadow]) -> None:
        self.sink = sink
        self.options = sink.audit_options if sink is not None else Options()
        self.shadow = shadow
        self.bursts = DenyBursts()
        # a shadow compares whole events: then every event is built as a dict (in Python)
        self.writer = Writer(sink, Builder(engine, self.options), self.options,
                             self._observe if shadow is not None else None, core_events=shadow is None)
        self.writer.on_state = self._state_changed
        self.writer.after_batch = self._after_batch
        self._q = self.writer.queue
        self._limit = self.options.max_queue
        self._deny_mode = self.options.on_failure == "deny"
        self._durable = self.options.durable
        self._durability = self.writer.durability
        self._state_lock = threading.Lock()  # _slow against the writer's failing state
        self.writer.set_failing = self._set_failing
        self._slow = self._durable  # one attribute test on the hot path covers every special case
        self._closed = False
        self._room = threading.Condition()
        self.writer.start()
        ref = weakref.ref(self)
        # (the lambda's value is never used: atexit only calls it)
        self._atexit = lambda: (r := ref()) is not None and r.close()  # type: ignore[func-returns-value]
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ hot path

    def record(self, decision: Decision, request: Request, principal: Optional[str], trace_id: Optional[str],
               extras: Any) -> Decision:
        """Queue a decision's event (the hot path); returns the decision, or a Deny when it
        cannot be recorded: closed, not running, failing under on_failure="deny", or (durable)
        not made durable in time."""
        if self._slow:
            return self._record_slow(decision, request, principal, trace_id, extras)
        q = self._q
        # _item written out (a call costs ~50 ns here): the result code and the policy state
        # that decided, taken now (even if the host reads the reason, which replaces the
        # decision's why, or reloads before the writer gets here), not the Decision
        why = decision._why
        q.append((decision._rc, request, principal, trace_id, extras,
                  why[0] if type(why) is tuple else why, _time_ns()))
        if len(q) >= self._limit:
            self._slow = True
            self.writer.wake.set()
        return decision

    def record_error(self, error: Exception, request: Request, principal: Optional[str], trace_id: Optional[str],
                     extras: Any) -> None:
        """Queue the event of a request the engine refused (a Deny with the error as reason)."""
        item = (ERROR_MARK, error, request, principal, trace_id, extras, _time_ns())
        if self._closed:
            return
        if len(self._q) >= self._limit and not self._wait_for_room():
            self.writer.count_lost(item[-1])
            return
        self._q.append(item)

    def record_approval(self, *, tool: Optional[str], args: Any, role: Optional[str], principal: Optional[str],
                        decision: str, reason: str, rule: Optional[int], approvals_required: int,
                        approval: dict[str, Any], trace_id: Optional[str] = None, agent_attributes: Any = None,
                        resource_attributes: Any = None, extras: Any = None) -> bool:
        """Record what followed an Elevate (an "approval" event, linked by trace_id to the
        decision's): the final decision ("Allow" when approval was obtained) and `approval`
        (method, outcome, required, approved_by). Not the hot path: it waits for room like
        a decision under back-pressure. False when it cannot be recorded (closed, not
        running, or failing under on_failure="deny"): the host must then not act on it."""
        if self._closed:
            return False
        if self._deny_mode and self.writer.failing is not None:
            return False
        fields = {"tool": tool, "args": args, "role": role, "principal": principal, "decision": decision,
                  "reason": reason, "rule": rule, "approvals_required": approvals_required, "approval": approval,
                  "trace_id": trace_id, "agent_attributes": agent_attributes,
                  "resource_attributes": resource_attributes, "extras": extras}
        t_ns = _time_ns()
        if len(self._q) >= self._limit:
            if self._deny_mode or not self._wait_for_room():
                self.writer.count_lost(t_ns)
                return False
        self._q.append((APPROVAL_MARK, fields, t_ns))
        self.writer.wake.set()
        if self._durable:  # the host acts on it: only once it is durable
            return self.wait_durable(self.durable_mark(), self.options.durable_timeout) is None
        return True

    def record_policy_change(self, *, outcome: str, old_digest: Optional[str], new_digest: Optional[str],
                             source: str, reason: str) -> bool:
        """Record a policy reload: "loaded" (the new policy decides from now on) or
        "refused" (it did not compile; the old one stays in force), with both digests. Not
        the hot path; False when it cannot be recorded."""
        if self._closed:
            return False
        fields = {"outcome": outcome, "old_digest": old_digest, "new_digest": new_digest, "source": source,
                  "reason": reason}
        t_ns = _time_ns()
        if len(self._q) >= self._limit and not self._wait_for_room():
            self.writer.count_lost(t_ns)
            return False
        self._q.append((POLICY_MARK, fields, t_ns))
        self.writer.wake.set()
        return True

    # ------------------------------------------------------------------ durability

    def durable_mark(self) -> int:
        """A position >= that of every event queued so far (call it right after evaluate()
        returned: it covers that decision; it may also cover a few events other threads
        queued meanwhile). Costs two reads; nothing is counted on the hot path."""
        waiting = len(self._q)  # first the queue, then what the writer took (audit.durability)
        return self._durability.claimed + waiting

    def wait_durable(self, mark: int, timeout: float) -> Optional[str]:
        """Block until every event up to `mark` (from durable_mark()) is durable: written and
        synced per the fsync option (with fsync="never": handed to the OS), or in the fsynced
        spool. None when it is; otherwise, without waiting any longer, one line saying why it
        is not: the sink is failing under on_failure="deny", `timeout` seconds passed, the
        writer is not running, or the recorder was closed first."""
        return self._durability.wait(mark, timeout, self._not_durable, self.writer.wake.set)

    def _not_durable(self) -> Optional[str]:
        """Why waiting longer for durability is pointless (None: it may still come)."""
        w = self.writer
        if self._deny_mode and w.failing is not None:
            return f"the audit sink is failing ({w.failing}); on_failure=deny"
        if w.ended:
            return "the audit trail was closed before the event was durable"
        if not w.thread.is_alive() and not self._closed:
            return "the audit writer is not running"
        return None

    # ------------------------------------------------------------------ slow path

    def _record_slow(self, decision: Decision, request: Request, principal: Optional[str], trace_id: Optional[str],
                     extras: Any) -> Decision:
        if self._closed:
            # after close() nothing can be recorded: fail closed rather than act unrecorded
            return _denial("the audit trail is closed: decisions cannot be recorded")
        if self._deny_mode:
            failing = self.writer.failing
            if failing is not None:
                decision = _denial(f"the audit trail cannot record decisions ({failing}); denied (on_failure=deny)")
            if len(self._q) >= self._limit:
                self.writer.count_lost(_time_ns())
                self._update_slow()
                return _denial("the audit trail cannot keep up; denied (on_failure=deny)")
        elif len(self._q) >= self._limit and not self._wait_for_room():
            return _denial("the audit trail is not running: decisions cannot be recorded")
        self._q.append(_item(decision, request, principal, trace_id, extras))
        if self._durable:
            why = self.wait_durable(self.durable_mark(), self.options.durable_timeout)
            if why is not None:
                return _denial(f"the audit trail could not make the decision durable ({why}); denied (durable)")
            return decision
        self._update_slow()
        return decision

    def _wait_for_room(self) -> bool:
        """Back-pressure (on_failure block/spool): wait until the writer makes room."""
        while len(self._q) >= self._limit:
            if self._closed or not self.writer.thread.is_alive():  # nobody will ever make room
                return False
            self.writer.wake.set()
            with self._room:
                self._room.wait(0.01)
        return True

    def _update_slow(self) -> None:
        with self._state_lock:
            self._slow = self._durable or self._closed or len(self._q) >= self._limit \
                or (self._deny_mode and self.writer.failing is not None)

    def _set_failing(self, message: Optional[str]) -> None:
        """The writer's failing state, set so that under on_failure="deny" the hot path takes
        the slow path no later than the failure can be seen: the very next decision after it
        is observed (stats["failing"]) is denied."""
        with self._state_lock:
            if message is not None and self._deny_mode:
                self._slow = True
            self.writer.failing = message

    def _state_changed(self) -> None:
        self._update_slow()
        with self._room:
            self._room.notify_all()

    # ------------------------------------------------------------------ writer-thread hooks

    def _observe(self, item: QueueItem, event: dict[str, Any]) -> None:
        if self.shadow is not None and event.get("kind") == "decision" and item[0] is not ERROR_MARK \
                and item[0] is not APPROVAL_MARK and item[0] is not POLICY_MARK:
            self.shadow.check(item[1], event)
        if self.bursts.watches:
            self.bursts.observe(event, item[-1])

    def _after_batch(self) -> None:
        if self._slow and len(self._q) < self._limit:
            self._state_changed()  # room again: release callers waiting under back-pressure

    # ------------------------------------------------------------------ control

    def on_deny_burst(self, callback: Callable[[Any], Any], threshold: int = 20, window_s: float = 60.0,
                      key: str = "principal") -> None:
        """Call `callback(BurstAlert)` once per principal per window when its denials exceed
        threshold; `key` "user" / "actor": per principal chain user / actor instead."""
        self.bursts.add(callback, threshold, window_s, key)
        self.writer.observe = self._observe

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every decision so far is durable in the sink (or the spool)."""
        return self.writer.flush(timeout)

    def close(self, timeout: float = _CLOSE_TIMEOUT) -> None:
        """Stop taking decisions (later ones are denied) and flush, waiting up to `timeout` for
        a failing sink; what cannot be written goes to the spool (Writer.close)."""
        if self._closed:
            return
        self._closed = True
        self._slow = True
        with self._room:
            self._room.notify_all()
        self.writer.close(timeout)
        atexit.unregister(self._atexit)

    @property
    def stats(self) -> dict[str, Any]:
        """Counts: queued, written, spooled, errors, failing (the sink's error, or None),
        lost_pending, claimed, durable; and the shadow's, with one."""
        w = self.writer
        d = self._durability
        out: dict[str, Any] = {"queued": len(self._q), "written": w.written, "spooled": w.spooled, "errors": w.errors,
               "failing": w.failing, "lost_pending": w.lost, "claimed": d.claimed, "durable": d.durable_items}
        if self.shadow is not None:
            out["shadow"] = {"evaluated": self.shadow.evaluated, "disagreements": self.shadow.disagreements}
        return out


def attach(engine: Any, audit: Any = None, shadow: Any = None) -> Recorder:
    """What Engine(audit=..., shadow=...) calls: the recorder for this engine."""
    sink = None if audit is None else resolve(audit)
    candidate = None if shadow is None else Shadow(shadow, engine.semantics, type(engine))
    return Recorder(engine, sink, candidate)


def recorder(engine: Any) -> Optional[Recorder]:
    """The recorder attached to an engine (for flush() and stats), or None."""
    return getattr(engine, "_recorder", None)
