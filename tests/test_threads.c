/* Threads that use the library and exit leave nothing behind: their free lists, backward
 * stacks and scope stacks are freed when they exit, and nothing they handed to other threads is.
 *
 * Each thread records what it computed and the main thread asserts it (cmocka's asserts must
 * not run on other threads). A cache lost per thread shows up twice: as heap growth over a few
 * hundred threads (checked in every build) and as a leak report in the ASan build. */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "tapegrad.h"

#include "heap.h"
#include "kernels.h"

enum {
    CHAIN = 300, /* ops in the longer graph: grows the backward and scope stacks past their
                  * first capacity (256 nodes, 64 results) */
    BATCH = 4,   /* threads running at once */
    BATCHES = 50,
};
/* The caches lost per thread before they were freed at exit: ~7 KB for one exp/sum/backward,
 * ~20 KB for this workload; 200 threads would add 1.4-4 MB. 256 KB is allocator noise. */
#define HEAP_GROWTH_LIMIT ((int64_t)256 * 1024)

typedef struct {
    float k;            /* in: x = full([4], k) */
    tg_tensor *input;   /* in: a tensor of the main thread's, whose reference the thread drops */
    tg_tensor *carried; /* in: `handed` of an earlier thread, long gone; dropped here too */
    float loss, grad[4], no_grad_val;
    bool no_grad_untracked, ok;
    tg_tensor *handed; /* out: exp(x), with its graph, released later by the main thread */
} job;

static bool near(float got, float want)
{
    return fabsf(got - want) <= 1e-5f * fmaxf(1.0f, fabsf(want));
}

/* L = sum(exp(x)) + sum(x + x + ... + x) with CHAIN additions: L = 4 e^k + 4 (CHAIN + 1) k and
 * dL/dx = e^k + CHAIN + 1 per element. Every result lands in a scope; x is kept. */
static void *worker(void *arg)
{
    job *j = arg;
    int64_t shape[1] = {4};
    tg_scope_begin();
    tg_tensor *x = tg_keep(tg_requires_grad_(tg_full(1, shape, j->k), true));
    tg_tensor *chain = x;
    for (int i = 0; i < CHAIN; i++)
        chain = tg_add(chain, x);
    tg_tensor *loss = tg_add(tg_sum(tg_exp(x)), tg_sum(chain));
    j->ok = loss && tg_backward(loss, NULL, false) == TG_OK;
    if (j->ok) {
        j->loss = tg_item(loss);
        j->ok = tg_copy_to(tg_grad(x), j->grad, 4) == 4;
    }

    TG_NO_GRAD
    {
        tg_tensor *twice = tg_mul(x, j->input); /* input is 2: 2k */
        j->no_grad_untracked = twice && !tg_requires_grad(twice) && !tg_grad_fn_name(twice);
        j->no_grad_val = twice ? tg_data(twice)[2] : NAN;
    }
    tg_release(j->input);   /* its header and storage join this thread's free lists */
    tg_release(j->carried); /* and so do its graph node, x and x's grad */
    j->input = j->carried = NULL;
    j->handed = tg_keep(tg_exp(x)); /* holds a node of this thread's tape and x through it */
    tg_scope_end();
    tg_release(x);
    return NULL;
}

/* Runs BATCH threads at once, then checks what each computed. What they handed over goes to
 * the next batch's threads in carry, to be dropped there: dropped here, it would pile up on
 * this thread's free lists (which live as long as the thread) and hide the growth looked for. */
static void run_batch(int b, tg_tensor *carry[BATCH])
{
    pthread_t threads[BATCH];
    job jobs[BATCH];
    for (int i = 0; i < BATCH; i++) {
        jobs[i] = (job){.k = 0.01f * (float)((b * BATCH + i) % 97),
                        .input = tg_scalar(2.0f),
                        .carried = carry[i]};
        assert_non_null(jobs[i].input);
        assert_int_equal(pthread_create(&threads[i], NULL, worker, &jobs[i]), 0);
    }
    for (int i = 0; i < BATCH; i++)
        assert_int_equal(pthread_join(threads[i], NULL), 0);
    for (int i = 0; i < BATCH; i++) {
        job *j = &jobs[i];
        float e = expf(j->k);
        assert_true(j->ok);
        assert_true(near(j->loss, 4 * e + 4 * (CHAIN + 1) * j->k));
        for (int c = 0; c < 4; c++)
            assert_true(near(j->grad[c], e + CHAIN + 1));
        assert_true(j->no_grad_untracked);
        assert_true(near(j->no_grad_val, 2 * j->k));
        /* The thread is gone; what it handed over is intact and still differentiable. */
        assert_non_null(j->handed);
        assert_string_equal(tg_grad_fn_name(j->handed), "ExpBackward0");
        assert_true(near(tg_data(j->handed)[3], e));
        carry[i] = j->handed;
    }
}

static void test_exited_threads_leave_no_caches(void **state)
{
    (void)state;
    tg_tensor *carry[BATCH] = {NULL};
    run_batch(0, carry); /* the first threads set up what lives for the process (arenas, keys) */
    run_batch(1, carry);
    int64_t before = heap_in_use();
    for (int b = 2; b < BATCHES + 2; b++)
        run_batch(b, carry);
    int64_t growth = heap_in_use() - before;
    for (int i = 0; i < BATCH; i++)
        tg_release(carry[i]);
    print_message("heap growth over %d threads: %lld bytes\n", BATCHES * BATCH, (long long)growth);
    assert_true(growth < HEAP_GROWTH_LIMIT);
}

/* A thread that exits inside a scope: the scope's tensors are not released by the exit, since
 * another thread may hold them; only the stack's arrays go. */
static void *exit_in_scope(void *arg)
{
    tg_tensor **out = arg;
    tg_scope_begin();
    tg_scope_begin(); /* nested, with more results than the stack's first capacity */
    for (int i = 0; i < 100; i++)
        tg_release(tg_keep(tg_scalar((float)i)));
    tg_tensor *a = tg_keep(tg_arange(0.0f, 8.0f, 1.0f));
    *out = tg_mul_scalar(a, 3.0f); /* the open scope holds the only reference */
    tg_release(a);
    return NULL; /* no tg_scope_end */
}

static void test_exit_inside_scope_frees_no_tensor(void **state)
{
    (void)state;
    tg_tensor *t = NULL;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, exit_in_scope, &t), 0);
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_non_null(t);
    float v[8];
    assert_int_equal(tg_copy_to(t, v, 8), 8);
    for (int i = 0; i < 8; i++)
        assert_true(v[i] == 3.0f * (float)i);
    tg_release(t); /* the reference the exited scope never dropped */
}

/* Big enough to run on the pool: the pool's workers exit when it is resized, and at exit. */
static void *big_op(void *arg)
{
    float *sum = arg;
    int64_t shape[1] = {1 << 20};
    tg_scope_begin();
    tg_tensor *s = tg_sum(tg_mul_scalar(tg_ones(1, shape), 0.5f));
    *sum = s ? tg_item(s) : NAN;
    tg_scope_end();
    return NULL;
}

/* A pipeline: each round a producer thread makes tensors with graphs and the main thread, the
 * consumer, releases them. The consumer never takes from its free lists, so they must stop
 * growing at their bound instead of keeping every header it ever released. */
enum { PIPE_TENSORS = 40000, PIPE_ROUNDS = 4 };

static void *produce(void *arg)
{
    tg_tensor **out = arg;
    for (int i = 0; i < PIPE_TENSORS; i++) {
        tg_tensor *x = tg_requires_grad_(tg_scalar((float)(i % 64) / 8.0f), true);
        out[i] = x ? tg_exp(x) : NULL; /* a node, a tensor and a storage each */
        tg_release(x);
    }
    return NULL;
}

static void test_consumer_lists_stay_bounded(void **state)
{
    (void)state;
    tg_tensor **made = calloc(PIPE_TENSORS, sizeof *made);
    assert_non_null(made);
    int64_t after_first = 0;
    for (int r = 0; r < PIPE_ROUNDS; r++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, produce, made), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        for (int i = 0; i < PIPE_TENSORS; i++) {
            assert_non_null(made[i]);
            assert_true(near(tg_item(made[i]), expf((float)(i % 64) / 8.0f)));
            tg_release(made[i]);
        }
        if (r == 0)
            after_first = heap_in_use();
    }
    int64_t growth = heap_in_use() - after_first;
    free(made);
    print_message("consumer heap growth over %d more rounds: %lld bytes\n", PIPE_ROUNDS - 1,
                  (long long)growth);
    assert_true(growth < HEAP_GROWTH_LIMIT);
}

static void test_pool_resized_from_threads(void **state)
{
    (void)state;
    const int sizes[] = {2, 3, 2};
    for (int i = 0; i < 3; i++) {
        tg_set_num_threads(sizes[i]);
        float sum = 0;
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, big_op, &sum), 0);
        assert_int_equal(pthread_join(th, NULL), 0);
        assert_true(sum == (float)(1 << 19));
    }
    tg_set_num_threads(0);
}

/* One graph, backward once on each of two fresh threads (retain_graph): the second call must
 * reach every node again and add the same gradient, whatever the threads did before. */
typedef struct {
    tg_tensor *root;
    tg_status st;
} backward_job;

static void *run_backward(void *arg)
{
    backward_job *j = arg;
    j->st = tg_backward(j->root, NULL, true);
    return NULL;
}

static void test_backward_of_one_graph_on_two_threads(void **state)
{
    (void)state;
    tg_tensor *x = tg_requires_grad_(tg_scalar(3.0f), true);
    tg_tensor *sq = tg_mul(x, x), *s = tg_sin(sq);
    tg_tensor *root = tg_mul_scalar(s, 2.0f); /* d/dx = 4 x cos(x^2) */
    assert_non_null(root);
    float want = 4.0f * 3.0f * cosf(9.0f);
    for (int round = 1; round <= 2; round++) {
        backward_job j = {root, TG_EINVAL};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, run_backward, &j), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(j.st, TG_OK);
        assert_true(near(tg_item(tg_grad(x)), (float)round * want));
    }
    assert_int_equal(tg_backward(root, NULL, false), TG_OK); /* and once more on this thread */
    assert_true(near(tg_item(tg_grad(x)), 3.0f * want));
    tg_release(root), tg_release(s), tg_release(sq), tg_release(x);
}

/* tg_set_isa on one thread while others compute: every tg_kern() call must see one family's
 * whole table. A table copied over the one in use could be read half old, half new. */
enum { TABLE_READS = 200000 };

typedef struct {
    const char *other; /* the SIMD family flipped with scalar */
    atomic_int started, stop;
    int64_t flips;
} isa_flip_job;

static void *flip_isa(void *arg)
{
    isa_flip_job *j = arg;
    atomic_store(&j->started, 1);
    while (!atomic_load(&j->stop))
        tg_set_isa(j->flips++ % 2 ? "scalar" : j->other);
    return NULL;
}

static void test_set_isa_while_computing(void **state)
{
    (void)state;
    const char *saved = tg_isa();
    static tg_kernels scalar, simd;
    memset(&scalar, 0, sizeof scalar);
    memset(&simd, 0, sizeof simd);
    tg_kernels_init_scalar(&scalar);
    isa_flip_job flip = {.other = NULL};
    if (tg_set_isa("avx512") == TG_OK && tg_kernels_init_avx512(&simd))
        flip.other = "avx512";
    else if (tg_set_isa("avx2") == TG_OK && tg_kernels_init_avx2(&simd))
        flip.other = "avx2";
    else if (tg_set_isa("neon") == TG_OK && tg_kernels_init_neon(&simd))
        flip.other = "neon";
    if (!flip.other) {
        print_message("only the scalar family runs here: nothing to flip\n");
        skip();
    }
    int64_t shape[1] = {1 << 16}; /* on the pool, when it is free */
    tg_tensor *x = tg_arange(0.0f, (float)shape[0], 1.0f);
    tg_tensor *xs = tg_mul_scalar(x, 1e-3f);
    assert_non_null(xs);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, flip_isa, &flip), 0);
    while (!atomic_load(&flip.started))
        ;
    int64_t torn = 0, bad_values = 0;
    for (int r = 0; r < TABLE_READS; r++) {
        tg_kernels seen = *tg_kern();
        const tg_kernels *want = strcmp(seen.name, "scalar") == 0 ? &scalar : &simd;
        torn += memcmp(&seen, want, sizeof seen) != 0;
        if (r % 8192 == 0) {
            tg_tensor *s = tg_sin(xs); /* either family: each is within 1 ULP */
            const float *v = s ? tg_data(s) : NULL;
            bad_values +=
                !v || fabsf(v[1000] - sinf(1.0f)) > 1e-6f || fabsf(v[60000] - sinf(60.0f)) > 1e-5f;
            tg_release(s);
        }
    }
    atomic_store(&flip.stop, 1);
    assert_int_equal(pthread_join(t, NULL), 0);
    print_message("%d table reads during %lld family changes\n", TABLE_READS,
                  (long long)flip.flips);
    tg_release(xs), tg_release(x);
    assert_int_equal(tg_set_isa(saved), TG_OK);
    assert_int_equal(torn, 0);
    assert_int_equal(bad_values, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exited_threads_leave_no_caches),
        cmocka_unit_test(test_exit_inside_scope_frees_no_tensor),
        cmocka_unit_test(test_pool_resized_from_threads),
        cmocka_unit_test(test_consumer_lists_stay_bounded),
        cmocka_unit_test(test_backward_of_one_graph_on_two_threads),
        cmocka_unit_test(test_set_isa_while_computing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
