"""The example CRM MCP server (official SDK) with the official SDK client: through the
stdio proxy, through the demo, and with guard() in-process.

The CRM server journals each tool call it actually runs: denied calls must never be there.
"""

from __future__ import annotations

import io

import anyio
import orjson
import pytest
from rich.console import Console

from callgate import examples
from callgate.mcp import Identity, guard
from callgate.demo import crm, crm_server
from callgate.demo import run_demo
from support.mcp_helpers import PY, journal_lines

pytest.importorskip("mcp")
from mcp import Client, ClientSession, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

MANAGER = {"user_id": "mgr-001"}


def _manager_cases():
    return [c for c in examples.cases("crm") if c["role"] == "manager" and c["agent_attributes"] == MANAGER]


def test_sdk_client_over_stdio_through_the_proxy(tmp_path):
    """ClientSession over stdio -> `callgate proxy` -> the CRM server: tools/list shows the
    manager's tools, every manager scenario gets its expected decision, and the server ran
    exactly the allowed calls."""
    journal = tmp_path / "crm.jsonl"
    params = StdioServerParameters(command=PY, args=[
        "-m", "callgate", "proxy", "--policy", "crm", "--role", "manager", "--agent-attr", "user_id=mgr-001",
        "--resolver", "callgate.demo.crm:resolve", "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)])
    cases = _manager_cases()
    assert len(cases) >= 4

    async def session():
        outcomes = []
        with anyio.fail_after(60):
            async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                names = [t.name for t in (await s.list_tools()).tools]
                for case in cases:
                    result = await s.call_tool(case["tool"], case["args"])
                    outcomes.append((result.is_error, result.content[0].text))
        return names, outcomes

    names, outcomes = anyio.run(session)
    assert names == ["view_customer", "update_customer", "delete_customer", "process_refund", "access_pii", "export_data"]
    for case, (is_error, text) in zip(cases, outcomes):
        assert (case["expected"] == "Deny") == text.startswith("Denied by policy: "), (case["name"], text)
        assert is_error == (case["expected"] == "Deny")
    ran = [e["tool"] for e in journal_lines(journal)]
    assert ran == [c["tool"] for c in cases if c["expected"] == "Allow"]


def test_demo_plays_every_crm_scenario():
    """`callgate demo`'s story: all CRM scenarios through a real client, the proxy and the CRM
    server; every decision as expected, the server ran only the allowed calls, exit 0."""
    buf = io.StringIO()
    status = run_demo(out=Console(file=buf, width=200, color_system=None))
    text = buf.getvalue()
    assert status == 0, text
    assert "20 calls: 9 allowed, 11 denied, 0 unexpected" in text
    assert "only the allowed calls" in text
    assert "Deny   process_refund denied for role 'agent': Arguments.amount = 800 is not <= 500 (rule 4)" in text
    assert "C-2038 (Globex Ltd) deleted" in text
    # the scene about ownership shows both sides and names both failed branches of the Any
    assert 'delete_customer(customer_id="C-9001")  as manager {"user_id":"mgr-001"} on {"owner_id":"mgr-002"}' in text
    assert ("Deny   delete_customer denied for role 'manager': AgentAttributes.user_id = \"mgr-001\" does not equal "
            "ResourceAttributes.owner_id = \"mgr-002\", and AgentAttributes.role is missing (rule 3)") in text


def test_demo_plays_a_users_own_policy_and_script(tmp_path):
    """`callgate demo --policy P --script S`: the user's scenes, with mismatches reported
    (exit 1 when a decision differs from the script's expectation)."""
    policy = tmp_path / "p.json"
    policy.write_bytes(orjson.dumps({"version": "1", "default_action": "Deny", "tools": ["view_customer"],
                                     "roles": ["viewer"], "rules": [{"tool_name": "view_customer", "roles": ["viewer"],
                                                                     "condition": None}]}))
    script = tmp_path / "s.json"
    script.write_bytes(orjson.dumps({"cases": [
        {"name": "viewer views", "tool": "view_customer", "args": {"customer_id": "C-9001"}, "role": "viewer", "expected": "Allow"},
        {"name": "viewer deletes", "tool": "delete_customer", "args": {"customer_id": "C-9001"}, "role": "viewer", "expected": "Deny"}]}))
    buf = io.StringIO()
    assert run_demo(policy=policy, script=script, out=Console(file=buf, width=200, color_system=None)) == 0, buf.getvalue()
    script.write_bytes(orjson.dumps({"cases": [
        {"tool": "delete_customer", "args": {"customer_id": "C-9001"}, "role": "viewer", "expected": "Allow"}]}))
    assert run_demo(policy=policy, script=script, out=Console(file=io.StringIO(), width=200)) == 1


def test_guard_enforces_the_policy_inside_an_sdk_server(tmp_path):
    """guard() on an MCPServer: identity from the server's request context; denied calls are
    tool errors that never run the tool; tools/list is filtered per caller; no identity, no call."""
    journal = tmp_path / "crm.jsonl"
    server = crm_server.build_server(str(journal))
    who = {"identity": Identity("manager", MANAGER)}
    guard(server, examples.policy("crm"), identity=lambda ctx: who["identity"], resolver=crm.resolve)

    async def session():
        with anyio.fail_after(30):
            async with Client(server) as c:
                listed = [t.name for t in (await c.list_tools()).tools]
                denied = await c.call_tool("delete_customer", {"customer_id": "C-9001"})
                allowed = await c.call_tool("delete_customer", {"customer_id": "C-2038"})
                who["identity"] = Identity("agent", {"user_id": "agt-099"})
                agent_listed = [t.name for t in (await c.list_tools()).tools]
                who["identity"] = None
                anonymous = await c.call_tool("view_customer", {"customer_id": "C-1042"})
        return listed, denied, allowed, agent_listed, anonymous

    listed, denied, allowed, agent_listed, anonymous = anyio.run(session)
    assert "bulk_update" not in listed and "delete_customer" in listed
    assert denied.is_error and denied.content[0].text.startswith("Denied by policy: delete_customer denied for role 'manager'")
    assert not allowed.is_error and allowed.content[0].text == "C-2038 (Globex Ltd) deleted"
    assert agent_listed == ["view_customer", "update_customer", "process_refund"]
    assert anonymous.is_error and "could not establish who is calling" in anonymous.content[0].text
    assert [e["tool"] for e in journal_lines(journal)] == ["delete_customer"]
    assert journal_lines(journal)[0]["args"] == {"customer_id": "C-2038"}


def test_demo_command_is_registered():
    """`callgate demo`, `callgate proxy` and `callgate pins` are commands of the CLI."""
    from support.cli import invoke

    result = invoke("--help")
    assert result.exit_code == 0
    for name in ("demo", "proxy", "pins"):
        assert name in result.output


def test_2026_protocol_client_through_the_stdio_proxy(tmp_path):
    """mcp.Client negotiates the 2026 protocol (no handshake, version in each request's _meta)
    through the proxy: tools/list is filtered and a denial is a valid 2026 tool result."""
    journal = tmp_path / "crm.jsonl"
    params = StdioServerParameters(command=PY, args=[
        "-m", "callgate", "proxy", "--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099",
        "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)])

    async def session():
        with anyio.fail_after(60):
            async with Client(params) as c:
                listed = [t.name for t in (await c.list_tools()).tools]
                denied = await c.call_tool("delete_customer", {"customer_id": "C-1042"})
                allowed = await c.call_tool("view_customer", {"customer_id": "C-1042"})
        return listed, denied, allowed

    listed, denied, allowed = anyio.run(session)
    assert listed == ["view_customer", "update_customer", "process_refund"]
    assert denied.is_error and denied.content[0].text.startswith("Denied by policy: delete_customer")
    assert not allowed.is_error
    assert [e["tool"] for e in journal_lines(journal)] == ["view_customer"]
