"""The shared approval ledger (callgate.ledger): spent keys in PostgreSQL shared by replicas,
atomic across them, expiring with their tokens, failing closed when unreachable; and the
decision front (service.Decider) spending approvals through it.

The acceptance case: three engines sharing one PostgreSQL, one approval token presented to
all three at once, accepted exactly once, in 100 repetitions."""

from __future__ import annotations

import threading
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callgate import Engine
from callgate.approvals import Call, Keyring, LedgerUnavailable, NonceLedger, sign_approval
from callgate.ledger import PostgresLedger, is_postgres_dsn, open_ledger
from callgate.service import Call as ServiceCall, Decider
from support.service import DSN, ELEVATE_POLICY, closed_port_dsn, fresh_schema, needs_pg

BOB = Ed25519PrivateKey.generate()


@pytest.fixture
def schema():
    yield from fresh_schema()


def pg(schema: str, **kw) -> PostgresLedger:
    return PostgresLedger(DSN, table=f"{schema}.ledger", **kw)


def test_open_ledger_names():
    """`memory` (or nothing) is an in-memory NonceLedger; a DSN a PostgresLedger; anything else
    is a one-line ValueError naming what is expected."""
    assert isinstance(open_ledger(None), NonceLedger) and isinstance(open_ledger("memory"), NonceLedger)
    assert isinstance(open_ledger("postgresql://u@127.0.0.1:1/db"), PostgresLedger)
    assert is_postgres_dsn("host=127.0.0.1 dbname=x") and not is_postgres_dsn("ledger.db")
    with pytest.raises(ValueError, match="expected 'memory' or a PostgreSQL DSN"):
        open_ledger("ledger.db")


def test_bad_configuration_refused():
    """Table names go into SQL text: only plain identifiers; a ledger id must match the
    approvals' charset; timeouts are positive numbers."""
    with pytest.raises(ValueError, match="plain table name"):
        PostgresLedger("postgresql://x@127.0.0.1:1/d", table="t; DROP TABLE x")
    with pytest.raises(ValueError, match="ledger_id"):
        PostgresLedger("postgresql://x@127.0.0.1:1/d", ledger_id="has space")
    with pytest.raises(ValueError, match="statement_timeout"):
        PostgresLedger("postgresql://x@127.0.0.1:1/d", statement_timeout=0)


def test_unreachable_ledger_fails_closed():
    """A database that cannot be reached: claim records nothing and says why ("ledger
    unavailable (...)"), is_spent and the id raise LedgerUnavailable, within the timeouts."""
    ledger = PostgresLedger(closed_port_dsn(), ledger_id="pg-test", connect_timeout=1)
    started = time.monotonic()
    why = ledger.claim([("n" * 20, time.time() + 60)])
    assert why is not None and why.startswith("ledger unavailable (") and ledger.last_error
    with pytest.raises(LedgerUnavailable):
        ledger.is_spent("n" * 20)
    with pytest.raises(LedgerUnavailable, match="cannot be read"):
        _ = PostgresLedger(closed_port_dsn(), connect_timeout=1).ledger_id
    assert time.monotonic() - started < 10


@needs_pg
def test_claim_once_across_instances(schema):
    """Two ledger objects on one table (two replicas): a key spent by one is refused by the
    other ("already used"), a claim with a spent key records none of its other keys, a key
    twice in one claim is refused, an expiry in the past is "expired", and both read the same
    ledger id (made once, "pg-" and 32 hex digits)."""
    a, b = pg(schema), pg(schema)
    exp = time.time() + 60
    assert a.ledger_id == b.ledger_id and a.ledger_id.startswith("pg-") and len(a.ledger_id) == 35
    assert a.claim([("k-one-0000000000", exp)]) is None
    assert b.claim([("k-one-0000000000", exp)]) == "already used"
    assert b.claim([("k-two-0000000000", exp), ("k-one-0000000000", exp)]) == "already used"
    assert not a.is_spent("k-two-0000000000") and b.is_spent("k-one-0000000000")
    assert a.claim([("k-three-00000000", exp), ("k-three-00000000", exp)]) == "already used"
    assert a.claim([("k-four-000000000", time.time() - 1)]) == "expired"
    assert len(b) == 1


@needs_pg
def test_keys_expire_with_their_token(schema):
    """An entry counts until its expiry (by the database's clock): after it, the key is no
    longer spent and may be claimed again (its token, expired, is refused before that)."""
    ledger = pg(schema)
    assert ledger.claim([("short-lived-key-1", time.time() + 1.0)]) is None
    assert ledger.is_spent("short-lived-key-1")
    time.sleep(1.3)
    assert not ledger.is_spent("short-lived-key-1")
    assert ledger.claim([("short-lived-key-1", time.time() + 60)]) is None


@needs_pg
def test_any_text_is_a_key(schema):
    """Keys are stored by digest: NUL (the chain jti keys hold one), quotes and long text are
    keys like any other, and none reaches SQL text."""
    ledger = pg(schema)
    exp = time.time() + 60
    for key in ("issuer\x00jti-1", "'); DROP TABLE x; --", "k" * 5000):
        assert ledger.claim([(key, exp)]) is None
        assert ledger.claim([(key, exp)]) == "already used"


@needs_pg
def test_chain_jti_replay_through_the_shared_ledger(schema):
    """principals' replay protection takes the shared ledger: a chain token with a jti is
    accepted by one replica's Trust and refused as a replay by another's."""
    pytest.importorskip("jwt")
    from callgate.principals import ChainError, Trust, mint

    key = Ed25519PrivateKey.generate()
    token = mint(key, issuer="idp", subject="user:alice", agents=["worker:w"], scopes=[], ttl=60, jti="j-1")
    replicas = []
    for _ in range(2):
        trust = Trust()
        trust.trust_issuer("idp", key.public_key(), replay_protection=True, ledger=pg(schema))
        replicas.append(trust)
    assert replicas[0].verify(token).user == "user:alice"
    with pytest.raises(ChainError):
        replicas[1].verify(token)


# ---------------------------------------------------------------- through the decision front


def decider(ledger) -> Decider:
    keyring = Keyring()
    keyring.trust("bob", BOB.public_key())
    return Decider(Engine.from_dict(ELEVATE_POLICY), ledger=ledger, keyring=keyring)


def approval(d: Decider, ledger_id: str) -> str:
    return sign_approval(Call("wire", {"amount": 5}, "agent", "user:alice"), approver="bob", key=BOB,
                         policy_digest=d.engine.policy_digest, ledger=ledger_id, ttl=120)


def wire_call(token: str) -> ServiceCall:
    return ServiceCall(tool="wire", role="agent", arguments={"amount": 5}, principal="user:alice", approvals=[token])


def test_memory_ledger_spends_once():
    """With the in-memory ledger, an approved call is Allow naming the approver, and the same
    token again stays Elevate with the ledger's cause."""
    ledger = NonceLedger()
    d = decider(ledger)
    token = approval(d, ledger.ledger_id)
    first, second = d.decide(wire_call(token)), d.decide(wire_call(token))
    assert (first.decision, first.approved_by) == ("Allow", ("bob",))
    assert first.reason.endswith("; approved by 'bob'")
    assert second.decision == "Elevate" and "approval 1 (bob): already used" in second.reason


def test_unreachable_ledger_refuses_approvals_with_reason():
    """A replica whose ledger cannot be reached refuses approvals: the call stays Elevate and
    the reason says the ledger is unavailable; never Allow."""
    ledger = PostgresLedger(closed_port_dsn(), ledger_id="pg-shared", connect_timeout=1)
    d = decider(ledger)
    out = d.decide(wire_call(approval(d, "pg-shared")))
    assert out.decision == "Elevate" and not out.allowed
    assert "approval 1 (bob): ledger unavailable" in out.reason


@needs_pg
def test_three_replicas_one_token_accepted_exactly_once(schema):
    """Acceptance: three engines (each its own Decider and its own connection) sharing one
    PostgreSQL ledger; one approval token presented to all three at the same moment is
    accepted by exactly one, in 100 repetitions (300 decisions); the two others stay Elevate
    with "already used"."""
    replicas = [decider(pg(schema)) for _ in range(3)]
    ledger_id = replicas[0].ledger.ledger_id
    assert {r.ledger.ledger_id for r in replicas} == {ledger_id}
    barrier = threading.Barrier(3, timeout=30)
    for rep in range(100):
        token = approval(replicas[0], ledger_id)
        outcomes: list = [None] * 3

        def present(i: int) -> None:
            barrier.wait()
            outcomes[i] = replicas[i].decide(wire_call(token))

        threads = [threading.Thread(target=present, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        decisions = sorted(o.decision for o in outcomes)
        assert decisions == ["Allow", "Elevate", "Elevate"], (rep, [o.reason for o in outcomes])
        assert all("already used" in o.reason for o in outcomes if o.decision == "Elevate"), rep


@needs_pg
def test_dsn_options_are_kept(schema):
    """Options in the DSN (here a search_path) are honoured: the unqualified table is made in
    that schema, and the statement timeout is set besides them."""
    import psycopg

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    ledger = PostgresLedger(f"{DSN}?options=-csearch_path%3D{schema}", statement_timeout=1.5)
    assert ledger.claim([("kept-options-key-1", time.time() + 60)]) is None
    with psycopg.connect(DSN, autocommit=True) as conn:
        assert conn.execute(f"SELECT count(*) FROM {schema}.callgate_ledger").fetchone()[0] == 1
    assert ledger._conn.execute("SHOW statement_timeout").fetchone()[0] == "1500ms"


@needs_pg
def test_three_engines_given_one_shared_ledger_spend_a_token_once(schema):
    """Engine(ledger=PostgresLedger) (no decision front): three engines on one database have
    one ledger id; the approval signed for it, presented to all three at once through
    evaluate(approvals=), becomes an Allow at exactly one of them, in 30 repetitions."""
    engines = [Engine.from_dict(ELEVATE_POLICY, ledger=pg(schema)) for _ in range(3)]
    for e in engines:
        e.trust_approver("bob", BOB.public_key())
    assert len({e.ledger_id for e in engines}) == 1
    barrier = threading.Barrier(3, timeout=30)
    for rep in range(30):
        token = engines[0].approve(Call("wire", {"amount": 5}, "agent", "user:alice"), approver="bob", key=BOB)
        outcomes: list = [None] * 3

        def present(i: int) -> None:
            barrier.wait()
            outcomes[i] = engines[i].evaluate("wire", {"amount": 5}, role="agent", principal="user:alice",
                                              approvals=[token]).decision

        threads = [threading.Thread(target=present, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(outcomes) == ["Allow", "Elevate", "Elevate"], rep
