"""`callgate check`: every problem of a policy and its risky corners, each with its
location, in the order of the file.

Errors make the policy unloadable: every error validation reports (not only the first),
then what needs the validated policy (undeclared roles and tools, tool_tiers keys that are
not tools) and, when nothing else is wrong, what only the compiler sees. Warnings are places
where a policy silently means less (or more) than it seems to:

- declarations: no roles, no tools, a tool or role declared twice, ``default_action Allow``;
- the perso format's fail-open corners;
- rules that can never apply (a tier or glob with no tools, numeric bounds no value meets,
  a grant every pair of which an unconditional deny or allow decides first);
- a deny rule over a glob or a tier whose condition cannot be evaluated when a value the
  calls may not carry is absent, so that it denies them (`_unevaluable_denies` says exactly
  when).

Notes are perso-compatibility remarks: v2 constructs in a file whose version says "perso-",
with what the original engine would do with them.

Order: findings are sorted by the place of their location in the document (the order of the
file: ``tools`` before ``rules`` when the file has them so, ``rules[2]`` before
``rules[10]``; a missing key sorts with the object that lacks it); findings at one place keep
the order they were found in (validation errors first).

When the policy does not validate, the checks that read the validated policy still run if
every error is inside rules: each such rule is replaced by one that covers nothing, and
findings about it are left out (its errors say what is wrong). An error anywhere else
(tools, roles, tool_tiers...) leaves only the checks that read the document as it is: the
declarations and perso compatibility.

`lint` takes the decoded policy, or a `policy_files.PolicySource` (from `read_policy`): then
each finding also carries its file, line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Optional

from .errors import PolicyError
from .language import F, OP_SYMBOL, T, U, Meaning, format_number, glob_match, ref_display
from .policy import ELEMENT, document_order, strip_unknown, validation_errors
from .policy_files import PolicySource

LEVEL_ORDER = {"error": 0, "warning": 1, "note": 2}
_RULE_RE = re.compile(r"rules\[([0-9]+)\]")
_INERT_RULE = {"tool_name": "*", "roles": []}   # covers no (tool, role) pair: stands in for a broken rule


@dataclass(frozen=True)
class Finding:
    """One finding of `callgate check`: its level, location (a path in the policy) and
    message, and where it is in the text when lint() was given a PolicySource."""

    level: str        # "error" | "warning" | "note"
    location: str     # the path in the policy, as PolicyError.location
    message: str
    file: Optional[str] = None     # where in the text, when lint() was given a PolicySource
    line: Optional[int] = None
    column: Optional[int] = None

    def __str__(self) -> str:
        return f"{self.level}: {self.location}: {self.message}"

    @property
    def place(self) -> Optional[str]:
        """``FILE:LINE:COLUMN`` (``line L column C`` for text that is not a file), or None
        when the finding has no position: what a command prints before ``str(finding)``."""
        if self.line is None:
            return None
        if self.file is None:
            return f"line {self.line} column {self.column}"
        return f"{self.file}:{self.line}:{self.column}"


def lint(data: Any, semantics: str = "strict") -> list[Finding]:
    """Every finding for a policy (decoded, or a PolicySource), in the order of the file."""
    source = data if isinstance(data, PolicySource) else None
    if source is not None:
        data = source.data
    validated = strip_unknown(data) if semantics == "perso" else data
    model, problems = validation_errors(validated, semantics)
    model, broken, problems = _analysable(validated, semantics, model, problems)
    found = [(Finding("error", p.location, p.message), p.at_key) for p in problems]
    found += [(f, False) for f in _declarations(data, semantics)]
    if model is not None:
        found += [(f, at_key) for f, at_key in _model_checks(data, model, semantics, not problems)
                  if not _under(f.location, broken)]
    found += [(f, False) for f in _perso_compat(data, semantics)]
    found.sort(key=lambda pair: document_order(data, pair[0].location))
    if source is None:
        return [f for f, _ in found]
    out = []
    for f, at_key in found:
        where = source.position(f.location, at_key)
        out.append(f if where is None else Finding(f.level, f.location, f.message, source.file, *where))
    return out


def _analysable(data: Any, semantics: str, model: Any,
                problems: list[PolicyError]) -> tuple[Any, set[int], list[PolicyError]]:
    """(the policy the model checks read, the rules they skip, every error so far)."""
    if not problems:
        return model, set(), problems
    broken: set[int] = set()
    for problem in problems:
        m = _RULE_RE.match(problem.location)
        if m is None:
            return None, set(), problems
        broken.add(int(m.group(1)))
    if model is not None:   # only checks of a node's place failed: the policy is whole
        return model, broken, problems
    if not isinstance(data, dict) or not isinstance(data.get("rules"), list):  # pragma: no cover
        return None, set(), problems
    patched = dict(data, rules=[_INERT_RULE if i in broken else r for i, r in enumerate(data["rules"])])
    model, more = validation_errors(patched, semantics)
    # the models let the other rules through: what they still have is where their nodes sit
    for problem in more:
        m = _RULE_RE.match(problem.location)
        if m is None:  # pragma: no cover (the stand-ins are valid and only rules changed)
            return None, set(), problems
        broken.add(int(m.group(1)))
    return model, broken, problems + more


def _under(location: str, broken: set[int]) -> bool:
    m = _RULE_RE.match(location)
    return m is not None and int(m.group(1)) in broken


def _model_checks(data: Any, model: Any, semantics: str, clean: bool) -> Iterator[tuple[Finding, bool]]:
    """The checks that read the validated policy; (finding, whether it is about a key)."""
    policy = model.model_dump(by_alias=True)
    meaning = Meaning(model, semantics, strict=False)  # what the policy means, undeclared names skipped
    keyed = list(_tier_keys(policy)) if semantics != "perso" else []   # about a key: placed at the key
    findings = list(_roles_and_tools(policy, meaning))
    if clean and not keyed and not any(f.level == "error" for f in findings):
        findings += _compile_errors(data, semantics)
    findings += _shadowed(policy, meaning)
    if semantics != "perso":
        findings += _never_granted(policy, meaning)
    for i, rule in enumerate(policy["rules"]):
        if rule.get("condition") is not None:
            findings += _conditions(rule["condition"], f"rules[{i}].condition")
    if semantics != "perso":
        findings += _unevaluable_denies(policy)
    yield from ((f, True) for f in keyed)
    yield from ((f, False) for f in findings)


def _compile_errors(data: Any, semantics: str) -> list[Finding]:
    """What only the compiler sees (conditions nested deeper than the core's stack, strings
    that are not valid Unicode): the first such error."""
    from .compiler import compile_policy

    try:
        compile_policy(data, semantics)
    except PolicyError as exc:
        return [Finding("error", exc.location, exc.message)]
    except ValueError:
        return []
    return []


def _tier_keys(policy: dict[str, Any]) -> Iterator[Finding]:
    """An exact tool_tiers key must be a declared tool (the compiler stops at the first)."""
    tools = set(policy["tools"])
    for key in policy.get("tool_tiers") or {}:
        if "*" not in key and key not in tools:
            yield Finding("error", f"tool_tiers.{key}", f"tool '{key}' is not declared in tools")


def _defaults(data: dict[str, Any], semantics: str) -> str:
    """What decides the calls no rule decides, as a message says it."""
    action = data.get("default_action")
    text = f"default_action {action}" if action in ("Allow", "Deny") else "the default action"
    if semantics != "perso" and isinstance(data.get("tier_defaults"), dict) and data["tier_defaults"]:
        return f"its tier's default, else {text}"
    return text


def _declarations(data: Any, semantics: str) -> Iterator[Finding]:
    """What the declarations say, read from the document as it is (so also when something
    else in it is invalid): no roles, no tools, a name declared twice, default_action Allow."""
    if not isinstance(data, dict):
        return
    defaults = _defaults(data, semantics)
    if data.get("roles") == []:
        yield Finding("warning", "roles",
                      "no roles are declared: a rule's roles count only when declared, so no rule applies to any "
                      f"call and every call gets {defaults}")
    if data.get("tools") == []:
        if semantics == "perso":
            yield Finding("warning", "tools",
                          "no tools are declared: a glob matches none, so only rules naming a tool exactly (perso "
                          f"takes undeclared names as written) apply; every other call gets {defaults}")
        else:
            yield Finding("warning", "tools",
                          "no tools are declared: a rule can name none (an exact name must be declared, a glob or "
                          f"tier matches none), so every call gets {defaults}; only tools found at run time (an MCP "
                          "proxy's) can be covered, by globs and tiers")
    for key, what in (("tools", "tool"), ("roles", "role")):
        names = data.get(key)
        if not isinstance(names, list):
            continue
        first: dict[str, int] = {}
        for j, name in enumerate(names):
            if not isinstance(name, str):
                continue
            if name in first:
                yield Finding("warning", f"{key}[{j}]",
                              f"{what} '{name}' is declared twice: {key}[{first[name]}] and {key}[{j}]")
            else:
                first[name] = j
    if data.get("default_action") == "Allow":
        tiers = ", unless its tier has a default" if _defaults(data, semantics).startswith("its tier's") else ""
        yield Finding("warning", "default_action",
                      "default_action Allow: a call no rule grants or denies is allowed: any tool the rules do not "
                      "cover (a new or misspelled tool name included), for every role, declared or not"
                      f"{tiers}; prefer Deny, and rules that allow what is meant")


def _roles_and_tools(policy: dict[str, Any], meaning: Meaning) -> Iterator[Finding]:
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


def _shadowed(policy: dict[str, Any], meaning: Meaning) -> list[Finding]:
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


def _effect(rule: dict[str, Any]) -> str:
    effect: str = rule.get("effect") or "allow"
    return effect


def _never_granted(policy: dict[str, Any], meaning: Meaning) -> list[Finding]:
    """A grant rule none of whose (tool, role) pairs it can ever decide: an allow rule every
    pair of which an unconditional deny covers (deny comes first), an elevate rule every
    pair of which an unconditional deny or allow covers (both come before elevate)."""
    rules = policy["rules"]
    pairs = [meaning.pairs(i) for i in range(len(rules))]
    unconditional: dict[str, dict[tuple[str, str], int]] = {"deny": {}, "allow": {}}  # pair -> the first rule that decides it unconditionally
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


def _kind(node: dict[str, Any]) -> tuple[str, Any]:
    ((kind, body),) = node.items()
    return kind, body


def _ref(body: dict[str, Any], suffix: str = "") -> str:
    return ref_display(body[f"source{suffix}"], body.get(f"field{suffix}"), body.get(f"pointer{suffix}"))


def _conditions(node: dict[str, Any], where: str) -> list[Finding]:
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


def _flatten_all(children: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
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


def _contradictions(children: list[dict[str, Any]], at: str) -> list[Finding]:
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


# ---------------------------------------------------------------- denies that cannot be evaluated

# Kleene logic over the values a condition can take (docs/semantics.md)
_NOT = {T: F, F: T, U: U}


def _and(a: str, b: str) -> str:
    return F if F in (a, b) else U if U in (a, b) else T


def _or(a: str, b: str) -> str:
    return T if T in (a, b) else U if U in (a, b) else F


def _combine(acc: frozenset[str], child: frozenset[str], op: Callable[[str, str], str]) -> frozenset[str]:
    return frozenset(op(a, b) for a in acc for b in child)


def _leaf_refs(kind: str, body: dict[str, Any]) -> list[str]:
    """The values a node reads from the call itself (not the Element of a quantifier), by
    display name; for Every/Some, the array."""
    suffixes = ("_a", "_b") if kind == "FieldEquals" else ("",)
    return [_ref(body, s) for s in suffixes if body[f"source{s}"] != ELEMENT]


def _values_when_absent(node: dict[str, Any], ref: str, absent: str) -> frozenset[str]:
    """The values (T, F, U) `node` can take when the call's value `ref` is `absent`
    ("missing" or "null"), every other check being T or F as the other values make it."""
    kind, body = _kind(node)
    if kind in ("All", "Any"):
        op, acc = (_and, frozenset((T,))) if kind == "All" else (_or, frozenset((F,)))
        for child in body:
            acc = _combine(acc, _values_when_absent(child, ref, absent), op)
        return acc
    if kind == "Not":
        return frozenset(_NOT[v] for v in _values_when_absent(body, ref, absent))
    reads = ref in _leaf_refs(kind, body)
    if kind in ("Every", "Some"):
        if reads:
            return frozenset((U,))        # no array to go over
        inner = _values_when_absent(body["condition"], ref, absent)
        op, acc = (_and, frozenset((T,))) if kind == "Every" else (_or, frozenset((F,)))   # [] gives T / F
        while True:   # any number of elements, each taking any of the body's values
            more = acc | _combine(acc, inner, op)
            if more == acc:
                return acc
            acc = more
    if not reads:
        return frozenset((T, F))
    if kind == "FieldPresent":
        return frozenset((F,))
    if kind == "Type":   # missing is F; null is of type "null" and of no other
        return frozenset((T if absent == "null" and body["is"] == "null" else F,))
    return frozenset((U,))


def _call_reads(node: dict[str, Any], where: str) -> dict[str, str]:
    """Each value of the call a condition reads -> the location of the first node reading it."""
    out: dict[str, str] = {}
    kind, body = _kind(node)
    at = f"{where}.{kind}"
    if kind in ("All", "Any"):
        for k, child in enumerate(body):
            for ref, loc in _call_reads(child, f"{at}[{k}]").items():
                out.setdefault(ref, loc)
        return out
    if kind == "Not":
        return _call_reads(body, at)
    for ref in _leaf_refs(kind, body):
        out.setdefault(ref, at)
    if kind in ("Every", "Some"):
        for ref, loc in _call_reads(body["condition"], f"{at}.condition").items():
            out.setdefault(ref, loc)
    return out


def _unevaluable_denies(policy: dict[str, Any]) -> list[Finding]:
    """A deny rule over a glob (``"*"``, ``"delete_*"``) or a tier covers calls to tools whose
    arguments differ, from hosts that may give no attributes or context: a value its
    condition reads may be absent from a call. A deny whose condition is U applies (a deny
    that cannot be evaluated denies), so such a rule may deny every call that lacks the value.

    Precisely, for each value of the call the condition reads (a field or pointer of
    Arguments, AgentAttributes, ResourceAttributes or Context; Element values are the
    array's, not the call's), the condition is evaluated with that value missing, and again
    with it null, every other check being T or F (taken independently):

    - U when the value is missing or null: NumericCheck, StringCheck (every op, NotIn and Ne
      included), FieldEquals (either side), Length, BooleanCheck, TimeWindow, and Every/Some
      over it;
    - never U: FieldPresent (F) and Type (F; on null, T for ``"is": "null"``);
    - All, Any, Not combine by Kleene logic; Every/Some whose body reads the value take
      any number of elements (none gives T for Every, F for Some).

    If U is a possible result, the rule is flagged at the first node reading the value:
    "cannot be evaluated" when U is the only result, "can be left undetermined" when the
    other checks may decide. Guarding the check with FieldPresent in an All (F when the
    value is absent) silences it, as it should: the rule then denies only calls that carry
    the value. A deny on one exact tool is not flagged (a tool's calls carry its own
    arguments), nor any rule in perso semantics (which has no deny and no U)."""
    out = []
    for i, rule in enumerate(policy["rules"]):
        name = rule.get("tool_name")
        if _effect(rule) != "deny" or rule.get("condition") is None or (name is not None and "*" not in name):
            continue
        target = f"tier '{rule['tier']}'" if name is None else f"'{name}'"
        cond = rule["condition"]
        for ref, at in _call_reads(cond, f"rules[{i}].condition").items():
            results = {absent: _values_when_absent(cond, ref, absent) for absent in ("missing", "null")}
            when = [absent for absent, values in results.items() if U in values]
            if not when:
                continue
            always = all(results[absent] == {U} for absent in when)
            how = " or ".join(when)
            effect = ("this condition cannot be evaluated, and a deny that cannot be evaluated denies: the rule "
                      f"denies every call it covers whose {ref} is {how}" if always else
                      "this condition can be left undetermined (as its other checks fall), and a deny that cannot "
                      f"be evaluated denies: the rule can deny calls it covers whose {ref} is {how}")
            out.append(Finding("warning", at,
                               f"deny rule on {target} reads {ref}, which a call may not carry: when it is {how}, "
                               f"{effect}; to deny only calls that carry it, check FieldPresent on {ref} first, "
                               "in an All"))
    return out


# ---------------------------------------------------------------- perso compatibility

_V2_KINDS = ("Length", "Type", "BooleanCheck", "TimeWindow", "Every", "Some", "UrlCheck", "PathCheck", "SqlCheck")
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
