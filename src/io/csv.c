/* CSV reader (RFC 4180 plus the usual variations) producing float32 feature and label tensors.
 *
 * The file is read in three steps:
 *  1. one sequential, quote-aware scan records where every non-blank row starts; it only looks
 *     at '\n' and '"' (64 bytes at a time with SSE2, else with memchr), so it runs at memory
 *     speed;
 *  2. the header (or first row) fixes the delimiter and the columns;
 *  3. blocks of rows are parsed in parallel straight into the output tensor. Each block keeps its
 *     own first error and label bookkeeping, and the blocks are merged in file order, so results
 *     and error messages do not depend on the number of threads. A row of plain numbers (its
 *     label 0 or 1, or byte for byte the positive label string or the other one the block has
 *     met) takes a fast path (fast_row; on AVX-512 CPUs csv_fast_row_avx512, in csv_avx512.c, which
 *     converts eight fields at a time); any other row, and any row it fails on, the general
 *     one, which alone reports errors.
 * With an input of 4 MB or more, step 1 stops after the first rows, and on AVX-512 CPUs the data
 * rows are then parsed as they are read, a chunk at a time, each thread over its own byte range,
 * until the first row that does not end at its line feed, or does not parse; steps 1 and 3
 * take the rest (see "the stream" below).
 *
 * Quotes are only special at the start of a field; a quote anywhere else in an unquoted field is
 * an error. That keeps step 1 (which toggles on every quote) in agreement with step 3 on every
 * file that parses, and an input where they disagree always produces an error in step 3 at or
 * before the first point of disagreement. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* MADV_POPULATE_*, pread */
#endif

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#define CSV_FAST_ROWS 1
#else
#define CSV_FAST_ROWS 0
#endif

#include "../core/error.h"
#include "../core/pages.h"
#include "../core/read_all.h"
#include "csv_fast.h"
#include "csv_part.h"
#include "csv_split.h"
#include "float_parse.h"
#include "tapegrad.h"
#include "tapegrad/io.h"

#define ROLE_SKIP  (-1)
#define ROLE_LABEL (-2)
#ifndef TG_CSV_BLOCK_ROWS
/* Rows per parallel work item (tests may build with tiny blocks). */
#define TG_CSV_BLOCK_ROWS 4096
#endif
#define BLOCK_ROWS  ((int64_t)TG_CSV_BLOCK_ROWS)
#define SNIPPET_MAX 40 /* bytes of a bad field quoted in an error message */
#define SNIFF_ROWS  5  /* rows looked at to detect the delimiter */

enum { F_MORE, F_LAST, F_ERROR }; /* what follows a field: another field, end of row, or junk */

typedef struct {
    const char *s; /* content: between the quotes for a quoted field, trimmed otherwise */
    size_t n;
    bool quoted;
    bool escaped; /* contains "" pairs that stand for one quote */
} field;

typedef struct {
    const char *name;  /* file name used in messages */
    const char *base;  /* start of the input: line numbers count '\n' from here */
    int64_t line_base; /* lines before base (a part of a file starts mid-file); 0 */
    const char *end;
    char delim;
    bool spaces; /* fields are separated by runs of blanks */
    /* The delimiter could be read as part of a number ('.', '+', '-', a digit or a letter, as
     * in "1e5" or "inf"): numbers are then parsed within their field, never from a prefix. */
    bool num_delim;
    int ncols;
    int *role;        /* per file column: feature index in X, ROLE_LABEL or ROLE_SKIP */
    char **col_names; /* per file column */
    int nfeat;
    int label_col; /* -1: no label */
    field positive;
    bool has_positive;
    tg_missing_policy missing;
    bool sentinel; /* the input ends with a byte that cannot continue a number (usually '\n') */
    bool part;     /* reading a part of a file (csv_part.h): no rows left is not an error */
    const float *fill; /* TG_MISSING_MEAN: given values instead of the column means */
    int64_t first_line; /* line of the header (or first row) that set ncols; 0: not read yet */
    bool header;        /* that row is a header */
} csv_ctx;

typedef struct {
    int64_t row;     /* data row of the error, -1 when there is none */
    const char *pos; /* where it is, for the line number */
    int col;         /* 1-based field number */
    tg_status status;
    char msg[320];
} csv_error;

typedef struct {
    csv_error err;
    bool has_other; /* first label string that is not `positive`, when positive is set */
    field other;
    int64_t other_row;
    const char *other_pos;
    bool any_missing; /* a NaN marker was written for a missing value */
} block_state;

/* ---- small helpers ------------------------------------------------------------------------ */

static void set_row_error(csv_error *e, int64_t row, const char *pos, int col, tg_status st,
                          const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 6, 7)))
#endif
    ;

static void set_row_error(csv_error *e, int64_t row, const char *pos, int col, tg_status st,
                          const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    e->row = row;
    e->pos = pos;
    e->col = col;
    e->status = st;
}

static int64_t line_of(const csv_ctx *cx, const char *pos)
{
    int64_t line = 1 + cx->line_base;
    const char *p = cx->base;
    while (p < pos) {
        const char *nl = memchr(p, '\n', (size_t)(pos - p));
        if (!nl)
            break;
        line++;
        p = nl + 1;
    }
    return line;
}

/* Publishes a recorded error through the thread-local status, as "FILE:LINE:COL: message". */
static tg_status report(const csv_ctx *cx, const csv_error *e)
{
    return tg_set_error(e->status, "%s:%lld:%d: %s", cx->name, (long long)line_of(cx, e->pos),
                        e->col, e->msg);
}

/* Copies a field's text into buf for a message: printable, truncated, always terminated. */
static const char *snippet(char *buf, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n && k + 4 < cap; i++) {
        if (k >= SNIPPET_MAX) {
            memcpy(buf + k, "...", 3);
            k += 3;
            break;
        }
        unsigned char c = (unsigned char)s[i];
        buf[k++] = (c >= 0x20 && c < 0x7f) || c >= 0x80 ? (char)c : '?';
    }
    buf[k] = '\0';
    return buf;
}

/* Whether s[0, n) is lower but for the case of its letters. Only letters fold: OR-ing 0x20 into
 * any byte would also make the control character 0x0F match the '/' of "n/a". */
static bool ieq(const char *s, size_t n, const char *lower)
{
    size_t m = strlen(lower);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        const bool letter = lower[i] >= 'a' && lower[i] <= 'z';
        if (s[i] != lower[i] && !(letter && (char)(s[i] | 0x20) == lower[i]))
            return false;
    }
    return true;
}

/* Equality of two field values, reading each "" pair of an escaped field as one quote. */
static bool field_eq(const field *a, const field *b)
{
    size_t i = 0, j = 0;
    while (i < a->n && j < b->n) {
        if (a->s[i] != b->s[j])
            return false;
        i += a->escaped && a->s[i] == '"' ? 2 : 1;
        j += b->escaped && b->s[j] == '"' ? 2 : 1;
    }
    return i >= a->n && j >= b->n;
}

/* A field's value as a new string (quotes unescaped); NULL when out of memory. */
static char *field_dup(const field *f)
{
    char *s = malloc(f->n + 1);
    if (!s)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < f->n; i++) {
        s[k++] = f->s[i];
        if (f->escaped && f->s[i] == '"')
            i++;
    }
    s[k] = '\0';
    return s;
}

/* Quoted content is taken literally, but spaces just inside the quotes are harmless to trim
 * when the content is meant as a number or a keyword. */
static field trimmed(field f)
{
    while (f.n && f.s[0] == ' ')
        f.s++, f.n--;
    while (f.n && f.s[f.n - 1] == ' ')
        f.n--;
    return f;
}

static bool is_missing(const field *f)
{
    field t = trimmed(*f);
    if (t.n == 0 || ieq(t.s, t.n, "na") || ieq(t.s, t.n, "n/a"))
        return true;
    /* "nan", "-nan", "+NaN" */
    if (t.n && (t.s[0] == '-' || t.s[0] == '+'))
        t.s++, t.n--;
    return ieq(t.s, t.n, "nan");
}

/* ---- tokenizing ----------------------------------------------------------------------------- */

static inline bool is_blank(const csv_ctx *cx, char c)
{
    return c == ' ' || c == '\r' || (c == '\t' && cx->delim != '\t');
}

static inline const char *skip_blanks(const csv_ctx *cx, const char *p)
{
    while (p < cx->end && is_blank(cx, *p))
        p++;
    return p;
}

/* Looks at what follows a field's content at p; sets *next to the start of the next field or row
 * (or, on F_ERROR, to the offending character). */
static inline int end_field(const csv_ctx *cx, const char *p, const char **next)
{
    const char *q = skip_blanks(cx, p);
    if (q == cx->end) {
        *next = q;
        return F_LAST;
    }
    if (*q == '\n') {
        *next = q + 1;
        return F_LAST;
    }
    if (cx->spaces ? q > p : *q == cx->delim) {
        *next = cx->spaces ? q : q + 1;
        return F_MORE;
    }
    *next = q;
    return F_ERROR;
}

/* Reads one field starting at p. On F_ERROR, *next is the error position and *err says why. */
static int scan_field(const csv_ctx *cx, const char *p, field *f, const char **next,
                      const char **err)
{
    const char *end = cx->end;
    p = skip_blanks(cx, p);
    if (p < end && *p == '"') {
        const char *s = p + 1, *q = s;
        bool esc = false;
        for (;;) {
            q = memchr(q, '"', (size_t)(end - q));
            if (!q) {
                *next = p;
                *err = "unterminated quoted field";
                return F_ERROR;
            }
            if (q + 1 < end && q[1] == '"') {
                esc = true;
                q += 2;
                continue;
            }
            break;
        }
        *f = (field){s, (size_t)(q - s), true, esc};
        int st = end_field(cx, q + 1, next);
        if (st == F_ERROR)
            *err = "unexpected character after a closing quote";
        return st;
    }
    const char *s = p;
    if (cx->spaces)
        while (p < end && *p != '\n' && *p != '"' && !is_blank(cx, *p))
            p++;
    else
        while (p < end && *p != '\n' && *p != '"' && *p != cx->delim)
            p++;
    if (p < end && *p == '"') {
        *next = p;
        *err = "quote inside an unquoted field (quote the whole field and double the quote)";
        return F_ERROR;
    }
    const char *e = p;
    while (e > s && is_blank(cx, e[-1]))
        e--;
    *f = (field){s, (size_t)(e - s), false, false};
    return end_field(cx, p, next);
}

/* ---- step 1: row boundaries --------------------------------------------------------------- */

typedef tg_csv_rows_ row_list;

static bool push_row(row_list *r, const char *p)
{
    if (r->n == r->cap) {
        int64_t cap = r->cap ? r->cap * 2 : 1024;
        const char **v = realloc(r->v, (size_t)cap * sizeof *v);
        if (!v)
            return false;
        r->v = v;
        r->cap = cap;
    }
    r->v[r->n++] = p;
    return true;
}

static int64_t count_byte(const char *p, const char *end, char c)
{
    int64_t n = 0;
    while (p < end && (p = memchr(p, c, (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

/* Rows for [p, end), estimated from its first 64 KB with a margin of 1/16 and 1024 rows, and
 * never more than a row per two bytes (a byte and its line feed). */
static int64_t estimate_rows(const char *p, const char *end)
{
    enum { SAMPLE = 65536 };
    const size_t len = (size_t)(end - p), sample = len < SAMPLE ? len : SAMPLE;
    const double lines = (double)count_byte(p, p + sample, '\n') + 1.0;
    const double est = (double)len / (double)(sample ? sample : 1) * lines * 1.0625 + 1024.0;
    const double most = (double)len / 2.0 + 1.0;
    return (int64_t)(est < most ? est : most);
}

/* Room in rows for the whole of [p, end), estimated, when that comes to 4 MB of row pointers
 * or more: the list is then allocated once, on 2 MB pages, instead of doubled into fresh memory
 * ten times (a 1M-row file's 8 MB list took 2048 page faults, which a VM that traps them to its
 * host spent 25 ms on). An estimate that falls short is made up by the doubling; one that runs
 * long only reserves pages that are never touched. */
static void reserve_rows(row_list *r, const char *p, const char *end)
{
    const int64_t cap = estimate_rows(p, end);
    const size_t bytes = (size_t)cap * sizeof *r->v;
    if (r->cap >= cap || bytes < ((size_t)4 << 20))
        return;
    const char **v = realloc(r->v, bytes);
    if (!v)
        return; /* the doubling will try with less */
    tg_advise_huge_pages(v, bytes);
    r->v = v;
    r->cap = cap;
}

static const char *find(const char *p, const char *end, char c)
{
    const char *q = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
    return q ? q : end;
}

/* Most threads the reader starts for its split or its stream. */
#define READER_MAX_THREADS 64

/* Runs fn on each of the n (<= READER_MAX_THREADS) items of size bytes at items: the first on
 * the calling thread, the others on threads of their own, or on the caller after the first
 * when a thread cannot be started. */
static void run_each(void *(*fn)(void *), void *items, size_t size, int n)
{
    pthread_t tid[READER_MAX_THREADS];
    bool started[READER_MAX_THREADS] = {false};
    char *it = items;
    for (int t = 1; t < n; t++)
        started[t] = pthread_create(&tid[t], NULL, fn, it + (size_t)t * size) == 0;
    fn(it);
    for (int t = 1; t < n; t++) {
        if (started[t])
            pthread_join(tid[t], NULL);
        else
            fn(it + (size_t)t * size);
    }
}

/* A row that holds only ' ' and '\r' before its '\n' (or the end). */
static inline bool blank_row(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\r'))
        p++;
    return p == end || *p == '\n';
}

#if defined(__SSE2__)
/* One pass over the input, 64 bytes at a time, finds the line feeds and the quotes together
 * (the memchr version below passes over a quote-free file twice: once for the first quote,
 * once for the line feeds). A line feed ends a row when an even number of quotes lies between
 * it and p; blank lines hold no quote, so skipping them never moves a row boundary, and each
 * row start only has to be checked for blankness. */

typedef struct {
    const char *end, *stop;
    int64_t left; /* rows still to record */
    row_list *rows;
    bool oom;
} splitter;

/* Takes the row that starts at r: false when the split stops there. */
static inline bool take_row(splitter *s, const char *r)
{
    if (r >= s->end || r >= s->stop || s->left <= 0)
        return false;
    if (blank_row(r, s->end))
        return true;
    if (!push_row(s->rows, r)) {
        s->oom = true;
        return false;
    }
    s->left--;
    return true;
}

/* Bit i of *nl / *qt: b[i] is '\n' / '"'. Both 0 (after one test) for the usual block that has
 * neither. */
static inline void scan_block(const char *b, uint64_t *nl, uint64_t *qt)
{
    const __m128i vn = _mm_set1_epi8('\n'), vq = _mm_set1_epi8('"');
    __m128i n[4], q[4];
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i));
        n[i] = _mm_cmpeq_epi8(v, vn);
        q[i] = _mm_cmpeq_epi8(v, vq);
    }
    __m128i any = _mm_or_si128(_mm_or_si128(_mm_or_si128(n[0], n[1]), _mm_or_si128(n[2], n[3])),
                               _mm_or_si128(_mm_or_si128(q[0], q[1]), _mm_or_si128(q[2], q[3])));
    *nl = *qt = 0;
    if (!_mm_movemask_epi8(any))
        return;
    for (int i = 0; i < 4; i++) {
        *nl |= (uint64_t)(unsigned)_mm_movemask_epi8(n[i]) << (16 * i);
        *qt |= (uint64_t)(unsigned)_mm_movemask_epi8(q[i]) << (16 * i);
    }
}

/* Bit i: an odd number of bits at or below i. */
static inline uint64_t prefix_xor(uint64_t x)
{
    for (int k = 1; k < 64; k *= 2)
        x ^= x << k;
    return x;
}

/* The split is the first pass over the input and does little work per byte, so it waits on
 * memory: asking for the block 4 KB ahead took a 1M x 32 file's one-thread read from 296 to 283
 * ms (Intel Xeon VM; 512 bytes ahead gave 291, 8 and 16 KB the same as 4). A prefetch past the
 * end of the input is harmless: it never faults (the address is formed as an integer, since a
 * pointer that far past the input would be undefined). */
#define SPLIT_AHEAD 4096

/* Takes the row after every line feed outside quotes in [p, scan_end); returns where the split
 * stopped, or s->end when it went through. *inside (all ones in a quoted field) is the state at
 * p, and becomes the state at scan_end. The last partial block is copied out, so nothing at or
 * after scan_end is read. */
static const char *scan_rows(splitter *s, const char *p, const char *scan_end, uint64_t *inside)
{
    const size_t len = (size_t)(scan_end - p);
    uint64_t in_q = *inside;
    for (size_t off = 0; off < len; off += 64) {
        uint64_t nl, qt;
        if (len - off >= 64) {
            __builtin_prefetch((const void *)((uintptr_t)(p + off) + SPLIT_AHEAD));
            scan_block(p + off, &nl, &qt);
        } else {
            char tail[64] = {0};
            memcpy(tail, p + off, len - off);
            scan_block(tail, &nl, &qt);
        }
        /* Bit i: byte i is inside quotes (for a line feed, which is no quote itself). A block
         * without quotes is inside or outside throughout. */
        const uint64_t in = (qt ? prefix_xor(qt) : 0) ^ in_q;
        nl &= ~in;
        in_q = 0 - (in >> 63);
        for (; nl; nl &= nl - 1) {
            const char *r = p + off + __builtin_ctzll(nl) + 1;
            if (!take_row(s, r))
                return r;
        }
    }
    *inside = in_q;
    return s->end;
}

/* Records the start of every row that is not a blank line, from p (a row start) on; see
 * tg_csv_split_rows_ in csv_split.h. */
static bool split_rows(const char *p, const char *end, const char *stop, int64_t max_rows,
                       row_list *rows, const char **resume)
{
    splitter s = {end, stop, max_rows, rows, false};
    uint64_t inside = 0;
    const char *at = take_row(&s, p) ? scan_rows(&s, p, end, &inside) : p;
    if (resume)
        *resume = at;
    return !s.oom;
}

/* ---- the whole input's split on several threads ----
 * The input is cut into equal byte ranges, one per thread, and each is split as if it began
 * outside quotes. The quotes of the ranges before one then tell whether it did; one that began
 * inside a quoted field is split again from the right state, so the rows are the one-thread
 * split's. The split is the first touch of a mapped file's pages, and on a VM that traps each
 * first touch to its host that touch is most of its cost: a read of every line of a 279 MB file
 * took 113-127 ms the first time and 9-12 ms the second. Two threads shared it out only in
 * part there (split 159-171 -> 110-152 ms). */
#define SPLIT_MIN_BYTES   ((size_t)256 << 10) /* per thread: less is not worth a thread */
#define SPLIT_MAX_THREADS READER_MAX_THREADS

typedef struct {
    const char *end, *lo, *hi; /* the input's end; this range */
    row_list rows;
    uint64_t inside; /* the state assumed at lo; after the split, the state at hi */
    bool first, ok;  /* first: lo is the first row's start */
} split_range;

static void split_range_run(split_range *r)
{
    splitter s = {r->end, r->end, INT64_MAX, &r->rows, false};
    r->rows.n = 0;
    if (!r->first || take_row(&s, r->lo))
        scan_rows(&s, r->lo, r->hi, &r->inside);
    r->ok = !s.oom;
}

static void *split_range_thread(void *arg)
{
    split_range_run(arg);
    return NULL;
}

static bool append_rows(row_list *to, const row_list *from)
{
    if (to->n + from->n > to->cap) {
        int64_t cap = to->n + from->n;
        const char **v = realloc(to->v, (size_t)cap * sizeof *v);
        if (!v)
            return false;
        to->v = v;
        to->cap = cap;
    }
    memcpy(to->v + to->n, from->v, (size_t)from->n * sizeof *from->v);
    to->n += from->n;
    return true;
}

/* Redoes the ranges that began inside quotes, in order, then joins their rows onto part[0]'s. */
static bool join_ranges(split_range *part, int n)
{
    bool ok = true;
    uint64_t state = 0; /* at the start of part[t] */
    for (int t = 0; t < n; t++) {
        const uint64_t flips = part[t].inside; /* the state at hi had lo been outside */
        if (ok && part[t].ok && state) {
            part[t].inside = state;
            split_range_run(&part[t]);
        }
        ok = ok && part[t].ok && (t == 0 || append_rows(&part[0].rows, &part[t].rows));
        state ^= flips;
    }
    return ok;
}

static bool split_all(const char *p, const char *end, int threads, row_list *rows)
{
    const size_t len = (size_t)(end - p);
    size_t most = len / SPLIT_MIN_BYTES;
    int n = threads < SPLIT_MAX_THREADS ? threads : SPLIT_MAX_THREADS;
    n = (size_t)n < most ? n : (int)most;
    if (n < 2)
        return split_rows(p, end, end, INT64_MAX, rows, NULL);
    split_range part[SPLIT_MAX_THREADS];
    for (int t = 0; t < n; t++) {
        part[t] = (split_range){end, p + len * (size_t)t / (size_t)n,
                                p + len * (size_t)(t + 1) / (size_t)n};
        part[t].first = t == 0;
        if (t == 0)
            part[0].rows = *rows; /* reserved for the whole input by the caller */
        else
            reserve_rows(&part[t].rows, part[t].lo, part[t].hi);
    }
    run_each(split_range_thread, part, sizeof part[0], n);
    bool ok = join_ranges(part, n);
    *rows = part[0].rows;
    for (int t = 1; t < n; t++)
        free(part[t].rows.v);
    return ok;
}
#else
/* Records the start of every row that is not a blank line, from p (a row start) on; see
 * tg_csv_split_rows_ in csv_split.h. Jumps from quote to quote and line feed to line feed with
 * memchr. */
static bool split_rows(const char *p, const char *end, const char *stop, int64_t max_rows,
                       row_list *rows, const char **resume)
{
    const char *quote = find(p, end, '"');
    int64_t added = 0;
    while (p < end && p < stop && added < max_rows) {
        const char *line_end = find(p, end, '\n');
        if ((*p == ' ' || *p == '\r' || *p == '\n') && quote >= line_end &&
            blank_row(p, line_end)) {
            p = line_end + (line_end < end);
            continue;
        }
        if (!push_row(rows, p))
            return false;
        added++;
        while (quote < line_end) { /* inside quotes from here to the closing quote */
            const char *close = find(quote + 1, end, '"');
            if (close == end) {
                line_end = end;
                quote = end;
                break;
            }
            if (close >= line_end)
                line_end = find(close + 1, end, '\n');
            quote = find(close + 1, end, '"');
        }
        p = line_end + (line_end < end);
    }
    if (resume)
        *resume = p;
    return true;
}

static bool split_all(const char *p, const char *end, int threads, row_list *rows)
{
    (void)threads;
    return split_rows(p, end, end, INT64_MAX, rows, NULL);
}
#endif

bool tg_csv_split_rows_(const char *p, const char *end, const char *stop, int64_t max_rows,
                        tg_csv_rows_ *rows, const char **resume)
{
    return split_rows(p, end, stop, max_rows, rows, resume);
}

/* ---- step 2: delimiter and header --------------------------------------------------------- */

/* Number of fields in the row at p under cx's delimiter, or -1 if the row does not tokenize. */
static int64_t count_fields(const csv_ctx *cx, const char *p)
{
    int64_t n = 0;
    for (;;) {
        field f;
        const char *next, *err;
        int st = scan_field(cx, p, &f, &next, &err);
        if (st == F_ERROR)
            return -1;
        n++;
        if (st == F_LAST)
            return n;
        p = next;
    }
}

/* Picks the delimiter that splits the first rows into the same number (> 1) of fields, the most
 * fields winning; runs of spaces only when no ',', '\t' or ';' splits the first row at all. */
static void detect_delimiter(csv_ctx *cx, const row_list *rows)
{
    static const char cands[] = {',', '\t', ';'};
    int64_t nsniff = rows->n < SNIFF_ROWS ? rows->n : SNIFF_ROWS;
    int best = -1, loose = -1;
    int64_t best_n = 1, loose_n = 1;
    for (int i = 0; i < 3; i++) {
        cx->delim = cands[i];
        cx->spaces = false;
        int64_t first = count_fields(cx, rows->v[0]);
        bool same = first > 1;
        for (int64_t r = 1; r < nsniff && same; r++)
            same = count_fields(cx, rows->v[r]) == first;
        if (same && first > best_n)
            best = i, best_n = first;
        if (first > loose_n)
            loose = i, loose_n = first;
    }
    if (best < 0)
        best = loose;
    if (best >= 0) {
        cx->delim = cands[best];
        return;
    }
    cx->delim = ' ';
    cx->spaces = true;
    if (count_fields(cx, rows->v[0]) > 1)
        return;
    cx->delim = ',';
    cx->spaces = false;
}

/* Reads the fields of the first row: names from a header, or just the count. */
static tg_status read_first_row(csv_ctx *cx, const char *p, bool names)
{
    int64_t cap = 0, n = 0;
    cx->first_line = line_of(cx, p);
    cx->header = names;
    for (;;) {
        field f;
        const char *next, *err;
        int st = scan_field(cx, p, &f, &next, &err);
        if (st == F_ERROR) {
            csv_error e;
            set_row_error(&e, 0, next, (int)(n + 1), TG_EPARSE, "%s", err);
            return report(cx, &e);
        }
        if (n == INT_MAX - 1)
            return tg_set_error(TG_EPARSE, "%s: too many columns", cx->name);
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            char **v = realloc(cx->col_names, (size_t)cap * sizeof *v);
            if (!v)
                return tg_set_error(TG_ENOMEM, "%s: out of memory reading the header", cx->name);
            cx->col_names = v;
        }
        char num[24];
        snprintf(num, sizeof num, "%lld", (long long)n);
        cx->col_names[n] = names ? field_dup(&f) : strdup(num);
        if (!cx->col_names[n])
            return tg_set_error(TG_ENOMEM, "%s: out of memory reading the header", cx->name);
        cx->ncols = (int)++n;
        if (st == F_LAST)
            return TG_OK;
        p = next;
    }
}

/* The header's columns sorted by name, equal names by index: name lookups and the duplicate
 * check in O(ncols log ncols), where a scan per name was quadratic in wide files. */
typedef struct {
    const char *name;
    int col;
} named_col;

typedef struct {
    const csv_ctx *cx;
    named_col *v; /* ncols entries */
} name_index;

static int by_name(const void *a, const void *b)
{
    const named_col *x = a, *y = b;
    int d = strcmp(x->name, y->name);
    return d ? d : (x->col > y->col) - (x->col < y->col);
}

static bool name_index_build(name_index *ni, const csv_ctx *cx)
{
    ni->cx = cx;
    ni->v = malloc((size_t)cx->ncols * sizeof *ni->v);
    if (!ni->v)
        return false;
    for (int c = 0; c < cx->ncols; c++)
        ni->v[c] = (named_col){cx->col_names[c], c};
    qsort(ni->v, (size_t)cx->ncols, sizeof *ni->v, by_name);
    return true;
}

/* Whether entries i and j of the index carry the same name. */
static bool same_name(const name_index *ni, int i, int j)
{
    return j < ni->cx->ncols && strcmp(ni->v[i].name, ni->v[j].name) == 0;
}

/* Position in the index of the first column named name, or -1. */
static int name_index_find(const name_index *ni, const char *name)
{
    int lo = 0, hi = ni->cx->ncols;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(ni->v[mid].name, name) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < ni->cx->ncols && strcmp(ni->v[lo].name, name) == 0 ? lo : -1;
}

/* A column named by header name first, then by 0-based index; -1 if neither, -2 (with the
 * error set) if the name belongs to more than one column. */
static int find_column(const name_index *ni, const char *spec)
{
    const csv_ctx *cx = ni->cx;
    int at = name_index_find(ni, spec);
    if (at >= 0) {
        if (!same_name(ni, at, at + 1))
            return ni->v[at].col;
        tg_set_error(TG_EINVAL,
                     "%s: columns %d and %d are both named '%s'; select by 0-based index", cx->name,
                     ni->v[at].col, ni->v[at + 1].col, spec);
        return -2;
    }
    if (!*spec || strlen(spec) > 9)
        return -1;
    int v = 0;
    for (const char *s = spec; *s; s++) {
        if (!tg_is_digit_(*s))
            return -1;
        v = v * 10 + (*s - '0');
    }
    return v < cx->ncols ? v : -1;
}

/* Features and the label are known by name (a model file lists them): two used columns with
 * one name could not be told apart later. Reports the pair whose first column comes first. */
static tg_status check_used_names(const name_index *ni)
{
    const csv_ctx *cx = ni->cx;
    int best_c = -1, best_k = -1;
    for (int i = 0, j; i < cx->ncols; i = j) {
        int first = -1, second = -1; /* the first two used columns of this name */
        for (j = i; same_name(ni, i, j); j++) {
            int c = ni->v[j].col;
            if (cx->role[c] == ROLE_SKIP)
                continue;
            if (first < 0)
                first = c;
            else if (second < 0)
                second = c;
        }
        if (second >= 0 && (best_c < 0 || first < best_c))
            best_c = first, best_k = second;
    }
    if (best_c < 0)
        return TG_OK;
    return tg_set_error(
        TG_EINVAL, "%s: columns %d and %d (%s) are both named '%s'; rename one or leave one out",
        cx->name, best_c, best_k,
        cx->role[best_c] == ROLE_LABEL || cx->role[best_k] == ROLE_LABEL ? "a feature and the label"
                                                                         : "two features",
        cx->col_names[best_c]);
}

static tg_status pick_columns(csv_ctx *cx, const name_index *ni, const tg_csv_options *opt);

static tg_status resolve_columns(csv_ctx *cx, const tg_csv_options *opt)
{
    name_index ni;
    if (!name_index_build(&ni, cx))
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    tg_status st = pick_columns(cx, &ni, opt);
    if (st == TG_OK)
        st = check_used_names(&ni);
    free(ni.v);
    return st;
}

/* "label column 'y' not found": followed by the columns there are, so that a wrong delimiter
 * (one column holding the whole header) or a preamble read as the header shows at once. */
static tg_status column_not_found(const csv_ctx *cx, const char *what, const char *spec)
{
    char list[200] = "";
    size_t k = 0;
    for (int c = 0; c < cx->ncols && c < 5 && k < sizeof list; c++) {
        char sn[64];
        const char *nm = cx->col_names[c];
        k += (size_t)snprintf(list + k, sizeof list - k, "%s'%s'", c ? ", " : "",
                              snippet(sn, sizeof sn, nm, strlen(nm)));
    }
    if (cx->ncols > 5 && k < sizeof list)
        snprintf(list + k, sizeof list - k, ", ...");
    return tg_set_error(TG_EINVAL,
                        "%s: %s column '%s' not found; the %s on line %lld has %d column%s: %s%s",
                        cx->name, what, spec, cx->header ? "header" : "first row",
                        (long long)cx->first_line, cx->ncols, cx->ncols == 1 ? "" : "s", list,
                        cx->ncols == 1 ? " (one column: is the delimiter right?)" : "");
}

static tg_status pick_columns(csv_ctx *cx, const name_index *ni, const tg_csv_options *opt)
{
    cx->role = malloc((size_t)cx->ncols * sizeof *cx->role);
    if (!cx->role)
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    cx->label_col = -1;
    if (!opt->no_label) {
        cx->label_col = opt->label ? find_column(ni, opt->label) : cx->ncols - 1;
        if (cx->label_col == -2)
            return tg_last_status();
        if (cx->label_col < 0)
            return column_not_found(cx, "label", opt->label);
    }
    for (int c = 0; c < cx->ncols; c++)
        cx->role[c] = ROLE_SKIP;
    if (cx->label_col >= 0)
        cx->role[cx->label_col] = ROLE_LABEL;
    cx->nfeat = 0;
    if (!opt->features || opt->n_features == 0) {
        for (int c = 0; c < cx->ncols; c++)
            if (c != cx->label_col)
                cx->role[c] = cx->nfeat++;
    } else {
        for (int i = 0; i < opt->n_features; i++) {
            const char *spec = opt->features[i] ? opt->features[i] : "(null)";
            int c = opt->features[i] ? find_column(ni, spec) : -1;
            if (c == -2)
                return tg_last_status();
            if (c < 0)
                return column_not_found(cx, "feature", spec);
            if (cx->role[c] != ROLE_SKIP)
                return tg_set_error(TG_EINVAL, "%s: feature column '%s' is %s", cx->name, spec,
                                    c == cx->label_col ? "the label column"
                                                       : "listed more than once");
            cx->role[c] = cx->nfeat++;
        }
    }
    if (cx->nfeat == 0)
        return tg_set_error(TG_EINVAL, "%s: no feature columns (the file has %d column%s)",
                            cx->name, cx->ncols, cx->ncols == 1 ? "" : "s");
    return TG_OK;
}

/* ---- step 3: rows ------------------------------------------------------------------------ */

static int missing_feature(const csv_ctx *cx, block_state *bs, int64_t r, int c, const char *pos,
                           float *out, int st)
{
    if (cx->missing == TG_MISSING_ERROR) {
        set_row_error(&bs->err, r, pos, c + 1, TG_EPARSE,
                      "missing value in column '%s' (set the missing-value policy to drop the "
                      "row or use the column mean)",
                      cx->col_names[c]);
        return F_ERROR;
    }
    *out = NAN; /* marker, resolved after all rows are read */
    bs->any_missing = true;
    return st;
}

/* The general path for a feature field: quotes, blanks, missing values, bad numbers. */
static int feature_field(const csv_ctx *cx, block_state *bs, int64_t r, int c, const char *p,
                         float *out, const char **next)
{
    float v;
    const char *q = skip_blanks(cx, p);
    const char *e = cx->num_delim ? NULL : tg_parse_float_prefix(q, cx->end, &v);
    int st;
    if (e && (st = end_field(cx, e, next)) != F_ERROR) {
        if (isnan(v))
            return missing_feature(cx, bs, r, c, q, out, st);
        *out = v;
        return st;
    }
    field f;
    const char *err;
    st = scan_field(cx, p, &f, next, &err);
    if (st == F_ERROR) {
        set_row_error(&bs->err, r, *next, c + 1, TG_EPARSE, "%s", err);
        return F_ERROR;
    }
    if (is_missing(&f))
        return missing_feature(cx, bs, r, c, f.s, out, st);
    field t = trimmed(f);
    if ((f.quoted || cx->num_delim) && !f.escaped && tg_parse_float(t.s, t.n, &v) == 0) {
        *out = v;
        return st;
    }
    char sn[64];
    set_row_error(&bs->err, r, f.s, c + 1, TG_EPARSE, "bad number '%s' in column '%s'",
                  snippet(sn, sizeof sn, f.s, f.n), cx->col_names[c]);
    return F_ERROR;
}

static int label_error(const csv_ctx *cx, block_state *bs, int64_t r, const field *f,
                       const char *why)
{
    char sn[64];
    set_row_error(&bs->err, r, f->s, cx->label_col + 1, TG_EPARSE, "label '%s' in column '%s' %s",
                  snippet(sn, sizeof sn, f->s, f->n), cx->col_names[cx->label_col], why);
    return F_ERROR;
}

/* a and b differ, but only in the case of ASCII letters. */
static bool same_but_case(const field *a, const field *b)
{
    if (a->n != b->n || field_eq(a, b))
        return false;
    for (size_t i = 0; i < a->n; i++) {
        char x = a->s[i], y = b->s[i];
        if (x != y && !(((x | 0x20) == (y | 0x20)) && (x | 0x20) >= 'a' && (x | 0x20) <= 'z'))
            return false;
    }
    return true;
}

/* The error for a third label string: `other` was the one value besides the positive one, and
 * `third` is another. A value that is the positive one but for case gets a hint. */
static void three_labels_error(const csv_ctx *cx, csv_error *e, int64_t r, const char *pos,
                               const field *other, const field *third)
{
    char a[64], b[64], c[64], h[64];
    const field *near = same_but_case(third, &cx->positive)   ? third
                        : same_but_case(other, &cx->positive) ? other
                                                              : NULL;
    char hint[160] = "";
    if (near)
        snprintf(hint, sizeof hint,
                 " ('%s' differs from the positive value only in case; labels are compared "
                 "exactly)",
                 snippet(h, sizeof h, near->s, near->n));
    /* Worded so it holds whether or not the positive value occurs at all (a misspelt one
     * does not). */
    set_row_error(e, r, pos, cx->label_col + 1, TG_EPARSE,
                  "label column '%s' has values '%s' and '%s' besides the positive value '%s'; "
                  "string labels need exactly one other value%s",
                  cx->col_names[cx->label_col], snippet(b, sizeof b, other->s, other->n),
                  snippet(c, sizeof c, third->s, third->n),
                  snippet(a, sizeof a, cx->positive.s, cx->positive.n), hint);
}

/* Labels given as two strings: `positive` is 1, the one other value is 0. */
static int label_string(const csv_ctx *cx, block_state *bs, int64_t r, const field *f, float *y,
                        int st)
{
    if (field_eq(f, &cx->positive)) {
        *y = 1.0f;
        return st;
    }
    *y = 0.0f;
    if (!bs->has_other) {
        bs->has_other = true;
        bs->other = *f;
        bs->other_row = r;
        bs->other_pos = f->s;
    } else if (!field_eq(f, &bs->other)) {
        three_labels_error(cx, &bs->err, r, f->s, &bs->other, f);
        return F_ERROR;
    }
    return st;
}

/* Whether the number s[0, n), which reads as the float v (0 or 1), is exactly that value: the
 * float32 rounding alone would take "0.99999999" for 1 and "1e-60" for 0, labels the data does
 * not hold. Exactly 0: no nonzero digit before the exponent. Exactly 1: one nonzero digit, a 1
 * (a power of ten then, and 10^0 is the only one that rounds to 1). */
static bool exactly_binary(const char *s, size_t n, float v)
{
    int nonzero = 0;
    char digit = '0';
    for (size_t i = 0; i < n && (s[i] | 0x20) != 'e'; i++)
        if (s[i] >= '1' && s[i] <= '9')
            nonzero++, digit = s[i];
    return v == 0.0f ? nonzero == 0 : nonzero == 1 && digit == '1';
}

static const char *label_missing_message(tg_missing_policy p)
{
    if (p == TG_MISSING_MEAN)
        return "is missing (the mean policy fills features, not labels)";
    if (p == TG_MISSING_KEEP)
        return "is missing (the keep policy leaves features missing, not labels)";
    return "is missing";
}

static int label_field(const csv_ctx *cx, block_state *bs, int64_t r, const char *p, float *y,
                       const char **next)
{
    field f;
    const char *err;
    int st = scan_field(cx, p, &f, next, &err);
    if (st == F_ERROR) {
        set_row_error(&bs->err, r, *next, cx->label_col + 1, TG_EPARSE, "%s", err);
        return F_ERROR;
    }
    if (is_missing(&f)) {
        if (cx->missing == TG_MISSING_DROP) {
            *y = NAN;
            bs->any_missing = true;
            return st;
        }
        return label_error(cx, bs, r, &f, label_missing_message(cx->missing));
    }
    if (cx->has_positive)
        return label_string(cx, bs, r, &f, y, st);
    field t = trimmed(f);
    float v;
    if (!f.escaped && tg_parse_float(t.s, t.n, &v) == 0) {
        if ((v != 0.0f && v != 1.0f) || !exactly_binary(t.s, t.n, v))
            return label_error(cx, bs, r, &f, "is not 0 or 1");
        *y = v == 1.0f ? 1.0f : 0.0f; /* -0 reads as 0 */
        return st;
    }
    if (ieq(t.s, t.n, "true") || ieq(t.s, t.n, "false")) {
        *y = (t.s[0] | 0x20) == 't' ? 1.0f : 0.0f;
        return st;
    }
    return label_error(cx, bs, r, &f,
                       "is not 0/1 or true/false; set positive to the value that means 1");
}

static int skip_field(const csv_ctx *cx, block_state *bs, int64_t r, int c, const char *p,
                      const char **next)
{
    field f;
    const char *err;
    int st = scan_field(cx, p, &f, next, &err);
    if (st == F_ERROR)
        set_row_error(&bs->err, r, *next, c + 1, TG_EPARSE, "%s", err);
    return st;
}

/* The wrong-field-count error: says which row set the count, since that row (a header with a
 * name too few, or a trailing delimiter) may be the one to fix. found < 0: "more". */
static void field_count_error(const csv_ctx *cx, block_state *bs, int64_t r, const char *pos,
                              int col, int found)
{
    char n[24] = "more", from[96] = "";
    if (found >= 0)
        snprintf(n, sizeof n, "%d", found);
    if (cx->first_line > 0)
        snprintf(from, sizeof from, " (the %s on line %lld has %d)",
                 cx->header ? "header" : "first row", (long long)cx->first_line, cx->ncols);
    set_row_error(&bs->err, r, pos, col, TG_EPARSE, "expected %d fields, found %s%s", cx->ncols, n,
                  from);
}

/* Checks that the row has exactly ncols fields; the error points at the first missing or the
 * first extra field. */
static bool field_count_ok(const csv_ctx *cx, block_state *bs, int64_t r, int c, int st,
                           const char *next)
{
    if (st == F_LAST && c < cx->ncols - 1) {
        const char *pos = next > cx->base && next[-1] == '\n' ? next - 1 : next;
        field_count_error(cx, bs, r, pos, c + 2, c + 1);
        return false;
    }
    if (st == F_MORE && c == cx->ncols - 1) {
        /* Count the extra fields for the message; "more" if the rest does not tokenize. */
        int found = cx->ncols;
        for (const char *p = next; st == F_MORE && found < INT_MAX; found++) {
            field f;
            const char *err;
            if ((st = scan_field(cx, p, &f, &p, &err)) == F_ERROR)
                break;
        }
        field_count_error(cx, bs, r, next, c + 2, st == F_ERROR ? -1 : found);
        return false;
    }
    return true;
}

/* After a value error in the row at p: when the row has more or fewer fields than the header,
 * that is the error to report. A row one field longer than the header puts a feature's number
 * in the label column, and "label '2' is not 0 or 1" would send the user the wrong way. */
static void prefer_field_count_error(const csv_ctx *cx, block_state *bs, int64_t r, const char *p)
{
    for (int c = 0; c < cx->ncols; c++) {
        field f;
        const char *next, *err;
        int st = scan_field(cx, p, &f, &next, &err);
        if (st == F_ERROR || !field_count_ok(cx, bs, r, c, st, next) || st == F_LAST)
            return;
        p = next;
    }
}

static bool parse_fields(const csv_ctx *cx, block_state *bs, int64_t r, const char *p, float *x,
                         float *y)
{
    const char *end = cx->end;
    const int nc = cx->ncols, last = nc - 1;
    const char delim = cx->delim;
    const bool spaces = cx->spaces;
    const bool sentinel = cx->sentinel;
    for (int c = 0; c < nc; c++) {
        const int role = cx->role[c];
        const char *next;
        int st;
        if (role >= 0) {
            /* Fast path: a plain number directly followed by the delimiter (or, in the last
             * column, by the end of the line). Anything else takes the general path. */
            float v;
            const char *q = p;
            while (q < end && *q == ' ')
                q++;
            const char *e = q == end || cx->num_delim ? NULL
                            : sentinel                ? tg_parse_float_fast_impl_(q, end, &v, false)
                                                      : tg_parse_float_fast_(q, end, &v);
            if (e && c < last && e < end && *e == delim && !spaces) {
                x[role] = v;
                p = e + 1;
                continue;
            }
            if (e && (st = end_field(cx, e, &next)) != F_ERROR)
                x[role] = v;
            else
                st = feature_field(cx, bs, r, c, p, &x[role], &next);
        } else if (role == ROLE_LABEL) {
            st = label_field(cx, bs, r, p, y, &next);
        } else {
            st = skip_field(cx, bs, r, c, p, &next);
        }
        if (st == F_ERROR || !field_count_ok(cx, bs, r, c, st, next))
            return false;
        p = next;
    }
    return true;
}

static bool parse_row(const csv_ctx *cx, block_state *bs, int64_t r, const char *p, float *x,
                      float *y)
{
    if (parse_fields(cx, bs, r, p, x, y))
        return true;
    prefer_field_count_error(cx, bs, r, p);
    return false;
}

/* ---- step 3, fast path: whole rows of plain numbers ---------------------------------------- */

#if CSV_FAST_ROWS
/* Whether the fast parsers may match the positive label value byte for byte (csv_fast_label):
 * the general parser must read a field of exactly those bytes as that value, so the value may
 * not start or end with a blank (trimmed), be a missing-value marker, or hold a byte that ends
 * or quotes a field. */
static bool fast_positive_ok(const csv_ctx *cx)
{
    const field *f = &cx->positive;
    if (f->n == 0 || is_missing(f) || is_blank(cx, f->s[0]) || is_blank(cx, f->s[f->n - 1]))
        return false;
    for (size_t i = 0; i < f->n; i++)
        if (f->s[i] == cx->delim || f->s[i] == '"' || f->s[i] == '\n' || f->s[i] == '\r')
            return false;
    return true;
}

/* Whether fast_row may be tried: it handles neither a positive label value it cannot match
 * byte for byte, nor a delimiter that could be read as part of a number. Blank-separated
 * fields (the delimiter ' ', always with cx->spaces) take it row by row where
 * csv_blank_window allows. */
static bool fast_rows_ok(const csv_ctx *cx)
{
    const char d = cx->delim;
    return (!cx->has_positive || fast_positive_ok(cx)) && !tg_is_digit_(d) && d != '.' &&
           d != '+' && d != '-' && (d | 0x20) != 'e' && d != '\n' && d != '\r' && d != '"';
}

/* Loading 16 bytes at last_tab + k gives a mask of the last k bytes (0 <= k <= 16). */
static const unsigned char last_tab[32] = {
    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static inline __m128i last_bytes(int k)
{
    return _mm_loadu_si128((const __m128i *)(const void *)(last_tab + k));
}

/* The field [s, e) as a float when it is [+-]digits[.digits] with at most 16 characters after
 * the sign (false otherwise, including when the rounding is not quick; the byte-wise parser
 * then decides). The 16 bytes before e must be readable. One 16-byte load replaces a loop per
 * digit: the whole field is checked and converted at once, with the point squeezed out. */
static inline bool fast_number(const char *s, const char *e, float *out)
{
    const bool neg = *s == '-';
    const char *m = s + (neg | (*s == '+'));
    if (e - m <= 0 || e - m > 16)
        return false;
    const int n = (int)(e - m);
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(e - 16));
    const __m128i nine = _mm_set1_epi8(9);
    __m128i t = _mm_sub_epi8(v, _mm_set1_epi8('0'));
    const __m128i dig = _mm_cmpeq_epi8(_mm_max_epu8(t, nine), nine);
    const unsigned in = (0xffffu << (16 - n)) & 0xffffu;
    const unsigned dm = (unsigned)_mm_movemask_epi8(dig) & in;
    const unsigned pm = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('.'))) & in;
    /* Only digits and at most one point, and at least one digit. */
    if ((dm | pm) != in || (pm & (pm - 1)) != 0 || dm == 0)
        return false;
    t = _mm_and_si128(t, _mm_and_si128(dig, last_bytes(n))); /* digit values, 0 elsewhere */
    int nfrac = 0;
    if (pm) {
        nfrac = 15 - __builtin_ctz(pm);
        /* Close the gap of the point: the bytes before it move one place later. */
        const __m128i frac = last_bytes(nfrac);
        t = _mm_or_si128(_mm_and_si128(frac, t), _mm_andnot_si128(frac, _mm_slli_si128(t, 1)));
    }
    /* 16 digits, earliest most significant: pairs, groups of 4, groups of 8. */
    const __m128i pairs =
        _mm_add_epi16(_mm_mullo_epi16(_mm_and_si128(t, _mm_set1_epi16(0xff)), _mm_set1_epi16(10)),
                      _mm_srli_epi16(t, 8));
    const __m128i quads = _mm_madd_epi16(pairs, _mm_set1_epi32(0x00010064));  /* x100 + x1 */
    const __m128i quads16 = _mm_packs_epi32(quads, quads);                    /* each <= 9999 */
    const __m128i octs = _mm_madd_epi16(quads16, _mm_set1_epi32(0x00012710)); /* x10000 + x1 */
    const uint64_t hi = (uint32_t)_mm_cvtsi128_si32(octs);
    const uint64_t lo = (uint32_t)_mm_cvtsi128_si32(_mm_srli_si128(octs, 4));
    const uint64_t w = hi * 100000000u + lo;
    if (w == 0) {
        *out = neg ? -0.0f : 0.0f;
        return true;
    }
    return tg_decimal_to_float_(w, -nfrac, neg, out);
}

/* Where the delimiters, line feeds and quotes (and with blank-separated fields, the tabs and
 * carriage returns) are in 64 bytes of input: bit i for byte i. */
typedef struct {
    uint64_t delim, line, quote, tab, cr;
} window;

static inline uint64_t mask16(__m128i v, __m128i c)
{
    return (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, c));
}

static inline window scan_window(const char *b, char delim, bool spaces)
{
    const __m128i vd = _mm_set1_epi8(delim), vn = _mm_set1_epi8('\n'), vq = _mm_set1_epi8('"');
    const __m128i vt = _mm_set1_epi8('\t'), vr = _mm_set1_epi8('\r');
    window w = {0, 0, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + 16 * i));
        w.delim |= mask16(v, vd) << (16 * i);
        w.line |= mask16(v, vn) << (16 * i);
        w.quote |= mask16(v, vq) << (16 * i);
        if (spaces) {
            w.tab |= mask16(v, vt) << (16 * i);
            w.cr |= mask16(v, vr) << (16 * i);
        }
    }
    return w;
}

/* Loads the window at b for a row: false when it is too close to the end of the input, has a
 * quote before the row's line feed, or (blank-separated fields) sets a field off in a way
 * csv_blank_window refuses. Delimiters after the line feed are dropped. */
static inline bool row_window(const csv_ctx *cx, const char *b, window *w, csv_blank_walk *bw)
{
    if (cx->end - b < 64)
        return false;
    *w = scan_window(b, cx->delim, cx->spaces);
    const uint64_t upto = w->line ? (w->line & (0 - w->line)) - 1 : ~UINT64_C(0);
    w->delim &= upto;
    /* upto stops short of the line feed: the '\r' before it is still in */
    if (cx->spaces && !csv_blank_window(bw, w->delim, w->tab & upto, w->cr & upto))
        return false;
    return (w->quote & upto) == 0;
}

/* One field [s, e) of fast_row; false when it is not a plain number (or a label csv_fast_label
 * takes). x and y are written either way: the row is redone when anything fails. */
static inline bool fast_field(const csv_ctx *cx, const csv_fast_plan *pl,
                              const csv_fast_scratch *sc, int c, const char *s, const char *e,
                              float *x, float *y, bool far)
{
    const int role = cx->role[c];
    if (role >= 0) {
        float v = 0.0f;
        bool good = far && fast_number(s, e, &v);
        /* Exponents, long fields, the first bytes of the input. e holds a byte that cannot
         * continue a number, so the unbounded scan stops by e. */
        if (!good)
            good = tg_parse_float_fast_impl_(s, cx->end, &v, false) == e;
        x[role] = v;
        return good;
    }
    if (role == ROLE_LABEL)
        return csv_fast_label(pl, sc, s, e, y);
    return true; /* a skipped column: any text without quotes is fine */
}

/* Parses the row at p when it is the common case: no quotes, exactly ncols fields that are all
 * plain numbers (or a label csv_fast_label takes), ending in "\n" or "\r\n" at least 64 bytes
 * before the end of the input. Returns false otherwise (x and y may be partly written); parse_row
 * then redoes the row and reports any error. Field ends come from bit masks of 64-byte windows, so
 * each number is parsed from a known start: the parses do not wait on each other, and there is no
 * byte loop whose exit the processor would mispredict. */
static bool fast_row(const csv_ctx *cx, const csv_fast_plan *pl, const csv_fast_scratch *sc,
                     const char *p, float *x, float *y)
{
    const int last = cx->ncols - 1;
    const char *b = p, *s = p;
    const bool far = p - cx->base >= 16; /* fast_number may read 16 bytes before a field end */
    window w;
    csv_blank_walk bw = csv_blank_start();
    if (!row_window(cx, b, &w, &bw))
        return false;
    bool ok = true;
    for (int c = 0; c < last; c++) {
        while (w.delim == 0) {
            if (w.line) /* the row ends early */
                return false;
            b += 64;
            if (!row_window(cx, b, &w, &bw))
                return false;
        }
        const char *e = b + __builtin_ctzll(w.delim);
        w.delim &= w.delim - 1;
        ok &= fast_field(cx, pl, sc, c, s, e, x, y, far);
        s = e + 1;
    }
    while (w.line == 0) {
        if (w.delim) /* more fields than columns */
            return false;
        b += 64;
        if (!row_window(cx, b, &w, &bw))
            return false;
    }
    if (w.delim)
        return false;
    const char *lf = b + __builtin_ctzll(w.line), *e = lf;
    if (e > s && e[-1] == '\r')
        e--;
    if (cx->spaces && !csv_blank_end(&bw, s, e, lf))
        return false;
    return fast_field(cx, pl, sc, last, s, e, x, y, far) && ok;
}
#endif

typedef struct {
    const csv_ctx *cx;
    const char *const *rows; /* data rows only */
    int64_t nrows;
    float *X, *y;
    block_state *bs;
    int64_t nblocks;
    atomic_llong next_block;
    atomic_llong first_error; /* lowest block with an error; later blocks need not run */
    bool fast;                /* plain-number rows may take a fast row parser (fast_rows_ok) */
    /* The AVX-512 row parser fast rows go to, with this plan; NULL when the CPU has none. */
    bool (*avx512_row)(const csv_fast_plan *, csv_fast_scratch *, const char *, float *, float *);
    csv_fast_plan plan;
    atomic_llong blocks_done;
    void (*progress)(int64_t rows_done, int64_t rows_total, void *user); /* caller's thread */
    void *progress_user;
    int64_t progress_at; /* data rows before these (read by the stream) */
} job;

#if CSV_FAST_ROWS && defined(TG_HAVE_CSV_AVX512)
/* Whether this CPU runs csv_avx512.c (every extension it is compiled with) and the kernel
 * family in force is avx512: TAPEGRAD_ISA or tg_set_isa() asking for an older family also
 * keeps the reader on the SSE2 rows (tests use that to reach them). */
static bool avx512_rows_ok(void)
{
    if (strcmp(tg_isa(), "avx512") != 0)
        return false;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("bmi") && __builtin_cpu_supports("popcnt");
}
#endif

static atomic_bool vbmi2_allowed = true, fast_rows_allowed = true;

void tg_csv_allow_vbmi2_(bool allow)
{
    atomic_store(&vbmi2_allowed, allow);
}

void tg_csv_allow_fast_rows_(bool allow)
{
    atomic_store(&fast_rows_allowed, allow);
}

#if defined(TG_HAVE_CSV_VBMI2)
/* The AVX-512 row parser built with VBMI2 when the CPU has that too: a byte compress finds the
 * field ends in fewer instructions (see csv_avx512.c). */
static bool vbmi2_rows_ok(void)
{
    __builtin_cpu_init();
    return atomic_load(&vbmi2_allowed) && __builtin_cpu_supports("avx512vbmi2");
}
#endif

/* Decides once per read whether fast rows apply, and sets up the AVX-512 row parser when the
 * CPU has it. */
static void plan_fast_rows(job *j)
{
    const csv_ctx *cx = j->cx;
    j->avx512_row = NULL;
    j->plan = (csv_fast_plan){.positive = cx->has_positive ? cx->positive.s : NULL,
                              .positive_len = cx->has_positive ? cx->positive.n : 0,
                              .spaces = cx->spaces};
#if CSV_FAST_ROWS
    j->fast = atomic_load(&fast_rows_allowed) && fast_rows_ok(cx);
#else
    j->fast = false;
#endif
#if CSV_FAST_ROWS && defined(TG_HAVE_CSV_AVX512)
    if (!j->fast || !avx512_rows_ok())
        return;
    csv_fast_plan *pl = &j->plan;
    pl->end = cx->end;
    pl->delim = cx->delim;
    pl->ncols = cx->ncols;
    pl->role = cx->role;
    pl->label_col = cx->label_col;
    for (int c = 0; c < cx->ncols; c++)
        if (cx->role[c] >= 0)
            pl->nconv = c + 1;
    pl->direct = true;
    for (int c = 0; c < pl->nconv; c++)
        pl->direct &= cx->role[c] == c;
    j->avx512_row = csv_fast_row_avx512;
#if defined(TG_HAVE_CSV_VBMI2)
    if (vbmi2_rows_ok())
        j->avx512_row = csv_fast_row_avx512_vbmi2;
#endif
#else
    (void)cx;
#endif
}

/* Scratch for the AVX-512 row parser, one per thread; all NULL when it is not used. */
static csv_fast_scratch scratch_new(const job *j)
{
    csv_fast_scratch sc = {.ends = NULL};
    if (!j->avx512_row)
        return sc;
    sc.ends = calloc((size_t)csv_fast_ends_len(j->cx->ncols), sizeof *sc.ends);
    sc.vals = calloc((size_t)csv_fast_vals_len(j->cx->ncols), sizeof *sc.vals);
    if (!sc.ends || !sc.vals) { /* no memory: the other paths need none */
        free(sc.ends);
        free(sc.vals);
        sc.ends = NULL;
        sc.vals = NULL;
    }
    return sc;
}

#if CSV_FAST_ROWS
/* The fast row parser for this CPU. The AVX-512 one reads up to 16 bytes before a field, so
 * it needs the row to start at least 16 bytes into the input; and it may ask for a pause. */
static inline bool try_fast_row(const job *j, csv_fast_scratch *sc, const char *p, float *x,
                                float *y)
{
#if defined(TG_HAVE_CSV_AVX512)
    if (sc->ends && sc->rest == 0 && p - j->cx->base >= 16)
        return j->avx512_row(&j->plan, sc, p, x, y);
    sc->rest -= sc->rest > 0;
#else
    (void)sc;
#endif
    return fast_row(j->cx, &j->plan, sc, p, x, y);
}
#endif

/* Index of the first ±inf in x[0, n), or -1. The matches are counted, in 32-bit lanes over
 * chunks that cannot overflow them, so that the compiler vectorizes the loop without widening
 * every comparison to 64 bits (which made this check 7 ms of a 1M x 32 file's 290 ms read); NaN
 * (a missing value's marker) does not match. */
static int64_t find_infinite(const float *x, int64_t n)
{
    const int64_t chunk = (int64_t)1 << 30;
    for (int64_t at = 0; at < n; at += chunk) {
        const float *c = x + at;
        const int64_t m = n - at < chunk ? n - at : chunk;
        int32_t hits = 0;
        for (int64_t i = 0; i < m; i++)
            hits += fabsf(c[i]) == INFINITY;
        if (hits == 0)
            continue;
        for (int64_t i = 0;; i++)
            if (fabsf(c[i]) == INFINITY)
                return at + i;
    }
    return -1;
}

/* Records an error at the first field of row r, in file order, whose feature in x (the row's
 * parsed features) is ±inf. A number that reads as ±inf ("inf", "1e39") is an error: no model
 * can be fitted to it, and it would otherwise surface later, far from its line and column. The
 * file's order, not the features' (which --features may reorder), so that the error names the
 * field a reader of the row meets first. */
static bool infinite_error(const csv_ctx *cx, block_state *bs, int64_t r, const char *p,
                           const float *x)
{
    for (int c = 0; c < cx->ncols; c++) {
        field f;
        const char *next, *err;
        int st = scan_field(cx, p, &f, &next, &err);
        if (st == F_ERROR)
            break;
        int feat = cx->role[c];
        if (feat >= 0 && fabsf(x[feat]) == INFINITY) {
            char sn[64];
            field t = trimmed(f);
            set_row_error(&bs->err, r, f.s, c + 1, TG_EPARSE,
                          "number '%s' in column '%s' is infinite or beyond the float32 range",
                          snippet(sn, sizeof sn, t.s, t.n), cx->col_names[c]);
            return false;
        }
        p = next;
    }
    set_row_error(&bs->err, r, p, 1, TG_EPARSE, "infinite value in a feature");
    return false;
}

/* infinite_error for the row of X's element k (X from row r0 of the block on). */
static bool infinite_error_at(const job *j, block_state *bs, int64_t r0, int64_t k)
{
    int64_t r = r0 + k / j->cx->nfeat;
    return infinite_error(j->cx, bs, r, j->rows[r], j->X + r * j->cx->nfeat);
}

/* Parses the rows of block b; false at the first error (recorded in the block's state). */
/* With string labels, hands the fast parsers the other label value once the general parser has
 * met it (bs), so that they take its rows too. An escaped one holds a quote, which no field they
 * take does. */
static void learn_other(csv_fast_scratch *sc, const field *other)
{
    if (!sc->other && !other->escaped) {
        sc->other = other->s;
        sc->other_len = other->n;
    }
}

static bool parse_block_rows(job *j, int64_t b, csv_fast_scratch *sc)
{
    const csv_ctx *cx = j->cx;
    block_state *bs = &j->bs[b];
    int64_t r0 = b * BLOCK_ROWS, r1 = r0 + BLOCK_ROWS < j->nrows ? r0 + BLOCK_ROWS : j->nrows;
    sc->other = NULL; /* the other label value is the block's own until the blocks merge */
    for (int64_t r = r0; r < r1; r++) {
        float *y = j->y ? j->y + r : NULL;
        float *x = j->X + r * cx->nfeat;
#if CSV_FAST_ROWS
        if (j->fast && try_fast_row(j, sc, j->rows[r], x, y))
            continue;
#else
        (void)sc;
#endif
        if (!parse_row(cx, bs, r, j->rows[r], x, y)) {
            /* An infinity in an earlier row of the block comes first in the file: report it,
             * as a block boundary between the two rows would. */
            int64_t k = find_infinite(j->X + r0 * cx->nfeat, (r - r0) * cx->nfeat);
            if (k >= 0)
                infinite_error_at(j, bs, r0, k);
            return false;
        }
        if (bs->has_other)
            learn_other(sc, &bs->other);
    }
    const int64_t nf = cx->nfeat;
    int64_t k = find_infinite(j->X + r0 * nf, (r1 - r0) * nf);
    return k < 0 || infinite_error_at(j, bs, r0, k);
}

static void parse_block(job *j, int64_t b, csv_fast_scratch *sc)
{
    if (!parse_block_rows(j, b, sc)) {
        long long cur = atomic_load(&j->first_error);
        while (b < cur && !atomic_compare_exchange_weak(&j->first_error, &cur, b)) {
        }
    }
}

/* Claims and parses blocks until none are left. Only the calling thread (caller) reports
 * progress, so the user's callback never runs on one of our threads. */
static void run_blocks(job *j, bool caller)
{
    csv_fast_scratch sc = scratch_new(j);
    for (;;) {
        long long b = atomic_fetch_add(&j->next_block, 1);
        /* Blocks are claimed in increasing order, so once one lies past an error, all do. */
        if (b >= j->nblocks || b > atomic_load(&j->first_error))
            break;
        parse_block(j, b, &sc);
        long long done = atomic_fetch_add(&j->blocks_done, 1) + 1;
        /* The last block is left to parse_data's final call, made once every row is in. */
        if (caller && j->progress && done * BLOCK_ROWS < j->nrows)
            j->progress(j->progress_at + done * BLOCK_ROWS, j->progress_at + j->nrows,
                        j->progress_user);
    }
    free(sc.ends);
    free(sc.vals);
}

static void *run_blocks_thread(void *arg)
{
    run_blocks(arg, false);
    return NULL;
}

static void run_parallel(job *j, int threads)
{
    if (threads > j->nblocks)
        threads = (int)j->nblocks;
    pthread_t *tid = threads > 1 ? malloc((size_t)(threads - 1) * sizeof *tid) : NULL;
    int started = 0;
    if (tid)
        while (started < threads - 1 &&
               pthread_create(&tid[started], NULL, run_blocks_thread, j) == 0)
            started++;
    run_blocks(j, true); /* the caller works too; with no helper threads it does everything */
    for (int i = 0; i < started; i++)
        pthread_join(tid[i], NULL);
    free(tid);
}

/* Walks the blocks in file order and reports the first problem: a block's own error, or a label
 * string that differs from the one other label seen in earlier blocks, or in the rows before
 * them (seed: the stream's, or NULL). */
static tg_status merge_blocks(const csv_ctx *cx, const job *j, const block_state *seed,
                              bool *any_missing)
{
    const block_state *other = seed && seed->has_other ? seed : NULL;
    *any_missing = false;
    for (int64_t b = 0; b < j->nblocks; b++) {
        const block_state *bs = &j->bs[b];
        if (bs->has_other) {
            if (!other) {
                other = bs;
            } else if (!field_eq(&other->other, &bs->other) &&
                       (bs->err.row < 0 || bs->other_row <= bs->err.row)) {
                /* In the row of the block's error too: its label was read before the error
                 * (the row stops at an error), so in one block the label would have failed
                 * first, and a wrong field count would then have taken its place. */
                block_state e = {.err.row = -1};
                three_labels_error(cx, &e.err, bs->other_row, bs->other_pos, &other->other,
                                   &bs->other);
                prefer_field_count_error(cx, &e, bs->other_row, j->rows[bs->other_row]);
                return report(cx, &e.err);
            }
        }
        if (bs->err.row >= 0)
            return report(cx, &bs->err);
        *any_missing |= bs->any_missing;
    }
    return TG_OK;
}

/* ---- missing values ------------------------------------------------------------------------ */

static tg_status fill_means(const csv_ctx *cx, float *X, int64_t rows)
{
    const int nf = cx->nfeat;
    if (cx->fill) {
        /* The fill replaces the NaN markers: a NaN fill would leave the gap in X, and an
         * infinite one would put there the value a field may not read as. */
        for (int j = 0; j < nf; j++)
            if (!isfinite(cx->fill[j]))
                return tg_set_error(TG_EINVAL, "%s: fill[%d] is %g; fill values must be finite",
                                    cx->name, j, (double)cx->fill[j]);
        for (int64_t r = 0; r < rows; r++)
            for (int j = 0; j < nf; j++)
                if (isnan(X[r * nf + j]))
                    X[r * nf + j] = cx->fill[j];
        return TG_OK;
    }
    double *sum = calloc((size_t)nf, sizeof *sum);
    int64_t *cnt = calloc((size_t)nf, sizeof *cnt);
    if (!sum || !cnt) {
        free(sum);
        free(cnt);
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    }
    /* Row order, in double: the same means whatever the thread count. */
    for (int64_t r = 0; r < rows; r++)
        for (int j = 0; j < nf; j++) {
            float v = X[r * nf + j];
            if (!isnan(v)) {
                sum[j] += v;
                cnt[j]++;
            }
        }
    tg_status st = TG_OK;
    for (int c = 0; c < cx->ncols && st == TG_OK; c++) {
        int j = cx->role[c];
        if (j >= 0 && cnt[j] == 0 && rows > 0)
            st = tg_set_error(TG_EPARSE, "%s: column '%s' has no values to take the mean of",
                              cx->name, cx->col_names[c]);
    }
    if (st == TG_OK)
        for (int64_t r = 0; r < rows; r++)
            for (int j = 0; j < nf; j++)
                if (isnan(X[r * nf + j]))
                    X[r * nf + j] = (float)(sum[j] / (double)cnt[j]);
    free(sum);
    free(cnt);
    return st;
}

/* Moves the rows without NaN markers to the front; returns how many are kept. */
static int64_t drop_rows(int nf, float *X, float *y, int64_t rows)
{
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++) {
        bool keep = !y || !isnan(y[r]);
        for (int j = 0; j < nf && keep; j++)
            keep = !isnan(X[r * nf + j]);
        if (!keep)
            continue;
        if (k != r) {
            memmove(X + k * nf, X + r * nf, (size_t)nf * sizeof *X);
            if (y)
                y[k] = y[r];
        }
        k++;
    }
    return k;
}

/* ---- driver -------------------------------------------------------------------------------- */

void tg_csv_options_init(tg_csv_options *opt)
{
    if (!opt)
        return;
    memset(opt, 0, sizeof *opt);
    opt->missing = TG_MISSING_ERROR;
}

void tg_csv_data_free(tg_csv_data *d)
{
    if (!d)
        return;
    tg_release(d->X);
    tg_release(d->y);
    if (d->names)
        for (int i = 0; i < d->n_features; i++)
            free(d->names[i]);
    free(d->names);
    free(d->label_name);
    memset(d, 0, sizeof *d);
}

static tg_status check_options(const char *name, const tg_csv_options *opt)
{
    const char *bad = NULL;
    if (opt->skip_rows < 0)
        bad = "skip_rows is negative";
    else if (opt->threads < 0)
        bad = "threads is negative";
    else if (opt->n_features < 0 || (opt->n_features > 0 && !opt->features))
        bad = "n_features does not match features";
    else if ((unsigned)opt->missing > TG_MISSING_KEEP)
        bad = "unknown missing-value policy";
    else if (opt->delimiter == '"' || opt->delimiter == '\n' || opt->delimiter == '\r')
        bad = "the delimiter cannot be a quote or a line break";
    if (bad)
        return tg_set_error(TG_EINVAL, "%s: %s", name, bad);
    return TG_OK;
}

typedef struct {
    csv_ctx cx;
    row_list rows;
    block_state *bs;
    tg_tensor *X, *y;
} reader;

static void reader_free(reader *rd)
{
    if (rd->cx.col_names)
        for (int c = 0; c < rd->cx.ncols; c++)
            free(rd->cx.col_names[c]);
    free(rd->cx.col_names);
    free(rd->cx.role);
    free(rd->rows.v);
    free(rd->bs);
    tg_release(rd->X);
    tg_release(rd->y);
}

/* Faults in the pages of [p, p + bytes) in one call when they are 8 MB or more, so that the
 * work that follows does not take them one trap at a time. write: MADV_POPULATE_WRITE, for an
 * output buffer (X of a 1M x 32 file is 128 MB that the parse touches once, and taking its 32768
 * page faults one at a time cost about a fifth of the load); otherwise MADV_POPULATE_READ, for
 * the part of a mapped file the split will read (the file is mapped without MAP_POPULATE, for
 * the stream, which reads its rows with pread). Only a hint: kernels without these advices
 * (before Linux 5.14) just return an error that is ignored. */
static void populate(const void *p, size_t bytes, bool write)
{
#if defined(MADV_POPULATE_WRITE) && defined(MADV_POPULATE_READ)
    if (bytes >= ((size_t)8 << 20))
        tg_advise_pages((void *)(uintptr_t)p, bytes,
                        write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
#else
    (void)p, (void)bytes, (void)write;
#endif
}

/* New tensor owned by the caller even inside a tg_scope; prefault: its pages faulted in now
 * (a buffer from the cache is already mapped). */
static tg_tensor *owned_empty(int ndim, const int64_t *shape, bool prefault)
{
    tg_tensor *t = tg_keep(tg_empty(ndim, shape));
    if (t && prefault)
        populate(tg_data(t), (size_t)tg_numel(t) * sizeof(float), true);
    return t;
}

/* Threads for the split and the parse: the caller's choice, else the library's. */
static int reader_threads(const tg_csv_options *opt)
{
    int threads = opt->threads ? opt->threads : tg_get_num_threads();
    return threads < 1 ? 1 : threads;
}

/* X and y for nrows data rows, owned by rd. */
static tg_status alloc_outputs(reader *rd, int64_t nrows, bool prefault)
{
    int64_t shape[2] = {nrows, rd->cx.nfeat};
    rd->X = owned_empty(2, shape, prefault);
    if (!rd->X)
        return tg_last_status();
    if (rd->cx.label_col >= 0 && !(rd->y = owned_empty(1, shape, prefault)))
        return tg_last_status();
    return TG_OK;
}

/* Parses rows[0, nrows) into data rows [at, at + nrows) of rd->X and rd->y, in blocks on the
 * reader's threads; seed holds the other label value of the rows before them, if any. */
static tg_status parse_rows_at(reader *rd, const tg_csv_options *opt, const char *const *rows,
                               int64_t nrows, int64_t at, const block_state *seed, bool *missing)
{
    csv_ctx *cx = &rd->cx;
    job j = {.cx = cx, .rows = rows, .nrows = nrows};
    j.X = (float *)tg_data(rd->X) + at * cx->nfeat;
    j.y = rd->y ? (float *)tg_data(rd->y) + at : NULL;
    j.nblocks = (nrows + BLOCK_ROWS - 1) / BLOCK_ROWS;
    atomic_init(&j.next_block, 0);
    atomic_init(&j.first_error, j.nblocks);
    atomic_init(&j.blocks_done, 0);
    j.progress = opt->progress;
    j.progress_user = opt->progress_user;
    j.progress_at = at;
    free(rd->bs);
    rd->bs = calloc((size_t)(j.nblocks > 0 ? j.nblocks : 1), sizeof *rd->bs);
    if (!rd->bs)
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    for (int64_t b = 0; b < j.nblocks; b++)
        rd->bs[b].err.row = -1;
    j.bs = rd->bs;
    plan_fast_rows(&j);
    run_parallel(&j, reader_threads(opt));
    tg_status st = merge_blocks(cx, &j, seed, missing);
    if (st == TG_OK && j.progress)
        j.progress(at + nrows, at + nrows, j.progress_user); /* the last word: every row is in */
    return st;
}

static tg_status parse_data(reader *rd, const tg_csv_options *opt, int64_t first, bool *missing)
{
    int64_t nrows = rd->rows.n - first;
    tg_status st = alloc_outputs(rd, nrows, true);
    if (st != TG_OK)
        return st;
    /* rows.v is NULL when no row was found (a rank's empty share): no offset may be applied */
    const char *const *rows = rd->rows.v ? rd->rows.v + first : NULL;
    return parse_rows_at(rd, opt, rows, nrows, 0, NULL, missing);
}

/* ---- the stream: parsing the rows as they are read ------------------------------------------
 * For a file whose rows the AVX-512 row parser takes, the data rows are parsed
 * as the input is read, a chunk at a time through a small buffer, with no split before. That
 * saves the split's pass, and the first touch of every page of a mapped file: on the AMD EPYC
 * VM (Zen 5) of 2026-11-28, whose host takes those first touches, reading a mapped 279 MB file
 * took 68-105 ms the first time, and pread through a buffer of 1 MB 30-42 ms. A row the AVX-512
 * parser leaves (a missing value, a number it cannot take, a quoted field) goes to the general
 * row parser, bounded by its line (stream_other_row). The first row neither takes (a line feed
 * inside quotes, an error of any kind, the last row without a line feed, or the outputs full)
 * ends the stream: the rows from there on are split and parsed as they are without it, so
 * results and errors are the same. */

typedef struct {
    const char *data; /* the whole input, in memory or mapped */
    size_t len;
    int fd; /* >= 0: the stream reads the bytes with pread, and leaves the mapping untouched */
} csv_input;

#define STREAM_CHUNK  ((size_t)1 << 20)
#define STREAM_BEFORE 64 /* readable bytes before the chunk: the parser reads 16 before a field */

static _Atomic size_t stream_min_bytes = (size_t)4 << 20; /* smaller inputs: split, then parse */

void tg_csv_set_stream_min_(size_t bytes)
{
    atomic_store(&stream_min_bytes, bytes);
}

/* A test hook's figure: not worth a thread-local slot (tls.h), so reads on other threads at the
 * same time overwrite it. */
static _Atomic int64_t streamed_rows;

int64_t tg_csv_streamed_rows_(void)
{
    return atomic_load(&streamed_rows);
}

/* Copies input bytes [off, off + n) (fewer at its end) to dst; returns how many. A failed read
 * ends the stream early, and the mapping then gives the rest. */
static size_t input_bytes(const csv_input *in, size_t off, char *dst, size_t n)
{
    if (off >= in->len)
        return 0;
    if (n > in->len - off)
        n = in->len - off;
    if (in->fd < 0) {
        memcpy(dst, in->data + off, n);
        return n;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(in->fd, dst + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return got;
}

/* Progress while streaming: the total is estimated from the bytes read so far. */
static void stream_progress(const job *j, const csv_input *in, size_t start, size_t at,
                            int64_t rows)
{
    const double est = (double)rows * (double)(in->len - start) / (double)(at - start);
    const int64_t total = est > (double)rows ? (int64_t)est : rows + 1;
    j->progress(rows, total, j->progress_user);
}

/* What a stream leaves besides its rows. */
typedef struct {
    size_t stop;    /* input offset of the first row not parsed: limit when all were */
    bool missing;   /* a missing value was marked (a NaN in X) */
    bool has_other; /* with string labels: the other value met, as in block_state */
    field other;    /* pointing into the input, not the chunk */
} stream_result;

/* A row the AVX-512 parser left (or was not asked to take), at p in a chunk whose bytes end at
 * end, and at in_p in the input: the general row parser takes it when its line is whole in the
 * chunk, given that line alone as its input. It then succeeds only for a row that ends at the
 * line's line feed, every quoted field closed before it (p is a row start: every row before it
 * ended so). That keeps the stream going past a missing value, numbers the batches cannot take,
 * quoted fields, a label string met for the first time (the other value, which the fast parser
 * then takes too: sc), or a blank line (*took false: no row). Returns where the next row starts,
 * or NULL where the stream must stop: a line feed inside quotes, an error or a third label value
 * (the split and the blocks then report it, with its line), or a line not yet read in full. */
static const char *stream_other_row(const job *j, csv_fast_scratch *sc, const char *p,
                                    const char *end, const char *in_p, float *x, float *y,
                                    int64_t k, bool *took, stream_result *res)
{
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl)
        return NULL;
    *took = !blank_row(p, nl);
    if (!*took)
        return nl + 1;
    csv_ctx line = *j->cx; /* bounded by this line, which ends in a byte no number continues */
    line.end = nl + 1;
    line.sentinel = true;
    block_state bs = {.err.row = -1};
    if (!parse_row(&line, &bs, k, p, x, y))
        return NULL;
    if (bs.has_other) {
        field other = bs.other; /* the chunk moves on: keep where the value is in the input */
        other.s = in_p + (bs.other.s - p);
        if (res->has_other && !field_eq(&res->other, &other))
            return NULL;
        if (!res->has_other) {
            res->has_other = true;
            res->other = other;
            learn_other(sc, &other);
        }
    }
    res->missing |= bs.any_missing;
    return nl + 1;
}

/* Parses data rows from input offset start on into j's outputs, which hold cap rows, until a
 * row neither parser takes (stream_other_row) or the next row starts at limit; returns the rows
 * parsed, and res gets the rest of the outcome. */
static int64_t stream_rows(job *j, const csv_input *in, size_t start, size_t limit, int64_t cap,
                           stream_result *res)
{
    const int64_t nf = j->cx->nfeat;
    const int last = j->cx->ncols;
    csv_fast_scratch sc = scratch_new(j);
    char *buf = malloc(STREAM_BEFORE + STREAM_CHUNK);
    size_t off = start, have = 0; /* input offset of chunk[0]; bytes in the chunk */
    int64_t k = 0;
    for (bool more = buf && sc.ends && start < limit; more;) {
        char *chunk = buf + STREAM_BEFORE;
        if (have == 0)
            memset(buf, 0, STREAM_BEFORE);
        const size_t want = STREAM_CHUNK - have;
        const size_t got = input_bytes(in, off + have, chunk + have, want);
        have += got;
        j->plan.end = chunk + have;
        const char *p = chunk;
        while (off + (size_t)(p - chunk) < limit && k < cap) {
            float *x = j->X + k * nf, *y = j->y ? j->y + k : NULL;
            const char *next;
            bool took = true;
            sc.rest -= sc.rest > 0;
            if (sc.rest == 0 && j->avx512_row(&j->plan, &sc, p, x, y)) {
                const char *e = p + sc.ends[last]; /* the row's '\r' or '\n' */
                next = e + (*e == '\r' ? 2 : 1);
            } else if (!(next = stream_other_row(j, &sc, p, chunk + have,
                                                 in->data + off + (size_t)(p - chunk), x, y, k,
                                                 &took, res))) {
                break;
            }
            p = next;
            if (took && ++k % BLOCK_ROWS == 0 && j->progress)
                stream_progress(j, in, start, off + (size_t)(p - chunk), k);
        }
        const size_t used = (size_t)(p - chunk);
        /* More input helps only a row the parser left for want of bytes after it. */
        more = got == want && used > 0 && off + used < limit && k < cap;
        memmove(chunk, p, have - used);
        off += used;
        have -= used;
    }
    res->stop = off;
    free(buf);
    free(sc.ends);
    free(sc.vals);
    return k;
}

/* The error for an infinity in streamed rows: element k of x, which holds the rows from start
 * on. */
static tg_status streamed_infinite(const csv_ctx *cx, const char *start, const float *x, int64_t k)
{
    const int64_t r = k / cx->nfeat;
    row_list rows = {NULL, 0, 0};
    block_state bs = {.err.row = -1};
    if (!split_rows(start, cx->end, cx->end, r + 1, &rows, NULL) || rows.n <= r) {
        free(rows.v);
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    }
    infinite_error(cx, &bs, r, rows.v[r], x + r * cx->nfeat);
    free(rows.v);
    return report(cx, &bs.err);
}

/* Makes X and y hold exactly rows data rows: a larger copy when the estimate fell short (the
 * first done rows kept), a view of the first rows when it ran long. */
static tg_status fit_outputs(reader *rd, int64_t rows, int64_t done)
{
    tg_tensor *X = rd->X, *y = rd->y;
    const int64_t nf = rd->cx.nfeat, have = tg_shape(X)[0];
    if (rows == have)
        return TG_OK;
    rd->X = rd->y = NULL;
    tg_status st = rows > have ? alloc_outputs(rd, rows, true) : TG_OK;
    if (st == TG_OK && rows > have) {
        memcpy(tg_data(rd->X), tg_data(X), (size_t)(done * nf) * sizeof(float));
        if (y)
            memcpy(tg_data(rd->y), tg_data(y), (size_t)done * sizeof(float));
    } else if (st == TG_OK) {
        if (!(rd->X = tg_keep(tg_narrow(X, 0, 0, rows))) ||
            (y && !(rd->y = tg_keep(tg_narrow(y, 0, 0, rows)))))
            st = tg_last_status();
    }
    tg_release(X);
    tg_release(y);
    return st;
}

/* Whether the data rows may be streamed: rows the AVX-512 parser takes. */
static bool streams(const csv_ctx *cx)
{
    job probe = {.cx = cx};
    plan_fast_rows(&probe);
    return probe.fast && probe.avx512_row;
}

/* ---- several threads: a range of the input each ----
 * Each thread streams the rows that start in its own byte range of the data, the first from the
 * first data row, the others from the first line start in their range, which they take to lie
 * outside quotes. A thread that streams up to the next one's first row has shown that row to be
 * a true row start (each row it took ended at its line feed), so the ranges hold from the first on
 * until one stops early; the rows from there on, whatever later threads made of them, go to the
 * split and the blocks, as with one thread. Each range fills its own stretch of X, sized from its
 * first 64 KB, and the stretches are moved together afterwards. */
#define STREAM_MAX_THREADS READER_MAX_THREADS

typedef struct {
    job j; /* a copy per range: its own outputs, and its own plan, whose end moves with the chunk */
    const csv_input *in;
    size_t start, limit; /* this range's first row start, and the next range's */
    int64_t at, cap;     /* where its stretch of X starts (rows), and the rows it holds */
    int64_t rows;        /* rows parsed */
    stream_result res;   /* res.stop: limit when the range went through */
} stream_range;

static void *stream_range_thread(void *arg)
{
    stream_range *r = arg;
    r->rows = stream_rows(&r->j, r->in, r->start, r->limit, r->cap, &r->res);
    return NULL;
}

/* Threads for the stream: the reader's, each with at least half the stream's minimum input. */
static int stream_threads(const tg_csv_options *opt, size_t bytes)
{
    size_t per = atomic_load(&stream_min_bytes) / 2;
    size_t most = bytes / (per ? per : 1);
    int n = reader_threads(opt);
    n = n < STREAM_MAX_THREADS ? n : STREAM_MAX_THREADS;
    return (size_t)n < most ? n : most > 0 ? (int)most : 1;
}

/* Cuts [start, len) into n ranges at line starts and sizes their stretches of X. */
static int64_t plan_ranges(const csv_input *in, const job *j, size_t start, stream_range *r, int n)
{
    const size_t len = in->len, bytes = len - start;
    int64_t at = 0;
    for (int t = 0; t < n; t++) {
        r[t] = (stream_range){.j = *j, .in = in, .start = start, .limit = len};
        if (t > 0) {
            const char *lo = in->data + start + bytes * (size_t)t / (size_t)n;
            const char *nl = find(lo - 1, in->data + len, '\n');
            r[t].start = nl < in->data + len ? (size_t)(nl + 1 - in->data) : len;
            r[t - 1].limit = r[t].start;
        }
    }
    for (int t = 0; t < n; t++) {
        r[t].cap = estimate_rows(in->data + r[t].start, in->data + r[t].limit);
        r[t].at = at;
        at += r[t].cap;
        if (t > 0)
            r[t].j.progress = NULL; /* only the caller's thread reports */
    }
    return at;
}

/* Runs the ranges on their threads (run_each), each into its own stretch of X and y. */
static void run_ranges(stream_range *r, int n, float *X, float *y, int64_t nf)
{
    for (int t = 0; t < n; t++) {
        r[t].j.X = X + r[t].at * nf;
        r[t].j.y = y ? y + r[t].at : NULL;
    }
    run_each(stream_range_thread, r, sizeof r[0], n);
}

/* Moves the ranges' rows together, from the first range on to the first that stopped early, or
 * up to the first that met another other label value than the ranges before (the split and the
 * blocks then report the third value), checking each for infinities in file order. *done gets
 * the rows kept and kept what they leave: where the rest starts (kept->stop, which the caller
 * sets to the first range's start), missing values, and the other label value. */
static tg_status join_streams(reader *rd, const csv_input *in, const stream_range *r, int n,
                              int64_t *done, stream_result *kept)
{
    const csv_ctx *cx = &rd->cx;
    const int64_t nf = cx->nfeat;
    float *X = tg_data(rd->X), *y = rd->y ? tg_data(rd->y) : NULL;
    *done = 0;
    for (int t = 0; t < n; t++) {
        const stream_result *res = &r[t].res;
        if (res->has_other && kept->has_other && !field_eq(&kept->other, &res->other))
            break;
        if (r[t].at != *done) {
            memmove(X + *done * nf, X + r[t].at * nf, (size_t)(r[t].rows * nf) * sizeof(float));
            if (y)
                memmove(y + *done, y + r[t].at, (size_t)r[t].rows * sizeof(float));
        }
        const int64_t inf = find_infinite(X + *done * nf, r[t].rows * nf);
        if (inf >= 0)
            return streamed_infinite(cx, in->data + r[t].start, X + *done * nf, inf);
        *done += r[t].rows;
        kept->stop = res->stop;
        kept->missing |= res->missing;
        if (res->has_other && !kept->has_other) {
            kept->has_other = true;
            kept->other = res->other;
        }
        if (res->stop != r[t].limit)
            break;
    }
    return TG_OK;
}

/* Reads the data rows from start on: the stream, then the split and the blocks for the rows it
 * left. *nrows gets the data rows. */
static tg_status stream_data(reader *rd, const tg_csv_options *opt, const csv_input *in,
                             const char *start, bool *missing, int64_t *nrows)
{
    csv_ctx *cx = &rd->cx;
    stream_range r[STREAM_MAX_THREADS];
    job j = {.cx = cx, .progress = opt->progress, .progress_user = opt->progress_user};
    plan_fast_rows(&j);
    const size_t from = (size_t)(start - in->data);
    const int n = stream_threads(opt, in->len - from);
    /* Not pre-faulted: the rows fill it in order, and pages past the last are never touched. */
    tg_status st = alloc_outputs(rd, plan_ranges(in, &j, from, r, n), false);
    if (st != TG_OK)
        return st;
    run_ranges(r, n, tg_data(rd->X), rd->y ? tg_data(rd->y) : NULL, cx->nfeat);
    int64_t done;
    stream_result kept = {.stop = from};
    if ((st = join_streams(rd, in, r, n, &done, &kept)) != TG_OK)
        return st;
    atomic_store(&streamed_rows, done);
    const char *rest = in->data + kept.stop;
    populate(rest, (size_t)(cx->end - rest), false);
    row_list left = {NULL, 0, 0};
    reserve_rows(&left, rest, cx->end);
    if (!split_all(rest, cx->end, reader_threads(opt), &left))
        st = tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    if (st == TG_OK)
        st = fit_outputs(rd, done + left.n, done);
    /* The streamed rows' other label value, against which the blocks' are checked. */
    const block_state seed = {.err.row = -1, .has_other = kept.has_other, .other = kept.other};
    if (st == TG_OK)
        st = parse_rows_at(rd, opt, left.v, left.n, done, &seed, missing);
    *missing |= kept.missing;
    *nrows = done + left.n;
    free(left.v);
    return st;
}

/* Applies the missing-value policy after all rows are in; sets *rows to the rows kept. */
static tg_status resolve_missing(reader *rd, int64_t *rows, int64_t *dropped)
{
    csv_ctx *cx = &rd->cx;
    float *X = tg_data(rd->X), *y = rd->y ? tg_data(rd->y) : NULL;
    *dropped = 0;
    if (cx->missing == TG_MISSING_KEEP) /* the NaN markers are the result */
        return TG_OK;
    if (cx->missing == TG_MISSING_MEAN)
        return fill_means(cx, X, *rows);
    int64_t kept = drop_rows(cx->nfeat, X, y, *rows);
    *dropped = *rows - kept;
    if (kept == 0 && !cx->part)
        return tg_set_error(TG_EPARSE, "%s: every row has a missing value (%lld dropped)", cx->name,
                            (long long)*dropped);
    int64_t shape[2] = {kept, cx->nfeat};
    /* y2 only after X2 succeeded: a successful tg_from_data clears the status, and X2's
     * failure must not read as TG_OK (the rows would then keep their dropped tail). */
    tg_tensor *X2 = tg_keep(tg_from_data(X, 2, shape));
    if (!X2)
        return tg_last_status();
    tg_tensor *y2 = y ? tg_keep(tg_from_data(y, 1, shape)) : NULL;
    if (y && !y2) {
        tg_release(X2);
        return tg_last_status();
    }
    tg_release(rd->X);
    tg_release(rd->y);
    rd->X = X2;
    rd->y = y2;
    *rows = kept;
    return TG_OK;
}

static tg_status fill_output(reader *rd, int64_t rows, int64_t dropped, tg_csv_data *out)
{
    csv_ctx *cx = &rd->cx;
    out->names = calloc((size_t)cx->nfeat, sizeof *out->names);
    if (!out->names)
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    out->n_features = cx->nfeat;
    for (int c = 0; c < cx->ncols; c++)
        if (cx->role[c] >= 0 && !(out->names[cx->role[c]] = strdup(cx->col_names[c])))
            return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    if (cx->label_col >= 0 && !(out->label_name = strdup(cx->col_names[cx->label_col])))
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    out->X = rd->X;
    out->y = rd->y;
    rd->X = rd->y = NULL;
    out->rows = rows;
    out->rows_dropped = dropped;
    return TG_OK;
}

/* Past the UTF-8 byte order mark and the skip_rows preamble lines (skipped at every '\n',
 * quotes or not). */
static const char *skip_preamble(const char *p, const char *end, int64_t skip_rows)
{
    if (end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3;
    for (int64_t i = 0; i < skip_rows && p < end; i++) {
        const char *nl = find(p, end, '\n');
        p = nl < end ? nl + 1 : end;
    }
    return p;
}

/* The delimiter the options name, or the one the first rows suggest. */
static void set_delimiter(csv_ctx *cx, const tg_csv_options *opt, const row_list *rows)
{
    if (opt->delimiter) {
        cx->delim = opt->delimiter;
        cx->spaces = opt->delimiter == ' ';
    } else {
        detect_delimiter(cx, rows);
    }
    const char d = cx->delim;
    cx->num_delim = tg_is_digit_(d) || d == '.' || d == '+' || d == '-' ||
                    ((d | 0x20) >= 'a' && (d | 0x20) <= 'z');
}

/* A '\r' not followed by '\n' in [p, end): in a file that is one line, the sign of lines that
 * end with '\r' alone, which would otherwise read as one row of many columns. */
static bool lone_cr(const char *p, const char *end)
{
    for (const char *c = p; (c = memchr(c, '\r', (size_t)(end - c))) != NULL; c++)
        if (c + 1 < end && c[1] != '\n')
            return true;
    return false;
}

/* Splits the input into rows: all of them, or with an input the stream may take, only the first
 * few (the header and the delimiter need no more); *resume gets where the split stopped (end
 * when it went through). */
static bool split_input(reader *rd, const tg_csv_options *opt, const char *p, const char *end,
                        const char **resume)
{
    *resume = end;
    if ((size_t)(end - p) >= atomic_load(&stream_min_bytes))
        return split_rows(p, end, end, SNIFF_ROWS + 1, &rd->rows, resume);
    reserve_rows(&rd->rows, p, end);
    return split_all(p, end, reader_threads(opt), &rd->rows);
}

/* Parses the data rows, from rows.v[first] on; *rows gets their count. p is where the split
 * began, resume where it stopped. */
static tg_status read_data(reader *rd, const csv_input *in, const tg_csv_options *opt,
                           int64_t first, const char *p, const char *resume, bool *missing,
                           int64_t *rows)
{
    const char *end = rd->cx.end;
    atomic_store(&streamed_rows, 0);
    if (resume < end && streams(&rd->cx))
        return stream_data(rd, opt, in, rd->rows.v[first], missing, rows);
    if (resume < end) { /* the split stopped after the first rows: all of it, on the threads */
        populate(p, (size_t)(end - p), false);
        rd->rows.n = 0;
        reserve_rows(&rd->rows, p, end);
        if (!split_all(p, end, reader_threads(opt), &rd->rows))
            return tg_set_error(TG_ENOMEM, "%s: out of memory", rd->cx.name);
    }
    *rows = rd->rows.n - first;
    return parse_data(rd, opt, first, missing);
}

static tg_status read_all(reader *rd, const csv_input *in, const tg_csv_options *opt,
                          tg_csv_data *out)
{
    csv_ctx *cx = &rd->cx;
    const char *end = in->data + in->len, *p = skip_preamble(in->data, end, opt->skip_rows);
    const char *resume;
    if (!split_input(rd, opt, p, end, &resume))
        return tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    if (rd->rows.n == 0)
        return tg_set_error(TG_EPARSE, "%s: the file is empty%s", cx->name,
                            opt->skip_rows ? " after the skipped rows" : "");
    if (rd->rows.n == 1 && lone_cr(p, end))
        return tg_set_error(TG_EPARSE,
                            "%s: lines end with a carriage return alone (\\r, old Mac style); "
                            "convert the file to \\n or \\r\\n line endings",
                            cx->name);
    set_delimiter(cx, opt, &rd->rows);
    tg_status st = read_first_row(cx, rd->rows.v[0], !opt->no_header);
    if (st != TG_OK || (st = resolve_columns(cx, opt)) != TG_OK)
        return st;
    int64_t first = opt->no_header ? 0 : 1;
    if (rd->rows.n == first)
        return tg_set_error(TG_EPARSE, "%s:%lld: the file has a header but no data rows", cx->name,
                            (long long)line_of(cx, rd->rows.v[0]));
    bool missing = false;
    int64_t rows = 0, dropped = 0;
    if ((st = read_data(rd, in, opt, first, p, resume, &missing, &rows)) != TG_OK)
        return st;
    if (missing && (st = resolve_missing(rd, &rows, &dropped)) != TG_OK)
        return st;
    return fill_output(rd, rows, dropped, out);
}

/* tg_csv_read_buffer, with the file's descriptor when there is one (see csv_input). */
static tg_status read_input(const char *name, const csv_input *in, const tg_csv_options *opt,
                            tg_csv_data *out)
{
    if (!out)
        return tg_set_error(TG_EINVAL, "%s: tg_csv_read: out is NULL", name);
    memset(out, 0, sizeof *out);
    if (!in->data && in->len)
        return tg_set_error(TG_EINVAL, "%s: tg_csv_read: data is NULL", name);
    tg_csv_options defaults;
    if (!opt) {
        tg_csv_options_init(&defaults);
        opt = &defaults;
    }
    tg_status st = check_options(name, opt);
    if (st != TG_OK)
        return st;
    reader rd;
    memset(&rd, 0, sizeof rd);
    rd.cx.name = name;
    rd.cx.base = in->data ? in->data : "";
    rd.cx.end = rd.cx.base + in->len;
    rd.cx.missing = opt->missing;
    rd.cx.fill = opt->fill;
    rd.cx.sentinel = in->len > 0 && tg_float_sentinel_ok_(rd.cx.end);
    if (opt->positive) {
        rd.cx.positive = (field){opt->positive, strlen(opt->positive), false, false};
        rd.cx.has_positive = true;
    }
    const csv_input whole = {rd.cx.base, in->len, in->fd};
    st = read_all(&rd, &whole, opt, out);
    reader_free(&rd);
    if (st != TG_OK) {
        tg_csv_data_free(out);
        return st;
    }
    tg_clear_error();
    return TG_OK;
}

tg_status tg_csv_read_buffer(const char *name, const char *data, size_t len,
                             const tg_csv_options *opt, tg_csv_data *out)
{
    const csv_input in = {data, len, -1};
    return read_input(name ? name : "<buffer>", &in, opt, out);
}

/* ---- files ------------------------------------------------------------------------------- */

typedef struct {
    char *data;
    size_t len;
    bool mapped;
    int fd; /* a mapped file's, kept open for the stream (csv_input); -1 when not mapped */
} file_data;

/* Pipes, terminals and /proc files have no usable size: read them to the end. */
static tg_status read_stream(const char *path, int fd, file_data *fd_out)
{
    char *buf;
    size_t len;
    int e = tg_read_all(fd, 0, SIZE_MAX, &buf, &len);
    if (e == ENOMEM)
        return tg_set_error(TG_ENOMEM, "%s: out of memory reading the file", path);
    if (e)
        return tg_set_error(TG_EIO, "%s: read failed: %s", path, strerror(e));
    fd_out->data = buf;
    fd_out->len = len;
    return TG_OK;
}

/* Maps a regular file, else reads it whole. The descriptor of a mapped file stays open in f->fd
 * for the stream (csv_input), which reads its rows with pread; the mapping's pages are left to
 * be read on demand, and populate() faults in, in bulk, what the split will read. */
static tg_status load_file(const char *path, file_data *f)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tg_set_error(TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        close(fd);
        return tg_set_error(TG_EIO, "%s: is a directory", path);
    }
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
        (uintmax_t)st.st_size <= SIZE_MAX) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m != MAP_FAILED) {
            f->data = m;
            f->len = (size_t)st.st_size;
            f->mapped = true;
            f->fd = fd;
            return TG_OK;
        }
    }
    tg_status s = read_stream(path, fd, f);
    close(fd);
    return s;
}

tg_status tg_csv_read(const char *path, const tg_csv_options *opt, tg_csv_data *out)
{
    if (out)
        memset(out, 0, sizeof *out);
    if (!path)
        return tg_set_error(TG_EINVAL, "tg_csv_read: path is NULL");
    if (!out)
        return tg_set_error(TG_EINVAL, "%s: tg_csv_read: out is NULL", path);
    file_data f = {NULL, 0, false, -1};
    tg_status st = load_file(path, &f);
    if (st != TG_OK)
        return st;
    const csv_input in = {f.data, f.len, f.fd};
    st = read_input(path, &in, opt, out);
    if (f.fd >= 0)
        close(f.fd);
    if (f.mapped)
        munmap(f.data, f.len);
    else
        free(f.data);
    return st;
}

/* ---- parts of a file (csv_part.h) ---------------------------------------------------------- */

struct csv_part {
    reader rd;
    tg_csv_options opt;
    char *name;
    char *map; /* the whole file, mapped without reading: only the pages touched are read */
    size_t len;
    const char *data_start; /* after the byte order mark and the preamble */
    const char *header;     /* the header row; NULL with no_header */
    const char *resume;     /* the row start that follows the part's own rows */
    const char *other_pos;  /* first label value read as 0 (with opt.positive), or NULL */
    field other;
    bool read_done; /* csv_part_read runs once */
};

/* Maps a regular file; nothing is read until a page is touched. */
static tg_status map_lazily(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tg_set_error(TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    tg_status s = TG_OK;
    if (fstat(fd, &st) != 0)
        s = tg_set_error(TG_EIO, "%s: cannot stat: %s", path, strerror(errno));
    else if (S_ISDIR(st.st_mode))
        s = tg_set_error(TG_EIO, "%s: is a directory", path);
    else if (!S_ISREG(st.st_mode) || (uintmax_t)st.st_size > SIZE_MAX)
        s = tg_set_error(TG_EIO, "%s: not a regular file (reading it in parts needs one)", path);
    else if (st.st_size == 0)
        s = tg_set_error(TG_EPARSE, "%s: the file is empty", path);
    if (s == TG_OK) {
        void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            s = tg_set_error(TG_EIO, "%s: cannot map: %s", path, strerror(errno));
        else
            *data = m, *len = (size_t)st.st_size;
    }
    close(fd);
    return s;
}

/* Preamble, header and columns, from the first rows of the file as tg_csv_read sees them. */
static tg_status part_header(csv_part *p)
{
    csv_ctx *cx = &p->rd.cx;
    const tg_csv_options *opt = &p->opt;
    const char *end = p->map + p->len, *q = skip_preamble(p->map, end, opt->skip_rows);
    p->data_start = q;
    row_list head = {NULL, 0, 0};
    tg_status st = TG_OK;
    if (!split_rows(q, end, end, SNIFF_ROWS, &head, NULL))
        st = tg_set_error(TG_ENOMEM, "%s: out of memory", cx->name);
    else if (head.n == 0)
        st = tg_set_error(TG_EPARSE, "%s: the file is empty%s", cx->name,
                          opt->skip_rows ? " after the skipped rows" : "");
    if (st == TG_OK) {
        set_delimiter(cx, opt, &head);
        st = read_first_row(cx, head.v[0], !opt->no_header);
    }
    if (st == TG_OK)
        st = resolve_columns(cx, opt);
    if (st == TG_OK)
        p->header = opt->no_header ? NULL : head.v[0];
    free(head.v);
    return st;
}

tg_status csv_part_open(const char *path, const tg_csv_options *opt, csv_part **out)
{
    *out = NULL;
    if (!path)
        return tg_set_error(TG_EINVAL, "tg_dist_csv_read: path is NULL");
    tg_csv_options defaults;
    if (!opt) {
        tg_csv_options_init(&defaults);
        opt = &defaults;
    }
    tg_status st = check_options(path, opt);
    if (st == TG_OK && opt->missing == TG_MISSING_MEAN)
        st = tg_set_error(TG_EUNSUPPORTED,
                          "%s: the column-mean policy for missing values needs every row; a "
                          "read in parts supports the error and drop policies",
                          path);
    csv_part *p = st == TG_OK ? calloc(1, sizeof *p) : NULL;
    if (st == TG_OK && (!p || !(p->name = strdup(path)))) {
        free(p);
        return tg_set_error(TG_ENOMEM, "%s: out of memory", path);
    }
    if (st != TG_OK)
        return st;
    p->opt = *opt;
    st = map_lazily(path, &p->map, &p->len);
    csv_ctx *cx = &p->rd.cx;
    cx->name = p->name;
    cx->base = p->map;
    cx->end = p->map ? p->map + p->len : NULL; /* no map (a file that failed to open): no offset */
    cx->missing = opt->missing;
    cx->fill = opt->fill;
    cx->part = true;
    if (opt->positive) {
        cx->positive = (field){opt->positive, strlen(opt->positive), false, false};
        cx->has_positive = true;
    }
    if (st == TG_OK) {
        cx->sentinel = tg_float_sentinel_ok_(cx->end);
        st = part_header(p);
    }
    if (st != TG_OK) {
        csv_part_close(p);
        return st;
    }
    *out = p;
    return TG_OK;
}

void csv_part_close(csv_part *p)
{
    if (!p)
        return;
    reader_free(&p->rd);
    if (p->map)
        munmap(p->map, p->len);
    free(p->name);
    free(p);
}

int64_t csv_part_file_size(const csv_part *p)
{
    return (int64_t)p->len;
}

int csv_part_features(const csv_part *p)
{
    return p->rd.cx.nfeat;
}

tg_status csv_part_no_rows(const csv_part *p)
{
    int64_t line = 1 + count_byte(p->map, p->header ? p->header : p->data_start, '\n');
    return tg_set_error(TG_EPARSE, "%s:%lld: the file has a header but no data rows", p->name,
                        (long long)line);
}

static void clamp_range(const csv_part *p, int64_t *begin, int64_t *end)
{
    int64_t n = (int64_t)p->len;
    *begin = *begin < 0 ? 0 : *begin > n ? n : *begin;
    *end = *end < *begin ? *begin : *end > n ? n : *end;
}

void csv_part_count(const csv_part *p, int64_t begin, int64_t end, int64_t *quotes, int64_t *lines)
{
    clamp_range(p, &begin, &end);
    const char *b = p->map + begin, *e = p->map + end;
    const char *qb = b < p->data_start ? p->data_start : b;
    *lines = count_byte(b, e, '\n');
    *quotes = qb < e ? count_byte(qb, e, '"') : 0;
}

/* The first row boundary at or after lo: a line start outside quotes. in_quotes says whether
 * lo itself lies inside a quoted field (the parity of the quotes before it). */
static const char *first_row_start(const csv_part *p, const char *lo, bool in_quotes)
{
    const char *end = p->map + p->len;
    if (lo == p->data_start || (!in_quotes && lo[-1] == '\n'))
        return lo;
    for (const char *q = lo; q < end; q++) {
        if (*q == '"')
            in_quotes = !in_quotes;
        else if (*q == '\n' && !in_quotes)
            return q + 1;
    }
    return end;
}

/* Appends the rows from p->resume on (the header row excluded) until stop or max rows. */
static tg_status split_more(csv_part *p, const char *stop, int64_t max)
{
    row_list *rows = &p->rd.rows;
    int64_t before = rows->n;
    if (!split_rows(p->resume, p->map + p->len, stop, max, rows, &p->resume))
        return tg_set_error(TG_ENOMEM, "%s: out of memory", p->name);
    if (rows->n > before && rows->v[before] == p->header) { /* the header is no data row */
        memmove(rows->v + before, rows->v + before + 1,
                (size_t)(rows->n - before - 1) * sizeof *rows->v);
        rows->n--;
        if (max != INT64_MAX) /* the header took a row's place: fetch one more */
            return split_more(p, stop, 1);
    }
    return TG_OK;
}

tg_status csv_part_split(csv_part *p, int64_t begin, int64_t end, int64_t quotes_before,
                         int64_t lines_before, int64_t *rows)
{
    clamp_range(p, &begin, &end);
    const char *b = p->map + begin;
    const char *lo = b < p->data_start ? p->data_start : b, *hi = p->map + end;
    const char *s = lo < hi ? first_row_start(p, lo, quotes_before & 1) : hi;
    /* Line numbers in messages count from the part's first row. */
    csv_ctx *cx = &p->rd.cx;
    cx->base = s;
    cx->line_base = lines_before + count_byte(b, s, '\n');
    p->rd.rows.n = 0;
    p->resume = s;
    tg_status st = s < hi ? split_more(p, hi, INT64_MAX) : TG_OK;
    *rows = p->rd.rows.n;
    return st;
}

/* Remembers the first label value read as 0 (opt.positive), for the check across parts. */
static void note_other_label(csv_part *p, int64_t nrows)
{
    int64_t nblocks = (nrows + BLOCK_ROWS - 1) / BLOCK_ROWS;
    for (int64_t b = 0; b < nblocks; b++)
        if (p->rd.bs[b].has_other) {
            p->other = p->rd.bs[b].other;
            p->other_pos = p->rd.bs[b].other_pos;
            return;
        }
}

tg_status csv_part_read(csv_part *p, int64_t first, int64_t count, tg_csv_data *out)
{
    memset(out, 0, sizeof *out);
    reader *rd = &p->rd;
    int64_t need = first + count;
    tg_status st = TG_OK;
    if (first < 0 || count < 0 || p->read_done)
        return tg_set_error(TG_EINVAL, "%s: csv_part_read: bad rows, or a second read", p->name);
    p->read_done = true;
    if (need > rd->rows.n)
        st = split_more(p, p->map + p->len, need - rd->rows.n);
    if (st == TG_OK && rd->rows.n < need)
        st = tg_set_error(TG_EINVAL, "%s: asked for rows up to %lld of a part that has %lld",
                          p->name, (long long)need, (long long)rd->rows.n);
    if (st != TG_OK)
        return st;
    bool missing = false;
    int64_t found = rd->rows.n;
    rd->rows.n = need; /* parse_data reads rows [first, rows.n) */
    st = parse_data(rd, &p->opt, first, &missing);
    rd->rows.n = found;
    if (st != TG_OK)
        return st;
    note_other_label(p, count);
    int64_t n = count, dropped = 0;
    if (missing && (st = resolve_missing(rd, &n, &dropped)) != TG_OK)
        return st;
    if ((st = fill_output(rd, n, dropped, out)) != TG_OK) {
        tg_csv_data_free(out);
        return st;
    }
    tg_clear_error();
    return TG_OK;
}

const char *csv_part_other_label(const csv_part *p, size_t *len)
{
    *len = p->other_pos ? p->other.n : 0;
    return p->other_pos ? p->other.s : NULL;
}

tg_status csv_part_label_conflict(const csv_part *p, const char *ref, size_t ref_len)
{
    const csv_ctx *cx = &p->rd.cx;
    csv_error e;
    const field other = {ref, ref_len, false, false};
    three_labels_error(cx, &e, 0, p->other_pos, &other, &p->other);
    return report(cx, &e);
}
