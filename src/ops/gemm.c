/* Large matrix products: OpenBLAS's sgemm, or the kernel table's gemm_tile over packed panels
 * when OpenBLAS runs kernels below the CPU's.
 *
 * Why both: Debian's OpenBLAS picks its kernels for the CPU model at load time, and a model newer
 * than the library (OpenBLAS 0.3.21 and the Xeon of family 6 model 207 here) gets its generic
 * "Prescott" SSE kernels, 32 GFLOP/s on one core where its AVX-512 ones reach 152. The tiles
 * reach 142 there (1344^3, one core), so tapegrad uses them when OpenBLAS's kernels are below
 * the family in force, and OpenBLAS otherwise. TAPEGRAD_GEMM=blas or =tiles forces one side.
 *
 * The blocking is the usual one for packed products. For each block of NC columns and KC of
 * the inner dimension, op(B)'s block is packed once into panels of gemm_nr columns (k-major,
 * zero-padded); for each block of up to MS rows, op(A)'s block is packed into panels of gemm_mr
 * rows; then tasks of MC rows by a share of the panels run the tiles, each B panel
 * (KC x gemm_nr) staying in L1 while the MC rows of A stay in L2. Packing reads either layout:
 * a transposed operand costs nothing extra.
 *
 * Every element of C is the KC-long FMA chains of its row and column, added to C in the order of
 * the inner blocks; which thread ran a tile, or how the rows and columns were cut, does not
 * change a bit, so results do not depend on the thread count.
 *
 * An operand given with leading dimension 0 is uniform: every element is its first, as in the
 * gradient of a sum. The tiles fill its panels with that value instead of reading a matrix of
 * it, which tg_matmul's backward would otherwise write out and read twice (1024^2 on one core:
 * the write alone 0.16-0.26 ms, packing a read operand 0.4-0.5 ms a product). OpenBLAS reads
 * memory, so for it the operand is written out first. */
#include <cblas.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/parallel.h"
#include "ops.h"

#define KC       ((int64_t)256) /* inner dimension per block: a 32-column B panel is 32 KB */
#define MC       ((int64_t)192) /* rows of A per task: 192 KB packed, in L2; a multiple of every mr */
#define NC       ((int64_t)4096) /* columns of B per packed block (4 MB at KC) */
#define MS       ((int64_t)3072) /* rows of A packed at once (3 MB at KC) */
#define TILE_MAX 512             /* floats of the largest tile a family may declare */

/* ---- which side runs a product ---- */

enum { AUTO = -1, BLAS = 0, TILES = 1 };

static atomic_int forced = AUTO;    /* tg_gemm_force_ (tests) */
static int env_mode = AUTO;         /* TAPEGRAD_GEMM */
static bool blas_avx512, blas_avx2; /* OpenBLAS runs kernels of that width and FMA */
static pthread_once_t mode_once = PTHREAD_ONCE_INIT;

static bool same_name(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        char x = *a >= 'A' && *a <= 'Z' ? (char)(*a + 32) : *a;
        char y = *b >= 'A' && *b <= 'Z' ? (char)(*b + 32) : *b;
        if (x != y)
            return false;
    }
    return *a == *b;
}

static bool core_in(const char *core, const char *const *names)
{
    for (; *names; names++)
        if (same_name(core, *names))
            return true;
    return false;
}

static void read_mode(void)
{
    static const char *const wide[] = {"skylakex", "cooperlake", "sapphirerapids", NULL};
    static const char *const fma[] = {"haswell",        "zen", "skylakex", "cooperlake",
                                      "sapphirerapids", NULL};
    const char *core = openblas_get_corename();
    core = core ? core : "";
    blas_avx512 = core_in(core, wide);
    blas_avx2 = core_in(core, fma);
    const char *env = getenv("TAPEGRAD_GEMM");
    if (!env || !*env)
        return;
    if (same_name(env, "blas"))
        env_mode = BLAS;
    else if (same_name(env, "tiles"))
        env_mode = TILES;
    else
        fprintf(stderr,
                "tapegrad: warning: TAPEGRAD_GEMM=%s is neither blas nor tiles; choosing "
                "by OpenBLAS's kernels (%s)\n",
                env, core);
}

static bool use_tiles(const tg_kernels *k)
{
    pthread_once(&mode_once, read_mode); /* first, so a bad TAPEGRAD_GEMM is always reported */
    if (k->gemm_mr <= 0 || k->gemm_mr * k->gemm_nr > TILE_MAX)
        return false;
    int f = atomic_load(&forced);
    if (f != AUTO)
        return f == TILES;
    if (env_mode != AUTO)
        return env_mode == TILES;
    if (strcmp(k->name, "avx512") == 0)
        return !blas_avx512;
    return !blas_avx2;
}

const char *tg_matmul_backend(void)
{
    return use_tiles(tg_kern()) ? "tiles" : "openblas";
}

bool tg_sgemm_fills_uniform_(void)
{
    return use_tiles(tg_kern());
}

void tg_gemm_force_(int mode)
{
    atomic_store(&forced, mode < 0 ? AUTO : mode ? TILES : BLAS);
}

/* ---- packing ---- */

typedef struct {
    const tg_kernels *k;
    bool ta, tb;
    int64_t M, N, lda, ldb, ldc;
    const float *A, *B;
    float *C, *ap, *bp;
    bool accumulate;                /* add to C in this inner block */
    int64_t jc, nc, pc, kc, is, ms; /* the blocks being worked on */
    int64_t blocks, split; /* a task: one of `blocks` row blocks by one of `split` column shares */
} gemm_job;

/* y[p * ldy + i] = x[p * ldx + i] for p < n, i < len: a plain loop, as a memcpy call per run
 * of a panel (12 or 32 floats) cost more than the copy (4% of a 1024^2 forward + backward went
 * to the calls of the one-thread memcpy packing). */
static void copy_runs(const float *x, int64_t ldx, float *y, int64_t ldy, int64_t n, int64_t len)
{
    for (int64_t p = 0; p < n; p++)
        for (int64_t i = 0; i < len; i++)
            y[p * ldy + i] = x[p * ldx + i];
}

/* y[p * ldy + i] = v for p < n, i < len. v is a value, not a pointer: a store through y could
 * change what a pointer reads, so x[0] in the loop was reloaded per float and not vectorized. */
static void fill_runs(float v, float *y, int64_t ldy, int64_t n, int64_t len)
{
    for (int64_t p = 0; p < n; p++)
        for (int64_t i = 0; i < len; i++)
            y[p * ldy + i] = v;
}

static int64_t least(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

/* One k-major panel: dst[p * w + i] for p < kc and i < n, zeros for n <= i < w. Its rows are
 * runs of the source (x[p * ld + i]) when `runs`, or its columns are (x[i * ld + p]), which
 * the table's transpose moves; x[0] everywhere when ld is 0 (uniform). Only edge tiles read the
 * padding, into rows or columns they drop; zeros keep it defined (no stray subnormals or NaNs
 * slowing the FMAs). */
static void pack_panel(const tg_kernels *k, const float *x, int64_t ld, bool runs, int64_t n,
                       int64_t w, int64_t kc, float *dst)
{
    if (ld == 0 && n == w)
        k->fill(dst, x[0], kc * w); /* a whole panel is one run */
    else if (ld == 0)
        fill_runs(x[0], dst, w, kc, n);
    else if (runs)
        copy_runs(x, ld, dst, w, kc, n);
    else
        k->transpose(x, ld, dst, w, n, kc);
    if (n < w)
        for (int64_t p = 0; p < kc; p++)
            memset(dst + p * w + n, 0, (size_t)(w - n) * 4);
}

/* Where element (r, c) of op(X) is, for X stored with leading dimension ld and transposed when
 * trans (op(X)[r][c] is X[c ld + r]); every element of a uniform operand (ld 0) is X[0]. */
static const float *element(const float *x, int64_t ld, bool trans, int64_t r, int64_t c)
{
    return ld == 0 ? x : trans ? x + c * ld + r : x + r * ld + c;
}

/* Panel q of op(A)'s block: rows is + q mr.. */
static void pack_a(void *ctx, int64_t begin, int64_t end)
{
    const gemm_job *g = ctx;
    int64_t mr = g->k->gemm_mr;
    for (int64_t q = begin; q < end; q++) {
        int64_t r0 = g->is + q * mr;
        const float *x = element(g->A, g->lda, g->ta, r0, g->pc);
        pack_panel(g->k, x, g->lda, g->ta, least(g->M - r0, mr), mr, g->kc, g->ap + q * mr * g->kc);
    }
}

/* Panel q of op(B)'s block: columns jc + q nr.. */
static void pack_b(void *ctx, int64_t begin, int64_t end)
{
    const gemm_job *g = ctx;
    int64_t nr = g->k->gemm_nr;
    for (int64_t q = begin; q < end; q++) {
        int64_t c0 = g->jc + q * nr;
        const float *x = element(g->B, g->ldb, g->tb, g->pc, c0);
        pack_panel(g->k, x, g->ldb, !g->tb, least(g->jc + g->nc - c0, nr), nr, g->kc,
                   g->bp + q * nr * g->kc);
    }
}

/* ---- tiles ---- */

/* A tile at C's edge: the whole tile into a buffer, then its part of C, added as the kernel
 * adds (sum + c), so edge elements round as the others do. */
static void edge_tile(const gemm_job *g, const float *a, const float *b, float *c, int64_t rows,
                      int64_t cols)
{
    int64_t nr = g->k->gemm_nr;
    float t[TILE_MAX] __attribute__((aligned(64)));
    g->k->gemm_tile(g->kc, a, b, t, nr, 0);
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            c[i * g->ldc + j] = g->accumulate ? t[i * nr + j] + c[i * g->ldc + j] : t[i * nr + j];
}

static int64_t panels(int64_t n, int64_t width)
{
    return (n + width - 1) / width;
}

/* Task t: rows block t / split of the packed block by share t % split of the B panels. Blocks
 * and shares differ by one panel at most, so the threads' equal runs of tasks (parallel.c)
 * are equal work: 1024 rows as 5 blocks of 180 and one of 124 left one thread 5% more. */
static void tiles(void *ctx, int64_t begin, int64_t end)
{
    const gemm_job *g = ctx;
    int64_t mr = g->k->gemm_mr, nr = g->k->gemm_nr, np = panels(g->nc, nr);
    int64_t mp = panels(g->ms, mr);
    for (int64_t t = begin; t < end; t++) {
        int64_t blk = t / g->split, s = t % g->split;
        int64_t i0 = blk * mp / g->blocks * mr;
        int64_t i1 = least((blk + 1) * mp / g->blocks * mr, g->ms);
        int64_t q0 = s * np / g->split, q1 = (s + 1) * np / g->split;
        for (int64_t q = q0; q < q1; q++) {
            int64_t c0 = g->jc + q * nr, cols = least(g->jc + g->nc - c0, nr);
            const float *b = g->bp + q * nr * g->kc;
            for (int64_t i = i0; i < i1; i += mr) {
                int64_t rows = least(i1 - i, mr);
                const float *a = g->ap + i / mr * mr * g->kc;
                float *c = g->C + (g->is + i) * g->ldc + c0;
                if (rows == mr && cols == nr)
                    g->k->gemm_tile(g->kc, a, b, c, g->ldc, g->accumulate);
                else
                    edge_tile(g, a, b, c, rows, cols);
            }
        }
    }
}

/* The packed rows of one block against the packed B block, on the thread pool: row blocks of
 * whole tiles (at most MC rows), and enough column shares that every thread has two tasks even
 * when the rows make one block. */
static void run_tiles(gemm_job *g)
{
    int64_t np = panels(g->nc, g->k->gemm_nr), threads = tg_get_num_threads();
    /* a multiple of the threads: 2048 rows as 11 blocks gave one thread 6 and the other 5 */
    g->blocks = least(panels(panels(g->ms, MC), threads) * threads, panels(g->ms, g->k->gemm_mr));
    int64_t want = 2 * threads;
    g->split = g->blocks >= want ? 1 : panels(want, g->blocks);
    g->split = least(g->split, np);
    int64_t tasks = g->blocks * g->split;
    int64_t work = g->ms * g->nc * g->kc / tasks; /* multiply-adds per task */
    tg_parallel_tasks(tasks, tg_parallel_grain() / (work + 1) + 1, tiles, g);
}

/* Grain for packing n panels of a block whose tiles cover `rows` rows: split (two panels at
 * least per task) when the tiles of the block are split, whole otherwise. */
static int64_t pack_grain(const gemm_job *g, int64_t rows, int64_t n)
{
    return rows * g->nc * g->kc >= tg_parallel_grain() ? 2 : n + 1;
}

static bool tiled(gemm_job *g, int64_t K, float beta)
{
    int64_t mr = g->k->gemm_mr, nr = g->k->gemm_nr, kmax = least(K, KC);
    int64_t rows = least(g->M, MS), cols = least(g->N, NC);
    /* From the buffer cache, so a loop of products does not page-fault fresh panels. */
    int64_t ca = 0, cb = 0;
    g->ap = tg_scratch_alloc(panels(rows, mr) * mr * kmax, &ca);
    g->bp = g->ap ? tg_scratch_alloc(panels(cols, nr) * nr * kmax, &cb) : NULL;
    if (!g->bp) {
        tg_scratch_free(g->ap, ca);
        return false;
    }
    for (g->jc = 0; g->jc < g->N; g->jc += NC) {
        g->nc = least(g->N - g->jc, NC);
        for (g->pc = 0; g->pc < K; g->pc += KC) {
            g->kc = least(K - g->pc, KC);
            g->accumulate = g->pc > 0 || beta != 0.0f;
            /* The packing is shared out whenever the tiles will be (see run_tiles): both
             * threads then read what they packed, and a serial pack left one core idle for
             * 10% of a 1024^3 product on two threads (9.4 against 8.3 ms). */
            int64_t np = panels(g->nc, nr);
            tg_parallel_tasks(np, pack_grain(g, rows, np), pack_b, g);
            for (g->is = 0; g->is < g->M; g->is += MS) {
                g->ms = least(g->M - g->is, MS);
                int64_t mp = panels(g->ms, mr);
                tg_parallel_tasks(mp, pack_grain(g, g->ms, mp), pack_a, g);
                run_tiles(g);
            }
        }
    }
    tg_scratch_free(g->ap, ca);
    tg_scratch_free(g->bp, cb);
    return true;
}

static bool no_memory(int64_t M, int64_t N, int64_t K)
{
    tg_set_error(TG_ENOMEM, "tg_matmul: out of memory for a [%lld, %lld] @ [%lld, %lld] product",
                 (long long)M, (long long)K, (long long)K, (long long)N);
    return false;
}

/* A uniform operand of rows x cols written out, row-major, for OpenBLAS; NULL on OOM. */
static float *written_out(const float *x, int64_t rows, int64_t cols, int64_t *capacity)
{
    float *d = tg_scratch_alloc(rows * cols, capacity);
    if (d)
        tg_kern()->fill(d, x[0], rows * cols);
    return d;
}

bool tg_sgemm_(bool ta, bool tb, int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
               const float *B, int64_t ldb, float beta, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0)
        return true;
    const tg_kernels *k = tg_kern();
    if (K > 0 && use_tiles(k)) {
        gemm_job g = {.k = k,
                      .ta = ta,
                      .tb = tb,
                      .M = M,
                      .N = N,
                      .lda = lda,
                      .ldb = ldb,
                      .ldc = ldc,
                      .A = A,
                      .B = B,
                      .C = C};
        /* No memory for the panels is an error, not a turn to OpenBLAS, whose floats differ. */
        return tiled(&g, K, beta) || no_memory(M, N, K);
    }
    int64_t ca = 0, cb = 0;
    float *a = lda == 0 ? written_out(A, M, K, &ca) : NULL;
    float *b = ldb == 0 && (lda != 0 || a) ? written_out(B, K, N, &cb) : NULL;
    if ((lda == 0 && !a) || (ldb == 0 && !b)) {
        tg_scratch_free(a, ca);
        return no_memory(M, N, K);
    }
    if (a)
        A = a, ta = false, lda = K > 1 ? K : 1;
    if (b)
        B = b, tb = false, ldb = N;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                (int)M, (int)N, (int)K, 1.0f, A, (int)lda, B, (int)ldb, beta, C, (int)ldc);
    tg_scratch_free(a, ca);
    tg_scratch_free(b, cb);
    return true;
}
