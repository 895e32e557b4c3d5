"""PostgresSink against a real PostgreSQL server (CALLGATE_TEST_PG_DSN; .ci/run starts a
throwaway cluster). Each test uses its own schema."""

from __future__ import annotations

import os
import threading
import uuid

import pytest

from callgate import Engine, audit, examples
from callgate.audit.source import Source
from callgate.audit.verify import verify
from support.cli import invoke

DSN = os.environ.get("CALLGATE_TEST_PG_DSN")
pytestmark = pytest.mark.skipif(not DSN, reason="CALLGATE_TEST_PG_DSN not set: no PostgreSQL server to test against")


@pytest.fixture
def table():
    psycopg = pytest.importorskip("psycopg")
    schema = f"cg_audit_{uuid.uuid4().hex[:12]}"
    yield f"{schema}.events"
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def write(table: str, chain: str, n: int) -> None:
    with Engine.from_dict(examples.policy("crm"), audit=audit.PostgresSink(DSN, table=table, chain=chain)) as engine:
        for i in range(n):
            engine.evaluate("process_refund", {"order_id": f"O-{i}", "amount": 100 * i}, role="agent",
                            principal=f"user:{chain}")


def test_many_writers_one_log(table):
    """Writers sharing one table each keep their own chain (default id host:pid); their rows
    interleave and every chain verifies; a writer restarting with the same id resumes its chain."""
    assert audit.PostgresSink(DSN, table=table).chain.endswith(f":{os.getpid()}")
    threads = [threading.Thread(target=write, args=(table, f"host-{k}:{1000 + k}", 30)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    write(table, "host-0:1000", 5)
    report = verify(Source(DSN, table))
    assert report.ok, str(report.problem)
    # each writer's decisions between its start and stop markers
    assert report.records == 95 + 8
    assert {c: v["size"] for c, v in report.chains.items()} == {"host-0:1000": 35 + 4, "host-1:1001": 30 + 2,
                                                                "host-2:1002": 30 + 2}


def test_tampering_detected_in_postgres(table):
    """A row edited in the database (record or indexed column) or deleted is found by
    `callgate audit verify DSN`, which names the row."""
    import psycopg

    write(table, "w:1", 10)
    r = invoke("audit", "verify", DSN, "--table", table)
    assert r.exit_code == 0 and "12 records" in r.output  # and the start and stop markers
    with psycopg.connect(DSN, autocommit=True) as conn:
        pos = conn.execute(f"SELECT pos FROM {table} WHERE seq = 4").fetchone()[0]
        conn.execute(f"DELETE FROM {table} WHERE seq = 4")
    r = invoke("audit", "verify", DSN, "--table", table)
    assert r.exit_code == 1 and "deleted" in r.output and f"pos={pos + 1}" in r.output
    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f"UPDATE {table} SET decision = 'Allow' WHERE seq = 8")
        pos8 = conn.execute(f"SELECT pos FROM {table} WHERE seq = 8").fetchone()[0]
        conn.execute(f"INSERT INTO {table} (chain, seq, ts, kind, principal, tool, role, decision, rule, record, hash) "
                     f"SELECT chain, 4, ts, kind, principal, tool, role, decision, rule, record, hash FROM {table} "
                     f"WHERE seq = 3")
    report = verify(Source(DSN, table))
    assert report.problem.kind in ("deleted", "modified") and not report.ok
    assert f"pos={pos + 1}" in report.problem.where or f"pos={pos8}" in report.problem.where
