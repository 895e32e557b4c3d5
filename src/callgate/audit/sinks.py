"""Sinks: where sealed records go. The built-in ones take the recording options as keyword
arguments (fsync, on_failure, masks, hash_args, batch_size, max_queue, flush_interval, chain,
spool_path, durable, durable_timeout, writer_key; audit.options).

The writer drives a sink through four calls, one at a time:
    open(chain) -> (seq, hash) of the chain's last durable record, or None (a new chain)
    write(records)  append a batch; on error nothing of the batch may count as written
    sync()          make what was written durable (called per the fsync option)
    close()
All four come from the writer thread, unless the sink sets `concurrent_writes`: then a
batch's write() and sync() may come from the courier thread while the writer seals the
next batch (never while another call is running). Any other object with emit(event)
works too (wrapped in EmitSink, whose target is only ever called from the writer thread)."""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import sys
import threading
import uuid
from typing import Any, Optional, Sequence, Tuple

from .events import AuditEvent
from .options import Options
from .records import Record, lines


def process_chain_id() -> str:
    """host:pid, for sinks that many processes share (each writer keeps its own chain)."""
    return f"{socket.gethostname()}:{os.getpid()}"


class Sink:
    """Base class of the built-in sinks: holds the options and the default chain id."""

    default_chain = "main"
    # write() and sync() may run on the courier thread (audit.courier); the built-in sinks
    # allow it, a subclass that holds a thread-bound resource (a default sqlite3
    # connection, say) keeps False
    concurrent_writes = False
    # the writer puts start and stop markers into the chain (audit.markers): set by the
    # sinks that keep a log `callgate audit verify` reads, so an unclean stop shows there
    writer_markers = False

    def __init__(self, **options: Any) -> None:
        self.audit_options = Options(**options)
        self._identity = uuid.uuid4().hex

    @property
    def chain(self) -> str:
        """The id of the chain this sink's writer appends to (the `chain` option, else the sink's default)."""
        return self.audit_options.chain or self.default_chain

    def spool_path(self) -> str:
        """Where records go while this sink cannot take them (on_failure="spool", or at close
        with a failing sink): stable per sink and chain, so the next writer finds and resends them."""
        if self.audit_options.spool_path:
            return self.audit_options.spool_path
        tag = hashlib.sha256(f"{type(self).__name__}:{self.identity()}:{self.chain}".encode()).hexdigest()[:16]
        return os.path.join(tempfile.gettempdir(), f"callgate-audit-spool-{tag}.jsonl")

    def identity(self) -> str:
        """What names this sink's spool. By default unique to this object (an arbitrary sink
        has no stable name); file, database and HTTP sinks name their target, so a later
        process finds and resends what an earlier one spooled."""
        return self._identity

    def open(self, chain: str) -> Optional[Tuple[int, bytes]]:
        """Make the sink ready; (seq, hash) of `chain`'s last durable record, or None for a new chain."""
        return None

    def start_details(self) -> dict[str, Any]:
        """What the writer's start marker says about how open() found the store (JsonlSink:
        the torn bytes it leaves behind); called after open()."""
        return {}

    def write(self, records: Sequence[Record]) -> None:
        """Append a batch (a records.Batch, or a list of Records); on an error nothing of it
        may count as written."""
        raise NotImplementedError

    def sync(self) -> None:
        """Make what was written durable (called as the fsync option says)."""

    def close(self) -> None:
        """Release what open() took."""


class EmitSink(Sink):
    """Adapts any object with emit(event): each record is handed over as an AuditEvent
    (with chain, seq and hash set). flush() is called on sync if the object has one."""

    def __init__(self, target: Any, **options: Any) -> None:
        super().__init__(**options)
        self.target = target
        self.default_chain = process_chain_id()

    def write(self, records: Sequence[Record]) -> None:
        """Hand each record to the target's emit() as an AuditEvent (chain, seq and hash set)."""
        emit = self.target.emit
        for r in records:
            emit(AuditEvent.from_dict(r.event, hash=r.hash.hex()))

    def sync(self) -> None:
        """Call the target's flush(), if it has one."""
        flush = getattr(self.target, "flush", None)
        if flush is not None:
            flush()

    def close(self) -> None:
        """Call the target's close(), if it has one."""
        close = getattr(self.target, "close", None)
        if close is not None:
            close()


class ConsoleSink(Sink):
    """JSON lines (the envelope of records.py) to stdout, or to `stream`."""

    concurrent_writes = True

    def __init__(self, stream: Any = None, **options: Any) -> None:
        # a stream is flushed, not synced; durable=True asks for that flush before returning
        options.setdefault("fsync", "batch" if options.get("durable") else "never")
        super().__init__(**options)
        self.stream = stream
        self.default_chain = process_chain_id()

    def write(self, records: Sequence[Record]) -> None:
        """Write the records' lines to the stream (its binary buffer when it has one)."""
        stream = self.stream or sys.stdout
        data = lines(records)
        buffer = getattr(stream, "buffer", None)
        if buffer is not None:
            buffer.write(data)
        else:
            stream.write(data.decode("utf-8"))

    def sync(self) -> None:
        """Flush the stream."""
        (self.stream or sys.stdout).flush()


class Audit:
    """Options for a sink that does not take them itself (any object with emit):
    ``Engine.from_file(p, audit=Audit(my_sink, masks=["/args/card"], on_failure="deny"))``."""

    def __init__(self, sink: Any, **options: Any) -> None:
        self.sink = sink
        self.options = options


def resolve(audit: Any) -> Sink:
    """The Sink for what the host passed as `audit=`."""
    if isinstance(audit, Audit):
        if isinstance(audit.sink, Sink):
            audit.sink.audit_options = Options(**{**audit.sink.audit_options.as_kwargs(), **audit.options})
            return audit.sink
        return EmitSink(audit.sink, **audit.options)
    if isinstance(audit, Sink):
        return audit
    if callable(getattr(audit, "emit", None)):
        return EmitSink(audit)
    raise TypeError(f"audit= needs a sink (an object with emit(event)), not {type(audit).__name__}")


class FileLock:
    """An exclusive advisory lock (flock) held while a writer owns a file-based chain: two
    writers appending to one chain would fork it."""

    def __init__(self, path: str) -> None:
        import fcntl

        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.fd)
            raise RuntimeError(f"{path}: another writer holds this audit log") from None
        self._lock = threading.Lock()

    def release(self) -> None:
        """Release the lock (once; later calls do nothing)."""
        with self._lock:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
