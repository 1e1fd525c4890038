/* tapegrad train: CSV in, logistic-regression model out (plus curves and a summary). */
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "json_out.h"

static const char USAGE[] =
    "usage: tapegrad train [DATA.csv] [--label COL] [options]\n"
    "\n"
    "Fits a logistic regression (L2-penalized, intercept not penalized) and writes the model.\n"
    "Without DATA it trains on the bundled synthetic data/placement.csv (label 'placement'),\n"
    "looked up in $TAPEGRAD_DATA_DIR when set, else where tapegrad was built or installed.\n"
    "\n"
    "data:\n"
    "  --label COL          label column, name or 0-based index (default: the last\n"
    "                       column); values 0/1 or true/false\n"
    "  --features a,b,...   feature columns, names or 0-based indices, a header name\n"
    "                       winning over an index (default: every other column)\n"
    "  --no-header          the first row is data; columns are named 0, 1, ...\n"
    "  --skip-rows N        lines to skip before the header\n"
    "  --delimiter C        field separator: one character, tab or space (default:\n"
    "                       detect , ; tab or spaces)\n"
    "  --positive VALUE     label value that means 1 when labels are two strings\n"
    "  --missing M          empty/NA/NaN fields: error (default), drop the row, or mean\n"
    "                       (the column's mean over the training rows, not --val-split's;\n"
    "                       the model keeps it, and predict/eval fill with it)\n"
    "training:\n"
    "  --solver S           lbfgs (default), gd, sgd or adam\n"
    "  --epochs N           iteration limit (lbfgs 100, gd 1000, sgd/adam 50 epochs)\n"
    "  --lr F               step size of gd, sgd and adam (gd: a fixed step instead of\n"
    "                       its line search; sgd 0.01, adam 0.001)\n"
    "  --batch-size N       rows per step for sgd/adam (64)\n"
    "  --l2 F               penalty (l2/2)*|w|^2 on the mean loss (default 1/n, which is\n"
    "                       scikit-learn's C=1)\n"
    "  --pos-weight F       weight of positive rows in the loss (1)\n"
    "  --tol F              lbfgs/gd: stop when no gradient entry exceeds F (1e-4)\n"
    "  --no-standardize     train on raw features (default: mean 0, std 1)\n"
    "  --val-split F        hold out this fraction of rows, 0 to 0.99, for validation (0)\n"
    "  --patience N         early stopping: stop after N iterations without a better\n"
    "                       validation loss, keep the best weights (needs --val-split)\n"
    "  --seed N             seeds --val-split and the sgd/adam shuffles (0)\n"
    "  --threads N          worker threads (default: all CPUs)\n"
    "output:\n"
    "  --model OUT.json     write the model (atomically: never a partial file)\n"
    "  --history OUT.csv    loss per iteration as CSV\n"
    "  --plot OUT.svg       loss per iteration as an SVG chart\n"
    "  --json               print one JSON object with the results on stdout\n"
    "  --quiet              no progress bar and no summary\n"
    "distributed (MPI):\n"
    "  --distributed        train across the ranks of `mpirun -np K tapegrad train ...`:\n"
    "                       each rank reads its own part of DATA, the ranks sum their loss\n"
    "                       and gradient at every step, rank 0 writes the outputs; the model\n"
    "                       equals single-process training (solvers lbfgs and gd)\n";

typedef struct {
    const char *pos[1];
    int n_pos;
    const char *label, *features, *solver, *model, *history, *plot;
    cli_csv csv;
    int epochs, threads, patience;
    int64_t batch_size, seed;
    double lr, l2, pos_weight, val_split, tol;
    bool l2_seen, lr_seen, batch_seen, tol_seen, seed_seen, no_standardize, json, quiet,
        distributed;
    int rank; /* 0 unless distributed */
} train_args;

/* The data directory of the prefix this executable is installed in, found from its own path
 * (TG_DATA_FROM_BIN is relative to the bin directory), so that an install with another
 * --prefix than the configured one, or a moved install, still finds its data. "" when the
 * executable's path is unknown. */
static const char *installed_beside(char *buf, size_t cap)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return "";
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    if (!slash)
        return "";
    *slash = '\0';
    int w = snprintf(buf, cap, "%s/%s", exe, TG_DATA_FROM_BIN);
    return w > 0 && (size_t)w < cap ? buf : "";
}

/* The bundled data set: $TAPEGRAD_DATA_DIR, the prefix the command is installed in, the source
 * tree (a command run from its build directory), then the configured install prefix. */
static const char *bundled_data(void)
{
    static char path[4096];
    char beside[4096];
    const char *dirs[] = {getenv("TAPEGRAD_DATA_DIR"), installed_beside(beside, sizeof beside),
                          TG_DATA_DIR_BUILD, TG_DATA_DIR_INSTALL};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        if (!dirs[i] || !*dirs[i])
            continue;
        int w = snprintf(path, sizeof path, "%s/placement.csv", dirs[i]);
        if (w > 0 && (size_t)w < sizeof path && access(path, R_OK) == 0)
            return path;
    }
    return NULL;
}

static bool parse_train(int argc, char **argv, train_args *a, bool *help)
{
    tg_logreg_options d;
    tg_logreg_options_init(&d);
    memset(a, 0, sizeof *a);
    a->epochs = d.max_iter;
    a->batch_size = d.batch_size;
    a->lr = d.lr;
    a->pos_weight = d.pos_weight;
    a->tol = d.tol;
    a->seed = (int64_t)d.seed;
    const double big = 9007199254740992.0;
    const cli_opt opts[] = {
        {"label", OPT_STRING, &a->label, 0, 0, NULL},
        {"features", OPT_STRING, &a->features, 0, 0, NULL},
        CLI_CSV_OPTIONS(a->csv),
        {"solver", OPT_STRING, &a->solver, 0, 0, NULL},
        {"epochs", OPT_INT, &a->epochs, 1, 1e9, NULL},
        {"lr", OPT_DOUBLE, &a->lr, 1e-12, 1e6, &a->lr_seen},
        {"batch-size", OPT_INT64, &a->batch_size, 1, big, &a->batch_seen},
        {"l2", OPT_DOUBLE, &a->l2, 0, 1e12, &a->l2_seen},
        {"pos-weight", OPT_DOUBLE, &a->pos_weight, 1e-12, 1e12, NULL},
        {"tol", OPT_DOUBLE, &a->tol, 0, 1e12, &a->tol_seen},
        {"no-standardize", OPT_FLAG, &a->no_standardize, 0, 0, NULL},
        {"val-split", OPT_DOUBLE, &a->val_split, 0, 0.99, NULL},
        {"patience", OPT_INT, &a->patience, 0, 1e9, NULL},
        {"seed", OPT_INT64, &a->seed, 0, big, &a->seed_seen},
        {"threads", OPT_INT, &a->threads, 1, 1024, NULL},
        {"model", OPT_STRING, &a->model, 0, 0, NULL},
        {"history", OPT_STRING, &a->history, 0, 0, NULL},
        {"plot", OPT_STRING, &a->plot, 0, 0, NULL},
        {"json", OPT_FLAG, &a->json, 0, 0, NULL},
        {"quiet", OPT_FLAG, &a->quiet, 0, 0, NULL},
        {"distributed", OPT_FLAG, &a->distributed, 0, 0, NULL},
        {NULL, OPT_FLAG, NULL, 0, 0, NULL},
    };
    bool ok = cli_parse("train", argc, argv, opts, a->pos, 1, &a->n_pos, help);
    cli_trim_name(&a->label);
    return ok;
}

static bool fit_options(const train_args *a, tg_logreg_options *o)
{
    tg_logreg_options_init(o);
    if (a->solver && tg_solver_parse(a->solver, &o->solver) != TG_OK) {
        cli_lib_error("train", "--solver: ", NULL);
        return false;
    }
    o->max_iter = a->epochs;
    o->lr = a->lr;
    o->batch_size = a->batch_size;
    if (a->l2_seen)
        o->l2 = a->l2;
    o->pos_weight = a->pos_weight;
    o->tol = a->tol;
    o->standardize = !a->no_standardize;
    o->val_split = a->val_split;
    o->patience = a->patience;
    o->seed = (uint64_t)a->seed;
    o->in_place = true; /* the loaded table is ours: standardize it without a 2nd copy */
    /* --missing mean: the reader leaves the gaps and the fit fills them once the validation
     * rows are set apart, so their values do not leak into the training means. */
    o->fill_missing = a->csv.missing && strcmp(a->csv.missing, "mean") == 0;
    if (a->patience > 0 && a->val_split <= 0.0) {
        cli_error("train", "--patience needs a validation split (--val-split F)");
        return false;
    }
    /* A setting the solver would not use is refused rather than recorded in the model as if
     * it had shaped it. */
    if (a->lr_seen && o->solver == TG_SOLVER_LBFGS) {
        cli_error("train", "--lr does not apply to the lbfgs solver (its line search picks the "
                           "steps); use it with gd, sgd or adam");
        return false;
    }
    if (a->tol_seen && (o->solver == TG_SOLVER_SGD || o->solver == TG_SOLVER_ADAM)) {
        cli_error("train",
                  "--tol applies to the lbfgs and gd solvers, not %s (which run "
                  "--epochs epochs)",
                  tg_solver_name(o->solver));
        return false;
    }
    if (a->seed_seen && a->val_split <= 0.0 &&
        (o->solver == TG_SOLVER_LBFGS || o->solver == TG_SOLVER_GD)) {
        cli_error("train",
                  "--seed has nothing to seed: %s reads every row in order; it seeds "
                  "--val-split and the sgd/adam shuffles",
                  tg_solver_name(o->solver));
        return false;
    }
    if (a->batch_seen && o->solver != TG_SOLVER_SGD && o->solver != TG_SOLVER_ADAM) {
        cli_error("train", "--batch-size applies to the sgd and adam solvers, not %s",
                  tg_solver_name(o->solver));
        return false;
    }
    /* Mini-batches and a held-out split would shuffle rows across the ranks. */
    if (a->distributed && o->solver != TG_SOLVER_LBFGS && o->solver != TG_SOLVER_GD) {
        cli_error("train", "--distributed supports the lbfgs and gd solvers, not %s",
                  tg_solver_name(o->solver));
        return false;
    }
    if (a->distributed && a->val_split > 0.0) {
        cli_error("train", "--distributed does not support --val-split");
        return false;
    }
    return true;
}

/* ---- loading ---------------------------------------------------------------------------- */

typedef struct {
    cli_progress *pg;
    const char *path;
    double mb;
} load_progress;

static void on_rows(int64_t done, int64_t total, void *user)
{
    load_progress *lp = user;
    cli_progress_rows(lp->pg, lp->path, lp->mb, done, total);
}

static bool load(const train_args *a, const char *path, cli_progress *pg, tg_csv_data *data)
{
    if (!cli_input_open("train", path))
        return false;
    tg_csv_options co;
    tg_csv_options_init(&co);
    if (!cli_csv_options("train", &a->csv, &co))
        return false;
    if (co.missing == TG_MISSING_MEAN)
        co.missing = TG_MISSING_KEEP; /* the fit fills (fit_options) */
    co.label = a->label;
    int nf = 0;
    char **feats = NULL;
    if (a->features) {
        feats = cli_split_list(a->features, &nf);
        if (!feats) {
            cli_error("train", "out of memory");
            return false;
        }
        co.features = (const char *const *)feats;
        co.n_features = nf;
    }
    struct stat sb;
    double mb = stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : 0.0;
    cli_progress_status(pg, "reading %s (%.1f MB)...", path, mb);
    load_progress lp = {pg, path, mb};
    co.progress = on_rows;
    co.progress_user = &lp;
    cli_reading("train", path);
    tg_status st =
        a->distributed ? tg_dist_csv_read(path, &co, data) : tg_csv_read(path, &co, data);
    cli_reading(NULL, NULL);
    cli_free_list(feats);
    cli_progress_done(pg);
    /* The same hint in both modes: a distributed error reads as the single-process one. */
    const char *hint = st != TG_OK && !a->label && strstr(tg_last_error(), "label")
                           ? "the label is the last column unless --label names another"
                           : NULL;
    if (st != TG_OK && a->distributed)
        cli_dist_error("train", NULL, hint);
    else if (st != TG_OK)
        cli_lib_error("train", NULL, hint);
    return st == TG_OK;
}

/* Both classes must be present: with one class there is nothing to separate. rows: of every
 * rank (data->rows when not distributed). */
static bool check_classes(const char *path, const tg_csv_data *data, bool dist, int64_t rows)
{
    const float *y = tg_data(data->y);
    int64_t pos = 0;
    for (int64_t i = 0; i < data->rows; i++)
        pos += y[i] > 0.5f;
    if (dist)
        pos = cli_dist_sum(pos);
    if (pos > 0 && pos < rows)
        return true;
    cli_error("train",
              "%s: the label column '%s' has only one class (%s) in %lld row%s; "
              "need both 0 and 1",
              path, data->label_name ? data->label_name : "?", pos ? "1" : "0", (long long)rows,
              rows == 1 ? "" : "s");
    return false;
}

/* After a failed --missing mean fit: a feature column with no value in any row had no mean to
 * fill it with. Said by the column's name (the fit can only give its index in X); true when so.
 * Collective when distributed: every rank's fit failed alike. */
static bool said_empty_column(const char *path, const tg_csv_data *data, bool dist)
{
    const int64_t d = data->n_features;
    const float *X = tg_data(data->X); /* the fit moved rows but filled nothing: counts hold */
    for (int64_t j = 0; j < d; j++) {
        double seen = 0.0; /* one column at a time: nothing to allocate on this path */
        for (int64_t i = 0; i < data->rows; i++)
            seen += !isnan(X[i * d + j]);
        if (dist)
            tg_dist_allreduce_sum(&seen, 1);
        if (seen == 0.0) {
            cli_error("train", "%s: column '%s' has no values to take the mean of (--missing mean)",
                      path, data->names[j]);
            return true;
        }
    }
    return false;
}

/* The model file is JSON, so the names it keeps must be UTF-8: a header in Latin-1 would make
 * a model file that JSON readers refuse. Checked before training, not after it. */
static bool names_utf8(const char *path, const tg_csv_data *data, const char *positive)
{
    if (positive && !cli_utf8_valid(positive)) { /* kept in the model as the label's 1 */
        cli_error("train", "the --positive value is not valid UTF-8, which the model file (JSON) "
                           "needs; convert the file, e.g. iconv -f latin1 -t utf-8");
        return false;
    }
    const char *bad =
        data->label_name && !cli_utf8_valid(data->label_name) ? data->label_name : NULL;
    for (int j = 0; !bad && j < data->n_features; j++)
        if (!cli_utf8_valid(data->names[j]))
            bad = data->names[j];
    if (!bad)
        return true;
    char *shown = cli_utf8_clean(bad);
    cli_error("train",
              "%s: the column name '%s' is not valid UTF-8, which the model file (JSON) needs; "
              "convert the file, e.g. iconv -f latin1 -t utf-8",
              path, shown ? shown : "?");
    free(shown);
    return false;
}

/* ---- training --------------------------------------------------------------------------- */

static int on_step(const tg_logreg_step *s, int max_iter, void *user)
{
    cli_progress_iter(user, s->iteration, max_iter, s->train_loss, s->val_loss, false);
    return 0;
}

/* ---- outputs ---------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    const tg_csv_data *data;
    int64_t rows, rows_dropped; /* of every rank */
    const tg_logreg_model *model;
    const tg_logreg_result *r;
    double seconds_load, seconds_train;
} summary;

static bool print_json(const train_args *a, const summary *s)
{
    const tg_logreg_result *r = s->r;
    bool val = r->n_val > 0;
    json_out j = json_begin();
    json_str(&j, "data", s->path);
    json_num(&j, "rows", (double)s->rows);
    json_num(&j, "rows_dropped", (double)s->rows_dropped);
    json_num(&j, "features", (double)s->data->n_features);
    json_str(&j, "label", s->data->label_name ? s->data->label_name : "");
    json_num(&j, "train_rows", (double)r->n_train);
    json_num(&j, "val_rows", (double)r->n_val);
    json_str(&j, "solver", tg_solver_name(s->model->options.solver));
    json_num(&j, "l2", r->l2);
    json_num(&j, "iterations", r->iterations);
    json_num(&j, "evaluations", (double)r->evaluations);
    json_str(&j, "stop", tg_stop_reason_name(r->stop));
    json_num(&j, "objective", r->objective);
    json_num(&j, "grad_max", r->grad_max);
    json_num(&j, "train_log_loss", r->train_metrics.log_loss);
    json_num(&j, "train_accuracy", r->train_metrics.accuracy);
    json_num(&j, "train_auc", r->train_metrics.auc);
    json_num(&j, "val_log_loss", val ? r->val_metrics.log_loss : NAN);
    json_num(&j, "val_accuracy", val ? r->val_metrics.accuracy : NAN);
    json_num(&j, "val_auc", val ? r->val_metrics.auc : NAN);
    /* auc: on held-out rows when there are some, else on the training rows */
    json_num(&j, "auc", val ? r->val_metrics.auc : r->train_metrics.auc);
    json_num(&j, "seconds_load", s->seconds_load);
    json_num(&j, "seconds_train", s->seconds_train);
    json_num(&j, "threads", tg_get_num_threads());
    json_num(&j, "ranks", a->distributed ? tg_dist_size() : 1);
    json_str(&j, "isa", tg_isa());
    json_str(&j, "model", a->model); /* null without --model */
    return json_print(&j);
}

static void print_metrics_line(const char *name, const tg_binary_metrics *m)
{
    printf("%-11s log loss %.6f  accuracy %.4f  precision %.4f  recall %.4f  F1 %.4f  "
           "AUC %.4f\n",
           name, m->log_loss, m->accuracy, m->precision, m->recall, m->f1, m->auc);
}

static void print_summary(const train_args *a, const summary *s)
{
    const tg_logreg_result *r = s->r;
    const tg_logreg_model *m = s->model;
    printf("data        %s: %lld row%s x %lld feature%s -> '%s' (read in %.3f s)\n", s->path,
           (long long)s->rows, s->rows == 1 ? "" : "s", (long long)s->data->n_features,
           s->data->n_features == 1 ? "" : "s", s->data->label_name ? s->data->label_name : "?",
           s->seconds_load);
    if (s->rows_dropped > 0)
        printf("            %lld row%s with missing values dropped\n", (long long)s->rows_dropped,
               s->rows_dropped == 1 ? "" : "s");
    if (a->distributed)
        printf("ranks       %d (MPI), %d thread%s each\n", tg_dist_size(), tg_get_num_threads(),
               tg_get_num_threads() == 1 ? "" : "s");
    if (r->n_val > 0)
        printf("split       %lld training row%s, %lld validation row%s\n", (long long)r->n_train,
               r->n_train == 1 ? "" : "s", (long long)r->n_val, r->n_val == 1 ? "" : "s");
    static const char *const how[] = {"converged", "stopped at the iteration limit",
                                      "stopped early (validation loss)", "stopped (no progress)",
                                      "stopped by the callback"};
    bool epochs = m->options.solver == TG_SOLVER_SGD || m->options.solver == TG_SOLVER_ADAM;
    printf("solver      %s, l2 %.4g: %s after %d %s%s", tg_solver_name(m->options.solver), r->l2,
           (unsigned)r->stop < 5 ? how[r->stop] : "stopped", r->iterations,
           epochs ? "epoch" : "iteration", r->iterations == 1 ? "" : "s");
    if (!epochs)
        printf(" (%lld loss+gradient passes)", (long long)r->evaluations);
    printf(", %.3f s\n", s->seconds_train);
    print_metrics_line("train", &r->train_metrics);
    if (r->n_val > 0)
        print_metrics_line("validation", &r->val_metrics);
    if (m->n_features <= 20) {
        printf("weights     (on %s features)\n", m->mean ? "standardized" : "raw");
        for (int64_t j = 0; j < m->n_features; j++)
            printf("  %-20s % .6f\n", m->feature_names ? m->feature_names[j] : "?", m->weights[j]);
        printf("  %-20s % .6f\n", "(intercept)", m->bias);
    }
    if (a->model)
        printf("model       %s\n", a->model);
}

/* The loss chart, titled with the data file's name. */
static char *plot_svg(const tg_logreg_result *r, const char *path, size_t *len)
{
    char title[512];
    const char *base = strrchr(path, '/');
    /* %.200s: a long file name is cut, not the chart */
    snprintf(title, sizeof title, "tapegrad train %.200s: log loss per iteration",
             base ? base + 1 : path);
    return cli_history_svg(r->history, r->history_len, title, len);
}

/* Curves, model and summary: rank 0's job in a distributed run (every rank has the model).
 * The run writes all its files or none: each is staged in a temporary file first, and they are
 * renamed into place only once every one of them and standard output have worked, the model
 * last. So a failed --plot leaves no --history, and a failed run (exit 1) never leaves a model
 * behind. */
static int write_outputs(const train_args *a, const summary *s, tg_logreg_model *m)
{
    const tg_csv_data *data = s->data;
    if (tg_logreg_model_set_names(m, (const char *const *)data->names, data->n_features,
                                  data->label_name) != TG_OK ||
        tg_logreg_model_set_positive(m, a->csv.positive) != TG_OK) {
        cli_lib_error("train", NULL, NULL);
        return EXIT_FAIL;
    }
    enum { HISTORY, PLOT, MODEL, N_FILES };
    cli_file files[N_FILES] = {{a->history}, {a->plot}, {a->model}};
    char *text[N_FILES] = {NULL, NULL, NULL};
    size_t len[N_FILES] = {0, 0, 0};
    int rc = EXIT_FAIL;
    if (a->history &&
        !(text[HISTORY] = cli_history_csv(s->r->history, s->r->history_len, &len[HISTORY]))) {
        cli_error("train", "%s: out of memory", a->history);
        goto done;
    }
    if (a->plot && !(text[PLOT] = plot_svg(s->r, s->path, &len[PLOT]))) {
        cli_error("train", "%s: out of memory", a->plot);
        goto done;
    }
    if (a->model) {
        text[MODEL] = tg_logreg_to_json(m);
        if (!text[MODEL]) {
            cli_lib_error("train", NULL, NULL);
            goto done;
        }
        len[MODEL] = strlen(text[MODEL]);
    }
    for (int i = 0; i < N_FILES; i++) {
        files[i].data = text[i];
        files[i].len = len[i];
    }
    /* A reader that went away (`| head`) makes writes to stdout fail with EPIPE instead of
     * killing the process with the staged files still on disk. */
    (void)signal(SIGPIPE, SIG_IGN);
    if (!cli_files_stage("train", files, N_FILES))
        goto done;
    bool printed = true;
    if (a->json && !print_json(a, s)) {
        cli_error("train", "cannot print the JSON summary");
        printed = false;
    }
    if (printed && !a->json && !a->quiet)
        print_summary(a, s);
    if (printed && cli_stdout_done("train") && cli_files_commit("train", files, N_FILES))
        rc = EXIT_OK;
    cli_files_discard(files, N_FILES); /* what a failure left staged */
done:
    for (int i = 0; i < N_FILES; i++)
        free(text[i]);
    return rc;
}

static int run(const train_args *a, const char *path, tg_csv_data *data, tg_logreg_model *m)
{
    cli_progress pg;
    cli_progress_init(&pg, a->quiet || a->rank != 0);
    tg_logreg_options o;
    if (!fit_options(a, &o))
        return EXIT_USAGE;
    double t0 = cli_now();
    if (!load(a, path, &pg, data))
        return EXIT_FAIL;
    int64_t rows = a->distributed ? cli_dist_sum(data->rows) : data->rows;
    int64_t dropped = a->distributed ? cli_dist_sum(data->rows_dropped) : data->rows_dropped;
    if (!check_classes(path, data, a->distributed, rows) ||
        (a->model && !names_utf8(path, data, a->csv.positive)))
        return EXIT_FAIL;
    double t1 = cli_now();
    o.progress = on_step;
    o.progress_user = &pg;
    tg_logreg_result r;
    tg_status st = a->distributed ? tg_logreg_fit_distributed(data->X, data->y, &o, m, &r)
                                  : tg_logreg_fit(data->X, data->y, &o, m, &r);
    cli_progress_done(&pg);
    if (st == TG_EINVAL && o.fill_missing && said_empty_column(path, data, a->distributed))
        return EXIT_FAIL;
    if (st != TG_OK) {
        /* EINVAL: a property of the data (classes in the split, overflow), named after it */
        char *context = st == TG_EINVAL ? malloc(strlen(path) + 3) : NULL;
        if (context)
            sprintf(context, "%s: ", path);
        if (a->distributed)
            cli_dist_error("train", context, NULL);
        else
            cli_lib_error("train", context, NULL);
        free(context);
        return EXIT_FAIL;
    }
    /* Not an error (the start may be the optimum, as far as float32 can tell), but a model of
     * zeros from a solver that never moved is worth a line: usually the features' scale. */
    if (r.stop == TG_STOP_NO_PROGRESS && r.iterations == 0)
        cli_error("train",
                  "warning: %s made no progress from its starting point (max gradient %.3g), so "
                  "the weights are all 0%s",
                  tg_solver_name(o.solver), r.grad_max,
                  a->no_standardize ? "; train without --no-standardize" : "");
    summary s = {path, data, rows, dropped, m, &r, t1 - t0, cli_now() - t1};
    int rc = a->rank == 0 ? write_outputs(a, &s, m) : EXIT_OK;
    tg_logreg_result_free(&r);
    return rc;
}

/* Where a write to a path lands (tg_replace_destination: through a symlink), known by the file
 * itself when it exists, else by its directory and name. */
typedef struct {
    bool exists, regular;
    dev_t dev;
    ino_t ino;
    char name[256]; /* in the directory dev/ino, when !exists */
} file_id;

static bool file_id_of(const char *path, file_id *id)
{
    char *dest = tg_replace_destination(path);
    if (!dest)
        return false;
    struct stat st;
    memset(id, 0, sizeof *id);
    bool ok = true;
    if (stat(dest, &st) == 0) {
        id->exists = true;
        id->regular = S_ISREG(st.st_mode);
    } else {
        char *slash = strrchr(dest, '/');
        const char *name = slash ? slash + 1 : dest;
        int w = snprintf(id->name, sizeof id->name, "%s", name);
        if (slash)
            slash[1] = '\0'; /* dest becomes its directory */
        ok = w >= 0 && (size_t)w < sizeof id->name && stat(slash ? dest : ".", &st) == 0;
    }
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    free(dest);
    return ok;
}

/* Whether two paths name one file: one regular file (devices such as /dev/stdout may be named
 * twice), or one name in one directory for a file not there yet. */
static bool same_file(const char *p, const char *q)
{
    file_id a, b;
    if (!file_id_of(p, &a) || !file_id_of(q, &b))
        return strcmp(p, q) == 0; /* a missing directory: writing will fail anyway */
    if (a.exists != b.exists || a.dev != b.dev || a.ino != b.ino)
        return false;
    return a.exists ? a.regular : strcmp(a.name, b.name) == 0;
}

/* An output that names another output or the data would replace it without a word. */
static bool outputs_apart(const train_args *a, const char *data)
{
    const char *flag[] = {"--model", "--history", "--plot"};
    const char *path[] = {a->model, a->history, a->plot};
    for (int i = 0; i < 3; i++) {
        if (!path[i])
            continue;
        /* "-" reads standard input as DATA; as an output it would be a file named "-". */
        if (strcmp(path[i], "-") == 0) {
            cli_error("train", "%s -: standard output carries the summary; give a file name",
                      flag[i]);
            return false;
        }
        if (same_file(path[i], data)) {
            cli_error("train", "%s %s would replace the data file", flag[i], path[i]);
            return false;
        }
        for (int j = i + 1; j < 3; j++)
            if (path[j] && same_file(path[i], path[j])) {
                cli_error("train", "%s and %s name the same file, %s", flag[i], flag[j], path[j]);
                return false;
            }
    }
    return true;
}

/* The command once MPI is up (when distributed). */
static int train(int argc, char **argv)
{
    train_args a;
    bool help = false;
    if (!parse_train(argc, argv, &a, &help) || !cli_csv_valid("train", &a.csv))
        return EXIT_USAGE;
    a.rank = a.distributed ? tg_dist_rank() : 0;
    if (help) {
        if (a.rank == 0)
            fputs(USAGE, stdout);
        return cli_stdout_done("train") ? EXIT_OK : EXIT_FAIL;
    }
    const char *path = a.n_pos > 0 ? cli_data_path(a.pos[0]) : NULL;
    if (!path) {
        path = bundled_data();
        if (!path) {
            cli_error("train", "no DATA.csv given and the bundled placement.csv was not found "
                               "(set TAPEGRAD_DATA_DIR)");
            return EXIT_FAIL;
        }
        if (!a.label)
            a.label = "placement";
    }
    if (!outputs_apart(&a, path))
        return EXIT_USAGE;
    if (a.threads > 0)
        tg_set_num_threads(a.threads);
    tg_csv_data data;
    memset(&data, 0, sizeof data);
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    int rc = run(&a, path, &data, &m);
    tg_logreg_model_free(&m);
    tg_csv_data_free(&data);
    return rc;
}

int cmd_train(int argc, char **argv)
{
    /* MPI starts before the options are parsed, so that only rank 0 reports a bad one. */
    if (!cli_dist_wanted(argc, argv))
        return train(argc, argv);
    int rc = cli_dist_begin("train");
    return rc != EXIT_OK ? rc : cli_dist_end(train(argc, argv));
}
