"""Recording options: how events are shaped (masks, hash_args), how they are written
(fsync, batching), what happens when they cannot be (on_failure), whether a decision waits
until its event is durable (durable), and how new chains are registered (writer_key)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Sequence

from .masks import parse_pointer

FSYNC = ("batch", "always", "never")
ON_FAILURE = ("block", "deny", "spool")


@dataclass
class Options:
    """fsync: "batch" (each batch is synced before it counts as written), "always" (each
    event), "never" (left to the OS). on_failure: "block" (back-pressure: the decision waits
    for room), "deny" (fail closed while decisions cannot be recorded) or "spool" (spill to a
    local file and resend later). masks: JSON pointers into the event (``/args/card``).
    max_queue bounds the events waiting for the writer; batch_size bounds one write.

    durable: evaluate() returns only once the decision's event is durable (written and
    synced, or in the fsynced spool); a decision that is not durable within durable_timeout
    seconds, or while the sink fails under on_failure="deny", is returned as a Deny. Not
    with fsync="never", which makes nothing durable.

    writer_key: an Ed25519 private key (a cryptography object, or the path of a PEM file):
    a chain this writer starts begins with a genesis record signed with it, which
    `callgate audit verify --writer-key` checks (see audit.genesis)."""

    fsync: str = "batch"
    on_failure: str = "block"
    masks: Sequence[str] = ()
    hash_args: bool = False
    batch_size: int = 4096
    # small enough that an unclean stop can lose no more than this many undurable decisions
    # (plus the batch in flight), large enough that the deciding threads rarely wait for room
    # (docs/audit.md, Performance, has the measurement)
    max_queue: int = 10_000
    flush_interval: float = 0.01
    chain: Optional[str] = None
    spool_path: Optional[str] = None
    retry_interval: float = 0.05
    durable: bool = False
    durable_timeout: float = 10.0
    writer_key: Any = None
    parsed_masks: list[tuple[str, list[str]]] = field(default_factory=list, repr=False)
    signing_key: Any = field(default=None, repr=False)  # writer_key, loaded

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC:
            raise ValueError(f"fsync must be one of {FSYNC}, not {self.fsync!r}")
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {ON_FAILURE}, not {self.on_failure!r}")
        if self.batch_size < 1 or self.max_queue < 1:
            raise ValueError("batch_size and max_queue must be positive")
        if self.durable and self.fsync == "never":
            raise ValueError('durable=True needs fsync="batch" or "always": with fsync="never" nothing is durable')
        if not self.durable_timeout > 0:
            raise ValueError(f"durable_timeout must be a positive number of seconds, not {self.durable_timeout!r}")
        if self.spool_path is not None:  # relative to the directory of now, not of the first spill
            self.spool_path = os.path.abspath(self.spool_path)
        self.parsed_masks = [(p, parse_pointer(p)) for p in self.masks]
        if self.writer_key is not None:
            from .keys import load_private_key

            self.signing_key = load_private_key(self.writer_key, "writer_key")

    def as_kwargs(self) -> dict[str, Any]:
        """The options as given (what Options(**...) takes back)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.init and f.name not in _DERIVED}


_DERIVED = ("parsed_masks", "signing_key")
