/* A small persistent thread pool for splitting one loop over [0, n) across the cores.
 *
 * tg_parallel_for(n, grain, fn, ctx) calls fn(ctx, begin, end) on disjoint contiguous chunks
 * that cover [0, n) exactly once, and returns when all of them are done.
 *  - n < grain, or one thread: one call fn(ctx, 0, n) on the calling thread, no thread is woken.
 *  - otherwise: at most tg_get_num_threads() chunks; the caller runs chunk 0 itself and the pool
 *    runs the rest. The split depends only on n and the thread count (see tg_parallel_chunk),
 *    every boundary but n is a multiple of 16 elements (whole cache lines of floats).
 * tg_parallel_tasks is the same loop over [0, n) of independent tasks (blocks, matrices of a
 * batch, runs of a walk): chunks may start at any index, so 2 tasks go to 2 threads. Use it
 * whenever an index is not a float of one array, or 16-alignment would leave threads idle.
 *  - nested calls (from inside fn) and calls while another thread is using the pool run the
 *    same chunks one after another on the calling thread: same split, no deadlock.
 * fn must not call tg_set_num_threads.
 *
 * Deterministic reductions: chunk boundaries move with the thread count, so do not fold one
 * partial per chunk. Cut the data into fixed blocks, run tg_parallel_tasks over block indices,
 * store one partial per block and combine the partials in a fixed order afterwards; the result
 * is then bit-identical for every thread count.
 */
#ifndef TG_CORE_PARALLEL_H
#define TG_CORE_PARALLEL_H

#include <stdbool.h>
#include <stdint.h>

/* Tells the core this thread is polling, so a sibling hyperthread or the VM gets the time. */
static inline void tg_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

typedef void (*tg_range_fn)(void *ctx, int64_t begin, int64_t end);

void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);
void tg_parallel_tasks(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);

/* Default grain for cheap elementwise ops (an add or a multiply per element): below 262144
 * elements (1 MB of floats) no thread is woken. In a chain of split ops each thread keeps its
 * part in its own cache, and splitting paid from 32768 elements; but ops usually read what a
 * matrix product just wrote on the calling core, and the other core must first fetch its half.
 * On our 2-core VM that made a small network's training step (bench_core's BM_mlp_step, ops
 * of 32768 elements) 65-77 us on two threads against 34-38 on one, and steps with ops of 65536
 * and 131072 elements slower on two threads as well; from 262144 on, two threads were as fast
 * as one or faster. */
#define TG_PARALLEL_GRAIN_DEFAULT ((int64_t)262144)

/* The grain in force: TG_PARALLEL_GRAIN_DEFAULT, unless a test has lowered it with
 * tg_parallel_set_grain to run the split paths on inputs of test size. */
int64_t tg_parallel_grain(void);
/* For tests: sets the grain tg_parallel_grain returns (0: the default again). */
void tg_parallel_set_grain(int64_t grain);

/* Grain for ops that cost about ten cheap ones per element (exp, log, sin, cos, tanh, sigmoid,
 * the logistic loss): their arithmetic outweighs fetching the data from another core sooner. */
static inline int64_t tg_parallel_grain_heavy(void)
{
    return tg_parallel_grain() / 8;
}

/* The split of n items over `threads` threads with chunk boundaries at multiples of `align`
 * (16 for tg_parallel_for, 1 for tg_parallel_tasks): returns the number of chunks and stores the
 * chunk size (every chunk has that size except the last, which is shorter) in *size. Exposed so
 * callers and tests can size per-chunk scratch. */
int tg_parallel_chunk(int64_t n, int threads, int64_t align, int64_t *size);

/* Declared in tapegrad.h too: the pool size (default: the CPUs this process may run on;
 * n <= 0 restores the default). */
void tg_set_num_threads(int n);
int tg_get_num_threads(void);

#endif
