/* CSV input for tapegrad: reads a numeric table into float32 tensors. Included by tapegrad.h. */
#ifndef TAPEGRAD_IO_H
#define TAPEGRAD_IO_H

#ifdef __cplusplus
extern "C" {
#endif
#ifdef __GNUC__
#pragma GCC visibility push(default)
#endif

/* What the reader does with an empty, NA or NaN feature field. TG_MISSING_KEEP leaves NaN in X
 * for a later step to fill (tg_logreg_options.fill_missing fills with the training rows' means
 * once the validation rows are set apart, which a fill at read time cannot do). A missing label
 * is an error under every policy but TG_MISSING_DROP. */
typedef enum {
    TG_MISSING_ERROR = 0,
    TG_MISSING_DROP,
    TG_MISSING_MEAN,
    TG_MISSING_KEEP
} tg_missing_policy;

typedef struct tg_csv_options {
    const char *label;           /* label column by name or 0-based index; NULL = last column */
    const char *const *features; /* feature columns by name or index; NULL = all but the label */
    int n_features;
    bool no_header;            /* first row is data; columns are named "0", "1", ... */
    int64_t skip_rows;         /* lines skipped before the header (a preamble) */
    char delimiter;            /* 0 = detect among ',', ';', '\t' and runs of spaces */
    const char *positive;      /* label value that means 1 when labels are two strings */
    tg_missing_policy missing; /* empty, NA, NaN fields: error (default), drop row, column mean,
                                * or NaN left in X */
    int threads;               /* 0 = tg_get_num_threads() */
    bool no_label;             /* no label column at all (prediction input): every column
                                * may be a feature and y is NULL; label is ignored */
    /* Progress of the parse, for displays: called on the calling thread with the data rows
     * parsed so far and the data rows in the input, after each block of rows it finishes and
     * once at the end; NULL = none. While rows are parsed as they are read (inputs of 4 MB or
     * more), the rows in the input are estimated from the bytes read, and never fewer than the
     * rows counted as done (the calling thread's own); the last call gives the exact count. */
    void (*progress)(int64_t rows_done, int64_t rows_total, void *user);
    void *progress_user;
    /* With TG_MISSING_MEAN: the value for each feature (n_features of them, in X's column
     * order) instead of this file's column means, e.g. a model's training means when applying
     * it to new rows; NULL = the column means. */
    const float *fill;
} tg_csv_options;

typedef struct tg_csv_data {
    tg_tensor *X; /* [rows, n_features] */
    tg_tensor *y; /* [rows], values 0 or 1; NULL when the options name no label (predict) */
    char **names; /* n_features feature column names */
    int n_features;
    char *label_name;
    int64_t rows;
    int64_t rows_dropped;
} tg_csv_data;

/* Initializes options to the defaults above. */
void tg_csv_options_init(tg_csv_options *opt);
/* Reads path into out. On failure returns a status, leaves out empty, and tg_last_error() says
 * "FILE:LINE:COLUMN: message". A feature that reads as ±inf ("inf", or a number beyond the
 * float32 range such as 1e39) is such an error. A regular file is mapped into memory: if another
 * process truncates it during the read, the pages past its new end raise SIGBUS, as with any
 * mapped file (the tapegrad command catches it and names the file). */
tg_status tg_csv_read(const char *path, const tg_csv_options *opt, tg_csv_data *out);
void tg_csv_data_free(tg_csv_data *d);
/* Same as tg_csv_read, on len bytes in memory (need not be NUL-terminated); name is used in
 * messages in place of the file name (NULL: "<buffer>"). */
tg_status tg_csv_read_buffer(const char *name, const char *data, size_t len,
                             const tg_csv_options *opt, tg_csv_data *out);

#ifdef __GNUC__
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif
