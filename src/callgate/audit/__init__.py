"""callgate's audit trail: every decision recorded, tamper-evident, replayable; with
durable=True no decision returned before its event is durable, and otherwise what an
unclean stop can cost is bounded (max_queue) and detected (writer markers).

    engine = callgate.Engine.from_file(p, audit=callgate.audit.SqliteSink("audit.db"))

Modules, one job each:
    events      AuditEvent, its canonical JSON and the perso camelCase shape
    builder     request bytes + Decision -> event dict (on the writer thread); approval events
    masks       JSON-pointer masks
    chain       SHA-256(0x00 || prev || record) links
    records     a sealed record and its JSON-lines envelope
    recorder    the hot path (enqueue only), durable decisions, durable_mark/wait_durable, attach()
    writer      the writer thread: batching, fsync, failure policies, gap records
    durability  which queued events are durable (group commit, waiters)
    markers     writer start/stop markers (unclean stops), torn-bytes vouchers
    genesis     signed genesis records (writer keys): who started a chain
    keys        Ed25519 keys from PEM files
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
