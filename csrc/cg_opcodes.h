/*
 * cg_opcodes.h -- the compiled policy format: blob layout and condition instruction set.
 *
 * Files that depend on this format and must change with it: csrc/cg_blob.h (where each
 * record and field sits: the only offset arithmetic), csrc/cg_load.c (verifier),
 * csrc/cg_vm.c (interpreter), csrc/cg_reason.c (reason text). src/callgate/bytecode.py
 * (encoder and disassembler) reads the constants below and the instruction table from the
 * built core; it writes the sections in the order drawn here.
 *
 * BLOB (all integers little-endian, no alignment assumed; readers use cg_rd32)
 *
 *   0      4      6      8            12           16
 *   +------+------+------+------------+------------+
 *   | CGPB | fmt  | flags| total len  | CRC-32 of  |   flags: bit 0 perso semantics,
 *   |      | u16  | u16  | u32        | [16, len)  |          bit 1 default_action Allow
 *   +------+------+------+------------+------------+
 *   16: u32 counts, in this order (CG_HDR_* below):
 *       n_strings n_fields n_sets n_members n_numbers n_entries n_rules code_len
 *       str_len version_sid n_policy_rules n_words n_defaults 0 0 0
 *   80: sections, back to back, in this order:
 *       strings  n_strings x {u32 offset, u32 length}        into strdata
 *       fields   n_fields  x {u32 source, u32 name_sid, u32 display_sid}
 *       sets     n_sets    x {u32 first_member, u32 count, u32 display_sid}
 *       members  n_members x {u32 sid}                        set members, by set
 *       numbers  n_numbers x {f64}                             comparison constants
 *       entries  n_entries x {u32 tool_sid, u32 role_sid, u32 first_rule, u32 n_rules}
 *       rules    n_rules   x {u32 policy_index, u32 code_offset, u32 code_length, u32 effect}
 *       words    n_words   x {u32}                             operand descriptors (below)
 *       defaults n_defaults x {u32 tool_sid, u32 effect, u32 tier_sid}   tier defaults
 *       names    n_policy_rules x {u32 sid}                    each policy rule's id, or
 *                                                              CG_NO_NAME: reasons say "rule N"
 *       code     code_len bytes                                condition bytecode
 *       strdata  str_len bytes                                 UTF-8, not terminated
 *
 * An entry is one (tool, role) pair; its rules are tried in order. A rule with
 * code_length 0 has no condition. Otherwise its code is a run of instructions that
 * ends with RET and leaves exactly one value (T, F or U) on the stack.
 *
 * EFFECT word (rules and defaults): bits 0-1 the decision (CG_DENY, CG_ALLOW, CG_ELEVATE),
 * bits 2-3 the approvals an Elevate needs (1-3; 0 otherwise), other bits 0. An entry's rules
 * are ordered deny rules, then allow rules, then elevate rules by approvals descending: the
 * interpreter's precedence (docs/policy-v2.md) relies on it and the loader checks it. A perso
 * blob has only allow rules and no defaults. A default applies to its tool for any role when
 * no rule of the pair decided and the pair has no allow or elevate rule.
 *
 * WORDS hold the descriptors that do not fit in operands, each a run of u32s:
 *   path    {base, n_tokens, display_sid, token_sid x n_tokens}: base is a field index, or
 *           CG_ELEMENT for the current element of the innermost Every/Some
 *   glob    {n_parts >= 1, (part_sid, kmp_word) x n_parts}: the pattern split at each `*`;
 *           kmp_word indexes len(part) words, the part's KMP failure function (the loader
 *           recomputes and compares it). One part means equality.
 *   pglob   {n_components >= 1, glob_word x n_components}: a PathGlob split at each `/`
 *   window  {days (bit 0 Monday .. bit 6 Sunday, non-zero), start_minute 0-1439,
 *           end_minute 1-1440 (!= start), n >= 1, (utc_start u32, offset i32) x n}:
 *           entry i gives the UTC offset in seconds (|offset| < 86400) from utc_start
 *           (seconds since 1970, strictly ascending, the first 0) to the next entry's, the
 *           last until CG_TIME_END
 *   url     {flags (CG_URL_*), schemes_set, hosts_set, suffixes_set, ports_set}: UrlCheck
 *   pathchk {flags (CG_PC_*), within_set, not_within_set, extensions_set}: PathCheck
 *   sqlchk  {flags (CG_SC_*), max_statements (0: any), schemas_set, tables_set,
 *           functions_set}: SqlCheck
 *           a set word is a set index, or CG_NONE_SET when the policy lists nothing for that
 *           key; the members are in the form the parsers produce (csrc/cg_check.h)
 * An operand that names a value ("a ref") is a field index, or a words index of a path
 * when the instruction's CG_F_PATH_A (first ref) / CG_F_PATH_B (EQ's second) flag is set.
 *
 * INSTRUCTION:  +--------+--------+------------------------+
 *               | opcode | flags  | n x u32 operands        |   n fixed per opcode
 *               +--------+--------+------------------------+
 * flags bit 7 (CG_F_NEGATED) marks a leaf under an odd number of Nots; it changes no
 * result, only how a reason is worded. Low flag bits carry the comparison of NUM/LEN, the
 * polarity of IN and STR, STR's path mode. Jumps hold absolute offsets into the code
 * section, must point forward into the same rule (and the same quantifier body) and land on
 * an instruction whose stack depth matches: the loader checks this once, so the interpreter
 * always terminates and never over- or underflows.
 *
 * QUANTIFIERS: EVERY/SOME a=ref b=end are followed by their body, which runs once per
 * element with its own stack (starting empty), must leave exactly one value and ends with
 * ENDQ; b is the offset just after that ENDQ, where execution continues with the
 * quantifier's value pushed. Bodies nest at most CG_MAX_QUANT deep.
 */
#ifndef CG_OPCODES_H
#define CG_OPCODES_H

#define CG_MAGIC_U32 0x42504743u /* "CGPB", the blob's first four bytes read little-endian */
#define CG_HEADER_SIZE 80

/* header u32 slots, by byte offset */
#define CG_HDR_FORMAT 4      /* u16 */
#define CG_HDR_FLAGS 6       /* u16 */
#define CG_HDR_LEN 8
#define CG_HDR_CRC 12
#define CG_HDR_N_STRINGS 16
#define CG_HDR_N_FIELDS 20
#define CG_HDR_N_SETS 24
#define CG_HDR_N_MEMBERS 28
#define CG_HDR_N_NUMBERS 32
#define CG_HDR_N_ENTRIES 36
#define CG_HDR_N_RULES 40
#define CG_HDR_CODE_LEN 44
#define CG_HDR_STR_LEN 48
#define CG_HDR_VERSION_SID 52
#define CG_HDR_N_POLICY_RULES 56
#define CG_HDR_N_WORDS 60
#define CG_HDR_N_DEFAULTS 64
#define CG_HDR_RESERVED 68   /* 68, 72, 76: zero */

#define CG_FLAG_PERSO 1u
#define CG_FLAG_DEFAULT_ALLOW 2u
#define CG_FLAGS_KNOWN 3u

/* Sources of fields. CONTEXT is the host-supplied context object; PRINCIPAL is the
   verified principal chain the host built (user, agents, actor, depth, scopes, issuer, ...). */
#define CG_SRC_ARGS 0
#define CG_SRC_AGENT 1
#define CG_SRC_RESOURCE 2
#define CG_SRC_CONTEXT 3
#define CG_SRC_PRINCIPAL 4
#define CG_N_SOURCES 5

/* Instruction flags */
#define CG_F_NEGATED 0x80u
#define CG_F_PATH_A 0x40u         /* the first ref operand is a path (words index) */
#define CG_F_PATH_B 0x20u         /* EQ: the second ref operand is a path */
#define CG_F_NOTIN 0x01u          /* IN: the NotIn polarity */
#define CG_F_CMP_MASK 0x07u       /* NUM, LEN: one of CG_CMP_* */
#define CG_F_STR_NOT 0x01u        /* STR: the result is inverted (Ne) */
#define CG_F_STR_PATH 0x02u       /* STR: b is a pglob (PathGlob), else a glob */

#define CG_ELEMENT 0xffffffffu    /* path base: the current element */
#define CG_NO_NAME 0xffffffffu    /* names section: a rule without an id (reasons say "rule N") */
#define CG_PATH_KEY 0x80000000u   /* path n_tokens bit: token 0 is a key only (an Element
                                     `field`): on an array it is missing, not an index */
#define CG_TIME_END 4102444800u   /* 2100-01-01T00:00:00Z: instants from here on are U */
#define CG_MAX_QUANT 8            /* nesting of Every/Some bodies */
#define CG_NONE_SET 0xffffffffu   /* url / pathchk descriptor: no set for this key */

/* url descriptor (UrlCheck): word offsets and flags */
#define CG_URLD_FLAGS 0
#define CG_URLD_SCHEMES 1
#define CG_URLD_HOSTS 2
#define CG_URLD_SUFFIXES 3
#define CG_URLD_PORTS 4
#define CG_URLD_WORDS 5
#define CG_URL_NO_USERINFO 1u     /* an '@' in the authority fails (userinfo: false) */
#define CG_URL_PUBLIC 2u          /* the host must be public (ip: "public") */
#define CG_URL_FLAGS_KNOWN 3u
/* pathchk descriptor (PathCheck): word offsets and flags */
#define CG_PATHD_FLAGS 0
#define CG_PATHD_WITHIN 1
#define CG_PATHD_NOT_WITHIN 2
#define CG_PATHD_EXTS 3
#define CG_PATHD_WORDS 4
#define CG_PC_WINDOWS 1u          /* Windows style */
#define CG_PC_RELATIVE 2u         /* relative paths are checked (absolute: false), not U */
#define CG_PC_FLAGS_KNOWN 3u
/* sqlchk descriptor (SqlCheck): word offsets and flags */
#define CG_SQLD_FLAGS 0
#define CG_SQLD_MAX 1
#define CG_SQLD_SCHEMAS 2
#define CG_SQLD_TABLES 3
#define CG_SQLD_FUNCTIONS 4
#define CG_SQLD_WORDS 5
#define CG_SC_SQLITE 1u           /* dialect SQLite (neither dialect bit: PostgreSQL) */
#define CG_SC_READ_ONLY 2u        /* read_only: true */
#define CG_SC_MYSQL 4u            /* dialect MySQL (never with CG_SC_SQLITE: the loader refuses both) */
#define CG_SC_FLAGS_KNOWN 7u

/* Effect words */
#define CG_EFFECT_DECISION(w) ((w) & 3u)
#define CG_EFFECT_APPROVALS(w) (((w) >> 2) & 3u)

/* TYPE operand b */
#define CG_TY_STRING 0
#define CG_TY_NUMBER 1
#define CG_TY_INTEGER 2
#define CG_TY_BOOLEAN 3
#define CG_TY_NULL 4
#define CG_TY_ARRAY 5
#define CG_TY_OBJECT 6
#define CG_N_TYPES 7

#define CG_CMP_LT 0
#define CG_CMP_LE 1
#define CG_CMP_GT 2
#define CG_CMP_GE 3
#define CG_CMP_EQ 4
#define CG_CMP_NE 5
#define CG_CMP_BETWEEN 6          /* NUM only: numbers[b] <= x <= numbers[b + 1] */
#define CG_N_CMP 7

/* Truth values on the interpreter stack (Kleene logic; perso never produces U). */
#define CG_V_F 0
#define CG_V_T 1
#define CG_V_U 2

/* Deepest condition stack the loader accepts (nesting of All/Any/Not + 1). */
#define CG_MAX_STACK 64

/*
 * The instruction set: X(name, operands, stack effect, allowed flag bits, meaning).
 * One list drives the opcode enum, the operand counts, the verifier and the name table.
 */
#define CG_OPCODES(X)                                                                     \
    X(TRUE,    0, +1, 0x00, "push T (the condition of an empty All)")                   \
    X(FALSE,   0, +1, 0x00, "push F (the condition of an empty Any)")                   \
    X(NUM,     3, +1, 0xC7, "push ref a <cmp> numbers[b]; c=display of the constant")   \
    X(IN,      2, +1, 0xC1, "push ref a in sets[b] (NotIn if flag 1)")                  \
    X(PRESENT, 1, +1, 0xC0, "push T if ref a exists and is not null")                   \
    X(EQ,      2, +1, 0xE0, "push ref a == ref b (semantics-specific equality)")        \
    X(NOT,     0,  0, 0x00, "negate the top (U stays U)")                                \
    X(AND,     0, -1, 0x00, "pop two, push their Kleene AND")                            \
    X(OR,      0, -1, 0x00, "pop two, push their Kleene OR")                             \
    X(JF,      1,  0, 0x00, "if the top is F, jump to a (the top stays)")               \
    X(JT,      1,  0, 0x00, "if the top is T, jump to a (the top stays)")               \
    X(RET,     0,  0, 0x00, "end of the rule's condition: the top is its value")        \
    X(STR,     4, +1, 0xC3, "push string ref a matches glob/pglob b; c,d=texts if T/F") \
    X(LEN,     3, +1, 0xC7, "push length of ref a <cmp> numbers[b]; c=display")         \
    X(TYPE,    3, +1, 0xC0, "push T if ref a has type b (CG_TY_*); c=type name")        \
    X(TIME,    3, +1, 0xC0, "push T if instant ref a is in window b; c=window text")    \
    X(EVERY,   2, +1, 0xC0, "push Kleene AND of the body over array ref a; b=end")      \
    X(SOME,    2, +1, 0xC0, "push Kleene OR of the body over array ref a; b=end")       \
    X(ENDQ,    0,  0, 0x00, "end of a quantifier body: the top is the element's value") \
    X(URL,     2, +1, 0xC0, "push UrlCheck of string ref a against url descriptor b")  \
    X(PATHCHK, 2, +1, 0xC0, "push PathCheck of string ref a against pathchk descriptor b") \
    X(SQL,     2, +1, 0xC0, "push SqlCheck of string ref a against sqlchk descriptor b") \
    X(BOOL,    2, +1, 0xC0, "push T if ref a is the boolean b (0 false, 1 true), F if the other one, else U")

enum cg_opcode {
#define CG_OP_ENUM(name, n, eff, fl, doc) CG_OP_##name,
    CG_OPCODES(CG_OP_ENUM)
#undef CG_OP_ENUM
    CG_N_OPCODES
};

/* Byte length of an instruction with n operands. */
#define CG_INSN_LEN(n) (2u + 4u * (n))

/* The table's columns, from the one list above: at compile time the operand count of each
   instruction (CG_OPERANDS_NUM...; CG_LEN(NUM) its length), at run time all of them by
   opcode (the loader, the reason builder and, through cg_opcode_info, the disassembler). */
enum cg_opcode_operands {
#define CG_OP_OPERANDS(name, n, eff, fl, doc) CG_OPERANDS_##name = n,
    CG_OPCODES(CG_OP_OPERANDS)
#undef CG_OP_OPERANDS
    CG_OPERANDS_UNUSED_ = 0
};
#define CG_LEN(name) CG_INSN_LEN(CG_OPERANDS_##name)

static inline uint32_t cg_op_operands(uint32_t op) {
    static const unsigned char operands[CG_N_OPCODES] = {
#define CG_OP_N(name, n, eff, fl, doc) n,
        CG_OPCODES(CG_OP_N)
#undef CG_OP_N
    };
    return operands[op];
}
static inline int cg_op_effect(uint32_t op) {
    static const signed char effect[CG_N_OPCODES] = {
#define CG_OP_EFF(name, n, eff, fl, doc) eff,
        CG_OPCODES(CG_OP_EFF)
#undef CG_OP_EFF
    };
    return effect[op];
}
static inline uint32_t cg_op_flags(uint32_t op) {
    static const unsigned char flags[CG_N_OPCODES] = {
#define CG_OP_FL(name, n, eff, fl, doc) fl,
        CG_OPCODES(CG_OP_FL)
#undef CG_OP_FL
    };
    return flags[op];
}
static inline uint32_t cg_op_len(uint32_t op) { return CG_INSN_LEN(cg_op_operands(op)); }

#endif /* CG_OPCODES_H */
