"""`callgate wrap` / `unwrap` on agent hosts' MCP configurations (Claude Desktop, Cursor,
VS Code): one entry is rewritten to start through the proxy with its env and cwd kept, the
rest of the file is untouched, unwrap restores the original bytes, and the wrapped entry
really starts the server through the proxy (a real MCP session over its stdio)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from callgate.hosts import WRAPPED_ENV, HostConfigError, unwrap_text, wrap_text
from support.cli import invoke

CLAUDE = """{
  "mcpServers": {
    "filesystem": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-filesystem", "/Users/alice/Desktop"],
      "env": {"DEBUG": "1"}
    },
    "time": {
      "command": "uvx",
      "args": [
        "mcp-server-time"
      ]
    }
  },
  "globalShortcut": "Ctrl+Space"
}
"""
CURSOR = '{"mcpServers":{"crm":{"command":"python","args":["crm.py"],"cwd":"/srv/crm"}}}\n'
VSCODE = """{
    "inputs": [{"type": "promptString", "id": "token", "description": "Token", "password": true}],
    "servers": {
        "git": {"type": "stdio", "command": "uvx", "args": ["mcp-server-git"], "env": {"TOKEN": "${input:token}"}}
    }
}
"""


@pytest.mark.parametrize("text,server", [(CLAUDE, "filesystem"), (CLAUDE, "time"), (CURSOR, "crm"), (VSCODE, "git")])
def test_wrap_then_unwrap_restores_the_original_bytes(text, server):
    """Wrapping changes only that entry (the others and the rest of the file keep their
    bytes); unwrapping gives back exactly the original file."""
    wrapped = wrap_text(text, server, policy="/p/policy.json", role="agent", python="/usr/bin/python3")
    assert wrapped != text
    assert unwrap_text(wrapped, server) == text
    doc = json.loads(wrapped)
    section = doc.get("mcpServers") or doc["servers"]
    entry = section[server]
    original = (json.loads(text).get("mcpServers") or json.loads(text)["servers"])[server]
    assert entry["command"] == "/usr/bin/python3"
    assert entry["args"][:7] == ["-m", "callgate", "proxy", "--policy", "/p/policy.json", "--role", "agent"]
    assert json.loads(entry["args"][-1]) == [original["command"], *original["args"]]
    assert {k: v for k, v in entry["env"].items() if k != WRAPPED_ENV} == original.get("env", {})
    for key in ("cwd", "type"):
        assert entry.get(key) == original.get(key)
    for other, value in section.items():   # the other servers are as they were
        if other != server:
            assert value == (json.loads(text).get("mcpServers") or json.loads(text)["servers"])[other]


def test_refusals_are_one_line():
    """Not a host file, no such server, a server wrapped twice, unwrapping one never
    wrapped: each a HostConfigError (one line on the command line, exit 2)."""
    with pytest.raises(HostConfigError, match="not an MCP host configuration"):
        wrap_text('{"a": 1}', "x", policy="p")
    with pytest.raises(HostConfigError, match="no server 'nope' \\(the file has: filesystem, time\\)"):
        wrap_text(CLAUDE, "nope", policy="p")
    once = wrap_text(CLAUDE, "time", policy="p")
    with pytest.raises(HostConfigError, match="wrapped already"):
        wrap_text(once, "time", policy="p")
    with pytest.raises(HostConfigError, match="not wrapped by callgate"):
        unwrap_text(CLAUDE, "time")


def test_the_commands_rewrite_the_file(tmp_path):
    """`callgate wrap` and `unwrap` change the file in place; a bad file is one line, exit 2."""
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(CLAUDE)
    r = invoke("wrap", str(config), "--server", "time", "--policy", "crm", "--role", "agent")
    assert r.exit_code == 0, r.output
    assert "callgate" in json.loads(config.read_text())["mcpServers"]["time"]["args"]
    assert invoke("unwrap", str(config), "--server", "time").exit_code == 0
    assert config.read_text() == CLAUDE
    r = invoke("unwrap", str(config), "--server", "time")
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "not wrapped" in r.stderr


def test_the_wrapped_entry_serves_through_the_proxy(tmp_path):
    """Started as the host would (command, args and env of the wrapped entry), the entry
    runs the server behind the proxy: initialize and tools/list answer over its stdio, and
    a call the policy denies comes back denied."""
    server = tmp_path / "crm.py"
    server.write_text("from callgate.demo.crm_server import main\nmain()\n")
    text = json.dumps({"mcpServers": {"crm": {"command": sys.executable, "args": [str(server)],
                                              "env": {"PYTHONUNBUFFERED": "1"}}}}, indent=2)
    entry = json.loads(wrap_text(text, "crm", policy="crm", role="agent"))["mcpServers"]["crm"]
    messages = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "delete_customer",
                                                                     "arguments": {"customer_id": "C-1042"}}},
    ]
    done = subprocess.run([entry["command"], *entry["args"]], input="".join(json.dumps(m) + "\n" for m in messages),
                          capture_output=True, text=True, timeout=60, env={**os.environ, **entry["env"]})
    replies = {r["id"]: r for r in map(json.loads, done.stdout.splitlines()) if "id" in r}
    assert replies[1]["result"]["serverInfo"]
    names = {t["name"] for t in replies[2]["result"]["tools"]}
    assert "view_customer" in names and "delete_customer" not in names   # the agent's listing
    assert replies[3]["result"]["isError"] is True
    assert "denied" in replies[3]["result"]["content"][0]["text"]
