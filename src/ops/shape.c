/* Views and copies that change geometry: reshape, transpose, permute, narrow, expand,
 * contiguous, clone. Views share storage (and so its version counter) with their base. */
#include <string.h>

#include "ops.h"

static int norm_dim(int dim, int ndim, const char *fn)
{
    int n = ndim ? ndim : 1;
    if (dim < -n || dim >= n) {
        tg_set_error(TG_EINVAL, "%s: dim %d is out of range for a %d-d tensor", fn, dim, ndim);
        return -1;
    }
    return dim < 0 ? dim + n : dim;
}

/* A view made while grad mode is off of a tensor that requires grad remembers that tensor, as
 * PyTorch's views do (creation meta NO_GRAD_MODE): changing it in place later with grad mode on
 * would bypass the graph of that tensor, so the in-place ops refuse it while the base still
 * requires grad. A view of such a view, in either mode, shares its base. Views of tensors that
 * need no grad (those backward makes of gradients) keep no base, so they hold no extra
 * reference that would keep a gradient's storage shared. Returns out. */
static tg_tensor *note_view_base(tg_tensor *out, tg_tensor *a)
{
    tg_tensor *base = a->no_grad_base;
    if (!base && a->requires_grad && !tg_grad_enabled())
        base = a;
    if (out && base)
        out->no_grad_base = tg_retain(base);
    return out;
}

/* ---- reshape ---- */

/* Resolves one -1 entry and checks the element count; false + error otherwise. */
static bool infer_shape(const tg_tensor *a, int ndim, const int64_t *shape, int64_t *out)
{
    char x[160], y[160];
    int infer = -1;
    if (ndim < 0 || ndim > TG_MAX_DIMS || (ndim && !shape)) {
        tg_set_error(TG_EINVAL, "tg_reshape: bad ndim %d or NULL shape", ndim);
        return false;
    }
    for (int i = 0; i < ndim; i++) {
        out[i] = shape[i];
        if (shape[i] != -1)
            continue;
        if (infer >= 0) {
            tg_set_error(TG_EINVAL, "tg_reshape: only one dimension can be inferred (shape %s)",
                         tg_shape_str(x, sizeof x, ndim, shape));
            return false;
        }
        infer = i;
        out[i] = 1; /* for the product of the others */
    }
    /* The other sizes: none negative, and a product that cannot overflow. */
    int64_t known = tg_check_shape(ndim, out, "tg_reshape");
    if (known < 0)
        return false;
    if (infer >= 0) {
        if (known == 0 || a->numel % known != 0)
            goto mismatch;
        out[infer] = a->numel / known;
        known *= out[infer];
    }
    if (known == a->numel)
        return true;
mismatch:
    tg_set_error(TG_ESHAPE, "tg_reshape: shape %s is invalid for input of size %lld (shape %s)",
                 tg_shape_str(x, sizeof x, ndim, shape), (long long)a->numel,
                 tg_shape_str(y, sizeof y, a->ndim, a->shape));
    return false;
}

/* Strides that let `shape` view a's memory without copying, if any exist. The old dims are
 * grouped into runs that are contiguous with each other; each run must be covered exactly by
 * consecutive new dims, which then take strides inside that run. */
static bool view_strides(const tg_tensor *a, int ndim, const int64_t *shape, int64_t *strides)
{
    int64_t sz[TG_MAX_DIMS], st[TG_MAX_DIMS];
    int m = 0;
    if (a->numel == 0)
        goto dense;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != 1) {
            sz[m] = a->shape[i];
            st[m] = a->strides[i];
            m++;
        }
    int ni = 0;
    for (int j = 0; j < m;) {
        int end = j; /* run j..end */
        int64_t run = sz[j];
        while (end + 1 < m && st[end] == st[end + 1] * sz[end + 1])
            run *= sz[++end];
        /* consume new dims whose product is exactly `run` */
        int start = ni;
        int64_t prod = 1;
        while (ni < ndim && prod < run)
            prod *= shape[ni++];
        if (prod != run)
            return false;
        int64_t s = st[end];
        for (int k = ni - 1; k >= start; k--) {
            strides[k] = s;
            s *= shape[k];
        }
        j = end + 1;
    }
    for (; ni < ndim; ni++) /* trailing size-1 dims */
        strides[ni] = 1;
    return true;
dense:;
    int64_t s = 1;
    for (int k = ndim - 1; k >= 0; k--) {
        strides[k] = s;
        s *= shape[k] ? shape[k] : 1;
    }
    return true;
}

static tg_status reshape_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_reshape(g, n->in_ndim[0], n->in_shape[0]);
    return gin[0] ? TG_OK : tg_last_status();
}

static const tg_node_ops RESHAPE_VIEW = {"ReshapeAliasBackward0", reshape_backward};
static const tg_node_ops RESHAPE_COPY = {"UnsafeViewBackward0", reshape_backward};

tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_reshape"));
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    if (!infer_shape(a, ndim, shape, sh))
        TG_API_RETURN(NULL);
    tg_tensor *out;
    const tg_node_ops *ops = &RESHAPE_VIEW;
    if (view_strides(a, ndim, sh, st)) {
        out = note_view_base(tg_view_of(a, ndim, sh, st, a->offset), a);
    } else {
        /* No view exists: copy, as PyTorch does (and name the node as it does). */
        ops = &RESHAPE_COPY;
        tg_tensor *c = tg_contiguous_copy(a);
        if (c) {
            view_strides(c, ndim, sh, st); /* always succeeds on a dense tensor */
            out = tg_view_of(c, ndim, sh, st, 0);
        } else {
            out = NULL;
        }
        tg_release(c);
    }
    tg_node *node = out ? tg_record(ops, out, 1, &a) : NULL;
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

static const tg_node_ops VIEW = {"ViewBackward0", reshape_backward};

tg_tensor *tg_view_dense_(tg_tensor *a, int ndim, const int64_t *shape)
{
    int64_t st[TG_MAX_DIMS];
    if (!a->contiguous) {
        tg_set_error(TG_EINVAL, "view: the input is not contiguous");
        return NULL;
    }
    view_strides(a, ndim, shape, st); /* always succeeds on a dense tensor */
    tg_tensor *out = tg_view_of(a, ndim, shape, st, a->offset);
    tg_node *node = out ? tg_record(&VIEW, out, 1, &a) : NULL;
    return tg_recorded(out, node, 1, &a);
}

/* ---- permute / transpose ---- */

static tg_tensor *permuted_view(tg_tensor *a, const int *perm)
{
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    for (int i = 0; i < a->ndim; i++) {
        sh[i] = a->shape[perm[i]];
        st[i] = a->strides[perm[i]];
    }
    return tg_view_of(a, a->ndim, sh, st, a->offset);
}

static tg_status permute_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    int inv[TG_MAX_DIMS];
    for (int i = 0; i < n->in_ndim[0]; i++)
        inv[n->iargs[i]] = i;
    gin[0] = permuted_view(g, inv);
    return gin[0] ? TG_OK : tg_last_status();
}

static const tg_node_ops PERMUTE = {"PermuteBackward0", permute_backward};
static const tg_node_ops TRANSPOSE = {"TransposeBackward0", permute_backward};

static tg_tensor *permute_with(const tg_node_ops *ops, tg_tensor *a, const int *perm)
{
    tg_tensor *out = note_view_base(permuted_view(a, perm), a);
    tg_node *node = out ? tg_record(ops, out, 1, &a) : NULL;
    if (node)
        for (int i = 0; i < a->ndim; i++)
            node->iargs[i] = perm[i];
    return tg_recorded(out, node, 1, &a);
}

tg_tensor *tg_permute(tg_tensor *a, const int *dims)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_permute"));
    if (!dims && a->ndim > 0) { /* a 0-d tensor has no dims to list, as tg_reshape takes it */
        tg_set_error(TG_EINVAL, "tg_permute: dims is NULL for a %d-d tensor", a->ndim);
        tg_mark_null_arg(); /* the caller's own NULL: no cause for the next call */
        TG_API_RETURN(NULL);
    }
    int perm[TG_MAX_DIMS];
    bool seen[TG_MAX_DIMS] = {false};
    for (int i = 0; i < a->ndim; i++) {
        int d = norm_dim(dims[i], a->ndim, "tg_permute");
        if (d < 0)
            TG_API_RETURN(NULL);
        if (seen[d]) {
            tg_set_error(TG_EINVAL, "tg_permute: dim %d is repeated", d);
            TG_API_RETURN(NULL);
        }
        seen[d] = true;
        perm[i] = d;
    }
    TG_API_RETURN(permute_with(&PERMUTE, a, perm));
}

tg_tensor *tg_transpose(tg_tensor *a, int d0, int d1)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_transpose"));
    int x = norm_dim(d0, a->ndim, "tg_transpose"),
        y = x < 0 ? -1 : norm_dim(d1, a->ndim, "tg_transpose");
    if (y < 0)
        TG_API_RETURN(NULL);
    int perm[TG_MAX_DIMS];
    for (int i = 0; i < TG_MAX_DIMS; i++)
        perm[i] = i;
    perm[x] = y;
    perm[y] = x;
    TG_API_RETURN(permute_with(&TRANSPOSE, a, perm));
}

/* ---- narrow ---- */

static tg_status narrow_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    tg_tensor *gx = tg_zeros(n->in_ndim[0], n->in_shape[0]);
    tg_tensor *win = gx ? tg_narrow(gx, (int)n->iargs[0], n->iargs[1], n->iargs[2]) : NULL;
    if (win)
        tg_copy_strided(win, g);
    tg_release(win);
    if (gx && !win) {
        tg_release(gx);
        gx = NULL;
    }
    gin[0] = gx;
    return gx ? TG_OK : tg_last_status();
}

static const tg_node_ops NARROW = {"SliceBackward0", narrow_backward};

tg_tensor *tg_narrow(tg_tensor *a, int dim, int64_t start, int64_t length)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_narrow"));
    if (a->ndim == 0) {
        tg_set_error(TG_EINVAL, "tg_narrow: cannot narrow a 0-d tensor");
        TG_API_RETURN(NULL);
    }
    int d = norm_dim(dim, a->ndim, "tg_narrow");
    if (d < 0)
        TG_API_RETURN(NULL);
    int64_t size = a->shape[d];
    if (start < -size || start > size) { /* named as given, not after adding size */
        tg_set_error(TG_EINVAL,
                     "tg_narrow: start %lld is out of range for dimension %d of size %lld "
                     "(expected %lld to %lld)",
                     (long long)start, d, (long long)size, (long long)-size, (long long)size);
        TG_API_RETURN(NULL);
    }
    if (start < 0)
        start += size;
    if (length < 0 || length > size - start) {
        tg_set_error(TG_EINVAL,
                     "tg_narrow: start %lld + length %lld exceeds dimension %d of size %lld",
                     (long long)start, (long long)length, d, (long long)size);
        TG_API_RETURN(NULL);
    }
    int64_t sh[TG_MAX_DIMS];
    memcpy(sh, a->shape, sizeof sh);
    sh[d] = length;
    tg_tensor *out = note_view_base(
        tg_view_of(a, a->ndim, sh, a->strides, a->offset + start * a->strides[d]), a);
    tg_node *node = out ? tg_record(&NARROW, out, 1, &a) : NULL;
    if (node) {
        node->iargs[0] = d;
        node->iargs[1] = start;
        node->iargs[2] = length;
    }
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

/* ---- expand ---- */

static tg_status expand_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)needs;
    gin[0] = tg_reduce_to_input(n, 0, g);
    return gin[0] ? TG_OK : tg_last_status();
}

static const tg_node_ops EXPAND = {"ExpandBackward0", expand_backward};

tg_tensor *tg_expand(tg_tensor *a, int ndim, const int64_t *shape)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_expand"));
    char x[160], y[160];
    if (ndim > TG_MAX_DIMS) {
        tg_set_error(TG_EINVAL, "tg_expand: ndim %d is more than %d", ndim, TG_MAX_DIMS);
        TG_API_RETURN(NULL);
    }
    if (ndim > 0 && !shape) {
        tg_set_error(TG_EINVAL, "tg_expand: shape is NULL");
        TG_API_RETURN(NULL);
    }
    if (ndim < a->ndim) {
        tg_set_error(TG_ESHAPE,
                     "tg_expand: the number of sizes provided (%d) must be greater or equal to "
                     "the number of dimensions in the tensor (%d)",
                     ndim, a->ndim);
        TG_API_RETURN(NULL);
    }
    int64_t sh[TG_MAX_DIMS], st[TG_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int ia = i - (ndim - a->ndim);
        int64_t have = ia >= 0 ? a->shape[ia] : 1;
        int64_t want = shape[i] == -1 && ia >= 0 ? have : shape[i];
        if (want == -1) { /* -1 keeps a size, and a new leading dimension has none */
            tg_set_error(TG_ESHAPE,
                         "tg_expand: the expanded size (-1) isn't allowed in a leading, "
                         "non-existing dimension %d",
                         i);
            TG_API_RETURN(NULL);
        }
        if (want < 0 || (have != want && have != 1)) {
            tg_set_error(TG_ESHAPE,
                         "tg_expand: the expanded size (%lld) must match the existing size (%lld) "
                         "at non-singleton dimension %d; target sizes %s, tensor sizes %s",
                         (long long)want, (long long)have, i,
                         tg_shape_str(x, sizeof x, ndim, shape),
                         tg_shape_str(y, sizeof y, a->ndim, a->shape));
            TG_API_RETURN(NULL);
        }
        sh[i] = want;
        st[i] = (ia < 0 || have != want) ? 0 : a->strides[ia];
    }
    if (tg_check_shape(ndim, sh, "tg_expand") < 0) /* numel must not overflow */
        TG_API_RETURN(NULL);
    tg_tensor *out = note_view_base(tg_view_of(a, ndim, sh, st, a->offset), a);
    tg_node *node = out ? tg_record(&EXPAND, out, 1, &a) : NULL;
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

/* ---- contiguous / clone ---- */

static tg_status clone_backward(tg_node *n, tg_tensor *g, const bool *needs, tg_tensor **gin)
{
    (void)n, (void)needs;
    gin[0] = tg_retain(g);
    return TG_OK;
}

static const tg_node_ops CLONE = {"CloneBackward0", clone_backward};

tg_tensor *tg_clone(tg_tensor *a)
{
    TG_API_BEGIN;
    if (!a)
        TG_API_RETURN(tg_null_arg("tg_clone"));
    tg_tensor *out = tg_contiguous_copy_for(a, "tg_clone");
    tg_node *node = out ? tg_record(&CLONE, out, 1, &a) : NULL;
    TG_API_RETURN(tg_recorded(out, node, 1, &a));
}

tg_tensor *tg_contiguous(tg_tensor *a)
{
    if (!a || a->contiguous) {
        TG_API_BEGIN;
        /* PyTorch returns the tensor itself */
        TG_API_RETURN(a ? tg_retain(a) : tg_null_arg("tg_contiguous"));
    }
    return tg_clone(a);
}
