/* In-place updates. They are not recorded in the graph, so they bump the storage version: a
 * backward that saved the old values then fails loudly instead of using the new ones. */
#include "ops.h"

/* In-place writes to a tensor that requires grad would silently bypass the graph, and writes
 * to an expanded view would hit its shared elements more than once (PyTorch refuses both, the
 * autograd cases first). A fill writes the same value however often it hits one location, so
 * PyTorch lets fill_ and zero_ write expanded views: fills pass `fill`. */
static bool writable(tg_tensor *t, bool fill, const char *fn)
{
    tg_clear_error();
    if (!t) {
        /* t is what a failed call returned: keep that call's cause, as the ops do */
        tg_null_input(TG_EINVAL, "%s: a tensor argument is NULL", fn);
        return false;
    }
    if (t->no_grad_base && t->no_grad_base->requires_grad && tg_grad_enabled()) {
        /* PyTorch: "A view was created in no_grad mode and is being modified inplace with grad
         * mode enabled": the change would bypass the graph of the tensor it views. */
        tg_set_error(TG_EGRAPH,
                     "%s: a view made under no-grad of a tensor that requires grad is being "
                     "changed in place with grad mode on; make the change under TG_NO_GRAD too, "
                     "or make the view with grad mode on",
                     fn);
        return false;
    }
    if (t->requires_grad && tg_grad_enabled()) {
        tg_set_error(TG_EGRAPH,
                     "%s: a %s that requires grad is being used in an in-place operation; "
                     "run it under TG_NO_GRAD (or on tg_detach(t))",
                     fn, t->grad_fn ? "tensor" : "leaf tensor");
        return false;
    }
    for (int d = 0; d < t->ndim && !fill; d++)
        if (t->strides[d] == 0 && t->shape[d] > 1) {
            /* one memory location would be written once per element that refers to it */
            tg_set_error(TG_EINVAL,
                         "%s: more than one element of the written-to tensor refers to a single "
                         "memory location (an expanded view); clone it first",
                         fn);
            return false;
        }
    return true;
}

typedef struct {
    float a;
    int kind; /* 0 fill, 1 scale, 2 axpy */
} inplace_ctx;

static void inplace_run(void *ctx, float *const *p, const int64_t *s, int64_t n)
{
    const inplace_ctx *c = ctx;
    const tg_kernels *k = tg_kern();
    if (s[0] == 1 && (c->kind != 2 || s[1] == 1)) {
        if (c->kind == 0)
            k->fill(p[0], c->a, n);
        else if (c->kind == 1)
            k->mul_vs(p[0], c->a, p[0], n);
        else
            k->axpy(c->a, p[1], p[0], n);
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float *y = p[0] + i * s[0];
        if (c->kind == 0)
            *y = c->a;
        else if (c->kind == 1)
            *y *= c->a;
        else
            *y += c->a * p[1][i * s[1]];
    }
}

/* Applies the update over t's (possibly strided) elements; x is broadcast to t's shape. */
static tg_tensor *apply(tg_tensor *t, tg_tensor *x, inplace_ctx c, const char *fn)
{
    int64_t xs[TG_MAX_DIMS];
    float *base[2] = {tg_ptr(t), x ? tg_ptr(x) : tg_ptr(t)};
    const int64_t *strides[2] = {t->strides, x ? xs : t->strides};
    if (x) {
        int nd;
        int64_t shape[TG_MAX_DIMS];
        if (!tg_broadcast_shape(t, x, &nd, shape, fn))
            return NULL;
        if (nd != t->ndim || tg_check_shape(nd, shape, fn) != t->numel) {
            char a[160], b[160];
            tg_set_error(TG_ESHAPE, "%s: shape %s cannot be broadcast to the output shape %s", fn,
                         tg_shape_str(b, sizeof b, x->ndim, x->shape),
                         tg_shape_str(a, sizeof a, t->ndim, t->shape));
            return NULL;
        }
        tg_broadcast_strides(x, t->ndim, t->shape, xs);
    }
    /* A fill of an expanded view writes each memory location once: its stride-0 dims count as
     * size 1 (threads never write one location together). */
    int64_t walk[TG_MAX_DIMS];
    for (int d = 0; d < t->ndim; d++)
        walk[d] = c.kind == 0 && t->strides[d] == 0 && t->numel > 0 ? 1 : t->shape[d];
    tg_iter(2, t->ndim, walk, base, strides, inplace_run, &c);
    tg_bump_version(t, fn);
    return t;
}

tg_tensor *tg_fill_(tg_tensor *t, float v)
{
    if (!writable(t, true, "tg_fill_"))
        return NULL;
    return apply(t, NULL, (inplace_ctx){v, 0}, "tg_fill_");
}

tg_tensor *tg_zero_(tg_tensor *t)
{
    if (!writable(t, true, "tg_zero_"))
        return NULL;
    return apply(t, NULL, (inplace_ctx){0.0f, 0}, "tg_zero_");
}

tg_tensor *tg_mul_scalar_(tg_tensor *t, float s)
{
    if (!writable(t, false, "tg_mul_scalar_"))
        return NULL;
    return apply(t, NULL, (inplace_ctx){s, 1}, "tg_mul_scalar_");
}

/* Is t laid out as a permutation of a row-major dense block (no gaps, no shared elements)? */
static bool non_overlapping_dense(const tg_tensor *t)
{
    int dims[TG_MAX_DIMS], m = 0;
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1)
            dims[m++] = d;
    for (int i = 1; i < m; i++) /* by stride, innermost first */
        for (int j = i; j > 0 && t->strides[dims[j]] < t->strides[dims[j - 1]]; j--) {
            int k = dims[j];
            dims[j] = dims[j - 1];
            dims[j - 1] = k;
        }
    int64_t want = 1;
    for (int i = 0; i < m; i++) {
        if (t->strides[dims[i]] != want)
            return false;
        want *= t->shape[dims[i]];
    }
    return true;
}

/* PyTorch's test of an in-place op's input x against its output t: the same memory with the
 * same strides is a full overlap (t += t), which is fine; when both are dense blocks, any
 * other sharing of memory is a partial overlap, refused because x's elements would be read
 * after t's writes changed them. Layouts with gaps are too hard to tell and pass, as there
 * (x is then read from a copy made first). */
static bool partial_overlap(const tg_tensor *t, const tg_tensor *x)
{
    if (t == x || t->storage != x->storage || t->numel == 0 || x->numel == 0 ||
        !non_overlapping_dense(t) || !non_overlapping_dense(x))
        return false;
    int64_t tb = t->offset, te = tb + t->numel, xb = x->offset, xe = xb + x->numel;
    if (tb == xb && te == xe) {
        if (t->ndim != x->ndim)
            return true;
        for (int d = 0; d < t->ndim; d++)
            if (t->strides[d] != x->strides[d])
                return true;
        return false;
    }
    return tb < xe && xb < te;
}

/* t += alpha * x; fn names the public entry point in errors and in the version's last writer. */
static tg_tensor *axpy_as(tg_tensor *t, float alpha, tg_tensor *x, const char *fn)
{
    if (!writable(t, false, fn))
        return NULL;
    if (!x) {
        tg_null_input(TG_EINVAL, "%s: a tensor argument is NULL", fn); /* keeps x's cause */
        return NULL;
    }
    /* PyTorch records t += x in the graph when x requires grad (t gets an AddBackward0). In-place
     * ops are not recorded here, so t would silently carry none of x's gradient: refuse. */
    if (x->requires_grad && tg_grad_enabled()) {
        tg_set_error(TG_EUNSUPPORTED,
                     "%s: the added tensor requires grad, and in-place operations are not "
                     "recorded in the graph (its gradient would be lost); use tg_add, or run it "
                     "under TG_NO_GRAD",
                     fn);
        return NULL;
    }
    if (partial_overlap(t, x)) {
        tg_set_error(TG_EINVAL,
                     "%s: some elements of the input tensor and the written-to tensor refer to a "
                     "single memory location; clone the input first",
                     fn);
        return NULL;
    }
    /* x may share memory with t (t += a*t): read it from a copy then. */
    tg_tensor *src = x->storage == t->storage ? tg_contiguous_copy(x) : tg_retain(x);
    tg_tensor *r = src ? apply(t, src, (inplace_ctx){alpha, 2}, fn) : NULL;
    tg_release(src);
    return r;
}

tg_tensor *tg_axpy_(tg_tensor *t, float alpha, tg_tensor *x)
{
    return axpy_as(t, alpha, x, "tg_axpy_");
}

tg_tensor *tg_add_(tg_tensor *t, tg_tensor *other)
{
    return axpy_as(t, 1.0f, other, "tg_add_");
}
