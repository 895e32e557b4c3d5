"""Tool-definition pins: protection against a server that changes a tool after approval.

A pin is the SHA-256 of the canonical JSON of the parts of a definition the model reads
and the client validates against: name, description, inputSchema, annotations (sorted
keys, no whitespace). The pins file is small JSON an operator can review and commit:

    {"version": 1, "tools": {"view_customer": {"digest": "sha256:…", "approved_at": "…"}}}

The proxy re-reads it when it changes on disk, so `callgate pins approve` takes effect
without a restart.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

import orjson

PINNED_FIELDS = ("name", "description", "inputSchema", "annotations")


def tool_digest(tool: Mapping[str, Any]) -> str:
    """"sha256:<hex>" of a tool definition's pinned fields (name, description, inputSchema,
    annotations), as canonical JSON."""
    canonical = {k: tool[k] for k in PINNED_FIELDS if k in tool}
    return "sha256:" + hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).hexdigest()


def pin_problem(tool: str, pinned: Optional[Mapping[str, Any]], digest: Optional[str]) -> Optional[str]:
    """Why `digest` is not the approved definition `pinned` of `tool` (None when it is): one
    answer for every pin store (file, PostgreSQL)."""
    if pinned is None:
        return f"tool {tool!r} has no approved definition (approve it with `callgate pins approve`)"
    if digest is None:
        return f"the current definition of tool {tool!r} is unknown (the server did not list it)"
    if pinned.get("digest") != digest:
        return (f"the definition of tool {tool!r} changed since it was approved "
                f"({str(pinned.get('digest'))[:19]}… -> {digest[:19]}…); approve it again with `callgate pins approve`")
    return None


class PinStore:
    """The approved digests, backed by a file (missing file = nothing approved yet)."""

    def __init__(self, path: os.PathLike[str] | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._stamp: Any = None
        self._pins: dict[str, dict[str, Any]] = {}
        self._reload()

    def _reload(self) -> None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self._stamp, self._pins = None, {}
            return
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp == self._stamp:
            return
        data = orjson.loads(self.path.read_bytes())
        tools = data.get("tools") if isinstance(data, dict) else None
        if not isinstance(tools, dict):
            raise ValueError(f"{self.path}: not a pins file (no \"tools\" object)")
        self._pins, self._stamp = tools, stamp

    def pins(self) -> dict[str, dict[str, Any]]:
        """tool name -> its pin ({"digest", "approved_at"}), as the file holds them now."""
        with self._lock:
            self._reload()
            return dict(self._pins)

    def problem(self, tool: str, digest: Optional[str]) -> Optional[str]:
        """None when `digest` is the approved definition of `tool`; otherwise why not."""
        try:
            pinned = self.pins().get(tool)
        except (OSError, ValueError) as exc:  # an unreadable pins file approves nothing
            return f"the pins file cannot be read ({exc})"
        return pin_problem(tool, pinned, digest)

    def approve(self, tools: Iterable[Mapping[str, Any]], only: Optional[set[str]] = None) -> list[tuple[str, str, str]]:
        """Pin the given definitions (all, or those named in `only`); returns
        (name, old digest or '', new digest) for each pinned tool. Written atomically."""
        with self._lock:
            self._reload()
            pins = dict(self._pins)
            changes = []
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            for tool in tools:
                name = tool.get("name")
                if not isinstance(name, str) or (only is not None and name not in only):
                    continue
                digest = tool_digest(tool)
                old = pins.get(name, {}).get("digest", "")
                pins[name] = {"digest": digest, "approved_at": now if old != digest else pins[name].get("approved_at", now)}
                changes.append((name, old, digest))
            data = orjson.dumps({"version": 1, "tools": pins}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".pins-")
            with os.fdopen(fd, "wb") as f:
                f.write(data + b"\n")
            os.replace(tmp, self.path)  # readers see the old file or the new, never half
            self._stamp = None
            return changes


class InlinePins:
    """The pins a policy carries itself (`"pins": {tool: digest}`): PinStore's questions over
    a fixed mapping (approving means editing the policy)."""

    def __init__(self, digests: Mapping[str, str]) -> None:
        self._pins = {name: {"digest": digest} for name, digest in digests.items()}

    def pins(self) -> dict[str, dict[str, Any]]:
        """tool name -> its pin ({"digest"})."""
        return dict(self._pins)

    def problem(self, tool: str, digest: Optional[str]) -> Optional[str]:
        """None when `digest` is the pinned definition of `tool`; otherwise why not."""
        pinned = self._pins.get(tool)
        if pinned is None:
            return f"tool {tool!r} has no pin in the policy: its definition was never reviewed"
        if digest is None:
            return f"the current definition of tool {tool!r} is unknown (the server did not list it)"
        if pinned["digest"] != digest:
            return (f"tool definition changed since review: {tool!r} is {digest[:19]}…, the policy pins "
                    f"{pinned['digest'][:19]}…")
        return None


def policy_pins(compiled: Any, policy_path: Optional[str]) -> Any:
    """The pins a policy requires (`"pins"`): a PinStore for a file (relative to the policy
    file's directory), InlinePins for a mapping, None when it requires none. ValueError (one
    line) when the file is named but not there."""
    pins = getattr(compiled.policy, "pins", None)
    if pins is None:
        return None
    if isinstance(pins, dict):
        return InlinePins(pins)
    path = Path(pins)
    if not path.is_absolute() and policy_path is not None:
        path = Path(policy_path).parent / path
    if not path.is_file():
        raise ValueError(f"the policy requires pins from {path}, which does not exist (callgate pins approve)")
    return PinStore(path)
