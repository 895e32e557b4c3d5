"""JSON values as callgate reads and writes them, exactly: a leaf module (it imports nothing
of callgate but the exception types), shared by the engines, the approvals, the audit trail
and the MCP wire, which must agree on what a value is.

orjson reads integers beyond 64 bits as doubles (18446744073709551617 becomes
1.8446744073709552e+19) and refuses to write them. JSON carries them, the C core compares
them exactly, and an MCP server must receive the very argument the policy saw, so:

- `loads_exact` reads with orjson (strict: invalid UTF-8, lone surrogates, NaN/Infinity and
  numbers that overflow a double are refused), and when the text holds a run of 19 digits
  or more reads it again with the standard library, whose integers are exact;
- `dumps_exact` writes with orjson and falls back to writing such integers as they are.
"""

from __future__ import annotations

import math
from typing import Any, Union

import orjson

from .errors import RequestError

# an integer of 19 digits or more may not fit orjson's 64-bit integers (a 19-digit negative
# may not either); the run may also sit in a string or a mantissa, which only costs a re-read.
# Found by mapping every digit to "9" and looking for 19 of them: an eighth of a regex's time.
DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9999999999")
LONG_RUN = b"9" * 19
_INT_MIN, _UINT_END = -(1 << 63), 1 << 64


def loads_exact(data: bytes) -> Any:
    """The JSON value in `data`, integers exact. Raises orjson.JSONDecodeError (a ValueError)
    for anything orjson refuses."""
    value = orjson.loads(data)
    if LONG_RUN in data.translate(DIGITS_AS_NINES):
        import json   # (rare: imported when needed)

        value = json.loads(data)  # orjson has vouched for the syntax: this only keeps integers exact
    return value


def big_ints_as_fragments(value: Any) -> Any:
    """`value` with every integer orjson cannot write replaced by its exact JSON text."""
    if type(value) is int and not _INT_MIN <= value < _UINT_END:
        return orjson.Fragment(str(value).encode())
    if isinstance(value, dict):
        return {k: big_ints_as_fragments(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [big_ints_as_fragments(v) for v in value]
    return value


def dumps_exact(value: Any, option: int = 0) -> bytes:
    """orjson.dumps(value, option=option), integers beyond 64 bits written exactly. Raises
    orjson.JSONEncodeError for what JSON cannot carry."""
    try:
        return orjson.dumps(value, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(big_ints_as_fragments(value), option=option)


def has_nonfinite(value: Any) -> bool:
    """Whether a Python value holds NaN or an infinity (orjson writes them as null, so a
    request is searched for them only when its JSON holds a null)."""
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(has_nonfinite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_nonfinite(v) for v in value)
    return False


def pack_slow(request: tuple[Any, ...], first_error: Exception) -> bytes:
    """A request orjson refused: integers beyond 64 bits written exactly (every other value
    keeps orjson's text, which reasons quote); what JSON cannot carry (sets, bytes, strings
    that are not Unicode) is a RequestError."""
    try:
        return orjson.dumps(big_ints_as_fragments(request))
    except orjson.JSONEncodeError as exc:
        if isinstance(exc.__cause__, UnicodeEncodeError) or "str is not valid UTF-8" in str(exc):
            raise RequestError("a string that is not valid Unicode", "utf8") from exc
        raise RequestError(f"a value JSON cannot carry: {first_error}", "unserializable") from exc


def encode_text(text: Union[str, bytes], what: str) -> bytes:
    """JSON text given as str or bytes, as UTF-8 bytes; RequestError for anything else."""
    if isinstance(text, bytes):
        return text
    if isinstance(text, str):
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(f"{what} is not valid Unicode", "utf8") from None
    raise RequestError(f"{what} must be str or bytes, not {type(text).__name__}", "type")
