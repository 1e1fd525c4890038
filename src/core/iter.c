/* The one N-d walker: every strided loop in the library goes through here, so ops hand only
 * contiguous-or-constant-stride runs to kernels and never write their own stride arithmetic. */
#include <string.h>

#include "tensor.h"

#define MAX_OPS 4

/* Drops size-1 dimensions and merges neighbours that are contiguous for every operand, so a
 * contiguous tensor becomes one run and a transposed one becomes the fewest possible runs. */
static int collapse(int nops, int ndim, const int64_t *shape, const int64_t *const *strides,
                    int64_t *cshape, int64_t (*cstr)[TG_MAX_DIMS])
{
    int m = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1)
            continue;
        bool merge = m > 0;
        for (int k = 0; k < nops && merge; k++)
            merge = cstr[k][m - 1] == strides[k][d] * shape[d];
        if (merge) {
            cshape[m - 1] *= shape[d];
            for (int k = 0; k < nops; k++)
                cstr[k][m - 1] = strides[k][d];
            continue;
        }
        cshape[m] = shape[d];
        for (int k = 0; k < nops; k++)
            cstr[k][m] = strides[k][d];
        m++;
    }
    return m;
}

void tg_iter(int nops, int ndim, const int64_t *shape, float *const *base,
             const int64_t *const *strides, tg_run_fn fn, void *ctx)
{
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0)
            return;
    int64_t cshape[TG_MAX_DIMS];
    int64_t cstr[MAX_OPS][TG_MAX_DIMS];
    int m = collapse(nops, ndim, shape, strides, cshape, cstr);
    float *p[MAX_OPS];
    int64_t inner[MAX_OPS];
    for (int k = 0; k < nops; k++) {
        p[k] = base[k];
        inner[k] = m ? cstr[k][m - 1] : 1;
    }
    if (m <= 1) {
        fn(ctx, p, inner, m ? cshape[0] : 1);
        return;
    }
    /* Odometer over the outer m-1 dimensions. */
    int64_t idx[TG_MAX_DIMS] = {0};
    int64_t n = cshape[m - 1];
    for (;;) {
        fn(ctx, p, inner, n);
        int d = m - 2;
        for (; d >= 0; d--) {
            for (int k = 0; k < nops; k++)
                p[k] += cstr[k][d];
            if (++idx[d] < cshape[d])
                break;
            for (int k = 0; k < nops; k++)
                p[k] -= cstr[k][d] * cshape[d];
            idx[d] = 0;
        }
        if (d < 0)
            return;
    }
}
