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
from support.v2blobs import ARGS, CONTEXT, build

CRM_BLOB = compile_policy(examples.policy("crm")).blob


def reseal(blob: bytes | bytearray) -> bytes:
    """Recompute length and CRC so that only the structural checks can catch a change."""
    b = bytearray(blob)
    struct.pack_into("<I", b, 8, len(b))
    struct.pack_into("<I", b, 12, zlib.crc32(bytes(b[16:])))
    return bytes(b)


def load_error(blob: bytes) -> str:
    """The core's code for why it refuses `blob` (BlobError.code: csrc/cg_errors.h's names)."""
    with pytest.raises(BlobError) as exc:
        LoadedPolicy(blob)
    return exc.value.code


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
    """Each header problem has its own code."""
    assert load_error(b"XXXX" + CRM_BLOB[4:]) == "blob_magic"
    b = bytearray(CRM_BLOB)
    struct.pack_into("<H", b, 4, 99)
    assert load_error(bytes(b)) == "blob_version"
    b = bytearray(CRM_BLOB)
    b[-1] ^= 1
    assert load_error(bytes(b)) == "blob_checksum"


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
    assert load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", 0))) == "blob_jump"


def test_jump_into_an_instruction_refused():
    """A jump that lands inside an instruction is refused."""
    pc = _first(CRM_BLOB, "JT")
    target = struct.unpack_from("<I", bc.decode(CRM_BLOB).code, pc + 2)[0]
    assert load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", target - 1))) == "blob_jump"


def test_unknown_opcode_refused():
    """An opcode outside the instruction set is refused."""
    pc = _first(CRM_BLOB, "NUM")
    assert load_error(_tamper_code(CRM_BLOB, pc, bytes([200]))) == "blob_opcode"


def test_unknown_flag_refused():
    """Flag bits an instruction does not define are refused."""
    pc = _first(CRM_BLOB, "PRESENT")
    assert load_error(_tamper_code(CRM_BLOB, pc + 1, bytes([0x02]))) == "blob_insn_flags"


def test_field_index_out_of_range_refused():
    """An operand indexing past the field table is refused."""
    pc = _first(CRM_BLOB, "NUM")
    assert load_error(_tamper_code(CRM_BLOB, pc + 2, struct.pack("<I", 999))) == "blob_bounds"


def test_unbalanced_stack_refused():
    """Code whose stack does not balance (an OR turned into NOT) is refused."""
    pc = _first(CRM_BLOB, "OR")
    assert load_error(_tamper_code(CRM_BLOB, pc, bytes([bc.OP["NOT"].code]))) == "blob_stack"


def test_missing_ret_refused():
    """Condition code that does not end with RET is refused."""
    pc = _first(CRM_BLOB, "RET")
    assert load_error(_tamper_code(CRM_BLOB, pc, bytes([bc.OP["TRUE"].code]))) == "blob_stack"


def test_duplicate_entry_refused():
    """Two entries for the same (tool, role) are refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.n_policy_rules = 1
    t, r = b.string("t"), b.string("r")
    b.rules.append((0, 0, 0, bc.effect_word(bc.ALLOW)))
    b.entries += [(t, r, 0, 1), (t, r, 0, 1)]
    assert load_error(b.encode()) == "blob_duplicate"


def test_invalid_utf8_string_refused():
    """Strings in the blob must be valid UTF-8 (they end up in reasons and JSON)."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.strings.append(b"\xff")
    assert load_error(b.encode()) == "blob_utf8"


def test_nan_constant_refused():
    """A NaN comparison constant is refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.numbers.append(float("nan"))
    assert load_error(b.encode()) == "blob_number"


def test_rule_index_out_of_range_refused():
    """A rule record pointing at a policy rule that does not exist is refused."""
    b = bc.BlobBuilder(perso=False, default_allow=False)
    b.version_sid = b.string("v")
    b.n_policy_rules = 1
    b.rules.append((5, 0, 0, bc.effect_word(bc.ALLOW)))
    assert load_error(b.encode()) == "blob_bounds"


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
    engine = Engine(Compiled(blob, compiled.meaning))
    for case in examples.cases("crm"):
        d = engine.evaluate(case["tool"], case["args"], role=case["role"],
                            agent_attributes=case["agent_attributes"],
                            resource_attributes=case["resource_attributes"])
        assert d.decision in ("Allow", "Deny", "Elevate")
        assert isinstance(d.reason, str)


# ---------------------------------------------------------------- format 2: v2 instructions
# Blobs are built with tests/support/v2blobs.py (BlobBuilder); `mutate` edits the builder's words or
# code before encoding, so each test breaks exactly one thing.

def _v2(cond, mutate=None) -> bytes:
    b = build(cond)
    if mutate:
        mutate(b)
    return b.encode()


def _v2_error(cond, mutate=None) -> str:
    return load_error(_v2(cond, mutate))


def _every_leaf(c):
    """One of each v2 leaf, combined with AND, plus a quantifier with an element path."""
    c.string(c.ref(ARGS, "s"), "PathGlob", "/a/*.csv")
    c.string(c.ref(ARGS, "s"), "Contains", "abab")
    c.op("AND")
    c.between(c.ref(ARGS, "n", "0"), 1, 2)
    c.op("AND")
    c.length(c.ref(ARGS, "s"), "Ne", 3)
    c.op("AND")
    c.type(c.ref(ARGS, "s"), "integer")
    c.op("AND")
    c.boolean(c.ref(ARGS, "b"), True)
    c.op("AND")
    c.time(c.ref(CONTEXT, "time"), 0x1F, 22 * 60, 6 * 60, [(0, 3600), (100, -3600)])
    c.op("AND")
    c.eq(c.ref(ARGS, "a", "b"), c.ref(ARGS, "c", "d"))
    c.op("AND")
    c.quant("SOME", c.ref(ARGS, "items"), lambda: c.present(c.ref(None, "x")))
    c.op("AND")


def test_v2_good_blob_loads():
    """A blob using every v2 instruction, flag and descriptor kind loads."""
    LoadedPolicy(_v2(_every_leaf))


def _words_of(b, name: str) -> int:
    """Code offset of the first instruction `name` in the builder's code."""
    pc = 0
    while True:
        op = bc.OPCODES[b.code[pc]]
        if op.name == name:
            return pc
        pc += bc.insn_len(op)


def _set_flags(name: str, flags: int):
    def mutate(b):
        b.code[_words_of(b, name) + 1] = flags
    return mutate


def _set_operand(name: str, k: int, value: int):
    def mutate(b):
        struct.pack_into("<I", b.code, _words_of(b, name) + 2 + 4 * k, value)
    return mutate


@pytest.mark.parametrize("name,flags", [
    ("NUM", 7),          # no comparison 7
    ("LEN", 6),          # Between is NUM only
    ("LEN", 7),
    ("TYPE", 0x01),
    ("BOOL", 0x01),
    ("TIME", 0x20),      # PATH_B is EQ's
    ("STR", 0x04),
    ("SOME", 0x01),
    ("PRESENT", 0x20),
    ("ENDQ", 0x80),
])
def test_v2_flags_refused(name, flags):
    """Flag bits (and comparisons) an instruction does not define are refused."""
    assert _v2_error(_every_leaf, _set_flags(name, flags)) == "blob_insn_flags"


@pytest.mark.parametrize("name,k,value,code", [
    ("TYPE", 1, 7, "blob_operand"),         # CG_N_TYPES: not an index, a value out of its range
    ("BOOL", 1, 2, "blob_operand"),         # the boolean wanted: 0 or 1
    ("TYPE", 2, 10_000, "blob_bounds"),     # display string
    ("TIME", 2, 10_000, "blob_bounds"),
    ("STR", 2, 10_000, "blob_bounds"),
    ("STR", 3, 10_000, "blob_bounds"),
    ("LEN", 1, 10_000, "blob_bounds"),      # numbers
    ("LEN", 2, 10_000, "blob_bounds"),
    ("PRESENT", 0, 10_000, "blob_bounds"),  # a path past the words
    ("STR", 1, 10_000, "blob_bounds"),      # a glob past the words
    ("TIME", 1, 10_000, "blob_bounds"),     # a window past the words
])
def test_v2_operands_out_of_range_refused(name, k, value, code):
    """Operands indexing past a table (types, strings, numbers, words) are refused."""
    assert _v2_error(_every_leaf, _set_operand(name, k, value)) == code


def test_between_needs_two_numbers():
    """NUM Between reads numbers[b] and numbers[b + 1]: b + 1 must exist."""
    def cond(c):
        c.between(c.ref(ARGS, "n"), 1, 2)
    assert _v2_error(cond, _set_operand("NUM", 1, 1)) == "blob_bounds"
    LoadedPolicy(_v2(cond, _set_operand("NUM", 1, 0)))


def _word_patch(find, index: int, value: int):
    """Set words[find(b) + index] (find locates a descriptor in the builder)."""
    def mutate(b):
        b.words[find(b) + index] = value & 0xFFFFFFFF
    return mutate


def _operand_word(name: str, k: int):
    return lambda b: struct.unpack_from("<I", b.code, _words_of(b, name) + 2 + 4 * k)[0]


def _path_cond(c):
    c.present(c.ref(ARGS, "a", "b", "c"))


@pytest.mark.parametrize("index,value", [
    (0, 999),              # base field out of range
    (0, bc.ELEMENT),       # the current element outside any quantifier body
    (1, 3),                # more tokens than words
    (2, 10_000),           # display string
    (3, 10_000),           # token string
])
def test_bad_path_refused(index, value):
    """A path descriptor must be in bounds, name strings, and use the element only in a body."""
    assert _v2_error(_path_cond, _word_patch(_operand_word("PRESENT", 0), index, value)) == "blob_bounds"


def test_key_only_path_needs_a_token():
    """A CG_PATH_KEY path (an Element `field`) names one key at least."""
    def cond(c):
        c.quant("EVERY", c.ref(ARGS, "a"), lambda: c.present(c.element_field("k")))
    LoadedPolicy(_v2(cond))

    def no_token(b):
        b.words[len(b.words) - 3] = 0x80000000
    assert _v2_error(cond, no_token) == "blob_descriptor"


def test_element_path_in_quantifier_ref_needs_enclosing_body():
    """The quantifier's own ref is read outside its body: an element base there is refused
    at the top level and accepted inside another body."""
    def top(c):
        c.quant("EVERY", c.ref(None, "x"), lambda: c.op("TRUE"))
    assert _v2_error(top) == "blob_bounds"

    def nested(c):
        c.quant("EVERY", c.ref(ARGS, "a"),
                lambda: c.quant("EVERY", c.ref(None, "x"), lambda: c.op("TRUE")))
    LoadedPolicy(_v2(nested))


def _glob_cond(c):
    c.string(c.ref(ARGS, "s"), "Glob", "aab*abab")


def _glob_word(b):
    return _operand_word("STR", 1)(b)


@pytest.mark.parametrize("index,value,code", [
    (0, 0, "blob_descriptor"),   # no parts
    (0, 10_000, "blob_bounds"),  # more parts than words
    (1, 10_000, "blob_bounds"),  # part string
    (2, 10_000, "blob_bounds"),  # KMP table past the words
])
def test_bad_glob_refused(index, value, code):
    """A glob descriptor needs >= 1 part, string ids and KMP tables in bounds."""
    assert _v2_error(_glob_cond, _word_patch(_glob_word, index, value)) == code


@pytest.mark.parametrize("part,entry,value", [
    (0, 0, 1),       # fail[0] is always 0
    (0, 1, 0),       # "aab": fail[1] is 1
    (1, 3, 1),       # "abab": fail[3] is 2
    (1, 2, 0),       # "abab": fail[2] is 1
])
def test_wrong_kmp_table_refused(part, entry, value):
    """A failure table that differs from the true KMP failure function is refused (the
    loader recomputes it)."""
    def mutate(b):
        table = b.words[_glob_word(b) + 2 + 2 * part]
        b.words[table + entry] = value
    assert _v2_error(_glob_cond, mutate) == "blob_descriptor"


def test_bad_pglob_refused():
    """A PathGlob descriptor needs >= 1 component, each a valid glob."""
    def cond(c):
        c.string(c.ref(ARGS, "s"), "PathGlob", "/a*")
    assert _v2_error(cond, _word_patch(_operand_word("STR", 1), 0, 0)) == "blob_descriptor"
    assert _v2_error(cond, _word_patch(_operand_word("STR", 1), 1, 10_000)) == "blob_bounds"


def _window_cond(c):
    c.time(c.ref(CONTEXT, "time"), 0x1F, 9 * 60, 17 * 60, [(0, 3600), (1000, 7200), (2000, 3600)])


@pytest.mark.parametrize("index,value,code", [
    (0, 0, "blob_descriptor"), (0, 128, "blob_descriptor"),       # days: non-empty, 7 bits
    (1, 1440, "blob_descriptor"),                                 # start 0..1439
    (2, 0, "blob_descriptor"), (2, 1441, "blob_descriptor"),      # end 1..1440
    (2, 9 * 60, "blob_descriptor"),                               # start == end
    (3, 0, "blob_descriptor"), (3, 4, "blob_bounds"),             # n >= 1, in bounds
    (4, 1, "blob_descriptor"),                                    # the first entry starts at 0
    (6, 0, "blob_descriptor"), (6, 2000, "blob_descriptor"),      # strictly ascending
    (5, 86400, "blob_descriptor"), (7, -86400, "blob_descriptor"),  # |offset| < 86400
])
def test_bad_window_refused(index, value, code):
    """Every field of a window descriptor is range-checked."""
    assert _v2_error(_window_cond, _word_patch(_operand_word("TIME", 1), index, value)) == code


def test_window_extremes_accepted():
    """start 0, end 1440, offsets +-86399 are fine."""
    def cond(c):
        c.time(c.ref(CONTEXT, "time"), 0x7F, 0, 1440, [(0, 86399), (5, -86399)])
    LoadedPolicy(_v2(cond))


# ---- quantifier bodies

def _quant_code(b, ops):
    """Replace the rule's code by raw instructions ops = [(name, flags, *operands)]; the
    rule lengths follow. `END` in operands is replaced by the offset after the last ENDQ."""
    field = b.field(ARGS, "a")
    code = bytearray()
    for name, flags, *operands in ops:
        code += struct.pack(f"<BB{len(operands)}I", bc.OP[name].code, flags,
                            *(field if o == "F" else o for o in operands))
    b.code[:] = code
    b.rules[:] = [(i, 0, len(code), eff) for i, _, _, eff in b.rules]


def _raw(ops):
    def mutate(b):
        _quant_code(b, ops)
    return lambda c: c.op("TRUE"), mutate


# offsets: EVERY is 10 bytes, TRUE/ENDQ/RET/AND 2, JF 6, PRESENT 6
GOOD = [("EVERY", 0, "F", 14), ("TRUE", 0), ("ENDQ", 0), ("RET", 0)]


def test_raw_quantifier_loads():
    """The raw layout the body tests start from is valid."""
    LoadedPolicy(_v2(*_raw(GOOD)))


@pytest.mark.parametrize("ops,code", [
    ([("EVERY", 0, "F", 12), ("TRUE", 0), ("ENDQ", 0), ("RET", 0)], "blob_stack"),  # end at ENDQ
    ([("EVERY", 0, "F", 18), ("TRUE", 0), ("ENDQ", 0), ("RET", 0)], "blob_jump"),        # past the rule
    ([("EVERY", 0, "F", 10), ("TRUE", 0), ("ENDQ", 0), ("RET", 0)], "blob_jump"),        # empty body
    ([("EVERY", 0, "F", 14), ("TRUE", 0), ("TRUE", 0), ("RET", 0)], "blob_stack"),  # no ENDQ
    ([("TRUE", 0), ("ENDQ", 0), ("RET", 0)], "blob_stack"),                         # ENDQ outside
    ([("EVERY", 0, "F", 14), ("TRUE", 0), ("RET", 0), ("RET", 0)], "blob_stack"),   # RET inside
    ([("EVERY", 0, "F", 12), ("ENDQ", 0), ("RET", 0)], "blob_stack"),               # body leaves nothing
    ([("EVERY", 0, "F", 16), ("TRUE", 0), ("TRUE", 0), ("ENDQ", 0), ("RET", 0)], "blob_stack"),  # two
    ([("EVERY", 0, "F", 16), ("TRUE", 0), ("ENDQ", 0), ("TRUE", 0), ("RET", 0)], "blob_stack"),  # ENDQ mid-body
    ([("TRUE", 0), ("EVERY", 0, "F", 16), ("NOT", 0), ("ENDQ", 0), ("AND", 0), ("RET", 0)],
     "blob_stack"),                                                                  # body starts empty
    # a jump from before the body into it
    ([("TRUE", 0), ("JF", 0, 20), ("EVERY", 0, "F", 26), ("TRUE", 0), ("TRUE", 0), ("AND", 0),
      ("ENDQ", 0), ("AND", 0), ("RET", 0)], "blob_jump"),
    # a jump from inside the body out of it (to the AND after the ENDQ)
    ([("TRUE", 0), ("EVERY", 0, "F", 22), ("TRUE", 0), ("JF", 0, 22), ("ENDQ", 0), ("AND", 0),
      ("RET", 0)], "blob_jump"),
])
def test_bad_quantifier_bodies_refused(ops, code):
    """Body structure: the end operand lands just after the body's ENDQ, the body starts
    empty and leaves one value, ENDQ only ends a body, RET never inside one, and no jump
    crosses a body boundary."""
    assert load_error(_v2(*_raw(ops))) == code


def test_jump_inside_body_to_its_endq_accepted():
    """A jump inside a body may land on the body's own ENDQ (an All's short-circuit)."""
    ops = [("EVERY", 0, "F", 24), ("TRUE", 0), ("JF", 0, 22), ("TRUE", 0), ("AND", 0),
           ("ENDQ", 0), ("RET", 0)]
    LoadedPolicy(_v2(*_raw(ops)))


def test_quantifier_nesting_limit():
    """Eight nested bodies load, nine are refused."""
    def nest(n):
        def cond(c):
            def level(k):
                if k == 0:
                    return c.op("TRUE")
                c.quant("SOME", c.ref(None) if k < n else c.ref(ARGS, "a"), lambda: level(k - 1))
            level(n)
        return cond
    LoadedPolicy(_v2(nest(8)))
    assert _v2_error(nest(9)) == "blob_stack"


def test_descriptor_used_as_two_things_is_refused():
    """One words index named as a window by TIME and as a glob by STR is refused: the loader
    checks each descriptor once, and only as one kind."""
    def cond(c):
        _window_cond(c)
        c.string(c.ref(ARGS, "s"), "Glob", "a*b")
        c.op("AND")

    def alias(b):
        window = struct.unpack_from("<I", b.code, _words_of(b, "TIME") + 6)[0]
        struct.pack_into("<I", b.code, _words_of(b, "STR") + 6, window)
    assert _v2_error(cond, alias) == "blob_descriptor"


def test_descriptor_shared_by_many_instructions_loads_and_decides():
    """Two hundred instructions naming one window and one glob load: a descriptor checked
    once is accepted again without being refused as a second kind."""
    def cond(c):
        for k in range(200):
            _window_cond(c)
            c.string(c.ref(ARGS, "s"), "Glob", "a*b")
            c.op("AND")
            if k:
                c.op("AND")
    LoadedPolicy(_v2(cond))


def test_policy_rule_count_beyond_int32_refused():
    """n_policy_rules above 2^31 - 1 is refused (a rule index must survive the signed
    (rule + 1) << 4 result encoding, or an Allow could read as a negative error code): its
    names section, a word per rule, cannot fit in a blob, whose length is below 2^31."""
    def huge(b):
        b.n_policy_rules = 0x80000000
    assert _v2_error(lambda c: c.op("TRUE"), huge) == "blob_sizes"


def test_compile_restores_the_cyclic_collector_as_it_found_it(monkeypatch):
    """Compiling pauses the cyclic garbage collector (speed) and turns it back on after,
    also when the policy is refused; a collector that was off stays off."""
    import gc

    from callgate import PolicyError, compiler

    assert gc.isenabled()
    seen = []
    real_meaning = compiler.Meaning
    monkeypatch.setattr(compiler, "Meaning", lambda *a, **k: seen.append(gc.isenabled()) or real_meaning(*a, **k))
    compile_policy(examples.policy("crm"))
    assert seen == [False] and gc.isenabled()
    with pytest.raises(PolicyError):
        compile_policy({"version": "1", "default_action": "Deny", "rules": [{"tool_name": 3}]})
    assert gc.isenabled()
    gc.disable()
    try:
        compile_policy(examples.policy("crm"))
        assert not gc.isenabled()
    finally:
        gc.enable()
