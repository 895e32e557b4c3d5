/*
 * cg_internal.h -- shared between the core's .c files; not part of the public API.
 *
 * Holds the layout of a loaded policy and of a scratch buffer, and the small helpers
 * (little-endian reads, hashing, JSON string comparison) that several files use.
 */
#ifndef CG_INTERNAL_H
#define CG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "callgate.h"
#include "cg_opcodes.h"

/* CG_ASSERT states an invariant the loader (or the caller's own checks) guarantee. It is
   compiled in where bugs are hunted (CALLGATE_ASSERT=1: the sanitizer build, the fuzzers)
   and traps there; release builds compile it out. */
#ifdef CG_ASSERTS
#define CG_ASSERT(c) ((c) ? (void)0 : __builtin_trap())
#else
#define CG_ASSERT(c) ((void)0)
#endif
/* Kept out of line: small helpers of cold paths (the loader's checks, the reason text), called
   from many places, would otherwise be copied into each: the wasm module's size. */
#if defined(__GNUC__) || defined(__clang__)
#define CG_NOINLINE __attribute__((noinline))
#elif defined(_MSC_VER)
#define CG_NOINLINE __declspec(noinline)
#else
#define CG_NOINLINE
#endif
/* A rare case's function: placed apart from the hot code, and the branches that call it laid
   out as unlikely. The SQL scanner's loop slowed by 5 to 10% when two such calls sat in it as
   ordinary ones (docs/arguments.md, "Speed of the scanner"). */
#if defined(__GNUC__) || defined(__clang__)
#define CG_COLD __attribute__((cold))
#else
#define CG_COLD
#endif
/* A hot loop's function at a 64-byte boundary: the SQL scanner's decision time moved by 10%
   with its address modulo 64 alone (docs/arguments.md, "Speed of the scanner"), so changes
   elsewhere in the core moved it. */
#if defined(__GNUC__) || defined(__clang__)
#define CG_ALIGN_HOT __attribute__((aligned(64)))
#else
#define CG_ALIGN_HOT
#endif
/* The default of a dispatch whose cases the loader guarantees cover every value. */
#define CG_UNREACHABLE() CG_ASSERT(0)

#define CG_POLICY_MAGIC 0x43475031u  /* "CGP1": a cg_policy made by cg_policy_load */
#define CG_SCRATCH_MAGIC 0x43475331u /* "CGS1" */

#define CG_DEFAULT_MAX_BYTES (16u << 20)
#define CG_DEFAULT_MAX_DEPTH 128u
#define CG_DEFAULT_MAX_KEYS 65536u
#define CG_LIMIT_MAX_DEPTH 1024u

#define CG_NONE 0xffffffffu

/* A blame with this bit (and not CG_NONE) is the code offset of the OR that ended an Any
   that was not T: every branch failed (F or U), and a reason lists them (cg_reason.c). The
   loader keeps code offsets below it. */
#define CG_BLAME_GROUP 0x80000000u
#define CG_IS_GROUP(blame) ((blame) != CG_NONE && ((blame)&CG_BLAME_GROUP) != 0)

/* Every/Some may do this much work per byte of request, plus CG_WORK_BASE: enough for any
   body that reads its own element (linear), not for nested loops over the same data. */
#define CG_WORK_PER_BYTE 16u
#define CG_WORK_BASE 65536u

/* The three libc calls the core needs. GCC and clang expand the builtins inline or call
   memcpy/memset/memcmp, which the wasm build provides (cg_wasm.c); others get loops. */
#if defined(__GNUC__) || defined(__clang__)
#define cg_memcpy __builtin_memcpy
#define cg_memset __builtin_memset
#define cg_memcmp __builtin_memcmp
#else
void *cg_memcpy(void *dst, const void *src, size_t n);
void *cg_memset(void *dst, int c, size_t n);
int cg_memcmp(const void *a, const void *b, size_t n);
#define CG_PORTABLE_MEM 1
#endif

static inline uint32_t cg_rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint16_t cg_rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline double cg_rdf64(const uint8_t *p) {
    uint64_t u = (uint64_t)cg_rd32(p) | (uint64_t)cg_rd32(p + 4) << 32;
    double d;
    cg_memcpy(&d, &u, sizeof d);
    return d;
}

/* ---- hashing: 8 bytes at a time with a multiply-xorshift mix. Tables built from the
   policy only are probed with request strings, so a hostile key cannot lengthen a probe
   chain; duplicate-key detection sorts by content, so colliding keys cannot make it
   quadratic. The hash of a string is the same whether it is read raw or decoded from a
   JSON literal with escapes. ---- */
#define CG_HASH_K 0x9E3779B97F4A7C15ull
static inline uint64_t cg_hash_step(uint64_t h, uint64_t w) {
    h = (h ^ w) * CG_HASH_K;
    return h ^ (h >> 29);
}
static inline uint32_t cg_hash_final(uint64_t h, uint64_t tail, uint64_t len) {
    h = cg_hash_step(h, tail ^ (len << 56));
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return (uint32_t)h;
}
static inline uint64_t cg_rd64(const uint8_t *p) {
    return (uint64_t)cg_rd32(p) | (uint64_t)cg_rd32(p + 4) << 32;
}
static inline uint32_t cg_hash_bytes(const uint8_t *s, size_t n) {
    uint64_t h = CG_HASH_K;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) h = cg_hash_step(h, cg_rd64(s + i));
    /* the last 0-7 bytes, little-endian, as 4 + 2 + 1 byte pieces */
    uint64_t tail = 0;
    unsigned shift = 0;
    if (n - i >= 4) {
        tail = cg_rd32(s + i);
        i += 4;
        shift = 32;
    }
    if (n - i >= 2) {
        tail |= (uint64_t)cg_rd16(s + i) << shift;
        i += 2;
        shift += 16;
    }
    if (n - i >= 1) tail |= (uint64_t)s[i] << shift;
    return cg_hash_final(h, tail, n);
}
/* Combining two hashes (tool and role) or a hash and a small tag (a field's source). */
static inline uint32_t cg_hash_pair(uint32_t a, uint32_t b) {
    uint64_t h = ((uint64_t)a << 32 | b) * CG_HASH_K;
    return (uint32_t)(h >> 32);
}

/* Decimal text of v, right-aligned in buf; returns the index of its first digit. */
#define CG_U32_DIGITS 10u
static inline uint32_t cg_u32_text(char buf[CG_U32_DIGITS], uint32_t v) {
    uint32_t i = CG_U32_DIGITS;
    do buf[--i] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    return i;
}

/* ---- JSON string literals as read from a request ----
   A cg_jstr is the text between the quotes, with a flag telling whether it has escapes.
   Strings without escapes (nearly all) compare and hash as raw bytes. */
typedef struct cg_jstr {
    const uint8_t *p;
    uint32_t n;
    bool esc;
} cg_jstr;

/* The decoded UTF-8 bytes of a validated string literal, one at a time, without allocating
   (a literal without escapes has no backslash: its bytes are its own). */
typedef struct cg_dec {
    const uint8_t *p, *end;
    uint8_t buf[4];
    uint8_t at, n;
} cg_dec;
static inline cg_dec cg_dec_of(cg_jstr s) {
    cg_dec d = {s.p, s.p + s.n, {0, 0, 0, 0}, 0, 0};
    return d;
}
int cg_dec_escape(cg_dec *d); /* at a backslash: the escape's first decoded byte */
/* The next decoded byte, or -1 at the end. */
static inline int cg_dec_next(cg_dec *d) {
    if (d->at < d->n) return d->buf[d->at++];
    if (d->p >= d->end) return -1;
    if (*d->p != '\\') return *d->p++;
    return cg_dec_escape(d);
}

uint32_t cg_jstr_hash_esc(cg_jstr s);                      /* cg_jstr_hash of a literal with escapes */
bool cg_jstr_eq_raw_esc(cg_jstr s, const uint8_t *raw, size_t n); /* cg_jstr_eq_raw, likewise */
/* c with an ASCII capital made small (every other byte as it is) */
static inline uint8_t cg_ascii_lower(uint8_t c) { return (uint8_t)(c - 'A') < 26 ? (uint8_t)(c | 0x20) : c; }
/* s[0..n) is the lower-case ASCII word lit, written in any case */
static inline bool cg_eq_ci(const uint8_t *s, uint32_t n, const char *lit) {
    uint32_t i = 0;
    for (; i < n; i++)
        if (lit[i] == 0 || cg_ascii_lower(s[i]) != (uint8_t)lit[i]) return false;
    return lit[i] == 0;
}
/* Equal byte strings of the same length n (short ones, as names are: 8 bytes a step). */
static inline bool cg_bytes_eq(const uint8_t *a, const uint8_t *b, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        if (cg_rd64(a + i) != cg_rd64(b + i)) return false;
    for (; i < n; i++)
        if (a[i] != b[i]) return false;
    return true;
}
/* cg_hash_bytes of the decoded bytes. Inline for the common case, a literal without escapes. */
static inline uint32_t cg_jstr_hash(cg_jstr s) {
    return s.esc ? cg_jstr_hash_esc(s) : cg_hash_bytes(s.p, s.n);
}
/* Decoded s == raw bytes. */
static inline bool cg_jstr_eq_raw(cg_jstr s, const uint8_t *raw, size_t n) {
    return s.esc ? cg_jstr_eq_raw_esc(s, raw, n) : s.n == n && cg_bytes_eq(s.p, raw, n);
}
int cg_jstr_cmp(cg_jstr a, cg_jstr b);                      /* order of decoded bytes */
/* Decoded bytes of s into out (at most cap); returns the decoded length. */
size_t cg_jstr_decode(cg_jstr s, uint8_t *out, size_t cap);

static inline uint32_t cg_entry_hash(uint32_t tool_hash, uint32_t role_hash) {
    return cg_hash_pair(tool_hash, role_hash);
}
static inline uint32_t cg_field_hash(uint32_t source, uint32_t name_hash) {
    return cg_hash_pair(name_hash, source + 1);
}
bool cg_utf8_valid(const uint8_t *s, size_t n);

/* ---- a loaded policy (lives at the start of the caller's policy buffer) ---- */
typedef struct cg_set_index {
    uint32_t slots;   /* first slot pair in set_slots */
    uint32_t mask;    /* capacity - 1 (a power of two) */
} cg_set_index;

struct cg_policy {
    uint32_t magic;
    uint32_t flags;
    cg_limits limits;
    const uint8_t *blob;
    uint32_t blob_len;
    uint32_t n_strings, n_fields, n_sets, n_members, n_numbers, n_entries, n_rules;
    uint32_t code_len, str_len, version_sid, n_policy_rules, n_words, n_defaults;
    const uint8_t *strings, *fields, *sets, *members, *numbers, *entries, *rules, *words,
        *defaults, *names, *code, *strdata;
    /* hash indexes: pairs {index + 1 (0 = empty), hash} */
    uint32_t entry_mask, field_mask, default_mask;
    uint32_t *entry_slots, *field_slots, *default_slots, *set_slots;
    uint32_t *word_tags;  /* used while loading only: which descriptors were checked */
    cg_set_index *set_index;
};

#include "cg_blob.h"

/* ---- scratch (per thread) ---- */
typedef struct cg_slot {   /* where a referenced field's value sits in the request */
    uint32_t gen;          /* valid iff equal to the scratch's current generation */
    uint8_t type;          /* CG_J_* */
    uint8_t input;         /* 0 args/packed, 1 context */
    uint8_t esc;           /* string with escapes */
    uint8_t num_int;       /* number literal without fraction or exponent */
    uint32_t off, len;     /* the whole literal (strings include their quotes) */
} cg_slot;

typedef struct cg_key {    /* a key of an open object, for duplicate detection */
    uint32_t off, len, hash;
    uint32_t esc;
} cg_key;

enum { CG_J_NONE = 0, CG_J_NULL, CG_J_FALSE, CG_J_TRUE, CG_J_NUM, CG_J_STR, CG_J_ARR, CG_J_OBJ };

/* How a decision came about (docs/policy-v2.md, the precedence steps). */
enum {
    CG_BY_DENY = 1,       /* a deny rule applied */
    CG_BY_ALLOW,          /* an allow rule applied */
    CG_BY_ELEVATE,        /* an elevate rule applied */
    CG_BY_NO_GRANT,       /* the pair's grant rules all failed: Deny */
    CG_BY_DEFAULT         /* no rule decided: a tier default or default_action */
};

typedef struct cg_outcome {
    int32_t decision;
    int32_t entry;        /* -1 when no entry */
    int32_t rule;         /* policy rule index, -1 for a default */
    uint32_t rule_slot;   /* index into the rules section of the explained rule */
    uint32_t blame;       /* code offset of the blamed leaf, or CG_NONE */
    uint8_t blame_value;  /* CG_V_* result of the blamed leaf (or of a deny rule) */
    uint8_t had_condition;
    uint8_t approvals;    /* an Elevate's count */
    uint8_t by;           /* CG_BY_* */
    uint32_t n_grants;    /* allow and elevate rules of the entry */
    int32_t tier_default; /* index into defaults, or -1 for default_action */
} cg_outcome;

typedef struct cg_scratch {
    uint32_t magic;
    uint32_t n_slots, max_keys, max_depth;
    uint32_t gen;
    uint32_t err_offset, err_input;
    /* Quantifier work of the evaluation of generation work_gen (elements visited, plus the
       bytes of every value a body reads that is not its element's); over_gen is the
       generation whose evaluation passed the bound (cg_vm.c), if any */
    uint64_t work;
    uint32_t work_gen, over_gen;
    uint32_t saw_null;    /* the request text held a JSON null (see CG_RESULT_SAW_NULL) */
    const cg_policy *policy; /* bound by cg_scratch_bind */
    /* tool and role of the call being evaluated (they point into the caller's input) */
    cg_jstr tool, role;
    cg_outcome last;
    cg_slot *slots;       /* n_slots */
    cg_key *keys;         /* 2 * max_keys: the reader's open keys, then deep comparison */
    uint32_t *stack;      /* max_depth: the reader's open containers */
} cg_scratch;

/* ---- the request reader (cg_json.c) ---- */
typedef struct cg_input {
    const uint8_t *base;
    uint32_t len;
    uint8_t id;           /* 0 or 1, recorded in slots */
} cg_input;

/* Read a request and fill the slots of referenced fields; s->tool and s->role are set
   from the request form `[tool, role, args, agent, resource(, context)]`, and s->role
   from the context object of the json form. */
int cg_read_request(const cg_policy *p, cg_scratch *s, cg_input in);
int cg_read_json(const cg_policy *p, cg_scratch *s, cg_input args, cg_input ctx);

/* The one sort (cg_util.c): a heapsort of n records of `size` bytes by order(ctx, a, b). */
typedef int (*cg_order)(const void *ctx, const void *a, const void *b);
void cg_heapsort(void *records, uint32_t n, size_t size, cg_order order, const void *ctx);

/* Sort keys by (hash, decoded content); keys index into base. */
void cg_sort_keys(const uint8_t *base, cg_key *k, uint32_t n);
int cg_key_cmp(const uint8_t *base, const cg_key *a, const cg_key *b);

/* Skip one already validated JSON value starting at (or after whitespace before) *pos. */
uint32_t cg_skip_ws(const uint8_t *b, uint32_t pos, uint32_t len);
uint32_t cg_skip_value(const uint8_t *b, uint32_t pos, uint32_t len);

/* ---- evaluation (cg_vm.c) ---- */
int32_t cg_find_entry(const cg_policy *p, cg_jstr tool, cg_jstr role);
int cg_decide(const cg_policy *p, cg_scratch *s, const cg_input *inputs, int32_t entry,
              cg_outcome *out);
/* Value of a leaf, for reasons: evaluates one instruction at code offset pc. */
int cg_leaf_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc);
const cg_slot *cg_field_slot(const cg_scratch *s, uint32_t field);
/* The same with elem as the current element (NULL outside Every/Some). */
int cg_leaf_eval_el(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                    const cg_slot *elem);
/* The value a ref operand names (a field index, or a path when is_path), or NULL when it is
   missing; tmp holds a path's value. */
const cg_slot *cg_ref(const cg_policy *p, const cg_scratch *s, const cg_input *inputs,
                      const cg_slot *elem, uint32_t operand, bool is_path, cg_slot *tmp);
/* Display name (string id) of a ref operand. */
uint32_t cg_ref_display(const cg_policy *p, uint32_t operand, bool is_path);
/* An Every/Some at pc, with the element that decided it (for reasons): index CG_NONE when
   no element decided; blame and value are that element's own. */
typedef struct cg_qinfo {
    uint32_t index, blame;
    uint8_t value;
    cg_slot elem;
} cg_qinfo;
int cg_quant_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                  const cg_slot *elem, cg_qinfo *q);
/* One operand of an Any, for reasons: the value of the code from pc up to stop (the
   offset of the JT or OR that follows the operand), *blame its blame. */
int cg_operand_eval(const cg_policy *p, cg_scratch *s, const cg_input *inputs, uint32_t pc,
                    uint32_t stop, const cg_slot *elem, uint32_t *blame);

/* ---- v2 value matching (cg_match.c) ---- */
/* Describes the validated JSON value at pos (after whitespace) into v's type, off, len,
   esc, num_int; returns the offset just past it. */
uint32_t cg_value_at(const uint8_t *b, uint32_t pos, uint32_t len, cg_slot *v);
bool cg_path_walk(const cg_policy *p, const cg_input *in, uint32_t path, cg_slot *v);
uint32_t cg_array_length(const cg_input *in, const cg_slot *v);
uint32_t cg_str_length(cg_jstr s);                          /* code points of the decoded string */
bool cg_glob_match(const cg_policy *p, uint32_t glob, cg_jstr s);
bool cg_pglob_match(const cg_policy *p, uint32_t pglob, cg_jstr s);
bool cg_instant(const cg_input *in, const cg_slot *x, uint32_t *out); /* seconds, in range */
bool cg_window_holds(const cg_policy *p, uint32_t window, uint32_t t);

/* ---- equality of two JSON values in request text (cg_equal.c) ---- */
bool cg_values_equal(const cg_input *inputs, cg_scratch *s, const cg_slot *a,
                     const cg_slot *b, bool perso);

/* ---- common evaluation entry used by the cg_eval_* and cg_reason_* functions ---- */
int cg_run(cg_scratch *s, const uint8_t *in0, size_t in0_len, const uint8_t *in1, size_t in1_len,
           cg_input inputs[2]);

#endif /* CG_INTERNAL_H */
