"""The Streamable HTTP front: the official SDK client over HTTP, identity from bearer JWTs,
401 for anything but a valid token, sessions bound to their principal, and an HTTP
upstream that never sees the client's token."""

from __future__ import annotations

import json
import subprocess
import time

import anyio
import pytest

from callgate import examples
from support.mcp_helpers import PY, free_port, journal_lines, serve_in_thread, stop
from support.mcp_http import AUD, ISS, Keys, wait_http

jwt = pytest.importorskip("jwt")
httpx = pytest.importorskip("httpx")
pytest.importorskip("mcp")

CLAIMS = ["--role-claim", "cg_role", "--attr-claim", "user_id", "--attr-claim", "env",
          "--attr-claim", "mfa_verified", "--attr-claim", "role"]


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture(scope="module")
def front(keys, tmp_path_factory):
    """`callgate proxy --listen` in front of the CRM server (stdio upstream)."""
    tmp = tmp_path_factory.mktemp("front")
    (tmp / "pub.pem").write_bytes(keys.public_pem)
    journal = tmp / "crm.jsonl"
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", "crm", "--listen", f"127.0.0.1:{port}",
                             "--jwt-key", str(tmp / "pub.pem"), "--jwt-issuer", ISS, "--jwt-audience", AUD, *CLAIMS,
                             "--resolver", "callgate.demo.crm:resolve",
                             "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        wait_http(url, proc)
        yield url, journal
    finally:
        stop(proc)


def _claims(case: dict) -> dict:
    return {"cg_role": case["role"], **case.get("agent_attributes", {})}


def test_sdk_client_over_streamable_http_plays_every_crm_scenario(front, keys):
    """ClientSession over Streamable HTTP: each call carries a token for that step's identity
    (role and attributes from claims); every CRM scenario gets its expected decision and the
    server runs only the allowed calls."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    url, journal = front
    cases = examples.cases("crm")

    async def session():
        outcomes = []
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"authorization": "Bearer " + keys.token(cg_role="agent")}) as http:
                async with streamable_http_client(url, http_client=http) as (r, w, *_), ClientSession(r, w) as s:
                    await s.initialize()
                    listed = [t.name for t in (await s.list_tools()).tools]
                    for case in cases:
                        http.headers["authorization"] = "Bearer " + keys.token(**_claims(case))
                        result = await s.call_tool(case["tool"], case["args"])
                        outcomes.append(result.content[0].text)
        return listed, outcomes

    listed, outcomes = anyio.run(session)
    assert listed == ["view_customer", "update_customer", "process_refund"]
    for case, text in zip(cases, outcomes):
        assert text.startswith("Denied by policy: ") == (case["expected"] == "Deny"), (case["name"], text)
    assert [e["tool"] for e in journal_lines(journal)] == [c["tool"] for c in cases if c["expected"] == "Allow"]


INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
HEADERS = {"accept": "application/json, text/event-stream"}


def _bad_tokens(keys: Keys) -> dict:
    hs_confusion = jwt.api_jws.PyJWS(algorithms=["HS256"])
    hs_confusion._algorithms["HS256"].prepare_key = lambda key: key  # sign HS256 with the public PEM
    return {
        "missing": None,
        "not a bearer": "Basic dXNlcjpwYXNz",
        "garbage": "Bearer not.a.jwt",
        "forged (another key)": "Bearer " + keys.token(key=keys.other, cg_role="admin"),
        "expired": "Bearer " + keys.token(cg_role="admin", exp=int(time.time()) - 3600),
        "no expiry": "Bearer " + keys.token(cg_role="admin", exp=None),
        "wrong issuer": "Bearer " + keys.token(cg_role="admin", iss="https://evil.example"),
        "wrong audience": "Bearer " + keys.token(cg_role="admin", aud="someone-else"),
        "alg none": "Bearer " + jwt.encode({"iss": ISS, "aud": AUD, "exp": int(time.time()) + 600, "cg_role": "admin"},
                                           None, algorithm="none"),
        "HS256 keyed with the public key": "Bearer " + hs_confusion.encode(
            json.dumps({"iss": ISS, "aud": AUD, "exp": int(time.time()) + 600, "cg_role": "admin"}).encode(),
            keys.public_pem, algorithm="HS256"),
        "no role claim": "Bearer " + keys.token(),
    }


def test_requests_without_a_valid_token_get_401(front, keys):
    """Missing, malformed, forged, expired, unexpiring, wrong-issuer, wrong-audience,
    alg=none, algorithm-confusion and role-less tokens are all refused with 401 before any
    MCP processing."""
    url, _ = front
    for name, authorization in _bad_tokens(keys).items():
        headers = dict(HEADERS, **({"authorization": authorization} if authorization else {}))
        resp = httpx.post(url, json=INIT, headers=headers, timeout=10)
        assert resp.status_code == 401, name
        assert "mcp-session-id" not in resp.headers, name
        assert resp.headers["www-authenticate"].startswith("Bearer"), name


def test_a_session_is_bound_to_its_principal(front, keys):
    """A session minted for one subject cannot be used with another subject's valid token;
    an unknown session id is 404."""
    url, _ = front
    mine = dict(HEADERS, authorization="Bearer " + keys.token(cg_role="admin", sub="alice"))
    resp = httpx.post(url, json=INIT, headers=mine, timeout=20)
    assert resp.status_code == 200
    sid = resp.headers["mcp-session-id"]
    theirs = dict(HEADERS, authorization="Bearer " + keys.token(cg_role="admin", sub="mallory"), **{"mcp-session-id": sid})
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    assert httpx.post(url, json=ping, headers=theirs, timeout=10).status_code == 403
    assert httpx.post(url, json=ping, headers=dict(mine, **{"mcp-session-id": sid}), timeout=10).status_code == 200
    assert httpx.post(url, json=ping, headers=dict(mine, **{"mcp-session-id": "nope"}), timeout=10).status_code == 404
    assert httpx.delete(url, headers=dict(mine, **{"mcp-session-id": sid}), timeout=10).status_code == 200


class _HeaderRecorder:
    """ASGI middleware around the upstream: remembers the headers of every request."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.seen.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@pytest.fixture
def http_upstream(tmp_path):
    """The CRM server (official SDK) over Streamable HTTP in a thread, behind a header recorder."""
    from callgate.demo import crm_server

    journal = tmp_path / "crm.jsonl"
    recorder = _HeaderRecorder(crm_server.build_server(str(journal)).streamable_http_app())
    with serve_in_thread(recorder) as url:
        yield url, recorder, journal


def test_http_upstream_with_jwks_never_sees_the_token(keys, tmp_path, http_upstream):
    """--listen with --upstream URL and a JWKS file: the SDK client works end to end, denied
    calls do not reach the upstream, and no request to the upstream carries the client's
    Authorization header (or the token anywhere in its headers)."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    upstream_url, recorder, journal = http_upstream
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(keys.private.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [dict(jwk, kid="k1", alg="RS256", use="sig")]}))
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", "crm", "--listen", f"127.0.0.1:{port}",
                             "--jwks", str(tmp_path / "jwks.json"), "--jwt-issuer", ISS, "--jwt-audience", AUD, *CLAIMS,
                             "--resolver", "callgate.demo.crm:resolve", "--upstream", upstream_url],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    token = keys.token(headers={"kid": "k1"}, cg_role="manager", user_id="mgr-001")
    try:
        wait_http(url, proc)

        async def session():
            with anyio.fail_after(60):
                async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
                    async with streamable_http_client(url, http_client=http) as (r, w, *_), ClientSession(r, w) as s:
                        await s.initialize()
                        listed = [t.name for t in (await s.list_tools()).tools]
                        ok = await s.call_tool("delete_customer", {"customer_id": "C-2038"})
                        no = await s.call_tool("delete_customer", {"customer_id": "C-9001"})
            return listed, ok, no

        listed, ok, no = anyio.run(session)
    finally:
        stop(proc)
    assert "bulk_update" not in listed and "delete_customer" in listed
    assert ok.content[0].text == "C-2038 (Globex Ltd) deleted"
    assert no.is_error and no.content[0].text.startswith("Denied by policy: ")
    assert [e["args"] for e in journal_lines(journal)] == [{"customer_id": "C-2038"}]
    assert recorder.seen, "the upstream was never called"
    for headers in recorder.seen:
        assert "authorization" not in headers
        assert not any(token in v for v in headers.values())
