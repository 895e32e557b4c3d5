"""One MCP session between a client and a server, without I/O (the sans-IO pattern): the
transports feed it what arrived and carry out what it returns.

    session = Session(gate, identity)
    actions = session.from_client(line)      # or from_server(line), tick(), server_gone(why)
    for a in actions: ToClient -> write a.data to the client; ToServer -> to the server

What it owns:

- **Framing.** Every message is read strictly and written anew (wire.py): what the server
  receives is exactly what was decided, and what the client receives is exactly what was
  filtered, in a form no peer splits differently. A line the proxy cannot read is never
  passed on.
- **Ids.** Client requests keep their ids (a reused or null id is refused). Requests the
  server sends the client are relayed under ids the proxy mints (unguessable) and mapped
  back when answered; the proxy's own requests (its tools/list, its approval questions)
  use such ids too. An answer reaches its question only through this bookkeeping: the
  server cannot pose a question the user's answer to the proxy's would settle, the client
  cannot answer a question nobody asked, and an answer to no request in flight is dropped.
- **tools/call.** Decided by the gate before the server sees it; held while the tool's
  definitions are listed (pins, tiers) or while the user is asked to approve an Elevate.
  A forwarded call may carry an audit mark: the transport forwards it only once the
  decision is durable in the audit trail (`ToServer.mark`), else calls `not_durable`.
- **Listing.** tools/list answers are filtered to what the role may see; list_changed
  marks definitions stale.
- **Bounds.** At most `Limits.max_in_flight` requests wait for the server and each gets an
  error after `Limits.request_timeout`; requests from the server wait for the client as long.
- **Batches.** On protocol revisions that have them, each part of a JSON-RPC batch is
  handled on its own and the answers go back as one array; later revisions refuse batches.

Not thread-safe: a transport with several threads calls it under one lock.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import elevate
from . import jsonrpc as rpc
from .gate import MODERN_VERSION_KEY, Gate, Identity, Verdict, denial_result, without_approvals
from .wire import WireError, decode, encode, lenient_id

log = logging.getLogger("callgate.mcp")

BATCHES_UNTIL = "2025-03-26"        # the last protocol revision with JSON-RPC batches
_RESERVED_PREFIX = "io.modelcontextprotocol/"
_RESERVED_LENT = ("protocolVersion", "clientInfo", "clientCapabilities")


@dataclass(frozen=True)
class Limits:
    """max_in_flight: requests waiting for an answer (the client's for the server, and the
    server's for the client, each); request_timeout: seconds before such a request gets an
    error; listing_timeout: seconds the proxy waits for its own tools/list; recent_ids: how
    many answered ids stay refused for reuse."""

    max_in_flight: int = 4096
    request_timeout: float = 3600.0
    listing_timeout: float = 10.0
    recent_ids: int = 65536

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.recent_ids < 1:
            raise ValueError("max_in_flight and recent_ids must be positive")
        if not (self.request_timeout > 0 and self.listing_timeout > 0):
            raise ValueError("timeouts must be positive numbers of seconds")


class ToClient:
    """Bytes for the client (one message, no line end). `related`: the key of the client
    request this message belongs to (its answer, progress of it, a question about it);
    `final`: it is the answer to the client message that came with `origin` (the tag the
    transport gave that message: the HTTP front's POST; None for anything else)."""

    __slots__ = ("data", "related", "final", "origin")

    def __init__(self, data: bytes, related: Optional[rpc.IdKey] = None, final: bool = False, origin: Any = None) -> None:
        self.data, self.related, self.final, self.origin = data, related, final, origin

    def __repr__(self) -> str:
        return f"ToClient({self.data!r}, related={self.related!r}, final={self.final!r})"


class ToServer:
    """Bytes for the server (one message, no line end). With `mark`, forward them only once
    the audit trail is durable up to it (Gate.wait_durable), else call
    Session.not_durable(key, why) instead."""

    __slots__ = ("data", "mark", "key")

    def __init__(self, data: bytes, mark: Optional[int] = None, key: Optional[rpc.IdKey] = None) -> None:
        self.data, self.mark, self.key = data, mark, key

    def __repr__(self) -> str:
        return f"ToServer({self.data!r}, mark={self.mark!r})"


Action = Any   # ToClient | ToServer


def new_id() -> str:
    """An id the proxy mints for its own requests and for the server's: unguessable."""
    return "cg-" + secrets.token_urlsafe(18)


def reserved_meta(params: Any) -> dict[str, Any]:
    """The reserved _meta entries (protocol version, client info and capabilities) of a 2026
    protocol request, for a request the proxy makes on its behalf; {} otherwise."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or MODERN_VERSION_KEY not in meta:
        return {}
    return {k: v for k, v in meta.items() if k in {_RESERVED_PREFIX + n for n in _RESERVED_LENT}}


def _is_modern(msg: Any) -> bool:
    params = msg.get("params") if isinstance(msg, dict) else None
    meta = params.get("_meta") if isinstance(params, dict) else None
    return isinstance(meta, dict) and MODERN_VERSION_KEY in meta


class _Batch:
    """A client batch: the request keys still to be answered and the answers so far."""

    __slots__ = ("waiting", "answers")

    def __init__(self) -> None:
        self.waiting: set[rpc.IdKey] = set()
        self.answers: list[bytes] = []


class _Source:
    """Where the answers to one client message go: the batch it was part of (if any) and the
    transport's tag for it (`origin`)."""

    __slots__ = ("batch", "origin")

    def __init__(self, batch: Optional[_Batch], origin: Any) -> None:
        self.batch, self.origin = batch, origin


_PLAIN = _Source(None, None)   # a message outside any batch, with no tag: the stdio proxy's


class _Pending:
    """A client request the server has and has not answered."""

    __slots__ = ("id", "method", "deadline", "source", "role")

    def __init__(self, id_: Any, method: str, deadline: float, source: _Source, role: str) -> None:
        self.id, self.method, self.deadline, self.source, self.role = id_, method, deadline, source, role


class _Held:
    """A tools/call not forwarded yet: waiting for the tool definitions ("listing") or for the
    user's answer to the approval question ("asking", `ask` is the question's id key)."""

    __slots__ = ("msg", "key", "identity", "source", "verdict", "ask", "deadline")

    def __init__(self, msg: dict[str, Any], key: rpc.IdKey, identity: Identity, source: _Source) -> None:
        self.msg, self.key, self.identity, self.source = msg, key, identity, source
        self.verdict: Optional[Verdict] = None
        self.ask: Optional[rpc.IdKey] = None
        self.deadline = 0.0


class _Relayed:
    """A request from the server relayed to the client under the proxy's id."""

    __slots__ = ("id", "deadline")

    def __init__(self, id_: Any, deadline: float) -> None:
        self.id, self.deadline = id_, deadline


class _Listing:
    """The proxy's own tools/list to the server, page by page; the calls waiting for it."""

    __slots__ = ("key", "deadline", "meta", "waiting", "pages")

    def __init__(self, meta: dict[str, Any]) -> None:
        self.key: Optional[rpc.IdKey] = None
        self.deadline = 0.0
        self.meta = meta
        self.waiting: list[rpc.IdKey] = []
        self.pages = 0


class Session:
    """The state of one MCP session (module docstring). `identity` decides the calls unless
    a message is given its own (the HTTP front: each request's token)."""

    MAX_LISTING_PAGES = 1000   # a server that pages forever does not hold calls forever

    def __init__(self, gate: Gate, identity: Optional[Identity] = None, *,
                 elevation: Optional[elevate.Elevation] = None, limits: Optional[Limits] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gate = gate
        self.identity = identity
        self.elevation = elevation if elevation is not None else elevate.Elevation()
        self.limits = limits if limits is not None else Limits()
        self._request_timeout = self.limits.request_timeout
        self.clock = clock
        self.client_caps: Any = None          # what the client declared at initialize
        self.client_protocol: Optional[str] = None
        self.protocol: Optional[str] = None   # what the server agreed to at initialize
        self.gone: Optional[str] = None       # why the server is gone, once it is
        self._pending: dict[rpc.IdKey, _Pending] = {}
        self._recent: OrderedDict[rpc.IdKey, None] = OrderedDict()  # the oldest is dropped first
        self._held: dict[rpc.IdKey, _Held] = {}
        self._asking: dict[rpc.IdKey, _Held] = {}     # our question's id key -> the call it decides
        self._relayed: dict[rpc.IdKey, _Relayed] = {}  # our id key -> the server's request
        self._listing: Optional[_Listing] = None
        self._progress: dict[rpc.IdKey, rpc.IdKey] = {}   # progress token key -> the request it reports on

    # ================================================================ from the client

    def from_client(self, line: bytes, identity: Optional[Identity] = None, origin: Any = None) -> list[Action]:
        """One line from the client (its line end may be there or not)."""
        if not line or line.isspace():
            return []
        try:
            msg = decode(line)
        except WireError as exc:
            return [ToClient(rpc.error(None, rpc.PARSE_ERROR, f"Parse error: {exc}"), final=True, origin=origin)]
        return self.client_message(msg, identity, origin)

    def too_large(self, limit: int) -> list[Action]:
        """The client sent a message over the size limit (the transport discarded it)."""
        return [ToClient(rpc.error(None, rpc.TOO_LARGE, f"message larger than {limit} bytes"))]

    def client_message(self, msg: Any, identity: Optional[Identity] = None, origin: Any = None) -> list[Action]:
        """One decoded message (or batch) from the client; `origin` tags the answers to it."""
        who = identity if identity is not None else self.identity
        if who is None:
            raise ValueError("the session has no identity and the message was given none")
        out: list[Action] = []
        if isinstance(msg, list):
            self._batch(msg, who, origin, out)
        else:
            self._one(msg, who, _PLAIN if origin is None else _Source(None, origin), out)
        return out

    @staticmethod
    def expects_answer(msg: Any) -> bool:
        """Whether the client message (or batch) gets an answer (a final ToClient)."""
        if isinstance(msg, list):
            return not msg or any(rpc.kind(m) in ("request", "invalid") for m in msg)
        return rpc.kind(msg) in ("request", "invalid")

    def _batch(self, items: list[Any], who: Identity, origin: Any, out: list[Action]) -> None:
        if not items:
            out.append(ToClient(rpc.error(None, rpc.INVALID_REQUEST, "Invalid Request: empty batch"), final=True,
                                origin=origin))
            return
        version = self.protocol or self.client_protocol
        if (version is not None and version > BATCHES_UNTIL) or any(_is_modern(m) for m in items):
            out.append(ToClient(rpc.error(None, rpc.INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not "
                                          f"part of MCP after {BATCHES_UNTIL}; send the messages one by one"),
                                final=True, origin=origin))
            return
        batch = _Batch()
        source = _Source(batch, origin)
        repeated = []
        for msg in items:  # every request of the batch is expected before any is handled
            key = rpc.id_key(msg.get("id")) if rpc.kind(msg) == "request" else None
            repeated.append(key is not None and key in batch.waiting)
            if key is not None:
                batch.waiting.add(key)
        for msg, again in zip(items, repeated):
            if again:  # the batch's own earlier request has this id: the answer must stay its
                self._answer(None, rpc.error_message(msg["id"], rpc.INVALID_REQUEST, "Invalid Request: this id was "
                                                     "already used in this session"), source, out)
                continue
            self._one(msg, who, source, out)
        self._batch_done(source, out)

    def _one(self, msg: Any, who: Identity, source: _Source, out: list[Action]) -> None:
        kind = rpc.kind(msg)
        if kind == "request":
            self._request(msg, who, source, out)
        elif kind == "notification":
            self._client_notification(msg, out)
        elif kind == "response":
            self._client_response(msg, out)
        else:
            id_ = msg.get("id") if isinstance(msg, dict) else None
            self._answer(None, rpc.error_message(id_ if rpc.id_key(id_) else None, rpc.INVALID_REQUEST,
                                                 "Invalid Request"), source, out)

    def _request(self, msg: dict[str, Any], who: Identity, source: _Source, out: list[Action]) -> None:
        id_ = msg["id"]
        key = rpc.id_key(id_)
        if key is None:
            self._answer(None, rpc.error_message(None, rpc.INVALID_REQUEST, "Invalid Request: the id must be a "
                                                 "string or an integer, not null"), source, out)
            return
        if key in self._pending or key in self._recent or key in self._held or key in self._asking or \
                key in self._relayed or (self._listing is not None and key == self._listing.key):
            if source.batch is not None:
                source.batch.waiting.discard(key)
            self._answer(None, rpc.error_message(id_, rpc.INVALID_REQUEST, "Invalid Request: this id was already "
                                                 "used in this session"), source, out)
            return
        if self.gone is not None:
            self._reply(key, rpc.error_message(id_, rpc.SERVER_GONE, self.gone), source, out)
            return
        if len(self._pending) + len(self._held) >= self.limits.max_in_flight:
            self._reply(key, rpc.error_message(id_, rpc.SERVER_GONE, f"too many requests in flight (at most "
                                               f"{self.limits.max_in_flight}); wait for some answers"), source, out)
            return
        method = msg["method"]
        if method == "initialize":
            params = msg.get("params")
            if isinstance(params, dict):
                self.client_caps = params.get("capabilities")
                version = params.get("protocolVersion")
                self.client_protocol = version if isinstance(version, str) else None
        elif method == "tools/call":
            self._call(msg, key, who, source, out)
            return
        self._forward(msg, key, who, source, out)

    def _forward(self, msg: dict[str, Any], key: rpc.IdKey, who: Identity, source: _Source, out: list[Action],
                 mark: Optional[int] = None) -> None:
        try:
            data = encode(msg)
        except WireError as exc:
            self._reply(key, rpc.error_message(msg["id"], rpc.INVALID_REQUEST, f"Invalid Request: {exc}"), source, out)
            return
        params = msg.get("params")
        meta = params.get("_meta") if type(params) is dict else None
        self._pending[key] = _Pending(msg["id"], msg["method"], self.clock() + self._request_timeout, source,
                                      who.role)
        if meta is not None and type(meta) is dict and "progressToken" in meta:
            token = rpc.id_key(meta["progressToken"])
            if token is not None:
                self._progress[token] = key
        out.append(ToServer(data, mark, key))

    def _client_notification(self, msg: dict[str, Any], out: list[Action]) -> None:
        if msg["method"] == "notifications/cancelled":
            params = msg.get("params")
            key = rpc.id_key(params.get("requestId")) if isinstance(params, dict) else None
            held = self._held.get(key) if key is not None else None
            if held is not None:  # never forwarded: the server has nothing to cancel
                self._drop_held(held, "the client cancelled the call", out)
                return
            pending = self._pending.pop(key, None) if key is not None else None
            if pending is not None:  # a late answer is dropped, as MCP says it may be
                # (key is not None: pending was found under it)
                self._remember(key)  # type: ignore[arg-type]
                self._settled(key)  # type: ignore[arg-type]
                if pending.source.batch is not None:
                    pending.source.batch.waiting.discard(key)
                    self._batch_done(pending.source, out)
            elif key is not None:
                return  # a request the server does not have: nothing to tell it
        self._send_server(msg, out)

    def _client_response(self, msg: dict[str, Any], out: list[Action]) -> None:
        key = rpc.id_key(msg["id"])
        held = self._asking.pop(key, None) if key is not None else None
        if held is not None:
            outcome, why = elevate.outcome_of(msg)
            self._held.pop(held.key, None)
            self._settle(held, outcome, why, out)
            return
        relayed = self._relayed.pop(key, None) if key is not None else None
        if relayed is None:
            log.warning("dropped an answer from the client to no request in flight (id %r)", msg.get("id"))
            return
        self._send_server(dict(msg, id=relayed.id), out)

    def _send_server(self, msg: dict[str, Any], out: list[Action]) -> None:
        try:
            out.append(ToServer(encode(msg)))
        except WireError as exc:
            log.warning("dropped a message from the client that cannot be written: %s", exc)

    # ---------------------------------------------------------------- tools/call

    def _call(self, msg: dict[str, Any], key: rpc.IdKey, who: Identity, source: _Source, out: list[Action]) -> None:
        params = msg.get("params")
        if isinstance(params, dict) and isinstance(params.get("name"), str) and \
                self.gate.needs_definitions(params["name"]):
            held = self._held[key] = _Held(msg, key, who, source)
            self._list_tools(held, out)
            return
        self._decide(msg, key, who, source, out)

    def _decide(self, msg: dict[str, Any], key: rpc.IdKey, who: Identity, source: _Source, out: list[Action]) -> None:
        params = msg.get("params")
        gate = self.gate
        verdict = gate.decide(params, who)
        if verdict.decision == "Allow":
            self._forward(without_approvals(msg), key, who, source, out, gate.audit_mark() if gate.durable else None)
            return
        if verdict.decision == "Elevate":
            reason = elevate.refusal(verdict, who, self.gate, capabilities=self.client_caps, elevation=self.elevation,
                                     batch=source.batch is not None, modern=_is_modern(msg))
            if reason is None:
                held = _Held(msg, key, who, source)
                held.verdict = verdict
                self._ask(held, out)
                return
        else:
            reason = verdict.reason
        self._reply(key, rpc.result_message(msg["id"], denial_result(reason, params)), source, out)

    def _ask(self, held: _Held, out: list[Action]) -> None:
        """Hold the call and ask the client's user to approve it (elevate.py)."""
        ask_id = new_id()
        held.ask = rpc.id_key(ask_id)
        held.deadline = self.clock() + self.elevation.timeout
        self._held[held.key] = held
        self._asking[held.ask] = held  # type: ignore[index]  # (the key of a str id the proxy minted: never None)
        assert held.verdict is not None
        out.append(ToClient(encode(elevate.elicitation_request(ask_id, held.verdict, self.client_protocol)),
                            related=held.key, origin=held.source.origin))

    def _settle(self, held: _Held, outcome: str, why: str, out: list[Action]) -> None:
        """The user's answer (or its absence) for a held call: run it or deny it."""
        assert held.verdict is not None
        reason = elevate.settle(held.verdict, held.identity, self.gate, outcome, why)
        if reason is None:
            self._forward(without_approvals(held.msg), held.key, held.identity, held.source, out,
                          self.gate.audit_mark())
            return
        params = held.msg.get("params")
        self._reply(held.key, rpc.result_message(held.msg["id"], denial_result(reason, params)), held.source, out)

    def _drop_held(self, held: _Held, why: str, out: list[Action]) -> None:
        """A held call the client cancelled: no answer (as for any cancelled request)."""
        self._held.pop(held.key, None)
        self._remember(held.key)
        self._settled(held.key)
        if held.ask is not None:
            self._asking.pop(held.ask, None)
            out.append(self._withdraw(held.ask, "the tool call was cancelled"))
            if held.verdict is not None:
                elevate.denial(held.verdict, held.identity, self.gate, elevate.CANCELLED, why, "elicitation")
        elif self._listing is not None and held.key in self._listing.waiting:
            self._listing.waiting.remove(held.key)
        if held.source.batch is not None:
            held.source.batch.waiting.discard(held.key)
            self._batch_done(held.source, out)

    @staticmethod
    def _withdraw(ask: rpc.IdKey, reason: str) -> ToClient:
        """Tell the client the proxy no longer waits for the answer to its question."""
        return ToClient(encode({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                "params": {"requestId": ask[1], "reason": reason}}))

    def not_durable(self, key: Optional[rpc.IdKey], why: str) -> list[Action]:
        """A forwarded call (ToServer with a mark) whose decision could not be made durable in
        the audit trail: it was not sent; the client gets a denial instead."""
        out: list[Action] = []
        pending = self._pending.pop(key, None) if key is not None else None
        if pending is None:
            return out
        self._remember(key)  # type: ignore[arg-type]  # (not None: pending was found under it)
        reason = f"the audit trail could not record this decision durably ({why}); the call did not run"
        self._reply(key, rpc.result_message(pending.id, denial_result(reason)), pending.source, out, remember=False)
        return out

    # ---------------------------------------------------------------- the proxy's own tools/list

    def _list_tools(self, held: _Held, out: list[Action]) -> None:
        """List the server's tools (every page) before deciding `held`: the pins check and the
        tiers need current definitions. A call of the 2026 protocol lends its version (and
        client info) to the listing: there is no handshake to have agreed on it."""
        if self._listing is None:
            self._listing = _Listing(reserved_meta(held.msg.get("params")))
            self._listing.waiting.append(held.key)
            self._next_page(None, out)
        else:
            self._listing.waiting.append(held.key)

    def _next_page(self, cursor: Any, out: list[Action]) -> None:
        listing = self._listing
        assert listing is not None
        id_ = new_id()
        listing.key = rpc.id_key(id_)
        listing.deadline = self.clock() + self.limits.listing_timeout
        listing.pages += 1
        params: dict[str, Any] = {"cursor": cursor} if cursor else {}
        if listing.meta:
            params["_meta"] = listing.meta
        out.append(ToServer(encode({"jsonrpc": "2.0", "id": id_, "method": "tools/list", "params": params})))

    def _listed(self, answer: Optional[dict[str, Any]], out: list[Action]) -> None:
        """A page of the proxy's own listing arrived (None: it failed or timed out)."""
        listing = self._listing
        assert listing is not None
        result = answer.get("result") if isinstance(answer, dict) else None
        if isinstance(result, dict) and isinstance(result.get("tools"), list):
            self.gate.record_tools(result["tools"])
            cursor = result.get("nextCursor")
            if cursor and listing.pages < self.MAX_LISTING_PAGES:
                self._next_page(cursor, out)
                return
            if not cursor:
                self.gate.stale = False
        self._listing = None
        for key in listing.waiting:  # decided with what is known now (unknown definitions deny)
            held = self._held.pop(key, None)
            if held is not None:
                self._decide(held.msg, held.key, held.identity, held.source, out)
                if held.source.batch is not None:
                    self._batch_done(held.source, out)

    # ================================================================ from the server

    def from_server(self, line: bytes) -> list[Action]:
        """One line from the server."""
        out: list[Action] = []
        if not line or line.isspace():
            return out
        try:
            msg = decode(line)
        except WireError as exc:
            self._unreadable(line, str(exc), out)
            return out
        if type(msg) is list:
            for item in msg:
                self._server_one(item, out)
        else:
            self._server_one(msg, out)
        return out

    def server_message(self, msg: Any) -> list[Action]:
        """One decoded message from the server (an HTTP upstream's)."""
        out: list[Action] = []
        self._server_one(msg, out)
        return out

    def _unreadable(self, line: bytes, why: str, out: list[Action]) -> None:
        """A line from the server that is not one valid message: never passed on. If it was
        meant to answer a request (its id, read leniently), that request gets an error now."""
        key = rpc.id_key(lenient_id(line))
        log.warning("dropped a line from the MCP server that is not valid JSON-RPC (%s)", why)
        if key is None:
            return
        if self._listing is not None and key == self._listing.key:
            self._listed(None, out)
            return
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._remember(key)
            self._reply(key, rpc.error_message(pending.id, rpc.INTERNAL_ERROR, "the MCP server's answer is not valid "
                                               f"JSON ({why}); it was not relayed"), pending.source, out, remember=False)

    def _server_one(self, msg: Any, out: list[Action]) -> None:
        kind = rpc.kind(msg)
        if kind == "response":
            self._server_response(msg, out)
        elif kind == "request":
            self._server_request(msg, out)
        elif kind == "notification":
            self._server_notification(msg, out)
        else:
            log.warning("dropped a message from the MCP server that is not JSON-RPC")

    def _server_response(self, msg: dict[str, Any], out: list[Action]) -> None:
        key = rpc.id_key(msg["id"])
        if key is not None and self._listing is not None and key == self._listing.key:
            self._listed(msg, out)
            return
        pending = self._pending.pop(key, None) if key is not None else None
        if pending is None:
            log.warning("dropped an answer from the MCP server to no request in flight (id %r)", msg.get("id"))
            return
        self._remember(key)  # type: ignore[arg-type]  # (not None: pending was found under it)
        method, source = pending.method, pending.source
        if source is _PLAIN and method != "tools/list" and method != "initialize" and not self._progress:
            # the common answer, relayed as it is: _reply and _answer written out
            try:
                out.append(ToClient(encode(msg), key, True, None))
                return
            except WireError:
                pass  # _answer says so below
        answer = msg
        if pending.method == "tools/list" and "result" in msg:
            filtered = self.gate.filter_list_result(msg["result"], pending.role)
            if filtered is not None:
                answer = dict(msg, result=filtered)
        elif pending.method == "initialize" and isinstance(msg.get("result"), dict):
            version = msg["result"].get("protocolVersion")
            self.protocol = version if isinstance(version, str) else None
        self._reply(key, answer, pending.source, out, remember=False)

    def _server_request(self, msg: dict[str, Any], out: list[Action]) -> None:
        if len(self._relayed) >= self.limits.max_in_flight:
            self._send_server(rpc.error_message(msg["id"], rpc.SERVER_GONE, "too many requests waiting for the "
                                                "client"), out)
            return
        ours = new_id()
        # (the key of a str id the proxy minted: never None)
        self._relayed[rpc.id_key(ours)] = _Relayed(msg["id"], self.clock() + self.limits.request_timeout)  # type: ignore[index]
        self._send_client(dict(msg, id=ours), out)

    def _server_notification(self, msg: dict[str, Any], out: list[Action]) -> None:
        method = msg["method"]
        related = None
        if method == "notifications/tools/list_changed":
            self.gate.mark_stale()
        elif method == "notifications/cancelled":
            params = msg.get("params")
            server_id = params.get("requestId") if isinstance(params, dict) else None
            ours = self._relayed_key(server_id)
            if ours is None:
                return  # nothing the client was asked under that id
            del self._relayed[ours]
            # (params is a dict: a relayed request was found by the id it holds)
            msg = dict(msg, params=dict(params, requestId=ours[1]))  # type: ignore[arg-type]
        elif method == "notifications/progress":
            params = msg.get("params")
            token = rpc.id_key(params.get("progressToken")) if isinstance(params, dict) else None
            related = self._progress.get(token) if token is not None else None
        pending = self._pending.get(related) if related is not None else None
        self._send_client(msg, out, related, pending.source.origin if pending is not None else None)

    def _relayed_key(self, server_id: Any) -> Optional[rpc.IdKey]:
        want = rpc.id_key(server_id)
        if want is None:
            return None
        for ours, relayed in self._relayed.items():
            if rpc.id_key(relayed.id) == want:
                return ours
        return None

    def _send_client(self, msg: dict[str, Any], out: list[Action], related: Optional[rpc.IdKey] = None, origin: Any = None) -> None:
        try:
            out.append(ToClient(encode(msg), related=related, origin=origin))
        except WireError as exc:
            log.warning("dropped a message from the MCP server that cannot be written: %s", exc)

    # ================================================================ answers, time, the end

    def _reply(self, key: Optional[rpc.IdKey], msg: dict[str, Any], source: _Source, out: list[Action], remember: bool = True) -> None:
        """Answer a client request (the proxy's own answer, or the server's relayed)."""
        if key is not None:
            if remember:
                self._remember(key)
            self._settled(key)
        self._answer(key, msg, source, out)

    def _answer(self, key: Optional[rpc.IdKey], msg: dict[str, Any], source: _Source, out: list[Action]) -> None:
        try:
            data = encode(msg)
        except WireError as exc:
            data = encode(rpc.error_message(msg.get("id"), rpc.INTERNAL_ERROR, f"the answer cannot be written ({exc})"))
        batch = source.batch
        if batch is None:
            out.append(ToClient(data, related=key, final=True, origin=source.origin))
            return
        batch.answers.append(data)
        if key is not None:
            batch.waiting.discard(key)
            self._batch_done(source, out)

    @staticmethod
    def _batch_done(source: _Source, out: list[Action]) -> None:
        batch = source.batch
        if batch is None or batch.waiting or not batch.answers:
            return
        answers, batch.answers = batch.answers, []
        out.append(ToClient(b"[" + b",".join(answers) + b"]", final=True, origin=source.origin))

    def _remember(self, key: rpc.IdKey) -> None:
        """An answered id stays refused for reuse (a bounded window of recent ids)."""
        self._recent[key] = None
        if len(self._recent) > self.limits.recent_ids:
            self._recent.popitem(last=False)  # O(1): a dict's first key is found by scanning past deleted ones

    def _settled(self, key: rpc.IdKey) -> None:
        """Forget the progress token of a request that is over."""
        if self._progress:
            for token in [t for t, k in self._progress.items() if k == key]:
                del self._progress[token]

    def next_deadline(self) -> Optional[float]:
        """When tick() next has something to do (clock time), or None."""
        times = [p.deadline for p in self._pending.values()]
        times += [r.deadline for r in self._relayed.values()]
        times += [h.deadline for h in self._asking.values()]
        if self._listing is not None:
            times.append(self._listing.deadline)
        return min(times) if times else None

    def tick(self) -> list[Action]:
        """Expire what waited too long: requests the server did not answer, requests of the
        server the client did not answer, questions the user did not answer, the listing."""
        now = self.clock()
        out: list[Action] = []
        if self._listing is not None and self._listing.deadline <= now:
            log.warning("the MCP server did not list its tools within %g s", self.limits.listing_timeout)
            self._listed(None, out)
        for key, pending in [(k, p) for k, p in self._pending.items() if p.deadline <= now]:
            del self._pending[key]
            self._remember(key)
            out.append(ToServer(encode({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                        "params": {"requestId": pending.id, "reason": "no answer in time"}})))
            self._reply(key, rpc.error_message(pending.id, rpc.SERVER_GONE, f"the MCP server did not answer "
                                               f"{pending.method} within {self.limits.request_timeout:g} s"),
                        pending.source, out, remember=False)
        for ours, relayed in [(k, r) for k, r in self._relayed.items() if r.deadline <= now]:
            del self._relayed[ours]
            out.append(self._withdraw(ours, "no answer in time"))
            self._send_server(rpc.error_message(relayed.id, rpc.SERVER_GONE, "the client did not answer in time"), out)
        for ask, held in [(k, h) for k, h in self._asking.items() if h.deadline <= now]:
            del self._asking[ask]
            self._held.pop(held.key, None)
            out.append(self._withdraw(ask, "no answer in time"))
            self._settle(held, elevate.TIMEOUT, f"no answer within {self.elevation.timeout:g} s", out)
        return out

    def server_gone(self, why: str) -> list[Action]:
        """The server is gone (`why`, e.g. "the MCP server exited with status 3"): every
        request in flight and every held call gets an error, and so does every later one."""
        self.gone = why
        out: list[Action] = []
        for ask, held in list(self._asking.items()):
            del self._asking[ask]
            out.append(self._withdraw(ask, "the MCP server is gone"))
        self._listing = None
        for key, held in list(self._held.items()):
            del self._held[key]
            self._reply(key, rpc.error_message(held.msg["id"], rpc.SERVER_GONE, f"{why} before answering tools/call"),
                        held.source, out)
        for key, pending in list(self._pending.items()):
            del self._pending[key]
            self._reply(key, rpc.error_message(pending.id, rpc.SERVER_GONE, f"{why} before answering {pending.method}"),
                        pending.source, out)
        self._relayed.clear()
        return out

    @property
    def in_flight(self) -> int:
        """Client requests not answered yet (forwarded or held)."""
        return len(self._pending) + len(self._held)
