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

/* ---- ROC AUC ------------------------------------------------------------------------------
 * The Mann-Whitney sum needs the scores in order with their labels. The keys of the positive
 * and of the negative scores are sorted apart, in two regions of one array (positives first), by
 * an LSD radix sort in three 11-bit passes whose first pass reads the items from where they
 * are. Two arrays of n 32-bit keys in all, from the scratch cache (whose large buffers sit on
 * 2 MB pages). Sorting 64-bit (key << 1 | label) items took twice the memory, all of it fresh
 * from malloc: on a VM whose every page fault traps to the host, touching it took 60 of the
 * 66 ms that a million-row fit spent on its metrics. */

/* Item i of a source as key << 1 | label (1: positive). */
typedef uint64_t (*item_fn)(const void *src, int64_t i);

enum { RADIX_BITS = 11, RADIX_BUCKETS = 1 << RADIX_BITS, RADIX_PASSES = 3 };

/* Write positions: [label][pass][digit]. */
typedef int64_t radix_at[2][RADIX_PASSES][RADIX_BUCKETS];

typedef struct {
    uint32_t *keys; /* positives' keys sorted, then negatives' */
    int64_t pos, n, capacity;
} split_keys;

static inline unsigned digit(uint32_t key, int pass)
{
    return (key >> (pass * RADIX_BITS)) & (RADIX_BUCKETS - 1);
}

/* Counts become write positions: region bases 0 for positives and pos for negatives. */
static void radix_offsets(radix_at *at, int64_t pos)
{
    for (int l = 0; l < 2; l++)
        for (int p = 0; p < RADIX_PASSES; p++) {
            int64_t start = l ? 0 : pos;
            for (int b = 0; b < RADIX_BUCKETS; b++) {
                int64_t c = (*at)[l][p][b];
                (*at)[l][p][b] = start;
                start += c;
            }
        }
}

/* One later pass over src[lo, hi), a region of one label. */
static void scatter(const uint32_t *src, uint32_t *dst, int64_t lo, int64_t hi, int64_t *at,
                    int pass)
{
    for (int64_t i = lo; i < hi; i++)
        dst[at[digit(src[i], pass)]++] = src[i];
}

static bool sort_split(item_fn item, const void *src, int64_t n, split_keys *out)
{
    int64_t cap_b = 0;
    radix_at *at = calloc(1, sizeof *at);
    uint32_t *a = (uint32_t *)tg_scratch_alloc(n, &out->capacity);
    uint32_t *b = a ? (uint32_t *)tg_scratch_alloc(n, &cap_b) : NULL;
    if (!at || !a || !b) {
        free(at);
        tg_scratch_free((float *)a, out->capacity);
        tg_scratch_free((float *)b, cap_b);
        return false;
    }
    for (int64_t i = 0; i < n; i++) {
        uint64_t it = item(src, i);
        for (int p = 0; p < RADIX_PASSES; p++)
            (*at)[it & 1][p][digit((uint32_t)(it >> 1), p)]++;
    }
    int64_t pos = 0; /* the positives: the first pass's counts of label 1 */
    for (int d = 0; d < RADIX_BUCKETS; d++)
        pos += (*at)[1][0][d];
    radix_offsets(at, pos);
    for (int64_t i = 0; i < n; i++) {
        uint64_t it = item(src, i);
        b[(*at)[it & 1][0][digit((uint32_t)(it >> 1), 0)]++] = (uint32_t)(it >> 1);
    }
    scatter(b, a, 0, pos, (*at)[1][1], 1);
    scatter(b, a, pos, n, (*at)[0][1], 1);
    scatter(a, b, 0, pos, (*at)[1][2], 2);
    scatter(a, b, pos, n, (*at)[0][2], 2);
    free(at);
    tg_scratch_free((float *)a, out->capacity);
    out->keys = b;
    out->capacity = cap_b;
    out->pos = pos;
    out->n = n;
    return true;
}

static void split_keys_free(split_keys *k)
{
    tg_scratch_free((float *)k->keys, k->capacity);
}

/* Mann-Whitney sum over sorted keys: each positive counts the negatives below it, plus half of
 * those tied with it; below counts negatives under every key of k that k does not hold (those
 * of lower-ranked processes). Every term is a multiple of 1/2 below 2^52, so the sum is exact
 * and does not depend on how it is split up. */
static double mann_whitney(const split_keys *k, double below)
{
    const uint32_t *p = k->keys, *q = k->keys + k->pos;
    const int64_t np = k->pos, nq = k->n - k->pos;
    double sum = 0.0;
    int64_t j = 0;
    for (int64_t i = 0; i < np;) {
        const uint32_t v = p[i];
        int64_t c = 0;
        while (i < np && p[i] == v)
            c++, i++;
        while (j < nq && q[j] < v)
            j++;
        int64_t t = j;
        while (t < nq && q[t] == v)
            t++;
        sum += (double)c * (below + (double)j + 0.5 * (double)(t - j));
    }
    return sum;
}

typedef struct {
    const float *y, *z;
} scores;

static uint64_t score_item(const void *src, int64_t i)
{
    const scores *s = src;
    return (uint64_t)float_key(s->z[i]) << 1 | (uint64_t)(s->y[i] > 0.5f);
}

static bool roc_auc(const float *y, const float *z, int64_t n, int64_t pos, double *auc)
{
    int64_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        *auc = NAN;
        return true;
    }
    scores src = {y, z};
    split_keys k;
    if (!sort_split(score_item, &src, n, &k))
        return false;
    *auc = mann_whitney(&k, 0.0) / ((double)pos * (double)neg);
    split_keys_free(&k);
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

static uint64_t stored_item(const void *src, int64_t i)
{
    return ((const uint64_t *)src)[i];
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
    scores src = {y, z};
    for (int64_t i = 0; i < n; i++) {
        items[i] = score_item(&src, i);
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
    split_keys keys = {0};
    if (!tgd_alltoallv_u64(x.send, x.counts, &x.recv, &x.n_recv)) /* agreed inside */
        st = tg_last_status();
    else if (!sort_split(stored_item, x.recv, x.n_recv, &keys))
        st = tg_set_error(TG_ENOMEM, "tg_logreg_fit: out of memory sorting scores");
    if (st == TG_OK || x.recv) /* every rank got here with the exchange done: agree */
        st = tgd_agree(st);
    if (st == TG_OK) {
        double sum = mann_whitney(&keys, below);
        tgd_sum_f64(&sum, 1);
        *auc = sum / ((double)pos * (double)neg);
    }
    split_keys_free(&keys);
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
