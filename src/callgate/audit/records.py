"""A sealed record and its JSON-lines envelope.

A record is (chain, seq, body, hash, event): `body` the canonical JSON the hash covers,
`event` the same as a dict. On disk (JSONL, console, HTTP, spool) a record is one line,
itself canonical JSON: ``{"hash":"<64 hex>","record":<body>}``. The body is kept as the
exact bytes that were hashed, so verification never depends on re-serializing."""

from __future__ import annotations

from typing import NamedTuple, Optional, Tuple

_HEAD = b'{"hash":"'
_MID = b'","record":'
_BODY_AT = len(_HEAD) + 64 + len(_MID)


class Record(NamedTuple):
    chain: str
    seq: int
    body: bytes
    hash: bytes
    event: dict


def encode_line(body: bytes, digest: bytes) -> bytes:
    return b"".join((_HEAD, digest.hex().encode(), _MID, body, b"}\n"))


def decode_line(line: bytes) -> Optional[Tuple[bytes, bytes]]:
    """(body, hash) of a complete envelope line (without its newline), or None when the line
    does not have the envelope's shape (the caller decides: torn or corrupt)."""
    if len(line) <= _BODY_AT + 1 or not line.startswith(_HEAD) or line[_BODY_AT - len(_MID):_BODY_AT] != _MID \
            or not line.endswith(b"}"):
        return None
    try:
        digest = bytes.fromhex(line[len(_HEAD):len(_HEAD) + 64].decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        return None
    return line[_BODY_AT:-1], digest


def looks_torn(line: bytes) -> bool:
    """A line that begins like an envelope but stops before its end: what a write cut short
    by a crash leaves behind (as opposed to a complete line whose content was altered)."""
    prefix = line[:len(_HEAD)]
    return _HEAD.startswith(prefix) and not line.endswith(b"}")
