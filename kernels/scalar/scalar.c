/* The reference kernel family: plain C, correct for every input, the baseline that every SIMD
 * family is tested against. Formulas follow PyTorch's scalar paths so that single-element
 * results match it bit for bit where the C library agrees. */
#include <math.h>
#include <string.h>

#include "kernels.h"

#define UNARY(name, expr)                                                                          \
    static void name(const float *x, float *y, int64_t n)                                          \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float v = x[i];                                                                        \
            y[i] = (expr);                                                                         \
        }                                                                                          \
    }

UNARY(s_neg, -v)
UNARY(s_abs, fabsf(v))
/* PyTorch's relu is clamp_min(x, 0) = max(x, 0) keeping x unless x < 0: NaN and -0.0 stay. */
UNARY(s_relu, v < 0.0f ? 0.0f : v)
UNARY(s_exp, expf(v))
UNARY(s_log, logf(v))
UNARY(s_sin, sinf(v))
UNARY(s_cos, cosf(v))
UNARY(s_tanh, tanhf(v))
UNARY(s_sqrt, sqrtf(v))
/* 1 / (1 + exp(-x)), but exp(x) where exp(-x) overflows (x < -88.7): there sigmoid(x) is
 * still a subnormal float, down to x = -104, and exactly 0 at -inf. */
static inline float sigmoid1(float x)
{
    float e = expf(-x);
    return e == INFINITY ? expf(x) : 1.0f / (1.0f + e);
}

UNARY(s_sigmoid, sigmoid1(v))

static void s_clamp(const float *x, float *y, int64_t n, float lo, float hi)
{
    /* NaN bounds mean "no bound"; a NaN input stays NaN (PyTorch propagates it). */
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        if (!isnan(v)) {
            if (!isnan(lo) && v < lo)
                v = lo;
            if (!isnan(hi) && v > hi)
                v = hi;
        }
        y[i] = v;
    }
}

static float pow_one(float x, float e)
{
    /* The common exponents take PyTorch's shortcuts, with its special values: x^0 is 1 even for
     * NaN (a fill), x^0.5 is sqrt and x^-0.5 is rsqrt = 1 / sqrt(x), so (-0)^-0.5 = -inf and
     * (-inf)^-0.5 = NaN where powf gives +inf and +0. */
    if (e == 2.0f)
        return x * x;
    if (e == 1.0f)
        return x;
    if (e == 0.5f)
        return sqrtf(x);
    if (e == -0.5f)
        return 1.0f / sqrtf(x);
    if (e == -1.0f)
        return 1.0f / x;
    if (e == 3.0f)
        return x * x * x;
    if (e == -2.0f)
        return 1.0f / (x * x);
    if (e == 0.0f)
        return 1.0f;
    return powf(x, e);
}

static void s_pow_scalar(const float *x, float *y, int64_t n, float e)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = pow_one(x[i], e);
}

#define BINARY(name, expr)                                                                         \
    static void name##_vv(const float *a, const float *b, float *y, int64_t n)                     \
    {                                                                                              \
        for (int64_t i = 0; i < n; i++) {                                                          \
            float p = a[i], q = b[i];                                                              \
            y[i] = (expr);                                                                         \
        }                                                                                          \
    }

BINARY(s_add, p + q)
BINARY(s_sub, p - q)
BINARY(s_mul, p *q)
BINARY(s_div, p / q)
BINARY(s_pow, powf(p, q))

static void s_add_vs(const float *a, float b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] + b;
}

static void s_mul_vs(const float *a, float b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] * b;
}

static void s_div_vs(const float *a, float b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a[i] / b;
}

/* A tensor exponent that is one value: powf, as pow_vv, with none of pow_scalar's shortcuts
 * (PyTorch's tensor-tensor pow calls pow whatever the operands' layout). */
static void s_pow_vs(const float *a, float b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = powf(a[i], b);
}

static void s_sub_sv(float a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a - b[i];
}

static void s_div_sv(float a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = a / b[i];
}

static void s_pow_sv(float a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = powf(a, b[i]);
}

static void s_sigmoid_bwd(const float *x, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float y = sigmoid1(x[i]);
        if (y < 1.0f) {
            gx[i] = (gy[i] * (1.0f - y)) * y;
        } else {
            /* s(x) s(-x) = e / (1 + e)^2, e = exp(-|x|) <= 1: no cancellation, no overflow */
            float e = expf(-fabsf(x[i]));
            float d = 1.0f + e;
            gx[i] = isnan(x[i]) ? x[i] : gy[i] * (e / (d * d));
        }
    }
}

static void s_sigmoid_bwd_y(const float *y, const float *x, const float *gy, bool gy_uniform,
                            float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float *g = gy_uniform ? gy : gy + i;
        if (y[i] < 1.0f)
            gx[i] = (*g * (1.0f - y[i])) * y[i];
        else
            s_sigmoid_bwd(x + i, g, gx + i, 1);
    }
}

static void s_tanh_bwd(const float *y, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] * fmaf(-y[i], y[i], 1.0f); /* one rounding, as the SIMD families */
}

static void s_sqrt_bwd(const float *y, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] / (2.0f * y[i]);
}

static void s_relu_bwd(const float *y, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = y[i] <= 0.0f ? 0.0f : gy[i]; /* threshold_backward: NaN y passes gy */
}

static void s_sin_bwd(const float *x, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] * cosf(x[i]);
}

static void s_cos_bwd(const float *x, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] * -sinf(x[i]);
}

static void s_abs_bwd(const float *x, const float *gy, float *gx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        float s = x[i] > 0.0f ? 1.0f : (x[i] < 0.0f ? -1.0f : 0.0f);
        gx[i] = gy[i] * s;
    }
}

static void s_clamp_bwd(const float *x, const float *gy, float *gx, int64_t n, float lo, float hi)
{
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        int in = (isnan(lo) || v >= lo) && (isnan(hi) || v <= hi);
        gx[i] = in ? gy[i] : 0.0f;
    }
}

static void s_pow_scalar_bwd(const float *x, const float *gy, float *gx, int64_t n, float e)
{
    if (tg_pow_bwd_wide(x, gy, gx, n, e))
        return;
    for (int64_t i = 0; i < n; i++) {
        if (e == 0.0f)
            gx[i] = 0.0f;
        else if (e == 2.0f)
            gx[i] = gy[i] * (2.0f * x[i]);
        else
            gx[i] = gy[i] * (e * pow_one(x[i], e - 1.0f));
    }
}

/* Pairwise summation over blocks of 128 with 8 interleaved partial sums: the error grows with
 * log(n) instead of n, and the fixed shape makes the result independent of alignment. */
static float sum_block(const float *x, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j];
    float tail = 0.0f;
    for (; i < n; i++)
        tail += x[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

static float s_sum(const float *x, int64_t n)
{
    if (n <= 128)
        return sum_block(x, n);
    int64_t half = (n / 2 + 127) / 128 * 128; /* split on block edges */
    return s_sum(x, half) + s_sum(x + half, n - half);
}

/* kernels.h: fn reads g from a buffer small enough to stay in L1. */
void tg_uniform_blocks(tg_block_bwd_fn fn, const void *ctx, const float *v, float g, float *gx,
                       int64_t n)
{
    float buf[TG_UNIFORM_BLOCK];
    int64_t fill = n < TG_UNIFORM_BLOCK ? n : TG_UNIFORM_BLOCK;
    for (int64_t i = 0; i < fill; i++)
        buf[i] = g;
    for (int64_t i = 0; i < n; i += TG_UNIFORM_BLOCK)
        fn(ctx, v + i, buf, gx + i, n - i < TG_UNIFORM_BLOCK ? n - i : TG_UNIFORM_BLOCK);
}

/* ctx points at the kernel: C has no conversion between function and object pointers. */
static void plain_bwd_block(const void *ctx, const float *v, const float *g, float *gx, int64_t n)
{
    (*(const tg_unary_bwd_fn *)ctx)(v, g, gx, n);
}

void tg_bwd_uniform_blocks(tg_unary_bwd_fn f, const float *v, float g, float *gx, int64_t n)
{
    tg_uniform_blocks(plain_bwd_block, &f, v, g, gx, n);
}

/* kernels.h: the reference writes y whole and sums it. */
static void s_map_sums(tg_unary_fn f, const float *x, float *y, int64_t n, int64_t block,
                       float *sums)
{
    f(x, y, n);
    for (int64_t start = 0; start < n; start += block)
        *sums++ = s_sum(y + start, n - start < block ? n - start : block);
}

static void s_row_sums(const float *x, int64_t rows, int64_t len, float *out)
{
    for (int64_t i = 0; i < rows; i++)
        out[i] = sum_block(x + i * len, len);
}

static float col_sum(const float *x, int64_t len, int64_t ld)
{
    if (len <= TG_SUM_RUN) {
        float y = x[0];
        for (int64_t j = 1; j < len; j++)
            y += x[j * ld];
        return y;
    }
    int64_t half = len / 2;
    float a = col_sum(x, half, ld);
    return a + col_sum(x + half * ld, len - half, ld);
}

static void s_col_sums(const float *x, int64_t len, int64_t width, int64_t ld, float *y)
{
    for (int64_t c = 0; c < width; c++)
        y[c] = col_sum(x + c, len, ld) + 0.0f; /* + 0: a column of -0s sums to +0 (kernels.h) */
}

static void s_axpy(float alpha, const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

/* dot in the shape of sum: blocks of 128 products in 8 accumulators, blocks added pairwise. */
static float dot_block(const float *x, const float *y, int64_t n)
{
    float acc[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            acc[j] += x[i + j] * y[i + j];
    float tail = 0.0f;
    for (; i < n; i++)
        tail += x[i] * y[i];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7])) + tail;
}

static float s_dot(const float *x, const float *y, int64_t n)
{
    if (n <= 128)
        return dot_block(x, y, n);
    int64_t half = (n / 2 + 127) / 128 * 128; /* split on block edges */
    return s_dot(x, y, half) + s_dot(x + half, y + half, n - half);
}

static void s_fill(float *y, float v, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = v;
}

static void s_copy(const float *x, float *y, int64_t n)
{
    if (n > 0 && x != y)
        memmove(y, x, (size_t)n * sizeof(float));
}

static float softplus(float z)
{
    /* log(1 + exp(z)) without overflow: max(z, 0) + log1p(exp(-|z|)) */
    return fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)));
}

static float s_bce_logits(const float *z, const float *t, float *loss, float *grad, int64_t n,
                          float pw)
{
    double total = 0.0;
    for (int64_t i = 0; i < n; i++) {
        float zi = z[i], ti = t[i];
        float w = pw * ti + (1.0f - ti);
        float l = pw * ti * softplus(-zi) + (1.0f - ti) * softplus(zi);
        if (loss)
            loss[i] = l;
        if (grad)
            grad[i] = w / (1.0f + expf(-zi)) - pw * ti;
        total += l;
    }
    return (float)total;
}

/* The loss and dloss/dz of one row, as s_bce_logits computes them. */
static float bce_row(float z, float t, float pw, float *r)
{
    *r = (pw * t + (1.0f - t)) / (1.0f + expf(-z)) - pw * t;
    return pw * t * softplus(-z) + (1.0f - t) * softplus(z);
}

static double s_lr_block(const float *X, int64_t m, int64_t d, const float *w, float b,
                         const float *y, float pw, float *g)
{
    /* Row by row, each sum in row order: the plainest order, to check the others against. */
    double total = 0.0;
    if (g)
        for (int64_t j = 0; j <= d; j++)
            g[j] = 0.0f;
    for (int64_t i = 0; i < m; i++) {
        const float *x = X + i * d;
        float z = 0.0f, r;
        for (int64_t j = 0; j < d; j++)
            z += x[j] * w[j];
        total += bce_row(z + b, y[i], pw, &r);
        if (!g)
            continue;
        for (int64_t j = 0; j < d; j++)
            g[j] += r * x[j];
        g[d] += r;
    }
    return total;
}

static void s_row_dots(const float *X, int64_t m, int64_t d, int64_t ld, const float *w, float *out)
{
    for (int64_t i = 0; i < m; i++) {
        const float *x = X + i * ld;
        float z = 0.0f;
        for (int64_t j = 0; j < d; j++)
            z += x[j] * w[j];
        out[i] = z;
    }
}

static void s_col_dots(const float *X, int64_t m, int64_t d, int64_t ld, const float *r, float *out)
{
    for (int64_t c = 0; c < d; c++)
        out[c] = 0.0f;
    for (int64_t i = 0; i < m; i++)
        for (int64_t c = 0; c < d; c++)
            out[c] += r[i] * X[i * ld + c];
}

static void s_gemm_small(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                         const float *B, int64_t ldb, int tb, float *C, int64_t ldc)
{
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int64_t j = 0; j < N; j++)
            c[j] = 0.0f;
        for (int64_t k = 0; k < K; k++) {
            float a = ta ? A[k * lda + i] : A[i * lda + k];
            if (tb)
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * B[j * ldb + k];
            else
                for (int64_t j = 0; j < N; j++)
                    c[j] += a * B[k * ldb + j];
        }
    }
}

/* Squares of S_TILE go through a buffer: x's rows are read into it whole, then y's rows are
 * written whole. Writing y straight from x's rows revisits each y line once per x row, and
 * when ldy is a multiple of 1024 floats the lines of a square share one L1 set and evict each
 * other (a 1024^2 transpose took 3.8 ms that way, 6x PyTorch). */
#define S_TILE 32

static void s_transpose(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                        int64_t cols)
{
    float buf[S_TILE][S_TILE];
    for (int64_t r0 = 0; r0 < rows; r0 += S_TILE)
        for (int64_t c0 = 0; c0 < cols; c0 += S_TILE) {
            int64_t nr = rows - r0 < S_TILE ? rows - r0 : S_TILE;
            int64_t nc = cols - c0 < S_TILE ? cols - c0 : S_TILE;
            for (int64_t r = 0; r < nr; r++)
                for (int64_t c = 0; c < nc; c++)
                    buf[r][c] = x[(r0 + r) * ldx + c0 + c];
            for (int64_t c = 0; c < nc; c++)
                for (int64_t r = 0; r < nr; r++)
                    y[(c0 + c) * ldy + r0 + r] = buf[r][c];
        }
}

void tg_kernels_init_scalar(tg_kernels *k)
{
    memset(k, 0, sizeof *k);
    k->name = "scalar";
    k->neg = s_neg;
    k->abs = s_abs;
    k->relu = s_relu;
    k->exp = s_exp;
    k->log = s_log;
    k->sin = s_sin;
    k->cos = s_cos;
    k->tanh = s_tanh;
    k->sqrt = s_sqrt;
    k->sigmoid = s_sigmoid;
    k->clamp = s_clamp;
    k->pow_scalar = s_pow_scalar;
    k->add_vv = s_add_vv;
    k->sub_vv = s_sub_vv;
    k->mul_vv = s_mul_vv;
    k->div_vv = s_div_vv;
    k->pow_vv = s_pow_vv;
    k->add_vs = s_add_vs;
    k->mul_vs = s_mul_vs;
    k->div_vs = s_div_vs;
    k->pow_vs = s_pow_vs;
    k->sub_sv = s_sub_sv;
    k->div_sv = s_div_sv;
    k->pow_sv = s_pow_sv;
    k->sigmoid_bwd = s_sigmoid_bwd;
    k->sigmoid_bwd_y = s_sigmoid_bwd_y;
    k->tanh_bwd = s_tanh_bwd;
    k->sqrt_bwd = s_sqrt_bwd;
    k->relu_bwd = s_relu_bwd;
    k->sin_bwd = s_sin_bwd;
    k->cos_bwd = s_cos_bwd;
    k->abs_bwd = s_abs_bwd;
    k->bwd_uniform = tg_bwd_uniform_blocks;
    k->clamp_bwd = s_clamp_bwd;
    k->pow_scalar_bwd = s_pow_scalar_bwd;
    k->sum = s_sum;
    k->map_sums = s_map_sums;
    k->row_sums = s_row_sums;
    k->col_sums = s_col_sums;
    k->axpy = s_axpy;
    k->dot = s_dot;
    k->fill = s_fill;
    k->copy = s_copy;
    k->bce_logits = s_bce_logits;
    k->lr_block = s_lr_block;
    k->row_dots = s_row_dots;
    k->col_dots = s_col_dots;
    k->gemm_small = s_gemm_small;
    k->transpose = s_transpose;
}
