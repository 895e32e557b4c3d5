/*
 * cg_num.h -- exact handling of JSON number literals for the callgate core.
 *
 * Every function takes a literal s[0..n) that the reader has ALREADY validated against the
 * RFC 8259 grammar  -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  and does no validation
 * of its own (garbage in gives an unspecified but memory-safe answer).  Literals may be
 * huge (megabytes of mantissa digits, or of exponent digits); every function runs in time
 * linear in n, uses a bounded amount of stack (a few KiB), no heap, no libc and no mutable
 * global state, so the module builds freestanding (wasm32) as well as natively.
 *
 * Assumption: n < 10^17 (true of any real address space); exponents beyond +/-10^18 are
 * clamped, which cannot change a result below that bound.
 */
#ifndef CG_NUM_H
#define CG_NUM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Converts the literal to the nearest binary64 (round-half-to-even), bit-identical to
 * glibc strtod / Python float().  Returns 0 and stores the result in *out on success;
 * returns 1 and leaves *out untouched when the value rounds to +/-infinity, because JSON has
 * no infinity and the caller must report a range error instead.  Underflow is not an
 * error: it yields a subnormal or a signed zero ("-0" gives -0.0).
 * Why exact: policy comparisons must agree with the Python/Rust front ends bit for bit. */
int cg_num_to_double(const char *s, size_t n, double *out);

/* Returns 1 iff cg_num_to_double(s, n, ...) would succeed (the value is finite as a
 * double), else 0.  Decides from the position of the leading digit and the exponent alone
 * and converts only when the literal lies in the decade of DBL_MAX, so it is cheap enough
 * to call on every literal while loading. */
int cg_num_in_range(const char *s, size_t n);

/* Returns 1 iff the two literals denote the same exact decimal value ("1" == "1.0" ==
 * "10e-1", "-0" == "0" == "0.0e5", "1e400" == "10e399"), else 0.  No rounding and no range
 * limit: exponents of any length are compared exactly.  Linear time, no allocation.
 * Why: lets equality constants be matched without the precision loss of doubles. */
int cg_num_exact_equal(const char *a, size_t an, const char *b, size_t bn);

/* Returns 1 iff the two literals are equal the way serde_json (default features) compares
 * its parsed Numbers: each literal is classified as PosInt (u64: no '-', '.', exponent),
 * NegInt (i64: '-', no '.', exponent, value in [i64::MIN, -1]; "-0" is a float) or Float
 * (everything else, including integers that overflow); same-class ints compare exactly,
 * floats compare as doubles (0.0 == -0.0), and different classes are never equal
 * (100 != 100.0, 0 != -0).  Floats are taken as correctly rounded.
 * Precondition: cg_num_in_range is 1 for both (otherwise 0 is returned).
 * Why: reproduces the reference (Rust) engine's notion of JSON equality. */
int cg_num_perso_equal(const char *a, size_t an, const char *b, size_t bn);

#ifdef __cplusplus
}
#endif

#endif /* CG_NUM_H */
