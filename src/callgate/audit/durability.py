"""Which queued events are durable: the bookkeeping behind durable=True and
Recorder.durable_mark() / wait_durable().

Positions count queue items (decisions, refused requests, approval events) in the order
they were queued, from 1. The hot path counts nothing: the writer counts what it takes off
the queue (`claimed`, raised BEFORE it pops n items, so that claimed + len(queue), read in
that order, len(queue) first, is never below the number of items queued so far), and what
it makes durable. Records reach the sink (or the spool) in the order they were sealed, one
batch at a time, so "the first k records sealed are durable" is one number; each sealed
batch notes how many items had been claimed once it was sealed, which turns a count of
durable records into a count of durable items. Records that are not items (gap records,
writer markers, genesis records) are counted as records only.

Waiters sleep on a Condition, notified when the durable count moves and when the writer's
state changes (the sink fails or recovers, the writer ends)."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable, Deque, Optional, Tuple


class Durability:
    """Counts which queued items are durable and lets callers wait for that (module docstring)."""

    def __init__(self) -> None:
        self.claimed = 0  # items taken off the queue by the writer (raised before they are popped)
        self.durable_items = 0  # the first durable_items items ever queued are durable
        self.sealed_records = 0
        self.durable_records = 0
        self._marks: Deque[Tuple[int, int]] = deque()  # (sealed_records, claimed) at the end of each batch
        self.cond = threading.Condition()
        self.waiters = 0  # callers waiting (the writer does not linger for a batch to fill while any wait)

    # ------------------------------------------------------------ writer side

    def sealed(self, records: int) -> None:
        """A batch of `records` records was sealed, holding every item claimed so far."""
        with self.cond:
            self.sealed_records += records
            self._marks.append((self.sealed_records, self.claimed))
        if records == 0:  # nothing to write (no sink, or an empty step): its items are done
            self.made_durable(0)

    def made_durable(self, records: int) -> None:
        """The next `records` sealed records are durable (written and synced, or spooled)."""
        with self.cond:
            self.durable_records += records
            moved = False
            while self._marks and self._marks[0][0] <= self.durable_records:
                items = self._marks.popleft()[1]
                if items > self.durable_items:
                    self.durable_items = items
                    moved = True
            if moved and self.waiters:
                self.cond.notify_all()

    def poke(self) -> None:
        """The writer's state changed (failing, recovered, ended): waiters look again."""
        with self.cond:
            self.cond.notify_all()

    # ------------------------------------------------------------ callers

    def wait(self, mark: int, timeout: float, why_not: Callable[[], Optional[str]],
             started: Callable[[], None]) -> Optional[str]:
        """Block until items up to `mark` are durable: None, or why they are not (why_not()'s
        answer, asked whenever the state changes, or a timeout). `started()` is called once
        this caller counts as waiting (it wakes the writer)."""
        if self.durable_items >= mark:
            return None
        deadline = time.monotonic() + timeout
        with self.cond:
            self.waiters += 1
            try:
                started()
                while self.durable_items < mark:
                    why = why_not()
                    if why is not None:
                        return why
                    left = deadline - time.monotonic()
                    if left <= 0:
                        return f"not durable within {timeout:g} s"
                    self.cond.wait(left)
            finally:
                self.waiters -= 1
        return None
