/* Helpers shared by the op modules: argument checks, broadcasting and reducing gradients back
 * to an input's shape. */
#ifndef TG_OPS_OPS_H
#define TG_OPS_OPS_H

#include "../../kernels/kernels.h"
#include "../autograd/node.h"
#include "../core/tensor.h"

/* Sets "fn: argument is NULL" and returns NULL, for the NULL-in, NULL-out convention. The
 * error of an earlier failed call is kept when it is what produced the NULL. */
tg_tensor *tg_null_arg(const char *fn);

/* Broadcast shape of a and b (NumPy rules); false + TG_ESHAPE error naming fn and both shapes. */
/* Tensor.view of a contiguous tensor to a shape of the same element count (not checked): a view
 * whose node is ViewBackward0, for ops that reproduce PyTorch's own graph. */
tg_tensor *tg_view_dense_(tg_tensor *a, int ndim, const int64_t *shape);
/* A gradient that is the one value v at every position of shape: a 0-d tensor expanded (every
 * stride 0), so no full tensor is written; the next node reads the value or materializes it only
 * if it must. NULL + error on OOM. */
tg_tensor *tg_uniform_grad_(float v, int ndim, const int64_t *shape, const char *name);
/* -g, kept one value when g is (the backward of neg and of s - x). */
tg_tensor *tg_neg_grad_(tg_tensor *g, const char *name);
/* Is g such a view: one value broadcast over more than one position? */
static inline bool tg_uniform_view_(const tg_tensor *g)
{
    return !g->contiguous && tg_is_uniform(g);
}
bool tg_broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape,
                        const char *fn);
/* Strides that view t at the (broadcast) shape [ndim, shape]: 0 where t is broadcast. */
void tg_broadcast_strides(const tg_tensor *t, int ndim, const int64_t *shape, int64_t *strides);

/* Sums g over the dimensions that broadcasting added or stretched, giving a new tensor of
 * exactly [ndim, shape] (g itself, retained, when shapes already agree). This is the one place
 * broadcast gradients are reduced. */
tg_tensor *tg_reduce_to(tg_tensor *g, int ndim, const int64_t *shape);
/* tg_reduce_to for input i of node n. */
tg_tensor *tg_reduce_to_input(const tg_node *n, int i, tg_tensor *g);
/* C [M, N] = op(A) op(B) (beta 0) or C += op(A) op(B) (beta 1), row-major as cblas_sgemm with
 * alpha 1: OpenBLAS, or the kernel table's tiles where OpenBLAS's kernels fall below the
 * family's (gemm.c). lda (ldb) 0: every element of op(A) (op(B)) is A[0] (B[0]). false (error
 * set) when out of memory for the tiles' panels, or to write such an operand out for OpenBLAS. */
bool tg_sgemm_(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc);
/* Does tg_sgemm_ read a uniform operand (ld 0) without writing it out (on the tiles)? */
bool tg_sgemm_fills_uniform_(void);
/* For tests: 1 runs every tg_sgemm_ on the tiles (families that have them), 0 on OpenBLAS, -1
 * the choice by OpenBLAS's kernels and TAPEGRAD_GEMM again. */
void tg_gemm_force_(int mode);
/* y [rows, N] += x [rows, K] @ W^T for dense row-major x and W [N, K]: tg_linear's product on
 * top of its bias. Tall shapes (K, N <= 64) run as tg_matmul runs them (matmul.c). false (error
 * set) when out of memory. */
bool tg_gemm_nt_acc(const float *x, const float *W, float *y, int64_t rows, int64_t K, int64_t N);

/* Runs a unary kernel over n contiguous elements, split across threads from grain elements on
 * (tg_parallel_grain(), or tg_parallel_grain_heavy() for the costly kernels). */
void tg_run_unary(tg_unary_fn f, const float *x, float *y, int64_t n, int64_t grain);
/* The same for the binary kernels (same length, vector-scalar, scalar-vector) and the two unary
 * kernels with a scalar parameter. Every elementwise op reaches its kernels through these. */
void tg_run_vv(tg_binary_vv_fn f, const float *a, const float *b, float *y, int64_t n);
void tg_run_vs(tg_binary_vs_fn f, const float *a, float b, float *y, int64_t n);
void tg_run_sv(tg_binary_sv_fn f, float a, const float *b, float *y, int64_t n);
void tg_run_clamp(const float *x, float *y, int64_t n, float lo, float hi);
void tg_run_pow_scalar(const float *x, float *y, int64_t n, float e);
/* The kernel's bce_logits, its elementwise loss and gradient only (the kernel's own sum is not
 * returned: callers sum the loss array with tg_sum_floats, the same on every thread count). */
void tg_run_bce_logits(const float *z, const float *t, float *loss, float *grad, int64_t n,
                       float pw);
/* Same for a backward kernel gx = f(v, gy); with gy_uniform, gy points at one value that
 * stands for every element (the gradient of a sum), which is never materialized. */
void tg_run_unary_bwd(tg_unary_bwd_fn f, const float *v, const float *gy, bool gy_uniform,
                      float *gx, int64_t n, int64_t grain);
/* The same for clamp's and pow-by-a-scalar's backward kernels. */
void tg_run_clamp_bwd(const float *x, const float *gy, bool gy_uniform, float *gx, int64_t n,
                      float lo, float hi);
void tg_run_pow_scalar_bwd(const float *x, const float *gy, bool gy_uniform, float *gx, int64_t n,
                           float e);
/* The same for sigmoid's backward, which reads the saved output y and, rarely, the input x. */
void tg_run_sigmoid_bwd(const float *y, const float *x, const float *gy, bool gy_uniform, float *gx,
                        int64_t n);
/* Sum of n contiguous floats: the kernel's pairwise sum over fixed blocks, blocks spread over
 * threads, partials combined in a fixed order: the same bits for every thread count. */
float tg_sum_floats(const float *x, int64_t n);
/* tg_run_unary that also returns tg_sum_floats(y, n), bit for bit, from sums taken while each
 * block of y is still in registers (the kernels' map_sums), so y is not read again to be summed. */
float tg_run_unary_sum(tg_unary_fn f, const float *x, float *y, int64_t n, int64_t grain);
/* tg_sum_floats of n values that are never stored whole: make(ctx, start, len, buf) writes
 * values [start, start + len) into buf, one block at a time (so a block stays in the cache),
 * and the result has the bits tg_sum_floats gives for the whole array. False (and *out
 * untouched) only when a block buffer cannot be allocated. */
typedef void (*tg_block_fn)(void *ctx, int64_t start, int64_t len, float *buf);
bool tg_sum_mapped(int64_t n, tg_block_fn make, void *ctx, float *out);

#endif
