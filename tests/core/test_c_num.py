"""The C number module (csrc/cg_num.c), tested natively through tests/core/test_num.c.

Pins: cg_num_to_double is bit-identical to the platform strtod (glibc: correctly rounded,
half to even) on fixed edge cases (halfway points, subnormal and overflow boundaries,
megabyte literals, exponents with thousands of digits) and on 2,000,000+ random literals,
printed doubles and exact binary64 midpoints; cg_num_in_range agrees with "strtod is
finite"; cg_num_exact_equal and cg_num_perso_equal (serde_json semantics) agree with
independent reference implementations.  It also pins that the module compiles warning-free
with -std=c99 -Wall -Wextra -Werror.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from support import REPO

ROOT = REPO


def _find_cc() -> str | None:
    for name in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if name and shutil.which(name):
            return name
    return None


def test_c_num(tmp_path):
    cc = _find_cc()
    if cc is None:
        pytest.skip("no C compiler (cc/gcc/clang, or $CC) found on PATH")
    exe = tmp_path / "test_num"
    build = subprocess.run(
        [cc, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
         str(ROOT / "tests" / "core" / "test_num.c"), str(ROOT / "csrc" / "cg_num.c"),
         "-o", str(exe), "-lm"],
        capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, f"compile failed:\n{build.stdout}{build.stderr}"
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"test_num failed:\n{run.stdout}{run.stderr}"
    assert " passed, 0 failed" in run.stdout, run.stdout
