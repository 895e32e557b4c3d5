"""guard(): the same policy enforced inside a server built with the official `mcp` SDK.

It is middleware on the server's inbound messages (the SDK's `ServerMiddleware`: an
`async (ctx, call_next)` callable), so it runs before argument validation and before the
tool: a denied call never reaches the tool function, and tools/list shows each caller only
what it could be allowed to call. Identity comes from the server's own request context
through a function you supply, e.g. from the authenticated HTTP request:

    server = MCPServer("crm")
    callgate.mcp.guard(server, "policy.json",
                       identity=lambda ctx: Identity(ctx.request.state.role, {"user_id": ...}),
                       resolver=crm.resolve)

An Elevate is decided like on the wire (elevate.py): signed approvals in the call's
`_meta["callgate/approvals"]`, else, when the client declared form elicitation and the
count is within `elevation.max_approvals`, the user is asked, else the call is denied
saying approval is required. On the handshake revisions the user is asked through the
server's own session (`elicit_form`); on 2026-07-28 with an input_required result whose
signed requestState binds the approval to the call (approval_state.py). With a
decoded policy (or a path) that uses tiers, the server's tools get tiers from their
annotations (`trusted=True` believes them; see tiers.py).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from ..engine import Engine
from ..extras import require
from . import elevate, modern
from .gate import APPROVALS_KEY, Gate, Identity, Resolver, Verdict, denial_result
from .pins import PinStore

IdentityFn = Callable[[Any], Union[Identity, None, Any]]


class Guard:
    """ServerMiddleware that decides tools/call and filters tools/list."""

    def __init__(self, gate: Gate, identity: IdentityFn, server: Any = None,
                 elevation: Optional[elevate.Elevation] = None) -> None:
        self.gate = gate
        self.identity = identity
        self.server = server
        self.elevation = elevation if elevation is not None else elevate.Elevation()

    async def _who(self, ctx: Any) -> Optional[Identity]:
        try:
            who = self.identity(ctx)
            if inspect.isawaitable(who):
                who = await who
        except Exception:  # no identity, no access
            return None
        return who if isinstance(who, Identity) else None

    async def __call__(self, ctx: Any, call_next: Any) -> Any:
        method = getattr(ctx, "method", None)
        if method == "tools/call" and getattr(ctx, "request_id", None) is not None:
            who = await self._who(ctx)
            params = dict(ctx.params) if isinstance(ctx.params, Mapping) else ctx.params
            if who is None:
                return _denied("the server could not establish who is calling")
            if isinstance(params, dict) and isinstance(params.get("arguments"), Mapping):
                params["arguments"] = dict(params["arguments"])
            if isinstance(params, dict):
                meta = params.get("_meta") if isinstance(params.get("_meta"), Mapping) else getattr(ctx, "meta", None)
                if isinstance(meta, Mapping) and APPROVALS_KEY in meta:
                    params["_meta"] = dict(meta)
                if isinstance(params.get("name"), str) and self.gate.needs_definitions(params["name"]):
                    await self._list_tools()
            verdict = self.gate.decide(params, who)
            if self.gate.mode == "shadow":   # decided and recorded; the tool runs whatever was decided
                return await call_next(ctx)
            if not verdict.allowed and _is_modern(ctx) and verdict.decision == "Elevate" and isinstance(params, dict):
                return await self._modern(ctx, call_next, verdict, who, params)
            if not verdict.allowed:
                reason = await self._not_allowed(ctx, verdict, who)
                if reason is not None:
                    return _denied(self.gate.shown(reason, verdict))
            return await call_next(ctx)
        result = await call_next(ctx)
        if method == "tools/list":
            who = await self._who(ctx)
            tools = getattr(result, "tools", None)
            if isinstance(tools, list):  # the SDK's ListToolsResult: keep the models, filter by their wire form
                wire = [t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools]
                self.gate.record_tools(wire)
                names = {t["name"] for t in self.gate.filter_tools(wire, who.role)} if who else set()
                return result.model_copy(update={"tools": [t for t in tools if t.name in names]})
            if isinstance(result, dict):
                filtered = self.gate.filter_list_result(result, who.role) if who else dict(result, tools=[])
                if filtered is not None:
                    return filtered
        return result


    async def _list_tools(self) -> None:
        """The server's own tool definitions, for tiers (and pins) before a first listing."""
        lister = getattr(self.server, "list_tools", None)
        if lister is None:
            return
        try:
            tools = await lister()
            self.gate.record_tools([t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in tools])
        except Exception:  # undiscovered tools are decided without a discovered tier
            return

    async def _modern(self, ctx: Any, call_next: Any, v: Verdict, who: Identity, params: dict[str, Any]) -> Any:
        """An Elevate on a request of the 2026 revision (elevate.modern_step): the approval
        question as an input_required result (the SDK's request-state boundary seals the
        proxy's state once more on the way out and opens it on the way back), a denial, or,
        for a retry the state and the user's answer approve, the call without them."""
        meta = params.get("_meta")
        caps = meta.get(modern.CAPABILITIES_KEY) if isinstance(meta, Mapping) else None
        step = elevate.modern_step(v, who, self.gate, params, capabilities=dict(caps) if isinstance(caps, Mapping)
                                   else None, elevation=self.elevation)
        if isinstance(step, elevate.Ask):
            return step.result
        if isinstance(step, elevate.Deny):
            return _denied(self.gate.shown(step.reason, v))
        return await call_next(dataclasses.replace(ctx, params=step.params))

    async def _not_allowed(self, ctx: Any, v: Verdict, who: Identity) -> Optional[str]:
        """The reason the call does not run, or None when the user approved it (asked through
        the server's own session: elicit_form, legacy sessions only)."""
        if v.decision != "Elevate":
            return v.reason
        session: Any = getattr(ctx, "session", None)   # the SDK's session (None: elicit_form fails below)
        caps: Any = getattr(session, "client_capabilities", None)
        wire_caps = caps.model_dump(by_alias=True, exclude_none=True) if hasattr(caps, "model_dump") else caps
        reason = elevate.refusal(v, who, self.gate, capabilities=wire_caps, elevation=self.elevation)
        if reason is not None:
            return reason
        params = elevate.elicitation_params(v)
        try:
            import anyio

            with anyio.fail_after(self.elevation.timeout):
                answer = await session.elicit_form(params["message"], params["requestedSchema"],
                                                   related_request_id=getattr(ctx, "request_id", None))
            outcome, why = elevate.outcome_of({"result": answer.model_dump(by_alias=True, exclude_none=True)})
        except TimeoutError:
            outcome, why = elevate.TIMEOUT, f"no answer within {self.elevation.timeout:g} s"
        except Exception as exc:  # no back-channel, an error answer: not approved
            outcome, why = elevate.ERROR, f"the client could not ask the user ({type(exc).__name__}: {exc})"
        return elevate.settle(v, who, self.gate, outcome, why)


def _is_modern(ctx: Any) -> bool:
    """Whether the request is of the 2026 revision (no requests to the client: approvals go
    through input_required)."""
    version = getattr(ctx, "protocol_version", None)
    return isinstance(version, str) and version >= elevate.MODERN_SINCE


def _denied(reason: str) -> Any:
    """The denial as the SDK's own result type, so it is rendered right for every protocol version."""
    from mcp.types import CallToolResult, TextContent

    d = denial_result(reason)
    return CallToolResult(content=[TextContent(type="text", text=d["content"][0]["text"])], is_error=True)


def guard(server: Any, policy: Union[str, Engine, Mapping[str, Any]], *, identity: IdentityFn,
          resolver: Optional[Resolver] = None, pins: Optional[str] = None, trusted: bool = False,
          elevation: Optional[elevate.Elevation] = None, mode: str = "enforce", denial_detail: str = "full",
          reload: bool = True) -> Guard:
    """Install a Guard on `server` (an MCPServer or a low-level Server: anything with a
    `middleware` list) and return it. `policy` is a path, a decoded policy or an Engine;
    `identity(ctx)` returns the caller's Identity (or None: every call is then denied);
    `trusted`: the tools' annotations set their tiers (when tiers matter to the policy);
    `elevation`: how Elevate asks the user; `mode` "shadow": decide and record, never
    block; `denial_detail` "full" | "rule" | "generic": what the model reads of a denial;
    `reload`: a policy given as a path is reloaded when the file changes (and by
    `Guard.gate.watcher.reload()`, e.g. from the host's SIGHUP handler)."""
    require("mcp", "guard()", "mcp")
    if isinstance(policy, Engine):
        engine = policy
    elif isinstance(policy, Mapping):
        engine = Engine.from_dict(policy)
    else:
        engine = Engine.from_file(policy)
    chain = getattr(server, "middleware", None)
    if not isinstance(chain, list):
        raise TypeError("guard() needs an mcp SDK server with a middleware list (mcp>=2)")
    watcher = None
    if reload and not isinstance(policy, (Engine, Mapping)):
        from ..reloading import PolicyWatcher

        watcher = PolicyWatcher(engine, policy)
    from .pins import policy_pins

    required = PinStore(pins) if pins else policy_pins(engine.compiled, None if isinstance(policy, (Engine, Mapping))
                                                       else str(policy))
    gate = Gate(engine, resolver, required, trusted=trusted, mode=mode,
                denial_detail=denial_detail, watcher=watcher)
    g = Guard(gate, identity, server, elevation)
    chain.append(g)
    return g
