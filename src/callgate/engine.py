"""Engine and Decision: the public face of the native engine.

One decision is one call into C: the request is serialized once (orjson), the core reads
it, looks up (tool, role), runs the condition code and returns the decision and the
deciding rule packed in one integer. The reason is built only when `Decision.reason` is
read (the core evaluates again and formats it), so a caller that only needs the verdict
never pays for text.
"""

from __future__ import annotations

import hashlib
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import orjson

from . import _native
from .compiler import Compiled, compile_policy
from .errors import PolicyError, RequestError
from .policy import parse_json

DECISIONS = ("Deny", "Allow", "Elevate")
PathLike = Union[str, "os.PathLike[str]"]

_dumps = orjson.dumps
_EMPTY: dict = {}
_eval_request = _native.eval_request
_eval_json = _native.eval_json
_eval_request_keep_gil = _native.eval_request_keep_gil
_eval_json_keep_gil = _native.eval_json_keep_gil
_SAW_NULL = _native.RESULT_SAW_NULL
_RESULT_MASK = _native.RESULT_MASK
_ELEVATE = 2


class Decision:
    """The outcome of one evaluation.

    `decision` is "Allow", "Deny" or "Elevate"; `allowed` is True only for Allow;
    `approvals_required` is the number of approvals an Elevate needs (0 otherwise);
    `rule` is the 0-based index of the deciding rule in the policy, or None when a
    default (a tier default or default_action) decided; `reason` is the exact,
    human-readable why."""

    # the core's result code (decision in bits 0-1, approvals in 2-3, rule + 1 above) and
    # how to explain it: making a Decision costs two stores
    __slots__ = ("_rc", "_why")

    def __init__(self, decision: str, rule: Optional[int], why: Union[tuple, str],
                 approvals_required: int = 0) -> None:
        if decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, not {decision!r}")
        if (decision == "Elevate") != (approvals_required in (1, 2, 3)) or approvals_required not in (0, 1, 2, 3):
            raise ValueError("approvals_required must be 1-3 for Elevate and 0 otherwise")
        self._rc = (0 if rule is None else rule + 1) << 4 | approvals_required << 2 | DECISIONS.index(decision)
        self._why = why  # (source, tool, in0, in1), or the reason once known

    @property
    def decision(self) -> str:
        return DECISIONS[self._rc & 3]

    @property
    def rule(self) -> Optional[int]:
        return (self._rc >> 4) - 1 if self._rc >= 16 else None

    @property
    def approvals_required(self) -> int:
        return self._rc >> 2 & 3

    @property
    def allowed(self) -> bool:
        return self._rc & 3 == 1

    @property
    def reason(self) -> str:
        why = self._why
        if type(why) is str:
            return why
        source, tool, in0, in1 = why  # whoever decided explains (native or wasm)
        self._why = reason = source.reason_for(tool, in0, in1)
        return reason

    def to_dict(self) -> dict:
        """The wasm ABI's response shape: decision, reason, rule (and approvals_required
        for an Elevate)."""
        out = {"decision": self.decision, "reason": self.reason, "rule": self.rule}
        if self._rc & 3 == _ELEVATE:
            out["approvals_required"] = self.approvals_required
        return out

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Decision):
            return NotImplemented
        return (self._rc, self.reason) == (other._rc, other.reason)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        extra = f", approvals_required={self.approvals_required}" if self.approvals_required else ""
        return f"Decision({self.decision!r}, rule={self.rule!r}, reason={self.reason!r}{extra})"


class _Made(Decision):
    """A Decision as the engine makes it: the same object without the validating
    constructor, so making one runs no Python frame (`_Made()` is C all the way down)."""

    __slots__ = ()
    __init__ = object.__init__  # type: ignore[assignment]


class _State:
    """One loaded policy and its per-thread scratch buffers. Immutable once built: a reload
    swaps the whole state, so a concurrent evaluation sees the old or the new policy."""

    __slots__ = ("compiled", "policy", "digest", "_local")

    def __init__(self, compiled: Compiled, limits: Mapping[str, int]) -> None:
        self.compiled = compiled
        self.policy = _native.LoadedPolicy(compiled.blob, **limits)
        self.digest = hashlib.sha256(compiled.blob).hexdigest()  # what approvals bind to
        self._local = threading.local()

    def scratch(self) -> _native.Scratch:
        """This thread's scratch; its address is also kept as `_local.address` for the hot path
        (the scratch itself, kept beside it, keeps the memory alive)."""
        try:
            return self._local.scratch
        except AttributeError:
            s = self._local.scratch = _native.Scratch(self.policy)
            self._local.address = s.address
            return s

    def reason_for(self, tool: Optional[bytes], in0: bytes, in1: Optional[bytes]) -> str:
        return _native.reason(self.scratch(), tool, in0, in1)


def _has_nonfinite(value: Any) -> bool:
    """orjson writes NaN and infinities as null; find them before that hides them."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nonfinite(v) for v in value)
    return False


def _big_ints_as_fragments(value: Any) -> Any:
    """Integers beyond 64 bits (which JSON carries, orjson refuses) as raw JSON fragments."""
    if type(value) is int and not -(1 << 63) <= value < (1 << 64):
        return orjson.Fragment(str(value).encode())
    if isinstance(value, dict):
        return {k: _big_ints_as_fragments(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_big_ints_as_fragments(v) for v in value]
    return value


def _pack_slow(request: tuple, first_error: Exception) -> bytes:
    """orjson refuses integers beyond 64 bits: write those as fragments, so every other
    value keeps orjson's exact text (reasons quote it), and still refuse what JSON cannot
    carry (sets, bytes, NaN)."""
    try:
        return orjson.dumps(_big_ints_as_fragments(request))
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, UnicodeEncodeError) or "str is not valid UTF-8" in str(exc):
            raise RequestError("a string that is not valid Unicode", "utf8") from exc
        raise RequestError(f"a value JSON cannot carry: {first_error}", "unserializable") from exc


def _encode(text: Union[str, bytes], what: str) -> bytes:
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(f"{what} is not valid Unicode", "utf8") from None
    raise RequestError(f"{what} must be str or bytes, not {type(text).__name__}", "type")


class Engine:
    """A loaded policy, ready to decide tool calls. Thread-safe: evaluate() may run from
    many threads at once (each thread has its own scratch; the loaded policy is read-only),
    and reload() swaps atomically.

    Limits (per engine): max_bytes, max_depth, max_keys of request JSON (0 = default).
    Recording (the audit trail, callgate.audit): `audit=` a sink, `shadow=` a candidate
    policy evaluated beside this one. With either, every decision is handed to a recorder
    after it is made; without them the hot path pays one attribute test.

    A recorder (see callgate.audit.attach) has:
        record(decision, request, principal, trace_id, extras) -> Decision
        record_error(error, request, principal, trace_id, extras) -> None
        on_deny_burst(callback, threshold, window_s) -> None
        close() -> None
    where `request` is ("request", packed_json) or ("json", tool, args_json, context_json),
    the very bytes the core read. record() may return a different Decision (a denial when
    decisions cannot be recorded and the sink's policy is to fail closed)."""

    def __init__(self, compiled: Compiled, *, max_bytes: int = 0, max_depth: int = 0, max_keys: int = 0,
                 audit: Any = None, shadow: Any = None, discovered_tools: Optional[Mapping[str, str]] = None) -> None:
        self._limits = {"max_bytes": max_bytes, "max_depth": max_depth, "max_keys": max_keys}
        self._state = _State(compiled, self._limits)
        self._discovered = dict(discovered_tools or {})  # kept for reload()
        self._keyring: Any = None   # approvals: created on first use
        self._ledger: Any = None
        self._recorder: Any = None
        if audit is not None or shadow is not None:
            self._recorder = _attach(self, audit, shadow)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_dict(cls, policy: Mapping[str, Any], semantics: str = "strict", *,
                  discovered_tools: Optional[Mapping[str, str]] = None, **options: Any) -> "Engine":
        """Load a decoded policy (as from json.loads). Options: the limits, audit, shadow.
        discovered_tools: tools found at run time (an MCP server's) -> their tier."""
        compiled = compile_policy(policy, semantics, discovered_tools=discovered_tools)
        return cls(compiled, discovered_tools=discovered_tools, **options)

    @classmethod
    def from_json(cls, text: Union[str, bytes], semantics: str = "strict", **options: Any) -> "Engine":
        """Load policy JSON text; duplicate keys and NaN are errors."""
        return cls.from_dict(parse_json(text), semantics, **options)

    @classmethod
    def from_file(cls, path: PathLike, semantics: str = "strict", **options: Any) -> "Engine":
        """Load a policy file."""
        return cls.from_json(_read(path), semantics, **options)

    def reload(self, source: Union[PathLike, Mapping[str, Any]], *,
               discovered_tools: Optional[Mapping[str, str]] = None) -> None:
        """Replace the policy (a file path or a decoded dict) with the same semantics and
        limits (and discovered tools, unless new ones are given). Compiles and verifies
        first; the swap itself is one assignment, so every concurrent evaluate() sees either
        the old or the new policy, never a mix."""
        data = source if isinstance(source, Mapping) else parse_json(_read(source))
        discovered = self._discovered if discovered_tools is None else dict(discovered_tools)
        compiled = compile_policy(data, self.semantics, discovered_tools=discovered)
        self._state = _State(compiled, self._limits)
        self._discovered = discovered

    # ---------------------------------------------------------------- facts

    @property
    def policy_version(self) -> str:
        return self._state.compiled.version

    @property
    def semantics(self) -> str:
        return self._state.compiled.semantics

    @property
    def compiled(self) -> Compiled:
        return self._state.compiled

    @property
    def blob(self) -> bytes:
        """The compiled policy the core runs."""
        return self._state.compiled.blob

    @property
    def policy_digest(self) -> str:
        """Hex SHA-256 of the compiled policy: approvals are bound to it."""
        return self._state.digest

    # ---------------------------------------------------------------- approvals

    def _approvals(self) -> tuple[Any, Any]:
        if self._keyring is None:
            from .approvals import Keyring, NonceLedger  # cryptography: imported only when used

            self._ledger = NonceLedger()
            self._keyring = Keyring()
        return self._keyring, self._ledger

    def trust_approver(self, approver: str, public_key: Any) -> None:
        """Count approvals signed by `approver` with this Ed25519 public key (an object, raw
        32 bytes or PEM)."""
        self._approvals()[0].trust(approver, public_key)

    def approve(self, call: Any, *, approver: str, key: Any, ttl: float = 300.0,
                now: Optional[float] = None) -> str:
        """A signed approval of exactly this call (a callgate.Call) under the current policy."""
        from .approvals import sign_approval

        return sign_approval(call, approver=approver, key=key, policy_digest=self._state.digest,
                             ttl=ttl, now=now)

    def _apply_approvals(self, d: Decision, state: _State, approvals: Any, call: tuple,
                         now: Optional[float]) -> Decision:
        """An Elevate plus approvals: Allow when enough valid ones from distinct approvers."""
        from .approvals import Call, check_approvals

        keyring, ledger = self._approvals()
        tool, args, role, principal, agent, resource, context = call
        target = Call(tool, args, role, principal, agent, resource, context)
        when = time.time() if now is None else now
        verdict = check_approvals(approvals, target, policy_digest=state.digest, keyring=keyring,
                                  ledger=ledger, now=when)
        required = d.approvals_required
        refused = None
        if verdict.satisfies(required):
            refused = ledger.claim(verdict.nonces, when)  # spends them all, or none
            if refused is None:
                approved = _Made()
                approved._rc = (d._rc & ~15) | 1  # Allow, same rule
                approved._why = d.reason + verdict.reason_suffix(required)
                return approved
        held = _Made()
        held._rc = d._rc
        held._why = d.reason + verdict.reason_suffix(required, refused)
        return held

    # ---------------------------------------------------------------- decisions

    def evaluate(self, tool: str, args: Any = None, *, role: str,
                 agent_attributes: Optional[Mapping[str, Any]] = None,
                 resource_attributes: Optional[Mapping[str, Any]] = None,
                 context: Optional[Mapping[str, Any]] = None,
                 principal: Optional[str] = None, approvals: Optional[Any] = None,
                 now: Optional[float] = None, trace_id: Optional[str] = None,
                 extras: Optional[Mapping[str, Any]] = None) -> Decision:
        """Decide one tool call. Raises RequestError for input JSON cannot carry.
        context: the host's context object (time, risk, ...), read by "source": "Context".
        approvals: signed approval tokens for an Elevate (see approve()); principal (the
        role when None) is what they bind to; now (Unix seconds) is when they are checked.
        principal, trace_id and extras also go to the audit trail, if one is attached."""
        state = self._state
        # one serialization, one call into C (the hot path: keep it flat)
        if context is None:
            request = (tool, role, _EMPTY if args is None else args,
                       _EMPTY if agent_attributes is None else agent_attributes,
                       _EMPTY if resource_attributes is None else resource_attributes)
        else:
            request = (tool, role, _EMPTY if args is None else args,
                       _EMPTY if agent_attributes is None else agent_attributes,
                       _EMPTY if resource_attributes is None else resource_attributes, context)
        try:
            packed = _dumps(request)
        except orjson.JSONEncodeError as exc:
            packed = _pack_slow(request, exc)
        try:
            scratch = state._local.address
        except AttributeError:
            scratch = state.scratch().address
        # no audit trail, no writer threads waiting: the call keeps the GIL (ffi_build.py says why)
        rc = (_eval_request_keep_gil if self._recorder is None else _eval_request)(scratch, packed)
        if rc < 0:
            self._refuse(rc, state, ("request", packed), principal, trace_id, extras)
        if rc & _SAW_NULL:  # orjson writes NaN and infinities as null: only then look for them
            if _has_nonfinite(request):
                raise RequestError("NaN and Infinity are not JSON", "nonfinite")
            rc &= _RESULT_MASK
        d = _Made()
        d._rc = rc
        d._why = (state, None, packed, None)
        if approvals is not None and rc & 3 == _ELEVATE:
            d = self._apply_approvals(d, state, approvals, (tool, args, role, principal, agent_attributes,
                                                            resource_attributes, context), now)
        if self._recorder is None:
            return d
        return self._recorder.record(d, ("request", packed), principal, trace_id, extras)

    # principal, trace_id and extras are not keyword-only (unlike evaluate's identity
    # arguments): CPython specializes calls only to functions without keyword-only
    # parameters, and the generic call cost ~50 ns of a ~0.6 us decision
    def evaluate_json(self, tool: Union[str, bytes], args: Union[str, bytes], context: Union[str, bytes],
                      principal: Optional[str] = None, trace_id: Optional[str] = None,
                      extras: Optional[Mapping[str, Any]] = None) -> Decision:
        """Decide from JSON text: arguments, and the context
        ``{"role": ..., "agent_attrs": {...}, "resource_attrs": {...}}``."""
        state = self._state
        try:
            scratch = state._local.address
        except AttributeError:
            scratch = state.scratch().address
        call = _eval_json_keep_gil if self._recorder is None else _eval_json  # as in evaluate()
        try:  # bytes go straight through; anything else is encoded (or refused) below
            rc = call(scratch, tool, args, context)
            tool_b, args_b, ctx_b = tool, args, context
        except TypeError:
            tool_b, args_b, ctx_b = _encode(tool, "tool"), _encode(args, "arguments"), _encode(context, "context")
            rc = call(scratch, tool_b, args_b, ctx_b)
        if rc < 0:
            self._refuse(rc, state, ("json", tool_b, args_b, ctx_b), principal, trace_id, extras)
        d = _Made()
        d._rc = rc
        d._why = (state, tool_b, args_b, ctx_b)
        if self._recorder is None:
            return d
        return self._recorder.record(d, ("json", tool_b, args_b, ctx_b), principal, trace_id, extras)

    def _refuse(self, rc: int, state: _State, request: tuple, principal: Optional[str], trace_id: Optional[str],
                extras: Optional[Mapping[str, Any]]) -> None:
        """A request the core could not decide: record it (if recording) and raise."""
        try:
            _native.raise_for(rc, state.scratch(), request[0] == "json")
        except RequestError as exc:
            if self._recorder is not None:
                self._recorder.record_error(exc, request, principal, trace_id, extras)
            raise

    # ---------------------------------------------------------------- recording

    def on_deny_burst(self, callback: Any, threshold: int = 20, window_s: float = 60.0) -> None:
        """Call `callback` once per principal per window when its denials exceed threshold."""
        if self._recorder is None:
            self._recorder = _attach(self, None, None)
        self._recorder.on_deny_burst(callback, threshold, window_s)

    def close(self) -> None:
        """Flush and close the audit trail, if one is attached (also at interpreter exit)."""
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _attach(engine: Engine, audit: Any, shadow: Any) -> Any:
    from .audit import attach  # the audit trail: imported only when used

    return attach(engine, audit=audit, shadow=shadow)


def _read(path: PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot read policy file: {exc.strerror}", str(path)) from None
