/* libFuzzer target for the CSV reader: any bytes, several option sets; the reader must never
 * crash, leak or read out of bounds, its results must be self-consistent, and 1 or 3 threads
 * must give identical results and messages, as must the general row parser alone (the fast row
 * parsers and the stream turned off). Option sets 0 and 4 take the stream (rows parsed as they
 * are read, at any input size), as does set 5 (fields set off by spaces, the label and features
 * among skipped columns); set 0's one-thread stream is checked against 3 threads,
 * streamed and split.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -DTG_CSV_BLOCK_ROWS=2 \
 *       -Iinclude tests/fuzz/fuzz_csv.c src/io/csv.c src/io/float_parse.c \
 *       <libtapegrad.a and its deps> -o fuzz_csv
 *   ./fuzz_csv tests/fuzz/corpus_csv
 *
 * The input goes through tg_csv_read_buffer, so the buffer is exactly the fuzzer's bytes, with
 * nothing readable after them: any overread is caught by AddressSanitizer. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/csv_fast.h" /* tg_csv_set_stream_min_, tg_csv_allow_fast_rows_ */
#include "tapegrad.h"
#include "tapegrad/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static void check_result(tg_status s, tg_csv_data *d, const tg_csv_options *o)
{
    if (s != TG_OK) {
        check(d->X == NULL && d->y == NULL && d->names == NULL && d->label_name == NULL);
        check(tg_last_error()[0] != '\0');
        return;
    }
    check(d->X && d->rows > 0 && d->n_features > 0 && d->rows_dropped >= 0);
    check(tg_shape(d->X)[0] == d->rows && tg_shape(d->X)[1] == d->n_features);
    for (int i = 0; i < d->n_features; i++)
        check(d->names[i] != NULL);
    const float *x = tg_data(d->X);
    /* Missing values are an error or dropped (a filled mean can be NaN: inf and -inf) */
    for (int64_t i = 0; o->missing != TG_MISSING_MEAN && i < d->rows * d->n_features; i++)
        check(!isnan(x[i]));
    if (o->no_label) {
        check(d->y == NULL && d->label_name == NULL);
        return;
    }
    check(d->y && d->label_name && tg_shape(d->y)[0] == d->rows);
    const float *y = tg_data(d->y);
    for (int64_t i = 0; i < d->rows; i++)
        check(y[i] == 0.0f || y[i] == 1.0f);
}

/* Two reads of the same input must agree: status, message and data, bit for bit. */
static void check_same(tg_status s1, const char *msg1, const tg_csv_data *d1, tg_status s2,
                       const tg_csv_data *d2)
{
    check(s1 == s2 && strcmp(msg1, tg_last_error()) == 0);
    if (s1 != TG_OK)
        return;
    check(d1->rows == d2->rows && d1->rows_dropped == d2->rows_dropped);
    size_t nx = (size_t)(d1->rows * d1->n_features) * sizeof(float);
    check(memcmp(tg_data(d1->X), tg_data(d2->X), nx) == 0);
    if (d1->y)
        check(memcmp(tg_data(d1->y), tg_data(d2->y), (size_t)d1->rows * sizeof(float)) == 0);
}

/* Threads must not change anything: same status, message and data. Build with
 * -DTG_CSV_BLOCK_ROWS=2 so that small inputs are split into many blocks. */
static void check_same_with_threads(const char *text, size_t size, tg_csv_options o,
                                    const tg_csv_data *d1, tg_status s1, const char *msg1,
                                    bool stream)
{
    o.threads = 3;
    tg_csv_set_stream_min_(stream ? 0 : SIZE_MAX);
    tg_csv_data d3;
    tg_status s3 = tg_csv_read_buffer("fuzz", text, size, &o, &d3);
    check_same(s1, msg1, d1, s3, &d3);
    tg_csv_data_free(&d3);
}

/* Nor must the fast row parsers (and the stream, which needs them): the general parser alone,
 * after the split, gives the same status, message and data. */
static void check_same_without_fast_rows(const char *text, size_t size, tg_csv_options o,
                                         const tg_csv_data *d1, tg_status s1, const char *msg1)
{
    tg_csv_allow_fast_rows_(false);
    tg_csv_data d2;
    tg_status s2 = tg_csv_read_buffer("fuzz", text, size, &o, &d2);
    tg_csv_allow_fast_rows_(true);
    check_same(s1, msg1, d1, s2, &d2);
    tg_csv_data_free(&d2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const feats[] = {"0", "x", "2"}, *const some[] = {"0", "3"};
    const char *text = (const char *)data;
    for (int combo = 0; combo < 6; combo++) {
        tg_csv_options o;
        tg_csv_options_init(&o);
        o.threads = 1;
        switch (combo) {
        case 1:
            o.no_header = true;
            o.label = "0";
            o.missing = TG_MISSING_DROP;
            break;
        case 2:
            o.positive = "a";
            o.missing = TG_MISSING_MEAN;
            o.delimiter = ';';
            break;
        case 3:
            o.delimiter = ' ';
            o.skip_rows = 1;
            o.threads = 2;
            o.missing = TG_MISSING_DROP;
            break;
        case 4:
            o.no_label = true;
            o.features = feats;
            o.n_features = 3;
            o.missing = TG_MISSING_MEAN;
            break;
        case 5: /* blank-separated, with skipped columns between the ones read */
            o.delimiter = ' ';
            o.label = "1";
            o.features = some;
            o.n_features = 2;
            break;
        default:
            break;
        }
        tg_csv_set_stream_min_(combo == 0 || combo >= 4 ? 0 : SIZE_MAX);
        tg_csv_data d;
        tg_status s = tg_csv_read_buffer("fuzz", text, size, &o, &d);
        check_result(s, &d, &o);
        char msg[600];
        strncpy(msg, tg_last_error(), sizeof msg - 1);
        msg[sizeof msg - 1] = '\0';
        check_same_without_fast_rows(text, size, o, &d, s, msg);
        if (o.threads == 1 && (combo == 0 || combo == 2)) {
            check_same_with_threads(text, size, o, &d, s, msg, false);
            check_same_with_threads(text, size, o, &d, s, msg, combo == 0);
        }
        tg_csv_data_free(&d);
    }
    return 0;
}
