/* The MPI layer: set-up, rank queries, failure agreement, and the collective helpers of comm.h.
 *
 * Every MPI call of the library is in this file, behind TG_HAVE_MPI. Without it (or before
 * tg_dist_init) the helpers take their one-rank meaning, so the distributed reader and trainer
 * run unchanged in a build without MPI. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../core/error.h"
#include "../core/tensor.h"
#include "../core/tls.h"
#include "comm.h"
#include "tapegrad/dist.h"

#ifdef TG_HAVE_MPI
#include <mpi.h>
#endif

static TG_TLS int failed_rank = -1;

int tg_dist_failed_rank(void)
{
    return failed_rank;
}

bool tg_dist_available(void)
{
#ifdef TG_HAVE_MPI
    return true;
#else
    return false;
#endif
}

#ifdef TG_HAVE_MPI

/* ---- the communicator -------------------------------------------------------------------- */

static MPI_Comm lib_comm = MPI_COMM_NULL;
static bool we_started_mpi;
static int lib_rank = 0, lib_size = 1;

/* MPI is usable: initialized and not yet finalized. */
static bool mpi_live(void)
{
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    return init && !fin;
}

/* The library's communicator, duplicated from MPI_COMM_WORLD on first use when the program set
 * MPI up itself (the collective dup is safe there: only collective calls get here). NULL when
 * MPI is not running: a world of one. */
static MPI_Comm comm(void)
{
    if (lib_comm != MPI_COMM_NULL)
        return lib_comm;
    if (!mpi_live())
        return MPI_COMM_NULL;
    MPI_Comm_dup(MPI_COMM_WORLD, &lib_comm);
    MPI_Comm_rank(lib_comm, &lib_rank);
    MPI_Comm_size(lib_comm, &lib_size);
    return lib_comm;
}

tg_status tg_dist_init(void)
{
    tg_clear_error();
    int init = 0, fin = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fin);
    if (fin)
        return tg_set_error(TG_EINVAL, "tg_dist_init: MPI was already finalized");
    if (!init) {
        int provided = 0;
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return tg_set_error(TG_EIO, "tg_dist_init: MPI_Init_thread failed");
        we_started_mpi = true;
    }
    comm();
    return TG_OK;
}

tg_status tg_dist_finalize(void)
{
    tg_clear_error();
    if (!mpi_live())
        return TG_OK;
    if (lib_comm != MPI_COMM_NULL)
        MPI_Comm_free(&lib_comm);
    lib_comm = MPI_COMM_NULL;
    lib_rank = 0;
    lib_size = 1;
    if (we_started_mpi) {
        we_started_mpi = false;
        if (MPI_Finalize() != MPI_SUCCESS)
            return tg_set_error(TG_EIO, "tg_dist_finalize: MPI_Finalize failed");
    }
    return TG_OK;
}

int tgd_rank(void)
{
    return comm() != MPI_COMM_NULL ? lib_rank : 0;
}

int tgd_size(void)
{
    return comm() != MPI_COMM_NULL ? lib_size : 1;
}

/* Rank and size answer from MPI_COMM_WORLD before the library has its communicator: they are
 * not collective, so they must not create it. */
int tg_dist_rank(void)
{
    int r = 0;
    if (lib_comm != MPI_COMM_NULL)
        return lib_rank;
    if (mpi_live())
        MPI_Comm_rank(MPI_COMM_WORLD, &r);
    return r;
}

int tg_dist_size(void)
{
    int s = 1;
    if (lib_comm != MPI_COMM_NULL)
        return lib_size;
    if (mpi_live())
        MPI_Comm_size(MPI_COMM_WORLD, &s);
    return s;
}

/* ---- agreement --------------------------------------------------------------------------- */

#define STATUS_SPAN 64 /* > every tg_status value: code = rank * STATUS_SPAN + status */

tg_status tgd_agree(tg_status local)
{
    if (tgd_size() == 1) {
        failed_rank = local == TG_OK ? -1 : 0;
        return local;
    }
    int code = local == TG_OK ? INT_MAX : lib_rank * STATUS_SPAN + (int)local;
    MPI_Allreduce(MPI_IN_PLACE, &code, 1, MPI_INT, MPI_MIN, lib_comm);
    if (code == INT_MAX) {
        failed_rank = -1;
        return TG_OK;
    }
    failed_rank = code / STATUS_SPAN;
    tg_status st = (tg_status)(code % STATUS_SPAN);
    /* A rank that failed too keeps its own message; the others learn who failed. */
    if (local == TG_OK)
        tg_set_error(st, "rank %d of %d failed (its own message says why)", failed_rank, lib_size);
    return st;
}

/* ---- moving doubles in MPI-sized pieces -------------------------------------------------- */

#define PIECE ((int64_t)1 << 28) /* elements per MPI call: counts are ints */

static void send_f64(const double *v, int64_t n, int to)
{
    for (int64_t i = 0; i < n; i += PIECE)
        MPI_Send(v + i, (int)(n - i < PIECE ? n - i : PIECE), MPI_DOUBLE, to, 1, lib_comm);
}

static void recv_f64(double *v, int64_t n, int from)
{
    for (int64_t i = 0; i < n; i += PIECE)
        MPI_Recv(v + i, (int)(n - i < PIECE ? n - i : PIECE), MPI_DOUBLE, from, 1, lib_comm,
                 MPI_STATUS_IGNORE);
}

static void bcast_f64(double *v, int64_t n, int root)
{
    for (int64_t i = 0; i < n; i += PIECE)
        MPI_Bcast(v + i, (int)(n - i < PIECE ? n - i : PIECE), MPI_DOUBLE, root, lib_comm);
}

void tgd_chain(double *state, int64_t n, tgd_fold_fn fold, void *ctx)
{
    if (tgd_size() == 1) {
        fold(state, ctx);
        return;
    }
    if (lib_rank > 0)
        recv_f64(state, n, lib_rank - 1);
    fold(state, ctx);
    if (lib_rank < lib_size - 1)
        send_f64(state, n, lib_rank + 1);
    bcast_f64(state, n, lib_size - 1);
}

/* Addition declared non-commutative: MPI then combines the ranks' values in rank order along a
 * tree fixed by the rank count, so the rounding is the same on every run. */
static void ordered_sum(void *in, void *inout, int *len, MPI_Datatype *type)
{
    (void)type;
    const double *a = in;
    double *b = inout;
    for (int i = 0; i < *len; i++)
        b[i] = a[i] + b[i];
}

void tgd_sum_f64(double *v, int64_t n)
{
    if (tgd_size() == 1 || n <= 0)
        return;
    MPI_Op op;
    MPI_Op_create(ordered_sum, 0, &op);
    for (int64_t i = 0; i < n; i += PIECE) {
        int m = (int)(n - i < PIECE ? n - i : PIECE);
        /* Reduce to rank 0 and broadcast its bits: every rank holds the very same sums. */
        MPI_Reduce(lib_rank == 0 ? MPI_IN_PLACE : v + i, v + i, m, MPI_DOUBLE, op, 0, lib_comm);
        MPI_Bcast(v + i, m, MPI_DOUBLE, 0, lib_comm);
    }
    MPI_Op_free(&op);
}

static void allreduce_i64(int64_t *v, int n, MPI_Op op)
{
    if (tgd_size() > 1 && n > 0)
        MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_INT64_T, op, lib_comm);
}

void tgd_sum_i64(int64_t *v, int n)
{
    allreduce_i64(v, n, MPI_SUM);
}

void tgd_min_i64(int64_t *v, int n)
{
    allreduce_i64(v, n, MPI_MIN);
}

void tgd_max_i64(int64_t *v, int n)
{
    allreduce_i64(v, n, MPI_MAX);
}

void tgd_exscan_i64(const int64_t *in, int64_t *out, int n)
{
    if (tgd_size() > 1)
        MPI_Exscan(in, out, n, MPI_INT64_T, MPI_SUM, lib_comm);
    if (tgd_rank() == 0) /* MPI leaves rank 0's result undefined */
        for (int i = 0; i < n; i++)
            out[i] = 0;
}

void tgd_allgather_i64(const int64_t *mine, int n, int64_t *all)
{
    if (tgd_size() == 1)
        memcpy(all, mine, (size_t)n * sizeof *all);
    else
        MPI_Allgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, lib_comm);
}

/* int counts and displacements for MPI's v-collectives; false when one does not fit. */
static bool int_counts(const int64_t *c, int k, int *counts, int *displs)
{
    int64_t off = 0;
    for (int r = 0; r < k; r++) {
        if (c[r] > INT_MAX || off > INT_MAX)
            return false;
        counts[r] = (int)c[r];
        displs[r] = (int)off;
        off += c[r];
    }
    return off <= INT_MAX;
}

bool tgd_allgather_bytes(const void *mine, int64_t len, char **all, int64_t **lens)
{
    const int k = tgd_size();
    *all = NULL;
    *lens = malloc((size_t)k * sizeof **lens);
    int *cnt = malloc((size_t)k * 2 * sizeof *cnt);
    tg_status st = *lens && cnt ? TG_OK : tg_set_error(TG_ENOMEM, "out of memory");
    if (tgd_agree(st) != TG_OK)
        goto fail;
    tgd_allgather_i64(&len, 1, *lens);
    int64_t total = 0;
    for (int r = 0; r < k; r++)
        total += (*lens)[r];
    *all = malloc((size_t)(total > 0 ? total : 1));
    if (!*all)
        st = tg_set_error(TG_ENOMEM, "out of memory gathering %lld bytes", (long long)total);
    else if (!int_counts(*lens, k, cnt, cnt + k))
        st = tg_set_error(TG_EUNSUPPORTED, "%lld bytes are too many to gather", (long long)total);
    if (tgd_agree(st) != TG_OK)
        goto fail;
    if (k == 1)
        memcpy(*all, mine, (size_t)len);
    else
        MPI_Allgatherv(mine, (int)len, MPI_BYTE, *all, cnt, cnt + k, MPI_BYTE, lib_comm);
    free(cnt);
    return true;
fail:
    free(cnt), free(*all), free(*lens);
    *all = NULL;
    *lens = NULL;
    return false;
}

bool tgd_alltoallv_u64(const uint64_t *send, const int64_t *send_counts, uint64_t **recv,
                       int64_t *recv_n)
{
    const int k = tgd_size();
    *recv = NULL;
    *recv_n = 0;
    int64_t *rc = malloc((size_t)k * sizeof *rc);
    int *ints = malloc((size_t)k * 4 * sizeof *ints); /* send counts, displs, recv counts, displs */
    tg_status st = rc && ints ? TG_OK : tg_set_error(TG_ENOMEM, "out of memory");
    if (tgd_agree(st) != TG_OK)
        goto fail;
    if (k > 1)
        MPI_Alltoall(send_counts, 1, MPI_INT64_T, rc, 1, MPI_INT64_T, lib_comm);
    else
        rc[0] = send_counts[0];
    int64_t total = 0;
    for (int r = 0; r < k; r++)
        total += rc[r];
    if (!int_counts(send_counts, k, ints, ints + k) ||
        !int_counts(rc, k, ints + 2 * k, ints + 3 * k))
        st = tg_set_error(TG_EUNSUPPORTED, "too many items for one MPI exchange");
    else if (!(*recv = malloc((size_t)(total > 0 ? total : 1) * sizeof **recv)))
        st = tg_set_error(TG_ENOMEM, "out of memory receiving %lld items", (long long)total);
    if (tgd_agree(st) != TG_OK)
        goto fail;
    if (k > 1)
        MPI_Alltoallv(send, ints, ints + k, MPI_UINT64_T, *recv, ints + 2 * k, ints + 3 * k,
                      MPI_UINT64_T, lib_comm);
    else
        memcpy(*recv, send, (size_t)total * sizeof **recv);
    *recv_n = total;
    free(rc), free(ints);
    return true;
fail:
    free(rc), free(ints), free(*recv);
    *recv = NULL;
    return false;
}

bool tgd_alltoallv_f32(const float *send, const int64_t *send_counts, float *recv,
                       const int64_t *recv_counts)
{
    const int k = tgd_size();
    int *ints = malloc((size_t)k * 4 * sizeof *ints); /* send counts, displs, recv counts, displs */
    tg_status st = ints ? TG_OK : tg_set_error(TG_ENOMEM, "out of memory");
    if (st == TG_OK && (!int_counts(send_counts, k, ints, ints + k) ||
                        !int_counts(recv_counts, k, ints + 2 * k, ints + 3 * k)))
        st = tg_set_error(TG_EUNSUPPORTED, "too many values for one MPI exchange");
    if (tgd_agree(st) != TG_OK) {
        free(ints);
        return false;
    }
    if (k > 1)
        MPI_Alltoallv(send, ints, ints + k, MPI_FLOAT, recv, ints + 2 * k, ints + 3 * k, MPI_FLOAT,
                      lib_comm);
    else
        memcpy(recv, send, (size_t)send_counts[0] * sizeof *recv);
    free(ints);
    return true;
}

#else /* no MPI: a world of one */

tg_status tg_dist_init(void)
{
    tg_clear_error();
    return TG_OK;
}

tg_status tg_dist_finalize(void)
{
    tg_clear_error();
    return TG_OK;
}

int tg_dist_rank(void)
{
    return 0;
}
int tg_dist_size(void)
{
    return 1;
}
int tgd_rank(void)
{
    return 0;
}
int tgd_size(void)
{
    return 1;
}

tg_status tgd_agree(tg_status local)
{
    failed_rank = local == TG_OK ? -1 : 0;
    return local;
}

void tgd_chain(double *state, int64_t n, tgd_fold_fn fold, void *ctx)
{
    (void)n;
    fold(state, ctx);
}

void tgd_sum_f64(double *v, int64_t n)
{
    (void)v, (void)n;
}
void tgd_sum_i64(int64_t *v, int n)
{
    (void)v, (void)n;
}
void tgd_min_i64(int64_t *v, int n)
{
    (void)v, (void)n;
}
void tgd_max_i64(int64_t *v, int n)
{
    (void)v, (void)n;
}

void tgd_exscan_i64(const int64_t *in, int64_t *out, int n)
{
    (void)in;
    for (int i = 0; i < n; i++)
        out[i] = 0;
}

void tgd_allgather_i64(const int64_t *mine, int n, int64_t *all)
{
    memcpy(all, mine, (size_t)n * sizeof *all);
}

bool tgd_allgather_bytes(const void *mine, int64_t len, char **all, int64_t **lens)
{
    *all = malloc((size_t)(len > 0 ? len : 1));
    *lens = malloc(sizeof **lens);
    if (!*all || !*lens) {
        free(*all), free(*lens);
        *all = NULL;
        *lens = NULL;
        tg_set_error(TG_ENOMEM, "out of memory");
        return false;
    }
    memcpy(*all, mine, (size_t)len);
    (*lens)[0] = len;
    return true;
}

bool tgd_alltoallv_u64(const uint64_t *send, const int64_t *send_counts, uint64_t **recv,
                       int64_t *recv_n)
{
    int64_t n = send_counts[0];
    *recv = malloc((size_t)(n > 0 ? n : 1) * sizeof **recv);
    *recv_n = 0;
    if (!*recv) {
        tg_set_error(TG_ENOMEM, "out of memory");
        return false;
    }
    memcpy(*recv, send, (size_t)n * sizeof **recv);
    *recv_n = n;
    return true;
}

bool tgd_alltoallv_f32(const float *send, const int64_t *send_counts, float *recv,
                       const int64_t *recv_counts)
{
    (void)recv_counts;
    memcpy(recv, send, (size_t)send_counts[0] * sizeof *recv);
    return true;
}

#endif

/* ---- public collectives ------------------------------------------------------------------ */

/* Not a status the library defines: the code that carries it to the other ranks has room for
 * these alone, and a rank number decoded from any other would be wrong. */
static bool known_status(tg_status s)
{
    return s >= TG_OK && s <= TG_EUNSUPPORTED;
}

tg_status tg_dist_agree(tg_status local)
{
    /* The error is not cleared on entry: a rank that failed keeps its own message. */
    tg_status st = local;
    if (!known_status(local))
        st = tg_set_error(TG_EINVAL, "tg_dist_agree: %d is not a tg_status", (int)local);
    st = tgd_agree(st);
    if (st == TG_OK)
        tg_clear_error(); /* every rank succeeded: no earlier message stands */
    return st;
}

tg_status tg_dist_allreduce_sum(double *values, int64_t n)
{
    tg_api_enter();
    tg_status st = TG_OK;
    if (n < 0 || (n > 0 && !values))
        st = tg_set_error(TG_EINVAL, "tg_dist_allreduce_sum: %s",
                          n < 0 ? "n is negative" : "values is NULL");
    if ((st = tgd_agree(st)) == TG_OK) {
        /* Counts that differ would make MPI truncate (and abort the job) or leave a rank
         * waiting: compare them first, one small reduction. */
        int64_t v[2] = {n, -n};
        tgd_min_i64(v, 2);
        if (v[0] != -v[1]) {
            failed_rank = 0;
            st = tg_set_error(TG_ESHAPE,
                              "tg_dist_allreduce_sum: the ranks disagree on n (%lld to %lld)",
                              (long long)v[0], (long long)-v[1]);
        }
    }
    if (st == TG_OK)
        tgd_sum_f64(values, n);
    tg_api_leave(NULL);
    return st;
}

/* The gradient of params[i] if it is a usable one: present, contiguous. */
static tg_tensor *usable_grad(tg_tensor *p, int i, tg_status *st)
{
    tg_tensor *g = p ? tg_grad(p) : NULL;
    if (*st != TG_OK)
        return NULL;
    if (!p)
        *st = tg_null_input(TG_EINVAL, "tg_dist_allreduce_grads: params[%d] is NULL", i);
    else if (!g)
        *st = tg_set_error(TG_EINVAL,
                           "tg_dist_allreduce_grads: params[%d] has no gradient (run tg_backward "
                           "first; a missing gradient is not taken as zero)",
                           i);
    else if (!tg_is_contiguous(g))
        *st = tg_set_error(TG_EINVAL,
                           "tg_dist_allreduce_grads: the gradient of params[%d] is "
                           "not contiguous",
                           i);
    return *st == TG_OK ? g : NULL;
}

/* A fingerprint of the parameters' shapes (FNV-1a over every ndim and size), kept below 2^62
 * so that it can be negated for a min/max reduction. */
static int64_t shape_hash(tg_tensor **params, int n)
{
    uint64_t h = 14695981039346656037ULL;
    for (int i = 0; i < n; i++) {
        const tg_tensor *g = tg_grad(params[i]);
        h = (h ^ (uint64_t)g->ndim) * 1099511628211ULL;
        for (int j = 0; j < g->ndim; j++)
            h = (h ^ (uint64_t)g->shape[j]) * 1099511628211ULL;
    }
    return (int64_t)(h >> 2);
}

/* Every rank must bring the same parameters, or the sums would pair up the wrong entries:
 * compare the counts and the shapes (min and max over the ranks) before moving any data. Equal
 * totals are not enough: [2, 3] against [3, 2], or sizes {2, 4} against {4, 2}, would be
 * summed entry by entry into gradients of the wrong parameters. */
static tg_status same_sizes(tg_tensor **params, int64_t total, int n, tg_status st)
{
    if ((st = tgd_agree(st)) != TG_OK)
        return st;
    int64_t h = shape_hash(params, n);
    int64_t v[6] = {total, -total, n, -(int64_t)n, h, -h};
    tgd_min_i64(v, 6);
    if (v[0] != -v[1] || v[2] != -v[3]) {
        failed_rank = 0;
        return tg_set_error(TG_ESHAPE,
                            "tg_dist_allreduce_grads: the ranks disagree on the parameters "
                            "(%lld to %lld parameters, %lld to %lld gradient values)",
                            (long long)v[2], (long long)-v[3], (long long)v[0], (long long)-v[1]);
    }
    if (v[4] != -v[5]) {
        failed_rank = 0;
        return tg_set_error(TG_ESHAPE, "tg_dist_allreduce_grads: the ranks disagree on the "
                                       "shapes of the parameters");
    }
    return TG_OK;
}

tg_status tg_dist_allreduce_grads(tg_tensor **params, int n)
{
    tg_api_enter();
    tg_status st = TG_OK;
    int64_t total = 0;
    if (n < 0 || (n > 0 && !params))
        st = tg_set_error(TG_EINVAL, "tg_dist_allreduce_grads: %s",
                          n < 0 ? "n is negative" : "params is NULL");
    for (int i = 0; st == TG_OK && i < n; i++) {
        tg_tensor *g = usable_grad(params[i], i, &st);
        total += g ? tg_numel(g) : 0;
    }
    double *buf = NULL;
    if (st == TG_OK && !(buf = malloc((size_t)(total > 0 ? total : 1) * sizeof *buf)))
        st = tg_set_error(TG_ENOMEM, "tg_dist_allreduce_grads: out of memory for %lld values",
                          (long long)total);
    if ((st = same_sizes(params, total, n, st)) == TG_OK) {
        /* Pack in double, sum in rank order, unpack the mean. */
        int64_t k = 0;
        for (int i = 0; i < n; i++) {
            tg_tensor *g = tg_grad(params[i]);
            const float *d = tg_ptr(g);
            for (int64_t j = 0; j < g->numel; j++)
                buf[k++] = d[j];
        }
        tgd_sum_f64(buf, total);
        double inv = 1.0 / (double)tgd_size();
        k = 0;
        for (int i = 0; i < n; i++) {
            tg_tensor *g = tg_grad(params[i]);
            float *d = tg_ptr(g);
            for (int64_t j = 0; j < g->numel; j++)
                d[j] = (float)(buf[k++] * inv);
            tg_bump_version(g, "tg_dist_allreduce_grads");
        }
    }
    free(buf);
    tg_api_leave(NULL);
    return st;
}
