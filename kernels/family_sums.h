/* Sums of short rows and of narrow columns for the SIMD families (kernel table entries
 * row_sums and col_sums; contracts in kernels.h). Included by each family's source after it
 * defines its vector type vf, its width W, ld / st (masked load and store of r lanes), add,
 * and FAMILY_SUM_TREE(acc), which returns in lane i the sum of the W lanes of acc[i] by one
 * fixed transpose-add tree. Written once, compiled once per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_SUMS_H
#define TG_KERNELS_FAMILY_SUMS_H

/* row_sums: each of W rows adds its (at most TG_ROW_SUMS_MAX / W) vectors in order, then the
 * tree gives the W row sums in one vector. The tree adds every row's lanes the same way, so a
 * row's sum does not depend on its place among the W. Past the last row the last row is read
 * again, and its lanes are not stored. */
static void v_row_sums(const float *x, int64_t rows, int64_t len, float *out)
{
    vf acc[W];
    for (int64_t i = 0; i < rows; i += W) {
        int64_t live = rows - i < W ? rows - i : W;
        for (int r = 0; r < W; r++) {
            const float *q = x + (i + (r < live ? r : live - 1)) * len;
            vf a = ld(q, len);
            for (int64_t c = W; c < len; c += W)
                a = add(a, ld(q + c, len - c));
            acc[r] = a;
        }
        /* + 0: a row of -0s sums to +0, as a sum that starts from 0 gives (the tree alone keeps
         * -0 when the row fills whole vectors) */
        st(out + i, add(FAMILY_SUM_TREE(acc), zero()), live);
    }
}

/* col_sums: the columns in bands of W, every band in sum_dim's order: a run of at most
 * TG_SUM_RUN rows is added row after row, a longer span is split in halves whose sums are
 * added. All bands go through one recursion, a run of rows at a time, so a matrix wider than W
 * is read once, not once per band (16M floats as [1M, 16] on AVX2: two passes over memory
 * before). The two halves are independent chains, so the core overlaps them. */
#define SUM_BANDS (TG_COL_SUMS_MAX / W)

/* One band: the same order, with the running sums in registers (an array of bands lives in
 * memory, and one band then paid a store and a load per add). */
static vf col_band(const float *x, int64_t len, int64_t stride, int64_t w)
{
    if (len <= TG_SUM_RUN) {
        vf y = ld(x, w);
        for (int64_t j = 1; j < len; j++)
            y = add(y, ld(x + j * stride, w));
        return y;
    }
    int64_t half = len / 2;
    vf a = col_band(x, half, stride, w);
    return add(a, col_band(x + half * stride, len - half, stride, w));
}

static void col_bands(const float *x, int64_t len, int64_t stride, int64_t width, vf *out)
{
    const int nb = (int)((width + W - 1) / W);
    if (len <= TG_SUM_RUN) {
        for (int b = 0; b < nb; b++)
            out[b] = ld(x + b * W, width - b * W);
        for (int64_t j = 1; j < len; j++)
            for (int b = 0; b < nb; b++)
                out[b] = add(out[b], ld(x + j * stride + b * W, width - b * W));
        return;
    }
    int64_t half = len / 2;
    vf first[SUM_BANDS];
    col_bands(x, half, stride, width, first);
    col_bands(x + half * stride, len - half, stride, width, out);
    for (int b = 0; b < nb; b++)
        out[b] = add(first[b], out[b]);
}

static void v_col_sums(const float *x, int64_t len, int64_t width, int64_t stride, float *y)
{
    vf out[SUM_BANDS];
    if (width <= 0)
        return;
    if (width <= W)
        out[0] = col_band(x, len, stride, width);
    else
        col_bands(x, len, stride, width, out);
    for (int64_t c = 0; c < width; c += W) /* + 0: a column of -0s sums to +0 (kernels.h) */
        st(y + c, add(out[c / W], zero()), width - c);
}

#endif
