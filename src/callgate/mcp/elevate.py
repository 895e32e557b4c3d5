"""Elevate on the wire: how the proxy gets the approval a policy asks for (docs/mcp.md).

When the engine says Elevate(n) for a tools/call:

1. signed approvals in `params._meta["callgate/approvals"]` (attached by the host) were
   given to the engine: if they satisfied it the decision is already Allow;
2. otherwise, when the call carried none, the client declared the `elicitation` capability
   (form mode) and n is at most `Elevation.max_approvals` (default 1), the proxy asks the
   client's user with a form with one boolean, "approve"; accept with approve=true runs the
   call, anything else denies it:
   - on the handshake revisions (capabilities declared at initialize) with an
     `elicitation/create` request while the call is held (`Elevation.window`, bounded by
     what a client without progress keep-alives waits, `client_wait`; progress keep-alives
     every `keepalive` seconds when the call has a progress token);
   - on the 2026 revision (capabilities in the request's _meta) with an input_required
     result (`modern_step`): the question in `inputRequests["callgate/approval"]` and a
     `requestState` the proxy signs, bound to this very call and spent once
     (approval_state.py); the client retries the call with the answer, the retry is decided
     again, and only then reaches the server;
3. otherwise the call is denied with a tool error saying approval is required and why.

Every Elevate the proxy handles leaves, after the decision's own audit event (decision
"Elevate", approvals_required n), one "approval" event with the same trace id: the final
decision and `approval` = {method, outcome, required, approved_by}. The client session's
principal is who approved: that is who answered the elicitation (method "elicitation", or
"input_required" on the 2026 revision). Tokens never reach the
audit trail; their approvers' names are in the engine's reason (and in the decision event's
`approval`, see callgate.audit.builder).

Messages are built as plain JSON (the stdio proxy runs without the `mcp` SDK); their shape
is the SDK's `ElicitRequest` / `ElicitRequestFormParams` / `ElicitResult` (the tests check).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Union

import orjson

from . import approval_state
from .gate import APPROVALS_KEY, Identity, Verdict, elevate_reason

log = logging.getLogger("callgate.mcp")
ELICIT_TIMEOUT = 300.0     # seconds the proxy waits for the user's answer (the approval window)
KEEPALIVE = 15.0           # seconds between progress keep-alives of a held call that has a progress token
CLIENT_WAIT = 60.0         # seconds a client waits for a call without progress (the TypeScript SDK's default)
ARGS_SHOWN = 1000          # characters of the arguments' JSON shown in the elicitation message
METHOD = "elicitation/create"
FORM_SINCE = "2025-11-25"  # protocol versions from this one on know elicitation `mode`
MODERN_SINCE = "2026-07-28"  # no handshake, no server-to-client requests: input_required instead
INPUT_KEY = "callgate/approval"   # the proxy's key in inputRequests / inputResponses

# outcomes (recorded in the audit trail's approval events)
APPROVED, DECLINED, CANCELLED, UNSUPPORTED, TIMEOUT, ERROR, INSUFFICIENT, INVALID = (
    "approved", "declined", "cancelled", "unsupported", "timeout", "error", "insufficient", "invalid")
ELICITATION, INPUT_REQUIRED = "elicitation", "input_required"   # how the user was asked


@dataclass(frozen=True)
class Elevation:
    """How the proxy obtains approvals.

    `max_approvals`: the largest approval count one user's yes may satisfy (0: never ask);
    `timeout`: the approval window in seconds (how long a held call waits for the answer, or
    a 2026 request state stays valid), `windows` per tier overriding it ({"destructive":
    600}); `keepalive`: seconds between progress notifications sent for a held call that
    carries a progress token (0: none), so that clients that reset their timeout on progress
    keep waiting; `client_wait`: seconds a client waits for a call that gets no progress (0:
    unbounded): a held call without a progress token is given at most a little less, so the
    client reads the denial instead of timing out."""

    max_approvals: int = 1
    timeout: float = ELICIT_TIMEOUT
    windows: Mapping[str, float] = field(default_factory=dict)
    keepalive: float = KEEPALIVE
    client_wait: float = CLIENT_WAIT

    def __post_init__(self) -> None:
        if not isinstance(self.max_approvals, int) or isinstance(self.max_approvals, bool) or self.max_approvals < 0:
            raise ValueError("the most approvals an elicitation may give must be an integer >= 0")
        if not self.timeout > 0:
            raise ValueError("the elicitation timeout must be a positive number of seconds")
        object.__setattr__(self, "windows", dict(self.windows))
        for tier, seconds in self.windows.items():
            if not isinstance(tier, str) or not (isinstance(seconds, (int, float)) and seconds > 0):
                raise ValueError(f"the approval window of tier {tier!r} must be a positive number of seconds")
        if not (self.keepalive >= 0 and self.client_wait >= 0):
            raise ValueError("the keep-alive interval and the client wait must be numbers of seconds >= 0")

    def window(self, tier: Optional[str]) -> float:
        """The approval window for a tool of this tier (the tier's own, else `timeout`)."""
        return self.windows.get(tier, self.timeout) if tier is not None else self.timeout

    def held_window(self, tier: Optional[str], keepalive: bool) -> tuple[float, str]:
        """(seconds, how the reason says it) a held call waits for its answer: the window,
        cut to a little less than `client_wait` when the client gets no keep-alives."""
        window = self.window(tier)
        if keepalive and self.keepalive > 0 or not self.client_wait:
            return window, f"no answer within {window:g} s"
        bound = self.client_wait - min(5.0, self.client_wait / 10)
        if bound >= window:
            return window, f"no answer within {window:g} s"
        return bound, (f"no answer within {bound:g} s (a client that gets no progress waits about "
                       f"{self.client_wait:g} s; send a progressToken to wait up to {window:g} s)")


def can_elicit(capabilities: Any) -> bool:
    """Whether a client's declared capabilities include form-mode elicitation: `elicitation`
    present, and either `form` in it or (a 2025-06-18 client's `{}`) no mode named at all."""
    if not isinstance(capabilities, dict):
        return False
    elicitation = capabilities.get("elicitation")
    if not isinstance(elicitation, dict):
        return False
    return "form" in elicitation or "url" not in elicitation


def why_not(v: Verdict, *, elicitation: bool, elevation: Elevation, batch: bool = False) -> Optional[tuple[str, str]]:
    """None when the proxy should ask the user; otherwise (outcome, why) for the denial."""
    n = v.approvals_required
    if v.approvals_given:
        return INSUFFICIENT, ""
    if n > elevation.max_approvals:
        most = elevation.max_approvals
        return UNSUPPORTED, (f"{n} approval{'s' if n != 1 else ''} cannot come from one user's confirmation "
                             f"(an elicitation gives at most {most})" if most else
                             "the proxy does not ask the user for approval (elicitation is off)")
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
    n = v.approvals_required
    message = (f"Approve this tool call?\n\n"
               f"Tool: {v.tool}\n"
               f"Arguments: {arguments_summary(v.args)}\n"
               f"Why approval is needed: {v.reason}\n"
               f"Approvals required: {n} (your answer counts as {'one' if n != 1 else 'the one'})\n\n"
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


def approved_reason(v: Verdict, identity: Identity, method: str = ELICITATION) -> str:
    """The reason of an Elevate the client's user approved (the approval event's reason)."""
    who = f" ({identity.principal})" if identity.principal else ""
    return f"{v.reason}; approved by the user of the client session{who} ({method.replace('_', '-')})"


def record_outcome(gate: Any, v: Verdict, identity: Identity, *, method: str, outcome: str,
                   reason: str) -> bool:
    """The approval event for one Elevate, after its decision event (same trace id). False
    when the audit trail could not take it (the caller then does not run the call)."""
    approval: dict[str, Any] = {"method": method, "outcome": outcome, "required": v.approvals_required}
    if outcome == APPROVED:
        approval["approved_by"] = [identity.principal] if identity.principal else []
    try:
        recorded: bool = gate.engine.record_approval(
            tool=v.tool, args=v.args, role=identity.role, principal=v.principal_of(identity),
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
            batch: bool = False) -> Optional[str]:
    """For an Elevate the engine decided: None when the user should be asked (the caller
    holds the call and asks); otherwise the reason the call is denied, its outcome recorded."""
    refused = why_not(v, elicitation=can_elicit(capabilities), elevation=elevation, batch=batch)
    if refused is None:
        return None
    outcome, why = refused
    return denial(v, identity, gate, outcome, why, method_for(v, outcome))


def settle(v: Verdict, identity: Identity, gate: Any, outcome: str, why: str,
           method: str = ELICITATION) -> Optional[str]:
    """The user's answer (or its absence) for a held call: None when it was approved and the
    approval recorded (the call runs); otherwise the reason it is denied, recorded."""
    if outcome == APPROVED:
        if record_outcome(gate, v, identity, method=method, outcome=outcome,
                          reason=approved_reason(v, identity, method)):
            return None
        outcome, why = ERROR, "the audit trail could not record the approval"
    return denial(v, identity, gate, outcome, why, method)


def method_for(v: Verdict, outcome: str, asking: str = ELICITATION) -> str:
    """How approval was sought for an Elevate: "tokens" (signed approvals attached), "none"
    (it could not be asked), else `asking` ("elicitation" or "input_required")."""
    if v.approvals_given:
        return "tokens"
    return "none" if outcome == UNSUPPORTED else asking


# ---------------------------------------------------------------- the 2026 revision: input_required


@dataclass(frozen=True)
class Ask:
    """Answer the call with this input_required result (the approval question)."""

    result: dict[str, Any]


@dataclass(frozen=True)
class Deny:
    """Answer the call with a denial: `reason` (already recorded)."""

    reason: str


@dataclass(frozen=True)
class Run:
    """The user approved: forward the call with these params; `binding` and `window` let a
    later input_required answer of the server carry the approval on (wrap_result)."""

    params: dict[str, Any]
    binding: approval_state.Binding
    window: float


Step = Union[Ask, Deny, Run]


def input_required_result(v: Verdict, state: str) -> dict[str, Any]:
    """The input_required result asking the client's user to approve an Elevate: the form of
    the elicitation path under INPUT_KEY, and the proxy's signed request state."""
    return {"resultType": "input_required",
            "inputRequests": {INPUT_KEY: {"method": METHOD, "params": elicitation_params(v, MODERN_SINCE)}},
            "requestState": state}


def answer_of(params: Any) -> tuple[str, str]:
    """(outcome, why) from a retried request's inputResponses[INPUT_KEY]."""
    responses = params.get("inputResponses") if isinstance(params, dict) else None
    answer = responses.get(INPUT_KEY) if isinstance(responses, dict) else None
    if answer is None:
        return ERROR, "the retried request carries no answer to the approval question"
    return outcome_of({"result": answer})


def forwarded_params(params: dict[str, Any], upstream_state: Optional[str]) -> dict[str, Any]:
    """A retried call's params as the server gets them: without the proxy's request state
    and answer (the server's own state, if the proxy carried one, given back)."""
    out = {k: v for k, v in params.items() if k not in ("requestState", "inputResponses")}
    responses = params.get("inputResponses")
    if isinstance(responses, dict):
        rest = {k: v for k, v in responses.items() if k != INPUT_KEY}
        if rest:
            out["inputResponses"] = rest
    if upstream_state is not None:
        out["requestState"] = upstream_state
    return out


def modern_step(v: Verdict, identity: Identity, gate: Any, params: dict[str, Any], *, capabilities: Any,
                elevation: Elevation) -> Step:
    """What to do with an Elevate on a 2026 request (params: the call's, as decided). A
    retried request carrying the proxy's state: the state must open for this very call
    (approval_state.open: signature, binding, expiry, once), then the user's answer decides
    (or the approval granted in an earlier round, when the proxy carried the server's own
    state); anything else is a denial with its reason. A first request: ask (Ask), unless
    the user cannot be asked (Deny)."""
    state = params.get("requestState")
    states = gate.approval_states()
    if approval_state.is_ours(state):
        binding = approval_state.binding_for(v, identity, gate.engine.policy_digest)
        opened = states.open(state, binding)
        if isinstance(opened, approval_state.Refused):
            return Deny(denial(v, identity, gate, INVALID, f"the approval's request state was refused "
                                                            f"({opened.reason})", INPUT_REQUIRED))
        outcome, why = (APPROVED, "") if opened.grant else answer_of(params)
        reason = settle(v, identity, gate, outcome, why, INPUT_REQUIRED)
        if reason is not None:
            return Deny(reason)
        return Run(forwarded_params(params, opened.upstream), binding, elevation.window(gate.tier_of(v.tool or "")))
    refused = why_not(v, elicitation=can_elicit(capabilities), elevation=elevation)
    if refused is not None:
        outcome, why = refused
        return Deny(denial(v, identity, gate, outcome, why, method_for(v, outcome, INPUT_REQUIRED)))
    window = elevation.window(gate.tier_of(v.tool or ""))
    binding = approval_state.binding_for(v, identity, gate.engine.policy_digest)
    try:
        token = states.issue(binding, window, upstream=state if isinstance(state, str) else None)
    except ValueError as exc:
        return Deny(denial(v, identity, gate, ERROR, str(exc), INPUT_REQUIRED))
    return Ask(input_required_result(v, token))


def wrap_result(gate: Any, result: Any, binding: approval_state.Binding, window: float) -> Optional[dict[str, Any]]:
    """The server answered an approved call with its own input_required: the same result
    with the server's request state carried inside a fresh proxy state that remembers the
    approval (so the next round is not asked again, and is still bound to this call). None
    when the result is anything else; a denial result when the state cannot be carried."""
    if not isinstance(result, dict) or result.get("resultType") != "input_required":
        return None
    upstream = result.get("requestState")
    try:
        token = gate.approval_states().issue(binding, window, grant=True,
                                             upstream=upstream if isinstance(upstream, str) else None)
    except ValueError as exc:
        from .gate import denial_result

        return dict(denial_result(f"the server's request state cannot be carried ({exc})"), resultType="complete")
    return dict(result, requestState=token)


__all__ = ["APPROVALS_KEY", "Ask", "Deny", "Elevation", "Run", "can_elicit", "elicitation_request", "modern_step",
           "outcome_of", "refusal", "settle", "why_not", "wrap_result"]
