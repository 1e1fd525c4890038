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

typedef void (*tg_range_fn)(void *ctx, int64_t begin, int64_t end);

void tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);
void tg_parallel_tasks(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);

/* True while this thread runs a chunk of a tg_parallel_for that other threads work on at the
 * same time (also in loops nested inside one): a memory-bound kernel then shares the memory bus
 * and may choose its form for that (sin_nt in kernels.h). False outside loops and when a loop
 * runs all its chunks on the calling thread. */
bool tg_parallel_shared(void);

/* Default grain for cheap elementwise ops (an add or a multiply per element): below 32768
 * elements (128 KB of floats) waking a thread costs more than it saves. Costly ops (exp, sin)
 * may pass a smaller grain. */
#define TG_PARALLEL_GRAIN_DEFAULT ((int64_t)32768)
static inline int64_t tg_parallel_grain(void)
{
    return TG_PARALLEL_GRAIN_DEFAULT;
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
