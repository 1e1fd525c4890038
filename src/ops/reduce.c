/* Sums and means, over everything or along one dimension. */
#include <stdlib.h>
#include <string.h>

#include "../core/parallel.h"
#include "ops.h"

static int norm_dim(int dim, int ndim, const char *fn)
{
    int n = ndim ? ndim : 1; /* a 0-d tensor accepts dim 0 and -1, as PyTorch does */
    if (dim < -n || dim >= n) {
        tg_set_error(TG_EINVAL, "%s: dim %d is out of range for a %d-d tensor", fn, dim, ndim);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

/* ---- all elements ---- */

/* d(sum)/dx = 1 everywhere: the gradient is g (divided by n for mean) seen at every input
 * position. It is returned as a broadcast view, so no tensor of ones is ever materialized; the
 * next node reads the one value or materializes it only if it must. */
tg_tensor *tg_uniform_grad_(float v, int ndim, const int64_t *shape, const char *name)
{
    tg_tensor *s = tg_new(0, NULL, name);
    if (!s)
        return NULL;
    tg_ptr(s)[0] = v;
    tg_tensor *out = tg_expand(s, ndim, shape);
    tg_release(s);
    return out;
}

tg_tensor *tg_neg_grad_(tg_tensor *g, const char *name)
{
    if (tg_uniform_view_(g))
        return tg_uniform_grad_(-tg_ptr(g)[0], g->ndim, g->shape, name);
    return tg_neg(g);
}

static tg_status fill_backward(tg_node *n, tg_tensor *g, float scale, tg_tensor **gin)
{
    float v = scale == 1.0f ? tg_ptr(g)[0] : tg_ptr(g)[0] / scale;
    gin[0] = tg_uniform_grad_(v, n->in_ndim[0], n->in_shape[0], n->ops->name);
    return gin[0] ? TG_OK : tg_last_status();
}

static tg_status sum_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    return fill_backward(n, g, 1.0f, gin);
}

static tg_status mean_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    return fill_backward(n, g, n->fargs[0], gin);
}

static const tg_node_ops SUM = {"SumBackward0", sum_backward};
static const tg_node_ops MEAN = {"MeanBackward0", mean_backward};

/* Do t's elements fill numel consecutive floats from its first one, in some order (a
 * transpose or permutation of a contiguous layout: no gaps, no repeats)? Then a sum over all
 * of them can read that memory in order instead of copying the view: the sum of a transposed
 * matrix is then also bit for bit the sum of the matrix. */
static bool dense_span(const tg_tensor *t)
{
    int64_t st[TG_MAX_DIMS], sz[TG_MAX_DIMS];
    int n = 0;
    for (int d = 0; d < t->ndim; d++) /* insertion sort of the dims by stride */
        if (t->shape[d] > 1) {
            int i = n++;
            for (; i > 0 && st[i - 1] > t->strides[d]; i--)
                st[i] = st[i - 1], sz[i] = sz[i - 1];
            st[i] = t->strides[d], sz[i] = t->shape[d];
        }
    int64_t want = 1;
    for (int i = 0; i < n; want *= sz[i], i++)
        if (st[i] != want)
            return false;
    return true;
}

/* Writes the view's elements [start, start + len), in row-major order, into buf: one run along
 * the last dim at a time, then a carry into the dims before it. */
static void gather_block(void *ctx, int64_t start, int64_t len, float *buf)
{
    const tg_tensor *t = ctx;
    const int nd = t->ndim; /* >= 1: a 0-d tensor is contiguous */
    int64_t idx[TG_MAX_DIMS], off = 0, rem = start;
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = rem % t->shape[d];
        rem /= t->shape[d];
        off += idx[d] * t->strides[d];
    }
    const float *base = tg_ptr((tg_tensor *)t);
    const int64_t inner = t->shape[nd - 1], s = t->strides[nd - 1];
    while (len > 0) {
        int64_t run = inner - idx[nd - 1] < len ? inner - idx[nd - 1] : len;
        const float *p = base + off;
        if (s == 1)
            memcpy(buf, p, (size_t)run * sizeof *buf);
        else
            for (int64_t k = 0; k < run; k++)
                buf[k] = p[k * s];
        buf += run;
        len -= run;
        idx[nd - 1] += run;
        off += run * s;
        for (int d = nd - 1; d > 0 && idx[d] == t->shape[d]; d--) {
            off -= t->shape[d] * t->strides[d];
            idx[d] = 0;
            idx[d - 1]++;
            off += t->strides[d - 1];
        }
    }
}

/* The sum of every element, with the bits of summing a contiguous copy: a view whose elements
 * are not one dense span is read through its strides a block at a time, so an expanded view
 * far larger than its memory is summed without being materialized. */
static bool sum_all(tg_tensor *a, float *out, const char *fn)
{
    if (tg_known_sum(a, tg_kern(), out))
        return true;
    if (a->contiguous || dense_span(a)) {
        *out = tg_sum_floats(tg_ptr(a), a->numel);
        return true;
    }
    if (tg_sum_mapped(a->numel, gather_block, a, out))
        return true;
    tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    return false;
}

static tg_tensor *reduce_all(tg_tensor *a, bool mean, const char *fn)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(fn));
    tg_tensor *out = tg_new(0, NULL, fn);
    float s;
    if (out && !sum_all(a, &s, fn))
        tg_release(out), out = NULL;
    if (out) /* mean of an empty tensor is NaN (0/0), as in PyTorch */
        tg_ptr(out)[0] = mean ? s / (float)a->numel : s;
    tg_node *node = out ? tg_record(mean ? &MEAN : &SUM, out, 1, &a) : NULL;
    if (node)
        node->fargs[0] = (float)a->numel;
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

tg_tensor *tg_sum(tg_tensor *a) { return reduce_all(a, false, "tg_sum"); }
tg_tensor *tg_mean(tg_tensor *a) { return reduce_all(a, true, "tg_mean"); }

/* ---- along one dimension ---- */

#define ROW_BLOCK TG_SUM_RUN /* rows added one after another before pairing */

/* y = sum of the len >= 1 rows of x, each `width` floats, row stride ld, pairing halves so the
 * rounding error grows with log(len), not len: a flat running sum of a million 0.1f rows ends
 * 1% high. tmp holds one row of width floats per level of halving. Each column is summed on
 * its own, so any band of columns gives the same floats as the whole row. */
static void sum_rows(const float *x, float *y, int64_t len, int64_t width, int64_t ld, float *tmp)
{
    const tg_kernels *k = tg_kern();
    if (width <= TG_COL_SUMS_MAX) { /* narrow rows: the same order, in registers, no tmp */
        k->col_sums(x, len, width, ld, y);
        return;
    }
    if (len <= ROW_BLOCK || !tmp) {
        k->add_vs(x, 0.0f, y, width); /* the first row + 0: a sum of -0s is +0, as PyTorch's */
        for (int64_t j = 1; j < len; j++)
            k->add_vv(y, x + j * ld, y, width);
        return;
    }
    int64_t half = len / 2;
    sum_rows(x, y, half, width, ld, tmp + width);
    sum_rows(x + half * ld, tmp, len - half, width, ld, tmp + width);
    k->add_vv(y, tmp, y, width);
}

static int halvings(int64_t len)
{
    int levels = 0;
    for (int64_t n = len; n > ROW_BLOCK; n -= n / 2)
        levels++;
    return levels;
}

/* The scratch rows sum_rows needs for spans of up to len rows of width floats: none (NULL) for
 * narrow rows (col_sums works in registers) or spans that are never halved. *ok is false when
 * they are needed and malloc fails: the sum then fails rather than add row after row, which
 * would give other floats (and, over a million rows, a sum 1% off). */
static float *rows_scratch(int64_t len, int64_t width, bool *ok)
{
    int levels = width > TG_COL_SUMS_MAX ? halvings(len) : 0;
    float *tmp = levels ? malloc((size_t)(levels * width) * sizeof(float)) : NULL;
    *ok = !levels || tmp;
    return tmp;
}

/* x viewed as [outer, len, inner]: slice o starts at x + o * os, its row j at + j * ld, and
 * the inner floats of a row are consecutive. A contiguous x has os = len * inner, ld = inner; a
 * view with gaps between rows or slices (a narrowed one) is summed in place, in the same order
 * as its contiguous copy. */
typedef struct {
    int64_t outer, len, inner, os, ld;
} middle_shape;

static middle_shape dense_middle(int64_t outer, int64_t len, int64_t inner)
{
    return (middle_shape){outer, len, inner, len * inner, inner};
}

/* Sums x over the middle axis into out; false when out of memory. */
static bool sum_middle_serial(const float *x, float *out, middle_shape m)
{
    int64_t outer = m.outer, len = m.len, inner = m.inner;
    bool dense = m.ld == inner && m.os == len * inner;
    if (dense && inner == 1 && len <= TG_ROW_SUMS_MAX) { /* short rows: many per kernel call */
        tg_kern()->row_sums(x, outer, len, out);
        return true;
    }
    bool ok;
    float *tmp = rows_scratch(len, inner, &ok);
    if (!ok)
        return false;
    for (int64_t o = 0; o < outer; o++) {
        const float *xo = x + o * m.os;
        float *yo = out + o * inner;
        if (inner == 1 && m.ld == 1)
            yo[0] = tg_sum_floats(xo, len);
        else if (len == 0)
            tg_kern()->fill(yo, 0.0f, inner);
        else
            sum_rows(xo, yo, len, inner, m.ld, tmp);
    }
    free(tmp);
    return true;
}

/* ---- the same sums on several threads ----
 * Every output element is the same sequence of additions on any number of threads: whole
 * outer slices go to different threads; a single reduction (outer 1) over wide rows goes to
 * them by bands of columns; and a single long reduction over narrow rows is cut where sum_rows
 * halves it anyway, the pieces summed on different threads and then added pairwise in
 * sum_rows' own order. */
#define MAX_SPLIT 4    /* halvings run in parallel: up to 16 pieces */
#define BAND_MIN  1024 /* columns (outer 1) from which threads take bands of columns */

typedef struct {
    const float *x;
    float *out;
    middle_shape m;
    int depth;   /* pieces: 2^depth */
    float *part; /* one row of inner floats per piece */
    _Atomic bool failed; /* a chunk could not get its scratch rows */
} middle_job;

static void middle_slices(void *ctx, int64_t o0, int64_t o1)
{
    middle_job *j = ctx;
    middle_shape m = j->m;
    m.outer = o1 - o0;
    if (!sum_middle_serial(j->x + o0 * m.os, j->out + o0 * m.inner, m))
        j->failed = true;
}

/* Columns [c0, c1) of the one outer slice. */
static void middle_band(void *ctx, int64_t c0, int64_t c1)
{
    middle_job *j = ctx;
    bool ok;
    float *tmp = rows_scratch(j->m.len, c1 - c0, &ok);
    if (!ok) {
        j->failed = true;
        return;
    }
    sum_rows(j->x + c0, j->out + c0, j->m.len, c1 - c0, j->m.ld, tmp);
    free(tmp);
}

/* The rows of piece k: descend sum_rows' halvings, the first half to the left. */
static void piece_rows(int64_t len, int depth, int64_t k, int64_t *start, int64_t *n)
{
    *start = 0, *n = len;
    for (int d = depth - 1; d >= 0; d--) {
        int64_t half = *n / 2;
        if ((k >> d) & 1)
            *start += half, *n -= half;
        else
            *n = half;
    }
}

/* Pieces [k0, k1) of the split (see sum_middle). */
static void middle_pieces(void *ctx, int64_t k0, int64_t k1)
{
    middle_job *j = ctx;
    const int64_t inner = j->m.inner;
    int64_t start, n;
    piece_rows(j->m.len, j->depth, 0, &start, &n);
    bool ok;
    float *tmp = rows_scratch(n + 1, inner, &ok); /* pieces differ by at most one row */
    if (!ok) {
        j->failed = true;
        return;
    }
    for (int64_t k = k0; k < k1; k++) {
        piece_rows(j->m.len, j->depth, k, &start, &n);
        sum_rows(j->x + start * j->m.ld, j->part + k * inner, n, inner, j->m.ld, tmp);
    }
    free(tmp);
}

/* false when out of memory */
static bool sum_middle(const float *x, float *out, middle_shape m)
{
    int threads = tg_get_num_threads();
    int64_t outer = m.outer, len = m.len, inner = m.inner;
    int64_t grain = tg_parallel_grain(), work = len * inner;
    middle_job j = {.x = x, .out = out, .m = m};
    if (threads < 2 || outer * work < grain) {
        return sum_middle_serial(x, out, m);
    } else if (outer > 1 || inner == 1) {
        tg_parallel_tasks(outer, (grain + work - 1) / work, middle_slices, &j);
    } else if (inner >= BAND_MIN) {
        tg_parallel_for(inner, (grain + len - 1) / len, middle_band, &j);
    } else {
        while (j.depth < MAX_SPLIT && (1 << j.depth) < threads &&
               len >= (int64_t)(ROW_BLOCK + 1) << (j.depth + 1))
            j.depth++;
        int64_t pieces = (int64_t)1 << j.depth;
        j.part = j.depth ? malloc((size_t)(pieces * inner) * sizeof *j.part) : NULL;
        if (!j.part) /* the same additions in the same order, on one thread */
            return sum_middle_serial(x, out, m);
        tg_parallel_tasks(pieces, 1, middle_pieces, &j);
        if (j.failed) {
            free(j.part);
            return false;
        }
        for (int64_t step = 1; step < pieces; step *= 2)
            for (int64_t k = 0; k < pieces; k += 2 * step)
                tg_kern()->add_vv(j.part + k * inner, j.part + (k + step) * inner,
                                  j.part + k * inner, inner);
        tg_kern()->copy(j.part, out, inner);
        free(j.part);
    }
    return !j.failed;
}

static tg_status sum_dim_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    int dim = (int)n->iargs[0];
    int ndim = n->in_ndim[0];
    /* View g with the summed dim as size 1 (keepdim) and spread it over the input. */
    int64_t kshape[TG_MAX_DIMS];
    for (int i = 0; i < ndim; i++)
        kshape[i] = i == dim ? 1 : n->in_shape[0][i];
    tg_tensor *gk = tg_reshape(g, ndim, kshape);
    tg_tensor *e = gk ? tg_expand(gk, ndim, n->in_shape[0]) : NULL;
    gin[0] = e ? tg_contiguous_copy(e) : NULL;
    if (gin[0] && n->fargs[0] != 1.0f) /* mean: g / len, PyTorch's division */
        tg_run_vs(tg_kern()->div_vs, tg_ptr(gin[0]), n->fargs[0], tg_ptr(gin[0]), gin[0]->numel);
    tg_release(gk), tg_release(e);
    return gin[0] ? TG_OK : tg_last_status();
}

static const tg_node_ops SUM_DIM = {"SumBackward1", sum_dim_backward};
static const tg_node_ops MEAN_DIM = {"MeanBackward1", sum_dim_backward};

/* The sum along the middle axis of [outer, len, inner] when every element is v (a broadcast
 * value, as the gradient of a sum is): each output is the same len additions of v, so they are
 * done once, on one column, in the order sum_middle gives every column, and spread. */
static bool sum_middle_uniform(float v, float *out, int64_t outer, int64_t len, int64_t inner)
{
    float s = 0.0f;
    if (len > 0) {
        float *col = malloc((size_t)len * sizeof *col);
        if (!col)
            return false;
        tg_kern()->fill(col, v, len);
        if (inner == 1)
            sum_middle_serial(col, &s, dense_middle(1, len, 1));
        else /* one column: sum_rows needs no scratch */
            sum_rows(col, &s, len, 1, 1, NULL);
        free(col);
    }
    tg_kern()->fill(out, s, outer * inner);
    return true;
}

/* A permutation of a contiguous tensor in which the dims other than d keep their memory order
 * (a.transpose(0, 1).sum(0) of a contiguous [A, B, C]) is a sum over the middle axis of that
 * memory, [outer, len, inner], with the outputs in the same order: it is read in place rather
 * than copied first (the copy made [64, 64, 64] 3x PyTorch's time). Only where both the view's
 * contiguous copy and the memory have inner > 1, so that each output is the same pairwise sum
 * over d in both (sum_rows and col_sums agree column for column): the same floats. */
static bool permuted_middle(const tg_tensor *a, int d, int64_t *outer, int64_t *inner)
{
    if (!dense_span(a) || a->shape[d] < 2)
        return false;
    int64_t prev = INT64_MAX, o = 1, in = 1;
    for (int i = 0; i < a->ndim; i++) {
        if (a->shape[i] == 1 || i == d)
            continue;
        if (a->strides[i] >= prev)
            return false; /* the other dims are not in memory order */
        prev = a->strides[i];
        if (a->strides[i] > a->strides[d])
            o *= a->shape[i];
        else
            in *= a->shape[i];
    }
    if (in < 2)
        return false;
    *outer = o, *inner = in;
    return true;
}

/* A view whose dims after d are one dense block of at least two floats, and whose dims before d
 * step by one stride (a narrowed matrix, a slice of a batch): [outer, len, inner] with gaps,
 * summed in place. The copy it replaces walked the view a few floats at a time: the column
 * sums of a [1M, 2] slice of a [1M, 4] matrix took 9.5 ms, 9 times PyTorch's time. */
static bool strided_middle(const tg_tensor *a, int d, middle_shape *m)
{
    int64_t inner = 1, outer = 1, os = 0, next = 0;
    for (int i = a->ndim - 1; i > d; i--) {
        if (a->shape[i] == 1)
            continue;
        if (a->strides[i] != inner)
            return false;
        inner *= a->shape[i];
    }
    if (inner < 2 || a->shape[d] < 2)
        return false;
    for (int i = d - 1; i >= 0; i--) {
        if (a->shape[i] == 1)
            continue;
        if (outer > 1 && a->strides[i] != next)
            return false; /* the outer dims do not step by one stride */
        if (outer == 1)
            os = a->strides[i];
        next = a->strides[i] * a->shape[i];
        outer *= a->shape[i];
    }
    *m = (middle_shape){outer, a->shape[d], inner, os, a->strides[d]};
    return true;
}

/* Does t repeat memory (a dim of size > 1 with stride 0, as an expanded view has)? Its
 * contiguous copy is then larger than what it reads, without bound. */
static bool repeats_memory(const tg_tensor *t)
{
    for (int d = 0; d < t->ndim; d++)
        if (t->shape[d] > 1 && t->strides[d] == 0)
            return true;
    return false;
}

/* ---- rows of an expanded view, summed along the last dim ----
 * With nothing after the summed dim (inner 1), row o of the view's contiguous copy is its
 * elements [o len, (o + 1) len) in row-major order. They are gathered a block at a time and
 * summed by the same kernels, in the same order, as the copy's rows (sum_middle_serial), so the
 * floats are the same; only the copy is not made: a [1000, 1] column expanded to
 * [1000, 200000] and summed along dim 1 took 800 MB for it. */
#define GATHER_FLOATS 16384 /* floats of short rows gathered per row_sums call */

typedef struct {
    const tg_tensor *t;
    int64_t first; /* the row's first element in the view's row-major order */
} view_row;

static void gather_row(void *ctx, int64_t start, int64_t len, float *buf)
{
    const view_row *r = ctx;
    gather_block((void *)r->t, r->first + start, len, buf);
}

typedef struct {
    const tg_tensor *t;
    float *out;
    int64_t len, inner;
    _Atomic bool failed;
} gathered_job;

/* Rows [o0, o1). */
static void gathered_rows(void *ctx, int64_t o0, int64_t o1)
{
    gathered_job *j = ctx;
    const int64_t len = j->len;
    if (len > TG_ROW_SUMS_MAX) { /* long rows: tg_sum_floats' blocks, each gathered */
        for (int64_t o = o0; o < o1; o++) {
            view_row r = {j->t, o * len};
            if (!tg_sum_mapped(len, gather_row, &r, j->out + o))
                j->failed = true;
        }
        return;
    }
    int64_t per = GATHER_FLOATS / len < o1 - o0 ? GATHER_FLOATS / len : o1 - o0;
    float *buf = malloc((size_t)(per * len) * sizeof *buf);
    if (!buf) {
        j->failed = true;
        return;
    }
    for (int64_t o = o0; o < o1; o += per) {
        int64_t n = o1 - o < per ? o1 - o : per;
        gather_block((void *)j->t, o * len, n * len, buf);
        tg_kern()->row_sums(buf, n, len, j->out + o);
    }
    free(buf);
}

/* ---- slices of an expanded view, summed along a middle dim ----
 * With inner > 1, output slice o of the copy is sum_rows over its len rows (o, j, :). The same
 * recursion runs here with each row gathered just before it is added, so the additions and
 * their order are the copy's (col_sums, for narrow rows, gives the floats of this row-at-a-time
 * order by its contract), and memory is one row and the halvings' scratch rows per thread. */
typedef struct {
    const tg_tensor *t;
    int64_t len, inner;
    float *row; /* the row last gathered */
} row_source;

static const float *fetch_row(row_source *s, int64_t o, int64_t j)
{
    gather_block((void *)s->t, (o * s->len + j) * s->inner, s->inner, s->row);
    return s->row;
}

/* sum_rows of rows [j0, j0 + len) of slice o, len >= 1; tmp as sum_rows' */
static void sum_fetched(row_source *s, int64_t o, int64_t j0, int64_t len, float *y, float *tmp)
{
    const tg_kernels *k = tg_kern();
    const int64_t w = s->inner;
    if (len <= ROW_BLOCK) {
        k->add_vs(fetch_row(s, o, j0), 0.0f, y, w);
        for (int64_t j = 1; j < len; j++)
            k->add_vv(y, fetch_row(s, o, j0 + j), y, w);
        return;
    }
    int64_t half = len / 2;
    sum_fetched(s, o, j0, half, y, tmp + w);
    sum_fetched(s, o, j0 + half, len - half, tmp, tmp + w);
    k->add_vv(y, tmp, y, w);
}

/* Slices [o0, o1) (gathered_job, inner > 1). */
static void gathered_slices(void *ctx, int64_t o0, int64_t o1)
{
    gathered_job *j = ctx;
    row_source s = {j->t, j->len, j->inner, malloc((size_t)j->inner * sizeof(float))};
    int levels = halvings(j->len);
    float *tmp = levels ? malloc((size_t)(levels * j->inner) * sizeof(float)) : NULL;
    if (!s.row || (levels && !tmp))
        j->failed = true;
    for (int64_t o = o0; o < o1 && !j->failed; o++)
        sum_fetched(&s, o, 0, j->len, j->out + o * j->inner, tmp);
    free(s.row), free(tmp);
}

/* The sum over the middle axis of m (the copy's [outer, len, inner]) of a view that repeats
 * memory, with the copy's floats, without the copy; false when out of memory. numel >= 1. */
static bool sum_gathered(const tg_tensor *a, float *out, middle_shape m)
{
    gathered_job j = {.t = a, .out = out, .len = m.len, .inner = m.inner};
    int64_t grain = tg_parallel_grain(), work = m.len * m.inner;
    tg_parallel_tasks(m.outer, (grain + work - 1) / work,
                      m.inner == 1 ? gathered_rows : gathered_slices, &j);
    return !j.failed;
}

static tg_tensor *reduce_dim(tg_tensor *a, int dim, bool keepdim, bool mean, const char *fn)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(fn));
    int d = norm_dim(dim, a->ndim, fn);
    if (d < 0)
        TG_API_RETURN(NULL);
    /* a 0-d tensor reduces over its one implicit element (still a SumBackward1 node) */
    int64_t outer = 1, inner = 1, len = a->ndim ? a->shape[d] : 1;
    int64_t shape[TG_MAX_DIMS];
    int on = 0;
    for (int i = 0; i < a->ndim; i++) {
        if (i < d)
            outer *= a->shape[i];
        if (i > d)
            inner *= a->shape[i];
        if (i != d || keepdim)
            shape[on++] = i == d ? 1 : a->shape[i];
    }
    bool uniform = a->numel > 1 && tg_is_uniform(a);
    /* The transpose of a contiguous matrix A: the sum along dim d is A's sum along the other
     * dim, whose outputs lie in the same order, read in memory order instead of copying the
     * view first (a copy made the 1024^2 case 10x PyTorch's time). */
    bool flipped = !uniform && a->ndim == 2 && !a->contiguous && a->shape[0] > 1 &&
                   a->shape[1] > 1 && a->strides[0] == 1 && a->strides[1] == a->shape[0];
    if (flipped) {
        outer = d == 0 ? a->shape[1] : 1;
        inner = d == 0 ? 1 : a->shape[0];
    } else if (!uniform && !a->contiguous && inner > 1) {
        flipped = permuted_middle(a, d, &outer, &inner);
    }
    middle_shape m = dense_middle(outer, len, inner);
    bool in_place = uniform || flipped || (!a->contiguous && strided_middle(a, d, &m));
    bool gathered = !in_place && a->numel > 0 && repeats_memory(a);
    tg_tensor *x = in_place || gathered ? tg_retain(a) : tg_as_contiguous(a);
    tg_tensor *out = x ? tg_new(on, shape, fn) : NULL;
    if (out && uniform && !sum_middle_uniform(tg_ptr(a)[0], tg_ptr(out), outer, len, inner)) {
        tg_release(out);
        out = NULL;
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    }
    bool summed =
        !out || uniform ||
        (gathered ? sum_gathered(a, tg_ptr(out), m) : sum_middle(tg_ptr(x), tg_ptr(out), m));
    if (!summed) {
        tg_release(out);
        out = NULL;
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    }
    if (out && mean)
        tg_run_vs(tg_kern()->div_vs, tg_ptr(out), (float)len, tg_ptr(out), out->numel);
    tg_release(x);
    tg_node *node = out ? tg_record(mean ? &MEAN_DIM : &SUM_DIM, out, 1, &a) : NULL;
    if (node) {
        node->iargs[0] = d;
        node->fargs[0] = mean ? (float)len : 1.0f;
        /* PyTorch's MeanBackward1 saves its input (SumBackward1 does not): an in-place change
         * to it, or a second backward without retain_graph, fails there and so here */
        if (mean)
            tg_save(node, a);
    }
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

tg_tensor *tg_sum_dim(tg_tensor *a, int dim, bool keepdim)
{
    return reduce_dim(a, dim, keepdim, false, "tg_sum_dim");
}

tg_tensor *tg_mean_dim(tg_tensor *a, int dim, bool keepdim)
{
    return reduce_dim(a, dim, keepdim, true, "tg_mean_dim");
}
