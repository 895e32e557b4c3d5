/*
 * cg_load.c -- loads a compiled policy blob: the trust boundary.
 *
 * Everything in the blob is checked here, once: header, checksum, every section's
 * bounds, every string, index and count, and every rule's condition code (opcodes,
 * flags, operands, forward-only jumps landing on instruction boundaries, stack depth).
 * After cg_policy_load succeeds the interpreter can trust the blob and only asserts.
 *
 * Memory: the caller passes one buffer of cg_policy_mem_size() bytes. It receives the
 * cg_policy header, a copy of the blob, and the hash indexes. Nothing else is kept.
 */
#include "cg_internal.h"

static const uint32_t crc_table[256] = {
    0x00000000u, 0x77073096u, 0xee0e612cu, 0x990951bau, 0x076dc419u, 0x706af48fu,
    0xe963a535u, 0x9e6495a3u, 0x0edb8832u, 0x79dcb8a4u, 0xe0d5e91eu, 0x97d2d988u,
    0x09b64c2bu, 0x7eb17cbdu, 0xe7b82d07u, 0x90bf1d91u, 0x1db71064u, 0x6ab020f2u,
    0xf3b97148u, 0x84be41deu, 0x1adad47du, 0x6ddde4ebu, 0xf4d4b551u, 0x83d385c7u,
    0x136c9856u, 0x646ba8c0u, 0xfd62f97au, 0x8a65c9ecu, 0x14015c4fu, 0x63066cd9u,
    0xfa0f3d63u, 0x8d080df5u, 0x3b6e20c8u, 0x4c69105eu, 0xd56041e4u, 0xa2677172u,
    0x3c03e4d1u, 0x4b04d447u, 0xd20d85fdu, 0xa50ab56bu, 0x35b5a8fau, 0x42b2986cu,
    0xdbbbc9d6u, 0xacbcf940u, 0x32d86ce3u, 0x45df5c75u, 0xdcd60dcfu, 0xabd13d59u,
    0x26d930acu, 0x51de003au, 0xc8d75180u, 0xbfd06116u, 0x21b4f4b5u, 0x56b3c423u,
    0xcfba9599u, 0xb8bda50fu, 0x2802b89eu, 0x5f058808u, 0xc60cd9b2u, 0xb10be924u,
    0x2f6f7c87u, 0x58684c11u, 0xc1611dabu, 0xb6662d3du, 0x76dc4190u, 0x01db7106u,
    0x98d220bcu, 0xefd5102au, 0x71b18589u, 0x06b6b51fu, 0x9fbfe4a5u, 0xe8b8d433u,
    0x7807c9a2u, 0x0f00f934u, 0x9609a88eu, 0xe10e9818u, 0x7f6a0dbbu, 0x086d3d2du,
    0x91646c97u, 0xe6635c01u, 0x6b6b51f4u, 0x1c6c6162u, 0x856530d8u, 0xf262004eu,
    0x6c0695edu, 0x1b01a57bu, 0x8208f4c1u, 0xf50fc457u, 0x65b0d9c6u, 0x12b7e950u,
    0x8bbeb8eau, 0xfcb9887cu, 0x62dd1ddfu, 0x15da2d49u, 0x8cd37cf3u, 0xfbd44c65u,
    0x4db26158u, 0x3ab551ceu, 0xa3bc0074u, 0xd4bb30e2u, 0x4adfa541u, 0x3dd895d7u,
    0xa4d1c46du, 0xd3d6f4fbu, 0x4369e96au, 0x346ed9fcu, 0xad678846u, 0xda60b8d0u,
    0x44042d73u, 0x33031de5u, 0xaa0a4c5fu, 0xdd0d7cc9u, 0x5005713cu, 0x270241aau,
    0xbe0b1010u, 0xc90c2086u, 0x5768b525u, 0x206f85b3u, 0xb966d409u, 0xce61e49fu,
    0x5edef90eu, 0x29d9c998u, 0xb0d09822u, 0xc7d7a8b4u, 0x59b33d17u, 0x2eb40d81u,
    0xb7bd5c3bu, 0xc0ba6cadu, 0xedb88320u, 0x9abfb3b6u, 0x03b6e20cu, 0x74b1d29au,
    0xead54739u, 0x9dd277afu, 0x04db2615u, 0x73dc1683u, 0xe3630b12u, 0x94643b84u,
    0x0d6d6a3eu, 0x7a6a5aa8u, 0xe40ecf0bu, 0x9309ff9du, 0x0a00ae27u, 0x7d079eb1u,
    0xf00f9344u, 0x8708a3d2u, 0x1e01f268u, 0x6906c2feu, 0xf762575du, 0x806567cbu,
    0x196c3671u, 0x6e6b06e7u, 0xfed41b76u, 0x89d32be0u, 0x10da7a5au, 0x67dd4accu,
    0xf9b9df6fu, 0x8ebeeff9u, 0x17b7be43u, 0x60b08ed5u, 0xd6d6a3e8u, 0xa1d1937eu,
    0x38d8c2c4u, 0x4fdff252u, 0xd1bb67f1u, 0xa6bc5767u, 0x3fb506ddu, 0x48b2364bu,
    0xd80d2bdau, 0xaf0a1b4cu, 0x36034af6u, 0x41047a60u, 0xdf60efc3u, 0xa867df55u,
    0x316e8eefu, 0x4669be79u, 0xcb61b38cu, 0xbc66831au, 0x256fd2a0u, 0x5268e236u,
    0xcc0c7795u, 0xbb0b4703u, 0x220216b9u, 0x5505262fu, 0xc5ba3bbeu, 0xb2bd0b28u,
    0x2bb45a92u, 0x5cb36a04u, 0xc2d7ffa7u, 0xb5d0cf31u, 0x2cd99e8bu, 0x5bdeae1du,
    0x9b64c2b0u, 0xec63f226u, 0x756aa39cu, 0x026d930au, 0x9c0906a9u, 0xeb0e363fu,
    0x72076785u, 0x05005713u, 0x95bf4a82u, 0xe2b87a14u, 0x7bb12baeu, 0x0cb61b38u,
    0x92d28e9bu, 0xe5d5be0du, 0x7cdcefb7u, 0x0bdbdf21u, 0x86d3d2d4u, 0xf1d4e242u,
    0x68ddb3f8u, 0x1fda836eu, 0x81be16cdu, 0xf6b9265bu, 0x6fb077e1u, 0x18b74777u,
    0x88085ae6u, 0xff0f6a70u, 0x66063bcau, 0x11010b5cu, 0x8f659effu, 0xf862ae69u,
    0x616bffd3u, 0x166ccf45u, 0xa00ae278u, 0xd70dd2eeu, 0x4e048354u, 0x3903b3c2u,
    0xa7672661u, 0xd06016f7u, 0x4969474du, 0x3e6e77dbu, 0xaed16a4au, 0xd9d65adcu,
    0x40df0b66u, 0x37d83bf0u, 0xa9bcae53u, 0xdebb9ec5u, 0x47b2cf7fu, 0x30b5ffe9u,
    0xbdbdf21cu, 0xcabac28au, 0x53b39330u, 0x24b4a3a6u, 0xbad03605u, 0xcdd70693u,
    0x54de5729u, 0x23d967bfu, 0xb3667a2eu, 0xc4614ab8u, 0x5d681b02u, 0x2a6f2b94u,
    0xb40bbe37u, 0xc30c8ea1u, 0x5a05df1bu, 0x2d02ef8du,};

static uint32_t crc32(const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

static const uint8_t op_operands[CG_N_OPCODES] = {
#define CG_OP_N(name, n, eff, fl, doc) n,
    CG_OPCODES(CG_OP_N)
#undef CG_OP_N
};
static const int8_t op_effect[CG_N_OPCODES] = {
#define CG_OP_EFF(name, n, eff, fl, doc) eff,
    CG_OPCODES(CG_OP_EFF)
#undef CG_OP_EFF
};
static const uint8_t op_flags[CG_N_OPCODES] = {
#define CG_OP_FL(name, n, eff, fl, doc) fl,
    CG_OPCODES(CG_OP_FL)
#undef CG_OP_FL
};

/* Section sizes of a blob whose header is in range, as byte counts (64-bit: no overflow). */
typedef struct layout {
    uint64_t strings, fields, sets, members, numbers, entries, rules, words, defaults, names,
        code, strdata, total;
} layout;

static layout layout_of(const uint8_t *b) {
    layout l;
    l.strings = 8ull * cg_rd32(b + CG_HDR_N_STRINGS);
    l.fields = 12ull * cg_rd32(b + CG_HDR_N_FIELDS);
    l.sets = 12ull * cg_rd32(b + CG_HDR_N_SETS);
    l.members = 4ull * cg_rd32(b + CG_HDR_N_MEMBERS);
    l.numbers = 8ull * cg_rd32(b + CG_HDR_N_NUMBERS);
    l.entries = 16ull * cg_rd32(b + CG_HDR_N_ENTRIES);
    l.rules = 16ull * cg_rd32(b + CG_HDR_N_RULES);
    l.words = 4ull * cg_rd32(b + CG_HDR_N_WORDS);
    l.defaults = 12ull * cg_rd32(b + CG_HDR_N_DEFAULTS);
    l.names = 4ull * cg_rd32(b + CG_HDR_N_POLICY_RULES);
    l.code = cg_rd32(b + CG_HDR_CODE_LEN);
    l.strdata = cg_rd32(b + CG_HDR_STR_LEN);
    l.total = CG_HEADER_SIZE + l.strings + l.fields + l.sets + l.members + l.numbers +
              l.entries + l.rules + l.words + l.defaults + l.names + l.code + l.strdata;
    return l;
}

/* Power-of-two table capacity with at least one empty slot and load <= 1/2. */
static uint64_t table_cap(uint64_t n) {
    uint64_t c = 2;
    while (c < 2 * n) c <<= 1;
    return c;
}

static size_t align8(uint64_t n) { return (size_t)((n + 7) & ~(uint64_t)7); }

/* Bytes of the policy buffer; also the offsets of its parts (see cg_policy_load). */
typedef struct memplan {
    uint64_t blob, entry_slots, field_slots, default_slots, set_index, set_slots, marks, word_tags,
        total;
} memplan;

static memplan plan_of(const uint8_t *b, size_t len) {
    memplan m;
    uint64_t n_sets = cg_rd32(b + CG_HDR_N_SETS);
    uint64_t n_members = cg_rd32(b + CG_HDR_N_MEMBERS);
    m.blob = align8(sizeof(cg_policy));
    m.entry_slots = m.blob + align8(len);
    m.field_slots = m.entry_slots + align8(8 * table_cap(cg_rd32(b + CG_HDR_N_ENTRIES)));
    m.default_slots = m.field_slots + align8(8 * table_cap(cg_rd32(b + CG_HDR_N_FIELDS)));
    m.set_index = m.default_slots + align8(8 * table_cap(cg_rd32(b + CG_HDR_N_DEFAULTS)));
    m.set_slots = m.set_index + align8(sizeof(cg_set_index) * n_sets);
    /* each set gets table_cap(count) <= 4 * count + 2 slots; budget for the worst case */
    m.marks = m.set_slots + align8(8 * (4 * n_members + 2 * n_sets));
    m.word_tags = m.marks + align8(2 * ((uint64_t)cg_rd32(b + CG_HDR_CODE_LEN) + 1));
    m.total = m.word_tags + align8(4 * (uint64_t)cg_rd32(b + CG_HDR_N_WORDS));
    return m;
}

static int check_header(const uint8_t *b, size_t len) {
    if (!b) return CG_E_ARG;
    if (len < 4 || cg_memcmp(b, CG_MAGIC, 4) != 0) return CG_E_BLOB_MAGIC;
    if (len < CG_HEADER_SIZE) return CG_E_BLOB_TRUNCATED;
    if (cg_rd16(b + 4) != CG_BLOB_FORMAT) return CG_E_BLOB_VERSION;
    if (cg_rd16(b + 6) & ~CG_FLAGS_KNOWN) return CG_E_BLOB_OPCODE;
    if (cg_rd32(b + CG_HDR_LEN) != len) return CG_E_BLOB_TRUNCATED;
    if (len > 0x7fffffffu) return CG_E_BLOB_BOUNDS;
    for (uint32_t at = CG_HDR_RESERVED; at < CG_HEADER_SIZE; at += 4)
        if (cg_rd32(b + at) != 0) return CG_E_BLOB_BOUNDS;
    if (layout_of(b).total != len) return CG_E_BLOB_BOUNDS;
    return 0;
}

int64_t cg_policy_mem_size(const uint8_t *blob, size_t len) {
    int rc = check_header(blob, len);
    if (rc) return rc;
    return (int64_t)plan_of(blob, len).total;
}

/* ---- condition code verification ---- */
#define MARK_NONE (-1)
/* What a jump target records: the quantifier nesting and the stack depth it expects. */
#define MARK(level, depth) ((int16_t)((level) << 7 | (depth)))

static uint32_t word(const cg_policy *p, uint32_t i) { return cg_rd32(p->words + 4u * i); }
static bool words_in(const cg_policy *p, uint64_t at, uint64_t n) { return at + n <= p->n_words; }

/* path {base, n_tokens (| CG_PATH_KEY, then >= 1), display_sid, token_sid x n_tokens};
   CG_ELEMENT only in a body */
/* Each descriptor is checked once however many instructions name it, so loading stays
   linear in the blob's size: word_tags[w] records what words[w] was checked as (a TAG_*, or
   TAG_KMP + the part's sid for a failure table). One index used as two things is refused. */
enum { TAG_NONE, TAG_PATH, TAG_GLOB, TAG_PGLOB, TAG_WINDOW, TAG_KMP };

/* 1: already checked as tag; 0: not yet (then it is recorded as tag, to be checked now,
   and any failure fails the whole load); -1: checked as something else. */
static int tag_once(const cg_policy *p, uint32_t w, uint32_t tag) {
    uint32_t t = p->word_tags[w];
    if (t == tag) return 1;
    if (t != TAG_NONE) return -1;
    p->word_tags[w] = tag;
    return 0;
}

static int check_path(const cg_policy *p, uint32_t w, bool in_body) {
    if (!words_in(p, w, 3)) return CG_E_BLOB_BOUNDS;
    uint32_t base = word(p, w), n = word(p, w + 1) & ~CG_PATH_KEY;
    if (base == CG_ELEMENT ? !in_body : base >= p->n_fields) return CG_E_BLOB_BOUNDS;
    int seen = tag_once(p, w, TAG_PATH);
    if (seen) return seen > 0 ? 0 : CG_E_BLOB_BOUNDS;
    if ((word(p, w + 1) & CG_PATH_KEY) && n == 0) return CG_E_BLOB_BOUNDS;
    if (word(p, w + 2) >= p->n_strings || !words_in(p, (uint64_t)w + 3, n)) return CG_E_BLOB_BOUNDS;
    for (uint32_t i = 0; i < n; i++)
        if (word(p, w + 3 + i) >= p->n_strings) return CG_E_BLOB_BOUNDS;
    return 0;
}

static int check_ref(const cg_policy *p, uint32_t operand, bool is_path, bool in_body) {
    if (is_path) return check_path(p, operand, in_body);
    return operand < p->n_fields ? 0 : CG_E_BLOB_BOUNDS;
}

/* glob {n_parts >= 1, (part_sid, kmp_word) x n_parts}: each failure function in bounds and
   equal to the true one, recomputed from the entries already checked (so linear). */
static int check_glob(const cg_policy *p, uint32_t g) {
    if (!words_in(p, g, 1)) return CG_E_BLOB_BOUNDS;
    int seen = tag_once(p, g, TAG_GLOB);
    if (seen) return seen > 0 ? 0 : CG_E_BLOB_BOUNDS;
    uint32_t n = word(p, g);
    if (n == 0 || !words_in(p, (uint64_t)g + 1, 2ull * n)) return CG_E_BLOB_BOUNDS;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t sid = word(p, g + 1 + 2 * k), f = word(p, g + 2 + 2 * k), m;
        if (sid >= p->n_strings) return CG_E_BLOB_BOUNDS;
        const uint8_t *s = cg_str(p, sid, &m);
        if (!words_in(p, f, m)) return CG_E_BLOB_BOUNDS;
        if (m == 0) continue;
        if (sid > 0xffffffffu - TAG_KMP) return CG_E_BLOB_BOUNDS;
        seen = tag_once(p, f, TAG_KMP + sid);
        if (seen < 0) return CG_E_BLOB_BOUNDS;
        if (seen) continue; /* this table was checked against this very part */
        if (word(p, f) != 0) return CG_E_BLOB_BOUNDS;
        uint32_t j = 0;
        for (uint32_t i = 1; i < m; i++) {
            while (j > 0 && s[i] != s[j]) j = word(p, f + j - 1);
            if (s[i] == s[j]) j++;
            if (word(p, f + i) != j) return CG_E_BLOB_BOUNDS;
        }
    }
    return 0;
}

/* pglob {n_components >= 1, glob_word x n_components} */
static int check_pglob(const cg_policy *p, uint32_t g) {
    if (!words_in(p, g, 1)) return CG_E_BLOB_BOUNDS;
    int seen = tag_once(p, g, TAG_PGLOB);
    if (seen) return seen > 0 ? 0 : CG_E_BLOB_BOUNDS;
    uint32_t n = word(p, g);
    if (n == 0 || !words_in(p, (uint64_t)g + 1, n)) return CG_E_BLOB_BOUNDS;
    for (uint32_t k = 0; k < n; k++) {
        int rc = check_glob(p, word(p, g + 1 + k));
        if (rc) return rc;
    }
    return 0;
}

/* window {days, start_minute, end_minute, n, (utc_start, offset) x n} */
static int check_window(const cg_policy *p, uint32_t w) {
    if (!words_in(p, w, 4)) return CG_E_BLOB_BOUNDS;
    int seen = tag_once(p, w, TAG_WINDOW);
    if (seen) return seen > 0 ? 0 : CG_E_BLOB_BOUNDS;
    uint32_t days = word(p, w), start = word(p, w + 1), end = word(p, w + 2), n = word(p, w + 3);
    if (days == 0 || days > 127 || start > 1439 || end == 0 || end > 1440 || start == end ||
        n == 0 || !words_in(p, (uint64_t)w + 4, 2ull * n))
        return CG_E_BLOB_BOUNDS;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = word(p, w + 4 + 2 * i);
        int32_t off = (int32_t)word(p, w + 5 + 2 * i);
        if (i == 0 ? at != 0 : at <= word(p, w + 2 + 2 * i)) return CG_E_BLOB_BOUNDS;
        if (off <= -86400 || off >= 86400) return CG_E_BLOB_BOUNDS;
    }
    return 0;
}

/* An open quantifier body: where it ends (just after its ENDQ) and the stack depth of the
   code around it. */
typedef struct qframe {
    uint32_t end;
    int depth;
} qframe;

static int verify_code(const cg_policy *p, uint32_t start, uint32_t end, int16_t *marks) {
    const uint8_t *code = p->code;
    for (uint32_t i = start; i <= end; i++) marks[i] = MARK_NONE;
    qframe q[CG_MAX_QUANT];
    int level = 0, depth = 0, rc = 0;
    uint32_t pc = start;
    bool ended = false;
    while (pc < end) {
        if (ended) return CG_E_BLOB_STACK; /* code after RET */
        uint32_t limit = level ? q[level - 1].end : end; /* the end of the current body */
        if (pc >= limit) return CG_E_BLOB_STACK;          /* a body without its ENDQ */
        if (marks[pc] != MARK_NONE && marks[pc] != MARK(level, depth))
            return (marks[pc] >> 7) != level ? CG_E_BLOB_JUMP : CG_E_BLOB_STACK;
        uint8_t op = code[pc];
        if (op >= CG_N_OPCODES) return CG_E_BLOB_OPCODE;
        if (pc + 1 >= end) return CG_E_BLOB_BOUNDS;
        uint8_t fl = code[pc + 1];
        if (fl & ~op_flags[op]) return CG_E_BLOB_OPCODE;
        uint32_t len = CG_INSN_LEN(op_operands[op]);
        if ((uint64_t)pc + len > end) return CG_E_BLOB_BOUNDS;
        if (pc + len > limit) return CG_E_BLOB_STACK; /* straddles the body's end */
        for (uint32_t i = pc + 1; i < pc + len; i++)
            if (marks[i] != MARK_NONE) return CG_E_BLOB_JUMP; /* a jump lands mid-instruction */
        const uint8_t *a = code + pc + 2;
        uint32_t a0 = cg_rd32(a), a1 = op_operands[op] > 1 ? cg_rd32(a + 4) : 0;
        bool in_body = level > 0, path_a = (fl & CG_F_PATH_A) != 0;
        uint32_t cmp = fl & CG_F_CMP_MASK;
        switch (op) {
        case CG_OP_NUM:
            if (cmp >= CG_N_CMP) return CG_E_BLOB_OPCODE;
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if ((uint64_t)a1 + (cmp == CG_CMP_BETWEEN) >= p->n_numbers ||
                cg_rd32(a + 8) >= p->n_strings)
                return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_LEN:
            if (cmp > CG_CMP_NE) return CG_E_BLOB_OPCODE;
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if (a1 >= p->n_numbers || cg_rd32(a + 8) >= p->n_strings) return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_IN:
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if (a1 >= p->n_sets) return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_PRESENT:
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            break;
        case CG_OP_EQ:
            if ((rc = check_ref(p, a0, path_a, in_body)) ||
                (rc = check_ref(p, a1, (fl & CG_F_PATH_B) != 0, in_body)))
                return rc;
            break;
        case CG_OP_STR:
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if ((rc = (fl & CG_F_STR_PATH) ? check_pglob(p, a1) : check_glob(p, a1))) return rc;
            if (cg_rd32(a + 8) >= p->n_strings || cg_rd32(a + 12) >= p->n_strings)
                return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_TYPE:
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if (a1 >= CG_N_TYPES || cg_rd32(a + 8) >= p->n_strings) return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_TIME:
            if ((rc = check_ref(p, a0, path_a, in_body)) || (rc = check_window(p, a1))) return rc;
            if (cg_rd32(a + 8) >= p->n_strings) return CG_E_BLOB_BOUNDS;
            break;
        case CG_OP_EVERY:
        case CG_OP_SOME:
            /* the ref is read in the enclosing body (if any); the body follows, ends with
               ENDQ just before a1, and runs on a stack of its own */
            if ((rc = check_ref(p, a0, path_a, in_body))) return rc;
            if (level >= CG_MAX_QUANT) return CG_E_BLOB_STACK;
            if (a1 <= pc + len || a1 > limit) return CG_E_BLOB_JUMP;
            q[level].end = a1;
            q[level].depth = depth;
            level++;
            depth = 0;
            pc += len;
            continue;
        case CG_OP_ENDQ:
            if (level == 0 || depth != 1 || pc + len != q[level - 1].end) return CG_E_BLOB_STACK;
            level--;
            depth = q[level].depth + 1; /* the quantifier's value */
            if (depth > CG_MAX_STACK) return CG_E_BLOB_STACK;
            pc += len;
            continue;
        case CG_OP_NOT:
            if (depth < 1) return CG_E_BLOB_STACK;
            break;
        case CG_OP_AND:
        case CG_OP_OR:
            if (depth < 2) return CG_E_BLOB_STACK;
            break;
        case CG_OP_JF:
        case CG_OP_JT: {
            uint32_t t = a0;
            if (depth < 1) return CG_E_BLOB_STACK;
            if (t <= pc || t >= limit) return CG_E_BLOB_JUMP; /* forward, inside the body */
            if (t < pc + len) return CG_E_BLOB_JUMP;
            if (marks[t] == MARK_NONE) marks[t] = MARK(level, depth);
            else if (marks[t] != MARK(level, depth)) return CG_E_BLOB_STACK;
            break;
        }
        case CG_OP_RET:
            if (level != 0 || depth != 1 || pc + len != end) return CG_E_BLOB_STACK;
            ended = true;
            break;
        default:
            break;
        }
        depth += op_effect[op];
        if (depth > CG_MAX_STACK) return CG_E_BLOB_STACK;
        pc += len;
    }
    return ended ? 0 : CG_E_BLOB_STACK;
}

/* Inserts index+1 at hash h into a table of pairs; is_dup says whether a stored index
   equals the new one by content. Returns false on a duplicate. */
typedef bool (*same_fn)(const cg_policy *, uint32_t, uint32_t);

static bool table_put(uint32_t *slots, uint32_t mask, uint32_t h, uint32_t idx,
                      const cg_policy *p, same_fn same) {
    for (uint32_t i = h & mask;; i = (i + 1) & mask) {
        if (slots[2 * i] == 0) {
            slots[2 * i] = idx + 1;
            slots[2 * i + 1] = h;
            return true;
        }
        if (slots[2 * i + 1] == h && same(p, slots[2 * i] - 1, idx)) return false;
    }
}

static bool str_same(const cg_policy *p, uint32_t a, uint32_t b) {
    uint32_t la, lb;
    const uint8_t *x = cg_str(p, a, &la), *y = cg_str(p, b, &lb);
    return la == lb && cg_memcmp(x, y, la) == 0;
}

static bool entry_same(const cg_policy *p, uint32_t a, uint32_t b) {
    const uint8_t *x = p->entries + 16u * a, *y = p->entries + 16u * b;
    return str_same(p, cg_rd32(x), cg_rd32(y)) && str_same(p, cg_rd32(x + 4), cg_rd32(y + 4));
}

static bool field_same(const cg_policy *p, uint32_t a, uint32_t b) {
    const uint8_t *x = p->fields + 12u * a, *y = p->fields + 12u * b;
    return cg_rd32(x) == cg_rd32(y) && str_same(p, cg_rd32(x + 4), cg_rd32(y + 4));
}

static bool default_same(const cg_policy *p, uint32_t a, uint32_t b) {
    return str_same(p, cg_rd32(p->defaults + 12u * a), cg_rd32(p->defaults + 12u * b));
}

static uint32_t sid_hash(const cg_policy *p, uint32_t sid);

/* An effect word: a known decision, approvals exactly for Elevate, no other bits; perso
   knows only Allow. */
static bool effect_valid(const cg_policy *p, uint32_t w) {
    uint32_t d = CG_EFFECT_DECISION(w), n = CG_EFFECT_APPROVALS(w);
    if (w >> 4 || d > CG_ELEVATE || (d == CG_ELEVATE) != (n != 0)) return false;
    return !(p->flags & CG_FLAG_PERSO) || d == CG_ALLOW;
}

/* Precedence order of an entry's rules: deny, allow, then elevate by approvals descending. */
static uint32_t effect_rank(uint32_t w) {
    switch (CG_EFFECT_DECISION(w)) {
    case CG_DENY: return 0;
    case CG_ALLOW: return 1;
    default: return 5 - CG_EFFECT_APPROVALS(w); /* 3 approvals rank 2, 1 approval rank 4 */
    }
}

static uint32_t sid_hash(const cg_policy *p, uint32_t sid) {
    uint32_t n;
    const uint8_t *s = cg_str(p, sid, &n);
    return cg_hash_bytes(s, n);
}

int cg_policy_load(const uint8_t *blob, size_t len, void *mem, size_t mem_len,
                   const cg_limits *limits, cg_policy **out) {
    if (!mem || !out) return CG_E_ARG;
    *out = NULL;
    int rc = check_header(blob, len);
    if (rc) return rc;
    if (crc32(blob + 16, len - 16) != cg_rd32(blob + CG_HDR_CRC)) return CG_E_BLOB_CHECKSUM;
    memplan m = plan_of(blob, len);
    if ((uintptr_t)mem % 8 != 0) return CG_E_ARG;
    if (m.total > mem_len) return CG_E_BLOB_MEMORY;
    uint8_t *base = mem;
    cg_memset(base, 0, (size_t)m.total);
    cg_policy *p = (cg_policy *)mem;
    uint8_t *b = base + m.blob;
    cg_memcpy(b, blob, len);

    p->flags = cg_rd16(b + 6);
    cg_limits lim = limits ? *limits : (cg_limits){0, 0, 0};
    p->limits.max_bytes = lim.max_bytes ? lim.max_bytes : CG_DEFAULT_MAX_BYTES;
    p->limits.max_depth = lim.max_depth ? lim.max_depth : CG_DEFAULT_MAX_DEPTH;
    p->limits.max_keys = lim.max_keys ? lim.max_keys : CG_DEFAULT_MAX_KEYS;
    if (p->limits.max_depth > CG_LIMIT_MAX_DEPTH || p->limits.max_bytes > 0x7fffffffu ||
        p->limits.max_keys > (1u << 24))
        return CG_E_ARG;
    p->blob = b;
    p->blob_len = (uint32_t)len;
    p->n_strings = cg_rd32(b + CG_HDR_N_STRINGS);
    p->n_fields = cg_rd32(b + CG_HDR_N_FIELDS);
    p->n_sets = cg_rd32(b + CG_HDR_N_SETS);
    p->n_members = cg_rd32(b + CG_HDR_N_MEMBERS);
    p->n_numbers = cg_rd32(b + CG_HDR_N_NUMBERS);
    p->n_entries = cg_rd32(b + CG_HDR_N_ENTRIES);
    p->n_rules = cg_rd32(b + CG_HDR_N_RULES);
    p->code_len = cg_rd32(b + CG_HDR_CODE_LEN);
    if (p->code_len >= CG_BLAME_GROUP) return CG_E_BLOB_BOUNDS; /* offsets double as blames */
    p->str_len = cg_rd32(b + CG_HDR_STR_LEN);
    p->version_sid = cg_rd32(b + CG_HDR_VERSION_SID);
    p->n_policy_rules = cg_rd32(b + CG_HDR_N_POLICY_RULES);
    p->n_words = cg_rd32(b + CG_HDR_N_WORDS);
    p->n_defaults = cg_rd32(b + CG_HDR_N_DEFAULTS);
    layout l = layout_of(b);
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

    /* strings: in bounds and valid UTF-8 (they end up in reasons and JSON) */
    for (uint32_t i = 0; i < p->n_strings; i++) {
        const uint8_t *e = p->strings + 8u * i;
        uint64_t off = cg_rd32(e), n = cg_rd32(e + 4);
        if (off + n > p->str_len) return CG_E_BLOB_BOUNDS;
        if (!cg_utf8_valid(p->strdata + off, (size_t)n)) return CG_E_BLOB_BOUNDS;
    }
    if (p->version_sid >= p->n_strings) return CG_E_BLOB_BOUNDS;
    if (p->n_policy_rules > 0x7fffffffu) return CG_E_BLOB_BOUNDS; /* rule + 1 fits an int32 */
    for (uint32_t i = 0; i < p->n_policy_rules; i++) {
        uint32_t name = cg_rd32(p->names + (size_t)4 * i);
        if (name != CG_NONE && name >= p->n_strings) return CG_E_BLOB_BOUNDS;
    }

    /* fields */
    p->field_slots = (uint32_t *)(base + m.field_slots);
    p->field_mask = (uint32_t)table_cap(p->n_fields) - 1;
    for (uint32_t i = 0; i < p->n_fields; i++) {
        const uint8_t *f = p->fields + 12u * i;
        uint32_t src = cg_rd32(f), name = cg_rd32(f + 4);
        if (src >= CG_N_SOURCES || name >= p->n_strings || cg_rd32(f + 8) >= p->n_strings)
            return CG_E_BLOB_BOUNDS;
        if (!table_put(p->field_slots, p->field_mask, cg_field_hash(src, sid_hash(p, name)), i, p,
                       field_same))
            return CG_E_BLOB_DUPLICATE;
    }

    /* sets and their members */
    p->set_index = (cg_set_index *)(base + m.set_index);
    p->set_slots = (uint32_t *)(base + m.set_slots);
    uint64_t next_slot = 0;
    for (uint32_t i = 0; i < p->n_sets; i++) {
        const uint8_t *e = p->sets + 12u * i;
        uint64_t first = cg_rd32(e), count = cg_rd32(e + 4);
        if (first + count > p->n_members || cg_rd32(e + 8) >= p->n_strings)
            return CG_E_BLOB_BOUNDS;
        uint64_t cap = table_cap(count);
        /* sets may not share members beyond the planned slot budget */
        if (next_slot + cap > 4 * (uint64_t)p->n_members + 2 * (uint64_t)p->n_sets)
            return CG_E_BLOB_BOUNDS;
        p->set_index[i].slots = (uint32_t)next_slot;
        p->set_index[i].mask = (uint32_t)cap - 1;
        uint32_t *slots = p->set_slots + 2 * next_slot;
        next_slot += cap;
        for (uint64_t k = first; k < first + count; k++) {
            uint32_t sid = cg_rd32(p->members + 4 * k);
            if (sid >= p->n_strings) return CG_E_BLOB_BOUNDS;
            if (!table_put(slots, (uint32_t)cap - 1, sid_hash(p, sid), sid, p,
                           str_same))
                return CG_E_BLOB_DUPLICATE;
        }
    }

    /* numbers: finite only (the compiler never emits NaN or infinities) */
    for (uint32_t i = 0; i < p->n_numbers; i++) {
        double d = cg_rdf64(p->numbers + 8u * i);
        if (d != d || d - d != 0) return CG_E_BLOB_BOUNDS;
    }

    /* rules and their condition code */
    int16_t *marks = (int16_t *)(base + m.marks);
    p->word_tags = (uint32_t *)(base + m.word_tags); /* zeroed with the rest of mem */
    for (uint32_t i = 0; i < p->n_rules; i++) {
        const uint8_t *r = p->rules + 16u * i;
        uint64_t off = cg_rd32(r + 4), n = cg_rd32(r + 8);
        if (cg_rd32(r) >= p->n_policy_rules || off + n > p->code_len) return CG_E_BLOB_BOUNDS;
        if (!effect_valid(p, cg_rd32(r + 12))) return CG_E_BLOB_OPCODE;
        if (n && (rc = verify_code(p, (uint32_t)off, (uint32_t)(off + n), marks))) return rc;
    }

    /* entries: (tool, role) -> a run of rules */
    p->entry_slots = (uint32_t *)(base + m.entry_slots);
    p->entry_mask = (uint32_t)table_cap(p->n_entries) - 1;
    for (uint32_t i = 0; i < p->n_entries; i++) {
        const uint8_t *e = p->entries + 16u * i;
        uint32_t tool = cg_rd32(e), role = cg_rd32(e + 4);
        uint64_t first = cg_rd32(e + 8), n = cg_rd32(e + 12);
        if (tool >= p->n_strings || role >= p->n_strings || n == 0 || first + n > p->n_rules)
            return CG_E_BLOB_BOUNDS;
        for (uint64_t k = first + 1; k < first + n; k++)
            if (effect_rank(cg_rd32(p->rules + 16u * (k - 1) + 12)) >
                effect_rank(cg_rd32(p->rules + 16u * k + 12)))
                return CG_E_BLOB_OPCODE; /* out of precedence order */
        uint32_t h = cg_entry_hash(sid_hash(p, tool), sid_hash(p, role));
        if (!table_put(p->entry_slots, p->entry_mask, h, i, p, entry_same))
            return CG_E_BLOB_DUPLICATE;
    }

    /* tier defaults: tool -> effect, for any role */
    if (p->n_defaults && (p->flags & CG_FLAG_PERSO)) return CG_E_BLOB_OPCODE;
    p->default_slots = (uint32_t *)(base + m.default_slots);
    p->default_mask = (uint32_t)table_cap(p->n_defaults) - 1;
    for (uint32_t i = 0; i < p->n_defaults; i++) {
        const uint8_t *d = p->defaults + 12u * i;
        uint32_t tool = cg_rd32(d);
        if (tool >= p->n_strings || cg_rd32(d + 8) >= p->n_strings) return CG_E_BLOB_BOUNDS;
        if (!effect_valid(p, cg_rd32(d + 4))) return CG_E_BLOB_OPCODE;
        if (!table_put(p->default_slots, p->default_mask, sid_hash(p, tool), i, p, default_same))
            return CG_E_BLOB_DUPLICATE;
    }

    p->magic = CG_POLICY_MAGIC;
    *out = p;
    return 0;
}

uint32_t cg_policy_fields(const cg_policy *p) { return p ? p->n_fields : 0; }
uint32_t cg_policy_max_keys(const cg_policy *p) { return p ? p->limits.max_keys : 0; }
uint32_t cg_policy_max_depth(const cg_policy *p) { return p ? p->limits.max_depth : 0; }
