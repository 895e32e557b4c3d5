"""Helpers of the service-layer tests (tests/service): the PostgreSQL server they share
(CALLGATE_TEST_PG_DSN, a fresh schema per test), a policy with an Elevate, approvers' keys
and a running `callgate serve` on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

DSN = os.environ.get("CALLGATE_TEST_PG_DSN")
needs_pg = pytest.mark.skipif(not DSN, reason="CALLGATE_TEST_PG_DSN not set: no PostgreSQL server to test against")

# wire needs one approval; read_ledger is allowed; anything else is denied by default
ELEVATE_POLICY = {
    "version": "deploy-test-1", "default_action": "Deny", "tools": ["wire", "read_ledger"], "roles": ["agent"],
    "rules": [{"tool_name": "wire", "roles": ["agent"], "effect": "elevate", "approvals": 1},
              {"tool_name": "read_ledger", "roles": ["agent"]}],
}


def fresh_schema() -> Iterator[str]:
    """A schema name unique to the test, dropped afterwards (a generator for a fixture)."""
    psycopg = pytest.importorskip("psycopg")
    schema = f"cg_svc_{uuid.uuid4().hex[:12]}"
    yield schema
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def closed_port_dsn() -> str:
    """A DSN naming a loopback port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"postgresql://postgres@127.0.0.1:{port}/postgres"


def free_port() -> int:
    """A loopback TCP port free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 20.0, proc: Optional[subprocess.Popen[Any]] = None) -> None:
    """Wait until GET url answers (any status); fail after `timeout` seconds or if `proc` dies."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout} s")


def start_serve(policy: Path, port: int, *extra: str, env: Optional[dict[str, str]] = None) -> subprocess.Popen[Any]:
    """`callgate serve POLICY --listen 127.0.0.1:PORT EXTRA...` in a new process group,
    answering once GET /v1/status does."""
    proc = subprocess.Popen([sys.executable, "-m", "callgate", "serve", str(policy), "--listen", f"127.0.0.1:{port}",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, **(env or {})})
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/status", proc=proc)
    except BaseException:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server started by start_serve (its whole process group), bounded in time."""
    import signal

    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def children(pid: int) -> list[int]:
    """The worker processes of a server `pid` (Linux /proc): its children but
    multiprocessing's resource tracker."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"resource_tracker" not in cmdline:
                out.append(int(child))
    return out


class StaticServer:
    """A static HTTP server on loopback serving one file's bytes at /policy.bundle, with an
    ETag (its SHA-256) and 304 answers to a matching If-None-Match; `publish` replaces the
    bytes; `hits` counts (200s, 304s)."""

    def __init__(self) -> None:
        import hashlib
        import http.server
        import threading

        server_self = self
        self.data = b""
        self.etag = '"empty"'
        self.hits = {200: 0, 304: 0}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path != "/policy.bundle":
                    self.send_error(404)
                    return
                if self.headers.get("If-None-Match") == server_self.etag:
                    server_self.hits[304] += 1
                    self.send_response(304)
                    self.send_header("ETag", server_self.etag)
                    self.end_headers()
                    return
                server_self.hits[200] += 1
                self.send_response(200)
                self.send_header("ETag", server_self.etag)
                self.send_header("Content-Length", str(len(server_self.data)))
                self.end_headers()
                self.wfile.write(server_self.data)

            def log_message(self, *args: Any) -> None:
                pass

        self._hash = hashlib.sha256
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/policy.bundle"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def publish(self, data: bytes) -> None:
        """Serve `data` from now on."""
        self.data = data
        self.etag = '"' + self._hash(data).hexdigest()[:32] + '"'

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()
