"""The Python encoder and disassembler: one instruction set, read from the core."""

from __future__ import annotations

import re
from pathlib import Path

from callgate import bytecode as bc
from support import REPO
from support.v2blobs import ARGS, CONTEXT, build

HEADER = REPO / "csrc" / "cg_opcodes.h"


def test_the_format_is_the_cores_not_a_copy():
    """bytecode.py keeps no copy of csrc/cg_opcodes.h: its instruction table is the one the
    built core reports (cg_opcode, generated from the header's X-macro list), its constants
    are the core's (the binding's constants are generated from the header at build time),
    and its source holds none of their values as literals."""
    from callgate._native import lib, opcodes

    header_rows = re.findall(r"X\((\w+),\s*(\d+),\s*([+-]?\d+),\s*(0x[0-9A-F]+),", HEADER.read_text())
    assert [(name, int(n), int(eff), int(fl, 16)) for name, n, eff, fl in header_rows] == opcodes()
    assert [(op.name, op.operands) for op in bc.OPCODES] == [(name, n) for name, n, _, _ in opcodes()]
    assert (bc.FORMAT, bc.HEADER_SIZE, bc.MAGIC) == (lib.CG_BLOB_FORMAT, lib.CG_HEADER_SIZE, b"CGPB")
    assert (bc.F_NEGATED, bc.F_PATH_A, bc.F_PATH_B, bc.ELEMENT, bc.PATH_KEY, bc.TIME_END, bc.NO_NAME) == (
        lib.CG_F_NEGATED, lib.CG_F_PATH_A, lib.CG_F_PATH_B, lib.CG_ELEMENT, lib.CG_PATH_KEY, lib.CG_TIME_END,
        lib.CG_NO_NAME)
    assert bc.CMP_OPS.index("Between") == lib.CG_CMP_BETWEEN and bc.TYPES.index("object") == lib.CG_TY_OBJECT
    source = Path(bc.__file__).read_text()
    for literal in ("4102444800", "0x80000000", '"CGPB"', '("NUM", 3)', "= 80\n"):
        assert literal not in source, literal


def test_decode_roundtrip():
    """decode() reads back what BlobBuilder wrote."""
    b = bc.BlobBuilder(perso=True, default_allow=True)
    b.version_sid = b.string("v9")
    b.n_policy_rules = 2
    f = b.field(0, "amount")
    b.emit("NUM", 1, f, b.number(5.0), b.string("5"))
    b.emit("RET")
    b.rules.append((1, 0, len(b.code), bc.effect_word(bc.ALLOW)))
    b.entries.append((b.string("t"), b.string("r"), 0, 1))
    d = bc.decode(b.encode())
    assert d.version == "v9" and d.flags == 3 and d.numbers == [5.0]
    assert d.entries == [(b.string("t"), b.string("r"), 0, 1)]
    assert d.fields == [(0, b.string("amount"), b.string("Arguments.amount"))]


def test_kmp_table():
    """kmp_table is the KMP failure function (the loader recomputes and compares it)."""
    assert bc.kmp_table(b"") == []
    assert bc.kmp_table(b"aab") == [0, 1, 0]
    assert bc.kmp_table(b"abab") == [0, 0, 1, 2]
    assert bc.kmp_table(b"aaaa") == [0, 1, 2, 3]


def _listing_of(cond) -> list[str]:
    b = build(cond)
    b.defaults.append((b.string("allow"), bc.effect_word(bc.ELEVATE, 2), b.string("write")))
    return bc.disassemble(b.encode()).splitlines()


def test_disassemble_v2():
    """The listing shows one line per instruction with refs by display name, the STR
    text, windows, types, Between, quantifier bodies indented, effects and defaults."""
    def cond(c):
        c.string(c.ref(ARGS, "path"), "StartsWith", "/etc", negated=True)
        c.between(c.ref(ARGS, "n", "0"), 1, 2.5)
        c.op("AND")
        c.length(c.ref(ARGS, "s"), "Ne", 3)
        c.op("AND")
        c.type(c.ref(ARGS, "s"), "integer")
        c.op("AND")
        c.time(c.ref(CONTEXT, "time"), 0x1F, 540, 1020, [(0, 3600)], "Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris")
        c.op("AND")
        c.eq(c.ref(ARGS, "a"), c.ref(ARGS, "b", "c"))
        c.op("AND")
        c.quant("EVERY", c.ref(ARGS, "items"), lambda: c.present(c.ref(None, "x")))
        c.op("AND")
    lines = _listing_of(cond)
    text = "\n".join(lines)
    assert "entry 'allow' x 'r' -> rule 1 (allow)" in text
    assert "entry 'deny' x 'r' -> rule 2 (deny)" in text
    assert "default 'allow' (tier 'write') -> elevate (2 approvals)" in text
    body = [line[10:] for line in lines if line.startswith("  ") and line.split()[0].isdigit()]
    assert body[:16] == [
        'STR     Arguments.path starts with "/etc" ; negated',
        "NUM     Arguments/n/0 between 1 and 2.5",
        "AND",
        "LEN     length of Arguments.s != 3",
        "AND",
        "TYPE    Arguments.s is of type integer",
        "AND",
        "TIME    Context.time within Mon,Tue,Wed,Thu,Fri 09:00-17:00 Europe/Paris",
        "AND",
        "EQ      Arguments.a == Arguments/b/c",
        "AND",
        f"EVERY   Arguments.items (body to {body_end(lines)})",
        "  PRESENT element/x",
        "  ENDQ",
        "AND",
        "RET",
    ]


def body_end(lines: list[str]) -> int:
    """The offset after the ENDQ in a listing (the line after it)."""
    for i, line in enumerate(lines):
        if line.strip().endswith("ENDQ"):
            return int(lines[i + 1].split()[0])
    raise AssertionError("no ENDQ")
