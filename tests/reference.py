"""An independent, deliberately plain reference evaluator for callgate policies.

Written straight from docs/semantics.md (the contract), not from the engine's code, so that
the differential tests can hold the C core to the document. It favours being obviously
right over being fast: policies are expanded into a dict of lists, conditions are evaluated
by a recursive tree walk that returns ``(value, blame)`` at every node, and reason strings
are built with f-strings next to the table rows they come from.

Two semantics, as in the doc:

- ``"strict"`` (the default semantics): three-valued leaves (T, F, U), Kleene All/Any/Not,
  every rule of a (tool, role) pair kept, the first match allows, reasons explain the
  blamed leaf of the first rule.
- ``"perso"``: two-valued, last rule per pair wins, short fixed reasons.

This module must not import callgate.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Any, Optional

import orjson

__all__ = [
    "ReferenceEngine",
    "ReferencePolicyError",
    "ReferenceRequestError",
    "T",
    "F",
    "U",
    "glob_matches",
    "display_value",
    "display_number",
    "display_set",
    "scan_decide",
]

# Truth values. Plain strings so that failures print readably.
T, F, U = "T", "F", "U"

SOURCES = ("Arguments", "AgentAttributes", "ResourceAttributes")
OP_SYMBOL = {"Lt": "<", "Lte": "<=", "Gt": ">", "Gte": ">=", "Eq": "=="}

# Set display lists at most this many values before "… and N more".
SET_SHOWN = 5
# Value display keeps at most this many UTF-8 bytes before "…".
VALUE_BYTES = 64

_MISSING = object()  # sentinel: "the key is not in the source object"


class ReferencePolicyError(ValueError):
    """The strict semantics rejects the policy (undeclared role or non-glob tool)."""


class ReferenceRequestError(ValueError):
    """The request cannot be decided (wrong input type, a value JSON cannot carry)."""


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


# --------------------------------------------------------------------------------------
# Policy expansion.
# --------------------------------------------------------------------------------------


def glob_matches(pattern: str, name: str) -> bool:
    """``*`` matches any run of characters (possibly empty); every other character,
    ``?`` included, is literal. The whole name must match."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.fullmatch(regex, name, flags=re.DOTALL) is not None


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


def expand(policy: dict, semantics: str) -> dict:
    """Map each (tool, role) pair to the rule indices it collects, in policy order.

    perso keeps only the last rule naming a pair; strict keeps all of them. A rule names a
    pair at most once even if its role list (or the tool list) repeats a name: a pair
    "collects the rule", and a rule is one rule.
    """
    tools = list(policy.get("tools", []))
    roles = list(policy.get("roles", []))
    table: dict[tuple[str, str], list[int]] = {}
    for index, rule in enumerate(policy.get("rules", [])):
        where = f"rules[{index}]"
        # Roles are checked before the tool name (either is a rejection in strict).
        rule_roles = _expand_roles(rule.get("roles", []), roles, semantics, where)
        rule_tools = _expand_tools(rule["tool_name"], tools, semantics, where)
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


def _lookup(sources: dict, source: str, field: str) -> Any:
    """Top-level key ``field`` of the source object, or ``_MISSING``. ``"a.b"`` is a key."""
    obj = sources[source]
    if isinstance(obj, dict) and field in obj:
        return obj[field]
    return _MISSING  # missing key, or perso arguments that are not an object


def _is_number(value: Any) -> bool:
    """A JSON number: Python int or float, but never bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
# Conditions: a tree walk returning (value, blame).
# --------------------------------------------------------------------------------------


class Blame:
    """The leaf a node's result is pinned on, with what it saw.

    ``result`` is the leaf's own result, ``negated`` whether an odd number of ``Not`` sit
    above it, ``seen`` the looked-up value(s) (``_MISSING`` for an absent key).
    """

    def __init__(self, kind: str, spec: dict, result: str, negated: bool, seen: tuple):
        self.kind = kind
        self.spec = spec
        self.result = result
        self.negated = negated
        self.seen = seen


def _kleene_not(value: str) -> str:
    return {T: F, F: T, U: U}[value]


class _Walker:
    """Evaluates one condition tree against one request's three source objects."""

    def __init__(self, semantics: str, sources: dict):
        self.strict = semantics == "strict"
        self.sources = sources

    def undetermined(self) -> str:
        """Where strict gives U, perso gives F."""
        return U if self.strict else F

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

    def walk_any(self, children: list, negated: bool) -> tuple[str, Optional[Blame]]:
        """Kleene OR, left to right, stopping at the first T. ``Any []`` is F."""
        results = []
        for child in children:
            results.append(self.walk(child, negated))
            if results[-1][0] == T:
                break
        return self._combine(results, stop=T, other=F)

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
        x = _lookup(self.sources, spec["source"], spec["field"])
        if not _is_number(x):  # missing, null, bool, string, array, object
            return self.undetermined(), (x,)
        a, k = _as_double(x), float(spec["value"])
        ok = {"Lt": a < k, "Lte": a <= k, "Gt": a > k, "Gte": a >= k, "Eq": a == k}[spec["op"]]
        return (T if ok else F), (x,)

    def leaf_StringCheck(self, spec: dict) -> tuple[str, tuple]:
        x = _lookup(self.sources, spec["source"], spec["field"])
        if not isinstance(x, str):
            return self.undetermined(), (x,)
        member = x in spec["value"]  # exact code points
        ok = member if spec["op"] == "In" else not member
        return (T if ok else F), (x,)

    def leaf_FieldPresent(self, spec: dict) -> tuple[str, tuple]:
        x = _lookup(self.sources, spec["source"], spec["field"])
        return (F if x is _MISSING or x is None else T), (x,)

    def leaf_FieldEquals(self, spec: dict) -> tuple[str, tuple]:
        a = _lookup(self.sources, spec["source_a"], spec["field_a"])
        b = _lookup(self.sources, spec["source_b"], spec["field_b"])
        if self.strict:
            if a is _MISSING or a is None or b is _MISSING or b is None:
                return U, (a, b)
            return (T if strict_equal(a, b) else F), (a, b)
        if a is _MISSING or b is _MISSING:  # perso: null is a value, missing is F
            return F, (a, b)
        return (T if serde_equal(a, b) else F), (a, b)


# --------------------------------------------------------------------------------------
# Explanations (strict deny reasons).
# --------------------------------------------------------------------------------------


def _absent(name: str, x: Any) -> Optional[str]:
    """``S is missing`` / ``S is null``, or None when the value is there."""
    if x is _MISSING:
        return f"{name} is missing"
    if x is None:
        return f"{name} is null"
    return None


def explain(blame: Optional[Blame]) -> str:
    """The explanation text for a blame leaf, following the doc's reason table.

    Columns: first the U (or missing/null) column, then r = F, then r = T (negated).
    """
    if blame is None:
        return "condition not satisfied"
    spec, r = blame.spec, blame.result
    if blame.kind == "FieldEquals":
        sa = f"{spec['source_a']}.{spec['field_a']}"
        sb = f"{spec['source_b']}.{spec['field_b']}"
        a, b = blame.seen
        gone = _absent(sa, a) or _absent(sb, b)  # A checked first
        if gone and r != T:
            return gone
        if r == T:
            return f"{sa} = {display_value(a)} equals {sb} (negated by Not)"
        return f"{sa} = {display_value(a)} does not equal {sb} = {display_value(b)}"

    s = f"{spec['source']}.{spec['field']}"
    (x,) = blame.seen
    gone = _absent(s, x)
    if blame.kind == "FieldPresent":
        return gone if r == F else f"{s} is present (negated by Not)"
    if gone:
        return gone
    v = display_value(x)
    if blame.kind == "NumericCheck":
        if r == U or not _is_number(x):
            return f"{s} = {v} is not a number"
        op, k = OP_SYMBOL[spec["op"]], display_number(spec["value"])
        return f"{s} = {v} is {op} {k} (negated by Not)" if r == T else f"{s} = {v} is not {op} {k}"
    # StringCheck
    if r == U or not isinstance(x, str):
        return f"{s} = {v} is not a string"
    in_text = f"{s} = {v} is in {display_set(spec['value'])}"
    out_text = f"{s} = {v} is not in {display_set(spec['value'])}"
    # F for In means "not in"; F for NotIn means "in"; T (negated) says the opposite.
    failing, passing = (out_text, in_text) if spec["op"] == "In" else (in_text, out_text)
    return passing + " (negated by Not)" if r == T else failing


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
    """Attributes: missing or null means {}, any other non-object is a request error."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ReferenceRequestError(f"{what} must be a JSON object")
    return value


def _sources(semantics, args, agent_attributes, resource_attributes) -> dict:
    """The three source objects of a request, validated as the doc requires."""
    for value, what in ((args, "arguments"), (agent_attributes, "agent_attributes"),
                        (resource_attributes, "resource_attributes")):
        _check_json(value, what)
    if args is None:
        args = {}
    if semantics == "strict" and not isinstance(args, dict):
        raise ReferenceRequestError("arguments must be a JSON object")
    return {
        "Arguments": args,  # perso: a non-object simply has no fields (see _lookup)
        "AgentAttributes": _object_input(agent_attributes, "agent_attributes"),
        "ResourceAttributes": _object_input(resource_attributes, "resource_attributes"),
    }


class ReferenceEngine:
    """The reference evaluator for one policy under one semantics."""

    def __init__(self, policy: dict, semantics: str = "strict"):
        """Expand ``policy``; raise ReferencePolicyError where strict rejects it."""
        if semantics not in ("strict", "perso"):
            raise ValueError(f"unknown semantics {semantics!r}")
        self.policy = policy
        self.semantics = semantics
        self.rules = list(policy.get("rules", []))
        self.default_action = policy.get("default_action", "Deny")
        self.table = expand(policy, semantics)

    def condition_value(self, index: int, sources: dict) -> tuple[str, Optional[Blame]]:
        """Evaluate rule ``index``'s condition; a rule without one is T with no blame."""
        cond = self.rules[index].get("condition")
        if cond is None:
            return T, None
        return _Walker(self.semantics, sources).walk(cond)

    def evaluate(self, tool: str, args: Any, role: str, agent_attributes: Any = None,
                 resource_attributes: Any = None) -> tuple[str, str, Optional[int]]:
        """Decide a request: ``(decision, exact reason, rule index or None)``."""
        sources = _sources(self.semantics, args, agent_attributes, resource_attributes)
        collected = self.table.get((tool, role), [])
        if self.semantics == "perso":
            return self._perso(tool, role, collected, sources)
        return self._strict(tool, role, collected, sources)

    def _perso(self, tool, role, collected, sources):
        """perso: the single kept rule decides; no rule -> default_action."""
        if not collected:
            return (self.default_action,
                    f"no rule matched tool '{tool}' for role '{role}'; applying default_action",
                    None)
        (index,) = collected
        head = f"rule matched tool '{tool}' for role '{role}'"
        if self.rules[index].get("condition") is None:
            return "Allow", f"{head}; no condition required", index
        value, _ = self.condition_value(index, sources)
        if value == T:
            return "Allow", f"{head}; condition passed", index
        return "Deny", f"{head}; condition failed", index  # even if default_action is Allow

    def _strict(self, tool, role, collected, sources):
        """strict: the first matching rule allows; otherwise deny, explaining the first."""
        if not collected:
            verb = "allowed" if self.default_action == "Allow" else "denied"
            return (self.default_action,
                    f"{tool} {verb} for role '{role}': no rule covers this tool for this role "
                    f"(default_action {self.default_action})",
                    None)
        first_blame = None
        for position, index in enumerate(collected):
            if self.rules[index].get("condition") is None:
                return "Allow", f"{tool} allowed for role '{role}': rule {index + 1} has no condition", index
            value, blame = self.condition_value(index, sources)
            if value == T:
                return "Allow", f"{tool} allowed for role '{role}': rule {index + 1} condition passed", index
            if position == 0:
                first_blame = blame
        first = collected[0]
        others = len(collected) - 1
        tail = f"rule {first + 1}"
        if others == 1:
            tail += "; 1 other rule did not match"
        elif others > 1:
            tail += f"; {others} other rules did not match"
        return "Deny", f"{tool} denied for role '{role}': {explain(first_blame)} ({tail})", first


# --------------------------------------------------------------------------------------
# A brute-force scan, independent of the (tool, role) table, for index-vs-scan tests.
# --------------------------------------------------------------------------------------


def scan_decide(policy: dict, semantics: str, tool: str, role: str, args: Any = None,
                agent_attributes: Any = None, resource_attributes: Any = None
                ) -> tuple[str, Optional[int]]:
    """``(decision, rule)`` by looking at every rule for every request: no expansion table.

    A rule applies when the request's role is one of its roles and declared, and its tool
    name matches the request's tool (a glob only matches declared tools; a plain name must
    equal it). perso: the last applying rule decides. strict: the first applying rule whose
    condition is T allows; otherwise the first applying rule is reported with a Deny.
    """
    ref = ReferenceEngine(policy, semantics)  # for validation and condition evaluation only
    sources = _sources(semantics, args, agent_attributes, resource_attributes)
    applying = []
    for index, rule in enumerate(policy.get("rules", [])):
        name = rule["tool_name"]
        if "*" in name:
            tool_ok = tool in policy["tools"] and glob_matches(name, tool)
        else:
            tool_ok = name == tool
        if tool_ok and role in rule.get("roles", []) and role in policy["roles"]:
            applying.append(index)
    if not applying:
        return policy.get("default_action", "Deny"), None
    if semantics == "perso":
        index = applying[-1]
        return ("Allow" if ref.condition_value(index, sources)[0] == T else "Deny"), index
    for index in applying:
        if ref.condition_value(index, sources)[0] == T:
            return "Allow", index
    return "Deny", applying[0]
