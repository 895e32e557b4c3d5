"""The Python encoder mirrors csrc/cg_opcodes.h: one instruction set, two languages."""

from __future__ import annotations

import re
from pathlib import Path

import sys

from callgate import bytecode as bc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from v2blobs import ARGS, CONTEXT, build  # noqa: E402

HEADER = Path(__file__).resolve().parents[1] / "csrc" / "cg_opcodes.h"


def test_opcode_table_matches_header():
    """Names, order and operand counts of CG_OPCODES equal bytecode.OPCODES."""
    text = HEADER.read_text()
    rows = re.findall(r"X\((\w+),\s*(\d+),", text)
    assert [(name, int(n)) for name, n in rows] == [(op.name, op.operands) for op in bc.OPCODES]


def test_header_constants_match():
    """Magic, header size, flag bits and source numbers agree with the header."""
    text = HEADER.read_text()
    assert f'#define CG_MAGIC "{bc.MAGIC.decode()}"' in text
    assert f"#define CG_HEADER_SIZE {bc.HEADER_SIZE}" in text
    assert "#define CG_FLAG_PERSO 1u" in text and bc.FLAG_PERSO == 1
    assert "#define CG_FLAG_DEFAULT_ALLOW 2u" in text and bc.FLAG_DEFAULT_ALLOW == 2
    for i, name in enumerate(("ARGS", "AGENT", "RESOURCE", "CONTEXT")):
        assert f"#define CG_SRC_{name} {i}" in text


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


def test_v2_constants_match_header():
    """Flag bits, the element base, the time bound, types and comparisons agree with the header."""
    text = HEADER.read_text()
    for name, value in (("CG_F_PATH_A", bc.F_PATH_A), ("CG_F_PATH_B", bc.F_PATH_B),
                        ("CG_F_STR_NOT", bc.F_STR_NOT), ("CG_F_STR_PATH", bc.F_STR_PATH),
                        ("CG_F_NEGATED", bc.F_NEGATED)):
        assert re.search(rf"#define {name} 0x{value:02X}u", text), name
    assert "#define CG_ELEMENT 0xffffffffu" in text and bc.ELEMENT == 0xFFFFFFFF
    assert f"#define CG_TIME_END {bc.TIME_END}u" in text
    for i, name in enumerate(bc.TYPES):
        assert f"#define CG_TY_{name.upper()} {i}" in text
    for i, name in enumerate(("LT", "LE", "GT", "GE", "EQ", "NE", "BETWEEN")):
        assert f"#define CG_CMP_{name} {i}" in text
    assert len(bc.CMP_OPS) == len(bc.CMP_SYMBOLS) == 7


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
