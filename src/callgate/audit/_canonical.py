"""Canonical JSON: sorted keys, no insignificant whitespace, UTF-8.

The hash chain covers these exact bytes, so every writer must produce the same bytes for
the same event. orjson does this fast; the standard library is the fallback for integers
beyond 64 bits (which JSON can carry and orjson refuses) and produces the same layout."""

from __future__ import annotations

import json
from typing import Any

import orjson

from ..values import loads_exact

_SORT = orjson.OPT_SORT_KEYS


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes of `value`."""
    try:
        return orjson.dumps(value, option=_SORT)
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False, default=str).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """Parse JSON, integers beyond 64 bits exact (orjson would read them as doubles)."""
    return loads_exact(data.encode("utf-8") if isinstance(data, str) else data)
