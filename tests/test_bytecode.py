"""The Python encoder mirrors csrc/cg_opcodes.h: one instruction set, two languages."""

from __future__ import annotations

import re
from pathlib import Path

from callgate import bytecode as bc

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
    b.rules.append((1, 0, len(b.code)))
    b.entries.append((b.string("t"), b.string("r"), 0, 1))
    d = bc.decode(b.encode())
    assert d.version == "v9" and d.flags == 3 and d.numbers == [5.0]
    assert d.entries == [(b.string("t"), b.string("r"), 0, 1)]
    assert d.fields == [(0, b.string("amount"), b.string("Arguments.amount"))]
