/*
 * cg_scan.h -- the strict, bounded scanner of JSON text (RFC 8259), shared by the scanner
 * (cg_scan.c) and the request reader (cg_request.c).
 *
 * A cg_rd reads one input: it validates every byte (an error anywhere is an error, never a
 * decision) and keeps the keys of the objects open at the moment on the scratch's key
 * stack, so that a duplicate key is found when its object closes. The few functions on
 * the per-byte path are here, forced inline, so that the reader's position stays in a
 * register through a whole object; the rest is in cg_scan.c.
 */
#ifndef CG_SCAN_H
#define CG_SCAN_H

#include "cg_internal.h"
#include "cg_num.h"

#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

typedef struct cg_rd {
    const cg_policy *p; /* its limits: max_depth, max_keys */
    cg_scratch *s;      /* the key and container stacks, the error position */
    const uint8_t *b;
    uint32_t len, pos;
    uint32_t nkeys;     /* top of the open-key stack */
    uint8_t input;
} cg_rd;

/* Records where the input is at fault (the scratch's error offset and input). */
static inline int cg_rd_fail(cg_rd *r, int code) {
    r->s->err_offset = r->pos;
    r->s->err_input = r->input;
    return code;
}

/* cg_scan.c */
int cg_utf8_seq(const uint8_t *s, size_t avail);
int32_t cg_read_u_escape(cg_rd *r);
int cg_read_literal(cg_rd *r, const char *word, uint32_t n);
int cg_close_object(cg_rd *r, uint32_t first);
int cg_read_value(cg_rd *r, uint32_t depth, cg_slot *v);

/* Index of the lowest byte whose high bit is set in m (m != 0). */
static inline uint32_t first_flagged_byte(uint64_t m) {
#if defined(__GNUC__) || defined(__clang__)
    return (uint32_t)__builtin_ctzll(m) >> 3;
#else
    uint32_t i = 0;
    while (!(m & 0x80)) {
        m >>= 8;
        i++;
    }
    return i;
#endif
}

HOT void skip_ws(cg_rd *r) {
    if (r->pos < r->len && r->b[r->pos] > ' ') return; /* the common case: no whitespace */
    r->pos = cg_skip_ws(r->b, r->pos, r->len);
}

/* High bit set in each byte of x (read little-endian) that is '"', '\\', a control
   character or >= 0x80. The lowest flagged byte is exact (borrows only run upward). */
static inline uint64_t special_bytes(uint64_t x) {
    const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
    uint64_t q = x ^ (ones * '"'), bs = x ^ (ones * '\\');
    uint64_t zero_q = (q - ones) & ~q, zero_bs = (bs - ones) & ~bs;
    uint64_t ctrl = (x - ones * 0x20) & ~x;
    return (zero_q | zero_bs | ctrl | x) & highs;
}

#if (defined(__GNUC__) || defined(__clang__)) && defined(__SSE2__) && !defined(CG_SCAN_SWAR)
#define CG_SCAN_SSE2 1
#include <emmintrin.h>
/* Bit k set when p[k] is '"', '\\', a control character or >= 0x80 (a signed compare below
   0x20 takes both of the last two). */
static inline uint32_t special_bytes16(const uint8_t *p) {
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    __m128i quote = _mm_cmpeq_epi8(v, _mm_set1_epi8('"')), bs = _mm_cmpeq_epi8(v, _mm_set1_epi8('\\'));
    return (uint32_t)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, bs), _mm_cmplt_epi8(v, _mm_set1_epi8(0x20))));
}
#endif

/* r->pos is at the opening quote. On success *out is the content between the quotes and
   r->pos is past the closing quote. */
HOT int read_string(cg_rd *r, cg_jstr *out) {
    const uint8_t *b = r->b;
    uint32_t start = r->pos + 1;
    bool esc = false;
    r->pos = start;
    for (;;) {
#ifdef CG_SCAN_SSE2
        uint32_t m16 = 0; /* 16 plain bytes at a time (a long string's body), then 8 */
        while (r->pos + 16 <= r->len && (m16 = special_bytes16(b + r->pos)) == 0) r->pos += 16;
        if (m16)
            r->pos += (uint32_t)__builtin_ctz(m16);
        else
#endif
        while (r->pos + 8 <= r->len) { /* 8 plain bytes at a time */
            uint64_t m = special_bytes(cg_rd64(b + r->pos));
            if (m) {
                r->pos += first_flagged_byte(m);
                break;
            }
            r->pos += 8;
        }
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        uint8_t c = b[r->pos];
        if (c == '"') break;
        if (c < 0x20) return cg_rd_fail(r, CG_E_CONTROL_CHAR);
        if (c < 0x80 && c != '\\') {
            r->pos++;
            continue;
        }
        if (c >= 0x80) {
            int n = cg_utf8_seq(b + r->pos, r->len - r->pos);
            if (n == 0) return cg_rd_fail(r, CG_E_UTF8);
            if (n < 0) return cg_rd_fail(r, CG_E_TRUNCATED);
            r->pos += (uint32_t)n;
            continue;
        }
        /* an escape */
        esc = true;
        if (r->pos + 1 >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        uint8_t e = b[r->pos + 1];
        if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' ||
            e == 't') {
            r->pos += 2;
            continue;
        }
        if (e != 'u') return cg_rd_fail(r, CG_E_ESCAPE);
        int32_t u = cg_read_u_escape(r);
        if (u < 0) return u;
        if (u >= 0xDC00 && u <= 0xDFFF) return cg_rd_fail(r, CG_E_SURROGATE);
        if (u >= 0xD800 && u <= 0xDBFF) {
            uint32_t hi_at = r->pos;
            r->pos += 6;
            if (r->pos + 1 >= r->len || b[r->pos] != '\\' || b[r->pos + 1] != 'u') {
                r->pos = hi_at;
                return cg_rd_fail(r, r->pos + 6 >= r->len ? CG_E_TRUNCATED : CG_E_SURROGATE);
            }
            int32_t lo = cg_read_u_escape(r);
            if (lo < 0) return lo;
            if (lo < 0xDC00 || lo > 0xDFFF) {
                r->pos = hi_at;
                return cg_rd_fail(r, CG_E_SURROGATE);
            }
        }
        r->pos += 6;
    }
    out->p = b + start;
    out->n = r->pos - start;
    out->esc = esc;
    r->pos++;
    return 0;
}

static inline bool cg_json_digit(uint8_t c) { return c >= '0' && c <= '9'; }

/* r->pos at '-' or a digit. Sets *is_int for literals without fraction or exponent. */
static inline int cg_read_number(cg_rd *r, bool *is_int) {
    const uint8_t *b = r->b;
    uint32_t start = r->pos;
    *is_int = true;
    if (b[r->pos] == '-') {
        r->pos++;
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        if (b[r->pos] == 'I') return cg_rd_fail(r, CG_E_NONFINITE);
    }
    if (b[r->pos] == '0') r->pos++;
    else if (b[r->pos] >= '1' && b[r->pos] <= '9')
        while (r->pos < r->len && cg_json_digit(b[r->pos])) r->pos++;
    else
        return cg_rd_fail(r, CG_E_SYNTAX);
    if (r->pos < r->len && b[r->pos] == '.') {
        *is_int = false;
        r->pos++;
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        if (!cg_json_digit(b[r->pos])) return cg_rd_fail(r, CG_E_SYNTAX);
        while (r->pos < r->len && cg_json_digit(b[r->pos])) r->pos++;
    }
    if (r->pos < r->len && (b[r->pos] == 'e' || b[r->pos] == 'E')) {
        *is_int = false;
        r->pos++;
        if (r->pos < r->len && (b[r->pos] == '+' || b[r->pos] == '-')) r->pos++;
        if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
        if (!cg_json_digit(b[r->pos])) return cg_rd_fail(r, CG_E_SYNTAX);
        while (r->pos < r->len && cg_json_digit(b[r->pos])) r->pos++;
    }
    /* an integer literal of under 300 digits is always a finite double: skip the check */
    bool short_int = *is_int && r->pos - start < 300;
    if (!short_int && !cg_num_in_range((const char *)b + start, r->pos - start)) {
        uint32_t end = r->pos;
        r->pos = start;
        cg_rd_fail(r, CG_E_NUMBER_RANGE);
        r->pos = end;
        return CG_E_NUMBER_RANGE;
    }
    return 0;
}

/* Reads `"key" :` at r->pos (after whitespace), pushes the key, returns it in *key. */
HOT int read_key(cg_rd *r, cg_jstr *key) {
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != '"') return cg_rd_fail(r, CG_E_SYNTAX);
    uint32_t at = r->pos + 1;
    int rc = read_string(r, key);
    if (rc) return rc;
    if (r->nkeys >= r->s->max_keys || r->nkeys >= r->p->limits.max_keys) {
        r->pos = at - 1;
        return cg_rd_fail(r, CG_E_TOO_MANY_KEYS);
    }
    cg_key *k = &r->s->keys[r->nkeys++];
    k->off = at;
    k->len = key->n;
    k->esc = key->esc;
    k->hash = cg_jstr_hash(*key);
    skip_ws(r);
    if (r->pos >= r->len) return cg_rd_fail(r, CG_E_TRUNCATED);
    if (r->b[r->pos] != ':') return cg_rd_fail(r, CG_E_SYNTAX);
    r->pos++;
    return 0;
}

/* A member value: strings and numbers (nearly all values) are read right here; anything
   else goes through read_value. */
HOT int read_member(cg_rd *r, cg_slot *v) {
    skip_ws(r);
    if (r->pos < r->len) {
        uint8_t c = r->b[r->pos];
        uint32_t at = r->pos;
        int rc;
        if (c == '"') {
            cg_jstr str;
            if ((rc = read_string(r, &str))) return rc;
            v->type = CG_J_STR;
            v->esc = str.esc;
            v->off = at;
            v->len = r->pos - at;
            return 0;
        }
        if (c == '-' || cg_json_digit(c)) {
            bool is_int;
            if ((rc = cg_read_number(r, &is_int))) return rc;
            v->type = CG_J_NUM;
            v->num_int = is_int;
            v->off = at;
            v->len = r->pos - at;
            return 0;
        }
    }
    return cg_read_value(r, 1, v);
}

#endif /* CG_SCAN_H */
