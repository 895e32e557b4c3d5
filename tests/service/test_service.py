"""The decision service (callgate.service) in process: the AuthZEN Authorization API 1.0
request/response examples and the certification scenario's fixture decisions (as data in
tests/service/authzen/), the three batch semantics, the metadata document, the API's error
shape for bad requests (HTTP 400, a one-line message), undecidable requests denied with a
reason, the plain endpoint, X-Request-ID, and the audit trail receiving each decision."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from callgate import Engine, audit  # noqa: E402
from callgate.service import Decider, make_app  # noqa: E402

HERE = Path(__file__).parent / "authzen"
CERT_CASES = json.loads((HERE / "certification_cases.json").read_text())
SPEC_CASES = json.loads((HERE / "spec_cases.json").read_text())
ENDPOINT = {"evaluation": "/access/v1/evaluation", "evaluations": "/access/v1/evaluations"}
PUBLIC = "https://pdp.example.test"


def client_for(policy: Path, **engine_options) -> TestClient:
    return TestClient(make_app(Decider(Engine.from_file(policy, **engine_options)), public_url=PUBLIC))


@pytest.fixture(scope="module")
def cert_client():
    return client_for(HERE / "certification_policy.json")


@pytest.fixture(scope="module")
def spec_client():
    return client_for(HERE / "spec_policy.json")


def check_case(client: TestClient, case: dict) -> None:
    r = client.post(ENDPOINT[case["endpoint"]], json=case["request"])
    assert r.status_code == case["status"], (case["name"], r.text)
    if case["status"] != 200:
        assert r.headers["content-type"].startswith("text/plain") and r.text.count("\n") == 1 and r.text.strip()
        return
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    if "decision" in case:
        assert body["decision"] is case["decision"], (case["name"], body)
        assert "evaluations" not in body
        ctx = body["context"]
        assert ctx["outcome"] == case.get("outcome", ctx["outcome"]) and isinstance(ctx["reason"], str)
        assert (ctx["outcome"] == "Allow") is body["decision"]
        if "reason_contains" in case:
            assert case["reason_contains"] in ctx["reason"], ctx["reason"]
    else:
        assert [e["decision"] for e in body["evaluations"]] == case["decisions"], (case["name"], body)
        assert "decision" not in body
        for index, status in case.get("item_errors", {}).items():
            assert body["evaluations"][int(index)]["context"]["error"]["status"] == status


@pytest.mark.parametrize("case", CERT_CASES, ids=[c["name"] for c in CERT_CASES])
def test_certification_scenario(cert_client, case):
    """The AuthZEN 1.0 certification scenario (Basic and Batch, Core and Properties: all eight
    fixture rules, rules 7-8 through a BooleanCheck on the action's `soft` property) against
    its fixture written as a callgate policy: each request's HTTP status and, where the
    scenario fixes it, the decision (batches: every decision, in order)."""
    check_case(cert_client, case)


@pytest.mark.parametrize("case", SPEC_CASES, ids=[c["name"] for c in SPEC_CASES])
def test_spec_examples_and_callgate_profile(spec_client, case):
    """The specification's request examples (single, boxcarred with and without defaults, the
    three semantics with its responses [T,F,T], [T,F], [T]) and the call_tool profile:
    Elevate and undecidable requests are decision false with callgate's outcome and reason."""
    check_case(spec_client, case)


def test_response_context_carries_callgate_outcome(spec_client):
    """An Elevate answers decision false, with outcome Elevate, the approvals required, the
    deciding rule and the exact reason the engine gives."""
    engine = Engine.from_file(HERE / "spec_policy.json")
    expected = engine.evaluate("refund", {"amount": 400}, role="agent")
    r = spec_client.post(ENDPOINT["evaluation"], json={
        "subject": {"type": "agent", "id": "user:alice", "properties": {"role": "agent"}},
        "action": {"name": "call_tool"},
        "resource": {"type": "tool", "id": "refund", "properties": {"arguments": {"amount": 400}}}})
    assert r.json() == {"decision": False, "context": {"outcome": "Elevate", "reason": expected.reason,
                                                       "rule": expected.rule, "approvals_required": 1}}


def test_metadata_document(spec_client):
    """GET /.well-known/authzen-configuration: the PDP's configured base URL and its two
    evaluation endpoints (the Host header is not trusted for it)."""
    r = spec_client.get("/.well-known/authzen-configuration", headers={"Host": "evil.example"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.json() == {"policy_decision_point": PUBLIC,
                        "access_evaluation_endpoint": f"{PUBLIC}/access/v1/evaluation",
                        "access_evaluations_endpoint": f"{PUBLIC}/access/v1/evaluations"}


@pytest.mark.parametrize("content, ctype, message", [
    (b'{"subject": ', "application/json", "not JSON"),
    (b"", "application/json", "empty"),
    (b"   ", "application/json", "empty"),
    (b'{"a": 1, "a": 2}', "text/plain", "Content-Type"),
    (b"[1, 2]", "application/json", "JSON object"),
    (b'{"subject": {"type": "user", "id": "a"}, "action": {"name": "read"}, "resource": {"type": "r", "id": "1"}, '
     b'"context": "now"}', "application/json", "context must be a JSON object"),
    (b'{"subject": {"type": "user", "id": "a", "properties": []}, "action": {"name": "read"}, '
     b'"resource": {"type": "r", "id": "1"}}', "application/json", "subject.properties"),
    (b"NaN", "application/json", "not JSON"),
    (b"\xff\xfe", "application/json", "not JSON"),
])
def test_bad_requests_get_the_error_shape(spec_client, content, ctype, message):
    """Malformed bodies, a wrong Content-Type, the wrong JSON types: HTTP 400 with one line of
    text saying what is wrong; never a decision, never a traceback."""
    for path in ENDPOINT.values():
        r = spec_client.post(path, content=content, headers={"Content-Type": ctype, "X-Request-ID": "rq-1"})
        assert r.status_code == 400 and message in r.text and r.text.count("\n") == 1, (path, r.text)
        assert r.headers["x-request-id"] == "rq-1"


def test_body_limit(spec_client):
    """A body over the limit is refused (400) without deciding; so is a batch of more items
    than allowed."""
    from callgate.service import MAX_BODY, MAX_EVALUATIONS

    r = spec_client.post(ENDPOINT["evaluation"], content=b" " * (MAX_BODY + 1),
                         headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "over" in r.text
    item = {"resource": {"type": "document", "id": "1"}}
    r = spec_client.post(ENDPOINT["evaluations"], json={"subject": {"type": "user", "id": "a"},
                                                        "action": {"name": "read"},
                                                        "evaluations": [item] * (MAX_EVALUATIONS + 1)})
    assert r.status_code == 400 and "more than" in r.text


def test_request_id_echo(spec_client):
    """X-Request-ID comes back as sent; a request without one is answered all the same, and
    an unprintable one is not echoed."""
    body = SPEC_CASES[0]["request"]
    assert spec_client.post(ENDPOINT["evaluation"], json=body, headers={"X-Request-ID": "abc-123"}) \
        .headers["x-request-id"] == "abc-123"
    r = spec_client.post(ENDPOINT["evaluation"], json=body)
    assert r.status_code == 200 and "x-request-id" not in r.headers


def test_engine_refusal_is_a_deny_with_reason(tmp_path):
    """Arguments the engine refuses (nested beyond its depth limit) cannot be decided: the
    answer is decision false with the engine's reason, not an error and never an allow."""
    client = TestClient(make_app(Decider(Engine.from_file(HERE / "spec_policy.json", max_depth=4)),
                                 public_url=PUBLIC))
    deep: dict = {"amount": 1}
    for _ in range(10):
        deep = {"x": deep}
    r = client.post(ENDPOINT["evaluation"], json={
        "subject": {"type": "agent", "id": "u", "properties": {"role": "agent"}}, "action": {"name": "call_tool"},
        "resource": {"type": "tool", "id": "refund", "properties": {"arguments": deep}}})
    assert r.status_code == 200 and r.json()["decision"] is False
    assert r.json()["context"]["reason"].startswith("the request cannot be decided")


def test_plain_endpoint(spec_client):
    """POST /v1/decide in callgate's terms: the decision, allowed, reason, rule, approvals;
    a misspelt key or a missing role is a 400, not a silently different question."""
    r = spec_client.post("/v1/decide", json={"tool": "refund", "role": "agent", "arguments": {"amount": 40}})
    assert r.status_code == 200
    assert r.json()["decision"] == "Allow" and r.json()["allowed"] is True and r.json()["rule"] == 2
    r = spec_client.post("/v1/decide", json={"tool": "refund", "role": "agent", "argument": {"amount": 40}})
    assert r.status_code == 400 and "unknown key 'argument'" in r.text
    assert spec_client.post("/v1/decide", json={"tool": "refund"}).status_code == 400


def test_status_endpoint(spec_client):
    """GET /v1/status: the policy's version and digest, when it was loaded, no error."""
    s = spec_client.get("/v1/status").json()
    assert s["policy"]["version"] == "authzen-spec-examples-1" and len(s["policy"]["digest"]) == 64
    assert s["policy"]["last_error"] is None and s["policy"]["loaded_at"] > 0


def test_each_decision_reaches_the_audit_trail(tmp_path):
    """With an audit trail, every decision of a batch is recorded with the request id as its
    trace id (one per item: ID#i) and the AuthZEN route in extras."""
    path = tmp_path / "audit.jsonl"
    engine = Engine.from_file(HERE / "spec_policy.json", audit=audit.JsonlSink(str(path), durable=True))
    client = TestClient(make_app(Decider(engine), public_url=PUBLIC))
    body = next(c for c in SPEC_CASES if c["name"] == "semantic execute_all")["request"]
    r = client.post(ENDPOINT["evaluations"], json=body, headers={"X-Request-ID": "batch-7"})
    assert [e["decision"] for e in r.json()["evaluations"]] == [True, False, True]
    engine.close()
    events = [json.loads(line) for line in path.read_text().splitlines()]
    decisions = [e for e in (ev["record"] for ev in events) if e.get("kind") == "decision"]
    assert [(d["trace_id"], d["decision"]) for d in decisions] == [("batch-7#0", "Allow"), ("batch-7#1", "Deny"),
                                                                  ("batch-7#2", "Allow")]


def test_approvals_through_authzen():
    """action.properties.approvals on a call_tool request: a valid approval bound to the call
    (principal subject.id) turns the Elevate into decision true, naming the approver; the same
    token again is decision false (already used); status names the ledger approvals bind."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from callgate.approvals import Call, Keyring, NonceLedger, sign_approval

    bob = Ed25519PrivateKey.generate()
    keyring, ledger = Keyring(), NonceLedger()
    keyring.trust("bob", bob.public_key())
    engine = Engine.from_file(HERE / "spec_policy.json")
    client = TestClient(make_app(Decider(engine, ledger=ledger, keyring=keyring), public_url=PUBLIC))
    token = sign_approval(Call("refund", {"amount": 400}, "agent", "user:alice"), approver="bob", key=bob,
                          policy_digest=engine.policy_digest, ledger=ledger.ledger_id)
    body = {"subject": {"type": "agent", "id": "user:alice", "properties": {"role": "agent"}},
            "action": {"name": "call_tool", "properties": {"approvals": [token]}},
            "resource": {"type": "tool", "id": "refund", "properties": {"arguments": {"amount": 400}}}}
    first = client.post(ENDPOINT["evaluation"], json=body).json()
    assert first["decision"] is True and first["context"]["approved_by"] == ["bob"]
    again = client.post(ENDPOINT["evaluation"], json=body).json()
    assert again["decision"] is False and "already used" in again["context"]["reason"]
    assert client.get("/v1/status").json()["ledger"]["id"] == ledger.ledger_id
    body["action"]["properties"]["approvals"] = "not-a-list"
    r = client.post(ENDPOINT["evaluation"], json=body).json()
    assert r["decision"] is False and "approvals must be a list" in r["context"]["reason"]


def test_a_trickling_body_is_cut_off():
    """A client that sends its headers and then only part of the body within the body
    timeout gets a 400 saying so, and the worker is free again (a real uvicorn server on
    loopback, in this process)."""
    import socket
    import threading
    import time

    import uvicorn

    from support.service import free_port

    port = free_port()
    app = make_app(Decider(Engine.from_file(HERE / "spec_policy.json")), public_url=PUBLIC, body_timeout=0.5)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"POST /access/v1/evaluation HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 100\r\n\r\n{\"subject\"")
            started = time.monotonic()
            reply = b""
            while b"\n" not in reply.partition(b"\r\n\r\n")[2]:   # the head, then the one-line body
                chunk = sock.recv(4096)
                if not chunk:
                    break
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 400") and b"did not arrive within 0.5 s" in reply
        assert time.monotonic() - started < 4
    finally:
        server.should_exit = True
        thread.join(10)


def test_arbitrary_bodies_never_break_the_service(spec_client):
    """Any JSON value as a request body, to either AuthZEN endpoint and the plain one: the
    answer is 200 or 400, never 500; a 200 is a decision (or a list of them) whose true
    values are only ever Allow outcomes."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    leaves = st.none() | st.booleans() | st.integers(-10, 10 ** 6) | st.text(max_size=8) | \
        st.sampled_from(["call_tool", "tool", "refund", "agent", "user", "read", "can_read"])
    values = st.recursive(leaves, lambda inner: st.lists(inner, max_size=4) |
                          st.dictionaries(st.sampled_from(["subject", "action", "resource", "context", "type", "id",
                                                           "name", "properties", "role", "arguments", "evaluations",
                                                           "options", "evaluations_semantic", "tool", "approvals",
                                                           "chain", "attributes", "amount"]) | st.text(max_size=4),
                                          inner, max_size=5), max_leaves=30)

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(body=values, path=st.sampled_from([*ENDPOINT.values(), "/v1/decide"]))
    def check(body, path):
        r = spec_client.post(path, json=body)
        assert r.status_code in (200, 400), r.text
        if r.status_code == 200:
            doc = r.json()
            items = doc.get("evaluations", [doc]) if path != "/v1/decide" else [doc]
            for item in items:
                if path == "/v1/decide":
                    assert item["allowed"] is (item["decision"] == "Allow")
                else:
                    assert item["decision"] is (item["context"]["outcome"] == "Allow")

    check()


def test_bearer_token_when_configured():
    """With auth_token, the decision endpoints, /v1/status and /metrics answer 401 (one line,
    WWW-Authenticate: Bearer) without the exact token, and decide with it; the metadata
    document stays public."""
    from callgate.telemetry import Telemetry

    tel = Telemetry.with_prometheus()
    token = "t" * 40
    client = TestClient(make_app(Decider(Engine.from_file(HERE / "spec_policy.json"), telemetry=tel),
                                 public_url=PUBLIC, metrics=tel.exposition, auth_token=token))
    body = SPEC_CASES[0]["request"]
    for headers in ({}, {"Authorization": "Bearer " + "t" * 39}, {"Authorization": token},
                    {"Authorization": "Bearer " + token + "x"}):
        r = client.post(ENDPOINT["evaluation"], json=body, headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer" and r.text.count("\n") == 1
    for path in ("/v1/status", "/metrics"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"Authorization": "Bearer " + token}).status_code == 200
    ok = client.post(ENDPOINT["evaluation"], json=body, headers={"Authorization": "Bearer " + token})
    assert ok.status_code == 200 and ok.json()["decision"] is True
    assert client.get("/.well-known/authzen-configuration").status_code == 200
