"""The gate: one decision per tools/call, and the view of tools/list a role gets.

Identity (role and agent attributes) is fixed by the operator (stdio proxy) or by a
verified token (HTTP front), never taken from the message: the model controls `arguments`
and nothing else. Every failure to decide is a denial with a reason.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional

import orjson

from ..engine import Engine
from ..errors import CallgateError
from .pins import PinStore, tool_digest

DENIED_PREFIX = "Denied by policy: "
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
    fn = module
    for part in attr.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise ValueError(f"--resolver: {module_name!r} has no attribute {attr!r}")
    if not callable(fn):
        raise ValueError(f"--resolver: {spec} is not callable")
    return fn  # type: ignore[return-value]


MODERN_VERSION_KEY = "io.modelcontextprotocol/protocolVersion"


def denial_result(reason: str, params: Any = None) -> dict:
    """A normal tool result the model can read: why the call did not run. Requests of the
    2026 protocol (the version stamped in params._meta) require an explicit resultType."""
    result: dict = {"content": [{"type": "text", "text": DENIED_PREFIX + reason}], "isError": True}
    meta = params.get("_meta") if isinstance(params, dict) else None
    if isinstance(meta, dict) and MODERN_VERSION_KEY in meta:
        result["resultType"] = "complete"
    return result


class Gate:
    """Decides tools/call requests and filters tools/list results for one policy.

    `seen` holds the digest of each tool definition as the upstream last listed it; with
    pins, a call is allowed only when that digest is the approved one."""

    def __init__(self, engine: Engine, resolver: Optional[Resolver] = None,
                 pins: Optional[PinStore] = None) -> None:
        self.engine = engine
        self.resolver = resolver
        self.pins = pins
        self.seen: dict[str, str] = {}
        self.stale = True   # no tools/list seen yet, or list_changed since

    # ------------------------------------------------------------ listing

    def visible(self, tool: str, role: str) -> bool:
        """Could `role` ever be allowed to call `tool`? (Some rule for the pair, or a
        default action of Allow.)"""
        compiled = self.engine.compiled
        if compiled.policy.default_action == "Allow":
            return True
        return (tool, role) in compiled.table

    def record_tools(self, tools: list) -> None:
        """Remember the definitions a tools/list page showed (for the pins check)."""
        for tool in tools:
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                self.seen[tool["name"]] = tool_digest(tool)

    def filter_tools(self, tools: list, role: str) -> list:
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

    def filter_list_result(self, result: Any, role: str) -> Optional[dict]:
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

    # ------------------------------------------------------------ calls

    def needs_definitions(self, tool: str) -> bool:
        """With pins, a call needs the tool's current definition before it can be decided."""
        return self.pins is not None and tool not in self.seen

    def check(self, params: Any, identity: Identity) -> Optional[str]:
        """None when a tools/call with these params may run; otherwise the reason it may not."""
        if not isinstance(params, dict):
            return "tools/call params must be an object"
        tool = params.get("name")
        if not isinstance(tool, str):
            return "tools/call needs a tool name (a string)"
        args = params.get("arguments")
        if args is None:
            args = {}
        elif not isinstance(args, dict):
            return f"the arguments of {tool} must be an object"
        resource: Mapping[str, Any] = {}
        if self.resolver is not None:
            try:
                resource = self.resolver(tool, args)
            except Exception as exc:  # fail closed: an unknown owner grants nothing
                return f"resource attributes for {tool} could not be resolved ({type(exc).__name__}: {exc})"
            if resource is None:
                resource = {}
            elif not isinstance(resource, Mapping):
                return f"the resolver returned {type(resource).__name__}, not a mapping"
        try:
            d = self.engine.evaluate(tool, args, role=identity.role, agent_attributes=identity.agent_attributes,
                                     resource_attributes=resource, principal=identity.principal)
        except CallgateError as exc:
            return str(exc)
        except Exception as exc:  # pragma: no cover - a bug must still deny
            print(f"callgate: internal error deciding {tool}: {exc!r}", file=sys.stderr)
            return "internal error while deciding"
        if d.decision != "Allow":  # Deny, and anything added later (Elevate) until handled
            return d.reason
        if self.pins is not None:
            return self.pins.problem(tool, self.seen.get(tool))
        return None


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
