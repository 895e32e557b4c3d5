"""A sealed record and its JSON-lines envelope.

A record is (chain, seq, body, hash, event): `body` the canonical JSON the hash covers,
`event` the same as a dict. On disk (JSONL, console, HTTP, spool) a record is one line,
itself canonical JSON: ``{"hash":"<64 hex>","record":<body>}``. The body is kept as the
exact bytes that were hashed, so verification never depends on re-serializing."""

from __future__ import annotations

import binascii
from typing import Any, Iterator, List, NamedTuple, Optional, Sequence, Tuple, Union, overload

import orjson

from ..decision import DECISIONS

_HEAD = b'{"hash":"'
_MID = b'","record":'
_BODY_AT = len(_HEAD) + 64 + len(_MID)
_HASH_AT, _HASH_END = len(_HEAD), len(_HEAD) + 64
_unhexlify = binascii.unhexlify


BODY_AT = _BODY_AT
UNHASHED_HEAD = _HEAD + b"0" * 64 + _MID  # a line's start before its hash is written in
_loads = orjson.loads


class Record(NamedTuple):
    """One sealed record: its chain and sequence number, `body` (the canonical JSON the hash
    covers), `hash` (32 bytes) and `event` (the body as a dict)."""

    chain: str
    seq: int
    body: bytes
    hash: bytes
    event: dict[str, Any]


def event_columns(e: dict[str, Any]) -> tuple[Any, ...]:
    """(timestamp, kind, principal, tool, role, decision, rule) of an event dict: the
    fields database sinks store in their own columns."""
    return (e["timestamp"], e["kind"], e.get("principal"), e.get("tool"), e.get("role"), e.get("decision"),
            e.get("rule"))


class Batch(Sequence[Record]):
    """The records of one writer batch as one buffer of envelope lines (what
    audit.sealer builds): a sink that writes lines writes `data` as is (lines()), a
    database sink takes rows() or values(), neither making a Record per event. Indexing and iteration
    give Records (parsing the body of an event the core built)."""

    __slots__ = ("chain", "seq", "data", "ends", "hashes", "events", "cols", "info", "results", "principals")

    def __init__(self, chain: str, seq: int, data: bytes, ends: List[int], hashes: List[bytes],
                 events: List[Optional[dict[str, Any]]], cols: bytes, info: List[int], results: List[int],
                 principals: List[Optional[str]]) -> None:
        self.chain, self.seq, self.data, self.ends, self.hashes = chain, seq, data, ends, hashes
        self.events, self.cols, self.info, self.results, self.principals = events, cols, info, results, principals

    def __len__(self) -> int:
        return len(self.ends)

    @overload
    def __getitem__(self, i: int) -> Record: ...
    @overload
    def __getitem__(self, i: slice) -> List[Record]: ...

    def __getitem__(self, i: Union[int, slice]) -> Union[Record, List[Record]]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        body = self._body(i)
        event = self.events[i]
        return Record(self.chain, self.seq + i, body, self.hashes[i], event if event is not None else _loads(body))

    def __iter__(self) -> Iterator[Record]:
        return (self[i] for i in range(len(self)))

    def _body(self, i: int) -> bytes:
        return self.data[(self.ends[i - 1] if i else 0) + _BODY_AT:self.ends[i] - 2]

    def rows(self) -> List[tuple[Any, ...]]:
        """(chain, seq, timestamp, kind, principal, tool, role, decision, rule, body, hash)
        per record: what a database sink stores (sqlite.row_values for a Record)."""
        return [self._row(i) for i in range(len(self.ends))]

    def values(self) -> list[Any]:
        """The rows' values one after the other (11 a record). No tuple outlives its row,
        so a batch of them does not set off the cyclic collector (one pass per ~700 live
        tuples, each over every young object of the process)."""
        out: list[Any] = []
        for i in range(len(self.ends)):
            out += self._row(i)
        return out

    def _row(self, i: int) -> tuple[Any, ...]:
        event = self.events[i]
        if event is not None:
            return (self.chain, self.seq + i, *event_columns(event), self._body(i), self.hashes[i])
        info, cols = self.info, self.cols
        at = 6 * i
        ts, tool, tool_n, role, role_n = info[at + 1:at + 6]
        rc = self.results[i]
        return (self.chain, self.seq + i, cols[ts:ts + 27].decode("ascii"), "decision", self.principals[i],
                cols[tool:tool + tool_n].decode("utf-8"),
                None if role_n == 0xFFFFFFFF else cols[role:role + role_n].decode("utf-8"),
                DECISIONS[rc & 3], (rc >> 4) - 1 if rc >= 16 else None, self._body(i), self.hashes[i])


def encode_line(body: bytes, digest: bytes) -> bytes:
    """The envelope line of a record, newline included: ``{"hash":"<hex>","record":<body>}``."""
    return b"".join((_HEAD, digest.hex().encode(), _MID, body, b"}\n"))


def lines(records: Union[Batch, Sequence[Record]]) -> bytes:
    """The envelope lines of `records`, one per record, each ending in a newline."""
    if type(records) is Batch:
        return records.data
    return b"".join([encode_line(r.body, r.hash) for r in records])


def decode_line(line: bytes) -> Optional[Tuple[bytes, bytes]]:
    """(body, hash) of a complete envelope line (without its newline), or None when the line
    is not exactly an envelope: the head, 64 lower-case hex digits, the middle, a body and
    the closing brace, nothing else (the caller decides: torn or corrupt)."""
    if len(line) <= _BODY_AT + 1 or not line.startswith(_HEAD) or line[_BODY_AT - len(_MID):_BODY_AT] != _MID \
            or not line.endswith(b"}"):
        return None
    text = line[_HASH_AT:_HASH_END]
    try:
        digest = _unhexlify(text)  # 64 hex digits, nothing else (no spaces, unlike fromhex)
    except (binascii.Error, ValueError):
        return None
    # unhexlify also takes upper case: only the form the writer writes is an envelope
    if not (text.islower() or text.isdigit()):
        return None
    return line[_BODY_AT:-1], digest


_HEX = frozenset(b"0123456789abcdef")


def cut_short(line: bytes) -> bool:
    """A line that is a proper prefix of an envelope line: what a write cut short by a crash
    leaves (or, all NUL bytes, what a power cut can leave of data that never reached the
    disk). A complete record with anything after it, a carriage return, upper-case hex, are
    not: a write is cut, never added to."""
    if not line:
        return False
    if line.count(0) == len(line):
        return True
    if min(line) < 0x20:  # canonical JSON escapes every control character
        return False
    n = len(line)
    if line[:len(_HEAD)] != _HEAD[:n]:
        return False
    hex_end = len(_HEAD) + 64
    if n > len(_HEAD) and not _HEX.issuperset(line[len(_HEAD):hex_end]):
        return False
    if n > hex_end and line[hex_end:_BODY_AT] != _MID[:n - hex_end]:
        return False
    if n <= _BODY_AT:
        return True
    return _open_object(line[_BODY_AT:])


def _open_object(body: bytes) -> bool:
    """Whether `body` begins a JSON object that is still open at its end, or closes exactly
    at its end (a cut before the envelope's own closing brace)."""
    if body[0] != 0x7B:  # {
        return False
    depth, in_string, escaped = 0, False, False
    for i, c in enumerate(body):
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x7B, 0x5B):
            depth += 1
        elif c in (0x7D, 0x5D):
            depth -= 1
            if depth == 0:
                return i == len(body) - 1
    return True
