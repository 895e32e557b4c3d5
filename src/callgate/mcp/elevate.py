"""Elevate on the wire: how the proxy gets the approval a policy asks for (docs/mcp.md).

When the engine says Elevate(n) for a tools/call:

1. signed approvals in `params._meta["callgate/approvals"]` (attached by the host) were
   given to the engine: if they satisfied it the decision is already Allow;
2. otherwise, when the call carried none, the client declared the `elicitation` capability
   (form mode) at initialize and n is at most `Elevation.max_approvals` (default 1), the
   proxy asks the client's user with an MCP `elicitation/create` request (a form with one
   boolean, "approve"); accept with approve=true runs the call, anything else denies it;
3. otherwise the call is denied with a tool error saying approval is required and why.

Every Elevate the proxy handles leaves, after the decision's own audit event (decision
"Elevate", approvals_required n), one "approval" event with the same trace id: the final
decision and `approval` = {method, outcome, required, approved_by}. The client session's
principal is who approved: that is who answered the elicitation. Tokens never reach the
audit trail; their approvers' names are in the engine's reason (and in the decision event's
`approval`, see callgate.audit.builder).

Messages are built as plain JSON (the stdio proxy runs without the `mcp` SDK); their shape
is the SDK's `ElicitRequest` / `ElicitRequestFormParams` / `ElicitResult` (the tests check).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

import orjson

from .gate import APPROVALS_KEY, Identity, Verdict, elevate_reason

log = logging.getLogger("callgate.mcp")
ELICIT_TIMEOUT = 300.0     # seconds the proxy waits for the user's answer
ARGS_SHOWN = 1000          # characters of the arguments' JSON shown in the elicitation message
METHOD = "elicitation/create"
FORM_SINCE = "2025-11-25"  # protocol versions from this one on know elicitation `mode`
MODERN_SINCE = "2026-07-28"  # no handshake, no server-to-client requests

# outcomes (recorded in the audit trail's approval events)
APPROVED, DECLINED, CANCELLED, UNSUPPORTED, TIMEOUT, ERROR, INSUFFICIENT = (
    "approved", "declined", "cancelled", "unsupported", "timeout", "error", "insufficient")


@dataclass(frozen=True)
class Elevation:
    """How the proxy obtains approvals. `max_approvals`: the largest approval count one
    elicitation (one user's yes) may satisfy (0: never elicit); `timeout`: seconds to wait
    for the answer."""

    max_approvals: int = 1
    timeout: float = ELICIT_TIMEOUT

    def __post_init__(self) -> None:
        if not isinstance(self.max_approvals, int) or isinstance(self.max_approvals, bool) or self.max_approvals < 0:
            raise ValueError("the most approvals an elicitation may give must be an integer >= 0")
        if not self.timeout > 0:
            raise ValueError("the elicitation timeout must be a positive number of seconds")


def can_elicit(capabilities: Any) -> bool:
    """Whether a client's declared capabilities include form-mode elicitation: `elicitation`
    present, and either `form` in it or (a 2025-06-18 client's `{}`) no mode named at all."""
    if not isinstance(capabilities, dict):
        return False
    elicitation = capabilities.get("elicitation")
    if not isinstance(elicitation, dict):
        return False
    return "form" in elicitation or "url" not in elicitation


def why_not(v: Verdict, *, elicitation: bool, elevation: Elevation, batch: bool = False,
            modern: bool = False) -> Optional[tuple[str, str]]:
    """None when the proxy should ask the user; otherwise (outcome, why) for the denial."""
    n = v.approvals_required
    if v.approvals_given:
        return INSUFFICIENT, ""
    if n > elevation.max_approvals:
        most = elevation.max_approvals
        return UNSUPPORTED, (f"{n} approval{'s' if n != 1 else ''} cannot come from one user's confirmation "
                             f"(an elicitation gives at most {most})" if most else
                             "the proxy does not ask the user for approval (elicitation is off)")
    if modern:
        return UNSUPPORTED, "the proxy cannot ask the user on a request of the 2026 protocol (no elicitation)"
    if batch:
        return UNSUPPORTED, "a call in a JSON-RPC batch cannot ask the user"
    if not elicitation:
        return UNSUPPORTED, "the client cannot ask the user (it did not declare the elicitation capability)"
    return None


def arguments_summary(args: Any, limit: int = ARGS_SHOWN) -> str:
    """The arguments as canonical JSON (sorted keys), cut at `limit` characters."""
    text = orjson.dumps(args if args is not None else {}, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    if len(text) > limit:
        text = text[:limit] + f"… ({len(text) - limit} more characters)"
    return text


def elicitation_params(v: Verdict, protocol: Optional[str] = None) -> dict[str, Any]:
    """The params of the elicitation/create request for one Elevate: a message naming the
    tool, its arguments and the policy's reason, and a form with one required boolean."""
    message = (f"Approve this tool call?\n\n"
               f"Tool: {v.tool}\n"
               f"Arguments: {arguments_summary(v.args)}\n"
               f"Why approval is needed: {v.reason}\n\n"
               f"The call runs only if you approve it.")
    params: dict[str, Any] = {
        "message": message,
        "requestedSchema": {
            "type": "object",
            "properties": {"approve": {"type": "boolean", "title": "Approve",
                                       "description": f"Run {v.tool} with the arguments shown", "default": False}},
            "required": ["approve"],
        },
    }
    if isinstance(protocol, str) and protocol >= FORM_SINCE:
        params["mode"] = "form"
    return params


def elicitation_request(id_: Any, v: Verdict, protocol: Optional[str] = None) -> dict[str, Any]:
    """The elicitation/create request (id `id_`) asking the client's user to approve an Elevate."""
    return {"jsonrpc": "2.0", "id": id_, "method": METHOD, "params": elicitation_params(v, protocol)}


def outcome_of(response: Any) -> tuple[str, str]:
    """(outcome, why) from the client's answer to an elicitation/create request: approved only
    for action "accept" with content.approve exactly true."""
    if not isinstance(response, dict):
        return ERROR, "the client's answer was not a JSON-RPC response"
    if "error" in response:
        err = response["error"]
        message = err.get("message") if isinstance(err, dict) else None
        return ERROR, f"the client could not ask the user ({message or 'error'})"
    result = response.get("result")
    action = result.get("action") if isinstance(result, dict) else None
    if action == "accept":
        content = result.get("content")  # type: ignore[union-attr]  # (a dict: it has an action)
        if isinstance(content, dict) and content.get("approve") is True:
            return APPROVED, ""
        return DECLINED, "the user did not approve"
    if action == "decline":
        return DECLINED, "the user declined"
    if action == "cancel":
        return CANCELLED, "the user cancelled"
    return ERROR, "the client's answer to the elicitation is not an elicitation result"


def approved_reason(v: Verdict, identity: Identity) -> str:
    """The reason of an Elevate the client's user approved (the approval event's reason)."""
    who = f" ({identity.principal})" if identity.principal else ""
    return f"{v.reason}; approved by the user of the client session{who} (elicitation)"


def record_outcome(gate: Any, v: Verdict, identity: Identity, *, method: str, outcome: str,
                   reason: str) -> bool:
    """The approval event for one Elevate, after its decision event (same trace id). False
    when the audit trail could not take it (the caller then does not run the call)."""
    approval: dict[str, Any] = {"method": method, "outcome": outcome, "required": v.approvals_required}
    if outcome == APPROVED:
        approval["approved_by"] = [identity.principal] if identity.principal else []
    try:
        recorded: bool = gate.engine.record_approval(
            tool=v.tool, args=v.args, role=identity.role, principal=identity.principal,
            agent_attributes=dict(identity.agent_attributes), resource_attributes=dict(v.resource),
            trace_id=v.trace_id, decision="Allow" if outcome == APPROVED else "Deny", reason=reason,
            rule=v.rule, approvals_required=v.approvals_required, approval=approval)
        return recorded
    except Exception:  # pragma: no cover - never run an approval that was not recorded
        log.exception("recording an approval failed")
        return False


def denial(v: Verdict, identity: Identity, gate: Any, outcome: str, why: str, method: str) -> str:
    """Record the outcome of an Elevate that does not run; the reason for the client."""
    reason = elevate_reason(v, why or None)
    record_outcome(gate, v, identity, method=method, outcome=outcome, reason=reason)
    return reason


def refusal(v: Verdict, identity: Identity, gate: Any, *, capabilities: Any, elevation: Elevation,
            batch: bool = False, modern: bool = False) -> Optional[str]:
    """For an Elevate the engine decided: None when the user should be asked (the caller
    holds the call and asks); otherwise the reason the call is denied, its outcome recorded."""
    refused = why_not(v, elicitation=can_elicit(capabilities), elevation=elevation, batch=batch, modern=modern)
    if refused is None:
        return None
    outcome, why = refused
    return denial(v, identity, gate, outcome, why, method_for(v, outcome))


def settle(v: Verdict, identity: Identity, gate: Any, outcome: str, why: str) -> Optional[str]:
    """The user's answer (or its absence) for a held call: None when it was approved and the
    approval recorded (the call runs); otherwise the reason it is denied, recorded."""
    if outcome == APPROVED:
        if record_outcome(gate, v, identity, method="elicitation", outcome=outcome,
                          reason=approved_reason(v, identity)):
            return None
        outcome, why = ERROR, "the audit trail could not record the approval"
    return denial(v, identity, gate, outcome, why, "elicitation")


def method_for(v: Verdict, outcome: str) -> str:
    """How approval was sought for an Elevate: "tokens" (signed approvals attached), "none"
    (it could not be asked) or "elicitation"."""
    if v.approvals_given:
        return "tokens"
    return "none" if outcome == UNSUPPORTED else "elicitation"


__all__ = ["APPROVALS_KEY", "Elevation", "can_elicit", "elicitation_request", "outcome_of", "refusal", "settle",
           "why_not"]
