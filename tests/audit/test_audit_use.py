"""Using the log: replay under a candidate policy, shadow mode, deny-burst alerts, and the
query / stats / tail commands, on the CRM scenarios."""

from __future__ import annotations

import copy

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.replay import replay
from callgate.audit.source import Source
from support.cli import invoke

PRINCIPALS = {"agent": "user:ann+agent:triage", "manager": "user:mo", "admin": "user:ada", "intern": "user:ike"}


def stricter() -> dict:
    """The CRM policy with agents no longer allowed to view customers, and the agents'
    refund cap lowered from 500 to 300."""
    policy = copy.deepcopy(examples.policy("crm"))
    for rule in policy["rules"]:
        if rule["tool_name"] == "view_customer":
            rule["roles"] = ["manager", "admin"]
        if rule["tool_name"] == "process_refund" and rule["roles"] == ["agent"]:
            rule["condition"]["NumericCheck"]["value"] = 300
    return policy


# the CRM scenarios whose decision the stricter policy changes: (tool, role, args)
EXPECTED_CHANGES = {("view_customer", "agent", '{"customer_id":"C-1042"}'),
                    ("process_refund", "agent", '{"amount":500,"order_id":"ORD-8821"}')}


def record_crm(sink, **engine_options) -> Engine:
    engine = Engine.from_dict(examples.policy("crm"), audit=sink, **engine_options)
    for case in examples.cases("crm"):
        d = engine.evaluate(case["tool"], case["args"], role=case["role"], agent_attributes=case["agent_attributes"],
                            resource_attributes=case["resource_attributes"], principal=PRINCIPALS[case["role"]])
        assert d.decision == case["expected"]
    return engine


@pytest.fixture(params=["jsonl", "db"])
def crm_log(request, tmp_path) -> str:
    path = str(tmp_path / f"crm.{request.param}")
    sink = audit.JsonlSink(path) if request.param == "jsonl" else audit.SqliteSink(path)
    record_crm(sink).close()
    return path


def test_replay_reports_exactly_the_changed_calls(crm_log, engine_class):
    """Replaying the recorded CRM scenarios under the stricter candidate reports exactly the
    two calls it denies, grouped by tool and role, with both reasons."""
    result = replay(Source(crm_log), engine_class.from_dict(stricter()))
    assert result["replayed"] == len(examples.cases("crm")) and result["skipped"] == 0
    got = {(g["tool"], g["role"], orjson.dumps(c["args"], option=orjson.OPT_SORT_KEYS).decode()) for g in result["changed"] for c in g["calls"]}
    assert got == EXPECTED_CHANGES
    for group in result["changed"]:
        for call in group["calls"]:
            assert call["before"]["decision"] == "Allow" and call["after"]["decision"] == "Deny"
            assert "allowed" in call["before"]["reason"] and "denied" in call["after"]["reason"]


def test_replay_cli(crm_log, tmp_path):
    """`callgate replay SOURCE --policy candidate.json [--json]`: exit 1 when decisions would
    change; the JSON report lists the same calls."""
    cand = tmp_path / "candidate.json"
    cand.write_bytes(orjson.dumps(stricter()))
    r = invoke("replay", crm_log, "--policy", str(cand), "--json")
    assert r.exit_code == 1, r.output
    assert orjson.loads(r.output)["changed_calls"] == 2
    r = invoke("replay", crm_log, "--policy", str(cand))
    assert "process_refund as agent: 1 call(s) change" in r.output and "candidate: Deny" in r.output
    same = tmp_path / "same.json"
    same.write_bytes(orjson.dumps(examples.policy("crm")))
    assert invoke("replay", crm_log, "--policy", str(same)).exit_code == 0


def test_replay_skips_calls_without_full_args(tmp_path, engine_class):
    """Calls recorded with hashed or masked arguments cannot be re-evaluated: they are skipped
    and counted, never guessed."""
    path = str(tmp_path / "hashed.jsonl")
    record_crm(audit.JsonlSink(path, hash_args=True)).close()
    result = replay(Source(path), engine_class.from_dict(stricter()))
    assert result["replayed"] == 0 and result["skipped"] == len(examples.cases("crm"))


def test_shadow_mode_records_disagreements(tmp_path):
    """Shadow mode enforces the primary and evaluates the candidate beside it: exactly the
    expected calls disagree, and the events carry the candidate's verdict (under the hash)."""
    cand = tmp_path / "candidate.json"
    cand.write_bytes(orjson.dumps(stricter()))
    path = str(tmp_path / "shadow.jsonl")
    engine = record_crm(audit.JsonlSink(path), shadow=str(cand))  # decisions asserted == primary's
    rec = audit.recorder(engine)
    engine.close()
    assert rec.stats["shadow"] == {"evaluated": len(examples.cases("crm")), "disagreements": 2}
    got = {(d["tool"], d["role"]) for d in rec.shadow.recent}
    assert got == {(t, r) for t, r, _ in EXPECTED_CHANGES}
    shadowed = [rec for rec in map(orjson.loads, open(path, "rb")) if "shadow" in rec["record"]]
    assert len(shadowed) == 2 and all(s["record"]["shadow"]["decision"] == "Deny" for s in shadowed)


def test_shadow_without_audit_sink(engine_class):
    """Engine.from_file(p, shadow=...) without a sink still compares every decision (both backends)."""
    engine = engine_class.from_file(examples.policy_path("crm"), shadow=stricter())
    engine.evaluate("view_customer", {"customer_id": "C-1"}, role="agent")
    rec = audit.recorder(engine)
    assert rec.flush(30)
    engine.close()
    assert rec.stats["shadow"]["disagreements"] == 1


def test_deny_burst_fires_once_per_principal_per_window(engine_class):
    """on_deny_burst fires once for a principal whose denials exceed the threshold within the
    window, not again in the same window, and not for a principal under the threshold."""
    alerts = []
    engine = engine_class.from_dict(examples.policy("crm"))
    engine.on_deny_burst(alerts.append, threshold=3, window_s=3600)
    for _ in range(8):
        engine.evaluate("process_refund", {"amount": 900}, role="agent", principal="user:mallory")
    for _ in range(3):
        engine.evaluate("process_refund", {"amount": 900}, role="agent", principal="user:bob")
    engine.evaluate("view_customer", {"customer_id": "C-1"}, role="agent", principal="user:bob")
    assert audit.recorder(engine).flush(30)
    engine.close()
    assert [(a.principal, a.denials) for a in alerts] == [("user:mallory", 4)]


def test_query_stats_tail(crm_log):
    """query filters by principal, tool, decision and time; stats counts per tool/role/rule;
    tail shows the last records."""
    r = invoke("audit", "query", crm_log, "--principal", PRINCIPALS["agent"], "--tool", "process_refund",
               "--decision", "Deny", "--since", "1h", "--json")
    assert r.exit_code == 0, r.output
    rows = [orjson.loads(line) for line in r.output.splitlines()]
    assert len(rows) == 3 and all(row["decision"] == "Deny" and row["tool"] == "process_refund" for row in rows)
    r = invoke("audit", "query", crm_log, "--since", "2000-01-01T00:00:00Z", "--decision", "Allow")
    assert len(r.output.splitlines()) == sum(c["expected"] == "Allow" for c in examples.cases("crm"))
    r = invoke("audit", "stats", crm_log, "--json")
    stats = orjson.loads(r.output)
    assert stats["records"] == len(examples.cases("crm"))
    assert {"tool": "process_refund", "role": "agent", "rule": 3, "decision": "Deny", "count": 3} in stats["by_tool_role_rule"]
    r = invoke("audit", "tail", crm_log, "-n", "2")
    assert r.exit_code == 0 and len(r.output.splitlines()) == 2 and "view_customer as intern" in r.output
    r = invoke("audit", "query", crm_log, "--since", "yesterday")
    assert r.exit_code == 2


def test_follow_across_rotation(tmp_path, engine_class):
    """What `tail -f` reads after a position is exactly the records written since, even when
    the JSONL file was rotated in between."""
    from callgate.audit.query import events

    path = str(tmp_path / "follow.jsonl")

    def write(n: int, start: int) -> None:
        with engine_class.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path, max_bytes=3000, batch_size=1)) as e:
            for i in range(start, start + n):
                e.evaluate("view_customer", {"customer_id": f"C-{i}"}, role="agent")

    write(5, 0)
    pos = None
    for pos, _, _ in events(Source(path)):
        pass
    write(12, 5)
    assert len(list(tmp_path.glob("follow.jsonl.*[0-9]"))) >= 2
    new = [r["args"]["customer_id"] for _, r, _ in events(Source(path), after=pos)]
    assert new == [f"C-{i}" for i in range(5, 17)]


def test_both_backends_keep_the_same_audit_trail(tmp_path, engine_class):
    """An engine of either backend (native core or wasm module) with a JSONL sink records every
    CRM scenario with the decision and reason the engine returned, and the log verifies."""
    from callgate.audit.source import Source
    from callgate.audit.verify import verify

    path = tmp_path / "audit.jsonl"
    engine = engine_class.from_dict(examples.policy("crm"), audit=audit.JsonlSink(str(path)))
    returned = []
    for case in examples.cases("crm"):
        d = engine.evaluate(case["tool"], case["args"], role=case["role"],
                            agent_attributes=case.get("agent_attributes"),
                            resource_attributes=case.get("resource_attributes"))
        returned.append((case["tool"], d.decision, d.reason))
    engine.close()
    import orjson

    records = [orjson.loads(line)["record"] for line in path.read_bytes().splitlines()]
    assert [(r["tool"], r["decision"], r["reason"]) for r in records if r["kind"] == "decision"] == returned
    assert verify(Source(str(path))).ok
