"""The stdio proxy: an MCP client starts `callgate proxy … -- SERVER`, the proxy starts SERVER
and relays newline-delimited JSON-RPC both ways, deciding every tools/call on the way in.

Two threads, one per direction, each reading with a blocking readline (the lowest-latency
relay CPython offers: no event loop between a pipe and the next pipe). Messages the gate
does not care about go out as the very bytes that came in. The server's stderr is the
proxy's stderr (inherited), so it passes through without a copy.

Bookkeeping shared by the two threads (under one lock): the client requests in flight
(so a response to tools/list is recognised and filtered, a reused id is refused, and a
server that dies leaves no request unanswered), and the proxy's own requests (tools/list
fetched to check pins).
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

from . import jsonrpc as rpc
from .gate import Gate, Identity, denial_result

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
                 cwd: Optional[str] = None, name: str = "callgate proxy") -> None:
        self.gate, self.identity, self.command = gate, identity, list(command)
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

    def _one_from_client(self, msg: Any, raw: Optional[bytes]) -> tuple[str, bytes]:
        """('forward', bytes for the server) or ('reply', bytes for the client)."""
        kind = rpc.kind(msg)
        if kind == "request":
            id_ = msg["id"]
            key = rpc.id_key(id_)
            if key is None:
                return "reply", rpc.error(None, rpc.INVALID_REQUEST, "Invalid Request: the id must be a string or an integer, not null")
            method = msg["method"]
            with self._lock:
                if key in self._pending or key in self._recent:
                    return "reply", rpc.error(id_, rpc.INVALID_REQUEST, "Invalid Request: this id was already used in this session")
            if method == "tools/call":
                params = msg.get("params")
                if self.gate.pins is not None and isinstance(params, dict) and \
                        isinstance(params.get("name"), str) and self.gate.needs_definitions(params["name"]):
                    self._refresh_definitions()
                reason = self.gate.check(params, self.identity)
                if reason is not None:
                    self._remember(key)
                    return "reply", rpc.result(id_, denial_result(reason, params))
                # the server must run exactly what was decided: forward the canonical form
                # unless the client's bytes already are it (no parser differentials, e.g.
                # duplicate keys, between the gate and the server)
                canonical = _dumps(msg)
                if raw is None or canonical != raw.strip():
                    raw = canonical
            with self._lock:
                self._pending[key] = (id_, method)
            return "forward", raw if raw is not None else _dumps(msg)
        if kind in ("notification", "response"):
            return "forward", raw if raw is not None else _dumps(msg)
        id_ = msg.get("id") if isinstance(msg, dict) else None
        return "reply", rpc.error(id_ if rpc.id_key(id_) else None, rpc.INVALID_REQUEST, "Invalid Request")

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
            verdict, data = self._one_from_client(msg, None)
            if verdict == "reply":
                replies.append(data)
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

    def _refresh_definitions(self) -> None:
        """List the server's tools (every page) so the pins check sees current definitions."""
        cursor = None
        for _ in range(1000):  # a server that pages forever does not hang the proxy
            self._counter += 1
            id_ = f"{self._prefix}{self._counter}"
            key = rpc.id_key(id_)
            box: "queue.Queue[Any]" = queue.Queue(1)
            with self._lock:
                self._internal[key] = box
            params = {"cursor": cursor} if cursor else {}
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
            pending = list(self._pending.values())
            self._pending.clear()
            boxes = list(self._internal.values())
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
