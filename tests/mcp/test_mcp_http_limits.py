"""The Streamable HTTP front under abuse (hold-the-line findings 9 and 13; docs/mcp.md,
"Limits"): one principal cannot lock others out, bodies are bounded while they are read,
slow heads and bodies are cut off, Host and Origin are checked, and every authentication
failure (a JWKS key of the wrong type, a token without a subject) is a 401 with a log line.

The front runs as `callgate proxy --listen` in a subprocess, in front of the raw responder
(bench/raw_responder.py), whose `hang` method keeps a request in progress."""

from __future__ import annotations

import json
import socket
import subprocess
import time

import pytest

from support.mcp_helpers import PY, RAW_RESPONDER, free_port, stop

jwt = pytest.importorskip("jwt")
httpx = pytest.importorskip("httpx")
from support.mcp_http import AUD, ISS, Keys, wait_http  # noqa: E402

HEADERS = {"accept": "application/json, text/event-stream"}
INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}


@pytest.fixture(scope="module")
def keys():
    return Keys()


class Front:
    """A running front: its URL, port, process and stderr so far."""

    def __init__(self, keys: Keys, tmp_path, *options: str, jwks: bool = False) -> None:
        self.keys = keys
        (tmp_path / "pub.pem").write_bytes(keys.public_pem)
        key = ["--jwt-key", str(tmp_path / "pub.pem")]
        if jwks:
            from cryptography.hazmat.primitives.asymmetric import ec

            ec_key = ec.generate_private_key(ec.SECP256R1()).public_key()
            jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key))
            (tmp_path / "jwks.json").write_text(json.dumps({"keys": [dict(jwk, kid="k1", use="sig")]}))
            key = ["--jwks", str(tmp_path / "jwks.json")]
        self.port = free_port()
        self.proc = subprocess.Popen(
            [PY, "-m", "callgate", "proxy", "--policy", "crm", "--listen", f"127.0.0.1:{self.port}", *key,
             "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role", *options,
             "--", PY, str(RAW_RESPONDER)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        wait_http(self.url, self.proc)

    def headers(self, sub: str = "alice", **extra) -> dict:
        return dict(HEADERS, authorization="Bearer " + self.keys.token(cg_role="agent", sub=sub), **extra)

    def initialize(self, sub: str = "alice") -> httpx.Response:
        return httpx.post(self.url, json=INIT, headers=self.headers(sub), timeout=20)

    def stderr(self) -> str:
        stop(self.proc)
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture
def front(keys, tmp_path):
    fronts = []

    def start(*options: str, jwks: bool = False) -> Front:
        f = Front(keys, tmp_path, *options, jwks=jwks)
        fronts.append(f)
        return f

    yield start
    for f in fronts:
        stop(f.proc)


def test_one_principal_cannot_lock_others_out(front):
    """Sessions that are never closed (clients that send no DELETE), with GET streams open:
    a principal at its limit gets its least recently used session closed for a new one
    (the old id then gets 404), and another principal still gets sessions."""
    f = front("--max-sessions", "4", "--max-sessions-per-principal", "2")
    ids = []
    with httpx.Client(timeout=20) as client:
        streams = []
        for _ in range(5):
            resp = f.initialize("alice")
            assert resp.status_code == 200, resp.text
            ids.append(resp.headers["mcp-session-id"])
            stream = client.stream("GET", f.url, headers=f.headers("alice", **{"mcp-session-id": ids[-1]}))
            streams.append(stream)
            stream.__enter__()
        for sub in ("bob", "carol"):
            assert f.initialize(sub).status_code == 200
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        status = [httpx.post(f.url, json=ping, headers=f.headers("alice", **{"mcp-session-id": sid}), timeout=20)
                  .status_code for sid in ids]
        assert status == [404, 404, 404, 200, 200]
        for stream in streams:
            stream.__exit__(None, None, None)


def test_busy_sessions_are_never_closed_to_make_room(front):
    """When every session has a request in progress, a new session is refused (503) rather
    than an active one closed."""
    f = front("--max-sessions", "2")
    sids = [f.initialize(sub).headers["mcp-session-id"] for sub in ("alice", "bob")]
    hanging = []
    for sub, sid in zip(("alice", "bob"), sids):   # a request the server never answers, left open
        body = b'{"jsonrpc":"2.0","id":9,"method":"hang"}'
        head = "".join(f"{k}: {v}\r\n" for k, v in f.headers(sub, **{"mcp-session-id": sid}).items())
        sock = socket.create_connection(("127.0.0.1", f.port))
        sock.sendall(f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{f.port}\r\nContent-Type: application/json\r\n"
                     f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        hanging.append(sock)
    deadline = time.monotonic() + 20
    while True:
        resp = f.initialize("carol")
        if resp.status_code == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.1)   # the hanging requests may not have reached the front yet
    assert resp.status_code == 503 and "all busy" in resp.json()["error"]["message"]
    for sock in hanging:
        sock.close()


def test_bodies_are_bounded_while_they_are_read(front):
    """A body over --max-body is refused with 413: by its Content-Length before reading, and
    without one (chunked) as soon as the limit is passed; the front's memory stays flat."""
    f = front("--max-body", "1000000")
    sid = f.initialize().headers["mcp-session-id"]
    rss_before = _rss(f.proc.pid)
    big = b'{"jsonrpc":"2.0","id":2,"method":"echo","params":{"x":[' + b"0," * 17_000_000 + b"0]}}"
    declared = httpx.post(f.url, content=big, headers=f.headers(**{"mcp-session-id": sid, "content-type":
                                                                   "application/json"}), timeout=60)
    assert declared.status_code == 413

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    try:
        streamed = httpx.post(f.url, content=chunks(), headers=f.headers(**{"mcp-session-id": sid}), timeout=60)
        assert streamed.status_code == 413
    except httpx.HTTPError:
        pass   # the front may close the connection before the client has finished sending
    assert _rss(f.proc.pid) - rss_before < 48 * 1024 * 1024
    assert httpx.post(f.url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"},
                      headers=f.headers(**{"mcp-session-id": sid}), timeout=20).status_code == 200


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_slow_heads_and_bodies_are_cut_off(front):
    """A connection that does not complete its request head within --head-timeout is closed;
    a body that stalls past --body-timeout gets 408. Meanwhile a normal client is served."""
    f = front("--head-timeout", "0.5", "--body-timeout", "0.5")
    idle = socket.create_connection(("127.0.0.1", f.port))
    partial = socket.create_connection(("127.0.0.1", f.port))
    partial.sendall(b"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    slow_body = socket.create_connection(("127.0.0.1", f.port))
    head = (f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{f.port}\r\nContent-Type: application/json\r\n"
            f"Authorization: {f.headers()['authorization']}\r\nContent-Length: 100\r\n\r\n")
    slow_body.sendall(head.encode() + b'{"jsonrpc":')
    for sock in (idle, partial, slow_body):
        sock.settimeout(15)
    assert idle.recv(100) == b""
    assert partial.recv(100) == b""
    answer = slow_body.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert f.initialize().status_code == 200
    for sock in (idle, partial, slow_body):
        sock.close()


def test_host_and_origin_are_checked(front):
    """A request for another Host, or from a page of another Origin, is refused with 403
    before authentication; the front's own origin and clients that send no Origin are served."""
    f = front()
    evil_host = httpx.post(f.url, json=INIT, headers=f.headers(host="evil.example"), timeout=20)
    assert evil_host.status_code == 403 and "host" in evil_host.json()["error"]["message"]
    evil_origin = httpx.post(f.url, json=INIT, headers=f.headers(origin="http://evil.example"), timeout=20)
    assert evil_origin.status_code == 403 and "origin" in evil_origin.json()["error"]["message"]
    own = httpx.post(f.url, json=INIT, headers=f.headers(origin=f"http://127.0.0.1:{f.port}"), timeout=20)
    assert own.status_code == 200
    assert f.initialize().status_code == 200
    stderr = f.stderr()
    assert "refused a request for host 'evil.example'" in stderr and "refused a request from origin" in stderr


def test_a_jwks_key_of_another_type_and_a_token_without_a_subject_are_401(front, keys):
    """A JWKS whose key for the token's kid is an EC key, under an RS256 token: 401 (not a
    500). A token without `sub` is 401 too: sessions and approvals bind the subject, never a
    role shared by many. Each refusal leaves one line on stderr."""
    f = front(jwks=True)
    token = keys.token(cg_role="agent", headers={"kid": "k1"})
    resp = httpx.post(f.url, json=INIT, headers=dict(HEADERS, authorization="Bearer " + token), timeout=20)
    assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Bearer")
    g = front()
    anonymous = keys.token(cg_role="agent", sub=None)
    resp = httpx.post(g.url, json=INIT, headers=dict(HEADERS, authorization="Bearer " + anonymous), timeout=20)
    assert resp.status_code == 401 and "sub" in resp.json()["error"]["message"]
    lines = [line for line in (f.stderr() + g.stderr()).splitlines()
             if line.startswith("callgate proxy: 401") and "a bearer token is required" not in line]
    assert len(lines) == 2, lines   # (the readiness probes send no token: their lines are left out)
    assert "cannot be verified with the configured key" in lines[0] and "sub" in lines[1]
