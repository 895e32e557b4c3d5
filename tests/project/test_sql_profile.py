"""The SQL scanner's profile-guided build (build_backend/sql_profile.py): the training statements
still scan in the dialects they are written for, GCC builds the profiled object from them, a
failure is a ProfileError (the build then compiles the source as it is), and the switches that
turn it off do."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

BACKEND = REPO / "build_backend"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BACKEND / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


sys.path.insert(0, str(BACKEND))  # sql_profile and profiled_build_ext import their neighbours by name
sql_profile = _load("sql_profile")
profiled_build_ext = _load("profiled_build_ext")
CC = shutil.which("gcc") or shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler")
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", f"-I{REPO / 'csrc'}"]


def _is_gcc(cc: str) -> bool:
    out = subprocess.run([cc, "--version"], capture_output=True, text=True).stdout
    return "Free Software Foundation" in out and "clang" not in out.lower()


@needs_cc
def test_every_training_statement_scans_in_its_dialects(tmp_path: Path):
    """sql_train.c, built plainly, scans every line of sql_train.sql in the dialects its tag
    names with CG_SQL_OK and reports what it saw (tables, functions, writes, statements, each
    non-zero): the corpus trains the paths it claims to, not error exits."""
    exe = tmp_path / "sql_train"
    subprocess.run([CC, *FLAGS, str(sql_profile.TRAINER), str(sql_profile.SOURCE), "-o", str(exe)], check=True)
    done = subprocess.run([str(exe), str(sql_profile.CORPUS)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    tables, functions, writes, statements = map(int, done.stdout.split())
    assert min(tables, functions, writes, statements) > 0
    lines = [line for line in sql_profile.CORPUS.read_text().splitlines() if line and not line.startswith("#")]
    tags = {line.split(":", 1)[0] for line in lines}
    assert tags == {"all", "pg", "lite", "my"}


@needs_cc
def test_a_statement_that_does_not_scan_fails_the_training_run(tmp_path: Path):
    """A training line the scanner refuses (here an unterminated string) makes sql_train exit 1
    naming the line and the reason, so a corpus that has rotted cannot train silently."""
    exe = tmp_path / "sql_train"
    subprocess.run([CC, *FLAGS, str(sql_profile.TRAINER), str(sql_profile.SOURCE), "-o", str(exe)], check=True)
    corpus = tmp_path / "bad.sql"
    corpus.write_text("all: SELECT 1\npg: SELECT 'open\n")
    done = subprocess.run([str(exe), str(corpus)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "dialect 0: SELECT 'open" in done.stderr and "unterminated" in done.stderr


@pytest.mark.skipif(CC is None or not _is_gcc(CC), reason="the profiled build is GCC's")
def test_gcc_builds_the_profiled_object(tmp_path: Path):
    """With GCC, profiled_object compiles, trains and recompiles cg_sql.c: the object exists, the
    training run's counts (cg_sql.gcda) were written beside it and read by the second compile
    (-Werror: a profile that does not match the source would be an error, not a warning)."""
    obj = sql_profile.profiled_object([CC], FLAGS, tmp_path / "work")
    assert obj == tmp_path / "work" / "cg_sql.o" and obj.stat().st_size > 0
    assert (tmp_path / "work" / "cg_sql.gcda").stat().st_size > 0
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True).stdout
    assert " T cg_sql_scan" in symbols and "__gcov" not in symbols  # the shipped object counts nothing


@needs_cc
def test_a_failed_step_is_a_profile_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A compiler that cannot build the trainer, or a corpus that does not scan, raises
    ProfileError naming the step, which setup.py turns into a plain build and a warning."""
    with pytest.raises(sql_profile.ProfileError, match="instrumented compile"):
        sql_profile.profiled_object([CC], [*FLAGS, "-DCG_SQL_NO_SUCH_FLAG", "-fno-such-option"], tmp_path / "a")
    if _is_gcc(CC):  # type: ignore[arg-type]
        bad = tmp_path / "bad.sql"
        bad.write_text("my: SELECT `open\n")
        monkeypatch.setattr(sql_profile, "CORPUS", bad)
        with pytest.raises(sql_profile.ProfileError, match="training run: exit 1"):
            sql_profile.profiled_object([CC], FLAGS, tmp_path / "b")


def test_the_switches_turn_it_off(monkeypatch: pytest.MonkeyPatch):
    """CALLGATE_PGO=0 and sanitizer builds (CALLGATE_SANITIZE=1) build the source as it is."""
    monkeypatch.delenv("CALLGATE_PGO", raising=False)
    monkeypatch.delenv("CALLGATE_SANITIZE", raising=False)
    assert sql_profile.wanted()
    monkeypatch.setenv("CALLGATE_PGO", "0")
    assert not sql_profile.wanted()
    monkeypatch.setenv("CALLGATE_PGO", "1")
    monkeypatch.setenv("CALLGATE_SANITIZE", "1")
    assert not sql_profile.wanted()


class _Compiler:
    compiler_type = "unix"
    compiler_so = ["gcc", "-fPIC"]


def _ext():
    from setuptools import Extension
    return Extension("callgate._core", sources=["build/_core.c", "csrc/cg_api.c", "csrc/cg_sql.c"],
                     include_dirs=["csrc"], define_macros=[("Py_LIMITED_API", "0x030A0000")],
                     extra_compile_args=["-O2"])


def _build(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, profiled, cc: str = "gcc") -> tuple[object, list]:
    from setuptools import Distribution
    cmd = profiled_build_ext.BuildExt(Distribution())
    cmd.compiler, cmd.build_temp = _Compiler(), str(tmp_path)
    cmd.compiler.compiler_so = [cc, "-fPIC"]
    built: list = []
    monkeypatch.setattr(profiled_build_ext.build_ext, "build_extension", lambda self, ext: built.append(ext))
    monkeypatch.setattr(profiled_build_ext.sql_profile, "compiler_is_gcc", lambda cc=None: cc == "gcc")
    monkeypatch.setattr(profiled_build_ext.sql_profile, "profiled_object", profiled)
    monkeypatch.delenv("CALLGATE_PGO", raising=False)
    monkeypatch.delenv("CALLGATE_SANITIZE", raising=False)
    ext = _ext()
    cmd.build_extension(ext)
    return ext, built


def test_build_ext_links_the_profiled_object_and_rebuilds_when_its_inputs_change(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """setup.py's BuildExt compiles the object with the compiler's own command and the extension's
    include dirs, macros and flags, links it instead of cg_sql.c, and lists the scanner's source,
    headers, trainer and corpus in depends: setuptools relinks the module only when a source or a
    depends is newer, and an object in extra_objects is neither (an edit to cg_sql.c would
    otherwise leave a rebuilt checkout with the old scanner)."""
    calls = []

    def profiled(cc, flags, work):
        calls.append((cc, flags, work))
        return work / "cg_sql.o"

    ext, built = _build(monkeypatch, tmp_path, profiled)
    assert built == [ext]
    assert calls == [(["gcc", "-fPIC"], ["-Icsrc", "-DPy_LIMITED_API=0x030A0000", "-O2"], tmp_path / "sql_profile")]
    assert ext.sources == ["build/_core.c", "csrc/cg_api.c"]
    assert ext.extra_objects == [str(tmp_path / "sql_profile" / "cg_sql.o")]
    depends = set(ext.depends)
    for path in (sql_profile.SOURCE, sql_profile.TRAINER, sql_profile.CORPUS, REPO / "csrc" / "cg_sql.h",
                 REPO / "csrc" / "cg_sql_words.h", REPO / "csrc" / "cg_internal.h"):
        assert str(path) in depends


def test_build_ext_falls_back_to_the_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]):
    """When the profiled object cannot be built, the extension is built from cg_sql.c as it is,
    with a one-line warning naming the failed step, and nothing of the profile in it."""
    def failing(cc, flags, work):
        raise sql_profile.ProfileError("training run: exit 1: x")

    ext, built = _build(monkeypatch, tmp_path, failing)
    assert built == [ext] and "csrc/cg_sql.c" in ext.sources and not ext.extra_objects and not ext.depends
    assert "built without a profile (training run: exit 1: x)" in capsys.readouterr().err


def test_build_ext_leaves_other_compilers_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]):
    """With a compiler that is not GCC, or with CALLGATE_PGO=0, no profile is attempted and the
    extension is built from cg_sql.c, the line saying why."""
    def never(cc, flags, work):
        raise AssertionError("profiled_object called")

    ext, built = _build(monkeypatch, tmp_path, never, cc="clang")
    assert built == [ext] and "csrc/cg_sql.c" in ext.sources and not ext.extra_objects
    assert "clang is not GCC" in capsys.readouterr().err
    monkeypatch.setenv("CALLGATE_PGO", "0")
    cmd_ext = _ext()
    from setuptools import Distribution
    cmd = profiled_build_ext.BuildExt(Distribution())
    cmd.compiler, cmd.build_temp = _Compiler(), str(tmp_path)
    cmd.build_extension(cmd_ext)
    assert built == [ext, cmd_ext] and "csrc/cg_sql.c" in cmd_ext.sources
    assert "turned off" in capsys.readouterr().err
