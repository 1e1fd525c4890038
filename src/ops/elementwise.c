/* Running kernels over large contiguous arrays: the split across threads lives here, so every
 * op gets threading by calling these instead of the kernel table directly. */
#include "../core/parallel.h"
#include "ops.h"

typedef struct {
    tg_unary_fn f, f_shared;
    tg_unary_bwd_fn b;
    const float *x, *gy;
    float *y;
    bool uniform;
    const float *out; /* sigmoid's saved output, for tg_run_sigmoid_bwd */
} elem_job;

static void unary_chunk(void *ctx, int64_t begin, int64_t end)
{
    const elem_job *j = ctx;
    tg_unary_fn f = j->f_shared && tg_parallel_shared() ? j->f_shared : j->f;
    f(j->x + begin, j->y + begin, end - begin);
}

void tg_run_unary(tg_unary_fn f, tg_unary_fn f_shared, const float *x, float *y, int64_t n)
{
    if (n < tg_parallel_grain()) { /* the common small case: no job, no pool */
        f(x, y, n);
        return;
    }
    elem_job j = {.f = f, .f_shared = f_shared, .x = x, .y = y};
    tg_parallel_for(n, tg_parallel_grain(), unary_chunk, &j);
}

/* The uniform gradient is read from a small L1-resident buffer filled with the one value, so
 * the kernel keeps its vector form and no full-size tensor of g is ever written. */
#define UNIFORM_BLOCK 2048

/* gx = b(v, g) over [begin, end): in one go when the gradient is a full array, or in pieces of at
 * most UNIFORM_BLOCK reading one buffer filled with the uniform value. */
static void unary_bwd_chunk(void *ctx, int64_t begin, int64_t end)
{
    const elem_job *j = ctx;
    if (!j->uniform) {
        j->b(j->x + begin, j->gy + begin, j->y + begin, end - begin);
        return;
    }
    float g[UNIFORM_BLOCK];
    int64_t fill = end - begin < UNIFORM_BLOCK ? end - begin : UNIFORM_BLOCK;
    for (int64_t i = 0; i < fill; i++)
        g[i] = j->gy[0];
    for (int64_t i = begin; i < end; i += UNIFORM_BLOCK)
        j->b(j->x + i, g, j->y + i, end - i < UNIFORM_BLOCK ? end - i : UNIFORM_BLOCK);
}

void tg_run_unary_bwd(tg_unary_bwd_fn f, const float *v, const float *gy, bool gy_uniform,
                      float *gx, int64_t n)
{
    if (!gy_uniform && n < tg_parallel_grain()) {
        f(v, gy, gx, n);
        return;
    }
    elem_job j = {.b = f, .x = v, .gy = gy, .y = gx, .uniform = gy_uniform};
    tg_parallel_for(n, tg_parallel_grain(), unary_bwd_chunk, &j);
}

/* gx = sigmoid_bwd_y(y, x, g): y is the saved output (j->out), x the input. The kernel takes a
 * uniform gradient itself, so a thread's whole share is one call that can stream gx out. */
static void sigmoid_bwd_chunk(void *ctx, int64_t begin, int64_t end)
{
    const elem_job *j = ctx;
    tg_kern()->sigmoid_bwd_y(j->out + begin, j->x + begin, j->uniform ? j->gy : j->gy + begin,
                             j->uniform, j->y + begin, end - begin);
}

void tg_run_sigmoid_bwd(const float *y, const float *x, const float *gy, bool gy_uniform, float *gx,
                        int64_t n)
{
    elem_job j = {.x = x, .gy = gy, .y = gx, .uniform = gy_uniform, .out = y};
    if (n < tg_parallel_grain()) {
        sigmoid_bwd_chunk(&j, 0, n);
        return;
    }
    tg_parallel_for(n, tg_parallel_grain(), sigmoid_bwd_chunk, &j);
}

/* ---- deterministic sums ---- */

/* The array is cut into at most MAX_BLOCKS blocks of a size that depends only on n; each block
 * is summed by the kernel's pairwise sum and the partials are summed pairwise in block order.
 * Which thread computes a block never changes the result. */
#define MIN_BLOCK  ((int64_t)4096)
#define MAX_BLOCKS 1024

typedef struct {
    const float *x;
    int64_t n, block;
    float *partial;
} sum_job;

static void sum_blocks(void *ctx, int64_t begin, int64_t end)
{
    const sum_job *j = ctx;
    const tg_kernels *k = tg_kern();
    for (int64_t b = begin; b < end; b++) {
        int64_t start = b * j->block;
        int64_t len = j->n - start < j->block ? j->n - start : j->block;
        j->partial[b] = k->sum(j->x + start, len);
    }
}

float tg_sum_floats(const float *x, int64_t n)
{
    if (n <= MIN_BLOCK)
        return tg_kern()->sum(x, n);
    int64_t block = MIN_BLOCK;
    while ((n + block - 1) / block > MAX_BLOCKS)
        block *= 2;
    float partial[MAX_BLOCKS];
    sum_job j = {x, n, block, partial};
    int64_t nb = (n + block - 1) / block;
    /* grain in blocks: below ~32K elements of work a thread is not worth waking */
    tg_parallel_for(nb, (tg_parallel_grain() + block - 1) / block, sum_blocks, &j);
    return tg_kern()->sum(partial, nb);
}
