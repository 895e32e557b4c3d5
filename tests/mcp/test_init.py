"""`callgate init` against published MCP servers (mcp-server-time, server-filesystem,
server-everything): the starter policy it writes passes `callgate check` and `callgate
test`, and the proxy then enforces it with the official SDK client; the tiers follow the
annotations only for a server marked trusted."""

from __future__ import annotations

import json

import anyio
import pytest

from callgate.mcp.gate import DENIED_PREFIX
from support.cli import run
from support.mcp_helpers import PY, node_server, sdk_calls

TIME = [PY, "-m", "mcp_server_time"]


def _init(tmp_path, server, *options):
    policy, cases, pins = tmp_path / "p.json", tmp_path / "c.json", tmp_path / "pins.json"
    r = run("init", "-o", str(policy), "--cases", str(cases), "--pins", str(pins), *options, "--", *server)
    assert r.returncode == 0, r.stderr
    return policy, cases, pins


@pytest.mark.parametrize("name", ["time", "filesystem", "everything"])
def test_init_writes_a_policy_check_and_test_pass(tmp_path, name):
    """For each server: every listed tool declared with a tier, cases and pins written;
    check passes (exit 0) and every case passes."""
    server = {"time": TIME,
              "filesystem": [*node_server("mcp-server-filesystem"), str(tmp_path)],
              "everything": node_server("mcp-server-everything")}[name]
    policy, cases, pins = _init(tmp_path, server)
    doc = json.loads(policy.read_text())
    assert doc["tools"] and set(doc["tool_tiers"]) == set(doc["tools"]) and doc["rules"] == []
    assert set(json.loads(pins.read_text())["tools"]) == set(doc["tools"])
    check = run("check", str(policy))
    assert check.returncode == 0, check.stdout + check.stderr
    test = run("test", str(policy), str(cases))
    assert test.returncode == 0, test.stdout
    assert f"{len(doc['tools'])}/{len(doc['tools'])} passed" in test.stdout


def test_only_a_trusted_servers_annotations_set_the_tiers(tmp_path):
    """mcp-server-time marks its tools read-only: untrusted they start at write (elevate),
    trusted they are read (allowed)."""
    untrusted, _, _ = _init(tmp_path, TIME)
    assert set(json.loads(untrusted.read_text())["tool_tiers"].values()) == {"write"}
    (tmp_path / "t").mkdir()
    trusted, _, _ = _init(tmp_path / "t", TIME, "--trusted")
    assert set(json.loads(trusted.read_text())["tool_tiers"].values()) == {"read"}


def test_the_proxy_enforces_the_starter_policy(tmp_path):
    """Through the proxy with the official SDK client: under the trusted starter policy the
    read tool runs; under the untrusted one it needs an approval nobody can give here, so it
    is denied and the server never runs it."""
    (tmp_path / "t").mkdir()
    trusted, _, _ = _init(tmp_path / "t", TIME, "--trusted")
    untrusted, _, _ = _init(tmp_path, TIME)
    call = [("get_current_time", {"timezone": "UTC"})]
    for policy, allowed in ((trusted, True), (untrusted, False)):
        argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent", "--", *TIME]
        names, results = anyio.run(sdk_calls, argv, call)
        assert "get_current_time" in names
        text = results[0].content[0].text
        assert results[0].is_error is (not allowed)
        assert text.startswith(DENIED_PREFIX) is (not allowed), text


def test_init_refuses_what_it_cannot_do(tmp_path):
    """No server, both a command and a URL, a server that does not start, an output in a
    missing directory: one line each, never a traceback."""
    assert "give the server once" in run("init", "-o", str(tmp_path / "p.json")).stderr
    r = run("init", "-o", str(tmp_path / "p.json"), "--", str(tmp_path / "no-such-server"))
    assert r.returncode == 1 and r.stderr.startswith("error: cannot list the server's tools") and "Traceback" not in r.stderr
    r = run("init", "-o", str(tmp_path / "nope" / "p.json"), "--", *TIME)
    assert r.returncode == 2 and "does not exist" in r.stderr



def test_init_lists_a_streamable_http_server(tmp_path):
    """`callgate init --url` lists a Streamable HTTP server's tools through the official SDK
    client (a real MCPServer served by uvicorn) and declares each of them with a tier."""
    pytest.importorskip("uvicorn")
    from mcp.server.mcpserver import MCPServer

    from support.mcp_helpers import serve_in_thread

    server = MCPServer("over-http")

    @server.tool(description="say hello")
    def hello(name: str) -> str:
        return f"hello {name}"

    @server.tool(description="forget everything")
    def forget() -> str:
        return "forgotten"

    policy = tmp_path / "p.json"
    with serve_in_thread(server.streamable_http_app()) as url:
        r = run("init", "-o", str(policy), "--url", url)
    assert r.returncode == 0, r.stderr
    doc = json.loads(policy.read_text())
    assert sorted(doc["tools"]) == ["forget", "hello"] and set(doc["tool_tiers"]) == {"forget", "hello"}
    assert run("check", str(policy)).returncode == 0
