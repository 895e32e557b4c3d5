"""Failure policies: a sink whose writes raise (disk full, EIO) under on_failure block, deny
and spool; gap records account for every event that could not be queued; the HTTP sink
against a local server that is down and then up delivers every event exactly once."""

from __future__ import annotations

import errno
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson

from callgate import Engine, audit, examples
from callgate.audit.records import Record
from callgate.audit.sinks import Sink
from support.audit import wait_for

ALLOWED = ("view_customer", {"customer_id": "C-1"})


class FlakySink(Sink):
    """Keeps records in memory; raises OSError (ENOSPC) while `broken` is set."""

    def __init__(self, **options) -> None:
        options.setdefault("retry_interval", 0.01)
        super().__init__(**options)
        self.broken = threading.Event()
        self.records: list[Record] = []
        self.attempts = 0

    def write(self, records) -> None:
        self.attempts += 1
        if self.broken.is_set():
            raise OSError(errno.ENOSPC, "No space left on device")
        self.records.extend(records)


def test_block_mode_waits_and_loses_nothing():
    """on_failure="block": while the sink fails, decisions wait once the queue is full; when
    it recovers every decision is written, in order, with no gap."""
    sink = FlakySink(on_failure="block", max_queue=4, batch_size=2)
    sink.broken.set()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    worker = threading.Thread(target=lambda: [engine.evaluate(*ALLOWED, role="agent") for _ in range(20)])
    worker.start()
    wait_for(lambda: rec.stats["failing"] is not None and len(rec._q) >= 4, "the queue to fill")
    assert worker.is_alive()  # blocked by back-pressure, not dropping
    sink.broken.clear()
    worker.join(30)
    assert not worker.is_alive()
    engine.close()
    assert [r.seq for r in sink.records] == list(range(20))
    assert all(r.event["kind"] == "decision" and r.event["decision"] == "Allow" for r in sink.records)


def test_deny_mode_fails_closed_and_counts_losses():
    """on_failure="deny": while decisions cannot be recorded, calls are denied with that
    reason; what could not even be queued is counted and written as a gap record, so
    recorded decisions + lost == calls made."""
    sink = FlakySink(on_failure="deny", max_queue=3, batch_size=1)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    sink.broken.set()
    engine.evaluate(*ALLOWED, role="agent")  # the write of this one fails
    wait_for(lambda: rec.stats["failing"] is not None, "the failure to be noticed")
    results = [engine.evaluate(*ALLOWED, role="agent") for _ in range(10)]
    assert all(d.decision == "Deny" for d in results)
    assert all("cannot" in d.reason and "on_failure=deny" in d.reason for d in results)
    sink.broken.clear()
    wait_for(lambda: rec.stats["failing"] is None and rec.stats["queued"] == 0, "recovery and a drained queue")
    assert engine.evaluate(*ALLOWED, role="agent").decision == "Allow"
    engine.close()
    events = [r.event for r in sink.records]
    decisions = [e for e in events if e["kind"] == "decision"]
    lost = sum(e["lost"] for e in events if e["kind"] == "gap")
    assert len(decisions) + lost == 12 and lost > 0
    assert [r.seq for r in sink.records] == list(range(len(events)))
    denied = [e for e in decisions if e["decision"] == "Deny"]
    assert denied and all("on_failure=deny" in e["reason"] for e in denied)


def test_spool_mode_spills_and_resends_in_order(tmp_path):
    """on_failure="spool": while the sink fails, records go to a local fsynced file; once it
    is back they are resent oldest first, then new records follow: one intact chain."""
    sink = FlakySink(on_failure="spool", spool_path=str(tmp_path / "spool.jsonl"), batch_size=3)
    sink.broken.set()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    for _ in range(10):
        engine.evaluate(*ALLOWED, role="agent")
    wait_for(lambda: rec.stats["spooled"] == 10, "spooling")
    assert len((tmp_path / "spool.jsonl").read_bytes().splitlines()) == 10
    sink.broken.clear()
    for _ in range(5):
        engine.evaluate(*ALLOWED, role="agent")
    wait_for(lambda: len(sink.records) == 15, "the resend")
    engine.close()
    assert [r.seq for r in sink.records] == list(range(15))


def test_close_with_a_dead_sink_keeps_records_in_the_spool(tmp_path):
    """Closing while the sink still fails (block mode) does not drop what is queued: it is
    sealed into the spool, and the next writer with that spool sends it first."""
    spool = str(tmp_path / "left.jsonl")
    sink = FlakySink(on_failure="block", spool_path=spool)
    sink.broken.set()
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    for _ in range(6):
        engine.evaluate(*ALLOWED, role="agent")
    audit.recorder(engine).close(timeout=0.2)
    assert len(open(spool, "rb").read().splitlines()) == 6
    again = FlakySink(on_failure="block", spool_path=spool)
    with Engine.from_dict(examples.policy("crm"), audit=again) as engine2:
        engine2.evaluate(*ALLOWED, role="agent")
    assert [r.seq for r in again.records] == list(range(7))


class _Receiver(BaseHTTPRequestHandler):
    received: list = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        for line in body.splitlines():
            record = orjson.loads(line)["record"]
            if record["kind"] == "decision":  # (not the writer's start and stop markers)
                self.received.append(record["id"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_http_sink_down_then_up_delivers_exactly_once(tmp_path):
    """HttpSink against a local endpoint (127.0.0.1) that is down at first: events are
    spooled, and once the server is up every event arrives exactly once, in order."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    sink = audit.HttpSink(f"http://127.0.0.1:{port}/audit", headers={"Authorization": "Bearer t"},
                          spool_path=str(tmp_path / "http-spool.jsonl"), retries=2, backoff=0.01,
                          retry_interval=0.02, batch_size=4)
    engine = Engine.from_dict(examples.policy("crm"), audit=sink)
    rec = audit.recorder(engine)
    ids_before = 7
    for _ in range(ids_before):
        engine.evaluate(*ALLOWED, role="agent")
    wait_for(lambda: rec.stats["spooled"] == ids_before + 1, "spooling (and the start marker) while the endpoint is down")
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", port), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(5):
            engine.evaluate(*ALLOWED, role="agent")
        wait_for(lambda: len(_Receiver.received) >= 12, "delivery")
        engine.close()
    finally:
        server.shutdown()
        server.server_close()
    assert len(_Receiver.received) == 12 and len(set(_Receiver.received)) == 12


def test_jsonl_failed_fsync_is_not_counted_and_not_duplicated(tmp_path, monkeypatch):
    """A JSONL batch whose fsync fails (EIO) is cut back to the last good sync and written
    again: the log ends with every record exactly once, and verifies."""
    import os

    from callgate.audit.source import Source
    from callgate.audit.verify import verify

    real_fsync = os.fsync
    failures = [2]

    def flaky_fsync(fd):
        if failures[0] > 0:
            failures[0] -= 1
            raise OSError(errno.EIO, "Input/output error")
        real_fsync(fd)

    path = tmp_path / "eio.jsonl"
    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with Engine.from_dict(examples.policy("crm"), audit=audit.JsonlSink(path, retry_interval=0.01)) as engine:
        for _ in range(10):
            engine.evaluate(*ALLOWED, role="agent")
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert failures[0] == 0
    report = verify(Source(str(path)))
    assert report.ok and report.records == 10 + 2, str(report.problem)  # and the start and stop markers
