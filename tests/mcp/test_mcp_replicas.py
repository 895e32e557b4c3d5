"""The proxy beyond one machine (issue 22): signed policy bundles polled by a running stdio
proxy (a good bundle changes the next decision, a badly signed one is refused and the policy
stays), the HTTP front's Prometheus endpoint with --telemetry, and two proxies sharing one
PostgreSQL ledger accepting one approval token exactly once."""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callgate import examples
from support.mcp_helpers import PY, Wire, free_port, stop, text_of
from support.mcp_http import AUD, ISS, Keys, wait_http
from support.service import DSN, StaticServer, fresh_schema, needs_pg

REFUND = {"name": "process_refund", "arguments": {"order_id": "ORD-9910", "amount": 800}}


def _crm(limit: int) -> dict:
    doc = examples.policy("crm")
    for rule in doc["rules"]:
        body = (rule.get("condition") or {}).get("NumericCheck")
        if rule["tool_name"] == "process_refund" and body and body["value"] == 500:
            body["value"] = limit
    return doc


def _pub(tmp_path, name: str, key) -> str:
    path = tmp_path / name
    path.write_bytes(key.public_key().public_bytes(ser.Encoding.PEM, ser.PublicFormat.SubjectPublicKeyInfo))
    return str(path)


def test_a_running_proxy_follows_signed_bundles(tmp_path):
    """--bundle-url/--bundle-key: the agent's refund of 800 is denied (limit 500); a bundle
    raising the limit, signed with the trusted key, is activated within the poll interval;
    a bundle signed with another key is refused and the active policy stays."""
    from callgate.bundles import build_bundle

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    server = StaticServer()
    try:
        argv = [PY, "-m", "callgate", "proxy", "--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099",
                "--bundle-url", server.url, "--bundle-key", _pub(tmp_path, "bundle.pub", key),
                "--bundle-interval", "0.3", "--", PY, "-m", "callgate.demo.crm_server"]
        with Wire(argv) as wire:
            wire.initialize()
            assert wire.answer_to(1, "tools/call", REFUND)["result"]["isError"] is True
            server.publish(build_bundle(_crm(1000), key=key, revision="r2"))
            time.sleep(1.5)
            assert wire.answer_to(2, "tools/call", REFUND)["result"].get("isError") is not True
            server.publish(build_bundle(_crm(100), key=other, revision="r3"))
            time.sleep(1.5)
            assert wire.answer_to(3, "tools/call", REFUND)["result"].get("isError") is not True
        assert "policy bundle refused" in wire.stderr.decode()
    finally:
        server.close()


def test_the_http_front_serves_its_metrics_with_telemetry(tmp_path):
    """--listen --telemetry: after one allowed and one denied call, GET /metrics has the
    decision counter by outcome and tool (no token needed; Host checks still apply)."""
    pytest.importorskip("opentelemetry.sdk")
    import anyio
    import httpx
    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    keys = Keys()
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", "crm", "--listen", f"127.0.0.1:{port}",
                             "--jwt-key", str(tmp_path / "pub.pem"), "--jwt-issuer", ISS, "--jwt-audience", AUD,
                             "--role-claim", "cg_role", "--telemetry", "--", PY, "-m", "callgate.demo.crm_server"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"

    async def calls():
        async with httpx2.AsyncClient(headers={"authorization": "Bearer " + keys.token(cg_role="agent")}) as http:
            async with streamable_http_client(url, http_client=http) as (r, w, *_), ClientSession(r, w) as s:
                await s.initialize()
                await s.call_tool("view_customer", {"customer_id": "C-1042"})
                await s.call_tool("delete_customer", {"customer_id": "C-1042"})

    try:
        wait_http(url, proc)
        anyio.run(calls)
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert metrics.status_code == 200
        text = metrics.text
        assert 'outcome="Allow"' in text and 'outcome="Deny"' in text and 'tool="view_customer"' in text
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"host": "evil.example"}, timeout=10
                         ).status_code in (400, 403, 421)
    finally:
        stop(proc)


@pytest.fixture
def pg_schema():
    yield from fresh_schema()


@needs_pg
def test_two_proxies_sharing_a_ledger_accept_one_approval_once(tmp_path, pg_schema):
    """--ledger DSN on two stdio proxies: they have one ledger id; an approval token signed
    for it is accepted by the first proxy it reaches and refused ("already used") by the
    other, and by the first again."""
    import psycopg

    from callgate import Engine
    from callgate.approvals import Call
    from callgate.ledger import open_ledger

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {pg_schema}")
    dsn = f"{DSN}{'&' if '?' in DSN else '?'}options=-csearch_path%3D{pg_schema}"
    approver = Ed25519PrivateKey.generate()
    doc = {"version": "elevate-view", "default_action": "Deny", "tools": examples.policy("crm")["tools"],
           "roles": ["agent"], "rules": [{"tool_name": "view_customer", "roles": ["agent"], "effect": "elevate",
                                          "approvals": 1}]}
    policy = tmp_path / "elevate.json"
    policy.write_text(json.dumps(doc))
    engine = Engine.from_dict(doc, ledger=open_ledger(dsn))
    engine.trust_approver("alice", approver.public_key())
    token = engine.approve(Call("view_customer", {"customer_id": "C-1042"}, "agent"), approver="alice", key=approver)
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "agent", "--ledger", dsn,
            "--trust-approver", f"alice={_pub(tmp_path, 'alice.pub', approver)}", "--",
            PY, "-m", "callgate.demo.crm_server"]
    params = {"name": "view_customer", "arguments": {"customer_id": "C-1042"}, "_meta": {"callgate/approvals": [token]}}
    outcomes = []
    with Wire(argv) as one, Wire(argv) as two:
        one.initialize()
        two.initialize()
        for wire, n in ((one, 1), (two, 2), (one, 3)):
            outcomes.append(text_of(wire.answer_to(n, "tools/call", params)))
    assert outcomes[0].startswith("C-1042: Acme Corp"), outcomes
    assert all("already used" in text for text in outcomes[1:]), outcomes
