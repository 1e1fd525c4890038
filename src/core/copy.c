/* Copying between tensors of one shape and any strides: the walk behind tg_contiguous, clones
 * and tg_copy_to. */
#include "../../kernels/kernels.h"
#include "parallel.h"
#include "tensor.h"

static void copy_run(void *ctx, float *const *p, const int64_t *s, int64_t n)
{
    (void)ctx;
    if (s[0] == 1 && s[1] == 1) {
        tg_kern()->copy(p[1], p[0], n);
        return;
    }
    if (s[0] == 1 && s[1] == 0) { /* a broadcast value, as a uniform gradient becomes */
        tg_kern()->fill(p[0], p[1][0], n);
        return;
    }
    for (int64_t i = 0; i < n; i++)
        p[0][i * s[0]] = p[1][i * s[1]];
}

/* Runs shorter than this are copied by a plain loop rather than one kernel call each. */
#define SHORT_RUN 16

/* Blocks of runs (tg_iter_rows): a view with short rows (two columns narrowed out of four) is
 * many runs of a few floats, and a call and a walker step per run made copying a [1M, 2] slice
 * of a [1M, 4] matrix take 8.7 ms, 4.5 times PyTorch's time. */
static void copy_rows(void *ctx, float *const *p, const int64_t *s, int64_t n, const int64_t *rs,
                      int64_t rows)
{
    float *y = p[0];
    const float *x = p[1];
    if (s[0] == 1 && s[1] == 1 && n < SHORT_RUN) {
        for (int64_t r = 0; r < rows; r++)
            for (int64_t i = 0; i < n; i++)
                y[r * rs[0] + i] = x[r * rs[1] + i];
        return;
    }
    for (int64_t r = 0; r < rows; r++)
        copy_run(ctx, (float *const[2]){y + r * rs[0], p[1] + r * rs[1]}, s, n);
}

/* ---- transposes ----
 * A transposed source walked in the destination's order reads one element per cache line and
 * touches a new page every few reads: copying a [32, 512K] transpose of a contiguous [512K, 32]
 * that way took 121 ms on one thread. Square tiles instead: each reads T short columns of the
 * source and writes T short rows of the destination. The transpose kernels move every cache
 * line of a tile once, so a tile need not fit L1; a taller one reads more of each source page
 * per visit (T floats of a column, one page when the rows are 4 KB or more apart): a 4096^2
 * transpose (one thread, AVX-512) took 30 ms with T = 32, 20 with 64, 15 to 18 with 128. */
#define TILE 128

typedef struct {
    float *dst;        /* element (r, c) at dst[r * dld + c] */
    const float *src;  /* element (r, c) at src[r + c * ld] */
    int64_t rows, cols, ld, dld;
    int64_t col_tiles; /* tiles across a row of tiles */
} transpose_job;

/* Each tile is one call of the family's transpose kernel: the source tile, read along its
 * dense dim, is the kernel's row-major x, and the destination tile its y. */
static void transpose_tiles(void *ctx, int64_t t0, int64_t t1)
{
    const transpose_job *j = ctx;
    const tg_kernels *k = tg_kern();
    for (int64_t t = t0; t < t1; t++) {
        int64_t r0 = t / j->col_tiles * TILE, c0 = t % j->col_tiles * TILE;
        int64_t nr = r0 + TILE < j->rows ? TILE : j->rows - r0;
        int64_t nc = c0 + TILE < j->cols ? TILE : j->cols - c0;
        k->transpose(j->src + c0 * j->ld + r0, j->ld, j->dst + r0 * j->dld + c0, j->dld, nc, nr);
    }
}

/* One matrix per run of the outer walk (the batch dims); ctx holds the matrix geometry. */
static void transpose_run(void *ctx, float *const *p, const int64_t *s, int64_t n)
{
    transpose_job j = *(const transpose_job *)ctx;
    int64_t tiles = (j.rows + TILE - 1) / TILE * j.col_tiles;
    for (int64_t i = 0; i < n; i++) {
        j.dst = p[0] + i * s[0];
        j.src = p[1] + i * s[1];
        tg_parallel_tasks(tiles, (tg_parallel_grain() + TILE * TILE - 1) / (TILE * TILE),
                          transpose_tiles, &j);
    }
}

/* Does dst run with stride 1 along its last dim b while src runs with stride 1 along another
 * dim a (a transpose, or any permutation that moves src's dense dim)? The plain walk, in dst's
 * order, would then read src one element per cache line; instead the [a, b] planes are copied
 * by tiles and the other dims walked outside them. */
static bool copy_transposed(tg_tensor *dst, const tg_tensor *src)
{
    int b = src->ndim - 1, a = -1;
    if (b < 1 || dst->strides[b] != 1 || src->shape[b] < 2 || src->strides[b] == 1)
        return false;
    for (int d = 0; d < b && a < 0; d++)
        if (src->strides[d] == 1 && src->shape[d] >= 2)
            a = d;
    if (a < 0 || src->strides[b] < src->shape[a] || dst->strides[a] < dst->shape[b])
        return false;
    transpose_job j = {.rows = src->shape[a],
                       .cols = src->shape[b],
                       .ld = src->strides[b],
                       .dld = dst->strides[a]};
    j.col_tiles = (j.cols + TILE - 1) / TILE;
    int64_t shape[TG_MAX_DIMS], dstr[TG_MAX_DIMS], sstr[TG_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < b; d++)
        if (d != a) {
            shape[n] = src->shape[d];
            dstr[n] = dst->strides[d];
            sstr[n++] = src->strides[d];
        }
    float *base[2] = {tg_ptr(dst), tg_ptr(src)};
    const int64_t *strides[2] = {dstr, sstr};
    tg_iter(2, n, shape, base, strides, transpose_run, &j);
    return true;
}

/* dst and src have the same shape; any strides. */
void tg_copy_strided(tg_tensor *dst, const tg_tensor *src)
{
    if (copy_transposed(dst, src))
        return;
    float *base[2] = {tg_ptr(dst), tg_ptr(src)};
    const int64_t *strides[2] = {dst->strides, src->strides};
    tg_iter_rows(2, dst->ndim, dst->shape, base, strides, copy_rows, NULL);
}
