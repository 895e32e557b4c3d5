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
  A `stateless` session (the HTTP front's lane for requests of the 2026 revision, which
  belong to no session: two clients may use the same id) sends every request, and its
  progress token, under ids the proxy mints, and maps the answers back.
- **tools/call.** Decided by the gate before the server sees it; held while the tool's
  definitions are listed (pins, tiers) or while the user is asked to approve an Elevate.
  A forwarded call may carry an audit mark: the transport forwards it only once the
  decision is durable in the audit trail (`ToServer.mark`), else calls `not_durable`.
- **Protocol revisions** (modern.py). A request of the 2026 revision carries its version
  and capabilities in `_meta`: an envelope the proxy cannot read is refused; an Elevate is
  answered with input_required (elevate.modern_step) and decided again when retried; the
  server's own input_required on an approved call keeps the approval bound to the call.
  When the client speaks 2026 and the server only the handshake revisions (its answer to
  `server/discover`), the proxy translates what it must and nothing else: it performs the
  handshake, strips the 2026 envelope from what it forwards, adds what a 2026 result must
  carry, answers server/discover and serves subscriptions/listen itself.
- **Listing.** tools/list answers (and a server/discover answer carrying tools) are
  filtered to what the role may see; list_changed, on its own or on a subscription
  stream, marks definitions stale.
- **Bounds.** At most `Limits.max_in_flight` requests wait for the server and each gets an
  error after `Limits.request_timeout` (a subscription stream is open-ended); requests from
  the server wait for the client as long.
- **Batches.** On protocol revisions that have them, each part of a JSON-RPC batch is
  handled on its own and the answers go back as one array; later revisions refuse batches.
- **Approvals held open.** A held call whose request has a progress token gets progress
  keep-alives while the user thinks (elevate.Elevation.keepalive).

Not thread-safe: a transport with several threads calls it under one lock.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Optional

from . import elevate
from . import jsonrpc as rpc
from . import modern
from .approval_state import is_ours
from .gate import Gate, Identity, Verdict, denial_result, without_approvals
from .wire import WireError, decode, encode, lenient_id

log = logging.getLogger("callgate.mcp")

BATCHES_UNTIL = "2025-03-26"        # the last protocol revision with JSON-RPC batches
LISTEN = "subscriptions/listen"
LIST_CHANGED = {"notifications/tools/list_changed": "toolsListChanged",
                "notifications/prompts/list_changed": "promptsListChanged",
                "notifications/resources/list_changed": "resourcesListChanged"}
# upstream eras, as the proxy learns them from the server's answer to server/discover
MODERN, LEGACY = "modern", "legacy"


@dataclass(frozen=True)
class Limits:
    """max_in_flight: requests waiting for an answer (the client's for the server, and the
    server's for the client, each); request_timeout: seconds before such a request gets an
    error; listing_timeout: seconds the proxy waits for its own tools/list (and its own
    server/discover and initialize); recent_ids: how many answered ids stay refused for reuse."""

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
    Session.not_durable(key, why) instead. `key`: the request they carry (None for others)."""

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
    """The _meta entries of a 2026 request the proxy lends a request it makes on its behalf
    (protocol version, client info and capabilities, trace context); {} otherwise."""
    return modern.lent_meta(params.get("_meta") if isinstance(params, dict) else None)


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
_SPECIAL = frozenset(("tools/list", "initialize", "server/discover", LISTEN))   # answers the core reads


class _Pending:
    """A client request the server has and has not answered. `id`: the client's id (the
    answer goes back under it); `plain`: its answer is relayed as it is; `token`: the
    client's progress token when the proxy forwarded its own; `wrap`: (binding, window) of
    a call the user approved on the 2026 revision; `translate`: the answer of a
    handshake-era server to a 2026 request, to be completed for it."""

    __slots__ = ("id", "method", "deadline", "source", "role", "plain", "token", "wrap", "translate")

    def __init__(self, id_: Any, method: str, deadline: float, source: _Source, role: str) -> None:
        self.id, self.method, self.deadline, self.source, self.role = id_, method, deadline, source, role
        self.plain = source is _PLAIN and method not in _SPECIAL
        self.token: Any = None
        self.wrap: Any = None
        self.translate = False


class _Held:
    """A tools/call not forwarded yet: waiting for the tool definitions ("listing") or for the
    user's answer to the approval question ("asking", `ask` is the question's id key).
    `token`: the call's progress token (keep-alives go under it); `timeout_text`: what the
    denial says if no answer comes."""

    __slots__ = ("msg", "key", "identity", "source", "verdict", "ask", "deadline", "token", "next_keepalive",
                 "keepalives", "timeout_text")

    def __init__(self, msg: dict[str, Any], key: rpc.IdKey, identity: Identity, source: _Source) -> None:
        self.msg, self.key, self.identity, self.source = msg, key, identity, source
        self.verdict: Optional[Verdict] = None
        self.ask: Optional[rpc.IdKey] = None
        self.deadline = 0.0
        self.token: Any = None
        self.next_keepalive = math.inf
        self.keepalives = 0
        self.timeout_text = ""


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


class _Waiting:
    """A client request of the 2026 revision waiting for the proxy to learn which revision
    the server speaks (its own server/discover, then, for a handshake-era server, its own
    initialize)."""

    __slots__ = ("msg", "key", "identity", "source")

    def __init__(self, msg: dict[str, Any], key: rpc.IdKey, identity: Identity, source: _Source) -> None:
        self.msg, self.key, self.identity, self.source = msg, key, identity, source


class _Probe:
    """The proxy's own server/discover (then initialize) to learn the server's revision."""

    __slots__ = ("key", "deadline", "step", "envelope")

    def __init__(self, envelope: modern.Envelope) -> None:
        self.key: Optional[rpc.IdKey] = None
        self.deadline = 0.0
        self.step = "discover"
        self.envelope = envelope


class _Listen:
    """A subscriptions/listen the proxy serves itself for a handshake-era server: the
    notification kinds it honoured."""

    __slots__ = ("id", "source", "honoured")

    def __init__(self, id_: Any, source: _Source, honoured: dict[str, bool]) -> None:
        self.id, self.source, self.honoured = id_, source, honoured


class Session:
    """The state of one MCP session (module docstring). `identity` decides the calls unless
    a message is given its own (the HTTP front: each request's token). `stateless`: every
    request travels to the server under an id the proxy mints (module docstring, Ids)."""

    MAX_LISTING_PAGES = 1000   # a server that pages forever does not hold calls forever

    def __init__(self, gate: Gate, identity: Optional[Identity] = None, *,
                 elevation: Optional[elevate.Elevation] = None, limits: Optional[Limits] = None,
                 clock: Callable[[], float] = time.monotonic, stateless: bool = False) -> None:
        self.gate = gate
        self.identity = identity
        self.elevation = elevation if elevation is not None else elevate.Elevation()
        self.limits = limits if limits is not None else Limits()
        self._request_timeout = self.limits.request_timeout
        self.clock = clock
        self.stateless = stateless
        self.client_caps: Any = None          # what the client declared at initialize
        self.client_protocol: Optional[str] = None
        self.protocol: Optional[str] = None   # what the server agreed to at initialize
        self.upstream_era: Optional[str] = None   # MODERN or LEGACY once known (2026 clients only)
        self.upstream_init: Any = None        # a handshake-era server's initialize result (LEGACY)
        self.gone: Optional[str] = None       # why the server is gone, once it is
        self._pending: dict[rpc.IdKey, _Pending] = {}
        self._recent: OrderedDict[rpc.IdKey, None] = OrderedDict()  # the oldest is dropped first
        self._held: dict[rpc.IdKey, _Held] = {}
        self._asking: dict[rpc.IdKey, _Held] = {}     # our question's id key -> the call it decides
        self._relayed: dict[rpc.IdKey, _Relayed] = {}  # our id key -> the server's request
        self._listing: Optional[_Listing] = None
        self._progress: dict[rpc.IdKey, rpc.IdKey] = {}   # progress token key -> the request it reports on
        self._waiting: dict[rpc.IdKey, _Waiting] = {}    # 2026 requests waiting for the server's era
        self._probe: Optional[_Probe] = None
        self._listens: dict[rpc.IdKey, _Listen] = {}     # subscriptions the proxy serves (LEGACY)

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
        if (version is not None and version > BATCHES_UNTIL) or self.stateless or \
                any(modern.is_modern(m) for m in items):
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

    def _in_use(self, key: rpc.IdKey) -> bool:
        return key in self._pending or key in self._recent or key in self._held or key in self._asking or \
            key in self._relayed or key in self._waiting or key in self._listens or \
            (self._listing is not None and key == self._listing.key) or \
            (self._probe is not None and key == self._probe.key)

    def _request(self, msg: dict[str, Any], who: Identity, source: _Source, out: list[Action]) -> None:
        id_ = msg["id"]
        key = rpc.id_key(id_)
        if key is None:
            self._answer(None, rpc.error_message(None, rpc.INVALID_REQUEST, "Invalid Request: the id must be a "
                                                 "string or an integer, not null"), source, out)
            return
        is_new = modern.is_modern(msg)
        if self.stateless:
            if not is_new:
                self._answer(None, rpc.error_message(id_, rpc.INVALID_REQUEST, "Invalid Request: this endpoint takes "
                                                     "requests of the 2026-07-28 revision only without a session"),
                             source, out)
                return
            key = ("s", new_id())   # the id the server gets: ids of stateless requests may repeat
        elif self._in_use(key):
            if source.batch is not None:
                source.batch.waiting.discard(key)
            self._answer(None, rpc.error_message(id_, rpc.INVALID_REQUEST, "Invalid Request: this id was already "
                                                 "used in this session"), source, out)
            return
        if self.gone is not None:
            self._reply(key, rpc.error_message(id_, rpc.SERVER_GONE, self.gone), source, out)
            return
        if self.in_flight >= self.limits.max_in_flight:
            self._reply(key, rpc.error_message(id_, rpc.SERVER_GONE, f"too many requests in flight (at most "
                                               f"{self.limits.max_in_flight}); wait for some answers"), source, out)
            return
        if is_new:
            env = modern.envelope(msg)
            if isinstance(env, modern.Refusal):
                self._reply(key, env.error(id_), source, out)
                return
            if self._era_first(msg, key, who, source, env, out):
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
                 mark: Optional[int] = None, wrap: Any = None) -> None:
        """Send a client request to the server and wait for its answer (`key`: what the
        bookkeeping knows it by; the server gets the proxy's id when the session is stateless)."""
        params = msg.get("params")
        meta = params.get("_meta") if type(params) is dict else None
        if meta is not None and type(meta) is not dict:
            meta = None
        token = meta.get("progressToken") if meta is not None else None
        translate = self.upstream_era == LEGACY and meta is not None and modern.VERSION_KEY in meta
        sent, forwarded = msg, token
        if self.stateless or translate:
            sent = dict(msg)
            if self.stateless:
                sent["id"] = key[1]
            if meta is not None:
                new_meta = modern.without_envelope(meta) if translate else dict(meta)
                if self.stateless and rpc.id_key(token) is not None:
                    forwarded = new_meta["progressToken"] = new_id()   # tokens of stateless requests may repeat
                sent_params = dict(params)  # type: ignore[arg-type]  # (a dict: it holds meta)
                if new_meta:
                    sent_params["_meta"] = new_meta
                else:
                    del sent_params["_meta"]
                sent["params"] = sent_params
        try:
            data = encode(sent)
        except WireError as exc:
            self._reply(key, rpc.error_message(msg["id"], rpc.INVALID_REQUEST, f"Invalid Request: {exc}"), source, out)
            return
        method = msg["method"]
        deadline = math.inf if method == LISTEN else self.clock() + self._request_timeout
        pending = self._pending[key] = _Pending(msg["id"], method, deadline, source, who.role)
        token_key = rpc.id_key(forwarded) if forwarded is not None else None
        if token_key is not None:
            self._progress[token_key] = key
            if forwarded is not token:
                pending.token = token
        if self.stateless or wrap is not None or translate:
            pending.plain = False
            pending.wrap = wrap
            pending.translate = translate
        out.append(ToServer(data, mark, key))

    def _client_notification(self, msg: dict[str, Any], out: list[Action]) -> None:
        if msg["method"] == "notifications/cancelled":
            params = msg.get("params")
            key = rpc.id_key(params.get("requestId")) if isinstance(params, dict) else None
            if self.stateless:
                return   # client ids name nothing here (the HTTP front cancels by the closed stream)
            held = self._held.get(key) if key is not None else None
            if held is not None:  # never forwarded: the server has nothing to cancel
                self._drop_held(held, "the client cancelled the call", out)
                return
            if key is not None and (self._waiting.pop(key, None) is not None or
                                    self._listens.pop(key, None) is not None):
                self._remember(key)
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
        elif self.upstream_era == LEGACY and msg["method"] == "notifications/initialized":
            return   # the proxy made the handshake with the server itself
        self._send_server(msg, out)

    def abandoned(self, origin: Any) -> list[Action]:
        """The client gave up the requests that came with `origin` (the HTTP front: the
        stream answering a 2026 POST closed before its answer; closing it is how such a
        request is cancelled): the server is told, a held call is dropped, a late answer
        is dropped."""
        out: list[Action] = []
        for key, held in [(k, h) for k, h in self._held.items() if h.source.origin is origin]:
            self._drop_held(held, "the client closed the request's stream", out)
        for key in [k for k, w in self._waiting.items() if w.source.origin is origin]:
            del self._waiting[key]
        for key in [k for k, s in self._listens.items() if s.source.origin is origin]:
            del self._listens[key]
        for key, pending in [(k, p) for k, p in self._pending.items() if p.source.origin is origin]:
            del self._pending[key]
            self._remember(key)
            self._settled(key)
            self._send_server({"jsonrpc": "2.0", "method": "notifications/cancelled",
                               "params": {"requestId": key[1] if self.stateless else pending.id,
                                          "reason": "the client closed the request's stream"}}, out)
        return out

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
        is_new = modern.is_modern(msg)
        if verdict.decision == "Allow" or gate.mode == "shadow":   # shadow: decided, recorded, forwarded
            sent = without_approvals(msg)
            if is_new and is_ours(params.get("requestState")):  # type: ignore[union-attr]  # (a dict: it was decided)
                # the policy allows it now: the proxy's question is moot, the server gets a first round
                sent = dict(sent, params=elevate.forwarded_params(sent["params"], None))
            self._forward(sent, key, who, source, out, gate.audit_mark() if gate.durable else None)
            return
        if verdict.decision == "Elevate":
            if is_new:
                env = modern.envelope(msg)
                step = elevate.modern_step(verdict, who, gate, params, elevation=self.elevation,  # type: ignore[arg-type]
                                           capabilities=env.capabilities if isinstance(env, modern.Envelope) else None)
                if isinstance(step, elevate.Ask):
                    self._reply(key, rpc.result_message(msg["id"], step.result), source, out)
                    return
                if isinstance(step, elevate.Run):
                    self._forward(without_approvals(dict(msg, params=step.params)), key, who, source, out,
                                  gate.audit_mark(), (step.binding, step.window))
                    return
                reason = step.reason
            else:
                reason = elevate.refusal(verdict, who, self.gate, capabilities=self.client_caps,  # type: ignore[assignment]
                                         elevation=self.elevation, batch=source.batch is not None)
                if reason is None:
                    held = _Held(msg, key, who, source)
                    held.verdict = verdict
                    self._ask(held, out)
                    return
        else:
            reason = verdict.reason
        self._reply(key, rpc.result_message(msg["id"], denial_result(gate.shown(reason, verdict), params)), source, out)

    def _ask(self, held: _Held, out: list[Action]) -> None:
        """Hold the call and ask the client's user to approve it (elevate.py); keep the
        client waiting with progress keep-alives when the call has a progress token."""
        ask_id = new_id()
        held.ask = rpc.id_key(ask_id)
        params = held.msg.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        held.token = token if rpc.id_key(token) is not None else None
        assert held.verdict is not None
        keepalive = held.token is not None and self.elevation.keepalive > 0
        window, held.timeout_text = self.elevation.held_window(self.gate.tier_of(held.verdict.tool or ""), keepalive)
        now = self.clock()
        held.deadline = now + window
        if keepalive:
            held.next_keepalive = now + self.elevation.keepalive
        self._held[held.key] = held
        self._asking[held.ask] = held  # type: ignore[index]  # (the key of a str id the proxy minted: never None)
        out.append(ToClient(encode(elevate.elicitation_request(ask_id, held.verdict, self.client_protocol)),
                            related=held.key, origin=held.source.origin))

    def _keepalive(self, held: _Held, now: float, out: list[Action]) -> None:
        held.keepalives += 1
        held.next_keepalive = now + self.elevation.keepalive
        self._send_client({"jsonrpc": "2.0", "method": "notifications/progress",
                           "params": {"progressToken": held.token, "progress": held.keepalives,
                                      "message": f"waiting for the user to approve {held.verdict.tool}"}},  # type: ignore[union-attr]
                          out, held.key, held.source.origin)

    def _settle(self, held: _Held, outcome: str, why: str, out: list[Action]) -> None:
        """The user's answer (or its absence) for a held call: run it or deny it."""
        assert held.verdict is not None
        reason = elevate.settle(held.verdict, held.identity, self.gate, outcome, why)
        if reason is None:
            self._forward(without_approvals(held.msg), held.key, held.identity, held.source, out,
                          self.gate.audit_mark())
            return
        params = held.msg.get("params")
        shown = self.gate.shown(reason, held.verdict)
        self._reply(held.key, rpc.result_message(held.msg["id"], denial_result(shown, params)), held.source, out)

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
        self._reply(key, rpc.result_message(pending.id, self._denial(reason, pending)), pending.source, out,
                    remember=False)
        return out

    def _denial(self, reason: str, pending: _Pending) -> dict[str, Any]:
        result = denial_result(self.gate.shown(reason))
        if pending.wrap is not None or pending.translate or self.stateless or self.upstream_era is not None:
            result["resultType"] = "complete"
        return result

    # ---------------------------------------------------------------- the server's revision (2026 clients)

    def _era_first(self, msg: dict[str, Any], key: rpc.IdKey, who: Identity, source: _Source, env: modern.Envelope,
                   out: list[Action]) -> bool:
        """A 2026 request before the proxy knows which revision the server speaks: True when
        it is held (or answered) here. server/discover itself goes to the server and its
        answer tells; anything else waits for the proxy's own server/discover."""
        method = msg["method"]
        if self.upstream_era == LEGACY:
            if method == "server/discover":
                self._reply(key, rpc.result_message(msg["id"], modern.discover_result(self.upstream_init)), source, out)
                return True
            if method == LISTEN:
                self._listen_here(msg, key, source, out)
                return True
            return False
        if self.upstream_era == MODERN or method == "server/discover":
            return False
        self._waiting[key] = _Waiting(msg, key, who, source)
        if self._probe is None:
            self._probe = _Probe(env)
            self._probe_send("server/discover", {"_meta": reserved_meta(msg.get("params"))}, out)
        return True

    def _probe_send(self, method: str, params: dict[str, Any], out: list[Action]) -> None:
        probe = self._probe
        assert probe is not None
        id_ = new_id()
        probe.key = rpc.id_key(id_)
        probe.step = method
        probe.deadline = self.clock() + self.limits.listing_timeout
        out.append(ToServer(encode({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})))

    def _probed(self, answer: Optional[dict[str, Any]], out: list[Action]) -> None:
        """The answer to the proxy's own server/discover or initialize (None: none came)."""
        probe = self._probe
        assert probe is not None
        result = answer.get("result") if isinstance(answer, dict) else None
        if probe.step == "server/discover":
            versions = result.get("supportedVersions") if isinstance(result, dict) else None
            if isinstance(versions, list) and any(v in modern.MODERN_VERSIONS for v in versions):
                self._era_known(MODERN, out)
                return
            if answer is None:
                self._era_failed("the MCP server did not answer server/discover in time", out)
                return
            env = probe.envelope
            info = env.client_info if isinstance(env.client_info, dict) else {"name": "callgate", "version": "0"}
            self._probe_send("initialize", {"protocolVersion": modern.LATEST_HANDSHAKE,
                                            "capabilities": _handshake_capabilities(env.capabilities),
                                            "clientInfo": info}, out)
            return
        if not isinstance(result, dict):   # the handshake failed too: the server speaks neither
            err = answer.get("error") if isinstance(answer, dict) else None
            why = err.get("message") if isinstance(err, dict) else None
            self._era_failed(f"the MCP server speaks neither 2026-07-28 nor accepts the handshake "
                             f"({why or 'no answer'})", out)
            return
        version = result.get("protocolVersion")
        self.protocol = version if isinstance(version, str) else None
        self.upstream_init = result
        out.append(ToServer(encode({"jsonrpc": "2.0", "method": "notifications/initialized"})))
        log.info("the MCP server speaks %s: the proxy translates the 2026-07-28 requests of its client", self.protocol)
        self._era_known(LEGACY, out)

    def _era_known(self, era: str, out: list[Action]) -> None:
        self.upstream_era = era
        self._probe = None
        waiting, self._waiting = self._waiting, {}
        for w in waiting.values():
            self._request(w.msg, w.identity, w.source, out)

    def _era_failed(self, why: str, out: list[Action]) -> None:
        self._probe = None
        waiting, self._waiting = self._waiting, {}
        for key, w in waiting.items():
            self._reply(key, rpc.error_message(w.msg["id"], rpc.SERVER_GONE, why), w.source, out)

    def _listen_here(self, msg: dict[str, Any], key: rpc.IdKey, source: _Source, out: list[Action]) -> None:
        """subscriptions/listen for a handshake-era server: acknowledged by the proxy with the
        list_changed kinds the server's capabilities announce; the server's list_changed
        notifications are then delivered on it (the stream stays open: no answer)."""
        params = msg.get("params")
        wanted = params.get("notifications") if isinstance(params, dict) else None
        caps = self.upstream_init.get("capabilities") if isinstance(self.upstream_init, dict) else None
        honoured: dict[str, bool] = {}
        for feature, flag in (("tools", "toolsListChanged"), ("prompts", "promptsListChanged"),
                              ("resources", "resourcesListChanged")):
            cap = caps.get(feature) if isinstance(caps, dict) else None
            if isinstance(wanted, dict) and wanted.get(flag) is True and isinstance(cap, dict) and \
                    cap.get("listChanged") is True:
                honoured[flag] = True
        self._listens[key] = _Listen(msg["id"], source, honoured)
        self._send_client({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
                           "params": {"notifications": honoured, "_meta": {modern.SUBSCRIPTION_ID_KEY: msg["id"]}}},
                          out, key, source.origin)

    # ---------------------------------------------------------------- the proxy's own tools/list

    def _list_tools(self, held: _Held, out: list[Action]) -> None:
        """List the server's tools (every page) before deciding `held`: the pins check and the
        tiers need current definitions. A call of the 2026 protocol lends its version (and
        client info) to the listing: there is no handshake to have agreed on it."""
        if self._listing is None:
            lent = {} if self.upstream_era == LEGACY else reserved_meta(held.msg.get("params"))
            self._listing = _Listing(lent)
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
        if self._probe is not None and key == self._probe.key:
            self._probed(None, out)
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
        if key is not None and self._probe is not None and key == self._probe.key:
            self._probed(msg, out)
            return
        pending = self._pending.pop(key, None) if key is not None else None
        if pending is None:
            log.warning("dropped an answer from the MCP server to no request in flight (id %r)", msg.get("id"))
            return
        self._remember(key)  # type: ignore[arg-type]  # (not None: pending was found under it)
        if pending.plain and not self._progress:
            # the common answer, relayed as it is: _reply and _answer written out
            try:
                out.append(ToClient(encode(msg), key, True, None))
                return
            except WireError:
                pass  # _answer says so below
        answer = msg if not self.stateless else dict(msg, id=pending.id)
        result = msg.get("result")
        method = pending.method
        if pending.translate and isinstance(result, dict):
            result = modern.completed(method, result)
            answer = dict(answer, result=result)
        if method in ("tools/list", "server/discover") and "result" in msg:
            filtered = self.gate.filter_list_result(result, pending.role)
            if filtered is not None:
                answer = dict(answer, result=filtered)
            if method == "server/discover" and self.upstream_era is None and isinstance(result, dict):
                versions = result.get("supportedVersions")
                if isinstance(versions, list) and any(v in modern.MODERN_VERSIONS for v in versions):
                    self.upstream_era = MODERN
        elif method == "initialize" and isinstance(result, dict):
            version = result.get("protocolVersion")
            self.protocol = version if isinstance(version, str) else None
        elif pending.wrap is not None:
            wrapped = elevate.wrap_result(self.gate, result, *pending.wrap)
            if wrapped is not None:
                answer = dict(answer, result=wrapped)
        self._reply(key, answer, pending.source, out, remember=False)

    def _server_request(self, msg: dict[str, Any], out: list[Action]) -> None:
        if self.stateless or self.upstream_era == LEGACY:
            # a 2026 client takes no requests from the server: it cannot be asked
            self._send_server(rpc.error_message(msg["id"], rpc.METHOD_NOT_FOUND, "the client speaks "
                                                "2026-07-28, which has no requests from the server"), out)
            return
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
        params = msg.get("params")
        if method in LIST_CHANGED:
            if method == "notifications/tools/list_changed":
                self.gate.mark_stale()
            if self.upstream_era == LEGACY:
                self._to_listeners(msg, LIST_CHANGED[method], out)
                return
        elif method == "notifications/cancelled":
            server_id = params.get("requestId") if isinstance(params, dict) else None
            ours = self._relayed_key(server_id)
            if ours is not None:
                del self._relayed[ours]
                # (params is a dict: a relayed request was found by the id it holds)
                msg = dict(msg, params=dict(params, requestId=ours[1]))  # type: ignore[arg-type]
            else:
                key = rpc.id_key(server_id)
                pending = self._pending.get(key) if key is not None else None
                if pending is None or pending.method != LISTEN:
                    return  # nothing the client was asked under that id
                related = key   # the server ends a subscription stream
                msg = dict(msg, params=dict(params, requestId=pending.id))  # type: ignore[arg-type]
        elif method == "notifications/progress":
            token = rpc.id_key(params.get("progressToken")) if isinstance(params, dict) else None
            related = self._progress.get(token) if token is not None else None
            pending = self._pending.get(related) if related is not None else None
            if pending is not None and pending.token is not None:
                msg = dict(msg, params=dict(params, progressToken=pending.token))  # type: ignore[arg-type]
        elif self.upstream_era == LEGACY and method in ("notifications/message", "notifications/resources/updated"):
            return   # a 2026 client opts in to these per request or subscription: nothing asked for them
        meta = params.get("_meta") if isinstance(params, dict) else None
        if related is None and isinstance(meta, dict) and modern.SUBSCRIPTION_ID_KEY in meta:
            key = rpc.id_key(meta[modern.SUBSCRIPTION_ID_KEY])
            pending = self._pending.get(key) if key is not None else None
            if pending is not None and pending.method == LISTEN:
                related = key   # on the subscription's stream, under the client's id
                if self.stateless:
                    msg = dict(msg, params=dict(params, _meta=dict(meta, **{modern.SUBSCRIPTION_ID_KEY: pending.id})))  # type: ignore[arg-type]
        pending = self._pending.get(related) if related is not None else None
        self._send_client(msg, out, related, pending.source.origin if pending is not None else None)

    def _to_listeners(self, msg: dict[str, Any], flag: str, out: list[Action]) -> None:
        """A handshake-era server's list_changed notification, for a 2026 client: on every
        subscription stream (served by the proxy) that asked for it, nowhere else."""
        for key, listen in self._listens.items():
            if listen.honoured.get(flag):
                self._send_client({"jsonrpc": "2.0", "method": msg["method"],
                                   "params": {"_meta": {modern.SUBSCRIPTION_ID_KEY: listen.id}}},
                                  out, key, listen.source.origin)

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
        if self.stateless:
            return   # the ids here are the proxy's, never reused
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
        times += [min(h.deadline, h.next_keepalive) for h in self._asking.values()]
        if self._listing is not None:
            times.append(self._listing.deadline)
        if self._probe is not None:
            times.append(self._probe.deadline)
        times = [t for t in times if t != math.inf]
        return min(times) if times else None

    def tick(self) -> list[Action]:
        """Expire what waited too long: requests the server did not answer, requests of the
        server the client did not answer, questions the user did not answer, the listing;
        send the keep-alives that are due."""
        now = self.clock()
        out: list[Action] = []
        if self._listing is not None and self._listing.deadline <= now:
            log.warning("the MCP server did not list its tools within %g s", self.limits.listing_timeout)
            self._listed(None, out)
        if self._probe is not None and self._probe.deadline <= now:
            self._probed(None, out)
        for key, pending in [(k, p) for k, p in self._pending.items() if p.deadline <= now]:
            del self._pending[key]
            self._remember(key)
            out.append(ToServer(encode({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                        "params": {"requestId": key[1] if self.stateless else pending.id,
                                                   "reason": "no answer in time"}})))
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
            self._settle(held, elevate.TIMEOUT, held.timeout_text, out)
        for held in [h for h in self._asking.values() if h.next_keepalive <= now]:
            self._keepalive(held, now, out)
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
        self._probe = None
        for key, held in list(self._held.items()):
            del self._held[key]
            self._reply(key, rpc.error_message(held.msg["id"], rpc.SERVER_GONE, f"{why} before answering tools/call"),
                        held.source, out)
        for key, waiting in list(self._waiting.items()):
            del self._waiting[key]
            self._reply(key, rpc.error_message(waiting.msg["id"], rpc.SERVER_GONE,
                                               f"{why} before answering {waiting.msg['method']}"), waiting.source, out)
        for key, listen in list(self._listens.items()):
            del self._listens[key]
            self._reply(key, rpc.error_message(listen.id, rpc.SERVER_GONE, f"{why}; the subscription ended"),
                        listen.source, out)
        for key, pending in list(self._pending.items()):
            del self._pending[key]
            self._reply(key, rpc.error_message(pending.id, rpc.SERVER_GONE, f"{why} before answering {pending.method}"),
                        pending.source, out)
        self._relayed.clear()
        return out

    @property
    def in_flight(self) -> int:
        """Client requests not answered yet (forwarded, held, or waiting for the server's revision)."""
        return len(self._pending) + len(self._held) + len(self._waiting)


def _handshake_capabilities(capabilities: Any) -> dict[str, Any]:
    """A 2026 client's capabilities as the proxy declares them in its own handshake with a
    handshake-era server: none of the server-to-client features (the client cannot take
    requests from the server: the proxy refuses them), the rest as declared."""
    caps = capabilities if isinstance(capabilities, dict) else {}
    return {k: v for k, v in caps.items() if k not in ("elicitation", "sampling", "roots")}
