"""`callgate explain`: why one call gets its decision, as a tree.

For one request this lists every rule collected for (tool, role) in precedence order (deny
rules, then allow rules, then elevate rules), evaluates each rule's condition node by node
and shows every node's value (T, F or U) and, for leaves, the value the request holds.

What the policy means (which rules a pair collects, their order and effects, tiers and
defaults, how values decide, how constants read) comes from `language.Meaning`, the same
model the compiler encodes. The conditions are evaluated here, by the product's one Python
evaluator of conditions (`Evaluator`), written from docs/semantics.md and docs/policy-v2.md
over the validated policy. The decision it reaches is compared with the engine's (the C
core): they must agree on the decision, the deciding rule and the approvals required;
`Explanation.agrees` is False when they do not, which is a bug in one of them. The reason
shown is always the engine's.

It works on the validated model's JSON form (`model_dump(by_alias=True)`), so it reads
every node, v1 and v2, the way a policy file spells it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field as dc_field
from datetime import datetime, timezone as dt_timezone
from decimal import Decimal
from typing import Any, Callable, Optional

import orjson

from .language import (
    OP_SYMBOL, F, Meaning, T, U, format_number, format_set, glob_match, path_glob_match, ref_display,
    rule_name, window_text,
)
from .policy import DAYS

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING", "__bool__": lambda self: False})()

STRING_OPS = {"Eq": "==", "Ne": "!=", "StartsWith": "starts with", "EndsWith": "ends with",
              "Contains": "contains", "Glob": "matches glob", "PathGlob": "matches path glob"}
VALUE_BYTES = 64
TIME_MIN, TIME_MAX = 0, 4102444800  # 1970-01-01T00:00:00Z <= t < 2100-01-01T00:00:00Z


def _get(d: Any, key: str, default: Any = None) -> Any:
    """d[key], treating None as absent (optional model fields dump as None)."""
    value = d.get(key) if isinstance(d, dict) else getattr(d, key, None)
    return default if value is None else value


# ---------------------------------------------------------------- display


def _json_text(value: Any) -> str:
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
        return "{" + ",".join(orjson.dumps(k).decode() + ":" + _json_text(v) for k, v in value.items()) + "}"
    return repr(value)


def display_value(value: Any) -> str:
    """A request value as reasons show it: its JSON text, cut at 64 bytes with `…`."""
    if value is MISSING:
        return "missing"
    raw = _json_text(value).encode("utf-8")
    if len(raw) <= VALUE_BYTES:
        return raw.decode("utf-8")
    cut = VALUE_BYTES
    while cut > 0 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return raw[:cut].decode("utf-8") + "…"


def _window(spec: dict[str, Any]) -> str:
    return window_text(_get(spec, "days") or DAYS, spec["start"], spec["end"], spec["timezone"])


# ---------------------------------------------------------------- values and equality


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _decimal(x: Any) -> Decimal:
    return Decimal(x) if isinstance(x, int) else Decimal(orjson.dumps(x).decode())


def strict_equal(a: Any, b: Any) -> bool:
    """JSON value equality as strict semantics has it (FieldEquals): numbers by exact value,
    bools and strings only with their own kind, arrays and objects element by element."""
    if _is_number(a) and _is_number(b):
        return _decimal(a) == _decimal(b)
    if isinstance(a, bool) and isinstance(b, bool):
        return a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if a is None and b is None:
        return True
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(strict_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(strict_equal(a[k], b[k]) for k in a)
    return False


def _serde(value: Any) -> tuple[Any, ...]:
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
        return ("array", [_serde(v) for v in value])
    if isinstance(value, dict):
        return ("object", {k: _serde(v) for k, v in value.items()})
    return ("other", repr(value))


def perso_equal(a: Any, b: Any) -> bool:
    """serde_json's Value equality (the original engine's FieldEquals)."""
    return _serde(a) == _serde(b)


_INDEX = re.compile(r"0|[1-9][0-9]*")


def resolve_pointer(root: Any, pointer: str) -> Any:
    """RFC 6901: objects by key, arrays by index; any step that does not exist -> MISSING."""
    if pointer == "":
        return root
    if not pointer.startswith("/"):
        return MISSING
    value = root
    for token in pointer[1:].split("/"):
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                return MISSING
            value = value[token]
        elif isinstance(value, list):
            if not _INDEX.fullmatch(token) or int(token) >= len(value):
                return MISSING
            value = value[int(token)]
        else:
            return MISSING
    return value


# ASCII digits only, as the C core reads them: [0-9], not \d, which (like int()) also takes
# the digits of other scripts ("２０２６" in fullwidth), which the engine refuses
_RFC3339 = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?"
                      r"(?:([Zz])|([+-])([0-9]{2}):([0-9]{2}))")


def parse_instant(x: Any) -> Optional[int]:
    """Unix seconds (fraction ignored) of a number or an RFC 3339 string; None if not a
    time or outside [1970-01-01, 2100-01-01)."""
    if _is_number(x):
        if not math.isfinite(float(x)) or x < TIME_MIN:
            return None
        t = math.floor(x)
    elif isinstance(x, str):
        m = _RFC3339.fullmatch(x)
        if not m:
            return None
        year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
        if hour > 23 or minute > 59 or second > 59:
            return None
        try:
            base = datetime(year, month, day, hour, minute, second, tzinfo=dt_timezone.utc)
        except ValueError:
            return None
        offset = 0
        if m.group(9):
            oh, om = int(m.group(10)), int(m.group(11))
            if oh > 23 or om > 59:
                return None
            offset = (oh * 60 + om) * 60 * (1 if m.group(9) == "+" else -1)
        t = int(base.timestamp()) - offset
    else:
        return None
    return t if TIME_MIN <= t < TIME_MAX else None


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


def in_window(t: int, spec: dict[str, Any]) -> bool:
    """Whether Unix time `t` falls in a TimeWindow's weekly window (`spec`: days, start, end,
    timezone), in the zone's local time; a window past midnight counts from its start day."""
    from zoneinfo import ZoneInfo

    local = datetime.fromtimestamp(t, ZoneInfo(spec["timezone"]))
    days = set(_get(spec, "days") or DAYS)
    day = DAYS[local.weekday()]
    prev = DAYS[(local.weekday() - 1) % 7]
    now = local.hour * 60 + local.minute
    start, end = _minutes(spec["start"]), _minutes(spec["end"])
    if start < end:
        return day in days and start <= now < end
    return (day in days and now >= start) or (prev in days and now < end)


# ---------------------------------------------------------------- the condition tree


@dataclass
class Seen:
    """One value a leaf read: its display name and what the request holds there."""

    name: str
    value: Any  # MISSING when absent

    def text(self) -> str:
        """The value as reasons show it ("missing" when absent)."""
        return display_value(self.value)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`explain --format json`): name, present, value (when present), text."""
        out: dict[str, Any] = {"name": self.name, "present": self.value is not MISSING}
        if self.value is not MISSING:
            out["value"] = self.value
        out["text"] = self.text()
        return out


@dataclass
class Node:
    """One evaluated condition node."""

    kind: str                      # NumericCheck ... All Any Not Every Some, or "element"
    label: str                     # what the node tests, in words
    location: str                  # rules[3].condition.All[1]
    value: str = U                 # T, F or U
    seen: list[Seen] = dc_field(default_factory=list)
    children: list["Node"] = dc_field(default_factory=list)
    skipped: bool = False          # not evaluated by the engine (short-circuit); shown for information
    blame: bool = False            # the leaf the rule's result is pinned on

    def to_dict(self) -> dict[str, Any]:
        """The JSON form of the node and its subtree (`explain --format json`)."""
        out: dict[str, Any] = {"kind": self.kind, "label": self.label, "location": self.location, "value": self.value}
        if self.seen:
            out["seen"] = [s.to_dict() for s in self.seen]
        if self.skipped:
            out["skipped"] = True
        if self.blame:
            out["blame"] = True
        if self.children:
            out["children"] = [c.to_dict() for c in self.children]
        return out


def _skip(node: Node) -> None:
    node.skipped = True
    for child in node.children:
        _skip(child)


class Evaluator:
    """Evaluates conditions (as dicts) against one request, building the tree."""

    def __init__(self, semantics: str, sources: dict[str, Any]) -> None:
        self.strict = semantics != "perso"
        self.sources = sources
        self.elements: list[Any] = []

    @property
    def undetermined(self) -> str:
        """What a leaf is when it cannot be decided (a missing or mistyped value): U under
        strict semantics, F under perso."""
        return U if self.strict else F

    # -- reading values

    def read(self, source: str, field: Optional[str], pointer: Optional[str]) -> Any:
        """The value a reference names in the request (or the current element), or MISSING."""
        if source == "Element":
            root = self.elements[-1] if self.elements else MISSING
            if pointer is not None:
                return resolve_pointer(root, pointer)
            if field is not None:
                return root[field] if isinstance(root, dict) and field in root else MISSING
            return root
        root = self.sources.get(source, {})
        if pointer is not None:
            return resolve_pointer(root, pointer) if isinstance(root, (dict, list)) else MISSING
        if isinstance(root, dict) and field in root:
            return root[field]
        return MISSING

    def ref(self, spec: dict[str, Any], suffix: str = "") -> tuple[str, Any]:
        """A leaf's reference (`source`, `field`, `pointer`, each with `suffix`): its display
        name and the value it reads."""
        source = spec[f"source{suffix}"]
        field = spec.get(f"field{suffix}")
        pointer = spec.get(f"pointer{suffix}")
        return ref_display(source, field, pointer if pointer != "" else None), self.read(source, field, pointer)

    # -- nodes

    def node(self, cond: dict[str, Any], where: str) -> tuple[Node, list[Node]]:
        """Evaluate one node; returns it and the leaves its result is blamed on: one, none
        for an empty All/Any, every branch of an Any of two or more that was not T."""
        ((kind, spec),) = cond.items()
        if kind == "All" or kind == "Any":
            return self._junction(kind, spec, where)
        if kind == "Not":
            child, blame = self.node(spec, f"{where}.Not")
            n = Node("Not", "Not", f"{where}.Not", {T: F, F: T, U: U}[child.value], children=[child])
            return n, blame
        if kind in ("Every", "Some"):
            n = self._quantifier(kind, spec, where)
            return n, [n]
        leaf = getattr(self, f"_leaf_{kind}", None)
        if leaf is None:
            raise ValueError(f"{where}: explain does not know the condition {kind!r}")
        n = leaf(spec, f"{where}.{kind}")
        return n, [n]

    def _junction(self, kind: str, children: list[dict[str, Any]], where: str) -> tuple[Node, list[Node]]:
        stop, other = (F, T) if kind == "All" else (T, F)
        n = Node(kind, kind, f"{where}.{kind}")
        results: list[tuple[Node, list[Node]]] = []
        done = False
        for k, child in enumerate(children):
            c, blame = self.node(child, f"{where}.{kind}[{k}]")
            n.children.append(c)
            if done:
                _skip(c)
                continue
            results.append((c, blame))
            if c.value == stop:
                done = True
        value, blame = other, (results[0][1] if results else [])
        for wanted in (stop, U):
            hit = next((b for c, b in results if c.value == wanted), None)
            if hit is not None:
                value, blame = wanted, hit
                break
        if kind == "Any" and value != T and len(results) >= 2:  # every branch failed
            blame = [leaf for _, leaves in results for leaf in leaves]
        n.value = value
        return n, blame

    def _quantifier(self, kind: str, spec: dict[str, Any], where: str) -> Node:
        name, array = self.ref(spec)
        loc = f"{where}.{kind}"
        n = Node(kind, f"{'every' if kind == 'Every' else 'some'} element of {name} satisfies", loc,
                 seen=[Seen(name, array)])
        if not isinstance(array, list):
            n.value = self.undetermined
            return n
        stop, other = (F, T) if kind == "Every" else (T, F)
        values = []
        done = False
        for i, element in enumerate(array):
            self.elements.append(element)
            try:
                c, _ = self.node(spec["condition"], f"{loc}.condition")
            finally:
                self.elements.pop()
            e = Node("element", f"element {i}", f"{loc}[{i}]", c.value, seen=[Seen("element", element)],
                     children=[c])
            n.children.append(e)
            if done:
                _skip(e)
                continue
            values.append(c.value)
            if c.value == stop:
                done = True
        n.value = stop if stop in values else U if U in values else other
        return n

    # -- leaves (each returns its node, value set)

    def _leaf_NumericCheck(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        op = spec["op"]
        if op == "Between":
            lo, hi = spec["value"]
            label = f"{name} between {format_number(lo)} and {format_number(hi)}"
        else:
            label = f"{name} {OP_SYMBOL[op]} {format_number(spec['value'])}"
        n = Node("NumericCheck", label, loc, seen=[Seen(name, x)])
        if not _is_number(x):
            n.value = self.undetermined
            return n
        a = float(x)
        if op == "Between":
            ok = float(lo) <= a <= float(hi)
        else:
            k = float(spec["value"])
            ok = {"Lt": a < k, "Lte": a <= k, "Gt": a > k, "Gte": a >= k, "Eq": a == k, "Ne": a != k}[op]
        n.value = T if ok else F
        return n

    def _leaf_StringCheck(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        op, value = spec["op"], spec["value"]
        if op in ("In", "NotIn"):
            label = f"{name} {'in' if op == 'In' else 'not in'} {format_set(list(value))}"
        else:
            label = f"{name} {STRING_OPS[op]} {orjson.dumps(value).decode()}"
        n = Node("StringCheck", label, loc, seen=[Seen(name, x)])
        if not isinstance(x, str):
            n.value = self.undetermined
            return n
        tests: dict[str, Callable[[], bool]] = {
            "In": lambda: x in value, "NotIn": lambda: x not in value,
            "Eq": lambda: x == value, "Ne": lambda: x != value,
            "StartsWith": lambda: x.startswith(value), "EndsWith": lambda: x.endswith(value),
            "Contains": lambda: value in x,
            "Glob": lambda: glob_match(value, x), "PathGlob": lambda: path_glob_match(value, x),
        }
        ok = tests[op]()
        n.value = T if ok else F
        return n

    def _leaf_FieldPresent(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        return Node("FieldPresent", f"{name} is present", loc, F if x is MISSING or x is None else T,
                    seen=[Seen(name, x)])

    def _leaf_FieldEquals(self, spec: dict[str, Any], loc: str) -> Node:
        name_a, a = self.ref(spec, "_a")
        name_b, b = self.ref(spec, "_b")
        n = Node("FieldEquals", f"{name_a} equals {name_b}", loc, seen=[Seen(name_a, a), Seen(name_b, b)])
        if self.strict:
            if a is MISSING or a is None or b is MISSING or b is None:
                n.value = U
            else:
                n.value = T if strict_equal(a, b) else F
        else:
            n.value = F if a is MISSING or b is MISSING else T if perso_equal(a, b) else F
        return n

    def _leaf_Length(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        op, k = spec["op"], spec["value"]
        n = Node("Length", f"length of {name} {OP_SYMBOL[op]} {format_number(k)}", loc, seen=[Seen(name, x)])
        if isinstance(x, (str, list)):
            length = len(x)
            n.value = T if {"Lt": length < k, "Lte": length <= k, "Gt": length > k, "Gte": length >= k,
                            "Eq": length == k, "Ne": length != k}[op] else F
        else:
            n.value = self.undetermined
        return n

    def _leaf_Type(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        want = spec.get("is") or spec.get("is_")
        n = Node("Type", f"{name} is of type {want}", loc, seen=[Seen(name, x)])
        if x is MISSING:
            n.value = F
            return n
        ok = {
            "string": isinstance(x, str),
            "number": _is_number(x),
            "integer": _is_number(x) and (isinstance(x, int) or float(x).is_integer()),
            "boolean": isinstance(x, bool),
            "null": x is None,
            "array": isinstance(x, list),
            "object": isinstance(x, dict),
        }[want]  # type: ignore[index]  # a Type node has "is" (None only if the model changed: a KeyError)
        n.value = T if ok else F
        return n

    def _leaf_BooleanCheck(self, spec: dict[str, Any], loc: str) -> Node:
        name, x = self.ref(spec)
        want = spec["value"]
        n = Node("BooleanCheck", f"{name} is {'true' if want else 'false'}", loc, seen=[Seen(name, x)])
        n.value = (T if x is want else F) if isinstance(x, bool) else self.undetermined
        return n

    def _leaf_ScopeCheck(self, spec: dict[str, Any], loc: str) -> Node:
        """Per required scope, some element of Principal.scopes covers it (a non-string
        element is unknown); "all" / "any" join them as All / Any do (docs/principals.md)."""
        from .scopes import covers

        requires, mode = spec["requires"], spec.get("mode", "all")
        name, granted = self.ref({"source": "Principal", "field": "scopes"})
        n = Node("ScopeCheck", f"{name} grants {mode} of {format_set(list(requires))}", loc,
                 seen=[Seen(name, granted)])
        if not isinstance(granted, list):
            n.value = self.undetermined
            return n
        per_scope = []
        for scope in requires:
            values = [U if not isinstance(g, str) else T if covers(g, scope) else F for g in granted]
            per_scope.append(T if T in values else U if U in values else F)
        stop, other = (F, T) if mode == "all" else (T, F)
        n.value = stop if stop in per_scope else U if U in per_scope else other
        return n

    def _leaf_UrlCheck(self, spec: dict[str, Any], loc: str) -> Node:
        """The URL as the core's parser reads it (callgate.arguments), then each listed check;
        the node shows what the parser found."""
        from .arguments import parse_url, url_check, url_found

        name, x = self.ref(spec)
        keys = ("schemes_in", "hosts_in", "host_suffixes_in", "ports_in")
        listed = [f"{k} {format_set(list(spec[k]))}" for k in keys if spec.get(k) is not None]
        if spec.get("userinfo") is False:
            listed.append("no userinfo")
        if spec.get("ip") is not None:
            listed.append(f"ip {spec['ip']}")
        n = Node("UrlCheck", f"{name} is a URL with " + (", ".join(listed) or "no further check"), loc,
                 seen=[Seen(name, x)])
        if not isinstance(x, str):
            n.value = self.undetermined
            return n
        value, _ = url_check(x, spec.get("schemes_in"), spec.get("hosts_in"), spec.get("host_suffixes_in"),
                             spec.get("ports_in"), spec.get("userinfo", True) is not False, spec.get("ip"))
        n.seen.append(Seen(f"{name} parsed", url_found(parse_url(x))))
        n.value = value
        return n

    def _leaf_PathCheck(self, spec: dict[str, Any], loc: str) -> Node:
        """The path as the core normalizes it (callgate.arguments), then each listed check;
        the node shows the normalized path."""
        from .arguments import normalize_path, path_check, path_found

        name, x = self.ref(spec)
        style = spec.get("style") or "posix"
        absolute = spec.get("absolute", True) is not False
        keys = ("within", "not_within", "extensions_in")
        listed = [f"{k} {format_set(list(spec[k]))}" for k in keys if spec.get(k) is not None]
        n = Node("PathCheck", f"{name} is a {style} path with " + (", ".join(listed) or "no further check"),
                 loc, seen=[Seen(name, x)])
        if not isinstance(x, str):
            n.value = self.undetermined
            return n
        value, _ = path_check(x, style, spec.get("within"), spec.get("not_within"), absolute,
                              spec.get("extensions_in"))
        n.seen.append(Seen(f"{name} normalized", path_found(normalize_path(x, style, not absolute))))
        n.value = value
        return n

    def _leaf_SqlCheck(self, spec: dict[str, Any], loc: str) -> Node:
        """The SQL as the core's scanner reads it (callgate.arguments), then each listed check;
        the node shows the statements' kinds."""
        from .arguments import sql_check

        name, x = self.ref(spec)
        keys = ("schemas_in", "tables_in", "functions_allowed")
        listed = [f"{k} {format_set(list(spec[k]))}" for k in keys if spec.get(k) is not None]
        if spec.get("read_only"):
            listed.insert(0, "read_only")
        if spec.get("max_statements") is not None:
            listed.append(f"at most {spec['max_statements']} statements")
        n = Node("SqlCheck", f"{name} is {spec['dialect']} SQL with " + (", ".join(listed) or "no further check"),
                 loc, seen=[Seen(name, x)])
        if not isinstance(x, str):
            n.value = self.undetermined
            return n
        value, found = sql_check(x, spec["dialect"], bool(spec.get("read_only")), spec.get("max_statements"),
                                 spec.get("schemas_in"), spec.get("tables_in"), spec.get("functions_allowed"))
        n.seen.append(Seen(f"{name} scanned", found))
        n.value = value
        return n

    def _leaf_TimeWindow(self, spec: dict[str, Any], loc: str) -> Node:
        spec = dict(spec)
        spec["source"] = _get(spec, "source", "Context")
        if spec.get("pointer") is None and spec.get("field") is None and spec["source"] != "Element":
            spec["field"] = "time"  # the model fills this in already; Element alone is the element
        name, x = self.ref(spec)
        n = Node("TimeWindow", f"{name} within {_window(spec)}", loc, seen=[Seen(name, x)])
        t = parse_instant(x) if x is not MISSING else None
        if t is None:
            n.value = self.undetermined
        else:
            n.value = T if in_window(t, spec) else F
        return n


# ---------------------------------------------------------------- one request, explained


@dataclass
class RuleResult:
    """One rule collected for the request's (tool, role): its effect, its condition's value
    and tree, and whether it applies and was reached."""

    index: int                     # 0-based, as Decision.rule
    effect: str                    # allow | deny | elevate
    approvals: int
    tool_name: Optional[str]
    tier: Optional[str]
    value: str                     # the condition's value; T when there is none
    applies: bool
    tree: Optional[Node]
    blame: list[Node] = dc_field(default_factory=list)   # the leaves a reason about this rule would explain
    reached: bool = True           # False: an earlier rule (in precedence order) decided first
    id: Optional[str] = None       # the rule's id, when it has one

    @property
    def name(self) -> str:
        """`rule ID` or `rule N`, as reasons name it."""
        return rule_name(self.index, self.id)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`explain --format json`); "rule" is 0-based, "number" 1-based."""
        return {"rule": self.index, "number": self.index + 1, "id": self.id, "effect": self.effect,
                "approvals": self.approvals,
                "tool_name": self.tool_name, "tier": self.tier, "value": self.value, "applies": self.applies,
                "reached": self.reached, "condition": None if self.tree is None else self.tree.to_dict()}


@dataclass
class Verdict:
    """A decision as explain compares them: decision, deciding rule (0-based, None for a
    default) and approvals required."""

    decision: str
    rule: Optional[int]
    approvals_required: int

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: decision, rule, approvals_required."""
        return {"decision": self.decision, "rule": self.rule, "approvals_required": self.approvals_required}

    def describe(self, rule_id: Optional[str] = None) -> str:
        """One phrase, e.g. "Elevate(2) by rule 4 (rules[3])" or "Deny by a default"; `rule_id`
        names the rule when it has an id."""
        what = f"Elevate({self.approvals_required})" if self.decision == "Elevate" else self.decision
        by = "a default" if self.rule is None else f"{rule_name(self.rule, rule_id)} (rules[{self.rule}])"
        return f"{what} by {by}"


@dataclass
class Explanation:
    """One request explained: the rules collected for it, explain's own verdict beside the
    engine's, and the engine's exact reason."""

    tool: str
    role: str
    semantics: str
    tier: Optional[str]
    rules: list[RuleResult]
    decided_by: str                # "rule" | "tier default" | "default_action"
    mine: Verdict                  # this module's evaluation
    engine: Verdict                # the engine's decision
    reason: str                    # the engine's reason, exact
    table_rules: list[int]         # the compiled table's entry for (tool, role)
    problems: list[str]            # where this evaluation and the engine disagree

    @property
    def agrees(self) -> bool:
        """Whether explain's evaluation and the engine agree (False is a bug in one of them)."""
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`explain --format json`)."""
        return {"tool": self.tool, "role": self.role, "semantics": self.semantics, "tier": self.tier,
                "decision": self.engine.decision, "rule": self.engine.rule,
                "approvals_required": self.engine.approvals_required, "reason": self.reason,
                "decided_by": self.decided_by, "rules": [r.to_dict() for r in self.rules],
                "agrees": self.agrees, "engine": self.engine.to_dict(), "explain": self.mine.to_dict(),
                "problems": self.problems}


def _sources(args: Any, agent: Any, resource: Any, context: Any, principal: Any = None) -> dict[str, Any]:
    return {
        "Arguments": {} if args is None else args,
        "AgentAttributes": {} if agent is None else agent,
        "ResourceAttributes": {} if resource is None else resource,
        "Context": {} if context is None else context,
        "Principal": {} if principal is None else principal,
    }


def explain_request(compiled: Any, engine: Any, tool: str, role: str, args: Any = None,
                    agent_attributes: Any = None, resource_attributes: Any = None,
                    context: Any = None, chain: Any = None) -> Explanation:
    """Explain one request against a compiled policy; `engine` decides it for comparison.
    `chain`: the caller's principal chain, as engine.evaluate takes it. Raises what
    engine.evaluate raises (RequestError) for a request it refuses, and ChainError for a
    chain that does not verify."""
    principal = None if chain is None else engine.principal_source(chain)
    d = engine.evaluate(tool, args, role=role, agent_attributes=agent_attributes,
                        resource_attributes=resource_attributes, context=context, chain=chain)
    engine_verdict = Verdict(d.decision, d.rule, d.approvals_required)
    reason = d.reason

    meaning: Meaning = compiled.meaning
    semantics = meaning.semantics
    defs = compiled.policy.model_dump(by_alias=True)["rules"]
    collected = meaning.rules_for(tool, role)
    ev = Evaluator(semantics, _sources(args, agent_attributes, resource_attributes, context, principal))
    results = []
    values: dict[int, str] = {}
    for i in collected:
        effect, approvals = meaning.rule_effect(i)
        cond = defs[i].get("condition")
        tree: Optional[Node]
        blame: list[Node]
        tree, blame, value = None, [], T
        if cond is not None:
            tree, blame = ev.node(cond, f"rules[{i}].condition")
            value = tree.value
        values[i] = value
        applies = value == T or (effect == "Deny" and value == U)
        results.append(RuleResult(i, effect.lower(), approvals, defs[i].get("tool_name"), defs[i].get("tier"),
                                  value, applies, tree, blame, id=defs[i].get("id")))

    outcome = meaning.decide(tool, values)
    mine = Verdict(outcome.decision, outcome.rule, outcome.approvals)
    # the rules after the first that applies (in precedence order) are never reached; the
    # blame is marked where the reason uses it: the deciding rule of a denial
    first = next((k for k, r in enumerate(results) if r.applies), None)
    for k, r in enumerate(results):
        r.reached = first is None or k <= first
        if r.index == mine.rule and mine.decision == "Deny" and semantics != "perso":
            for leaf in r.blame:
                leaf.blame = True
    problems = []
    if (mine.decision, mine.rule, mine.approvals_required) != (
            engine_verdict.decision, engine_verdict.rule, engine_verdict.approvals_required):
        def id_of(rule: Optional[int]) -> Optional[str]:
            return None if rule is None else meaning.policy.rules[rule].id

        problems.append(f"the engine says {engine_verdict.describe(id_of(engine_verdict.rule))}; "
                        f"explain's evaluation says {mine.describe(id_of(mine.rule))}")
    return Explanation(tool, role, semantics, meaning.tier_of(tool), results, outcome.decided_by, mine,
                       engine_verdict, reason, list(collected), problems)


# ---------------------------------------------------------------- text rendering

# the renderer is the command line's own (the base install has no rich); imported here, with
# what uses it, so that the evaluator above stands on its own
from .textout import Node as TreeNode, Text, tree  # noqa: E402

ELEMENTS_SHOWN = 20
_COLOUR = {T: "green", F: "red", U: "yellow"}


def _value_text(value: str, dim: bool = False) -> Text:
    return Text(value, "dim" if dim else f"bold {_COLOUR.get(value, 'white')}")


def _seen_text(seen: list[Seen]) -> str:
    parts = []
    for s in seen:
        if s.value is MISSING:
            parts.append(f"{s.name} is missing")
        else:
            parts.append(f"{s.name} = {s.text()}")
    return "; ".join(parts)


def _node_label(n: Node) -> Text:
    label = _value_text(n.value, n.skipped)
    label.append("  ")
    label.append(n.label, "dim" if n.skipped else "")
    if n.seen and n.kind != "element":
        label.append(f"   ({_seen_text(n.seen)})", "dim" if n.skipped else "cyan")
    elif n.kind == "element":
        label.append(f"   (= {n.seen[0].text()})", "dim" if n.skipped else "cyan")
    if n.skipped:
        label.append("   not evaluated (short-circuit)", "dim italic")
    if n.blame and not n.skipped:
        label.append("   ◀ blamed", "bold magenta")
    return label


def _add_tree(parent: TreeNode, n: Node) -> None:
    branch = parent.add(_node_label(n))
    children = n.children
    if n.kind in ("Every", "Some") and len(children) > ELEMENTS_SHOWN:
        for c in children[:ELEMENTS_SHOWN]:
            _add_tree(branch, c)
        branch.add(Text(f"… and {len(children) - ELEMENTS_SHOWN} more elements", "dim"))
        return
    for c in children:
        _add_tree(branch, c)


def _rule_label(r: RuleResult, deciding: bool) -> Text:
    effect = f"elevate({r.approvals})" if r.effect == "elevate" else r.effect
    colour = {"deny": "red", "allow": "green"}.get(r.effect, "yellow")
    label = Text(r.name, "bold")
    label.append(f" (rules[{r.index}]) ")
    label.append(effect, f"bold {colour}")
    label.append(f"  {'tier ' + repr(r.tier) if r.tier else r.tool_name}: ")
    if r.tree is None:
        label.append("no condition")
    else:
        label.append("condition ")
        label.extend(_value_text(r.value))
    label.append(" -> applies" if r.applies else " -> does not apply")
    if deciding:
        label.append("   ◀ decides", "bold magenta")
    if not r.reached:
        label.restyle("dim")
        label.append("   not reached (an earlier rule decided)", "dim italic")
    return label


def render(ex: Explanation) -> list[Text]:
    """The explanation as lines (callgate.textout): the rules as a tree of T/F/U values, then
    the decision and the engine's reason; coloured only where they are written to a terminal."""
    head = Text(f"{ex.tool}", "bold")
    head.append(f" as role '{ex.role}' ({ex.semantics} semantics")
    head.append(f", tier '{ex.tier}')" if ex.tier else ")")
    head.append(": rules in precedence order (deny, allow, elevate)" if ex.semantics != "perso"
                else ": the rule kept for this pair")
    root = TreeNode(head)
    if not ex.rules:
        root.add(Text("no rule covers this tool for this role", "dim"))
    for r in ex.rules:
        branch = root.add(_rule_label(r, ex.engine.rule == r.index))
        if r.tree is not None:
            _add_tree(branch, r.tree)
    decision = Text("decision: ")
    colour = {"Allow": "green", "Deny": "red", "Elevate": "yellow"}.get(ex.engine.decision, "white")
    what = (f"Elevate ({ex.engine.approvals_required} approval{'s' * (ex.engine.approvals_required != 1)})"
            if ex.engine.decision == "Elevate" else ex.engine.decision)
    decision.append(what, f"bold {colour}")
    by_rule = next((r for r in ex.rules if r.index == ex.engine.rule), None)
    if ex.engine.rule is not None and ex.engine.decision == "Deny" and by_rule is not None and by_rule.effect != "deny":
        decision.append(f": no rule granted it; {by_rule.name} (rules[{ex.engine.rule}]) is the one explained")
    elif ex.engine.rule is not None:
        name = by_rule.name if by_rule is not None else rule_name(ex.engine.rule)
        decision.append(f" by {name} (rules[{ex.engine.rule}])")
    else:
        decision.append(f" by the default of tier '{ex.tier}'" if ex.decided_by == "tier default"
                        else " by default_action")
    lines = tree(root)
    lines.append(decision)
    lines.append(Text("reason: ").append(ex.reason))
    for p in ex.problems:
        lines.append(Text(f"DISAGREEMENT: {p}", "bold red"))
    return lines
