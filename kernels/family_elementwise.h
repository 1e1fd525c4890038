/* The elementwise kernels that the SIMD families share: the same formulas in the same order in
 * each, so written once and compiled once per family with its own flags. Included by each
 * family's source after family_map.h (the loops) and after it defines set1, zero, add, sub,
 * mul, dvd, neg and fmadd and its own formulas f_abs, f_relu, f_sqrt, f_exp, f_log, f_tanh,
 * f_sigmoid, f_pow, b_sigmoid, b_relu, b_sin, b_cos and b_abs. */
#ifndef TG_KERNELS_FAMILY_ELEMENTWISE_H
#define TG_KERNELS_FAMILY_ELEMENTWISE_H

/* ---- forward ----------------------------------------------------------------------------- */

ALWAYS_INLINE vf f_neg(vf v)
{
    return neg(v);
}

ALWAYS_INLINE vf f_add(vf a, vf b)
{
    return add(a, b);
}

ALWAYS_INLINE vf f_sub(vf a, vf b)
{
    return sub(a, b);
}

ALWAYS_INLINE vf f_mul(vf a, vf b)
{
    return mul(a, b);
}

ALWAYS_INLINE vf f_div(vf a, vf b)
{
    return dvd(a, b);
}

#define DEF_UNARY(name, op)                                                                        \
    static void name(const float *x, float *y, int64_t n)                                          \
    {                                                                                              \
        map1(x, y, n, op);                                                                         \
    }

/* A two-input entry (a binary op, or a backward of v and gy) that runs mapper with op. */
#define DEF_TWO_INPUTS(name, mapper, op)                                                           \
    static void name(const float *a, const float *b, float *y, int64_t n)                          \
    {                                                                                              \
        mapper(a, b, y, n, op);                                                                    \
    }
#define DEF_BINARY(name, op) DEF_TWO_INPUTS(name, map2, op)

DEF_UNARY(v_neg, f_neg)
DEF_UNARY(v_abs, f_abs)
DEF_UNARY(v_relu, f_relu)
DEF_UNARY(v_exp, f_exp)
DEF_UNARY(v_log, f_log)
DEF_UNARY(v_tanh, f_tanh)
DEF_UNARY(v_sqrt, f_sqrt)
DEF_UNARY(v_sigmoid, f_sigmoid)
DEF_BINARY(v_add_vv, f_add)
DEF_BINARY(v_sub_vv, f_sub)
DEF_BINARY(v_mul_vv, f_mul)
DEF_BINARY(v_div_vv, f_div)
DEF_BINARY(v_pow_vv, f_pow)

static void v_add_vs(const float *a, float b, float *y, int64_t n)
{
    map2_vs(a, set1(b), y, n, f_add);
}

static void v_mul_vs(const float *a, float b, float *y, int64_t n)
{
    map2_vs(a, set1(b), y, n, f_mul);
}

static void v_div_vs(const float *a, float b, float *y, int64_t n)
{
    map2_vs(a, set1(b), y, n, f_div);
}

static void v_sub_sv(float a, const float *b, float *y, int64_t n)
{
    map2_sv(set1(a), b, y, n, f_sub);
}

static void v_div_sv(float a, const float *b, float *y, int64_t n)
{
    map2_sv(set1(a), b, y, n, f_div);
}

static void v_pow_sv(float a, const float *b, float *y, int64_t n)
{
    map2_sv(set1(a), b, y, n, f_pow);
}

/* ---- pow with a scalar exponent -------------------------------------------------------- */

/* The exponents with shortcuts in the scalar pow_one (PyTorch's), in the same order of
 * operations, so with the same special values. */
ALWAYS_INLINE vf f_sq(vf v)
{
    return mul(v, v);
}

ALWAYS_INLINE vf f_cube(vf v)
{
    return mul(mul(v, v), v);
}

ALWAYS_INLINE vf f_recip(vf v)
{
    return dvd(set1(1.0f), v);
}

ALWAYS_INLINE vf f_inv_sq(vf v)
{
    return dvd(set1(1.0f), mul(v, v));
}

ALWAYS_INLINE vf f_rsqrt(vf v)
{
    return dvd(set1(1.0f), f_sqrt(v));
}

ALWAYS_INLINE vf f_ident(vf v)
{
    return v;
}

ALWAYS_INLINE vf f_one(vf v)
{
    (void)v;
    return set1(1.0f);
}

/* The elementwise function x -> pow_one(x, e), chosen once per call. */
static vop1 pow_shortcut(float e)
{
    if (e == 2.0f)
        return f_sq;
    if (e == 1.0f)
        return f_ident;
    if (e == 0.5f)
        return f_sqrt;
    if (e == -0.5f)
        return f_rsqrt;
    if (e == -1.0f)
        return f_recip;
    if (e == 3.0f)
        return f_cube;
    if (e == -2.0f)
        return f_inv_sq;
    if (e == 0.0f)
        return f_one;
    return NULL;
}

static void v_pow_scalar(const float *x, float *y, int64_t n, float e)
{
    if (e == 2.0f)
        map1(x, y, n, f_sq);
    else if (e == 1.0f)
        map1(x, y, n, f_ident);
    else if (e == 0.5f)
        map1(x, y, n, f_sqrt);
    else if (e == -0.5f)
        map1(x, y, n, f_rsqrt);
    else if (e == -1.0f)
        map1(x, y, n, f_recip);
    else if (e == 3.0f)
        map1(x, y, n, f_cube);
    else if (e == -2.0f)
        map1(x, y, n, f_inv_sq);
    else if (e == 0.0f)
        map1(x, y, n, f_one);
    else
        map2_vs(x, set1(e), y, n, f_pow);
}

/* A tensor exponent that is one value: pow_vv's formula, lane for lane, with none of
 * pow_scalar's shortcuts (PyTorch's tensor-tensor pow calls pow whatever the layout). */
static void v_pow_vs(const float *a, float b, float *y, int64_t n)
{
    map2_vs(a, set1(b), y, n, f_pow);
}

/* ---- backward ---------------------------------------------------------------------------- */

typedef vf (*vbwd)(vf v, vf gy);

/* gx = op(v, gy); gx may alias v or gy. A large gx that aliases neither input streams out, as
 * map2's outputs do, and v is asked for ahead. One thread, 16M floats, the Intel Xeon VM: AVX-512
 * tanh_bwd 13.1-13.7 -> 6.8-9.1 ms, relu_bwd 12.5-13.8 -> 5.8-8.5, sin_bwd 15.4-16.3 -> 9.7-11.8;
 * AVX2 tanh_bwd 12.5-13.1 -> 7.7-8.3 (bench_kernels, alternating rounds); in-cache unchanged. The
 * prefetch alone took sin_bwd to 13.4-13.7. With uniform (a constant at every call, so the
 * tests fold away) gy is not read and every gy is g: map_bwd_uniform. */
ALWAYS_INLINE void map_bwd_g(const float *v, const float *gy, bool uniform, vf g, float *gx,
                             int64_t n, vbwd op)
{
    int64_t i = 0;
    int64_t head = gx != v && (uniform || gx != gy) ? stream_head(gx, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(gx, op(ld(v, head), uniform ? g : ld(gy, head)), head);
        for (i = head; i + W <= n; i += W) {
            ahead(v + i);
            stream_st(gx + i, op(ldu(v + i), uniform ? g : ldu(gy + i)));
        }
        stream_fence();
    }
    for (; i < n; i += W) {
        int64_t r = n - i;
        ahead(v + i);
        st(gx + i, op(ld(v + i, r), uniform ? g : ld(gy + i, r)), r);
    }
}

ALWAYS_INLINE void map_bwd(const float *v, const float *gy, float *gx, int64_t n, vbwd op)
{
    map_bwd_g(v, gy, false, zero(), gx, n, op);
}

/* 1 - y^2 by one fused multiply-add, as PyTorch 1.13's build computes it: near saturation
 * (|x| from about 3) y^2 rounded first loses most of the difference's bits (at x = 4 the
 * gradient was 2e-4 relative off, hundreds of ULP). */
ALWAYS_INLINE vf b_tanh(vf y, vf gy)
{
    return mul(gy, fmadd(neg(y), y, set1(1.0f)));
}

ALWAYS_INLINE vf b_sqrt(vf y, vf gy)
{
    return dvd(gy, mul(set1(2.0f), y));
}

#define DEF_BWD(name, op) DEF_TWO_INPUTS(name, map_bwd, op)

/* v is x or y, whichever the formula reads (map_bwd) */
DEF_BWD(v_sigmoid_bwd, b_sigmoid)
DEF_BWD(v_tanh_bwd, b_tanh)
DEF_BWD(v_sqrt_bwd, b_sqrt)
DEF_BWD(v_relu_bwd, b_relu)
DEF_BWD(v_sin_bwd, b_sin)
DEF_BWD(v_cos_bwd, b_cos)
DEF_BWD(v_abs_bwd, b_abs)

/* gx = op(v, g) for one g: the floats of map_bwd on an array filled with g, streamed as there. */
ALWAYS_INLINE void map_bwd_uniform(const float *v, float g, float *gx, int64_t n, vbwd op)
{
    map_bwd_g(v, NULL, true, set1(g), gx, n, op);
}

/* kernels.h. The backward kernels above get their op inlined; any other f runs on blocks of a
 * small buffer filled with g. */
static void v_bwd_uniform(tg_unary_bwd_fn f, const float *v, float g, float *gx, int64_t n)
{
#define BWD_UNIFORM_CASE(k, o)                                                                     \
    if (f == k) {                                                                                  \
        map_bwd_uniform(v, g, gx, n, o);                                                           \
        return;                                                                                    \
    }
    BWD_UNIFORM_CASE(v_sigmoid_bwd, b_sigmoid)
    BWD_UNIFORM_CASE(v_tanh_bwd, b_tanh)
    BWD_UNIFORM_CASE(v_sqrt_bwd, b_sqrt)
    BWD_UNIFORM_CASE(v_relu_bwd, b_relu)
    BWD_UNIFORM_CASE(v_sin_bwd, b_sin)
    BWD_UNIFORM_CASE(v_cos_bwd, b_cos)
    BWD_UNIFORM_CASE(v_abs_bwd, b_abs)
#undef BWD_UNIFORM_CASE
    tg_bwd_uniform_blocks(f, v, g, gx, n);
}

static void v_pow_scalar_bwd(const float *x, const float *gy, float *gx, int64_t n, float e)
{
    if (tg_pow_bwd_wide(x, gy, gx, n, e))
        return;
    if (e == 0.0f) {
        for (int64_t i = 0; i < n; i += W)
            st(gx + i, zero(), n - i);
        return;
    }
    vf ev = set1(e);
    vop1 f = e == 2.0f ? NULL : pow_shortcut(e - 1.0f);
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        vf v = ld(x + i, r), g = ld(gy + i, r), d;
        if (e == 2.0f)
            d = mul(set1(2.0f), v);
        else
            d = mul(ev, f ? f(v) : f_pow(v, set1(e - 1.0f)));
        st(gx + i, mul(g, d), r);
    }
}

static void v_axpy(float alpha, const float *x, float *y, int64_t n)
{
    vf a = set1(alpha);
    for (int64_t i = 0; i < n; i += W) {
        int64_t r = n - i;
        st(y + i, add(ld(y + i, r), mul(a, ld(x + i, r))), r);
    }
}

/* The table entries of the kernels above. */
static void family_elementwise_table(tg_kernels *k)
{
    k->neg = v_neg;
    k->abs = v_abs;
    k->relu = v_relu;
    k->exp = v_exp;
    k->log = v_log;
    k->tanh = v_tanh;
    k->sqrt = v_sqrt;
    k->sigmoid = v_sigmoid;
    k->pow_scalar = v_pow_scalar;
    k->add_vv = v_add_vv;
    k->sub_vv = v_sub_vv;
    k->mul_vv = v_mul_vv;
    k->div_vv = v_div_vv;
    k->pow_vv = v_pow_vv;
    k->add_vs = v_add_vs;
    k->mul_vs = v_mul_vs;
    k->div_vs = v_div_vs;
    k->pow_vs = v_pow_vs;
    k->sub_sv = v_sub_sv;
    k->div_sv = v_div_sv;
    k->pow_sv = v_pow_sv;
    k->sigmoid_bwd = v_sigmoid_bwd;
    k->tanh_bwd = v_tanh_bwd;
    k->sqrt_bwd = v_sqrt_bwd;
    k->relu_bwd = v_relu_bwd;
    k->sin_bwd = v_sin_bwd;
    k->cos_bwd = v_cos_bwd;
    k->abs_bwd = v_abs_bwd;
    k->bwd_uniform = v_bwd_uniform;
    k->pow_scalar_bwd = v_pow_scalar_bwd;
    k->axpy = v_axpy;
}

#endif
