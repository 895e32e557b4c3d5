"""One scrape for every worker of `callgate serve --workers N --telemetry`
(callgate.worker_metrics): the answering worker merges the live workers' Prometheus texts,
each sample labelled with its worker, and drops the files of workers that are gone; over
real HTTP, every scrape of a two-worker service counts every decision it made."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("prometheus_client")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from callgate.worker_metrics import SharedExposition  # noqa: E402
from support.service import children, free_port, start_serve, stop  # noqa: E402

POLICY = Path(__file__).parent / "authzen" / "certification_policy.json"
OWN = b"""# HELP callgate_decisions_total decisions
# TYPE callgate_decisions_total counter
callgate_decisions_total{outcome="Allow",tool="read"} 3.0
"""
OTHER = """# HELP callgate_decisions_total decisions
# TYPE callgate_decisions_total counter
callgate_decisions_total{outcome="Allow",tool="read"} 4.0
callgate_decisions_total{outcome="Deny",tool="write"} 1.0
"""


def _samples(body: bytes, name: str) -> list:
    return [s for f in text_string_to_metric_families(body.decode()) for s in f.samples if s.name == name]


def test_merged_text_labels_each_worker_and_drops_the_dead(tmp_path):
    """The exposition holds this worker's fresh text and a live worker's file, every sample
    with a `worker` label (its PID); a file of a process that no longer exists is removed and
    not shown; stop() removes this worker's own file."""
    live, dead = os.getppid(), 4194305   # the parent of this process; a PID above Linux's maximum
    (tmp_path / f"worker-{live}.prom").write_text(OTHER)
    (tmp_path / f"worker-{dead}.prom").write_text(OTHER)
    share = SharedExposition(str(tmp_path), lambda: OWN)
    body, ctype = share.exposition()
    assert ctype.startswith("text/plain")
    got = sorted((s.labels["worker"], s.labels["outcome"], s.value)
                 for s in _samples(body, "callgate_decisions_total"))
    assert got == sorted([(str(os.getpid()), "Allow", 3.0), (str(live), "Allow", 4.0), (str(live), "Deny", 1.0)])
    assert not (tmp_path / f"worker-{dead}.prom").exists()
    share.stop()
    assert not (tmp_path / f"worker-{os.getpid()}.prom").exists()


def test_every_scrape_of_two_workers_counts_every_decision():
    """`callgate serve --workers 2 --telemetry`: after 40 decisions over separate
    connections, each of several scrapes (whichever worker answers it) sums
    callgate_decisions_total to 40, and its worker labels are the running workers' PIDs."""
    port = free_port()
    proc = start_serve(POLICY, port, "--workers", "2", "--telemetry")
    try:
        deadline = time.monotonic() + 20
        while len(children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        workers = {str(pid) for pid in children(proc.pid)}
        assert len(workers) >= 2
        base = f"http://127.0.0.1:{port}"
        request = {"subject": {"type": "user", "id": "alice"}, "action": {"name": "read"},
                   "resource": {"type": "record", "id": "record-1"}}
        for _ in range(40):
            with httpx.Client(timeout=10) as client:   # a new connection each: any worker may take it
                assert client.post(base + "/access/v1/evaluation", json=request).json()["decision"] is True
        time.sleep(2.5)   # the other worker publishes every 2 s
        for _ in range(4):
            with httpx.Client(timeout=10) as client:
                body = client.get(base + "/metrics").content
            samples = _samples(body, "callgate_decisions_total")
            assert sum(s.value for s in samples) == 40, body.decode()
            assert {s.labels["worker"] for s in samples} <= workers
    finally:
        stop(proc)
