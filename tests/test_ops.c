/* Forward values of every op against a double-precision reference computed here from the same
 * float inputs, on broadcast and strided inputs; NaN/inf behaviour as PyTorch 1.13 defines it;
 * summation accuracy; in-place ops on strided views; printing. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "gradcheck.h"
#include "tapegrad.h"
#include "parallel.h"

/* Tolerances against the double reference. Correctly rounded float ops are within half an ulp
 * (6e-8 relative); 4 ulps leave room for SIMD kernels that are not correctly rounded. The
 * transcendental functions get 2e-6 (~16 ulps) plus a small absolute term for results near 0
 * (e.g. cos near pi/2), which covers vectorised approximations yet catches a wrong formula. */
#define RTOL_ARITH 2.5e-7
#define RTOL_TRANS 2e-6
#define ATOL_TRANS 1e-6

/* ---- helpers ---- */

/* Compares t's values with want[] (double) and its shape with [ndim, shape]. */
static void expect_values(const tg_tensor *t, int ndim, const int64_t *shape, const double *want,
                          double rtol, double atol, const char *what)
{
    if (!t)
        fail_msg("%s: NULL result: %s", what, tg_last_error());
    assert_int_equal(tg_ndim(t), ndim);
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        assert_int_equal(tg_shape(t)[i], shape[i]);
        n *= shape[i];
    }
    float *v = tg_test_values(t);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++)
        if (!tg_test_close(v[i], want[i], rtol, atol))
            fail_msg("%s: element %lld is %.9g, reference %.9g", what, (long long)i, (double)v[i],
                     want[i]);
    free(v);
}

static double *alloc_doubles(int64_t n)
{
    return malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
}

static int64_t numel_of(int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    return n;
}

/* A seeded tensor seen through a layout: the base is built so the view has `shape`. */
typedef enum { PLAIN, TRANSPOSED, NARROWED } layout;

static tg_tensor *make_input(int ndim, const int64_t *shape, layout l, uint64_t seed, float lo,
                             float hi)
{
    int64_t bs[TG_MAX_DIMS];
    memcpy(bs, shape, (size_t)ndim * sizeof *bs);
    if (l == TRANSPOSED) {
        bs[ndim - 1] = shape[ndim - 2];
        bs[ndim - 2] = shape[ndim - 1];
        return tg_transpose(tg_test_tensor(ndim, bs, seed, lo, hi), -1, -2);
    }
    if (l == NARROWED) {
        bs[ndim - 1] += 5;
        return tg_narrow(tg_test_tensor(ndim, bs, seed, lo, hi), -1, 2, shape[ndim - 1]);
    }
    return tg_test_tensor(ndim, shape, seed, lo, hi);
}

/* ---- elementwise unary ---- */

typedef struct {
    const char *name;
    tg_tensor *(*f)(tg_tensor *);
    double (*ref)(double);
    float lo, hi;
    double rtol, atol;
} unary_case;

static double ref_neg(double x)
{
    return -x;
}
static double ref_sigmoid(double x)
{
    return 1.0 / (1.0 + exp(-x));
}
static double ref_relu(double x)
{
    return x > 0 ? x : 0;
}

static void test_unary_values(void **state)
{
    (void)state;
    const unary_case cases[] = {
        {"neg", tg_neg, ref_neg, -5, 5, 0, 0},
        {"exp", tg_exp, exp, -20, 20, RTOL_TRANS, 0},
        {"log", tg_log, log, 1e-3f, 100, RTOL_TRANS, ATOL_TRANS},
        {"sin", tg_sin, sin, -10, 10, RTOL_TRANS, ATOL_TRANS},
        {"cos", tg_cos, cos, -10, 10, RTOL_TRANS, ATOL_TRANS},
        {"tanh", tg_tanh, tanh, -6, 6, RTOL_TRANS, ATOL_TRANS},
        {"sigmoid", tg_sigmoid, ref_sigmoid, -20, 20, RTOL_TRANS, ATOL_TRANS},
        {"relu", tg_relu, ref_relu, -5, 5, 0, 0},
        {"sqrt", tg_sqrt, sqrt, 0, 100, RTOL_ARITH, 0},
        {"abs", tg_abs, fabs, -5, 5, 0, 0},
    };
    /* 1003 elements: every SIMD body plus a tail; then strided inputs of two layouts */
    const int64_t shapes[3][2] = {{17, 59}, {17, 59}, {9, 13}};
    const layout layouts[3] = {PLAIN, TRANSPOSED, NARROWED};
    tg_scope_begin();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int l = 0; l < 3; l++) {
            tg_tensor *x = make_input(2, shapes[l], layouts[l], 10 * c + (uint64_t)l, cases[c].lo,
                                      cases[c].hi);
            int64_t n = tg_numel(x);
            float *xv = tg_test_values(x);
            double *want = alloc_doubles(n);
            for (int64_t i = 0; i < n; i++)
                want[i] = cases[c].ref(xv[i]);
            expect_values(cases[c].f(x), 2, shapes[l], want, cases[c].rtol, cases[c].atol,
                          cases[c].name);
            free(xv), free(want);
        }
    }
    tg_scope_end();
}

typedef struct {
    const char *name;
    int kind; /* 0 add_scalar, 1 mul_scalar, 2 rsub_scalar, 3 pow_scalar, 4 clamp */
    float s, s2;
    float lo, hi;
    double rtol;
} scalar_case;

static double scalar_ref(const scalar_case *c, double x)
{
    switch (c->kind) {
    case 0:
        return x + c->s;
    case 1:
        return x * c->s;
    case 2:
        return c->s - x;
    case 3:
        return pow(x, c->s);
    default:
        return isnan(c->s)    ? fmin(x, c->s2)
               : isnan(c->s2) ? fmax(x, c->s)
                              : fmin(fmax(x, c->s), c->s2);
    }
}

static tg_tensor *scalar_call(const scalar_case *c, tg_tensor *x)
{
    switch (c->kind) {
    case 0:
        return tg_add_scalar(x, c->s);
    case 1:
        return tg_mul_scalar(x, c->s);
    case 2:
        return tg_rsub_scalar(c->s, x);
    case 3:
        return tg_pow_scalar(x, c->s);
    default:
        return tg_clamp(x, c->s, c->s2);
    }
}

static void test_scalar_operand_values(void **state)
{
    (void)state;
    const scalar_case cases[] = {
        {"add_scalar", 0, 1.5f, 0, -5, 5, RTOL_ARITH},
        {"mul_scalar", 1, -2.25f, 0, -5, 5, RTOL_ARITH},
        {"rsub_scalar", 2, 3.0f, 0, -5, 5, RTOL_ARITH},
        {"pow 2", 3, 2.0f, 0, -4, 4, RTOL_ARITH},
        {"pow 3", 3, 3.0f, 0, -4, 4, RTOL_ARITH},
        {"pow 0.5", 3, 0.5f, 0, 0, 9, RTOL_ARITH},
        {"pow -1", 3, -1.0f, 0, 0.1f, 9, RTOL_ARITH},
        {"pow -2", 3, -2.0f, 0, 0.1f, 9, RTOL_ARITH},
        {"pow 1.5", 3, 1.5f, 0, 0, 9, RTOL_TRANS},
        {"pow -0.7", 3, -0.7f, 0, 0.1f, 9, RTOL_TRANS},
        {"pow 0", 3, 0.0f, 0, -4, 4, 0},
        {"clamp", 4, -0.5f, 0.75f, -2, 2, 0},
        {"clamp min", 4, -0.5f, NAN, -2, 2, 0},
        {"clamp max", 4, NAN, 0.25f, -2, 2, 0},
    };
    const int64_t shape[2] = {13, 77};
    tg_scope_begin();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (int l = 0; l < 2; l++) {
            tg_tensor *x =
                make_input(2, shape, l ? TRANSPOSED : PLAIN, 200 + c, cases[c].lo, cases[c].hi);
            float *xv = tg_test_values(x);
            double *want = alloc_doubles(tg_numel(x));
            for (int64_t i = 0; i < tg_numel(x); i++)
                want[i] = scalar_ref(&cases[c], xv[i]);
            expect_values(scalar_call(&cases[c], x), 2, shape, want, cases[c].rtol, 0,
                          cases[c].name);
            free(xv), free(want);
        }
    }
    tg_scope_end();
}

/* ---- binary ops with broadcasting ---- */

typedef struct {
    const char *name;
    tg_tensor *(*f)(tg_tensor *, tg_tensor *);
    int op; /* 0 add, 1 sub, 2 mul, 3 div, 4 pow */
    float blo, bhi;
    double rtol;
} binary_case;

static double binary_ref(int op, double a, double b)
{
    switch (op) {
    case 0:
        return a + b;
    case 1:
        return a - b;
    case 2:
        return a * b;
    case 3:
        return a / b;
    default:
        return pow(a, b);
    }
}

/* Broadcast reference: out[idx] = a[idx'] op b[idx''] with NumPy's rules, done independently of
 * the library (right-aligned shapes, size-1 dims repeat). */
static void check_broadcast(const binary_case *c, tg_tensor *a, tg_tensor *b, int ndim,
                            const int64_t *shape)
{
    float *av = tg_test_values(a), *bv = tg_test_values(b);
    int64_t n = numel_of(ndim, shape);
    double *want = alloc_doubles(n);
    int an = tg_ndim(a), bn = tg_ndim(b);
    for (int64_t i = 0; i < n; i++) {
        int64_t rem = i, ia = 0, ib = 0, sa = 1, sb = 1;
        for (int d = ndim - 1; d >= 0; d--) {
            int64_t idx = rem % shape[d];
            rem /= shape[d];
            int da = d - (ndim - an), db = d - (ndim - bn);
            if (da >= 0) {
                int64_t size = tg_shape(a)[da];
                ia += (size == 1 ? 0 : idx) * sa;
                sa *= size;
            }
            if (db >= 0) {
                int64_t size = tg_shape(b)[db];
                ib += (size == 1 ? 0 : idx) * sb;
                sb *= size;
            }
        }
        want[i] = binary_ref(c->op, av[ia], bv[ib]);
    }
    char what[64];
    snprintf(what, sizeof what, "%s %dd", c->name, ndim);
    expect_values(c->f(a, b), ndim, shape, want, c->rtol, 0, what);
    free(av), free(bv), free(want);
}

static void test_binary_broadcast_values(void **state)
{
    (void)state;
    const binary_case cases[] = {
        {"add", tg_add, 0, -5, 5, RTOL_ARITH}, {"sub", tg_sub, 1, -5, 5, RTOL_ARITH},
        {"mul", tg_mul, 2, -5, 5, RTOL_ARITH}, {"div", tg_div, 3, 0.5f, 5, RTOL_ARITH},
        {"pow", tg_pow, 4, -3, 3, RTOL_TRANS},
    };
    typedef struct {
        int an, bn, on;
        int64_t as[3], bs[3], os[3];
        layout la, lb;
    } pattern;
    const pattern patterns[] = {
        {2, 2, 2, {7, 37}, {7, 37}, {7, 37}, PLAIN, PLAIN},
        {2, 1, 2, {7, 37}, {37}, {7, 37}, PLAIN, PLAIN},         /* row */
        {2, 2, 2, {7, 37}, {7, 1}, {7, 37}, PLAIN, PLAIN},       /* column */
        {2, 2, 2, {7, 1}, {7, 37}, {7, 37}, PLAIN, NARROWED},    /* column first */
        {2, 0, 2, {7, 37}, {0}, {7, 37}, TRANSPOSED, PLAIN},     /* scalar */
        {0, 2, 2, {0}, {7, 37}, {7, 37}, PLAIN, TRANSPOSED},     /* scalar first */
        {2, 2, 2, {5, 1}, {1, 33}, {5, 33}, PLAIN, PLAIN},       /* outer */
        {3, 2, 3, {4, 1, 19}, {6, 1}, {4, 6, 19}, PLAIN, PLAIN}, /* 3-d middle */
        {3, 3, 3, {4, 6, 19}, {4, 1, 19}, {4, 6, 19}, NARROWED, PLAIN},
        {3, 3, 3, {4, 6, 19}, {1, 6, 19}, {4, 6, 19}, TRANSPOSED, TRANSPOSED},
        {2, 2, 2, {7, 37}, {7, 37}, {7, 37}, TRANSPOSED, NARROWED}, /* strided both */
        {1, 1, 1, {1}, {40}, {40}, PLAIN, PLAIN},
    };
    tg_scope_begin();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float alo = c == 4 ? 0.1f : -5, ahi = 5; /* pow: positive bases */
        for (size_t p = 0; p < sizeof patterns / sizeof patterns[0]; p++) {
            const pattern *q = &patterns[p];
            tg_tensor *a = make_input(q->an, q->as, q->la, 300 + p, alo, ahi);
            tg_tensor *b = make_input(q->bn, q->bs, q->lb, 400 + p, cases[c].blo, cases[c].bhi);
            check_broadcast(&cases[c], a, b, q->on, q->os);
        }
    }
    tg_scope_end();
}

static float float_op(int op, float x, float y)
{
    return op == 0 ? x + y : op == 1 ? x - y : op == 2 ? x * y : x / y;
}

/* Row ([R, w] op [w]) and column ([R, w] op [R, 1]) broadcasts over narrow rows go through a
 * blocked path: each element is still one IEEE operation, so the results must be exactly the
 * float operation's, for either operand order, at every width around the block size and the
 * narrow limit, and over enough rows to be split across threads. */
static void test_narrow_broadcast_bits(void **state)
{
    (void)state;
    tg_tensor *(*const fn[4])(tg_tensor *, tg_tensor *) = {tg_add, tg_sub, tg_mul, tg_div};
    const int64_t widths[] = {2, 3, 4, 5, 7, 8, 16, 17, 63, 64, 127, 128, 300, 511, 512};
    const int64_t rows[] = {3, 257, 9001};
    int saved = tg_get_num_threads();
    tg_set_num_threads(3);
    tg_scope_begin();
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++)
        for (size_t ri = 0; ri < sizeof rows / sizeof *rows; ri++) {
            int64_t w = widths[wi], r = rows[ri], n = r * w;
            tg_tensor *full = make_input(2, (int64_t[]){r, w}, PLAIN, 7 + wi, -5, 5);
            tg_tensor *row = make_input(1, (int64_t[]){w}, PLAIN, 8 + ri, 0.5f, 5);
            tg_tensor *col = make_input(2, (int64_t[]){r, 1}, PLAIN, 9 + wi, 0.5f, 5);
            const float *fv = tg_data(full), *rv = tg_data(row), *cv = tg_data(col);
            float *want = malloc((size_t)n * sizeof *want);
            for (int op = 0; op < 4; op++)
                for (int pattern = 0; pattern < 4; pattern++) {
                    bool column = pattern & 1, bc_first = pattern & 2;
                    for (int64_t i = 0; i < n; i++) {
                        float x = fv[i], y = column ? cv[i / w] : rv[i % w];
                        want[i] = bc_first ? float_op(op, y, x) : float_op(op, x, y);
                    }
                    tg_tensor *bc = column ? col : row;
                    tg_tensor *got = bc_first ? fn[op](bc, full) : fn[op](full, bc);
                    assert_non_null(got);
                    assert_int_equal(tg_numel(got), n);
                    if (memcmp(tg_data(got), want, (size_t)n * sizeof *want) != 0) {
                        print_error("op %d, %s%s, [%lld, %lld]: not the float results\n", op,
                                    column ? "column" : "row", bc_first ? " first" : "",
                                    (long long)r, (long long)w);
                        fail();
                    }
                }
            free(want);
        }
    tg_scope_end();
    tg_set_num_threads(saved);
}

/* Broadcasts that leave short runs to the N-d walk ([A, B, C] op [1, B, 1], [A, 1, C] op
 * [1, B, 1], and the operands swapped) hand the kernels blocks of runs: every element must
 * still be exactly the float operation's, for run lengths around the SIMD widths, over enough
 * elements to be split across threads. */
static void test_short_run_broadcast_bits(void **state)
{
    (void)state;
    tg_tensor *(*const fn[4])(tg_tensor *, tg_tensor *) = {tg_add, tg_sub, tg_mul, tg_div};
    const int64_t inner[] = {1, 2, 3, 4, 7, 16, 17, 33};
    int saved = tg_get_num_threads();
    tg_set_num_threads(3);
    tg_scope_begin();
    for (size_t ii = 0; ii < sizeof inner / sizeof *inner; ii++)
        for (int kind = 0; kind < 2; kind++) {
            /* kind 0: [A, B, C] op [1, B, 1]; kind 1: [A, 1, C] op [1, B, 1] */
            int64_t A = 37, B = 1031, C = inner[ii];
            int64_t fs[3] = {A, kind ? 1 : B, C}, bs[3] = {1, B, 1}, n = A * B * C;
            tg_tensor *full = make_input(3, fs, PLAIN, 11 + ii, -5, 5);
            tg_tensor *mid = make_input(3, bs, PLAIN, 12 + ii, 0.5f, 5);
            const float *fv = tg_data(full), *mv = tg_data(mid);
            float *want = malloc((size_t)n * sizeof *want);
            for (int op = 0; op < 4; op++)
                for (int swap = 0; swap < 2; swap++) {
                    for (int64_t i = 0; i < n; i++) {
                        int64_t a = i / (B * C), b = i / C % B, c = i % C;
                        float x = fv[(a * fs[1] + (kind ? 0 : b)) * C + c], y = mv[b];
                        want[i] = swap ? float_op(op, y, x) : float_op(op, x, y);
                    }
                    tg_tensor *got = swap ? fn[op](mid, full) : fn[op](full, mid);
                    assert_non_null(got);
                    assert_int_equal(tg_numel(got), n);
                    if (memcmp(tg_data(got), want, (size_t)n * sizeof *want) != 0) {
                        print_error("op %d%s, kind %d, inner %lld: not the float results\n", op,
                                    swap ? " swapped" : "", kind, (long long)C);
                        fail();
                    }
                }
            free(want);
        }
    tg_scope_end();
    tg_set_num_threads(saved);
}

static void test_pow_special_cases(void **state)
{
    (void)state;
    /* torch.pow semantics (C pow): negative base with integral exponent is fine, with a
     * fractional one NaN; 0^0 = 1; 0^-1 = inf */
    tg_scope_begin();
    const float a[6] = {-2, -2, 0, 0, 4, -8};
    const float b[6] = {3, 0.5f, 0, -1, 0.5f, 2};
    tg_tensor *r = tg_pow(tg_from_data(a, 1, (int64_t[]){6}), tg_from_data(b, 1, (int64_t[]){6}));
    expect_values(r, 1, (int64_t[]){6}, (double[]){-8, NAN, 1, INFINITY, 2, 64}, 1e-7, 0, "pow");
    tg_scope_end();
}

/* ---- reductions ---- */

static void test_reduction_values(void **state)
{
    (void)state;
    tg_scope_begin();
    const int64_t shape[3] = {5, 6, 37};
    for (int l = 0; l < 3; l++) {
        tg_tensor *x = make_input(3, shape, (layout)l, 500 + (uint64_t)l, -1, 1);
        float *xv = tg_test_values(x);
        double total = 0;
        for (int64_t i = 0; i < tg_numel(x); i++)
            total += xv[i];
        expect_values(tg_sum(x), 0, NULL, (double[]){total}, 1e-5, 1e-5, "sum");
        expect_values(tg_mean(x), 0, NULL, (double[]){total / 1110}, 1e-5, 1e-6, "mean");
        for (int d = 0; d < 3; d++) {
            int64_t os[3], ks[3];
            int on = 0;
            for (int i = 0; i < 3; i++) {
                ks[i] = i == d ? 1 : shape[i];
                if (i != d)
                    os[on++] = shape[i];
            }
            double *want = alloc_doubles(numel_of(2, os));
            for (int64_t o = 0; o < numel_of(2, os); o++)
                want[o] = 0;
            for (int64_t i0 = 0; i0 < shape[0]; i0++)
                for (int64_t i1 = 0; i1 < shape[1]; i1++)
                    for (int64_t i2 = 0; i2 < shape[2]; i2++) {
                        int64_t idx[3] = {i0, i1, i2}, o = 0;
                        for (int k = 0; k < 3; k++)
                            if (k != d)
                                o = o * shape[k] + idx[k];
                        want[o] += xv[(i0 * shape[1] + i1) * shape[2] + i2];
                    }
            expect_values(tg_sum_dim(x, d, false), 2, os, want, 1e-5, 1e-5, "sum_dim");
            expect_values(tg_sum_dim(x, d - 3, true), 3, ks, want, 1e-5, 1e-5, "sum_dim keep");
            for (int64_t o = 0; o < numel_of(2, os); o++)
                want[o] /= (double)shape[d];
            expect_values(tg_mean_dim(x, d, true), 3, ks, want, 1e-5, 1e-6, "mean_dim keep");
            expect_values(tg_mean_dim(x, d - 3, false), 2, os, want, 1e-5, 1e-6, "mean_dim");
            free(want);
        }
        free(xv);
    }
    tg_scope_end();
}

static void test_sum_accuracy_one_million(void **state)
{
    (void)state;
    const int64_t n = 1000000;
    tg_scope_begin();
    /* 0.1f a million times: a float accumulator running left to right ends near 100958
     * (1% off); pairwise/blocked summation must stay within a few ulps of the exact value. */
    tg_tensor *c = tg_full(1, &n, 0.1f);
    double exact = 1e6 * (double)0.1f;
    double got = tg_item(tg_sum(c));
    assert_true(fabs(got - exact) / exact < 1e-6);
    assert_true(fabs(tg_item(tg_mean(c)) - (double)0.1f) < 1e-7);
    /* the same along an outer dim: torch.full((1000000, 2), 0.1).sum(0) gives 99999.945 */
    tg_tensor *c2 = tg_full(2, (int64_t[]){n, 2}, 0.1f);
    float col[2];
    tg_copy_to(tg_sum_dim(c2, 0, false), col, 2);
    assert_true(fabs(col[0] - exact) / exact < 1e-6 && fabs(col[1] - exact) / exact < 1e-6);
    tg_copy_to(tg_mean_dim(tg_transpose(c2, 0, 1), -1, true), col, 2);
    assert_true(fabs(col[0] - (double)0.1f) < 1e-7 && fabs(col[1] - (double)0.1f) < 1e-7);
    tg_tensor *r = tg_rand(1, &n, 99);
    float *rv = tg_data(r);
    double ref = 0;
    for (int64_t i = 0; i < n; i++)
        ref += rv[i];
    assert_true(fabs(tg_item(tg_sum(r)) - ref) / ref < 1e-6);
    /* the same through sum_dim on a row, and on a transposed (strided) matrix */
    tg_tensor *row = tg_reshape(r, 2, (int64_t[]){1, n});
    assert_true(fabs(tg_item(tg_sum_dim(row, 1, false)) - ref) / ref < 1e-6);
    tg_tensor *t = tg_transpose(tg_reshape(r, 2, (int64_t[]){1000, 1000}), 0, 1);
    assert_true(fabs(tg_item(tg_sum(t)) - ref) / ref < 1e-6);
    tg_tensor *cols = tg_sum_dim(t, 0, false);
    float *cv = tg_test_values(cols);
    for (int64_t j = 0; j < 1000; j += 111) {
        double s = 0;
        for (int64_t i = 0; i < 1000; i++)
            s += rv[j * 1000 + i];
        assert_true(fabs(cv[j] - s) / s < 1e-5);
    }
    free(cv);
    tg_scope_end();
}

/* A long sum adds its blocks' partial sums in double and rounds once. 16M elements are cut
 * into 1024 blocks of 16384; each block here holds one nonzero value, so its sum is exact:
 * 2^24 in the first, 0.5 in each other. The exact total 16777727.5 rounds to 16777728; adding
 * the partials pairwise in float loses the first halves to ties-to-even at 2^24 (16777726). */
static void test_sum_of_exact_blocks(void **state)
{
    (void)state;
    const int64_t n = (int64_t)1 << 24, stride = n / 1024;
    tg_scope_begin();
    tg_tensor *x = tg_zeros(1, &n);
    float *v = tg_data(x);
    v[0] = 16777216.0f;
    for (int64_t b = 1; b < 1024; b++)
        v[b * stride] = 0.5f;
    for (int threads = 1; threads <= 3; threads++) {
        tg_set_num_threads(threads);
        assert_true(tg_item(tg_sum(x)) == 16777728.0f);
    }
    tg_set_num_threads(0);
    tg_scope_end();
}

/* A sum along a dim of one broadcast value (as the gradient of a sum reaches a broadcast
 * input) is computed once and spread, not summed over a materialized tensor: it must give the
 * bits the dense tensor gives, on every reduction path (short rows, long rows, columns summed
 * by halving, wide single slices, pieces of one long column) and thread count. */
static void test_sum_dim_of_broadcast_value(void **state)
{
    (void)state;
    const struct {
        int ndim;
        int64_t shape[3];
    } cases[] = {
        {3, {7, 70, 130}}, {2, {3, 2000}}, {2, {300000, 2}}, {2, {40, 1100}}, {2, {9, 1}},
    };
    const float values[] = {0.1f, 1.0f / 3.0f, -2.5e-3f};
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
            for (size_t v = 0; v < sizeof values / sizeof values[0]; v++)
                for (int d = 0; d < cases[c].ndim; d++)
                    for (int mean = 0; mean < 2; mean++) {
                        tg_scope_begin();
                        const int64_t *sh = cases[c].shape;
                        int nd = cases[c].ndim;
                        tg_tensor *b = tg_expand(tg_scalar(values[v]), nd, sh);
                        tg_tensor *dense = tg_full(nd, sh, values[v]);
                        tg_tensor *got = mean ? tg_mean_dim(b, d, false) : tg_sum_dim(b, d, false);
                        tg_tensor *want =
                            mean ? tg_mean_dim(dense, d, false) : tg_sum_dim(dense, d, false);
                        assert_non_null(got);
                        assert_non_null(want);
                        assert_int_equal(tg_numel(got), tg_numel(want));
                        float *g = tg_test_values(got), *w = tg_test_values(want);
                        for (int64_t i = 0; i < tg_numel(got); i++)
                            if (memcmp(&g[i], &w[i], sizeof(float)) != 0)
                                fail_msg("case %zu dim %d mean %d, %d threads: %a, dense %a", c, d,
                                         mean, th, g[i], w[i]);
                        free(g), free(w);
                        tg_scope_end();
                    }
    }
    tg_set_num_threads(0);
}

/* MSE runs its forward and backward block by block; the floats must be those of the plain
 * composition sum((x - t)^2) (/ n) and ((x - t) * 2) * g, for a single block, several blocks,
 * many blocks over threads, and strided inputs; for 'none' too, through a dense gradient. */
static void test_mse_matches_composition(void **state)
{
    (void)state;
    const int64_t sizes[][2] = {{10, 10}, {50, 100}, {1001, 1003}};
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++)
            for (int r = 0; r < 3; r++)
                for (int strided = 0; strided < 2; strided++) {
                    tg_scope_begin();
                    tg_tensor *x = tg_requires_grad_(tg_randn(2, sizes[k], 21 + k), true);
                    tg_tensor *t0 = tg_randn(2, (int64_t[]){sizes[k][1], sizes[k][0]}, 5);
                    tg_tensor *t = strided ? tg_transpose(t0, 0, 1) : tg_reshape(t0, 2, sizes[k]);
                    tg_tensor *xv = strided ? tg_transpose(tg_transpose(x, 0, 1), 0, 1) : x;
                    tg_tensor *w = tg_rand(2, sizes[k], 9); /* a dense gradient for 'none' */
                    tg_tensor *loss = tg_mse_loss(xv, t, (tg_reduction)r);
                    assert_non_null(loss);
                    tg_tensor *root = r == TG_REDUCE_NONE ? tg_sum(tg_mul(loss, w)) : loss;
                    assert_int_equal(tg_backward(root, NULL, false), TG_OK);
                    /* the composition, with grad off */
                    bool prev = tg_set_grad_enabled(false);
                    tg_tensor *d = tg_sub(x, t), *sq = tg_mul(d, d);
                    tg_tensor *want = r == TG_REDUCE_NONE  ? sq
                                      : r == TG_REDUCE_SUM ? tg_sum(sq)
                                                           : tg_mean(sq);
                    float n = (float)tg_numel(x);
                    tg_tensor *gw = tg_mul_scalar(d, 2.0f);
                    gw = r == TG_REDUCE_NONE   ? tg_mul(gw, w)
                         : r == TG_REDUCE_MEAN ? tg_mul_scalar(gw, 1.0f / n)
                                               : gw;
                    tg_set_grad_enabled(prev);
                    float *a = tg_test_values(loss), *b = tg_test_values(want);
                    float *ga = tg_test_values(tg_grad(x)), *gb = tg_test_values(gw);
                    assert_memory_equal(a, b, sizeof(float) * (size_t)tg_numel(loss));
                    for (int64_t i = 0; i < tg_numel(x); i++)
                        if (memcmp(&ga[i], &gb[i], sizeof(float)) != 0)
                            fail_msg("mse grad r=%d size %zu strided %d th %d at %lld: %a vs %a", r,
                                     k, strided, th, (long long)i, ga[i], gb[i]);
                    free(a), free(b), free(ga), free(gb);
                    tg_scope_end();
                }
    }
    tg_set_num_threads(0);
}

/* Binary ops on operands out of order along the last dim (transposes): large ones are copied
 * in order first, small ones walked element by element; both must give the bits the same op
 * gives on contiguous copies, for every op, with one or both operands transposed or the same
 * tensor twice. */
static void test_binary_on_transposed_operands(void **state)
{
    (void)state;
    tg_tensor *(*const ops[])(tg_tensor *, tg_tensor *) = {tg_add, tg_sub, tg_mul, tg_div, tg_pow};
    const int64_t sizes[][2] = {{30, 17}, {300, 170}}; /* below and above the threading grain */
    for (size_t z = 0; z < 2; z++)
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
            for (int form = 0; form < 3; form++) {
                tg_scope_begin();
                const int64_t *sh = sizes[z], tsh[2] = {sh[1], sh[0]};
                tg_tensor *a = tg_transpose(tg_add_scalar(tg_rand(2, tsh, 3), 0.5f), 0, 1);
                tg_tensor *b = form == 0 ? tg_add_scalar(tg_rand(2, sh, 4), 0.5f)
                               : form == 1
                                   ? tg_transpose(tg_add_scalar(tg_rand(2, tsh, 5), 0.5f), 0, 1)
                                   : a;
                tg_tensor *got = ops[o](a, b);
                tg_tensor *want = ops[o](tg_contiguous(a), tg_contiguous(b));
                assert_non_null(got);
                assert_non_null(want);
                float *g = tg_test_values(got), *w = tg_test_values(want);
                assert_memory_equal(g, w, sizeof(float) * (size_t)(sh[0] * sh[1]));
                free(g), free(w);
                tg_scope_end();
            }
}

static tg_tensor *clamp_both(tg_tensor *x)
{
    return tg_clamp(x, -0.5f, 0.5f);
}
static tg_tensor *clamp_hi(tg_tensor *x)
{
    return tg_clamp(x, NAN, 0.25f);
}
static tg_tensor *pow_3(tg_tensor *x)
{
    return tg_pow_scalar(x, 3.0f);
}
static tg_tensor *pow_half(tg_tensor *x)
{
    return tg_pow_scalar(x, 0.5f);
}

/* The strided views test_unary_on_strided_inputs applies ops to, of a [5 or 17, 300, 170] x. */
static tg_tensor *strided_view(tg_tensor *x, int v)
{
    switch (v) {
    case 0:
    case 1:
        return tg_transpose(x, 1, 2);
    case 2:
        return tg_permute(x, (int[]){2, 0, 1}); /* the dense dim first */
    case 3:
        return tg_transpose(tg_narrow(x, 2, 3, 150), 0, 2);
    case 4:
        return tg_narrow(x, 1, 1, 250); /* rows with gaps */
    default:
        return tg_expand(tg_narrow(x, 1, 0, 1), 3, tg_shape(x));
    }
}

/* One-input ops on strided inputs (transposes, a 3-D permutation, a narrowed view, an
 * expanded one) copy the input into the result and run in place there; every op must give the
 * bits it gives on a contiguous copy, small and large (split across 3 threads), with NaN,
 * infinities, -0 and negatives in the input; and the gradient, which reads the saved input, not
 * the result written over the copy, must be the contiguous copy's too. */
static void test_unary_on_strided_inputs(void **state)
{
    (void)state;
    tg_tensor *(*const ops[])(tg_tensor *) = {tg_neg,     tg_abs,   tg_relu, tg_exp,  tg_log,
                                              tg_sin,     tg_cos,   tg_tanh, tg_sqrt, tg_sigmoid,
                                              clamp_both, clamp_hi, pow_3,   pow_half};
    const size_t nops = sizeof ops / sizeof ops[0];
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (int v = 0; v < 6; v++)
            for (size_t o = 0; o < nops; o++) {
                tg_scope_begin();
                int64_t sh[3] = {v == 0 ? 17 : 5, v == 0 ? 33 : 300, 170};
                tg_tensor *x = tg_mul_scalar(tg_randn(3, sh, 40 + v), 3.0f);
                float *xs = tg_data(x);
                xs[7] = NAN, xs[8] = INFINITY, xs[9] = -INFINITY, xs[10] = -0.0f, xs[11] = 0.0f;
                tg_tensor *l1 = tg_requires_grad_(tg_clone(x), true);
                tg_tensor *l2 = tg_requires_grad_(tg_clone(x), true);
                tg_tensor *a = strided_view(l1, v);
                assert_false(tg_is_contiguous(a));
                tg_tensor *got = ops[o](a), *want = ops[o](tg_contiguous(strided_view(l2, v)));
                assert_non_null(got);
                assert_non_null(want);
                assert_true(tg_is_contiguous(got));
                assert_int_equal(tg_backward(tg_sum(got), NULL, false), TG_OK);
                assert_int_equal(tg_backward(tg_sum(want), NULL, false), TG_OK);
                const tg_tensor *pairs[2][2] = {{got, want}, {tg_grad(l1), tg_grad(l2)}};
                for (int p = 0; p < 2; p++) {
                    float *g = tg_test_values(pairs[p][0]), *w = tg_test_values(pairs[p][1]);
                    for (int64_t i = 0; i < tg_numel(pairs[p][0]); i++)
                        if (memcmp(&g[i], &w[i], sizeof(float)) != 0)
                            fail_msg("op %zu view %d threads %d %s at %lld: %a vs %a", o, v, th,
                                     p ? "grad" : "value", (long long)i, g[i], w[i]);
                    free(g), free(w);
                }
                tg_scope_end();
            }
    }
    tg_set_num_threads(0);
}

/* tg_sum and tg_mean of a transpose or permutation read the memory in order, so they give the
 * bits of the sum of the tensor under the view; a view with gaps (narrowed) or repeats
 * (expanded) gives the bits of its contiguous copy's sum. */
static void test_sum_of_permuted_views(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_randn(3, (int64_t[]){40, 70, 33}, 8);
    float whole = tg_item(tg_sum(x)), avg = tg_item(tg_mean(x));
    tg_tensor *views[] = {tg_transpose(x, 0, 2), tg_permute(x, (int[]){1, 2, 0}),
                          tg_transpose(tg_reshape(x, 2, (int64_t[]){2800, 33}), 0, 1)};
    for (size_t i = 0; i < sizeof views / sizeof views[0]; i++) {
        float s = tg_item(tg_sum(views[i])), m = tg_item(tg_mean(views[i]));
        assert_memory_equal(&s, &whole, sizeof s);
        assert_memory_equal(&m, &avg, sizeof m);
    }
    tg_tensor *gappy = tg_narrow(tg_transpose(x, 0, 2), 0, 1, 20);
    tg_tensor *rep = tg_expand(tg_narrow(x, 0, 0, 1), 3, (int64_t[]){3, 70, 33});
    float a = tg_item(tg_sum(gappy)), b = tg_item(tg_sum(tg_contiguous(gappy)));
    float c = tg_item(tg_sum(rep)), d = tg_item(tg_sum(tg_contiguous(rep)));
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_equal(&c, &d, sizeof c);
    /* Views read through their strides in blocks (many of them: over 4096 elements each), with
     * runs along the last dim of stride 1, of stride 0 (expanded) and of a longer stride. */
    tg_tensor *more[] = {
        tg_narrow(tg_transpose(x, 1, 2), 2, 3, 60),
        tg_expand(tg_narrow(x, 2, 5, 1), 3, (int64_t[]){40, 70, 90}),
        tg_expand(tg_narrow(x, 0, 7, 1), 4, (int64_t[]){5, 3, 70, 33}),
        tg_narrow(tg_narrow(x, 0, 1, 38), 1, 2, 65),
    };
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++) {
        float e = tg_item(tg_sum(more[i])), f = tg_item(tg_sum(tg_contiguous(more[i])));
        float g = tg_item(tg_mean(more[i])), h = tg_item(tg_mean(tg_contiguous(more[i])));
        assert_memory_equal(&e, &f, sizeof e);
        assert_memory_equal(&g, &h, sizeof g);
    }
    tg_scope_end();
}

/* An expanded view is summed without being materialized: 2^26 elements (256 MiB as a copy) over
 * 1024 floats of memory, whole (tg_sum), along its rows (tg_sum_dim of a column expanded to
 * 2^16 columns) and along a middle dim, against double-precision sums, and the process's peak
 * memory does not grow by half a copy. First in the list, while the peak is still low. */
static void test_sum_of_huge_expanded_view(void **state)
{
    (void)state;
    tg_scope_begin();
    const int64_t reps = (int64_t)1 << 16, n = 1024;
    tg_tensor *x = tg_rand(1, &n, 3);
    double want = 0.0;
    for (int64_t i = 0; i < n; i++)
        want += ((const float *)tg_data(x))[i];
    want *= (double)reps;
    struct rusage before, after;
    getrusage(RUSAGE_SELF, &before);
    tg_tensor *s = tg_sum(tg_expand(x, 2, (int64_t[]){reps, n}));
    /* and a column expanded along its rows, summed along them: 1024 rows of 2^16 */
    tg_tensor *col = tg_reshape(x, 2, (int64_t[]){n, 1});
    tg_tensor *rows = tg_sum_dim(tg_expand(col, 2, (int64_t[]){n, reps}), 1, false);
    /* and along a middle dim: [1024, 256, 256], every [256, 256] slice one value */
    tg_tensor *cube = tg_reshape(x, 3, (int64_t[]){n, 1, 1});
    tg_tensor *mid = tg_sum_dim(tg_expand(cube, 3, (int64_t[]){n, 256, 256}), 1, false);
    getrusage(RUSAGE_SELF, &after);
    assert_non_null(mid);
    for (int64_t i = 0; i < n; i++) {
        double w = (double)((const float *)tg_data(x))[i] * 256.0;
        const float *mv = (const float *)tg_data(mid) + i * 256;
        assert_true(fabs((double)mv[0] - w) <= 1e-5 * fabs(w) && mv[255] == mv[0]);
    }
    assert_non_null(s);
    assert_true(fabs((double)tg_item(s) - want) <= 1e-5 * want);
    assert_non_null(rows);
    for (int64_t i = 0; i < n; i++) {
        double w = (double)((const float *)tg_data(x))[i] * (double)reps;
        assert_true(fabs((double)((const float *)tg_data(rows))[i] - w) <= 1e-5 * w);
    }
    assert_true(after.ru_maxrss - before.ru_maxrss < 128 * 1024); /* KiB */
    tg_scope_end();
}

/* sum_dim and mean_dim of a transposed matrix sum the matrix along the other dim: the same
 * floats as that sum (bit for bit), close to a sum of the copy, on 1 and 3 threads. */
static void test_sum_dim_of_transpose(void **state)
{
    (void)state;
    const int64_t shapes[][2] = {{7, 5}, {300, 200}, {2000, 3}};
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++)
            for (int d = 0; d < 2; d++)
                for (int mean = 0; mean < 2; mean++)
                    for (int keep = 0; keep < 2; keep++) {
                        tg_scope_begin();
                        tg_tensor *A = tg_randn(2, shapes[k], 17 + k), *t = tg_transpose(A, 0, 1);
                        tg_tensor *(*f)(tg_tensor *, int, bool) = mean ? tg_mean_dim : tg_sum_dim;
                        tg_tensor *got = f(t, d, keep), *base = f(A, 1 - d, false);
                        tg_tensor *copy = f(tg_contiguous(t), d, keep);
                        assert_non_null(got);
                        assert_int_equal(tg_ndim(got), keep ? 2 : 1);
                        assert_int_equal(tg_shape(got)[keep ? 1 - d : 0], tg_shape(t)[1 - d]);
                        float *g = tg_test_values(got), *b = tg_test_values(base);
                        float *c = tg_test_values(copy);
                        int64_t n = tg_numel(got);
                        assert_memory_equal(g, b, sizeof(float) * (size_t)n);
                        for (int64_t i = 0; i < n; i++)
                            assert_true(fabs(g[i] - c[i]) <= 1e-5 * (1 + fabs(c[i])));
                        free(g), free(b), free(c);
                        tg_scope_end();
                    }
    }
    tg_set_num_threads(0);
}

/* The sum of view v along dim against a double-precision sum of the elements under it, and bit
 * for bit the sum of the view's contiguous copy. v's first element is base's element off0
 * (base contiguous), and its strides say where the others are. */
static void check_sum_dim_of_view(tg_tensor *base, tg_tensor *v, int64_t off0, int dim,
                                  const char *what)
{
    int nd = tg_ndim(v);
    const int64_t *vs = tg_shape(v), *st = tg_strides(v);
    int64_t n = tg_numel(v), on = n / vs[dim];
    const float *xv = tg_data(base);
    double *want = alloc_doubles(on);
    for (int64_t o = 0; o < on; o++)
        want[o] = 0;
    for (int64_t i = 0; i < n; i++) { /* i walks the view in row-major order */
        int64_t rem = i, off = off0, o = 0, scale = 1;
        for (int d = nd - 1; d >= 0; d--) {
            int64_t idx = rem % vs[d];
            rem /= vs[d];
            off += idx * st[d];
            if (d != dim)
                o += idx * scale, scale *= vs[d];
        }
        want[o] += xv[off];
    }
    int64_t os[4];
    for (int d = 0, m = 0; d < nd; d++)
        if (d != dim)
            os[m++] = vs[d];
    tg_tensor *got = tg_sum_dim(v, dim, false);
    expect_values(got, nd - 1, os, want, 1e-5, 1e-5, what);
    float *g = tg_test_values(got);
    float *cp = tg_test_values(tg_sum_dim(tg_contiguous(v), dim, false));
    assert_memory_equal(g, cp, sizeof(float) * (size_t)on);
    free(g), free(cp), free(want);
}

/* A sum along a dim of a permuted view whose other dims keep their memory order is read in
 * place: against a double-precision sum, and bit for bit the sum of the view's contiguous copy,
 * on 1 and 3 threads (3-d and 4-d, the summed dim first, in the middle, outermost in memory). */
static void test_sum_dim_of_permuted_view(void **state)
{
    (void)state;
    typedef struct {
        int ndim;
        int64_t shape[4];
        int perm[4];
        int dim;
    } pcase;
    const pcase cases[] = {
        {3, {6, 300, 40}, {1, 0, 2}, 0}, /* x.transpose(0, 1).sum(0) */
        {3, {6, 300, 40}, {1, 0, 2}, 1},     {3, {300, 6, 3}, {1, 0, 2}, 0},
        {4, {5, 7, 90, 4}, {0, 2, 1, 3}, 1}, {4, {5, 7, 90, 4}, {2, 0, 1, 3}, 0},
        {4, {5, 7, 90, 4}, {2, 0, 1, 3}, 2},
    };
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const pcase *c = &cases[k];
            tg_scope_begin();
            tg_tensor *x = tg_randn(c->ndim, c->shape, 40 + k);
            check_sum_dim_of_view(x, tg_permute(x, c->perm), 0, c->dim, "permuted sum_dim");
            tg_scope_end();
        }
    }
    tg_set_num_threads(0);
}

/* Views with gaps between rows or between slices (narrowed ones, an expanded batch) are summed
 * in place when the dims after the summed one are one dense block: every path of the threaded
 * sum (slices, bands of columns, halves of one long sum) on 1 and 3 threads, and the views that
 * still go through a copy (rows of one float, outer dims that do not step by one stride). */
static void test_sum_dim_of_narrowed_view(void **state)
{
    (void)state;
    typedef struct {
        int ndim;
        int64_t shape[4];
        int ndim_narrowed, start;
        int64_t length;
        int dim;
    } ncase;
    const ncase cases[] = {
        {2, {40000, 4}, 1, 0, 2, 0},      /* column sums of two columns: halves */
        {2, {40000, 20}, 1, 3, 3, 0},     /* three columns from the middle */
        {2, {40, 2100}, 1, 5, 1100, 0},   /* wide: bands of columns */
        {3, {6, 300, 40}, 1, 10, 200, 1}, /* slices with gaps between them */
        {3, {6, 300, 40}, 2, 3, 30, 1},   /* gaps between rows and slices */
        {3, {6, 300, 40}, 2, 3, 30, 0},   /* the outermost dim */
        {4, {4, 5, 60, 8}, 3, 0, 6, 2},   /* two outer dims that step by one stride */
        {4, {4, 10, 60, 8}, 1, 0, 5, 2},  /* two that do not: copied */
        {2, {40000, 4}, 1, 1, 2, 1},      /* rows of two floats, summed along them */
        {3, {6, 300, 40}, 2, 3, 1, 1},    /* one column: copied */
    };
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            const ncase *c = &cases[k];
            tg_scope_begin();
            tg_tensor *x = tg_randn(c->ndim, c->shape, 60 + k);
            tg_tensor *v = tg_narrow(x, c->ndim_narrowed, c->start, c->length);
            assert_false(tg_is_contiguous(v));
            int64_t off0 = c->start * tg_strides(x)[c->ndim_narrowed];
            check_sum_dim_of_view(x, v, off0, c->dim, "narrowed sum_dim");
            tg_scope_end();
        }
        tg_scope_begin(); /* an expanded batch: every slice reads the same memory */
        tg_tensor *x = tg_randn(3, (int64_t[]){1, 500, 70}, 71);
        check_sum_dim_of_view(x, tg_expand(x, 3, (int64_t[]){3, 500, 70}), 0, 1,
                              "expanded sum_dim");
        tg_scope_end();
    }
    tg_set_num_threads(0);
}

/* tanh's gradient near saturation, against PyTorch 1.13's float bits (y, then dy/dx): it
 * computes 1 - y^2 with one fused multiply-add, and rounding y^2 first would be off by
 * hundreds of ULP at x = 4. Where the forward bits match PyTorch's the gradient must too; it
 * is always gy * fmaf(-y, y, 1). */
static void test_tanh_gradient_bits(void **state)
{
    (void)state;
    const struct {
        float x;
        uint32_t y, dx;
    } cases[] = {{4.0f, 0x3f7fd40c, 0x3aafc0e8},
                 {3.0f, 0x3f7ebbe9, 0x3c21a4ed},
                 {-5.5f, 0xbf7ffdd0, 0x388bff67},
                 {0.5f, 0x3eec9a9f, 0x3f4954a3},
                 {8.0f, 0x3f7ffffc, 0x34fffffe}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        tg_scope_begin();
        tg_tensor *x = tg_requires_grad_(tg_from_data(&cases[k].x, 1, (int64_t[]){1}), true);
        tg_tensor *y = tg_tanh(x);
        assert_int_equal(tg_backward(tg_sum(y), NULL, false), TG_OK);
        float yv = tg_item(y), g = tg_item(tg_grad(x)), want = fmaf(-yv, yv, 1.0f);
        uint32_t yb, gb;
        memcpy(&yb, &yv, 4), memcpy(&gb, &g, 4);
        assert_memory_equal(&g, &want, 4);
        if (yb == cases[k].y)
            assert_int_equal(gb, cases[k].dx);
        tg_scope_end();
    }
}

/* Expanded views are summed through their strides, a block of rows (or one row of a slice) at
 * a time, not copied: against a double-precision sum and bit for bit the sum of the contiguous
 * copy, on 1 and 3 threads. Along the last dim: short rows (several row_sums calls), rows
 * longer than one sum block, an expanded outer dim, 3-d, a transposed expansion. Along another:
 * narrow rows (col_sums' order), wide ones, one slice as wide as a band of columns, and an
 * expanded narrowed view. */
static void test_sum_dim_of_expanded_views(void **state)
{
    (void)state;
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        tg_scope_begin();
        tg_tensor *c = tg_randn(2, (int64_t[]){3000, 1}, 91);
        check_sum_dim_of_view(c, tg_expand(c, 2, (int64_t[]){3000, 50}), 0, 1, "short rows");
        tg_tensor *c2 = tg_randn(2, (int64_t[]){200, 1}, 92);
        check_sum_dim_of_view(c2, tg_expand(c2, 2, (int64_t[]){200, 9000}), 0, 1, "long rows");
        tg_tensor *r = tg_randn(2, (int64_t[]){1, 70}, 93);
        check_sum_dim_of_view(r, tg_expand(r, 2, (int64_t[]){400, 70}), 0, 1, "outer");
        tg_tensor *t = tg_randn(3, (int64_t[]){5, 1, 1}, 94);
        check_sum_dim_of_view(t, tg_expand(t, 3, (int64_t[]){5, 7, 30}), 0, 2, "3-d");
        tg_tensor *w = tg_randn(2, (int64_t[]){1, 40}, 95);
        tg_tensor *wt = tg_transpose(tg_expand(w, 2, (int64_t[]){3000, 40}), 0, 1);
        check_sum_dim_of_view(w, wt, 0, 1, "transposed");
        tg_tensor *m = tg_randn(3, (int64_t[]){5, 1, 30}, 96);
        check_sum_dim_of_view(m, tg_expand(m, 3, (int64_t[]){5, 200, 30}), 0, 1, "narrow rows");
        tg_tensor *q = tg_randn(3, (int64_t[]){4, 1, 1}, 97);
        check_sum_dim_of_view(q, tg_expand(q, 3, (int64_t[]){4, 300, 100}), 0, 1, "wide rows");
        tg_tensor *b = tg_randn(2, (int64_t[]){1000, 1}, 98);
        check_sum_dim_of_view(b, tg_expand(b, 2, (int64_t[]){1000, 3000}), 0, 0, "one slice");
        tg_tensor *n = tg_randn(3, (int64_t[]){6, 1, 50}, 99);
        tg_tensor *nv = tg_expand(tg_narrow(n, 2, 10, 20), 3, (int64_t[]){6, 40, 20});
        check_sum_dim_of_view(n, nv, 10, 1, "narrowed");
        check_sum_dim_of_view(n, nv, 10, 0, "narrowed, outermost");
        tg_scope_end();
    }
    tg_set_num_threads(0);
}

/* Copies of views whose rows are a few floats (narrowed columns, the last dim of a 3-d tensor)
 * take the short-row loop; every element must land where the view's strides say, on 1 and 3
 * threads, and so must a narrowed tensor's gradient, written into its window of a zero tensor. */
static void test_copy_of_short_rows(void **state)
{
    (void)state;
    const struct {
        int ndim;
        int64_t shape[3];
        int start;
        int64_t length;
    } cases[] = {{2, {40000, 4}, 0, 2},
                 {2, {30000, 20}, 3, 3},
                 {3, {7, 9000, 6}, 1, 4},
                 {2, {50, 17}, 0, 15}};
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            tg_scope_begin();
            int nd = cases[k].ndim;
            tg_tensor *x = tg_requires_grad_(tg_randn(nd, cases[k].shape, 80 + k), true);
            tg_tensor *v = tg_narrow(x, nd - 1, cases[k].start, cases[k].length);
            tg_tensor *c = tg_contiguous(v);
            assert_true(tg_is_contiguous(c));
            const float *xv = tg_data(x), *cv = tg_data(c);
            int64_t w = cases[k].shape[nd - 1], len = cases[k].length;
            int64_t rows = tg_numel(c) / len;
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < len; i++)
                    if (memcmp(&cv[r * len + i], &xv[r * w + cases[k].start + i], 4) != 0)
                        fail_msg("case %zu threads %d: row %lld col %lld", k, th, (long long)r,
                                 (long long)i);
            /* the gradient of sum(v * v): 2 x inside the window, 0 outside */
            assert_int_equal(tg_backward(tg_sum(tg_mul(c, c)), NULL, false), TG_OK);
            const float *gv = tg_data(tg_grad(x));
            for (int64_t r = 0; r < rows; r++)
                for (int64_t i = 0; i < w; i++) {
                    bool in = i >= cases[k].start && i < cases[k].start + len;
                    float want = in ? 2.0f * xv[r * w + i] : 0.0f;
                    if (memcmp(&gv[r * w + i], &want, 4) != 0)
                        fail_msg("case %zu threads %d: grad row %lld col %lld", k, th, (long long)r,
                                 (long long)i);
                }
            tg_scope_end();
        }
    }
    tg_set_num_threads(0);
}

/* ---- matmul ---- */

static void check_matmul(tg_tensor *a, tg_tensor *b)
{
    int an = tg_ndim(a), bn = tg_ndim(b);
    int64_t M = an == 2 ? tg_shape(a)[0] : 1, K = tg_shape(a)[an - 1];
    int64_t N = bn == 2 ? tg_shape(b)[1] : 1;
    float *av = tg_test_values(a), *bv = tg_test_values(b);
    double *want = alloc_doubles(M * N);
    double *mag = alloc_doubles(M * N);
    tg_test_matmul_ref(av, bv, M, K, N, want, mag);
    tg_tensor *out = tg_matmul(a, b);
    assert_non_null(out);
    int on = (an == 2) + (bn == 2);
    assert_int_equal(tg_ndim(out), on);
    float *ov = tg_test_values(out);
    for (int64_t i = 0; i < M * N; i++) {
        /* float accumulation error is relative to sum |a_ik b_kj|, not to the result */
        if (!(fabs(ov[i] - want[i]) <= 1e-6 * mag[i] + 1e-7))
            fail_msg("matmul element %lld: %.9g vs %.9g", (long long)i, (double)ov[i], want[i]);
    }
    free(av), free(bv), free(want), free(mag), free(ov);
}

static void test_matmul_values(void **state)
{
    (void)state;
    tg_scope_begin();
    const int64_t dims[][3] = {{7, 5, 9}, {33, 65, 17}, {1, 8, 1}, {16, 1, 16}};
    for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++) {
        int64_t M = dims[d][0], K = dims[d][1], N = dims[d][2];
        for (int la = 0; la < 3; la++)
            for (int lb = 0; lb < 3; lb++) {
                tg_tensor *a = make_input(2, (int64_t[]){M, K}, (layout)la, 600 + d, -1, 1);
                tg_tensor *b = make_input(2, (int64_t[]){K, N}, (layout)lb, 700 + d, -1, 1);
                check_matmul(a, b);
            }
        tg_tensor *v = make_input(1, (int64_t[]){K}, NARROWED, 800 + d, -1, 1);
        tg_tensor *m1 = make_input(2, (int64_t[]){M, K}, TRANSPOSED, 801 + d, -1, 1);
        tg_tensor *m2 = make_input(2, (int64_t[]){K, N}, PLAIN, 802 + d, -1, 1);
        check_matmul(m1, v);
        check_matmul(v, m2);
        check_matmul(v, v);
    }
    /* an expanded operand (stride 0) is not BLAS-compatible and takes the copying path */
    tg_tensor *e =
        tg_expand(tg_test_tensor(2, (int64_t[]){1, 6}, 900, -1, 1), 2, (int64_t[]){4, 6});
    check_matmul(e, tg_test_tensor(2, (int64_t[]){6, 3}, 901, -1, 1));
    tg_scope_end();
}

/* ---- products with one output column: dots ---- */

/* A vector of n seeded values in [-1, 1], as stored (0), 4 bytes off a vector boundary
 * (1: narrowed), or with stride 3 (2: a column of an [n, 3] matrix). */
static tg_tensor *make_vec(int64_t n, int how, uint64_t seed)
{
    if (how == 1)
        return tg_narrow(tg_test_tensor(1, (int64_t[]){n + 3}, seed, -1, 1), 0, 1, n);
    if (how == 2) {
        tg_tensor *col = tg_narrow(tg_test_tensor(2, (int64_t[]){n, 3}, seed, -1, 1), 1, 1, 1);
        tg_tensor *v = tg_reshape(col, 1, (int64_t[]){n});
        assert_true(n < 2 || tg_strides(v)[0] == 3);
        return v;
    }
    return tg_test_tensor(1, (int64_t[]){n}, seed, -1, 1);
}

/* a @ b with b's last (lifted) dim 1 and at most one batch dim on either side, against a
 * double-precision product, and (same_bits) bit for bit the same on 1 and 3 threads. Called
 * inside a scope, which releases the products. */
static void check_one_column(tg_tensor *a, tg_tensor *b, bool same_bits, const char *what)
{
    int an = tg_ndim(a), bn = tg_ndim(b);
    const int64_t *as = tg_shape(a), *bs = tg_shape(b);
    int64_t Ba = an == 3 ? as[0] : 1, M = an == 1 ? 1 : as[an - 2], K = as[an - 1];
    int64_t Bb = bn == 3 ? bs[0] : 1, batch = Ba > Bb ? Ba : Bb;
    assert_true(bn == 1 || bs[bn - 1] == 1);
    float *av = tg_test_values(a), *bv = tg_test_values(b);
    double *want = alloc_doubles(batch * M), *mag = alloc_doubles(batch * M);
    for (int64_t p = 0; p < batch; p++)
        for (int64_t i = 0; i < M; i++) {
            const float *row = av + ((Ba == 1 ? 0 : p) * M + i) * K,
                        *x = bv + (Bb == 1 ? 0 : p) * K;
            double sum = 0, m = 0;
            for (int64_t k = 0; k < K; k++)
                sum += (double)row[k] * x[k], m += fabs((double)row[k] * x[k]);
            want[p * M + i] = sum, mag[p * M + i] = m;
        }
    float *got[2];
    for (int t = 0; t < 2; t++) {
        tg_set_num_threads(t ? 3 : 1);
        tg_tensor *out = tg_matmul(a, b);
        if (!out)
            fail_msg("%s: %s", what, tg_last_error());
        assert_int_equal(tg_numel(out), batch * M);
        got[t] = tg_test_values(out); /* out is the caller's scope's to release */
    }
    tg_set_num_threads(0);
    for (int64_t i = 0; i < batch * M; i++) {
        if (!(fabs(got[0][i] - want[i]) <= 1e-6 * mag[i] + 1e-7))
            fail_msg("%s: element %lld is %.9g, reference %.9g", what, (long long)i,
                     (double)got[0][i], want[i]);
        if (same_bits && memcmp(&got[0][i], &got[1][i], sizeof(float)) != 0)
            fail_msg("%s: element %lld is %a on 1 thread, %a on 3", what, (long long)i,
                     (double)got[0][i], (double)got[1][i]);
    }
    free(av), free(bv), free(want), free(mag), free(got[0]), free(got[1]);
}

/* 1-D @ 1-D at every length through the vector tails, around the size where gemm_small hands
 * over (64) and the dot's block edges (16384), and 1M + 17: stored, misaligned and strided
 * operands (the strided ones are copied). */
static void test_matmul_dot_lengths(void **state)
{
    (void)state;
    const int64_t longer[] = {1000, 16383, 16384, 16385, 3 * 16384 + 5, ((int64_t)1 << 20) + 17};
    const int hows[][2] = {{0, 0}, {1, 2}, {2, 1}, {1, 1}};
    const size_t nl = 68 + sizeof longer / sizeof longer[0];
    char what[64];
    for (size_t l = 0; l < nl; l++) {
        int64_t n = l < 68 ? (int64_t)l : longer[l - 68];
        for (size_t h = 0; h < sizeof hows / sizeof hows[0]; h++) {
            tg_scope_begin();
            tg_tensor *a = make_vec(n, hows[h][0], 1000 + l),
                      *b = make_vec(n, hows[h][1], 2000 + l);
            snprintf(what, sizeof what, "dot n=%lld layouts %d, %d", (long long)n, hows[h][0],
                     hows[h][1]);
            check_one_column(a, b, true, what);
            tg_scope_end();
        }
    }
}

/* Products with an empty dimension, as PyTorch 1.13 gives them: [0, 3] @ [3, 4] is an empty
 * [0, 4] and b's gradient zeros; [2, 0] @ [0, 3] sums nothing, so it is zeros [2, 3], and the
 * gradients are empty. */
static void test_matmul_empty(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = tg_requires_grad_(tg_ones(2, (int64_t[]){0, 3}), true);
    tg_tensor *b = tg_requires_grad_(tg_ones(2, (int64_t[]){3, 4}), true);
    tg_tensor *c = tg_matmul(a, b);
    assert_non_null(c);
    assert_int_equal(tg_ndim(c), 2);
    assert_true(tg_shape(c)[0] == 0 && tg_shape(c)[1] == 4);
    assert_int_equal(tg_backward(tg_sum(c), NULL, false), TG_OK);
    assert_non_null(tg_grad(b));
    assert_int_equal(tg_numel(tg_grad(b)), 12);
    for (int i = 0; i < 12; i++)
        assert_true(tg_data(tg_grad(b))[i] == 0.0f);
    tg_tensor *x = tg_requires_grad_(tg_ones(2, (int64_t[]){2, 0}), true);
    tg_tensor *y = tg_requires_grad_(tg_ones(2, (int64_t[]){0, 3}), true);
    tg_tensor *z = tg_matmul(x, y);
    assert_non_null(z);
    assert_true(tg_shape(z)[0] == 2 && tg_shape(z)[1] == 3);
    for (int i = 0; i < 6; i++)
        assert_true(tg_data(z)[i] == 0.0f);
    assert_int_equal(tg_backward(tg_sum(z), NULL, false), TG_OK);
    assert_true(tg_numel(tg_grad(x)) == 0 && tg_shape(tg_grad(x))[0] == 2);
    assert_true(tg_numel(tg_grad(y)) == 0 && tg_shape(tg_grad(y))[1] == 3);
    tg_scope_end();
}

/* Matrix @ vector: odd sizes on either side of the dot path's limits, rows off the vector
 * boundary (narrowed), transposed matrices (sgemm, or col_dots for at most 64 rows over longer
 * columns), strided, misaligned and
 * expanded vectors, a 2-D one-column right operand, and batches (one vector for all, one per
 * matrix, one matrix for all vectors, batched dots). */
static void test_matmul_matrix_vector(void **state)
{
    (void)state;
    /* K < 64 with dense rows: row_dots, many rows a call (from K = 1, and split over threads) */
    const int64_t shapes[][2] = {{65, 64},   {100, 65},  {3, 1000},  {1000, 1000},
                                 {4097, 67}, {64, 4099}, {7, 40003}, {200, 63},
                                 {1000, 1},  {129, 32},  {70001, 17}};
    char what[96];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], K = shapes[s][1];
        for (int la = 0; la < 3; la++)
            for (int how = 0; how < 4; how++) {
                tg_scope_begin();
                tg_tensor *a = make_input(2, (int64_t[]){M, K}, (layout)la, 3000 + s, -1, 1);
                tg_tensor *x = how < 3 ? make_vec(K, how, 4000 + s)
                                       : tg_expand(tg_test_tensor(1, (int64_t[]){1}, 5, -1, 1), 1,
                                                   (int64_t[]){K});
                /* A transposed matrix stays with sgemm, which splits the work over threads its
                 * own way (OpenBLAS on aarch64 changes the bits with the thread count), unless
                 * it has at most 64 rows and longer columns: col_dots in fixed parts. */
                bool same = la != TRANSPOSED || (M > 1 && M <= 64 && K > 64);
                snprintf(what, sizeof what, "[%lld, %lld] layout %d @ vector %d", (long long)M,
                         (long long)K, la, how);
                check_one_column(a, x, same, what);
                snprintf(what, sizeof what, "[%lld, %lld] layout %d @ [K, 1] %d", (long long)M,
                         (long long)K, la, how);
                check_one_column(a, tg_reshape(x, 2, (int64_t[]){K, 1}), same, what);
                tg_scope_end();
            }
    }
    typedef struct {
        int an, bn;
        int64_t as[3], bs[3];
    } batched;
    const batched cases[] = {
        {3, 1, {3, 70, 129}, {129}},         /* one vector for all */
        {3, 3, {3, 70, 129}, {3, 129, 1}},   /* one per matrix */
        {2, 3, {70, 129}, {4, 129, 1}},      /* one matrix for all */
        {3, 3, {1, 70, 129}, {4, 129, 1}},   /* a broadcast batch dim */
        {3, 3, {5, 1, 200}, {5, 200, 1}},    /* batched dots */
        {3, 3, {2, 33, 4097}, {1, 4097, 1}}, /* long rows */
        {3, 3, {3, 64, 64}, {3, 64, 1}},     /* gemm_small */
        {3, 3, {3, 70, 9}, {3, 9, 1}},       /* short rows: row_dots per matrix */
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        for (int la = 0; la < 3; la++) {
            tg_scope_begin();
            const batched *q = &cases[c];
            tg_tensor *a = make_input(q->an, q->as, (layout)la, 5000 + c, -1, 1);
            tg_tensor *b = make_input(q->bn, q->bs, PLAIN, 6000 + c, -1, 1);
            bool same = la != TRANSPOSED || q->as[q->an - 2] == 1; /* as above */
            snprintf(what, sizeof what, "batched case %zu layout %d", c, la);
            check_one_column(a, b, same, what);
            if (q->bn == 3) { /* the vectors narrowed out of longer ones: misaligned */
                int64_t bs[3] = {q->bs[0], q->bs[1] + 3, 1};
                b = tg_narrow(tg_test_tensor(3, bs, 7000 + c, -1, 1), 1, 3, q->bs[1]);
                snprintf(what, sizeof what, "batched case %zu layout %d, narrowed b", c, la);
                check_one_column(a, b, same, what);
            }
            tg_scope_end();
        }
}

/* Backward products that now take the dot path: the gradient of x in W^T @ x is W @ g, W's
 * rows contiguous (g expanded when only x needs a gradient, a dense copy when both do), and
 * likewise for a one-column B. Values against double sums, bit for bit on 1 and 3 threads. */
static void test_matmul_dots_backward(void **state)
{
    (void)state;
    const int64_t K = 150, M = 130;
    for (int both = 0; both < 2; both++)
        for (int col = 0; col < 2; col++) {
            float *gx[2];
            for (int t = 0; t < 2; t++) {
                tg_set_num_threads(t ? 3 : 1);
                tg_scope_begin();
                tg_tensor *W =
                    tg_requires_grad_(tg_test_tensor(2, (int64_t[]){K, M}, 9, -1, 1), both);
                tg_tensor *x = tg_requires_grad_(
                    tg_test_tensor(col ? 2 : 1, (int64_t[]){K, 1}, 10, -1, 1), true);
                tg_tensor *y = tg_matmul(tg_transpose(W, 0, 1), x);
                assert_int_equal(tg_backward(tg_sum(y), NULL, false), TG_OK);
                gx[t] = tg_test_values(tg_grad(x));
                assert_int_equal(tg_numel(tg_grad(x)), K);
                float *w = tg_test_values(W), *xv = tg_test_values(x);
                for (int64_t k = 0; k < K; k++) {
                    double s = 0, m = 0;
                    for (int64_t i = 0; i < M; i++)
                        s += w[k * M + i], m += fabs(w[k * M + i]);
                    if (!(fabs(gx[t][k] - s) <= 1e-6 * m))
                        fail_msg("grad x[%lld] (both %d, col %d): %.9g vs %.9g", (long long)k, both,
                                 col, (double)gx[t][k], s);
                }
                if (both) {
                    float *gw = tg_test_values(tg_grad(W));
                    for (int64_t k = 0; k < K * M; k++)
                        assert_true(gw[k] == xv[k / M]);
                    free(gw);
                }
                free(w), free(xv);
                tg_scope_end();
            }
            assert_memory_equal(gx[0], gx[1], sizeof(float) * (size_t)K);
            free(gx[0]), free(gx[1]);
        }
    tg_set_num_threads(0);
}

/* ---- shape ops move values, never change them ---- */

static void test_shape_op_values(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(0, 24, 1), 3, (int64_t[]){2, 3, 4});
    float v[24];
    tg_copy_to(tg_permute(x, (int[]){1, 2, 0}), v, 24); /* [3, 4, 2]: v[j][k][i] = x[i][j][k] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(v[(j * 4 + k) * 2 + i] == (float)(i * 12 + j * 4 + k));
    tg_copy_to(tg_transpose(x, 0, 2), v, 24); /* [4, 3, 2] */
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 3; j++)
            for (int k = 0; k < 4; k++)
                assert_true(v[(k * 3 + j) * 2 + i] == (float)(i * 12 + j * 4 + k));
    tg_tensor *n = tg_narrow(x, -1, -3, 2); /* start -3 of 4 = 1 */
    int64_t cnt = tg_copy_to(n, v, 24);
    assert_int_equal(cnt, 12);
    for (int i = 0; i < 12; i++)
        assert_true(v[i] == (float)((i / 2) * 4 + 1 + i % 2));
    tg_tensor *e = tg_expand(tg_arange(0, 3, 1), 3, (int64_t[]){2, 2, 3});
    tg_copy_to(e, v, 24);
    for (int i = 0; i < 12; i++)
        assert_true(v[i] == (float)(i % 3));
    tg_tensor *e2 =
        tg_expand(tg_reshape(tg_arange(0, 3, 1), 2, (int64_t[]){3, 1}), 2, (int64_t[]){-1, 2});
    tg_copy_to(e2, v, 24);
    const float want_e2[6] = {0, 0, 1, 1, 2, 2};
    assert_memory_equal(v, want_e2, sizeof want_e2);
    tg_scope_end();
}

/* ---- losses ---- */

static void test_loss_values(void **state)
{
    (void)state;
    tg_scope_begin();
    const int64_t sh[2] = {6, 23};
    const int64_t n = 138;
    tg_tensor *p = make_input(2, sh, TRANSPOSED, 1000, 0.01f, 0.99f);
    tg_tensor *t = make_input(2, sh, NARROWED, 1001, 0, 1);
    tg_tensor *z = make_input(2, sh, PLAIN, 1002, -30, 30);
    tg_tensor *pwc = tg_test_tensor(1, (int64_t[]){23}, 1003, 0.5f, 4);
    float *pv = tg_test_values(p), *tv = tg_test_values(t), *zv = tg_test_values(z);
    float *wv = tg_test_values(pwc);
    double *bce = alloc_doubles(n), *bcel = alloc_doubles(n), *bcew = alloc_doubles(n),
           *mse = alloc_doubles(n), *bces = alloc_doubles(n);
    double s[5] = {0};
    for (int64_t i = 0; i < n; i++) {
        double pi = pv[i], ti = tv[i], zi = zv[i], w = wv[i % 23];
        bce[i] = -(ti * log(pi) + (1 - ti) * log(1 - pi));
        double sp_neg = log1p(exp(-fabs(zi))) + fmax(-zi, 0); /* softplus(-z) */
        double sp_pos = sp_neg + zi;                          /* softplus(z) */
        bcel[i] = ti * sp_neg + (1 - ti) * sp_pos;
        bces[i] = 2.5 * ti * sp_neg + (1 - ti) * sp_pos;
        bcew[i] = w * ti * sp_neg + (1 - ti) * sp_pos;
        mse[i] = (pi - ti) * (pi - ti);
        s[0] += bce[i], s[1] += bcel[i], s[2] += bces[i], s[3] += bcew[i], s[4] += mse[i];
    }
    tg_tensor *pw = tg_scalar(2.5f);
    const double r = 1e-5, a = 1e-6; /* float log/exp plus a sum of 138 terms */
    expect_values(tg_binary_cross_entropy(p, t, TG_REDUCE_NONE), 2, sh, bce, r, a, "bce none");
    expect_values(tg_binary_cross_entropy(p, t, TG_REDUCE_SUM), 0, NULL, &s[0], r, a, "bce sum");
    double m0 = s[0] / n, m1 = s[1] / n, m2 = s[2] / n, m3 = s[3] / n, m4 = s[4] / n;
    expect_values(tg_binary_cross_entropy(p, t, TG_REDUCE_MEAN), 0, NULL, &m0, r, a, "bce mean");
    expect_values(tg_bce_with_logits(z, t, NULL, TG_REDUCE_NONE), 2, sh, bcel, r, a, "bcel none");
    expect_values(tg_bce_with_logits(z, t, NULL, TG_REDUCE_SUM), 0, NULL, &s[1], r, a, "bcel sum");
    expect_values(tg_bce_with_logits(z, t, NULL, TG_REDUCE_MEAN), 0, NULL, &m1, r, a, "bcel mean");
    expect_values(tg_bce_with_logits(z, t, pw, TG_REDUCE_NONE), 2, sh, bces, r, a, "bcel pw");
    expect_values(tg_bce_with_logits(z, t, pw, TG_REDUCE_MEAN), 0, NULL, &m2, r, a, "bcel pw");
    expect_values(tg_bce_with_logits(z, t, pwc, TG_REDUCE_NONE), 2, sh, bcew, r, a, "bcel pwc");
    expect_values(tg_bce_with_logits(z, t, pwc, TG_REDUCE_MEAN), 0, NULL, &m3, r, a, "bcel pwc");
    expect_values(tg_bce_with_logits(z, t, pwc, TG_REDUCE_SUM), 0, NULL, &s[3], r, a, "bcel pwc");
    expect_values(tg_mse_loss(p, t, TG_REDUCE_NONE), 2, sh, mse, r, a, "mse none");
    expect_values(tg_mse_loss(p, t, TG_REDUCE_SUM), 0, NULL, &s[4], r, a, "mse sum");
    expect_values(tg_mse_loss(p, t, TG_REDUCE_MEAN), 0, NULL, &m4, r, a, "mse mean");
    free(pv), free(tv), free(zv), free(wv);
    free(bce), free(bcel), free(bcew), free(mse), free(bces);
    tg_scope_end();
}

/* F.mse_loss broadcasts input and target (with a warning), the gradients summing back:
 *   x = torch.tensor([[1.], [2.], [4.]], requires_grad=True)
 *   t = torch.tensor([0.5, -1., 3., 2.], requires_grad=True)
 *   F.mse_loss(x, t, reduction=r), then backward of its sum:
 *   'none' -> [[0.25, 4, 4, 1], [2.25, 9, 1, 0], [12.25, 25, 1, 4]], 'sum' -> 63.75,
 *   'mean' -> 5.3125; x.grad 'sum'/'none' -> [[-1], [7], [23]], t.grad -> [-11, -20, 4, -2];
 *   'mean': both divided by 12. */
static void test_mse_loss_broadcasts(void **state)
{
    (void)state;
    const double none[12] = {0.25, 4, 4, 1, 2.25, 9, 1, 0, 12.25, 25, 1, 4};
    const double red[3] = {5.3125, 63.75, 0}, gx[3] = {-1, 7, 23}, gt[4] = {-11, -20, 4, -2};
    for (int r = TG_REDUCE_MEAN; r <= TG_REDUCE_NONE; r++) {
        tg_scope_begin();
        tg_tensor *x = tg_from_data((float[]){1, 2, 4}, 2, (int64_t[]){3, 1});
        tg_tensor *t = tg_from_data((float[]){0.5f, -1, 3, 2}, 1, (int64_t[]){4});
        tg_requires_grad_(x, true), tg_requires_grad_(t, true);
        tg_tensor *l = tg_mse_loss(x, t, (tg_reduction)r);
        if (r == TG_REDUCE_NONE)
            expect_values(l, 2, (int64_t[]){3, 4}, none, 0, 0, "mse broadcast none");
        else
            expect_values(l, 0, NULL, &red[r], 1e-7, 0, "mse broadcast reduced");
        assert_string_equal(tg_grad_fn_name(l), "MseLossBackward0");
        assert_int_equal(tg_backward(tg_sum(l), NULL, false), TG_OK);
        double wx[3], wt[4], div = r == TG_REDUCE_MEAN ? 12 : 1;
        for (int i = 0; i < 3; i++)
            wx[i] = gx[i] / div;
        for (int i = 0; i < 4; i++)
            wt[i] = gt[i] / div;
        /* a few float roundings: each gradient sums 3 or 4 terms, in each family's order */
        expect_values(tg_grad(x), 2, (int64_t[]){3, 1}, wx, 1e-6, 0, "mse broadcast d/dx");
        expect_values(tg_grad(t), 1, (int64_t[]){4}, wt, 1e-6, 0, "mse broadcast d/dt");
        tg_scope_end();
    }
}

/* ---- NaN and infinity, as PyTorch 1.13 computes them ---- */

/* Repeats the 7 specials to 37 elements so SIMD bodies, not only tails, see them. */
#define N_SPECIAL 37
static tg_tensor *specials(void)
{
    const float base[7] = {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1.0f, -1.0f};
    float v[N_SPECIAL];
    for (int i = 0; i < N_SPECIAL; i++)
        v[i] = base[i % 7];
    return tg_from_data(v, 1, (int64_t[]){N_SPECIAL});
}

static void expect_special(tg_tensor *r, const double *want7, const char *what)
{
    double want[N_SPECIAL];
    for (int i = 0; i < N_SPECIAL; i++)
        want[i] = want7[i % 7];
    expect_values(r, 1, (int64_t[]){N_SPECIAL}, want, 1e-7, 0, what);
}

/* Compares t's n values with want[] bit for bit (so the sign of a zero counts); a NaN matches
 * any NaN. */
static void expect_bits(const tg_tensor *t, int64_t n, const float *want, const char *what)
{
    if (!t)
        fail_msg("%s: NULL result: %s", what, tg_last_error());
    assert_int_equal(tg_numel(t), n);
    float *v = tg_test_values(t);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++)
        if (isnan(want[i]) ? !isnan(v[i]) : memcmp(&v[i], &want[i], sizeof(float)) != 0)
            fail_msg("%s (%s): element %lld is %a, PyTorch gives %a", what, tg_isa(), (long long)i,
                     (double)v[i], (double)want[i]);
    free(v);
}

/* Seven values repeated to N_SPECIAL, so SIMD bodies, not only tails, see them. */
static void repeat7(float *out, const float *base7)
{
    for (int i = 0; i < N_SPECIAL; i++)
        out[i] = base7[i % 7];
}

/* torch.relu is clamp_min(x, 0): it keeps NaN and -0.0. Its backward, threshold_backward,
 * zeroes the gradient only where the result is <= 0, so a NaN result passes it on:
 *   x = torch.tensor([nan, -0., 0., 2., -3., inf, -inf], requires_grad=True)
 *   torch.relu(x) -> [nan, -0., 0., 2., 0., inf, 0.]
 *   grad of the sum -> [1., 0., 0., 1., 0., 1., 0.]; with grad_output -0. everywhere
 *   -> [-0., 0., 0., -0., 0., -0., 0.] */
static void test_relu_nan_and_negative_zero(void **state)
{
    (void)state;
    const float nan = NAN, inf = INFINITY;
    const float x7[7] = {nan, -0.0f, 0.0f, 2.0f, -3.0f, inf, -inf};
    const float y7[7] = {nan, -0.0f, 0.0f, 2.0f, 0.0f, inf, 0.0f};
    const float g7[7] = {1.0f, 0.0f, 0.0f, 1.0f, 0.0f, 1.0f, 0.0f};
    const float gneg7[7] = {-0.0f, 0.0f, 0.0f, -0.0f, 0.0f, -0.0f, 0.0f};
    float xv[N_SPECIAL], yw[N_SPECIAL], gw[N_SPECIAL], gnw[N_SPECIAL], mz[N_SPECIAL];
    repeat7(xv, x7), repeat7(yw, y7), repeat7(gw, g7), repeat7(gnw, gneg7);
    for (int i = 0; i < N_SPECIAL; i++)
        mz[i] = -0.0f;
    const int64_t n = N_SPECIAL;
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_from_data(xv, 1, &n), true);
    tg_tensor *y = tg_relu(x);
    expect_bits(y, n, yw, "relu");
    assert_int_equal(tg_backward(tg_sum(y), NULL, false), TG_OK);
    expect_bits(tg_grad(x), n, gw, "relu grad of sum");
    tg_tensor *x2 = tg_requires_grad_(tg_from_data(xv, 1, &n), true);
    assert_int_equal(tg_backward(tg_relu(x2), tg_from_data(mz, 1, &n), false), TG_OK);
    expect_bits(tg_grad(x2), n, gnw, "relu grad of -0");
    tg_scope_end();
}

/* torch.pow(x, 0.5) is sqrt and torch.pow(x, -0.5) rsqrt = 1 / sqrt(x), so at -0.0 and -inf
 * they differ from C's pow; the gradient of x^0.5 is 0.5 * x^-0.5, through rsqrt as well:
 *   x = torch.tensor([-0., -inf, 4., 0., inf, nan, -1.], requires_grad=True)
 *   torch.pow(x, 0.5)  -> [-0., nan, 2., 0., inf, nan, nan]
 *                grad  -> [-inf, nan, 0.25, inf, 0., nan, nan]
 *   torch.pow(x, -0.5) -> [-inf, nan, 0.5, inf, 0., nan, nan]
 *                grad  -> [-inf, -0., -0.0625, -inf, -0., nan, nan] */
static void test_pow_scalar_half_exponents(void **state)
{
    (void)state;
    const float nan = NAN, inf = INFINITY;
    const float x7[7] = {-0.0f, -inf, 4.0f, 0.0f, inf, nan, -1.0f};
    const float want[2][2][7] = {
        {{-0.0f, nan, 2.0f, 0.0f, inf, nan, nan}, {-inf, nan, 0.25f, inf, 0.0f, nan, nan}},
        {{-inf, nan, 0.5f, inf, 0.0f, nan, nan}, {-inf, -0.0f, -0.0625f, -inf, -0.0f, nan, nan}},
    };
    const float e[2] = {0.5f, -0.5f};
    const int64_t n = N_SPECIAL;
    float xv[N_SPECIAL], yw[N_SPECIAL], gw[N_SPECIAL];
    repeat7(xv, x7);
    for (int k = 0; k < 2; k++) {
        tg_scope_begin();
        repeat7(yw, want[k][0]), repeat7(gw, want[k][1]);
        tg_tensor *x = tg_requires_grad_(tg_from_data(xv, 1, &n), true);
        tg_tensor *y = tg_pow_scalar(x, e[k]);
        expect_bits(y, n, yw, e[k] > 0 ? "pow_scalar 0.5" : "pow_scalar -0.5");
        assert_int_equal(tg_backward(tg_sum(y), NULL, false), TG_OK);
        expect_bits(tg_grad(x), n, gw, e[k] > 0 ? "pow_scalar 0.5 grad" : "pow_scalar -0.5 grad");
        tg_scope_end();
    }
}

/* torch.pow with a tensor exponent is C's pow for every layout of the operands (PyTorch's CPU
 * tensor-tensor kernel has no scalar-exponent shortcuts), and so is the a^(b - 1) of its
 * gradient. Generated with PyTorch 1.13, the same for a full-size, a 0-d and a strided b:
 *   x = torch.tensor(pow_t_x, requires_grad=True); torch.pow(x, b).sum().backward() */
#define POW_T_NX 10
static const float pow_t_x[POW_T_NX] = {NAN,  INFINITY, -INFINITY, 0.0f,  -0.0f,
                                        1.0f, -1.0f,    4.0f,      -2.0f, 0.25f};
static const struct {
    float e, y[POW_T_NX], gx[POW_T_NX];
} pow_t_want[] = {
    {0.5f,
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1p+0f, NAN, 0x1p+1f, NAN, 0x1p-1f},
     {NAN, 0.0f, 0.0f, INFINITY, INFINITY, 0x1p-1f, NAN, 0x1p-2f, NAN, 0x1p+0f}},
    {-0.5f,
     {NAN, 0.0f, 0.0f, INFINITY, INFINITY, 0x1p+0f, NAN, 0x1p-1f, NAN, 0x1p+1f},
     {NAN, -0.0f, -0.0f, -INFINITY, -INFINITY, -0x1p-1f, NAN, -0x1p-4f, NAN, -0x1p+2f}},
    {3.0f,
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+0f, -0x1p+0f, 0x1p+6f, -0x1p+3f, 0x1p-6f},
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1.8p+1f, 0x1.8p+1f, 0x1.8p+5f, 0x1.8p+3f, 0x1.8p-3f}},
    {-2.0f,
     {NAN, 0.0f, 0.0f, INFINITY, INFINITY, 0x1p+0f, 0x1p+0f, 0x1p-4f, 0x1p-2f, 0x1p+4f},
     {NAN, -0.0f, 0.0f, -INFINITY, INFINITY, -0x1p+1f, 0x1p+1f, -0x1p-5f, 0x1p-2f, -0x1p+7f}},
    {2.0f,
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1p+0f, 0x1p+0f, 0x1p+4f, 0x1p+2f, 0x1p-4f},
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+1f, -0x1p+1f, 0x1p+3f, -0x1p+2f, 0x1p-1f}},
    {-1.0f,
     {NAN, 0.0f, -0.0f, INFINITY, -INFINITY, 0x1p+0f, -0x1p+0f, 0x1p-2f, -0x1p-1f, 0x1p+2f},
     {NAN, -0.0f, -0.0f, -INFINITY, -INFINITY, -0x1p+0f, -0x1p+0f, -0x1p-4f, -0x1p-2f, -0x1p+4f}},
    {0.0f,
     {0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f},
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}},
    {1.0f,
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+0f, -0x1p+0f, 0x1p+2f, -0x1p+1f, 0x1p-2f},
     {0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f}},
};

/* The exponent as a full-size tensor, a 0-d tensor, a [1] tensor, a column, a row, and both
 * operands transposed (the strided walk), or the base transposed with a 0-d exponent: the
 * forward and the base's gradient give PyTorch's bits in every layout. */
/* Where pow's gradients are defined by a mask, the incoming gradient's NaN and sign follow
 * PyTorch: the base gradient is where(b == 0, 0, g * b * a^(b-1)), +0 whatever g is; the
 * exponent gradient is g * where(a == 0 and b >= 0, 0, a^b * log(a)), so g's NaN or sign shows:
 *   a = [2, 0, 3, 0], b = [0, 2, 0, 0], y = a ** b, y.backward([nan, -1, -2, nan])
 *   a.grad -> [0., -0., 0., 0.], b.grad -> [nan, -0., -2.1972246, nan] */
static void test_pow_masked_gradients(void **state)
{
    (void)state;
    tg_scope_begin();
    const int64_t s[1] = {4};
    tg_tensor *a = tg_requires_grad_(tg_from_data((const float[]){2, 0, 3, 0}, 1, s), true);
    tg_tensor *b = tg_requires_grad_(tg_from_data((const float[]){0, 2, 0, 0}, 1, s), true);
    tg_tensor *g = tg_from_data((const float[]){NAN, -1, -2, NAN}, 1, s);
    assert_int_equal(tg_backward(tg_pow(a, b), g, false), TG_OK);
    expect_bits(tg_grad(a), 4, (const float[]){0.0f, -0.0f, 0.0f, 0.0f}, "pow base grad");
    expect_bits(tg_grad(b), 4, (const float[]){NAN, -0.0f, -0x1.193ea8p+1f, NAN},
                "pow exponent grad");
    tg_scope_end();
}

/* mse_loss's backward is PyTorch's mse_loss_backward, (scale * (x - t)) * g with scale = 2 / n
 * for 'mean' and 2 otherwise, and its target gradient the same with x and t swapped. So a 'mean'
 * gradient is finite where 2 (x - t) overflows, and where x == t the target gradient is
 * scale * (+0) * g, not the negated input gradient. Five values repeated to 40, from
 *   x = torch.tensor([0., 0., 2.5, -0., 1.] * 8, requires_grad=True)
 *   t = torch.tensor([fmax, -fmax, 2.5, 0., 0.3] * 8, requires_grad=True)
 *   F.mse_loss(x, t, reduction=r).backward(torch.tensor(0.7))     # 'mean', 'sum'
 *   F.mse_loss(x, t, reduction='none').backward(torch.tensor([.7, -.7, -.7, .7, .7] * 8)) */
static void test_mse_gradient_bits(void **state)
{
    (void)state;
    const float fmax = 0x1.fffffep+127f, inf = INFINITY;
    const float x5[5] = {0.0f, 0.0f, 2.5f, -0.0f, 1.0f};
    const float t5[5] = {fmax, -fmax, 2.5f, 0.0f, 0.3f};
    const float gn5[5] = {0.7f, -0.7f, -0.7f, 0.7f, 0.7f};
    const tg_reduction red[3] = {TG_REDUCE_MEAN, TG_REDUCE_SUM, TG_REDUCE_NONE};
    const float want[3][2][5] = {
        {{-0x1.1eb85p+123f, 0x1.1eb85p+123f, 0.0f, -0.0f, 0x1.916872p-6f},
         {0x1.1eb85p+123f, -0x1.1eb85p+123f, 0.0f, 0.0f, -0x1.916872p-6f}},
        {{-inf, inf, 0.0f, -0.0f, 0x1.f5c28ep-1f}, {inf, -inf, 0.0f, 0.0f, -0x1.f5c28ep-1f}},
        {{-inf, -inf, -0.0f, -0.0f, 0x1.f5c28ep-1f}, {inf, inf, -0.0f, 0.0f, -0x1.f5c28ep-1f}},
    };
    enum { N = 40 };
    const int64_t n = N;
    float xv[N], tv[N], gv[N], wx[N], wt[N];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < N; i++) {
            xv[i] = x5[i % 5], tv[i] = t5[i % 5], gv[i] = gn5[i % 5];
            wx[i] = want[r][0][i % 5], wt[i] = want[r][1][i % 5];
        }
        tg_scope_begin();
        tg_tensor *x = tg_requires_grad_(tg_from_data(xv, 1, &n), true);
        tg_tensor *t = tg_requires_grad_(tg_from_data(tv, 1, &n), true);
        tg_tensor *g = red[r] == TG_REDUCE_NONE ? tg_from_data(gv, 1, &n) : tg_scalar(0.7f);
        assert_int_equal(tg_backward(tg_mse_loss(x, t, red[r]), g, false), TG_OK);
        expect_bits(tg_grad(x), n, wx, "mse input grad");
        expect_bits(tg_grad(t), n, wt, "mse target grad");
        tg_scope_end();
    }
}

/* binary_cross_entropy as PyTorch 1.13 computes it: the loss (t - 1) max(log(1 - p), -100) -
 * t max(log(p), -100), +0 at p = 0, t = 0; the input gradient g (p - t) / max((1 - p) p, 1e-12),
 * divided by n for 'mean' after that, and the target gradient (log(1 - p) - log(p)) g, divided
 * by n likewise: multiplying by g / n instead rounds differently (p = 1e-45 below by a third).
 * Five values repeated to 40, from
 *   p = torch.tensor([0., 1e-45, .25, 1., .7] * 8, requires_grad=True)
 *   t = torch.tensor([0., 0., 1., 1., .3] * 8, requires_grad=True)
 *   F.binary_cross_entropy(p, t, reduction=r).backward(torch.tensor(0.7))  # 'mean', 'sum'
 *   F.binary_cross_entropy(p, t, reduction='none').backward(torch.tensor([.7, -.7, .3, .7, 3.3] *
 * 8)) */
static void test_bce_bits(void **state)
{
    (void)state;
    const float inf = INFINITY;
    const float p5[5] = {0.0f, 0x1p-149f, 0.25f, 1.0f, 0.7f};
    const float t5[5] = {0.0f, 0.0f, 1.0f, 1.0f, 0.3f};
    const float gn5[5] = {0.7f, -0.7f, 0.3f, 0.7f, 3.3f};
    const float loss5[5] = {0.0f, 0.0f, 0x1.62e43p+0f, -0.0f, 0x1.e64a04p-1f};
    const tg_reduction red[3] = {TG_REDUCE_MEAN, TG_REDUCE_SUM, TG_REDUCE_NONE};
    const float want[3][2][5] = {
        {{0.0f, 0x1.74876ep-115f, -0x1.1eb852p-4f, 0.0f, 0x1.11110ep-5f},
         {inf, 0x1.ceb08ap+0f, 0x1.3afe7ep-6f, -inf, -0x1.e5dfdcp-7f}},
        {{0.0f, 0x1.d1a94ap-110f, -0x1.666666p+1f, 0.0f, 0x1.555552p+0f},
         {inf, 0x1.212e56p+6f, 0x1.89be1ep-1f, -inf, -0x1.2fabeap-1f}},
        {{0.0f, -0x1.d1a94ap-110f, -0x1.333334p+0f, 0.0f, 0x1.924922p+2f},
         {inf, -0x1.212e56p+6f, 0x1.517e64p-2f, -inf, -0x1.65e60cp+1f}},
    };
    enum { N = 40 };
    const int64_t n = N;
    float pv[N], tv[N], gv[N], wl[N], wp[N], wt[N];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < N; i++) {
            pv[i] = p5[i % 5], tv[i] = t5[i % 5], gv[i] = gn5[i % 5], wl[i] = loss5[i % 5];
            wp[i] = want[r][0][i % 5], wt[i] = want[r][1][i % 5];
        }
        tg_scope_begin();
        tg_tensor *p = tg_requires_grad_(tg_from_data(pv, 1, &n), true);
        tg_tensor *t = tg_requires_grad_(tg_from_data(tv, 1, &n), true);
        tg_tensor *l = tg_binary_cross_entropy(p, t, red[r]);
        if (red[r] == TG_REDUCE_NONE)
            expect_bits(l, n, wl, "bce loss");
        tg_tensor *g = red[r] == TG_REDUCE_NONE ? tg_from_data(gv, 1, &n) : tg_scalar(0.7f);
        assert_int_equal(tg_backward(l, g, false), TG_OK);
        expect_bits(tg_grad(p), n, wp, "bce input grad");
        expect_bits(tg_grad(t), n, wt, "bce target grad");
        tg_scope_end();
    }
}

/* PyTorch's sums start from +0, so summing -0s gives +0 along any dim:
 *   torch.full((3, 100), -0.).sum(0), torch.full((2, 3, 17), -0.).mean(1), ... -> all +0.
 * Each reduction path: narrow and wide column sums, a middle dim, a transpose read in memory
 * order, a broadcast value, and a row sum; NaN and inf still come through. */
static void test_sum_dim_of_negative_zeros(void **state)
{
    (void)state;
    static const struct {
        int ndim;
        int64_t shape[3];
        int dim;
        bool transpose, expand;
    } cases[] = {
        {2, {3, 4}, 0, false, false},
        {2, {3, 100}, 0, false, false},
        {2, {1000, 3}, 0, false, false},
        {3, {2, 3, 17}, 1, false, false},
        {3, {2, 3, 17}, 0, false, false},
        {2, {17, 17}, 1, true, false},
        {2, {3, 4}, 1, false, false},
        {2, {5, 70}, 0, false, true},
        /* rows that fill whole vectors of every family (4, 8, 16 lanes) */
        {2, {3, 8}, 1, false, false},
        {2, {5, 16}, 1, false, false},
        {2, {3, 64}, 1, false, false},
        {2, {2, 48}, 1, false, false},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        tg_scope_begin();
        tg_tensor *x = cases[c].expand ? tg_expand(tg_scalar(-0.0f), cases[c].ndim, cases[c].shape)
                                       : tg_full(cases[c].ndim, cases[c].shape, -0.0f);
        if (cases[c].transpose)
            x = tg_transpose(x, 0, 1);
        for (int mean = 0; mean < 2; mean++) {
            tg_tensor *y =
                mean ? tg_mean_dim(x, cases[c].dim, false) : tg_sum_dim(x, cases[c].dim, true);
            assert_non_null(y);
            int64_t n = tg_numel(y);
            float *want = malloc((size_t)n * sizeof *want);
            assert_non_null(want);
            for (int64_t i = 0; i < n; i++)
                want[i] = 0.0f;
            expect_bits(y, n, want, mean ? "mean_dim of -0s" : "sum_dim of -0s");
            free(want);
        }
        tg_scope_end();
    }
    tg_scope_begin();
    const float v[6] = {-0.0f, NAN, -INFINITY, -0.0f, -0.0f, -0.0f};
    tg_tensor *y = tg_sum_dim(tg_from_data(v, 2, (int64_t[]){2, 3}), 0, false);
    expect_bits(y, 3, (const float[]){0.0f, NAN, -INFINITY}, "sum_dim with NaN and inf");
    tg_scope_end();
}

static void test_pow_tensor_exponent_layouts(void **state)
{
    (void)state;
    enum { R = 3, C = 37, LAYOUTS = 7 };
    const int64_t rc[2] = {R, C}, cr[2] = {C, R}, col[2] = {R, 1}, one = 1, row = C;
    float base[R * C];
    for (size_t k = 0; k < sizeof pow_t_want / sizeof pow_t_want[0]; k++)
        for (int l = 0; l < LAYOUTS; l++) {
            tg_scope_begin();
            float e = pow_t_want[k].e;
            bool tr = l >= 5; /* the base is the transpose of a [C, R] leaf */
            for (int r = 0; r < R; r++)
                for (int j = 0; j < C; j++)
                    base[tr ? j * R + r : r * C + j] = pow_t_x[j % POW_T_NX];
            tg_tensor *leaf = tg_requires_grad_(tg_from_data(base, 2, tr ? cr : rc), true);
            tg_tensor *x = tr ? tg_transpose(leaf, 0, 1) : leaf;
            tg_tensor *b = l == 0   ? tg_full(2, rc, e)
                           : l == 1 ? tg_scalar(e)
                           : l == 2 ? tg_full(1, &one, e)
                           : l == 3 ? tg_full(2, col, e)
                           : l == 4 ? tg_full(1, &row, e)
                           : l == 5 ? tg_transpose(tg_full(2, cr, e), 0, 1)
                                    : tg_scalar(e);
            tg_tensor *y = tg_pow(x, b);
            assert_non_null(y);
            float *yv = tg_test_values(y);
            assert_int_equal(tg_backward(tg_sum(y), NULL, false), TG_OK);
            float *gv = tg_test_values(tg_grad(leaf));
            for (int r = 0; r < R; r++)
                for (int j = 0; j < C; j++) {
                    float got = yv[r * C + j], want = pow_t_want[k].y[j % POW_T_NX];
                    float gg = gv[tr ? j * R + r : r * C + j], gw = pow_t_want[k].gx[j % POW_T_NX];
                    float xj = pow_t_x[j % POW_T_NX];
                    if (isnan(want) ? !isnan(got) : memcmp(&got, &want, sizeof got) != 0)
                        fail_msg("%s layout %d: pow(%a, %g) = %a, PyTorch %a", tg_isa(), l, xj, e,
                                 got, want);
                    if (isnan(gw) ? !isnan(gg) : memcmp(&gg, &gw, sizeof gg) != 0)
                        fail_msg("%s layout %d: d pow(%a, %g) / dx = %a, PyTorch %a", tg_isa(), l,
                                 xj, e, gg, gw);
                }
            free(yv), free(gv);
            tg_scope_end();
        }
}

static void test_nan_inf_behaviour(void **state)
{
    (void)state;
    const double inf = INFINITY, nan = NAN;
    tg_scope_begin();
    tg_tensor *x = specials();
    /* torch.relu(torch.tensor([nan, inf, -inf, 0., -0., 1., -1.])).tolist() etc. */
    expect_special(tg_relu(x), (double[]){nan, inf, 0, 0, 0, 1, 0}, "relu");
    expect_special(tg_clamp(x, -0.5f, 0.5f), (double[]){nan, 0.5, -0.5, 0, 0, 0.5, -0.5}, "clamp");
    expect_special(tg_sigmoid(x),
                   (double[]){nan, 1, 0, 0.5, 0.5, 0.7310585975646973, 0.2689414322376251},
                   "sigmoid");
    expect_special(tg_tanh(x),
                   (double[]){nan, 1, -1, 0, 0, 0.7615941762924194, -0.7615941762924194}, "tanh");
    expect_special(tg_exp(x), (double[]){nan, inf, 0, 1, 1, 2.7182817459106445, 0.3678794503211975},
                   "exp");
    expect_special(tg_log(x), (double[]){nan, inf, nan, -inf, -inf, 0, nan}, "log");
    expect_special(tg_sqrt(x), (double[]){nan, inf, nan, 0, 0, 1, nan}, "sqrt");
    expect_special(tg_abs(x), (double[]){nan, inf, inf, 0, 0, 1, 1}, "abs");
    expect_special(tg_neg(x), (double[]){nan, -inf, inf, 0, 0, -1, 1}, "neg");
    assert_true(isnan(tg_item(tg_sum(x)))); /* NaN propagates through reductions */

    /* F.binary_cross_entropy clamps each log at -100: pred 0 with target 1 gives 100 */
    const float pv[5] = {0, 1, 0, 1, 0.5f}, tv[5] = {1, 0, 0, 1, 1};
    tg_tensor *p = tg_from_data(pv, 1, (int64_t[]){5}), *t = tg_from_data(tv, 1, (int64_t[]){5});
    expect_values(tg_binary_cross_entropy(p, t, TG_REDUCE_NONE), 1, (int64_t[]){5},
                  (double[]){100, 100, 0, 0, 0.6931471824645996}, 1e-7, 0, "bce clamp");
    expect_values(tg_binary_cross_entropy(p, t, TG_REDUCE_MEAN), 0, NULL,
                  (double[]){40.13862991333008}, 1e-7, 0, "bce clamp mean");
    /* F.binary_cross_entropy_with_logits stays finite for huge logits. PyTorch's log-sum-exp
     * form rounds softplus(-100) to 0 where the log1p form keeps 3.7e-44: both are fine, so the
     * comparison allows an absolute 1e-30. */
    const float zv[6] = {100, -100, 100, -100, 0, 30}, lt[6] = {0, 1, 1, 0, 1, 0};
    tg_tensor *z = tg_from_data(zv, 1, (int64_t[]){6}), *l = tg_from_data(lt, 1, (int64_t[]){6});
    expect_values(tg_bce_with_logits(z, l, NULL, TG_REDUCE_NONE), 1, (int64_t[]){6},
                  (double[]){100, 100, 0, 0, 0.6931471824645996, 30}, 1e-7, 1e-30, "bcel big");
    expect_values(tg_bce_with_logits(z, l, tg_scalar(3.0f), TG_REDUCE_NONE), 1, (int64_t[]){6},
                  (double[]){100, 300, 0, 0, 2.079441547393799, 30}, 1e-7, 1e-30, "bcel big pw");
    /* The same with a pos_weight per element (the general path), and a logit of +inf, whose
     * loss is inf unless the target is 1:
     *   z = torch.tensor([100., -100, 100, -100, 0, 30, inf, inf], requires_grad=True)
     *   t = torch.tensor([0., 1, 1, 0, 1, 0, 0.5, 0])
     *   pw = torch.tensor([3., 3, 3, 3, 3, 3, 2, 0.5])
     *   F.binary_cross_entropy_with_logits(z, t, pos_weight=pw, reduction='none')
     *   -> [100, 300, 0, 0, 2.079441547393799, 30, inf, inf]; grad of the sum
     *   -> [1, -3, 0, 0, -1.5, 1, 0.5, 1] */
    const float zi[8] = {100, -100, 100, -100, 0, 30, INFINITY, INFINITY};
    const float ti[8] = {0, 1, 1, 0, 1, 0, 0.5f, 0}, wi[8] = {3, 3, 3, 3, 3, 3, 2, 0.5f};
    tg_tensor *zr = tg_requires_grad_(tg_from_data(zi, 1, (int64_t[]){8}), true);
    tg_tensor *bl = tg_bce_with_logits(zr, tg_from_data(ti, 1, (int64_t[]){8}),
                                       tg_from_data(wi, 1, (int64_t[]){8}), TG_REDUCE_NONE);
    expect_values(bl, 1, (int64_t[]){8},
                  (double[]){100, 300, 0, 0, 2.079441547393799, 30, inf, inf}, 1e-7, 1e-30,
                  "bcel inf pw per element");
    assert_int_equal(tg_backward(tg_sum(bl), NULL, false), TG_OK);
    expect_values(tg_grad(zr), 1, (int64_t[]){8}, (double[]){1, -3, 0, 0, -1.5, 1, 0.5, 1}, 1e-7, 0,
                  "bcel inf pw per element grad");
    /* division by zero follows IEEE 754 */
    const float num[3] = {1, -1, 0};
    expect_values(tg_div(tg_from_data(num, 1, (int64_t[]){3}), tg_scalar(0.0f)), 1, (int64_t[]){3},
                  (double[]){inf, -inf, nan}, 0, 0, "div by 0");
    tg_scope_end();
}

/* ---- in-place ops on strided views ---- */

static void test_inplace_on_strided_views(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(0, 12, 1), 2, (int64_t[]){3, 4});
    tg_tensor *t = tg_transpose(x, 0, 1);   /* [4, 3], strides (1, 4) */
    tg_tensor *col = tg_narrow(x, 1, 1, 2); /* columns 1..2 */
    uint32_t v0 = tg_version(x);
    assert_ptr_equal(tg_mul_scalar_(col, 10.0f), col);
    assert_true(tg_version(x) == v0 + 1);
    expect_values(x, 2, (int64_t[]){3, 4}, (double[]){0, 10, 20, 3, 4, 50, 60, 7, 8, 90, 100, 11},
                  0, 0, "mul_scalar_ on columns");
    /* add_ broadcasts other to t's shape: a row of 3 added to each row of the transpose */
    const float row[3] = {1000, 2000, 3000};
    assert_ptr_equal(tg_add_(t, tg_from_data(row, 1, (int64_t[]){3})), t);
    expect_values(
        x, 2, (int64_t[]){3, 4},
        (double[]){1000, 1010, 1020, 1003, 2004, 2050, 2060, 2007, 3008, 3090, 3100, 3011}, 0, 0,
        "add_ broadcast on transpose");
    /* a column [4, 1] broadcast over the transpose's 3 columns */
    const float colv[4] = {1, 2, 3, 4};
    assert_non_null(tg_add_(t, tg_from_data(colv, 2, (int64_t[]){4, 1})));
    expect_values(
        x, 2, (int64_t[]){3, 4},
        (double[]){1001, 1012, 1023, 1007, 2005, 2052, 2063, 2011, 3009, 3092, 3103, 3015}, 0, 0,
        "add_ column broadcast");
    /* axpy_ with a strided x, and with x aliasing t itself */
    tg_tensor *y = tg_zeros(2, (int64_t[]){2, 3});
    assert_ptr_equal(tg_axpy_(y, 0.5f, tg_narrow(x, 0, 1, 2)), NULL); /* [2, 4] vs [2, 3] */
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_ptr_equal(tg_axpy_(y, 0.5f, tg_narrow(tg_narrow(x, 0, 1, 2), 1, 0, 3)), y);
    expect_values(y, 2, (int64_t[]){2, 3}, (double[]){1002.5, 1026, 1031.5, 1504.5, 1546, 1551.5},
                  0, 0, "axpy_ strided x");
    assert_non_null(tg_axpy_(col, 1.0f, col)); /* col += col */
    expect_values(col, 2, (int64_t[]){3, 2}, (double[]){2024, 2046, 4104, 4126, 6184, 6206}, 0, 0,
                  "axpy_ aliasing");
    assert_non_null(tg_fill_(tg_narrow(t, 0, 3, 1), -1.0f)); /* t[3] is column 3 of x */
    expect_values(x, 2, (int64_t[]){3, 4},
                  (double[]){1001, 2024, 2046, -1, 2005, 4104, 4126, -1, 3009, 6184, 6206, -1}, 0,
                  0, "fill_ on a transposed row");
    assert_non_null(tg_zero_(tg_narrow(t, 0, 0, 2)));
    expect_values(x, 2, (int64_t[]){3, 4},
                  (double[]){0, 0, 2046, -1, 0, 0, 4126, -1, 0, 0, 6206, -1}, 0, 0,
                  "zero_ on a transposed block");
    /* other must broadcast to t's shape, not the other way round (PyTorch: "output with shape
     * [3] doesn't match the broadcast shape [2, 3]") */
    assert_null(tg_add_(tg_zeros(1, (int64_t[]){3}), tg_ones(2, (int64_t[]){2, 3})));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_non_null(strstr(tg_last_error(), "tg_add_"));
    tg_scope_end();
}

/* In-place add of a tensor that shares memory with the written-to one, against PyTorch 1.13:
 * x = torch.arange(5.); x[1:].add_(x[:-1]) raises "unsupported operation: some elements of the
 * input tensor and the written-to tensor refer to a single memory location" (both are dense
 * blocks that partly overlap), and so do x.add_(x.t()) on a [2, 2] x, x.add_(x[:1]) and
 * x.view(1, 4).add_(x) (same memory, other strides). x.add_(x), x.add_(x.view(4)) and
 * x[0:3].add_(x[3:6]) (no shared element) run. */
static void test_inplace_add_of_overlapping_input(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_arange(0, 5, 1);
    uint32_t v = tg_version(x);
    assert_null(tg_add_(tg_narrow(x, 0, 1, 4), tg_narrow(x, 0, 0, 4)));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "tg_add_"));
    assert_non_null(strstr(tg_last_error(), "single memory location"));
    assert_null(tg_axpy_(tg_narrow(x, 0, 0, 4), 2.0f, tg_narrow(x, 0, 1, 4)));
    assert_non_null(strstr(tg_last_error(), "tg_axpy_"));
    assert_null(tg_add_(x, tg_narrow(x, 0, 0, 1))); /* broadcast from inside x */
    tg_tensor *m = tg_reshape(tg_arange(0, 4, 1), 2, (int64_t[]){2, 2});
    assert_null(tg_add_(m, tg_transpose(m, 0, 1)));
    tg_tensor *row = tg_reshape(m, 2, (int64_t[]){1, 4});
    assert_null(tg_add_(row, tg_reshape(m, 1, (int64_t[]){4})));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_true(tg_version(x) == v);
    expect_values(x, 1, (int64_t[]){5}, (double[]){0, 1, 2, 3, 4}, 0, 0, "x is left as it was");
    expect_values(m, 2, (int64_t[]){2, 2}, (double[]){0, 1, 2, 3}, 0, 0, "m is left as it was");

    assert_ptr_equal(tg_add_(x, x), x);
    assert_ptr_equal(tg_add_(x, tg_reshape(x, 1, (int64_t[]){5})), x);
    expect_values(x, 1, (int64_t[]){5}, (double[]){0, 4, 8, 12, 16}, 0, 0, "full overlap");
    tg_tensor *y = tg_arange(0, 6, 1);
    assert_non_null(tg_add_(tg_narrow(y, 0, 0, 3), tg_narrow(y, 0, 3, 3)));
    expect_values(y, 1, (int64_t[]){6}, (double[]){3, 5, 7, 3, 4, 5}, 0, 0, "disjoint halves");
    tg_scope_end();
}

/* fill_ and zero_ write one value, so PyTorch 1.13 lets them write an expanded view (each memory
 * location gets that value): x = torch.arange(2.).reshape(2, 1); x.expand(2, 3).t().fill_(7)
 * gives x = [[7], [7]]. Other in-place ops are refused there (test_errors). */
static void test_fill_of_expanded_view(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_reshape(tg_arange(0, 2, 1), 2, (int64_t[]){2, 1});
    tg_tensor *e = tg_transpose(tg_expand(x, 2, (int64_t[]){2, 3}), 0, 1);
    uint32_t v = tg_version(x);
    assert_ptr_equal(tg_fill_(e, 7.0f), e);
    assert_true(tg_version(x) == v + 1);
    expect_values(x, 2, (int64_t[]){2, 1}, (double[]){7, 7}, 0, 0, "fill_ of an expanded view");
    expect_values(e, 2, (int64_t[]){3, 2}, (double[]){7, 7, 7, 7, 7, 7}, 0, 0, "the view itself");
    /* a large one, whose walk would be split across threads: each location written once */
    tg_tensor *row = tg_arange(0, 3, 1);
    tg_tensor *big = tg_expand(row, 2, (int64_t[]){40000, 3});
    assert_ptr_equal(tg_zero_(big), big);
    expect_values(row, 1, (int64_t[]){3}, (double[]){0, 0, 0}, 0, 0, "zero_ of a large expand");
    tg_tensor *mid = tg_narrow(big, 1, 1, 1); /* [40000, 1], stride 0 along dim 0 */
    assert_ptr_equal(tg_fill_(mid, 2.5f), mid);
    expect_values(row, 1, (int64_t[]){3}, (double[]){0, 2.5, 0}, 0, 0, "fill_ of its column");
    tg_scope_end();
}

/* ---- printing ---- */

static void expect_repr(const tg_tensor *t, const char *want)
{
    char *s = tg_repr(t);
    assert_non_null(s);
    assert_string_equal(s, want);
    free(s);
}

/* Runs tg_print with stdout sent to a temporary file and returns what it wrote. */
static char *captured_print(const tg_tensor *t)
{
    fflush(stdout);
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    int saved = dup(fileno(stdout));
    dup2(fileno(tmp), fileno(stdout));
    int rc = tg_print(t);
    fflush(stdout);
    dup2(saved, fileno(stdout));
    close(saved);
    assert_int_equal(rc, 0);
    static char buf[1024];
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    buf[n] = '\0';
    fclose(tmp);
    return buf;
}

/* ---- the same bits on any number of threads ---- */

/* Op k of x (a [ROWS, COLS] leaf) and c (a positive constant of the same shape). */
#define ROWS       509
#define COLS       389 /* 198,001 elements: six times the threading grain, no SIMD multiple */
#define THREAD_OPS 40
static tg_tensor *thread_op(int k, tg_tensor *x, tg_tensor *c)
{
    tg_tensor *t = tg_add_scalar(c, -0.5f);  /* in [0, 1): a soft target for the losses */
    tg_tensor *xm = tg_add_scalar(x, -0.5f); /* both signs, for relu and abs */
    /* clang-format off */
    switch (k) {
    case 0: return tg_exp(x);           case 1: return tg_log(x);
    case 2: return tg_sin(x);           case 3: return tg_cos(x);
    case 4: return tg_tanh(x);          case 5: return tg_sigmoid(x);
    case 6: return tg_relu(xm);         case 7: return tg_sqrt(x);
    case 8: return tg_abs(xm);          case 9: return tg_neg(x);
    case 10: return tg_add(x, c);       case 11: return tg_sub(c, x);
    case 12: return tg_mul(x, c);       case 13: return tg_div(x, c);
    case 14: return tg_div(c, x);       case 15: return tg_pow(x, c);
    case 16: return tg_pow(c, x);       case 17: return tg_add_scalar(x, 0.25f);
    case 18: return tg_mul_scalar(x, -1.5f);  case 19: return tg_rsub_scalar(2.0f, x);
    case 20: return tg_clamp(x, 0.2f, 0.8f);  case 21: return tg_pow_scalar(x, 2.0f);
    case 22: return tg_pow_scalar(x, 0.5f);   case 23: return tg_pow_scalar(x, 2.5f);
    case 24: return tg_pow_scalar(x, -1.0f);
    case 25: return tg_mul(x, tg_narrow(c, 0, 0, 1));   /* a row, broadcast down */
    case 26: return tg_div(tg_narrow(c, 1, 3, 1), x);   /* a strided column, across */
    case 27: return tg_sum_dim(x, 0, false);  case 28: return tg_mean_dim(x, 1, true);
    case 29: return tg_sum(x);                case 30: return tg_mean(x);
    case 31: return tg_bce_with_logits(x, t, NULL, TG_REDUCE_MEAN);
    case 32: return tg_bce_with_logits(x, t, NULL, TG_REDUCE_NONE);
    case 33: return tg_binary_cross_entropy(tg_mul_scalar(x, 0.9f), t, TG_REDUCE_SUM);
    case 34: return tg_mse_loss(x, c, TG_REDUCE_MEAN);
    /* strided walks: both operands transposed, and a transposed copy */
    case 35: return tg_mul(tg_transpose(x, 0, 1), tg_transpose(c, 0, 1));
    case 36: return tg_contiguous(tg_transpose(x, 0, 1));
    /* 12 wide rows summed down (bands of columns on several threads) */
    case 37: return tg_sum_dim(tg_expand(tg_reshape(x, 2, (int64_t[]){1, ROWS * COLS}), 2,
                                         (int64_t[]){12, ROWS * COLS}), 0, false);
    /* short rows of a strided view: [4, ROWS, 37] summed over its last dim */
    case 38: return tg_sum_dim(tg_expand(tg_narrow(x, 1, 0, 37), 3, (int64_t[]){4, ROWS, 37}),
                               2, false);
    /* a middle dim: [2, ROWS, COLS] summed over ROWS */
    default: return tg_sum_dim(tg_expand(x, 3, (int64_t[]){2, ROWS, COLS}), 1, false);
    }
    /* clang-format on */
}

/* op(x, c) and x's gradient through sum(op * r) (a dense gradient) and through sum(op) (one
 * value), as one buffer of floats; caller frees. */
static float *op_bits(int op, tg_tensor *x, tg_tensor *c, int64_t *len)
{
    tg_scope_begin();
    tg_tensor *y = thread_op(op, x, c);
    assert_non_null(y);
    tg_tensor *r = tg_rand(tg_ndim(y), tg_shape(y), 11);
    assert_int_equal(tg_backward(tg_sum(tg_mul(y, r)), NULL, false), TG_OK);
    tg_tensor *g1 = tg_clone(tg_grad(x));
    tg_grad_reset(x);
    assert_int_equal(tg_backward(tg_sum(thread_op(op, x, c)), NULL, false), TG_OK);
    tg_tensor *parts[3] = {y, g1, tg_grad(x)};
    int64_t n = 0;
    for (int i = 0; i < 3; i++)
        n += tg_numel(parts[i]);
    float *out = malloc(sizeof(float) * (size_t)n);
    assert_non_null(out);
    for (int i = 0, at = 0; i < 3; at += (int)tg_numel(parts[i]), i++) {
        float *v = tg_test_values(parts[i]);
        memcpy(out + at, v, sizeof(float) * (size_t)tg_numel(parts[i]));
        free(v);
    }
    tg_grad_reset(x);
    tg_scope_end();
    *len = n;
    return out;
}

static void test_threads_same_bits(void **state)
{
    (void)state;
    const int64_t shape[2] = {ROWS, COLS};
    tg_scope_begin();
    tg_tensor *x = tg_keep(tg_requires_grad_(tg_add_scalar(tg_rand(2, shape, 3), 0.05f), true));
    tg_tensor *c = tg_keep(tg_add_scalar(tg_rand(2, shape, 4), 0.5f));
    tg_scope_end();
    for (int o = 0; o < THREAD_OPS; o++) {
        int64_t n1, n3;
        tg_set_num_threads(1);
        float *one = op_bits(o, x, c, &n1);
        tg_set_num_threads(3);
        float *three = op_bits(o, x, c, &n3);
        assert_int_equal(n1, n3);
        for (int64_t i = 0; i < n1; i++)
            if (memcmp(&one[i], &three[i], sizeof(float)) != 0)
                fail_msg("op %d: value %lld is %a on 1 thread, %a on 3", o, (long long)i, one[i],
                         three[i]);
        free(one), free(three);
    }
    /* in place on a transposed view (with a row broadcast and a strided input), then on the
     * contiguous tensor under it (one long run, cut in parts) */
    float *after[2];
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        tg_scope_begin();
        tg_tensor *base = tg_clone(c), *t = tg_transpose(base, 0, 1);
        assert_non_null(tg_add_(t, tg_narrow(tg_transpose(c, 0, 1), 0, 5, 1)));
        assert_non_null(tg_axpy_(t, -0.5f, tg_transpose(c, 0, 1)));
        assert_non_null(tg_mul_scalar_(t, 1.75f));
        assert_non_null(tg_axpy_(base, 0.375f, c));
        assert_non_null(tg_mul_scalar_(base, -3.0f));
        after[th / 2] = tg_test_values(base);
        tg_scope_end();
    }
    assert_memory_equal(after[0], after[1], sizeof(float) * ROWS * COLS);
    free(after[0]), free(after[1]);
    tg_set_num_threads(0);
    tg_release(x), tg_release(c);
}

/* ---- sums kept by large unary ops ----
 * A unary op with TG_STREAM_MIN or more outputs, recorded in a graph, keeps the sum of its
 * output, and a tg_sum or tg_mean of all of it returns that instead of reading it again. It
 * must have exactly the bits of a sum read from memory, on every family and thread count, and
 * no write may leave it stale. */
#define KEPT_N (((int64_t)1 << 22) + 1234) /* past TG_STREAM_MIN, ending in a short leaf */

typedef tg_tensor *(*unary_op)(tg_tensor *);

static void expect_same_float(float got, float want, const char *what, int op)
{
    if (memcmp(&got, &want, sizeof got) != 0)
        fail_msg("%s, op %d: %a, from memory %a", what, op, got, want);
}

static void test_large_unary_keeps_exact_sum(void **state)
{
    (void)state;
    const unary_op ops[] = {tg_sigmoid, tg_exp,  tg_sin,  tg_cos, tg_tanh,
                            tg_log,     tg_sqrt, tg_relu, tg_abs, tg_neg};
    const int64_t shape[1] = {KEPT_N}, halves[2] = {2, KEPT_N / 2};
    tg_scope_begin();
    /* (-3, 3) for most; log and sqrt get (0.01, 3.01) */
    tg_tensor *x = tg_keep(
        tg_requires_grad_(tg_add_scalar(tg_mul_scalar(tg_rand(1, shape, 21), 6.0f), -3.0f), true));
    tg_tensor *pos = tg_keep(
        tg_requires_grad_(tg_add_scalar(tg_mul_scalar(tg_rand(1, shape, 22), 3.0f), 0.01f), true));
    tg_scope_end();
    for (int o = 0; o < (int)(sizeof ops / sizeof ops[0]); o++) {
        tg_tensor *in = ops[o] == tg_log || ops[o] == tg_sqrt ? pos : x;
        for (int th = 1; th <= 2; th++) {
            tg_set_num_threads(th);
            tg_scope_begin();
            tg_tensor *y = ops[o](in);
            bool prev = tg_set_grad_enabled(false);
            tg_tensor *plain = ops[o](in); /* records nothing, keeps nothing */
            tg_set_grad_enabled(prev);
            assert_non_null(y), assert_non_null(plain);
            float *a = tg_test_values(y), *b = tg_test_values(plain);
            assert_memory_equal(a, b, sizeof(float) * KEPT_N);
            free(a), free(b);
            float want = tg_item(tg_sum(plain));
            expect_same_float(tg_item(tg_sum(y)), want, "sum", o);
            expect_same_float(tg_item(tg_mean(y)), tg_item(tg_mean(plain)), "mean", o);
            /* a contiguous view of all of it has the same sum; a part is summed from memory */
            expect_same_float(tg_item(tg_sum(tg_reshape(y, 2, halves))), want, "reshape", o);
            expect_same_float(tg_item(tg_sum(tg_narrow(y, 0, 1, KEPT_N - 1))),
                              tg_item(tg_sum(tg_narrow(plain, 0, 1, KEPT_N - 1))), "narrow", o);
            tg_scope_end();
        }
    }
    tg_set_num_threads(0);
    tg_release(x), tg_release(pos);
}

/* Writes that leave the version alone (through tg_data's pointer) and writes that bump it
 * (in place, through a detached alias) both make the next sum read memory. */
static void test_kept_sum_follows_writes(void **state)
{
    (void)state;
    const int64_t shape[1] = {KEPT_N};
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_rand(1, shape, 23), true);
    tg_tensor *y = tg_sigmoid(x);
    float *p = tg_data(y);
    assert_non_null(p);
    p[5] = 1000.0f;
    expect_same_float(tg_item(tg_sum(y)), tg_item(tg_sum(tg_clone(y))), "after tg_data", 0);

    tg_tensor *z = tg_exp(x);
    assert_non_null(tg_mul_scalar_(tg_detach(z), 2.0f));
    float after = tg_item(tg_sum(z));
    expect_same_float(after, tg_item(tg_sum(tg_clone(z))), "after an in-place op", 1);
    assert_true(after > 2.5f * (float)KEPT_N); /* mean of 2 e^U[0,1) is about 3.44 */
    tg_scope_end();
}

static void test_repr_and_print(void **state)
{
    (void)state;
    tg_scope_begin();
    /* strings printed by PyTorch 1.13 for the same tensors */
    expect_repr(tg_arange(1, 4, 1), "tensor([1., 2., 3.])");
    const float m[4] = {0.5f, 1.25f, -3.0f, 100.0f};
    expect_repr(tg_from_data(m, 2, (int64_t[]){2, 2}),
                "tensor([[  0.5000,   1.2500],\n        [ -3.0000, 100.0000]])");
    tg_tensor *a = tg_requires_grad_(tg_from_data(m, 1, (int64_t[]){2}), true);
    expect_repr(a, "tensor([0.5000, 1.2500], requires_grad=True)");
    expect_repr(tg_mul_scalar(tg_requires_grad_(tg_arange(1, 3, 1), true), 2.0f),
                "tensor([2., 4.], grad_fn=<MulBackward0>)");
    expect_repr(tg_scalar(3.5f), "tensor(3.5000)");
    const float sci[3] = {1e-5f, 1.0f, 1000.0f};
    expect_repr(tg_from_data(sci, 1, (int64_t[]){3}),
                "tensor([1.0000e-05, 1.0000e+00, 1.0000e+03])");
    const float sp[4] = {NAN, INFINITY, -INFINITY, 1.5f};
    expect_repr(tg_from_data(sp, 1, (int64_t[]){4}), "tensor([   nan,    inf,   -inf, 1.5000])");
    tg_tensor *t = tg_transpose(tg_reshape(tg_arange(0, 12, 1), 2, (int64_t[]){3, 4}), 0, 1);
    expect_repr(t, "tensor([[ 0.,  4.,  8.],\n        [ 1.,  5.,  9.],\n        [ 2.,  6., 10.],\n"
                   "        [ 3.,  7., 11.]])");
    expect_repr(tg_zeros(2, (int64_t[]){2, 0}), "tensor([], size=(2, 0))");
    expect_repr(
        tg_reshape(tg_arange(1, 9, 1), 3, (int64_t[]){2, 2, 2}),
        "tensor([[[1., 2.],\n         [3., 4.]],\n\n        [[5., 6.],\n         [7., 8.]]])");
    expect_repr(tg_arange(0, 1001, 1), "tensor([   0.,    1.,    2.,  ...,  998.,  999., 1000.])");
    assert_string_equal(captured_print(t),
                        "tensor([[ 0.,  4.,  8.],\n        [ 1.,  5.,  9.],\n        [ 2.,  6., "
                        "10.],\n        [ 3.,  7., 11.]])\n");
    assert_string_equal(captured_print(a), "tensor([0.5000, 1.2500], requires_grad=True)\n");
    assert_null(tg_repr(NULL));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_true(tg_print(NULL) < 0);
    tg_scope_end();
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_of_huge_expanded_view), /* first: see its comment */
        cmocka_unit_test(test_unary_values),
        cmocka_unit_test(test_scalar_operand_values),
        cmocka_unit_test(test_binary_broadcast_values),
        cmocka_unit_test(test_narrow_broadcast_bits),
        cmocka_unit_test(test_short_run_broadcast_bits),
        cmocka_unit_test(test_binary_on_transposed_operands),
        cmocka_unit_test(test_unary_on_strided_inputs),
        cmocka_unit_test(test_pow_special_cases),
        cmocka_unit_test(test_reduction_values),
        cmocka_unit_test(test_sum_accuracy_one_million),
        cmocka_unit_test(test_sum_of_exact_blocks),
        cmocka_unit_test(test_sum_of_permuted_views),
        cmocka_unit_test(test_sum_dim_of_transpose),
        cmocka_unit_test(test_sum_dim_of_permuted_view),
        cmocka_unit_test(test_sum_dim_of_narrowed_view),
        cmocka_unit_test(test_sum_dim_of_expanded_views),
        cmocka_unit_test(test_tanh_gradient_bits),
        cmocka_unit_test(test_copy_of_short_rows),
        cmocka_unit_test(test_sum_dim_of_broadcast_value),
        cmocka_unit_test(test_matmul_values),
        cmocka_unit_test(test_matmul_empty),
        cmocka_unit_test(test_matmul_dot_lengths),
        cmocka_unit_test(test_matmul_matrix_vector),
        cmocka_unit_test(test_matmul_dots_backward),
        cmocka_unit_test(test_shape_op_values),
        cmocka_unit_test(test_loss_values),
        cmocka_unit_test(test_mse_loss_broadcasts),
        cmocka_unit_test(test_mse_matches_composition),
        cmocka_unit_test(test_nan_inf_behaviour),
        cmocka_unit_test(test_relu_nan_and_negative_zero),
        cmocka_unit_test(test_pow_scalar_half_exponents),
        cmocka_unit_test(test_pow_tensor_exponent_layouts),
        cmocka_unit_test(test_pow_masked_gradients),
        cmocka_unit_test(test_mse_gradient_bits),
        cmocka_unit_test(test_bce_bits),
        cmocka_unit_test(test_sum_dim_of_negative_zeros),
        cmocka_unit_test(test_inplace_on_strided_views),
        cmocka_unit_test(test_fill_of_expanded_view),
        cmocka_unit_test(test_inplace_add_of_overlapping_input),
        cmocka_unit_test(test_threads_same_bits),
        cmocka_unit_test(test_large_unary_keeps_exact_sum),
        cmocka_unit_test(test_kept_sum_follows_writes),
        cmocka_unit_test(test_repr_and_print),
    };
    /* Ops split across threads from 32768 elements here, not from the default grain, so that
     * the split paths run on inputs of test size (1 against 3 threads, bit for bit). */
    tg_parallel_set_grain(32768);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
