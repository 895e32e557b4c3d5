"""The Streamable HTTP front relaying to an HTTP upstream (`--listen … --upstream URL`): what
the upstream sends on its own (log notifications and sampling requests mid-call, list_changed
on its GET event stream) reaches the client's GET stream, the client's answers go back to the
upstream, and an idle session is closed (upstream included) and then answered 404.

Real components: an upstream built with the official SDK (MCPServer, Streamable HTTP) in a
uvicorn thread on 127.0.0.1, `callgate proxy` as a subprocess, the SDK client through it."""

from __future__ import annotations

import json
import subprocess
import time

import anyio
import pytest

from support.mcp_helpers import PY, free_port, serve_in_thread, stop

pytest.importorskip("jwt")
httpx = pytest.importorskip("httpx")
pytest.importorskip("mcp")
pytest.importorskip("cryptography")
from mcp.server.mcpserver import Context, MCPServer  # noqa: E402  (module level: tool annotations resolve here)
from mcp.types import SamplingMessage, TextContent  # noqa: E402
from support.mcp_http import AUD, ISS, Keys, wait_http  # noqa: E402

# the SDK marks logging and sampling deprecated for a future protocol version; they are what is relayed here
pytestmark = pytest.mark.filterwarnings("ignore:The .* capability is deprecated")

POLICY = {
    "version": "perso-1.0.0",
    "default_action": "Deny",
    "tools": ["ask", "grow", "view_customer", "bulk_update"],
    "roles": ["agent"],
    "rules": [{"tool_name": name, "roles": ["agent"], "condition": None} for name in ("ask", "grow", "view_customer")],
}


class _Recorder:
    """ASGI middleware around the upstream: (method, headers) of every request it gets."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            self.seen.append((scope["method"], {k.decode().lower(): v.decode() for k, v in scope["headers"]}))
        await self.app(scope, receive, send)


def _build_upstream():
    server = MCPServer("upstream")

    @server.tool(description="log, ask the client's model, and return its answer")
    async def ask(question: str, ctx: Context) -> str:
        await ctx.info(f"asking the client: {question}")
        reply = await ctx.session.create_message(
            [SamplingMessage(role="user", content=TextContent(type="text", text=question))], max_tokens=20)
        return f"the client said: {reply.content.text}"

    def view_customer(customer_id: str) -> str:
        return f"customer {customer_id}"

    def bulk_update(filter: str) -> str:
        return "updated everything"

    @server.tool(description="add two tools, then announce the change (not tied to this call)")
    async def grow(ctx: Context) -> str:
        server.add_tool(view_customer, description="look a customer up")
        server.add_tool(bulk_update, description="change many customers at once")
        await ctx.session.send_tool_list_changed()
        return "grown"

    return server


@pytest.fixture
def upstream():
    """The SDK upstream over Streamable HTTP in a thread, behind a recorder; stopped afterwards."""
    recorder = _Recorder(_build_upstream().streamable_http_app())
    with serve_in_thread(recorder) as url:
        yield url, recorder


@pytest.fixture(scope="module")
def keys():
    return Keys()


@pytest.fixture
def start_front(keys, tmp_path):
    """Start `callgate proxy --listen … --upstream URL [extra args]`; every one is stopped afterwards."""
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    (tmp_path / "policy.json").write_text(json.dumps(POLICY))
    procs = []

    def start(upstream_url: str, *extra: str) -> str:
        port = free_port()
        proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"),
                                 "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp_path / "pub.pem"),
                                 "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role",
                                 *extra, "--upstream", upstream_url],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}/mcp"
        wait_http(url, proc)
        return url

    try:
        yield start
    finally:
        for proc in procs:
            stop(proc)


def test_sampling_and_logging_mid_call_round_trip_through_the_front(upstream, start_front, keys):
    """A tool on the HTTP upstream logs and sends sampling/createMessage while its call is in
    progress: the client gets the log notification and the sampling request (on its GET
    stream), its sampling callback's answer goes back to the upstream, and the tool's result
    carries that answer. No request to the upstream carries the client's token."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import CreateMessageResult

    upstream_url, recorder = upstream
    url = start_front(upstream_url)
    token = keys.token(cg_role="agent")
    logs, asked = [], []

    async def sampling(context, params):
        asked.append(params.messages[0].content.text)
        return CreateMessageResult(role="assistant", content=TextContent(type="text", text="forty-two"),
                                   model="test-model")

    async def logging(params):
        logs.append(params.data)

    async def session():
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
                async with streamable_http_client(url, http_client=http) as (r, w, *_), \
                        ClientSession(r, w, sampling_callback=sampling, logging_callback=logging) as s:
                    await s.initialize()
                    return await s.call_tool("ask", {"question": "what is six times seven?"})

    result = anyio.run(session)
    assert not result.is_error, result
    assert result.content[0].text == "the client said: forty-two"
    assert asked == ["what is six times seven?"]
    assert logs == ["asking the client: what is six times seven?"]
    assert recorder.seen, "the upstream was never called"
    for _method, headers in recorder.seen:
        assert "authorization" not in headers
        assert not any(token in v for v in headers.values())


def test_list_changed_from_the_upstream_get_stream_refilters_tools(upstream, start_front, keys):
    """notifications/tools/list_changed, sent by the upstream on its own GET event stream (not
    in answer to a POST), reaches the client; the next tools/list shows the new tool the role
    may call and still hides the one it may not."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from mcp.types import ToolListChangedNotification

    upstream_url, recorder = upstream
    url = start_front(upstream_url)
    token = keys.token(cg_role="agent")

    async def session():
        changed = anyio.Event()

        async def on_message(message):
            if isinstance(message, ToolListChangedNotification):
                changed.set()

        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
                async with streamable_http_client(url, http_client=http) as (r, w, *_), \
                        ClientSession(r, w, message_handler=on_message) as s:
                    await s.initialize()
                    before = sorted(t.name for t in (await s.list_tools()).tools)
                    grown = await s.call_tool("grow", {})
                    await changed.wait()
                    after = sorted(t.name for t in (await s.list_tools()).tools)
                    denied = await s.call_tool("bulk_update", {"filter": "all"})
                    viewed = await s.call_tool("view_customer", {"customer_id": "C-1"})
        return before, grown, after, denied, viewed

    before, grown, after, denied, viewed = anyio.run(session)
    assert before == ["ask", "grow"]
    assert grown.content[0].text == "grown"
    assert after == ["ask", "grow", "view_customer"]
    assert denied.is_error and denied.content[0].text.startswith("Denied by policy: ")
    assert viewed.content[0].text == "customer C-1"
    assert any(method == "GET" for method, _ in recorder.seen), "the front never opened the upstream's GET stream"


def test_an_idle_session_expires_and_then_gets_404(upstream, start_front, keys):
    """With --session-idle-timeout, a session nobody uses is closed: its upstream session is
    ended (a DELETE with its session id reaches the upstream) and the client's next request on that
    session id gets 404, the MCP answer for an unknown session."""
    upstream_url, recorder = upstream
    url = start_front(upstream_url, "--session-idle-timeout", "0.3")
    headers = {"accept": "application/json, text/event-stream", "authorization": "Bearer " + keys.token(cg_role="agent")}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    resp = httpx.post(url, json=init, headers=headers, timeout=20)
    assert resp.status_code == 200
    sid = resp.headers["mcp-session-id"]

    deadline = time.monotonic() + 30   # the upstream (this test's own) has this one session
    while not any(m == "DELETE" and h.get("mcp-session-id") for m, h in recorder.seen):
        assert time.monotonic() < deadline, "the idle session was not closed within 30 s"
        time.sleep(0.1)

    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    gone = httpx.post(url, json=ping, headers=dict(headers, **{"mcp-session-id": sid}), timeout=10)
    assert gone.status_code == 404
    assert gone.json()["error"]["message"] == "Session not found"
    assert httpx.get(url, headers=dict(headers, **{"mcp-session-id": sid}), timeout=10).status_code == 404
