/* Public surface of the logistic-regression module that is not the fit itself: options, names,
 * the model's lifetime, the fused objective for callers, and prediction. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/tensor.h"
#include "fused.h"
#include "kernels.h"
#include "options.h"
#include "tapegrad/train.h"

static const char *const solver_names[] = {"lbfgs", "gd", "sgd", "adam"};
#define N_SOLVERS ((int)(sizeof solver_names / sizeof solver_names[0]))

const char *tg_solver_name(tg_solver s)
{
    return (unsigned)s < (unsigned)N_SOLVERS ? solver_names[s] : NULL;
}

tg_status tg_solver_parse(const char *name, tg_solver *out)
{
    if (!out)
        return tg_set_error(TG_EINVAL, "tg_solver_parse: out is NULL");
    for (int i = 0; name && i < N_SOLVERS; i++)
        if (strcmp(name, solver_names[i]) == 0) {
            *out = (tg_solver)i;
            tg_clear_error();
            return TG_OK;
        }
    return tg_set_error(TG_EINVAL,
                        "tg_solver_parse: unknown solver '%s' (expected lbfgs, gd, sgd or adam)",
                        name ? name : "(null)");
}

const char *tg_stop_reason_name(tg_stop_reason r)
{
    static const char *const names[] = {"converged", "max_iter", "early_stopping", "no_progress",
                                        "callback"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "unknown";
}

void tg_logreg_options_init(tg_logreg_options *o)
{
    if (!o) /* nothing to fill; like the other _init functions, not a crash */
        return;
    memset(o, 0, sizeof *o);
    o->solver = TG_SOLVER_LBFGS;
    o->l2 = -1.0; /* resolved to 1 / n_train: sklearn's C = 1 */
    o->pos_weight = 1.0;
    o->max_iter = 0;
    o->tol = 1e-4;
    o->lr = 0.0;
    o->batch_size = 64;
    o->momentum = 0.9;
    o->beta1 = 0.9;
    o->beta2 = 0.999;
    o->eps = 1e-8;
    o->lbfgs_memory = 10;
    o->standardize = true;
    o->fill_missing = false;
    o->val_split = 0.0;
    o->patience = 0;
    o->seed = 0;
    o->in_place = false;
    o->keep_history = true;
    o->metrics = true;
}

static tg_status bad_option(const char *fn, const char *what, double v)
{
    return tg_set_error(TG_EINVAL, "%s: %s (got %g)", fn, what, v);
}

tg_status lr_check_options(const tg_logreg_options *o, const char *fn)
{
    if (!tg_solver_name(o->solver))
        return bad_option(fn, "unknown solver", (double)(int)o->solver);
    if (!isfinite(o->l2))
        return bad_option(fn, "l2 must be finite", o->l2);
    if (!(o->pos_weight > 0.0) || isinf(o->pos_weight))
        return bad_option(fn, "pos_weight must be a positive number", o->pos_weight);
    if (o->max_iter < 0)
        return bad_option(fn, "max_iter must be >= 0", (double)o->max_iter);
    if (!(o->tol >= 0.0) || isinf(o->tol))
        return bad_option(fn, "tol must be >= 0 and finite", o->tol);
    if (!(o->lr >= 0.0) || isinf(o->lr))
        return bad_option(fn, "lr must be >= 0 and finite", o->lr);
    if (o->batch_size < 1 || (double)o->batch_size > LR_MAX_EXACT_INT)
        return bad_option(fn, "batch_size must be in [1, 2^53]", (double)o->batch_size);
    if (!(o->momentum >= 0.0 && o->momentum < 1.0))
        return bad_option(fn, "momentum must be in [0, 1)", o->momentum);
    if (!(o->beta1 >= 0.0 && o->beta1 < 1.0) || !(o->beta2 >= 0.0 && o->beta2 < 1.0))
        return bad_option(fn, "beta1 and beta2 must be in [0, 1)",
                          o->beta1 >= 0.0 && o->beta1 < 1.0 ? o->beta2 : o->beta1);
    if (!(o->eps > 0.0) || isinf(o->eps))
        return bad_option(fn, "eps must be > 0 and finite", o->eps);
    if (o->lbfgs_memory < 1)
        return bad_option(fn, "lbfgs_memory must be >= 1", (double)o->lbfgs_memory);
    if (!(o->val_split >= 0.0 && o->val_split < 1.0))
        return bad_option(fn, "val_split must be in [0, 1)", o->val_split);
    if (o->patience < 0)
        return bad_option(fn, "patience must be >= 0", (double)o->patience);
    return TG_OK;
}

/* ---- model ------------------------------------------------------------------------------- */

void tg_logreg_model_init(tg_logreg_model *m)
{
    if (!m)
        return;
    memset(m, 0, sizeof *m);
    tg_logreg_options_init(&m->options);
}

static void free_names(char **names, int64_t n)
{
    for (int64_t i = 0; names && i < n; i++)
        free(names[i]);
    free(names);
}

void tg_logreg_model_free(tg_logreg_model *m)
{
    if (!m)
        return;
    free(m->weights);
    free(m->mean);
    free(m->scale);
    free_names(m->feature_names, m->n_features);
    free(m->label);
    free(m->positive);
    free(m->fill);
    tg_logreg_model_init(m);
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

tg_status tg_logreg_model_set_positive(tg_logreg_model *m, const char *positive)
{
    if (!m)
        return tg_set_error(TG_EINVAL, "tg_logreg_model_set_positive: model is NULL");
    char *p = positive ? dup_str(positive) : NULL;
    if (positive && !p)
        return tg_set_error(TG_ENOMEM, "tg_logreg_model_set_positive: out of memory");
    free(m->positive);
    m->positive = p;
    tg_clear_error();
    return TG_OK;
}

tg_status tg_logreg_model_set_names(tg_logreg_model *m, const char *const *names, int64_t n,
                                    const char *label)
{
    const char *fn = "tg_logreg_model_set_names";
    tg_clear_error();
    if (!m || (n > 0 && !names))
        return tg_set_error(TG_EINVAL, "%s: NULL model or names", fn);
    if (n < 0)
        return tg_set_error(TG_EINVAL, "%s: %lld names", fn, (long long)n);
    for (int64_t i = 0; i < n; i++)
        if (!names[i])
            return tg_set_error(TG_EINVAL, "%s: names[%lld] is NULL", fn, (long long)i);
    if (m->n_features != n && m->weights) /* names only: any count, they are replaced */
        return tg_set_error(TG_ESHAPE, "%s: %lld names for a model of %lld features", fn,
                            (long long)n, (long long)m->n_features);
    char **copy = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    char *lab = label ? dup_str(label) : NULL;
    bool ok = copy && (!label || lab);
    for (int64_t i = 0; ok && i < n; i++)
        ok = (copy[i] = dup_str(names[i])) != NULL;
    if (!ok) {
        free_names(copy, n);
        free(lab);
        return tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    }
    free_names(m->feature_names, m->n_features);
    free(m->label);
    m->n_features = n;
    m->feature_names = n > 0 ? copy : (free(copy), NULL);
    m->label = lab;
    return TG_OK;
}

void tg_logreg_result_free(tg_logreg_result *r)
{
    if (!r)
        return;
    free(r->history);
    r->history = NULL;
    r->history_len = 0;
}

/* ---- the fused objective, for callers ---------------------------------------------------- */

tg_status tg_logreg_loss_grad(tg_tensor *X, tg_tensor *y, const double *w, double b, double l2,
                              double pos_weight, double *loss, double *grad_w, double *grad_b)
{
    const char *fn = "tg_logreg_loss_grad";
    tg_api_enter();
    tg_status st = TG_OK;
    char a[160], c[160];
    if (!X || !y)
        st = tg_null_input(TG_EINVAL, "%s: %s is NULL", fn, X ? "y" : "X");
    else if (!w || !loss)
        st = tg_set_error(TG_EINVAL, "%s: %s is NULL", fn, w ? "loss" : "w");
    else if (X->ndim != 2 || y->ndim != 1 || y->shape[0] != X->shape[0] || X->shape[0] < 1)
        st = tg_set_error(TG_ESHAPE, "%s: X must be [n, d] and y [n], n >= 1; got X %s, y %s", fn,
                          tg_shape_str(a, sizeof a, X->ndim, X->shape),
                          tg_shape_str(c, sizeof c, y->ndim, y->shape));
    else if (!(pos_weight > 0.0) || !isfinite(pos_weight))
        st = tg_set_error(TG_EINVAL, "%s: pos_weight must be finite and > 0 (got %g)", fn,
                          pos_weight);
    /* Here l2 has no "use the default" meaning as in the fit options: a NaN or negative one
     * would only give a NaN loss, or a bounded-below objective with no minimizer. */
    else if (!(l2 >= 0.0) || !isfinite(l2))
        st = tg_set_error(TG_EINVAL, "%s: l2 must be finite and >= 0 (got %g)", fn, l2);
    tg_tensor *Xc = st == TG_OK ? tg_as_contiguous(X) : NULL;
    tg_tensor *yc = st == TG_OK ? tg_as_contiguous(y) : NULL;
    if (st == TG_OK && (!Xc || !yc))
        st = tg_last_status();
    int64_t n = st == TG_OK ? X->shape[0] : 0, d = st == TG_OK ? X->shape[1] : 0;
    lr_pass p;
    memset(&p, 0, sizeof p);
    float *wf = st == TG_OK ? malloc((size_t)(d > 0 ? d : 1) * sizeof(float)) : NULL;
    double *g = st == TG_OK ? malloc((size_t)(d + 1) * sizeof(double)) : NULL;
    if (st == TG_OK && (!wf || !g || !lr_pass_init(&p, n, d, (float)pos_weight)))
        st = tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    if (st == TG_OK) {
        double pen = 0.0;
        for (int64_t j = 0; j < d; j++) {
            wf[j] = (float)w[j];
            pen += w[j] * w[j];
        }
        lr_pass_bind(&p, tg_ptr(Xc), tg_ptr(yc), n);
        bool want = grad_w || grad_b;
        *loss = lr_pass_run(&p, wf, (float)b, want ? g : NULL) / (double)n + 0.5 * l2 * pen;
        for (int64_t j = 0; grad_w && j < d; j++)
            grad_w[j] = g[j] / (double)n + l2 * w[j];
        if (grad_b)
            *grad_b = g[d] / (double)n;
    }
    lr_pass_free(&p);
    free(wf), free(g);
    tg_release(Xc), tg_release(yc);
    tg_api_leave(NULL);
    return st;
}

/* ---- prediction -------------------------------------------------------------------------- */

static bool model_ok(const tg_logreg_model *m, const char *fn)
{
    if (!m || !m->weights || m->n_features < 1) {
        tg_set_error(TG_EINVAL, "%s: the model is empty (fit or load it first)", fn);
        return false;
    }
    if (!m->mean != !m->scale) {
        tg_set_error(TG_EINVAL, "%s: the model has mean without scale (or the reverse)", fn);
        return false;
    }
    return true;
}

/* Why row i's logit is NaN: a NaN or infinite value in the row itself (which no model can
 * score), or else finite values that the model's weights overflow on. */
static void nan_logit_error(const char *fn, const float *row, int64_t i, int64_t d)
{
    if (!lr_name_non_finite(fn, row, 1, d, i, false))
        tg_set_error(TG_EINVAL,
                     "%s: the model's weights overflow on row %lld of X (its logit is NaN)", fn,
                     (long long)i);
}

/* Logits of X under m. The standardization folds into the weights (w / scale, and the
 * intercept absorbs mean . w / scale), all in double, so prediction is one pass over X. */
static tg_tensor *logits(const tg_logreg_model *m, tg_tensor *X, const char *fn)
{
    char a[160];
    if (!X) {
        tg_null_input(TG_EINVAL, "%s: X is NULL", fn);
        return NULL;
    }
    if (!model_ok(m, fn))
        return NULL;
    if (X->ndim != 2 || X->shape[1] != m->n_features) {
        tg_set_error(TG_ESHAPE, "%s: X %s does not have the model's %lld features", fn,
                     tg_shape_str(a, sizeof a, X->ndim, X->shape), (long long)m->n_features);
        return NULL;
    }
    const int64_t d = m->n_features, n = X->shape[0];
    double *w = malloc((size_t)d * sizeof(double));
    tg_tensor *Xc = tg_as_contiguous(X);
    tg_tensor *z = Xc && w ? tg_new(1, &n, fn) : NULL;
    if (z) {
        double b = m->bias;
        bool finite = true;
        for (int64_t j = 0; j < d; j++) {
            w[j] = m->scale ? m->weights[j] / m->scale[j] : m->weights[j];
            if (m->mean)
                b -= m->mean[j] * w[j];
            finite = finite && isfinite(w[j]);
        }
        /* Finite fields can still fold into inf or NaN (a weight over a std of 1e-320, huge
         * means against huge weights), and every logit would then be NaN: refuse the model
         * rather than print NaN probabilities. A fitted model never gets here: its std is at
         * least a float's smallest step. */
        if (finite && isfinite(b)) {
            lr_logits(tg_ptr(Xc), n, d, w, b, tg_ptr(z));
            /* Finite weights can still overflow on a row (1e308 * 2 - 1e308 * 3): a NaN logit,
             * which no probability or class can come from. */
            const float *zp = tg_ptr(z);
            for (int64_t i = 0; i < n; i++)
                if (isnan(zp[i])) {
                    nan_logit_error(fn, tg_ptr(Xc) + i * d, i, d);
                    tg_release(z);
                    z = NULL;
                    break;
                }
        } else {
            tg_set_error(TG_EINVAL,
                         "%s: the model is unusable: its weights, divided by its std and "
                         "folded with its mean, are not finite",
                         fn);
            tg_release(z);
            z = NULL;
        }
    } else if (!w) {
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    }
    free(w);
    tg_release(Xc);
    return z;
}

tg_tensor *tg_logreg_decision_function(const tg_logreg_model *m, tg_tensor *X)
{
    TG_API_BEGIN;
    TG_API_RETURN(logits(m, X, "tg_logreg_decision_function"));
}

tg_tensor *tg_logreg_predict_proba(const tg_logreg_model *m, tg_tensor *X)
{
    TG_API_BEGIN;
    tg_tensor *z = logits(m, X, "tg_logreg_predict_proba");
    if (z)
        tg_kern()->sigmoid(tg_ptr(z), tg_ptr(z), z->numel);
    TG_API_RETURN(z);
}

tg_tensor *tg_logreg_predict(const tg_logreg_model *m, tg_tensor *X)
{
    TG_API_BEGIN;
    tg_tensor *z = logits(m, X, "tg_logreg_predict");
    if (z) {
        float *p = tg_ptr(z);
        for (int64_t i = 0; i < z->numel; i++)
            p[i] = p[i] > 0.0f ? 1.0f : 0.0f; /* sklearn: class 1 when the logit is > 0 */
    }
    TG_API_RETURN(z);
}
