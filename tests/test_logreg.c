/* Logistic-regression trainer: the fused objective against autograd, solvers against optima
 * computed here in double by Newton's method, determinism, splits, model files, metrics and
 * error paths. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "tapegrad.h"
#include "tapegrad/train.h"

/* ---- data -------------------------------------------------------------------------------- */

static uint64_t lcg_state;
static double uniform(void) /* [0, 1) */
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(lcg_state >> 11) * 0x1p-53;
}
static double normal(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

typedef struct {
    int64_t n, d;
    float *X, *y; /* malloc'd */
} dataset;

/* Features mean_j + scale_j N(0,1); labels from a logistic model plus noise (not separable). */
static dataset make_data(int64_t n, int64_t d, uint64_t seed, double mean, double scale)
{
    dataset s = {n, d, malloc((size_t)(n * d) * sizeof(float)), malloc((size_t)n * sizeof(float))};
    lcg_state = seed;
    for (int64_t i = 0; i < n; i++) {
        double z = 0.3;
        for (int64_t j = 0; j < d; j++) {
            double v = normal();
            z += v * (j % 2 ? 0.8 : -0.5) / sqrt((double)d) * 2.0;
            s.X[i * d + j] = (float)(mean * (double)(j + 1) + scale * (1.0 + 0.5 * (double)j) * v);
        }
        s.y[i] = uniform() < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
    }
    return s;
}

static void free_data(dataset *s)
{
    free(s->X);
    free(s->y);
}

static tg_tensor *tensor_X(const dataset *s)
{
    int64_t shape[2] = {s->n, s->d};
    return tg_from_data(s->X, 2, shape);
}

static tg_tensor *tensor_y(const dataset *s)
{
    return tg_from_data(s->y, 1, &s->n);
}

/* ---- the reference optimum: Newton's method in double ------------------------------------ */

static double softplus(double v)
{
    return fmax(v, 0.0) + log1p(exp(-fabs(v)));
}

/* Objective mean BCE(pw) + l2/2 |w|^2 at theta = [w, b] over double rows X (n x d). */
static double ref_objective(const double *X, const float *y, int64_t n, int64_t d, double l2,
                            double pw, const double *theta, double *g, double *H)
{
    const int64_t p = d + 1;
    double f = 0.0;
    if (g)
        memset(g, 0, (size_t)p * sizeof(double));
    if (H)
        memset(H, 0, (size_t)(p * p) * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        double z = theta[d];
        for (int64_t j = 0; j < d; j++)
            z += X[i * d + j] * theta[j];
        double t = y[i], wt = pw * t + 1.0 - t, s = 1.0 / (1.0 + exp(-z));
        f += pw * t * softplus(-z) + (1.0 - t) * softplus(z);
        double r = wt * s - pw * t, h = wt * s * (1.0 - s);
        for (int64_t a = 0; a < p; a++) {
            double xa = a < d ? X[i * d + a] : 1.0;
            if (g)
                g[a] += r * xa;
            for (int64_t b = 0; H && b < p; b++)
                H[a * p + b] += h * xa * (b < d ? X[i * d + b] : 1.0);
        }
    }
    f /= (double)n;
    for (int64_t a = 0; a < p; a++) {
        if (g)
            g[a] = g[a] / (double)n + (a < d ? l2 * theta[a] : 0.0);
        for (int64_t b = 0; H && b < p; b++)
            H[a * p + b] = H[a * p + b] / (double)n + (a == b && a < d ? l2 : 0.0);
    }
    for (int64_t j = 0; j < d; j++)
        f += 0.5 * l2 * theta[j] * theta[j];
    return f;
}

/* Solves H x = g in place (Gaussian elimination, partial pivoting). */
static void solve(double *H, double *g, int64_t p)
{
    for (int64_t c = 0; c < p; c++) {
        int64_t piv = c;
        for (int64_t r = c + 1; r < p; r++)
            if (fabs(H[r * p + c]) > fabs(H[piv * p + c]))
                piv = r;
        for (int64_t k = 0; k < p; k++) {
            double t = H[c * p + k];
            H[c * p + k] = H[piv * p + k];
            H[piv * p + k] = t;
        }
        double t = g[c];
        g[c] = g[piv];
        g[piv] = t;
        for (int64_t r = c + 1; r < p; r++) {
            double m = H[r * p + c] / H[c * p + c];
            for (int64_t k = c; k < p; k++)
                H[r * p + k] -= m * H[c * p + k];
            g[r] -= m * g[c];
        }
    }
    for (int64_t c = p - 1; c >= 0; c--) {
        for (int64_t k = c + 1; k < p; k++)
            g[c] -= H[c * p + k] * g[k];
        g[c] /= H[c * p + c];
    }
}

static double ref_fit(const double *X, const float *y, int64_t n, int64_t d, double l2, double pw,
                      double *theta)
{
    const int64_t p = d + 1;
    double *g = malloc((size_t)p * sizeof(double)), *H = malloc((size_t)(p * p) * sizeof(double));
    memset(theta, 0, (size_t)p * sizeof(double));
    for (int it = 0; it < 100; it++) {
        ref_objective(X, y, n, d, l2, pw, theta, g, H);
        solve(H, g, p);
        double step = 0.0;
        for (int64_t a = 0; a < p; a++) {
            theta[a] -= g[a];
            step = fmax(step, fabs(g[a]));
        }
        if (step < 1e-14)
            break;
    }
    double f = ref_objective(X, y, n, d, l2, pw, theta, NULL, NULL);
    free(g);
    free(H);
    return f;
}

static double *to_double(const dataset *s)
{
    double *X = malloc((size_t)(s->n * s->d) * sizeof(double));
    for (int64_t i = 0; i < s->n * s->d; i++)
        X[i] = s->X[i];
    return X;
}

/* Standardizes in double with ddof 0, as the trainer (and sklearn's StandardScaler) do. */
static void standardize_ref(double *X, int64_t n, int64_t d, double *mean, double *std)
{
    for (int64_t j = 0; j < d; j++) {
        double s = 0.0, q = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += X[i * d + j];
        mean[j] = s / (double)n;
        for (int64_t i = 0; i < n; i++)
            q += (X[i * d + j] - mean[j]) * (X[i * d + j] - mean[j]);
        std[j] = sqrt(q / (double)n);
        for (int64_t i = 0; i < n; i++)
            X[i * d + j] = (X[i * d + j] - mean[j]) / std[j];
    }
}

/* ---- helpers ----------------------------------------------------------------------------- */

static void assert_close(double got, double want, double rel, double abs_tol)
{
    double tol = abs_tol + rel * fabs(want);
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.12g, want %.12g (tolerance %.3g)\n", got, want, tol);
        fail();
    }
}

static tg_logreg_options quiet_options(void)
{
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    return o;
}

/* ---- the fused objective ----------------------------------------------------------------- */

/* Mean BCE and its gradient through autograd: tg_bce_with_logits on tg_matmul. */
static void autograd_loss_grad(const dataset *s, const double *w, double b, double pw, double *loss,
                               double *gw, double *gb)
{
    tg_scope_begin();
    float *wf = malloc((size_t)s->d * sizeof(float));
    for (int64_t j = 0; j < s->d; j++)
        wf[j] = (float)w[j];
    int64_t wshape[2] = {s->d, 1};
    tg_tensor *W = tg_requires_grad_(tg_from_data(wf, 2, wshape), true);
    tg_tensor *B = tg_requires_grad_(tg_scalar((float)b), true);
    int64_t n = s->n;
    tg_tensor *z = tg_add(tg_reshape(tg_matmul(tensor_X(s), W), 1, &n), B);
    tg_tensor *pwt = pw != 1.0 ? tg_scalar((float)pw) : NULL;
    tg_tensor *L = tg_bce_with_logits(z, tensor_y(s), pwt, TG_REDUCE_MEAN);
    assert_non_null(L);
    assert_int_equal(tg_backward(L, NULL, false), TG_OK);
    *loss = tg_item(L);
    const float *g = tg_data(tg_grad(W));
    for (int64_t j = 0; j < s->d; j++)
        gw[j] = g[j];
    *gb = tg_item(tg_grad(B));
    free(wf);
    tg_scope_end(); /* releases W and B with the rest */
}

static void check_against_autograd(int64_t n, int64_t d, double pw)
{
    dataset s = make_data(n, d, 11 + (uint64_t)n, 0.5, 1.0);
    double *w = malloc((size_t)d * sizeof(double)), *g1 = malloc((size_t)d * sizeof(double)),
           *g2 = malloc((size_t)d * sizeof(double));
    for (int64_t j = 0; j < d; j++)
        w[j] = 0.3 * sin((double)j + 1.0);
    double b = -0.2, l1, l2v, b1, b2;
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    assert_int_equal(tg_logreg_loss_grad(X, y, w, b, 0.0, pw, &l1, g1, &b1), TG_OK);
    autograd_loss_grad(&s, w, b, pw, &l2v, g2, &b2);
    assert_close(l1, l2v, 1e-5, 0.0);
    double gmax = fabs(b2);
    for (int64_t j = 0; j < d; j++)
        gmax = fmax(gmax, fabs(g2[j]));
    /* 1e-5 relative, measured against the gradient's largest entry */
    for (int64_t j = 0; j < d; j++)
        assert_close(g1[j], g2[j], 0.0, 1e-5 * gmax);
    assert_close(b1, b2, 0.0, 1e-5 * gmax);
    tg_release(X);
    tg_release(y);
    free(w), free(g1), free(g2);
    free_data(&s);
}

static void test_gradient_matches_autograd(void **state)
{
    (void)state;
    check_against_autograd(1000, 7, 1.0);  /* one block */
    check_against_autograd(5003, 40, 1.0); /* many blocks and a ragged last one */
    check_against_autograd(3001, 32, 2.5); /* pos_weight */
    check_against_autograd(20, 9000, 1.0); /* rows wider than one gemv block */
}

static void test_penalty_term(void **state)
{
    (void)state;
    dataset s = make_data(500, 3, 5, 0.0, 1.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    double w[3] = {0.5, -1.0, 2.0}, g0[3], g1[3], l0, l1, b0, b1;
    assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.1, 0.0, 1.0, &l0, g0, &b0), TG_OK);
    assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.1, 0.2, 1.0, &l1, g1, &b1), TG_OK);
    assert_close(l1 - l0, 0.1 * (0.25 + 1.0 + 4.0), 1e-12, 1e-12);
    for (int j = 0; j < 3; j++)
        assert_close(g1[j] - g0[j], 0.2 * w[j], 1e-9, 1e-12);
    assert_true(b0 == b1); /* the intercept is not penalized */
    /* a penalty or class weight that is not a finite non-negative number is refused */
    const double bad_l2[] = {NAN, INFINITY, -0.5};
    for (int i = 0; i < 3; i++) {
        l1 = 42.0;
        assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.1, bad_l2[i], 1.0, &l1, g1, &b1),
                         TG_EINVAL);
        assert_non_null(strstr(tg_last_error(), "l2 must be finite and >= 0"));
        assert_true(l1 == 42.0);
    }
    assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.1, 0.0, INFINITY, &l1, g1, &b1), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "pos_weight must be finite"));
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* Fixed blocks and a fixed-order reduction: any thread count gives the same bits. */
static void test_threads_bit_identical(void **state)
{
    (void)state;
    dataset s = make_data(200003, 16, 3, 1.0, 2.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    double w[16], g1[16], g2[16], l1, l2v, b1, b2;
    for (int j = 0; j < 16; j++)
        w[j] = 0.05 * (j - 8);
    int before = tg_get_num_threads();
    tg_set_num_threads(1);
    assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.3, 1e-3, 1.0, &l1, g1, &b1), TG_OK);
    tg_set_num_threads(2);
    assert_int_equal(tg_logreg_loss_grad(X, y, w, 0.3, 1e-3, 1.0, &l2v, g2, &b2), TG_OK);
    assert_memory_equal(&l1, &l2v, sizeof l1);
    assert_memory_equal(g1, g2, sizeof g1);
    assert_memory_equal(&b1, &b2, sizeof b1);

    /* and so does a whole fit */
    tg_logreg_options o = quiet_options();
    tg_logreg_model m1, m2;
    tg_logreg_model_init(&m1);
    tg_logreg_model_init(&m2);
    tg_set_num_threads(1);
    assert_int_equal(tg_logreg_fit(X, y, &o, &m1, NULL), TG_OK);
    tg_set_num_threads(3);
    assert_int_equal(tg_logreg_fit(X, y, &o, &m2, NULL), TG_OK);
    assert_memory_equal(m1.weights, m2.weights, 16 * sizeof(double));
    assert_memory_equal(&m1.bias, &m2.bias, sizeof(double));
    tg_set_num_threads(before);
    tg_logreg_model_free(&m1);
    tg_logreg_model_free(&m2);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* ---- solvers against the optimum --------------------------------------------------------- */

/* A tiny, non-separable table whose optimum the test computes in double. */
static const float TINY_X[12][2] = {{0.5f, 1.0f},  {1.5f, -0.5f},  {-1.0f, 2.0f}, {2.0f, 0.3f},
                                    {0.1f, -1.2f}, {-0.7f, 0.4f},  {1.1f, 1.9f},  {-2.0f, -0.3f},
                                    {0.9f, 0.0f},  {-0.2f, -0.8f}, {1.7f, 1.1f},  {-1.4f, 0.6f}};
static const float TINY_Y[12] = {1, 1, 0, 1, 0, 0, 1, 0, 0, 1, 1, 0};

static dataset tiny(void)
{
    dataset s = {12, 2, malloc(24 * sizeof(float)), malloc(12 * sizeof(float))};
    memcpy(s.X, TINY_X, sizeof TINY_X);
    memcpy(s.y, TINY_Y, sizeof TINY_Y);
    return s;
}

static void check_tiny_optimum(tg_solver solver, double pw, double tol_w)
{
    dataset s = tiny();
    double *Xd = to_double(&s), theta[3];
    double f_ref = ref_fit(Xd, s.y, 12, 2, 0.1, pw, theta);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.solver = solver;
    o.standardize = false;
    o.l2 = 0.1;
    o.pos_weight = pw;
    o.tol = 1e-6;
    if (solver == TG_SOLVER_SGD || solver == TG_SOLVER_ADAM) {
        o.max_iter = 3000;
        o.batch_size = 12; /* full batch: the iterates settle on the optimum */
        o.lr = solver == TG_SOLVER_SGD ? 0.1 : 0.01;
    }
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_close(m.weights[0], theta[0], 0.0, tol_w);
    assert_close(m.weights[1], theta[1], 0.0, tol_w);
    assert_close(m.bias, theta[2], 0.0, tol_w);
    assert_close(r.objective, f_ref, 0.0, 10 * tol_w * tol_w + 1e-7);
    assert_null(m.mean);
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free(Xd);
    free_data(&s);
}

static void test_tiny_optimum_lbfgs(void **state)
{
    (void)state;
    check_tiny_optimum(TG_SOLVER_LBFGS, 1.0, 1e-5);
    check_tiny_optimum(TG_SOLVER_LBFGS, 3.0, 1e-5);
}

static void test_tiny_optimum_other_solvers(void **state)
{
    (void)state;
    check_tiny_optimum(TG_SOLVER_GD, 1.0, 1e-5);
    check_tiny_optimum(TG_SOLVER_SGD, 1.0, 1e-4);
    check_tiny_optimum(TG_SOLVER_ADAM, 1.0, 1e-3);
}

/* Standardization fitted inside: the weights are the optimum on (x - mean) / std, ddof 0. */
static void check_standardized_optimum(double centre, double spread)
{
    dataset s = make_data(2000, 4, 9, centre, spread);
    double *Xd = to_double(&s), mean[4], std[4], theta[5];
    standardize_ref(Xd, s.n, s.d, mean, std);
    double f_ref = ref_fit(Xd, s.y, s.n, s.d, 1.0 / (double)s.n, 1.0, theta);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options(); /* l2 = 1/n: sklearn's C = 1 */
    o.tol = 1e-6;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_close(r.l2, 1.0 / 2000.0, 1e-15, 0.0);
    for (int j = 0; j < 4; j++) {
        assert_close(m.mean[j], mean[j], 1e-6, 0.0);
        assert_close(m.scale[j], std[j], 1e-6, 0.0);
        assert_close(m.weights[j], theta[j], 0.0, 1e-4);
    }
    assert_close(m.bias, theta[4], 0.0, 1e-4);
    assert_close(r.objective, f_ref, 0.0, 1e-6);
    assert_close(r.train_metrics.log_loss, r.train_loss, 1e-6, 0.0);
    /* the input was not touched (in_place is off) */
    const float *x = tg_data(X);
    for (int64_t i = 0; i < s.n * s.d; i++)
        assert_true(x[i] == s.X[i]);
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free(Xd);
    free_data(&s);
}

static void test_standardized_optimum(void **state)
{
    (void)state;
    check_standardized_optimum(3.0, 5.0);
    /* Squared deviations (then sums too) beyond the float range: the statistics still hold. */
    check_standardized_optimum(1e20, 3e19);
    check_standardized_optimum(3e37, 1e37);
    /* Deviations so small that their squares underflow float: the std is still measured
     * (it was 0 or far off, and the feature was ignored or scaled wrongly). */
    check_standardized_optimum(0.0, 1e-25);
}

/* Columns float arithmetic cannot standardize directly: subnormal values (std about 1e-40,
 * whose inverse is inf in float) and values of +-3e38 split 1:3 (mean 1.5e38, so x - mean
 * reaches -4.5e38). Their standardized values are ordinary, and so is the fit. */
static void test_standardize_extreme_columns(void **state)
{
    (void)state;
    const int64_t n = 800, d = 2;
    dataset s = {n, d, malloc((size_t)(n * d) * sizeof(float)), malloc((size_t)n * sizeof(float))};
    lcg_state = 77;
    for (int64_t i = 0; i < n; i++) {
        double v = normal();
        bool low = uniform() < 0.25;
        s.X[i * d] = (float)(v * 1e-40);
        s.X[i * d + 1] = low ? -3e38f : 3e38f;
        double z = 0.2 + 1.5 * v - (low ? 0.9 : 0.0);
        s.y[i] = uniform() < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
    }
    double *Xd = to_double(&s), mean[2], std[2], theta[3];
    standardize_ref(Xd, n, d, mean, std);
    double f_ref = ref_fit(Xd, s.y, n, d, 1.0 / (double)n, 1.0, theta);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.tol = 1e-6;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_close(m.mean[0], mean[0], 0.0, 1e-45); /* the float centre: a subnormal's ulp */
    assert_close(m.mean[1], mean[1], 1e-7, 0.0);
    for (int j = 0; j < 2; j++) {
        assert_close(m.scale[j], std[j], 1e-6, 0.0);
        assert_close(m.weights[j], theta[j], 0.0, 1e-4);
    }
    assert_close(m.bias, theta[2], 0.0, 1e-4);
    assert_close(r.objective, f_ref, 0.0, 1e-6);
    /* predictions on the raw rows agree with the reference model */
    tg_tensor *p = tg_logreg_predict_proba(&m, X);
    assert_non_null(p);
    const float *pv = tg_data(p);
    for (int64_t i = 0; i < n; i++) {
        double z = theta[2] + theta[0] * Xd[i * d] + theta[1] * Xd[i * d + 1];
        assert_close(pv[i], 1.0 / (1.0 + exp(-z)), 0.0, 1e-4);
    }
    tg_release(p);
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free(Xd);
    free_data(&s);
}

/* A constant column: its std is 0, so it is left centred at 0 with scale 1 (as scikit-learn's
 * StandardScaler does), its weight stays 0, and the rest of the fit is the fit without it. */
static void test_constant_column(void **state)
{
    (void)state;
    dataset s = make_data(400, 2, 5, 0.5, 2.0);
    dataset c = {s.n, 3, malloc((size_t)(s.n * 3) * sizeof(float)), s.y};
    for (int64_t i = 0; i < s.n; i++) {
        c.X[i * 3] = s.X[i * 2];
        c.X[i * 3 + 1] = 4.25f;
        c.X[i * 3 + 2] = s.X[i * 2 + 1];
    }
    tg_tensor *X2 = tensor_X(&s), *X3 = tensor_X(&c), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.tol = 1e-8;
    tg_logreg_model m2, m3;
    tg_logreg_model_init(&m2);
    tg_logreg_model_init(&m3);
    tg_logreg_result r2, r3;
    assert_int_equal(tg_logreg_fit(X2, y, &o, &m2, &r2), TG_OK);
    assert_int_equal(tg_logreg_fit(X3, y, &o, &m3, &r3), TG_OK);
    assert_true(m3.mean[1] == 4.25 && m3.scale[1] == 1.0);
    assert_true(m3.weights[1] == 0.0);
    assert_close(m3.weights[0], m2.weights[0], 0.0, 1e-6);
    assert_close(m3.weights[2], m2.weights[1], 0.0, 1e-6);
    assert_close(m3.bias, m2.bias, 0.0, 1e-6);
    assert_close(r3.objective, r2.objective, 1e-9, 0.0);
    tg_logreg_result_free(&r2), tg_logreg_result_free(&r3);
    tg_logreg_model_free(&m2), tg_logreg_model_free(&m3);
    tg_release(X2), tg_release(X3), tg_release(y);
    free(c.X);
    free_data(&s);
}

static void test_lbfgs_and_gd_agree(void **state)
{
    (void)state;
    dataset s = make_data(3000, 6, 21, 1.0, 3.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    tg_logreg_model ma, mb;
    tg_logreg_model_init(&ma);
    tg_logreg_model_init(&mb);
    tg_logreg_result a, b;
    o.tol = 1e-6;
    assert_int_equal(tg_logreg_fit(X, y, &o, &ma, &a), TG_OK);
    assert_int_equal(a.stop, TG_STOP_CONVERGED);
    o.solver = TG_SOLVER_GD;
    o.max_iter = 5000;
    assert_int_equal(tg_logreg_fit(X, y, &o, &mb, &b), TG_OK);
    assert_int_equal(b.stop, TG_STOP_CONVERGED);
    /* the same optimum, up to the float32 rounding of the loss itself */
    assert_close(b.objective, a.objective, 1e-6, 0.0);
    for (int j = 0; j < 6; j++)
        assert_close(mb.weights[j], ma.weights[j], 0.0, 1e-4);
    assert_close(mb.bias, ma.bias, 0.0, 1e-4);
    assert_true(b.history_len == b.iterations + 1);
    for (int i = 1; i < b.history_len; i++) /* GD never goes up (beyond float rounding) */
        assert_true(b.history[i].objective <= b.history[i - 1].objective * (1.0 + 1e-7));
    tg_logreg_result_free(&a);
    tg_logreg_result_free(&b);
    tg_logreg_model_free(&ma);
    tg_logreg_model_free(&mb);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

static void test_minibatch_seeded(void **state)
{
    (void)state;
    dataset s = make_data(2000, 5, 4, 0.0, 1.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    for (int k = 0; k < 2; k++) {
        tg_logreg_options o = quiet_options();
        o.solver = k ? TG_SOLVER_ADAM : TG_SOLVER_SGD;
        o.max_iter = 10;
        o.lr = k ? 0.01 : 0.05;
        o.seed = 7;
        tg_logreg_model m1, m2, m3;
        tg_logreg_model_init(&m1);
        tg_logreg_model_init(&m2);
        tg_logreg_model_init(&m3);
        tg_logreg_result r;
        assert_int_equal(tg_logreg_fit(X, y, &o, &m1, &r), TG_OK);
        assert_int_equal(r.iterations, 10);
        assert_true(r.train_loss < 0.6);
        assert_true(r.history[10].train_loss < r.history[0].train_loss);
        assert_true(isnan(r.history[3].grad_max));
        tg_logreg_result_free(&r);
        assert_int_equal(tg_logreg_fit(X, y, &o, &m2, NULL), TG_OK);
        assert_memory_equal(m1.weights, m2.weights, 5 * sizeof(double)); /* same seed */
        o.seed = 8;
        assert_int_equal(tg_logreg_fit(X, y, &o, &m3, NULL), TG_OK);
        assert_true(memcmp(m1.weights, m3.weights, 5 * sizeof(double)) != 0);
        tg_logreg_model_free(&m1);
        tg_logreg_model_free(&m2);
        tg_logreg_model_free(&m3);
    }
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* ---- validation split, early stopping, callbacks ----------------------------------------- */

static void test_validation_split(void **state)
{
    (void)state;
    dataset s = make_data(1001, 5, 8, 0.0, 1.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.val_split = 0.2;
    o.seed = 3;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_int_equal(r.n_val, 201); /* ceil, as sklearn's train_test_split */
    assert_int_equal(r.n_train, 800);
    assert_int_equal(m.train_rows, 800);
    assert_close(r.l2, 1.0 / 800.0, 1e-15, 0.0);
    assert_int_equal(r.val_metrics.n, 201);
    assert_true(isfinite(r.val_loss) && isfinite(r.history[0].val_loss));
    assert_close(r.val_metrics.log_loss, r.val_loss, 1e-5, 0.0);
    tg_logreg_result_free(&r);

    /* early stopping keeps the weights of the best validation loss */
    o.solver = TG_SOLVER_ADAM;
    o.lr = 0.5; /* noisy on purpose */
    o.max_iter = 200;
    o.patience = 3;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_int_equal(r.stop, TG_STOP_EARLY);
    assert_true(r.iterations < 200);
    double best = INFINITY;
    int best_it = -1;
    for (int i = 0; i < r.history_len; i++)
        if (r.history[i].val_loss < best)
            best = r.history[i].val_loss, best_it = r.history[i].iteration;
    assert_int_equal(r.best_iteration, best_it);
    assert_int_equal(r.iterations, best_it + 3);
    assert_close(r.val_loss, best, 1e-12, 0.0);
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* fill_missing: the gaps take the training rows' column means, computed after the validation
 * rows are set apart, so no validation value reaches them; the validation rows' gaps get the
 * same values. Column 0 holds each row's index, to find the rows the fit moved (in_place). */
static void test_fill_missing(void **state)
{
    (void)state;
    const int64_t n = 400, d = 3;
    dataset s = make_data(n, d, 21, 1.0, 2.0);
    bool *gap = calloc((size_t)(n * d), sizeof *gap), *val = calloc((size_t)n, sizeof *val);
    for (int64_t i = 0; i < n; i++) {
        s.X[i * d] = (float)i;
        gap[i * d + 1] = i % 3 == 1;
        gap[i * d + 2] = i % 7 == 2;
        for (int64_t c = 1; c < d; c++)
            if (gap[i * d + c])
                s.X[i * d + c] = NAN;
    }
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.val_split = 0.25;
    o.seed = 5;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    /* Without the option a gap is a non-finite feature. */
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "is not finite"));
    o.fill_missing = true;
    o.in_place = true;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    const int64_t n_train = r.n_train;
    assert_int_equal(n_train + r.n_val, n);
    const float *x = tg_data(X);
    for (int64_t k = 0; k < n; k++) {
        long id = lround(x[k * d] * m.scale[0] + m.mean[0]);
        assert_true(id >= 0 && id < n);
        val[id] = k >= n_train;
    }
    for (int64_t c = 1; c < d; c++) {
        double sum = 0.0, all = 0.0;
        int64_t cnt = 0, cnt_all = 0;
        for (int64_t i = 0; i < n; i++)
            if (!gap[i * d + c]) {
                all += s.X[i * d + c], cnt_all++;
                if (!val[i])
                    sum += s.X[i * d + c], cnt++;
            }
        assert_close(m.mean[c], sum / (double)cnt, 1e-6, 0.0);
        /* the model keeps the values filled in: the mean, rounded to float as X holds it */
        assert_non_null(m.fill);
        assert_true(m.fill[c] == (double)(float)(sum / (double)cnt));
        /* the test tells the two apart: every row's mean is elsewhere */
        assert_true(fabs(all / (double)cnt_all - sum / (double)cnt) > 1e-3);
        for (int64_t k = 0; k < n; k++) { /* every gap, training or validation: the mean */
            long id = lround(x[k * d] * m.scale[0] + m.mean[0]);
            if (gap[id * d + c])
                assert_close(x[k * d + c], 0.0, 0.0, 1e-6);
        }
    }
    tg_logreg_result_free(&r);
    tg_release(X);

    /* No split, no standardization: the same fit as on X filled by hand with the means. */
    X = tensor_X(&s);
    float *filled = malloc((size_t)(n * d) * sizeof *filled);
    memcpy(filled, s.X, (size_t)(n * d) * sizeof *filled);
    for (int64_t c = 1; c < d; c++) {
        double sum = 0.0;
        int64_t cnt = 0;
        for (int64_t i = 0; i < n; i++)
            if (!gap[i * d + c])
                sum += s.X[i * d + c], cnt++;
        for (int64_t i = 0; i < n; i++)
            if (gap[i * d + c])
                filled[i * d + c] = (float)(sum / (double)cnt);
    }
    int64_t shape[2] = {n, d};
    tg_tensor *F = tg_from_data(filled, 2, shape);
    o = quiet_options();
    o.standardize = false;
    tg_logreg_model a;
    tg_logreg_model_init(&a);
    assert_int_equal(tg_logreg_fit(F, y, &o, &a, NULL), TG_OK);
    o.fill_missing = true;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_OK);
    assert_memory_equal(a.weights, m.weights, (size_t)d * sizeof(double));
    assert_true(a.bias == m.bias);
    assert_true(isnan(((const float *)tg_data(X))[1 * d + 1])); /* not in place: X left as it was */
    /* without standardization the model still keeps the fill, and a model file carries it */
    assert_null(a.fill);
    assert_null(m.mean);
    assert_non_null(m.fill);
    for (int64_t c = 1; c < d; c++)
        for (int64_t i = 0; i < n; i++)
            if (gap[i * d + c])
                assert_true(m.fill[c] == (double)filled[i * d + c]);
    char *json = tg_logreg_to_json(&m);
    assert_non_null(json);
    /* version 2, the first with the field; a model without it stays version 1 */
    assert_non_null(strstr(json, "\"version\":\t2,"));
    assert_int_equal(tg_logreg_from_json(&a, "m.json", json, strlen(json)), TG_OK);
    assert_non_null(a.fill);
    assert_memory_equal(a.fill, m.fill, (size_t)d * sizeof(double));
    free(json);

    /* A column with no value to take the mean of. */
    float *col = tg_data(F);
    for (int64_t i = 0; i < n; i++)
        col[i * d + 2] = NAN;
    assert_int_equal(tg_logreg_fit(F, y, &o, &m, NULL), TG_EINVAL);
    assert_string_equal(tg_last_error(), "tg_logreg_fit: feature 2 has no values among the "
                                         "training rows to fill its missing ones with");
    tg_logreg_model_free(&a);
    tg_logreg_model_free(&m);
    tg_release(F);
    tg_release(X);
    tg_release(y);
    free(filled);
    free(gap);
    free(val);
    free_data(&s);
}

static int stop_at_two(const tg_logreg_step *s, int max_iter, void *user)
{
    (void)max_iter;
    ++*(int *)user;
    return s->iteration >= 2;
}

static void test_progress_callback(void **state)
{
    (void)state;
    dataset s = make_data(500, 3, 2, 0.0, 1.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    int calls = 0;
    o.progress = stop_at_two;
    o.progress_user = &calls;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    assert_int_equal(r.stop, TG_STOP_CALLBACK);
    assert_int_equal(r.iterations, 2);
    assert_int_equal(calls, 3);      /* iterations 0, 1 and 2 */
    assert_null(m.options.progress); /* never kept in the model */
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

static void test_in_place(void **state)
{
    (void)state;
    dataset s = make_data(300, 3, 6, 2.0, 3.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    tg_logreg_model a, b;
    tg_logreg_model_init(&a);
    tg_logreg_model_init(&b);
    assert_int_equal(tg_logreg_fit(X, y, &o, &a, NULL), TG_OK);
    uint32_t v = tg_version(X);
    o.in_place = true;
    assert_int_equal(tg_logreg_fit(X, y, &o, &b, NULL), TG_OK);
    assert_memory_equal(a.weights, b.weights, 3 * sizeof(double));
    assert_true(tg_version(X) != v);
    /* X now holds the standardized features: column means ~0 */
    const float *x = tg_data(X);
    double m0 = 0.0;
    for (int64_t i = 0; i < s.n; i++)
        m0 += x[i * 3];
    assert_close(m0 / (double)s.n, 0.0, 0.0, 1e-5);
    tg_logreg_model_free(&a);
    tg_logreg_model_free(&b);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* ---- prediction and metrics -------------------------------------------------------------- */

static void test_predict(void **state)
{
    (void)state;
    dataset s = make_data(400, 3, 12, 1.0, 2.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, &r), TG_OK);
    tg_tensor *z = tg_logreg_decision_function(&m, X), *p = tg_logreg_predict_proba(&m, X),
              *c = tg_logreg_predict(&m, X);
    assert_non_null(z);
    assert_non_null(p);
    assert_non_null(c);
    const float *zv = tg_data(z), *pv = tg_data(p), *cv = tg_data(c);
    for (int64_t i = 0; i < s.n; i++) {
        double ref = m.bias;
        for (int j = 0; j < 3; j++)
            ref += m.weights[j] * ((double)s.X[i * 3 + j] - m.mean[j]) / m.scale[j];
        assert_close(zv[i], ref, 1e-6, 1e-6);
        assert_close(pv[i], 1.0 / (1.0 + exp(-ref)), 1e-6, 1e-7);
        assert_true(cv[i] == (zv[i] > 0.0f ? 1.0f : 0.0f));
    }
    tg_binary_metrics bm;
    assert_int_equal(tg_binary_metrics_compute(y, z, &bm), TG_OK);
    assert_close(bm.log_loss, r.train_metrics.log_loss, 1e-5, 0.0);
    assert_close(bm.auc, r.train_metrics.auc, 1e-9, 0.0);
    /* wrong width */
    int64_t shape[2] = {4, 2};
    tg_tensor *bad = tg_zeros(2, shape);
    assert_null(tg_logreg_predict(&m, bad));
    assert_int_equal(tg_last_status(), TG_ESHAPE);
    tg_release(bad);
    /* Finite fields whose folding overflows (as in a hand-edited model file): refused, not
     * NaN logits. */
    double saved = m.scale[1];
    m.scale[1] = 1e-320;
    assert_null(tg_logreg_predict_proba(&m, X));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    m.scale[1] = saved;
    m.mean[0] = 1e308; /* the intercept absorbs mean * weight / std: -inf */
    m.weights[0] = 10.0 * m.scale[0];
    assert_null(tg_logreg_decision_function(&m, X));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    /* finite folded weights that overflow on the rows: 1e308 x0 - 1e308 x1 */
    free(m.mean), free(m.scale);
    m.mean = m.scale = NULL;
    m.weights[0] = 1e308;
    m.weights[1] = -1e308;
    m.weights[2] = 0.0;
    m.bias = 0.0;
    assert_null(tg_logreg_predict(&m, X));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "overflow on row"));
    /* a NaN in X itself is named as such, not blamed on the model */
    m.weights[0] = m.weights[1] = 1.0;
    const float xv[6] = {1.0f, 2.0f, 3.0f, 4.0f, NAN, 6.0f};
    int64_t xs[2] = {2, 3};
    tg_tensor *xn = tg_from_data(xv, 2, xs);
    assert_null(tg_logreg_predict_proba(&m, xn));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_string_equal(tg_last_error(), "tg_logreg_predict_proba: X[1, 1] = nan is not finite");
    tg_release(xn);
    tg_release(z), tg_release(p), tg_release(c);
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

/* ROC AUC against the pairwise definition on scores that stress the sort: every pass of its
 * radix sort decides (scores from -1e30 to 1e30 and tiny ones), many ties between and within
 * the classes, both zeros (one score) and both infinities. */
static void test_auc_matches_pairs(void **state)
{
    (void)state;
    enum { N = 3000 };
    static float yv[N], zv[N];
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-30f, -1e-30f, 1e30f, -1e30f};
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t r = (uint32_t)(s >> 33);
        yv[i] = (float)(r & 1);
        if (r % 7 == 0)
            zv[i] = special[(r >> 3) % 8];
        else if (r % 3 == 0)
            zv[i] = (float)((int)(r >> 8) % 41 - 20) * 0.25f; /* few values: ties */
        else
            zv[i] =
                ldexpf((float)((int)(r >> 8) % 2001 - 1000) / 1000.0f, (int)(r >> 20) % 120 - 60);
    }
    double wins = 0.0, pairs = 0.0;
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++)
            if (yv[i] == 1.0f && yv[j] == 0.0f) {
                pairs += 1.0;
                wins += zv[i] > zv[j] ? 1.0 : zv[i] == zv[j] ? 0.5 : 0.0;
            }
    int64_t n = N;
    tg_tensor *y = tg_from_data(yv, 1, &n), *z = tg_from_data(zv, 1, &n);
    tg_binary_metrics m;
    assert_int_equal(tg_binary_metrics_compute(y, z, &m), TG_OK);
    assert_true(m.auc == wins / pairs);
    tg_release(y), tg_release(z);
}

static void test_metrics_by_hand(void **state)
{
    (void)state;
    /* scores with a tie between a positive and a negative */
    const float yv[6] = {0, 0, 1, 1, 0, 1}, zv[6] = {-2.0f, 0.5f, 0.5f, 3.0f, -1.0f, -0.5f};
    int64_t n = 6;
    tg_tensor *y = tg_from_data(yv, 1, &n), *z = tg_from_data(zv, 1, &n);
    tg_binary_metrics m;
    assert_int_equal(tg_binary_metrics_compute(y, z, &m), TG_OK);
    /* predicted 1 where z > 0: rows 1, 2, 3 */
    assert_int_equal(m.tp, 2);
    assert_int_equal(m.fp, 1);
    assert_int_equal(m.fn, 1);
    assert_int_equal(m.tn, 2);
    assert_close(m.accuracy, 4.0 / 6.0, 1e-15, 0.0);
    assert_close(m.precision, 2.0 / 3.0, 1e-15, 0.0);
    assert_close(m.recall, 2.0 / 3.0, 1e-15, 0.0);
    assert_close(m.f1, 2.0 / 3.0, 1e-15, 0.0);
    /* pairs (pos, neg): 3*3 = 9; positive wins: 0.5 beats -2,-1 and ties 0.5 (1/2): 2.5;
     * 3.0 beats all: 3; -0.5 beats -2, -1: 2. AUC = 7.5 / 9 */
    assert_close(m.auc, 7.5 / 9.0, 1e-15, 0.0);
    double ll = 0.0;
    for (int i = 0; i < 6; i++)
        ll += yv[i] ? softplus(-zv[i]) : softplus(zv[i]);
    assert_close(m.log_loss, ll / 6.0, 1e-6, 0.0);
    /* one class only: AUC undefined */
    const float ones[3] = {1, 1, 1};
    int64_t three = 3;
    tg_tensor *y1 = tg_from_data(ones, 1, &three), *z1 = tg_from_data(zv, 1, &three);
    assert_int_equal(tg_binary_metrics_compute(y1, z1, &m), TG_OK);
    assert_true(isnan(m.auc));
    /* labels must be 0/1 */
    const float bad[3] = {0, 2, 1};
    tg_tensor *y2 = tg_from_data(bad, 1, &three);
    assert_int_equal(tg_binary_metrics_compute(y2, z1, &m), TG_EINVAL);
    /* a NaN logit: the loss and the AUC are NaN, the row counts as predicted 0 */
    float znan[6];
    memcpy(znan, zv, sizeof znan);
    znan[3] = NAN; /* a positive row that was predicted 1 */
    tg_tensor *z3 = tg_from_data(znan, 1, &n);
    assert_int_equal(tg_binary_metrics_compute(y, z3, &m), TG_OK);
    assert_true(isnan(m.log_loss) && isnan(m.auc));
    assert_int_equal(m.tp, 1);
    assert_int_equal(m.fn, 2);
    assert_int_equal(m.fp, 1);
    assert_int_equal(m.tn, 2);
    assert_close(m.accuracy, 3.0 / 6.0, 1e-15, 0.0);
    tg_release(y), tg_release(z), tg_release(y1), tg_release(z1), tg_release(y2), tg_release(z3);
}

/* ---- model files ------------------------------------------------------------------------- */

static char *temp_path(const char *tag)
{
    const char *dir = getenv("TMPDIR");
    char *p = malloc(512);
    snprintf(p, 512, "%s/tg_logreg_%s_%ld.json", dir && *dir ? dir : "/tmp", tag, (long)getpid());
    return p;
}

static void fitted_model(tg_logreg_model *m)
{
    dataset s = make_data(300, 3, 14, 1.0, 2.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    tg_logreg_options o = quiet_options();
    o.seed = 18446744073709551615ULL; /* survives the file exactly */
    tg_logreg_model_init(m);
    assert_int_equal(tg_logreg_fit(X, y, &o, m, NULL), TG_OK);
    const char *names[3] = {"cgpa", "iq \"quoted\"", "caf\xc3\xa9"};
    assert_int_equal(tg_logreg_model_set_names(m, names, 3, "placement"), TG_OK);
    tg_release(X);
    tg_release(y);
    free_data(&s);
}

static void test_model_round_trip(void **state)
{
    (void)state;
    tg_logreg_model m, back;
    fitted_model(&m);
    char *path = temp_path("rt");
    assert_int_equal(tg_logreg_save(&m, path), TG_OK);
    tg_logreg_model_init(&back);
    assert_int_equal(tg_logreg_load(&back, path), TG_OK);
    assert_int_equal(back.n_features, 3);
    assert_memory_equal(back.weights, m.weights, 3 * sizeof(double)); /* exact digits */
    assert_memory_equal(back.mean, m.mean, 3 * sizeof(double));
    assert_memory_equal(back.scale, m.scale, 3 * sizeof(double));
    assert_true(back.bias == m.bias);
    assert_string_equal(back.label, "placement");
    assert_null(back.positive);
    assert_string_equal(back.feature_names[1], "iq \"quoted\"");
    assert_string_equal(back.feature_names[2], "caf\xc3\xa9");
    assert_int_equal(back.options.solver, m.options.solver);
    assert_true(back.options.l2 == m.options.l2);
    assert_int_equal(back.options.max_iter, 100);
    assert_true(back.options.seed == 18446744073709551615ULL);
    assert_int_equal(back.train_rows, 300);
    assert_int_equal(back.iterations, m.iterations);
    /* the text form is the same */
    char *a = tg_logreg_to_json(&m), *b = tg_logreg_to_json(&back);
    assert_string_equal(a, b);
    assert_non_null(strstr(a, "\"version\":\t1,")); /* no missing_fill: readable by older builds */
    free(a), free(b);
    /* the label value that meant 1 survives the file */
    assert_int_equal(tg_logreg_model_set_positive(&m, "yes \"quoted\""), TG_OK);
    assert_int_equal(tg_logreg_save(&m, path), TG_OK);
    assert_int_equal(tg_logreg_load(&back, path), TG_OK);
    assert_string_equal(back.positive, "yes \"quoted\"");
    /* overwriting replaces the file */
    back.bias = 1.25;
    assert_int_equal(tg_logreg_save(&back, path), TG_OK);
    assert_int_equal(tg_logreg_load(&m, path), TG_OK);
    assert_true(m.bias == 1.25);
    unlink(path);
    free(path);
    tg_logreg_model_free(&m);
    tg_logreg_model_free(&back);
}

static void expect_load_error(const char *json, tg_status st, const char *needle)
{
    tg_logreg_model m;
    fitted_model(&m);
    double bias = m.bias;
    assert_int_equal(tg_logreg_from_json(&m, "m.json", json, strlen(json)), st);
    if (!strstr(tg_last_error(), needle)) {
        print_error("message '%s' lacks '%s'\n", tg_last_error(), needle);
        fail();
    }
    assert_true(m.bias == bias); /* untouched on failure */
    tg_logreg_model_free(&m);
}

#define HEAD      "{\"format\": \"tapegrad-logreg\", \"version\": 1, "
#define GOOD_TAIL "\"solver\": {\"name\": \"lbfgs\"}}"

static void test_model_load_errors(void **state)
{
    (void)state;
    expect_load_error("{\n  \"format\": tapegrad\n}", TG_EPARSE, "m.json:2:");
    expect_load_error("[1, 2]", TG_EPARSE, "m.json:1:1: field '(root)'");
    expect_load_error("{\"format\": \"other\", \"version\": 1}", TG_EPARSE,
                      "m.json:1:12: field 'format'");
    expect_load_error("{\"format\": \"tapegrad-logreg\", \"version\": 7}", TG_EUNSUPPORTED,
                      "version 7");
    expect_load_error(HEAD "\"features\": [], \"weights\": [], \"bias\": 0, " GOOD_TAIL, TG_EPARSE,
                      "m.json:1:57: field 'features'");
    expect_load_error(HEAD "\"features\": [\"a\", 3], \"weights\": [1, 2], \"bias\": 0, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:63: field 'features'");
    expect_load_error(HEAD
                      "\"features\": [\"a\", \"b\"], \"weights\": [1], \"bias\": 0, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:80: field 'weights'");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1e999], \"bias\": 0, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:76: field 'weights'");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], " GOOD_TAIL, TG_EPARSE,
                      "m.json:1:1: field 'bias': missing");
    expect_load_error(HEAD "\"positive\": 1, \"features\": [\"a\"], \"weights\": [1], "
                           "\"bias\": 0, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:57: field 'positive'");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"standardization\": {\"mean\": [0], \"std\": [0]}, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:132: field 'std'");
    /* missing_fill came with version 2: a version 1 file cannot have it */
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"missing_fill\": [1], " GOOD_TAIL,
                      TG_EPARSE, "field 'missing_fill': not a field of a version 1 model file");
    expect_load_error("{\"format\": \"tapegrad-logreg\", \"version\": 2, "
                      "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                      "\"missing_fill\": [1, 2], " GOOD_TAIL,
                      TG_EPARSE, "field 'missing_fill': expected an array of 1 numbers");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": {\"name\": \"newton\"}}",
                      TG_EPARSE, "m.json:1:110: field 'solver.name'");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": {\"name\": \"sgd\", \"batch_size\": 0.5}}",
                      TG_EPARSE, "m.json:1:131: field 'batch_size'");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": {\"name\": \"sgd\", \"seed\": \"-1\"}}",
                      TG_EPARSE, "m.json:1:125: field 'solver.seed'");
    /* a misspelled field would silently take its default (here: no standardization, so the
     * model would be applied to raw features); an unknown or repeated field is an error */
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"standardisation\": {\"mean\": [5], \"std\": [2]}, " GOOD_TAIL,
                      TG_EPARSE,
                      "m.json:1:91: field 'standardisation': not a field of a model file");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"standardization\": {\"mean\": [5], \"sd\": [2]}, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:124: field 'standardization.sd': not a field");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": {\"name\": \"lbfgs\", \"l2_\": 1}}",
                      TG_EPARSE, "field 'solver.l2_': not a field");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"training\": {\"rows\": 1, \"epochs\": 1}, " GOOD_TAIL,
                      TG_EPARSE, "field 'training.epochs': not a field");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"bias\": 3, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:91: field 'bias': appears more than once");
    /* fields of the wrong kind, or missing where the format needs them */
    expect_load_error(
        HEAD "\"label\": 5, \"features\": [\"a\"], \"weights\": [1], \"bias\": 0, " GOOD_TAIL,
        TG_EPARSE, "m.json:1:54: field 'label': expected a string or null");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"standardization\": [0, 1], " GOOD_TAIL,
                      TG_EPARSE, "field 'standardization': expected an object or null");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0}", TG_EPARSE,
                      "m.json:1:1: field 'solver': missing");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": \"lbfgs\"}",
                      TG_EPARSE, "field 'solver': expected an object");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"solver\": {\"l2\": 1}}",
                      TG_EPARSE, "field 'solver.name': missing");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [1], \"bias\": 0, "
                           "\"training\": 3, " GOOD_TAIL,
                      TG_EPARSE, "field 'training': expected an object");
    /* errors inside the content point at the value, in a file laid out over lines too */
    expect_load_error("\xEF\xBB\xBF{\n  \"format\": \"tapegrad-logreg\",\n  \"version\": 1,\n"
                      "  \"features\": [\"a\", \"b\"],\n  \"weights\": [\n    1,\n    \"x\"\n  ],\n"
                      "  \"bias\": 0,\n  \"solver\": {\"name\": \"lbfgs\"}\n}\n",
                      TG_EPARSE, "m.json:7:5: field 'weights': expected finite numbers");
    expect_load_error("{\"format\": \"tapegrad-logreg\", \"version\": 1, \"features\": [\"a\"],\n"
                      "\"weights\": [1], \"bias\": 0, \"solver\": {\"name\": \"sgd\",\n"
                      "\"nested\": {\"deep\": [[], {}, \"x\"]}, \"eps\": -1}}",
                      TG_EPARSE, "m.json:3:1: field 'solver.nested': not a field");
    /* a newer version is reported as such, whatever fields it has */
    expect_load_error("{\"format\": \"tapegrad-logreg\", \"version\": 3, \"new\": 1}",
                      TG_EUNSUPPORTED, "version 3");
    /* a NUL character would cut a name short (the feature "a" would be used) */
    expect_load_error(HEAD
                      "\"features\": [\"a\\u0000b\"], \"weights\": [1], \"bias\": 0, " GOOD_TAIL,
                      TG_EPARSE, "m.json:1:60: a NUL character");
    {
        static const char raw[] =
            HEAD "\"features\": [\"a\0b\"], \"weights\": [1], \"bias\": 0, " GOOD_TAIL;
        tg_logreg_model m;
        tg_logreg_model_init(&m);
        assert_int_equal(tg_logreg_from_json(&m, "m.json", raw, sizeof raw - 1), TG_EPARSE);
        assert_non_null(strstr(tg_last_error(), "m.json:1:60: a NUL character"));
        /* an escaped backslash followed by the text u0000 is a name like any other */
        static const char ok[] =
            HEAD "\"features\": [\"a\\\\u0000\"], \"weights\": [1], \"bias\": 0, " GOOD_TAIL;
        assert_int_equal(tg_logreg_from_json(&m, "m.json", ok, sizeof ok - 1), TG_OK);
        assert_string_equal(m.feature_names[0], "a\\u0000");
        tg_logreg_model_free(&m);
    }
    /* a whole model followed by more text: junk appended, or two models in one file */
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [2], \"bias\": -1, " GOOD_TAIL
                           "\n trailing {",
                      TG_EPARSE, "m.json:2:2: text after the end");
    expect_load_error(HEAD "\"features\": [\"a\"], \"weights\": [2], \"bias\": -1, " GOOD_TAIL HEAD
                           "\"features\": [\"a\"], \"weights\": [2], \"bias\": -1, " GOOD_TAIL,
                      TG_EPARSE, "text after the end");
    /* the smallest valid model; blank lines after it are fine */
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    const char *ok =
        HEAD "\"features\": [\"a\"], \"weights\": [2], \"bias\": -1, " GOOD_TAIL "\n\r\n\t ";
    assert_int_equal(tg_logreg_from_json(&m, NULL, ok, strlen(ok)), TG_OK);
    assert_null(m.mean);
    assert_null(m.label);
    assert_true(m.weights[0] == 2.0 && m.bias == -1.0);
    tg_logreg_model_free(&m);
    assert_int_equal(tg_logreg_load(&m, "/nonexistent/model.json"), TG_EIO);
    /* a directory opens for reading but is no model file */
    const char *dir = getenv("TMPDIR");
    assert_int_equal(tg_logreg_load(&m, dir && *dir ? dir : "/tmp"), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "not a model file (a regular file or a pipe)"));
    /* nor is a file past 1 GiB (sparse: nothing is read) */
    char *big = temp_path("big");
    FILE *bf = fopen(big, "wb");
    assert_non_null(bf);
    assert_int_equal(ftruncate(fileno(bf), ((off_t)1 << 30) + 1), 0);
    fclose(bf);
    assert_int_equal(tg_logreg_load(&m, big), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "larger than 1 GiB"));
    unlink(big);
    free(big);
    /* a pipe is read to its end (a shell's <(...) names one as /dev/fd/N) */
    const char *json = HEAD "\"features\": [\"a\"], \"weights\": [2], \"bias\": -1, " GOOD_TAIL;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    assert_int_equal(write(fds[1], json, strlen(json)), (ssize_t)strlen(json));
    close(fds[1]);
    char fd_path[64];
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fds[0]);
    assert_int_equal(tg_logreg_load(&m, fd_path), TG_OK);
    assert_true(m.weights[0] == 2.0 && m.bias == -1.0);
    close(fds[0]);
    tg_logreg_model_free(&m);
}

/* Saving through a symlink replaces the file it names and keeps the link; a FIFO (like
 * /dev/stdout on a pipe) is written, not replaced by a regular file; a directory is an error. */
static void test_save_special_targets(void **state)
{
    (void)state;
    tg_logreg_model m;
    fitted_model(&m);
    char *text = tg_logreg_to_json(&m);
    char dir[] = "/tmp/tg_save_XXXXXX", a[64], b[64], c[64];
    assert_non_null(mkdtemp(dir));
    snprintf(a, sizeof a, "%s/target.json", dir);
    snprintf(b, sizeof b, "%s/link.json", dir);
    snprintf(c, sizeof c, "%s/fifo", dir);
    /* a link to a file not there yet, then to an existing file */
    assert_int_equal(symlink("target.json", b), 0);
    for (int pass = 0; pass < 2; pass++) {
        assert_int_equal(tg_logreg_save(&m, b), TG_OK);
        struct stat st;
        assert_int_equal(lstat(b, &st), 0);
        assert_true(S_ISLNK(st.st_mode));
        tg_logreg_model back;
        tg_logreg_model_init(&back);
        assert_int_equal(tg_logreg_load(&back, a), TG_OK);
        assert_true(back.bias == m.bias);
        tg_logreg_model_free(&back);
    }
    /* the reader is open first, so neither side blocks; the JSON fits in the pipe's buffer */
    assert_int_equal(mkfifo(c, 0600), 0);
    int rd = open(c, O_RDONLY | O_NONBLOCK);
    assert_true(rd >= 0);
    assert_int_equal(tg_logreg_save(&m, c), TG_OK);
    size_t n = strlen(text);
    char *got = calloc(n + 2, 1);
    assert_int_equal(read(rd, got, n + 1), (ssize_t)n);
    assert_string_equal(got, text);
    close(rd);
    struct stat st;
    assert_int_equal(stat(c, &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    /* a directory: an error */
    assert_int_equal(tg_logreg_save(&m, dir), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "Is a directory"));
    unlink(a), unlink(b), unlink(c);
    assert_int_equal(rmdir(dir), 0); /* empty: nothing else was left behind */
    free(got);
    free(text);
    tg_logreg_model_free(&m);
}

static void test_save_failures_leave_nothing(void **state)
{
    (void)state;
    tg_logreg_model m;
    fitted_model(&m);
    assert_int_equal(tg_logreg_save(&m, "/nonexistent-dir/m.json"), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "/nonexistent-dir/m.json"));
    /* an unsavable model (non-finite weight) creates no file at all */
    char *path = temp_path("bad");
    unlink(path);
    m.weights[1] = NAN;
    assert_int_equal(tg_logreg_save(&m, path), TG_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    m.weights[1] = 0.5;
    /* a model whose name list has a hole (built by hand): an invalid model, not out of memory */
    char *name1 = m.feature_names[1];
    m.feature_names[1] = NULL;
    assert_int_equal(tg_logreg_save(&m, path), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "feature_names[1] is NULL"));
    assert_int_equal(access(path, F_OK), -1);
    assert_null(tg_logreg_to_json(&m));
    assert_int_equal(tg_last_status(), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "tg_logreg_to_json"));
    m.feature_names[1] = name1;
    tg_logreg_model empty;
    tg_logreg_model_init(&empty);
    assert_int_equal(tg_logreg_save(&empty, path), TG_EINVAL);
    assert_int_equal(access(path, F_OK), -1);
    free(path);
    tg_logreg_model_free(&m);
}

static void set_tol_inf(tg_logreg_options *o)
{
    o->tol = INFINITY;
}
static void set_eps_inf(tg_logreg_options *o)
{
    o->eps = INFINITY;
}
static void set_bs_max(tg_logreg_options *o)
{
    o->batch_size = INT64_MAX;
}
static void set_val_split_5(tg_logreg_options *o)
{
    o->val_split = 5.0;
}
static void set_momentum_1(tg_logreg_options *o)
{
    o->momentum = 1.0;
}
static void set_solver_neg(tg_logreg_options *o)
{
    o->solver = (tg_solver)-1;
}
static void set_l2_inf(tg_logreg_options *o)
{
    o->l2 = INFINITY;
}
static void set_max_iter_neg(tg_logreg_options *o)
{
    o->max_iter = -1;
}
static void set_lr_nan(tg_logreg_options *o)
{
    o->lr = NAN;
}
static void set_beta2_neg(tg_logreg_options *o)
{
    o->beta2 = -0.5;
}
static void set_beta1_1(tg_logreg_options *o)
{
    o->beta1 = 1.0;
}
static void set_memory_0(tg_logreg_options *o)
{
    o->lbfgs_memory = 0;
}
static void set_patience_neg(tg_logreg_options *o)
{
    o->patience = -2;
}

/* What the fit accepts, a model file keeps: options at the edges of their ranges save and load
 * back exactly; options outside them (a model changed by hand) are refused by save, which
 * writes nothing, instead of writing a file that load refuses; and the fit refuses them too,
 * naming the option (infinite tol or eps made the save fail as "out of memory" before). */
static void test_option_ranges_round_trip(void **state)
{
    (void)state;
    tg_logreg_model m, back;
    fitted_model(&m);
    tg_logreg_model_init(&back);
    char *path = temp_path("ranges");
    tg_logreg_options *o = &m.options;
    o->pos_weight = 1e-308;
    o->batch_size = (int64_t)1 << 53;
    o->momentum = 0x1.fffffffffffffp-1;
    o->eps = 4.9406564584124654e-324;
    o->val_split = 0x1.fffffffffffffp-1;
    o->tol = 0.0;
    assert_int_equal(tg_logreg_save(&m, path), TG_OK);
    assert_int_equal(tg_logreg_load(&back, path), TG_OK);
    assert_true(back.options.pos_weight == 1e-308 && back.options.eps == o->eps);
    assert_true(back.options.batch_size == o->batch_size && back.options.momentum == o->momentum);
    assert_true(back.options.val_split == o->val_split);
    tg_logreg_options saved = *o;
    const struct {
        const char *needle;
        void (*set)(tg_logreg_options *);
    } bad[] = {
        {"tol must be", set_tol_inf},
        {"eps must be", set_eps_inf},
        {"batch_size must", set_bs_max},
        {"val_split must", set_val_split_5},
        {"momentum must", set_momentum_1},
        {"unknown solver (got -1)", set_solver_neg},
        {"l2 must be finite (got inf)", set_l2_inf},
        {"max_iter must be >= 0 (got -1)", set_max_iter_neg},
        {"lr must be >= 0 and finite (got nan)", set_lr_nan},
        {"beta1 and beta2 must be in [0, 1) (got -0.5)", set_beta2_neg},
        {"beta1 and beta2 must be in [0, 1) (got 1)", set_beta1_1},
        {"lbfgs_memory must be >= 1 (got 0)", set_memory_0},
        {"patience must be >= 0 (got -2)", set_patience_neg},
    };
    dataset s = make_data(50, 2, 1, 0.0, 1.0);
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        *o = saved;
        bad[k].set(o);
        unlink(path);
        assert_int_equal(tg_logreg_save(&m, path), TG_EINVAL);
        assert_non_null(strstr(tg_last_error(), bad[k].needle));
        assert_non_null(strstr(tg_last_error(), "tg_logreg_save"));
        assert_int_equal(access(path, F_OK), -1);
        tg_logreg_options fo = quiet_options();
        bad[k].set(&fo);
        assert_int_equal(tg_logreg_fit(X, y, &fo, &back, NULL), TG_EINVAL);
        assert_non_null(strstr(tg_last_error(), bad[k].needle));
    }
    *o = saved;
    m.train_rows = -5;
    assert_int_equal(tg_logreg_save(&m, path), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "train_rows"));
    tg_release(X), tg_release(y);
    free_data(&s);
    free(path);
    tg_logreg_model_free(&m);
    tg_logreg_model_free(&back);
}

/* ---- bad input --------------------------------------------------------------------------- */

static void test_fit_errors(void **state)
{
    (void)state;
    dataset s = make_data(50, 2, 1, 0.0, 1.0);
    tg_logreg_model m;
    fitted_model(&m);
    double w0 = m.weights[0];
    tg_logreg_options o = quiet_options();
    tg_tensor *X = tensor_X(&s), *y = tensor_y(&s);

    s.y[3] = 2.0f;
    tg_tensor *ybad = tensor_y(&s);
    assert_int_equal(tg_logreg_fit(X, ybad, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "y[3] = 2"));
    tg_release(ybad);

    s.X[7] = NAN;
    tg_tensor *Xbad = tensor_X(&s);
    assert_int_equal(tg_logreg_fit(Xbad, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "X[3, 1]"));
    o.standardize = false;
    assert_int_equal(tg_logreg_fit(Xbad, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "X[3, 1]"));
    o.standardize = true;
    /* named where it is in X, not where the split moved it (seeds that move row 3) */
    o.val_split = 0.5;
    for (uint64_t seed = 0; seed < 4; seed++) {
        o.seed = seed;
        assert_int_equal(tg_logreg_fit(Xbad, y, &o, &m, NULL), TG_EINVAL);
        assert_non_null(strstr(tg_last_error(), "X[3, 1]"));
    }
    o = quiet_options();
    tg_release(Xbad);
    /* with gaps to fill, an infinity is named at its place, not at the gaps its mean fills */
    float keep20 = s.X[2 * 20], keep5 = s.X[2 * 5];
    s.X[2 * 20] = INFINITY; /* row 20, column 0 */
    s.X[2 * 5] = NAN;       /* row 5, column 0: a gap before it (and row 3's, above) */
    Xbad = tensor_X(&s);
    o.fill_missing = true;
    assert_int_equal(tg_logreg_fit(Xbad, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "X[20, 0] = inf"));
    o = quiet_options();
    s.X[2 * 20] = keep20, s.X[2 * 5] = keep5;
    tg_release(Xbad);

    int64_t n3 = 3;
    tg_tensor *yshort = tg_zeros(1, &n3);
    /* right after a successful call a NULL is the caller's own (after a failed one it would
     * keep that failure, as the ops do) */
    assert_int_equal(tg_logreg_fit(NULL, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "X or y is NULL"));
    assert_int_equal(tg_logreg_fit(X, yshort, &o, &m, NULL), TG_ESHAPE);
    tg_release(yshort);

    o.pos_weight = 0.0;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    /* a weight that overflows float32 sums on standardized features is named as the cause */
    o.pos_weight = 1e308;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "pos_weight (1e+308) is too large"));
    o = quiet_options();
    o.val_split = 1.0;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    /* a split below 1 that still leaves no training row: 0.5 of one row is that row */
    {
        int64_t one = 1, shape[2] = {1, 2};
        tg_tensor *X1 = tg_from_data(s.X, 2, shape), *y1 = tg_from_data(s.y, 1, &one);
        o.val_split = 0.5;
        assert_int_equal(tg_logreg_fit(X1, y1, &o, &m, NULL), TG_EINVAL);
        assert_non_null(strstr(tg_last_error(), "validation split of 0.5 leaves no training rows"));
        tg_release(X1), tg_release(y1);
    }
    /* no rows, or no features */
    {
        int64_t none = 0, rows0[2] = {0, 2}, cols0[2] = {50, 0};
        tg_tensor *X0 = tg_zeros(2, rows0), *y0 = tg_zeros(1, &none), *Xw = tg_zeros(2, cols0);
        o = quiet_options();
        assert_int_equal(tg_logreg_fit(X0, y0, &o, &m, NULL), TG_ESHAPE);
        assert_non_null(strstr(tg_last_error(), "has no rows or no features"));
        assert_int_equal(tg_logreg_fit(Xw, y, &o, &m, NULL), TG_ESHAPE);
        assert_non_null(strstr(tg_last_error(), "has no rows or no features"));
        tg_release(X0), tg_release(y0), tg_release(Xw);
    }
    o = quiet_options();
    o.solver = (tg_solver)42;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    /* a split that takes the only positive row away from the training rows */
    {
        const float xs[6] = {1, 2, 3, 4, 5, 6}, ys[6] = {0, 0, 0, 0, 0, 1};
        int64_t n6 = 6, shape[2] = {6, 1};
        tg_tensor *X6 = tg_from_data(xs, 2, shape), *y6 = tg_from_data(ys, 1, &n6);
        tg_logreg_model m6;
        tg_logreg_model_init(&m6);
        o = quiet_options();
        o.val_split = 0.5;
        int seen_error = 0, seen_ok = 0;
        for (uint64_t seed = 0; seed < 16; seed++) {
            o.seed = seed;
            tg_status st = tg_logreg_fit(X6, y6, &o, &m6, NULL);
            if (st == TG_OK) {
                seen_ok++;
                continue;
            }
            assert_int_equal(st, TG_EINVAL);
            assert_non_null(strstr(tg_last_error(), "training rows with only class 0"));
            seen_error++;
        }
        assert_true(seen_error > 0 && seen_ok > 0); /* the row lands on either side */
        tg_logreg_model_free(&m6);
        tg_release(X6);
        tg_release(y6);
    }
    /* unstandardized features near the float32 limit: the first gradient overflows, which is
     * an error, not a stall at the zero model */
    {
        const float xs[5] = {3e38f, 3e38f, -3e38f, 3e38f, 3.4e38f}, ys[5] = {0, 1, 0, 1, 1};
        int64_t n5 = 5, shape[2] = {5, 1};
        tg_tensor *X5 = tg_from_data(xs, 2, shape), *y5 = tg_from_data(ys, 1, &n5);
        const tg_solver full[2] = {TG_SOLVER_LBFGS, TG_SOLVER_GD};
        for (int i = 0; i < 2; i++) {
            o = quiet_options();
            o.standardize = false;
            o.solver = full[i];
            assert_int_equal(tg_logreg_fit(X5, y5, &o, &m, NULL), TG_EINVAL);
            assert_non_null(
                strstr(tg_last_error(), "gradient at the starting point is not finite"));
        }
        tg_release(X5);
        tg_release(y5);
    }
    o = quiet_options();
    o.solver = TG_SOLVER_SGD;
    o.lr = 1e30; /* diverges */
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "diverged"));
    assert_null(strstr(tg_last_error(), "-nan")); /* a loss of NaN reads "nan" */
    o.solver = TG_SOLVER_GD;
    o.lr = 1e6;
    o.max_iter = 1000;
    assert_int_equal(tg_logreg_fit(X, y, &o, &m, NULL), TG_EINVAL);
    assert_non_null(strstr(tg_last_error(), "gd diverged"));
    assert_null(strstr(tg_last_error(), "-nan"));

    assert_true(m.weights[0] == w0); /* the model survived every failure */
    assert_int_equal(m.n_features, 3);
    tg_solver sv;
    assert_int_equal(tg_solver_parse("adam", &sv), TG_OK);
    assert_int_equal(sv, TG_SOLVER_ADAM);
    assert_int_equal(tg_solver_parse("newton", &sv), TG_EINVAL);
    assert_null(tg_solver_name((tg_solver)9));
    tg_release(X);
    tg_release(y);
    tg_logreg_model_free(&m);
    free_data(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradient_matches_autograd),
        cmocka_unit_test(test_penalty_term),
        cmocka_unit_test(test_threads_bit_identical),
        cmocka_unit_test(test_tiny_optimum_lbfgs),
        cmocka_unit_test(test_tiny_optimum_other_solvers),
        cmocka_unit_test(test_standardized_optimum),
        cmocka_unit_test(test_standardize_extreme_columns),
        cmocka_unit_test(test_constant_column),
        cmocka_unit_test(test_lbfgs_and_gd_agree),
        cmocka_unit_test(test_minibatch_seeded),
        cmocka_unit_test(test_validation_split),
        cmocka_unit_test(test_fill_missing),
        cmocka_unit_test(test_progress_callback),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_predict),
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_auc_matches_pairs),
        cmocka_unit_test(test_model_round_trip),
        cmocka_unit_test(test_model_load_errors),
        cmocka_unit_test(test_save_special_targets),
        cmocka_unit_test(test_save_failures_leave_nothing),
        cmocka_unit_test(test_option_ranges_round_trip),
        cmocka_unit_test(test_fit_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
