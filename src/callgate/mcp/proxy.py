"""The stdio proxy: an MCP client starts `callgate proxy … -- SERVER`, the proxy starts SERVER
and relays newline-delimited JSON-RPC both ways, deciding every tools/call on the way in.

Two threads, one per direction, each reading with a blocking readline (the lowest-latency
relay CPython offers: no event loop between a pipe and the next pipe). Messages the gate
does not care about go out as the very bytes that came in. The server's stderr is the
proxy's stderr (inherited), so it passes through without a copy.

Bookkeeping shared by the two threads (under one lock): the client requests in flight
(so a response to tools/list is recognised and filtered, a reused id is refused, and a
server that dies leaves no request unanswered), and the proxy's own requests (tools/list
fetched to check pins and tiers, and elicitation requests asking the user to approve an
Elevate, see elevate.py). A call waiting for the user's approval is held: the client thread
keeps relaying, and the call is forwarded or denied when the answer (or the timeout) comes.
"""

from __future__ import annotations

import collections
import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from typing import IO, Any, Optional, Sequence

import orjson

from . import elevate
from . import jsonrpc as rpc
from .gate import MODERN_VERSION_KEY, Gate, Identity, Verdict, denial_result, without_approvals

MAX_MESSAGE = 64 * 1024 * 1024     # a message larger than this from the client is refused
RECENT_IDS = 65536                 # how many answered ids are remembered to refuse reuse
INTERNAL_TIMEOUT = 10.0            # seconds to wait for the server to list its tools
_loads, _dumps = orjson.loads, orjson.dumps


class _Out:
    """The client's side of the pipe: whole messages, one writer at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock:
            try:
                self._stream.write(data + b"\n" if data[-1:] != b"\n" else data)
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the client went away; the reader side ends the session


class StdioProxy:
    """One client, one server process. run() returns the exit status."""

    def __init__(self, gate: Gate, identity: Identity, command: Sequence[str], *,
                 client_in: Optional[IO[bytes]] = None, client_out: Optional[IO[bytes]] = None,
                 max_message: int = MAX_MESSAGE, env: Optional[dict] = None,
                 cwd: Optional[str] = None, name: str = "callgate proxy",
                 elevation: Optional[elevate.Elevation] = None) -> None:
        self.gate, self.identity, self.command = gate, identity, list(command)
        self.elevation = elevation if elevation is not None else elevate.Elevation()
        # our own reader on a copy of fd 0: a daemon thread blocked in it must not hold the
        # lock of sys.stdin's buffer when the interpreter shuts down
        self._in = client_in if client_in is not None else os.fdopen(os.dup(0), "rb", buffering=1 << 16)
        self._out = _Out(client_out if client_out is not None else sys.stdout.buffer)
        self.max_message = max_message
        self._env, self._cwd, self._name = env, cwd, name
        self._lock = threading.Lock()
        self._pending: dict[tuple, tuple[Any, str]] = {}        # id key -> (id, method)
        self._recent: collections.OrderedDict = collections.OrderedDict()
        self._batches: dict[tuple, list[bytes]] = {}           # first forwarded id -> replies to add
        self._internal: dict[tuple, "queue.Queue[Any]"] = {}
        self._elicits: dict[tuple, _Held] = {}                 # our elicitation id -> the call it decides
        self._held: dict[tuple, tuple] = {}                    # the held call's id key -> our elicitation id key
        self._client_caps: Any = None                          # what the client declared at initialize
        self._client_protocol: Optional[str] = None
        self._prefix = f"callgate-{uuid.uuid4().hex[:12]}-"
        self._counter = 0
        self._done = threading.Event()
        self._client_closed = False
        self._status = 0
        self.proc: Optional[subprocess.Popen] = None

    # ================================================================ lifecycle

    def run(self) -> int:
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=None, env=self._env, cwd=self._cwd)
        except OSError as exc:
            print(f"{self._name}: cannot start the MCP server {self.command[0]!r}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 127 if isinstance(exc, FileNotFoundError) else 1
        if threading.current_thread() is threading.main_thread():
            # SIGTERM: stop like end-of-input (the server is stopped, not orphaned)
            signal.signal(signal.SIGTERM, self._on_sigterm)
        readers = [threading.Thread(target=self._client_loop, name="callgate-client", daemon=True),
                   threading.Thread(target=self._server_loop, name="callgate-server", daemon=True)]
        for t in readers:
            t.start()
        try:
            self._done.wait()
        except KeyboardInterrupt:
            self._client_closed = True
            self._status = 130
        finally:
            self._stop_server()
        return self._status

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._client_closed = True  # a deliberate end: the server's exit is not a failure
        self._status = 128 + signum
        self._done.set()

    def _stop_server(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.stdin.close()  # the polite way to end an MCP stdio server
        except (OSError, ValueError):
            pass
        for step in (proc.terminate, proc.kill):
            try:
                proc.wait(timeout=3)
                return
            except subprocess.TimeoutExpired:
                step()
        proc.wait(timeout=3)

    # ================================================================ client -> server

    def _client_loop(self) -> None:
        limit = self.max_message + 2
        readline = self._in.readline
        try:
            while True:
                line = readline(limit)
                if not line:
                    break
                if len(line) >= limit and not line.endswith(b"\n"):
                    self._skip_rest(readline)
                    self._out.send(rpc.error(None, rpc.TOO_LARGE, f"message larger than {self.max_message} bytes"))
                    continue
                self._from_client(line)
        except Exception as exc:  # pragma: no cover - never leave the client hanging silently
            print(f"{self._name}: error reading from the client: {exc!r}", file=sys.stderr)
        # the client is gone: let the server finish and stop
        self._client_closed = True
        try:
            self.proc.stdin.close()
        except (OSError, ValueError):
            pass
        threading.Thread(target=self._reap_after_client, daemon=True).start()

    def _reap_after_client(self) -> None:
        self._stop_server()
        self._done.set()

    @staticmethod
    def _skip_rest(readline: Any) -> None:
        while True:
            chunk = readline(1 << 20)
            if not chunk or chunk.endswith(b"\n"):
                return

    def _from_client(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            msg = _loads(line)
        except orjson.JSONDecodeError:
            self._out.send(rpc.error(None, rpc.PARSE_ERROR, "Parse error: not valid JSON"))
            return
        if isinstance(msg, list):
            self._batch_from_client(msg, line)
            return
        verdict, data = self._one_from_client(msg, line)
        if verdict == "reply":
            self._out.send(data)
        elif verdict == "forward":
            self._to_server(data, msg)

    def _one_from_client(self, msg: Any, raw: Optional[bytes], batch: bool = False) -> tuple[str, bytes]:
        """('forward', bytes for the server), ('reply', bytes for the client) or ('held', b""):
        nothing to send now (a call waiting for the user's approval, or a message that was
        the proxy's own business)."""
        kind = rpc.kind(msg)
        if kind == "request":
            id_ = msg["id"]
            key = rpc.id_key(id_)
            if key is None:
                return "reply", rpc.error(None, rpc.INVALID_REQUEST, "Invalid Request: the id must be a string or an integer, not null")
            method = msg["method"]
            with self._lock:
                if key in self._pending or key in self._recent or key in self._held:
                    return "reply", rpc.error(id_, rpc.INVALID_REQUEST, "Invalid Request: this id was already used in this session")
            if method == "initialize":
                params = msg.get("params")
                if isinstance(params, dict):
                    self._client_caps = params.get("capabilities")
                    version = params.get("protocolVersion")
                    self._client_protocol = version if isinstance(version, str) else None
            elif method == "tools/call":
                params = msg.get("params")
                if isinstance(params, dict) and isinstance(params.get("name"), str) and \
                        self.gate.needs_definitions(params["name"]):
                    self._refresh_definitions(params)
                verdict = self.gate.decide(params, self.identity)
                if not verdict.allowed:
                    reason = self._not_allowed(msg, key, verdict, batch)
                    if reason is None:
                        return "held", b""
                    self._remember(key)
                    return "reply", rpc.result(id_, denial_result(reason, params))
                # the server must run exactly what was decided: forward the canonical form
                # unless the client's bytes already are it (no parser differentials, e.g.
                # duplicate keys, between the gate and the server); approvals stay here
                canonical = _dumps(without_approvals(msg))
                if raw is None or canonical != raw.strip():
                    raw = canonical
            with self._lock:
                self._pending[key] = (id_, method)
            return "forward", raw if raw is not None else _dumps(msg)
        if kind == "response" and self._answer_to_us(msg):
            return "held", b""
        if kind == "notification" and msg["method"] == "notifications/cancelled" and self._cancel_held(msg):
            return "held", b""
        if kind in ("notification", "response"):
            return "forward", raw if raw is not None else _dumps(msg)
        id_ = msg.get("id") if isinstance(msg, dict) else None
        return "reply", rpc.error(id_ if rpc.id_key(id_) else None, rpc.INVALID_REQUEST, "Invalid Request")

    # ---------------------------------------------------------------- Elevate: approvals and elicitation

    def _not_allowed(self, msg: dict, key: tuple, v: Verdict, batch: bool) -> Optional[str]:
        """The reason for a call that does not run now, or None when it is held while the
        user is asked to approve it (elevate.py)."""
        if v.decision != "Elevate":
            return v.reason
        params = msg.get("params")
        meta = params.get("_meta") if isinstance(params, dict) else None
        modern = isinstance(meta, dict) and MODERN_VERSION_KEY in meta
        refusal = elevate.why_not(v, elicitation=elevate.can_elicit(self._client_caps), elevation=self.elevation,
                                  batch=batch, modern=modern)
        if refusal is not None:
            outcome, why = refusal
            return elevate.denial(v, self.identity, self.gate, outcome, why, elevate.method_for(v, outcome))
        with self._lock:
            self._counter += 1
            eid = f"{self._prefix}elicit-{self._counter}"
            ekey = rpc.id_key(eid)
            held = _Held(msg, key, v)
            self._elicits[ekey] = held
            self._held[key] = ekey
        held.timer = threading.Timer(self.elevation.timeout, self._elicit_expired, (ekey,))
        held.timer.daemon = True
        held.timer.start()
        self._out.send(_dumps(elevate.elicitation_request(eid, v, self._client_protocol)))
        return None

    def _take_held(self, ekey: tuple) -> Optional["_Held"]:
        with self._lock:
            held = self._elicits.pop(ekey, None)
            if held is not None:
                self._held.pop(held.key, None)
        if held is not None and held.timer is not None:
            held.timer.cancel()
        return held

    def _answer_to_us(self, msg: dict) -> bool:
        """A response to one of the proxy's elicitation requests: settle the held call. (A
        late answer, after the timeout, is dropped: it is ours, not the server's.)"""
        id_ = msg.get("id")
        if not (isinstance(id_, str) and id_.startswith(self._prefix)):
            return False
        held = self._take_held(rpc.id_key(id_))
        if held is not None:
            outcome, why = elevate.outcome_of(msg)
            self._settle(held, outcome, why)
        return True

    def _cancel_held(self, msg: dict) -> bool:
        """notifications/cancelled for a call held for approval: it is dropped (no answer, as
        for any cancelled request) and the user's question withdrawn."""
        params = msg.get("params")
        key = rpc.id_key(params.get("requestId")) if isinstance(params, dict) else None
        with self._lock:
            ekey = self._held.get(key) if key is not None else None
        if ekey is None:
            return False
        held = self._take_held(ekey)
        if held is None:
            return True
        self._withdraw(ekey, "the tool call was cancelled")
        self._remember(held.key)
        elevate.denial(held.verdict, self.identity, self.gate, elevate.CANCELLED, "the client cancelled the call",
                       "elicitation")
        return True

    def _elicit_expired(self, ekey: tuple) -> None:
        held = self._take_held(ekey)
        if held is None:
            return
        self._withdraw(ekey, "no answer in time")
        self._settle(held, elevate.TIMEOUT, f"no answer within {self.elevation.timeout:g} s")

    def _withdraw(self, ekey: tuple, reason: str) -> None:
        """Tell the client the proxy no longer waits for its elicitation request."""
        self._out.send(_dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                               "params": {"requestId": ekey[1], "reason": reason}}))

    def _settle(self, held: "_Held", outcome: str, why: str) -> None:
        """Run the held call (approved) or answer it with the denial."""
        v, msg = held.verdict, held.msg
        id_, params = msg["id"], msg.get("params")
        if outcome == elevate.APPROVED:
            if elevate.record_outcome(self.gate, v, self.identity, method="elicitation", outcome=outcome,
                                      reason=elevate.approved_reason(v, self.identity)):
                with self._lock:
                    self._pending[held.key] = (id_, "tools/call")
                self._to_server(_dumps(without_approvals(msg)), msg)
                return
            outcome, why = elevate.ERROR, "the audit trail could not record the approval"
        reason = elevate.denial(v, self.identity, self.gate, outcome, why, "elicitation")
        self._remember(held.key)
        self._out.send(rpc.result(id_, denial_result(reason, params)))

    def _batch_from_client(self, batch: list, line: bytes) -> None:
        """A JSON-RPC batch: every call in it is decided; the server gets the rest as a
        batch, and the client one array with the server's answers and the proxy's."""
        if not batch:
            self._out.send(rpc.error(None, rpc.INVALID_REQUEST, "Invalid Request: empty batch"))
            return
        forward: list[bytes] = []
        replies: list[bytes] = []
        first_key = None
        for msg in batch:
            verdict, data = self._one_from_client(msg, None, batch=True)
            if verdict == "reply":
                replies.append(data)
            elif verdict == "held":
                continue
            else:
                forward.append(data)
                if first_key is None and rpc.kind(msg) == "request":
                    first_key = rpc.id_key(msg["id"])
        if forward:
            if first_key is not None and replies:
                with self._lock:
                    self._batches[first_key] = replies
                replies = []
            self._to_server(b"[" + b",".join(forward) + b"]", batch)
        if replies:
            self._out.send(b"[" + b",".join(replies) + b"]")

    def _to_server(self, data: bytes, msg: Any) -> None:
        try:
            stdin = self.proc.stdin
            stdin.write(data if data.endswith(b"\n") else data.rstrip(b"\r\n") + b"\n")
            stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            # the server is gone: the server thread answers everything pending
            pass

    def _remember(self, key: tuple) -> None:
        """An answered id stays refused for reuse (a bounded window of recent ids)."""
        with self._lock:
            self._recent[key] = None
            if len(self._recent) > RECENT_IDS:
                self._recent.popitem(last=False)

    # ---------------------------------------------------------------- pins: the proxy's own requests

    def _refresh_definitions(self, call_params: Optional[dict] = None) -> None:
        """List the server's tools (every page) so the pins check and the tiers see current
        definitions. A call of the 2026 protocol lends its version (and client info) to the
        listing: there is no handshake to have agreed on it."""
        meta = reserved_meta(call_params)
        cursor = None
        for _ in range(1000):  # a server that pages forever does not hang the proxy
            self._counter += 1
            id_ = f"{self._prefix}{self._counter}"
            key = rpc.id_key(id_)
            box: "queue.Queue[Any]" = queue.Queue(1)
            with self._lock:
                self._internal[key] = box
            params: dict = {"cursor": cursor} if cursor else {}
            if meta:
                params["_meta"] = meta
            self._to_server(_dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/list", "params": params}), None)
            try:
                reply = box.get(timeout=INTERNAL_TIMEOUT)
            except queue.Empty:
                reply = None
            with self._lock:
                self._internal.pop(key, None)
            result = reply.get("result") if isinstance(reply, dict) else None
            if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
                return
            self.gate.record_tools(result["tools"])
            cursor = result.get("nextCursor")
            if not cursor:
                self.gate.stale = False
                return

    # ================================================================ server -> client

    def _server_loop(self) -> None:
        readline = self.proc.stdout.readline
        try:
            while True:
                line = readline()
                if not line:
                    break
                self._from_server(line)
        except Exception as exc:  # pragma: no cover
            print(f"{self._name}: error reading from the server: {exc!r}", file=sys.stderr)
        self._server_gone()

    def _from_server(self, line: bytes) -> None:
        if not line.strip():
            return
        try:
            msg = _loads(line)
        except orjson.JSONDecodeError:
            self._out.send(line)  # not ours to judge: the client sees what the server sent
            return
        if isinstance(msg, list):
            out, changed, extras = [], False, []
            for item in msg:
                new = self._one_from_server(item)
                if new is _DROP:
                    changed = True
                    continue
                if new is not None:
                    changed = True
                    item = new
                out.append(item)
                key = rpc.id_key(item.get("id")) if isinstance(item, dict) else None
                if key is not None:
                    with self._lock:
                        extras.extend(self._batches.pop(key, ()))
            if extras:
                self._out.send(b"[" + b",".join([_dumps(m) for m in out] + extras) + b"]")
            elif changed:
                if out:
                    self._out.send(_dumps(out))
            else:
                self._out.send(line)
            return
        new = self._one_from_server(msg)
        if new is None:
            self._out.send(line)
        elif new is not _DROP:
            self._out.send(_dumps(new))

    def _one_from_server(self, msg: Any) -> Any:
        """None: forward as is; _DROP: the proxy's own; otherwise the message to send."""
        kind = rpc.kind(msg)
        if kind == "response":
            key = rpc.id_key(msg["id"])
            with self._lock:
                box = self._internal.pop(key, None)
                entry = self._pending.pop(key, None)
            if box is not None:
                box.put(msg)
                return _DROP
            if entry is None:
                return None
            self._remember(key)
            if entry[1] == "tools/list" and "result" in msg:
                filtered = self.gate.filter_list_result(msg["result"], self.identity.role)
                if filtered is not None:
                    return dict(msg, result=filtered)
            return None
        if kind == "notification" and msg["method"] == "notifications/tools/list_changed":
            self.gate.mark_stale()
        return None

    def _server_gone(self) -> None:
        """EOF from the server. If the client is still there, answer every request in
        flight with an error and end the session with a non-zero status."""
        proc = self.proc
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        with self._lock:
            held = list(self._elicits.values())
            self._elicits.clear()
            self._held.clear()
            pending = list(self._pending.values()) + [(h.msg["id"], "tools/call") for h in held]
            self._pending.clear()
            boxes = list(self._internal.values())
        for h in held:
            if h.timer is not None:
                h.timer.cancel()
        for box in boxes:
            box.put(None)
        if self._client_closed:
            if not self._status:
                self._status = rc if rc and rc > 0 else 0
            self._done.set()
            return
        how = f"exited with status {rc}" if rc >= 0 else f"was killed by signal {-rc}"
        for id_, method in pending:
            self._out.send(rpc.error(id_, rpc.SERVER_GONE, f"the MCP server {how} before answering {method}"))
        print(f"{self._name}: the MCP server {self.command[0]!r} {how}; "
              f"{len(pending)} pending request(s) answered with an error", file=sys.stderr)
        self._status = rc if rc > 0 else 1
        self._done.set()


_DROP = object()


class _Held:
    """A tools/call waiting for the user's answer to an elicitation."""

    __slots__ = ("msg", "key", "verdict", "timer")

    def __init__(self, msg: dict, key: tuple, verdict: Verdict) -> None:
        self.msg, self.key, self.verdict = msg, key, verdict
        self.timer: Optional[threading.Timer] = None


_RESERVED_PREFIX = "io.modelcontextprotocol/"
_RESERVED_LENT = ("protocolVersion", "clientInfo", "clientCapabilities")


def reserved_meta(params: Any) -> dict:
    """The reserved _meta entries (protocol version, client info and capabilities) of a 2026
    protocol request, for a request the proxy makes on its behalf; {} otherwise."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict) or MODERN_VERSION_KEY not in meta:
        return {}
    return {k: v for k, v in meta.items() if k in {_RESERVED_PREFIX + n for n in _RESERVED_LENT}}
