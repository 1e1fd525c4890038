/* Data-parallel training across processes and machines on MPI. Included by tapegrad.h.
 *
 * Each process (an MPI rank, started by `mpirun -np K ...`) holds a share of the training rows;
 * the ranks compute their partial sums and combine them, so every rank ends up with the same
 * model. Only the library talks to MPI: this header needs no <mpi.h>.
 *
 * Every function here exists in every build. A build without MPI (TAPEGRAD_MPI=OFF), or a
 * process where MPI was never initialized, is a world of one: rank 0, size 1, reductions leave
 * their input as it is and return TG_OK, tg_dist_csv_read reads the whole file and
 * tg_logreg_fit_distributed fits on the local rows.
 *
 * Collective calls (marked so) must be made by every rank, in the same order, with the same
 * options. None of them aborts or hangs on bad input: when some rank fails (a bad row, a missing
 * file, out of memory), every rank returns that failure. Only the rank that saw it has the
 * message in tg_last_error(); the others say which rank failed. A program prints its error
 * once with
 *
 *     if (st != TG_OK && tg_dist_failed_rank() == tg_dist_rank()) fprintf(stderr, ...);
 *
 * Typical use (a custom training loop):
 *
 *     tg_dist_init();
 *     ... forward and tg_backward on this rank's batch ...
 *     tg_dist_allreduce_grads(params, n_params);    // every rank now has the mean gradient
 *     ... optimizer step (identical on every rank) ...
 *     tg_dist_finalize();
 */
#ifndef TAPEGRAD_DIST_H
#define TAPEGRAD_DIST_H

#include "tapegrad.h" /* a no-op when tapegrad.h includes this header */

#ifdef __cplusplus
extern "C" {
#endif
#ifdef __GNUC__
#pragma GCC visibility push(default)
#endif

/* ---- Set-up ------------------------------------------------------------------------------ */
/* True when the library was built with MPI (CMake option TAPEGRAD_MPI). */
bool tg_dist_available(void);
/* Initializes MPI (thread level FUNNELED: only the calling thread talks to MPI) unless the
 * program already did, and gives the library its own communicator (a duplicate of
 * MPI_COMM_WORLD, so its messages never mix with the program's). Collective; calling it again
 * does nothing. Without MPI: TG_OK. */
tg_status tg_dist_init(void);
/* Frees the communicator and, when tg_dist_init started MPI, finalizes it. Collective. */
tg_status tg_dist_finalize(void);
/* This process's rank in [0, size) and the number of ranks (those of MPI_COMM_WORLD); 0 and 1
 * while MPI is not initialized, and in a build without MPI. */
int tg_dist_rank(void);
int tg_dist_size(void);
/* After a collective call returned an error: the rank whose error it is (the lowest rank that
 * failed), so that exactly one rank prints it. -1 after a success. Thread-local, like
 * tg_last_error. */
int tg_dist_failed_rank(void);

/* ---- Collectives ------------------------------------------------------------------------- */
/* Agrees on a local outcome: returns TG_OK when every rank passed TG_OK (and clears the last
 * error), else the status of the lowest rank that did not (its own message is kept on that
 * rank; the other ranks get "rank R failed"). A value that is not a tg_status counts as that
 * rank's TG_EINVAL. Collective. Use it after any local step that may fail, before the next
 * collective call, so a failure never leaves the other ranks waiting. */
tg_status tg_dist_agree(tg_status local);
/* values[0..n) = the sum over the ranks, in place. The sum is taken in a fixed order, so every
 * rank gets the same bits and a run gives the same result for the same rank count. Every rank
 * must pass the same n: counts that differ make every rank return TG_ESHAPE, nothing summed. */
tg_status tg_dist_allreduce_sum(double *values, int64_t n);
/* Averages the gradients of n parameters across the ranks, in place: every param's grad becomes
 * (sum over ranks) / size, summed in double. Every rank must pass the same parameters (same
 * shapes, same order), each with a gradient (tg_backward has run): a parameter without a
 * gradient on some rank makes every rank return TG_EINVAL without changing anything (a missing
 * gradient is not silently taken as zero), and parameters of other counts or shapes make every
 * rank return TG_ESHAPE, also unchanged. Collective. */
tg_status tg_dist_allreduce_grads(tg_tensor **params, int n);

/* ---- Distributed data and training ------------------------------------------------------- */
/* Reads this rank's share of a CSV file. Collective. Every rank reads the preamble and header
 * (and the first rows, to detect the delimiter) from the start of the file, then the rows that
 * start in its own byte range of the file, so no rank reads the whole file. Row boundaries
 * inside quoted fields (a quoted field may contain line breaks) are found exactly: the ranks
 * exchange the count of quote characters before their ranges. Rows are handed out in whole
 * blocks of the trainer (see tg_logreg_fit_distributed): a rank may read a few rows past its
 * range and leave a few at its start to the rank before. With TG_MISSING_DROP, when rows were
 * dropped, the rows left are handed out again in whole blocks (some move to another rank).
 * Rank r's rows come after rank r-1's in the file. out->rows is this rank's row count;
 * out->rows_dropped counts the rows dropped from this rank's part of the file.
 *
 * Errors carry the file's global line numbers ("FILE:LINE:COL: message"). Not supported (the
 * statistic needs every row): TG_MISSING_MEAN; read with TG_MISSING_KEEP instead and fit with
 * tg_logreg_options.fill_missing, which takes the means over every rank's rows. With opt->positive,
 * a third label value is detected across ranks as well. path must be a regular file, readable by
 * every rank (a shared file system on a cluster). */
tg_status tg_dist_csv_read(const char *path, const tg_csv_options *opt, tg_csv_data *out);

/* tg_logreg_fit on the union of every rank's rows, in rank order: X [n_r, d] and y [n_r] are
 * this rank's rows (n_r may be 0 on some ranks). Collective; every rank must pass the same
 * options and gets the same model and result (result->n_train counts every rank's rows).
 *
 * Standardization statistics, every loss and gradient evaluation and the final metrics are
 * reductions over the ranks, taken in rank order. With rows as tg_dist_csv_read hands them out
 * (in whole blocks), the model is bit-identical to single-process tg_logreg_fit on the whole
 * file; with other splits it agrees to rounding. Solvers: lbfgs and gd (TG_EUNSUPPORTED for
 * sgd and adam, and for val_split > 0). */
tg_status tg_logreg_fit_distributed(tg_tensor *X, tg_tensor *y, const tg_logreg_options *opt,
                                    tg_logreg_model *model, tg_logreg_result *result);

#ifdef __GNUC__
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif
