"""Not tests: an MCP server (official SDK) whose tools carry annotations and are named in no
policy, for the tier tests (tests/mcp/test_mcp_tiers.py). Each call that runs is journaled.

    python tests/support/mcp_tools_server.py --journal FILE
"""

from __future__ import annotations

import argparse
from typing import Any, Optional

import orjson

# name -> annotations (MCP ToolAnnotations, wire names)
TOOLS = {
    "lookup": {"readOnlyHint": True},
    "append_note": {},
    "wipe": {"destructiveHint": True},
    "peek": {"readOnlyHint": True, "destructiveHint": True},
}


def build_server(journal: Optional[str] = None) -> Any:
    from mcp.server.mcpserver import MCPServer
    from mcp.types import ToolAnnotations

    server = MCPServer("callgate-test-annotated")

    def add(name: str, hints: dict) -> None:
        def tool(target: str = "x") -> str:
            if journal:
                with open(journal, "ab") as f:
                    f.write(orjson.dumps({"tool": name, "args": {"target": target}}) + b"\n")
            return f"{name} {target}"

        annotations = ToolAnnotations(read_only_hint=hints.get("readOnlyHint"),
                                      destructive_hint=hints.get("destructiveHint")) if hints else None
        server.add_tool(tool, name=name, description=f"the {name} tool", annotations=annotations)

    for name, hints in TOOLS.items():
        add(name, hints)
    return server


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--journal")
    build_server(parser.parse_args().journal).run("stdio")
