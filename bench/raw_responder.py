"""A minimal MCP server over stdio, written for the proxy's benchmark and tests: raw
newline-delimited JSON-RPC, no SDK, answering each request at once.

    python bench/raw_responder.py

Environment (all optional):
  RAW_TOOLS_FILE  JSON list of tool definitions, re-read on every tools/list (tests change
                  it to play a server that changes a tool after approval)
  RAW_PAGE_SIZE   tools per tools/list page (cursor = index of the next tool)
  RAW_JOURNAL     file that gets one line per message received: what actually reached it
  RAW_TOOLS_BYTES raw JSON text put verbatim as the "tools" of every tools/list answer (tests
                  use it to play a server that answers with JSON the proxy refuses)
  RAW_SPLITLINES  if set, split the input into lines the way Python's str.splitlines() does
                  (CR, VT, FF, FS, GS, RS, NEL, U+2028, U+2029 end a line too), as some
                  servers do; each piece is journalled (JSON-quoted) and answered if it
                  parses, and a piece that does not parse is skipped
It answers server/discover as a server of the 2026-07-28 revision (RAW_LEGACY set: with
"Method not found", as a server of the handshake revisions only). Methods beyond MCP's: echo (result = params), hang (never answered), crash (exit 3
without answering), stderr (write params.text to stderr), notify_changed (sends
notifications/tools/list_changed), ask_client (sends the client an elicitation/create
request with the id params.id and the message params.message, then answers {}), raw (writes
params.line verbatim as a line of its own, then answers {}).
"""

from __future__ import annotations

import os
import sys

import orjson

DEFAULT_TOOLS = [{"name": n, "description": f"{n} tool", "inputSchema": {"type": "object"}}
                 for n in ("view_customer", "update_customer", "delete_customer", "process_refund",
                           "access_pii", "export_data", "bulk_update")]


def tools() -> list:
    path = os.environ.get("RAW_TOOLS_FILE")
    if not path:
        return DEFAULT_TOOLS
    with open(path, "rb") as f:
        return orjson.loads(f.read())


def answer(msg: dict, out) -> bytes | None:
    method = msg.get("method")
    if method is None or "id" not in msg:
        if method == "notify_changed":
            out.write(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n')
        return None
    id_, params = msg["id"], msg.get("params") or {}
    if method == "tools/call":
        result = {"content": [{"type": "text", "text": "ok " + str(params.get("name"))}]}
    elif method == "tools/list" and os.environ.get("RAW_TOOLS_BYTES"):
        return (b'{"jsonrpc":"2.0","id":' + orjson.dumps(id_) + b',"result":{"tools":'
                + os.environ["RAW_TOOLS_BYTES"].encode("utf-8", "surrogatepass") + b"}}")
    elif method == "tools/list":
        all_tools, size = tools(), int(os.environ.get("RAW_PAGE_SIZE", "0"))
        start = int(params.get("cursor") or 0)
        if size:
            result = {"tools": all_tools[start:start + size]}
            if start + size < len(all_tools):
                result["nextCursor"] = str(start + size)
        else:
            result = {"tools": all_tools}
    elif method == "initialize":
        result = {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                  "capabilities": {"tools": {"listChanged": True}}, "serverInfo": {"name": "raw", "version": "0"}}
    elif method == "server/discover" and os.environ.get("RAW_LEGACY"):   # a server of the handshake only
        return orjson.dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": "Method not found"}})
    elif method == "server/discover":   # it speaks 2026-07-28 too (and answers every request the same way)
        result = {"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {"listChanged": True}},
                  "resultType": "complete", "ttlMs": 0, "cacheScope": "private"}
    elif method == "echo":
        result = params
    elif method == "hang":
        return None
    elif method == "crash":
        sys.stdout.flush()
        os._exit(3)
    elif method == "stderr":
        sys.stderr.write(str(params.get("text")) + "\n")
        sys.stderr.flush()
        result = {}
    elif method == "notify_changed":
        out.write(b'{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n')
        result = {}
    elif method == "ask_client":
        out.write(orjson.dumps({"jsonrpc": "2.0", "id": params.get("id"), "method": "elicitation/create",
                                "params": {"message": params.get("message", "?"), "requestedSchema": {
                                    "type": "object", "properties": {"approve": {"type": "boolean"}}}}}) + b"\n")
        result = {}
    elif method == "raw":
        out.write(str(params.get("line")).encode("utf-8", "surrogatepass") + b"\n")
        result = {}
    else:
        result = {}
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "result": result})


_LINE_ENDS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def splitlines_main(out, journal) -> None:
    """Read stdin as text and take every str.splitlines() boundary as the end of a message."""
    import codecs
    import json

    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    buffered = ""
    while True:
        chunk = sys.stdin.buffer.read1(1 << 16)
        buffered += decoder.decode(chunk, final=not chunk)
        pieces = buffered.splitlines(keepends=True)
        buffered = pieces.pop() if chunk and pieces and pieces[-1][-1] not in _LINE_ENDS else ""
        for piece in pieces:
            line = piece.rstrip(_LINE_ENDS)
            if not line.strip():
                continue
            if journal is not None:
                journal.write(json.dumps(line).encode() + b"\n")
            try:
                msg = orjson.loads(line.encode("utf-8", "surrogateescape"))
            except orjson.JSONDecodeError:
                continue
            reply = answer(msg, out) if isinstance(msg, dict) else None
            if reply is not None:
                out.write(reply + b"\n")
            out.flush()
        if not chunk:
            return


def main() -> None:
    out = sys.stdout.buffer
    journal = open(os.environ["RAW_JOURNAL"], "ab", buffering=0) if os.environ.get("RAW_JOURNAL") else None
    if os.environ.get("RAW_SPLITLINES"):
        splitlines_main(out, journal)
        return
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        if journal is not None:
            journal.write(line if line.endswith(b"\n") else line + b"\n")
        msg = orjson.loads(line)
        if isinstance(msg, list):
            replies = [r for r in (answer(m, out) for m in msg) if r is not None]
            if replies:
                out.write(b"[" + b",".join(replies) + b"]\n")
        else:
            reply = answer(msg, out)
            if reply is not None:
                out.write(reply + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
