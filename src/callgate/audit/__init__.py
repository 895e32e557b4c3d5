"""callgate's audit trail: every decision recorded, tamper-evident, nothing lost, replayable.

    engine = callgate.Engine.from_file(p, audit=callgate.audit.SqliteSink("audit.db"))

Modules, one job each:
    events      AuditEvent, its canonical JSON and the perso camelCase shape
    builder     request bytes + Decision -> event dict (on the writer thread); approval events
    masks       JSON-pointer masks
    chain       SHA-256(0x00 || prev || record) links
    records     a sealed record and its JSON-lines envelope
    recorder    the hot path (enqueue only) and attach()
    writer      the writer thread: batching, fsync, failure policies, gap records
    spool       local spill file, resent in order
    sinks, jsonl, sqlite, postgres, http   where records go
    open        a sink from a SOURCE string (the command line's --audit)
    source      reading a log back (.db, .jsonl, postgres DSN)
    verify, checkpoint   tamper evidence
    query, replay, shadow, burst   using the log
See docs/audit.md."""

from __future__ import annotations

from .burst import BurstAlert
from .events import AuditEvent
from .http import HttpSink
from .jsonl import JsonlSink
from .open import open_sink
from .options import Options
from .postgres import PostgresSink
from .recorder import Recorder, attach, recorder
from .sinks import Audit, ConsoleSink, EmitSink, Sink
from .sqlite import SqliteSink

__all__ = ["AuditEvent", "Audit", "BurstAlert", "ConsoleSink", "EmitSink", "HttpSink", "JsonlSink", "Options",
           "PostgresSink", "Recorder", "Sink", "SqliteSink", "attach", "open_sink", "recorder"]
