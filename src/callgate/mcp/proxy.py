"""The stdio proxy: an MCP client starts `callgate proxy … -- SERVER`, the proxy starts SERVER
and relays newline-delimited JSON-RPC both ways through a Session (session.py), which
decides every tools/call and re-encodes every message.

The transport is threads around blocking pipes (the lowest-latency relay CPython offers:
no event loop between a pipe and the next pipe): one reads the client, one reads the
server, one writes to the server in order (a call whose decision must first be durable in
the audit trail waits there, and what follows it waits behind it, while the readers go
on: concurrent calls share one audit write), and one expires what waited too long. Every
call into the session is made under one lock. The server's stderr is the proxy's stderr
(inherited), so it passes through without a copy.
"""

from __future__ import annotations

import collections
import logging
import os
import signal
import subprocess
import sys
import threading
from typing import IO, Any, Optional, Sequence

from . import elevate
from .chains import PROXY_ONLY_ENV
from .gate import Gate, Identity
from .session import Action, Limits, Session, ToClient, ToServer
from .wire import MAX_MESSAGE

log = logging.getLogger("callgate.mcp")
AUDIT_TIMEOUT = 10.0    # seconds a forwarded call waits for its decision to be durable
TICK = 0.25             # seconds between looks at the session's deadlines, at most


class _ClientOut:
    """The client's side of the pipe: whole lines, one writer at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock:
            try:
                self._stream.write(data + b"\n")
                self._stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                pass  # the client went away; the reader side ends the session


class _ServerOut:
    """The server's side of the pipe, in order. A message is written at once when nothing
    waits before it; a call whose audit event must first be durable waits on this writer's
    thread, and everything after it queues behind it."""

    def __init__(self, proxy: "StdioProxy") -> None:
        self._proxy = proxy
        self._lock = threading.Condition()
        self._queue: collections.deque[ToServer] = collections.deque()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="callgate-to-server", daemon=True)
        self._thread.start()

    def send(self, action: ToServer) -> None:
        with self._lock:
            if action.mark is None and not self._queue and not self._busy:
                self._write(action.data)
                return
            self._queue.append(action)
            self._lock.notify()

    def _write(self, data: bytes) -> None:
        proc = self._proxy.proc
        try:
            proc.stdin.write(data + b"\n")  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]
        except (BrokenPipeError, ValueError, OSError, AttributeError):
            pass  # the server is gone: its reader answers everything pending

    def _run(self) -> None:
        gate = self._proxy.gate
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if self._closed:
                    return
                action = self._queue[0]
                self._busy = True
            why = None
            if action.mark is not None:
                why = gate.wait_durable(action.mark, self._proxy.audit_timeout)
            with self._lock:
                self._queue.popleft()
                if why is None:
                    self._write(action.data)
                self._busy = False
            if why is not None:
                self._proxy.not_durable(action, why)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()


class StdioProxy:
    """One client, one server process. run() returns the exit status."""

    def __init__(self, gate: Gate, identity: Identity, command: Sequence[str], *,
                 client_in: Optional[IO[bytes]] = None, client_out: Optional[IO[bytes]] = None,
                 max_message: int = MAX_MESSAGE, env: Optional[dict[str, str]] = None,
                 cwd: Optional[str] = None,
                 elevation: Optional[elevate.Elevation] = None, limits: Optional[Limits] = None,
                 audit_timeout: float = AUDIT_TIMEOUT) -> None:
        self.gate, self.command = gate, list(command)
        self.session = Session(gate, identity, elevation=elevation, limits=limits)
        # our own reader on a copy of fd 0: a daemon thread blocked in it must not hold the
        # lock of sys.stdin's buffer when the interpreter shuts down
        self._in = client_in if client_in is not None else os.fdopen(os.dup(0), "rb", buffering=1 << 16)
        self._out = _ClientOut(client_out if client_out is not None else sys.stdout.buffer)
        self.max_message = max_message
        self.audit_timeout = audit_timeout
        # the server gets the proxy's environment without what is the proxy's alone: the chain
        # token (a credential) and the wrapped host entry
        self._env = env if env is not None else {k: v for k, v in os.environ.items() if k not in PROXY_ONLY_ENV}
        self._cwd = cwd
        self._lock = threading.Lock()       # every call into the session
        self._done = threading.Event()
        self._client_closed = False
        self._status = 0
        self.proc: Optional[subprocess.Popen[bytes]] = None
        self._to_server: Optional[_ServerOut] = None

    @property
    def identity(self) -> Identity:
        """Who the calls are decided for; a host may change it between calls (the demo does)."""
        assert self.session.identity is not None
        return self.session.identity

    @identity.setter
    def identity(self, identity: Identity) -> None:
        with self._lock:
            self.session.identity = identity

    # ================================================================ lifecycle

    def run(self) -> int:
        """Start the server and relay until either side ends; the exit status (127: the
        server's command was not found)."""
        try:
            self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=None, env=self._env, cwd=self._cwd)
        except OSError as exc:
            log.error("cannot start the MCP server %r: %s", self.command[0], exc.strerror or exc)
            return 127 if isinstance(exc, FileNotFoundError) else 1
        if threading.current_thread() is threading.main_thread():
            # SIGTERM: stop like end-of-input (the server is stopped, not orphaned)
            signal.signal(signal.SIGTERM, self._on_sigterm)
            if self.gate.watcher is not None and hasattr(signal, "SIGHUP"):   # SIGHUP: reload the policy now
                signal.signal(signal.SIGHUP, lambda signum, frame: self.gate.watcher.reload("SIGHUP"))
        self._to_server = _ServerOut(self)
        for target, name in ((self._client_loop, "callgate-client"), (self._server_loop, "callgate-server"),
                             (self._timer_loop, "callgate-timer")):
            threading.Thread(target=target, name=name, daemon=True).start()
        try:
            self._done.wait()
        except KeyboardInterrupt:
            self._client_closed = True
            self._status = 130
        finally:
            self._to_server.close()
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
            proc.stdin.close()  # type: ignore[union-attr]  # the polite way to end an MCP stdio server
        except (OSError, ValueError):
            pass
        for step in (proc.terminate, proc.kill):
            try:
                proc.wait(timeout=3)
                return
            except subprocess.TimeoutExpired:
                step()
        proc.wait(timeout=3)

    # ================================================================ carrying out the session's actions

    def _do(self, actions: list[Action]) -> None:
        for action in actions:
            if type(action) is ToClient:
                self._out.send(action.data)
            else:
                self._to_server.send(action)  # type: ignore[union-attr]

    def not_durable(self, action: ToServer, why: str) -> None:
        """A call the audit trail did not make durable in time: the client gets a denial."""
        log.error("a call was not forwarded: its decision could not be made durable (%s)", why)
        with self._lock:
            actions = self.session.not_durable(action.key, why)
        self._do(actions)

    # ================================================================ client -> server

    def _lines(self, readline: Any) -> Any:
        """Each line of a pipe (LF-terminated), or None for one over the size limit (the rest
        of it is read and thrown away)."""
        limit = self.max_message + 2
        while True:
            line = readline(limit)
            if not line:
                return
            if len(line) >= limit and not line.endswith(b"\n"):
                while True:
                    chunk = readline(1 << 20)
                    if not chunk or chunk.endswith(b"\n"):
                        break
                yield None
                continue
            yield line

    def _client_loop(self) -> None:
        try:
            for line in self._lines(self._in.readline):
                with self._lock:
                    actions = self.session.too_large(self.max_message) if line is None else \
                        self.session.from_client(line)
                self._do(actions)
        except Exception:  # pragma: no cover - never leave the client hanging silently
            log.exception("error reading from the client")
        # the client is gone: let the server finish and stop
        self._client_closed = True
        self._to_server.close()  # type: ignore[union-attr]
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]
        except (OSError, ValueError):
            pass
        threading.Thread(target=self._reap_after_client, daemon=True).start()

    def _reap_after_client(self) -> None:
        self._stop_server()
        self._done.set()

    # ================================================================ server -> client

    def _server_loop(self) -> None:
        try:
            for line in self._lines(self.proc.stdout.readline):  # type: ignore[union-attr]
                if line is None:
                    log.warning("dropped a message from the MCP server larger than %d bytes", self.max_message)
                    continue
                with self._lock:
                    actions = self.session.from_server(line)
                self._do(actions)
        except Exception:  # pragma: no cover
            log.exception("error reading from the server")
        self._server_gone()

    def _server_gone(self) -> None:
        """EOF from the server. If the client is still there, answer every request in
        flight with an error and end the session with a non-zero status."""
        proc = self.proc
        assert proc is not None
        try:
            rc = proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            rc = proc.wait()
        how = f"exited with status {rc}" if rc >= 0 else f"was killed by signal {-rc}"
        with self._lock:
            pending = self.session.in_flight
            actions = self.session.server_gone(f"the MCP server {how}")
        if self._client_closed:
            if not self._status:
                self._status = rc if rc and rc > 0 else 0
            self._done.set()
            return
        self._do(actions)
        log.error("the MCP server %r %s; %d pending request(s) answered with an error", self.command[0], how, pending)
        self._status = rc if rc > 0 else 1
        self._done.set()

    # ================================================================ time

    def _timer_loop(self) -> None:
        """Expire what waited too long (session.tick), waking at the next deadline."""
        while not self._done.is_set():
            with self._lock:
                deadline = self.session.next_deadline()
                now = self.session.clock()
            # woken at least every TICK seconds: a deadline is kept to within that
            wait = TICK if deadline is None else min(max(deadline - now, 0.0), TICK)
            if wait > 0:
                self._done.wait(wait)
            with self._lock:
                actions = self.session.tick()
            if actions:
                self._do(actions)
