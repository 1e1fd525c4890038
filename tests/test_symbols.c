/* A program linked against the shared library that happens to define a function named like
 * one of the library's internal ones. The library must keep calling its own: a fit has to
 * reach the optimum of a small problem, not this program's solve_lbfgs. */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_internal_names_are_not_interposed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
