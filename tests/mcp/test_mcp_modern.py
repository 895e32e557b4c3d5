"""MCP 2026-07-28 on the Streamable HTTP front (docs/mcp.md, "Protocol revisions"): the
official Python SDK client in its default `auto` mode and pinned to 2026-07-28, with no
session; headers checked against the body; Elevate as an input_required round trip bound to
the one call (approved once, declined, replayed, altered, expired); what reaches the server
(the CRM server journals every call it runs) and what the audit trail says.
"""

from __future__ import annotations

import subprocess
import time

import anyio
import orjson
import pytest

from support.mcp_helpers import PY, free_port, journal_lines, stop
from support.mcp_http import AUD, ISS, Keys, wait_http

jwt = pytest.importorskip("jwt")
httpx = pytest.importorskip("httpx")
pytest.importorskip("mcp")

V = "2026-07-28"
ROLE = "manager"
POLICY = {
    "version": "modern-test-1", "default_action": "Deny",
    "tools": ["view_customer", "delete_customer", "update_customer", "process_refund"],
    "roles": [ROLE],
    "tool_tiers": {"process_refund": "destructive"},
    "rules": [
        {"tool_name": "view_customer", "roles": [ROLE]},
        {"tool_name": "delete_customer", "roles": [ROLE], "effect": "elevate", "approvals": 1},
        {"tool_name": "process_refund", "roles": [ROLE], "effect": "elevate", "approvals": 1},
    ],
}
ENVELOPE = {"io.modelcontextprotocol/protocolVersion": V, "io.modelcontextprotocol/clientCapabilities":
            {"elicitation": {"form": {}}}, "io.modelcontextprotocol/clientInfo": {"name": "raw", "version": "0"}}


@pytest.fixture(scope="module")
def keys():
    return Keys()


def _start(tmp, keys, *extra: str):
    (tmp / "pub.pem").write_bytes(keys.public_pem)
    (tmp / "policy.json").write_bytes(orjson.dumps(POLICY))
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp / "policy.json"),
                             "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp / "pub.pem"),
                             "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role",
                             "--audit", str(tmp / "audit.jsonl"), *extra,
                             "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(tmp / "crm.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_http(url, proc)
    return proc, url


@pytest.fixture(scope="module")
def front(keys, tmp_path_factory):
    """`callgate proxy --listen` in front of the CRM server (stdio); the approval window of
    the destructive tier (process_refund) is 1.5 s."""
    tmp = tmp_path_factory.mktemp("modern")
    proc, url = _start(tmp, keys, "--approval-window", "destructive=1.5")
    try:
        yield url, tmp
    finally:
        stop(proc)


def _auth(keys, sub="alice") -> dict:
    return {"authorization": "Bearer " + keys.token(cg_role=ROLE, sub=sub)}


def _post(url, keys, msg, headers=None, sub="alice"):
    """A raw 2026 POST with the headers mirroring its body (overridden by `headers`)."""
    h = {"accept": "application/json", "mcp-protocol-version": V, "mcp-method": msg["method"], **_auth(keys, sub)}
    name = msg.get("params", {}).get("name")
    if name is not None:
        h["mcp-name"] = name
    h.update(headers or {})
    h = {k: v for k, v in h.items() if v is not None}
    return httpx.post(url, content=orjson.dumps(msg), headers=h, timeout=20)


def _call(id_, tool, args, **extra) -> dict:
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call",
            "params": {"name": tool, "arguments": args, "_meta": dict(ENVELOPE), **extra}}


def _sdk(url, keys, mode, body, callback=None):
    """Run body(client) in an SDK Client over the front; (result, every POST the client sent
    as (headers, decoded body))."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    sent = []

    async def record(request):
        sent.append((dict(request.headers), orjson.loads(request.content) if request.content else None))

    async def main():
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers=_auth(keys), event_hooks={"request": [record]}) as http:
                kwargs = {"elicitation_callback": callback} if callback else {}
                async with Client(streamable_http_client(url, http_client=http), mode=mode, **kwargs) as c:
                    return await body(c)

    return anyio.run(main), sent


def _direct(tmp, body):
    """Run body(client) in an SDK Client speaking to a CRM server directly (stdio, auto mode)."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=PY, args=["-m", "callgate.demo.crm_server", "--journal",
                                                     str(tmp / "direct.jsonl")])

    async def main():
        with anyio.fail_after(60):
            async with Client(stdio_client(params)) as c:
                return await body(c)

    return anyio.run(main)


async def _view_and_list(c):
    tools = await c.list_tools()
    view = await c.call_tool("view_customer", {"customer_id": "C-1042"})
    return c.session.protocol_version, [t.name for t in tools.tools], view


@pytest.mark.parametrize("mode", ["auto", V])
def test_sdk_client_speaks_2026_through_the_front(front, keys, mode, tmp_path):
    """The SDK client in `auto` mode negotiates 2026-07-28 with the front (server/discover,
    never initialize; every POST carries MCP-Protocol-Version 2026-07-28, Mcp-Method and no
    session id), and so does one pinned to it; the listing is filtered to the role's tools
    and an allowed call returns exactly what the server returns to a direct client."""
    url, _ = front
    (version, listed, view), sent = _sdk(url, keys, mode, _view_and_list)
    direct_version, _, direct_view = _direct(tmp_path, _view_and_list)
    assert version == direct_version == V
    methods = [b["method"] for _, b in sent]
    assert "initialize" not in methods and methods[-2:] == ["tools/list", "tools/call"]
    assert (mode == "auto") == ("server/discover" in methods)
    for headers, body in sent:
        assert headers["mcp-protocol-version"] == V and headers["mcp-method"] == body["method"]
        assert body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] == V
        assert "mcp-session-id" not in headers
    assert listed == ["view_customer", "delete_customer", "process_refund"]
    assert view.model_dump() == direct_view.model_dump()
    assert not view.is_error and "C-1042" in view.content[0].text


@pytest.mark.parametrize("headers, why", [
    ({"mcp-method": "tools/list"}, "mcp-method header does not match"),
    ({"mcp-method": None}, "mcp-method header does not match"),
    ({"mcp-name": "view_customer"}, "mcp-name header does not match"),
    ({"mcp-name": None}, "mcp-name header does not match"),
    ({"mcp-name": "=?base64?dmlld19jdXN0b21lcg==?="}, "mcp-name header does not match"),
    ({"mcp-protocol-version": "2025-11-25"}, "mcp-protocol-version header does not match"),
])
def test_headers_that_disagree_with_the_body_are_refused(front, keys, headers, why):
    """A 2026 tools/call whose Mcp-Method, Mcp-Name (plain or base64-encoded) or
    MCP-Protocol-Version header is missing or names something other than its body is refused
    with HTTP 400 and -32020 before any decision; the server never runs it."""
    url, tmp = front
    before = len(journal_lines(tmp / "crm.jsonl"))
    resp = _post(url, keys, _call(7, "delete_customer", {"customer_id": "C-9001"}), headers)
    assert resp.status_code == 400, resp.text
    err = resp.json()["error"]
    assert err["code"] == -32020 and why in err["message"], err
    assert len(journal_lines(tmp / "crm.jsonl")) == before


def test_a_repeated_routing_header_is_refused(front, keys):
    """Two Mcp-Name headers (one matching the body, one not) are a mismatch, whatever order
    an intermediary would read them in."""
    url, _ = front
    msg = _call(8, "view_customer", {"customer_id": "C-1042"})
    h = [("accept", "application/json"), ("mcp-protocol-version", V), ("mcp-method", "tools/call"),
         ("mcp-name", "view_customer"), ("mcp-name", "delete_customer"),
         ("authorization", _auth(keys)["authorization"])]
    resp = httpx.post(url, content=orjson.dumps(msg), headers=h, timeout=20)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32020


def test_an_envelope_without_capabilities_or_of_another_version_is_refused(front, keys):
    """A 2026 request whose _meta lacks the client capabilities is -32602; one naming a
    version the proxy does not speak is -32022 listing the supported ones; both with HTTP
    400, as the SDK's servers answer them."""
    url, _ = front
    msg = _call(9, "view_customer", {})
    del msg["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"]
    resp = _post(url, keys, msg)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == -32602
    msg = _call(10, "view_customer", {})
    msg["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    resp = _post(url, keys, msg, {"mcp-protocol-version": "2099-01-01"})
    err = resp.json()["error"]
    assert resp.status_code == 400 and err["code"] == -32022 and err["data"]["supported"] == [V]


def _ask(url, keys, id_, args, sub="alice", tool="delete_customer") -> dict:
    result = _post(url, keys, _call(id_, tool, args), sub=sub).json()["result"]
    assert result["resultType"] == "input_required", result
    return result


def _retry(url, keys, id_, args, state, approve=True, sub="alice", action="accept", tool="delete_customer") -> dict:
    answer = {"action": action, "content": {"approve": approve}} if action == "accept" else {"action": action}
    msg = _call(id_, tool, args, requestState=state, inputResponses={"callgate/approval": answer})
    return _post(url, keys, msg, sub=sub).json()["result"]


def test_elevate_is_an_input_required_round_trip_bound_to_the_call(front, keys):
    """An Elevate under 2026 is answered with input_required (the proxy's form: tool,
    arguments, reason, approvals required; a signed requestState); the retry with the user's
    yes runs the call once; the same state replayed, or attached to other arguments, to
    another principal's call, or altered, is refused with its reason; a declined answer is
    a denial; none of the refused calls reaches the server; the audit trail records who
    approved and how."""
    url, tmp = front
    args = {"customer_id": "C-2038"}
    first = _ask(url, keys, 1, args)
    form = first["inputRequests"]["callgate/approval"]
    assert form["method"] == "elicitation/create"
    message = form["params"]["message"]
    assert "Tool: delete_customer" in message and '{"customer_id":"C-2038"}' in message
    assert "Approvals required: 1" in message
    state = first["requestState"]
    other = _ask(url, keys, 2, {"customer_id": "C-9001"})["requestState"]

    assert not _retry(url, keys, 3, args, state).get("isError")
    replay = _retry(url, keys, 4, args, state)
    assert replay["isError"] and "refused (already used)" in replay["content"][0]["text"]
    moved = _retry(url, keys, 5, {"customer_id": "C-1042"}, other)
    assert moved["isError"] and "refused (different arguments)" in moved["content"][0]["text"]
    foreign_user = _retry(url, keys, 6, {"customer_id": "C-9001"}, other, sub="mallory")
    assert foreign_user["isError"] and "refused (different principal)" in foreign_user["content"][0]["text"]
    head, body, tag = other.split(".")
    flipped = f"{head}.{body}.{tag[:-2]}{'AA' if tag[-2:] != 'AA' else 'BA'}"
    altered = _retry(url, keys, 7, {"customer_id": "C-9001"}, flipped)
    assert altered["isError"] and "refused (" in altered["content"][0]["text"]
    declined = _retry(url, keys, 8, {"customer_id": "C-9001"}, other, approve=False)
    assert declined["isError"] and "the user did not approve" in declined["content"][0]["text"]
    # the decline spent the state: it cannot be approved afterwards
    late = _retry(url, keys, 9, {"customer_id": "C-9001"}, other)
    assert late["isError"] and "already used" in late["content"][0]["text"]

    assert [e["args"] for e in journal_lines(tmp / "crm.jsonl") if e["tool"] == "delete_customer"] == [args]
    records = [orjson.loads(line)["record"] for line in (tmp / "audit.jsonl").read_bytes().splitlines()]
    approvals = [r["approval"] for r in records if r["kind"] == "approval"]
    assert {"method": "input_required", "outcome": "approved", "required": 1, "approved_by": ["alice"]} in approvals
    assert sum(a["outcome"] == "approved" for a in approvals) == 1
    assert any(a["outcome"] == "declined" and a["method"] == "input_required" for a in approvals)


def test_an_expired_request_state_is_refused(front, keys):
    """A requestState retried after its tool's approval window (the destructive tier's 1.5 s
    here, --approval-window) is refused as expired and the call does not run."""
    url, tmp = front
    args = {"order_id": "ORD-8821", "amount": 20.0}
    state = _ask(url, keys, 1, args, sub="erin", tool="process_refund")["requestState"]
    time.sleep(1.7)
    late = _retry(url, keys, 2, args, state, sub="erin", tool="process_refund")
    assert late["isError"] and "refused (expired)" in late["content"][0]["text"]
    assert "process_refund" not in [e["tool"] for e in journal_lines(tmp / "crm.jsonl")]


def test_a_state_from_another_front_is_refused(front, keys, tmp_path):
    """A requestState issued by another proxy process (another key) is refused as foreign."""
    url, tmp = front
    proc, other_url = _start(tmp_path, keys)
    try:
        args = {"customer_id": "C-9001"}
        state = _ask(other_url, keys, 1, args)["requestState"]
    finally:
        stop(proc)
    foreign = _retry(url, keys, 2, args, state)
    assert foreign["isError"] and "refused (issued by another proxy" in foreign["content"][0]["text"]


def test_sdk_client_approves_and_declines_through_its_elicitation_callback(front, keys):
    """The SDK client (auto mode) resolves the proxy's input_required with its elicitation
    callback: the approved call runs and returns the server's result; the declined one is a
    denial and never reaches the server."""
    from mcp import types

    url, tmp = front
    answers = [True, False]
    seen = []

    async def callback(context, params):
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": answers.pop(0)})

    async def body(c):
        yes = await c.call_tool("update_customer", {"customer_id": "C-1042", "fields": {}})
        return yes

    denied, _ = _sdk(url, keys, "auto", body, callback)
    assert denied.is_error and seen == []   # update_customer: no rule, a plain denial (nobody asked)

    async def deletes(c):
        return [await c.call_tool("delete_customer", {"customer_id": "C-9001"}),
                await c.call_tool("delete_customer", {"customer_id": "C-1042"})]

    (approved, declined), _ = _sdk(url, keys, "auto", deletes, callback)
    assert len(seen) == 2
    assert not approved.is_error, approved.content[0].text
    assert declined.is_error and "the user did not approve" in declined.content[0].text
    deleted = [e["args"]["customer_id"] for e in journal_lines(tmp / "crm.jsonl") if e["tool"] == "delete_customer"]
    assert "C-9001" in deleted and "C-1042" not in deleted


def test_guard_asks_with_input_required_on_2026(tmp_path):
    """guard() in an MCPServer, the SDK client in auto mode (2026-07-28, in-process): an
    Elevate is an input_required round trip through the SDK's own request-state boundary;
    approved runs the tool once, declined denies it; the raw retry of a state that was
    already used (driven by hand with allow_input_required) is refused, and the tool never
    runs for a denied call."""
    from mcp import Client, types

    from callgate import Engine
    from callgate.demo import crm_server
    from callgate.mcp import Identity, guard

    journal = tmp_path / "crm.jsonl"
    server = crm_server.build_server(str(journal))
    guard(server, Engine.from_dict(POLICY), identity=lambda ctx: Identity(ROLE, {}, "alice"))
    answers = [True, False]
    seen = []

    async def callback(context, params):
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": answers.pop(0)})

    async def main():
        with anyio.fail_after(30):
            async with Client(server, elicitation_callback=callback) as c:
                version = c.session.protocol_version
                approved = await c.call_tool("delete_customer", {"customer_id": "C-2038"})
                declined = await c.call_tool("delete_customer", {"customer_id": "C-9001"})
                first = await c.session.call_tool("delete_customer", {"customer_id": "C-1042"},
                                                  allow_input_required=True)
                yes = {"callgate/approval": {"action": "accept", "content": {"approve": True}}}
                ran = await c.session.call_tool("delete_customer", {"customer_id": "C-1042"},
                                                allow_input_required=True, input_responses=yes,
                                                request_state=first.request_state)
                again = await c.session.call_tool("delete_customer", {"customer_id": "C-1042"},
                                                  allow_input_required=True, input_responses=yes,
                                                  request_state=first.request_state)
        return version, approved, declined, first, ran, again

    version, approved, declined, first, ran, again = anyio.run(main)
    assert version == V
    assert not approved.is_error and approved.content[0].text == "C-2038 (Globex Ltd) deleted"
    assert declined.is_error and "the user did not approve" in declined.content[0].text
    assert len(seen) == 2 and "Tool: delete_customer" in seen[0]
    assert isinstance(first, types.InputRequiredResult)
    assert not ran.is_error, ran.content[0].text
    assert again.is_error and "already used" in again.content[0].text
    assert [e["args"]["customer_id"] for e in journal_lines(journal)] == ["C-2038", "C-1042"]


class _Recorder:
    """ASGI middleware around an upstream: remembers (headers, body) of every request."""

    def __init__(self, app) -> None:
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        self.seen.append((headers, orjson.loads(body) if body else None))
        sent = [False]

        async def replay():
            if sent[0]:
                return await receive()
            sent[0] = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


def test_2026_through_the_front_to_an_http_upstream_rebuilds_the_headers(keys, tmp_path):
    """--upstream URL (the CRM server on the SDK's Streamable HTTP, 2026-capable): the SDK
    client in auto mode gets 2026 end to end; every 2026 request the upstream receives
    carries MCP-Protocol-Version, Mcp-Method and Mcp-Name built from the body the proxy
    forwards, never the client's token; a denied call never reaches it."""
    from callgate.demo import crm_server
    from support.mcp_helpers import serve_in_thread

    journal = tmp_path / "crm.jsonl"
    recorder = _Recorder(crm_server.build_server(str(journal)).streamable_http_app())
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    (tmp_path / "policy.json").write_bytes(orjson.dumps(POLICY))
    with serve_in_thread(recorder) as upstream:
        port = free_port()
        proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"),
                                 "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp_path / "pub.pem"),
                                 "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role",
                                 "--upstream", upstream], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        url = f"http://127.0.0.1:{port}/mcp"
        try:
            wait_http(url, proc)

            async def body(c):
                view = await c.call_tool("view_customer", {"customer_id": "C-1042"})
                update = await c.call_tool("update_customer", {"customer_id": "C-1042", "fields": {}})
                return c.session.protocol_version, view, update

            (version, view, update), _ = _sdk(url, keys, "auto", body)
        finally:
            stop(proc)
    assert version == V
    assert not view.is_error and "C-1042" in view.content[0].text
    assert update.is_error and update.content[0].text.startswith("Denied by policy: ")
    calls = [(h, b) for h, b in recorder.seen if isinstance(b, dict) and b.get("method") == "tools/call"]
    assert [b["params"]["name"] for _, b in calls] == ["view_customer"]
    for headers, b in recorder.seen:
        assert "authorization" not in headers
        if isinstance(b, dict) and "method" in b:
            assert headers["mcp-protocol-version"] == V and headers["mcp-method"] == b["method"]
    assert calls[0][0]["mcp-name"] == "view_customer"
    assert [e["tool"] for e in journal_lines(journal)] == ["view_customer"]


def test_a_2026_client_of_a_2025_only_server_is_translated(tmp_path):
    """The stdio proxy between a raw 2026 client pinned to 2026-07-28 (its first request is a
    call) and a server that knows only the handshake (server/discover is not found): the
    proxy learns that with its own server/discover, makes the handshake with the server,
    strips the 2026 envelope from what it forwards (trace context kept) and completes the
    results (resultType); later server/discover requests it answers itself (2026-07-28, the
    server's capabilities); an Elevate is still input-required; the server receives no
    envelope and no denied call."""
    from support.mcp_helpers import RAW_RESPONDER, Wire

    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))
    journal = tmp_path / "raw.jsonl"
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", ROLE, "--principal", "alice",
            "--", PY, str(RAW_RESPONDER)]
    meta = dict(ENVELOPE, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    with Wire(argv, env={"RAW_JOURNAL": str(journal), "RAW_LEGACY": "1"}) as wire:
        view = wire.call(2, "tools/call", {"name": "view_customer", "arguments": {}, "_meta": meta})["result"]
        discover = wire.call(1, "server/discover", {"_meta": meta})["result"]
        ask = wire.call(3, "tools/call", {"name": "delete_customer", "arguments": {}, "_meta": meta})["result"]
        assert wire.close() == 0
    assert discover["supportedVersions"] == [V] and discover["resultType"] == "complete"
    assert discover["capabilities"]["tools"] == {"listChanged": True}
    assert view == {"content": [{"type": "text", "text": "ok view_customer"}], "resultType": "complete"}
    assert ask["resultType"] == "input_required" and "callgate/approval" in ask["inputRequests"]
    received = journal_lines(journal)
    assert [m.get("method") for m in received] == ["server/discover", "initialize", "notifications/initialized",
                                                   "tools/call"]
    assert received[1]["params"]["protocolVersion"] == "2025-11-25"
    assert received[3]["params"]["_meta"] == {"traceparent": meta["traceparent"]}


def test_subscriptions_of_a_2026_client_carry_list_changed_of_a_2025_server(tmp_path):
    """A 2026 client's subscriptions/listen in front of a handshake-only server is served by
    the proxy: acknowledged with the kinds the server's capabilities announce (tools, not
    prompts), and the server's tools/list_changed is delivered on it under the
    subscription's id; the proxy marks the definitions stale, so the next listing is fetched
    and filtered again (update_customer, named in no rule, stays hidden)."""
    from support.mcp_helpers import RAW_RESPONDER, Wire

    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", ROLE, "--", PY, str(RAW_RESPONDER)]
    with Wire(argv, env={"RAW_LEGACY": "1"}) as wire:
        wire.call(1, "tools/list", {"_meta": ENVELOPE})
        wire.send({"jsonrpc": "2.0", "id": "sub-1", "method": "subscriptions/listen", "params": {
            "notifications": {"toolsListChanged": True, "promptsListChanged": True}, "_meta": ENVELOPE}})
        ack = wire.recv()
        wire.send({"jsonrpc": "2.0", "method": "notify_changed"})
        changed = wire.recv()
        listed = wire.call(2, "tools/list", {"_meta": ENVELOPE})["result"]
        assert wire.close() == 0
    assert ack == {"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged", "params": {
        "notifications": {"toolsListChanged": True}, "_meta": {"io.modelcontextprotocol/subscriptionId": "sub-1"}}}
    assert changed == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                       "params": {"_meta": {"io.modelcontextprotocol/subscriptionId": "sub-1"}}}
    assert [t["name"] for t in listed["tools"]] == ["view_customer", "delete_customer", "process_refund"]
    assert listed["resultType"] == "complete"


SCHEMA = {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"},
                                           "count": {"type": "integer", "x-mcp-header": "Count"},
                                           "note": {"type": "string"}}}


def _headers(**extra):
    base = {"mcp-protocol-version": [V], "mcp-method": ["tools/call"], "mcp-name": ["t"]}
    base.update({k.replace("_", "-"): v for k, v in extra.items()})
    return {k: v for k, v in base.items() if v is not None}


@pytest.mark.parametrize("args, extra, ok", [
    ({"region": "eu", "count": 3}, {"mcp-param-region": ["eu"], "mcp-param-count": ["3"]}, True),
    ({"region": "é", "count": 3}, {"mcp-param-region": ["=?base64?w6k=?="], "mcp-param-count": ["3"]}, True),
    ({"region": "eu", "count": 3}, {"mcp-param-region": ["us"], "mcp-param-count": ["3"]}, False),
    ({"region": "eu", "count": 3}, {"mcp-param-count": ["3"]}, False),
    ({"count": 3}, {"mcp-param-region": ["eu"], "mcp-param-count": ["3"]}, False),
    ({"region": "eu", "count": 3}, {"mcp-param-region": ["eu", "us"], "mcp-param-count": ["3"]}, False),
    ({"region": "eu", "count": 3}, {"mcp-param-region": ["=?base64?ZXU?="], "mcp-param-count": ["3"]}, False),
    ({"region": "eu", "count": 3}, {"mcp-param-region": ["eu"], "mcp-param-count": ["4"]}, False),
])
def test_param_headers_are_checked_never_believed(args, extra, ok):
    """Mcp-Param-* headers of a tool whose schema declares x-mcp-header must mirror the
    arguments exactly (the canonical base64 form for non-ASCII values): a different, missing,
    extra, repeated or non-canonically encoded one is -32020."""
    from callgate.mcp import modern

    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
           "params": {"name": "t", "arguments": args, "_meta": dict(ENVELOPE)}}
    refused = modern.check_headers(_headers(**extra), msg, SCHEMA)
    assert (refused is None) == ok, refused
    if not ok:
        assert refused.code == -32020 and refused.http_status == 400


def test_lanes_count_against_max_sessions(keys, tmp_path):
    """Each principal's stateless lane is an upstream process like a session: with
    --max-sessions 2, five principals' 2026 calls in turn are all answered and the front
    never has more than 2 server processes (the least recently used idle lane makes room)."""
    proc, url = _start(tmp_path, keys, "--max-sessions", "2")
    most = 0
    try:
        for n in range(5):
            resp = _post(url, keys, _call(1, "view_customer", {"customer_id": "C-1042"}), sub=f"user-{n}")
            assert resp.status_code == 200 and not resp.json()["result"].get("isError"), resp.text
            with open(f"/proc/{proc.pid}/task/{proc.pid}/children") as f:
                most = max(most, len(f.read().split()))
    finally:
        stop(proc)
    assert 1 <= most <= 2, most


@pytest.mark.parametrize("option, value", [
    ("--approval-window", "destructive"), ("--approval-window", "destructive=soon"),
    ("--approval-window", "destructive=-1"), ("--approval-keepalive", "-1"), ("--client-wait", "-3"),
])
def test_bad_approval_window_options_are_one_line_errors(tmp_path, option, value):
    """A malformed or non-positive --approval-window, or a negative keep-alive or client
    wait, stops the proxy before it starts anything: exit 2, one line on stderr."""
    (tmp_path / "policy.json").write_bytes(orjson.dumps(POLICY))
    run = subprocess.run([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"), "--role", ROLE,
                          option, value, "--", PY, "-c", "pass"], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize("mode", ["auto", V])
def test_sdk_client_through_the_stdio_proxy_to_server_everything(tmp_path, mode):
    """The SDK client (auto, and pinned to 2026-07-28) through the stdio proxy in front of
    @modelcontextprotocol/server-everything (TypeScript SDK 1.x: handshake revisions only).
    Auto falls back to the handshake, as it would directly; pinned, the proxy translates
    (its own server/discover, then initialize). Either way the listing is filtered to the
    two allowed tools, echo returns what it returns directly, progress arrives, a tool named
    in no rule is denied."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from support.mcp_helpers import node_server

    server = node_server("mcp-server-everything")
    policy = {"version": "e", "default_action": "Deny", "roles": ["user"],
              "tools": ["echo", "trigger-long-running-operation", "get-sum"],
              "rules": [{"tool_name": "echo", "roles": ["user"]},
                        {"tool_name": "trigger-long-running-operation", "roles": ["user"]}]}
    (tmp_path / "policy.json").write_bytes(orjson.dumps(policy))
    proxied = StdioServerParameters(command=PY, args=["-m", "callgate", "proxy", "--policy",
                                                      str(tmp_path / "policy.json"), "--role", "user", "--", *server])
    direct = StdioServerParameters(command=server[0], args=server[1:])

    async def run(params, client_mode):
        progress = []

        async def on_progress(value, total, message):
            progress.append(value)

        with anyio.fail_after(90):
            async with Client(stdio_client(params), mode=client_mode) as c:
                tools = [t.name for t in (await c.list_tools()).tools]
                echo = await c.call_tool("echo", {"message": "héllo"})
                await c.call_tool("trigger-long-running-operation", {"duration": 0.2, "steps": 2},
                                  progress_callback=on_progress)
                total = await c.call_tool("get-sum", {"a": 1, "b": 2})
                return c.session.protocol_version, tools, echo, progress, total

    version, tools, echo, progress, total = anyio.run(run, proxied, mode)
    _, _, direct_echo, _, _ = anyio.run(run, direct, "legacy")
    assert version == ("2025-11-25" if mode == "auto" else V)
    assert sorted(tools) == ["echo", "trigger-long-running-operation"]
    assert echo.content == direct_echo.content and not echo.is_error
    assert progress == [1, 2]
    assert total.is_error and total.content[0].text.startswith("Denied by policy: ")


def test_closing_the_stream_of_a_2026_call_cancels_it_upstream(keys, tmp_path):
    """2026 has no cancel notification over HTTP: closing the event stream that answers a
    call is its cancellation. A long call to server-everything (behind a wiretap) streams its
    progress; the client closes the stream; the server receives notifications/cancelled for
    the id the proxy forwarded the call under."""
    from support.mcp_helpers import node_server, tapped

    server, received, _ = tapped(tmp_path, "everything", node_server("mcp-server-everything"))
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    policy = {"version": "c", "default_action": "Deny", "roles": ["user"], "tools": ["trigger-long-running-operation"],
              "rules": [{"tool_name": "trigger-long-running-operation", "roles": ["user"]}]}
    (tmp_path / "policy.json").write_bytes(orjson.dumps(policy))
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"),
                             "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp_path / "pub.pem"),
                             "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role", "--", *server],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    msg = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "trigger-long-running-operation", "arguments": {"duration": 20, "steps": 20},
        "_meta": dict(ENVELOPE, progressToken="p1")}}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": V, "mcp-method": "tools/call",
               "mcp-name": "trigger-long-running-operation",
               "authorization": "Bearer " + keys.token(cg_role="user")}
    try:
        wait_http(url, proc)
        with httpx.stream("POST", url, content=orjson.dumps(msg), headers=headers, timeout=30) as resp:
            assert resp.headers["content-type"].startswith("text/event-stream")
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    first = orjson.loads(line[5:])
                    break
        assert first["method"] == "notifications/progress" and first["params"]["progressToken"] == "p1"
        deadline = time.monotonic() + 15
        cancelled = []
        while not cancelled and time.monotonic() < deadline:
            time.sleep(0.1)
            lines = [orjson.loads(x) for x in received.read_bytes().splitlines() if x.strip()]
            cancelled = [m for m in lines if m.get("method") == "notifications/cancelled"]
    finally:
        stop(proc)
    (call,) = [m for m in lines if m.get("method") == "tools/call"]
    assert cancelled and cancelled[0]["params"]["requestId"] == call["id"] != 1
