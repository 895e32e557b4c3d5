"""OpenTelemetry for decisions (docs/deploy.md): a span per decision, continuing the caller's
W3C trace context (`traceparent`) when one is given, and metrics: decisions by outcome and
tool, the decision latency histogram, denials by principal and tool (deny bursts across
replicas are an alert over their sum), the audit trail's queue depth and failures.

Off by default, and free when off: a host holds None instead of a Telemetry and tests it
once per decision (service.Decider does); this module, and opentelemetry, are imported only
when telemetry is turned on.

    tel = Telemetry.with_prometheus()          # `callgate serve --telemetry`: GET /metrics
    with tel.span("refund", "authzen", trace_id, carrier=request_headers) as span:
        ...decide...
        tel.decided(span, "refund", "Deny", seconds, principal)

`Telemetry(tracer_provider, meter_provider)` takes any SDK providers (the tests give it an
in-memory span exporter and metric reader; a deployment its OTLP exporters).
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any, Iterator, Mapping, Optional

from .extras import require

__all__ = ["MAX_PRINCIPALS", "Telemetry"]

MAX_PRINCIPALS = 1000   # distinct principal labels on the denial counter; beyond: "(other)"
_LATENCY_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                    0.1, 0.25, 0.5, 1.0, 2.5)


class Telemetry:
    """Spans and metrics of decisions through the OpenTelemetry API (module docstring)."""

    def __init__(self, tracer_provider: Any, meter_provider: Any, *, registry: Any = None,
                 service: str = "callgate") -> None:
        require("opentelemetry.sdk", "telemetry", "otel")
        from opentelemetry.propagate import extract

        self._extract = extract
        self.tracer_provider, self.meter_provider, self.registry = tracer_provider, meter_provider, registry
        self.tracer = tracer_provider.get_tracer(service)
        meter = meter_provider.get_meter(service)
        self.decisions = meter.create_counter("callgate.decisions", unit="{decision}",
                                              description="decisions by outcome and tool")
        self.latency = meter.create_histogram("callgate.decision.duration", unit="s",
                                              description="time to decide one call",
                                              explicit_bucket_boundaries_advisory=list(_LATENCY_BUCKETS))
        self.denials = meter.create_counter("callgate.denials", unit="{decision}",
                                            description="denials by principal and tool (deny bursts)")
        self._recorders: list[Any] = []
        meter.create_observable_gauge("callgate.audit.queue_depth", [self._queue_depth], unit="{event}",
                                      description="audit events waiting for the writer")
        meter.create_observable_counter("callgate.audit.failures", [self._audit_failures], unit="{error}",
                                        description="audit sink write errors")
        self._principals: set[str] = set()
        self._lock = threading.Lock()

    @classmethod
    def with_prometheus(cls, service: str = "callgate") -> "Telemetry":
        """SDK providers whose metrics are read by a Prometheus reader on a registry of its
        own (`exposition()` renders it for GET /metrics); spans are made, and exported only
        where a span processor is added to `tracer_provider`."""
        require("opentelemetry.exporter.prometheus", "the Prometheus scrape endpoint", "otel")
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from prometheus_client import CollectorRegistry

        registry = CollectorRegistry()
        reader = PrometheusMetricReader(registry=registry)
        resource = Resource.create({"service.name": service})
        # exemplars (a sampled trace id kept per bucket) are not in the Prometheus text: off, a
        # third of the metrics' cost per decision
        meters = MeterProvider(metric_readers=[reader], resource=resource, exemplar_filter=AlwaysOffExemplarFilter())
        return cls(TracerProvider(resource=resource), meters, registry=registry, service=service)

    def exposition(self) -> tuple[bytes, str]:
        """The Prometheus text of the metrics (body, content type)."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.registry is None:
            raise RuntimeError("this Telemetry has no Prometheus registry (Telemetry.with_prometheus makes one)")
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    # ------------------------------------------------------------ per decision

    @contextlib.contextmanager
    def span(self, tool: str, via: str, trace_id: Optional[str] = None,
             carrier: Optional[Mapping[str, str]] = None) -> Iterator[Any]:
        """A "callgate.decide" span around one decision, the child of the W3C trace context in
        `carrier` (headers, or MCP `_meta`, holding `traceparent`/`tracestate`) when present."""
        parent = self._extract(dict(carrier)) if carrier else None
        attributes = {"callgate.tool": tool, "callgate.via": via}
        if trace_id is not None:
            attributes["callgate.trace_id"] = trace_id
        # not made the current span: nothing runs inside a decision that would nest under it,
        # and attaching a context costs about a sixth of the telemetry's time per decision
        span = self.tracer.start_span("callgate.decide", context=parent, attributes=attributes)
        try:
            yield span
        except BaseException as exc:
            span.record_exception(exc)
            raise
        finally:
            span.end()

    def decided(self, span: Any, tool: str, outcome: str, seconds: float, principal: Optional[str]) -> None:
        """Count one decision: its outcome and latency, and a denial by principal and tool."""
        attrs = {"outcome": outcome, "tool": tool}
        self.decisions.add(1, attrs)
        self.latency.record(seconds, attrs)
        if span is not None:
            span.set_attribute("callgate.outcome", outcome)
        if outcome == "Deny":
            who = principal or "(none)"
            with self._lock:
                if who not in self._principals:
                    if len(self._principals) >= MAX_PRINCIPALS:
                        who = "(other)"
                    else:
                        self._principals.add(who)
            self.denials.add(1, {"principal": who, "tool": tool})

    # ------------------------------------------------------------ the audit trail

    def watch_recorder(self, recorder: Any) -> None:
        """Report this audit recorder's queue depth and write errors (callgate.audit.Recorder)."""
        if recorder is not None:
            self._recorders.append(recorder)

    def _queue_depth(self, options: Any) -> Any:
        from opentelemetry.metrics import Observation

        return [Observation(r.stats["queued"]) for r in self._recorders]

    def _audit_failures(self, options: Any) -> Any:
        from opentelemetry.metrics import Observation

        return [Observation(r.stats["errors"]) for r in self._recorders]
