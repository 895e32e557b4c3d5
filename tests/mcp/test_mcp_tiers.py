"""Tiers from MCP tool annotations (callgate.mcp.tiers, docs/policy-v2.md "Tiers"): every
branch of the resolution, the gate reloading its engine with the tools a server lists, and
the proxy deciding calls on tools that exist only upstream by a tier rule or tier default."""

from __future__ import annotations

import anyio
import orjson
import pytest

from callgate import Engine
from callgate.mcp.gate import Gate, Identity
from callgate.language import Meaning, policy_tier, stricter, uses_tiers
from callgate.mcp.tiers import discovered_tiers, resolve_tier
from callgate.policy import TIERS, validate
from support.mcp_helpers import PY, RAW_RESPONDER, TOOLS_SERVER, Wire, journal_lines

SERVER = str(TOOLS_SERVER)
RO, DESTRUCTIVE, BOTH = {"readOnlyHint": True}, {"destructiveHint": True}, {"readOnlyHint": True, "destructiveHint": True}

# ---------------------------------------------------------------- the pure resolution


@pytest.mark.parametrize("annotations, declared, expected", [
    (RO, "destructive", "destructive"),   # the policy's tier wins where it names the tool
    (DESTRUCTIVE, "public", "public"),
    (None, "read", "read"),
    (RO, None, "read"),                   # readOnlyHint -> read
    (DESTRUCTIVE, None, "destructive"),   # destructiveHint -> destructive
    (BOTH, None, "read"),                 # destructiveHint only means something when not read-only
    (None, None, "write"),                # no hint -> write
    ({}, None, "write"),
    ({"readOnlyHint": False, "destructiveHint": False}, None, "write"),
    ({"readOnlyHint": "true", "destructiveHint": 1}, None, "write"),   # only JSON true is a hint
])
def test_trusted_server(annotations, declared, expected):
    """Trusted: the policy's tier if it names the tool, else readOnlyHint -> read,
    destructiveHint -> destructive, otherwise write."""
    assert resolve_tier(annotations, trusted=True, declared=declared) == expected


@pytest.mark.parametrize("annotations, declared, expected", [
    (None, None, "write"),                # no policy tier: write
    (RO, None, "write"),                  # readOnlyHint is ignored
    (RO, "public", "public"),             # ... it can never make a tool laxer
    (None, "read", "read"),               # the policy's tier
    (DESTRUCTIVE, None, "destructive"),   # destructiveHint: the stricter of write and destructive
    (DESTRUCTIVE, "public", "destructive"),
    (DESTRUCTIVE, "destructive", "destructive"),
    (BOTH, "read", "destructive"),
    ({"destructiveHint": False}, "read", "read"),
    ({"destructiveHint": "yes"}, None, "write"),
])
def test_untrusted_server(annotations, declared, expected):
    """Untrusted: the stricter of (the policy's tier, or write) and (destructive when
    destructiveHint is true); readOnlyHint is ignored."""
    assert resolve_tier(annotations, trusted=False, declared=declared) == expected


def test_annotations_can_only_make_an_untrusted_tool_stricter():
    """For every annotation combination and policy tier, the untrusted tier is never laxer
    than the policy's (or write), and is destructive exactly when destructiveHint is true."""
    for declared in (None, *TIERS):
        for hints in ({}, RO, DESTRUCTIVE, BOTH):
            tier = resolve_tier(hints, trusted=False, declared=declared)
            assert stricter(tier, declared or "write") == tier
            assert (tier == "destructive") == (hints.get("destructiveHint") is True or declared == "destructive")


def test_bad_declared_tier_is_refused():
    """A declared tier that is not one of the four is a ValueError, never a silent default."""
    with pytest.raises(ValueError):
        resolve_tier(None, trusted=True, declared="admin")


def _policy(**over) -> object:
    """A validated policy with tools a, b and the given keys."""
    return validate({"version": "t", "default_action": "Deny", "tools": ["read_file", "delete_file", "write_file"],
                     "roles": ["r"], "rules": [], **over})


def test_policy_tier_exact_and_globs():
    """tool_tiers: an exact key wins over globs; among globs matching the tool the strictest;
    no key -> None."""
    policy = _policy(tool_tiers={"delete_*": "destructive", "*_file": "read", "read_file": "public", "*": "write"})
    assert policy_tier(policy, "read_file") == "public"
    assert policy_tier(policy, "delete_file") == "destructive"
    assert policy_tier(policy, "write_file") == "write"
    assert policy_tier(_policy(tool_tiers={"a*": "read"}), "b") is None
    assert policy_tier(_policy(), "a") is None


def test_discovered_tiers_from_a_listing():
    """A tools/list page -> name: tier, with the policy's tool_tiers; entries that are not
    tool definitions are skipped."""
    tools = [{"name": "lookup", "annotations": RO}, {"name": "append_note"}, {"name": "wipe", "annotations": DESTRUCTIVE},
             {"nope": 1}, "junk", {"name": 3}]
    policy = _policy(tool_tiers={"append_*": "read"})
    assert discovered_tiers(tools, trusted=True, policy=policy) == \
        {"lookup": "read", "append_note": "read", "wipe": "destructive"}
    assert discovered_tiers(tools, trusted=False, policy=policy) == \
        {"lookup": "write", "append_note": "read", "wipe": "destructive"}


def test_uses_tiers_and_tier_default():
    """Discovery runs only for a policy that tiers can affect (tier_defaults or a tier rule);
    a tier's default is a string or an {effect, approvals} value."""
    assert not uses_tiers(_policy(rules=[{"tool_name": "read_file", "roles": ["r"]}]))
    assert not uses_tiers(_policy(tool_tiers={"read_file": "read"}))
    assert uses_tiers(_policy(tier_defaults={"read": "allow"}))
    assert uses_tiers(_policy(rules=[{"tier": "read", "roles": ["r"]}]))
    meaning = Meaning(_policy(tool_tiers={"read_file": "read", "write_file": "write"},
                              tier_defaults={"read": "allow", "write": {"effect": "elevate", "approvals": 1}}))
    assert meaning.default_effect("read_file") == ("Allow", 0, "read")
    assert meaning.default_effect("write_file") == ("Elevate", 1, "write")
    assert meaning.default_effect("delete_file") == ("Deny", 0, None)


# ---------------------------------------------------------------- the gate

POLICY = {
    "version": "tiers-test-1", "default_action": "Deny", "tools": ["declared_only"], "roles": ["agent"],
    "tool_tiers": {"append_*": "read"},
    "tier_defaults": {"read": "allow", "write": {"effect": "elevate", "approvals": 1}, "destructive": "allow"},
    "rules": [{"tier": "destructive", "roles": ["agent"], "effect": "deny"}],
}
LISTING = [{"name": "lookup", "annotations": RO}, {"name": "append_note"}, {"name": "wipe", "annotations": DESTRUCTIVE}]
AGENT = Identity("agent", {})


def _call(tool: str) -> dict:
    return {"name": tool, "arguments": {"target": "t"}}


@pytest.mark.parametrize("trusted, expected", [
    (True, {"lookup": "Allow", "append_note": "Allow", "wipe": "Deny"}),
    (False, {"lookup": "Elevate", "append_note": "Allow", "wipe": "Deny"}),
])
def test_gate_reloads_with_discovered_tiers(trusted, expected):
    """Before a listing the upstream-only tools fall to default_action; after it, the gate has
    reloaded the engine with their tiers and the tier rule (wipe) and tier defaults decide;
    trusted or not changes lookup (readOnlyHint believed or ignored)."""
    gate = Gate(Engine.from_dict(POLICY), trusted=trusted)
    assert gate.discovery and gate.needs_definitions("lookup")
    assert gate.decide(_call("lookup"), AGENT).decision == "Deny"
    gate.record_tools(LISTING)
    assert not gate.needs_definitions("lookup")
    got = {tool: gate.decide(_call(tool), AGENT) for tool in expected}
    assert {t: v.decision for t, v in got.items()} == expected
    assert got["wipe"].reason == "wipe denied for role 'agent': rule 1 forbids it"
    if not trusted:
        assert got["lookup"].approvals_required == 1
        assert "tier 'write' default Elevate" in got["lookup"].reason
    assert gate.tiers["wipe"] == "destructive"


def test_gate_visibility_follows_tier_defaults():
    """tools/list shows a tool whose tier default is allow or elevate, and hides one that
    nothing could allow (a deny tier default, no rule)."""
    policy = dict(POLICY, tier_defaults={"read": "allow", "write": {"effect": "elevate", "approvals": 2},
                                         "destructive": "deny"}, rules=[])
    gate = Gate(Engine.from_dict(policy), trusted=True)
    result = gate.filter_list_result({"tools": LISTING}, "agent")
    assert [t["name"] for t in result["tools"]] == ["lookup", "append_note"]
    gate_untrusted = Gate(Engine.from_dict(policy), trusted=False)
    assert gate_untrusted.filter_list_result({"tools": LISTING}, "agent")["tools"] == LISTING[:2]


def test_gate_list_changed_relists_and_follows_new_annotations():
    """After list_changed a call waits for a new listing; a tool that became destructive is
    decided by its new tier."""
    gate = Gate(Engine.from_dict(POLICY), trusted=True)
    gate.record_tools(LISTING)
    assert gate.decide(_call("lookup"), AGENT).decision == "Allow"
    gate.mark_stale()
    assert gate.needs_definitions("lookup")
    gate.record_tools([{"name": "lookup", "annotations": DESTRUCTIVE}])
    assert gate.decide(_call("lookup"), AGENT).decision == "Deny"


def test_gate_fails_closed_when_tiers_cannot_be_applied():
    """If the engine cannot be reloaded with the discovered tiers, calls to those tools are
    denied with the reason (never decided as if they had no tier)."""
    policy = dict(POLICY, default_action="Allow")
    engine = Engine.from_dict(policy)

    def broken(*args, **kwargs):
        raise ValueError("compiler says no")

    engine.reload = broken   # type: ignore[method-assign]
    gate = Gate(engine, trusted=True)
    gate.record_tools(LISTING)
    v = gate.decide(_call("wipe"), AGENT)
    assert v.decision == "Deny" and "could not be applied" in v.reason and "compiler says no" in v.reason
    assert gate.decide(_call("declared_only"), AGENT).decision == "Allow"


def test_no_discovery_without_tiers_or_in_perso():
    """A policy that no tier can affect, or perso semantics, never reloads the engine."""
    plain = {"version": "1", "default_action": "Deny", "tools": ["a"], "roles": ["r"], "rules": []}
    assert not Gate(Engine.from_dict(plain)).discovery
    assert Gate(Engine.from_dict(POLICY)).discovery
    perso = dict(POLICY, rules=[{"tool_name": "declared_only", "roles": ["agent"], "condition": None}])
    assert not Gate(Engine.from_dict(perso, "perso")).discovery


# ---------------------------------------------------------------- end to end: the proxy


def _proxy(tmp_path, *extra: str, server=None) -> list[str]:
    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))
    return [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent", *extra,
            "--", *(server or [PY, SERVER, "--journal", str(tmp_path / "tools.jsonl")])]


@pytest.mark.parametrize("trusted", [True, False])
def test_proxy_decides_upstream_only_tools_by_tier(tmp_path, trusted):
    """The SDK client through the stdio proxy to a server whose tools the policy never names:
    the proxy lists them itself before the first call, gives them tiers from their
    annotations, and a tier default (lookup, append_note) or a tier rule (wipe) decides;
    only the allowed calls reach the server. --trusted believes readOnlyHint."""
    from support.mcp_helpers import sdk_calls

    argv = _proxy(tmp_path, *(["--trusted"] if trusted else []))
    calls = [("lookup", {"target": "a"}), ("append_note", {"target": "b"}), ("wipe", {"target": "c"}),
             ("peek", {"target": "d"})]
    names, results = anyio.run(sdk_calls, argv, calls)
    texts = [r.content[0].text for r in results]
    if trusted:
        assert not results[0].is_error and texts[0] == "lookup a"
        assert not results[3].is_error   # readOnlyHint and destructiveHint: read
    else:
        assert results[0].is_error and "lookup requires 1 approval for role 'agent'" in texts[0]
        assert "tier 'write' default Elevate" in texts[0]
        assert results[3].is_error and texts[3] == "Denied by policy: peek denied for role 'agent': rule 1 forbids it"
    assert not results[1].is_error   # the policy's glob says read, whatever the server says
    assert results[2].is_error and texts[2] == "Denied by policy: wipe denied for role 'agent': rule 1 forbids it"
    ran = [e["tool"] for e in journal_lines(tmp_path / "tools.jsonl")]
    assert ran == (["lookup", "append_note", "peek"] if trusted else ["append_note"])
    assert "lookup" in names


def test_proxy_relists_after_list_changed(tmp_path):
    """With the raw responder serving tool definitions from a file: the first call makes the
    proxy list the tools itself (trusted readOnlyHint -> read -> allowed); the server then
    marks the tool destructive and says notifications/tools/list_changed; the next call
    waits for a new listing and is denied by the destructive tier rule."""
    tools_file = tmp_path / "tools.json"
    tools_file.write_bytes(orjson.dumps([{"name": "lookup", "inputSchema": {"type": "object"}, "annotations": RO}]))
    journal = tmp_path / "raw.jsonl"
    argv = _proxy(tmp_path, "--trusted", server=[PY, str(RAW_RESPONDER)])
    env = {"RAW_TOOLS_FILE": str(tools_file), "RAW_JOURNAL": str(journal)}
    with Wire(argv, env=env) as wire:
        wire.initialize()
        first = wire.call(1, "tools/call", {"name": "lookup", "arguments": {}})
        assert not first["result"].get("isError"), first
        tools_file.write_bytes(orjson.dumps([{"name": "lookup", "inputSchema": {"type": "object"},
                                              "annotations": DESTRUCTIVE}]))
        wire.send({"jsonrpc": "2.0", "id": 2, "method": "notify_changed"})
        got = [wire.recv(), wire.recv()]
        assert {m.get("method") for m in got} == {"notifications/tools/list_changed", None}
        second = wire.call(3, "tools/call", {"name": "lookup", "arguments": {}})
        assert second["result"]["isError"] is True
        assert second["result"]["content"][0]["text"] == \
            "Denied by policy: lookup denied for role 'agent': rule 1 forbids it"
        assert wire.close() == 0
    methods = [m.get("method") for m in journal_lines(journal)]
    assert methods.count("tools/list") == 2 and methods.count("tools/call") == 1


def test_proxy_lends_the_2026_version_to_its_own_listing(tmp_path):
    """A call of the 2026 protocol (no handshake) to a server that speaks 2026 (it answers
    server/discover with that version): the proxy's own tools/list carries the call's
    protocol version, client info and capabilities in _meta (and nothing else of it)."""
    journal = tmp_path / "raw.jsonl"
    argv = _proxy(tmp_path, "--trusted", server=[PY, str(RAW_RESPONDER)])
    meta = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "0"},
            "io.modelcontextprotocol/clientCapabilities": {}, "progressToken": 1}
    with Wire(argv, env={"RAW_JOURNAL": str(journal)}) as wire:
        reply = wire.call(1, "tools/call", {"name": "view_customer", "arguments": {}, "_meta": meta})
        assert reply["result"]["isError"] is True and reply["result"]["resultType"] == "complete"
        assert wire.close() == 0
    (listing,) = [m for m in journal_lines(journal) if m.get("method") == "tools/list"]
    assert listing["params"]["_meta"] == {k: v for k, v in meta.items() if k != "progressToken"}


def _ledger_id(wire: Wire) -> str:
    """The proxy's nonce ledger id, from the line it writes on stderr when it starts trusting
    approvers (approvals must be signed for it); waits for the stderr reader, up to TIMEOUT."""
    import re
    import time

    from support.mcp_helpers import TIMEOUT

    deadline = time.monotonic() + TIMEOUT
    while (m := re.search(rb"mem-[0-9a-f]{32}", wire.stderr)) is None:
        assert time.monotonic() < deadline, wire.stderr
        time.sleep(0.01)
    return m.group().decode()


def test_approvals_bind_the_policy_with_its_discovered_tiers(tmp_path):
    """An Elevate on an upstream-only tool (untrusted lookup: write -> Elevate(1)) is allowed
    by an approval signed against the policy compiled with the tiers the proxy discovers
    (the same listing, resolved the same way); one signed against the bare policy is refused
    as "different policy". The proxy reports the digest it now uses on stderr. Both are signed
    for the proxy's nonce ledger, whose id it writes on stderr at start."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from callgate import Call
    from support.mcp_tools_server import TOOLS

    key = Ed25519PrivateKey.generate()
    pem = tmp_path / "bob.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    listing = [{"name": n, "annotations": a} for n, a in TOOLS.items()]
    tiers = discovered_tiers(listing, trusted=False, policy=validate(POLICY))
    call = Call("lookup", {"target": "a"}, "agent")
    good = Engine.from_dict(POLICY, discovered_tools=tiers)
    argv = _proxy(tmp_path, "--trust-approver", f"bob={pem}")
    with Wire(argv) as wire:
        wire.initialize()
        ledger = _ledger_id(wire)
        stale = Engine.from_dict(POLICY).approve(call, approver="bob", key=key, ledger=ledger)
        fresh = good.approve(call, approver="bob", key=key, ledger=ledger)
        refused = wire.call(1, "tools/call", {"name": "lookup", "arguments": {"target": "a"},
                                              "_meta": {"callgate/approvals": [stale]}})
        allowed = wire.call(2, "tools/call", {"name": "lookup", "arguments": {"target": "a"},
                                              "_meta": {"callgate/approvals": [fresh]}})
        assert wire.close() == 0
    assert "approval 1 (bob): different policy" in refused["result"]["content"][0]["text"]
    assert not allowed["result"].get("isError"), allowed
    assert good.policy_digest.encode() in wire.stderr
    assert [e["tool"] for e in journal_lines(tmp_path / "tools.jsonl")] == ["lookup"]
