"""The cffi builder for callgate._core (API mode, out of line); used at build time only.

The cdef is read from csrc/callgate.h (the part between the CDEF markers), so the header
is the one description of the C API. Build flags:
  CALLGATE_SANITIZE=1  build the core with AddressSanitizer + UndefinedBehaviorSanitizer
  CALLGATE_WERROR=1    turn warnings into errors (CI), off by default so a newer compiler
                       never breaks a user's install
With GCC the core is built with link-time optimization: the entry points, the reader and
the VM live in separate files, and inlining across them makes a decision ~10% faster.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parents[1] / "csrc"
SOURCES = sorted(str(p.relative_to(CSRC.parent)) for p in CSRC.glob("cg_*.c") if p.name != "cg_wasm.c")


def read_cdef(header: Path) -> str:
    text = header.read_text(encoding="utf-8")
    start = text.index("/* CDEF BEGIN */") + len("/* CDEF BEGIN */")
    return text[start:text.index("/* CDEF END */")]


def compiler_is_gcc(cc: str | None = None) -> bool:
    """Whether the C compiler `cc` (by default the one setuptools will run) is GCC: the one
    compiler LTO is turned on for, because it is known to link (clang on Linux needs the
    LLVM linker plugin)."""
    cc = cc or os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    try:
        out = subprocess.run([*shlex.split(cc), "--version"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    return "Free Software Foundation" in out and "clang" not in out.lower()


def lto_args() -> list[str]:
    if sys.platform == "win32" or os.environ.get("CALLGATE_SANITIZE") == "1" or not compiler_is_gcc():
        return []
    return ["-flto"]


def compile_args() -> list[str]:
    if sys.platform == "win32":
        return ["/O2"]
    args = ["-O2", "-std=c99", "-Wall", "-Wextra", *lto_args()]
    if os.environ.get("CALLGATE_WERROR") == "1":
        args.append("-Werror")
    if os.environ.get("CALLGATE_SANITIZE") == "1":
        args += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                 "-fno-sanitize-recover=undefined"]
    return args


def link_args() -> list[str]:
    if os.environ.get("CALLGATE_SANITIZE") == "1" and sys.platform != "win32":
        return ["-fsanitize=address,undefined"]
    lto = lto_args()
    return ["-O2", *lto] if lto else []  # with LTO the code is generated at link time


# Pasted after callgate.h into the generated module, ahead of cffi's call wrappers.
# A decision takes about 100 ns. cffi's wrappers release and re-take the GIL around every
# call and save and restore errno through its backend, which together cost about as much
# again (and invite a GIL convoy when threads evaluate at once). The core never blocks and
# never sets errno, so the wrappers keep the GIL and skip errno: a call holds the GIL for
# its own run only, at most a few milliseconds for a request at the 16 MiB default limit.
# Should a cffi release stop using these macros, the lines below change nothing.
KEEP_GIL = """
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS {
#define Py_END_ALLOW_THREADS }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)
"""

ffibuilder = FFI()
ffibuilder.cdef(read_cdef(CSRC / "callgate.h"))
ffibuilder.set_source(
    "callgate._core",
    '#include "callgate.h"\n' + KEEP_GIL,
    sources=SOURCES,
    include_dirs=[str(CSRC)],
    extra_compile_args=compile_args(),
    extra_link_args=link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
