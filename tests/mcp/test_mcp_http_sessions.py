"""Sessions of the Streamable HTTP front with real clients (issue 15, item 7; docs/mcp.md,
"The Streamable HTTP front"):

- a call's progress notifications go out on the call's own event stream, before its result
  (the official Python SDK client, @modelcontextprotocol/server-everything behind the front);
- clients that never DELETE their session (the TypeScript SDK's close()) are all served, and
  the front never keeps more upstream processes than --max-sessions;
- a session whose upstream died answers 404, and the client's next session works.
"""

from __future__ import annotations

import subprocess
import threading
import time

import anyio
import orjson
import pytest

from support.mcp_helpers import NODE_BIN, PY, RAW_RESPONDER, free_port, node_server, stop

jwt = pytest.importorskip("jwt")
httpx = pytest.importorskip("httpx")
pytest.importorskip("mcp")
from support.mcp_http import AUD, ISS, Keys, wait_http  # noqa: E402

POLICY = {"version": "s", "default_action": "Deny", "roles": ["user"],
          "tools": ["echo", "trigger-long-running-operation", "view_customer"],
          "rules": [{"tool_name": name, "roles": ["user"]} for name in
                    ("echo", "trigger-long-running-operation", "view_customer")]}


@pytest.fixture(scope="module")
def keys():
    return Keys()


def _front(tmp_path, keys, server: list[str], *options: str) -> tuple[subprocess.Popen, str]:
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    (tmp_path / "policy.json").write_bytes(orjson.dumps(POLICY))
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"),
                             "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp_path / "pub.pem"),
                             "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role", *options,
                             "--", *server], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_http(url, proc)
    return proc, url


def test_progress_notifications_arrive_before_the_result(tmp_path, keys):
    """100 calls of a 4-step progress tool through the front: for every call the SDK client's
    progress callback gets all 4 notifications, in order, before the call returns."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    proc, url = _front(tmp_path, keys, node_server("mcp-server-everything"))
    token = keys.token(cg_role="user")

    async def session() -> list[list[float]]:
        seen: list[list[float]] = []
        with anyio.fail_after(240):
            async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
                async with streamable_http_client(url, http_client=http) as (r, w, *_), ClientSession(r, w) as s:
                    await s.initialize()
                    for _ in range(100):
                        progress: list[float] = []

                        async def on_progress(value, total, message, progress=progress):
                            progress.append(value)

                        result = await s.call_tool("trigger-long-running-operation", {"duration": 0.04, "steps": 4},
                                                   progress_callback=on_progress)
                        assert not result.is_error, result
                        seen.append(list(progress))
        return seen

    try:
        seen = anyio.run(session)
    finally:
        stop(proc)
    assert len(seen) == 100
    assert all(p == [1, 2, 3, 4] for p in seen), [p for p in seen if p != [1, 2, 3, 4]][:3]


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def test_clients_that_never_delete_their_session_are_all_served(tmp_path, keys):
    """200 sequential TypeScript SDK clients whose close() sends no DELETE: all get their
    listing and their call answered, and the front never has more than --max-sessions
    server processes alive (the least recently used idle session makes room)."""
    if not (NODE_BIN / "mcp-server-everything").exists():
        node_server("mcp-server-everything")   # installs tests/node, or skips (fails in CI)
    proc, url = _front(tmp_path, keys, [PY, str(RAW_RESPONDER)], "--max-sessions", "4",
                       "--max-sessions-per-principal", "4")
    most, done = [0], threading.Event()

    def watch() -> None:
        while not done.is_set():
            most[0] = max(most[0], len(_children(proc.pid)))
            time.sleep(0.01)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        run = subprocess.run(["node", str(NODE_BIN.parents[1] / "ts_clients.mjs"), url, keys.token(cg_role="user"),
                              "200", "view_customer", '{"customer_id": "C-1"}'],
                             capture_output=True, text=True, timeout=300, cwd=str(NODE_BIN.parents[1]))
    finally:
        done.set()
        watcher.join(timeout=5)
        stop(proc)
    lines = [orjson.loads(line) for line in run.stdout.splitlines()]
    assert len(lines) == 200, run.stdout[-2000:] + run.stderr[-2000:]
    assert [line.get("error") for line in lines if "error" in line] == []
    assert all(line["text"] == "ok view_customer" and "view_customer" in line["tools"] for line in lines)
    assert 1 <= most[0] <= 4, most[0]


def test_a_session_whose_upstream_died_answers_404_and_a_new_one_works(tmp_path, keys):
    """The upstream process exits: the request in flight gets an error, the session's next
    request gets 404 (so SDK clients start a new session), and a new session is served."""
    proc, url = _front(tmp_path, keys, [PY, str(RAW_RESPONDER)])
    headers = {"accept": "application/json, text/event-stream", "authorization": "Bearer " + keys.token(cg_role="user")}
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}
    try:
        first = httpx.post(url, json=init, headers=headers, timeout=20)
        sid = first.headers["mcp-session-id"]
        mine = dict(headers, **{"mcp-session-id": sid})
        crashed = httpx.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "crash"}, headers=mine, timeout=20)
        assert crashed.status_code == 200 and crashed.json()["error"]["code"] == -32000
        assert "exited with status 3" in crashed.json()["error"]["message"]
        gone = httpx.post(url, json={"jsonrpc": "2.0", "id": 3, "method": "ping"}, headers=mine, timeout=20)
        assert gone.status_code == 404
        again = httpx.post(url, json=init, headers=headers, timeout=20)
        sid2 = again.headers["mcp-session-id"]
        assert sid2 != sid
        ping = httpx.post(url, json={"jsonrpc": "2.0", "id": 4, "method": "ping"},
                          headers=dict(headers, **{"mcp-session-id": sid2}), timeout=20)
        assert ping.status_code == 200 and ping.json() == {"jsonrpc": "2.0", "id": 4, "result": {}}
    finally:
        stop(proc)
