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
 * Each line of X is asked into L1 LR_PF_DIST bytes before the pass reads it, one request per
 * line. The requests are spread over the rows of a group, a few per row, because a burst of a
 * whole group's lines at once waits on the core's few L1 fill buffers; and they run on past the
 * end of the block, where a prefetch bounded by the block had left the next block's first groups
 * to demand misses. A prefetch past the end of X is harmless: it never faults.
 *
 * Measured with a pass-only program, one core, 1M x 32 with X in memory (4 KB pages), medians
 * of alternating runs:
 *  - AMD EPYC VM (Zen 5, family 26 model 2), 2026-11-28: AVX-512 5.1 ms against 5.7 ms with
 *    the two stages used before (into L2 32 KB ahead and into L1 2 KB ahead), AVX2 5.6 ms
 *    against 7.0 ms; an 8-32 KB distance, or a prefetcht2/prefetchnta hint, moved it by less
 *    than the noise. With X in L2 the two-stage requests took 30% of the pass's time, the one
 *    stage 9%: there the second request cost more time than it saved.
 *  - Intel Xeon VM (family 6 model 207), with the two stages: AVX-512 from 9.4-11.0 ms (whole
 *    groups 4 groups ahead, within the block) to 6.3-7.8 ms, AVX2 from 13.3-14.8 ms (no
 *    software prefetch) to 8.1-9.1 ms; the L2 stage alone (prefetcht2, 32 KB) gave 8.1-9.4 ms.
 *    The single L1 stage was not measured there. */
#define LR_PF_DIST 16384

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

#endif
