/* The autograd engine: accumulation, retain_graph, detach, grad mode, grad_fn names (checked
 * against PyTorch 1.13), version counters, error paths, very long chains and shared inputs. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "tapegrad.h"
#include "parallel.h"

/* A leaf [n] with the given values that requires grad. */
static tg_tensor *leaf(const float *v, int64_t n)
{
    return tg_requires_grad_(tg_from_data(v, 1, &n), true);
}

/* Asserts that t's row-major values equal want within float rounding of a double reference. */
static void assert_values(const tg_tensor *t, const double *want, int64_t n)
{
    assert_non_null(t);
    assert_int_equal(tg_numel(t), n);
    float *v = tg_test_values(t);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++) {
        if (!tg_test_close(v[i], want[i], 1e-6, 1e-6))
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i, (double)v[i], want[i]);
    }
    free(v);
}

static void assert_error_contains(tg_status want, const char *part)
{
    assert_int_equal(tg_last_status(), want);
    if (!strstr(tg_last_error(), part))
        fail_msg("error message \"%s\" does not contain \"%s\"", tg_last_error(), part);
}

/* ---- accumulation and retain_graph ---- */

static void test_grad_accumulates_across_backward_calls(void **state)
{
    (void)state;
    const float xv[3] = {1, -2, 3};
    tg_tensor *x = leaf(xv, 3);
    assert_null(tg_grad(x));
    tg_scope_begin();
    tg_tensor *y1 = tg_sum(tg_mul(x, x));
    assert_int_equal(tg_backward(y1, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){2, -4, 6}, 3);
    tg_tensor *y2 = tg_sum(tg_mul_scalar(x, 3.0f));
    assert_int_equal(tg_backward(y2, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){5, -1, 9}, 3);
    tg_grad_reset(x);
    assert_null(tg_grad(x));
    tg_tensor *y3 = tg_sum(tg_mul_scalar(x, -1.0f));
    assert_int_equal(tg_backward(y3, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){-1, -1, -1}, 3);
    tg_scope_end();
    tg_release(x);
}

/* As in PyTorch, a later backward adds into the grad tensor already there: a reference the
 * program kept to it (or a view of it) sees the sum, and tg_grad returns the same tensor. */
static void test_kept_grad_reference_sees_accumulation(void **state)
{
    (void)state;
    const float xv[4] = {1, -2, 3, 0.5f};
    tg_tensor *x = leaf(xv, 4);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_mul_scalar(x, 2.0f));
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    tg_tensor *held = tg_keep(tg_retain(tg_grad(x)));
    tg_tensor *view = tg_keep(tg_reshape(held, 2, (int64_t[]){2, 2}));
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_ptr_equal(tg_grad(x), held);
    assert_values(held, (double[]){4, 4, 4, 4}, 4);
    assert_values(view, (double[]){4, 4, 4, 4}, 4);
    tg_scope_end();
    tg_release(view), tg_release(held), tg_release(x);
}

/* The gradient of a sum or mean reaches an elementwise op as one value broadcast over the shape,
 * and the ops that take it that way must give the bits of a dense gradient of the same value:
 * sum(op(x)) and mean(op(x)) against op(x) backward with a dense grad_output. Sizes below and
 * above the threading and streaming thresholds; x positive so log and sqrt are defined. */
static tg_tensor *times_2_5(tg_tensor *x)
{
    return tg_mul_scalar(x, 2.5f);
}
static tg_tensor *plus_1_5(tg_tensor *x)
{
    return tg_add_scalar(x, 1.5f);
}
static tg_tensor *three_minus(tg_tensor *x)
{
    return tg_rsub_scalar(3.0f, x);
}
/* A chain the one value passes through whole: 3 - (-(x * 2.5) + 1.5). */
static tg_tensor *scalar_chain(tg_tensor *x)
{
    return tg_rsub_scalar(3.0f, tg_add_scalar(tg_neg(tg_mul_scalar(x, 2.5f)), 1.5f));
}

/* Two-input ops against a positive constant of x's values (detached, so not in the graph). */
static tg_tensor *konst(tg_tensor *x)
{
    return tg_add_scalar(tg_mul_scalar(tg_detach(x), 0.5f), 0.75f);
}
static tg_tensor *x_plus_c(tg_tensor *x)
{
    return tg_add(x, konst(x));
}
static tg_tensor *c_minus_x(tg_tensor *x)
{
    return tg_sub(konst(x), x);
}
static tg_tensor *x_times_c(tg_tensor *x)
{
    return tg_mul(x, konst(x));
}
static tg_tensor *x_over_c(tg_tensor *x)
{
    return tg_div(x, konst(x));
}
static tg_tensor *c_over_x(tg_tensor *x)
{
    return tg_div(konst(x), x);
}
static tg_tensor *x_pow_c(tg_tensor *x)
{
    return tg_pow(x, konst(x));
}
static tg_tensor *c_pow_x(tg_tensor *x)
{
    return tg_pow(konst(x), x);
}
/* x on both sides: the leaf gets two gradients, through one node and through two */
static tg_tensor *x_times_x(tg_tensor *x)
{
    return tg_mul(x, x);
}
static tg_tensor *sin_plus_sin(tg_tensor *x)
{
    tg_tensor *y = tg_sin(x);
    return tg_add(y, y);
}
/* broadcasting: a one-element tensor against x, and x against two rows (reduced back to x) */
static tg_tensor *x_times_one(tg_tensor *x)
{
    return tg_mul(x, tg_full(1, (int64_t[]){1}, -1.25f));
}
static tg_tensor *rows_minus_x(tg_tensor *x)
{
    int64_t shape[2] = {2, tg_numel(x)};
    return tg_sub(tg_mul_scalar(tg_expand(tg_detach(x), 2, shape), 3.0f), x);
}
static tg_tensor *clamp_mid(tg_tensor *x)
{
    return tg_clamp(x, 0.3f, 0.7f);
}
static tg_tensor *squared(tg_tensor *x)
{
    return tg_pow_scalar(x, 2.0f);
}
static tg_tensor *pow_2_5(tg_tensor *x)
{
    return tg_pow_scalar(x, 2.5f);
}

static void test_uniform_grad_matches_dense(void **state)
{
    (void)state;
    typedef tg_tensor *(*op_fn)(tg_tensor *);
    const op_fn ops[] = {tg_exp,       tg_log,       tg_sin,   tg_cos,    tg_tanh,      tg_sigmoid,
                         tg_relu,      tg_sqrt,      tg_abs,   tg_neg,    times_2_5,    plus_1_5,
                         three_minus,  scalar_chain, x_plus_c, c_minus_x, x_times_c,    x_over_c,
                         c_over_x,     x_pow_c,      c_pow_x,  x_times_x, sin_plus_sin, x_times_one,
                         rows_minus_x, clamp_mid,    squared,  pow_2_5};
    const int64_t sizes[] = {7, 40000, ((int64_t)1 << 22) + 3};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int64_t n = sizes[s];
        tg_scope_begin();
        tg_tensor *x =
            tg_keep(tg_requires_grad_(tg_add_scalar(tg_rand(1, &n, 5 + s), 0.05f), true));
        tg_scope_end();
        for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
            for (int mean = 0; mean < 2; mean++) {
                tg_scope_begin();
                tg_tensor *y = ops[o](x);
                assert_int_equal(tg_backward(mean ? tg_mean(y) : tg_sum(y), NULL, false), TG_OK);
                tg_tensor *uniform = tg_keep(tg_clone(tg_grad(x)));
                tg_grad_reset(x);
                tg_tensor *y2 = ops[o](x);
                float v = mean ? 1.0f / (float)tg_numel(y2) : 1.0f;
                tg_tensor *g = tg_full(tg_ndim(y2), tg_shape(y2), v);
                assert_int_equal(tg_backward(y2, g, false), TG_OK);
                float *a = tg_data(uniform), *b = tg_data(tg_grad(x));
                for (int64_t i = 0; i < n; i++)
                    if (memcmp(&a[i], &b[i], sizeof(float)) != 0)
                        fail_msg("op %zu n %lld %s: element %lld %a vs dense %a", o, (long long)n,
                                 mean ? "mean" : "sum", (long long)i, a[i], b[i]);
                tg_grad_reset(x);
                tg_release(uniform);
                tg_scope_end();
            }
        }
        tg_release(x);
    }
}

static void test_retain_graph(void **state)
{
    (void)state;
    const float xv[2] = {0.5f, -1.0f};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_sin(x));
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_int_equal(tg_backward(y, NULL, false), TG_OK); /* frees the saved tensors */
    double want[2] = {3 * cos(0.5), 3 * cos(-1.0)};
    assert_values(tg_grad(x), want, 2);
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "retain_graph");
    assert_values(tg_grad(x), want, 2); /* the failed call changed nothing */
    assert_int_equal(tg_backward(y, NULL, true), TG_EGRAPH);
    tg_scope_end();
    tg_release(x);
}

static void test_second_backward_without_retain_fails(void **state)
{
    (void)state;
    const float xv[2] = {0.25f, 2.0f};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_mul(tg_exp(x), x));
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_string_not_equal(tg_last_error(), "");
    tg_scope_end();
    tg_release(x);
}

/* As in PyTorch: x * 2 saves its scalar (as a wrapped tensor there), so a second backward
 * through it fails; x + 2, 2 - x and the views and sums save nothing, so through them it runs
 * again and accumulates. */
static void test_second_backward_through_scalar_ops(void **state)
{
    (void)state;
    const float xv[2] = {0.25f, 2.0f};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_mul_scalar(x, 3.0f));
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "MulBackward0");
    assert_values(tg_grad(x), (double[]){3, 3}, 2);
    tg_grad_reset(x);
    tg_tensor *z = tg_mean(tg_transpose(tg_rsub_scalar(1.0f, tg_add_scalar(x, 2.0f)), 0, 0));
    assert_int_equal(tg_backward(z, NULL, false), TG_OK);
    assert_int_equal(tg_backward(z, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){-1, -1}, 2);
    tg_scope_end();
    tg_release(x);
}

/* A backward that fails (a freed graph, a saved tensor changed in place) fails before any .grad
 * is added to, as in PyTorch: x's grad from the first backward is left as it was, not summed
 * with the part of the second that ran before the failure. */
static void test_failed_backward_leaves_grads_alone(void **state)
{
    (void)state;
    const float xv[3] = {0, 1, 2};
    tg_tensor *x = leaf(xv, 3), *a = leaf(xv, 3);
    tg_scope_begin();
    tg_tensor *e = tg_exp(x);
    assert_int_equal(tg_backward(tg_sum(e), NULL, false), TG_OK);
    const double want[3] = {1, exp(1.0), exp(2.0)};
    assert_values(tg_grad(x), want, 3);
    assert_int_equal(tg_backward(tg_sum(tg_add(e, x)), NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "a second time");
    assert_values(tg_grad(x), want, 3);
    tg_tensor *y = tg_exp(a), *s = tg_sum(tg_add(y, a));
    TG_NO_GRAD
    {
        assert_non_null(tg_mul_scalar_(y, 2.0f));
    }
    assert_int_equal(tg_backward(s, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "ExpBackward0");
    assert_null(tg_grad(a));
    tg_scope_end();
    tg_release(x), tg_release(a);
}

/* Ops that save what PyTorch 1.13 saves, though their backward here reads less: an in-place
 * change to it, or a second backward without retain_graph, fails there and here alike.
 * mean_dim saves its input (sum_dim nothing); pow of two tensors its output; BCE with logits
 * the logits, the target and pos_weight. */
static void test_saved_as_pytorch(void **state)
{
    (void)state;
    const float xv[4] = {1, 2, 3, 4}, tv[2] = {1, 0}, pv[2] = {2, 3};
    tg_tensor *x = tg_requires_grad_(tg_from_data(xv, 2, (int64_t[]){2, 2}), true);
    tg_scope_begin();
    tg_tensor *m = tg_sum(tg_mean_dim(x, 0, false)), *sd = tg_sum(tg_sum_dim(x, 0, false));
    assert_int_equal(tg_backward(m, NULL, false), TG_OK);
    assert_int_equal(tg_backward(m, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "MeanBackward1");
    assert_int_equal(tg_backward(sd, NULL, false), TG_OK);
    assert_int_equal(tg_backward(sd, NULL, false), TG_OK);
    m = tg_sum(tg_mean_dim(x, 1, true));
    TG_NO_GRAD
    {
        assert_non_null(tg_mul_scalar_(x, 2.0f));
    }
    assert_int_equal(tg_backward(m, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "MeanBackward1");

    for (int rg = 0; rg < 2; rg++) { /* out is saved whichever operand requires grad */
        tg_tensor *a = leaf(tv, 2), *b = tg_from_data(pv, 1, (int64_t[]){2});
        tg_requires_grad_(b, rg == 1);
        tg_tensor *y = tg_pow(tg_add_scalar(a, 1.0f), b), *s = tg_sum(y);
        TG_NO_GRAD
        {
            assert_non_null(tg_mul_scalar_(y, 10.0f));
        }
        assert_int_equal(tg_backward(s, NULL, false), TG_EGRAPH);
        assert_error_contains(TG_EGRAPH, "PowBackward1");
        tg_release(a), tg_release(b);
    }

    for (int which = 0; which < 3; which++) { /* the logits, the target, pos_weight */
        tg_tensor *z0 = leaf(tv, 2), *t = tg_from_data(tv, 1, (int64_t[]){2});
        tg_tensor *pw = tg_from_data(pv, 1, (int64_t[]){2}), *z = tg_mul_scalar(z0, 0.5f);
        tg_tensor *l = tg_bce_with_logits(z, t, pw, TG_REDUCE_SUM);
        tg_tensor *changed[3] = {z, t, pw};
        TG_NO_GRAD
        {
            assert_non_null(tg_fill_(changed[which], 0.25f));
        }
        assert_int_equal(tg_backward(l, NULL, false), TG_EGRAPH);
        assert_error_contains(TG_EGRAPH, "BinaryCrossEntropyWithLogitsBackward0");
        assert_null(tg_grad(z0));
        tg_release(z0), tg_release(t), tg_release(pw);
    }
    tg_scope_end();
    tg_release(x);
}

/* ---- detach, requires_grad_, retain_grad, grad mode ---- */

static void test_detach_shares_storage_without_grad(void **state)
{
    (void)state;
    const float xv[3] = {1, 2, 3};
    tg_tensor *x = leaf(xv, 3);
    tg_tensor *h = tg_mul_scalar(x, 2.0f);
    tg_tensor *d = tg_detach(h);
    assert_non_null(d);
    assert_false(tg_requires_grad(d));
    assert_true(tg_is_leaf(d));
    assert_null(tg_grad_fn_name(d));
    assert_ptr_equal(tg_data(d), tg_data(h)); /* same storage, same offset */
    tg_data(d)[1] = 40.0f;
    assert_true(tg_data(h)[1] == 40.0f);
    /* in place on the detached alias is allowed and bumps the shared version */
    uint32_t v = tg_version(h);
    assert_non_null(tg_mul_scalar_(d, 0.5f));
    assert_true(tg_version(h) != v);
    assert_true(tg_data(h)[1] == 20.0f);
    tg_tensor *y = tg_sum(d);
    assert_false(tg_requires_grad(y));
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    tg_release(y), tg_release(d), tg_release(h), tg_release(x);
}

static void test_requires_grad_flag(void **state)
{
    (void)state;
    const float xv[2] = {1, 2};
    tg_tensor *x = leaf(xv, 2);
    assert_true(tg_requires_grad(x));
    assert_ptr_equal(tg_requires_grad_(x, false), x);
    assert_false(tg_requires_grad(x));
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_exp(x));
    assert_false(tg_requires_grad(y));
    assert_null(tg_grad_fn_name(y));
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    tg_scope_end();
    /* a non-leaf cannot be switched off; switching it on is a no-op */
    tg_requires_grad_(x, true);
    tg_tensor *h = tg_exp(x);
    assert_ptr_equal(tg_requires_grad_(h, true), h);
    assert_null(tg_requires_grad_(h, false));
    assert_int_equal(tg_last_status(), TG_EGRAPH);
    assert_true(tg_requires_grad(h));
    tg_release(h), tg_release(x);
}

/* requires_grad_(x, false) after x was used: backward still runs, x.grad stays None (PyTorch's
 * AccumulateGrad reads the flag at backward time); turned on again, x accumulates again. */
static void test_requires_grad_turned_off_after_use(void **state)
{
    (void)state;
    const float xv[2] = {1, 2}, wv[2] = {3, 4};
    tg_tensor *x = leaf(xv, 2), *w = leaf(wv, 2);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_mul(x, w));
    assert_non_null(tg_requires_grad_(x, false));
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_null(tg_grad(x));
    assert_values(tg_grad(w), (double[]){1, 2}, 2);
    assert_non_null(tg_requires_grad_(x, true));
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){3, 4}, 2);
    assert_values(tg_grad(w), (double[]){2, 4}, 2);
    tg_scope_end();
    tg_release(w), tg_release(x);
}

static void test_retain_grad_on_non_leaf(void **state)
{
    (void)state;
    const float xv[3] = {1, -1, 0.5f};
    tg_tensor *x = leaf(xv, 3);
    tg_scope_begin();
    tg_tensor *h = tg_mul_scalar(x, 2.0f);
    tg_tensor *k = tg_add_scalar(x, 1.0f);
    tg_retain_grad(h);
    assert_int_equal(tg_last_status(), TG_OK);
    tg_tensor *y = tg_sum(tg_mul(tg_mul(h, h), k)); /* dy/dh = 2 h k, dy/dx = 4 h k + h^2 */
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_values(tg_grad(h), (double[]){8, 0, 3}, 3);
    assert_null(tg_grad(k)); /* not retained */
    assert_values(tg_grad(x), (double[]){20, 4, 7}, 3);
    tg_scope_end();
    tg_tensor *c = tg_ones(1, (int64_t[]){2});
    tg_retain_grad(c);
    assert_int_equal(tg_last_status(), TG_EGRAPH);
    tg_release(c), tg_release(x);
}

static void test_retained_grad_is_not_aliased(void **state)
{
    (void)state;
    /* h's gradient flows on unchanged through add_scalar/clone nodes; storing it as h.grad must
     * not let later accumulation (into h.grad, x.grad or another node) write through it */
    const float xv[2] = {1, -2};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *h = tg_mul_scalar(x, 2.0f);
    tg_retain_grad(h);
    tg_tensor *k1 = tg_clone(tg_add_scalar(h, 1.0f));
    tg_tensor *k2 = tg_mul_scalar(h, 3.0f);
    tg_tensor *y = tg_sum(tg_add(tg_mul(k1, k1), tg_add(k2, h))); /* dy/dh = 2(h + 1) + 4 */
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_values(tg_grad(h), (double[]){10, -2}, 2);
    assert_values(tg_grad(x), (double[]){20, -4}, 2);
    assert_int_equal(tg_backward(y, NULL, true), TG_OK);
    assert_values(tg_grad(h), (double[]){20, -4}, 2);
    assert_values(tg_grad(x), (double[]){40, -8}, 2);
    tg_grad_reset(h);
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_values(tg_grad(h), (double[]){10, -2}, 2);
    assert_values(tg_grad(x), (double[]){60, -12}, 2);
    /* the root itself can retain its grad */
    tg_tensor *r = tg_mul_scalar(x, 1.0f);
    tg_retain_grad(r);
    assert_int_equal(tg_backward(r, tg_from_data((float[]){5, 6}, 1, (int64_t[]){2}), false),
                     TG_OK);
    assert_values(tg_grad(r), (double[]){5, 6}, 2);
    assert_values(tg_grad(x), (double[]){65, -6}, 2);
    tg_scope_end();
    tg_release(x);
}

/* Leaves a TG_NO_GRAD block by return; reports the mode seen inside. */
static bool return_from_no_grad(void)
{
    TG_NO_GRAD
    {
        return tg_grad_enabled();
    }
    return true;
}

static void test_grad_mode(void **state)
{
    (void)state;
    const float xv[2] = {1, 2};
    tg_tensor *x = leaf(xv, 2);
    assert_true(tg_grad_enabled());
    tg_tensor *a = NULL, *b = NULL;
    TG_NO_GRAD
    {
        assert_false(tg_grad_enabled());
        a = tg_mul_scalar(x, 2.0f);
        TG_NO_GRAD
        {
            assert_false(tg_grad_enabled());
        }
        assert_false(tg_grad_enabled()); /* the inner block restores "off", not "on" */
    }
    assert_true(tg_grad_enabled());
    assert_false(tg_requires_grad(a));
    assert_null(tg_grad_fn_name(a));
    b = tg_mul_scalar(x, 2.0f);
    assert_true(tg_requires_grad(b));
    assert_string_equal(tg_grad_fn_name(b), "MulBackward0");
    assert_true(tg_set_grad_enabled(false));
    assert_false(tg_set_grad_enabled(false));
    TG_NO_GRAD {}
    assert_false(tg_grad_enabled());
    assert_false(tg_set_grad_enabled(true));
    assert_true(tg_grad_enabled());
    /* however the block is left, the mode before it comes back */
    assert_false(return_from_no_grad());
    assert_true(tg_grad_enabled());
    for (int i = 0; i < 3; i++)
        TG_NO_GRAD
        {
            if (i == 1)
                break;
        }
    assert_true(tg_grad_enabled());
    for (int i = 0; i < 3; i++) {
        TG_NO_GRAD
        {
            assert_false(tg_grad_enabled());
            break; /* leaves the block, not this loop */
        }
        assert_true(tg_grad_enabled());
    }
    TG_NO_GRAD
    {
        goto left;
    }
left:
    assert_true(tg_grad_enabled());
    tg_release(a), tg_release(b), tg_release(x);
}

/* ---- grad_fn names, as PyTorch 1.13 prints type(t.grad_fn).__name__ ---- */

static void expect_name(tg_tensor *t, const char *want)
{
    assert_non_null(t);
    const char *got = tg_grad_fn_name(t);
    if (!got || strcmp(got, want) != 0)
        fail_msg("grad_fn is %s, PyTorch names it %s", got ? got : "NULL", want);
}

static void test_grad_fn_names(void **state)
{
    (void)state;
    tg_scope_begin();
    /* x [3, 4], y [3, 4], v [4], w [3], p in (0, 1), s 0-d, all requiring grad */
    tg_tensor *x = tg_requires_grad_(tg_test_tensor(2, (int64_t[]){3, 4}, 1, 0.5f, 2), true);
    tg_tensor *y = tg_requires_grad_(tg_test_tensor(2, (int64_t[]){3, 4}, 2, -1, 1), true);
    tg_tensor *v = tg_requires_grad_(tg_test_tensor(1, (int64_t[]){4}, 3, -1, 1), true);
    tg_tensor *w = tg_requires_grad_(tg_test_tensor(1, (int64_t[]){3}, 4, -1, 1), true);
    tg_tensor *p = tg_requires_grad_(tg_test_tensor(2, (int64_t[]){3, 4}, 5, 0.1f, 0.9f), true);
    tg_tensor *s = tg_requires_grad_(tg_scalar(2.0f), true);
    tg_tensor *t = tg_test_tensor(2, (int64_t[]){3, 4}, 6, 0, 1);
    assert_null(tg_grad_fn_name(x)); /* leaves have none */

    /* Expected names from PyTorch 1.13 (torch.__version__ 1.13.0a0), e.g.
     * type((x.t().reshape(12)).grad_fn).__name__ == "UnsafeViewBackward0". */
    expect_name(tg_add(x, y), "AddBackward0");
    expect_name(tg_sub(x, y), "SubBackward0");
    expect_name(tg_mul(x, y), "MulBackward0");
    expect_name(tg_mul(x, x), "MulBackward0");
    expect_name(tg_div(x, y), "DivBackward0");
    expect_name(tg_pow(x, y), "PowBackward1"); /* x ** y */
    expect_name(tg_add_scalar(x, 2.0f), "AddBackward0");
    expect_name(tg_mul_scalar(x, 2.0f), "MulBackward0");   /* x * 2 */
    expect_name(tg_pow_scalar(x, 2.0f), "PowBackward0");   /* x ** 2 */
    expect_name(tg_rsub_scalar(2.0f, x), "RsubBackward1"); /* 2 - x */
    expect_name(tg_neg(x), "NegBackward0");
    expect_name(tg_exp(x), "ExpBackward0");
    expect_name(tg_log(x), "LogBackward0");
    expect_name(tg_sin(x), "SinBackward0");
    expect_name(tg_cos(x), "CosBackward0");
    expect_name(tg_tanh(x), "TanhBackward0");
    expect_name(tg_sigmoid(x), "SigmoidBackward0");
    expect_name(tg_relu(x), "ReluBackward0");
    expect_name(tg_sqrt(x), "SqrtBackward0");
    expect_name(tg_abs(x), "AbsBackward0");
    expect_name(tg_clamp(x, -0.5f, 0.5f), "ClampBackward1");
    expect_name(tg_clamp(x, -0.5f, NAN), "ClampBackward1"); /* clamp(min=) too */
    expect_name(tg_clamp(x, NAN, 0.5f), "ClampBackward1");
    expect_name(tg_sum(x), "SumBackward0");
    expect_name(tg_mean(x), "MeanBackward0");
    expect_name(tg_sum_dim(x, 1, false), "SumBackward1");
    expect_name(tg_sum_dim(x, -1, true), "SumBackward1");
    expect_name(tg_mean_dim(x, 0, false), "MeanBackward1");
    expect_name(tg_sum_dim(s, 0, false), "SumBackward1"); /* s.sum(0) on a 0-d tensor */
    expect_name(tg_mean_dim(s, -1, false), "MeanBackward1");
    expect_name(tg_matmul(x, tg_transpose(y, 0, 1)), "MmBackward0");
    expect_name(tg_matmul(x, v), "MvBackward0");
    expect_name(tg_matmul(w, x), "SqueezeBackward3"); /* 1-D @ 2-D */
    expect_name(tg_matmul(v, v), "DotBackward0");
    expect_name(tg_reshape(x, 1, (int64_t[]){12}), "ReshapeAliasBackward0");
    expect_name(tg_reshape(x, 2, (int64_t[]){3, 4}), "ReshapeAliasBackward0");
    expect_name(tg_reshape(tg_transpose(x, 0, 1), 1, (int64_t[]){12}), "UnsafeViewBackward0");
    expect_name(tg_reshape(tg_transpose(x, 0, 1), 3, (int64_t[]){4, 3, 1}),
                "ReshapeAliasBackward0"); /* a view exists */
    expect_name(tg_reshape(tg_narrow(x, 1, 0, 2), 1, (int64_t[]){6}), "UnsafeViewBackward0");
    expect_name(tg_reshape(tg_narrow(x, 0, 0, 2), 1, (int64_t[]){8}), "ReshapeAliasBackward0");
    expect_name(tg_reshape(tg_expand(x, 3, (int64_t[]){2, 3, 4}), 2, (int64_t[]){6, 4}),
                "UnsafeViewBackward0");
    expect_name(tg_reshape(tg_expand(x, 3, (int64_t[]){2, 3, 4}), 2, (int64_t[]){2, 12}),
                "ReshapeAliasBackward0");
    expect_name(tg_reshape(s, 1, (int64_t[]){1}), "ReshapeAliasBackward0");
    expect_name(tg_transpose(x, 0, 1), "TransposeBackward0");
    expect_name(tg_transpose(x, 1, 1), "TransposeBackward0");
    expect_name(tg_permute(x, (int[]){1, 0}), "PermuteBackward0");
    expect_name(tg_permute(x, (int[]){0, 1}), "PermuteBackward0");
    expect_name(tg_narrow(x, 0, 1, 2), "SliceBackward0");
    expect_name(tg_expand(v, 2, (int64_t[]){3, 4}), "ExpandBackward0");
    expect_name(tg_contiguous(tg_transpose(x, 0, 1)), "CloneBackward0");
    expect_name(tg_clone(x), "CloneBackward0");
    /* contiguous() of a contiguous tensor is the tensor itself, grad_fn included */
    tg_tensor *m = tg_mul_scalar(x, 1.0f);
    tg_tensor *mc = tg_contiguous(m);
    assert_ptr_equal(mc, m);
    expect_name(mc, "MulBackward0");
    tg_tensor *xc = tg_contiguous(x);
    assert_ptr_equal(xc, x);
    assert_null(tg_grad_fn_name(xc));
    expect_name(tg_binary_cross_entropy(p, t, TG_REDUCE_MEAN), "BinaryCrossEntropyBackward0");
    expect_name(tg_binary_cross_entropy(p, t, TG_REDUCE_NONE), "BinaryCrossEntropyBackward0");
    expect_name(tg_bce_with_logits(y, t, NULL, TG_REDUCE_MEAN),
                "BinaryCrossEntropyWithLogitsBackward0");
    expect_name(tg_bce_with_logits(y, t, tg_ones(1, (int64_t[]){4}), TG_REDUCE_SUM),
                "BinaryCrossEntropyWithLogitsBackward0");
    expect_name(tg_bce_with_logits(y, t, NULL, TG_REDUCE_NONE),
                "BinaryCrossEntropyWithLogitsBackward0");
    expect_name(tg_mse_loss(x, y, TG_REDUCE_MEAN), "MseLossBackward0");
    expect_name(tg_mse_loss(x, y, TG_REDUCE_NONE), "MseLossBackward0");
    tg_scope_end();
}

/* ---- version counters: a stale saved tensor fails backward, naming the in-place op ---- */

static void test_inplace_on_saved_input_fails_backward(void **state)
{
    (void)state;
    const float av[3] = {1, 2, 3}, cv[3] = {4, 5, 6};
    tg_tensor *a = leaf(av, 3);
    tg_tensor *c = tg_from_data(cv, 1, (int64_t[]){3}); /* no grad: in place is allowed */
    tg_scope_begin();
    tg_tensor *b = tg_sum(tg_mul(a, c)); /* MulBackward0 saved c to compute a's gradient */
    uint32_t v = tg_version(c);
    assert_non_null(tg_mul_scalar_(c, 2.0f));
    assert_int_equal(tg_version(c), v + 1);
    assert_int_equal(tg_backward(b, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "tg_mul_scalar_");
    assert_error_contains(TG_EGRAPH, "MulBackward0");
    assert_null(tg_grad(a)); /* no silently wrong gradient */
    tg_scope_end();
    tg_release(c), tg_release(a);
}

static void test_inplace_through_a_view_fails_backward(void **state)
{
    (void)state;
    const float av[4] = {1, 2, 3, 4}, cv[4] = {4, 5, 6, 7};
    tg_tensor *a = leaf(av, 4);
    tg_tensor *c = tg_from_data(cv, 1, (int64_t[]){4});
    tg_scope_begin();
    tg_tensor *b = tg_sum(tg_div(a, c));
    assert_non_null(tg_fill_(tg_narrow(c, 0, 2, 1), 9.0f)); /* a view shares the counter */
    assert_int_equal(tg_backward(b, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "tg_fill_");
    tg_scope_end();
    tg_release(c), tg_release(a);
}

static void test_inplace_on_leaf_under_no_grad_fails_backward(void **state)
{
    (void)state;
    const float xv[2] = {0.5f, 1.5f};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_sin(x)); /* SinBackward0 saved x */
    TG_NO_GRAD
    {
        assert_non_null(tg_mul_scalar_(x, 2.0f));
    }
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "tg_mul_scalar_");
    assert_error_contains(TG_EGRAPH, "SinBackward0");
    tg_scope_end();
    tg_release(x);
}

static void test_inplace_on_saved_output_fails_backward(void **state)
{
    (void)state;
    const float xv[2] = {0.5f, 1.5f};
    tg_tensor *x = leaf(xv, 2);
    tg_scope_begin();
    tg_tensor *e = tg_exp(x); /* ExpBackward0 saves its output */
    tg_tensor *y = tg_sum(e);
    TG_NO_GRAD
    {
        assert_non_null(tg_add_(e, tg_ones(1, (int64_t[]){2})));
    }
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "tg_add_");
    tg_scope_end();
    tg_release(x);
}

static void test_inplace_not_needed_by_backward_is_fine(void **state)
{
    (void)state;
    /* add saves nothing, so changing its input afterwards does not matter (as in PyTorch) */
    const float av[2] = {1, 2}, cv[2] = {3, 4};
    tg_tensor *a = leaf(av, 2);
    tg_tensor *c = tg_from_data(cv, 1, (int64_t[]){2});
    tg_scope_begin();
    tg_tensor *y = tg_sum(tg_add(a, c));
    assert_non_null(tg_zero_(c));
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    assert_values(tg_grad(a), (double[]){1, 1}, 2);
    tg_scope_end();
    tg_release(c), tg_release(a);
}

/* A weight w times data c: w's gradient reads c, and only c's gradient (not wanted: c does not
 * require grad) would read w. PyTorch saves c alone, so a change to w in place between forward
 * and backward leaves w's gradient computable; so it must here, for mul, div, matmul and linear. */
static void test_inplace_on_operand_only_an_unneeded_grad_reads(void **state)
{
    (void)state;
    const float wv[4] = {1, 2, 3, 0.5f}, cv[4] = {2, 3, 4, 5};
    tg_tensor *w = leaf(wv, 4);
    tg_tensor *c = tg_from_data(cv, 1, (int64_t[]){4});
    tg_tensor *W = tg_requires_grad_(tg_from_data(wv, 2, (int64_t[]){2, 2}), true);
    tg_tensor *C = tg_from_data(cv, 2, (int64_t[]){2, 2});
    tg_scope_begin();
    tg_tensor *ys[5] = {
        tg_sum(tg_mul(w, c)),                                 /* dw = c */
        tg_sum(tg_div(w, c)),                                 /* dw = 1 / c */
        tg_sum(tg_matmul(C, W)),                              /* dW[k][j] = sum_i C[i][k] */
        tg_sum(tg_matmul(tg_narrow(c, 0, 0, 2), W)),          /* 1-D @ 2-D: dW[k][j] = c[k] */
        tg_sum(tg_linear(C, W, tg_zeros(1, (int64_t[]){2}))), /* dW[j][k] = sum_i C[i][k] */
    };
    const double want[5][4] = {
        {2, 3, 4, 5}, {0.5, 1.0 / 3, 0.25, 0.2}, {6, 6, 8, 8}, {2, 2, 3, 3}, {6, 8, 6, 8},
    };
    TG_NO_GRAD
    {
        assert_non_null(tg_mul_scalar_(w, 3.0f));
        assert_non_null(tg_mul_scalar_(W, 3.0f));
    }
    for (int i = 0; i < 5; i++) {
        tg_tensor *leaf_i = i < 2 ? w : W;
        assert_int_equal(tg_backward(ys[i], NULL, false), TG_OK);
        assert_values(tg_grad(leaf_i), want[i], 4);
        tg_grad_reset(leaf_i);
    }
    /* the data operand is still saved: changing it fails, as before */
    tg_tensor *y = tg_sum(tg_matmul(C, W));
    assert_non_null(tg_zero_(C));
    assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH);
    assert_error_contains(TG_EGRAPH, "MmBackward0");
    tg_scope_end();
    tg_release(C), tg_release(W), tg_release(c), tg_release(w);
}

static void test_inplace_on_grad_leaf_refused_in_grad_mode(void **state)
{
    (void)state;
    const float xv[2] = {1, 2};
    tg_tensor *x = leaf(xv, 2);
    tg_tensor *one = tg_ones(1, (int64_t[]){2});
    uint32_t v = tg_version(x);
    assert_null(tg_mul_scalar_(x, 3.0f));
    assert_error_contains(TG_EGRAPH, "tg_mul_scalar_");
    assert_null(tg_zero_(x));
    assert_error_contains(TG_EGRAPH, "tg_zero_");
    assert_null(tg_fill_(x, 1.0f));
    assert_null(tg_add_(x, one));
    assert_error_contains(TG_EGRAPH, "tg_add_");
    assert_null(tg_axpy_(x, 1.0f, one));
    assert_error_contains(TG_EGRAPH, "tg_axpy_");
    assert_int_equal(tg_version(x), v);
    assert_values(x, (double[]){1, 2}, 2);
    /* a non-leaf that requires grad is refused too */
    tg_tensor *h = tg_mul_scalar(x, 2.0f);
    assert_null(tg_add_(h, one));
    assert_int_equal(tg_last_status(), TG_EGRAPH);
    TG_NO_GRAD
    {
        assert_ptr_equal(tg_axpy_(x, -0.5f, one), x);
    }
    assert_values(x, (double[]){0.5, 1.5}, 2);
    assert_true(tg_version(x) != v);
    tg_release(h), tg_release(one), tg_release(x);
}

/* torch: c = torch.zeros(2); c.add_(a) with a requiring grad gives c a grad_fn (AddBackward0).
 * In-place ops are not recorded here, so c would silently carry none of a's gradient: refused,
 * leaving c as it was; under no-grad, or with a tensor that needs no grad, it runs. */
static void test_inplace_add_of_grad_tensor_refused_in_grad_mode(void **state)
{
    (void)state;
    const float av[2] = {1, 2};
    tg_tensor *a = leaf(av, 2);
    tg_tensor *c = tg_zeros(1, (int64_t[]){2});
    uint32_t v = tg_version(c);
    assert_null(tg_add_(c, a));
    assert_error_contains(TG_EUNSUPPORTED, "tg_add_");
    assert_null(tg_axpy_(c, 2.0f, a));
    assert_error_contains(TG_EUNSUPPORTED, "tg_axpy_");
    assert_int_equal(tg_version(c), v);
    assert_false(tg_requires_grad(c));
    assert_values(c, (double[]){0, 0}, 2);
    TG_NO_GRAD
    {
        assert_ptr_equal(tg_axpy_(c, 2.0f, a), c);
    }
    tg_tensor *d = tg_detach(a);
    assert_ptr_equal(tg_add_(c, d), c);
    assert_values(c, (double[]){3, 6}, 2);
    tg_release(d), tg_release(c), tg_release(a);
}

/* torch 1.13, x = torch.ones(3, requires_grad=True); with torch.no_grad(): v = x[:2]; then
 * v.mul_(2) with grad mode on raises "A view was created in no_grad mode and is being modified
 * inplace with grad mode enabled", and x stays [1, 1, 1]. It is allowed under no_grad, on
 * v.detach(), once x no longer requires grad, and on a reshape that had to copy. */
static void test_inplace_on_no_grad_view_refused_in_grad_mode(void **state)
{
    (void)state;
    const float xv[3] = {1, 1, 1};
    tg_tensor *x = leaf(xv, 3);
    tg_scope_begin();
    tg_tensor *v, *p, *e, *y = tg_mul_scalar(x, 2.0f), *vy;
    TG_NO_GRAD
    {
        v = tg_narrow(x, 0, 0, 2);
        p = tg_permute(tg_reshape(x, 2, (int64_t[]){3, 1}), (int[]){1, 0});
        e = tg_expand(x, 2, (int64_t[]){2, 3});
        vy = tg_narrow(y, 0, 1, 2); /* a non-leaf base too */
    }
    assert_false(tg_requires_grad(v));
    uint32_t ver = tg_version(x);
    assert_null(tg_mul_scalar_(v, 2.0f));
    assert_error_contains(TG_EGRAPH, "tg_mul_scalar_");
    assert_error_contains(TG_EGRAPH, "no-grad");
    assert_null(tg_add_(v, tg_ones(1, (int64_t[]){2})));
    assert_error_contains(TG_EGRAPH, "tg_add_");
    assert_null(tg_zero_(p));
    assert_error_contains(TG_EGRAPH, "tg_zero_");
    assert_null(tg_fill_(e, 0.0f));
    assert_error_contains(TG_EGRAPH, "tg_fill_");
    assert_null(tg_axpy_(tg_narrow(v, 0, 1, 1), 1.0f, tg_ones(1, (int64_t[]){1})));
    assert_error_contains(TG_EGRAPH, "tg_axpy_"); /* a view of the view, made in grad mode */
    assert_null(tg_mul_scalar_(vy, 0.0f));
    assert_error_contains(TG_EGRAPH, "tg_mul_scalar_");
    assert_int_equal(tg_version(x), ver);
    assert_values(x, (double[]){1, 1, 1}, 3);
    assert_values(y, (double[]){2, 2, 2}, 3);

    TG_NO_GRAD
    {
        assert_ptr_equal(tg_mul_scalar_(v, 2.0f), v);
    }
    assert_values(x, (double[]){2, 2, 1}, 3);
    tg_tensor *d = tg_detach(v);
    assert_ptr_equal(tg_mul_scalar_(d, 2.0f), d);
    assert_values(x, (double[]){4, 4, 1}, 3);
    tg_tensor *m = tg_reshape(tg_transpose(tg_reshape(x, 2, (int64_t[]){3, 1}), 0, 1), 1,
                              (int64_t[]){3}); /* a view: x's grad_fn chain, refused as such */
    assert_null(tg_zero_(m));
    tg_requires_grad_(x, false);
    assert_ptr_equal(tg_add_(v, tg_ones(1, (int64_t[]){2})), v);
    assert_values(x, (double[]){5, 5, 1}, 3);
    tg_scope_end();
    tg_release(x);
}

/* ---- backward argument errors ---- */

static void test_backward_argument_errors(void **state)
{
    (void)state;
    const float xv[3] = {1, 2, 3};
    tg_tensor *x = leaf(xv, 3);
    tg_scope_begin();
    tg_tensor *y = tg_mul_scalar(x, 2.0f);
    assert_int_equal(tg_backward(y, NULL, true), TG_ESHAPE); /* non-scalar root */
    assert_error_contains(TG_ESHAPE, "tg_backward");
    tg_tensor *bad = tg_ones(1, (int64_t[]){2});
    assert_int_equal(tg_backward(y, bad, true), TG_ESHAPE);
    assert_error_contains(TG_ESHAPE, "[2]");
    assert_error_contains(TG_ESHAPE, "[3]");
    tg_tensor *bad2 = tg_ones(2, (int64_t[]){3, 1});
    assert_int_equal(tg_backward(y, bad2, true), TG_ESHAPE);
    assert_null(tg_grad(x));
    tg_tensor *c = tg_ones(0, NULL);
    assert_int_equal(tg_backward(c, NULL, false), TG_EGRAPH); /* no grad anywhere */
    /* a NULL root keeps the error of the call that returned it, as an op's NULL argument does */
    assert_int_equal(tg_backward(tg_sum(tg_add(x, bad)), NULL, false), TG_ESHAPE);
    assert_error_contains(TG_ESHAPE, "tg_add");
    /* and is the caller's own when the call before it succeeded */
    assert_non_null(tg_ones(0, NULL));
    assert_int_equal(tg_backward(NULL, NULL, false), TG_EINVAL);
    assert_error_contains(TG_EINVAL, "root is NULL");
    /* and a correct call then works, with an explicit grad_output */
    const float gv[3] = {1, 10, 100};
    tg_tensor *g = tg_from_data(gv, 1, (int64_t[]){3});
    assert_int_equal(tg_backward(y, g, false), TG_OK);
    assert_string_equal(tg_last_error(), "");
    assert_values(tg_grad(x), (double[]){2, 20, 200}, 3);
    /* a strided grad_output is read by its logical layout */
    tg_grad_reset(x);
    tg_tensor *y2 = tg_mul_scalar(x, 1.0f);
    const float gv2[6] = {1, 2, 3, 4, 5, 6};
    tg_tensor *g2 = tg_narrow(tg_from_data(gv2, 2, (int64_t[]){3, 2}), 1, 1, 1);
    assert_int_equal(tg_backward(y2, tg_reshape(g2, 1, (int64_t[]){3}), false), TG_OK);
    assert_values(tg_grad(x), (double[]){2, 4, 6}, 3);
    tg_scope_end();
    tg_release(x);
}

static void test_backward_of_a_leaf_root(void **state)
{
    (void)state;
    tg_tensor *s = tg_requires_grad_(tg_scalar(3.0f), true);
    assert_int_equal(tg_backward(s, NULL, false), TG_OK);
    assert_values(tg_grad(s), (double[]){1}, 1);
    assert_int_equal(tg_backward(s, NULL, false), TG_OK);
    assert_values(tg_grad(s), (double[]){2}, 1);
    tg_release(s);
}

/* ---- gradients at special points, where formulas meet 0 * inf or a kink ---- */

/* Gradient of sum(f(x)) for the given x, compared with values printed by PyTorch 1.13. */
static void expect_grad_of_sum(tg_tensor *(*f)(tg_tensor *, void *), void *ctx, const float *x,
                               int64_t n, const double *want)
{
    tg_tensor *leaf_x = leaf(x, n);
    tg_scope_begin();
    assert_int_equal(tg_backward(tg_sum(f(leaf_x, ctx)), NULL, false), TG_OK);
    float *g = tg_test_values(tg_grad(leaf_x));
    for (int64_t i = 0; i < n; i++)
        if (!tg_test_close(g[i], want[i], 1e-6, 0))
            fail_msg("x = %g: gradient %.9g, PyTorch %.9g", (double)x[i], (double)g[i], want[i]);
    free(g);
    tg_scope_end();
    tg_release(leaf_x);
}

static tg_tensor *f_pow_scalar(tg_tensor *x, void *ctx)
{
    return tg_pow_scalar(x, *(float *)ctx);
}
static tg_tensor *f_abs(tg_tensor *x, void *ctx)
{
    return (void)ctx, tg_abs(x);
}
static tg_tensor *f_relu(tg_tensor *x, void *ctx)
{
    return (void)ctx, tg_relu(x);
}
static tg_tensor *f_sqrt(tg_tensor *x, void *ctx)
{
    return (void)ctx, tg_sqrt(x);
}
static tg_tensor *f_log(tg_tensor *x, void *ctx)
{
    return (void)ctx, tg_log(x);
}
static tg_tensor *f_clamp(tg_tensor *x, void *ctx)
{
    return (void)ctx, tg_clamp(x, -0.5f, 0.5f);
}
static tg_tensor *f_bce(tg_tensor *x, void *ctx)
{
    return tg_binary_cross_entropy(x, (tg_tensor *)ctx, TG_REDUCE_SUM);
}

static void test_gradients_at_special_points(void **state)
{
    (void)state;
    const double inf = INFINITY;
    /* x = torch.tensor([0., 0., 2.], requires_grad=True); (x ** e).sum().backward() */
    const float x0[3] = {0, 0, 2};
    const float exps[7] = {0, 2, 0.5f, -1, 3, 1.5f, 1};
    const double want[7][3] = {{0, 0, 0},
                               {0, 0, 4},
                               {inf, inf, 0.3535533845424652},
                               {-inf, -inf, -0.25},
                               {0, 0, 12},
                               {0, 0, 2.1213202476501465},
                               {1, 1, 1}};
    for (int e = 0; e < 7; e++)
        expect_grad_of_sum(f_pow_scalar, (void *)&exps[e], x0, 3, want[e]);
    /* |e| >= 2^24: e - 1 is odd but not a float, and PyTorch forms it in double:
     * x = torch.tensor([-1., -2., -1.5, 3.], requires_grad=True); (x ** e).sum().backward() */
    const float xw[4] = {-1, -2, -1.5f, 3}, wide[2] = {16777218.0f, 1e10f};
    expect_grad_of_sum(f_pow_scalar, (void *)&wide[0], xw, 4,
                       (double[]){-16777218.0, -inf, -inf, inf});
    expect_grad_of_sum(f_pow_scalar, (void *)&wide[1], xw, 4, (double[]){-1e10, -inf, -inf, inf});
    expect_grad_of_sum(f_abs, NULL, (float[]){0, 1, -1}, 3, (double[]){0, 1, -1});
    expect_grad_of_sum(f_relu, NULL, (float[]){0, 1, -1}, 3, (double[]){0, 1, 0});
    /* clamp's bounds are inclusive */
    expect_grad_of_sum(f_clamp, NULL, (float[]){-0.5f, 0.5f, 0, 2}, 4, (double[]){1, 1, 1, 0});
    expect_grad_of_sum(f_sqrt, NULL, (float[]){0, 4}, 2, (double[]){inf, 0.25});
    expect_grad_of_sum(f_log, NULL, (float[]){0, 4}, 2, (double[]){inf, 0.25});
    /* binary_cross_entropy's gradient divides by max((1 - p) p, 1e-12) */
    tg_tensor *t = tg_from_data((float[]){1, 0, 1, 0, 1}, 1, (int64_t[]){5});
    expect_grad_of_sum(f_bce, t, (float[]){0, 1, 0.5f, 0, 1}, 5,
                       (double[]){-999999995904.0, 999999995904.0, -2, 0, 0});
    tg_release(t);

    /* tensor ** tensor: a = [0, 0, 2, -2, 0, 0], b = [0, 2, 3, 2, -1, 0.5];
     * (a ** b).sum().backward() gives these a.grad and b.grad */
    tg_tensor *a = leaf((float[]){0, 0, 2, -2, 0, 0}, 6);
    tg_tensor *b = leaf((float[]){0, 2, 3, 2, -1, 0.5f}, 6);
    tg_scope_begin();
    assert_int_equal(tg_backward(tg_sum(tg_pow(a, b)), NULL, false), TG_OK);
    assert_values(tg_grad(a), (double[]){0, 0, 12, -4, -inf, inf}, 6);
    assert_values(tg_grad(b), (double[]){0, 0, 5.545177459716797, NAN, -inf, 0}, 6);
    tg_scope_end();
    tg_release(a), tg_release(b);
}

/* Asserts that t's row-major values are exactly want, bit for bit: a -0 must stay -0. */
static void assert_same_bits(const tg_tensor *t, const float *want, int64_t n)
{
    assert_non_null(t);
    assert_int_equal(tg_numel(t), n);
    float *v = tg_test_values(t);
    assert_non_null(v);
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&v[i], &want[i], sizeof(float)) != 0)
            fail_msg("element %lld: got %.9g, want %.9g", (long long)i, (double)v[i],
                     (double)want[i]);
    free(v);
}

/* Where torch.matmul is a dot or an mv, PyTorch takes the gradient as one product per element
 * (grad * other, and ger for the matrix of an mv), so -0 * 1 stays -0. Values printed by
 * PyTorch 1.13, e.g. x = torch.tensor([-0., 1.], requires_grad=True); ...; print(x.grad). */
static void test_matmul_outer_gradients_keep_negative_zero(void **state)
{
    (void)state;
    tg_tensor *x = leaf((float[]){-0.0f, 1}, 2), *v = leaf((float[]){1, 2}, 2);
    tg_tensor *A =
        tg_requires_grad_(tg_from_data((float[]){1, 2, 3, 4}, 2, (int64_t[]){2, 2}), true);
    tg_tensor *B =
        tg_requires_grad_(tg_from_data((float[]){1, 2, 3, 4}, 3, (int64_t[]){1, 2, 2}), true);
    tg_scope_begin();
    /* dot: v.grad = grad * x = [-0., 1.] */
    assert_int_equal(tg_backward(tg_matmul(x, v), NULL, false), TG_OK);
    assert_same_bits(tg_grad(v), (float[]){-0.0f, 1}, 2);
    /* mv: A.grad = ger(grad, x) with grad = [1, -0] gives [[-0., 1.], [0., -0.]] */
    tg_tensor *g = tg_from_data((float[]){1, -0.0f}, 1, (int64_t[]){2});
    assert_int_equal(tg_backward(tg_matmul(A, x), g, false), TG_OK);
    assert_same_bits(tg_grad(A), (float[]){-0.0f, 1, 0, -0.0f}, 4);
    /* vector @ batch, folded into an mv: B.grad = [[[-0., 0.], [1., -0.]]] */
    tg_tensor *gb = tg_from_data((float[]){1, -0.0f}, 2, (int64_t[]){1, 2});
    assert_int_equal(tg_backward(tg_matmul(x, B), gb, false), TG_OK);
    assert_same_bits(tg_grad(B), (float[]){-0.0f, 0, 1, -0.0f}, 4);
    tg_scope_end();
    tg_release(x), tg_release(v), tg_release(A), tg_release(B);
}

/* The logistic loss's gradient is sigmoid(z) - t with PyTorch's sigmoid, 1 / (1 + exp(-z)): 0
 * where exp(-z) overflows (z <= -88.7228394), in every kernel family. PyTorch 1.13:
 * z = torch.tensor([-100., -89., -104., -88.7228394, -1000.] * 4, requires_grad=True)
 * F.binary_cross_entropy_with_logits(z, torch.zeros(20), reduction='sum').backward()
 * gives z.grad = 0 everywhere, and with reduction='none' and a gradient of inf, NaN (0 * inf). */
static void test_bce_with_logits_gradient_underflows_as_pytorch(void **state)
{
    (void)state;
    float zv[20];
    for (int i = 0; i < 20; i++)
        zv[i] = (float[]){-100, -89, -104, -88.7228394f, -1000}[i % 5];
    tg_tensor *z = leaf(zv, 20), *t = tg_zeros(1, (int64_t[]){20});
    tg_scope_begin();
    assert_int_equal(tg_backward(tg_bce_with_logits(z, t, NULL, TG_REDUCE_SUM), NULL, false),
                     TG_OK);
    float zeros[20] = {0};
    assert_same_bits(tg_grad(z), zeros, 20);
    tg_grad_reset(z);
    tg_tensor *g = tg_full(1, (int64_t[]){20}, INFINITY);
    assert_int_equal(tg_backward(tg_bce_with_logits(z, t, NULL, TG_REDUCE_NONE), g, false), TG_OK);
    float *gv = tg_test_values(tg_grad(z));
    for (int i = 0; i < 20; i++)
        if (!isnan(gv[i]))
            fail_msg("z = %g, gradient inf: got %g, PyTorch nan", (double)zv[i], (double)gv[i]);
    free(gv);
    tg_scope_end();
    tg_release(z), tg_release(t);
}

/* A 'mean' logistic loss passes each element d * g / n, in that order, as PyTorch does: d * (g /
 * n) rounds differently. PyTorch 1.13:
 * z = torch.tensor([100., 1., -2.5] * 5, requires_grad=True)
 * t = torch.tensor([0., 0.3, 0.9] * 5, requires_grad=True)
 * F.binary_cross_entropy_with_logits(z, t).backward(g) gives t.grad (-z g / 15) and z.grad[0]. */
static void test_bce_with_logits_mean_gradient_rounds_as_pytorch(void **state)
{
    (void)state;
    float zv[15], tv[15];
    for (int i = 0; i < 15; i++) {
        zv[i] = (float[]){100, 1, -2.5f}[i % 3];
        tv[i] = (float[]){0, 0.3f, 0.9f}[i % 3];
    }
    const float gs[2] = {1, 2.5f};
    const float want_t[2][3] = {{-6.66666651f, -0.0666666701f, 0.166666672f},
                                {-16.666666f, -0.166666672f, 0.416666657f}};
    const float want_z0[2] = {0.0666666701f, 0.166666672f};
    tg_tensor *z = leaf(zv, 15), *t = leaf(tv, 15);
    for (int k = 0; k < 2; k++) {
        tg_scope_begin();
        tg_grad_reset(z), tg_grad_reset(t);
        tg_tensor *loss = tg_bce_with_logits(z, t, NULL, TG_REDUCE_MEAN);
        assert_int_equal(tg_backward(loss, tg_scalar(gs[k]), false), TG_OK);
        float want[15];
        for (int i = 0; i < 15; i++)
            want[i] = want_t[k][i % 3];
        assert_same_bits(tg_grad(t), want, 15);
        assert_same_bits(tg_narrow(tg_grad(z), 0, 0, 1), &want_z0[k], 1);
        tg_scope_end();
    }
    tg_release(z), tg_release(t);
}

/* ---- graph shapes ---- */

static void test_long_chain(void **state)
{
    (void)state;
    /* 1,000,000 nodes: backward and release must both run without recursion */
    enum { N = 1000000 };
    tg_tensor *x = tg_requires_grad_(tg_scalar(0.5f), true);
    tg_tensor *y = tg_retain(x);
    for (int i = 0; i < N; i++) {
        tg_tensor *next = tg_add_scalar(y, (i & 1) ? 1.0f : -1.0f);
        tg_release(y);
        y = next;
        if (!y)
            fail_msg("step %d failed: %s", i, tg_last_error());
    }
    assert_float_equal(tg_item(y), 0.5f, 0.0f);
    tg_tensor *z = tg_mul(y, y); /* dz/dx = 2 y = 1 */
    assert_int_equal(tg_backward(z, NULL, true), TG_OK);
    assert_values(tg_grad(x), (double[]){1}, 1);
    assert_int_equal(tg_backward(z, NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){2}, 1);
    tg_release(z);
    tg_release(y); /* drops the whole chain */
    /* the same with mul_scalar by 1, released before any backward */
    y = tg_retain(x);
    for (int i = 0; i < N && y; i++) {
        tg_tensor *next = tg_mul_scalar(y, 1.0f);
        tg_release(y);
        y = next;
    }
    assert_non_null(y);
    tg_release(y);
    tg_release(x);
}

static void test_diamond_and_shared_inputs(void **state)
{
    (void)state;
    const float xv[3] = {0.3f, -1.2f, 2.0f};
    tg_tensor *x = leaf(xv, 3);
    tg_scope_begin();
    /* sin(x) * cos(x): two paths from x meet again, d/dx = cos(2x) */
    assert_int_equal(tg_backward(tg_sum(tg_mul(tg_sin(x), tg_cos(x))), NULL, false), TG_OK);
    double want[3];
    for (int i = 0; i < 3; i++)
        want[i] = cos(2.0 * xv[i]);
    assert_values(tg_grad(x), want, 3);
    tg_grad_reset(x);
    /* the same leaf as both inputs of one op */
    assert_int_equal(tg_backward(tg_sum(tg_mul(x, x)), NULL, false), TG_OK);
    for (int i = 0; i < 3; i++)
        want[i] = 2.0 * xv[i];
    assert_values(tg_grad(x), want, 3);
    tg_grad_reset(x);
    assert_int_equal(tg_backward(tg_sum(tg_add(x, x)), NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){2, 2, 2}, 3);
    tg_grad_reset(x);
    /* a non-leaf used three times: h = 2x, y = h*h + h  ->  dy/dx = 8x + 2 */
    tg_tensor *h = tg_mul_scalar(x, 2.0f);
    assert_int_equal(tg_backward(tg_sum(tg_add(tg_mul(h, h), h)), NULL, false), TG_OK);
    for (int i = 0; i < 3; i++)
        want[i] = 8.0 * xv[i] + 2.0;
    assert_values(tg_grad(x), want, 3);
    tg_grad_reset(x);
    /* a view and its base both used: sum(x) + sum(x[1:3] * 3) */
    tg_tensor *part = tg_mul_scalar(tg_narrow(x, 0, 1, 2), 3.0f);
    assert_int_equal(tg_backward(tg_add(tg_sum(x), tg_sum(part)), NULL, false), TG_OK);
    assert_values(tg_grad(x), (double[]){1, 4, 4}, 3);
    tg_scope_end();
    tg_release(x);
}

static void test_intermediates_released_early(void **state)
{
    (void)state;
    /* the graph holds what backward needs, so dropping intermediates at once is safe */
    const float xv[2] = {1, 2};
    tg_tensor *x = leaf(xv, 2);
    tg_tensor *a = tg_exp(x);
    tg_tensor *b = tg_mul(a, x);
    tg_release(a);
    tg_tensor *y = tg_sum(b);
    tg_release(b);
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    double want[2] = {exp(1.0) * 2, exp(2.0) * 3}; /* d/dx x e^x = (x + 1) e^x */
    float *g = tg_test_values(tg_grad(x));
    for (int i = 0; i < 2; i++)
        assert_true(tg_test_close(g[i], want[i], 1e-6, 0));
    free(g);
    tg_release(y);
    tg_release(x);
}

static void test_broadcast_gradients_reduce_to_input_shape(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = tg_requires_grad_(tg_ones(2, (int64_t[]){3, 1}), true);
    tg_tensor *b = tg_requires_grad_(tg_ones(2, (int64_t[]){1, 4}), true);
    tg_tensor *s = tg_requires_grad_(tg_scalar(2.0f), true);
    assert_int_equal(tg_backward(tg_sum(tg_mul(tg_add(a, b), s)), NULL, false), TG_OK);
    assert_int_equal(tg_ndim(tg_grad(a)), 2);
    assert_int_equal(tg_shape(tg_grad(a))[0], 3);
    assert_int_equal(tg_shape(tg_grad(a))[1], 1);
    assert_values(tg_grad(a), (double[]){8, 8, 8}, 3);
    assert_values(tg_grad(b), (double[]){6, 6, 6, 6}, 4);
    assert_int_equal(tg_ndim(tg_grad(s)), 0);
    assert_values(tg_grad(s), (double[]){24}, 1);
    tg_scope_end();
}

static void test_broadcast_gradient_accuracy(void **state)
{
    (void)state;
    /* A bias broadcast over a million rows receives a sum of a million gradients. PyTorch's
     * sum_to gives 99999.945 for a million 0.1f; a running float sum would give 100958. */
    const int64_t rows = 1000000;
    const double exact = 1e6 * (double)0.1f;
    tg_tensor *b = tg_requires_grad_(tg_zeros(1, (int64_t[]){2}), true);
    tg_tensor *c = tg_requires_grad_(tg_zeros(2, (int64_t[]){1, 2}), true);
    tg_scope_begin();
    tg_tensor *g = tg_full(2, (int64_t[]){rows, 2}, 0.1f);
    tg_tensor *y = tg_add(tg_zeros(2, (int64_t[]){rows, 2}), b);
    assert_int_equal(tg_backward(y, g, false), TG_OK);
    tg_tensor *e = tg_expand(c, 2, (int64_t[]){rows, 2});
    assert_int_equal(tg_backward(e, g, false), TG_OK);
    float v[2];
    tg_copy_to(tg_grad(b), v, 2);
    assert_true(fabs(v[0] - exact) / exact < 1e-6 && fabs(v[1] - exact) / exact < 1e-6);
    tg_copy_to(tg_grad(c), v, 2);
    assert_true(fabs(v[0] - exact) / exact < 1e-6 && fabs(v[1] - exact) / exact < 1e-6);
    tg_scope_end();
    tg_release(b), tg_release(c);
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grad_accumulates_across_backward_calls),
        cmocka_unit_test(test_kept_grad_reference_sees_accumulation),
        cmocka_unit_test(test_uniform_grad_matches_dense),
        cmocka_unit_test(test_retain_graph),
        cmocka_unit_test(test_second_backward_without_retain_fails),
        cmocka_unit_test(test_second_backward_through_scalar_ops),
        cmocka_unit_test(test_failed_backward_leaves_grads_alone),
        cmocka_unit_test(test_saved_as_pytorch),
        cmocka_unit_test(test_detach_shares_storage_without_grad),
        cmocka_unit_test(test_requires_grad_flag),
        cmocka_unit_test(test_retain_grad_on_non_leaf),
        cmocka_unit_test(test_retained_grad_is_not_aliased),
        cmocka_unit_test(test_requires_grad_turned_off_after_use),
        cmocka_unit_test(test_grad_mode),
        cmocka_unit_test(test_grad_fn_names),
        cmocka_unit_test(test_inplace_on_saved_input_fails_backward),
        cmocka_unit_test(test_inplace_through_a_view_fails_backward),
        cmocka_unit_test(test_inplace_on_leaf_under_no_grad_fails_backward),
        cmocka_unit_test(test_inplace_on_saved_output_fails_backward),
        cmocka_unit_test(test_inplace_not_needed_by_backward_is_fine),
        cmocka_unit_test(test_inplace_on_operand_only_an_unneeded_grad_reads),
        cmocka_unit_test(test_inplace_on_grad_leaf_refused_in_grad_mode),
        cmocka_unit_test(test_inplace_add_of_grad_tensor_refused_in_grad_mode),
        cmocka_unit_test(test_inplace_on_no_grad_view_refused_in_grad_mode),
        cmocka_unit_test(test_backward_argument_errors),
        cmocka_unit_test(test_backward_of_a_leaf_root),
        cmocka_unit_test(test_gradients_at_special_points),
        cmocka_unit_test(test_matmul_outer_gradients_keep_negative_zero),
        cmocka_unit_test(test_bce_with_logits_gradient_underflows_as_pytorch),
        cmocka_unit_test(test_bce_with_logits_mean_gradient_rounds_as_pytorch),
        cmocka_unit_test(test_long_chain),
        cmocka_unit_test(test_diamond_and_shared_inputs),
        cmocka_unit_test(test_intermediates_released_early),
        cmocka_unit_test(test_broadcast_gradients_reduce_to_input_shape),
        cmocka_unit_test(test_broadcast_gradient_accuracy),
    };
    /* Ops split across threads from 32768 elements here, not from the default grain, so that
     * the split paths run on inputs of test size (1 against 3 threads, bit for bit). */
    tg_parallel_set_grain(32768);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
