/* Finite-difference gradient checks of every differentiable op, on broadcast shapes and on
 * non-contiguous inputs (transposed, narrowed, strided, expanded views). */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>

#include "gradcheck.h"
#include "tapegrad.h"

#define SHAPE(...)                                                                                 \
    .ndim = (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)), .shape = {__VA_ARGS__}
#define N_LAYOUTS 5

static const gc_layout LAYOUTS[N_LAYOUTS] = {GC_CONTIGUOUS, GC_TRANSPOSED, GC_NARROWED, GC_STRIDED,
                                             GC_EXPANDED};
static const char *const LAYOUT_NAME[N_LAYOUTS] = {"contiguous", "transposed", "narrowed",
                                                   "strided", "expanded"};

/* ---- unary ops (including the ones with a scalar parameter) ---- */

typedef struct {
    const char *name;
    tg_tensor *(*f)(tg_tensor *);
    tg_tensor *(*fs)(tg_tensor *, float); /* tensor-scalar forms */
    float s;
    float lo, hi;
    float kink;
    bool has_kink;
} unary_case;

static tg_tensor *call_unary(tg_tensor *const *x, void *ctx)
{
    const unary_case *c = ctx;
    return c->f ? c->f(x[0]) : c->fs(x[0], c->s);
}

/* Checks the op on a [3, 4] input in every layout, on a 0-d input and on a 3-d input. */
static void check_unary(const unary_case *c, uint64_t seed)
{
    char name[96];
    for (int l = 0; l < N_LAYOUTS; l++) {
        gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l], .lo = c->lo, .hi = c->hi};
        in.kinks[0] = c->kink;
        in.n_kinks = c->has_kink;
        snprintf(name, sizeof name, "%s(%g) %s", c->name, (double)c->s, LAYOUT_NAME[l]);
        assert_true(gc_check(name, call_unary, (void *)c, 1, &in, seed + (uint64_t)l));
    }
    gc_input scalar = {.ndim = 0, .lo = c->lo, .hi = c->hi};
    scalar.kinks[0] = c->kink;
    scalar.n_kinks = c->has_kink;
    snprintf(name, sizeof name, "%s(%g) 0-d", c->name, (double)c->s);
    assert_true(gc_check(name, call_unary, (void *)c, 1, &scalar, seed + 10));
    gc_input cube = scalar;
    cube.ndim = 3, cube.shape[0] = 2, cube.shape[1] = 3, cube.shape[2] = 2;
    cube.layout = GC_TRANSPOSED;
    snprintf(name, sizeof name, "%s(%g) 3-d", c->name, (double)c->s);
    assert_true(gc_check(name, call_unary, (void *)c, 1, &cube, seed + 11));
}

static void test_elementwise_unary(void **state)
{
    (void)state;
    const unary_case cases[] = {
        {"neg", tg_neg, NULL, 0, -2, 2, 0, false},
        {"exp", tg_exp, NULL, 0, -2, 2, 0, false},
        {"log", tg_log, NULL, 0, 0.2f, 3, 0, false},
        {"sin", tg_sin, NULL, 0, -3, 3, 0, false},
        {"cos", tg_cos, NULL, 0, -3, 3, 0, false},
        {"tanh", tg_tanh, NULL, 0, -2, 2, 0, false},
        {"sigmoid", tg_sigmoid, NULL, 0, -4, 4, 0, false},
        {"relu", tg_relu, NULL, 0, -2, 2, 0, true},
        {"sqrt", tg_sqrt, NULL, 0, 0.2f, 3, 0, false},
        {"abs", tg_abs, NULL, 0, -2, 2, 0, true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_unary(&cases[i], 100 * i);
}

static void test_scalar_operand_ops(void **state)
{
    (void)state;
    const unary_case cases[] = {
        {"add_scalar", NULL, tg_add_scalar, 2.5f, -2, 2, 0, false},
        {"mul_scalar", NULL, tg_mul_scalar, -1.5f, -2, 2, 0, false},
        {"mul_scalar", NULL, tg_mul_scalar, 0.0f, -2, 2, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 2.0f, -2, 2, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 3.0f, -2, 2, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 0.5f, 0.3f, 3, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, -1.0f, 0.4f, 3, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 1.5f, 0.3f, 3, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, -2.0f, 0.5f, 3, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, -0.5f, 0.4f, 3, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 1.0f, -2, 2, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 0.0f, -2, 2, 0, false},
        {"pow_scalar", NULL, tg_pow_scalar, 2.5f, 0.3f, 2, 0, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_unary(&cases[i], 1000 + 100 * i);
}

static tg_tensor *call_rsub(tg_tensor *const *x, void *ctx)
{
    return tg_rsub_scalar(*(const float *)ctx, x[0]);
}

static void test_rsub_scalar(void **state)
{
    (void)state;
    float s = 2.0f;
    for (int l = 0; l < N_LAYOUTS; l++) {
        gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l]};
        assert_true(gc_check("rsub_scalar", call_rsub, &s, 1, &in, 7 + (uint64_t)l));
    }
    gc_input scalar = {.ndim = 0};
    assert_true(gc_check("rsub_scalar 0-d", call_rsub, &s, 1, &scalar, 9));
}

typedef struct {
    float lo, hi;
} bounds;

static tg_tensor *call_clamp(tg_tensor *const *x, void *ctx)
{
    const bounds *b = ctx;
    return tg_clamp(x[0], b->lo, b->hi);
}

static void test_clamp(void **state)
{
    (void)state;
    /* both bounds, only lo (hi = NaN), only hi (lo = NaN) */
    bounds cases[] = {{-0.5f, 0.5f}, {-0.3f, NAN}, {NAN, 0.2f}};
    for (int c = 0; c < 3; c++) {
        for (int l = 0; l < N_LAYOUTS; l++) {
            gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l], .lo = -1.5f, .hi = 1.5f};
            if (!isnan(cases[c].lo))
                in.kinks[in.n_kinks++] = cases[c].lo;
            if (!isnan(cases[c].hi))
                in.kinks[in.n_kinks++] = cases[c].hi;
            char name[64];
            snprintf(name, sizeof name, "clamp case %d %s", c, LAYOUT_NAME[l]);
            assert_true(
                gc_check(name, call_clamp, &cases[c], 1, &in, 50 + 10 * (uint64_t)c + (uint64_t)l));
        }
    }
}

/* ---- binary ops ---- */

typedef struct {
    const char *name;
    tg_tensor *(*f)(tg_tensor *, tg_tensor *);
    float alo, ahi, blo, bhi; /* domains: divisors and pow bases stay positive */
} binary_case;

static tg_tensor *call_binary(tg_tensor *const *x, void *ctx)
{
    return ((const binary_case *)ctx)->f(x[0], x[1]);
}

typedef struct {
    int andim, bndim;
    int64_t ashape[3], bshape[3];
    gc_layout la, lb;
} binary_shapes;

static const binary_shapes BINARY_SHAPES[] = {
    {2, 2, {3, 4}, {3, 4}, GC_CONTIGUOUS, GC_CONTIGUOUS},
    {2, 2, {3, 4}, {3, 4}, GC_TRANSPOSED, GC_STRIDED},
    {2, 2, {3, 4}, {3, 4}, GC_NARROWED, GC_EXPANDED},
    {2, 2, {3, 4}, {3, 4}, GC_EXPANDED, GC_TRANSPOSED},
    {2, 2, {3, 1}, {1, 4}, GC_CONTIGUOUS, GC_CONTIGUOUS}, /* column x row */
    {2, 2, {3, 1}, {1, 4}, GC_STRIDED, GC_NARROWED},
    {3, 1, {2, 3, 4}, {4}, GC_CONTIGUOUS, GC_CONTIGUOUS}, /* trailing vector */
    {3, 1, {2, 3, 4}, {4}, GC_TRANSPOSED, GC_STRIDED},
    {1, 3, {4}, {2, 3, 4}, GC_CONTIGUOUS, GC_TRANSPOSED},
    {0, 2, {0}, {3, 4}, GC_CONTIGUOUS, GC_CONTIGUOUS},       /* scalar x matrix */
    {2, 0, {3, 4}, {0}, GC_TRANSPOSED, GC_CONTIGUOUS},       /* matrix x scalar */
    {0, 0, {0}, {0}, GC_CONTIGUOUS, GC_STRIDED},             /* scalar x scalar */
    {3, 2, {2, 1, 4}, {3, 1}, GC_CONTIGUOUS, GC_CONTIGUOUS}, /* 3-d middle broadcast */
    {3, 3, {2, 3, 4}, {2, 1, 4}, GC_NARROWED, GC_CONTIGUOUS},
    {1, 1, {5}, {5}, GC_STRIDED, GC_NARROWED},
    {1, 2, {1}, {3, 2}, GC_CONTIGUOUS, GC_CONTIGUOUS},
};

static void check_binary(const binary_case *c, uint64_t seed)
{
    size_t n = sizeof BINARY_SHAPES / sizeof BINARY_SHAPES[0];
    for (size_t i = 0; i < n; i++) {
        const binary_shapes *s = &BINARY_SHAPES[i];
        gc_input in[2] = {{.ndim = s->andim, .layout = s->la, .lo = c->alo, .hi = c->ahi},
                          {.ndim = s->bndim, .layout = s->lb, .lo = c->blo, .hi = c->bhi}};
        for (int d = 0; d < 3; d++) {
            in[0].shape[d] = s->ashape[d];
            in[1].shape[d] = s->bshape[d];
        }
        char name[64];
        snprintf(name, sizeof name, "%s pattern %zu", c->name, i);
        assert_true(gc_check(name, call_binary, (void *)c, 2, in, seed + i));
        /* and with only one side requiring grad */
        in[0].constant = true;
        snprintf(name, sizeof name, "%s pattern %zu (a constant)", c->name, i);
        assert_true(gc_check(name, call_binary, (void *)c, 2, in, seed + i));
        in[0].constant = false;
        in[1].constant = true;
        snprintf(name, sizeof name, "%s pattern %zu (b constant)", c->name, i);
        assert_true(gc_check(name, call_binary, (void *)c, 2, in, seed + i));
    }
}

static void test_binary(void **state)
{
    (void)state;
    const binary_case cases[] = {
        {"add", tg_add, -2, 2, -2, 2},         {"sub", tg_sub, -2, 2, -2, 2},
        {"mul", tg_mul, -2, 2, -2, 2},         {"div", tg_div, -2, 2, 0.5f, 2},
        {"div-neg", tg_div, -2, 2, -2, -0.5f}, {"pow", tg_pow, 0.5f, 2, -2, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_binary(&cases[i], 5000 + 100 * i);
}

/* Seeded random shapes: an output shape of 0-3 dims (sizes 1-4), each operand a suffix of it
 * with some dims set to 1, seen through a random layout that applies to its shape. */
static void random_operand(uint64_t *rng, int on, const int64_t *os, gc_input *in)
{
    in->ndim = (int)(tg_test_rng_next(rng) % (uint64_t)(on + 1));
    bool big = false;
    for (int d = 0; d < in->ndim; d++) {
        int64_t s = os[on - in->ndim + d];
        in->shape[d] = tg_test_rng_next(rng) % 3 == 0 ? 1 : s;
        big = big || in->shape[d] > 1;
    }
    gc_layout options[N_LAYOUTS];
    int n = 0;
    options[n++] = GC_CONTIGUOUS;
    options[n++] = GC_STRIDED;
    if (in->ndim >= 1)
        options[n++] = GC_NARROWED;
    if (in->ndim >= 2)
        options[n++] = GC_TRANSPOSED;
    if (big)
        options[n++] = GC_EXPANDED;
    in->layout = options[tg_test_rng_next(rng) % (uint64_t)n];
}

static void test_random_broadcast_shapes(void **state)
{
    (void)state;
    const binary_case cases[] = {
        {"add", tg_add, -2, 2, -2, 2},   {"sub", tg_sub, -2, 2, -2, 2},
        {"mul", tg_mul, -2, 2, -2, 2},   {"div", tg_div, -2, 2, 0.5f, 2},
        {"pow", tg_pow, 0.5f, 2, -2, 2},
    };
    uint64_t rng = 20240601;
    for (int trial = 0; trial < 60; trial++) {
        int on = (int)(tg_test_rng_next(&rng) % 4);
        int64_t os[3];
        for (int d = 0; d < on; d++)
            os[d] = 1 + (int64_t)(tg_test_rng_next(&rng) % 4);
        gc_input in[2] = {{0}, {0}};
        random_operand(&rng, on, os, &in[0]);
        random_operand(&rng, on, os, &in[1]);
        const binary_case *c = &cases[trial % 5];
        in[0].lo = c->alo, in[0].hi = c->ahi, in[1].lo = c->blo, in[1].hi = c->bhi;
        char name[96];
        snprintf(name, sizeof name, "%s random trial %d (%d-d %s x %d-d %s)", c->name, trial,
                 in[0].ndim, LAYOUT_NAME[in[0].layout], in[1].ndim, LAYOUT_NAME[in[1].layout]);
        assert_true(gc_check(name, call_binary, (void *)c, 2, in, 9000 + (uint64_t)trial));
    }
}

/* ---- reductions ---- */

typedef struct {
    tg_tensor *(*all)(tg_tensor *);
    tg_tensor *(*dim)(tg_tensor *, int, bool);
    int d;
    bool keepdim;
} reduce_case;

static tg_tensor *call_reduce(tg_tensor *const *x, void *ctx)
{
    const reduce_case *c = ctx;
    return c->all ? c->all(x[0]) : c->dim(x[0], c->d, c->keepdim);
}

static void test_sum_mean(void **state)
{
    (void)state;
    tg_tensor *(*const alls[2])(tg_tensor *) = {tg_sum, tg_mean};
    for (int k = 0; k < 2; k++) {
        reduce_case c = {alls[k], NULL, 0, false};
        for (int l = 0; l < N_LAYOUTS; l++) {
            gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l]};
            assert_true(gc_check(k ? "mean" : "sum", call_reduce, &c, 1, &in, 300 + (uint64_t)l));
        }
        gc_input scalar = {.ndim = 0};
        assert_true(gc_check("sum/mean 0-d", call_reduce, &c, 1, &scalar, 310));
        gc_input cube = {SHAPE(2, 3, 4), .layout = GC_STRIDED};
        assert_true(gc_check("sum/mean 3-d", call_reduce, &c, 1, &cube, 311));
    }
}

static void test_sum_mean_dim(void **state)
{
    (void)state;
    tg_tensor *(*const dims[2])(tg_tensor *, int, bool) = {tg_sum_dim, tg_mean_dim};
    char name[64];
    for (int k = 0; k < 2; k++) {
        for (int d = -3; d < 3; d++) {
            for (int keep = 0; keep < 2; keep++) {
                reduce_case c = {NULL, dims[k], d, keep};
                for (int l = 0; l < N_LAYOUTS; l++) {
                    gc_input in = {SHAPE(2, 3, 4), .layout = LAYOUTS[l]};
                    snprintf(name, sizeof name, "%s dim %d keepdim %d %s",
                             k ? "mean_dim" : "sum_dim", d, keep, LAYOUT_NAME[l]);
                    assert_true(gc_check(name, call_reduce, &c, 1, &in, 400 + (uint64_t)l));
                }
            }
        }
        for (int d = -1; d < 1; d++) {
            reduce_case c = {NULL, dims[k], d, d == 0};
            gc_input vec = {SHAPE(5), .layout = GC_STRIDED};
            assert_true(gc_check("reduce_dim 1-d", call_reduce, &c, 1, &vec, 420));
            gc_input scalar = {.ndim = 0};
            assert_true(gc_check("reduce_dim 0-d", call_reduce, &c, 1, &scalar, 421));
        }
    }
}

/* ---- matmul ---- */

static tg_tensor *call_matmul(tg_tensor *const *x, void *ctx)
{
    (void)ctx;
    return tg_matmul(x[0], x[1]);
}

static void test_matmul(void **state)
{
    (void)state;
    typedef struct {
        int an, bn;
        int64_t as[2], bs[2];
        gc_layout la, lb;
    } mm_case;
    const mm_case cases[] = {
        {2, 2, {3, 4}, {4, 5}, GC_CONTIGUOUS, GC_CONTIGUOUS},
        {2, 2, {3, 4}, {4, 5}, GC_TRANSPOSED, GC_CONTIGUOUS},
        {2, 2, {3, 4}, {4, 5}, GC_CONTIGUOUS, GC_TRANSPOSED},
        {2, 2, {3, 4}, {4, 5}, GC_TRANSPOSED, GC_TRANSPOSED},
        {2, 2, {3, 4}, {4, 5}, GC_NARROWED, GC_STRIDED},
        {2, 2, {3, 4}, {4, 5}, GC_EXPANDED, GC_EXPANDED},
        {2, 2, {1, 4}, {4, 1}, GC_CONTIGUOUS, GC_TRANSPOSED},
        {2, 2, {4, 1}, {1, 3}, GC_TRANSPOSED, GC_CONTIGUOUS},
        {2, 1, {3, 4}, {4}, GC_CONTIGUOUS, GC_CONTIGUOUS},
        {2, 1, {3, 4}, {4}, GC_TRANSPOSED, GC_STRIDED},
        {1, 2, {4}, {4, 5}, GC_CONTIGUOUS, GC_CONTIGUOUS},
        {1, 2, {4}, {4, 5}, GC_NARROWED, GC_TRANSPOSED},
        {1, 1, {4}, {4}, GC_CONTIGUOUS, GC_CONTIGUOUS},
        {1, 1, {4}, {4}, GC_STRIDED, GC_NARROWED},
        {1, 1, {1}, {1}, GC_CONTIGUOUS, GC_CONTIGUOUS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const mm_case *c = &cases[i];
        gc_input in[2] = {{.ndim = c->an, .layout = c->la}, {.ndim = c->bn, .layout = c->lb}};
        for (int d = 0; d < 2; d++) {
            in[0].shape[d] = c->as[d];
            in[1].shape[d] = c->bs[d];
        }
        char name[48];
        snprintf(name, sizeof name, "matmul case %zu", i);
        assert_true(gc_check(name, call_matmul, NULL, 2, in, 600 + i));
        in[1].constant = true;
        assert_true(gc_check(name, call_matmul, NULL, 2, in, 620 + i));
    }
}

/* ---- shape ops ---- */

typedef enum {
    SH_RESHAPE,
    SH_TRANSPOSE,
    SH_PERMUTE,
    SH_NARROW,
    SH_EXPAND,
    SH_CONTIGUOUS,
    SH_CLONE
} shape_kind;

typedef struct {
    shape_kind kind;
    int ndim;
    int64_t shape[4]; /* reshape / expand target */
    int dims[4];      /* transpose: dims[0..1]; permute: all; narrow: dim */
    int64_t start, length;
} shape_case;

static tg_tensor *call_shape(tg_tensor *const *x, void *ctx)
{
    const shape_case *c = ctx;
    switch (c->kind) {
    case SH_RESHAPE:
        return tg_reshape(x[0], c->ndim, c->shape);
    case SH_TRANSPOSE:
        return tg_transpose(x[0], c->dims[0], c->dims[1]);
    case SH_PERMUTE:
        return tg_permute(x[0], c->dims);
    case SH_NARROW:
        return tg_narrow(x[0], c->dims[0], c->start, c->length);
    case SH_EXPAND:
        return tg_expand(x[0], c->ndim, c->shape);
    case SH_CONTIGUOUS:
        return tg_contiguous(x[0]);
    case SH_CLONE:
        return tg_clone(x[0]);
    }
    return NULL;
}

static void check_shape_op(const char *name, const shape_case *c, gc_input in, uint64_t seed)
{
    char full[96];
    snprintf(full, sizeof full, "%s %s", name, LAYOUT_NAME[in.layout]);
    assert_true(gc_check(full, call_shape, (void *)c, 1, &in, seed));
}

static void test_reshape(void **state)
{
    (void)state;
    const shape_case flat = {SH_RESHAPE, 1, {12}, {0}, 0, 0};
    const shape_case infer = {SH_RESHAPE, 3, {2, -1, 2}, {0}, 0, 0};
    const shape_case to_3d = {SH_RESHAPE, 3, {4, 3, 1}, {0}, 0, 0};
    for (int l = 0; l < N_LAYOUTS; l++) {
        /* contiguous inputs give views; transposed/strided/expanded ones need copies */
        gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l]};
        check_shape_op("reshape [12]", &flat, in, 700 + (uint64_t)l);
        check_shape_op("reshape [2,-1,2]", &infer, in, 710 + (uint64_t)l);
        check_shape_op("reshape [4,3,1]", &to_3d, in, 720 + (uint64_t)l);
    }
    const shape_case to_scalar = {SH_RESHAPE, 0, {0}, {0}, 0, 0};
    const shape_case to_one = {SH_RESHAPE, 2, {1, 1}, {0}, 0, 0};
    gc_input one = {SHAPE(1)};
    check_shape_op("reshape [1] -> []", &to_scalar, one, 730);
    gc_input scalar = {.ndim = 0};
    check_shape_op("reshape [] -> [1,1]", &to_one, scalar, 731);
}

static void test_transpose_permute(void **state)
{
    (void)state;
    const shape_case tr[] = {{SH_TRANSPOSE, 0, {0}, {0, 2}, 0, 0},
                             {SH_TRANSPOSE, 0, {0}, {-1, -2}, 0, 0},
                             {SH_TRANSPOSE, 0, {0}, {1, 1}, 0, 0}};
    const shape_case pe[] = {{SH_PERMUTE, 0, {0}, {2, 0, 1}, 0, 0},
                             {SH_PERMUTE, 0, {0}, {-1, 1, -3}, 0, 0},
                             {SH_PERMUTE, 0, {0}, {0, 1, 2}, 0, 0}};
    for (int l = 0; l < N_LAYOUTS; l++) {
        gc_input in = {SHAPE(2, 3, 4), .layout = LAYOUTS[l]};
        for (int i = 0; i < 3; i++) {
            check_shape_op("transpose", &tr[i], in, 800 + (uint64_t)l);
            check_shape_op("permute", &pe[i], in, 810 + (uint64_t)l);
        }
    }
}

static void test_narrow(void **state)
{
    (void)state;
    const shape_case cases[] = {{SH_NARROW, 0, {0}, {0}, 1, 1},
                                {SH_NARROW, 0, {0}, {1}, 0, 3},
                                {SH_NARROW, 0, {0}, {-1}, 1, 2},
                                {SH_NARROW, 0, {0}, {2}, 0, 4},
                                {SH_NARROW, 0, {0}, {1}, -2, 2}};
    for (int l = 0; l < N_LAYOUTS; l++) {
        gc_input in = {SHAPE(2, 3, 4), .layout = LAYOUTS[l]};
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_shape_op("narrow", &cases[i], in, 900 + 10 * i + (uint64_t)l);
    }
}

static void test_expand(void **state)
{
    (void)state;
    const shape_case col = {SH_EXPAND, 3, {2, 3, 4}, {0}, 0, 0};
    const shape_case keep = {SH_EXPAND, 2, {-1, 4}, {0}, 0, 0};
    gc_input c31 = {SHAPE(3, 1)};
    check_shape_op("expand [3,1] -> [2,3,4]", &col, c31, 1000);
    c31.layout = GC_STRIDED;
    check_shape_op("expand [3,1] -> [2,3,4]", &col, c31, 1001);
    gc_input v4 = {SHAPE(4), .layout = GC_NARROWED};
    check_shape_op("expand [4] -> [2,3,4]", &col, v4, 1002);
    gc_input m14 = {SHAPE(1, 4), .layout = GC_TRANSPOSED};
    check_shape_op("expand [1,4] -> [-1,4]", &keep, m14, 1003);
    gc_input scalar = {.ndim = 0};
    check_shape_op("expand [] -> [2,3,4]", &col, scalar, 1004);
}

static void test_contiguous_clone(void **state)
{
    (void)state;
    const shape_case cont = {SH_CONTIGUOUS, 0, {0}, {0}, 0, 0};
    const shape_case clone = {SH_CLONE, 0, {0}, {0}, 0, 0};
    for (int l = 0; l < N_LAYOUTS; l++) {
        gc_input in = {SHAPE(3, 4), .layout = LAYOUTS[l]};
        check_shape_op("contiguous", &cont, in, 1100 + (uint64_t)l);
        check_shape_op("clone", &clone, in, 1110 + (uint64_t)l);
    }
}

/* ---- losses ---- */

typedef struct {
    tg_reduction r;
    int which; /* 0 bce, 1 bce_with_logits, 2 mse */
} loss_case;

static tg_tensor *call_loss(tg_tensor *const *x, void *ctx)
{
    const loss_case *c = ctx;
    switch (c->which) {
    case 0:
        return tg_binary_cross_entropy(x[0], x[1], c->r);
    case 1:
        return tg_bce_with_logits(x[0], x[1], NULL, c->r);
    case 3:
        return tg_bce_with_logits(x[0], x[1], x[2], c->r);
    default:
        return tg_mse_loss(x[0], x[1], c->r);
    }
}

static const tg_reduction REDUCTIONS[3] = {TG_REDUCE_MEAN, TG_REDUCE_SUM, TG_REDUCE_NONE};

static void test_binary_cross_entropy(void **state)
{
    (void)state;
    char name[80];
    for (int r = 0; r < 3; r++) {
        loss_case c = {REDUCTIONS[r], 0};
        for (int l = 0; l < N_LAYOUTS; l++) {
            /* predictions away from 0 and 1, where the log's curvature would swamp h; the
             * target requires grad too, then alone */
            gc_input in[2] = {
                {SHAPE(3, 4), .layout = LAYOUTS[l], .lo = 0.1f, .hi = 0.9f},
                {SHAPE(3, 4), .layout = LAYOUTS[(l + 1) % N_LAYOUTS], .lo = 0, .hi = 1}};
            snprintf(name, sizeof name, "bce reduction %d %s", r, LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1200 + (uint64_t)l));
            in[1].constant = true;
            snprintf(name, sizeof name, "bce reduction %d %s, constant target", r, LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1220 + (uint64_t)l));
            in[1].constant = false, in[0].constant = true;
            snprintf(name, sizeof name, "bce reduction %d %s, constant pred", r, LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1240 + (uint64_t)l));
        }
        gc_input scalar[2] = {{.ndim = 0, .lo = 0.1f, .hi = 0.9f}, {.ndim = 0, .lo = 0, .hi = 1}};
        assert_true(gc_check("bce 0-d", call_loss, &c, 2, scalar, 1210));
    }
}

static void test_bce_with_logits(void **state)
{
    (void)state;
    char name[96];
    for (int r = 0; r < 3; r++) {
        loss_case c = {REDUCTIONS[r], 1};
        for (int l = 0; l < N_LAYOUTS; l++) {
            gc_input in[2] = {
                {SHAPE(3, 4), .layout = LAYOUTS[l], .lo = -3, .hi = 3},
                {SHAPE(3, 4), .layout = LAYOUTS[(l + 2) % N_LAYOUTS], .lo = 0, .hi = 1}};
            snprintf(name, sizeof name, "bce_with_logits reduction %d %s", r, LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1300 + (uint64_t)l));
            in[1].constant = true;
            snprintf(name, sizeof name, "bce_with_logits reduction %d %s, constant target", r,
                     LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1320 + (uint64_t)l));
            in[1].constant = false, in[0].constant = true;
            snprintf(name, sizeof name, "bce_with_logits reduction %d %s, constant logits", r,
                     LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1340 + (uint64_t)l));
        }
        /* pos_weight (never requiring grad, as in PyTorch): 0-d, one element, per column, per
         * row (broadcast [3, 1]); the target requires grad, then only the target does */
        loss_case cw = {REDUCTIONS[r], 3};
        const gc_input weights[] = {
            {.ndim = 0, .lo = 0.5f, .hi = 3, .constant = true},
            {SHAPE(1), .lo = 0.5f, .hi = 3, .constant = true},
            {SHAPE(4), .lo = 0.5f, .hi = 3, .constant = true},
            {SHAPE(4), .layout = GC_STRIDED, .lo = 0.5f, .hi = 3, .constant = true},
            {SHAPE(3, 1), .lo = 0.5f, .hi = 3, .constant = true}};
        for (size_t w = 0; w < sizeof weights / sizeof weights[0]; w++) {
            gc_input in[3] = {{SHAPE(3, 4), .layout = GC_TRANSPOSED, .lo = -3, .hi = 3},
                              {SHAPE(3, 4), .layout = GC_NARROWED, .lo = 0, .hi = 1},
                              weights[w]};
            snprintf(name, sizeof name, "bce_with_logits reduction %d pos_weight %zu", r, w);
            assert_true(gc_check(name, call_loss, &cw, 3, in, 1310 + w));
            in[0].constant = true;
            snprintf(name, sizeof name, "bce_with_logits reduction %d pos_weight %zu, target only",
                     r, w);
            assert_true(gc_check(name, call_loss, &cw, 3, in, 1330 + w));
        }
    }
}

/* Gradients of a loss for fixed inputs: x and t are [2, 3]; reduction none is driven with a
 * fixed grad_output. */
typedef struct {
    const char *name;
    int which; /* as loss_case */
    const float *pw;
    int pw_ndim;
    int64_t pw_len;
    tg_reduction r;
    float dx[6], dt[6];
} known_case;

static void check_known(const known_case *k, const float *x)
{
    static const float t[6] = {0.3f, 0.9f, 0.2f, 0.7f, 0.5f, 0.1f};
    static const float go[6] = {1.0f, -2.0f, 0.5f, 3.0f, -0.25f, 1.5f};
    const int64_t sh[2] = {2, 3};
    tg_scope_begin();
    tg_tensor *in[3] = {tg_requires_grad_(tg_from_data(x, 2, sh), true),
                        tg_requires_grad_(tg_from_data(t, 2, sh), true),
                        k->pw ? tg_from_data(k->pw, k->pw_ndim, &k->pw_len) : NULL};
    loss_case c = {k->r, k->which};
    tg_tensor *l = call_loss(in, &c);
    assert_non_null(l);
    tg_tensor *g = k->r == TG_REDUCE_NONE ? tg_from_data(go, 2, sh) : NULL;
    assert_int_equal(tg_backward(l, g, false), TG_OK);
    float dx[6], dt[6];
    assert_int_equal(tg_copy_to(tg_grad(in[0]), dx, 6), 6);
    assert_int_equal(tg_copy_to(tg_grad(in[1]), dt, 6), 6);
    for (int i = 0; i < 6; i++) {
        if (!tg_test_close(dx[i], k->dx[i], 1e-5, 1e-6) ||
            !tg_test_close(dt[i], k->dt[i], 1e-5, 1e-6))
            fail_msg("%s reduction %d element %d: d/dx %.9g want %.9g, d/dt %.9g want %.9g",
                     k->name, (int)k->r, i, (double)dx[i], (double)k->dx[i], (double)dt[i],
                     (double)k->dt[i]);
    }
    tg_scope_end();
}

/* Values from PyTorch 1.13 (Debian's python3-torch), printed with '%.9g' by:
 *   import torch, torch.nn.functional as F
 *   p = torch.tensor([[0.0, 1e-8, 0.3], [0.999999, 1.0, 0.5]])
 *   z = torch.tensor([[0.5, -2.0, 30.0], [-30.0, 100.0, -100.0]])
 *   t = torch.tensor([[0.3, 0.9, 0.2], [0.7, 0.5, 0.1]])
 *   go = torch.tensor([[1.0, -2.0, 0.5], [3.0, -0.25, 1.5]])
 *   pws = [None, torch.tensor(1.5), torch.tensor([1.5, 0.5, 2.0])]
 *   def grads(f, x):
 *       for red in ['mean', 'sum', 'none']:
 *           xi, ti = x.clone().requires_grad_(), t.clone().requires_grad_()
 *           l = f(xi, ti, red)
 *           l.backward(go if red == 'none' else None)
 *           print(red, xi.grad.flatten().tolist(), ti.grad.flatten().tolist())
 *   grads(lambda a, b, r: F.binary_cross_entropy(a, b, reduction=r), p)
 *   for pw in pws:
 *       grads(lambda a, b, r: F.binary_cross_entropy_with_logits(a, b, pos_weight=pw,
 *                                                                reduction=r), z)
 * Note d/dt of BCE is log(1 - p) - log(p) unclamped: +inf at p = 0 and -inf at p = 1. */
static void test_loss_known_gradients(void **state)
{
    (void)state;
    static const float p[6] = {0.0f, 1e-8f, 0.3f, 0.999999f, 1.0f, 0.5f};
    static const float z[6] = {0.5f, -2.0f, 30.0f, -30.0f, 100.0f, -100.0f};
    static const float pw0[1] = {1.5f}, pw3[3] = {1.5f, 0.5f, 2.0f};
    const float inf = INFINITY;
    /* One case per three lines: name and settings, d/dx, d/dt. */
    /* clang-format off */
    const known_case bce[] = {
        {"bce", 0, NULL, 0, 0, TG_REDUCE_MEAN,
         {-5.00000031e+10f, -15000000, 0.0793650821f, 49344.6406f, 8.3333333e+10f, 0.266666681f},
         {inf, 3.07011342f, 0.141216308f, -2.30038619f, -inf, 0}},
        {"bce", 0, NULL, 0, 0, TG_REDUCE_SUM,
         {-3.00000018e+11f, -90000000, 0.476190507f, 296067.844f, 4.99999998e+11f, 1.60000002f},
         {inf, 18.420681f, 0.847297847f, -13.8023176f, -inf, 0}},
        {"bce", 0, NULL, 0, 0, TG_REDUCE_NONE,
         {-3.00000018e+11f, 180000000, 0.238095254f, 888203.5f, -1.24999999e+11f, 2.4000001f},
         {inf, -36.841362f, 0.423648924f, -41.4069519f, inf, 0}},
    };
    const known_case logits[] = {
        {"logits", 1, NULL, 0, 0, TG_REDUCE_MEAN,
         {0.0537432246f, -0.130132839f, 0.13333334f, -0.116666667f, 0.0833333358f, -0.0166666675f},
         {-0.0833333358f, 0.333333343f, -5, 5, -16.666666f, 16.666666f}},
        {"logits", 1, NULL, 0, 0, TG_REDUCE_SUM,
         {0.32245934f, -0.780797064f, 0.800000012f, -0.699999988f, 0.5f, -0.100000001f},
         {-0.5f, 2, -30, 30, -100, 100}},
        {"logits", 1, NULL, 0, 0, TG_REDUCE_NONE,
         {0.32245934f, 1.56159413f, 0.400000006f, -2.0999999f, -0.125f, -0.150000006f},
         {-0.5f, -4, -15, 90, 25, 150}},
        {"logits 0-d pos_weight", 3, pw0, 0, 0, TG_REDUCE_MEAN,
         {0.0443047136f, -0.196192622f, 0.13333331f, -0.174999997f, 0.0833333358f, -0.025f},
         {-0.043826919f, 0.510577321f, -5, 7.5f, -16.666666f, 25}},
        {"logits 0-d pos_weight", 3, pw0, 0, 0, TG_REDUCE_SUM,
         {0.265828282f, -1.17715573f, 0.799999893f, -1.04999995f, 0.5f, -0.150000006f},
         {-0.262961507f, 3.06346393f, -30, 45, -100, 150}},
        {"logits 0-d pos_weight", 3, pw0, 0, 0, TG_REDUCE_NONE,
         {0.265828282f, 2.35431147f, 0.399999946f, -3.14999986f, -0.125f, -0.225000009f},
         {-0.262961507f, -6.12692785f, -15, 135, 25, 225}},
        {"logits [3] pos_weight", 3, pw3, 1, 3, TG_REDUCE_MEAN,
         {0.0443047136f, -0.0640730634f, 0.133333325f, -0.174999997f, 0.0833333358f, -0.0333333351f},
         {-0.043826919f, 0.156089336f, -5, 7.5f, -16.666666f, 33.3333321f}},
        {"logits [3] pos_weight", 3, pw3, 1, 3, TG_REDUCE_SUM,
         {0.265828282f, -0.384438366f, 0.799999952f, -1.04999995f, 0.5f, -0.200000003f},
         {-0.262961507f, 0.936536014f, -30, 45, -100, 200}},
        {"logits [3] pos_weight", 3, pw3, 1, 3, TG_REDUCE_NONE,
         {0.265828282f, 0.768876731f, 0.399999976f, -3.14999986f, -0.125f, -0.300000012f},
         {-0.262961507f, -1.87307203f, -15, 135, 25, 300}},
    };
    /* clang-format on */
    for (size_t i = 0; i < sizeof bce / sizeof bce[0]; i++)
        check_known(&bce[i], p);
    for (size_t i = 0; i < sizeof logits / sizeof logits[0]; i++)
        check_known(&logits[i], z);
}

/* d/dt of BCE near p = 0.5, where log(1 - p) - log(p) cancels: PyTorch 1.13 takes the
 * difference of the two logs, and so must we to agree with it to an ulp or two (-log(p / (1 - p))
 * was 1.7e-4 off at p = 0.5000861). Values from
 *   p = torch.tensor([0.5000860691070557, 0.5010169744491577, 0.49000000953674316, 0.75, 0, 1])
 *   t = torch.full((6,), 0.3, requires_grad=True)
 *   F.binary_cross_entropy(p, t, reduction='sum').backward(); print(t.grad.tolist()) */
static void test_bce_target_gradient_near_half(void **state)
{
    (void)state;
    static const float p[6] = {
        0.5000860691070557f, 0.5010169744491577f, 0.49000000953674316f, 0.75f, 0.0f, 1.0f};
    static const float want[6] = {-0.00034427642822265625f,
                                  -0.004067897796630859f,
                                  0.04000532627105713f,
                                  -1.0986123085021973f,
                                  INFINITY,
                                  -INFINITY};
    tg_scope_begin();
    tg_tensor *t = tg_requires_grad_(tg_full(1, (int64_t[]){6}, 0.3f), true);
    tg_tensor *l = tg_binary_cross_entropy(tg_from_data(p, 1, (int64_t[]){6}), t, TG_REDUCE_SUM);
    assert_int_equal(tg_backward(l, NULL, false), TG_OK);
    float dt[6];
    assert_int_equal(tg_copy_to(tg_grad(t), dt, 6), 6);
    for (int i = 0; i < 6; i++)
        if (!(dt[i] == want[i] || tg_test_close(dt[i], want[i], 2.5e-7, 0)))
            fail_msg("p = %.9g: d/dt %.9g want %.9g", (double)p[i], (double)dt[i], (double)want[i]);
    tg_scope_end();
}

static void test_mse_loss(void **state)
{
    (void)state;
    for (int r = 0; r < 3; r++) {
        loss_case c = {REDUCTIONS[r], 2};
        for (int l = 0; l < N_LAYOUTS; l++) {
            gc_input in[2] = {{SHAPE(3, 4), .layout = LAYOUTS[l]},
                              {SHAPE(3, 4), .layout = LAYOUTS[(l + 2) % N_LAYOUTS]}};
            char name[64];
            snprintf(name, sizeof name, "mse reduction %d %s", r, LAYOUT_NAME[l]);
            assert_true(gc_check(name, call_loss, &c, 2, in, 1400 + (uint64_t)l));
            in[1].constant = true;
            assert_true(gc_check(name, call_loss, &c, 2, in, 1410 + (uint64_t)l));
        }
        gc_input scalar[2] = {{.ndim = 0}, {.ndim = 0}};
        assert_true(gc_check("mse 0-d", call_loss, &c, 2, scalar, 1420));
    }
}

/* ---- compositions: gradients flowing through several nodes, views and broadcasts ---- */

static tg_tensor *call_mlp(tg_tensor *const *x, void *ctx)
{
    (void)ctx;
    /* x [5, 3], w1 [3, 4], b1 [4], w2 [4] -> logits [5] -> bce_with_logits against fixed y */
    tg_tensor *h = tg_tanh(tg_add(tg_matmul(x[0], x[1]), x[2]));
    tg_tensor *z = tg_matmul(h, x[3]);
    const float yv[5] = {1, 0, 1, 1, 0};
    tg_tensor *y = tg_from_data(yv, 1, (int64_t[]){5});
    return tg_add(tg_bce_with_logits(z, y, NULL, TG_REDUCE_MEAN),
                  tg_mul_scalar(tg_sum(tg_pow_scalar(x[1], 2.0f)), 0.01f));
}

static tg_tensor *call_mixed(tg_tensor *const *x, void *ctx)
{
    (void)ctx;
    /* x used several times, through views, broadcasts and reductions */
    tg_tensor *a = tg_mul(x[0], tg_sigmoid(tg_transpose(x[0], 0, 1)));
    tg_tensor *b = tg_div(tg_exp(tg_narrow(a, 1, 1, 2)), tg_add_scalar(tg_abs(x[1]), 1.0f));
    tg_tensor *c = tg_mean_dim(tg_reshape(b, 1, (int64_t[]){-1}), 0, true);
    return tg_sub(tg_sum_dim(b, -1, false), c);
}

static void test_compositions(void **state)
{
    (void)state;
    gc_input mlp[4] = {{SHAPE(5, 3), .constant = true},
                       {SHAPE(3, 4), .layout = GC_TRANSPOSED},
                       {SHAPE(4)},
                       {SHAPE(4), .layout = GC_STRIDED}};
    assert_true(gc_check("mlp", call_mlp, NULL, 4, mlp, 1500));
    gc_input mixed[2] = {{SHAPE(3, 3), .layout = GC_NARROWED}, {SHAPE(3, 2), .lo = 0.2f, .hi = 1}};
    assert_true(gc_check("mixed", call_mixed, NULL, 2, mixed, 1501));
}

/* The checker itself must reject a wrong gradient: a sign error and a broadcast that is not
 * reduced would both slip through a checker that compares too loosely. */
static tg_tensor *wrong_gradient(tg_tensor *const *x, void *ctx)
{
    (void)ctx;
    /* forward x^2 but through a graph whose gradient is 2x * 1.05 */
    tg_tensor *d = tg_detach(x[0]);
    tg_tensor *sq = tg_mul(d, d);                         /* value, no graph */
    tg_tensor *lin = tg_mul_scalar(x[0], 0.0f);           /* graph, no value */
    tg_tensor *g = tg_mul(tg_mul_scalar(d, 1.05f), x[0]); /* value 1.05 x^2, grad 1.05 x */
    tg_tensor *gv = tg_sub(g, tg_detach(g));              /* value 0, grad 1.05 x */
    return tg_add(tg_add(sq, lin), tg_mul_scalar(gv, 2.0f));
}

static void test_checker_catches_errors(void **state)
{
    (void)state;
    gc_input in = {SHAPE(3, 4), .lo = 0.5f, .hi = 2};
    assert_false(
        gc_check("deliberately wrong (expected to fail)", wrong_gradient, NULL, 1, &in, 1));
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_elementwise_unary),
        cmocka_unit_test(test_scalar_operand_ops),
        cmocka_unit_test(test_rsub_scalar),
        cmocka_unit_test(test_clamp),
        cmocka_unit_test(test_binary),
        cmocka_unit_test(test_random_broadcast_shapes),
        cmocka_unit_test(test_sum_mean),
        cmocka_unit_test(test_sum_mean_dim),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_reshape),
        cmocka_unit_test(test_transpose_permute),
        cmocka_unit_test(test_narrow),
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_contiguous_clone),
        cmocka_unit_test(test_binary_cross_entropy),
        cmocka_unit_test(test_bce_with_logits),
        cmocka_unit_test(test_loss_known_gradients),
        cmocka_unit_test(test_bce_target_gradient_near_half),
        cmocka_unit_test(test_mse_loss),
        cmocka_unit_test(test_compositions),
        cmocka_unit_test(test_checker_catches_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
