/* CSV reader: RFC 4180 details, delimiters, labels, missing values, error positions, and the same
 * results for every thread count. Every test writes its input under one mkdtemp directory. */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* mkdtemp, mkfifo */
#endif

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/csv_fast.h"
#include "io/csv_split.h"
#include "tapegrad.h"
#include "tapegrad/io.h"

static char tmpdir[256];
static char path[512];

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tg_csv_test_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

/* Writes n bytes to a file named name in the temp directory; sets path. */
static const char *write_bytes(const char *name, const char *data, size_t n)
{
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
    return path;
}

static const char *write_file(const char *name, const char *text)
{
    return write_bytes(name, text, strlen(text));
}

static tg_csv_options defaults(void)
{
    tg_csv_options o;
    tg_csv_options_init(&o);
    return o;
}

/* Reads text as a CSV file with options o; expects success. */
static tg_csv_data read_ok(const char *text, tg_csv_options o)
{
    tg_csv_data d;
    const char *p = write_file("in.csv", text);
    tg_status s = tg_csv_read(p, &o, &d);
    if (s != TG_OK)
        print_error("unexpected failure: %s\n", tg_last_error());
    assert_int_equal(s, TG_OK);
    assert_string_equal(tg_last_error(), "");
    unlink(p);
    return d;
}

/* Reads text and expects failure with status st and a message starting with
 * "<path><where>" (where is ":LINE:COL: ..." or ": ...") and containing `what`. */
static void read_fails(const char *text, tg_csv_options o, tg_status st, const char *where,
                       const char *what)
{
    tg_csv_data d;
    const char *p = write_file("bad.csv", text);
    tg_status s = tg_csv_read(p, &o, &d);
    char want[700];
    snprintf(want, sizeof want, "%s%s", p, where);
    const char *msg = tg_last_error();
    if (s != st || strncmp(msg, want, strlen(want)) != 0 || (what && !strstr(msg, what))) {
        print_error("status %s, message \"%s\"; wanted %s, \"%s...%s\"\n", tg_status_name(s), msg,
                    tg_status_name(st), want, what ? what : "");
        fail();
    }
    assert_null(d.X);
    assert_null(d.y);
    assert_null(d.names);
    unlink(p);
}

static void expect_X(tg_csv_data *d, int64_t rows, int nf, const float *want)
{
    assert_int_equal(d->rows, rows);
    assert_int_equal(d->n_features, nf);
    assert_int_equal(tg_ndim(d->X), 2);
    assert_int_equal(tg_shape(d->X)[0], rows);
    assert_int_equal(tg_shape(d->X)[1], nf);
    const float *x = tg_data(d->X);
    for (int64_t i = 0; i < rows * nf; i++) {
        if (x[i] != want[i]) {
            print_error("X[%lld] = %.9g, want %.9g\n", (long long)i, x[i], want[i]);
            fail();
        }
    }
}

static void expect_y(tg_csv_data *d, const float *want)
{
    assert_non_null(d->y);
    assert_int_equal(tg_ndim(d->y), 1);
    assert_int_equal(tg_shape(d->y)[0], d->rows);
    const float *y = tg_data(d->y);
    for (int64_t i = 0; i < d->rows; i++)
        assert_true(y[i] == want[i]);
}

/* ---- basics --------------------------------------------------------------------------------- */

static void test_basic(void **state)
{
    (void)state;
    tg_csv_data d = read_ok("a,b,label\n1,2.5,0\n-3,4e2,1\n", defaults());
    expect_X(&d, 2, 2, (const float[]){1, 2.5f, -3, 400});
    expect_y(&d, (const float[]){0, 1});
    assert_string_equal(d.names[0], "a");
    assert_string_equal(d.names[1], "b");
    assert_string_equal(d.label_name, "label");
    assert_int_equal(d.rows_dropped, 0);
    tg_csv_data_free(&d);
    assert_null(d.X);
    tg_csv_data_free(&d); /* twice is harmless */
    tg_csv_data_free(NULL);
}

static void test_quotes(void **state)
{
    (void)state;
    /* Quoted numbers, a delimiter, an escaped quote and a newline inside quoted fields. */
    tg_csv_options o = defaults();
    o.features = (const char *const[]){"x", "z"};
    o.n_features = 2;
    o.label = "y";
    tg_csv_data d = read_ok("x,\"note, with comma\",z,y\n"
                            "\"1.5\",\"say \"\"hi\"\", ok\",  \" 2 \" ,1\n"
                            "3,\"two\nlines\r\nhere\",4,0\n"
                            "5,\"\",6,\"1\"\n",
                            o);
    expect_X(&d, 3, 2, (const float[]){1.5f, 2, 3, 4, 5, 6});
    expect_y(&d, (const float[]){1, 0, 1});
    tg_csv_data_free(&d);
    /* A header name with an escaped quote and a delimiter. */
    o = defaults();
    d = read_ok("\"a \"\"q\"\", b\",y\n1,0\n", o);
    assert_string_equal(d.names[0], "a \"q\", b");
    tg_csv_data_free(&d);
}

static void test_quote_errors(void **state)
{
    (void)state;
    read_fails("a,b\n1,\"2\n", defaults(), TG_EPARSE, ":2:2: ", "unterminated");
    read_fails("a,b\n1,\"2\"x\n", defaults(), TG_EPARSE, ":2:2: ", "closing quote");
    read_fails("a,b\n1,2\"\n", defaults(), TG_EPARSE, ":2:2: ", "quote inside");
    read_fails("a,b,c\n1,x\"y,0\n", defaults(), TG_EPARSE, ":2:2: ", "quote inside");
}

static void test_crlf_bom_blank_lines(void **state)
{
    (void)state;
    tg_csv_data d = read_ok("\xEF\xBB\xBF"
                            "a,b\r\n1,0\r\n\r\n2,1\r\n\r\n",
                            defaults());
    expect_X(&d, 2, 1, (const float[]){1, 2});
    expect_y(&d, (const float[]){0, 1});
    assert_string_equal(d.names[0], "a");
    tg_csv_data_free(&d);
    /* No newline at the end, and blank lines in the middle and at the end. */
    d = read_ok("a,b\n1,0\n\n   \n2,1", defaults());
    expect_X(&d, 2, 1, (const float[]){1, 2});
    tg_csv_data_free(&d);
    d = read_ok("a,b\n1,0\n2,1\n\n", defaults());
    expect_X(&d, 2, 1, (const float[]){1, 2});
    tg_csv_data_free(&d);
    /* CRLF with the last column a feature. */
    tg_csv_options o = defaults();
    o.label = "0";
    o.no_header = true;
    d = read_ok("1,2.5\r\n0,3.5\r\n", o);
    expect_X(&d, 2, 1, (const float[]){2.5f, 3.5f});
    assert_string_equal(d.names[0], "1");
    assert_string_equal(d.label_name, "0");
    tg_csv_data_free(&d);
    /* Lines ended by a carriage return alone would read as one row of many columns. */
    read_fails("a,b,y\r1,2,0\r3,4,1\r", defaults(), TG_EPARSE, ": ",
               "lines end with a carriage return alone");
}

static void test_ragged_rows(void **state)
{
    (void)state;
    read_fails("a,b,c\n1,2,0\n3,4\n", defaults(), TG_EPARSE,
               ":3:3: ", "expected 3 fields, found 2");
    read_fails("a,b,c\n1,2,0\n3,4,1,5\n", defaults(), TG_EPARSE,
               ":3:4: ", "expected 3 fields, found 4");
    read_fails("a,b,c\n1,2,0\n3,4,1,5,\"x\n", defaults(), TG_EPARSE,
               ":3:4: ", "expected 3 fields, found more");
    /* A row longer than the header puts a feature's number in the label column; the field
     * count, not the label, is the problem to report. The same for a bad value in a short row. */
    tg_csv_options lb = defaults();
    lb.label = "b";
    read_fails("a,b\n1,2,0\n", lb, TG_EPARSE,
               ":2:3: ", "expected 2 fields, found 3 (the header on line 1 has 2)");
    tg_csv_options nh = defaults();
    nh.no_header = true;
    nh.skip_rows = 1;
    read_fails("# notes\n1,2,0\n3,4\n", nh, TG_EPARSE,
               ":3:3: ", "expected 3 fields, found 2 (the first row on line 2 has 3)");
    read_fails("a,b,c\nx,2\n", defaults(), TG_EPARSE, ":2:3: ", "expected 3 fields, found 2");
    read_fails("a,b,c\n1,2,0,\n", defaults(), TG_EPARSE, ":2:4: ", "expected 3 fields");
    /* The line is the one where the short row ends, after a quoted newline. */
    tg_csv_options o = defaults();
    o.features = (const char *const[]){"a"};
    o.n_features = 1;
    read_fails("a,b,c\n1,\"x\ny\"\n", o, TG_EPARSE, ":3:3: ", "found 2");
}

/* Features are known by name, so two features with one name are an error, and so is a name
 * that picks one of several columns; indices and unused duplicates are fine. */
static void test_duplicate_names(void **state)
{
    (void)state;
    const char *text = "a,a,n,n,y\n1,2,x,x,0\n3,4,x,x,1\n";
    tg_csv_options o = defaults();
    o.features = (const char *const[]){"a", "1"};
    o.n_features = 2;
    read_fails(text, o, TG_EINVAL, ": ", "columns 0 and 1 are both named 'a'");
    o.features = (const char *const[]){"0", "1"};
    read_fails(text, o, TG_EINVAL, ": ", "columns 0 and 1 (two features) are both named 'a'");
    o.features = (const char *const[]){"1"};
    o.n_features = 1;
    tg_csv_data d = read_ok(text, o);
    expect_X(&d, 2, 1, (const float[]){2, 4});
    tg_csv_data_free(&d);
    read_fails("a,b,y,y\n1,2,0,0\n", defaults(), TG_EINVAL, ": ",
               "columns 2 and 3 (a feature and the label) are both named 'y'");
    tg_csv_options l = defaults();
    l.label = "y";
    read_fails("a,b,y,y\n1,2,0,0\n", l, TG_EINVAL, ": ", "columns 2 and 3 are both named 'y'");
}

static void test_huge_field(void **state)
{
    (void)state;
    size_t big = 1 << 20;
    size_t cap = big + 256;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t n = (size_t)snprintf(text, cap, "x,notes,y\n1.25,\"");
    for (size_t i = 0; i < big; i++)
        text[n++] = (char)(i % 97 == 0 ? '\n' : i % 89 == 0 ? ',' : 'a' + (char)(i % 26));
    n += (size_t)snprintf(text + n, cap - n, "\",1\n2.5,short,0\n");
    tg_csv_options o = defaults();
    o.features = (const char *const[]){"x"};
    o.n_features = 1;
    tg_csv_data d;
    const char *p = write_bytes("huge.csv", text, n);
    assert_int_equal(tg_csv_read(p, &o, &d), TG_OK);
    expect_X(&d, 2, 1, (const float[]){1.25f, 2.5f});
    expect_y(&d, (const float[]){1, 0});
    tg_csv_data_free(&d);
    /* The same huge field where a number is expected: a short, clear message. */
    o = defaults();
    assert_int_equal(tg_csv_read(p, &o, &d), TG_EPARSE);
    assert_true(strlen(tg_last_error()) < 400);
    assert_non_null(strstr(tg_last_error(), ":2:2: bad number"));
    unlink(p);
    free(text);
}

/* ---- errors with positions ------------------------------------------------------------------ */

static void test_bad_numbers(void **state)
{
    (void)state;
    read_fails("a,b,y\n1,2,0\n3,abc,1\n", defaults(), TG_EPARSE,
               ":3:2: ", "bad number 'abc' in column 'b'");
    read_fails("a,b,y\n1,2,0\n1.2.3,4,1\n", defaults(), TG_EPARSE, ":3:1: ", "'1.2.3'");
    read_fails("a,b,y\n0x10,2,0\n", defaults(), TG_EPARSE, ":2:1: ", "'0x10'");
    read_fails("a,b,y\n1e,2,0\n", defaults(), TG_EPARSE, ":2:1: ", "'1e'");
    read_fails("a,b,y\n1,2 3,0\n", defaults(), TG_EPARSE, ":2:2: ", "'2 3'");
    /* Lines count the preamble, the header and newlines inside quoted fields. */
    tg_csv_options o = defaults();
    o.skip_rows = 2;
    o.features = (const char *const[]){"a"};
    o.n_features = 1;
    read_fails("# preamble\n# more\na,note,y\n1,\"multi\nline\",0\n\n2,x,1\n-,y,0\n", o, TG_EPARSE,
               ":8:1: ", "bad number '-'");
    /* Numbers that read as ±inf: spelled out, or beyond the float32 range. */
    read_fails("a,b,y\n1,2,0\n3,1e39,1\n", defaults(), TG_EPARSE,
               ":3:2: ", "number '1e39' in column 'b' is infinite");
    read_fails("a,b,y\n1,2,0\n\"-Infinity\",2,1\n", defaults(), TG_EPARSE,
               ":3:1: ", "number '-Infinity' in column 'a' is infinite");
    read_fails("a,b,y\n1, inf ,0\n", defaults(), TG_EPARSE, ":2:2: ", "number 'inf'");
    /* Two in one row, the features taken in the other order: the first in the file is named. */
    o = defaults();
    o.features = (const char *const[]){"b", "a"};
    o.n_features = 2;
    read_fails("a,b,y\n1,2,0\n1e39,inf,1\n", o, TG_EPARSE, ":3:1: ", "number '1e39' in column 'a'");
    /* Labels that are numbers other than 0 and 1. */
    read_fails("a,y\n1,0\n2,2\n", defaults(), TG_EPARSE, ":3:2: ", "is not 0 or 1");
    read_fails("a,y\n1,0.5\n", defaults(), TG_EPARSE, ":2:2: ", "is not 0 or 1");
    /* Labels that only round to 0 or 1 in float32 are neither. */
    read_fails("a,y\n1,0\n2,0.99999999\n", defaults(), TG_EPARSE, ":3:2: ", "is not 0 or 1");
    read_fails("a,y\n1,1.00000001\n", defaults(), TG_EPARSE, ":2:2: ", "is not 0 or 1");
    read_fails("a,y\n1,0\n2,1e-60\n", defaults(), TG_EPARSE, ":3:2: ", "is not 0 or 1");
    read_fails("a,y\n1,\"-1e-50\"\n", defaults(), TG_EPARSE, ":2:2: ", "is not 0 or 1");
    read_fails("a,y\n1,0.1\n", defaults(), TG_EPARSE, ":2:2: ", "is not 0 or 1");
}

static void test_empty_and_header_only(void **state)
{
    (void)state;
    read_fails("", defaults(), TG_EPARSE, ": ", "empty");
    read_fails("\n\n  \n", defaults(), TG_EPARSE, ": ", "empty");
    read_fails("a,b,y\n", defaults(), TG_EPARSE, ":1: ", "no data rows");
    read_fails("a,b,y", defaults(), TG_EPARSE, ":1: ", "no data rows");
    read_fails("\xEF\xBB\xBF", defaults(), TG_EPARSE, ": ", "empty");
    tg_csv_options o = defaults();
    o.skip_rows = 5;
    read_fails("a,y\n1,0\n", o, TG_EPARSE, ": ", "empty after the skipped rows");
    /* A file with a single column has no features. */
    read_fails("y\n1\n", defaults(), TG_EINVAL, ": ", "no feature columns");
    tg_csv_data d;
    assert_int_equal(tg_csv_read("/nonexistent/dir/x.csv", NULL, &d), TG_EIO);
    assert_non_null(strstr(tg_last_error(), "/nonexistent/dir/x.csv: cannot open"));
    assert_int_equal(tg_csv_read(tmpdir, NULL, &d), TG_EIO);
}

static void test_options(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    assert_null(o.label);
    assert_false(o.no_header);
    assert_int_equal(o.missing, TG_MISSING_ERROR);
    assert_int_equal(o.threads, 0);
    o.delimiter = '"';
    read_fails("a,y\n1,0\n", o, TG_EINVAL, ": ", "delimiter");
    o = defaults();
    o.threads = -1;
    read_fails("a,y\n1,0\n", o, TG_EINVAL, ": ", "threads");
    o = defaults();
    o.label = "nope";
    read_fails("a,y\n1,0\n", o, TG_EINVAL, ": ",
               "label column 'nope' not found; the header on line 1 has 2 columns: 'a', 'y'");
    /* a header that is one column names the delimiter as the likely problem */
    read_fails("a|b|nope\n1|2|0\n", o, TG_EINVAL, ": ",
               "has 1 column: 'a|b|nope' (one column: is the delimiter right?)");
    o = defaults();
    o.features = (const char *const[]){"a", "zz"};
    o.n_features = 2;
    read_fails("a,b,y\n1,2,0\n", o, TG_EINVAL, ": ", "feature column 'zz' not found");
    read_fails("c0,c1,c2,c3,c4,c5,c6\n1,2,3,4,5,6,0\n", o, TG_EINVAL, ": ",
               "has 7 columns: 'c0', 'c1', 'c2', 'c3', 'c4', ...");
    o.features = (const char *const[]){"a", "y"};
    read_fails("a,b,y\n1,2,0\n", o, TG_EINVAL, ": ", "label column");
    o.features = (const char *const[]){"a", "0"};
    read_fails("a,b,y\n1,2,0\n", o, TG_EINVAL, ": ", "more than once");
    tg_csv_data d;
    assert_int_equal(tg_csv_read(NULL, NULL, &d), TG_EINVAL);
    assert_int_equal(tg_csv_read("x", NULL, NULL), TG_EINVAL);
}

/* ---- layout options ------------------------------------------------------------------------- */

static void test_skip_rows_and_no_header(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.skip_rows = 4; /* physical lines: a quote in the preamble does not matter */
    tg_csv_data d = read_ok("generated by x\n\"not, csv\n\nat all\na,b,y\n1,2,1\n", o);
    expect_X(&d, 1, 2, (const float[]){1, 2});
    tg_csv_data_free(&d);
    o = defaults();
    o.no_header = true;
    d = read_ok("1,2,1\n3,4,0\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 2, 3, 4});
    expect_y(&d, (const float[]){1, 0});
    assert_string_equal(d.names[0], "0");
    assert_string_equal(d.names[1], "1");
    assert_string_equal(d.label_name, "2");
    tg_csv_data_free(&d);
    /* no_header with the label picked by index, and no label at all. */
    o.label = "0";
    d = read_ok("1,2,5\n0,4,6\n", o);
    expect_X(&d, 2, 2, (const float[]){2, 5, 4, 6});
    expect_y(&d, (const float[]){1, 0});
    tg_csv_data_free(&d);
    o = defaults();
    o.no_label = true;
    d = read_ok("a,b\n1,2\n3,4\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 2, 3, 4});
    assert_null(d.y);
    assert_null(d.label_name);
    tg_csv_data_free(&d);
}

static void test_delimiter_detection(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "a,b,y\n1.5,2,1\n3,4,0\n",
        "a;b;y\n1.5;2;1\n3;4;0\n",
        "a\tb\ty\n1.5\t2\t1\n3\t4\t0\n",
        "a b y\n1.5 2 1\n3 4 0\n",
        "  a   b    y\n  1.5  2    1\n  3    4    0   \n",
        "\"a b\";\"c,d\";y\n1.5;2;1\n3;4;0\n",
        "a, b, y\n1.5, 2, 1\n3, 4, 0\n",
        "first name,b,y\n1.5,2,1\n3,4,0\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        tg_csv_data d = read_ok(texts[i], defaults());
        expect_X(&d, 2, 2, (const float[]){1.5f, 2, 3, 4});
        expect_y(&d, (const float[]){1, 0});
        tg_csv_data_free(&d);
    }
    tg_csv_data d = read_ok("\"a b\";\"c,d\";y\n1;2;1\n", defaults());
    assert_string_equal(d.names[0], "a b");
    assert_string_equal(d.names[1], "c,d");
    tg_csv_data_free(&d);
    /* An explicit delimiter wins over detection. */
    tg_csv_options o = defaults();
    o.delimiter = '|';
    d = read_ok("a|b,c|y\n1|2|0\n", o);
    expect_X(&d, 1, 2, (const float[]){1, 2});
    assert_string_equal(d.names[1], "b,c");
    tg_csv_data_free(&d);
}

/* ---- labels and features -------------------------------------------------------------------- */

static void test_label_and_features(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.label = "target";
    o.features = (const char *const[]){"c", "0"}; /* by name and by index, in that order */
    o.n_features = 2;
    tg_csv_data d = read_ok("a,target,c,d\n1,1,3,4\n5,0,7,8\n", o);
    expect_X(&d, 2, 2, (const float[]){3, 1, 7, 5});
    expect_y(&d, (const float[]){1, 0});
    assert_string_equal(d.names[0], "c");
    assert_string_equal(d.names[1], "a");
    tg_csv_data_free(&d);
    o = defaults();
    o.label = "1";
    d = read_ok("a,target,c\n1,1,3\n5,0,7\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 3, 5, 7});
    assert_string_equal(d.label_name, "target");
    tg_csv_data_free(&d);
    /* Unselected columns may hold anything. */
    o = defaults();
    o.features = (const char *const[]){"a"};
    o.n_features = 1;
    d = read_ok("a,name,y\n1,Smith,1\n2,,0\n", o);
    expect_X(&d, 2, 1, (const float[]){1, 2});
    tg_csv_data_free(&d);
}

/* Rows "i.5,<a>" and "i.5,<b>" in turn after a header, enough for the fast row parsers. */
static char *two_label_rows(const char *a, const char *b)
{
    const int rows = 300;
    size_t cap = (size_t)rows * 32 + 16, n = 0;
    char *t = malloc(cap);
    assert_non_null(t);
    n += (size_t)snprintf(t + n, cap - n, "x,y\n");
    for (int i = 0; i < rows; i++)
        n += (size_t)snprintf(t + n, cap - n, "%d.5,%s\n", i, i % 2 ? b : a);
    return t;
}

/* String labels in rows the fast parsers take: they match the positive value byte for byte
 * only where the general parser reads the same bytes as it, never a missing-value marker nor
 * a value with blanks at its ends (which fields lose). */
static void test_fast_string_labels(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.positive = "yes";
    char *t = two_label_rows("yes", "no");
    tg_csv_data d = read_ok(t, o);
    assert_int_equal(d.rows, 300);
    for (int i = 0; i < 300; i++)
        assert_true(((const float *)tg_data(d.y))[i] == (i % 2 ? 0.0f : 1.0f));
    tg_csv_data_free(&d);
    free(t);
    /* "yes " as the positive value: the field "yes " reads as "yes", another value */
    o.positive = "yes ";
    t = two_label_rows("yes ", "no");
    read_fails(t, o, TG_EPARSE, ":3:", "values 'yes' and 'no' besides the positive value 'yes '");
    free(t);
    /* "NA" as the positive value: a field NA is a missing label all the same */
    o.positive = "NA";
    t = two_label_rows("NA", "no");
    read_fails(t, o, TG_EPARSE, ":2:", "is missing");
    free(t);
}

static void test_label_values(void **state)
{
    (void)state;
    tg_csv_data d = read_ok("a,y\n1,true\n2,FALSE\n3,True\n4,1.0\n5,0\n6,\"1\"\n", defaults());
    expect_y(&d, (const float[]){1, 0, 1, 1, 0, 1});
    tg_csv_data_free(&d);
    /* Other spellings of exactly 0 and 1. */
    d = read_ok("a,y\n1,10e-1\n2,0.0e5\n3,-0\n4,+1\n5,0.01E2\n6,000.000\n7,01.\n", defaults());
    expect_y(&d, (const float[]){1, 0, 0, 1, 1, 0, 1});
    tg_csv_data_free(&d);
    tg_csv_options o = defaults();
    o.positive = "spam";
    d = read_ok("a,y\n1,spam\n2,ham\n3,\"spam\"\n4,ham\n", o);
    expect_y(&d, (const float[]){1, 0, 1, 0});
    tg_csv_data_free(&d);
    read_fails("a,y\n1,spam\n2,ham\n3,eggs\n", o, TG_EPARSE,
               ":4:2: ", "values 'ham' and 'eggs' besides the positive value 'spam'");
    /* The positive value but for case: the message says labels are compared exactly. */
    read_fails("a,y\n1,Spam\n2,ham\n3,spam\n", o, TG_EPARSE,
               ":3:2: ", "'Spam' differs from the positive value only in case");
    read_fails("a,y\n1,ham\n2,SPAM\n", o, TG_EPARSE,
               ":3:2: ", "'SPAM' differs from the positive value only in case");
    read_fails("a,y\n1,yes\n2,no\n", defaults(), TG_EPARSE, ":2:2: ", "set positive");
    read_fails("a,y\n1,1\n2,no\n", defaults(), TG_EPARSE, ":3:2: ", "label 'no'");
}

/* ---- missing values ------------------------------------------------------------------------- */

static void test_missing(void **state)
{
    (void)state;
    const char *text = "a,b,y\n1,2,1\n,4,0\n5,NA,1\n7,8,N/A\n9,nan,0\nNaN,na,1\n11,12,0\n";
    read_fails(text, defaults(), TG_EPARSE, ":3:1: ", "missing value in column 'a'");
    tg_csv_options o = defaults();
    o.missing = TG_MISSING_DROP;
    tg_csv_data d = read_ok(text, o);
    expect_X(&d, 2, 2, (const float[]){1, 2, 11, 12});
    expect_y(&d, (const float[]){1, 0});
    assert_int_equal(d.rows_dropped, 5);
    tg_csv_data_free(&d);
    /* Mean: missing labels are still an error. */
    o.missing = TG_MISSING_MEAN;
    read_fails(text, o, TG_EPARSE, ":5:3: ", "missing");
    d = read_ok("a,b,y\n1,2,1\n,4,0\n5,NA,1\n3,\"\",0\n", o);
    expect_X(&d, 4, 2, (const float[]){1, 2, 3, 4, 5, 3, 3, 3});
    assert_int_equal(d.rows_dropped, 0);
    tg_csv_data_free(&d);
    read_fails("a,b,y\n1,,1\n2,NA,0\n", o, TG_EPARSE, ": ", "column 'b' has no values");
    /* Given fill values (a model's training means) replace the column means, also where a
     * column has no values at all. */
    o.fill = (const float[]){-7.5f, 0.25f};
    d = read_ok("a,b,y\n1,,1\n,NA,0\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 0.25f, -7.5f, 0.25f});
    tg_csv_data_free(&d);
    /* A non-finite fill value would leave NaN, or put inf, into X: refused. */
    o.fill = (const float[]){-7.5f, NAN};
    read_fails("a,b,y\n1,,1\n,NA,0\n", o, TG_EINVAL, ": ", "fill[1] is nan");
    o.fill = (const float[]){INFINITY, 0.25f};
    read_fails("a,b,y\n1,,1\n,NA,0\n", o, TG_EINVAL, ": ", "fill[0] is inf");
    o.fill = NULL;
    o.missing = TG_MISSING_DROP;
    read_fails("a,y\nNA,1\n", o, TG_EPARSE, ": ", "every row");
}

/* Keep: the gaps stay NaN for the fit to fill (tg_logreg_options.fill_missing); a column with no
 * values at all is not the reader's to refuse; a missing label is still an error. */
static void test_missing_keep(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.missing = TG_MISSING_KEEP;
    tg_csv_data d = read_ok("a,b,y\n1,,1\n,4,0\n5,NA,1\n3,\"\",0\n", o);
    assert_int_equal(d.rows, 4);
    assert_int_equal(d.rows_dropped, 0);
    const float *X = tg_data(d.X);
    const bool gap[8] = {false, true, true, false, false, true, false, true};
    for (int i = 0; i < 8; i++)
        assert_int_equal(isnan(X[i]), gap[i]);
    assert_true(X[0] == 1 && X[3] == 4 && X[4] == 5 && X[6] == 3);
    expect_y(&d, (const float[]){1, 0, 1, 0});
    tg_csv_data_free(&d);
    d = read_ok("a,b,y\n1,,1\n2,NA,0\n", o);
    assert_true(isnan(((const float *)tg_data(d.X))[1]) && isnan(((const float *)tg_data(d.X))[3]));
    tg_csv_data_free(&d);
    read_fails("a,b,y\n1,2,1\n3,4,\n", o, TG_EPARSE,
               ":3:3: ", "is missing (the keep policy leaves features missing, not labels)");
    o.missing = (tg_missing_policy)(TG_MISSING_KEEP + 1);
    read_fails("a,y\n1,1\n", o, TG_EINVAL, ": ", "unknown missing-value policy");
}

/* ---- input paths ---------------------------------------------------------------------------- */

static void test_buffer_and_pipe(void **state)
{
    (void)state;
    /* A buffer without a terminating NUL: the reader must stop at len. */
    char buf[] = {'a', ',', 'y', '\n', '1', ',', '0', '\n', '2', ',', '1'};
    tg_csv_data d;
    assert_int_equal(tg_csv_read_buffer("mem", buf, sizeof buf, NULL, &d), TG_OK);
    expect_X(&d, 2, 1, (const float[]){1, 2});
    tg_csv_data_free(&d);
    assert_int_equal(tg_csv_read_buffer(NULL, "a,y\n1,x\n", 8, NULL, &d), TG_EPARSE);
    assert_string_equal(tg_last_error(),
                        "<buffer>:2:2: label 'x' in column 'y' is not 0/1 or true/false; set "
                        "positive to the value that means 1");
    /* A pipe has no size and cannot be mapped: read() fallback. */
    snprintf(path, sizeof path, "%s/fifo", tmpdir);
    assert_int_equal(mkfifo(path, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        FILE *f = fopen(path, "w");
        if (!f)
            _exit(1);
        fputs("a,y\n", f);
        for (int i = 1; i < 20000; i++)
            fprintf(f, "%d,%d\n", i, i & 1);
        fclose(f);
        _exit(0);
    }
    tg_status s = tg_csv_read(path, NULL, &d);
    int wstatus = 0;
    waitpid(pid, &wstatus, 0);
    unlink(path);
    assert_int_equal(s, TG_OK);
    assert_int_equal(d.rows, 19999);
    assert_true(tg_data(d.X)[19998] == 19999.0f);
    tg_csv_data_free(&d);
}

/* ---- threads -------------------------------------------------------------------------------- */

static char *make_big(int rows, int bad_row)
{
    size_t cap = (size_t)rows * 120 + 200;
    char *t = malloc(cap);
    size_t n = (size_t)snprintf(t, cap, "f0,f1,note,f2,y\n");
    uint64_t s = 7;
    for (int r = 0; r < rows; r++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        uint32_t x = (uint32_t)(s >> 33);
        const char *note = x % 7 == 0 ? "\"multi\nline, \"\"quoted\"\"\"" : "plain";
        const char *label = r == bad_row ? "yes,extra" : x & 1 ? "yes" : "no";
        n += (size_t)snprintf(t + n, cap - n, "%.6f,%de-%d,%s,%s,%s\n", (x % 100000) / 1e5 - 0.5,
                              (int)(x % 1000), (int)(x >> 20) % 40, note,
                              x % 11 == 0 ? "NA" : "0.125", label);
    }
    return t;
}

/* Rows whose length changes after the first 64 KB, from which the reader sizes its row list:
 * the list must hold every row whether the estimate falls short (rows get shorter) or runs
 * long (rows get longer). Large enough for the estimate to be used (4 MB of row pointers). */
static void test_row_estimate(void **state)
{
    (void)state;
    const int first = 20000, rest = 700000;
    for (int shorter = 0; shorter < 2; shorter++) {
        size_t cap = (size_t)(first + rest) * 12 + 16, n = 0;
        char *t = malloc(cap);
        n += (size_t)snprintf(t + n, cap - n, "x,y\n");
        for (int r = 0; r < first; r++)
            n += (size_t)snprintf(t + n, cap - n, "%d,%d\n", shorter ? 10 + r % 90 : r % 10, r & 1);
        for (int r = 0; r < rest; r++)
            n += (size_t)snprintf(t + n, cap - n, "%d,%d\n", shorter ? r % 10 : 1000000 + r, r & 1);
        tg_csv_data d;
        assert_int_equal(tg_csv_read_buffer("rows", t, n, NULL, &d), TG_OK);
        assert_int_equal(d.rows, first + rest);
        const float *x = tg_data(d.X), *y = tg_data(d.y);
        assert_true(x[0] == (shorter ? 10.0f : 0.0f));
        assert_true(x[first] == (shorter ? 0.0f : 1000000.0f));
        assert_true(x[first + rest - 1] ==
                    (shorter ? (float)((rest - 1) % 10) : (float)(1000000 + rest - 1)));
        assert_true(y[first + rest - 1] == (float)((rest - 1) & 1));
        tg_csv_data_free(&d);
        free(t);
    }
}

/* Rows split on several threads: each thread's range of bytes may begin inside a quoted field
 * (here most bytes are quoted and hold line feeds, so nearly every cut does), or inside a field
 * whose quote never closes. Every thread count gives the one-thread rows, values and errors. */
static char *make_quoted(int rows, int bad_row, bool unclosed)
{
    size_t cap = (size_t)rows * 300 + 64, n = 0;
    char *t = malloc(cap);
    n += (size_t)snprintf(t + n, cap - n, "a,text,y\n");
    for (int r = 0; r < rows; r++) {
        n += (size_t)snprintf(t + n, cap - n, "%d,\"", r == bad_row ? -1 : r);
        for (int k = 0; k < 200; k++) /* a line feed, a doubled quote, a comma among letters */
            t[n++] = k % 53 == 7 ? '\n' : k % 61 == 3 ? ',' : (char)('a' + (r + k) % 26);
        n += (size_t)snprintf(t + n, cap - n, "\"\"x\",%s\n",
                              r == bad_row ? "maybe"
                              : r % 3      ? "1"
                                           : "0");
        if (unclosed && r == rows / 3)
            n += (size_t)snprintf(t + n, cap - n, "%d,\"never closed,", r);
    }
    t[n] = '\0';
    return t;
}

static tg_status read_threads(const char *text, int threads, tg_csv_data *d, char *err, size_t cap)
{
    tg_csv_options o = defaults();
    o.threads = threads;
    o.features = (const char *const[]){"a"};
    o.n_features = 1;
    tg_status st = tg_csv_read_buffer("quoted", text, strlen(text), &o, d);
    snprintf(err, cap, "%s", st == TG_OK ? "" : tg_last_error());
    return st;
}

static void test_split_threads(void **state)
{
    (void)state;
    const int rows = 12000; /* 2.7 MB: ranges of 256 KB or more for up to 10 threads */
    char *text = make_quoted(rows, -1, false);
    tg_csv_data one, d;
    char e1[512], e[512];
    assert_int_equal(read_threads(text, 1, &one, e1, sizeof e1), TG_OK);
    assert_int_equal(one.rows, rows);
    assert_true(((const float *)tg_data(one.X))[rows - 1] == (float)(rows - 1));
    for (int t = 2; t <= 9; t++) {
        assert_int_equal(read_threads(text, t, &d, e, sizeof e), TG_OK);
        assert_int_equal(d.rows, rows);
        assert_memory_equal(tg_data(one.X), tg_data(d.X), (size_t)rows * sizeof(float));
        assert_memory_equal(tg_data(one.y), tg_data(d.y), (size_t)rows * sizeof(float));
        tg_csv_data_free(&d);
    }
    tg_csv_data_free(&one);
    free(text);
    for (int unclosed = 0; unclosed < 2; unclosed++) {
        text = make_quoted(rows, unclosed ? -1 : rows - 50, unclosed);
        assert_int_equal(read_threads(text, 1, &one, e1, sizeof e1), TG_EPARSE);
        assert_non_null(strstr(e1, unclosed ? "quote" : "maybe"));
        for (int t = 2; t <= 9; t++) {
            assert_int_equal(read_threads(text, t, &d, e, sizeof e), TG_EPARSE);
            assert_string_equal(e, e1);
        }
        free(text);
    }
}

static void test_threads_identical(void **state)
{
    (void)state;
    int rows = 30000; /* several blocks of rows */
    char *text = make_big(rows, -1);
    const char *p = write_file("big.csv", text);
    tg_csv_data d[3];
    for (int t = 0; t < 3; t++) {
        tg_csv_options o = defaults();
        o.threads = t + 1;
        o.positive = "yes";
        o.missing = TG_MISSING_MEAN;
        o.features = (const char *const[]){"f0", "f1", "f2"};
        o.n_features = 3;
        assert_int_equal(tg_csv_read(p, &o, &d[t]), TG_OK);
    }
    for (int t = 1; t < 3; t++) {
        assert_int_equal(d[t].rows, rows);
        assert_memory_equal(tg_data(d[0].X), tg_data(d[t].X), (size_t)rows * 3 * sizeof(float));
        assert_memory_equal(tg_data(d[0].y), tg_data(d[t].y), (size_t)rows * sizeof(float));
    }
    for (int t = 0; t < 3; t++)
        tg_csv_data_free(&d[t]);
    /* Dropping rows and the first error late in the file: the same for every thread count. */
    for (int t = 0; t < 2; t++) {
        tg_csv_options o = defaults();
        o.threads = t + 1;
        o.positive = "yes";
        o.missing = TG_MISSING_DROP;
        o.features = (const char *const[]){"f0", "f2"};
        o.n_features = 2;
        assert_int_equal(tg_csv_read(p, &o, &d[t]), TG_OK);
    }
    assert_int_equal(d[0].rows, d[1].rows);
    assert_true(d[0].rows_dropped > 0 && d[0].rows_dropped == d[1].rows_dropped);
    assert_memory_equal(tg_data(d[0].X), tg_data(d[1].X), (size_t)d[0].rows * 2 * sizeof(float));
    tg_csv_data_free(&d[0]);
    tg_csv_data_free(&d[1]);
    unlink(p);
    free(text);

    text = make_big(rows, 25000);
    p = write_file("big.csv", text);
    char first[600];
    for (int t = 0; t < 2; t++) {
        tg_csv_options o = defaults();
        o.threads = t + 1;
        o.positive = "yes";
        o.missing = TG_MISSING_MEAN;
        o.features = (const char *const[]){"f0", "f1", "f2"};
        o.n_features = 3;
        tg_csv_data e;
        assert_int_equal(tg_csv_read(p, &o, &e), TG_EPARSE);
        assert_non_null(strstr(tg_last_error(), "expected 5 fields, found 6"));
        if (t == 0)
            snprintf(first, sizeof first, "%s", tg_last_error());
        else
            assert_string_equal(first, tg_last_error());
    }
    unlink(p);
    free(text);
}

/* The progress callback: on the calling thread, never decreasing, ending with every row. */
typedef struct {
    int calls;
    int64_t last, total;
    bool decreased, other_thread, beyond; /* beyond: more rows done than the total given */
    pthread_t self;
} progress_log;

static void log_progress(int64_t done, int64_t total, void *user)
{
    progress_log *l = user;
    l->calls++;
    l->decreased |= done < l->last;
    l->beyond |= done > total;
    l->other_thread |= !pthread_equal(pthread_self(), l->self);
    l->last = done;
    l->total = total;
}

static void test_progress_callback(void **state)
{
    (void)state;
    int rows = 30000; /* several blocks of rows */
    char *text = make_big(rows, -1);
    for (int t = 1; t <= 2; t++) {
        tg_csv_options o = defaults();
        o.threads = t;
        o.positive = "yes";
        o.missing = TG_MISSING_MEAN;
        o.features = (const char *const[]){"f0", "f1", "f2"};
        o.n_features = 3;
        progress_log l = {.self = pthread_self()};
        o.progress = log_progress;
        o.progress_user = &l;
        tg_csv_data d;
        assert_int_equal(tg_csv_read_buffer("big", text, strlen(text), &o, &d), TG_OK);
        assert_true(l.calls >= 1); /* the final call; block calls only for blocks this thread ran */
        assert_false(l.decreased);
        assert_false(l.other_thread);
        assert_int_equal(l.last, rows);
        assert_int_equal(l.total, rows);
        tg_csv_data_free(&d);
    }
    free(text);
    text = make_big(rows, 25000); /* a bad row late in the file */
    tg_csv_options o = defaults();
    o.positive = "yes";
    o.missing = TG_MISSING_MEAN;
    o.features = (const char *const[]){"f0", "f1", "f2"};
    o.n_features = 3;
    progress_log l = {.self = pthread_self()};
    o.progress = log_progress;
    o.progress_user = &l;
    tg_csv_data d;
    assert_int_equal(tg_csv_read_buffer("big", text, strlen(text), &o, &d), TG_EPARSE);
    assert_false(l.other_thread);
    assert_true(l.last <= rows && !l.decreased);
    free(text);
}

/* A third label value in another block than the first two (found when blocks are merged) or in
 * the same block: the same message for any thread count. */
static void test_threads_label_conflict(void **state)
{
    (void)state;
    int rows = 20000;
    size_t cap = (size_t)rows * 16 + 64;
    char *text = malloc(cap);
    for (int variant = 0; variant < 2; variant++) {
        size_t n = (size_t)snprintf(text, cap, "a,y\n");
        for (int r = 0; r < rows; r++) {
            const char *v = r == 15000 ? "maybe" : (variant ? r % 3 : r) ? "yes" : "no";
            n += (size_t)snprintf(text + n, cap - n, "%d,%s\n", r, v);
        }
        const char *p = write_file("conflict.csv", text);
        char first[600];
        for (int t = 0; t < 2; t++) {
            tg_csv_options o = defaults();
            o.threads = t + 1;
            o.positive = "yes";
            tg_csv_data d;
            assert_int_equal(tg_csv_read(p, &o, &d), TG_EPARSE);
            assert_non_null(strstr(tg_last_error(), ":15002:2: "));
            assert_non_null(strstr(tg_last_error(),
                                   "values 'no' and 'maybe' besides the positive value 'yes'"));
            if (t == 0)
                snprintf(first, sizeof first, "%s", tg_last_error());
            else
                assert_string_equal(first, tg_last_error());
        }
        unlink(p);
    }
    free(text);
}

/* Missing-value markers and true/false match but for the case of their letters; other bytes
 * match exactly ("n\x0Fa" is no "n/a"). */
static void test_marker_case(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.missing = TG_MISSING_DROP;
    tg_csv_data d = read_ok("a,y\nN/a,1\n2,TrUe\nnA,0\n", o);
    expect_X(&d, 1, 1, (const float[]){2});
    expect_y(&d, (const float[]){1});
    tg_csv_data_free(&d);
    read_fails("a,y\nn\x0f"
               "a,1\n2,0\n",
               o, TG_EPARSE, ":2:1: ", "bad number");
}

/* A delimiter that can be read as part of a number ("1.5", "+2", "1e3", "inf") still ends the
 * field: numbers are not taken from the front of the row's text. */
static void test_delimiter_in_numbers(void **state)
{
    (void)state;
    tg_csv_options o = defaults();
    o.delimiter = '.';
    tg_csv_data d = read_ok("a.b.y\n1.2.0\n3. 4 .1\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 2, 3, 4});
    expect_y(&d, (const float[]){0, 1});
    tg_csv_data_free(&d);
    o.delimiter = '+';
    /* "+3+4+1" is an empty field and three more, not the number +3 */
    read_fails("a+b+y\n1+2+0\n+3+4+1\n", o, TG_EPARSE, ":3:4: ", "expected 3 fields, found 4");
    o.delimiter = '-';
    read_fails("a-b-y\n1e-2-0\n", o, TG_EPARSE, ":2:1: ", "bad number '1e'");
    o.delimiter = 'e';
    d = read_ok("aebey\n1e2e0\n-3e4.5e1\n", o);
    expect_X(&d, 2, 2, (const float[]){1, 2, -3, 4.5f});
    tg_csv_data_free(&d);
    o.delimiter = 'f';
    read_fails("afbfy\n1finf0\n", o, TG_EPARSE, ":2:2: ", "bad number 'in'");
    o.delimiter = '0';
    d = read_ok("a0b0y\n10201\n", o);
    expect_X(&d, 1, 2, (const float[]){1, 2});
    tg_csv_data_free(&d);
}

/* The first error in the file is the one reported, wherever the blocks of rows that are parsed
 * apart happen to start (every 4096 data rows). An infinity is found after its block's rows
 * are parsed, so a later bad field in the same block must not hide it. */
static void test_infinity_before_bad_field(void **state)
{
    (void)state;
    read_fails("a,y\n1,0\n1e39,1\nabc,0\n", defaults(), TG_EPARSE,
               ":3:1: ", "number '1e39' in column 'a' is infinite");
    read_fails("a,b,y\n1,-inf,0\n2,3,0\n4,NA,1\n", defaults(), TG_EPARSE, ":2:2: ", "infinite");
    /* In one row, the bad field still comes first (as before). */
    read_fails("a,b,y\n1,2,0\ninf,x,1\n", defaults(), TG_EPARSE, ":3:2: ", "bad number 'x'");
}

/* A third label string in the row of another error, that row being the first of a later block:
 * the label comes first in the row, as it does when the whole file is one block. */
static void test_label_conflict_in_error_row(void **state)
{
    (void)state;
    int rows = 5000;
    size_t cap = (size_t)rows * 16 + 64;
    char *text = malloc(cap);
    static const char *const bad[] = {"maybe,NA", "maybe,1,2"};
    static const char *const want[] = {":4098:1: ", ":4098:3: "};
    static const char *const what[] = {"values 'no' and 'maybe' besides the positive value 'yes'",
                                       "expected 2 fields, found 3"};
    for (int v = 0; v < 2; v++) {
        size_t n = (size_t)snprintf(text, cap, "y,a\n");
        for (int r = 0; r < rows; r++)
            n += (size_t)snprintf(text + n, cap - n, "%s\n",
                                  r == 4096 ? bad[v]
                                  : r % 2   ? "yes,1"
                                            : "no,2");
        for (int t = 1; t <= 2; t++) {
            tg_csv_options o = defaults();
            o.threads = t;
            o.positive = "yes";
            o.label = "y";
            read_fails(text, o, TG_EPARSE, want[v], what[v]);
        }
    }
    free(text);
}

/* ---- the fast path for rows of plain numbers --------------------------------------------------
 */

/* Fields of every shape the fast row path sees or hands back, in rows far from the end of the
 * input (where it runs) and near it: each value must equal strtof's. */
static void test_fast_path_shapes(void **state)
{
    (void)state;
    static const char *const shapes[] = {"0.123456",
                                         "-0.654321",
                                         "+1.5",
                                         "-.5",
                                         ".25",
                                         "5.",
                                         "-5.",
                                         "0",
                                         "-0",
                                         "-0.0",
                                         "+0.000",
                                         "719.588",
                                         "-649.075642",
                                         "1.23457e-05",
                                         "-3E+2",
                                         "0000000000000001.5",
                                         "123456789012345.6",
                                         "1234567890123456",
                                         "12345678901234567",
                                         "0.1234567890123456",
                                         "9999999999999999",
                                         "3.4028235e38",
                                         "1e-40",
                                         "0.000000000000001",
                                         "16777217",
                                         "0.30000000000000004",
                                         "1.00000005960464477539062500001",
                                         "42"};
    const int ns = (int)(sizeof shapes / sizeof *shapes);
    char *text = malloc(200000);
    assert_non_null(text);
    size_t n = (size_t)sprintf(text, "a,b,c,y\n");
    float *want = malloc(sizeof(float) * 3 * 4000);
    float *wy = malloc(sizeof(float) * 4000);
    int rows = 0;
    for (int i = 0; i < 3 * ns * 10; i += 3, rows++) {
        const char *f[3] = {shapes[i % ns], shapes[(i / 7 + 1) % ns], shapes[(i * 5 + 2) % ns]};
        for (int k = 0; k < 3; k++)
            want[rows * 3 + k] = strtof(f[k], NULL);
        wy[rows] = (float)(rows & 1);
        n += (size_t)sprintf(text + n, "%s,%s,%s,%d%s", f[0], f[1], f[2], rows & 1,
                             rows % 5 == 0 ? "\r\n" : "\n");
    }
    tg_csv_options o = defaults();
    o.label = "y";
    for (int threads = 1; threads <= 3; threads++) {
        o.threads = threads;
        tg_csv_data d = read_ok(text, o);
        expect_X(&d, rows, 3, want);
        expect_y(&d, wy);
        tg_csv_data_free(&d);
    }
    free(text);
    free(want);
    free(wy);
}

/* Errors in rows far from the end of the input get the same message and position. */
static void test_fast_path_errors(void **state)
{
    (void)state;
    static const struct {
        const char *row, *where, *what;
    } cases[] = {
        {"1.2.3,4,5,1\n", ":3:1: ", "'1.2.3'"},
        {"1,2..5,3,0\n", ":3:2: ", "'2..5'"},
        {"1,2,-,0\n", ":3:3: ", "bad number '-'"},
        {"1,2,3 4,0\n", ":3:3: ", "'3 4'"},
        {"1,2,3,2\n", ":3:4: ", "is not 0 or 1"},
        {"1,2,3\n", ":3:", "expected 4 fields, found 3"},
        {"1,2,3,0,5\n", ":3:5: ", "expected 4 fields, found 5"},
        {"1,2,3,0,5,6,7\n", ":3:5: ", "expected 4 fields, found 7"},
        {"1,2,3,4,0\n", ":3:5: ", "expected 4 fields, found 5"},
        {"x,2\n", ":3:3: ", "expected 4 fields, found 2"},
        {"1,2,3\"x\",0\n", ":3:", "quote inside an unquoted field"},
        {"1,,3,0\n", ":3:2: ", "missing value"},
        {"1,2,-1e39,0\n", ":3:3: ", "number '-1e39' in column 'c' is infinite"},
        {"1,inf,3,0\n", ":3:2: ", "number 'inf' in column 'b' is infinite"},
        {"3.5e38,2,3,0\n", ":3:1: ", "beyond the float32 range"},
    };
    char text[4096];
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int n = sprintf(text, "a,b,c,y\n0.5,-1.25,3,1\n%s", cases[i].row);
        for (int r = 0; r < 40; r++)
            n += sprintf(text + n, "0.123456,-649.075642,1.5e3,%d\n", r & 1);
        tg_csv_options o = defaults();
        o.label = "y";
        read_fails(text, o, TG_EPARSE, cases[i].where, cases[i].what);
    }
}

/* Blank-separated rows where splitting at each space would give the header's count of fields
 * but the general parser, which splits at runs of blanks, finds another: each is an error, at
 * its line, through every row parser (a fast one that took the row would put a value in the
 * wrong column, or none). The skipped column a is where the fields go astray. */
static void test_blank_separated_errors(void **state)
{
    (void)state;
    static const struct {
        /* a good row of the layout is before, the label, after */
        const char *header, *before, *after, *row, *what;
    } cases[] = {
        {"a b c y", "x 0.123456 -649.075642 ", "\n", "x\t5 6 7 1\n", "found 5"},
        {"a b c y", "x 0.123456 -649.075642 ", "\n", "x\r5 6 7 1\n", "found 5"},
        {"a b c y", "x 0.123456 -649.075642 ", "\n", " 6 7 1\n", "found 3"},
        {"b a c y", "0.123456 x -649.075642 ", "\n", "5  7 1\n", "found 3"},
        {"b c y a", "0.123456 -649.075642 ", " x\n", "5 6 1 \n", "found 3"},
        {"b c y a", "0.123456 -649.075642 ", " x\n", "5 6 1 \r\n", "found 3"},
    };
    const char *feats[] = {"b", "c"};
    char saved[16];
    snprintf(saved, sizeof saved, "%s", tg_isa());
    for (int parser = 0; parser < 3; parser++) {
        tg_csv_allow_vbmi2_(parser == 0);
        assert_int_equal(tg_set_isa(parser == 2 ? "scalar" : saved), TG_OK);
        for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
            char text[4096];
            int n = sprintf(text, "%s\n", cases[i].header);
            for (int r = -2; r < 40; r++)
                if (r == -1)
                    n += sprintf(text + n, "%s", cases[i].row);
                else
                    n += sprintf(text + n, "%s%d%s", cases[i].before, r & 1, cases[i].after);
            tg_csv_options o = defaults();
            o.label = "y";
            o.delimiter = ' ';
            o.features = feats;
            o.n_features = 2;
            read_fails(text, o, TG_EPARSE, ":3:", cases[i].what);
        }
    }
    tg_csv_allow_vbmi2_(true);
    assert_int_equal(tg_set_isa(saved), TG_OK);
}

/* ---- random plain numbers through every row path ------------------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3u;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 32) % n;
}

/* A random number field of exactly len characters (1 to 17): a sign, digits (sometimes all
 * zeros), maybe a point anywhere; or, now and then, a value next to a float midpoint, or one
 * with an exponent. */
static void random_field(char *out, int len, bool exponents)
{
    int kind = exponents && rnd(4) ? 1 : (int)rnd(20);
    if (kind == 0) { /* near the midpoint between two floats: the rounding check must hold */
        float f = (float)(1.0 + rnd(1000000)) * (rnd(2) ? 1.0f : 0.001f);
        double mid = ((double)f + (double)nextafterf(f, INFINITY)) / 2;
        /* 16 characters: as close as the batch path sees; or more, for the scalar one */
        int whole = snprintf(out, 32, "%.0f", floor(mid));
        snprintf(out, 32, "%.*f", rnd(2) ? 15 - whole : (int)rnd(8) + 6, mid);
        return;
    }
    if (kind == 1) {
        snprintf(out, 32, "%d.%de%d", (int)rnd(100), (int)rnd(1000), (int)rnd(20) - 10);
        return;
    }
    const bool zeros = kind == 2;
    int k = 0, sign = (int)rnd(3);
    if (sign && len >= 2)
        out[k++] = sign == 1 ? '-' : '+';
    int body = len - k;
    int point = body > 1 && rnd(4) ? (int)rnd((uint32_t)body) : -1;
    for (int i = 0; i < body; i++)
        out[k++] = i == point ? '.' : zeros ? '0' : (char)('0' + rnd(10));
    out[k] = '\0';
}

static void same_bits(const float *got, const float *want, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof *got) != 0) {
            print_error("X[%lld] = %a, want %a\n", (long long)i, got[i], want[i]);
            fail();
        }
}

/* Between two fields of a blank-separated row: one space, or in a row set off otherwise, any
 * run of blanks the general parser splits at. */
static const char *blank_run(bool odd)
{
    static const char *const runs[] = {" ", "  ", "\t", " \t", "\r", "\t \r", "   "};
    return odd ? runs[rnd(sizeof runs / sizeof *runs)] : " ";
}

/* Tables of random fields of every length 1..17, with signs, points in every position, zeros,
 * near-midpoint values and exponents (few or most), any number of columns (batches of eight and
 * their remainders), the label anywhere, features reordered or skipped, CRLF, a last row with and
 * without a line feed: every value must have strtof's bits, with 1 and 2 threads. With blanks,
 * the fields are separated by spaces (the delimiter ' '), one space in most rows and in one row
 * of four any runs of blanks, with blanks before the first field or after the last. */
static void random_tables(bool blanks)
{
    const int rows = 300;
    char *text = malloc((size_t)rows * 45 * 20 + 4096);
    float *want = malloc(sizeof(float) * (size_t)rows * 45);
    float *wy = malloc(sizeof(float) * (size_t)rows);
    assert_non_null(text);
    assert_non_null(want);
    assert_non_null(wy);
    for (int trial = 0; trial < 60; trial++) {
        const int ncols = 1 + (int)rnd(40) + 1; /* features and a label */
        const int label = (int)rnd((uint32_t)ncols);
        const int mode = (int)rnd(3); /* 0: all features, 1: reversed, 2: one column skipped */
        const int skip = label == 0 ? 1 : 0;
        char names[45][8];
        const char *feats[45];
        int nf = 0;
        size_t n = 0;
        const char *sep = blanks ? " " : ",";
        for (int c = 0; c < ncols; c++) {
            snprintf(names[c], sizeof names[c], c == label ? "y" : "c%d", c);
            n += (size_t)sprintf(text + n, "%s%s", names[c], c == ncols - 1 ? "\n" : sep);
        }
        for (int c = 0; c < ncols; c++)
            if (c != label && !(mode == 2 && c == skip && ncols > 2))
                feats[nf++] = names[c];
        if (mode == 1)
            for (int i = 0; i < nf / 2; i++) {
                const char *t = feats[i];
                feats[i] = feats[nf - 1 - i];
                feats[nf - 1 - i] = t;
            }
        const bool final_lf = rnd(2);
        const bool expo = trial % 6 == 5; /* mostly exponents: the batches pause */
        for (int r = 0; r < rows; r++) {
            const bool odd = blanks && rnd(4) == 0;
            if (odd && rnd(2))
                n += (size_t)sprintf(text + n, "%s", blank_run(true));
            for (int c = 0; c < ncols; c++) {
                char f[40];
                if (c == label) {
                    wy[r] = (float)(r & 1);
                    snprintf(f, sizeof f, "%d", r & 1);
                } else {
                    random_field(f, 1 + (int)rnd(17), expo);
                    for (int i = 0; i < nf; i++)
                        if (strcmp(feats[i], names[c]) == 0)
                            want[(size_t)r * (size_t)nf + (size_t)i] = strtof(f, NULL);
                }
                n += (size_t)sprintf(text + n, "%s%s", f,
                                     c < ncols - 1 ? (blanks ? blank_run(odd) : ",") : "");
            }
            if (odd && rnd(2))
                n += (size_t)sprintf(text + n, "%s", blank_run(true));
            if (r < rows - 1 || final_lf)
                n += (size_t)sprintf(text + n, "%s", rnd(4) == 0 ? "\r\n" : "\n");
        }
        tg_csv_options o = defaults();
        o.label = "y";
        o.delimiter = blanks ? ' ' : '\0';
        if (mode) {
            o.features = feats;
            o.n_features = nf;
        }
        for (int threads = 1; threads <= 2; threads++) {
            o.threads = threads;
            tg_csv_data d;
            tg_status s = tg_csv_read_buffer("rand", text, n, &o, &d);
            if (s != TG_OK)
                print_error("trial %d: %s\n", trial, tg_last_error());
            assert_int_equal(s, TG_OK);
            assert_int_equal(d.rows, rows);
            assert_int_equal(d.n_features, nf);
            same_bits(tg_data(d.X), want, (int64_t)rows * nf);
            expect_y(&d, wy);
            tg_csv_data_free(&d);
        }
    }
    free(text);
    free(want);
    free(wy);
}

/* The tables through the row parser this CPU picks (AVX-512, built with VBMI2 when the CPU has
 * that), through the AVX-512 one without VBMI2, then through the SSE2 one, which any kernel
 * family other than avx512 selects (scalar always exists). */
static void test_fast_path_random(void **state)
{
    (void)state;
    char saved[16];
    snprintf(saved, sizeof saved, "%s", tg_isa());
    for (int blanks = 0; blanks < 2; blanks++) {
        random_tables(blanks);
        tg_csv_allow_vbmi2_(false);
        random_tables(blanks);
        tg_csv_allow_vbmi2_(true);
        assert_int_equal(tg_set_isa("scalar"), TG_OK);
        random_tables(blanks);
        assert_int_equal(tg_set_isa(saved), TG_OK);
    }
}

#if defined(TG_HAVE_CSV_AVX512)
typedef bool (*row_parser)(const csv_fast_plan *, csv_fast_scratch *, const char *, float *,
                           float *);

/* One row through a row parser, the label last; returns its verdict. */
static bool parse_one_row(row_parser f, const char *row, const char *end, int ncols, float *x,
                          float *y)
{
    int role[80];
    int64_t ends[80 + 1 + 64];
    float vals[80 + 8];
    for (int c = 0; c < ncols; c++)
        role[c] = c < ncols - 1 ? c : -1;
    csv_fast_plan pl = {.end = end,
                        .delim = ',',
                        .ncols = ncols,
                        .nconv = ncols - 1,
                        .role = role,
                        .label_col = ncols - 1,
                        .direct = true};
    csv_fast_scratch sc = {ends, vals, 0, 0};
    return f(&pl, &sc, row, x, y);
}

/* The AVX-512 row parsers this CPU can run: the plain one, and the VBMI2 one (or NULL). False
 * when it runs neither. */
static bool avx512_row_parsers(row_parser fns[2])
{
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return false;
    fns[0] = csv_fast_row_avx512;
    fns[1] = NULL;
#if defined(TG_HAVE_CSV_VBMI2)
    if (__builtin_cpu_supports("avx512vbmi2"))
        fns[1] = csv_fast_row_avx512_vbmi2;
#endif
    return true;
}

/* The AVX-512 row parsers themselves, not through the reader (which redoes any row they refuse,
 * so a parser that refused rows it should take would go unnoticed there): rows of 1 to 70
 * features, dense ones whose 64-byte windows hold up to 32 delimiters, must be taken, with
 * strtof's bits; a row with one field too many or too few must be refused. Both builds, the
 * plain one and the VBMI2 one, where the CPU has them. */
static void test_avx512_row_parsers(void **state)
{
    (void)state;
    row_parser fns[2];
    if (!avx512_row_parsers(fns))
        skip();
    static char buf[16 + 72 * 20 + 256];
    for (int trial = 0; trial < 3000; trial++) {
        const int nfeat = 1 + (int)rnd(70), dense = trial % 3 == 0;
        const int extra = trial % 7 == 1 ? 1 : trial % 7 == 2 ? -1 : 0; /* fields too many/few */
        float want[72];
        size_t n = (size_t)sprintf(buf, "%015d\n", trial); /* rows start 16 bytes in */
        const char *row = buf + n;
        for (int c = 0; c < nfeat + extra; c++) {
            char f[24];
            if (dense)
                snprintf(f, sizeof f, "%u", rnd(10));
            else
                snprintf(f, sizeof f, "%s%u.%0*u", rnd(3) ? "" : "-", rnd(100000), 1 + (int)rnd(6),
                         rnd(1000000));
            if (c < 72)
                want[c] = strtof(f, NULL);
            n += (size_t)sprintf(buf + n, "%s,", f);
        }
        n += (size_t)sprintf(buf + n, "%d%s", trial & 1, rnd(2) ? "\r\n" : "\n");
        memset(buf + n, '7', 80); /* the parsers want 64 bytes after the row */
        const char *end = buf + n + 80;
        for (int k = 0; k < 2; k++) {
            if (!fns[k])
                continue;
            float x[80], y = -1.0f;
            bool ok = parse_one_row(fns[k], row, end, nfeat + 1, x, &y);
            if (extra != 0) {
                assert_false(ok);
                continue;
            }
            if (!ok)
                print_error("parser %d refused row %.*s\n", k, (int)(end - row - 80), row);
            assert_true(ok);
            same_bits(x, want, nfeat);
            assert_true(y == (float)(trial & 1));
        }
    }
}

/* Blank-separated rows through the AVX-512 row parsers: columns x, features (with one skipped
 * column m among them), the label and z, so that a field the parsers do not convert can be set off
 * wrongly without changing the count of spaces. Rows with one space between fields must be taken
 * with strtof's bits; rows the general parser splits otherwise must be refused: a leading space
 * (x empty), two spaces (m empty), a trailing one (z empty, before "\n" or "\r\n"), a tab or a
 * carriage return inside x (which the general parser splits at). */
static void test_avx512_blank_rows(void **state)
{
    (void)state;
    row_parser fns[2];
    if (!avx512_row_parsers(fns))
        skip();
    static char buf[16 + 80 * 20 + 256];
    for (int trial = 0; trial < 3000; trial++) {
        const int nfeat = 1 + (int)rnd(60), mid = 1 + (int)rnd((uint32_t)nfeat);
        const int ncols = nfeat + 4, label = ncols - 2, kind = trial % 6; /* 0: one space */
        int role[80];
        float want[80];
        size_t n = (size_t)sprintf(buf, "%015d\n", trial); /* rows start 16 bytes in */
        const char *row = buf + n;
        n += (size_t)sprintf(buf + n, "%s",
                             kind == 1   ? ""
                             : kind == 4 ? "x\tq"
                             : kind == 5 ? "x\rq"
                                         : "x");
        role[0] = role[mid] = role[ncols - 1] = -1; /* skipped (the label's role is -2) */
        role[label] = -2;
        for (int c = 1, f = 0; c < label; c++) {
            char fs[24] = "m";
            if (c == mid) {
                if (kind == 2)
                    fs[0] = '\0';
            } else {
                snprintf(fs, sizeof fs, "%s%u.%0*u", rnd(3) ? "" : "-", rnd(100000),
                         1 + (int)rnd(6), rnd(1000000));
                want[f] = strtof(fs, NULL);
                role[c] = f++;
            }
            n += (size_t)sprintf(buf + n, " %s", fs);
        }
        n += (size_t)sprintf(buf + n, " %d %s%s", trial & 1, kind == 3 ? "" : "z",
                             rnd(2) ? "\r\n" : "\n");
        memset(buf + n, '7', 80); /* the parsers want 64 bytes after the row */
        int64_t ends[80 + 1 + 64];
        float vals[80 + 8];
        csv_fast_plan pl = {.end = buf + n + 80,
                            .delim = ' ',
                            .ncols = ncols,
                            .nconv = label,
                            .role = role,
                            .label_col = label,
                            .direct = false,
                            .spaces = true};
        for (int k = 0; k < 2; k++) {
            if (!fns[k])
                continue;
            csv_fast_scratch sc = {ends, vals, 0, 0};
            float x[80], y = -1.0f;
            const bool ok = fns[k](&pl, &sc, row, x, &y);
            if (ok != (kind == 0))
                print_error("parser %d, kind %d: %s %.*s\n", k, kind, ok ? "took" : "refused",
                            (int)(n - (size_t)(row - buf)), row);
            assert_true(ok == (kind == 0));
            if (ok) {
                same_bits(x, want, nfeat);
                assert_true(y == (float)(trial & 1));
            }
        }
    }
}
#endif

/* ---- step 1 (row starts) against a reference ------------------------------------------------ */

/* The reference: step 1 as it was first written, one memchr per quote and per line feed. */
static const char *ref_find(const char *p, const char *end, char c)
{
    const char *q = p < end ? memchr(p, c, (size_t)(end - p)) : NULL;
    return q ? q : end;
}

static bool ref_blank(const char *p, const char *line_end)
{
    for (; p < line_end; p++)
        if (*p != ' ' && *p != '\r')
            return false;
    return true;
}

static int64_t ref_split(const char *p, const char *end, const char *stop, int64_t max_rows,
                         const char **out, const char **resume)
{
    const char *quote = ref_find(p, end, '"');
    int64_t n = 0;
    while (p < end && p < stop && n < max_rows) {
        const char *line_end = ref_find(p, end, '\n');
        if ((*p == ' ' || *p == '\r' || *p == '\n') && quote >= line_end &&
            ref_blank(p, line_end)) {
            p = line_end + (line_end < end);
            continue;
        }
        out[n++] = p;
        while (quote < line_end) {
            const char *close = ref_find(quote + 1, end, '"');
            if (close == end) {
                line_end = end;
                quote = end;
                break;
            }
            if (close >= line_end)
                line_end = ref_find(close + 1, end, '\n');
            quote = ref_find(close + 1, end, '"');
        }
        p = line_end + (line_end < end);
    }
    *resume = p;
    return n;
}

static uint64_t split_rng = 0x9E3779B97F4A7C15u;

static uint32_t split_rand(uint32_t n)
{
    split_rng ^= split_rng << 13; /* xorshift64: the same inputs everywhere */
    split_rng ^= split_rng >> 7;
    split_rng ^= split_rng << 17;
    return (uint32_t)(split_rng >> 32) % n;
}

/* One call of both from p with these limits, appending to rows (which may hold earlier rows);
 * returns the resume point. */
static const char *split_both(const char *p, const char *end, const char *stop, int64_t max_rows,
                              tg_csv_rows_ *rows, const char **want, int64_t *nwant)
{
    const char *r_new = NULL, *r_ref = NULL;
    int64_t before = rows->n;
    assert_true(tg_csv_split_rows_(p, end, stop, max_rows, rows, &r_new));
    int64_t n = ref_split(p, end, stop, max_rows, want + *nwant, &r_ref);
    *nwant += n;
    assert_int_equal(rows->n - before, n);
    assert_int_equal(rows->n, *nwant);
    for (int64_t i = 0; i < rows->n; i++)
        assert_ptr_equal(rows->v[i], want[i]);
    assert_ptr_equal(r_new, r_ref);
    return r_new;
}

/* A random byte for step 1: half the inputs over a small alphabet, the others mostly text with
 * rows of ~40 bytes (spanning the 64-byte blocks), blank lines, and quotes in few of them. */
static char split_byte(int kind)
{
    static const char all[] = {'a', ',', '"', '\n', '\r', ' '};
    static const char rare[] = {'\n', '\n', '\n', ' ', '\r', '"'};
    if (kind == 0)
        return all[split_rand(sizeof all)];
    if (split_rand(20))
        return split_rand(4) ? 'a' : ',';
    return rare[split_rand(kind == 1 ? sizeof rare : sizeof rare - 1)];
}

/* Random inputs, each at the very end of its allocation (the sanitizer build catches a read
 * past end), split whole, up to a stop, up to a row count, and resumed a few rows at a time
 * as the distributed reader (csv_part_*) does. */
static void test_split_rows_random(void **state)
{
    (void)state;
    const char *want[400];
    for (int iter = 0; iter < 30000; iter++) {
        size_t len = split_rand(301);
        char *buf = malloc(len ? len : 1);
        assert_non_null(buf);
        int kind = split_rand(2) ? 0 : 1 + (int)split_rand(2); /* half of them kind 0 */
        for (size_t i = 0; i < len; i++)
            buf[i] = split_byte(kind);
        const char *end = buf + len;
        const char *p = buf + (split_rand(4) ? 0 : split_rand((uint32_t)len + 1));
        tg_csv_rows_ rows = {NULL, 0, 0};
        int64_t nwant = 0;

        split_both(p, end, end, INT64_MAX, &rows, want, &nwant); /* the whole input */
        rows.n = nwant = 0;
        const char *stop = buf + split_rand((uint32_t)len + 1);
        split_both(p, end, stop, INT64_MAX, &rows, want, &nwant);
        rows.n = nwant = 0;
        split_both(p, end, end, (int64_t)split_rand(6), &rows, want, &nwant);
        rows.n = nwant = 0;
        /* resumed a few rows at a time, as csv_part_* do */
        for (const char *q = p;;) {
            const char *next = split_both(q, end, end, 1 + split_rand(3), &rows, want, &nwant);
            if (next == q)
                break;
            q = next;
        }
        free(rows.v);
        free(buf);
    }
}

/* ---- parsing while reading (csv.c, "the stream") ------------------------------------------ */

typedef struct {
    bool shorter; /* rows get shorter after the first 64 KB: the outputs, sized from them, fill */
    int inf_row;  /* a field that reads as inf there, or -1 */
    int bad_row;  /* an extra field there, or -1 */
    int from;     /* rows from here on hold what the AVX-512 row parser leaves, by kind: */
    int kind;     /* 0 none, 1 quotes, 2 empty fields, 3 blank lines, 4 exponents, 5 line feeds
                   * in quotes, 6 NA and NaN; the stream ends at kind 5, the others it takes.
                   * String labels (positive "yes") throughout: 7 yes/no, 8 the same with a third
                   * value at row from, 9 with no quoted or after a blank too, 10 "nah" for no
                   * from row from on, and only yes in the 2000 rows before (so that a stream
                   * range starting there sees no other value than "nah"). 11: yes/no labels
                   * and fields set off by spaces (the delimiter ' '), every 13th row from row
                   * from on by other runs of blanks, with blanks after the label. */
} numeric_file;

/* The third field of row r: a number, or what nf asks for there. */
static void numeric_field(const numeric_file *nf, int r, uint32_t x, bool small, char *c, size_t n)
{
    snprintf(c, n, "%.*f", small ? 1 : 6, (x % 2000000) / 1e3 - 1000.0);
    if (r == nf->inf_row)
        snprintf(c, n, "1e39");
    else if (r >= nf->from && nf->kind == 1 && r % 7 == 0)
        snprintf(c, n, "\"%d\"", r);
    else if (r >= nf->from && nf->kind == 2 && r % 5 == 0)
        c[0] = '\0';
    else if (r >= nf->from && nf->kind == 4)
        snprintf(c, n, "%ue-%u", x % 1000, x % 7);
    else if (r >= nf->from && nf->kind == 6 && r % 4 == 1)
        snprintf(c, n, "%s", r % 8 == 1 ? "NA" : "NaN");
}

/* The label of row r, whose random bit is b. */
static void numeric_label(const numeric_file *nf, int r, unsigned b, char *c, size_t n)
{
    if (nf->kind < 7)
        snprintf(c, n, "%u", b);
    else if (nf->kind == 8 && r == nf->from)
        snprintf(c, n, "No");
    else if (nf->kind == 9 && !b && r % 7 == 0)
        snprintf(c, n, "\"no\"");
    else if (nf->kind == 9 && !b && r % 11 == 0)
        snprintf(c, n, " no");
    else if (nf->kind == 10 && !b && r >= nf->from)
        snprintf(c, n, "nah");
    else if (nf->kind == 10 && r >= nf->from - 2000)
        snprintf(c, n, "yes");
    else
        snprintf(c, n, "%s", b ? "yes" : "no");
}

/* Rows of numbers, a note (text, not read) and a label, as nf describes, some ending in CRLF,
 * the last one without a line feed. Over 1 MB, so rows straddle the stream's chunks. */
static char *make_numeric(const numeric_file *nf, int rows, size_t *len)
{
    size_t cap = (size_t)rows * 64 + 64, n = 0;
    char *t = malloc(cap);
    const bool blanks = nf->kind == 11;
    n += (size_t)snprintf(t + n, cap - n, blanks ? "a b c note y\n" : "a,b,c,note,y\n");
    uint64_t s = 11;
    for (int r = 0; r < rows; r++) {
        s = s * 6364136223846793005u + 1442695040888963407u;
        const uint32_t x = (uint32_t)(s >> 33);
        const bool small = nf->shorter && r > 3000;
        char c[32], label[8];
        numeric_field(nf, r, x, small, c, sizeof c);
        numeric_label(nf, r, x & 1, label, sizeof label);
        const bool quoted = r >= nf->from && nf->kind == 5 && r % 3 == 0;
        const bool odd = blanks && r >= nf->from && r % 13 == 0;
        const char *sep = blanks ? " " : ",", *run = odd ? " \t " : sep;
        n += (size_t)snprintf(t + n, cap - n, "%d%s%s%s%s%s%s%s%s%s%s%s", small ? r % 10 : r, sep,
                              small ? "7" : "-0.015625", run, c, sep, quoted ? "\"x\n,\ny\"" : "n",
                              sep, label, r == nf->bad_row ? sep : "", r == nf->bad_row ? "9" : "",
                              odd ? "  " : "");
        n += (size_t)snprintf(t + n, cap - n, r % 1777 == 3 ? "\r\n" : "\n");
        if (r >= nf->from && nf->kind == 3 && r % 11 == 0)
            n += (size_t)snprintf(t + n, cap - n, "  \n");
    }
    *len = n - 1; /* no line feed after the last row */
    return t;
}

static size_t stream_min_default = (size_t)4 << 20; /* 0 with --stream */

/* Reads nf's text on some threads, streamed or split first, from a file (which the stream reads
 * with pread) or a buffer; err gets the message, from the file name on. */
static tg_status read_streamed(const numeric_file *nf, const char *text, size_t len, int threads,
                               bool stream, bool file, tg_missing_policy missing, tg_csv_data *d,
                               char *err, size_t cap, progress_log *l)
{
    tg_csv_options o = defaults();
    o.threads = threads;
    o.missing = missing;
    o.positive = nf->kind >= 7 ? "yes" : NULL;
    o.delimiter = nf->kind == 11 ? ' ' : '\0';
    o.features = (const char *const[]){"a", "b", "c"}; /* not the note */
    o.n_features = 3;
    o.progress = log_progress;
    o.progress_user = l;
    tg_csv_set_stream_min_(stream ? 0 : SIZE_MAX);
    tg_status st = file ? tg_csv_read(write_bytes("num.csv", text, len), &o, d)
                        : tg_csv_read_buffer("num.csv", text, len, &o, d);
    if (file)
        unlink(path); /* the group's teardown removes the directory, which must be empty */
    tg_csv_set_stream_min_(stream_min_default);
    const char *msg = st == TG_OK ? "" : strstr(tg_last_error(), "num.csv");
    snprintf(err, cap, "%s", msg ? msg : tg_last_error());
    return st;
}

/* Rows the stream should have kept from nf's file, whose last row has no line feed (and so is
 * left to the split); -1 when the outputs may fill first. */
static int64_t rows_streamed_at_most(const numeric_file *nf, int rows, tg_missing_policy missing)
{
    int64_t most = rows - 1;
    if (nf->bad_row >= 0)
        most = nf->bad_row;
    if (nf->kind == 8 || nf->kind == 10) /* the third label value (at most: 10's first nah) */
        most = nf->from + (nf->kind == 10 ? 100 : 0);
    if (nf->kind == 5) /* the first line feed in quotes */
        most = nf->from + (3 - nf->from % 3) % 3;
    if (missing == TG_MISSING_ERROR && (nf->kind == 2 || nf->kind == 6))
        most = nf->from + 5; /* at most: the first missing value */
    return most;
}

/* Compares a stream's result with the split's. */
static void check_stream_read(const numeric_file *nf, int rows, tg_missing_policy missing,
                              int threads, tg_status sa, const char *ea, tg_csv_data *a,
                              tg_status sb, const char *eb, tg_csv_data *b, const progress_log *la)
{
    /* While streaming, the total is an estimate, but never below the rows done. */
    assert_false(la->decreased || la->beyond || la->other_thread);
    assert_int_equal(sa, sb);
    assert_string_equal(ea, eb);
    /* In these files the missing values start before any infinity or extra field. */
    const bool missing_error = missing == TG_MISSING_ERROR && (nf->kind == 2 || nf->kind == 6);
    if (nf->inf_row >= 0 || nf->bad_row >= 0 || missing_error || nf->kind == 8 || nf->kind == 10) {
        assert_int_equal(sa, TG_EPARSE);
        assert_non_null(strstr(ea, missing_error      ? "missing value"
                                   : nf->kind == 8    ? "values 'no' and 'No' besides"
                                   : nf->kind == 10   ? "values 'no' and 'nah' besides"
                                   : nf->inf_row >= 0 ? "'1e39'"
                                                      : "found 6"));
        return;
    }
    assert_int_equal(sa, TG_OK);
    const int64_t n = b->rows;
    assert_true(missing == TG_MISSING_DROP || n == rows);
    /* one thread reports each block; with more, only the caller's range does */
    assert_true(la->calls >= (threads == 1 ? rows / 4096 : 1));
    assert_true(la->last == rows && la->total == rows); /* rows read, before any are dropped */
    assert_int_equal(a->rows, n);
    assert_int_equal(tg_shape(a->X)[0], n);
    assert_int_equal(tg_shape(a->y)[0], n);
    assert_true(tg_is_contiguous(a->X));
    assert_memory_equal(tg_data(a->X), tg_data(b->X), (size_t)n * 3 * sizeof(float));
    assert_memory_equal(tg_data(a->y), tg_data(b->y), (size_t)n * sizeof(float));
}

/* The stream gives the split's rows, values and errors, whatever ends it and wherever, on one
 * thread or on several (whose ranges may begin inside quotes), and it goes on through every row
 * its general row parser can take. */
static void test_stream_matches_split(void **state)
{
    (void)state;
    const int rows = 40000;
    const numeric_file files[] = {
        {false, -1, -1, 0, 0},      {true, -1, -1, 0, 0},       {false, 20000, 30000, 0, 0},
        {false, -1, 30000, 0, 0},   {false, -1, -1, 15000, 1},  {false, -1, -1, 15000, 2},
        {false, -1, -1, 15000, 3},  {false, -1, -1, 15000, 4},  {true, 25000, -1, 15000, 4},
        {false, -1, -1, 38000, 5},  {false, -1, -1, 9000, 5},   {false, 35000, 39000, 0, 0},
        {false, -1, -1, 5, 1},      {false, -1, -1, 5, 2},      {false, -1, -1, 5, 3},
        {false, -1, -1, 5, 4},      {false, -1, -1, 5, 6},      {false, 30000, -1, 5, 6},
        {false, -1, 20000, 5, 2},   {false, -1, -1, 0, 7},      {false, -1, -1, 30000, 8},
        {false, -1, -1, 100, 8},    {false, -1, -1, 0, 9},      {false, 20000, -1, 0, 9},
        {false, -1, -1, 21000, 10}, {false, -1, -1, 31000, 10}, {false, -1, -1, 0, 11},
        {false, -1, -1, 20000, 11}, {false, 30000, -1, 5, 11},  {true, -1, -1, 5, 11},
    };
    const tg_missing_policy policies[] = {TG_MISSING_MEAN, TG_MISSING_DROP, TG_MISSING_ERROR,
                                          TG_MISSING_KEEP};
    const int n_policies = (int)(sizeof policies / sizeof policies[0]);
    /* The stream needs the AVX-512 row parser; elsewhere every read splits first. */
#if defined(TG_HAVE_CSV_AVX512)
    const bool streams = strcmp(tg_isa(), "avx512") == 0;
#else
    const bool streams = false;
#endif
    for (size_t v = 0; v < sizeof files / sizeof files[0]; v++) {
        const numeric_file *nf = &files[v];
        size_t len;
        char *text = make_numeric(nf, rows, &len);
        const bool missing_values = nf->kind == 2 || nf->kind == 6;
        for (int m = 0; m < (missing_values ? n_policies : 1); m++) {
            for (int k = 0; k < 6; k++) {
                const int threads = k < 2 ? 1 : k - 1, file = k % 2;
                tg_csv_data a, b;
                char ea[600], eb[600];
                progress_log la = {.self = pthread_self()}, lb = la;
                const tg_status sa = read_streamed(nf, text, len, threads, true, file, policies[m],
                                                   &a, ea, sizeof ea, &la);
                const int64_t streamed = tg_csv_streamed_rows_();
                const tg_status sb = read_streamed(nf, text, len, 1, false, file, policies[m], &b,
                                                   eb, sizeof eb, &lb);
                assert_int_equal(tg_csv_streamed_rows_(), 0);
                check_stream_read(nf, rows, policies[m], threads, sa, ea, &a, sb, eb, &b, &la);
                const int64_t most = rows_streamed_at_most(nf, rows, policies[m]);
                assert_true(streamed <= most && (streams || streamed == 0));
                if (streams && sa == TG_OK && !nf->shorter && nf->kind != 5)
                    assert_int_equal(streamed, most); /* every row but the last */
                if (sa == TG_OK) {
                    tg_csv_data_free(&a);
                    tg_csv_data_free(&b);
                }
            }
        }
        free(text);
    }
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
#if defined(TG_HAVE_CSV_AVX512)
        cmocka_unit_test(test_avx512_row_parsers),
        cmocka_unit_test(test_avx512_blank_rows),
#endif
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_quote_errors),
        cmocka_unit_test(test_crlf_bom_blank_lines),
        cmocka_unit_test(test_ragged_rows),
        cmocka_unit_test(test_duplicate_names),
        cmocka_unit_test(test_huge_field),
        cmocka_unit_test(test_bad_numbers),
        cmocka_unit_test(test_empty_and_header_only),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_skip_rows_and_no_header),
        cmocka_unit_test(test_delimiter_detection),
        cmocka_unit_test(test_label_and_features),
        cmocka_unit_test(test_label_values),
        cmocka_unit_test(test_fast_string_labels),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_missing_keep),
        cmocka_unit_test(test_buffer_and_pipe),
        cmocka_unit_test(test_threads_identical),
        cmocka_unit_test(test_threads_label_conflict),
        cmocka_unit_test(test_infinity_before_bad_field),
        cmocka_unit_test(test_delimiter_in_numbers),
        cmocka_unit_test(test_marker_case),
        cmocka_unit_test(test_label_conflict_in_error_row),
        cmocka_unit_test(test_progress_callback),
        cmocka_unit_test(test_fast_path_shapes),
        cmocka_unit_test(test_fast_path_errors),
        cmocka_unit_test(test_blank_separated_errors),
        cmocka_unit_test(test_fast_path_random),
        cmocka_unit_test(test_split_rows_random),
        cmocka_unit_test(test_row_estimate),
        cmocka_unit_test(test_split_threads),
        cmocka_unit_test(test_stream_matches_split),
    };
    /* --stream: every read that may, whatever its size, is parsed as it is read, so that every
     * case above also checks the stream against its expected results. */
    if (argc > 1 && strcmp(argv[1], "--stream") == 0) {
        stream_min_default = 0;
        tg_csv_set_stream_min_(0);
    }
    return cmocka_run_group_tests(tests, setup, teardown);
}
