"""Writer markers: a writer opens its part of a chain with a start marker and closes it
cleanly with a stop marker, so that `callgate audit verify` can say when a writer did not
stop cleanly (a warning: decisions it had returned may be missing); query, stats, tail and
replay never count the markers as decisions."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.replay import replay
from callgate.audit.source import Source
from callgate.audit.verify import verify
from support.cli import invoke

ALLOWED = ("view_customer", {"customer_id": "C-1"})
DENIED = ("delete_customer", {"customer_id": "C-1"})


def write_log(path: Path, n: int = 3) -> None:
    sink = audit.JsonlSink(path) if path.suffix == ".jsonl" else audit.SqliteSink(path)
    with Engine.from_dict(examples.policy("crm"), audit=sink) as engine:
        for i in range(n):
            engine.evaluate(*(ALLOWED if i % 2 == 0 else DENIED), role="agent", principal=f"user:{i}")


def records(path: Path) -> list:
    return [orjson.loads(line)["record"] for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize("name", ["a.jsonl", "a.db"])
def test_a_clean_close_brackets_the_records_with_start_and_stop(tmp_path, name):
    """The writer's first record is a start marker and, after a clean close, its last a stop
    marker, each naming the writer (host, pid); verify reports no unclean stop."""
    path = tmp_path / name
    write_log(path)
    from callgate.audit.query import events

    every = [r for r in (orjson.loads(e.body) for e in Source(str(path)).entries())]
    assert [(r["seq"], r["kind"], r.get("state")) for r in every] == \
        [(0, "writer", "start"), (1, "decision", None), (2, "decision", None), (3, "decision", None),
         (4, "writer", "stop")]
    assert set(every[0]["writer"]) == {"host", "pid"}
    report = verify(Source(str(path)))
    assert report.ok and report.unclean == [] and report.torn == []
    assert len(list(events(Source(str(path))))) == 3


def test_an_unclean_stop_is_a_warning_in_text_and_json(tmp_path):
    """A chain whose last marker is a start (its writer was killed, or still runs) verifies,
    with a warning naming the chain and the last seq, in the text output and in --json
    ("unclean_stops"); a writer that started after one that did not stop is reported too."""
    path = tmp_path / "a.jsonl"
    write_log(path)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))  # what a SIGKILL before close leaves (no stop marker)
    r = invoke("audit", "verify", str(path))
    assert r.exit_code == 0, r.output
    assert ("warning: writer of chain 'main' did not stop cleanly after seq 3 (or it is still running): decisions "
            "returned after it may be missing") in r.output
    r = invoke("audit", "verify", str(path), "--json")
    report = orjson.loads(r.output)
    assert r.exit_code == 0 and report["ok"] is True and len(report["unclean_stops"]) == 1

    write_log(path, 2)  # a new writer, after the one that did not stop
    report = verify(Source(str(path)))
    assert report.ok
    assert report.unclean == ["writer of chain 'main' did not stop cleanly after seq 3: decisions returned after "
                              "it may be missing"]


def test_markers_are_not_counted_as_decisions(tmp_path):
    """query lists only the decisions, stats counts only them (no "writer" kind), tail's
    last record is the last decision, and replay replays exactly the decisions."""
    path = tmp_path / "a.db"
    write_log(path, 4)
    r = invoke("audit", "query", str(path), "--json")
    assert [orjson.loads(line)["kind"] for line in r.output.splitlines()] == ["decision"] * 4
    stats = orjson.loads(invoke("audit", "stats", str(path), "--json").output)
    assert stats["records"] == 4 and stats["kinds"] == {"decision": 4}
    r = invoke("audit", "tail", str(path), "-n", "1", "--json")
    assert orjson.loads(r.output)["principal"] == "user:3"
    result = replay(Source(str(path)), Engine.from_dict(examples.policy("crm")))
    assert result["replayed"] == 4 and result["changed_calls"] == 0


def test_an_emit_target_gets_no_markers():
    """Markers belong to the logs verify reads: an object with emit(event) receives only the
    decisions."""
    seen = []

    class Target:
        def emit(self, event) -> None:
            seen.append(event.kind)

    with Engine.from_dict(examples.policy("crm"), audit=Target()) as engine:
        engine.evaluate(*ALLOWED, role="agent")
    assert seen == ["decision"]


def test_what_a_dead_sink_leaves_in_the_spool_is_a_clean_segment(tmp_path):
    """A sink that never opens (its directory is missing): close() seals what is queued into
    the spool as a chain of its own, start marker first and stop marker last; the next
    writer with that spool resends it, and the log verifies with no unclean stop."""
    path = tmp_path / "later" / "a.jsonl"
    spool = tmp_path / "a.spool.jsonl"
    engine = Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path, spool_path=str(spool),
                                                                          retry_interval=0.01))
    for _ in range(3):
        engine.evaluate(*ALLOWED, role="agent")
    audit.recorder(engine).close(timeout=0.2)
    spooled = records(spool)
    assert [(r["kind"], r.get("state")) for r in spooled] == \
        [("writer", "start"), ("decision", None), ("decision", None), ("decision", None), ("writer", "stop")]
    assert spooled[0]["chain"].startswith("main~")
    path.parent.mkdir()
    with Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path, spool_path=str(spool))) as engine:
        engine.evaluate(*ALLOWED, role="agent")
    report = verify(Source(str(path)))
    assert report.ok and report.unclean == []
    assert {c: v["size"] for c, v in report.chains.items()} == {spooled[0]["chain"]: 5, "main": 3}
