"""What the MCP listing shows each role (docs/mcp.md, "tools/list"): exactly the tools the
role could ever be allowed, as `language.Meaning.visible` says, whose written contract is:

- a deny rule never makes a tool visible, and an unconditional deny rule for the pair hides it;
- otherwise some allow or elevate rule for the pair shows it;
- otherwise the tool's default (its tier's default, or default_action) shows it when it
  allows or elevates.

The contract is evaluated here independently, from the policy JSON with the reference
evaluator's expansion (tests/support/reference.py imports nothing of callgate)."""

from __future__ import annotations

import anyio
import orjson
from hypothesis import HealthCheck, given, settings

from callgate import Engine
from callgate.mcp.gate import Gate, Identity
from support import reference
from support.mcp_helpers import Wire, proxy_argv
from support.strategies import v2_policies


def contract(policy: dict, tool: str, role: str, tiers: dict) -> bool:
    """The written contract, from the raw policy, the tools' tiers and the reference's expansion."""
    rules = [policy["rules"][i] for i in reference.expand(policy, "strict", tiers).get((tool, role), [])]
    if any(r.get("effect", "allow") == "deny" and r.get("condition") is None for r in rules):
        return False
    if any(r.get("effect", "allow") in ("allow", "elevate") for r in rules):
        return True
    default = policy.get("tier_defaults", {}).get(tiers.get(tool)) if tiers.get(tool) else None
    effect = policy["default_action"].lower() if default is None else \
        (default if isinstance(default, str) else default["effect"])
    return effect in ("allow", "elevate")


def _listing(policy: dict) -> list[dict]:
    return [{"name": t, "inputSchema": {"type": "object"}} for t in policy["tools"]]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(v2_policies())
def test_the_listing_shows_exactly_the_visible_tools(policy):
    """For random v2 policies and every (tool, role): the gate's filtered tools/list shows a
    tool exactly when `visible(tool, role)` says so, and `visible` agrees with its written
    contract evaluated independently."""
    engine = Engine.from_dict(policy)
    gate = Gate(engine)
    # where tiers matter, the gate gives the tools the server lists a tier (an untrusted
    # server's unannotated tool: the policy's tier, or write) and recompiles with them
    tiers = reference.tool_tiers(policy)
    if policy.get("tier_defaults") or any("tier" in r for r in policy["rules"]):
        tiers = {t: tiers.get(t, "write") for t in policy["tools"]}
    for role in policy["roles"]:
        listed = _listing(policy)
        filtered = gate.filter_list_result({"tools": listed}, role)
        shown = {t["name"] for t in (filtered if filtered is not None else {"tools": listed})["tools"]}
        for tool in policy["tools"]:
            visible = engine.compiled.visible(tool, role)
            assert visible == contract(policy, tool, role, tiers), (tool, role)
            assert (tool in shown) == visible, (tool, role)


ISSUES = {"version": "issues", "default_action": "Deny", "roles": ["reader", "admin"],
          "tools": ["list_issues", "close_issue", "delete_repo"],
          "rules": [{"tool_name": "list_issues", "roles": ["reader", "admin"]},
                    {"tool_name": "*", "roles": ["admin"]},
                    {"tool_name": "*", "roles": ["reader", "admin"], "effect": "deny",
                     "condition": {"FieldPresent": {"source": "Arguments", "field": "force"}}}]}


def test_a_conditional_deny_on_every_tool_shows_nothing_more_through_the_proxy(tmp_path):
    """The review's case: role reader may only call list_issues, and a conditional deny rule
    covers "*" for every role. Through the stdio proxy the reader is shown list_issues only;
    the admin is shown every tool."""
    policy = tmp_path / "issues.json"
    policy.write_bytes(orjson.dumps(ISSUES))
    tools = tmp_path / "tools.json"
    tools.write_bytes(orjson.dumps(_listing(ISSUES)))
    for role, expected in (("reader", ["list_issues"]), ("admin", ["list_issues", "close_issue", "delete_repo"])):
        with Wire(proxy_argv("--policy", str(policy), "--role", role), env={"RAW_TOOLS_FILE": str(tools)}) as w:
            w.initialize()
            assert [t["name"] for t in w.call(1, "tools/list")["result"]["tools"]] == expected
            assert w.close() == 0


def test_a_conditional_deny_on_every_tool_shows_nothing_more_through_guard():
    """The same policy with guard() inside an SDK server: the reader lists list_issues only."""
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    from callgate.mcp import guard

    server = MCPServer("issues")
    for name in ISSUES["tools"]:
        server.add_tool(lambda: "ok", name=name, description=name)
    who = {"role": "reader"}
    guard(server, ISSUES, identity=lambda ctx: Identity(who["role"], {}, "p"))

    async def listed() -> dict:
        out = {}
        async with Client(server) as client:
            for role in ("reader", "admin"):
                who["role"] = role
                out[role] = sorted(t.name for t in (await client.list_tools()).tools)
        return out

    assert anyio.run(listed) == {"reader": ["list_issues"], "admin": ["close_issue", "delete_repo", "list_issues"]}

