/* Collective helpers over the library's MPI communicator, for the distributed reader and
 * trainer. Internal.
 *
 * No MPI type appears here, so src/io and src/train can call these in every build. Without MPI
 * (or before tg_dist_init) the world has one rank and each helper is its local special case:
 * sums and gathers copy, exclusive scans give zeros, a chain is one fold.
 *
 * Failures: these helpers move data but cannot fail on bad input; the only errors are out of
 * memory (tgd_alltoallv_u64) and MPI's own (fatal by MPI's default error handler). Callers agree
 * on local failures with tgd_agree before they call the next collective. */
#ifndef TG_DIST_COMM_H
#define TG_DIST_COMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tapegrad.h"

int tgd_rank(void);
int tgd_size(void);

/* tg_dist_agree: the status of the lowest failing rank, or TG_OK. Sets tg_dist_failed_rank.
 * On ranks other than the failing one the error message becomes "rank R failed ...". */
tg_status tgd_agree(tg_status local);

/* A sequential fold carried across the ranks: rank 0 folds its part into state, passes the
 * result to rank 1, which folds its part into it, and so on; then every rank receives the final
 * state. The result is bit-identical to one process folding every part in order, which is what
 * makes distributed sums equal single-process ones. n doubles of state. */
typedef void (*tgd_fold_fn)(double *state, void *ctx);
void tgd_chain(double *state, int64_t n, tgd_fold_fn fold, void *ctx);

/* Sum over the ranks in place, deterministic (rank order) and identical on every rank. */
void tgd_sum_f64(double *v, int64_t n);
/* Exact integer reductions in place. */
void tgd_sum_i64(int64_t *v, int n);
void tgd_min_i64(int64_t *v, int n);
void tgd_max_i64(int64_t *v, int n);
/* out[i] = sum of in[i] over the ranks before this one (zeros on rank 0). */
void tgd_exscan_i64(const int64_t *in, int64_t *out, int n);
/* all[r * n + i] = rank r's mine[i]. all holds size * n values. */
void tgd_allgather_i64(const int64_t *mine, int n, int64_t *all);
/* Every rank's bytes, concatenated in rank order, into a malloc'd buffer; lens[r] (size
 * entries, malloc'd) says how many came from rank r. false (error set) on out of memory, agreed
 * across ranks. */
bool tgd_allgather_bytes(const void *mine, int64_t len, char **all, int64_t **lens);
/* Sends send_counts[r] items (consecutive in send, rank 0's first) to every rank r and receives
 * what every rank sends here, in rank order, into a malloc'd *recv of *recv_n items. false
 * (error set, agreed across ranks) on out of memory or counts beyond MPI's int range. */
bool tgd_alltoallv_u64(const uint64_t *send, const int64_t *send_counts, uint64_t **recv,
                       int64_t *recv_n);

/* Sends send_counts[r] floats (consecutive in send, rank 0's first) to every rank r and
 * receives recv_counts[r] floats from every rank r, in rank order, into recv. The counts must
 * pair up (what r sends to s is what s expects from r). false (error set, agreed across ranks)
 * when a count is beyond MPI's int range. */
bool tgd_alltoallv_f32(const float *send, const int64_t *send_counts, float *recv,
                       const int64_t *recv_counts);

#endif
