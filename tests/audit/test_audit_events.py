"""Audit events: their fields, canonical JSON, the perso camelCase shape, masks, hash_args,
refused requests, and sinks that are plain objects with emit(event)."""

from __future__ import annotations

import hashlib
import io
import re
import uuid

import orjson
import pytest

import callgate
from callgate import Engine, RequestError, audit, examples
from callgate.audit.events import AuditEvent
from callgate.audit.masks import apply_masks, parse_pointer

REFUND = dict(role="agent", agent_attributes={"user_id": "agt-099", "ssn": "123-45-6789"}, resource_attributes={})


class Collect:
    def __init__(self) -> None:
        self.events = []

    def emit(self, event) -> None:
        self.events.append(event)


def _engine(sink, **kw) -> Engine:
    return Engine.from_dict(examples.policy("crm"), audit=sink, **kw)


def test_event_fields_for_evaluate():
    """Every evaluate() produces one event with the documented fields: UUID id, generated
    trace id, RFC 3339 UTC microsecond timestamp, the call, the decision with reason and
    rule, policy version, policy digest (SHA-256 of the compiled blob), engine version,
    principal, risk_score and extras from the host."""
    sink = Collect()
    with _engine(sink) as engine:
        d = engine.evaluate("process_refund", {"order_id": "O-1", "amount": 800}, **REFUND,
                            principal="user:alice+agent:triage-bot", extras={"risk_score": 0.7, "session": "s1"})
    (ev,) = sink.events
    assert isinstance(ev, AuditEvent)
    assert uuid.UUID(ev.id).version == 4 and uuid.UUID(ev.trace_id).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", ev.timestamp)
    assert (ev.tool, ev.role, ev.args) == ("process_refund", "agent", {"order_id": "O-1", "amount": 800})
    assert (ev.decision, ev.rule, ev.reason) == ("Deny", d.rule, d.reason)
    assert ev.principal == "user:alice+agent:triage-bot"
    assert ev.policy_version == "perso-1.0.0"
    assert ev.policy_digest == hashlib.sha256(engine.blob).hexdigest()
    assert ev.engine_version == callgate.__version__
    assert ev.risk_score == 0.7 and ev.extras == {"session": "s1"}
    assert ev.seq == 0 and len(ev.hash) == 64


def test_trace_id_given_and_json_form():
    """A host-given trace id is kept, and evaluate_json's bytes are recorded as the same event."""
    sink = Collect()
    with _engine(sink) as engine:
        engine.evaluate_json("process_refund", b'{"amount":800}',
                             b'{"role":"agent","agent_attrs":{"user_id":"u"},"resource_attrs":{}}', trace_id="t-1")
    (ev,) = sink.events
    assert ev.trace_id == "t-1" and ev.args == {"amount": 800} and ev.agent_attributes == {"user_id": "u"}
    assert ev.decision == "Deny" and ev.role == "agent"


def test_canonical_json_and_perso_shape():
    """Canonical JSON has sorted keys (nested too) and no whitespace; the perso shape uses
    camelCase keys at the top level and leaves the caller's argument names alone."""
    sink = Collect()
    with _engine(sink) as engine:
        engine.evaluate("process_refund", {"z_last": 1, "a_first": 2}, **REFUND, trace_id="t")
    ev = sink.events[0]
    body = ev.canonical()
    assert b" " not in body.replace(b"'agent'", b"").split(b'"reason"')[0]
    assert body == orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    assert body.index(b'"a_first"') < body.index(b'"z_last"')
    perso = ev.to_perso()
    assert perso["traceId"] == "t" and "agentAttributes" in perso and "policyDigest" in perso
    assert perso["args"] == {"z_last": 1, "a_first": 2}
    assert AuditEvent.from_dict(orjson.loads(body)).canonical() == body


def test_masks_applied_before_hashing_and_recorded():
    """Masked fields never reach the sink (nor the hash input); the event lists the pointers
    that matched, and pointers to absent fields are not listed."""
    sink = Collect()
    with _engine(audit.Audit(sink, masks=["/agent_attributes/ssn", "/args/card~1number", "/args/absent"])) as engine:
        engine.evaluate("process_refund", {"amount": 1, "card/number": "4111"}, **REFUND)
    ev = sink.events[0]
    assert ev.agent_attributes["ssn"] == "***" and ev.args["card/number"] == "***"
    assert ev.masked == ["/agent_attributes/ssn", "/args/card~1number"]
    assert b"123-45-6789" not in ev.canonical() and b"4111" not in ev.canonical()


def test_masked_values_do_not_leak_through_the_reason():
    """A masked field that a rule checks is also scrubbed from the reason (which quotes the
    value the check saw), and a refused request's raw bytes are not kept when masks are set."""
    sink = Collect()
    with _engine(audit.Audit(sink, masks=["/args/amount"])) as engine:
        d = engine.evaluate("process_refund", {"order_id": "O", "amount": 8123}, **REFUND)
        with pytest.raises(RequestError):
            engine.evaluate_json("process_refund", b'{"amount":8123,"amount":1}', b'{"role":"agent"}')
    assert "8123" in d.reason  # the caller still sees the full reason
    ev, err = sink.events
    assert "8123" not in ev.reason and "***" in ev.reason and ev.masked == ["/args/amount"]
    assert err.args_raw is None and err.context_raw is None and err.args_sha256
    assert "/args_raw" in err.masked and b"8123" not in err.canonical()


def test_hash_args_replaces_args_with_their_sha256():
    """hash_args=True: the event carries SHA-256 over the canonical JSON of the arguments,
    not the arguments."""
    sink = Collect()
    with _engine(audit.Audit(sink, hash_args=True)) as engine:
        engine.evaluate("process_refund", {"order_id": "O", "amount": 1}, **REFUND)
    ev = sink.events[0]
    assert ev.args is None
    assert ev.args_sha256 == hashlib.sha256(b'{"amount":1,"order_id":"O"}').hexdigest()


def test_refused_request_is_recorded_as_deny_with_raw_bytes():
    """A RequestError is still recorded: a Deny with the error as reason, and the refused bytes
    verbatim (a duplicate key must not be recorded as the value a parser happened to keep)."""
    sink = Collect()
    with _engine(sink) as engine:
        with pytest.raises(RequestError):
            engine.evaluate_json("process_refund", b'{"amount":1,"amount":900}', b'{"role":"agent"}')
    ev = sink.events[0]
    assert (ev.kind, ev.decision, ev.error_code) == ("error", "Deny", "duplicate_key")
    assert ev.args_raw == '{"amount":1,"amount":900}' and ev.args is None
    assert ev.tool == "process_refund" and ev.role == "agent"


def test_console_sink_writes_json_lines():
    """ConsoleSink writes one envelope line per event: {"hash":..., "record":...}."""
    stream = io.StringIO()
    with _engine(audit.ConsoleSink(stream=stream)) as engine:
        engine.evaluate("view_customer", {"customer_id": "C-1"}, role="agent")
    line = orjson.loads(stream.getvalue().splitlines()[0])
    assert line["record"]["tool"] == "view_customer" and len(line["hash"]) == 64


def test_json_pointer_parsing():
    """RFC 6901 escapes (~1 is '/', ~0 is '~'), array indexes, and the whole-document pointer refused."""
    assert parse_pointer("/a~1b/c~0d/0") == ["a/b", "c~d", "0"]
    with pytest.raises(ValueError):
        parse_pointer("")
    doc = {"args": {"list": [1, {"x": 2}]}}
    assert apply_masks(doc, [("/args/list/1/x", ["args", "list", "1", "x"])]) == ["/args/list/1/x"]
    assert doc["args"]["list"][1]["x"] == "***"


def test_bad_options_refused():
    """Unknown fsync or on_failure values are errors, not silent defaults."""
    with pytest.raises(ValueError):
        audit.JsonlSink("x.jsonl", fsync="sometimes")
    with pytest.raises(ValueError):
        audit.SqliteSink("x.db", on_failure="drop")
    with pytest.raises(TypeError):
        _engine(object())


def test_close_right_after_a_decision_delivers_it():
    """close() immediately after evaluate() still hands the decision to the sink: the writer
    looks at its queue again when close() arrives between its idle check and its exit (a race
    that used to send the last decision to the spool file instead)."""
    for _ in range(200):
        sink = Collect()
        engine = _engine(sink)
        engine.evaluate("process_refund", {"amount": 1}, **REFUND)
        engine.close()
        assert len(sink.events) == 1
