/* The L-BFGS solver (src/train/lbfgs.c) on its own, on functions whose minima are known in
 * closed form: it must reach them, report what happened, and take the fallback branches of its
 * line search (the zoom moving either end, a search out of budget, an interval that collapses)
 * without losing the point. The logistic trainer's tests reach it only through well-behaved
 * losses. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "train/lbfgs.h"

/* Counts every evaluation, so a test can check the report against the calls made. */
typedef struct {
    int64_t calls;
    int stop_at; /* step callback: stop after this many accepted steps (0: never) */
} probe_ctx;

/* Extended Rosenbrock (pairs of coordinates): minimum 0 at (1, ..., 1). */
static double rosenbrock(void *ctx, const double *x, double *g, int64_t n)
{
    ((probe_ctx *)ctx)->calls++;
    double f = 0.0;
    for (int64_t i = 0; i < n; i += 2) {
        double a = x[i + 1] - x[i] * x[i], b = 1.0 - x[i];
        f += 100.0 * a * a + b * b;
        g[i] = -400.0 * x[i] * a - 2.0 * b;
        g[i + 1] = 200.0 * a;
    }
    return f;
}

static double rosenbrock2(void *ctx, const double *x, double *g)
{
    return rosenbrock(ctx, x, g, 2);
}

static double rosenbrock20(void *ctx, const double *x, double *g)
{
    return rosenbrock(ctx, x, g, 20);
}

/* 1/2 sum d_i x_i^2 with d_i from 1 to 100: minimum 0 at 0, condition number 100, 50 distinct
 * curvatures (more than the solver's memory). */
#define QN 50
static double scaled_quadratic(void *ctx, const double *x, double *g)
{
    ((probe_ctx *)ctx)->calls++;
    double f = 0.0;
    for (int i = 0; i < QN; i++) {
        double d = pow(10.0, 2.0 * i / (QN - 1));
        f += 0.5 * d * x[i] * x[i];
        g[i] = d * x[i];
    }
    return f;
}

/* -(x_0 + x_1): unbounded below, the same gradient everywhere. */
static double linear(void *ctx, const double *x, double *g)
{
    ((probe_ctx *)ctx)->calls++;
    g[0] = g[1] = -1.0;
    return -(x[0] + x[1]);
}

/* x^2 with the gradient's sign flipped: every direction it implies goes uphill. */
static double lying_gradient(void *ctx, const double *x, double *g)
{
    ((probe_ctx *)ctx)->calls++;
    g[0] = -2.0 * x[0];
    return x[0] * x[0];
}

/* A slope of -1 up to a steep wall at 0.9: -x + 1000 max(0, x - 0.9)^2, minimum at
 * x = 0.9 + 1/2000 (f = -0.90025). From 0 the unit step lands on the wall; the points the
 * search then tries short of the wall decrease f but keep the full slope, so the search must move
 * the low end of its interval (not only the high end) to reach the minimum. */
static double wall(void *ctx, const double *x, double *g)
{
    ((probe_ctx *)ctx)->calls++;
    double over = x[0] > 0.9 ? x[0] - 0.9 : 0.0;
    g[0] = -1.0 + 2000.0 * over;
    return -x[0] + 1000.0 * over * over;
}

static double nan_everywhere(void *ctx, const double *x, double *g)
{
    ((probe_ctx *)ctx)->calls++;
    g[0] = NAN;
    return x[0] * NAN;
}

static int stop_after(void *ctx, int iter, const double *x, double f, const double *g)
{
    (void)x, (void)f, (void)g;
    const probe_ctx *c = ctx;
    return c->stop_at > 0 && iter >= c->stop_at;
}

/* The solver's defaults with the given changes; 0 keeps a default. */
static lbfgs_params params(double gtol, int max_iter, int max_ls)
{
    lbfgs_params p;
    lbfgs_params_init(&p);
    if (gtol > 0.0)
        p.gtol = gtol;
    if (max_iter > 0)
        p.max_iter = max_iter;
    if (max_ls > 0)
        p.max_ls = max_ls;
    return p;
}

/* The report counts every evaluation made and gives f at the x returned. */
static void check_report(const lbfgs_report *r, const probe_ctx *c, lbfgs_fn f, const double *x,
                         int64_t n)
{
    double g[64];
    probe_ctx again = {0, 0};
    assert_true(n <= 64);
    assert_int_equal(r->evaluations, c->calls);
    assert_true(r->f == f(&again, x, g));
}

static void test_rosenbrock_from_textbook_start(void **state)
{
    (void)state;
    lbfgs_params p = params(1e-8, 200, 0);
    probe_ctx c = {0, 0};
    double x[2] = {-1.2, 1.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(2, x, rosenbrock2, NULL, &c, &p, &r), LBFGS_CONVERGED);
    assert_true(fabs(x[0] - 1.0) < 1e-7 && fabs(x[1] - 1.0) < 1e-7);
    assert_true(r.gmax <= 1e-8);
    assert_true(r.iterations > 10); /* the valley takes a few dozen steps, not one */
    check_report(&r, &c, rosenbrock2, x, 2);
}

static void test_rosenbrock_20(void **state)
{
    (void)state;
    lbfgs_params p = params(1e-7, 500, 0);
    p.memory = 5;
    probe_ctx c = {0, 0};
    double x[20];
    for (int i = 0; i < 20; i++)
        x[i] = i % 2 ? 1.0 : -1.2;
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(20, x, rosenbrock20, NULL, &c, &p, &r), LBFGS_CONVERGED);
    for (int i = 0; i < 20; i++)
        assert_true(fabs(x[i] - 1.0) < 1e-6);
    check_report(&r, &c, rosenbrock20, x, 20);
}

static void test_badly_scaled_quadratic(void **state)
{
    (void)state;
    lbfgs_params p = params(1e-8, 500, 0);
    probe_ctx c = {0, 0};
    double x[QN];
    for (int i = 0; i < QN; i++)
        x[i] = 1.0;
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(QN, x, scaled_quadratic, NULL, &c, &p, &r), LBFGS_CONVERGED);
    /* |g_i| = d_i |x_i| <= gtol with d_i >= 1 */
    for (int i = 0; i < QN; i++)
        assert_true(fabs(x[i]) <= 1e-8);
    assert_true(r.f < 1e-15);
}

/* Already at the minimum: no step, x untouched, one evaluation. */
static void test_start_at_minimum(void **state)
{
    (void)state;
    lbfgs_params p = params(0.0, 0, 0);
    probe_ctx c = {0, 0};
    double x[2] = {1.0, 1.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(2, x, rosenbrock2, NULL, &c, &p, &r), LBFGS_CONVERGED);
    assert_int_equal(r.iterations, 0);
    assert_int_equal(r.evaluations, 1);
    assert_true(x[0] == 1.0 && x[1] == 1.0 && r.f == 0.0 && r.gmax == 0.0);
}

/* Unbounded below: each line search doubles the step until its budget runs out and takes the
 * last (best) point; the run ends on the iteration limit with a finite, lower f. */
static void test_unbounded_takes_best_step(void **state)
{
    (void)state;
    lbfgs_params p = params(0.0, 3, 6);
    probe_ctx c = {0, 0};
    double x[2] = {0.0, 0.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(2, x, linear, NULL, &c, &p, &r), LBFGS_MAX_ITER);
    assert_int_equal(r.iterations, 3);
    assert_int_equal(r.evaluations, 1 + 3 * 6);
    /* each search starts with a unit-length move along (1, 1) and doubles it five times */
    assert_true(isfinite(r.f) && r.f < -100.0);
    assert_true(x[0] == x[1] && x[0] > 0.0);
    check_report(&r, &c, linear, x, 2);
}

/* No step decreases f along the direction the gradient gives: the search shrinks its interval,
 * steepest descent fails too, and x comes back as it went in; whether the interval collapses
 * first (a large budget) or the budget runs out (max_ls evaluations). */
static void test_no_descent_keeps_point(void **state)
{
    (void)state;
    for (int max_ls = 10; max_ls <= 10000; max_ls *= 1000) {
        lbfgs_params p;
        lbfgs_params_init(&p);
        p.max_ls = max_ls;
        probe_ctx c = {0, 0};
        double x[1] = {3.0};
        lbfgs_report r;
        assert_int_equal(lbfgs_minimize(1, x, lying_gradient, NULL, &c, &p, &r), LBFGS_NO_PROGRESS);
        assert_int_equal(r.iterations, 0);
        assert_true(x[0] == 3.0 && r.f == 9.0);
        if (max_ls == 10)
            assert_int_equal(r.evaluations, 1 + 10);
        else /* the interval reached rounding size long before 10000 evaluations */
            assert_true(r.evaluations > 11 && r.evaluations < 1 + max_ls);
    }
}

static void test_zoom_moves_low_end(void **state)
{
    (void)state;
    lbfgs_params p = params(1e-9, 0, 0);
    probe_ctx c = {0, 0};
    double x[1] = {0.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(1, x, wall, NULL, &c, &p, &r), LBFGS_CONVERGED);
    assert_true(fabs(x[0] - 0.9005) <= 1e-9 / 2000 * 1.01); /* |g| = 2000 |x - x*| */
    assert_true(fabs(r.f + 0.90025) < 1e-12);
    check_report(&r, &c, wall, x, 1);
}

/* The same start with two evaluations per search: the unit step hits the wall, the one trial
 * left decreases f but fails the curvature test, and the search takes it as the best it has. */
static void test_zoom_budget_takes_best(void **state)
{
    (void)state;
    lbfgs_params p = params(0.0, 1, 2);
    probe_ctx c = {0, 0};
    double x[1] = {0.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(1, x, wall, NULL, &c, &p, &r), LBFGS_MAX_ITER);
    assert_int_equal(r.iterations, 1);
    assert_int_equal(r.evaluations, 3);
    assert_true(x[0] > 0.0 && x[0] < 0.9 && r.f == -x[0]);
    check_report(&r, &c, wall, x, 1);
    assert_true(r.gmax == 1.0); /* the gradient kept is the one at the point taken */
}

static void test_nan_start(void **state)
{
    (void)state;
    lbfgs_params p = params(0.0, 0, 0);
    probe_ctx c = {0, 0};
    double x[1] = {1.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(1, x, nan_everywhere, NULL, &c, &p, &r), LBFGS_NO_PROGRESS);
    assert_int_equal(r.iterations, 0);
    assert_int_equal(r.evaluations, 1);
    assert_true(x[0] == 1.0 && isnan(r.f));
}

static void test_step_callback_stops(void **state)
{
    (void)state;
    lbfgs_params p = params(0.0, 0, 0);
    probe_ctx c = {0, 2};
    double x[2] = {-1.2, 1.0};
    lbfgs_report r;
    assert_int_equal(lbfgs_minimize(2, x, rosenbrock2, stop_after, &c, &p, &r), LBFGS_STOPPED);
    assert_int_equal(r.iterations, 2);
    check_report(&r, &c, rosenbrock2, x, 2);
    assert_true(r.f < 24.2); /* f(-1.2, 1) = 24.2: two accepted steps went down */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rosenbrock_from_textbook_start),
        cmocka_unit_test(test_rosenbrock_20),
        cmocka_unit_test(test_badly_scaled_quadratic),
        cmocka_unit_test(test_start_at_minimum),
        cmocka_unit_test(test_unbounded_takes_best_step),
        cmocka_unit_test(test_no_descent_keeps_point),
        cmocka_unit_test(test_zoom_moves_low_end),
        cmocka_unit_test(test_zoom_budget_takes_best),
        cmocka_unit_test(test_nan_start),
        cmocka_unit_test(test_step_callback_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
