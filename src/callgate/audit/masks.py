"""Field masks by JSON pointer (RFC 6901), applied to an event before it is hashed or written."""

from __future__ import annotations

import json
import re
from typing import Any, Iterable, List

MASK = "***"


def parse_pointer(pointer: str) -> List[str]:
    """'/args/card~1number' -> ['args', 'card/number']. The empty pointer is refused: masking
    the whole event would leave nothing to audit."""
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer must start with '/': {pointer!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in pointer[1:].split("/")]


def apply_masks(event: dict[str, Any], pointers: Iterable[tuple[str, List[str]]],
                originals: list[Any] | None = None) -> List[str]:
    """Replace each pointed-to value that exists with MASK, in place; return the pointers
    that matched (an absent field is not masked and not listed). The values taken out are
    appended to `originals`, if given (to scrub them from text that quotes them)."""
    masked = []
    for text, parts in pointers:
        node: Any = event
        for part in parts[:-1]:
            node = _child(node, part)
            if node is None:
                break
        else:
            last = parts[-1]
            key: Any = last if isinstance(node, dict) else int(last) if last.isdigit() else None
            if (isinstance(node, dict) and last in node) or (isinstance(node, list) and key is not None
                                                              and key < len(node)):
                if originals is not None:
                    originals.append(node[key])
                node[key] = MASK
                masked.append(text)
    return masked


def scrub(text: str, values: list[Any]) -> str:
    """Remove masked values from free text (a reason quotes the value a check saw, e.g.
    'Arguments.card = "4111..." is not ...'): strings in their JSON (quoted) form, and as
    plain text when at least 3 characters long; numbers as whole tokens."""
    for value in values:
        if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
            continue
        if isinstance(value, str):
            text = text.replace(json.dumps(value, ensure_ascii=False), MASK)
            if len(value) >= 3:
                text = text.replace(value, MASK)
        else:
            for form in {json.dumps(value), str(value)}:
                text = re.sub(r"(?<![\w.])" + re.escape(form) + r"(?![\w.])", MASK, text)
    return text


def _child(node: Any, part: str) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and part.isdigit() and int(part) < len(node):
        return node[int(part)]
    return None
