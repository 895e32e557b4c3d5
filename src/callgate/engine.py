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

    from .approvals import Keyring, Ledger
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
_now = time.time
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
                 audit: Any = None, shadow: Any = None, discovered_tools: Optional[Mapping[str, str]] = None,
                 ledger: Any = None) -> None:
        self._limits = {"max_bytes": max_bytes, "max_depth": max_depth, "max_keys": max_keys}
        self._state: PolicyState = self._new_state(compiled)
        self._discovered = dict(discovered_tools or {})  # kept for reload()
        self._keyring: Any = None   # approvals: created on first use
        # where spent approval nonces are kept: given (ledger.PostgresLedger, shared by
        # replicas) or, on first use, an in-memory NonceLedger local to this process
        self._ledger: Any = ledger
        self._ledger_announced = False   # the local-ledger warning: logged once per engine
        self._recorder: Optional[Recorder] = None
        self._trust: Any = None     # principals.Trust: created by the first trust_issuer()
        # token -> (state, expires, (Principal source as a JSON fragment, its bytes), what the
        # audit trail records of the chain)
        self._chains: dict[str, tuple[Any, float, tuple[Any, bytes], dict[str, Any]]] = {}
        # id(Chain) -> (that Chain, state, fragment and bytes, audit identity): a verifier
        # hands back one Chain object per token until it expires, so this is hit as often
        self._chain_objects: dict[int, tuple[Any, Any, tuple[Any, bytes], dict[str, Any]]] = {}
        if audit is not None and shadow is None:
            shadow = shadow_rules_candidate(compiled)
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

    def _approvals(self) -> tuple[Keyring, Ledger]:
        if self._keyring is None:
            with Engine._approvals_lock:
                if self._keyring is None:
                    from .approvals import Keyring, NonceLedger  # cryptography: imported only when used

                    if self._ledger is None:
                        self._ledger = NonceLedger()
                    self._keyring = Keyring()  # last: a keyring seen means the ledger is there
        return self._keyring, self._ledger

    @property
    def ledger_id(self) -> str:
        """The id of this engine's nonce ledger: the one given as `ledger=` (a
        ledger.PostgresLedger: "pg-" and 32 hex digits, shared by every replica on that
        database), else an in-memory one made with the engine's first approval use ("mem-"
        and 32 random hex digits, kept across reloads) that is local to this process.
        Approvals must be signed for it (approve() does; see approvals.sign_approval's
        `ledger`); any other ledger refuses them as "different ledger"."""
        return self._approvals()[1].ledger_id

    def trust_approver(self, approver: str, public_key: Any) -> None:
        """Count approvals signed by `approver` with this Ed25519 public key (an object, raw
        32 bytes or PEM). A key already trusted under another name is a ValueError. The first
        time, logs a warning (logger "callgate.approvals") that the nonce ledger is local to
        this process, naming its id."""
        from .approvals import NonceLedger

        keyring, ledger = self._approvals()
        keyring.trust(approver, public_key)
        if not isinstance(ledger, NonceLedger):
            return   # a shared ledger (ledger.PostgresLedger): nothing local to warn about
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

    # ---------------------------------------------------------------- principal chains

    def trust_issuer(self, issuer: str, key_or_jwks_url: Any, **options: Any) -> None:
        """Verify chain tokens of `issuer` (forms 1-3, docs/principals.md) with this key, key
        list, HMAC secret or JWKS URL; options as principals.make_issuer (algorithms,
        audience, leeway, max_depth, replay_protection, ledger). Replaces an earlier entry
        and forgets every chain verified so far. Needs `pip install 'callgate[principals]'`."""
        from .principals import Trust

        if self._trust is None:
            self._trust = Trust()
        self._trust.trust_issuer(issuer, key_or_jwks_url, **options)
        self._chains.clear()
        self._chain_objects.clear()

    def verify_chain(self, token: str) -> Any:
        """The principals.Chain a token carries, verified with the issuers trusted here (the
        verifier's cache answers a repeated token; a replay-protected one is spent now), or
        ChainError with the exact reason. evaluate(chain=) takes the result as it is."""
        from .principals import ChainError

        if self._trust is None:
            raise ChainError("no issuer is trusted: call trust_issuer() first", "unknown_issuer")
        return self._trust.verify(token)

    def principal_source(self, chain: Any) -> dict[str, Any]:
        """The `Principal` source the policy reads for `chain` (a token or a verified Chain):
        user, agents, actor, depth, the effective scopes after the policy's ceilings, issuer,
        jti, and the token's claims when the policy reads them. ChainError when the chain
        does not verify."""
        (_, raw), _ = self._principal(self._state, chain)
        value: dict[str, Any] = orjson.loads(raw)
        return value

    _MAX_CHAINS = 10_000   # the per-engine cache of verified chains, cleared when full

    def _principal(self, state: PolicyState, chain: Any) -> tuple[tuple[Any, bytes], dict[str, Any]]:
        """The Principal source (a JSON fragment, and its bytes) of a chain token or verified
        Chain under this state's ceilings, and what the audit trail keeps of the chain (its
        label `user+agent+...`, issuer, jti, effective scopes; never the other claims).
        ChainError when refused."""
        from .principals import Chain, ChainError, effective_scopes

        cached = self._chains.get(chain) if isinstance(chain, str) else None
        if cached is not None and cached[0] is state and cached[1] > _now():
            return cached[2], cached[3]
        if isinstance(chain, Chain):
            if chain.expires <= _now():
                raise ChainError("the chain has expired", "expired")
            held = self._chain_objects.get(id(chain))
            if held is not None and held[0] is chain and held[1] is state:
                return held[2], held[3]
            verified, cacheable = chain, False
        elif isinstance(chain, str):
            if self._trust is None:
                raise ChainError("no issuer is trusted: call trust_issuer() first", "unknown_issuer")
            verified = self._trust.verify(chain)
            issuer = self._trust.issuers.get(verified.issuer)
            cacheable = issuer is not None and issuer.replay is None   # a replay-protected jti is spent once
        else:
            raise TypeError(f"chain is a token (str) or a verified principals.Chain, not {type(chain).__name__}")
        policy = state.compiled.policy
        ceilings = {name: c.max_scopes for name, c in getattr(policy, "principals", {}).items()}
        default = getattr(policy, "principals_default", None)
        effective = effective_scopes(verified, ceilings, None if default is None else default.max_scopes)
        source = verified.source(effective)
        if source.get("jti") is None:
            source.pop("jti", None)
        if not state.compiled.reads_principal_claims:   # the core would only skip them: not sent at all
            del source["claims"]
        raw = _dumps(source)
        fragment = (orjson.Fragment(raw), raw)
        identity: dict[str, Any] = {"label": verified.label, "issuer": verified.issuer, "scopes": source["scopes"]}
        if verified.jti is not None:
            identity["jti"] = verified.jti
        if cacheable:
            if len(self._chains) >= self._MAX_CHAINS:
                self._chains.clear()
            self._chains[chain] = (state, verified.expires, fragment, identity)
        elif isinstance(chain, Chain):
            if len(self._chain_objects) >= self._MAX_CHAINS:
                self._chain_objects.clear()
            self._chain_objects[id(chain)] = (chain, state, fragment, identity)
        return fragment, identity

    def _evaluate_chain(self, tool: str, args: Any, role: str, agent_attributes: Any, resource_attributes: Any,
                        context: Any, chain: Any, principal: Optional[str], approvals: Any, now: Optional[float],
                        trace_id: Optional[str], extras: Optional[Mapping[str, Any]]) -> Decision:
        """evaluate() with a principal chain: the Principal source is the request's 7th element;
        a chain that does not verify is a Deny naming why (recorded like any decision)."""
        state = self._state
        # a token seen before (kept until it expires, for this policy state): no verification,
        # no import, the Principal source already JSON
        cached = self._chains.get(chain) if type(chain) is str else None
        if cached is not None and cached[0] is state and cached[1] > _now():
            fragment, identity = cached[2][0], cached[3]
        else:
            from .principals import ChainError

            try:
                (fragment, _), identity = self._principal(state, chain)
            except ChainError as exc:
                return self._refuse_chain(exc, state, tool, args, role, agent_attributes, resource_attributes,
                                          context, principal, trace_id, extras)
        request = (tool, role, _EMPTY if args is None else args,
                   _EMPTY if agent_attributes is None else agent_attributes,
                   _EMPTY if resource_attributes is None else resource_attributes,
                   _EMPTY if context is None else context, fragment)
        try:
            packed = _dumps(request)
        except orjson.JSONEncodeError as exc:
            packed = _pack_slow(request, exc)
        try:
            scratch = state._local.address
        except AttributeError:
            scratch = state.scratch().address
        recorder = self._recorder
        rc = (state.request_keep_gil if recorder is None else state.request)(scratch, packed)
        if rc < 0 or rc & _SAW_NULL or approvals is not None or recorder is not None:
            return self._chain_slow(rc, state, packed, request, identity, tool, args, role, agent_attributes,
                                    resource_attributes, context, principal, approvals, now, trace_id, extras)
        d: Decision = _Made()
        d._rc = rc
        d._why = (state, None, packed, None)
        return d

    def _chain_slow(self, rc: int, state: PolicyState, packed: bytes, request: tuple[Any, ...],
                    identity: dict[str, Any], tool: str, args: Any, role: str, agent_attributes: Any,
                    resource_attributes: Any, context: Any, principal: Optional[str], approvals: Any,
                    now: Optional[float], trace_id: Optional[str], extras: Optional[Mapping[str, Any]]) -> Decision:
        """The rest of _evaluate_chain when there is more to do than one decision: a refused
        request, a null in it, approvals, an audit trail."""
        label = identity["label"]
        who = label if principal is None else principal
        # extras (never empty here) also keep the event off the core's plain-event path
        audit_extras = {**extras, "principal_chain": identity} if extras else {"principal_chain": identity}
        if rc < 0:
            self._refuse(rc, state, ("request", packed), who, trace_id, audit_extras)
        if rc & _SAW_NULL:
            if _has_nonfinite(request[:6]):
                raise RequestError("NaN and Infinity are not JSON", "nonfinite")
            rc &= _RESULT_MASK
        d: Decision = _Made()
        d._rc = rc
        d._why = (state, None, packed, None)
        if approvals is not None and rc & 3 == _ELEVATE:
            # approvals bind to the whole chain: alice through another agent is another principal
            d = self._apply_approvals(d, state, approvals, (tool, args, role, label, agent_attributes,
                                                            resource_attributes, context), now)
        if self._recorder is None:
            return d
        return self._recorder.record(d, ("request", packed), who, trace_id, audit_extras)

    def _refuse_chain(self, exc: Exception, state: PolicyState, tool: str, args: Any, role: str,
                      agent_attributes: Any, resource_attributes: Any, context: Any, principal: Optional[str],
                      trace_id: Optional[str], extras: Optional[Mapping[str, Any]]) -> Decision:
        """A chain that does not verify: a Deny naming why, recorded (its request without a
        principal) with the refusal's code."""
        denial = Decision("Deny", None, f"the principal chain is refused: {exc}")
        if self._recorder is None:
            return denial
        refused = dict(extras or {})
        refused["chain_refused"] = getattr(exc, "code", "invalid")
        base = (tool, role, _EMPTY if args is None else args,
                _EMPTY if agent_attributes is None else agent_attributes,
                _EMPTY if resource_attributes is None else resource_attributes,
                _EMPTY if context is None else context)
        return self._recorder.record(denial, ("request", self._pack(base)), principal, trace_id, refused)

    @staticmethod
    def _pack(request: tuple[Any, ...]) -> bytes:
        try:
            return _dumps(request)
        except orjson.JSONEncodeError as exc:
            return _pack_slow(request, exc)

    # ---------------------------------------------------------------- decisions

    def evaluate(self, tool: str, args: Any = None, *, role: str,
                 agent_attributes: Optional[Mapping[str, Any]] = None,
                 resource_attributes: Optional[Mapping[str, Any]] = None,
                 context: Optional[Mapping[str, Any]] = None,
                 principal: Optional[str] = None, approvals: Optional[Any] = None,
                 now: Optional[float] = None, trace_id: Optional[str] = None,
                 extras: Optional[Mapping[str, Any]] = None, chain: Any = None) -> Decision:
        """Decide one tool call. Raises RequestError for input JSON cannot carry.
        context: the host's context object (time, risk, ...), read by "source": "Context".
        chain: the caller's principal chain, a token (verified with the issuers given to
        trust_issuer(), the result cached until it expires) or a verified principals.Chain;
        read by "source": "Principal" and ScopeCheck; one that does not verify is a Deny
        saying why. Without one, Principal conditions are unknown (docs/principals.md).
        approvals: signed approval tokens for an Elevate (see approve()); principal (the
        chain's label, else the role, when None) is what they bind to; now (Unix seconds) is
        when they are checked. principal, trace_id and extras also go to the audit trail, if
        one is attached (with the chain's label, issuer, jti and effective scopes)."""
        if chain is not None:
            return self._evaluate_chain(tool, args, role, agent_attributes, resource_attributes, context, chain,
                                        principal, approvals, now, trace_id, extras)
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

    def on_deny_burst(self, callback: Any, threshold: int = 20, window_s: float = 60.0,
                      key: str = "principal") -> None:
        """Call `callback` once per principal per window when its denials exceed threshold.
        key: "principal" (the call's principal), or "user" / "actor" (the first / last link
        of the verified principal chain; the principal for calls without one)."""
        if self._recorder is None:
            self._recorder = _attach(self, None, None)
        self._recorder.on_deny_burst(callback, threshold, window_s, key)

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

    def record_policy_change(self, **fields: Any) -> bool:
        """Record a policy reload (outcome "loaded" or "refused", old_digest, new_digest,
        source, reason) in the audit trail, if one is attached (True without one)."""
        return True if self._recorder is None else self._recorder.record_policy_change(**fields)

    def close(self) -> None:
        """Flush and close the audit trail, if one is attached (also at interpreter exit)."""
        if self._recorder is not None:
            self._recorder.close()

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def shadow_rules_candidate(compiled: Compiled) -> Optional[dict[str, Any]]:
    """The policy with its `"mode": "shadow"` rules enforcing too, when it has any: the audit
    trail evaluates it beside the policy and records where they differ (what the shadow
    rules would have changed); None when no rule is in shadow mode."""
    rules = getattr(compiled.policy, "rules", [])
    if not any(getattr(rule, "mode", "enforce") == "shadow" for rule in rules):
        return None
    doc: dict[str, Any] = compiled.policy.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
    doc["rules"] = [{k: v for k, v in rule.items() if k != "mode"} for rule in doc.get("rules", [])]
    return doc


def _attach(engine: Engine, audit: Any, shadow: Any) -> Recorder:
    from .audit import attach  # the audit trail: imported only when used

    return attach(engine, audit=audit, shadow=shadow)
