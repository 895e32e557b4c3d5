"""Helpers for the MCP tests (no tests here): a proxy process driven with raw JSON-RPC
lines, and the paths of the bundled servers. Every process has a timeout and is reaped."""

from __future__ import annotations

import contextlib
import os
import queue
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import orjson

from support import REPO

RAW_RESPONDER = REPO / "bench" / "raw_responder.py"
PY = sys.executable
TIMEOUT = 20.0


def proxy_argv(*options: str, server: Optional[list] = None) -> list[str]:
    return [PY, "-m", "callgate", "proxy", *options, "--", *(server or [PY, str(RAW_RESPONDER)])]


class Wire:
    """A process spoken to in raw newline-delimited JSON-RPC."""

    def __init__(self, argv: list[str], env: Optional[dict] = None, cwd: Optional[str] = None) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env={**os.environ, **(env or {})}, cwd=cwd)
        self.lines: "queue.Queue[Optional[bytes]]" = queue.Queue()
        self.stderr = b""
        self.other: list = []   # messages answer_to() passed over
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.stderr += line

    def send(self, msg: Any) -> None:
        data = msg if isinstance(msg, bytes) else orjson.dumps(msg)
        self.proc.stdin.write(data.rstrip(b"\n") + b"\n")
        self.proc.stdin.flush()

    def recv_raw(self, timeout: float = TIMEOUT) -> Optional[bytes]:
        return self.lines.get(timeout=timeout)

    def recv(self, timeout: float = TIMEOUT) -> Any:
        line = self.recv_raw(timeout)
        assert line is not None, f"the process ended; stderr: {self.stderr.decode(errors='replace')}"
        return orjson.loads(line)

    def call(self, id_: Any, method: str, params: Optional[dict] = None) -> Any:
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}})
        return self.recv()

    def answer_to(self, id_: Any, method: str, params: Optional[dict] = None) -> Any:
        """Send a request and return its answer, keeping what came before it in `self.other`."""
        self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params or {}})
        while True:
            msg = self.recv()
            if isinstance(msg, dict) and msg.get("id") == id_ and "method" not in msg:
                return msg
            self.other.append(msg)

    def initialize(self) -> Any:
        reply = self.call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                            "clientInfo": {"name": "test", "version": "0"}})
        self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return reply

    def close(self, timeout: float = 10.0) -> int:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
            raise

    def __enter__(self) -> "Wire":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.proc.poll() is None:
            try:
                self.close()
            except subprocess.TimeoutExpired:
                pass


def text_of(reply: dict) -> str:
    return reply["result"]["content"][0]["text"]


def journal_lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def fs_zone(tool: str, arguments: dict) -> dict:
    """A resolver for the filesystem test: {"zone": "public"} when every path the call names
    resolves (symlinks and .. included) inside $CALLGATE_TEST_PUBLIC_DIR, else "elsewhere"."""
    public = os.path.realpath(os.environ["CALLGATE_TEST_PUBLIC_DIR"])
    paths = [arguments.get("path")] + list(arguments.get("paths") or [])
    paths = [p for p in paths if isinstance(p, str)]
    if not paths:
        return {}
    inside = all(os.path.commonpath([public, os.path.realpath(p)]) == public for p in paths)
    return {"zone": "public" if inside else "elsewhere"}


async def sdk_calls(argv: list[str], calls: list[tuple[str, dict]], env: Optional[dict] = None,
                    cwd: Optional[str] = None) -> tuple[list[str], list[Any]]:
    """Run an SDK ClientSession over stdio against argv: (listed tool names, call results)."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=argv[0], args=argv[1:], env={**os.environ, **(env or {})}, cwd=cwd)
    results = []
    with anyio.fail_after(60):
        async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
            await s.initialize()
            names = [t.name for t in (await s.list_tools()).tools]
            for tool, args in calls:
                results.append(await s.call_tool(tool, args))
    return names, results


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen) -> None:
    """Terminate a process and reap it; kill it if it does not stop within 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


@contextlib.contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """An ASGI app served by uvicorn on 127.0.0.1 in a thread; yields its /mcp URL and stops it."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "the server did not start within 20 s"
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


WIRETAP = REPO / "tests" / "support" / "wiretap.py"
TOOLS_SERVER = REPO / "tests" / "support" / "mcp_tools_server.py"
NODE_BIN = REPO / "tests" / "node" / "node_modules" / ".bin"


def tapped(tmp_path: Path, tag: str, server: list[str]) -> tuple[list[str], Path, Path]:
    """A server command wrapped in tests/support/wiretap.py: (argv, what it received, what it sent)."""
    received, sent = tmp_path / f"{tag}.received", tmp_path / f"{tag}.sent"
    return [PY, str(WIRETAP), str(received), str(sent), *server], received, sent


_NPM_TRIED: list = []


def node_server(binary: str) -> list[str]:
    """A published MCP server (or the TypeScript SDK) from tests/node, installed there from its
    package-lock.json on first use (`npm ci --prefix tests/node`, bounded). Without npm or the
    registry that is a skip, except in CI (CI=true), where it is a failure."""
    path = NODE_BIN / binary
    if not path.exists() and not _NPM_TRIED and shutil.which("npm"):
        _NPM_TRIED.append(True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE_BIN.parents[1])],
                       capture_output=True, timeout=300)
    if path.exists():
        return [str(path)]
    if os.environ.get("CI"):
        raise AssertionError(f"{path} is missing and `npm ci --prefix tests/node` did not install it")
    import pytest

    pytest.skip(f"{binary} is not installed (npm ci --prefix tests/node)")
    raise AssertionError("unreachable")


def split_like_python(data: bytes) -> list[str]:
    """The lines a server that reads with str.splitlines() sees in `data` (empty ones dropped)."""
    return [line for line in data.decode("utf-8", "surrogateescape").splitlines() if line.strip()]
