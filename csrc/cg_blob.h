/*
 * cg_blob.h -- where every record and field of a loaded policy blob sits.
 *
 * The layout is cg_opcodes.h's. This header is the only place that turns a record index
 * or an operand number into a byte offset: the loader (which checks each field once), the
 * interpreter, the reason builder and the matchers all read the blob through it. Each
 * section has its record size (CG_REC_*), the offset of each field in a record, a pointer
 * to record i (`cg_<section>_rec`, for the loader's error offsets) and a reader per field.
 * The readers assert (CG_ASSERT) the bounds the loader has already checked.
 */
#ifndef CG_BLOB_H
#define CG_BLOB_H

/* ---- records: size in bytes, then field offsets ---- */
#define CG_REC_STRING 8u  /* {u32 offset into strdata, u32 length} */
#define CG_STRING_OFF 0u
#define CG_STRING_LEN 4u
#define CG_REC_FIELD 12u  /* {u32 source, u32 name_sid, u32 display_sid} */
#define CG_FIELD_SOURCE 0u
#define CG_FIELD_NAME 4u
#define CG_FIELD_DISPLAY 8u
#define CG_REC_SET 12u    /* {u32 first_member, u32 count, u32 display_sid} */
#define CG_SET_FIRST 0u
#define CG_SET_COUNT 4u
#define CG_SET_DISPLAY 8u
#define CG_REC_MEMBER 4u  /* {u32 sid} */
#define CG_REC_NUMBER 8u  /* {f64} */
#define CG_REC_ENTRY 16u  /* {u32 tool_sid, u32 role_sid, u32 first_rule, u32 n_rules} */
#define CG_ENTRY_TOOL 0u
#define CG_ENTRY_ROLE 4u
#define CG_ENTRY_FIRST 8u
#define CG_ENTRY_COUNT 12u
#define CG_REC_RULE 16u   /* {u32 policy_index, u32 code_offset, u32 code_length, u32 effect} */
#define CG_RULE_INDEX 0u
#define CG_RULE_CODE 4u
#define CG_RULE_LENGTH 8u
#define CG_RULE_EFFECT 12u
#define CG_REC_WORD 4u    /* {u32} */
#define CG_REC_DEFAULT 12u /* {u32 tool_sid, u32 effect, u32 tier_sid} */
#define CG_DEFAULT_TOOL 0u
#define CG_DEFAULT_EFFECT 4u
#define CG_DEFAULT_TIER 8u
#define CG_REC_NAME 4u    /* {u32 sid or CG_NO_NAME}: a policy rule's id */

/* The byte size of a section of n records (64-bit: a hostile count cannot overflow it). */
static inline uint64_t cg_section_size(uint32_t rec_size, uint32_t n) { return (uint64_t)rec_size * n; }

/* Section sizes of a blob whose header is in range, as byte counts (64-bit: no overflow). */
typedef struct cg_layout {
    uint64_t strings, fields, sets, members, numbers, entries, rules, words, defaults, names,
        code, strdata, total;
} cg_layout;

static inline cg_layout cg_layout_of(const uint8_t *b) {
    cg_layout l;
    l.strings = cg_section_size(CG_REC_STRING, cg_rd32(b + CG_HDR_N_STRINGS));
    l.fields = cg_section_size(CG_REC_FIELD, cg_rd32(b + CG_HDR_N_FIELDS));
    l.sets = cg_section_size(CG_REC_SET, cg_rd32(b + CG_HDR_N_SETS));
    l.members = cg_section_size(CG_REC_MEMBER, cg_rd32(b + CG_HDR_N_MEMBERS));
    l.numbers = cg_section_size(CG_REC_NUMBER, cg_rd32(b + CG_HDR_N_NUMBERS));
    l.entries = cg_section_size(CG_REC_ENTRY, cg_rd32(b + CG_HDR_N_ENTRIES));
    l.rules = cg_section_size(CG_REC_RULE, cg_rd32(b + CG_HDR_N_RULES));
    l.words = cg_section_size(CG_REC_WORD, cg_rd32(b + CG_HDR_N_WORDS));
    l.defaults = cg_section_size(CG_REC_DEFAULT, cg_rd32(b + CG_HDR_N_DEFAULTS));
    l.names = cg_section_size(CG_REC_NAME, cg_rd32(b + CG_HDR_N_POLICY_RULES));
    l.code = cg_rd32(b + CG_HDR_CODE_LEN);
    l.strdata = cg_rd32(b + CG_HDR_STR_LEN);
    l.total = CG_HEADER_SIZE + l.strings + l.fields + l.sets + l.members + l.numbers +
              l.entries + l.rules + l.words + l.defaults + l.names + l.code + l.strdata;
    return l;
}

/* Points each section of the loaded policy p into the blob b, whose sizes add up (the
   loader checked: cg_layout_of(b).total is the blob's length). */
static inline void cg_place_sections(cg_policy *p, const uint8_t *b) {
    cg_layout l = cg_layout_of(b);
    p->strings = b + CG_HEADER_SIZE;
    p->fields = p->strings + l.strings;
    p->sets = p->fields + l.fields;
    p->members = p->sets + l.sets;
    p->numbers = p->members + l.members;
    p->entries = p->numbers + l.numbers;
    p->rules = p->entries + l.entries;
    p->words = p->rules + l.rules;
    p->defaults = p->words + l.words;
    p->names = p->defaults + l.defaults;
    p->code = p->names + l.names;
    p->strdata = p->code + l.code;
}

/* ---- strings ---- */
static inline const uint8_t *cg_string_rec(const cg_policy *p, uint32_t sid) {
    return p->strings + (size_t)CG_REC_STRING * sid;
}
static inline const uint8_t *cg_strdata(const cg_policy *p, uint32_t off) {
    CG_ASSERT(off <= p->str_len);
    return p->strdata + off;
}
static inline const uint8_t *cg_str(const cg_policy *p, uint32_t sid, uint32_t *len) {
    CG_ASSERT(sid < p->n_strings);
    const uint8_t *e = cg_string_rec(p, sid);
    *len = cg_rd32(e + CG_STRING_LEN);
    return cg_strdata(p, cg_rd32(e + CG_STRING_OFF));
}

/* ---- fields ---- */
static inline const uint8_t *cg_field_rec(const cg_policy *p, uint32_t f) {
    return p->fields + (size_t)CG_REC_FIELD * f;
}
static inline uint32_t cg_field_source(const cg_policy *p, uint32_t f) {
    CG_ASSERT(f < p->n_fields);
    return cg_rd32(cg_field_rec(p, f) + CG_FIELD_SOURCE);
}
static inline uint32_t cg_field_name(const cg_policy *p, uint32_t f) {
    CG_ASSERT(f < p->n_fields);
    return cg_rd32(cg_field_rec(p, f) + CG_FIELD_NAME);
}
static inline uint32_t cg_field_display(const cg_policy *p, uint32_t f) {
    CG_ASSERT(f < p->n_fields);
    return cg_rd32(cg_field_rec(p, f) + CG_FIELD_DISPLAY);
}

/* ---- sets and their members ---- */
static inline const uint8_t *cg_set_rec(const cg_policy *p, uint32_t set) {
    return p->sets + (size_t)CG_REC_SET * set;
}
static inline uint32_t cg_set_display(const cg_policy *p, uint32_t set) {
    CG_ASSERT(set < p->n_sets);
    return cg_rd32(cg_set_rec(p, set) + CG_SET_DISPLAY);
}
static inline const uint8_t *cg_member_rec(const cg_policy *p, uint32_t k) {
    return p->members + (size_t)CG_REC_MEMBER * k;
}

/* ---- numbers ---- */
static inline const uint8_t *cg_number_rec(const cg_policy *p, uint32_t k) {
    return p->numbers + (size_t)CG_REC_NUMBER * k;
}
static inline double cg_number(const cg_policy *p, uint32_t k) {
    CG_ASSERT(k < p->n_numbers);
    return cg_rdf64(cg_number_rec(p, k));
}

/* ---- entries: (tool, role) -> a run of rules ---- */
static inline const uint8_t *cg_entry_rec(const cg_policy *p, uint32_t e) {
    return p->entries + (size_t)CG_REC_ENTRY * e;
}
static inline uint32_t cg_entry_field(const cg_policy *p, uint32_t e, uint32_t field) {
    CG_ASSERT(e < p->n_entries);
    return cg_rd32(cg_entry_rec(p, e) + field);
}

/* ---- rules (slots of entries) ---- */
static inline const uint8_t *cg_rule_rec(const cg_policy *p, uint32_t r) {
    return p->rules + (size_t)CG_REC_RULE * r;
}
static inline uint32_t cg_rule_field(const cg_policy *p, uint32_t r, uint32_t field) {
    CG_ASSERT(r < p->n_rules);
    return cg_rd32(cg_rule_rec(p, r) + field);
}

/* ---- words: descriptors ---- */
static inline const uint8_t *cg_word_rec(const cg_policy *p, uint32_t w) {
    return p->words + (size_t)CG_REC_WORD * w;
}
static inline uint32_t cg_word(const cg_policy *p, uint32_t w) {
    CG_ASSERT(w < p->n_words);
    return cg_rd32(cg_word_rec(p, w));
}
/* path {base, n_tokens (| CG_PATH_KEY), display_sid, token_sid x n_tokens} */
#define CG_PATH_BASE 0u
#define CG_PATH_COUNT 1u
#define CG_PATH_DISPLAY 2u
#define CG_PATH_TOKENS 3u
static inline uint32_t cg_path_token(const cg_policy *p, uint32_t path, uint32_t k) {
    return cg_word(p, path + CG_PATH_TOKENS + k);
}
/* glob {n_parts, (part_sid, kmp_word) x n_parts} */
#define CG_GLOB_COUNT 0u
static inline uint32_t cg_glob_part(const cg_policy *p, uint32_t glob, uint32_t k) {
    return cg_word(p, glob + 1 + 2 * k);
}
static inline uint32_t cg_glob_kmp(const cg_policy *p, uint32_t glob, uint32_t k) {
    return cg_word(p, glob + 2 + 2 * k);
}
/* pglob {n_components, glob_word x n_components} */
#define CG_PGLOB_COUNT 0u
static inline uint32_t cg_pglob_glob(const cg_policy *p, uint32_t pglob, uint32_t k) {
    return cg_word(p, pglob + 1 + k);
}
/* window {days, start_minute, end_minute, n, (utc_start, offset) x n} */
#define CG_WINDOW_DAYS 0u
#define CG_WINDOW_START 1u
#define CG_WINDOW_END 2u
#define CG_WINDOW_COUNT 3u
static inline uint32_t cg_window_utc_start(const cg_policy *p, uint32_t window, uint32_t i) {
    return cg_word(p, window + 4 + 2 * i);
}
static inline int32_t cg_window_offset(const cg_policy *p, uint32_t window, uint32_t i) {
    return (int32_t)cg_word(p, window + 5 + 2 * i);
}
/* the word index of a descriptor's field k (for the loader's checks of the later fields) */
#define CG_GLOB_PART_WORD(glob, k) ((uint64_t)(glob) + 1 + 2 * (uint64_t)(k))
#define CG_WINDOW_ENTRY_WORD(window, i) ((uint64_t)(window) + 4 + 2 * (uint64_t)(i))

/* ---- tier defaults ---- */
static inline const uint8_t *cg_default_rec(const cg_policy *p, uint32_t d) {
    return p->defaults + (size_t)CG_REC_DEFAULT * d;
}
static inline uint32_t cg_default_field(const cg_policy *p, uint32_t d, uint32_t field) {
    CG_ASSERT(d < p->n_defaults);
    return cg_rd32(cg_default_rec(p, d) + field);
}

/* ---- names: each policy rule's id ---- */
static inline const uint8_t *cg_name_rec(const cg_policy *p, uint32_t rule) {
    return p->names + (size_t)CG_REC_NAME * rule;
}
static inline uint32_t cg_rule_name(const cg_policy *p, uint32_t rule) {
    CG_ASSERT(rule < p->n_policy_rules);
    return cg_rd32(cg_name_rec(p, rule));
}

/* ---- instructions: {u8 opcode, u8 flags, u32 operand x n} ---- */
#define CG_INSN_OPCODE 0u
#define CG_INSN_FLAGS 1u
#define CG_INSN_OPERANDS 2u
static inline const uint8_t *cg_insn(const cg_policy *p, uint32_t pc) {
    CG_ASSERT(pc < p->code_len);
    return p->code + pc;
}
static inline const uint8_t *cg_insn_operand_at(const uint8_t *ins, uint32_t k) {
    return ins + CG_INSN_OPERANDS + 4 * k;
}
static inline uint32_t cg_insn_operand(const uint8_t *ins, uint32_t k) {
    return cg_rd32(cg_insn_operand_at(ins, k));
}

#endif /* CG_BLOB_H */
