"""The decision service (`callgate serve`): callgate's decisions over HTTP for callers in
any language, as the OpenID AuthZEN Authorization API 1.0 and as plain JSON in callgate's
own terms (docs/deploy.md).

Endpoints:

    POST /access/v1/evaluation            one AuthZEN access evaluation
    POST /access/v1/evaluations           a batch: execute_all | deny_on_first_deny | permit_on_first_permit
    GET  /.well-known/authzen-configuration   the PDP metadata document
    POST /v1/decide                       one call in callgate's terms (the plain endpoint)
    GET  /v1/status                       the policy's revision, when it was loaded, the last error
    GET  /metrics                         Prometheus text (with --telemetry)

Mapping an AuthZEN request onto a call. The callgate profile, `action.name` "call_tool":
`resource.type` must be "tool" and `resource.id` is the tool; `resource.properties.arguments`
the arguments and `resource.properties.attributes` the resource attributes; `subject.id` is
the principal, `subject.properties.role` the role, `subject.properties.attributes` the agent
attributes and `subject.properties.chain` a principal chain token (verified with the issuers
the service trusts); `action.properties.approvals` signed approvals for an Elevate; `context`
is the Context source. Any other action name is the generic profile, for PEPs that speak
AuthZEN's own vocabulary: the tool is `action.name` and its arguments `action.properties`;
the role is `subject.properties.role` when it is a string, else `subject.type`; the agent
attributes are ``{"type", "id", "properties"}`` of the subject and the resource attributes
the same of the resource.

The response's `decision` is true only for Allow; its `context` carries callgate's
`outcome` (Allow, Deny, Elevate), the `reason`, the deciding `rule`, `approvals_required`
and, for an approved call, `approved_by`. A request whose shape is wrong (not JSON, not
application/json, a required member missing or of the wrong type) is HTTP 400 with a one
line message (the API's error shape: the body is the message); a well-formed request that
cannot be decided (no role, a chain that does not verify, arguments the engine refuses) is
`decision: false` with the reason, never an allow. In a batch, an item that is malformed is
`decision: false` with ``context.error`` {status, message}, the others are decided.

`Decider` is the transport-free part (dicts in, dicts out); `make_app` wraps it in a
Starlette application; serve_cli runs it under uvicorn with N worker processes, each with
its own engine, sharing the ledger and the audit trail in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, Sequence

import orjson

from .errors import CallgateError
from .values import loads_exact

__all__ = ["BadRequest", "Call", "Decider", "Outcome", "SEMANTICS", "make_app", "parse_authzen", "parse_plain"]

log = logging.getLogger("callgate.service")

SEMANTICS = ("execute_all", "deny_on_first_deny", "permit_on_first_permit")
MAX_BODY = 1 << 20           # bytes of one request body
MAX_EVALUATIONS = 1000       # items in one batch
BODY_TIMEOUT = 10.0          # seconds a request body may take to arrive (a trickling client holds a worker)
_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")   # an X-Request-ID we echo and record: visible ASCII
_PLAIN_KEYS = frozenset(("tool", "arguments", "role", "principal", "agent_attributes", "resource_attributes",
                         "context", "chain", "approvals"))


class BadRequest(CallgateError):
    """A request whose shape is wrong: HTTP 400 with this one-line message."""

    status = 400


@dataclass
class Call:
    """One call in callgate's terms, as both endpoints map their requests onto it."""

    tool: str
    role: Optional[str]
    arguments: Any = None
    principal: Optional[str] = None
    agent_attributes: Optional[Mapping[str, Any]] = None
    resource_attributes: Optional[Mapping[str, Any]] = None
    context: Optional[Mapping[str, Any]] = None
    chain: Optional[str] = None
    approvals: Optional[list[Any]] = None
    undecidable: Optional[str] = None   # why this call is denied without asking the engine


@dataclass
class Outcome:
    """A decision as the service reports it."""

    decision: str
    reason: str
    rule: Optional[int] = None
    approvals_required: int = 0
    approved_by: tuple[str, ...] = ()
    error: Optional[dict[str, Any]] = field(default=None)

    @property
    def allowed(self) -> bool:
        """True only for Allow."""
        return self.decision == "Allow"

    def authzen(self) -> dict[str, Any]:
        """The AuthZEN access evaluation response."""
        context: dict[str, Any] = {"outcome": self.decision, "reason": self.reason, "rule": self.rule,
                                   "approvals_required": self.approvals_required}
        if self.approved_by:
            context["approved_by"] = list(self.approved_by)
        if self.error is not None:
            context["error"] = self.error
        return {"decision": self.allowed, "context": context}

    def plain(self) -> dict[str, Any]:
        """The plain endpoint's response."""
        return {"decision": self.decision, "allowed": self.allowed, "reason": self.reason, "rule": self.rule,
                "approvals_required": self.approvals_required, "approved_by": list(self.approved_by)}


def _deny(reason: str, error: Optional[dict[str, Any]] = None) -> Outcome:
    return Outcome("Deny", reason, error=error)


# ---------------------------------------------------------------- AuthZEN requests


def _entity(value: Any, what: str, required: Sequence[str]) -> dict[str, Any]:
    """An AuthZEN entity (subject, action, resource): an object whose `required` members are
    strings and whose `properties`, if present, is an object. BadRequest otherwise."""
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    for key in required:
        if key not in value:
            raise BadRequest(f"{what}.{key} is required")
        if not isinstance(value[key], str):
            raise BadRequest(f"{what}.{key} must be a string")
    props = value.get("properties")
    if props is not None and not isinstance(props, dict):
        raise BadRequest(f"{what}.properties must be a JSON object")
    return value


def _object(value: Any, what: str) -> Optional[dict[str, Any]]:
    """An optional JSON object member (None when absent or null)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return value


def parse_authzen(body: Any, where: str = "") -> Call:
    """The call an AuthZEN access evaluation request asks about (module docstring: the two
    profiles). BadRequest for a request of the wrong shape; unknown members are ignored (the
    spec's forward compatibility). A well-formed request that cannot be decided comes back
    with `undecidable` set."""
    if not isinstance(body, dict):
        raise BadRequest(f"{where or 'the request'} must be a JSON object")
    for key in ("subject", "action", "resource"):
        if key not in body:
            raise BadRequest(f"{where}{key} is required")
    subject = _entity(body["subject"], f"{where}subject", ("type", "id"))
    action = _entity(body["action"], f"{where}action", ("name",))
    resource = _entity(body["resource"], f"{where}resource", ("type", "id"))
    context = _object(body.get("context"), f"{where}context")
    sprops: dict[str, Any] = subject.get("properties") or {}
    aprops: dict[str, Any] = action.get("properties") or {}
    rprops: dict[str, Any] = resource.get("properties") or {}
    if action["name"] == "call_tool":
        role = sprops.get("role")
        call = Call(tool=resource["id"], role=role if isinstance(role, str) else None,
                    arguments=_object(rprops.get("arguments"), f"{where}resource.properties.arguments"),
                    principal=subject["id"],
                    agent_attributes=_object(sprops.get("attributes"), f"{where}subject.properties.attributes"),
                    resource_attributes=_object(rprops.get("attributes"), f"{where}resource.properties.attributes"),
                    context=context)
        if resource["type"] != "tool":
            call.undecidable = f"action call_tool needs resource.type 'tool', not {resource['type']!r}"
        elif role is None:
            call.undecidable = "subject.properties.role is missing: a call is decided for a role"
        elif not isinstance(role, str):
            call.undecidable = "subject.properties.role must be a string"
    else:
        role = sprops.get("role")
        call = Call(tool=action["name"], role=role if isinstance(role, str) else subject["type"],
                    arguments=aprops, principal=subject["id"],
                    agent_attributes={"type": subject["type"], "id": subject["id"], "properties": sprops},
                    resource_attributes={"type": resource["type"], "id": resource["id"], "properties": rprops},
                    context=context)
    chain = sprops.get("chain")
    if chain is not None:
        if isinstance(chain, str):
            call.chain = chain
        else:
            call.undecidable = call.undecidable or "subject.properties.chain must be a token (a string)"
    approvals = aprops.get("approvals") if action["name"] == "call_tool" else None
    if approvals is not None:
        if isinstance(approvals, list):
            call.approvals = approvals
        else:
            call.undecidable = call.undecidable or "action.properties.approvals must be a list of approval tokens"
    return call


def _merge(default: Any, item: Any) -> Any:
    """An evaluation's entity over the request's default: the item's object replaces the
    default whole, except that a required identifier (`type`, `id`, `name`) it lacks comes
    from the default (the certification scenario's entity-level rule)."""
    if item is None:
        return default
    if isinstance(item, dict) and isinstance(default, dict):
        merged = dict(item)
        for key in ("type", "id", "name"):
            if key not in merged and key in default:
                merged[key] = default[key]
        return merged
    return item


def batch_items(body: Any) -> tuple[Optional[list[Any]], str]:
    """(the evaluations with the defaults applied, or None for a single evaluation; the
    semantic). BadRequest for a batch of the wrong shape."""
    if not isinstance(body, dict):
        raise BadRequest("the request must be a JSON object")
    options = _object(body.get("options"), "options") or {}
    semantic = options.get("evaluations_semantic", "execute_all")
    if semantic not in SEMANTICS:
        raise BadRequest(f"options.evaluations_semantic must be one of {', '.join(SEMANTICS)}")
    items = body.get("evaluations")
    if items is None or items == []:
        return None, semantic
    if not isinstance(items, list):
        raise BadRequest("evaluations must be an array")
    if len(items) > MAX_EVALUATIONS:
        raise BadRequest(f"more than {MAX_EVALUATIONS} evaluations in one request")
    out = []
    for item in items:
        if not isinstance(item, dict):
            out.append(item)   # refused per item, with the others decided
            continue
        merged = dict(item)
        for key in ("subject", "action", "resource", "context"):
            value = _merge(body.get(key), item.get(key))
            if value is not None:
                merged[key] = value
        out.append(merged)
    return out, semantic


def parse_plain(body: Any) -> Call:
    """The call a plain-endpoint request names: {"tool", "role", "arguments", "principal",
    "agent_attributes", "resource_attributes", "context", "chain", "approvals"}; tool and role
    required, unknown keys refused (a misspelt key must not be silently dropped)."""
    if not isinstance(body, dict):
        raise BadRequest("the request must be a JSON object")
    unknown = sorted(set(body) - _PLAIN_KEYS)
    if unknown:
        raise BadRequest(f"unknown key {unknown[0]!r} (expected {', '.join(sorted(_PLAIN_KEYS))})")
    for key in ("tool", "role"):
        if not isinstance(body.get(key), str):
            raise BadRequest(f"{key} is required and must be a string")
    for key in ("principal", "chain"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise BadRequest(f"{key} must be a string")
    approvals = body.get("approvals")
    if approvals is not None and not isinstance(approvals, list):
        raise BadRequest("approvals must be a list of approval tokens")
    return Call(tool=body["tool"], role=body["role"], arguments=_object(body.get("arguments"), "arguments"),
                principal=body.get("principal"),
                agent_attributes=_object(body.get("agent_attributes"), "agent_attributes"),
                resource_attributes=_object(body.get("resource_attributes"), "resource_attributes"),
                context=_object(body.get("context"), "context"), chain=body.get("chain"), approvals=approvals)


# ---------------------------------------------------------------- deciding


class Decider:
    """One worker's decisions: an Engine (with its audit trail, if any), the approvers it
    trusts and the ledger approvals are spent in (callgate.ledger: in memory, or PostgreSQL
    shared with the other workers and replicas), and the principal-chain issuers it trusts.

    Approvals are checked and spent here, through callgate.approvals and the ledger, and
    what followed the Elevate is recorded as an approval event (Engine.record_approval); a
    call is allowed only once that record is taken."""

    def __init__(self, engine: Any, *, ledger: Any = None, keyring: Any = None, trust: Any = None,
                 telemetry: Any = None, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.ledger = ledger
        self.keyring = keyring
        self.trust = trust
        self.telemetry = telemetry
        self.clock = clock
        self.loaded_at = clock()
        self.revision: Optional[str] = None
        self.last_error: Optional[str] = None
        self._lock = threading.Lock()

    def decide(self, call: Call, trace_id: Optional[str] = None, via: str = "service",
               carrier: Optional[Mapping[str, str]] = None) -> Outcome:
        """Decide one call: never raises for anything the request holds; a call that cannot be
        decided is a Deny with the reason. carrier: the caller's W3C trace context headers,
        continued by the decision's span when telemetry is on."""
        tel = self.telemetry
        if tel is None:
            return self._decide(call, trace_id, via)
        started = time.perf_counter()
        with tel.span(call.tool, via, trace_id, carrier) as span:
            outcome = self._decide(call, trace_id, via)
            tel.decided(span, call.tool, outcome.decision, time.perf_counter() - started, call.principal)
        return outcome

    def _decide(self, call: Call, trace_id: Optional[str], via: str) -> Outcome:
        from .errors import RequestError

        if call.undecidable is not None:
            return _deny(f"the request cannot be decided: {call.undecidable}")
        assert call.role is not None
        engine = self.engine
        chain: Any = None
        principal = call.principal
        extras = {"via": via}
        try:
            if call.chain is not None:
                chain = self._verify_chain(call.chain)
                if isinstance(chain, Outcome):
                    return chain
            digest = engine.policy_digest
            d = engine.evaluate(call.tool, call.arguments, role=call.role, agent_attributes=call.agent_attributes,
                                resource_attributes=call.resource_attributes, context=call.context,
                                principal=principal, trace_id=trace_id, extras=extras,
                                **({"chain": chain} if chain is not None else {}))
        except RequestError as exc:
            return _deny(f"the request cannot be decided: {exc}")
        except (CallgateError, ValueError, TypeError) as exc:
            return _deny(f"the request cannot be decided: {exc}")
        outcome = Outcome(d.decision, d.reason, d.rule, d.approvals_required, tuple(getattr(d, "approved_by", ())))
        if d.decision == "Elevate" and call.approvals:
            bound = chain.label if chain is not None else (principal if principal is not None else call.role)
            return self._approve(call, outcome, bound, digest, trace_id, extras)
        return outcome

    def _verify_chain(self, token: str) -> Any:
        """The verified principals.Chain of `token`, or a Deny saying why it is refused."""
        if self.trust is None:
            return _deny("the principal chain is refused: this service trusts no chain issuer")
        from .principals import ChainError

        try:
            return self.trust.verify(token)
        except ChainError as exc:
            return _deny(f"the principal chain is refused: {exc}")

    def _approve(self, call: Call, held: Outcome, principal: str, digest: str, trace_id: Optional[str],
                 extras: dict[str, Any]) -> Outcome:
        """An Elevate with approvals: Allow when enough valid ones, spent in the ledger."""
        if self.keyring is None or self.ledger is None:
            return Outcome("Elevate", held.reason + "; approvals are not accepted by this service (no approvers "
                           "are trusted)", held.rule, held.approvals_required)
        from .approvals import Call as Bound, check_approvals
        from .errors import RequestError

        target = Bound(call.tool, call.arguments, call.role or "", principal, call.agent_attributes,
                       call.resource_attributes, call.context)
        try:
            verdict = check_approvals(call.approvals or [], target, policy_digest=digest, keyring=self.keyring,
                                      ledger=self.ledger, now=self.clock())
        except RequestError as exc:
            return Outcome("Elevate", f"{held.reason}; the approvals cannot be checked: {exc}", held.rule,
                           held.approvals_required)
        required = held.approvals_required
        refused = None
        if verdict.satisfies(required):
            refused = self.ledger.claim(verdict.nonces)
            if refused is None:
                reason = held.reason + verdict.reason_suffix(required)
                recorded = self.engine.record_approval(
                    tool=call.tool, args=call.arguments, role=call.role, principal=principal, decision="Allow",
                    reason=reason, rule=held.rule, approvals_required=required,
                    approval={"method": "token", "outcome": "approved", "required": required,
                              "approved_by": list(verdict.valid_approvers)},
                    trace_id=trace_id, agent_attributes=call.agent_attributes,
                    resource_attributes=call.resource_attributes, extras=extras)
                if not recorded:   # the host must not act on an approval the trail did not take
                    return _deny(held.reason + verdict.reason_suffix(required) +
                                 "; denied: the approval could not be recorded in the audit trail")
                return Outcome("Allow", reason, held.rule, 0, verdict.valid_approvers)
        return Outcome("Elevate", held.reason + verdict.reason_suffix(required, refused), held.rule, required)

    # ------------------------------------------------------------ request bodies

    def evaluation(self, body: Any, trace_id: Optional[str] = None,
                   carrier: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
        """An AuthZEN access evaluation response (BadRequest for a malformed request)."""
        return self.decide(parse_authzen(body), trace_id, "authzen", carrier).authzen()

    def evaluations(self, body: Any, trace_id: Optional[str] = None,
                    carrier: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
        """An AuthZEN access evaluations response: without evaluations (absent or empty), the
        single evaluation's response; otherwise one response per item, in order, cut after the
        first denial (deny_on_first_deny) or the first permit (permit_on_first_permit)."""
        items, semantic = batch_items(body)
        if items is None:
            return self.evaluation(body, trace_id, carrier)
        out = []
        for i, item in enumerate(items):
            tid = None if trace_id is None else f"{trace_id}#{i}"
            try:
                result = self.decide(parse_authzen(item, f"evaluations[{i}]."), tid, "authzen", carrier).authzen()
            except BadRequest as exc:
                result = _deny(f"evaluation {i} cannot be decided: {exc}",
                               {"status": 400, "message": str(exc)}).authzen()
            out.append(result)
            if semantic == "deny_on_first_deny" and not result["decision"]:
                break
            if semantic == "permit_on_first_permit" and result["decision"]:
                break
        return {"evaluations": out}

    def plain(self, body: Any, trace_id: Optional[str] = None,
              carrier: Optional[Mapping[str, str]] = None) -> dict[str, Any]:
        """The plain endpoint's response (BadRequest for a malformed request)."""
        return self.decide(parse_plain(body), trace_id, "plain", carrier).plain()

    def status(self) -> dict[str, Any]:
        """What /v1/status reports: the policy, its revision and when it was loaded, the last
        error (a refused bundle, say), the ledger and the audit trail."""
        engine = self.engine
        ledger: dict[str, Any] = {"kind": "none"}
        if self.ledger is not None:
            from .approvals import LedgerUnavailable

            try:   # the id approvals must be signed for (a shared ledger's is read from PostgreSQL)
                ledger_id: Optional[str] = self.ledger.ledger_id
            except LedgerUnavailable:
                ledger_id = None
            ledger = {"kind": type(self.ledger).__name__, "id": ledger_id,
                      "last_error": getattr(self.ledger, "last_error", None)}
        recorder = engine.recorder
        return {"policy": {"version": engine.policy_version, "digest": engine.policy_digest,
                           "revision": self.revision, "loaded_at": self.loaded_at, "last_error": self.last_error},
                "worker": os.getpid(), "ledger": ledger,
                "audit": None if recorder is None else {k: v for k, v in recorder.stats.items() if k != "shadow"}}

    def activated(self, revision: Optional[str], error: Optional[str] = None) -> None:
        """Note a new policy revision (error None) or a refused one (the previous stays)."""
        with self._lock:
            if error is None:
                self.revision, self.loaded_at, self.last_error = revision, self.clock(), None
            else:
                self.last_error = error


# ---------------------------------------------------------------- HTTP


def _request_id(headers: Mapping[str, str]) -> Optional[str]:
    rid = headers.get("x-request-id")
    return rid if rid is not None and _REQUEST_ID.fullmatch(rid) else None


def make_app(decider: Decider, *, public_url: str, metrics: Optional[Callable[[], tuple[bytes, str]]] = None,
             on_startup: Sequence[Callable[[], Any]] = (), on_shutdown: Sequence[Callable[[], Any]] = (),
             body_timeout: float = BODY_TIMEOUT, auth_token: Optional[str] = None) -> Any:
    """The Starlette application serving `decider` (module docstring: the endpoints).
    public_url: the PDP's base URL as callers reach it (the metadata document names it;
    never taken from a Host header). metrics: returns the Prometheus exposition (body,
    content type), or None for no /metrics. body_timeout: seconds a request body may take.
    auth_token: when given, every endpoint but the metadata document needs
    ``Authorization: Bearer <auth_token>`` (else HTTP 401, one line)."""
    import hmac

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Route

    base = public_url.rstrip("/")
    metadata = {"policy_decision_point": base,
                "access_evaluation_endpoint": f"{base}/access/v1/evaluation",
                "access_evaluations_endpoint": f"{base}/access/v1/evaluations"}

    def error(status: int, message: str, rid: Optional[str]) -> Response:
        headers = {"X-Request-ID": rid} if rid else {}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"
        return PlainTextResponse(message + "\n", status_code=status, headers=headers)

    expected = None if auth_token is None else ("Bearer " + auth_token).encode()

    def refused(request: Any) -> Optional[Response]:
        """A 401 for a request without the bearer token (None: it may go on)."""
        if expected is None:
            return None
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if hmac.compare_digest(given, expected):
            return None
        return error(401, "this service needs Authorization: Bearer <token>", _request_id(request.headers))

    async def body_of(request: Any) -> Any:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise BadRequest("the request's Content-Type must be application/json")
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            raise BadRequest(f"the request body is over {MAX_BODY} bytes")
        async def read() -> bytes:
            chunks, size = [], 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_BODY:
                    raise BadRequest(f"the request body is over {MAX_BODY} bytes")
                chunks.append(chunk)
            return b"".join(chunks)

        try:
            data = await asyncio.wait_for(read(), body_timeout)
        except asyncio.TimeoutError:
            raise BadRequest(f"the request body did not arrive within {body_timeout:g} s") from None
        if not data.strip():
            raise BadRequest("the request body is empty")
        try:
            return loads_exact(data)
        except ValueError as exc:
            raise BadRequest(f"the request body is not JSON: {exc}") from None

    traced = decider.telemetry is not None

    def endpoint(handle: Callable[[Any, Optional[str], Optional[Mapping[str, str]]], dict[str, Any]]) \
            -> Callable[[Any], Any]:
        # with an audit trail a decision may wait for its event to be durable: off the event loop
        offload = decider.engine.recorder is not None

        async def serve(request: Any) -> Response:
            rid = _request_id(request.headers)
            denied = refused(request)
            if denied is not None:
                return denied
            try:
                body = await body_of(request)
                trace = rid or uuid.uuid4().hex
                carrier = {k: request.headers[k] for k in ("traceparent", "tracestate") if k in request.headers} \
                    if traced else None
                result = await run_in_threadpool(handle, body, trace, carrier) if offload \
                    else handle(body, trace, carrier)
            except BadRequest as exc:
                return error(400, str(exc), rid)
            except Exception:   # never a traceback to the caller, never an allow
                log.exception("decision service: internal error")
                return error(500, "internal error: the request was not decided", rid)
            headers = {"X-Request-ID": rid} if rid else {}
            return Response(orjson.dumps(result), media_type="application/json", headers=headers)

        return serve

    async def configuration(request: Any) -> Response:
        return JSONResponse(metadata)

    async def status(request: Any) -> Response:
        return refused(request) or JSONResponse(decider.status())

    async def metrics_endpoint(request: Any) -> Response:
        assert metrics is not None
        denied = refused(request)
        if denied is not None:
            return denied
        body, ctype = metrics()
        return Response(body, headers={"Content-Type": ctype})

    routes = [Route("/access/v1/evaluation", endpoint(decider.evaluation), methods=["POST"]),
              Route("/access/v1/evaluations", endpoint(decider.evaluations), methods=["POST"]),
              Route("/v1/decide", endpoint(decider.plain), methods=["POST"]),
              Route("/.well-known/authzen-configuration", configuration, methods=["GET"]),
              Route("/v1/status", status, methods=["GET"])]
    if metrics is not None:
        routes.append(Route("/metrics", metrics_endpoint, methods=["GET"]))
    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        for start in on_startup:
            start()
        try:
            yield
        finally:
            for stop in on_shutdown:
                stop()

    return Starlette(routes=routes, lifespan=lifespan)
