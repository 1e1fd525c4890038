/* Binary classification metrics from logits: log loss, confusion matrix, precision, recall, F1
 * and ROC AUC. AUC sorts the scores with a radix sort, so a million rows cost milliseconds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/parallel.h"
#include "../core/tensor.h"
#include "kernels.h"
#include "metrics.h"

static double ratio(int64_t a, int64_t b)
{
    return b > 0 ? (double)a / (double)b : 0.0;
}

/* Order-preserving unsigned key of a float (both zeros map to one key). */
static uint32_t float_key(float v)
{
    uint32_t u;
    if (v == 0.0f)
        v = 0.0f;
    memcpy(&u, &v, sizeof u);
    return (u & 0x80000000u) ? ~u : u | 0x80000000u;
}

/* LSD radix sort of (key << 1 | label) items in three 11-bit passes over the key; the three
 * histograms come from one read of the input. */
static bool radix_sort(uint64_t *a, int64_t n)
{
    enum { BITS = 11, BUCKETS = 1 << BITS, PASSES = 3 };
    uint64_t *tmp = malloc((size_t)(n > 0 ? n : 1) * sizeof(uint64_t));
    int64_t(*count)[BUCKETS] = calloc(PASSES, sizeof *count);
    if (!tmp || !count) {
        free(tmp), free(count);
        return false;
    }
    for (int64_t i = 0; i < n; i++)
        for (int p = 0; p < PASSES; p++)
            count[p][(a[i] >> (1 + p * BITS)) & (BUCKETS - 1)]++;
    uint64_t *src = a, *dst = tmp;
    for (int p = 0; p < PASSES; p++) {
        int64_t start = 0; /* counts become start offsets */
        for (int b = 0; b < BUCKETS; b++) {
            int64_t c = count[p][b];
            count[p][b] = start;
            start += c;
        }
        const int shift = 1 + p * BITS;
        for (int64_t i = 0; i < n; i++)
            dst[count[p][(src[i] >> shift) & (BUCKETS - 1)]++] = src[i];
        uint64_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) /* an odd number of passes leaves the result in tmp */
        memcpy(a, src, (size_t)n * sizeof(uint64_t));
    free(tmp);
    free(count);
    return true;
}

/* Mann-Whitney form: over groups of equal scores in ascending order, each positive counts the
 * negatives below it plus half of those tied with it. */
static bool roc_auc(const float *y, const float *z, int64_t n, int64_t pos, double *auc)
{
    int64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        *auc = NAN;
        return true;
    }
    uint64_t *items = malloc((size_t)n * sizeof(uint64_t));
    if (!items)
        return false;
    for (int64_t i = 0; i < n; i++)
        items[i] = (uint64_t)float_key(z[i]) << 1 | (uint64_t)(y[i] > 0.5f);
    if (!radix_sort(items, n)) {
        free(items);
        return false;
    }
    double below = 0.0, sum = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i, p = 0;
        while (j < n && items[j] >> 1 == items[i] >> 1)
            p += (int64_t)(items[j++] & 1);
        int64_t q = (j - i) - p;
        sum += (double)p * (below + 0.5 * (double)q);
        below += (double)q;
        i = j;
    }
    free(items);
    *auc = sum / ((double)pos * (double)neg);
    return true;
}

/* Per-block sums for the loss and the confusion matrix, merged in block order afterwards so
 * the result does not depend on the thread count. */
#define METRIC_BLOCK 4096

typedef struct {
    double loss;
    int64_t tp, fp, tn, fn;
    bool nan;
} block_sums;

typedef struct {
    const float *y, *z;
    int64_t n;
    block_sums *part;
} metric_job;

static void metric_blocks(void *ctx, int64_t begin, int64_t end)
{
    const metric_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t lo = blk * METRIC_BLOCK, m = j->n - lo < METRIC_BLOCK ? j->n - lo : METRIC_BLOCK;
        const float *y = j->y + lo, *z = j->z + lo;
        block_sums *s = j->part + blk;
        memset(s, 0, sizeof *s);
        /* The kernel's stable BCE (float per element, double sum) is accurate to a few ulps
         * and an order of magnitude faster than libm in double. */
        s->loss = tg_kern()->bce_logits(z, y, NULL, NULL, m, 1.0f);
        for (int64_t i = 0; i < m; i++) {
            bool pos = y[i] > 0.5f, says_pos = z[i] > 0.0f;
            s->nan |= isnan(z[i]);
            s->tp += pos && says_pos;
            s->fn += pos && !says_pos;
            s->fp += !pos && says_pos;
            s->tn += !pos && !says_pos;
        }
    }
}

static bool confusion(const float *y, const float *z, int64_t n, tg_binary_metrics *out,
                      bool *nan_score)
{
    int64_t nb = (n + METRIC_BLOCK - 1) / METRIC_BLOCK;
    block_sums *part = malloc((size_t)(nb > 0 ? nb : 1) * sizeof *part);
    if (!part)
        return false;
    metric_job job = {y, z, n, part};
    tg_parallel_for(nb, 8, metric_blocks, &job);
    double loss = 0.0;
    *nan_score = false;
    for (int64_t b = 0; b < nb; b++) {
        loss += part[b].loss;
        out->tp += part[b].tp;
        out->fp += part[b].fp;
        out->tn += part[b].tn;
        out->fn += part[b].fn;
        *nan_score |= part[b].nan;
    }
    free(part);
    out->log_loss = n > 0 ? loss / (double)n : NAN;
    return true;
}

bool lr_metrics(const float *y, const float *z, int64_t n, tg_binary_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    bool nan_score = false;
    if (!confusion(y, z, n, out, &nan_score)) {
        tg_set_error(TG_ENOMEM, "tg_binary_metrics: out of memory");
        return false;
    }
    out->accuracy = n > 0 ? ratio(out->tp + out->tn, n) : NAN;
    out->precision = ratio(out->tp, out->tp + out->fp);
    out->recall = ratio(out->tp, out->tp + out->fn);
    out->f1 = ratio(2 * out->tp, 2 * out->tp + out->fp + out->fn);
    if (nan_score) {
        out->log_loss = out->auc = NAN;
        return true;
    }
    if (!roc_auc(y, z, n, out->tp + out->fn, &out->auc)) {
        tg_set_error(TG_ENOMEM, "tg_binary_metrics: out of memory sorting %lld scores",
                     (long long)n);
        return false;
    }
    return true;
}

tg_status tg_binary_metrics_compute(tg_tensor *y, tg_tensor *logits, tg_binary_metrics *out)
{
    const char *fn = "tg_binary_metrics_compute";
    tg_api_enter();
    tg_status st = TG_OK;
    tg_tensor *yc = NULL, *zc = NULL;
    if (!y || !logits || !out) {
        st = tg_set_error(TG_EINVAL, "%s: NULL argument", fn);
    } else if (y->ndim != 1 || logits->ndim != 1 || y->numel != logits->numel) {
        char a[160], b[160];
        st = tg_set_error(TG_ESHAPE, "%s: y %s and logits %s must be two vectors of one length", fn,
                          tg_shape_str(a, sizeof a, y->ndim, y->shape),
                          tg_shape_str(b, sizeof b, logits->ndim, logits->shape));
    } else {
        yc = tg_as_contiguous(y);
        zc = tg_as_contiguous(logits);
        if (!yc || !zc)
            st = tg_last_status();
    }
    for (int64_t i = 0; st == TG_OK && i < yc->numel; i++) {
        float v = tg_ptr(yc)[i];
        if (v != 0.0f && v != 1.0f)
            st = tg_set_error(TG_EINVAL, "%s: y[%lld] = %g is not 0 or 1", fn, (long long)i,
                              (double)v);
    }
    if (st == TG_OK && !lr_metrics(tg_ptr(yc), tg_ptr(zc), yc->numel, out))
        st = tg_last_status();
    tg_release(yc);
    tg_release(zc);
    tg_api_leave(NULL);
    return st;
}
