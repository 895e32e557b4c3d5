"""Waiting for a human without losing the call (docs/mcp.md, "Approval windows"): the
session core with a hand-driven clock. A held call with a progress token gets progress
keep-alives and the whole approval window of its tool's tier; one without is denied a
little before the client's own timeout would cut it off; on 2026-07-28 the window is how
long the requestState stays valid. Also the request-state format against forgeries."""

from __future__ import annotations

import orjson
import pytest

from callgate import Engine
from callgate.mcp import approval_state
from callgate.mcp.elevate import Elevation
from callgate.mcp.gate import Gate, Identity
from callgate.mcp.session import Session, ToClient, ToServer

pytest.importorskip("cryptography")

POLICY = {"version": "w", "default_action": "Deny", "tools": ["wipe", "note"], "roles": ["r"],
          "tool_tiers": {"wipe": "destructive"},
          "rules": [{"tool_name": "wipe", "roles": ["r"], "effect": "elevate", "approvals": 1},
                    {"tool_name": "note", "roles": ["r"], "effect": "elevate", "approvals": 1}]}
WHO = Identity("r", {}, "alice")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _session(**elevation):
    clock = Clock()
    s = Session(Gate(Engine.from_dict(POLICY)), WHO, elevation=Elevation(**elevation), clock=clock)
    init = {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"elicitation": {"form": {}}},
        "clientInfo": {"name": "t", "version": "0"}}}
    s.from_client(orjson.dumps(init))
    s.from_server(orjson.dumps({"jsonrpc": "2.0", "id": 0, "result": {"protocolVersion": "2025-11-25",
                                                                      "capabilities": {}, "serverInfo": {}}}))
    return s, clock


def _call(s, id_, tool, token=None):
    params = {"name": tool, "arguments": {}}
    if token is not None:
        params["_meta"] = {"progressToken": token}
    return s.from_client(orjson.dumps({"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}))


def _client(actions):
    return [orjson.loads(a.data) for a in actions if isinstance(a, ToClient)]


def test_keepalives_hold_a_call_with_a_progress_token_for_its_tiers_window():
    """A held call with a progressToken: a progress notification under the client's token
    every keep-alive interval, and the destructive tier's own window (600 s) rather than the
    client-wait bound; at the end of the window it is denied saying so."""
    s, clock = _session(windows={"destructive": 600.0}, keepalive=15.0, client_wait=60.0)
    (ask,) = _client(_call(s, 1, "wipe", token="tok"))
    assert ask["method"] == "elicitation/create"
    beats = []
    for _ in range(40):
        clock.now += 15.0
        beats += _client(s.tick())
    progress = [m for m in beats if m.get("method") == "notifications/progress"]
    assert len(progress) == 39 and all(m["params"]["progressToken"] == "tok" for m in progress)
    assert [m["params"]["progress"] for m in progress] == list(range(1, 40))
    (denied,) = [m for m in beats if m.get("id") == 1]
    assert "no answer within 600 s" in denied["result"]["content"][0]["text"]


def test_a_call_without_a_progress_token_is_bounded_by_the_client_wait():
    """Without a progressToken no keep-alive can reach the client: the call is denied at
    client_wait minus a margin (55 s of 60), with a reason that says how to wait longer; a
    tool of a tier without its own window uses --elicit-timeout."""
    s, clock = _session(timeout=300.0, client_wait=60.0)
    _call(s, 1, "note")
    clock.now += 54.0
    assert _client(s.tick()) == []
    clock.now += 1.5
    out = _client(s.tick())
    (denied,) = [m for m in out if m.get("id") == 1]
    text = denied["result"]["content"][0]["text"]
    assert "no answer within 55 s" in text and "send a progressToken to wait up to 300 s" in text


def test_approved_in_the_window_the_call_is_forwarded_once():
    """The user's yes within the window forwards the call to the server (once)."""
    s, clock = _session(keepalive=15.0)
    (ask,) = _client(_call(s, 1, "wipe", token=7))
    clock.now += 20.0
    s.tick()
    out = s.from_client(orjson.dumps({"jsonrpc": "2.0", "id": ask["id"],
                                      "result": {"action": "accept", "content": {"approve": True}}}))
    sent = [orjson.loads(a.data) for a in out if isinstance(a, ToServer)]
    assert [m.get("method") for m in sent] == ["tools/call"] and sent[0]["id"] == 1


@pytest.mark.parametrize("bad", [
    {"windows": {"destructive": 0}}, {"windows": {"destructive": "600"}}, {"keepalive": -1},
    {"client_wait": -5}, {"timeout": 0},
])
def test_bad_windows_are_refused(bad):
    """A non-positive or non-numeric window, or a negative keep-alive or client wait, is a
    ValueError (the CLI turns it into a one-line message)."""
    with pytest.raises(ValueError):
        Elevation(**bad)


def _binding(**change):
    base = dict(tool="wipe", args={"a": 1}, role="r", principal="alice", agent={}, resource={}, policy="p" * 64,
                required=1)
    base.update(change)
    return approval_state.Binding.of(**base)


def test_request_states_open_once_for_their_call_only():
    """A state opens once for its own call; for another tool, arguments, principal, policy or
    count it is refused with that reason (and not spent); a state of another key is foreign;
    a flipped payload bit is altered; after its window it is expired; junk is malformed."""
    clock = Clock()
    states = approval_state.ApprovalStates(clock=clock)
    token = states.issue(_binding(), 10.0)
    for change, why in [({"tool": "note"}, "different tool"), ({"args": {"a": 2}}, "different arguments"),
                        ({"principal": "bob"}, "different principal"), ({"policy": "q" * 64}, "different policy"),
                        ({"required": 2}, "different approval count")]:
        refused = states.open(token, _binding(**change))
        assert isinstance(refused, approval_state.Refused) and refused.reason == why
    assert isinstance(states.open(token, _binding()), approval_state.Opened)
    assert states.open(token, _binding()).reason == "already used"
    other = approval_state.ApprovalStates(clock=clock).issue(_binding(), 10.0)
    assert states.open(other, _binding()).reason == approval_state.FOREIGN
    fresh = states.issue(_binding(), 10.0)
    head, body, tag = fresh.split(".")
    raw = bytearray(approval_state._unb64(body))
    raw[raw.index(b'"n":1') + 4] = ord("2")
    forged = f"{head}.{approval_state._b64(bytes(raw))}.{tag}"
    assert states.open(forged, _binding(required=2)).reason == approval_state.ALTERED
    clock.now += 10.0
    assert states.open(fresh, _binding()).reason == approval_state.EXPIRED
    for junk in ["", "cgs1", "cgs1.a.b", "cgs1.!!.AA", 5, None, "cgs1." + "A" * 70000, fresh + "="]:
        assert states.open(junk, _binding()).reason == approval_state.MALFORMED


def _ts_front(tmp_path, *options: str):
    import subprocess

    from support.mcp_helpers import PY, free_port
    from support.mcp_http import AUD, ISS, Keys, wait_http

    keys = Keys()
    (tmp_path / "pub.pem").write_bytes(keys.public_pem)
    policy = {"version": "ts", "default_action": "Deny", "roles": ["manager"], "tools": ["delete_customer"],
              "rules": [{"tool_name": "delete_customer", "roles": ["manager"], "effect": "elevate", "approvals": 1}]}
    (tmp_path / "policy.json").write_bytes(orjson.dumps(policy))
    port = free_port()
    proc = subprocess.Popen([PY, "-m", "callgate", "proxy", "--policy", str(tmp_path / "policy.json"),
                             "--listen", f"127.0.0.1:{port}", "--jwt-key", str(tmp_path / "pub.pem"),
                             "--jwt-issuer", ISS, "--jwt-audience", AUD, "--role-claim", "cg_role", *options,
                             "--", PY, "-m", "callgate.demo.crm_server", "--journal", str(tmp_path / "crm.jsonl")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}/mcp"
    wait_http(url, proc)
    return proc, url, keys.token(cg_role="manager")


def _ts_approval(url, token, delay_ms, timeout_ms, how):
    import subprocess

    from support.mcp_helpers import NODE_BIN, node_server

    if not (NODE_BIN / "mcp-server-everything").exists():
        node_server("mcp-server-everything")   # installs tests/node, or skips (fails in CI)
    run = subprocess.run(["node", str(NODE_BIN.parents[1] / "ts_approval.mjs"), url, token, "delete_customer",
                          '{"customer_id": "C-2038"}', str(delay_ms), str(timeout_ms), how],
                         capture_output=True, text=True, timeout=120, cwd=str(NODE_BIN.parents[1]))
    assert run.stdout.strip(), run.stderr[-2000:]
    return orjson.loads(run.stdout.splitlines()[-1])


def test_typescript_client_waits_out_a_slow_approval_on_progress_keepalives(tmp_path):
    """The TypeScript SDK client (it speaks 2025-11-25 at most) through the HTTP front, with a
    3 s request timeout reset on progress: the user approves after 5 s, the proxy's
    keep-alives (every 1 s) keep the call alive, and the approved call runs."""
    from support.mcp_helpers import journal_lines, stop

    proc, url, token = _ts_front(tmp_path, "--approval-keepalive", "1", "--client-wait", "3")
    try:
        got = _ts_approval(url, token, 5000, 3000, "progress")
    finally:
        stop(proc)
    assert "error" not in got, got
    assert got["asked"] == 1 and got["progress"] >= 3 and not got["isError"], got
    assert got["text"] == "C-2038 (Globex Ltd) deleted"
    assert [e["args"] for e in journal_lines(tmp_path / "crm.jsonl")] == [{"customer_id": "C-2038"}]


def test_typescript_client_without_progress_reads_the_denial_before_its_timeout(tmp_path):
    """The same client without progress (no keep-alive can reach it) and an 8 s timeout, with
    --client-wait 6: the proxy denies the call at 5.4 s saying why and how to wait longer, so
    the client reads a denial instead of timing out; the late yes runs nothing."""
    from support.mcp_helpers import journal_lines, stop

    proc, url, token = _ts_front(tmp_path, "--client-wait", "6")
    try:
        got = _ts_approval(url, token, 10000, 8000, "plain")
    finally:
        stop(proc)
    assert "error" not in got, got
    assert got["isError"] and "no answer within 5.4 s" in got["text"] and "progressToken" in got["text"], got
    assert journal_lines(tmp_path / "crm.jsonl") == []


def test_a_stateless_lane_mints_ids_and_cancels_what_the_client_abandons():
    """The HTTP front's stateless lane (2026 requests, no session): two clients may use the
    same id, so the server gets ids the proxy mints and the answers go back under the
    client's; closing a request's stream (Session.abandoned) sends the server
    notifications/cancelled for the proxy's id, and its late answer reaches nobody."""
    env = {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}
    gate = Gate(Engine.from_dict(dict(POLICY, rules=[{"tool_name": "note", "roles": ["r"]}])))
    s = Session(gate, stateless=True)
    s.upstream_era = "modern"
    a, b = object(), object()
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "note", "arguments": {}, "_meta": env}}
    (first,) = s.client_message(call, WHO, origin=a)
    (second,) = s.client_message(call, WHO, origin=b)
    ids = [orjson.loads(x.data)["id"] for x in (first, second)]
    assert ids[0] != ids[1] and all(i.startswith("cg-") for i in ids)
    (cancel,) = s.abandoned(a)
    assert orjson.loads(cancel.data)["params"]["requestId"] == ids[0]
    assert s.server_message({"jsonrpc": "2.0", "id": ids[0], "result": {"content": []}}) == []
    (answer,) = s.server_message({"jsonrpc": "2.0", "id": ids[1], "result": {"content": []}})
    assert answer.origin is b and orjson.loads(answer.data)["id"] == 1
