"""The wasm module through wasmtime, beside the native engine, in one run.

Run: pytest bench/test_bench_wasm.py --benchmark-enable --benchmark-columns=median,iqr,ops
"""

from __future__ import annotations

import pytest

from callgate import examples
from cases import DENY, json_form

wasm_mod = pytest.importorskip("callgate.wasm")
pytest.importorskip("wasmtime")


@pytest.fixture(scope="module")
def wasm():
    return wasm_mod.WasmEngine.from_dict(examples.policy("crm"))


def test_native_evaluate(benchmark, crm):
    """The native engine, for the ratio."""
    c = DENY
    benchmark(crm.evaluate, c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"])


def test_wasm_evaluate(benchmark, wasm):
    """WasmEngine.evaluate(): one raw call into the lean `decide` export (target <= 5 us)."""
    c = DENY
    d = benchmark(wasm.evaluate, c["tool"], c["args"], role=c["role"], agent_attributes=c["agent_attributes"])
    assert d.decision == "Deny"


def test_wasm_evaluate_json(benchmark, wasm):
    """WasmEngine.evaluate_json(): the three inputs through `decide_json`."""
    tool, args, ctx = json_form(DENY)
    assert benchmark(wasm.evaluate_json, tool, args, ctx).decision == "Deny"


def test_wasm_perso_abi(benchmark, wasm):
    """The perso ABI path (alloc x3, evaluate, read, dealloc x4), kept for compatibility."""
    tool, args, ctx = json_form(DENY)
    reply = benchmark(wasm._perso_evaluate, tool, args, ctx)
    assert reply["decision"] == "Deny"


def test_wasm_memory_flat_1m():
    """1,000,000 decisions through every export: linear memory must not grow (prints sizes)."""
    w = wasm_mod.WasmEngine.from_dict(examples.policy("crm"))
    tool, args, ctx = json_form(DENY)
    c = DENY
    for _ in range(100):
        w.evaluate(c["tool"], c["args"], role=c["role"]).reason
        w._perso_evaluate(tool, args, ctx)
    before = w.memory_size()
    for i in range(250_000):
        w.evaluate(c["tool"], c["args"], role=c["role"])
        w.evaluate_json(tool, args, ctx)
        w._perso_evaluate(tool, args, ctx)
        if i % 1000 == 0:
            w.evaluate(c["tool"], c["args"], role=c["role"]).reason
    print(f"\nwasm memory before {before} bytes, after 1,000,000 decisions {w.memory_size()} bytes; "
          f"module {len(wasm_mod.wasm_path().read_bytes())} bytes")
    assert w.memory_size() == before
