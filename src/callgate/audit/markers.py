"""Writer markers: the records a writer puts into its chain when it starts and when it
stops cleanly, so that an unclean stop (a crash, SIGKILL, a power cut) can be told apart.

    {"kind": "writer", "state": "start", "writer": {"host", "pid"}, "torn": {...}?, ...}
    {"kind": "writer", "state": "stop",  "writer": {"host", "pid"}, ...}

A chain whose last marker is a start was not closed cleanly by its last writer (or that
writer is still running): decisions it had returned but not yet made durable may be
missing, and `callgate audit verify` says so (a warning). A start marker that follows a
start says the same of the writer before it.

`torn` (JSONL only) accounts for bytes a crash left at the end of the file the writer
opened: their byte offset, length and SHA-256. verify accepts a line that is not a record
only when such a voucher covers exactly its bytes (or when it is the unterminated last line
of the log: a write the crash cut short that no writer has opened since).

Marker records, and the genesis records of audit.genesis, are not decisions: query,
stats, tail and replay leave them out (NOT_DECISIONS)."""

from __future__ import annotations

import hashlib
import os
import socket
from typing import Any, Dict, Optional

from ..version import __version__

KIND = "writer"
START, STOP = "start", "stop"
NOT_DECISIONS = ("writer", "chain", "policy_change")  # record kinds that are bookkeeping of the trail itself


def writer_event(state: str, event_id: str, timestamp: str, details: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """A start or stop marker (the sealer adds chain and seq)."""
    event = {"kind": KIND, "state": state, "id": event_id, "timestamp": timestamp,
             "writer": {"host": socket.gethostname(), "pid": os.getpid()}, "engine_version": __version__}
    if details:
        event.update(details)
    return event


def torn_voucher(offset: int, data: bytes) -> Dict[str, Any]:
    """What a start marker says of the bytes `data` found at `offset` after the last record."""
    return {"offset": offset, "length": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def voucher_of(record: Dict[str, Any]) -> Optional[tuple[int, int, str]]:
    """(offset, length, sha256 hex) of a start marker's torn-bytes voucher, or None."""
    torn = record.get("torn")
    if record.get("kind") != KIND or record.get("state") != START or not isinstance(torn, dict):
        return None
    offset, length, digest = torn.get("offset"), torn.get("length"), torn.get("sha256")
    if type(offset) is not int or type(length) is not int or not isinstance(digest, str) or offset < 0 or length < 1:
        return None
    return offset, length, digest
