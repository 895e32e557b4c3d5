"""JSON-RPC 2.0 message helpers shared by the session core and the fronts: what kind of
message a decoded value is, a hashable key for its id, and the error and result messages
the proxy answers with (wire.py reads and writes the bytes).
"""

from __future__ import annotations

from typing import Any, Optional, Union

import orjson

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INTERNAL_ERROR = -32603
SERVER_GONE = -32000   # implementation-defined server error range
TOO_LARGE = -32001

_dumps = orjson.dumps

# a request id as a dict key: ("s", a string id) or ("n", an integer id); see id_key
IdKey = tuple[str, Union[str, int]]


def error_message(id_: Any, code: int, message: str) -> dict[str, Any]:
    """A JSON-RPC error response."""
    return {"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}}


def result_message(id_: Any, value: Any) -> dict[str, Any]:
    """A JSON-RPC result response."""
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: Any, code: int, message: str) -> bytes:
    """A JSON-RPC error response, serialized (no trailing newline)."""
    return _dumps(error_message(id_, code, message))


def result(id_: Any, value: Any) -> bytes:
    """A JSON-RPC result response, serialized (no trailing newline)."""
    return _dumps(result_message(id_, value))


def id_key(id_: Any) -> Optional[IdKey]:
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
