"""A minimal MCP stdio client speaking raw JSON-RPC: what `callgate pins approve` uses to
read a server's tool definitions exactly as they are on the wire (the digest the proxy
computes is over the same bytes' decoded form, not over an SDK model's re-rendering).
"""

from __future__ import annotations

import queue
import subprocess
import threading
from typing import Any, Optional, Sequence

import orjson

PROTOCOL_VERSION = "2025-06-18"


class RawClientError(Exception):
    """The server could not be started, did not answer in time, exited, or answered with an error."""


class RawClient:
    """One server process; request() sends and waits (bounded) for the matching response."""

    def __init__(self, command: Sequence[str], timeout: float = 20.0, env: Optional[dict[str, str]] = None) -> None:
        self.timeout = timeout
        try:
            self.proc = subprocess.Popen(list(command), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise RawClientError(f"cannot start {command[0]!r}: {exc.strerror or exc}") from None
        self._lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next = 0

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]  # (stdout=PIPE: never None)
            self._lines.put(line)
        self._lines.put(None)

    def send(self, message: Any) -> None:
        """Write one message (a line) to the server."""
        # (stdin=PIPE: never None)
        self.proc.stdin.write(orjson.dumps(message) + b"\n")  # type: ignore[union-attr]
        self.proc.stdin.flush()  # type: ignore[union-attr]

    def request(self, method: str, params: Optional[dict[str, Any]] = None) -> Any:
        """Send a request and return its result (lines that are not its answer are skipped);
        RawClientError on an error answer, a timeout or the server's exit."""
        self._next += 1
        id_ = self._next
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}})
        while True:
            try:
                line = self._lines.get(timeout=self.timeout)
            except queue.Empty:
                raise RawClientError(f"the server did not answer {method} within {self.timeout:g} s") from None
            if line is None:
                raise RawClientError(f"the server exited before answering {method}")
            try:
                msg = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(msg, dict) and msg.get("id") == id_ and "method" not in msg:
                if "error" in msg:
                    raise RawClientError(f"{method} failed: {msg['error'].get('message')}")
                return msg.get("result")

    def initialize(self) -> Any:
        """The initialize handshake (then notifications/initialized); the server's result."""
        result = self.request("initialize", {"protocolVersion": PROTOCOL_VERSION, "capabilities": {},
                                             "clientInfo": {"name": "callgate", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return result

    def list_tools(self) -> list[dict[str, Any]]:
        """Every tool definition the server lists, following nextCursor (at most 1000 pages)."""
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(1000):
            result = self.request("tools/list", {"cursor": cursor} if cursor else {})
            tools.extend(t for t in result.get("tools", []) if isinstance(t, dict))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    def close(self) -> None:
        """Close the server's input and wait for it (kill it after 3 s)."""
        try:
            self.proc.stdin.close()  # type: ignore[union-attr]  # (stdin=PIPE: never None)
        except OSError:
            pass
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=3)

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def list_tools_of(command: Sequence[str]) -> list[dict[str, Any]]:
    """Every tool definition a stdio server lists (all pages)."""
    with RawClient(command) as client:
        client.initialize()
        return client.list_tools()
