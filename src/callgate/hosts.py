"""Host configurations: put one MCP server of an agent host's config behind `callgate proxy`
and take it back out (`callgate wrap` / `callgate unwrap`).

The hosts' files name each server under `mcpServers` (Claude Desktop, Cursor) or `servers`
(VS Code), as `{"command": ..., "args": [...], "env": {...}, "cwd": ...}` (VS Code adds
`"type": "stdio"`). Wrapping replaces that one entry, in the text, by one that starts the
proxy with the server's command as a JSON option (`--server-command`, no `--` for a host's
argument parser to take), keeping `env`, `cwd` and `type`; the original entry's exact text
rides along in the environment (`CALLGATE_WRAPPED`, base64), so unwrapping puts back the
very bytes that were there. Nothing else of the file changes: the entry is located by a
scan of the JSON text and spliced, never re-serialized with the rest.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from .errors import CallgateError

WRAPPED_ENV = "CALLGATE_WRAPPED"
SECTIONS = ("mcpServers", "servers")


class HostConfigError(CallgateError):
    """A host configuration callgate cannot wrap or unwrap; str() says why in one line."""


@dataclass(frozen=True)
class Span:
    """Where a JSON value is in the text: [start, end), and the column of its start."""

    start: int
    end: int
    column: int


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def _members(text: str, start: int) -> dict[str, Span]:
    """The members of the JSON object whose `{` is at `start`: key -> the span of its value."""
    decoder = json.JSONDecoder()
    if start >= len(text) or text[start] != "{":
        raise HostConfigError("expected a JSON object")
    out: dict[str, Span] = {}
    i = _skip_ws(text, start + 1)
    if i < len(text) and text[i] == "}":
        return out
    while True:
        if i >= len(text) or text[i] != '"':
            raise HostConfigError(f"expected a key at byte {i}")
        key, i = decoder.raw_decode(text, i)
        i = _skip_ws(text, i)
        if i >= len(text) or text[i] != ":":
            raise HostConfigError(f"expected ':' at byte {i}")
        i = _skip_ws(text, i + 1)
        value_start = i
        _, i = decoder.raw_decode(text, i)
        if key in out:
            raise HostConfigError(f"the key {key!r} appears twice")
        line_start = text.rfind("\n", 0, value_start) + 1
        out[key] = Span(value_start, i, value_start - line_start)
        i = _skip_ws(text, i)
        if i < len(text) and text[i] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if i < len(text) and text[i] == "}":
            return out
        raise HostConfigError(f"expected ',' or '}}' at byte {i}")


def _locate(text: str, server: str) -> tuple[str, Span]:
    """The section holding `server` and the span of its entry."""
    top = _members(text, _skip_ws(text, 0))
    sections = [s for s in SECTIONS if s in top]
    if not sections:
        raise HostConfigError(f"no {' or '.join(SECTIONS)} object: not an MCP host configuration")
    for section in sections:
        entries = _members(text, top[section].start)
        if server in entries:
            return section, entries[server]
    names = sorted(n for s in sections for n in _members(text, top[s].start))
    raise HostConfigError(f"no server {server!r} (the file has: {', '.join(names) or 'none'})")


def _indent_unit(text: str) -> int:
    """The file's indentation step (spaces), for the entry written in its place."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" ")
        if stripped and len(line) > len(stripped):
            return len(line) - len(stripped)
    return 2


def _render(entry: dict[str, Any], column: int, unit: int) -> str:
    """The entry as JSON in the file's indentation, starting at `column`."""
    body = json.dumps(entry, indent=unit, ensure_ascii=False)
    return body.replace("\n", "\n" + " " * column)


def wrap_text(text: str, server: str, *, policy: str, role: Optional[str] = None,
              proxy_args: Sequence[str] = (), python: Optional[str] = None) -> str:
    """`text` with `server`'s entry starting it through `callgate proxy --policy POLICY
    [--role ROLE] [proxy_args]`; HostConfigError for a file or entry it cannot wrap."""
    _section, span = _locate(text, server)
    original = text[span.start:span.end]
    entry = json.loads(original)
    if not isinstance(entry, dict) or not isinstance(entry.get("command"), str):
        raise HostConfigError(f"server {server!r} has no command: only stdio servers can be wrapped")
    env = entry.get("env", {})
    if not isinstance(env, dict):
        raise HostConfigError(f"server {server!r}: env is not an object")
    if WRAPPED_ENV in env:
        raise HostConfigError(f"server {server!r} is wrapped already (callgate unwrap restores it)")
    args = entry.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise HostConfigError(f"server {server!r}: args is not a list of strings")
    command = [entry["command"], *args]
    proxy = ["-m", "callgate", "proxy", "--policy", policy]
    if role is not None:
        proxy += ["--role", role]
    proxy += [*proxy_args, "--server-command", json.dumps(command, ensure_ascii=False)]
    wrapped: dict[str, Any] = {}
    for key, value in entry.items():   # the original's keys, in its order, with the proxy in place
        if key == "command":
            wrapped["command"] = python or sys.executable
            wrapped["args"] = proxy
        elif key not in ("args", "env"):
            wrapped[key] = value
    wrapped["env"] = {**env, WRAPPED_ENV: base64.b64encode(original.encode()).decode()}
    return text[:span.start] + _render(wrapped, span.column, _indent_unit(text)) + text[span.end:]


def unwrap_text(text: str, server: str) -> str:
    """`text` with `server`'s entry as it was before `wrap_text` (the exact bytes)."""
    _section, span = _locate(text, server)
    entry = json.loads(text[span.start:span.end])
    carried = entry.get("env", {}).get(WRAPPED_ENV) if isinstance(entry, dict) and isinstance(entry.get("env"), dict) \
        else None
    if not isinstance(carried, str):
        raise HostConfigError(f"server {server!r} is not wrapped by callgate")
    try:
        original = base64.b64decode(carried, validate=True).decode()
        json.loads(original)
    except (ValueError, UnicodeDecodeError):
        raise HostConfigError(f"server {server!r}: its {WRAPPED_ENV} is not an entry callgate wrapped") from None
    return text[:span.start] + original + text[span.end:]


def _rewrite(path: Path, change: Any) -> None:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise HostConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise HostConfigError(f"{path}: not UTF-8") from None
    try:
        new = change(text)
    except json.JSONDecodeError as exc:
        raise HostConfigError(f"{path}: not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except HostConfigError as exc:
        raise HostConfigError(f"{path}: {exc}") from None
    tmp = path.with_name(path.name + ".callgate-tmp")
    try:
        tmp.write_bytes(new.encode("utf-8"))
        tmp.replace(path)   # atomic: the host never reads half a file
    except OSError as exc:
        raise HostConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None


def wrap_file(path: Path, server: str, **options: Any) -> None:
    """Wrap `server` in the host configuration file `path` (see wrap_text), atomically."""
    _rewrite(path, lambda text: wrap_text(text, server, **options))


def unwrap_file(path: Path, server: str) -> None:
    """Undo wrap_file for `server` in `path`, atomically."""
    _rewrite(path, lambda text: unwrap_text(text, server))
