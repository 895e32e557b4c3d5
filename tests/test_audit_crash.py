"""Crash safety: a child process writing decisions under fsync="always" is killed with
SIGKILL mid-stream. Everything it had acknowledged verifies; a torn last record is
reported as torn (not as tampering); a new writer resumes the same chain after it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import orjson

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
    """JSONL: after SIGKILL every acknowledged record verifies; a record torn mid-write at the
    tail (left by the kill, or as a power cut leaves it: emulated by appending half of the
    next record) is reported as torn; appending resumes the chain after the last complete
    record and the whole log verifies, the torn fragment still reported."""
    path = str(tmp_path / "crash.jsonl")
    acked = run_and_kill("jsonl", path)
    report = verify(Source(path))
    assert report.ok, str(report.problem)
    assert report.records >= acked
    data = open(path, "rb").read()
    if data.endswith(b"\n"):  # the kill landed between records: tear the next one as a crash would
        last = orjson.loads(data.splitlines()[-1])
        nxt = dict(last["record"], seq=last["record"]["seq"] + 1)
        line = b'{"hash":"' + b"ab" * 32 + b'","record":' + orjson.dumps(nxt, option=orjson.OPT_SORT_KEYS) + b"}\n"
        with open(path, "ab") as fh:
            fh.write(line[: len(line) // 2])
    report = verify(Source(path))
    assert report.ok and len(report.torn) == 1 and "torn record" in report.torn[0]
    size = report.chains["main"]["size"]

    append(path, 5)
    report = verify(Source(path))
    assert report.ok, str(report.problem)
    assert report.chains["main"]["size"] == size + 5 and report.records == size + 5
    assert len(report.torn) == 1


def test_sigkill_sqlite_resume(tmp_path):
    """SQLite: a batch cut by SIGKILL is rolled back by the database, so everything
    acknowledged verifies and a new writer continues the chain."""
    path = str(tmp_path / "crash.db")
    acked = run_and_kill("sqlite", path)
    report = verify(Source(path))
    assert report.ok and report.records >= acked
    append(path, 5)
    after = verify(Source(path))
    assert after.ok and after.chains["main"]["size"] == report.records + 5


def test_interpreter_exit_flushes(tmp_path):
    """A process that never calls close() still has every decision in the log when the
    interpreter exits normally (the recorder registers an atexit flush)."""
    path = str(tmp_path / "exit.jsonl")
    code = ("from callgate import Engine, audit, examples\n"
            f"e = Engine.from_dict(examples.policy('crm'), audit=audit.JsonlSink({path!r}))\n"
            "for i in range(500): e.evaluate('view_customer', {'customer_id': str(i)}, role='agent')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    report = verify(Source(path))
    assert report.ok and report.records == 500
