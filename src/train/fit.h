/* State shared by the fit driver (fit.c) and the solvers (solvers.c). Internal. */
#ifndef TG_TRAIN_FIT_H
#define TG_TRAIN_FIT_H

#include <stdbool.h>
#include <stdint.h>

#include "fused.h"
#include "tapegrad.h"
#include "tapegrad/train.h"

/* Parameters are one double vector theta = [w_0 .. w_{d-1}, b]. */
typedef struct fit_ctx {
    tg_logreg_options opt; /* resolved: max_iter, lr, l2 filled in */
    int64_t d, n_train, n_val;
    bool dist;          /* distributed fit: n_train counts every rank's rows, sums are chained
                         * across the ranks (tgd_chain) and stop decisions agreed */
    int64_t n_local;    /* this rank's training rows (n_train when not distributed) */
    double *chain;      /* d + 2 doubles: the running sums a distributed pass carries */
    const float *X, *y; /* working rows: training rows first, then validation rows */
    lr_pass train, val;
    float *wf;     /* theta's weights rounded to float for a pass */
    double t0;     /* start time, seconds */
    int64_t evals; /* passes with gradient over the training rows */

    /* the last point evaluated on the training rows, so the end of a fit need not redo it */
    double *last_theta, *last_grad;
    double last_f, last_loss;
    bool last_valid;

    /* early stopping: best validation loss and its weights */
    bool early;
    double best_val;
    double *best_theta;
    int best_iter, since_best;

    tg_logreg_step *hist;
    int hist_len, hist_cap;

    int iterations;
    tg_stop_reason stop;
    uint64_t rng;
} fit_ctx;

/* Objective (mean BCE + l2/2 ||w||^2) at theta, gradient into grad (d + 1) when not NULL;
 * *loss_out (may be NULL) gets the mean BCE alone. */
double fit_objective(fit_ctx *c, const double *theta, double *grad, double *loss_out);
/* l2/2 |w|^2 (the intercept, theta[d], is not penalized). */
double fit_penalty(const fit_ctx *c, const double *theta);
/* Mean BCE of the training rows at theta without a gradient (cheaper pass). */
double fit_train_loss(fit_ctx *c, const double *theta);

/* Bookkeeping after iteration iter (0 = the start): validation loss, history, early stopping,
 * progress callback. grad_max may be NaN. Returns true when the fit must stop, with c->stop
 * saying why (the solvers handle their own limits and convergence). Running out of memory for
 * the history also stops it, with *failed set and the error recorded. */
bool fit_after_iteration(fit_ctx *c, int iter, const double *theta, double objective,
                         double train_loss, double grad_max, bool *failed);

/* In a distributed fit: the status every rank agrees on (tg_dist_agree); st otherwise. */
tg_status fit_agree(const fit_ctx *c, tg_status st);

double fit_max_abs(const double *v, int64_t n);
/* TG_OK, or an error when the starting point's gradient (its fit_max_abs) is not finite. */
tg_status fit_check_start(const fit_ctx *c, double grad_max);
double fit_now(void);
uint64_t fit_rng_below(uint64_t *state, uint64_t k); /* uniform in [0, k), k >= 1 */

/* Solvers: start from theta (zeros), leave the final point in theta, set c->stop and
 * c->iterations. Return TG_OK or a failure status with the error set. */
tg_status solve_lbfgs(fit_ctx *c, double *theta);
tg_status solve_gd(fit_ctx *c, double *theta);
tg_status solve_minibatch(fit_ctx *c, double *theta); /* sgd and adam */

#endif
