"""A starter policy, its cases and what a live server's tools say (`callgate init`).

From a server's tool listing: every tool declared, with the tier its annotations give it
(mcp.tiers.resolve_tier: an untrusted server's `readOnlyHint` is ignored, so its tools
start at write unless destructive), tier defaults that make the policy usable at once
(public and read allowed, write elevated with one approval, destructive with two), a role
skeleton, and one case per tool that `callgate test` checks. The result passes `callgate
check` and `callgate test` as written; it is where a policy starts, not where it ends.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from .mcp.tiers import resolve_tier

TIER_DEFAULTS: dict[str, Any] = {
    "public": "allow",
    "read": "allow",
    "write": {"effect": "elevate", "approvals": 1},
    "destructive": {"effect": "elevate", "approvals": 2},
}


def tools_of(listing: Iterable[Any]) -> list[Mapping[str, Any]]:
    """The tool definitions of a tools/list result that have a string name, once each."""
    seen: dict[str, Mapping[str, Any]] = {}
    for tool in listing:
        if isinstance(tool, Mapping) and isinstance(tool.get("name"), str) and tool["name"] not in seen:
            seen[tool["name"]] = tool
    return list(seen.values())


def starter_policy(tools: Sequence[Mapping[str, Any]], *, trusted: bool, server: str,
                   roles: Sequence[str] = ("agent",)) -> dict[str, Any]:
    """The starter policy for `tools` (definitions from the server named `server`)."""
    tiers = {t["name"]: resolve_tier(t.get("annotations"), trusted=trusted, declared=None) for t in tools}
    how = "from its annotations (server trusted)" if trusted else "from destructiveHint only (server not trusted)"
    return {
        "version": f"starter for {server}: tiers {how}",
        "default_action": "Deny",
        "tools": [t["name"] for t in tools],
        "roles": list(roles),
        "tool_tiers": tiers,
        "tier_defaults": {tier: TIER_DEFAULTS[tier] for tier in sorted(set(tiers.values()) | {"public", "read"},
                                                                         key=list(TIER_DEFAULTS).index)},
        "rules": [],
    }


def starter_cases(policy: Mapping[str, Any]) -> dict[str, Any]:
    """One case per tool and role: the decision its tier's default gives (`callgate test`)."""
    cases = []
    for role in policy["roles"]:
        for tool in policy["tools"]:
            tier = policy["tool_tiers"][tool]
            default = policy["tier_defaults"][tier]
            if isinstance(default, Mapping):
                expect = {"decision": "Elevate", "approvals_required": default["approvals"], "rule": None}
            else:
                expect = {"decision": "Allow" if default == "allow" else "Deny", "rule": None}
            cases.append({"name": f"{tool} as {role}: its tier ({tier}) default", "tool": tool, "role": role,
                          "args": {}, "expect": expect})
    return {"about": f"one case per tool: {policy['version']}", "cases": cases}
