/*
 * cg_opcodes.h -- the compiled policy format: blob layout and condition instruction set.
 *
 * Files that depend on this format and must change with it:
 *   csrc/cg_load.c (verifier), csrc/cg_vm.c (interpreter), csrc/cg_reason.c (reason text),
 *   src/callgate/bytecode.py (encoder and disassembler: mirrors the table below).
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
 *       str_len version_sid n_policy_rules reserved
 *   64: sections, back to back, in this order:
 *       strings  n_strings x {u32 offset, u32 length}        into strdata
 *       fields   n_fields  x {u32 source, u32 name_sid, u32 display_sid}
 *       sets     n_sets    x {u32 first_member, u32 count, u32 display_sid}
 *       members  n_members x {u32 sid}                        set members, by set
 *       numbers  n_numbers x {f64}                             comparison constants
 *       entries  n_entries x {u32 tool_sid, u32 role_sid, u32 first_rule, u32 n_rules}
 *       rules    n_rules   x {u32 policy_index, u32 code_offset, u32 code_length}
 *       code     code_len bytes                                condition bytecode
 *       strdata  str_len bytes                                 UTF-8, not terminated
 *
 * An entry is one (tool, role) pair; its rules are tried in order. A rule with
 * code_length 0 has no condition. Otherwise its code is a run of instructions that
 * ends with RET and leaves exactly one value (T, F or U) on the stack.
 *
 * INSTRUCTION:  +--------+--------+------------------------+
 *               | opcode | flags  | n x u32 operands        |   n fixed per opcode
 *               +--------+--------+------------------------+
 * flags bit 7 (CG_F_NEGATED) marks a leaf under an odd number of Nots; it changes no
 * result, only how a reason is worded. Low flag bits carry the comparison of NUM and the
 * polarity of IN. Jumps hold absolute offsets into the code section, must point forward
 * into the same rule and land on an instruction whose stack depth matches: the loader
 * checks this once, so the interpreter always terminates and never over- or underflows.
 */
#ifndef CG_OPCODES_H
#define CG_OPCODES_H

#define CG_MAGIC "CGPB"
#define CG_HEADER_SIZE 64

/* header u32 slots, by byte offset */
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

#define CG_FLAG_PERSO 1u
#define CG_FLAG_DEFAULT_ALLOW 2u
#define CG_FLAGS_KNOWN 3u

/* Sources of fields. CONTEXT is the host-supplied context object. */
#define CG_SRC_ARGS 0
#define CG_SRC_AGENT 1
#define CG_SRC_RESOURCE 2
#define CG_SRC_CONTEXT 3
#define CG_N_SOURCES 4

/* Instruction flags */
#define CG_F_NEGATED 0x80u
#define CG_F_NOTIN 0x01u          /* IN: the NotIn polarity */
#define CG_F_CMP_MASK 0x07u       /* NUM: one of CG_CMP_* */

#define CG_CMP_LT 0
#define CG_CMP_LE 1
#define CG_CMP_GT 2
#define CG_CMP_GE 3
#define CG_CMP_EQ 4
#define CG_N_CMP 5

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
    X(NUM,     3, +1, 0x87, "push field <cmp> numbers[b]; a=field b=number c=display")   \
    X(IN,      2, +1, 0x81, "push field in sets[b] (NotIn if flag 1); a=field b=set")    \
    X(PRESENT, 1, +1, 0x80, "push T if field a exists and is not null")                 \
    X(EQ,      2, +1, 0x80, "push field a == field b (semantics-specific equality)")    \
    X(NOT,     0,  0, 0x00, "negate the top (U stays U)")                                \
    X(AND,     0, -1, 0x00, "pop two, push their Kleene AND")                            \
    X(OR,      0, -1, 0x00, "pop two, push their Kleene OR")                             \
    X(JF,      1,  0, 0x00, "if the top is F, jump to a (the top stays)")               \
    X(JT,      1,  0, 0x00, "if the top is T, jump to a (the top stays)")               \
    X(RET,     0,  0, 0x00, "end of the rule's condition: the top is its value")

enum cg_opcode {
#define CG_OP_ENUM(name, n, eff, fl, doc) CG_OP_##name,
    CG_OPCODES(CG_OP_ENUM)
#undef CG_OP_ENUM
    CG_N_OPCODES
};

/* Byte length of an instruction with n operands. */
#define CG_INSN_LEN(n) (2u + 4u * (n))

#endif /* CG_OPCODES_H */
