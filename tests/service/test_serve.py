"""`callgate serve` as a process with two workers on loopback: the AuthZEN endpoints over
real HTTP, the command line's one-line refusals, and the durability promise: killing one
worker with SIGKILL under load loses no answered decision's audit event (PostgreSQL)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from support.cli import invoke  # noqa: E402
from support.service import DSN, children, free_port, fresh_schema, needs_pg, start_serve, stop  # noqa: E402

HERE = Path(__file__).parent / "authzen"
POLICY = HERE / "certification_policy.json"
CASES = json.loads((HERE / "certification_cases.json").read_text())


@pytest.fixture
def schema():
    yield from fresh_schema()


def test_two_workers_answer_the_certification_scenario():
    """Two workers behind one port answer every case of the certification scenario as the
    in-process service does (status and decisions), and both workers are running."""
    port = free_port()
    proc = start_serve(POLICY, port, "--workers", "2")
    try:
        deadline = time.monotonic() + 20
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(proc.pid)) >= 2
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(timeout=10) as client:
            for case in CASES:
                path = "/access/v1/" + case["endpoint"]
                r = client.post(base + path, json=case["request"], headers={"X-Request-ID": "r-" + case["name"][:5]})
                assert r.status_code == case["status"], case["name"]
                if r.status_code == 200 and "decision" in case:
                    assert r.json()["decision"] is case["decision"], case["name"]
                if r.status_code == 200 and "decisions" in case:
                    assert [e["decision"] for e in r.json()["evaluations"]] == case["decisions"], case["name"]
            meta = client.get(base + "/.well-known/authzen-configuration").json()
            assert meta["access_evaluation_endpoint"] == f"{base}/access/v1/evaluation"
    finally:
        stop(proc)


@pytest.mark.parametrize("argv, message", [
    (["--listen", "nowhere"], "--listen must be HOST:PORT"),
    (["--listen", "127.0.0.1:8181", "--workers", "2", "--audit", "audit.jsonl"], "share the audit trail"),
    (["--listen", "127.0.0.1:8181", "--ledger", "ledger.db"], "expected 'memory' or a PostgreSQL DSN"),
    (["--listen", "127.0.0.1:8181", "--bundle-url", "http://127.0.0.1:1/b"], "needs --bundle-key"),
])
def test_unusable_setups_refused_in_one_line(argv, message):
    """Setups that cannot work as asked are refused before anything listens: one line, exit 2."""
    r = invoke("serve", str(POLICY), *argv)
    assert r.exit_code == 2 and message in r.output and r.output.count("\n") == 1, r.output


def test_approvers_with_workers_need_a_shared_ledger(tmp_path):
    """Several workers with approvers and a ledger in memory would spend an approval once per
    worker: refused, naming the fix."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    pub = tmp_path / "bob.pub.pem"
    pub.write_bytes(Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    r = invoke("serve", str(POLICY), "--listen", "127.0.0.1:8181", "--workers", "2", "--approver", f"bob={pub}")
    assert r.exit_code == 2 and "--ledger postgresql://" in r.output


@needs_pg
def test_sigkill_of_a_worker_loses_no_answered_decision(schema):
    """Two workers recording to PostgreSQL (durable mode); four clients send decisions with
    unique request ids while one worker is killed with SIGKILL; afterwards every decision
    that got an answer has its event in the audit table (trace_id = the request id), and the
    killed worker is replaced (uvicorn starts a new one). The writer gathers batches for 0.5 s,
    so that an answer sent before its event is durable (--audit-mode async) would be lost
    here: that mode fails this test; durable answers wait for the event instead."""
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = f"{DSN}?options=-csearch_path%3D{schema}"
    port = free_port()
    proc = start_serve(POLICY, port, "--workers", "2", "--audit", dsn, "--audit-flush-interval", "0.5")
    answered: list[tuple[str, bool]] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 6.0
    body = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
            "resource": {"type": "record", "id": "record-1"}}

    def client() -> None:
        with httpx.Client(timeout=10) as c:
            while time.monotonic() < stop_at:
                rid = uuid.uuid4().hex
                try:
                    r = c.post(f"http://127.0.0.1:{port}/access/v1/evaluation", json=body,
                               headers={"X-Request-ID": rid})
                except httpx.HTTPError:
                    continue   # the killed worker's connections: no answer, nothing promised
                if r.status_code == 200:
                    with lock:
                        answered.append((rid, r.json()["decision"]))

    try:
        deadline = time.monotonic() + 20
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = children(proc.pid)
        victim = httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=10).json()["worker"]
        assert victim in workers
        threads = [threading.Thread(target=client) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(2.0)
        before = len(answered)
        os.kill(victim, signal.SIGKILL)
        for t in threads:
            t.join(30)
        assert before > 20 and len(answered) > before, (before, len(answered))
        deadline = time.monotonic() + 20
        while (len(children(proc.pid)) < 2 or victim in children(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert victim not in children(proc.pid) and len(children(proc.pid)) == 2
    finally:
        stop(proc)
    with psycopg.connect(DSN, autocommit=True) as conn:
        rows = conn.execute(f"SELECT record FROM {schema}.callgate_audit WHERE kind = 'decision'").fetchall()
    recorded = {}
    for (record,) in rows:
        event = json.loads(bytes(record))
        recorded[event.get("trace_id")] = event["decision"]
    missing = [rid for rid, _ in answered if rid not in recorded]
    assert missing == [], f"{len(missing)} of {len(answered)} answered decisions have no audit event"
    assert all((recorded[rid] == "Allow") is allowed for rid, allowed in answered)


def test_serve_with_telemetry_serves_metrics():
    """`callgate serve --telemetry`: GET /metrics after one decision is the Prometheus text
    with that decision counted by outcome and tool; without --telemetry there is no /metrics."""
    port = free_port()
    proc = start_serve(POLICY, port, "--telemetry")
    try:
        base = f"http://127.0.0.1:{port}"
        r = httpx.post(base + "/access/v1/evaluation", json=CASES[1]["request"], timeout=10)
        assert r.json()["decision"] is False
        text = httpx.get(base + "/metrics", timeout=10).text
        assert any(line.startswith("callgate_decisions_total{") and 'outcome="Deny"' in line and 'tool="write"' in line
                   for line in text.splitlines()), text[:2000]
    finally:
        stop(proc)
    port = free_port()
    proc = start_serve(POLICY, port)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).status_code == 404
    finally:
        stop(proc)


def test_serve_follows_a_bundle_url(tmp_path):
    """`callgate serve --bundle-url URL --bundle-key PUB.pem --poll-interval 0.3`: a bundle
    published on a static server is activated (its decisions answered, /v1/status shows its
    revision); one signed by another key is refused, the status saying why."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from callgate.bundles import build_bundle
    from support.service import StaticServer

    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    pub = tmp_path / "release.pub.pem"
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    bundled = json.loads(POLICY.read_text())
    bundled["version"] = "from-the-bundle"
    # the revision lets users delete without saying how (the fixture denies a delete that is not soft)
    bundled["rules"] = [r for r in bundled["rules"] if r.get("id") != "no-hard-delete"]
    bundled["rules"].append({"id": "everyone-deletes", "tool_name": "delete", "roles": ["user"]})
    server = StaticServer()
    server.publish(build_bundle(bundled, key=key, revision="rel-1"))
    port = free_port()
    proc = start_serve(POLICY, port, "--bundle-url", server.url, "--bundle-key", str(pub), "--poll-interval", "0.3")
    base = f"http://127.0.0.1:{port}"
    delete = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "delete"},
              "resource": {"type": "record", "id": "record-1"}}

    def status() -> dict:
        return httpx.get(base + "/v1/status", timeout=10).json()["policy"]

    try:
        deadline = time.monotonic() + 10
        while status()["revision"] != "rel-1" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert status()["version"] == "from-the-bundle"
        assert httpx.post(base + "/access/v1/evaluation", json=delete, timeout=10).json()["decision"] is True
        r = invoke("bundle", "status", base, "--json")
        assert r.exit_code == 0 and json.loads(r.stdout)["revision"] == "rel-1"
        r = invoke("bundle", "status", base)
        assert "revision   rel-1" in r.output and "last error (none)" in r.output
        server.publish(build_bundle(bundled, key=other, revision="rel-2"))
        deadline = time.monotonic() + 10
        while not status()["last_error"] and time.monotonic() < deadline:
            time.sleep(0.1)
        s = status()
        assert s["revision"] == "rel-1" and "not signed by any configured key" in s["last_error"]
    finally:
        stop(proc)
        server.close()
    r = invoke("bundle", "status", base)
    assert r.exit_code == 1 and "no status" in r.output and r.output.count("\n") == 1


@needs_pg
def test_two_workers_spend_an_approval_once(schema, tmp_path):
    """`callgate serve --workers 2 --approver bob=PUB --ledger DSN`: the ledger id in
    /v1/status is the shared one; an approval signed for it, sent in 8 concurrent requests
    (spread over both workers), is accepted by exactly one."""
    import psycopg
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from callgate import Engine
    from callgate.approvals import Call, sign_approval
    from support.service import ELEVATE_POLICY

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    dsn = f"{DSN}?options=-csearch_path%3D{schema}"
    bob = Ed25519PrivateKey.generate()
    pub = tmp_path / "bob.pub.pem"
    pub.write_bytes(bob.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    policy = tmp_path / "policy.json"
    policy.write_text(json.dumps(ELEVATE_POLICY))
    port = free_port()
    proc = start_serve(policy, port, "--workers", "2", "--approver", f"bob={pub}", "--ledger", dsn)
    base = f"http://127.0.0.1:{port}"
    try:
        ledger_id = httpx.get(base + "/v1/status", timeout=10).json()["ledger"]["id"]
        assert ledger_id.startswith("pg-")
        token = sign_approval(Call("wire", {"amount": 5}, "agent", "user:alice"), approver="bob", key=bob,
                              policy_digest=Engine.from_dict(ELEVATE_POLICY).policy_digest, ledger=ledger_id)
        body = {"subject": {"type": "agent", "id": "user:alice", "properties": {"role": "agent"}},
                "action": {"name": "call_tool", "properties": {"approvals": [token]}},
                "resource": {"type": "tool", "id": "wire", "properties": {"arguments": {"amount": 5}}}}
        results: list = []
        barrier = threading.Barrier(8, timeout=30)

        def send() -> None:
            with httpx.Client(timeout=20) as c:   # one connection each: the kernel spreads them over the workers
                barrier.wait()
                results.append(c.post(base + "/access/v1/evaluation", json=body).json())

        threads = [threading.Thread(target=send) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(r["decision"] for r in results) == [False] * 7 + [True]
        assert all("already used" in r["context"]["reason"] for r in results if not r["decision"])
    finally:
        stop(proc)


def test_auth_token_file_checked(tmp_path):
    """--auth-token-file must hold a token of at least 32 printable characters: a short one
    is refused in one line before anything listens."""
    short = tmp_path / "short.token"
    short.write_text("abc\n")
    r = invoke("serve", str(POLICY), "--listen", "127.0.0.1:8181", "--auth-token-file", str(short))
    assert r.exit_code == 2 and "at least 32" in r.output
    r = invoke("serve", str(POLICY), "--listen", "127.0.0.1:8181", "--auth-token-file", str(tmp_path / "none"))
    assert r.exit_code == 2 and "cannot read" in r.output
