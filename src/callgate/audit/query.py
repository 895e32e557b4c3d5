"""Reading events: filters (query), the last records (tail) and counts (stats).

Only events are read: the trail's own bookkeeping (writer markers, genesis records:
markers.NOT_DECISIONS) is left out. With writer keys (`trusted`), so are the records of
every chain that is not vouched for by one (audit.genesis): counted in `excluded`, never
dropped silently. Reading is not verifying: run `callgate audit verify` for that."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any, Dict, Iterator, Optional, Set

import orjson

from .genesis import unvouched
from .markers import NOT_DECISIONS
from .source import Source

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def since_to_timestamp(since: str) -> str:
    """'1h', '30m', '2d' ago, or an RFC 3339 timestamp, as comparable timestamp text."""
    m = re.fullmatch(r"(\d+)([smhdw])", since.strip())
    if m is None:
        if re.match(r"\d{4}-\d\d-\d\dT", since):
            return since
        raise ValueError(f"--since: expected e.g. 30m, 1h, 2d or an RFC 3339 time, not {since!r}")
    t = time.time() - int(m.group(1)) * _UNITS[m.group(2)]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}Z"


def vouched_chains(source: Source, trusted: Set[bytes]) -> Dict[str, bool]:
    """{chain: whether its seq-0 record (the first stored) is a genesis record signed by a
    trusted key} for every chain that has a seq-0 record."""
    found: Dict[str, bool] = {}
    where = " AND seq = 0" if source.kind != "jsonl" else ""
    for entry in source.entries(None, where, ()):
        record = _record(entry)
        if record is not None and record.get("seq") == 0 and isinstance(record.get("chain"), str):
            found.setdefault(record["chain"], unvouched(record, trusted) is None)
    return found


def _record(entry: Any) -> Optional[Dict[str, Any]]:
    if not entry.is_record:
        return None
    try:
        record = orjson.loads(entry.body)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


def names_principal(record: Dict[str, Any], principal: str) -> bool:
    """Whether a record is about `principal`: its principal is that name, or the verified
    principal chain it records has that name as one of its links (docs/principals.md)."""
    if record.get("principal") == principal:
        return True
    chain = record.get("principal_chain")
    label = chain.get("label") if isinstance(chain, dict) else None
    return isinstance(label, str) and principal in label.split("+")


def events(source: Source, principal: Optional[str] = None, tool: Optional[str] = None,
           decision: Optional[str] = None, since: Optional[str] = None, after: Any = None,
           trusted: Optional[Set[bytes]] = None,
           excluded: Optional[Counter[str]] = None) -> Iterator[tuple[Any, Dict[str, Any], str]]:
    """(position, record dict, hash hex) of the events that match every filter given. With
    `trusted` (raw Ed25519 public keys), only events of chains vouched for by one of them;
    `excluded` then counts, per chain, the matching events left out."""
    ts = since_to_timestamp(since) if since else None
    where, params = "", []
    if source.kind != "jsonl":  # the databases filter through their indexes
        # (not the principal: it may name one link of a chain, matched below)
        for column, value in (("tool", tool), ("decision", decision), ("ts", ts)):
            if value is not None:
                where += f" AND {column} {'>=' if column == 'ts' else '='} ?"
                params.append(value)
        where += " AND kind NOT IN (" + ", ".join(f"'{k}'" for k in NOT_DECISIONS) + ")"
    vouched = vouched_chains(source, trusted) if trusted is not None else None
    for entry in source.entries(after, where, tuple(params)):
        record = _record(entry)
        if record is None or record.get("kind") in NOT_DECISIONS:
            continue
        if principal is not None and not names_principal(record, principal):
            continue
        if tool is not None and record.get("tool") != tool:
            continue
        if decision is not None and record.get("decision") != decision:
            continue
        if ts is not None and str(record.get("timestamp", "")) < ts:
            continue
        # (a record without a chain is looked up as None: not vouched for)
        if vouched is not None and not vouched.get(record.get("chain"), False):  # type: ignore[arg-type]
            if excluded is not None:
                excluded[str(record.get("chain"))] += 1
            continue
        yield entry.pos, record, entry.hash.hex()


def _key(value: Any) -> Any:
    """A field's value as a counting key: as it is when hashable, else its JSON text (a log
    that was not verified may hold anything anywhere)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS).decode()


def decision_label(record: Dict[str, Any]) -> str:
    """"Allow", "Deny", or "Elevate(n)" with the approvals the Elevate needs."""
    decision = record.get("decision") or "?"
    if decision == "Elevate":
        return f"Elevate({record.get('approvals_required') or '?'})"
    return str(decision)


def stats(source: Source, since: Optional[str] = None, bucket: str = "hour",
          trusted: Optional[Set[bytes]] = None) -> Dict[str, Any]:
    """Decisions per tool, role, rule and decision (an Elevate row also has its
    approvals_required), and per time bucket (hour or day); what followed Elevates per
    approval method and outcome. With `trusted`: only chains vouched for by those writer
    keys ("excluded": the events of other chains left out, per chain)."""
    cut = 13 if bucket == "hour" else 10  # 'YYYY-MM-DDTHH' or 'YYYY-MM-DD'
    by_key: Counter[tuple[Any, Any, Any, Any, Any]] = Counter()   # (tool, role, rule, decision, required)
    by_time: Counter[tuple[str, Any, Any]] = Counter()   # (bucket, decision, required)
    kinds: Counter[str] = Counter()
    approvals: Counter[tuple[Any, Any]] = Counter()   # (method, outcome)
    excluded: Counter[str] = Counter()
    # what was not enforced: calls of the proxy's --mode shadow that enforcement would not have
    # allowed, and calls that shadow rules (or a shadow candidate) would have decided otherwise
    unenforced: Counter[tuple[Any, Any, Any]] = Counter()   # (tool, rule, decision)
    total = 0
    for _, record, _ in events(source, since=since, trusted=trusted, excluded=excluded):
        total += 1
        kind = record.get("kind")
        kinds[kind if isinstance(kind, str) else str(_key(kind))] += 1  # (keys of the JSON output)
        if record.get("kind") == "gap":
            lost = record.get("lost")
            kinds["lost"] += lost if type(lost) is int else 0
            continue
        if record.get("kind") == "approval":  # the call's decision is counted by its own event
            a = record.get("approval") if isinstance(record.get("approval"), dict) else {}
            # (a dict: isinstance above, on a second get(), which does not narrow `a`)
            approvals[(_key(a.get("method")), _key(a.get("outcome")))] += 1  # type: ignore[union-attr]
            continue
        decision = _key(record.get("decision"))
        required = _key(record.get("approvals_required") or 0) if decision == "Elevate" else 0
        by_key[(_key(record.get("tool")), _key(record.get("role")), _key(record.get("rule")), decision, required)] += 1
        extras = record.get("extras")
        if isinstance(extras, dict) and extras.get("mode") == "shadow" and decision != "Allow":
            unenforced[(_key(record.get("tool")), _key(record.get("rule")), decision)] += 1
        shadow = record.get("shadow")   # a shadow rule (or candidate policy) would have decided otherwise
        if isinstance(shadow, dict):
            unenforced[(_key(record.get("tool")), _key(shadow.get("rule")), _key(shadow.get("decision")))] += 1
        by_time[(str(record.get("timestamp", ""))[:cut], decision, required)] += 1
        if isinstance(record.get("approval"), dict):  # an Allow that signed approvals gave
            a = record["approval"]
            approvals[(_key(a.get("method")), _key(a.get("outcome")))] += 1

    def row(base: Dict[str, Any], required: int, n: int) -> Dict[str, Any]:
        if base["decision"] == "Elevate":
            base["approvals_required"] = required
        base["count"] = n
        return base

    return {"records": total, "kinds": dict(kinds), "excluded": dict(excluded),
            "by_tool_role_rule": [row({"tool": k[0], "role": k[1], "rule": k[2], "decision": k[3]}, k[4], n)
                                  for k, n in sorted(by_key.items(), key=lambda kv: (-kv[1], str(kv[0])))],
            "over_time": [row({bucket: k[0], "decision": k[1]}, k[2], n)
                          for k, n in sorted(by_time.items(), key=lambda kv: str(kv[0]))],
            "shadow_would_have": [{"tool": k[0], "rule": k[1], "decision": k[2], "count": n}
                                  for k, n in sorted(unenforced.items(), key=lambda kv: (-kv[1], str(kv[0])))],
            "approvals": [{"method": k[0], "outcome": k[1], "count": n}
                          for k, n in sorted(approvals.items(), key=lambda kv: (-kv[1], str(kv[0])))]}
