"""The proxy and the audit trail together: `callgate proxy --audit SOURCE` records every
decided tools/call, and the log it leaves verifies."""

from __future__ import annotations

import subprocess

import orjson

from support.mcp_helpers import PY, Wire, proxy_argv


def test_proxy_records_every_decision(tmp_path):
    """An allowed and a denied call through the proxy end up in the JSONL log, in order,
    with their decisions and reasons; `callgate audit verify` passes on it; an unknown
    SOURCE is a one-line error."""
    log = tmp_path / "audit.jsonl"
    with Wire(proxy_argv("--policy", "crm", "--role", "agent", "--audit", str(log))) as wire:
        wire.initialize()
        allowed = wire.call(1, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"}})
        denied = wire.call(2, "tools/call", {"name": "delete_customer", "arguments": {"customer_id": "C-1042"}})
        assert "isError" not in allowed.get("result", {}) or not allowed["result"]["isError"]
        assert denied["result"]["isError"] is True
        assert wire.close() == 0
    events = []
    for line in log.read_bytes().splitlines():
        record = orjson.loads(line)
        body = record.get("record", record)
        body = orjson.loads(body) if isinstance(body, (str, bytes)) else body
        if body.get("tool"):
            events.append(body)
    assert [(e["tool"], e["decision"]) for e in events] == [("view_customer", "Allow"), ("delete_customer", "Deny")]
    assert events[1]["reason"].startswith("delete_customer denied for role 'agent'")
    verify = subprocess.run([PY, "-m", "callgate", "audit", "verify", str(log)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    bad = subprocess.run(proxy_argv("--policy", "crm", "--role", "agent", "--audit", str(tmp_path / "x.unknown")),
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
    assert bad.stderr.strip().startswith("error: --audit")
    assert "Traceback" not in bad.stderr


def _decisions(log) -> list[dict]:
    """The decision events of a JSONL trail that may end in a torn line (after SIGKILL)."""
    out = []
    for line in log.read_bytes().splitlines():
        try:
            record = orjson.loads(line)["record"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
        if record.get("kind") == "decision":
            out.append(record)
    return out


def test_every_call_the_server_ran_is_in_the_audit_trail_after_sigkill(tmp_path):
    """Durable mode (the proxy's default with --audit): a call reaches the server only after
    its decision is durable. 3,000 pipelined calls, the proxy killed with SIGKILL midway: every
    call the server received has its Allow decision in the trail."""
    import os
    import signal
    import threading

    from support.mcp_helpers import journal_lines

    log, journal = tmp_path / "audit.jsonl", tmp_path / "journal.jsonl"
    wire = Wire(proxy_argv("--policy", "crm", "--role", "agent", "--audit", str(log)),
                env={"RAW_JOURNAL": str(journal)})
    try:
        def send() -> None:
            try:
                for i in range(3000):
                    wire.send({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                               "params": {"name": "view_customer", "arguments": {"customer_id": f"C-{i}"}}})
            except (BrokenPipeError, OSError):
                pass   # the proxy is gone

        threading.Thread(target=send, daemon=True).start()
        for _ in range(500):
            assert wire.recv() is not None
        os.kill(wire.proc.pid, signal.SIGKILL)
        wire.proc.wait(timeout=20)
    finally:
        if wire.proc.poll() is None:
            wire.proc.kill()
    ran = [m["params"]["arguments"]["customer_id"] for m in journal_lines(journal) if m.get("method") == "tools/call"]
    recorded = {d["args"]["customer_id"] for d in _decisions(log) if d["decision"] == "Allow"}
    assert len(ran) >= 500
    assert set(ran) <= recorded, sorted(set(ran) - recorded)[:5]


def test_a_failing_audit_sink_stops_allowed_calls(tmp_path):
    """A sink that cannot write (here a trail on /dev/full, as with a full disk): an allowed
    call is denied at once with the reason and never reaches the server; one line on stderr."""
    import os

    from support.mcp_helpers import journal_lines

    log, journal = tmp_path / "audit.jsonl", tmp_path / "journal.jsonl"
    os.symlink("/dev/full", log)
    with Wire(proxy_argv("--policy", "crm", "--role", "agent", "--audit", str(log)),
              env={"RAW_JOURNAL": str(journal)}) as wire:
        for i in range(3):
            reply = wire.call(i, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"}})
            text = reply["result"]["content"][0]["text"]
            assert reply["result"]["isError"] is True
            # the first waits for the sink and learns it fails; the next are denied by the engine
            # itself, whose audit trail refuses decisions while its sink fails (on_failure=deny)
            assert text.startswith(("Denied by policy: the audit trail could not record this decision durably",
                                    "Denied by policy: the audit trail cannot record decisions")), text
        wire.close()
    assert [m for m in journal_lines(journal) if m.get("method") == "tools/call"] == []
    # the sink's failure is named on stderr; "a call was not forwarded" follows only when a call
    # was waiting as the sink failed (the writer's first record may fail before any call: under
    # load it does, and every call is then refused by the trail itself)
    assert b"callgate audit sink failing: OSError" in wire.stderr


def test_async_audit_mode_forwards_at_once(tmp_path):
    """--audit-mode async is the documented opt-out: the call is forwarded without waiting
    (with a sink that cannot write, it runs; the failure is logged)."""
    import os

    from support.mcp_helpers import journal_lines

    log, journal = tmp_path / "audit.jsonl", tmp_path / "journal.jsonl"
    os.symlink("/dev/full", log)
    with Wire(proxy_argv("--policy", "crm", "--role", "agent", "--audit", str(log), "--audit-mode", "async"),
              env={"RAW_JOURNAL": str(journal)}) as wire:
        reply = wire.call(1, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"}})
        assert reply["result"]["content"][0]["text"] == "ok view_customer"
        wire.close()
    assert [m["params"]["name"] for m in journal_lines(journal) if m.get("method") == "tools/call"] == ["view_customer"]
