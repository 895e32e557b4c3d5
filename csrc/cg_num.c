/*
 * cg_num.c -- JSON number literals: correctly rounded conversion to binary64, range test,
 * exact decimal equality and serde_json-style equality.  See cg_num.h for the contract.
 *
 * Conversion strategy
 *   1. One linear scan splits the literal into sign / integer digits / fraction digits /
 *      exponent digits (8 bytes at a time, so megabyte literals stay fast).
 *   2. The decimal exponent P of the leading significant digit (value in [10^P, 10^(P+1)))
 *      settles overflow (P > 308) and underflow to zero (P < -324) without arithmetic.
 *   3. At most 800 significant digits are kept.  If any nonzero digit follows them, a digit
 *      5 is appended ("sticky" half unit): every binary64 and every midpoint between two
 *      adjacent binary64 values has at most 767 significant decimal digits, so none lies
 *      strictly between D*10^e and (D+1)*10^e for an 800-digit D, and the truncated value
 *      rounds exactly like (D + 1/2)*10^e.
 *   4. Clinger's fast path when D < 2^53 and the power of ten is exact.
 *   5. Otherwise exact big-integer arithmetic on the stack: for e >= 0 the top 64 bits of
 *      D*5^e; for e < 0 a 64-bit quotient of D*2^s / 5^-e plus a remainder-is-zero bit.
 *      A 64-bit significand with a sticky bit is then rounded once, half to even, straight
 *      to a normal or subnormal result.
 */
#include "cg_num.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CG_NUM_MAXDIG 800                 /* > 767, see point 3 above */
#define CG_EXP_CLAMP 1000000000000000000LL /* |explicit exponent| saturates here (10^18) */
#define NUM_NONE ((size_t)-1)

/* ------------------------------------------------------------------ literal scanning */

typedef struct {
    const char *s;
    bool neg, has_frac, has_exp, exp_neg;
    size_t int_b, int_e;   /* integer digits s[int_b..int_e) */
    size_t frac_b, frac_e; /* fraction digits (empty when there is no '.') */
    size_t exp_b, exp_e;   /* exponent digits without sign (empty when no exponent) */
} cg_lit;

/* Little-endian composition; compilers turn this into one unaligned load. */
static uint64_t load8(const char *p) {
    const unsigned char *u = (const unsigned char *)p;
    return (uint64_t)u[0] | (uint64_t)u[1] << 8 | (uint64_t)u[2] << 16 | (uint64_t)u[3] << 24 |
           (uint64_t)u[4] << 32 | (uint64_t)u[5] << 40 | (uint64_t)u[6] << 48 |
           (uint64_t)u[7] << 56;
}

#define CG_ZEROS8 0x3030303030303030ULL

/* True iff all 8 bytes are '0'..'9': a byte < '0' borrows in the subtraction, a byte > '9'
 * sets bit 7 in the addition, and a byte >= 0xB0 sets bit 7 in the subtraction. */
static bool all_digits8(uint64_t v) {
    return (((v + 0x4646464646464646ULL) | (v - CG_ZEROS8)) & 0x8080808080808080ULL) == 0;
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }

/* First index >= i in [i, n) that is not a digit (or n). */
static size_t scan_digits(const char *s, size_t i, size_t n) {
    while (n - i >= 8 && all_digits8(load8(s + i))) i += 8;
    while (i < n && is_digit(s[i])) i++;
    return i;
}

/* First index in [i, e) holding a digit other than '0' (or e); the range holds digits. */
static size_t skip_zeros(const char *s, size_t i, size_t e) {
    while (e - i >= 8 && load8(s + i) == CG_ZEROS8) i += 8;
    while (i < e && s[i] == '0') i++;
    return i;
}

/* One past the last digit other than '0' in [b, e) (or b when all are zeros). */
static size_t rskip_zeros(const char *s, size_t b, size_t e) {
    while (e - b >= 8 && load8(s + e - 8) == CG_ZEROS8) e -= 8;
    while (e > b && s[e - 1] == '0') e--;
    return e;
}

static void lit_parse(const char *s, size_t n, cg_lit *L) {
    size_t i = 0;
    L->s = s;
    L->neg = n > 0 && s[0] == '-';
    if (L->neg) i++;
    L->int_b = i;
    i = scan_digits(s, i, n);
    L->int_e = i;
    L->has_frac = i < n && s[i] == '.';
    if (L->has_frac) i++;
    L->frac_b = i;
    if (L->has_frac) i = scan_digits(s, i, n);
    L->frac_e = i;
    L->has_exp = i < n && (s[i] == 'e' || s[i] == 'E');
    L->exp_neg = false;
    if (L->has_exp) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) L->exp_neg = s[i++] == '-';
    }
    L->exp_b = i;
    L->exp_e = L->has_exp ? scan_digits(s, i, n) : i;
}

/* Position of the first significant (nonzero) mantissa digit, or NUM_NONE for a zero. */
static size_t first_sig(const cg_lit *L) {
    size_t f = skip_zeros(L->s, L->int_b, L->int_e);
    if (f < L->int_e) return f;
    f = skip_zeros(L->s, L->frac_b, L->frac_e);
    return f < L->frac_e ? f : NUM_NONE;
}

/* Power of ten of the digit at position f relative to the decimal point (0 for units). */
static int64_t digit_pow(const cg_lit *L, size_t f) {
    if (f < L->int_e) return (int64_t)(L->int_e - f) - 1;
    return -(int64_t)(f - L->frac_b) - 1;
}

/* Explicit exponent, saturated at +/-10^18 (far beyond anything that is not 0 or inf). */
static int64_t exp_clamped(const cg_lit *L) {
    size_t i = skip_zeros(L->s, L->exp_b, L->exp_e);
    int64_t v = 0;
    if (L->exp_e - i > 18) {
        v = CG_EXP_CLAMP;
    } else {
        for (; i < L->exp_e; i++) v = v * 10 + (L->s[i] - '0');
    }
    return L->exp_neg ? -v : v;
}

/* ------------------------------------------------------------------ tiny bignums */

/* Capacity: D < 10^801 (2661 bits) and 5^1124 (2610 bits) shifted left by up to 63+63 bits
 * stay below 2700 bits; 96 limbs leave a margin. */
#define CG_BN_LIMBS 96

typedef struct {
    uint32_t w[CG_BN_LIMBS]; /* little-endian limbs, w[n-1] != 0 unless n == 0 */
    int n;
} cg_bn;

static int clz64(uint64_t x) { /* x != 0 */
    int r = 0;
    if (!(x >> 32)) { r += 32; x <<= 32; }
    if (!(x >> 48)) { r += 16; x <<= 16; }
    if (!(x >> 56)) { r += 8; x <<= 8; }
    if (!(x >> 60)) { r += 4; x <<= 4; }
    if (!(x >> 62)) { r += 2; x <<= 2; }
    if (!(x >> 63)) r += 1;
    return r;
}

/* a = a * m + add */
static void bn_mul_add(cg_bn *a, uint32_t m, uint32_t add) {
    uint64_t carry = add;
    for (int i = 0; i < a->n; i++) {
        uint64_t t = (uint64_t)a->w[i] * m + carry;
        a->w[i] = (uint32_t)t;
        carry = t >> 32;
    }
    if (carry && a->n < CG_BN_LIMBS) a->w[a->n++] = (uint32_t)carry;
}

static const uint32_t cg_pow5_32[14] = {1u,       5u,        25u,        125u,      625u,
                                        3125u,    15625u,    78125u,     390625u,   1953125u,
                                        9765625u, 48828125u, 244140625u, 1220703125u};

static void bn_mul_pow5(cg_bn *a, int64_t e) {
    for (; e >= 13; e -= 13) bn_mul_add(a, cg_pow5_32[13], 0);
    if (e > 0) bn_mul_add(a, cg_pow5_32[e], 0);
}

static int bn_bitlen(const cg_bn *a) {
    if (a->n == 0) return 0;
    return a->n * 32 - (clz64(a->w[a->n - 1]) - 32);
}

static void bn_shl(cg_bn *a, int bits) {
    int limbs = bits >> 5, sh = bits & 31;
    if (a->n == 0 || bits <= 0) return;
    int nn = a->n + limbs + 1;
    if (nn > CG_BN_LIMBS) nn = CG_BN_LIMBS; /* unreachable by the capacity bound above */
    for (int i = nn - 1; i >= 0; i--) {
        int src = i - limbs;
        uint32_t hi = (src >= 0 && src < a->n) ? a->w[src] : 0;
        uint32_t lo = (src - 1 >= 0 && src - 1 < a->n) ? a->w[src - 1] : 0;
        a->w[i] = sh ? (hi << sh) | (lo >> (32 - sh)) : hi;
    }
    a->n = nn;
    while (a->n > 0 && a->w[a->n - 1] == 0) a->n--;
}

static void bn_shr1(cg_bn *a) {
    for (int i = 0; i < a->n; i++)
        a->w[i] = (a->w[i] >> 1) | (i + 1 < a->n ? a->w[i + 1] << 31 : 0);
    while (a->n > 0 && a->w[a->n - 1] == 0) a->n--;
}

static int bn_cmp(const cg_bn *a, const cg_bn *b) {
    if (a->n != b->n) return a->n < b->n ? -1 : 1;
    for (int i = a->n - 1; i >= 0; i--)
        if (a->w[i] != b->w[i]) return a->w[i] < b->w[i] ? -1 : 1;
    return 0;
}

/* a -= b, requires a >= b */
static void bn_sub(cg_bn *a, const cg_bn *b) {
    uint32_t borrow = 0;
    for (int i = 0; i < a->n; i++) {
        uint64_t bi = (uint64_t)(i < b->n ? b->w[i] : 0) + borrow;
        borrow = (uint64_t)a->w[i] < bi;
        a->w[i] = (uint32_t)((uint64_t)a->w[i] - bi);
    }
    while (a->n > 0 && a->w[a->n - 1] == 0) a->n--;
}

static uint32_t bn_limb(const cg_bn *a, int i) { return i < a->n ? a->w[i] : 0; }

/* Bits [lo, lo+64) of a. */
static uint64_t bn_bits64(const cg_bn *a, int lo) {
    int li = lo >> 5, sh = lo & 31;
    uint64_t x = (uint64_t)bn_limb(a, li) | (uint64_t)bn_limb(a, li + 1) << 32;
    if (sh) x = (x >> sh) | ((uint64_t)bn_limb(a, li + 2) << (64 - sh));
    return x;
}

/* Any bit below position lo set? */
static bool bn_low_nonzero(const cg_bn *a, int lo) {
    int li = lo >> 5, sh = lo & 31;
    for (int i = 0; i < li && i < a->n; i++)
        if (a->w[i]) return true;
    return sh && (bn_limb(a, li) & ((1u << sh) - 1));
}

/* ------------------------------------------------------------------ rounding */

/* value = (q + f) * 2^E with q != 0 and 0 <= f < 1 (f > 0 iff sticky).  Rounds once, half to
 * even, to a binary64 (normal or subnormal) and returns its bit pattern without the sign,
 * or returns 1 on overflow to infinity. */
static int round_bits(uint64_t q, int64_t E, bool sticky, uint64_t *bits) {
    int lz = clz64(q);
    q <<= lz; /* the sticky bit stays valid: at least 11 bits are dropped below */
    E -= lz;
    int64_t lead = E + 63; /* exponent of the leading bit */
    if (lead > 1023) return 1;
    int64_t shift = lead >= -1022 ? 11 : -1011 - lead; /* ulp = 2^-1074 for subnormals */
    uint64_t m;
    bool up;
    if (shift > 64) { /* below half of the smallest subnormal */
        *bits = 0;
        return 0;
    }
    if (shift == 64) { /* q/2^64 in [1/2, 1) of the smallest subnormal */
        m = 0;
        up = q > (1ULL << 63) || sticky;
    } else {
        uint64_t half = 1ULL << (shift - 1);
        uint64_t rest = q & ((half << 1) - 1);
        m = q >> shift;
        up = rest > half || (rest == half && (sticky || (m & 1)));
    }
    m += up;
    /* unit exponent u = E + shift >= -1074; (u + 1074) << 52 plus m (hidden bit included)
     * yields the right pattern for normals, subnormals and a carry into the next binade. */
    *bits = ((uint64_t)(E + shift + 1074) << 52) + m;
    return *bits >= 0x7FF0000000000000ULL;
}

static double bits_to_double(uint64_t bits) {
    union {
        uint64_t u;
        double d;
    } c;
    c.u = bits;
    return c.d;
}

/* The fast path needs double operations rounded once, in double precision: it is turned off
 * where doubles are evaluated in wider precision (x87), leaving the exact path for all
 * inputs.  -DCG_FAST_PATH=0 forces that too (tests use it to exercise the exact path). */
#ifndef CG_FAST_PATH
#if defined(__FLT_EVAL_METHOD__) && __FLT_EVAL_METHOD__ != 0 && __FLT_EVAL_METHOD__ != 1 && \
    __FLT_EVAL_METHOD__ != 16
#define CG_FAST_PATH 0
#else
#define CG_FAST_PATH 1
#endif
#endif

static const double cg_pow10_exact[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                          1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                          1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* ------------------------------------------------------------------ conversion */

/* Core conversion of a nonzero literal: f is its first significant digit, P the power of ten
 * of that digit.  Stores the unsigned bit pattern; returns 1 on overflow. */
static int convert_bits(const cg_lit *L, size_t f, int64_t P, uint64_t *bits) {
    uint8_t dig[CG_NUM_MAXDIG + 1];
    int k = 0;
    bool sticky = false;
    const char *s = L->s;

    /* Up to 800 significant digits from the integer part, then the fraction. */
    size_t i = f;
    if (f < L->int_e) {
        while (i < L->int_e && k < CG_NUM_MAXDIG) dig[k++] = (uint8_t)(s[i++] - '0');
        if (k == CG_NUM_MAXDIG)
            sticky = skip_zeros(s, i, L->int_e) < L->int_e;
        i = L->frac_b;
    }
    while (i < L->frac_e && k < CG_NUM_MAXDIG) dig[k++] = (uint8_t)(s[i++] - '0');
    if (!sticky && k == CG_NUM_MAXDIG) sticky = skip_zeros(s, i, L->frac_e) < L->frac_e;

    if (sticky) {
        dig[k++] = 5; /* the half unit standing for the nonzero tail */
    } else {
        while (dig[k - 1] == 0) k--; /* dig[0] != 0 */
    }
    int64_t e = P - (k - 1); /* value = D * 10^e, D = dig[0..k) */

    if (CG_FAST_PATH && k <= 19) {
        uint64_t w = 0;
        int64_t x = e;
        for (int j = 0; j < k; j++) w = w * 10 + dig[j];
        /* a power beyond 10^22 is moved into w while w stays exact (e.g. 1e30) */
        while (x > 22 && w <= (1ULL << 53) / 10) {
            w *= 10;
            x--;
        }
        if (w <= (1ULL << 53) && x >= -22 && x <= 22) {
            /* one correctly rounded IEEE operation on exact operands */
            double d = (double)w;
            d = x < 0 ? d / cg_pow10_exact[-x] : d * cg_pow10_exact[x];
            union {
                double d;
                uint64_t u;
            } c;
            c.d = d;
            *bits = c.u;
            return 0; /* |d| < 2^53 * 10^22: finite */
        }
    }

    /* D as a bignum, 9 digits at a time. */
    cg_bn N;
    N.n = 0;
    for (int j = 0; j < k;) {
        uint32_t chunk = 0, mul = 1;
        for (int t = 0; t < 9 && j < k; t++, j++) {
            chunk = chunk * 10 + dig[j];
            mul *= 10;
        }
        bn_mul_add(&N, mul, chunk);
    }

    uint64_t q;
    int64_t E;
    bool st = false;
    if (e >= 0) {
        /* P <= 308 bounds D*5^e below 10^309 (1027 bits). */
        bn_mul_pow5(&N, e);
        int b = bn_bitlen(&N);
        if (b <= 64) {
            q = bn_bits64(&N, 0);
            E = e;
        } else {
            q = bn_bits64(&N, b - 64);
            st = bn_low_nonzero(&N, b - 64);
            E = e + b - 64;
        }
    } else {
        /* P >= -324 and k <= 801 bound -e by 1124. value = (D / 5^m) * 2^-m. */
        int64_t m = -e;
        cg_bn M;
        M.n = 1;
        M.w[0] = 1;
        bn_mul_pow5(&M, m);
        int d = bn_bitlen(&N) - bn_bitlen(&M);
        E = -m;
        /* Scale so that bitlen(N) = bitlen(M) + 63: then N/M in (2^62, 2^64). */
        if (d < 63) {
            bn_shl(&N, 63 - d);
            E -= 63 - d;
        } else if (d > 63) {
            bn_shl(&M, d - 63);
            E += d - 63;
        }
        /* Restoring binary long division for the 64 quotient bits. */
        bn_shl(&M, 63);
        q = 0;
        for (int j = 63; j >= 0; j--) {
            if (bn_cmp(&N, &M) >= 0) {
                bn_sub(&N, &M);
                q |= 1ULL << j;
            }
            bn_shr1(&M);
        }
        st = N.n != 0;
    }
    return round_bits(q, E, st, bits);
}

int cg_num_to_double(const char *s, size_t n, double *out) {
    cg_lit L;
    lit_parse(s, n, &L);
    uint64_t sign = L.neg ? 1ULL << 63 : 0, bits = 0;
    size_t f = first_sig(&L);
    if (f != NUM_NONE) {
        int64_t P = exp_clamped(&L) + digit_pow(&L, f);
        if (P > 308) return 1;                            /* >= 10^309 */
        if (P >= -324 && convert_bits(&L, f, P, &bits)) /* < 10^-324 rounds to 0 */
            return 1;
    }
    *out = bits_to_double(bits | sign);
    return 0;
}

int cg_num_in_range(const char *s, size_t n) {
    cg_lit L;
    lit_parse(s, n, &L);
    size_t f = first_sig(&L);
    if (f == NUM_NONE) return 1;
    int64_t P = exp_clamped(&L) + digit_pow(&L, f);
    if (P < 308) return 1; /* < 10^308 < DBL_MAX */
    if (P > 308) return 0;
    uint64_t bits;
    return convert_bits(&L, f, P, &bits) == 0;
}

/* ------------------------------------------------------------------ exact equality */

/* Is the digit string a (leading zeros allowed, maybe empty) equal to b + u? Adds from
 * the least significant end; the carry never exceeds u/10 + 1. */
static bool dec_eq_plus(const char *a, size_t an, const char *b, size_t bn, uint64_t u) {
    uint64_t c = u;
    size_t len = an > bn ? an : bn;
    for (size_t i = 0; i < len || c; i++) {
        uint64_t bd = i < bn ? (uint64_t)(b[bn - 1 - i] - '0') : 0;
        uint64_t tot = bd + c % 10;
        unsigned ad = i < an ? (unsigned)(a[an - 1 - i] - '0') : 0;
        c = c / 10 + tot / 10;
        if (ad != tot % 10) return false;
    }
    return true;
}

/* Value of a digit string if it has at most 19 significant digits (fits in u64). */
static bool dec_small(const char *s, size_t b, size_t e, uint64_t *v) {
    b = skip_zeros(s, b, e);
    if (e - b > 19) return false;
    uint64_t x = 0;
    for (; b < e; b++) x = x * 10 + (uint64_t)(s[b] - '0');
    *v = x;
    return true;
}

/* Is a + b == u for digit strings a, b? */
static bool dec_sum_eq(const cg_lit *A, const cg_lit *B, uint64_t u) {
    uint64_t x, y;
    if (!dec_small(A->s, A->exp_b, A->exp_e, &x) || !dec_small(B->s, B->exp_b, B->exp_e, &y))
        return false;
    return x <= u && y == u - x;
}

/* Is (explicit exponent of A) - (explicit exponent of B) == t, exactly? */
static bool exp_diff_eq(const cg_lit *A, const cg_lit *B, int64_t t) {
    const char *xa = A->s + A->exp_b, *xb = B->s + B->exp_b;
    size_t na = A->exp_e - A->exp_b, nb = B->exp_e - B->exp_b;
    uint64_t ut = t >= 0 ? (uint64_t)t : (uint64_t)0 - (uint64_t)t;
    if (!A->exp_neg && !B->exp_neg) /* XA - XB == t */
        return t >= 0 ? dec_eq_plus(xa, na, xb, nb, ut) : dec_eq_plus(xb, nb, xa, na, ut);
    if (A->exp_neg && B->exp_neg) /* XB - XA == t */
        return t >= 0 ? dec_eq_plus(xb, nb, xa, na, ut) : dec_eq_plus(xa, na, xb, nb, ut);
    if (!A->exp_neg) /* XA + XB == t */
        return t >= 0 && dec_sum_eq(A, B, ut);
    return t <= 0 && dec_sum_eq(A, B, ut); /* -XA - XB == t */
}

/* Cursor over the mantissa digits, stepping over the '.'. */
static size_t next_pos(const cg_lit *L, size_t i) {
    i++;
    return i == L->int_e ? L->frac_b : i;
}

int cg_num_exact_equal(const char *a, size_t an, const char *b, size_t bn) {
    cg_lit A, B;
    lit_parse(a, an, &A);
    lit_parse(b, bn, &B);
    size_t fa = first_sig(&A), fb = first_sig(&B);
    if (fa == NUM_NONE || fb == NUM_NONE) return fa == fb; /* zero == zero, whatever the sign */
    if (A.neg != B.neg) return 0;

    /* last significant digit; the first nonzero digit precedes it */
    size_t la = rskip_zeros(a, A.frac_b, A.frac_e), lb = rskip_zeros(b, B.frac_b, B.frac_e);
    if (la == A.frac_b) la = rskip_zeros(a, A.int_b, A.int_e);
    if (lb == B.frac_b) lb = rskip_zeros(b, B.int_b, B.int_e);
    /* digit counts of the significant runs [f, l) */
    size_t ca = (fa < A.int_e && la > A.int_e) ? (A.int_e - fa) + (la - A.frac_b) : la - fa;
    size_t cb = (fb < B.int_e && lb > B.int_e) ? (B.int_e - fb) + (lb - B.frac_b) : lb - fb;
    if (ca != cb) return 0;
    for (size_t i = fa, j = fb, c = 0; c < ca; c++, i = next_pos(&A, i), j = next_pos(&B, j))
        if (a[i] != b[j]) return 0;

    /* same digits: equal iff the leading digits carry the same power of ten */
    return exp_diff_eq(&A, &B, digit_pow(&B, fb) - digit_pow(&A, fa));
}

/* ------------------------------------------------------------------ serde_json equality */

enum { CG_K_POS, CG_K_NEG, CG_K_FLOAT };

static int serde_class(const cg_lit *L, uint64_t *mag) {
    if (L->has_frac || L->has_exp) return CG_K_FLOAT;
    uint64_t v = 0;
    for (size_t i = L->int_b; i < L->int_e; i++) {
        uint64_t d = (uint64_t)(L->s[i] - '0');
        if (v > (UINT64_MAX - d) / 10) return CG_K_FLOAT; /* overflows u64 */
        v = v * 10 + d;
    }
    *mag = v;
    if (!L->neg) return CG_K_POS;
    /* serde negates via i64: "-0" and magnitudes above 2^63 become floats */
    return (v == 0 || v > (1ULL << 63)) ? CG_K_FLOAT : CG_K_NEG;
}

int cg_num_perso_equal(const char *a, size_t an, const char *b, size_t bn) {
    cg_lit A, B;
    uint64_t ma = 0, mb = 0;
    lit_parse(a, an, &A);
    lit_parse(b, bn, &B);
    int ka = serde_class(&A, &ma), kb = serde_class(&B, &mb);
    if (ka != kb) return 0;
    if (ka != CG_K_FLOAT) return ma == mb;
    double da, db;
    if (cg_num_to_double(a, an, &da) || cg_num_to_double(b, bn, &db)) return 0;
    return da == db;
}
