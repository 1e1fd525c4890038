/* Bad inputs: every failure returns NULL (or a status), never aborts, and leaves a status and a
 * message naming the function and the offending shapes or values; success clears both. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gradcheck.h"
#include "tapegrad.h"
#include "tapegrad/nn.h"
#include "tapegrad/train.h"

/* Asserts the last call failed with `status` and a message containing every listed part. */
static void expect_error(tg_status status, const char *p1, const char *p2, const char *p3)
{
    const char *msg = tg_last_error();
    if (tg_last_status() != status)
        fail_msg("status %s, want %s (message \"%s\")", tg_status_name(tg_last_status()),
                 tg_status_name(status), msg);
    const char *parts[3] = {p1, p2, p3};
    for (int i = 0; i < 3; i++)
        if (parts[i] && !strstr(msg, parts[i]))
            fail_msg("message \"%s\" does not contain \"%s\"", msg, parts[i]);
}

static void expect_ok(void)
{
    assert_int_equal(tg_last_status(), TG_OK);
    assert_string_equal(tg_last_error(), "");
}

static tg_tensor *mat(int64_t r, int64_t c)
{
    return tg_ones(2, (int64_t[]){r, c});
}
static tg_tensor *vec(int64_t n)
{
    return tg_ones(1, &n);
}

static void test_broadcast_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = mat(2, 3), *b = vec(4);
    struct {
        tg_tensor *(*f)(tg_tensor *, tg_tensor *);
        const char *name;
    } ops[] = {{tg_add, "tg_add"},
               {tg_sub, "tg_sub"},
               {tg_mul, "tg_mul"},
               {tg_div, "tg_div"},
               {tg_pow, "tg_pow"}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
        assert_null(ops[i].f(a, b));
        expect_error(TG_ESHAPE, ops[i].name, "[2, 3]", "[4]");
        assert_null(ops[i].f(b, a));
        expect_error(TG_ESHAPE, ops[i].name, "[4]", "[2, 3]");
    }
    assert_null(tg_add(tg_ones(3, (int64_t[]){2, 3, 4}), tg_ones(2, (int64_t[]){2, 4})));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3, 4]", "[2, 4]");
    /* in place: other must broadcast to t's own shape */
    assert_null(tg_add_(vec(3), mat(2, 3)));
    expect_error(TG_ESHAPE, "tg_add_", "[2, 3]", "[3]");
    assert_null(tg_axpy_(a, 2.0f, b));
    expect_error(TG_ESHAPE, "tg_axpy_", "[2, 3]", "[4]");
    /* in place on an expanded view: its one element would be written four times; refused, and
     * the element is left as it was */
    tg_tensor *one = tg_full(1, (int64_t[]){1}, 2.0f);
    tg_tensor *e = tg_expand(one, 2, (int64_t[]){2, 2});
    assert_null(tg_mul_scalar_(e, 3.0f));
    expect_error(TG_EINVAL, "tg_mul_scalar_", "single memory location", "clone");
    assert_null(tg_add_(e, tg_ones(2, (int64_t[]){2, 2})));
    expect_error(TG_EINVAL, "tg_add_", "expanded view", "clone");
    assert_null(tg_axpy_(e, 1.0f, e));
    assert_true(tg_item(one) == 2.0f);
    /* a fill writes one value however often a location is hit: PyTorch allows it, and so here */
    assert_ptr_equal(tg_fill_(e, 5.0f), e);
    assert_true(tg_item(one) == 5.0f);
    assert_ptr_equal(tg_zero_(e), e);
    assert_true(tg_item(one) == 0.0f);
    tg_scope_end();
}

static void test_matmul_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    assert_null(tg_matmul(mat(2, 3), mat(4, 5)));
    expect_error(TG_ESHAPE, "tg_matmul", "[2, 3]", "[4, 5]");
    assert_null(tg_matmul(vec(3), vec(4)));
    expect_error(TG_ESHAPE, "tg_matmul", "[3]", "[4]");
    assert_null(tg_matmul(mat(2, 3), vec(2)));
    expect_error(TG_ESHAPE, "tg_matmul", "[2, 3]", "[2]");
    assert_null(tg_matmul(vec(2), mat(3, 2)));
    expect_error(TG_ESHAPE, "tg_matmul", "[2]", "[3, 2]");
    assert_null(tg_matmul(tg_scalar(1.0f), vec(2)));
    expect_error(TG_ESHAPE, "tg_matmul", "[]", "[2]");
    tg_scope_end();
}

static void test_dim_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = tg_ones(3, (int64_t[]){2, 3, 4});
    assert_null(tg_sum_dim(x, 3, false));
    expect_error(TG_EINVAL, "tg_sum_dim", "3", NULL);
    assert_null(tg_sum_dim(x, -4, true));
    expect_error(TG_EINVAL, "tg_sum_dim", "-4", NULL);
    assert_null(tg_mean_dim(x, 5, false));
    expect_error(TG_EINVAL, "tg_mean_dim", "5", NULL);
    assert_null(tg_sum_dim(tg_scalar(1.0f), 1, false));
    expect_error(TG_EINVAL, "tg_sum_dim", NULL, NULL);
    assert_null(tg_transpose(x, 0, 3));
    expect_error(TG_EINVAL, "tg_transpose", "3", NULL);
    assert_null(tg_transpose(x, -4, 0));
    expect_error(TG_EINVAL, "tg_transpose", "-4", NULL);
    assert_null(tg_permute(x, (int[]){0, 1, 3}));
    expect_error(TG_EINVAL, "tg_permute", "3", NULL);
    assert_null(tg_permute(x, (int[]){0, 1, 1}));
    expect_error(TG_EINVAL, "tg_permute", "repeated", NULL);
    assert_null(tg_permute(x, (int[]){0, -2, 1}));
    expect_error(TG_EINVAL, "tg_permute", NULL, NULL);
    assert_null(tg_narrow(x, 3, 0, 1));
    expect_error(TG_EINVAL, "tg_narrow", "3", NULL);
    assert_null(tg_narrow(x, 1, 2, 2)); /* 2 + 2 > 3 */
    expect_error(TG_EINVAL, "tg_narrow", "2", NULL);
    assert_null(tg_narrow(x, 2, 0, 5));
    expect_error(TG_EINVAL, "tg_narrow", "5", NULL);
    assert_null(tg_narrow(x, 2, 0, -1));
    expect_error(TG_EINVAL, "tg_narrow", NULL, NULL);
    /* a negative start out of range is named as given (-6), not as -6 + 5 */
    assert_null(tg_narrow(tg_zeros(1, (int64_t[]){5}), 0, -6, 1));
    expect_error(TG_EINVAL, "tg_narrow", "start -6 is out of range", "-5 to 5");
    assert_null(tg_narrow(x, 2, -5, 1));
    expect_error(TG_EINVAL, "tg_narrow", NULL, NULL);
    assert_null(tg_narrow(tg_scalar(1.0f), 0, 0, 1));
    expect_error(TG_EINVAL, "tg_narrow", NULL, NULL);
    tg_scope_end();
}

static void test_reshape_expand_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = mat(2, 3);
    assert_null(tg_reshape(x, 1, (int64_t[]){4}));
    expect_error(TG_ESHAPE, "tg_reshape", "[4]", "6");
    assert_null(tg_reshape(x, 2, (int64_t[]){-1, 4}));
    expect_error(TG_ESHAPE, "tg_reshape", "[-1, 4]", "6");
    assert_null(tg_reshape(x, 2, (int64_t[]){-1, -1}));
    expect_error(TG_EINVAL, "tg_reshape", "only one dimension can be inferred", NULL);
    assert_null(tg_reshape(x, 2, (int64_t[]){-2, -3}));
    expect_error(TG_EINVAL, "tg_reshape", NULL, NULL);
    assert_null(tg_reshape(x, 9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 2, 3}));
    expect_error(TG_EINVAL, "tg_reshape", NULL, NULL);
    assert_null(tg_reshape(tg_zeros(1, (int64_t[]){0}), 2, (int64_t[]){-1, 0}));
    expect_error(TG_ESHAPE, "tg_reshape", NULL, NULL); /* -1 is ambiguous with 0 elements */
    /* Sizes whose product wraps around to the element count (0 here, or 6) are too large, not
     * a match: a view with that shape would walk far outside its storage. */
    tg_tensor *none = tg_zeros(1, (int64_t[]){0});
    assert_null(tg_reshape(none, 2, (int64_t[]){INT64_C(1) << 62, 4}));
    expect_error(TG_ENOMEM, "tg_reshape", "too large", NULL);
    assert_null(tg_reshape(none, 3, (int64_t[]){0, INT64_MAX, INT64_MAX}));
    expect_error(TG_ENOMEM, "tg_reshape", "too large", NULL);
    assert_null(tg_reshape(x, 3, (int64_t[]){-1, INT64_C(1) << 62, 4}));
    expect_error(TG_ENOMEM, "tg_reshape", "too large", NULL);
    assert_null(tg_zeros(3, (int64_t[]){0, INT64_MAX, INT64_MAX}));
    expect_error(TG_ENOMEM, "tg_zeros", "too large", NULL);

    assert_null(tg_expand(vec(3), 2, (int64_t[]){2, 4}));
    expect_error(TG_ESHAPE, "tg_expand", "[2, 4]", "[3]");
    assert_null(tg_expand(vec(3), TG_MAX_DIMS + 1, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 3}));
    expect_error(TG_EINVAL, "tg_expand", "ndim 9 is more than 8", NULL);
    assert_null(tg_expand(x, 1, (int64_t[]){6}));
    expect_error(TG_ESHAPE, "tg_expand", NULL, NULL);
    assert_null(tg_expand(mat(2, 1), 2, (int64_t[]){3, 5}));
    expect_error(TG_ESHAPE, "tg_expand", "[3, 5]", "[2, 1]");
    assert_null(tg_expand(vec(1), 2, (int64_t[]){-1, 3})); /* -1 for a new leading dim */
    expect_error(TG_ESHAPE, "tg_expand", "(-1) isn't allowed", "non-existing dimension 0");
    assert_null(tg_expand(mat(1, 1), 2, (int64_t[]){INT64_MAX, INT64_MAX}));
    expect_error(TG_ENOMEM, "tg_expand", "too large", NULL);
    assert_null(tg_expand(mat(1, 1), 2, (int64_t[]){INT64_C(1) << 40, INT64_C(1) << 40}));
    expect_error(TG_ENOMEM, "tg_expand", "too large", NULL);
    assert_null(tg_expand(x, 2, NULL));
    expect_error(TG_EINVAL, "tg_expand", "shape is NULL", NULL);
    /* an op that would make such a shape names itself, not the helper it calls */
    /* (tg_clone's out-of-memory message: test_oom) */
    tg_tensor *col = tg_expand(mat(1, 1), 2, (int64_t[]){INT64_C(1) << 31, 1});
    tg_tensor *row = tg_expand(mat(1, 1), 2, (int64_t[]){1, INT64_C(1) << 31});
    assert_null(tg_mse_loss(col, row, TG_REDUCE_MEAN));
    expect_error(TG_ENOMEM, "tg_mse_loss: ", "too large", NULL);
    tg_scope_end();
}

static void test_creation_errors(void **state)
{
    (void)state;
    assert_null(tg_zeros(2, (int64_t[]){2, -1}));
    expect_error(TG_EINVAL, "tg_zeros", "[2, -1]", NULL);
    assert_null(tg_ones(9, (int64_t[]){1, 1, 1, 1, 1, 1, 1, 1, 1}));
    expect_error(TG_EINVAL, "tg_ones", "9", NULL);
    assert_null(tg_full(-1, NULL, 1.0f));
    expect_error(TG_EINVAL, "tg_full", NULL, NULL);
    assert_null(tg_empty(2, NULL));
    expect_error(TG_EINVAL, "tg_empty", NULL, NULL);
    assert_null(tg_from_data(NULL, 1, (int64_t[]){3}));
    expect_error(TG_EINVAL, "tg_from_data", NULL, NULL);
    assert_null(tg_rand(1, (int64_t[]){-3}, 1));
    expect_error(TG_EINVAL, "tg_rand", NULL, NULL);
    assert_null(tg_randn(2, (int64_t[]){INT64_MAX / 2, 8}, 1));
    expect_error(TG_ENOMEM, "tg_randn", NULL, NULL);
    assert_null(tg_arange(0, 1, 0));
    expect_error(TG_EINVAL, "tg_arange", NULL, NULL);
    assert_null(tg_arange(0, 1, -1));
    expect_error(TG_EINVAL, "tg_arange", NULL, NULL);
    assert_null(tg_arange(0, INFINITY, 1));
    expect_error(TG_EINVAL, "tg_arange", NULL, NULL);
    assert_null(tg_arange(0, 3e38f, 1e-30f)); /* 3e68 elements: no int64 holds the count */
    expect_error(TG_ENOMEM, "tg_arange", "too many", NULL);
}

static void test_value_errors(void **state)
{
    (void)state;
    tg_scope_begin();
    assert_true(isnan(tg_item(mat(2, 2))));
    expect_error(TG_ESHAPE, "tg_item", "[2, 2]", NULL);
    assert_null(tg_clamp(vec(2), NAN, NAN));
    expect_error(TG_EINVAL, "tg_clamp", NULL, NULL);
    const float bad[2] = {0.5f, 1.5f};
    assert_null(
        tg_binary_cross_entropy(tg_from_data(bad, 1, (int64_t[]){2}), vec(2), TG_REDUCE_MEAN));
    expect_error(TG_EINVAL, "tg_binary_cross_entropy", "1.5", NULL);
    /* large enough to be checked in chunks on several threads: the first bad element is named */
    for (int th = 1; th <= 3; th += 2) {
        tg_set_num_threads(th);
        tg_tensor *p = tg_full(1, (int64_t[]){300000}, 0.25f);
        tg_data(p)[250000] = -1.0f;
        tg_data(p)[200001] = NAN;
        tg_data(p)[150000] = 2.0f;
        assert_null(
            tg_binary_cross_entropy(p, tg_full(1, (int64_t[]){300000}, 1.0f), TG_REDUCE_SUM));
        expect_error(TG_EINVAL, "tg_binary_cross_entropy", "element 150000 is 2", NULL);
    }
    tg_set_num_threads(0);
    assert_null(tg_binary_cross_entropy(vec(2), vec(3), TG_REDUCE_MEAN));
    expect_error(TG_ESHAPE, "tg_binary_cross_entropy", "[2]", "[3]");
    assert_null(tg_bce_with_logits(mat(2, 3), mat(3, 2), NULL, TG_REDUCE_SUM));
    expect_error(TG_ESHAPE, "tg_bce_with_logits", "[2, 3]", "[3, 2]");
    assert_null(tg_bce_with_logits(mat(2, 3), mat(2, 3), vec(4), TG_REDUCE_SUM));
    expect_error(TG_ESHAPE, "tg_bce_with_logits", "[4]", "[2, 3]");
    /* one that broadcasts with the input only to a larger shape */
    assert_null(tg_bce_with_logits(vec(3), vec(3), mat(2, 3), TG_REDUCE_SUM));
    expect_error(TG_ESHAPE, "tg_bce_with_logits", "pos_weight [2, 3] does not broadcast",
                 "input [3]");
    assert_null(tg_mse_loss(vec(2), vec(3), TG_REDUCE_NONE));
    expect_error(TG_ESHAPE, "tg_mse_loss", "[2]", "[3]");
    assert_null(tg_mse_loss(vec(2), vec(2), (tg_reduction)7));
    expect_error(TG_EINVAL, "tg_mse_loss", "7", NULL);
    assert_null(tg_bce_with_logits(vec(2), vec(2), NULL, (tg_reduction)-1));
    expect_error(TG_EINVAL, "tg_bce_with_logits", NULL, NULL);
    /* as in PyTorch 1.13: a target may require grad, a pos_weight may not (in grad mode),
     * whether it is a leaf or computed */
    tg_tensor *rg = tg_requires_grad_(vec(2), true);
    assert_non_null(tg_binary_cross_entropy(tg_full(1, (int64_t[]){2}, 0.5f), rg, TG_REDUCE_SUM));
    assert_non_null(tg_bce_with_logits(vec(2), rg, NULL, TG_REDUCE_SUM));
    expect_ok();
    assert_null(tg_bce_with_logits(vec(2), vec(2), rg, TG_REDUCE_SUM));
    expect_error(TG_EUNSUPPORTED, "tg_bce_with_logits", "'pos_weight'", NULL);
    assert_null(tg_bce_with_logits(vec(2), vec(2), tg_mul_scalar(rg, 2.0f), TG_REDUCE_MEAN));
    expect_error(TG_EUNSUPPORTED, "tg_bce_with_logits", "'pos_weight'", NULL);
    TG_NO_GRAD
    {
        assert_non_null(tg_bce_with_logits(vec(2), vec(2), rg, TG_REDUCE_SUM));
    }
    /* A refused name leaves the family in force (whatever TAPEGRAD_ISA chose for this run):
     * an unknown one, and one the library knows but this CPU cannot run. */
    char before[32];
    snprintf(before, sizeof before, "%s", tg_isa());
    assert_int_equal(tg_set_isa("no-such-isa"), TG_EUNSUPPORTED);
    expect_error(TG_EUNSUPPORTED, "tg_set_isa", "no-such-isa", NULL);
    assert_string_equal(tg_isa(), before);
#if defined(__aarch64__)
    const char *const foreign = "avx2";
#else
    const char *const foreign = "neon";
#endif
    assert_int_equal(tg_set_isa(foreign), TG_EUNSUPPORTED);
    expect_error(TG_EUNSUPPORTED, "tg_set_isa", foreign, NULL);
    assert_string_equal(tg_isa(), before);
    assert_int_equal(tg_set_isa(NULL), TG_EINVAL);
    tg_scope_end();
}

/* ---- NULL in, NULL out: every op, no crash ---- */

static void expect_null_error(const tg_tensor *r, const char *fn)
{
    assert_null(r);
    expect_error(TG_EINVAL, fn, NULL, NULL);
}

/* NULL where a function should write its result: an error, or nothing done, never a crash. */
static void test_null_outputs(void **state)
{
    (void)state;
    tg_logreg_options_init(NULL);
    tg_logreg_model_init(NULL);
    tg_sgd_options_init(NULL);
    tg_adam_options_init(NULL);
    tg_adamw_options_init(NULL);
    tg_csv_options_init(NULL);
    assert_int_equal(tg_solver_parse("gd", NULL), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_solver_parse", "NULL", NULL);
    tg_solver s = TG_SOLVER_LBFGS;
    assert_int_equal(tg_solver_parse("nope", &s), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_solver_parse", "'nope'", NULL);
    assert_int_equal(tg_solver_parse("adam", &s), TG_OK);
    assert_int_equal(s, TG_SOLVER_ADAM);
    expect_ok(); /* the failure before is not reported after a success */
}

/* The message names the function the caller called, and the actual problem. */
static void test_messages_name_the_call(void **state)
{
    (void)state;
    assert_int_equal(tg_print(NULL), -1);
    expect_error(TG_EINVAL, "tg_print: tensor is NULL", NULL, NULL);
    assert_null(tg_repr(NULL));
    expect_error(TG_EINVAL, "tg_repr: tensor is NULL", NULL, NULL);
    assert_int_equal(tg_logreg_save(NULL, "unused.json"), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_logreg_save: the model is NULL", NULL, NULL);
    assert_null(tg_logreg_to_json(NULL));
    expect_error(TG_EINVAL, "tg_logreg_to_json: the model is NULL", NULL, NULL);
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    assert_int_equal(tg_logreg_save(&m, "unused.json"), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_logreg_save: the model is empty", NULL, NULL);
    assert_int_equal(tg_logreg_model_set_names(&m, (const char *[]){"a", NULL}, 2, NULL),
                     TG_EINVAL);
    expect_error(TG_EINVAL, "tg_logreg_model_set_names", "names[1] is NULL", NULL);
    assert_int_equal(tg_logreg_model_set_names(&m, (const char *[]){"a"}, -1, NULL), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_logreg_model_set_names", "-1 names", NULL);
    assert_int_equal(tg_logreg_model_set_names(&m, (const char *[]){"a", "b"}, 2, "y"), TG_OK);
    assert_string_equal(m.feature_names[1], "b");
    /* still no weights: names of another count replace these */
    assert_int_equal(tg_logreg_model_set_names(&m, (const char *[]){"c"}, 1, NULL), TG_OK);
    assert_int_equal(m.n_features, 1);
    assert_string_equal(m.feature_names[0], "c");
    tg_logreg_model_free(&m);
}

static void test_null_arguments(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *x = mat(2, 2), *n = NULL;
    tg_tensor *(*const binary[])(tg_tensor *, tg_tensor *) = {tg_add, tg_sub, tg_mul,
                                                              tg_div, tg_pow, tg_matmul};
    const char *const binary_names[] = {"tg_add", "tg_sub", "tg_mul",
                                        "tg_div", "tg_pow", "tg_matmul"};
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++) {
        expect_null_error(binary[i](n, x), binary_names[i]);
        expect_null_error(binary[i](x, n), binary_names[i]);
        expect_null_error(binary[i](n, n), binary_names[i]);
    }
    tg_tensor *(*const unary[])(tg_tensor *) = {
        tg_neg,  tg_exp, tg_log, tg_sin,  tg_cos,        tg_tanh,  tg_sigmoid, tg_relu,
        tg_sqrt, tg_abs, tg_sum, tg_mean, tg_contiguous, tg_clone, tg_detach};
    const char *const unary_names[] = {"tg_neg",        "tg_exp",   "tg_log",     "tg_sin",
                                       "tg_cos",        "tg_tanh",  "tg_sigmoid", "tg_relu",
                                       "tg_sqrt",       "tg_abs",   "tg_sum",     "tg_mean",
                                       "tg_contiguous", "tg_clone", "tg_detach"};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        expect_null_error(unary[i](n), unary_names[i]);
    expect_null_error(tg_add_scalar(n, 1), "tg_add_scalar");
    expect_null_error(tg_mul_scalar(n, 1), "tg_mul_scalar");
    expect_null_error(tg_pow_scalar(n, 2), "tg_pow_scalar");
    expect_null_error(tg_rsub_scalar(1, n), "tg_rsub_scalar");
    expect_null_error(tg_clamp(n, 0, 1), "tg_clamp");
    expect_null_error(tg_sum_dim(n, 0, false), "tg_sum_dim");
    expect_null_error(tg_mean_dim(n, 0, true), "tg_mean_dim");
    expect_null_error(tg_reshape(n, 1, (int64_t[]){4}), "tg_reshape");
    expect_null_error(tg_transpose(n, 0, 1), "tg_transpose");
    expect_null_error(tg_permute(n, (int[]){1, 0}), "tg_permute");
    expect_null_error(tg_permute(x, NULL), "tg_permute");
    expect_null_error(tg_narrow(n, 0, 0, 1), "tg_narrow");
    expect_null_error(tg_expand(n, 2, (int64_t[]){2, 2}), "tg_expand");
    expect_null_error(tg_binary_cross_entropy(n, x, TG_REDUCE_MEAN), "tg_binary_cross_entropy");
    expect_null_error(tg_binary_cross_entropy(x, n, TG_REDUCE_MEAN), "tg_binary_cross_entropy");
    expect_null_error(tg_bce_with_logits(n, x, NULL, TG_REDUCE_MEAN), "tg_bce_with_logits");
    expect_null_error(tg_bce_with_logits(x, n, x, TG_REDUCE_MEAN), "tg_bce_with_logits");
    expect_null_error(tg_mse_loss(n, x, TG_REDUCE_SUM), "tg_mse_loss");
    expect_null_error(tg_mse_loss(x, n, TG_REDUCE_SUM), "tg_mse_loss");
    /* in place */
    expect_null_error(tg_zero_(n), "tg_zero_");
    expect_null_error(tg_fill_(n, 1), "tg_fill_");
    expect_null_error(tg_mul_scalar_(n, 2), "tg_mul_scalar_");
    expect_null_error(tg_add_(n, x), "tg_add_");
    expect_null_error(tg_add_(x, n), "tg_add_");
    expect_null_error(tg_axpy_(n, 1, x), "tg_axpy_");
    expect_null_error(tg_axpy_(x, 1, n), "tg_axpy_");
    /* autograd and inspection */
    expect_null_error(tg_requires_grad_(n, true), "tg_requires_grad_");
    assert_int_equal(tg_backward(n, NULL, false), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_backward", NULL, NULL);
    tg_retain_grad(n);
    expect_error(TG_EINVAL, "tg_retain_grad", NULL, NULL);
    assert_null(tg_grad(n));
    assert_null(tg_grad_fn_name(n));
    tg_grad_reset(n);
    assert_false(tg_requires_grad(n));
    assert_false(tg_is_leaf(n));
    assert_int_equal(tg_ndim(n), -1);
    assert_null(tg_shape(n));
    assert_null(tg_strides(n));
    assert_int_equal(tg_numel(n), -1);
    assert_false(tg_is_contiguous(n));
    assert_int_equal(tg_version(n), 0);
    assert_null(tg_retain(n));
    tg_release(n);
    assert_null(tg_keep(n));
    assert_true(isnan(tg_item(n)));
    expect_error(TG_EINVAL, "tg_item", NULL, NULL);
    assert_null(tg_data(n));
    expect_error(TG_EINVAL, "tg_data", NULL, NULL);
    float buf[4];
    assert_int_equal(tg_copy_to(n, buf, 4), -1);
    expect_error(TG_EINVAL, "tg_copy_to", NULL, NULL);
    assert_null(tg_repr(n));
    expect_error(TG_EINVAL, "tg_repr", NULL, NULL);
    tg_scope_end();
}

static void test_errors_flow_through_expressions(void **state)
{
    (void)state;
    tg_scope_begin();
    /* one check at the end of a chain still names the call that failed */
    tg_tensor *r = tg_sum(tg_exp(tg_add(mat(2, 3), vec(4))));
    assert_null(r);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_tensor *v5 = vec(5); /* made first: sibling arguments are evaluated in any order */
    r = tg_mean(tg_matmul(tg_reshape(mat(2, 3), 1, (int64_t[]){5}), v5));
    assert_null(r);
    expect_error(TG_ESHAPE, "tg_reshape", "[5]", NULL);
    assert_null(tg_requires_grad_(tg_from_data(NULL, 1, (int64_t[]){2}), true));
    expect_error(TG_EINVAL, "tg_from_data", NULL, NULL);
    assert_null(tg_exp(tg_detach(tg_matmul(mat(2, 3), mat(2, 3)))));
    expect_error(TG_ESHAPE, "tg_matmul", "[2, 3]", NULL);
    /* so do the calls that end an expression: reading, printing and in-place updates */
    assert_true(isnan(tg_item(tg_sum(tg_add(mat(2, 3), vec(4))))));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    assert_null(tg_data(tg_add(mat(2, 3), vec(4))));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    float buf[8];
    assert_int_equal(tg_copy_to(tg_add(mat(2, 3), vec(4)), buf, 8), -1);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    assert_null(tg_repr(tg_add(mat(2, 3), vec(4))));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    assert_int_equal(tg_print(tg_add(mat(2, 3), vec(4))), -1);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_tensor *w = mat(2, 3);
    assert_null(tg_add_(w, tg_mul_scalar(tg_add(mat(2, 3), vec(4)), 0.1f)));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    assert_null(tg_axpy_(w, 0.1f, tg_add(mat(2, 3), vec(4))));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    assert_null(tg_zero_(tg_reshape(w, 1, (int64_t[]){5})));
    expect_error(TG_ESHAPE, "tg_reshape", "[5]", NULL);
    assert_null(tg_fill_(tg_transpose(w, 0, 2), 1));
    expect_error(TG_EINVAL, "tg_transpose", NULL, NULL);
    /* a NULL of the caller's own names the function that received it: after a successful call,
     * and after a call that itself only reported a NULL argument */
    assert_non_null(vec(1));
    assert_null(tg_neg(NULL));
    expect_error(TG_EINVAL, "tg_neg", NULL, NULL);
    assert_null(tg_exp(NULL));
    expect_error(TG_EINVAL, "tg_exp", NULL, NULL);
    tg_scope_end();
}

/* The functions past the ops (autograd's void calls, training, optimizers, metrics) keep the
 * cause of a NULL input too, and a NULL of the caller's own still names the function. */
static void test_null_inputs_keep_the_cause(void **state)
{
    (void)state;
    tg_scope_begin();
    /* the other arguments are made first: sibling arguments are evaluated in any order */
    tg_tensor *v2 = vec(2), *v3 = vec(3);
    tg_retain_grad(tg_add(mat(2, 3), vec(4)));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_binary_metrics bm;
    assert_int_equal(tg_binary_metrics_compute(v3, tg_add(mat(2, 3), vec(4)), &bm), TG_ESHAPE);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    double w[3] = {0, 0, 0}, loss;
    assert_int_equal(
        tg_logreg_loss_grad(tg_add(mat(2, 3), vec(4)), v2, w, 0, 0, 1, &loss, NULL, NULL),
        TG_ESHAPE);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    assert_null(tg_logreg_predict(&m, tg_add(mat(2, 3), vec(4))));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    assert_int_equal(tg_logreg_fit(tg_add(mat(2, 3), vec(4)), v2, &o, &m, NULL), TG_ESHAPE);
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    tg_tensor *params[1] = {tg_add(mat(2, 3), vec(4))};
    assert_null(tg_sgd_new(params, 1, NULL));
    expect_error(TG_ESHAPE, "tg_add", "[2, 3]", "[4]");
    /* after a successful call the NULL is the caller's own */
    assert_non_null(vec(1));
    tg_retain_grad(NULL);
    expect_error(TG_EINVAL, "tg_retain_grad", NULL, NULL);
    assert_non_null(vec(1));
    assert_null(tg_logreg_predict(&m, NULL));
    expect_error(TG_EINVAL, "tg_logreg_predict", "X is NULL", NULL);
    assert_non_null(vec(1));
    assert_int_equal(tg_binary_metrics_compute(v3, NULL, &bm), TG_EINVAL);
    expect_error(TG_EINVAL, "tg_binary_metrics_compute", "logits is NULL", NULL);
    /* an optional argument's NULL means "none", even right after a failure (documented) */
    tg_tensor *W = mat(2, 3), *x = mat(4, 3);
    assert_null(tg_add(mat(2, 3), vec(4)));
    tg_tensor *y = tg_linear(x, W, NULL);
    assert_non_null(y);
    expect_ok();
    tg_logreg_model_free(&m);
    tg_scope_end();
}

static void test_permute_dims(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *s = tg_permute(tg_scalar(2), NULL); /* a 0-d tensor has no dims to list */
    assert_non_null(s);
    assert_int_equal(tg_ndim(s), 0);
    assert_null(tg_permute(mat(2, 3), NULL));
    expect_error(TG_EINVAL, "tg_permute", "dims is NULL", NULL);
    tg_scope_end();
}

/* ---- success resets the status ---- */

static void test_success_clears_error(void **state)
{
    (void)state;
    tg_scope_begin();
    tg_tensor *a = mat(2, 3), *b = vec(4), *c = vec(3);
    assert_null(tg_add(a, b));
    assert_string_not_equal(tg_last_error(), "");
    assert_non_null(tg_add(a, c));
    expect_ok();
    assert_null(tg_add(a, b));
    assert_non_null(tg_exp(a));
    expect_ok();
    assert_null(tg_add(a, b));
    assert_true(tg_item(tg_sum(a)) == 6.0f);
    expect_ok();
    assert_null(tg_add(a, b));
    assert_non_null(tg_data(a));
    expect_ok();
    assert_null(tg_add(a, b));
    assert_non_null(tg_fill_(c, 2.0f));
    expect_ok();
    assert_null(tg_add(a, b));
    assert_non_null(tg_zeros(1, (int64_t[]){2}));
    expect_ok();
    assert_null(tg_add(a, b));
    float buf[6];
    assert_int_equal(tg_copy_to(a, buf, 6), 6);
    expect_ok();
    tg_tensor *x = tg_requires_grad_(vec(2), true);
    tg_tensor *y = tg_sum(tg_mul(x, x));
    assert_null(tg_add(a, b));
    assert_int_equal(tg_backward(y, NULL, false), TG_OK);
    expect_ok();
    assert_null(tg_add(a, b));
    char *s = tg_repr(c);
    expect_ok();
    free(s);
    assert_int_equal(tg_set_isa(tg_isa()), TG_OK);
    expect_ok();
    assert_string_equal(tg_status_name(TG_ESHAPE), "TG_ESHAPE");
    assert_string_equal(tg_status_name(TG_OK), "TG_OK");
    tg_scope_end();
}

/* A training step checked once at its end: the loss is NULL because an op failed, and zeroing
 * the grads (a void call) in between must keep the op's error. */
static void test_zero_grad_keeps_the_error(void **state)
{
    (void)state;
    tg_tensor *w = tg_requires_grad_(vec(3), true);
    tg_tensor *params[1] = {w};
    tg_sgd_options o;
    tg_sgd_options_init(&o);
    tg_optimizer *opt = tg_sgd_new(params, 1, &o);
    assert_non_null(opt);
    tg_tensor *l0 = tg_sum(tg_mul(w, w));
    assert_int_equal(tg_backward(l0, NULL, false), TG_OK); /* w has a grad to zero */
    tg_release(l0);

    tg_tensor *bad = vec(4);
    tg_tensor *loss = tg_add(w, bad); /* [3] + [4]: not broadcastable */
    assert_null(loss);
    tg_optimizer_zero_grad(opt, false);
    expect_error(TG_ESHAPE, "tg_add", "[3] and [4]", NULL);
    tg_optimizer_zero_grad(opt, true);
    expect_error(TG_ESHAPE, "tg_add", "[3] and [4]", NULL);
    tg_optimizer_free(opt);
    tg_release(bad);
    tg_release(w);
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_broadcast_errors),
        cmocka_unit_test(test_matmul_errors),
        cmocka_unit_test(test_dim_errors),
        cmocka_unit_test(test_reshape_expand_errors),
        cmocka_unit_test(test_creation_errors),
        cmocka_unit_test(test_value_errors),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_null_outputs),
        cmocka_unit_test(test_messages_name_the_call),
        cmocka_unit_test(test_errors_flow_through_expressions),
        cmocka_unit_test(test_null_inputs_keep_the_cause),
        cmocka_unit_test(test_permute_dims),
        cmocka_unit_test(test_success_clears_error),
        cmocka_unit_test(test_zero_grad_keeps_the_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
