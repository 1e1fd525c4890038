/* The kernel table entry row_dots for the x86 SIMD families: rows of up to LR_NC_MAX vectors
 * go to the family's row_dots_reg with the column count a constant (plain loads when the rows
 * fill their vectors, as in lr_block), wider ones to lr_dots_wide. Included by each family's
 * source after it defines W, st, row_dots_reg and lr_dots_wide. Written once, compiled once
 * per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_ROW_DOTS_H
#define TG_KERNELS_FAMILY_ROW_DOTS_H

ALWAYS_INLINE void row_dots_nc(const float *X, int64_t m, int64_t d, int64_t stride, int nc,
                               const float *w, float *out)
{
    if (d == nc * W)
        row_dots_reg(X, m, d, stride, nc, true, w, out);
    else
        row_dots_reg(X, m, d, stride, nc, false, w, out);
}

static void v_row_dots(const float *X, int64_t m, int64_t d, int64_t stride, const float *w,
                       float *out)
{
    switch ((d + W - 1) / W) {
    case 0:
    case 1:
        row_dots_nc(X, m, d, stride, 1, w, out);
        return;
    case 2:
        row_dots_nc(X, m, d, stride, 2, w, out);
        return;
    case 3:
        row_dots_nc(X, m, d, stride, 3, w, out);
        return;
    case 4:
        row_dots_nc(X, m, d, stride, 4, w, out);
        return;
    default:
        for (int64_t i = 0; i < m; i += W)
            st(out + i, lr_dots_wide(X + i * stride, m - i < W ? m - i : W, d, stride, w), m - i);
    }
}

#endif
