"""Coverage-guided fuzzing of the proxy's session core (atheris), both directions:

- bytes from the client, cut into lines as the stdio proxy reads them (at LF): every line
  the session sends the server is one canonical JSON message with no character any line
  splitter ends a line at, and every tools/call a str.splitlines() reader finds in what it
  sends was allowed by the gate, once per decision;
- bytes from the server: every line the session sends the client is canonical the same way,
  and every response it relays answers a request the client made and was still waiting for.

    python fuzz/fuzz_proxy_framing.py -max_total_time=600 fuzz/corpus-framing

(scripts/fuzz.sh runs it beside the C harnesses; `pip install atheris`.)
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    import orjson

    from callgate import Engine
    from callgate.mcp.gate import Gate, Identity
    from callgate.mcp.session import Session, ToClient, ToServer
    from callgate.values import dumps_exact, loads_exact

POLICY = {"version": "fuzz", "default_action": "Deny", "tools": ["view", "delete"], "roles": ["agent"],
          "rules": [{"tool_name": "view", "roles": ["agent"], "condition": None}]}
LINE_ENDS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
ENGINE = Engine.from_dict(POLICY)


class RecordingGate(Gate):
    def __init__(self) -> None:
        super().__init__(ENGINE)
        self.allowed: list[bytes] = []

    def decide(self, params, identity):
        verdict = super().decide(params, identity)
        if verdict.allowed:
            self.allowed.append(canonical_call(params))
        return verdict


def canonical_call(params) -> bytes:
    params = params if isinstance(params, dict) else {}
    return dumps_exact([params.get("name"), params.get("arguments") or {}], option=orjson.OPT_SORT_KEYS)


def check_line(data: bytes) -> None:
    orjson.loads(data)
    text = data.decode("utf-8")
    assert not any(c in text for c in LINE_ENDS), data


def found_by_splitlines(data: bytes) -> list:
    out = []
    for piece in data.decode("utf-8").splitlines():
        try:
            out.append(loads_exact(piece.encode()))
        except ValueError:
            pass
    return out


def client_side(data: bytes) -> None:
    gate = RecordingGate()
    session = Session(gate, Identity("agent"))
    sent = []
    for line in data.split(b"\n"):
        for action in session.from_client(line):
            assert isinstance(action, (ToClient, ToServer))
            if isinstance(action, ToServer):
                check_line(action.data)
                sent.append(action.data)
            else:
                check_line(action.data)
    allowed = list(gate.allowed)
    for msg in found_by_splitlines(b"\n".join(sent)):
        if isinstance(msg, dict) and msg.get("method") == "tools/call" and "id" in msg:
            call = canonical_call(msg.get("params"))
            assert call in allowed, msg
            allowed.remove(call)


def server_side(data: bytes) -> None:
    session = Session(RecordingGate(), Identity("agent"))
    asked = set()
    for i in range(4):  # a few requests in flight, so that some answers are to something
        session.from_client(orjson.dumps({"jsonrpc": "2.0", "id": i, "method": "ping"}))
        asked.add(i)
    for line in data.split(b"\n"):
        for action in session.from_server(line):
            check_line(action.data)
            if isinstance(action, ToClient):
                msg = orjson.loads(action.data)
                if isinstance(msg, dict) and "method" not in msg and ("result" in msg or "error" in msg):
                    assert msg.get("id") in asked, msg   # each request is answered once
                    asked.discard(msg.get("id"))


def TestOneInput(data: bytes) -> None:
    if not data:
        return
    if data[0] & 1:
        client_side(data[1:])
    else:
        server_side(data[1:])


def main() -> None:
    atheris.Setup(sys.argv, TestOneInput)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
