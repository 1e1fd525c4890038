/* tg_parse_float must give exactly strtof's bits on everything it accepts, and reject what a CSV
 * reader should not take as a number (hex, spaces, stray characters). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/io/float_parse.h"

static uint32_t bits_of(float f)
{
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

static float float_of(uint32_t b)
{
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* Returns 1 if s parsed and matched strtof, 0 if rejected; fails the test on a mismatch. */
static int check_same(const char *s)
{
    float ours = 0.0f;
    if (tg_parse_float(s, strlen(s), &ours) != 0)
        return 0;
    /* The inline prefix parser reads 8 bytes at a time when it can: run it with the number
     * followed by a delimiter and more digits, as it sees fields inside a CSV line. */
    char padded[512];
    size_t n = strlen(s);
    if (n + 16 < sizeof padded) {
        memcpy(padded, s, n);
        memcpy(padded + n, ",12345678901234", 16);
        float pre = 0.0f;
        const char *stop = tg_parse_float_prefix(padded, padded + n + 15, &pre);
        if (stop != padded + n || bits_of(pre) != bits_of(ours)) {
            print_error("prefix parse of \"%s\" differs\n", s);
            fail();
        }
    }
    char *end = NULL;
    float ref = strtof(s, &end);
    if (*end != '\0' || bits_of(ours) != bits_of(ref)) {
        print_error("mismatch on \"%s\": ours %08" PRIx32 " strtof %08" PRIx32 " (end at %td)\n",
                    s, bits_of(ours), bits_of(ref), end - s);
        fail();
    }
    return 1;
}

static void expect_same(const char *s)
{
    if (!check_same(s)) {
        print_error("rejected \"%s\"\n", s);
        fail();
    }
}

static void test_edge_cases(void **state)
{
    (void)state;
    static const char *const cases[] = {
        "0", "-0", "+0", "0.0", "-0.0", "0e0", "0e-999999", "-0e999999", "00000", ".5", "5.", "+.5",
        "-5.", "+1", "1", "0.1", "0.2", "0.3", "1e-45", "1.4e-45", "1.401298464324817e-45",
        "7.006492321624085e-46", "7.006492321624086e-46", "7e-46", "2e-45", "2.1e-45", "3e-45",
        "1.1754942e-38", "1.17549435e-38", "1.1754943508222875e-38", "1.17549421e-38",
        "3.4028235e38", "3.4028234663852886e38", "3.4028235677973366e38", "3.4028235677973367e38",
        "3.4028236e38", "3.5e38", "1e39", "-1e39", "1e-400", "-1e-400", "1e400", "1e2147483648",
        "1e-2147483649", "1e99999999999999999999999", "1e-99999999999999999999999",
        "16777216", "16777217", "16777218", "16777219", "33554433", "33554435", "9007199254740993",
        "9007199254740992", "18446744073709551615", "18446744073709551616",
        "99999999999999999999", "1234567890123456789", "12345678901234567890", "0.000001",
        "1e10", "1e11", "1e22", "1e23", "1e-22", "1e-23", "123456e-6", "-1.5e-3", "0.123456",
        "1.00000005960464477539062", "1.0000000596046447753906250", "1.0000000596046447753906251",
        "1.0000000596046447753906249", "1.00000017881393432617187499",
        "1.000000178813934326171875", "1.00000017881393432617187501", "0.50000002980232238769531250",
        "3.00000011920928955078125", "8388608.5", "8388609.5", "16777217.0", "1E5", "1e+5", "1E-5",
        "inf", "INF", "-inf", "+Inf", "infinity", "-Infinity", "INFINITY", "nan", "NaN", "-nan",
        "+NAN", "4.7019774032891500318749461488889827112746622270883500860350068251e-38",
        "1.0000000000000000000000000000000000000000000000000000000000001",
        "0.99999999999999999999999999999999999999999999999999999999999999",
        "00000000000000000000000000000000000000000000000000000000001.5",
        "0.0000000000000000000000000000000000000000000000000000000000001",
        "123456789012345678901234567890123456789012345678901234567890e-40",
        ("2.3509885615147285834557659820715330266457179855179808553659262368500061299303460771"
         "48792575381598612440051208651e-38")};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_same(cases[i]);
}

static void test_specific_values(void **state)
{
    (void)state;
    float f = 0;
    assert_int_equal(tg_parse_float("3.4028236e38", 12, &f), 0);
    assert_true(isinf(f) && f > 0);
    assert_int_equal(tg_parse_float("1.4e-45", 7, &f), 0);
    assert_int_equal(bits_of(f), 1);
    assert_int_equal(tg_parse_float("-0", 2, &f), 0);
    assert_int_equal(bits_of(f), 0x80000000u);
    assert_int_equal(tg_parse_float("1e-400", 6, &f), 0);
    assert_int_equal(bits_of(f), 0);
    assert_int_equal(tg_parse_float("nan", 3, &f), 0);
    assert_true(isnan(f));
    /* The span is the input: trailing bytes beyond len are not looked at. */
    assert_int_equal(tg_parse_float("1.5xyz", 3, &f), 0);
    assert_true(f == 1.5f);
}

static void test_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "-", "+", ".", "-.", "+.e1", "e5", "E5", "1e", "1e+",
                                      "1e-", "1.2.3", "0x10", "0X1p3", "1 ", " 1", "1,5",
                                      "nan(123)", "nanx", "infin", "in", "na", "--1", "+-1",
                                      "1e5.5", "1.5f", "1_000", "abc", "1e 5", "\t1", "١"};
    float f = 42.0f;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (tg_parse_float(bad[i], strlen(bad[i]), &f) == 0) {
            print_error("accepted \"%s\"\n", bad[i]);
            fail();
        }
    }
    assert_true(f == 42.0f); /* untouched on failure */
    assert_int_not_equal(tg_parse_float(NULL, 0, &f), 0);
}

/* Every float next to a power of two, and the halfway points between neighbours, written out
 * exactly, then nudged by one unit in the last or a far digit. */
static void check_halfway_family(float a)
{
    float b = nextafterf(a, INFINITY);
    if (isinf(b))
        return;
    double mid = ((double)a + (double)b) / 2; /* exact: 25 significant bits */
    char s[256];
    snprintf(s, sizeof s, "%.120e", mid);
    expect_same(s);
    /* Truncations of the exact expansion land on either side of the midpoint. */
    char *e = strchr(s, 'e');
    for (int keep = 9; keep < 60; keep += 7) {
        char t[256];
        snprintf(t, sizeof t, "%.*s%s", keep + 2, s, e);
        expect_same(t);
        snprintf(t, sizeof t, "%.*s1%s", keep + 2, s, e);
        expect_same(t);
    }
    snprintf(s, sizeof s, "%.9g", mid);
    expect_same(s);
    snprintf(s, sizeof s, "%.17g", mid);
    expect_same(s);
}

static void test_halfway_cases(void **state)
{
    (void)state;
    for (int ex = -149; ex <= 127; ex++) {
        float p = ldexpf(1.0f, ex);
        check_halfway_family(p);
        check_halfway_family(nextafterf(p, 0.0f));
        check_halfway_family(nextafterf(p, INFINITY));
    }
    check_halfway_family(0.0f);
    check_halfway_family(FLT_MAX); /* no neighbour: skipped */
    check_halfway_family(nextafterf(FLT_MAX, 0.0f));
    /* The midpoint above FLT_MAX decides between FLT_MAX and infinity. */
    expect_same("340282356779733661637539395458142568448");
    expect_same("340282356779733661637539395458142568447");
    expect_same("340282356779733661637539395458142568449");
}

static uint64_t rng_state;

static uint64_t rng(void)
{
    /* splitmix64: small, seeded, the same sequence everywhere */
    uint64_t z = (rng_state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static int rnd(int n) { return (int)(rng() % (uint64_t)n); }

static void random_digits(char *s, size_t cap)
{
    size_t n = 0;
    int r = rnd(4);
    if (r == 0)
        s[n++] = '-';
    else if (r == 1)
        s[n++] = '+';
    int ni = rnd(3) == 0 ? rnd(60) : rnd(12), nf = rnd(3) == 0 ? rnd(60) : rnd(12);
    if (ni + nf == 0)
        ni = 1;
    for (int i = 0; i < ni; i++)
        s[n++] = (char)('0' + (rnd(8) == 0 ? 0 : rnd(10)));
    if (nf > 0 || rnd(8) == 0)
        s[n++] = '.';
    for (int i = 0; i < nf; i++)
        s[n++] = (char)('0' + rnd(10));
    if (rnd(2)) {
        int span = rnd(4) == 0 ? 500 : 60;
        n += (size_t)snprintf(s + n, cap - n, "%c%d", rnd(2) ? 'e' : 'E', rnd(2 * span + 1) - span);
    }
    s[n] = '\0';
}

static void test_random(void **state)
{
    (void)state;
    rng_state = 20240611;
    static const char *const fmts[] = {"%.9g", "%.17g", "%.6g", "%.8e", "%.3g", "%.12f", "%.1f"};
    char s[256];
    long accepted = 0;
    for (int i = 0; i < 400000; i++) { /* random float bits, printed several ways */
        float f = float_of((uint32_t)rng());
        if (isnan(f) || isinf(f))
            continue;
        const char *fmt = fmts[rnd(7)];
        if (fmt[3] == 'f' && fabsf(f) > 1e30f)
            fmt = "%.9g";
        snprintf(s, sizeof s, fmt, (double)f);
        accepted += check_same(s);
    }
    for (int i = 0; i < 200000; i++) { /* random doubles: digits that are not float-shaped */
        uint64_t b = rng();
        double d;
        memcpy(&d, &b, sizeof d);
        if (isnan(d) || isinf(d))
            continue;
        snprintf(s, sizeof s, "%.17g", d);
        accepted += check_same(s);
    }
    for (int i = 0; i < 300000; i++) { /* random digit strings of random lengths and exponents */
        random_digits(s, sizeof s);
        expect_same(s);
        accepted++;
    }
    for (int i = 0; i < 150000; i++) { /* typical CSV values: short decimals */
        snprintf(s, sizeof s, "%s%d.%0*d", rnd(2) ? "-" : "", rnd(1000), rnd(8) + 1,
                 rnd(100000000));
        expect_same(s);
        accepted++;
    }
    print_message("%ld random strings matched strtof\n", accepted);
    assert_true(accepted >= 1000000);
}

static void test_locale_independent(void **state)
{
    (void)state;
    /* If a comma-decimal locale is installed, "1.5" must still be 1.5. */
    const char *names[] = {"de_DE.UTF-8", "fr_FR.UTF-8", "de_DE", "ru_RU.UTF-8"};
    for (size_t i = 0; i < 4; i++) {
        if (!setlocale(LC_NUMERIC, names[i]))
            continue;
        float f = 0;
        assert_int_equal(tg_parse_float("1.5", 3, &f), 0);
        assert_true(f == 1.5f);
        assert_int_equal(tg_parse_float("1.00000000000000000000000000001", 31, &f), 0);
        assert_true(f == 1.0f);
        assert_int_equal(tg_parse_float("3.4028236e38", 12, &f), 0);
        assert_true(isinf(f));
        setlocale(LC_NUMERIC, "C");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_edge_cases),      cmocka_unit_test(test_specific_values),
        cmocka_unit_test(test_rejects),         cmocka_unit_test(test_halfway_cases),
        cmocka_unit_test(test_random),          cmocka_unit_test(test_locale_independent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
