"""The npm package (js/) and the Python package ship one engine: the wheel's callgate.mjs and
the playground's audit.mjs are js/lib's files byte for byte (`npm run build` in js/ writes
them), and the versions agree. The package's behaviour is tested by node's test runner
(`cd js && npm test`, run by .ci/run); the playground in a browser by tests/browser."""

from __future__ import annotations

import json
import re

import callgate
from support import REPO

JS = REPO / "js"


def test_the_shipped_copies_are_the_package_sources():
    """src/callgate/callgate.mjs and the playground's audit.mjs equal js/lib's, byte for byte."""
    pairs = [(JS / "lib" / "callgate.mjs", REPO / "src" / "callgate" / "callgate.mjs"),
             (JS / "lib" / "audit.mjs", REPO / "src" / "callgate" / "playground" / "static" / "audit.mjs")]
    for source, copy in pairs:
        assert copy.read_bytes() == source.read_bytes(), f"{copy} differs from {source}: run `npm run build` in js/"


def test_versions_agree():
    """package.json's version and callgate.mjs's VERSION (engine_version in audit events) are
    the Python package's."""
    package = json.loads((JS / "package.json").read_text(encoding="utf-8"))
    assert package["version"] == callgate.__version__
    found = re.search(r'^export const VERSION = "([^"]+)";$', (JS / "lib" / "callgate.mjs").read_text(encoding="utf-8"), re.M)
    assert found and found.group(1) == callgate.__version__


def test_every_export_has_its_file_and_types():
    """Each entry of package.json's exports names files the package holds, and every module
    has a declaration file; the package has no runtime dependencies."""
    package = json.loads((JS / "package.json").read_text(encoding="utf-8"))
    assert "dependencies" not in package
    for name, target in package["exports"].items():
        targets = [target] if isinstance(target, str) else list(target.values())
        for path in targets:
            if path.endswith("callgate.wasm"):
                continue   # copied in by the build (npm pack runs it)
            assert (JS / path).is_file(), f"exports[{name!r}] -> {path} is missing"
        if isinstance(target, dict) and name not in ("./package.json",):
            assert "types" in target, f"exports[{name!r}] has no types"
