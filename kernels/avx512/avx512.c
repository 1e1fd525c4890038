/* The AVX-512 kernel family: 16 floats per vector, masked loads/stores for the n % 16 tail.
 * Compiled with -mavx512f -mavx512dq -mavx512vl -mavx512bw -mavx2 -mfma (and -ffp-contract=off,
 * so no multiply-add is fused behind our back): dispatch.c only installs it after CPUID says yes.
 *
 * Rules every kernel here follows:
 *  - the tail goes through the same vector formula as the body (masked lanes), so an element's
 *    result never depends on n, on where it sits in the array, or on the pointer's alignment;
 *  - the non-transcendental formulas use the same operations in the same order as the scalar
 *    family, so they are bit-identical to it (no FMA where scalar has none); the matrix product
 *    is the exception, which uses FMAs and agrees with scalar to float rounding (gemm_small);
 *  - transcendentals come from SLEEF's 1.0-ULP vector functions, in their deterministic
 *    "finz" form: the plain sin/cos switch the whole vector to a different argument reduction
 *    when any lane is >= 125, so a lane's result (within 1 ULP) would depend on its neighbours;
 *    exp, sin and cos are the exceptions, inlined here (see vexp, vsin) and as accurate (sin
 *    and cos fall back to SLEEF's per lane for large arguments). */
#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#define W 16
typedef __m512 vf;

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Mask of the first r lanes (all 16 when r >= 16). */
ALWAYS_INLINE __mmask16 lanes(int64_t r)
{
    return r >= W ? (__mmask16)0xFFFF : (__mmask16)((1u << r) - 1u);
}

/* Loads r (<= 16) floats; the lanes past r read as 0 and touch no memory. */
ALWAYS_INLINE vf ld(const float *p, int64_t r)
{
    return r >= W ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(lanes(r), p);
}

ALWAYS_INLINE void st(float *p, vf v, int64_t r)
{
    if (r >= W)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, lanes(r), v);
}

ALWAYS_INLINE vf set1(float v)
{
    return _mm512_set1_ps(v);
}
ALWAYS_INLINE vf zero(void)
{
    return _mm512_setzero_ps();
}
ALWAYS_INLINE vf add(vf a, vf b)
{
    return _mm512_add_ps(a, b);
}
ALWAYS_INLINE vf sub(vf a, vf b)
{
    return _mm512_sub_ps(a, b);
}
ALWAYS_INLINE vf mul(vf a, vf b)
{
    return _mm512_mul_ps(a, b);
}
/* a * b + c with one rounding */
ALWAYS_INLINE vf fmadd(vf a, vf b, vf c)
{
    return _mm512_fmadd_ps(a, b, c);
}
ALWAYS_INLINE vf dvd(vf a, vf b)
{
    return _mm512_div_ps(a, b);
}
ALWAYS_INLINE vf neg(vf v)
{
    return _mm512_xor_ps(v, set1(-0.0f));
}
ALWAYS_INLINE __mmask16 is_nan(vf v)
{
    return _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}

/* ---- exp --------------------------------------------------------------------------------
 * Our own inlined exp instead of a call to SLEEF's: exp is the whole cost of sigmoid, its
 * backward and the logistic loss, and inlining it (no call, no spill, 17 vector ops) is what
 * lets them keep up with memory. Accuracy matches SLEEF's u10: checked against a double exp on
 * every float, the largest error is 0.906 ULP (TAPEGRAD_EXHAUSTIVE=1 test_kernels rechecks).
 *
 * x = k ln2 + r with k = round(x / ln2), |r| <= ln2/2. ln2_hi has 18 significant bits, so
 * x - k ln2_hi is exact (one FMA); subtracting k ln2_lo rounds, and that rounding error dr is
 * recovered exactly (Sterbenz plus one FMA) and added back, as exp(r + dr) ~ exp(r) (1 + dr).
 * exp(r) is a degree-6 minimax polynomial (truncation < 0.1 ULP, see EXP_C2), summed as
 * 1 + (r + (r^2 P(r) + dr)) so the big terms are added last; the result is scaled by 2^k with a
 * single rounding, subnormals included. The input is clamped to [-104, 89] first (NaN passes
 * through), where exp is 0 and inf already. */
#define EXP_LN2_HI  0x1.62e43p-1f
#define EXP_LN2_LO  -0x1.05c61p-29f
#define EXP_SHIFTER 0x1.8p23f
/* exp(r) ~ 1 + r + r^2 (C2 + C3 r + C4 r^2 + C5 r^3 + C6 r^4) on |r| <= ln2/2: minimax for
 * relative error (Remez exchange, then coefficients rounded to float), 0.094 * 2^-24 at most,
 * one FMA fewer than the degree-7 Taylor polynomial that reaches the same accuracy. */
#define EXP_C2 0x1.fffffep-2f
#define EXP_C3 0x1.55547ep-3f
#define EXP_C4 0x1.55563ap-5f
#define EXP_C5 0x1.12472ap-7f
#define EXP_C6 0x1.6c3514p-10f

/* compensate: add back dr, the rounding error of r (exp's 0.906 ULP needs it). sigmoid passes
 * false: 1/(1 + e) is dominated by its own roundings (2.48 ULP worst over every float with or
 * without dr, measured), and dropping the three operations makes it 16% faster in cache. */
ALWAYS_INLINE vf vexp_core(vf x, const bool compensate)
{
    x = _mm512_min_ps(set1(89.0f), _mm512_max_ps(set1(-104.0f), x)); /* NaN x: returned as is */
    /* k = round(x / ln2) by the 1.5 * 2^23 shifter: one FMA and one subtraction, where a
     * multiply and a round would keep the FMA ports busy one cycle more. */
    vf k = sub(_mm512_fmadd_ps(x, set1(0x1.715476p+0f), set1(EXP_SHIFTER)), set1(EXP_SHIFTER));
    vf r1 = _mm512_fnmadd_ps(k, set1(EXP_LN2_HI), x);
    vf r = _mm512_fnmadd_ps(k, set1(EXP_LN2_LO), r1);
    vf p = set1(EXP_C6);
    p = _mm512_fmadd_ps(p, r, set1(EXP_C5));
    p = _mm512_fmadd_ps(p, r, set1(EXP_C4));
    p = _mm512_fmadd_ps(p, r, set1(EXP_C3));
    p = _mm512_fmadd_ps(p, r, set1(EXP_C2));
    vf q;
    if (compensate) {
        vf dr = _mm512_fnmadd_ps(k, set1(EXP_LN2_LO), sub(r1, r)); /* what rounding r dropped */
        q = add(r, _mm512_fmadd_ps(p, mul(r, r), dr));
    } else {
        q = _mm512_fmadd_ps(p, mul(r, r), r);
    }
    return _mm512_scalef_ps(add(set1(1.0f), q),
                            k); /* y 2^k, overflow and subnormals rounded once */
}

ALWAYS_INLINE vf vexp(vf x)
{
    return vexp_core(x, true);
}

/* ---- sin and cos --------------------------------------------------------------------------
 * Our own inlined sin and cos for |x| up to about 6432 (|q| <= TRIG_QMAX below), SLEEF's finz
 * u10 above it. Checked against a double sin/cos on every float (TAPEGRAD_EXHAUSTIVE=1
 * test_kernels): at most 0.740 ULP for sin and 0.746 for cos on the inlined range, 0.881 for
 * both over all floats (SLEEF's lanes). 3.1 G elements/s in cache, against 1.8 for SLEEF's.
 *
 * x = q pi/2 + r, q = round(x 2/pi) (signed), |r| <= pi/4 (a hair more: 2/pi is a float).
 * pi/2 is split in three, each part rounded toward zero: C1 is a full float, C2 has 11
 * significant bits and C3 holds the rest. For |q| < 2^12 the reduction is exact up to one
 * rounding whose error is recovered:
 *  - r1 = x - q C1 is exact (a multiple of 2^-24 below 1 in magnitude fits a float);
 *  - q C2 is an exact float, so h - r1, with h = round(r1 - q C2), is exact too, and one FMA
 *    gives exactly what rounding h dropped;
 *  - that error minus q C3 is rl, small beside rh = h: rh + rl is r to about 2^-48 relative, even
 *    for the float closest to a multiple of pi/2 (|r| = 2^-27.8, at x = 252.9).
 * Then sin(r) or cos(r) by minimax polynomials on [-pi/4, pi/4] (fitted by the Remez exchange for
 * relative error, coefficients rounded to float one at a time with the rest refitted: 2^-27.8
 * for sin, 2^-33 for cos), with rl entering to first order: sin(rh + rl) ~ sin(rh) + rl cos(rh),
 * cos(rh + rl) ~ cos(rh) - rl rh. The quadrant (q mod 4) picks the polynomial and the sign.
 *
 * Signs of zero: the parts of pi/2 are positive and the last steps are written as subtractions
 * of negated terms, so sin(-0) comes out as -0 (checked). NaN stays NaN; infinities and lanes
 * past the bound (q out of range, found from q's bits) take SLEEF's value, computed only for
 * vectors that have such a lane. Either way a lane's result depends on its own input only. */
#define TRIG_C1    0x1.921fb4p+0f
#define TRIG_C2    0x1.444p-24f
#define TRIG_C3    0x1.68c234p-39f
#define TRIG_QMAX  4095
#define TRIG_MAGIC 0x1.8p23f /* adding it rounds to an integer, left in the low mantissa bits */

/* x = q pi/2 + rh + rl, q = round(x 2/pi) + bias; qm is MAGIC + q as a float, so its bits hold
 * q mod 2^22 (two's complement) in the low mantissa. */
ALWAYS_INLINE void trig_reduce(vf x, float bias, vf *rh, vf *rl, __m512i *qm)
{
    vf m = _mm512_fmadd_ps(x, set1(0x1.45f306p-1f), set1(TRIG_MAGIC + bias));
    vf q = sub(m, set1(TRIG_MAGIC + bias));
    vf r1 = _mm512_fnmadd_ps(q, set1(TRIG_C1), x);
    vf h = _mm512_fnmadd_ps(q, set1(TRIG_C2), r1);
    vf l = _mm512_fmadd_ps(q, set1(TRIG_C2), sub(h, r1)); /* minus what rounding h dropped */
    *rl = _mm512_fnmsub_ps(q, set1(TRIG_C3), l);          /* -(q C3) - l */
    *rh = h;
    *qm = _mm512_castps_si512(m);
}

/* sin(rh + rl) where c is clear, cos(rh + rl) where it is set, for |rh| <= pi/4. One evaluation
 * serves both: each lane picks its coefficients and terms by mask, so no lane pays for the
 * function it does not use (computing both and choosing costs a third more).
 *   sin: rh + (rh z S(z) + rl h),         S = s0 + s1 z + s2 z^2
 *   cos: h + (z^2 C(z) + (e - rh rl)),    C = c0 + c1 z + c2 z^2
 * with z = rh^2 and h + e = 1 - z/2 (h rounded, e its exact error; h ~ cos(rh) for the rl term).
 * The sum is formed as A - (-(b p) - d), which equals A + b p + d but keeps sin(-0) = -0.
 * Degree 7 for sin (2^-27.8 relative) rather than 9 (2^-32.5) moves the worst case from 0.715
 * to 0.740 ULP and saves an FMA, the scarce unit here. */
ALWAYS_INLINE vf trig_poly(vf rh, vf rl, __mmask16 c)
{
    vf z = mul(rh, rh);
    vf hr = mul(set1(-0.5f), rh);
    vf h = _mm512_fmadd_ps(hr, rh, set1(1.0f));
    vf e = _mm512_maskz_fmadd_ps(c, hr, rh, sub(set1(1.0f), h)); /* 0 in sin lanes */
    vf p = _mm512_mask_blend_ps(c, set1(-0x1.991c26p-13f), set1(0x1.99e70ap-16f));
    p = _mm512_fmadd_ps(p, z,
                        _mm512_mask_blend_ps(c, set1(0x1.1106c6p-7f), set1(-0x1.6c0c26p-10f)));
    p = _mm512_fmadd_ps(p, z, _mm512_mask_blend_ps(c, set1(-0x1.555544p-3f), set1(0x1.55554ap-5f)));
    vf b = mul(z, _mm512_mask_blend_ps(c, rh, z)); /* rh z or z^2 */
    vf t = _mm512_mask_sub_ps(h, c, zero(), rh);   /* h or -rh */
    vf nd = _mm512_fnmsub_ps(rl, t, e);            /* -d: -(rl h) or -(e - rh rl) */
    vf w = _mm512_fnmadd_ps(b, p, nd);             /* -(b p + d) */
    return sub(_mm512_mask_blend_ps(c, rh, h), w);
}

/* sin(x) (want_cos = 0) or cos(x) where *big is clear; *big marks the lanes past the bound. */
ALWAYS_INLINE vf trig_fast(vf x, int want_cos, __mmask16 *big)
{
    vf rh, rl;
    __m512i q;
    /* cos(x) = sin(x + pi/2): with q + 1 in place of q, both read the quadrant the same way,
     * odd: the cos polynomial; bit 1: negate */
    int bias = want_cos ? 1 : 0;
    trig_reduce(x, (float)bias, &rh, &rl, &q);
    vf y = trig_poly(rh, rl, _mm512_test_epi32_mask(q, _mm512_set1_epi32(1)));
    __m512i off = _mm512_sub_epi32(q, _mm512_set1_epi32(0x4b400000 + bias - TRIG_QMAX));
    *big = _mm512_cmpgt_epu32_mask(off, _mm512_set1_epi32(2 * TRIG_QMAX));
    /* y ^ ((q << 30) & sign bit) */
    return _mm512_castsi512_ps(_mm512_ternarylogic_epi32(
        _mm512_castps_si512(y), _mm512_slli_epi32(q, 30), _mm512_set1_epi32(INT32_MIN), 0x78));
}

/* Rare: only vectors with a lane past the bound get here, so it stays out of line. */
static __attribute__((noinline)) vf trig_slow(vf y, vf x, __mmask16 big, int want_cos)
{
    vf v = want_cos ? Sleef_finz_cosf16_u10avx512f(x) : Sleef_finz_sinf16_u10avx512f(x);
    return _mm512_mask_mov_ps(y, big, v);
}

ALWAYS_INLINE vf vsin(vf x)
{
    __mmask16 big;
    vf y = trig_fast(x, 0, &big);
    return __builtin_expect(big != 0, 0) ? trig_slow(y, x, big, 0) : y;
}

ALWAYS_INLINE vf vcos(vf x)
{
    __mmask16 big;
    vf y = trig_fast(x, 1, &big);
    return __builtin_expect(big != 0, 0) ? trig_slow(y, x, big, 1) : y;
}

/* ---- whole vectors and streaming stores, for family_map.h ---------------------------------- */

#define FAMILY_STREAMS 1
#define FAMILY_PREFETCH 1

ALWAYS_INLINE vf ldu(const float *p)
{
    return _mm512_loadu_ps(p);
}

/* p is aligned to the vector's size (stream_head) */
ALWAYS_INLINE void stream_st(float *p, vf v)
{
    _mm512_stream_ps(p, v);
}

ALWAYS_INLINE void stream_fence(void)
{
    _mm_sfence();
}

#include "../family_map.h"

/* ---- elementwise formulas ---------------------------------------------------------------- */

ALWAYS_INLINE vf f_abs(vf v)
{
    return _mm512_abs_ps(v);
}

/* v unless v < 0 ("not less-than, unordered"): NaN and -0.0 are kept, as PyTorch's max(v, 0) */
ALWAYS_INLINE vf f_relu(vf v)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v, zero(), _CMP_NLT_UQ), v);
}
ALWAYS_INLINE vf f_sqrt(vf v)
{
    return _mm512_sqrt_ps(v);
}
ALWAYS_INLINE vf f_exp(vf v)
{
    return vexp(v);
}
ALWAYS_INLINE vf f_log(vf v)
{
    return Sleef_finz_logf16_u10avx512f(v);
}
ALWAYS_INLINE vf f_sin(vf v)
{
    return vsin(v);
}
ALWAYS_INLINE vf f_cos(vf v)
{
    return vcos(v);
}
ALWAYS_INLINE vf f_tanh(vf v)
{
    return Sleef_finz_tanhf16_u10avx512f(v);
}

/* sigmoid(x) from e = exp(-x), as 1 / (1 + e): e is exactly 0 for x > 104, so the upper limit
 * is an exact 1; NaN propagates through exp. Where e overflows (x < -88.7) that formula gives 0,
 * but sigmoid(x) = exp(x) is still a subnormal float down to x = -104 (and its derivative too):
 * such lanes, rare in data, take exp(x), which is exactly 0 at -inf. */
ALWAYS_INLINE vf sigmoid_of(vf x, vf e)
{
    vf one = set1(1.0f);
    vf y = dvd(one, add(one, e));
    __mmask16 over = _mm512_cmp_ps_mask(e, set1(INFINITY), _CMP_EQ_OQ);
    if (__builtin_expect(over != 0, 0))
        y = _mm512_mask_mov_ps(y, over, vexp(x));
    return y;
}

ALWAYS_INLINE vf f_sigmoid(vf v)
{
    return sigmoid_of(v, vexp_core(neg(v), false));
}

ALWAYS_INLINE vf f_pow(vf a, vf b)
{
    return Sleef_finz_powf16_u10avx512f(a, b);
}

/* Large outputs stream out on any number of threads. Since the input is asked for ahead
 * (family_map.h), streaming is faster on one thread too: tg_sin of 16M floats on one thread
 * took 6.16-6.22 ms against 7.28-8.53 with plain stores (forward + backward through sum
 * 22.5-23.5 against 25.5-26.4 ms; bench_core, three alternating rounds on the Intel Xeon VM,
 * family 6 model 207). Before the prefetch, plain stores had been faster on one Zen 4 core. */
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
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, l, _CMP_LT_OQ), l);
        v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, h, _CMP_GT_OQ), h);
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
    vf e = vexp_core(neg(x), false);
    vf d = add(one, e);
    vf y = sigmoid_of(x, e); /* the forward's y, bit for bit */
    vf g = mul(mul(gy, sub(one, y)), y);
    __mmask16 below = _mm512_cmp_ps_mask(y, one, _CMP_LT_OQ); /* false for NaN too */
    if (__builtin_expect(below == 0xffff, 1))
        return g; /* the usual vector: the second division is only paid where it is needed */
    vf gt = mul(gy, dvd(e, mul(d, d)));
    vf r = _mm512_mask_mov_ps(gt, below, g);
    return _mm512_mask_mov_ps(r, is_nan(x), x);
}

/* 0 where y <= 0, else gy: a NaN y passes gy, as PyTorch's threshold_backward */
ALWAYS_INLINE vf b_relu(vf y, vf gy)
{
    return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(y, zero(), _CMP_NLE_UQ), gy);
}
ALWAYS_INLINE vf b_sin(vf x, vf gy)
{
    return mul(gy, vcos(x));
}
ALWAYS_INLINE vf b_cos(vf x, vf gy)
{
    return mul(gy, neg(vsin(x)));
}

/* sign(x) is 1, -1, or 0 for zeros and NaN, as the scalar comparisons give. */
ALWAYS_INLINE vf b_abs(vf x, vf gy)
{
    vf s = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(x, zero(), _CMP_GT_OQ), set1(1.0f));
    s = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(x, zero(), _CMP_LT_OQ), set1(-1.0f));
    return mul(gy, s);
}

#include "../family_elementwise.h"

/* gx for the r (<= 16) elements at offset i. Vectors whose lanes all have y < 1 (the usual
 * case) never load x; lanes past r load as 0, which is < 1. */
ALWAYS_INLINE vf sigmoid_bwd_y_at(const float *y, const float *x, const float *gy, bool uniform,
                                  int64_t i, int64_t r)
{
    vf yv = ld(y + i, r), g = uniform ? set1(*gy) : ld(gy + i, r);
    __mmask16 below = _mm512_cmp_ps_mask(yv, set1(1.0f), _CMP_LT_OQ);
    vf out = mul(mul(g, sub(set1(1.0f), yv)), yv);
    if (__builtin_expect(below != 0xffff, 0))
        out = _mm512_mask_mov_ps(b_sigmoid(ld(x + i, r), g), below, out);
    return out;
}

static void v_sigmoid_bwd_y(const float *y, const float *x, const float *gy, bool gy_uniform,
                            float *gx, int64_t n)
{
    int64_t i = 0;
    int64_t head = gx != y && gx != x && gx != gy ? stream_head(gx, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(gx, sigmoid_bwd_y_at(y, x, gy, gy_uniform, 0, head), head);
        for (i = head; i + W <= n; i += W)
            stream_st(gx + i, sigmoid_bwd_y_at(y, x, gy, gy_uniform, i, W));
        stream_fence();
    }
    for (; i < n; i += W)
        st(gx + i, sigmoid_bwd_y_at(y, x, gy, gy_uniform, i, n - i), n - i);
}

static void v_clamp_bwd(const float *x, const float *gy, float *gx, int64_t n, float lo, float hi)
{
    /* Inclusive bounds; a NaN bound passes everything, even a NaN x (as the scalar test does). */
    vf l = set1(lo), h = set1(hi);
    __mmask16 no_lo = isnan(lo) ? 0xFFFF : 0, no_hi = isnan(hi) ? 0xFFFF : 0;
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf v = ld(x + i, r);
        __mmask16 in = (no_lo | _mm512_cmp_ps_mask(v, l, _CMP_GE_OQ)) &
                       (no_hi | _mm512_cmp_ps_mask(v, h, _CMP_LE_OQ));
        st(gx + i, _mm512_maskz_mov_ps(in, ld(gy + i, r)), r);
    }
}

/* ---- reductions and helpers ------------------------------------------------------------ */

/* Leaf of the sum: 4 accumulators x 16 lanes, each adding at most 8 values, then a fixed tree. */
#define SUM_LEAF (4 * W * 8)
/* A sum reads and does nearly nothing else, so one core waits on memory; asking for the lines
 * 8 KB ahead keeps more reads in flight than the hardware prefetcher does alone. tg_mean of 16M
 * floats on one Zen 4 core: 3.04 -> 2.80 ms (medians of 6 alternating runs; 2048 floats ahead
 * beat 512, 4096 and 8192); in-cache sums unchanged. The AVX2 family lost time the same way
 * (2.7-3.0 -> 3.0-3.5 ms), so it has none. Prefetches past the end never fault. */
#define SUM_PREFETCH 2048

static vf sum_leaf(const float *x, int64_t n)
{
    vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        for (int l = 0; l < 4; l++) /* each of the 4 lines 8 KB ahead: see SUM_PREFETCH */
            _mm_prefetch((const char *)(x + i + SUM_PREFETCH + l * W), _MM_HINT_T0);
        a0 = add(a0, _mm512_loadu_ps(x + i));
        a1 = add(a1, _mm512_loadu_ps(x + i + W));
        a2 = add(a2, _mm512_loadu_ps(x + i + 2 * W));
        a3 = add(a3, _mm512_loadu_ps(x + i + 3 * W));
    }
    int64_t r = n - i; /* the last < 64 values: masked, zero-padded */
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
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

#include "../family_pairwise.h"

static void v_fill(float *y, float v, int64_t n)
{
    vf b = set1(v);
    int64_t i = 0, head = stream_head(y, n);
    if (head >= 0) {
        if (head > 0)
            st(y, b, head);
        for (i = head; i + W <= n; i += W)
            stream_st(y + i, b);
        stream_fence();
    }
    for (; i < n; i += W)
        st(y + i, b, n - i);
}

/* ---- fused logistic loss ----------------------------------------------------------------- */

/* Adds the 16 floats of v (masked lanes already zero) to the two double accumulators. */
ALWAYS_INLINE void acc_double(__m512d *lo, __m512d *hi, vf v)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1)));
}

/* The numerator of sigmoid(z) = num / (1 + e), e = exp(-|z|), in the logistic loss's gradient: 1
 * for z >= 0, else e, and 0 where exp(-z) overflows, where 1 / (1 + exp(-z)) (the scalar
 * family's form and PyTorch's) is 0; e / (1 + e) would still be a subnormal there, down to
 * z = -104. NaN z keeps e, NaN. */
ALWAYS_INLINE vf sigmoid_num(vf z, vf e)
{
    vf num = _mm512_mask_mov_ps(e, _mm512_cmp_ps_mask(z, zero(), _CMP_GE_OQ), set1(1.0f));
    return _mm512_mask_mov_ps(num, _mm512_cmp_ps_mask(z, set1(-TG_EXP_OVERFLOW), _CMP_LE_OQ),
                              zero());
}

static float v_bce_logits(const float *z, const float *t, float *loss, float *grad, int64_t n,
                          float pw)
{
    /* softplus(z) and softplus(-z) share log1p(exp(-|z|)); sigmoid(z) comes from the same
     * exp(-|z|) as 1/(1+e) or e/(1+e), which cannot overflow. The loss sum is kept in double
     * per lane, as the scalar family keeps one double. */
    vf one = set1(1.0f), vpw = set1(pw);
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf zi = ld(z + i, r), ti = ld(t + i, r);
        vf e = vexp(neg(_mm512_abs_ps(zi)));
        vf lp = Sleef_finz_log1pf16_u10avx512f(e);
        vf sp_pos = add(_mm512_max_ps(zi, zero()), lp);
        vf sp_neg = add(_mm512_max_ps(neg(zi), zero()), lp);
        vf pt = mul(vpw, ti), omt = sub(one, ti);
        vf l = add(mul(pt, sp_neg), mul(omt, sp_pos));
        if (loss)
            st(loss + i, l, r);
        if (grad) {
            vf s = dvd(sigmoid_num(zi, e), add(one, e));
            st(grad + i, sub(mul(add(pt, omt), s), pt), r);
        }
        acc_double(&acc_lo, &acc_hi, _mm512_maskz_mov_ps(lanes(r), l));
    }
    return (float)_mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
}

/* ---- logistic-regression block ----------------------------------------------------------
 * lr_block takes 16 rows at a time: their dot products with w accumulate in 16 registers, a
 * transpose-add tree folds those into one vector of 16 logits, loss and r come out for the 16
 * lanes at once, and g += r_i x_i runs while the 16 rows are still in L1. X streams in once
 * and no row needs a horizontal sum of its own (a gemv per block plus bce_logits took twice
 * the memory time). Up to 64 columns, w and g stay in registers for the whole block; wider
 * rows keep them in memory. */
#define LR_NC_MAX 4 /* column vectors kept in registers: 16 dots + 4 of w + 4 of g fit in 32 */

/* log1p(e) for e in [0, 1], the softplus term: 2 atanh(s) with s = e / (2 + e) in [0, 1/3],
 * whose odd series 2 s (1 + s^2/3 + ... + s^14/15) is within 2e-9 relative of it. The error
 * comes from the rounding of s: 1.97 ULP at most over every float e in [2^-30, 1] (against a
 * double log1p). Inlined because a call to SLEEF's log1p per 16 rows would spill registers and
 * cost more than the rest of the loss. */
ALWAYS_INLINE vf log1p_unit(vf e)
{
    vf s = dvd(e, add(set1(2.0f), e));
    vf s2 = mul(s, s), s_2 = add(s, s);
    vf p = set1(1.0f / 15);
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 13));
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 11));
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 9));
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 7));
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 5));
    p = _mm512_fmadd_ps(p, s2, set1(1.0f / 3));
    return _mm512_fmadd_ps(mul(s_2, s2), p, s_2);
}

/* Lane i of the result is the sum of a[i]'s 16 lanes: 15 steps of two shuffles and an add,
 * each halving the partial sums per row (a fixed tree, so the result is deterministic). */
ALWAYS_INLINE vf sum_rows16(const vf *a)
{
    vf p[8], q[4], h[2];
    for (int i = 0; i < 8; i++) /* each 128-bit lane: rows 2i, 2i+1, 2i, 2i+1 */
        p[i] = add(_mm512_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                   _mm512_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 4; i++) /* each 128-bit lane: rows 4i .. 4i+3 */
        q[i] = add(_mm512_shuffle_ps(p[2 * i], p[2 * i + 1], 0x44),
                   _mm512_shuffle_ps(p[2 * i], p[2 * i + 1], 0xEE));
    for (int i = 0; i < 2; i++) /* 128-bit lanes: rows 8i..8i+3 twice, then 8i+4..8i+7 twice */
        h[i] = add(_mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], 0x88),
                   _mm512_shuffle_f32x4(q[2 * i], q[2 * i + 1], 0xDD));
    return add(_mm512_shuffle_f32x4(h[0], h[1], 0x88), _mm512_shuffle_f32x4(h[0], h[1], 0xDD));
}

#define FAMILY_SUM_TREE(acc) sum_rows16(acc)
#include "../family_sums.h"

#include "../family_lr.h"

/* The loss of bce_logits and r = dloss/dz for 16 logits; both 0 outside the live lanes. */
ALWAYS_INLINE vf lr_bce16(vf z, vf t, vf vpw, __mmask16 live, vf *r)
{
    vf one = set1(1.0f);
    vf e = vexp(neg(_mm512_abs_ps(z)));
    vf lp = log1p_unit(e);
    vf sp_pos = add(_mm512_max_ps(z, zero()), lp);
    vf sp_neg = add(_mm512_max_ps(neg(z), zero()), lp);
    vf pt = mul(vpw, t), omt = sub(one, t);
    vf s = dvd(sigmoid_num(z, e), add(one, e));
    *r = _mm512_maskz_mov_ps(live, sub(mul(add(pt, omt), s), pt));
    return _mm512_maskz_mov_ps(live, add(mul(pt, sp_neg), mul(omt, sp_pos)));
}

/* The live lanes of a row's last column vector; whole (a constant at every call) when d is a
 * multiple of 16, so that its loads need no mask and fold into the FMAs: a masked load is an
 * extra vector uop each (13% of the pass's time with X in cache).
 *
 * loose (a constant too) when d is not: the steady state reads the last column vector whole
 * all the same, its lanes past the row holding the next row's first values. The dot drops
 * them with a masked product (w's lanes there are 0, but 0 times an infinity in the next row
 * is NaN), and the gradient keeps them in lanes of g past d, which are never stored, so that
 * its loads fold into its FMAs unmasked. The loss and g are those of the masked loads, bit
 * for bit. Only for a group whose last row's reads end inside the block
 * (lr_inside); the groups before the steady state and after it read with masks. Measured
 * with X in cache (512 KB), one core of the AMD EPYC VM (Zen 5), 2026-11-29, ns a row:
 * d = 1..12 2.0-2.2 masked, 1.6-1.8 loose; d = 24 2.7-2.8 and 2.1; d = 48 2.5-2.6 and 2.3;
 * multiples of 16 unchanged. */
typedef struct {
    __mmask16 mask;
    bool whole, loose;
} lr_tail;

/* The tail of rows of d floats in nc column vectors; full: d is 16 nc. */
ALWAYS_INLINE lr_tail lr_tail_of(int64_t d, int nc, bool full)
{
    return (lr_tail){full ? (__mmask16)0xFFFF : lanes(d - (int64_t)(nc - 1) * W), full, false};
}

/* tail, read loose unless it is whole. */
ALWAYS_INLINE lr_tail lr_loose(lr_tail tail)
{
    return (lr_tail){tail.mask, tail.whole, !tail.whole};
}

/* Column vector c of the row at q: whole, or the live lanes of the last one. */
ALWAYS_INLINE vf lr_col(const float *q, int c, int nc, lr_tail tail)
{
    return c < nc - 1 || tail.whole || tail.loose ? _mm512_loadu_ps(q + c * W)
                                                  : _mm512_maskz_loadu_ps(tail.mask, q + c * W);
}

/* The lanes of x . w for the row at q, summed over its column vectors (not across lanes). */
ALWAYS_INLINE vf lr_row_dot(const float *q, int nc, lr_tail tail, const vf *wv)
{
    vf a = zero();
    for (int c = 0; c < nc; c++) {
        vf x = lr_col(q, c, nc, tail);
        bool cut = c == nc - 1 && tail.loose; /* lanes past the row: the next row's values */
        if (c == 0)
            a = cut ? _mm512_maskz_mul_ps(tail.mask, x, wv[0]) : mul(x, wv[0]);
        else
            a = cut ? _mm512_mask3_fmadd_ps(x, wv[c], a, tail.mask) : _mm512_fmadd_ps(x, wv[c], a);
    }
    return a;
}

/* x_i . w for the 16 rows at x + i stride, i < rows (<= 16), with nc <= LR_NC_MAX column vectors
 * and w in wv. Rows past the live ones repeat the last, so every load stays inside X; the
 * caller drops their lanes. */
ALWAYS_INLINE vf lr_dots_reg(const float *x, int64_t rows, int64_t stride, int nc, lr_tail tail,
                             const vf *wv)
{
    vf acc[W];
    const float *q = x;
#pragma GCC unroll 16 /* see lr_dots_grad_reg */
    for (int i = 0; i < W; i++) {
        acc[i] = lr_row_dot(q, nc, tail, wv);
        if (i + 1 < rows) /* a running pointer: 16 row addresses would not fit in registers */
            q += stride;
    }
    return sum_rows16(acc);
}

/* gacc += sum_i rb[i] x_i over the rows x + i d, i < rows (<= 16), in row order. One chain of
 * FMAs per column vector: two interleaved ones would be shorter, but the extra registers made
 * the compiler spill g to memory, which cost more. */
ALWAYS_INLINE void lr_grad_reg(const float *x, int64_t rows, int64_t d, int nc, lr_tail tail,
                               const float *rb, vf *gacc)
{
    for (int i = 0; i < W; i++, x += d) {
        if (i >= rows)
            break;
        vf ri = set1(rb[i]);
        for (int c = 0; c < nc; c++)
            gacc[c] = _mm512_fmadd_ps(ri, lr_col(x, c, nc, tail), gacc[c]);
    }
}

/* lr_dots_reg of 16 whole rows at xn and lr_grad_reg of 16 whole rows at xg in one loop, row
 * by row: the loads of new rows, which may wait on memory, spread out among the cached ones
 * instead of coming in a burst (measured: about 7% less time for a pass over 128 MB). The
 * loop must be unrolled for the 16 dots to stay in registers; left to itself, gcc 12 kept it
 * rolled in the variants whose rows do not fill their vectors, each dot stored on the stack
 * and loaded back for the sum. */
ALWAYS_INLINE vf lr_dots_grad_reg(const float *xn, const float *xg, int64_t d, int nc, lr_tail tail,
                                  const vf *wv, const float *rb, vf *gacc)
{
    vf acc[W];
#pragma GCC unroll 16
    for (int i = 0; i < W; i++, xn += d, xg += d) {
        acc[i] = lr_row_dot(xn, nc, tail, wv);
        vf ri = set1(rb[i]);
        for (int c = 0; c < nc; c++)
            gacc[c] = _mm512_fmadd_ps(ri, lr_col(xg, c, nc, tail), gacc[c]);
    }
    return sum_rows16(acc);
}

/* lr_block for d <= 16 nc (nc a constant after inlining), w and g in registers throughout.
 * Software-pipelined over groups of 16 rows: one iteration takes the loss of group j - 1, the
 * gradient of group j - 2 and the dots of group j. The loss of a group is a chain of some 150
 * cycles of latency; with the three stages independent the core overlaps it with the other
 * two, and X keeps streaming in at a steady rate (one phase after another over a panel of
 * rows ran at the sum of the memory and the compute time). `full`: d is 16 nc, a constant. */
ALWAYS_INLINE double lr_block_reg(const float *X, int64_t m, int64_t d, int nc, bool full,
                                  const float *w, float b, const float *y, float pw, float *g)
{
    lr_tail tail = lr_tail_of(d, nc, full);
    vf wv[LR_NC_MAX], gacc[LR_NC_MAX], vb = set1(b), vpw = set1(pw), rsum = zero();
    vf z = zero();  /* dots of group j - 1 */
    float rb[2][W]; /* r of the last two groups, by parity */
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    const int64_t ng = (m + W - 1) / W;
    for (int c = 0; c < nc; c++) {
        wv[c] = lr_col(w, c, nc, tail);
        gacc[c] = zero();
    }
    for (int64_t j = 0; j < ng + 2; j++) {
        int64_t r1 = lr_rows(m, j - 1), r2 = lr_rows(m, j - 2), rj = lr_rows(m, j);
        if (rj > 0) /* the group's lines at once (see family_lr.h) */
            lr_prefetch_group(X + j * W * d, W * d * 4);
        if (r1 > 0) {
            vf r, l = lr_bce16(add(z, vb), ld(y + (j - 1) * W, r1), vpw, lanes(r1), &r);
            acc_double(&acc_lo, &acc_hi, l);
            rsum = add(rsum, r);
            _mm512_storeu_ps(rb[(j - 1) & 1], r);
        }
        /* The steady state: whole groups on both sides, read loose (xg's reads end first). */
        if (g && r2 == W && rj == W && lr_inside(j, m, d, nc)) {
            z = lr_dots_grad_reg(X + j * W * d, X + (j - 2) * W * d, d, nc, lr_loose(tail), wv,
                                 rb[j & 1], gacc);
            continue;
        }
        if (g && r2 > 0) {
            const float *x = X + (j - 2) * W * d;
            if (r2 == W)
                lr_grad_reg(x, W, d, nc, tail, rb[j & 1], gacc);
            else
                lr_grad_reg(x, r2, d, nc, tail, rb[j & 1], gacc);
        }
        if (rj > 0) {
            const float *x = X + j * W * d;
            z = rj == W ? lr_dots_reg(x, W, d, nc, tail, wv) : lr_dots_reg(x, rj, d, nc, tail, wv);
        }
    }
    if (g) {
        for (int c = 0; c < nc; c++)
            _mm512_mask_storeu_ps(g + c * W, c < nc - 1 ? (__mmask16)0xFFFF : tail.mask, gacc[c]);
        g[d] = hsum(rsum);
    }
    return _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
}

/* The dots of 16 rows of d floats, stride apart (as lr_dots_reg), for any d, w read from memory. */
ALWAYS_INLINE vf lr_dots_wide(const float *x, int64_t rows, int64_t d, int64_t stride,
                              const float *w)
{
    vf acc[W];
    for (int i = 0; i < W; i++) {
        const float *q = x + (i < rows ? i : rows - 1) * stride;
        vf a = zero();
        for (int64_t c = 0; c < d; c += W)
            a = _mm512_fmadd_ps(ld(q + c, d - c), ld(w + c, d - c), a);
        acc[i] = a;
    }
    return sum_rows16(acc);
}

/* lr_block for rows wider than LR_NC_MAX vectors: g accumulates in memory, one group of rows
 * at a time, each column vector summing the group's rows in two interleaved chains. The row
 * work is large enough here that the group-after-group order costs little. */
static double lr_block_wide(const float *X, int64_t m, int64_t d, const float *w, float b,
                            const float *y, float pw, float *g)
{
    vf vb = set1(b), vpw = set1(pw), rsum = zero(), r;
    __m512d acc_lo = _mm512_setzero_pd(), acc_hi = _mm512_setzero_pd();
    if (g)
        memset(g, 0, (size_t)(d + 1) * sizeof *g);
    for (int64_t i = 0; i < m; i += W) {
        const float *x = X + i * d;
        int64_t rows = m - i < W ? m - i : W;
        vf l = lr_bce16(add(lr_dots_wide(x, rows, d, d, w), vb), ld(y + i, rows), vpw, lanes(rows),
                        &r);
        acc_double(&acc_lo, &acc_hi, l);
        if (!g)
            continue;
        float rb[W];
        _mm512_storeu_ps(rb, r);
        rsum = add(rsum, r);
        for (int64_t c = 0; c < d; c += W) {
            vf a0 = zero(), a1 = zero();
            for (int64_t k = 0; k + 1 < rows; k += 2) {
                a0 = _mm512_fmadd_ps(set1(rb[k]), ld(x + k * d + c, d - c), a0);
                a1 = _mm512_fmadd_ps(set1(rb[k + 1]), ld(x + (k + 1) * d + c, d - c), a1);
            }
            if (rows & 1)
                a0 = _mm512_fmadd_ps(set1(rb[rows - 1]), ld(x + (rows - 1) * d + c, d - c), a0);
            st(g + c, add(ld(g + c, d - c), add(a0, a1)), d - c);
        }
    }
    if (g)
        g[d] = hsum(rsum);
    return _mm512_reduce_add_pd(_mm512_add_pd(acc_lo, acc_hi));
}

/* lr_block_reg for nc column vectors, with plain loads when the rows fill them. */
ALWAYS_INLINE double lr_block_nc(const float *X, int64_t m, int64_t d, int nc, const float *w,
                                 float b, const float *y, float pw, float *g)
{
    return d == nc * W ? lr_block_reg(X, m, d, nc, true, w, b, y, pw, g)
                       : lr_block_reg(X, m, d, nc, false, w, b, y, pw, g);
}

static double v_lr_block(const float *X, int64_t m, int64_t d, const float *w, float b,
                         const float *y, float pw, float *g)
{
    switch ((d + W - 1) / W) {
    case 0:
    case 1:
        return lr_block_nc(X, m, d, 1, w, b, y, pw, g);
    case 2:
        return lr_block_nc(X, m, d, 2, w, b, y, pw, g);
    case 3:
        return lr_block_nc(X, m, d, 3, w, b, y, pw, g);
    case 4:
        return lr_block_nc(X, m, d, 4, w, b, y, pw, g);
    default:
        return lr_block_wide(X, m, d, w, b, y, pw, g);
    }
}

/* row_dots for d <= 16 nc: lr_block_reg's dots alone, w in registers. */
ALWAYS_INLINE void row_dots_reg(const float *X, int64_t m, int64_t d, int64_t stride, int nc,
                                bool full, const float *w, float *out)
{
    lr_tail tail = lr_tail_of(d, nc, full);
    vf wv[LR_NC_MAX];
    for (int c = 0; c < nc; c++)
        wv[c] = lr_col(w, c, nc, tail);
    for (int64_t i = 0; i < m; i += W) {
        const float *x = X + i * stride;
        lr_prefetch_group(x, W * stride * 4);
        if (m - i >= W)
            _mm512_storeu_ps(out + i, lr_dots_reg(x, W, stride, nc, tail, wv));
        else
            st(out + i, lr_dots_reg(x, m - i, stride, nc, tail, wv), m - i);
    }
}

#include "../family_dots.h"

/* ---- small matrix product -------------------------------------------------------------
 * C = op(A) op(B) for M, N, K <= 64, as register blocks: a block of up to 8 rows of C by up to
 * 4 vectors (64 columns) stays in zmm accumulators for the whole k loop, and each k step is
 * one load per B vector plus one broadcast-FMA per accumulator (the broadcast is the FMA's
 * memory operand). Rows of op(B) are read in place when B is not transposed (masked loads for
 * the last vector); a transposed B is first turned into rows of a stack panel, 16 x 16 tiles
 * at a time, in registers. op(A) needs no packing either way: its element (i, k) is a scalar
 * at A[i * lda + k], or A[k * lda + i] when transposed.
 *
 * In the blocks every element of C is the sum over k in order, from 0, one FMA per term: a
 * rounding per term fewer than the scalar family's multiply-then-add, so the two agree to float
 * rounding (the test bounds both by a double reference), not bit for bit; an element's result
 * does not depend on the block it falls in. Narrow products take another path (gemm_narrow). */
#define GEMM_MAX 64
#define GEMM_NV  4 /* vectors per row of C at most: 64 columns */

/* Rows [0, mr) by vectors [0, nv) of a block of C. mr, nv and ta are constants at every call
 * (the switches below), so the loops unroll and acc stays in registers. `last` masks the
 * columns of the final vector. */
ALWAYS_INLINE void gemm_block(int mr, int nv, int ta, int64_t K, const float *a, int64_t lda,
                              const float *b, int64_t ldb, __mmask16 last, float *c, int64_t ldc)
{
    vf acc[8][GEMM_NV];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            acc[r][v] = zero();
    for (int64_t k = 0; k < K; k++) {
        vf bv[GEMM_NV];
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm512_maskz_loadu_ps(last, b + k * ldb + v * W)
                                : _mm512_loadu_ps(b + k * ldb + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            vf av = set1(ta ? a[k * lda + r] : a[r * lda + k]);
#pragma GCC unroll 4
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < nv; v++)
            _mm512_mask_storeu_ps(c + r * ldc + v * W, v == nv - 1 ? last : (__mmask16)0xFFFF,
                                  acc[r][v]);
}

/* Rows in a full block for nv vectors: 8 by up to 3 vectors, 4 by 4 (24 or 16 accumulators). */
#define GEMM_FULL(nv) ((nv) < 4 ? 8 : 4)

/* One block of mr rows of C, mr being GEMM_FULL(NV), 4, 2 or 1. */
#define GEMM_ROWS(NV, TA)                                                                          \
    static void gemm_rows_##NV##_##TA(int mr, int64_t K, const float *a, int64_t lda,              \
                                      const float *b, int64_t ldb, __mmask16 last, float *c,       \
                                      int64_t ldc)                                                 \
    {                                                                                              \
        if (mr == GEMM_FULL(NV))                                                                   \
            gemm_block(GEMM_FULL(NV), NV, TA, K, a, lda, b, ldb, last, c, ldc);                    \
        else if (mr == 4)                                                                          \
            gemm_block(4, NV, TA, K, a, lda, b, ldb, last, c, ldc);                                \
        else if (mr == 2)                                                                          \
            gemm_block(2, NV, TA, K, a, lda, b, ldb, last, c, ldc);                                \
        else                                                                                       \
            gemm_block(1, NV, TA, K, a, lda, b, ldb, last, c, ldc);                                \
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
                             int64_t ldb, __mmask16 last, float *c, int64_t ldc);

/* 16 x 16 transpose in registers: row r, lane c in; row c, lane r out. Pairs of rows interleave
 * by element, then by element pair, which transposes the 4 x 4 blocks inside each 128-bit lane;
 * two rounds of 128-bit lane shuffles then put the blocks in place. */
ALWAYS_INLINE void transpose16(vf m[16])
{
    vf t[16], u[16];
#pragma GCC unroll 8
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(m[i], m[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(m[i], m[i + 1]);
    }
#pragma GCC unroll 4
    for (int i = 0; i < 16; i += 4) {
        __m512d t0 = _mm512_castps_pd(t[i]), t1 = _mm512_castps_pd(t[i + 1]);
        __m512d t2 = _mm512_castps_pd(t[i + 2]), t3 = _mm512_castps_pd(t[i + 3]);
        u[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));     /* lane L: column 4L */
        u[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)); /* column 4L + 1 */
        u[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)); /* column 4L + 2 */
        u[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)); /* column 4L + 3 */
    }
    /* u[4i + c], lane L, holds column 4L + c of rows 4i..4i+3: a 4 x 4 transpose of lanes */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        vf s0 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(2, 0, 2, 0));
        vf s1 = _mm512_shuffle_f32x4(u[c], u[4 + c], _MM_SHUFFLE(3, 1, 3, 1));
        vf s2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(2, 0, 2, 0));
        vf s3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], _MM_SHUFFLE(3, 1, 3, 1));
        m[c] = _mm512_shuffle_f32x4(s0, s2, _MM_SHUFFLE(2, 0, 2, 0));
        m[4 + c] = _mm512_shuffle_f32x4(s1, s3, _MM_SHUFFLE(2, 0, 2, 0));
        m[8 + c] = _mm512_shuffle_f32x4(s0, s2, _MM_SHUFFLE(3, 1, 3, 1));
        m[12 + c] = _mm512_shuffle_f32x4(s1, s3, _MM_SHUFFLE(3, 1, 3, 1));
    }
}

/* p[k * ldp + j] = B[j * ldb + k] for j < N, k < K; columns N..ldp-1 of p get zeros. */
static void pack_bt(const float *B, int64_t ldb, int64_t N, int64_t K, float *p, int64_t ldp)
{
    for (int64_t j = 0; j < N; j += W)
        for (int64_t k = 0; k < K; k += W) {
            vf m[16];
            __mmask16 km = lanes(K - k);
            int64_t rows = N - j < W ? N - j : W, cols = K - k < W ? K - k : W;
#pragma GCC unroll 16
            for (int r = 0; r < W; r++) /* rows past N read nothing and pack as zeros */
                m[r] = _mm512_maskz_loadu_ps(r < rows ? km : 0,
                                             B + (j + (r < rows ? r : 0)) * ldb + k);
            transpose16(m);
#pragma GCC unroll 16
            for (int r = 0; r < W; r++)
                if (r < cols)
                    _mm512_storeu_ps(p + (k + r) * ldp + j, m[r]);
        }
}

/* Narrow C from a row-major A (matrix-vector products and the like): the blocks above spend a
 * whole vector per row of C whatever N is, so for a few columns each element is instead a dot
 * product along k, of a row of A with a column of op(B) copied contiguous (zero-padded to whole
 * vectors), summed across lanes at the end. Per row of C that costs about 12 + N (K/16 + 6)
 * cycles against K for the blocks (measured, 64 x N x 64: 0.38 us for N = 1 against 1.2 us and
 * OpenBLAS's 0.27; 0.76 against 1.2 for N = 4). The lane sum changes the order of the terms,
 * not the accuracy bound. */
#define GEMM_NARROW 8 /* columns at most: the copy of op(B) lives on the stack */

ALWAYS_INLINE int gemm_narrow_pays(int64_t N, int64_t K)
{
    return N <= GEMM_NARROW && N * (K + 96) + 192 < 16 * K;
}

static void gemm_narrow(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                        const float *B, int64_t ldb, int tb, float *C, int64_t ldc)
{
    float cols[GEMM_NARROW * GEMM_MAX] __attribute__((aligned(64)));
    int64_t nk = (K + W - 1) / W, kp = nk * W; /* column j of op(B) at cols + j kp */
    for (int64_t j = 0; j < N; j++) {
        _mm512_storeu_ps(cols + j * kp + kp - W, zero()); /* the padding */
        if (tb)
            for (int64_t k = 0; k < K; k += W)
                st(cols + j * kp + k, ld(B + j * ldb + k, K - k), K - k);
        else /* a strided column: N K <= 512 scalar copies beat 16 x 16 transposes here */
            for (int64_t k = 0; k < K; k++)
                cols[j * kp + k] = B[k * ldb + j];
    }
    __mmask16 tail = lanes(K - (nk - 1) * W);
    for (int64_t i = 0; i < M; i++) {
        const float *a = A + i * lda;
        vf av[GEMM_MAX / W];
        for (int64_t v = 0; v < nk; v++)
            av[v] = _mm512_maskz_loadu_ps(v == nk - 1 ? tail : (__mmask16)0xFFFF, a + v * W);
        for (int64_t j = 0; j < N; j++) {
            vf acc = mul(av[0], _mm512_load_ps(cols + j * kp));
            for (int64_t v = 1; v < nk; v++)
                acc = _mm512_fmadd_ps(av[v], _mm512_load_ps(cols + j * kp + v * W), acc);
            C[i * ldc + j] = _mm512_reduce_add_ps(acc);
        }
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
                acc = _mm512_fmadd_ps(set1(ta ? A[k * lda + i] : A[i * lda + k]), ld(t, W), acc);
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
    static const gemm_rows_fn rows[2][GEMM_NV] = {
        {gemm_rows_1_0, gemm_rows_2_0, gemm_rows_3_0, gemm_rows_4_0},
        {gemm_rows_1_1, gemm_rows_2_1, gemm_rows_3_1, gemm_rows_4_1}};
    if (!ta && gemm_narrow_pays(N, K)) {
        gemm_narrow(M, N, K, A, lda, B, ldb, tb, C, ldc);
        return;
    }
    int nv = (int)((N + W - 1) / W);
    __mmask16 last = lanes(N - (int64_t)(nv - 1) * W);
    float panel[GEMM_MAX * GEMM_MAX] __attribute__((aligned(64)));
    if (tb) {
        pack_bt(B, ldb, N, K, panel, (int64_t)nv * W);
        B = panel;
        ldb = (int64_t)nv * W;
    }
    gemm_rows_fn f = rows[ta != 0][nv - 1];
    int full = GEMM_FULL(nv);
    for (int64_t i = 0; i < M;) {
        int mr = M - i >= full ? full : M - i >= 4 ? 4 : M - i >= 2 ? 2 : 1;
        const float *a = ta ? A + i : A + i * lda;
        f(mr, K, a, lda, B, ldb, last, C + i * ldc, ldc);
        i += mr;
    }
}

/* ---- gemm_tile ----
 * 12 rows x 32 columns: 24 accumulators (two vectors per row), and per step of k two vector
 * loads of b and 12 broadcasts of a feeding 24 FMAs, so the two FMA ports stay busy while the
 * loads fit in the load ports; 24 + 2 + 1 of the 32 registers. Measured on one core of the Xeon
 * VM, 1344^3 through src/ops/gemm.c: 142 GFLOP/s, against 138 for 14 x 32 and 141 for 8 x 32. */
#define TILE_MR 12
#define TILE_NR (2 * W)

static void v_gemm_tile(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                        int accumulate)
{
    vf c0[TILE_MR], c1[TILE_MR];
#pragma GCC unroll 12
    for (int i = 0; i < TILE_MR; i++) {
        c0[i] = c1[i] = zero();
        _mm_prefetch((const char *)(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch((const char *)(c + i * ldc + TILE_NR - 1), _MM_HINT_T0);
    }
    for (int64_t p = 0; p < k; p++) {
        vf b0 = _mm512_load_ps(b + p * TILE_NR), b1 = _mm512_load_ps(b + p * TILE_NR + W);
#pragma GCC unroll 12
        for (int i = 0; i < TILE_MR; i++) {
            vf av = set1(a[p * TILE_MR + i]);
            c0[i] = _mm512_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(av, b1, c1[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < TILE_MR; i++) {
        float *r = c + i * ldc;
        if (accumulate) {
            c0[i] = add(c0[i], _mm512_loadu_ps(r));
            c1[i] = add(c1[i], _mm512_loadu_ps(r + W));
        }
        _mm512_storeu_ps(r, c0[i]);
        _mm512_storeu_ps(r + W, c1[i]);
    }
}

/* ---- transpose ----
 * 16 x 16 squares through transpose16: 16 row loads, 64 shuffles and 16 row stores, where a
 * scalar loop moves one float per load and per store; each square reads 16 whole lines of x
 * and writes 16 of y. A square at the edge loads its rows with the lanes past cols masked off
 * (they read as 0 and touch no memory) and rows past rows as zeros, and stores the first rows
 * lanes of its first cols rows: the same shuffles for every square. */
static void v_transpose(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                        int64_t cols)
{
    for (int64_t c0 = 0; c0 < cols; c0 += W)
        for (int64_t r0 = 0; r0 < rows; r0 += W) {
            int64_t nr = rows - r0 < W ? rows - r0 : W, nc = cols - c0 < W ? cols - c0 : W;
            vf v[16];
#pragma GCC unroll 16
            for (int64_t i = 0; i < W; i++)
                v[i] = i < nr ? ld(x + (r0 + i) * ldx + c0, nc) : _mm512_setzero_ps();
            transpose16(v);
#pragma GCC unroll 16
            for (int64_t i = 0; i < nc; i++)
                st(y + (c0 + i) * ldy + r0, v[i], nr);
        }
}

int tg_kernels_init_avx512(tg_kernels *k)
{
    tg_kernels_init_scalar(k);
    k->name = "avx512";
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
    k->row_dots = v_row_dots;
    k->col_dots = v_col_dots;
    k->gemm_small = v_gemm_small;
    k->gemm_mr = TILE_MR;
    k->gemm_nr = TILE_NR;
    k->gemm_tile = v_gemm_tile;
    k->transpose = v_transpose;
    return 1;
}
