/* libFuzzer target for the model-file reader: any bytes must load or fail cleanly (status,
 * message, model untouched), never crash, leak or read out of bounds. A model that loads must
 * be usable (prediction on a small input) and must survive save -> load unchanged.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -D_POSIX_C_SOURCE=200809L \
 *       -Iinclude -Isrc -Ikernels $(pkg-config --cflags libcjson) tests/fuzz/fuzz_model.c \
 *       src/train/model_io.c src/train/logreg.c \
 *       <libtapegrad.a> -lopenblas -lsleef $(pkg-config --libs libcjson) -lm -lpthread \
 *       -o fuzz_model
 *   ./fuzz_model -max_len=4096 tests/fuzz/corpus_model
 *
 * The bytes go through tg_logreg_from_json with their exact length, so an overread past the
 * input is an AddressSanitizer report. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "tapegrad/train.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

/* Everything a loaded model promises. */
static void check_model(const tg_logreg_model *m)
{
    check(m->n_features >= 1 && m->weights && m->feature_names);
    check(!m->mean == !m->scale);
    for (int64_t j = 0; j < m->n_features; j++) {
        check(isfinite(m->weights[j]) && m->feature_names[j]);
        if (m->mean)
            check(isfinite(m->mean[j]) && isfinite(m->scale[j]) && m->scale[j] > 0.0);
    }
    check(isfinite(m->bias));
    check(tg_solver_name(m->options.solver) != NULL);
}

static bool same_model(const tg_logreg_model *a, const tg_logreg_model *b)
{
    size_t w = (size_t)a->n_features * sizeof(double);
    if (a->n_features != b->n_features || memcmp(a->weights, b->weights, w) != 0 ||
        memcmp(&a->bias, &b->bias, sizeof a->bias) != 0 || !a->mean != !b->mean)
        return false;
    if (a->mean && (memcmp(a->mean, b->mean, w) != 0 || memcmp(a->scale, b->scale, w) != 0))
        return false;
    for (int64_t j = 0; j < a->n_features; j++)
        if (strcmp(a->feature_names[j], b->feature_names[j]) != 0)
            return false;
    return !a->label == !b->label && (!a->label || strcmp(a->label, b->label) == 0) &&
           a->options.solver == b->options.solver && a->options.seed == b->options.seed;
}

/* Predictions on a couple of rows: finite inputs give finite logits... unless the weights are
 * huge, so only check that it runs and gives the right shape. */
static void try_predict(const tg_logreg_model *m)
{
    if (m->n_features > 256)
        return;
    int64_t shape[2] = {3, m->n_features};
    tg_tensor *X = tg_ones(2, shape);
    tg_tensor *p = tg_logreg_predict_proba(m, X);
    check(p && tg_numel(p) == 3);
    tg_release(p);
    tg_release(X);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    /* a sentinel model: a failed load must leave it as it was */
    const char *name = "x";
    check(tg_logreg_model_set_names(&m, &name, 1, NULL) == TG_OK);
    m.weights = calloc(1, sizeof(double));
    check(m.weights != NULL);
    m.bias = 42.0;

    tg_status st = tg_logreg_from_json(&m, "fuzz.json", (const char *)data, size);
    if (st != TG_OK) {
        check(tg_last_error()[0] != '\0');
        check(m.bias == 42.0 && m.n_features == 1 && m.weights[0] == 0.0);
        tg_logreg_model_free(&m);
        return 0;
    }
    check(tg_last_error()[0] == '\0');
    check_model(&m);
    try_predict(&m);

    /* save -> load is exact */
    char *text = tg_logreg_to_json(&m);
    check(text != NULL);
    tg_logreg_model back;
    tg_logreg_model_init(&back);
    check(tg_logreg_from_json(&back, "again", text, strlen(text)) == TG_OK);
    check(same_model(&m, &back));
    free(text);
    tg_logreg_model_free(&back);
    tg_logreg_model_free(&m);
    return 0;
}
