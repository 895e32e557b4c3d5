"""The courier: carries one sealed batch to the sink on a thread of its own, so the writer
seals the next batch while this one is written and synced.

The sink's slow parts release the GIL (a file write and fsync, SQLite's one statement per
batch, an HTTP request), so the two overlap on two cores. One batch at a time: the writer
takes each outcome before it hands over the next, which keeps batches in chain order and
leaves every decision about failures (retry, spool) to the writer."""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional, Tuple


class Courier:
    """Carries one batch at a time to `send` on a thread of its own (module docstring)."""

    def __init__(self, send: Callable[[Any], None]) -> None:
        self._send = send
        self._cond = threading.Condition()
        self._job: Optional[Any] = None  # the batch to send
        self._outcome: Optional[Tuple[Any, Optional[BaseException]]] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = False

    def busy(self) -> bool:
        """A batch was handed over and its outcome not yet taken."""
        with self._cond:
            return self._job is not None or self._outcome is not None

    def carrying(self) -> int:
        """How many records are being written (0: none)."""
        with self._cond:
            return len(self._job) if self._job is not None else 0

    def start(self, batch: Any) -> None:
        """Hand over a batch to send; RuntimeError if the last one's outcome was not taken."""
        with self._cond:
            if self._job is not None or self._outcome is not None:
                raise RuntimeError("the courier carries one batch at a time")
            self._job = batch
            if self._thread is None:
                # a daemon: a sink stuck forever must not keep the interpreter from exiting
                self._thread = threading.Thread(target=self._run, name="callgate-audit-io", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def outcome(self) -> Tuple[Any, Optional[BaseException]]:
        """Wait for the batch in flight: (batch, None) once it is written (and synced, as
        `send` does), or (batch, the exception that stopped it)."""
        with self._cond:
            while self._outcome is None:
                if self._job is None:
                    raise RuntimeError("no batch in flight")
                self._cond.wait()
            outcome, self._outcome = self._outcome, None
            return outcome

    def stop(self) -> None:
        """Let the thread end once it has nothing to carry (the writer is closing)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._job is None:
                    if self._stopping:
                        self._thread = None
                        return
                    self._cond.wait()
                batch = self._job
            error: Optional[BaseException] = None
            try:
                self._send(batch)
            except BaseException as exc:  # reported to the writer, which decides
                error = exc
            with self._cond:
                self._outcome = (batch, error)
                self._job = None
                self._cond.notify_all()
