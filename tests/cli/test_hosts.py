"""`callgate wrap` / `unwrap` on agent hosts' MCP configurations (Claude Desktop, Cursor,
VS Code): one entry is rewritten to start through the proxy with its env and cwd kept, the
rest of the file is untouched, unwrap restores the original bytes, and the wrapped entry
really starts the server through the proxy (a real MCP session over its stdio)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from callgate.hosts import WRAPPED_ENV, HostConfigError, unwrap_text, wrap_text
from support import REPO
from support.cli import invoke
from support.mcp_helpers import Wire

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
    # spoken to as a host does: each answer read before stdin is closed (a server may drop
    # what is still in flight when its input ends)
    with Wire([entry["command"], *entry["args"]], env=entry["env"]) as wire:
        assert wire.initialize()["result"]["serverInfo"]
        names = {t["name"] for t in wire.answer_to(2, "tools/list")["result"]["tools"]}
        assert "view_customer" in names and "delete_customer" not in names   # the agent's listing
        denied = wire.answer_to(3, "tools/call", {"name": "delete_customer", "arguments": {"customer_id": "C-1042"}})
        assert wire.close() == 0
    assert denied["result"]["isError"] is True
    assert "denied" in denied["result"]["content"][0]["text"]


INSPECTOR = REPO / "tests" / "inspector"


def _inspector() -> str:
    """The MCP Inspector CLI from tests/inspector, installed from its lock on first use
    (`npm ci`, bounded); without npm or the registry a skip, except in CI where it fails."""
    binary = INSPECTOR / "node_modules" / ".bin" / "mcp-inspector"
    if not binary.exists() and shutil.which("npm"):
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(INSPECTOR)],
                       capture_output=True, timeout=300)
    if binary.exists():
        return str(binary)
    if os.environ.get("CI"):
        raise AssertionError(f"{binary} is missing and `npm ci --prefix tests/inspector` did not install it")
    pytest.skip("the MCP Inspector is not installed (npm ci --prefix tests/inspector)")
    raise AssertionError("unreachable")


def test_the_wrapped_entry_serves_through_the_mcp_inspector_cli(tmp_path):
    """The official MCP Inspector, in CLI mode, reads the wrapped config (--config, --server)
    and starts the entry: tools/list through the proxy shows the agent's tools only, an
    allowed call returns the server's answer, and a call the policy denies (a refund over
    the agent's limit) comes back as the policy's denial."""
    inspector = _inspector()
    server = tmp_path / "crm.py"
    server.write_text("from callgate.demo.crm_server import main\nmain()\n")
    config = tmp_path / "claude_desktop_config.json"
    config.write_text(json.dumps({"mcpServers": {"crm": {"command": sys.executable, "args": [str(server)]}}}, indent=2))
    assert invoke("wrap", str(config), "--server", "crm", "--policy", "crm", "--role", "agent").exit_code == 0
    env = {**os.environ, "MCP_INSPECTOR_SECRET_STORE": "memory"}
    base = [inspector, "--cli", "--config", str(config), "--server", "crm"]
    listed = subprocess.run([*base, "--method", "tools/list"], capture_output=True, text=True, timeout=120, env=env)
    assert listed.returncode == 0, listed.stderr
    names = {t["name"] for t in json.loads(listed.stdout)["tools"]}
    assert "view_customer" in names and "delete_customer" not in names
    viewed = subprocess.run([*base, "--method", "tools/call", "--tool-name", "view_customer",
                             "--tool-arg", "customer_id=C-1042"], capture_output=True, text=True, timeout=120, env=env)
    assert json.loads(viewed.stdout)["content"][0]["text"].startswith("C-1042: Acme Corp"), viewed.stderr
    denied = subprocess.run([*base, "--method", "tools/call", "--tool-name", "process_refund",
                             "--tool-arg", "order_id=O-1", "amount=800"], capture_output=True, text=True, timeout=120,
                            env=env)
    result = json.loads(denied.stdout)
    assert result["isError"] is True, denied.stdout + denied.stderr
    assert result["content"][0]["text"] == ("Denied by policy: process_refund denied for role 'agent': "
                                            "Arguments.amount = 800 is not <= 500 (rule 4)")
