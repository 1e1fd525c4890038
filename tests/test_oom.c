/* Allocation failures: every call either fails cleanly (NULL or a status, TG_ENOMEM and a
 * message) or, when it absorbs the failure, gives exactly the result it gives with memory to
 * spare. Never a result that silently differs.
 *
 * The test is linked with -Wl,--wrap for the allocation functions (tests/CMakeLists.txt), so
 * every allocation of the library goes through the wrappers below, which fail the Nth call
 * once armed. Each scenario is run for N = 1, 2, ... until it makes fewer than N allocations.
 * A run happens on a fresh thread, whose per-thread free lists of headers and graph nodes start
 * empty, so the same allocations happen on every run. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "io/csv_fast.h" /* tg_csv_set_stream_min_ */
#include "ops/ops.h"     /* tg_gemm_force_ */
#include "tapegrad.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void *__wrap_aligned_alloc(size_t align, size_t n);

static atomic_long calls;   /* allocations counted since arming */
static atomic_long fail_at; /* the first call that fails; 0 = none */
static atomic_long fail_len = 1; /* how many calls in a row fail from there */
static atomic_bool hit;          /* the failure was injected */

static bool fail_now(void)
{
    long at = atomic_load(&fail_at);
    if (at <= 0)
        return false;
    long call = atomic_fetch_add(&calls, 1) + 1;
    if (call < at || call >= at + atomic_load(&fail_len))
        return false;
    atomic_store(&hit, true);
    return true;
}

void *__wrap_malloc(size_t n)
{
    return fail_now() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : __real_calloc(n, size);
}
void *__wrap_realloc(void *p, size_t n)
{
    return fail_now() ? NULL : __real_realloc(p, n);
}
void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return fail_now() ? NULL : __real_aligned_alloc(align, n);
}

/* ---- the sweep ---- */

#define MAX_VALUES 4096

typedef struct {
    double v[MAX_VALUES];
    int n;
    tg_status status;  /* TG_OK when the scenario completed */
    char message[512]; /* tg_last_error() when it failed */
} outcome;

typedef bool (*scenario_fn)(outcome *o); /* false: failed, with tg_last_status() set */

typedef struct {
    scenario_fn fn;
    outcome *o;
} run_arg;

static void push(outcome *o, double v)
{
    if (o->n < MAX_VALUES)
        o->v[o->n++] = v;
}

/* Every fifth of n values: enough of a product to tell its floats from another's, with room
 * for more in the outcome. */
static void push_every(outcome *o, const float *v, int n)
{
    for (int i = 0; i < n; i += 5)
        push(o, v[i]);
}

static void push_tensor(outcome *o, const tg_tensor *t)
{
    float buf[MAX_VALUES];
    int64_t n = t ? tg_copy_to(t, buf, MAX_VALUES) : 0;
    for (int64_t i = 0; i < n; i++)
        push(o, buf[i]);
}

static void *run_thread(void *p)
{
    run_arg *a = p;
    memset(a->o, 0, sizeof *a->o);
    if (!a->fn(a->o)) {
        a->o->status = tg_last_status();
        strncpy(a->o->message, tg_last_error(), sizeof a->o->message - 1);
        if (a->o->status == TG_OK) /* a failure must say so */
            a->o->status = (tg_status)-1;
    }
    return NULL;
}

/* Runs the scenario on a new thread, which arms the failure of allocation n (0: none) once it
 * runs, so that only the scenario's allocations count. */
typedef struct {
    scenario_fn fn;
    outcome *o;
    long n;
} armed_run;

static void *run_armed(void *p)
{
    armed_run *r = p;
    atomic_store(&calls, 0);
    atomic_store(&hit, false);
    atomic_store(&fail_at, r->n);
    run_thread(&(run_arg){r->fn, r->o});
    atomic_store(&fail_at, 0);
    return NULL;
}

static void run_once(scenario_fn fn, outcome *o, long n)
{
    pthread_t t;
    armed_run r = {fn, o, n};
    assert_int_equal(pthread_create(&t, NULL, run_armed, &r), 0);
    pthread_join(t, NULL);
}

static void sweep_len(scenario_fn fn)
{
    static outcome ref, got;
    run_once(fn, &ref, 0);
    assert_int_equal(ref.status, TG_OK);
    int failures = 0;
    for (long n = 1;; n++) {
        run_once(fn, &got, n);
        if (!atomic_load(&hit))
            break;
        if (got.status != TG_OK) {
            if (got.status != TG_ENOMEM)
                fail_msg("allocation %ld failed: status %d, \"%s\"", n, (int)got.status,
                         got.message);
            assert_true(got.message[0] != '\0');
            failures++;
            continue;
        }
        /* absorbed (the large-buffer cache retries): the same result exactly */
        assert_int_equal(got.n, ref.n);
        for (int i = 0; i < ref.n; i++)
            if (memcmp(&got.v[i], &ref.v[i], sizeof(double)) != 0)
                fail_msg("allocation %ld failed, yet the call succeeded with value %d = %.9g "
                         "instead of %.9g",
                         n, i, got.v[i], ref.v[i]);
    }
    assert_true(failures > 0);
    /* and with memory again, the same result */
    run_once(fn, &got, 0);
    assert_int_equal(got.status, TG_OK);
    assert_int_equal(got.n, ref.n);
    assert_memory_equal(got.v, ref.v, (size_t)ref.n * sizeof(double));
}

/* Each allocation fails in turn, alone and then with the one after it: the large-buffer cache
 * retries a failed buffer once, after dropping what it holds, so only two failures in a row
 * reach the error paths of large buffers (and of the tiles' panels). */
static void sweep(scenario_fn fn)
{
    for (long len = 1; len <= 2; len++) {
        atomic_store(&fail_len, len);
        sweep_len(fn);
    }
    atomic_store(&fail_len, 1);
}

/* ---- scenarios ---- */

/* Term i of graph_of_every_op's loss. */
static tg_tensor *term(int i, tg_tensor *x, tg_tensor *t, tg_tensor *W)
{
    switch (i) {
    case 0:
        return tg_sum(tg_transpose(x, 0, 1));
    case 1:
        return tg_sum(tg_permute(x, (int[]){1, 0}));
    case 2:
        return tg_mean(tg_reshape(x, 1, (int64_t[]){6}));
    case 3:
        return tg_sum(tg_narrow(x, 1, 1, 2));
    case 4:
        return tg_sum(tg_expand(tg_reshape(x, 3, (int64_t[]){1, 2, 3}), 3, (int64_t[]){2, 2, 3}));
    case 5:
        return tg_sum(tg_clone(x));
    case 6:
        return tg_sum(tg_sum_dim(x, 0, false));
    case 7:
        return tg_sum(tg_mean_dim(x, 1, true));
    case 8:
        return tg_sum(tg_mul_scalar(tg_add_scalar(x, 1.0f), 3.0f));
    case 9:
        return tg_sum(tg_mul(x, x));
    case 10:
        return tg_sum(tg_matmul(x, tg_transpose(W, 0, 1)));
    case 11:
        return tg_sum(tg_linear(x, W, tg_zeros(1, (int64_t[]){4})));
    case 12:
        return tg_sum(tg_clamp(x, -0.5f, 0.5f));
    case 13:
        return tg_sum(tg_pow_scalar(x, 2.0f));
    case 14:
        return tg_sum(tg_exp(x));
    case 15:
        return tg_binary_cross_entropy(tg_sigmoid(x), t, TG_REDUCE_MEAN);
    case 16:
        return tg_bce_with_logits(x, t, NULL, TG_REDUCE_SUM);
    case 17:
        return tg_mse_loss(x, t, TG_REDUCE_MEAN);
    default:
        return NULL;
    }
}

/* Every differentiable op on the way from x to the loss: an op whose node could not be
 * recorded must fail, not hand out a result without grad_fn (backward would then succeed and
 * leave that op's share out of x's gradient). */
static bool graph_of_every_op(outcome *o)
{
    tg_scope_begin();
    bool ok = false;
    int64_t s23[2] = {2, 3};
    float xv[6] = {0.3f, -0.2f, 0.5f, 0.9f, -0.7f, 0.1f};
    tg_tensor *x = tg_requires_grad_(tg_from_data(xv, 2, s23), true);
    tg_tensor *t = x ? tg_full(2, s23, 0.25f) : NULL;
    tg_tensor *W = t ? tg_full(2, (int64_t[]){4, 3}, 0.5f) : NULL;
    tg_tensor *loss = W ? tg_zeros(0, NULL) : NULL;
    for (int i = 0; loss && i < 18; i++) {
        tg_tensor *v = term(i, x, t, W);
        loss = v ? tg_add(loss, v) : NULL; /* stop at the first failure, with its status */
    }
    if (loss && tg_backward(loss, NULL, false) == TG_OK) {
        push_tensor(o, loss);
        push_tensor(o, tg_grad(x));
        ok = true;
    }
    tg_scope_end();
    return ok;
}

/* A sum along dim 0 of rows wider than the column kernel and longer than one run: sum_dim
 * halves the rows pairwise in scratch rows, and without them would round differently. */
static bool sum_of_long_wide_rows(outcome *o)
{
    tg_scope_begin();
    tg_tensor *s = tg_sum_dim(tg_randn(2, (int64_t[]){300, 90}, 5), 0, false);
    push_tensor(o, s);
    tg_scope_end();
    return s != NULL;
}

/* Fills the large-buffer cache with buffers too big for any request of the scenario after it
 * (the cache hands out at most twice the size asked), so that its buffers, and the tiles'
 * panels, are allocated afresh on every run, where the injected failure can reach them. */
static bool crowd_out_cache(void) /* outside any scope: it releases its decoys itself */
{
    enum { DECOYS = 64 }; /* more than the cache's slots */
    tg_tensor *t[DECOYS];
    int n = 0;
    while (n < DECOYS && (t[n] = tg_zeros(1, (int64_t[]){1 << 16})))
        n++;
    bool ok = n == DECOYS; /* else tg_zeros's error stands: tg_release sets none */
    while (n > 0)
        tg_release(t[--n]);
    return ok;
}

/* Products that go to tg_sgemm_, run on the tiles (test_tiled_products): one on operands the
 * library did not allocate, the forward and the backward of sum(a @ b), which reads its
 * gradient as one value, and tg_linear's product on its bias. Every buffer and panel is fresh
 * (crowd_out_cache), so each one's failure is injected in turn. The cache retries a failed
 * buffer once, so a panel's failure is absorbed here; past the retry, tg_sgemm_ reports it
 * rather than turn to OpenBLAS, whose floats differ. */
static bool tiled_products(outcome *o)
{
    /* Operands outside the library's allocations, so the panels are the product's only ones. */
    static float xa[66 * 30], yb[30 * 70], z[66 * 70];
    for (int i = 0; i < 66 * 30; i++)
        xa[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (int i = 0; i < 30 * 70; i++)
        yb[i] = (float)((i * 53) % 97) / 48.0f - 1.0f;
    if (!crowd_out_cache() || !tg_sgemm_(false, false, 66, 70, 30, xa, 30, yb, 70, 0.0f, z, 70))
        return false;
    push_every(o, z, 66 * 70);
    tg_scope_begin();
    tg_tensor *a = tg_requires_grad_(tg_randn(2, (int64_t[]){66, 30}, 3), true);
    tg_tensor *b = a ? tg_requires_grad_(tg_randn(2, (int64_t[]){30, 70}, 4), true) : NULL;
    tg_tensor *s = b ? tg_sum(tg_matmul(a, b)) : NULL;
    bool ok = s && tg_backward(s, NULL, false) == TG_OK;
    if (ok)
        push_every(o, tg_data(tg_grad(a)), 66 * 30);
    tg_scope_end();
    /* the linear's panels fresh too, not the backward's from the cache */
    if (!ok || !crowd_out_cache())
        return false;
    tg_scope_begin();
    tg_tensor *x = tg_randn(2, (int64_t[]){60, 40}, 5);
    tg_tensor *W = x ? tg_randn(2, (int64_t[]){65, 40}, 6) : NULL;
    tg_tensor *bias = W ? tg_zeros(1, (int64_t[]){65}) : NULL;
    tg_tensor *y = bias ? tg_linear(x, W, bias) : NULL;
    if (y)
        push_every(o, tg_data(y), 60 * 65);
    tg_scope_end();
    return y != NULL;
}

/* Dropping rows with a missing value copies the kept rows into new tensors. */
static bool csv_drop_missing(outcome *o)
{
    static const char text[] = "a,b,label\n1,2,yes\n,3,no\n4,5,no\n6,,yes\n7,8,yes\n";
    tg_csv_options opt;
    tg_csv_options_init(&opt);
    opt.missing = TG_MISSING_DROP;
    opt.positive = "yes";
    opt.threads = 1;
    tg_csv_data d;
    if (tg_csv_read_buffer("t.csv", text, sizeof text - 1, &opt, &d) != TG_OK)
        return false;
    push(o, (double)d.rows);
    push(o, (double)d.rows_dropped);
    push_tensor(o, d.X);
    push_tensor(o, d.y);
    tg_csv_data_free(&d);
    return true;
}

/* One thread parses the rows as it reads them, until a missing value leaves the rest to the
 * split; then the outputs are cut to the rows read and the mean filled in. */
static bool csv_streamed(outcome *o)
{
    char text[4096];
    int n = snprintf(text, sizeof text, "a,b,label\n");
    for (int r = 0; r < 60; r++)
        n += snprintf(text + n, sizeof text - (size_t)n, "%d,%s,%d\n", r, r == 50 ? "" : "0.25",
                      r % 3 == 0);
    tg_csv_options opt;
    tg_csv_options_init(&opt);
    opt.missing = TG_MISSING_MEAN;
    opt.threads = 1;
    tg_csv_set_stream_min_(0);
    tg_csv_data d;
    tg_status st = tg_csv_read_buffer("s.csv", text, (size_t)n, &opt, &d);
    tg_csv_set_stream_min_((size_t)4 << 20);
    if (st != TG_OK)
        return false;
    push(o, (double)d.rows);
    push_tensor(o, d.X);
    push_tensor(o, d.y);
    tg_csv_data_free(&d);
    return true;
}

/* Standardized features: the model must not depend on whether memory was short. gaps: some
 * features missing, filled with the training rows' means after a validation split. */
static bool logreg_fit_with(outcome *o, tg_solver solver, bool gaps)
{
    float X[40 * 2], y[40];
    for (int i = 0; i < 40; i++) {
        X[2 * i] = 1000.0f + 0.37f * (float)((i * 7) % 13);
        X[2 * i + 1] = 0.01f * (float)((i * 5) % 11) - 0.03f;
        y[i] = (float)((i * 3) % 5 < 2);
        if (gaps && i % 6 == 0)
            X[2 * i + 1] = NAN;
    }
    tg_tensor *Xt = tg_from_data(X, 2, (int64_t[]){40, 2});
    tg_tensor *yt = Xt ? tg_from_data(y, 1, (int64_t[]){40}) : NULL;
    tg_logreg_options opt;
    tg_logreg_options_init(&opt);
    opt.keep_history = false;
    opt.metrics = false;
    opt.solver = solver;
    opt.fill_missing = gaps;
    opt.val_split = gaps ? 0.25 : 0.0;
    if (solver == TG_SOLVER_ADAM) {
        opt.max_iter = 3; /* epochs of mini-batches: the row order and the batch buffers */
        opt.batch_size = 16;
    }
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_status st = yt ? tg_logreg_fit(Xt, yt, &opt, &m, NULL) : tg_last_status();
    tg_release(Xt);
    tg_release(yt);
    if (st != TG_OK)
        return false;
    for (int j = 0; j < 2; j++)
        push(o, m.weights[j]);
    push(o, m.bias);
    tg_logreg_model_free(&m);
    return true;
}

static bool logreg_standardized(outcome *o)
{
    return logreg_fit_with(o, TG_SOLVER_LBFGS, false);
}

static bool logreg_adam(outcome *o)
{
    return logreg_fit_with(o, TG_SOLVER_ADAM, false);
}

static bool logreg_gaps(outcome *o)
{
    return logreg_fit_with(o, TG_SOLVER_LBFGS, true);
}

/* An optimizer's state read back from a file written before the sweep: a buffer that cannot
 * be allocated is a lack of memory, not a damaged file. */
static char optim_path[64];

static tg_optimizer *momentum_sgd(tg_tensor *p)
{
    tg_sgd_options so;
    tg_sgd_options_init(&so);
    so.momentum = 0.9;
    return tg_sgd_new(&p, 1, &so);
}

static bool optimizer_load(outcome *o)
{
    tg_tensor *p = tg_zeros(1, (int64_t[]){3});
    tg_optimizer *opt = p ? momentum_sgd(tg_requires_grad_(p, true)) : NULL;
    bool ok = opt && tg_optimizer_load(opt, optim_path) == TG_OK;
    if (ok)
        push_tensor(o, p);
    tg_optimizer_free(opt);
    tg_release(p);
    return ok;
}

/* Saving: no memory for the temporary file's name is TG_ENOMEM, not an I/O error. */
static bool optimizer_save(outcome *o)
{
    tg_tensor *p = tg_ones(1, (int64_t[]){3});
    tg_optimizer *opt = p ? momentum_sgd(tg_requires_grad_(p, true)) : NULL;
    bool ok = opt && tg_optimizer_save(opt, optim_path) == TG_OK;
    if (ok)
        push(o, 1.0);
    tg_optimizer_free(opt);
    tg_release(p);
    return ok;
}

static bool logreg_save(outcome *o)
{
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    m.n_features = 2;
    m.weights = (double[]){0.5, -0.25}; /* the test's own: not freed by the model */
    m.bias = 0.125;
    if (tg_logreg_save(&m, optim_path) != TG_OK)
        return false;
    push(o, 1.0);
    return true;
}

/* Scopes nested past the marks kept without allocation: a begin that cannot get its mark must
 * not make its end release the enclosing scope's results. */
static bool nested_scopes(outcome *o)
{
    enum { DEPTH = 80 };
    tg_tensor *t[DEPTH];
    bool ok = true;
    for (int d = 0; d < DEPTH; d++) {
        tg_scope_begin();
        t[d] = ok ? tg_full(1, (int64_t[]){2}, (float)d) : NULL;
        ok = ok && t[d];
    }
    for (int d = DEPTH - 1; d >= 0; d--) {
        tg_scope_end();
        for (int e = 0; ok && e < d; e++) { /* still held by the scopes left open */
            float v[2] = {-1.0f, -1.0f};
            tg_copy_to(t[e], v, 2);
            push(o, v[1]);
        }
    }
    return ok;
}

static void test_graph_of_every_op(void **state)
{
    (void)state;
    sweep(graph_of_every_op);
}

static void test_sum_of_long_wide_rows(void **state)
{
    (void)state;
    sweep(sum_of_long_wide_rows);
}

static void test_tiled_products(void **state)
{
    (void)state;
    tg_gemm_force_(1); /* families without tiles stay on OpenBLAS */
    sweep(tiled_products);
    tg_gemm_force_(-1);
}

static void test_csv_drop_missing(void **state)
{
    (void)state;
    sweep(csv_drop_missing);
}

static void test_csv_streamed(void **state)
{
    (void)state;
    sweep(csv_streamed);
}

static void test_logreg_standardized(void **state)
{
    (void)state;
    sweep(logreg_standardized);
}

static void test_logreg_adam(void **state)
{
    (void)state;
    sweep(logreg_adam);
}

static void test_logreg_gaps(void **state)
{
    (void)state;
    sweep(logreg_gaps);
}

static void test_optimizer_load(void **state)
{
    (void)state;
    /* one SGD step with momentum, so that the file holds a momentum buffer too */
    strcpy(optim_path, "/tmp/tg_oom_optim_XXXXXX");
    int fd = mkstemp(optim_path);
    assert_true(fd >= 0);
    close(fd);
    tg_tensor *p = tg_requires_grad_(tg_from_data((float[]){1, 2, 3}, 1, (int64_t[]){3}), true);
    tg_optimizer *opt = momentum_sgd(p);
    assert_non_null(opt);
    tg_tensor *sq = tg_mul(p, p), *loss = tg_sum(sq);
    assert_int_equal(tg_backward(loss, NULL, false), TG_OK);
    assert_int_equal(tg_optimizer_step(opt), TG_OK);
    assert_int_equal(tg_optimizer_save(opt, optim_path), TG_OK);
    tg_release(sq);
    tg_release(loss);
    tg_optimizer_free(opt);
    tg_release(p);
    sweep(optimizer_load);
    unlink(optim_path);
}

static void test_saves(void **state)
{
    (void)state;
    strcpy(optim_path, "/tmp/tg_oom_save_XXXXXX");
    int fd = mkstemp(optim_path);
    assert_true(fd >= 0);
    close(fd);
    sweep(optimizer_save);
    sweep(logreg_save);
    unlink(optim_path);
}

static void test_nested_scopes(void **state)
{
    (void)state;
    sweep(nested_scopes);
}

/* A copy that fails names the public call that asked for it: every failing allocation of
 * tg_clone of a transposed matrix (made before the sweep) reports tg_clone. */
static tg_tensor *clone_src;

static bool clone_transposed(outcome *o)
{
    tg_tensor *c = tg_clone(clone_src);
    if (!c)
        return false;
    push_tensor(o, c);
    tg_release(c);
    return true;
}

static void test_clone_names_itself(void **state)
{
    (void)state;
    tg_tensor *v = tg_arange(0.0f, 6.0f, 1.0f), *m = tg_reshape(v, 2, (int64_t[]){3, 2});
    clone_src = tg_transpose(m, 0, 1);
    tg_release(v), tg_release(m);
    static outcome got;
    int failures = 0;
    for (long n = 1; n < 16; n++) {
        run_once(clone_transposed, &got, n);
        if (!atomic_load(&hit))
            break;
        if (got.status == TG_OK)
            continue;
        failures++;
        if (strncmp(got.message, "tg_clone: ", 10) != 0)
            fail_msg("allocation %ld: \"%s\" does not name tg_clone", n, got.message);
    }
    assert_true(failures > 0);
    tg_release(clone_src);
}

int main(void)
{
    /* one thread: every allocation happens on the scenario's thread, in the same order */
    tg_set_num_threads(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_graph_of_every_op),
        cmocka_unit_test(test_sum_of_long_wide_rows),
        cmocka_unit_test(test_tiled_products),
        cmocka_unit_test(test_csv_drop_missing),
        cmocka_unit_test(test_csv_streamed),
        cmocka_unit_test(test_logreg_standardized),
        cmocka_unit_test(test_logreg_adam),
        cmocka_unit_test(test_logreg_gaps),
        cmocka_unit_test(test_nested_scopes),
        cmocka_unit_test(test_optimizer_load),
        cmocka_unit_test(test_saves),
        cmocka_unit_test(test_clone_names_itself),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
