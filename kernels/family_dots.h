/* The kernel table entries row_dots (X w) and col_dots (X^T r) for the x86 SIMD families, with
 * the column count a constant for rows of up to LR_NC_MAX vectors (plain loads when the rows
 * fill their vectors, as in lr_block). Included by each family's source after it defines W, ld,
 * st, set1, zero, fmadd, lr_tail, lr_tail_of, lr_col, row_dots_reg and lr_dots_wide. Written
 * once, compiled once per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_DOTS_H
#define TG_KERNELS_FAMILY_DOTS_H

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

/* col_dots for d <= W nc: one chain of FMAs per column vector, the rows in order, each row
 * asking for its share of the lines of its group of W rows ahead (as lr_block does). */
ALWAYS_INLINE void col_dots_reg(const float *X, int64_t m, int64_t d, int64_t stride, int nc,
                                bool full, const float *r, float *out)
{
    lr_tail tail = lr_tail_of(d, nc, full);
    const int per_row = (nc * W * 4 + 63) / 64; /* lines of a row */
    vf acc[LR_NC_MAX];
    for (int c = 0; c < nc; c++)
        acc[c] = zero();
    for (int64_t i = 0; i < m; i++) {
        const float *x = X + i * stride;
        lr_prefetch_row(X + (i - i % W) * stride, (int)(i % W), per_row, W * stride * 4);
        vf ri = set1(r[i]);
        for (int c = 0; c < nc; c++)
            acc[c] = fmadd(ri, lr_col(x, c, nc, tail), acc[c]);
    }
    for (int c = 0; c < nc; c++)
        st(out + c * W, acc[c], c < nc - 1 ? W : d - (int64_t)(nc - 1) * W);
}

ALWAYS_INLINE void col_dots_nc(const float *X, int64_t m, int64_t d, int64_t stride, int nc,
                               const float *r, float *out)
{
    if (d == nc * W)
        col_dots_reg(X, m, d, stride, nc, true, r, out);
    else
        col_dots_reg(X, m, d, stride, nc, false, r, out);
}

/* Up to LR_NC_MAX column vectors at a time: wider rows are read once per band of columns. */
static void v_col_dots(const float *X, int64_t m, int64_t d, int64_t stride, const float *r,
                       float *out)
{
    for (int64_t c0 = 0; c0 < d; c0 += LR_NC_MAX * W) {
        int64_t dd = d - c0 < LR_NC_MAX * W ? d - c0 : LR_NC_MAX * W;
        switch ((dd + W - 1) / W) {
        case 1:
            col_dots_nc(X + c0, m, dd, stride, 1, r, out + c0);
            break;
        case 2:
            col_dots_nc(X + c0, m, dd, stride, 2, r, out + c0);
            break;
        case 3:
            col_dots_nc(X + c0, m, dd, stride, 3, r, out + c0);
            break;
        default:
            col_dots_nc(X + c0, m, dd, stride, 4, r, out + c0);
        }
    }
}

#endif
