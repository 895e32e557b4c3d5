"""A minimal MCP server over stdio, written for the proxy's benchmark and tests: raw
newline-delimited JSON-RPC, no SDK, answering each request at once.

    python bench/raw_responder.py

Environment (all optional):
  RAW_TOOLS_FILE  JSON list of tool definitions, re-read on every tools/list (tests change
                  it to play a server that changes a tool after approval)
  RAW_PAGE_SIZE   tools per tools/list page (cursor = index of the next tool)
  RAW_JOURNAL     file that gets one line per message received: what actually reached it
Methods beyond MCP's: echo (result = params), hang (never answered), crash (exit 3
without answering), stderr (write params.text to stderr), notify_changed (sends
notifications/tools/list_changed).
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
    else:
        result = {}
    return orjson.dumps({"jsonrpc": "2.0", "id": id_, "result": result})


def main() -> None:
    out = sys.stdout.buffer
    journal = open(os.environ["RAW_JOURNAL"], "ab", buffering=0) if os.environ.get("RAW_JOURNAL") else None
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
