/* torch.matmul: 1-D and 2-D products and batched N-d products with broadcast batch dims.
 *
 * Every case is lifted to one batched form, a [..., M, K] @ b [..., K, N]: a 1-D left operand
 * becomes [1, K], a 1-D right operand [K, 1], and the lifted dims are dropped from the result.
 * Transposed views reach BLAS as a transpose flag plus a leading dimension (no copy); one value
 * broadcast (the gradient of a sum) reaches the tiles as leading dimension 0; other strides are
 * copied once. Large matrices go to tg_sgemm_ (gemm.c: OpenBLAS, or the kernel table's
 * tiles where OpenBLAS's kernels fall below the family's); batches of small ones go to the kernel
 * table's gemm_small, threaded across the batch, because a BLAS call per tiny matrix costs more
 * than its arithmetic, and so do products with two small dims of three, cut into small ones
 * (tall(), deep()), where sgemm runs far below its speed. Products with one output column (matrix @
 * vector, vector . vector) are dots of rows with the vector, done with the table's dot on the
 * thread pool: OpenBLAS's sgemm with N = 1 runs far below memory speed there (see DOT_BLOCK and
 * MV_MIN_K). */
#include <stdatomic.h>
#include <string.h>

#include "../core/parallel.h"
#include "ops.h"

#define SMALL_DIM 64

/* How to read the matrices (last two dims) of a tensor: base pointer, transpose flag and
 * leading dimension; `copy` owns a dense copy when the strides were not BLAS-compatible.
 * `uniform`: each matrix is one value broadcast (the gradient of a sum), ld 0, read as such by
 * tg_sgemm_'s tiles; other paths get a dense copy (see sgemm_route). */
typedef struct {
    const float *p;
    bool trans, uniform;
    int64_t ld;
    tg_tensor *copy;
    const int64_t *strides; /* of the tensor actually read (t or copy) */
} mat_operand;

static bool classify(const tg_tensor *t, mat_operand *op)
{
    int nd = t->ndim;
    int64_t r = t->shape[nd - 2], c = t->shape[nd - 1];
    int64_t rs = t->strides[nd - 2], cs = t->strides[nd - 1];
    op->p = tg_ptr(t);
    op->strides = t->strides;
    /* Strides of size-1 dims carry no information: pick ones BLAS accepts. */
    int64_t row_ld = r == 1 ? (c > 1 ? c : 1) : rs;
    if ((c == 1 || cs == 1) && row_ld >= (c > 1 ? c : 1)) {
        op->trans = false;
        op->ld = row_ld;
        return true;
    }
    int64_t col_ld = c == 1 ? (r > 1 ? r : 1) : cs;
    if ((r == 1 || rs == 1) && col_ld >= (r > 1 ? r : 1)) {
        op->trans = true;
        op->ld = col_ld;
        return true;
    }
    return false;
}

/* Is each matrix of t one value: strides 0 in its last two dims? */
static bool matrix_uniform(const tg_tensor *t)
{
    int nd = t->ndim;
    return (t->strides[nd - 2] == 0 || t->shape[nd - 2] == 1) &&
           (t->strides[nd - 1] == 0 || t->shape[nd - 1] == 1);
}

static bool as_operand(tg_tensor *t, mat_operand *op)
{
    op->copy = NULL;
    op->uniform = false;
    if (classify(t, op))
        return true;
    if (matrix_uniform(t) && tg_sgemm_fills_uniform_()) {
        op->p = tg_ptr(t);
        op->strides = t->strides;
        op->trans = false;
        op->ld = 0;
        op->uniform = true;
        return true;
    }
    op->copy = tg_contiguous_copy(t);
    return op->copy && classify(op->copy, op);
}

typedef struct {
    int64_t M, N, K, batch;
    int nb; /* batch dims */
    int64_t bshape[TG_MAX_DIMS], astr[TG_MAX_DIMS], bstr[TG_MAX_DIMS];
    mat_operand A, B;
    float *C;
    int64_t rows;       /* rows of a matrix per task (gemm_task) */
    atomic_bool failed; /* a task could not run its product (error set) */
} bmm_job;

/* Offsets of matrix number `index` of the batch in A and B (row-major batch order). */
static void batch_offsets(const bmm_job *j, int64_t index, int64_t *oa, int64_t *ob)
{
    *oa = *ob = 0;
    for (int d = j->nb - 1; d >= 0; d--) {
        int64_t i = index % j->bshape[d];
        index /= j->bshape[d];
        *oa += i * j->astr[d];
        *ob += i * j->bstr[d];
    }
}

/* The tasks of a product: each matrix of the batch is cut into blocks of rows (all of it unless
 * it is tall, see tall()), and task t is block t % blocks of matrix t / blocks. */
static int64_t row_blocks(const bmm_job *j)
{
    return (j->M + j->rows - 1) / j->rows;
}

static void gemm_task(bmm_job *j, int64_t t)
{
    int64_t blocks = row_blocks(j), index = t / blocks, i0 = t % blocks * j->rows;
    int64_t m = j->M - i0 < j->rows ? j->M - i0 : j->rows;
    int64_t oa, ob;
    batch_offsets(j, index, &oa, &ob);
    const float *a = j->A.p + oa + (j->A.trans ? i0 : i0 * j->A.ld), *b = j->B.p + ob;
    float *c = j->C + index * j->M * j->N + i0 * j->N;
    if (m <= SMALL_DIM && j->N <= SMALL_DIM && j->K <= SMALL_DIM) {
        tg_kern()->gemm_small(m, j->N, j->K, a, j->A.ld, j->A.trans, b, j->B.ld, j->B.trans, c,
                              j->N);
        return;
    }
    if (!tg_sgemm_(j->A.trans, j->B.trans, m, j->N, j->K, a, j->A.ld, b, j->B.ld, 0.0f, c, j->N))
        atomic_store(&j->failed, true);
}

static void gemm_range(void *ctx, int64_t begin, int64_t end)
{
    for (int64_t t = begin; t < end; t++)
        gemm_task(ctx, t);
}

/* A tall product, [M, K] @ [K, N] with K and N small and M not, goes to gemm_small by blocks of
 * SMALL_DIM rows on the thread pool rather than to one sgemm: every row's output is the same
 * dot of K products whatever the block, so the floats do not depend on the thread count, and
 * sgemm's packing costs more than these products. Side by side on one core of a Xeon VM
 * (OpenBLAS 0.3.21 with its Cooperlake kernels, best of 200 calls): [1024, 32] @ [32, 32]
 * 13.8 us against 22.1, [4096, 64] @ [64, 16] 64 against 98, [100000, 32] @ [32, 32] 1.5 ms
 * against 2.3, [1024, 10] @ [10, 32] a tie (5.2 against 5.4); 5-6x where OpenBLAS does not
 * know the CPU and falls back to its generic kernels. One output column goes to row_dots (see
 * MV_MIN_K); the wide counterpart (M and K small, N large) stays with sgemm, which was 10-20%
 * faster. */
static bool tall_cols(int64_t K, int64_t N)
{
    return N > 1 && N <= SMALL_DIM && K <= SMALL_DIM;
}

static bool tall(const bmm_job *j)
{
    return j->M > SMALL_DIM && tall_cols(j->K, j->N);
}

/* ---- tg_linear's product on top of its bias ---- */

typedef struct {
    const float *x, *W;
    float *y;
    int64_t rows, K, N;
} acc_job;

/* Blocks of SMALL_DIM rows: each block's product in a tile, then added to y's rows in one
 * call, so every output is bias + the same dot gemm_small gives tg_matmul. */
static void acc_blocks(void *ctx, int64_t begin, int64_t end)
{
    const acc_job *a = ctx;
    const tg_kernels *k = tg_kern();
    float tile[SMALL_DIM * SMALL_DIM];
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t i0 = blk * SMALL_DIM, m = a->rows - i0 < SMALL_DIM ? a->rows - i0 : SMALL_DIM;
        k->gemm_small(m, a->N, a->K, a->x + i0 * a->K, a->K, 0, a->W, a->K, 1, tile, a->N);
        k->add_vv(a->y + i0 * a->N, tile, a->y + i0 * a->N, m * a->N);
    }
}

bool tg_gemm_nt_acc(const float *x, const float *W, float *y, int64_t rows, int64_t K, int64_t N)
{
    if (rows == 0 || N == 0 || K == 0)
        return true;
    if (tall_cols(K, N)) { /* tall (or small): as tg_matmul runs it */
        acc_job a = {x, W, y, rows, K, N};
        tg_parallel_tasks((rows + SMALL_DIM - 1) / SMALL_DIM,
                          tg_parallel_grain() / (SMALL_DIM * N * K) + 1, acc_blocks, &a);
        return true;
    }
    return tg_sgemm_(false, true, rows, N, K, x, K, W, K, 1.0f, y, N);
}

/* ---- deep products: few rows and columns, a long inner dimension ---- */

/* [M, K] @ [K, N] with M and N at most SMALL_DIM and K longer (the gradient of a layer's weight,
 * x^T @ g, over a batch): gemm_small over K in slices of SMALL_DIM, the slices' products added
 * in order, in parts of DEEP_PART of K that the threads share. The parts are fixed by K alone,
 * so the floats do not depend on the thread count; each output is a sum of short FMA chains,
 * closer to the exact sum than one chain over K. sgemm does these shapes well below its speed:
 * side by side on one core of a Xeon VM (OpenBLAS 0.3.21, Cooperlake kernels, best of 100),
 * [32, 100000] @ [100000, 32] 1.9 ms against 3.1, [64, 4096] @ [4096, 64] 0.25 against 0.30,
 * [10, 1024] @ [1024, 32] 5.2 us against 5.6; 4-5x with OpenBLAS's generic kernels. One output
 * column (matrix^T @ vector) stays with sgemm, whose gemv path was 3x faster. */
#define DEEP_PART ((int64_t)4096)

typedef struct {
    const bmm_job *j;
    int64_t parts;  /* per matrix */
    float *partial; /* [batch, parts, M, N] when parts > 1 */
} deep_job;

/* One output column of a transposed matrix, X^T @ r (the gradient of X @ w with respect to w),
 * with r a dense column: col_dots over each part, the rows of X read in memory order. sgemm
 * packed X first. One core of the Intel Xeon VM (bench_matmul's BM_matmul_xt_r beside
 * BM_cblas_sgemm_xt_r with OpenBLAS's generic kernels, medians of 5, PyTorch 1.13 in between):
 * [1M, 32]^T @ [1M, 1] 21-24 -> 8.1-9.2 ms (PyTorch 12.1-12.8), [4096, 32]^T @ [4096, 1]
 * 49 -> 7.7 us (PyTorch 25.2; sgemm with OpenBLAS's Cooperlake kernels 6.0). */
static bool col_dots_column(const bmm_job *j)
{
    return j->N == 1 && j->A.trans && (j->B.trans || j->B.ld == 1);
}

/* Few rows and columns (M > 1) over a long K. */
static bool deep_dims(int64_t M, int64_t K, int64_t N)
{
    return M <= SMALL_DIM && N <= SMALL_DIM && K > SMALL_DIM && M > 1;
}

static bool deep_shape(const bmm_job *j)
{
    return deep_dims(j->M, j->K, j->N);
}

/* Does each [M, K] @ [K, N] matrix of a product go to tg_sgemm_ whatever its operands' layout:
 * more than one column, and neither small, tall nor deep? (One column takes the dots, or
 * sgemm, by layout.) */
static bool sgemm_route(int64_t M, int64_t K, int64_t N)
{
    bool small = M <= SMALL_DIM && N <= SMALL_DIM && K <= SMALL_DIM;
    return N > 1 && !small && !(M > SMALL_DIM && tall_cols(K, N)) && !deep_dims(M, K, N);
}

static bool deep(const bmm_job *j)
{
    return deep_shape(j) && (j->N > 1 || col_dots_column(j));
}

/* dst[M, N] = the product over K rows k0 .. k0 + len of matrix pair (a, b). */
static void deep_part(const bmm_job *j, const float *a, const float *b, int64_t k0, int64_t len,
                      float *dst)
{
    const tg_kernels *kt = tg_kern();
    if (j->N == 1) { /* col_dots_column: op(B)'s column is b[k] whether B is [K, 1] or [1, K] */
        kt->col_dots(a + k0 * j->A.ld, len, j->M, j->A.ld, b + k0, dst);
        return;
    }
    float tmp[SMALL_DIM * SMALL_DIM];
    for (int64_t k = k0; k < k0 + len; k += SMALL_DIM) {
        int64_t kk = k0 + len - k < SMALL_DIM ? k0 + len - k : SMALL_DIM;
        const float *ak = a + (j->A.trans ? k * j->A.ld : k);
        const float *bk = b + (j->B.trans ? k : k * j->B.ld);
        kt->gemm_small(j->M, j->N, kk, ak, j->A.ld, j->A.trans, bk, j->B.ld, j->B.trans,
                       k == k0 ? dst : tmp, j->N);
        if (k != k0)
            kt->add_vv(dst, tmp, dst, j->M * j->N);
    }
}

static void deep_range(void *ctx, int64_t begin, int64_t end)
{
    const deep_job *d = ctx;
    const bmm_job *j = d->j;
    for (int64_t t = begin; t < end; t++) {
        int64_t index = t / d->parts, k0 = t % d->parts * DEEP_PART, oa, ob;
        batch_offsets(j, index, &oa, &ob);
        float *dst = d->parts == 1 ? j->C + index * j->M * j->N : d->partial + t * j->M * j->N;
        int64_t len = j->K - k0 < DEEP_PART ? j->K - k0 : DEEP_PART;
        deep_part(j, j->A.p + oa, j->B.p + ob, k0, len, dst);
    }
}

/* false (error set) when out of memory for the partial products */
static bool deep_product(const bmm_job *j)
{
    deep_job d = {j, (j->K + DEEP_PART - 1) / DEEP_PART, NULL};
    int64_t mn = j->M * j->N, count = j->batch * d.parts * mn;
    tg_tensor *scratch = d.parts > 1 ? tg_new(1, &count, "tg_matmul") : NULL;
    if (d.parts > 1 && !scratch)
        return false;
    d.partial = scratch ? tg_ptr(scratch) : NULL;
    tg_parallel_tasks(j->batch * d.parts, tg_parallel_grain() / (mn * SMALL_DIM) + 1, deep_range,
                      &d);
    for (int64_t i = 0; scratch && i < j->batch; i++) {
        const float *p = d.partial + i * d.parts * mn;
        float *c = j->C + i * mn;
        tg_kern()->copy(p, c, mn);
        for (int64_t q = 1; q < d.parts; q++)
            tg_kern()->add_vv(c, p + q * mn, c, mn);
    }
    tg_release(scratch);
    return true;
}

/* ---- one output column: dots ---- */

/* A vector . vector product is cut into blocks of this many products, fixed whatever the thread
 * count, so the threads can share one long dot and the result stays bit-identical: one partial
 * per block, the partials added by the table's pairwise sum in block order. 64 KB per operand
 * per block: 64 blocks for 1M floats, enough to keep 2 threads busy and few enough partials. */
#define DOT_BLOCK ((int64_t)1 << 14)
/* Below this row length a matrix @ vector is not done by a dot per row, which costs more than a
 * row of a few floats (1M floats as [M, K] @ [K] on one Zen 4 core: K = 16 dots 0.38-0.68 ms
 * against sgemm's 0.22; K = 64 a tie; K = 128 dots 0.08-0.11 against 0.20), but by row_dots,
 * the fused logistic pass's dots of 16 rows at a time (8 on AVX2). It was sgemm before, which
 * packs the matrix first when OpenBLAS has no gemv shortcut for one column: on one core of the
 * Intel Xeon VM (OpenBLAS 0.3.21, generic kernels; bench_matmul's BM_matmul_skinny beside
 * BM_cblas_sgemm_skinny, medians of 5, and PyTorch 1.13 in between), [10^6, 32] @ [32, 1]
 * 24.4-25.5 -> 6.6-7.9 ms (PyTorch 9.0-9.8), [10^5, 8] @ [8, 1] 0.69 -> 0.136 ms (PyTorch
 * 0.163), [1024, 32] @ [32, 1] 15.1 -> 2.0 us (PyTorch 12.9; sgemm with OpenBLAS's Cooperlake
 * kernels 1.8). Each output is one row's dot in an order fixed by K, whatever the thread count. */
#define MV_MIN_K 64

typedef struct {
    const float *x, *y;
    int64_t n;
    float *part;
} dot_job;

static void dot_blocks(void *ctx, int64_t begin, int64_t end)
{
    const dot_job *d = ctx;
    const tg_kernels *k = tg_kern();
    for (int64_t b = begin; b < end; b++) {
        int64_t off = b * DOT_BLOCK, len = d->n - off < DOT_BLOCK ? d->n - off : DOT_BLOCK;
        d->part[b] = k->dot(d->x + off, d->y + off, len);
    }
}

/* x . y of n floats, both contiguous, into *out; false (error set) when out of memory. */
static bool blocked_dot(const float *x, const float *y, int64_t n, float *out)
{
    int64_t blocks = (n + DOT_BLOCK - 1) / DOT_BLOCK;
    float local[64];
    tg_tensor *heap = NULL;
    dot_job d = {x, y, n, local};
    if (blocks > 64) {
        heap = tg_new(1, &blocks, "tg_matmul");
        if (!heap)
            return false;
        d.part = tg_ptr(heap);
    }
    /* As cheap per float as an add: the elementwise grain, counted in blocks. */
    tg_parallel_tasks(blocks, tg_parallel_grain() / DOT_BLOCK + 1, dot_blocks, &d);
    *out = blocks == 1 ? d.part[0] : tg_kern()->sum(d.part, blocks);
    tg_release(heap);
    return true;
}

/* Output t of a batched matrix @ vector: row t % M of matrix t / M dotted with its vector.
 * Rows shorter than MV_MIN_K go to row_dots, many rows a call; longer ones get a dot each. */
static void mv_rows(void *ctx, int64_t begin, int64_t end)
{
    const bmm_job *j = ctx;
    const tg_kernels *k = tg_kern();
    for (int64_t t = begin; t < end;) {
        int64_t oa, ob, m = t / j->M, row = t % j->M;
        int64_t last = (m + 1) * j->M < end ? (m + 1) * j->M : end;
        batch_offsets(j, m, &oa, &ob);
        const float *a = j->A.p + oa + row * j->A.ld, *x = j->B.p + ob;
        if (j->K < MV_MIN_K) {
            k->row_dots(a, last - t, j->K, j->A.ld, x, j->C + t);
            t = last;
        }
        for (; t < last; t++, a += j->A.ld)
            j->C[t] = k->dot(a, x, j->K);
    }
}

/* Makes op read a dense copy of t (a vector, or a batch of them: small). */
static bool recopy(tg_tensor *t, mat_operand *op)
{
    tg_release(op->copy);
    op->copy = tg_contiguous_copy(t);
    op->uniform = false;
    return op->copy && classify(op->copy, op);
}

/* bmm_forward's way out when an operand could not be copied (error set). */
static tg_tensor *drop_product(bmm_job *j, tg_tensor *out)
{
    tg_release(j->A.copy);
    tg_release(j->B.copy);
    tg_release(out);
    return NULL;
}

/* Batched product of lifted operands (ndim >= 2); shapes already checked. */
static tg_tensor *bmm_forward(tg_tensor *a, tg_tensor *b)
{
    bmm_job j = {.M = a->shape[a->ndim - 2], .K = a->shape[a->ndim - 1], .N = b->shape[b->ndim - 1]};
    atomic_init(&j.failed, false);
    j.nb = (a->ndim > b->ndim ? a->ndim : b->ndim) - 2;
    int64_t shape[TG_MAX_DIMS];
    j.batch = 1;
    for (int d = 0; d < j.nb; d++) {
        int ia = a->ndim - 2 - j.nb + d, ib = b->ndim - 2 - j.nb + d;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        j.bshape[d] = shape[d] = sa == 1 ? sb : sa;
        j.batch *= shape[d];
    }
    shape[j.nb] = j.M;
    shape[j.nb + 1] = j.N;
    tg_tensor *out = tg_new(j.nb + 2, shape, "tg_matmul");
    if (!out)
        return NULL;
    if (out->numel == 0)
        return out;
    if (j.K == 0) {
        tg_kern()->fill(tg_ptr(out), 0.0f, out->numel);
        return out;
    }
    if (!as_operand(a, &j.A) || !as_operand(b, &j.B))
        return drop_product(&j, out);
    bool small = j.M <= SMALL_DIM && j.N <= SMALL_DIM && j.K <= SMALL_DIM;
    /* A uniform operand stays one value only on the way to tg_sgemm_. */
    if (!sgemm_route(j.M, j.K, j.N) &&
        ((j.A.uniform && !recopy(a, &j.A)) || (j.B.uniform && !recopy(b, &j.B))))
        return drop_product(&j, out);
    /* One output column of rows that BLAS would get today: dots of contiguous rows, or
     * row_dots for rows shorter than MV_MIN_K (a transposed matrix goes to sgemm, which reads
     * it down its columns, or to col_dots: see col_dots_column). A vector on the left (M = 1)
     * counts as one row; its copy and the right vector's, when strided, are small. */
    bool dots = j.N == 1 && !small && (j.M == 1 || !j.A.trans);
    /* X^T @ r for col_dots (see col_dots_column) with a strided r: a dense copy of r, K floats
     * against the K M of X. */
    bool dense_r = j.N == 1 && j.A.trans && !j.B.trans && j.B.ld != 1 && deep_shape(&j);
    if ((dots &&
         ((j.A.trans && !recopy(a, &j.A)) || ((j.B.trans || j.B.ld != 1) && !recopy(b, &j.B)))) ||
        (dense_r && !recopy(b, &j.B)))
        return drop_product(&j, out);
    for (int d = 0; d < j.nb; d++) {
        int ia = a->ndim - 2 - j.nb + d, ib = b->ndim - 2 - j.nb + d;
        j.astr[d] = ia < 0 || a->shape[ia] == 1 ? 0 : j.A.strides[ia];
        j.bstr[d] = ib < 0 || b->shape[ib] == 1 ? 0 : j.B.strides[ib];
    }
    j.C = tg_ptr(out);
    bool ok = true;
    if (dots && j.batch == 1 && j.M == 1) {
        /* one long dot: its blocks go to the threads */
        ok = blocked_dot(j.A.p, j.B.p, j.K, j.C);
    } else if (deep(&j)) {
        ok = deep_product(&j);
    } else if (dots) {
        /* every output its own dot, the outputs spread over the threads */
        tg_parallel_tasks(j.batch * j.M, tg_parallel_grain() / j.K + 1, mv_rows, &j);
    } else {
        /* Small matrices and blocks of tall ones: threads over the tasks. Large ones: one after
         * another, each product threaded by tg_sgemm_ (the pool, or OpenBLAS's threads). */
        const bool blocks = tall(&j);
        j.rows = blocks ? SMALL_DIM : j.M;
        int64_t tasks = j.batch * row_blocks(&j);
        int64_t grain =
            small || blocks ? tg_parallel_grain() / (j.rows * j.N * j.K) + 1 : tasks + 1;
        tg_parallel_tasks(tasks, grain, gemm_range, &j);
    }
    tg_release(j.A.copy);
    tg_release(j.B.copy);
    ok = ok && !atomic_load(&j.failed);
    if (!ok)
        tg_release(out);
    return ok ? out : NULL;
}

/* ---- lifting 1-D operands ---- */

static tg_tensor *lift(tg_tensor *t, bool left)
{
    if (t->ndim != 1)
        return tg_retain(t);
    int64_t shape[2] = {left ? 1 : t->shape[0], left ? t->shape[0] : 1};
    int64_t strides[2] = {left ? t->shape[0] * t->strides[0] : t->strides[0],
                          left ? t->strides[0] : 1};
    return tg_view_of(t, 2, shape, strides, t->offset);
}

/* Drops the dims that lift() added: result shape of torch.matmul. */
static tg_tensor *unlift(tg_tensor *full, const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim != 1 && b->ndim != 1)
        return full;
    int64_t shape[TG_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < full->ndim - 2; d++)
        shape[n++] = full->shape[d];
    if (a->ndim != 1)
        shape[n++] = full->shape[full->ndim - 2];
    if (b->ndim != 1)
        shape[n++] = full->shape[full->ndim - 1];
    tg_tensor *r = tg_reshape(full, n, shape);
    tg_release(full);
    return r;
}

static tg_tensor *transpose_last(tg_tensor *t) { return tg_transpose(t, -1, -2); }

/* ---- backward: ga = g @ b^T, gb = a^T @ g, each summed over broadcast batch dims ---- */

/* x @ y, or with outer (an inner dim of 1) x * y broadcast: the one product per element that
 * PyTorch computes there, where a product with K = 1 would add it to 0 and turn -0 into +0. */
static tg_tensor *operand_grad(tg_tensor *x, tg_tensor *y, bool outer, tg_tensor *target2,
                               const tg_tensor *orig)
{
    tg_tensor *p = outer ? tg_mul(x, y) : bmm_forward(x, y);
    tg_tensor *r = p ? tg_reduce_to(p, target2->ndim, target2->shape) : NULL;
    tg_tensor *out = r ? tg_reshape(r, orig->ndim, orig->shape) : NULL;
    tg_release(p), tg_release(r);
    return out;
}

/* Do both products of the backward, g @ b^T and a^T @ g, read a uniform g as one value (each
 * matrix of it one value, both products on tg_sgemm_'s tiles)? */
static bool uniform_products(const tg_tensor *a2, const tg_tensor *b2, const tg_tensor *g2)
{
    int64_t M = a2->shape[a2->ndim - 2], K = a2->shape[a2->ndim - 1], N = b2->shape[b2->ndim - 1];
    return matrix_uniform(g2) && sgemm_route(M, N, K) && sgemm_route(K, M, N) &&
           tg_sgemm_fills_uniform_();
}

static tg_status matmul_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    /* An operand that was not saved is only needed for its shape: one value broadcast to it. */
    tg_tensor *a = n->saved[0]
                       ? tg_retain(n->saved[0])
                       : tg_uniform_grad_(0.0f, n->in_ndim[0], n->in_shape[0], n->ops->name);
    tg_tensor *b = n->saved[1]
                       ? tg_retain(n->saved[1])
                       : tg_uniform_grad_(0.0f, n->in_ndim[1], n->in_shape[1], n->ops->name);
    tg_tensor *a2 = a ? lift(a, true) : NULL, *b2 = b ? lift(b, false) : NULL;
    tg_tensor *g2 = NULL;
    if (a2 && b2) {
        /* g in the lifted (batch..., M, N) shape */
        int64_t shape[TG_MAX_DIMS];
        int nb = (a2->ndim > b2->ndim ? a2->ndim : b2->ndim) - 2;
        for (int d = 0; d < nb; d++)
            shape[d] = g->shape[d];
        shape[nb] = a2->shape[a2->ndim - 2];
        shape[nb + 1] = b2->shape[b2->ndim - 1];
        g2 = tg_reshape(g, nb + 2, shape);
    }
    if (g2 && !g2->contiguous && needs[0] && needs[1] && !uniform_products(a2, b2, g2)) {
        /* Both products would copy an expanded g (the gradient of a sum) for BLAS: copy once. */
        tg_tensor *c = tg_as_contiguous(g2);
        tg_release(g2);
        g2 = c;
    }
    /* Where PyTorch takes a gradient elementwise: a vector on the right makes torch.matmul a
     * dot (grad * other) or an mv (its matrix gradient is ger, the outer product of grad and
     * the vector), and a vector on the left of a batch is folded into an mv on the batch's
     * transpose. A vector on the left of a matrix goes to mm, a sum of products as here. */
    bool outer_a = b->ndim == 1, outer_b = a->ndim == 1 && b->ndim != 2;
    tg_status st = g2 ? TG_OK : tg_last_status();
    if (needs[0] && st == TG_OK) {
        tg_tensor *bt = transpose_last(b2);
        gin[0] = bt ? operand_grad(g2, bt, outer_a, a2, a) : NULL;
        tg_release(bt);
        st = gin[0] ? TG_OK : tg_last_status();
    }
    if (needs[1] && st == TG_OK) {
        tg_tensor *at = transpose_last(a2);
        gin[1] = at ? operand_grad(at, g2, outer_b, b2, b) : NULL;
        tg_release(at);
        st = gin[1] ? TG_OK : tg_last_status();
    }
    tg_release(a2), tg_release(b2), tg_release(g2), tg_release(a), tg_release(b);
    return st;
}

/* PyTorch names the node after the path torch.matmul takes for each rank combination. */
static const tg_node_ops MM = {"MmBackward0", matmul_backward, true};
static const tg_node_ops MV = {"MvBackward0", matmul_backward, true};
static const tg_node_ops DOT = {"DotBackward0", matmul_backward, true};
static const tg_node_ops VM = {"SqueezeBackward3", matmul_backward, true};
static const tg_node_ops BATCHED = {"UnsafeViewBackward0", matmul_backward, true};
static const tg_node_ops MAT_BATCHED = {"CloneBackward0", matmul_backward, true};
static const tg_node_ops MAT_BATCHED_T = {"TransposeBackward0", matmul_backward, true};

static const tg_node_ops *node_ops_for(const tg_tensor *a, const tg_tensor *b, const tg_tensor *out)
{
    if (a->ndim <= 2 && b->ndim <= 2)
        return a->ndim == 2 ? (b->ndim == 2 ? &MM : &MV) : (b->ndim == 2 ? &VM : &DOT);
    if (a->ndim != 2)
        return &BATCHED;
    /* matrix @ batch: PyTorch folds b's batch into one mm on b^T and returns
     * output.mT().contiguous(), which is the transpose itself when it is already contiguous
     * (one row or one column, or no elements). It does not fold a 3-D b whose last two dims
     * are transposed in memory behind a dense first dim: that goes to bmm. */
    if (b->ndim == 3 && b->strides[2] != 1 && b->strides[0] == b->shape[1] * b->shape[2])
        return &BATCHED;
    int64_t m = out->shape[out->ndim - 2], n = out->shape[out->ndim - 1];
    return m == 1 || n == 1 || out->numel == 0 ? &MAT_BATCHED_T : &MAT_BATCHED;
}

/* Both shapes for a message, formatted only on failure: an snprintf per call cost a tenth of a
 * small network's training step. */
#define SHAPE_CAP 160
static void shape_strs(const tg_tensor *a, const tg_tensor *b, char *x, char *y)
{
    tg_shape_str(x, SHAPE_CAP, a->ndim, a->shape);
    tg_shape_str(y, SHAPE_CAP, b->ndim, b->shape);
}

static bool check_shapes(const tg_tensor *a, const tg_tensor *b)
{
    char x[SHAPE_CAP], y[SHAPE_CAP];
    if (a->ndim == 0 || b->ndim == 0) {
        shape_strs(a, b, x, y);
        tg_set_error(TG_ESHAPE, "tg_matmul: both arguments need at least 1 dimension, got %s and %s",
                     x, y);
        return false;
    }
    int64_t ka = a->shape[a->ndim - 1];
    int64_t kb = b->ndim == 1 ? b->shape[0] : b->shape[b->ndim - 2];
    if (ka != kb) {
        shape_strs(a, b, x, y);
        tg_set_error(TG_ESHAPE, "tg_matmul: shapes %s and %s cannot be multiplied (%lld != %lld)",
                     x, y, (long long)ka, (long long)kb);
        return false;
    }
    for (int d = 3; d <= a->ndim || d <= b->ndim; d++) {
        int64_t sa = d <= a->ndim ? a->shape[a->ndim - d] : 1;
        int64_t sb = d <= b->ndim ? b->shape[b->ndim - d] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            shape_strs(a, b, x, y);
            tg_set_error(TG_ESHAPE,
                         "tg_matmul: batch dimensions of %s and %s are not broadcastable", x, y);
            return false;
        }
    }
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] > INT32_MAX)
            goto too_big;
    for (int i = 0; i < b->ndim; i++)
        if (b->shape[i] > INT32_MAX)
            goto too_big;
    return true;
too_big:
    shape_strs(a, b, x, y);
    tg_set_error(TG_EUNSUPPORTED, "tg_matmul: dimensions of %s and %s exceed BLAS's int range", x, y);
    return false;
}

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b)
{
    TG_API_BEGIN;
    if (!a || !b)
        TG_API_RETURN(tg_null_arg("tg_matmul"));
    if (!check_shapes(a, b))
        TG_API_RETURN(NULL);
    tg_tensor *a2 = lift(a, true), *b2 = lift(b, false);
    tg_tensor *full = a2 && b2 ? bmm_forward(a2, b2) : NULL;
    tg_release(a2), tg_release(b2);
    tg_tensor *out = full ? unlift(full, a, b) : NULL;
    if (!out)
        TG_API_RETURN(NULL);
    tg_tensor *in[2] = {a, b};
    tg_node *node = tg_record(node_ops_for(a, b, out), out, 2, in);
    if (node) {
        /* a's gradient reads b and b's reads a: save only those needed (as PyTorch does), and
         * the backward takes the other's shape from the node. */
        tg_save(node, b->requires_grad ? a : NULL);
        tg_save(node, a->requires_grad ? b : NULL);
    }
    TG_API_RETURN(tg_recorded(out, node, 2, in));
}
