"""`callgate init -o POLICY.json [--cases CASES.json] [--pins PINS.json] [--trusted] --
SERVER_COMMAND` (or `--url URL`): connect to a live MCP server, list its tools and write a
starter policy that `callgate check` and `callgate test` pass (callgate.starter), its
cases and the tools' pins."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from . import textout
from .cli import add_command, why_unwritable

if TYPE_CHECKING:
    from .cli import Commands


def _fail(message: str, code: int = 2) -> SystemExit:
    textout.error(message)
    return SystemExit(code)


def _write(option: str, path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise _fail(f"{option} {path}: cannot write: {why_unwritable(path, exc)}") from None


def init_cmd(args: argparse.Namespace) -> int:
    """List the server's tools; write the starter policy, its cases and its pins."""
    from .mcp.pins import PinStore
    from .server_check import ListingError, live_tools
    from .starter import starter_cases, starter_policy, tools_of

    if bool(args.server_command) == bool(args.url):
        raise _fail("give the server once: -- SERVER_COMMAND, or --url URL")
    try:
        listing = live_tools(args.server_command, args.url)
    except ListingError as exc:
        raise _fail(str(exc), 1) from None
    tools = tools_of(listing)
    if not tools:
        raise _fail("the server lists no tools: nothing to write a policy for", 1)
    server = args.url or " ".join(args.server_command)
    policy = starter_policy(tools, trusted=args.trusted, server=server, roles=args.role or ["agent"])
    _write("-o", args.output, orjson.dumps(policy, option=orjson.OPT_INDENT_2) + b"\n")
    if args.cases:
        _write("--cases", args.cases, orjson.dumps(starter_cases(policy), option=orjson.OPT_INDENT_2) + b"\n")
    if args.pins:
        if not args.pins.parent.is_dir():
            raise _fail(f"--pins {args.pins}: the directory {args.pins.parent} does not exist (create it first)")
        PinStore(args.pins).approve(tools)
    for name in policy["tools"]:
        textout.echo(f"{name}\t{policy['tool_tiers'][name]}")
    wrote = [str(args.output), *(str(p) for p in (args.cases, args.pins) if p)]
    sys.stderr.write(f"{len(tools)} tools; wrote {', '.join(wrote)}\n")
    return 0


def register(commands: "Commands") -> None:
    """Add `callgate init` to the command line (cli.build_parser)."""
    p = add_command(commands, "init", init_cmd, """Write a starter policy for a live MCP server.

Connects (-- SERVER_COMMAND for a stdio server, --url for Streamable HTTP), lists its tools
and writes a policy declaring each with the tier its annotations give it (with --trusted;
otherwise readOnlyHint is ignored and tools start at write), tier defaults (public and read
allow, write elevate 1, destructive elevate 2) and a role skeleton; with --cases one case per
tool, with --pins the tools' reviewed definitions. `callgate check` and `callgate test` pass
on what it writes.""")
    p.add_argument("server_command", nargs="*", metavar="SERVER_COMMAND", help="-- SERVER_COMMAND [ARGS...]")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="POLICY.json", help="the policy to write")
    p.add_argument("--cases", type=Path, metavar="CASES.json", help="also write one case per tool")
    p.add_argument("--pins", type=Path, metavar="PINS.json", help="also pin the tools' definitions")
    p.add_argument("--url", help="a Streamable HTTP server instead of a command")
    p.add_argument("--trusted", action="store_true", help="the server's annotations set the tiers")
    p.add_argument("--role", action="append", metavar="ROLE", help="a role of the skeleton (default: agent)")
