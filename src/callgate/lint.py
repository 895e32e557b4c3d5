"""`callgate check`: the policy's problems and risky corners, each with its location.

Errors make the policy unloadable. Warnings are the perso format's fail-open corners:
places where a policy silently means less (or more) than it seems to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from .compiler import glob_match
from .errors import PolicyError
from .policy import All, AnyOf, FieldEquals, FieldPresent, Not, NumericCheck, Policy, StringCheck, strip_unknown, validate


@dataclass(frozen=True)
class Finding:
    level: str        # "error" | "warning"
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.location}: {self.message}"


def lint(data: Any, semantics: str = "strict") -> list[Finding]:
    """Validate `data` and list the findings (errors first)."""
    try:
        policy = validate(strip_unknown(data) if semantics == "perso" else data)
    except PolicyError as exc:
        return [Finding("error", exc.location, exc.message)]
    findings = list(_roles_and_tools(policy, semantics))
    findings += _shadowed(policy, semantics)
    for i, rule in enumerate(policy.rules):
        if rule.condition is not None:
            findings += _conditions(rule.condition, f"rules[{i}].condition", under_not=False)
    return sorted(findings, key=lambda f: f.level != "error")


def _roles_and_tools(policy: Policy, semantics: str) -> Iterator[Finding]:
    roles = set(policy.roles)
    tools = set(policy.tools)
    for i, rule in enumerate(policy.rules):
        for j, role in enumerate(rule.roles):
            if role not in roles:
                if semantics == "strict":
                    yield Finding("error", f"rules[{i}].roles[{j}]", f"role '{role}' is not declared in roles")
                else:
                    yield Finding("warning", f"rules[{i}].roles[{j}]",
                                  f"role '{role}' is not declared in roles; perso drops it silently")
        if "*" in rule.tool_name:
            if not any(glob_match(rule.tool_name, t) for t in policy.tools):
                yield Finding("warning", f"rules[{i}].tool_name",
                              f"glob '{rule.tool_name}' matches no declared tool; the rule grants nothing")
        elif rule.tool_name not in tools:
            if semantics == "strict":
                yield Finding("error", f"rules[{i}].tool_name", f"tool '{rule.tool_name}' is not declared in tools")
            else:
                yield Finding("warning", f"rules[{i}].tool_name",
                              f"tool '{rule.tool_name}' is not declared in tools; perso uses it as is")


def _pairs(policy: Policy, rule_index: int) -> set[tuple[str, str]]:
    rule = policy.rules[rule_index]
    tools = [t for t in policy.tools if glob_match(rule.tool_name, t)] if "*" in rule.tool_name else [rule.tool_name]
    roles = [r for r in rule.roles if r in set(policy.roles)]
    return {(t, r) for t in tools for r in roles}


def _shadowed(policy: Policy, semantics: str) -> list[Finding]:
    """perso keeps only the last rule per (tool, role): earlier ones are silently dropped."""
    if semantics != "perso":
        return []
    last: dict[tuple[str, str], int] = {}
    for i in range(len(policy.rules)):
        for pair in _pairs(policy, i):
            last[pair] = i
    out = []
    for i in range(len(policy.rules)):
        lost = sorted(p for p in _pairs(policy, i) if last[p] != i)
        if lost:
            (tool, role), later = lost[0], last[lost[0]]
            more = f" and {len(lost) - 1} more pairs" if len(lost) > 1 else ""
            out.append(Finding("warning", f"rules[{i}]",
                               f"ignored for ({tool}, {role}){more}: rules[{later}] names the same pair later "
                               "and perso keeps only the last"))
    return out


def _conditions(node: Any, where: str, under_not: bool) -> list[Finding]:
    out: list[Finding] = []
    if isinstance(node, FieldPresent):
        c = node.FieldPresent
        out.append(Finding("warning", f"{where}.FieldPresent",
                           f"FieldPresent on {c.source}.{c.field} passes for false, 0 and \"\" as well"))
    elif isinstance(node, Not):
        inner = node.Not
        if isinstance(inner, (NumericCheck, StringCheck, FieldEquals)):
            out.append(Finding("warning", f"{where}.Not",
                               "Not over a field that may be missing: in perso semantics a missing field "
                               "makes the inner check fail, so Not passes"))
        out += _conditions(inner, f"{where}.Not", True)
    elif isinstance(node, (All, AnyOf)):
        name = "All" if isinstance(node, All) else "Any"
        children = node.All if isinstance(node, All) else node.Any
        if not children:
            out.append(Finding("warning", f"{where}.{name}",
                               f"empty {name} is always {'true' if name == 'All' else 'false'}"))
        for k, child in enumerate(children):
            out += _conditions(child, f"{where}.{name}[{k}]", under_not)
    return out
