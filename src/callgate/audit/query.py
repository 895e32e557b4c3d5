"""Reading events: filters (query), the last records (tail) and counts (stats)."""

from __future__ import annotations

import re
import time
from collections import Counter
from typing import Any, Dict, Iterator, Optional

import orjson

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


def events(source: Source, principal: Optional[str] = None, tool: Optional[str] = None,
           decision: Optional[str] = None, since: Optional[str] = None, after: Any = None) -> Iterator[tuple]:
    """(position, record dict, hash hex) of the records that match every filter given."""
    ts = since_to_timestamp(since) if since else None
    where, params = "", []
    if source.kind != "jsonl":  # the databases filter through their indexes
        for column, value in (("principal", principal), ("tool", tool), ("decision", decision), ("ts", ts)):
            if value is not None:
                where += f" AND {column} {'>=' if column == 'ts' else '='} ?"
                params.append(value)
    for entry in source.entries(after, where, tuple(params)):
        if entry.torn or entry.junk:
            continue
        try:
            record = orjson.loads(entry.body)
        except orjson.JSONDecodeError:
            continue
        if principal is not None and record.get("principal") != principal:
            continue
        if tool is not None and record.get("tool") != tool:
            continue
        if decision is not None and record.get("decision") != decision:
            continue
        if ts is not None and record.get("timestamp", "") < ts:
            continue
        yield entry.pos, record, entry.hash.hex()


def decision_label(record: Dict[str, Any]) -> str:
    """"Allow", "Deny", or "Elevate(n)" with the approvals the Elevate needs."""
    decision = record.get("decision") or "?"
    if decision == "Elevate":
        return f"Elevate({record.get('approvals_required') or '?'})"
    return decision


def stats(source: Source, since: Optional[str] = None, bucket: str = "hour") -> Dict[str, Any]:
    """Decisions per tool, role, rule and decision (an Elevate row also has its
    approvals_required), and per time bucket (hour or day); what followed Elevates per
    approval method and outcome."""
    cut = 13 if bucket == "hour" else 10  # 'YYYY-MM-DDTHH' or 'YYYY-MM-DD'
    by_key: Counter = Counter()
    by_time: Counter = Counter()
    kinds: Counter = Counter()
    approvals: Counter = Counter()
    total = 0
    for _, record, _ in events(source, since=since):
        total += 1
        kinds[record.get("kind")] += 1
        if record.get("kind") == "gap":
            kinds["lost"] += record.get("lost", 0)
            continue
        if record.get("kind") == "approval":  # the call's decision is counted by its own event
            a = record.get("approval") if isinstance(record.get("approval"), dict) else {}
            approvals[(a.get("method"), a.get("outcome"))] += 1
            continue
        required = record.get("approvals_required") or 0 if record.get("decision") == "Elevate" else 0
        by_key[(record.get("tool"), record.get("role"), record.get("rule"), record.get("decision"), required)] += 1
        by_time[(record.get("timestamp", "")[:cut], record.get("decision"), required)] += 1
        if isinstance(record.get("approval"), dict):  # an Allow that signed approvals gave
            a = record["approval"]
            approvals[(a.get("method"), a.get("outcome"))] += 1

    def row(base: dict, required: int, n: int) -> dict:
        if base["decision"] == "Elevate":
            base["approvals_required"] = required
        base["count"] = n
        return base

    return {"records": total, "kinds": dict(kinds),
            "by_tool_role_rule": [row({"tool": k[0], "role": k[1], "rule": k[2], "decision": k[3]}, k[4], n)
                                  for k, n in sorted(by_key.items(), key=lambda kv: (-kv[1], str(kv[0])))],
            "over_time": [row({bucket: k[0], "decision": k[1]}, k[2], n)
                          for k, n in sorted(by_time.items(), key=lambda kv: str(kv[0]))],
            "approvals": [{"method": k[0], "outcome": k[1], "count": n}
                          for k, n in sorted(approvals.items(), key=lambda kv: (-kv[1], str(kv[0])))]}
