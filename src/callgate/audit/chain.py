"""The hash chain: hash = SHA-256(0x00 || prev_hash || canonical_record), per chain.

The 0x00 prefix separates record hashes from any other use of SHA-256 in the log
(checkpoints sign a different, prefixed message). The first record of a chain links to
32 zero bytes; sequence numbers start at 0 and are part of the hashed record, so a
deletion, insertion or reordering changes what the next link must be."""

from __future__ import annotations

import hashlib
from typing import Optional, Tuple

GENESIS = bytes(32)
LINK_PREFIX = b"\x00"   # before every record hash's input (the sealer hashes in the same way)
_sha256 = hashlib.sha256


def link(prev: bytes, body: bytes) -> bytes:
    """The hash of a record whose canonical bytes are `body`, following `prev`."""
    h = _sha256(LINK_PREFIX)
    h.update(prev)
    h.update(body)
    return h.digest()


class ChainHead:
    """The writer's position in one chain: the next sequence number and the last hash."""

    __slots__ = ("chain", "next_seq", "head")

    def __init__(self, chain: str, last: Optional[Tuple[int, bytes]] = None) -> None:
        self.chain = chain
        self.next_seq = 0 if last is None else last[0] + 1
        self.head = GENESIS if last is None else last[1]
