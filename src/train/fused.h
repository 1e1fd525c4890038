/* The fused logistic-loss pass and the other one-pass helpers the trainer is built on.
 * Internal to src/train (tests and benchmarks may include it too). */
#ifndef TG_TRAIN_FUSED_H
#define TG_TRAIN_FUSED_H

#include <stdbool.h>
#include <stdint.h>

/* Work space for repeated passes over one row-major float matrix.
 *
 * The rows are cut into fixed blocks of block_rows rows (a function of d only), each block's
 * partial sums land in its own slot, and the slots are added in block order in double: the
 * result is bit-identical for every thread count. */
typedef struct lr_pass {
    const float *X; /* [n, d], contiguous */
    const float *y; /* [n], 0 or 1 */
    int64_t n, d;
    float pos_weight;
    int64_t block_rows, n_blocks, capacity_blocks;
    float *part_g;     /* capacity_blocks x (d + 1): X_b^T r, then sum r */
    double *part_loss; /* capacity_blocks: sum of the block's BCE */
} lr_pass;

/* Allocates work space for up to max_rows rows of width d; false + error on failure. */
bool lr_pass_init(lr_pass *p, int64_t max_rows, int64_t d, float pos_weight);
void lr_pass_free(lr_pass *p);
/* Points the pass at n rows (n <= the max_rows given to init). */
void lr_pass_bind(lr_pass *p, const float *X, const float *y, int64_t n);

/* Rows per block of the column statistics and of the trainer's metrics: a multiple of the
 * fused pass's block rows for width d. When the ranks of a distributed fit start at multiples of it (in the global
 * row order), every sum splits into the same blocks as in one process: bit-identical results. */
int64_t lr_align_rows(int64_t d);

/* One pass: returns the SUM over rows of BCE(x_i . w + b, y_i); when grad is not NULL it
 * receives d + 1 sums: sum_i r_i x_i (d entries) then sum_i r_i, with r_i = dBCE/dz_i.
 * w has d entries. No penalty, no division by n: callers scale. */
double lr_pass_run(lr_pass *p, const float *w, float b, double *grad);
/* lr_pass_run in two steps: the per-block partial sums, then their fold in block order onto
 * *loss and grad[0..d] (grad NULL: the loss only, which needs want_grad = false or true).
 * Folding onto zeros is lr_pass_run; onto another rank's running sums, it continues them. */
void lr_pass_blocks(lr_pass *p, const float *w, float b, bool want_grad);
void lr_pass_fold(const lr_pass *p, double *loss, double *grad);

/* Column means and standard deviations (ddof 0) of X [n, d] in double, one pass, blocked and
 * merged in a fixed order (Chan et al.'s pairwise update). */
bool lr_column_stats(const float *X, int64_t n, int64_t d, double *mean, double *std);

/* The same in steps, for a distributed fit: per-block statistics of this rank's rows, a fold of
 * the blocks in order onto a running state [count, mean (d), M2 (d)] (zeros to start; carried
 * from rank to rank by tgd_chain), and the means and deviations from the final state. */
typedef struct lr_stats {
    int64_t n, d, rows, nb;
    double *part; /* per block: d means, then d sums of squared deviations */
} lr_stats;
bool lr_stats_compute(lr_stats *s, const float *X, int64_t n, int64_t d); /* false + error */
void lr_stats_fold(const lr_stats *s, double *state);
void lr_stats_finish(const double *state, int64_t d, double *mean, double *std);
void lr_stats_free(lr_stats *s);
/* X[i, j] = (X[i, j] - mean[j]) / scale[j], in place. */
void lr_standardize(float *X, int64_t n, int64_t d, const double *mean, const double *scale);

/* z_i = b + sum_j x_ij w_j in double for every row (prediction; w already folds any
 * standardization). */
void lr_logits(const float *X, int64_t n, int64_t d, const double *w, double b, float *z);

/* Sets "fn: X[i, j] = v is not finite" for the first NaN or infinite value of the n rows of X
 * (row numbers counted from row0; NaN passes when nan_ok, a gap still to be filled) and returns
 * true; false when every value is finite. */
bool lr_name_non_finite(const char *fn, const float *X, int64_t n, int64_t d, int64_t row0,
                        bool nan_ok);

#endif
