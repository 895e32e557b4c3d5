"""The compiled policy blob: encoder and disassembler.

The layout is drawn in csrc/cg_opcodes.h, and its numbers are not copied here: the format
constants and the instruction table come from the built core (the binding exposes every
integer constant of cg_opcodes.h and `cg_opcode`, generated from its one X-macro list).
What is named here is only how the policy language's words map onto those numbers.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ._native import lib, opcodes


def _by_code(codes: dict[str, int]) -> tuple[str, ...]:
    """The names in the order of their codes, which must be 0, 1, 2...: a tuple indexed
    by code (and `.index(name)` gives the code)."""
    order = sorted(codes, key=codes.__getitem__)
    if [codes[name] for name in order] != list(range(len(order))):  # pragma: no cover - a core change
        raise ImportError(f"the core's codes are not 0..n-1: {codes}")
    return tuple(order)


MAGIC = struct.pack("<I", lib.CG_MAGIC_U32)
FORMAT = lib.CG_BLOB_FORMAT
HEADER_SIZE = lib.CG_HEADER_SIZE
FLAG_PERSO = lib.CG_FLAG_PERSO
FLAG_DEFAULT_ALLOW = lib.CG_FLAG_DEFAULT_ALLOW

SOURCES = _by_code({"Arguments": lib.CG_SRC_ARGS, "AgentAttributes": lib.CG_SRC_AGENT,
                    "ResourceAttributes": lib.CG_SRC_RESOURCE, "Context": lib.CG_SRC_CONTEXT,
                    "Principal": lib.CG_SRC_PRINCIPAL})
CMP_OPS = _by_code({"Lt": lib.CG_CMP_LT, "Lte": lib.CG_CMP_LE, "Gt": lib.CG_CMP_GT, "Gte": lib.CG_CMP_GE,
                    "Eq": lib.CG_CMP_EQ, "Ne": lib.CG_CMP_NE, "Between": lib.CG_CMP_BETWEEN})
CMP_SYMBOLS = tuple({"Lt": "<", "Lte": "<=", "Gt": ">", "Gte": ">=", "Eq": "==", "Ne": "!=",
                     "Between": "between"}[name] for name in CMP_OPS)
F_NEGATED = lib.CG_F_NEGATED
F_PATH_A = lib.CG_F_PATH_A        # the first ref operand is a path descriptor (words index)
F_PATH_B = lib.CG_F_PATH_B        # EQ: the second ref operand is a path descriptor
F_NOTIN = lib.CG_F_NOTIN
F_STR_NOT = lib.CG_F_STR_NOT      # STR: inverted result (Ne)
F_STR_PATH = lib.CG_F_STR_PATH    # STR: b is a pglob (PathGlob)
ELEMENT = lib.CG_ELEMENT          # path base: the current element of the innermost Every/Some
PATH_KEY = lib.CG_PATH_KEY        # path n_tokens bit: token 0 is an object key only (an Element `field`)
NO_NAME = lib.CG_NO_NAME          # names section: the rule has no id (reasons say "rule N")
TIME_END = lib.CG_TIME_END        # 2100-01-01T00:00:00Z
NONE_SET = lib.CG_NONE_SET        # url / pathchk descriptor: no set for this key
URL_NO_USERINFO = lib.CG_URL_NO_USERINFO  # url flags: an '@' before the host fails
URL_PUBLIC = lib.CG_URL_PUBLIC            # url flags: ip "public"
PC_WINDOWS = lib.CG_PC_WINDOWS            # pathchk flags: Windows style
PC_RELATIVE = lib.CG_PC_RELATIVE          # pathchk flags: relative paths are checked
SC_SQLITE = lib.CG_SC_SQLITE              # sqlchk flags: dialect SQLite (else PostgreSQL)
SC_READ_ONLY = lib.CG_SC_READ_ONLY        # sqlchk flags: read_only
SC_MYSQL = lib.CG_SC_MYSQL                # sqlchk flags: dialect MySQL
MAX_STACK = lib.CG_MAX_STACK      # the deepest condition stack the loader accepts
TYPES = _by_code({"string": lib.CG_TY_STRING, "number": lib.CG_TY_NUMBER, "integer": lib.CG_TY_INTEGER,
                  "boolean": lib.CG_TY_BOOLEAN, "null": lib.CG_TY_NULL, "array": lib.CG_TY_ARRAY,
                  "object": lib.CG_TY_OBJECT})
DENY, ALLOW, ELEVATE = lib.CG_DENY, lib.CG_ALLOW, lib.CG_ELEVATE


def effect_word(decision: int, approvals: int = 0) -> int:
    """A rule's or default's effect: decision in bits 0-1, approvals in bits 2-3."""
    return decision | approvals << 2


def kmp_table(part: bytes) -> list[int]:
    """The KMP failure function of a glob part (the loader recomputes and compares it)."""
    fail = [0] * len(part)
    k = 0
    for i in range(1, len(part)):
        while k and part[i] != part[k]:
            k = fail[k - 1]
        if part[i] == part[k]:
            k += 1
        fail[i] = k
    return fail


class Op(NamedTuple):
    """One instruction of the core's table: its opcode, mnemonic and number of u32 operands."""

    code: int
    name: str
    operands: int


# the core's instruction table, in opcode order (csrc/cg_opcodes.h's CG_OPCODES, read through cg_opcode)
OPCODES = tuple(Op(i, name, operands) for i, (name, operands, _effect, _flags) in enumerate(opcodes()))
OP = {op.name: op for op in OPCODES}


def insn_len(op: Op) -> int:
    """The encoded size of an instruction in bytes: opcode and flags, then its u32 operands."""
    return 2 + 4 * op.operands


@dataclass
class BlobBuilder:
    """Collects the sections of a blob; `encode()` lays them out."""

    perso: bool
    default_allow: bool
    strings: list[bytes] = field(default_factory=list)
    _sid: dict[bytes, int] = field(default_factory=dict)
    fields: list[tuple[int, int, int]] = field(default_factory=list)
    _fid: dict[tuple[int, str], int] = field(default_factory=dict)
    sets: list[tuple[int, int, int]] = field(default_factory=list)
    _setid: dict[tuple[tuple[str, ...], str], int] = field(default_factory=dict)
    members: list[int] = field(default_factory=list)
    numbers: list[float] = field(default_factory=list)
    _numid: dict[tuple[float, str] | tuple[str, float, str, float, str], int] = field(default_factory=dict)
    entries: list[tuple[int, int, int, int]] = field(default_factory=list)
    rules: list[tuple[int, int, int, int]] = field(default_factory=list)  # index, code, len, effect
    words: list[int] = field(default_factory=list)
    _wordid: dict[tuple[object, ...], int] = field(default_factory=dict)  # (kind, contents...) -> words index
    defaults: list[tuple[int, int, int]] = field(default_factory=list)    # tool, effect, tier
    names: list[int] = field(default_factory=list)   # per policy rule: its id's sid, or NO_NAME
    code: bytearray = field(default_factory=bytearray)
    version_sid: int = 0
    n_policy_rules: int = 0

    def string(self, s: str) -> int:
        """The index of `s` in the string table (added once, UTF-8)."""
        b = s.encode("utf-8")
        sid = self._sid.get(b)
        if sid is None:
            sid = self._sid[b] = len(self.strings)
            self.strings.append(b)
        return sid

    def field(self, source: int, name: str) -> int:
        """The index of the field `name` of `source` (a SOURCES code) in the fields section."""
        key = (source, name)
        fid = self._fid.get(key)
        if fid is None:
            fid = self._fid[key] = len(self.fields)
            self.fields.append((source, self.string(name), self.string(f"{SOURCES[source]}.{name}")))
        return fid

    def set(self, values: list[str], display: str) -> int:
        """The index of a string set (its distinct members, in order, and its display text)."""
        key = (tuple(values), display)
        set_id = self._setid.get(key)
        if set_id is None:
            set_id = self._setid[key] = len(self.sets)
            unique = list(dict.fromkeys(values))
            self.sets.append((len(self.members), len(unique), self.string(display)))
            self.members.extend(self.string(v) for v in unique)
        return set_id

    def number(self, value: float) -> int:
        """The index of `value` in the numbers section (0.0 and -0.0 kept apart)."""
        key = (value, str(value))  # keeps 0.0 and -0.0 apart
        nid = self._numid.get(key)
        if nid is None:
            nid = self._numid[key] = len(self.numbers)
            self.numbers.append(float(value))
        return nid

    def number_pair(self, lo: float, hi: float) -> int:
        """Two consecutive numbers (Between): returns the index of lo."""
        key = ("pair", lo, str(lo), hi, str(hi))
        nid = self._numid.get(key)
        if nid is None:
            nid = self._numid[key] = len(self.numbers)
            self.numbers.extend((float(lo), float(hi)))
        return nid

    def _descriptor(self, key: tuple[object, ...], words: list[int]) -> int:
        at = self._wordid.get(key)
        if at is None:
            at = self._wordid[key] = len(self.words)
            self.words.extend(words)
        return at

    def ref(self, source: int | None, tokens: tuple[str, ...], display: str, *,
            as_path: bool = False, key_only: bool = False) -> tuple[int, bool]:
        """A value operand: (operand, is_path). source None is the current element; tokens
        are the keys/indexes from the source object down. A plain field (one token, not
        as_path) is a field index, shown as `Source.field`; a path keeps its own display.
        key_only (an Element `field`): the first token names an object key, never an index."""
        if source is not None and len(tokens) == 1 and not as_path:
            return self.field(source, tokens[0]), False
        if source is None:
            base, rest = ELEMENT, tokens
        else:
            base, rest = self.field(source, tokens[0]), tokens[1:]
        count = len(rest) | (PATH_KEY if key_only and rest else 0)
        words = [base, count, self.string(display), *(self.string(t) for t in rest)]
        return self._descriptor(("path", base, rest, display, count), words), True

    def glob(self, parts: list[str]) -> int:
        """A glob descriptor: the pattern's literal parts between `*`s (one part: equality)."""
        key = ("glob", tuple(parts))
        at = self._wordid.get(key)
        if at is not None:
            return at
        tables = []
        for part in parts:
            tables.append(len(self.words))
            self.words.extend(kmp_table(part.encode("utf-8")))
        words = [len(parts)]
        for part, table in zip(parts, tables):
            words += [self.string(part), table]
        return self._descriptor(key, words)

    def pglob(self, components: list[list[str]]) -> int:
        """A PathGlob descriptor: one glob per `/`-separated component."""
        globs = [self.glob(parts) for parts in components]
        return self._descriptor(("pglob", tuple(map(tuple, components))), [len(globs), *globs])

    def window(self, days: int, start: int, end: int, offsets: list[tuple[int, int]]) -> int:
        """A TimeWindow descriptor: weekday mask (bit 0 Monday), minutes, UTC offset table."""
        words = [days, start, end, len(offsets)]
        for utc_start, offset in offsets:
            words += [utc_start, offset & 0xFFFFFFFF]
        return self._descriptor(("window", days, start, end, tuple(offsets)), words)

    def url_check(self, flags: int, schemes: int, hosts: int, suffixes: int, ports: int) -> int:
        """A UrlCheck descriptor: flags (URL_*), then a set index or NONE_SET per list."""
        words = [flags, schemes, hosts, suffixes, ports]
        return self._descriptor(("url", *words), words)

    def path_check(self, flags: int, within: int, not_within: int, extensions: int) -> int:
        """A PathCheck descriptor: flags (PC_*), then a set index or NONE_SET per list."""
        words = [flags, within, not_within, extensions]
        return self._descriptor(("pathchk", *words), words)

    def sql_check(self, flags: int, max_statements: int, schemas: int, tables: int, functions: int) -> int:
        """A SqlCheck descriptor: flags (SC_*), max_statements (0: any), then a set index or
        NONE_SET per list."""
        words = [flags, max_statements, schemas, tables, functions]
        return self._descriptor(("sqlchk", *words), words)

    def emit(self, name: str, flags: int = 0, *operands: int) -> int:
        """Append one instruction; returns its offset in the code section."""
        op = OP[name]
        assert len(operands) == op.operands, name
        at = len(self.code)
        self.code += struct.pack(f"<BB{op.operands}I", op.code, flags, *operands)
        return at

    def patch_jump(self, at: int, target: int) -> None:
        """Set the target of the jump instruction at `at` (its first operand)."""
        struct.pack_into("<I", self.code, at + 2, target)

    def patch_operand(self, at: int, index: int, value: int) -> None:
        """Set operand `index` (0-based) of the instruction at `at` (EVERY/SOME's end)."""
        struct.pack_into("<I", self.code, at + 2 + 4 * index, value)

    def rule_names(self) -> list[int]:
        """The names section: one word per policy rule, NO_NAME for those `names` leaves out.
        (A hand-made n_policy_rules beyond any real policy, which tests use to check that the
        loader refuses it, gets no padding: that blob's sizes do not add up either way.)"""
        if self.n_policy_rules > 1 << 24:
            return list(self.names)
        return (self.names + [NO_NAME] * self.n_policy_rules)[:self.n_policy_rules]

    def encode(self) -> bytes:
        """The blob: header (magic, format, flags, total size, CRC-32, counts), then every section."""
        strdata = bytearray()
        string_table = bytearray()
        for s in self.strings:
            string_table += struct.pack("<II", len(strdata), len(s))
            strdata += s
        body = b"".join(
            [
                bytes(string_table),
                b"".join(struct.pack("<III", *f) for f in self.fields),
                b"".join(struct.pack("<III", *s) for s in self.sets),
                struct.pack(f"<{len(self.members)}I", *self.members),
                struct.pack(f"<{len(self.numbers)}d", *self.numbers),
                b"".join(struct.pack("<IIII", *e) for e in self.entries),
                b"".join(struct.pack("<IIII", *r) for r in self.rules),
                struct.pack(f"<{len(self.words)}I", *self.words),
                b"".join(struct.pack("<III", *d) for d in self.defaults),
                b"".join(struct.pack("<I", n) for n in self.rule_names()),
                bytes(self.code),
                bytes(strdata),
            ]
        )
        counts = struct.pack(
            "<16I",
            len(self.strings), len(self.fields), len(self.sets), len(self.members),
            len(self.numbers), len(self.entries), len(self.rules), len(self.code),
            len(strdata), self.version_sid, self.n_policy_rules, len(self.words),
            len(self.defaults), 0, 0, 0,
        )
        flags = (FLAG_PERSO if self.perso else 0) | (FLAG_DEFAULT_ALLOW if self.default_allow else 0)
        total = HEADER_SIZE + len(body)
        tail = counts + body
        crc = zlib.crc32(tail)
        return MAGIC + struct.pack("<HHII", FORMAT, flags, total, crc) + tail


# ---------------------------------------------------------------- reading a blob back


@dataclass
class DecodedBlob:
    """A blob's header flags and sections, as `decode` splits them (strings decoded, the
    version string resolved)."""

    flags: int
    strings: list[str]
    fields: list[tuple[int, int, int]]
    sets: list[tuple[int, int, int]]
    members: list[int]
    numbers: list[float]
    entries: list[tuple[int, int, int, int]]
    rules: list[tuple[int, int, int, int]]
    words: list[int]
    defaults: list[tuple[int, int, int]]
    names: list[int]
    code: bytes
    version: str
    n_policy_rules: int


def decode(blob: bytes) -> DecodedBlob:
    """Split a blob into its sections (for the disassembler and tests; the C loader is the
    one that verifies)."""
    if blob[:4] != MAGIC:
        raise ValueError("not a callgate policy blob")
    fmt, flags, total, _crc = struct.unpack_from("<HHII", blob, 4)
    if fmt != FORMAT:
        raise ValueError(f"blob format {fmt}, expected {FORMAT}")
    (n_str, n_fields, n_sets, n_members, n_numbers, n_entries, n_rules, code_len, str_len,
     version_sid, n_policy_rules, n_words, n_defaults, *_) = struct.unpack_from("<16I", blob, 16)
    at = HEADER_SIZE

    def take(fmt: str, count: int) -> list[tuple[Any, ...]]:
        nonlocal at
        size = struct.calcsize(fmt)
        out = [struct.unpack_from(fmt, blob, at + i * size) for i in range(count)]
        at += size * count
        return out

    str_entries = take("<II", n_str)
    fields = take("<III", n_fields)
    sets = take("<III", n_sets)
    members = [m for (m,) in take("<I", n_members)]
    numbers = [n for (n,) in take("<d", n_numbers)]
    entries = take("<IIII", n_entries)
    rules = take("<IIII", n_rules)
    words = [w for (w,) in take("<I", n_words)]
    defaults = take("<III", n_defaults)
    names = [n for (n,) in take("<I", n_policy_rules)]
    code = blob[at:at + code_len]
    at += code_len
    strdata = blob[at:at + str_len]
    strings = [strdata[o:o + n].decode("utf-8") for o, n in str_entries]
    return DecodedBlob(flags, strings, fields, sets, members, numbers, entries, rules, words,
                       defaults, names, code, strings[version_sid], n_policy_rules)


EFFECT_NAMES = ("deny", "allow", "elevate")


def _effect_text(effect: int) -> str:
    decision, approvals = effect & 3, effect >> 2 & 3
    name = EFFECT_NAMES[decision] if decision < 3 else f"effect {effect:#x}"
    return f"{name} ({approvals} approval{'s' if approvals != 1 else ''})" if decision == ELEVATE else name


def disassemble(blob: bytes) -> str:
    """A readable listing of a blob: header, entries, defaults and every rule's condition
    code, one line per instruction (quantifier bodies indented)."""
    d = decode(blob)
    s = d.strings
    lines = [
        f"callgate blob format {FORMAT}, {len(blob)} bytes, policy version {d.version!r}",
        f"semantics {'perso' if d.flags & FLAG_PERSO else 'strict'}, "
        f"default_action {'Allow' if d.flags & FLAG_DEFAULT_ALLOW else 'Deny'}",
        f"{len(d.entries)} (tool, role) entries, {len(d.rules)} rule slots, {len(d.fields)} fields, "
        f"{len(d.sets)} sets ({len(d.members)} members), {len(d.numbers)} numbers, "
        f"{len(d.words)} words, {len(d.defaults)} tier defaults, {len(d.code)} code bytes, "
        f"{len(s)} strings",
        "",
    ]
    def label(index: int) -> str:
        """As reasons name a rule: its number from 1, with its id when it has one."""
        name = d.names[index]
        return f"rule {index + 1}" if name == NO_NAME else f"rule {index + 1} ({s[name]})"

    for tool, role, first, n in sorted(d.entries, key=lambda e: (s[e[0]], s[e[1]])):
        rules = ", ".join(f"{label(d.rules[first + k][0])} ({_effect_text(d.rules[first + k][3])})"
                          for k in range(n))
        lines.append(f"entry {s[tool]!r} x {s[role]!r} -> {rules}")
    for tool, effect, tier in sorted(d.defaults, key=lambda t: s[t[0]]):
        lines.append(f"default {s[tool]!r} (tier {s[tier]!r}) -> {_effect_text(effect)}")
    lines.append("")
    for index, off, length in sorted({r[:3] for r in d.rules}):  # each rule's code once
        if length == 0:
            lines.append(f"{label(index)}: no condition")
            continue
        lines.append(f"{label(index)}: code {off}..{off + length}")
        lines.extend(_listing(d, off, off + length))
    return "\n".join(lines) + "\n"


def _ref_text(d: DecodedBlob, operand: int, is_path: bool) -> str:
    """The display name of a ref operand: a field's, or a path descriptor's."""
    if is_path:
        return d.strings[d.words[operand + 2]]
    return d.strings[d.fields[operand][2]]


def _listing(d: DecodedBlob, start: int, end: int) -> list[str]:
    out = []
    pc = start
    s = d.strings
    ends: list[int] = []  # ends of the open quantifier bodies
    while pc < end:
        while ends and pc >= ends[-1]:
            ends.pop()
        op = OPCODES[d.code[pc]]
        flags = d.code[pc + 1]
        ops = struct.unpack_from(f"<{op.operands}I", d.code, pc + 2)
        neg = " ; negated" if flags & F_NEGATED else ""
        a = _ref_text(d, ops[0], bool(flags & F_PATH_A)) if op.name in _REF_OPS else ""
        if op.name == "NUM":
            cmp = flags & 7
            text = f"{a} {CMP_SYMBOLS[cmp]} {s[ops[2]]}"
        elif op.name == "LEN":
            text = f"length of {a} {CMP_SYMBOLS[flags & 7]} {s[ops[2]]}"
        elif op.name == "IN":
            text = f"{a} {'not in' if flags & F_NOTIN else 'in'} set {ops[1]} {s[d.sets[ops[1]][2]]}"
        elif op.name == "PRESENT":
            text = a
        elif op.name == "EQ":
            text = f"{a} == {_ref_text(d, ops[1], bool(flags & F_PATH_B))}"
        elif op.name == "STR":
            text = f"{a} {s[ops[2]]}"
        elif op.name == "TYPE":
            text = f"{a} is of type {s[ops[2]]}"
        elif op.name == "TIME":
            text = f"{a} within {s[ops[2]]}"
        elif op.name == "BOOL":
            text = f"{a} is {'true' if ops[1] else 'false'}"
        elif op.name in ("URL", "PATHCHK", "SQL"):
            text = f"{a} {_argcheck_text(d, op.name, ops[1])}"
        elif op.name in ("EVERY", "SOME"):
            text = f"{a} (body to {ops[1]})"
        elif op.name in ("JF", "JT"):
            text = f"-> {ops[0]}"
        else:
            text = ""
        indent = "  " * len(ends)
        out.append(f"  {pc:6d}  {indent}{op.name:<8}{text}{neg}".rstrip())
        if op.name in ("EVERY", "SOME"):
            ends.append(ops[1])
        pc += insn_len(op)
    return out


_REF_OPS = frozenset(("NUM", "IN", "PRESENT", "EQ", "STR", "LEN", "TYPE", "TIME", "EVERY", "SOME", "URL",
                      "PATHCHK", "SQL", "BOOL"))
_ARGCHECK_KEYS = {"URL": ("schemes_in", "hosts_in", "host_suffixes_in", "ports_in"),
                  "PATHCHK": ("within", "not_within", "extensions_in"),
                  "SQL": ("max_statements", "schemas_in", "tables_in", "functions_allowed")}


def _argcheck_text(d: DecodedBlob, name: str, at: int) -> str:
    """A url / pathchk descriptor as the listing shows it: flags, then each set's display."""
    keys = _ARGCHECK_KEYS[name]
    words = d.words[at:at + 1 + len(keys)]
    if len(words) < 1 + len(keys):
        return f"descriptor {at} (out of range)"
    parts = [f"flags {words[0]:#x}"]
    for key, set_id in zip(keys, words[1:]):
        if key == "max_statements":
            if set_id:
                parts.append(f"max_statements {set_id}")
            continue
        if set_id != NONE_SET:
            parts.append(f"{key} {d.strings[d.sets[set_id][2]]}" if set_id < len(d.sets) else f"{key} set {set_id}?")
    return ", ".join(parts)
