"""Turning what the hot path enqueued into event dicts (on the writer thread).

The hot path hands over the decision's result code, the policy state that made it and the
very request bytes the core read; here they are parsed back, the reason is computed (the
core evaluates again), masks and hash_args are applied, and the event gets its id and
timestamp text.

A decision event carries `decision` ("Allow", "Deny", "Elevate") and `approvals_required`
(1-3 for Elevate, else 0); the request's `context`, when the host gave a non-empty one; and,
for an Elevate that signed approvals turned into an Allow, `approval` = {"method": "tokens",
"outcome": "approved", "required": n, "approved_by": [names]} (from the decision itself:
decision.Approved carries the approvers as data; never a token). An "approval" event (what a
host such as the MCP proxy records after an Elevate: the elicitation's outcome) is built by
approval()."""

from __future__ import annotations

import hashlib
import os
import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

import orjson

from ..decision import Approved, Decision, MadeDecision
from ..version import __version__
from ._canonical import canonical, loads
from .masks import apply_masks, scrub
from .options import Options

if TYPE_CHECKING:
    from ..decision import Request

# what the hot path enqueues (recorder._item), told apart by its first field: a decision
# (rc, request, principal, trace_id, extras, source, t_ns), a refused request (ERROR_MARK,
# error, request, principal, trace_id, extras, t_ns), or what followed an Elevate
# (APPROVAL_MARK, fields, t_ns), or a policy reload (POLICY_MARK, fields, t_ns)
QueueItem = Tuple[Any, ...]

_loads = orjson.loads
_VARIANT = {c: "89ab"[int(c, 16) & 3] for c in "0123456789abcdef"}
_RAW_LIMIT = 4096  # bytes of an unparseable request kept verbatim in an error event



class Ids:
    """UUID4 strings from one os.urandom call per batch (uuid.uuid4() per event costs more
    than the rest of the event)."""

    def __init__(self) -> None:
        self._hex = ""
        self._at = 0

    def next(self) -> str:
        """A new UUID4 string."""
        if self._at >= len(self._hex):
            self._hex = os.urandom(16 * 256).hex()
            self._at = 0
        h = self._hex[self._at:self._at + 32]
        self._at += 32
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT[h[16]]}{h[17:20]}-{h[20:]}"


class Clock:
    """RFC 3339 UTC with microseconds, from time.time_ns(); the second's text is cached."""

    def __init__(self) -> None:
        self._sec = -1
        self._prefix = ""

    def format(self, t_ns: int) -> str:
        """`t_ns` (nanoseconds since the epoch) as RFC 3339 UTC with microseconds."""
        us = t_ns // 1000
        sec, frac = divmod(us, 1_000_000)
        if sec != self._sec:
            self._sec = sec
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
        return f"{self._prefix}.{frac:06d}Z"


def now_text() -> str:
    """The time now, as Clock formats it."""
    return Clock().format(time.time_ns())


def unpack(request: Request) -> tuple[Any, Any, Any, Any, Any, Any]:
    """(tool, role, args, agent_attributes, resource_attributes, context) from either request
    form; context is None when the request has none."""
    if request[0] == "request":
        tool, role, args, agent, resource, *rest = loads(request[1])
        return tool, role, args, agent, resource, (rest[0] if rest else None)
    _, tool_b, args_b, ctx_b = request
    ctx = loads(ctx_b)
    return (tool_b.decode("utf-8"), ctx.get("role"), loads(args_b), ctx.get("agent_attrs", {}),
            ctx.get("resource_attrs", {}), ctx.get("context"))


def decided(rc: int, request: Request, source: Any) -> Decision:
    """The Decision a queue item stands for: its result code, explained (when its reason is
    read) by the policy state that made it, from the same request bytes."""
    d = MadeDecision()
    d._rc = rc
    if type(source) is str:
        d._why = source
    elif request[0] == "request":
        d._why = (source, None, request[1], None)
    else:
        d._why = (source, *request[1:])
    return d


class Builder:
    """Builds event dicts for one engine under one set of options."""

    def __init__(self, engine: Any, options: Options) -> None:
        self.engine = engine
        self.options = options
        self.ids = Ids()
        self.clock = Clock()
        self._digests: Dict[int, tuple[Any, str, str]] = {}   # id -> (compiled, version, digest)
        self._source: Any = None
        self._vd: tuple[str, str] = ("", "")
        self._shaping = bool(options.parsed_masks or options.hash_args)  # anything for _finish to do

    def _policy(self, source: Any) -> tuple[str, str]:
        """(version, digest) of the policy that made the decision (a reload may have happened
        since), cached per compiled policy. `source` is the policy state that decided; a
        decision made by the recorder itself (a str reason, or None) falls back to the
        current policy."""
        compiled = getattr(source, "compiled", None) or self.engine.compiled
        hit = self._digests.get(id(compiled))
        if hit is None or hit[0] is not compiled:
            hit = (compiled, compiled.version, hashlib.sha256(compiled.blob).hexdigest())
            if len(self._digests) > 16:
                self._digests.clear()
            self._digests[id(compiled)] = hit
        return hit[1], hit[2]

    def decision(self, rc: int, request: Request, principal: Optional[str], trace_id: Optional[str],
                 extras: Any, source: Any, t_ns: int) -> Dict[str, Any]:
        """A decision's event from its queue item (recorder._item)."""
        # the writer's inner loop: kept flat (no helper calls on the common path)
        context = None
        if request[0] == "request":
            parts = loads(request[1])  # integers beyond 64 bits stay exact (values.loads_exact)
            if len(parts) == 5:
                tool, role, args, agent, resource = parts
            elif len(parts) == 6:
                tool, role, args, agent, resource, context = parts
            else:   # and the principal chain, recorded from extras (Engine.evaluate(chain=))
                tool, role, args, agent, resource, context = parts[:6]
        else:
            tool, role, args, agent, resource, context = unpack(request)
        decision = decided(rc, request, source)
        approval = None
        if type(source) is Approved:   # signed approvals made this Allow of an Elevate
            approval = {"method": "tokens", "outcome": "approved", "required": source.required,
                        "approved_by": list(source.approvers)}
            source = None
        elif type(source) is str:
            source = None
        if source is None or source is not self._source:
            self._source = source
            self._vd = self._policy(source)
        version, digest = self._vd
        uid = self.ids.next()
        sec, frac = divmod(t_ns // 1000, 1_000_000)
        clock = self.clock
        if sec != clock._sec:
            clock.format(t_ns)
        # without a host trace id the call is its own trace: the event id serves as both
        event = {"kind": "decision", "id": uid, "trace_id": trace_id or uid,
                 "timestamp": f"{clock._prefix}.{frac:06d}Z", "tool": tool, "args": args, "role": role,
                 "principal": principal, "agent_attributes": agent, "resource_attributes": resource,
                 "decision": decision.decision, "reason": decision.reason, "rule": decision.rule,
                 "approvals_required": getattr(decision, "approvals_required", 0),
                 "policy_version": version, "policy_digest": digest, "engine_version": __version__}
        if context:
            event["context"] = context
        if approval is not None:
            event["approval"] = approval
        if extras:
            self._extras(event, extras)
        if self._shaping:
            return self._finish(event)
        return event

    def error(self, error: Exception, request: Request, principal: Optional[str], trace_id: Optional[str],
              extras: Any, t_ns: int) -> Dict[str, Any]:
        """A refused request: recorded as a Deny with the error as reason. Its bytes may not be
        JSON at all, so what cannot be parsed is kept verbatim (bounded) with its SHA-256."""
        event: Dict[str, Any] = {"kind": "error", "id": self.ids.next(), "trace_id": trace_id or self.ids.next(),
                                 "timestamp": self.clock.format(t_ns), "principal": principal,
                                 "decision": "Deny", "reason": str(error), "rule": None, "approvals_required": 0,
                                 "error_code": getattr(error, "code", "invalid"), "engine_version": __version__}
        event["policy_version"], event["policy_digest"] = self._policy(None)
        # the refused bytes are kept verbatim (bounded) with their SHA-256: parsing them back
        # could misstate what was sent (duplicate keys, bad UTF-8 are why it was refused)
        if request[0] == "json":
            tool, raw, ctx = request[1], request[2], request[3]
            event["tool"] = tool.decode("utf-8", "replace")
            event["context_raw"] = ctx[:_RAW_LIMIT].decode("utf-8", "backslashreplace")
            try:
                event["role"] = loads(ctx).get("role")
            except Exception:
                event["role"] = None
        else:
            raw = request[1]
            try:
                event["tool"], event["role"] = loads(raw)[:2]
            except Exception:
                event["tool"] = event["role"] = None
        event["args_raw"] = raw[:_RAW_LIMIT].decode("utf-8", "backslashreplace")
        event["args_sha256"] = hashlib.sha256(raw).hexdigest()
        self._extras(event, extras)
        return self._finish(event)

    def approval(self, fields: Dict[str, Any], t_ns: int) -> Dict[str, Any]:
        """What happened after an Elevate (Recorder.record_approval): kind "approval", the
        call, the final decision and reason, and `approval` (method, outcome, required,
        approved_by). Linked to the Elevate's decision event by trace_id; masks and hash_args
        apply as to a decision."""
        uid = self.ids.next()
        event: Dict[str, Any] = {"kind": "approval", "id": uid, "trace_id": fields.get("trace_id") or uid,
                                 "timestamp": self.clock.format(t_ns)}
        for key in ("tool", "args", "role", "principal", "agent_attributes", "resource_attributes",
                    "decision", "reason", "rule", "approvals_required", "approval"):
            event[key] = fields.get(key)
        if event["args"] is None:
            event["args"] = {}
        event["policy_version"], event["policy_digest"] = self._policy(None)
        event["engine_version"] = __version__
        self._extras(event, fields.get("extras"))
        return self._finish(event)

    def policy_change(self, fields: Dict[str, Any], t_ns: int) -> Dict[str, Any]:
        """A reload of the policy (Recorder.record_policy_change): kind "policy_change", the
        outcome ("loaded", or "refused": the old policy stays in force), the digests of the
        policy before and of the one offered, where it came from and why."""
        event: Dict[str, Any] = {"kind": "policy_change", "id": self.ids.next(), "timestamp": self.clock.format(t_ns)}
        for key in ("outcome", "old_digest", "new_digest", "source", "reason"):
            event[key] = fields.get(key)
        event["engine_version"] = __version__
        return event

    def gap(self, lost: int, reason: str, first_ns: int, last_ns: int) -> Dict[str, Any]:
        """An account of `lost` events that could not be recorded: never a silent drop."""
        return {"kind": "gap", "id": self.ids.next(), "timestamp": self.clock.format(last_ns),
                "lost": lost, "reason": reason, "extras": {"first_lost": self.clock.format(first_ns)},
                "engine_version": __version__}

    @staticmethod
    def _extras(event: Dict[str, Any], extras: Any) -> None:
        if extras:
            extras = dict(extras)
            if "risk_score" in extras:
                event["risk_score"] = extras.pop("risk_score")
            if "principal_chain" in extras:   # the verified chain: label, issuer, jti, scopes
                event["principal_chain"] = extras.pop("principal_chain")
            if extras:
                event["extras"] = extras

    def _finish(self, event: Dict[str, Any]) -> Dict[str, Any]:
        opts = self.options
        if opts.parsed_masks:
            originals: list[Any] = []
            masked = apply_masks(event, opts.parsed_masks, originals)
            if originals and isinstance(event.get("reason"), str):
                event["reason"] = scrub(event["reason"], originals)  # the reason may quote a masked value
            for raw in ("args_raw", "context_raw"):  # refused bytes cannot be masked field by field:
                if event.pop(raw, None) is not None:  # with masks configured they are not kept (their hash is)
                    masked.append("/" + raw)
            if masked:
                event["masked"] = masked
        if opts.hash_args and "args" in event:
            event["args_sha256"] = hashlib.sha256(canonical(event.pop("args"))).hexdigest()
        return event
