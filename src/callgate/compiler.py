"""The policy compiler: validate -> expand -> lower -> encode.

- validate: pydantic models (policy.py) check the shape and name the location of errors;
- expand: globs against the declared tools, roles against the declared roles, and the
  (tool, role) table with the rules each pair collects (all of them in order by default,
  the last one in perso semantics);
- lower: each condition becomes condition bytecode (bytecode.py) with interned fields,
  string sets and numbers;
- encode: the blob the C core verifies and runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from . import bytecode as bc
from .errors import PolicyError
from .policy import (
    All, AnyOf, FieldEquals, FieldPresent, Not, NumericCheck, Policy, StringCheck,
    strip_unknown, validate,
)

SEMANTICS = ("strict", "perso")
SOURCE_CODE = {name: i for i, name in enumerate(bc.SOURCES)}
SET_DISPLAY_MAX = 5


@dataclass(frozen=True)
class Compiled:
    """A compiled policy: the blob and what the Python side needs to know about it."""

    blob: bytes
    policy: Policy
    semantics: str
    table: dict[tuple[str, str], list[int]]   # (tool, role) -> rule indexes, in order

    @property
    def version(self) -> str:
        return self.policy.version


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


def expand(policy: Policy, semantics: str) -> dict[tuple[str, str], list[int]]:
    """The (tool, role) table: which rules each pair collects, in policy order."""
    tools = list(dict.fromkeys(policy.tools))
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
        if "*" in rule.tool_name:
            names = [t for t in tools if glob_match(rule.tool_name, t)]
        else:
            if semantics == "strict" and rule.tool_name not in declared_tools:
                raise PolicyError(f"tool '{rule.tool_name}' is not declared in tools", f"rules[{i}].tool_name")
            names = [rule.tool_name]
        for tool in names:
            for role in dict.fromkeys(roles):
                if semantics == "perso":
                    table[(tool, role)] = [i]  # the last rule naming the pair wins
                else:
                    table.setdefault((tool, role), []).append(i)
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


class _Lowering:
    """Turns conditions into bytecode in one shared code section."""

    def __init__(self, b: bc.BlobBuilder) -> None:
        self.b = b

    def condition(self, cond: Any, where: str) -> tuple[int, int]:
        """Emit a rule's condition; returns (code offset, code length)."""
        start = len(self.b.code)
        depth = self._node(cond, negated=False, where=where)
        if depth > 64:
            raise PolicyError("condition nested too deeply (at most 63 levels)", where)
        self.b.emit("RET")
        return start, len(self.b.code) - start

    def _node(self, node: Any, negated: bool, where: str) -> int:
        """Emit one node; returns the stack depth it needs."""
        b = self.b
        neg = bc.F_NEGATED if negated else 0
        if isinstance(node, NumericCheck):
            c = node.NumericCheck
            b.emit("NUM", bc.CMP_OPS.index(c.op) | neg, b.field(SOURCE_CODE[c.source], c.field),
                   b.number(c.value), b.string(format_number(c.value)))
            return 1
        if isinstance(node, StringCheck):
            c = node.StringCheck
            flags = neg | (bc.F_NOTIN if c.op == "NotIn" else 0)
            b.emit("IN", flags, b.field(SOURCE_CODE[c.source], c.field), b.set(c.value, format_set(c.value)))
            return 1
        if isinstance(node, FieldPresent):
            c = node.FieldPresent
            b.emit("PRESENT", neg, b.field(SOURCE_CODE[c.source], c.field))
            return 1
        if isinstance(node, FieldEquals):
            c = node.FieldEquals
            b.emit("EQ", neg, b.field(SOURCE_CODE[c.source_a], c.field_a),
                   b.field(SOURCE_CODE[c.source_b], c.field_b))
            return 1
        if isinstance(node, Not):
            depth = self._node(node.Not, not negated, f"{where}.Not")
            b.emit("NOT")
            return depth
        if isinstance(node, (All, AnyOf)):
            is_all = isinstance(node, All)
            children = node.All if is_all else node.Any
            name = "All" if is_all else "Any"
            if not children:
                b.emit("TRUE" if is_all else "FALSE")
                return 1
            depth = self._node(children[0], negated, f"{where}.{name}[0]")
            jumps = []
            for k, child in enumerate(children[1:], start=1):
                jumps.append(b.emit("JF" if is_all else "JT", 0, 0))
                depth = max(depth, 1 + self._node(child, negated, f"{where}.{name}[{k}]"))
                b.emit("AND" if is_all else "OR")
            for at in jumps:
                b.patch_jump(at, len(b.code))
            return depth
        raise PolicyError(f"unknown condition node {type(node).__name__}", where)  # pragma: no cover


def compile_policy(data: Any, semantics: str = "strict") -> Compiled:
    """Compile a decoded policy (a dict, as from JSON) into a blob."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {', '.join(SEMANTICS)}, not {semantics!r}")
    if semantics == "perso":
        data = strip_unknown(data)
    policy = validate(data)
    table = expand(policy, semantics)
    try:
        blob = _lower(policy, table, semantics)
    except (UnicodeEncodeError, orjson.JSONEncodeError):
        raise PolicyError("a string is not valid Unicode (lone surrogate)", "(policy)") from None
    return Compiled(blob, policy, semantics, table)


def _lower(policy: Policy, table: dict[tuple[str, str], list[int]], semantics: str) -> bytes:
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
        b.rules.extend((i, *code_of[i]) for i in rules)
    return b.encode()
