/* tg_repr / tg_print: PyTorch's repr, with the grad suffix PyTorch shows. */
#include <stdio.h>
#include <stdlib.h>

#include "../autograd/node.h"
#include "repr.h"
#include "tensor.h"

/* tg_repr for the public function fn (named in messages). */
static char *repr(const tg_tensor *t, const char *fn)
{
    tg_clear_error();
    if (!t) {
        /* t is what a failed call returned (tg_print(tg_add(a, b))): keep its cause */
        tg_null_input(TG_EINVAL, "%s: tensor is NULL", fn);
        return NULL;
    }
    char suffix[96];
    const char *sfx = NULL;
    if (t->grad_fn) {
        snprintf(suffix, sizeof suffix, "grad_fn=<%s>", t->grad_fn->ops->name);
        sfx = suffix;
    } else if (t->requires_grad) {
        sfx = "requires_grad=True";
    }
    char *s = tg_format_tensor(t->ndim, t->shape, t->strides, tg_ptr(t), sfx);
    if (!s)
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    return s;
}

char *tg_repr(const tg_tensor *t)
{
    return repr(t, "tg_repr");
}

int tg_print(const tg_tensor *t)
{
    char *s = repr(t, "tg_print");
    if (!s)
        return -1;
    int rc = puts(s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

int tg_float_repr(double v, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return -1;
    return tg_format_py_float(v, buf, cap);
}
