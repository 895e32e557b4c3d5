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
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, Callable, Optional, Union

from ..engine import Engine
from .gate import Gate, Identity, Resolver, denial_result
from .pins import PinStore

IdentityFn = Callable[[Any], Union[Identity, None, Any]]


class Guard:
    """ServerMiddleware that decides tools/call and filters tools/list."""

    def __init__(self, gate: Gate, identity: IdentityFn) -> None:
        self.gate = gate
        self.identity = identity

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
            reason = self.gate.check(params, who)
            if reason is not None:
                return _denied(reason)
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


def _denied(reason: str) -> Any:
    """The denial as the SDK's own result type, so it is rendered right for every protocol version."""
    from mcp.types import CallToolResult, TextContent

    d = denial_result(reason)
    return CallToolResult(content=[TextContent(type="text", text=d["content"][0]["text"])], is_error=True)


def guard(server: Any, policy: Union[str, Engine, Mapping[str, Any]], *, identity: IdentityFn,
          resolver: Optional[Resolver] = None, pins: Optional[str] = None) -> Guard:
    """Install a Guard on `server` (an MCPServer or a low-level Server: anything with a
    `middleware` list) and return it. `policy` is a path, a decoded policy or an Engine;
    `identity(ctx)` returns the caller's Identity (or None: every call is then denied)."""
    if isinstance(policy, Engine):
        engine = policy
    elif isinstance(policy, Mapping):
        engine = Engine.from_dict(policy)
    else:
        engine = Engine.from_file(policy)
    chain = getattr(server, "middleware", None)
    if not isinstance(chain, list):
        raise TypeError("guard() needs an mcp SDK server with a middleware list (mcp>=2)")
    g = Guard(Gate(engine, resolver, PinStore(pins) if pins else None), identity)
    chain.append(g)
    return g
