/* Broadcasting rules and the shared reduction of broadcast gradients. */
#include <string.h>

#include "ops.h"

tg_tensor *tg_null_arg(const char *fn)
{
    /* A NULL that came out of a failed call keeps that call's message: it names the cause. */
    if (tg_last_status() == TG_OK)
        tg_set_error(TG_EINVAL, "%s: a tensor argument is NULL", fn);
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

/* p[0] is the reduced output (stride 0 where summed), p[1] the gradient being reduced. */
static void reduce_run(void *ctx, float *const *p, const int64_t *s, int64_t n)
{
    (void)ctx;
    const tg_kernels *k = tg_kern();
    if (s[0] == 0 && s[1] == 1) {
        p[0][0] += k->sum(p[1], n);
    } else if (s[0] == 1 && s[1] == 1) {
        k->add_vv(p[0], p[1], p[0], n);
    } else {
        for (int64_t i = 0; i < n; i++)
            p[0][i * s[0]] += p[1][i * s[1]];
    }
}

tg_tensor *tg_reduce_to(tg_tensor *g, int ndim, const int64_t *shape)
{
    bool same = g->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = g->shape[i] == shape[i];
    if (same) {
        g->refcount++;
        return g;
    }
    tg_tensor *out = tg_new(ndim, shape, "tg_backward");
    if (!out)
        return NULL;
    tg_kern()->fill(tg_ptr(out), 0.0f, out->numel);
    int64_t ostr[TG_MAX_DIMS];
    tg_broadcast_strides(out, g->ndim, g->shape, ostr);
    float *base[2] = {tg_ptr(out), tg_ptr(g)};
    const int64_t *strides[2] = {ostr, g->strides};
    tg_iter(2, g->ndim, g->shape, base, strides, reduce_run, NULL);
    return out;
}

tg_tensor *tg_reduce_to_input(const tg_node *n, int i, tg_tensor *g)
{
    return tg_reduce_to(g, n->in_ndim[i], n->in_shape[i]);
}
