/* Tests for src/core/repr.c against golden output captured from PyTorch 1.13
   (tools/gen_repr_golden.py), plus non-contiguous layouts and bad inputs.

   Usage: test_repr [path/to/repr_golden.txt] */

#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repr.h"

#ifndef TG_TEST_DATA_DIR
#define TG_TEST_DATA_DIR "tests/data"
#endif

enum { MAX_DIMS = 8 };

static const char *golden_path = TG_TEST_DATA_DIR "/repr_golden.txt";

/* ------------------------------------------------------------------ */
/* Golden file loading                                                 */

typedef struct {
    char *text;   /* whole file, '\n' replaced by '\0' */
    char **lines; /* pointers into text */
    size_t nlines;
} golden_file;

static char *read_whole_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        len += fread(buf + len, 1, cap - len - 1, f);
        if (len < cap - 1)
            break;
        char *bigger = realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static int golden_load(golden_file *g)
{
    g->text = read_whole_file(golden_path);
    if (!g->text) {
        print_error("cannot read golden file %s\n", golden_path);
        return 0;
    }
    size_t count = 1;
    for (char *p = g->text; *p; p++)
        count += *p == '\n';
    g->lines = malloc(count * sizeof *g->lines);
    if (!g->lines)
        return 0;
    g->nlines = 0;
    char *p = g->text;
    while (*p) {
        g->lines[g->nlines++] = p;
        char *nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    return 1;
}

static void golden_free(golden_file *g)
{
    free(g->lines);
    free(g->text);
}

static int starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* ------------------------------------------------------------------ */
/* Tensor cases                                                        */

typedef struct {
    const char *name;
    int ndim;
    int64_t shape[MAX_DIMS];
    const char *suffix;
    float *data;
    size_t numel;
    char *expected;
} tensor_case;

static float float_from_bits(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static double double_from_bits(uint64_t bits)
{
    double d;
    memcpy(&d, &bits, sizeof d);
    return d;
}

static int parse_shape(const char *line, tensor_case *tc)
{
    char *end;
    tc->ndim = (int)strtol(line + 5, &end, 10);
    if (tc->ndim < 0 || tc->ndim > MAX_DIMS)
        return 0;
    tc->numel = 1;
    for (int d = 0; d < tc->ndim; d++) {
        tc->shape[d] = strtoll(end, &end, 10);
        tc->numel *= (size_t)tc->shape[d];
    }
    return 1;
}

static size_t parse_data_line(const char *line, float *out, size_t room)
{
    size_t n = 0;
    const char *p = line + 4;
    char *end;
    while (n < room) {
        unsigned long bits = strtoul(p, &end, 16);
        if (end == p)
            break;
        out[n++] = float_from_bits((uint32_t)bits);
        p = end;
    }
    return n;
}

/* Joins the expected repr lines back together with '\n'. */
static char *join_lines(char **lines, size_t count)
{
    size_t total = 1;
    for (size_t i = 0; i < count; i++)
        total += strlen(lines[i]) + 1;
    char *s = malloc(total);
    if (!s)
        return NULL;
    s[0] = '\0';
    size_t len = 0;
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen(lines[i]);
        memcpy(s + len, lines[i], n);
        len += n;
        if (i + 1 < count)
            s[len++] = '\n';
        s[len] = '\0';
    }
    return s;
}

/* Parses the case starting at line *pos; returns 0 on a malformed file. */
static int parse_case(const golden_file *g, size_t *pos, tensor_case *tc)
{
    size_t i = *pos;
    memset(tc, 0, sizeof *tc);
    tc->name = g->lines[i++] + 5;
    if (i >= g->nlines || !starts_with(g->lines[i], "shape ") || !parse_shape(g->lines[i++], tc))
        return 0;
    if (i >= g->nlines || !starts_with(g->lines[i], "suffix"))
        return 0;
    tc->suffix = g->lines[i][6] == ' ' ? g->lines[i] + 7 : NULL;
    i++;
    tc->data = malloc((tc->numel ? tc->numel : 1) * sizeof *tc->data);
    if (!tc->data)
        return 0;
    size_t have = 0;
    while (i < g->nlines && starts_with(g->lines[i], "data"))
        have += parse_data_line(g->lines[i++], tc->data + have, tc->numel - have);
    if (have != tc->numel || i >= g->nlines || !starts_with(g->lines[i], "expect "))
        return 0;
    size_t count = (size_t)strtoul(g->lines[i++] + 7, NULL, 10);
    if (i + count > g->nlines)
        return 0;
    tc->expected = join_lines(g->lines + i, count);
    *pos = i + count;
    return tc->expected != NULL;
}

static void free_case(tensor_case *tc)
{
    free(tc->data);
    free(tc->expected);
}

static void contiguous_strides(int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t s = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        strides[d] = s;
        s *= shape[d] > 0 ? shape[d] : 1;
    }
}

static int check_output(const char *what, const char *name, const char *got, const char *want)
{
    if (got && strcmp(got, want) == 0)
        return 1;
    print_error("MISMATCH (%s) case %s\n--- expected:\n%s\n--- got:\n%s\n", what, name, want,
                got ? got : "(NULL)");
    return 0;
}

/* Same values stored column-major (first dimension fastest), addressed
   through strides: exercises the non-contiguous path with every golden case. */
static int check_column_major(const tensor_case *tc)
{
    if (tc->ndim < 2 || tc->numel == 0)
        return 1;
    int64_t rm[MAX_DIMS], cm[MAX_DIMS];
    contiguous_strides(tc->ndim, tc->shape, rm);
    int64_t s = 1;
    for (int d = 0; d < tc->ndim; d++) {
        cm[d] = s;
        s *= tc->shape[d];
    }
    float *buf = malloc(tc->numel * sizeof *buf);
    if (!buf)
        return 0;
    for (size_t flat = 0; flat < tc->numel; flat++) {
        size_t rest = flat, off = 0;
        for (int d = 0; d < tc->ndim; d++) {
            size_t idx = rest / (size_t)rm[d];
            rest %= (size_t)rm[d];
            off += idx * (size_t)cm[d];
        }
        buf[off] = tc->data[flat];
    }
    char *got = tg_format_tensor(tc->ndim, tc->shape, cm, buf, tc->suffix);
    int ok = check_output("column-major", tc->name, got, tc->expected);
    free(got);
    free(buf);
    return ok;
}

static int run_case(const tensor_case *tc)
{
    int64_t strides[MAX_DIMS];
    contiguous_strides(tc->ndim, tc->shape, strides);
    char *got = tg_format_tensor(tc->ndim, tc->shape, strides, tc->data, tc->suffix);
    int ok = check_output("contiguous", tc->name, got, tc->expected);
    free(got);
    return ok & check_column_major(tc);
}

static void test_golden_tensors(void **state)
{
    (void)state;
    golden_file g;
    assert_true(golden_load(&g));
    int cases = 0, failures = 0;
    for (size_t i = 0; i < g.nlines; i++) {
        if (!starts_with(g.lines[i], "case "))
            continue;
        tensor_case tc;
        size_t pos = i;
        int parsed = parse_case(&g, &pos, &tc);
        if (!parsed)
            print_error("malformed golden case at line %zu\n", i + 1);
        assert_true(parsed);
        cases++;
        failures += !run_case(&tc);
        free_case(&tc);
        i = pos - 1;
    }
    golden_free(&g);
    print_message("golden tensor cases: %d, failures: %d\n", cases, failures);
    assert_true(cases >= 300);
    assert_int_equal(failures, 0);
}

static void test_golden_py_float(void **state)
{
    (void)state;
    golden_file g;
    assert_true(golden_load(&g));
    int cases = 0, failures = 0;
    for (size_t i = 0; i < g.nlines; i++) {
        if (!starts_with(g.lines[i], "pyfloat "))
            continue;
        char *end;
        double v = double_from_bits(strtoull(g.lines[i] + 8, &end, 16));
        const char *want = end + 1;
        char buf[64];
        int n = tg_format_py_float(v, buf, sizeof buf);
        cases++;
        if (n != (int)strlen(want) || strcmp(buf, want) != 0) {
            print_error("pyfloat mismatch: want %s got %s\n", want, n < 0 ? "(error)" : buf);
            failures++;
        }
    }
    golden_free(&g);
    print_message("golden pyfloat cases: %d, failures: %d\n", cases, failures);
    assert_true(cases >= 100);
    assert_int_equal(failures, 0);
}

/* ------------------------------------------------------------------ */
/* Non-contiguous views compared with the contiguous copy of the same values */

static float test_value(int i)
{
    return (float)sin(i * 0.7) * (float)(i % 5 + 1) * 10.0f;
}

static void assert_same_format(int ndim, const int64_t *shape, const int64_t *view_strides,
                               const float *view_data, const float *contig, const char *suffix)
{
    int64_t strides[MAX_DIMS];
    contiguous_strides(ndim, shape, strides);
    char *want = tg_format_tensor(ndim, shape, strides, contig, suffix);
    char *got = tg_format_tensor(ndim, shape, view_strides, view_data, suffix);
    assert_non_null(want);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(want);
    free(got);
}

static void test_transposed_view(void **state)
{
    (void)state;
    enum { ROWS = 5, COLS = 9 };
    float base[ROWS * COLS], transposed[COLS * ROWS];
    for (int i = 0; i < ROWS * COLS; i++)
        base[i] = test_value(i);
    for (int r = 0; r < ROWS; r++)
        for (int c = 0; c < COLS; c++)
            transposed[c * ROWS + r] = base[r * COLS + c];
    const int64_t shape[2] = {COLS, ROWS};
    const int64_t strides[2] = {1, COLS};
    assert_same_format(2, shape, strides, base, transposed, "requires_grad=True");
}

static void test_permuted_3d_view(void **state)
{
    (void)state;
    /* base is (2, 3, 4) contiguous; view is permute(2, 0, 1) -> (4, 2, 3) */
    float base[24], permuted[24];
    for (int i = 0; i < 24; i++)
        base[i] = (float)(i - 12) * 0.25f;
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 2; b++)
            for (int c = 0; c < 3; c++)
                permuted[(a * 2 + b) * 3 + c] = base[(b * 3 + c) * 4 + a];
    const int64_t shape[3] = {4, 2, 3};
    const int64_t strides[3] = {1, 12, 4};
    assert_same_format(3, shape, strides, base, permuted, NULL);
}

static void test_broadcast_stride0(void **state)
{
    (void)state;
    enum { ROWS = 4, COLS = 11 };
    float row[COLS], full[ROWS * COLS];
    for (int c = 0; c < COLS; c++)
        row[c] = test_value(c) * 1e-3f;
    for (int i = 0; i < ROWS * COLS; i++)
        full[i] = row[i % COLS];
    const int64_t shape[2] = {ROWS, COLS};
    const int64_t strides[2] = {0, 1};
    assert_same_format(2, shape, strides, row, full, "grad_fn=<ExpandBackward0>");

    /* a scalar broadcast to every element */
    const float one = 2.5f;
    float filled[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        filled[i] = one;
    const int64_t zero_strides[2] = {0, 0};
    assert_same_format(2, shape, zero_strides, &one, filled, NULL);
}

static void test_broadcast_summarized(void **state)
{
    (void)state;
    /* 400 x 5 = 2000 elements: summarized, each row repeated through stride 0 */
    enum { ROWS = 400, COLS = 5 };
    float col[ROWS];
    float *full = malloc(ROWS * COLS * sizeof *full);
    assert_non_null(full);
    for (int r = 0; r < ROWS; r++)
        col[r] = (float)r * 1.5f;
    for (int i = 0; i < ROWS * COLS; i++)
        full[i] = col[i / COLS];
    const int64_t shape[2] = {ROWS, COLS};
    const int64_t strides[2] = {1, 0};
    assert_same_format(2, shape, strides, col, full, NULL);
    free(full);
}

static void test_strided_slice(void **state)
{
    (void)state;
    /* every third element of a 3000-long buffer: a summarized 1-D view */
    enum { N = 1000, STEP = 3 };
    float *base = malloc(N * STEP * sizeof *base);
    float *dense = malloc(N * sizeof *dense);
    assert_non_null(base);
    assert_non_null(dense);
    for (int i = 0; i < N * STEP; i++)
        base[i] = test_value(i);
    for (int i = 0; i < N; i++)
        dense[i] = base[i * STEP];
    const int64_t shape[1] = {N};
    const int64_t strides[1] = {STEP};
    assert_same_format(1, shape, strides, base, dense, NULL);
    const int64_t shape_long[1] = {N - 1};
    assert_same_format(1, shape_long, strides, base, dense, NULL);
    free(base);
    free(dense);
}

/* ------------------------------------------------------------------ */
/* Direct expectations and robustness                                  */

static void expect_format(int ndim, const int64_t *shape, const float *data, const char *suffix,
                          const char *want)
{
    int64_t strides[MAX_DIMS];
    contiguous_strides(ndim, shape, strides);
    char *got = tg_format_tensor(ndim, shape, strides, data, suffix);
    assert_non_null(got);
    assert_string_equal(got, want);
    free(got);
}

static void test_scalar_and_empty(void **state)
{
    (void)state;
    const float three = 3.0f;
    char *s = tg_format_tensor(0, NULL, NULL, &three, NULL);
    assert_non_null(s);
    assert_string_equal(s, "tensor(3.)");
    free(s);
    const int64_t shape[2] = {0, 3};
    expect_format(2, shape, NULL, NULL, "tensor([], size=(0, 3))");
    expect_format(1, shape, NULL, "", "tensor([])");
    expect_format(2, shape, NULL, "requires_grad=True", "tensor([], size=(0, 3), requires_grad=True)");
}

static void test_invalid_arguments(void **state)
{
    (void)state;
    const float v[4] = {1, 2, 3, 4};
    const int64_t shape[2] = {2, 2}, strides[2] = {2, 1};
    const int64_t bad_shape[2] = {-1, 2};
    const int64_t huge[3] = {INT64_MAX, INT64_MAX, 2};
    assert_null(tg_format_tensor(-1, shape, strides, v, NULL));
    assert_null(tg_format_tensor(9, shape, strides, v, NULL));
    assert_null(tg_format_tensor(2, NULL, strides, v, NULL));
    assert_null(tg_format_tensor(2, shape, NULL, v, NULL));
    assert_null(tg_format_tensor(2, shape, strides, NULL, NULL));
    assert_null(tg_format_tensor(2, bad_shape, strides, v, NULL));
    assert_null(tg_format_tensor(3, huge, strides, v, NULL));
    assert_null(tg_format_tensor(0, NULL, NULL, NULL, NULL));
}

static void test_py_float_buffer_limits(void **state)
{
    (void)state;
    char buf[32];
    assert_int_equal(tg_format_py_float(0.1, buf, sizeof buf), 3);
    assert_string_equal(buf, "0.1");
    assert_int_equal(tg_format_py_float(0.1, buf, 4), 3);
    assert_int_equal(tg_format_py_float(0.1, buf, 3), -1);
    assert_int_equal(tg_format_py_float(-INFINITY, buf, 4), -1);
    assert_int_equal(tg_format_py_float(1.0, NULL, 10), -1);
    assert_int_equal(tg_format_py_float(1.0, buf, 0), -1);
    assert_int_equal(tg_format_py_float(-NAN, buf, sizeof buf), 3);
    assert_string_equal(buf, "nan");
    assert_int_equal(tg_format_py_float(-1.7976931348623157e308, buf, sizeof buf), 24);
    assert_string_equal(buf, "-1.7976931348623157e+308");
}

static void test_deep_summarized(void **state)
{
    (void)state;
    /* 8-D with every extent 7: 5.7M elements summarized down to 6^8 printed.
       Data comes from a stride-0 broadcast of a small buffer to stay cheap. */
    int64_t shape[MAX_DIMS], strides[MAX_DIMS];
    float small[7];
    for (int i = 0; i < 7; i++)
        small[i] = (float)i - 3.0f;
    for (int d = 0; d < MAX_DIMS; d++) {
        shape[d] = 7;
        strides[d] = d == MAX_DIMS - 1 ? 1 : 0;
    }
    char *s = tg_format_tensor(MAX_DIMS, shape, strides, small, "grad_fn=<SumBackward1>");
    assert_non_null(s);
    assert_true(starts_with(s, "tensor([[[[[[[[-3., -2., -1.,  ...,  1.,  2.,  3.],"));
    free(s);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        golden_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_tensors),
        cmocka_unit_test(test_golden_py_float),
        cmocka_unit_test(test_transposed_view),
        cmocka_unit_test(test_permuted_3d_view),
        cmocka_unit_test(test_broadcast_stride0),
        cmocka_unit_test(test_broadcast_summarized),
        cmocka_unit_test(test_strided_slice),
        cmocka_unit_test(test_scalar_and_empty),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_py_float_buffer_limits),
        cmocka_unit_test(test_deep_summarized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
