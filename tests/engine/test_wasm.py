"""The WebAssembly module: same decisions and reasons as the native engine, the perso ABI,
the lean exports, hostile input, embedded policies, and the Node host."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import orjson
import pytest

wasmtime = pytest.importorskip("wasmtime")

from callgate import Engine, RequestError, examples  # noqa: E402
from callgate.wasm import WasmEngine, WasmError, WasmModule, embed_policy, wasm_path  # noqa: E402

from support import REPO  # noqa: E402
from support.backends import evaluate_case  # noqa: E402

ROOT = REPO
CASES = [(ex, sem, c) for ex in ("crm", "spec") for sem in ("strict", "perso") for c in examples.cases(ex)]


@pytest.fixture(scope="module")
def engines():
    out = {}
    for ex in ("crm", "spec"):
        for sem in ("strict", "perso"):
            out[ex, sem] = (Engine.from_dict(examples.policy(ex), sem), WasmEngine.from_dict(examples.policy(ex), sem))
    return out


@pytest.mark.parametrize("example,semantics,case", CASES, ids=[f"{e}-{s}-{c['name']}" for e, s, c in CASES])
def test_same_decision_and_reason_as_native(engines, example, semantics, case):
    """The wasm module (lean `decide` + `explain`) and the native engine agree exactly."""
    native, wasm = engines[example, semantics]
    a, b = evaluate_case(native, case), evaluate_case(wasm, case)
    assert (b.decision, b.rule, b.reason) == (a.decision, a.rule, a.reason)
    assert b.decision == case["expected"]


@pytest.mark.parametrize("example,semantics,case", CASES[:24], ids=[c["name"] for _, _, c in CASES[:24]])
def test_perso_abi_evaluate_matches(engines, example, semantics, case):
    """The perso ABI's evaluate (three buffers, a JSON reply) gives the same reply."""
    native, wasm = engines[example, semantics]
    args = orjson.dumps(case["args"])
    ctx = orjson.dumps({"role": case["role"], "agent_attrs": case["agent_attributes"],
                        "resource_attrs": case["resource_attributes"]})
    a = native.evaluate_json(case["tool"], args, ctx)
    reply = wasm.runtime.perso_evaluate(case["tool"].encode(), args, ctx)
    assert reply == {"decision": a.decision, "reason": a.reason, "rule": a.rule}
    b = wasm.evaluate_json(case["tool"], args, ctx)
    assert (b.decision, b.rule, b.reason) == (a.decision, a.rule, a.reason)


@pytest.mark.parametrize("tool,args,role", [
    ("transfer_funds", {"payment": {"amount": 500}}, "agent"),     # Elevate, 2 approvals, a rule
    ("read_file", {"path": "/etc/passwd"}, "agent"),                # a deny rule
    ("search_docs", {}, "agent"),                                   # a tier default: no rule
    ("unknown_tool", {}, "agent"),                                  # default_action
])
def test_decide_encoding_as_documented(tool, args, role):
    """The lean `decide` export's i32, decoded exactly as docs/wasm.md says (decision = r & 3,
    approvals = (r >> 2) & 3, rule = (r >> 4) - 1), gives the native engine's decision,
    approvals and rule."""
    policy = examples.policy("ops")
    native = Engine.from_dict(policy).evaluate(tool, args, role=role)
    wasm = WasmEngine.from_dict(policy)
    r = wasm.runtime.decide(orjson.dumps([tool, role, args, {}, {}])) & 0xFFFFFFFF
    assert r < 2**31
    decision = ("Deny", "Allow", "Elevate")[r & 3]
    rule = (r >> 4) - 1
    assert (decision, (r >> 2) & 3, None if rule < 0 else rule) == (
        native.decision, native.approvals_required, native.rule)


def test_module_has_no_imports_and_the_abi():
    """Zero imports (no WASI, no libc); the perso ABI, the lean exports and an ABI version."""
    module = wasmtime.Module(wasmtime.Engine(), wasm_path().read_bytes())
    assert list(module.imports) == []
    names = {e.name for e in module.exports}
    assert {"memory", "alloc", "dealloc", "init", "evaluate", "decide", "decide_json", "explain",
            "request_buffer", "callgate_abi_version"} <= names
    from callgate._native import ABI_VERSION
    assert WasmEngine.from_dict(examples.policy("crm")).abi_version == ABI_VERSION == 3


def test_request_errors_are_reported():
    """Bad request JSON is a RequestError with the module's code and offset, like native."""
    wasm = WasmEngine.from_dict(examples.policy("crm"))
    with pytest.raises(RequestError) as exc:
        wasm.evaluate_json("view_customer", b'{"a":1,"a":2}', b'{"role":"agent"}')
    assert (exc.value.code, exc.value.offset, exc.value.input) == ("duplicate_key", 8, "arguments")
    with pytest.raises(RequestError):
        wasm.evaluate("view_customer", {"x": {1, 2}}, role="agent")
    assert wasm.evaluate("view_customer", {"x": [1] * 3}, role="agent", agent_attributes={"n": 2 ** 70}).allowed
    with pytest.raises(RequestError):
        wasm.evaluate("view_customer", {"x": float("nan")}, role="agent")
    assert wasm.evaluate("view_customer", {}, role="agent").allowed


class Raw:
    """Direct access to a module's exports, for hostile calls."""

    def __init__(self, module: bytes) -> None:
        self.store = wasmtime.Store()
        self.instance = wasmtime.Instance(self.store, wasmtime.Module(self.store.engine, module), [])
        self.x = self.instance.exports(self.store)
        self.memory = self.x["memory"]

    def call(self, name: str, *args: int) -> int:
        return self.x[name](self.store, *args)

    def write(self, data: bytes) -> int:
        ptr = self.call("alloc", len(data))
        self.memory.write(self.store, data, ptr)
        return ptr

    def reply(self, resp: int) -> dict:
        n = int.from_bytes(self.memory.read(self.store, resp, resp + 4), "little")
        data = self.memory.read(self.store, resp + 4, resp + 4 + n)
        self.call("dealloc", resp, 4 + n)
        return json.loads(data)

    def init(self, blob: bytes) -> dict:
        ptr = self.write(blob)
        return self.reply(self.call("init", ptr, len(blob)))

    def evaluate(self, tool: bytes, args: bytes, ctx: bytes) -> dict:
        p = [self.write(b) for b in (tool, args, ctx)]
        out = self.reply(self.call("evaluate", p[0], len(tool), p[1], len(args), p[2], len(ctx)))
        for ptr, b in zip(p, (tool, args, ctx)):
            self.call("dealloc", ptr, len(b))
        return out


CRM_BLOB = Engine.from_dict(examples.policy("crm")).blob
CTX = b'{"role":"agent","agent_attrs":{},"resource_attrs":{}}'


def test_hostile_calls_never_corrupt_the_module():
    """Calls before init, pointers and lengths out of range, ptr + len overflowing u32, a blob
    that fails verification, stray frees: each gets an error, and the next valid call works."""
    raw = Raw(wasm_path().read_bytes())
    assert "error" in raw.evaluate(b"view_customer", b"{}", CTX)            # before init
    assert raw.call("decide", 1024, 10) < 0                                 # before init
    assert raw.init(CRM_BLOB) == {"ok": True}
    size = raw.memory.data_len(raw.store)
    for ptr, n in [(size, 1), (size - 4, 100), (0xFFFFFFF0, 0x20), (0x7FFFFFFF, 0x7FFFFFFF), (16, 0xFFFFFFFF)]:
        reply = raw.reply(raw.call("evaluate", ptr, n, 1024, 2, 1024, 2))
        assert "error" in reply
        assert raw.call("decide", ptr, n) < 0
        assert "error" in raw.reply(raw.call("explain", ptr, n))
        assert "error" in raw.reply(raw.call("init", ptr, n))
    bad = bytearray(CRM_BLOB)
    bad[-1] ^= 0xFF
    assert "checksum" in raw.init(bytes(bad))["error"]
    assert "error" in raw.init(b"not a blob")
    for ptr, n in [(0, 0), (12345, 7), (size + 64, 8), (0xFFFFFFF8, 16)]:
        raw.call("dealloc", ptr, n)                                         # ignored, no trap
    reply = raw.evaluate(b"process_refund", b'{"amount":800}', CTX)
    assert reply["decision"] == "Deny" and reply["rule"] == 3


def test_reinit_swaps_policy_atomically():
    """init with a new blob replaces the policy; a refused blob leaves the old one in force."""
    raw = Raw(wasm_path().read_bytes())
    assert raw.init(CRM_BLOB) == {"ok": True}
    assert raw.evaluate(b"view_customer", b"{}", CTX)["decision"] == "Allow"
    stricter = dict(examples.policy("crm"), rules=[r for r in examples.policy("crm")["rules"] if r["tool_name"] != "view_customer"])
    assert raw.init(Engine.from_dict(stricter).blob) == {"ok": True}
    assert raw.evaluate(b"view_customer", b"{}", CTX)["decision"] == "Deny"
    assert "error" in raw.init(CRM_BLOB[:100])
    assert raw.evaluate(b"view_customer", b"{}", CTX)["decision"] == "Deny"


def test_memory_stays_flat():
    """No leak: memory does not grow over many decisions through every export."""
    wasm = WasmEngine.from_dict(examples.policy("crm"))
    args, ctx = b'{"amount":800}', CTX
    for _ in range(200):  # warm up the size classes
        wasm.evaluate("process_refund", {"amount": 800}, role="agent").reason
        wasm.runtime.perso_evaluate(b"process_refund", args, ctx)
    before = wasm.memory_size()
    for _ in range(20_000):
        wasm.evaluate("process_refund", {"amount": 800}, role="agent").reason
        wasm.evaluate_json("process_refund", args, ctx)
        wasm.runtime.perso_evaluate(b"process_refund", args, ctx)
    assert wasm.memory_size() == before


def test_build_wasm_embeds_the_policy(tmp_path):
    """`callgate build-wasm` writes one module whose init(0, 0) loads the embedded policy."""
    out = tmp_path / "crm.wasm"
    r = subprocess.run([sys.executable, "-m", "callgate", "build-wasm", "crm", "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    raw = Raw(out.read_bytes())
    assert raw.reply(raw.call("init", 0, 0)) == {"ok": True}
    assert raw.evaluate(b"process_refund", b'{"amount":800}', CTX)["decision"] == "Deny"
    engine = WasmModule(out)
    assert engine.evaluate("process_refund", {"amount": 200}, role="agent").allowed
    plain = Raw(wasm_path().read_bytes())
    assert "error" in plain.reply(plain.call("init", 0, 0))  # no embedded policy


def test_embed_policy_rejects_non_wasm():
    """embed_policy refuses bytes that are not a module."""
    with pytest.raises(WasmError):
        embed_policy(b"not wasm", CRM_BLOB)


STUB_WAT = r"""
(module
  (memory (export "memory") 2)
  (global $top (mut i32) (i32.const 4096))
  (data (i32.const 16) "{\"decision\":\"Allow\",\"reason\":\"stub allows everything\"}")
  (data (i32.const 100) "{\"ok\":true}")
  (func (export "alloc") (param i32) (result i32)
    (local $p i32) (local.set $p (global.get $top))
    (global.set $top (i32.add (global.get $top) (i32.and (i32.add (local.get 0) (i32.const 15)) (i32.const -16))))
    (local.get $p))
  (func (export "dealloc") (param i32 i32))
  (func (export "init") (param i32 i32) (result i32)
    (i32.store (i32.const 96) (i32.const 11)) (i32.const 96))
  (func (export "evaluate") (param i32 i32 i32 i32 i32 i32) (result i32)
    (i32.store (i32.const 12) (i32.const 54)) (i32.const 12)))
"""


def test_compare_reports_differences(tmp_path):
    """`callgate compare` runs recorded calls through callgate and another perso-ABI module
    and lists exactly the calls where the decisions differ."""
    stub = tmp_path / "stub.wasm"
    stub.write_bytes(wasmtime.wat2wasm(STUB_WAT))
    calls = tmp_path / "calls.jsonl"
    calls.write_text("\n".join(json.dumps({"tool": c["tool"], "args": c["args"], "role": c["role"],
                                           "agent_attrs": c["agent_attributes"], "resource_attrs": c["resource_attributes"]})
                               for c in examples.cases("crm")))
    policy = examples.policy_path("crm")
    r = subprocess.run([sys.executable, "-m", "callgate", "compare", str(calls), "--wasm", str(stub),
                        "--policy", str(policy), "--json"], capture_output=True, text=True)
    assert r.returncode == 1, r.stderr
    report = json.loads(r.stdout)
    denied = [i + 1 for i, c in enumerate(examples.cases("crm")) if c["expected"] == "Deny"]
    assert [d["line"] for d in report["differences"]] == denied
    assert report["differences"][0]["other"]["reason"] == "stub allows everything"
    same = subprocess.run([sys.executable, "-m", "callgate", "compare", str(calls), "--wasm", str(wasm_path()),
                           "--policy", str(policy)], capture_output=True, text=True)
    assert same.returncode == 0, same.stdout + same.stderr
    assert "20 calls, 0 differ" in same.stdout


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.parametrize("example", ["crm", "spec", "ops"])
def test_node_host_matches_native(tmp_path, example):
    """The ES module wrapper (callgate.mjs) under Node gives the native engine's decisions,
    approval counts and reasons for every case (v1 and v2 policies, context included),
    through the lean export and through the perso ABI."""
    blob = tmp_path / "p.blob"
    native = Engine.from_dict(examples.policy(example))
    blob.write_bytes(native.blob)
    cases = examples.cases(example)
    json_cases = [dict(c, args_json=json.dumps(c["args"]), context_json=json.dumps(
        {"role": c["role"], "agent_attrs": c["agent_attributes"], "resource_attrs": c["resource_attributes"],
         **({"context": c["context"]} if "context" in c else {})})) for c in cases]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": cases + json_cases}))
    r = subprocess.run(["node", str(ROOT / "tests" / "node" / "run_cases.mjs"), str(wasm_path()), str(blob), str(path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(lines) == 2 * len(cases)
    for got, case in zip(lines, cases + cases):
        d = evaluate_case(native, case)
        assert got == {"decision": d.decision, "rule": d.rule, "approvals_required": d.approvals_required,
                       "reason": d.reason}
