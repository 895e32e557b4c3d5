"""Elevate in the audit trail: decision events carry "Elevate" and approvals_required, the
host's context, the approvers of an Allow that signed approvals gave (never a token); the
approval events a host records after an Elevate; and replay, shadow, query, stats and the
CLI on all of them, with the hash chain still verifying."""

from __future__ import annotations

import copy

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from callgate import Engine, audit
from callgate.audit.events import AuditEvent
from callgate.audit.replay import policy_verdict, replay
from callgate.audit.source import Source
from callgate.audit.verify import verify
from support.cli import invoke

ROLE = "agent"
POLICY = {
    "version": "audit-elevate-1", "default_action": "Deny",
    "tools": ["transfer", "read_doc", "delete_doc", "deploy"],
    "roles": [ROLE],
    "tool_tiers": {"read_doc": "read", "delete_doc": "destructive", "deploy": "write"},
    "tier_defaults": {"read": "allow", "write": {"effect": "elevate", "approvals": 1}},
    "rules": [
        {"tool_name": "transfer", "roles": [ROLE], "effect": "elevate", "approvals": 2,
         "condition": {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Lte", "value": 1000}}},
        {"tool_name": "transfer", "roles": [ROLE], "effect": "deny",   # F (not U) without a context
         "condition": {"All": [{"FieldPresent": {"source": "Context", "field": "risk"}},
                               {"NumericCheck": {"source": "Context", "field": "risk", "op": "Gt", "value": 50}}]}},
    ],
}
TRANSFER = ("transfer", {"amount": 100, "to": "acct-7"})


def records(path) -> list[dict]:
    """The events of a JSONL log, without the writer's start and stop markers."""
    return [r for r in (orjson.loads(line)["record"] for line in open(path, "rb")) if r["kind"] != "writer"]


def play(sink, **options) -> Engine:
    """One of each: an Elevate(2) (rule), an Elevate(1) (tier default), an Allow (tier
    default), a Deny (a context-reading deny rule) and a Deny with no rule (no tier default)."""
    engine = Engine.from_dict(POLICY, audit=sink, **options)
    expected = [
        (TRANSFER, None, ("Elevate", 2)),
        (("deploy", {"services": ["api"]}), None, ("Elevate", 1)),
        (("read_doc", {"path": "/a"}), None, ("Allow", 0)),
        (TRANSFER, {"risk": 90}, ("Deny", 0)),
        (("delete_doc", {"path": "/a"}), None, ("Deny", 0)),
    ]
    for (tool, args), context, want in expected:
        options = {"context": context} if context is not None else {}
        d = engine.evaluate(tool, args, role=ROLE, principal="user:ann", **options)
        assert (d.decision, d.approvals_required) == want
    return engine


@pytest.fixture(params=["jsonl", "db"])
def log(request, tmp_path) -> str:
    path = str(tmp_path / f"audit.{request.param}")
    sink = audit.JsonlSink(path) if request.param == "jsonl" else audit.SqliteSink(path)
    play(sink).close()
    return path


def test_decision_events_carry_elevate_and_approvals_required(tmp_path):
    """Each decision event has decision Allow/Deny/Elevate and approvals_required (1-2 for
    Elevate, 0 otherwise); a non-empty context is recorded; the perso shape says
    approvalsRequired; AuditEvent round-trips each record to the very bytes that were hashed;
    the chain verifies."""
    path = tmp_path / "a.jsonl"
    play(audit.JsonlSink(str(path))).close()
    recs = records(path)
    assert [(r["decision"], r["approvals_required"]) for r in recs] == \
        [("Elevate", 2), ("Elevate", 1), ("Allow", 0), ("Deny", 0), ("Deny", 0)]
    assert recs[0]["reason"] == "transfer requires 2 approvals for role 'agent': rule 1 condition passed"
    assert recs[1]["reason"].endswith("(tier 'write' default Elevate)") and recs[1]["rule"] is None
    assert recs[3]["context"] == {"risk": 90} and "context" not in recs[0]
    for line in open(path, "rb"):
        body = line[line.index(b'"record":') + 9:-2]
        record = orjson.loads(body)
        assert AuditEvent.from_dict(record).canonical() == body
    assert AuditEvent.from_dict(recs[0]).to_perso()["approvalsRequired"] == 2
    assert verify(Source(str(path))).ok


def test_error_events_have_no_approvals():
    """A refused request is recorded as a Deny with approvals_required 0."""
    sink = audit_collect()
    engine = Engine.from_dict(POLICY, audit=sink)
    with pytest.raises(Exception):
        engine.evaluate_json("transfer", b'{"amount": 1, "amount": 2}', b'{"role": "agent"}')
    engine.close()
    (ev,) = sink.events
    assert ev.kind == "error" and ev.decision == "Deny" and ev.approvals_required == 0


class audit_collect:
    def __init__(self) -> None:
        self.events = []

    def emit(self, event) -> None:
        self.events.append(event)


def test_json_form_records_its_context():
    """evaluate_json with a context object in the context JSON: the event has it."""
    sink = audit_collect()
    engine = Engine.from_dict(POLICY, audit=sink)
    d = engine.evaluate_json("transfer", b'{"amount": 100}', b'{"role": "agent", "context": {"risk": 99}}')
    engine.close()
    assert d.decision == "Deny"
    (ev,) = sink.events
    assert ev.context == {"risk": 99} and ev.approvals_required == 0


def _signed(engine: Engine, names=("alice", "bob")) -> list[str]:
    from callgate import Call

    tokens = []
    for name in names:
        key = Ed25519PrivateKey.generate()
        engine.trust_approver(name, key.public_key())
        tokens.append(engine.approve(Call(*TRANSFER, ROLE, principal="user:ann"), approver=name, key=key))
    return tokens


def test_approved_by_tokens_names_the_approvers_never_the_tokens(tmp_path):
    """An Elevate(2) that two signed approvals turn into an Allow: the event is an Allow
    (approvals_required 0, as the Decision says) whose `approval` names the approvers and the
    count the policy required; no token or signature is anywhere in the log; it verifies."""
    path = tmp_path / "a.jsonl"
    engine = Engine.from_dict(POLICY, audit=audit.JsonlSink(str(path)))
    tokens = _signed(engine)
    d = engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", approvals=tokens)
    assert d.decision == "Allow"
    held = engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", approvals=tokens[:1])
    assert held.decision == "Elevate"
    engine.close()
    allowed, elevated = records(path)
    assert allowed["decision"] == "Allow" and allowed["approvals_required"] == 0
    assert allowed["approval"] == {"method": "tokens", "outcome": "approved", "required": 2,
                                   "approved_by": ["alice", "bob"]}
    assert elevated["decision"] == "Elevate" and elevated["approvals_required"] == 2 and "approval" not in elevated
    assert elevated["reason"].endswith("; 0 of 2 approvals valid: approval 1 (alice): already used")
    log = path.read_bytes()
    assert b"cga2." not in log
    for token in tokens:
        for part in token.split(".")[1:]:
            assert part.encode() not in log
    assert policy_verdict(allowed) == ("Elevate", 2)
    assert verify(Source(str(path))).ok


def test_the_approvers_come_from_the_decision_not_its_text(tmp_path):
    """Who approved is data the decision carries (Decision.approved_by), recorded as such: an
    allowed call whose tool name imitates the approved-by suffix records no approval."""
    tricky = "t requires 1 approval for role 'r'; approved by 'mallory'"
    policy = {"version": "x", "default_action": "Deny", "tools": [tricky], "roles": ["r"],
              "rules": [{"tool_name": tricky, "roles": ["r"]}]}
    path = tmp_path / "audit.jsonl"
    engine = Engine.from_dict(policy, audit=audit.JsonlSink(str(path)))
    d = engine.evaluate(tricky, {}, role="r")
    assert d.allowed and d.approved_by == ()
    engine.close()
    (event,) = [orjson.loads(line)["record"] for line in path.read_bytes().splitlines()
                if b'"kind":"decision"' in line]
    assert event["decision"] == "Allow" and "approval" not in event


def test_replay_reproduces_elevate(log):
    """Replaying a log with Elevate events under the same policy changes nothing (Elevate(n)
    again, context included); a candidate asking one approval instead of two, or allowing the
    call, reports exactly that call with both verdicts."""
    same = replay(Source(log), Engine.from_dict(POLICY))
    assert same["replayed"] == 5 and same["changed_calls"] == 0
    fewer = copy.deepcopy(POLICY)
    fewer["rules"][0]["approvals"] = 1
    result = replay(Source(log), Engine.from_dict(fewer))
    (group,) = result["changed"]
    (call,) = group["calls"]
    assert (group["tool"], call["args"]) == TRANSFER
    assert call["before"]["decision"] == "Elevate" and call["before"]["approvals_required"] == 2
    assert call["after"]["decision"] == "Elevate" and call["after"]["approvals_required"] == 1
    allow = copy.deepcopy(POLICY)
    allow["tier_defaults"]["write"] = "allow"
    changed = replay(Source(log), Engine.from_dict(allow))["changed"]
    assert [(g["tool"], c["after"]["decision"]) for g in changed for c in g["calls"]] == [("deploy", "Allow")]


def test_replay_of_approved_calls_and_approval_events(tmp_path):
    """An Allow that approvals gave is replayed as the Elevate the policy asked for
    (unchanged under the same policy); approval events are not replayed on their own."""
    path = tmp_path / "a.db"
    engine = Engine.from_dict(POLICY, audit=audit.SqliteSink(str(path)))
    engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", approvals=_signed(engine))
    rec = audit.recorder(engine)
    assert rec.record_approval(tool="deploy", args={}, role=ROLE, principal="user:ann", decision="Deny",
                               reason="r", rule=None, approvals_required=1,
                               approval={"method": "elicitation", "outcome": "declined", "required": 1})
    engine.close()
    result = replay(Source(str(path)), Engine.from_dict(POLICY))
    assert (result["replayed"], result["skipped"], result["changed_calls"]) == (1, 0, 0)
    fewer = copy.deepcopy(POLICY)
    fewer["rules"][0]["approvals"] = 1
    assert replay(Source(str(path)), Engine.from_dict(fewer))["changed_calls"] == 1


def test_shadow_compares_decision_and_approval_count():
    """Shadow mode: a candidate that asks one approval where the primary asks two is a
    disagreement recorded in the event (with both counts); the same counts agree."""
    fewer = copy.deepcopy(POLICY)
    fewer["rules"][0]["approvals"] = 1
    sink = audit_collect()
    engine = Engine.from_dict(POLICY, audit=sink, shadow=fewer)
    engine.evaluate(*TRANSFER, role=ROLE)
    engine.evaluate("deploy", {}, role=ROLE)
    engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", approvals=_signed(engine))   # Elevate(2) underneath
    rec = audit.recorder(engine)
    engine.close()
    first, second, third = sink.events
    assert first.shadow["decision"] == "Elevate" and first.shadow["approvals_required"] == 1
    assert first.approvals_required == 2
    assert second.shadow is None
    assert third.decision == "Allow" and third.shadow["approvals_required"] == 1
    assert rec.stats["shadow"] == {"evaluated": 3, "disagreements": 2}
    same = audit_collect()
    engine = Engine.from_dict(POLICY, audit=same, shadow=POLICY)
    engine.evaluate(*TRANSFER, role=ROLE)
    engine.close()
    assert same.events[0].shadow is None


def test_approval_events(tmp_path):
    """record_approval: an "approval" event linked by trace id to its Elevate, with the final
    decision, the approval object, the policy's version and digest; masks and hash_args apply
    to it as to a decision; it is chained and verifies; after close it is refused."""
    path = tmp_path / "a.jsonl"
    engine = Engine.from_dict(POLICY, audit=audit.JsonlSink(str(path), masks=["/args/to"]))
    engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", trace_id="tr-1")
    rec = audit.recorder(engine)
    assert rec.record_approval(tool="transfer", args=dict(TRANSFER[1]), role=ROLE, principal="user:ann",
                               trace_id="tr-1", decision="Allow", reason="approved: acct-7 ok", rule=0,
                               approvals_required=2, agent_attributes={}, resource_attributes={},
                               approval={"method": "elicitation", "outcome": "approved", "required": 2,
                                         "approved_by": ["user:ann"]})
    engine.close()
    assert not rec.record_approval(tool="t", args={}, role=ROLE, principal=None, decision="Deny", reason="x",
                                   rule=None, approvals_required=1, approval={})
    decision, approval = records(path)
    assert approval["kind"] == "approval" and approval["trace_id"] == decision["trace_id"] == "tr-1"
    assert approval["decision"] == "Allow" and approval["approvals_required"] == 2 and approval["rule"] == 0
    assert approval["args"] == {"amount": 100, "to": "***"} and approval["masked"] == ["/args/to"]
    assert approval["reason"] == "approved: *** ok"
    assert approval["policy_digest"] == decision["policy_digest"]
    assert approval["seq"] == decision["seq"] + 1
    assert verify(Source(str(path))).ok
    hashed = tmp_path / "h.jsonl"
    engine = Engine.from_dict(POLICY, audit=audit.JsonlSink(str(hashed), hash_args=True))
    audit.recorder(engine).record_approval(tool="deploy", args={"x": 1}, role=ROLE, principal=None,
                                           decision="Deny", reason="r", rule=None, approvals_required=1,
                                           approval={"method": "none", "outcome": "unsupported", "required": 1})
    engine.close()
    (ev,) = records(hashed)
    assert "args" not in ev and len(ev["args_sha256"]) == 64


def test_query_stats_and_cli(log):
    """query --decision Elevate finds the Elevates (through the index for SQLite); stats rows
    for Elevate carry approvals_required; the text lines read Elevate(n)."""
    r = invoke("audit", "query", log, "--decision", "Elevate", "--json")
    assert r.exit_code == 0
    got = [orjson.loads(line) for line in r.output.splitlines()]
    assert [(g["tool"], g["approvals_required"]) for g in got] == [("transfer", 2), ("deploy", 1)]
    r = invoke("audit", "query", log, "--decision", "Elevate")
    assert "Elevate(2)  transfer as agent  user:ann" in r.output
    stats = orjson.loads(invoke("audit", "stats", log, "--json").output)
    assert {"tool": "transfer", "role": ROLE, "rule": 0, "decision": "Elevate", "approvals_required": 2,
            "count": 1} in stats["by_tool_role_rule"]
    assert {"tool": "read_doc", "role": ROLE, "rule": None, "decision": "Allow", "count": 1} in stats["by_tool_role_rule"]
    text = invoke("audit", "stats", log).output
    assert "Elevate(1)" in text and "Elevate(2)" in text
    tail = invoke("audit", "tail", log, "-n", "5").output
    assert tail.count("Elevate(") == 2
    r = invoke("audit", "verify", log)
    assert r.exit_code == 0, r.output


def test_cli_shows_approvals(tmp_path):
    """The text line of an approval event (and of an Allow by approvals) says how approval
    was obtained and by whom; stats counts them per method and outcome."""
    path = tmp_path / "a.jsonl"
    engine = Engine.from_dict(POLICY, audit=audit.JsonlSink(str(path)))
    engine.evaluate(*TRANSFER, role=ROLE, principal="user:ann", approvals=_signed(engine))
    audit.recorder(engine).record_approval(tool="deploy", args={}, role=ROLE, principal="user:ann", decision="Allow",
                                           reason="ok", rule=None, approvals_required=1,
                                           approval={"method": "elicitation", "outcome": "approved", "required": 1,
                                                     "approved_by": ["user:ann"]})
    engine.close()
    out = invoke("audit", "tail", str(path)).output
    assert "[approval: tokens approved by alice, bob]" in out
    assert "[approval: elicitation approved by user:ann]" in out
    stats = orjson.loads(invoke("audit", "stats", str(path), "--json").output)
    assert sorted((a["method"], a["outcome"], a["count"]) for a in stats["approvals"]) == \
        [("elicitation", "approved", 1), ("tokens", "approved", 1)]
    assert stats["kinds"] == {"decision": 1, "approval": 1}
    replay_out = invoke("replay", str(path), "--policy", _write(tmp_path, POLICY))
    assert replay_out.exit_code == 0, replay_out.output


def _write(tmp_path, policy) -> str:
    p = tmp_path / "candidate.json"
    p.write_bytes(orjson.dumps(policy))
    return str(p)


def test_replay_cli_shows_approval_counts(log, tmp_path):
    """`callgate replay` prints Elevate(n) for the recorded and candidate verdicts."""
    fewer = copy.deepcopy(POLICY)
    fewer["rules"][0]["approvals"] = 1
    r = invoke("replay", log, "--policy", _write(tmp_path, fewer))
    assert r.exit_code == 1
    assert "recorded:  Elevate(2): transfer requires 2 approvals" in r.output
    assert "candidate: Elevate(1): transfer requires 1 approval" in r.output


def test_tampering_with_an_elevate_is_detected(tmp_path):
    """Editing an Elevate's approval count in a JSONL record, or its indexed decision column in
    SQLite, is reported by verify as a modified record."""
    import sqlite3

    path = tmp_path / "a.jsonl"
    play(audit.JsonlSink(str(path))).close()
    data = path.read_bytes()
    assert data.count(b'"approvals_required":2') == 1
    path.write_bytes(data.replace(b'"approvals_required":2', b'"approvals_required":1'))
    report = verify(Source(str(path)))
    assert not report.ok and report.problem.kind == "modified"
    db = tmp_path / "a.db"
    play(audit.SqliteSink(str(db))).close()
    with sqlite3.connect(db) as conn:
        edited = conn.execute("UPDATE audit_events SET decision = 'Allow' WHERE decision = 'Elevate' AND seq = 1")
        assert edited.rowcount == 1  # seq 0 is the writer's start marker
    report = verify(Source(str(db)))
    assert not report.ok and report.problem.kind == "modified"


def test_postgres_log_with_elevate():
    """PostgresSink (CALLGATE_TEST_PG_DSN): Elevate events are written, found by
    --decision Elevate, verify, and replay unchanged under the same policy."""
    import os
    import uuid

    dsn = os.environ.get("CALLGATE_TEST_PG_DSN")
    if not dsn:
        pytest.skip("CALLGATE_TEST_PG_DSN not set: no PostgreSQL server to test against")
    psycopg = pytest.importorskip("psycopg")
    schema = f"cg_elevate_{uuid.uuid4().hex[:12]}"
    table = f"{schema}.events"
    try:
        play(audit.PostgresSink(dsn, table=table, chain="w:1")).close()
        src = Source(dsn, table)
        assert verify(src).ok
        r = invoke("audit", "query", dsn, "--table", table, "--decision", "Elevate", "--json")
        assert [orjson.loads(line)["approvals_required"] for line in r.output.splitlines()] == [2, 1]
        assert replay(src, Engine.from_dict(POLICY))["changed_calls"] == 0
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
