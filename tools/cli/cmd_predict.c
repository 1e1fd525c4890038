/* tapegrad predict: one prediction per CSV row on stdout. Also the model + data loading that
 * eval shares. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "read_all.h"

static const char USAGE[] =
    "usage: tapegrad predict --model M.json DATA.csv [--proba] [csv options]\n"
    "\n"
    "Writes one line per data row to stdout: the predicted class (0 or 1), or with --proba\n"
    "the probability of class 1. Columns are picked by the model's feature names (other\n"
    "columns, such as the label, are ignored). A model trained with --no-header names its\n"
    "features by their positions in the training file: read with --no-header, a file laid\n"
    "out like that one gives them by position, and a file of exactly the model's features,\n"
    "in the model's order, gives them in order.\n"
    "\n"
    "  --model M.json       a model written by tapegrad train\n"
    "  --proba              print P(y = 1) instead of the class\n"
    "  --missing error|mean  empty/NA/NaN fields: an error (default), or the model's\n"
    "                       training mean (drop is refused: every row gets a line)\n"
    "  --no-header, --skip-rows N, --delimiter C  as for train\n";

/* The reader takes a column spec that names no header column as a 0-based index. A model
 * trained on a file without a header has features "0", "1", ...; on a file with a header
 * these must not quietly pick columns by position. */
/* Whether the model's features are named "0", "1", ...: it was trained with --no-header. */
static bool named_by_position(const tg_logreg_model *m)
{
    char num[24];
    for (int64_t j = 0; j < m->n_features; j++) {
        snprintf(num, sizeof num, "%lld", (long long)j);
        if (strcmp(m->feature_names[j], num) != 0)
            return false;
    }
    return true;
}

static bool names_match(const char *cmd, const char *model_path, const char *data_path,
                        const tg_logreg_model *m, const tg_csv_data *data)
{
    for (int64_t j = 0; j < m->n_features; j++)
        if (strcmp(data->names[j], m->feature_names[j]) != 0) {
            cli_error(cmd, "%s: no column named '%s' (feature %lld of %s)%s", data_path,
                      m->feature_names[j], (long long)j, model_path,
                      named_by_position(m) ? "; a model trained with --no-header names columns "
                                             "by position: read this file with --no-header"
                                           : "");
            return false;
        }
    return true;
}

/* The reader's error when a selected feature column does not exist (csv.c column_not_found):
 * without a header, a position past the file's last column. */
static bool position_beyond_file(const char *msg)
{
    return strstr(msg, ": feature column '") && strstr(msg, "' not found; ");
}

/* All of a stream (a pipe, standard input) in memory: it can be read only once, and a file
 * without a header may take two reads (see cli_load_for_model). NULL with *err set on failure. */
static char *slurp(const char *path, size_t *len, int *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf = NULL;
    *err = fd < 0 ? errno : tg_read_all(fd, 0, SIZE_MAX, &buf, len);
    if (fd >= 0)
        close(fd);
    return buf;
}

static tg_status read_csv(const char *cmd, const char *path, const char *buf, size_t len,
                          const tg_csv_options *co, tg_csv_data *data)
{
    if (buf)
        return tg_csv_read_buffer(path, buf, len, co, data);
    cli_reading(cmd, path);
    tg_status st = tg_csv_read(path, co, data);
    cli_reading(NULL, NULL);
    return st;
}

bool cli_load_for_model(const char *cmd, const char *model_path, const char *data_path,
                        const cli_csv *csv, const char *label, tg_logreg_model *m,
                        tg_csv_data *data)
{
    data_path = cli_data_path(data_path);
    if (!cli_input_open(cmd, data_path))
        return false;
    if (!m->weights && tg_logreg_load(m, model_path) != TG_OK) {
        cli_lib_error(cmd, NULL, NULL);
        return false;
    }
    tg_csv_options co;
    tg_csv_options_init(&co);
    if (!cli_csv_options(cmd, csv, &co))
        return false;
    /* The model's columns by name; without a header the names are the training file's
     * positions, which select the same columns in a file laid out like it. */
    co.features = (const char *const *)m->feature_names;
    co.n_features = (int)m->n_features;
    co.no_label = label == NULL;
    co.label = label;
    if (!co.positive)
        co.positive = m->positive; /* the string labels the model was trained on, if any */
    /* --missing mean fills a gap with the training mean the model keeps, as the model saw it,
     * not with the mean of the rows being scored (one row would have none): the values the fit
     * filled with when it did (train --missing mean), else the standardization means. */
    float *fill = NULL;
    if (co.missing == TG_MISSING_MEAN) {
        const double *means = m->fill ? m->fill : m->mean;
        if (!means) {
            cli_error(cmd,
                      "%s keeps no training means (trained with --no-standardize and without "
                      "--missing mean), so --missing mean cannot fill gaps",
                      model_path);
            return false;
        }
        fill = malloc((size_t)m->n_features * sizeof *fill);
        if (!fill) {
            cli_error(cmd, "out of memory");
            return false;
        }
        for (int64_t j = 0; j < m->n_features; j++)
            fill[j] = (float)means[j];
        co.fill = fill;
    }
    struct stat sb;
    char *buf = NULL;
    size_t len = 0;
    if (csv->no_header && stat(data_path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        int err;
        buf = slurp(data_path, &len, &err);
        if (!buf) {
            free(fill);
            cli_error(cmd, "%s: cannot read: %s", data_path, strerror(err));
            return false;
        }
    }
    tg_status st = read_csv(cmd, data_path, buf, len, &co, data);
    if (st != TG_OK && csv->no_header && position_beyond_file(tg_last_error())) {
        /* fewer columns than the positions: a file of just the features, in order */
        co.features = NULL;
        co.n_features = 0;
        st = read_csv(cmd, data_path, buf, len, &co, data);
    }
    free(buf);
    free(fill);
    if (st != TG_OK) {
        cli_lib_error(cmd, NULL, NULL);
        return false;
    }
    if (data->n_features != m->n_features) {
        cli_error(cmd, "%s: %d feature column%s, but the model %s has %lld", data_path,
                  data->n_features, data->n_features == 1 ? "" : "s", model_path,
                  (long long)m->n_features);
        return false;
    }
    return csv->no_header || names_match(cmd, model_path, data_path, m, data);
}

/* Large outputs: format into one buffer and write it in big pieces. */
static bool print_predictions(const tg_tensor *p, bool proba)
{
    const float *v = tg_data((tg_tensor *)p);
    int64_t n = tg_numel(p);
    static char buf[1 << 16];
    size_t len = 0;
    for (int64_t i = 0; i < n; i++) {
        if (len > sizeof buf - 64) {
            if (fwrite(buf, 1, len, stdout) != len)
                return false;
            len = 0;
        }
        int w = proba ? snprintf(buf + len, 64, "%.9g\n", (double)v[i])
                      : snprintf(buf + len, 64, "%d\n", v[i] > 0.5f);
        len += (size_t)w;
    }
    return fwrite(buf, 1, len, stdout) == len;
}

int cmd_predict(int argc, char **argv)
{
    const char *pos[1], *model = NULL;
    int n_pos = 0;
    bool proba = false, help = false;
    cli_csv csv = {0};
    const cli_opt opts[] = {
        {"model", OPT_STRING, &model, 0, 0, NULL},
        {"proba", OPT_FLAG, &proba, 0, 0, NULL},
        CLI_CSV_OPTIONS(csv),
        {NULL, OPT_FLAG, NULL, 0, 0, NULL},
    };
    if (!cli_parse("predict", argc, argv, opts, pos, 1, &n_pos, &help))
        return EXIT_USAGE;
    if (!cli_csv_valid("predict", &csv))
        return EXIT_USAGE;
    if (help) {
        fputs(USAGE, stdout);
        return cli_stdout_done("predict") ? EXIT_OK : EXIT_FAIL;
    }
    if (!model || n_pos != 1) {
        cli_error("predict", "needs --model M.json and one DATA.csv (see tapegrad predict --help)");
        return EXIT_USAGE;
    }
    if (!cli_model_path_ok("predict", model))
        return EXIT_USAGE;
    if (csv.positive) {
        cli_error("predict", "--positive names a label value, and predict reads no labels "
                             "(it is an option of train and eval)");
        return EXIT_USAGE;
    }
    if (csv.missing && strcmp(csv.missing, "drop") == 0) {
        cli_error("predict", "--missing drop would leave rows without a prediction line; use "
                             "--missing mean (the model's training means) or fix the data");
        return EXIT_USAGE;
    }
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_csv_data data;
    memset(&data, 0, sizeof data);
    int rc = EXIT_FAIL;
    if (cli_load_for_model("predict", model, pos[0], &csv, NULL, &m, &data)) {
        tg_tensor *p = proba ? tg_logreg_predict_proba(&m, data.X) : tg_logreg_predict(&m, data.X);
        if (!p)
            cli_lib_error("predict", NULL, NULL);
        else {
            bool printed = print_predictions(p, proba);
            if (cli_stdout_done("predict") && printed) /* flushed and closed even after a failure */
                rc = EXIT_OK;
        }
        tg_release(p);
    }
    tg_csv_data_free(&data);
    tg_logreg_model_free(&m);
    return rc;
}
