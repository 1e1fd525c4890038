/* Elementwise one-input ops: forward kernel, saved value, backward rule and grad_fn name sit
 * together in one table row per op. */
#include <math.h>
#include <stddef.h>

#include "../core/parallel.h"
#include "ops.h"

enum { SAVE_NONE, SAVE_INPUT, SAVE_OUTPUT, SAVE_BOTH };

typedef struct {
    tg_node_ops node; /* first: the node's ops pointer leads back to this row */
    const char *fn;
    size_t fwd; /* offsetof(tg_kernels, ...) of the forward kernel */
    size_t bwd; /* offsetof(tg_kernels, ...) of the backward kernel, 0 = special */
    int save;
    int heavy; /* HEAVY_FWD, HEAVY_BWD: kernels that split at tg_parallel_grain_heavy() */
} unary_def;

enum { HEAVY_FWD = 1, HEAVY_BWD = 2 };

static int64_t grain_of(const unary_def *d, int which)
{
    return d->heavy & which ? tg_parallel_grain_heavy() : tg_parallel_grain();
}

#define KERN(off, type) (*(const type *)((const char *)tg_kern() + (off)))

static tg_status unary_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin);
static tg_status neg_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin);
static tg_status exp_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin);
static tg_status log_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin);
static tg_status sigmoid_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin);

#define K(field) offsetof(tg_kernels, field)
static const unary_def NEG = {{"NegBackward0", neg_backward, true}, "tg_neg", K(neg), 0, SAVE_NONE};
/* exp's and log's backward are one broadcasting tg_mul / tg_div, which takes a uniform g (the
 * gradient of a sum) as the scalar operand of mul_vs / div_sv: no tensor of it is written. */
static const unary_def EXP = {
    {"ExpBackward0", exp_backward, true}, "tg_exp", K(exp), 0, SAVE_OUTPUT, HEAVY_FWD};
static const unary_def LOG = {
    {"LogBackward0", log_backward, true}, "tg_log", K(log), 0, SAVE_INPUT, HEAVY_FWD};
static const unary_def SIN = {{"SinBackward0", unary_backward, true},
                              "tg_sin",
                              K(sin),
                              K(sin_bwd),
                              SAVE_INPUT,
                              HEAVY_FWD | HEAVY_BWD};
static const unary_def COS = {{"CosBackward0", unary_backward, true},
                              "tg_cos",
                              K(cos),
                              K(cos_bwd),
                              SAVE_INPUT,
                              HEAVY_FWD | HEAVY_BWD};
static const unary_def TANH = {{"TanhBackward0", unary_backward, true},
                               "tg_tanh",
                               K(tanh),
                               K(tanh_bwd),
                               SAVE_OUTPUT,
                               HEAVY_FWD};
/* Saves its output as PyTorch does (the backward then reads y, not x, and computes no exp) and
 * its input for the rare lanes where y rounds to 1. */
static const unary_def SIGMOID = {{"SigmoidBackward0", sigmoid_backward, true},
                                  "tg_sigmoid",
                                  K(sigmoid),
                                  0,
                                  SAVE_BOTH,
                                  HEAVY_FWD};
static const unary_def RELU = {
    {"ReluBackward0", unary_backward, true}, "tg_relu", K(relu), K(relu_bwd), SAVE_OUTPUT};
static const unary_def SQRT = {
    {"SqrtBackward0", unary_backward, true}, "tg_sqrt", K(sqrt), K(sqrt_bwd), SAVE_OUTPUT};
static const unary_def ABS = {
    {"AbsBackward0", unary_backward, true}, "tg_abs", K(abs), K(abs_bwd), SAVE_INPUT};

/* The row-major floats a forward kernel reads for a: a's own when it is contiguous; else a is
 * copied into out, the result tensor, and the kernel runs on out in place (kernels allow
 * y == x). A kernel's result for an element depends on that element alone, so the floats are
 * those of a kernel run on a separate copy; but no second buffer is written and read back, and
 * no read-for-ownership of the output follows the copy: on a 1000^2 transpose, one thread, clamp
 * went from 396 to 296 us and exp from 717 to 512 (medians of 3 alternating runs). */
static const float *forward_input(tg_tensor *a, tg_tensor *out)
{
    if (a->contiguous)
        return tg_ptr(a);
    tg_copy_strided(out, a);
    return tg_ptr(out);
}

/* Output tensor of a's shape with the kernel applied; the node is recorded by the caller. */
static tg_tensor *map_unary(tg_tensor *a, const unary_def *d)
{
    tg_tensor *out = tg_new(a->ndim, a->shape, d->fn);
    if (!out)
        return NULL;
    tg_unary_fn f = KERN(d->fwd, tg_unary_fn);
    const float *x = forward_input(a, out);
    if (out->numel < TG_STREAM_MIN || !tg_needs_graph(1, &a)) {
        tg_run_unary(f, x, tg_ptr(out), out->numel, grain_of(d, HEAVY_FWD));
        return out;
    }
    /* A large output goes to memory before anything reads it again. In a graph being recorded
     * for training, a sum or mean into the loss often comes next: the sum taken on the way
     * spares it a read of the whole output (tg_known_sum). Sigmoid forward + backward through
     * a sum of 16M floats, one thread, Intel Xeon VM: 16.4-17.8 -> 12.9-13.6 ms; the forward
     * alone pays for the adds, 4.9-5.1 -> 5.4-5.5 ms (sin 5.9-6.2 -> 6.6-7.0), so an op that
     * records nothing (inference, grad mode off) does not take this path. */
    float s = tg_run_unary_sum(f, x, tg_ptr(out), out->numel, grain_of(d, HEAVY_FWD));
    tg_keep_sum(out, s, tg_kern());
    return out;
}

/* Records the node and saves what the backward needs; releases out on failure. */
static tg_tensor *finish(const tg_node_ops *ops, tg_tensor *out, tg_tensor *a, int save)
{
    tg_node *node = tg_record(ops, out, 1, &a);
    if (!node)
        return tg_recorded(out, node, 1, &a);
    bool ok = true;
    if (save == SAVE_INPUT || save == SAVE_BOTH)
        ok = tg_save(node, a);
    if (ok && (save == SAVE_OUTPUT || save == SAVE_BOTH))
        ok = tg_save_output(node, out);
    if (!ok) {
        tg_release(out);
        return NULL;
    }
    return out;
}

static tg_tensor *unary(const unary_def *d, tg_tensor *a)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(d->fn));
    tg_tensor *out = map_unary(a, d);
    TG_API_RETURN(out ? finish(&d->node, out, a, d->save) : NULL);
}

/* A saved tensor's floats in row-major order: s itself when it is contiguous (borrowed: the node
 * holds it through its backward), else a contiguous copy, which *copy then owns; *copy is NULL
 * otherwise, so tg_release(*copy) is always right. Retaining s for the call instead, as
 * tg_as_contiguous does, cost each node two atomic read-modify-writes of its count. */
static tg_tensor *dense_saved(tg_tensor *s, tg_tensor **copy)
{
    *copy = s->contiguous ? NULL : tg_contiguous_copy(s);
    return s->contiguous ? s : *copy;
}

/* gx = bwd(v, g) for the rows whose derivative depends on one saved value. */
static tg_status unary_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    const unary_def *d = (const unary_def *)n->ops;
    (void)needs;
    tg_tensor *vc, *v = dense_saved(n->saved[0], &vc);
    tg_tensor *gx = v ? tg_new(v->ndim, v->shape, n->ops->name) : NULL;
    if (gx)
        tg_run_unary_bwd(KERN(d->bwd, tg_unary_bwd_fn), tg_ptr(v), tg_ptr(g), !g->contiguous,
                         tg_ptr(gx), v->numel, grain_of(d, HEAVY_BWD));
    tg_release(vc);
    gin[0] = gx;
    return gx ? TG_OK : tg_last_status();
}

/* saved[0] = x, saved[1] = y = sigmoid(x). */
static tg_status sigmoid_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    tg_tensor *xc, *yc = NULL, *x = dense_saved(n->saved[0], &xc);
    tg_tensor *y = x ? dense_saved(n->saved[1], &yc) : NULL;
    tg_tensor *gx = y ? tg_new(x->ndim, x->shape, n->ops->name) : NULL;
    if (gx)
        tg_run_sigmoid_bwd(tg_ptr(y), tg_ptr(x), tg_ptr(g), !g->contiguous, tg_ptr(gx), x->numel);
    tg_release(yc);
    tg_release(xc);
    gin[0] = gx;
    return gx ? TG_OK : tg_last_status();
}

static tg_status neg_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_neg_grad_(g, n->ops->name);
    return gin[0] ? TG_OK : tg_last_status();
}

static tg_status exp_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_mul(g, n->saved[0]);
    return gin[0] ? TG_OK : tg_last_status();
}

static tg_status log_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_div(g, n->saved[0]);
    return gin[0] ? TG_OK : tg_last_status();
}

/* The public entry points, one table row each. */
/* clang-format off */
tg_tensor *tg_neg(tg_tensor *a) { return unary(&NEG, a); }
tg_tensor *tg_exp(tg_tensor *a) { return unary(&EXP, a); }
tg_tensor *tg_log(tg_tensor *a) { return unary(&LOG, a); }
tg_tensor *tg_sin(tg_tensor *a) { return unary(&SIN, a); }
tg_tensor *tg_cos(tg_tensor *a) { return unary(&COS, a); }
tg_tensor *tg_tanh(tg_tensor *a) { return unary(&TANH, a); }
tg_tensor *tg_sigmoid(tg_tensor *a) { return unary(&SIGMOID, a); }
tg_tensor *tg_relu(tg_tensor *a) { return unary(&RELU, a); }
tg_tensor *tg_sqrt(tg_tensor *a) { return unary(&SQRT, a); }
tg_tensor *tg_abs(tg_tensor *a) { return unary(&ABS, a); }
/* clang-format on */

/* ---- ops with a scalar parameter ---- */

static tg_status clamp_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    tg_tensor *xc, *x = dense_saved(n->saved[0], &xc);
    tg_tensor *gx = x ? tg_new(x->ndim, x->shape, "ClampBackward1") : NULL;
    if (gx)
        tg_run_clamp_bwd(tg_ptr(x), tg_ptr(g), !g->contiguous, tg_ptr(gx), x->numel, n->fargs[0],
                         n->fargs[1]);
    tg_release(xc);
    gin[0] = gx;
    return gx ? TG_OK : tg_last_status();
}

static const tg_node_ops CLAMP = {"ClampBackward1", clamp_backward, true};

tg_tensor *tg_clamp(tg_tensor *a, float lo, float hi)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_clamp"));
    if (isnan(lo) && isnan(hi)) {
        tg_set_error(TG_EINVAL, "tg_clamp: at least one of lo and hi must be given (not NaN)");
        TG_API_RETURN(NULL);
    }
    tg_tensor *out = tg_new(a->ndim, a->shape, "tg_clamp");
    if (out)
        tg_run_clamp(forward_input(a, out), tg_ptr(out), out->numel, lo, hi);
    if (!out)
        TG_API_RETURN(NULL);
    tg_node *node = tg_record(&CLAMP, out, 1, &a);
    if (node) {
        node->fargs[0] = lo;
        node->fargs[1] = hi;
        tg_save(node, a);
    }
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

static tg_status pow_scalar_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    tg_tensor *xc, *x = dense_saved(n->saved[0], &xc);
    tg_tensor *gx = x ? tg_new(x->ndim, x->shape, "PowBackward0") : NULL;
    if (gx)
        tg_run_pow_scalar_bwd(tg_ptr(x), tg_ptr(g), !g->contiguous, tg_ptr(gx), x->numel,
                              n->fargs[0]);
    tg_release(xc);
    gin[0] = gx;
    return gx ? TG_OK : tg_last_status();
}

static const tg_node_ops POW_SCALAR = {"PowBackward0", pow_scalar_backward, true};

tg_tensor *tg_pow_scalar(tg_tensor *a, float e)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_pow_scalar"));
    tg_tensor *out = tg_new(a->ndim, a->shape, "tg_pow_scalar");
    if (out)
        tg_run_pow_scalar(forward_input(a, out), tg_ptr(out), out->numel, e);
    if (!out)
        TG_API_RETURN(NULL);
    tg_node *node = tg_record(&POW_SCALAR, out, 1, &a);
    if (node) {
        node->fargs[0] = e;
        tg_save(node, a);
    }
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}
