"""The C core's sources keep one place for each table (issue 17): blob offsets are computed
only in csrc/cg_blob.h, error codes are listed only in csrc/cg_errors.h's CG_ERRORS,
instructions only in csrc/cg_opcodes.h's CG_OPCODES, and the Python side holds no copy of
either list."""

from __future__ import annotations

import re

from callgate._native import errname, opcodes
from support import REPO

CSRC = REPO / "csrc"
SRC = REPO / "src" / "callgate"
SECTIONS = "strings|fields|sets|members|numbers|entries|rules|words|defaults|names|code|strdata"


def _c_sources() -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted([*CSRC.glob("*.c"), *CSRC.glob("*.h")])}


def test_blob_offsets_only_in_the_accessor_header():
    """Outside cg_blob.h no C file adds to a section pointer, multiplies a record index by a
    record size, or reads a field at a numeric offset from a record (`cg_rd32(r + 12)`)."""
    forbidden = [
        re.compile(rf"p->(?:{SECTIONS})\s*\+"),               # section base + offset
        re.compile(rf"p->(?:{SECTIONS})\[\s*\w"),              # section indexed directly
        re.compile(r"\b(?:8|12|16)u?\s*\*\s*\(?\w+"),          # index * record size
        re.compile(r"cg_rd(?:16|32|f64)\(\s*\w+\s*\+\s*\d+\s*\)"),  # a field at a numeric offset
    ]
    # what the patterns also match and is not the blob: the byte readers (a u64 as two u32),
    # the loader's own hash tables in the policy buffer (8-byte slot pairs), a hash's tail
    not_the_blob = {"cg_internal.h": ("cg_rd32(p + 4) << 32",),
                    "cg_load.c": ("align8(8 * ",),
                    "cg_util.c": ("<< (8 * (len % 8))",)}
    found = []
    for name, text in _c_sources().items():
        if name in ("cg_blob.h", "cg_num.c", "cg_event.c", "cg_wasm.c", "cg_api.c"):
            continue  # the header itself; and files that read no blob (numbers, events, the wasm heap)
        for n, line in enumerate(text.splitlines(), 1):
            if any(p.search(line) for p in forbidden) and not any(ok in line for ok in not_the_blob.get(name, ())):
                found.append(f"{name}:{n}: {line.strip()}")
    assert found == []


def test_error_codes_are_listed_once():
    """Each CG_E_* code is defined once, in cg_errors.h's list (the enum, the names, the
    messages and the binding's constants are generated from it); no other C file defines
    one, and no Python module keeps a table of the core's error names."""
    sources = _c_sources()
    listed = re.findall(r"^\s*X\((\w+), (-\d+), \"(\w+)\"", sources["cg_errors.h"], re.M)
    assert len(listed) == len({code for _, code, _ in listed}) >= 39
    for name, text in sources.items():
        if name != "cg_errors.h":
            assert not re.search(r"#define CG_E_\w+|CG_E_\w+\s*=\s*-\d", text), name
    assert [errname(int(code)) for _, code, _ in listed] == [n for _, _, n in listed]
    names = {n for _, _, n in listed if "_" in n}   # the distinctive ones ("type", "depth" are plain words)
    for path in SRC.rglob("*.py"):
        code = re.sub(r'"""(?:.|\n)*?"""', "", path.read_text())   # docstrings may name an example
        quoted = set(re.findall(r'"(\w+)"', code))
        assert len(quoted & names) <= 2, f"{path.name} lists the core's error names: {sorted(quoted & names)}"


def test_instructions_are_listed_once():
    """The instruction set is written once, as cg_opcodes.h's CG_OPCODES: no other C file
    lists opcodes with their operand counts, and the binding's table (cg_opcode) is that
    list."""
    sources = _c_sources()
    rows = re.findall(r"^\s*X\((\w+),\s*(\d+),", sources["cg_opcodes.h"], re.M)
    assert [(name, int(n)) for name, n in rows] == [(name, n) for name, n, _, _ in opcodes()]
    for name, text in sources.items():
        if name != "cg_opcodes.h":
            assert not re.search(r"X\((?:TRUE|NUM|EVERY),\s*\d", text), name
    assert not any(re.search(r"CG_INSN_LEN\(\d\)", text) for name, text in sources.items()
                   if name != "cg_opcodes.h"), "an instruction length written as a number"
