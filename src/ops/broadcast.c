/* Broadcasting rules and the shared reduction of broadcast gradients. */
#include <string.h>

#include "ops.h"

tg_tensor *tg_null_arg(const char *fn)
{
    /* A NULL that came out of a failed call keeps that call's message: it names the cause. The
     * outermost call cleared the status on entry, so it brings back what the call before it
     * (the one that produced the NULL, in f(g(x))) reported. */
    if (tg_last_status() == TG_OK)
        tg_null_input(TG_EINVAL, "%s: a tensor argument is NULL", fn);
    return NULL;
}

bool tg_broadcast_shape(const tg_tensor *a, const tg_tensor *b, int *ndim, int64_t *shape,
                        const char *fn)
{
    int n = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < n; i++) {
        int ia = a->ndim - n + i, ib = b->ndim - n + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1;
        int64_t sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            char x[160], y[160];
            tg_set_error(TG_ESHAPE, "%s: shapes %s and %s are not broadcastable", fn,
                         tg_shape_str(x, sizeof x, a->ndim, a->shape),
                         tg_shape_str(y, sizeof y, b->ndim, b->shape));
            return false;
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = n;
    return true;
}

void tg_broadcast_strides(const tg_tensor *t, int ndim, const int64_t *shape, int64_t *strides)
{
    for (int i = 0; i < ndim; i++) {
        int it = t->ndim - ndim + i;
        strides[i] = (it < 0 || (t->shape[it] == 1 && shape[i] != 1)) ? 0 : t->strides[it];
    }
}

tg_tensor *tg_reduce_to(tg_tensor *g, int ndim, const int64_t *shape)
{
    bool same = g->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = g->shape[i] == shape[i];
    if (same) {
        tg_ref_inc(&g->refcount);
        return g;
    }
    /* One tg_sum_dim per broadcast dim: its pairwise row sums keep the error logarithmic in
     * the dim's length, where one running sum over a million broadcast rows ends 1% off. */
    bool prev = tg_set_grad_enabled(false);
    tg_tensor *r = tg_retain(g);
    int lead = g->ndim - ndim;
    for (int d = 0; d < g->ndim && r; d++) {
        if (d >= lead && shape[d - lead] == g->shape[d])
            continue;
        tg_tensor *s = tg_sum_dim(r, d, true);
        tg_release(r);
        r = s;
    }
    tg_tensor *out = r ? tg_reshape(r, ndim, shape) : NULL;
    tg_release(r);
    tg_set_grad_enabled(prev);
    return out;
}

tg_tensor *tg_reduce_to_input(const tg_node *n, int i, tg_tensor *g)
{
    return tg_reduce_to(g, n->in_ndim[i], n->in_shape[i]);
}
