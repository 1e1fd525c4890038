/* Losses, each one node with PyTorch's name: binary cross-entropy on probabilities, the stable
 * fused form on logits, and mean squared error. */
#include <math.h>
#include <stdatomic.h>

#include "../core/parallel.h"
#include "ops.h"

static bool check_reduction(tg_reduction r, const char *fn)
{
    if ((unsigned)r <= TG_REDUCE_NONE)
        return true;
    tg_set_error(TG_EINVAL, "%s: unknown reduction %d", fn, (int)r);
    return false;
}

static bool check_same_shape(const tg_tensor *a, const tg_tensor *b, const char *fn)
{
    if (tg_same_shape(a, b))
        return true;
    char x[160], y[160];
    tg_set_error(TG_ESHAPE, "%s: target shape %s must match input shape %s", fn,
                 tg_shape_str(y, sizeof y, b->ndim, b->shape),
                 tg_shape_str(x, sizeof x, a->ndim, a->shape));
    return false;
}

/* PyTorch 1.13 refuses an argument it has no derivative for (pos_weight) when it requires grad
 * in grad mode, rather than silently leaving its gradient out. */
static bool check_no_grad(const tg_tensor *t, const char *arg, const char *fn)
{
    if (!(t->requires_grad && tg_grad_enabled()))
        return true;
    tg_set_error(TG_EUNSUPPORTED,
                 "%s: not differentiable with respect to argument '%s'; it cannot require grad", fn,
                 arg);
    return false;
}

/* Reduces an elementwise loss (consumed) to the requested form. */
static tg_tensor *reduce_loss(tg_tensor *elem, tg_reduction r, const char *fn)
{
    if (!elem || r == TG_REDUCE_NONE)
        return elem;
    tg_tensor *out = tg_new(0, NULL, fn);
    if (out) {
        float s = tg_sum_floats(tg_ptr(elem), elem->numel);
        tg_ptr(out)[0] = r == TG_REDUCE_MEAN ? s / (float)elem->numel : s;
    }
    tg_release(elem);
    return out;
}

/* Multiplies the elementwise derivative d (consumed, contiguous, input-shaped) by the incoming
 * gradient: g itself for 'none', its one value for 'sum' and 'mean', and for 'mean' then divides
 * by n. That is PyTorch's order; d * (g / n) rounds differently (-100 / 15 is -6.66666651, -100 *
 * (1 / 15) is -6.66666698). Times 1 changes nothing, so the usual g = 1 costs one pass. */
static tg_tensor *chain(tg_tensor *d, tg_tensor *g, tg_reduction r)
{
    if (!d)
        return NULL;
    const tg_kernels *k = tg_kern();
    float *p = tg_ptr(d);
    if (r == TG_REDUCE_NONE) {
        tg_run_vv(k->mul_vv, p, tg_ptr(g), p, d->numel);
        return d;
    }
    float gv = tg_ptr(g)[0];
    if (r == TG_REDUCE_SUM || gv != 1.0f)
        tg_run_vs(k->mul_vs, p, gv, p, d->numel);
    if (r == TG_REDUCE_MEAN)
        tg_run_vs(k->div_vs, p, (float)d->numel, p, d->numel);
    return d;
}

/* ---- binary cross-entropy on probabilities ----
 * PyTorch's formulas, element by element with the C library's logf (as PyTorch's own loop
 * uses), so the floats match it; the loops run over chunks on the thread pool. */

/* fmaxf(v, lo) for a lower bound lo, without the libm call GCC makes for fmaxf (it may not
 * inline it as maxss, whose NaN rule differs): a NaN v gives lo, as fmaxf does. */
static inline float at_least(float v, float lo)
{
    return v > lo ? v : lo;
}

typedef struct {
    const float *p, *t;
    float *out;
    _Atomic int64_t first_bad; /* lowest index of a p outside [0, 1] found, else n */
    /* backward: the incoming gradient, g[i] ('none') or one value gv, and the count a 'mean'
     * divides by last (0: no division) */
    const float *g;
    float gv, mean_n;
} bce_job;

/* The backward steps in PyTorch's order, which rounds differently from multiplying by g / n:
 * g times the numerator first, the division by n for 'mean' last. */
static inline float bce_grad_in(const bce_job *j, int64_t i)
{
    return j->g ? j->g[i] : j->gv;
}

static inline float bce_grad_out(const bce_job *j, float v)
{
    return j->mean_n != 0.0f ? v / j->mean_n : v;
}

/* d/dp = g (p - t) / max((1 - p) p, 1e-12): PyTorch's clamp keeps it finite at p = 0 and 1. */
static void bce_dpred_range(void *ctx, int64_t begin, int64_t end)
{
    bce_job *j = ctx;
    const float *pp = j->p, *tp = j->t;
    float *dp = j->out;
    for (int64_t i = begin; i < end; i++)
        dp[i] = bce_grad_out(j, bce_grad_in(j, i) * (pp[i] - tp[i]) /
                                    at_least((1.0f - pp[i]) * pp[i], 1e-12f));
}

/* d/dt = (log(1 - p) - log(p)) g, computed as PyTorch 1.13 does: the difference of the two logs,
 * without the forward's -100 clamp, so p = 0 gives +inf and p = 1 gives -inf. (-log(p / (1 - p))
 * is the same function but rounds differently: near p = 0.5 it was off from PyTorch by up to
 * 2e-4 relative.) */
static void bce_dtarget_range(void *ctx, int64_t begin, int64_t end)
{
    bce_job *j = ctx;
    const float *pp = j->p;
    float *dp = j->out;
    for (int64_t i = begin; i < end; i++)
        dp[i] = bce_grad_out(j, (logf(1.0f - pp[i]) - logf(pp[i])) * bce_grad_in(j, i));
}

/* Each log is clamped at -100 so a 0 or 1 prediction gives a finite loss. A p outside [0, 1]
 * (or NaN) is an error: the chunk notes where and stops. */
static void bce_loss_range(void *ctx, int64_t begin, int64_t end)
{
    bce_job *j = ctx;
    const float *pp = j->p, *tp = j->t;
    float *lp = j->out;
    for (int64_t i = begin; i < end; i++) {
        float pv = pp[i], tv = tp[i];
        if (!(pv >= 0.0f && pv <= 1.0f)) {
            int64_t seen = j->first_bad;
            while (i < seen && !atomic_compare_exchange_weak(&j->first_bad, &seen, i))
                ;
            return;
        }
        float a = at_least(logf(pv), -100.0f), b = at_least(logf(1.0f - pv), -100.0f);
        /* PyTorch's form: -(t a + (1 - t) b) is the same value but -0 where p = 0, t = 0 */
        lp[i] = (tv - 1.0f) * b - tv * a;
    }
}

/* out = f over contiguous copies of pred (and target), on the pool; NULL on failure. g is the
 * incoming gradient of a backward pass under reduction r, NULL for the forward. */
static tg_tensor *bce_map(tg_tensor *pred, tg_tensor *target, const tg_tensor *g, tg_reduction r,
                          tg_range_fn f, const char *name, int64_t *first_bad)
{
    tg_tensor *p = tg_as_contiguous(pred), *t = target ? tg_as_contiguous(target) : NULL;
    tg_tensor *d = p && (t || !target) ? tg_new(p->ndim, p->shape, name) : NULL;
    if (d) {
        bce_job j = {tg_ptr(p), t ? tg_ptr(t) : NULL, tg_ptr(d), d->numel};
        if (g) {
            j.g = r == TG_REDUCE_NONE ? tg_ptr(g) : NULL;
            j.gv = r == TG_REDUCE_NONE ? 0.0f : tg_ptr(g)[0];
            j.mean_n = r == TG_REDUCE_MEAN ? (float)d->numel : 0.0f;
        }
        /* logf costs a few ns: a smaller grain than the cheap ops' */
        tg_parallel_for(d->numel, tg_parallel_grain_heavy(), f, &j);
        if (first_bad)
            *first_bad = j.first_bad < d->numel ? j.first_bad : -1;
    }
    tg_release(p), tg_release(t);
    return d;
}

static tg_status bce_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_reduction r = (tg_reduction)n->iargs[0];
    if (needs[0] && !(gin[0] = bce_map(n->saved[0], n->saved[1], g, r, bce_dpred_range,
                                       "BinaryCrossEntropyBackward0", NULL)))
        return tg_last_status();
    if (needs[1] && !(gin[1] = bce_map(n->saved[0], NULL, g, r, bce_dtarget_range,
                                       "BinaryCrossEntropyBackward0", NULL)))
        return tg_last_status();
    return TG_OK;
}

static const tg_node_ops BCE = {"BinaryCrossEntropyBackward0", bce_backward};

static tg_tensor *bce_elementwise(tg_tensor *pred, tg_tensor *target)
{
    int64_t bad = -1;
    tg_tensor *l = bce_map(pred, target, NULL, TG_REDUCE_NONE, bce_loss_range,
                           "tg_binary_cross_entropy", &bad);
    if (l && bad >= 0) {
        tg_tensor *p = tg_as_contiguous(pred);
        float pv = p ? tg_ptr(p)[bad] : NAN;
        tg_release(p);
        tg_set_error(TG_EINVAL,
                     "tg_binary_cross_entropy: all elements of input should be between 0 "
                     "and 1 (element %lld is %g)",
                     (long long)bad, pv);
        tg_release(l);
        l = NULL;
    }
    return l;
}

tg_tensor *tg_binary_cross_entropy(tg_tensor *pred, tg_tensor *target, tg_reduction r)
{
    const char *fn = "tg_binary_cross_entropy";
    TG_API_BEGIN;
    if (!pred || !target)
        TG_API_RETURN(tg_null_arg(fn));
    if (!check_reduction(r, fn) || !check_same_shape(pred, target, fn))
        TG_API_RETURN(NULL);
    tg_tensor *out = reduce_loss(bce_elementwise(pred, target), r, fn);
    tg_tensor *in[2] = {pred, target};
    tg_node *node = out ? tg_record(&BCE, out, 2, in) : NULL;
    if (node) {
        node->iargs[0] = r;
        tg_save(node, pred);
        tg_save(node, target);
    }
    TG_API_RETURN(tg_recorded(out, node, 2, in));
}

/* ---- binary cross-entropy on logits ---- */

#define BCE_LOGITS_NAME "BinaryCrossEntropyWithLogitsBackward0"

/* Elementwise loss and d(loss)/d(logit) for a scalar (or absent) pos_weight, in one pass. */
static bool bce_logits_fused(tg_tensor *z, tg_tensor *t, float pw, tg_tensor **loss, tg_tensor **dz)
{
    tg_tensor *zc = tg_as_contiguous(z), *tc = tg_as_contiguous(t);
    *loss = zc && tc ? tg_new(z->ndim, z->shape, "tg_bce_with_logits") : NULL;
    *dz = *loss ? tg_new(z->ndim, z->shape, "tg_bce_with_logits") : NULL;
    if (*dz)
        tg_run_bce_logits(tg_ptr(zc), tg_ptr(tc), tg_ptr(*loss), tg_ptr(*dz), z->numel, pw);
    tg_release(zc), tg_release(tc);
    if (!*dz) {
        tg_release(*loss);
        *loss = NULL;
        return false;
    }
    return true;
}

typedef struct {
    const float *z, *t, *pw;
    float *loss, *dz;
} bce_general_job;

static void bce_general_range(void *ctx, int64_t begin, int64_t end)
{
    const bce_general_job *j = ctx;
    for (int64_t i = begin; i < end; i++) {
        float z = j->z[i], t = j->t[i], pwt = j->pw[i] * t;
        float c = log1pf(expf(-fabsf(z)));
        j->loss[i] = pwt * (fmaxf(-z, 0.0f) + c) + (1.0f - t) * (fmaxf(z, 0.0f) + c);
        j->dz[i] = (pwt + (1.0f - t)) / (1.0f + expf(-z)) - pwt;
    }
}

/* The general pos_weight (broadcast against the input; check_pos_weight has checked it), element
 * by element in the fused kernel's form: loss = pw t softplus(-z) + (1 - t) softplus(z) and
 * d/dz = (pw t + 1 - t) s(z) - pw t, with softplus(x) = max(x, 0) + log1p(exp(-|x|)). Both loss
 * terms are >= 0, so nothing cancels; the equal form (1 - t) z + w (softplus(z) - z) gives NaN
 * (inf - inf) for a logit of +inf, where the loss is inf, as with a scalar pos_weight and in
 * PyTorch. */
static bool bce_logits_general(tg_tensor *z, tg_tensor *t, tg_tensor *pw, tg_tensor **loss,
                               tg_tensor **dz)
{
    const char *fn = "tg_bce_with_logits";
    tg_tensor *ex = tg_expand(pw, z->ndim, z->shape);
    tg_tensor *w = ex ? tg_as_contiguous(ex) : NULL;
    tg_tensor *zc = tg_as_contiguous(z), *tc = tg_as_contiguous(t);
    *loss = w && zc && tc ? tg_new(z->ndim, z->shape, fn) : NULL;
    *dz = *loss ? tg_new(z->ndim, z->shape, fn) : NULL;
    if (*dz) {
        bce_general_job j = {tg_ptr(zc), tg_ptr(tc), tg_ptr(w), tg_ptr(*loss), tg_ptr(*dz)};
        tg_parallel_for(z->numel, tg_parallel_grain_heavy(), bce_general_range, &j);
    }
    tg_release(ex), tg_release(w), tg_release(zc), tg_release(tc);
    if (*dz)
        return true;
    tg_release(*loss);
    *loss = NULL;
    return false;
}

/* pos_weight must broadcast to the input's shape; checked up front so the error names the
 * public function, not an internal tg_mul. */
static bool check_pos_weight(const tg_tensor *pw, const tg_tensor *z, const char *fn)
{
    int nd;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(pw, z, &nd, shape, fn))
        return false;
    bool same = nd == z->ndim;
    for (int i = 0; same && i < nd; i++)
        same = shape[i] == z->shape[i];
    if (!same) {
        char x[160], y[160];
        tg_set_error(TG_ESHAPE, "%s: pos_weight %s does not broadcast to input %s", fn,
                     tg_shape_str(x, sizeof x, pw->ndim, pw->shape),
                     tg_shape_str(y, sizeof y, z->ndim, z->shape));
    }
    return same;
}

/* d/dt of the logits loss. The loss is linear in t: (1 - t) softplus(z) + t pw softplus(-z), so
 * d/dt = pw softplus(-z) - softplus(z) (PyTorch's log_sigmoid(-z) - pw log_sigmoid(z)), with
 * softplus(x) = max(x, 0) + log1p(exp(-|x|)) finite for any z. Without pos_weight it is exactly
 * -z, as PyTorch computes it. */
static tg_tensor *bce_logits_dtarget(tg_tensor *z, tg_tensor *pw)
{
    if (!pw)
        return tg_neg(z);
    tg_tensor *ex = tg_expand(pw, z->ndim, z->shape);
    tg_tensor *w = ex ? tg_as_contiguous(ex) : NULL, *zc = tg_as_contiguous(z);
    tg_tensor *d = w && zc ? tg_new(z->ndim, z->shape, BCE_LOGITS_NAME) : NULL;
    if (d) {
        const float *zp = tg_ptr(zc), *wp = tg_ptr(w);
        float *dp = tg_ptr(d);
        for (int64_t i = 0; i < d->numel; i++) {
            float c = log1pf(expf(-fabsf(zp[i])));
            dp[i] = wp[i] * (fmaxf(-zp[i], 0.0f) + c) - (fmaxf(zp[i], 0.0f) + c);
        }
    }
    tg_release(ex), tg_release(w), tg_release(zc);
    return d;
}

/* saved: [0] d/dz from the forward pass, [1] the logits, [2] pos_weight (or an empty slot),
 * [3] the target. */
static tg_status bce_logits_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_reduction r = (tg_reduction)n->iargs[0];
    if (needs[0] && !(gin[0] = chain(tg_contiguous_copy(n->saved[0]), g, r)))
        return tg_last_status();
    tg_tensor *pw = n->iargs[1] ? n->saved[2] : NULL;
    if (needs[1] && !(gin[1] = chain(bce_logits_dtarget(n->saved[1], pw), g, r)))
        return tg_last_status();
    return TG_OK;
}

static const tg_node_ops BCE_LOGITS = {BCE_LOGITS_NAME, bce_logits_backward};

tg_tensor *tg_bce_with_logits(tg_tensor *logits, tg_tensor *target, tg_tensor *pos_weight,
                              tg_reduction r)
{
    const char *fn = "tg_bce_with_logits";
    TG_API_BEGIN;
    if (!logits || !target)
        TG_API_RETURN(tg_null_arg(fn));
    if (!check_reduction(r, fn) || !check_same_shape(logits, target, fn) ||
        (pos_weight && (!check_no_grad(pos_weight, "pos_weight", fn) ||
                        !check_pos_weight(pos_weight, logits, fn))))
        TG_API_RETURN(NULL);
    tg_tensor *loss = NULL, *dz = NULL;
    bool ok = !pos_weight || pos_weight->numel == 1
                  ? bce_logits_fused(logits, target, pos_weight ? tg_ptr(pos_weight)[0] : 1.0f,
                                     &loss, &dz)
                  : bce_logits_general(logits, target, pos_weight, &loss, &dz);
    if (!ok)
        TG_API_RETURN(NULL);
    tg_tensor *out = reduce_loss(loss, r, fn);
    tg_tensor *in[2] = {logits, target};
    tg_node *node = out ? tg_record(&BCE_LOGITS, out, 2, in) : NULL;
    if (node) {
        node->iargs[0] = r;
        node->iargs[1] = pos_weight != NULL;
        /* d/dz was computed here; the operands are saved as PyTorch saves them (its formulas
         * read them in the backward), so an in-place change to any of them fails the backward
         * as there. Only d/dt reads [1] and [2] here. */
        tg_save(node, dz);
        tg_save(node, logits);
        tg_save(node, pos_weight);
        tg_save(node, target);
    }
    tg_release(dz);
    TG_API_RETURN(tg_recorded(out, node, 2, in));
}

/* ---- mean squared error ----
 * Both passes run block by block so each block stays in L1 between its kernels: the forward
 * squares (x - t) into a block buffer and sums it (tg_sum_mapped, the bits of summing the whole
 * array), the backward writes (scale * (x - t)) * g block by block. The same kernels on the same
 * values as a sub, a mul and a sum over whole arrays, so the same floats, in one trip through
 * memory instead of three each way. */
#define MSE_BLOCK 4096 /* floats: three blocks fit in L1 */

typedef struct {
    const float *x, *t, *g; /* g: NULL for one value gv */
    float gv, scale, *out;
} mse_job;

static void mse_square(void *ctx, int64_t start, int64_t len, float *buf)
{
    const mse_job *j = ctx;
    const tg_kernels *k = tg_kern();
    k->sub_vv(j->x + start, j->t + start, buf, len);
    k->mul_vv(buf, buf, buf, len);
}

static void mse_grad(void *ctx, int64_t begin, int64_t end)
{
    const mse_job *j = ctx;
    const tg_kernels *k = tg_kern();
    for (int64_t i = begin; i < end; i += MSE_BLOCK) {
        int64_t len = end - i < MSE_BLOCK ? end - i : MSE_BLOCK;
        float *o = j->out + i;
        k->sub_vv(j->x + i, j->t + i, o, len);
        k->mul_vs(o, j->scale, o, len);
        if (j->g)
            k->mul_vv(o, j->g + i, o, len);
        else
            k->mul_vs(o, j->gv, o, len);
    }
}

/* PyTorch's formulas and order: d/dx = (scale * (x - t)) * g with scale = 2 / n ('mean', in
 * double, then rounded) or 2, so a 'mean' gradient stays finite where 2 (x - t) alone would
 * overflow, and it rounds as PyTorch's does when g is not 1; d/dt = (scale * (t - x)) * g, the
 * same computation with x and t swapped (negating d/dx would give -0 where x == t). */
static tg_status mse_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_tensor *x = tg_as_contiguous(n->saved[0]), *t = tg_as_contiguous(n->saved[1]);
    tg_reduction r = (tg_reduction)n->iargs[0];
    tg_status st = x && t ? TG_OK : tg_last_status();
    for (int i = 0; i < 2 && st == TG_OK; i++) {
        if (!needs[i])
            continue;
        tg_tensor *d = tg_new(x->ndim, x->shape, "MseLossBackward0");
        if (!d) {
            st = tg_last_status();
            break;
        }
        mse_job j = {i ? tg_ptr(t) : tg_ptr(x),
                     i ? tg_ptr(x) : tg_ptr(t),
                     r == TG_REDUCE_NONE ? tg_ptr(g) : NULL,
                     0.0f,
                     2.0f,
                     tg_ptr(d)};
        if (r != TG_REDUCE_NONE)
            j.gv = tg_ptr(g)[0];
        if (r == TG_REDUCE_MEAN)
            j.scale = (float)(2.0 / (double)d->numel);
        tg_parallel_for(d->numel, tg_parallel_grain(), mse_grad, &j);
        gin[i] = d;
    }
    tg_release(x), tg_release(t);
    return st;
}

static const tg_node_ops MSE = {"MseLossBackward0", mse_backward};

/* The summed or averaged loss without storing (x - t)^2. */
static tg_tensor *mse_reduced(tg_tensor *pred, tg_tensor *target, tg_reduction r, const char *fn)
{
    tg_tensor *x = tg_as_contiguous(pred), *t = tg_as_contiguous(target);
    tg_tensor *out = x && t ? tg_new(0, NULL, fn) : NULL;
    float s = 0.0f;
    mse_job j = {.x = x ? tg_ptr(x) : NULL, .t = t ? tg_ptr(t) : NULL};
    if (out && !tg_sum_mapped(x->numel, mse_square, &j, &s)) {
        tg_release(out);
        out = NULL;
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    }
    if (out)
        tg_ptr(out)[0] = r == TG_REDUCE_MEAN ? s / (float)x->numel : s;
    tg_release(x), tg_release(t);
    return out;
}

tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target, tg_reduction r)
{
    const char *fn = "tg_mse_loss";
    TG_API_BEGIN;
    if (!pred || !target)
        TG_API_RETURN(tg_null_arg(fn));
    if (!check_reduction(r, fn))
        TG_API_RETURN(NULL);
    if (!tg_same_shape(pred, target)) {
        /* F.mse_loss broadcasts input and target against each other (torch.broadcast_tensors,
         * with only a warning), unlike the two cross-entropy losses; the expands carry the
         * gradients back to the original shapes. */
        int nd;
        int64_t shape[TG_MAX_DIMS];
        /* a shape too large to hold is refused here, so the message names this function */
        if (!tg_broadcast_shape(pred, target, &nd, shape, fn) || tg_check_shape(nd, shape, fn) < 0)
            TG_API_RETURN(NULL);
        tg_tensor *x = tg_expand(pred, nd, shape), *t = tg_expand(target, nd, shape);
        tg_tensor *out = x && t ? tg_mse_loss(x, t, r) : NULL;
        tg_release(x), tg_release(t);
        TG_API_RETURN(out);
    }
    tg_tensor *out;
    if (r == TG_REDUCE_NONE) {
        bool prev = tg_set_grad_enabled(false);
        tg_tensor *diff = tg_sub(pred, target);
        out = diff ? tg_mul(diff, diff) : NULL;
        tg_set_grad_enabled(prev);
        tg_release(diff);
    } else {
        out = mse_reduced(pred, target, r, fn);
    }
    tg_tensor *in[2] = {pred, target};
    tg_node *node = out ? tg_record(&MSE, out, 2, in) : NULL;
    if (node) {
        node->iargs[0] = r;
        tg_save(node, pred);
        tg_save(node, target);
    }
    TG_API_RETURN(tg_recorded(out, node, 2, in));
}
