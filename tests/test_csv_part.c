/* Reading a CSV file in parts (src/io/csv_part.h), as the ranks of tg_dist_csv_read do, but
 * all parts in this one process: the exchange of quote and line counts is a prefix sum here.
 *
 * The parts, concatenated, must give exactly what tg_csv_read gives on the whole file (values,
 * labels, row count), and a bad file the very same error message, for every way of cutting the
 * file: every cut point for two parts, random cuts for more, cuts inside quoted fields that hold
 * line breaks and delimiters, and the block alignment that moves rows between parts. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* mkdtemp */
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/csv_part.h"
#include "tapegrad.h"

static char tmpdir[256];
static char path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg_csv_part_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

static const char *write_file(const char *name, const char *text)
{
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* ---- the parts, driven as tg_dist_csv_read drives them ------------------------------------ */

#define MAX_PARTS 16

typedef struct {
    tg_status st;
    char err[600];
    int failed_part; /* lowest part that failed, -1 */
    int64_t rows, nfeat;
    float *X, *y; /* concatenated */
} parts_result;

static void parts_result_free(parts_result *r)
{
    free(r->X), free(r->y);
    memset(r, 0, sizeof *r);
}

static void note_failure(parts_result *res, int part, tg_status st)
{
    if (res->failed_part >= 0)
        return;
    res->failed_part = part;
    res->st = st;
    snprintf(res->err, sizeof res->err, "%s", tg_last_error());
}

static void append(parts_result *res, const tg_csv_data *d)
{
    int64_t n = res->rows + d->rows, nf = d->n_features;
    res->nfeat = nf;
    res->X = realloc(res->X, (size_t)(n * nf + 1) * sizeof(float));
    res->y = realloc(res->y, (size_t)(n + 1) * sizeof(float));
    assert_non_null(res->X);
    assert_non_null(res->y);
    if (d->rows > 0) {
        memcpy(res->X + res->rows * nf, tg_data(d->X), (size_t)(d->rows * nf) * sizeof(float));
        memcpy(res->y + res->rows, tg_data(d->y), (size_t)d->rows * sizeof(float));
    }
    res->rows = n;
}

static int64_t round_up(int64_t v, int64_t unit, int64_t cap)
{
    int64_t r = (v + unit - 1) / unit * unit;
    return r < cap ? r : cap;
}

/* Opens k parts at cut offsets cuts[0..k-2], splits, and reads the rows each keeps with
 * alignment unit (1: every part its own rows). Errors as the ranks would agree on them. */
static parts_result read_parts(const char *file, const tg_csv_options *opt, int k,
                               const int64_t *cuts, int64_t unit)
{
    parts_result res = {TG_OK, "", -1, 0, 0, NULL, NULL};
    csv_part *p[MAX_PARTS] = {NULL};
    int64_t begin[MAX_PARTS], end[MAX_PARTS], own[MAX_PARTS];
    for (int r = 0; r < k; r++) {
        tg_status st = csv_part_open(file, opt, &p[r]);
        if (st != TG_OK)
            note_failure(&res, r, st);
    }
    int64_t size = res.failed_part < 0 ? csv_part_file_size(p[0]) : 0;
    int64_t quotes = 0, lines = 0, rows = 0;
    for (int r = 0; r < k && res.failed_part < 0; r++) {
        begin[r] = r == 0 ? 0 : cuts[r - 1];
        end[r] = r == k - 1 ? size : cuts[r];
        int64_t q, l;
        csv_part_count(p[r], begin[r], end[r], &q, &l);
        tg_status st = csv_part_split(p[r], begin[r], end[r], quotes, lines, &own[r]);
        if (st != TG_OK)
            note_failure(&res, r, st);
        quotes += q, lines += l;
        rows += own[r];
    }
    if (res.failed_part < 0 && rows == 0)
        note_failure(&res, 0, csv_part_no_rows(p[0]));
    int64_t g = 0;
    for (int r = 0; r < k && res.failed_part < 0; r++) {
        int64_t lo = round_up(g, unit, rows), hi = round_up(g + own[r], unit, rows);
        tg_csv_data d;
        tg_status st = csv_part_read(p[r], hi > lo ? lo - g : 0, hi > lo ? hi - lo : 0, &d);
        if (st != TG_OK)
            note_failure(&res, r, st);
        else
            append(&res, &d);
        tg_csv_data_free(&d);
        g += own[r];
    }
    for (int r = 0; r < k; r++)
        csv_part_close(p[r]);
    return res;
}

/* The parts must agree with tg_csv_read on the whole file, bit for bit, or error for error. */
static void check_same(const char *file, const tg_csv_options *opt, int k, const int64_t *cuts,
                       int64_t unit)
{
    tg_csv_data whole;
    tg_status st = tg_csv_read(file, opt, &whole);
    char err[600];
    snprintf(err, sizeof err, "%s", tg_last_error());
    parts_result res = read_parts(file, opt, k, cuts, unit);
    if (st != TG_OK || res.st != TG_OK) {
        if (strcmp(err, res.err) != 0 || st != res.st)
            fail_msg("k=%d cut %lld: whole file: '%s', parts: '%s'", k,
                     (long long)(k > 1 ? cuts[0] : -1), err, res.err);
    } else {
        assert_int_equal(res.rows, whole.rows);
        assert_int_equal(res.nfeat, whole.n_features);
        assert_memory_equal(res.X, tg_data(whole.X), (size_t)(whole.rows * whole.n_features) * 4);
        assert_memory_equal(res.y, tg_data(whole.y), (size_t)whole.rows * 4);
    }
    tg_csv_data_free(&whole);
    parts_result_free(&res);
}

/* Two parts cut at every byte, and k parts cut at pseudo-random points (sorted). */
static void check_all_cuts(const char *file, const tg_csv_options *opt, int64_t unit)
{
    FILE *f = fopen(file, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    int64_t size = ftell(f);
    fclose(f);
    for (int64_t c = 0; c <= size; c++)
        check_same(file, opt, 2, &c, unit);
    uint64_t s = 12345;
    for (int trial = 0; trial < 200; trial++) {
        int k = 3 + trial % 6;
        int64_t cuts[MAX_PARTS];
        for (int i = 0; i < k - 1; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            cuts[i] = (int64_t)((s >> 33) % (uint64_t)(size + 1));
        }
        for (int i = 1; i < k - 1; i++) /* insertion sort */
            for (int j = i; j > 0 && cuts[j - 1] > cuts[j]; j--) {
                int64_t t = cuts[j];
                cuts[j] = cuts[j - 1];
                cuts[j - 1] = t;
            }
        check_same(file, opt, k, cuts, unit);
    }
}

static tg_csv_options numeric_columns(void)
{
    static const char *const feats[] = {"a", "b"};
    tg_csv_options o;
    tg_csv_options_init(&o);
    o.label = "y";
    o.features = feats;
    o.n_features = 2;
    return o;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Quoted fields holding line breaks (LF and CRLF), delimiters and doubled quotes; a preamble
 * with a stray quote (skipped without regard to quotes); blank lines; a byte order mark. */
static const char QUOTED[] = "\xEF\xBB\xBF"
                             "# exported \"by hand\n"
                             "a,note,b,y\n"
                             "1.5,\"one line\",2,0\n"
                             "2.5,\"two\nlines, and a comma\",3,1\n"
                             "\n"
                             "3.5,\"\"\"quoted\"\" \r\nwith CRLF\",-4,0\n"
                             "4.5,plain,5e-1,1\n"
                             "   \n"
                             "5.5,\"a\n\n\nb\",6,1\n"
                             "6.5,\",\",7,0\n"
                             "7.5,\"\",8,1";

static void test_quoted_line_breaks_every_cut(void **state)
{
    (void)state;
    const char *f = write_file("quoted.csv", QUOTED);
    tg_csv_options o = numeric_columns();
    o.skip_rows = 1;
    check_all_cuts(f, &o, 1);
    check_all_cuts(f, &o, 2);
    check_all_cuts(f, &o, 3);
    unlink(f);
}

/* A cut inside a quoted field: the part that starts there must not take the field's second
 * line for a row (it would parse: "b" is no number, but "4,9,1" would be one). */
static void test_cut_inside_quotes(void **state)
{
    (void)state;
    const char *text = "a,note,b,y\n1,\"x\n4,9,1\ny\",2,0\n3,z,4,1\n";
    const char *f = write_file("inside.csv", text);
    tg_csv_options o = numeric_columns();
    int64_t cut = (int64_t)(strchr(text, '4') - text); /* in the quoted field */
    parts_result r = read_parts(f, &o, 2, &cut, 1);
    assert_int_equal(r.st, TG_OK);
    assert_int_equal(r.rows, 2);
    assert_true(r.X[0] == 1.0f && r.X[1] == 2.0f && r.X[2] == 3.0f && r.X[3] == 4.0f);
    parts_result_free(&r);
    check_all_cuts(f, &o, 1);
    unlink(f);
}

/* Errors: the part holding the first bad row says what tg_csv_read says, global line and
 * column included. */
static void check_text(const char *text, const tg_csv_options *opt, int64_t unit)
{
    const char *f = write_file("t.csv", text);
    check_all_cuts(f, opt, unit);
    unlink(f);
}

static void test_errors_match(void **state)
{
    (void)state;
    tg_csv_options o = numeric_columns();
    const char *bad = "a,note,b,y\n1,\"p\nq\",2,0\n3,r,4,1\n5,s,x7,0\n8,t,9,1\n9,u,zz,0\n";
    check_text(bad, &o, 1);
    check_text(bad, &o, 2);
    check_text("a,note,b,y\n1,n,2,0\n3,\"open\n4,5,1\n6,7,8,0\n", &o, 1); /* unterminated */
    check_text("a,note,b,y\n1,n,2,0\n3,\"op\"en\",4,1\n", &o, 1);         /* junk after a quote */
    check_text("a,note,b,y\n1,n,2,0\n3,n,4\n5,n,6,1\n", &o, 1);           /* a field short */
    check_text("a,note,b,y\n\n", &o, 1);                                  /* no data rows */
    check_text("a,note,b,z\n1,n,2,0\n", &o, 1);                           /* no label column */
    check_text("a,note,b,y\n1,n,2,2\n", &o, 1);                           /* label not 0/1 */
}

/* Labels given as strings: a third value in a later part is an error there, as in one pass. */
static void test_positive_across_parts(void **state)
{
    (void)state;
    tg_csv_options o = numeric_columns();
    o.positive = "yes";
    const char *f = write_file("labels.csv", "a,note,b,y\n1,n,2,yes\n3,n,4,no\n5,n,6,yes\n"
                                             "7,n,8,maybe\n9,n,1,yes\n");
    tg_csv_data whole;
    assert_int_not_equal(tg_csv_read(f, &o, &whole), TG_OK);
    char want[600];
    snprintf(want, sizeof want, "%s", tg_last_error());
    /* Cut so that "no" and "maybe" fall in different parts: each part alone is fine. */
    const char *text = "a,note,b,y\n1,n,2,yes\n3,n,4,no\n5,n,6,yes\n";
    int64_t cut = (int64_t)strlen(text);
    parts_result r = read_parts(f, &o, 2, &cut, 1);
    assert_int_equal(r.st, TG_OK); /* read_parts has no cross-part check ... */
    parts_result_free(&r);
    /* ... which tg_dist_csv_read adds: checked through the label values the parts report. */
    csv_part *p[2];
    int64_t own[2], q, l;
    assert_int_equal(csv_part_open(f, &o, &p[0]), TG_OK);
    assert_int_equal(csv_part_open(f, &o, &p[1]), TG_OK);
    csv_part_count(p[0], 0, cut, &q, &l);
    assert_int_equal(csv_part_split(p[0], 0, cut, 0, 0, &own[0]), TG_OK);
    assert_int_equal(csv_part_split(p[1], cut, 1000, q, l, &own[1]), TG_OK);
    tg_csv_data d0, d1;
    assert_int_equal(csv_part_read(p[0], 0, own[0], &d0), TG_OK);
    assert_int_equal(csv_part_read(p[1], 0, own[1], &d1), TG_OK);
    size_t n0, n1;
    const char *v0 = csv_part_other_label(p[0], &n0), *v1 = csv_part_other_label(p[1], &n1);
    assert_true(n0 == 2 && memcmp(v0, "no", 2) == 0);
    assert_true(n1 == 5 && memcmp(v1, "maybe", 5) == 0);
    assert_int_equal(csv_part_label_conflict(p[1], v0, n0), TG_EPARSE);
    assert_string_equal(tg_last_error(), want);
    tg_csv_data_free(&d0), tg_csv_data_free(&d1);
    csv_part_close(p[0]), csv_part_close(p[1]);
    unlink(f);
}

static void test_missing_policies(void **state)
{
    (void)state;
    tg_csv_options o = numeric_columns();
    const char *f = write_file("missing.csv", "a,note,b,y\n1,n,,0\n3,n,4,1\nNA,n,6,1\n7,n,8,0\n");
    o.missing = TG_MISSING_DROP;
    check_all_cuts(f, &o, 1);
    o.missing = TG_MISSING_MEAN;
    csv_part *p;
    assert_int_equal(csv_part_open(f, &o, &p), TG_EUNSUPPORTED);
    assert_null(p);
    unlink(f);
}

/* Bigger, with many rows per part and uneven row lengths, aligned to blocks of 16 rows. */
static void test_many_rows(void **state)
{
    (void)state;
    size_t cap = 1 << 16, len = 0;
    char *text = malloc(cap);
    assert_non_null(text);
    len += (size_t)snprintf(text, cap, "a,note,b,y\n");
    for (int i = 0; i < 300; i++)
        len += (size_t)snprintf(text + len, cap - len, "%d.25,\"%.*s\n,%s\",%d,%d\n", i, i % 17,
                                "xxxxxxxxxxxxxxxxxxxxxxx", i % 5 ? "" : "\"\"", -i, i % 3 == 0);
    const char *f = write_file("many.csv", text);
    free(text);
    tg_csv_options o = numeric_columns();
    uint64_t s = 99;
    for (int trial = 0; trial < 100; trial++) {
        int k = 2 + trial % 7;
        int64_t cuts[MAX_PARTS];
        for (int i = 0; i < k - 1; i++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            cuts[i] = (int64_t)(len * (size_t)(i + 1) / (size_t)k) + (int64_t)((s >> 40) % 50) - 25;
        }
        check_same(f, &o, k, cuts, 16);
        check_same(f, &o, k, cuts, 1);
    }
    unlink(f);
}

/* tg_dist_csv_read in a process without MPI ranks: one part, the whole file. */
static void test_world_of_one(void **state)
{
    (void)state;
    const char *f = write_file("one.csv", QUOTED);
    tg_csv_options o = numeric_columns();
    o.skip_rows = 1;
    tg_csv_data a, b;
    assert_int_equal(tg_csv_read(f, &o, &a), TG_OK);
    assert_int_equal(tg_dist_csv_read(f, &o, &b), TG_OK);
    assert_int_equal(a.rows, b.rows);
    assert_memory_equal(tg_data(a.X), tg_data(b.X), (size_t)(a.rows * 2) * 4);
    tg_csv_data_free(&a), tg_csv_data_free(&b);
    assert_int_equal(tg_dist_csv_read("/nonexistent/x.csv", &o, &b), TG_EIO);
    assert_int_equal(tg_dist_failed_rank(), 0);
    assert_non_null(strstr(tg_last_error(), "/nonexistent/x.csv: cannot open"));
    assert_null(b.X);
    unlink(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quoted_line_breaks_every_cut),
        cmocka_unit_test(test_cut_inside_quotes),
        cmocka_unit_test(test_errors_match),
        cmocka_unit_test(test_positive_across_parts),
        cmocka_unit_test(test_missing_policies),
        cmocka_unit_test(test_many_rows),
        cmocka_unit_test(test_world_of_one),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
