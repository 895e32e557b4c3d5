"""`callgate check`: the policy's problems and risky corners, each with its location.

Errors make the policy unloadable. Warnings are places where a policy silently means less
(or more) than it seems to: the perso format's fail-open corners, and rules that can never
apply (a tier or glob with no tools, numeric bounds no value meets, a grant every pair of
which an unconditional deny or allow decides first). Notes are perso-compatibility remarks:
v2 constructs in a file whose version says "perso-", with what the original engine would do
with them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

from .errors import PolicyError
from .language import OP_SYMBOL, Meaning, format_number, glob_match, ref_display
from .policy import strip_unknown, validate

LEVEL_ORDER = {"error": 0, "warning": 1, "note": 2}


@dataclass(frozen=True)
class Finding:
    level: str        # "error" | "warning" | "note"
    location: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.location}: {self.message}"


def lint(data: Any, semantics: str = "strict") -> list[Finding]:
    """Validate `data` and list the findings (errors first, then warnings, then notes)."""
    compat = list(_perso_compat(data, semantics))
    try:
        model = validate(strip_unknown(data), "perso") if semantics == "perso" else validate(data)
    except PolicyError as exc:
        return [Finding("error", exc.location, exc.message)] + sorted(compat, key=lambda f: LEVEL_ORDER[f.level])
    policy = model.model_dump(by_alias=True)
    meaning = Meaning(model, semantics, strict=False)  # what the policy means, undeclared names skipped
    findings = list(_roles_and_tools(policy, meaning))
    if not any(f.level == "error" for f in findings):
        findings += _compile_errors(data, semantics)
    findings += _shadowed(policy, meaning)
    if semantics != "perso":
        findings += _never_granted(policy, meaning)
    for i, rule in enumerate(policy["rules"]):
        if rule.get("condition") is not None:
            findings += _conditions(rule["condition"], f"rules[{i}].condition")
    findings += compat
    return sorted(findings, key=lambda f: LEVEL_ORDER.get(f.level, 3))


def _compile_errors(data: Any, semantics: str) -> list[Finding]:
    """What only the compiler sees (an exact tool_tiers key that is not a tool, nesting)."""
    from .compiler import compile_policy

    try:
        compile_policy(data, semantics)
    except PolicyError as exc:
        return [Finding("error", exc.location, exc.message)]
    except ValueError:
        return []
    return []


def _roles_and_tools(policy: dict, meaning: Meaning) -> Iterator[Finding]:
    semantics = meaning.semantics
    roles = set(policy["roles"])
    tools = set(policy["tools"])
    tiers = meaning.tiers
    for i, rule in enumerate(policy["rules"]):
        for j, role in enumerate(rule["roles"]):
            if role not in roles:
                if semantics == "strict":
                    yield Finding("error", f"rules[{i}].roles[{j}]", f"role '{role}' is not declared in roles")
                else:
                    yield Finding("warning", f"rules[{i}].roles[{j}]",
                                  f"role '{role}' is not declared in roles; perso drops it silently")
        name = rule.get("tool_name")
        if name is None:
            tier = rule.get("tier")
            if not any(t == tier for t in tiers.values()):
                yield Finding("warning", f"rules[{i}].tier",
                              f"tier '{tier}' has no tools (no tool_tiers entry gives a declared tool that "
                              "tier); the rule covers nothing")
        elif "*" in name:
            if not any(glob_match(name, t) for t in policy["tools"]):
                yield Finding("warning", f"rules[{i}].tool_name",
                              f"glob '{name}' matches no declared tool; the rule grants nothing")
        elif name not in tools:
            if semantics == "strict":
                yield Finding("error", f"rules[{i}].tool_name", f"tool '{name}' is not declared in tools")
            else:
                yield Finding("warning", f"rules[{i}].tool_name",
                              f"tool '{name}' is not declared in tools; perso uses it as is")


def _shadowed(policy: dict, meaning: Meaning) -> list[Finding]:
    """perso keeps only the last rule per (tool, role): earlier ones are silently dropped."""
    if meaning.semantics != "perso":
        return []
    last: dict[tuple[str, str], int] = {}
    for i in range(len(policy["rules"])):
        for pair in meaning.pairs(i):
            last[pair] = i
    out = []
    for i in range(len(policy["rules"])):
        lost = sorted(p for p in meaning.pairs(i) if last[p] != i)
        if lost:
            (tool, role), later = lost[0], last[lost[0]]
            more = f" and {len(lost) - 1} more pairs" if len(lost) > 1 else ""
            out.append(Finding("warning", f"rules[{i}]",
                               f"ignored for ({tool}, {role}){more}: rules[{later}] names the same pair later "
                               "and perso keeps only the last"))
    return out


def _effect(rule: dict) -> str:
    return rule.get("effect") or "allow"


def _never_granted(policy: dict, meaning: Meaning) -> list[Finding]:
    """A grant rule none of whose (tool, role) pairs it can ever decide: an allow rule every
    pair of which an unconditional deny covers (deny comes first), an elevate rule every
    pair of which an unconditional deny or allow covers (both come before elevate)."""
    rules = policy["rules"]
    pairs = [meaning.pairs(i) for i in range(len(rules))]
    unconditional = {"deny": {}, "allow": {}}  # pair -> the first rule that decides it unconditionally
    for i, rule in enumerate(rules):
        if rule.get("condition") is None and _effect(rule) in unconditional:
            for pair in pairs[i]:
                unconditional[_effect(rule)].setdefault(pair, i)
    out = []
    for i, rule in enumerate(rules):
        effect = _effect(rule)
        if effect == "deny" or not pairs[i]:
            continue
        blockers = ["deny"] if effect == "allow" else ["deny", "allow"]
        by: dict[int, str] = {}
        for pair in sorted(pairs[i]):
            hit = next(((unconditional[b][pair], b) for b in blockers if pair in unconditional[b]), None)
            if hit is None:
                break
            by.setdefault(hit[0], hit[1])
        else:
            names = ", ".join(f"rules[{j}] ({kind})" for j, kind in sorted(by.items()))
            what = "denied" if set(by.values()) == {"deny"} else "decided"
            out.append(Finding("warning", f"rules[{i}]",
                               f"this {effect} rule never applies: every (tool, role) pair it covers is {what} "
                               f"first by an unconditional rule: {names}"))
    return out


# ---------------------------------------------------------------- conditions


def _kind(node: dict) -> tuple[str, Any]:
    ((kind, body),) = node.items()
    return kind, body


def _ref(body: dict, suffix: str = "") -> str:
    return ref_display(body[f"source{suffix}"], body.get(f"field{suffix}"), body.get(f"pointer{suffix}"))


def _conditions(node: dict, where: str) -> list[Finding]:
    out: list[Finding] = []
    kind, body = _kind(node)
    at = f"{where}.{kind}"
    if kind == "FieldPresent":
        out.append(Finding("warning", at, f"FieldPresent on {_ref(body)} passes for false, 0 and \"\" as well"))
    elif kind == "Not":
        inner, _ = _kind(body)
        if inner in ("NumericCheck", "StringCheck", "FieldEquals"):
            out.append(Finding("warning", at,
                               "Not over a field that may be missing: in perso semantics a missing field "
                               "makes the inner check fail, so Not passes"))
        out += _conditions(body, at)
    elif kind in ("All", "Any"):
        if not body:
            out.append(Finding("warning", at, f"empty {kind} is always {'true' if kind == 'All' else 'false'}"))
        if kind == "All":
            out += _contradictions(body, at)
        for k, child in enumerate(body):
            out += _conditions(child, f"{at}[{k}]")
    elif kind in ("Every", "Some"):
        out += _conditions(body["condition"], f"{at}.condition")
    return out


def _flatten_all(children: list) -> Iterator[dict]:
    """The conjuncts of an All: its children, with nested Alls opened."""
    for child in children:
        kind, body = _kind(child)
        if kind == "All":
            yield from _flatten_all(body)
        else:
            yield child


class _Bounds:
    """The values a number may take under a conjunction of comparisons."""

    def __init__(self) -> None:
        self.lo: Optional[tuple[float, bool]] = None   # (bound, inclusive)
        self.hi: Optional[tuple[float, bool]] = None
        self.ne: set[float] = set()
        self.said: list[str] = []

    def add(self, op: str, value: Any) -> None:
        if op == "Between":
            lo, hi = (float(v) for v in value)
            self._lo(lo, True)
            self._hi(hi, True)
            self.said.append(f"between {format_number(lo)} and {format_number(hi)}")
            return
        k = float(value)
        self.said.append(f"{OP_SYMBOL[op]} {format_number(k)}")
        if op in ("Gt", "Gte", "Eq"):
            self._lo(k, op != "Gt")
        if op in ("Lt", "Lte", "Eq"):
            self._hi(k, op != "Lt")
        if op == "Ne":
            self.ne.add(k)

    def _lo(self, k: float, inclusive: bool) -> None:
        if self.lo is None or k > self.lo[0] or (k == self.lo[0] and not inclusive):
            self.lo = (k, inclusive)

    def _hi(self, k: float, inclusive: bool) -> None:
        if self.hi is None or k < self.hi[0] or (k == self.hi[0] and not inclusive):
            self.hi = (k, inclusive)

    def empty(self) -> bool:
        if self.lo is None or self.hi is None:
            return False
        (lo, lo_in), (hi, hi_in) = self.lo, self.hi
        if lo > hi:
            return True
        if lo == hi:
            return not (lo_in and hi_in) or lo in self.ne
        return False


def _contradictions(children: list, at: str) -> list[Finding]:
    """Numeric comparisons on one value (or one length) that no value satisfies together."""
    bounds: dict[str, _Bounds] = {}
    for child in _flatten_all(children):
        kind, body = _kind(child)
        if kind == "NumericCheck":
            name = _ref(body)
        elif kind == "Length":
            name = f"length of {_ref(body)}"
        else:
            continue
        bounds.setdefault(name, _Bounds()).add(body["op"], body["value"])
    out = []
    for name, b in bounds.items():
        if b.empty():
            out.append(Finding("warning", at, f"{name} {' and '.join(b.said)} can never all hold: "
                                              "this All is never true"))
    return out


# ---------------------------------------------------------------- perso compatibility

_V2_KINDS = ("Length", "Type", "TimeWindow", "Every", "Some")
_PERSO_OPS = {"NumericCheck": ("Lt", "Lte", "Gt", "Gte", "Eq"), "StringCheck": ("In", "NotIn")}
_PERSO_SOURCES = ("Arguments", "AgentAttributes", "ResourceAttributes")
_REJECTS = "the original engine rejects the policy"


def _perso_compat(data: Any, semantics: str) -> Iterator[Finding]:
    """v2 constructs in a file that says it is in the perso format, and what the original
    engine does with each: keys it ignores change decisions silently (a deny or elevate
    rule becomes an allow); kinds, ops and sources it does not know make it refuse the file."""
    if not isinstance(data, dict) or not str(data.get("version", "")).startswith("perso-"):
        return
    # under --semantics perso callgate itself drops the ignored keys: then it is a warning
    silent = "warning" if semantics == "perso" else "note"
    head = "perso compatibility: "
    default = data.get("default_action")
    if "tool_tiers" in data:
        yield Finding(silent, "tool_tiers", head + "the original engine ignores \"tool_tiers\": tools have no "
                                                   "tier there, and tier rules cover nothing")
    if "tier_defaults" in data:
        yield Finding(silent, "tier_defaults", head + "the original engine ignores \"tier_defaults\": a tool no "
                                                      f"rule covers gets default_action {default} there")
    rules = data.get("rules")
    if not isinstance(rules, list):
        return
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict):
            continue
        when = " when its condition holds" if rule.get("condition") is not None else " unconditionally"
        effect = rule.get("effect")
        if effect == "deny":
            yield Finding(silent, f"rules[{i}].effect", head + "the original engine ignores \"effect\": this deny "
                                                               f"rule would ALLOW there{when}")
        elif effect == "elevate":
            yield Finding(silent, f"rules[{i}].effect", head + "the original engine ignores \"effect\" and "
                                                               "\"approvals\": this elevate rule would ALLOW there, "
                                                               f"without approvals,{when}")
        elif "effect" in rule:
            yield Finding("note", f"rules[{i}].effect", head + "the original engine ignores \"effect\" (an allow "
                                                               "rule means the same there)")
        if "approvals" in rule and effect != "elevate":
            yield Finding("note", f"rules[{i}].approvals", head + "the original engine ignores \"approvals\"")
        if "tier" in rule:
            yield Finding("note", f"rules[{i}].tier",
                          head + "\"tier\" is v2 and the original engine requires tool_name: it rejects the policy")
        if rule.get("condition") is not None:
            yield from _compat_condition(rule["condition"], f"rules[{i}].condition", head)


def _compat_condition(node: Any, where: str, head: str) -> Iterator[Finding]:
    if not isinstance(node, dict) or len(node) != 1:
        return
    ((kind, body),) = node.items()
    at = f"{where}.{kind}"
    if kind in _V2_KINDS:
        yield Finding("note", at, head + f"condition {kind} is v2: {_REJECTS} (unknown variant)")
        return
    if kind in ("All", "Any") and isinstance(body, list):
        for k, child in enumerate(body):
            yield from _compat_condition(child, f"{at}[{k}]", head)
        return
    if kind == "Not":
        yield from _compat_condition(body, at, head)
        return
    if not isinstance(body, dict):
        return
    op = body.get("op")
    if kind in _PERSO_OPS and op is not None and op not in _PERSO_OPS[kind]:
        yield Finding("note", f"{at}.op", head + f"op '{op}' is v2: {_REJECTS} (unknown variant)")
    for suffix in (("_a", "_b") if kind == "FieldEquals" else ("",)):
        source = body.get("source" + suffix)
        if isinstance(source, str) and source not in _PERSO_SOURCES:
            yield Finding("note", f"{at}.source{suffix}",
                          head + f"source '{source}' is v2: {_REJECTS} (unknown variant)")
        if "pointer" + suffix in body:
            yield Finding("note", f"{at}.pointer{suffix}",
                          head + f"\"pointer{suffix}\" is v2: the original engine ignores it and, lacking "
                                 f"\"field{suffix}\", rejects the policy")
