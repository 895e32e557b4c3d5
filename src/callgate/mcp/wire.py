"""Framing for newline-delimited JSON-RPC: one strict reading of each line, and one encoding
of each message that no peer can split differently.

The proxy stands between two parties that parse the same bytes, and every difference
between their parsers is a way to run a call nobody decided. So nothing is relayed as the
bytes that came in:

- `decode(line)`: exactly one JSON value per line, read by orjson (which refuses invalid
  UTF-8, lone surrogates, NaN/Infinity literals and numbers that overflow a double);
  integers beyond 64 bits, which orjson would turn into doubles, are read again exactly, so
  `18446744073709551617` stays that integer.
- `encode(msg)`: orjson's compact form, which escapes every control character in strings
  and puts no whitespace between tokens, with the three non-ASCII characters that some
  readers take as line ends (U+0085 NEL, U+2028, U+2029: Python's `str.splitlines()`,
  JavaScript's line terminators) escaped as well. What one peer sees as one line, every
  peer sees as one line.

A message that cannot be encoded (nested deeper than orjson writes, a value JSON cannot
carry) raises WireError: it is refused, never passed on as read.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..values import DIGITS_AS_NINES as _DIGITS_AS_NINES
from ..values import LONG_RUN as _LONG_RUN
from ..values import dumps_exact, loads_exact

_loads, _dumps = orjson.loads, orjson.dumps

MAX_MESSAGE = 64 * 1024 * 1024   # bytes in one message; larger ones are refused

# U+0085, U+2028 and U+2029 in UTF-8: inside strings only (outside them JSON is ASCII)
_SEPARATORS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


class WireError(ValueError):
    """A line that is not exactly one JSON value, or a message that cannot be written."""


def decode(line: bytes) -> Any:
    """The one JSON value on `line` (its line end may be there or not), integers exact;
    WireError otherwise."""
    try:
        value = _loads(line)
        if _LONG_RUN in line.translate(_DIGITS_AS_NINES):   # values.loads_exact, inlined (every message)
            value = loads_exact(line)
    except (ValueError, RecursionError) as exc:
        raise WireError(f"not valid JSON ({exc})") from None
    return value


def encode(msg: Any) -> bytes:
    """The message as one line's content (no line end), safe for every line splitter."""
    try:
        out = _dumps(msg)
    except orjson.JSONEncodeError:
        try:
            out = dumps_exact(msg)   # integers beyond 64 bits, written exactly
        except (orjson.JSONEncodeError, RecursionError) as exc:
            raise WireError(f"the message cannot be written as JSON ({exc})") from None
    except RecursionError as exc:
        raise WireError(f"the message cannot be written as JSON ({exc})") from None
    if out.isascii():   # the common case: nothing to escape (the separators are not ASCII)
        return out
    for raw, escaped in _SEPARATORS:
        out = out.replace(raw, escaped)
    return out


def lenient_id(line: bytes) -> Any:
    """The "id" of a line that `decode` refused, read as leniently as a careless peer would
    (lone surrogates, 1e400): only to tell which request an unreadable answer was for, so
    that request can be answered with an error instead of waiting. None when not even that."""
    try:
        value = json.loads(line.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError):
        return None
    return value.get("id") if isinstance(value, dict) else None
