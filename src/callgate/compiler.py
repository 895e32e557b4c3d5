"""The policy compiler: validate -> expand -> lower -> encode.

- validate: pydantic models (policy.py) check the shape and name the location of errors;
- expand: the policy's meaning (language.Meaning): tiers of the declared (and discovered)
  tools, globs and tiers of rules against the tools, roles against the declared roles, and
  the (tool, role) table with the rules each pair collects in precedence order;
- lower: each condition becomes condition bytecode (bytecode.py) with interned fields,
  paths, string sets, globs, numbers and time windows;
- encode: the blob the C core verifies and runs.
"""

from __future__ import annotations

import bisect
import functools
import gc
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

import orjson

from . import bytecode as bc
from .arguments import ascii_lower, canonical_extension, canonical_host, canonical_root, canonical_suffix
from .errors import PolicyError
from .language import (
    DECISIONS, STRING_TEXTS, Meaning, format_number, format_set, ref_display, window_text,
)
from .policy import (
    DAYS, ELEMENT, EFFECTS, MAX_QUANTIFIER_NESTING, PRINCIPAL, TIERS, All, AnyOf, BooleanCheck, Every, FieldEquals,
    FieldPresent, Length, Not, NumericCheck, PathCheck, PathCheckBody, Policy, QuantifierBody, ScopeCheck, Some,
    SqlCheck, SqlCheckBody, StringCheck, TimeWindow, Type, UrlCheck, UrlCheckBody, pointer_tokens, strip_unknown,
    validate, zone,
)
from .scopes import covering_patterns

SEMANTICS = ("strict", "perso")
SOURCE_CODE = {name: i for i, name in enumerate(bc.SOURCES)}
MAX_STACK = bc.MAX_STACK   # the core's (csrc/cg_opcodes.h)
_DECISION_CODE = {"Deny": bc.DENY, "Allow": bc.ALLOW, "Elevate": bc.ELEVATE}


@dataclass(frozen=True)
class Compiled:
    """A compiled policy: the blob, and the policy's meaning (language.Meaning: tools, tiers,
    the (tool, role) table, effects, defaults, visibility) that the blob encodes."""

    blob: bytes
    meaning: Meaning

    @property
    def policy(self) -> Policy:
        """The validated policy (policy.Policy, or PersoPolicy under perso semantics)."""
        return self.meaning.policy

    @functools.cached_property
    def reads_principal_claims(self) -> bool:
        """Whether a condition reads Principal.claims (the field "claims", or a pointer under
        /claims): otherwise the engine leaves a chain's claims out of the request."""
        def reads(node: Any) -> bool:
            if isinstance(node, dict):
                for side in ("", "_a", "_b"):
                    if node.get("source" + side) == "Principal":
                        field, pointer = node.get("field" + side), node.get("pointer" + side)
                        if field == "claims" or (isinstance(pointer, str) and pointer.split("/")[1:2] == ["claims"]):
                            return True
                return any(reads(v) for v in node.values())
            if isinstance(node, list):
                return any(reads(v) for v in node)
            return False

        return reads([rule.model_dump(by_alias=True, exclude_none=True) for rule in self.policy.rules])

    @property
    def semantics(self) -> str:
        """"strict" or "perso"."""
        return self.meaning.semantics

    @property
    def table(self) -> dict[tuple[str, str], list[int]]:
        """(tool, role) -> rule indexes, in precedence order."""
        return self.meaning.table

    @property
    def tiers(self) -> dict[str, str]:
        """tool -> tier (tools with a tier)."""
        return self.meaning.tiers

    @property
    def tools(self) -> tuple[str, ...]:
        """The declared tools, then the discovered ones."""
        return self.meaning.tools

    @property
    def version(self) -> str:
        """The policy's "version" field."""
        return self.policy.version

    def rule_effect(self, index: int) -> tuple[str, int]:
        """("Allow" | "Deny" | "Elevate", approvals) of rule `index`."""
        return self.meaning.rule_effect(index)

    def default_effect(self, tool: str) -> tuple[str, int, Optional[str]]:
        """What decides `tool` when no rule decides: (decision, approvals, tier)."""
        return self.meaning.default_effect(tool)

    def tier_of(self, tool: str) -> Optional[str]:
        """The tool's tier, or None."""
        return self.meaning.tier_of(tool)

    def visible(self, tool: str, role: str) -> bool:
        """Whether `role` could ever be allowed `tool` (language.Meaning.visible)."""
        return self.meaning.visible(tool, role)


def _effect_word(effect: str, approvals: Optional[int]) -> int:
    return bc.effect_word(_DECISION_CODE[effect], approvals or 0)


def _check_discovered(discovered_tools: Optional[Mapping[str, str]]) -> None:
    for tool, tier in (discovered_tools or {}).items():
        if not isinstance(tool, str):
            raise PolicyError(f"a discovered tool name must be a string, not {type(tool).__name__}",
                              "(discovered_tools)")
        if tier not in TIERS:
            raise PolicyError(f"unknown tier {tier!r} for discovered tool '{tool}'; expected "
                              + ", ".join(TIERS), "(discovered_tools)")


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
        # (utcoffset() is None only for a naive datetime: this one has tz)
        return delta.days * 86400 + delta.seconds  # type: ignore[union-attr]  # zoneinfo offsets are whole seconds

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


# ---------------------------------------------------------------- lowering


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
            s = node.StringCheck
            ref, path = self._leaf_ref(s)
            if s.op in ("In", "NotIn"):
                flags = neg | path | (bc.F_NOTIN if s.op == "NotIn" else 0)
                b.emit("IN", flags, ref, b.set(s.value, format_set(s.value)))
                return 1
            flags, pattern, true_text, false_text = _string_match(s.op, s.value)
            desc = (b.pglob([part.split("*") for part in s.value.split("/")]) if s.op == "PathGlob"
                    else b.glob(pattern))
            b.emit("STR", flags | neg | path, ref, desc, b.string(true_text), b.string(false_text))
            return 1
        if isinstance(node, FieldPresent):
            p = node.FieldPresent
            ref, path = self._leaf_ref(p)
            b.emit("PRESENT", neg | path, ref)
            return 1
        if isinstance(node, FieldEquals):
            e = node.FieldEquals
            ref_a, path_a = self._ref(e.source_a, e.field_a, e.pointer_a)
            ref_b, path_b = self._ref(e.source_b, e.field_b, e.pointer_b)
            flags = neg | (bc.F_PATH_A if path_a else 0) | (bc.F_PATH_B if path_b else 0)
            b.emit("EQ", flags, ref_a, ref_b)
            return 1
        if isinstance(node, Length):
            n = node.Length
            ref, path = self._leaf_ref(n)
            value = float(n.value)
            b.emit("LEN", bc.CMP_OPS.index(n.op) | neg | path, ref, b.number(value),
                   b.string(format_number(value)))
            return 1
        if isinstance(node, Type):
            t = node.Type
            ref, path = self._leaf_ref(t)
            b.emit("TYPE", neg | path, ref, bc.TYPES.index(t.is_), b.string(t.is_))
            return 1
        if isinstance(node, BooleanCheck):
            bool_check = node.BooleanCheck
            ref, path = self._leaf_ref(bool_check)
            b.emit("BOOL", neg | path, ref, int(bool_check.value))
            return 1
        if isinstance(node, TimeWindow):
            w = node.TimeWindow
            ref, path = self._leaf_ref(w)
            days = sum(1 << DAYS.index(d) for d in w.days)
            window = b.window(days, w.start_minute, w.end_minute, list(zone_offsets(w.timezone)))
            b.emit("TIME", neg | path, ref, window, b.string(window_text(w.days, w.start, w.end, w.timezone)))
            return 1
        if isinstance(node, ScopeCheck):
            return self._scope_check(node, neg)
        if isinstance(node, UrlCheck):
            return self._url_check(node.UrlCheck, neg)
        if isinstance(node, PathCheck):
            return self._path_check(node.PathCheck, neg)
        if isinstance(node, SqlCheck):
            return self._sql_check(node.SqlCheck, neg)
        if isinstance(node, (Every, Some)):
            name = "Every" if isinstance(node, Every) else "Some"
            q: QuantifierBody = getattr(node, name)
            if quantifiers >= MAX_QUANTIFIER_NESTING:  # validate() refuses it first
                raise PolicyError(f"Every/Some nested too deeply (at most {MAX_QUANTIFIER_NESTING} levels)",
                                  f"{where}.{name}")
            ref, path = self._leaf_ref(q)
            at = b.emit(name.upper(), neg | path, ref, 0)
            # the body: its own stack, and Nots counted inside it only
            depth = self._node(q.condition, False, f"{where}.{name}.condition", quantifiers + 1)
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
            children = node.All if is_all else node.Any  # type: ignore[union-attr]  # is_all says which node is
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

    def _set_or_none(self, members: Optional[Sequence[str]], shown: Optional[Sequence[Any]]) -> int:
        """A descriptor's set: the canonical members, displayed as the policy lists them."""
        if members is None or shown is None:
            return int(bc.NONE_SET)
        return self.b.set(list(members), format_set(list(shown)))

    def _url_check(self, c: UrlCheckBody, neg: int) -> int:
        """UrlCheck: one URL instruction over a url descriptor whose sets hold what the parser
        produces (docs/arguments.md): schemes, canonical hosts and suffixes, ports as text."""
        ref, path = self._leaf_ref(c)
        flags = (0 if c.userinfo else bc.URL_NO_USERINFO) | (bc.URL_PUBLIC if c.ip == "public" else 0)
        hosts = [canonical_host(h) for h in c.hosts_in] if c.hosts_in is not None else None
        suffixes = [canonical_suffix(h) for h in c.host_suffixes_in] if c.host_suffixes_in is not None else None
        ports = [str(p) for p in c.ports_in] if c.ports_in is not None else None
        desc = self.b.url_check(flags, self._set_or_none(c.schemes_in, c.schemes_in),
                                self._set_or_none(hosts, c.hosts_in),
                                self._set_or_none(suffixes, c.host_suffixes_in),
                                self._set_or_none(ports, c.ports_in))
        self.b.emit("URL", neg | path, ref, desc)
        return 1

    def _path_check(self, c: PathCheckBody, neg: int) -> int:
        """PathCheck: one PATHCHK instruction over a pathchk descriptor; roots normalized (and
        folded for Windows) as the core compares them."""
        ref, path = self._leaf_ref(c)
        relative = not c.absolute
        flags = (bc.PC_WINDOWS if c.style == "windows" else 0) | (bc.PC_RELATIVE if relative else 0)

        def roots(values: Optional[list[str]]) -> Optional[list[str]]:
            return None if values is None else [canonical_root(r, c.style, relative) for r in values]
        exts = None if c.extensions_in is None else [canonical_extension(e, c.style) for e in c.extensions_in]
        desc = self.b.path_check(flags, self._set_or_none(roots(c.within), c.within),
                                 self._set_or_none(roots(c.not_within), c.not_within),
                                 self._set_or_none(exts, c.extensions_in))
        self.b.emit("PATHCHK", neg | path, ref, desc)
        return 1

    def _sql_check(self, c: SqlCheckBody, neg: int) -> int:
        """SqlCheck: one SQL instruction over a sqlchk descriptor. Names compare as the scanner
        reports them: SQLite folds every name to lower case, PostgreSQL folds unquoted ones
        (so listed names are kept as written), MySQL folds a function's name only (so a listed
        function, the last part of a dotted name, is lowered and tables keep their case)."""
        ref, path = self._leaf_ref(c)
        sqlite, mysql = c.dialect == "sqlite", c.dialect == "mysql"
        flags = ((bc.SC_SQLITE if sqlite else bc.SC_MYSQL if mysql else 0)
                 | (bc.SC_READ_ONLY if c.read_only else 0))

        def names(values: Optional[list[str]]) -> Optional[list[str]]:
            return None if values is None else [ascii_lower(v) if sqlite else v for v in values]

        def functions(values: Optional[list[str]]) -> Optional[list[str]]:
            if values is None or not mysql:
                return names(values)
            lowered = []
            for v in values:
                head, dot, last = v.rpartition(".")
                lowered.append(head + dot + ascii_lower(last))
            return lowered
        desc = self.b.sql_check(flags, c.max_statements or 0,
                                self._set_or_none(names(c.schemas_in), c.schemas_in),
                                self._set_or_none(names(c.tables_in), c.tables_in),
                                self._set_or_none(functions(c.functions_allowed), c.functions_allowed))
        self.b.emit("SQL", neg | path, ref, desc)
        return 1

    def _scope_check(self, node: ScopeCheck, neg: int) -> int:
        """A ScopeCheck in the core's own instructions, no opcode of its own: for each required
        scope, Some element of Principal.scopes is In the set of the patterns covering it
        (each segment itself or `*`); "all" joins them with AND, "any" with OR. No chain:
        Principal.scopes is missing and every Some is unknown, as for any missing array."""
        b = self.b
        c = node.ScopeCheck
        scopes_ref, scopes_path = self._ref(PRINCIPAL, "scopes", None)
        element, element_path = self._ref(ELEMENT, None, "")
        jumps = []
        for k, scope in enumerate(c.requires):
            if k:
                jumps.append(b.emit("JF" if c.mode == "all" else "JT", 0, 0))
            at = b.emit("SOME", neg | (bc.F_PATH_A if scopes_path else 0), scopes_ref, 0)
            b.emit("IN", bc.F_PATH_A if element_path else 0, element,
                   b.set(covering_patterns(scope), f"{{patterns granting {scope}}}"))
            b.emit("ENDQ")
            b.patch_operand(at, 1, len(b.code))
            if k:
                b.emit("AND" if c.mode == "all" else "OR")
        for at in jumps:
            b.patch_jump(at, len(b.code))
        return 2 if len(c.requires) > 1 else 1


# op -> (flags, glob parts of x); "x" is the value as a JSON string
_STRING_MATCH: dict[str, tuple[int, Callable[[str], list[str]]]] = {
    "Eq": (0, lambda x: [x]),
    "Ne": (bc.F_STR_NOT, lambda x: [x]),
    "StartsWith": (0, lambda x: [x, ""]),
    "EndsWith": (0, lambda x: ["", x]),
    "Contains": (0, lambda x: ["", x, ""]),
    "Glob": (0, lambda x: x.split("*")),
    "PathGlob": (bc.F_STR_PATH, lambda x: []),
}


def _string_match(op: str, value: str) -> tuple[int, list[str], str, str]:
    """A StringCheck match op: its STR flags, glob parts and the leaf texts after `S = V `."""
    flags, parts = _STRING_MATCH[op]
    true_text, false_text = STRING_TEXTS[op]
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
    return _compile_validated(validate(data, semantics), semantics, discovered_tools)


def compile_validated(policy: Policy, semantics: str = "strict", *,
                      discovered_tools: Optional[Mapping[str, str]] = None) -> Compiled:
    """Compile a policy that is already validated (a Compiled's `policy`), e.g. again with
    other discovered tools."""
    if semantics not in SEMANTICS:
        raise ValueError(f"semantics must be one of {', '.join(SEMANTICS)}, not {semantics!r}")
    with _collector_paused():
        return _compile_validated(policy, semantics, discovered_tools)


def _compile_validated(policy: Policy, semantics: str, discovered_tools: Optional[Mapping[str, str]]) -> Compiled:
    if semantics == "perso":
        discovered_tools = None
    _check_discovered(discovered_tools)
    meaning = Meaning(policy, semantics, discovered_tools)
    try:
        blob = _lower(meaning)
    except (UnicodeEncodeError, orjson.JSONEncodeError):
        raise PolicyError("a string is not valid Unicode (lone surrogate)", "(policy)") from None
    return Compiled(blob, meaning)


def _lower(meaning: Meaning) -> bytes:
    policy, table, semantics = meaning.policy, meaning.table, meaning.semantics
    b = bc.BlobBuilder(perso=semantics == "perso", default_allow=policy.default_action == "Allow")
    b.version_sid = b.string(policy.version)
    b.n_policy_rules = len(policy.rules)
    b.names = [bc.NO_NAME if rule.id is None else b.string(rule.id) for rule in policy.rules]
    lower = _Lowering(b)
    code_of: dict[int, tuple[int, int]] = {}
    for index in sorted({i for rules in table.values() for i in rules}):
        cond = policy.rules[index].condition
        code_of[index] = (0, 0) if cond is None else lower.condition(cond, f"rules[{index}].condition")
    for (tool, role), rules in table.items():
        b.entries.append((b.string(tool), b.string(role), len(b.rules), len(rules)))
        for i in rules:
            b.rules.append((i, *code_of[i], _effect_word(*meaning.rule_effect(i))))
    if semantics != "perso":
        for tool in meaning.tools:
            decision, approvals, tier = meaning.default_effect(tool)
            if tier is not None:
                b.defaults.append((b.string(tool), _effect_word(decision, approvals), b.string(tier)))
    return b.encode()


assert {e.capitalize() for e in EFFECTS} == set(_DECISION_CODE) == set(DECISIONS)
