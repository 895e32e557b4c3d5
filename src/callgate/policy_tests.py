"""`callgate test`: run a file of expected decisions against a policy, like `opa test`.

A cases file is a JSON (or, with PyYAML installed, YAML) list of cases, or an object with
a "cases" list (and optionally "about" or "description" text). It is the one schema every
command that runs cases reads: `callgate test`, `callgate eval --cases`, `callgate demo
--script` and the bundled examples. A case:

    {"name": "agents refund up to 500",          optional
     "tool": "process_refund", "role": "agent",
     "args": {...}, "agent_attributes": {...}, "resource_attributes": {...}, "context": {...},
     "chain": {"user": "user:alice", "agents": ["worker:sql"], "scopes": ["pg.read.*"],
               "issuer": "auth", "claims": {...}},      optional: a verified principal chain
     "expect": "Allow"}                           or "Deny", "Elevate", or an object:
     "expect": {"decision": "Deny", "rule": 3, "approvals_required": 0,
                "reason": "exact text", "reason_contains": "part of it"}

`rule` is the deciding rule: its index from 0, as `Decision.rule`, or its id (a string) when
it has one (null: a default decided). `expected` is accepted for
`expect` (the bundled scenario files use it). Unknown keys are errors: a typo must not
silently turn a check off.

A case's `chain` stands for a chain that verified (no token, no keys): the policy's ceilings
narrow its scopes as they would a token's (docs/principals.md).

`run_cases` is the pure part: it returns the results; the CLI prints them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence, Union

import orjson

from .errors import CallgateError, PolicyError
from .language import rule_name
from .policy import RULE_ID_PATTERN, parse_json

if TYPE_CHECKING:
    from .policy import Rule

DECISIONS = ("Allow", "Deny", "Elevate")
CASE_KEYS = {"name", "tool", "role", "args", "agent_attributes", "resource_attributes", "context", "chain",
             "expect", "expected"}
CHAIN_KEYS = {"user", "agents", "scopes", "issuer", "claims"}
EXPECT_KEYS = {"decision", "rule", "approvals_required", "reason", "reason_contains"}
FILE_KEYS = {"cases", "about", "description"}   # an object file: the cases and words about them


class CasesError(CallgateError, ValueError):
    """A cases file that cannot be used; `location` names where (``cases[3].expect``)."""

    def __init__(self, message: str, location: str = "(file)") -> None:
        super().__init__(f"{location}: {message}")
        self.message = message
        self.location = location


@dataclass(frozen=True)
class Case:
    """One validated case: the call (tool, role, args, attributes, context) and what it
    expects; `index` is its place in the file, `name` its own or one made from the call."""

    index: int
    name: str
    tool: str
    role: str
    args: Any
    agent_attributes: Any
    resource_attributes: Any
    context: Any
    expect: dict[str, Any]  # decision, and any of rule, approvals_required, reason, reason_contains
    chain: Optional[dict[str, Any]] = None   # a verified chain: user, agents, scopes, issuer, claims


@dataclass
class CaseResult:
    """The outcome of one case: "pass", "fail" (with the failures, one line each) or "error"
    (the engine refused the request); `got` is what the engine decided."""

    case: Case
    status: str                        # "pass" | "fail" | "error"
    got: Optional[dict[str, Any]] = None   # decision, rule, approvals_required, reason
    failures: list[str] = field(default_factory=list)
    error: Optional[str] = None

    @property
    def passed(self) -> bool:
        """Whether the case passed."""
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (`callgate test --format json`)."""
        return {"index": self.case.index, "name": self.case.name, "tool": self.case.tool, "role": self.case.role,
                "status": self.status, "expect": self.case.expect, "got": self.got,
                "failures": self.failures, "error": self.error}


# ---------------------------------------------------------------- reading the file


def load_cases_file(path: Path) -> Any:
    """Decode a cases file (JSON; YAML for .yaml/.yml when PyYAML is installed)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CasesError(exc.strerror or str(exc), "(file)") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import importlib.util

        if importlib.util.find_spec("yaml") is None:
            raise CasesError("YAML cases files need PyYAML (pip install 'callgate[yaml]'); or write the cases "
                             "as JSON", "(file)") from None
        from .policy_files import parse_policy

        try:  # as strict as a YAML policy: duplicate keys are errors, `yes` stays a string
            return parse_policy(raw, format="yaml").data
        except PolicyError as exc:
            where = f"line {exc.line} column {exc.column}" if exc.line is not None else exc.location
            raise CasesError(exc.message, where) from None
    try:  # as strict as a policy file: a duplicate key must not silently replace an expectation
        return parse_json(raw)
    except PolicyError as exc:
        raise CasesError(f"not valid JSON: {exc.message}", exc.location) from None


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "a number",
            float: "a number", type(None): "null"}.get(type(value), type(value).__name__)


def parse_cases(data: Any) -> list[Case]:
    """Validate decoded cases; raise CasesError naming the first problem's location."""
    where = "(file)"
    if isinstance(data, dict):
        if "cases" not in data:
            raise CasesError("expected a list of cases, or an object with a \"cases\" list", "(file)")
        for key in data:
            if key not in FILE_KEYS:
                raise CasesError(f"unknown key '{key}'; expected " + ", ".join(sorted(FILE_KEYS)), "(file)")
        data, where = data["cases"], "cases"
    if not isinstance(data, list):
        raise CasesError(f"expected a list of cases, got {_type_name(data)}", where)
    return [_case(i, c, f"cases[{i}]") for i, c in enumerate(data)]


def _case(i: int, c: Any, where: str) -> Case:
    if not isinstance(c, dict):
        raise CasesError(f"expected an object, got {_type_name(c)}", where)
    for key in c:
        if key not in CASE_KEYS:
            raise CasesError(f"unknown key '{key}'; expected " + ", ".join(sorted(CASE_KEYS - {"expected"})), where)
    for key in ("tool", "role"):
        if key not in c:
            raise CasesError("required key is missing", f"{where}.{key}")
        if not isinstance(c[key], str):
            raise CasesError(f"expected a string, got {_type_name(c[key])}", f"{where}.{key}")
    if "name" in c and not isinstance(c["name"], str):
        raise CasesError(f"expected a string, got {_type_name(c['name'])}", f"{where}.name")
    if "expect" in c and "expected" in c:
        raise CasesError("give one of 'expect' and 'expected'", where)
    key = "expect" if "expect" in c else "expected"
    if key not in c:
        raise CasesError("required key is missing", f"{where}.expect")
    expect = _expect(c[key], f"{where}.{key}")
    name = c.get("name") or f"cases[{i}] {c['tool']} as {c['role']}"
    chain = _chain(c["chain"], f"{where}.chain") if "chain" in c else None
    return Case(i, name, c["tool"], c["role"], c.get("args"), c.get("agent_attributes"),
                c.get("resource_attributes"), c.get("context"), expect, chain)


def _chain(c: Any, where: str) -> dict[str, Any]:
    from .scopes import ScopeError, parse

    if not isinstance(c, dict):
        raise CasesError(f"expected an object, got {_type_name(c)}", where)
    for key in c:
        if key not in CHAIN_KEYS:
            raise CasesError(f"unknown key '{key}'; expected " + ", ".join(sorted(CHAIN_KEYS)), where)
    if not isinstance(c.get("user"), str) or not c["user"]:
        raise CasesError("required: the chain's user, a non-empty string", f"{where}.user")
    for key in ("agents", "scopes"):
        value = c.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise CasesError("expected a list of non-empty strings", f"{where}.{key}")
    for k, scope in enumerate(c.get("scopes", [])):
        try:
            parse(scope)
        except ScopeError as exc:
            raise CasesError(str(exc), f"{where}.scopes[{k}]") from None
    if "issuer" in c and not isinstance(c["issuer"], str):
        raise CasesError(f"expected a string, got {_type_name(c['issuer'])}", f"{where}.issuer")
    if "claims" in c and not isinstance(c["claims"], dict):
        raise CasesError(f"expected an object, got {_type_name(c['claims'])}", f"{where}.claims")
    return dict(c)


def _verified(chain: dict[str, Any]) -> Any:
    """The principals.Chain a case's `chain` stands for."""
    from .principals import Chain

    return Chain(chain.get("issuer", "cases"), (chain["user"], *chain.get("agents", [])),
                 frozenset(chain.get("scopes", [])), float("inf"), "cases", None, (), chain.get("claims", {}))


def _decision(value: Any, where: str) -> str:
    if value not in DECISIONS:
        shown = f"'{value}'" if isinstance(value, str) else _type_name(value)
        raise CasesError(f"unknown decision {shown}; expected Allow, Deny, Elevate", where)
    decision: str = value   # one of DECISIONS
    return decision


def _expect(e: Any, where: str) -> dict[str, Any]:
    if isinstance(e, str):
        return {"decision": _decision(e, where)}
    if not isinstance(e, dict):
        raise CasesError(f"expected a decision or an object, got {_type_name(e)}", where)
    for key in e:
        if key not in EXPECT_KEYS:
            raise CasesError(f"unknown key '{key}'; expected " + ", ".join(sorted(EXPECT_KEYS)), where)
    if "decision" not in e:
        raise CasesError("required key is missing", f"{where}.decision")
    out: dict[str, Any] = {"decision": _decision(e["decision"], f"{where}.decision")}
    if "rule" in e:
        r = e["rule"]
        is_index = isinstance(r, int) and not isinstance(r, bool) and r >= 0
        if r is not None and not is_index and not (isinstance(r, str) and RULE_ID_PATTERN.fullmatch(r)):
            raise CasesError("expected a rule index (from 0, as Decision.rule), a rule id or null", f"{where}.rule")
        out["rule"] = r
    if "approvals_required" in e:
        a = e["approvals_required"]
        if isinstance(a, bool) or not isinstance(a, int) or a not in (0, 1, 2, 3):
            raise CasesError("expected 0, 1, 2 or 3", f"{where}.approvals_required")
        out["approvals_required"] = a
    for key in ("reason", "reason_contains"):
        if key in e:
            if not isinstance(e[key], str):
                raise CasesError(f"expected a string, got {_type_name(e[key])}", f"{where}.{key}")
            out[key] = e[key]
    return out


# ---------------------------------------------------------------- running


def run_cases(engine: Any, cases: list[Case]) -> list[CaseResult]:
    """Decide every case with `engine` and compare with what it expects."""
    return [run_case(engine, c) for c in cases]


def run_case(engine: Any, case: Case) -> CaseResult:
    """Decide one case with `engine` and compare with what it expects (a refused request is
    an "error" result, not an exception)."""
    try:
        d = engine.evaluate(case.tool, case.args, role=case.role, agent_attributes=case.agent_attributes,
                            resource_attributes=case.resource_attributes, context=case.context,
                            chain=None if case.chain is None else _verified(case.chain))
        got = {"decision": d.decision, "rule": d.rule, "approvals_required": d.approvals_required,
               "reason": d.reason}
    except CallgateError as exc:
        return CaseResult(case, "error", error=str(exc), failures=[f"the request was refused: {exc}"])
    e = case.expect
    failures = []
    if got["decision"] != e["decision"]:
        failures.append(f"decision: expected {e['decision']}, got {got['decision']}")
    rules = engine.compiled.policy.rules
    if "rule" in e and got["rule"] != _rule_index(rules, e["rule"]):
        failures.append(f"rule: expected {_rule(rules, e['rule'])}, got {_rule(rules, got['rule'])}")
    if "approvals_required" in e and got["approvals_required"] != e["approvals_required"]:
        failures.append(f"approvals_required: expected {e['approvals_required']}, got {got['approvals_required']}")
    if "reason" in e and got["reason"] != e["reason"]:
        failures.append(f"reason: expected {orjson.dumps(e['reason']).decode()}")
    if "reason_contains" in e and e["reason_contains"] not in got["reason"]:
        failures.append(f"reason: does not contain {orjson.dumps(e['reason_contains']).decode()}")
    return CaseResult(case, "fail" if failures else "pass", got, failures)


def _rule_index(rules: Sequence[Rule], rule: Union[int, str, None]) -> Optional[int]:
    """An expected rule (an index, an id or None) as an index (-1: no rule has that id)."""
    if isinstance(rule, str):
        return next((i for i, r in enumerate(rules) if r.id == rule), -1)
    return rule


def _rule(rules: Sequence[Rule], rule: Union[int, str, None]) -> str:
    """`rules[3] (rule refund-cap)`, `rules[3] (rule 4)`, `none (a default)`."""
    index = _rule_index(rules, rule)
    if rule is None:
        return "none (a default)"
    # (index is None only when rule is, which returned above)
    if index == -1 or index >= len(rules):  # type: ignore[operator]
        return f"rule {rule} (the policy has no such rule)"
    return f"rules[{index}] ({rule_name(index, rules[index].id)})"  # type: ignore[arg-type, index]


def summary(results: list[CaseResult]) -> dict[str, int]:
    """Counts of the results: total, passed, failed, errors."""
    passed = sum(r.status == "pass" for r in results)
    failed = sum(r.status == "fail" for r in results)
    errors = sum(r.status == "error" for r in results)
    return {"total": len(results), "passed": passed, "failed": failed, "errors": errors}


def format_text(results: list[CaseResult]) -> list[str]:
    """The text report, one string per line (no markup)."""
    lines = []
    for r in results:
        if r.passed:
            lines.append(f"PASS  {r.case.name}")
            continue
        lines.append(f"{'FAIL' if r.status == 'fail' else 'ERROR'}  {r.case.name}")
        for f in r.failures:
            lines.append(f"      {f}")
        if r.got is not None:
            what = r.got["decision"]
            if what == "Elevate":
                what += f" ({r.got['approvals_required']} approval{'s' * (r.got['approvals_required'] != 1)})"
            lines.append(f"      got {what}: {r.got['reason']}")
    s = summary(results)
    tail = f", {s['errors']} error{'s' * (s['errors'] != 1)}" if s["errors"] else ""
    lines.append(f"{s['passed']}/{s['total']} passed, {s['failed']} failed{tail}")
    return lines
