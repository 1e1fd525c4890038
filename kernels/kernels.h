/* The kernel layer: pure loops over raw float pointers. Kernels know nothing about tensors,
 * graphs or allocation. One table per ISA family; the scalar family is the reference, and each
 * SIMD family starts from a copy of it and overrides the entries it speeds up.
 *
 * Contract for every entry: pointers may be unaligned, n may be 0, and an output may alias an
 * input of the same length (y == x is allowed; partial overlap is not).
 */
#ifndef TG_KERNELS_H
#define TG_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*tg_unary_fn)(const float *x, float *y, int64_t n);
/* y = f(a, b) elementwise; _vs: b is one scalar; _sv: a is one scalar. */
typedef void (*tg_binary_vv_fn)(const float *a, const float *b, float *y, int64_t n);
typedef void (*tg_binary_vs_fn)(const float *a, float b, float *y, int64_t n);
typedef void (*tg_binary_sv_fn)(float a, const float *b, float *y, int64_t n);
/* gx = gy * f'(.), where the saved value v is the op's input x or its output y (per entry). */
typedef void (*tg_unary_bwd_fn)(const float *v, const float *gy, float *gx, int64_t n);

/* From this many output elements (16 MB) on, a result cannot stay in the cache for the next op
 * (L2 is a few MB per core, L3 is shared), so the SIMD families write it with non-temporal
 * stores: they skip the read-for-ownership of the output and leave the cache to the inputs.
 * Not when the output is also an input: its lines are in the cache already. */
#define TG_STREAM_MIN ((int64_t)1 << 22)

/* A backward over a uniform gradient by blocks: fn(ctx, ...) on pieces of at most
 * TG_UNIFORM_BLOCK values, each reading one small buffer filled with g, so no full-size array of
 * g is ever written (scalar.c). tg_bwd_uniform_blocks is it for a plain unary backward kernel:
 * the scalar family's bwd_uniform, and the SIMD families' for a kernel they did not write; the
 * ops layer uses tg_uniform_blocks for clamp and pow, whose kernels take parameters. */
#define TG_UNIFORM_BLOCK 2048
typedef void (*tg_block_bwd_fn)(const void *ctx, const float *v, const float *g, float *gx,
                                int64_t n);
void tg_uniform_blocks(tg_block_bwd_fn fn, const void *ctx, const float *v, float g, float *gx,
                       int64_t n);
void tg_bwd_uniform_blocks(tg_unary_bwd_fn f, const float *v, float g, float *gx, int64_t n);

typedef struct tg_kernels {
    const char *name;

    /* unary forward */
    tg_unary_fn neg, abs, relu, exp, log, sin, cos, tanh, sqrt, sigmoid;
    void (*clamp)(const float *x, float *y, int64_t n, float lo, float hi); /* NaN x stays NaN */
    void (*pow_scalar)(const float *x, float *y, int64_t n, float e);

    /* binary forward: same length, vector-scalar, scalar-vector */
    tg_binary_vv_fn add_vv, sub_vv, mul_vv, div_vv, pow_vv;
    /* pow_vs is pow_vv with b one value, element for element: a tensor exponent never takes
     * pow_scalar's shortcuts (PyTorch's tensor-tensor pow is pow() whatever the layout). */
    tg_binary_vs_fn add_vs, mul_vs, div_vs, pow_vs;
    tg_binary_sv_fn sub_sv, div_sv, pow_sv;

    /* unary backward; the comment names the saved value v */
    /* v = x: with y = 1 / (1 + exp(-x)) (the forward formula), gx = (gy * (1 - y)) * y,
     * PyTorch's formula, bit for bit, wherever y < 1; where y rounds to 1 that would collapse
     * to 0, so there gx = gy * e / (1 + e)^2 with e = exp(-|x|), the true derivative, which
     * stays a nonzero float until float32 itself underflows. NaN x gives NaN. */
    tg_unary_bwd_fn sigmoid_bwd;
    /* sigmoid's backward from its saved output y = sigmoid(x) as well: gx = (gy (1 - y)) y where
     * y < 1, which reads y alone; only lanes where y rounds to 1 (or is NaN) read x and go the
     * sigmoid_bwd way. Bit-identical to sigmoid_bwd when y came from this family's sigmoid.
     * With gy_uniform, gy points at one value that stands for all n (the gradient of a sum or
     * mean), so a large backward is one call that may stream gx out (TG_STREAM_MIN). */
    void (*sigmoid_bwd_y)(const float *y, const float *x, const float *gy, bool gy_uniform,
                          float *gx, int64_t n);
    tg_unary_bwd_fn tanh_bwd; /* v = y: gx = gy * (1 - y^2) */
    tg_unary_bwd_fn sqrt_bwd; /* v = y: gx = gy / (2 y) */
    tg_unary_bwd_fn relu_bwd; /* v = y: gx = y <= 0 ? 0 : gy (NaN y passes gy) */
    tg_unary_bwd_fn sin_bwd;  /* v = x: gx = gy * cos(x) */
    tg_unary_bwd_fn cos_bwd;  /* v = x: gx = -gy * sin(x) */
    tg_unary_bwd_fn abs_bwd;  /* v = x: gx = gy * sign(x), sign(0) = 0 */
    /* gx = f(v, gy) with every gy equal to g (the gradient of a sum or mean), for f one of this
     * table's unary backward kernels above: the floats f gives on an array filled with g,
     * without one, and a large gx streams out as f's would (TG_STREAM_MIN). gx may be v. */
    void (*bwd_uniform)(tg_unary_bwd_fn f, const float *v, float g, float *gx, int64_t n);
    /* v = x: gx = gy where lo <= x <= hi (bounds inclusive, as PyTorch), else 0 */
    void (*clamp_bwd)(const float *x, const float *gy, float *gx, int64_t n, float lo, float hi);
    /* v = x: gx = gy * e * x^(e-1), and 0 where e == 0 */
    void (*pow_scalar_bwd)(const float *x, const float *gy, float *gx, int64_t n, float e);

    /* reductions and BLAS-1 style helpers */
    float (*sum)(const float *x, int64_t n); /* pairwise/blocked: error O(log n) ulps */
    /* y = f(x) for an elementwise f, and sums[k] = sum(block k of y) with the bits sum gives,
     * for blocks of `block` values (the last may be shorter). Each leaf of the sum is added up
     * while its values are still in registers, and y is written out (streamed where the family
     * streams and y is aligned to its vectors), so a large output is not read back from memory
     * to be summed. For outputs of TG_STREAM_MIN and more, whose sum a caller keeps in case it
     * is asked for. y may be x. */
    void (*map_sums)(tg_unary_fn f, const float *x, float *y, int64_t n, int64_t block,
                     float *sums);
    /* out[i] = the sum of row i of the row-major x [rows, len], len <= TG_ROW_SUMS_MAX: a sum
     * along a short last dim without a call per row. Each row is summed in one fixed order that
     * depends on len alone, not on the other rows or the row's place in the call. A row of -0s
     * sums to +0, as a sum that starts from 0 gives. */
    void (*row_sums)(const float *x, int64_t rows, int64_t len, float *out);
    /* y[c] = the sum over the len >= 1 rows of x (row stride ld) of x[r ld + c], c < width, for
     * narrow rows (width <= TG_COL_SUMS_MAX): each column in the order of sum_dim's pairwise
     * sum, so the floats are the ones a row-at-a-time sum of the same rows gives: a run of at
     * most TG_SUM_RUN rows is added row after row; a longer span is split at half = len / 2 and
     * the two halves' sums added. Registers replace the per-row calls and the scratch rows. A
     * column of -0s sums to +0. */
    void (*col_sums)(const float *x, int64_t len, int64_t width, int64_t ld, float *y);
    void (*axpy)(float alpha, const float *x, float *y, int64_t n); /* y += alpha * x */
    /* The sum of x[i] * y[i]: products added in leaves of a few accumulators, leaves added
     * pairwise (error O(log n) ulps of the sum of |x[i] y[i]|, as sum). The order depends on n
     * alone, not on alignment, so a dot gives the same float wherever and on whichever thread
     * it runs. NaN and inf inputs propagate as in a plain loop; where products overflow, the
     * fused multiply-adds may give an infinity where rounded products give inf - inf = NaN. */
    float (*dot)(const float *x, const float *y, int64_t n);
    void (*fill)(float *y, float v, int64_t n);
    void (*copy)(const float *x, float *y, int64_t n);

    /* Fused logistic loss on logits z and targets t, weight pw on positives (1 = none):
     * loss[i] = pw*t*softplus(-z) + (1-t)*softplus(z)  (stable form),
     * grad[i] = (pw*t + 1 - t) * sigmoid(z) - pw*t, where sigmoid(z) is 1 / (1 + exp(-z)),
     * PyTorch's form: exactly 0 where exp(-z) overflows (z <= -TG_EXP_OVERFLOW).
     * Either output may be NULL to skip it. Returns the sum of the losses. */
    float (*bce_logits)(const float *z, const float *t, float *loss, float *grad, int64_t n,
                        float pw);

    /* One block of the logistic-regression loss and gradient, the fused trainer's inner loop.
     * For the m rows x_i of the row-major X [m, d]: z_i = x_i . w + b, the loss of bce_logits
     * on z_i with target y[i] and positive weight pw, and r_i = dloss/dz_i. Returns the sum of
     * the m losses; when g is not NULL it is overwritten with d + 1 sums: g[j] = sum_i r_i x_ij
     * for j < d, then g[d] = sum_i r_i. Any m, d >= 0. Every sum runs in an order fixed by m
     * and d alone, so a block's result never depends on where or on which thread it runs. */
    double (*lr_block)(const float *X, int64_t m, int64_t d, const float *w, float b,
                       const float *y, float pw, float *g);
    /* out[i] = x_i . w for the m rows x_i of d floats at X + i ld, any m, d, ld >= 0 (rows may
     * overlap: they are only read): lr_block's dots without the loss, a tall matrix times a
     * vector whose rows are too short for a dot call each. Each row's sum runs in an order
     * fixed by d alone. */
    void (*row_dots)(const float *X, int64_t m, int64_t d, int64_t ld, const float *w, float *out);
    /* out[c] = sum_i r[i] x_i[c], c < d, over the same rows (X^T r): the gradient of X w with
     * respect to w. Each column's sum adds the rows in order, so it depends on m and d alone. */
    void (*col_dots)(const float *X, int64_t m, int64_t d, int64_t ld, const float *r, float *out);

    /* Small matrix product C[M,N] = op(A)[M,K] · op(B)[K,N] (C overwritten, row-major, ldc).
     * op(A) is A (row-major, lda) or, with ta, A^T of a row-major [K,M] A; likewise B.
     * Meant for M, N, K <= 64, where a BLAS call costs more than the arithmetic. */
    void (*gemm_small)(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda, int ta,
                       const float *B, int64_t ldb, int tb, float *C, int64_t ldc);

    /* One gemm_mr x gemm_nr tile of a large product from packed panels (src/ops/gemm.c packs
     * and blocks): c[i * ldc + j] = sum over p < k of a[p * gemm_mr + i] * b[p * gemm_nr + j],
     * one FMA chain per element in the order of p (the first product exact), plus the c already
     * there when accumulate (the chain's sum + c, one rounding). a and b are 64-byte aligned and
     * padded with zeros to whole tiles; k >= 1. gemm_mr == 0: the family has no tile and large
     * products go to BLAS. */
    int gemm_mr, gemm_nr;
    void (*gemm_tile)(int64_t k, const float *a, const float *b, float *c, int64_t ldc,
                      int accumulate);

    /* y[c * ldy + r] = x[r * ldx + c] for r < rows, c < cols: the transpose of the row-major
     * rows x cols block x (row stride ldx) into y (row stride ldy), any rows, cols >= 0. The
     * floats are moved, not computed, so every family writes the same bits. x and y must not
     * overlap (the exception to the aliasing rule above). The SIMD families transpose squares of
     * their vector width in registers, reading and writing whole vectors; the scalar one goes
     * through a small buffer by 32 x 32 blocks. */
    void (*transpose)(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t rows,
                      int64_t cols);
} tg_kernels;

/* The least float x whose expf(x) overflows to inf. */
#define TG_EXP_OVERFLOW 0x1.62e430p+6f

#define TG_ROW_SUMS_MAX 64
#define TG_COL_SUMS_MAX 64
#define TG_SUM_RUN      8

/* The table in force for this process (chosen once at start-up, changed by tg_set_isa). */
const tg_kernels *tg_kern(void);

/* Family tables. tg_kernels_scalar always exists; the others return 0 when the family is not
 * compiled in; every table is complete (SIMD families copy the scalar table first). */
void tg_kernels_init_scalar(tg_kernels *k);
/* pow_scalar_bwd for |e| >= 2^24, shared by every family. There each float e is an even
 * integer and e - 1 an odd one that float cannot hold: it rounds to an even neighbour
 * (16777218 - 1 gives 16777216), and x^(e-1) loses its sign for x < 0 (the gradient of
 * x^16777218 at -1 came out +16777218). PyTorch forms
 * e - 1 as a double, so this does too, then scales in float as PyTorch does. Returns false,
 * doing nothing, for the other exponents. */
static inline bool tg_pow_bwd_wide(const float *x, const float *gy, float *gx, int64_t n, float e)
{
    if (!(__builtin_fabsf(e) >= 16777216.0f))
        return false;
    for (int64_t i = 0; i < n; i++)
        gx[i] = gy[i] * (e * (float)__builtin_pow((double)x[i], (double)e - 1.0));
    return true;
}

int tg_kernels_init_avx2(tg_kernels *k);
int tg_kernels_init_avx512(tg_kernels *k);
int tg_kernels_init_neon(tg_kernels *k);

#endif /* TG_KERNELS_H */
