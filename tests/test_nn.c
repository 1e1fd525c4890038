/* Batched matmul, F.linear and the optimizers. Forward values are compared with products
 * computed in double; gradients with finite differences (gradcheck); optimizer steps with the
 * update formulas of PyTorch's documentation evaluated in double. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "gradcheck.h"
#include "parallel.h"
#include "ops/ops.h"

/* ---- matmul against a double-precision reference ---- */

/* Reference torch.matmul for contiguous row-major inputs of rank >= 1, in double. */
typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
} shape_t;

static int64_t numel_of(const shape_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->shape[i];
    return n;
}

/* Element of a lifted batched operand at (batch index vector, r, c) with broadcasting. */
static double at(const float *v, const shape_t *s, const int64_t *bidx, int nb, int64_t r,
                 int64_t c)
{
    int64_t rows = s->shape[s->ndim - 2], cols = s->shape[s->ndim - 1];
    int64_t off = 0, mul = rows * cols;
    for (int d = s->ndim - 3, k = nb - 1; d >= 0; d--, k--) {
        int64_t i = s->shape[d] == 1 ? 0 : bidx[k];
        off += i * mul;
        mul *= s->shape[d];
    }
    return v[off + r * cols + c];
}

static void check_matmul(int na, const int64_t *sa, int nb_, const int64_t *sb, bool transpose_b)
{
    tg_scope_begin(); /* owns every tensor made here */
    tg_tensor *a = tg_test_tensor(na, sa, 11, -1, 1);
    tg_tensor *b0 = tg_test_tensor(nb_, sb, 12, -1, 1);
    tg_tensor *b = b0;
    if (transpose_b && nb_ >= 2) { /* same values, read through a transposed view */
        tg_tensor *bt = tg_contiguous(tg_transpose(b0, -1, -2));
        b = tg_transpose(bt, -1, -2);
        assert_false(tg_is_contiguous(b));
    }
    tg_tensor *c = tg_matmul(a, b);
    assert_non_null(c);
    float *av = tg_test_values(a), *bv = tg_test_values(b), *cv = tg_test_values(c);
    /* lift to batched shapes */
    shape_t A = {na < 2 ? 2 : na, {0}}, B = {nb_ < 2 ? 2 : nb_, {0}};
    if (na == 1) {
        A.shape[0] = 1;
        A.shape[1] = sa[0];
    } else {
        memcpy(A.shape, sa, sizeof(int64_t) * (size_t)na);
    }
    if (nb_ == 1) {
        B.shape[0] = sb[0];
        B.shape[1] = 1;
    } else {
        memcpy(B.shape, sb, sizeof(int64_t) * (size_t)nb_);
    }
    int nbatch = (A.ndim > B.ndim ? A.ndim : B.ndim) - 2;
    int64_t bshape[TG_MAX_DIMS], batch = 1;
    for (int d = 0; d < nbatch; d++) {
        int ia = A.ndim - 2 - nbatch + d, ib = B.ndim - 2 - nbatch + d;
        int64_t x = ia >= 0 ? A.shape[ia] : 1, y = ib >= 0 ? B.shape[ib] : 1;
        bshape[d] = x == 1 ? y : x;
        batch *= bshape[d];
    }
    int64_t M = A.shape[A.ndim - 2], K = A.shape[A.ndim - 1], N = B.shape[B.ndim - 1];
    assert_int_equal(tg_numel(c), batch * M * N);
    for (int64_t bi = 0; bi < batch; bi++) {
        int64_t idx[TG_MAX_DIMS], rem = bi;
        for (int d = nbatch - 1; d >= 0; d--) {
            idx[d] = rem % bshape[d];
            rem /= bshape[d];
        }
        shape_t Ab = A, Bb = B;
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0;
                for (int64_t k = 0; k < K; k++)
                    s += at(av, &Ab, idx + (nbatch - (A.ndim - 2)), A.ndim - 2, m, k) *
                         at(bv, &Bb, idx + (nbatch - (B.ndim - 2)), B.ndim - 2, k, n);
                double got = cv[(bi * M + m) * N + n];
                assert_true(tg_test_close(got, s, 1e-5, 1e-5));
            }
    }
    (void)numel_of;
    free(av), free(bv), free(cv);
    tg_scope_end();
}

static void test_matmul_values(void **state)
{
    (void)state;
    check_matmul(1, (int64_t[]){5}, 1, (int64_t[]){5}, false);
    check_matmul(2, (int64_t[]){3, 5}, 1, (int64_t[]){5}, false);
    check_matmul(1, (int64_t[]){5}, 2, (int64_t[]){5, 4}, true);
    check_matmul(2, (int64_t[]){3, 5}, 2, (int64_t[]){5, 4}, true);
    check_matmul(2, (int64_t[]){70, 65}, 2, (int64_t[]){65, 80}, true); /* BLAS path */
    check_matmul(3, (int64_t[]){4, 3, 5}, 2, (int64_t[]){5, 2}, false);
    check_matmul(3, (int64_t[]){4, 3, 5}, 3, (int64_t[]){4, 5, 2}, true);
    check_matmul(4, (int64_t[]){2, 1, 3, 4}, 3, (int64_t[]){5, 4, 2}, true); /* broadcast batch */
    check_matmul(1, (int64_t[]){4}, 3, (int64_t[]){2, 4, 3}, false);
    check_matmul(3, (int64_t[]){2, 3, 4}, 1, (int64_t[]){4}, false);
    check_matmul(2, (int64_t[]){3, 4}, 3, (int64_t[]){2, 4, 5}, true);
    check_matmul(3, (int64_t[]){64, 16, 16}, 3, (int64_t[]){64, 16, 16}, false);
}

/* [rows, K] @ [K, N], the left operand read through a transposed view of a [K, rows] tensor
 * when transposed, against a double sum to within float rounding of the sum of |products|;
 * returns the result's values (caller frees). */
static float *product_values(int64_t rows, int64_t K, int64_t N, bool transposed)
{
    tg_scope_begin();
    tg_tensor *a = transposed
                       ? tg_transpose(tg_test_tensor(2, (int64_t[]){K, rows}, 13, -1, 1), 0, 1)
                       : tg_test_tensor(2, (int64_t[]){rows, K}, 13, -1, 1);
    tg_tensor *b = tg_test_tensor(2, (int64_t[]){K, N}, 14, -1, 1);
    tg_tensor *c = tg_matmul(a, b);
    assert_non_null(c);
    float *av = tg_test_values(tg_contiguous(a)), *bv = tg_test_values(b), *cv = tg_test_values(c);
    double *want = malloc(sizeof(double) * (size_t)(rows * N)),
           *mag = malloc(sizeof(double) * (size_t)(rows * N));
    assert_non_null(want);
    assert_non_null(mag);
    tg_test_matmul_ref(av, bv, rows, K, N, want, mag);
    for (int64_t i = 0; i < rows * N; i++)
        assert_true(fabs(cv[i] - want[i]) <= 1e-5 * mag[i] + 1e-6);
    free(av), free(bv), free(want), free(mag);
    tg_scope_end();
    return cv;
}

/* The product's floats at 1 and 3 threads are the same. */
static void same_product_on_threads(int64_t rows, int64_t K, int64_t N, bool transposed)
{
    tg_set_num_threads(1);
    float *one = product_values(rows, K, N, transposed);
    tg_set_num_threads(3);
    float *three = product_values(rows, K, N, transposed);
    tg_set_num_threads(0);
    assert_memory_equal(one, three, sizeof(float) * (size_t)(rows * N));
    free(one), free(three);
}

/* Tall products (K and N at most 64, more rows than that) run in blocks of rows on the thread
 * pool: blocks cut at the edges, batches, a transposed left operand, and the same floats
 * whatever the thread count (and one output column, which stays with sgemm). */
static void test_matmul_tall(void **state)
{
    (void)state;
    check_matmul(2, (int64_t[]){200, 10}, 2, (int64_t[]){10, 32}, false);
    check_matmul(2, (int64_t[]){129, 64}, 2, (int64_t[]){64, 64}, true);
    check_matmul(3, (int64_t[]){3, 65, 7}, 1, (int64_t[]){7}, false);
    check_matmul(3, (int64_t[]){2, 300, 5}, 3, (int64_t[]){2, 5, 3}, true);
    check_matmul(4, (int64_t[]){2, 1, 70, 4}, 3, (int64_t[]){3, 4, 9}, false);
    same_product_on_threads(1000, 33, 20, true);
}

/* Deep products (M and N at most 64, a longer K: a weight's gradient over a batch) sum slices
 * of K in fixed parts: K cut inside a slice and across parts (DEEP_PART is 4096), transposed
 * operands as x^T @ g reads them, batches, and the same floats whatever the thread count. */
static void test_matmul_deep(void **state)
{
    (void)state;
    check_matmul(2, (int64_t[]){10, 1000}, 2, (int64_t[]){1000, 32}, false);
    check_matmul(2, (int64_t[]){64, 65}, 2, (int64_t[]){65, 64}, true);
    check_matmul(3, (int64_t[]){3, 2, 130}, 2, (int64_t[]){130, 5}, true);
    check_matmul(4, (int64_t[]){2, 1, 7, 100}, 3, (int64_t[]){3, 100, 2}, false);
    free(product_values(12, 9000, 7, true));
    same_product_on_threads(16, 20000, 24, true);
}

/* tg_linear(x [rows, in], W [out, in], b) against a double sum to within float rounding of the
 * sum of |terms|, and with as_matmul bit for bit the floats of matmul(x, W^T) + b (a large
 * product is added onto the bias instead, as addmm does); returns y's values (caller frees). */
static float *linear_values(int64_t rows, int64_t in, int64_t out, uint64_t seed, bool as_matmul)
{
    tg_scope_begin();
    tg_tensor *x = tg_test_tensor(2, (int64_t[]){rows, in}, seed, -1, 1);
    tg_tensor *W = tg_test_tensor(2, (int64_t[]){out, in}, seed + 1, -1, 1);
    tg_tensor *b = tg_test_tensor(1, (int64_t[]){out}, seed + 2, -1, 1);
    tg_tensor *y = tg_linear(x, W, b), *ref = tg_add(tg_matmul(x, tg_transpose(W, 0, 1)), b);
    assert_non_null(y);
    assert_non_null(ref);
    float *xv = tg_test_values(x), *wv = tg_test_values(W), *bv = tg_test_values(b);
    float *yv = tg_test_values(y), *rv = tg_test_values(ref);
    if (as_matmul)
        assert_memory_equal(yv, rv, sizeof(float) * (size_t)(rows * out));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < out; j++) {
            double s = bv[j], mag = fabs(bv[j]);
            for (int64_t k = 0; k < in; k++)
                s += (double)xv[i * in + k] * wv[j * in + k],
                    mag += fabs(xv[i * in + k] * wv[j * in + k]);
            assert_true(fabs(yv[i * out + j] - s) <= 1e-5 * mag + 1e-6);
        }
    free(xv), free(wv), free(bv), free(rv);
    tg_scope_end();
    return yv;
}

/* tg_linear with a bias over a tall batch (the product in blocks of rows, the bias added on
 * top), and the same bits at 1 and 3 threads. */
static float *linear_tall_values(int threads)
{
    tg_set_num_threads(threads);
    float *yv = linear_values(300, 20, 17, 21, true);
    tg_set_num_threads(0);
    return yv;
}

/* [M, K] @ [K, N] with either operand read through a transposed view, against a double sum to
 * within float rounding of the sum of |products|; returns the result's values (caller frees). */
static float *large_product(int64_t M, int64_t K, int64_t N, bool ta, bool tb)
{
    tg_scope_begin();
    tg_tensor *a = ta ? tg_transpose(tg_test_tensor(2, (int64_t[]){K, M}, 31, -1, 1), 0, 1)
                      : tg_test_tensor(2, (int64_t[]){M, K}, 31, -1, 1);
    tg_tensor *b = tb ? tg_transpose(tg_test_tensor(2, (int64_t[]){N, K}, 32, -1, 1), 0, 1)
                      : tg_test_tensor(2, (int64_t[]){K, N}, 32, -1, 1);
    tg_tensor *c = tg_matmul(a, b);
    assert_non_null(c);
    float *av = tg_test_values(tg_contiguous(a)), *bv = tg_test_values(tg_contiguous(b));
    float *cv = tg_test_values(c);
    double *want = malloc(sizeof(double) * (size_t)(M * N)),
           *mag = malloc(sizeof(double) * (size_t)(M * N));
    assert_true(want && mag);
    tg_test_matmul_ref(av, bv, M, K, N, want, mag);
    for (int64_t i = 0; i < M * N; i++)
        if (!(fabs(cv[i] - want[i]) <= 1e-5 * mag[i] + 1e-6))
            fail_msg("[%lld, %lld] @ [%lld, %lld] (ta %d, tb %d): C[%lld] = %g, exact %g",
                     (long long)M, (long long)K, (long long)K, (long long)N, ta, tb, (long long)i,
                     cv[i], want[i]);
    free(av), free(bv), free(want), free(mag);
    tg_scope_end();
    return cv;
}

/* Large products on the kernel table's tiles (src/ops/gemm.c), forced on whatever OpenBLAS
 * runs (a family without tiles still goes to OpenBLAS): tiles cut at both edges, the inner
 * dimension past one block (256), more columns than one packed block of B (4096) and more rows
 * than one of A (3072), each operand transposed or not; the same floats at 1 and 3 threads;
 * tg_linear adding the product onto its bias; then the same products on OpenBLAS. */
static void test_matmul_tiles(void **state)
{
    (void)state;
    for (int mode = 1; mode >= 0; mode--) {
        tg_gemm_force_(mode);
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++)
                free(large_product(131, 520, 97, ta, tb));
        free(large_product(67, 260, 4100, false, true));
        free(large_product(3100, 70, 90, true, false));
        tg_set_num_threads(1);
        float *one = large_product(131, 520, 97, false, false);
        tg_set_num_threads(3);
        float *three = large_product(131, 520, 97, false, false);
        tg_set_num_threads(0);
        if (mode == 1 && tg_kern()->gemm_mr > 0) /* OpenBLAS's bits move with its threads */
            assert_memory_equal(one, three, sizeof(float) * 131 * 97);
        free(one), free(three);

        free(linear_values(130, 300, 90, 33, false));
    }
    tg_gemm_force_(-1);
}

static void same_values(tg_tensor *x, tg_tensor *y)
{
    assert_non_null(y);
    assert_int_equal(tg_numel(x), tg_numel(y));
    assert_memory_equal(tg_data(x), tg_data(y), sizeof(float) * (size_t)tg_numel(y));
}

/* x @ y against the product of their dense copies, bit for bit. */
static void same_as_dense(tg_tensor *x, tg_tensor *y)
{
    tg_tensor *p = tg_matmul(x, y);
    assert_non_null(p);
    same_values(p, tg_matmul(tg_contiguous(x), tg_contiguous(y)));
}

/* The gradients of a (and of b when it requires one) through sum(a @ b), whose gradient
 * reaches the product as one value broadcast, against the same backward from dense ones. */
static void uniform_backward(int64_t m, int64_t k, int64_t n, bool b_grad)
{
    tg_tensor *a = tg_requires_grad_(tg_randn(2, (int64_t[]){m, k}, 41), true);
    tg_tensor *b = tg_requires_grad_(tg_randn(2, (int64_t[]){k, n}, 42), b_grad);
    assert_int_equal(tg_backward(tg_sum(tg_matmul(a, b)), NULL, false), TG_OK);
    tg_tensor *ga = tg_clone(tg_grad(a)), *gb = b_grad ? tg_clone(tg_grad(b)) : NULL;
    tg_grad_reset(a), tg_grad_reset(b);
    assert_int_equal(tg_backward(tg_matmul(a, b), tg_ones(2, (int64_t[]){m, n}), false), TG_OK);
    assert_memory_equal(tg_data(ga), tg_data(tg_grad(a)), sizeof(float) * (size_t)(m * k));
    if (b_grad)
        assert_memory_equal(tg_data(gb), tg_data(tg_grad(b)), sizeof(float) * (size_t)(k * n));
}

/* A matrix that is one value broadcast, as the gradient of a sum is: the tiles fill their
 * panels with the value, OpenBLAS gets it written out (gemm.c), and paths other than
 * tg_sgemm_ (deep, tall, one column, small) read a dense copy. All give the floats of the
 * dense copy: on the left, on the right, one value per matrix of a batch, transposed. */
static void test_matmul_uniform(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *two = tg_from_data((float[]){1.5f, -0.3f}, 3, (int64_t[]){2, 1, 1});
    for (int mode = 1; mode >= 0; mode--) {
        tg_gemm_force_(mode);
        tg_tensor *u = tg_expand(tg_scalar(0.37f), 2, (int64_t[]){70, 80});
        tg_tensor *r = tg_randn(2, (int64_t[]){80, 90}, 7);
        same_as_dense(u, r);
        same_as_dense(tg_randn(2, (int64_t[]){90, 70}, 8), u);
        same_as_dense(tg_transpose(u, 0, 1), tg_randn(2, (int64_t[]){70, 300}, 9));
        same_as_dense(tg_expand(two, 3, (int64_t[]){2, 70, 80}), r);
        same_as_dense(u, tg_expand(tg_scalar(-2.0f), 2, (int64_t[]){80, 90}));
        same_as_dense(tg_narrow(u, 0, 0, 10), tg_randn(2, (int64_t[]){80, 5}, 10)); /* deep */
        same_as_dense(u, tg_randn(2, (int64_t[]){80, 1}, 11));                      /* a column */
        same_as_dense(tg_randn(2, (int64_t[]){100, 10}, 12),                        /* tall */
                      tg_expand(tg_scalar(0.5f), 2, (int64_t[]){10, 20}));
        same_as_dense(tg_narrow(u, 0, 0, 3), tg_narrow(r, 1, 0, 4)); /* small */
        /* tg_sgemm_ itself, a uniform operand given as leading dimension 0 */
        float *d = tg_data(r), v = -1.25f;
        tg_tensor *c0 = tg_zeros(2, (int64_t[]){70, 90}), *c1 = tg_zeros(2, (int64_t[]){80, 80});
        assert_true(tg_sgemm_(false, false, 70, 90, 80, &v, 0, d, 90, 0.0f, tg_data(c0), 90));
        assert_true(tg_sgemm_(false, true, 80, 80, 90, d, 90, &v, 0, 0.0f, tg_data(c1), 80));
        tg_tensor *full = tg_full(2, (int64_t[]){90, 90}, v);
        same_values(c0, tg_matmul(tg_narrow(tg_narrow(full, 0, 0, 70), 1, 0, 80), r));
        same_values(c1, tg_matmul(r, tg_narrow(full, 1, 0, 80)));
        uniform_backward(70, 80, 90, true);
        uniform_backward(300, 130, 70, false);
        uniform_backward(10, 100, 5, true); /* deep and tall products */
    }
    tg_gemm_force_(-1);
    tg_scope_end();
}

static void test_linear_tall(void **state)
{
    (void)state;
    float *one = linear_tall_values(1), *three = linear_tall_values(3);
    assert_memory_equal(one, three, sizeof(float) * 300 * 17);
    free(one), free(three);
}

static void test_matmul_names_and_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = tg_requires_grad_(tg_ones(3, (int64_t[]){2, 3, 4}), true);
    tg_tensor *m = tg_requires_grad_(tg_ones(2, (int64_t[]){3, 4}), true);
    assert_string_equal(tg_grad_fn_name(tg_matmul(a, tg_ones(2, (int64_t[]){4, 5}))),
                        "UnsafeViewBackward0");
    assert_string_equal(tg_grad_fn_name(tg_matmul(m, tg_ones(3, (int64_t[]){2, 4, 5}))),
                        "CloneBackward0");
    /* PyTorch 1.13 returns output.mT().contiguous() there: the transpose itself when it is
     * already contiguous, and bmm's view for a 3-D right operand transposed in memory:
     *   m = torch.ones(3, 4, requires_grad=True); r = torch.ones(1, 4, requires_grad=True)
     *   torch.matmul(m, torch.ones(2, 4, 1)).grad_fn -> TransposeBackward0 (one column)
     *   torch.matmul(r, torch.ones(2, 2, 4, 5)).grad_fn -> TransposeBackward0 (one row)
     *   torch.matmul(m, torch.ones(2, 5, 4).transpose(1, 2)).grad_fn -> UnsafeViewBackward0 */
    tg_tensor *r = tg_requires_grad_(tg_ones(2, (int64_t[]){1, 4}), true);
    assert_string_equal(tg_grad_fn_name(tg_matmul(m, tg_ones(3, (int64_t[]){2, 4, 1}))),
                        "TransposeBackward0");
    assert_string_equal(tg_grad_fn_name(tg_matmul(r, tg_ones(4, (int64_t[]){2, 2, 4, 5}))),
                        "TransposeBackward0");
    assert_string_equal(
        tg_grad_fn_name(tg_matmul(m, tg_transpose(tg_ones(3, (int64_t[]){2, 5, 4}), 1, 2))),
        "UnsafeViewBackward0");
    assert_null(tg_matmul(a, tg_ones(3, (int64_t[]){3, 4, 5})));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_non_null(strstr(tg_last_error(), "[2, 3, 4]"));
    assert_non_null(strstr(tg_last_error(), "[3, 4, 5]"));
    assert_null(tg_matmul(a, tg_ones(2, (int64_t[]){5, 2})));
    assert_non_null(strstr(tg_last_error(), "cannot be multiplied"));
    assert_null(tg_matmul(tg_scalar(1.0f), m));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    tg_scope_end();
}

/* ---- gradients ---- */

static tg_tensor *f_matmul(tg_tensor *const *x, void *ctx)
{
    (void)ctx;
    return tg_matmul(x[0], x[1]);
}

static tg_tensor *f_linear(tg_tensor *const *x, void *ctx)
{
    return tg_linear(x[0], x[1], ctx ? x[2] : NULL);
}

static gc_input in(int ndim, const int64_t *shape, gc_layout layout)
{
    gc_input g = {.ndim = ndim, .layout = layout};
    memcpy(g.shape, shape, sizeof(int64_t) * (size_t)ndim);
    return g;
}

static void test_matmul_gradcheck(void **state)
{
    (void)state;
    struct {
        int na, nb;
        int64_t sa[4], sb[4];
        gc_layout la, lb;
    } cases[] = {
        {1, 1, {4}, {4}, GC_CONTIGUOUS, GC_STRIDED},
        {2, 1, {3, 4}, {4}, GC_TRANSPOSED, GC_CONTIGUOUS},
        {1, 2, {4}, {4, 3}, GC_CONTIGUOUS, GC_TRANSPOSED},
        {2, 2, {3, 4}, {4, 5}, GC_TRANSPOSED, GC_TRANSPOSED},
        {3, 2, {2, 3, 4}, {4, 5}, GC_CONTIGUOUS, GC_NARROWED},
        {4, 3, {2, 1, 3, 4}, {5, 4, 2}, GC_CONTIGUOUS, GC_TRANSPOSED},
        {3, 3, {2, 3, 4}, {1, 4, 2}, GC_EXPANDED, GC_CONTIGUOUS},
        {2, 3, {3, 4}, {2, 4, 5}, GC_CONTIGUOUS, GC_CONTIGUOUS},
        {1, 3, {4}, {2, 4, 3}, GC_CONTIGUOUS, GC_CONTIGUOUS},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        gc_input x[2] = {in(cases[i].na, cases[i].sa, cases[i].la),
                         in(cases[i].nb, cases[i].sb, cases[i].lb)};
        char name[64];
        snprintf(name, sizeof name, "matmul case %zu", i);
        assert_true(gc_check(name, f_matmul, NULL, 2, x, 100 + i));
    }
}

static void test_linear(void **state)
{
    (void)state;
    int one = 1;
    gc_input x2[3] = {in(2, (int64_t[]){5, 3}, GC_CONTIGUOUS),
                      in(2, (int64_t[]){4, 3}, GC_CONTIGUOUS),
                      in(1, (int64_t[]){4}, GC_CONTIGUOUS)};
    assert_true(gc_check("linear 2-D bias", f_linear, &one, 3, x2, 1));
    assert_true(gc_check("linear 2-D", f_linear, NULL, 2, x2, 2));
    gc_input xt[3] = {in(2, (int64_t[]){5, 3}, GC_TRANSPOSED),
                      in(2, (int64_t[]){4, 3}, GC_TRANSPOSED), in(1, (int64_t[]){4}, GC_STRIDED)};
    assert_true(gc_check("linear strided", f_linear, &one, 3, xt, 3));
    gc_input x3[3] = {in(3, (int64_t[]){2, 5, 3}, GC_CONTIGUOUS),
                      in(2, (int64_t[]){4, 3}, GC_CONTIGUOUS),
                      in(1, (int64_t[]){4}, GC_CONTIGUOUS)};
    assert_true(gc_check("linear 3-D bias", f_linear, &one, 3, x3, 4));
    gc_input x1[3] = {in(1, (int64_t[]){3}, GC_CONTIGUOUS), in(2, (int64_t[]){4, 3}, GC_CONTIGUOUS),
                      in(1, (int64_t[]){4}, GC_CONTIGUOUS)};
    assert_true(gc_check("linear 1-D bias", f_linear, &one, 3, x1, 5));
    gc_input x3t[3] = {in(3, (int64_t[]){2, 5, 3}, GC_TRANSPOSED),
                       in(2, (int64_t[]){4, 3}, GC_CONTIGUOUS),
                       in(1, (int64_t[]){4}, GC_CONTIGUOUS)};
    assert_true(gc_check("linear 3-D strided bias", f_linear, &one, 3, x3t, 6));
    gc_input x4[3] = {in(4, (int64_t[]){2, 1, 5, 3}, GC_CONTIGUOUS),
                      in(2, (int64_t[]){4, 3}, GC_CONTIGUOUS),
                      in(1, (int64_t[]){4}, GC_CONTIGUOUS)};
    assert_true(gc_check("linear 4-D bias", f_linear, &one, 3, x4, 7));

    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_ones(2, (int64_t[]){2, 3}), true);
    tg_tensor *W = tg_ones(2, (int64_t[]){4, 3}), *b = tg_zeros(1, (int64_t[]){4});
    tg_tensor *y = tg_linear(x, W, b);
    assert_string_equal(tg_grad_fn_name(y), "AddmmBackward0");
    assert_float_equal(tg_item(tg_sum(y)), 24.0f, 0.0f);
    /* The graph PyTorch 1.13 builds for each input rank and layout (F.linear with a bias). */
    tg_tensor *u = tg_requires_grad_(tg_ones(3, (int64_t[]){5, 2, 3}), true);
    tg_tensor *y3 = tg_linear(u, W, b);
    assert_string_equal(tg_grad_fn_name(y3), "ViewBackward0");
    assert_int_equal(tg_ndim(y3), 3);
    assert_int_equal(tg_shape(y3)[2], 4);
    assert_float_equal(tg_item(tg_sum(y3)), 120.0f, 0.0f);
    assert_string_equal(tg_grad_fn_name(tg_linear(tg_transpose(u, 0, 1), W, b)), "AddBackward0");
    assert_string_equal(tg_grad_fn_name(tg_linear(tg_reshape(u, 4, (int64_t[]){1, 5, 2, 3}), W, b)),
                        "AddBackward0");
    assert_string_equal(tg_grad_fn_name(tg_linear(u, W, NULL)), "UnsafeViewBackward0");
    assert_string_equal(
        tg_grad_fn_name(tg_linear(tg_requires_grad_(tg_ones(1, (int64_t[]){3}), true), W, b)),
        "AddBackward0");
    assert_null(tg_linear(x, tg_ones(2, (int64_t[]){4, 2}), b));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_string_equal(tg_last_error(), "tg_linear: input [2, 3] and weight [4, 2] do not fit "
                                         "([..., in] and [out, in])");
    assert_null(tg_linear(x, W, tg_zeros(1, (int64_t[]){3})));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_string_equal(tg_last_error(),
                        "tg_linear: bias [3] does not match weight [4, 3] (want [4])");
    assert_non_null(tg_linear(x, W, b)); /* a success leaves no message */
    assert_string_equal(tg_last_error(), "");
    /* The bias is written into every row before the product is added: an odd row count (the
     * doubling copies end on a partial block) and a width of 1 (one fill). */
    for (int64_t width = 1; width <= 3; width += 2) {
        const float bias[3] = {1.5f, -2.25f, 3.0f};
        tg_tensor *z = tg_zeros(2, (int64_t[]){37, 2});
        tg_tensor *yz = tg_linear(z, tg_rand(2, (int64_t[]){width, 2}, 3),
                                  tg_from_data(bias, 1, (int64_t[]){width}));
        assert_int_equal(tg_shape(yz)[0], 37);
        for (int64_t i = 0; i < 37 * width; i++)
            assert_true(tg_data(yz)[i] == bias[i % width]);
    }
    /* No rows: nothing is written, however wide the bias (wider than a small storage here). */
    tg_tensor *b40 = tg_ones(1, (int64_t[]){40}), *w40 = tg_ones(2, (int64_t[]){40, 2});
    tg_tensor *y0 = tg_linear(tg_zeros(2, (int64_t[]){0, 2}), w40, b40);
    assert_non_null(y0);
    assert_int_equal(tg_shape(y0)[0], 0);
    assert_int_equal(tg_shape(y0)[1], 40);
    tg_tensor *y03 = tg_linear(tg_zeros(3, (int64_t[]){2, 0, 2}), w40, b40);
    assert_non_null(y03);
    assert_int_equal(tg_numel(y03), 0);
    tg_scope_end();
}

/* ---- optimizers ---- */

#define NP 5

/* A parameter p with a fixed gradient function g(p, step) = p * 0.5 + c_i + 0.1 * step, so the
 * gradient changes between steps and depends on the parameter. */
static double grad_of(double p, int i, int step)
{
    return 0.5 * p + (i - 2) * 0.3 + 0.1 * step;
}

static void set_grads(tg_tensor *p, int step)
{
    float v[NP], g[NP];
    tg_copy_to(p, v, NP);
    for (int i = 0; i < NP; i++)
        g[i] = (float)grad_of(v[i], i, step);
    tg_grad_reset(p);
    /* accumulate the values as a gradient through a tiny graph: sum(p * g) has d/dp = g */
    tg_scope_begin();
    tg_tensor *gt = tg_from_data(g, 1, (int64_t[]){NP});
    assert_int_equal(tg_backward(tg_sum(tg_mul(p, gt)), NULL, false), TG_OK);
    tg_scope_end();
}

static const float P0[NP] = {0.5f, -1.0f, 2.0f, 0.0f, -0.25f};

static void sgd_reference(double *p, int steps, const tg_sgd_options *o)
{
    double buf[NP] = {0};
    for (int t = 1; t <= steps; t++)
        for (int i = 0; i < NP; i++) {
            double d = (double)(float)grad_of((float)p[i], i, t) + o->weight_decay * p[i];
            if (o->momentum != 0) {
                buf[i] = t == 1 ? d : o->momentum * buf[i] + (1 - o->dampening) * d;
                d = o->nesterov ? d + o->momentum * buf[i] : buf[i];
            }
            p[i] -= o->lr * d;
        }
}

static void adam_reference(double *p, int steps, const tg_adam_options *o)
{
    double m[NP] = {0}, v[NP] = {0};
    for (int t = 1; t <= steps; t++)
        for (int i = 0; i < NP; i++) {
            double g = (double)(float)grad_of((float)p[i], i, t);
            if (o->decoupled)
                p[i] *= 1 - o->lr * o->weight_decay;
            else
                g += o->weight_decay * p[i];
            m[i] = o->beta1 * m[i] + (1 - o->beta1) * g;
            v[i] = o->beta2 * v[i] + (1 - o->beta2) * g * g;
            double bc1 = 1 - pow(o->beta1, t), bc2 = 1 - pow(o->beta2, t);
            p[i] -= o->lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + o->eps);
        }
}

static void run_and_compare(tg_optimizer *opt, tg_tensor *p, const double *want, int steps)
{
    for (int t = 1; t <= steps; t++) {
        set_grads(p, t);
        assert_int_equal(tg_optimizer_step(opt), TG_OK);
    }
    float got[NP];
    tg_copy_to(p, got, NP);
    for (int i = 0; i < NP; i++)
        assert_true(tg_test_close(got[i], want[i], 1e-4, 1e-6));
}

static void test_sgd_variants(void **state)
{
    (void)state;
    tg_sgd_options variants[4];
    for (int k = 0; k < 4; k++)
        tg_sgd_options_init(&variants[k]);
    variants[1].momentum = 0.9f;
    variants[1].dampening = 0.1f;
    variants[2].momentum = 0.9f;
    variants[2].nesterov = true;
    variants[2].weight_decay = 0.01f;
    variants[3].lr = 0.1f;
    variants[3].weight_decay = 0.05f;
    for (int k = 0; k < 4; k++) {
        tg_tensor *p = tg_requires_grad_(tg_from_data(P0, 1, (int64_t[]){NP}), true);
        tg_optimizer *opt = tg_sgd_new(&p, 1, &variants[k]);
        assert_non_null(opt);
        double want[NP];
        for (int i = 0; i < NP; i++)
            want[i] = P0[i];
        sgd_reference(want, 6, &variants[k]);
        run_and_compare(opt, p, want, 6);
        tg_optimizer_free(opt);
        tg_release(p);
    }
}

static void test_adam_variants(void **state)
{
    (void)state;
    tg_adam_options variants[3];
    tg_adam_options_init(&variants[0]);
    tg_adam_options_init(&variants[1]);
    variants[1].lr = 0.05f;
    variants[1].weight_decay = 0.1f;
    tg_adamw_options_init(&variants[2]);
    variants[2].lr = 0.05f;
    for (int k = 0; k < 3; k++) {
        tg_tensor *p = tg_requires_grad_(tg_from_data(P0, 1, (int64_t[]){NP}), true);
        tg_optimizer *opt = tg_adam_new(&p, 1, &variants[k]);
        assert_non_null(opt);
        double want[NP];
        for (int i = 0; i < NP; i++)
            want[i] = P0[i];
        adam_reference(want, 8, &variants[k]);
        run_and_compare(opt, p, want, 8);
        tg_optimizer_free(opt);
        tg_release(p);
    }
}

/* The update loops are written for the vectorizer; every element must still come out with the
 * bits of PyTorch's formulas evaluated one float operation at a time, as here, for each SGD
 * case (plain, momentum with dampening, Nesterov from its first step, weight decay) and for
 * Adam and AdamW, over several steps, on a length with a vector tail. */
/* PyTorch's scalars are Python floats, each rounded to float once where it meets a tensor;
 * 1 - dampening, 1 - beta, the bias corrections, the step size and 1 - lr wd it computes in
 * double first. */
static void float_sgd(float *p, float *b, const float *g, int64_t n, const tg_sgd_options *o,
                      bool first)
{
    const float wd = (float)o->weight_decay, mu = (float)o->momentum, lr = (float)o->lr;
    const float keep = (float)(1.0 - o->dampening);
    for (int64_t k = 0; k < n; k++) {
        float d = g[k] + wd * p[k];
        if (o->momentum != 0.0) {
            b[k] = first ? d : mu * b[k] + keep * d;
            d = o->nesterov ? d + mu * b[k] : b[k];
        }
        p[k] -= lr * d;
    }
}

static void float_adam(float *p, float *m, float *v, const float *g, int64_t n,
                       const tg_adam_options *o, int t)
{
    const float b1 = (float)o->beta1, b2 = (float)o->beta2, eps = (float)o->eps;
    const float c1 = (float)(1.0 - o->beta1), c2 = (float)(1.0 - o->beta2);
    const float wd = (float)o->weight_decay;
    float bc2s = (float)sqrt(1.0 - pow(o->beta2, t));
    float step = (float)(o->lr / (1.0 - pow(o->beta1, t)));
    float shrink = (float)(1.0 - o->lr * o->weight_decay);
    for (int64_t k = 0; k < n; k++) {
        float gk = g[k];
        if (o->decoupled)
            p[k] *= shrink;
        else
            gk += wd * p[k];
        m[k] = b1 * m[k] + c1 * gk;
        v[k] = b2 * v[k] + c2 * gk * gk;
        p[k] -= step * m[k] / (sqrtf(v[k]) / bc2s + eps); /* addcdiv: (value * m) / denom */
    }
}

static void test_optimizers_match_float_formulas(void **state)
{
    (void)state;
    enum { N = 1003, STEPS = 4, CASES = 6 };
    float *want = malloc(N * sizeof *want), *b1 = calloc(N, sizeof *b1), *b2 = calloc(N, 4);
    float *g = malloc(N * sizeof *g), *got = malloc(N * sizeof *got);
    assert_true(want && b1 && b2 && g && got);
    for (int c = 0; c < CASES; c++) {
        tg_sgd_options so;
        tg_sgd_options_init(&so);
        tg_adam_options ao;
        c == 5 ? tg_adamw_options_init(&ao) : tg_adam_options_init(&ao);
        if (c == 1)
            so.momentum = 0.9f, so.dampening = 0.1f;
        if (c == 2)
            so.momentum = 0.8f, so.nesterov = true, so.weight_decay = 0.01f;
        if (c == 3)
            so.lr = 0.1f, so.weight_decay = 0.05f;
        if (c == 4)
            ao.lr = 0.05f, ao.weight_decay = 0.1f;
        tg_tensor *p = tg_requires_grad_(tg_randn(1, (int64_t[]){N}, 40 + (uint64_t)c), true);
        tg_copy_to(p, want, N);
        memset(b1, 0, N * sizeof *b1), memset(b2, 0, N * sizeof *b2);
        tg_optimizer *opt = c < 4 ? tg_sgd_new(&p, 1, &so) : tg_adam_new(&p, 1, &ao);
        assert_non_null(opt);
        for (int t = 1; t <= STEPS; t++) {
            for (int64_t k = 0; k < N; k++)
                g[k] = (float)sin(0.37 * (double)k + t) - 0.25f * want[k];
            tg_scope_begin(); /* d/dp sum(p * g) = g, exactly */
            tg_tensor *gt = tg_from_data(g, 1, (int64_t[]){N});
            assert_int_equal(tg_backward(tg_sum(tg_mul(p, gt)), NULL, false), TG_OK);
            tg_scope_end();
            assert_int_equal(tg_optimizer_step(opt), TG_OK);
            tg_optimizer_zero_grad(opt, true);
            if (c < 4)
                float_sgd(want, b1, g, N, &so, t == 1);
            else
                float_adam(want, b1, b2, g, N, &ao, t);
        }
        tg_copy_to(p, got, N);
        for (int64_t k = 0; k < N; k++)
            if (memcmp(&got[k], &want[k], sizeof(float)) != 0)
                fail_msg("case %d element %lld: %a, formula %a", c, (long long)k, got[k], want[k]);
        tg_optimizer_free(opt);
        tg_release(p);
    }
    free(want), free(b1), free(b2), free(g), free(got);
}

/* Ten steps of opt on p (8 values) with the exact gradients g[k] = ((7k + 3t) % 11 - 5) / 8 of
 * step t: d/dp sum(p * g) = g, exactly. */
static void ten_exact_steps(tg_optimizer *opt, tg_tensor *p)
{
    for (int t = 1; t <= 10; t++) {
        float g[8];
        for (int k = 0; k < 8; k++)
            g[k] = (float)((k * 7 + t * 3) % 11 - 5) * 0.125f;
        tg_scope_begin();
        assert_int_equal(
            tg_backward(tg_sum(tg_mul(p, tg_from_data(g, 1, (int64_t[]){8}))), NULL, false), TG_OK);
        tg_scope_end();
        assert_int_equal(tg_optimizer_step(opt), TG_OK);
        tg_optimizer_zero_grad(opt, true);
    }
}

/* p's 8 values must have the bits PyTorch gave. */
static void expect_bits(tg_tensor *p, const float *want, const char *what, int c)
{
    float got[8];
    tg_copy_to(p, got, 8);
    for (int k = 0; k < 8; k++)
        if (memcmp(&got[k], &want[k], sizeof(float)) != 0)
            fail_msg("case %d (%s) element %d: %a, PyTorch %a", c, what, k, got[k], want[k]);
}

/* Ten steps of Adam and AdamW on exact gradients, against the bits PyTorch 1.13 gives for
 * torch.optim.Adam(lr=0.05, weight_decay=0.1) and torch.optim.AdamW(lr=0.3, betas=(0.6, 0.7),
 * eps=1e-2, weight_decay=0.33), each option given the float below as a Python float, and for
 * torch.optim.Adam() and AdamW() with their defaults (run with ATEN_CPU_CAPABILITY=default,
 * where PyTorch rounds every operation separately). */
static void test_adam_matches_pytorch_bits(void **state)
{
    (void)state;
    static const float p0[8] = {0.5f, -1.0f, 2.0f, 0.0f, -0.25f, 1.5f, -3.0f, 0.75f};
    static const float want[4][8] = {
        {0x1.cbe96cp-2f, -0x1.eaed5ep-1f, 0x1.b13b02p+0f, 0x1.47e8f0p-3f, -0x1.33c424p-2f,
         0x1.4f68f6p+0f, -0x1.550f00p+1f, 0x1.5a61c8p-1f},
        {-0x1.541c50p-7f, -0x1.1ff364p-2f, 0x1.7535e8p-2f, 0x1.8fb9bep-2f, -0x1.275e64p-3f,
         0x1.d250ccp-2f, -0x1.8532b0p-1f, 0x1.6848f8p-3f},
        {0x1.002a68p-1f, -0x1.0051fep+0f, 0x1.ff3d52p+0f, 0x1.bb1fd4p-9f, -0x1.01a760p-2f,
         0x1.800e06p+0f, -0x1.7fb7c8p+1f, 0x1.800300p-1f},
        {0x1.0023d8p-1f, -0x1.004b6ep+0f, 0x1.ff3032p+0f, 0x1.bb18eap-9f, -0x1.01a0cap-2f,
         0x1.80042ep+0f, -0x1.7fadf0p+1f, 0x1.7ff928p-1f}};
    for (int w = 0; w < 4; w++) {
        tg_adam_options o;
        if (w == 2) {
            tg_adam_options_init(&o);
        } else if (w == 3) {
            tg_adamw_options_init(&o);
        } else if (w == 0) {
            tg_adam_options_init(&o);
            o.lr = 0.05f, o.weight_decay = 0.1f;
        } else {
            tg_adamw_options_init(&o);
            o.lr = 0.3f, o.beta1 = 0.6f, o.beta2 = 0.7f, o.eps = 1e-2f, o.weight_decay = 0.33f;
        }
        tg_tensor *p = tg_requires_grad_(tg_from_data(p0, 1, (int64_t[]){8}), true);
        tg_optimizer *opt = tg_adam_new(&p, 1, &o);
        assert_non_null(opt);
        ten_exact_steps(opt, p);
        expect_bits(p, want[w], o.decoupled ? "AdamW" : "Adam", w);
        tg_optimizer_free(opt);
        tg_release(p);
    }
}

/* Ten steps of SGD on exact gradients, against the bits PyTorch 1.13 gives (with
 * ATEN_CPU_CAPABILITY=default, as above) for torch.optim.SGD(lr=0.05, momentum=0.9,
 * dampening=0.1, weight_decay=0.01), the same with nesterov=True and no dampening, and
 * SGD(lr=0.1, weight_decay=0.05). A multiply and add fused by the compiler (clang does it within
 * an expression on a target with FMA) changes these bits. */
static void test_sgd_matches_pytorch_bits(void **state)
{
    (void)state;
    static const float p0[8] = {0.5f, -1.0f, 2.0f, 0.0f, -0.25f, 1.5f, -3.0f, 0.75f};
    static const float want[3][8] = {
        {0x1.c198fep-2f, -0x1.05c75ap+0f, 0x1.d4017ep+0f, 0x1.79a1cep-3f, -0x1.5c1db6p-2f,
         0x1.82f86cp+0f, -0x1.6c1edap+1f, 0x1.84e14cp-1f},
        {0x1.9702d0p-2f, -0x1.f83c44p-1f, 0x1.cfa592p+0f, 0x1.9f0d44p-3f, -0x1.437692p-2f,
         0x1.7c55e4p+0f, -0x1.69477cp+1f, 0x1.892aeep-1f},
        {0x1.a75aacp-2f, -0x1.d9c412p-1f, 0x1.e10eaap+0f, 0x1.ec59e8p-5f, -0x1.ca78f4p-3f,
         0x1.636796p+0f, -0x1.66f796p+1f, 0x1.6ce1a0p-1f}};
    for (int c = 0; c < 3; c++) {
        tg_sgd_options o;
        tg_sgd_options_init(&o);
        if (c < 2)
            o.lr = 0.05, o.momentum = 0.9, o.weight_decay = 0.01;
        if (c == 0)
            o.dampening = 0.1;
        if (c == 1)
            o.nesterov = true;
        if (c == 2)
            o.lr = 0.1, o.weight_decay = 0.05;
        tg_tensor *p = tg_requires_grad_(tg_from_data(p0, 1, (int64_t[]){8}), true);
        tg_optimizer *opt = tg_sgd_new(&p, 1, &o);
        assert_non_null(opt);
        ten_exact_steps(opt, p);
        expect_bits(p, want[c], "SGD", c);
        tg_optimizer_free(opt);
        tg_release(p);
    }
}

/* Without weight decay PyTorch adds nothing to the gradient, so an infinite parameter stays
 * infinite; adding 0 * p would make it NaN. Two steps with grads {1, -1, 0.5, 0.25}; the values
 * PyTorch 1.13 gives for SGD(lr=0.125), SGD(lr=0.125, momentum=0.5), the same with
 * nesterov=True, and Adam(lr=0.1). */
static void test_no_weight_decay_keeps_infinite_parameters(void **state)
{
    (void)state;
    static const float p0[4] = {INFINITY, -INFINITY, 1.0f, 0.5f};
    static const float g[4] = {1.0f, -1.0f, 0.5f, 0.25f};
    static const float want[4][4] = {{INFINITY, -INFINITY, 0x1.cp-1f, 0x1.cp-2f},
                                     {INFINITY, -INFINITY, 0x1.bp-1f, 0x1.bp-2f},
                                     {INFINITY, -INFINITY, 0x1.98p-1f, 0x1.98p-2f},
                                     {INFINITY, -INFINITY, 0x1.99999ap-1f, 0x1.333334p-2f}};
    for (int c = 0; c < 4; c++) {
        tg_tensor *p = tg_requires_grad_(tg_from_data(p0, 1, (int64_t[]){4}), true);
        tg_sgd_options so;
        tg_sgd_options_init(&so);
        so.lr = 0.125, so.momentum = c == 1 || c == 2 ? 0.5 : 0.0, so.nesterov = c == 2;
        tg_adam_options ao;
        tg_adam_options_init(&ao);
        ao.lr = 0.1;
        tg_optimizer *opt = c < 3 ? tg_sgd_new(&p, 1, &so) : tg_adam_new(&p, 1, &ao);
        assert_non_null(opt);
        for (int t = 1; t <= 2; t++) {
            tg_scope_begin(); /* d/dp sum(p * g) = g, exactly */
            assert_int_equal(
                tg_backward(tg_sum(tg_mul(p, tg_from_data(g, 1, (int64_t[]){4}))), NULL, false),
                TG_OK);
            tg_scope_end();
            assert_int_equal(tg_optimizer_step(opt), TG_OK);
            tg_optimizer_zero_grad(opt, true);
        }
        float got[4];
        tg_copy_to(p, got, 4);
        for (int k = 0; k < 4; k++)
            if (memcmp(&got[k], &want[c][k], sizeof(float)) != 0)
                fail_msg("case %d element %d: %a, PyTorch %a", c, k, got[k], want[c][k]);
        tg_optimizer_free(opt);
        tg_release(p);
    }
}

/* A large parameter's update is split across threads; every element must come out with the
 * same bits as on one thread, through several steps of SGD with Nesterov momentum and AdamW. */
static float *trained_bits(bool adam, int threads, int64_t n)
{
    tg_set_num_threads(threads);
    tg_tensor *p = tg_requires_grad_(tg_randn(1, &n, 21), true);
    tg_sgd_options so;
    tg_sgd_options_init(&so);
    so.momentum = 0.9f, so.nesterov = true, so.weight_decay = 0.01f;
    tg_adam_options ao;
    tg_adamw_options_init(&ao);
    tg_optimizer *opt = adam ? tg_adam_new(&p, 1, &ao) : tg_sgd_new(&p, 1, &so);
    assert_non_null(opt);
    for (int step = 0; step < 3; step++) {
        tg_scope_begin(); /* grad = -sin(p) r: changes with p and with the step */
        tg_tensor *r = tg_rand(1, &n, 30 + (uint64_t)step);
        assert_int_equal(tg_backward(tg_sum(tg_mul(tg_cos(p), r)), NULL, false), TG_OK);
        tg_scope_end();
        assert_int_equal(tg_optimizer_step(opt), TG_OK);
        tg_optimizer_zero_grad(opt, true);
    }
    float *out = tg_test_values(p);
    tg_optimizer_free(opt);
    tg_release(p);
    tg_set_num_threads(0);
    return out;
}

static void test_optimizers_same_bits_on_threads(void **state)
{
    (void)state;
    const int64_t n = 100003;
    for (int adam = 0; adam < 2; adam++) {
        float *one = trained_bits(adam, 1, n), *three = trained_bits(adam, 3, n);
        assert_memory_equal(one, three, sizeof(float) * (size_t)n);
        free(one), free(three);
    }
}

static void test_optimizer_errors_and_zero_grad(void **state)
{
    (void)state;
    tg_tensor *frozen = tg_ones(1, (int64_t[]){3});
    assert_null(tg_sgd_new(&frozen, 1, NULL));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "does not require grad"));
    tg_requires_grad_(frozen, true);
    tg_tensor *nonleaf = tg_mul_scalar(frozen, 2.0f);
    assert_null(tg_adam_new(&nonleaf, 1, NULL));
    assert_non_null(strstr(tg_last_error(), "not a leaf"));

    tg_tensor *twice[3] = {frozen, nonleaf, frozen};
    twice[1] = tg_requires_grad_(tg_zeros(1, (int64_t[]){2}), true);
    assert_null(tg_sgd_new(twice, 3, NULL));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "parameters 0 and 2 are the same tensor"));
    assert_null(tg_adam_new(twice, 3, NULL));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    tg_release(twice[1]);

    assert_null(tg_sgd_new(NULL, 0, NULL));
    assert_non_null(strstr(tg_last_error(), "no parameters given"));
    /* a leaf that is a strided view: its gradient would not line up with its memory */
    tg_tensor *square = tg_zeros(2, (int64_t[]){2, 3});
    tg_tensor *across = tg_requires_grad_(tg_transpose(square, 0, 1), true);
    assert_null(tg_adam_new(&across, 1, NULL));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "parameter 0 is not contiguous"));
    tg_release(across), tg_release(square);
    /* option values PyTorch refuses, refused here too, naming them */
    tg_sgd_options so;
    tg_sgd_options_init(&so);
    so.lr = -0.5;
    assert_null(tg_sgd_new(&frozen, 1, &so));
    assert_non_null(strstr(tg_last_error(), "invalid options (lr -0.5"));
    tg_sgd_options_init(&so);
    so.nesterov = true; /* without momentum */
    assert_null(tg_sgd_new(&frozen, 1, &so));
    assert_non_null(strstr(tg_last_error(), "nesterov needs momentum > 0"));
    tg_adam_options ao;
    tg_adam_options_init(&ao);
    ao.beta2 = 1.0;
    assert_null(tg_adam_new(&frozen, 1, &ao));
    assert_non_null(strstr(tg_last_error(), "betas (0.9, 1)"));
    tg_adamw_options_init(&ao);
    ao.eps = NAN;
    assert_null(tg_adam_new(&frozen, 1, &ao));
    assert_int_equal(tg_last_status(), TG_EINVAL);

    tg_optimizer *opt = tg_sgd_new(&frozen, 1, NULL);
    assert_non_null(opt);
    tg_scope_begin(); /* releases the temporaries below */
    tg_backward(tg_sum(tg_mul_scalar(frozen, 3.0f)), NULL, false);
    tg_optimizer_zero_grad(opt, false);
    assert_non_null(tg_grad(frozen));
    assert_float_equal(tg_item(tg_sum(tg_grad(frozen))), 0.0f, 0.0f);
    tg_optimizer_zero_grad(opt, true);
    assert_null(tg_grad(frozen));
    assert_int_equal(tg_optimizer_step(opt), TG_OK); /* no grad: nothing moves */
    assert_float_equal(tg_item(tg_sum(frozen)), 3.0f, 0.0f);
    tg_scope_end();
    tg_optimizer_free(opt);
    tg_release(nonleaf), tg_release(frozen);
}

/* A step that finds no grad on a parameter does not count for it: PyTorch keeps a step count
 * per parameter, and Adam's bias corrections use it. Two parameters (one 0-d), the second
 * with a grad at steps 3, 4 and 6 only; the bits PyTorch 1.13 gives for torch.optim.Adam([a, b],
 * lr=0.125, betas=(0.75, 0.875), eps=2**-20, weight_decay=0.0625) with
 * zero_grad(set_to_none=True). Saving
 * after step 4 and resuming in a fresh optimizer gives the same bits; so does a file in the
 * older format with one step count for all parameters, for a run where every step had grads. */
static void adam_grads(tg_tensor *a, tg_tensor *b, int t)
{
    float ga[4];
    for (int k = 0; k < 4; k++)
        ga[k] = (float)((k * 7 + t * 3) % 11 - 5) * 0.125f;
    tg_scope_begin();
    tg_tensor *loss = tg_sum(tg_mul(a, tg_from_data(ga, 2, (int64_t[]){2, 2})));
    if (t == 3 || t == 4 || t == 6)
        loss = tg_add(loss, tg_mul_scalar(b, (float)((t * 5) % 7 - 3) * 0.25f));
    assert_int_equal(tg_backward(loss, NULL, false), TG_OK);
    tg_scope_end();
}

static void test_adam_counts_steps_per_parameter(void **state)
{
    (void)state;
    static const float a0[4] = {0.5f, -1.0f, 2.0f, 0.0f};
    static const float want_a[4] = {0x1.184b7ep-1f, -0x1.08e740p+0f, 0x1.934f98p+0f,
                                    0x1.4487eep-2f};
    const float want_b = 0x1.8ac29ap+0f;
    char dir[] = "/tmp/tg_nn_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256], path_v1[256];
    snprintf(path, sizeof path, "%s/opt.bin", dir);
    snprintf(path_v1, sizeof path_v1, "%s/opt_v1.bin", dir);
    tg_adam_options o;
    tg_adam_options_init(&o);
    o.lr = 0.125f, o.beta1 = 0.75f, o.beta2 = 0.875f, o.eps = 0x1p-20f, o.weight_decay = 0.0625f;

    tg_tensor *p[2] = {tg_requires_grad_(tg_from_data(a0, 2, (int64_t[]){2, 2}), true),
                       tg_requires_grad_(tg_scalar(1.5f), true)};
    tg_optimizer *opt = tg_adam_new(p, 2, &o);
    assert_non_null(opt);
    for (int t = 1; t <= 6; t++) {
        adam_grads(p[0], p[1], t);
        assert_int_equal(tg_optimizer_step(opt), TG_OK);
        tg_optimizer_zero_grad(opt, true);
        if (t == 4)
            assert_int_equal(tg_optimizer_save(opt, path), TG_OK);
    }
    float got[5];
    tg_copy_to(p[0], got, 4);
    got[4] = tg_item(p[1]);
    for (int k = 0; k < 4; k++)
        if (memcmp(&got[k], &want_a[k], sizeof(float)) != 0)
            fail_msg("a element %d: %a, PyTorch %a", k, got[k], want_a[k]);
    if (memcmp(&got[4], &want_b, sizeof(float)) != 0)
        fail_msg("b: %a, PyTorch %a", got[4], want_b);

    tg_tensor *q[2] = {tg_requires_grad_(tg_zeros(2, (int64_t[]){2, 2}), true),
                       tg_requires_grad_(tg_scalar(0.0f), true)};
    tg_optimizer *resumed = tg_adam_new(q, 2, &o);
    assert_int_equal(tg_optimizer_load(resumed, path), TG_OK);
    for (int t = 5; t <= 6; t++) {
        adam_grads(q[0], q[1], t);
        assert_int_equal(tg_optimizer_step(resumed), TG_OK);
        tg_optimizer_zero_grad(resumed, true);
    }
    float again[5];
    tg_copy_to(q[0], again, 4);
    again[4] = tg_item(q[1]);
    assert_memory_equal(got, again, sizeof got);

    /* The older format: magic, kind, n, one step count, then per parameter ndim, shape,
     * values, flags and buffers. Rewritten from a new file of one parameter after 2 steps. */
    tg_tensor *r = tg_requires_grad_(tg_from_data(a0, 2, (int64_t[]){2, 2}), true);
    tg_optimizer *one = tg_adam_new(&r, 1, &o);
    for (int t = 1; t <= 2; t++) {
        adam_grads(r, p[1], t);
        assert_int_equal(tg_optimizer_step(one), TG_OK);
        tg_optimizer_zero_grad(one, true);
    }
    assert_int_equal(tg_optimizer_save(one, path), TG_OK);
    unsigned char bytes[256], v1[256];
    FILE *f = fopen(path, "rb");
    size_t len = fread(bytes, 1, sizeof bytes, f);
    fclose(f);
    /* new: magic 8, head 8, ndim 4, shape 16, values 16, flags 2, step 8, buffers 32 */
    assert_int_equal(len, 94);
    memcpy(v1, "TGOPT1\n", 8);
    memcpy(v1 + 8, bytes + 8, 8);    /* kind, n */
    memcpy(v1 + 16, bytes + 54, 8);  /* step */
    memcpy(v1 + 24, bytes + 16, 38); /* ndim, shape, values, flags */
    memcpy(v1 + 62, bytes + 62, 32); /* buffers */
    f = fopen(path_v1, "wb");
    assert_int_equal(fwrite(v1, 1, len, f), len);
    fclose(f);
    tg_tensor *s = tg_requires_grad_(tg_zeros(2, (int64_t[]){2, 2}), true);
    tg_optimizer *old = tg_adam_new(&s, 1, &o);
    assert_int_equal(tg_optimizer_load(old, path_v1), TG_OK);
    for (int t = 3; t <= 4; t++) {
        adam_grads(r, p[1], t);
        adam_grads(s, p[1], t);
        assert_int_equal(tg_optimizer_step(one), TG_OK);
        assert_int_equal(tg_optimizer_step(old), TG_OK);
        tg_optimizer_zero_grad(one, true), tg_optimizer_zero_grad(old, true);
    }
    tg_copy_to(r, got, 4);
    tg_copy_to(s, again, 4);
    assert_memory_equal(got, again, 4 * sizeof(float));

    tg_optimizer_free(opt), tg_optimizer_free(resumed), tg_optimizer_free(one),
        tg_optimizer_free(old);
    for (int i = 0; i < 2; i++)
        tg_release(p[i]), tg_release(q[i]);
    tg_release(r), tg_release(s);
    remove(path), remove(path_v1);
    rmdir(dir);
}

static void test_save_load_resumes_exactly(void **state)
{
    (void)state;
    char dir[] = "/tmp/tg_nn_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/opt.bin", dir);

    tg_adam_options o;
    tg_adamw_options_init(&o);
    o.lr = 0.05f;
    tg_tensor *p = tg_requires_grad_(tg_from_data(P0, 1, (int64_t[]){NP}), true);
    tg_optimizer *opt = tg_adam_new(&p, 1, &o);
    for (int t = 1; t <= 3; t++) {
        set_grads(p, t);
        tg_optimizer_step(opt);
    }
    assert_int_equal(tg_optimizer_save(opt, path), TG_OK);
    for (int t = 4; t <= 6; t++) { /* uninterrupted run */
        set_grads(p, t);
        tg_optimizer_step(opt);
    }
    float straight[NP];
    tg_copy_to(p, straight, NP);

    tg_tensor *q = tg_requires_grad_(tg_zeros(1, (int64_t[]){NP}), true);
    tg_optimizer *resumed = tg_adam_new(&q, 1, &o);
    assert_int_equal(tg_optimizer_load(resumed, path), TG_OK);
    for (int t = 4; t <= 6; t++) {
        set_grads(q, t);
        tg_optimizer_step(resumed);
    }
    float again[NP];
    tg_copy_to(q, again, NP);
    assert_memory_equal(straight, again, sizeof straight);

    /* a file for another optimizer or shape is refused and changes nothing */
    tg_tensor *r = tg_requires_grad_(tg_full(1, (int64_t[]){NP + 1}, 7.0f), true);
    tg_optimizer *other = tg_adam_new(&r, 1, &o);
    assert_int_equal(tg_optimizer_load(other, path), TG_EPARSE);
    tg_scope_begin();
    assert_float_equal(tg_item(tg_sum(r)), 7.0f * (NP + 1), 0.0f);
    tg_scope_end();
    tg_optimizer *sgd = tg_sgd_new(&q, 1, NULL);
    assert_int_equal(tg_optimizer_load(sgd, path), TG_EPARSE);
    assert_int_equal(tg_optimizer_load(sgd, "/nonexistent/opt.bin"), TG_EIO);
    /* a directory cannot be read: an I/O error, not a parse error */
    assert_int_equal(tg_optimizer_load(sgd, dir), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "tg_optimizer_load"));
    assert_non_null(strstr(tg_last_error(), "directory"));

    tg_optimizer_free(opt), tg_optimizer_free(resumed), tg_optimizer_free(other),
        tg_optimizer_free(sgd);
    tg_release(p), tg_release(q), tg_release(r);
    remove(path);
    rmdir(dir);
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matmul_values),
        cmocka_unit_test(test_matmul_tall),
        cmocka_unit_test(test_matmul_deep),
        cmocka_unit_test(test_matmul_tiles),
        cmocka_unit_test(test_matmul_uniform),
        cmocka_unit_test(test_matmul_names_and_errors),
        cmocka_unit_test(test_matmul_gradcheck),
        cmocka_unit_test(test_linear),
        cmocka_unit_test(test_linear_tall),
        cmocka_unit_test(test_sgd_variants),
        cmocka_unit_test(test_adam_variants),
        cmocka_unit_test(test_optimizers_match_float_formulas),
        cmocka_unit_test(test_adam_matches_pytorch_bits),
        cmocka_unit_test(test_sgd_matches_pytorch_bits),
        cmocka_unit_test(test_no_weight_decay_keeps_infinite_parameters),
        cmocka_unit_test(test_optimizers_same_bits_on_threads),
        cmocka_unit_test(test_optimizer_errors_and_zero_grad),
        cmocka_unit_test(test_save_load_resumes_exactly),
        cmocka_unit_test(test_adam_counts_steps_per_parameter),
    };
    /* Ops split across threads from 32768 elements here, not from the default grain, so that
     * the split paths run on inputs of test size (1 against 3 threads, bit for bit). */
    tg_parallel_set_grain(32768);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
