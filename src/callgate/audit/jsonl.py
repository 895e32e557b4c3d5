"""JsonlSink: an append-only file of envelope lines, rotated by size.

`audit.jsonl` is the active segment; rotation renames it to `audit.jsonl.1`, `.2`, ... (in
order) and the chain continues across segments. One writer per file (an flock on
`audit.jsonl.lock`). On open, whatever a crash left after the file's last complete record
(a record torn mid-write, a line without its newline) is left in place as evidence, closed
with a newline, and accounted for in the writer's start marker (its offset, length and
SHA-256: audit.markers), and the chain resumes from the last complete record; verify
reports the fragment as a warning only because that marker vouches for exactly its bytes."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple

from ._canonical import loads
from .markers import torn_voucher
from .records import Record, decode_line, lines
from .sinks import FileLock, Sink

_CHUNK = 1 << 20


def segments(path: str | os.PathLike[str]) -> List[Path]:
    """The files of a JSONL log, oldest first: rotated segments by number, then the active one."""
    p = Path(path)
    pattern = re.compile(re.escape(p.name) + r"\.(\d+)$")
    rotated = sorted(((int(m.group(1)), q) for q in p.parent.glob(p.name + ".*")
                      if (m := pattern.match(q.name))), key=lambda t: t[0])
    files = [q for _, q in rotated]
    if p.exists():
        files.append(p)
    return files


def last_record(files: List[Path], chain: str) -> Optional[Tuple[int, bytes]]:
    """(seq, hash) of the last complete record of `chain`, reading backwards."""
    for f in reversed(files):
        with open(f, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            tail = b""
            while end > 0:
                start = max(0, end - _CHUNK)
                fh.seek(start)
                tail = fh.read(end - start) + tail
                end = start
                lines = tail.split(b"\n")
                complete = lines if start == 0 else lines[1:]  # the first may be cut by the chunk
                for line in reversed(complete):
                    found = _parse(line)
                    if found is not None and found[0] == chain:
                        return found[1], found[2]
                tail = lines[0] if start > 0 else b""
    return None


def _parse(line: bytes) -> Optional[Tuple[str, int, bytes]]:
    got = decode_line(line)
    if got is None:
        return None
    try:
        record = loads(got[0])
        return record["chain"], record["seq"], got[1]
    except Exception:
        return None


def torn_tail(path: str) -> Optional[Tuple[int, bytes]]:
    """(offset, bytes) of what follows the last complete envelope line of a file (of any
    chain), or None when the file ends with one: what a crash left behind."""
    with open(path, "rb") as fh:
        end = fh.seek(0, os.SEEK_END)
        tail, at = b"", end  # tail holds the file's bytes from offset `at` to the end
        while at > 0:
            start = max(0, at - _CHUNK)
            fh.seek(start)
            tail = fh.read(at - start) + tail
            at = start
            line_end = len(tail)
            while True:
                cut = tail.rfind(b"\n", 0, line_end)
                if cut < 0 and at > 0:
                    break  # this line may begin in the chunk before: read further back
                line = tail[cut + 1:line_end]
                if decode_line(line) is not None:
                    after = at + line_end + (1 if line_end < len(tail) else 0)
                    return None if after >= end else (after, tail[after - at:])
                if cut < 0:
                    break
                line_end = cut
        return (0, tail) if end else None


class JsonlSink(Sink):
    """Append-only JSON lines. max_bytes: rotate the active file once it reaches this size
    (0: never rotate)."""

    concurrent_writes = True
    writer_markers = True

    def __init__(self, path: str | os.PathLike[str], max_bytes: int = 256 << 20, **options: Any) -> None:
        super().__init__(**options)
        # fixed now: a process that changes directory later still writes here
        self.path = os.path.abspath(path)
        self.max_bytes = max_bytes
        self.fd = -1
        self.size = 0
        self.synced = 0  # size at the last successful fsync
        self._lock: Optional[FileLock] = None
        self._left: Optional[dict[str, Any]] = None  # the torn bytes open() found (for the start marker)

    def spool_path(self) -> str:
        """The `spool_path` option, else the log's path + ".spool"."""
        return self.audit_options.spool_path or self.path + ".spool"

    def open(self, chain: str) -> Optional[Tuple[int, bytes]]:
        """Lock the log (one writer), find `chain`'s last record and open the active file;
        a torn last line is kept, on its own line, and described for the start marker."""
        if self._lock is None:  # open() is retried after failures: the lock is taken once
            self._lock = FileLock(self.path + ".lock")
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        last = last_record(segments(self.path), chain)
        self._open_active()
        self._left = None
        if self.size:
            found = torn_tail(self.path)
            if found is not None:
                self._left = torn_voucher(*found)
            with open(self.path, "rb") as fh:
                fh.seek(self.size - 1)
                if fh.read(1) != b"\n":  # a torn record: keep it, but on its own line
                    self._write_all(b"\n")
                    os.fsync(self.fd)
                    self.synced = self.size
        return last

    def start_details(self) -> dict[str, Any]:
        """{"torn": voucher} when open() found torn bytes after the last record, else {}."""
        return {"torn": self._left} if self._left is not None else {}

    def _open_active(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.size = self.synced = os.fstat(self.fd).st_size

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
            self.size += n

    def write(self, records: Sequence[Record]) -> None:
        """Append the records' lines (cut back on an error), then rotate once max_bytes is reached."""
        data = lines(records)
        start = self.size
        try:
            self._write_all(data)
        except BaseException:
            # nothing of a failed batch may count as written: cut back what did get out
            try:
                os.ftruncate(self.fd, start)
            finally:
                self.size = start
            raise
        if self.max_bytes and self.size >= self.max_bytes:
            self._rotate()

    def sync(self) -> None:
        """fsync the active file; on a failure, cut back to the last good sync and raise."""
        try:
            os.fsync(self.fd)
        except OSError:
            # after a failed fsync the kernel may have dropped the dirty pages: what was
            # written since the last good sync is unknown, so cut it off; the writer
            # retries those records (same seq and hash), which must not appear twice
            os.ftruncate(self.fd, self.synced)
            self.size = self.synced
            raise
        self.synced = self.size

    def _rotate(self) -> None:
        files = segments(self.path)
        n = 1 + max((int(f.name.rsplit(".", 1)[1]) for f in files[:-1]), default=0)
        os.fsync(self.fd)  # a segment is complete and durable before it is renamed
        os.close(self.fd)
        os.rename(self.path, f"{self.path}.{n}")
        dirfd = os.open(os.path.dirname(os.path.abspath(self.path)), os.O_RDONLY)
        try:
            os.fsync(dirfd)  # the rename itself must survive a crash
        finally:
            os.close(dirfd)
        self._open_active()

    def close(self) -> None:
        """Close the active file and release the log's lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._lock is not None:
            self._lock.release()
            self._lock = None
