"""What a validated policy means, written once (docs/policy-v2.md, docs/semantics.md): the
compiler, `callgate check`, `callgate explain` and the MCP gate all read it from here.

- tiers: a tool's tier (an exact `tool_tiers` key wins over globs; among globs the strictest;
  a tool found at run time keeps the tier it was given), tier defaults and their effects;
- expansion: which rules each (tool, role) pair collects (globs and tiers against the tools,
  roles against the declared roles), in precedence order (deny, allow, elevate by approvals
  descending; policy order within each), or in perso semantics the last rule only;
- decisions: how the values of a pair's rules (T, F, U) decide (`Meaning.decide`), and what
  decides when no rule does (`default_effect`);
- visibility: whether a role could ever be allowed a tool (`Meaning.visible`, the contract
  the MCP listing filter keeps);
- display: how constants and references read in reasons and trees.

Pure functions and one class over `policy.Policy`; no evaluation of conditions (the C core
does that, and `explain` for its tree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Optional

import orjson

from .errors import PolicyError
from .policy import DAYS, ELEMENT, TIERS, Policy, Rule

DECISIONS = ("Deny", "Allow", "Elevate")     # the core's result codes 0, 1, 2
SET_DISPLAY_MAX = 5
T, F, U = "T", "F", "U"
_EFFECT_DECISION = {"deny": "Deny", "allow": "Allow", "elevate": "Elevate"}


# ---------------------------------------------------------------- names and globs


def glob_match(pattern: str, name: str) -> bool:
    """`*` matches any run of characters (possibly empty); everything else is literal."""
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    head, *middle, tail = parts
    if len(name) < len(head) + len(tail) or not name.startswith(head) or not name.endswith(tail):
        return False
    at, stop = len(head), len(name) - len(tail)
    for part in middle:  # leftmost matches are always safe with `*` only
        found = name.find(part, at, stop)
        if found < 0:
            return False
        at = found + len(part)
    return True


def path_glob_match(pattern: str, name: str) -> bool:
    """PathGlob: `*` matches within one `/`-separated component; components pair up."""
    parts, names = pattern.split("/"), name.split("/")
    return len(parts) == len(names) and all(glob_match(p, n) for p, n in zip(parts, names))


def stricter(a: str, b: str) -> str:
    """The stricter of two tiers."""
    return a if TIERS.index(a) >= TIERS.index(b) else b


def policy_tier(policy: Policy, tool: str) -> Optional[str]:
    """The tier `tool_tiers` gives `tool`: its exact key, else the strictest matching glob."""
    exact = policy.tool_tiers.get(tool)
    if exact is not None:
        return exact
    found: Optional[str] = None
    for key, tier in policy.tool_tiers.items():
        if "*" in key and glob_match(key, tool):
            found = tier if found is None else stricter(found, tier)
    return found


def uses_tiers(policy: Policy) -> bool:
    """Whether a tool's tier can change a decision: tier defaults, or a rule naming a tier."""
    return bool(policy.tier_defaults) or any(rule.tier is not None for rule in policy.rules)


# ---------------------------------------------------------------- effects


def rule_effect(rule: Rule, semantics: str = "strict") -> tuple[str, int]:
    """("Allow" | "Deny" | "Elevate", approvals) of a rule (perso: every rule allows)."""
    if semantics == "perso":
        return "Allow", 0
    return _EFFECT_DECISION[rule.effect], rule.approvals or 0


def tier_default_effect(value: Any) -> tuple[str, int]:
    """A tier_defaults value ("allow", "deny" or {effect, approvals}) as (decision, approvals)."""
    if isinstance(value, str):
        return _EFFECT_DECISION[value], 0
    return _EFFECT_DECISION[value.effect], value.approvals or 0


def entry_rank(rule: Rule) -> int:
    """A rule's precedence in its entry: deny 0, allow 1, elevate 2 approvals 3, 1 approval 4."""
    if rule.effect == "deny":
        return 0
    if rule.effect == "allow":
        return 1
    return 5 - (rule.approvals or 0)


# ---------------------------------------------------------------- display


def format_number(value: float) -> str:
    """How a number reads in a reason: 500, 0.5, 1e+20."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(value)


def format_set(values: list[Any]) -> str:
    """How a StringCheck list (or a UrlCheck's, a PathCheck's) reads in a reason: ["a", "b"]
    ([443] for numbers), cut after 5 members."""
    shown = ", ".join(orjson.dumps(v).decode() for v in values[:SET_DISPLAY_MAX])
    more = len(values) - SET_DISPLAY_MAX
    return f"[{shown}, … and {more} more]" if more > 0 else f"[{shown}]"


def ref_display(source: str, field: Optional[str], pointer: Optional[str]) -> str:
    """The display name of a reference: Arguments.amount, Arguments/a/0, element, element.x,
    element/a/b."""
    head = "element" if source == ELEMENT else source
    if field is not None:
        return f"{head}.{field}"
    return head + (pointer or "")


def window_text(days: Iterable[str], start: str, end: str, timezone: str) -> str:
    """How a TimeWindow reads: `Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris`."""
    chosen = set(days)
    return f"{','.join(d for d in DAYS if d in chosen)} {start}-{end} {timezone}"


OP_SYMBOL = {"Lt": "<", "Lte": "<=", "Gt": ">", "Gte": ">=", "Eq": "==", "Ne": "!="}
# a StringCheck match op -> (what it says when it holds, when it does not), `{}` the JSON value
STRING_TEXTS = {
    "Eq": ("is {}", "is not {}"),
    "Ne": ("is not {}", "is {}"),
    "StartsWith": ("starts with {}", "does not start with {}"),
    "EndsWith": ("ends with {}", "does not end with {}"),
    "Contains": ("contains {}", "does not contain {}"),
    "Glob": ("matches glob {}", "does not match glob {}"),
    "PathGlob": ("matches path glob {}", "does not match path glob {}"),
}


# ---------------------------------------------------------------- one policy's meaning


@dataclass(frozen=True)
class Outcome:
    """A decision as the language defines it: decision, the deciding rule (None: a default),
    the approvals an Elevate needs, and what decided ("rule", "tier default", "default_action")."""

    decision: str
    rule: Optional[int]
    approvals: int
    decided_by: str


def rule_name(index: int, rule_id: Optional[str] = None) -> str:
    """`rule ID`, or `rule N` (N = index + 1): the one way texts name a rule (reasons,
    explain, test, audit stats); data keeps the index from 0 (docs/semantics.md, "Rule
    numbers")."""
    return f"rule {rule_id if rule_id is not None else index + 1}"


class Meaning:
    """A validated policy's tools, tiers and (tool, role) table, and the questions asked of
    them. `discovered_tools` (tool -> tier) adds tools found at run time (an MCP server's),
    with the tier they were given; perso semantics has no tiers and ignores them.

    strict: undeclared roles and tools named by rules are PolicyErrors (the compiler's
    view); with strict=False they are skipped or taken as named (perso, and `check`, which
    reports them itself)."""

    def __init__(self, policy: Policy, semantics: str = "strict",
                 discovered_tools: Optional[Mapping[str, str]] = None, *, strict: Optional[bool] = None) -> None:
        self.policy = policy
        self.semantics = semantics
        self.strict = semantics == "strict" if strict is None else strict
        discovered = {} if semantics == "perso" else dict(discovered_tools or {})
        tools = list(dict.fromkeys(policy.tools))
        declared = set(tools)
        tools += [t for t in discovered if t not in declared]
        self.tools: tuple[str, ...] = tuple(tools)
        self.tiers: dict[str, str] = self._resolve_tiers(discovered)
        self.table: dict[tuple[str, str], list[int]] = self._expand()

    # -------------------------------------------------------------- building

    def _resolve_tiers(self, discovered: Mapping[str, str]) -> dict[str, str]:
        if self.semantics == "perso":
            return {}
        declared = set(self.tools)
        if self.strict:
            for key in self.policy.tool_tiers:
                if "*" not in key and key not in declared:
                    raise PolicyError(f"tool '{key}' is not declared in tools", f"tool_tiers.{key}")
        tiers: dict[str, str] = {}
        for tool in self.tools:
            tier = policy_tier(self.policy, tool)
            if tier is not None:
                tiers[tool] = tier
        tiers.update(discovered)   # a discovered tool's tier was resolved by whoever found it
        return tiers

    def rule_tools(self, index: int) -> list[str]:
        """The tools rule `index` covers: its tool_name (a glob expands against the tools), or
        the tools of its tier."""
        rule = self.policy.rules[index]
        if rule.tool_name is None:
            return [t for t in self.tools if self.tiers.get(t) == rule.tier]
        if "*" in rule.tool_name:
            return [t for t in self.tools if glob_match(rule.tool_name, t)]
        if self.strict and rule.tool_name not in set(self.tools):
            raise PolicyError(f"tool '{rule.tool_name}' is not declared in tools", f"rules[{index}].tool_name")
        return [rule.tool_name]

    def rule_roles(self, index: int) -> list[str]:
        """The declared roles rule `index` names (an undeclared one is an error when strict)."""
        declared = set(self.policy.roles)
        roles = []
        for j, role in enumerate(self.policy.rules[index].roles):
            if role in declared:
                roles.append(role)
            elif self.strict:
                raise PolicyError(f"role '{role}' is not declared in roles", f"rules[{index}].roles[{j}]")
        return list(dict.fromkeys(roles))

    def pairs(self, index: int) -> set[tuple[str, str]]:
        """The (tool, role) pairs rule `index` covers."""
        return {(t, r) for t in self.rule_tools(index) for r in self.rule_roles(index)}

    def _expand(self) -> dict[tuple[str, str], list[int]]:
        rules = self.policy.rules
        table: dict[tuple[str, str], list[int]] = {}
        for i in range(len(rules)):
            if getattr(rules[i], "mode", "enforce") == "shadow":
                continue   # evaluated beside the policy (Engine's shadow candidate), never deciding
            roles = self.rule_roles(i)
            for tool in dict.fromkeys(self.rule_tools(i)):
                for role in roles:
                    if self.semantics == "perso":
                        table[(tool, role)] = [i]   # the last rule naming the pair wins
                    else:
                        table.setdefault((tool, role), []).append(i)
        if self.semantics != "perso":
            for pair, collected in table.items():
                table[pair] = sorted(collected, key=lambda i: (entry_rank(rules[i]), i))
        return table

    # -------------------------------------------------------------- questions

    def tier_of(self, tool: str) -> Optional[str]:
        """The tool's tier (None: it has none, or the semantics is perso)."""
        return self.tiers.get(tool)

    def rules_for(self, tool: str, role: str) -> list[int]:
        """The rules (tool, role) collects, in precedence order."""
        return self.table.get((tool, role), [])

    def rule_name(self, index: int) -> str:
        """Rule `index` as every text names it: `rule ID` when it has an id, else `rule N`
        with N counting from 1 (data, such as Decision.rule, holds the index from 0)."""
        return rule_name(index, self.policy.rules[index].id)

    def rule_effect(self, index: int) -> tuple[str, int]:
        """(decision, approvals) of rule `index` under this semantics."""
        return rule_effect(self.policy.rules[index], self.semantics)

    def default_effect(self, tool: str) -> tuple[str, int, Optional[str]]:
        """What decides `tool` when no rule does: (decision, approvals, tier) from its tier's
        default, or (default_action, 0, None)."""
        tier = self.tiers.get(tool)
        if tier is not None and tier in self.policy.tier_defaults and self.semantics != "perso":
            decision, approvals = tier_default_effect(self.policy.tier_defaults[tier])
            return decision, approvals, tier
        return self.policy.default_action, 0, None

    def decide(self, tool: str, values: Mapping[int, str]) -> Outcome:
        """The decision for a pair whose rules have these condition values (rule index -> T,
        F or U; a rule without a condition is T), as docs/policy-v2.md steps 1-5 say: any
        applying deny (a deny whose condition is U applies: it cannot be evaluated), then the
        first applying allow, then the applying elevate asking for the most approvals; a pair
        with grants of which none applies is denied by its first grant; a pair with no grant
        at all gets the default. Perso: the one rule allows when T, else denies."""
        rules = sorted(values)
        if self.semantics == "perso":
            if not rules:
                return Outcome(self.policy.default_action, None, 0, "default_action")
            index = rules[-1]
            return Outcome("Allow" if values[index] == T else "Deny", index, 0, "rule")
        effects = {i: self.rule_effect(i) for i in rules}
        for i in rules:
            if effects[i][0] == "Deny" and values[i] in (T, U):
                return Outcome("Deny", i, 0, "rule")
        for i in rules:
            if effects[i][0] == "Allow" and values[i] == T:
                return Outcome("Allow", i, 0, "rule")
        elevating = [i for i in rules if effects[i][0] == "Elevate" and values[i] == T]
        if elevating:
            most = max(effects[i][1] for i in elevating)
            first = next(i for i in elevating if effects[i][1] == most)
            return Outcome("Elevate", first, most, "rule")
        grants = [i for i in sorted(rules, key=lambda i: (entry_rank(self.policy.rules[i]), i))
                  if effects[i][0] != "Deny"]
        if grants:
            return Outcome("Deny", grants[0], 0, "rule")
        decision, approvals, tier = self.default_effect(tool)
        return Outcome(decision, None, approvals, "tier default" if tier is not None else "default_action")

    def visible(self, tool: str, role: str) -> bool:
        """Whether `role` could ever be allowed to call `tool` (docs/mcp.md, "Listing"):

        - a deny rule never makes a tool visible, and an unconditional deny rule for the pair
          hides it;
        - otherwise some allow or elevate rule for the pair shows it;
        - otherwise the default decides: a pair whose only rules are (conditional) denies, or
          that no rule covers, is visible when the tool's default (its tier's default, or
          default_action) allows or elevates.

        (A pair with grants none of which applies is denied, never defaulted: so with a
        grant present, the default does not matter.)"""
        rules = self.table.get((tool, role), [])
        grants = False
        for i in rules:
            decision, _ = self.rule_effect(i)
            if decision == "Deny":
                if self.policy.rules[i].condition is None:
                    return False
            else:
                grants = True
        if grants:
            return True
        return self.default_effect(tool)[0] in ("Allow", "Elevate")
