/* Kernel-table tests: every entry of every family this CPU can run, against the scalar family
 * and against a double-precision reference, plus the thread pool.
 *
 * TAPEGRAD_ISA=scalar|avx2|avx512|neon limits the run to one family (ctest runs one per family);
 * a family the CPU or build cannot run is reported as skipped.
 *
 * Links against the kernels, src/core/parallel.c and src/core/error.c only. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "../kernels/kernels.h"
#include "../src/core/parallel.h"

/* ---- error bounds ---------------------------------------------------------------------------
 * simd: largest error allowed against the double-precision reference for the SIMD families, in
 *       ULPs of the correctly rounded float result (0.5 = correctly rounded; a NaN or infinite
 *       reference must be matched exactly), on the inputs the case's reference domain gives.
 *       The transcendentals there are SLEEF's u10 functions (1.0 ULP, which SLEEF measures
 *       against its own reference: we allow 1.01), except exp, sin and cos in the x86 families,
 *       which are inlined: exp measures 0.906 ULP over every float, sin and cos 0.740 and 0.746
 *       up to |x| = 6432 and 0.881 over every float, SLEEF's beyond (test_exp_exhaustive,
 *       test_trig_exhaustive); a formula around one
 * adds 0.5 per extra rounding, and where the result's binade is below the inputs' it can double
 * (sigmoid: 1/(1 + exp(-x)) measures 2.48 over every float, test_sigmoid_exhaustive). scalar:
 * the same for the scalar family, which calls glibc (tanhf is documented at 2 ULP, the others
 * at 1; measured below that).
 * vs_scalar: largest distance allowed between a SIMD family and the scalar family, in float steps,
 * on all inputs (specials against specials); 0 = bit-identical, signed zeros and NaN-ness included.
 * Formulas without a transcendental use the scalar family's operations in its order, so they are
 * bit-identical. */
typedef struct bound {
    const char *name;
    double simd, scalar, vs_scalar;
} bound;

static const bound bounds[] = {
    {"neg", 0.0, 0.0, 0},
    {"abs", 0.0, 0.0, 0},
    {"relu", 0.0, 0.0, 0},
    {"exp", 1.01, 1.0, 2},
    {"log", 1.01, 1.0, 2},
    {"sin", 1.01, 1.0, 2},
    {"cos", 1.01, 1.0, 2},
    {"tanh", 1.01, 2.5, 3},
    {"sqrt", 0.5, 0.5, 0},
    {"sigmoid", 2.5, 2.5, 5},
    {"clamp", 0.0, 0.0, 0},
    {"pow_scalar", 1.5, 1.5, 2},
    {"add_vv", 0.5, 0.5, 0},
    {"sub_vv", 0.5, 0.5, 0},
    {"mul_vv", 0.5, 0.5, 0},
    {"div_vv", 0.5, 0.5, 0},
    {"pow_vv", 1.01, 1.0, 2},
    {"add_vs", 0.5, 0.5, 0},
    {"mul_vs", 0.5, 0.5, 0},
    {"div_vs", 0.5, 0.5, 0},
    {"pow_vs", 1.01, 1.0, 2},
    {"sub_sv", 0.5, 0.5, 0},
    {"div_sv", 0.5, 0.5, 0},
    {"pow_sv", 1.01, 1.0, 2},
    {"sigmoid_bwd", 3.5, 3.5, 4},
    {"tanh_bwd", 1.5, 1.5, 0}, /* two roundings: 1 - y^2 (fused) and the product */
    {"sqrt_bwd", 0.5, 0.5, 0},
    {"relu_bwd", 0.0, 0.0, 0},
    {"sin_bwd", 2.0, 2.0, 3},
    {"cos_bwd", 2.0, 2.0, 3},
    {"abs_bwd", 0.0, 0.0, 0},
    {"clamp_bwd", 0.0, 0.0, 0},
    {"pow_scalar_bwd", 2.5, 2.5, 3},
    /* bce grad = w s - pw t cancels: its errors are in ULPs of max(|w s|, |pw t|) */
    {"bce_loss", 5.0, 3.0, 6},
    {"bce_grad", 4.0, 4.0, 5},
};

static const bound *bound_of(const char *name)
{
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        if (strcmp(bounds[i].name, name) == 0)
            return &bounds[i];
    fail_msg("no bound for %s", name);
    return NULL;
}

struct family;
static int is_scalar(const struct family *f);

/* The reference bound for the family under test. */
static double ref_bound(const struct family *f, const bound *b)
{
    return is_scalar(f) ? b->scalar : b->simd;
}

/* ---- families --------------------------------------------------------------------------- */

typedef struct family {
    const char *name;
    int (*init)(tg_kernels *k);
    tg_kernels k;
} family;

static tg_kernels scalar_k;

static int is_scalar(const family *f)
{
    return strcmp(f->name, "scalar") == 0;
}
static family *cur; /* the family under test in the running group */

static int init_scalar(tg_kernels *k)
{
    tg_kernels_init_scalar(k);
    return 1;
}

static int cpu_runs(const char *name)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    if (strcmp(name, "neon") == 0)
        return 1;
#endif
    return strcmp(name, "scalar") == 0;
}

/* ---- float helpers ------------------------------------------------------------------------ */

static uint32_t bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* Position on a line where adjacent floats are 1 apart (-0 and +0 both 0). */
static int64_t ordinal(float f)
{
    uint32_t u = bits(f);
    return (u & 0x80000000u) ? -(int64_t)(u & 0x7fffffffu) : (int64_t)u;
}

/* Float steps between a and b; NaN only matches NaN. Subnormals count as zero: a formula that
 * underflows to 0 in one family (PyTorch's 1/(1+exp(-z)) below z = -88.7) and the stable form
 * in another differ only there, and the reference check covers the subnormal range. */
static double steps(float a, float b)
{
    if (isnan(a) || isnan(b))
        return isnan(a) && isnan(b) ? 0.0 : INFINITY;
    /* FLT_MIN and everything below it sit at 0, the next float up at 1 */
    const int64_t floor = ordinal(0x1p-126f);
    int64_t oa = ordinal(fabsf(a)) - floor, ob = ordinal(fabsf(b)) - floor;
    oa = oa < 0 ? 0 : (a < 0 ? -oa : oa);
    ob = ob < 0 ? 0 : (b < 0 ? -ob : ob);
    return fabs((double)(oa - ob));
}

/* Error of got against the exact value ref, in ULPs of the float nearest ref. */
static double ulp_err(float got, double ref)
{
    float rf = (float)ref;
    if (isnan(ref) || isinf(rf))
        return (isnan(got) && isnan(ref)) || got == rf ? 0.0 : INFINITY;
    if (isnan(got))
        return INFINITY;
    double g = isinf(got) ? copysign(0x1p128, got) : (double)got;
    int e = ref == 0.0 ? -126 : ilogb(ref);
    if (e < -126)
        e = -126;
    return fabs(g - ref) / ldexp(1.0, e - 23);
}

/* ---- inputs -------------------------------------------------------------------------------- */

#define BIG    100003
#define MAXLEN 67

static uint64_t rng = 0x9e3779b97f4a7c15u;

static uint64_t next_u64(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1du;
}

static double uniform(double lo, double hi)
{
    return lo + (hi - lo) * (double)(next_u64() >> 11) * 0x1p-53;
}

static const float specials[] = {
    0.0f,
    -0.0f,
    1e-45f,
    -1e-45f,
    1e-40f,
    -1e-40f,
    1.17549435e-38f,
    -1.17549435e-38f,
    1.0f,
    -1.0f,
    0.5f,
    -0.5f,
    2.0f,
    -2.0f,
    3.4028235e38f,
    -3.4028235e38f,
    INFINITY,
    -INFINITY,
    NAN,
    100.0f,
    -100.0f,
    20.0f,
    -20.0f,
    88.7f,
    -88.7f,
    89.0f,
    -89.0f,
    104.0f,
    -104.0f,
    1e4f,
    -1e4f,
    1e6f,
    -1e6f,
    1e30f,
    -1e30f,
    1.5707964f,
    -1.5707964f,
    3.1415927f,
    -3.1415927f,
    16.0f,
    1e-8f,
    -1e-8f,
    0.125f,
    10.0f,
};
#define NSPECIAL (sizeof specials / sizeof specials[0])

/* Domains for the reference check; the scalar comparison always uses D_ANY. */
enum { D_ANY, D_MOD, D_HALF, D_TARGET, D_UNIT };

static float draw(int dom)
{
    switch (dom) {
    case D_MOD: /* moderate magnitudes: float formulas neither overflow nor go subnormal */
        return (float)((next_u64() & 1 ? 1 : -1) * exp2(uniform(-20, 20)));
    case D_HALF:
        return (float)uniform(-0.5, 0.5);
    case D_UNIT: /* tanh outputs: (-1, 1), half of them within 2^-24..2^-2 of +-1 */
        if (next_u64() & 1)
            return (float)uniform(-1.0, 1.0);
        return (float)((next_u64() & 1 ? 1 : -1) * (1.0 - exp2(uniform(-24, -2))));
    case D_TARGET: /* BCE targets: hard labels and soft ones */
        return (float)(next_u64() % 3 == 0 ? uniform(0, 1) : (double)(next_u64() & 1));
    default:
        switch (next_u64() % 4) {
        case 0:
            return (float)uniform(-10, 10);
        case 1:
            return (float)((next_u64() & 1 ? 1 : -1) * exp2(uniform(-149, 128)));
        default:
            return (float)((next_u64() & 1 ? 1 : -1) * exp2(uniform(-30, 30)));
        }
    }
}

/* n values of domain dom; D_ANY starts with the special values. */
static void fill_domain(float *x, int64_t n, int dom)
{
    int64_t i = 0;
    if (dom == D_ANY)
        for (; i < n && i < (int64_t)NSPECIAL; i++)
            x[i] = specials[i];
    for (; i < n; i++)
        x[i] = draw(dom);
}

/* A second input of D_ANY that meets every special against every special somewhere. */
static void fill_partner(float *x, int64_t n)
{
    int64_t i = 0;
    for (; i < n && i < (int64_t)(NSPECIAL * NSPECIAL); i++)
        x[i] = specials[i / NSPECIAL];
    for (; i < n; i++)
        x[i] = draw(D_ANY);
}

/* ---- elementwise cases ---------------------------------------------------------------------- */

typedef struct ecase ecase;
/* Runs the entry on n elements: inputs a (and b), output y; p/q are the scalar parameters. */
typedef void (*run_fn)(const tg_kernels *k, const ecase *c, const float *a, const float *b,
                       float *y, int64_t n);
typedef double (*ref_fn)(const ecase *c, double a, double b);

struct ecase {
    const char *name;
    int nin;    /* array inputs: 1 or 2 */
    float p, q; /* scalar parameters */
    run_fn run;
    ref_fn ref;
    int dom_a, dom_b; /* reference domains */
    /* inputs outside the documented accuracy range of the formula (NULL: none) */
    int (*excluded)(const ecase *c, double a, double b);
};

#define RUN1(fn, entry)                                                                            \
    static void fn(const tg_kernels *k, const ecase *c, const float *a, const float *b, float *y,  \
                   int64_t n)                                                                      \
    {                                                                                              \
        (void)c;                                                                                   \
        (void)b;                                                                                   \
        k->entry(a, y, n);                                                                         \
    }
#define RUN2(fn, entry)                                                                            \
    static void fn(const tg_kernels *k, const ecase *c, const float *a, const float *b, float *y,  \
                   int64_t n)                                                                      \
    {                                                                                              \
        (void)c;                                                                                   \
        k->entry(a, b, y, n);                                                                      \
    }
#define RUNVS(fn, entry)                                                                           \
    static void fn(const tg_kernels *k, const ecase *c, const float *a, const float *b, float *y,  \
                   int64_t n)                                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        k->entry(a, c->p, y, n);                                                                   \
    }
#define RUNSV(fn, entry)                                                                           \
    static void fn(const tg_kernels *k, const ecase *c, const float *a, const float *b, float *y,  \
                   int64_t n)                                                                      \
    {                                                                                              \
        (void)b;                                                                                   \
        k->entry(c->p, a, y, n);                                                                   \
    }

RUN1(r_neg, neg)
RUN1(r_abs, abs)
RUN1(r_relu, relu)
RUN1(r_exp, exp)
RUN1(r_log, log)
RUN1(r_sin, sin)
RUN1(r_cos, cos)
RUN1(r_tanh, tanh)
RUN1(r_sqrt, sqrt)
RUN1(r_sigmoid, sigmoid)
RUN2(r_add_vv, add_vv)
RUN2(r_sub_vv, sub_vv)
RUN2(r_mul_vv, mul_vv)
RUN2(r_div_vv, div_vv)
RUN2(r_pow_vv, pow_vv)
RUNVS(r_add_vs, add_vs)
RUNVS(r_mul_vs, mul_vs)
RUNVS(r_div_vs, div_vs)
RUNVS(r_pow_vs, pow_vs)
RUNSV(r_sub_sv, sub_sv)
RUNSV(r_div_sv, div_sv)
RUNSV(r_pow_sv, pow_sv)
RUN2(r_sigmoid_bwd, sigmoid_bwd)
RUN2(r_tanh_bwd, tanh_bwd)
RUN2(r_sqrt_bwd, sqrt_bwd)
RUN2(r_relu_bwd, relu_bwd)
RUN2(r_sin_bwd, sin_bwd)
RUN2(r_cos_bwd, cos_bwd)
RUN2(r_abs_bwd, abs_bwd)

static void r_clamp(const tg_kernels *k, const ecase *c, const float *a, const float *b, float *y,
                    int64_t n)
{
    (void)b;
    k->clamp(a, y, n, c->p, c->q);
}

static void r_pow_scalar(const tg_kernels *k, const ecase *c, const float *a, const float *b,
                         float *y, int64_t n)
{
    (void)b;
    k->pow_scalar(a, y, n, c->p);
}

static void r_clamp_bwd(const tg_kernels *k, const ecase *c, const float *a, const float *b,
                        float *y, int64_t n)
{
    k->clamp_bwd(a, b, y, n, c->p, c->q);
}

static void r_pow_scalar_bwd(const tg_kernels *k, const ecase *c, const float *a, const float *b,
                             float *y, int64_t n)
{
    k->pow_scalar_bwd(a, b, y, n, c->p);
}

/* The reference of pow(x, e) for the scalar exponents the kernels treat exactly. */
static double pow_ref(double x, double e)
{
    if (e == 0.5)
        return sqrt(x); /* the shortcut: sqrt(-0) = -0 and sqrt(-inf) = NaN, as PyTorch */
    if (e == -0.5)
        return 1.0 / sqrt(x); /* rsqrt: (-0)^-0.5 = -inf and (-inf)^-0.5 = NaN, as PyTorch */
    return pow(x, e);
}

static double f_neg(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return -a;
}
static double f_abs(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return fabs(a);
}
static double f_relu(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return a < 0 ? 0.0 : a; /* NaN and -0.0 kept (signs are checked in test_relu_bits) */
}
static double f_exp(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return exp(a);
}
static double f_log(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return log(a);
}
static double f_sin(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return sin(a);
}
static double f_cos(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return cos(a);
}
static double f_tanh(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return tanh(a);
}
static double f_sqrt(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return sqrt(a);
}
static double f_sigmoid(const ecase *c, double a, double b)
{
    (void)c, (void)b;
    return 1.0 / (1.0 + exp(-a));
}
static double f_clamp(const ecase *c, double a, double b)
{
    (void)b;
    if (!isnan(a) && !isnan(c->p) && a < c->p)
        a = c->p;
    if (!isnan(a) && !isnan(c->q) && a > c->q)
        a = c->q;
    return a;
}
static double f_pow_scalar(const ecase *c, double a, double b)
{
    (void)b;
    return pow_ref(a, c->p);
}
static double f_add(const ecase *c, double a, double b)
{
    (void)c;
    return a + b;
}
static double f_sub(const ecase *c, double a, double b)
{
    (void)c;
    return a - b;
}
static double f_mul(const ecase *c, double a, double b)
{
    (void)c;
    return a * b;
}
static double f_div(const ecase *c, double a, double b)
{
    (void)c;
    return a / b;
}
static double f_pow(const ecase *c, double a, double b)
{
    (void)c;
    return pow(a, b);
}
static double f_add_vs(const ecase *c, double a, double b)
{
    (void)b;
    return a + c->p;
}
static double f_mul_vs(const ecase *c, double a, double b)
{
    (void)b;
    return a * c->p;
}
static double f_div_vs(const ecase *c, double a, double b)
{
    (void)b;
    return a / c->p;
}
static double f_pow_vs(const ecase *c, double a, double b)
{
    (void)b;
    return pow(a, c->p); /* a tensor exponent: C's pow, no shortcuts */
}
static double f_sub_sv(const ecase *c, double a, double b)
{
    (void)b;
    return c->p - a;
}
static double f_div_sv(const ecase *c, double a, double b)
{
    (void)b;
    return c->p / a;
}
static double f_pow_sv(const ecase *c, double a, double b)
{
    (void)b;
    return pow(c->p, a);
}
static double f_sigmoid_bwd(const ecase *c, double x, double g)
{
    (void)c;
    double e = exp(-fabs(x));
    return isnan(x) ? x : g * (e / ((1 + e) * (1 + e)));
}
static double f_tanh_bwd(const ecase *c, double y, double g)
{
    (void)c;
    return g * (1 - y * y);
}
static double f_sqrt_bwd(const ecase *c, double y, double g)
{
    (void)c;
    return g / (2 * y);
}
static double f_relu_bwd(const ecase *c, double y, double g)
{
    (void)c;
    return y <= 0 ? 0.0 : g; /* a NaN y passes g */
}
static double f_sin_bwd(const ecase *c, double x, double g)
{
    (void)c;
    return g * cos(x);
}
static double f_cos_bwd(const ecase *c, double x, double g)
{
    (void)c;
    return -g * sin(x);
}
static double f_abs_bwd(const ecase *c, double x, double g)
{
    (void)c;
    return g * (x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0);
}
static double f_clamp_bwd(const ecase *c, double x, double g)
{
    int in = (isnan(c->p) || x >= c->p) && (isnan(c->q) || x <= c->q);
    return in ? g : 0.0;
}
static double f_pow_scalar_bwd(const ecase *c, double x, double g)
{
    double e = c->p;
    return e == 0 ? 0.0 : g * e * pow_ref(x, e - 1);
}

/* sigmoid_bwd is PyTorch's (gy * (1 - y)) * y while y < 1: for 0.5 < x < 18, 1 - y cancels, so
 * its accuracy is the formula's (and two 1-ULP exps can put results far apart); below x = -88.7
 * y is subnormal and has lost bits before gy scales it up (that it does not vanish there is
 * checked in test_sigmoid_limits), and above x = 87.3 the derivative itself is subnormal. The
 * stable branch (y == 1, x >= 16.6) is checked between 18 and 87.3 and in test_sigmoid_limits. */
static int sigmoid_bwd_unstable(const ecase *c, double x, double g)
{
    (void)c, (void)g;
    return (x > 0.5 && x < 18) || (x < -88.72 && x > -INFINITY) || (x > 87.3 && x < INFINITY);
}

/* Where x^(e-1) is subnormal it has lost bits before gy scales it back up. */
static int pow_subnormal(const ecase *c, double x, double g)
{
    (void)g;
    double p = fabs(pow(x, c->p - 1.0));
    return p > 0 && p < 0x1p-126;
}

static const ecase cases[] = {
    {"neg", 1, 0, 0, r_neg, f_neg, D_ANY, D_ANY, NULL},
    {"abs", 1, 0, 0, r_abs, f_abs, D_ANY, D_ANY, NULL},
    {"relu", 1, 0, 0, r_relu, f_relu, D_ANY, D_ANY, NULL},
    {"exp", 1, 0, 0, r_exp, f_exp, D_ANY, D_ANY, NULL},
    {"log", 1, 0, 0, r_log, f_log, D_ANY, D_ANY, NULL},
    {"sin", 1, 0, 0, r_sin, f_sin, D_ANY, D_ANY, NULL},
    {"cos", 1, 0, 0, r_cos, f_cos, D_ANY, D_ANY, NULL},
    {"tanh", 1, 0, 0, r_tanh, f_tanh, D_ANY, D_ANY, NULL},
    {"sqrt", 1, 0, 0, r_sqrt, f_sqrt, D_ANY, D_ANY, NULL},
    {"sigmoid", 1, 0, 0, r_sigmoid, f_sigmoid, D_ANY, D_ANY, NULL},
    {"clamp", 1, -1.5f, 2.0f, r_clamp, f_clamp, D_ANY, D_ANY, NULL},
    {"clamp", 1, NAN, 0.0f, r_clamp, f_clamp, D_ANY, D_ANY, NULL},
    {"clamp", 1, -0.0f, NAN, r_clamp, f_clamp, D_ANY, D_ANY, NULL},
    {"clamp", 1, 3.0f, 1.0f, r_clamp, f_clamp, D_ANY, D_ANY, NULL},
    /* the exact shortcuts keep their float roundings, so the reference uses moderate inputs */
    {"pow_scalar", 1, 2.0f, 0, r_pow_scalar, f_pow_scalar, D_MOD, D_ANY, NULL},
    {"pow_scalar", 1, 1.0f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, 0.5f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, -0.5f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, -1.0f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, 3.0f, 0, r_pow_scalar, f_pow_scalar, D_MOD, D_ANY, NULL},
    {"pow_scalar", 1, -2.0f, 0, r_pow_scalar, f_pow_scalar, D_MOD, D_ANY, NULL},
    {"pow_scalar", 1, 0.0f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, 2.5f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, -0.7f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"pow_scalar", 1, 4.0f, 0, r_pow_scalar, f_pow_scalar, D_ANY, D_ANY, NULL},
    {"add_vv", 2, 0, 0, r_add_vv, f_add, D_ANY, D_ANY, NULL},
    {"sub_vv", 2, 0, 0, r_sub_vv, f_sub, D_ANY, D_ANY, NULL},
    {"mul_vv", 2, 0, 0, r_mul_vv, f_mul, D_ANY, D_ANY, NULL},
    {"div_vv", 2, 0, 0, r_div_vv, f_div, D_ANY, D_ANY, NULL},
    {"pow_vv", 2, 0, 0, r_pow_vv, f_pow, D_ANY, D_ANY, NULL},
    {"add_vs", 1, 1.25f, 0, r_add_vs, f_add_vs, D_ANY, D_ANY, NULL},
    {"mul_vs", 1, -3.5f, 0, r_mul_vs, f_mul_vs, D_ANY, D_ANY, NULL},
    {"div_vs", 1, 7.0f, 0, r_div_vs, f_div_vs, D_ANY, D_ANY, NULL},
    {"div_vs", 1, 0.0f, 0, r_div_vs, f_div_vs, D_ANY, D_ANY, NULL},
    {"pow_vs", 1, 2.0f, 0, r_pow_vs, f_pow_vs, D_MOD, D_ANY, NULL},
    {"pow_vs", 1, 1.7f, 0, r_pow_vs, f_pow_vs, D_ANY, D_ANY, NULL},
    {"pow_vs", 1, 0.5f, 0, r_pow_vs, f_pow_vs, D_ANY, D_ANY, NULL},
    {"pow_vs", 1, -0.5f, 0, r_pow_vs, f_pow_vs, D_ANY, D_ANY, NULL},
    {"sub_sv", 1, 2.5f, 0, r_sub_sv, f_sub_sv, D_ANY, D_ANY, NULL},
    {"div_sv", 1, -1.0f, 0, r_div_sv, f_div_sv, D_ANY, D_ANY, NULL},
    {"pow_sv", 1, 2.0f, 0, r_pow_sv, f_pow_sv, D_ANY, D_ANY, NULL},
    {"pow_sv", 1, -0.5f, 0, r_pow_sv, f_pow_sv, D_ANY, D_ANY, NULL},
    {"sigmoid_bwd", 2, 0, 0, r_sigmoid_bwd, f_sigmoid_bwd, D_ANY, D_MOD, sigmoid_bwd_unstable},
    /* 1 - y*y cancels as |y| -> 1 (the formula PyTorch uses too): reference on |y| <= 0.5 */
    {"tanh_bwd", 2, 0, 0, r_tanh_bwd, f_tanh_bwd, D_UNIT, D_MOD, NULL},
    {"sqrt_bwd", 2, 0, 0, r_sqrt_bwd, f_sqrt_bwd, D_MOD, D_MOD, NULL},
    {"relu_bwd", 2, 0, 0, r_relu_bwd, f_relu_bwd, D_ANY, D_ANY, NULL},
    {"sin_bwd", 2, 0, 0, r_sin_bwd, f_sin_bwd, D_ANY, D_MOD, NULL},
    {"cos_bwd", 2, 0, 0, r_cos_bwd, f_cos_bwd, D_ANY, D_MOD, NULL},
    {"abs_bwd", 2, 0, 0, r_abs_bwd, f_abs_bwd, D_ANY, D_ANY, NULL},
    {"clamp_bwd", 2, -1.0f, 1.0f, r_clamp_bwd, f_clamp_bwd, D_ANY, D_ANY, NULL},
    {"clamp_bwd", 2, NAN, 0.5f, r_clamp_bwd, f_clamp_bwd, D_ANY, D_ANY, NULL},
    {"clamp_bwd", 2, NAN, NAN, r_clamp_bwd, f_clamp_bwd, D_ANY, D_ANY, NULL},
    {"pow_scalar_bwd", 2, 2.0f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, 3.0f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, 0.0f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, 1.5f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, 0.5f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, 1.0f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD, pow_subnormal},
    {"pow_scalar_bwd", 2, -0.5f, 0, r_pow_scalar_bwd, f_pow_scalar_bwd, D_MOD, D_MOD,
     pow_subnormal},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Buffers with one float of guard on each side and an odd offset, so the kernels see
 * misaligned pointers and we see any write past the end. */
#define GUARD 1234.5f

static float *alloc_f(int64_t n)
{
    float *p = malloc(sizeof(float) * (size_t)(n + 8));
    assert_non_null(p);
    return p;
}

/* Worst errors seen per case in this run, printed so the bounds above can be re-derived. */
static void report(const char *fam, const ecase *c, double ref_worst, double sc_worst)
{
    print_message("  %-7s %-15s p=%-6g ref %.3f ulp, scalar %.0f steps\n", fam, c->name, c->p,
                  ref_worst, sc_worst);
}

static void check_case(const family *f, const ecase *c)
{
    const bound *bd = bound_of(c->name);
    float *a = alloc_f(BIG), *b = alloc_f(BIG), *y = alloc_f(BIG), *ys = alloc_f(BIG);
    float *buf_a = alloc_f(BIG), *buf_b = alloc_f(BIG), *out = alloc_f(BIG);

    /* 1. against the double reference, on the reference domain */
    fill_domain(a, BIG, c->dom_a);
    fill_domain(b, BIG, c->dom_b);
    c->run(&f->k, c, a, b, y, BIG);
    double ref_worst = 0;
    int64_t worst_i = 0;
    for (int64_t i = 0; i < BIG; i++) {
        if (c->excluded && c->excluded(c, a[i], b[i]))
            continue;
        double e = ulp_err(y[i], c->ref(c, a[i], b[i]));
        if (e > ref_worst || isnan(e))
            ref_worst = e, worst_i = i;
    }
    if (!(ref_worst <= ref_bound(f, bd)))
        fail_msg("%s %s(p=%g): %.3f ulp > %.3f at a=%a b=%a: got %a want %a", f->name, c->name,
                 c->p, ref_worst, ref_bound(f, bd), a[worst_i], b[worst_i], y[worst_i],
                 c->ref(c, a[worst_i], b[worst_i]));

    /* 2. against the scalar family, on everything (specials against specials) */
    fill_domain(a, BIG, D_ANY);
    fill_partner(b, BIG);
    c->run(&f->k, c, a, b, y, BIG);
    c->run(&scalar_k, c, a, b, ys, BIG);
    double sc_worst = 0;
    for (int64_t i = 0; i < BIG; i++) {
        if (c->excluded && c->excluded(c, a[i], b[i]))
            continue;
        double d = bd->vs_scalar == 0
                       ? (bits(y[i]) == bits(ys[i]) || (isnan(y[i]) && isnan(ys[i])) ? 0 : INFINITY)
                       : steps(y[i], ys[i]);
        if (d > sc_worst)
            sc_worst = d, worst_i = i;
    }
    if (!(sc_worst <= bd->vs_scalar))
        fail_msg("%s %s(p=%g) vs scalar: %.0f steps at a=%a b=%a: got %a scalar %a", f->name,
                 c->name, c->p, sc_worst, a[worst_i], b[worst_i], y[worst_i], ys[worst_i]);
    report(f->name, c, ref_worst, sc_worst);

    /* 3. every short length at odd offsets, and in place: the same bits as in the long run
     * (tails and alignment change nothing), nothing written outside [0, n) */
    for (int64_t n = 0; n <= MAXLEN; n++) {
        for (int64_t start = 0; start < 3; start++) {
            int64_t at = start * 37 + n; /* where in the long arrays the run is taken from */
            float *pa = buf_a + 1 + start, *pb = buf_b + 1 + start, *py = out + 1 + start;
            memcpy(pa, a + at, sizeof(float) * (size_t)n);
            memcpy(pb, b + at, sizeof(float) * (size_t)n);
            py[-1] = GUARD;
            for (int64_t i = 0; i <= n; i++)
                py[i] = GUARD;
            c->run(&f->k, c, pa, pb, py, n);
            assert_true(py[-1] == GUARD && py[n] == GUARD);
            for (int64_t i = 0; i < n; i++)
                if (bits(py[i]) != bits(y[at + i]) && !(isnan(py[i]) && isnan(y[at + i])))
                    fail_msg("%s %s: n=%lld offset %lld element %lld: %a, long run gave %a",
                             f->name, c->name, (long long)n, (long long)start, (long long)i, py[i],
                             y[at + i]);
            c->run(&f->k, c, pa, pb, pa, n); /* y == a */
            for (int64_t i = 0; i < n; i++)
                assert_true(bits(pa[i]) == bits(y[at + i]) || (isnan(pa[i]) && isnan(y[at + i])));
        }
    }
    /* in place over the whole long array, at an odd offset */
    memcpy(buf_a + 1, a, sizeof(float) * BIG);
    c->run(&f->k, c, buf_a + 1, b, buf_a + 1, BIG);
    for (int64_t i = 0; i < BIG; i++)
        assert_true(bits(buf_a[1 + i]) == bits(y[i]) || (isnan(buf_a[1 + i]) && isnan(y[i])));
    if (c->nin == 2) { /* y == b */
        memcpy(buf_b + 1, b, sizeof(float) * BIG);
        c->run(&f->k, c, a, buf_b + 1, buf_b + 1, BIG);
        for (int64_t i = 0; i < BIG; i++)
            assert_true(bits(buf_b[1 + i]) == bits(y[i]) || (isnan(buf_b[1 + i]) && isnan(y[i])));
    }
    free(a), free(b), free(y), free(ys), free(buf_a), free(buf_b), free(out);
}

static void test_elementwise(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++)
        check_case(cur, &cases[i]);
}

/* ---- named edge cases ------------------------------------------------------------------------ */

/* torch.pow(x, e) and the gradient of its sum for the exponents PyTorch takes shortcuts for
 * (0: fill with 1, 1: copy, 2, 3, -1, -2, 0.5: sqrt, -0.5: rsqrt), and 1.5 and 4, whose
 * gradients go through the 0.5 and 3 shortcuts, on special values. Generated with PyTorch 1.13:
 *   x = torch.tensor(pow_x, requires_grad=True); torch.pow(x, e).sum().backward() */
static const float pow_x[] = {NAN,   INFINITY, -INFINITY, 0.0f,  -0.0f, 1.0f,
                              -1.0f, 4.0f,     -0.25f,    3e38f, 1e-45f};
static const struct {
    float e, y[11], gx[11];
} pow_want[] = {
    {0.0f,
     {0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f,
      0x1p+0f},
     {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f}},
    {1.0f,
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+0f, -0x1p+0f, 0x1p+2f, -0x1p-2f, 0x1.c363ccp+127f,
      0x1p-149f},
     {0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f, 0x1p+0f,
      0x1p+0f}},
    {2.0f,
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1p+0f, 0x1p+0f, 0x1p+4f, 0x1p-4f, INFINITY, 0.0f},
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+1f, -0x1p+1f, 0x1p+3f, -0x1p-1f, INFINITY,
      0x1p-148f}},
    {3.0f,
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+0f, -0x1p+0f, 0x1p+6f, -0x1p-6f, INFINITY, 0.0f},
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1.8p+1f, 0x1.8p+1f, 0x1.8p+5f, 0x1.8p-3f, INFINITY,
      0.0f}},
    {-1.0f,
     {NAN, 0.0f, -0.0f, INFINITY, -INFINITY, 0x1p+0f, -0x1p+0f, 0x1p-2f, -0x1p+2f, 0x1.225fdp-128f,
      INFINITY},
     {NAN, -0.0f, -0.0f, -INFINITY, -INFINITY, -0x1p+0f, -0x1p+0f, -0x1p-4f, -0x1p+4f, -0.0f,
      -INFINITY}},
    {-2.0f,
     {NAN, 0.0f, 0.0f, INFINITY, INFINITY, 0x1p+0f, 0x1p+0f, 0x1p-4f, 0x1p+4f, 0.0f, INFINITY},
     {NAN, -0.0f, 0.0f, -INFINITY, INFINITY, -0x1p+1f, 0x1p+1f, -0x1p-5f, 0x1p+7f, -0.0f,
      -INFINITY}},
    {0.5f,
     {NAN, INFINITY, NAN, 0.0f, -0.0f, 0x1p+0f, NAN, 0x1p+1f, NAN, 0x1.e0bd9cp+63f,
      0x1.6a09e6p-75f},
     {NAN, 0.0f, NAN, INFINITY, -INFINITY, 0x1p-1f, NAN, 0x1p-2f, NAN, 0x1.10a55ep-65f,
      0x1.6a09e6p+73f}},
    {-0.5f,
     {NAN, 0.0f, NAN, INFINITY, -INFINITY, 0x1p+0f, NAN, 0x1p-1f, NAN, 0x1.10a55ep-64f,
      0x1.6a09e6p+74f},
     {NAN, -0.0f, -0.0f, -INFINITY, -INFINITY, -0x1p-1f, NAN, -0x1p-4f, NAN, -0.0f, -INFINITY}},
    {1.5f,
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1p+0f, NAN, 0x1p+3f, NAN, INFINITY, 0.0f},
     {NAN, INFINITY, NAN, 0.0f, -0.0f, 0x1.8p+0f, NAN, 0x1.8p+1f, NAN, 0x1.688e34p+64f,
      0x1.0f876cp-74f}},
    {4.0f,
     {NAN, INFINITY, INFINITY, 0.0f, 0.0f, 0x1p+0f, 0x1p+0f, 0x1p+8f, 0x1p-8f, INFINITY, 0.0f},
     {NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 0x1p+2f, -0x1p+2f, 0x1p+8f, -0x1p-4f, INFINITY, 0.0f}},
};

/* pow_scalar and pow_scalar_bwd give those bits (signed zeros, infinities, NaN) in every family,
 * at every length up to 40, so through vector bodies and tails. */
static void test_pow_scalar_bits(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { N = 40, NX = sizeof pow_x / sizeof pow_x[0] };
    float x[N], y[N], g[N], gx[N];
    for (size_t c = 0; c < sizeof pow_want / sizeof pow_want[0]; c++) {
        float e = pow_want[c].e;
        for (int n = 0; n <= N; n++) {
            for (int i = 0; i < n; i++)
                x[i] = pow_x[(i + n) % NX], g[i] = 1.0f;
            k->pow_scalar(x, y, n, e);
            k->pow_scalar_bwd(x, g, gx, n, e);
            for (int i = 0; i < n; i++) {
                float wy = pow_want[c].y[(i + n) % NX], wg = pow_want[c].gx[(i + n) % NX];
                if (isnan(wy) ? !isnan(y[i]) : bits(y[i]) != bits(wy))
                    fail_msg("%s pow_scalar(%a, %g) = %a, PyTorch %a", cur->name, x[i], e, y[i],
                             wy);
                if (isnan(wg) ? !isnan(gx[i]) : bits(gx[i]) != bits(wg))
                    fail_msg("%s pow_scalar_bwd(%a, %g) = %a, PyTorch %a", cur->name, x[i], e,
                             gx[i], wg);
            }
        }
    }
}

/* pow_vs (a tensor exponent that is one value) is pow_vv element for element, bit for bit, for
 * the exponents pow_scalar has shortcuts for too: a tensor exponent gives the same floats
 * whether it is full-size or broadcast, as PyTorch's tensor-tensor pow. */
static void test_pow_vs_is_pow_vv(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { N = 40, NX = sizeof pow_x / sizeof pow_x[0] };
    const float es[] = {0.5f, -0.5f, 2.0f, 3.0f, -1.0f, -2.0f, 0.0f, 1.0f, 1.5f};
    float x[N], b[N], y[N], yv[N];
    for (size_t c = 0; c < sizeof es / sizeof es[0]; c++)
        for (int n = 0; n <= N; n++) {
            for (int i = 0; i < n; i++)
                x[i] = pow_x[(i + n) % NX], b[i] = es[c];
            k->pow_vs(x, es[c], y, n);
            k->pow_vv(x, b, yv, n);
            for (int i = 0; i < n; i++)
                if (bits(y[i]) != bits(yv[i]) && !(isnan(y[i]) && isnan(yv[i])))
                    fail_msg("%s pow_vs(%a, %g) = %a, pow_vv %a", cur->name, x[i], es[c], y[i],
                             yv[i]);
        }
    /* and C's special values: (-0)^-0.5 = +inf, (-inf)^0.5 = +inf, where rsqrt and sqrt differ */
    const float xs[2] = {-0.0f, -INFINITY}, ws[2][2] = {{INFINITY, 0.0f}, {0.0f, INFINITY}};
    for (int c = 0; c < 2; c++) {
        k->pow_vs(xs, c ? 0.5f : -0.5f, y, 2);
        for (int i = 0; i < 2; i++)
            if (bits(y[i]) != bits(ws[c][i]))
                fail_msg("%s pow_vs(%a, %g) = %a, C pow %a", cur->name, xs[i], c ? 0.5 : -0.5, y[i],
                         ws[c][i]);
    }
}

/* relu as PyTorch's clamp_min(x, 0): NaN and -0.0 are kept; its backward (threshold_backward)
 * gives 0 only where y <= 0, so a NaN y passes gy, -0.0 included. Bit for bit, at every length
 * up to 40 (bodies and tails). */
static void test_relu_bits(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { N = 40 };
    const float x7[7] = {NAN, -0.0f, 0.0f, 2.0f, -3.0f, INFINITY, -INFINITY};
    const float y7[7] = {NAN, -0.0f, 0.0f, 2.0f, 0.0f, INFINITY, 0.0f};
    const float gy7[7] = {-0.0f, -0.0f, -0.0f, -0.0f, -1.0f, 5.0f, 5.0f};
    const float gx7[7] = {-0.0f, 0.0f, 0.0f, -0.0f, 0.0f, 5.0f, 0.0f};
    float x[N], y[N], gy[N], gx[N];
    for (int n = 0; n <= N; n++) {
        for (int i = 0; i < n; i++)
            x[i] = x7[(i + n) % 7], gy[i] = gy7[(i + n) % 7];
        k->relu(x, y, n);
        k->relu_bwd(y, gy, gx, n);
        for (int i = 0; i < n; i++) {
            float wy = y7[(i + n) % 7], wg = gx7[(i + n) % 7];
            if (isnan(wy) ? !isnan(y[i]) : bits(y[i]) != bits(wy))
                fail_msg("%s relu(%a) = %a, want %a", cur->name, x[i], y[i], wy);
            if (bits(gx[i]) != bits(wg))
                fail_msg("%s relu_bwd(y=%a, gy=%a) = %a, want %a", cur->name, y[i], gy[i], gx[i],
                         wg);
        }
    }
}

/* Inputs for the sigmoid_bwd_y checks: x across both tails (y rounds to 1 from x = 16.6 on),
 * with infinite and NaN lanes scattered among ordinary ones; gradients that are not uniform. */
static void sigmoid_bwd_inputs(float *x, float *g, int64_t n)
{
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        float u = (float)(s >> 8) * 0x1p-24f;
        x[i] = (u - 0.5f) * 60.0f;
        g[i] = 0.25f + u;
    }
    x[3] = INFINITY, x[17] = -INFINITY, x[40] = NAN, x[41] = 17.0f, x[66] = 100.0f;
}

/* sigmoid_bwd_y (the op's backward: from the saved output) gives sigmoid_bwd's bits exactly, for
 * every length and offset, with a gradient array and with one uniform value, writing nothing
 * past n. */
static void test_sigmoid_bwd_from_output(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { N = 200 };
    float x[N], y[N], g[N], gu[N], a[N], b[N];
    sigmoid_bwd_inputs(x, g, N);
    for (int i = 0; i < N; i++)
        gu[i] = g[7];
    for (int off = 0; off < 5; off++)
        for (int n = 0; n + off <= N; n += n < 70 ? 1 : 37) {
            k->sigmoid(x + off, y + off, n);
            memset(a, 0x55, sizeof a);
            memset(b, 0x55, sizeof b);
            k->sigmoid_bwd(x + off, g + off, a + off, n);
            k->sigmoid_bwd_y(y + off, x + off, g + off, false, b + off, n);
            assert_memory_equal(a, b, sizeof a); /* the bits, and nothing past n written */
            memset(a, 0x55, sizeof a);
            memset(b, 0x55, sizeof b);
            k->sigmoid_bwd(x + off, gu + off, a + off, n);
            k->sigmoid_bwd_y(y + off, x + off, &g[7], true, b + off, n);
            assert_memory_equal(a, b, sizeof a);
        }
}

/* The same at TG_STREAM_MIN and beyond, where the SIMD families write gx with non-temporal
 * stores, into an output that starts off the 64-byte grid. */
static void test_sigmoid_bwd_streamed(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t n = TG_STREAM_MIN + 37;
    float *x = alloc_f(n), *y = alloc_f(n), *g = alloc_f(n), *a = alloc_f(n + 2),
          *b = alloc_f(n + 2);
    sigmoid_bwd_inputs(x, g, n);
    k->sigmoid(x, y, n);
    for (int uniform = 0; uniform < 2; uniform++) {
        if (uniform)
            for (int64_t i = 0; i < n; i++)
                g[i] = 0.75f;
        b[0] = b[n + 1] = GUARD;
        k->sigmoid_bwd(x, g, a + 1, n);
        k->sigmoid_bwd_y(y, x, g, uniform, b + 1, n);
        assert_true(b[0] == GUARD && b[n + 1] == GUARD);
        assert_memory_equal(a + 1, b + 1, sizeof(float) * (size_t)n);
    }
    free(x), free(y), free(g), free(a), free(b);
}

/* Every unary kernel gives the same bits on TG_STREAM_MIN elements and beyond, where the large
 * loops ask for their input ahead and (out of place) stream their stores, as it gives a short
 * run at a time: out of place into an output off the 64-byte grid, and in place. */
static void test_unary_large(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t n = TG_STREAM_MIN + 37, run = 67;
    const tg_unary_fn ops[] = {k->neg, k->abs, k->relu, k->exp,  k->log,
                               k->sin, k->cos, k->tanh, k->sqrt, k->sigmoid};
    float *x = alloc_f(n), *want = alloc_f(n), *got = alloc_f(n + 2);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)uniform(-30.0, 30.0);
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (int64_t i = 0; i < n; i += run)
            ops[o](x + i, want + i, n - i < run ? n - i : run);
        got[0] = got[n + 1] = GUARD;
        ops[o](x, got + 1, n);
        assert_true(got[0] == GUARD && got[n + 1] == GUARD);
        assert_memory_equal(got + 1, want, sizeof(float) * (size_t)n);
        memcpy(got, x, sizeof(float) * (size_t)n);
        ops[o](got, got, n);
        assert_memory_equal(got, want, sizeof(float) * (size_t)n);
    }
    free(x), free(want), free(got);
}

/* The same for the backward kernels of map_bwd: on TG_STREAM_MIN elements and beyond (where gx
 * streams out unless it aliases an input) the bits of short runs, into an output off the 64-byte
 * grid and in place over either input. */
static void test_unary_bwd_large(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t n = TG_STREAM_MIN + 37, run = 67;
    const tg_unary_bwd_fn ops[] = {k->sigmoid_bwd, k->tanh_bwd, k->sqrt_bwd, k->relu_bwd,
                                   k->sin_bwd,     k->cos_bwd,  k->abs_bwd};
    float *v = alloc_f(n), *g = alloc_f(n), *want = alloc_f(n), *got = alloc_f(n + 2);
    for (int64_t i = 0; i < n; i++) {
        v[i] = (float)uniform(-3.0, 3.0);
        g[i] = (float)uniform(-2.0, 2.0);
    }
    const size_t bytes = sizeof(float) * (size_t)n;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        for (int64_t i = 0; i < n; i += run)
            ops[o](v + i, g + i, want + i, n - i < run ? n - i : run);
        got[0] = got[n + 1] = GUARD;
        ops[o](v, g, got + 1, n);
        assert_true(got[0] == GUARD && got[n + 1] == GUARD);
        assert_memory_equal(got + 1, want, bytes);
        memcpy(got, v, bytes);
        ops[o](got, g, got, n);
        assert_memory_equal(got, want, bytes);
        memcpy(got, g, bytes);
        ops[o](v, got, got, n);
        assert_memory_equal(got, want, bytes);
    }
    free(v), free(g), free(want), free(got);
}

/* Not a kernel of any table: bwd_uniform must take it by blocks. */
static void scaled_product(const float *v, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = 0.75f * v[i] * gy[i];
}

/* bwd_uniform(f, v, g) gives the floats of f on an array filled with g: short lengths, a large
 * one (streamed), an output off the 64-byte grid, in place over v, and a foreign f. */
static void test_bwd_uniform(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t big = TG_STREAM_MIN + 37;
    const tg_unary_bwd_fn ops[] = {k->sigmoid_bwd, k->tanh_bwd, k->sqrt_bwd, k->relu_bwd,
                                   k->sin_bwd,     k->cos_bwd,  k->abs_bwd,  scaled_product};
    float *v = alloc_f(big), *g = alloc_f(big), *want = alloc_f(big), *got = alloc_f(big + 2);
    const float gval = -1.375f;
    for (int64_t i = 0; i < big; i++) {
        v[i] = (float)uniform(0.05, 3.0) * (i % 3 == 0 ? -1.0f : 1.0f);
        g[i] = gval;
    }
    const int64_t lengths[] = {0, 1, 15, 16, 17, 67, 2049, big};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
            int64_t n = lengths[l];
            size_t bytes = sizeof(float) * (size_t)n;
            ops[o](v, g, want, n);
            got[0] = got[n + 1] = GUARD;
            k->bwd_uniform(ops[o], v, gval, got + 1, n);
            assert_true(got[0] == GUARD && got[n + 1] == GUARD);
            if (n > 0)
                assert_memory_equal(got + 1, want, bytes);
            memcpy(got, v, bytes);
            k->bwd_uniform(ops[o], got, gval, got, n);
            if (n > 0)
                assert_memory_equal(got, want, bytes);
        }
    free(v), free(g), free(want), free(got);
}

static void test_sigmoid_limits(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    float x[7] = {100.0f, -100.0f, INFINITY, -INFINITY, NAN, 0.0f, -0.0f}, y[7];
    k->sigmoid(x, y, 7);
    assert_true(y[0] == 1.0f);
    assert_true(fabs(y[1] - exp(-100.0)) <= 0x1p-149); /* the subnormal 3.7e-44, not 0 */
    assert_true(y[2] == 1.0f);
    assert_true(y[3] == 0.0f);
    assert_true(isnan(y[4]));
    assert_true(y[5] == 0.5f && y[6] == 0.5f);

    /* the derivative from x does not vanish while the true value is a normal float */
    float xb[6] = {20.0f, -20.0f, 80.0f, INFINITY, -INFINITY, NAN}, g[6] = {1, 1, 1, 1, 1, 1},
          gx[6];
    k->sigmoid_bwd(xb, g, gx, 6);
    assert_true(ulp_err(gx[0], exp(-20.0) / ((1 + exp(-20.0)) * (1 + exp(-20.0)))) <= 3.0);
    assert_true(gx[0] == gx[1]);
    assert_true(gx[2] > 0.0f); /* 1.8e-35 */
    assert_true(gx[3] == 0.0f && gx[4] == 0.0f);
    assert_true(isnan(gx[5]));

    /* Below x = -88.7, exp(-x) overflows, but the derivative exp(x) is a subnormal float down
     * to x = -103.9: it must not be 0 there, and a large gy must bring back a normal result. */
    float xn[5] = {-89.0f, -95.0f, -103.0f, -89.0f, -105.0f};
    float gn[5] = {1.0f, 1.0f, 1.0f, 1e30f, 1.0f}, gxn[5], yn[5];
    k->sigmoid(xn, yn, 5);
    k->sigmoid_bwd(xn, gn, gxn, 5);
    for (int i = 0; i < 4; i++) {
        double want = (double)gn[i] * exp((double)xn[i]);
        assert_true(yn[i] > 0.0f && gxn[i] > 0.0f);
        assert_true(fabs(gxn[i] - want) <= 0x1p-149 * gn[i] + 1e-6 * want);
    }
    assert_true(yn[4] == 0.0f && gxn[4] == 0.0f); /* exp(-105) rounds to 0 in float too */
    float gy_y[5];
    k->sigmoid_bwd_y(yn, xn, gn, false, gy_y, 5);
    assert_memory_equal(gy_y, gxn, sizeof gy_y);
}

static void test_trig_large(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    float x[8] = {1e4f, -1e4f, 1e6f, -1e6f, 1e30f, -1e30f, 3.4028235e38f, 1.0e20f}, s[8], c[8];
    k->sin(x, s, 8);
    k->cos(x, c, 8);
    for (int i = 0; i < 8; i++) {
        assert_true(ulp_err(s[i], sin((double)x[i])) <= ref_bound(cur, bound_of("sin")));
        assert_true(ulp_err(c[i], cos((double)x[i])) <= ref_bound(cur, bound_of("cos")));
    }
}

/* ---- every float ------------------------------------------------------------------------------
 * Every float through a unary entry against a double reference, the input space cut into
 * 2^16 blocks of 2^16 floats spread over the thread pool; each block keeps its worst error and
 * the blocks are combined in order, so the reported input does not depend on the thread count.
 * Run with TAPEGRAD_EXHAUSTIVE=1 (minutes, not seconds). */
#define EX_BLOCK ((int64_t)1 << 16)

typedef struct ex_ctx {
    tg_unary_fn f;
    double (*ref)(double);
    float split;       /* worst_in covers |x| <= split */
    double *worst;     /* per block */
    double *worst_in;  /* per block, |x| <= split only */
    uint32_t *worst_u; /* its input's bits */
    int *zero_sign;    /* per block: a zero result whose sign differs from the reference's */
} ex_ctx;

static void ex_blocks(void *p, int64_t begin, int64_t end)
{
    ex_ctx *c = p;
    float *x = malloc(sizeof(float) * EX_BLOCK), *y = malloc(sizeof(float) * EX_BLOCK);
    if (!x || !y) /* flagged as a failure: an infinite error */
        for (int64_t b = begin; b < end; b++)
            c->worst[b] = c->worst_in[b] = INFINITY, c->worst_u[b] = 0, c->zero_sign[b] = 0;
    for (int64_t b = begin; b < end && x && y; b++) {
        for (int64_t i = 0; i < EX_BLOCK; i++) {
            uint32_t u = (uint32_t)(b * EX_BLOCK + i);
            memcpy(&x[i], &u, sizeof u);
        }
        c->f(x, y, EX_BLOCK);
        double worst = 0, worst_in = 0;
        uint32_t wu = 0;
        int zs = 0;
        for (int64_t i = 0; i < EX_BLOCK; i++) {
            double r = c->ref((double)x[i]);
            double e = ulp_err(y[i], r);
            if (!(e <= worst))
                worst = e, wu = bits(x[i]);
            if (fabsf(x[i]) <= c->split && !(e <= worst_in))
                worst_in = e;
            if (y[i] == 0 && r == 0 && !signbit(y[i]) != !signbit(r))
                zs = 1;
        }
        c->worst[b] = worst;
        c->worst_in[b] = worst_in;
        c->worst_u[b] = wu;
        c->zero_sign[b] = zs;
    }
    free(x), free(y);
}

/* The largest error of f over all floats, and the input where it first occurs; *worst_in is the
 * largest over |x| <= split. */
static double exhaustive_worst(tg_unary_fn f, double (*ref)(double), float split, float *at,
                               double *worst_in, int *zero_sign)
{
    const int64_t nb = ((int64_t)1 << 32) / EX_BLOCK;
    ex_ctx c = {f,
                ref,
                split,
                malloc(sizeof(double) * (size_t)nb),
                malloc(sizeof(double) * (size_t)nb),
                malloc(sizeof(uint32_t) * (size_t)nb),
                malloc(sizeof(int) * (size_t)nb)};
    assert_true(c.worst && c.worst_in && c.worst_u && c.zero_sign);
    tg_parallel_for(nb, 1, ex_blocks, &c);
    double worst = 0;
    uint32_t wu = 0;
    *zero_sign = 0;
    *worst_in = 0;
    for (int64_t b = 0; b < nb; b++) {
        if (!(c.worst[b] <= worst))
            worst = c.worst[b], wu = c.worst_u[b];
        if (!(c.worst_in[b] <= *worst_in))
            *worst_in = c.worst_in[b];
        *zero_sign |= c.zero_sign[b];
    }
    memcpy(at, &wu, sizeof wu);
    free(c.worst), free(c.worst_in), free(c.worst_u), free(c.zero_sign);
    return worst;
}

static int exhaustive_on(void)
{
    const char *on = getenv("TAPEGRAD_EXHAUSTIVE");
    return on && strcmp(on, "1") == 0;
}

/* Every float through f against ref: the worst error within the bound of op's table entry. */
static void check_all_floats(const char *op, tg_unary_fn f, double (*ref)(double))
{
    float at;
    int zs;
    double in;
    double worst = exhaustive_worst(f, ref, 0.0f, &at, &in, &zs);
    print_message("  %-7s %s over all floats: %.4f ulp at %a\n", cur->name, op, worst, at);
    assert_true(worst <= ref_bound(cur, bound_of(op)));
}

/* The x86 families inline their own exp (sigmoid, its backward and the logistic loss are built
 * on it); this is the check behind its bound: 0.906 ULP at most. */
static void test_exp_exhaustive(void **state)
{
    (void)state;
    if (!exhaustive_on())
        skip();
    check_all_floats("exp", cur->k.exp, exp);
}

/* The x86 families inline sin and cos up to |x| ~ 6432, SLEEF's u10 beyond: measured 0.740 and
 * 0.746 ULP at most on the inlined range, 0.881 for both over all floats (SLEEF's lanes), with the
 * sign of a zero result kept (sin(-0) = -0). */
static void test_trig_exhaustive(void **state)
{
    (void)state;
    if (!exhaustive_on())
        skip();
    float at;
    int zs;
    double in;
    double worst = exhaustive_worst(cur->k.sin, sin, 6432.0f, &at, &in, &zs);
    print_message("  %-7s sin over all floats: %.4f ulp at %a; %.4f for |x| <= 6432\n", cur->name,
                  worst, at, in);
    assert_true(worst <= ref_bound(cur, bound_of("sin")));
    assert_false(zs);
    worst = exhaustive_worst(cur->k.cos, cos, 6432.0f, &at, &in, &zs);
    print_message("  %-7s cos over all floats: %.4f ulp at %a; %.4f for |x| <= 6432\n", cur->name,
                  worst, at, in);
    assert_true(worst <= ref_bound(cur, bound_of("cos")));
    assert_false(zs);
}

static double sigmoid_ref(double x)
{
    return 1.0 / (1.0 + exp(-x));
}

/* sigmoid rounds three times around exp (the x86 families' inlined exp, glibc's in the scalar
 * family): 2.48 ULP measured over every float in each family (2.4807 at x = -16.6357); the
 * bound is 2.5. In AVX-512, rcp14 and a Newton step in place of the division measured 2.49
 * and were not faster on Zen 5, so the division stays. */
static void test_sigmoid_exhaustive(void **state)
{
    (void)state;
    if (!exhaustive_on())
        skip();
    check_all_floats("sigmoid", cur->k.sigmoid, sigmoid_ref);
}

/* A lane's sin/cos depends on its own input only: the inlined path and SLEEF's (past |x| ~ 6432,
 * infinities) are chosen per vector but blended per lane. Every position of a 16-lane window gets
 * one far input while the others stay small; the small ones must not change, bit for bit. */
static void test_trig_lanes(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { L = 16 };
    const float far[] = {1e4f, -7000.0f, 6434.0f, 1e30f, INFINITY, -INFINITY, NAN};
    float x[L], base_s[L], base_c[L], s[L], c[L];
    for (int i = 0; i < L; i++)
        x[i] = (float)uniform(-6400, 6400);
    x[3] = -0.0f, x[4] = 0.0f, x[5] = 6431.9f, x[6] = -6431.9f;
    k->sin(x, base_s, L);
    k->cos(x, base_c, L);
    assert_true(signbit(base_s[3]) && !signbit(base_s[4]) && base_c[3] == 1.0f);
    for (size_t f = 0; f < sizeof far / sizeof far[0]; f++)
        for (int at = 0; at < L; at++) {
            float xx[L];
            memcpy(xx, x, sizeof xx);
            xx[at] = far[f];
            k->sin(xx, s, L);
            k->cos(xx, c, L);
            for (int i = 0; i < L; i++)
                if (i != at)
                    assert_true(bits(s[i]) == bits(base_s[i]) && bits(c[i]) == bits(base_c[i]));
            if (isinf(far[f]) || isnan(far[f]))
                assert_true(isnan(s[at]) && isnan(c[at]));
            else
                assert_true(ulp_err(s[at], sin((double)far[f])) <=
                                ref_bound(cur, bound_of("sin")) &&
                            ulp_err(c[at], cos((double)far[f])) <= ref_bound(cur, bound_of("cos")));
        }
}

/* ---- sum ------------------------------------------------------------------------------------ */

static double sum_double(const float *x, int64_t n)
{
    double s = 0, c = 0; /* Kahan in double: exact enough for a reference */
    for (int64_t i = 0; i < n; i++) {
        double y = (double)x[i] - c, t = s + y;
        c = (t - s) - y;
        s = t;
    }
    return s;
}

static double sum_abs(const float *x, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs((double)x[i]);
    return s;
}

/* Subnormals and signed zeros. Alone, their sums are small enough for the pairwise bound to
 * see a flushed subnormal of 1e-40 or a dropped lane, which values near 1 would hide. */
static const float sum_tiny[] = {1e-40f, -3e-42f, 0.0f, -0.0f, 1e-45f, -1.1754942e-38f, 2e-39f};
#define NTINY (sizeof sum_tiny / sizeof sum_tiny[0])

enum { SUM_UNIFORM, SUM_TINY, SUM_MIXED, SUM_SETS };

static void fill_sum_set(float *x, int64_t n, int set)
{
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = next_u64();
        if (set == SUM_TINY || (set == SUM_MIXED && r % 3 == 0))
            x[i] = sum_tiny[(r >> 8) % NTINY];
        else if (set == SUM_MIXED && r % 3 == 1)
            x[i] = (float)uniform(-4, 4);
        else
            x[i] = (float)uniform(-1, 3); /* a nonzero mean makes the running sum grow */
    }
}

/* One length: within the pairwise bound of a double sum, and the same float at every
 * misalignment (the shape depends on n alone). */
static void check_sum(const tg_kernels *k, const float *x, float *x1, int64_t n, int set)
{
    float s = k->sum(x, n);
    double ref = sum_double(x, n);
    /* pairwise bound: (leaf adds + log2 n) roundings of at most eps/2 of the sum of |x| */
    double tol = (16 + log2((double)n + 1)) * 0x1p-24 * sum_abs(x, n);
    if (!(fabs(s - ref) <= tol))
        fail_msg("%s sum set %d n=%lld: %.9g vs %.9g (tol %.3g)", cur->name, set, (long long)n, s,
                 ref, tol);
    float ss = scalar_k.sum(x, n);
    /* no worse than the scalar pairwise sum, with a few float steps of slack; not where the
     * values cancel, where both errors are steps of the terms, not of the small result */
    if (set != SUM_MIXED &&
        !(fabs(s - ref) <= fabs(ss - ref) + 4 * ldexp(1.0, ilogb(ref + 1e-30) - 23)))
        fail_msg("%s sum set %d n=%lld: %a, scalar %a, exact %a", cur->name, set, (long long)n, s,
                 ss, ref);
    if (s == 0) /* +0 or -0: the scalar family's choice (a sum starts from +0) */
        assert_true(bits(s) == bits(ss));
    static const int offsets[] = {1, 2, 3, 5, 8, 15}; /* up to one AVX-512 vector off */
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        memcpy(x1 + offsets[o], x, sizeof(float) * (size_t)n);
        if (bits(k->sum(x1 + offsets[o], n)) != bits(s))
            fail_msg("%s sum set %d n=%lld: offset %d changes the result", cur->name, set,
                     (long long)n, offsets[o]);
    }
}

/* Every length through the vector tails (0..MAXLEN: one to four vectors of every width plus
 * any remainder), then lengths around the leaf and block edges up to a large one, on three
 * inputs: uniform values, subnormals and signed zeros only, and the two mixed with others. */
static void test_sum(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t big = (int64_t)1 << 22;
    float *x = alloc_f(big + 16), *x1 = alloc_f(big + 16);
    const int64_t lens[] = {127, 128,  129,  255,  256,  257, 511,     512,
                            513, 1000, 4095, 4096, 4097, BIG, 1 << 20, big};
    for (int set = 0; set < SUM_SETS; set++) {
        fill_sum_set(x, big, set);
        for (int64_t n = 0; n <= MAXLEN; n++)
            check_sum(k, x, x1, n, set);
        for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++)
            check_sum(k, x, x1, lens[t], set);
    }
    /* NaN and infinities propagate from every position of every short length. */
    for (int64_t n = 1; n <= MAXLEN; n++)
        for (int64_t p = 0; p < n; p++) {
            fill_sum_set(x, n, SUM_UNIFORM);
            x[p] = NAN;
            assert_true(isnan(k->sum(x, n)));
            x[p] = -INFINITY;
            assert_true(k->sum(x, n) == -INFINITY);
            x[(p + 1) % n] = INFINITY;
            assert_true(n == 1 ? k->sum(x, n) == INFINITY : isnan(k->sum(x, n)));
        }
    float sp[4] = {INFINITY, 1.0f, -INFINITY, 2.0f};
    assert_true(isnan(k->sum(sp, 4)));
    assert_true(k->sum(sp, 2) == INFINITY);
    float nn[3] = {1.0f, NAN, 2.0f};
    assert_true(isnan(k->sum(nn, 3)));
    float z[2] = {-0.0f, -0.0f};
    assert_true(bits(k->sum(z, 2)) == bits(scalar_k.sum(z, 2)));
    free(x), free(x1);
}

/* row_sums: every length up to TG_ROW_SUMS_MAX and row counts around the SIMD widths, on the
 * sum's three input sets (subnormals included), against a double sum of each row; a row's float
 * does not depend on its place in the call (the same rows from a later first row, or one at a
 * time), nor on alignment; NaN and inf propagate. */
static void test_row_sums(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { ROWS_MAX = 37 };
    float *x = alloc_f(ROWS_MAX * TG_ROW_SUMS_MAX + 1), *out = alloc_f(ROWS_MAX + 1);
    float *out2 = alloc_f(ROWS_MAX + 1), one;
    for (int set = 0; set < SUM_SETS; set++)
        for (int64_t len = 0; len <= TG_ROW_SUMS_MAX; len++) {
            int64_t rows = len % 2 ? ROWS_MAX : 17 + len % 16;
            fill_sum_set(x, rows * len + 1, set);
            float *xa = x + len % 2; /* odd lengths: rows off 4-byte from a vector boundary too */
            out[rows] = 12345.0f;    /* past the last row: untouched */
            k->row_sums(xa, rows, len, out);
            assert_true(out[rows] == 12345.0f);
            for (int64_t r = 0; r < rows; r++) {
                const float *row = xa + r * len;
                double ref = sum_double(row, len), tol = (len + 1) * 0x1p-24 * sum_abs(row, len);
                if (!(fabs(out[r] - ref) <= tol))
                    fail_msg("%s row_sums set %d len %lld row %lld: %.9g vs %.9g", cur->name, set,
                             (long long)len, (long long)r, out[r], ref);
                k->row_sums(row, 1, len, &one);
                assert_true(bits(one) == bits(out[r]));
            }
            for (int64_t skip = 1; skip < 17 && skip < rows; skip++) {
                k->row_sums(xa + skip * len, rows - skip, len, out2);
                for (int64_t r = skip; r < rows; r++)
                    assert_true(bits(out2[r - skip]) == bits(out[r]));
            }
        }
    float sp[6] = {INFINITY, 1.0f, -INFINITY, 2.0f, NAN, 0.0f};
    k->row_sums(sp, 3, 2, out);
    assert_true(out[0] == INFINITY && out[1] == -INFINITY && isnan(out[2]));
    k->row_sums(sp, 0, 2, out); /* no rows: nothing read or written */
    free(x), free(out), free(out2);
}

/* col_sums follows sum_dim's pairwise order exactly, so every family gives the scalar
 * reference's floats bit for bit (one rounding per add, same adds): every length through a few
 * halvings of the run (TG_SUM_RUN) and some longer, every width up to TG_COL_SUMS_MAX (0: no
 * columns, nothing written), strides wider than the rows, misaligned, on the sum's three
 * input sets (subnormals included, which a family that flushed them would change). */
static void test_col_sums(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    enum { LEN_ALL = 5 * TG_SUM_RUN, X_N = 1001 * (TG_COL_SUMS_MAX + 6) + 3 };
    const int64_t longer[] = {63, 64, 65, 100, 1001};
    const size_t nlens = LEN_ALL + sizeof longer / sizeof longer[0];
    float *x = alloc_f(X_N), *y = alloc_f(TG_COL_SUMS_MAX + 1), *ys = alloc_f(TG_COL_SUMS_MAX + 1);
    for (int set = 0; set < SUM_SETS; set++) {
        fill_sum_set(x, X_N, set);
        for (size_t a = 0; a < nlens; a++)
            for (int64_t w = 0; w <= TG_COL_SUMS_MAX; w++)
                for (int64_t extra = 0; extra <= 5; extra += 5) {
                    int64_t len = a < LEN_ALL ? (int64_t)a + 1 : longer[a - LEN_ALL],
                            ld = w + extra;
                    /* the rows start off a vector boundary, or on one */
                    const float *xa = x + (w + len) % 4;
                    y[w] = 777.0f;
                    k->col_sums(xa, len, w, ld, y);
                    scalar_k.col_sums(xa, len, w, ld, ys);
                    assert_true(y[w] == 777.0f); /* nothing past the width */
                    for (int64_t c = 0; c < w; c++) {
                        if (bits(y[c]) != bits(ys[c]))
                            fail_msg(
                                "%s col_sums set %d len %lld width %lld ld %lld col %lld: %a vs %a",
                                cur->name, set, (long long)len, (long long)w, (long long)ld,
                                (long long)c, y[c], ys[c]);
                        double ref = 0, mag = 0;
                        for (int64_t r = 0; r < len; r++)
                            ref += xa[r * ld + c], mag += fabs(xa[r * ld + c]);
                        assert_true(fabs(y[c] - ref) <= (8 + log2((double)len)) * 0x1p-24 * mag);
                    }
                }
    }
    free(x), free(y), free(ys);
}

/* ---- dot ------------------------------------------------------------------------------------ */

static double dot_double(const float *x, const float *y, int64_t n, double *mag)
{
    double s = 0, c = 0; /* products exact in double, summed with Kahan */
    *mag = 0;
    for (int64_t i = 0; i < n; i++) {
        double p = (double)x[i] * y[i], v = p - c, t = s + v;
        c = (t - s) - v;
        s = t;
        *mag += fabs(p);
    }
    return s;
}

/* One length: within the pairwise bound of a double dot, and the same float at every
 * misalignment of either input (the order depends on n alone). The second factor is near 1,
 * so on the tiny set the products are subnormal, which a family that flushed them would lose. */
static void check_dot(const tg_kernels *k, const float *x, const float *y, float *x1, float *y1,
                      int64_t n, int set)
{
    float d = k->dot(x, y, n);
    double mag, ref = dot_double(x, y, n, &mag);
    /* leaf adds and trees plus two carries per level of log2 n, each at most eps/2 of the sum
     * of |x y|, and an absolute eps/2 of the smallest subnormal per add where products are tiny */
    double tol = (24 + 2 * log2((double)n + 1)) * 0x1p-24 * mag + (double)n * 0x1p-150;
    if (!(fabs(d - ref) <= tol))
        fail_msg("%s dot set %d n=%lld: %.9g vs %.9g (tol %.3g)", cur->name, set, (long long)n, d,
                 ref, tol);
    if (set == SUM_UNIFORM && n >= 1000) {
        /* the running sum grows: no worse than a plain float loop, with two float steps of the
         * result for slack (short ones may land closer by luck) */
        float seq = 0.0f;
        for (int64_t i = 0; i < n; i++)
            seq += x[i] * y[i];
        if (!(fabs(d - ref) <= fabs(seq - ref) + 2 * ldexp(1.0, ilogb(ref) - 23)))
            fail_msg("%s dot n=%lld: error %.3g, a plain loop's %.3g", cur->name, (long long)n,
                     fabs(d - ref), fabs(seq - ref));
    }
    static const int offsets[][2] = {{1, 0}, {0, 3}, {2, 5}, {5, 8}, {8, 1}, {15, 15}};
    for (size_t o = 0; o < sizeof offsets / sizeof offsets[0]; o++) {
        memcpy(x1 + offsets[o][0], x, sizeof(float) * (size_t)n);
        memcpy(y1 + offsets[o][1], y, sizeof(float) * (size_t)n);
        if (bits(k->dot(x1 + offsets[o][0], y1 + offsets[o][1], n)) != bits(d))
            fail_msg("%s dot set %d n=%lld: offsets %d, %d change the result", cur->name, set,
                     (long long)n, offsets[o][0], offsets[o][1]);
    }
}

/* Every length through the vector tails (0..MAXLEN), then lengths around the leaf and block
 * edges up to 1M + 17, on the sum's three input sets against a second factor in [0.5, 2). */
static void test_dot(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t big = ((int64_t)1 << 20) + 17;
    float *x = alloc_f(big + 16), *y = alloc_f(big + 16);
    float *x1 = alloc_f(big + 16), *y1 = alloc_f(big + 16);
    const int64_t lens[] = {127,  128,  129,  255,  256,  257, 511,     512, 513,
                            1000, 1024, 4095, 4096, 4097, BIG, 1 << 20, big};
    for (int64_t i = 0; i < big; i++)
        y[i] = (float)uniform(0.5, 2);
    for (int set = 0; set < SUM_SETS; set++) {
        fill_sum_set(x, big, set);
        for (int64_t n = 0; n <= MAXLEN; n++)
            check_dot(k, x, y, x1, y1, n, set);
        for (size_t t = 0; t < sizeof lens / sizeof lens[0]; t++)
            check_dot(k, x, y, x1, y1, lens[t], set);
    }
    assert_true(k->dot(x, y, 0) == 0.0f);
    /* NaN and infinities propagate from every position of every short length, from either
     * side: inf * 0 is NaN, inf - inf is NaN. */
    for (int64_t n = 1; n <= MAXLEN; n++)
        for (int64_t p = 0; p < n; p++) {
            fill_sum_set(x, n, SUM_UNIFORM);
            x[p] = NAN;
            assert_true(isnan(k->dot(x, y, n)) && isnan(k->dot(y, x, n)));
            x[p] = -INFINITY; /* y > 0 */
            assert_true(k->dot(x, y, n) == -INFINITY && k->dot(y, x, n) == -INFINITY);
            x[(p + 1) % n] = INFINITY;
            assert_true(n == 1 ? k->dot(x, y, n) == INFINITY : isnan(k->dot(x, y, n)));
            fill_sum_set(x, n, SUM_UNIFORM);
            x[p] = INFINITY;
            float keep = y[p];
            y[p] = 0.0f; /* inf * 0 */
            assert_true(isnan(k->dot(x, y, n)) && isnan(k->dot(y, x, n)));
            y[p] = keep;
        }
    free(x), free(y), free(x1), free(y1);
}

/* ---- axpy, fill, copy ---------------------------------------------------------------------- */

static void test_blas1(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    float *x = alloc_f(BIG), *y0 = alloc_f(BIG), *y = alloc_f(BIG + 2), *ys = alloc_f(BIG);
    fill_domain(x, BIG, D_ANY);
    fill_partner(y0, BIG);
    for (int64_t n = 0; n <= BIG; n = n < MAXLEN ? n + 1 : n + BIG) {
        memcpy(y + 1, y0, sizeof(float) * (size_t)n);
        y[0] = y[n + 1] = GUARD;
        memcpy(ys, y0, sizeof(float) * (size_t)n);
        k->axpy(-0.75f, x, y + 1, n);
        scalar_k.axpy(-0.75f, x, ys, n);
        assert_true(y[0] == GUARD && y[n + 1] == GUARD);
        for (int64_t i = 0; i < n; i++)
            assert_true(bits(y[1 + i]) == bits(ys[i]) || (isnan(y[1 + i]) && isnan(ys[i])));

        k->fill(y + 1, -0.0f, n);
        assert_true(y[0] == GUARD && y[n + 1] == GUARD);
        for (int64_t i = 0; i < n; i++)
            assert_true(bits(y[1 + i]) == bits(-0.0f));

        k->copy(x, y + 1, n);
        assert_true(y[0] == GUARD && y[n + 1] == GUARD);
        assert_true(n == 0 || memcmp(x, y + 1, sizeof(float) * (size_t)n) == 0);
        k->copy(y + 1, y + 1, n); /* in place is a no-op */
        assert_true(n == 0 || memcmp(x, y + 1, sizeof(float) * (size_t)n) == 0);
    }
    free(x), free(y0), free(y), free(ys);
}

/* ---- fused logistic loss ---------------------------------------------------------------- */

static double softplus_d(double z)
{
    return fmax(z, 0) + log1p(exp(-fabs(z)));
}

/* |g - want| in ULPs of `scale` (the larger term of w s - pw t), subnormals counted as 0. */
static double grad_err(float g, double want, double scale)
{
    if (isnan(g) || isnan(want))
        return isnan(g) && isnan(want) ? 0.0 : INFINITY;
    double gd = fabs(g) < 0x1p-126 ? 0.0 : g, wd = fabs(want) < 0x1p-126 ? 0.0 : want;
    if (gd == wd)
        return 0.0;
    int e = scale < 0x1p-126 ? -126 : ilogb(scale);
    return fabs(gd - wd) / ldexp(1.0, e - 23);
}

static void test_bce_logits(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const bound *bl = bound_of("bce_loss"), *bg = bound_of("bce_grad");
    float *z = alloc_f(BIG), *t = alloc_f(BIG), *loss = alloc_f(BIG + 2), *grad = alloc_f(BIG + 2);
    float *ls = alloc_f(BIG), *gs = alloc_f(BIG);
    const float pws[] = {1.0f, 3.0f, 0.25f};
    for (size_t p = 0; p < 3; p++) {
        float pw = pws[p];
        /* reference: logits moderate to large, targets hard and soft */
        for (int64_t i = 0; i < BIG; i++) {
            /* |z| <= 1e6: pw * t * softplus(-z) would overflow float near FLT_MAX */
            z[i] = i < (int64_t)NSPECIAL && fabsf(specials[i]) <= 1e6f ? specials[i]
                                                                       : (float)uniform(-30, 30);
            t[i] = draw(D_TARGET);
        }
        double total = k->bce_logits(z, t, loss, grad, BIG, pw), want_total = 0, worst_l = 0,
               worst_g = 0;
        for (int64_t i = 0; i < BIG; i++) {
            double zi = z[i], ti = t[i];
            double l = pw * ti * softplus_d(-zi) + (1 - ti) * softplus_d(zi);
            double s = 1 / (1 + exp(-zi)), w = pw * ti + 1 - ti;
            want_total += l;
            worst_l = fmax(worst_l, ulp_err(loss[i], l));
            /* the scalar family's w / (1 + exp(-z)) underflows to 0 below z = -88.7 (PyTorch's
             * formula), where the truth is subnormal: outside the documented range */
            if (zi < -88.72 && zi > -104)
                continue;
            worst_g =
                fmax(worst_g, grad_err(grad[i], w * s - pw * ti, fmax(fabs(w * s), fabs(pw * ti))));
        }
        print_message("  %-7s bce pw=%g: loss %.3f ulp, grad %.3f ulp\n", cur->name, pw, worst_l,
                      worst_g);
        assert_true(worst_l <= ref_bound(cur, bl));
        assert_true(worst_g <= ref_bound(cur, bg));
        assert_true(fabs(total - want_total) <= 1e-6 * want_total);

        /* against scalar on all specials; outputs optional; tails and alignment */
        fill_domain(z, BIG, D_ANY);
        for (int64_t i = 0; i < BIG; i++)
            t[i] = draw(D_TARGET);
        float tot_s = scalar_k.bce_logits(z, t, ls, gs, BIG, pw);
        float tot = k->bce_logits(z, t, loss, grad, BIG, pw);
        assert_true(steps(tot, tot_s) <= 64 || (isnan(tot) && isnan(tot_s)));
        for (int64_t i = 0; i < BIG; i++) {
            double w = pw * t[i] + 1 - t[i], sd = 1 / (1 + exp(-(double)z[i]));
            double scale = fmax(fabs(w * sd), fabs(pw * t[i]));
            if (!(steps(loss[i], ls[i]) <= bl->vs_scalar &&
                  grad_err(grad[i], gs[i], scale) <= bg->vs_scalar))
                fail_msg("%s bce z=%a t=%a: loss %a/%a grad %a/%a", cur->name, z[i], t[i], loss[i],
                         ls[i], grad[i], gs[i]);
        }
        float *l1 = alloc_f(MAXLEN + 2), *g1 = alloc_f(MAXLEN + 2);
        for (int64_t n = 0; n <= MAXLEN; n++) {
            float *zz = alloc_f(n + 1), *tt = alloc_f(n + 1);
            memcpy(zz + 1, z + n, sizeof(float) * (size_t)n);
            memcpy(tt + 1, t + n, sizeof(float) * (size_t)n);
            l1[0] = l1[n + 1] = g1[0] = g1[n + 1] = GUARD;
            float s1 = k->bce_logits(zz + 1, tt + 1, l1 + 1, g1 + 1, n, pw);
            assert_true(l1[0] == GUARD && l1[n + 1] == GUARD && g1[0] == GUARD &&
                        g1[n + 1] == GUARD);
            for (int64_t i = 0; i < n; i++) {
                assert_true(bits(l1[1 + i]) == bits(loss[n + i]) ||
                            (isnan(l1[1 + i]) && isnan(loss[n + i])));
                assert_true(bits(g1[1 + i]) == bits(grad[n + i]) ||
                            (isnan(g1[1 + i]) && isnan(grad[n + i])));
            }
            float s2 = k->bce_logits(zz + 1, tt + 1, NULL, NULL, n, pw);
            float s3 = k->bce_logits(zz + 1, tt + 1, NULL, g1 + 1, n, pw);
            assert_true(bits(s1) == bits(s2) || (isnan(s1) && isnan(s2)));
            assert_true(bits(s1) == bits(s3) || (isnan(s1) && isnan(s3)));
            free(zz), free(tt);
        }
        free(l1), free(g1);
    }
    free(z), free(t), free(loss), free(grad), free(ls), free(gs);
}

/* ---- logistic-regression block ----------------------------------------------------------- */

/* One lr_block call against a double reference. The bounds follow the arithmetic: a float dot
 * of d terms is off by at most (d + 2) 2^-24 sum |x w| (plus b); the loss moves by at most
 * (w + pw t) times that and r by w/4 times it, and each adds a few roundings of its own; g sums
 * m float products, (m + 2) 2^-24 sum |r x| more. 1e-43 per row covers losses and r that are
 * subnormal at |z| near 100, where float keeps only a few bits. */
static void check_lr_block(const float *X, int64_t m, int64_t d, const float *w, float b,
                           const float *y, float pw)
{
    const double u = 0x1p-24, tiny = 1e-43;
    float *g = alloc_f(d + 3), *g2 = alloc_f(d + 1);
    double *want = calloc((size_t)d + 1, sizeof(double)),
           *tol = calloc((size_t)d + 1, sizeof(double));
    assert_true(want && tol);
    g[0] = g[d + 2] = GUARD;
    double loss = cur->k.lr_block(X, m, d, w, b, y, pw, g + 1);
    assert_true(g[0] == GUARD && g[d + 2] == GUARD);
    /* the loss does not depend on whether g is wanted; a second call gives the same bits */
    assert_true(cur->k.lr_block(X, m, d, w, b, y, pw, NULL) == loss);
    assert_true(cur->k.lr_block(X, m, d, w, b, y, pw, g2) == loss);
    assert_true(memcmp(g + 1, g2, sizeof(float) * (size_t)(d + 1)) == 0);
    double want_loss = 0, tol_loss = 0;
    for (int64_t i = 0; i < m; i++) {
        const float *x = X + i * d;
        double z = b, mag = fabs(b), t = y[i], wt = pw * t + 1 - t;
        for (int64_t j = 0; j < d; j++) {
            z += (double)x[j] * w[j];
            mag += fabs((double)x[j] * w[j]);
        }
        double ez = (double)(d + 2) * u * mag;
        double l = pw * t * softplus_d(-z) + (1 - t) * softplus_d(z);
        double r = wt / (1 + exp(-z)) - pw * t, er = wt * ez / 4 + 8 * u * (wt + pw * t) + tiny;
        want_loss += l;
        tol_loss += (wt + pw * t) * ez + 8 * u * l + tiny;
        for (int64_t j = 0; j < d; j++) {
            want[j] += r * x[j];
            tol[j] += er * fabs(x[j]) + (double)(m + 2) * u * fabs(r * x[j]);
        }
        want[d] += r;
        tol[d] += er + (double)(m + 2) * u * fabs(r);
    }
    if (!(fabs(loss - want_loss) <= tol_loss))
        fail_msg("%s lr_block m=%lld d=%lld pw=%g: loss %.17g, exact %.17g", cur->name,
                 (long long)m, (long long)d, pw, loss, want_loss);
    for (int64_t j = 0; j <= d; j++)
        if (!(fabs(g[1 + j] - want[j]) <= tol[j]))
            fail_msg("%s lr_block m=%lld d=%lld pw=%g: g[%lld] = %a, exact %a (tolerance %g)",
                     cur->name, (long long)m, (long long)d, pw, (long long)j, g[1 + j], want[j],
                     tol[j]);
    free(g), free(g2), free(want), free(tol);
}

/* Fills X [m, d] for one of three regimes: moderate logits; logits near +-100 from the bias;
 * rows scaled from 0.01 to 60 times, logits from tiny to beyond +-100. */
static float lr_fill(float *X, int64_t m, int64_t d, float *w, int regime)
{
    for (int64_t j = 0; j < d; j++)
        w[j] = (float)uniform(-1, 1) * (regime == 1 ? 0.01f : 1.0f);
    for (int64_t i = 0; i < m; i++) {
        static const float scales[] = {0.01f, 1.0f, 20.0f, 60.0f};
        float s = regime == 2 ? scales[next_u64() % 4] : 1.0f;
        for (int64_t j = 0; j < d; j++)
            X[i * d + j] = (float)uniform(-2, 2) * s;
    }
    return regime == 1 ? (next_u64() & 1 ? 100.0f : -100.0f) : 0.3f;
}

static void test_lr_block(void **state)
{
    (void)state;
    const float pws[] = {1.0f, 3.0f, 0.25f};
    const int64_t wide[] = {48, 63, 64, 65, 100, 257}, big_m = 1031;
    float w[257], *y = alloc_f(big_m);
    for (int64_t i = 0; i < big_m; i++)
        y[i] = draw(D_TARGET);
    for (int regime = 0; regime < 3; regime++)
        for (size_t p = 0; p < 3; p++) {
            /* every m up to 67 and d up to 40, X sized exactly at the end of its buffer (a read
             * past it lands outside: the sanitizer run catches it), then unaligned */
            for (int64_t d = 0; d <= 40; d++)
                for (int64_t m = 0; m <= MAXLEN; m++) {
                    float *buf = malloc(sizeof(float) * (size_t)(m * d + 1));
                    assert_true(buf != NULL);
                    float *X = buf + 1 - (m + d) % 2;
                    float b = lr_fill(X, m, d, w, regime);
                    check_lr_block(X, m, d, w, b, y + m % 5, pws[p]);
                    free(buf);
                }
            /* rows wider than the SIMD families keep in registers, and a long block */
            for (size_t k = 0; k < sizeof wide / sizeof wide[0]; k++)
                for (int64_t m = 0; m <= 40; m += 13) {
                    float *X = malloc(sizeof(float) * (size_t)(m * wide[k] + 1));
                    assert_true(X != NULL);
                    float b = lr_fill(X, m, wide[k], w, regime);
                    check_lr_block(X, m, wide[k], w, b, y, pws[p]);
                    free(X);
                }
            /* widths that fill their vectors take the unmasked path of the SIMD families */
            const int64_t long_d[] = {1, 9, 16, 17, 25, 32, 33, 64};
            for (size_t k = 0; k < sizeof long_d / sizeof long_d[0]; k++) {
                int64_t d = long_d[k];
                float *X = malloc(sizeof(float) * (size_t)(big_m * d));
                assert_true(X != NULL);
                float b = lr_fill(X, big_m, d, w, regime);
                check_lr_block(X, big_m, d, w, b, y, pws[p]);
                free(X);
            }
        }
    free(y);
}

/* row_dots of rows ld apart: every out[i] within (d + 2) 2^-24 sum |x w| of the exact dot,
 * nothing written past out[m - 1], and each row's float the same when the row comes alone (the
 * order depends on d alone). X ends where its buffer ends, so an over-read shows under the
 * sanitizers. */
static void check_row_dots(const float *X, int64_t m, int64_t d, int64_t ld, const float *w)
{
    float *out = alloc_f(m + 2), one;
    out[0] = out[m + 1] = GUARD;
    cur->k.row_dots(X, m, d, ld, w, out + 1);
    assert_true(out[0] == GUARD && out[m + 1] == GUARD);
    for (int64_t i = 0; i < m; i++) {
        double z = 0, mag = 0;
        for (int64_t j = 0; j < d; j++) {
            z += (double)X[i * ld + j] * w[j];
            mag += fabs((double)X[i * ld + j] * w[j]);
        }
        if (!(fabs(out[1 + i] - z) <= (double)(d + 2) * 0x1p-24 * mag + 1e-43))
            fail_msg("%s row_dots m=%lld d=%lld ld=%lld row %lld: %a, exact %a", cur->name,
                     (long long)m, (long long)d, (long long)ld, (long long)i, out[1 + i], z);
        cur->k.row_dots(X + i * ld, 1, d, ld, w, &one);
        if (memcmp(&one, &out[1 + i], sizeof one) != 0)
            fail_msg("%s row_dots m=%lld d=%lld row %lld: %a alone, %a among the others", cur->name,
                     (long long)m, (long long)d, (long long)i, one, out[1 + i]);
    }
    free(out);
}

/* col_dots of rows ld apart: every out[c] within (m + 2) 2^-24 sum |r x| of the exact sum,
 * nothing written past out[d - 1]. */
static void check_col_dots(const float *X, int64_t m, int64_t d, int64_t ld, const float *r)
{
    float *out = alloc_f(d + 2);
    out[0] = out[d + 1] = GUARD;
    cur->k.col_dots(X, m, d, ld, r, out + 1);
    assert_true(out[0] == GUARD && out[d + 1] == GUARD);
    for (int64_t c = 0; c < d; c++) {
        double s = 0, mag = 0;
        for (int64_t i = 0; i < m; i++) {
            s += (double)r[i] * X[i * ld + c];
            mag += fabs((double)r[i] * X[i * ld + c]);
        }
        if (!(fabs(out[1 + c] - s) <= (double)(m + 2) * 0x1p-24 * mag + 1e-43))
            fail_msg("%s col_dots m=%lld d=%lld ld=%lld col %lld: %a, exact %a", cur->name,
                     (long long)m, (long long)d, (long long)ld, (long long)c, out[1 + c], s);
    }
    free(out);
}

static void test_col_dots(void **state)
{
    (void)state;
    float w[257], *r = alloc_f(1031);
    for (int64_t i = 0; i < 1031; i++)
        r[i] = (float)uniform(-1, 1);
    for (int regime = 0; regime < 3; regime += 2) {
        for (int64_t d = 0; d <= 70; d++)
            for (int64_t m = 0; m <= 40; m += (m < 20 ? 1 : 7)) {
                float *buf = malloc(sizeof(float) * (size_t)(m * d + 1));
                assert_true(buf != NULL);
                float *X = buf + 1 - (m + d) % 2;
                lr_fill(X, m, d, w, regime);
                check_col_dots(X, m, d, d, r);
                if (d > 0) /* the first d - d / 3 floats of each row */
                    check_col_dots(X, m, d - d / 3, d, r);
                free(buf);
            }
        const int64_t wide[] = {100, 257};
        for (size_t k = 0; k < 2; k++) {
            float *X = malloc(sizeof(float) * (size_t)(1031 * wide[k]));
            assert_true(X != NULL);
            lr_fill(X, 1031, wide[k], w, regime);
            check_col_dots(X, 1031, wide[k], wide[k], r);
            free(X);
        }
    }
    free(r);
}

static void test_row_dots(void **state)
{
    (void)state;
    float w[257];
    const int64_t wide[] = {63, 64, 65, 100, 257};
    for (int regime = 0; regime < 3; regime += 2) {
        for (int64_t d = 0; d <= 40; d++)
            for (int64_t m = 0; m <= 40; m++) {
                float *buf = malloc(sizeof(float) * (size_t)(m * d + 1));
                assert_true(buf != NULL);
                float *X = buf + 1 - (m + d) % 2; /* then unaligned */
                lr_fill(X, m, d, w, regime);
                check_row_dots(X, m, d, d, w);
                /* the first d - d / 3 floats of each row: rows with gaps between them */
                if (d > 0)
                    check_row_dots(X, m, d - d / 3, d, w);
                free(buf);
            }
        for (size_t k = 0; k < sizeof wide / sizeof wide[0]; k++)
            for (int64_t m = 1; m <= 1031; m += 515) {
                float *X = malloc(sizeof(float) * (size_t)(m * wide[k]));
                assert_true(X != NULL);
                lr_fill(X, m, wide[k], w, regime);
                check_row_dots(X, m, wide[k], wide[k], w);
                free(X);
            }
    }
}

/* ---- small matrix product ---------------------------------------------------------------- */

/* op(X)(r, c) of a row-major X with leading dimension ld, transposed or not. */
static float op_at(const float *X, int64_t ld, int t, int64_t r, int64_t c)
{
    return t ? X[c * ld + r] : X[r * ld + c];
}

/* Checks C (ldc) against a double reference for every element: |C - exact| <= (K + 2) 2^-24
 * sum |a b| covers K roundings of a running sum (FMA or multiply-then-add) and the float
 * conversion. Where the reference is not finite, C must be the same NaN or infinity as the scalar
 * family gives (specials travel the same way whatever the rounding). */
static void check_gemm(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                       const float *B, int64_t ldb, int tb, const float *C, const float *Cs,
                       int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double sum = 0, mag = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)op_at(A, lda, ta, i, k) * op_at(B, ldb, tb, k, j);
                sum += p;
                mag += fabs(p);
            }
            float got = C[i * ldc + j], sc = Cs[i * ldc + j];
            int ok = isfinite(sum) ? fabs(got - sum) <= (double)(K + 2) * 0x1p-24 * mag
                                   : (isnan(got) && isnan(sc)) || got == sc;
            if (!ok)
                fail_msg(
                    "%s gemm %lldx%lldx%lld ta=%d tb=%d C[%lld,%lld] = %a, exact %a (scalar %a)",
                    cur->name, (long long)M, (long long)N, (long long)K, ta, tb, (long long)i,
                    (long long)j, got, sum, sc);
        }
}

static void test_gemm_small(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    const int64_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 47, 48, 63, 64};
    const size_t nd = sizeof dims / sizeof dims[0];
    const int64_t cap = 64 * 71; /* the largest operand: 64 rows of ld up to 71 */
    /* exact sizes (alloc_f leaves slack), so a read past an operand's end is out of bounds */
    float *A0 = malloc(sizeof(float) * (size_t)cap), *B0 = malloc(sizeof(float) * (size_t)cap);
    float *C = alloc_f(cap + 2), *Cs = alloc_f(cap);
    assert_true(A0 && B0);
    for (int64_t i = 0; i < cap; i++) {
        A0[i] = (float)uniform(-2, 2);
        B0[i] = (float)uniform(-2, 2);
    }
    for (size_t a = 0; a < nd; a++)
        for (size_t b = 0; b < nd; b++)
            for (size_t c = 0; c < nd; c++)
                for (int ta = 0; ta < 2; ta++)
                    for (int tb = 0; tb < 2; tb++) {
                        int64_t M = dims[a], N = dims[b], K = dims[c];
                        /* leading dimensions past the minimum, by an amount that varies */
                        int64_t lda = (ta ? M : K) + (int64_t)((a + c) % 4) * 2 + 1;
                        int64_t ldb = (tb ? K : N) + (int64_t)((b + c) % 3) * 3;
                        int64_t ldc = N + (int64_t)(a % 3);
                        /* operands sized exactly, at the end of their buffers: a read past the
                         * last element lands outside (a sanitizer run catches it) */
                        int64_t na = (ta ? K - 1 : M - 1) * lda + (ta ? M : K);
                        int64_t nb = (tb ? N - 1 : K - 1) * ldb + (tb ? K : N);
                        const float *A = A0 + cap - na, *B = B0 + cap - nb;
                        C[0] = GUARD;
                        for (int64_t i = 0; i < M * ldc + 1; i++)
                            C[1 + i] = GUARD, Cs[i] = GUARD;
                        k->gemm_small(M, N, K, A, lda, ta, B, ldb, tb, C + 1, ldc);
                        scalar_k.gemm_small(M, N, K, A, lda, ta, B, ldb, tb, Cs, ldc);
                        assert_true(C[0] == GUARD && C[1 + M * ldc] == GUARD);
                        for (int64_t i = 0; i < M; i++) /* padding columns untouched */
                            for (int64_t j = N; j < ldc; j++)
                                assert_true(C[1 + i * ldc + j] == GUARD);
                        check_gemm(M, N, K, A, lda, ta, B, ldb, tb, C + 1, Cs, ldc);
                    }
    /* specials travel as in the scalar loops: inf * 0 and NaN give NaN, inf stays inf */
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            const int64_t M = 17, N = 33, K = 9;
            float *A = alloc_f(M * K), *B = alloc_f(K * N);
            for (int64_t i = 0; i < M * K; i++)
                A[i] = (float)uniform(-2, 2);
            for (int64_t i = 0; i < K * N; i++)
                B[i] = (float)uniform(-2, 2);
            A[5] = INFINITY, B[9] = NAN, A[70] = -0.0f, B[40] = 0.0f;
            k->gemm_small(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, N);
            scalar_k.gemm_small(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, Cs, N);
            check_gemm(M, N, K, A, ta ? M : K, ta, B, tb ? K : N, tb, C, Cs, N);
            for (int64_t i = 0; i < M * N; i++)
                assert_true(!isnan(C[i]) == !isnan(Cs[i]) && !isinf(C[i]) == !isinf(Cs[i]));
            free(A), free(B);
        }
    /* K = 0: C is all zeros */
    k->gemm_small(3, 5, 0, A0, 1, 0, B0, 5, 0, C, 5);
    for (int64_t i = 0; i < 15; i++)
        assert_true(C[i] == 0.0f);
    free(A0), free(B0), free(C), free(Cs);
}

/* gemm_tile, bit for bit: each element is the FMA chain over p in order (fmaf, one rounding per
 * step, the first product exact), plus the c already there when accumulating, for depths
 * across the unrolled and short cases; the rows of C past the tile's columns (ldc > nr) and the
 * floats after the last row are untouched. Families without a tile declare none. */
static void test_gemm_tile(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    if (k->gemm_mr == 0) {
        assert_null(k->gemm_tile);
        assert_int_equal(k->gemm_nr, 0);
        return;
    }
    const int64_t mr = k->gemm_mr, nr = k->gemm_nr, ldc = nr + 3, depths[] = {1, 2, 3, 17, 256};
    for (size_t d = 0; d < sizeof depths / sizeof depths[0]; d++)
        for (int acc = 0; acc < 2; acc++) {
            int64_t kk = depths[d];
            /* aligned_alloc wants a size in whole alignments */
            float *a = aligned_alloc(64, (sizeof(float) * (size_t)(kk * mr) + 63) / 64 * 64);
            float *b = aligned_alloc(64, (sizeof(float) * (size_t)(kk * nr) + 63) / 64 * 64);
            float *c = alloc_f(mr * ldc + 1), *c0 = alloc_f(mr * ldc);
            assert_true(a && b);
            for (int64_t i = 0; i < kk * mr; i++)
                a[i] = (float)uniform(-2, 2);
            for (int64_t i = 0; i < kk * nr; i++)
                b[i] = (float)uniform(-2, 2);
            for (int64_t i = 0; i < mr * ldc; i++)
                c[i] = c0[i] = i % ldc < nr ? (float)uniform(-2, 2) : GUARD;
            c[mr * ldc] = GUARD;
            k->gemm_tile(kk, a, b, c, ldc, acc);
            for (int64_t i = 0; i < mr; i++)
                for (int64_t j = 0; j < ldc; j++) {
                    float want = GUARD;
                    if (j < nr) {
                        float s = 0.0f;
                        for (int64_t p = 0; p < kk; p++)
                            s = fmaf(a[p * mr + i], b[p * nr + j], s);
                        want = acc ? s + c0[i * ldc + j] : s;
                    }
                    if (c[i * ldc + j] != want)
                        fail_msg("%s gemm_tile k=%lld acc=%d C[%lld,%lld] = %a, want %a", cur->name,
                                 (long long)kk, acc, (long long)i, (long long)j, c[i * ldc + j],
                                 want);
                }
            assert_true(c[mr * ldc] == GUARD);
            free(a), free(b), free(c), free(c0);
        }
}

/* ---- transpose ------------------------------------------------------------------------- */

/* Every block from 1 x 1 to 17 x 17 (the partial squares of each family and one past its
 * square), whole squares and several of them with partial ones after, each with row strides
 * past the minimum and pointers off the vector grid. x sits at the end of an exact-size buffer,
 * so a read past its last element is out of bounds under a sanitizer; y is checked against a
 * plain loop bit for bit (NaN payloads and -0 included), and everything around the block in y
 * must be left as it was. */
static void check_transpose(const tg_kernels *k, int64_t rows, int64_t cols, int64_t ldx,
                            int64_t ldy, int64_t xoff, int64_t yoff)
{
    int64_t nx = rows ? (rows - 1) * ldx + cols : 0, ny = cols * ldy + 1;
    float *x0 = malloc(sizeof(float) * (size_t)(nx + xoff + 1)), *y0 = alloc_f(ny + yoff + 1);
    assert_non_null(x0);
    float *x = x0 + xoff, *y = y0 + yoff + 1;
    for (int64_t i = 0; i < nx; i++) {
        float v = (float)uniform(-4, 4);
        x[i] = i % 7 == 3 ? -0.0f : i % 11 == 5 ? NAN : v;
    }
    if (nx > 2) { /* a NaN with a payload must travel as it is */
        uint32_t u = 0x7fc01234u;
        memcpy(&x[nx - 2], &u, sizeof u);
    }
    for (int64_t i = -1; i < ny; i++)
        y[i] = GUARD;
    k->transpose(x, ldx, y, ldy, rows, cols);
    assert_true(y[-1] == GUARD && y[ny - 1] == GUARD);
    for (int64_t c = 0; c < cols; c++)
        for (int64_t r = 0; r < ldy; r++) {
            float got = y[c * ldy + r], want = r < rows ? x[r * ldx + c] : GUARD;
            if (bits(got) != bits(want))
                fail_msg(
                    "%s transpose %lldx%lld ldx %lld ldy %lld offsets %lld %lld: y[%lld][%lld] "
                    "is %a, want %a",
                    cur->name, (long long)rows, (long long)cols, (long long)ldx, (long long)ldy,
                    (long long)xoff, (long long)yoff, (long long)c, (long long)r, got, want);
        }
    free(x0), free(y0);
}

static void test_transpose(void **state)
{
    (void)state;
    const tg_kernels *k = &cur->k;
    for (int64_t rows = 1; rows <= 17; rows++)
        for (int64_t cols = 1; cols <= 17; cols++) {
            int64_t e = (rows + cols) % 4; /* strides past the minimum by 0 to 3 */
            check_transpose(k, rows, cols, cols + e, rows + (4 - e) % 4, e, 3 - e);
        }
    const int64_t sizes[] = {4, 8, 16, 31, 32, 33, 48, 64, 65};
    const size_t ns = sizeof sizes / sizeof sizes[0];
    for (size_t a = 0; a < ns; a++)
        for (size_t b = 0; b < ns; b++)
            for (int64_t off = 0; off < 2; off++) {
                int64_t rows = sizes[a], cols = sizes[b];
                /* exact strides on the grid, then odd ones off it; 1024 sends every row of a
                 * square to one L1 set */
                int64_t ldx = off ? cols + 2 * (int64_t)b + 1 : cols;
                int64_t ldy = off ? rows + 5 : a == b ? 1024 : rows;
                check_transpose(k, rows, cols, ldx, ldy, off, 2 * off);
            }
    /* an empty block writes nothing */
    float x[4] = {1, 2, 3, 4}, y[4] = {GUARD, GUARD, GUARD, GUARD};
    k->transpose(x, 2, y, 2, 0, 2);
    k->transpose(x, 2, y, 2, 2, 0);
    for (int i = 0; i < 4; i++)
        assert_true(y[i] == GUARD);
}

/* ---- thread pool ---------------------------------------------------------------------------- */

typedef struct visit_ctx {
    unsigned char *seen; /* each chunk writes only its own range: no two threads share a byte */
    int64_t n;
} visit_ctx;

static void visit(void *p, int64_t begin, int64_t end)
{
    visit_ctx *c = p;
    assert_true(0 <= begin && begin < end && end <= c->n);
    for (int64_t i = begin; i < end; i++)
        c->seen[i]++;
}

static void test_parallel_visits(void **state)
{
    (void)state;
    const int64_t ns[] = {1, 2, 15, 16, 17, 31, 33, 100, 1000, 4097, 32767, 32768, 32769, 100003};
    const int64_t grains[] = {1, 16, 1000, 32768};
    for (int th = 1; th <= 5; th++) {
        tg_set_num_threads(th);
        assert_int_equal(tg_get_num_threads(), th);
        for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
            for (size_t g = 0; g < sizeof grains / sizeof grains[0]; g++) {
                visit_ctx c = {calloc((size_t)ns[a], 1), ns[a]};
                assert_non_null(c.seen);
                tg_parallel_for(ns[a], grains[g], visit, &c);
                for (int64_t i = 0; i < ns[a]; i++)
                    assert_int_equal(c.seen[i], 1);
                tg_parallel_tasks(ns[a], grains[g], visit, &c);
                for (int64_t i = 0; i < ns[a]; i++)
                    assert_int_equal(c.seen[i], 2);
                free(c.seen);
            }
    }
    tg_parallel_for(0, 1, visit, NULL); /* nothing to do: fn is not called */
    tg_set_num_threads(0);
    assert_true(tg_get_num_threads() >= 1);
}

static void test_parallel_split(void **state)
{
    (void)state;
    int64_t size;
    const int64_t aligns[] = {1, 16};
    for (int th = 1; th <= 8; th++)
        for (int64_t n = 1; n < 5000; n += 7)
            for (int a = 0; a < 2; a++) {
                int chunks = tg_parallel_chunk(n, th, aligns[a], &size);
                assert_true(chunks >= 1 && chunks <= th);
                assert_true(size % aligns[a] == 0);
                assert_true((int64_t)(chunks - 1) * size < n && (int64_t)chunks * size >= n);
                if (aligns[a] == 1 && n <= th) /* tasks: up to one per thread, none idle */
                    assert_int_equal(chunks, n);
            }
    assert_int_equal(tg_parallel_chunk(2, 2, 1, &size), 2); /* 2 tasks, 2 threads */
    assert_int_equal(tg_parallel_chunk(2, 2, 16, &size), 1);
    assert_int_equal(tg_parallel_chunk(0, 4, 1, &size), 0);
    assert_true(tg_parallel_grain() == TG_PARALLEL_GRAIN_DEFAULT);
}

/* Loops after the workers have gone to sleep (past their polling time) and loops straight
 * after each other (caught while polling) both cover every index once, on 2 and 3 threads. */
static void test_parallel_after_idle(void **state)
{
    (void)state;
    enum { N = 4096 };
    static unsigned char seen[N];
    visit_ctx c = {seen, N};
    const struct timespec pause_ms = {0, 3000000}; /* 3 ms: well past the polling time */
    for (int th = 2; th <= 3; th++) {
        tg_set_num_threads(th);
        memset(seen, 0, sizeof seen);
        for (int round = 0; round < 4; round++) {
            nanosleep(&pause_ms, NULL);
            tg_parallel_tasks(N, 1, visit, &c);
            for (int quick = 0; quick < 50; quick++)
                tg_parallel_for(N, 16, visit, &c);
        }
        for (int i = 0; i < N; i++)
            assert_int_equal(seen[i], 4 * 51);
    }
    tg_set_num_threads(0);
}

/* Nested calls from inside a chunk run inline and still cover their range once. */
typedef struct nest_ctx {
    unsigned char *seen;
    int64_t inner;
} nest_ctx;

static void nest_inner(void *p, int64_t begin, int64_t end)
{
    unsigned char *seen = p;
    for (int64_t i = begin; i < end; i++)
        seen[i]++;
}

static void nest_outer(void *p, int64_t begin, int64_t end)
{
    nest_ctx *c = p;
    for (int64_t row = begin; row < end; row++)
        tg_parallel_for(c->inner, 1, nest_inner, c->seen + row * c->inner);
}

static void test_parallel_nested(void **state)
{
    (void)state;
    tg_set_num_threads(2);
    nest_ctx c = {calloc(64 * 1000, 1), 1000};
    assert_non_null(c.seen);
    tg_parallel_for(64, 1, nest_outer, &c);
    for (int64_t i = 0; i < 64 * 1000; i++)
        assert_int_equal(c.seen[i], 1);
    free(c.seen);
    tg_set_num_threads(0);
}

/* A deterministic parallel sum: fixed blocks, one partial per block, combined in order. */
#define SUM_BLOCK 65536

typedef struct sum_ctx {
    const tg_kernels *k;
    const float *x;
    int64_t n;
    float *partial;
} sum_ctx;

static void sum_blocks(void *p, int64_t begin, int64_t end)
{
    sum_ctx *c = p;
    for (int64_t b = begin; b < end; b++) {
        int64_t lo = b * SUM_BLOCK, len = c->n - lo < SUM_BLOCK ? c->n - lo : SUM_BLOCK;
        c->partial[b] = c->k->sum(c->x + lo, len);
    }
}

static float parallel_sum(const tg_kernels *k, const float *x, int64_t n)
{
    int64_t blocks = (n + SUM_BLOCK - 1) / SUM_BLOCK;
    sum_ctx c = {k, x, n, malloc(sizeof(float) * (size_t)blocks)};
    assert_non_null(c.partial);
    tg_parallel_for(blocks, 1, sum_blocks, &c);
    float s = k->sum(c.partial, blocks); /* fixed order, whatever thread made each partial */
    free(c.partial);
    return s;
}

static void test_parallel_sum(void **state)
{
    (void)state;
    const int64_t n = 3000001;
    float *x = alloc_f(n);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)uniform(-1, 2);
    tg_set_num_threads(1);
    float s1 = parallel_sum(&cur->k, x, n);
    tg_set_num_threads(2);
    float s2 = parallel_sum(&cur->k, x, n);
    tg_set_num_threads(3);
    float s3 = parallel_sum(&cur->k, x, n);
    tg_set_num_threads(0);
    assert_true(bits(s1) == bits(s2) && bits(s1) == bits(s3));
    assert_true(fabs(s1 - sum_double(x, n)) <= 1e-6 * sum_abs(x, n));
    free(x);
}

/* ---- main ---------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    *state = cur;
    return 0;
}

static const struct CMUnitTest kernel_tests[] = {
    cmocka_unit_test(test_elementwise),
    cmocka_unit_test(test_relu_bits),
    cmocka_unit_test(test_pow_scalar_bits),
    cmocka_unit_test(test_pow_vs_is_pow_vv),
    cmocka_unit_test(test_sigmoid_limits),
    cmocka_unit_test(test_sigmoid_bwd_from_output),
    cmocka_unit_test(test_sigmoid_bwd_streamed),
    cmocka_unit_test(test_unary_large),
    cmocka_unit_test(test_unary_bwd_large),
    cmocka_unit_test(test_bwd_uniform),
    cmocka_unit_test(test_trig_large),
    cmocka_unit_test(test_sum),
    cmocka_unit_test(test_row_sums),
    cmocka_unit_test(test_col_sums),
    cmocka_unit_test(test_dot),
    cmocka_unit_test(test_blas1),
    cmocka_unit_test(test_bce_logits),
    cmocka_unit_test(test_gemm_small),
    cmocka_unit_test(test_gemm_tile),
    cmocka_unit_test(test_transpose),
    cmocka_unit_test(test_trig_lanes),
    cmocka_unit_test(test_lr_block),
    cmocka_unit_test(test_row_dots),
    cmocka_unit_test(test_col_dots),
    cmocka_unit_test(test_exp_exhaustive),
    cmocka_unit_test(test_trig_exhaustive),
    cmocka_unit_test(test_sigmoid_exhaustive),
};

static const struct CMUnitTest pool_tests[] = {
    cmocka_unit_test(test_parallel_split),  cmocka_unit_test(test_parallel_visits),
    cmocka_unit_test(test_parallel_nested), cmocka_unit_test(test_parallel_after_idle),
    cmocka_unit_test(test_parallel_sum),
};

int main(void)
{
    static family fams[] = {{"scalar", init_scalar, {0}},
                            {"avx2", tg_kernels_init_avx2, {0}},
                            {"avx512", tg_kernels_init_avx512, {0}},
                            {"neon", tg_kernels_init_neon, {0}}};
    const char *only = getenv("TAPEGRAD_ISA");
    int failed = 0, ran = 0;
    tg_kernels_init_scalar(&scalar_k);
    for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
        family *f = &fams[i];
        if (only && *only && strcmp(only, f->name) != 0)
            continue;
        if (!cpu_runs(f->name) || !f->init(&f->k)) {
            printf("[  SKIPPED ] family %s: not compiled in or not supported by this CPU\n",
                   f->name);
            continue;
        }
        if (strcmp(f->k.name, f->name) != 0) {
            printf("family %s names itself %s\n", f->name, f->k.name);
            failed++;
        }
        cur = f;
        ran++;
        failed += cmocka_run_group_tests_name(f->name, kernel_tests, group_setup, NULL);
    }
    if (only && *only && ran == 0) {
        printf("[  SKIPPED ] TAPEGRAD_ISA=%s: no such family here\n", only);
        return 77; /* ctest's SKIP_RETURN_CODE */
    }
    failed += cmocka_run_group_tests_name("parallel", pool_tests, NULL, NULL);
    return failed ? 1 : 0; /* a count could wrap or read as 77, the skip code */
}
