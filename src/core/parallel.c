/* Persistent pthread pool behind tg_parallel_for (contract in parallel.h).
 *
 * One job at a time: the caller that wins call_mu publishes the job under pool.mu, bumps the
 * generation and broadcasts; worker w (1-based) runs chunk w, the caller runs chunk 0, and the
 * caller waits until the workers' chunks are done. Workers sleep on a condition variable between
 * jobs, so an idle pool costs nothing. The pool is started lazily, resized lazily when the thread
 * count changes, and joined at exit so leak checkers and TSan see a clean shutdown. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "parallel.h"

#include <cblas.h> /* openblas_set_num_threads */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "tapegrad.h"

#define MAX_THREADS 1024
#define CHUNK_ALIGN 16 /* elements: one 64-byte cache line of floats */

typedef struct job {
    tg_range_fn fn;
    void *ctx;
    int64_t n, size;
    int chunks;
} job;

static struct {
    pthread_mutex_t mu; /* guards generation, job, pending and stop */
    pthread_cond_t wake, done;
    pthread_t *threads; /* threads, workers, base: changed only under call_mu */
    int workers;
    uint64_t base;       /* generation when the current workers were started */
    uint64_t generation; /* bumped once per published job */
    job job;
    int pending; /* worker chunks of the current job not finished yet */
    int stop;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Held by the one thread that is using the pool (or resizing / shutting it down). */
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int requested;     /* tg_set_num_threads value, 0 = default */
static atomic_int default_cache; /* CPUs available, 0 = not looked up yet */
static int hooks_installed;      /* under call_mu */
static _Thread_local int inside; /* this thread is running a chunk: nested calls run inline */
static _Thread_local int shared; /* ... and other threads are running chunks of the same loop */

int tg_parallel_chunk(int64_t n, int threads, int64_t align, int64_t *size)
{
    if (n <= 0) {
        *size = 0;
        return 0;
    }
    if (threads < 1)
        threads = 1;
    if (align < 1)
        align = 1;
    int64_t per = (n + threads - 1) / threads;
    int64_t s = (per + align - 1) / align * align;
    *size = s;
    return (int)((n + s - 1) / s);
}

static int default_threads(void)
{
    int d = atomic_load(&default_cache);
    if (d > 0)
        return d;
    /* TAPEGRAD_NUM_THREADS sets the default, as OMP_NUM_THREADS does for OpenMP programs. */
    const char *env = getenv("TAPEGRAD_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0)
            d = (int)(v < MAX_THREADS ? v : MAX_THREADS);
    }
    cpu_set_t set;
    if (d < 1 && sched_getaffinity(0, sizeof set, &set) == 0)
        d = CPU_COUNT(&set) < MAX_THREADS ? CPU_COUNT(&set) : MAX_THREADS;
    if (d < 1) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        d = c > 0 ? (int)(c < MAX_THREADS ? c : MAX_THREADS) : 1;
    }
    atomic_store(&default_cache, d);
    return d;
}

void tg_set_num_threads(int n)
{
    atomic_store(&requested, n > 0 ? (n < MAX_THREADS ? n : MAX_THREADS) : 0);
    /* OpenBLAS runs its own pool for large products; it follows the same setting, so one thread
     * means one thread (an idle OpenBLAS worker otherwise spins on the other core). */
    openblas_set_num_threads(tg_get_num_threads());
}

int tg_get_num_threads(void)
{
    int r = atomic_load(&requested);
    return r > 0 ? r : default_threads();
}

bool tg_parallel_shared(void)
{
    return shared != 0;
}

static void run_chunk(const job *j, int c)
{
    int64_t begin = (int64_t)c * j->size;
    int64_t end = j->n - begin < j->size ? j->n : begin + j->size;
    j->fn(j->ctx, begin, end);
}

/* Runs the job's chunks in order on this thread: the same split as the pool would use. */
static void run_serial(const job *j)
{
    int was = inside;
    inside = 1;
    for (int c = 0; c < j->chunks; c++)
        run_chunk(j, c);
    inside = was;
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    inside = 1;
    shared = 1;
    pthread_mutex_lock(&pool.mu);
    /* Not pool.generation: the first job may already be posted before this thread runs. */
    uint64_t seen = pool.base;
    for (;;) {
        while (pool.generation == seen && !pool.stop)
            pthread_cond_wait(&pool.wake, &pool.mu);
        if (pool.stop)
            break;
        /* Only the newest job matters: the previous one finished before this one was posted. */
        seen = pool.generation;
        job j = pool.job;
        pthread_mutex_unlock(&pool.mu);
        if (id < j.chunks)
            run_chunk(&j, id);
        pthread_mutex_lock(&pool.mu);
        if (id < j.chunks && --pool.pending == 0)
            pthread_cond_signal(&pool.done);
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Stops and joins every worker. Caller holds call_mu. */
static void stop_workers(void)
{
    pthread_mutex_lock(&pool.mu);
    pool.stop = 1;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.workers; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pthread_mutex_lock(&pool.mu);
    pool.threads = NULL;
    pool.workers = 0;
    pool.stop = 0;
    pthread_mutex_unlock(&pool.mu);
}

static void at_exit(void)
{
    /* A thread still inside tg_parallel_for at exit keeps its workers; everything else joins. */
    if (pthread_mutex_trylock(&call_mu) != 0)
        return;
    stop_workers();
    pthread_mutex_unlock(&call_mu);
}

/* In a forked child only the forking thread exists: forget the parent's workers (their memory
 * is not ours to free while another thread might have been using it) and start afresh. */
static void after_fork_child(void)
{
    pthread_mutex_init(&call_mu, NULL);
    pthread_mutex_init(&pool.mu, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.threads = NULL;
    pool.workers = 0;
    pool.pending = 0;
    pool.stop = 0;
}

/* Makes the pool have exactly `count` workers; 0 if threads could not be started. Caller holds
 * call_mu. */
static int ensure_workers(int count)
{
    if (pool.workers == count)
        return 1;
    if (!hooks_installed) {
        atexit(at_exit);
        pthread_atfork(NULL, NULL, after_fork_child);
        hooks_installed = 1;
    }
    stop_workers();
    pthread_t *t = malloc(sizeof *t * (size_t)count);
    if (!t)
        return 0;
    pool.threads = t;
    pool.base = pool.generation; /* no job can be posted before the workers exist */
    for (int i = 0; i < count; i++) {
        if (pthread_create(&t[i], NULL, worker_main, (void *)(intptr_t)(i + 1)) != 0) {
            pool.workers = i;
            stop_workers();
            return 0;
        }
        pool.workers = i + 1;
    }
    return 1;
}

static void parallel_run(int64_t n, int64_t grain, int64_t align, tg_range_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    int threads = tg_get_num_threads();
    if (n < grain || threads <= 1) {
        fn(ctx, 0, n);
        return;
    }
    job j = {fn, ctx, n, 0, 0};
    j.chunks = tg_parallel_chunk(n, threads, align, &j.size);
    if (j.chunks <= 1) {
        fn(ctx, 0, n);
        return;
    }
    /* Nested, or the pool is busy with another thread's loop: same chunks, run here. */
    if (inside || pthread_mutex_trylock(&call_mu) != 0) {
        run_serial(&j);
        return;
    }
    if (!ensure_workers(threads - 1)) {
        pthread_mutex_unlock(&call_mu);
        run_serial(&j);
        return;
    }
    pthread_mutex_lock(&pool.mu);
    pool.job = j;
    pool.pending = j.chunks - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);

    inside = shared = 1;
    run_chunk(&j, 0);
    inside = shared = 0;

    pthread_mutex_lock(&pool.mu);
    while (pool.pending > 0)
        pthread_cond_wait(&pool.done, &pool.mu);
    pthread_mutex_unlock(&pool.mu);
    pthread_mutex_unlock(&call_mu);
}

void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    parallel_run(n, grain, CHUNK_ALIGN, fn, ctx);
}

void tg_parallel_tasks(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    parallel_run(n, grain, 1, fn, ctx);
}
