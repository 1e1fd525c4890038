/* Binary classification metrics from logits: log loss, confusion matrix, precision, recall, F1
 * and ROC AUC. AUC sorts the scores with a radix sort, so a million rows cost milliseconds. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/parallel.h"
#include "../core/tensor.h"
#include "../dist/comm.h"
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

static uint64_t auc_item(const float *y, const float *z, int64_t i)
{
    return (uint64_t)float_key(z[i]) << 1 | (uint64_t)(y[i] > 0.5f);
}

/* Mann-Whitney sum over sorted items: over groups of equal scores in ascending order, each
 * positive counts the negatives below it (below of them come before items[0]) plus half of
 * those tied with it. Every term is a multiple of 1/2 below 2^52, so the sum is exact and does
 * not depend on how it is split up. */
static double mann_whitney(const uint64_t *items, int64_t n, double below)
{
    double sum = 0.0;
    for (int64_t i = 0; i < n;) {
        int64_t j = i, p = 0;
        while (j < n && items[j] >> 1 == items[i] >> 1)
            p += (int64_t)(items[j++] & 1);
        int64_t q = (j - i) - p;
        sum += (double)p * (below + 0.5 * (double)q);
        below += (double)q;
        i = j;
    }
    return sum;
}

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
        items[i] = auc_item(y, z, i);
    if (!radix_sort(items, n)) {
        free(items);
        return false;
    }
    *auc = mann_whitney(items, n, 0.0) / ((double)pos * (double)neg);
    free(items);
    return true;
}

/* ---- ROC AUC across ranks ---------------------------------------------------------------- */

/* The global sort the AUC needs, done as a bucket exchange: the top 16 bits of the score key
 * cut the scores into 65536 ranges; a global histogram gives each rank a run of whole ranges
 * holding about n / size scores; the ranks send each score to its range's owner, and the owner
 * sorts them and sums its Mann-Whitney terms, starting from the negatives of the ranges before
 * its own. Equal scores share a range, so ties never straddle two owners. */
#define AUC_TOP_BITS 16
#define AUC_BUCKETS  (1 << AUC_TOP_BITS)

typedef struct {
    int64_t *hist;   /* AUC_BUCKETS counts of every score, then AUC_BUCKETS of negatives */
    int *owner;      /* rank owning each bucket */
    int64_t *counts; /* items sent to each rank */
    uint64_t *send, *recv;
    int64_t n_recv;
} auc_exchange;

static void auc_exchange_free(auc_exchange *x)
{
    free(x->hist), free(x->owner), free(x->counts), free(x->send), free(x->recv);
}

static int bucket_of(uint64_t item)
{
    return (int)(item >> (1 + 32 - AUC_TOP_BITS));
}

/* Buckets to ranks by cumulative count; returns the negatives in buckets owned by lower ranks. */
static double assign_buckets(auc_exchange *x, int64_t n_global, int k, int rank)
{
    int64_t cum = 0;
    double below = 0.0;
    for (int t = 0; t < AUC_BUCKETS; t++) {
        int64_t r = n_global > 0 ? (int64_t)((double)cum * k / (double)n_global) : 0;
        x->owner[t] = (int)(r < k - 1 ? r : k - 1);
        if (x->owner[t] < rank)
            below += (double)x->hist[AUC_BUCKETS + t];
        cum += x->hist[t];
    }
    return below;
}

/* Items grouped by destination rank (a counting sort on the owner). */
static void pack_items(auc_exchange *x, const uint64_t *items, int64_t n, int k)
{
    int64_t *at = x->counts + k; /* k more slots: the write position per rank */
    int64_t off = 0;
    for (int r = 0; r < k; r++) {
        at[r] = off;
        off += x->counts[r];
    }
    for (int64_t i = 0; i < n; i++)
        x->send[at[x->owner[bucket_of(items[i])]]++] = items[i];
}

static bool dist_roc_auc(const float *y, const float *z, int64_t n, int64_t pos, int64_t n_global,
                         double *auc)
{
    const int k = tgd_size(), rank = tgd_rank();
    int64_t neg = n_global - pos;
    *auc = NAN;
    if (pos == 0 || neg == 0) /* global counts: the same answer on every rank */
        return true;
    auc_exchange x = {0};
    x.hist = calloc(2 * AUC_BUCKETS, sizeof *x.hist);
    x.owner = malloc(AUC_BUCKETS * sizeof *x.owner);
    x.counts = calloc((size_t)k * 2, sizeof *x.counts);
    uint64_t *items = malloc((size_t)(n > 0 ? n : 1) * sizeof *items);
    x.send = malloc((size_t)(n > 0 ? n : 1) * sizeof *x.send);
    bool ok = x.hist && x.owner && x.counts && items && x.send;
    if (tgd_agree(ok ? TG_OK
                     : tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory for "
                                               "the AUC")) != TG_OK) {
        free(items);
        auc_exchange_free(&x);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        items[i] = auc_item(y, z, i);
        x.hist[bucket_of(items[i])]++;
        x.hist[AUC_BUCKETS + bucket_of(items[i])] += !(items[i] & 1);
    }
    tgd_sum_i64(x.hist, 2 * AUC_BUCKETS);
    double below = assign_buckets(&x, n_global, k, rank);
    for (int64_t i = 0; i < n; i++)
        x.counts[x.owner[bucket_of(items[i])]]++;
    pack_items(&x, items, n, k);
    free(items);
    tg_status st = TG_OK;
    if (!tgd_alltoallv_u64(x.send, x.counts, &x.recv, &x.n_recv)) /* agreed inside */
        st = tg_last_status();
    else if (!radix_sort(x.recv, x.n_recv))
        st = tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory sorting scores");
    if (st == TG_OK || x.recv) /* every rank got here with the exchange done: agree */
        st = tgd_agree(st);
    if (st == TG_OK) {
        double sum = mann_whitney(x.recv, x.n_recv, below);
        tgd_sum_f64(&sum, 1);
        *auc = sum / ((double)pos * (double)neg);
    }
    auc_exchange_free(&x);
    return st == TG_OK;
}

/* Per-block sums for the loss and the confusion matrix, merged in block order afterwards so
 * the result does not depend on the thread count (nor, across ranks, on the rank count when
 * the ranks start at block boundaries). */
#define METRIC_BLOCK 4096

typedef struct {
    double loss;
    int64_t tp, fp, tn, fn;
    bool nan;
} block_sums;

/* log(1 + e^x) in double, exact at both infinities. */
static double softplus_d(double x)
{
    return fmax(x, 0.0) + log1p(exp(-fabs(x)));
}

/* The loss of rows whose logits overflowed to ±inf (a model applied to data far beyond what it
 * was trained on). The kernel weighs both softplus terms of a row, so a row that is right with
 * certainty gets 0 · inf = NaN; here a term whose weight is 0 is left out: 0 for that row, and
 * inf for a row that is wrong with certainty. */
static double loss_with_infinities(const float *z, const float *y, int64_t m)
{
    double total = 0.0;
    for (int64_t i = 0; i < m; i++) {
        double t = y[i];
        total += (t > 0.0 ? t * softplus_d(-(double)z[i]) : 0.0) +
                 (t < 1.0 ? (1.0 - t) * softplus_d(z[i]) : 0.0);
    }
    return total;
}

typedef struct {
    const float *y, *z;
    int64_t n, rows;
    block_sums *part;
    int64_t nb;
} metric_job;

static void metric_blocks(void *ctx, int64_t begin, int64_t end)
{
    const metric_job *j = ctx;
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t lo = blk * j->rows, m = j->n - lo < j->rows ? j->n - lo : j->rows;
        const float *y = j->y + lo, *z = j->z + lo;
        block_sums *s = j->part + blk;
        memset(s, 0, sizeof *s);
        /* The kernel's stable BCE (float per element, double sum) is accurate to a few ulps
         * and an order of magnitude faster than libm in double. */
        s->loss = tg_kern()->bce_logits(z, y, NULL, NULL, m, 1.0f);
        if (isnan(s->loss))
            s->loss = loss_with_infinities(z, y, m);
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

/* The fold state: loss, tp, fp, tn, fn, any NaN score, rows (counts are exact in double). */
enum { S_LOSS, S_TP, S_FP, S_TN, S_FN, S_NAN, S_ROWS, S_LEN };

static void fold_blocks(double *state, void *ctx)
{
    const metric_job *j = ctx;
    for (int64_t b = 0; b < j->nb; b++) {
        const block_sums *p = j->part + b;
        state[S_LOSS] += p->loss;
        state[S_TP] += (double)p->tp;
        state[S_FP] += (double)p->fp;
        state[S_TN] += (double)p->tn;
        state[S_FN] += (double)p->fn;
        state[S_NAN] = p->nan ? 1.0 : state[S_NAN];
    }
    state[S_ROWS] += (double)j->n;
}

static bool confusion(const float *y, const float *z, int64_t n, int64_t rows, bool dist,
                      tg_binary_metrics *out, bool *nan_score)
{
    metric_job job = {y, z, n, rows, NULL, (n + rows - 1) / rows};
    job.part = malloc((size_t)(job.nb > 0 ? job.nb : 1) * sizeof *job.part);
    tg_status st = job.part ? TG_OK : tg_set_error(TG_ENOMEM, "tg_binary_metrics: out of memory");
    if (dist)
        st = tgd_agree(st);
    if (st != TG_OK) {
        free(job.part);
        return false;
    }
    tg_parallel_tasks(job.nb, 8, metric_blocks, &job);
    double state[S_LEN] = {0};
    if (dist)
        tgd_chain(state, S_LEN, fold_blocks, &job);
    else
        fold_blocks(state, &job);
    free(job.part);
    out->n = (int64_t)state[S_ROWS];
    out->tp = (int64_t)state[S_TP];
    out->fp = (int64_t)state[S_FP];
    out->tn = (int64_t)state[S_TN];
    out->fn = (int64_t)state[S_FN];
    *nan_score = state[S_NAN] != 0.0;
    out->log_loss = out->n > 0 ? state[S_LOSS] / (double)out->n : NAN;
    return true;
}

bool lr_metrics_ex(const float *y, const float *z, int64_t n, int64_t block_rows, bool dist,
                   tg_binary_metrics *out)
{
    memset(out, 0, sizeof *out);
    bool nan_score = false;
    if (!confusion(y, z, n, block_rows > 0 ? block_rows : METRIC_BLOCK, dist, out, &nan_score))
        return false;
    int64_t all = out->n;
    out->accuracy = all > 0 ? ratio(out->tp + out->tn, all) : NAN;
    out->precision = ratio(out->tp, out->tp + out->fp);
    out->recall = ratio(out->tp, out->tp + out->fn);
    out->f1 = ratio(2 * out->tp, 2 * out->tp + out->fp + out->fn);
    if (nan_score) {
        out->log_loss = out->auc = NAN;
        return true;
    }
    if (dist)
        return dist_roc_auc(y, z, n, out->tp + out->fn, all, &out->auc);
    if (!roc_auc(y, z, n, out->tp + out->fn, &out->auc)) {
        tg_set_error(TG_ENOMEM, "tg_binary_metrics: out of memory sorting %lld scores",
                     (long long)n);
        return false;
    }
    return true;
}

bool lr_metrics(const float *y, const float *z, int64_t n, tg_binary_metrics *out)
{
    return lr_metrics_ex(y, z, n, METRIC_BLOCK, false, out);
}

tg_status tg_binary_metrics_compute(tg_tensor *y, tg_tensor *logits, tg_binary_metrics *out)
{
    const char *fn = "tg_binary_metrics_compute";
    tg_api_enter();
    tg_status st = TG_OK;
    tg_tensor *yc = NULL, *zc = NULL;
    if (!y || !logits) {
        st = tg_null_input(TG_EINVAL, "%s: %s is NULL", fn, y ? "logits" : "y");
    } else if (!out) {
        st = tg_set_error(TG_EINVAL, "%s: out is NULL", fn);
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
