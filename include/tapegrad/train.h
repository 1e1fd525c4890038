/* Binary logistic regression for tapegrad: a fused trainer, prediction, metrics and model files.
 * Included by tapegrad.h.
 *
 * The objective, over the n training rows (x_i, y_i), y_i in {0, 1}, is
 *
 *     mean_i BCE(x_i . w + b, y_i; pos_weight) + (l2 / 2) * ||w||^2      (b is not penalized)
 *
 * which has the same minimizer as scikit-learn's LogisticRegression(C) when l2 = 1 / (C n).
 * Loss and gradient come from one pass over X in cache-sized row blocks (see src/train/fused.c):
 * the result does not depend on the number of threads.
 *
 * Typical use:
 *
 *     tg_logreg_options opt;
 *     tg_logreg_options_init(&opt);                 // L-BFGS, C = 1, standardized features
 *     tg_logreg_model m;
 *     tg_logreg_model_init(&m);
 *     if (tg_logreg_fit(X, y, &opt, &m, NULL) != TG_OK) puts(tg_last_error());
 *     tg_tensor *p = tg_logreg_predict_proba(&m, X_new);
 *     tg_logreg_save(&m, "model.json");
 *     tg_logreg_model_free(&m);
 */
#ifndef TAPEGRAD_TRAIN_H
#define TAPEGRAD_TRAIN_H

#include "tapegrad.h" /* a no-op when tapegrad.h includes this header */

#ifdef __cplusplus
extern "C" {
#endif
#ifdef __GNUC__
#pragma GCC visibility push(default)
#endif

/* ---- Options ----------------------------------------------------------------------------- */
typedef enum {
    TG_SOLVER_LBFGS = 0, /* limited-memory BFGS with a strong-Wolfe line search (default) */
    TG_SOLVER_GD,        /* full-batch gradient descent */
    TG_SOLVER_SGD,       /* mini-batch SGD with momentum, rows reshuffled every epoch */
    TG_SOLVER_ADAM       /* mini-batch Adam, rows reshuffled every epoch */
} tg_solver;

/* "lbfgs", "gd", "sgd", "adam"; NULL for an unknown value. */
const char *tg_solver_name(tg_solver s);
/* The inverse; TG_EINVAL (and a message listing the choices) for an unknown name. */
tg_status tg_solver_parse(const char *name, tg_solver *out);

/* One point of the training curve: reported to the progress callback and kept in the history. */
typedef struct tg_logreg_step {
    int iteration;     /* 0 = the starting point; then solver iterations (epochs for sgd/adam) */
    double train_loss; /* mean BCE (with pos_weight) on the training rows, without the penalty */
    double objective;  /* train_loss + l2/2 ||w||^2 */
    double val_loss;   /* the same mean BCE on the validation rows; NaN without a split */
    double grad_max;   /* max |d objective / d param| (lbfgs, gd); NaN for sgd and adam */
    double seconds;    /* since the fit started */
} tg_logreg_step;

/* Called after every iteration; a non-zero return stops the fit (stop reason CALLBACK, the
 * model keeps the current weights). max_iter is the resolved iteration limit. */
typedef int (*tg_logreg_progress_fn)(const tg_logreg_step *step, int max_iter, void *user);

typedef struct tg_logreg_options {
    tg_solver solver;   /* TG_SOLVER_LBFGS */
    double l2;          /* penalty strength; < 0 (default): 1 / n_train, i.e. sklearn's C = 1 */
    double pos_weight;  /* weight of the positive rows in the BCE, as torch's pos_weight; 1 */
    int max_iter;       /* iterations (lbfgs, gd) or epochs (sgd, adam); 0 = the solver's
                         * default: 100 (sklearn's max_iter), 1000, 50, 50 */
    double tol;         /* lbfgs, gd: converged when max |gradient entry| <= tol; 1e-4 as
                         * sklearn (whose newer releases use this same mean-loss scale) */
    double lr;          /* step size; 0 = default: gd backtracking line search, sgd 0.01, adam
                         * 0.001. A positive lr makes gd take fixed steps. */
    int64_t batch_size; /* sgd, adam: rows per step, at most 2^53 (a model file keeps it
                         * exactly); 64 */
    double momentum;    /* sgd: 0.9 */
    double beta1, beta2, eps; /* adam: 0.9, 0.999, 1e-8 */
    int lbfgs_memory;         /* correction pairs kept by L-BFGS; 10, as scipy */
    bool standardize;         /* scale features to mean 0, std 1 (ddof 0) fitted on the training
                               * rows and stored in the model; true */
    bool fill_missing;        /* NaN features (tg_csv_read with TG_MISSING_KEEP) become the
                               * training rows' column mean, NaN left out, after the validation
                               * split: the validation rows get the same values and add nothing
                               * to them. The model keeps the values (fill); with standardize
                               * its mean, taken after filling, can differ from them in a
                               * float's last bit. Distributed: the mean over every rank's rows.
                               * false: a NaN is an error, as any non-finite feature */
    double val_split;         /* fraction of rows held out for validation, chosen by seed; 0 */
    int patience;             /* early stopping, with a validation split only: stop after this many
                               * iterations (epochs) without a new best validation loss and keep
                               * the best weights; 0 (default) = off */
    uint64_t seed;            /* validation split and shuffling; 0 */
    bool in_place;            /* the fit may overwrite X and y (standardize X and move validation
                               * rows) instead of working on a copy, even when it then fails; false */
    bool keep_history;        /* record every step in the result; true */
    bool metrics;             /* compute train/validation metrics at the end (one more pass over the
                               * rows and a sort for the AUC); true */
    tg_logreg_progress_fn progress; /* NULL */
    void *progress_user;
} tg_logreg_options;

/* Fills opt with the defaults listed above. */
void tg_logreg_options_init(tg_logreg_options *opt);

/* ---- Model ------------------------------------------------------------------------------- */
typedef struct tg_logreg_model {
    int64_t n_features;
    double *weights; /* n_features coefficients, on standardized features when mean/scale
                      * are set */
    double bias;
    double *mean, *scale;      /* n_features each, or both NULL (no standardization); a feature is
                                * used as (x - mean) / scale; scale is 1 for constant columns */
    char **feature_names;      /* n_features names, or NULL */
    char *label;               /* label column name, or NULL */
    tg_logreg_options options; /* settings the model was trained with (l2 resolved; the
                                * callback fields are cleared) */
    int64_t train_rows;        /* rows the model was fitted on */
    int iterations;            /* iterations the fit ran */
    char *positive; /* the label value read as 1 when the labels were two strings, or NULL;
                     * set it with tg_logreg_model_set_positive */
    double *fill;   /* n_features values the fit put in place of missing features
                     * (options.fill_missing: the training rows' column means, as floats), or
                     * NULL; kept with or without standardization, so data scored later can be
                     * filled as the training rows were */
} tg_logreg_model;

void tg_logreg_model_init(tg_logreg_model *m); /* an empty model */
void tg_logreg_model_free(tg_logreg_model *m); /* frees the contents and empties the model */
/* Copies n feature names (n must equal m->n_features, unless the model has no weights yet) and
 * the label name (NULL allowed) into the model; m->n_features becomes n. */
tg_status tg_logreg_model_set_names(tg_logreg_model *m, const char *const *names, int64_t n,
                                    const char *label);
/* Records (a copy of) the label value that meant 1, so that evaluating the model on the same
 * kind of file needs no reminder; NULL clears it. */
tg_status tg_logreg_model_set_positive(tg_logreg_model *m, const char *positive);

/* ---- Metrics ----------------------------------------------------------------------------- */
typedef struct tg_binary_metrics {
    int64_t n, tp, fp, tn, fn;              /* confusion matrix at threshold logit > 0 (p > 0.5) */
    double log_loss;                        /* mean BCE computed from the logits, unweighted */
    double accuracy, precision, recall, f1; /* 0 where undefined (as sklearn's zero_division);
                                             * with no rows (n = 0) accuracy and log_loss are
                                             * NaN */
    double auc; /* ROC AUC (ties count one half); NaN with a single class */
} tg_binary_metrics;

/* ---- Training ---------------------------------------------------------------------------- */
typedef enum {
    TG_STOP_CONVERGED = 0, /* max |gradient entry| <= tol (lbfgs, gd) */
    TG_STOP_MAX_ITER,      /* iteration limit reached */
    TG_STOP_EARLY,         /* validation loss stopped improving (best weights kept) */
    TG_STOP_NO_PROGRESS,   /* the line search found no decrease: float32 precision reached */
    TG_STOP_CALLBACK       /* the progress callback asked to stop */
} tg_stop_reason;

const char *tg_stop_reason_name(tg_stop_reason r); /* "converged", "max_iter", ... */

typedef struct tg_logreg_result {
    int iterations;      /* iterations (epochs) completed */
    int64_t evaluations; /* fused loss/gradient passes over the training rows */
    int64_t n_train, n_val;
    double l2; /* the penalty used (resolved when options.l2 < 0) */
    double train_loss, objective, val_loss, grad_max; /* at the returned weights */
    int best_iteration;                               /* the iteration whose weights were kept */
    tg_stop_reason stop;
    double seconds;
    tg_binary_metrics train_metrics, val_metrics; /* when options.metrics (val: n = 0 without
                                                   * a split) */
    tg_logreg_step *history; /* history_len steps (iteration 0 first) when keep_history */
    int history_len;
} tg_logreg_result;

void tg_logreg_result_free(tg_logreg_result *r); /* frees the history; NULL-safe */

/* Fits the model on X [n, d] and y [n] (values 0 or 1). Any strides are accepted (a
 * non-contiguous X is copied). model's numeric fields are replaced; its names are kept when
 * they match d. result may be NULL. On failure the model is left unchanged. */
tg_status tg_logreg_fit(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt,
                        tg_logreg_model *model, tg_logreg_result *result);

/* The objective and its gradient at (w, b) in one fused pass: *loss = mean BCE + l2/2 ||w||^2,
 * grad_w[d] and *grad_b (either may be NULL to skip). X is used as given (no standardization)
 * and so is y: soft targets in [0, 1] give the cross-entropy against them, and y is not checked
 * (tg_logreg_fit checks its labels once; this pass is the solvers' inner loop, and a check
 * would add a read of y to every call). This is the function the solvers minimize; it is
 * public for tests and benchmarks. */
tg_status tg_logreg_loss_grad(tg_tensor *X, tg_tensor *y, const double *w, double b, double l2,
                              double pos_weight, double *loss, double *grad_w, double *grad_b);

/* ---- Prediction -------------------------------------------------------------------------- */
/* X [rows, n_features] (raw features: the model standardizes them). New [rows] tensors. */
tg_tensor *tg_logreg_decision_function(const tg_logreg_model *m, tg_tensor *X); /* logits */
tg_tensor *tg_logreg_predict_proba(const tg_logreg_model *m, tg_tensor *X);     /* P(y = 1) */
tg_tensor *tg_logreg_predict(const tg_logreg_model *m, tg_tensor *X);           /* 0 or 1 */

/* ---- Metrics ----------------------------------------------------------------------------- */
/* y [n] with values 0/1 and logits z [n] (tg_logreg_decision_function). A NaN logit counts as
 * predicted 0 and makes log_loss and auc NaN. */
tg_status tg_binary_metrics_compute(tg_tensor *y, tg_tensor *logits, tg_binary_metrics *out);

/* ---- Model files (JSON) ------------------------------------------------------------------ */
/* Writes the model as JSON to a temporary file beside path and renames it over path, so a
 * failure never leaves a partial model behind. */
tg_status tg_logreg_save(const tg_logreg_model *m, const char *path);
/* Reads a model written by tg_logreg_save into m (initialized or empty; replaced on success,
 * untouched on failure). Every field is validated: errors say "FILE:LINE:COL: field 'NAME': ...",
 * at the field's value (its name, for an unknown or repeated field; the object lacking it, for
 * a missing one). path is a regular file of at most 1 GiB, or a pipe or socket (read to its end:
 * a shell's <(...), /dev/fd/N). */
tg_status tg_logreg_load(tg_logreg_model *m, const char *path);
/* The same on memory: a malloc'd NUL-terminated JSON text (NULL + error on failure), and a
 * parser of len bytes (name is used in messages, NULL: "<buffer>"). */
char *tg_logreg_to_json(const tg_logreg_model *m);
tg_status tg_logreg_from_json(tg_logreg_model *m, const char *name, const char *json, size_t len);

#ifdef __GNUC__
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif
