/*
 * test_num.c -- tests for csrc/cg_num.c (JSON number literals).
 *
 * Pins: bit-exact agreement of cg_num_to_double with glibc strtod (round-half-even,
 * overflow -> range error, underflow -> subnormal/signed zero) on fixed edge cases and on
 * millions of random literals of varied shapes, random doubles printed with %.17g / %.Ne and
 * exact binary64 midpoints; cg_num_in_range == "strtod result is finite"; and the exact /
 * serde_json equality predicates against independent reference implementations.
 *
 * Usage: test_num [n_random [seed]]   (defaults: 2000000 random literals, fixed seed)
 * Exits 1 at the first failure with a message; prints "test_num: N passed, 0 failed".
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../csrc/cg_num.h"

static unsigned long long g_passed;

/* ---------------------------------------------------------------- utilities */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int rint_in(int lo, int hi) { return lo + (int)(rnd() % (uint64_t)(hi - lo + 1)); }

static uint64_t dbits(double d) {
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double bits2d(uint64_t u) {
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void show(const char *what, const char *s) {
    size_t n = strlen(s);
    if (n <= 200)
        fprintf(stderr, "FAIL %s: literal \"%s\"\n", what, s);
    else
        fprintf(stderr, "FAIL %s: literal (%zu chars) \"%.100s ... %.60s\"\n", what, n, s,
                s + n - 60);
}

static void fail_conv(const char *s, int r, double got, int ref_inf, double ref) {
    show("cg_num_to_double vs strtod", s);
    fprintf(stderr, "  ours: rc=%d bits=%016llx (%.17g)\n", r, (unsigned long long)dbits(got),
            got);
    fprintf(stderr, "  want: %s bits=%016llx (%.17g)\n", ref_inf ? "range error" : "ok",
            (unsigned long long)dbits(ref), ref);
    exit(1);
}

/* Converts with both implementations and requires bit-identical results. Returns the value. */
static double check_conv(const char *s) {
    size_t n = strlen(s);
    double ref = strtod(s, NULL);
    int ref_inf = isinf(ref);
    double got = 0.0;
    int r = cg_num_to_double(s, n, &got);
    if (ref_inf ? r != 1 : (r != 0 || dbits(got) != dbits(ref))) fail_conv(s, r, got, ref_inf, ref);
    if (cg_num_in_range(s, n) != !ref_inf) {
        show("cg_num_in_range vs strtod", s);
        fprintf(stderr, "  in_range=%d, strtod gives %s\n", cg_num_in_range(s, n),
                ref_inf ? "inf" : "finite");
        exit(1);
    }
    g_passed++;
    return ref;
}

/* Fixed expectation independent of strtod: want_bits, or range error when want_err. */
static void expect_bits(const char *s, int want_err, uint64_t want_bits) {
    size_t n = strlen(s);
    double got = 0.0;
    int r = cg_num_to_double(s, n, &got);
    if (want_err ? r != 1 : (r != 0 || dbits(got) != want_bits)) {
        show("fixed expectation", s);
        fprintf(stderr, "  ours: rc=%d bits=%016llx, want %s %016llx\n", r,
                (unsigned long long)dbits(got), want_err ? "range error" : "bits",
                (unsigned long long)want_bits);
        exit(1);
    }
    if (cg_num_in_range(s, n) != !want_err) {
        show("cg_num_in_range fixed expectation", s);
        exit(1);
    }
    g_passed++;
    check_conv(s); /* and glibc must agree as well */
}

static void expect_d(const char *s, double want) { expect_bits(s, 0, dbits(want)); }

/* ---------------------------------------------------------------- fixed cases */

static char *repeat_build(const char *head, char fill, size_t count, const char *tail) {
    size_t hn = strlen(head), tn = strlen(tail);
    char *p = malloc(hn + count + tn + 1);
    if (!p) abort();
    memcpy(p, head, hn);
    memset(p + hn, fill, count);
    memcpy(p + hn + count, tail, tn + 1);
    return p;
}

static void test_fixed(void) {
    expect_bits("0", 0, 0);
    expect_bits("-0", 0, 1ULL << 63);
    expect_bits("-0.0e5", 0, 1ULL << 63);
    expect_bits("0.000", 0, 0);
    expect_bits("0e999999999999", 0, 0);
    expect_bits("-0E-999999999999999999999999999", 0, 1ULL << 63);
    expect_d("1", 1.0);
    expect_d("-1.5", -1.5);
    expect_d("1e0000000000000000000000000000005", 1e5);
    expect_d("1E+0000000000000000000000000000005", 1e5);
    expect_d("100000e-0000000000000000000000000000005", 1.0);
    expect_bits("1e99999999999999999999", 1, 0);
    expect_bits("-1e99999999999999999999", 1, 0);
    expect_bits("1e-99999999999999999999", 0, 0);
    expect_bits("-1e-99999999999999999999", 0, 1ULL << 63);
    expect_bits("1e400", 1, 0);
    expect_bits("1.8e308", 1, 0);
    expect_bits("-1.8e308", 1, 0);
    expect_d("1e308", 1e308);
    expect_d("1.7976931348623157e308", DBL_MAX);
    expect_d("1.7976931348623158e308", DBL_MAX);
    expect_bits("1.7976931348623159e308", 1, 0);
    /* exact midpoint DBL_MAX + 2^970 ties to even = 2^1024: range error; just below: ok */
    expect_bits("179769313486231580793728971405303415079934132710037826936173778980444968292764"
                "750946649017977587207096330286416692887910946555547851940402630657488671505820"
                "681908902000708383676273854845817711531764475730270069855571366959622842914819"
                "860834936475292719074168444365510704342711559699508093042880177904174497792",
                1, 0);
    expect_d("179769313486231580793728971405303415079934132710037826936173778980444968292764"
             "750946649017977587207096330286416692887910946555547851940402630657488671505820"
             "681908902000708383676273854845817711531764475730270069855571366959622842914819"
             "860834936475292719074168444365510704342711559699508093042880177904174497791",
             DBL_MAX);
    expect_d("9007199254740993", 9007199254740992.0);
    expect_d("9007199254740993.0000000000000000000000000000001", 9007199254740994.0);
    expect_d("9007199254740995", 9007199254740996.0);
    expect_d("9007199254740992", 9007199254740992.0);
    expect_bits("2.2250738585072011e-308", 0, 0x000FFFFFFFFFFFFFULL);
    expect_bits("2.2250738585072012e-308", 0, 0x0010000000000000ULL);
    expect_bits("2.2250738585072014e-308", 0, 0x0010000000000000ULL);
    expect_bits("4.9406564584124654e-324", 0, 1);
    expect_bits("5e-324", 0, 1);
    expect_bits("2.4703282292062327e-324", 0, 0);
    expect_bits("2.4703282292062328e-324", 0, 1);
    expect_bits("1e-324", 0, 0);
    expect_bits("-1e-400", 0, 1ULL << 63);
    /* exactly half the smallest subnormal (2^-1075) ties to even = 0 */
    {
        char buf[1200];
        snprintf(buf, sizeof buf, "%.760Le", ldexpl(1.0L, -1075));
        if (LDBL_MANT_DIG >= 64) {
            expect_bits(buf, 0, 0);
            size_t n = strlen(buf);
            char *e = strchr(buf, 'e');
            memmove(e + 3, e, n - (size_t)(e - buf) + 1); /* append "001" to the mantissa */
            memcpy(e, "001", 3);
            expect_bits(buf, 0, 1);
        }
    }
    expect_d("0.1", 0.1);
    expect_d("1e23", 1e23);
    expect_d("8.98846567431158e307", 8.98846567431158e307);
    expect_d("123456789012345678901234567890", 123456789012345678901234567890.0);
    expect_d("1e30", 1e30);
    expect_d("12345e30", 12345e30);
    expect_d("1e-22", 1e-22);
    expect_d("4.35170790e-313", 4.35170790e-313);

    /* 800+ digit literals */
    {
        char *p = repeat_build("0.", '9', 800, "");
        expect_d(p, 1.0);
        free(p);
        p = repeat_build("1", '0', 800, "e-800");
        expect_d(p, 1.0);
        free(p);
        p = repeat_build("1.", '0', 1000, "1"); /* 1 + 10^-1001, rounds to 1 */
        expect_d(p, 1.0);
        free(p);
        p = repeat_build("-1.", '0', 400, "1e-4");
        check_conv(p);
        free(p);
    }

    /* huge literals: megabytes of zeros around a few digits */
    {
        char *p = repeat_build("0.", '0', 1000000, "1");
        expect_bits(p, 0, 0);
        free(p);
        p = repeat_build("0.", '0', 1000000, "1e1000006"); /* 10^-1000001 * 10^1000006 */
        expect_d(p, 1e5);
        free(p);
        p = repeat_build("1", '0', 1000000, "e-1000000");
        expect_d(p, 1.0);
        free(p);
        p = repeat_build("1", '0', 1000000, "");
        expect_bits(p, 1, 0);
        free(p);
        p = repeat_build("1e", '0', 1000000, "7");
        expect_d(p, 1e7);
        free(p);
        p = repeat_build("1e-", '9', 1000000, "");
        expect_bits(p, 0, 0);
        free(p);
        p = repeat_build("2e", '9', 1000000, "");
        expect_bits(p, 1, 0);
        free(p);
        p = repeat_build("0e", '9', 1000000, "");
        expect_bits(p, 0, 0);
        free(p);
        /* 9007199254740993 followed by a megabyte of zeros then a 1: just above the tie */
        p = repeat_build("9007199254740993.", '0', 1000000, "1");
        expect_d(p, 9007199254740994.0);
        free(p);
        p = repeat_build("9007199254740993.", '0', 1000000, "");
        expect_d(p, 9007199254740992.0);
        free(p);
    }

    /* 1 MB of random digits: agree with strtod and report the conversion time */
    {
        size_t n = 1u << 20;
        char *p = malloc(n + 16);
        if (!p) abort();
        p[0] = '1';
        for (size_t i = 1; i < n; i++) p[i] = (char)('0' + rnd() % 10);
        p[n / 2] = '.';
        strcpy(p + n, "e-524000");
        check_conv(p);
        int reps = 200;
        double sink = 0, d;
        clock_t t0 = clock();
        for (int i = 0; i < reps; i++) {
            if (cg_num_to_double(p, strlen(p), &d)) abort();
            sink += d;
        }
        double us = (double)(clock() - t0) / CLOCKS_PER_SEC * 1e6 / reps;
        printf("test_num: 1 MiB literal converts in %.1f us (%g)\n", us, sink / reps);
        free(p);
    }
}

/* ---------------------------------------------------------------- random literals */

/* Appends an exponent part for power x to buf, in a random spelling. */
static char *put_exp(char *o, long x, int allow_none) {
    if (allow_none && x == 0 && rnd() % 2) return o;
    *o++ = rnd() % 2 ? 'e' : 'E';
    if (x < 0)
        *o++ = '-';
    else if (rnd() % 3 == 0)
        *o++ = '+';
    int lz = rnd() % 16 == 0 ? rint_in(1, 30) : 0;
    while (lz--) *o++ = '0';
    return o + sprintf(o, "%ld", x < 0 ? -x : x);
}

/* Random digit string of length k with a nonzero first digit (biased to hit edge patterns). */
static void rand_digits(char *d, int k) {
    int mode = (int)(rnd() % 8);
    for (int i = 0; i < k; i++) {
        if (mode == 0)
            d[i] = rnd() % 8 ? '9' : (char)('0' + rnd() % 10);
        else if (mode == 1)
            d[i] = rnd() % 8 ? '0' : (char)('0' + rnd() % 10);
        else
            d[i] = (char)('0' + rnd() % 10);
    }
    if (d[0] == '0') d[0] = (char)('1' + rnd() % 9);
    d[k] = 0;
}

/* Builds a literal with significant digits d (first nonzero) whose leading digit has power P. */
static void spell(char *out, int neg, const char *d, long P, int zeros_after) {
    char *o = out;
    int k = (int)strlen(d);
    if (neg) *o++ = '-';
    int shape = (int)(rnd() % 4);
    if (shape == 0) { /* 0.000ddd e X */
        int lead = rint_in(0, 3);
        o += sprintf(o, "0.");
        for (int i = 0; i < lead; i++) *o++ = '0';
        memcpy(o, d, (size_t)k);
        o += k;
        for (int i = 0; i < zeros_after; i++) *o++ = '0';
        o = put_exp(o, P + lead + 1, 1);
    } else { /* c integer digits, rest as fraction (or padded integer) */
        int total = k + zeros_after;
        int c = rint_in(1, total + 2);
        for (int i = 0; i < c; i++) *o++ = i < k ? d[i] : '0';
        if (c < total) {
            *o++ = '.';
            for (int i = c; i < total; i++) *o++ = i < k ? d[i] : '0';
        }
        o = put_exp(o, P - (c - 1), 1);
    }
    *o = 0;
}

static char g_lit[8192];

static void random_literal(void) {
    char d[2100];
    int k;
    int r = (int)(rnd() % 100);
    if (r < 4)
        k = rint_in(300, 800);
    else if (r < 5)
        k = rint_in(801, 2000);
    else
        k = rint_in(1, 40);
    rand_digits(d, k);
    long P;
    r = (int)(rnd() % 100);
    if (r < 40)
        P = rint_in(-345, 312);
    else if (r < 55)
        P = rint_in(-330, -300);
    else if (r < 70)
        P = rint_in(300, 310);
    else if (r < 95)
        P = rint_in(-25, 25);
    else
        P = rint_in(-1200, 1200);
    spell(g_lit, (int)(rnd() % 2), d, P, rnd() % 4 == 0 ? rint_in(0, 5) : 0);
    check_conv(g_lit);
}

static uint64_t rand_finite_bits(void) {
    for (;;) {
        uint64_t u = rnd();
        int sel = (int)(rnd() % 8);
        if (sel == 0) u &= 0x800FFFFFFFFFFFFFULL; /* subnormals */
        if (sel == 1) u = (u & 0x800FFFFFFFFFFFFFULL) | 0x7FE0000000000000ULL; /* top binade */
        if ((u & 0x7FF0000000000000ULL) != 0x7FF0000000000000ULL) return u;
    }
}

static void random_double_prints(void) {
    double x = bits2d(rand_finite_bits());
    snprintf(g_lit, sizeof g_lit, "%.17g", x);
    if (dbits(check_conv(g_lit)) != dbits(x)) {
        show("%.17g round trip", g_lit);
        exit(1);
    }
    snprintf(g_lit, sizeof g_lit, "%.*e", rint_in(15, 25), x);
    check_conv(g_lit);
}

/* Exact decimal expansion of the midpoint between a random double and its successor;
 * the tie, just below and just above must round to the even neighbour, down and up. */
static void random_midpoint(char *big, size_t bigcap) {
    uint64_t u = rand_finite_bits() & ~(1ULL << 63);
    if (rnd() % 64 == 0) u = 0x7FEFFFFFFFFFFFFFULL; /* DBL_MAX: above it lies infinity */
    double lo = bits2d(u);
    long double mid = (long double)lo + ldexpl(1.0L, (u >> 52) ? (int)(u >> 52) - 1075 - 1
                                                                  : -1075);
    int neg = (int)(rnd() % 2);
    int len = snprintf(g_lit, sizeof g_lit, "%s%.780Le", neg ? "-" : "", mid);
    if (len <= 0 || (size_t)len >= sizeof g_lit) abort();
    uint64_t even = (u & 1) ? u + 1 : u;
    uint64_t sign = neg ? 1ULL << 63 : 0;
    int even_inf = even == 0x7FF0000000000000ULL;
    expect_bits(g_lit, even_inf, even | sign);

    /* below = the expansion without its trailing zeros and its last nonzero digit */
    char *e = strchr(g_lit, 'e');
    char *m_end = e;
    while (m_end[-1] == '0') m_end--;
    char expo[32];
    snprintf(expo, sizeof expo, "%s", e);
    /* above: the full 780-digit expansion plus a 1 further down (far below half an ulp;
       after the stripped form the next digit place can exceed an ulp for big integers) */
    size_t pre = (size_t)(e - g_lit);
    size_t pad = rnd() % 4 == 0 ? rnd() % 3000 : rnd() % 5;
    if (rnd() % 512 == 0) pad = 1000000 + rnd() % 1000;
    if (pre + pad + 40 > bigcap) pad = 0;
    memcpy(big, g_lit, pre);
    memset(big + pre, '0', pad);
    big[pre + pad] = '1';
    strcpy(big + pre + pad + 1, expo);
    uint64_t up = u + 1;
    expect_bits(big, up == 0x7FF0000000000000ULL, up | sign);
    /* below */
    pre = (size_t)(m_end - g_lit);
    if (m_end[-1] != '.') {
        size_t cut = pre - 1;
        if (rnd() % 2 && cut > 20) cut = (size_t)rint_in(19, (int)cut); /* any proper prefix */
        while (big[cut - 1] == '.') cut--;
        memcpy(big, g_lit, cut);
        strcpy(big + cut, expo);
        double lo_s = bits2d(u | sign);
        double got = check_conv(big); /* shorter prefixes: strtod is the judge */
        /* below 2^53 the expansion has fraction digits, so dropping the last one takes off
           less than half an ulp (exactly half for x.5): the result must still be lo */
        if (cut == pre - 1 && u < 0x4340000000000000ULL && dbits(got) != dbits(lo_s)) {
            show("just below midpoint", big);
            exit(1);
        }
    }
}

/* ---------------------------------------------------------------- equality predicates */

typedef struct {
    int zero, neg;
    char d[64]; /* significant digits, no trailing zeros */
    long P;     /* power of ten of the first digit */
} refnum;

static void rand_refnum(refnum *v) {
    v->zero = rnd() % 16 == 0;
    v->neg = (int)(rnd() % 2);
    int k = rint_in(1, 20);
    if (rnd() % 4 == 0) k = rint_in(1, 3);
    rand_digits(v->d, k);
    while (k > 1 && v->d[k - 1] == '0') v->d[--k] = 0;
    v->P = rnd() % 8 ? rint_in(-5, 20) : rint_in(-400, 400);
    if (v->zero) v->d[0] = 0;
}

static void spell_ref(char *out, const refnum *v) {
    if (v->zero) {
        const char *z[] = {"0", "-0", "0.0", "-0.000", "0e5", "0E-7", "-0.0e+00", "0.00e999"};
        strcpy(out, z[rnd() % 8]);
        return;
    }
    spell(out, v->neg, v->d, v->P, rint_in(0, 3));
}

static int ref_exact_eq(const refnum *a, const refnum *b) {
    if (a->zero || b->zero) return a->zero && b->zero;
    return a->neg == b->neg && a->P == b->P && strcmp(a->d, b->d) == 0;
}

/* serde_json classification with libc: 0 PosInt, 1 NegInt, 2 Float */
static int ref_serde_class(const char *s, unsigned long long *u, long long *i, double *f) {
    *f = strtod(s, NULL);
    if (strpbrk(s, ".eE")) return 2;
    errno = 0;
    if (s[0] != '-') {
        *u = strtoull(s, NULL, 10);
        return errno == ERANGE ? 2 : 0;
    }
    *i = strtoll(s, NULL, 10);
    return (errno == ERANGE || *i == 0) ? 2 : 1;
}

static int ref_perso_eq(const char *a, const char *b) {
    unsigned long long ua = 0, ub = 0;
    long long ia = 0, ib = 0;
    double fa, fb;
    int ka = ref_serde_class(a, &ua, &ia, &fa), kb = ref_serde_class(b, &ub, &ib, &fb);
    if (ka != kb) return 0;
    if (ka == 0) return ua == ub;
    if (ka == 1) return ia == ib;
    return fa == fb;
}

static void expect_eq(const char *what, int (*fn)(const char *, size_t, const char *, size_t),
                      const char *a, const char *b, int want) {
    int got = fn(a, strlen(a), b, strlen(b));
    int got2 = fn(b, strlen(b), a, strlen(a));
    if (got != want || got2 != want) {
        fprintf(stderr, "FAIL %s(\"%.200s\", \"%.200s\") = %d/%d, want %d\n", what, a, b, got,
                got2, want);
        exit(1);
    }
    g_passed++;
}

#define EXACT(a, b, w) expect_eq("cg_num_exact_equal", cg_num_exact_equal, a, b, w)
#define PERSO(a, b, w) expect_eq("cg_num_perso_equal", cg_num_perso_equal, a, b, w)

static void test_equality_fixed(void) {
    EXACT("1", "1.0", 1);
    EXACT("1", "10e-1", 1);
    EXACT("1", "0.1e1", 1);
    EXACT("1.0", "0.1E+1", 1);
    EXACT("-0", "0", 1);
    EXACT("0", "0.0e5", 1);
    EXACT("-0.0e-99999999999999999999999", "0", 1);
    EXACT("9007199254740993", "9007199254740992", 0);
    EXACT("1e400", "10e399", 1);
    EXACT("1e400", "1e399", 0);
    EXACT("-1e400", "1e400", 0);
    EXACT("1", "-1", 0);
    EXACT("0", "1e-99999", 0);
    EXACT("123.456", "123456e-3", 1);
    EXACT("123.456", "0.000123456e6", 1);
    EXACT("123.456", "123.4560000", 1);
    EXACT("123.456", "123.4561", 0);
    EXACT("123.456", "1234.56", 0);
    EXACT("1e99999999999999999999", "10e99999999999999999998", 1);
    EXACT("1e99999999999999999999", "10e99999999999999999999", 0);
    EXACT("1e-99999999999999999999", "0.1e-99999999999999999998", 1);
    EXACT("1e-99999999999999999999", "100e-100000000000000000001", 1);
    EXACT("1e00000000000000000000000000000000005", "100000", 1);
    EXACT("1e1", "100e-1", 1);
    EXACT("1e-1", "0.01e1", 1);
    EXACT("1e-1", "0.001e+2", 1);
    EXACT("1e-1", "0.001e+20000000000000000000000002", 0);
    EXACT("1e9223372036854775807", "10e9223372036854775806", 1);
    EXACT("1e9223372036854775808", "0.1e9223372036854775809", 1);
    EXACT("1e-9223372036854775808", "10e-9223372036854775809", 1);
    EXACT("1e18446744073709551615", "1e18446744073709551616", 0);
    EXACT("1e18446744073709551616", "10e18446744073709551615", 1);
    EXACT("10e9", "1e10", 1);
    EXACT("0.5", "5e-1", 1);
    EXACT("5", "5e-0", 1);
    {
        char *a = repeat_build("1.", '0', 1000000, "");
        char *b = repeat_build("0.", '0', 1000000, "1e1000001");
        char *c = repeat_build("0.", '0', 1000000, "1e1000002");
        char *d = repeat_build("1e", '0', 1000000, "1");
        EXACT(a, "1", 1);
        EXACT(a, b, 1);
        EXACT(a, c, 0);
        EXACT(d, "10", 1);
        EXACT(d, b, 0);
        free(a);
        free(b);
        free(c);
        free(d);
    }

    PERSO("1", "1", 1);
    PERSO("100", "100.0", 0);
    PERSO("100", "1e2", 0);
    PERSO("100.0", "1e2", 1);
    PERSO("0", "-0", 0);
    PERSO("0", "0.0", 0);
    PERSO("-0", "0.0", 1);  /* both floats, -0.0 == 0.0 */
    PERSO("-0", "-0.0", 1);
    PERSO("-1", "-1", 1);
    PERSO("-1", "-1.0", 0);
    PERSO("18446744073709551615", "18446744073709551615", 1);
    PERSO("18446744073709551616", "18446744073709551616.0", 1); /* both floats */
    PERSO("18446744073709551616", "18446744073709551615", 0);   /* float vs PosInt */
    PERSO("-9223372036854775808", "-9223372036854775808", 1);   /* i64::MIN is NegInt */
    PERSO("-9223372036854775808", "-9223372036854775808.0", 0);
    PERSO("-9223372036854775809", "-9223372036854775808.0", 1); /* float, rounds to -2^63 */
    PERSO("-9223372036854775809", "-9223372036854775808", 0);
    PERSO("9007199254740993", "9007199254740992", 0);           /* exact u64 */
    PERSO("9007199254740993.0", "9007199254740992.0", 1);       /* same double */
    PERSO("1.0", "1.00000000000000000001", 1);
    PERSO("0.1", "0.10000000000000001", 1);
    PERSO("0.1", "0.1000000000000001", 0);
    PERSO("1e-400", "0.0", 1);
    PERSO("-1e-400", "0e0", 1);
}

static void test_equality_random(int iters) {
    char sa[4096], sb[4096];
    for (int it = 0; it < iters; it++) {
        refnum a, b;
        rand_refnum(&a);
        if (rnd() % 2) {
            b = a; /* same value, maybe a different spelling */
            if (rnd() % 4 == 0) { /* or a near miss */
                int w = (int)(rnd() % 3);
                if (w == 0) b.P += rnd() % 2 ? 1 : -1;
                if (w == 1) b.neg = !b.neg;
                if (w == 2 && !b.zero) {
                    size_t k = strlen(b.d);
                    size_t i = rnd() % k;
                    b.d[i] = (char)('0' + (b.d[i] - '0' + 1 + (int)(rnd() % 9)) % 10);
                    if (b.d[0] == '0') b.d[0] = '1';
                    while (k > 1 && b.d[k - 1] == '0') b.d[--k] = 0;
                }
            }
        } else {
            rand_refnum(&b);
        }
        spell_ref(sa, &a);
        spell_ref(sb, &b);
        EXACT(sa, sb, ref_exact_eq(&a, &b));
        if (cg_num_in_range(sa, strlen(sa)) && cg_num_in_range(sb, strlen(sb)))
            PERSO(sa, sb, ref_perso_eq(sa, sb));
        /* integer-only spellings exercise the u64 / i64 classes */
        unsigned long long x = rnd() >> (rnd() % 64);
        int na = (int)(rnd() % 2), nb = rnd() % 4 ? na : !na;
        unsigned long long y = rnd() % 2 ? x : x + (rnd() % 3) - 1;
        if (rnd() % 8 == 0) x = y = 9223372036854775808ULL + (rnd() % 3) - 1;
        snprintf(sa, sizeof sa, "%s%llu", na ? "-" : "", x);
        snprintf(sb, sizeof sb, "%s%llu%s", nb ? "-" : "", y, rnd() % 8 == 0 ? ".0" : "");
        PERSO(sa, sb, ref_perso_eq(sa, sb));
        EXACT(sa, sb, (x == y && (na == nb || x == 0)));
    }
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv) {
    long n_random = argc > 1 ? atol(argv[1]) : 2000000;
    if (argc > 2) rng_state = strtoull(argv[2], NULL, 0);
    size_t bigcap = 1100000;
    char *big = malloc(bigcap);
    if (!big) abort();

    test_fixed();
    test_equality_fixed();
    test_equality_random(200000);

    for (long i = 0; i < n_random; i++) random_literal();
    for (long i = 0; i < n_random / 8; i++) random_double_prints();
    if (LDBL_MANT_DIG >= 64) /* midpoints need a 54-bit significand */
        for (long i = 0; i < n_random / 40; i++) random_midpoint(big, bigcap);

    free(big);
    printf("test_num: %llu passed, 0 failed\n", g_passed);
    return 0;
}
