/* Pieces of the fused logistic pass (kernel table entry lr_block) that the x86 SIMD families
 * share. Included by each family's source after it defines its width W (rows per group) and
 * ALWAYS_INLINE. Written once, compiled once per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_LR_H
#define TG_KERNELS_FAMILY_LR_H

/* Live rows of group j of a block of m rows (0 outside it). */
ALWAYS_INLINE int64_t lr_rows(int64_t m, int64_t j)
{
    int64_t left = m - j * W;
    return j < 0 || left <= 0 ? 0 : left < W ? left : W;
}

/* Whether group j of a block of m rows of d floats in nc column vectors may be read loose (the
 * last column vector of every row read whole, lanes past the row included): the last column
 * vector of its last row ends inside the block. */
ALWAYS_INLINE bool lr_inside(int64_t j, int64_t m, int64_t d, int nc)
{
    return (j * W + W - 1) * d + (int64_t)nc * W <= m * d;
}

/* ---- software prefetch of X ---------------------------------------------------------------
 * Each line of X is asked for before the pass reads it, one request per line, in one of two
 * ways, chosen per family by measurement:
 *  - by group (AVX-512's lr_block and row_dots): all of a group's lines at once when the loop
 *    comes to the group, LR_GROUP_PF_DIST bytes ahead, with the non-temporal hint (X is read
 *    once per pass; its lines need not displace anything in the outer caches). lr_block issues
 *    them at the top of its iteration, before the loss; at the group's first row, after the
 *    loss, measured the same within the noise. Why the burst beats spread requests on this core
 *    is not established (the VM exposes no performance counters);
 *  - by row (AVX2, and every family's col_dots): each row of a group asks for its share of the
 *    group's lines LR_PF_DIST bytes ahead (prefetcht0).
 * Either way the requests run on past the end of the block, where a prefetch bounded by the
 * block had left the next block's first groups to demand misses. A prefetch past the end of X
 * is harmless: it never faults.
 *
 * Measured with bench_logreg (1M x 32, X in memory on 2 MB pages, one core of the AMD EPYC VM,
 * Zen 5, 2026-11-29; medians of 5 alternating runs of 5 repetitions each; the same core reads X
 * alone with plain loads in about 2.9 ms):
 *  - AVX-512: by group 3.34-3.52 ms in batches where the memcpy of X took 6.1-6.4 ms (3.64-3.77
 *    in noisier ones), against 4.36-4.57 ms by row (two lines a row, prefetcht0, 16 KB ahead:
 *    the scheme before). Whole groups issued at the group's first row instead (after the loss)
 *    measured 3.38-3.60 ms, and these variants of that in the same batches: prefetcht0 3.52,
 *    12 KB 3.47, 4 KB 3.70, half-group bursts 3.89, quarter-group 4.02; at the top, two groups
 *    every other iteration 3.12-3.21; by row non-temporal 8 KB 4.00. Differences under 0.3 ms are
 *    not to be trusted: the same source built with other alignment flags moved by that much
 *    (3.26-3.77 ms), and the two-group variant lost to the one-group one in two of three such
 *    builds.
 *  - AVX2: by row 3.27, by group 3.63.
 * For X about the size of L3 (32 MB) the by-group requests would rather go 16 KB ahead: the pass
 * on 262144 x 32 took 0.61-0.63 ms against 0.67-0.70 at 8 KB (0.72-0.74 by row), and row_dots on
 * 1M x 8 0.46-0.50 against 0.53-0.59 (0.46-0.49 by row); but on 1M x 32 16 KB took 4.1-4.5 ms
 * against 3.7 (alternating runs, 2026-11-29 evening), and at 16 and 48-64 MB the two measured
 * alike or 8 KB ahead. The kernels see one block, not X's size, so they keep 8 KB.
 * lr_prefetch_group's loop stays rolled (its trip count is d, not a constant): unrolled for
 * d = 32 (32 prefetches back to back) the pass took 4.3 ms against 3.9 from memory, though 3%
 * less with X in cache (bench_logreg, and lr_block over 64 KB of X in a loop; alternating,
 * 2026-11-29 evening).
 * On 4 KB pages (2026-11-28, before X took 2 MB pages) AVX-512 had measured by row 5.1 ms
 * against 5.7 with two stages (into L2 32 KB ahead, into L1 2 KB ahead). */
#define LR_PF_DIST       16384
#define LR_GROUP_PF_DIST 8192

/* The prefetches that row i of a group issues: lines i per_row .. i per_row + per_row - 1 of
 * the group at x, those before its end (bytes). per_row lines a row cover the group's lines. */
ALWAYS_INLINE void lr_prefetch_row(const float *x, int i, int per_row, int64_t bytes)
{
    for (int k = 0; k < per_row; k++) {
        int64_t o = ((int64_t)i * per_row + k) * 64;
        if (o < bytes)
            __builtin_prefetch((const char *)x + o + LR_PF_DIST, 0, 3); /* prefetcht0 */
    }
}

/* Every line of the group of rows at x, bytes long, LR_GROUP_PF_DIST ahead (prefetchnta). */
ALWAYS_INLINE void lr_prefetch_group(const float *x, int64_t bytes)
{
    for (int64_t o = 0; o < bytes; o += 64)
        __builtin_prefetch((const char *)x + o + LR_GROUP_PF_DIST, 0, 0);
}

#endif
