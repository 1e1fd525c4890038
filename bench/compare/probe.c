/* Physical limits for bench/compare, measured on the machine the comparison runs on.
 *
 *   probe fma THREADS SECONDS          peak FP32 FMA throughput: one JSON line with GFLOP/s per
 *                                      instruction set tried and the best of them
 *   probe memcpy THREADS BYTES REPS    memcpy of BYTES split across THREADS threads: one JSON
 *                                      line with the median and best seconds per full copy
 *   probe read THREADS BYTES REPS      the same for reading BYTES (an XOR over 32-byte loads):
 *                                      the floor of a reduction such as mean
 *
 * The FMA loop keeps 12 independent accumulators per thread (enough to cover the latency of
 * every current x86 and Arm core), so it runs at the issue rate of the FMA units. Threads are
 * plain pthreads; the CPUs they may use are the process's affinity mask. Buffers of 2 MB or more
 * ask for 2 MB pages, as tapegrad's own large buffers do. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define PROBE_X86 1
#endif

#define ACC 12

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Each kernel runs `iters` rounds of ACC independent FMAs on its vector width and returns a value
 * that depends on every accumulator, so nothing is dropped. */
typedef float (*fma_kernel)(int64_t iters);

static float fma_generic(int64_t iters)
{
    float acc[ACC][8];
    for (int j = 0; j < ACC; j++)
        for (int l = 0; l < 8; l++)
            acc[j][l] = (float)(j + l) * 1e-3f;
    const float m = 0.99999f, a = 1e-7f;
    for (int64_t i = 0; i < iters; i++)
        for (int j = 0; j < ACC; j++)
            for (int l = 0; l < 8; l++)
                acc[j][l] = acc[j][l] * m + a;
    float s = 0.0f;
    for (int j = 0; j < ACC; j++)
        for (int l = 0; l < 8; l++)
            s += acc[j][l];
    return s;
}

#ifdef PROBE_X86
/* Twelve named accumulators: written out so they stay in registers at any optimization level. */
#define PROBE_FMA_BODY(VEC, SET1, FMA, ADD)                                                     \
    const VEC m = SET1(0.99999f), a = SET1(1e-7f);                                              \
    VEC c0 = SET1(0.0f), c1 = SET1(1e-3f), c2 = SET1(2e-3f), c3 = SET1(3e-3f);                  \
    VEC c4 = SET1(4e-3f), c5 = SET1(5e-3f), c6 = SET1(6e-3f), c7 = SET1(7e-3f);                 \
    VEC c8 = SET1(8e-3f), c9 = SET1(9e-3f), c10 = SET1(1e-2f), c11 = SET1(1.1e-2f);             \
    for (int64_t i = 0; i < iters; i++) {                                                       \
        c0 = FMA(c0, m, a), c1 = FMA(c1, m, a), c2 = FMA(c2, m, a), c3 = FMA(c3, m, a);         \
        c4 = FMA(c4, m, a), c5 = FMA(c5, m, a), c6 = FMA(c6, m, a), c7 = FMA(c7, m, a);         \
        c8 = FMA(c8, m, a), c9 = FMA(c9, m, a), c10 = FMA(c10, m, a), c11 = FMA(c11, m, a);     \
    }                                                                                           \
    VEC s = ADD(ADD(ADD(c0, c1), ADD(c2, c3)), ADD(ADD(c4, c5), ADD(c6, c7)));                  \
    s = ADD(s, ADD(ADD(c8, c9), ADD(c10, c11)))

__attribute__((target("avx2,fma"))) static float fma_avx2(int64_t iters)
{
    PROBE_FMA_BODY(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] + out[7];
}

__attribute__((target("avx512f"))) static float fma_avx512(int64_t iters)
{
    PROBE_FMA_BODY(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps);
    return _mm512_reduce_add_ps(s);
}
#endif

typedef struct {
    fma_kernel fn;
    int64_t iters;
    pthread_barrier_t *start;
    volatile float sink;
} fma_job;

static void *fma_thread(void *arg)
{
    fma_job *j = arg;
    pthread_barrier_wait(j->start);
    j->sink = j->fn(j->iters);
    return NULL;
}

/* Seconds for `threads` threads to run `iters` iterations each. */
static double fma_run(fma_kernel fn, int threads, int64_t iters)
{
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    fma_job *jobs = calloc((size_t)threads, sizeof *jobs);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        jobs[t] = (fma_job){fn, iters, &start, 0.0f};
        pthread_create(&tid[t], NULL, fma_thread, &jobs[t]);
    }
    pthread_barrier_wait(&start);
    double t0 = now();
    for (int t = 0; t < threads; t++)
        pthread_join(tid[t], NULL);
    double dt = now() - t0;
    pthread_barrier_destroy(&start);
    free(tid), free(jobs);
    return dt;
}

/* Best GFLOP/s of a few runs of about `seconds` / 4 each. */
static double fma_gflops(fma_kernel fn, int lanes, int threads, double seconds)
{
    int64_t iters = 1000;
    double dt = 0.0;
    while ((dt = fma_run(fn, threads, iters)) < 0.02 && iters < (int64_t)1 << 40)
        iters *= 4;
    int64_t target = (int64_t)((double)iters * (seconds / 4.0) / (dt > 0 ? dt : 1e-9));
    if (target > iters)
        iters = target;
    double best = 0.0;
    for (int r = 0; r < 4; r++) {
        dt = fma_run(fn, threads, iters);
        double g = 2.0 * ACC * lanes * (double)iters * threads / dt / 1e9;
        if (g > best)
            best = g;
    }
    return best;
}

static int cmd_fma(int threads, double seconds)
{
    struct {
        const char *name;
        fma_kernel fn;
        int lanes;
        int ok;
    } isas[] = {{"generic", fma_generic, 8, 1},
#ifdef PROBE_X86
                {"avx2", fma_avx2, 8, 0},
                {"avx512", fma_avx512, 16, 0},
#endif
    };
    int n = (int)(sizeof isas / sizeof isas[0]);
#ifdef PROBE_X86
    __builtin_cpu_init();
    isas[1].ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    isas[2].ok = __builtin_cpu_supports("avx512f");
#endif
    double best = 0.0;
    const char *best_name = "generic";
    printf("{\"threads\": %d", threads);
    for (int i = 0; i < n; i++) {
        if (!isas[i].ok)
            continue;
        double g = fma_gflops(isas[i].fn, isas[i].lanes, threads, seconds / n);
        printf(", \"%s\": %.3f", isas[i].name, g);
        if (g > best) {
            best = g;
            best_name = isas[i].name;
        }
    }
    printf(", \"best\": %.3f, \"best_isa\": \"%s\"}\n", best, best_name);
    return 0;
}

/* Reads len bytes (a multiple of 64) and folds them into one word. */
static uint64_t read_generic(const char *p, size_t len)
{
    const uint64_t *q = (const uint64_t *)(const void *)p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < len / 8; i += 4) {
        a ^= q[i], b ^= q[i + 1], c ^= q[i + 2], d ^= q[i + 3];
    }
    return a ^ b ^ c ^ d;
}

#ifdef PROBE_X86
/* Each line is asked into L1 16 KB before the loop reads it, one request per line, as the fused
 * logistic pass does (kernels/family_lr.h, LR_PF_DIST): with the hardware prefetcher alone one
 * core of the Intel Xeon VM read 128 MB in 8.8 ms in the run where that pass took 5.6 ms, so a
 * plain loop is no floor there. */
__attribute__((target("avx2"))) static uint64_t read_avx2(const char *p, size_t len)
{
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i + 128 <= len; i += 128) {
        for (size_t l = 0; l < 128; l += 64)
            __builtin_prefetch(p + i + l + 16384, 0, 3);
        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(const void *)(p + i)));
        b = _mm256_xor_si256(b, _mm256_load_si256((const __m256i *)(const void *)(p + i + 32)));
        c = _mm256_xor_si256(c, _mm256_load_si256((const __m256i *)(const void *)(p + i + 64)));
        d = _mm256_xor_si256(d, _mm256_load_si256((const __m256i *)(const void *)(p + i + 96)));
    }
    a = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    uint64_t out[4];
    _mm256_storeu_si256((__m256i *)(void *)out, a);
    return out[0] ^ out[1] ^ out[2] ^ out[3] ^ read_generic(p + len / 128 * 128, len % 128);
}
#endif

static uint64_t (*read_fn)(const char *, size_t) = read_generic;

typedef struct {
    char *dst; /* NULL: read only */
    const char *src;
    size_t len;
    int reps;
    pthread_barrier_t *bar;
    volatile uint64_t sink;
} copy_job;

static void copy_or_read(copy_job *j)
{
    if (j->dst)
        memcpy(j->dst, j->src, j->len);
    else
        j->sink = read_fn(j->src, j->len);
}

static void *copy_thread(void *arg)
{
    copy_job *j = arg;
    for (int r = 0; r < j->reps; r++) {
        pthread_barrier_wait(j->bar);
        copy_or_read(j);
        pthread_barrier_wait(j->bar);
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The 2 MB page hint of tapegrad's allocator (core/pages.c), over the whole pages of a buffer of
 * 2 MB or more. Written out here because the probe stands alone: run.py may compile it without
 * the library. */
static void huge_pages(char *p, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    uintptr_t lo = ((uintptr_t)p + 4095) & ~(uintptr_t)4095,
              hi = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (bytes >= ((size_t)2 << 20) && hi > lo)
        (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}

static int cmd_memcpy(int threads, size_t bytes, int reps, int read_only)
{
#ifdef PROBE_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2"))
        read_fn = read_avx2;
#endif
    bytes = (bytes + 63) / 64 * 64;
    char *src = aligned_alloc(64, (bytes + 63) / 64 * 64);
    char *dst = aligned_alloc(64, (bytes + 63) / 64 * 64);
    double *times = calloc((size_t)reps + 1, sizeof(double));
    if (!src || !dst || !times) {
        fprintf(stderr, "probe: out of memory\n");
        return 1;
    }
    huge_pages(src, bytes);
    huge_pages(dst, bytes);
    memset(src, 1, bytes);
    memset(dst, 2, bytes); /* no page fault inside a timed copy */
    size_t per = (bytes / (size_t)threads + 63) / 64 * 64;
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads);
    pthread_t *tid = calloc((size_t)threads, sizeof *tid);
    copy_job *jobs = calloc((size_t)threads, sizeof *jobs);
    int total = reps + 1; /* the first copy is a warm-up */
    for (int t = 0; t < threads; t++) {
        size_t off = per * (size_t)t < bytes ? per * (size_t)t : bytes;
        size_t len = off + per < bytes ? per : bytes - off;
        jobs[t] = (copy_job){read_only ? NULL : dst + off, src + off, len, total, &bar, 0};
        if (t > 0)
            pthread_create(&tid[t], NULL, copy_thread, &jobs[t]);
    }
    for (int r = 0; r < total; r++) {
        pthread_barrier_wait(&bar);
        double t0 = now();
        copy_or_read(&jobs[0]);
        pthread_barrier_wait(&bar);
        times[r] = now() - t0;
    }
    for (int t = 1; t < threads; t++)
        pthread_join(tid[t], NULL);
    qsort(times + 1, (size_t)reps, sizeof(double), cmp_double);
    printf("{\"threads\": %d, \"bytes\": %zu, \"median_s\": %.9f, \"best_s\": %.9f}\n", threads,
           bytes, times[1 + reps / 2], times[1]);
    pthread_barrier_destroy(&bar);
    free(src), free(dst), free(times), free(tid), free(jobs);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "fma") == 0) {
        int threads = atoi(argv[2]);
        return cmd_fma(threads > 0 ? threads : 1, atof(argv[3]));
    }
    if (argc == 5 && (strcmp(argv[1], "memcpy") == 0 || strcmp(argv[1], "read") == 0)) {
        int threads = atoi(argv[2]), reps = atoi(argv[4]);
        long long bytes = atoll(argv[3]);
        if (threads < 1 || reps < 1 || bytes < 64) {
            fprintf(stderr, "probe %s: THREADS >= 1, BYTES >= 64, REPS >= 1\n", argv[1]);
            return 2;
        }
        return cmd_memcpy(threads, (size_t)bytes, reps, strcmp(argv[1], "read") == 0);
    }
    fprintf(stderr, "usage: probe fma THREADS SECONDS | probe memcpy|read THREADS BYTES REPS\n");
    return 2;
}
