/* The CSV reader's row parser for CPUs with AVX-512 (src/io/csv_avx512.c), behind a narrow
 * interface so that only that file is compiled with -mavx512*; csv.c calls it after checking the
 * CPU at run time. */
#ifndef TG_IO_CSV_FAST_H
#define TG_IO_CSV_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* What the row parser needs to know about the file, fixed for a whole read. */
typedef struct {
    const char *end; /* the end of the input */
    char delim;      /* cannot be part of a number, a quote or a line break */
    int ncols;
    int nconv;       /* columns [0, nconv) are converted in batches: up to the last feature */
    const int *role; /* per column: feature index (>= 0), or < 0 for the label or a skipped one */
    int label_col;   /* -1: no label */
    bool direct;     /* role[c] == c for c < nconv: numbers go straight into the row of X */
    /* Labels given as two strings: the positive value (NULL: labels are 0 or 1), never one
     * the general parser would read otherwise (csv.c, fast_positive_ok). */
    const char *positive;
    size_t positive_len;
    bool spaces; /* fields are separated by runs of blanks; delim is ' ' (csv_blank_walk) */
} csv_fast_plan;

/* Blank-separated rows take the fast parsers only where one space sets off each field: no tab,
 * no '\r' but one before the line feed, no space at the row's start, before its end or next to
 * another. Splitting at each space then gives the fields the general parser finds, which splits
 * at runs of blanks; any other row is redone by it. The row's 64-byte windows are walked in
 * order, through the line feed. */
typedef struct {
    uint64_t carry; /* 1: the byte before the window is a space, or the row starts there */
    int cr;         /* '\r' bytes met */
} csv_blank_walk;

static inline csv_blank_walk csv_blank_start(void)
{
    return (csv_blank_walk){.carry = 1, .cr = 0};
}

/* One window's spaces, tabs and carriage returns, each masked to the row. */
static inline bool csv_blank_window(csv_blank_walk *w, uint64_t space, uint64_t tab, uint64_t cr)
{
    if (tab || (space & ((space << 1) | w->carry)))
        return false;
    w->carry = space >> 63;
    w->cr += __builtin_popcountll(cr);
    return true;
}

/* At the row's end: its last field is [s, e), the line feed at lf (e is lf, or lf - 1 when a
 * '\r' precedes it). */
static inline bool csv_blank_end(const csv_blank_walk *w, const char *s, const char *e,
                                 const char *lf)
{
    return e > s && w->cr == (e < lf);
}

/* Per-thread scratch space and state of csv_fast_row_avx512(). */
typedef struct {
    int64_t *ends; /* csv_fast_ends_len(ncols) entries */
    float *vals;   /* csv_fast_vals_len(ncols) entries */
    int misses;    /* rows in a row where most numbers needed the scalar parser */
    int rest;      /* rows left for which the caller should use its other fast path */
    /* With string labels: the one other value, once the general parser has met it in the
     * block (or stream) at hand, unquoted and trimmed; NULL before. */
    const char *other;
    size_t other_len;
} csv_fast_scratch;

/* The label field [s, e) of a row the fast parsers take, into *y. Labels 0 or 1 as one byte;
 * string labels only as exactly the positive value or the other one already met, which the
 * general parser would read the same way. False for anything else: the row is then redone. */
static inline bool csv_fast_label(const csv_fast_plan *pl, const csv_fast_scratch *sc,
                                  const char *s, const char *e, float *y)
{
    const size_t n = (size_t)(e - s);
    if (!pl->positive) {
        *y = *s == '1' ? 1.0f : 0.0f;
        return n == 1 && (*s == '0' || *s == '1');
    }
    if (n == pl->positive_len && memcmp(s, pl->positive, n) == 0) {
        *y = 1.0f;
        return true;
    }
    *y = 0.0f;
    return sc->other && n == sc->other_len && memcmp(s, sc->other, n) == 0;
}

static inline int64_t csv_fast_ends_len(int ncols)
{
    return (int64_t)ncols + 1 + 64;
}
static inline int64_t csv_fast_vals_len(int ncols)
{
    return (int64_t)ncols + 8;
}

/* Parses the row at p, which must start at least 16 bytes into the input, when it is the common
 * case: no quotes, exactly ncols fields, every feature a plain number and the label one
 * csv_fast_label takes, ending in "\n" or "\r\n" at least 64 bytes before the end of the input.
 * Returns false otherwise (x and y may be partly written), and the general parser redoes the row.
 * When rows keep coming whose numbers the batches cannot take (exponents, mostly), it sets
 * sc->rest: the batches only cost time there, and the caller uses its scalar fast path for that
 * many rows before it tries again. Either way the results are the same. */
bool csv_fast_row_avx512(const csv_fast_plan *pl, csv_fast_scratch *sc, const char *p, float *x,
                         float *y);
/* The same, built with AVX512-VBMI2 as well (csv_avx512_vbmi2.c): same results, for CPUs that
 * have it. */
bool csv_fast_row_avx512_vbmi2(const csv_fast_plan *pl, csv_fast_scratch *sc, const char *p,
                               float *x, float *y);

/* Lets the reader pick the VBMI2 row parser when the CPU has it (the default); tests turn it
 * off to reach the other one on such CPUs. */
void tg_csv_allow_vbmi2_(bool allow);

/* Lets the reader use its fast row parsers (the default) and with them the stream; with them
 * off, every row goes to the general parser after the split. The fuzzer compares the two. */
void tg_csv_allow_fast_rows_(bool allow);

/* Inputs of at least this many bytes (after the preamble) are parsed as they are read, each
 * thread taking at least half as many (csv.c, "the stream"); 4 MB unless changed. Tests lower
 * it to reach that path with small inputs, and raise it to compare against the split. */
void tg_csv_set_stream_min_(size_t bytes);

/* Data rows the stream kept in the process's last read (0 when it did not stream): lets tests,
 * which read on one thread, check how far it went, since the rows it leaves give the same
 * results. */
int64_t tg_csv_streamed_rows_(void);

#endif
