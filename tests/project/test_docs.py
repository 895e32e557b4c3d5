"""The documentation runs: every ```python block of README.md and docs/*.md is executed (the
blocks of one file in order, in one namespace, in a directory holding the files they name:
policy.json is the CRM example), so a snippet that fails is a failing test; a block preceded
by `<!-- not run: why -->` is skipped, and only such blocks are. Fenced blocks tagged sh,
shell, bash or console would be run the same way (none is today: command synopses are
untagged blocks, which are not meant to run as written)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import callgate
from callgate import examples
from support import REPO

ROOT = REPO
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"(?P<skip><!-- not run[^>]*-->[ \t]*\n)?^(?P<indent>[ ]*)```(?P<lang>[a-z]*)[ \t]*\n(?P<body>.*?)\n(?P=indent)```[ \t]*$",
                   re.S | re.M)
SHELL = {"sh", "shell", "bash", "console"}


def blocks(path: Path, langs: set[str]) -> list[tuple[int, str, bool]]:
    """(line, code, skipped) of every fenced block of these languages."""
    text = path.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group("body"), bool(m.group("skip")))
            for m in BLOCK.finditer(text) if m.group("lang") in langs]


WITH_PYTHON = [p for p in DOCS if blocks(p, {"python"})]


@pytest.mark.parametrize("path", WITH_PYTHON, ids=[p.name for p in WITH_PYTHON])
def test_python_blocks_run(path, tmp_path, monkeypatch):
    """Each file's Python blocks, in order, in one namespace: none raises."""
    runnable = [(line, code) for line, code, skipped in blocks(path, {"python"}) if not skipped]
    shutil.copy(examples.policy_path("crm"), tmp_path / "policy.json")
    shutil.copy(examples.policy_path("crm"), tmp_path / "new.json")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "docs_snippet"}
    for line, code in runnable:
        try:
            exec(compile(code, f"{path.name}:{line}", "exec"), namespace)
        except Exception as exc:  # the failing block, by file and line
            raise AssertionError(f"{path.name} line {line}: {type(exc).__name__}: {exc}") from exc
    engine = namespace.get("engine")
    if engine is not None and hasattr(engine, "close"):
        engine.close()


@pytest.mark.parametrize("path", DOCS, ids=[p.name for p in DOCS])
def test_shell_blocks_run(path, tmp_path):
    """Each fenced shell block that is not marked as not run exits 0."""
    runnable = [(line, code) for line, code, skipped in blocks(path, SHELL) if not skipped]
    for line, code in runnable:
        run = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                             timeout=300, env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"})
        assert run.returncode == 0, f"{path.name} line {line}: {run.stderr[-500:]}"


def test_every_skipped_block_says_why():
    """A block marked not run carries its reason (`<!-- not run: why -->`)."""
    for path in DOCS:
        for m in re.finditer(r"<!-- not run(?P<why>[^>]*)-->", path.read_text(encoding="utf-8")):
            assert m.group("why").strip(" :"), f"{path.name}: a not-run mark without a reason"


def test_the_readme_names_resolve_after_a_plain_import():
    """What the README reaches through `callgate.` after `import callgate` alone exists."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    files = {"h", "mjs"}   # callgate.h and callgate.mjs are file names, not attributes
    for dotted in sorted(set(re.findall(r"(?<![/\w.-])callgate\.([A-Za-z_][\w.]*)", text)) - files):
        obj = callgate
        for part in dotted.split("."):
            assert hasattr(obj, part), f"callgate.{dotted}: no attribute {part!r}"
            obj = getattr(obj, part)


def test_every_test_the_docs_name_exists():
    """A guarantee in the docs names the test that holds it: every `test_...` name in
    README.md and docs/*.md is a test function or a test module of tests/ or bench/, so a
    renamed or deleted test cannot leave a promise without its proof."""
    defined = set()
    for folder in (ROOT / "tests", ROOT / "bench"):
        for path in folder.rglob("test_*.py"):
            defined.add(path.stem)
            defined.update(re.findall(r"^\s*(?:async\s+)?def (test_\w+)", path.read_text(encoding="utf-8"), re.M))
    missing = [(p.name, name) for p in DOCS
               for name in sorted(set(re.findall(r"\btest_[a-z0-9_]+", p.read_text(encoding="utf-8"))))
               if name not in defined]
    assert missing == []
