"""The argument-check examples (src/callgate/examples/filesystem_*.json, fetch_*.json,
docs/arguments.md) through the proxy, with the real servers: @modelcontextprotocol/
server-filesystem serves reads under the policy's root and never receives a call whose path
climbs out of it or shares its prefix; mcp-server-fetch is listed and its private-address
and plain-http calls are denied before they reach it (there is no internet here, so no
allowed fetch is made). Also: each example's cases pass on the native engine and the wasm
module."""

from __future__ import annotations

import json

import orjson
import pytest

from callgate import Engine, examples
from support.backends import evaluate_case
from support.mcp_helpers import PY, Wire, node_server, tapped, text_of


def _init(w: Wire) -> None:
    w.call(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                             "clientInfo": {"name": "t", "version": "1"}})
    w.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def _calls(received: bytes) -> list[dict]:
    out = []
    for line in received.splitlines():
        if line.strip():
            m = orjson.loads(line)
            if m.get("method") == "tools/call":
                out.append(m["params"])
    return out


@pytest.mark.parametrize("name", ["filesystem", "fetch"])
def test_example_cases_hold_on_both_backends(name: str) -> None:
    """Every case of the example holds on the native engine and on the wasm module."""
    policy = json.loads(examples.path(f"{name}_policy.json").read_text())
    cases = json.loads(examples.path(f"{name}_cases.json").read_text())["cases"]
    engines = [Engine.from_dict(policy)]
    wasm = pytest.importorskip("callgate.wasm")
    engines.append(wasm.WasmEngine.from_dict(policy))
    for engine in engines:
        for case in cases:
            d = evaluate_case(engine, case)
            assert (d.decision, d.reason) == (case["expect"]["decision"], case["expect"]["reason"]), case["name"]


def test_filesystem_server_reads_only_under_the_root(tmp_path) -> None:
    """The filesystem example, its root moved to a temporary tree: a read under the root is
    served; `..` out of it, a sibling sharing its prefix and a relative path are denied by the
    proxy and never reach the server."""
    data, sibling = tmp_path / "data", tmp_path / "database"
    data.mkdir()
    sibling.mkdir()
    (data / "report.csv").write_text("a,b\n")
    (sibling / "dump.sql").write_text("secret\n")
    policy = json.loads(examples.path("filesystem_policy.json").read_text().replace("/srv/data", str(data)))
    policy_file = tmp_path / "fs.json"
    policy_file.write_text(json.dumps(policy))
    server, received, _ = tapped(tmp_path, "fs", node_server("mcp-server-filesystem") + [str(tmp_path)])
    with Wire([PY, "-m", "callgate", "proxy", "--policy", str(policy_file), "--role", "agent", "--", *server]) as w:
        _init(w)
        ok = w.call(1, "tools/call", {"name": "read_text_file", "arguments": {"path": str(data / "report.csv")}})
        assert text_of(ok) == "a,b\n", ok
        for k, path in enumerate([str(data / ".." / "database" / "dump.sql"), str(sibling / "dump.sql"),
                                  "data/report.csv"], start=2):
            denied = w.call(k, "tools/call", {"name": "read_text_file", "arguments": {"path": path}})
            assert text_of(denied).startswith("Denied by policy: read_text_file"), denied
        assert w.close() == 0
    assert [c["arguments"]["path"] for c in _calls(received.read_bytes())] == [str(data / "report.csv")]


def test_fetch_server_is_listed_and_private_targets_are_denied(tmp_path) -> None:
    """mcp-server-fetch behind the fetch example: its tool is listed; the metadata address,
    loopback in hex, a userinfo trick and plain http are denied and never reach it."""
    pytest.importorskip("mcp_server_fetch", reason="mcp-server-fetch is not installed")
    server, received, _ = tapped(tmp_path, "fetch", [PY, "-m", "mcp_server_fetch"])
    policy = str(examples.path("fetch_policy.json"))
    with Wire([PY, "-m", "callgate", "proxy", "--policy", policy, "--role", "agent", "--", *server]) as w:
        _init(w)
        listed = w.call(1, "tools/list")
        assert [t["name"] for t in listed["result"]["tools"]] == ["fetch"]
        for k, url in enumerate(["https://169.254.169.254/latest/meta-data/", "https://0x7f.1/",
                                 "https://example.org@127.0.0.1/", "http://example.org/"], start=2):
            denied = w.call(k, "tools/call", {"name": "fetch", "arguments": {"url": url}})
            assert text_of(denied).startswith("Denied by policy: fetch"), denied
        assert w.close() == 0
    assert _calls(received.read_bytes()) == []
