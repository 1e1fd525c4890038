/* Sums and means, over everything or along one dimension. */
#include <stdlib.h>

#include "ops.h"

static int norm_dim(int dim, int ndim, const char *fn)
{
    int n = ndim ? ndim : 1; /* a 0-d tensor accepts dim 0 and -1, as PyTorch does */
    if (dim < -n || dim >= n) {
        tg_set_error(TG_EINVAL, "%s: dim %d is out of range for a %d-d tensor", fn, dim, ndim);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

/* ---- all elements ---- */

/* d(sum)/dx = 1 everywhere: the gradient is g (divided by n for mean) seen at every input
 * position. It is returned as a broadcast view, so no tensor of ones is ever materialized; the
 * next node reads the one value or materializes it only if it must. */
tg_tensor *tg_uniform_grad_(float v, int ndim, const int64_t *shape, const char *name)
{
    tg_tensor *s = tg_new(0, NULL, name);
    if (!s)
        return NULL;
    tg_ptr(s)[0] = v;
    tg_tensor *out = tg_expand(s, ndim, shape);
    tg_release(s);
    return out;
}

tg_tensor *tg_neg_grad_(tg_tensor *g, const char *name)
{
    if (tg_uniform_view_(g))
        return tg_uniform_grad_(-tg_ptr(g)[0], g->ndim, g->shape, name);
    return tg_neg(g);
}

static tg_status fill_backward(tg_node *n, tg_tensor *g, float scale, tg_tensor **gin)
{
    float v = scale == 1.0f ? tg_ptr(g)[0] : tg_ptr(g)[0] / scale;
    gin[0] = tg_uniform_grad_(v, n->in_ndim[0], n->in_shape[0], n->ops->name);
    return gin[0] ? TG_OK : tg_last_status();
}

static tg_status sum_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    return fill_backward(n, g, 1.0f, gin);
}

static tg_status mean_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    return fill_backward(n, g, n->fargs[0], gin);
}

static const tg_node_ops SUM = {"SumBackward0", sum_backward};
static const tg_node_ops MEAN = {"MeanBackward0", mean_backward};

static tg_tensor *reduce_all(tg_tensor *a, bool mean, const char *fn)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(fn));
    tg_tensor *x = tg_as_contiguous(a);
    tg_tensor *out = x ? tg_new(0, NULL, fn) : NULL;
    if (out) {
        float s = tg_sum_floats(tg_ptr(x), x->numel);
        /* mean of an empty tensor is NaN (0/0), as in PyTorch */
        tg_ptr(out)[0] = mean ? s / (float)x->numel : s;
    }
    tg_release(x);
    if (out) {
        tg_node *node = tg_record(mean ? &MEAN : &SUM, out, 1, &a);
        if (node)
            node->fargs[0] = (float)a->numel;
    }
    TG_API_RETURN(out);
}

tg_tensor *tg_sum(tg_tensor *a) { return reduce_all(a, false, "tg_sum"); }
tg_tensor *tg_mean(tg_tensor *a) { return reduce_all(a, true, "tg_mean"); }

/* ---- along one dimension ---- */

#define ROW_BLOCK 8 /* rows added one after another before pairing */

/* y = sum of the len >= 1 rows of x (row stride inner), pairing halves so the rounding error
 * grows with log(len), not len: a flat running sum of a million 0.1f rows ends 1% high. tmp
 * holds one row per level of halving. */
static void sum_rows(const float *x, float *y, int64_t len, int64_t inner, float *tmp)
{
    const tg_kernels *k = tg_kern();
    if (len <= ROW_BLOCK || !tmp) {
        k->copy(x, y, inner);
        for (int64_t j = 1; j < len; j++)
            k->add_vv(y, x + j * inner, y, inner);
        return;
    }
    int64_t half = len / 2;
    sum_rows(x, y, half, inner, tmp + inner);
    sum_rows(x + half * inner, tmp, len - half, inner, tmp + inner);
    k->add_vv(y, tmp, y, inner);
}

/* Sums x (contiguous, viewed as [outer, len, inner]) over the middle axis into out. */
static void sum_middle(const float *x, float *out, int64_t outer, int64_t len, int64_t inner)
{
    int levels = 0;
    for (int64_t n = len; n > ROW_BLOCK; n -= n / 2)
        levels++;
    /* without scratch memory sum_rows falls back to one running sum: less exact, still right */
    float *tmp = inner > 1 && levels ? malloc((size_t)(levels * inner) * sizeof *tmp) : NULL;
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * len * inner;
        float *yo = out + o * inner;
        if (inner == 1)
            yo[0] = tg_sum_floats(xo, len);
        else if (len == 0)
            tg_kern()->fill(yo, 0.0f, inner);
        else
            sum_rows(xo, yo, len, inner, tmp);
    }
    free(tmp);
}

static tg_status sum_dim_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    int dim = (int)n->iargs[0];
    int ndim = n->in_ndim[0];
    /* View g with the summed dim as size 1 (keepdim) and spread it over the input. */
    int64_t kshape[TG_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        kshape[i] = i == dim ? 1 : n->in_shape[0][i];
    tg_tensor *gk = tg_reshape(g, ndim, kshape);
    tg_tensor *e = gk ? tg_expand(gk, ndim, n->in_shape[0]) : NULL;
    gin[0] = e ? tg_contiguous_copy(e) : NULL;
    if (gin[0] && n->fargs[0] != 1.0f) /* mean: g / len, PyTorch's division */
        tg_run_vs(tg_kern()->div_vs, tg_ptr(gin[0]), n->fargs[0], tg_ptr(gin[0]), gin[0]->numel);
    tg_release(gk), tg_release(e);
    return gin[0] ? TG_OK : tg_last_status();
}

static const tg_node_ops SUM_DIM = {"SumBackward1", sum_dim_backward};
static const tg_node_ops MEAN_DIM = {"MeanBackward1", sum_dim_backward};

static tg_tensor *reduce_dim(tg_tensor *a, int dim, bool keepdim, bool mean, const char *fn)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(fn));
    int d = norm_dim(dim, a->ndim, fn);
    if (d < 0)
        TG_API_RETURN(NULL);
    /* a 0-d tensor reduces over its one implicit element (still a SumBackward1 node) */
    int64_t outer = 1, inner = 1, len = a->ndim ? a->shape[d] : 1;
    int64_t shape[TG_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i < d)
            outer *= a->shape[i];
        if (i > d)
            inner *= a->shape[i];
        if (i != d || keepdim)
            shape[on++] = i == d ? 1 : a->shape[i];
    }
    tg_tensor *x = tg_as_contiguous(a);
    tg_tensor *out = x ? tg_new(on, shape, fn) : NULL;
    if (out) {
        sum_middle(tg_ptr(x), tg_ptr(out), outer, len, inner);
        if (mean)
            tg_run_vs(tg_kern()->div_vs, tg_ptr(out), (float)len, tg_ptr(out), out->numel);
    }
    tg_release(x);
    if (out) {
        tg_node *node = tg_record(mean ? &MEAN_DIM : &SUM_DIM, out, 1, &a);
        if (node) {
            node->iargs[0] = d;
            node->fargs[0] = mean ? (float)len : 1.0f;
        }
    }
    TG_API_RETURN(out);
}

tg_tensor *tg_sum_dim(tg_tensor *a, int dim, bool keepdim)
{
    return reduce_dim(a, dim, keepdim, false, "tg_sum_dim");
}

tg_tensor *tg_mean_dim(tg_tensor *a, int dim, bool keepdim)
{
    return reduce_dim(a, dim, keepdim, true, "tg_mean_dim");
}
