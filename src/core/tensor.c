/* Tensor headers: creation, geometry, inspection and reference counting. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/kernels.h"
#include "../autograd/node.h"
#include "tensor.h"

int64_t tg_check_shape(int ndim, const int64_t *shape, const char *fn)
{
    if (ndim < 0 || ndim > TG_MAX_DIMS) {
        tg_set_error(TG_EINVAL, "%s: ndim %d is outside 0..%d", fn, ndim, TG_MAX_DIMS);
        return -1;
    }
    if (ndim > 0 && !shape) {
        tg_set_error(TG_EINVAL, "%s: shape is NULL", fn);
        return -1;
    }
    /* The bound is on the product of the nonzero sizes, not on numel: a size-0 dim makes numel
     * 0, but the strides are still products of the other sizes and must not overflow. */
    int64_t n = 1;
    bool empty = false;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            char buf[160];
            tg_set_error(TG_EINVAL, "%s: shape %s has a negative size", fn,
                         tg_shape_str(buf, sizeof buf, ndim, shape));
            return -1;
        }
        if (shape[i] == 0) {
            empty = true;
            continue;
        }
        if (n > INT64_MAX / 4 / shape[i]) {
            char buf[160];
            tg_set_error(TG_ENOMEM, "%s: shape %s is too large", fn,
                         tg_shape_str(buf, sizeof buf, ndim, shape));
            return -1;
        }
        n *= shape[i];
    }
    return empty ? 0 : n;
}

void tg_set_contiguous_strides(tg_tensor *t)
{
    /* A size-0 dim counts as 1, as PyTorch computes strides: shape [4, 0, 5] has strides
     * [5, 5, 1], not [0, 5, 1] (tg_check_shape bounds the product of the nonzero sizes). */
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->strides[i] = s;
        s *= t->shape[i] ? t->shape[i] : 1;
    }
    t->contiguous = true;
}

bool tg_compute_contiguous(const tg_tensor *t)
{
    /* A tensor without elements is contiguous whatever its strides, as in PyTorch: so
     * tg_contiguous returns an empty view itself rather than a CloneBackward0 copy. */
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] == 0)
            return true;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->strides[i] != s)
            return false;
        s *= t->shape[i];
    }
    return true;
}

tg_tensor *tg_new(int ndim, const int64_t *shape, const char *fn)
{
    /* 0-d tensors are the hot case of scalar graphs: no shape to check or copy. */
    int64_t n = ndim == 0 ? 1 : tg_check_shape(ndim, shape, fn);
    if (n < 0)
        return NULL;
    tg_tensor *t = tg_tensor_header();
    if (!t || !(t->storage = tg_storage_new(n))) {
        if (t)
            tg_tensor_header_free(t);
        tg_set_error(TG_ENOMEM, "%s: out of memory for %lld elements", fn, (long long)n);
        return NULL;
    }
    t->ndim = (int8_t)ndim;
    t->numel = n;
    if (ndim) {
        memcpy(t->shape, shape, (size_t)ndim * sizeof(int64_t));
        tg_set_contiguous_strides(t);
    }
    return t;
}

tg_tensor *tg_view_of(const tg_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                      int64_t offset)
{
    tg_tensor *v = tg_tensor_header();
    if (!v) {
        tg_set_error(TG_ENOMEM, "out of memory for a tensor header");
        return NULL;
    }
    v->storage = t->storage;
    tg_ref_inc(&v->storage->refcount);
    v->offset = offset;
    v->ndim = (int8_t)ndim;
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        v->shape[i] = shape[i];
        v->strides[i] = strides[i];
        n *= shape[i];
    }
    v->numel = n;
    v->contiguous = tg_compute_contiguous(v);
    return v;
}

bool tg_same_shape(const tg_tensor *a, const tg_tensor *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return false;
    return true;
}

tg_tensor *tg_contiguous_copy_for(const tg_tensor *t, const char *fn)
{
    tg_tensor *c = tg_new(t->ndim, t->shape, fn);
    if (c)
        tg_copy_strided(c, t);
    return c;
}

tg_tensor *tg_contiguous_copy(const tg_tensor *t)
{
    return tg_contiguous_copy_for(t, "tg_contiguous");
}

tg_tensor *tg_as_contiguous(tg_tensor *t)
{
    if (t->contiguous) {
        tg_ref_inc(&t->refcount);
        return t;
    }
    return tg_contiguous_copy(t);
}

void tg_bump_version(tg_tensor *t, const char *name)
{
    t->storage->version++;
    t->storage->last_writer = name;
}

/* ---- lifetime ---- */

tg_tensor *tg_retain(tg_tensor *t)
{
    if (t)
        tg_ref_inc(&t->refcount);
    return t;
}

void tg_tensor_destroy(tg_tensor *t)
{
    tg_storage_release(t->storage);
    if (t->grad)
        tg_release(t->grad);
    if (t->grad_fn) {
        if (t->grad_fn->retain_target == t)
            t->grad_fn->retain_target = NULL;
        tg_node_release(t->grad_fn);
    }
    tg_release(t->no_grad_base);
    tg_tensor_header_free(t);
}

void tg_release(tg_tensor *t)
{
    if (t && tg_ref_dec(&t->refcount))
        tg_tensor_destroy(t);
}

/* ---- creation ---- */

tg_tensor *tg_empty(int ndim, const int64_t *shape)
{
    TG_API_BEGIN;
    TG_API_RETURN(tg_new(ndim, shape, "tg_empty"));
}

/* fn is the public name that errors report (tg_zeros must not blame tg_full). */
static tg_tensor *full_as(int ndim, const int64_t *shape, float value, const char *fn)
{
    TG_API_BEGIN;
    tg_tensor *t = tg_new(ndim, shape, fn);
    if (t)
        tg_kern()->fill(tg_ptr(t), value, t->numel);
    TG_API_RETURN(t);
}

tg_tensor *tg_full(int ndim, const int64_t *shape, float value)
{
    return full_as(ndim, shape, value, "tg_full");
}

tg_tensor *tg_zeros(int ndim, const int64_t *shape)
{
    return full_as(ndim, shape, 0.0f, "tg_zeros");
}

tg_tensor *tg_ones(int ndim, const int64_t *shape)
{
    return full_as(ndim, shape, 1.0f, "tg_ones");
}

tg_tensor *tg_scalar(float v)
{
    TG_API_BEGIN;
    tg_tensor *t = tg_new(0, NULL, "tg_scalar");
    if (t)
        t->storage->data[0] = v;
    TG_API_RETURN(t);
}

tg_tensor *tg_from_data(const float *data, int ndim, const int64_t *shape)
{
    TG_API_BEGIN;
    if (!data) {
        tg_set_error(TG_EINVAL, "tg_from_data: data is NULL");
        TG_API_RETURN(NULL);
    }
    tg_tensor *t = tg_new(ndim, shape, "tg_from_data");
    if (t && t->numel)
        memcpy(tg_ptr(t), data, (size_t)t->numel * sizeof(float));
    TG_API_RETURN(t);
}

tg_tensor *tg_arange(float start, float end, float step)
{
    TG_API_BEGIN;
    if (step == 0.0f || !isfinite(start) || !isfinite(end) || !isfinite(step) ||
        (step > 0 && start > end) || (step < 0 && start < end)) {
        tg_set_error(TG_EINVAL, "tg_arange: bad range start=%g end=%g step=%g", start, end, step);
        TG_API_RETURN(NULL);
    }
    /* PyTorch computes the length in double: ceil((end - start) / step). */
    double len = ceil(((double)end - (double)start) / (double)step);
    if (!(len <= (double)(INT64_MAX / 4))) { /* the cast below would be undefined */
        tg_set_error(TG_ENOMEM, "tg_arange: start=%g end=%g step=%g gives %g elements, too many",
                     start, end, step, len);
        TG_API_RETURN(NULL);
    }
    int64_t n = (int64_t)len;
    tg_tensor *t = tg_new(1, &n, "tg_arange");
    if (t) {
        float *p = tg_ptr(t);
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)((double)start + (double)i * (double)step);
    }
    TG_API_RETURN(t);
}

/* ---- inspection ---- */

int tg_ndim(const tg_tensor *t) { return t ? t->ndim : -1; }

const int64_t *tg_shape(const tg_tensor *t) { return t ? t->shape : NULL; }

const int64_t *tg_strides(const tg_tensor *t) { return t ? t->strides : NULL; }

int64_t tg_numel(const tg_tensor *t) { return t ? t->numel : -1; }

bool tg_is_contiguous(const tg_tensor *t) { return t && t->contiguous; }

uint32_t tg_version(const tg_tensor *t) { return t ? t->storage->version : 0; }

float tg_item(const tg_tensor *t)
{
    tg_clear_error();
    if (!t) {
        /* t is what a failed call returned (tg_item(tg_sum(tg_add(a, b)))): keep its cause */
        tg_null_input(TG_EINVAL, "tg_item: tensor is NULL");
        return NAN;
    }
    if (t->numel != 1) {
        char buf[160];
        tg_set_error(TG_ESHAPE,
                     "tg_item: a tensor with %lld elements (shape %s) cannot be converted to a "
                     "scalar",
                     (long long)t->numel, tg_shape_str(buf, sizeof buf, t->ndim, t->shape));
        return NAN;
    }
    return tg_ptr(t)[0];
}

float *tg_data(tg_tensor *t)
{
    tg_clear_error();
    if (!t) {
        tg_null_input(TG_EINVAL, "tg_data: tensor is NULL");
        return NULL;
    }
    if (!t->contiguous) {
        tg_set_error(TG_EINVAL, "tg_data: tensor is not contiguous (use tg_contiguous)");
        return NULL;
    }
    tg_drop_sum(t->storage); /* the caller may write through the pointer */
    return tg_ptr(t);
}

int64_t tg_copy_to(const tg_tensor *t, float *out, int64_t capacity)
{
    tg_clear_error();
    if (!t || !out) {
        if (!t) {
            tg_null_input(TG_EINVAL, "tg_copy_to: tensor is NULL");
        } else {
            tg_set_error(TG_EINVAL, "tg_copy_to: out is NULL");
            tg_mark_null_arg();
        }
        return -1;
    }
    if (capacity < t->numel) {
        tg_set_error(TG_EINVAL, "tg_copy_to: capacity %lld is less than numel %lld",
                     (long long)capacity, (long long)t->numel);
        return -1;
    }
    /* Only the geometry: copying the whole header would read its reference count without
     * atomics, a race when other threads share t (README: threads sharing a tensor). */
    tg_storage st = {.data = out, .capacity = capacity, .refcount = 1};
    tg_tensor dst = {.storage = &st, .numel = t->numel, .ndim = t->ndim};
    memcpy(dst.shape, t->shape, sizeof dst.shape);
    tg_set_contiguous_strides(&dst);
    tg_copy_strided(&dst, t);
    return t->numel;
}
