"""Crash safety: a child process writing decisions under fsync="always" is killed with
SIGKILL mid-stream. Everything it had acknowledged verifies; a torn last record is
reported as torn (not as tampering); the unclean stop is reported (a warning); a new writer
resumes the same chain after it, accounting for the torn bytes it leaves behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.source import Source
from callgate.audit.verify import verify

CHILD = textwrap.dedent("""
    import sys
    from callgate import Engine, audit, examples
    kind, path = sys.argv[1], sys.argv[2]
    sink = audit.JsonlSink(path, fsync="always") if kind == "jsonl" else audit.SqliteSink(path, fsync="always")
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    for i in range(1_000_000):
        engine.evaluate("process_refund", {"order_id": f"O-{i}", "amount": i % 900}, role="agent")
        if i % 25 == 24:
            rec.flush()  # everything so far is durable: acknowledge it
            print(i + 1, flush=True)
""")


def run_and_kill(kind: str, path: str, acked_at_least: int = 150) -> int:
    """Start the writer child, wait until it acknowledged some records, SIGKILL it while it
    keeps writing; return how many it had acknowledged."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, kind, path], stdout=subprocess.PIPE, text=True)
    acked = 0
    try:
        for line in child.stdout:
            acked = int(line)
            if acked >= acked_at_least:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    assert acked >= acked_at_least, "the child stopped before acknowledging anything"
    return acked


def append(path: str, n: int) -> None:
    sink = audit.JsonlSink(path) if path.endswith(".jsonl") else audit.SqliteSink(path)
    with Engine.from_dict(examples.policy("crm"), audit=sink) as engine:
        for i in range(n):
            engine.evaluate("view_customer", {"customer_id": f"C-{i}"}, role="agent")


def test_sigkill_jsonl_torn_tail_and_resume(tmp_path):
    """JSONL: after SIGKILL every acknowledged record verifies, and the writer that did not
    stop cleanly is reported (a warning, not a failure); a record torn mid-write at the
    tail (left by the kill, or as a power cut leaves it: emulated by appending half of the
    next record) is reported as torn; appending resumes the chain after the last complete
    record and the whole log verifies, the torn fragment still reported, now as accounted
    for by the new writer's start marker."""
    path = str(tmp_path / "crash.jsonl")
    acked = run_and_kill("jsonl", path)
    report = verify(Source(path))
    assert report.ok, str(report.problem)
    assert report.records >= acked + 1  # and the start marker
    (unclean,) = report.unclean
    assert unclean.startswith("writer of chain 'main' did not stop cleanly after seq ")
    data = open(path, "rb").read()
    if data.endswith(b"\n"):  # the kill landed between records: tear the next one as a crash would
        last = orjson.loads(data.splitlines()[-1])
        nxt = dict(last["record"], seq=last["record"]["seq"] + 1)
        line = b'{"hash":"' + b"ab" * 32 + b'","record":' + orjson.dumps(nxt, option=orjson.OPT_SORT_KEYS) + b"}\n"
        with open(path, "ab") as fh:
            fh.write(line[: len(line) // 2])
    report = verify(Source(path))
    assert report.ok and len(report.torn) == 1 and "torn record at the end of the log" in report.torn[0]
    size = report.chains["main"]["size"]

    append(path, 5)
    report = verify(Source(path))
    assert report.ok, str(report.problem)
    # the new writer's start marker, five decisions and its stop marker
    assert report.chains["main"]["size"] == size + 7 and report.records == size + 7
    (torn,) = report.torn
    assert "torn record" in torn and "accounted for by the writer that started at crash.jsonl byte" in torn
    assert report.unclean == [f"writer of chain 'main' did not stop cleanly after seq {size - 1}: decisions "
                              "returned after it may be missing"]


def test_sigkill_sqlite_resume(tmp_path):
    """SQLite: a batch cut by SIGKILL is rolled back by the database, so everything
    acknowledged verifies (the unclean stop reported) and a new writer continues the chain."""
    path = str(tmp_path / "crash.db")
    acked = run_and_kill("sqlite", path)
    report = verify(Source(path))
    assert report.ok and report.records >= acked + 1
    assert len(report.unclean) == 1
    append(path, 5)
    after = verify(Source(path))
    assert after.ok and after.chains["main"]["size"] == report.records + 7
    assert after.unclean == [f"writer of chain 'main' did not stop cleanly after seq {report.records - 1}: "
                             "decisions returned after it may be missing"]


def test_interpreter_exit_flushes(tmp_path):
    """A process that never calls close() still has every decision in the log when the
    interpreter exits normally (the recorder registers an atexit flush)."""
    path = str(tmp_path / "exit.jsonl")
    code = ("from callgate import Engine, audit, examples\n"
            f"e = Engine.from_dict(examples.policy('crm'), audit=audit.JsonlSink({path!r}))\n"
            "for i in range(500): e.evaluate('view_customer', {'customer_id': str(i)}, role='agent')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    report = verify(Source(path))
    assert report.ok and report.records == 500 + 2 and report.unclean == []  # a clean stop


DURABLE_CHILD = textwrap.dedent("""
    import sys, threading
    from callgate import Engine, audit, examples
    kind, path, durable, threads = sys.argv[1], sys.argv[2], sys.argv[3] == "durable", int(sys.argv[4])
    options = dict(durable=True) if durable else dict(max_queue=500, batch_size=100)
    sink = audit.JsonlSink(path, **options) if kind == "jsonl" else audit.SqliteSink(path, **options)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    out = threading.Lock()

    def decide(t):
        for i in range(1_000_000):
            d = engine.evaluate("process_refund", {"order_id": f"O-{t}-{i}", "amount": 100}, role="agent")
            if d.decision == "Allow":  # returned: the caller may act on it now
                with out:
                    print(f"O-{t}-{i}", flush=True)

    for t in range(threads):
        threading.Thread(target=decide, args=(t,)).start()
""")


def kill_after_acks(kind: str, path: str, mode: str, threads: int, acks: int) -> list:
    """Run DURABLE_CHILD, SIGKILL it once it has returned `acks` Allows; the order ids it
    returned, in the order it printed them."""
    child = subprocess.Popen([sys.executable, "-c", DURABLE_CHILD, kind, path, mode, str(threads)],
                             stdout=subprocess.PIPE, text=True)
    acked: list = []
    try:
        for line in child.stdout:
            acked.append(line.strip())
            if len(acked) >= acks:
                break
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.kill()
        child.wait(30)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL and len(acked) >= acks
    return acked


def logged_orders(path: str) -> set:
    from callgate.audit.query import events

    return {record["args"]["order_id"] for _, record, _ in events(Source(path)) if record.get("kind") == "decision"}


@pytest.mark.parametrize("kind", ["jsonl", "db"])
def test_sigkill_loses_no_durable_decision(tmp_path, kind):
    """durable=True, four deciding threads, SIGKILL mid-stream: every decision the child had
    returned (and printed) is in the log, the log verifies, and the writer's unclean stop is
    reported."""
    path = str(tmp_path / f"durable.{kind}")
    acked = kill_after_acks(kind, path, "durable", 4, 300)
    missing = set(acked) - logged_orders(path)
    assert missing == set()
    report = verify(Source(path))
    assert report.ok, str(report.problem)
    assert len(report.unclean) == 1 and "did not stop cleanly" in report.unclean[0]


def test_sigkill_without_durable_loses_at_most_the_queue_and_two_batches(tmp_path):
    """Without durable=True a SIGKILL can lose decisions already returned, but (one deciding
    thread) no more than max_queue (500 here) plus the batch in flight and the batch sealed
    behind it (100 each), and verify says the writer did not stop cleanly, so a reviewer
    knows some may be missing."""
    path = str(tmp_path / "fast.jsonl")
    acked = kill_after_acks("jsonl", path, "fast", 1, 3000)
    missing = set(acked) - logged_orders(path)
    assert len(missing) <= 500 + 2 * 100
    report = verify(Source(path))
    assert report.ok and len(report.unclean) == 1
