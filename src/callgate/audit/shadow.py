"""Shadow mode: a candidate policy evaluated beside the enforced one, on the writer thread.
The primary decides; every disagreement is recorded in the event (`shadow`) and kept in a
bounded list of recent ones."""

from __future__ import annotations

import hashlib
import os
from collections import deque
from typing import TYPE_CHECKING, Any, Deque

from ..values import dumps_exact
from ._canonical import loads
from .replay import policy_verdict

if TYPE_CHECKING:
    from ..decision import Request


def load_candidate(candidate: Any, semantics: str, engine_type: Any) -> Any:
    """A candidate given as an engine, a decoded policy dict or a policy file path (made an
    engine of `engine_type`: the primary's class, so the audit trail never imports one)."""
    if isinstance(candidate, engine_type) or (hasattr(candidate, "evaluate") and hasattr(candidate, "blob")):
        return candidate
    if isinstance(candidate, dict):
        return engine_type.from_dict(candidate, semantics)
    if isinstance(candidate, (str, os.PathLike)):
        return engine_type.from_file(candidate, semantics)
    raise TypeError(f"shadow= needs a policy path, dict or Engine, not {type(candidate).__name__}")


class Shadow:
    """A candidate policy evaluated beside the primary on every decision (Engine(shadow=...)):
    counts, and marks the events where the two disagree (`recent` keeps the last ones)."""

    def __init__(self, candidate: Any, semantics: str, engine_type: Any, keep: int = 1000) -> None:
        self.engine = load_candidate(candidate, semantics, engine_type)
        self.digest = hashlib.sha256(self.engine.blob).hexdigest()
        self.evaluated = 0
        self.disagreements = 0
        self.recent: Deque[dict[str, Any]] = deque(maxlen=keep)

    def check(self, request: Request, event: dict[str, Any]) -> None:
        """Evaluate the candidate on the same request bytes; on disagreement (decision or
        approval count, compared with what the primary's policy said before any approvals),
        add `shadow` to the event (before it is sealed, so it is covered by the hash)."""
        try:
            if request[0] == "request":
                tool, role, args, agent, resource, *rest = loads(request[1])
                if len(rest) > 1:   # with the principal chain the primary read (its effective scopes)
                    context = {"role": role, "agent_attrs": agent or {}, "resource_attrs": resource or {},
                               "context": rest[0] or {}, "principal": rest[1]}
                    d = self.engine.evaluate_json(tool, dumps_exact(args), dumps_exact(context))
                else:
                    options = {"context": rest[0]} if rest else {}
                    d = self.engine.evaluate(tool, args, role=role, agent_attributes=agent,
                                             resource_attributes=resource, **options)
            else:
                d = self.engine.evaluate_json(request[1], request[2], request[3])
            verdict = {"decision": d.decision, "rule": d.rule, "reason": d.reason,
                       "approvals_required": getattr(d, "approvals_required", 0)}
        except Exception as exc:  # the candidate refuses what the primary accepted: a disagreement
            verdict = {"decision": "Deny", "rule": None, "reason": f"candidate error: {exc}", "approvals_required": 0}
        self.evaluated += 1
        if (verdict["decision"], verdict["approvals_required"]) != policy_verdict(event):
            self.disagreements += 1
            verdict.update(policy_version=self.engine.policy_version, policy_digest=self.digest)
            event["shadow"] = verdict
            self.recent.append({"id": event["id"], "tool": event.get("tool"), "role": event.get("role"),
                                "principal": event.get("principal"), "decision": event.get("decision"),
                                "approvals_required": event.get("approvals_required"),
                                "reason": event.get("reason"), "shadow": verdict})
