/* Elementwise two-input ops with NumPy broadcasting. Broadcast patterns reach the kernels as
 * whole runs (vector-vector, vector-scalar, scalar-vector) through the N-d iterator, so a row or
 * column broadcast never degrades to a per-element loop. */
#include <math.h>

#include "../core/parallel.h"
#include "ops.h"

typedef enum { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW } binop;

static const char *const FN_NAME[] = {"tg_add", "tg_sub", "tg_mul", "tg_div", "tg_pow"};

static tg_binary_vv_fn vv_kernel(binop op)
{
    const tg_kernels *k = tg_kern();
    tg_binary_vv_fn f[] = {k->add_vv, k->sub_vv, k->mul_vv, k->div_vv, k->pow_vv};
    return f[op];
}

/* The kernel for a op b with b one value; for OP_SUB the value is passed negated (a - b ==
 * a + (-b), exactly). For pow that is pow_vv's function, never pow_scalar's shortcuts: a tensor
 * exponent gives the same floats broadcast, strided or full-size. */
static tg_binary_vs_fn vs_kernel(binop op)
{
    const tg_kernels *k = tg_kern();
    return op == OP_ADD || op == OP_SUB ? k->add_vs
           : op == OP_MUL               ? k->mul_vs
           : op == OP_DIV               ? k->div_vs
                                        : k->pow_vs;
}

/* The kernel for a op b with a one value, for the ops that do not commute (add and mul use
 * vs_kernel with the operands swapped). */
static tg_binary_sv_fn sv_kernel(binop op)
{
    const tg_kernels *k = tg_kern();
    return op == OP_SUB ? k->sub_sv : op == OP_DIV ? k->div_sv : k->pow_sv;
}

static bool commutes(binop op)
{
    return op == OP_ADD || op == OP_MUL;
}

/* y = a op b where b is one value. */
static void run_vs(binop op, const float *a, float b, float *y, int64_t n)
{
    tg_run_vs(vs_kernel(op), a, op == OP_SUB ? -b : b, y, n);
}

/* y = a op b where a is one value. */
static void run_sv(binop op, float a, const float *b, float *y, int64_t n)
{
    if (commutes(op))
        tg_run_vs(vs_kernel(op), b, a, y, n);
    else
        tg_run_sv(sv_kernel(op), a, b, y, n);
}

/* One run of the N-d walk: p[0] = out (stride 1), p[1] = a, p[2] = b. */
static void binary_run(void *ctx, float *const *p, const int64_t *s, int64_t n)
{
    binop op = *(const binop *)ctx;
    if (s[1] == 1 && s[2] == 1)
        tg_run_vv(vv_kernel(op), p[1], p[2], p[0], n);
    else if (s[1] == 1 && s[2] == 0)
        run_vs(op, p[1], p[2][0], p[0], n);
    else if (s[1] == 0 && s[2] == 1)
        run_sv(op, p[1][0], p[2], p[0], n);
    else if (s[1] == 0 && s[2] == 0) { /* both broadcast along the run: one value, computed once */
        float v;
        run_vs(op, p[1], p[2][0], &v, 1);
        tg_kern()->fill(p[0], v, n);
    } else if (op == OP_POW) { /* pow's kernel rounds its own way: it computes each element */
        tg_binary_vv_fn f = vv_kernel(op);
        for (int64_t i = 0; i < n; i++)
            f(p[1] + i * s[1], p[2] + i * s[2], p[0] + i * s[0], 1);
    } else { /* strided both: one IEEE operation per element, as the kernels compute it */
        const float *a = p[1], *b = p[2];
        float *y = p[0];
        for (int64_t i = 0; i < n; i++) {
            float x = a[i * s[1]], z = b[i * s[2]];
            y[i * s[0]] = op == OP_ADD   ? x + z
                          : op == OP_SUB ? x - z
                          : op == OP_MUL ? x * z
                                         : x / z;
        }
    }
}

/* A block of runs (tg_iter_rows). A broadcast whose last dim is short, [N, C, 4] * [1, C, 1] or
 * [64, 1, 64] + [1, 64, 1], has one run per few elements, and the walk, binary_run and the
 * tg_run_* wrappers cost more per run than the kernel (a [256, 256, 4] * [1, 256, 1] product
 * took 4x PyTorch's time). Short runs of the three kernel patterns therefore call their kernel
 * straight from here, chosen once per block: the very calls the wrappers make below the grain,
 * so every element is the same float. Long runs, and the rare patterns, go through binary_run
 * one by one as before. */
static void binary_rows(void *ctx, float *const *p, const int64_t *s, int64_t n, const int64_t *rs,
                        int64_t rows)
{
    binop op = *(const binop *)ctx;
    float *y = p[0], *a = p[1], *b = p[2];
    /* short runs of several rows, written densely: the kernel straight from here */
    bool direct = n < tg_parallel_grain() && s[0] == 1 && rows > 1;
    if (direct && s[1] == 1 && s[2] == 1) {
        tg_binary_vv_fn f = vv_kernel(op);
        for (int64_t r = 0; r < rows; r++)
            f(a + r * rs[1], b + r * rs[2], y + r * rs[0], n);
    } else if (direct && s[1] == 1 && s[2] == 0) { /* as run_vs */
        tg_binary_vs_fn f = vs_kernel(op);
        for (int64_t r = 0; r < rows; r++) {
            float v = b[r * rs[2]];
            f(a + r * rs[1], op == OP_SUB ? -v : v, y + r * rs[0], n);
        }
    } else if (direct && s[1] == 0 && s[2] == 1 && commutes(op)) { /* as run_sv */
        tg_binary_vs_fn f = vs_kernel(op);
        for (int64_t r = 0; r < rows; r++)
            f(b + r * rs[2], a[r * rs[1]], y + r * rs[0], n);
    } else if (direct && s[1] == 0 && s[2] == 1) {
        tg_binary_sv_fn f = sv_kernel(op);
        for (int64_t r = 0; r < rows; r++)
            f(a[r * rs[1]], b + r * rs[2], y + r * rs[0], n);
    } else { /* long runs, one row, and the rare patterns: run by run */
        for (int64_t r = 0; r < rows; r++)
            binary_run(ctx, (float *const[3]){y + r * rs[0], a + r * rs[1], b + r * rs[2]}, s, n);
    }
}

/* A full-size operand whose elements are not in order along the last dim (a transpose, a
 * permutation) would be read one element per cache line by the walk: 1M floats of a transposed
 * add took 6.7 ms. From the grain on it is first copied in order, by tiles (tg_copy_strided),
 * and the op runs on contiguous arrays. Broadcast operands (stride 0) keep the walk. */
static tg_tensor *in_order(tg_tensor *t, int64_t out_numel)
{
    bool scattered = !t->contiguous && t->numel == out_numel && t->ndim > 0 &&
                     t->shape[t->ndim - 1] > 1 && t->strides[t->ndim - 1] != 1 &&
                     out_numel >= tg_parallel_grain();
    for (int d = 0; scattered && d < t->ndim; d++)
        scattered = t->strides[d] != 0 || t->shape[d] == 1;
    return scattered ? tg_contiguous_copy(t) : tg_retain(t);
}

/* ---- broadcasts over narrow rows ----------------------------------------------------------
 * [R, w] op [w] and [R, w] op [R, 1] reach the walk as R runs of w elements, one kernel call
 * each: for w = 4 that call costs more than the four elements (16M floats: 35 ms, against
 * 6.6 ms for same-shape operands). For narrow rows the broadcast operand is laid out for a
 * block of rows in a small buffer (the row repeated, or each row's value repeated w times) and
 * one vector-vector call covers the block. Every element is still the same IEEE operation, so
 * the results are those of the walk (pow too: its vs, sv and vv kernels are one function, lane
 * for lane). The limits are where the per-row calls stop costing
 * more (1M floats, one thread, BM_add_broadcast_narrow). */
#define NARROW_W     512  /* a row repeated: rows narrower than this */
#define NARROW_COL_W 128  /* a value per row: rows narrower than this (the spread costs more) */
#define NARROW_BUF   1024 /* floats per block: 4 KB, in L1 */

typedef struct {
    binop op;
    const float *full, *bc; /* the full-size operand and the broadcast one */
    bool bc_first;          /* the broadcast operand is the left one (a) */
    bool column;            /* bc holds one value per row, else one row */
    float *out;
    int64_t rows, w, block; /* block: rows per kernel call */
} narrow_job;

/* buf = each of v[0, nr) repeated w times. The common power-of-two widths get loops of a
 * constant width, which the compiler turns into vector stores. */
#define SPREAD_AS(W)                                                                               \
    for (int64_t r = 0; r < nr; r++)                                                               \
        for (int64_t c = 0; c < (W); c++)                                                          \
            buf[r * (W) + c] = v[r];                                                               \
    return

static void spread(float *restrict buf, const float *restrict v, int64_t nr, int64_t w)
{
    switch (w) {
    case 2:
        SPREAD_AS(2);
    case 4:
        SPREAD_AS(4);
    case 8:
        SPREAD_AS(8);
    case 16:
        SPREAD_AS(16);
    case 32:
        SPREAD_AS(32);
    case 64:
        SPREAD_AS(64);
    default:
        SPREAD_AS(w);
    }
}

static void narrow_blocks(void *ctx, int64_t begin, int64_t end)
{
    const narrow_job *j = ctx;
    float buf[NARROW_BUF];
    const tg_binary_vv_fn f = vv_kernel(j->op);
    if (!j->column)
        for (int64_t r = 0; r < j->block; r++)
            for (int64_t c = 0; c < j->w; c++)
                buf[r * j->w + c] = j->bc[c];
    for (int64_t blk = begin; blk < end; blk++) {
        int64_t r0 = blk * j->block, nr = j->rows - r0 < j->block ? j->rows - r0 : j->block;
        if (j->column)
            spread(buf, j->bc + r0, nr, j->w);
        const float *x = j->full + r0 * j->w;
        float *y = j->out + r0 * j->w;
        int64_t n = nr * j->w;
        if (j->bc_first)
            f(buf, x, y, n);
        else
            f(x, buf, y, n);
    }
}

/* Whether bc broadcasts as one row of the last dim (shape [..., 1, w]) or as one value per row
 * (shape [..., R, 1]) against a full contiguous operand of shape out. */
static bool narrow_pattern(const tg_tensor *bc, const tg_tensor *out, bool *column)
{
    int64_t w = out->shape[out->ndim - 1];
    if (!bc->contiguous || bc->ndim == 0)
        return false;
    if (bc->numel == w && bc->shape[bc->ndim - 1] == w) {
        *column = false;
        return true;
    }
    *column = true;
    return bc->numel == out->numel / w && bc->shape[bc->ndim - 1] == 1;
}

static bool narrow_broadcast(binop op, const tg_tensor *a, const tg_tensor *b, tg_tensor *out)
{
    if (out->ndim == 0 || out->numel == 0)
        return false;
    int64_t w = out->shape[out->ndim - 1];
    if (w < 1 || w >= NARROW_W || out->numel / w < 2)
        return false;
    bool a_full = a->contiguous && a->numel == out->numel;
    bool b_full = b->contiguous && b->numel == out->numel;
    if (a_full == b_full)
        return false;
    const tg_tensor *full = a_full ? a : b, *bc = a_full ? b : a;
    bool column;
    if (!narrow_pattern(bc, out, &column) || (column && w >= NARROW_COL_W))
        return false;
    narrow_job j = {op,          tg_ptr(full),   tg_ptr(bc), !a_full,       column,
                    tg_ptr(out), out->numel / w, w,          NARROW_BUF / w};
    int64_t blocks = (j.rows + j.block - 1) / j.block;
    int64_t grain = (tg_parallel_grain() + j.block * w - 1) / (j.block * w);
    tg_parallel_tasks(blocks, grain, narrow_blocks, &j);
    return true;
}

/* Forward only: a new tensor of the broadcast shape, no graph. */
static tg_tensor *binary_forward(binop op, tg_tensor *a, tg_tensor *b)
{
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    if (!tg_broadcast_shape(a, b, &ndim, shape, FN_NAME[op]))
        return NULL;
    tg_tensor *out = tg_new(ndim, shape, FN_NAME[op]);
    if (!out)
        return NULL;
    tg_tensor *ao = in_order(a, out->numel), *bo = b == a ? tg_retain(ao) : in_order(b, out->numel);
    if (!ao || !bo) {
        tg_release(ao), tg_release(bo), tg_release(out);
        return NULL;
    }
    a = ao, b = bo;
    if (a->contiguous && b->contiguous && a->numel == out->numel && b->numel == out->numel) {
        tg_run_vv(vv_kernel(op), tg_ptr(a), tg_ptr(b), tg_ptr(out), out->numel);
    } else if (a->contiguous && a->numel == out->numel && b->numel == 1) {
        run_vs(op, tg_ptr(a), tg_ptr(b)[0], tg_ptr(out), out->numel);
    } else if (b->contiguous && b->numel == out->numel && a->numel == 1) {
        run_sv(op, tg_ptr(a)[0], tg_ptr(b), tg_ptr(out), out->numel);
    } else if (!narrow_broadcast(op, a, b, out)) {
        int64_t sa[TG_MAX_DIMS], sb[TG_MAX_DIMS];
        tg_broadcast_strides(a, ndim, shape, sa);
        tg_broadcast_strides(b, ndim, shape, sb);
        float *base[3] = {tg_ptr(out), tg_ptr(a), tg_ptr(b)};
        const int64_t *strides[3] = {out->strides, sa, sb};
        tg_iter_rows(3, ndim, shape, base, strides, binary_rows, &op);
    }
    tg_release(ao), tg_release(bo);
    return out;
}

/* ---- backward rules (run with grad mode off; every result reduced to its input's shape) ---- */

static tg_status set_grad(tg_node *n, int i, tg_tensor *full, tg_tensor **gin)
{
    if (!full)
        return tg_last_status();
    gin[i] = tg_reduce_to_input(n, i, full);
    tg_release(full);
    return gin[i] ? TG_OK : tg_last_status();
}

static tg_status add_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_status st = TG_OK;
    for (int i = 0; i < n->n_inputs && st == TG_OK; i++)
        if (needs[i])
            st = set_grad(n, i, tg_retain(g), gin);
    return st;
}

static tg_status sub_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_status st = TG_OK;
    if (needs[0])
        st = set_grad(n, 0, tg_retain(g), gin);
    if (needs[1] && st == TG_OK)
        st = set_grad(n, 1, tg_neg_grad_(g, n->ops->name), gin);
    return st;
}

static tg_status mul_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_status st = TG_OK;
    if (needs[0])
        st = set_grad(n, 0, tg_mul(g, n->saved[1]), gin);
    if (needs[1] && st == TG_OK)
        st = set_grad(n, 1, tg_mul(g, n->saved[0]), gin);
    return st;
}

static tg_status div_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_tensor *a = n->saved[0], *b = n->saved[1];
    tg_status st = TG_OK;
    if (needs[0])
        st = set_grad(n, 0, tg_div(g, b), gin);
    if (needs[1] && st == TG_OK) {
        /* -g * ((a / b) / b), PyTorch's order of operations */
        tg_tensor *q = tg_div(a, b), *q2 = tg_div(q, b), *ng = tg_neg_grad_(g, n->ops->name);
        st = set_grad(n, 1, tg_mul(ng, q2), gin);
        tg_release(q), tg_release(q2), tg_release(ng);
    }
    return st;
}

static tg_tensor *pow_exponent_grad(tg_tensor *a, tg_tensor *b, tg_tensor *g);

/* Sets r (a fresh contiguous result of the broadcast shape) to 0 wherever b is 0: PyTorch masks
 * the base gradient there, after the product with g, so 0^0 gets 0 rather than 0 * 0^-1 = NaN,
 * and a NaN or negative g gives +0 too. */
static bool zero_where_exponent_zero(tg_tensor *r, tg_tensor *b)
{
    tg_tensor *be = tg_expand(b, r->ndim, r->shape), *bd = be ? tg_contiguous(be) : NULL;
    if (bd) {
        float *rp = tg_ptr(r);
        const float *bp = tg_ptr(bd);
        for (int64_t i = 0; i < r->numel; i++)
            if (bp[i] == 0.0f)
                rp[i] = 0.0f;
    }
    tg_release(be), tg_release(bd);
    return bd != NULL;
}

static tg_status pow_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_tensor *a = n->saved[0], *b = n->saved[1];
    tg_status st = TG_OK;
    if (needs[0]) {
        /* g * b * a^(b - 1), and 0 where b == 0 */
        tg_tensor *bm1 = tg_add_scalar(b, -1.0f), *p = tg_pow(a, bm1), *bp = tg_mul(b, p);
        tg_tensor *ga = tg_mul(g, bp);
        if (ga && !zero_where_exponent_zero(ga, b)) {
            tg_release(ga);
            ga = NULL;
        }
        st = set_grad(n, 0, ga, gin);
        tg_release(bm1), tg_release(p), tg_release(bp);
    }
    if (needs[1] && st == TG_OK)
        st = set_grad(n, 1, pow_exponent_grad(a, b, g), gin);
    return st;
}

/* g * (a^b * log(a)), the factor taken as 0 where a == 0 and b >= 0 (the limit), as PyTorch
 * defines it: masked before the product, so g's NaN or sign still shows there. */
static tg_tensor *pow_exponent_grad(tg_tensor *a, tg_tensor *b, tg_tensor *g)
{
    tg_tensor *p = tg_pow(a, b), *la = tg_log(a), *t = tg_mul(p, la);
    tg_release(p), tg_release(la);
    if (!t)
        return NULL;
    /* Patch the a == 0, b >= 0 entries. t has the broadcast shape; walk it with a and b. */
    tg_tensor *ac = tg_expand(a, t->ndim, t->shape), *bc = tg_expand(b, t->ndim, t->shape);
    tg_tensor *ad = ac ? tg_contiguous(ac) : NULL, *bd = bc ? tg_contiguous(bc) : NULL;
    tg_tensor *r = NULL;
    if (ad && bd) {
        float *tp = tg_ptr(t);
        const float *ap = tg_ptr(ad), *bp = tg_ptr(bd);
        for (int64_t i = 0; i < t->numel; i++)
            if (ap[i] == 0.0f && bp[i] >= 0.0f)
                tp[i] = 0.0f;
        r = tg_mul(g, t);
    }
    tg_release(t), tg_release(ac), tg_release(bc), tg_release(ad), tg_release(bd);
    return r;
}

/* Each takes a uniform g (the gradient of a sum) as it is: add and sub pass it on as one value
 * (tg_reduce_to sums it over broadcast dims as it would a dense g), and mul, div and pow
 * multiply by it through the vector-scalar kernels, so no tensor of it is written. */
static const tg_node_ops NODE_OPS[] = {
    {"AddBackward0", add_backward, true}, {"SubBackward0", sub_backward, true},
    {"MulBackward0", mul_backward, true}, {"DivBackward0", div_backward, true},
    {"PowBackward1", pow_backward, true},
};

static tg_tensor *binary(binop op, tg_tensor *a, tg_tensor *b)
{
    TG_API_BEGIN;
    if (!a || !b)
        TG_API_RETURN(tg_null_arg(FN_NAME[op]));
    tg_tensor *out = binary_forward(op, a, b);
    if (!out)
        TG_API_RETURN(NULL);
    tg_tensor *in[2] = {a, b};
    tg_node *node = tg_record(&NODE_OPS[op], out, 2, in);
    if (node && op >= OP_MUL) {
        /* Only what the gradients to compute read, as PyTorch saves: a's gradient needs b (and
         * pow's also a), b's needs a (and div's and pow's also b). An operand saved for nothing
         * would make an in-place change to it fail a backward that does not read it. */
        tg_save(node, op == OP_POW || b->requires_grad ? a : NULL);
        tg_save(node, op != OP_MUL || a->requires_grad ? b : NULL);
        /* PyTorch's PowBackward1 saves out (its exponent gradient is out * log(a)), whichever
         * operand requires grad: an in-place change to out fails the backward there, and here
         * too (the formulas here recompute the power, so the slot is only watched) */
        if (op == OP_POW && !tg_save_output(node, out)) {
            tg_release(out); /* out of memory for the alias: no output without its graph */
            TG_API_RETURN(NULL);
        }
    }
    TG_API_RETURN(tg_recorded(out, node, 2, in));
}

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b) { return binary(OP_ADD, a, b); }
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b) { return binary(OP_SUB, a, b); }
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b) { return binary(OP_MUL, a, b); }
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b) { return binary(OP_DIV, a, b); }
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b) { return binary(OP_POW, a, b); }

/* ---- tensor-scalar forms: the scalar is a node parameter, not a saved tensor ---- */

static tg_status add_scalar_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)n, (void)needs;
    gin[0] = tg_retain(g);
    return TG_OK;
}

/* A uniform g (the gradient of a sum) stays one value through these: none is written out. */
static tg_status mul_scalar_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    float s = n->fargs[0];
    gin[0] = tg_uniform_view_(g) ? tg_uniform_grad_(tg_ptr(g)[0] * s, g->ndim, g->shape, n->ops->name)
                                 : tg_mul_scalar(g, s);
    return gin[0] ? TG_OK : tg_last_status();
}

static tg_status rsub_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_neg_grad_(g, n->ops->name);
    return gin[0] ? TG_OK : tg_last_status();
}

/* All three take a uniform g as it is (add passes it on unchanged). PyTorch saves mul's scalar
 * as a tensor, so a second backward through it without retain_graph fails; add and rsub save
 * nothing, so through them it works. */
static const tg_node_ops ADD_SCALAR = {"AddBackward0", add_scalar_backward, true};
static const tg_node_ops MUL_SCALAR = {"MulBackward0", mul_scalar_backward, true, true};
static const tg_node_ops RSUB_SCALAR = {"RsubBackward1", rsub_backward, true};

static tg_tensor *scalar_op(const tg_node_ops *ops, const char *fn, tg_tensor *a, float s,
                            void (*run)(const tg_tensor *x, float s, tg_tensor *out))
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg(fn));
    tg_tensor *x = tg_as_contiguous(a);
    tg_tensor *out = x ? tg_new(x->ndim, x->shape, fn) : NULL;
    if (out)
        run(x, s, out);
    tg_release(x);
    tg_node *node = out ? tg_record(ops, out, 1, &a) : NULL;
    if (node)
        node->fargs[0] = s;
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

static void run_add(const tg_tensor *x, float s, tg_tensor *out)
{
    tg_run_vs(tg_kern()->add_vs, tg_ptr(x), s, tg_ptr(out), x->numel);
}

static void run_mul(const tg_tensor *x, float s, tg_tensor *out)
{
    tg_run_vs(tg_kern()->mul_vs, tg_ptr(x), s, tg_ptr(out), x->numel);
}

static void run_rsub(const tg_tensor *x, float s, tg_tensor *out)
{
    tg_run_sv(tg_kern()->sub_sv, s, tg_ptr(x), tg_ptr(out), x->numel);
}

tg_tensor *tg_add_scalar(tg_tensor *a, float s)
{
    return scalar_op(&ADD_SCALAR, "tg_add_scalar", a, s, run_add);
}

tg_tensor *tg_mul_scalar(tg_tensor *a, float s)
{
    return scalar_op(&MUL_SCALAR, "tg_mul_scalar", a, s, run_mul);
}

tg_tensor *tg_rsub_scalar(float s, tg_tensor *a)
{
    return scalar_op(&RSUB_SCALAR, "tg_rsub_scalar", a, s, run_rsub);
}
