"""JSON-RPC 2.0 framing helpers shared by the stdio and HTTP fronts.

Messages are decoded with orjson (which refuses invalid UTF-8 and lone surrogates) and
classified without being rebuilt: a relay forwards the bytes it read unless it has a
reason to change them.
"""

from __future__ import annotations

from typing import Any, Optional

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INTERNAL_ERROR = -32603
SERVER_GONE = -32000   # implementation-defined server error range
TOO_LARGE = -32001

_dumps = orjson.dumps


def error(id_: Any, code: int, message: str) -> bytes:
    """A JSON-RPC error response, serialized (no trailing newline)."""
    return _dumps({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}})


def result(id_: Any, value: Any) -> bytes:
    return _dumps({"jsonrpc": "2.0", "id": id_, "result": value})


def id_key(id_: Any) -> Optional[tuple]:
    """A hashable key for a request id that keeps 1 and "1" apart (both are valid, distinct
    ids). None for ids JSON-RPC does not allow (null, objects, arrays, booleans)."""
    if isinstance(id_, str):
        return ("s", id_)
    if isinstance(id_, int) and not isinstance(id_, bool):
        return ("n", id_)
    if isinstance(id_, float) and id_.is_integer():  # 1.0 is the same id as 1 to most peers
        return ("n", int(id_))
    return None


def kind(msg: Any) -> str:
    """'request', 'notification', 'response' or 'invalid' for one decoded message."""
    if not isinstance(msg, dict):
        return "invalid"
    if "method" in msg:
        if not isinstance(msg["method"], str):
            return "invalid"
        return "request" if "id" in msg else "notification"
    if "id" in msg and ("result" in msg or "error" in msg):
        return "response"
    return "invalid"
