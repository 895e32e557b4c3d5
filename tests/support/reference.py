"""An independent, deliberately plain reference evaluator for callgate policies.

Written straight from docs/semantics.md (the v1 contract) and docs/policy-v2.md (the v2
language), not from the engine's code, so that the differential tests can hold the C core
to the documents. It favours being obviously right over being fast: policies are expanded
into a dict of lists, conditions are evaluated by a recursive tree walk that returns
``(value, blame)`` at every node, and reason strings are built with f-strings next to the
table rows they come from.

Two semantics, as in the docs:

- ``"strict"`` (the default semantics): three-valued leaves (T, F, U), Kleene All/Any/Not,
  every rule of a (tool, role) pair kept. v1 policies: the first match allows, reasons
  explain the blamed leaf of the first rule. v2 adds effects (deny / elevate), tiers,
  the Context and Element sources, JSON Pointers, quantifiers and new leaves; the 5-step
  precedence of policy-v2.md "Effects" decides.
- ``"perso"``: two-valued, last rule per pair wins, short fixed reasons. The original
  engine ignores keys it does not know (``effect``, ``approvals``, ``tool_tiers``,
  ``tier_defaults``), so they are ignored here too; v2 condition nodes, the Context and
  Element sources, pointers and tier rules are not part of perso and are refused.

Where policy-v2.md is ambiguous, the reading taken is written next to the code as
"AMBIGUITY:" and, where a choice matters for decisions, it is the one that fails closed.

This module must not import callgate.
"""

from __future__ import annotations

import calendar
import datetime
import functools
import math
import re
from decimal import Decimal
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import orjson

from . import argref, argsql

__all__ = [
    "ReferenceEngine",
    "ReferencePolicyError",
    "ReferenceRequestError",
    "RefDecision",
    "T",
    "F",
    "U",
    "glob_matches",
    "path_glob_matches",
    "resolve_pointer",
    "parse_instant",
    "display_value",
    "display_number",
    "display_set",
    "scan_decide",
    "TIERS",
    "DAYS",
]

# Truth values. Plain strings so that failures print readably.
T, F, U = "T", "F", "U"

SOURCES = ("Arguments", "AgentAttributes", "ResourceAttributes")
V2_SOURCES = SOURCES + ("Context", "Principal")  # policy-v2.md: "Context"; principals.md: "Principal"
OP_SYMBOL = {"Lt": "<", "Lte": "<=", "Gt": ">", "Gte": ">=", "Eq": "==", "Ne": "!="}
V1_NUMERIC_OPS = ("Lt", "Lte", "Gt", "Gte", "Eq")
NUMERIC_OPS = V1_NUMERIC_OPS + ("Ne", "Between")
LENGTH_OPS = ("Lt", "Lte", "Gt", "Gte", "Eq", "Ne")
STRING_SET_OPS = ("In", "NotIn")
STRING_ONE_OPS = ("Eq", "Ne", "StartsWith", "EndsWith", "Contains", "Glob", "PathGlob")
TYPES = ("string", "number", "integer", "boolean", "null", "array", "object")
TIERS = ("public", "read", "write", "destructive")  # in this order of strictness
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # week order; Mon = weekday() 0
EFFECTS = ("allow", "deny", "elevate")
V2_LEAVES = ("Length", "Type", "BooleanCheck", "TimeWindow", "Every", "Some", "UrlCheck", "PathCheck", "SqlCheck")

# TimeWindow: instants are valid in [1970-01-01T00:00:00Z, 2100-01-01T00:00:00Z).
TIME_MIN = 0
TIME_END = 4102444800  # 2100-01-01T00:00:00Z in Unix seconds

# Set display lists at most this many values before "… and N more".
SET_SHOWN = 5
# Value display keeps at most this many UTF-8 bytes before "…".
VALUE_BYTES = 64

NEGATED = " (negated by Not)"

_MISSING = object()  # sentinel: "the key is not in the source object"


class ReferencePolicyError(ValueError):
    """The strict semantics rejects the policy (undeclared role or non-glob tool, or a v2
    construct the document refuses)."""


class ReferenceRequestError(ValueError):
    """The request cannot be decided (wrong input type, a value JSON cannot carry)."""


class RefDecision(tuple):
    """A decision: unpacks and compares as the v1 triple ``(decision, reason, rule)``, and
    carries ``approvals_required`` (1 or 2 for Elevate, 0 otherwise) as an attribute.

    Keeping the triple shape means every v1 test that unpacks or compares three values
    still works; v2 tests read ``.approvals_required`` (or ``.full``) explicitly."""

    def __new__(cls, decision: str, reason: str, rule: Optional[int], approvals_required: int = 0):
        self = super().__new__(cls, (decision, reason, rule))
        self.approvals_required = approvals_required
        return self

    @property
    def decision(self) -> str:
        return self[0]

    @property
    def reason(self) -> str:
        return self[1]

    @property
    def rule(self) -> Optional[int]:
        return self[2]

    @property
    def full(self) -> tuple:
        """``(decision, reason, rule, approvals_required)``."""
        return (self[0], self[1], self[2], self.approvals_required)

    def __repr__(self) -> str:
        return f"RefDecision{self.full!r}"


# --------------------------------------------------------------------------------------
# Display helpers: V, K and SET of the reason table.
# --------------------------------------------------------------------------------------


def _json_text(value: Any) -> str:
    """The request JSON text of ``value``, as the Python API serializes it (orjson).

    orjson refuses integers beyond 64 bits; the Python API still has to send them as JSON,
    and the only faithful JSON text for a Python int is its decimal digits. So composite
    values are rebuilt with orjson's compact layout and big ints are written as ``str(x)``.
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass
    if isinstance(value, bool) or value is None:
        return orjson.dumps(value).decode()
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (orjson.dumps(k).decode() + ":" + _json_text(v) for k, v in value.items())
        return "{" + ",".join(items) + "}"
    raise ReferenceRequestError(f"not a JSON value: {value!r}")


def display_value(value: Any) -> str:
    """V: the value's JSON text, cut to its first 64 bytes at a character boundary + "…".

    The ellipsis is added only when the full text is longer than 64 bytes.
    """
    raw = _json_text(value).encode("utf-8")
    if len(raw) <= VALUE_BYTES:
        return raw.decode("utf-8")
    cut = VALUE_BYTES
    # Back off while the byte at the cut is a UTF-8 continuation byte (0b10xxxxxx):
    # cutting there would split a character.
    while cut > 0 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut].decode("utf-8") + "…"


def display_number(value: Any) -> str:
    """K: an integral policy number below 1e16 in magnitude prints as an integer, anything
    else as Python's ``repr(float)``. ``-0.0`` is integral, so it prints as ``0``."""
    k = float(value)
    if k.is_integer() and abs(k) < 1e16:
        return str(int(k))
    return repr(k)


def display_set(values: list) -> str:
    """SET: the StringCheck's values as orjson strings, ", "-separated in brackets; after
    the first 5 the rest is summarised as ", … and N more]". Policy order and any
    duplicates are kept: it is "the list of the StringCheck's values"."""
    shown = ", ".join(orjson.dumps(v).decode() for v in values[:SET_SHOWN])
    rest = len(values) - SET_SHOWN
    if rest > 0:
        return f"[{shown}, … and {rest} more]"
    return f"[{shown}]"


def display_pattern(pattern: str) -> str:
    """"x" of the v2 reason table: the pattern as a JSON string (orjson form), never cut."""
    return orjson.dumps(pattern).decode()


# --------------------------------------------------------------------------------------
# Globs.
# --------------------------------------------------------------------------------------


def glob_matches(pattern: str, name: str) -> bool:
    """``*`` matches any run of characters (possibly empty); every other character,
    ``?`` included, is literal. The whole name must match. (Tool globs, tool_tiers keys
    and StringCheck ``Glob``, where ``*`` also matches ``/``.)"""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


def path_glob_matches(pattern: str, name: str) -> bool:
    """StringCheck ``PathGlob``: as ``glob_matches`` but ``*`` never matches ``/``."""
    regex = "[^/]*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


# --------------------------------------------------------------------------------------
# References: field / pointer / the Element itself (policy-v2.md "References").
# --------------------------------------------------------------------------------------

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]*")  # "0, or a decimal without leading zeros"
_POINTER_ESCAPE = re.compile(r"~(?![01])")  # a "~" not followed by 0 or 1 is no escape


def pointer_tokens(pointer: str) -> list:
    """The unescaped reference tokens of an RFC 6901 pointer ("" has none).

    RFC 6901 section 4: first ``~1`` -> ``/``, then ``~0`` -> ``~`` (so ``~01`` is ``~1``)."""
    if pointer == "":
        return []
    return [raw.replace("~1", "/").replace("~0", "~") for raw in pointer[1:].split("/")]


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document``, or ``_MISSING``.

    Objects are walked by key; arrays by index ("0" or a decimal without leading zeros,
    below the length: "01", "-", "+1" never index); any step that does not exist, and any
    step into a scalar, makes the value missing."""
    value = document
    for token in pointer_tokens(pointer):
        if isinstance(value, dict):
            if token not in value:
                return _MISSING
            value = value[token]
        elif isinstance(value, list):
            if not _ARRAY_INDEX.fullmatch(token) or int(token) >= len(value):
                return _MISSING
            value = value[int(token)]
        else:
            return _MISSING
    return value


class Ref:
    """Where a leaf reads its value: a source and a field, a pointer, or neither (the
    Element itself). ``name`` is the display name of policy-v2.md "Display names"."""

    def __init__(self, source: str, field: Optional[str], pointer: Optional[str]):
        self.source, self.field, self.pointer = source, field, pointer
        if source == "Element":
            # `element`, `element.amount`, `element/a/b`; pointer "" reads the element.
            if pointer is not None:
                self.name = "element" + pointer
            elif field is not None:
                self.name = "element." + field
            else:
                self.name = "element"
        elif pointer is not None:
            self.name = source + pointer  # "Arguments/filters/0/amount": as written
        else:
            self.name = f"{source}.{field}"  # v1: "Arguments.amount"


def leaf_ref(kind: str, spec: dict, side: str = "") -> Ref:
    """The Ref of a leaf (``side`` is "_a" / "_b" for FieldEquals).

    TimeWindow defaults: source "Context", and field "time" when neither field nor
    pointer is given.
    AMBIGUITY: a TimeWindow with "source": "Element" and neither field nor pointer. The
    Element paragraph says such a leaf "reads the element itself"; the TimeWindow row says
    the field defaults to "time". Taken: the element itself (the Element rule speaks of
    exactly this shape; the "time" default is there for the Context object). Neither
    reading fails closed in general (each gives U where the other gives a time); the
    random strategies never generate this shape, the corpus does not rely on it.
    """
    source = spec.get("source" + side)
    field = spec.get("field" + side)
    pointer = spec.get("pointer" + side)
    if kind == "TimeWindow":
        if source is None:
            source = "Context"
        if field is None and pointer is None and source != "Element":
            field = "time"
    return Ref(source, field, pointer)


# --------------------------------------------------------------------------------------
# Policy checks (strict): every PolicyError / "refused" of policy-v2.md.
# --------------------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    """A JSON number: Python int or float, but never bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_policy_number(value: Any) -> bool:
    return _is_number(value) and math.isfinite(float(value))


def _is_approvals(value: Any) -> bool:
    """``"approvals": 1 | 2``. bool is not a number (True == 1 in Python)."""
    return isinstance(value, int) and not isinstance(value, bool) and value in (1, 2)


def _hhmm(text: Any) -> Optional[int]:
    """Minutes of an "HH:MM" string (two digits each, minutes 00-59), else None."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{2}:[0-9]{2}", text):
        return None
    hours, minutes = int(text[:2]), int(text[3:])
    if minutes > 59:
        return None
    return hours * 60 + minutes


@functools.lru_cache(maxsize=1)
def _iana_names() -> frozenset:
    """IANA zone names as the host's tz database lists them, minus "localtime": that file
    is the host's own zone, not an IANA name, and the doc wants a result that does not
    depend on the host ("posixrules", "posix/...", "right/..." are not listed either)."""
    return frozenset(available_timezones()) - {"localtime"}


def _zone(name: Any) -> Optional[ZoneInfo]:
    """The zone for "timezone": IANA name", or None.
    AMBIGUITY: "IANA name" is not spelled out; taken: a name of the tz database's list
    (exact case: "utc" is refused), loadable by zoneinfo."""
    if not isinstance(name, str) or name not in _iana_names():
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        return None


def _check_ref(kind: str, spec: dict, side: str, depth: int, where: str) -> None:
    """A leaf's reference: a known source (Element only inside a quantifier), exactly one
    of field / pointer (neither only for Element, and TimeWindow's defaults), a pointer
    that is RFC 6901 text with at least one token outside Element."""
    if not isinstance(spec, dict):
        raise ReferencePolicyError(f"{where}: {kind} must be an object")
    if kind == "TimeWindow" and spec.get("source" + side) is None:
        source = "Context"
    else:
        source = spec.get("source" + side)
    if source == "Element":
        if depth == 0:
            raise ReferencePolicyError(f"{where}: Element outside Every/Some")
    elif source not in V2_SOURCES:
        raise ReferencePolicyError(f"{where}: unknown source {source!r}")
    has_field, has_pointer = ("field" + side) in spec, ("pointer" + side) in spec
    if has_field and has_pointer:
        raise ReferencePolicyError(f"{where}: both field and pointer")
    if not has_field and not has_pointer and source != "Element" and kind != "TimeWindow":
        raise ReferencePolicyError(f"{where}: neither field nor pointer")
    if has_field and not isinstance(spec["field" + side], str):
        raise ReferencePolicyError(f"{where}: field must be a string")
    if has_pointer:
        pointer = spec["pointer" + side]
        if not isinstance(pointer, str):
            raise ReferencePolicyError(f"{where}: pointer must be a string")
        if pointer == "" and source != "Element":
            # "For Arguments, ..., Context a pointer has at least one token."
            raise ReferencePolicyError(f"{where}: empty pointer outside Element")
        if pointer and not pointer.startswith("/"):
            raise ReferencePolicyError(f"{where}: pointer {pointer!r} does not start with '/'")
        if _POINTER_ESCAPE.search(pointer):
            # AMBIGUITY: the doc only says "~1 is /, ~0 is ~". RFC 6901 makes any other
            # "~" an error; taken: a PolicyError (refuse rather than guess).
            raise ReferencePolicyError(f"{where}: bad escape in pointer {pointer!r}")


def _check_condition(cond: Any, depth: int, where: str) -> None:
    """Recursively check a v2 condition tree; ``depth`` counts enclosing quantifiers."""
    if not isinstance(cond, dict) or len(cond) != 1:
        raise ReferencePolicyError(f"{where}: a condition is an object with one key")
    ((kind, spec),) = cond.items()
    if kind in ("All", "Any"):
        if not isinstance(spec, list):
            raise ReferencePolicyError(f"{where}: {kind} takes a list")
        for i, child in enumerate(spec):
            _check_condition(child, depth, f"{where}.{kind}[{i}]")
        return
    if kind == "Not":
        _check_condition(spec, depth, f"{where}.Not")
        return
    if kind in ("Every", "Some"):
        _check_ref(kind, spec, "", depth, where)  # the array is read in the outer scope
        if "condition" not in spec:
            raise ReferencePolicyError(f"{where}: {kind} needs a condition")
        _check_condition(spec["condition"], depth + 1, f"{where}.{kind}")
        return
    if kind == "FieldEquals":
        _check_ref(kind, spec, "_a", depth, where)
        _check_ref(kind, spec, "_b", depth, where)
        return
    if kind == "FieldPresent":
        _check_ref(kind, spec, "", depth, where)
        return
    if kind == "NumericCheck":
        _check_ref(kind, spec, "", depth, where)
        op, value = spec.get("op"), spec.get("value")
        if op not in NUMERIC_OPS:
            raise ReferencePolicyError(f"{where}: unknown NumericCheck op {op!r}")
        if op == "Between":
            # "value [lo, hi], lo <= hi, inclusive"
            if (not isinstance(value, list) or len(value) != 2
                    or not all(_is_policy_number(v) for v in value)
                    or not float(value[0]) <= float(value[1])):
                raise ReferencePolicyError(f"{where}: Between needs [lo, hi] with lo <= hi")
        elif not _is_policy_number(value):
            raise ReferencePolicyError(f"{where}: NumericCheck value must be a number")
        return
    if kind == "StringCheck":
        _check_ref(kind, spec, "", depth, where)
        op, value = spec.get("op"), spec.get("value")
        if op in STRING_SET_OPS:
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ReferencePolicyError(f"{where}: {op} takes a list of strings")
        elif op in STRING_ONE_OPS:
            if not isinstance(value, str):
                raise ReferencePolicyError(f"{where}: {op} takes one string")
        else:
            raise ReferencePolicyError(f"{where}: unknown StringCheck op {op!r}")
        return
    if kind == "Length":
        _check_ref(kind, spec, "", depth, where)
        value = spec.get("value")
        if spec.get("op") not in LENGTH_OPS:
            raise ReferencePolicyError(f"{where}: unknown Length op {spec.get('op')!r}")
        # AMBIGUITY: "value: integer >= 0". Taken literally: a JSON integer; 3.0 is refused.
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ReferencePolicyError(f"{where}: Length value must be an integer >= 0")
        return
    if kind == "Type":
        _check_ref(kind, spec, "", depth, where)
        if spec.get("is") not in TYPES:
            raise ReferencePolicyError(f"{where}: unknown type {spec.get('is')!r}")
        return
    if kind == "BooleanCheck":
        _check_ref(kind, spec, "", depth, where)
        if not isinstance(spec.get("value"), bool):   # "value": true or false
            raise ReferencePolicyError(f"{where}: BooleanCheck value must be true or false")
        return
    if kind == "TimeWindow":
        _check_ref(kind, spec, "", depth, where)
        days = spec.get("days", list(DAYS))
        if not isinstance(days, list) or not days or not all(d in DAYS for d in days):
            raise ReferencePolicyError(f"{where}: days must be a non-empty list of Mon..Sun")
        if len(set(days)) != len(days):
            # AMBIGUITY: the doc does not say whether a day may be listed twice. Taken
            # (fail closed): a PolicyError; a repeated day is a mistake in a window.
            raise ReferencePolicyError(f"{where}: a day is listed twice")
        start, end = _hhmm(spec.get("start")), _hhmm(spec.get("end"))
        # start 00:00-23:59, end 00:01-24:00, start != end
        if start is None or not 0 <= start <= 23 * 60 + 59:
            raise ReferencePolicyError(f"{where}: bad start {spec.get('start')!r}")
        if end is None or not 1 <= end <= 24 * 60:
            raise ReferencePolicyError(f"{where}: bad end {spec.get('end')!r}")
        if start == end:
            raise ReferencePolicyError(f"{where}: start == end")
        if _zone(spec.get("timezone")) is None:
            raise ReferencePolicyError(f"{where}: unknown timezone {spec.get('timezone')!r}")
        return
    if kind == "ScopeCheck":
        _check_scope_check(spec, depth, where)
        return
    if kind in ("UrlCheck", "PathCheck"):   # docs/arguments.md
        _check_ref(kind, spec, "", depth, where)

        def fail(message: str) -> None:
            raise ReferencePolicyError(f"{where}: {message}")
        (argref.check_url_policy if kind == "UrlCheck" else argref.check_path_policy)(spec, fail)
        return
    if kind == "SqlCheck":   # docs/arguments.md (tests/support/argsql.py)
        _check_ref(kind, spec, "", depth, where)

        def fail_sql(message: str) -> None:
            raise ReferencePolicyError(f"{where}: {message}")
        argsql.check_sql_policy(spec, fail_sql)
        return
    raise ReferencePolicyError(f"{where}: unknown condition node {kind!r}")


# docs/principals.md "Scopes": segments of letters, digits and _ - : /, separated by dots
_SCOPE_SEGMENT = re.compile(r"[A-Za-z0-9_\-:/]+")


def _check_scope_check(spec: Any, depth: int, where: str) -> None:
    """ScopeCheck: `requires` a non-empty list of concrete scopes (1 to 256 characters, at
    most 8 segments, no `*`), `mode` "all" (the default) or "any", nothing else. It reads
    as one Some per required scope, so it counts as a quantifier level."""
    if not isinstance(spec, dict) or not set(spec) <= {"requires", "mode"}:
        raise ReferencePolicyError(f"{where}: ScopeCheck takes requires and mode only")
    requires = spec.get("requires")
    if not isinstance(requires, list) or not requires:
        raise ReferencePolicyError(f"{where}: ScopeCheck requires a non-empty list")
    for scope in requires:
        if not isinstance(scope, str) or not 1 <= len(scope) <= 256:
            raise ReferencePolicyError(f"{where}: a required scope is a string of 1 to 256 characters")
        segments = scope.split(".")
        if len(segments) > 8 or not all(_SCOPE_SEGMENT.fullmatch(seg) for seg in segments):
            raise ReferencePolicyError(f"{where}: {scope!r} is not a concrete scope of at most 8 segments")
    if spec.get("mode", "all") not in ("all", "any"):
        raise ReferencePolicyError(f"{where}: ScopeCheck mode is all or any")
    if depth >= 8:
        raise ReferencePolicyError(f"{where}: ScopeCheck nested in 8 quantifiers")


def scope_covers(pattern: str, scope: str) -> bool:
    """docs/principals.md: a granted pattern covers a scope when both have the same number of
    segments and each pattern segment is `*` or the scope's segment, exactly."""
    p, s = pattern.split("."), scope.split(".")
    if len(p) != len(s):
        return False
    for a, b in zip(p, s):
        if a != "*" and a != b:
            return False
    return True


def _scope_tree(spec: dict) -> dict:
    """A ScopeCheck as the docs define it: for each required scope R, Some element of
    Principal.scopes grants R; "all" joins these with All, "any" with Any (one: itself)."""
    somes = [{"Some": {"source": "Principal", "field": "scopes",
                       "condition": {"ScopeGrant": {"source": "Element", "scope": scope}}}}
             for scope in spec["requires"]]
    if len(somes) == 1:
        return somes[0]
    return {("All" if spec.get("mode", "all") == "all" else "Any"): somes}


def _is_v1_condition(cond: Any) -> bool:
    """True when a condition uses only v1 nodes, v1 sources and plain fields (perso)."""
    if cond is None:
        return True
    if not isinstance(cond, dict) or len(cond) != 1:
        return False
    ((kind, spec),) = cond.items()
    if kind in ("All", "Any"):
        return isinstance(spec, list) and all(_is_v1_condition(c) for c in spec)
    if kind == "Not":
        return _is_v1_condition(spec)
    if kind == "FieldEquals":
        return (spec.get("source_a") in SOURCES and spec.get("source_b") in SOURCES
                and "field_a" in spec and "field_b" in spec
                and "pointer_a" not in spec and "pointer_b" not in spec)
    if kind == "NumericCheck":
        return (spec.get("source") in SOURCES and "field" in spec and "pointer" not in spec
                and spec.get("op") in V1_NUMERIC_OPS)
    if kind == "StringCheck":
        return (spec.get("source") in SOURCES and "field" in spec and "pointer" not in spec
                and spec.get("op") in STRING_SET_OPS)
    if kind == "FieldPresent":
        return spec.get("source") in SOURCES and "field" in spec and "pointer" not in spec
    return False


def _default_outcome(value: Any, where: str) -> tuple[str, int]:
    """A tier_defaults value -> (decision, approvals). "allow", "deny", or
    {"effect": ..., "approvals": ...}.
    AMBIGUITY: the doc says "approvals" is "required for elevate, refused otherwise" of
    rules only. Taken (fail closed) for tier_defaults too: {"effect": "elevate"} without
    approvals 1|2, and "approvals" beside allow/deny, are PolicyErrors; no other key."""
    if value == "allow":
        return "Allow", 0
    if value == "deny":
        return "Deny", 0
    if isinstance(value, dict) and set(value) <= {"effect", "approvals"}:
        effect = value.get("effect")
        if effect == "elevate" and _is_approvals(value.get("approvals")):
            return "Elevate", value["approvals"]
        if effect in ("allow", "deny") and "approvals" not in value:
            return effect.capitalize(), 0
    raise ReferencePolicyError(f"{where}: bad tier default {value!r}")


def _check_rule_v2(rule: dict, where: str) -> None:
    """Exactly one of tool_name / tier; effect allow|deny|elevate; approvals 1|2 required
    for elevate and refused otherwise."""
    if ("tool_name" in rule) == ("tier" in rule):
        raise ReferencePolicyError(f"{where}: exactly one of tool_name and tier")
    if "tier" in rule and rule["tier"] not in TIERS:
        raise ReferencePolicyError(f"{where}: unknown tier {rule['tier']!r}")
    if "tool_name" in rule and not isinstance(rule["tool_name"], str):
        raise ReferencePolicyError(f"{where}: tool_name must be a string")
    effect = rule.get("effect", "allow")
    if effect not in EFFECTS:
        raise ReferencePolicyError(f"{where}: unknown effect {effect!r}")
    if effect == "elevate":
        if not _is_approvals(rule.get("approvals")):
            raise ReferencePolicyError(f"{where}: elevate needs approvals 1 or 2")
    elif "approvals" in rule:
        raise ReferencePolicyError(f"{where}: approvals on a {effect} rule")
    if rule.get("condition") is not None:
        _check_condition(rule["condition"], 0, f"{where}.condition")


# --------------------------------------------------------------------------------------
# Policy expansion.
# --------------------------------------------------------------------------------------


def _expand_tools(tool_name: str, declared: list, semantics: str, where: str) -> list:
    """The tools a rule's ``tool_name`` stands for, per the doc's expansion rules."""
    if "*" in tool_name:
        # Globs only ever reach declared tools; no match contributes nothing.
        return [t for t in declared if glob_matches(tool_name, t)]
    if semantics == "strict" and tool_name not in declared:
        raise ReferencePolicyError(f"{where}: tool {tool_name!r} is not declared")
    return [tool_name]


def _expand_roles(roles: list, declared: list, semantics: str, where: str) -> list:
    """The declared roles of a rule; perso drops undeclared ones, strict rejects them."""
    kept = []
    for role in roles:
        if role in declared:
            kept.append(role)
        elif semantics == "strict":
            raise ReferencePolicyError(f"{where}: role {role!r} is not declared")
    return kept


def tool_tiers(policy: dict) -> dict:
    """Each declared tool's tier, from ``tool_tiers`` (strict): an exact key wins over
    globs; among globs matching a tool, the strictest tier wins; a tool no key names has
    no tier. An exact key that is not a declared tool is a PolicyError."""
    declared = list(policy.get("tools", []))
    keys = policy.get("tool_tiers", {})
    if not isinstance(keys, dict):
        raise ReferencePolicyError("tool_tiers must be an object")
    for key, tier in keys.items():
        if tier not in TIERS:
            raise ReferencePolicyError(f"tool_tiers[{key!r}]: unknown tier {tier!r}")
        if "*" not in key and key not in declared:
            raise ReferencePolicyError(f"tool_tiers: {key!r} is not a declared tool")
    tiers = {}
    for tool in declared:
        if tool in keys and "*" not in tool:
            tiers[tool] = keys[tool]  # exact name wins
            continue
        globbed = [tier for key, tier in keys.items() if "*" in key and glob_matches(key, tool)]
        if globbed:
            tiers[tool] = max(globbed, key=TIERS.index)  # strictest glob wins
    return tiers


def _rule_tools(rule: dict, declared: list, tiers: dict, semantics: str, where: str) -> list:
    """The tools a rule covers: its tool_name expansion, or every declared tool whose
    tier is the rule's ``tier`` ("exactly as if each were listed")."""
    if "tier" in rule and "tool_name" not in rule:
        if semantics == "perso":
            raise ReferencePolicyError(f"{where}: tier rules are not part of perso")
        return [t for t in declared if tiers.get(t) == rule["tier"]]
    return _expand_tools(rule["tool_name"], declared, semantics, where)


def expand(policy: dict, semantics: str, tiers: Optional[dict] = None) -> dict:
    """Map each (tool, role) pair to the rule indices it collects, in policy order.

    perso keeps only the last rule naming a pair; strict keeps all of them. A rule names a
    pair at most once even if its role list (or the tool list) repeats a name: a pair
    "collects the rule", and a rule is one rule.
    """
    tools = list(policy.get("tools", []))
    roles = list(policy.get("roles", []))
    tiers = tiers if tiers is not None else {}
    table: dict[tuple[str, str], list[int]] = {}
    for index, rule in enumerate(policy.get("rules", [])):
        where = f"rules[{index}]"
        # Roles are checked before the tool name (either is a rejection in strict).
        rule_roles = _expand_roles(rule.get("roles", []), roles, semantics, where)
        rule_tools = _rule_tools(rule, tools, tiers, semantics, where)
        for tool in rule_tools:
            for role in rule_roles:
                collected = table.setdefault((tool, role), [])
                if semantics == "perso":
                    collected[:] = [index]  # last rule wins
                elif index not in collected:
                    collected.append(index)
    return table


# --------------------------------------------------------------------------------------
# Field access and value equality.
# --------------------------------------------------------------------------------------


def _as_double(value: Any) -> float:
    """The number rounded to the nearest double (Python's int -> float rounds correctly)."""
    return float(value)


def _decimal(value: Any) -> Decimal:
    """The exact decimal value of a number's JSON text (floats as orjson writes them)."""
    if isinstance(value, int):
        return Decimal(value)
    return Decimal(orjson.dumps(value).decode())


def strict_equal(a: Any, b: Any) -> bool:
    """Default-semantics equality: numbers by exact decimal value, strings by code points,
    arrays element-wise, objects as sets of key/value pairs, never across types."""
    if _is_number(a) and _is_number(b):
        return _decimal(a) == _decimal(b)
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None and b is None:
        return True  # only reachable inside arrays/objects; top-level null is U
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return False


def serde_value(value: Any) -> Any:
    """``value`` as serde_json would hold it after parsing its JSON text, as a tagged tuple.

    Integers: fits u64 -> PosInt, negative and fits i64 -> NegInt, else a double. Python
    floats are always Floats (orjson writes them with a '.' or an exponent).
    """
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        if 0 <= value < 2**64:
            return ("posint", value)
        if -(2**63) <= value < 0:
            return ("negint", value)
        return ("float", float(value))
    if isinstance(value, float):
        return ("float", value)
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, list):
        return ("array", [serde_value(v) for v in value])
    if isinstance(value, dict):
        return ("object", {k: serde_value(v) for k, v in value.items()})
    raise ReferenceRequestError(f"not a JSON value: {value!r}")


def serde_equal(a: Any, b: Any) -> bool:
    """Perso equality, serde_json's derived ``PartialEq`` on Value: same variant required
    (PosInt/NegInt/Float are distinct), floats by ``==`` (so 0.0 == -0.0), deep arrays,
    objects with key order ignored. Tagged tuples compare exactly like that in Python:
    a dict's ``==`` ignores order and ``("float", 0.0) == ("float", -0.0)``."""
    return serde_value(a) == serde_value(b)


# --------------------------------------------------------------------------------------
# Time (TimeWindow).
# --------------------------------------------------------------------------------------

# RFC 3339 as policy-v2.md restricts it: YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM), T and Z
# may be lowercase. ASCII digits only ([0-9], not \d which also matches other scripts).
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.[0-9]+)?"
    r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")
_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def parse_instant(value: Any) -> Optional[int]:
    """The instant as whole Unix seconds, or None when it "is not a time" (-> U).

    - a JSON number (never bool): Unix seconds, fraction ignored (floor);
    - an RFC 3339 string with an offset; seconds 00-59 (no leap second), a real calendar
      date, hours 00-23, minutes 00-59, offset hours 00-23 and minutes 00-59; the fraction
      is ignored;
    - anything else -> None; and instants before 1970-01-01T00:00:00Z or from
      2100-01-01T00:00:00Z on -> None.
    The bounds are whole seconds, so checking the exact number or its floor is the same.
    AMBIGUITY: "fraction ignored" for a negative number: floor, and the range is checked
    on the instant itself, so -0.5 (before 1970-01-01T00:00:00Z) is not a time. A "-00:00"
    offset is accepted as UTC (RFC 3339 allows it).
    """
    if _is_number(value):
        if not TIME_MIN <= value < TIME_END:
            return None
        return math.floor(value)
    if not isinstance(value, str):
        return None
    m = _RFC3339.fullmatch(value)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    if not (1 <= month <= 12 and hour <= 23 and minute <= 59 and second <= 59):
        return None
    if year < 1 or not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None  # an impossible date (Feb 30, year 0000, ...)
    offset = 0
    if m.group(7) is None:  # "+HH:MM" / "-HH:MM" ("-00:00" is UTC too)
        off_h, off_m = int(m.group(9)), int(m.group(10))
        if off_h > 23 or off_m > 59:
            return None
        offset = (off_h * 3600 + off_m * 60) * (1 if m.group(8) == "+" else -1)
    days = datetime.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    instant = days * 86400 + hour * 3600 + minute * 60 + second - offset
    if not TIME_MIN <= instant < TIME_END:
        return None
    return instant


def in_window(instant: int, spec: dict) -> bool:
    """Whether the instant, in local time of ``timezone``, falls in the window.

    Local time comes straight from Python's zoneinfo (offsets to the second). Comparing
    whole minutes is exact: start <= hh:mm:ss < end  <=>  start <= hh:mm < end, because
    start and end are whole minutes.
    """
    local = datetime.datetime.fromtimestamp(instant, ZoneInfo(spec["timezone"]))
    days = set(spec.get("days", DAYS))
    today = DAYS[local.weekday()]
    # "the previous weekday": the weekday before today's, by the calendar of weekdays.
    # AMBIGUITY (tiny): where a zone skipped a local day (Pacific/Apia, 2011-12-30), the
    # weekday before Saturday is Friday even though the local Friday never happened.
    yesterday = DAYS[(local.weekday() - 1) % 7]
    now = local.hour * 60 + local.minute
    start, end = _hhmm(spec["start"]), _hhmm(spec["end"])
    if start < end:
        # T iff the local weekday is in days and start <= local time < end
        return today in days and start <= now < end
    # overnight: (weekday in days and time >= start) or (previous weekday in days and
    # time < end)
    return (today in days and now >= start) or (yesterday in days and now < end)


def display_window(spec: dict) -> str:
    """W: "Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris": days in week order (all seven
    when omitted), then start-end as written, then the zone name."""
    days = set(spec.get("days", DAYS))
    listed = ",".join(d for d in DAYS if d in days)
    return f"{listed} {spec['start']}-{spec['end']} {spec['timezone']}"


# --------------------------------------------------------------------------------------
# Conditions: a tree walk returning (value, blame).
# --------------------------------------------------------------------------------------


class Blame:
    """The leaf a node's result is pinned on, with what it saw.

    ``result`` is the leaf's own result, ``negated`` whether an odd number of ``Not`` sit
    above it (inside the innermost quantifier's condition only), ``seen`` the looked-up
    value(s) (``_MISSING`` for an absent key); for Every/Some ``seen`` is
    ``(array, deciding index or None, that element's blame)``.
    """

    def __init__(self, kind: str, spec: dict, result: str, negated: bool, seen: tuple):
        self.kind = kind
        self.spec = spec
        self.result = result
        self.negated = negated
        self.seen = seen


class Branches:
    """The blame of an ``Any`` of two or more children whose value is F or U: no child gave
    T, all were evaluated, and the explanation names each. ``blames`` is flat, in order: a
    child whose own blame is a ``Branches`` contributes its entries; an entry is ``None``
    for an empty ``Any``."""

    def __init__(self, blames: list):
        self.blames = blames


BRANCHES_SHOWN = 4


def _kleene_not(value: str) -> str:
    return {T: F, F: T, U: U}[value]


def _compare(op: str, a: Any, k: Any) -> bool:
    return {"Lt": a < k, "Lte": a <= k, "Gt": a > k, "Gte": a >= k, "Eq": a == k,
            "Ne": a != k}[op]


def _has_type(x: Any, kind: str) -> bool:
    """Type: the value has that JSON type; "integer" is a number with an integral value
    (1.0 is an integer, true is not a number)."""
    if kind == "string":
        return isinstance(x, str)
    if kind == "number":
        return _is_number(x)
    if kind == "integer":
        return _is_number(x) and (isinstance(x, int) or x.is_integer())
    if kind == "boolean":
        return isinstance(x, bool)
    if kind == "null":
        return x is None
    if kind == "array":
        return isinstance(x, list)
    return isinstance(x, dict)  # "object"


class _Walker:
    """Evaluates one condition tree against one request's source objects; ``elements``
    is the stack of current quantifier elements (innermost last)."""

    def __init__(self, semantics: str, sources: dict, elements: tuple = ()):
        self.strict = semantics == "strict"
        self.semantics = semantics
        self.sources = sources
        self.elements = elements

    def undetermined(self) -> str:
        """Where strict gives U, perso gives F."""
        return U if self.strict else F

    def read(self, ref: Ref) -> Any:
        """The value a reference names, or ``_MISSING``."""
        if ref.source == "Element":
            base = self.elements[-1]  # "the innermost one"
        else:
            base = self.sources[ref.source]
        if ref.pointer is not None:
            return resolve_pointer(base, ref.pointer)
        if ref.field is not None:
            if isinstance(base, dict) and ref.field in base:
                return base[ref.field]
            return _MISSING  # missing key, or not an object (perso args, an element)
        return base  # Element with neither field nor pointer: the element itself

    def walk(self, cond: dict, negated: bool = False) -> tuple[str, Optional[Blame]]:
        """Evaluate ``cond``; return its value and its blame leaf (None for empty All/Any)."""
        ((kind, spec),) = cond.items()
        if kind == "All":
            return self.walk_all(spec, negated)
        if kind == "Any":
            return self.walk_any(spec, negated)
        if kind == "Not":
            value, blame = self.walk(spec, not negated)
            return _kleene_not(value), blame  # Not passes on its child's blame
        if kind == "ScopeCheck":
            return self.walk(_scope_tree(spec), negated)
        leaf = getattr(self, "leaf_" + kind)
        value, seen = leaf(spec)
        return value, Blame(kind, spec, value, negated, seen)

    def walk_all(self, children: list, negated: bool) -> tuple[str, Optional[Blame]]:
        """Kleene AND, left to right, stopping at the first F. ``All []`` is T."""
        results = []
        for child in children:
            results.append(self.walk(child, negated))
            if results[-1][0] == F:
                break
        return self._combine(results, stop=F, other=T)

    def walk_any(self, children: list, negated: bool) -> tuple[str, Any]:
        """Kleene OR, left to right, stopping at the first T. ``Any []`` is F. When two or
        more children and none gives T, the blame is all of them (``Branches``)."""
        results = []
        for child in children:
            results.append(self.walk(child, negated))
            if results[-1][0] == T:
                break
        value, blame = self._combine(results, stop=T, other=F)
        if value != T and len(results) >= 2:
            flat: list = []
            for _, child_blame in results:
                flat.extend(child_blame.blames if isinstance(child_blame, Branches) else [child_blame])
            blame = Branches(flat)
        return value, blame

    @staticmethod
    def _combine(results: list, stop: str, other: str) -> tuple[str, Optional[Blame]]:
        """Shared by All (stop=F, other=T) and Any (stop=T, other=F): the value is ``stop``
        if any evaluated child gave it, else U if any gave U, else ``other``; the blame is
        that of the first child with the chosen value, and for ``other`` of the first
        child. With no children: ``other`` and no blame."""
        for wanted in (stop, U):
            for value, blame in results:
                if value == wanted:
                    return wanted, blame
        return other, (results[0][1] if results else None)

    # Leaves return (value, seen).

    def leaf_NumericCheck(self, spec: dict) -> tuple[str, tuple]:
        x = self.read(leaf_ref("NumericCheck", spec))
        if not _is_number(x):  # missing, null, bool, string, array, object
            return self.undetermined(), (x,)
        a = _as_double(x)  # "the number, rounded to the nearest double"
        if spec["op"] == "Between":
            lo, hi = (float(v) for v in spec["value"])
            ok = lo <= a <= hi  # inclusive
        else:
            ok = _compare(spec["op"], a, float(spec["value"]))
        return (T if ok else F), (x,)

    def leaf_StringCheck(self, spec: dict) -> tuple[str, tuple]:
        x = self.read(leaf_ref("StringCheck", spec))
        if not isinstance(x, str):
            return self.undetermined(), (x,)
        op, p = spec["op"], spec["value"]
        if op in STRING_SET_OPS:
            member = x in p  # exact code points
            ok = member if op == "In" else not member
        else:  # code points; StartsWith/EndsWith/Contains as in Python
            ok = {"Eq": lambda: x == p, "Ne": lambda: x != p,
                  "StartsWith": lambda: x.startswith(p), "EndsWith": lambda: x.endswith(p),
                  "Contains": lambda: p in x, "Glob": lambda: glob_matches(p, x),
                  "PathGlob": lambda: path_glob_matches(p, x)}[op]()
        return (T if ok else F), (x,)

    def leaf_FieldPresent(self, spec: dict) -> tuple[str, tuple]:
        x = self.read(leaf_ref("FieldPresent", spec))
        return (F if x is _MISSING or x is None else T), (x,)

    def leaf_FieldEquals(self, spec: dict) -> tuple[str, tuple]:
        a = self.read(leaf_ref("FieldEquals", spec, "_a"))
        b = self.read(leaf_ref("FieldEquals", spec, "_b"))
        if self.strict:
            if a is _MISSING or a is None or b is _MISSING or b is None:
                return U, (a, b)
            return (T if strict_equal(a, b) else F), (a, b)
        if a is _MISSING or b is _MISSING:  # perso: null is a value, missing is F
            return F, (a, b)
        return (T if serde_equal(a, b) else F), (a, b)

    def leaf_Length(self, spec: dict) -> tuple[str, tuple]:
        """Code points of a string or elements of an array; anything else -> U."""
        x = self.read(leaf_ref("Length", spec))
        if not isinstance(x, (str, list)):
            return U, (x,)
        return (T if _compare(spec["op"], len(x), spec["value"]) else F), (x,)

    def leaf_Type(self, spec: dict) -> tuple[str, tuple]:
        """Missing -> F, never U."""
        x = self.read(leaf_ref("Type", spec))
        if x is _MISSING:
            return F, (x,)
        return (T if _has_type(x, spec["is"]) else F), (x,)

    def leaf_BooleanCheck(self, spec: dict) -> tuple[str, tuple]:
        """That boolean -> T, the other -> F; missing, null, any other type -> U."""
        x = self.read(leaf_ref("BooleanCheck", spec))
        if not isinstance(x, bool):
            return U, (x,)
        return (T if x == spec["value"] else F), (x,)

    def leaf_TimeWindow(self, spec: dict) -> tuple[str, tuple]:
        x = self.read(leaf_ref("TimeWindow", spec))
        instant = None if x is _MISSING else parse_instant(x)
        if instant is None:
            return U, (x,)
        return (T if in_window(instant, spec) else F), (x,)

    def leaf_UrlCheck(self, spec: dict) -> tuple[str, tuple]:
        """docs/arguments.md: U unless a string the URL parser reads; then each check."""
        return self._argcheck("UrlCheck", spec, argref.eval_url)

    def leaf_PathCheck(self, spec: dict) -> tuple[str, tuple]:
        """docs/arguments.md: U unless a string the path normalizer reads; then each check."""
        return self._argcheck("PathCheck", spec, argref.eval_path)

    def leaf_SqlCheck(self, spec: dict) -> tuple[str, tuple]:
        """docs/arguments.md: U unless a string the dialect's tokenizer reads; then each check."""
        return self._argcheck("SqlCheck", spec, argsql.eval_sql)

    def _argcheck(self, kind: str, spec: dict, evaluate: Any) -> tuple[str, tuple]:
        """seen = (the value, the leaf's reason text when the value is a string)."""
        ref = leaf_ref(kind, spec)
        x = self.read(ref)
        if not isinstance(x, str):
            return U, (x, None)
        result, text = evaluate(spec, x, ref.name, display_value(x), display_set)
        return result, (x, text)

    def leaf_ScopeGrant(self, spec: dict) -> tuple[str, tuple]:
        """One element of Principal.scopes against one required scope: U when the element is
        not a string, else whether it covers the scope."""
        x = self.read(leaf_ref("ScopeGrant", spec))
        if not isinstance(x, str):
            return U, (x,)
        return (T if scope_covers(x, spec["scope"]) else F), (x,)

    def leaf_Every(self, spec: dict) -> tuple[str, tuple]:
        return self._quantify("Every", spec)

    def leaf_Some(self, spec: dict) -> tuple[str, tuple]:
        return self._quantify("Some", spec)

    def _quantify(self, kind: str, spec: dict) -> tuple[str, tuple]:
        """Every: Kleene AND over the elements, in order, stopping at the first F.
        Some: Kleene OR, stopping at the first T. [] -> Every T, Some F. Not an array -> U.
        The deciding element is the stopping one, else the first U one (a fresh walker:
        the element scope is pushed and the Not parity restarts inside the condition)."""
        x = self.read(leaf_ref(kind, spec))
        if not isinstance(x, list):
            return U, (x, None, None)
        stop, other = (F, T) if kind == "Every" else (T, F)
        first_u = None
        for index, element in enumerate(x):
            inner = _Walker(self.semantics, self.sources, self.elements + (element,))
            value, blame = inner.walk(spec["condition"])
            if value == stop:
                return stop, (x, index, blame)
            if value == U and first_u is None:
                first_u = (index, blame)
        if first_u is not None:
            return U, (x,) + first_u
        return other, (x, None, None)


# --------------------------------------------------------------------------------------
# Explanations (strict deny reasons, and the X of v2 decision texts).
# --------------------------------------------------------------------------------------


def _absent(name: str, x: Any) -> Optional[str]:
    """``S is missing`` / ``S is null``, or None when the value is there."""
    if x is _MISSING:
        return f"{name} is missing"
    if x is None:
        return f"{name} is null"
    return None


# The one-string StringCheck ops: (text for r = F, text for r = T), after "S = V ".
_STRING_TEXTS = {
    "Eq": ("is not {x}", "is {x}"),
    "Ne": ("is {x}", "is not {x}"),
    "StartsWith": ("does not start with {x}", "starts with {x}"),
    "EndsWith": ("does not end with {x}", "ends with {x}"),
    "Contains": ("does not contain {x}", "contains {x}"),
    "Glob": ("does not match glob {x}", "matches glob {x}"),
    "PathGlob": ("does not match path glob {x}", "matches path glob {x}"),
}


def explain(blame: Optional[Blame], value: str = F) -> str:
    """The explanation text for a blame leaf, following the reason tables; ``value`` is
    the explained condition's own result (it matters only when there is no blame leaf).

    The leaf's text comes from its own result r (U, F or T column); " (negated by Not)"
    is appended to the T column only, when the leaf's parity is odd. (In v1 a blamed T
    leaf is always negated, so this is exactly v1's "negated" text there.)

    No blame leaf (an empty All / Any, possibly under Not): v1 says the explanation is
    `condition not satisfied`; policy-v2.md says a deny rule's T condition without one
    "reads `condition passed`".
    AMBIGUITY: the doc states "condition passed" only for the deny decision texts. Taken:
    a blame-less condition whose value is T reads `condition passed` wherever it is
    explained (a deny rule's X, and the X of a Some's deciding element, whose condition
    is T), and `condition not satisfied` otherwise (F, as in v1). Text only: no decision
    depends on it.
    """
    if isinstance(blame, Branches):
        shown: list[str] = []
        more = 0
        for text in (explain(b, F) for b in blame.blames):
            if text in shown:
                continue  # the same words again say nothing new
            if len(shown) < BRANCHES_SHOWN:
                shown.append(text)
            else:
                more += 1
        text = ", and ".join(shown)
        if more:
            text += f", and {more} other {'branch' if more == 1 else 'branches'} failed"
        return text
    if blame is None:
        return "condition passed" if value == T else "condition not satisfied"
    text = _leaf_text(blame)
    if blame.result == T and blame.negated:
        text += NEGATED
    return text


def _leaf_text(blame: Blame) -> str:
    """The leaf's text for its result, without the " (negated by Not)" suffix."""
    kind, spec, r = blame.kind, blame.spec, blame.result
    if kind == "FieldEquals":
        sa = leaf_ref(kind, spec, "_a").name
        sb = leaf_ref(kind, spec, "_b").name
        a, b = blame.seen
        gone = _absent(sa, a) or _absent(sb, b)  # A checked first
        if r == U:
            return gone
        if r == T:
            return f"{sa} = {display_value(a)} equals {sb}"
        return f"{sa} = {display_value(a)} does not equal {sb} = {display_value(b)}"

    s = leaf_ref(kind, spec).name
    x = blame.seen[0]
    gone = _absent(s, x)
    if kind == "FieldPresent":
        return gone if r == F else f"{s} is present"
    if kind == "Type":
        # "Missing/null: S is missing / S is null (... and for an F result of Type)".
        if r == T:
            return f"{s} is of type {spec['is']}"
        return gone or f"{s} = {display_value(x)} is not of type {spec['is']}"
    if kind in ("Every", "Some"):
        return _quantifier_text(kind, s, blame)
    if r == U and gone:
        return gone  # every other leaf: missing / null is a U with these texts
    if kind == "BooleanCheck":
        want = "true" if spec["value"] else "false"
        if r == T:
            return f"{s} is {want}"
        return f"{s} = {display_value(x)} is not " + ("a boolean" if r == U else want)
    v = display_value(x)
    if kind == "NumericCheck":
        if r == U:
            return f"{s} = {v} is not a number"
        if spec["op"] == "Between":
            lo, hi = (display_number(n) for n in spec["value"])
            return f"{s} = {v} is {'' if r == T else 'not '}between {lo} and {hi}"
        op, k = OP_SYMBOL[spec["op"]], display_number(spec["value"])
        return f"{s} = {v} is {op} {k}" if r == T else f"{s} = {v} is not {op} {k}"
    if kind == "StringCheck":
        if r == U:
            return f"{s} = {v} is not a string"
        op = spec["op"]
        if op in STRING_SET_OPS:
            in_text = f"{s} = {v} is in {display_set(spec['value'])}"
            out_text = f"{s} = {v} is not in {display_set(spec['value'])}"
            # F for In means "not in"; F for NotIn means "in"; T says the opposite.
            failing, passing = (out_text, in_text) if op == "In" else (in_text, out_text)
            return passing if r == T else failing
        f_text, t_text = _STRING_TEXTS[op]
        return f"{s} = {v} " + (t_text if r == T else f_text).format(x=display_pattern(spec["value"]))
    if kind == "ScopeGrant":   # docs/principals.md: reads as In a set named for the scope
        if r == U:
            return f"{s} = {v} is not a string"
        return f"{s} = {v} is {'' if r == T else 'not '}in {{patterns granting {spec['scope']}}}"
    if kind == "Length":
        if r == U:
            return f"{s} = {v} is neither a string nor an array"
        op, k = OP_SYMBOL[spec["op"]], display_number(spec["value"])
        return f"length of {s} is {len(x)}, {'' if r == T else 'not '}{op} {k}"
    if kind == "TimeWindow":
        if r == U:
            return f"{s} = {v} is not a time"  # also for out-of-range instants
        return f"{s} = {v} is {'within' if r == T else 'outside'} {display_window(spec)}"
    if kind in ("UrlCheck", "PathCheck", "SqlCheck"):  # the text the check built (argref.py, argsql.py)
        return blame.seen[1] if blame.seen[1] is not None else f"{s} = {v} is not a string"
    raise AssertionError(f"unknown leaf {kind}")


def _quantifier_text(kind: str, s: str, blame: Blame) -> str:
    """Every / Some rows. ``S: element I: X`` names the deciding element I (0-based) and
    X, that element's own explanation (its blame leaf, with the Nots inside the
    quantifier's condition only)."""
    x, index, inner = blame.seen
    if index is not None:
        # The deciding element's own result: Every stops at F, Some at T, else U.
        element_value = blame.result
        return f"{s}: element {index}: {explain(inner, element_value)}"
    if blame.result == U:
        return _absent(s, x) or f"{s} = {display_value(x)} is not an array"
    if kind == "Every":
        return f"{s}: every element satisfies the condition"  # T ([] included)
    return f"{s}: no element satisfies the condition"  # Some F ([] included)


# --------------------------------------------------------------------------------------
# Requests and decisions.
# --------------------------------------------------------------------------------------


def _check_json(value: Any, what: str) -> None:
    """Reject values JSON cannot carry (NaN, infinities, ints that round to infinity,
    non-string keys, other Python types); the doc makes these errors, never decisions."""
    if value is None or isinstance(value, (bool, str)):
        return
    if isinstance(value, int):
        try:
            float(value)
        except OverflowError:
            raise ReferenceRequestError(f"{what}: integer rounds to infinity") from None
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ReferenceRequestError(f"{what}: non-finite number")
        return
    if isinstance(value, list):
        for v in value:
            _check_json(v, what)
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise ReferenceRequestError(f"{what}: non-string key {k!r}")
            _check_json(v, what)
        return
    raise ReferenceRequestError(f"{what}: not a JSON value: {value!r}")


def _object_input(value: Any, what: str) -> dict:
    """Attributes, context: missing or null means {}, any other non-object is a request
    error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReferenceRequestError(f"{what} must be a JSON object")
    return value


def _sources(semantics, args, agent_attributes, resource_attributes, context=None, principal=None) -> dict:
    """The source objects of a request, validated as the docs require.

    AMBIGUITY: policy-v2.md defines `context` for the v2 question; perso has no Context
    source. Taken: the context is validated in both semantics (like the attribute
    objects, "in both semantics"), so a non-object context is a RequestError in perso too.
    """
    for value, what in ((args, "arguments"), (agent_attributes, "agent_attributes"),
                        (resource_attributes, "resource_attributes"), (context, "context"),
                        (principal, "principal")):
        _check_json(value, what)
    if args is None:
        args = {}
    if semantics == "strict" and not isinstance(args, dict):
        raise ReferenceRequestError("arguments must be a JSON object")
    return {
        "Arguments": args,  # perso: a non-object simply has no fields (see _Walker.read)
        "AgentAttributes": _object_input(agent_attributes, "agent_attributes"),
        "ResourceAttributes": _object_input(resource_attributes, "resource_attributes"),
        "Context": _object_input(context, "context"),
        "Principal": _object_input(principal, "principal"),   # none: every field missing
    }


def _approvals_word(n: int) -> str:
    return "1 approval" if n == 1 else f"{n} approvals"


def _head(tool: str, role: str, decision: str, approvals: int) -> str:
    """`{tool} allowed for role '{role}'`, `... denied ...`, `{tool} requires N
    approval(s) for role '{role}'`."""
    if decision == "Allow":
        return f"{tool} allowed for role '{role}'"
    if decision == "Deny":
        return f"{tool} denied for role '{role}'"
    return f"{tool} requires {_approvals_word(approvals)} for role '{role}'"


class ReferenceEngine:
    """The reference evaluator for one policy under one semantics."""

    def __init__(self, policy: dict, semantics: str = "strict"):
        """Expand ``policy``; raise ReferencePolicyError where the semantics rejects it."""
        if semantics not in ("strict", "perso"):
            raise ValueError(f"unknown semantics {semantics!r}")
        self.policy = policy
        self.semantics = semantics
        self.rules = list(policy.get("rules", []))
        self.default_action = policy.get("default_action", "Deny")
        if semantics == "strict":
            for index, rule in enumerate(self.rules):
                _check_rule_v2(rule, f"rules[{index}]")
            self.tiers = tool_tiers(policy)
            defaults = policy.get("tier_defaults", {})
            if not isinstance(defaults, dict) or not set(defaults) <= set(TIERS):
                raise ReferencePolicyError(f"tier_defaults: unknown tier in {defaults!r}")
            self.tier_defaults = {tier: _default_outcome(value, f"tier_defaults[{tier!r}]")
                                  for tier, value in defaults.items()}
        else:
            # perso ignores effect / approvals / tool_tiers / tier_defaults (unknown keys
            # to the original engine); v2 condition constructs are not perso at all.
            for index, rule in enumerate(self.rules):
                if not _is_v1_condition(rule.get("condition")):
                    raise ReferencePolicyError(f"rules[{index}]: v2 condition under perso")
            self.tiers, self.tier_defaults = {}, {}
        self.table = expand(policy, semantics, self.tiers)

    # Facts the property tests use.

    def collected(self, tool: str, role: str) -> list:
        """E: the indices of the rules collected for (tool, role), in policy order."""
        return list(self.table.get((tool, role), []))

    def effect(self, index: int) -> str:
        """A rule's effect ("allow" by default; always "allow" under perso)."""
        if self.semantics == "perso":
            return "allow"
        return self.rules[index].get("effect", "allow")

    def approvals(self, index: int) -> int:
        return self.rules[index].get("approvals", 0) if self.effect(index) == "elevate" else 0

    def tier_of(self, tool: str) -> Optional[str]:
        return self.tiers.get(tool)

    def default_for(self, tool: str) -> tuple[str, int, str]:
        """Step 5: ``(decision, approvals, D)``: the tool's tier default when its tier
        has one, otherwise default_action."""
        tier = self.tiers.get(tool)
        if tier is not None and tier in self.tier_defaults:
            decision, approvals = self.tier_defaults[tier]
            return decision, approvals, f"tier '{tier}' default {decision}"
        return self.default_action, 0, f"default_action {self.default_action}"

    def sources_for(self, args=None, agent_attributes=None, resource_attributes=None,
                    context=None, principal=None) -> dict:
        return _sources(self.semantics, args, agent_attributes, resource_attributes, context, principal)

    def condition_value(self, index: int, sources: dict) -> tuple[str, Optional[Blame]]:
        """Evaluate rule ``index``'s condition; a rule without one is T with no blame."""
        cond = self.rules[index].get("condition")
        if cond is None:
            return T, None
        return _Walker(self.semantics, sources).walk(cond)

    def evaluate(self, tool: str, args: Any, role: str, agent_attributes: Any = None,
                 resource_attributes: Any = None, context: Any = None, principal: Any = None) -> RefDecision:
        """Decide a request: ``(decision, exact reason, rule index or None)`` with
        ``.approvals_required``. ``principal``: the Principal source object (a verified
        chain's user, agents, actor, depth, effective scopes, ...), or None."""
        sources = _sources(self.semantics, args, agent_attributes, resource_attributes, context, principal)
        collected = self.table.get((tool, role), [])
        if self.semantics == "perso":
            return self._perso(tool, role, collected, sources)
        return self.decide_strict(tool, role, collected, sources)

    def _perso(self, tool, role, collected, sources):
        """perso: the single kept rule decides; no rule -> default_action."""
        if not collected:
            return RefDecision(
                self.default_action,
                f"no rule matched tool '{tool}' for role '{role}'; applying default_action",
                None)
        (index,) = collected
        head = f"rule matched tool '{tool}' for role '{role}'"
        if self.rules[index].get("condition") is None:
            return RefDecision("Allow", f"{head}; no condition required", index)
        value, _ = self.condition_value(index, sources)
        if value == T:
            return RefDecision("Allow", f"{head}; condition passed", index)
        return RefDecision("Deny", f"{head}; condition failed", index)  # even if default Allow

    def decide_strict(self, tool: str, role: str, collected: list, sources: dict) -> RefDecision:
        """policy-v2.md "Effects", steps 1-5, over E = ``collected`` (policy order).

        For a v1 policy (allow rules only, no tiers) this is exactly docs/semantics.md:
        no deny or elevate rule, so step 2 is "the first matching rule allows", step 4 the
        v1 denial explaining E's first rule, step 5 default_action with "no rule covers".
        """
        memo: dict[int, tuple] = {}

        def cond(index):  # conditions are pure: evaluate each once
            if index not in memo:
                memo[index] = self.condition_value(index, sources)
            return memo[index]

        def name(index):  # a rule is named by its id, else by its number counting from 1
            return self.rules[index].get("id") or str(index + 1)

        def passed(index):  # "rule N has no condition" / "rule N condition passed"
            if self.rules[index].get("condition") is None:
                return f"rule {name(index)} has no condition"
            return f"rule {name(index)} condition passed"

        denies = [i for i in collected if self.effect(i) == "deny"]
        allows = [i for i in collected if self.effect(i) == "allow"]
        elevates = [i for i in collected if self.effect(i) == "elevate"]

        # 1. A deny rule applies when its condition is T or U (no condition: T); the
        #    first such rule in policy order decides.
        for i in denies:
            value, blame = cond(i)
            head = f"{tool} denied for role '{role}': rule {name(i)} forbids it"
            if self.rules[i].get("condition") is None:
                return RefDecision("Deny", head, i)
            if value == T:
                return RefDecision("Deny", f"{head}: {explain(blame, T)}", i)
            if value == U:
                return RefDecision("Deny", f"{head} and could not be evaluated: {explain(blame, U)}", i)

        # 2. Else the first allow rule (policy order) whose condition is T allows.
        for i in allows:
            if cond(i)[0] == T:
                return RefDecision("Allow", f"{tool} allowed for role '{role}': {passed(i)}", i)

        # 3. Else, among the elevate rules that apply, the largest approval count; the
        #    first rule in policy order with that count decides.
        applying = [i for i in elevates if cond(i)[0] == T]
        if applying:
            n = max(self.approvals(i) for i in applying)
            i = next(i for i in applying if self.approvals(i) == n)
            return RefDecision("Elevate", f"{_head(tool, role, 'Elevate', n)}: {passed(i)}", i, n)

        # 4. Else, if E holds a grant (allow or elevate) rule: Deny, explained by E's first
        #    grant rule (allow rules in policy order, then elevate rules by approvals
        #    descending, then policy order), in the v1 denial text; K counts grants only.
        grants = allows + sorted(elevates, key=lambda i: (-self.approvals(i), i))
        if grants:
            first = grants[0]
            others = len(grants) - 1
            tail = f"rule {name(first)}"
            if others == 1:
                tail += "; 1 other rule did not match"
            elif others > 1:
                tail += f"; {others} other rules did not match"
            return RefDecision(
                "Deny", f"{tool} denied for role '{role}': {explain(cond(first)[1])} ({tail})", first)

        # 5. Else (E empty, or only deny rules, none applying): the tier default, else
        #    default_action. "covers" when E is empty, "grants" when it holds deny rules.
        decision, n, label = self.default_for(tool)
        verb = "covers" if not collected else "grants"
        return RefDecision(
            decision,
            f"{_head(tool, role, decision, n)}: no rule {verb} this tool for this role ({label})",
            None, n)


# --------------------------------------------------------------------------------------
# A brute-force scan, independent of the (tool, role) table, for index-vs-scan tests.
# --------------------------------------------------------------------------------------


def scan_decide(policy: dict, semantics: str, tool: str, role: str, args: Any = None,
                agent_attributes: Any = None, resource_attributes: Any = None,
                context: Any = None) -> tuple[str, Optional[int]]:
    """``(decision, rule)`` by looking at every rule for every request: no expansion table.

    A rule applies when the request's role is one of its roles and declared, and its tool
    name matches the request's tool (a glob only matches declared tools; a plain name must
    equal it), or (v2) its tier is the declared tool's tier. perso: the last applying rule
    decides. strict v1: the first applying rule whose condition is T allows; otherwise the
    first applying rule is reported with a Deny. strict v2 (a policy with an effect other
    than allow): the 5-step precedence over the scanned rules.
    """
    ref = ReferenceEngine(policy, semantics)  # for validation and condition evaluation only
    sources = _sources(semantics, args, agent_attributes, resource_attributes, context)
    applying = []
    for index, rule in enumerate(policy.get("rules", [])):
        if "tool_name" in rule:
            name = rule["tool_name"]
            if "*" in name:
                tool_ok = tool in policy["tools"] and glob_matches(name, tool)
            else:
                tool_ok = name == tool
        else:  # a tier rule (strict only): the declared tool's tier is the rule's
            tool_ok = tool in policy["tools"] and ref.tier_of(tool) == rule["tier"]
        if tool_ok and role in rule.get("roles", []) and role in policy["roles"]:
            applying.append(index)
    if semantics == "strict" and (policy.get("tier_defaults")
                                  or any(rule.get("effect", "allow") != "allow"
                                         for rule in policy.get("rules", []))):
        decision = ref.decide_strict(tool, role, applying, sources)
        return decision[0], decision[2]
    if not applying:
        return policy.get("default_action", "Deny"), None
    if semantics == "perso":
        index = applying[-1]
        return ("Allow" if ref.condition_value(index, sources)[0] == T else "Deny"), index
    for index in applying:
        if ref.condition_value(index, sources)[0] == T:
            return "Allow", index
    return "Deny", applying[0]
