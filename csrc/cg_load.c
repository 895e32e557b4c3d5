/*
 * cg_load.c -- loads a compiled policy blob: the trust boundary.
 *
 * Everything in the blob is checked here, once: header, checksum, every section's
 * bounds, every string, index and count, and every rule's condition code (opcodes,
 * flags, operands, forward-only jumps landing on instruction boundaries, stack depth).
 * After cg_policy_load succeeds the interpreter can trust the blob and only asserts
 * (CG_ASSERT). Every refusal names its cause (a CG_E_BLOB_* code) and the blob offset of
 * the field at fault (*err_offset); fields are read through cg_blob.h.
 *
 * Memory: the caller passes one buffer of cg_policy_mem_size() bytes. It receives the
 * cg_policy header, a copy of the blob, and the hash indexes. Nothing else is kept.
 */
#include "cg_internal.h"

/* CRC-32 (IEEE 802.3, reflected) with a byte table the loader builds in the caller's
   memory for each load: 2048 steps, and no 1 KiB constant in the module. */
static void crc_table_fill(uint32_t table[256]) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
}

static uint32_t crc32(const uint32_t table[256], const uint8_t *p, size_t n) {
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* Where a check failed: the code, and the offset of the field at fault in the blob. */
typedef struct ld {
    const uint8_t *blob; /* the bytes offsets count from (the caller's, or the copy in mem) */
    uint32_t *err;
} ld;

CG_NOINLINE static int fail(const ld *l, int code, const uint8_t *at) {
    if (l->err) *l->err = (uint32_t)(at - l->blob);
    return code;
}

/* Where a check refuses: the cause and the field at fault, then one exit (a refusal is
   rare; one exit keeps the loader small in the wasm module). */
#define REFUSE(code, at)                                                                       \
    do {                                                                                       \
        code_ = (code);                                                                        \
        bad_ = (at);                                                                           \
        goto refuse;                                                                           \
    } while (0)

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
        crc_table, total;
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
    m.crc_table = m.word_tags + align8(4 * (uint64_t)cg_rd32(b + CG_HDR_N_WORDS));
    m.total = m.crc_table + 4 * 256;
    return m;
}

static int check_header(const uint8_t *b, size_t len, uint32_t *err) {
    ld l = {b, err};
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    if (!b) return CG_E_ARG;
    if (len < 4 || cg_rd32(b) != CG_MAGIC_U32) REFUSE(CG_E_BLOB_MAGIC, b);
    if (len < CG_HEADER_SIZE) REFUSE(CG_E_BLOB_TRUNCATED, b + CG_HDR_LEN);
    if (cg_rd16(b + CG_HDR_FORMAT) != CG_BLOB_FORMAT) REFUSE(CG_E_BLOB_VERSION, b + CG_HDR_FORMAT);
    if (cg_rd16(b + CG_HDR_FLAGS) & ~CG_FLAGS_KNOWN) REFUSE(CG_E_BLOB_FLAGS, b + CG_HDR_FLAGS);
    if (cg_rd32(b + CG_HDR_LEN) != len) REFUSE(CG_E_BLOB_TRUNCATED, b + CG_HDR_LEN);
    if (len > 0x7fffffffu) REFUSE(CG_E_BLOB_BOUNDS, b + CG_HDR_LEN);
    for (uint32_t at = CG_HDR_RESERVED; at < CG_HEADER_SIZE; at += 4)
        if (cg_rd32(b + at) != 0) REFUSE(CG_E_BLOB_RESERVED, b + at);
    if (cg_layout_of(b).total != len) REFUSE(CG_E_BLOB_SIZES, b + CG_HDR_N_STRINGS);
    return 0;
refuse:
    return fail(&l, code_, bad_);
}

int64_t cg_policy_mem_size(const uint8_t *blob, size_t len, uint32_t *err_offset) {
    int rc = check_header(blob, len, err_offset);
    if (rc) return rc;
    return (int64_t)plan_of(blob, len).total;
}

/* ---- condition code verification ---- */
#define MARK_NONE (-1)
/* What a jump target records: the quantifier nesting and the stack depth it expects. */
#define MARK(level, depth) ((int16_t)((level) << 7 | (depth)))

/* A loader: the policy being checked, and where to report. */
typedef struct loader {
    cg_policy *p;
    ld l;
} loader;

static bool words_in(const cg_policy *p, uint64_t at, uint64_t n) { return at + n <= p->n_words; }

/* Each descriptor is checked once however many instructions name it, so loading stays
   linear in the blob's size: word_tags[w] records what words[w] was checked as (a TAG_*, or
   TAG_KMP + the part's sid for a failure table). One index used as two things is refused. */
enum { TAG_NONE, TAG_PATH, TAG_GLOB, TAG_PGLOB, TAG_WINDOW, TAG_URL, TAG_PATHCHK, TAG_SQLCHK, TAG_KMP };

/* 1: already checked as tag; 0: not yet (then it is recorded as tag, to be checked now,
   and any failure fails the whole load); -1: checked as something else. */
static int tag_once(const cg_policy *p, uint32_t w, uint32_t tag) {
    uint32_t t = p->word_tags[w];
    if (t == tag) return 1;
    if (t != TAG_NONE) return -1;
    p->word_tags[w] = tag;
    return 0;
}

/* A descriptor operand: `operand` is where the instruction names it (for errors about the
   index itself), the descriptor's own words for errors inside it. */
static int check_path(const loader *L, uint32_t w, bool in_body, const uint8_t *operand) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    if (!words_in(p, w, 3)) REFUSE(CG_E_BLOB_BOUNDS, operand);
    uint32_t base = cg_word(p, w + CG_PATH_BASE), count = cg_word(p, w + CG_PATH_COUNT);
    uint32_t n = count & ~CG_PATH_KEY;
    if (base == CG_ELEMENT ? !in_body : base >= p->n_fields) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(w + CG_PATH_BASE)));
    int seen = tag_once(p, w, TAG_PATH);
    if (seen) return seen > 0 ? 0 : fail(&L->l, CG_E_BLOB_DESCRIPTOR, operand);
    if ((count & CG_PATH_KEY) && n == 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(w + CG_PATH_COUNT)));
    if (!words_in(p, (uint64_t)w + CG_PATH_TOKENS, n)) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(w + CG_PATH_COUNT)));
    if (cg_word(p, w + CG_PATH_DISPLAY) >= p->n_strings) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(w + CG_PATH_DISPLAY)));
    for (uint32_t i = 0; i < n; i++)
        if (cg_path_token(p, w, i) >= p->n_strings)
            REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)((uint64_t)w + CG_PATH_TOKENS + i)));
    return 0;
refuse:
    return fail(&L->l, code_, bad_);
}

CG_NOINLINE static int check_ref(const loader *L, uint32_t operand, bool is_path, bool in_body, const uint8_t *at) {
    if (is_path) return check_path(L, operand, in_body, at);
    return operand < L->p->n_fields ? 0 : fail(&L->l, CG_E_BLOB_BOUNDS, at);
}

/* glob {n_parts >= 1, (part_sid, kmp_word) x n_parts}: each failure function in bounds and
   equal to the true one, recomputed from the entries already checked (so linear). */
static int check_glob(const loader *L, uint32_t g, const uint8_t *operand) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    if (!words_in(p, g, 1)) REFUSE(CG_E_BLOB_BOUNDS, operand);
    int seen = tag_once(p, g, TAG_GLOB);
    if (seen) return seen > 0 ? 0 : fail(&L->l, CG_E_BLOB_DESCRIPTOR, operand);
    uint32_t n = cg_word(p, g + CG_GLOB_COUNT);
    if (n == 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(g)));
    if (!words_in(p, (uint64_t)g + 1, 2ull * n)) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(g)));
    for (uint32_t k = 0; k < n; k++) {
        uint32_t sid = cg_glob_part(p, g, k), f = cg_glob_kmp(p, g, k), m;
        if (sid >= p->n_strings) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(CG_GLOB_PART_WORD(g, k))));
        const uint8_t *s = cg_str(p, sid, &m);
        if (!words_in(p, f, m)) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(CG_GLOB_PART_WORD(g, k) + 1)));
        if (m == 0) continue;
        if (sid > 0xffffffffu - TAG_KMP) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(CG_GLOB_PART_WORD(g, k))));
        seen = tag_once(p, f, TAG_KMP + sid);
        if (seen < 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(CG_GLOB_PART_WORD(g, k) + 1)));
        if (seen) continue; /* this table was checked against this very part */
        if (cg_word(p, f) != 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(f)));
        uint32_t j = 0;
        for (uint32_t i = 1; i < m; i++) {
            while (j > 0 && s[i] != s[j]) j = cg_word(p, f + j - 1);
            if (s[i] == s[j]) j++;
            if (cg_word(p, f + i) != j) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)((uint64_t)f + i)));
        }
    }
    return 0;
refuse:
    return fail(&L->l, code_, bad_);
}

/* pglob {n_components >= 1, glob_word x n_components} */
static int check_pglob(const loader *L, uint32_t g, const uint8_t *operand) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    if (!words_in(p, g, 1)) REFUSE(CG_E_BLOB_BOUNDS, operand);
    int seen = tag_once(p, g, TAG_PGLOB);
    if (seen) return seen > 0 ? 0 : fail(&L->l, CG_E_BLOB_DESCRIPTOR, operand);
    uint32_t n = cg_word(p, g + CG_PGLOB_COUNT);
    if (n == 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(g)));
    if (!words_in(p, (uint64_t)g + 1, n)) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(g)));
    for (uint32_t k = 0; k < n; k++) {
        int rc = check_glob(L, cg_pglob_glob(p, g, k), cg_word_rec(p, g + 1 + k));
        if (rc) return rc;
    }
    return 0;
refuse:
    return fail(&L->l, code_, bad_);
}

/* window {days, start_minute, end_minute, n, (utc_start, offset) x n} */
static int check_window(const loader *L, uint32_t w, const uint8_t *operand) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    if (!words_in(p, w, 4)) REFUSE(CG_E_BLOB_BOUNDS, operand);
    int seen = tag_once(p, w, TAG_WINDOW);
    if (seen) return seen > 0 ? 0 : fail(&L->l, CG_E_BLOB_DESCRIPTOR, operand);
    uint32_t days = cg_word(p, w + CG_WINDOW_DAYS), start = cg_word(p, w + CG_WINDOW_START);
    uint32_t end = cg_word(p, w + CG_WINDOW_END), n = cg_word(p, w + CG_WINDOW_COUNT);
    if (days == 0 || days > 127) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(w + CG_WINDOW_DAYS)));
    if (start > 1439) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(w + CG_WINDOW_START)));
    if (end == 0 || end > 1440 || start == end) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(w + CG_WINDOW_END)));
    if (n == 0) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(w + CG_WINDOW_COUNT)));
    if (!words_in(p, (uint64_t)w + 4, 2ull * n)) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, (uint32_t)(w + CG_WINDOW_COUNT)));
    for (uint32_t i = 0; i < n; i++) {
        uint32_t at = cg_window_utc_start(p, w, i);
        int32_t off = cg_window_offset(p, w, i);
        if (i == 0 ? at != 0 : at <= cg_window_utc_start(p, w, i - 1))
            REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(CG_WINDOW_ENTRY_WORD(w, i))));
        if (off <= -86400 || off >= 86400) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, (uint32_t)(CG_WINDOW_ENTRY_WORD(w, i) + 1)));
    }
    return 0;
refuse:
    return fail(&L->l, code_, bad_);
}

/* url {flags, 4 sets}, pathchk {flags, 3 sets} and sqlchk {flags, max, 3 sets} (UrlCheck,
   PathCheck, SqlCheck): flags it knows, each set word CG_NONE_SET or a set (from word
   first_set on; sqlchk's max_statements is any count). */
static int check_argdesc(const loader *L, uint32_t w, uint32_t tag, uint32_t n_words, uint32_t known,
                         uint32_t first_set, const uint8_t *operand) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    if (!words_in(p, w, n_words)) REFUSE(CG_E_BLOB_BOUNDS, operand);
    int seen = tag_once(p, w, tag);
    if (seen) return seen > 0 ? 0 : fail(&L->l, CG_E_BLOB_DESCRIPTOR, operand);
    if (cg_word(p, w) & ~known) REFUSE(CG_E_BLOB_DESCRIPTOR, cg_word_rec(p, w));
    for (uint32_t k = first_set; k < n_words; k++) {
        uint32_t set = cg_word(p, w + k);
        if (set != CG_NONE_SET && set >= p->n_sets) REFUSE(CG_E_BLOB_BOUNDS, cg_word_rec(p, w + k));
    }
    return 0;
refuse:
    return fail(&L->l, code_, bad_);
}

/* An open quantifier body: where it ends (just after its ENDQ) and the stack depth of the
   code around it. */
typedef struct qframe {
    uint32_t end;
    int depth;
} qframe;

/* A string operand k of the instruction at ins. */
CG_NOINLINE static int check_sid(const loader *L, const uint8_t *ins, uint32_t k) {
    return cg_insn_operand(ins, k) < L->p->n_strings ? 0 : fail(&L->l, CG_E_BLOB_BOUNDS, cg_insn_operand_at(ins, k));
}

static int verify_code(const loader *L, uint32_t start, uint32_t end, int16_t *marks) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    const cg_policy *p = L->p;
    for (uint32_t i = start; i <= end; i++) marks[i] = MARK_NONE;
    qframe q[CG_MAX_QUANT];
    int level = 0, depth = 0, rc = 0;
    uint32_t pc = start;
    bool ended = false;
    while (pc < end) {
        const uint8_t *ins = cg_insn(p, pc);
        if (ended) REFUSE(CG_E_BLOB_STACK, ins); /* code after RET */
        uint32_t limit = level ? q[level - 1].end : end; /* the end of the current body */
        if (pc >= limit) REFUSE(CG_E_BLOB_STACK, ins); /* a body without its ENDQ */
        if (marks[pc] != MARK_NONE && marks[pc] != MARK(level, depth))
            REFUSE((marks[pc] >> 7) != level ? CG_E_BLOB_JUMP : CG_E_BLOB_STACK, ins);
        uint8_t op = ins[CG_INSN_OPCODE];
        if (op >= CG_N_OPCODES) REFUSE(CG_E_BLOB_OPCODE, ins);
        if (pc + 1 >= end) REFUSE(CG_E_BLOB_BOUNDS, ins);
        uint8_t fl = ins[CG_INSN_FLAGS];
        if (fl & ~cg_op_flags(op)) REFUSE(CG_E_BLOB_INSN_FLAGS, ins + CG_INSN_FLAGS);
        uint32_t len = cg_op_len(op);
        if ((uint64_t)pc + len > end) REFUSE(CG_E_BLOB_BOUNDS, ins);
        if (pc + len > limit) REFUSE(CG_E_BLOB_STACK, ins); /* straddles the body's end */
        for (uint32_t i = pc + 1; i < pc + len; i++)
            if (marks[i] != MARK_NONE) REFUSE(CG_E_BLOB_JUMP, ins); /* a jump lands mid-instruction */
        uint32_t a0 = cg_op_operands(op) > 0 ? cg_insn_operand(ins, 0) : 0;
        uint32_t a1 = cg_op_operands(op) > 1 ? cg_insn_operand(ins, 1) : 0;
        const uint8_t *at0 = cg_insn_operand_at(ins, 0), *at1 = cg_insn_operand_at(ins, 1);
        bool in_body = level > 0, path_a = (fl & CG_F_PATH_A) != 0;
        uint32_t cmp = fl & CG_F_CMP_MASK;
        switch (op) {
        case CG_OP_NUM:
            if (cmp >= CG_N_CMP) REFUSE(CG_E_BLOB_INSN_FLAGS, ins + CG_INSN_FLAGS);
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if ((uint64_t)a1 + (cmp == CG_CMP_BETWEEN) >= p->n_numbers) REFUSE(CG_E_BLOB_BOUNDS, at1);
            if ((rc = check_sid(L, ins, 2))) return rc;
            break;
        case CG_OP_LEN:
            if (cmp > CG_CMP_NE) REFUSE(CG_E_BLOB_INSN_FLAGS, ins + CG_INSN_FLAGS);
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if (a1 >= p->n_numbers) REFUSE(CG_E_BLOB_BOUNDS, at1);
            if ((rc = check_sid(L, ins, 2))) return rc;
            break;
        case CG_OP_IN:
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if (a1 >= p->n_sets) REFUSE(CG_E_BLOB_BOUNDS, at1);
            break;
        case CG_OP_PRESENT:
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            break;
        case CG_OP_EQ:
            if ((rc = check_ref(L, a0, path_a, in_body, at0)) ||
                (rc = check_ref(L, a1, (fl & CG_F_PATH_B) != 0, in_body, at1)))
                return rc;
            break;
        case CG_OP_STR:
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if ((rc = (fl & CG_F_STR_PATH) ? check_pglob(L, a1, at1) : check_glob(L, a1, at1))) return rc;
            if ((rc = check_sid(L, ins, 2)) || (rc = check_sid(L, ins, 3))) return rc;
            break;
        case CG_OP_TYPE:
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if (a1 >= CG_N_TYPES) REFUSE(CG_E_BLOB_OPERAND, at1);
            if ((rc = check_sid(L, ins, 2))) return rc;
            break;
        case CG_OP_BOOL:
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if (a1 > 1) REFUSE(CG_E_BLOB_OPERAND, at1);
            break;
        case CG_OP_TIME:
            if ((rc = check_ref(L, a0, path_a, in_body, at0)) || (rc = check_window(L, a1, at1))) return rc;
            if ((rc = check_sid(L, ins, 2))) return rc;
            break;
        case CG_OP_URL:
            if ((rc = check_ref(L, a0, path_a, in_body, at0)) ||
                (rc = check_argdesc(L, a1, TAG_URL, CG_URLD_WORDS, CG_URL_FLAGS_KNOWN, 1, at1)))
                return rc;
            break;
        case CG_OP_PATHCHK:
            if ((rc = check_ref(L, a0, path_a, in_body, at0)) ||
                (rc = check_argdesc(L, a1, TAG_PATHCHK, CG_PATHD_WORDS, CG_PC_FLAGS_KNOWN, 1, at1)))
                return rc;
            break;
        case CG_OP_SQL:
            if ((rc = check_ref(L, a0, path_a, in_body, at0)) ||
                (rc = check_argdesc(L, a1, TAG_SQLCHK, CG_SQLD_WORDS, CG_SC_FLAGS_KNOWN, CG_SQLD_SCHEMAS, at1)))
                return rc;
            if ((cg_word(L->p, a1) & (CG_SC_SQLITE | CG_SC_MYSQL)) == (CG_SC_SQLITE | CG_SC_MYSQL)) /* two dialects */
                return fail(&L->l, CG_E_BLOB_DESCRIPTOR, cg_word_rec(L->p, a1));
            break;
        case CG_OP_EVERY:
        case CG_OP_SOME:
            /* the ref is read in the enclosing body (if any); the body follows, ends with
               ENDQ just before a1, and runs on a stack of its own */
            if ((rc = check_ref(L, a0, path_a, in_body, at0))) return rc;
            if (level >= CG_MAX_QUANT) REFUSE(CG_E_BLOB_STACK, ins);
            if (a1 <= pc + len || a1 > limit) REFUSE(CG_E_BLOB_JUMP, at1);
            q[level].end = a1;
            q[level].depth = depth;
            level++;
            depth = 0;
            pc += len;
            continue;
        case CG_OP_ENDQ:
            if (level == 0 || depth != 1 || pc + len != q[level - 1].end) REFUSE(CG_E_BLOB_STACK, ins);
            level--;
            depth = q[level].depth + 1; /* the quantifier's value */
            if (depth > CG_MAX_STACK) REFUSE(CG_E_BLOB_STACK, ins);
            pc += len;
            continue;
        case CG_OP_NOT:
            if (depth < 1) REFUSE(CG_E_BLOB_STACK, ins);
            break;
        case CG_OP_AND:
        case CG_OP_OR:
            if (depth < 2) REFUSE(CG_E_BLOB_STACK, ins);
            break;
        case CG_OP_JF:
        case CG_OP_JT: {
            uint32_t t = a0;
            if (depth < 1) REFUSE(CG_E_BLOB_STACK, ins);
            if (t <= pc || t >= limit) REFUSE(CG_E_BLOB_JUMP, at0); /* forward, inside the body */
            if (t < pc + len) REFUSE(CG_E_BLOB_JUMP, at0);
            if (marks[t] == MARK_NONE) marks[t] = MARK(level, depth);
            else if (marks[t] != MARK(level, depth)) REFUSE(CG_E_BLOB_STACK, at0);
            break;
        }
        case CG_OP_RET:
            if (level != 0 || depth != 1 || pc + len != end) REFUSE(CG_E_BLOB_STACK, ins);
            ended = true;
            break;
        case CG_OP_TRUE:
        case CG_OP_FALSE:
            break;
        default:
            CG_UNREACHABLE(); /* op < CG_N_OPCODES: every opcode has its case above */
            break;
        }
        depth += cg_op_effect(op);
        if (depth > CG_MAX_STACK) REFUSE(CG_E_BLOB_STACK, ins);
        pc += len;
    }
    return ended ? 0 : fail(&L->l, CG_E_BLOB_STACK, cg_insn(p, end > start ? end - 1 : start));
refuse:
    return fail(&L->l, code_, bad_);
}

/* Inserts index+1 at hash h into a table of pairs; is_dup says whether a stored index
   equals the new one by content. Returns false on a duplicate. */
typedef bool (*same_fn)(const cg_policy *, uint32_t, uint32_t);

CG_NOINLINE static bool table_put(uint32_t *slots, uint32_t mask, uint32_t h, uint32_t idx,
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
    return str_same(p, cg_entry_field(p, a, CG_ENTRY_TOOL), cg_entry_field(p, b, CG_ENTRY_TOOL)) &&
           str_same(p, cg_entry_field(p, a, CG_ENTRY_ROLE), cg_entry_field(p, b, CG_ENTRY_ROLE));
}

static bool field_same(const cg_policy *p, uint32_t a, uint32_t b) {
    return cg_field_source(p, a) == cg_field_source(p, b) && str_same(p, cg_field_name(p, a), cg_field_name(p, b));
}

static bool default_same(const cg_policy *p, uint32_t a, uint32_t b) {
    return str_same(p, cg_default_field(p, a, CG_DEFAULT_TOOL), cg_default_field(p, b, CG_DEFAULT_TOOL));
}

/* An effect word: a known decision, approvals exactly for Elevate, no other bits
   (CG_E_BLOB_EFFECT); perso knows only Allow (CG_E_BLOB_PERSO). 0 when valid. */
CG_NOINLINE static int effect_error(const cg_policy *p, uint32_t w) {
    uint32_t d = CG_EFFECT_DECISION(w), n = CG_EFFECT_APPROVALS(w);
    if (w >> 4 || d > CG_ELEVATE || (d == CG_ELEVATE) != (n != 0)) return CG_E_BLOB_EFFECT;
    return (p->flags & CG_FLAG_PERSO) && d != CG_ALLOW ? CG_E_BLOB_PERSO : 0;
}

/* Precedence order of an entry's rules: deny, allow, then elevate by approvals descending. */
static uint32_t effect_rank(uint32_t w) {
    switch (CG_EFFECT_DECISION(w)) {
    case CG_DENY: return 0;
    case CG_ALLOW: return 1;
    default: return 5 - CG_EFFECT_APPROVALS(w); /* 3 approvals rank 2, 1 approval rank 4 */
    }
}

CG_NOINLINE static uint32_t sid_hash(const cg_policy *p, uint32_t sid) {
    uint32_t n;
    const uint8_t *s = cg_str(p, sid, &n);
    return cg_hash_bytes(s, n);
}

/* A string index field of a record: in range, or CG_E_BLOB_BOUNDS at the field. */
CG_NOINLINE static int check_sid_at(const loader *L, const uint8_t *field) {
    return cg_rd32(field) < L->p->n_strings ? 0 : fail(&L->l, CG_E_BLOB_BOUNDS, field);
}

int cg_policy_load(const uint8_t *blob, size_t len, void *mem, size_t mem_len,
                   const cg_limits *limits, cg_policy **out, uint32_t *err_offset) {
    int code_ = 0;
    const uint8_t *bad_ = NULL;
    if (!mem || !out) return CG_E_ARG;
    *out = NULL;
    int rc = check_header(blob, len, err_offset);
    if (rc) return rc;
    memplan m = plan_of(blob, len);
    if ((uintptr_t)mem % 8 != 0) return CG_E_ARG;
    if (m.total > mem_len) return CG_E_BLOB_MEMORY;
    uint8_t *base = mem;
    uint32_t *table = (uint32_t *)(base + m.crc_table);
    crc_table_fill(table);
    ld header = {blob, err_offset};
    if (crc32(table, blob + 16, len - 16) != cg_rd32(blob + CG_HDR_CRC))
        return fail(&header, CG_E_BLOB_CHECKSUM, blob + CG_HDR_CRC);
    cg_memset(base, 0, (size_t)m.crc_table);
    cg_policy *p = (cg_policy *)mem;
    uint8_t *b = base + m.blob;
    cg_memcpy(b, blob, len);
    loader L = {p, {b, err_offset}};

    p->flags = cg_rd16(b + CG_HDR_FLAGS);
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
    p->str_len = cg_rd32(b + CG_HDR_STR_LEN);
    p->version_sid = cg_rd32(b + CG_HDR_VERSION_SID);
    p->n_policy_rules = cg_rd32(b + CG_HDR_N_POLICY_RULES);
    p->n_words = cg_rd32(b + CG_HDR_N_WORDS);
    p->n_defaults = cg_rd32(b + CG_HDR_N_DEFAULTS);
    /* code offsets double as blames (CG_BLAME_GROUP marks the others), and rule + 1 fits an
       int32: both follow from len < 2^31 (check_header), as the code and names sections fit */
    CG_ASSERT(p->code_len < CG_BLAME_GROUP && p->n_policy_rules <= 0x7fffffffu);
    cg_place_sections(p, b);

    /* strings: in bounds and valid UTF-8 (they end up in reasons and JSON) */
    for (uint32_t i = 0; i < p->n_strings; i++) {
        const uint8_t *e = cg_string_rec(p, i);
        uint64_t off = cg_rd32(e + CG_STRING_OFF), n = cg_rd32(e + CG_STRING_LEN);
        if (off + n > p->str_len) /* the offset, when it alone is past the end, else the length */
            REFUSE(CG_E_BLOB_BOUNDS, e + (off > p->str_len ? CG_STRING_OFF : CG_STRING_LEN));
        if (!cg_utf8_valid(cg_strdata(p, (uint32_t)off), (size_t)n)) REFUSE(CG_E_BLOB_UTF8, e + CG_STRING_OFF);
    }
    if (p->version_sid >= p->n_strings) REFUSE(CG_E_BLOB_BOUNDS, b + CG_HDR_VERSION_SID);
    for (uint32_t i = 0; i < p->n_policy_rules; i++) {
        const uint8_t *name = cg_name_rec(p, i);
        if (cg_rd32(name) != CG_NO_NAME && (rc = check_sid_at(&L, name))) return rc;
    }

    /* fields */
    p->field_slots = (uint32_t *)(base + m.field_slots);
    p->field_mask = (uint32_t)table_cap(p->n_fields) - 1;
    for (uint32_t i = 0; i < p->n_fields; i++) {
        const uint8_t *f = cg_field_rec(p, i);
        uint32_t src = cg_rd32(f + CG_FIELD_SOURCE);
        if (src >= CG_N_SOURCES) REFUSE(CG_E_BLOB_BOUNDS, f + CG_FIELD_SOURCE);
        if ((rc = check_sid_at(&L, f + CG_FIELD_NAME)) || (rc = check_sid_at(&L, f + CG_FIELD_DISPLAY))) return rc;
        if (!table_put(p->field_slots, p->field_mask, cg_field_hash(src, sid_hash(p, cg_field_name(p, i))), i, p,
                       field_same))
            REFUSE(CG_E_BLOB_DUPLICATE, f + CG_FIELD_NAME);
    }

    /* sets and their members */
    p->set_index = (cg_set_index *)(base + m.set_index);
    p->set_slots = (uint32_t *)(base + m.set_slots);
    uint64_t next_slot = 0;
    for (uint32_t i = 0; i < p->n_sets; i++) {
        const uint8_t *e = cg_set_rec(p, i);
        uint64_t first = cg_rd32(e + CG_SET_FIRST), count = cg_rd32(e + CG_SET_COUNT);
        if (first + count > p->n_members)
            REFUSE(CG_E_BLOB_BOUNDS, e + (first > p->n_members ? CG_SET_FIRST : CG_SET_COUNT));
        if ((rc = check_sid_at(&L, e + CG_SET_DISPLAY))) return rc;
        uint64_t cap = table_cap(count);
        /* sets may not share members beyond the planned slot budget */
        if (next_slot + cap > 4 * (uint64_t)p->n_members + 2 * (uint64_t)p->n_sets)
            REFUSE(CG_E_BLOB_BOUNDS, e + CG_SET_COUNT);
        p->set_index[i].slots = (uint32_t)next_slot;
        p->set_index[i].mask = (uint32_t)cap - 1;
        uint32_t *slots = p->set_slots + 2 * next_slot;
        next_slot += cap;
        for (uint64_t k = first; k < first + count; k++) {
            const uint8_t *member = cg_member_rec(p, (uint32_t)k);
            uint32_t sid = cg_rd32(member);
            if ((rc = check_sid_at(&L, member))) return rc;
            if (!table_put(slots, (uint32_t)cap - 1, sid_hash(p, sid), sid, p, str_same))
                REFUSE(CG_E_BLOB_DUPLICATE, member);
        }
    }

    /* numbers: finite only (the compiler never emits NaN or infinities) */
    for (uint32_t i = 0; i < p->n_numbers; i++) {
        double d = cg_number(p, i);
        if (d != d || d - d != 0) REFUSE(CG_E_BLOB_NUMBER, cg_number_rec(p, i));
    }

    /* rules and their condition code */
    int16_t *marks = (int16_t *)(base + m.marks);
    p->word_tags = (uint32_t *)(base + m.word_tags); /* zeroed with the rest of mem */
    for (uint32_t i = 0; i < p->n_rules; i++) {
        const uint8_t *r = cg_rule_rec(p, i);
        uint64_t off = cg_rd32(r + CG_RULE_CODE), n = cg_rd32(r + CG_RULE_LENGTH);
        if (cg_rd32(r + CG_RULE_INDEX) >= p->n_policy_rules) REFUSE(CG_E_BLOB_BOUNDS, r + CG_RULE_INDEX);
        if (off + n > p->code_len)
            REFUSE(CG_E_BLOB_BOUNDS, r + (off > p->code_len ? CG_RULE_CODE : CG_RULE_LENGTH));
        if ((rc = effect_error(p, cg_rd32(r + CG_RULE_EFFECT)))) REFUSE(rc, r + CG_RULE_EFFECT);
        if (n && (rc = verify_code(&L, (uint32_t)off, (uint32_t)(off + n), marks))) return rc;
    }

    /* entries: (tool, role) -> a run of rules */
    p->entry_slots = (uint32_t *)(base + m.entry_slots);
    p->entry_mask = (uint32_t)table_cap(p->n_entries) - 1;
    for (uint32_t i = 0; i < p->n_entries; i++) {
        const uint8_t *e = cg_entry_rec(p, i);
        uint64_t first = cg_rd32(e + CG_ENTRY_FIRST), n = cg_rd32(e + CG_ENTRY_COUNT);
        if ((rc = check_sid_at(&L, e + CG_ENTRY_TOOL)) || (rc = check_sid_at(&L, e + CG_ENTRY_ROLE))) return rc;
        if (n == 0 || first + n > p->n_rules)
            REFUSE(CG_E_BLOB_BOUNDS, e + (first > p->n_rules ? CG_ENTRY_FIRST : CG_ENTRY_COUNT));
        for (uint64_t k = first + 1; k < first + n; k++)
            if (effect_rank(cg_rule_field(p, (uint32_t)k - 1, CG_RULE_EFFECT)) >
                effect_rank(cg_rule_field(p, (uint32_t)k, CG_RULE_EFFECT)))
                REFUSE(CG_E_BLOB_ORDER, cg_rule_rec(p, (uint32_t)k) + CG_RULE_EFFECT);
        uint32_t h = cg_entry_hash(sid_hash(p, cg_entry_field(p, i, CG_ENTRY_TOOL)),
                                   sid_hash(p, cg_entry_field(p, i, CG_ENTRY_ROLE)));
        if (!table_put(p->entry_slots, p->entry_mask, h, i, p, entry_same))
            REFUSE(CG_E_BLOB_DUPLICATE, e + CG_ENTRY_TOOL);
    }

    /* tier defaults: tool -> effect, for any role */
    if (p->n_defaults && (p->flags & CG_FLAG_PERSO)) REFUSE(CG_E_BLOB_PERSO, b + CG_HDR_N_DEFAULTS);
    p->default_slots = (uint32_t *)(base + m.default_slots);
    p->default_mask = (uint32_t)table_cap(p->n_defaults) - 1;
    for (uint32_t i = 0; i < p->n_defaults; i++) {
        const uint8_t *d = cg_default_rec(p, i);
        if ((rc = check_sid_at(&L, d + CG_DEFAULT_TOOL)) || (rc = check_sid_at(&L, d + CG_DEFAULT_TIER))) return rc;
        if ((rc = effect_error(p, cg_rd32(d + CG_DEFAULT_EFFECT)))) REFUSE(rc, d + CG_DEFAULT_EFFECT);
        if (!table_put(p->default_slots, p->default_mask, sid_hash(p, cg_default_field(p, i, CG_DEFAULT_TOOL)), i,
                       p, default_same))
            REFUSE(CG_E_BLOB_DUPLICATE, d + CG_DEFAULT_TOOL);
    }

    p->magic = CG_POLICY_MAGIC;
    *out = p;
    return 0;
refuse:
    return fail(&L.l, code_, bad_);
}

uint32_t cg_policy_fields(const cg_policy *p) { return p ? p->n_fields : 0; }
uint32_t cg_policy_max_keys(const cg_policy *p) { return p ? p->limits.max_keys : 0; }
uint32_t cg_policy_max_depth(const cg_policy *p) { return p ? p->limits.max_depth : 0; }
