"""`callgate check --server`: a policy compared with the live MCP server it guards.

A predicate on a misspelled field is silently always "missing"; a parameter the server adds
is silently unconstrained; a tool the server adds is callable under a tier default. This
module lists those gaps as `check` findings (lint.Finding), from the policy and one
`tools/list` of the server:

- error: a rule reads `Arguments.X` for a tool whose input schema has no property X (the
  condition can never see a value there);
- error: a tool whose definition changed since its pin (with pins);
- warning: a tool the server lists that the policy does not declare;
- warning: a declared tool the server does not list;
- warning: a parameter of a write or destructive tool that no rule's condition reads;
- warning: annotations that disagree with the declared tier (destructiveHint on a public or
  read tool; readOnlyHint on a destructive one).
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping, Optional, Sequence

from .lint import Finding
from .policy import ELEMENT, pointer_tokens


class ListingError(Exception):
    """The server's tools could not be listed; str() is one line saying why."""


def live_tools(server_command: Sequence[str], url: Optional[str]) -> list[dict[str, Any]]:
    """tools/list of a live server: a stdio command (the proxy's raw client) or a Streamable
    HTTP URL (the official SDK client). ListingError with one line when it cannot be done."""
    from .mcp.rawclient import RawClientError, list_tools_of

    if bool(server_command) == bool(url):
        raise ValueError("give the server once: -- SERVER_COMMAND, or --url URL")
    try:
        if url:
            return _listing_over_http(url)
        return list(list_tools_of(list(server_command)))
    except RawClientError as exc:
        raise ListingError(f"cannot list the server's tools: {exc}") from None
    except Exception as exc:   # the HTTP client's own failures: one line, never a traceback
        raise ListingError(f"cannot list the server's tools at {url}: {type(exc).__name__}: {exc}") from None


def _listing_over_http(url: str) -> list[dict[str, Any]]:
    """tools/list of a Streamable HTTP server, through the official SDK client."""
    import anyio
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run() -> list[dict[str, Any]]:
        async with streamable_http_client(url) as (read, write, *_), ClientSession(read, write) as session:
            await session.initialize()
            result = await session.list_tools()
            return [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in result.tools]

    listing: list[dict[str, Any]] = anyio.run(run)
    return listing

_READS = ("source", "source_a", "source_b")


def _argument_keys(node: Any) -> Iterator[tuple[str, str]]:
    """(top-level argument key, where) of every leaf that reads Arguments, Element scopes
    excluded (an element's keys are the array's, not the tool's)."""
    def walk(cond: Any, where: str) -> Iterator[tuple[str, str]]:
        if not isinstance(cond, dict) or len(cond) != 1:
            return
        (kind, body), = cond.items()
        at = f"{where}.{kind}"
        if kind in ("All", "Any") and isinstance(body, list):
            for k, child in enumerate(body):
                yield from walk(child, f"{at}[{k}]")
            return
        if kind == "Not":
            yield from walk(body, at)
            return
        if not isinstance(body, dict):
            return
        for side in ("", "_a", "_b"):
            if body.get("source" + side) != "Arguments":
                continue
            field = body.get("field" + side)
            pointer = body.get("pointer" + side)
            if isinstance(field, str):
                yield field, at
            elif isinstance(pointer, str) and pointer:
                yield pointer_tokens(pointer)[0], at
        if kind in ("Every", "Some") and body.get("source") != ELEMENT:
            return   # the array's own reference was read above; its condition reads elements
    yield from walk(node, "")


def _properties(tool: Mapping[str, Any]) -> Optional[set[str]]:
    schema = tool.get("inputSchema")
    if not isinstance(schema, dict):
        return None
    props = schema.get("properties")
    return set(props) if isinstance(props, dict) else set()


def compare(compiled: Any, tools: Sequence[Mapping[str, Any]],
            pins: Optional[Mapping[str, str]] = None) -> list[Finding]:
    """The findings for a compiled policy (compiler.Compiled) against a server's listed
    tools (tools/list `tools`, as dicts) and, optionally, pins (tool name -> digest)."""
    from .mcp.pins import tool_digest

    meaning = compiled.meaning
    policy = compiled.policy.model_dump(by_alias=True, exclude_none=True)
    live = {t["name"]: t for t in tools if isinstance(t, Mapping) and isinstance(t.get("name"), str)}
    declared = list(meaning.tools)
    out: list[Finding] = []
    for name in sorted(set(live) - set(declared)):
        out.append(Finding("warning", "tools", f"the server lists '{name}', which the policy does not declare "
                                               "(a tier default may make it callable without review)"))
    for k, name in enumerate(policy["tools"]):
        if name not in live:
            out.append(Finding("warning", f"tools[{k}]", f"'{name}' is declared but the server does not list it"))
    read: dict[str, set[str]] = {}
    for i, rule in enumerate(policy["rules"]):
        covered = [t for t in meaning.rule_tools(i) if t in live]
        for key, where in _argument_keys(rule.get("condition")):
            for tool in covered:
                read.setdefault(tool, set()).add(key)
                props = _properties(live[tool])
                if props is not None and key not in props:
                    out.append(Finding("error", f"rules[{i}].condition{where}",
                                       f"reads Arguments.{key}, but the input schema of '{tool}' has no property "
                                       f"'{key}' (the condition never sees a value there)"))
    for tool in declared:
        if tool not in live:
            continue
        tier = meaning.tier_of(tool)
        if tier in ("write", "destructive"):
            for param in sorted((_properties(live[tool]) or set()) - read.get(tool, set())):
                out.append(Finding("warning", "tools", f"'{tool}' ({tier}) takes '{param}', which no rule's "
                                                       "condition reads"))
        annotations = live[tool].get("annotations")
        hints: Mapping[str, Any] = annotations if isinstance(annotations, dict) else {}
        if hints.get("destructiveHint") is True and hints.get("readOnlyHint") is not True and tier in ("public", "read"):
            out.append(Finding("warning", "tool_tiers", f"'{tool}' is declared {tier} but the server marks it "
                                                        "destructive (destructiveHint)"))
        if hints.get("readOnlyHint") is True and tier == "destructive":
            out.append(Finding("warning", "tool_tiers", f"'{tool}' is declared destructive but the server marks it "
                                                        "read-only (readOnlyHint)"))
        if pins is not None:
            pinned = pins.get(tool)
            if pinned is None:
                out.append(Finding("error", "tools", f"'{tool}' has no pin: its definition was never reviewed"))
            elif pinned != tool_digest(live[tool]):
                out.append(Finding("error", "tools", f"'{tool}': tool definition changed since review (its pin)"))
    return out
