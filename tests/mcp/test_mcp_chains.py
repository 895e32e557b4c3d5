"""Principal chains at the MCP fronts (docs/principals.md, "Where a call arrives"), with the
official Python SDK client against the CRM demo server (whose journal lists the calls that
really ran):

- stdio proxy: the chain from --chain-file (re-read when it changes) or CALLGATE_CHAIN; a
  worker holding an attenuated chain cannot delete a customer that its supervisor can; a
  chain for another audience is refused; per-request chains in _meta only with
  --chain-from-meta;
- Streamable HTTP front: the bearer token is the chain (audience-bound); the upstream never
  sees it;
- the audit trail records the chain; a chain without --trust-issuer is refused at start.
"""

from __future__ import annotations

import json
import os
import subprocess

import anyio
import pytest

pytest.importorskip("jwt")
pytest.importorskip("mcp")

from cryptography.hazmat.primitives import serialization as ser  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from callgate import principals  # noqa: E402
from support.cli import run  # noqa: E402
from support.mcp_helpers import PY, free_port, journal_lines, sdk_calls, stop  # noqa: E402
from support.mcp_http import AUD, ISS, Keys, wait_http  # noqa: E402

POLICY = {
    "version": "chains-mcp", "default_action": "Deny", "roles": ["agent"],
    "tools": ["view_customer", "update_customer", "delete_customer", "export_data", "process_refund", "access_pii",
              "bulk_update"],
    "principals": {"worker:*": {"max_scopes": ["crm.read.*"]}},
    "rules": [
        {"id": "view", "tool_name": "view_customer", "roles": ["agent"],
         "condition": {"ScopeCheck": {"requires": ["crm.read.customers"]}}},
        {"id": "delete", "tool_name": "delete_customer", "roles": ["agent"],
         "condition": {"ScopeCheck": {"requires": ["crm.write.customers"]}}},
    ],
}
ISSUER = Ed25519PrivateKey.generate()
SUPERVISOR = Ed25519PrivateKey.generate()


def _pem(tmp_path, name: str, key) -> str:
    path = tmp_path / name
    path.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def _supervisor(**kw) -> str:
    return principals.mint(ISSUER, issuer="auth", subject="user:alice", agents=["supervisor:triage"],
                           scopes=["crm.*.*"], holder=SUPERVISOR.public_key(), **kw)


def _worker(base: str) -> str:
    return principals.attenuate(base, SUPERVISOR, delegate="worker:crm", scopes=["crm.read.*", "crm.write.*"])


def _proxy(tmp_path, *options: str) -> tuple[list[str], object]:
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    journal = tmp_path / "crm.jsonl"
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent",
            "--trust-issuer", f"auth={_pem(tmp_path, 'issuer.pub', ISSUER)}", *options,
            "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)]
    return argv, journal


def _texts(results) -> list[str]:
    return [r.content[0].text for r in results]


CALLS = [("view_customer", {"customer_id": "C-1042"}), ("delete_customer", {"customer_id": "C-1042"})]


def test_a_worker_cannot_do_what_its_supervisor_can_through_the_stdio_proxy(tmp_path):
    """--chain-file with the supervisor's chain: view and delete run. The same file rewritten
    with the worker's attenuated chain (asking for writes it cannot have: the ceiling of
    worker:* is crm.read.*): view runs, delete is denied and never reaches the server."""
    chain_file = tmp_path / "chain.jwt"
    base = _supervisor()
    chain_file.write_text(base)
    argv, journal = _proxy(tmp_path, "--chain-file", str(chain_file))
    _, results = anyio.run(sdk_calls, argv, CALLS)
    assert [r.is_error for r in results] == [False, False], _texts(results)
    chain_file.write_text(_worker(base))
    _, results = anyio.run(sdk_calls, argv, CALLS)
    assert results[0].is_error is False
    assert results[1].is_error is True and "Principal.scopes" in results[1].content[0].text
    ran = [e["tool"] for e in journal_lines(journal)]
    assert ran.count("delete_customer") == 1 and ran.count("view_customer") == 2


def test_the_chain_file_is_reread_within_one_session(tmp_path):
    """One SDK session: a call under the supervisor's chain, the file replaced with the
    worker's, the next call decided under the worker's (a rotated credential, no restart)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    chain_file = tmp_path / "chain.jwt"
    base = _supervisor()
    chain_file.write_text(base)
    argv, _ = _proxy(tmp_path, "--chain-file", str(chain_file))

    async def session():
        params = StdioServerParameters(command=argv[0], args=argv[1:], env=dict(os.environ))
        with anyio.fail_after(60):
            async with stdio_client(params) as (r, w), ClientSession(r, w) as s:
                await s.initialize()
                first = await s.call_tool(*CALLS[1])
                chain_file.write_text(_worker(base))
                os.utime(chain_file, ns=(1, 1))
                second = await s.call_tool(*CALLS[1])
                return first, second

    first, second = anyio.run(session)
    assert first.is_error is False and second.is_error is True


def test_environment_chain_audience_and_meta(tmp_path):
    """CALLGATE_CHAIN carries the chain; a token for another audience (--chain-audience)
    is a denial naming it; a per-request _meta chain is ignored unless --chain-from-meta,
    and then verified like any other (a forged one is refused)."""
    argv, _ = _proxy(tmp_path, "--chain-audience", "crm-proxy")
    good = _supervisor(audience="crm-proxy")
    _, results = anyio.run(sdk_calls, argv, CALLS, {"CALLGATE_CHAIN": good})
    assert [r.is_error for r in results] == [False, False], _texts(results)
    other = _supervisor(audience="billing")
    _, results = anyio.run(sdk_calls, argv, CALLS[:1], {"CALLGATE_CHAIN": other})
    assert results[0].is_error and "another audience" in results[0].content[0].text

    from support.mcp_helpers import Wire

    forged = principals.mint(Ed25519PrivateKey.generate(), issuer="auth", subject="user:mallory",
                             scopes=["crm.*.*"])
    meta_argv, _ = _proxy(tmp_path, "--chain-from-meta")
    for use_meta, argv_ in ((False, argv), (True, meta_argv)):
        with Wire(argv_, env={"CALLGATE_CHAIN": "", "PYTHONUNBUFFERED": "1"}) as wire:
            wire.initialize()
            reply = wire.answer_to(2, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"},
                                                     "_meta": {"callgate/chain": good}})
            refused = wire.answer_to(3, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"},
                                                       "_meta": {"callgate/chain": forged}})
        if use_meta:
            assert reply["result"].get("isError") is not True
            assert refused["result"]["isError"] is True and "signature" in refused["result"]["content"][0]["text"]
        else:   # no chain configured and _meta not accepted: the ScopeCheck is unknown
            assert reply["result"]["isError"] is True and "Principal.scopes is missing" in reply["result"]["content"][0]["text"]


def test_a_chain_needs_a_trusted_issuer_and_is_recorded(tmp_path):
    """Without --trust-issuer a --chain-file is refused at start (one line, exit 2); with an
    audit trail the decision records the chain's label and scopes."""
    chain_file = tmp_path / "chain.jwt"
    chain_file.write_text(_supervisor())
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(POLICY))
    r = run("proxy", "--policy", str(policy), "--role", "agent", "--chain-file", str(chain_file), "--",
            PY, "-m", "callgate.demo.crm_server")
    assert r.returncode == 2 and "needs --trust-issuer" in r.stderr and "Traceback" not in r.stderr
    audit = tmp_path / "audit.jsonl"
    argv, _ = _proxy(tmp_path, "--chain-file", str(chain_file), "--audit", str(audit))
    anyio.run(sdk_calls, argv, CALLS[:1])
    records = [json.loads(line)["record"] for line in audit.read_text().splitlines()]
    decision = next(r for r in records if r.get("kind") == "decision")
    assert decision["principal_chain"]["label"] == "user:alice+supervisor:triage"
    assert decision["principal_chain"]["scopes"] == ["crm.*.*"]


def test_the_http_fronts_bearer_is_the_chain_and_never_reaches_the_upstream(tmp_path):
    """--listen with --trust-issuer: the bearer token (RS256, with the role claim) is the
    chain, audience-bound; a supervisor's token deletes, a token naming a worker link (its
    ceiling is reads) cannot; the upstream (stdio CRM server) never sees a token."""
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    keys = Keys()
    pub = tmp_path / "pub.pem"
    pub.write_bytes(keys.public_pem)
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(POLICY))
    journal = tmp_path / "crm.jsonl"
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--listen", f"127.0.0.1:{port}",
                             "--jwt-key", str(pub), "--jwt-issuer", ISS, "--jwt-audience", AUD,
                             "--role-claim", "cg_role", "--trust-issuer", f"{ISS}={pub}", "--chain-audience", AUD,
                             "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"

    def bearer(agents):
        return principals.mint(keys.private, issuer=ISS, subject="user:alice", agents=agents, scopes=["crm.*.*"],
                               audience=AUD, extra={"cg_role": "agent"})

    async def delete(token):
        async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
            async with streamable_http_client(url, http_client=http) as (r, w, *_), ClientSession(r, w) as s:
                await s.initialize()
                return await s.call_tool(*CALLS[1])

    try:
        wait_http(url, proc)
        supervisor, worker = bearer(["supervisor:triage"]), bearer(["supervisor:triage", "worker:crm"])
        assert anyio.run(delete, supervisor).is_error is False
        refused = anyio.run(delete, worker)
        assert refused.is_error is True and "Principal.scopes" in refused.content[0].text
    finally:
        stop(proc)
    ran = journal_lines(journal)
    assert [e["tool"] for e in ran] == ["delete_customer"]
    assert supervisor not in journal.read_text() and worker not in journal.read_text()


def test_guard_takes_the_chain_from_the_identity_it_is_given(tmp_path):
    """guard(): the host's identity function returns an Identity carrying the chain token
    (from its own request context); an Engine with the issuer trusted verifies it per call:
    the supervisor deletes, the worker cannot, and the tool never runs for the denial."""
    from mcp.client import Client

    from callgate import Engine
    from callgate.demo import crm_server
    from callgate.mcp import guard
    from callgate.mcp.gate import Identity

    journal = tmp_path / "crm.jsonl"
    server = crm_server.build_server(str(journal))
    engine = Engine.from_dict(POLICY)
    engine.trust_issuer("auth", ISSUER.public_key())
    base = _supervisor()
    who = {"chain": base}
    guard(server, engine, identity=lambda ctx: Identity("agent", chain=who["chain"]))

    async def session():
        with anyio.fail_after(30):
            async with Client(server) as c:
                allowed = await c.call_tool("delete_customer", {"customer_id": "C-2038"})
                who["chain"] = _worker(base)
                denied = await c.call_tool("delete_customer", {"customer_id": "C-9001"})
        return allowed, denied

    allowed, denied = anyio.run(session)
    assert not allowed.is_error and denied.is_error and "Principal.scopes" in denied.content[0].text
    assert [e["args"] for e in journal_lines(journal)] == [{"customer_id": "C-2038"}]
