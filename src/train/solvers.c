/* The four solvers of tg_logreg_fit. Each works on theta = [w, b] in double and reads the data
 * only through the fused pass (fit_objective), so they share its speed and determinism. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/tensor.h"
#include "fit.h"
#include "lbfgs.h"

/* ---- L-BFGS ------------------------------------------------------------------------------ */

typedef struct {
    fit_ctx *c;
    bool failed;
} lbfgs_glue;

static int lbfgs_step(void *ctx, int iter, const double *theta, double f, const double *g)
{
    lbfgs_glue *glue = ctx;
    fit_ctx *c = glue->c;
    c->iterations = iter;
    return fit_after_iteration(c, iter, theta, f, f - fit_penalty(c, theta),
                               fit_max_abs(g, c->d + 1), &glue->failed);
}

static double lbfgs_objective(void *ctx, const double *theta, double *grad)
{
    return fit_objective(((lbfgs_glue *)ctx)->c, theta, grad, NULL);
}

static bool lbfgs_agree(void *ctx, bool ok)
{
    fit_ctx *c = ((lbfgs_glue *)ctx)->c;
    tg_status st = ok ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for L-BFGS");
    return fit_agree(c, st) == TG_OK;
}

tg_status solve_lbfgs(fit_ctx *c, double *theta)
{
    lbfgs_params p;
    lbfgs_params_init(&p);
    p.memory = c->opt.lbfgs_memory;
    p.max_iter = c->opt.max_iter;
    p.gtol = c->opt.tol;
    /* On standardized features the Hessian at w = 0 is about I/4 + l2 (sigma' = 1/4 there,
     * unit-variance columns), so steepest descent's first step is about 4 / (1 + 4 l2): a
     * Newton-sized first move instead of a unit one saves an iteration. */
    if (c->opt.standardize)
        p.first_step = 4.0 / (1.0 + 4.0 * c->opt.l2);
    if (c->dist)
        p.agree = lbfgs_agree;
    lbfgs_glue glue = {c, false};
    /* Iteration 0 is recorded here: lbfgs only reports accepted steps. (Its own evaluation
     * of the same starting point is answered from fit_objective's cache, not a new pass.) */
    double *grad = malloc((size_t)(c->d + 1) * sizeof(double));
    tg_status ok =
        fit_agree(c, grad ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    if (ok != TG_OK) {
        free(grad); /* allocated here when another rank's allocation failed */
        return ok;
    }
    double loss, f = fit_objective(c, theta, grad, &loss);
    double g0 = fit_max_abs(grad, c->d + 1);
    ok = fit_check_start(c, g0); /* the same on every rank: the gradient is summed */
    free(grad);
    if (ok != TG_OK)
        return ok;
    if (fit_after_iteration(c, 0, theta, f, loss, g0, &glue.failed))
        return glue.failed ? TG_ENOMEM : TG_OK;
    lbfgs_report rep;
    lbfgs_status st = lbfgs_minimize(c->d + 1, theta, lbfgs_objective, lbfgs_step, &glue, &p, &rep);
    if (glue.failed)
        return TG_ENOMEM;
    c->iterations = rep.iterations;
    switch (st) {
    case LBFGS_CONVERGED:
        c->stop = TG_STOP_CONVERGED;
        break;
    case LBFGS_MAX_ITER:
        c->stop = TG_STOP_MAX_ITER;
        break;
    case LBFGS_NO_PROGRESS:
        if (!isfinite(rep.f))
            return tg_set_error(TG_EINVAL, "tg_logreg_fit: the loss is not finite (%g)", rep.f);
        c->stop = TG_STOP_NO_PROGRESS;
        break;
    case LBFGS_STOPPED:
        break;         /* fit_after_iteration set the reason */
    case LBFGS_ENOMEM: /* the message is set (by lbfgs_agree when distributed) */
        return c->dist ? tg_last_status()
                       : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for L-BFGS");
    }
    return TG_OK;
}

/* ---- full-batch gradient descent --------------------------------------------------------- */

/* theta_out = theta - a * g; returns the objective there (gradient in g_out). */
static double gd_trial(fit_ctx *c, const double *theta, const double *g, double a,
                       double *theta_out, double *g_out, double *loss)
{
    for (int64_t j = 0; j <= c->d; j++)
        theta_out[j] = theta[j] - a * g[j];
    return fit_objective(c, theta_out, g_out, loss);
}

tg_status solve_gd(fit_ctx *c, double *theta)
{
    const int64_t n = c->d + 1;
    double *g = malloc((size_t)n * sizeof(double)), *tt = malloc((size_t)n * sizeof(double)),
           *gt = malloc((size_t)n * sizeof(double));
    tg_status st = TG_OK;
    bool failed = false;
    if (!g || !tt || !gt)
        st = tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory");
    if ((st = fit_agree(c, st)) != TG_OK)
        goto done;
    double loss, f = fit_objective(c, theta, g, &loss), g0 = fit_max_abs(g, n);
    if ((st = fit_check_start(c, g0)) != TG_OK)
        goto done;
    double step = 1.0; /* line-search step, carried over (and doubled) between iterations */
    c->stop = TG_STOP_MAX_ITER;
    if (fit_after_iteration(c, 0, theta, f, loss, g0, &failed))
        goto done;
    for (int it = 1; it <= c->opt.max_iter; it++) {
        if (fit_max_abs(g, n) <= c->opt.tol) {
            c->stop = TG_STOP_CONVERGED;
            break;
        }
        double ft = NAN, lt = NAN;
        if (c->opt.lr > 0.0) {
            ft = gd_trial(c, theta, g, c->opt.lr, tt, gt, &lt);
        } else {
            /* Start from twice the last accepted step and halve until the step does not
             * overshoot the minimum along -g: the new gradient must still point along g
             * (phi'(step) <= 0). On this convex objective that also guarantees a decrease,
             * and unlike an Armijo test on f it stays meaningful once the decrease per
             * iteration falls below the float32 rounding of the loss (a relative 1e-8 or so:
             * near the optimum a test on f would reject every step). Steps land within a
             * factor 2 of the exact line minimum, so steepest descent keeps its textbook rate
             * instead of zigzagging at the largest stable step. */
            step = fmin(step * 2.0, 1e6);
            for (int k = 0; k < 60; k++, step *= 0.5) {
                ft = gd_trial(c, theta, g, step, tt, gt, &lt);
                double slope = 0.0;
                for (int64_t j = 0; j < n; j++)
                    slope += gt[j] * g[j];
                if (isfinite(ft) && slope >= 0.0) /* no test on ft: see above */
                    break;
                ft = NAN;
            }
            if (isnan(ft)) {
                c->stop = TG_STOP_NO_PROGRESS;
                break;
            }
        }
        if (!isfinite(ft)) {
            st = tg_set_error(TG_EINVAL,
                              "tg_logreg_fit: gd diverged at iteration %d (loss %g); "
                              "try a smaller lr",
                              it, fabs(ft)); /* "nan", not "-nan" */
            goto done;
        }
        memcpy(theta, tt, (size_t)n * sizeof(double));
        memcpy(g, gt, (size_t)n * sizeof(double));
        f = ft;
        c->iterations = it;
        if (fit_after_iteration(c, it, theta, f, lt, fit_max_abs(g, n), &failed))
            break;
    }
    if (c->stop == TG_STOP_MAX_ITER && fit_max_abs(g, n) <= c->opt.tol)
        c->stop = TG_STOP_CONVERGED;
done:
    if (failed)
        st = TG_ENOMEM;
    free(g), free(tt), free(gt);
    return st;
}

/* ---- mini-batch SGD with momentum, and Adam ---------------------------------------------- */

typedef struct {
    int64_t *perm;     /* training row order of the current epoch */
    int64_t perm_cap;  /* its tg_scratch_alloc capacity, in floats */
    float *Xb, *yb;    /* the gathered batch */
    double *g, *m, *v; /* gradient, first moment (momentum buffer), second moment */
    lr_pass pass;
    int64_t t; /* Adam step count */
} minibatch;

static void minibatch_free(minibatch *mb)
{
    tg_scratch_free((float *)mb->perm, mb->perm_cap);
    free(mb->Xb), free(mb->yb), free(mb->g), free(mb->m), free(mb->v);
    lr_pass_free(&mb->pass);
}

static bool minibatch_alloc(fit_ctx *c, minibatch *mb)
{
    memset(mb, 0, sizeof *mb);
    int64_t bs = c->opt.batch_size < c->n_train ? c->opt.batch_size : c->n_train;
    size_t n = (size_t)(c->d + 1);
    /* From the large-buffer allocator, on 2 MB pages and reused by the next fit, as X's copy
     * is: malloc'd, a fit's 8 MB order of 1M rows came in 4 KB page faults. */
    mb->perm = (int64_t *)tg_scratch_alloc(2 * c->n_train, &mb->perm_cap);
    mb->Xb = malloc((size_t)bs * (size_t)c->d * sizeof(float));
    mb->yb = malloc((size_t)bs * sizeof(float));
    mb->g = malloc(n * sizeof(double));
    mb->m = calloc(n, sizeof(double));
    mb->v = calloc(n, sizeof(double));
    if (!mb->perm || !mb->Xb || !mb->yb || !mb->g || !mb->m || !mb->v ||
        !lr_pass_init(&mb->pass, bs, c->d, c->train.pos_weight)) {
        minibatch_free(mb);
        tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for mini-batches");
        return false;
    }
    for (int64_t i = 0; i < c->n_train; i++)
        mb->perm[i] = i;
    return true;
}

/* Fisher-Yates with the fit's seeded generator: the same seed gives the same epochs. */
static void shuffle(fit_ctx *c, int64_t *perm, int64_t n)
{
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)fit_rng_below(&c->rng, (uint64_t)i + 1);
        int64_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

/* Gradient of the objective on rows perm[0..m) into mb->g. */
static void batch_gradient(fit_ctx *c, minibatch *mb, const int64_t *rows, int64_t m,
                           const double *theta)
{
    const int64_t d = c->d;
    for (int64_t i = 0; i < m; i++) {
        memcpy(mb->Xb + i * d, c->X + rows[i] * d, (size_t)d * sizeof(float));
        mb->yb[i] = c->y[rows[i]];
    }
    for (int64_t j = 0; j < d; j++)
        c->wf[j] = (float)theta[j];
    lr_pass_bind(&mb->pass, mb->Xb, mb->yb, m);
    lr_pass_run(&mb->pass, c->wf, (float)theta[d], mb->g);
    for (int64_t j = 0; j < d; j++)
        mb->g[j] = mb->g[j] / (double)m + c->opt.l2 * theta[j];
    mb->g[d] /= (double)m;
}

static void update_sgd(const fit_ctx *c, minibatch *mb, double *theta)
{
    /* PyTorch's SGD momentum: v = mu v + g, theta -= lr v. */
    for (int64_t j = 0; j <= c->d; j++) {
        mb->m[j] = c->opt.momentum * mb->m[j] + mb->g[j];
        theta[j] -= c->opt.lr * mb->m[j];
    }
}

static void update_adam(const fit_ctx *c, minibatch *mb, double *theta)
{
    const double b1 = c->opt.beta1, b2 = c->opt.beta2;
    mb->t++;
    double c1 = 1.0 - pow(b1, (double)mb->t), c2 = 1.0 - pow(b2, (double)mb->t);
    for (int64_t j = 0; j <= c->d; j++) {
        mb->m[j] = b1 * mb->m[j] + (1.0 - b1) * mb->g[j];
        mb->v[j] = b2 * mb->v[j] + (1.0 - b2) * mb->g[j] * mb->g[j];
        theta[j] -= c->opt.lr * (mb->m[j] / c1) / (sqrt(mb->v[j] / c2) + c->opt.eps);
    }
}

static void run_epoch(fit_ctx *c, minibatch *mb, double *theta)
{
    int64_t bs = c->opt.batch_size;
    shuffle(c, mb->perm, c->n_train);
    for (int64_t start = 0; start < c->n_train; start += bs) {
        int64_t m = c->n_train - start < bs ? c->n_train - start : bs;
        batch_gradient(c, mb, mb->perm + start, m, theta);
        if (c->opt.solver == TG_SOLVER_ADAM)
            update_adam(c, mb, theta);
        else
            update_sgd(c, mb, theta);
    }
}

tg_status solve_minibatch(fit_ctx *c, double *theta)
{
    minibatch mb;
    if (!minibatch_alloc(c, &mb))
        return TG_ENOMEM;
    tg_status st = TG_OK;
    bool failed = false;
    double loss = fit_train_loss(c, theta);
    c->stop = TG_STOP_MAX_ITER;
    if (!fit_after_iteration(c, 0, theta, loss + fit_penalty(c, theta), loss, NAN, &failed)) {
        for (int epoch = 1; epoch <= c->opt.max_iter; epoch++) {
            run_epoch(c, &mb, theta);
            loss = fit_train_loss(c, theta);
            if (!isfinite(loss)) {
                st = tg_set_error(TG_EINVAL,
                                  "tg_logreg_fit: %s diverged in epoch %d (loss %g); "
                                  "try a smaller lr",
                                  tg_solver_name(c->opt.solver), epoch, fabs(loss));
                break;
            }
            c->iterations = epoch;
            if (fit_after_iteration(c, epoch, theta, loss + fit_penalty(c, theta), loss, NAN,
                                    &failed))
                break;
        }
    }
    if (failed)
        st = TG_ENOMEM;
    minibatch_free(&mb);
    return st;
}
