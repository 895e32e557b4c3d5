"""The Streamable HTTP front: `callgate proxy --listen 127.0.0.1:PORT … (-- SERVER | --upstream URL)`.

Every HTTP request is authenticated first (a bearer JWT, jwt_auth.py): no token, no MCP.
The identity in the token decides each tools/call; the session (Mcp-Session-Id, minted
here) is bound to the token's subject, so another principal cannot ride it. Requests are
answered with JSON; what the server sends on its own (sampling, elicitation, roots,
notifications; for an HTTP upstream also what it sends on its own GET event stream) is
delivered, in order, on the session's GET event stream; the client's answers to the
server's requests go back to the server. A session idle for `idle_timeout` seconds (no
request in progress, no event stream open) is closed with its upstream: its id then gets
404, the MCP answer for an unknown session, and the client initializes a new one.
An Elevate the client may approve is asked on the session's GET event stream
(elicitation/create, elevate.py); the POST of the call waits for the answer.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import secrets
import sys
import uuid
from typing import Any, Optional, Sequence

import orjson

from . import elevate
from . import jsonrpc as rpc
from .gate import MODERN_VERSION_KEY, Gate, Identity, Verdict, denial_result, without_approvals
from .jwt_auth import AuthError, JwtConfig
from .proxy import MAX_MESSAGE, RECENT_IDS, reserved_meta
from .upstreams import HttpUpstream, StdioUpstream, UpstreamGone

__all__ = ["HttpFront", "JwtConfig", "serve"]
PATH = "/mcp"
KEEPALIVE_S = 15.0
MAX_SESSIONS = 64   # each stdio session is a process: an authenticated client cannot fork without bound
IDLE_TIMEOUT = 1800.0  # seconds a session may sit idle before it is closed


class Session:
    def __init__(self, upstream: Any, principal: tuple) -> None:
        self.id = secrets.token_urlsafe(24)
        self.upstream = upstream
        self.principal = principal
        self.recent: collections.OrderedDict = collections.OrderedDict()
        self.inflight: set = set()
        self.lock = asyncio.Lock()   # serializes the pins refresh
        self.last_active = asyncio.get_running_loop().time()
        self.busy = 0                # requests in progress and event streams open
        self.closed = asyncio.Event()
        self.client_caps: Any = None             # declared at initialize
        self.client_protocol: Optional[str] = None
        self.elicits: dict[tuple, asyncio.Future] = {}   # our elicitation id -> its answer
        self.held: dict[tuple, tuple] = {}               # a call waiting for approval -> our elicitation id

    def idle_for(self, now: float) -> float:
        return 0.0 if self.busy else now - self.last_active

    @contextlib.contextmanager
    def active(self):
        self.busy += 1
        try:
            yield
        finally:
            self.busy -= 1
            self.last_active = asyncio.get_running_loop().time()

    def claim_id(self, key: tuple) -> bool:
        """False when the id is in flight or was answered recently in this session."""
        if key in self.inflight or key in self.recent:
            return False
        self.inflight.add(key)
        return True

    def release_id(self, key: tuple) -> None:
        self.inflight.discard(key)
        self.recent[key] = None
        if len(self.recent) > RECENT_IDS:
            self.recent.popitem(last=False)


def _principal(identity: Identity) -> tuple:
    return (identity.principal,) if identity.principal else ("role", identity.role)


class HttpFront:
    def __init__(self, gate: Gate, auth: JwtConfig, *, command: Optional[Sequence[str]] = None,
                 upstream: Optional[str] = None, max_body: int = MAX_MESSAGE,
                 idle_timeout: float = IDLE_TIMEOUT, elevation: Optional[elevate.Elevation] = None) -> None:
        if (command is None) == (upstream is None):
            raise ValueError("give exactly one upstream: a server command or a URL")
        if not idle_timeout > 0:
            raise ValueError("the session idle timeout must be a positive number of seconds")
        self.idle_timeout = idle_timeout
        self.elevation = elevation if elevation is not None else elevate.Elevation()
        self.gate, self.auth = gate, auth
        self.command, self.upstream_url, self.max_body = command, upstream, max_body
        self.sessions: dict[str, Session] = {}
        self._tasks: set = set()   # sessions being closed in the background

    # ---------------------------------------------------------------- the ASGI app

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.routing import Route

        @contextlib.asynccontextmanager
        async def lifespan(app: Any):
            reaper = asyncio.create_task(self._reap())
            try:
                yield
            finally:
                reaper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reaper
                await self.close_all()  # no child server outlives the front

        return Starlette(routes=[Route(PATH, self.endpoint, methods=["GET", "POST", "DELETE"])], lifespan=lifespan)

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self._close(session)

    async def _close(self, session: Session) -> None:
        """Forget the session (its id is unknown from now on) and close its upstream."""
        if self.sessions.get(session.id) is session:
            del self.sessions[session.id]
        if not session.closed.is_set():
            session.closed.set()
            try:
                await session.upstream.close()
            except Exception as exc:  # one upstream failing to close must not stop the others
                print(f"callgate proxy: closing a session's upstream failed: {exc!r}", file=sys.stderr)

    def _expired(self) -> list[Session]:
        now = asyncio.get_running_loop().time()
        return [s for s in self.sessions.values() if s.idle_for(now) > self.idle_timeout]

    async def _reap(self) -> None:
        """Close the sessions idle longer than idle_timeout."""
        interval = min(max(self.idle_timeout / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(interval)
            try:
                for session in self._expired():
                    await self._close(session)
            except Exception as exc:  # keep reaping
                print(f"callgate proxy: expiring sessions failed: {exc!r}", file=sys.stderr)

    async def endpoint(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response

        try:
            identity = self.auth.verify(request.headers.get("authorization"))
        except AuthError as exc:
            return JSONResponse({"jsonrpc": "2.0", "id": None, "error": {"code": -32001, "message": f"Unauthorized: {exc}"}},
                                status_code=401, headers={"www-authenticate": 'Bearer error="invalid_token"'})
        if request.method == "POST":
            return await self.post(request, identity)
        session, problem = self._session(request, identity)
        if problem is not None:
            return problem
        if request.method == "DELETE":
            await self._close(session)
            return Response(status_code=200)
        return self._event_stream(session)

    def _session(self, request: Any, identity: Identity) -> tuple[Any, Any]:
        from starlette.responses import JSONResponse

        sid = request.headers.get("mcp-session-id")
        if not sid:
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Bad Request: Mcp-Session-Id header is required"), 400)
        session = self.sessions.get(sid)
        if session is not None and session.idle_for(asyncio.get_running_loop().time()) > self.idle_timeout:
            self.sessions.pop(sid, None)   # expired: the reaper has not come round to it yet
            task = asyncio.create_task(self._close(session))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            session = None
        if session is None:
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Session not found"), 404)
        if session.principal != _principal(identity):
            return None, JSONResponse(_err(None, rpc.INVALID_REQUEST, "Forbidden: this session belongs to another principal"), 403)
        return session, None

    async def post(self, request: Any, identity: Identity) -> Any:
        from starlette.responses import JSONResponse, Response

        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body:
                return JSONResponse(_err(None, rpc.TOO_LARGE, f"message larger than {self.max_body} bytes"), 413)
        try:
            msg = orjson.loads(body)
        except orjson.JSONDecodeError:
            return JSONResponse(_err(None, rpc.PARSE_ERROR, "Parse error: not valid JSON"), 400)
        del body
        batch = isinstance(msg, list)
        items = msg if batch else [msg]
        if not items:
            return JSONResponse(_err(None, rpc.INVALID_REQUEST, "Invalid Request: empty batch"), 400)
        headers = {}
        if any(isinstance(m, dict) and m.get("method") == "initialize" for m in items):
            if batch:
                return JSONResponse(_err(None, rpc.INVALID_REQUEST, "initialize must not be batched"), 400)
            for expired in self._expired():
                await self._close(expired)
            if len(self.sessions) >= MAX_SESSIONS:
                return JSONResponse(_err(msg.get("id"), rpc.SERVER_GONE, "too many open sessions; close one (DELETE)"), 503)
            upstream = StdioUpstream(self.command) if self.command else HttpUpstream(self.upstream_url)  # type: ignore[arg-type]
            upstream.on_list_changed = self.gate.mark_stale
            try:
                await upstream.start()
            except UpstreamGone as exc:
                return JSONResponse(_err(msg.get("id"), rpc.SERVER_GONE, str(exc)), 502)
            session = Session(upstream, _principal(identity))
            self.sessions[session.id] = session
            headers["mcp-session-id"] = session.id
        else:
            session, problem = self._session(request, identity)
            if problem is not None:
                return problem
        with session.active():
            answers = [a for a in [await self._one(session, item, identity, batch) for item in items] if a is not None]
        if not answers:
            return Response(status_code=202, headers=headers)
        content = answers if batch else answers[0]
        return Response(orjson.dumps(content), media_type="application/json", headers=headers)

    async def _one(self, session: Session, msg: Any, identity: Identity, batch: bool = False) -> Optional[dict]:
        """Relay one message; the answer for the client, or None (notification, response)."""
        kind = rpc.kind(msg)
        upstream = session.upstream
        if kind == "response" and self._answer_to_us(session, msg):
            return None
        if kind == "notification" and msg["method"] == "notifications/cancelled" and self._cancel_held(session, msg):
            return None
        if kind in ("notification", "response"):
            try:
                await upstream.send(orjson.dumps(msg))
            except UpstreamGone:
                pass
            return None
        if kind != "request":
            id_ = msg.get("id") if isinstance(msg, dict) else None
            return _err(id_ if rpc.id_key(id_) else None, rpc.INVALID_REQUEST, "Invalid Request")
        key = rpc.id_key(msg["id"])
        if key is None:
            return _err(None, rpc.INVALID_REQUEST, "Invalid Request: the id must be a string or an integer, not null")
        if not session.claim_id(key):
            return _err(msg["id"], rpc.INVALID_REQUEST, "Invalid Request: this id was already used in this session")
        try:
            method = msg["method"]
            if method == "initialize" and isinstance(msg.get("params"), dict):
                session.client_caps = msg["params"].get("capabilities")
                version = msg["params"].get("protocolVersion")
                session.client_protocol = version if isinstance(version, str) else None
            if method == "tools/call":
                params = msg.get("params")
                if isinstance(params, dict) and isinstance(params.get("name"), str) and \
                        self.gate.needs_definitions(params["name"]):
                    await self._refresh(session, params)
                verdict = self.gate.decide(params, identity)
                if not verdict.allowed:
                    reason = await self._not_allowed(session, msg, key, verdict, identity, batch)
                    if reason is not None:
                        return {"jsonrpc": "2.0", "id": msg["id"], "result": denial_result(reason, params)}
                msg = without_approvals(msg)   # approvals are for the gate: the server gets the call
            try:
                answer = await upstream.request(msg, orjson.dumps(msg))
            except (UpstreamGone, asyncio.TimeoutError) as exc:
                return _err(msg["id"], rpc.SERVER_GONE, str(exc) or "the MCP server did not answer in time")
            if method == "tools/list" and "result" in answer:
                filtered = self.gate.filter_list_result(answer["result"], identity.role)
                if filtered is not None:
                    answer = dict(answer, result=filtered)
            elif method == "initialize" and isinstance(answer.get("result"), dict):
                pass  # capabilities pass through unchanged
            return answer
        finally:
            session.release_id(key)

    # ---------------------------------------------------------------- Elevate

    async def _not_allowed(self, session: Session, msg: dict, key: tuple, v: Verdict, identity: Identity,
                           batch: bool) -> Optional[str]:
        """The reason a call does not run, or None when the user approved it (asked with an
        elicitation on the session's event stream while this POST waits)."""
        if v.decision != "Elevate":
            return v.reason
        params = msg.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        refusal = elevate.why_not(v, elicitation=elevate.can_elicit(session.client_caps), elevation=self.elevation,
                                  batch=batch, modern=isinstance(meta, dict) and MODERN_VERSION_KEY in meta)
        if refusal is not None:
            outcome, why = refusal
            return elevate.denial(v, identity, self.gate, outcome, why, elevate.method_for(v, outcome))
        eid = f"callgate-elicit-{uuid.uuid4().hex}"
        ekey = rpc.id_key(eid)
        answer: asyncio.Future = asyncio.get_running_loop().create_future()
        session.elicits[ekey] = answer
        session.held[key] = ekey
        session.upstream.to_client(elevate.elicitation_request(eid, v, session.client_protocol))
        try:
            response = await asyncio.wait_for(answer, self.elevation.timeout)
            outcome, why = elevate.outcome_of(response) if response is not _CANCELLED else \
                (elevate.CANCELLED, "the client cancelled the call")
        except asyncio.TimeoutError:
            outcome, why = elevate.TIMEOUT, f"no answer within {self.elevation.timeout:g} s"
        finally:
            session.elicits.pop(ekey, None)
            session.held.pop(key, None)
        if outcome in (elevate.TIMEOUT, elevate.CANCELLED):
            session.upstream.to_client({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                        "params": {"requestId": eid, "reason": why}})
        if outcome == elevate.APPROVED:
            if elevate.record_outcome(self.gate, v, identity, method="elicitation", outcome=outcome,
                                      reason=elevate.approved_reason(v, identity)):
                return None
            outcome, why = elevate.ERROR, "the audit trail could not record the approval"
        return elevate.denial(v, identity, self.gate, outcome, why, "elicitation")

    @staticmethod
    def _answer_to_us(session: Session, msg: dict) -> bool:
        """The client's answer to one of the front's elicitation requests (a late one, after
        the timeout, is dropped: it is not the server's)."""
        id_ = msg.get("id")
        if not (isinstance(id_, str) and id_.startswith("callgate-elicit-")):
            return False
        answer = session.elicits.get(rpc.id_key(id_))
        if answer is not None and not answer.done():
            answer.set_result(msg)
        return True

    @staticmethod
    def _cancel_held(session: Session, msg: dict) -> bool:
        """notifications/cancelled for a call waiting for approval: stop waiting (the call is
        denied; the server never saw it, so the notification stops here)."""
        params = msg.get("params")
        key = rpc.id_key(params.get("requestId")) if isinstance(params, dict) else None
        ekey = session.held.get(key) if key is not None else None
        if ekey is None:
            return False
        answer = session.elicits.get(ekey)
        if answer is not None and not answer.done():
            answer.set_result(_CANCELLED)
        return True

    # ---------------------------------------------------------------- definitions

    async def _refresh(self, session: Session, call_params: Optional[dict] = None) -> None:
        """Pins and tiers: list the upstream's tools (every page) before deciding a call."""
        meta = reserved_meta(call_params)
        async with session.lock:
            cursor = None
            for _ in range(1000):
                id_ = f"callgate-{uuid.uuid4().hex}"
                params: dict = {"cursor": cursor} if cursor else {}
                if meta:
                    params["_meta"] = meta
                req = {"jsonrpc": "2.0", "id": id_, "method": "tools/list", "params": params}
                try:
                    answer = await session.upstream.request(req, orjson.dumps(req))
                except (UpstreamGone, asyncio.TimeoutError):
                    return
                result = answer.get("result")
                if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                    return
                self.gate.record_tools(result["tools"])
                cursor = result.get("nextCursor")
                if not cursor:
                    return

    def _event_stream(self, session: Session) -> Any:
        from starlette.responses import StreamingResponse

        async def events():
            queue = session.upstream.incoming
            closed = asyncio.ensure_future(session.closed.wait())
            getter: Optional[asyncio.Future] = None
            with session.active():
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


_CANCELLED = object()   # the client cancelled a call waiting for approval


def _err(id_: Any, code: int, message: str) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--listen must be HOST:PORT (e.g. 127.0.0.1:8765), not {listen!r}")
    return host.strip("[]"), int(port)


def serve(gate: Gate, auth: JwtConfig, listen: str, *, command: Optional[Sequence[str]] = None,
          upstream: Optional[str] = None, idle_timeout: float = IDLE_TIMEOUT,
          elevation: Optional[elevate.Elevation] = None) -> int:
    """Run the HTTP front until interrupted; the exit status."""
    import uvicorn

    host, port = parse_listen(listen)
    front = HttpFront(gate, auth, command=command, upstream=upstream, idle_timeout=idle_timeout,
                      elevation=elevation)
    config = uvicorn.Config(front.app(), host=host, port=port, log_level="warning", access_log=False,
                            lifespan="on")
    server = uvicorn.Server(config)
    target = " ".join(command) if command else upstream
    print(f"callgate proxy: serving MCP on http://{host}:{port}{PATH} -> {target}", file=sys.stderr, flush=True)
    server.run()
    return 0 if server.started else 1
