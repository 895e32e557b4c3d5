"""Framing on the stdio proxy (docs/mcp.md, "Threat model"): what a server receives is
exactly what the proxy parsed and decided, one message per line, in a form no reader splits
differently; and arguments reach the server as the policy saw them.

The attack these pin (hold-the-line finding 1): a client message that is one harmless
notification to a reader that ends lines at LF, but three lines to a reader that also ends
them at CR (the Python SDK reads stdin with universal newlines), the middle one a tools/call
nobody decided. Real servers read with several splitters, so each is tried: the Python SDK
(the CRM server, mcp-server-git, mcp-server-time), Node's (server-everything), and a server
that splits the way str.splitlines() does.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callgate import Engine
from callgate.mcp.gate import Gate, Identity
from callgate.mcp.session import Session, ToClient, ToServer
from callgate.values import dumps_exact, loads_exact
from support.mcp_helpers import (PY, Wire, journal_lines, node_server, proxy_argv, split_like_python,
                                  tapped, text_of)

LINE_ENDS = "\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"   # what str.splitlines() ends a line at, besides LF


def _call(id_, tool, args):
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": {"name": tool, "arguments": args}}


def smuggling(inner: dict, sep: str = "\r") -> bytes:
    """One valid JSON-RPC notification for an LF reader, with `inner` on a line of its own
    for a reader that also ends lines at `sep` (CR is JSON whitespace, so orjson accepts it)."""
    return ('{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":"t","progress":1,"x":'
            + sep + json.dumps(inner, ensure_ascii=False) + sep + "}}").encode("utf-8", "surrogatepass")


def _init(w: Wire, version: str = "2025-06-18") -> None:
    w.answer_to(0, "initialize", {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}})
    w.send({"jsonrpc": "2.0", "method": "notifications/initialized"})


def _received_requests(data: bytes) -> list[dict]:
    """The requests a str.splitlines() reader finds in `data`."""
    out = []
    for line in split_like_python(data):
        try:
            msg = loads_exact(line.encode("utf-8", "surrogateescape"))
        except ValueError:
            continue
        if isinstance(msg, dict) and "method" in msg:
            out.append(msg)
    return out


def _assert_canonical_lines(data: bytes) -> None:
    """Every line the server got is one JSON value with no character any reader ends a line at."""
    for line in data.split(b"\n")[:-1]:
        orjson.loads(line)
        text = line.decode("utf-8")
        assert not any(c in text for c in LINE_ENDS), line


# ---------------------------------------------------------------- real servers


def test_a_call_smuggled_in_a_notification_never_reaches_the_crm_server(tmp_path):
    """CRM server (Python SDK, universal newlines): a notification carrying a CR-wrapped
    delete_customer, sent by a client whose role may not delete, deletes nothing, leaves no
    decision, and a smuggled tools/list is never answered to the client unfiltered."""
    journal = tmp_path / "crm.jsonl"
    server, received, _ = tapped(tmp_path, "crm", [PY, "-m", "callgate.demo.crm_server", "--journal", str(journal)])
    argv = [PY, "-m", "callgate", "proxy", "--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099",
            "--audit", str(tmp_path / "audit.jsonl"), "--", *server]
    with Wire(argv) as w:
        _init(w)
        w.send(smuggling(_call(99, "delete_customer", {"customer_id": "C-1042"})))
        w.send(smuggling({"jsonrpc": "2.0", "id": 77, "method": "tools/list"}))
        reply = w.call(1, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042"}})
        assert text_of(reply).startswith("C-1042: Acme Corp"), reply   # still there
        assert w.close() == 0
    assert [e["tool"] for e in journal_lines(journal)] == ["view_customer"]
    sent = received.read_bytes()
    _assert_canonical_lines(sent)
    assert [m.get("id") for m in _received_requests(sent) if m["method"] in ("tools/call", "tools/list")] == [1]
    records = [orjson.loads(line)["record"] for line in (tmp_path / "audit.jsonl").read_bytes().splitlines()]
    assert [r["tool"] for r in records if r["kind"] == "decision"] == ["view_customer"]


def test_mcp_server_git_creates_no_branch_for_a_smuggled_call(tmp_path):
    """mcp-server-git (Python SDK): a reader allowed git_status and git_log only smuggles
    git_create_branch around CR; no branch appears and the server never received the call."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    pytest.importorskip("mcp_server_git", reason="mcp-server-git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["-c", "user.email=t@example.test", "-c", "user.name=t", "commit", "-q",
                                  "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, timeout=30)
    policy = tmp_path / "git.json"
    policy.write_bytes(orjson.dumps({
        "version": "git", "default_action": "Deny", "tools": ["git_status", "git_log", "git_create_branch"],
        "roles": ["reader"], "rules": [{"tool_name": "git_status", "roles": ["reader"]},
                                       {"tool_name": "git_log", "roles": ["reader"]}]}))
    server, received, _ = tapped(tmp_path, "git", [PY, "-m", "mcp_server_git", "--repository", str(repo)])
    with Wire([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "reader", "--", *server]) as w:
        _init(w)
        w.send(smuggling(_call(99, "git_create_branch", {"repo_path": str(repo), "branch_name": "smuggled"})))
        reply = w.call(1, "tools/call", {"name": "git_status", "arguments": {"repo_path": str(repo)}})
        assert not reply["result"].get("isError"), reply
        assert w.close() == 0
    branches = subprocess.run(["git", "-C", str(repo), "branch", "--list", "smuggled"], capture_output=True,
                              text=True, check=True, timeout=30).stdout
    assert branches == ""
    assert [m["params"]["name"] for m in _received_requests(received.read_bytes()) if m["method"] == "tools/call"] \
        == ["git_status"]


def test_mcp_server_time_never_answers_a_smuggled_denied_tool(tmp_path):
    """mcp-server-time (Python SDK): a role allowed only convert_time smuggles
    get_current_time; the server never receives it and never answers it."""
    pytest.importorskip("mcp_server_time", reason="mcp-server-time is not installed")
    policy = tmp_path / "time.json"
    policy.write_bytes(orjson.dumps({
        "version": "time", "default_action": "Deny", "tools": ["get_current_time", "convert_time"],
        "roles": ["converter"], "rules": [{"tool_name": "convert_time", "roles": ["converter"]}]}))
    server, received, sent = tapped(tmp_path, "time", [PY, "-m", "mcp_server_time", "--local-timezone", "UTC"])
    with Wire([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "converter", "--", *server]) as w:
        _init(w)
        w.send(smuggling(_call(99, "get_current_time", {"timezone": "UTC"})))
        reply = w.call(1, "tools/call", {"name": "convert_time", "arguments": {
            "source_timezone": "UTC", "time": "12:00", "target_timezone": "Europe/Paris"}})
        assert not reply["result"].get("isError"), reply
        denied = w.call(2, "tools/call", {"name": "get_current_time", "arguments": {"timezone": "UTC"}})
        assert text_of(denied).startswith("Denied by policy: get_current_time")
        assert w.close() == 0
    assert [m["params"]["name"] for m in _received_requests(received.read_bytes()) if m["method"] == "tools/call"] \
        == ["convert_time"]
    answered = [orjson.loads(line).get("id") for line in sent.read_bytes().splitlines() if line.strip()]
    assert 99 not in answered


def test_server_everything_receives_one_canonical_line_per_message(tmp_path):
    """@modelcontextprotocol/server-everything (Node, splits at LF): the smuggling notification
    reaches it as one canonical line (no CR anywhere), and a denied tool smuggled inside it
    is never answered."""
    everything = node_server("mcp-server-everything")
    policy = tmp_path / "everything.json"
    policy.write_bytes(orjson.dumps({
        "version": "e", "default_action": "Deny", "tools": ["echo", "get-sum"], "roles": ["user"],
        "rules": [{"tool_name": "echo", "roles": ["user"]}]}))
    server, received, sent = tapped(tmp_path, "everything", everything)
    with Wire([PY, "-m", "callgate", "proxy", "--policy", str(policy), "--role", "user", "--", *server]) as w:
        _init(w)
        w.send(smuggling(_call(99, "get-sum", {"a": 1, "b": 2})))
        reply = w.answer_to(1, "tools/call", {"name": "echo", "arguments": {"message": "hi\r\u2028there"}})
        assert reply["result"]["content"][0]["text"] == "Echo: hi\r\u2028there"
        assert w.close() == 0
    data = received.read_bytes()
    _assert_canonical_lines(data)
    assert [m["params"]["name"] for m in _received_requests(data) if m["method"] == "tools/call"] == ["echo"]
    assert 99 not in [orjson.loads(line).get("id") for line in sent.read_bytes().splitlines() if line.strip()]


@pytest.mark.parametrize("sep", ["\r", "\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"])
def test_a_str_splitlines_server_sees_every_message_as_one_line(tmp_path, sep):
    """A server that ends lines wherever str.splitlines() does: whatever separator the client
    hides in whitespace or in strings, the server sees exactly the messages the proxy
    decided (the denied call never; the allowed call's string argument intact)."""
    journal = tmp_path / "journal.jsonl"
    argv = proxy_argv("--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099")
    with Wire(argv, env={"RAW_JOURNAL": str(journal), "RAW_SPLITLINES": "1"}) as w:
        w.send(smuggling(_call(99, "delete_customer", {"customer_id": "C-1042"})))
        note = f"a{sep}{{{orjson.dumps(_call(98, 'delete_customer', {})).decode()}}}{sep}b"
        reply = w.call(1, "tools/call", {"name": "view_customer", "arguments": {"customer_id": "C-1042", "note": note}})
        assert text_of(reply) == "ok view_customer"
        assert w.close() == 0
    lines = [orjson.loads(orjson.loads(line).encode("utf-8", "surrogateescape"))
             for line in journal.read_bytes().splitlines()]
    calls = [m for m in lines if m.get("method") == "tools/call"]
    assert [(c["id"], c["params"]["arguments"]["note"]) for c in calls] == [(1, note)]


def test_integers_beyond_64_bits_reach_the_server_exactly(tmp_path):
    """An argument 18446744073709551617 reaches the server as that integer (not the double
    1.8446744073709552e+19), and the audit trail records the value the policy saw."""
    journal = tmp_path / "journal.jsonl"
    argv = proxy_argv("--policy", "crm", "--role", "agent", "--agent-attr", "user_id=agt-099",
                      "--audit", str(tmp_path / "audit.jsonl"))
    line = (b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"view_customer","arguments":'
            b'{"customer_id":"C-1042","n":18446744073709551617,"m":-99999999999999999999999,"f":0.1}}}')
    with Wire(argv, env={"RAW_JOURNAL": str(journal)}) as w:
        w.send(line)
        assert text_of(w.recv()) == "ok view_customer"
        assert w.close() == 0
    assert journal.read_bytes().splitlines() == [line]
    (record,) = [line for line in (tmp_path / "audit.jsonl").read_bytes().splitlines() if b'"kind":"decision"' in line]
    assert b'"n":18446744073709551617' in record and b'"m":-99999999999999999999999' in record


# ---------------------------------------------------------------- the property, on the session core

POLICY = {"version": "p", "default_action": "Deny", "tools": ["view", "delete"], "roles": ["agent"],
          "rules": [{"tool_name": "view", "roles": ["agent"], "condition": None}]}


def _canonical_call(msg: dict) -> bytes:
    params = msg.get("params") or {}
    return dumps_exact([params.get("name"), params.get("arguments") or {}], option=orjson.OPT_SORT_KEYS)


class _Recording(Gate):
    """A gate that remembers every call it allowed."""

    def __init__(self) -> None:
        super().__init__(Engine.from_dict(POLICY))
        self.allowed: list[bytes] = []

    def decide(self, params, identity):
        verdict = super().decide(params, identity)
        if verdict.allowed:
            self.allowed.append(_canonical_call({"params": params}))
        return verdict


_strings = st.text(alphabet=st.sampled_from(list("ab\"\\{}[]:, ") + list(LINE_ENDS) + ["\n", "\t", "\x00", "\ud800", "\udfff"]),
                   max_size=12)
_values = st.recursive(st.none() | st.booleans() | st.integers(-2**70, 2**70) | _strings,
                       lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strings, inner, max_size=3),
                       max_leaves=8)
_calls = st.builds(lambda i, t, a: _call(i, t, a), st.integers(0, 50) | _strings,
                   st.sampled_from(["view", "delete"]), st.dictionaries(_strings, _values, max_size=3))
_messages = _calls | st.builds(lambda c: {"jsonrpc": "2.0", "method": "notifications/x", "params": {"c": c}}, _calls) \
    | st.builds(lambda v: {"jsonrpc": "2.0", "id": 1, "result": v}, _values)


def _written(value, ws) -> str:
    """JSON text of `value` with whitespace drawn from `ws()` around every token."""
    if isinstance(value, dict):
        items = [ws() + json.dumps(k, ensure_ascii=False) + ws() + ":" + _written(v, ws) for k, v in value.items()]
        return ws() + "{" + ",".join(items) + ws() + "}" + ws()
    if isinstance(value, list):
        return ws() + "[" + ",".join(_written(v, ws) for v in value) + ws() + "]" + ws()
    if isinstance(value, int) and not isinstance(value, bool):
        return ws() + str(value) + ws()
    return ws() + json.dumps(value, ensure_ascii=False) + ws()


@st.composite
def _streams(draw):
    """Bytes a hostile client might send: messages written with CR, LF, tabs and spaces (and
    stray line separators) between tokens, raw garbage, and smuggling notifications."""
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            parts.append(draw(st.binary(max_size=40)))
        elif choice == 1:
            parts.append(smuggling(draw(_calls), draw(st.sampled_from(["\r", "\r\n", " "]))))
        else:
            msg = draw(_messages)
            pool = [" ", "", "\t", "\r", "\n", "\r\n"] + ([draw(st.sampled_from(list(LINE_ENDS)))] if choice == 3 else [])
            text = _written(msg, lambda: draw(st.sampled_from(pool)))
            parts.append(text.encode("utf-8", "surrogatepass"))
        parts.append(draw(st.sampled_from([b"\n", b"", b"\r\n"])))
    return b"".join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_streams())
def test_no_byte_stream_makes_the_server_run_an_undecided_call(stream):
    """Random byte streams from the client, split into lines as the stdio proxy reads them:
    every line the session sends the server is one canonical JSON message, and every
    tools/call any str.splitlines() reader can find in what it sends was allowed by the gate."""
    gate = _Recording()
    session = Session(gate, Identity("agent"))
    to_server = []
    for line in stream.split(b"\n"):
        for action in session.from_client(line):
            assert isinstance(action, (ToClient, ToServer))
            if isinstance(action, ToServer):
                to_server.append(action.data)
    data = b"".join(d + b"\n" for d in to_server)
    _assert_canonical_lines(data)
    allowed = list(gate.allowed)
    for msg in _received_requests(data):
        if msg.get("method") == "tools/call":
            assert _canonical_call(msg) in allowed, msg
            allowed.remove(_canonical_call(msg))


def test_the_proxy_process_refuses_what_is_not_one_message_per_line(tmp_path):
    """Through the real process: two messages on one line, a message cut by a CR-only line
    end, and a line of garbage each get a parse error; nothing of them reaches the server."""
    journal = tmp_path / "journal.jsonl"
    with Wire(proxy_argv("--policy", "crm", "--role", "agent"), env={"RAW_JOURNAL": str(journal)}) as w:
        w.send(b'{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}')
        assert w.recv()["error"]["code"] == -32700
        w.send(b'{"jsonrpc":"2.0","id":3,"method":"ping"}\r{"jsonrpc":"2.0","id":4,"method":"ping"}')
        assert w.recv()["error"]["code"] == -32700
        w.send(b"\x00\x01garbage")
        assert w.recv()["error"]["code"] == -32700
        assert w.call(5, "ping")["id"] == 5
        assert w.close() == 0
    assert [m.get("id") for m in journal_lines(journal)] == [5]

