"""A file sink's relative path names the file relative to the working directory at the
sink's construction: a process that changes directory afterwards still writes (and spools)
where it was told, and verification of that path finds every record."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from callgate import Engine, audit, examples
from callgate.audit.source import Source


def _record(sink: audit.Sink, elsewhere: Path) -> int:
    """Builds an engine on sink, moves to elsewhere, decides every CRM case, closes; returns
    how many decisions were made."""
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    os.chdir(elsewhere)
    cases = examples.cases("crm")
    for case in cases:
        engine.evaluate(case["tool"], case["args"], role=case["role"], agent_attributes=case["agent_attributes"],
                        resource_attributes=case["resource_attributes"])
    engine.close()
    return len(cases)


@pytest.mark.parametrize("kind,name", [("jsonl", "audit.jsonl"), ("sqlite", "audit.db")])
def test_a_relative_path_is_fixed_when_the_sink_is_made(kind, name, tmp_path, monkeypatch):
    """SqliteSink("audit.db") and JsonlSink("audit.jsonl") made in one directory keep writing
    there after the process moves to another: the records are in the first directory, and
    nothing (no file, lock or spool) appears in the second."""
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(here)
    sink = audit.JsonlSink(name) if kind == "jsonl" else audit.SqliteSink(name)
    decided = _record(sink, elsewhere)
    assert sorted(os.listdir(elsewhere)) == []
    bodies = [orjson.loads(e.body) for e in Source(str(here / name)).entries() if e.is_record]
    assert len([b for b in bodies if b.get("kind") == "decision" or "decision" in b]) == decided


def test_a_relative_spool_path_is_fixed_when_the_sink_is_made(tmp_path, monkeypatch):
    """A relative spool_path option is resolved when the sink is made, like the sink's own
    path."""
    monkeypatch.chdir(tmp_path)
    sink = audit.JsonlSink("audit.jsonl", spool_path="spool.jsonl")
    assert sink.path == str(tmp_path / "audit.jsonl")
    assert sink.spool_path() == str(tmp_path / "spool.jsonl")
