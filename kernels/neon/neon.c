/* The NEON (AArch64 Advanced SIMD) kernel family: 4 floats per vector. NEON has no masked
 * loads, so the n % 4 tail goes through a small zero-padded buffer and the same vector formula.
 * Advanced SIMD is baseline on AArch64: no extra -m flag; compiled with -ffp-contract=off, so no
 * multiply-add is fused behind our back.
 *
 * Rules every kernel here follows:
 *  - the tail goes through the same vector formula as the body, so an element's result never
 *    depends on n, on where it sits in the array, or on the pointer's alignment;
 *  - the non-transcendental formulas use the same operations in the same order as the scalar
 *    family, so they are bit-identical to it (no FMA where scalar has none); the matrix product
 *    is the exception, which uses FMAs and agrees with scalar to float rounding (gemm_small);
 *  - transcendentals come from SLEEF's 1.0-ULP vector functions, in their deterministic
 *    "finz" form: the plain sin/cos switch the whole vector to a different argument reduction
 *    when any lane is >= 125, so a lane's result (within 1 ULP) would depend on its neighbours. */
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define W 4
typedef float32x4_t vf;
typedef uint32x4_t vmask; /* all-ones / all-zeros lanes, as the compares give */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Loads r (<= 4) floats; the lanes past r read as 0 and touch no memory. */
ALWAYS_INLINE vf ld(const float *p, int64_t r)
{
    if (r >= W)
        return vld1q_f32(p);
    float t[W] = {0};
    memcpy(t, p, sizeof(float) * (size_t)r);
    return vld1q_f32(t);
}

ALWAYS_INLINE void st(float *p, vf v, int64_t r)
{
    if (r >= W) {
        vst1q_f32(p, v);
        return;
    }
    float t[W];
    vst1q_f32(t, v);
    memcpy(p, t, sizeof(float) * (size_t)r);
}

/* Lanes 0..r-1 set. */
ALWAYS_INLINE vmask lanes(int64_t r)
{
    static const uint32_t iota[W] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(iota), vdupq_n_u32((uint32_t)(r >= W ? W : r)));
}

ALWAYS_INLINE vf set1(float v)
{
    return vdupq_n_f32(v);
}
ALWAYS_INLINE vf zero(void)
{
    return vdupq_n_f32(0.0f);
}
ALWAYS_INLINE vf add(vf a, vf b)
{
    return vaddq_f32(a, b);
}
ALWAYS_INLINE vf sub(vf a, vf b)
{
    return vsubq_f32(a, b);
}
ALWAYS_INLINE vf mul(vf a, vf b)
{
    return vmulq_f32(a, b);
}
/* a * b + c with one rounding */
ALWAYS_INLINE vf fmadd(vf a, vf b, vf c)
{
    return vfmaq_f32(c, a, b);
}
ALWAYS_INLINE vf dvd(vf a, vf b)
{
    return vdivq_f32(a, b);
}
ALWAYS_INLINE vf neg(vf v)
{
    return vnegq_f32(v);
}
ALWAYS_INLINE vf vabs(vf v)
{
    return vabsq_f32(v);
}
ALWAYS_INLINE vmask is_nan(vf v)
{
    return vmvnq_u32(vceqq_f32(v, v));
}
/* m ? b : a, lane by lane */
ALWAYS_INLINE vf sel(vmask m, vf b, vf a)
{
    return vbslq_f32(m, b, a);
}
/* m ? v : 0 */
ALWAYS_INLINE vf keep(vmask m, vf v)
{
    return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(v)));
}

/* ---- whole vectors, for family_map.h: no streaming stores here ------------------------------ */

#define FAMILY_STREAMS 0
#define FAMILY_PREFETCH 0

ALWAYS_INLINE vf ldu(const float *p)
{
    return vld1q_f32(p);
}

ALWAYS_INLINE void stream_st(float *p, vf v)
{
    vst1q_f32(p, v);
}

ALWAYS_INLINE void stream_fence(void) {}

#include "../family_map.h"

/* ---- elementwise formulas ---------------------------------------------------------------- */

ALWAYS_INLINE vf f_abs(vf v)
{
    return vabs(v);
}

/* 0 where v < 0, else v: v < 0 is false for NaN and -0.0, which are kept, as PyTorch's
 * max(v, 0) */
ALWAYS_INLINE vf f_relu(vf v)
{
    return sel(vcltzq_f32(v), zero(), v);
}
ALWAYS_INLINE vf f_sqrt(vf v)
{
    return vsqrtq_f32(v);
}
ALWAYS_INLINE vf f_exp(vf v)
{
    return Sleef_finz_expf4_u10advsimd(v);
}
ALWAYS_INLINE vf f_log(vf v)
{
    return Sleef_finz_logf4_u10advsimd(v);
}
ALWAYS_INLINE vf f_sin(vf v)
{
    return Sleef_finz_sinf4_u10advsimd(v);
}
ALWAYS_INLINE vf f_cos(vf v)
{
    return Sleef_finz_cosf4_u10advsimd(v);
}
ALWAYS_INLINE vf f_tanh(vf v)
{
    return Sleef_finz_tanhf4_u10advsimd(v);
}

/* sigmoid(x) from e = exp(-x), as 1 / (1 + e): e is exactly 0 for x > 104, so the upper limit
 * is an exact 1; NaN propagates through exp. Where e overflows (x < -88.7) that formula gives 0,
 * but sigmoid(x) = exp(x) is still a subnormal float down to x = -104 (and its derivative too):
 * such lanes, rare in data, take exp(x), which is exactly 0 at -inf. */
ALWAYS_INLINE vf sigmoid_of(vf x, vf e)
{
    vf one = set1(1.0f);
    vf y = dvd(one, add(one, e));
    vmask over = vceqq_f32(e, set1(INFINITY));
    if (__builtin_expect(vmaxvq_u32(over) != 0, 0))
        y = sel(over, Sleef_finz_expf4_u10advsimd(x), y);
    return y;
}

ALWAYS_INLINE vf f_sigmoid(vf v)
{
    return sigmoid_of(v, Sleef_finz_expf4_u10advsimd(neg(v)));
}

ALWAYS_INLINE vf f_pow(vf a, vf b)
{
    return Sleef_finz_powf4_u10advsimd(a, b);
}

static void v_sin(const float *x, float *y, int64_t n)
{
    map1(x, y, n, f_sin);
}

static void v_cos(const float *x, float *y, int64_t n)
{
    map1(x, y, n, f_cos);
}

/* ---- clamp ------------------------------------------------------------------------------ */

static void v_clamp(const float *x, float *y, int64_t n, float lo, float hi)
{
    /* A NaN bound means "no bound", which is what an infinite bound does; compare-and-blend
     * (not min/max) keeps a NaN input and -0.0 exactly as the scalar branches do. */
    vf l = set1(isnan(lo) ? -INFINITY : lo), h = set1(isnan(hi) ? INFINITY : hi);
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf v = ld(x + i, r);
        v = sel(vcltq_f32(v, l), l, v);
        v = sel(vcgtq_f32(v, h), h, v);
        st(y + i, v, r);
    }
}

/* ---- backward ---------------------------------------------------------------------------- */

/* PyTorch's (gy * (1 - y)) * y with y the forward formula, wherever y < 1; where y rounds to 1
 * that collapses to 0, so there the true derivative gy * e / (1 + e)^2, e = exp(-|x|). Such lanes
 * have x > 0, so the exp(-x) of y already is exp(-|x|): one exp serves both. NaN x gives NaN. */
ALWAYS_INLINE vf b_sigmoid(vf x, vf gy)
{
    vf one = set1(1.0f);
    vf e = Sleef_finz_expf4_u10advsimd(neg(x));
    vf d = add(one, e);
    vf y = sigmoid_of(x, e); /* the forward's y, bit for bit */
    vf g = mul(mul(gy, sub(one, y)), y);
    vf gt = mul(gy, dvd(e, mul(d, d)));
    vf r = sel(vcltq_f32(y, one), g, gt);
    return sel(is_nan(x), x, r);
}

/* 0 where y <= 0, else gy: y <= 0 is false for NaN, which passes gy (threshold_backward) */
ALWAYS_INLINE vf b_relu(vf y, vf gy)
{
    return sel(vclezq_f32(y), zero(), gy);
}
ALWAYS_INLINE vf b_sin(vf x, vf gy)
{
    return mul(gy, Sleef_finz_cosf4_u10advsimd(x));
}
ALWAYS_INLINE vf b_cos(vf x, vf gy)
{
    return mul(gy, neg(Sleef_finz_sinf4_u10advsimd(x)));
}

/* sign(x) is 1, -1, or 0 for zeros and NaN, as the scalar comparisons give. */
ALWAYS_INLINE vf b_abs(vf x, vf gy)
{
    vf s = sel(vcgtzq_f32(x), set1(1.0f), zero());
    s = sel(vcltzq_f32(x), set1(-1.0f), s);
    return mul(gy, s);
}

#include "../family_elementwise.h"

/* Vectors whose lanes all have y < 1 (the usual case) never load x. */
static void v_sigmoid_bwd_y(const float *y, const float *x, const float *gy, bool gy_uniform,
                            float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i; /* lanes past r load as 0, which is < 1 */
        vf yv = ld(y + i, r), g = gy_uniform ? set1(*gy) : ld(gy + i, r);
        vmask below = vcltq_f32(yv, set1(1.0f));
        vf out = mul(mul(g, sub(set1(1.0f), yv)), yv);
        if (__builtin_expect(vminvq_u32(below) == 0, 0))
            out = sel(below, out, b_sigmoid(ld(x + i, r), g));
        st(gx + i, out, r);
    }
}

static void v_clamp_bwd(const float *x, const float *gy, float *gx, int64_t n, float lo, float hi)
{
    /* Inclusive bounds; a NaN bound passes everything, even a NaN x (as the scalar test does). */
    vf l = set1(lo), h = set1(hi);
    vmask no_lo = vdupq_n_u32(isnan(lo) ? ~0u : 0u), no_hi = vdupq_n_u32(isnan(hi) ? ~0u : 0u);
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf v = ld(x + i, r);
        vmask in = vandq_u32(vorrq_u32(no_lo, vcgeq_f32(v, l)), vorrq_u32(no_hi, vcleq_f32(v, h)));
        st(gx + i, keep(in, ld(gy + i, r)), r);
    }
}

/* ---- reductions and helpers ------------------------------------------------------------ */

/* Leaf of the sum: 4 accumulators x 4 lanes, each adding at most 8 values, then a fixed tree. */
#define SUM_LEAF (4 * W * 8)

static vf sum_leaf(const float *x, int64_t n)
{
    vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = add(a0, vld1q_f32(x + i));
        a1 = add(a1, vld1q_f32(x + i + W));
        a2 = add(a2, vld1q_f32(x + i + 2 * W));
        a3 = add(a3, vld1q_f32(x + i + 3 * W));
    }
    int64_t r = n - i; /* the last < 16 values: masked, zero-padded */
    if (r > 0)
        a0 = add(a0, ld(x + i, r));
    if (r > W)
        a1 = add(a1, ld(x + i + W, r - W));
    if (r > 2 * W)
        a2 = add(a2, ld(x + i + 2 * W, r - 2 * W));
    if (r > 3 * W)
        a3 = add(a3, ld(x + i + 3 * W, r - 3 * W));
    return add(add(a0, a1), add(a2, a3));
}

ALWAYS_INLINE float hsum(vf v)
{
    float32x2_t h = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(h, h), 0);
}

#include "../family_pairwise.h"

/* Lane i: the sum of a[i]'s 4 lanes, (l0 + l1) + (l2 + l3), the same tree for every row. */
ALWAYS_INLINE vf sum_rows4(const vf *a)
{
    return vpaddq_f32(vpaddq_f32(a[0], a[1]), vpaddq_f32(a[2], a[3]));
}

#define FAMILY_SUM_TREE(acc) sum_rows4(acc)
#include "../family_sums.h"

static void v_fill(float *y, float v, int64_t n)
{
    vf b = set1(v);
    for (int64_t i = 0; i < n; i += W)
        st(y + i, b, n - i);
}

/* ---- fused logistic loss ----------------------------------------------------------------- */

/* Adds the 4 floats of v (masked lanes already zero) to the two double accumulators. */
ALWAYS_INLINE void acc_double(float64x2_t *lo, float64x2_t *hi, vf v)
{
    *lo = vaddq_f64(*lo, vcvt_f64_f32(vget_low_f32(v)));
    *hi = vaddq_f64(*hi, vcvt_high_f64_f32(v));
}

/* The numerator of sigmoid(z) = num / (1 + e), e = exp(-|z|), in the logistic loss's gradient: 1
 * for z >= 0, else e, and 0 where exp(-z) overflows, where 1 / (1 + exp(-z)) (the scalar
 * family's form and PyTorch's) is 0; e / (1 + e) would still be a subnormal there, down to
 * z = -104. NaN z keeps e, NaN. */
ALWAYS_INLINE vf sigmoid_num(vf z, vf e)
{
    vf num = sel(vcgezq_f32(z), set1(1.0f), e);
    return sel(vcleq_f32(z, set1(-TG_EXP_OVERFLOW)), zero(), num);
}

/* The loss of bce_logits and r = dloss/dz for four logits. softplus(z) and softplus(-z) share
 * log1p(exp(-|z|)); sigmoid(z) comes from the same exp(-|z|) as 1/(1+e) or e/(1+e), which
 * cannot overflow. */
ALWAYS_INLINE vf bce4(vf z, vf t, vf vpw, vf *r)
{
    vf one = set1(1.0f);
    vf e = Sleef_finz_expf4_u10advsimd(neg(vabs(z)));
    vf lp = Sleef_finz_log1pf4_u10advsimd(e);
    vf sp_pos = add(vmaxq_f32(z, zero()), lp);
    vf sp_neg = add(vmaxq_f32(neg(z), zero()), lp);
    vf pt = mul(vpw, t), omt = sub(one, t);
    vf s = dvd(sigmoid_num(z, e), add(one, e));
    *r = sub(mul(add(pt, omt), s), pt);
    return add(mul(pt, sp_neg), mul(omt, sp_pos));
}

static float v_bce_logits(const float *z, const float *t, float *loss, float *grad, int64_t n,
                          float pw)
{
    /* The loss sum is kept in double per lane, as the scalar family keeps one double. */
    vf vpw = set1(pw);
    float64x2_t acc_lo = vdupq_n_f64(0.0), acc_hi = vdupq_n_f64(0.0);
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf g, l = bce4(ld(z + i, r), ld(t + i, r), vpw, &g);
        if (loss)
            st(loss + i, l, r);
        if (grad)
            st(grad + i, g, r);
        acc_double(&acc_lo, &acc_hi, keep(lanes(r), l));
    }
    return (float)vaddvq_f64(vaddq_f64(acc_lo, acc_hi));
}

/* ---- logistic-regression block -------------------------------------------------------------
 * Four rows at a time: each row's dot product accumulates in one vector over its columns, a
 * fixed pairwise-add tree folds the four into one vector of logits, loss and r come out for the
 * four lanes at once (bce4), then g += r_i x_i row by row while the rows are still in L1. Every
 * sum runs in an order fixed by m and d alone. */

/* x . w as four partial sums (one per lane), columns in order. */
ALWAYS_INLINE vf row_dot(const float *x, const float *w, int64_t d)
{
    vf acc = zero();
    int64_t j = 0;
    for (; j + W <= d; j += W)
        acc = vfmaq_f32(acc, vld1q_f32(x + j), vld1q_f32(w + j));
    if (j < d)
        acc = vfmaq_f32(acc, ld(x + j, d - j), ld(w + j, d - j));
    return acc;
}

/* g[0..d) += r x. */
ALWAYS_INLINE void row_axpy(float r, const float *x, float *g, int64_t d)
{
    vf vr = set1(r);
    int64_t j = 0;
    for (; j + W <= d; j += W)
        vst1q_f32(g + j, vfmaq_f32(vld1q_f32(g + j), vr, vld1q_f32(x + j)));
    if (j < d)
        st(g + j, vfmaq_f32(ld(g + j, d - j), vr, ld(x + j, d - j)), d - j);
}

static double v_lr_block(const float *X, int64_t m, int64_t d, const float *w, float b,
                         const float *y, float pw, float *g)
{
    vf vb = set1(b), vpw = set1(pw), rsum = zero();
    float64x2_t acc_lo = vdupq_n_f64(0.0), acc_hi = vdupq_n_f64(0.0);
    if (g)
        v_fill(g, 0.0f, d + 1);
    for (int64_t i = 0; i < m; i += W) {
        int64_t rows = m - i < W ? m - i : W;
        const float *x = X + i * d;
        vf dot[W];
        for (int k = 0; k < W; k++) /* rows past the live ones add nothing and load nothing */
            dot[k] = k < rows ? row_dot(x + k * d, w, d) : zero();
        vf z = add(vpaddq_f32(vpaddq_f32(dot[0], dot[1]), vpaddq_f32(dot[2], dot[3])), vb);
        vmask live = lanes(rows);
        vf r, l = bce4(z, ld(y + i, rows), vpw, &r);
        acc_double(&acc_lo, &acc_hi, keep(live, l));
        if (!g)
            continue;
        r = keep(live, r);
        rsum = add(rsum, r);
        float rb[W];
        vst1q_f32(rb, r);
        for (int k = 0; k < rows; k++)
            row_axpy(rb[k], x + k * d, g, d);
    }
    if (g)
        g[d] = hsum(rsum);
    return vaddvq_f64(vaddq_f64(acc_lo, acc_hi));
}

/* ---- small matrix product -------------------------------------------------------------
 * C = op(A) op(B) for M, N, K <= 64 in register blocks, as in the x86 families: a block of rows
 * of C by a panel of up to 4 vectors (16 columns) stays in accumulators over the whole k loop;
 * each k step loads the panel's row of op(B) once and multiplies it by one element of op(A) per
 * row (fmla by element). NEON has no masked loads, so op(B) is read in place only when it needs
 * no padding (B not transposed, N a multiple of 4); otherwise it is copied into a zero-padded
 * stack panel first (4 x 4 tiles transposed in registers when B is transposed). Each element of C
 * sums its terms in k order with one FMA each: within float rounding of the scalar family, not
 * bit-identical to it. */
#define GEMM_MAX 64

/* Rows [0, mr) by vectors [0, nv) of a block of C (constants at every call, so the loops unroll
 * and acc stays in registers); the panel's last vector stores `w` (1..4) columns. */
ALWAYS_INLINE void gemm_block(int mr, int nv, int ta, int64_t K, const float *a, int64_t lda,
                              const float *b, int64_t ldb, int64_t w, float *c, int64_t ldc)
{
    vf acc[8][4];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = zero();
    for (int64_t k = 0; k < K; k++) {
        vf bv[4];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = vld1q_f32(b + k * ldb + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            float av = ta ? a[k * lda + r] : a[r * lda + k];
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[r][v] = vfmaq_n_f32(acc[r][v], bv[v], av);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            st(c + r * ldc + v * W, acc[r][v], v == nv - 1 ? w : W);
}

/* Rows in a full block for nv vectors: 8 by up to 2 vectors, 4 by 3 or 4. */
#define GEMM_FULL(nv) ((nv) <= 2 ? 8 : 4)

/* One block of mr rows of C, mr being GEMM_FULL(NV), 4, 2 or 1. */
#define GEMM_ROWS(NV, TA)                                                                          \
    static void gemm_rows_##NV##_##TA(int mr, int64_t K, const float *a, int64_t lda,              \
                                      const float *b, int64_t ldb, int64_t w, float *c,            \
                                      int64_t ldc)                                                 \
    {                                                                                              \
        if (mr == GEMM_FULL(NV))                                                                   \
            gemm_block(GEMM_FULL(NV), NV, TA, K, a, lda, b, ldb, w, c, ldc);                       \
        else if (mr == 4)                                                                          \
            gemm_block(4, NV, TA, K, a, lda, b, ldb, w, c, ldc);                                   \
        else if (mr == 2)                                                                          \
            gemm_block(2, NV, TA, K, a, lda, b, ldb, w, c, ldc);                                   \
        else                                                                                       \
            gemm_block(1, NV, TA, K, a, lda, b, ldb, w, c, ldc);                                   \
    }
GEMM_ROWS(1, 0)
GEMM_ROWS(2, 0)
GEMM_ROWS(3, 0)
GEMM_ROWS(4, 0)
GEMM_ROWS(1, 1)
GEMM_ROWS(2, 1)
GEMM_ROWS(3, 1)
GEMM_ROWS(4, 1)

typedef void (*gemm_rows_fn)(int mr, int64_t K, const float *a, int64_t lda, const float *b,
                             int64_t ldb, int64_t w, float *c, int64_t ldc);

/* 4 x 4 transpose: swap odd and even elements between row pairs, then element pairs. */
ALWAYS_INLINE void transpose4(vf m[4])
{
    vf t0 = vtrn1q_f32(m[0], m[1]), t1 = vtrn2q_f32(m[0], m[1]);
    vf t2 = vtrn1q_f32(m[2], m[3]), t3 = vtrn2q_f32(m[2], m[3]);
    float64x2_t d0 = vreinterpretq_f64_f32(t0), d1 = vreinterpretq_f64_f32(t1);
    float64x2_t d2 = vreinterpretq_f64_f32(t2), d3 = vreinterpretq_f64_f32(t3);
    m[0] = vreinterpretq_f32_f64(vtrn1q_f64(d0, d2));
    m[1] = vreinterpretq_f32_f64(vtrn1q_f64(d1, d3));
    m[2] = vreinterpretq_f32_f64(vtrn2q_f64(d0, d2));
    m[3] = vreinterpretq_f32_f64(vtrn2q_f64(d1, d3));
}

/* p[k * ldp + j] = op(B)(k, j) for k < K, j < N; columns N..ldp-1 of p get zeros. */
static void pack_b(const float *B, int64_t ldb, int tb, int64_t N, int64_t K, float *p, int64_t ldp)
{
    if (!tb) {
        for (int64_t k = 0; k < K; k++)
            for (int64_t j = 0; j < ldp; j += W)
                vst1q_f32(p + k * ldp + j, ld(B + k * ldb + j, N - j));
        return;
    }
    for (int64_t j = 0; j < N; j += W)
        for (int64_t k = 0; k < K; k += W) {
            vf m[4];
            for (int64_t r = 0; r < W; r++) /* rows past N pack as zeros */
                m[r] = j + r < N ? ld(B + (j + r) * ldb + k, K - k) : zero();
            transpose4(m);
            for (int64_t r = 0; r < W && k + r < K; r++)
                vst1q_f32(p + (k + r) * ldp + j, m[r]);
        }
}

/* The general loop, for sizes past GEMM_MAX (the caller keeps to 64; this keeps the contract). */
static void gemm_any(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                     const float *B, int64_t ldb, int tb, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j += W) {
            int64_t w = N - j < W ? N - j : W;
            float t[W] = {0};
            vf acc = zero();
            for (int64_t k = 0; k < K; k++) {
                for (int64_t c = 0; c < w; c++)
                    t[c] = tb ? B[(j + c) * ldb + k] : B[k * ldb + j + c];
                acc = vfmaq_n_f32(acc, vld1q_f32(t), ta ? A[k * lda + i] : A[i * lda + k]);
            }
            st(C + i * ldc + j, acc, w);
        }
}

static void v_gemm_small(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                         const float *B, int64_t ldb, int tb, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return;
    if (M > GEMM_MAX || N > GEMM_MAX || K > GEMM_MAX) {
        gemm_any(M, N, K, A, lda, ta, B, ldb, tb, C, ldc);
        return;
    }
    static const gemm_rows_fn rows[2][4] = {
        {gemm_rows_1_0, gemm_rows_2_0, gemm_rows_3_0, gemm_rows_4_0},
        {gemm_rows_1_1, gemm_rows_2_1, gemm_rows_3_1, gemm_rows_4_1}};
    int64_t nvt = (N + W - 1) / W;
    float panel[GEMM_MAX * GEMM_MAX] __attribute__((aligned(16)));
    if (tb || N % W != 0) {
        pack_b(B, ldb, tb, N, K, panel, nvt * W);
        B = panel;
        ldb = nvt * W;
    }
    /* column panels of up to 4 vectors, each swept by row blocks */
    for (int64_t j = 0; j < N; j += 4 * W) {
        int64_t left = (N - j + W - 1) / W;
        int nv = left >= 4 ? 4 : (int)left;
        int64_t w = N - j - (int64_t)(nv - 1) * W;
        gemm_rows_fn f = rows[ta != 0][nv - 1];
        int full = GEMM_FULL(nv);
        for (int64_t i = 0; i < M;) {
            int mr = M - i >= full ? full : M - i >= 4 ? 4 : M - i >= 2 ? 2 : 1;
            const float *a = ta ? A + i : A + i * lda;
            f(mr, K, a, lda, B + j, ldb, w > W ? W : w, C + i * ldc + j, ldc);
            i += mr;
        }
    }
}

/* ---- transpose ----
 * 4 x 4 squares through transpose4: 4 row loads, 8 shuffles and 4 row stores, where a scalar
 * loop moves one float per load and per store. A square at the edge goes through ld and st's
 * zero-padded buffers and the same shuffles. */
static void v_transpose(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                        int64_t cols)
{
    for (int64_t c0 = 0; c0 < cols; c0 += W)
        for (int64_t r0 = 0; r0 < rows; r0 += W) {
            int64_t nr = rows - r0 < W ? rows - r0 : W, nc = cols - c0 < W ? cols - c0 : W;
            vf v[4];
            for (int64_t i = 0; i < W; i++)
                v[i] = i < nr ? ld(x + (r0 + i) * ldx + c0, nc) : zero();
            transpose4(v);
            for (int64_t i = 0; i < nc; i++)
                st(y + (c0 + i) * ldy + r0, v[i], nr);
        }
}

int tg_kernels_init_neon(tg_kernels *k)
{
    tg_kernels_init_scalar(k);
    k->name = "neon";
    family_elementwise_table(k);
    k->sin = v_sin;
    k->cos = v_cos;
    k->clamp = v_clamp;
    k->sigmoid_bwd_y = v_sigmoid_bwd_y;
    k->clamp_bwd = v_clamp_bwd;
    k->sum = v_sum;
    k->map_sums = v_map_sums;
    k->row_sums = v_row_sums;
    k->col_sums = v_col_sums;
    k->dot = v_dot;
    k->fill = v_fill;
    /* copy stays the scalar memmove: libc's is already vectorised and picks its own stores */
    k->bce_logits = v_bce_logits;
    k->lr_block = v_lr_block;
    k->gemm_small = v_gemm_small;
    k->transpose = v_transpose;
    return 1;
}
