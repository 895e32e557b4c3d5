"""The only module that touches the cffi library: loading blobs, scratch buffers, calls.

Bytes at the bottom, str at the top: everything here takes and returns bytes and ints.
Every negative return code of the core is mapped to an exception in `raise_for`.
"""

from __future__ import annotations

from typing import Any

from . import _core
from ._core import ffi, lib
from .errors import BlobError, RequestError

# `ffi` and `lib` are also the audit sealer's (audit/sealer.py builds records with the core's
# event builder, cg_event_build): every use of the extension goes through this module
__all__ = ["ABI_VERSION", "LoadedPolicy", "RESULT_MASK", "RESULT_SAW_NULL", "Scratch", "errname", "eval_json",
           "eval_json_keep_gil", "eval_request", "eval_request_keep_gil", "ffi", "lib", "opcodes", "raise_for",
           "reason", "strerror"]

ABI_VERSION = lib.CG_ABI_VERSION
RESULT_SAW_NULL = lib.CG_RESULT_SAW_NULL
RESULT_MASK = lib.CG_RESULT_MASK

# The evaluation calls are direct CPython functions of the same module, not cffi wrappers
# (build_backend/ffi_build.py says why): eval_json(scratch address, tool, args, context) and
# eval_request(scratch address, request), all bytes, each also as a _keep_gil twin.
if lib.cg_add_direct_calls(_core.__name__.encode()) != 0:  # pragma: no cover - a broken build
    raise ImportError(f"{_core.__file__}: could not add the evaluation calls to the module")
eval_request = _core.eval_request
eval_json = _core.eval_json
eval_request_keep_gil = _core.eval_request_keep_gil
eval_json_keep_gil = _core.eval_json_keep_gil


def strerror(code: int) -> str:
    """The core's message for a negative return code (cg_strerror)."""
    text: bytes = ffi.string(lib.cg_strerror(code))
    return text.decode()


def errname(code: int) -> str:
    """The core's short name for a negative return code (cg_errname): the `code` of RequestError and BlobError."""
    text: bytes = ffi.string(lib.cg_errname(code))
    return text.decode()


def opcodes() -> list[tuple[str, int, int, int]]:
    """The core's instruction table, in opcode order: (name, operands, stack effect, flag
    bits it takes), from the one list in csrc/cg_opcodes.h."""
    info = ffi.new("cg_opcode_info *")
    out: list[tuple[str, int, int, int]] = []
    while lib.cg_opcode(len(out), info) == 0:
        out.append((ffi.string(info.name).decode(), info.operands, info.stack_effect, info.flags))
    return out


def _aligned(size: int) -> Any:  # a cffi cdata (uint64_t[]): _core.pyi types the FFI as Any
    """Zeroed memory with 8-byte alignment (the core's structures need it)."""
    return ffi.new("uint64_t[]", max(1, (size + 7) // 8))


class LoadedPolicy:
    """A verified, immutable policy in C memory; shared by every thread."""

    __slots__ = ("ptr", "_mem", "n_fields", "max_keys", "max_depth", "blob")

    def __init__(self, blob: bytes, max_bytes: int = 0, max_depth: int = 0, max_keys: int = 0) -> None:
        at = ffi.new("uint32_t *")
        size = lib.cg_policy_mem_size(blob, len(blob), at)
        if size < 0:
            raise BlobError(strerror(size), errname(size), at[0])
        mem = _aligned(size)
        out = ffi.new("cg_policy **")
        limits = ffi.new("cg_limits *", (max_bytes, max_depth, max_keys))
        rc = lib.cg_policy_load(blob, len(blob), mem, size, limits, out, at)
        if rc == lib.CG_E_ARG:
            raise ValueError("invalid limits: max_depth <= 1024, max_keys <= 16777216, max_bytes < 2 GiB")
        if rc < 0:
            raise BlobError(strerror(rc), errname(rc), at[0])
        self._mem = mem
        self.ptr = out[0]
        self.blob = blob
        self.n_fields = lib.cg_policy_fields(self.ptr)
        self.max_keys = lib.cg_policy_max_keys(self.ptr)
        self.max_depth = lib.cg_policy_max_depth(self.ptr)


class Scratch:
    """Per-thread working memory of the core, bound to one loaded policy (never shared
    between threads)."""

    __slots__ = ("ptr", "address", "policy")

    def __init__(self, policy: LoadedPolicy) -> None:
        size = lib.cg_scratch_size(policy.n_fields, policy.max_keys, policy.max_depth)
        self.ptr = _aligned(size)
        self.address = int(ffi.cast("uintptr_t", self.ptr))  # what the evaluation calls take
        self.policy = policy  # keeps the policy's memory alive as long as the scratch
        for rc in (lib.cg_scratch_init(self.ptr, size, policy.n_fields, policy.max_keys, policy.max_depth),
                   lib.cg_scratch_bind(self.ptr, policy.ptr)):
            if rc < 0:  # pragma: no cover - sizes come from the loaded policy
                raise RuntimeError(strerror(rc))


def raise_for(rc: int, scratch: Scratch, json_form: bool) -> None:
    """Turn a negative return code from an evaluation into a RequestError."""
    code = errname(rc)
    offset = lib.cg_error_offset(scratch.ptr)
    which = lib.cg_error_input(scratch.ptr)
    name = ("arguments", "context")[which] if json_form else "request"
    raise RequestError(strerror(rc), code, offset, name)


def reason(scratch: Scratch, tool: bytes | None, in0: bytes, in1: bytes | None) -> str:
    """The exact reason text (the core evaluates again and formats the outcome). With
    `in1` None, `in0` is the request form; otherwise tool, arguments and context."""
    cap = 256
    while True:
        buf = ffi.new("char[]", cap)
        if in1 is None:
            n = lib.cg_reason_request(scratch.ptr, in0, len(in0), buf, cap)
        else:
            # tool is bytes whenever in1 is (the JSON form carries all three; the callers' _why
            # tuples say so), a link between two parameters mypy cannot follow, and narrowing
            # it here would be a check per call
            n = lib.cg_reason_json(scratch.ptr, tool, len(tool), in0, len(in0), in1, len(in1),  # type: ignore[arg-type]
                                   buf, cap)
        if n < 0:
            raise_for(n, scratch, in1 is not None)
        if n <= cap:
            text: bytes = ffi.unpack(buf, n)
            return text.decode("utf-8")
        cap = n
