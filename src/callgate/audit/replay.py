"""Replay: re-evaluate every recorded call that has its full arguments under a candidate
policy, and report the calls whose decision would change, grouped by tool and role.

A verdict is the decision with its approval count: Elevate(1) and Elevate(2) differ. An
Allow that signed approvals made of an Elevate (the event's `approval`, method "tokens")
stands for the Elevate the policy asked for: approvals are bound to the policy that checked
them, so the candidate is asked what it would require, not given them again."""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, Optional, Set

from .query import events
from .source import Source

_INPUTS = ("/args", "/agent_attributes", "/resource_attributes", "/context")


def replayable(record: Dict[str, Any]) -> bool:
    """A decision recorded with its inputs intact: not hashed, not masked, not a refused
    request (and, in a log that was not verified, with a tool name and role to replay)."""
    if record.get("kind") != "decision" or "args" not in record:
        return False
    masked = record.get("masked", [])
    if not isinstance(record.get("tool"), str) or not isinstance(record.get("role", 0), (str, type(None))) \
            or not isinstance(masked, list):
        return False
    return not any(not isinstance(m, str) or m.startswith(_INPUTS) for m in masked)


def policy_verdict(record: Dict[str, Any]) -> tuple[Any, Any]:
    """(decision, approvals_required) as the recording policy decided, before approvals."""
    approval = record.get("approval")
    if record.get("decision") == "Allow" and isinstance(approval, dict) and approval.get("method") == "tokens" \
            and isinstance(approval.get("required"), int):
        return "Elevate", approval["required"]
    return record.get("decision"), record.get("approvals_required") or 0


def evaluate(candidate: Any, record: Dict[str, Any]) -> Dict[str, Any]:
    """The candidate's decision on a recorded call: decision, rule, reason, approvals_required."""
    options: Dict[str, Any] = {}
    if record.get("context") is not None:
        options["context"] = record["context"]
    try:
        if isinstance(record.get("principal_chain"), dict):   # the verified chain the call carried
            from ..principals import recorded_chain

            options["chain"] = recorded_chain(record["principal_chain"])
        d = candidate.evaluate(record["tool"], record["args"], role=record["role"],
                               agent_attributes=record.get("agent_attributes"),
                               resource_attributes=record.get("resource_attributes"), **options)
        return {"decision": d.decision, "rule": d.rule, "reason": d.reason,
                "approvals_required": getattr(d, "approvals_required", 0)}
    except Exception as exc:
        return {"decision": "Deny", "rule": None, "reason": f"candidate error: {exc}", "approvals_required": 0}


def replay(source: Source, candidate: Any, since: Optional[str] = None,
           trusted: Optional[Set[bytes]] = None) -> Dict[str, Any]:
    """The recorded calls whose verdict the candidate changes. With `trusted` writer keys,
    only chains vouched for by one of them ("excluded": the events of other chains)."""
    replayed = skipped = 0
    groups: Dict[tuple[str, str], list[Dict[str, Any]]] = {}
    excluded: Counter[str] = Counter()
    for _, record, _ in events(source, since=since, trusted=trusted, excluded=excluded):
        if record.get("kind") in ("gap", "approval"):  # an approval event follows a decision replayed on its own
            continue
        if not replayable(record):
            skipped += 1
            continue
        replayed += 1
        after = evaluate(candidate, record)
        if (after["decision"], after["approvals_required"]) != policy_verdict(record):
            before = {"decision": record.get("decision"), "rule": record.get("rule"), "reason": record.get("reason"),
                      "approvals_required": record.get("approvals_required") or 0}
            if isinstance(record.get("approval"), dict):
                before["approval"] = record["approval"]
            groups.setdefault((record["tool"], record["role"]), []).append({
                "id": record.get("id"), "timestamp": record.get("timestamp"), "principal": record.get("principal"),
                "args": record["args"], "before": before, "after": after})
    changed = [{"tool": t, "role": r, "count": len(calls), "calls": calls} for (t, r), calls in sorted(groups.items())]
    return {"policy_version": candidate.policy_version, "replayed": replayed, "skipped": skipped,
            "changed_calls": sum(g["count"] for g in changed), "changed": changed, "excluded": dict(excluded)}
