"""The ready-made path resolver (docs/arguments.md, "Symlinks are not seen"): for the
arguments that name files, the real path on this machine and the zone it lies in, placed in
the call's resource attributes where a PathCheck or a StringCheck can read them.

PathCheck reads a path's text: `/srv/data/link/passwd` is under /srv/data even when `link`
points to /etc. A proxy in front of a server on the same machine (stdio) can look: for each
named argument it resolves the path with `os.path.realpath` (symlinks followed, `..` applied
after them, as the kernel does) and adds to the resource attributes

    {"paths": {FIELD: {"realpath": "/etc/passwd", "zone": "data" | null, "exists": true}}}

where the zone is the name of the longest configured root that the real path equals or lies
under (at a separator), or null. A policy then checks `ResourceAttributes` at
`/paths/path/realpath` with a PathCheck, or `/paths/path/zone` with a StringCheck.

An argument that is missing, not a string, empty or holding a NUL byte gets no entry: a
condition reading it is U (a deny over it denies, an allow does not grant). The resolver
reads the file system when the call is decided; the server opens the file later, so a
symlink swapped in between is not seen: a server that must not follow links out of a root
opens with `openat2(RESOLVE_BENEATH)` or equivalent. POSIX paths only.

    callgate proxy --policy P --role R --real-path path --path-zone data=/srv/data -- SERVER...
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

ATTRIBUTE = "paths"


def _pointer_tokens(pointer: str) -> list[str]:
    return [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]


def _read(args: Mapping[str, Any], field: str) -> Any:
    """The argument a field names: a top-level key, or a JSON Pointer (starting with /)."""
    if not field.startswith("/"):
        return args.get(field)
    value: Any = args
    for token in _pointer_tokens(field):
        if isinstance(value, dict):
            value = value.get(token)
        elif isinstance(value, list) and token.isdigit() and (token == "0" or not token.startswith("0")):
            index = int(token)
            value = value[index] if index < len(value) else None
        else:
            return None
    return value


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root if root.endswith("/") else root + "/")


class RealPaths:
    """A resolver for Gate / guard() / `callgate proxy --real-path`: `resolver(tool, args)`
    returns `{"paths": {FIELD: {"realpath", "zone", "exists"}}}` for the fields configured.

    `fields`: argument names, or JSON Pointers into the arguments (`/source/path`);
    `zones`: name -> root directory (resolved once, here); `base`: the directory relative
    paths are resolved against (default: the current directory, which is the stdio server's
    when the proxy starts it); `then`: another resolver whose attributes are kept beside
    these (it must not return a "paths" key of its own)."""

    def __init__(self, fields: Sequence[str], zones: Optional[Mapping[str, str]] = None,
                 base: Optional[str] = None, then: Optional[Callable[[str, Any], Any]] = None) -> None:
        if not fields:
            raise ValueError("name at least one argument holding a path")
        for field in fields:
            if not isinstance(field, str) or not field:
                raise ValueError("an argument name is a non-empty string")
        self.fields = tuple(dict.fromkeys(fields))
        self.base = os.path.realpath(base if base is not None else os.getcwd())
        roots: list[tuple[str, str]] = []
        for name, root in (zones or {}).items():
            if not name or not isinstance(root, str) or not os.path.isabs(root) or "\x00" in root:
                raise ValueError(f"zone {name!r}: a root is an absolute path, not {root!r}")
            roots.append((name, os.path.realpath(root)))
        # longest root first: the innermost zone names a path
        self.zones = tuple(sorted(roots, key=lambda nr: len(nr[1]), reverse=True))
        self.then = then

    def zone_of(self, real: str) -> Optional[str]:
        """The name of the innermost zone holding `real`, or None."""
        for name, root in self.zones:
            if _under(real, root):
                return name
        return None

    def resolve(self, value: Any) -> Optional[dict[str, Any]]:
        """The entry for one argument value, or None when it is not a path to resolve."""
        if not isinstance(value, str) or not value or "\x00" in value:
            return None
        real = os.path.realpath(os.path.join(self.base, value))
        return {"realpath": real, "zone": self.zone_of(real), "exists": os.path.lexists(real)}

    def __call__(self, tool: str, args: Any) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if self.then is not None:
            given = self.then(tool, args)
            if given is not None:
                if not isinstance(given, Mapping):
                    raise TypeError(f"the resolver returned {type(given).__name__}, not a mapping")
                if ATTRIBUTE in given:
                    raise ValueError(f"the resolver's attributes have a {ATTRIBUTE!r} key of their own")
                attributes.update(given)
        found = {}
        if isinstance(args, Mapping):
            for field in self.fields:
                entry = self.resolve(_read(args, field))
                if entry is not None:
                    found[field] = entry
        attributes[ATTRIBUTE] = found
        return attributes


def zones_from(items: Sequence[str]) -> dict[str, str]:
    """`--path-zone NAME=ROOT` items, read (ValueError with one line for a bad one)."""
    zones: dict[str, str] = {}
    for item in items:
        name, sep, root = item.partition("=")
        if not sep or not name or not root:
            raise ValueError(f"--path-zone takes NAME=ROOT, not {item!r}")
        if name in zones:
            raise ValueError(f"--path-zone {name} is given twice")
        zones[name] = root
    return zones
