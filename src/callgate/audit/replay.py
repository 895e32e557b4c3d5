"""Replay: re-evaluate every recorded call that has its full arguments under a candidate
policy, and report the calls whose decision would change, grouped by tool and role."""

from __future__ import annotations

from typing import Any, Dict, Optional

from ..engine import Engine
from .query import events
from .source import Source

_INPUTS = ("/args", "/agent_attributes", "/resource_attributes")


def replayable(record: dict) -> bool:
    """A decision recorded with its inputs intact: not hashed, not masked, not a refused request."""
    if record.get("kind") != "decision" or "args" not in record:
        return False
    return not any(m.startswith(_INPUTS) for m in record.get("masked", ()))


def replay(source: Source, candidate: Engine, since: Optional[str] = None) -> Dict[str, Any]:
    replayed = skipped = 0
    groups: Dict[tuple, list] = {}
    for _, record, _ in events(source, since=since):
        if record.get("kind") == "gap":
            continue
        if not replayable(record):
            skipped += 1
            continue
        replayed += 1
        try:
            d = candidate.evaluate(record["tool"], record["args"], role=record["role"],
                                   agent_attributes=record.get("agent_attributes"),
                                   resource_attributes=record.get("resource_attributes"))
            after = {"decision": d.decision, "rule": d.rule, "reason": d.reason}
        except Exception as exc:
            after = {"decision": "Deny", "rule": None, "reason": f"candidate error: {exc}"}
        if after["decision"] != record.get("decision"):
            groups.setdefault((record["tool"], record["role"]), []).append({
                "id": record.get("id"), "timestamp": record.get("timestamp"), "principal": record.get("principal"),
                "args": record["args"],
                "before": {"decision": record.get("decision"), "rule": record.get("rule"), "reason": record.get("reason")},
                "after": after})
    changed = [{"tool": t, "role": r, "count": len(calls), "calls": calls} for (t, r), calls in sorted(groups.items())]
    return {"policy_version": candidate.policy_version, "replayed": replayed, "skipped": skipped,
            "changed_calls": sum(g["count"] for g in changed), "changed": changed}
