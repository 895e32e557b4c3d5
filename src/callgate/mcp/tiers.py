"""Tiers from MCP tool annotations (docs/policy-v2.md, "Tiers"; docs/mcp.md).

A tool's tier (public < read < write < destructive) decides it through `tier` rules and
`tier_defaults`. The policy may give a tool a tier (`tool_tiers`); the proxy also learns
the tools the upstream server lists, with their annotations, and gives each a tier before
the policy is compiled (`Engine.reload(policy, discovered_tools={name: tier})`):

- the operator marks the server trusted (`callgate proxy --trusted`): the policy's tier
  when `tool_tiers` names the tool, else `readOnlyHint` -> read, `destructiveHint` ->
  destructive, otherwise write;
- untrusted (the default): annotations can only make a tool stricter: the stricter of
  (the policy's tier, or write when it names none) and (destructive when
  `destructiveHint` is true); `readOnlyHint` is ignored.

A hint counts only when it is the JSON value `true` (MCP's own default for an absent
`destructiveHint` is not applied: no hint is write, as the policy language says).
Everything here is pure: no I/O, no engine. What the policy says of tiers (its tool_tiers,
tier defaults, whether tiers matter at all) is read from callgate.language.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..language import policy_tier, stricter
from ..policy import TIERS, Policy


def _hint(annotations: Any, name: str) -> bool:
    return isinstance(annotations, Mapping) and annotations.get(name) is True


def resolve_tier(annotations: Optional[Mapping[str, Any]], *, trusted: bool,
                 declared: Optional[str]) -> str:
    """The tier of one tool: its MCP `annotations` (the tool definition's "annotations"
    object, or None), whether its server is trusted, and the tier the policy declares for it
    (language.policy_tier, or None)."""
    if declared is not None and declared not in TIERS:
        raise ValueError(f"not a tier: {declared!r} (one of {', '.join(TIERS)})")
    if trusted:
        if declared is not None:
            return declared
        if _hint(annotations, "readOnlyHint"):
            return "read"
        if _hint(annotations, "destructiveHint"):
            return "destructive"
        return "write"
    tier = declared if declared is not None else "write"
    if _hint(annotations, "destructiveHint"):
        tier = stricter(tier, "destructive")
    return tier


def discovered_tiers(tools: Iterable[Any], *, trusted: bool, policy: Policy) -> dict[str, str]:
    """name -> tier for every tool definition in a tools/list result (entries that are not a
    definition with a string name are skipped), under the validated `policy`'s tool_tiers."""
    out: dict[str, str] = {}
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            continue
        name = tool["name"]
        out[name] = resolve_tier(tool.get("annotations"), trusted=trusted, declared=policy_tier(policy, name))
    return out
