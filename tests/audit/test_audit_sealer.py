"""The core-built decision events (csrc/cg_event.c through audit.sealer) against the
Python builder: byte-identical record bodies for any request either form can carry, the
same database columns, a chain that verifies, and a core that refuses a batch that does
not add up instead of reading past it."""

from __future__ import annotations

import gc
import json
import os
import threading
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import Decision, Engine, RequestError, audit, examples
from callgate._core import ffi, lib
from callgate.audit.chain import ChainHead, link
from callgate.audit.records import Batch, decode_line
from callgate.audit.sealer import Sealer
from callgate.audit.sqlite import row_values

KEYS = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=6) | st.sampled_from(
    ["a", "b", "é", "\u00e9x", "\x00", "\x1f", '"', "\\", "/", "\u2028", "\U0001F600", "\uffff", "aa", "A"])
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.sampled_from([0, -1, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 10**18, 10**17])
           | st.floats(allow_nan=False, allow_infinity=False) | KEYS)
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5),
                      max_leaves=20)
OBJECTS = st.dictionaries(KEYS, VALUES, max_size=5)
PEOPLE = st.none() | st.sampled_from(["", "user:alice", "é\"\\\n", "x\x00y"]) | st.text(max_size=8)


class _HeldSink(audit.JsonlSink):
    """A sink whose writer waits at open() until released: what the engine queues stays in
    the queue for the test to seal (no writer thread racing it)."""

    def __init__(self, path) -> None:
        super().__init__(path, max_queue=10_000_000, fsync="never")
        self.gate = threading.Event()

    def open(self, chain: str):
        self.gate.wait()
        return super().open(chain)


class _Held:
    """An engine whose writer is held, and a Sealer of the test's own."""

    def __init__(self, tmp_path) -> None:
        self.sink = _HeldSink(tmp_path / "a.jsonl")
        self.engine = Engine.from_dict(examples.policy("crm"), audit=self.sink)
        self.writer = audit.recorder(self.engine).writer
        self.sealer = Sealer(self.writer.builder, self.writer._python_event, use_core=True)

    def close(self) -> None:
        self.writer.queue.clear()
        self.sink.gate.set()
        self.engine.close()

    def __enter__(self) -> "_Held":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _take(held: _Held) -> list:
    items = list(held.writer.queue)
    held.writer.queue.clear()
    return items


def _python_body(writer, item: tuple, core_body: bytes, seq: int) -> bytes:
    """What the Python builder writes for `item`, given the id the core drew."""
    event = writer._python_event(item)
    core = orjson.loads(core_body)
    event["id"] = core["id"]
    if not item[3]:
        event["trace_id"] = core["id"]
    event["chain"], event["seq"] = "test-chain", seq
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS)


def _seal_and_compare(held: _Held, items: list) -> Batch:
    batch = held.sealer.seal(items, ChainHead("test-chain"), [])
    for i, item in enumerate(items):
        if batch.events[i] is None:  # built by the core (the others are the builder's own)
            body = batch[i].body
            assert body == _python_body(held.writer, item, body, i), item
    return batch


def _tool_calls(engine: Engine, calls: list) -> None:
    for kwargs in calls:
        try:
            engine.evaluate(**kwargs)
        except RequestError:
            pass


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.fixed_dictionaries({
    "tool": st.sampled_from(["process_refund", "lookup_customer", "é\"tool", "unknown"]),
    "args": OBJECTS | VALUES, "role": st.sampled_from(["agent", "admin", "rôle\n"]),
    "agent_attributes": OBJECTS, "resource_attributes": OBJECTS,
    "context": st.none() | VALUES.filter(lambda v: isinstance(v, dict)) | st.just({}),
    "principal": PEOPLE, "trace_id": PEOPLE}), min_size=1, max_size=6))
def test_request_form_bodies_match_the_python_builder(tmp_path, calls):
    """evaluate() events: for nested values, every key order, escapes, non-BMP text,
    floats, integers up to 70 bits, empty and missing context, any principal and trace id,
    the core writes exactly the Python builder's canonical body (or hands the event back)."""
    held = _Held(tmp_path)
    try:
        _tool_calls(held.engine, calls)
        held.engine.evaluate("process_refund", {"amount": 1}, role="agent", agent_attributes={}, resource_attributes={})
        batch = _seal_and_compare(held, _take(held))
        assert batch.events[-1] is None  # a plain call after the mix: still the core's
    finally:
        held.close()


def _spaced(value, rng) -> bytes:
    """JSON text of value with escapes where json.dumps (ensure_ascii) puts them and
    whitespace between tokens: what a host may send to evaluate_json."""
    text = json.dumps(value, ensure_ascii=rng.draw(st.booleans()))
    if rng.draw(st.booleans()):
        text = text.replace(", ", " ,\n ").replace(": ", " :\t")
    return text.encode()


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_json_form_bodies_match_the_python_builder(tmp_path, data):
    """evaluate_json() events from host-written JSON (escaped or raw non-ASCII, \\/ and
    \\u escapes, whitespace, -0, floats the core hands back): the same bytes as the Python
    builder."""
    held = _Held(tmp_path)
    try:
        for _ in range(data.draw(st.integers(1, 4))):
            args = data.draw(OBJECTS | VALUES)
            ctx = {"role": data.draw(st.sampled_from(["agent", "admin", "é"]))}
            for key in ("agent_attrs", "resource_attrs", "context"):
                if data.draw(st.booleans()):
                    ctx[key] = data.draw(OBJECTS)
            raw_args = _spaced(args, data).replace(b"0,", b"-0,") if data.draw(st.booleans()) else _spaced(args, data)
            if data.draw(st.booleans()):
                raw_args = raw_args.replace(b"/", b"\\/")
            try:
                held.engine.evaluate_json(data.draw(st.sampled_from(["process_refund", "é\x01\"", "x"])), raw_args,
                                     _spaced(ctx, data), principal=data.draw(PEOPLE), trace_id=data.draw(PEOPLE))
            except RequestError:
                pass
        held.engine.evaluate_json("process_refund", b'{"amount": 1}', b'{"role": "agent"}')
        batch = _seal_and_compare(held, _take(held))
        assert batch.events[-1] is None
    finally:
        held.close()


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**63 - 1) | st.sampled_from([951782400 * 10**9, 4107542400 * 10**9 - 1, 2**63 - 1]))
def test_timestamps_match_the_python_clock(tmp_path, t_ns):
    """The core's RFC 3339 text (days to civil date) equals time.gmtime's for any instant
    time.time_ns() can give (1970 to 2262, the end of 64-bit nanoseconds), leap days
    (2000-02-29) and microseconds included."""
    held = _Held(tmp_path)
    try:
        held.engine.evaluate("process_refund", {"amount": 1}, role="agent", agent_attributes={}, resource_attributes={})
        (item,) = _take(held)
        item = item[:-1] + (t_ns,)
        batch = _seal_and_compare(held, [item])
        assert batch.events[0] is None  # built by the core
    finally:
        held.close()


def test_a_waiting_event_is_one_tracked_object(tmp_path):
    """A queued decision holds its result code, the request bytes and the policy state that
    decided, not the Decision: once the collector has passed, only the item itself is still
    tracked (the state is the engine's), so events waiting for the writer cost the cyclic
    collector one object each. The events still carry the decision and its reason."""
    with _Held(tmp_path) as held:
        kw = dict(role="agent", agent_attributes={}, resource_attributes={}, principal="user:a")
        d1 = held.engine.evaluate("process_refund", {"order_id": "O-1", "amount": 800}, **kw)
        d2 = held.engine.evaluate_json("process_refund", b'{"amount": 1}', b'{"role":"agent"}')
        gc.collect()
        items = _take(held)
        for item, d in zip(items, (d1, d2)):
            assert item[0] == d._rc and item[5] is held.engine._state
            assert not any(isinstance(x, Decision) for x in item)
            assert [gc.is_tracked(x) for x in item if x is not item[5]] == [False] * 6
            assert gc.is_tracked(item)
        events = [held.writer._python_event(item) for item in items]
        assert [(e["decision"], e["rule"], e["reason"]) for e in events] == \
            [(d.decision, d.rule, d.reason) for d in (d1, d2)]


def test_core_builds_plain_decisions_and_hands_back_the_rest(tmp_path):
    """Plain decisions go to the core; extras, json-form floats and 19-digit integers go to
    the Python builder; order and sequence numbers are kept across the mix."""
    held = _Held(tmp_path)
    kw = dict(role="agent", agent_attributes={}, resource_attributes={})
    held.engine.evaluate("process_refund", {"amount": 1}, **kw)
    held.engine.evaluate("process_refund", {"amount": 1}, **kw, extras={"session": "s"})
    held.engine.evaluate_json("process_refund", b'{"amount": 1.5}', b'{"role":"agent"}')
    held.engine.evaluate("process_refund", {"amount": 10**19}, **kw)
    held.engine.evaluate_json("process_refund", b'{"amount": 1}', b'{"role":"agent"}')
    items = _take(held)
    batch = _seal_and_compare(held, items)
    assert [e is None for e in batch.events] == [True, False, False, False, True]
    assert [r.seq for r in batch] == [0, 1, 2, 3, 4]
    held.close()


def test_approval_and_refused_items_between_decisions(tmp_path):
    """An approval event or a refused request queued after a plain decision ends the
    core's run there (its item has fewer fields than a decision's), and the batch keeps
    every event in order."""
    held = _Held(tmp_path)
    kw = dict(role="agent", agent_attributes={}, resource_attributes={})
    held.engine.evaluate("process_refund", {"amount": 1}, **kw)
    audit.recorder(held.engine).record_approval(tool="process_refund", args={}, role="agent", principal=None,
                                           decision="Allow", reason="approved", rule=3, approvals_required=1,
                                           approval={"method": "tokens", "outcome": "approved", "required": 1})
    held.engine.evaluate("process_refund", {"amount": 2}, **kw)
    with pytest.raises(RequestError):
        held.engine.evaluate_json("process_refund", b"{", b'{"role":"agent"}')
    held.engine.evaluate("process_refund", {"amount": 3}, **kw)
    batch = _seal_and_compare(held, _take(held))
    assert [orjson.loads(r.body)["kind"] for r in batch] == ["decision", "approval", "decision", "error", "decision"]
    assert [e is None for e in batch.events] == [True, False, True, False, True]
    held.close()


def test_an_empty_batch_seals_to_nothing(tmp_path):
    """A writer step with nothing queued (a spool resend, a wake-up) seals an empty batch:
    no lines, the head untouched; it used to raise and stop the writer thread."""
    held = _Held(tmp_path)
    head = ChainHead("c", (9, b"\x05" * 32))
    batch = Sealer(held.writer.builder, held.writer._python_event, use_core=True).seal([], head, [])
    assert len(batch) == 0 and batch.data == b"" and not batch
    assert (head.next_seq, head.head) == (10, b"\x05" * 32)
    held.close()


def test_batch_lines_chain_and_rows(tmp_path):
    """A sealed batch's lines carry hashes that chain from the head, and its database
    rows, and their values one after the other, equal row_values of each Record (the
    columns the core wrote: timestamp, tool and role decoded)."""
    held = _Held(tmp_path)
    kw = dict(agent_attributes={}, resource_attributes={})
    held.engine.evaluate("process_refund", {"amount": 1}, role="agent", principal="p", **kw)
    held.engine.evaluate_json("look\\u00e9", b"{}", b'{"role":"r\\u00f4le"}')
    held.engine.evaluate("process_refund", {}, role="agent", **kw, extras={"x": 1})
    items = _take(held)
    head = ChainHead("c", (41, b"\x07" * 32))
    batch = held.sealer.seal(items, head, [])
    prev = b"\x07" * 32
    for line, record in zip(batch.data.splitlines(), batch):
        body, digest = decode_line(line)
        assert body == record.body and digest == record.hash == link(prev, body)
        prev = digest
    assert head.head == prev and head.next_seq == 45 and batch[0].seq == 42
    assert batch.rows() == [row_values(r) for r in batch]
    assert batch.rows()[1][5:7] == ("look\\u00e9", "rôle")
    assert batch.values() == [v for r in batch for v in row_values(r)]
    held.close()


def _raw_batch(engine: Engine, request: bytes, spans: list, n: int = 1):
    """A cg_event_batch over `request` with the given spans (for malformed batches)."""
    b = ffi.new("cg_event_batch *")
    keep = [ffi.from_buffer(request), ffi.new("uint32_t[]", spans), ffi.new("int64_t[]", [1] * n),
            ffi.new("int64_t[]", [time.time_ns()] * n), ffi.new("char[]", os.urandom(16 * n)),
            ffi.new("uint32_t[]", [lib.CG_EVENT_NONE] * (2 * n)), ffi.new("char[]", 1 << 16),
            ffi.new("cg_event_member[]", 64), ffi.new("char[]", 1 << 16), ffi.new("char[]", 4096),
            ffi.new("uint32_t[]", 6 * n), ffi.new("char[]", b'"x"')]
    (b.requests, b.spans, b.results, b.times_ns, b.random, b.people_spans, b.tmp, b.work, b.out, b.cols,
     b.info) = keep[:11]
    b.people, b.people_len = keep[6], 0
    b.requests_len, b.n, b.form = len(request), n, 0
    b.tmp_cap, b.work_cap, b.out_cap, b.cols_cap = 1 << 16, 64, 1 << 16, 4096
    for k in range(4):
        b.fixed[k], b.fixed_len[k] = keep[11], 3
    scratch = engine._state.scratch().ptr
    return b, keep, scratch


def test_core_refuses_an_inconsistent_batch(tmp_path):
    """Spans past the end of the request bytes, or past the people bytes, are CG_E_ARG
    (never a read beyond the buffer); a request that is not valid JSON is handed back to
    the Python builder, never written."""
    held = _Held(tmp_path)
    good = b'["process_refund","agent",{"amount":1},{},{}]'
    b, keep, scratch = _raw_batch(held.engine, good, [len(good) + 1])
    assert lib.cg_event_build(scratch, b) == lib.CG_E_ARG
    b, keep, scratch = _raw_batch(held.engine, good, [len(good)])
    b.people_spans[1] = 5  # a trace id of five bytes in an empty people buffer
    assert lib.cg_event_build(scratch, b) == lib.CG_E_ARG
    bad = b'["process_refund","agent",{"amount":1},{},{"a":"\\x"}]'
    b, keep, scratch = _raw_batch(held.engine, bad, [len(bad)])
    assert lib.cg_event_build(scratch, b) == 0 and b.stop == lib.CG_EVENT_STOP_PYTHON and b.out_len == 0
    b, keep, scratch = _raw_batch(held.engine, good, [len(good)])
    assert lib.cg_event_build(scratch, b) == 1 and b.stop == lib.CG_EVENT_STOP_NONE
    assert ffi.buffer(b.out, b.out_len)[:].startswith(b'{"hash":"' + b"0" * 64 + b'","record":{')
    held.close()


def test_core_refuses_lengths_beyond_its_buffers(tmp_path):
    """out_len or cols_len beyond their capacity, and hash lines beyond out_len, are
    CG_E_ARG: the core never writes past a buffer it was given."""
    held = _Held(tmp_path)
    good = b'["process_refund","agent",{"amount":1},{},{}]'
    for field in ("out", "cols"):
        b, keep, scratch = _raw_batch(held.engine, good, [len(good)])
        setattr(b, field + "_len", getattr(b, field + "_cap") + 1)
        assert lib.cg_event_build(scratch, b) == lib.CG_E_ARG
    b, keep, scratch = _raw_batch(held.engine, good, [len(good)])
    assert lib.cg_event_build(scratch, b) == 1
    digest = bytes(32)
    assert lib.cg_event_fill_hashes(b.out, b.out_len, b.info, 0, 1, 0, digest) == 0
    assert lib.cg_event_fill_hashes(b.out, 50, b.info, 0, 1, 0, digest) == lib.CG_E_ARG
    assert lib.cg_event_fill_hashes(b.out, b.out_len, b.info, 0, 2, 0, digest * 2) == lib.CG_E_ARG
    held.close()


def test_unserializable_principal_is_recorded_not_lost(tmp_path):
    """A principal that is not valid Unicode (a lone surrogate) cannot be written as JSON:
    the decision is still recorded, with the fields the writer made and the reason its
    event could not be serialized, and the chain goes on."""
    held = _Held(tmp_path)
    kw = dict(role="agent", agent_attributes={}, resource_attributes={})
    held.engine.evaluate("process_refund", {"amount": 1}, **kw, principal="\ud800")
    held.engine.evaluate("process_refund", {"amount": 2}, **kw, principal="ok")
    batch = held.sealer.seal(_take(held), ChainHead("c"), [])
    first, second = (orjson.loads(r.body) for r in batch)
    assert first["decision"] == "Allow" and first["reason"].startswith("event could not be serialized")
    assert second["principal"] == "ok" and second["seq"] == 1 and batch.events[1] is None
    held.close()


def test_small_buffers_grow_and_large_objects_sort(tmp_path):
    """An event larger than the sealer's buffers (a 300 KB argument, an object of 5,000
    keys) is built after the buffers grow, with its keys in order."""
    held = _Held(tmp_path)
    args = {f"k{i:05d}"[::-1]: i for i in range(5000)}
    args["blob"] = "x" * 300_000
    held.engine.evaluate("process_refund", args, role="agent", agent_attributes={}, resource_attributes={})
    batch = _seal_and_compare(held, _take(held))
    assert batch.events[0] is None
    assert list(orjson.loads(batch[0].body)["args"]) == sorted(args)
    held.close()


def test_recorded_log_verifies_with_core_built_events(tmp_path):
    """End to end with the writer running: a JSONL log of core-built events verifies."""
    from callgate.audit.source import Source
    from callgate.audit.verify import verify

    path = tmp_path / "v.jsonl"
    with Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path)) as engine:
        for i in range(2000):
            engine.evaluate("process_refund", {"amount": i}, role="agent", agent_attributes={}, resource_attributes={},
                            principal=f"user:{i % 7}")
        sealer = audit.recorder(engine).writer.sealer
    assert sealer.core_events == 2000
    report = verify(Source(str(path)))
    assert report.ok and report.records == 2000 + 2  # with the writer's start and stop markers


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
