/* The slow, always-correct half of the float parser (the fast half is inline in float_parse.h).
 *
 * Hard cases (many digits, large exponents, results near a rounding boundary) are rewritten into a
 * canonical string "[-]DDDDe[-]X" made only of ASCII digits, a sign and 'e', then handed to the C
 * library's strtof, which is correctly rounded. Because the canonical string contains no radix
 * character, the current locale cannot change its meaning. */
#include "float_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Significant digits kept before the rest is folded into one sticky digit. The exact decimal
 * expansion of any float or of any midpoint between two floats has fewer than 120 significant
 * digits, so keeping 200 and replacing the remainder by a trailing '1' (when it is nonzero)
 * preserves how the value compares with every midpoint, hence the rounding. */
#define KEEP_DIGITS 200
/* Decimal exponents beyond this give 0 or infinity for any kept mantissa; clamping keeps the
 * canonical string short and the arithmetic far from overflow. */
#define EXP_CLAMP 99999

/* Case-insensitive match of the lowercase word w at p; returns its length or 0. */
static size_t match_word(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != w[i])
            return 0;
    return n;
}

static const char *parse_special(const char *p, const char *end, bool neg, float *out)
{
    size_t n;
    if ((n = match_word(p, end, "infinity")) || (n = match_word(p, end, "inf"))) {
        *out = neg ? -INFINITY : INFINITY;
        return p + n;
    }
    if ((n = match_word(p, end, "nan"))) {
        *out = neg ? -NAN : NAN; /* glibc's strtof keeps the sign of a NaN too */
        return p + n;
    }
    return NULL;
}

typedef struct {
    char buf[KEEP_DIGITS + 40]; /* sign, digits, sticky digit, 'e', exponent */
    int n;                      /* digits stored after the sign at buf[0] */
    int64_t dexp;               /* value = digits * 10^dexp (before the explicit exponent) */
    bool sticky;                /* a dropped digit was nonzero */
} digits;

static void add_digit(digits *d, char c, bool fraction)
{
    if (d->n == 0 && c == '0') { /* leading zero: only moves the point */
        d->dexp -= fraction;
        return;
    }
    if (d->n < KEEP_DIGITS) {
        d->buf[1 + d->n++] = c;
        d->dexp -= fraction;
    } else {
        d->dexp += !fraction;
        d->sticky |= c != '0';
    }
}

/* Parses "e[+-]digits" at p if present; returns NULL for a malformed exponent. */
static const char *parse_exponent(const char *p, const char *end, int64_t *e)
{
    *e = 0;
    if (p >= end || (*p | 0x20) != 'e')
        return p;
    p++;
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    if (p >= end || !tg_is_digit_(*p))
        return NULL;
    int64_t x = 0;
    for (; p < end && tg_is_digit_(*p); p++)
        if (x < INT64_C(100000000000000000)) /* saturate far below overflow */
            x = x * 10 + (*p - '0');
    *e = neg ? -x : x;
    return p;
}

static float convert(digits *d, bool neg, int64_t e)
{
    if (d->n == 0)
        return neg ? -0.0f : 0.0f;
    int64_t x = d->dexp + e;
    if (d->sticky) {
        d->buf[1 + d->n++] = '1';
        x -= 1;
    }
    if (x > EXP_CLAMP)
        x = EXP_CLAMP;
    if (x < -EXP_CLAMP)
        x = -EXP_CLAMP;
    d->buf[0] = neg ? '-' : '+';
    snprintf(d->buf + 1 + d->n, sizeof d->buf - 1 - (size_t)d->n, "e%lld", (long long)x);
    int saved = errno; /* ERANGE from strtof is not an error for us: 1e-60 is 0, 1e60 is inf */
    float f = strtof(d->buf, NULL);
    errno = saved;
    return f;
}

const char *tg_parse_float_slow_(const char *p, const char *end, float *out)
{
    bool neg = false;
    if (p < end && (*p == '-' || *p == '+'))
        neg = *p++ == '-';
    digits d = {.n = 0, .dexp = 0, .sticky = false};
    const char *m = p;
    for (; p < end && tg_is_digit_(*p); p++)
        add_digit(&d, *p, false);
    bool any = p > m;
    if (p < end && *p == '.') {
        const char *f = ++p;
        for (; p < end && tg_is_digit_(*p); p++)
            add_digit(&d, *p, true);
        any |= p > f;
    }
    if (!any)
        return parse_special(m, end, neg, out);
    int64_t e;
    p = parse_exponent(p, end, &e);
    if (!p)
        return NULL;
    *out = convert(&d, neg, e);
    return p;
}

int tg_parse_float(const char *s, size_t len, float *out)
{
    if (!s || !out)
        return -1;
    const char *end = s + len;
    float v;
    const char *p = tg_parse_float_prefix(s, end, &v);
    if (p != end)
        return 1;
    *out = v;
    return 0;
}
