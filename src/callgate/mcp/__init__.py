"""callgate on the wire: policy enforcement in front of (or inside) MCP servers.

- `callgate proxy` (proxy.py): a stdio relay between an MCP client and a server it starts;
- `callgate proxy --listen` (http_front.py): the same gate behind Streamable HTTP, identity
  from a verified bearer JWT;
- `guard()` (guard_sdk.py): the gate as middleware inside a server built with the `mcp` SDK;
- session.py is the sans-IO session core both transports drive (ids, framing through
  wire.py, the tools/call decision, listing, approvals, bounds, batches); gate.py decides,
  pins.py remembers approved tool definitions, tiers.py gives the tools a server lists a tier
  from their annotations, elevate.py gets the approval an Elevate asks for (signed approvals
  in _meta, or the user through an elicitation). The demo and its CRM server are in
  callgate.demo.

Nothing here imports the `mcp` SDK at import time: the stdio proxy works without it.
"""

from __future__ import annotations

from typing import Any

from .gate import DENIED_PREFIX, Gate, Identity, load_resolver

__all__ = ["DENIED_PREFIX", "Gate", "Identity", "guard", "load_resolver"]


def guard(*args: Any, **kwargs: Any) -> Any:
    """Enforce a policy inside an `mcp` SDK server; see callgate.mcp.guard_sdk.guard."""
    from .guard_sdk import guard as _guard

    return _guard(*args, **kwargs)
