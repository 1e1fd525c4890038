/* tg_dist_csv_read: every rank reads the rows of its own byte range of a CSV file.
 *
 * The file's bytes are cut into size equal ranges. A range does not know by itself where its
 * first row starts (a line feed inside a quoted field does not end a row), so each rank counts
 * the quotes and line feeds of its range and an exclusive prefix sum tells it how many came
 * before: an odd number of quotes means the range starts inside a quoted field, and the line
 * feeds give global line numbers for error messages.
 *
 * Then the rows are handed out in whole blocks of the trainer (lr_align_rows): rank r keeps the
 * rows whose global index lies in [roundup(g_r), roundup(g_r+1)), where g_r is the index of its
 * first row. That moves at most one block of rows per rank boundary (the rank before reads a
 * little past its range), and makes the distributed fit split every sum into the same blocks
 * as one process: bit-identical models. */
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../io/csv_part.h"
#include "../train/fused.h"
#include "comm.h"
#include "tapegrad/dist.h"

static int64_t round_up(int64_t v, int64_t unit, int64_t cap)
{
    int64_t r = (v + unit - 1) / unit * unit;
    return r < cap ? r : cap;
}

/* The ranks cut the file by its size: they must all see the same one (a file still being
 * written, or different files under one path on different machines, would not cut cleanly). */
static tg_status same_size(const char *path, int64_t size)
{
    int64_t v[2] = {size, -size};
    tgd_min_i64(v, 2);
    tg_status st = TG_OK;
    if (v[0] != -v[1]) /* every rank sees this, rank 0 says it */
        st = tg_set_error(TG_EIO, "%s: the ranks see different file sizes (%lld to %lld bytes)",
                          path, (long long)v[0], (long long)-v[1]);
    return tgd_agree(st);
}

/* Finds this rank's own rows (those starting in its byte range); *first_row gets the global
 * index of the first one and *n_all the file's data row count. */
static tg_status split_part(csv_part *p, int64_t *own, int64_t *first_row, int64_t *n_all)
{
    const int64_t k = tgd_size(), r = tgd_rank(), size = csv_part_file_size(p);
    int64_t begin = size / k * r + size % k * r / k; /* size * r / k without overflow */
    int64_t end = r == k - 1 ? size : size / k * (r + 1) + size % k * (r + 1) / k;
    int64_t counts[2], before[2];
    csv_part_count(p, begin, end, &counts[0], &counts[1]);
    tgd_exscan_i64(counts, before, 2);
    tg_status st = tgd_agree(csv_part_split(p, begin, end, before[0], before[1], own));
    if (st != TG_OK)
        return st;
    tgd_exscan_i64(own, first_row, 1);
    *n_all = *own;
    tgd_sum_i64(n_all, 1);
    return *n_all > 0 ? TG_OK : tgd_agree(csv_part_no_rows(p)); /* every rank: rank 0 says it */
}

/* With opt->positive, each part saw at most one label value besides the positive one; the
 * file may have only one. The first rank whose value differs from the first rank's that has
 * one reports it, as one process would at that row. */
static tg_status check_labels_across(const csv_part *p)
{
    size_t len = 0;
    const char *mine = csv_part_other_label(p, &len);
    char *msg = malloc(len + 1), *all = NULL;
    int64_t *lens = NULL;
    tg_status st = msg ? TG_OK : tg_set_error(TG_ENOMEM, "out of memory");
    if ((st = tgd_agree(st)) != TG_OK) {
        free(msg); /* this rank's buffer, when another rank ran out of memory */
        return st;
    }
    msg[0] = mine ? 1 : 0; /* a flag byte, then the value */
    if (mine)
        memcpy(msg + 1, mine, len);
    bool ok = tgd_allgather_bytes(msg, mine ? (int64_t)len + 1 : 1, &all, &lens);
    free(msg);
    if (!ok)
        return tg_last_status();
    const char *ref = NULL, *at = all;
    int64_t ref_len = 0;
    int culprit = -1;
    for (int r = 0; r < tgd_size() && culprit < 0; at += lens[r], r++) {
        if (!at[0])
            continue;
        if (!ref)
            ref = at + 1, ref_len = lens[r] - 1;
        else if (lens[r] - 1 != ref_len || memcmp(at + 1, ref, (size_t)ref_len) != 0)
            culprit = r;
    }
    st = culprit == tgd_rank() ? csv_part_label_conflict(p, ref, (size_t)ref_len) : TG_OK;
    free(all), free(lens);
    return tgd_agree(st);
}

/* Rows dropped for missing values shift the index of every later row, so the parts are no
 * longer cut at whole blocks of the kept rows, and the fit would sum other blocks than one
 * process does (a model that differs in the last bits). When some rank dropped rows, the kept
 * rows are handed out again: rank r keeps those whose index among every rank's kept rows lies in
 * [roundup(g_r), roundup(g_r+1)), where g_r counts the kept rows of the ranks before it. */
static tg_status realign_kept(const char *path, int64_t unit, tg_csv_data *out)
{
    const int k = tgd_size(), r = tgd_rank();
    int64_t dropped = out->rows_dropped;
    tgd_sum_i64(&dropped, 1);
    if (dropped == 0)
        return TG_OK;
    /* n: kept rows per rank; g: the index of each rank's first; t: where each rank's new
     * rows start (t[k] = every kept row); sc, rc: floats sent to and received from each rank. */
    int64_t *n = malloc((size_t)(5 * k + 2) * sizeof *n);
    tg_status st = n ? TG_OK : tg_set_error(TG_ENOMEM, "%s: out of memory", path);
    if ((st = tgd_agree(st)) != TG_OK) {
        free(n); /* this rank's buffer, when another rank ran out of memory */
        return st;
    }
    int64_t *g = n + k, *t = g + k + 1, *sc = t + k + 1, *rc = sc + k;
    tgd_allgather_i64(&out->rows, 1, n);
    g[0] = 0;
    for (int s = 0; s < k; s++)
        g[s + 1] = g[s] + n[s];
    const int64_t total = g[k];
    if (total == 0) { /* as one process words it; every rank sees this, rank 0 says it */
        st = r == 0 ? tg_set_error(TG_EPARSE, "%s: every row has a missing value (%lld dropped)",
                                   path, (long long)dropped)
                    : TG_EPARSE;
        free(n);
        return tgd_agree(st);
    }
    for (int s = 0; s < k; s++)
        t[s] = s == 0 ? 0 : round_up(g[s], unit, total);
    t[k] = total;
    for (int s = 0; s < k; s++) { /* rows of [g, g + n) of one rank that [t, t') of another wants */
        int64_t lo = g[r] > t[s] ? g[r] : t[s], hi = g[r + 1] < t[s + 1] ? g[r + 1] : t[s + 1];
        sc[s] = hi > lo ? hi - lo : 0;
        lo = g[s] > t[r] ? g[s] : t[r], hi = g[s + 1] < t[r + 1] ? g[s + 1] : t[r + 1];
        rc[s] = hi > lo ? hi - lo : 0;
    }
    const int64_t d = out->n_features, m = t[r + 1] - t[r];
    int64_t xs[2] = {m, d};
    /* kept: out owns them, even inside a caller's tg_scope */
    tg_tensor *X = tg_keep(tg_empty(2, xs)), *y = out->y ? tg_keep(tg_empty(1, xs)) : NULL;
    st = X && (y || !out->y) ? TG_OK : tg_set_error(TG_ENOMEM, "%s: out of memory", path);
    if ((st = tgd_agree(st)) == TG_OK) {
        if (out->y && !tgd_alltoallv_f32(tg_data(out->y), sc, tg_data(y), rc))
            st = tg_last_status();
        for (int s = 0; s < k; s++)
            sc[s] *= d, rc[s] *= d;
        if (st == TG_OK && !tgd_alltoallv_f32(tg_data(out->X), sc, tg_data(X), rc))
            st = tg_last_status();
    }
    free(n);
    if (st != TG_OK) {
        tg_release(X), tg_release(y);
        return st;
    }
    tg_release(out->X), tg_release(out->y);
    out->X = X;
    out->y = y;
    out->rows = m;
    return TG_OK;
}

static tg_status read_part(const char *path, csv_part *p, const tg_csv_options *opt,
                           tg_csv_data *out)
{
    int64_t own = 0, g = 0, n_all = 0;
    tg_status st = split_part(p, &own, &g, &n_all);
    if (st != TG_OK)
        return st;
    int64_t unit = lr_align_rows(csv_part_features(p));
    int64_t lo = round_up(g, unit, n_all), hi = round_up(g + own, unit, n_all);
    /* lo < hi only when lo < g + own: the first kept row is one of this rank's own. */
    st = csv_part_read(p, hi > lo ? lo - g : 0, hi > lo ? hi - lo : 0, out);
    if ((st = tgd_agree(st)) == TG_OK && opt && opt->positive)
        st = check_labels_across(p);
    if (st == TG_OK && opt && opt->missing == TG_MISSING_DROP)
        st = realign_kept(path, unit, out);
    return st;
}

tg_status tg_dist_csv_read(const char *path, const tg_csv_options *opt, tg_csv_data *out)
{
    tg_clear_error();
    tg_status st = TG_OK;
    csv_part *p = NULL;
    if (!out)
        st = tg_set_error(TG_EINVAL, "%s: tg_dist_csv_read: out is NULL", path ? path : "?");
    else
        memset(out, 0, sizeof *out);
    if (st == TG_OK)
        st = csv_part_open(path, opt, &p);
    if ((st = tgd_agree(st)) == TG_OK)
        st = same_size(path, csv_part_file_size(p));
    if (st == TG_OK)
        st = read_part(path, p, opt, out);
    csv_part_close(p);
    if (st != TG_OK && out)
        tg_csv_data_free(out); /* another rank's failure empties this rank's part too */
    return st;
}
