"""The package's layers (docs/DESIGN "The layers", README "How it works"): arrows point down
only. Read from the source with `ast`, every import counted, also those inside functions
(an import made late is still a dependency):

- no import cycle among the package's modules;
- no module imports another module's private names (`from x import _y`, where `_y` is not a
  module: a private module such as `_native` is a layer, imported as a whole);
- only `callgate._native` imports the compiled extension `callgate._core`;
- the leaf modules (`errors`, `values`, `version`, `decision`) import nothing of callgate
  but `errors`.
"""

from __future__ import annotations

import ast
from pathlib import Path

from support import REPO

ROOT = REPO / "src" / "callgate"
EXTENSIONS = {"callgate._core"}   # compiled, no source to read
LEAVES = {"callgate.errors": set(), "callgate.values": {"callgate.errors"}, "callgate.version": set(),
          "callgate.decision": set()}


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()
KNOWN = set(MODULES) | EXTENSIONS


def _imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(module imported, name taken from it or None) for every import in a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package
                for _ in range(node.level - 1):
                    anchor = anchor.rpartition(".")[0]
                base = f"{anchor}.{base}" if base else anchor
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.append((sub, None) if sub in KNOWN else (base, alias.name))
    return [(target, taken) for target, taken in out if target in KNOWN and target != name]


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def test_no_import_cycles():
    """The import graph of the package has no cycle (strongly connected components of one)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w, _ in GRAPH.get(v, ()):
            if w not in GRAPH:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in GRAPH:
        if v not in index:
            visit(v)
    assert cycles == []


def test_no_private_names_are_imported():
    """No `from module import _name` of another module's private name."""
    private = [(name, target, taken) for name, edges in GRAPH.items() for target, taken in edges
               if taken is not None and taken.startswith("_") and not taken.startswith("__")]
    assert private == []


def test_only_native_touches_the_extension():
    """callgate._native is the one module that imports the compiled extension."""
    assert sorted(name for name, edges in GRAPH.items() if any(t == "callgate._core" for t, _ in edges)) == \
        ["callgate._native"]


def test_leaf_modules_import_nothing_above_them():
    """errors, values, version and decision sit at the bottom: they import (of callgate) only
    what LEAVES allows."""
    for name, allowed in LEAVES.items():
        assert {t for t, _ in GRAPH[name]} <= allowed, name
