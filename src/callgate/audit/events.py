"""AuditEvent: one recorded decision, its canonical JSON and the perso SDKs' camelCase shape.

The writer thread builds events as plain dicts (see builder.py) because that is what gets
serialized; AuditEvent is the typed view handed to `emit(event)` sinks and returned by
the readers (query, tail, replay)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Dict, List, Optional

from ._canonical import canonical

# snake_case (canonical) -> camelCase (perso SDKs); keys not listed are the same in both
_CAMEL = {
    "trace_id": "traceId", "agent_attributes": "agentAttributes", "resource_attributes": "resourceAttributes",
    "policy_version": "policyVersion", "policy_digest": "policyDigest", "engine_version": "engineVersion",
    "risk_score": "riskScore", "args_sha256": "argsSha256", "error_code": "errorCode", "args_raw": "argsRaw", "context_raw": "contextRaw",
    "approvals_required": "approvalsRequired",
}


@dataclass
class AuditEvent:
    """One decision (kind "decision"), one refused request ("error"), what followed an
    Elevate ("approval": the final decision and how approval was or was not obtained) or one
    account of lost events ("gap"); or the trail's own bookkeeping: a writer marker
    ("writer": `state` "start" or "stop", `writer`, `torn`; audit.markers) or a chain's
    signed genesis record ("chain": `public_key`, `signature`; audit.genesis). `seq`, `chain`
    and `hash` are set once the event is in a chain.

    `decision` is "Allow", "Deny" or "Elevate"; `approvals_required` is 1-3 for Elevate and
    0 otherwise (absent from records written before Elevate existed); `approval` is
    {"method": "tokens" | "elicitation" | "none", "outcome", "required", "approved_by"};
    `context` is the host's context object when it gave a non-empty one."""

    id: str
    timestamp: str
    kind: str = "decision"
    trace_id: Optional[str] = None
    tool: Optional[str] = None
    args: Any = None
    args_sha256: Optional[str] = None
    role: Optional[str] = None
    principal: Optional[str] = None
    agent_attributes: Any = None
    resource_attributes: Any = None
    decision: Optional[str] = None
    reason: Optional[str] = None
    rule: Optional[int] = None
    approvals_required: Optional[int] = None
    approval: Optional[Dict[str, Any]] = None
    context: Any = None
    policy_version: Optional[str] = None
    policy_digest: Optional[str] = None
    engine_version: Optional[str] = None
    risk_score: Optional[float] = None
    extras: Optional[Dict[str, Any]] = None
    masked: List[str] = field(default_factory=list)
    shadow: Optional[Dict[str, Any]] = None
    error_code: Optional[str] = None
    args_raw: Optional[str] = None
    context_raw: Optional[str] = None
    lost: Optional[int] = None
    state: Optional[str] = None
    writer: Optional[Dict[str, Any]] = None
    torn: Optional[Dict[str, Any]] = None
    public_key: Optional[str] = None
    signature: Optional[str] = None
    chain: Optional[str] = None
    seq: Optional[int] = None
    hash: Optional[str] = None

    @classmethod
    def from_dict(cls, record: Dict[str, Any], hash: Optional[str] = None) -> "AuditEvent":
        """From a canonical record (unknown keys are kept in extras['_unknown'] rather than lost)."""
        names = {f.name for f in fields(cls)} - {"hash"}  # the hash is never part of the record
        known = {k: v for k, v in record.items() if k in names}
        unknown = {k: v for k, v in record.items() if k not in names}
        if unknown:
            known["extras"] = dict(known.get("extras") or {}, _unknown=unknown)
        known.setdefault("masked", [])
        return cls(**known, hash=hash)

    def to_dict(self) -> Dict[str, Any]:
        """The record as hashed: fields that are None (and an empty mask list) are omitted,
        except those every decision carries (gap records and the trail's own markers carry
        none of them)."""
        out = {}
        always = _ALWAYS if self.kind in _CALLS else ()
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "hash":
                continue
            if v is None and f.name not in always:
                continue
            if f.name == "masked" and not v:
                continue
            out[f.name] = v
        return out

    def canonical(self) -> bytes:
        """Canonical JSON: sorted keys, no insignificant whitespace."""
        return canonical(self.to_dict())

    def to_perso(self) -> Dict[str, Any]:
        """The camelCase shape of the original perso SDKs (traceId, agentAttributes, ...)."""
        return {_CAMEL.get(k, k): v for k, v in self.to_dict().items()}


_ALWAYS = frozenset({"trace_id", "tool", "role", "principal", "decision", "reason", "rule"})
_CALLS = ("decision", "error", "approval")  # the kinds that record a call


def to_perso(record: Dict[str, Any]) -> Dict[str, Any]:
    """camelCase keys for a record dict (top level only: args keep the caller's names)."""
    return {_CAMEL.get(k, k): v for k, v in record.items()}
