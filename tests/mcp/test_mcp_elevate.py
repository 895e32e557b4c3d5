"""Elevate through the MCP proxy (docs/mcp.md, "Elevate: approvals"): the official SDK
client, with and without an elicitation callback, against the real stdio proxy in front of
the CRM server; signed approvals in _meta; the raw wire for timeouts, cancellation and
batches; the HTTP front and guard(); and what each leaves in the audit trail.

The CRM server journals each call it runs: a call that was not approved must never be there.
"""

from __future__ import annotations

import contextlib
import subprocess

import anyio
import orjson
import pytest

from callgate import Engine
from support.mcp_helpers import PY, Wire, journal_lines

pytest.importorskip("mcp")
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from mcp import ClientSession, StdioServerParameters, types  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

ROLE = "manager"
PRINCIPAL = "user:alice"
POLICY = {
    "version": "elevate-test-1", "default_action": "Deny",
    "tools": ["view_customer", "delete_customer", "process_refund", "update_customer"],
    "roles": [ROLE],
    "rules": [
        {"tool_name": "view_customer", "roles": [ROLE]},
        {"tool_name": "delete_customer", "roles": [ROLE], "effect": "elevate", "approvals": 1},
        {"tool_name": "process_refund", "roles": [ROLE], "effect": "elevate", "approvals": 2},
    ],
}
DELETE = ("delete_customer", {"customer_id": "C-2038"})
REFUND = ("process_refund", {"order_id": "ORD-8821", "amount": 20.0})


@pytest.fixture
def setup(tmp_path):
    policy = tmp_path / "policy.json"
    policy.write_bytes(orjson.dumps(POLICY))
    return tmp_path, policy


def proxy_args(tmp_path, policy, *extra: str) -> list[str]:
    return ["-m", "callgate", "proxy", "--policy", str(policy), "--role", ROLE, "--principal", PRINCIPAL,
            "--audit", str(tmp_path / "audit.jsonl"), *extra,
            "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(tmp_path / "crm.jsonl")]


def audit_records(tmp_path) -> list[dict]:
    """The decision and approval events of the proxy's audit trail (not the writer's markers)."""
    path = tmp_path / "audit.jsonl"
    records = [orjson.loads(line)["record"] for line in path.read_bytes().splitlines()] if path.exists() else []
    return [r for r in records if r["kind"] in ("decision", "approval")]


def ledger_id_in(stderr: bytes) -> str:
    """The proxy's nonce ledger id, from the line it writes on stderr when it starts trusting
    approvers: approvals attached for it must be signed for that ledger."""
    import re

    m = re.search(rb"mem-[0-9a-f]{32}", stderr)
    assert m, stderr
    return m.group().decode()


def run_session(args: list[str], calls, elicit=None, errlog=None) -> tuple[list, list]:
    """An SDK ClientSession over stdio (with `elicit` as its elicitation callback, if given):
    (the tool results, the elicitation params the callback saw). `calls` may be a function of
    the proxy's nonce ledger id, read from its stderr (written to the file `errlog`) once it
    has answered initialize, for calls carrying approvals signed for it."""
    seen: list = []

    async def callback(context, params):
        seen.append(params)
        return await elicit(params)

    async def main():
        params = StdioServerParameters(command=PY, args=args)
        results = []
        with anyio.fail_after(60), open(errlog, "wb") if errlog else contextlib.nullcontext() as err:
            async with stdio_client(params, **({"errlog": err} if errlog else {})) as (r, w), \
                    ClientSession(r, w, elicitation_callback=callback if elicit else None) as s:
                await s.initialize()
                todo = calls(ledger_id_in(errlog.read_bytes())) if callable(calls) else calls
                for tool, arguments, *meta in todo:
                    results.append(await s.call_tool(tool, arguments, meta=meta[0] if meta else None))
        return results

    return anyio.run(main), seen


def accept(approve):
    async def answer(params):
        return types.ElicitResult(action="accept", content={"approve": approve})
    return answer


def action(name):
    async def answer(params):
        return types.ElicitResult(action=name)
    return answer


def check_log(tmp_path) -> None:
    verify = subprocess.run([PY, "-m", "callgate", "audit", "verify", str(tmp_path / "audit.jsonl")],
                            capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_elicitation_approved_runs_the_call(setup):
    """An Elevate(1) with a client that declared elicitation: the proxy sends an
    elicitation/create (the SDK's form params: a message naming the tool, its arguments and
    the reason; a schema with one boolean "approve"); accept with approve=true runs the call
    upstream. The audit trail has the Elevate decision and an approval event (same trace id,
    outcome approved, approved by the session's principal), and verifies."""
    tmp_path, policy = setup
    results, seen = run_session(proxy_args(tmp_path, policy), [DELETE], accept(True))
    assert not results[0].is_error, results[0].content[0].text
    assert results[0].content[0].text == "C-2038 (Globex Ltd) deleted"
    assert [e["tool"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["delete_customer"]
    (params,) = seen
    assert isinstance(params, types.ElicitRequestFormParams)
    assert "delete_customer" in params.message and '{"customer_id":"C-2038"}' in params.message
    assert "delete_customer requires 1 approval for role 'manager': rule 2 has no condition" in params.message
    schema = params.requested_schema
    assert schema["type"] == "object" and schema["required"] == ["approve"]
    assert schema["properties"]["approve"]["type"] == "boolean"
    decision, approval = audit_records(tmp_path)
    assert decision["kind"] == "decision" and decision["decision"] == "Elevate"
    assert decision["approvals_required"] == 1 and decision["principal"] == PRINCIPAL
    assert approval["kind"] == "approval" and approval["trace_id"] == decision["trace_id"]
    assert approval["decision"] == "Allow" and approval["approvals_required"] == 1
    assert approval["approval"] == {"method": "elicitation", "outcome": "approved", "required": 1,
                                    "approved_by": [PRINCIPAL]}
    assert approval["args"] == {"customer_id": "C-2038"}
    check_log(tmp_path)


@pytest.mark.parametrize("answer, outcome, why", [
    (action("decline"), "declined", "the user declined"),
    (action("cancel"), "cancelled", "the user cancelled"),
    (accept(False), "declined", "the user did not approve"),
])
def test_elicitation_not_approved_denies_with_the_reason(setup, answer, outcome, why):
    """Decline, cancel, or accept without approve=true: the call is denied with a tool error
    carrying the policy's reason, that approval is required and why it was not given; the
    server never runs it; the approval event records the outcome and a Deny."""
    tmp_path, policy = setup
    results, seen = run_session(proxy_args(tmp_path, policy), [DELETE, ("view_customer", {"customer_id": "C-1042"})],
                                answer)
    denied, viewed = results
    assert denied.is_error and len(seen) == 1
    text = denied.content[0].text
    assert text.startswith("Denied by policy: delete_customer requires 1 approval for role 'manager'")
    assert f"approval required (1 approval): {why}" in text
    assert not viewed.is_error  # the session goes on
    assert [e["tool"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["view_customer"]
    records = audit_records(tmp_path)
    assert [(r["kind"], r["decision"]) for r in records] == [("decision", "Elevate"), ("approval", "Deny"),
                                                             ("decision", "Allow")]
    assert records[1]["approval"] == {"method": "elicitation", "outcome": outcome, "required": 1}
    assert records[1]["reason"] == text.removeprefix("Denied by policy: ")


def test_client_without_elicitation_is_denied_with_the_reason(setup):
    """A client that did not declare elicitation: no question is sent; the Elevate is denied
    saying approval is required, that the client cannot ask, and how to attach approvals."""
    tmp_path, policy = setup
    (result,), _ = run_session(proxy_args(tmp_path, policy), [DELETE])
    text = result.content[0].text
    assert result.is_error
    assert text == ("Denied by policy: delete_customer requires 1 approval for role 'manager': rule 2 has no "
                    "condition; approval required (1 approval): the client cannot ask the user (it did not declare "
                    'the elicitation capability); attach 1 approval signed for this call in '
                    'params._meta["callgate/approvals"]')
    assert journal_lines(tmp_path / "crm.jsonl") == []
    decision, approval = audit_records(tmp_path)
    assert decision["decision"] == "Elevate"
    assert approval["approval"] == {"method": "none", "outcome": "unsupported", "required": 1}


def test_more_approvals_than_an_elicitation_gives(setup):
    """Elevate(2) is more than one user's yes (default --elicit-max-approvals 1): denied
    without asking; with --elicit-max-approvals 2 the user is asked and may approve it."""
    tmp_path, policy = setup
    results, seen = run_session(proxy_args(tmp_path, policy), [REFUND], accept(True))
    assert results[0].is_error and seen == []
    assert "2 approvals cannot come from one user's confirmation (an elicitation gives at most 1)" in \
        results[0].content[0].text
    results, seen = run_session(proxy_args(tmp_path, policy, "--elicit-max-approvals", "2"), [REFUND], accept(True))
    assert not results[0].is_error and len(seen) == 1
    assert [e["tool"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["process_refund"]


def _approver(tmp_path, name: str):
    key = Ed25519PrivateKey.generate()
    pem = tmp_path / f"{name}.pub.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, f"{name}={pem}"


def test_signed_approvals_in_meta_allow_the_call(setup):
    """Approvals a host attaches in params._meta["callgate/approvals"] (signed by approvers the
    proxy trusts, --trust-approver): one of two -> denied with the engine's account; two
    distinct approvers -> allowed and run, with no elicitation; the audit trail names the
    approvers and never holds a token; the server does not receive the approvals. The
    approvals are signed for the proxy's nonce ledger (its id is on its stderr)."""
    from callgate import Call

    tmp_path, policy = setup
    bob, bob_arg = _approver(tmp_path, "bob")
    carol, carol_arg = _approver(tmp_path, "carol")
    signer = Engine.from_dict(POLICY)   # the same policy: approvals bind its digest
    call = Call(REFUND[0], REFUND[1], ROLE, principal=PRINCIPAL)
    signed = {}

    def calls(ledger):
        t_bob = signed["bob"] = signer.approve(call, approver="bob", key=bob, ledger=ledger)
        t_carol = signer.approve(call, approver="carol", key=carol, ledger=ledger)
        t_other = signer.approve(Call(REFUND[0], dict(REFUND[1], amount=999.0), ROLE, principal=PRINCIPAL),
                                 approver="carol", key=carol, ledger=ledger)
        return [(*REFUND, {"callgate/approvals": [t_bob, t_other]}),
                (*REFUND, {"callgate/approvals": [t_bob, t_carol]}),
                (*REFUND, {"callgate/approvals": [t_bob, t_carol]})]   # spent: refused again

    args = proxy_args(tmp_path, policy, "--trust-approver", bob_arg, "--trust-approver", carol_arg)
    results, seen = run_session(args, calls, accept(True), errlog=tmp_path / "proxy.err")
    one, both, replayed = results
    assert seen == []   # approvals were attached: the user is not asked
    assert one.is_error
    assert "; 1 of 2 approvals valid: approval 2 (carol): different arguments" in one.content[0].text
    assert "approval required (2 approvals): the approvals attached do not satisfy it" in one.content[0].text
    assert not both.is_error, both.content[0].text
    assert replayed.is_error and "already used" in replayed.content[0].text
    assert [e["tool"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["process_refund"]
    records = audit_records(tmp_path)
    allowed = [r for r in records if r["kind"] == "decision" and r["decision"] == "Allow"]
    assert len(allowed) == 1
    assert allowed[0]["approval"] == {"method": "tokens", "outcome": "approved", "required": 2,
                                      "approved_by": ["bob", "carol"]}
    assert allowed[0]["reason"].endswith("; approved by 'bob', 'carol'")
    insufficient = [r for r in records if r["kind"] == "approval"]
    assert [r["approval"]["outcome"] for r in insufficient] == ["insufficient", "insufficient"]
    assert all(r["approval"]["method"] == "tokens" for r in insufficient)
    log = (tmp_path / "audit.jsonl").read_bytes()
    assert b"cga2." not in log and signed["bob"].split(".")[2].encode() not in log
    check_log(tmp_path)


def test_approvals_are_not_forwarded_to_the_server(setup):
    """The server gets the approved call without params._meta["callgate/approvals"] (other
    _meta entries stay): the raw responder journals what reached it."""
    from support.mcp_helpers import RAW_RESPONDER

    from callgate import Call

    tmp_path, policy = setup
    bob, bob_arg = _approver(tmp_path, "bob")
    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", ROLE, "--principal", PRINCIPAL,
            "--trust-approver", bob_arg, "--", PY, str(RAW_RESPONDER)]
    journal = tmp_path / "raw.jsonl"
    with Wire(argv, env={"RAW_JOURNAL": str(journal)}) as wire:
        wire.initialize()
        token = Engine.from_dict(POLICY).approve(Call(*DELETE, ROLE, principal=PRINCIPAL), approver="bob", key=bob,
                                                 ledger=_wire_ledger_id(wire))
        reply = wire.call(1, "tools/call", {"name": DELETE[0], "arguments": DELETE[1],
                                            "_meta": {"callgate/approvals": [token], "progressToken": 7}})
        assert reply["result"]["content"][0]["text"] == "ok delete_customer"
        assert wire.close() == 0
    (call,) = [m for m in journal_lines(journal) if m.get("method") == "tools/call"]
    assert call["params"] == {"name": DELETE[0], "arguments": DELETE[1], "_meta": {"progressToken": 7}}


def _wire_ledger_id(wire: Wire) -> str:
    """ledger_id_in(wire's stderr), waiting for its stderr reader up to TIMEOUT."""
    import time

    from support.mcp_helpers import TIMEOUT

    deadline = time.monotonic() + TIMEOUT
    while b"mem-" not in wire.stderr and time.monotonic() < deadline:
        time.sleep(0.01)
    return ledger_id_in(wire.stderr)


def _raw(tmp_path, policy, *extra: str) -> Wire:
    wire = Wire([PY, *proxy_args(tmp_path, policy, *extra)])
    wire.call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {"elicitation": {}},
                                "clientInfo": {"name": "raw", "version": "0"}})
    wire.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return wire


def test_elicitation_timeout_denies_and_withdraws_the_question(setup):
    """No answer within --elicit-timeout: the call is denied ("no answer within …"), the
    proxy withdraws its question (notifications/cancelled for its request id), a late answer
    is dropped (not relayed to the server), and the session goes on."""
    tmp_path, policy = setup
    with _raw(tmp_path, policy, "--elicit-timeout", "0.5") as wire:
        wire.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": DELETE[0], "arguments": DELETE[1]}})
        ask = wire.recv()
        assert ask["method"] == "elicitation/create" and ask["id"] != 5
        types.ElicitRequest.model_validate({k: v for k, v in ask.items() if k != "jsonrpc" and k != "id"})
        cancelled, denied = wire.recv(), wire.recv()
        assert cancelled == {"jsonrpc": "2.0", "method": "notifications/cancelled",
                             "params": {"requestId": ask["id"], "reason": "no answer in time"}}
        assert denied["id"] == 5 and denied["result"]["isError"] is True
        assert "approval required (1 approval): no answer within 0.5 s" in denied["result"]["content"][0]["text"]
        wire.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"approve": True}}})
        ok = wire.call(6, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"}})
        assert "isError" not in ok["result"] or not ok["result"]["isError"]
        assert wire.close() == 0
    assert [e["tool"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["view_customer"]
    assert [r["approval"]["outcome"] for r in audit_records(tmp_path) if r["kind"] == "approval"] == ["timeout"]


def test_cancelling_a_held_call(setup):
    """notifications/cancelled for a call waiting for approval: no answer is sent for it, the
    question is withdrawn, the server never sees it, the id stays used; the outcome is
    recorded as cancelled."""
    tmp_path, policy = setup
    with _raw(tmp_path, policy) as wire:
        wire.send({"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": DELETE[0], "arguments": DELETE[1]}})
        ask = wire.recv()
        wire.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 5}})
        withdrawn = wire.recv()
        assert withdrawn["method"] == "notifications/cancelled" and withdrawn["params"]["requestId"] == ask["id"]
        reused = wire.call(5, "ping")
        assert reused["error"]["code"] == -32600
        assert wire.close() == 0
    assert journal_lines(tmp_path / "crm.jsonl") == []
    assert [r["approval"]["outcome"] for r in audit_records(tmp_path) if r["kind"] == "approval"] == ["cancelled"]


def test_raw_answers_and_batches(setup):
    """An elicitation answered with a JSON-RPC error denies ("could not ask the user"); a
    call in a batch never waits for a user (denied saying so) while the rest of the batch runs;
    a protocol version from 2025-11-25 on gets mode "form" in the request."""
    tmp_path, policy = setup
    with _raw(tmp_path, policy) as wire:
        wire.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": DELETE[0], "arguments": DELETE[1]}})
        ask = wire.recv()
        assert "mode" not in ask["params"]   # a 2025-06-18 client
        wire.send({"jsonrpc": "2.0", "id": ask["id"], "error": {"code": -32601, "message": "no UI"}})
        denied = wire.recv()
        assert "the client could not ask the user (no UI)" in denied["result"]["content"][0]["text"]
        assert wire.close() == 0
    from support.mcp_helpers import RAW_RESPONDER   # batches: a server that takes them

    argv = [PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", ROLE, "--", PY, str(RAW_RESPONDER)]
    with Wire(argv) as wire:   # 2025-03-26: the last revision with batches
        wire.call(0, "initialize", {"protocolVersion": "2025-03-26", "capabilities": {"elicitation": {}},
                                    "clientInfo": {"name": "raw", "version": "0"}})
        wire.send([{"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": DELETE[0], "arguments": DELETE[1]}},
                   {"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                    "params": {"name": "view_customer", "arguments": {"customer_id": "C-1042"}}}])
        batch = {m["id"]: m for m in wire.recv()}
        assert "a call in a JSON-RPC batch cannot ask the user" in batch[2]["result"]["content"][0]["text"]
        assert not batch[3]["result"].get("isError")
        assert wire.close() == 0
    wire = Wire([PY, *proxy_args(tmp_path, policy)])
    with wire:
        wire.call(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}},
                                    "clientInfo": {"name": "raw", "version": "0"}})
        wire.send({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": DELETE[0], "arguments": DELETE[1]}})
        ask = wire.recv()
        assert ask["params"]["mode"] == "form"
        types.ElicitRequestFormParams.model_validate(ask["params"])
        wire.send({"jsonrpc": "2.0", "id": ask["id"], "result": {"action": "accept", "content": {"approve": True}}})
        assert not wire.recv()["result"].get("isError")
        assert wire.close() == 0


def test_url_only_elicitation_is_not_form(setup):
    """A client whose elicitation capability is URL mode only cannot show the approval form:
    it is denied as unsupported, not asked."""
    tmp_path, policy = setup
    with Wire([PY, *proxy_args(tmp_path, policy)]) as wire:
        wire.call(0, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"url": {}}},
                                    "clientInfo": {"name": "raw", "version": "0"}})
        reply = wire.call(1, "tools/call", {"name": DELETE[0], "arguments": DELETE[1]})
        assert "did not declare the elicitation capability" in reply["result"]["content"][0]["text"]
        assert wire.close() == 0


def test_guard_elicits_through_the_servers_session(tmp_path):
    """guard() in-process: an Elevate asks the client through the server's own session
    (elicit_form); approved runs the tool, declined denies it; approvals in _meta count."""
    from mcp import Client

    from callgate import Call
    from callgate.demo import crm_server
    from callgate.mcp import Identity, guard

    journal = tmp_path / "crm.jsonl"
    server = crm_server.build_server(str(journal))
    key = Ed25519PrivateKey.generate()
    engine = Engine.from_dict(POLICY)
    engine.trust_approver("bob", key.public_key())
    guard(server, engine, identity=lambda ctx: Identity(ROLE, {}, PRINCIPAL))
    answers = [True, False]
    seen = []

    async def callback(context, params):
        seen.append(params)
        return types.ElicitResult(action="accept", content={"approve": answers.pop(0)})

    other = {"customer_id": "C-9001"}
    token = engine.approve(Call(DELETE[0], other, ROLE, principal=PRINCIPAL), approver="bob", key=key)

    async def main():
        with anyio.fail_after(30):
            async with Client(server, mode="legacy", elicitation_callback=callback) as c:
                approved = await c.call_tool(*DELETE)
                declined = await c.call_tool(DELETE[0], other)
                signed = await c.call_tool(DELETE[0], other, meta={"callgate/approvals": [token]})
        return approved, declined, signed

    approved, declined, signed = anyio.run(main)
    assert not approved.is_error and approved.content[0].text == "C-2038 (Globex Ltd) deleted"
    assert declined.is_error and "the user did not approve" in declined.content[0].text
    assert len(seen) == 2 and "delete_customer" in seen[0].message
    assert not signed.is_error and signed.content[0].text.startswith("C-9001 (")
    assert len(seen) == 2   # attached approvals: not asked
    assert [e["args"]["customer_id"] for e in journal_lines(journal)] == ["C-2038", "C-9001"]


def test_http_front_elicits_on_the_session_event_stream(setup):
    """The Streamable HTTP front: an Elevate asks the client on the session's GET event
    stream while the call's POST waits; approved -> the upstream runs it; declined -> denied
    with the reason; the approval event names the token's subject as approver."""
    import time

    import httpx2
    from cryptography.hazmat.primitives.asymmetric import rsa
    from mcp.client.streamable_http import streamable_http_client

    jwt = pytest.importorskip("jwt")
    from support.mcp_helpers import free_port, stop

    tmp_path, policy = setup
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "pub.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    token = jwt.encode({"iss": "iss", "aud": "aud", "sub": "user-7", "exp": int(time.time()) + 600, "role": ROLE},
                       key, algorithm="RS256")
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--listen", f"127.0.0.1:{port}",
                             "--jwt-key", str(tmp_path / "pub.pem"), "--jwt-issuer", "iss", "--jwt-audience", "aud",
                             "--audit", str(tmp_path / "audit.jsonl"),
                             "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(tmp_path / "crm.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    answers = [True, False]

    async def callback(context, params):
        assert isinstance(params, types.ElicitRequestFormParams)
        return types.ElicitResult(action="accept", content={"approve": answers.pop(0)})

    async def main():
        deadline = time.monotonic() + 30
        while True:
            try:
                async with httpx2.AsyncClient() as probe:
                    await probe.post(url, content=b"{}")
                break
            except Exception:
                assert time.monotonic() < deadline and proc.poll() is None, "the front did not start"
                await anyio.sleep(0.1)
        with anyio.fail_after(60):
            async with httpx2.AsyncClient(headers={"authorization": "Bearer " + token}) as http:
                async with streamable_http_client(url, http_client=http) as (r, w, *_), \
                        ClientSession(r, w, elicitation_callback=callback) as s:
                    await s.initialize()
                    approved = await s.call_tool(*DELETE)
                    declined = await s.call_tool(DELETE[0], {"customer_id": "C-9001"})
        return approved, declined

    try:
        approved, declined = anyio.run(main)
    finally:
        stop(proc)
    assert not approved.is_error, approved.content[0].text
    assert declined.is_error and "approval required (1 approval): the user did not approve" in declined.content[0].text
    assert [e["args"]["customer_id"] for e in journal_lines(tmp_path / "crm.jsonl")] == ["C-2038"]
    approvals = [r for r in audit_records(tmp_path) if r["kind"] == "approval"]
    assert [a["approval"]["outcome"] for a in approvals] == ["approved", "declined"]
    assert approvals[0]["approval"]["approved_by"] == ["user-7"] and approvals[0]["principal"] == "user-7"


def test_2026_protocol_client_approves_through_input_required_and_can_attach_approvals(setup):
    """mcp.Client negotiating the 2026 protocol (no handshake, no server-to-client requests)
    through the stdio proxy: an Elevate comes back as input_required, the SDK hands the
    proxy's form (tool, arguments, reason, approvals required) to the elicitation callback,
    retries with the answer and the proxy's requestState, and the approved call runs once; a
    declined one is denied and never reaches the server; approvals attached in _meta (signed
    for the proxy's nonce ledger, named on its stderr) are honoured without asking."""
    from mcp import Client

    from callgate import Call

    tmp_path, policy = setup
    bob, bob_arg = _approver(tmp_path, "bob")
    seen = []
    answers = [True, False]

    async def callback(context, params):
        seen.append(params)
        return types.ElicitResult(action="accept", content={"approve": answers.pop(0)})

    async def main():
        params = StdioServerParameters(command=PY, args=proxy_args(tmp_path, policy, "--trust-approver", bob_arg))
        errlog = tmp_path / "proxy.err"
        with anyio.fail_after(60), open(errlog, "wb") as err:
            async with Client(stdio_client(params, errlog=err), elicitation_callback=callback) as c:
                version = c.session.protocol_version
                approved = await c.call_tool(*DELETE)
                declined = await c.call_tool("delete_customer", {"customer_id": "C-9001"})
                other = ("delete_customer", {"customer_id": "C-1042"})
                token = Engine.from_dict(POLICY).approve(Call(*other, ROLE, principal=PRINCIPAL), approver="bob",
                                                         key=bob, ledger=ledger_id_in(errlog.read_bytes()))
                allowed = await c.call_tool(*other, meta={"callgate/approvals": [token]})
        return version, approved, declined, allowed

    version, approved, declined, allowed = anyio.run(main)
    assert version == "2026-07-28"
    assert len(seen) == 2
    message = seen[0].message
    assert "Tool: delete_customer" in message and '{"customer_id":"C-2038"}' in message
    assert "Approvals required: 1" in message
    assert not approved.is_error, approved.content[0].text
    assert declined.is_error and "the user did not approve" in declined.content[0].text
    assert not allowed.is_error, allowed.content[0].text
    assert [e["args"] for e in journal_lines(tmp_path / "crm.jsonl")] == [DELETE[1], {"customer_id": "C-1042"}]
    approvals = [r["approval"] for r in audit_records(tmp_path) if r["kind"] == "approval"]
    assert [(a["method"], a["outcome"], a.get("approved_by")) for a in approvals] == [
        ("input_required", "approved", [PRINCIPAL]), ("input_required", "declined", None)]


def test_gate_verdicts_for_elevate(tmp_path):
    """Gate.decide: an Elevate verdict keeps the engine's reason, rule and approval count; a
    malformed approvals entry in _meta is a denial; with pins, an unapproved definition is
    denied before anyone is asked to approve; Gate.check (the one-reason form) says approval
    is required."""
    from callgate.mcp.gate import Gate, Identity
    from callgate.mcp.pins import PinStore

    who = Identity(ROLE, {}, PRINCIPAL)
    gate = Gate(Engine.from_dict(POLICY))
    v = gate.decide({"name": "process_refund", "arguments": {"amount": 1}}, who)
    assert (v.decision, v.approvals_required, v.rule, v.approvals_given) == ("Elevate", 2, 2, False)
    assert v.reason == "process_refund requires 2 approvals for role 'manager': rule 3 has no condition"
    bad = gate.decide({"name": "process_refund", "arguments": {}, "_meta": {"callgate/approvals": "cga1.x"}}, who)
    assert bad.decision == "Deny" and "must be a list of approval strings" in bad.reason
    assert gate.check({"name": "process_refund", "arguments": {}}, who).endswith(
        'approval required (2 approvals): attach 2 approvals signed for this call in params._meta["callgate/approvals"]')
    pinned = Gate(Engine.from_dict(POLICY), pins=PinStore(tmp_path / "pins.json"))
    pinned.record_tools([{"name": "process_refund", "description": "changed"}])
    v = pinned.decide({"name": "process_refund", "arguments": {}}, who)
    assert v.decision == "Deny" and "has no approved definition" in v.reason
