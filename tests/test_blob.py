"""The loader is the trust boundary: corrupt, truncated or hostile blobs are refused with
their own error, and a blob that loads can never crash an evaluation."""

from __future__ import annotations

import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from callgate import BlobError, examples
from callgate import bytecode as bc
from callgate._native import LoadedPolicy
from callgate.compiler import Compiled, compile_policy
from callgate.engine import Engine

CRM_BLOB = compile_policy(examples.policy("crm")).blob


def reseal(blob: bytes | bytearray) -> bytes:
    """Recompute length and CRC so that only the structural checks can catch a change."""
    b = bytearray(blob)
    struct.pack_into("<I", b, 8, len(b))
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])))
    return bytes(b)


def load_error(blob: bytes) -> str:
    with pytest.raises(BlobError) as exc:
        LoadedPolicy(blob)
    return exc.value.message


def test_valid_blob_loads():
    """The compiler's blob passes verification."""
    assert LoadedPolicy(CRM_BLOB).n_fields == 6


def test_every_truncation_is_refused():
    """A blob cut at any length is refused (never read past its end)."""
    for n in range(len(CRM_BLOB)):
        load_error(CRM_BLOB[:n])


def test_every_single_byte_flip_is_refused():
    """Flipping any byte is caught (by the checksum, or by the header checks before it)."""
    for i in range(len(CRM_BLOB)):
        b = bytearray(CRM_BLOB)
        b[i] ^= 0x40
        load_error(bytes(b))


def test_magic_version_and_checksum_messages():
    """Each header problem has its own message."""
    assert "not a callgate" in load_error(b"XXXX" + CRM_BLOB[4:])
    b = bytearray(CRM_BLOB)
    struct.pack_into("<H", b, 4, 99)
    assert "version" in load_error(bytes(b))
    b = bytearray(CRM_BLOB)
    b[-1] ^= 1
    assert "checksum" in load_error(bytes(b))


def _tamper_code(blob: bytes, pc: int, new: bytes) -> bytes:
    """Overwrite code bytes at code offset pc, then reseal."""
    d = bc.decode(blob)
    str_len = struct.unpack_from("<I", blob, 48)[0]
    code_start = len(blob) - str_len - len(d.code)
    b = bytearray(blob)
    b[code_start + pc:code_start + pc + len(new)] = new
    return reseal(b)


def _first(blob: bytes, name: str) -> int:
    d = bc.decode(blob)
    pc = 0
    while pc < len(d.code):
        op = bc.OPCODES[d.code[pc]]
        if op.name == name:
            return pc
        pc += bc.insn_len(op)
    raise AssertionError(name)


def test_backward_jump_refused():
    """A jump that does not go forward is refused (evaluation must terminate)."""
    pc = _first(CRM_BLOB, "JT")
    assert "jump" in load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", 0)))


def test_jump_into_an_instruction_refused():
    """A jump that lands inside an instruction is refused."""
    pc = _first(CRM_BLOB, "JT")
    target = struct.unpack_from("<I", bc.decode(CRM_BLOB).code, pc + 2)[0]
    assert "jump" in load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", target - 1)))


def test_unknown_opcode_refused():
    """An opcode outside the instruction set is refused."""
    pc = _first(CRM_BLOB, "NUM")
    assert "opcode" in load_error(_tamper_code(CRM_BLOB, pc, bytes([200])))


def test_unknown_flag_refused():
    """Flag bits an instruction does not define are refused."""
    pc = _first(CRM_BLOB, "PRESENT")
    assert "opcode" in load_error(_tamper_code(CRM_BLOB, pc + 1, bytes([0x02])))


def test_field_index_out_of_range_refused():
    """An operand indexing past the field table is refused."""
    pc = _first(CRM_BLOB, "NUM")
    assert "range" in load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", 999)))


def test_unbalanced_stack_refused():
    """Code whose stack does not balance (an OR turned into NOT) is refused."""
    pc = _first(CRM_BLOB, "OR")
    assert "unbalanced" in load_error(_tamper_code(CRM_BLOB, pc, bytes([bc.OP["NOT"].code])))


def test_missing_ret_refused():
    """Condition code that does not end with RET is refused."""
    pc = _first(CRM_BLOB, "RET")
    assert "unbalanced" in load_error(_tamper_code(CRM_BLOB, pc, bytes([bc.OP["TRUE"].code])))


def test_duplicate_entry_refused():
    """Two entries for the same (tool, role) are refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.n_policy_rules = 1
    t, r = b.string("t"), b.string("r")
    b.rules.append((0, 0, 0))
    b.entries += [(t, r, 0, 1), (t, r, 0, 1)]
    assert "duplicate" in load_error(b.encode())


def test_invalid_utf8_string_refused():
    """Strings in the blob must be valid UTF-8 (they end up in reasons and JSON)."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.strings.append(b"\xff")
    assert "range" in load_error(b.encode())


def test_nan_constant_refused():
    """A NaN comparison constant is refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.numbers.append(float("nan"))
    assert "range" in load_error(b.encode())


def test_rule_index_out_of_range_refused():
    """A rule record pointing at a policy rule that does not exist is refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.n_policy_rules = 1
    b.rules.append((5, 0, 0))
    assert "range" in load_error(b.encode())


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.integers(16, len(CRM_BLOB) - 1), st.integers(0, 255)), min_size=1, max_size=4))
def test_mutated_resealed_blobs_never_crash(mutations):
    """Random byte changes with a valid checksum: the loader refuses the blob, or it loads
    and every CRM case evaluates to a decision or a RequestError (no crash, no hang)."""
    b = bytearray(CRM_BLOB)
    for i, v in mutations:
        b[i] = v
    blob = reseal(b)
    try:
        LoadedPolicy(blob)
    except BlobError:
        return
    compiled = compile_policy(examples.policy("crm"))
    engine = Engine(Compiled(blob, compiled.policy, compiled.semantics, compiled.table))
    for case in examples.cases("crm"):
        d = engine.evaluate(case["tool"], case["args"], role=case["role"],
                            agent_attributes=case["agent_attributes"],
                            resource_attributes=case["resource_attributes"])
        assert d.decision in ("Allow", "Deny")
        assert isinstance(d.reason, str)
