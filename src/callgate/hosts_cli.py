"""`callgate wrap CONFIG --server NAME --policy P [--role R]` and `callgate unwrap CONFIG
--server NAME`: put one server of an agent host's MCP configuration (Claude Desktop, Cursor,
VS Code) behind the proxy, and take it back out, byte for byte (callgate.hosts)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import textout
from .cli import add_command

if TYPE_CHECKING:
    from .cli import Commands


def wrap_cmd(args: argparse.Namespace) -> int:
    """Rewrite the server's entry to start it through `callgate proxy`."""
    from .hosts import HostConfigError, wrap_file

    proxy_args = []
    for path in args.pins or []:
        proxy_args += ["--pins", str(Path(path).resolve())]
    if args.audit:
        proxy_args += ["--audit", str(Path(args.audit).resolve())]
    try:
        wrap_file(Path(args.config), args.server, policy=str(Path(args.policy).resolve())
                  if Path(args.policy).exists() else args.policy, role=args.role, proxy_args=proxy_args)
    except HostConfigError as exc:
        textout.error(str(exc))
        return 2
    textout.echo(f"{args.config}: {args.server} now starts through callgate proxy (callgate unwrap restores it)")
    return 0


def unwrap_cmd(args: argparse.Namespace) -> int:
    """Restore the server's entry exactly as it was before `callgate wrap`."""
    from .hosts import HostConfigError, unwrap_file

    try:
        unwrap_file(Path(args.config), args.server)
    except HostConfigError as exc:
        textout.error(str(exc))
        return 2
    textout.echo(f"{args.config}: {args.server} restored")
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate wrap` and `callgate unwrap` to the command line (cli.build_parser)."""
    p = add_command(commands, "wrap", wrap_cmd, """Put one MCP server of a host's configuration behind the proxy.

CONFIG is the host's JSON file (Claude Desktop's claude_desktop_config.json, Cursor's
mcp.json: "mcpServers"; VS Code's mcp.json: "servers"). The entry keeps its env and cwd;
only it changes in the file, and `callgate unwrap` restores its exact bytes.""")
    p.add_argument("config", metavar="CONFIG", help="the host's configuration file")
    p.add_argument("--server", required=True, metavar="NAME", help="the server's name in the file")
    p.add_argument("--policy", required=True, metavar="POLICY", help="the policy the proxy enforces")
    p.add_argument("--role", help="the role the host's calls have")
    p.add_argument("--pins", action="append", metavar="PINS.json", help="the pins file (reviewed tool definitions)")
    p.add_argument("--audit", metavar="FILE", help="record decisions (an audit log file)")

    p = add_command(commands, "unwrap", unwrap_cmd, "Restore a server that `callgate wrap` put behind the proxy.")
    p.add_argument("config", metavar="CONFIG", help="the host's configuration file")
    p.add_argument("--server", required=True, metavar="NAME", help="the server's name in the file")
