"""The gate: one decision per tools/call, and the view of tools/list a role gets.

Identity (role and agent attributes) is fixed by the operator (stdio proxy) or by a
verified token (HTTP front), never taken from the message: the model controls `arguments`
and nothing else. Every failure to decide is a denial with a reason.
"""

from __future__ import annotations

import importlib
import logging
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import orjson

from ..engine import Engine
from ..errors import CallgateError
from ..language import uses_tiers
from .pins import PinStore, tool_digest
from .tiers import discovered_tiers

log = logging.getLogger("callgate.mcp")
DENIED_PREFIX = "Denied by policy: "
APPROVALS_KEY = "callgate/approvals"   # params._meta key: signed approvals a host attaches
Resolver = Callable[[str, Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class Identity:
    """Who is calling: the role the policy knows, the agent attributes its conditions read,
    and an optional principal name for the audit trail."""

    role: str
    agent_attributes: Mapping[str, Any] = field(default_factory=dict)
    principal: Optional[str] = None


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
                 "trace_id", "approvals_given")
    _reason: Optional[str]
    _source: Any   # the engine's Decision while its reason is not read yet


    def __init__(self, decision: str, reason: Any, rule: Optional[int] = None, approvals_required: int = 0,
                 tool: Optional[str] = None, args: Optional[dict[str, Any]] = None,
                 resource: Optional[Mapping[str, Any]] = None, trace_id: Optional[str] = None,
                 approvals_given: bool = False) -> None:
        self.decision = decision
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

    def __repr__(self) -> str:
        return f"Verdict({self.decision!r}, {self.reason!r}, rule={self.rule!r}, approvals_required={self.approvals_required})"


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
                 pins: Optional[PinStore] = None, *, trusted: bool = False, durable: bool = False) -> None:
        self.engine = engine
        self.durable = durable   # forward a call only once its decision is durable in the audit trail
        self.resolver = resolver
        self.pins = pins
        self.trusted = trusted
        self.seen: dict[str, str] = {}
        self.stale = True   # no tools/list seen yet, or list_changed since
        self.tiers: dict[str, str] = {}          # discovered tool -> resolved tier
        self.tier_error: Optional[str] = None    # the last reload with discovered tiers failed
        compiled = engine.compiled
        self.discovery = compiled.semantics != "perso" and uses_tiers(compiled.policy)
        self._lock = threading.Lock()

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
        """With pins or tier discovery, a call needs the tool's current definition before it
        can be decided."""
        return (self.pins is not None or self.discovery) and tool not in self.seen

    def decide(self, params: Any, identity: Identity) -> Verdict:
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
        tokens, problem = approvals_in(params)
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
        try:
            if tokens:
                d = engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                    resource_attributes=resource, principal=identity.principal, trace_id=trace_id,
                                    approvals=tokens)
            else:
                d = engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                    resource_attributes=resource, principal=identity.principal, trace_id=trace_id)
            verdict = Verdict(d.decision, d, d.rule, getattr(d, "approvals_required", 0), tool, args,
                              resource, trace_id, bool(tokens))
        except CallgateError as exc:
            return _deny(str(exc), tool, args)
        except Exception:  # pragma: no cover - a bug must still deny
            log.exception("internal error deciding %s", tool)
            return _deny("internal error while deciding", tool, args)
        if verdict.decision not in ("Allow", "Elevate"):
            return verdict
        if self.pins is not None:  # never ask a human to approve a changed definition either
            problem = self.pins.problem(tool, self.seen.get(tool))
            if problem is not None:
                return Verdict("Deny", problem, verdict.rule, 0, tool, args, resource, trace_id, bool(tokens))
        return verdict

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
