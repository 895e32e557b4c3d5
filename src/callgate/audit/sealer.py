"""Sealing one writer batch: event bodies, the hash chain and the envelope lines, in one
buffer (records.Batch).

Plain decision events (no extras; principal and trace id str or None; decided by a native
policy; the recorder has no masks, hash_args or shadow) are built by the core,
cg_event_build (csrc/cg_event.c), a whole run per call and outside the GIL, so the threads
that decide keep deciding meanwhile. Every other event, and any event the core hands back
(CG_EVENT_STOP_PYTHON: a float in json-form arguments, a very large integer, deep nesting),
is built by the Python builder. Both write the same bytes for the same event
(tests/audit/test_audit_sealer.py holds them to it). The chain hashes are hashlib's, one per
record, in order."""

from __future__ import annotations

import hashlib
import logging
import os
from array import array
from typing import Any, Callable, Dict, List, Optional

import orjson

from ..version import __version__
from .._native import ffi, lib
from ..decision import DECISIONS
from ._canonical import canonical
from .chain import LINK_PREFIX as _LINK
from .chain import ChainHead
from .builder import QueueItem
from .records import BODY_AT, UNHASHED_HEAD, Batch

log = logging.getLogger("callgate.audit")
_NONE = lib.CG_EVENT_NONE
_ALL_NONE = array("I", [_NONE])
_FULL = lib.CG_EVENT_STOP_FULL
_WORDS = lib.CG_EVENT_INFO_WORDS
_SORT = orjson.OPT_SORT_KEYS
# what an event that cannot be serialized keeps (fields the writer itself made)
_SAFE_FIELDS = ("kind", "id", "timestamp", "decision", "rule", "approvals_required", "policy_version",
                "policy_digest", "engine_version", "chain", "seq")
_dumps = orjson.dumps
_sha256 = hashlib.sha256


class Sealer:
    """Seals batches for one writer. `python_event(item)` builds an item's event dict with
    the Python builder. One thread at a time: its buffers are reused across batches (the
    writer thread, or close() after it stopped)."""

    # cffi buffers (None until _grow and _reserve_info make them)
    _out: Any
    _cols: Any
    _info: Any
    _work: Any

    def __init__(self, builder: Any, python_event: Callable[[QueueItem], Dict[str, Any]], use_core: bool) -> None:
        self.builder = builder
        self.python_event = python_event
        self.use_core = use_core and not builder._shaping
        self.core_events = 0  # how many events the core built (tests and stats read it)
        self._b = ffi.new("cg_event_batch *")
        self._out = self._cols = self._info = self._work = None
        self._out_cap = self._cols_cap = self._info_cap = self._work_cap = 0
        self._tmp = ffi.new("char[]", 1 << 16)
        self._b.tmp, self._b.tmp_cap = self._tmp, len(self._tmp)
        self._grow(1 << 20, 1 << 16, 1 << 12)
        self._reserve_info(1024)  # never None: an empty batch (a writer step with nothing queued) seals too

    # ------------------------------------------------------------ buffers

    def _grow(self, out: int, cols: int, work: int) -> None:
        b = self._b
        if out > self._out_cap:
            new = ffi.new("char[]", out)
            if self._out is not None:
                ffi.memmove(new, self._out, b.out_len)
            self._out, self._out_cap, b.out, b.out_cap = new, out, new, out
        if cols > self._cols_cap:
            new = ffi.new("char[]", cols)
            if self._cols is not None:
                ffi.memmove(new, self._cols, b.cols_len)
            self._cols, self._cols_cap, b.cols, b.cols_cap = new, cols, new, cols
        if work > self._work_cap:
            self._work = ffi.new("cg_event_member[]", work)
            self._work_cap, b.work, b.work_cap = work, self._work, work

    def _reserve_info(self, records: int) -> None:
        if records * _WORDS > self._info_cap:
            self._info_cap = max(records * _WORDS, 2 * self._info_cap)
            self._info = ffi.new("uint32_t[]", self._info_cap)

    def _append_line(self, line: bytes, record: int) -> None:
        b = self._b
        if b.out_len + len(line) > self._out_cap:
            self._grow(max(2 * self._out_cap, b.out_len + len(line)), 0, 0)
        ffi.memmove(self._out + b.out_len, line, len(line))
        b.out_len += len(line)
        self._info[_WORDS * record] = b.out_len

    # ------------------------------------------------------------ a batch

    def seal(self, items: List[QueueItem], head: ChainHead, leading: List[Dict[str, Any]],
             observe: Optional[Callable[[QueueItem, Dict[str, Any]], None]] = None, core: bool = True) -> Batch:
        """Seal `leading` events (gap records) and then `items` onto the chain at `head`,
        and advance it. `observe(item, event)`, if given, sees every item (for a core-built
        one, an event with only kind, decision and principal). core=False: every event from
        the Python builder."""
        b = self._b
        b.out_len = b.cols_len = 0
        self._reserve_info(len(leading) + len(items))
        chain, seq0 = head.chain, head.next_seq
        events: List[Optional[Dict[str, Any]]] = []
        results: List[int] = []
        principals: List[Any] = []
        for event in leading:
            self._python_record(event, chain, seq0, events, results, principals)
        i, n = 0, len(items)
        while i < n:
            j = self._run_end(items, i) if self.use_core and core else i
            if j > i:
                built, stopped, rcs = self._core_run(items, i, j, chain, seq0, len(events))
                done = items[i:i + built]
                events += [None] * built
                results += rcs[:built]
                principals += [item[2] for item in done]
                if observe is not None:
                    for item, rc in zip(done, rcs):
                        observe(item, {"kind": "decision", "decision": DECISIONS[rc & 3], "principal": item[2]})
                i += built
                if not stopped:
                    continue
            item = items[i]
            event = self.python_event(item)
            if observe is not None:
                observe(item, event)
            self._python_record(event, chain, seq0, events, results, principals)
            i += 1
        return self._chain(head, events, results, principals)

    def _python_record(self, event: Dict[str, Any], chain: str, seq0: int, events: List[Optional[Dict[str, Any]]],
                       results: List[int], principals: List[Any]) -> None:
        event["chain"] = chain
        event["seq"] = seq0 + len(events)
        try:
            body = _dumps(event, option=_SORT)
        except (TypeError, ValueError):
            try:
                body = canonical(event)
            except Exception as exc:  # (a lone surrogate, nesting past the recursion limit)
                # never drop it: record what can be written, and why the rest is missing
                event = {k: event.get(k) for k in _SAFE_FIELDS if k in event}
                event["reason"] = f"event could not be serialized: {exc!r}"
                body = _dumps(event, option=_SORT)
        self._append_line(b"".join((UNHASHED_HEAD, body, b"}\n")), len(events))
        events.append(event)
        results.append(0)
        principals.append(event.get("principal"))

    def _chain(self, head: ChainHead, events: List[Optional[Dict[str, Any]]], results: List[int],
               principals: List[Any]) -> Batch:
        """Hash every record in order, write the hashes into the lines, advance the head."""
        b, n = self._b, len(events)
        info = ffi.unpack(self._info, _WORDS * n)
        ends = info[0::_WORDS]
        view = memoryview(ffi.buffer(self._out, b.out_len))
        hashes: List[bytes]
        prev, start, hashes = head.head, 0, []
        append = hashes.append
        for end in ends:
            prev = _sha256(_LINK + prev + view[start + BODY_AT:end - 2]).digest()
            append(prev)
            start = end
        view.release()
        if lib.cg_event_fill_hashes(self._out, b.out_len, self._info, 0, n, 0, b"".join(hashes)) < 0:
            raise RuntimeError("sealed lines and their ends disagree")  # a bug: the writer rebuilds in Python
        batch = Batch(head.chain, head.next_seq, ffi.buffer(self._out, b.out_len)[:], ends, hashes, events,
                      ffi.buffer(self._cols, b.cols_len)[:], info, results, principals)
        head.head, head.next_seq = prev, head.next_seq + n
        return batch

    # ------------------------------------------------------------ runs the core builds

    @staticmethod
    def _run_end(items: List[QueueItem], i: int) -> int:
        """The end of the run of items from i that the core can build in one call: plain
        decisions of one native policy state, in one request form."""
        first = items[i]
        if type(first[0]) is not int:  # a refused request or an approval event
            return i
        source = first[5]
        if not getattr(type(source), "native", False):  # a reason already known, or a wasm engine's
            return i
        form = first[1][0]
        j, n = i, len(items)
        while j < n:
            item = items[j]
            if type(item[0]) is not int:  # (before reading fields an approval item lacks)
                break
            p, t = item[2], item[3]
            if item[4] or item[5] is not source or item[1][0] != form \
                    or (p is not None and type(p) is not str) or (t is not None and type(t) is not str):
                break
            j += 1
        return j

    def _core_run(self, items: List[QueueItem], i: int, j: int, chain: str, seq0: int,
                  first_record: int) -> tuple[int, bool, List[int]]:
        """Build items[i:j] in the core as records first_record... of a batch whose first
        record has sequence number seq0. Returns (built, stopped, results): the count built,
        whether the next one must be built in Python, and the run's result codes."""
        run = items[i:j]
        b = self._b
        source = run[0][5]
        if run[0][1][0] == "request":
            form, parts = 0, [item[1][1] for item in run]
        else:
            form, parts = 1, [x for item in run for x in item[1][1:]]
        data = b"".join(parts)
        spans = array("I", map(len, parts))
        # principals, then trace ids (a lone surrogate stays invalid UTF-8: the core hands
        # that event back); None is a span of CG_EVENT_NONE
        people: List[bytes] = []
        people_spans = array("I")
        for column in ([item[2] for item in run], [item[3] for item in run]):
            if column.count(None) == len(column):
                people_spans.extend(_ALL_NONE * len(column))
                continue
            raw = [b"" if who is None else who.encode("utf-8", "surrogatepass") for who in column]
            people += raw
            people_spans.extend(array("I", [_NONE if who is None else len(r) for who, r in zip(column, raw)]))
        people_data = b"".join(people)
        rcs = [item[0] for item in run]
        results = array("q", rcs)
        times = array("q", [item[-1] for item in run])
        random = os.urandom(16 * len(run))
        version, digest = self.builder._policy(source)
        fixed = [_dumps(chain), _dumps(__version__), _dumps(digest), _dumps(version)]
        keep = [ffi.from_buffer(data), ffi.from_buffer("uint32_t[]", spans), ffi.from_buffer("int64_t[]", results),
                ffi.from_buffer("int64_t[]", times), ffi.from_buffer(random), ffi.from_buffer(people_data),
                ffi.from_buffer("uint32_t[]", people_spans)] + [ffi.from_buffer(f) for f in fixed]
        b.requests, b.spans, b.results, b.times_ns, b.random, b.people, b.people_spans = keep[:7]
        b.requests_len, b.people_len = len(data), len(people_data)
        for k in range(4):
            b.fixed[k], b.fixed_len[k] = keep[7 + k], len(fixed[k])
        b.form, b.n, b.at = form, len(run), 0
        b.first_seq = seq0 + first_record
        b.info = self._info + _WORDS * first_record
        # a first guess at the room the run needs; cg_event_build says when it was wrong
        self._grow(b.out_len + 2 * len(data) + 1024 * len(run), b.cols_len + len(data) + 64 * len(run),
                   len(data) // 4 + 16)
        scratch = source.scratch().ptr
        for _ in range(64):
            got = lib.cg_event_build(scratch, b)
            if got < 0:  # an inconsistent batch is a bug here: the Python builder takes the rest
                log.error("callgate audit: cg_event_build refused a batch (%d)", got)
                return b.at, True, rcs
            if b.stop != _FULL:
                break
            self._grow(2 * self._out_cap, 2 * self._cols_cap, 2 * self._work_cap)
        self.core_events += b.at
        return b.at, b.at < len(run), rcs
