"""Pass-through fidelity: for allowed traffic the proxy is invisible. A server (official
SDK) exercising resources, prompts, completion, logging, progress notifications and a
sampling request is driven by a scripted client twice, directly and through the proxy,
with a recorder between proxy and server; the bytes the client receives and the bytes the
server receives must be identical in both runs, but for one thing the proxy changes on
purpose: a request the server sends the client travels under an id the proxy mints
(session.py), and its answer goes back to the server under the server's own id."""

from __future__ import annotations


import orjson
import pytest

from support.mcp_helpers import PY, Wire

pytest.importorskip("mcp")

SERVER = r'''
from mcp.server.mcpserver import MCPServer, Context
from mcp.types import SamplingMessage, TextContent

server = MCPServer("fidelity")

@server.resource("notes://today", description="today's note")
def today() -> str:
    return "buy milk"

@server.prompt(description="greet someone")
def greet(name: str) -> str:
    return f"Say hello to {name}"

@server.tool(description="count with progress, then ask the client's model")
async def work(steps: int, ctx: Context) -> str:
    for i in range(steps):
        await ctx.report_progress(i + 1, steps, f"step {i + 1}")
    reply = await ctx.session.create_message(
        [SamplingMessage(role="user", content=TextContent(type="text", text="summarize"))], max_tokens=20)
    return f"done: {reply.content.text}"

server.run("stdio")
'''

RECORDER = r'''
import subprocess, sys, threading
log_in, log_out, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
child = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
def down():
    with open(log_out, "wb") as log:
        for line in child.stdout:
            log.write(line); log.flush()
            sys.stdout.buffer.write(line); sys.stdout.buffer.flush()
threading.Thread(target=down, daemon=True).start()
with open(log_in, "wb") as log:
    for line in sys.stdin.buffer:
        log.write(line); log.flush()
        child.stdin.write(line); child.stdin.flush()
child.stdin.close()
child.wait(timeout=10)
'''

SCRIPT = [
    {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {"sampling": {}, "roots": {"listChanged": True}},
        "clientInfo": {"name": "fidelity-client", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
    {"jsonrpc": "2.0", "id": 2, "method": "ping"},
    {"jsonrpc": "2.0", "id": 3, "method": "resources/list"},
    {"jsonrpc": "2.0", "id": "r-4", "method": "resources/read", "params": {"uri": "notes://today"}},
    {"jsonrpc": "2.0", "id": 5, "method": "prompts/list"},
    {"jsonrpc": "2.0", "id": 6, "method": "prompts/get", "params": {"name": "greet", "arguments": {"name": "Ada"}}},
    {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {
        "name": "work", "arguments": {"steps": 3}, "_meta": {"progressToken": "tok-7"}}},
    {"jsonrpc": "2.0", "id": 8, "method": "resources/read", "params": {"uri": "notes://missing"}},
    {"jsonrpc": "2.0", "id": 9, "method": "no/such/method"},
]
SAMPLING_REPLY = {"role": "assistant", "content": {"type": "text", "text": "all good"}, "model": "stub",
                  "stopReason": "endTurn"}
POLICY = {"version": "f", "default_action": "Deny", "tools": ["work"], "roles": ["user"],
          "rules": [{"tool_name": "work", "roles": ["user"], "condition": None}]}


def _drive(argv: list[str]) -> list[bytes]:
    """Send the script one request at a time; answer sampling requests; return every line
    the client received."""
    received: list[bytes] = []
    with Wire(argv) as w:
        for msg in SCRIPT:
            w.send(msg)
            if "id" not in msg:
                continue
            while True:
                line = w.recv_raw()
                assert line is not None, w.stderr.decode(errors="replace")
                received.append(line)
                reply = orjson.loads(line)
                if reply.get("method") == "sampling/createMessage":
                    w.send({"jsonrpc": "2.0", "id": reply["id"], "result": SAMPLING_REPLY})
                elif reply.get("id") == msg["id"] and "method" not in reply:
                    break
        assert w.close() == 0
    return received


def test_allowed_traffic_passes_byte_for_byte(tmp_path):
    """Direct vs proxied: identical client-side bytes (responses, progress notifications, the
    sampling request) and identical server-side bytes (requests, the sampling answer)."""
    server = tmp_path / "server.py"
    server.write_text(SERVER)
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))

    def chain(tag: str) -> list[str]:
        return [PY, str(recorder), str(tmp_path / f"{tag}.in"), str(tmp_path / f"{tag}.out"), PY, str(server)]

    direct = _drive(chain("direct"))
    proxied = _drive([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "user", "--", *chain("proxied")])
    kinds = [orjson.loads(line).get("method") for line in direct]
    assert kinds.count("notifications/progress") == 3 and "sampling/createMessage" in kinds
    assert len(proxied) == len(direct)
    for seen, sent in zip(proxied, direct):
        if b'"method":"sampling/createMessage"' in sent:   # the server's request, under the proxy's id
            ours = orjson.loads(seen)["id"]
            assert isinstance(ours, str) and ours.startswith("cg-")
            theirs = b'"id":' + orjson.dumps(orjson.loads(sent)["id"]) + b","
            assert seen == sent.replace(theirs, f'"id":"{ours}",'.encode(), 1)
        else:
            assert seen == sent
    assert (tmp_path / "proxied.in").read_bytes() == (tmp_path / "direct.in").read_bytes()
    assert (tmp_path / "proxied.out").read_bytes() == (tmp_path / "direct.out").read_bytes()
