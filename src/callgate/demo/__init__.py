"""`callgate demo`: the CRM story through a real MCP server, a real MCP client and the proxy.

    crm          the mock CRM's data and its resource resolver (`callgate.demo.crm:resolve`)
    crm_server   the example CRM MCP server (`python -m callgate.demo.crm_server`)
    play         the demo itself: the scenes as a cases file, played through the proxy
    pipes        an `mcp` SDK ClientSession over two byte pipes (the proxy is hosted in-process)

Nothing here is part of the gate: the demo uses callgate.mcp as any host would.
"""

from __future__ import annotations

from .play import DemoError, run_demo

__all__ = ["DemoError", "run_demo"]
