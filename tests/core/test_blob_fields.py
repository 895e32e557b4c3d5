"""Every field of a valid blob, corrupted in turn, is refused by the loader with its own
cause and the blob offset of that very field (BlobError.code and .offset; the wasm module's
init reply says the same): the header's fields, each record of every section, every word
of every descriptor (paths, globs and their KMP tables, path globs, time windows), the
bytes of the strings, and each byte and operand of every instruction.

The blob is compiled from one policy that uses every section and descriptor kind.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import pytest

from callgate import BlobError, Engine
from callgate import bytecode as bc
from callgate._native import LoadedPolicy

POLICY = {
    "version": "v2-every-field", "default_action": "Deny",
    "tools": ["pay", "read", "sweep"], "roles": ["agent", "admin"],
    "tool_tiers": {"read": "read", "sweep": "destructive"},
    "tier_defaults": {"destructive": {"effect": "elevate", "approvals": 2}, "read": "allow"},
    "rules": [
        {"id": "no-big", "tool_name": "pay", "roles": ["agent"], "effect": "deny",
         "condition": {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Gt", "value": 1000}}},
        {"tool_name": "pay", "roles": ["agent", "admin"], "condition": {"All": [
            {"StringCheck": {"source": "Arguments", "pointer": "/payee/iban", "op": "StartsWith", "value": "FR"}},
            {"StringCheck": {"source": "AgentAttributes", "field": "env", "op": "In", "value": ["prod", "staging"]}},
            {"NumericCheck": {"source": "Arguments", "field": "amount", "op": "Between", "value": [1, 500]}},
            {"Length": {"source": "Arguments", "field": "memo", "op": "Lte", "value": 140}},
            {"Type": {"source": "Arguments", "field": "memo", "is": "string"}},
            {"BooleanCheck": {"source": "Context", "pointer": "/flags/approved", "value": True}},
            {"Any": [{"FieldPresent": {"source": "Context", "field": "mfa"}},
                     {"FieldEquals": {"source_a": "AgentAttributes", "field_a": "user_id",
                                      "source_b": "ResourceAttributes", "field_b": "owner_id"}}]},
            {"Not": {"TimeWindow": {"source": "Context", "field": "time", "days": ["Sat", "Sun"], "start": "00:00",
                                    "end": "23:59", "timezone": "Europe/Paris"}}},
            {"Every": {"source": "Arguments", "field": "items",
                       "condition": {"NumericCheck": {"source": "Element", "field": "qty", "op": "Lt", "value": 10}}}},
        ]}},
        {"tool_name": "read", "roles": ["agent"],
         "condition": {"StringCheck": {"source": "Arguments", "field": "path", "op": "PathGlob",
                                       "value": "/srv/*/data-*.csv"}}},
        {"id": "sweep-two", "tool_name": "sweep", "roles": ["admin"], "effect": "elevate", "approvals": 1},
    ],
}
BLOB = Engine.from_dict(POLICY).blob
D = bc.decode(BLOB)
HUGE = 0x7FFFFFF0   # an index or offset past anything in the blob

# record sizes of the sections, in their order after the header (csrc/cg_opcodes.h)
SECTIONS = [("strings", 8, len(D.strings)), ("fields", 12, len(D.fields)), ("sets", 12, len(D.sets)),
            ("members", 4, len(D.members)), ("numbers", 8, len(D.numbers)), ("entries", 16, len(D.entries)),
            ("rules", 16, len(D.rules)), ("words", 4, len(D.words)), ("defaults", 12, len(D.defaults)),
            ("names", 4, D.n_policy_rules)]


def _starts() -> dict[str, int]:
    at, out = bc.HEADER_SIZE, {}
    for name, size, count in SECTIONS:
        out[name] = at
        at += size * count
    out["code"] = at
    out["strdata"] = at + len(D.code)
    return out


START = _starts()


@dataclass
class Corruption:
    """Where (blob offset), what is written there, and the refusal expected at `offset`."""
    what: str
    at: int
    data: bytes
    code: str
    offset: int
    reseal: bool = True


def u32(value: int) -> bytes:
    return struct.pack("<I", value & 0xFFFFFFFF)


def field(section: str, index: int, size: int, k: int, value: int, code: str) -> Corruption:
    at = START[section] + size * index + k
    return Corruption(f"{section}[{index}]+{k} = {value:#x}", at, u32(value), code, at)


def header() -> Iterator[Corruption]:
    yield Corruption("magic", 0, b"XXXX", "blob_magic", 0, reseal=False)
    yield Corruption("format", 4, struct.pack("<H", 99), "blob_version", 4)
    yield Corruption("flags", 6, struct.pack("<H", 0x8000), "blob_flags", 6)
    yield Corruption("length", 8, u32(len(BLOB) + 1), "blob_truncated", 8, reseal=False)
    yield Corruption("crc", 12, u32(zlib.crc32(BLOB[16:]) ^ 1), "blob_checksum", 12, reseal=False)
    for at in range(16, 68, 4):   # the counts and sizes: they must add up to the length
        if at == 52:              # except the version's string id
            yield Corruption("version_sid", 52, u32(len(D.strings)), "blob_bounds", 52)
        else:
            count = struct.unpack_from("<I", BLOB, at)[0]
            yield Corruption(f"count @{at}", at, u32(count + 1), "blob_sizes", 16)
    for at in (68, 72, 76):
        yield Corruption(f"reserved @{at}", at, u32(1), "blob_reserved", at)


def records() -> Iterator[Corruption]:
    n_strings = len(D.strings)
    for i in range(len(D.strings)):
        yield field("strings", i, 8, 0, 0xFFFFFFFF, "blob_bounds")
        yield field("strings", i, 8, 4, 0xFFFFFFFF, "blob_bounds")
        offset, length = struct.unpack_from("<II", BLOB, START["strings"] + 8 * i)
        if length:   # its first byte, not UTF-8: refused at the string's record
            yield Corruption(f"strdata of string {i}", START["strdata"] + offset, b"\xff", "blob_utf8",
                             START["strings"] + 8 * i)
    for i in range(len(D.fields)):
        yield field("fields", i, 12, 0, 99, "blob_bounds")
        yield field("fields", i, 12, 4, n_strings, "blob_bounds")
        yield field("fields", i, 12, 8, n_strings, "blob_bounds")
    for i in range(len(D.sets)):
        yield field("sets", i, 12, 0, 0xFFFFFFFF, "blob_bounds")
        yield field("sets", i, 12, 4, 0xFFFFFFFF, "blob_bounds")
        yield field("sets", i, 12, 8, n_strings, "blob_bounds")
    for i in range(len(D.members)):
        yield field("members", i, 4, 0, n_strings, "blob_bounds")
    for i in range(len(D.numbers)):
        at = START["numbers"] + 8 * i
        yield Corruption(f"numbers[{i}] = NaN", at, struct.pack("<d", math.nan), "blob_number", at)
    for i in range(len(D.entries)):
        yield field("entries", i, 16, 0, n_strings, "blob_bounds")
        yield field("entries", i, 16, 4, n_strings, "blob_bounds")
        yield field("entries", i, 16, 8, 0xFFFFFFFF, "blob_bounds")
        yield field("entries", i, 16, 12, 0, "blob_bounds")
    for i in range(len(D.rules)):
        yield field("rules", i, 16, 0, D.n_policy_rules, "blob_bounds")
        yield field("rules", i, 16, 4, 0xFFFFFFFF, "blob_bounds")
        yield field("rules", i, 16, 8, 0xFFFFFFFF, "blob_bounds")
        yield field("rules", i, 16, 12, 0xF0, "blob_effect")
    for i in range(len(D.defaults)):
        yield field("defaults", i, 12, 0, n_strings, "blob_bounds")
        yield field("defaults", i, 12, 4, 0xF0, "blob_effect")
        yield field("defaults", i, 12, 8, n_strings, "blob_bounds")
    for i in range(D.n_policy_rules):
        yield field("names", i, 4, 0, n_strings, "blob_bounds")


def instructions() -> Iterator[tuple[int, bc.Op, int, tuple[int, ...]]]:
    """(pc, op, flags, operands) of every instruction of the code section."""
    pc = 0
    while pc < len(D.code):
        op = bc.OPCODES[D.code[pc]]
        yield pc, op, D.code[pc + 1], struct.unpack_from(f"<{op.operands}I", D.code, pc + 2)
        pc += bc.insn_len(op)


def word(index: int, value: int, code: str) -> Corruption:
    return field("words", index, 4, 0, value, code)


def path_words(w: int) -> Iterator[Corruption]:
    """base, count, display, tokens of the path descriptor at words[w]."""
    n = D.words[w + 1] & ~bc.PATH_KEY
    yield word(w, len(D.fields) + 5, "blob_bounds")
    yield word(w + 1, HUGE, "blob_bounds")
    yield word(w + 2, len(D.strings), "blob_bounds")
    for k in range(n):
        yield word(w + 3 + k, len(D.strings), "blob_bounds")


def glob_words(g: int) -> Iterator[Corruption]:
    """count, each part's string and KMP table index, and each KMP entry of the glob at g."""
    yield word(g, HUGE, "blob_bounds")
    for k in range(D.words[g]):
        sid, table = D.words[g + 1 + 2 * k], D.words[g + 2 + 2 * k]
        yield word(g + 1 + 2 * k, len(D.strings), "blob_bounds")
        part = D.strings[sid].encode()
        if part:  # an empty part's table is never read
            yield word(g + 2 + 2 * k, HUGE, "blob_bounds")
            for i in range(len(part)):   # the loader recomputes the failure function
                yield word(table + i, D.words[table + i] + 1, "blob_descriptor")


def pglob_words(g: int) -> Iterator[Corruption]:
    yield word(g, HUGE, "blob_bounds")
    for k in range(D.words[g]):
        yield word(g + 1 + k, HUGE, "blob_bounds")
        yield from glob_words(D.words[g + 1 + k])


def window_words(w: int) -> Iterator[Corruption]:
    yield word(w, 0, "blob_descriptor")          # days
    yield word(w + 1, 1440, "blob_descriptor")   # start minute
    yield word(w + 2, 0, "blob_descriptor")      # end minute
    yield word(w + 3, HUGE, "blob_bounds")       # entries
    for i in range(D.words[w + 3]):
        # the first entry starts at 0, the others strictly after the one before
        yield word(w + 4 + 2 * i, 1 if i == 0 else 0, "blob_descriptor")
        yield word(w + 5 + 2 * i, 86400, "blob_descriptor")


def code() -> Iterator[Corruption]:
    seen: set[int] = set()   # a descriptor shared by several instructions is corrupted once

    def once(w: int, words: Callable[[int], Iterator[Corruption]]) -> Iterator[Corruption]:
        if w not in seen:
            seen.add(w)
            yield from words(w)

    for pc, op, flags, operands in instructions():
        at = START["code"] + pc
        yield Corruption(f"opcode @{pc}", at, b"\xff", "blob_opcode", at)
        yield Corruption(f"flags @{pc} {op.name}", at + 1, b"\xff", "blob_insn_flags", at + 1)
        for k in range(op.operands):
            where = at + 2 + 4 * k
            kind = {("TYPE", 1): ("blob_operand", bc.TYPES.__len__()), ("BOOL", 1): ("blob_operand", 2),
                    ("EVERY", 1): ("blob_jump", HUGE), ("SOME", 1): ("blob_jump", HUGE),
                    ("JF", 0): ("blob_jump", HUGE), ("JT", 0): ("blob_jump", HUGE)}.get((op.name, k))
            expected, value = kind or ("blob_bounds", HUGE)
            yield Corruption(f"operand {k} @{pc} {op.name}", where, u32(value), expected, where)
        is_path_a = bool(flags & bc.F_PATH_A)
        if op.operands and is_path_a and op.name not in ("JF", "JT"):
            yield from once(operands[0], path_words)
        if op.name == "EQ" and flags & bc.F_PATH_B:
            yield from once(operands[1], path_words)
        if op.name == "STR":
            yield from once(operands[1], pglob_words if flags & bc.F_STR_PATH else glob_words)
        if op.name == "TIME":
            yield from once(operands[1], window_words)


CORRUPTIONS = [*header(), *records(), *code()]


def corrupt(c: Corruption) -> bytes:
    b = bytearray(BLOB)
    b[c.at:c.at + len(c.data)] = c.data
    if c.reseal:
        b[12:16] = u32(zlib.crc32(bytes(b[16:])))
    return bytes(b)


def refusal(blob: bytes) -> tuple[str, Optional[int]]:
    with pytest.raises(BlobError) as exc:
        LoadedPolicy(blob)
    return exc.value.code, exc.value.offset


def test_the_policy_uses_every_section_and_descriptor_kind():
    """The blob these tests corrupt has records in every section, each descriptor kind, and
    every instruction with operands."""
    assert all(count for _, _, count in SECTIONS)
    names = {op.name for _, op, _, _ in instructions()}
    assert {"NUM", "IN", "PRESENT", "EQ", "STR", "LEN", "TYPE", "TIME", "EVERY", "JF", "JT"} <= names
    assert any(flags & bc.F_STR_PATH for _, op, flags, _ in instructions() if op.name == "STR")
    assert len(CORRUPTIONS) > 400
    LoadedPolicy(BLOB)


@pytest.mark.parametrize("c", CORRUPTIONS, ids=[c.what for c in CORRUPTIONS])
def test_each_corrupted_field_is_refused_at_that_field(c):
    """The loader refuses the blob with the cause of this field and its offset."""
    assert refusal(corrupt(c)) == (c.code, c.offset)


def test_the_wasm_module_reports_the_same_cause_and_offset():
    """The same core in the wasm module: init refuses each corrupted blob with the same
    code and offset (every 5th corruption, and the header's)."""
    pytest.importorskip("wasmtime")
    from callgate.wasm import WasmRuntime

    runtime = WasmRuntime()
    for c in CORRUPTIONS[:21] + CORRUPTIONS[21::5]:
        with pytest.raises(BlobError) as exc:
            runtime.load(corrupt(c))
        assert (exc.value.code, exc.value.offset) == (c.code, c.offset), c.what
