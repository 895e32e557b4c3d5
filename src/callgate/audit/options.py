"""Recording options: how events are shaped (masks, hash_args), how they are written
(fsync, batching) and what happens when they cannot be (on_failure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

from .masks import parse_pointer

FSYNC = ("batch", "always", "never")
ON_FAILURE = ("block", "deny", "spool")


@dataclass
class Options:
    """fsync: "batch" (each batch is synced before it counts as written), "always" (each
    event), "never" (left to the OS). on_failure: "block" (back-pressure: the decision waits
    for room), "deny" (fail closed while decisions cannot be recorded) or "spool" (spill to a
    local file and resend later). masks: JSON pointers into the event (``/args/card``).
    max_queue bounds the events waiting for the writer; batch_size bounds one write."""

    fsync: str = "batch"
    on_failure: str = "block"
    masks: Sequence[str] = ()
    hash_args: bool = False
    batch_size: int = 4096
    max_queue: int = 100_000
    flush_interval: float = 0.01
    chain: Optional[str] = None
    spool_path: Optional[str] = None
    retry_interval: float = 0.05
    parsed_masks: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        if self.fsync not in FSYNC:
            raise ValueError(f"fsync must be one of {FSYNC}, not {self.fsync!r}")
        if self.on_failure not in ON_FAILURE:
            raise ValueError(f"on_failure must be one of {ON_FAILURE}, not {self.on_failure!r}")
        if self.batch_size < 1 or self.max_queue < 1:
            raise ValueError("batch_size and max_queue must be positive")
        self.parsed_masks = [(p, parse_pointer(p)) for p in self.masks]
