/* Correctly rounded decimal -> float32 parsing that does not depend on the locale.
 *
 * Accepted syntax: [+-] digits [. digits] [(e|E) [+-] digits], where at least one mantissa digit
 * is present (".5" and "5." are fine, "." is not), and [+-] nan | inf | infinity in any case.
 * Hex floats, "nan(...)" and surrounding spaces are rejected: the caller trims spaces.
 *
 * Every accepted input gives the same bits as glibc's strtof() in the default rounding mode.
 * The common case (at most 18 mantissa digits, |exponent| <= 64) is computed inline: one double
 * multiplication gives a result within 4 double ulps of the exact value, which is provably
 * enough to round to float correctly unless the value is within that distance of a float
 * midpoint. Those rare inputs, float subnormals, long mantissas and big
 * exponents go to tg_parse_float_slow_(). */
#ifndef TG_IO_FLOAT_PARSE_H
#define TG_IO_FLOAT_PARSE_H

#include <float.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Parses the whole span s[0, len); returns 0 and sets *out on success, nonzero otherwise. */
int tg_parse_float(const char *s, size_t len, float *out);

/* The complete (slower) parser behind the inline fast path: parses the longest valid number at
 * the start of [p, end) and returns the pointer just past it, or NULL when [p, end) does not start
 * with a valid number (or starts with a malformed exponent such as "1e" or "1e+"). */
const char *tg_parse_float_slow_(const char *p, const char *end, float *out);

/* Fast paths are only valid when double operations round once, to double. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define TG_FLOAT_FAST_PATH 1
#else
#define TG_FLOAT_FAST_PATH 0
#endif

#if defined(__GNUC__)
#define TG_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define TG_ALWAYS_INLINE inline
#endif

static inline bool tg_is_digit_(char c) { return (unsigned char)(c - '0') < 10; }

/* Rounds w * 10^e (w > 0) to float when that is quick and provably correct, else returns
 * false (the slow parser then decides). */
static TG_ALWAYS_INLINE bool tg_decimal_to_float_(uint64_t w, int64_t e, bool neg, float *out)
{
#if TG_FLOAT_FAST_PATH
    /* d = w * 10^e with three roundings to double (converting w < 10^18, the table entry, the
     * product; each correctly rounded), so d is within 3 * 2^-53 relative, i.e. under 4
     * double ulps, of the exact value x. Rounding d to float gives x's float unless a float
     * midpoint lies between them. For a normal float result, midpoints are the doubles whose 29
     * low mantissa bits (the ones float drops) are exactly 1000...0; so when d's low bits are
     * more than 8 away from that pattern, (float)d is the correctly rounded result. Results in
     * the float subnormal range and the rare near-midpoint cases go the slow way. Overflow is
     * fine: a midpoint sits between FLT_MAX and 2^128 as well, so the test covers it. */
    static const double p10[] = {
        1e-64, 1e-63, 1e-62, 1e-61, 1e-60, 1e-59, 1e-58, 1e-57,
        1e-56, 1e-55, 1e-54, 1e-53, 1e-52, 1e-51, 1e-50, 1e-49,
        1e-48, 1e-47, 1e-46, 1e-45, 1e-44, 1e-43, 1e-42, 1e-41,
        1e-40, 1e-39, 1e-38, 1e-37, 1e-36, 1e-35, 1e-34, 1e-33,
        1e-32, 1e-31, 1e-30, 1e-29, 1e-28, 1e-27, 1e-26, 1e-25,
        1e-24, 1e-23, 1e-22, 1e-21, 1e-20, 1e-19, 1e-18, 1e-17,
        1e-16, 1e-15, 1e-14, 1e-13, 1e-12, 1e-11, 1e-10, 1e-9,
        1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1,
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7,
        1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22, 1e23,
        1e24, 1e25, 1e26, 1e27, 1e28, 1e29, 1e30, 1e31,
        1e32, 1e33, 1e34, 1e35, 1e36, 1e37, 1e38, 1e39,
        1e40, 1e41, 1e42, 1e43, 1e44, 1e45, 1e46, 1e47,
        1e48, 1e49, 1e50, 1e51, 1e52, 1e53, 1e54, 1e55,
        1e56, 1e57, 1e58, 1e59, 1e60, 1e61, 1e62, 1e63,
        1e64};
    if (e >= -64 && e <= 64) {
        double d = (double)(int64_t)w * p10[e + 64];
        uint64_t bits;
        memcpy(&bits, &d, sizeof bits);
        uint64_t low = bits & ((UINT64_C(1) << 29) - 1);
        if (low - ((UINT64_C(1) << 28) - 8) > 16 && d >= 0x1p-125) {
            float f = (float)d;
            *out = neg ? -f : f;
            return true;
        }
    }
#else
    (void)w, (void)e, (void)neg, (void)out;
#endif
    return false;
}

/* The inline fast path alone: parses a plain decimal at p as tg_parse_float_slow_() would and
 * returns the pointer past it, or returns NULL when the input is anything it does not handle
 * (nan/inf, junk, long mantissas, big exponents, subnormal or near-midpoint results), without
 * deciding whether that input is valid. Never produces a NaN.
 * With bounded == false, the caller promises that p < end and that end[-1] cannot continue a
 * number (it is not a digit, '.', '+', '-', 'e' or 'E'): every scan then stops at or before
 * end[-1] by itself, and the end checks are compiled out. */
#define TG_IN_(p) (!bounded || (p) < end)

static TG_ALWAYS_INLINE const char *tg_parse_float_fast_impl_(const char *p, const char *end,
                                                              float *out, const bool bounded)
{
    if (!TG_IN_(p))
        return NULL;
    /* Branch-free sign: in data it is as random as the values (measured: ~7% faster). */
    const bool neg = *p == '-';
    p += neg | (*p == '+');
    const char *m = p;
    uint64_t w = 0; /* wraps when there are more than 19 digits; then it is not used */
    while (TG_IN_(p) && tg_is_digit_(*p))
        w = w * 10 + (uint64_t)(*p++ - '0');
    int64_t ndig = p - m;
    int64_t nfrac = 0;
    if (TG_IN_(p) && *p == '.') {
        const char *f = ++p;
        while (TG_IN_(p) && tg_is_digit_(*p))
            w = w * 10 + (uint64_t)(*p++ - '0');
        nfrac = p - f;
        ndig += nfrac;
    }
    /* No digits (nan, inf, junk) or a mantissa that may not fit: the slow parser decides. */
    if (ndig == 0 || ndig > 18)
        return NULL;
    int64_t e = -nfrac;
    if (TG_IN_(p) && (*p | 0x20) == 'e') {
        p++;
        bool eneg = false;
        if (TG_IN_(p) && (*p == '-' || *p == '+')) {
            eneg = *p == '-';
            p++;
        }
        if (!TG_IN_(p) || !tg_is_digit_(*p))
            return NULL;
        int64_t x = 0;
        while (TG_IN_(p) && tg_is_digit_(*p)) {
            if (x < 1000000) /* saturate: anything this large is 0 or inf anyway */
                x = x * 10 + (*p - '0');
            p++;
        }
        e += eneg ? -x : x;
    }
    if (w == 0) {
        *out = neg ? -0.0f : 0.0f;
        return p;
    }
    return tg_decimal_to_float_(w, e, neg, out) ? p : NULL;
}

#undef TG_IN_

static TG_ALWAYS_INLINE const char *tg_parse_float_fast_(const char *p, const char *end,
                                                         float *out)
{
    return tg_parse_float_fast_impl_(p, end, out, true);
}

/* Whether tg_parse_float_fast_impl_(..., false) may be used on a buffer that ends at end. */
static inline bool tg_float_sentinel_ok_(const char *end)
{
    char c = end[-1];
    return !tg_is_digit_(c) && c != '.' && c != '+' && c != '-' && (c | 0x20) != 'e';
}

/* Like tg_parse_float_slow_() (same contract, same results), but fast for the usual short
 * decimals. The CSV reader calls this on the field text and then checks what follows. */
static inline const char *tg_parse_float_prefix(const char *p, const char *end, float *out)
{
    const char *q = tg_parse_float_fast_(p, end, out);
    return q ? q : tg_parse_float_slow_(p, end, out);
}

#endif
