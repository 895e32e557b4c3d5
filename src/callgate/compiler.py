"""The policy compiler: validate -> expand -> lower -> encode.

- validate: pydantic models (policy.py) check the shape and name the location of errors;
- expand: tiers of the declared (and discovered) tools, globs and tiers of rules against
  the tools, roles against the declared roles, and the (tool, role) table with the rules
  each pair collects (all of them by default, in entry order: deny, allow, elevate; the
  last one in perso semantics);
- lower: each condition becomes condition bytecode (bytecode.py) with interned fields,
  paths, string sets, globs, numbers and time windows;
- encode: the blob the C core verifies and runs.
"""

from __future__ import annotations

import bisect
import functools
import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator, Mapping, Optional

import orjson

from . import bytecode as bc
from .errors import PolicyError
from .policy import (
    DAYS, ELEMENT, EFFECTS, MAX_QUANTIFIER_NESTING, TIERS, All, AnyOf, Every, FieldEquals,
    FieldPresent, Length, Not, NumericCheck, Policy, Rule, Some, StringCheck, TimeWindow, Type,
    pointer_tokens, strip_unknown, validate, zone,
)

SEMANTICS = ("strict", "perso")
SOURCE_CODE = {name: i for i, name in enumerate(bc.SOURCES)}
SET_DISPLAY_MAX = 5
MAX_STACK = 64
DECISION_NAMES = ("Deny", "Allow", "Elevate")
_DECISION_CODE = {"deny": bc.DENY, "allow": bc.ALLOW, "elevate": bc.ELEVATE}


@dataclass(frozen=True)
class Compiled:
    """A compiled policy: the blob and what the Python side needs to know about it."""

    blob: bytes
    policy: Policy
    semantics: str
    table: dict[tuple[str, str], list[int]]   # (tool, role) -> rule indexes, in entry order
    tiers: dict[str, str] = field(default_factory=dict)   # tool -> tier (tools with a tier)
    tools: tuple[str, ...] = ()                            # declared tools, then discovered ones

    @property
    def version(self) -> str:
        return self.policy.version

    def rule_effect(self, index: int) -> tuple[str, int]:
        """("Allow" | "Deny" | "Elevate", approvals) of rule `index`."""
        return rule_effect(self.policy, index, self.semantics)

    def default_effect(self, tool: str) -> tuple[str, int, Optional[str]]:
        """What decides `tool` when no rule covers the pair (step 5): (decision, approvals,
        tier) from the tool's tier default, or (default_action, 0, None)."""
        tier = self.tiers.get(tool)
        if tier is not None and tier in self.policy.tier_defaults and self.semantics != "perso":
            decision, approvals = tier_default_effect(self.policy.tier_defaults[tier])
            return decision, approvals, tier
        return self.policy.default_action, 0, None


def rule_effect(policy: Policy, index: int, semantics: str = "strict") -> tuple[str, int]:
    """("Allow" | "Deny" | "Elevate", approvals) of rule `index` (perso: always Allow)."""
    rule = policy.rules[index]
    if semantics == "perso":
        return "Allow", 0
    return DECISION_NAMES[_DECISION_CODE[rule.effect]], rule.approvals or 0


def tier_default_effect(value: Any) -> tuple[str, int]:
    """A tier_defaults value ("allow", "deny" or {effect, approvals}) as (decision, approvals)."""
    if isinstance(value, str):
        return DECISION_NAMES[_DECISION_CODE[value]], 0
    return DECISION_NAMES[_DECISION_CODE[value.effect]], value.approvals or 0


def _effect_word(effect: str, approvals: Optional[int]) -> int:
    return bc.effect_word(_DECISION_CODE[effect], approvals or 0)


def entry_rank(rule: Rule) -> int:
    """The precedence of a rule in its entry: deny 0, allow 1, elevate 2 approvals 3, 1 approval 4."""
    if rule.effect == "deny":
        return 0
    if rule.effect == "allow":
        return 1
    return 5 - (rule.approvals or 0)


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


def effective_tools(policy: Policy, discovered_tools: Optional[Mapping[str, str]] = None) -> list[str]:
    """The declared tools (without repeats), then the discovered ones not declared."""
    tools = list(dict.fromkeys(policy.tools))
    if discovered_tools:
        declared = set(tools)
        tools += [t for t in discovered_tools if t not in declared]
    return tools


def resolve_tiers(policy: Policy, tools: list[str], semantics: str = "strict",
                  discovered_tools: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """tool -> tier: an exact tool_tiers key wins over globs; among the globs matching a
    tool the strictest tier wins; a discovered tool's given tier overrides both."""
    if semantics == "perso":
        return {}
    declared = set(tools)
    tiers: dict[str, str] = {}
    globs = [(key, tier) for key, tier in policy.tool_tiers.items() if "*" in key]
    for key in policy.tool_tiers:
        if "*" not in key and key not in declared:
            raise PolicyError(f"tool '{key}' is not declared in tools", f"tool_tiers.{key}")
    for tool in tools:
        exact = policy.tool_tiers.get(tool)
        if exact is not None:
            tiers[tool] = exact
            continue
        matching = [TIERS.index(tier) for key, tier in globs if glob_match(key, tool)]
        if matching:
            tiers[tool] = TIERS[max(matching)]
    for tool, tier in (discovered_tools or {}).items():
        tiers[tool] = tier
    return tiers


def _check_discovered(discovered_tools: Optional[Mapping[str, str]]) -> None:
    for tool, tier in (discovered_tools or {}).items():
        if not isinstance(tool, str):
            raise PolicyError(f"a discovered tool name must be a string, not {type(tool).__name__}",
                              "(discovered_tools)")
        if tier not in TIERS:
            raise PolicyError(f"unknown tier {tier!r} for discovered tool '{tool}'; expected "
                              + ", ".join(TIERS), "(discovered_tools)")


def expand(policy: Policy, semantics: str, tools: Optional[list[str]] = None,
           tiers: Optional[Mapping[str, str]] = None) -> dict[tuple[str, str], list[int]]:
    """The (tool, role) table: which rules each pair collects, in entry order (deny rules,
    allow rules, then elevate rules by approvals descending; policy order within each)."""
    if tools is None:
        tools = list(dict.fromkeys(policy.tools))
    tiers = tiers or {}
    declared_tools = set(tools)
    declared_roles = set(policy.roles)
    table: dict[tuple[str, str], list[int]] = {}
    for i, rule in enumerate(policy.rules):
        roles = []
        for j, role in enumerate(rule.roles):
            if role in declared_roles:
                roles.append(role)
            elif semantics == "strict":
                raise PolicyError(f"role '{role}' is not declared in roles", f"rules[{i}].roles[{j}]")
        if rule.tool_name is None:  # a tier rule
            names = [t for t in tools if tiers.get(t) == rule.tier]
        elif "*" in rule.tool_name:
            names = [t for t in tools if glob_match(rule.tool_name, t)]
        else:
            if semantics == "strict" and rule.tool_name not in declared_tools:
                raise PolicyError(f"tool '{rule.tool_name}' is not declared in tools", f"rules[{i}].tool_name")
            names = [rule.tool_name]
        for tool in dict.fromkeys(names):
            for role in dict.fromkeys(roles):
                if semantics == "perso":
                    table[(tool, role)] = [i]  # the last rule naming the pair wins
                else:
                    table.setdefault((tool, role), []).append(i)
    if semantics != "perso":
        for pair, rules in table.items():
            table[pair] = sorted(rules, key=lambda i: (entry_rank(policy.rules[i]), i))
    return table


def format_number(value: float) -> str:
    """How a policy constant reads in a reason: 500, 0.5, 1e+20."""
    if value.is_integer() and abs(value) < 1e16:
        return str(int(value))
    return repr(float(value))


def format_set(values: list[str]) -> str:
    """How a StringCheck list reads in a reason: ["a", "b"], cut after 5 members."""
    shown = ", ".join(orjson.dumps(v).decode() for v in values[:SET_DISPLAY_MAX])
    more = len(values) - SET_DISPLAY_MAX
    return f"[{shown}, … and {more} more]" if more > 0 else f"[{shown}]"


# ---------------------------------------------------------------- time zones


@functools.lru_cache(maxsize=None)
def zone_offsets(name: str, step: int = 86400) -> tuple[tuple[int, int], ...]:
    """The UTC offset table of an IANA zone over [0, TIME_END): ((utc_start, offset_seconds),
    ...), the first utc_start 0, strictly ascending, no two consecutive entries with the same
    offset. Transitions are found by sampling every `step` seconds and bisecting each
    interval whose ends differ (an interval may hold several transitions; a change and its
    exact reversal inside one step would be missed: no zone has one)."""
    tz = zone(name)
    fromtimestamp = datetime.fromtimestamp

    def offset(t: int) -> int:
        delta = fromtimestamp(t, tz).utcoffset()
        return delta.days * 86400 + delta.seconds  # zoneinfo offsets are whole seconds

    current = offset(0)
    table = [(0, current)]
    last = bc.TIME_END - 1
    t = 0
    while t < last:
        nxt = min(t + step, last)
        target = offset(nxt)
        lo = t
        while target != current:
            # offset(lo) == current != offset(nxt): find a first second that differs
            a, b = lo, nxt
            while b - a > 1:
                mid = (a + b) // 2
                if offset(mid) == current:
                    a = mid
                else:
                    b = mid
            current = offset(b)
            table.append((b, current))
            lo = b
        t = nxt
    return tuple(table)


def offset_at(table: tuple[tuple[int, int], ...], t: int) -> int:
    """The offset an offset table gives for the instant t (seconds since 1970, >= 0)."""
    starts = [s for s, _ in table]
    return table[bisect.bisect_right(starts, t) - 1][1]


def window_text(days: list[str], start: str, end: str, timezone: str) -> str:
    """How a TimeWindow reads in a reason: `Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris`."""
    return f"{','.join(d for d in DAYS if d in days)} {start}-{end} {timezone}"


# ---------------------------------------------------------------- lowering


def ref_display(source: str, field: Optional[str], pointer: Optional[str]) -> str:
    """The display name of a reference: Arguments.amount, Arguments/a/0, element, element.x,
    element/a/b."""
    head = "element" if source == ELEMENT else source
    if field is not None:
        return f"{head}.{field}"
    return head + (pointer or "")


class _Lowering:
    """Turns conditions into bytecode in one shared code section."""

    def __init__(self, b: bc.BlobBuilder) -> None:
        self.b = b

    def condition(self, cond: Any, where: str) -> tuple[int, int]:
        """Emit a rule's condition; returns (code offset, code length)."""
        start = len(self.b.code)
        depth = self._node(cond, negated=False, where=where, quantifiers=0)
        if depth > MAX_STACK:
            raise PolicyError(f"condition nested too deeply (at most {MAX_STACK - 1} levels)", where)
        self.b.emit("RET")
        return start, len(self.b.code) - start

    def _ref(self, source: str, field: Optional[str], pointer: Optional[str]) -> tuple[int, bool]:
        """A value operand: (field index, False) or (path words index, True)."""
        b = self.b
        display = ref_display(source, field, pointer)
        tokens = (field,) if field is not None else pointer_tokens(pointer or "")
        if source == ELEMENT:  # an element's `field` is a key, never an array index
            return b.ref(None, tokens, display, key_only=field is not None)
        code = SOURCE_CODE[source]
        if field is not None:
            return b.field(code, field), False
        return b.ref(code, tokens, display, as_path=True)  # a pointer reads as written: Source/a

    def _leaf_ref(self, c: Any) -> tuple[int, int]:
        """(operand, flag bits) of a leaf's own reference."""
        operand, is_path = self._ref(c.source, c.field, c.pointer)
        return operand, bc.F_PATH_A if is_path else 0

    def _node(self, node: Any, negated: bool, where: str, quantifiers: int) -> int:
        """Emit one node; returns the stack depth it needs."""
        b = self.b
        neg = bc.F_NEGATED if negated else 0
        if isinstance(node, NumericCheck):
            c = node.NumericCheck
            ref, path = self._leaf_ref(c)
            if c.op == "Between":
                lo, hi = (float(v) for v in c.value)
                b.emit("NUM", bc.CMP_OPS.index(c.op) | neg | path, ref, b.number_pair(lo, hi),
                       b.string(f"{format_number(lo)} and {format_number(hi)}"))
            else:
                value = float(c.value)
                b.emit("NUM", bc.CMP_OPS.index(c.op) | neg | path, ref, b.number(value),
                       b.string(format_number(value)))
            return 1
        if isinstance(node, StringCheck):
            c = node.StringCheck
            ref, path = self._leaf_ref(c)
            if c.op in ("In", "NotIn"):
                flags = neg | path | (bc.F_NOTIN if c.op == "NotIn" else 0)
                b.emit("IN", flags, ref, b.set(c.value, format_set(c.value)))
                return 1
            flags, pattern, true_text, false_text = _string_match(c.op, c.value)
            desc = (b.pglob([part.split("*") for part in c.value.split("/")]) if c.op == "PathGlob"
                    else b.glob(pattern))
            b.emit("STR", flags | neg | path, ref, desc, b.string(true_text), b.string(false_text))
            return 1
        if isinstance(node, FieldPresent):
            c = node.FieldPresent
            ref, path = self._leaf_ref(c)
            b.emit("PRESENT", neg | path, ref)
            return 1
        if isinstance(node, FieldEquals):
            c = node.FieldEquals
            ref_a, path_a = self._ref(c.source_a, c.field_a, c.pointer_a)
            ref_b, path_b = self._ref(c.source_b, c.field_b, c.pointer_b)
            flags = neg | (bc.F_PATH_A if path_a else 0) | (bc.F_PATH_B if path_b else 0)
            b.emit("EQ", flags, ref_a, ref_b)
            return 1
        if isinstance(node, Length):
            c = node.Length
            ref, path = self._leaf_ref(c)
            value = float(c.value)
            b.emit("LEN", bc.CMP_OPS.index(c.op) | neg | path, ref, b.number(value),
                   b.string(format_number(value)))
            return 1
        if isinstance(node, Type):
            c = node.Type
            ref, path = self._leaf_ref(c)
            b.emit("TYPE", neg | path, ref, bc.TYPES.index(c.is_), b.string(c.is_))
            return 1
        if isinstance(node, TimeWindow):
            c = node.TimeWindow
            ref, path = self._leaf_ref(c)
            days = sum(1 << DAYS.index(d) for d in c.days)
            window = b.window(days, c.start_minute, c.end_minute, list(zone_offsets(c.timezone)))
            b.emit("TIME", neg | path, ref, window, b.string(window_text(c.days, c.start, c.end, c.timezone)))
            return 1
        if isinstance(node, (Every, Some)):
            name = "Every" if isinstance(node, Every) else "Some"
            c = getattr(node, name)
            if quantifiers >= MAX_QUANTIFIER_NESTING:  # validate() refuses it first
                raise PolicyError(f"Every/Some nested too deeply (at most {MAX_QUANTIFIER_NESTING} levels)",
                                  f"{where}.{name}")
            ref, path = self._leaf_ref(c)
            at = b.emit(name.upper(), neg | path, ref, 0)
            # the body: its own stack, and Nots counted inside it only
            depth = self._node(c.condition, False, f"{where}.{name}.condition", quantifiers + 1)
            if depth > MAX_STACK:
                raise PolicyError(f"condition nested too deeply (at most {MAX_STACK - 1} levels)",
                                  f"{where}.{name}.condition")
            b.emit("ENDQ")
            b.patch_operand(at, 1, len(b.code))
            return 1
        if isinstance(node, Not):
            depth = self._node(node.Not, not negated, f"{where}.Not", quantifiers)
            b.emit("NOT")
            return depth
        if isinstance(node, (All, AnyOf)):
            is_all = isinstance(node, All)
            children = node.All if is_all else node.Any
            name = "All" if is_all else "Any"
            if not children:
                b.emit("TRUE" if is_all else "FALSE")
                return 1
            depth = self._node(children[0], negated, f"{where}.{name}[0]", quantifiers)
            jumps = []
            for k, child in enumerate(children[1:], start=1):
                jumps.append(b.emit("JF" if is_all else "JT", 0, 0))
                depth = max(depth, 1 + self._node(child, negated, f"{where}.{name}[{k}]", quantifiers))
                b.emit("AND" if is_all else "OR")
            for at in jumps:
                b.patch_jump(at, len(b.code))
            return depth
        raise PolicyError(f"unknown condition node {type(node).__name__}", where)  # pragma: no cover


# op -> (flags, glob parts of x, T text, F text); "x" is the value as a JSON string
_STRING_TEXTS = {
    "Eq": (0, lambda x: [x], "is {}", "is not {}"),
    "Ne": (bc.F_STR_NOT, lambda x: [x], "is not {}", "is {}"),
    "StartsWith": (0, lambda x: [x, ""], "starts with {}", "does not start with {}"),
    "EndsWith": (0, lambda x: ["", x], "ends with {}", "does not end with {}"),
    "Contains": (0, lambda x: ["", x, ""], "contains {}", "does not contain {}"),
    "Glob": (0, lambda x: x.split("*"), "matches glob {}", "does not match glob {}"),
    "PathGlob": (bc.F_STR_PATH, lambda x: [], "matches path glob {}", "does not match path glob {}"),
}


def _string_match(op: str, value: str) -> tuple[int, list[str], str, str]:
    """A StringCheck match op: its STR flags, glob parts and the leaf texts after `S = V `."""
    flags, parts, true_text, false_text = _STRING_TEXTS[op]
    quoted = orjson.dumps(value).decode()
    return flags, parts(value), true_text.format(quoted), false_text.format(quoted)


def compile_policy(data: Any, semantics: str = "strict", *,
                   discovered_tools: Optional[Mapping[str, str]] = None) -> Compiled:
    """Compile a decoded policy (a dict, as from JSON) into a blob.

    `discovered_tools` maps tools found at runtime (the MCP proxy's tools/list) to their
    already-resolved tier: each is added to the declared tools if absent, and its tier is
    the given one (over tool_tiers). Perso semantics has no tiers and ignores it."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {', '.join(SEMANTICS)}, not {semantics!r}")
    with _collector_paused():
        return _compile(data, semantics, discovered_tools)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Compiling allocates a few objects per rule (models, tuples, dicts) and makes no
    reference cycles worth collecting, yet every 700 allocations set off the cyclic
    collector, which at 10,000 rules took half the time. It is paused for the compile and
    turned back on after (unless it was off already)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _compile(data: Any, semantics: str, discovered_tools: Optional[Mapping[str, str]]) -> Compiled:
    if semantics == "perso":
        data = strip_unknown(data)
        discovered_tools = None
    policy = validate(data, semantics)
    _check_discovered(discovered_tools)
    tools = effective_tools(policy, discovered_tools)
    tiers = resolve_tiers(policy, tools, semantics, discovered_tools)
    table = expand(policy, semantics, tools, tiers)
    try:
        blob = _lower(policy, table, semantics, tools, tiers)
    except (UnicodeEncodeError, orjson.JSONEncodeError):
        raise PolicyError("a string is not valid Unicode (lone surrogate)", "(policy)") from None
    return Compiled(blob, policy, semantics, table, tiers, tuple(tools))


def _lower(policy: Policy, table: dict[tuple[str, str], list[int]], semantics: str,
           tools: list[str], tiers: Mapping[str, str]) -> bytes:
    b = bc.BlobBuilder(perso=semantics == "perso", default_allow=policy.default_action == "Allow")
    b.version_sid = b.string(policy.version)
    b.n_policy_rules = len(policy.rules)
    lower = _Lowering(b)
    code_of: dict[int, tuple[int, int]] = {}
    for index in sorted({i for rules in table.values() for i in rules}):
        cond = policy.rules[index].condition
        code_of[index] = (0, 0) if cond is None else lower.condition(cond, f"rules[{index}].condition")
    for (tool, role), rules in table.items():
        b.entries.append((b.string(tool), b.string(role), len(b.rules), len(rules)))
        for i in rules:
            rule = policy.rules[i]
            word = bc.effect_word(bc.ALLOW) if semantics == "perso" else _effect_word(rule.effect, rule.approvals)
            b.rules.append((i, *code_of[i], word))
    if semantics != "perso":
        for tool in tools:
            tier = tiers.get(tool)
            if tier is None or tier not in policy.tier_defaults:
                continue
            value = policy.tier_defaults[tier]
            word = (_effect_word(value, None) if isinstance(value, str)
                    else _effect_word(value.effect, value.approvals))
            b.defaults.append((b.string(tool), word, b.string(tier)))
    return b.encode()


assert set(EFFECTS) == set(_DECISION_CODE)
