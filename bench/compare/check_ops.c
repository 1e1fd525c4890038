/* The tapegrad side of bench/compare's correctness checks.
 *
 * Each peer script (bench/compare/peers/) writes its inputs as raw little-endian float32
 * files, runs this program on them, and compares what it writes back with the peer's own
 * result on the same inputs. Every command applies the public API the way the matching
 * benchmark in bench/bench_*.cc does.
 *
 *   check_ops info                               one JSON line: isa, threads, versions
 *   check_ops unary OP N X OUT                   OUT = OP(x) (no grad), then d sum(OP(x)) / dx
 *   check_ops mean N X OUT                       OUT = mean(x)
 *   check_ops matmul M K N A B OUT               OUT = A@B, d sum(A@B)/dA, d sum(A@B)/dB
 *   check_ops bmm BATCH M K N A B OUT            OUT = A@B for [BATCH, M, K] @ [BATCH, K, N]
 *   check_ops seed X OUT                         seed graph: OUT = z, dz/dx for z = sin(x^2)
 *   check_ops logstep X Y W B OUT                seed logistic step: OUT = loss, dL/dw, dL/db
 *   check_ops lossgrad ROWS COLS X Y W B OUT     OUT (float64) = mean BCE-with-logits of
 *                                                X w + b against y, d/dw (COLS), d/db
 *   check_ops csv FILE LABEL OUTX OUTY           reads FILE with tg_csv_read; prints rows cols
 *
 * OP is sigmoid, sin, exp, tanh, log, relu. Exit status 0 on success, 1 with a message on
 * stderr otherwise. The thread count is whatever the library picks (CPU affinity), or
 * TAPEGRAD_NUM_THREADS when set. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <tapegrad.h>
#include <tapegrad/train.h>

static int fail(const char *what)
{
    const char *e = tg_last_error();
    fprintf(stderr, "check_ops: %s%s%s\n", what, e && *e ? ": " : "", e ? e : "");
    return 1;
}

static int64_t parse_i64(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (!end || *end || v < 0) {
        fprintf(stderr, "check_ops: bad integer '%s'\n", s);
        exit(2);
    }
    return (int64_t)v;
}

static float *read_f32(const char *path, int64_t n)
{
    FILE *f = fopen(path, "rb");
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!f || !p || fread(p, sizeof(float), (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "check_ops: cannot read %lld floats from %s\n", (long long)n, path);
        exit(1);
    }
    fclose(f);
    return p;
}

static tg_tensor *load(const char *path, int ndim, const int64_t *shape)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *p = read_f32(path, n);
    tg_tensor *t = tg_from_data(p, ndim, shape);
    free(p);
    return t;
}

/* Appends t (row-major) to f. */
static int put(FILE *f, const tg_tensor *t)
{
    if (!t)
        return 0;
    int64_t n = tg_numel(t);
    float *p = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!p || tg_copy_to(t, p, n) != n || fwrite(p, sizeof(float), (size_t)n, f) != (size_t)n) {
        free(p);
        return 0;
    }
    free(p);
    return 1;
}

static FILE *open_out(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "check_ops: cannot write %s\n", path);
        exit(1);
    }
    return f;
}

static int close_out(FILE *f, int ok)
{
    if (fclose(f) != 0)
        ok = 0;
    return ok ? 0 : fail("writing the output");
}

typedef tg_tensor *(*unary_fn)(tg_tensor *);

static unary_fn unary_named(const char *name)
{
    static const struct {
        const char *name;
        unary_fn fn;
    } ops[] = {{"sigmoid", tg_sigmoid}, {"sin", tg_sin},   {"exp", tg_exp},
               {"tanh", tg_tanh},       {"log", tg_log},   {"relu", tg_relu}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strcmp(ops[i].name, name) == 0)
            return ops[i].fn;
    fprintf(stderr, "check_ops: unknown op '%s'\n", name);
    exit(2);
}

static int cmd_info(void)
{
    printf("{\"isa\": \"%s\", \"threads\": %d, \"tapegrad\": \"%s\", \"openblas\": \"%s\", "
           "\"openblas_core\": \"%s\", \"matmul_backend\": \"%s\"}\n",
           tg_isa(), tg_get_num_threads(), tg_version_string(), openblas_get_config(),
           openblas_get_corename(), tg_matmul_backend());
    return 0;
}

/* As BM_unary and BM_unary_fwd_bwd: y = op(x); then s = sum(op(x)), backward. */
static int cmd_unary(char **a)
{
    unary_fn op = unary_named(a[0]);
    int64_t n = parse_i64(a[1]);
    tg_tensor *x = load(a[2], 1, &n);
    tg_tensor *y = op(x);
    tg_requires_grad_(x, true);
    tg_tensor *y2 = op(x);
    tg_tensor *s = tg_sum(y2);
    if (!y || !s || tg_backward(s, NULL, false) != TG_OK || !tg_grad(x))
        return fail(a[0]);
    FILE *f = open_out(a[3]);
    int ok = put(f, y) && put(f, tg_grad(x));
    tg_release(s), tg_release(y2), tg_release(y), tg_release(x);
    return close_out(f, ok);
}

static int cmd_mean(char **a)
{
    int64_t n = parse_i64(a[0]);
    tg_tensor *x = load(a[1], 1, &n);
    tg_tensor *m = tg_mean(x);
    if (!m)
        return fail("mean");
    FILE *f = open_out(a[2]);
    int ok = put(f, m);
    tg_release(m), tg_release(x);
    return close_out(f, ok);
}

/* As BM_matmul and BM_matmul_fwd_bwd: c = a @ b, then backward through sum(a @ b). */
static int cmd_matmul(char **a)
{
    int64_t m = parse_i64(a[0]), k = parse_i64(a[1]), n = parse_i64(a[2]);
    int64_t sa[2] = {m, k}, sb[2] = {k, n};
    tg_tensor *A = load(a[3], 2, sa), *B = load(a[4], 2, sb);
    tg_tensor *C = tg_matmul(A, B);
    tg_requires_grad_(A, true);
    tg_requires_grad_(B, true);
    tg_tensor *C2 = tg_matmul(A, B);
    tg_tensor *s = tg_sum(C2);
    if (!C || !s || tg_backward(s, NULL, false) != TG_OK)
        return fail("matmul");
    FILE *f = open_out(a[5]);
    int ok = put(f, C) && put(f, tg_grad(A)) && put(f, tg_grad(B));
    tg_release(s), tg_release(C2), tg_release(C), tg_release(A), tg_release(B);
    return close_out(f, ok);
}

/* As BM_bmm: [batch, m, k] @ [batch, k, n]. */
static int cmd_bmm(char **a)
{
    int64_t bt = parse_i64(a[0]), m = parse_i64(a[1]), k = parse_i64(a[2]), n = parse_i64(a[3]);
    int64_t sa[3] = {bt, m, k}, sb[3] = {bt, k, n};
    tg_tensor *A = load(a[4], 3, sa), *B = load(a[5], 3, sb);
    tg_tensor *C = tg_matmul(A, B);
    if (!C)
        return fail("bmm");
    FILE *f = open_out(a[6]);
    int ok = put(f, C);
    tg_release(C), tg_release(A), tg_release(B);
    return close_out(f, ok);
}

/* As BM_seed_graph: x leaf with grad, y = x^2, z = sin(y), backward. */
static int cmd_seed(char **a)
{
    tg_tensor *x = tg_requires_grad_(tg_scalar(strtof(a[0], NULL)), true);
    tg_tensor *y = tg_pow_scalar(x, 2.0f);
    tg_tensor *z = tg_sin(y);
    if (!z || tg_backward(z, NULL, false) != TG_OK || !tg_grad(x))
        return fail("seed");
    FILE *f = open_out(a[1]);
    int ok = put(f, z) && put(f, tg_grad(x));
    tg_release(z), tg_release(y), tg_release(x);
    return close_out(f, ok);
}

/* As BM_seed_logistic_step: z = w*x + b, p = sigmoid(z), mean BCE(p, y), backward. */
static int cmd_logstep(char **a)
{
    tg_tensor *x = tg_scalar(strtof(a[0], NULL)), *y = tg_scalar(strtof(a[1], NULL));
    tg_tensor *w = tg_requires_grad_(tg_scalar(strtof(a[2], NULL)), true);
    tg_tensor *b = tg_requires_grad_(tg_scalar(strtof(a[3], NULL)), true);
    tg_tensor *wx = tg_mul(w, x);
    tg_tensor *z = tg_add(wx, b);
    tg_tensor *p = tg_sigmoid(z);
    tg_tensor *loss = tg_binary_cross_entropy(p, y, TG_REDUCE_MEAN);
    if (!loss || tg_backward(loss, NULL, false) != TG_OK || !tg_grad(w) || !tg_grad(b))
        return fail("logstep");
    FILE *f = open_out(a[4]);
    int ok = put(f, loss) && put(f, tg_grad(w)) && put(f, tg_grad(b));
    tg_release(loss), tg_release(p), tg_release(z), tg_release(wx);
    tg_release(b), tg_release(w), tg_release(y), tg_release(x);
    return close_out(f, ok);
}

/* The fused pass behind BM_fused_loss_grad, through its public entry point (l2 = 0). */
static int cmd_lossgrad(char **a)
{
    int64_t rows = parse_i64(a[0]), cols = parse_i64(a[1]);
    int64_t sx[2] = {rows, cols};
    tg_tensor *X = load(a[2], 2, sx), *y = load(a[3], 1, &rows);
    float *wf = read_f32(a[4], cols);
    double *w = malloc((size_t)(cols + 2) * sizeof(double));
    double *out = malloc((size_t)(cols + 2) * sizeof(double));
    if (!w || !out)
        return fail("out of memory");
    for (int64_t j = 0; j < cols; j++)
        w[j] = wf[j];
    double b = strtod(a[5], NULL);
    if (tg_logreg_loss_grad(X, y, w, b, 0.0, 1.0, &out[0], &out[1], &out[cols + 1]) != TG_OK)
        return fail("lossgrad");
    FILE *f = fopen(a[6], "wb");
    int ok = f && fwrite(out, sizeof(double), (size_t)(cols + 2), f) == (size_t)(cols + 2);
    if (f && fclose(f) != 0)
        ok = 0;
    free(wf), free(w), free(out);
    tg_release(X), tg_release(y);
    return ok ? 0 : fail("writing the output");
}

static int cmd_csv(char **a)
{
    tg_csv_options o;
    tg_csv_options_init(&o);
    o.label = a[1];
    tg_csv_data d;
    memset(&d, 0, sizeof d);
    if (tg_csv_read(a[0], &o, &d) != TG_OK)
        return fail("csv");
    FILE *fx = open_out(a[2]);
    int ok = put(fx, d.X);
    if (close_out(fx, ok) != 0)
        return 1;
    FILE *fy = open_out(a[3]);
    ok = put(fy, d.y);
    if (close_out(fy, ok) != 0)
        return 1;
    printf("%lld %d\n", (long long)d.rows, d.n_features);
    tg_csv_data_free(&d);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int nargs;
        int (*fn)(char **);
    } cmds[] = {{"unary", 4, cmd_unary},     {"mean", 3, cmd_mean},       {"matmul", 6, cmd_matmul},
                {"bmm", 7, cmd_bmm},         {"seed", 2, cmd_seed},       {"logstep", 5, cmd_logstep},
                {"lossgrad", 7, cmd_lossgrad}, {"csv", 4, cmd_csv}};
    const char *env = getenv("TAPEGRAD_NUM_THREADS");
    if (env && *env)
        tg_set_num_threads(atoi(env));
    if (argc == 2 && strcmp(argv[1], "info") == 0)
        return cmd_info();
    for (size_t i = 0; argc >= 2 && i < sizeof cmds / sizeof cmds[0]; i++)
        if (strcmp(argv[1], cmds[i].name) == 0) {
            if (argc - 2 != cmds[i].nargs) {
                fprintf(stderr, "check_ops %s: expects %d arguments, got %d\n", cmds[i].name,
                        cmds[i].nargs, argc - 2);
                return 2;
            }
            return cmds[i].fn(argv + 2);
        }
    fprintf(stderr, "usage: check_ops info | unary | mean | matmul | bmm | seed | logstep | "
                    "lossgrad | csv ... (see the comment at the top of check_ops.c)\n");
    return 2;
}
