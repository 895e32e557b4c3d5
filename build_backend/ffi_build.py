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
    # hidden: the module exports only PyInit__core, so calls into the core bind directly
    args = ["-O2", "-std=c99", "-Wall", "-Wextra", "-fvisibility=hidden", *lto_args()]
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


# The binding's own C, pasted after callgate.h into the generated module ahead of cffi's
# call wrappers, and the two functions of it that Python calls.
#
# Every cffi wrapper releases and re-takes the GIL around its call, and saves and restores
# errno through cffi's backend. For an evaluation that costs about as much as the ~100 ns
# decision itself. So:
# - errno is skipped everywhere: the core never sets it and callgate never reads ffi.errno.
# - The `_keep_gil` twins of the two evaluation entry points keep the GIL. An engine without
#   an audit trail calls them: the core never blocks, and a call holds the GIL for its own
#   run only (~3 ms for a request at the 16 MiB default limit), like any Python code. An
#   engine with one calls the plain entry points: its writer threads wait for the GIL, and
#   holding it through every evaluation starved them (to the 5 ms switch interval).
# - Every other wrapper (policy loading, the audit sealer's batch calls) releases the GIL.
# Should cffi change how it names or writes its wrappers, every call releases the GIL again.
BINDING_SOURCE = """
#include <string.h>
static int64_t cg_eval_request_keep_gil(void *scratch, const char *request, size_t len) {
    return cg_eval_request(scratch, request, len);
}
static int64_t cg_eval_json_keep_gil(void *scratch, const char *tool, size_t tool_len, const char *args,
                                     size_t args_len, const char *context, size_t context_len) {
    return cg_eval_json(scratch, tool, tool_len, args, args_len, context, context_len);
}
static inline int cg_wrapper_keeps_gil(const char *wrapper) {  /* folded at compile time */
    return strcmp(wrapper, "_cffi_f_cg_eval_request_keep_gil") == 0 ||
           strcmp(wrapper, "_cffi_f_cg_eval_json_keep_gil") == 0;
}
#undef Py_BEGIN_ALLOW_THREADS
#undef Py_END_ALLOW_THREADS
#define Py_BEGIN_ALLOW_THREADS { PyThreadState *_save = cg_wrapper_keeps_gil(__func__) ? NULL : PyEval_SaveThread();
#define Py_END_ALLOW_THREADS if (_save) PyEval_RestoreThread(_save); }
#undef _cffi_restore_errno
#undef _cffi_save_errno
#define _cffi_restore_errno() ((void)0)
#define _cffi_save_errno() ((void)0)
"""
BINDING_CDEF = """
int64_t cg_eval_request_keep_gil(void *scratch, const char *request, size_t len);
int64_t cg_eval_json_keep_gil(void *scratch, const char *tool, size_t tool_len, const char *args,
                              size_t args_len, const char *context, size_t context_len);
"""

ffibuilder = FFI()
ffibuilder.cdef(read_cdef(CSRC / "callgate.h") + BINDING_CDEF)
ffibuilder.set_source(
    "callgate._core",
    '#include "callgate.h"\n' + BINDING_SOURCE,
    sources=SOURCES,
    include_dirs=[str(CSRC)],
    extra_compile_args=compile_args(),
    extra_link_args=link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
