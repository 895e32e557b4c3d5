"""The proxy and the audit trail together: `callgate proxy --audit SOURCE` records every
decided tools/call, and the log it leaves verifies."""

from __future__ import annotations

import subprocess

import orjson

from test_mcp_support import PY, Wire, proxy_argv


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
