"""OpenTelemetry in the decision service (callgate.telemetry): a span per decision that
continues the caller's W3C trace context, metrics by outcome and tool, latency, denials by
principal and tool, the audit queue; the Prometheus scrape endpoint; and off by default
(nothing imported, no /metrics)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("starlette")
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.metrics.export import InMemoryMetricReader  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import SimpleSpanProcessor  # noqa: E402
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from callgate import Engine, audit  # noqa: E402
from callgate.service import Decider, make_app  # noqa: E402
from callgate.telemetry import Telemetry  # noqa: E402

POLICY = Path(__file__).parent / "authzen" / "spec_policy.json"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def in_memory(**engine_options):
    spans = InMemorySpanExporter()
    tp = TracerProvider()
    tp.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    tel = Telemetry(tp, MeterProvider(metric_readers=[reader]))
    engine = Engine.from_file(POLICY, **engine_options)
    tel.watch_recorder(engine.recorder)
    client = TestClient(make_app(Decider(engine, telemetry=tel), public_url="http://pdp.test"))
    return client, spans, reader, engine


def points(reader) -> dict:
    """metric name -> list of (attributes, value or histogram count)."""
    out: dict = {}
    for rm in reader.get_metrics_data().resource_metrics:
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                for p in m.data.data_points:
                    value = getattr(p, "value", None)
                    out.setdefault(m.name, []).append((dict(p.attributes), p.count if value is None else value))
    return out


def call(client, amount, principal: str = "user:alice", headers=None):
    return client.post("/v1/decide", json={"tool": "refund", "role": "agent", "arguments": {"amount": amount},
                                           "principal": principal}, headers=headers or {})


def test_spans_continue_the_callers_trace():
    """One "callgate.decide" span per decision, with the tool, the route and the outcome; a
    request carrying a traceparent gets a span in that trace, whose parent is the caller's."""
    client, spans, _, _ = in_memory()
    call(client, 50, headers={"traceparent": TRACEPARENT})
    call(client, "lots")
    got = spans.get_finished_spans()
    assert [s.name for s in got] == ["callgate.decide"] * 2
    first, second = got
    assert first.attributes["callgate.tool"] == "refund" and first.attributes["callgate.outcome"] == "Allow"
    assert first.attributes["callgate.via"] == "plain"
    assert format(first.context.trace_id, "032x") == TRACE_ID and format(first.parent.span_id, "016x") == \
        "00f067aa0ba902b7"
    assert second.attributes["callgate.outcome"] == "Deny" and second.parent is None
    assert format(second.context.trace_id, "032x") != TRACE_ID


def test_metrics_by_outcome_tool_and_principal():
    """Decisions counted by outcome and tool, every one in the latency histogram, denials by
    principal and tool (what a deny-burst alert sums across replicas)."""
    client, _, reader, _ = in_memory()
    for amount in (50, 60, "lots", 400):
        call(client, amount, principal="user:mallory" if amount == "lots" else "user:alice")
    m = points(reader)
    assert sorted((a["outcome"], v) for a, v in m["callgate.decisions"]) == [("Allow", 2), ("Deny", 1),
                                                                              ("Elevate", 1)]
    assert sum(v for _, v in m["callgate.decision.duration"]) == 4
    assert m["callgate.denials"] == [({"principal": "user:mallory", "tool": "refund"}, 1)]


def test_audit_queue_and_failures_observed(tmp_path):
    """With an audit trail, its queue depth and write errors are observed as metrics."""
    client, _, reader, engine = in_memory(audit=audit.JsonlSink(str(tmp_path / "a.jsonl")))
    call(client, 50)
    engine.flush(5)
    m = points(reader)
    assert m["callgate.audit.queue_depth"] == [({}, 0)] and m["callgate.audit.failures"] == [({}, 0)]
    engine.close()


def test_scrape_endpoint_serves_the_metrics():
    """GET /metrics (with telemetry on) is Prometheus text with the decision counter by
    outcome and tool, the latency histogram and the service name."""
    tel = Telemetry.with_prometheus()
    client = TestClient(make_app(Decider(Engine.from_file(POLICY), telemetry=tel), public_url="http://pdp.test",
                                 metrics=tel.exposition))
    call(client, "lots")
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    lines = r.text.splitlines()
    assert any(line.startswith("callgate_decisions_total{") and 'outcome="Deny"' in line and 'tool="refund"' in line
               and line.endswith(" 1.0") for line in lines)
    assert any(line.startswith("callgate_decision_duration_seconds_count{") for line in lines)
    assert 'service_name="callgate"' in r.text


def test_off_by_default():
    """Without telemetry: no /metrics route, no span machinery on the decision path, and
    importing the service imports no opentelemetry."""
    client = TestClient(make_app(Decider(Engine.from_file(POLICY)), public_url="http://pdp.test"))
    assert client.get("/metrics").status_code == 404
    code = "import sys, callgate.service, callgate.serve_cli; print(any(m.startswith('opentelemetry') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr
