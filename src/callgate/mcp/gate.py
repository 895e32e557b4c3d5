"""The gate: one decision per tools/call, and the view of tools/list a role gets.

Identity (role and agent attributes) is fixed by the operator (stdio proxy) or by a
verified token (HTTP front), never taken from the message: the model controls `arguments`
and nothing else. Every failure to decide is a denial with a reason.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Union

import orjson

from ..engine import Engine
from ..errors import CallgateError
from ..language import uses_tiers
from .pins import InlinePins, PinStore, tool_digest
from .tiers import discovered_tiers

log = logging.getLogger("callgate.mcp")
DENIED_PREFIX = "Denied by policy: "
MODES = ("enforce", "shadow")
DENIAL_DETAILS = ("full", "rule", "generic")
GENERIC_DENIAL = "this call is not allowed"
APPROVALS_KEY = "callgate/approvals"   # params._meta key: signed approvals a host attaches
Resolver = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Identity:
    """Who is calling: the role the policy knows, the agent attributes its conditions read,
    an optional principal name for the audit trail, and the caller's principal chain: a
    token, a verified principals.Chain, or a source whose current() gives the token now
    (mcp.chains.ChainFile), verified by the engine for every call (docs/principals.md)."""

    role: str
    agent_attributes: Mapping[str, Any] = field(default_factory=dict)
    principal: Optional[str] = None
    chain: Any = None


def load_resolver(spec: str) -> Resolver:
    """`module:function` -> the callable. Raises ValueError with a one-line reason."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--resolver must be module:function, not {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"--resolver: cannot import {module_name!r}: {exc}") from None
    fn: object = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"--resolver: {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ValueError(f"--resolver: {spec} is not callable")
    return fn


MODERN_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"


def denial_result(reason: str, params: Any = None) -> dict[str, Any]:
    """A normal tool result the model can read: why the call did not run. Requests of the
    2026 protocol (the version stamped in params._meta) require an explicit resultType."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": DENIED_PREFIX + reason}], "isError": True}
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and MODERN_VERSION_KEY in meta:
        result["resultType"] = "complete"
    return result


class Verdict:
    """What the gate decided for one tools/call.

    `decision` is "Allow", "Deny" or "Elevate" (the engine's, or a Deny the gate made: bad
    params, an unresolvable resource, pins); `approvals_required` is 1-3 for Elevate;
    `approvals_given` says the call carried signed approvals in `_meta["callgate/approvals"]`;
    `trace_id` links the decision's audit event with what the proxy records after it. The
    engine's reason is only formatted when read (an allowed call never pays for it)."""

    __slots__ = ("decision", "_reason", "_source", "rule", "approvals_required", "tool", "args", "resource",
                 "trace_id", "approvals_given", "chain")
    _reason: Optional[str]
    _source: Any   # the engine's Decision while its reason is not read yet


    def __init__(self, decision: str, reason: Any, rule: Optional[int] = None, approvals_required: int = 0,
                 tool: Optional[str] = None, args: Optional[dict[str, Any]] = None,
                 resource: Optional[Mapping[str, Any]] = None, trace_id: Optional[str] = None,
                 approvals_given: bool = False, chain: Any = None) -> None:
        self.decision = decision
        self.chain = chain   # the verified principals.Chain the call carried, or None
        # a str, or the engine's Decision whose reason is read on demand
        self._reason, self._source = (reason, None) if isinstance(reason, str) else (None, reason)
        self.rule = rule
        self.approvals_required = approvals_required
        self.tool, self.args = tool, args
        self.resource = resource if resource is not None else {}
        self.trace_id = trace_id
        self.approvals_given = approvals_given

    @property
    def reason(self) -> str:
        """Why: the engine's reason (formatted when first read), or the gate's own."""
        if self._reason is None:
            self._reason = self._source.reason
        return self._reason

    @property
    def allowed(self) -> bool:
        """True only for Allow."""
        return self.decision == "Allow"

    def principal_of(self, identity: "Identity") -> Optional[str]:
        """Whom an approval of this call binds to and the trail names: the whole verified
        chain (`user+agent+...`) when the call carried one, else the identity's principal."""
        return self.chain.label if self.chain is not None else identity.principal

    def __repr__(self) -> str:
        return f"Verdict({self.decision!r}, {self.reason!r}, rule={self.rule!r}, approvals_required={self.approvals_required})"


_SHADOW = {"mode": "shadow"}


def _deny(reason: str, tool: Optional[str] = None, args: Optional[dict[str, Any]] = None) -> Verdict:
    return Verdict("Deny", reason, tool=tool, args=args)


def approvals_in(params: Any) -> tuple[Optional[list[str]], Optional[str]]:
    """(tokens, None) from params._meta["callgate/approvals"] (None when absent or empty), or
    (None, why) when it is there but not a list of strings."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or APPROVALS_KEY not in meta:
        return None, None
    tokens = meta[APPROVALS_KEY]
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        return None, f'params._meta["{APPROVALS_KEY}"] must be a list of approval strings'
    return (tokens or None), None


def without_approvals(msg: dict[str, Any]) -> dict[str, Any]:
    """The tools/call request as the server gets it: the approvals are for the gate only."""
    params = msg.get("params")
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or APPROVALS_KEY not in meta:
        return msg
    meta = {k: v for k, v in meta.items() if k != APPROVALS_KEY}
    params = dict(params)  # type: ignore[arg-type]  # (a dict: it holds meta)
    if meta:
        params["_meta"] = meta
    else:
        del params["_meta"]
    return dict(msg, params=params)


class Gate:
    """Decides tools/call requests and filters tools/list results for one policy.

    `seen` holds the digest of each tool definition as the upstream last listed it; with
    pins, a call is allowed only when that digest is the approved one.

    Tiers: when tiers can change a decision under the engine's policy (tier_defaults or
    tier rules; not in perso semantics), every tools/list result the gate sees gives the
    listed tools a tier from their annotations (tiers.py; `trusted` says whether the
    server's annotations are believed), and the engine is recompiled with them
    (`Engine.reload(discovered_tools=...)`). A call to a tool whose definition has not been
    seen since the last list_changed waits for a listing. What the policy means (tiers,
    defaults, visibility) is the compiled policy's (language.Meaning)."""

    def __init__(self, engine: Engine, resolver: Optional[Resolver] = None,
                 pins: Optional[Union[PinStore, InlinePins]] = None, *, trusted: bool = False, durable: bool = False,
                 chain_from_meta: bool = False, mode: str = "enforce", denial_detail: str = "full",
                 watcher: Any = None, telemetry: Any = None, state_key: Optional[bytes] = None,
                 state_ledger: Any = None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode is one of {', '.join(MODES)}, not {mode!r}")
        if denial_detail not in DENIAL_DETAILS:
            raise ValueError(f"denial detail is one of {', '.join(DENIAL_DETAILS)}, not {denial_detail!r}")
        self.engine = engine
        # shadow: every call is decided and recorded (marked "mode": "shadow"), then forwarded
        self.mode = mode
        # what the model reads of a denial: the full reason, only the rule, or nothing specific
        # (the audit trail keeps the full reason whatever this says)
        self.denial_detail = denial_detail
        self.watcher = watcher   # reloading.PolicyWatcher: the policy file, reloaded when it changes
        self.telemetry = telemetry   # telemetry.Telemetry: a span and metrics per decision (None: off)
        # the 2026 approval states' key and spent-nonce ledger: given, they are shared by
        # replicas (a state issued by one is accepted once, by any); else this process's own
        self._state_key, self._state_ledger = state_key, state_ledger
        # take a per-request chain from params._meta["callgate/chain"] (the operator's choice;
        # otherwise such a token is ignored and the configured identity decides)
        self.chain_from_meta = chain_from_meta
        self.durable = durable   # forward a call only once its decision is durable in the audit trail
        self.resolver = resolver
        self.pins = pins
        self.trusted = trusted
        self.seen: dict[str, str] = {}
        self.schemas: dict[str, Any] = {}   # tool -> its inputSchema as last listed (Mcp-Param-* headers)
        self.stale = True   # no tools/list seen yet, or list_changed since
        self.tiers: dict[str, str] = {}          # discovered tool -> resolved tier
        self.tier_error: Optional[str] = None    # the last reload with discovered tiers failed
        compiled = engine.compiled
        self.discovery = compiled.semantics != "perso" and uses_tiers(compiled.policy)
        self._lock = threading.Lock()
        self._states: Any = None

    def approval_states(self) -> Any:
        """The request states this gate issues for approvals asked on the 2026 revision
        (approval_state.ApprovalStates: a key and a spent-nonce ledger of this process),
        made on first use."""
        if self._states is None:
            from .approval_state import ApprovalStates

            with self._lock:
                if self._states is None:
                    self._states = ApprovalStates(key=self._state_key, ledger=self._state_ledger)
        return self._states

    # ------------------------------------------------------------ listing

    def tier_of(self, tool: str) -> Optional[str]:
        """The tool's tier: discovered from the server, else the policy's own, else None."""
        return self.engine.compiled.tier_of(tool)

    def visible(self, tool: str, role: str) -> bool:
        """Could `role` ever be allowed to call `tool`? (language.Meaning.visible: the contract
        written in docs/mcp.md.)"""
        return self.engine.compiled.visible(tool, role)

    def record_tools(self, tools: list[Any]) -> None:
        """Remember the definitions a tools/list page showed (for the pins check), and with
        tier discovery, their tiers (reloading the engine when they change)."""
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.seen[tool["name"]] = tool_digest(tool)
                self.schemas[tool["name"]] = tool.get("inputSchema")
        if self.discovery:
            self._discover(tools)

    def _discover(self, tools: list[Any]) -> None:
        found = discovered_tiers(tools, trusted=self.trusted, policy=self.engine.compiled.policy)
        with self._lock:
            if all(self.tiers.get(name) == tier for name, tier in found.items()) and self.tier_error is None:
                return
            tiers = dict(self.tiers, **found)
            try:
                self.engine.reload(discovered_tools=tiers)
            except Exception as exc:  # fail closed: the discovered tools are denied (check())
                self.tier_error = f"{type(exc).__name__}: {exc}"
                log.error("the tiers of the server's tools could not be applied (%s)", self.tier_error)
            else:
                self.tier_error = None
                log.info("%d tool(s) of the server have tiers now; policy digest %s (what approvals bind to)",
                         len(tiers), self.engine.policy_digest)
            self.tiers = tiers

    def filter_tools(self, tools: list[Any], role: str) -> list[dict[str, Any]]:
        """The tools of one page the role may see: policy-visible, and with pins, approved
        and unchanged (a changed description must not reach the model before a human
        approves it)."""
        kept = []
        for tool in tools:
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                continue  # not a tool definition: never shown
            name = tool["name"]
            if not self.visible(name, role):
                continue
            if self.pins is not None and self.pins.problem(name, self.seen.get(name)) is not None:
                continue
            kept.append(tool)
        return kept

    def filter_list_result(self, result: Any, role: str) -> Optional[dict[str, Any]]:
        """Filter a tools/list result in place of a copy; None when nothing changed (the
        relay then forwards the original bytes)."""
        if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
            return None
        tools = result["tools"]
        self.record_tools(tools)
        kept = self.filter_tools(tools, role)
        if len(kept) == len(tools):
            return None
        return dict(result, tools=kept)

    def mark_stale(self) -> None:
        """The upstream said its tool list changed: definitions must be listed again."""
        self.stale = True
        self.seen.clear()
        self.schemas.clear()   # Mcp-Param-* headers are checked against current definitions only

    # ------------------------------------------------------------ the audit trail

    def audit_mark(self) -> Optional[int]:
        """With durable forwarding and an audit trail: the position the trail must have made
        durable before the call just decided may be forwarded (None: forward at once)."""
        if not self.durable:
            return None
        recorder = self.engine.recorder
        return None if recorder is None else recorder.durable_mark()

    def wait_durable(self, mark: int, timeout: float) -> Optional[str]:
        """Block until the audit trail is durable up to `mark`: None, or why it is not."""
        recorder = self.engine.recorder
        if recorder is None:
            return None
        why: Optional[str] = recorder.wait_durable(mark, timeout)
        return why

    # ------------------------------------------------------------ calls

    def needs_definitions(self, tool: str) -> bool:
        """With pins, tier discovery or closed arguments, a call needs the tool's current
        definition before it can be decided."""
        return (self.pins is not None or self.discovery or self.arguments_closed(tool)) and tool not in self.seen

    def arguments_closed(self, tool: str) -> bool:
        """Whether the policy closes this tool's arguments (`"arguments"`: its name, else its
        tier as `tier:TIER`, else a glob that matches it)."""
        closed = getattr(self.engine.compiled.policy, "arguments", None)
        if not closed:
            return False
        if tool in closed:
            return bool(closed[tool] == "closed")
        tier = self.engine.compiled.meaning.tier_of(tool)
        if tier is not None and f"tier:{tier}" in closed:
            return bool(closed[f"tier:{tier}"] == "closed")
        from ..language import glob_match

        return any(v == "closed" for k, v in closed.items() if "*" in k and glob_match(k, tool))

    def _unreviewed_argument(self, tool: str, args: Mapping[str, Any]) -> Optional[str]:
        """With closed arguments: why an argument is not in the tool's input schema (as the
        server last listed it), or None."""
        schema = self.schemas.get(tool)
        props = schema.get("properties") if isinstance(schema, dict) else None
        if not isinstance(props, dict):
            return (f"the input schema of {tool} is not known, and its arguments are closed: the call cannot be "
                    "checked against it")
        extra = sorted(k for k in args if k not in props)
        if extra:
            return (f"argument '{extra[0]}' is not in the input schema of {tool} (its arguments are closed: a "
                    "parameter nobody reviewed)")
        return None

    def decide(self, params: Any, identity: Identity) -> Verdict:
        """The verdict on a tools/call (see _decide); with telemetry, inside a span that
        continues the W3C trace context of the request's _meta, counted by outcome."""
        tel = self.telemetry
        if tel is None:
            return self._decide(params, identity)
        tool = params.get("name") if isinstance(params, dict) else None
        meta = params.get("_meta") if isinstance(params, dict) else None
        carrier = {k: v for k, v in meta.items() if k in ("traceparent", "tracestate") and isinstance(v, str)} \
            if isinstance(meta, dict) else None
        started = time.perf_counter()
        with tel.span(tool if isinstance(tool, str) else "", "proxy", carrier=carrier) as span:
            verdict = self._decide(params, identity)
            tel.decided(span, verdict.tool or "", verdict.decision, time.perf_counter() - started,
                        verdict.principal_of(identity))
        return verdict

    def _decide(self, params: Any, identity: Identity) -> Verdict:
        """The verdict on a tools/call with these params. Signed approvals in
        params._meta["callgate/approvals"] are passed to the engine (an Elevate they satisfy
        is an Allow). With an audit trail, the call gets a trace id."""
        if not isinstance(params, dict):
            return _deny("tools/call params must be an object")
        tool = params.get("name")
        if not isinstance(tool, str):
            return _deny("tools/call needs a tool name (a string)")
        args = params.get("arguments")
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            return _deny(f"the arguments of {tool} must be an object", tool)
        if self.watcher is not None:
            self.watcher.poll()   # a changed policy file is reloaded before this call is decided
        tokens, problem = approvals_in(params)
        if problem is not None:
            return _deny(problem, tool, args)
        chain, problem = self._chain(params, identity)
        if problem is not None:
            return _deny(problem, tool, args)
        if self.tier_error is not None and tool in self.tiers:
            return _deny(f"the tier of {tool} (from the server's annotations) could not be applied to the policy "
                         f"({self.tier_error})", tool, args)
        resource: Mapping[str, Any] = {}
        if self.resolver is not None:
            try:
                resource = self.resolver(tool, args)
            except Exception as exc:  # fail closed: an unknown owner grants nothing
                return _deny(f"resource attributes for {tool} could not be resolved ({type(exc).__name__}: {exc})",
                             tool, args)
            if resource is None:
                resource = {}
            elif not isinstance(resource, Mapping):
                return _deny(f"the resolver returned {type(resource).__name__}, not a mapping", tool, args)
        engine = self.engine
        trace_id = None
        if engine.recorder is not None:   # the decision's event is linked to what the proxy records later
            trace_id = uuid.uuid4().hex
        # in shadow mode the event says the decision was not enforced
        extras = _SHADOW if self.mode == "shadow" else None
        try:
            if isinstance(chain, str):   # refused: the engine decides (a Deny saying why) and records it
                d = engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                    resource_attributes=resource, principal=identity.principal, trace_id=trace_id,
                                    chain=chain, extras=extras)
                return Verdict(d.decision, d, d.rule, 0, tool, args, resource, trace_id, bool(tokens))
            if tokens:
                d = engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                    resource_attributes=resource, principal=identity.principal, trace_id=trace_id,
                                    approvals=tokens, chain=chain, extras=extras)
            else:
                d = engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                    resource_attributes=resource, principal=identity.principal, trace_id=trace_id,
                                    chain=chain, extras=extras)
            verdict = Verdict(d.decision, d, d.rule, getattr(d, "approvals_required", 0), tool, args,
                              resource, trace_id, bool(tokens), chain)
        except CallgateError as exc:
            return _deny(str(exc), tool, args)
        except Exception:  # pragma: no cover - a bug must still deny
            log.exception("internal error deciding %s", tool)
            return _deny("internal error while deciding", tool, args)
        if verdict.decision not in ("Allow", "Elevate"):
            return verdict
        if self.arguments_closed(tool):   # schema drift: an argument the reviewed schema lacks
            problem = self._unreviewed_argument(tool, args)
            if problem is not None:
                return Verdict("Deny", problem, verdict.rule, 0, tool, args, resource, trace_id, bool(tokens), chain)
        if self.pins is not None:  # never ask a human to approve a changed definition either
            problem = self.pins.problem(tool, self.seen.get(tool))
            if problem is not None:
                return Verdict("Deny", problem, verdict.rule, 0, tool, args, resource, trace_id, bool(tokens), chain)
        return verdict

    def shown(self, reason: str, verdict: Optional["Verdict"] = None) -> str:
        """What the model reads of a denial (after "Denied by policy: "), per denial_detail:
        the full reason; only the deciding rule (its id, or its number); or a generic line."""
        if self.denial_detail == "full":
            return reason
        if self.denial_detail == "generic" or verdict is None or verdict.rule is None:
            return GENERIC_DENIAL
        rules = self.engine.compiled.policy.rules
        rule_id = getattr(rules[verdict.rule], "id", None) if 0 <= verdict.rule < len(rules) else None
        return f"{GENERIC_DENIAL} (rule {rule_id or verdict.rule + 1})"

    def _chain(self, params: dict[str, Any], identity: Identity) -> tuple[Any, Optional[str]]:
        """The call's principal chain: (a verified Chain, None); (None, None) without one;
        (the token, None) when it does not verify, so that the engine records the refusal;
        (None, why) when _meta carries something that is not a token."""
        from .chains import chain_in_meta

        token: Any = None
        if self.chain_from_meta:
            token, problem = chain_in_meta(params)
            if problem is not None:
                return None, problem
        if token is None:
            token = identity.chain
            current = getattr(token, "current", None)
            if current is not None:   # a chain source (a file re-read when it changes)
                token = current()
        if token is None or not isinstance(token, str):
            return token, None   # nothing, or a Chain already verified
        from ..principals import ChainError

        try:
            return self.engine.verify_chain(token), None
        except ChainError:
            return token, None

    def check(self, params: Any, identity: Identity) -> Optional[str]:
        """None when a tools/call with these params may run; otherwise the reason it may not
        (an Elevate that its approvals did not satisfy is a denial saying approval is required)."""
        v = self.decide(params, identity)
        if v.allowed:
            return None
        if v.decision == "Elevate":
            return elevate_reason(v, None)
        return v.reason


def elevate_reason(v: Verdict, why: Optional[str]) -> str:
    """The reason an Elevate did not run: the engine's reason (with its account of any
    approvals attached), that approval is required, why it was not obtained (`why`, e.g. "the
    user declined"; None when nothing was asked) and how to supply it."""
    n = v.approvals_required
    count = f"{n} approval{'s' if n != 1 else ''}"
    if v.approvals_given:
        how = "the approvals attached do not satisfy it"
    else:
        how = f'attach {count} signed for this call in params._meta["{APPROVALS_KEY}"]'
    return f"{v.reason}; approval required ({count}): " + (f"{why}; {how}" if why else how)


def parse_attr(items: list[str]) -> dict[str, Any]:
    """--agent-attr KEY=VALUE: VALUE is JSON when it parses (true, 3, "x"), else a string."""
    attrs: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--agent-attr must be KEY=VALUE, not {item!r}")
        try:
            attrs[key] = orjson.loads(value)
        except orjson.JSONDecodeError:
            attrs[key] = value
    return attrs
