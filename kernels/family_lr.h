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

/* ---- software prefetch of X ---------------------------------------------------------------
 * Two stages: each line of X is asked into L2 LR_PF_FAR bytes before the pass reads it, and into
 * L1 LR_PF_NEAR bytes before. The requests are spread over the rows of a group, a few per row,
 * because a burst of a whole group's lines at once waits on the core's few L1 fill buffers; and
 * the far stage runs on past the end of the block, where a prefetch bounded by the block had
 * left the next block's first groups to demand misses. A prefetch past the end of X is harmless:
 * it never faults. On the Intel Xeon VM (family 6 model 207), one core, 1M x 32 with X in
 * memory, the AVX-512 pass went from 9.4-11.0 ms (whole groups 4 groups ahead, within the
 * block) to 6.3-7.8 ms, beside a 13 ms memcpy of X, and the AVX2 pass from 13.3-14.8 ms (no
 * software prefetch) to 8.1-9.1 ms. The far stage alone gave 8.1-9.4 ms; far distances of
 * 16-64 KB and near ones of 1-4 KB differed by less than the noise (bench_logreg and a
 * pass-only program, alternating runs). */
#define LR_PF_FAR  32768
#define LR_PF_NEAR 2048

/* The prefetches that row i of a group issues: lines i per_row .. i per_row + per_row - 1 of
 * the group at x, those before its end (bytes). per_row lines a row cover the group's lines. */
ALWAYS_INLINE void lr_prefetch_row(const float *x, int i, int per_row, int64_t bytes)
{
    for (int k = 0; k < per_row; k++) {
        int64_t o = ((int64_t)i * per_row + k) * 64;
        if (o < bytes) {
            __builtin_prefetch((const char *)x + o + LR_PF_FAR, 0, 1); /* prefetcht2: to L2 */
            __builtin_prefetch((const char *)x + o + LR_PF_NEAR, 0, 3);
        }
    }
}

#endif
