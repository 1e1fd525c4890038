/* One-pass helpers of the logistic-regression trainer: the fused loss + gradient pass, column
 * statistics, standardization and prediction logits.
 *
 * The fused pass reads every row of X once. It walks X in fixed blocks and hands each to the
 * kernel table's lr_block, which computes z = X_b w + b, the loss, r = dBCE/dz and
 * g_b = X_b^T r, sum r while the rows are still in L1 (16 or 8 rows at a time in the SIMD
 * families), so the matrix costs one trip through memory per evaluation, against about five
 * for the autograd path (matmul, loss, loss backward, matmul backward and its transpose).
 *
 * Blocks hold at most 8192 floats: a block's gradient is summed in float, so the block bounds
 * how many terms one float sum takes before the fold in double. The split is a function of d
 * only (block_rows_for), kept from the gemv version, so the distributed row alignment
 * (lr_align_rows) is unchanged. */
#include "fused.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/parallel.h"
#include "kernels.h"

#define BLOCK_FLOATS      8192  /* largest X block handed to one lr_block (see above) */
#define BLOCK_ROWS_MAX    1024  /* caps the rows of narrow blocks (d < 8) */
#define PAR_MIN_FLOATS    65536 /* below this much of X a pass stays on one thread */
#define STAT_BLOCK_FLOATS 65536

/* ---- block geometry ---------------------------------------------------------------------- */

/* Rows per block: a function of d only, so the block split (and the rounding of the partial
 * sums) never depends on the thread count. */
static int64_t block_rows_for(int64_t d)
{
    int64_t rows = BLOCK_FLOATS / (d > 0 ? d : 1);
    if (rows > BLOCK_ROWS_MAX)
        rows = BLOCK_ROWS_MAX;
    if (rows >= 16)
        rows -= rows % 16; /* whole cache lines of z and r */
    return rows > 0 ? rows : 1;
}

/* About STAT_BLOCK_FLOATS per block, in whole fused blocks, so that one alignment serves the
 * statistics, the fused pass and the metrics. */
int64_t lr_align_rows(int64_t d)
{
    int64_t b = block_rows_for(d);
    int64_t want = STAT_BLOCK_FLOATS / (d > 0 ? d : 1);
    return want > b ? want - want % b : b;
}

static int64_t blocks_for(int64_t n, int64_t rows)
{
    return n > 0 ? (n + rows - 1) / rows : 0;
}

/* Blocks one thread should get at least, so that tiny passes do not wake the pool. */
static int64_t grain_blocks(int64_t rows, int64_t d)
{
    int64_t per = rows * (d > 0 ? d : 1);
    return per >= PAR_MIN_FLOATS ? 1 : (PAR_MIN_FLOATS + per - 1) / per;
}

bool lr_pass_init(lr_pass *p, int64_t max_rows, int64_t d, float pos_weight)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->pos_weight = pos_weight;
    p->block_rows = block_rows_for(d);
    p->capacity_blocks = blocks_for(max_rows, p->block_rows);
    size_t nb = (size_t)(p->capacity_blocks > 0 ? p->capacity_blocks : 1);
    p->part_g = malloc(nb * (size_t)(d + 1) * sizeof(float));
    p->part_loss = malloc(nb * sizeof(double));
    if (!p->part_g || !p->part_loss) {
        lr_pass_free(p);
        tg_set_error(TG_ENOMEM, "tg_logreg: out of memory for %lld partial sums",
                     (long long)nb * (long long)(d + 1));
        return false;
    }
    return true;
}

void lr_pass_free(lr_pass *p)
{
    free(p->part_g);
    free(p->part_loss);
    memset(p, 0, sizeof *p);
}

void lr_pass_bind(lr_pass *p, const float *X, const float *y, int64_t n)
{
    p->X = X;
    p->y = y;
    p->n = n;
    p->n_blocks = blocks_for(n, p->block_rows);
}

/* ---- the fused pass ---------------------------------------------------------------------- */

typedef struct {
    const lr_pass *p;
    const float *w;
    float b;
    bool want_grad;
} pass_job;

static void pass_blocks(void *ctx, int64_t begin, int64_t end)
{
    const pass_job *j = ctx;
    const lr_pass *p = j->p;
    const int64_t d = p->d, B = p->block_rows;
    const tg_kernels *k = tg_kern();
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t row = blk * B, m = p->n - row < B ? p->n - row : B;
        float *g = j->want_grad ? p->part_g + blk * (d + 1) : NULL;
        p->part_loss[blk] =
            k->lr_block(p->X + row * d, m, d, j->w, j->b, p->y + row, p->pos_weight, g);
    }
}

void lr_pass_blocks(lr_pass *p, const float *w, float b, bool want_grad)
{
    pass_job job = {p, w, b, want_grad};
    tg_parallel_tasks(p->n_blocks, grain_blocks(p->block_rows, p->d), pass_blocks, &job);
}

void lr_pass_fold(const lr_pass *p, double *loss, double *grad)
{
    /* Fixed-order reduction in double: identical for any thread count. */
    for (int64_t blk = 0; blk < p->n_blocks; blk++)
        *loss += p->part_loss[blk];
    if (!grad)
        return;
    const int64_t w1 = p->d + 1;
    for (int64_t blk = 0; blk < p->n_blocks; blk++) {
        const float *g = p->part_g + blk * w1;
        for (int64_t j = 0; j < w1; j++)
            grad[j] += g[j];
    }
}

double lr_pass_run(lr_pass *p, const float *w, float b, double *grad)
{
    lr_pass_blocks(p, w, b, grad != NULL);
    double loss = 0.0;
    if (grad)
        for (int64_t j = 0; j <= p->d; j++)
            grad[j] = 0.0;
    lr_pass_fold(p, &loss, grad);
    return loss;
}

/* ---- column statistics ------------------------------------------------------------------- */

#define STAT_CHUNK 32 /* rows summed in float before the sums move to double */

typedef struct {
    const float *X;
    int64_t n, d, rows;
    double *part;   /* per block: d means then d M2 (sums of squared deviations) */
    float *scratch; /* per block: d floats of chunk sums */
} stats_job;

/* Below this, a chunk's float sum of squared deviations may be made of squares that fell into
 * or under the subnormal range (deviations below about 1e-19) and lost their digits, or all of
 * them: a feature measured in units of 1e-25 would get a wrong std, or none (then be taken for
 * a constant column and ignored). At or above it, what the small squares lost is below 2^-45
 * of the sum. */
#define STAT_SQ_MIN 0x1p-100f

/* Column k's sum over rows [i0, i1) in double: for a chunk whose float sum overflowed (values
 * or deviations beyond about 1e18 square past the float range), or whose squares may have
 * underflowed (STAT_SQ_MIN). */
static double column_sum_double(const float *Xb, int64_t i0, int64_t i1, int64_t d, int64_t k,
                                const float *c, bool sq)
{
    double sum = 0.0;
    for (int64_t i = i0; i < i1; i++) {
        double v = (double)Xb[i * d + k] - (sq ? (double)c[k] : 0.0);
        sum += sq ? v * v : v;
    }
    return sum;
}

/* Adds m rows of Xb (centred on c, the block's provisional mean in float) column by column:
 * sq ? squares : values. Chunks of 32 rows are summed in float (vectorizable across columns,
 * and 32 terms lose nothing that matters), then carried into double. */
static void column_sums(const float *Xb, int64_t m, int64_t d, const float *c, bool sq,
                        float *chunk, double *acc)
{
    for (int64_t i0 = 0; i0 < m; i0 += STAT_CHUNK) {
        int64_t i1 = m - i0 < STAT_CHUNK ? m : i0 + STAT_CHUNK;
        for (int64_t k = 0; k < d; k++)
            chunk[k] = 0.0f;
        for (int64_t i = i0; i < i1; i++) {
            const float *x = Xb + i * d;
            if (sq)
                for (int64_t k = 0; k < d; k++)
                    chunk[k] += (x[k] - c[k]) * (x[k] - c[k]);
            else
                for (int64_t k = 0; k < d; k++)
                    chunk[k] += x[k];
        }
        for (int64_t k = 0; k < d; k++) {
            bool float_ok = isfinite(chunk[k]) && !(sq && chunk[k] < STAT_SQ_MIN);
            acc[k] += float_ok ? (double)chunk[k] : column_sum_double(Xb, i0, i1, d, k, c, sq);
        }
    }
}

static void stats_blocks(void *ctx, int64_t begin, int64_t end)
{
    const stats_job *j = ctx;
    const int64_t d = j->d;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t row = blk * j->rows, m = j->n - row < j->rows ? j->n - row : j->rows;
        const float *Xb = j->X + row * d;
        double *mean = j->part + blk * 2 * d, *m2 = mean + d;
        float *chunk = j->scratch + blk * 2 * d, *centre = chunk + d;
        /* Two passes over a block that is still in cache: deviations from the block mean,
         * exact enough even when the mean is large against the spread, where a one-pass sum
         * of squares would cancel. */
        for (int64_t k = 0; k < d; k++)
            mean[k] = m2[k] = 0.0;
        column_sums(Xb, m, d, NULL, false, chunk, mean);
        for (int64_t k = 0; k < d; k++) {
            mean[k] /= (double)m;
            centre[k] = (float)mean[k];
        }
        column_sums(Xb, m, d, centre, true, chunk, m2);
        /* The deviations were taken from the float-rounded centre: move M2 to the exact mean
         * (M2 about c = M2 about mean + m (mean - c)^2). */
        for (int64_t k = 0; k < d; k++) {
            double off = mean[k] - (double)centre[k];
            m2[k] = fmax(m2[k] - (double)m * off * off, 0.0);
        }
    }
}

bool lr_stats_compute(lr_stats *s, const float *X, int64_t n, int64_t d)
{
    memset(s, 0, sizeof *s);
    s->n = n > 0 && d > 0 ? n : 0;
    s->d = d;
    s->rows = lr_align_rows(d);
    s->nb = blocks_for(s->n, s->rows);
    size_t per = (size_t)(s->nb > 0 ? s->nb : 1) * 2 * (size_t)(d > 0 ? d : 1);
    s->part = malloc(per * sizeof(double));
    float *scratch = malloc(per * sizeof(float));
    if (!s->part || !scratch) {
        free(scratch);
        lr_stats_free(s);
        tg_set_error(TG_ENOMEM, "tg_logreg: out of memory for column statistics");
        return false;
    }
    stats_job job = {X, s->n, d, s->rows, s->part, scratch};
    tg_parallel_tasks(s->nb, grain_blocks(s->rows, d), stats_blocks, &job);
    free(scratch);
    return true;
}

void lr_stats_free(lr_stats *s)
{
    free(s->part);
    s->part = NULL;
}

void lr_stats_fold(const lr_stats *s, double *state)
{
    /* Merge the blocks in order (Chan, Golub and LeVeque's pairwise combination). */
    const int64_t d = s->d;
    double *mean = state + 1, *m2 = state + 1 + d;
    for (int64_t blk = 0; blk < s->nb; blk++) {
        double m = (double)(s->n - blk * s->rows < s->rows ? s->n - blk * s->rows : s->rows);
        const double *bm = s->part + blk * 2 * d, *bm2 = bm + d;
        double count = state[0], total = count + m;
        for (int64_t c = 0; c < d; c++) {
            if (count == 0.0) {
                mean[c] = bm[c];
                m2[c] = bm2[c];
                continue;
            }
            double delta = bm[c] - mean[c];
            mean[c] += delta * (m / total);
            m2[c] += bm2[c] + delta * delta * (count * m / total);
        }
        state[0] = total;
    }
}

void lr_stats_finish(const double *state, int64_t d, double *mean, double *std)
{
    for (int64_t c = 0; c < d; c++) {
        mean[c] = state[0] > 0.0 ? state[1 + c] : 0.0;
        std[c] = state[0] > 0.0 ? sqrt(state[1 + d + c] / state[0]) : 0.0;
    }
}

bool lr_column_stats(const float *X, int64_t n, int64_t d, double *mean, double *std)
{
    lr_stats s;
    double *state = calloc((size_t)(2 * d + 1), sizeof(double));
    if (!state || !lr_stats_compute(&s, X, n, d)) {
        free(state);
        tg_set_error(TG_ENOMEM, "tg_logreg: out of memory for column statistics");
        return false;
    }
    lr_stats_fold(&s, state);
    lr_stats_finish(state, d, mean, std);
    lr_stats_free(&s);
    free(state);
    return true;
}

typedef struct {
    float *X;
    int64_t n, d, rows;
    const float *mean, *inv;
    const double *mean_d, *scale_d;
    const bool *wide; /* NULL, or the columns float arithmetic cannot take (see below) */
} scale_job;

static float standardize_exact(float x, double mean, double scale)
{
    return (float)(((double)x - mean) / scale);
}

static void scale_blocks(void *ctx, int64_t begin, int64_t end)
{
    const scale_job *j = ctx;
    const int64_t d = j->d;
    int64_t first = begin * j->rows, last = end * j->rows < j->n ? end * j->rows : j->n;
    for (int64_t i = first; i < last; i++) {
        float *x = j->X + i * d;
        if (j->wide) {
            for (int64_t c = 0; c < d; c++)
                x[c] = j->wide[c] ? standardize_exact(x[c], j->mean_d[c], j->scale_d[c])
                                  : (x[c] - j->mean[c]) * j->inv[c];
            continue;
        }
        for (int64_t c = 0; c < d; c++)
            x[c] = (x[c] - j->mean[c]) * j->inv[c];
    }
}

/* Two cases overflow in float where the standardized value is finite, so these columns go
 * through double: a std below about 3e-39 (subnormal data), whose inverse is inf in float, and
 * a centre of 2^103 or more, past which x - mean can exceed FLT_MAX (values near +-3e38 on both
 * sides). Otherwise |x - mean| rounds to at most FLT_MAX for any float x. */
static bool wide_column(double mean, float inv)
{
    return !isfinite(inv) || fabs(mean) >= 0x1p103;
}

void lr_standardize(float *X, int64_t n, int64_t d, const double *mean, const double *scale)
{
    if (n <= 0 || d <= 0)
        return;
    /* Float arithmetic: twice the SIMD width of double, for a pass that is one read and one
     * write of X. The trainer rounds the mean to float before calling (and stores that value),
     * so the model file holds exactly the centre used here. */
    float *m = malloc((size_t)d * 2 * sizeof(float));
    bool *wide = malloc((size_t)d * sizeof(bool));
    int64_t rows = STAT_BLOCK_FLOATS / d > 0 ? STAT_BLOCK_FLOATS / d : 1;
    if (!m || !wide) {
        /* No tables: the same floats column by column, on this thread. Standardizing all in
         * double here made a fit short of memory give another model. */
        free(m), free(wide);
        for (int64_t c = 0; c < d; c++) {
            float mc = (float)mean[c], ic = (float)(1.0 / scale[c]);
            bool wc = wide_column(mean[c], ic);
            for (int64_t i = 0; i < n; i++) {
                float *x = X + i * d + c;
                *x = wc ? standardize_exact(*x, mean[c], scale[c]) : (*x - mc) * ic;
            }
        }
        return;
    }
    float *inv = m + d;
    bool any_wide = false;
    for (int64_t c = 0; c < d; c++) {
        m[c] = (float)mean[c];
        inv[c] = (float)(1.0 / scale[c]);
        wide[c] = wide_column(mean[c], inv[c]);
        any_wide |= wide[c];
    }
    scale_job job = {X, n, d, rows, m, inv, mean, scale, any_wide ? wide : NULL};
    tg_parallel_tasks(blocks_for(n, rows), grain_blocks(rows, d), scale_blocks, &job);
    free(m);
    free(wide);
}

/* ---- prediction logits ------------------------------------------------------------------- */

typedef struct {
    const float *X;
    int64_t n, d, rows;
    const double *w;
    double b;
    float *z;
} logit_job;

static void logit_blocks(void *ctx, int64_t begin, int64_t end)
{
    const logit_job *j = ctx;
    int64_t first = begin * j->rows, last = end * j->rows < j->n ? end * j->rows : j->n;
    for (int64_t i = first; i < last; i++) {
        const float *x = j->X + i * j->d;
        double acc[4] = {0, 0, 0, 0};
        int64_t c = 0;
        for (; c + 4 <= j->d; c += 4)
            for (int l = 0; l < 4; l++)
                acc[l] += x[c + l] * j->w[c + l];
        for (; c < j->d; c++)
            acc[0] += x[c] * j->w[c];
        j->z[i] = (float)(j->b + ((acc[0] + acc[1]) + (acc[2] + acc[3])));
    }
}

void lr_logits(const float *X, int64_t n, int64_t d, const double *w, double b, float *z)
{
    int64_t rows = STAT_BLOCK_FLOATS / (d > 0 ? d : 1);
    if (rows < 1)
        rows = 1;
    logit_job job = {X, n, d, rows, w, b, z};
    tg_parallel_tasks(blocks_for(n, rows), grain_blocks(rows, d), logit_blocks, &job);
}

bool lr_name_non_finite(const char *fn, const float *X, int64_t n, int64_t d, int64_t row0,
                        bool nan_ok)
{
    for (int64_t i = 0; i < n * d; i++)
        if (!isfinite(X[i]) && !(nan_ok && isnan(X[i]))) {
            tg_set_error(TG_EINVAL, "%s: X[%lld, %lld] = %g is not finite", fn,
                         (long long)(row0 + i / d), (long long)(i % d), (double)X[i]);
            return true;
        }
    return false;
}
