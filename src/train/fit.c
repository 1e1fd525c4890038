/* tg_logreg_fit: checks the inputs, prepares the working rows (validation split, standardization),
 * runs a solver and fills the model and the result. Also the bookkeeping every solver shares:
 * the objective, history, early stopping and the progress callback. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/tensor.h"
#include "../dist/comm.h"
#include "fit.h"
#include "metrics.h"
#include "options.h"

/* ---- small helpers ----------------------------------------------------------------------- */

double fit_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double fit_max_abs(const double *v, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double a = fabs(v[i]);
        if (a > m || isnan(a))
            m = a;
    }
    return m;
}

/* Features whose products with the residuals overflow float32 sums (values near 3e38 left
 * unstandardized), or a pos_weight that does, give an infinite or NaN gradient at once. No step
 * can follow it, so the solvers would stop at the zero model as if the line search had merely
 * stalled. Standardized features are small: then the weight is the cause. */
tg_status fit_check_start(const fit_ctx *c, double grad_max)
{
    if (isfinite(grad_max))
        return TG_OK;
    if (c->opt.standardize)
        return tg_set_error(TG_EINVAL,
                            "tg_logreg_fit: the gradient at the starting point is not finite "
                            "(%g): pos_weight (%g) is too large for float32 sums",
                            grad_max, c->opt.pos_weight);
    return tg_set_error(TG_EINVAL,
                        "tg_logreg_fit: the gradient at the starting point is not finite (%g): "
                        "the features are too large for float32 sums; standardize them",
                        grad_max);
}

/* SplitMix64: tiny, and good enough to shuffle rows. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

uint64_t fit_rng_below(uint64_t *state, uint64_t k)
{
    /* Rejection keeps every value equally likely: drop the top partial copy of [0, k). */
    uint64_t limit = UINT64_MAX - UINT64_MAX % k;
    for (;;) {
        uint64_t r = rng_next(state);
        if (r < limit)
            return r % k;
    }
}

static tg_status agree(bool dist, tg_status st)
{
    return dist ? tgd_agree(st) : st;
}

tg_status fit_agree(const fit_ctx *c, tg_status st)
{
    return agree(c->dist, st);
}

/* ---- objective --------------------------------------------------------------------------- */

static void fold_pass(double *state, void *pass)
{
    lr_pass_fold(pass, state, state + 1); /* state: loss, then d + 1 gradient sums */
}

static void fold_pass_loss(double *state, void *pass)
{
    lr_pass_fold(pass, state, NULL);
}

/* One fused pass of p at (wf, b): the loss sum, and the gradient sums into grad (d + 1) when
 * not NULL. Distributed: the ranks' block sums folded in rank order (the same additions, in the
 * same order, as one process over every row) and handed to every rank. */
static double pass_sum(fit_ctx *c, lr_pass *p, float b, double *grad)
{
    if (!c->dist)
        return lr_pass_run(p, c->wf, b, grad);
    lr_pass_blocks(p, c->wf, b, grad != NULL);
    int64_t n = grad ? c->d + 2 : 1;
    memset(c->chain, 0, (size_t)n * sizeof(double));
    tgd_chain(c->chain, n, grad ? fold_pass : fold_pass_loss, p);
    if (grad)
        memcpy(grad, c->chain + 1, (size_t)(c->d + 1) * sizeof(double));
    return c->chain[0];
}

static void round_weights(fit_ctx *c, const double *theta)
{
    for (int64_t j = 0; j < c->d; j++)
        c->wf[j] = (float)theta[j];
}

double fit_penalty(const fit_ctx *c, const double *theta)
{
    double s = 0.0;
    for (int64_t j = 0; j < c->d; j++)
        s += theta[j] * theta[j];
    return 0.5 * c->opt.l2 * s;
}

double fit_objective(fit_ctx *c, const double *theta, double *grad, double *loss_out)
{
    const int64_t n = c->d + 1;
    size_t bytes = (size_t)n * sizeof(double);
    /* Solvers often ask for the point they just saw (the start, the end): answer from memory. */
    if (!(c->last_valid && memcmp(theta, c->last_theta, bytes) == 0)) {
        round_weights(c, theta);
        double sum = pass_sum(c, &c->train, (float)theta[c->d], c->last_grad);
        c->evals++;
        double inv = 1.0 / (double)c->n_train;
        c->last_loss = sum * inv;
        c->last_f = c->last_loss + fit_penalty(c, theta);
        for (int64_t j = 0; j < c->d; j++)
            c->last_grad[j] = c->last_grad[j] * inv + c->opt.l2 * theta[j];
        c->last_grad[c->d] *= inv;
        memcpy(c->last_theta, theta, bytes);
        c->last_valid = true;
    }
    if (grad)
        memcpy(grad, c->last_grad, bytes);
    if (loss_out)
        *loss_out = c->last_loss;
    return c->last_f;
}

double fit_train_loss(fit_ctx *c, const double *theta)
{
    if (c->last_valid && memcmp(theta, c->last_theta, (size_t)(c->d + 1) * sizeof(double)) == 0)
        return c->last_loss;
    round_weights(c, theta);
    return pass_sum(c, &c->train, (float)theta[c->d], NULL) / (double)c->n_train;
}

static double val_loss(fit_ctx *c, const double *theta)
{
    if (c->n_val == 0)
        return NAN;
    round_weights(c, theta);
    return pass_sum(c, &c->val, (float)theta[c->d], NULL) / (double)c->n_val;
}

/* ---- per-iteration bookkeeping ----------------------------------------------------------- */

static bool push_history(fit_ctx *c, const tg_logreg_step *s)
{
    if (!c->opt.keep_history)
        return true;
    if (c->hist_len == c->hist_cap) {
        int cap = c->hist_cap ? 2 * c->hist_cap : 64;
        tg_logreg_step *h = realloc(c->hist, (size_t)cap * sizeof *h);
        if (!h)
            return false;
        c->hist = h;
        c->hist_cap = cap;
    }
    c->hist[c->hist_len++] = *s;
    return true;
}

/* True when early stopping says stop. Keeps a copy of the best weights. */
static bool early_stop(fit_ctx *c, int iter, const double *theta, double vloss)
{
    if (!c->early)
        return false;
    if (vloss < c->best_val || iter == 0) {
        c->best_val = vloss;
        c->best_iter = iter;
        c->since_best = 0;
        memcpy(c->best_theta, theta, (size_t)(c->d + 1) * sizeof(double));
        return false;
    }
    return ++c->since_best >= c->opt.patience;
}

static bool local_after_iteration(fit_ctx *c, const tg_logreg_step *s, const double *theta,
                                  bool *failed)
{
    if (!push_history(c, s)) {
        tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for the history");
        *failed = true;
        return true;
    }
    if (early_stop(c, s->iteration, theta, s->val_loss)) {
        c->stop = TG_STOP_EARLY;
        return true;
    }
    if (c->opt.progress && c->opt.progress(s, c->opt.max_iter, c->opt.progress_user)) {
        c->stop = TG_STOP_CALLBACK;
        return true;
    }
    return false;
}

bool fit_after_iteration(fit_ctx *c, int iter, const double *theta, double objective,
                         double train_loss, double grad_max, bool *failed)
{
    tg_logreg_step s = {iter,     train_loss,       objective, val_loss(c, theta),
                        grad_max, fit_now() - c->t0};
    bool stop = local_after_iteration(c, &s, theta, failed);
    if (!c->dist)
        return stop;
    /* Every rank must leave the solver at the same iteration, or the others would wait in the
     * next pass: a failure or a callback's stop on one rank stops them all. */
    if (agree(true, *failed ? TG_ENOMEM : TG_OK) != TG_OK) {
        *failed = true;
        return true;
    }
    int64_t any = stop;
    tgd_max_i64(&any, 1);
    if (any && !stop)
        c->stop = TG_STOP_CALLBACK; /* another rank's callback asked */
    return any != 0;
}

/* ---- options ----------------------------------------------------------------------------- */

static void resolve_options(tg_logreg_options *o, int64_t n_train)
{
    static const int default_iter[] = {100, 1000, 50, 50};
    static const double default_lr[] = {0.0, 0.0, 0.01, 0.001};
    if (o->max_iter == 0)
        o->max_iter = default_iter[o->solver];
    if (o->lr == 0.0)
        o->lr = default_lr[o->solver];
    if (o->l2 < 0.0)
        o->l2 = 1.0 / (double)n_train; /* sklearn's C = 1 on the mean-loss scale */
}

/* ---- working data ------------------------------------------------------------------------ */

/* Rows the fit works on: borrowed from the tensors, or a private copy it may rewrite. */
typedef struct {
    tg_tensor *Xt, *yt; /* contiguous versions of the inputs (references) */
    float *X, *y;
    float *X_own, *y_own; /* private copies, when made (tg_scratch_alloc) */
    int64_t X_cap, y_cap; /* their capacities */
    int64_t n, d;
    int64_t row0; /* index of the first row among every rank's (0 when not distributed) */
} rows;

static void rows_free(rows *r)
{
    tg_release(r->Xt);
    tg_release(r->yt);
    tg_scratch_free(r->X_own, r->X_cap);
    tg_scratch_free(r->y_own, r->y_cap);
}

/* Messages name rows by their index in the whole data set (row0 = the first one's). */
static tg_status check_labels(const float *y, int64_t n, int64_t row0)
{
    for (int64_t i = 0; i < n; i++)
        if (y[i] != 0.0f && y[i] != 1.0f)
            return tg_set_error(TG_EINVAL, "tg_logreg_fit: y[%lld] = %g; labels must be 0 or 1",
                                (long long)(row0 + i), (double)y[i]);
    return TG_OK;
}

/* A copy from the large-buffer allocator, whose buffers sit on 2 MB pages: copied into malloc's
 * 4 KB pages, a 1M x 32 X took 32768 page faults, and tg_logreg_fit 500 ms instead of 90 on a
 * VM that traps each fault to its host. */
static float *copy_floats(const float *src, int64_t n, int64_t *capacity)
{
    float *p = tg_scratch_alloc(n, capacity);
    if (p)
        memcpy(p, src, (size_t)n * sizeof(float));
    return p;
}

/* copy: the fit will rewrite the rows and must not touch the caller's; in_place: it will
 * rewrite them and may. */
static tg_status rows_open(rows *r, tg_tensor *X, tg_tensor *y, bool copy, bool in_place)
{
    memset(r, 0, sizeof *r);
    r->n = X->shape[0];
    r->d = X->shape[1];
    r->Xt = tg_as_contiguous(X);
    r->yt = tg_as_contiguous(y);
    if (!r->Xt || !r->yt)
        return tg_last_status();
    r->X = tg_ptr(r->Xt);
    r->y = tg_ptr(r->yt);
    /* A contiguous copy made just now is already private; otherwise copy when we will write. */
    if (copy && r->Xt == X)
        r->X = r->X_own = copy_floats(r->X, r->n * r->d, &r->X_cap);
    if (copy && r->yt == y)
        r->y = r->y_own = copy_floats(r->y, r->n, &r->y_cap);
    if (!r->X || !r->y)
        return tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory copying X");
    /* Writing into the caller's tensors (in_place): saved copies of them must notice. */
    if (in_place && r->Xt == X)
        tg_bump_version(X, "tg_logreg_fit");
    if (in_place && r->yt == y)
        tg_bump_version(y, "tg_logreg_fit");
    return TG_OK;
}

/* Moves n_val rows chosen uniformly at random (by the seed) to the end: a partial
 * Fisher-Yates shuffle, in place, O(n_val) swaps. */
static tg_status split_rows(rows *r, int64_t n_val, uint64_t *rng)
{
    const int64_t d = r->d;
    float *tmp = malloc((size_t)d * sizeof(float));
    if (!tmp)
        return tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory");
    for (int64_t k = 0; k < n_val; k++) {
        int64_t i = r->n - 1 - k;
        int64_t j = (int64_t)fit_rng_below(rng, (uint64_t)i + 1);
        if (i == j)
            continue;
        memcpy(tmp, r->X + i * d, (size_t)d * sizeof(float));
        memcpy(r->X + i * d, r->X + j * d, (size_t)d * sizeof(float));
        memcpy(r->X + j * d, tmp, (size_t)d * sizeof(float));
        float t = r->y[i];
        r->y[i] = r->y[j];
        r->y[j] = t;
    }
    free(tmp);
    return TG_OK;
}

/* Names the first non-finite value in X (rows [0, n)); NaN passes when nan_ok. */
static tg_status find_non_finite(const float *X, int64_t n, int64_t d, int64_t row0, bool nan_ok)
{
    return lr_name_non_finite("tg_logreg_fit", X, n, d, row0, nan_ok) ? TG_EINVAL : TG_OK;
}

static void fold_stats(double *state, void *stats)
{
    lr_stats_fold(stats, state);
}

/* Column means and deviations of the first n rows; distributed: of every rank's training rows,
 * folded in rank order (so bit-identical to one process when the ranks start at multiples of
 * lr_align_rows). */
static tg_status column_stats(const rows *r, int64_t n, bool dist, double *mean, double *std)
{
    if (!dist)
        return lr_column_stats(r->X, n, r->d, mean, std) ? TG_OK : tg_last_status();
    lr_stats s = {0};
    double *state = calloc((size_t)(2 * r->d + 1), sizeof(double));
    bool ok = state && lr_stats_compute(&s, r->X, n, r->d);
    tg_status st =
        agree(true, ok ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    if (st == TG_OK) {
        tgd_chain(state, 2 * r->d + 1, fold_stats, &s);
        lr_stats_finish(state, r->d, mean, std);
    }
    lr_stats_free(&s);
    free(state);
    return st;
}

/* Fits mean/scale on the training rows and applies them to every row. */
static tg_status standardize(rows *r, int64_t n_train, bool dist, double *mean, double *scale)
{
    tg_status st = column_stats(r, n_train, dist, mean, scale);
    if (st != TG_OK)
        return st;
    for (int64_t c = 0; c < r->d; c++) {
        /* The statistics are global: on every rank or none. The rank holding the bad value
         * names it. */
        if (!isfinite(mean[c]) || !isfinite(scale[c]))
            return agree(dist, find_non_finite(r->X, n_train, r->d, r->row0, false));
        if (!(scale[c] > 0.0))
            scale[c] = 1.0;       /* constant column: leave it centred at 0, as sklearn does */
        mean[c] = (float)mean[c]; /* the centre lr_standardize uses, kept exactly */
    }
    lr_standardize(r->X, r->n, r->d, mean, scale);
    return agree(dist, find_non_finite(r->X + n_train * r->d, r->n - n_train, r->d,
                                       r->row0 + n_train, false));
}

/* Column sums (state[0, d)) and counts (state[d, 2d)) of the non-NaN values, folded row by row
 * in order: with tgd_chain, the same doubles on any number of ranks. */
typedef struct {
    const float *X;
    int64_t n, d;
} nan_rows;

static void fold_present(double *state, void *ctx)
{
    const nan_rows *r = ctx;
    for (int64_t i = 0; i < r->n; i++)
        for (int64_t c = 0; c < r->d; c++) {
            float v = r->X[i * r->d + c];
            if (!isnan(v)) {
                state[c] += v;
                state[r->d + c] += 1.0;
            }
        }
}

/* fill_missing: NaN features become the training rows' column means. The validation rows
 * (after n_train) take the same values and do not count towards them. On success *fill gets
 * the d values used (malloc'd), for the model. */
static tg_status fill_missing(rows *r, int64_t n_train, bool dist, double **fill)
{
    const int64_t d = r->d;
    double *state = calloc((size_t)(2 * d), sizeof(double));
    tg_status st =
        agree(dist, state ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    if (st != TG_OK) {
        free(state);
        return st;
    }
    nan_rows mine = {r->X, n_train, d};
    if (dist)
        tgd_chain(state, 2 * d, fold_present, &mine);
    else
        fold_present(state, &mine);
    for (int64_t c = 0; c < d && st == TG_OK; c++) /* the same state on every rank */
        if (state[d + c] == 0.0)
            st = tg_set_error(TG_EINVAL,
                              "tg_logreg_fit: feature %lld has no values among the training "
                              "rows to fill its missing ones with",
                              (long long)c);
    st = agree(dist, st); /* every rank fails alike; this names the one that reports it */
    for (int64_t c = 0; c < d && st == TG_OK; c++)
        state[c] = (float)(state[c] / state[d + c]);
    for (int64_t i = 0; i < r->n && st == TG_OK; i++)
        for (int64_t c = 0; c < d; c++)
            if (isnan(r->X[i * d + c]))
                r->X[i * d + c] = (float)state[c];
    if (st == TG_OK) { /* the first d doubles are the fill: shrink the state to them */
        double *kept = realloc(state, (size_t)d * sizeof(double));
        *fill = kept ? kept : state;
        return TG_OK;
    }
    free(state);
    return st;
}

/* ---- the fit ----------------------------------------------------------------------------- */

static void ctx_free(fit_ctx *c)
{
    lr_pass_free(&c->train);
    lr_pass_free(&c->val);
    free(c->wf);
    free(c->last_theta);
    free(c->last_grad);
    free(c->best_theta);
    free(c->chain);
    free(c->hist);
}

/* n_all: training + validation rows over every rank (r->n when not distributed). */
static tg_status ctx_init(fit_ctx *c, const tg_logreg_options *opt, const rows *r, int64_t n_val,
                          bool dist, int64_t n_all)
{
    memset(c, 0, sizeof *c);
    c->opt = *opt;
    c->d = r->d;
    c->dist = dist;
    c->n_val = n_val;
    c->n_train = n_all - n_val;
    c->n_local = r->n - n_val;
    c->X = r->X;
    c->y = r->y;
    c->rng = opt->seed;
    resolve_options(&c->opt, c->n_train);
    c->early = n_val > 0 && opt->patience > 0;
    c->best_val = INFINITY;
    size_t vec = (size_t)(c->d + 1) * sizeof(double);
    float pw = (float)opt->pos_weight;
    bool ok =
        lr_pass_init(&c->train, c->n_local, c->d, pw) && lr_pass_init(&c->val, n_val, c->d, pw);
    c->wf = malloc((size_t)c->d * sizeof(float));
    c->last_theta = malloc(vec);
    c->last_grad = malloc(vec);
    c->best_theta = malloc(vec);
    c->chain = malloc(vec + sizeof(double));
    if (!ok || !c->wf || !c->last_theta || !c->last_grad || !c->best_theta || !c->chain)
        return agree(dist, tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    lr_pass_bind(&c->train, r->X, r->y, c->n_local);
    lr_pass_bind(&c->val, r->X + c->n_local * c->d, r->y + c->n_local, n_val);
    return agree(dist, TG_OK);
}

static tg_status run_solver(fit_ctx *c, double *theta)
{
    switch (c->opt.solver) {
    case TG_SOLVER_LBFGS:
        return solve_lbfgs(c, theta);
    case TG_SOLVER_GD:
        return solve_gd(c, theta);
    default:
        return solve_minibatch(c, theta);
    }
}

/* Train and validation metrics at theta: one logits pass over every working row. Blocks of
 * lr_align_rows(d) rows, so that the loss of a distributed fit sums as one process's does. */
static tg_status add_metrics(fit_ctx *c, const double *theta, tg_logreg_result *res)
{
    int64_t n = c->n_local + c->n_val, cap = 0;
    float *z = tg_scratch_alloc(n, &cap); /* from the cache, on 2 MB pages when large */
    tg_status st = fit_agree(
        c, z ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for metrics"));
    if (st != TG_OK) {
        tg_scratch_free(z, cap);
        return st;
    }
    int64_t block = lr_align_rows(c->d);
    lr_logits(c->X, n, c->d, theta, theta[c->d], z);
    bool ok =
        lr_metrics_ex(c->y, z, c->n_local, block, c->dist, &res->train_metrics) &&
        lr_metrics_ex(c->y + c->n_local, z + c->n_local, c->n_val, block, false, &res->val_metrics);
    tg_scratch_free(z, cap);
    return ok ? TG_OK : tg_last_status();
}

/* Final numbers at theta. */
static tg_status finish_result(fit_ctx *c, const double *theta, tg_logreg_result *res)
{
    double *g = malloc((size_t)(c->d + 1) * sizeof(double));
    tg_status st =
        fit_agree(c, g ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    if (st != TG_OK) {
        free(g); /* allocated here when another rank's allocation failed */
        return st;
    }
    double loss;
    res->objective = fit_objective(c, theta, g, &loss);
    res->train_loss = loss;
    res->grad_max = fit_max_abs(g, c->d + 1);
    res->val_loss = val_loss(c, theta);
    free(g);
    res->iterations = c->iterations;
    res->evaluations = c->evals;
    res->n_train = c->n_train;
    res->n_val = c->n_val;
    res->l2 = c->opt.l2;
    res->best_iteration = c->early ? c->best_iter : c->iterations;
    res->stop = c->stop;
    st = c->opt.metrics ? add_metrics(c, theta, res) : TG_OK;
    res->history = c->hist;
    res->history_len = c->hist_len;
    c->hist = NULL;
    res->seconds = fit_now() - c->t0;
    return st;
}

/* The arrays the model takes over from the fit (any may be NULL). */
typedef struct {
    double *mean, *scale, *fill;
} fit_arrays;

/* Moves the fitted numbers into the model (names kept when they still fit); on success the
 * model owns a's arrays. */
static tg_status fill_model(fit_ctx *c, const double *theta, fit_arrays a, tg_logreg_model *m)
{
    double *w = malloc((size_t)c->d * sizeof(double));
    if (!w)
        return tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory");
    memcpy(w, theta, (size_t)c->d * sizeof(double));
    if (m->n_features != c->d) {
        char *label = m->label;
        m->label = NULL;
        tg_logreg_model_free(m);
        m->label = label;
    }
    free(m->weights), free(m->mean), free(m->scale), free(m->fill);
    m->n_features = c->d;
    m->weights = w;
    m->bias = theta[c->d];
    m->mean = a.mean;
    m->scale = a.scale;
    m->fill = a.fill;
    m->options = c->opt;
    m->options.progress = NULL; /* the model outlives the caller's callback */
    m->options.progress_user = NULL;
    m->train_rows = c->n_train;
    m->iterations = c->iterations;
    return TG_OK;
}

/* A split that leaves the training rows with one class, when the data has both, would train a
 * model that only knows one answer: an error, with a way out. (Data with one class to begin
 * with is the caller's choice; the tapegrad command refuses it before the fit.) */
static tg_status check_split_classes(const rows *r, int64_t n_val, const tg_logreg_options *o)
{
    int64_t n_train = r->n - n_val, pos_train = 0, pos_all = 0;
    for (int64_t i = 0; i < r->n; i++) {
        pos_all += r->y[i] > 0.5f;
        pos_train += i < n_train && r->y[i] > 0.5f;
    }
    bool both = pos_all > 0 && pos_all < r->n;
    if (!both || (pos_train > 0 && pos_train < n_train))
        return TG_OK;
    return tg_set_error(TG_EINVAL,
                        "tg_logreg_fit: the validation split (%g of the rows, seed %llu) "
                        "leaves %s%lld training row%s with only class %d; use a smaller "
                        "validation split or another seed",
                        o->val_split, (unsigned long long)o->seed, n_train == 1 ? "" : "the ",
                        (long long)n_train, n_train == 1 ? "" : "s", pos_train > 0 ? 1 : 0);
}

/* Labels, split, missing values, standardization: the working rows the solver will see. mean/scale
 * are malloc'd when standardizing, fill when filling. Distributed (no split there): each step
 * agreed. */
static tg_status prepare_rows(rows *r, const tg_logreg_options *opt, int64_t n_val, bool dist,
                              double **mean, double **scale, double **fill)
{
    tg_status st = check_labels(r->y, r->n, r->row0);
    /* Before rows move (the split) or gaps take their column's mean (the fill), a value the fit
     * cannot use is named where the caller put it: afterwards it would be named at the row it
     * was swapped to, or at a gap filled with its infinite mean. Then nothing non-finite is
     * left once the gaps are filled (their means are of finite floats). */
    bool scanned = n_val > 0 || opt->fill_missing;
    if (st == TG_OK && scanned)
        st = find_non_finite(r->X, r->n, r->d, r->row0, opt->fill_missing);
    uint64_t rng = opt->seed ^ 0x5eed5eed5eed5eedULL; /* split stream apart from shuffles */
    if (st == TG_OK && n_val > 0)
        st = split_rows(r, n_val, &rng);
    if (st == TG_OK && n_val > 0 && !dist) /* ranks split their own rows: classes may differ */
        st = check_split_classes(r, n_val, opt);
    if ((st = agree(dist, st)) != TG_OK)
        return st;
    if (opt->fill_missing && (st = fill_missing(r, r->n - n_val, dist, fill)) != TG_OK)
        return st;
    if (!opt->standardize)
        return scanned ? TG_OK : agree(dist, find_non_finite(r->X, r->n, r->d, r->row0, false));
    *mean = malloc((size_t)r->d * sizeof(double));
    *scale = malloc((size_t)r->d * sizeof(double));
    if (!*mean || !*scale)
        st = tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory");
    if ((st = agree(dist, st)) != TG_OK)
        return st;
    return standardize(r, r->n - n_val, dist, *mean, *scale);
}

/* The fit on prepared rows. Distributed: r holds this rank's rows and n_all counts every
 * rank's; every failure below is agreed, so all ranks take the same path. */
static tg_status fit_rows(rows *r, const tg_logreg_options *opt, bool dist, int64_t n_all,
                          tg_logreg_model *model, tg_logreg_result *res)
{
    int64_t n_val = opt->val_split > 0.0 ? (int64_t)ceil(opt->val_split * (double)r->n) : 0;
    if (r->n - n_val < 1 && !dist)
        return tg_set_error(TG_EINVAL,
                            "tg_logreg_fit: a validation split of %g leaves no training "
                            "rows out of %lld",
                            opt->val_split, (long long)r->n);
    fit_arrays a = {NULL, NULL, NULL};
    double *theta = NULL;
    fit_ctx c;
    memset(&c, 0, sizeof c);
    tg_logreg_result tmp;
    memset(&tmp, 0, sizeof tmp);
    tg_status st = prepare_rows(r, opt, n_val, dist, &a.mean, &a.scale, &a.fill);
    if (st == TG_OK)
        st = ctx_init(&c, opt, r, n_val, dist, n_all);
    if (st == TG_OK) {
        theta = calloc((size_t)(r->d + 1), sizeof(double));
        st = agree(dist, theta ? TG_OK : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory"));
    }
    if (st == TG_OK) {
        c.t0 = fit_now();
        st = run_solver(&c, theta);
    }
    if (st == TG_OK && c.early) /* keep the weights with the best validation loss */
        memcpy(theta, c.best_theta, (size_t)(r->d + 1) * sizeof(double));
    if (st == TG_OK)
        st = finish_result(&c, theta, &tmp);
    if (st == TG_OK) { /* the last step that can fail: agreed, so no rank returns alone */
        tg_status moved = fill_model(&c, theta, a, model);
        if (moved == TG_OK)
            a = (fit_arrays){NULL, NULL, NULL}; /* the model owns them now */
        st = agree(dist, moved);
    }
    if (st == TG_OK && res)
        *res = tmp;
    else
        tg_logreg_result_free(&tmp);
    free(theta), free(a.mean), free(a.scale), free(a.fill);
    ctx_free(&c);
    return st;
}

static tg_status check_inputs(tg_tensor *X, tg_tensor *y, bool dist)
{
    char a[160], b[160];
    const char *fn = dist ? "tg_logreg_fit_distributed" : "tg_logreg_fit";
    if (!X || !y)
        return tg_null_input(TG_EINVAL, "%s: X or y is NULL", fn);
    if (X->ndim != 2 || y->ndim != 1 || y->shape[0] != X->shape[0])
        return tg_set_error(TG_ESHAPE, "%s: X must be [n, d] and y [n]; got X %s, y %s", fn,
                            tg_shape_str(a, sizeof a, X->ndim, X->shape),
                            tg_shape_str(b, sizeof b, y->ndim, y->shape));
    /* A rank may hold no rows of a distributed data set; the union must have some. */
    if ((X->shape[0] < 1 && !dist) || X->shape[1] < 1)
        return tg_set_error(TG_ESHAPE, "%s: X %s has no rows or no features", fn,
                            tg_shape_str(a, sizeof a, X->ndim, X->shape));
    return TG_OK;
}

/* Options a distributed fit cannot honour: mini-batches and a validation split would need
 * rows shuffled across ranks. */
static tg_status check_dist_options(const tg_logreg_options *o)
{
    if (o->solver != TG_SOLVER_LBFGS && o->solver != TG_SOLVER_GD)
        return tg_set_error(TG_EUNSUPPORTED,
                            "tg_logreg_fit_distributed: solver %s is not supported across "
                            "ranks (use lbfgs or gd)",
                            tg_solver_name(o->solver));
    if (o->val_split > 0.0)
        return tg_set_error(TG_EUNSUPPORTED,
                            "tg_logreg_fit_distributed: a validation split is not supported "
                            "across ranks");
    return TG_OK;
}

static tg_status check_call(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt,
                            tg_logreg_model *model, bool dist)
{
    const char *fn = dist ? "tg_logreg_fit_distributed" : "tg_logreg_fit";
    tg_status st = check_inputs(X, y, dist);
    if (st == TG_OK && (!opt || !model))
        st = tg_set_error(TG_EINVAL, "%s: opt or model is NULL", fn);
    if (st == TG_OK)
        st = lr_check_options(opt, fn);
    if (st == TG_OK && dist)
        st = check_dist_options(opt);
    return st;
}

static tg_status fit_tensors(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt, bool dist,
                             int64_t n_all, tg_logreg_model *model, tg_logreg_result *result)
{
    bool rewrite = opt->standardize || opt->val_split > 0.0 || opt->fill_missing;
    rows r;
    tg_status st = rows_open(&r, X, y, rewrite && !opt->in_place, rewrite && opt->in_place);
    if (dist)
        tgd_exscan_i64(&r.n, &r.row0, 1);
    if ((st = agree(dist, st)) == TG_OK)
        st = fit_rows(&r, opt, dist, n_all, model, result);
    rows_free(&r);
    return st;
}

tg_status tg_logreg_fit(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt,
                        tg_logreg_model *model, tg_logreg_result *result)
{
    tg_api_enter();
    if (result)
        memset(result, 0, sizeof *result);
    tg_status st = check_call(X, y, opt, model, false);
    if (st == TG_OK)
        st = fit_tensors(X, y, opt, false, X->shape[0], model, result);
    tg_api_leave(NULL);
    return st;
}

/* Every rank must bring the same width, and some rank a row. Each rank sees the same numbers,
 * so each sets the same error, and rank 0 is the one to report it. */
static tg_status check_world(int64_t d, int64_t n, int64_t *n_all)
{
    int64_t w[2] = {d, -d};
    tgd_min_i64(w, 2);
    *n_all = n;
    tgd_sum_i64(n_all, 1);
    tg_status st = TG_OK;
    if (w[0] != -w[1])
        st = tg_set_error(TG_ESHAPE,
                          "tg_logreg_fit_distributed: the ranks disagree on the number of "
                          "features (%lld to %lld)",
                          (long long)w[0], (long long)-w[1]);
    else if (*n_all < 1)
        st = tg_set_error(TG_ESHAPE, "tg_logreg_fit_distributed: no rank has any rows");
    return tgd_agree(st);
}

/* The fit's own messages say "tg_logreg_fit: ", the function most of its code serves; a
 * failure of the distributed entry point says which function the caller called. */
static void name_distributed(void)
{
    static const char prefix[] = "tg_logreg_fit: ";
    const char *msg = tg_last_error();
    if (strncmp(msg, prefix, sizeof prefix - 1) != 0)
        return;
    char *rest = strdup(msg + sizeof prefix - 1); /* tg_set_error overwrites msg */
    if (rest)
        tg_set_error(tg_last_status(), "tg_logreg_fit_distributed: %s", rest);
    free(rest);
}

tg_status tg_logreg_fit_distributed(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt,
                                    tg_logreg_model *model, tg_logreg_result *result)
{
    tg_api_enter();
    if (result)
        memset(result, 0, sizeof *result);
    int64_t n_all = 0;
    tg_status st = tgd_agree(check_call(X, y, opt, model, true));
    if (st == TG_OK)
        st = check_world(X->shape[1], X->shape[0], &n_all);
    if (st == TG_OK)
        st = fit_tensors(X, y, opt, true, n_all, model, result);
    if (st != TG_OK)
        name_distributed();
    tg_api_leave(NULL);
    return st;
}
