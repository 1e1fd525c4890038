/* F.linear. The common 2-D case with a bias is one node (PyTorch's AddmmBackward0): the bias is
 * written into the output first and the product accumulated on top (tg_gemm_nt_acc). */
#include "ops.h"

static tg_status addmm_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    tg_tensor *x = n->saved[0], *W = n->saved[1];
    tg_status st = TG_OK;
    if (needs[0]) /* dx = g @ W */
        st = (gin[0] = tg_matmul(g, W)) ? TG_OK : tg_last_status();
    if (needs[1] && st == TG_OK) { /* dW = g^T @ x */
        tg_tensor *gt = tg_transpose(g, 0, 1);
        gin[1] = gt ? tg_matmul(gt, x) : NULL;
        tg_release(gt);
        st = gin[1] ? TG_OK : tg_last_status();
    }
    if (needs[2] && st == TG_OK) /* db = column sums of g */
        st = (gin[2] = tg_sum_dim(g, 0, false)) ? TG_OK : tg_last_status();
    return st;
}

static const tg_node_ops ADDMM = {"AddmmBackward0", addmm_backward};

static bool check_linear(const tg_tensor *x, const tg_tensor *W, const tg_tensor *b)
{
    /* The shapes are formatted only for a message: snprintf on every call cost a tenth of a
     * small network's training step. */
    char xs[160], ws[160], bs[160];
    if (W->ndim != 2 || x->ndim < 1 || x->shape[x->ndim - 1] != W->shape[1]) {
        tg_set_error(TG_ESHAPE,
                     "tg_linear: input %s and weight %s do not fit ([..., in] and [out, in])",
                     tg_shape_str(xs, sizeof xs, x->ndim, x->shape),
                     tg_shape_str(ws, sizeof ws, W->ndim, W->shape));
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != W->shape[0])) {
        tg_set_error(TG_ESHAPE, "tg_linear: bias %s does not match weight %s (want [%lld])",
                     tg_shape_str(bs, sizeof bs, b->ndim, b->shape),
                     tg_shape_str(ws, sizeof ws, W->ndim, W->shape), (long long)W->shape[0]);
        return false;
    }
    return true;
}

/* Every one of the rows of y [rows, width] set to the row b. A copy call per row cost more than
 * the product for narrow outputs (a kernel call to move one float per row for a network's last
 * layer), so a width of 1 is one fill, and wider rows are copied in doubling blocks: the first
 * row from b, then rows [0, r) to [r, 2r), log2(rows) calls in all. */
static void fill_rows(const float *b, float *y, int64_t rows, int64_t width)
{
    const tg_kernels *k = tg_kern();
    if (rows == 0) /* y has no row to hold b: its storage may be smaller than width */
        return;
    if (width == 1) {
        k->fill(y, b[0], rows);
        return;
    }
    k->copy(b, y, width);
    for (int64_t done = 1; done < rows;) {
        int64_t n = done < rows - done ? done : rows - done;
        k->copy(y, y + done * width, n * width);
        done += n;
    }
}

/* out = b (broadcast over rows) + x @ W^T, with x and W dense row-major. */
static tg_tensor *addmm_forward(tg_tensor *x, tg_tensor *W, tg_tensor *b)
{
    tg_tensor *xc = tg_as_contiguous(x), *wc = tg_as_contiguous(W), *bc = tg_as_contiguous(b);
    int64_t rows = x->shape[0], in = x->shape[1], outf = W->shape[0];
    tg_tensor *out = xc && wc && bc ? tg_new(2, (int64_t[]){rows, outf}, "tg_linear") : NULL;
    if (out) {
        fill_rows(tg_ptr(bc), tg_ptr(out), rows, outf);
        if (!tg_gemm_nt_acc(tg_ptr(xc), tg_ptr(wc), tg_ptr(out), rows, in, outf)) {
            tg_release(out);
            out = NULL;
        }
    }
    tg_release(xc), tg_release(wc), tg_release(bc);
    return out;
}

/* A contiguous [B, T, in] input with a bias: PyTorch views it as [B * T, in], runs the 2-D addmm
 * and views the result back, so the graph and the output's grad_fn (ViewBackward0) match, and
 * the bias costs no extra pass over the output. */
static tg_tensor *linear_3d(tg_tensor *x, tg_tensor *W, tg_tensor *b)
{
    int64_t rows = x->shape[0] * x->shape[1];
    int64_t shape[3] = {x->shape[0], x->shape[1], W->shape[0]};
    tg_tensor *x2 = tg_view_dense_(x, 2, (int64_t[]){rows, x->shape[2]});
    tg_tensor *y2 = x2 ? tg_linear(x2, W, b) : NULL;
    tg_tensor *y = y2 ? tg_view_dense_(y2, 3, shape) : NULL;
    tg_release(x2), tg_release(y2);
    return y;
}

tg_tensor *tg_linear(tg_tensor *x, tg_tensor *W, tg_tensor *b)
{
    TG_API_BEGIN;
    if (!x || !W)
        TG_API_RETURN(tg_null_arg("tg_linear"));
    if (!check_linear(x, W, b))
        TG_API_RETURN(NULL);
    if (x->ndim == 2 && b) {
        tg_tensor *out = addmm_forward(x, W, b);
        tg_tensor *in[3] = {x, W, b};
        tg_node *node = out ? tg_record(&ADDMM, out, 3, in) : NULL;
        if (node) { /* dW reads x and dx reads W: each only when needed, as PyTorch saves */
            tg_save(node, W->requires_grad ? x : NULL);
            tg_save(node, x->requires_grad ? W : NULL);
        }
        TG_API_RETURN(tg_recorded(out, node, 3, in));
    }
    if (x->ndim == 3 && b && x->contiguous)
        TG_API_RETURN(linear_3d(x, W, b));
    /* Other inputs compose matmul and add, as PyTorch does for them. */
    tg_tensor *wt = tg_transpose(W, 0, 1);
    tg_tensor *y = wt ? tg_matmul(x, wt) : NULL;
    tg_release(wt);
    if (y && b) {
        tg_tensor *yb = tg_add(y, b);
        tg_release(y);
        y = yb;
    }
    TG_API_RETURN(y);
}
