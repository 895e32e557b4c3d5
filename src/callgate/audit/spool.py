"""A local spool: sealed records that could not reach the sink, kept durable (fsynced) in
order and resent, oldest first, when the sink is back. Used by on_failure="spool" and,
whatever the mode, for what is still unwritten when the recorder is closed with a failing
sink: nothing is dropped silently.

Progress through the file is kept in `<spool>.offset` (fsynced after each resent batch),
so a crash while resending repeats at most one batch."""

from __future__ import annotations

import os
from typing import Iterator, List, Optional, Sequence, Tuple

from ._canonical import loads
from .records import Record, decode_line, lines


class Spool:
    """Sealed records that could not reach the sink, in an fsynced JSONL file at `path`; an
    offset file beside it marks how much was resent."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset_path = path + ".offset"

    def _offset(self) -> int:
        try:
            with open(self.offset_path, "rb") as fh:
                return int(fh.read() or 0)
        except (OSError, ValueError):
            return 0

    def _set_offset(self, offset: int) -> None:
        tmp = self.offset_path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, str(offset).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.offset_path)

    def append(self, records: Sequence[Record]) -> None:
        """Append the records' lines and fsync (durable when it returns)."""
        # no directory is created: the spool lives beside its log or in the temp directory,
        # and a directory nobody asked for (a mistyped --audit path) must not appear
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            data = lines(records)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def pending(self) -> bool:
        """Whether records wait to be resent."""
        try:
            return os.path.getsize(self.path) > self._offset()
        except OSError:
            return False

    def batches(self, size: int) -> Iterator[Tuple[List[Record], int]]:
        """(records, end offset) of what is still to be resent, in order."""
        offset = self._offset()
        with open(self.path, "rb") as fh:
            fh.seek(offset)
            batch: List[Record] = []
            for line in fh:
                offset += len(line)
                got = decode_line(line.rstrip(b"\n"))
                if got is None:  # torn by a crash while spooling: it never counted as written
                    continue
                event = loads(got[0])
                batch.append(Record(event["chain"], event["seq"], got[0], got[1], event))
                if len(batch) >= size:
                    yield batch, offset
                    batch = []
            if batch:
                yield batch, offset

    def done(self, offset: int) -> None:
        """Everything before `offset` reached the sink; once all has, the spool is emptied."""
        if offset >= os.path.getsize(self.path):
            os.truncate(self.path, 0)
            self._set_offset(0)
        else:
            self._set_offset(offset)

    def last(self, chain: str) -> Optional[Tuple[int, bytes]]:
        """The last spooled record of `chain` (its head, when the sink is behind the spool)."""
        found = None
        if not self.pending():
            return None
        for batch, _ in self.batches(4096):
            for r in batch:
                if r.chain == chain:
                    found = (r.seq, r.hash)
        return found
