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
Everything here is pure: no I/O, no engine.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional

from ..compiler import glob_match  # the policy language's tool-name globs

TIERS = ("public", "read", "write", "destructive")   # in order of strictness
_RANK = {t: i for i, t in enumerate(TIERS)}


def stricter(a: str, b: str) -> str:
    """The stricter of two tiers."""
    return a if _RANK[a] >= _RANK[b] else b


def policy_tier(tool_tiers: Optional[Mapping[str, Any]], tool: str) -> Optional[str]:
    """The tier the policy's `tool_tiers` gives `tool`: an exact key wins over globs; among
    globs matching the tool, the strictest tier; None when no key names it (or a value is
    not a tier: the compiler refuses such a policy)."""
    if not isinstance(tool_tiers, Mapping):
        return None
    exact = tool_tiers.get(tool)
    if isinstance(exact, str) and exact in _RANK:
        return exact
    found: Optional[str] = None
    for key, tier in tool_tiers.items():
        if isinstance(key, str) and "*" in key and isinstance(tier, str) and tier in _RANK and glob_match(key, tool):
            found = tier if found is None else stricter(found, tier)
    return found


def _hint(annotations: Any, name: str) -> bool:
    return isinstance(annotations, Mapping) and annotations.get(name) is True


def resolve_tier(annotations: Optional[Mapping[str, Any]], *, trusted: bool,
                 declared: Optional[str]) -> str:
    """The tier of one tool: its MCP `annotations` (the tool definition's "annotations"
    object, or None), whether its server is trusted, and the tier the policy declares for it
    (`policy_tier`, or None)."""
    if declared is not None and declared not in _RANK:
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


def discovered_tiers(tools: Iterable[Any], *, trusted: bool,
                     tool_tiers: Optional[Mapping[str, Any]]) -> dict[str, str]:
    """name -> tier for every tool definition in a tools/list result (entries that are not a
    definition with a string name are skipped)."""
    out: dict[str, str] = {}
    for tool in tools:
        if not isinstance(tool, Mapping) or not isinstance(tool.get("name"), str):
            continue
        name = tool["name"]
        out[name] = resolve_tier(tool.get("annotations"), trusted=trusted, declared=policy_tier(tool_tiers, name))
    return out


def uses_tiers(policy: Any) -> bool:
    """Whether a tool's tier can change a decision under this (decoded) policy: it has
    tier_defaults or a rule naming a tier. Without either, discovery is skipped."""
    if not isinstance(policy, Mapping):
        return False
    if policy.get("tier_defaults"):
        return True
    rules = policy.get("rules")
    return isinstance(rules, list) and any(isinstance(r, Mapping) and "tier" in r for r in rules)


def tier_default(policy: Any, tier: Optional[str]) -> Optional[str]:
    """The effect of a tier's default ("allow", "deny", "elevate"), or None when it has none."""
    if tier is None or not isinstance(policy, Mapping) or not isinstance(policy.get("tier_defaults"), Mapping):
        return None
    value = policy["tier_defaults"].get(tier)
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, Mapping) and isinstance(value.get("effect"), str):
        return value["effect"].lower()
    return None
