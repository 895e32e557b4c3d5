"""How Python calls the core: the direct CPython evaluation calls (and their GIL-keeping
twins), which calls the engine uses, and the Decisions the engine makes without the
validating constructor."""

from __future__ import annotations

import gc
import sys
import threading
import time

import orjson
import pytest

from callgate import Decision, Engine, RequestError, audit, examples
from callgate import _native
from callgate import engine as engine_module

DIRECT_CALLS = ("eval_json", "eval_json_keep_gil", "eval_request", "eval_request_keep_gil")


def _json_form(case: dict) -> tuple:
    ctx = orjson.dumps({"role": case["role"], "agent_attrs": case["agent_attributes"],
                        "resource_attrs": case["resource_attributes"]})
    return case["tool"].encode(), orjson.dumps(case["args"]), ctx


def _request_form(case: dict) -> bytes:
    return orjson.dumps([case["tool"], case["role"], case["args"], case["agent_attributes"],
                         case["resource_attributes"]])


@pytest.fixture()
def crm_scratch():
    """A scratch bound to the CRM policy (the engine stays alive while the test runs: the
    scratch points into the policy's memory)."""
    engine = Engine.from_dict(examples.policy("crm"))
    yield engine._state.scratch()
    del engine


def _cffi_json(scratch, tool: bytes, args: bytes, ctx: bytes) -> int:
    return _native.lib.cg_eval_json(scratch.ptr, tool, len(tool), args, len(args), ctx, len(ctx))


def test_direct_calls_return_what_the_cffi_calls_return(crm_scratch):
    """The direct calls and their _keep_gil twins give cffi's call of the same C function the
    same result code for every CRM case, in both request forms, and the same negative code
    for a request the core refuses (lengths come from the bytes, embedded NULs included)."""
    address = crm_scratch.address
    for case in examples.cases("crm"):
        tool, args, ctx = _json_form(case)
        want = _cffi_json(crm_scratch, tool, args, ctx)
        assert want >= 0
        assert _native.eval_json(address, tool, args, ctx) == want
        assert _native.eval_json_keep_gil(address, tool, args, ctx) == want
        packed = _request_form(case)
        want = _native.lib.cg_eval_request(crm_scratch.ptr, packed, len(packed))
        assert _native.eval_request(address, packed) == _native.eval_request_keep_gil(address, packed) == want >= 0
    ctx = b'{"role": "agent"}'
    for bad in (b'{"amount": 1, "amount": 2}', b'{"amount": 1}\x00', b'{"amount": 1} x'):
        want = _cffi_json(crm_scratch, b"t", bad, ctx)
        assert want < 0
        assert _native.eval_json(address, b"t", bad, ctx) == _native.eval_json_keep_gil(address, b"t", bad, ctx) == want


@pytest.mark.parametrize("name", DIRECT_CALLS)
def test_direct_calls_refuse_wrong_arguments_with_type_errors(crm_scratch, name):
    """A wrong argument count, a request part that is not bytes (str, bytearray, None) or a
    scratch that is not an int is a TypeError naming the call, and a scratch address of 0 a
    ValueError: never a call into the core."""
    call = getattr(_native, name)
    good = (crm_scratch.address, b"t", b"{}", b'{"role": "agent"}') if "json" in name else \
        (crm_scratch.address, b'["t", "agent", {}, {}, {}]')
    assert call(*good) >= 0
    with pytest.raises(TypeError, match=name.replace("_keep_gil", "")):
        call(*good[:-1])
    with pytest.raises(TypeError, match=name.replace("_keep_gil", "")):
        call(*good, b"")
    for i in range(1, len(good)):
        for wrong in ("text", bytearray(b"{}"), None):
            with pytest.raises(TypeError):
                call(*good[:i], wrong, *good[i + 1:])
    with pytest.raises(TypeError):
        call("0", *good[1:])
    with pytest.raises(ValueError, match="scratch address is 0"):
        call(0, *good[1:])


class _Spy:
    def __init__(self, real):
        self.real, self.calls = real, 0

    def __call__(self, *args):
        self.calls += 1
        return self.real(*args)


def test_engine_keeps_the_gil_only_without_an_audit_trail(monkeypatch, tmp_path):
    """An engine without an audit trail calls the GIL-keeping twins; one with an audit trail
    (whose writer threads wait for the GIL) calls the releasing ones."""
    names = {"_eval_json": "json", "_eval_json_keep_gil": "json_keep_gil", "_eval_request": "request",
             "_eval_request_keep_gil": "request_keep_gil"}   # the native policy state's calls
    spies = {name: _Spy(getattr(engine_module._State, attr)) for name, attr in names.items()}
    for name, spy in spies.items():
        monkeypatch.setattr(engine_module._State, names[name], staticmethod(spy))
    case = examples.cases("crm")[0]
    tool, args, ctx = _json_form(case)

    bare = Engine.from_dict(examples.policy("crm"))
    bare.evaluate(case["tool"], case["args"], role=case["role"])
    bare.evaluate_json(tool, args, ctx)
    assert [spies[n].calls for n in ("_eval_request_keep_gil", "_eval_json_keep_gil")] == [1, 1]
    assert [spies[n].calls for n in ("_eval_request", "_eval_json")] == [0, 0]

    with Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(tmp_path / "a.jsonl")) as audited:
        audited.evaluate(case["tool"], case["args"], role=case["role"])
        audited.evaluate_json(tool, args, ctx)
    assert [spies[n].calls for n in ("_eval_request", "_eval_json")] == [1, 1]
    assert [spies[n].calls for n in ("_eval_request_keep_gil", "_eval_json_keep_gil")] == [1, 1]


def test_twin_keeps_the_gil_and_plain_call_lets_it_go(crm_scratch):
    """With the switch interval out of reach, a thread waiting for the GIL never runs while the
    main thread makes twin calls (they hold it), and does run once the releasing calls run."""
    address = crm_scratch.address
    tool, args, ctx = _json_form(examples.cases("crm")[0])
    ticks: list = []
    stop = threading.Event()
    started = threading.Event()

    def waiter() -> None:
        started.set()
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0)  # lets the GIL go, then waits for it

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    thread = threading.Thread(target=waiter, daemon=True)
    gc.collect()  # no finalizer of earlier tests' garbage (which may let the GIL go) runs below
    gc.disable()
    try:
        thread.start()
        started.wait(10)
        time.sleep(0.01)  # the waiter is now in its loop, handing the GIL back at each sleep(0)
        before = len(ticks)
        for _ in range(200_000):  # releasing calls let the waiter in within a few thousand
            _native.eval_json_keep_gil(address, tool, args, ctx)
        assert len(ticks) == before  # never released: the waiter could not take a single step
        deadline = time.monotonic() + 10
        while len(ticks) == before and time.monotonic() < deadline:
            for _ in range(1000):
                _native.eval_json(address, tool, args, ctx)
        assert len(ticks) > before
    finally:
        gc.enable()
        stop.set()
        sys.setswitchinterval(old)
        thread.join(10)


def test_engine_made_decisions_are_decisions(tmp_path):
    """Decisions the engine makes skip the validating constructor but are Decisions all the
    same: isinstance, properties, equality with a constructed Decision, repr."""
    engine = Engine.from_dict(examples.policy("crm"))
    d = engine.evaluate("process_refund", {"order_id": "ORD-8821", "amount": 800}, role="agent")
    assert isinstance(d, Decision)
    assert (d.decision, d.allowed, d.rule, d.approvals_required) == ("Deny", False, 3, 0)
    assert d == Decision("Deny", 3, d.reason)
    assert repr(d).startswith("Decision('Deny', rule=3, reason=")
    with pytest.raises(RequestError):
        engine.evaluate_json("process_refund", b"{", b"{}")
