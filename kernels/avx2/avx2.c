/* The AVX2 kernel family: 8 floats per vector, maskload/maskstore for the n % 8 tail.
 * Compiled with -mavx2 -mfma (and -ffp-contract=off, so no multiply-add is fused behind our
 * back): dispatch.c only installs it after CPUID says yes.
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

#define W 8
typedef __m256 vf;
typedef __m256 vmask; /* all-ones / all-zeros lanes, as the compares give */

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* Lanes 0..r-1 set (all 8 when r >= 8), in the integer form maskload/maskstore want. */
ALWAYS_INLINE __m256i lanes(int64_t r)
{
    int k = r >= W ? W : (int)r;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* Loads r (<= 8) floats; the lanes past r read as 0 and touch no memory. */
ALWAYS_INLINE vf ld(const float *p, int64_t r)
{
    return r >= W ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, lanes(r));
}

ALWAYS_INLINE void st(float *p, vf v, int64_t r)
{
    if (r >= W)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, lanes(r), v);
}

ALWAYS_INLINE vf set1(float v)
{
    return _mm256_set1_ps(v);
}
ALWAYS_INLINE vf zero(void)
{
    return _mm256_setzero_ps();
}
ALWAYS_INLINE vf add(vf a, vf b)
{
    return _mm256_add_ps(a, b);
}
ALWAYS_INLINE vf sub(vf a, vf b)
{
    return _mm256_sub_ps(a, b);
}
ALWAYS_INLINE vf mul(vf a, vf b)
{
    return _mm256_mul_ps(a, b);
}
/* a * b + c with one rounding */
ALWAYS_INLINE vf fmadd(vf a, vf b, vf c)
{
    return _mm256_fmadd_ps(a, b, c);
}
ALWAYS_INLINE vf dvd(vf a, vf b)
{
    return _mm256_div_ps(a, b);
}
ALWAYS_INLINE vf neg(vf v)
{
    return _mm256_xor_ps(v, set1(-0.0f));
}
ALWAYS_INLINE vf vabs(vf v)
{
    return _mm256_andnot_ps(set1(-0.0f), v);
}
ALWAYS_INLINE vmask is_nan(vf v)
{
    return _mm256_cmp_ps(v, v, _CMP_UNORD_Q);
}
/* m ? b : a, lane by lane */
ALWAYS_INLINE vf sel(vmask m, vf b, vf a)
{
    return _mm256_blendv_ps(a, b, m);
}
/* m ? v : 0 */
ALWAYS_INLINE vf keep(vmask m, vf v)
{
    return _mm256_and_ps(m, v);
}

/* ---- exp --------------------------------------------------------------------------------
 * Our own inlined exp instead of a call to SLEEF's: exp is the whole cost of sigmoid, its
 * backward and the logistic loss, and inlining it (no call, no spill, about 20 vector ops) is what
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
 * without dr, measured), and dropping the three operations makes it faster. */
ALWAYS_INLINE vf vexp_core(vf x, const bool compensate)
{
    x = _mm256_min_ps(set1(89.0f), _mm256_max_ps(set1(-104.0f), x)); /* NaN x: returned as is */
    /* k = round(x / ln2) by the 1.5 * 2^23 shifter: one FMA and one subtraction, where a
     * multiply and a round would keep the FMA ports busy one cycle more. */
    vf k = sub(_mm256_fmadd_ps(x, set1(0x1.715476p+0f), set1(EXP_SHIFTER)), set1(EXP_SHIFTER));
    vf r1 = _mm256_fnmadd_ps(k, set1(EXP_LN2_HI), x);
    vf r = _mm256_fnmadd_ps(k, set1(EXP_LN2_LO), r1);
    vf p = set1(EXP_C6);
    p = _mm256_fmadd_ps(p, r, set1(EXP_C5));
    p = _mm256_fmadd_ps(p, r, set1(EXP_C4));
    p = _mm256_fmadd_ps(p, r, set1(EXP_C3));
    p = _mm256_fmadd_ps(p, r, set1(EXP_C2));
    vf q;
    if (compensate) {
        vf dr = _mm256_fnmadd_ps(k, set1(EXP_LN2_LO), sub(r1, r)); /* what rounding r dropped */
        q = add(r, _mm256_fmadd_ps(p, mul(r, r), dr));
    } else {
        q = _mm256_fmadd_ps(p, mul(r, r), r);
    }
    vf y = add(set1(1.0f), q);
    /* 2^k as two exact powers of two (k is in [-151, 129], each half in the normal range): the
     * first product is exact, the second rounds once, into the subnormals if need be. */
    __m256i ki = _mm256_cvtps_epi32(k);
    __m256i k1 = _mm256_srai_epi32(ki, 1), k2 = _mm256_sub_epi32(ki, k1);
    __m256i bias = _mm256_set1_epi32(127);
    vf s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k1, bias), 23));
    vf s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(k2, bias), 23));
    return mul(mul(y, s1), s2);
}

ALWAYS_INLINE vf vexp(vf x)
{
    return vexp_core(x, true);
}

/* ---- sin and cos --------------------------------------------------------------------------
 * The same algorithm as the AVX-512 family's (see there for the derivation), operation for
 * operation, so the two give the same bits and share the exhaustive check: against a double
 * sin/cos on every float, at most 0.740 ULP for sin and 0.746 for cos up to |x| ~ 6432 (0.881
 * over all floats, SLEEF's lanes). Lane masks here are vectors; blendv reads only each lane's
 * top bit, so q's parity shifted there is a mask. */
#define TRIG_C1    0x1.921fb4p+0f
#define TRIG_C2    0x1.444p-24f
#define TRIG_C3    0x1.68c234p-39f
#define TRIG_QMAX  4095
#define TRIG_MAGIC 0x1.8p23f /* adding it rounds to an integer, left in the low mantissa bits */

/* x = q pi/2 + rh + rl, q = round(x 2/pi) + bias; *qm holds the bits of MAGIC + q. */
ALWAYS_INLINE void trig_reduce(vf x, float bias, vf *rh, vf *rl, __m256i *qm)
{
    vf m = _mm256_fmadd_ps(x, set1(0x1.45f306p-1f), set1(TRIG_MAGIC + bias));
    vf q = sub(m, set1(TRIG_MAGIC + bias));
    vf r1 = _mm256_fnmadd_ps(q, set1(TRIG_C1), x);
    vf h = _mm256_fnmadd_ps(q, set1(TRIG_C2), r1);
    vf l = _mm256_fmadd_ps(q, set1(TRIG_C2), sub(h, r1)); /* minus what rounding h dropped */
    *rl = _mm256_fnmsub_ps(q, set1(TRIG_C3), l);          /* -(q C3) - l */
    *rh = h;
    *qm = _mm256_castps_si256(m);
}

/* sin(rh + rl) where c's top bit is clear, cos(rh + rl) where it is set, |rh| <= pi/4. */
ALWAYS_INLINE vf trig_poly(vf rh, vf rl, vmask c)
{
    vf z = mul(rh, rh);
    vf hr = mul(set1(-0.5f), rh);
    vf h = _mm256_fmadd_ps(hr, rh, set1(1.0f));
    vf e = sel(c, _mm256_fmadd_ps(hr, rh, sub(set1(1.0f), h)), zero()); /* 0 in sin lanes */
    vf p = sel(c, set1(0x1.99e70ap-16f), set1(-0x1.991c26p-13f));
    p = _mm256_fmadd_ps(p, z, sel(c, set1(-0x1.6c0c26p-10f), set1(0x1.1106c6p-7f)));
    p = _mm256_fmadd_ps(p, z, sel(c, set1(0x1.55554ap-5f), set1(-0x1.555544p-3f)));
    vf b = mul(z, sel(c, z, rh));       /* rh z or z^2 */
    vf t = sel(c, sub(zero(), rh), h);  /* h or -rh */
    vf nd = _mm256_fnmsub_ps(rl, t, e); /* -d: -(rl h) or -(e - rh rl) */
    vf w = _mm256_fnmadd_ps(b, p, nd);  /* -(b p + d) */
    return sub(sel(c, h, rh), w);
}

/* sin(x) (want_cos = 0) or cos(x) where *big is 0; *big has a bit per lane past the bound. */
ALWAYS_INLINE vf trig_fast(vf x, int want_cos, int *big)
{
    vf rh, rl;
    __m256i q;
    int bias = want_cos ? 1 : 0; /* cos(x) = sin(x + pi/2): q + 1 reads like q for sin */
    trig_reduce(x, (float)bias, &rh, &rl, &q);
    vf y = trig_poly(rh, rl, _mm256_castsi256_ps(_mm256_slli_epi32(q, 31)));
    /* q in range <=> q + QMAX in [0, 2 QMAX], an unsigned compare made signed by a 2^31 offset
     * (wrapping arithmetic, done in uint32_t) */
    uint32_t shift = 0x80000000u - (uint32_t)(0x4b400000 + bias - TRIG_QMAX);
    __m256i off = _mm256_add_epi32(q, _mm256_set1_epi32((int32_t)shift));
    *big = _mm256_movemask_ps(
        _mm256_castsi256_ps(_mm256_cmpgt_epi32(off, _mm256_set1_epi32(INT32_MIN + 2 * TRIG_QMAX))));
    __m256i sign = _mm256_and_si256(_mm256_slli_epi32(q, 30), _mm256_set1_epi32(INT32_MIN));
    return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_castps_si256(y), sign));
}

/* Rare: only vectors with a lane past the bound get here, so it stays out of line. */
static __attribute__((noinline)) vf trig_slow(vf y, vf x, int big, int want_cos)
{
    vf v = want_cos ? Sleef_finz_cosf8_u10avx2(x) : Sleef_finz_sinf8_u10avx2(x);
    __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(big), bit), bit);
    return sel(_mm256_castsi256_ps(m), v, y);
}

ALWAYS_INLINE vf vsin(vf x)
{
    int big;
    vf y = trig_fast(x, 0, &big);
    return __builtin_expect(big != 0, 0) ? trig_slow(y, x, big, 0) : y;
}

ALWAYS_INLINE vf vcos(vf x)
{
    int big;
    vf y = trig_fast(x, 1, &big);
    return __builtin_expect(big != 0, 0) ? trig_slow(y, x, big, 1) : y;
}

/* ---- whole vectors and streaming stores, for family_map.h ---------------------------------- */

#define FAMILY_STREAMS 1
#define FAMILY_PREFETCH 1

ALWAYS_INLINE vf ldu(const float *p)
{
    return _mm256_loadu_ps(p);
}

/* p is aligned to the vector's size (stream_head) */
ALWAYS_INLINE void stream_st(float *p, vf v)
{
    _mm256_stream_ps(p, v);
}

ALWAYS_INLINE void stream_fence(void)
{
    _mm_sfence();
}

#include "../family_map.h"

/* ---- elementwise formulas ---------------------------------------------------------------- */

ALWAYS_INLINE vf f_abs(vf v)
{
    return vabs(v);
}

/* v unless v < 0 ("not less-than, unordered"): NaN and -0.0 are kept, as PyTorch's max(v, 0) */
ALWAYS_INLINE vf f_relu(vf v)
{
    return keep(_mm256_cmp_ps(v, zero(), _CMP_NLT_UQ), v);
}
ALWAYS_INLINE vf f_sqrt(vf v)
{
    return _mm256_sqrt_ps(v);
}
ALWAYS_INLINE vf f_exp(vf v)
{
    return vexp(v);
}
ALWAYS_INLINE vf f_log(vf v)
{
    return Sleef_finz_logf8_u10avx2(v);
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
    return Sleef_finz_tanhf8_u10avx2(v);
}

/* sigmoid(x) from e = exp(-x), as 1 / (1 + e): e is exactly 0 for x > 104, so the upper limit
 * is an exact 1; NaN propagates through exp. Where e overflows (x < -88.7) that formula gives 0,
 * but sigmoid(x) = exp(x) is still a subnormal float down to x = -104 (and its derivative too):
 * such lanes, rare in data, take exp(x), which is exactly 0 at -inf. */
ALWAYS_INLINE vf sigmoid_of(vf x, vf e)
{
    vf one = set1(1.0f);
    vf y = dvd(one, add(one, e));
    vf over = _mm256_cmp_ps(e, set1(INFINITY), _CMP_EQ_OQ);
    if (__builtin_expect(_mm256_movemask_ps(over) != 0, 0))
        y = sel(over, vexp(x), y);
    return y;
}

ALWAYS_INLINE vf f_sigmoid(vf v)
{
    return sigmoid_of(v, vexp_core(neg(v), false));
}

ALWAYS_INLINE vf f_pow(vf a, vf b)
{
    return Sleef_finz_powf8_u10avx2(a, b);
}

/* At 8 lanes sin is compute-bound on one thread and on two, so its output is not streamed:
 * streaming gained nothing (16M on 2 Zen 4 cores: 6.0 ms median against 5.8 ms, within the
 * noise; on one thread of the Intel Xeon VM, family 6 model 207, 13.0-14.2 against 13.5-14.5). */
static void v_sin(const float *x, float *y, int64_t n)
{
    map1s(x, y, n, f_sin, 0);
}

static void v_cos(const float *x, float *y, int64_t n)
{
    map1s(x, y, n, f_cos, 0);
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
        v = sel(_mm256_cmp_ps(v, l, _CMP_LT_OQ), l, v);
        v = sel(_mm256_cmp_ps(v, h, _CMP_GT_OQ), h, v);
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
    vf below = _mm256_cmp_ps(y, one, _CMP_LT_OQ); /* false for NaN too */
    if (__builtin_expect(_mm256_movemask_ps(below) == 0xff, 1))
        return g; /* the usual vector: the second division is only paid where it is needed */
    vf gt = mul(gy, dvd(e, mul(d, d)));
    vf r = sel(below, g, gt);
    return sel(is_nan(x), x, r);
}

/* 0 where y <= 0, else gy: a NaN y passes gy, as PyTorch's threshold_backward */
ALWAYS_INLINE vf b_relu(vf y, vf gy)
{
    return keep(_mm256_cmp_ps(y, zero(), _CMP_NLE_UQ), gy);
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
    vf s = _mm256_or_ps(keep(_mm256_cmp_ps(x, zero(), _CMP_GT_OQ), set1(1.0f)),
                        keep(_mm256_cmp_ps(x, zero(), _CMP_LT_OQ), set1(-1.0f)));
    return mul(gy, s);
}

#include "../family_elementwise.h"

/* Vectors whose lanes all have y < 1 (the usual case) never load x. */
/* gx for the r (<= 8) elements at offset i; as the AVX-512 family's. */
ALWAYS_INLINE vf sigmoid_bwd_y_at(const float *y, const float *x, const float *gy, bool uniform,
                                  int64_t i, int64_t r)
{
    vf yv = ld(y + i, r), g = uniform ? set1(*gy) : ld(gy + i, r);
    vf below = _mm256_cmp_ps(yv, set1(1.0f), _CMP_LT_OQ);
    vf out = mul(mul(g, sub(set1(1.0f), yv)), yv);
    if (__builtin_expect(_mm256_movemask_ps(below) != 0xff, 0))
        out = sel(below, out, b_sigmoid(ld(x + i, r), g));
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
    vmask all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
    vmask no_lo = isnan(lo) ? all : zero(), no_hi = isnan(hi) ? all : zero();
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf v = ld(x + i, r);
        vmask in = _mm256_and_ps(_mm256_or_ps(no_lo, _mm256_cmp_ps(v, l, _CMP_GE_OQ)),
                                 _mm256_or_ps(no_hi, _mm256_cmp_ps(v, h, _CMP_LE_OQ)));
        st(gx + i, keep(in, ld(gy + i, r)), r);
    }
}

/* ---- reductions and helpers ------------------------------------------------------------ */

/* Leaf of the sum: 4 accumulators x 8 lanes, each adding at most 8 values, then a fixed tree. */
#define SUM_LEAF (4 * W * 8)

static vf sum_leaf(const float *x, int64_t n)
{
    vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = add(a0, _mm256_loadu_ps(x + i));
        a1 = add(a1, _mm256_loadu_ps(x + i + W));
        a2 = add(a2, _mm256_loadu_ps(x + i + 2 * W));
        a3 = add(a3, _mm256_loadu_ps(x + i + 3 * W));
    }
    int64_t r = n - i; /* the last < 32 values: masked, zero-padded */
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
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
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

/* Adds the 8 floats of v (masked lanes already zero) to the two double accumulators. */
ALWAYS_INLINE void acc_double(__m256d *lo, __m256d *hi, vf v)
{
    *lo = _mm256_add_pd(*lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    *hi = _mm256_add_pd(*hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

ALWAYS_INLINE double hsum_pd(__m256d v)
{
    __m128d q = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(q, _mm_unpackhi_pd(q, q)));
}

/* The numerator of sigmoid(z) = num / (1 + e), e = exp(-|z|), in the logistic loss's gradient: 1
 * for z >= 0, else e, and 0 where exp(-z) overflows, where 1 / (1 + exp(-z)) (the scalar
 * family's form and PyTorch's) is 0; e / (1 + e) would still be a subnormal there, down to
 * z = -104. NaN z keeps e, NaN. */
ALWAYS_INLINE vf sigmoid_num(vf z, vf e)
{
    vf num = sel(_mm256_cmp_ps(z, zero(), _CMP_GE_OQ), set1(1.0f), e);
    return sel(_mm256_cmp_ps(z, set1(-TG_EXP_OVERFLOW), _CMP_LE_OQ), zero(), num);
}

static float v_bce_logits(const float *z, const float *t, float *loss, float *grad, int64_t n,
                          float pw)
{
    /* softplus(z) and softplus(-z) share log1p(exp(-|z|)); sigmoid(z) comes from the same
     * exp(-|z|) as 1/(1+e) or e/(1+e), which cannot overflow. The loss sum is kept in double
     * per lane, as the scalar family keeps one double. */
    vf one = set1(1.0f), vpw = set1(pw);
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf zi = ld(z + i, r), ti = ld(t + i, r);
        vf e = vexp(neg(vabs(zi)));
        vf lp = Sleef_finz_log1pf8_u10avx2(e);
        vf sp_pos = add(_mm256_max_ps(zi, zero()), lp);
        vf sp_neg = add(_mm256_max_ps(neg(zi), zero()), lp);
        vf pt = mul(vpw, ti), omt = sub(one, ti);
        vf l = add(mul(pt, sp_neg), mul(omt, sp_pos));
        if (loss)
            st(loss + i, l, r);
        if (grad) {
            vf s = dvd(sigmoid_num(zi, e), add(one, e));
            st(grad + i, sub(mul(add(pt, omt), s), pt), r);
        }
        acc_double(&acc_lo, &acc_hi, keep(_mm256_castsi256_ps(lanes(r)), l));
    }
    return (float)hsum_pd(_mm256_add_pd(acc_lo, acc_hi));
}

/* ---- logistic-regression block ----------------------------------------------------------
 * As the AVX-512 family's lr_block, 8 rows at a time: the 8 dot products accumulate in 8
 * registers, a transpose-add tree folds them into one vector of 8 logits, loss and r come out
 * for the 8 lanes at once, then g += r_i x_i while the rows are still in L1. With 16 registers
 * only g stays in them (up to 32 columns); w is read from L1 as an operand of the FMAs. */
#define LR_NC_MAX 4 /* column vectors of g kept in registers, beside 8 dots */

/* log1p(e) for e in [0, 1]: 2 atanh(s), s = e / (2 + e), as the AVX-512 family computes it
 * (within 2 ULP). */
ALWAYS_INLINE vf log1p_unit(vf e)
{
    vf s = dvd(e, add(set1(2.0f), e));
    vf s2 = mul(s, s), s_2 = add(s, s);
    vf p = set1(1.0f / 15);
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 13));
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 11));
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 9));
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 7));
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 5));
    p = _mm256_fmadd_ps(p, s2, set1(1.0f / 3));
    return _mm256_fmadd_ps(mul(s_2, s2), p, s_2);
}

/* Lane i of the result is the sum of a[i]'s 8 lanes: 7 steps of two shuffles and an add (a
 * fixed tree, so the result is deterministic). */
ALWAYS_INLINE vf sum_rows8(const vf *a)
{
    vf p[4], q[2];
    for (int i = 0; i < 4; i++) /* each 128-bit lane: rows 2i, 2i+1, 2i, 2i+1 */
        p[i] = add(_mm256_unpacklo_ps(a[2 * i], a[2 * i + 1]),
                   _mm256_unpackhi_ps(a[2 * i], a[2 * i + 1]));
    for (int i = 0; i < 2; i++) /* each 128-bit lane: rows 4i .. 4i+3 */
        q[i] = add(_mm256_shuffle_ps(p[2 * i], p[2 * i + 1], 0x44),
                   _mm256_shuffle_ps(p[2 * i], p[2 * i + 1], 0xEE));
    return add(_mm256_permute2f128_ps(q[0], q[1], 0x20), _mm256_permute2f128_ps(q[0], q[1], 0x31));
}

#define FAMILY_SUM_TREE(acc) sum_rows8(acc)
#include "../family_sums.h"

/* The loss of bce_logits and r = dloss/dz for 8 logits; both 0 outside the live lanes. */
ALWAYS_INLINE vf lr_bce8(vf z, vf t, vf vpw, vmask live, vf *r)
{
    vf one = set1(1.0f);
    vf e = vexp(neg(vabs(z)));
    vf lp = log1p_unit(e);
    vf sp_pos = add(_mm256_max_ps(z, zero()), lp);
    vf sp_neg = add(_mm256_max_ps(neg(z), zero()), lp);
    vf pt = mul(vpw, t), omt = sub(one, t);
    vf s = dvd(sigmoid_num(z, e), add(one, e));
    *r = keep(live, sub(mul(add(pt, omt), s), pt));
    return keep(live, add(mul(pt, sp_neg), mul(omt, sp_pos)));
}

#include "../family_lr.h"

/* The live lanes of a row's last column vector; whole (a constant at every call) when d is a
 * multiple of 8, so that its loads need no mask: AVX2's masked load does not fold into an FMA.
 * loose (a constant too): the steady state reads X's last column vector whole, as the AVX-512
 * family does (see there); the dot clears the lanes past the row with an and. With X in cache
 * on the AMD EPYC VM (Zen 5), 2026-11-29: d = 1..4 2.8-2.9 ns a row masked, 2.4-2.5 loose;
 * d = 12 2.85 and 2.76; multiples of 8 unchanged. */
typedef struct {
    __m256i mask;
    bool whole, loose;
} lr_tail;

/* The tail of rows of d floats in nc column vectors; full: d is 8 nc. */
ALWAYS_INLINE lr_tail lr_tail_of(int64_t d, int nc, bool full)
{
    return (lr_tail){full ? _mm256_set1_epi32(-1) : lanes(d - (int64_t)(nc - 1) * W), full, false};
}

/* tail, read loose unless it is whole. */
ALWAYS_INLINE lr_tail lr_loose(lr_tail tail)
{
    return (lr_tail){tail.mask, tail.whole, !tail.whole};
}

/* Column vector c of the row at q: whole, or the live lanes of the last one. */
ALWAYS_INLINE vf lr_col(const float *q, int c, int nc, lr_tail tail)
{
    return c < nc - 1 || tail.whole || tail.loose ? _mm256_loadu_ps(q + c * W)
                                                  : _mm256_maskload_ps(q + c * W, tail.mask);
}

/* The lanes of x . w for the row at q, summed over its column vectors (not across lanes); w is
 * read with the tight tail, its lanes past d 0. */
ALWAYS_INLINE vf lr_row_dot(const float *q, int nc, lr_tail tail, const float *w)
{
    lr_tail wt = {tail.mask, tail.whole, false};
    vf a = zero();
    for (int c = 0; c < nc; c++) {
        vf x = lr_col(q, c, nc, tail);
        if (c == nc - 1 && tail.loose) /* lanes past the row: the next row's values */
            x = _mm256_and_ps(x, _mm256_castsi256_ps(tail.mask));
        a = c == 0 ? mul(x, lr_col(w, 0, nc, wt)) : _mm256_fmadd_ps(x, lr_col(w, c, nc, wt), a);
    }
    return a;
}

/* x_i . w for the 8 rows at x + i stride, i < rows (<= 8), nc <= LR_NC_MAX column vectors. Rows
 * past the live ones repeat the last, so every load stays inside X; the caller drops them. */
ALWAYS_INLINE vf lr_dots_reg(const float *x, int64_t rows, int64_t stride, int nc, lr_tail tail,
                             const float *w)
{
    vf acc[W];
    const float *q = x;
#pragma GCC unroll 8
    for (int i = 0; i < W; i++) {
        lr_prefetch_row(x, i, (nc + 1) / 2, W * stride * 4);
        acc[i] = lr_row_dot(q, nc, tail, w);
        if (i + 1 < rows) /* a running pointer: 8 row addresses would not fit in registers */
            q += stride;
    }
    return sum_rows8(acc);
}

/* gacc += sum_i rb[i] x_i over the rows x + i d, i < rows (<= 8), in row order. */
ALWAYS_INLINE void lr_grad_reg(const float *x, int64_t rows, int64_t d, int nc, lr_tail tail,
                               const float *rb, vf *gacc)
{
    for (int i = 0; i < W; i++, x += d) {
        if (i >= rows)
            break;
        vf ri = set1(rb[i]);
        for (int c = 0; c < nc; c++)
            gacc[c] = _mm256_fmadd_ps(ri, lr_col(x, c, nc, tail), gacc[c]);
    }
}

/* lr_dots_reg of 8 whole rows at xn and lr_grad_reg of 8 whole rows at xg in one loop, row by
 * row, so that the loads of new rows spread out among the cached ones (as the AVX-512 family). */
ALWAYS_INLINE vf lr_dots_grad_reg(const float *xn, const float *xg, int64_t d, int nc, lr_tail tail,
                                  const float *w, const float *rb, vf *gacc)
{
    vf acc[W];
    const float *x = xn;
#pragma GCC unroll 8
    for (int i = 0; i < W; i++, xn += d, xg += d) {
        lr_prefetch_row(x, i, (nc + 1) / 2, W * d * 4);
        acc[i] = lr_row_dot(xn, nc, tail, w);
        vf ri = set1(rb[i]);
        for (int c = 0; c < nc; c++)
            gacc[c] = _mm256_fmadd_ps(ri, lr_col(xg, c, nc, tail), gacc[c]);
    }
    return sum_rows8(acc);
}

/* lr_block for d <= 8 nc (nc a constant after inlining), software-pipelined as the AVX-512
 * family's: one iteration takes the loss of group j - 1, the gradient of group j - 2 and the
 * dots of group j, three independent chains the core can overlap. `full`: d is 8 nc. */
ALWAYS_INLINE double lr_block_reg(const float *X, int64_t m, int64_t d, int nc, bool full,
                                  const float *w, float b, const float *y, float pw, float *g)
{
    lr_tail tail = lr_tail_of(d, nc, full);
    vf gacc[LR_NC_MAX], vb = set1(b), vpw = set1(pw), rsum = zero();
    vf z = zero();  /* dots of group j - 1 */
    float rb[2][W]; /* r of the last two groups, by parity */
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    const int64_t ng = (m + W - 1) / W;
    for (int c = 0; c < nc; c++)
        gacc[c] = zero();
    for (int64_t j = 0; j < ng + 2; j++) {
        int64_t r1 = lr_rows(m, j - 1), r2 = lr_rows(m, j - 2), rj = lr_rows(m, j);
        if (r1 > 0) {
            vf r, l = lr_bce8(add(z, vb), ld(y + (j - 1) * W, r1), vpw,
                              _mm256_castsi256_ps(lanes(r1)), &r);
            acc_double(&acc_lo, &acc_hi, l);
            rsum = add(rsum, r);
            _mm256_storeu_ps(rb[(j - 1) & 1], r);
        }
        /* The steady state: whole groups on both sides, read loose (xg's reads end first). */
        if (g && r2 == W && rj == W && lr_inside(j, m, d, nc)) {
            z = lr_dots_grad_reg(X + j * W * d, X + (j - 2) * W * d, d, nc, lr_loose(tail), w,
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
            z = rj == W ? lr_dots_reg(x, W, d, nc, tail, w) : lr_dots_reg(x, rj, d, nc, tail, w);
        }
    }
    if (g) {
        for (int c = 0; c < nc - 1; c++)
            _mm256_storeu_ps(g + c * W, gacc[c]);
        st(g + (nc - 1) * W, gacc[nc - 1], d - (int64_t)(nc - 1) * W);
        g[d] = hsum(rsum);
    }
    return hsum_pd(_mm256_add_pd(acc_lo, acc_hi));
}

/* The dots of 8 rows of d floats, stride apart (as lr_dots_reg), for any d. */
ALWAYS_INLINE vf lr_dots_wide(const float *x, int64_t rows, int64_t d, int64_t stride,
                              const float *w)
{
    vf acc[W];
    for (int i = 0; i < W; i++) {
        const float *q = x + (i < rows ? i : rows - 1) * stride;
        vf a = zero();
        for (int64_t c = 0; c < d; c += W)
            a = _mm256_fmadd_ps(ld(q + c, d - c), ld(w + c, d - c), a);
        acc[i] = a;
    }
    return sum_rows8(acc);
}

/* lr_block for rows wider than LR_NC_MAX vectors: g accumulates in memory, group by group. */
static double lr_block_wide(const float *X, int64_t m, int64_t d, const float *w, float b,
                            const float *y, float pw, float *g)
{
    vf vb = set1(b), vpw = set1(pw), rsum = zero(), r;
    __m256d acc_lo = _mm256_setzero_pd(), acc_hi = _mm256_setzero_pd();
    if (g)
        memset(g, 0, (size_t)(d + 1) * sizeof *g);
    for (int64_t i = 0; i < m; i += W) {
        const float *x = X + i * d;
        int64_t rows = m - i < W ? m - i : W;
        vf l = lr_bce8(add(lr_dots_wide(x, rows, d, d, w), vb), ld(y + i, rows), vpw,
                       _mm256_castsi256_ps(lanes(rows)), &r);
        acc_double(&acc_lo, &acc_hi, l);
        if (!g)
            continue;
        float rb[W];
        _mm256_storeu_ps(rb, r);
        rsum = add(rsum, r);
        for (int64_t c = 0; c < d; c += W) {
            vf a = zero();
            for (int64_t k = 0; k < rows; k++)
                a = _mm256_fmadd_ps(set1(rb[k]), ld(x + k * d + c, d - c), a);
            st(g + c, add(ld(g + c, d - c), a), d - c);
        }
    }
    if (g)
        g[d] = hsum(rsum);
    return hsum_pd(_mm256_add_pd(acc_lo, acc_hi));
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

/* row_dots for d <= 8 nc: lr_block_reg's dots alone. */
ALWAYS_INLINE void row_dots_reg(const float *X, int64_t m, int64_t d, int64_t stride, int nc,
                                bool full, const float *w, float *out)
{
    lr_tail tail = lr_tail_of(d, nc, full);
    for (int64_t i = 0; i < m; i += W) {
        const float *x = X + i * stride;
        if (m - i >= W)
            _mm256_storeu_ps(out + i, lr_dots_reg(x, W, stride, nc, tail, w));
        else
            st(out + i, lr_dots_reg(x, m - i, stride, nc, tail, w), m - i);
    }
}

#include "../family_dots.h"

/* ---- small matrix product -------------------------------------------------------------
 * C = op(A) op(B) for M, N, K <= 64 in register blocks, as in the AVX-512 family: a block of
 * rows of C by a panel of 1 or 2 vectors (16 columns) stays in ymm accumulators over the whole
 * k loop; each k step loads the panel's row of op(B) once and broadcasts one element of op(A)
 * per row into an FMA. With 16 registers a panel is at most 2 vectors by 6 rows (12
 * accumulators, 2 for B, 1 for the broadcast). Rows of op(B) are read in place when B is not
 * transposed (maskload for the last vector); a transposed B is turned into rows of a stack
 * panel first, 8 x 8 tiles at a time. Each element of C sums its terms in k order with one FMA
 * each: within float rounding of the scalar family, not bit-identical to it. */
#define GEMM_MAX 64

/* Stores the first w (1..8) lanes of v. maskstore is slow on AMD (microcoded, even with every
 * lane set), so a partial vector goes out in 4-, 2- and 1-float pieces instead. */
ALWAYS_INLINE void st_part(float *p, vf v, int w)
{
    if (w == W) {
        _mm256_storeu_ps(p, v);
        return;
    }
    __m128 h = _mm256_castps256_ps128(v);
    if (w & 4) {
        _mm_storeu_ps(p, h);
        p += 4;
        h = _mm256_extractf128_ps(v, 1);
    }
    if (w & 2) {
        _mm_storel_pi((__m64 *)p, h);
        p += 2;
        h = _mm_movehl_ps(h, h);
    }
    if (w & 1)
        _mm_store_ss(p, h);
}

/* Rows [0, mr) by vectors [0, nv) of a block of C (constants at every call, so the loops unroll
 * and acc stays in registers); `last` masks the columns of the panel's final vector. */
ALWAYS_INLINE void gemm_block(int mr, int nv, int ta, int64_t K, const float *a, int64_t lda,
                              const float *b, int64_t ldb, __m256i last, float *c, int64_t ldc)
{
    vf acc[8][2];
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            acc[r][v] = zero();
    for (int64_t k = 0; k < K; k++) {
        vf bv[2];
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            bv[v] = v == nv - 1 ? _mm256_maskload_ps(b + k * ldb + v * W, last)
                                : _mm256_loadu_ps(b + k * ldb + v * W);
#pragma GCC unroll 8
        for (int r = 0; r < mr; r++) {
            vf av = _mm256_broadcast_ss(ta ? a + k * lda + r : a + r * lda + k);
#pragma GCC unroll 2
            for (int v = 0; v < nv; v++)
                acc[r][v] = _mm256_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
    int w = __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(last)));
#pragma GCC unroll 8
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 2
        for (int v = 0; v < nv; v++)
            st_part(c + r * ldc + v * W, acc[r][v], v < nv - 1 ? W : w);
}

/* Rows in a full block for nv vectors: 8 by 1 vector, 6 by 2 (with B and the broadcast, 14 of
 * the 16 registers). */
#define GEMM_FULL(nv) ((nv) == 1 ? 8 : 6)

/* One block of mr rows of C, mr being GEMM_FULL(NV), 4, 2 or 1. */
#define GEMM_ROWS(NV, TA)                                                                          \
    static void gemm_rows_##NV##_##TA(int mr, int64_t K, const float *a, int64_t lda,              \
                                      const float *b, int64_t ldb, __m256i last, float *c,         \
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
GEMM_ROWS(1, 1)
GEMM_ROWS(2, 1)

typedef void (*gemm_rows_fn)(int mr, int64_t K, const float *a, int64_t lda, const float *b,
                             int64_t ldb, __m256i last, float *c, int64_t ldc);

/* 8 x 8 transpose in registers: interleave pairs of rows by element, then by element pair
 * (4 x 4 blocks within each 128-bit half), then swap the halves. */
ALWAYS_INLINE void transpose8(vf m[8])
{
    vf t[8], u[8];
#pragma GCC unroll 4
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(m[i], m[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(m[i], m[i + 1]);
    }
#pragma GCC unroll 2
    for (int i = 0; i < 8; i += 4) { /* u[i + c], half h: column 4h + c of rows i..i+3 */
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
    }
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        m[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        m[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* p[k * ldp + j] = B[j * ldb + k] for j < N, k < K; columns N..ldp-1 of p get zeros. */
static void pack_bt(const float *B, int64_t ldb, int64_t N, int64_t K, float *p, int64_t ldp)
{
    for (int64_t j = 0; j < N; j += W)
        for (int64_t k = 0; k < K; k += W) {
            vf m[8];
            __m256i km = lanes(K - k);
            int64_t rows = N - j < W ? N - j : W, cols = K - k < W ? K - k : W;
#pragma GCC unroll 8
            for (int r = 0; r < W; r++) /* rows past N read nothing and pack as zeros */
                m[r] = _mm256_maskload_ps(B + (j + (r < rows ? r : 0)) * ldb + k,
                                          r < rows ? km : _mm256_setzero_si256());
            transpose8(m);
#pragma GCC unroll 8
            for (int r = 0; r < W; r++)
                if (r < cols)
                    _mm256_storeu_ps(p + (k + r) * ldp + j, m[r]);
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
                acc = _mm256_fmadd_ps(set1(ta ? A[k * lda + i] : A[i * lda + k]), ld(t, W), acc);
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
    static const gemm_rows_fn rows[2][2] = {{gemm_rows_1_0, gemm_rows_2_0},
                                            {gemm_rows_1_1, gemm_rows_2_1}};
    int64_t nvt = (N + W - 1) / W;
    float panel[GEMM_MAX * GEMM_MAX] __attribute__((aligned(32)));
    if (tb) {
        pack_bt(B, ldb, N, K, panel, nvt * W);
        B = panel;
        ldb = nvt * W;
    }
    /* column panels of 2 vectors (the last may have 1), each swept by row blocks */
    for (int64_t j = 0; j < N; j += 2 * W) {
        int nv = N - j > W ? 2 : 1;
        __m256i last = lanes(N - j - (int64_t)(nv - 1) * W);
        gemm_rows_fn f = rows[ta != 0][nv - 1];
        int full = GEMM_FULL(nv);
        for (int64_t i = 0; i < M;) {
            int mr = M - i >= full ? full : M - i >= 4 ? 4 : M - i >= 2 ? 2 : 1;
            const float *a = ta ? A + i : A + i * lda;
            f(mr, K, a, lda, B + j, ldb, last, C + i * ldc + j, ldc);
            i += mr;
        }
    }
}

/* ---- gemm_tile ----
 * 6 rows x 16 columns: 12 accumulators (two vectors per row), and per step of k two vector
 * loads of b and 6 broadcasts of a feeding 12 FMAs; 12 + 2 + 1 of the 16 registers. */
#define TILE_MR 6
#define TILE_NR (2 * W)

static void v_gemm_tile(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                        int accumulate)
{
    vf c0[TILE_MR], c1[TILE_MR];
#pragma GCC unroll 6
    for (int i = 0; i < TILE_MR; i++)
        c0[i] = c1[i] = zero();
    for (int64_t p = 0; p < k; p++) {
        vf b0 = _mm256_load_ps(b + p * TILE_NR), b1 = _mm256_load_ps(b + p * TILE_NR + W);
#pragma GCC unroll 6
        for (int i = 0; i < TILE_MR; i++) {
            vf av = _mm256_broadcast_ss(a + p * TILE_MR + i);
            c0[i] = _mm256_fmadd_ps(av, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(av, b1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < TILE_MR; i++) {
        float *r = c + i * ldc;
        if (accumulate) {
            c0[i] = add(c0[i], _mm256_loadu_ps(r));
            c1[i] = add(c1[i], _mm256_loadu_ps(r + W));
        }
        _mm256_storeu_ps(r, c0[i]);
        _mm256_storeu_ps(r + W, c1[i]);
    }
}

/* ---- transpose ----
 * 8 x 8 squares through transpose8: 8 row loads, 24 shuffles and 8 row stores, where a scalar
 * loop moves one float per load and per store. A square at the edge loads its rows with the
 * lanes past cols masked off (they read as 0 and touch no memory) and rows past rows as zeros,
 * and stores the first rows lanes of its first cols rows: the same shuffles for every square. */
static void v_transpose(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                        int64_t cols)
{
    for (int64_t c0 = 0; c0 < cols; c0 += W)
        for (int64_t r0 = 0; r0 < rows; r0 += W) {
            int64_t nr = rows - r0 < W ? rows - r0 : W, nc = cols - c0 < W ? cols - c0 : W;
            vf v[8];
#pragma GCC unroll 8
            for (int64_t i = 0; i < W; i++)
                v[i] = i < nr ? ld(x + (r0 + i) * ldx + c0, nc) : zero();
            transpose8(v);
#pragma GCC unroll 8
            for (int64_t i = 0; i < nc; i++)
                st(y + (c0 + i) * ldy + r0, v[i], nr);
        }
}

int tg_kernels_init_avx2(tg_kernels *k)
{
    tg_kernels_init_scalar(k);
    k->name = "avx2";
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
