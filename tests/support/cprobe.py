"""Build a small shared library from core sources and a test-only probe file, for the
parser tests (tests/core/test_url_parser.py, test_path_parser.py): one ctypes call per input
instead of a process per input. Skips the test when no C compiler is on PATH."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import REPO

CSRC = REPO / "csrc"


def find_cc() -> str | None:
    """The C compiler: $CC, else cc, gcc or clang on PATH; None when there is none."""
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def build_probe(sources: list[Path], out_dir: Path, name: str) -> ctypes.CDLL:
    """Compile sources (warning-free under -Wall -Wextra -Wpedantic -Werror, C99) into
    out_dir/name.so and load it."""
    cc = find_cc()
    if cc is None:
        pytest.skip("no C compiler (cc/gcc/clang, or $CC) found on PATH")
    lib = out_dir / f"{name}.so"
    cmd = [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared",
           "-fPIC", f"-I{CSRC}", *map(str, sources), "-o", str(lib)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return ctypes.CDLL(str(lib))


def call_probe(fn: Any, text: str | bytes, *extra: int, cap: int = 16384) -> list[str]:
    """fn(in, n, out, cap, *extra) -> the tab-separated fields it wrote."""
    data = text.encode() if isinstance(text, str) else text
    out = ctypes.create_string_buffer(cap)
    n = fn(data, len(data), out, cap, *extra)
    assert 0 <= n < cap
    return out.raw[:n].decode("utf-8", "surrogateescape").split("\t")
