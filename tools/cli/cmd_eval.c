/* tapegrad eval: a model's metrics on a labelled CSV file. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "json_out.h"

static const char USAGE[] =
    "usage: tapegrad eval --model M.json DATA.csv [--label COL] [--json] [csv options]\n"
    "\n"
    "Prints log loss, accuracy, precision, recall, F1, ROC AUC and the confusion matrix of\n"
    "the model on DATA (class 1 when the logit w.x + b > 0, i.e. P(y = 1) > 0.5 before it\n"
    "is rounded to a float). Precision, recall and F1 are 0 where they are undefined; ROC\n"
    "AUC is nan (null with --json) when DATA has one class only.\n"
    "\n"
    "  --model M.json       a model written by tapegrad train\n"
    "  --label COL          label column (default: the model's label)\n"
    "  --json               print one JSON object instead of the table\n"
    "  --missing M          empty/NA/NaN fields: error (default), drop the row (the count is\n"
    "                       printed), or mean (the model's training mean)\n"
    "  --no-header, --skip-rows N, --delimiter C, --positive VALUE  as for train\n";

static bool print_json(const char *path, const tg_binary_metrics *m, int64_t dropped)
{
    json_out j = json_begin();
    json_str(&j, "data", path);
    json_num(&j, "rows", (double)m->n);
    json_num(&j, "rows_dropped", (double)dropped);
    json_num(&j, "log_loss", m->log_loss);
    json_num(&j, "accuracy", m->accuracy);
    json_num(&j, "precision", m->precision);
    json_num(&j, "recall", m->recall);
    json_num(&j, "f1", m->f1);
    json_num(&j, "auc", m->auc);
    json_out c = json_object(&j, "confusion");
    json_num(&c, "tn", (double)m->tn);
    json_num(&c, "fp", (double)m->fp);
    json_num(&c, "fn", (double)m->fn);
    json_num(&c, "tp", (double)m->tp);
    json_merge(&j, &c);
    return json_print(&j);
}

static void print_table(const char *path, const char *label, const tg_binary_metrics *m,
                        int64_t dropped)
{
    printf("data       %s: %lld row%s, label '%s'", path, (long long)m->n, m->n == 1 ? "" : "s",
           label);
    if (dropped > 0)
        printf(" (%lld row%s with missing values dropped)", (long long)dropped,
               dropped == 1 ? "" : "s");
    printf("\n");
    printf("log loss   %.6f\n", m->log_loss);
    printf("accuracy   %.4f\n", m->accuracy);
    printf("precision  %.4f\n", m->precision);
    printf("recall     %.4f\n", m->recall);
    printf("F1         %.4f\n", m->f1);
    printf("ROC AUC    %.4f\n", m->auc);
    printf("confusion matrix (rows: actual, columns: predicted)\n");
    printf("              pred 0      pred 1\n");
    printf("  actual 0  %10lld  %10lld\n", (long long)m->tn, (long long)m->fp);
    printf("  actual 1  %10lld  %10lld\n", (long long)m->fn, (long long)m->tp);
}

static int evaluate(const char *path, const char *label, const tg_logreg_model *m,
                    const tg_csv_data *data, bool json)
{
    tg_tensor *z = tg_logreg_decision_function(m, data->X);
    tg_binary_metrics bm;
    if (!z || tg_binary_metrics_compute(data->y, z, &bm) != TG_OK) {
        cli_lib_error("eval", NULL, NULL);
        tg_release(z);
        return EXIT_FAIL;
    }
    tg_release(z);
    if (json) {
        if (!print_json(path, &bm, data->rows_dropped)) {
            cli_error("eval", "out of memory");
            return EXIT_FAIL;
        }
    } else {
        /* the column's name, where --label gave an index */
        print_table(path, data->label_name ? data->label_name : label, &bm, data->rows_dropped);
    }
    return cli_stdout_done("eval") ? EXIT_OK : EXIT_FAIL;
}

int cmd_eval(int argc, char **argv)
{
    const char *pos[1], *model = NULL, *label = NULL;
    int n_pos = 0;
    bool json = false, help = false;
    cli_csv csv = {0};
    const cli_opt opts[] = {
        {"model", OPT_STRING, &model, 0, 0, NULL},
        {"label", OPT_STRING, &label, 0, 0, NULL},
        {"json", OPT_FLAG, &json, 0, 0, NULL},
        CLI_CSV_OPTIONS(csv),
        {NULL, OPT_FLAG, NULL, 0, 0, NULL},
    };
    if (!cli_parse("eval", argc, argv, opts, pos, 1, &n_pos, &help))
        return EXIT_USAGE;
    cli_trim_name(&label);
    if (!cli_csv_valid("eval", &csv))
        return EXIT_USAGE;
    if (help) {
        fputs(USAGE, stdout);
        return cli_stdout_done("eval") ? EXIT_OK : EXIT_FAIL;
    }
    if (!model || n_pos != 1) {
        cli_error("eval", "needs --model M.json and one DATA.csv (see tapegrad eval --help)");
        return EXIT_USAGE;
    }
    if (!cli_model_path_ok("eval", model))
        return EXIT_USAGE;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_csv_data data;
    memset(&data, 0, sizeof data);
    int rc = EXIT_FAIL;
    /* The label: --label, else the one the model was trained on. Loading the model first
     * tells us which; cli_load_for_model then keeps it. */
    if (!label && tg_logreg_load(&m, model) != TG_OK) {
        cli_lib_error("eval", NULL, NULL);
    } else if (!label && !m.label) {
        cli_error("eval", "%s names no label column; pass --label COL", model);
    } else {
        char *lab = NULL;
        if (!label)
            label = lab = strdup(m.label);
        if (!label)
            cli_error("eval", "out of memory");
        else if (cli_load_for_model("eval", model, pos[0], &csv, label, &m, &data))
            rc = evaluate(cli_data_path(pos[0]), label, &m, &data, json);
        free(lab);
    }
    tg_csv_data_free(&data);
    tg_logreg_model_free(&m);
    return rc;
}
