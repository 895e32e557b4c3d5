"""The Streamable HTTP front: `callgate proxy --listen 127.0.0.1:PORT … (-- SERVER | --upstream URL)`.

A thin transport over the session core (session.py), one core per MCP session:

- Every HTTP request is checked first: its Host and Origin (MCP's transport rules: a page
  on another origin must not reach a local server), then its bearer JWT (jwt_auth.py): no
  token, no MCP. The token's identity decides each tools/call; the session (Mcp-Session-Id,
  minted here) is bound to the token's subject, so another principal cannot ride it.
- A POST carrying a tools/call is answered with an event stream when the client accepts
  one: what belongs to the call (its progress, the approval question of an Elevate) goes
  out on that stream, in order, before its result. Other requests are answered with JSON.
  What the server sends on its own (requests, notifications) goes out on the session's GET
  event stream.
- Limits: bodies (checked while reading), request heads and bodies that arrive too slowly,
  requests in progress per principal, sessions per principal and in all. When a limit on
  sessions is reached, the least recently used session that has no request in progress
  (of that principal, else of anyone) is closed to make room; a session with no request
  for `idle_timeout` seconds is closed too (an open GET stream does not keep it). A closed
  session's id, or that of a session whose server died, gets 404, and the client starts a
  new one.
- Protocol revisions (modern.py, docs/mcp.md "Protocol revisions"): `initialize` opens a
  session as above. A request of the 2026-07-28 revision (its version in params._meta)
  belongs to no session: it needs no Mcp-Session-Id and goes through its principal's
  stateless lane (one session core with `stateless=True`, one upstream), after its
  MCP-Protocol-Version, Mcp-Method, Mcp-Name and Mcp-Param-* headers were checked against
  its body (a mismatch is HTTP 400, -32020: what an intermediary routed by must be what is
  decided). Closing the event stream that answers such a request cancels it.
"""

from __future__ import annotations

import asyncio
import signal
import contextlib
import ipaddress
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from ..extras import require
from . import elevate
from . import jsonrpc as rpc
from . import modern
from .gate import Gate, Identity
from .jwt_auth import AuthError, JwtConfig
from .session import Action, Limits, Session, ToClient, ToServer
from .upstreams import HttpLink, StdioLink, UpstreamGone
from .wire import WireError, decode

__all__ = ["FrontLimits", "HttpFront", "JwtConfig", "serve"]
log = logging.getLogger("callgate.mcp")
PATH = "/mcp"
KEEPALIVE_S = 15.0
IDLE_TIMEOUT = 1800.0      # seconds a session may go without a request before it is closed
INCOMING_MAX = 1000        # messages kept for a GET stream nobody reads (the oldest are dropped)
AUDIT_TIMEOUT = 10.0       # seconds a forwarded call waits for its decision to be durable
PARSE_IN_THREAD = 256 * 1024   # bodies larger than this are parsed off the event loop


@dataclass(frozen=True)
class FrontLimits:
    """What one client, or all of them, may hold of the front (docs/mcp.md, "Limits").

    max_body: bytes in one POST body (refused with 413 while reading, before parsing);
    head_timeout, body_timeout: seconds for a request head, and for a body, to arrive;
    max_sessions, max_sessions_per_principal: open MCP sessions (each may be a server
    process); max_requests_per_principal: POSTs of one principal in progress at once;
    max_connections: open connections (beyond it new requests get 503)."""

    max_body: int = 4 * 1024 * 1024
    head_timeout: float = 10.0
    body_timeout: float = 30.0
    max_sessions: int = 64
    max_sessions_per_principal: int = 8
    max_requests_per_principal: int = 32
    max_connections: int = 512

    def __post_init__(self) -> None:
        for name in ("max_body", "max_sessions", "max_sessions_per_principal", "max_requests_per_principal",
                     "max_connections"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not (self.head_timeout > 0 and self.body_timeout > 0):
            raise ValueError("head_timeout and body_timeout must be positive numbers of seconds")


class _Post:
    """One POST waiting for its answer: what the session core sends with it as `origin`."""

    __slots__ = ("queue", "streaming", "open")

    def __init__(self, streaming: bool) -> None:
        self.queue: "asyncio.Queue[ToClient]" = asyncio.Queue()
        self.streaming = streaming    # answered with an event stream: intermediate messages go on it
        self.open = True


class FrontSession:
    """One MCP session: its core, the link to its server, its GET stream's queue. A
    `stateless` one is a principal's lane for requests of the 2026 revision (no session id
    is ever given out for it)."""

    def __init__(self, front: "HttpFront", principal: str, stateless: bool = False) -> None:
        self.id = secrets.token_urlsafe(24)
        self.front, self.principal, self.stateless = front, principal, stateless
        self.core = Session(front.gate, elevation=front.elevation, limits=front.session_limits, stateless=stateless)
        if front.command is not None:
            self.link: Any = StdioLink(front.command, self._from_server_line, self._server_gone)
        else:
            self.link = HttpLink(front.upstream_url, self._from_server_message, self._server_gone,  # type: ignore[arg-type]
                                 schemas=front.gate.schemas)
        self.incoming: "asyncio.Queue[bytes]" = asyncio.Queue(INCOMING_MAX)
        self.outbox: "asyncio.Queue[ToServer]" = asyncio.Queue()
        self.last_used = asyncio.get_running_loop().time()
        self.busy = 0                 # POSTs in progress
        self.dead: Optional[str] = None
        self.closed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        """Start the upstream link and the session's writer and timer tasks."""
        await self.link.start()
        self._tasks = [asyncio.create_task(self._write()), asyncio.create_task(self._expire())]

    # ---------------------------------------------------------------- carrying out actions

    def dispatch(self, actions: list[Action]) -> None:
        """Carry out the core's actions: to the server (in order), to the POST a message
        answers or belongs to, else to the session's GET stream."""
        for action in actions:
            if type(action) is ToServer:
                self.outbox.put_nowait(action)
                continue
            post = action.origin
            if isinstance(post, _Post) and post.open and (action.final or post.streaming):
                post.queue.put_nowait(action)
            elif not action.final:
                self.to_get_stream(action.data)
            # a final answer whose POST is gone (the client hung up) reaches nobody

    def to_get_stream(self, data: bytes) -> None:
        """Queue a message for the GET stream (the oldest is dropped when the queue is full)."""
        if self.incoming.full():
            self.incoming.get_nowait()
        self.incoming.put_nowait(data)

    async def _write(self) -> None:
        """Messages for the server, in order; a call whose decision must first be durable in
        the audit trail waits here, and what follows waits behind it."""
        gate = self.front.gate
        while True:
            action = await self.outbox.get()
            if action.mark is not None:
                why = await asyncio.to_thread(gate.wait_durable, action.mark, self.front.audit_timeout)
                if why is not None:
                    log.error("a call was not forwarded: its decision could not be made durable (%s)", why)
                    self.dispatch(self.core.not_durable(action.key, why))
                    continue
            try:
                await self.link.send(action.data)
            except UpstreamGone as exc:
                self._server_gone(str(exc))

    async def _expire(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            deadline = self.core.next_deadline()
            if deadline is not None and deadline <= self.core.clock():
                self.dispatch(self.core.tick())

    def _from_server_line(self, line: bytes) -> None:
        self.dispatch(self.core.from_server(line))

    def _from_server_message(self, msg: Any) -> None:
        self.dispatch(self.core.server_message(msg))

    def _server_gone(self, why: str) -> None:
        if self.dead is None:
            self.dead = why
            log.warning("session %s…: %s", self.id[:8], why)
            self.dispatch(self.core.server_gone(why))

    async def close(self, why: str = "the session was closed") -> None:
        """End the session (once): its requests in flight get errors, its upstream is closed."""
        if self.closed.is_set():
            return
        self.closed.set()
        for task in self._tasks:
            task.cancel()
        if self.dead is None:
            self.dead = why
            self.dispatch(self.core.server_gone(why))
        try:
            await self.link.close()
        except Exception as exc:  # one upstream failing to close must not stop the others
            log.warning("closing a session's upstream failed: %r", exc)


@dataclass
class _Principal:
    requests: int = 0
    sessions: set[str] = field(default_factory=set)


class HttpFront:
    """The proxy's Streamable HTTP front: authenticates each request (JWT), keeps one MCP
    session (and upstream) per mcp-session-id, within FrontLimits."""

    def __init__(self, gate: Gate, auth: JwtConfig, *, command: Optional[Sequence[str]] = None,
                 upstream: Optional[str] = None, idle_timeout: float = IDLE_TIMEOUT,
                 elevation: Optional[elevate.Elevation] = None, limits: Optional[FrontLimits] = None,
                 session_limits: Optional[Limits] = None, allowed_hosts: Sequence[str] = (),
                 allowed_origins: Sequence[str] = (), audit_timeout: float = AUDIT_TIMEOUT) -> None:
        if (command is None) == (upstream is None):
            raise ValueError("give exactly one upstream: a server command or a URL")
        if not idle_timeout > 0:
            raise ValueError("the session idle timeout must be a positive number of seconds")
        self.gate, self.auth = gate, auth
        self.command = list(command) if command is not None else None
        self.upstream_url = upstream
        self.idle_timeout = idle_timeout
        self.elevation = elevation if elevation is not None else elevate.Elevation()
        self.limits = limits if limits is not None else FrontLimits()
        self.session_limits = session_limits
        self.allowed_hosts = {h.lower() for h in allowed_hosts}
        self.allowed_origins = {o.lower().rstrip("/") for o in allowed_origins}
        self.audit_timeout = audit_timeout
        self.sessions: dict[str, FrontSession] = {}
        self.lanes: dict[str, FrontSession] = {}     # principal -> its stateless lane (2026 requests)
        self._principals: dict[str, _Principal] = {}

    # ---------------------------------------------------------------- the ASGI app

    def app(self) -> Any:
        """The ASGI application (Starlette): the MCP endpoint, and a reaper of idle sessions."""
        require("starlette", "the proxy's HTTP front", "mcp")
        from starlette.applications import Starlette
        from starlette.routing import Route

        @contextlib.asynccontextmanager
        async def lifespan(app: Any) -> Any:
            reaper = asyncio.create_task(self._reap())
            try:
                yield
            finally:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
                await self.close_all()  # no child server outlives the front

        routes = [Route(PATH, self.endpoint, methods=["GET", "POST", "DELETE"])]
        if self.gate.telemetry is not None and self.gate.telemetry.registry is not None:
            routes.append(Route("/metrics", self.metrics, methods=["GET"]))   # Prometheus scrapes
        return Starlette(routes=routes, lifespan=lifespan)

    async def metrics(self, request: Any) -> Any:
        """GET /metrics: the Prometheus text of the decisions' metrics (with --telemetry); the
        same Host and Origin checks as the MCP endpoint, no token (scrapers carry none)."""
        from starlette.responses import Response

        refused = self._refused(request)
        if refused is not None:
            return refused
        body, content_type = self.gate.telemetry.exposition()
        return Response(body, media_type=content_type)

    async def close_all(self) -> None:
        """Close every session and lane (and their upstreams)."""
        for session in [*self.sessions.values(), *self.lanes.values()]:
            await self._close(session)

    async def _close(self, session: FrontSession, why: str = "the session was closed") -> None:
        """Forget the session (its id is unknown from now on) and close its upstream."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        if self.lanes.get(session.principal) is session:
            del self.lanes[session.principal]
        owner = self._principals.get(session.principal)
        if owner is not None:
            owner.sessions.discard(session.id)
            self._forget(session.principal)
        await session.close(why)

    def _forget(self, principal: str) -> None:
        owner = self._principals.get(principal)
        if owner is not None and not owner.sessions and not owner.requests:
            del self._principals[principal]

    async def _reap(self) -> None:
        """Close the sessions with no request for idle_timeout seconds, and dead ones."""
        interval = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            now = asyncio.get_running_loop().time()
            for session in [*self.sessions.values(), *self.lanes.values()]:
                if session.busy == 0 and (session.dead is not None or now - session.last_used > self.idle_timeout):
                    try:
                        await self._close(session, "the session was idle too long")
                    except Exception as exc:  # keep reaping
                        log.warning("expiring a session failed: %r", exc)

    # ---------------------------------------------------------------- checks before MCP

    def _refused(self, request: Any) -> Any:
        """403 for a Host or Origin this front does not serve (DNS rebinding, cross-site pages)."""
        from starlette.responses import JSONResponse

        host = (request.headers.get("host") or "").lower()
        if self.allowed_hosts and host not in self.allowed_hosts:
            log.warning("refused a request for host %r from %s", host, _peer(request))
            return JSONResponse(_err(None, rpc.INVALID_REQUEST, f"Forbidden: host {host!r} is not served here"), 403)
        origin = request.headers.get("origin")
        if origin is not None and origin.lower().rstrip("/") not in self.allowed_origins:
            log.warning("refused a request from origin %r (%s)", origin, _peer(request))
            return JSONResponse(_err(None, rpc.INVALID_REQUEST, f"Forbidden: origin {origin!r} is not allowed"), 403)
        return None

    async def endpoint(self, request: Any) -> Any:
        """The MCP endpoint (GET, POST, DELETE): Host/Origin and token checks, per-principal
        limits, then the method's handling."""
        from starlette.responses import JSONResponse, Response

        refused = self._refused(request)
        if refused is not None:
            return refused
        try:
            identity = self.auth.verify(request.headers.get("authorization"))
        except AuthError as exc:
            log.warning("401 for %s %s from %s: %s", request.method, PATH, _peer(request), exc)
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"Unauthorized: {exc}"}},
                                status_code=401, headers={"www-authenticate": 'Bearer error="invalid_token"'})
        principal = identity.principal or ""
        owner = self._principals.setdefault(principal, _Principal())
        if owner.requests >= self.limits.max_requests_per_principal:
            return JSONResponse(_err(None, rpc.SERVER_GONE, "too many requests in progress for this principal"), 429)
        owner.requests += 1
        try:
            if request.method == "POST":
                return await self.post(request, identity)
            session, problem = self._session(request, identity)
            if problem is not None:
                return problem
            if request.method == "DELETE":
                await self._close(session)
                return Response(status_code=200)
            return self._event_stream(session)
        finally:
            owner.requests -= 1
            self._forget(principal)

    def _session(self, request: Any, identity: Identity) -> tuple[Any, Any]:
        from starlette.responses import JSONResponse

        sid = request.headers.get("mcp-session-id")
        if not sid:
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"), 400)
        session = self.sessions.get(sid)
        if session is not None and session.dead is not None and session.busy == 0:
            asyncio.get_running_loop().create_task(self._close(session))   # its server is gone: start anew
            session = None
        if session is None:
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Session not found"), 404)
        if session.principal != identity.principal:
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Forbidden: this session belongs to another principal"), 403)
        return session, None

    async def _body(self, request: Any) -> tuple[Optional[bytes], Any]:
        """The POST body, read within the size and time limits: (body, None) or (None, response)."""
        from starlette.responses import JSONResponse

        limit = self.limits.max_body
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return None, JSONResponse(_err(None, rpc.TOO_LARGE, f"message larger than {limit} bytes"), 413)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.body_timeout
        body = bytearray()
        chunks = request.stream().__aiter__()
        while True:
            left = deadline - loop.time()
            try:
                if left <= 0:
                    raise asyncio.TimeoutError
                chunk = await asyncio.wait_for(chunks.__anext__(), left)
            except StopAsyncIteration:
                return bytes(body), None
            except asyncio.TimeoutError:
                log.warning("408: a body from %s did not arrive within %g s", _peer(request), self.limits.body_timeout)
                return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Request Timeout: the body did not "
                                               f"arrive within {self.limits.body_timeout:g} s"), 408)
            body += chunk
            if len(body) > limit:
                return None, JSONResponse(_err(None, rpc.TOO_LARGE, f"message larger than {limit} bytes"), 413)

    async def post(self, request: Any, identity: Identity) -> Any:
        """A POST: one message (or batch) for its session (a new one for initialize); answered
        as JSON, as an event stream (a tools/call, when the client accepts one), or 202 when
        nothing answers it. A request of the 2026 revision needs no session (_modern_post)."""
        from starlette.responses import JSONResponse

        body, problem = await self._body(request)
        if problem is not None:
            return problem
        assert body is not None
        try:
            msg = await asyncio.to_thread(decode, body) if len(body) > PARSE_IN_THREAD else decode(body)
        except WireError as exc:
            return JSONResponse(_err(None, rpc.PARSE_ERROR, f"Parse error: {exc}"), 400)
        del body
        if modern.is_modern(msg):
            return await self._modern_post(request, identity, msg)
        headers = {}
        if _is_initialize(msg):
            session, problem = await self._new_session(identity)
            if problem is not None:
                return problem
            headers["mcp-session-id"] = session.id
        else:
            session, problem = self._session(request, identity)
            if problem is not None:
                return problem
        return await self._relay(request, session, identity, msg, headers)

    async def _modern_post(self, request: Any, identity: Identity, msg: dict[str, Any]) -> Any:
        """A request of the 2026 revision: its headers checked against its body (400 and
        -32020 when they disagree), then relayed through the principal's stateless lane."""
        from starlette.responses import JSONResponse

        folded = modern.fold_headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw)
        params = msg.get("params")
        name = params.get("name") if isinstance(params, dict) and msg.get("method") == "tools/call" else None
        schema = self.gate.schemas.get(name) if isinstance(name, str) else None
        refused = modern.check_headers(folded, msg, schema)
        if refused is not None:
            log.warning("refused a 2026 request from %s: %s", _peer(request), refused.message)
            return JSONResponse(refused.error(msg.get("id")), refused.http_status)
        lane, problem = await self._lane(identity)
        if problem is not None:
            return problem
        return await self._relay(request, lane, identity, msg, {})

    async def _lane(self, identity: Identity) -> tuple[Any, Any]:
        """The principal's stateless lane, started on its first 2026 request (a dead one is
        replaced)."""
        from starlette.responses import JSONResponse

        principal = identity.principal or ""
        lane = self.lanes.get(principal)
        if lane is not None and lane.dead is not None and lane.busy == 0:
            await self._close(lane)
            lane = None
        if lane is None:
            # a lane is an upstream like a session: it counts against --max-sessions
            if len(self.sessions) + len(self.lanes) >= self.limits.max_sessions and \
                    not await self._make_room([*self.sessions.values(), *self.lanes.values()]):
                return None, JSONResponse(_err(None, rpc.SERVER_GONE, "too many open sessions, all busy"), 503)
            lane = FrontSession(self, principal, stateless=True)
            try:
                await lane.start()
            except UpstreamGone as exc:
                await lane.close(str(exc))
                return None, JSONResponse(_err(None, rpc.SERVER_GONE, str(exc)), 502)
            self.lanes[principal] = lane
        return lane, None

    async def _relay(self, request: Any, session: FrontSession, identity: Identity, msg: Any,
                     headers: dict[str, str]) -> Any:
        """Hand one message to the session's core and answer the POST with what comes back."""
        from starlette.responses import Response

        accepts_stream = "text/event-stream" in (request.headers.get("accept") or "")
        post = _Post(streaming=accepts_stream and _streams(msg))
        session.busy += 1
        try:
            session.dispatch(session.core.client_message(msg, identity, origin=post))
            if not Session.expects_answer(msg):
                post.open = False
                return Response(status_code=202, headers=headers)
            if post.streaming:
                return self._answer_stream(session, post, headers)
            while True:
                try:
                    action = await post.queue.get()
                except asyncio.CancelledError:   # the client hung up: a 2026 request is cancelled so
                    if session.stateless:
                        session.dispatch(session.core.abandoned(post))
                    raise
                if action.final:
                    status = _status_of(action.data) if session.stateless else 200
                    return Response(action.data, status_code=status, media_type="application/json", headers=headers)
        finally:
            if not post.streaming:
                self._done(session, post)

    def _done(self, session: FrontSession, post: _Post) -> None:
        post.open = False
        session.busy -= 1
        session.last_used = asyncio.get_running_loop().time()

    def _answer_stream(self, session: FrontSession, post: _Post, headers: dict[str, str]) -> Any:
        """An event stream answering a POST: what belongs to the call, then its answer."""
        from starlette.responses import StreamingResponse

        async def events() -> Any:   # the POST's count on the session ends with the stream
            answered = False
            try:
                while True:
                    try:
                        action = await asyncio.wait_for(post.queue.get(), KEEPALIVE_S)
                    except asyncio.TimeoutError:
                        yield b": keepalive\n\n"
                        continue
                    yield b"event: message\ndata: " + action.data + b"\n\n"
                    if action.final:
                        answered = True
                        return
            finally:
                self._done(session, post)
                if not answered and session.stateless:   # 2026: a closed stream cancels its request
                    session.dispatch(session.core.abandoned(post))

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", **headers})

    async def _new_session(self, identity: Identity) -> tuple[Any, Any]:
        """A session for an initialize: room is made by closing the least recently used idle
        session of the same principal (at its limit), else of anyone (at the total limit)."""
        from starlette.responses import JSONResponse

        principal = identity.principal or ""
        mine = [s for s in self.sessions.values() if s.principal == principal]
        if len(mine) >= self.limits.max_sessions_per_principal and not await self._make_room(mine):
            return None, JSONResponse(_err(None, rpc.SERVER_GONE, "too many open sessions for this principal, all "
                                           "busy; close one (DELETE)"), 503)
        if len(self.sessions) + len(self.lanes) >= self.limits.max_sessions and \
                not await self._make_room([*self.sessions.values(), *self.lanes.values()]):
            return None, JSONResponse(_err(None, rpc.SERVER_GONE, "too many open sessions, all busy"), 503)
        session = FrontSession(self, principal)
        try:
            await session.start()
        except UpstreamGone as exc:
            await session.close(str(exc))
            return None, JSONResponse(_err(None, rpc.SERVER_GONE, str(exc)), 502)
        self.sessions[session.id] = session
        self._principals.setdefault(principal, _Principal()).sessions.add(session.id)
        return session, None

    async def _make_room(self, candidates: list[FrontSession]) -> bool:
        idle = [s for s in candidates if s.busy == 0]
        if not idle:
            return False
        oldest = min(idle, key=lambda s: s.last_used)
        log.info("closing session %s… (least recently used) to make room for a new one", oldest.id[:8])
        await self._close(oldest, "the session was closed to make room for a newer one")
        return True

    def _event_stream(self, session: FrontSession) -> Any:
        """The session's GET stream: what the server sends on its own, and the front's own
        messages that belong to no POST. It does not keep the session from going idle."""
        from starlette.responses import StreamingResponse

        async def events() -> Any:
            queue = session.incoming
            closed = asyncio.ensure_future(session.closed.wait())
            getter: Optional[asyncio.Future[bytes]] = None
            try:
                while not session.closed.is_set():
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getter, closed}, timeout=KEEPALIVE_S,
                                                 return_when=asyncio.FIRST_COMPLETED)
                    if getter not in done:
                        getter.cancel()   # a cancelled get() leaves its message in the queue
                        if not done:
                            yield b": keepalive\n\n"
                        continue
                    yield b"event: message\ndata: " + getter.result() + b"\n\n"
            finally:   # the client went away, or the session was closed
                closed.cancel()
                if getter is not None:
                    getter.cancel()   # must not take a message meant for the next stream

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache", "mcp-session-id": session.id})


def _is_initialize(msg: Any) -> bool:
    return isinstance(msg, dict) and msg.get("method") == "initialize" and "id" in msg


def _status_of(data: bytes) -> int:
    """The HTTP status of a 2026 answer: an error's own (400 for invalid params or an
    unsupported version, 404 for an unknown method: what the SDK's servers send), else 200."""
    if b'"error"' not in data:
        return 200
    try:
        msg = decode(data)
    except WireError:
        return 200
    err = msg.get("error") if isinstance(msg, dict) and "result" not in msg else None
    return modern.http_status(err.get("code")) if isinstance(err, dict) else 200


def _streams(msg: Any) -> bool:
    """Whether a POST is answered with an event stream (when the client accepts one): a
    tools/call (its progress and approval question come before its result) and a 2026
    subscriptions/listen (its notifications are the stream)."""
    return isinstance(msg, dict) and msg.get("method") in ("tools/call", "subscriptions/listen") and "id" in msg


def _peer(request: Any) -> str:
    client = getattr(request, "client", None)
    return f"{client.host}:{client.port}" if client else "?"


def _err(id_: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def parse_listen(listen: str) -> tuple[str, int]:
    """--listen HOST:PORT as (host, port) (brackets of an IPv6 host removed); ValueError otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8765), not {listen!r}")
    return host.strip("[]"), int(port)


def default_hosts_and_origins(host: str, port: int) -> tuple[list[str], list[str]]:
    """What a front listening on host:port serves by default: its own address (and, on a
    loopback address, the other loopback names); any Host on a wildcard address."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_unspecified:
        return [], []
    names = {host}
    if host == "localhost" or (ip is not None and ip.is_loopback):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    hosts = sorted(f"[{n}]:{port}" if ":" in n and not n.startswith("[") else f"{n}:{port}" for n in names)
    return hosts, [f"http://{h}" for h in hosts] + [f"https://{h}" for h in hosts]


def _protocol_class(head_timeout: float) -> Any:
    """uvicorn's h11 protocol with a deadline for every request head: a connection that has
    not sent a whole head within `head_timeout` seconds of starting one (or of connecting)
    is closed, so idle and trickling sockets cannot pile up."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class HeadDeadline(H11Protocol):
        _head_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            self._arm()

        def _arm(self) -> None:
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(head_timeout, self._head_expired)

        def _disarm(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.conn.their_state is not h11.IDLE:
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.conn.their_state is h11.IDLE:
                self._arm()

        def connection_lost(self, exc: Optional[Exception]) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _head_expired(self) -> None:
            self._head_timer = None
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                self.transport.close()

    return HeadDeadline


def _raise_fd_limit() -> None:
    """As many file descriptors as the hard limit allows: each connection and session uses some."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass


def serve(gate: Gate, auth: JwtConfig, listen: str, *, command: Optional[Sequence[str]] = None,
          upstream: Optional[str] = None, idle_timeout: float = IDLE_TIMEOUT,
          elevation: Optional[elevate.Elevation] = None, limits: Optional[FrontLimits] = None,
          session_limits: Optional[Limits] = None, allowed_hosts: Sequence[str] = (),
          allowed_origins: Sequence[str] = ()) -> int:
    """Run the HTTP front until interrupted; the exit status."""
    require("uvicorn", "the proxy's HTTP front", "mcp")
    require("starlette", "the proxy's HTTP front", "mcp")
    import uvicorn

    host, port = parse_listen(listen)
    hosts, origins = default_hosts_and_origins(host, port)
    limits = limits if limits is not None else FrontLimits()
    front = HttpFront(gate, auth, command=command, upstream=upstream, idle_timeout=idle_timeout,
                      elevation=elevation, limits=limits, session_limits=session_limits,
                      allowed_hosts=[*hosts, *allowed_hosts] if hosts or allowed_hosts else [],
                      allowed_origins=[*origins, *allowed_origins])
    _raise_fd_limit()
    config = uvicorn.Config(front.app(), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on", http=_protocol_class(limits.head_timeout),
                            limit_concurrency=limits.max_connections, timeout_keep_alive=5)
    server = uvicorn.Server(config)
    if gate.watcher is not None and hasattr(signal, "SIGHUP"):   # SIGHUP: reload the policy now
        signal.signal(signal.SIGHUP, lambda signum, frame: gate.watcher.reload("SIGHUP"))
    target = " ".join(command) if command else upstream
    log.warning("serving MCP on http://%s:%d%s -> %s", host, port, PATH, target)
    server.run()
    return 0 if server.started else 1
