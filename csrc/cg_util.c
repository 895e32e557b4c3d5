/*
 * cg_util.c -- the few helpers the core would otherwise take from libc (memory, the one
 * heapsort), and decoding of JSON string literals (already validated by the reader) for
 * hashing and comparison.
 */
#include "cg_internal.h"

/* ---- the heapsort: in place, O(n log n) comparisons whatever the input (a hostile object
   with many keys cannot make it quadratic), no recursion, no extra memory. Records of
   `size` bytes are swapped byte by byte (they are 16: keys, event members). ---- */
static void swap_records(uint8_t *a, uint8_t *b, size_t size) {
    for (size_t i = 0; i < size; i++) {
        uint8_t t = a[i];
        a[i] = b[i];
        b[i] = t;
    }
}

static void sift_down(uint8_t *base, size_t size, uint32_t root, uint32_t n, cg_order order,
                      const void *ctx) {
    for (;;) {
        uint32_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && order(ctx, base + size * child, base + size * (child + 1)) < 0) child++;
        if (order(ctx, base + size * root, base + size * child) >= 0) return;
        swap_records(base + size * root, base + size * child, size);
        root = child;
    }
}

void cg_heapsort(void *records, uint32_t n, size_t size, cg_order order, const void *ctx) {
    uint8_t *base = records;
    if (n < 2) return;
    for (uint32_t i = n / 2; i-- > 0;) sift_down(base, size, i, n, order, ctx);
    for (uint32_t end = n - 1; end > 0; end--) {
        swap_records(base, base + size * end, size);
        sift_down(base, size, 0, end, order, ctx);
    }
}

#ifdef CG_PORTABLE_MEM
void *cg_memcpy(void *dst, const void *src, size_t n) {
    uint8_t *d = dst;
    const uint8_t *s = src;
    while (n--) *d++ = *s++;
    return dst;
}

void *cg_memset(void *dst, int c, size_t n) {
    uint8_t *d = dst;
    while (n--) *d++ = (uint8_t)c;
    return dst;
}

int cg_memcmp(const void *a, const void *b, size_t n) {
    const uint8_t *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}
#endif

static uint32_t hex4(const uint8_t *p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v = v << 4 | (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return v;
}

int cg_dec_escape(cg_dec *d) {
    d->p++; /* the backslash */
    uint8_t c = *d->p++;
    switch (c) {
    case 'b': return '\b';
    case 'f': return '\f';
    case 'n': return '\n';
    case 'r': return '\r';
    case 't': return '\t';
    case 'u': break;
    default: return c; /* \" \\ \/ */
    }
    uint32_t cp = hex4(d->p);
    d->p += 4;
    if (cp >= 0xD800 && cp < 0xDC00) { /* the reader guarantees the low half follows */
        uint32_t lo = hex4(d->p + 2);
        d->p += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    if (cp < 0x80) return (int)cp;
    if (cp < 0x800) {
        d->buf[0] = (uint8_t)(0x80 | (cp & 0x3F));
        d->n = 1;
        d->at = 0;
        return (int)(0xC0 | cp >> 6);
    }
    if (cp < 0x10000) {
        d->buf[0] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        d->buf[1] = (uint8_t)(0x80 | (cp & 0x3F));
        d->n = 2;
        d->at = 0;
        return (int)(0xE0 | cp >> 12);
    }
    d->buf[0] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    d->buf[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    d->buf[2] = (uint8_t)(0x80 | (cp & 0x3F));
    d->n = 3;
    d->at = 0;
    return (int)(0xF0 | cp >> 18);
}

uint32_t cg_jstr_hash_esc(cg_jstr s) {
    /* the decoded bytes, gathered 8 at a time exactly as cg_hash_bytes reads them */
    cg_dec d = cg_dec_of(s);
    uint64_t h = CG_HASH_K, w = 0, len = 0;
    for (int c; (c = cg_dec_next(&d)) >= 0; len++) {
        w |= (uint64_t)(uint8_t)c << (8 * (len % 8));
        if (len % 8 == 7) {
            h = cg_hash_step(h, w);
            w = 0;
        }
    }
    return cg_hash_final(h, w, len);
}

bool cg_jstr_eq_raw_esc(cg_jstr s, const uint8_t *raw, size_t n) {
    if (s.n < n) return false; /* escapes only make the literal longer than its bytes */
    cg_dec d = cg_dec_of(s);
    size_t i = 0;
    for (int c; (c = cg_dec_next(&d)) >= 0; i++)
        if (i >= n || raw[i] != (uint8_t)c) return false;
    return i == n;
}

int cg_jstr_cmp(cg_jstr a, cg_jstr b) {
    if (!a.esc && !b.esc) {
        uint32_t m = a.n < b.n ? a.n : b.n;
        int r = cg_memcmp(a.p, b.p, m);
        if (r) return r;
        return a.n < b.n ? -1 : a.n > b.n;
    }
    cg_dec x = cg_dec_of(a), y = cg_dec_of(b);
    for (;;) {
        int c = cg_dec_next(&x), e = cg_dec_next(&y);
        if (c != e) return c < e ? -1 : 1;
        if (c < 0) return 0;
    }
}

size_t cg_jstr_decode(cg_jstr s, uint8_t *out, size_t cap) {
    cg_dec d = cg_dec_of(s);
    size_t i = 0;
    for (int c; (c = cg_dec_next(&d)) >= 0; i++)
        if (i < cap) out[i] = (uint8_t)c;
    return i;
}

