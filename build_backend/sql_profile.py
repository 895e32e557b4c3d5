"""The SQL scanner (csrc/cg_sql.c) built from a profile: GCC's profile-guided optimization.

The scanner's loop is one large function whose common path (a word, a punctuation byte, the
state it moves) is a small part of its code. Built without a profile, GCC lays the rare cases
(other dialects, WITH and EXPLAIN, quoted names, errors) among the common ones, and the same
code runs 15 to 20% slower than when it knows which branches a statement takes
(docs/arguments.md, "Speed of the scanner"). So the build compiles cg_sql.c with
-fprofile-generate, runs sql_train.c over the statements of sql_train.sql (not the benchmark's:
SELECTs with joins, writes, WITH queries, strings, comments and each dialect's own forms),
and compiles it again with -fprofile-use, into an object the extension links instead of the
source. The result is the same code, laid out and inlined for the paths real statements take;
the test suite and the fuzzers hold its behaviour as they hold any build's.

GCC only (the profile's format is the compiler's own; clang would need llvm-profdata), and not
for sanitizer builds. Any failure (another compiler, no -fprofile-partial-training before GCC
10, a training statement that no longer scans) builds the source as it is, with a warning:
a profile never breaks an install. CALLGATE_PGO=0 turns it off.

Used by profiled_build_ext.py (setup.py's build_ext) and bench/bench_arguments.py (which times
the same build).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ffi_build import compiler_is_gcc

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parent / "csrc" / "cg_sql.c"
TRAINER = HERE / "sql_train.c"
CORPUS = HERE / "sql_train.sql"
# -O3 for this one file, in both compiles (the profile must describe the code it is used on): with
# the profile, 1 to 2% faster than -O2 (bench_core, interleaved, 11 rounds)
OPT_FLAGS = ["-O3"]
# -fprofile-partial-training: code the training does not reach is optimized as usual, not for size
USE_FLAGS = ["-fprofile-use", "-fprofile-partial-training", "-Wno-missing-profile"]


class ProfileError(Exception):
    """The profiled object could not be built (the caller builds the source as it is)."""


def inputs() -> list[Path]:
    """What the profiled object is made from: a build that links it is out of date when one of
    these is newer (setup.py puts them in the extension's depends; the object is no source)."""
    return [SOURCE, TRAINER, CORPUS, *sorted(SOURCE.parent.glob("*.h"))]


def wanted() -> bool:
    """Whether this build should try: not turned off, not a sanitizer build."""
    return os.environ.get("CALLGATE_PGO", "1") != "0" and os.environ.get("CALLGATE_SANITIZE") != "1"


def _run(cmd: list[str], what: str) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, errors="replace", timeout=600)
    except (OSError, subprocess.SubprocessError) as e:
        raise ProfileError(f"{what}: {e}") from e
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ProfileError(f"{what}: exit {done.returncode}: {lines[-1] if lines else ''}")


def try_profiled_object(cc: list[str], flags: list[str], work: Path) -> tuple[Path | None, str]:
    """profiled_object where this build should have one (wanted(), and `cc` is GCC): the object
    and what was done, or None and why not, for the caller's one line."""
    if not wanted():
        return None, "turned off (CALLGATE_PGO=0 or a sanitizer build)"
    if not compiler_is_gcc(cc[0]):
        return None, f"{cc[0]} is not GCC"
    try:
        return profiled_object(cc, flags, work), "built from its profile (build_backend/sql_train.sql)"
    except ProfileError as e:
        return None, f"built without a profile ({e})"


def profiled_object(cc: list[str], flags: list[str], work: Path) -> Path:
    """cg_sql.c compiled by `cc` with `flags` (as every other source of the extension is) and
    the profile of the training run: the object's path, in `work`. Raises ProfileError."""
    obj = work / "cg_sql.o"
    try:
        work.mkdir(parents=True, exist_ok=True)
        for stale in [obj, *work.glob("*.gcda")]:
            stale.unlink(missing_ok=True)
    except OSError as e:
        raise ProfileError(f"work directory: {e}") from e
    # GCC writes the counts to the object's path with .gcda and reads them from there when the
    # second compile writes the same object
    _run([*cc, *flags, *OPT_FLAGS, "-fprofile-generate", "-c", str(SOURCE), "-o", str(obj)], "instrumented compile")
    trainer = work / "sql_train"
    _run([*cc, *flags, "-fprofile-generate", str(TRAINER), str(obj), "-o", str(trainer)], "trainer link")
    _run([str(trainer), str(CORPUS)], "training run")
    if not (work / "cg_sql.gcda").is_file():
        raise ProfileError("training run: no profile written")
    _run([*cc, *flags, *OPT_FLAGS, *USE_FLAGS, "-c", str(SOURCE), "-o", str(obj)], "profiled compile")
    return obj
