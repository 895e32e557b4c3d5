"""Engine.evaluate(chain=...) end to end (docs/principals.md): a verified chain's effective
scopes (the token's, narrowed by each link's ceiling in the policy) decide ScopeChecks and
Principal conditions; a chain that does not verify is a Deny naming why; verification is
cached per token until it expires (never for replay-protected issuers); approvals bind to
the whole chain; the audit trail records the chain, `audit query --principal` finds it by
any link, deny bursts can be keyed by the chain's user or actor, and replay re-decides with
the recorded chain."""

from __future__ import annotations

import orjson
import pytest

pytest.importorskip("jwt")
pytest.importorskip("cryptography")

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

import callgate  # noqa: E402
from callgate import principals  # noqa: E402
from callgate.approvals import Call  # noqa: E402

ISSUER = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
SUPERVISOR = Ed25519PrivateKey.generate()

POLICY = {
    "version": "chains", "default_action": "Deny", "tools": ["query", "drop", "refund"], "roles": ["agent"],
    "principals": {"worker:*": {"max_scopes": ["pg.read.*"]}, "worker:admin": {"max_scopes": ["pg.*.*"]}},
    "rules": [
        {"id": "read", "tool_name": "query", "roles": ["agent"],
         "condition": {"ScopeCheck": {"requires": ["pg.read.analytics"]}}},
        {"id": "write", "tool_name": "drop", "roles": ["agent"],
         "condition": {"ScopeCheck": {"requires": ["pg.write.analytics"]}}},
        {"id": "tenant", "tool_name": "query", "roles": ["agent"], "effect": "deny",
         "condition": {"All": [{"FieldPresent": {"source": "Principal", "pointer": "/claims/tenant"}},
                               {"StringCheck": {"source": "Principal", "pointer": "/claims/tenant", "op": "Eq",
                                                "value": "blocked"}}]}},
        {"id": "refund", "tool_name": "refund", "roles": ["agent"], "effect": "elevate", "approvals": 1},
    ],
}


def engine(policy=POLICY, **options) -> callgate.Engine:
    e = callgate.Engine.from_dict(policy, **options)
    e.trust_issuer("auth", ISSUER.public_key())
    return e


def token(*agents, scopes=("pg.read.*", "pg.write.*"), sub="user:alice", key=ISSUER, **kw) -> str:
    return principals.mint(key, issuer="auth", subject=sub, agents=agents, scopes=scopes, **kw)


def test_effective_scopes_decide_and_ceilings_narrow():
    """The supervisor holds the token's scopes (read and write); a worker under `worker:*`
    is narrowed to reads, so `drop` (write) is denied to it and allowed to the supervisor;
    an exact entry (`worker:admin`) wins over the glob."""
    e = engine()
    supervisor = token("supervisor:triage")
    worker = token("supervisor:triage", "worker:sql")
    admin = token("supervisor:triage", "worker:admin")
    assert e.evaluate("drop", {}, role="agent", chain=supervisor).decision == "Allow"
    d = e.evaluate("drop", {}, role="agent", chain=worker)
    assert d.decision == "Deny" and d.reason == ("drop denied for role 'agent': Principal.scopes: no element "
                                                 "satisfies the condition (rule write)")
    assert e.evaluate("query", {}, role="agent", chain=worker).decision == "Allow"
    assert e.evaluate("drop", {}, role="agent", chain=admin).decision == "Allow"
    assert e.principal_source(worker)["scopes"] == ["pg.read.*"]
    assert e.principal_source(worker)["actor"] == "worker:sql"


def test_an_attenuated_worker_cannot_do_what_its_supervisor_can():
    """Form 3: the supervisor hands the worker reads only, offline; the worker's chain is
    user -> supervisor -> worker and its scopes are the narrower grant."""
    e = engine({**POLICY, "principals": {}})
    base = token("supervisor:triage", holder=SUPERVISOR.public_key())
    worker = principals.attenuate(base, SUPERVISOR, delegate="worker:sql", scopes=["pg.read.analytics"])
    assert e.evaluate("drop", {}, role="agent", chain=base).decision == "Allow"
    assert e.evaluate("drop", {}, role="agent", chain=worker).decision == "Deny"
    assert e.evaluate("query", {}, role="agent", chain=worker).decision == "Allow"
    assert e.principal_source(worker)["agents"] == ["supervisor:triage", "worker:sql"]


@pytest.mark.parametrize("make, why", [
    (lambda: token("worker:x", key=OTHER), "signature"),
    (lambda: principals.mint(ISSUER, issuer="elsewhere", subject="user:a"), "issuer 'elsewhere' is not trusted"),
    (lambda: token("worker:x", ttl=-120), "expired"),
    (lambda: "not a token", "not a compact JWT"),
])
def test_a_chain_that_does_not_verify_is_a_deny_with_its_reason(make, why):
    """Bad signature, unknown issuer, expired, garbage: a Deny (never an error the host
    could mistake for an allow) whose reason names the refusal."""
    d = engine().evaluate("query", {}, role="agent", chain=make())
    assert d.decision == "Deny" and d.rule is None
    assert d.reason.startswith("the principal chain is refused: ") and why in d.reason, d.reason


def test_without_trust_a_token_is_refused_and_without_a_chain_principal_conditions_are_unknown():
    """No trust_issuer: a token is refused. No chain at all: the ScopeCheck is unknown, so
    the allow does not apply, and the tenant deny (over a missing claim) does not block a
    decision it cannot make an allow."""
    bare = callgate.Engine.from_dict(POLICY)
    d = bare.evaluate("query", {}, role="agent", chain=token())
    assert d.decision == "Deny" and "no issuer is trusted" in d.reason
    d = bare.evaluate("query", {}, role="agent")
    assert d.decision == "Deny"


def test_claims_are_read_by_pointer():
    """Principal's `claims` carry the token's other claims: a deny on /claims/tenant."""
    e = engine()
    assert e.evaluate("query", {}, role="agent", chain=token(extra={"tenant": "blocked"})).decision == "Deny"
    assert e.evaluate("query", {}, role="agent", chain=token(extra={"tenant": "ok"})).decision == "Allow"


def test_verification_is_cached_until_expiry(monkeypatch):
    """A repeated token is verified once (the engine keeps the Principal source); at its
    expiry it is verified again (and refused)."""
    e = engine()
    calls = []
    real = e._trust._verify
    monkeypatch.setattr(e._trust, "_verify", lambda tok, now: calls.append(1) or real(tok, now))
    t = token("worker:sql", ttl=600)
    for _ in range(5):
        assert e.evaluate("query", {}, role="agent", chain=t).decision == "Allow"
    assert len(calls) == 1
    import callgate.engine as engine_module

    later = engine_module._now() + 3600
    monkeypatch.setattr(engine_module, "_now", lambda: later)
    e._trust._clock = lambda: later
    d = e.evaluate("query", {}, role="agent", chain=t)
    assert d.decision == "Deny" and "expired" in d.reason and len(calls) == 2


def test_a_replay_protected_token_is_verified_at_each_use_and_spent_once():
    """With replay protection on the issuer, nothing is cached: the second use of one jti
    is refused as replayed."""
    guarded = callgate.Engine.from_dict(POLICY)
    guarded.trust_issuer("auth", ISSUER.public_key(), replay_protection=True)
    once = token("worker:sql")
    assert guarded.evaluate("query", {}, role="agent", chain=once).decision == "Allow"
    d = guarded.evaluate("query", {}, role="agent", chain=once)
    assert d.decision == "Deny" and "replay" in d.reason


def test_trusting_again_forgets_the_cached_chains():
    """trust_issuer() replaces the issuer's key and forgets what was verified with the old
    one: a token of the old key is refused at once."""
    e = engine()
    t = token("worker:sql")
    assert e.evaluate("query", {}, role="agent", chain=t).decision == "Allow"
    e.trust_issuer("auth", OTHER.public_key())
    assert e.evaluate("query", {}, role="agent", chain=t).decision == "Deny"


def test_approvals_bind_to_the_whole_chain():
    """An approval for alice's call through triage-bot turns that Elevate into an Allow; the
    same approval does not approve bob's call, nor alice's through another agent."""
    e = engine()
    approver = Ed25519PrivateKey.generate()
    e.trust_approver("carol", approver.public_key())
    alice = token("supervisor:triage-bot", sub="user:alice")
    label = e.principal_source(alice)
    label = "+".join([label["user"], *label["agents"]])
    approval = e.approve(Call("refund", {"amount": 5}, role="agent", principal=label), approver="carol", key=approver)
    bob = token("supervisor:triage-bot", sub="user:bob")
    other = token("supervisor:other-bot", sub="user:alice")
    for chain in (bob, other):
        assert e.evaluate("refund", {"amount": 5}, role="agent", chain=chain, approvals=[approval]).decision == "Elevate"
    assert e.evaluate("refund", {"amount": 5}, role="agent", chain=alice, approvals=[approval]).decision == "Allow"


def test_the_audit_trail_records_the_chain_and_query_finds_any_link(tmp_path):
    """The event's principal is the chain `user+agent+...`; `principal_chain` holds the
    label, issuer, jti and effective scopes (not the other claims); `audit query
    --principal` matches any link; a refused chain is a recorded Deny with its code."""
    from callgate.audit import JsonlSink
    from support.cli import run

    log = tmp_path / "audit.jsonl"
    e = engine(audit=JsonlSink(log))
    t = token("supervisor:triage", "worker:sql", jti="j-1", extra={"tenant": "secret-tenant"})
    e.evaluate("query", {"q": 1}, role="agent", chain=t)
    e.evaluate("query", {}, role="agent", chain="junk")
    e.close()
    records = [orjson.loads(line)["record"] for line in log.read_bytes().splitlines()]
    decisions = [r for r in records if r.get("kind") == "decision"]
    first = decisions[0]
    assert first["principal"] == "user:alice+supervisor:triage+worker:sql"
    assert first["principal_chain"] == {"label": "user:alice+supervisor:triage+worker:sql", "issuer": "auth",
                                        "jti": "j-1", "scopes": ["pg.read.*"]}
    assert "secret-tenant" not in log.read_text()
    assert decisions[1]["decision"] == "Deny" and decisions[1]["extras"] == {"chain_refused": "malformed"}
    for who in ("worker:sql", "user:alice", "supervisor:triage"):
        out = run("audit", "query", str(log), "--principal", who, "--json")
        assert out.returncode == 0, out.stderr
        assert len([line for line in out.stdout.splitlines() if line.strip()]) == 1, (who, out.stdout)
    assert run("audit", "verify", str(log)).returncode == 0


def test_deny_bursts_can_be_keyed_by_the_chains_actor():
    """Three denials by one worker acting for three different users: keyed by principal no
    alert (each chain is distinct), keyed by actor one alert naming the worker."""
    by_principal, by_actor = [], []
    e = engine()
    e.on_deny_burst(by_principal.append, threshold=2, window_s=60)
    e.on_deny_burst(by_actor.append, threshold=2, window_s=60, key="actor")
    for user in ("user:a", "user:b", "user:c"):
        e.evaluate("drop", {}, role="agent", chain=token("worker:sql", sub=user))
    e.flush()
    e.close()
    assert by_principal == []
    assert [a.principal for a in by_actor] == ["worker:sql"]


def test_replay_re_decides_with_the_recorded_chain(tmp_path):
    """`audit replay` rebuilds the chain from the record: a candidate that requires a scope
    the worker's recorded effective scopes lack turns its Allow into a Deny."""
    from callgate.audit import JsonlSink
    from callgate.audit.source import Source
    from callgate.audit.replay import replay

    log = tmp_path / "audit.jsonl"
    e = engine(audit=JsonlSink(log))
    assert e.evaluate("query", {}, role="agent", chain=token("worker:sql")).decision == "Allow"
    e.close()
    stricter = {**POLICY, "rules": [{**POLICY["rules"][0], "condition": {"ScopeCheck": {"requires": ["pg.write.x"]}}}]}
    report = replay(Source(str(log)), callgate.Engine.from_dict(stricter))
    assert report["replayed"] == 1 and report["changed"][0]["calls"][0]["after"]["decision"] == "Deny"
