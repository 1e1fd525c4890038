/* Several user threads calling the library at once, each on tensors of its own: large graphs
 * (whose ops want the shared pool at the same time), small ones (no thread woken), errors, grad
 * mode and scopes per thread, the CSV reader, the logistic-regression trainer, its model files
 * and optimizers,
 * while another thread changes the pool size; and threads that share tensors as inputs to
 * graphs of their own. Every result must be bit-identical to the one the main thread computes
 * alone first. The ThreadSanitizer build (.ci/tsan) runs this test to catch races that give no
 * wrong value here. And a fork while another thread is inside the library: the child must be
 * able to go on.
 *
 * Workers record what they computed and the main thread asserts it (cmocka's asserts must not
 * run on other threads). */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "heap.h" /* TG_TEST_ASAN */
#include "tapegrad.h"

#include "tensor.h" /* tg_storage_new: the storage cache without the ops around it */

enum {
    WORKERS = 3, /* user threads at once: more than the 2 cores of the CI machine */
    ROUNDS = 2,
    BIG = (1 << 20) + 37, /* above every grain: its ops ask for the pool */
    SMALL = 1000,         /* below every grain: run on the calling thread */
    CSV_ROWS = 9000,      /* three of the reader's blocks */
    FIT_ROWS = 3000,
    FIT_COLS = 6,
};

/* ---- what one thread computes ----------------------------------------------------------- */

typedef struct {
    float loss;
    float *gx, *gw; /* n each */
    int64_t n;
} graph_out;

static void graph_out_free(graph_out *g)
{
    free(g->gx);
    free(g->gw);
    *g = (graph_out){0};
}

/* loss = mean((tanh(x w) + exp(sin x))^2) + sum(A @ B) / 1000, and its gradients. */
static bool run_graph(int64_t n, uint64_t seed, graph_out *out)
{
    bool ok = false;
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_rand(1, &n, seed), true);
    tg_tensor *w = tg_requires_grad_(tg_randn(1, &n, seed + 1), true);
    tg_tensor *y = tg_add(tg_tanh(tg_mul(x, w)), tg_exp(tg_sin(x)));
    tg_tensor *loss = tg_mean(tg_mul(y, y));
    /* past the small kernel, so OpenBLAS, but below its threading threshold (M N K = 2^18) */
    int64_t sa[2] = {80, 48}, sb[2] = {48, 64};
    tg_tensor *a = tg_requires_grad_(tg_randn(2, sa, seed + 2), true);
    tg_tensor *b = tg_randn(2, sb, seed + 3);
    loss = tg_add(loss, tg_mul_scalar(tg_sum(tg_matmul(a, b)), 1e-3f));
    if (loss && tg_backward(loss, NULL, false) == TG_OK) {
        out->n = n;
        out->loss = tg_item(loss);
        out->gx = malloc((size_t)n * sizeof(float));
        out->gw = malloc((size_t)n * sizeof(float));
        ok = out->gx && out->gw && tg_copy_to(tg_grad(x), out->gx, n) == n &&
             tg_copy_to(tg_grad(w), out->gw, n) == n;
    }
    tg_scope_end();
    return ok;
}

static bool graph_same(const graph_out *a, const graph_out *b)
{
    return a->n == b->n && a->n > 0 && memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 &&
           memcmp(a->gx, b->gx, (size_t)a->n * sizeof(float)) == 0 &&
           memcmp(a->gw, b->gw, (size_t)a->n * sizeof(float)) == 0;
}

/* A failing call names this thread's own shapes, and a later success clears the status,
 * however the other threads' calls interleave. */
static bool run_errors(int id)
{
    bool ok = true;
    for (int i = 0; i < 200 && ok; i++) {
        int64_t sa[1] = {id + 2}, sb[1] = {id + 3};
        char want[64];
        snprintf(want, sizeof want, "[%d] and [%d]", id + 2, id + 3);
        tg_tensor *a = tg_zeros(1, sa), *b = tg_zeros(1, sb);
        tg_tensor *c = tg_add(a, b);
        ok = !c && tg_last_status() == TG_ESHAPE && strstr(tg_last_error(), want);
        tg_release(c);
        c = tg_add(a, a);
        ok = ok && c && tg_last_status() == TG_OK && tg_last_error()[0] == '\0';
        tg_release(c), tg_release(b), tg_release(a);
    }
    return ok;
}

/* Odd threads record nothing, even ones record: each sees its own grad mode only. */
static bool run_grad_mode(int id)
{
    bool ok = true;
    tg_tensor *x = tg_requires_grad_(tg_scalar(2.0f), true);
    for (int i = 0; i < 200 && ok; i++) {
        bool prev = tg_set_grad_enabled(id % 2 == 0);
        tg_tensor *y = tg_mul(x, x);
        ok = y && tg_requires_grad(y) == (id % 2 == 0) && tg_grad_enabled() == (id % 2 == 0);
        tg_release(y);
        tg_set_grad_enabled(prev);
    }
    tg_release(x);
    return ok;
}

/* A CSV of numbers and labels that depends on seed only. */
static char *make_csv(uint64_t seed, size_t *len)
{
    size_t cap = (size_t)CSV_ROWS * 64 + 64;
    char *buf = malloc(cap);
    if (!buf)
        return NULL;
    size_t used = (size_t)snprintf(buf, cap, "a,b,c,label\n");
    uint64_t s = seed;
    for (int r = 0; r < CSV_ROWS; r++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned v = (unsigned)(s >> 33);
        used += (size_t)snprintf(buf + used, cap - used, "%u.%u,%d,-%u.5,%u\n", v % 1000, v % 7, r,
                                 v % 31, v & 1);
    }
    *len = used;
    return buf;
}

static bool run_csv(const char *text, size_t len, float *X, float *y)
{
    tg_csv_options o;
    tg_csv_options_init(&o);
    o.threads = 2;
    tg_csv_data d;
    if (tg_csv_read_buffer("conc.csv", text, len, &o, &d) != TG_OK)
        return false;
    bool ok = d.rows == CSV_ROWS && d.n_features == 3 &&
              tg_copy_to(d.X, X, (int64_t)CSV_ROWS * 3) == (int64_t)CSV_ROWS * 3 &&
              tg_copy_to(d.y, y, CSV_ROWS) == CSV_ROWS;
    tg_csv_data_free(&d);
    return ok;
}

/* The model through its JSON text and back: the same numbers (every thread parses at once). */
static bool json_round_trip(const tg_logreg_model *m)
{
    char *text = tg_logreg_to_json(m);
    tg_logreg_model back;
    tg_logreg_model_init(&back);
    bool ok = text && tg_logreg_from_json(&back, "conc.json", text, strlen(text)) == TG_OK &&
              back.n_features == m->n_features && back.bias == m->bias &&
              memcmp(back.weights, m->weights, (size_t)m->n_features * sizeof *m->weights) == 0;
    tg_logreg_model_free(&back);
    free(text);
    return ok;
}

/* L-BFGS with a validation split on seeded data (the shuffle and split come from opt.seed). */
static bool run_fit(tg_tensor *X, tg_tensor *y, double *w, double *b, int *iters)
{
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    o.val_split = 0.2;
    o.seed = 7;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    bool ok = tg_logreg_fit(X, y, &o, &m, NULL) == TG_OK;
    for (int i = 0; i < 50 && ok; i++)
        ok = json_round_trip(&m);
    if (ok) {
        memcpy(w, m.weights, FIT_COLS * sizeof *w);
        *b = m.bias;
        *iters = m.iterations;
    }
    tg_logreg_model_free(&m);
    return ok;
}

/* Adam on a model of this thread's own: 10 steps of mean((p - 1)^2). */
static bool run_adam(int64_t n, float *p_out)
{
    tg_tensor *p = tg_requires_grad_(tg_rand(1, &n, 99), true);
    tg_adam_options ao;
    tg_adam_options_init(&ao);
    ao.lr = 0.05;
    tg_optimizer *opt = tg_adam_new(&p, 1, &ao);
    bool ok = opt != NULL;
    for (int s = 0; s < 10 && ok; s++) {
        tg_optimizer_zero_grad(opt, true);
        tg_scope_begin();
        tg_tensor *loss = tg_mean(tg_pow_scalar(tg_add_scalar(p, -1.0f), 2.0f));
        ok = loss && tg_backward(loss, NULL, false) == TG_OK && tg_optimizer_step(opt) == TG_OK;
        tg_scope_end();
    }
    ok = ok && tg_copy_to(p, p_out, n) == n;
    tg_optimizer_free(opt);
    tg_release(p);
    return ok;
}

/* ---- the test ---------------------------------------------------------------------------- */

typedef struct {
    graph_out big, small;
    float csv_X[CSV_ROWS * 3], csv_y[CSV_ROWS];
    double fit_w[FIT_COLS], fit_b;
    int fit_iters;
    float adam[BIG];
} results;

typedef struct {
    int id;
    const char *csv;
    size_t csv_len;
    tg_tensor *fit_X, *fit_y; /* owned by the main thread; each worker gets its own copies */
    const results *want;
    results *got;
    bool ok_big, ok_small, ok_errors, ok_grad_mode, ok_csv, ok_fit, ok_adam;
} worker_job;

static void compute_all(worker_job *j, results *r)
{
    graph_out_free(&r->big), graph_out_free(&r->small);
    j->ok_big = run_graph(BIG, 11, &r->big);
    j->ok_small = run_graph(SMALL, 12, &r->small);
    j->ok_errors = run_errors(j->id);
    j->ok_grad_mode = run_grad_mode(j->id);
    j->ok_csv = run_csv(j->csv, j->csv_len, r->csv_X, r->csv_y);
    j->ok_fit = run_fit(j->fit_X, j->fit_y, r->fit_w, &r->fit_b, &r->fit_iters);
    j->ok_adam = run_adam(BIG, r->adam);
}

static bool results_same(const results *a, const results *b)
{
    return graph_same(&a->big, &b->big) && graph_same(&a->small, &b->small) &&
           memcmp(a->csv_X, b->csv_X, sizeof a->csv_X) == 0 &&
           memcmp(a->csv_y, b->csv_y, sizeof a->csv_y) == 0 &&
           memcmp(a->fit_w, b->fit_w, sizeof a->fit_w) == 0 && a->fit_b == b->fit_b &&
           a->fit_iters == b->fit_iters && memcmp(a->adam, b->adam, sizeof a->adam) == 0;
}

static void *worker(void *arg)
{
    worker_job *j = arg;
    bool same = true;
    for (int r = 0; r < ROUNDS; r++) {
        compute_all(j, j->got);
        same = same && results_same(j->got, j->want);
    }
    if (!same) /* reported as a failed graph; the flags below say which part */
        j->ok_big = j->ok_big && graph_same(&j->got->big, &j->want->big);
    return NULL;
}

typedef struct {
    atomic_int stop;
    int64_t changes;
} resizer_job;

/* Changes the pool size while the workers compute: splits move, values may not. */
static void *resize_pool(void *arg)
{
    resizer_job *rj = arg;
    static const int sizes[] = {1, 2, 3, 2};
    while (!atomic_load(&rj->stop)) {
        tg_set_num_threads(sizes[rj->changes++ % 4]);
        int64_t n = 4096;
        tg_tensor *ones = tg_ones(1, &n); /* and compute a little itself */
        tg_release(tg_sum(ones));
        tg_release(ones);
    }
    return NULL;
}

static void test_threads_compute_at_once(void **state)
{
    (void)state;
    size_t csv_len = 0;
    char *csv = make_csv(5, &csv_len);
    assert_non_null(csv);
    float *fx = malloc((size_t)FIT_ROWS * FIT_COLS * sizeof(float));
    float *fy = malloc((size_t)FIT_ROWS * sizeof(float));
    assert_non_null(fx);
    assert_non_null(fy);
    for (int i = 0; i < FIT_ROWS; i++) {
        float z = 0.0f;
        for (int c = 0; c < FIT_COLS; c++) {
            float v = (float)((i * 7 + c * 13) % 29) / 7.0f - 2.0f;
            fx[i * FIT_COLS + c] = v;
            z += (c % 2 ? 0.5f : -0.3f) * v;
        }
        fy[i] = (z + (float)(i % 5) * 0.4f - 0.8f) > 0.0f ? 1.0f : 0.0f;
    }
    int64_t fshape[2] = {FIT_ROWS, FIT_COLS};
    int64_t frows = FIT_ROWS;
    tg_tensor *X[WORKERS + 1], *y[WORKERS + 1];
    for (int i = 0; i <= WORKERS; i++) {
        X[i] = tg_from_data(fx, 2, fshape);
        y[i] = tg_from_data(fy, 1, &frows);
        assert_non_null(X[i]);
        assert_non_null(y[i]);
    }

    results *want = calloc(1, sizeof *want);
    results *got = calloc(WORKERS, sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    worker_job ref = {.id = 0, .csv = csv, .csv_len = csv_len, .fit_X = X[0], .fit_y = y[0]};
    tg_set_num_threads(2);
    compute_all(&ref, want);
    assert_true(ref.ok_big && ref.ok_small && ref.ok_errors && ref.ok_grad_mode && ref.ok_csv &&
                ref.ok_fit && ref.ok_adam);

    worker_job jobs[WORKERS];
    pthread_t threads[WORKERS], resizer;
    resizer_job rj = {.stop = 0};
    assert_int_equal(pthread_create(&resizer, NULL, resize_pool, &rj), 0);
    for (int i = 0; i < WORKERS; i++) {
        jobs[i] = (worker_job){.id = i + 1,
                               .csv = csv,
                               .csv_len = csv_len,
                               .fit_X = X[i + 1],
                               .fit_y = y[i + 1],
                               .want = want,
                               .got = &got[i]};
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    atomic_store(&rj.stop, 1);
    assert_int_equal(pthread_join(resizer, NULL), 0);
    print_message("%d workers x %d rounds during %lld pool size changes\n", WORKERS, ROUNDS,
                  (long long)rj.changes);
    tg_set_num_threads(0);

    for (int i = 0; i < WORKERS; i++) {
        worker_job *j = &jobs[i];
        assert_true(j->ok_big);
        assert_true(j->ok_small);
        assert_true(j->ok_errors);
        assert_true(j->ok_grad_mode);
        assert_true(j->ok_csv);
        assert_true(j->ok_fit);
        assert_true(j->ok_adam);
        assert_true(results_same(&got[i], want));
        graph_out_free(&got[i].big), graph_out_free(&got[i].small);
    }
    graph_out_free(&want->big), graph_out_free(&want->small);
    for (int i = 0; i <= WORKERS; i++)
        tg_release(X[i]), tg_release(y[i]);
    free(want), free(got), free(fx), free(fy), free(csv);
}

/* ---- one tensor read by several threads at once ----------------------------------------- */

enum {
    SH_ROWS = 96,
    SH_COLS = 64, /* rows of 64 floats: matrix @ vector goes by the kernel table's dot */
};

/* Tensors every worker uses at once as inputs, none of them written while the workers run. */
typedef struct {
    tg_tensor *w;  /* [BIG] leaf that requires grad: every worker's backward adds to its .grad */
    tg_tensor *m;  /* [SH_ROWS, SH_COLS] leaf that requires grad: small, no thread woken */
    tg_tensor *h;  /* tanh(m) / 2: a shared tensor with a grad_fn, graphs built on it */
    tg_tensor *ws; /* [BIG] weights that need no grad */
} shared_set;

typedef struct {
    float infer[SH_ROWS]; /* no grad: sigmoid(m @ v) + row sums of m */
    float big_sum;        /* no grad: sum(ws * w) */
    float through_h;      /* grad on, no backward: mean(reshape(h) * v2) */
    float loss, loss_small;
    float *gx; /* [BIG]: the grad of this worker's own leaf */
} shared_out;

/* Each shared leaf enters the graph once, so a backward adds one value to its .grad, and the
 * same value in every worker: the total is then the same whichever order the workers add in. */
static bool run_shared(const shared_set *s, shared_out *o)
{
    bool ok = true;
    int64_t n = BIG, cols = SH_COLS, all = SH_ROWS * SH_COLS;
    tg_scope_begin();
    tg_tensor *v = tg_rand(1, &cols, 31);
    TG_NO_GRAD
    {
        tg_tensor *cs = tg_sum_dim(tg_contiguous(tg_transpose(s->m, 0, 1)), 0, false);
        tg_tensor *y = tg_add(tg_sigmoid(tg_matmul(s->m, v)), tg_narrow(cs, 0, 0, SH_ROWS));
        ok = ok && tg_copy_to(y, o->infer, SH_ROWS) == SH_ROWS;
        o->big_sum = tg_item(tg_sum(tg_mul(s->ws, tg_detach(s->w))));
        ok = ok && !isnan(o->big_sum) && !tg_requires_grad(y);
    }
    tg_tensor *h2 = tg_mul(tg_reshape(s->h, 1, &all), tg_rand(1, &all, 32));
    o->through_h = tg_item(tg_mean(h2));
    ok = ok && tg_requires_grad(h2) && !isnan(o->through_h);

    tg_tensor *x = tg_requires_grad_(tg_rand(1, &n, 33), true);
    tg_tensor *loss = tg_mean(tg_tanh(tg_add(tg_mul(x, s->w), tg_sin(x))));
    ok = ok && loss && tg_backward(loss, NULL, false) == TG_OK;
    o->loss = tg_item(loss);
    ok = ok && tg_copy_to(tg_grad(x), o->gx, n) == n;

    int64_t vshape[2] = {SH_COLS, 1};
    tg_tensor *small = tg_sum(tg_exp(tg_matmul(s->m, tg_reshape(v, 2, vshape))));
    ok = ok && small && tg_backward(small, NULL, false) == TG_OK;
    o->loss_small = tg_item(small);
    tg_scope_end();
    return ok;
}

static bool shared_same(const shared_out *a, const shared_out *b)
{
    return memcmp(a->infer, b->infer, sizeof a->infer) == 0 &&
           memcmp(&a->big_sum, &b->big_sum, sizeof a->big_sum) == 0 &&
           memcmp(&a->through_h, &b->through_h, sizeof a->through_h) == 0 &&
           memcmp(&a->loss, &b->loss, sizeof a->loss) == 0 &&
           memcmp(&a->loss_small, &b->loss_small, sizeof a->loss_small) == 0 &&
           memcmp(a->gx, b->gx, (size_t)BIG * sizeof(float)) == 0;
}

typedef struct {
    const shared_set *s;
    const shared_out *want;
    tg_tensor *last; /* one reference of its own: whichever worker releases last frees it */
    float last_sum, want_last_sum;
    bool ok;
} shared_job;

static void *shared_worker(void *arg)
{
    shared_job *j = arg;
    shared_out got = {.gx = malloc((size_t)BIG * sizeof(float))};
    j->ok = got.gx != NULL;
    for (int r = 0; r < ROUNDS && j->ok; r++)
        j->ok = run_shared(j->s, &got) && shared_same(&got, j->want);
    tg_tensor *sum = tg_sum(j->last);
    j->ok = j->ok && tg_item(sum) == j->want_last_sum;
    tg_release(sum);
    tg_release(j->last);
    free(got.gx);
    return NULL;
}

/* The grads of the shared leaves, copied out. */
static void copy_shared_grads(const shared_set *s, float *gw, float *gm)
{
    assert_int_equal(tg_copy_to(tg_grad(s->w), gw, BIG), BIG);
    assert_int_equal(tg_copy_to(tg_grad(s->m), gm, SH_ROWS * SH_COLS), SH_ROWS * SH_COLS);
}

/* Weights shared by worker threads, as an inference server or several trainers share them: each
 * worker's graphs take them as inputs, with grad mode on and off, its backward adds to their
 * .grad, and the last worker to drop a shared tensor frees it. Every value must be bit-identical
 * to the main thread's, the accumulated grads to those of the same backward passes run one after
 * another. The TSan run catches unsynchronized reference counts and grad updates, which give no
 * wrong value here most of the time. */
static void test_threads_share_inputs(void **state)
{
    (void)state;
    int64_t n = BIG, mshape[2] = {SH_ROWS, SH_COLS};
    shared_set s = {.w = tg_requires_grad_(tg_randn(1, &n, 41), true),
                    .m = tg_requires_grad_(tg_randn(2, mshape, 42), true),
                    .ws = tg_rand(1, &n, 43)};
    tg_tensor *th = tg_tanh(s.m);
    s.h = tg_mul_scalar(th, 0.5f);
    tg_release(th); /* s.h's graph keeps what it needs */
    assert_non_null(s.w);
    assert_non_null(s.m);
    assert_non_null(s.h);
    assert_non_null(s.ws);
    assert_non_null(tg_grad_fn_name(s.h));

    shared_out want = {.gx = malloc((size_t)BIG * sizeof(float))};
    assert_non_null(want.gx);
    enum { PASSES = WORKERS * ROUNDS };
    for (int i = 0; i < PASSES; i++)
        assert_true(run_shared(&s, &want));
    float *want_gw = malloc((size_t)BIG * sizeof(float));
    float *got_gw = malloc((size_t)BIG * sizeof(float));
    float want_gm[SH_ROWS * SH_COLS], got_gm[SH_ROWS * SH_COLS];
    assert_non_null(want_gw);
    assert_non_null(got_gw);
    copy_shared_grads(&s, want_gw, want_gm);
    tg_grad_reset(s.w);
    tg_grad_reset(s.m);

    tg_tensor *last = tg_randn(1, &n, 44);
    tg_tensor *last_sum = tg_sum(last);
    assert_non_null(last_sum);
    shared_job jobs[WORKERS];
    pthread_t threads[WORKERS];
    tg_set_num_threads(2);
    for (int i = 0; i < WORKERS; i++) {
        jobs[i] = (shared_job){.s = &s,
                               .want = &want,
                               .last = i ? tg_retain(last) : last,
                               .want_last_sum = tg_item(last_sum)};
        assert_int_equal(pthread_create(&threads[i], NULL, shared_worker, &jobs[i]), 0);
    }
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    tg_set_num_threads(0);
    for (int i = 0; i < WORKERS; i++)
        assert_true(jobs[i].ok);
    copy_shared_grads(&s, got_gw, got_gm);
    assert_memory_equal(got_gw, want_gw, (size_t)BIG * sizeof(float));
    assert_memory_equal(got_gm, want_gm, sizeof want_gm);

    tg_release(last_sum);
    tg_release(s.h), tg_release(s.w), tg_release(s.m), tg_release(s.ws);
    free(want.gx), free(want_gw), free(got_gw);
}

/* ---- fork while other threads compute --------------------------------------------------- */

enum {
    CACHED_FLOATS = 300000, /* a large buffer: through the shared cache and its lock */
    FORKS = 40,
    /* A child that has not finished by then waits on a lock for ever. Generous: the child needs
     * well under a second, but a CI machine shared with other jobs has run whole tests 5x
     * slower than usual. */
    CHILD_SECONDS = 60,
};

/* How far the child got, in memory shared with the parent: a stuck child's report names the
 * last step it finished. */
enum child_stage { STAGE_FORKED = 1, STAGE_ALLOCATED, STAGE_POOL_SET, STAGE_FORWARD, STAGE_DONE };
static const char *const stage_names[] = {"fork (no step yet)",
                                          "signal handlers reset",
                                          "large buffer taken and returned",
                                          "pool size set",
                                          "forward graph run",
                                          "backward run"};

/* Takes a buffer from the cache and puts it back, over and over: most of its time is spent
 * holding the cache's lock, so nearly every fork happens while this thread holds it. */
static void *churn_cache(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop))
        tg_storage_release(tg_storage_new(CACHED_FLOATS));
    return NULL;
}

/* ThreadSanitizer refuses threads in the child of a process that had threads at the fork,
 * unless told otherwise; the child here starts the pool afresh on purpose. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

/* The child, alone in its process: large buffers, a pool size, a graph on the pool. cmocka's
 * handlers for crashes are put back to the defaults first: in a child they would jump back into
 * the test runner, which would go on running the next tests in the child, and the parent would
 * see a hang where there was a crash. */
static int child_work(volatile int *stage)
{
    const int crashes[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT};
    for (size_t i = 0; i < sizeof crashes / sizeof crashes[0]; i++)
        signal(crashes[i], SIG_DFL);
    *stage = STAGE_FORKED;
    tg_storage *s = tg_storage_new(CACHED_FLOATS);
    if (!s)
        return 1;
    tg_storage_release(s);
    *stage = STAGE_ALLOCATED;
    tg_set_num_threads(2);
    *stage = STAGE_POOL_SET;
    int64_t n = BIG;
    tg_tensor *x = tg_requires_grad_(tg_ones(1, &n), true);
    tg_tensor *y = tg_sum(tg_mul_scalar(x, 3.0f));
    *stage = STAGE_FORWARD;
    bool ok = y && tg_backward(y, NULL, false) == TG_OK && tg_item(y) == 3.0f * (float)BIG &&
              tg_data(tg_grad(x))[BIG - 1] == 3.0f;
    *stage = STAGE_DONE;
    return ok ? 0 : 1;
}

/* Prints every thread's stack of a stuck child, when gdb is there to attach, so that a hang in
 * CI says where it waits; then kills it. */
static void report_stuck_child(pid_t pid, int stage)
{
    print_message("child %d stuck after: %s\n", (int)pid, stage_names[stage]);
    char cmd[160];
    snprintf(cmd, sizeof cmd,
             "command -v gdb >/dev/null && gdb -q -batch -p %d -ex 'thread apply all bt' "
             "</dev/null 1>&2",
             (int)pid);
    fflush(stdout);
    if (system(cmd) != 0)
        print_message("(no stacks: gdb missing or could not attach)\n");
    kill(pid, SIGKILL);
}

/* Waits for the child for up to CHILD_SECONDS. Returns 0 when it exited 0, 1 when it failed or
 * crashed, 2 when it was stuck (and has been killed). */
static int wait_child(pid_t pid, volatile int *stage)
{
    const struct timespec tick = {0, 10 * 1000 * 1000};
    struct timespec start, t;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (t = start; t.tv_sec - start.tv_sec < CHILD_SECONDS; clock_gettime(CLOCK_MONOTONIC, &t)) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid && WIFEXITED(st))
            return WEXITSTATUS(st) == 0 ? 0 : 1;
        if (r == pid) {
            print_message("child killed by signal %d after: %s\n", WTERMSIG(st),
                          stage_names[*stage]);
            return 1;
        }
        if (r < 0)
            return 1;
        nanosleep(&tick, NULL);
    }
    report_stuck_child(pid, *stage);
    waitpid(pid, NULL, 0);
    return 2;
}

/* ---- many small backward passes into one leaf ------------------------------------------ */

enum { SUM_PASSES = 20000 };

/* Each pass adds 1 to every entry of the shared leaf's .grad: small tensors, so no pool call
 * orders the threads for ThreadSanitizer, and a backward short enough that unlocked updates
 * would overlap (and lose counts) many times in this many passes. */
static void *add_ones_into_grad(void *arg)
{
    tg_tensor *x = arg;
    bool ok = true;
    for (int i = 0; i < SUM_PASSES && ok; i++) {
        tg_tensor *s = tg_sum(x);
        ok = s && tg_backward(s, NULL, false) == TG_OK;
        tg_release(s);
    }
    return ok ? x : NULL;
}

static void test_threads_add_into_one_grad(void **state)
{
    (void)state;
    int64_t n = 4;
    tg_tensor *x = tg_requires_grad_(tg_zeros(1, &n), true);
    pthread_t th[WORKERS];
    for (int i = 0; i < WORKERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, add_ones_into_grad, x), 0);
    int failed = 0;
    for (int i = 0; i < WORKERS; i++) {
        void *r = NULL;
        assert_int_equal(pthread_join(th[i], &r), 0);
        failed += r == NULL;
    }
    assert_int_equal(failed, 0);
    float g[4];
    assert_int_equal(tg_copy_to(tg_grad(x), g, 4), 4);
    for (int i = 0; i < 4; i++)
        assert_float_equal(g[i], (float)(WORKERS * SUM_PASSES), 0.0f); /* exact below 2^24 */
    tg_release(x);
}

static void test_fork_while_threads_use_the_cache(void **state)
{
    (void)state;
    if (getenv("TG_TEST_EMULATED")) { /* tests/CMakeLists.txt says why */
        print_message("skipped: fork of a threaded process under qemu-user\n");
        skip();
    }
#ifdef TG_TEST_ASAN
    /* AddressSanitizer's allocator (GCC 12's runtime) takes no locks around fork: a child forked
     * while the churner thread was inside malloc inherits the allocator's lock held, and its
     * first thread start-up (the pool's, which frees memory in pthread_getattr_np) waits on it
     * forever. CI's ASan run of 2026-11-29 printed exactly that stack; the release and
     * ThreadSanitizer runs, whose allocators are fork-safe, keep the test. */
    print_message("skipped: AddressSanitizer's allocator is not fork-safe\n");
    skip();
#endif
    atomic_int stop = 0;
    pthread_t churner;
    assert_int_equal(pthread_create(&churner, NULL, churn_cache, &stop), 0);
    volatile int *stage =
        mmap(NULL, sizeof(int), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    assert_true(stage != MAP_FAILED);
    int hung = 0, failed = 0, forks = 0;
    for (; forks < FORKS && !hung && !failed; forks++) {
        *stage = 0;
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work(stage));
        assert_true(pid > 0);
        int r = wait_child(pid, stage);
        hung += r == 2;
        failed += r != 0;
    }
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(churner, NULL), 0);
    munmap((void *)stage, sizeof(int));
    print_message("%d forks, %d children stuck, %d failed\n", forks, hung, failed);
    assert_int_equal(hung, 0);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_while_threads_use_the_cache),
        cmocka_unit_test(test_threads_compute_at_once),
        cmocka_unit_test(test_threads_share_inputs),
        cmocka_unit_test(test_threads_add_into_one_grad),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
