"""The playground's server without a browser: what it serves (the package's own files, nothing
from elsewhere), what it compiles and explains, and what it refuses (requests not addressed
to 127.0.0.1 at its port, cross-origin or non-JSON POSTs, unbounded or malformed bodies),
always as a JSON error and never a traceback; and `callgate playground`'s own errors."""

from __future__ import annotations

import base64
import http.client
import json
import re
import socket
import subprocess
import sys
import time
from importlib import resources
from typing import Any, Iterator, Optional

import pytest

from callgate import Engine, examples
from callgate.playground_cli import ASSETS, MAX_BODY, PlaygroundServer, start_playground
from support.cli import invoke


@pytest.fixture(scope="module")
def server() -> Iterator[PlaygroundServer]:
    s = start_playground("crm", 0)
    yield s
    s.shutdown()
    s.server_close()


def request(server: PlaygroundServer, method: str, path: str, body: Optional[bytes] = None,
            headers: Optional[dict[str, str]] = None) -> tuple[int, dict[str, str], bytes]:
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def post(server: PlaygroundServer, path: str, value: Any) -> tuple[int, Any]:
    status, _, body = request(server, "POST", path, json.dumps(value).encode(),
                              {"Content-Type": "application/json"})
    return status, json.loads(body)


def test_serves_the_package_files_only_from_itself(server):
    """Every asset is the package's file byte for byte (the wasm module and callgate.mjs the
    npm package ships), under a CSP that allows nothing but the page's own origin; no asset
    names another host."""
    assert server.server_address[0] == "127.0.0.1"
    for path, (name, kind) in ASSETS.items():
        status, headers, body = request(server, "GET", path)
        assert status == 200, path
        assert body == resources.files("callgate").joinpath(name).read_bytes()
        assert headers["content-type"] == kind
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert "connect-src 'self'" in headers["content-security-policy"]
        if kind.startswith(("text/html", "text/javascript", "text/css")):
            text = body.decode()
            assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", text, re.I), f"{path} names another host"
    status, headers, body = request(server, "GET", "/nope")
    assert status == 404 and json.loads(body) == {"error": "no such page: /nope"}


def test_start_document_has_the_policy_examples_and_scenes(server):
    """/api/start: the policy to edit (the file's text as it is), the bundled examples and
    the CRM demo's scenes."""
    status, _, body = request(server, "GET", "/api/start")
    start = json.loads(body)
    assert status == 200
    assert start["policy"] == examples.policy_path("crm").read_text(encoding="utf-8")
    assert set(start["examples"]) == set(examples.EXAMPLES)
    assert start["scenes"] == examples.cases("crm")
    assert {"agent", "manager", "admin"} <= {c["role"] for c in start["scenes"]}


def test_compile_returns_the_engines_blob_or_located_errors(server):
    """/api/compile: a valid policy is the blob the engine compiles (warnings placed in the
    text); a typo, a JSON syntax error and a YAML one are errors at their line and column,
    with no blob."""
    text = examples.policy_path("crm").read_text(encoding="utf-8")
    status, out = post(server, "/api/compile", {"policy": text})
    assert status == 200 and out["ok"] is True
    assert base64.b64decode(out["blob"]) == Engine.from_dict(examples.policy("crm")).blob
    assert all(w["line"] for w in out["warnings"])

    at = text.index('"roles"', text.index('"rules"'))
    typo = text[:at] + '"rols"' + text[at + len('"roles"'):]
    line, column = text[:at].count("\n") + 1, at - text.rfind("\n", 0, at)
    status, out = post(server, "/api/compile", {"policy": typo})
    assert status == 200 and out["ok"] is False and "blob" not in out
    assert {"level": "error", "location": "rules[0].rols", "message": "unknown key 'rols'",
            "line": line, "column": column} in out["errors"]

    status, out = post(server, "/api/compile", {"policy": '{\n  "version": "1",\n  "rules": [,]\n}'})
    assert out["ok"] is False and out["errors"][0]["line"] == 3 and out["errors"][0]["column"] == 13

    status, out = post(server, "/api/compile", {"policy": "version: 1\nrules: [\n", "format": "yaml"})
    assert out["ok"] is False and out["errors"][0]["line"] is not None


def test_explain_gives_the_tree_of_the_engines_decision(server):
    """/api/explain: the rule/condition tree with the engine's decision and reason; a request
    the engine refuses is an error in the answer, not a failure of the server."""
    text = examples.policy_path("crm").read_text(encoding="utf-8")
    call = {"tool": "process_refund", "role": "agent", "args": {"amount": 800}}
    status, out = post(server, "/api/explain", {"policy": text, **call})
    d = Engine.from_dict(examples.policy("crm")).evaluate("process_refund", {"amount": 800}, role="agent")
    assert status == 200 and out["agrees"] is True
    assert (out["decision"], out["rule"], out["reason"]) == (d.decision, d.rule, d.reason)
    assert out["rules"][0]["condition"]["label"] == "Arguments.amount <= 500"
    status, out = post(server, "/api/explain", {"policy": "{", **call})
    assert status == 200 and "error" in out


@pytest.mark.parametrize("headers, body, status, message", [
    ({"Host": "attacker.example:80", "Content-Type": "application/json"}, b"{}", 403, "answers only requests for 127.0.0.1"),
    ({"Origin": "http://attacker.example", "Content-Type": "application/json"}, b"{}", 403, "cross-origin"),
    ({"Content-Type": "text/plain"}, b"{}", 415, "application/json"),
    ({"Content-Type": "application/x-www-form-urlencoded"}, b"policy=x", 415, "application/json"),
    ({"Content-Type": "application/json"}, b"{\"policy\": ", 400, "not JSON"),
    ({"Content-Type": "application/json"}, b"[1]", 400, "JSON object"),
    ({"Content-Type": "application/json"}, b'{"policy": 7}', 400, "policy: expected str"),
    ({"Content-Type": "application/json"}, b'{"policy": "{}", "semantics": "lax"}', 400, "semantics strict or perso"),
])
def test_refuses_what_is_not_its_own_json(server, headers, body, status, message):
    """A rebound host name, another origin, a form or text body, malformed JSON and fields of
    the wrong type are refused with the status and a one-line JSON error."""
    got, _, answer = request(server, "POST", "/api/compile", body, headers)
    assert got == status
    assert message in json.loads(answer)["error"]


def test_get_with_a_rebound_host_is_refused(server):
    """A page of another site whose name was rebound to 127.0.0.1 cannot read the playground."""
    status, _, body = request(server, "GET", "/api/start", headers={"Host": "evil.example:8765"})
    assert status == 403 and "127.0.0.1" in json.loads(body)["error"]


def test_bodies_are_bounded_and_need_a_length(server):
    """A body announced beyond 1 MiB is refused before it is read; no Content-Length is 411;
    an unknown call is 404."""
    port = server.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /api/compile HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
                  f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(f"POST /api/compile HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n\r\n".encode())
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 411")
    status, out = post(server, "/api/nothing", {})
    assert status == 404 and out == {"error": "no such call: /api/nothing"}


def test_command_line_errors_are_one_line():
    """`callgate playground` with a missing file or a bad port: one error line, exit 2."""
    r = invoke("playground", "/no/such/policy.json")
    assert r.exit_code == 2 and r.exception is None
    assert r.stderr.strip().splitlines() == ["error: /no/such/policy.json: cannot read policy file: No such file or directory"]
    r = invoke("playground", "--port", "70000")
    assert r.exit_code == 2 and "a port is 0-65535" in r.stderr


def test_command_serves_on_127_0_0_1_until_stopped(tmp_path):
    """`callgate playground POLICY --port N` prints its URL and serves the given policy's text."""
    policy = tmp_path / "p.json"
    policy.write_text(json.dumps(examples.policy("spec")), encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "callgate", "playground", str(policy), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith(f"callgate playground: http://127.0.0.1:{port}/")
        deadline = time.monotonic() + 10
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/api/start")
                start = json.loads(conn.getresponse().read())
                conn.close()
                break
            except ConnectionRefusedError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert start["policy"] == policy.read_text(encoding="utf-8")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
