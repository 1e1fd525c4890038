/* A program linked against the shared library that happens to define functions named like
 * the library's internal ones. The library must keep calling its own: a fit has to reach the
 * optimum of a small problem, not this program's solve_lbfgs, and an error has to be reported
 * through the library's tg_set_error, which carries the tg_ prefix but is no public API. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <tapegrad.h>

static int solve_lbfgs_calls;

/* Same name as the trainer's internal solver; it must never run. */
int solve_lbfgs(void *ctx, double *theta);
int solve_lbfgs(void *ctx, double *theta)
{
    (void)ctx, (void)theta;
    solve_lbfgs_calls++;
    return (int)TG_EUNSUPPORTED;
}

static int tg_set_error_calls;

/* Same name as the library's internal error setter (src/core/error.h); it must never run. */
tg_status tg_set_error(tg_status s, const char *fmt, ...);
tg_status tg_set_error(tg_status s, const char *fmt, ...)
{
    (void)fmt;
    tg_set_error_calls++;
    return s;
}

static void test_internal_names_are_not_interposed(void **state)
{
    (void)state;
    /* One feature, labels 0 0 1 0 1 1 at x = 1..6, no penalty, no standardization: the
     * optimum solves sum_i (sigmoid(w x_i + b) - y_i) (x_i, 1) = 0. */
    const float xv[6] = {1, 2, 3, 4, 5, 6}, yv[6] = {0, 0, 1, 0, 1, 1};
    int64_t xs[2] = {6, 1}, ys[1] = {6};
    tg_tensor *X = tg_from_data(xv, 2, xs), *y = tg_from_data(yv, 1, ys);
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    o.l2 = 0.0;
    o.standardize = false;
    o.tol = 1e-7;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_OK);
    assert_int_equal(solve_lbfgs_calls, 0);
    double gw = 0.0, gb = 0.0;
    for (int i = 0; i < 6; i++) {
        double r = 1.0 / (1.0 + exp(-(m.weights[0] * xv[i] + m.bias))) - yv[i];
        gw += r * xv[i];
        gb += r;
    }
    assert_true(fabs(gw) < 1e-5 && fabs(gb) < 1e-5);
    assert_true(m.weights[0] > 0.5); /* labels rise with x */
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
}

/* Internal functions named tg_ too are not exported: a shape error is set by the library. */
static void test_internal_tg_names_are_not_interposed(void **state)
{
    (void)state;
    int64_t s23[2] = {2, 3}, s4[1] = {4};
    tg_tensor *a = tg_zeros(2, s23), *b = tg_zeros(1, s4);
    tg_tensor *c = tg_add(a, b);
    assert_null(c);
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    assert_non_null(strstr(tg_last_error(), "not broadcastable"));
    assert_int_equal(tg_set_error_calls, 0);
    tg_release(a);
    tg_release(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_names_are_not_interposed),
        cmocka_unit_test(test_internal_tg_names_are_not_interposed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
