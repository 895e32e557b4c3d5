"""The cffi builder for callgate._core (API mode, out of line); used at build time only.

The cdef is read from csrc/callgate.h and csrc/cg_event.h (the parts between their CDEF
markers), so the headers are the one description of the C API; the error constants come
from csrc/cg_errors.h's list. Build flags:
  CALLGATE_SANITIZE=1  build the core with AddressSanitizer + UndefinedBehaviorSanitizer, and
                       its invariants asserted (CG_ASSERT traps; also alone: CALLGATE_ASSERT=1)
  CALLGATE_WERROR=1    turn warnings into errors (CI), off by default so a newer compiler
                       never breaks a user's install
  CALLGATE_PGO=0       build the SQL scanner from its source as it is, not from its profile
With GCC the core is built with link-time optimization: the entry points, the reader and
the VM live in separate files, and inlining across them makes a decision ~10% faster. With
GCC the SQL scanner is also compiled from a profile of a training run (setup.py, through
sql_profile.py): the same code laid out for the paths statements take, a fifth faster.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

from cffi import FFI

CSRC = Path(__file__).resolve().parents[1] / "csrc"
SOURCES = sorted(str(p.relative_to(CSRC.parent)) for p in CSRC.glob("cg_*.c") if p.name != "cg_wasm.c")


def error_constants(header: Path) -> str:
    """`#define CG_E_NAME code` for each entry of the core's one error list (cg_errors.h's
    CG_ERRORS): what the binding needs to see of it, generated rather than written again."""
    entries = re.findall(r"^\s*X\((\w+),\s*(-\d+),", header.read_text(encoding="utf-8"), re.M)
    if not entries:  # pragma: no cover - a broken header
        raise RuntimeError(f"{header}: no CG_ERRORS entries")
    return "".join(f"#define CG_E_{name} {code}\n" for name, code in entries)


def format_constants(header: Path) -> str:
    """`#define CG_NAME value` for every integer constant of the blob format's header
    (cg_opcodes.h): the compiler and the disassembler (callgate.bytecode) read them from the
    extension instead of keeping a copy."""
    out = []
    for name, value in re.findall(r"^#define (CG_\w+)\s+(-?(?:0x[0-9a-fA-F]+|\d+))u?\b", header.read_text(encoding="utf-8"),
                                  re.M):
        out.append(f"#define {name} {value}\n")
    return "".join(out)


def read_cdef(header: Path) -> str:
    """The part of `header` between its CDEF markers, with the error constants filled in
    where it says /* CG_ERRORS */."""
    text = header.read_text(encoding="utf-8")
    start = text.index("/* CDEF BEGIN */") + len("/* CDEF BEGIN */")
    cdef = text[start:text.index("/* CDEF END */")]
    return cdef.replace("/* CG_ERRORS */", error_constants(header.parent / "cg_errors.h"))


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
    if os.environ.get("CALLGATE_SANITIZE") == "1" or os.environ.get("CALLGATE_ASSERT") == "1":
        args.append("-DCG_ASSERTS")  # the core's invariants trap (CG_ASSERT, cg_internal.h)
    return args


def link_args() -> list[str]:
    if os.environ.get("CALLGATE_SANITIZE") == "1" and sys.platform != "win32":
        return ["-fsanitize=address,undefined"]
    lto = lto_args()
    return ["-O2", *lto] if lto else []  # with LTO the code is generated at link time


# The binding's own C, pasted after callgate.h into the generated module: direct CPython
# entry points for the two evaluation calls, and the cffi function that adds them to the module.
#
# A cffi call costs ~200 ns around a ~100 ns decision: cffi 2 builds an argument tuple,
# converts each of the seven arguments through its backend, saves and restores errno and
# releases the GIL. The evaluation is the one call made per tool call, so it gets a
# METH_FASTCALL function (no tuple; bytes are read in place; the lengths come from the
# objects, so Python never passes one). Everything else (loading, scratch, reasons, the
# audit sealer's batch calls) stays on cffi.
#   eval_request(scratch, request) / eval_json(scratch, tool, args, context)
#     scratch is the scratch's address (an int, not 0); the others must be bytes (TypeError else).
#     They release the GIL around the decision, like cffi's wrappers.
#   eval_request_keep_gil / eval_json_keep_gil
#     the same, holding the GIL: for an engine with no threads of its own waiting for it.
#     The core never blocks, and a call holds the GIL for its own run only (~3 ms for a
#     request at the 16 MiB default limit), like any Python code. An engine with an audit
#     trail uses the releasing calls: holding the GIL through every evaluation starved its
#     writer threads (to the 5 ms switch interval) and cut JSONL throughput by a quarter.
# The module is built against the 3.10 limited API (one abi3 wheel), which has METH_FASTCALL.
BINDING_SOURCE = """
static int cg_bytes_arg(PyObject *obj, const char **data, size_t *len) {
    char *p;
    Py_ssize_t n;
    if (PyBytes_AsStringAndSize(obj, &p, &n) < 0)  /* TypeError unless bytes */
        return -1;
    *data = p;
    *len = (size_t)n;
    return 0;
}

static int cg_scratch_arg(PyObject *obj, void **scratch) {
    *scratch = PyLong_AsVoidPtr(obj);  /* TypeError unless an int */
    if (*scratch != NULL)
        return 0;
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "the scratch address is 0");
    return -1;
}

static int cg_check_argc(Py_ssize_t argc, Py_ssize_t want, const char *usage) {
    if (argc == want)
        return 0;
    PyErr_SetString(PyExc_TypeError, usage);
    return -1;
}

static inline PyObject *cg_call_request(PyObject *const *argv, Py_ssize_t argc, int keep_gil) {
    const char *req;
    size_t len;
    int64_t rc;
    if (cg_check_argc(argc, 2, "eval_request(scratch, request)") < 0)
        return NULL;
    void *scratch;
    if (cg_scratch_arg(argv[0], &scratch) < 0 || cg_bytes_arg(argv[1], &req, &len) < 0)
        return NULL;
    if (keep_gil) {
        rc = cg_eval_request(scratch, req, len);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = cg_eval_request(scratch, req, len);
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromLongLong(rc);
}

static inline PyObject *cg_call_json(PyObject *const *argv, Py_ssize_t argc, int keep_gil) {
    const char *tool, *args, *ctx;
    size_t tool_len, args_len, ctx_len;
    int64_t rc;
    if (cg_check_argc(argc, 4, "eval_json(scratch, tool, args, context)") < 0)
        return NULL;
    void *scratch;
    if (cg_scratch_arg(argv[0], &scratch) < 0 || cg_bytes_arg(argv[1], &tool, &tool_len) < 0 ||
        cg_bytes_arg(argv[2], &args, &args_len) < 0 || cg_bytes_arg(argv[3], &ctx, &ctx_len) < 0)
        return NULL;
    if (keep_gil) {
        rc = cg_eval_json(scratch, tool, tool_len, args, args_len, ctx, ctx_len);
    } else {
        Py_BEGIN_ALLOW_THREADS
        rc = cg_eval_json(scratch, tool, tool_len, args, args_len, ctx, ctx_len);
        Py_END_ALLOW_THREADS
    }
    return PyLong_FromLongLong(rc);
}

static PyObject *cg_py_eval_request(PyObject *m, PyObject *const *argv, Py_ssize_t argc) {
    (void)m;
    return cg_call_request(argv, argc, 0);
}
static PyObject *cg_py_eval_request_keep_gil(PyObject *m, PyObject *const *argv, Py_ssize_t argc) {
    (void)m;
    return cg_call_request(argv, argc, 1);
}
static PyObject *cg_py_eval_json(PyObject *m, PyObject *const *argv, Py_ssize_t argc) {
    (void)m;
    return cg_call_json(argv, argc, 0);
}
static PyObject *cg_py_eval_json_keep_gil(PyObject *m, PyObject *const *argv, Py_ssize_t argc) {
    (void)m;
    return cg_call_json(argv, argc, 1);
}

#define CG_FASTCALL(f) (PyCFunction)(void (*)(void))(f), METH_FASTCALL
static PyMethodDef cg_direct_calls[] = {
    {"eval_request", CG_FASTCALL(cg_py_eval_request), "eval_request(scratch, request) -> int"},
    {"eval_request_keep_gil", CG_FASTCALL(cg_py_eval_request_keep_gil), "eval_request, holding the GIL"},
    {"eval_json", CG_FASTCALL(cg_py_eval_json), "eval_json(scratch, tool, args, context) -> int"},
    {"eval_json_keep_gil", CG_FASTCALL(cg_py_eval_json_keep_gil), "eval_json, holding the GIL"},
    {NULL, NULL, 0, NULL},
};

/* Called through cffi (which has released the GIL) once, at import: adds the functions
   above to the module named `module` (this one). 0 on success. PyGILState_Ensure takes
   the GIL of the main interpreter: the module is not meant for sub-interpreters. */
static int cg_add_direct_calls(const char *module) {
    PyGILState_STATE gil = PyGILState_Ensure();
    int rc = -1;
    PyObject *mod = PyImport_ImportModule(module);
    if (mod != NULL) {
        rc = PyModule_AddFunctions(mod, cg_direct_calls);
        Py_DECREF(mod);
    }
    if (rc < 0)
        PyErr_WriteUnraisable(NULL);  /* the caller raises ImportError; the cause goes to stderr */
    PyGILState_Release(gil);
    return rc;
}
"""
BINDING_CDEF = """
int cg_add_direct_calls(const char *module);
"""


def limited_api_macros() -> list[tuple[str, str]]:
    """The limited API level the module targets: 3.10 (METH_FASTCALL), as the abi3 wheel
    says. Not where cffi itself leaves the limited API alone: reference-debugging builds
    (which may refuse it) and free-threaded ones (which have none before 3.15)."""
    if hasattr(sys, "gettotalrefcount") or sysconfig.get_config_var("Py_GIL_DISABLED"):
        return []
    return [("Py_LIMITED_API", "0x030A0000")]


ffibuilder = FFI()
ffibuilder.cdef(read_cdef(CSRC / "callgate.h") + read_cdef(CSRC / "cg_event.h") + format_constants(CSRC / "cg_opcodes.h")
               + BINDING_CDEF)
ffibuilder.set_source(
    "callgate._core",
    '#include "callgate.h"\n#include "cg_event.h"\n#include "cg_opcodes.h"\n' + BINDING_SOURCE,
    sources=SOURCES,
    include_dirs=[str(CSRC)],
    define_macros=limited_api_macros(),
    extra_compile_args=compile_args(),
    extra_link_args=link_args(),
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
