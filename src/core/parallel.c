/* Persistent pthread pool behind tg_parallel_for (contract in parallel.h).
 *
 * One job at a time: the caller that wins call_mu publishes the job under pool.mu and bumps the
 * generation; worker w (1-based) runs chunk w, the caller runs chunk 0, and the caller waits
 * until the workers' chunks are done. The pool is started lazily, resized lazily when the
 * thread count changes, and joined at exit so leak checkers and TSan see a clean shutdown.
 *
 * Waking a thread asleep on a condition variable took 20-60 us on the 2-core VM we measure on:
 * more than a whole 64K-float add (7 us), so every op between 32K and 1M floats ran slower on 2
 * threads than on 1. So a worker that finishes a chunk, and a caller waiting for the workers,
 * first poll for up to SPIN_NS (yielding the core to any other runnable thread as they poll)
 * and only then sleep: ops that follow each other, the common case, hand work over in well
 * under a microsecond, and an idle pool still costs nothing after SPIN_NS. */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "fork_guard.h"
#include "parallel.h"
#include "tls.h"

#include <cblas.h> /* openblas_set_num_threads */

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "tapegrad.h"

#define MAX_THREADS 1024
#define CHUNK_ALIGN 16 /* elements: one 64-byte cache line of floats */
#define SPIN_NS     100000 /* polling before sleeping: see above */
#define SPIN_CHECK  64     /* polls between clock reads and yields */

typedef struct job {
    tg_range_fn fn;
    void *ctx;
    int64_t n, size;
    int chunks;
} job;

static struct {
    pthread_mutex_t mu; /* guards job and sleepers; generation and stop change only under it */
    pthread_cond_t wake, done;
    pthread_t *threads; /* threads, workers, base: changed only under call_mu */
    int workers;
    uint64_t base;               /* generation when the current workers were started */
    _Atomic uint64_t generation; /* bumped once per published job; polled without mu */
    job job;
    atomic_int pending; /* worker chunks of the current job not finished yet */
    atomic_int stop;
    int sleepers; /* workers blocked on wake */
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER,
          .wake = PTHREAD_COND_INITIALIZER,
          .done = PTHREAD_COND_INITIALIZER};

/* Held by the one thread that is using the pool (or resizing / shutting it down). */
static pthread_mutex_t call_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int requested;     /* tg_set_num_threads value, 0 = default */
static atomic_int default_cache; /* CPUs available, 0 = not looked up yet */
static int hooks_installed;      /* under call_mu */
static TG_TLS int inside;        /* this thread is running a chunk: nested calls run inline */

static _Atomic int64_t grain_set; /* tg_parallel_set_grain's value, 0 = the default */

int64_t tg_parallel_grain(void)
{
    int64_t g = atomic_load_explicit(&grain_set, memory_order_relaxed);
    return g > 0 ? g : TG_PARALLEL_GRAIN_DEFAULT;
}

void tg_parallel_set_grain(int64_t grain)
{
    atomic_store(&grain_set, grain > 0 ? grain : 0);
}

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
    bool bad = false;
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0)
            d = (int)(v < MAX_THREADS ? v : MAX_THREADS);
        else
            bad = true;
    }
    cpu_set_t set;
    if (d < 1 && sched_getaffinity(0, sizeof set, &set) == 0)
        d = CPU_COUNT(&set) < MAX_THREADS ? CPU_COUNT(&set) : MAX_THREADS;
    if (d < 1) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        d = c > 0 ? (int)(c < MAX_THREADS ? c : MAX_THREADS) : 1;
    }
    /* Only the thread that fills the cache warns, so a bad setting is reported once, as a bad
     * TAPEGRAD_ISA is. */
    int none = 0;
    if (atomic_compare_exchange_strong(&default_cache, &none, d) && bad)
        fprintf(stderr,
                "tapegrad: warning: TAPEGRAD_NUM_THREADS=%s is not a positive whole number; "
                "using %d (the CPUs available)\n",
                env, d);
    return atomic_load(&default_cache);
}

/* Two threads setting different counts at once must leave OpenBLAS at the count that won, not
 * at the other one: the store and the OpenBLAS call go together, under set_mu. */
static pthread_mutex_t set_mu = PTHREAD_MUTEX_INITIALIZER;

/* A fork while another thread is in tg_set_num_threads must not leave set_mu locked in the
 * child (fork_guard.h). */
__attribute__((constructor)) static void set_fork_guard(void)
{
    tg_fork_guard(&set_mu);
}

void tg_set_num_threads(int n)
{
    pthread_mutex_lock(&set_mu);
    atomic_store(&requested, n > 0 ? (n < MAX_THREADS ? n : MAX_THREADS) : 0);
    /* OpenBLAS runs its own pool for large products; it follows the same setting, so one thread
     * means one thread (an idle OpenBLAS worker otherwise spins on the other core). */
    openblas_set_num_threads(tg_get_num_threads());
    pthread_mutex_unlock(&set_mu);
}

int tg_get_num_threads(void)
{
    int r = atomic_load(&requested);
    return r > 0 ? r : default_threads();
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

static int64_t now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* Polls until done(arg) holds or SPIN_NS pass; true if it holds. The core is offered to other
 * threads every SPIN_CHECK polls, so a poller never keeps a runnable thread (an OpenBLAS
 * worker, another process) off its CPU for long. */
static bool spin_until(bool (*done)(const void *), const void *arg)
{
    int64_t start = 0;
    for (int i = 1;; i++) {
        if (done(arg))
            return true;
        tg_cpu_relax();
        if (i % SPIN_CHECK == 0) {
            int64_t t = now_ns();
            if (!start)
                start = t;
            else if (t - start > SPIN_NS)
                return false;
            sched_yield();
        }
    }
}

static bool job_posted(const void *seen)
{
    return atomic_load_explicit(&pool.generation, memory_order_relaxed) !=
               *(const uint64_t *)seen ||
           atomic_load_explicit(&pool.stop, memory_order_relaxed);
}

static bool chunks_done(const void *unused)
{
    (void)unused;
    return atomic_load_explicit(&pool.pending, memory_order_acquire) == 0;
}

static void *worker_main(void *arg)
{
    int id = (int)(intptr_t)arg;
    inside = 1;
    pthread_mutex_lock(&pool.mu);
    /* Not pool.generation: the first job may already be posted before this thread runs. */
    uint64_t seen = pool.base;
    pthread_mutex_unlock(&pool.mu);
    for (;;) {
        bool posted = spin_until(job_posted, &seen);
        pthread_mutex_lock(&pool.mu);
        if (!posted) {
            pool.sleepers++;
            while (atomic_load(&pool.generation) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.mu);
            pool.sleepers--;
        }
        if (atomic_load(&pool.stop))
            break;
        /* Only the newest job matters: the previous one finished before this one was posted. */
        seen = atomic_load(&pool.generation);
        job j = pool.job;
        pthread_mutex_unlock(&pool.mu);
        if (id >= j.chunks)
            continue;
        run_chunk(&j, id);
        if (atomic_fetch_sub_explicit(&pool.pending, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&pool.mu); /* the caller may be asleep: see parallel_run */
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.mu);
        }
    }
    pthread_mutex_unlock(&pool.mu);
    return NULL;
}

/* Stops and joins every worker. Caller holds call_mu. */
static void stop_workers(void)
{
    pthread_mutex_lock(&pool.mu);
    atomic_store(&pool.stop, 1);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);
    for (int i = 0; i < pool.workers; i++)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);
    pthread_mutex_lock(&pool.mu);
    pool.threads = NULL;
    pool.workers = 0;
    atomic_store(&pool.stop, 0);
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
    pool.sleepers = 0;
    atomic_store(&pool.pending, 0);
    atomic_store(&pool.stop, 0);
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
    pool.base = atomic_load(&pool.generation); /* no job is posted before the workers exist */
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
    atomic_store(&pool.pending, j.chunks - 1);
    atomic_fetch_add(&pool.generation, 1);
    if (pool.sleepers > 0)
        pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.mu);

    inside = 1;
    run_chunk(&j, 0);
    inside = 0;

    /* The workers' chunks are as long as ours: they are usually done, or nearly. A worker that
     * brings pending to 0 signals done under mu, so checking pending under mu loses no wake. */
    if (!spin_until(chunks_done, NULL)) {
        pthread_mutex_lock(&pool.mu);
        while (atomic_load(&pool.pending) > 0)
            pthread_cond_wait(&pool.done, &pool.mu);
        pthread_mutex_unlock(&pool.mu);
    }
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
