/* The one N-d walker: every strided loop in the library goes through here, so ops hand only
 * contiguous-or-constant-stride runs to kernels and never write their own stride arithmetic. */
#include <string.h>

#include "parallel.h"
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

/* One collapsed walk: runs of n elements at the odometer positions of the outer m - 1 dims. */
typedef struct {
    int nops, m;
    int64_t n;
    int64_t shape[TG_MAX_DIMS];
    int64_t str[MAX_OPS][TG_MAX_DIMS];
    float *base[MAX_OPS];
    int64_t inner[MAX_OPS];
    tg_run_fn fn;
    tg_rows_fn rows_fn; /* instead of fn: a block of runs per call (tg_iter_rows) */
    void *ctx;
} walk;

/* Points p at run r of the walk, with idx its digits over the outer dims [0, top]: run r sits
 * at the mixed-radix digits of r. */
static void seek_run(const walk *w, int top, int64_t r, int64_t *idx, float **p)
{
    for (int k = 0; k < w->nops; k++)
        p[k] = w->base[k];
    for (int d = top; d >= 0; d--) {
        idx[d] = r % w->shape[d];
        r /= w->shape[d];
        for (int k = 0; k < w->nops; k++)
            p[k] += w->str[k][d] * idx[d];
    }
}

/* One odometer step over the outer dims [0, top]. */
static void step_outer(const walk *w, int top, int64_t *idx, float **p)
{
    for (int d = top; d >= 0; d--) {
        for (int k = 0; k < w->nops; k++)
            p[k] += w->str[k][d];
        if (++idx[d] < w->shape[d])
            break;
        for (int k = 0; k < w->nops; k++)
            p[k] -= w->str[k][d] * w->shape[d];
        idx[d] = 0;
    }
}

/* Runs [r0, r1) of the walk, in order. */
static void walk_runs(void *arg, int64_t r0, int64_t r1)
{
    const walk *w = arg;
    int64_t idx[TG_MAX_DIMS] = {0};
    float *p[MAX_OPS];
    seek_run(w, w->m - 2, r0, idx, p);
    for (int64_t run = r0; run < r1; run++) {
        w->fn(w->ctx, p, w->inner, w->n);
        step_outer(w, w->m - 2, idx, p);
    }
}

/* Runs [r0, r1) of the walk, in order, as blocks of consecutive runs along the dim just
 * outside the run: one call per block instead of one per run. */
static void walk_rows(void *arg, int64_t r0, int64_t r1)
{
    const walk *w = arg;
    int64_t idx[TG_MAX_DIMS] = {0};
    float *p[MAX_OPS];
    int64_t rs[MAX_OPS];
    int last = w->m - 2; /* the dim whose steps are the rows of a block; -1: a single run */
    for (int k = 0; k < w->nops; k++)
        rs[k] = last >= 0 ? w->str[k][last] : 0;
    seek_run(w, last, r0, idx, p);
    for (int64_t run = r0; run < r1;) {
        int64_t rows = last < 0 ? 1 : w->shape[last] - idx[last];
        if (rows > r1 - run)
            rows = r1 - run;
        w->rows_fn(w->ctx, p, w->inner, w->n, rs, rows);
        run += rows;
        if (last < 0)
            break;
        for (int k = 0; k < w->nops; k++)
            p[k] += rs[k] * rows;
        if ((idx[last] += rows) < w->shape[last])
            continue;
        for (int k = 0; k < w->nops; k++)
            p[k] -= rs[k] * w->shape[last];
        idx[last] = 0;
        step_outer(w, last - 1, idx, p);
    }
}

/* Elements [e0, e1) of a walk that is a single run. */
static void one_run_part(void *arg, int64_t e0, int64_t e1)
{
    const walk *w = arg;
    float *p[MAX_OPS];
    for (int k = 0; k < w->nops; k++)
        p[k] = w->base[k] + e0 * w->inner[k];
    if (w->rows_fn)
        w->rows_fn(w->ctx, p, w->inner, e1 - e0, (const int64_t[MAX_OPS]){0}, 1);
    else
        w->fn(w->ctx, p, w->inner, e1 - e0);
}

static void iter(int nops, int ndim, const int64_t *shape, float *const *base,
                 const int64_t *const *strides, tg_run_fn fn, tg_rows_fn rows_fn, void *ctx)
{
    for (int d = 0; d < ndim; d++)
        if (shape[d] == 0)
            return;
    walk w = {.nops = nops, .fn = fn, .rows_fn = rows_fn, .ctx = ctx};
    tg_range_fn walk_fn = rows_fn ? walk_rows : walk_runs;
    w.m = collapse(nops, ndim, shape, strides, w.shape, w.str);
    for (int k = 0; k < nops; k++) {
        w.base[k] = base[k];
        w.inner[k] = w.m ? w.str[k][w.m - 1] : 1;
    }
    w.n = w.m ? w.shape[w.m - 1] : 1;
    int64_t runs = 1;
    bool distinct = w.m == 0 || w.str[0][w.m - 1] != 0; /* operand 0 is written */
    for (int d = 0; d + 1 < w.m; d++) {
        runs *= w.shape[d];
        distinct = distinct && w.str[0][d] != 0;
    }
    /* Runs write disjoint parts of operand 0 unless it repeats memory (a stride of 0), so large
     * walks are split across threads by whole runs: each run is computed as it would be alone,
     * and the result does not depend on the thread count. */
    if (distinct && runs > 1 && runs * w.n >= tg_parallel_grain()) {
        int64_t grain = (tg_parallel_grain() + w.n - 1) / w.n;
        tg_parallel_tasks(runs, grain, walk_fn, &w);
    } else if (distinct && runs == 1 && w.n >= tg_parallel_grain()) {
        tg_parallel_for(w.n, tg_parallel_grain(), one_run_part, &w); /* one long run: in parts */
    } else {
        walk_fn(&w, 0, runs);
    }
}

void tg_iter(int nops, int ndim, const int64_t *shape, float *const *base,
             const int64_t *const *strides, tg_run_fn fn, void *ctx)
{
    iter(nops, ndim, shape, base, strides, fn, NULL, ctx);
}

void tg_iter_rows(int nops, int ndim, const int64_t *shape, float *const *base,
                  const int64_t *const *strides, tg_rows_fn fn, void *ctx)
{
    iter(nops, ndim, shape, base, strides, NULL, fn, ctx);
}
