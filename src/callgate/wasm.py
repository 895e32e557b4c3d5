"""The same engine through WebAssembly (wasmtime).

- `WasmEngine` is `Engine` with the wasm backend: the same constructors, signatures,
  approvals, audit trail and reload; only the decision is made by the module
  (`WasmRuntime.decide`) instead of the native core.
- `WasmRuntime` is the binding to one module instance. It is designed around its cost:
  wasmtime-py's `Func.__call__` costs about as much as the whole decision, so every call
  goes through wasmtime's unchecked raw call path with a preallocated argument buffer,
  requests are written straight into the module's reusable request buffer, and one call
  decides (`decide`). The reason is fetched only when `Decision.reason` is read (`explain`).
- `WasmModule` decides with a module whose policy is already in it (`callgate build-wasm`),
  or any module with the original perso ABI (alloc, dealloc, init, evaluate), so a perso.wasm
  and callgate can be run side by side (`callgate compare`); decisions only, no approvals
  or audit trail.
"""

from __future__ import annotations

import ctypes
import threading
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import orjson

from ._native import RESULT_SAW_NULL
from .compiler import Compiled
from .decision import Decision
from .engine import Engine, PathLike
from .errors import BlobError, CallgateError, RequestError
from .values import encode_text

if TYPE_CHECKING:
    from .decision import Request

try:
    import wasmtime
    from wasmtime import _bindings as _wbind
    from wasmtime import _ffi as _wffi
except ImportError:  # pragma: no cover - wasmtime is the `wasm` extra
    # the module's name stays bound, to None: WasmRuntime tests it. mypy types a name as one
    # module or another, never as "a module or None"
    wasmtime = None  # type: ignore[assignment]

PAGE = 65536
EMBED_MAGIC = b"CGEM"
SAW_NULL = RESULT_SAW_NULL


class WasmError(CallgateError):
    """The module trapped, lacks the ABI, or refused a policy."""


def wasm_path() -> Path:
    """The callgate WebAssembly module shipped in the package."""
    path = Path(str(resources.files("callgate").joinpath("callgate.wasm")))
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: build it with `python scripts/build_wasm.py`")
    return path


# ---------------------------------------------------------------- embedding a policy


def _leb_u(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = data[at]
        at += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return value, at


def _enc_u(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _enc_s(value: int) -> bytes:
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        done = (value == 0 and not b & 0x40) or (value == -1 and b & 0x40)
        out.append(b | (0 if done else 0x80))
        if done:
            return bytes(out)


def embed_policy(module: bytes, blob: bytes) -> bytes:
    """A copy of `module` whose `init(0, 0)` loads `blob`: the blob goes into a new data
    segment at the top of a grown initial memory, followed by its length and "CGEM"."""
    if module[:8] != b"\0asm\x01\0\0\0":
        raise WasmError("not a WebAssembly module")
    sections: list[tuple[int, bytes]] = []
    at = 8
    while at < len(module):
        sid = module[at]
        size, start = _leb_u(module, at + 1)
        sections.append((sid, module[start:start + size]))
        at = start + size
    payload = blob + len(blob).to_bytes(4, "little") + EMBED_MAGIC
    out: list[tuple[int, bytes]] = []
    for sid, body in sections:
        if sid == 5:  # memory: one memory, grow its initial size
            count, p = _leb_u(body, 0)
            flags = body[p]
            minimum, q = _leb_u(body, p + 1)
            if count != 1 or flags not in (0, 1):
                raise WasmError("unexpected memory section")
            new_min = minimum + (len(payload) + PAGE - 1) // PAGE
            address = new_min * PAGE - len(payload)
            body = _enc_u(1) + bytes([flags]) + _enc_u(new_min) + body[q:]
        elif sid == 12:  # data count
            n, _ = _leb_u(body, 0)
            body = _enc_u(n + 1)
        out.append((sid, body))
    segment = b"\x00\x41" + _enc_s(address) + b"\x0b" + _enc_u(len(payload)) + payload
    for i, (sid, body) in enumerate(out):
        if sid == 11:
            n, p = _leb_u(body, 0)
            out[i] = (11, _enc_u(n + 1) + body[p:] + segment)
            break
    else:
        out.append((11, _enc_u(1) + segment))
    return module[:8] + b"".join(bytes([sid]) + _enc_u(len(body)) + body for sid, body in out)


# ---------------------------------------------------------------- the binding


class _RawFunc:
    """One export called through wasmtime's unchecked raw path (no per-call type checks
    or value conversions: the signature is known)."""

    __slots__ = ("ctx", "func", "vals", "ints", "trap", "trap_ref", "n", "call", "store")

    def __init__(self, store: wasmtime.Store, func: wasmtime.Func, n: int) -> None:
        self.store = store
        self.ctx = store._context()
        self.func = ctypes.byref(func._func)
        self.n = max(n, 1)
        self.vals = (_wffi.wasmtime_val_raw_t * self.n)()
        # the same buffer seen as int32s: slot i's i32 is at index 4 * i (16-byte slots)
        self.ints = (ctypes.c_int32 * (4 * self.n)).from_buffer(self.vals)
        self.trap = ctypes.POINTER(_wffi.wasm_trap_t)()
        self.trap_ref = ctypes.byref(self.trap)
        self.call = _wbind._wasmtime_func_call_unchecked  # the raw ctypes function

    def __call__(self, *args: int) -> int:
        ints = self.ints
        for i, a in enumerate(args):
            ints[4 * i] = a
        err = self.call(self.ctx, self.func, self.vals, self.n, self.trap_ref)
        if err or self.trap:
            self._raise(err)
        return ints[0]

    def _raise(self, err: Any) -> None:
        if err:
            raise WasmError(str(wasmtime.WasmtimeError._from_ptr(err)))
        trap = wasmtime.Trap._from_ptr(self.trap)
        self.trap = ctypes.POINTER(_wffi.wasm_trap_t)()
        self.trap_ref = ctypes.byref(self.trap)
        raise WasmError(f"the module trapped: {trap.message}")


def _compiled_module(engine: wasmtime.Engine, raw: bytes) -> wasmtime.Module:
    try:
        return wasmtime.Module(engine, raw)
    except wasmtime.WasmtimeError as exc:
        raise WasmError(f"cannot compile the module: {exc}") from None


class WasmRuntime:
    """One instance of a module, with the policy it was given (`load`). Calls are serialized
    by a lock: a wasm instance is single-threaded."""

    def __init__(self, module: Union[bytes, PathLike, None] = None, *, _engine: Optional[wasmtime.Engine] = None,
                 _module: Optional[wasmtime.Module] = None) -> None:
        if wasmtime is None:  # pragma: no cover
            raise WasmError("wasmtime is not installed: pip install 'callgate[wasm]'")
        if _module is None:
            raw = Path(module).read_bytes() if isinstance(module, (str, Path)) else module
            raw = raw if raw is not None else wasm_path().read_bytes()
            _engine = wasmtime.Engine()
            # an os.PathLike that is neither a str nor a Path is not read above: it reaches
            # wasmtime as is, which refuses it (TypeError); the check is kept as it is
            _module = _compiled_module(_engine, raw)  # type: ignore[arg-type]
        self._engine, self._module = _engine, _module
        self._store = wasmtime.Store(self._engine)
        try:
            self._instance = wasmtime.Instance(self._store, self._module, [])
        except (wasmtime.WasmtimeError, wasmtime.Trap) as exc:
            raise WasmError(f"cannot instantiate the module: {exc}") from None
        exports = self._instance.exports(self._store)
        names = {e.name for e in self._module.exports}
        missing = {"memory", "alloc", "dealloc", "init", "evaluate"} - names
        if missing:
            raise WasmError(f"the module lacks the ABI exports {', '.join(sorted(missing))}")
        self.lean = {"decide", "decide_json", "request_buffer", "explain", "callgate_abi_version"} <= names
        memory = exports["memory"]
        if not isinstance(memory, wasmtime.Memory):   # e.g. a shared memory: its calls take no store
            raise WasmError("the module's \"memory\" export is not an unshared linear memory")
        self._memory = memory
        f = {name: func for name in names if isinstance(func := exports[name], wasmtime.Func)}
        self._alloc = _RawFunc(self._store, f["alloc"], 1)
        self._dealloc = _RawFunc(self._store, f["dealloc"], 2)
        self._init = _RawFunc(self._store, f["init"], 2)
        self._evaluate = _RawFunc(self._store, f["evaluate"], 6)
        self.abi_version = 0
        if self.lean:
            self.abi_version = _RawFunc(self._store, f["callgate_abi_version"], 1)()
            self._decide = _RawFunc(self._store, f["decide"], 2)
            self._decide_json = _RawFunc(self._store, f["decide_json"], 6)
            self._explain = _RawFunc(self._store, f["explain"], 2)
            self._request_buffer = _RawFunc(self._store, f["request_buffer"], 1)
        self._lock = threading.Lock()
        self._buf = 0
        self._buf_size = 0
        self._refresh()

    def another(self) -> "WasmRuntime":
        """A new instance of the same compiled module (for a new policy: an instance keeps
        the policy its decisions' reasons are read from)."""
        return WasmRuntime(_engine=self._engine, _module=self._module)

    # ---------------------------------------------------------------- memory

    def _refresh(self) -> None:
        """The memory's base address (re-read after calls that may grow memory)."""
        self._base = ctypes.cast(self._memory.data_ptr(self._store), ctypes.c_void_p).value or 0
        self._mem_len = self._memory.data_len(self._store)

    def _write(self, data: bytes) -> int:
        ptr = self._alloc(len(data))
        self._refresh()
        if ptr == 0:
            raise WasmError("the module is out of memory")
        ctypes.memmove(self._base + ptr, data, len(data))
        return ptr

    def _take_response(self, resp: int) -> dict[str, Any]:
        """Read a response (u32 length + JSON), free it, decode it."""
        self._refresh()
        if resp == 0 or resp + 4 > self._mem_len:
            raise WasmError("the module returned no response (out of memory?)")
        resp &= 0xFFFFFFFF
        n = int.from_bytes(ctypes.string_at(self._base + resp, 4), "little")
        if resp + 4 + n > self._mem_len:
            raise WasmError("the module returned a response past the end of its memory")
        data = ctypes.string_at(self._base + resp + 4, n)
        self._dealloc(resp, 4 + n)
        try:
            reply: dict[str, Any] = orjson.loads(data)   # the ABI's replies are JSON objects
            return reply
        except orjson.JSONDecodeError as exc:
            raise WasmError(f"the module returned invalid JSON: {exc}") from None

    def load(self, policy: bytes) -> None:
        """init() with a compiled blob (or policy JSON, for a perso-ABI module); b"" loads a
        policy embedded in the module. WasmError when the module refuses it."""
        with self._lock:
            if policy == b"":
                resp = self._take_response(self._init(0, 0))  # the embedded policy
            else:
                ptr = self._write(policy)
                try:
                    resp = self._take_response(self._init(ptr, len(policy)))
                finally:
                    self._dealloc(ptr, len(policy))
        if "error" in resp and resp.get("input") == "blob":   # the core's verdict on the blob
            raise BlobError(str(resp["error"]), str(resp.get("code", "blob")), resp.get("offset"))
        if "error" in resp:
            raise WasmError(f"init refused the policy: {resp['error']}")

    def _request_area(self, n: int) -> int:
        if n > self._buf_size:
            self._buf = self._request_buffer(max(n, 4096))
            self._refresh()
            if self._buf == 0:
                raise WasmError("the module is out of memory")
            self._buf_size = max(n, 4096)
        return self._buf

    # ---------------------------------------------------------------- calls

    def decide(self, packed: bytes) -> int:
        """The result code for a packed request (the lean `decide` export), with the native
        core's "saw a null" bit when the request has one (the export returns 32 bits, without
        it; the engine then looks for NaN and infinities, which orjson writes as null)."""
        n = len(packed)
        with self._lock:
            ptr = self._request_area(n)
            ctypes.memmove(self._base + ptr, packed, n)
            rc = self._decide(ptr, n)
        return rc | SAW_NULL if rc >= 0 and b"null" in packed else rc

    def decide_json(self, tool: bytes, args: bytes, ctx: bytes) -> int:
        """The result code for tool, arguments and context JSON (`decide_json`). TypeError for
        anything but bytes (as the native call: the engine then encodes str)."""
        if type(tool) is not bytes or type(args) is not bytes or type(ctx) is not bytes:
            raise TypeError("decide_json takes bytes")
        total = len(tool) + len(args) + len(ctx)
        with self._lock:
            ptr = self._request_area(total)
            base = self._base + ptr
            ctypes.memmove(base, tool, len(tool))
            ctypes.memmove(base + len(tool), args, len(args))
            ctypes.memmove(base + len(tool) + len(args), ctx, len(ctx))
            return self._decide_json(ptr, len(tool), ptr + len(tool), len(args), ptr + len(tool) + len(args), len(ctx))

    def perso_evaluate(self, tool: bytes, args: bytes, ctx: bytes) -> dict[str, Any]:
        """The perso ABI: three buffers in, a JSON response out; everything is freed."""
        with self._lock:
            ptrs = [self._write(b) for b in (tool, args, ctx)]
            try:
                reply = self._take_response(self._evaluate(ptrs[0], len(tool), ptrs[1], len(args), ptrs[2], len(ctx)))
            finally:
                for p, b in zip(ptrs, (tool, args, ctx)):
                    self._dealloc(p, len(b))
        _raise_error_reply(reply)
        return reply

    def reason(self, tool: Optional[bytes], in0: bytes, in1: Optional[bytes]) -> str:
        """The reason text: `explain` for the request form, the perso `evaluate` otherwise.
        RequestError (with the module's code and offset) for a request it refuses."""
        text: str
        if in1 is not None:
            text = self.perso_evaluate(tool or b"", in0, in1)["reason"]
            return text
        with self._lock:
            ptr = self._request_area(len(in0))
            ctypes.memmove(self._base + ptr, in0, len(in0))
            reply = self._take_response(self._explain(ptr, len(in0)))
        _raise_error_reply(reply)
        text = reply["reason"]
        return text

    def memory_size(self) -> int:
        """Bytes of linear memory (for leak checks: it must stay flat)."""
        return self._memory.data_len(self._store)


def _raise_error_reply(reply: dict[str, Any]) -> None:
    if "error" in reply:
        raise RequestError(str(reply["error"]), str(reply.get("code", "invalid")), reply.get("offset"),
                           reply.get("input"))


# ---------------------------------------------------------------- the engine, with the wasm backend


class _Address:
    """What the engine's hot path passes its backend's calls first (`_local.address`): for
    the native core a scratch buffer's address, here the module instance itself."""

    __slots__ = ("address",)

    def __init__(self, runtime: WasmRuntime) -> None:
        self.address = runtime


class _WasmState:
    """One loaded policy in its own module instance: the wasm backend's counterpart of the
    native engine's policy state, with the same calls (`request`, `json`, each called with
    `_local.address` first), so that Engine.evaluate and evaluate_json drive both. Immutable
    once built: a reload swaps the whole state, and the decisions made before keep reading
    their reasons from theirs. A module instance is single-threaded: WasmRuntime locks."""

    __slots__ = ("compiled", "digest", "runtime", "_local")
    native = False
    request = request_keep_gil = staticmethod(WasmRuntime.decide)
    json = json_keep_gil = staticmethod(WasmRuntime.decide_json)

    def __init__(self, compiled: Compiled, runtime: WasmRuntime) -> None:
        import hashlib

        runtime.load(compiled.blob)
        self.compiled = compiled
        self.runtime = runtime
        self.digest = hashlib.sha256(compiled.blob).hexdigest()
        self._local = _Address(runtime)

    def scratch(self) -> _Address:
        """What the engine's calls take first, made with the state (so the engine, which asks
        for a thread's scratch only when `_local` has no address yet, never needs it)."""
        return self._local

    def reason_for(self, tool: Optional[bytes], in0: bytes, in1: Optional[bytes]) -> str:
        """The reason text of the decision the module made from this request (`WasmRuntime.reason`)."""
        return self.runtime.reason(tool, in0, in1)

    def raise_for(self, rc: int, request: Request) -> None:
        """A request the module refused: its RequestError (read from the module's reason)."""
        if request[0] == "json":
            self.runtime.reason(*request[1:])
        else:
            self.runtime.reason(None, request[1], None)
        raise RequestError(f"the module refused the request (code {rc})", "invalid")  # pragma: no cover


class WasmEngine(Engine):
    """`Engine` whose decisions the WebAssembly module makes (callgate's own by default, or
    `module=` another build of it): the same construction (`from_dict`, `from_json`,
    `from_file`, `module=`), the very evaluate() and evaluate_json() (only the policy state
    differs: `_WasmState`), approvals, audit trail and reload. The request limits are the
    module's own (the max_* options are not taken)."""

    if TYPE_CHECKING:   # Engine's policy state, with this backend's own (its `runtime`)
        _state: _WasmState

    def __init__(self, compiled: Compiled, *, module: Union[bytes, PathLike, None] = None, **options: Any) -> None:
        if any(options.get(k) for k in ("max_bytes", "max_depth", "max_keys")):
            raise ValueError("the wasm backend keeps the module's request limits (max_* are not taken)")
        self._runtime: Optional[WasmRuntime] = WasmRuntime(module)
        if not self._runtime.lean:
            raise WasmError("the module lacks callgate's lean exports (a perso-ABI module: use WasmModule)")
        super().__init__(compiled, **options)

    def _new_state(self, compiled: Compiled) -> _WasmState:
        # the first state takes the runtime made at construction; each reload a fresh instance
        runtime, self._runtime = self._runtime, None
        return _WasmState(compiled, runtime if runtime is not None else self._state.runtime.another())

    @property
    def runtime(self) -> WasmRuntime:
        """The module instance that holds the current policy."""
        return self._state.runtime

    @property
    def abi_version(self) -> int:
        """The module's callgate_abi_version(): the core ABI it was built with (native ABI_VERSION)."""
        return self._state.runtime.abi_version

    def memory_size(self) -> int:
        """Bytes of the current instance's linear memory (for leak checks)."""
        return self._state.runtime.memory_size()


class WasmModule:
    """Decisions from a module whose policy is already in it: a `callgate build-wasm` module
    (policy b"", embedded), a compiled blob, or policy JSON for a module with the perso ABI
    (`foreign`). No approvals, no audit trail: for running another engine beside this one."""

    def __init__(self, module: Union[bytes, PathLike, None], policy: bytes = b"") -> None:
        self.runtime = WasmRuntime(module)
        self.runtime.load(policy)
        self.lean = self.runtime.lean

    @classmethod
    def foreign(cls, module: Union[bytes, PathLike], policy_json: Union[str, bytes]) -> "WasmModule":
        """Any module with the perso ABI, initialized with policy JSON (what perso.wasm takes)."""
        return cls(module, policy_json.encode() if isinstance(policy_json, str) else policy_json)

    def evaluate(self, tool: str, args: Any = None, *, role: str,
                 agent_attributes: Optional[Mapping[str, Any]] = None,
                 resource_attributes: Optional[Mapping[str, Any]] = None) -> Decision:
        """Decide one tool call through the perso ABI's request shape."""
        ctx = orjson.dumps({"role": role, "agent_attrs": agent_attributes or {},
                            "resource_attrs": resource_attributes or {}})
        return self.evaluate_json(tool, orjson.dumps({} if args is None else args), ctx)

    def evaluate_json(self, tool: Union[str, bytes], args: Union[str, bytes], context: Union[str, bytes]) -> Decision:
        """Decide from JSON text, as the perso ABI's evaluate does."""
        reply = self.runtime.perso_evaluate(encode_text(tool, "tool"), encode_text(args, "arguments"),
                                            encode_text(context, "context"))
        try:
            return Decision(reply["decision"], reply.get("rule"), str(reply.get("reason", "")),
                            int(reply.get("approvals_required", 0)))
        except (KeyError, ValueError, TypeError) as exc:
            raise WasmError(f"the module's reply is not a decision: {reply!r}") from exc
