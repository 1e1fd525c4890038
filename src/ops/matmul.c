/* Matrix products through OpenBLAS. Transposed views go to BLAS as a transpose flag and a
 * leading dimension, so x^T @ y never copies x. */
#include <cblas.h>
#include <string.h>

#include "ops.h"

/* How BLAS should read a 2-D tensor [rows, cols]. */
typedef struct {
    const float *p;
    CBLAS_TRANSPOSE trans;
    int64_t ld;
    tg_tensor *copy; /* owned dense copy when the strides are not BLAS-compatible */
} blas_operand;

static bool as_operand(tg_tensor *t, blas_operand *op)
{
    int64_t r = t->shape[0], c = t->shape[1];
    /* Strides of size-1 dims carry no information: pick ones BLAS accepts. */
    int64_t s0 = r == 1 ? (c > 1 ? c : 1) : t->strides[0];
    int64_t s1 = c == 1 ? 1 : t->strides[1];
    op->copy = NULL;
    op->p = tg_ptr(t);
    if (s1 == 1 && s0 >= (c > 1 ? c : 1)) {
        op->trans = CblasNoTrans;
        op->ld = s0;
        return true;
    }
    s1 = c == 1 ? (r > 1 ? r : 1) : t->strides[1];
    s0 = r == 1 ? 1 : t->strides[0];
    if (s0 == 1 && s1 >= (r > 1 ? r : 1)) {
        op->trans = CblasTrans;
        op->ld = s1;
        return true;
    }
    op->copy = tg_contiguous_copy(t);
    if (!op->copy)
        return false;
    op->p = tg_ptr(op->copy);
    op->trans = CblasNoTrans;
    op->ld = c > 1 ? c : 1;
    return true;
}

/* out[M,N] = a[M,K] @ b[K,N] for 2-D tensors of any strides. */
static tg_tensor *mm_forward(tg_tensor *a, tg_tensor *b)
{
    int64_t M = a->shape[0], K = a->shape[1], N = b->shape[1];
    int64_t shape[2] = {M, N};
    tg_tensor *out = tg_new(2, shape, "tg_matmul");
    if (!out)
        return NULL;
    if (K == 0 || M == 0 || N == 0) {
        tg_kern()->fill(tg_ptr(out), 0.0f, out->numel);
        return out;
    }
    blas_operand A, B;
    if (!as_operand(a, &A)) {
        tg_release(out);
        return NULL;
    }
    if (!as_operand(b, &B)) {
        tg_release(A.copy);
        tg_release(out);
        return NULL;
    }
    cblas_sgemm(CblasRowMajor, A.trans, B.trans, (int)M, (int)N, (int)K, 1.0f, A.p, (int)A.ld, B.p,
                (int)B.ld, 0.0f, tg_ptr(out), (int)N);
    tg_release(A.copy);
    tg_release(B.copy);
    return out;
}

static tg_tensor *as_column(tg_tensor *v) { return tg_reshape(v, 2, (int64_t[]){v->numel, 1}); }
static tg_tensor *as_row(tg_tensor *v) { return tg_reshape(v, 2, (int64_t[]){1, v->numel}); }

/* Products of 1-D and 2-D operands, all expressed as one 2-D product plus reshapes, so the
 * BLAS call and its stride handling live in one place. */
static tg_tensor *matmul_2d(tg_tensor *a, tg_tensor *b)
{
    tg_tensor *a2 = a->ndim == 1 ? as_row(a) : tg_retain(a);
    tg_tensor *b2 = b->ndim == 1 ? as_column(b) : tg_retain(b);
    tg_tensor *p = a2 && b2 ? mm_forward(a2, b2) : NULL;
    tg_release(a2), tg_release(b2);
    if (!p || (a->ndim == 2 && b->ndim == 2))
        return p;
    int64_t shape[1] = {a->ndim == 2 ? a->shape[0] : b->ndim == 2 ? b->shape[1] : 0};
    tg_tensor *r = tg_reshape(p, a->ndim + b->ndim - 2, shape);
    tg_release(p);
    return r;
}

/* ---- backward ---- */

static tg_status matmul_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_tensor *a = n->saved[0], *b = n->saved[1];
    /* Lift everything to 2-D: a [M,K], b [K,N], g [M,N]; then drop the lifted dims again. */
    tg_tensor *a2 = a->ndim == 1 ? as_row(a) : tg_retain(a);
    tg_tensor *b2 = b->ndim == 1 ? as_column(b) : tg_retain(b);
    tg_tensor *g2 = a2 && b2 ? tg_reshape(g, 2, (int64_t[]){a2->shape[0], b2->shape[1]}) : NULL;
    tg_status st = g2 ? TG_OK : tg_last_status();
    if (needs[0] && st == TG_OK) {
        tg_tensor *bt = tg_transpose(b2, 0, 1);
        tg_tensor *ga = bt ? mm_forward(g2, bt) : NULL;
        gin[0] = ga ? tg_reshape(ga, a->ndim, a->shape) : NULL;
        tg_release(bt), tg_release(ga);
        st = gin[0] ? TG_OK : tg_last_status();
    }
    if (needs[1] && st == TG_OK) {
        tg_tensor *at = tg_transpose(a2, 0, 1);
        tg_tensor *gb = at ? mm_forward(at, g2) : NULL;
        gin[1] = gb ? tg_reshape(gb, b->ndim, b->shape) : NULL;
        tg_release(at), tg_release(gb);
        st = gin[1] ? TG_OK : tg_last_status();
    }
    tg_release(a2), tg_release(b2), tg_release(g2);
    return st;
}

static const tg_node_ops MM = {"MmBackward0", matmul_backward};
static const tg_node_ops MV = {"MvBackward0", matmul_backward};
static const tg_node_ops DOT = {"DotBackward0", matmul_backward};
static const tg_node_ops VM = {"SqueezeBackward3", matmul_backward}; /* PyTorch's name for 1-D @ 2-D */

static bool check_inner(const tg_tensor *a, const tg_tensor *b)
{
    int64_t ka = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka == kb)
        return true;
    char x[160], y[160];
    tg_set_error(TG_ESHAPE, "tg_matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                 tg_shape_str(x, sizeof x, a->ndim, a->shape),
                 tg_shape_str(y, sizeof y, b->ndim, b->shape), (long long)ka, (long long)kb);
    return false;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b)
{
    TG_API_BEGIN;
    if (!a || !b)
        TG_API_RETURN(tg_null_arg("tg_matmul"));
    char x[160], y[160];
    if (a->ndim == 0 || b->ndim == 0) {
        tg_set_error(TG_ESHAPE, "tg_matmul: both arguments need at least 1 dimension, got %s and %s",
                     tg_shape_str(x, sizeof x, a->ndim, a->shape),
                     tg_shape_str(y, sizeof y, b->ndim, b->shape));
        TG_API_RETURN(NULL);
    }
    if (a->ndim > 2 || b->ndim > 2) {
        tg_set_error(TG_EUNSUPPORTED, "tg_matmul: batched operands %s and %s are not supported yet",
                     tg_shape_str(x, sizeof x, a->ndim, a->shape),
                     tg_shape_str(y, sizeof y, b->ndim, b->shape));
        TG_API_RETURN(NULL);
    }
    if (!check_inner(a, b))
        TG_API_RETURN(NULL);
    tg_tensor *out = matmul_2d(a, b);
    if (!out)
        TG_API_RETURN(NULL);
    const tg_node_ops *ops = a->ndim == 2 ? (b->ndim == 2 ? &MM : &MV) : (b->ndim == 2 ? &VM : &DOT);
    tg_tensor *in[2] = {a, b};
    tg_node *node = tg_record(ops, out, 2, in);
    if (node) {
        tg_save(node, a);
        tg_save(node, b);
    }
    TG_API_RETURN(out);
}
