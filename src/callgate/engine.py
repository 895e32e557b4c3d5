"""Engine and Decision: the public face of the native engine.

One decision is one call into C: the request is serialized once (orjson), the core reads
it, looks up (tool, role), runs the condition code and returns the decision and the
deciding rule packed in one integer. The reason is built only when `Decision.reason` is
read (the core evaluates again and formats it), so a caller that only needs the verdict
never pays for text.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import orjson

from . import _native
from .decision import DECISIONS, ELEVATE, Approved, Decision, MadeDecision
from .values import encode_text as _encode
from .values import has_nonfinite as _has_nonfinite
from .values import pack_slow as _pack_slow
from .errors import RequestError

PathLike = Union[str, "os.PathLike[str]"]
__all__ = ["DECISIONS", "Decision", "Engine", "PathLike"]

if TYPE_CHECKING:   # the compiler (and pydantic under it) is imported when a policy is compiled
    from typing import Protocol

    from .approvals import Keyring, NonceLedger
    from .audit.recorder import Recorder
    from .compiler import Compiled
    from .decision import Request

    # an evaluated call's facts as the approvals bind them (approvals.Call's fields, in order):
    # tool, arguments, role, principal, agent attributes, resource attributes, context
    CallFacts = tuple[str, Any, str, Optional[str], Optional[Mapping[str, Any]], Optional[Mapping[str, Any]],
                      Optional[Mapping[str, Any]]]

    class Addressed(Protocol):
        """What carries the address a backend's calls take first (`_local`, a scratch)."""

        address: Any   # the native core's scratch address (an int), or the wasm module instance

    class PolicyState(Protocol):
        """What Engine.evaluate and evaluate_json drive: one loaded policy in a backend (the
        native core's _State here, wasm.py's _WasmState), immutable once built."""

        native: bool
        compiled: Compiled
        digest: str

        @property
        def _local(self) -> Addressed: ...

        def request(self, address: Any, request: bytes, /) -> int: ...
        def request_keep_gil(self, address: Any, request: bytes, /) -> int: ...
        def json(self, address: Any, tool: bytes, args: bytes, context: bytes, /) -> int: ...
        def json_keep_gil(self, address: Any, tool: bytes, args: bytes, context: bytes, /) -> int: ...
        def scratch(self) -> Addressed: ...
        def reason_for(self, tool: Optional[bytes], in0: bytes, in1: Optional[bytes]) -> str: ...
        def raise_for(self, rc: int, request: Request) -> None: ...

    class ThreadScratch(Protocol):
        """The native state's threading.local: this thread's scratch and its address."""

        scratch: _native.Scratch
        address: int

_dumps = orjson.dumps
_EMPTY: dict[str, Any] = {}
_SAW_NULL = _native.RESULT_SAW_NULL
_RESULT_MASK = _native.RESULT_MASK
_ELEVATE = ELEVATE
_Made = MadeDecision   # the hot path's name for it


class _State:
    """One loaded policy and its per-thread scratch buffers. Immutable once built: a reload
    swaps the whole state, so a concurrent evaluation sees the old or the new policy."""

    __slots__ = ("compiled", "policy", "digest", "_local")
    native = True   # the audit sealer builds this state's records with the core
    # the backend's calls, taking `_local.address` first: here the core's direct calls, with
    # and without letting the GIL go (ffi_build.py says when which); wasm.py's state has its own
    request, request_keep_gil = staticmethod(_native.eval_request), staticmethod(_native.eval_request_keep_gil)
    json, json_keep_gil = staticmethod(_native.eval_json), staticmethod(_native.eval_json_keep_gil)
    def __init__(self, compiled: Compiled, limits: Mapping[str, int]) -> None:
        self.compiled = compiled
        self.policy = _native.LoadedPolicy(compiled.blob, **limits)
        self.digest = hashlib.sha256(compiled.blob).hexdigest()  # what approvals bind to
        self._local: ThreadScratch = threading.local()

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
        """The reason text of the decision the core made from this request (it evaluates again)."""
        return _native.reason(self.scratch(), tool, in0, in1)

    def raise_for(self, rc: int, request: Request) -> None:
        """The RequestError for a request the core refused with `rc` (code and offset)."""
        _native.raise_for(rc, self.scratch(), request[0] == "json")


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
        self._state: PolicyState = self._new_state(compiled)
        self._discovered = dict(discovered_tools or {})  # kept for reload()
        self._keyring: Any = None   # approvals: created on first use
        self._ledger: Any = None
        self._ledger_announced = False   # the local-ledger warning: logged once per engine
        self._recorder: Optional[Recorder] = None
        if audit is not None or shadow is not None:
            self._recorder = _attach(self, audit, shadow)

    # ---------------------------------------------------------------- construction

    @classmethod
    def from_dict(cls, policy: Mapping[str, Any], semantics: str = "strict", *,
                  discovered_tools: Optional[Mapping[str, str]] = None, **options: Any) -> "Engine":
        """Load a decoded policy (as from json.loads). Options: the limits, audit, shadow.
        discovered_tools: tools found at run time (an MCP server's) -> their tier."""
        from .compiler import compile_policy

        compiled = compile_policy(policy, semantics, discovered_tools=discovered_tools)
        return cls(compiled, discovered_tools=discovered_tools, **options)

    @classmethod
    def from_json(cls, text: Union[str, bytes], semantics: str = "strict", **options: Any) -> "Engine":
        """Load policy JSON text; duplicate keys and NaN are errors. A PolicyError gives the
        line and column of the problem besides its path."""
        from .policy_files import parse_policy

        compiled = parse_policy(text).compile(semantics, options.get("discovered_tools"))
        return cls(compiled, **options)

    @classmethod
    def from_file(cls, path: PathLike, semantics: str = "strict", **options: Any) -> "Engine":
        """Load a policy file: JSON, or YAML when its name ends in .yaml/.yml (with PyYAML,
        `pip install 'callgate[yaml]'`). A PolicyError names the file, line and column of
        the problem besides its path (policy_files.read_policy)."""
        from .policy_files import read_policy

        # compiled here rather than through from_dict so that only this file's errors are
        # placed in it (a shadow= candidate in the options is loaded by the constructor)
        compiled = read_policy(path).compile(semantics, options.get("discovered_tools"))
        return cls(compiled, **options)

    def reload(self, source: Union[PathLike, Mapping[str, Any], None] = None, *,
               discovered_tools: Optional[Mapping[str, str]] = None) -> None:
        """Replace the policy (a file path or a decoded dict; None: the current policy again,
        e.g. with other discovered tools) with the same semantics and limits (and discovered
        tools, unless new ones are given). Compiles and verifies first; the swap itself is
        one assignment, so every concurrent evaluate() sees either the old or the new
        policy, never a mix."""
        from .compiler import compile_policy, compile_validated
        from .policy_files import read_policy

        discovered = self._discovered if discovered_tools is None else dict(discovered_tools)
        if source is None:
            compiled = compile_validated(self._state.compiled.policy, self.semantics, discovered_tools=discovered)
        elif isinstance(source, Mapping):
            compiled = compile_policy(source, self.semantics, discovered_tools=discovered)
        else:  # a file, JSON or YAML, read as from_file reads it
            compiled = read_policy(source).compile(self.semantics, discovered)
        self._state = self._new_state(compiled)
        self._discovered = discovered

    def _new_state(self, compiled: Compiled) -> PolicyState:
        """The backend's state for a compiled policy (native here; wasm.WasmEngine's own)."""
        return _State(compiled, self._limits)

    # ---------------------------------------------------------------- facts

    @property
    def policy_version(self) -> str:
        """The loaded policy's "version" field."""
        return self._state.compiled.version

    @property
    def semantics(self) -> str:
        """The semantics the policy was compiled with: "strict" or "perso"."""
        return self._state.compiled.semantics

    @property
    def compiled(self) -> Compiled:
        """The current compiled policy (compiler.Compiled: the blob and the policy's meaning)."""
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

    # creates an engine's keyring and ledger (rare), so that two threads never make two
    # ledgers (an approval signed for one would then be refused by the other)
    _approvals_lock = threading.Lock()

    def _approvals(self) -> tuple[Keyring, NonceLedger]:
        if self._keyring is None:
            with Engine._approvals_lock:
                if self._keyring is None:
                    from .approvals import Keyring, NonceLedger  # cryptography: imported only when used

                    self._ledger = NonceLedger()
                    self._keyring = Keyring()  # last: a keyring seen means the ledger is there
        return self._keyring, self._ledger

    @property
    def ledger_id(self) -> str:
        """The id of this engine's nonce ledger ("mem-" and 32 random hex digits, made with
        the engine's first approval use and kept across reloads). It is in memory, local to
        this process: approvals must be signed for it (approve() does; see
        callgate.approvals.sign_approval's `ledger`), and any other process, or this one
        after a restart, refuses them as "different ledger"."""
        return self._approvals()[1].ledger_id

    def trust_approver(self, approver: str, public_key: Any) -> None:
        """Count approvals signed by `approver` with this Ed25519 public key (an object, raw
        32 bytes or PEM). A key already trusted under another name is a ValueError. The first
        time, logs a warning (logger "callgate.approvals") that the nonce ledger is local to
        this process, naming its id."""
        keyring, ledger = self._approvals()
        keyring.trust(approver, public_key)
        with Engine._approvals_lock:
            first, self._ledger_announced = not self._ledger_announced, True
        if first:  # every process that accepts approvals says where they can be spent
            import logging

            logging.getLogger("callgate.approvals").warning(
                "approvals: the nonce ledger %s is local to this process: approvals must be signed for it "
                "and are single-use here only; another process, or this one after a restart, refuses them",
                ledger.ledger_id)

    def approve(self, call: Any, *, approver: str, key: Any, ttl: float = 300.0,
                now: Optional[float] = None, ledger: Optional[str] = None) -> str:
        """A signed approval of exactly this call (a callgate.Call) under the current policy,
        to be spent in this engine's nonce ledger (`ledger_id`), or in the ledger `ledger`
        names (another process's, e.g. a proxy's: an approval service signing for it)."""
        from .approvals import sign_approval

        return sign_approval(call, approver=approver, key=key, policy_digest=self._state.digest,
                             ledger=self.ledger_id if ledger is None else ledger, ttl=ttl, now=now)

    def _apply_approvals(self, d: Decision, state: PolicyState, approvals: Any, call: CallFacts,
                         now: Optional[float]) -> Decision:
        """An Elevate plus approvals: Allow when enough valid ones from distinct approvers."""
        from .approvals import Call, check_approvals

        keyring, ledger = self._approvals()
        tool, args, role, principal, agent, resource, context = call
        target = Call(tool, args, role, principal, agent, resource, context)
        when = time.time() if now is None else now  # decides expiry only: the ledger has its own clock
        verdict = check_approvals(approvals, target, policy_digest=state.digest, keyring=keyring,
                                  ledger=ledger, now=when)
        required = d.approvals_required
        refused = None
        if verdict.satisfies(required):
            refused = ledger.claim(verdict.nonces)  # spends them all, or none
            if refused is None:
                approved = _Made()
                approved._rc = (d._rc & ~15) | 1  # Allow, same rule
                approved._why = (Approved(d.reason + verdict.reason_suffix(required), verdict.valid_approvers,
                                          required), None, None, None)
                approved._by = verdict.valid_approvers
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
        request: tuple[Any, ...]
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
        rc = (state.request_keep_gil if self._recorder is None else state.request)(scratch, packed)
        if rc < 0:
            self._refuse(rc, state, ("request", packed), principal, trace_id, extras)
        if rc & _SAW_NULL:  # orjson writes NaN and infinities as null: only then look for them
            if _has_nonfinite(request):
                raise RequestError("NaN and Infinity are not JSON", "nonfinite")
            rc &= _RESULT_MASK
        d: Decision = _Made()
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
        call = state.json_keep_gil if self._recorder is None else state.json  # as in evaluate()
        tool_b: bytes
        args_b: bytes
        ctx_b: bytes
        try:  # bytes go straight through; anything else is encoded (or refused) below
            # str too, on purpose: the core's call raises TypeError for anything but bytes
            rc = call(scratch, tool, args, context)  # type: ignore[arg-type]
            tool_b, args_b, ctx_b = tool, args, context  # type: ignore[assignment]  # bytes: the call took them
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

    def _refuse(self, rc: int, state: PolicyState, request: Request, principal: Optional[str], trace_id: Optional[str],
                extras: Optional[Mapping[str, Any]]) -> None:
        """A request the core could not decide: record it (if recording) and raise."""
        try:
            state.raise_for(rc, request)
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

    @property
    def recorder(self) -> Any:
        """The audit trail's recorder (callgate.audit.Recorder), or None without one."""
        return self._recorder

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Wait until every decision so far is durable in the audit trail (True at once
        without one); False if `timeout` seconds passed first."""
        return True if self._recorder is None else self._recorder.flush(timeout)

    def record_approval(self, **fields: Any) -> bool:
        """Record what followed an Elevate (an "approval" event, callgate.audit's
        Recorder.record_approval takes the fields). True without an audit trail; False when
        the trail could not take it: the host must then not act on the approval."""
        return True if self._recorder is None else self._recorder.record_approval(**fields)

    def close(self) -> None:
        """Flush and close the audit trail, if one is attached (also at interpreter exit)."""
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _attach(engine: Engine, audit: Any, shadow: Any) -> Recorder:
    from .audit import attach  # the audit trail: imported only when used

    return attach(engine, audit=audit, shadow=shadow)
