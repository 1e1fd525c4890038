/* The distributed API (include/tapegrad/dist.h) across the ranks of `mpirun -np K`, or in a
 * world of one (plain run, or a build without MPI):
 *   tg_dist_allreduce_grads averages gradients, refuses a missing gradient on any one rank
 *   (every rank fails, none changes anything) and mismatched parameter lists;
 *   tg_dist_allreduce_sum and tg_dist_agree;
 *   tg_logreg_fit_distributed on rows split unevenly (some rank may have none) agrees with
 *   tg_logreg_fit on all rows, and is bit-identical with block-aligned splits; it refuses the
 *   solvers and the validation split it does not support, and rows on no rank at all.
 *
 *   mpirun -np K test_dist [K]       (K: the expected number of ranks)
 *
 * No cmocka here: a failed check must not end one rank early, or the others would wait for it
 * in the next collective. Checks are counted and every rank exits 1 if any failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"
#include "train/fused.h"

static int failures;
static int rank, size;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: %s:%d: CHECK(%s) failed (last error: %s)\n", rank, __FILE__, \
                    __LINE__, #cond, tg_last_error());                                             \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

/* A leaf of the given shape whose gradient is c (a backward of sum(p * c)). */
static tg_tensor *param_with_grad(int ndim, const int64_t *shape, const float *c)
{
    tg_tensor *p = tg_requires_grad_(tg_ones(ndim, shape), true);
    tg_tensor *ct = tg_from_data(c, ndim, shape);
    tg_tensor *pc = tg_mul(p, ct);
    tg_tensor *l = tg_sum(pc);
    CHECK(tg_backward(l, NULL, false) == TG_OK);
    tg_release(l), tg_release(pc), tg_release(ct);
    return p;
}

static void test_allreduce_grads(void)
{
    const int64_t ws[2] = {3, 2}, bs[1] = {4};
    float wc[6], bc[4];
    for (int j = 0; j < 6; j++)
        wc[j] = (float)(rank + 1) + 0.5f * (float)j;
    for (int j = 0; j < 4; j++)
        bc[j] = -(float)rank * (float)(j + 1);
    tg_tensor *params[2] = {param_with_grad(2, ws, wc), param_with_grad(1, bs, bc)};
    CHECK(tg_dist_allreduce_grads(params, 2) == TG_OK);
    const float *gw = tg_data(tg_grad(params[0])), *gb = tg_data(tg_grad(params[1]));
    double mean_r = (size - 1) / 2.0; /* mean of rank over the ranks */
    for (int j = 0; j < 6; j++)
        CHECK(gw[j] == (float)(mean_r + 1.0 + 0.5 * j));
    for (int j = 0; j < 4; j++)
        CHECK(gb[j] == (float)(-mean_r * (j + 1)));

    /* The last rank has no gradient for params[1]: every rank fails, nothing changes. */
    float before = gw[0];
    if (rank == size - 1)
        tg_grad_reset(params[1]);
    CHECK(tg_dist_allreduce_grads(params, 2) == TG_EINVAL);
    CHECK(tg_dist_failed_rank() == size - 1);
    if (rank == size - 1)
        CHECK(strstr(tg_last_error(), "params[1] has no gradient") != NULL);
    else
        CHECK(strstr(tg_last_error(), "failed") != NULL);
    CHECK(gw[0] == before);

    /* Rank 0 passes one parameter more than the others. */
    if (size > 1) {
        tg_tensor *one[2] = {params[0], params[0]};
        CHECK(tg_dist_allreduce_grads(one, rank == 0 ? 2 : 1) == TG_ESHAPE);
        CHECK(tg_dist_failed_rank() == 0);
        CHECK(gw[0] == before);
    }
    /* The same number of values in other shapes: [3, 2] against [2, 3], and sizes {6, 4}
     * against {4, 6}. Summed entry by entry, they would mix up the parameters. */
    if (size > 1) {
        const int64_t ts[2] = {2, 3}, ss[1] = {6};
        float c[6] = {1, 2, 3, 4, 5, 6};
        tg_tensor *t = param_with_grad(2, rank == 0 ? ws : ts, c);
        float t0 = tg_data(tg_grad(t))[0];
        CHECK(tg_dist_allreduce_grads(&t, 1) == TG_ESHAPE);
        CHECK(tg_dist_failed_rank() == 0);
        CHECK(tg_data(tg_grad(t))[0] == t0);
        tg_tensor *u = param_with_grad(1, ss, c), *v = param_with_grad(1, bs, c);
        tg_tensor *swapped[2] = {rank == 0 ? u : v, rank == 0 ? v : u};
        CHECK(tg_dist_allreduce_grads(swapped, 2) == TG_ESHAPE);
        CHECK(strstr(tg_last_error(), "shapes") != NULL);
        CHECK(tg_data(tg_grad(u))[0] == c[0] && tg_data(tg_grad(v))[0] == c[0]);
        tg_release(t), tg_release(u), tg_release(v);
    }
    tg_release(params[0]), tg_release(params[1]);
}

static void test_sum_and_agree(void)
{
    double v[2] = {rank, 1.0};
    CHECK(tg_dist_allreduce_sum(v, 2) == TG_OK);
    CHECK(v[0] == size * (size - 1) / 2.0 && v[1] == size);
    CHECK(tg_dist_agree(TG_OK) == TG_OK && tg_dist_failed_rank() == -1);
    tg_status mine = rank == size / 2 ? TG_EIO : TG_OK;
    CHECK(tg_dist_agree(mine) == TG_EIO);
    CHECK(tg_dist_failed_rank() == size / 2);
    /* a success clears the message the failure left */
    CHECK(tg_dist_allreduce_sum(v, 2) == TG_OK && tg_last_error()[0] == '\0');
    CHECK(tg_dist_agree(mine) == TG_EIO);
    CHECK(tg_dist_agree(TG_OK) == TG_OK && tg_last_error()[0] == '\0');
    /* a value that is no status is refused, with the rank that passed it */
    mine = rank == size - 1 ? (tg_status)99 : TG_OK;
    CHECK(tg_dist_agree(mine) == TG_EINVAL && tg_dist_failed_rank() == size - 1);
    CHECK(tg_dist_agree(rank == 0 ? (tg_status)-1 : TG_OK) == TG_EINVAL);
    CHECK(tg_dist_failed_rank() == 0);
    /* counts that differ between ranks: every rank fails, nothing is summed (MPI would have
     * aborted the job, or left a rank waiting) */
    if (size > 1) {
        double w[3] = {1, 2, 3};
        CHECK(tg_dist_allreduce_sum(w, rank == 0 ? 3 : 2) == TG_ESHAPE);
        CHECK(strstr(tg_last_error(), "disagree on n (2 to 3)") != NULL);
        CHECK(w[0] == 1 && w[1] == 2 && w[2] == 3);
        CHECK(tg_dist_allreduce_sum(w, rank == 0 ? 3 : 0) == TG_ESHAPE);
    }
}

/* ---- distributed fit --------------------------------------------------------------------- */

enum { N = 30000, D = 8 };

/* The same synthetic rows on every rank: features of different scales, labels from a logistic
 * model of them. */
static void make_rows(float *X, float *y)
{
    uint64_t s = 42;
    for (int i = 0; i < N; i++) {
        double z = 0.3;
        for (int j = 0; j < D; j++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            double u = (double)(s >> 11) / 9007199254740992.0 - 0.5;
            X[i * D + j] = (float)(u * (j + 1) + j);
            z += u * (j % 3 - 1) * 2.0;
        }
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        y[i] = (double)(s >> 11) / 9007199254740992.0 < 1.0 / (1.0 + exp(-z)) ? 1.0f : 0.0f;
    }
}

/* Fits on rows [lo, hi) of this rank and compares with the single-process model. */
static void fit_slice(const float *X, const float *y, int64_t lo, int64_t hi,
                      const tg_logreg_options *o, const tg_logreg_model *ref,
                      const tg_logreg_result *rr, bool exact)
{
    int64_t xs[2] = {hi - lo, D}, ys[1] = {hi - lo};
    tg_tensor *Xt = tg_from_data(X + lo * D, 2, xs), *yt = tg_from_data(y + lo, 1, ys);
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    tg_logreg_result r;
    CHECK(tg_logreg_fit_distributed(Xt, yt, o, &m, &r) == TG_OK);
    CHECK(r.iterations == rr->iterations && r.n_train == N);
    CHECK(fabs(r.train_metrics.log_loss - rr->train_metrics.log_loss) <= 1e-6);
    CHECK(fabs(r.train_metrics.auc - rr->train_metrics.auc) <= 1e-5);
    CHECK(!exact || (r.train_metrics.tp == rr->train_metrics.tp &&
                     r.train_metrics.auc == rr->train_metrics.auc));
    for (int j = 0; j < D && m.weights; j++) {
        CHECK(fabs(m.weights[j] - ref->weights[j]) <= 1e-5);
        CHECK(!exact || m.weights[j] == ref->weights[j]);
    }
    CHECK(!exact || (m.bias == ref->bias && r.objective == rr->objective));
    tg_logreg_result_free(&r);
    tg_logreg_model_free(&m);
    tg_release(Xt), tg_release(yt);
}

static void test_fit(void)
{
    float *X = malloc(sizeof(float) * N * D), *y = malloc(sizeof(float) * N);
    make_rows(X, y);
    int64_t xs[2] = {N, D}, ys[1] = {N};
    tg_tensor *Xt = tg_from_data(X, 2, xs), *yt = tg_from_data(y, 1, ys);
    tg_logreg_options o;
    tg_logreg_options_init(&o);
    tg_logreg_model ref;
    tg_logreg_model_init(&ref);
    tg_logreg_result rr;
    CHECK(tg_logreg_fit(Xt, yt, &o, &ref, &rr) == TG_OK);

    /* Uneven, unaligned: rank r gets rows [N r^2 / k^2, N (r+1)^2 / k^2). */
    int64_t lo = (int64_t)N * rank * rank / (size * size);
    int64_t hi = (int64_t)N * (rank + 1) * (rank + 1) / (size * size);
    fit_slice(X, y, lo, hi, &o, &ref, &rr, size == 1);
    /* Block-aligned (as tg_dist_csv_read hands rows out), the last rank taking the rest, and
     * rank 0 empty when there are several: bit-identical. */
    int64_t unit = lr_align_rows(D);
    lo = size == 1 ? 0 : rank == 0 ? 0 : (rank - 1) * unit;
    hi = size == 1 ? N : rank == 0 ? 0 : rank == size - 1 ? N : rank * unit;
    if (hi > N)
        hi = N;
    if (lo > hi)
        lo = hi;
    fit_slice(X, y, lo, hi, &o, &ref, &rr, true);
    /* Gradient descent with fixed steps, too. */
    tg_logreg_options g = o;
    g.solver = TG_SOLVER_GD;
    g.max_iter = 30;
    tg_logreg_model gm;
    tg_logreg_model_init(&gm);
    tg_logreg_result gr;
    CHECK(tg_logreg_fit(Xt, yt, &g, &gm, &gr) == TG_OK);
    fit_slice(X, y, lo, hi, &g, &gm, &gr, true);
    tg_logreg_result_free(&gr);
    tg_logreg_model_free(&gm);

    /* Refusals, on every rank alike. */
    tg_logreg_options bad = o;
    bad.solver = TG_SOLVER_ADAM;
    tg_logreg_model m;
    tg_logreg_model_init(&m);
    CHECK(tg_logreg_fit_distributed(Xt, yt, &bad, &m, NULL) == TG_EUNSUPPORTED);
    CHECK(tg_dist_failed_rank() == 0);
    bad = o;
    bad.val_split = 0.2; /* the split would have to be drawn across ranks */
    CHECK(tg_logreg_fit_distributed(Xt, yt, &bad, &m, NULL) == TG_EUNSUPPORTED);
    CHECK(strstr(tg_last_error(), "a validation split is not supported") != NULL);
    /* rows on no rank at all: refused on every rank alike */
    int64_t none[2] = {0, D}, none_y = 0;
    tg_tensor *X0 = tg_zeros(2, none), *y0 = tg_zeros(1, &none_y);
    CHECK(tg_logreg_fit_distributed(X0, y0, &o, &m, NULL) == TG_ESHAPE);
    CHECK(strstr(tg_last_error(), "no rank has any rows") != NULL);
    tg_release(X0), tg_release(y0);
    /* One rank brings a bad label: it is the one to say so. */
    float keep = y[0];
    if (rank == size - 1)
        tg_data(yt)[0] = 0.5f;
    CHECK(tg_logreg_fit_distributed(Xt, yt, &o, &m, NULL) == TG_EINVAL);
    CHECK(tg_dist_failed_rank() == size - 1);
    char want[64]; /* the row's index among every rank's rows (each rank passed N rows) */
    snprintf(want, sizeof want, "y[%lld] = 0.5", (long long)(size - 1) * N);
    CHECK(rank != size - 1 || strstr(tg_last_error(), want) != NULL);
    /* named as the function called, though the check is the single-process fit's */
    CHECK(rank != size - 1 || strncmp(tg_last_error(), "tg_logreg_fit_distributed: ", 27) == 0);
    tg_data(yt)[0] = keep;
    tg_logreg_model_free(&m);

    tg_logreg_result_free(&rr);
    tg_logreg_model_free(&ref);
    tg_release(Xt), tg_release(yt);
    free(X), free(y);
}

int main(int argc, char **argv)
{
    if (tg_dist_init() != TG_OK) {
        fprintf(stderr, "tg_dist_init: %s\n", tg_last_error());
        return 1;
    }
    rank = tg_dist_rank();
    size = tg_dist_size();
    if (argc > 1)
        CHECK(size == atoi(argv[1]));
    CHECK(rank >= 0 && rank < size);
    test_allreduce_grads();
    test_sum_and_agree();
    test_fit();
    /* Every rank learns whether any check failed anywhere. */
    double bad = failures;
    tg_dist_allreduce_sum(&bad, 1);
    tg_dist_finalize();
    if (rank == 0)
        printf("test_dist: %d rank%s, %s\n", size, size == 1 ? "" : "s",
               bad > 0 ? "FAILED" : "all checks passed");
    return bad > 0 ? 1 : 0;
}
