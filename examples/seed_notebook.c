/* The seed notebook, cell by cell, with the tapegrad C API. Prints exactly what the notebook
 * shows (tests/seed-notebook.expected). Each cell runs in a scope, so every tensor it makes is
 * released at the end of the cell. */
#include <stdio.h>
#include <tapegrad.h>

/* Python's binary_cross_entropy_loss from the notebook, op for op. */
static tg_tensor *bce_loss(tg_tensor *prediction, tg_tensor *target)
{
    const float epsilon = 1e-8f;
    tg_tensor *p = tg_clamp(prediction, epsilon, 1.0f - epsilon);
    tg_tensor *pos = tg_mul(target, tg_log(p));
    tg_tensor *neg = tg_mul(tg_rsub_scalar(1.0f, target), tg_log(tg_rsub_scalar(1.0f, p)));
    return tg_neg(tg_add(pos, neg));
}

static void print_float(const char *label, tg_tensor *t)
{
    char buf[32];
    tg_float_repr(tg_item(t), buf, sizeof buf);
    printf("%s%s\n", label, buf);
}

/* y = x^2; z = sin(y) */
static void derivatives(void)
{
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_scalar(3.0f), true);
    tg_tensor *y = tg_pow_scalar(x, 2.0f);
    tg_print(x);
    tg_print(y);
    tg_backward(y, NULL, false);
    tg_print(tg_grad(x));

    x = tg_requires_grad_(tg_scalar(3.0f), true);
    y = tg_pow_scalar(x, 2.0f);
    tg_tensor *z = tg_sin(y);
    tg_print(x);
    tg_print(y);
    tg_print(z);
    tg_backward(z, NULL, false);
    tg_print(tg_grad(x));
    tg_scope_end();
}

/* cgpa = 6.7, placement = 0: the gradient by hand, then by autograd */
static void placement(void)
{
    tg_scope_begin();
    tg_tensor *x = tg_scalar(6.7f), *y = tg_scalar(0.0f);
    tg_tensor *w = tg_scalar(1.0f), *b = tg_scalar(0.0f);
    tg_tensor *z = tg_add(tg_mul(w, x), b);
    tg_tensor *y_pred = tg_sigmoid(z);
    tg_print(bce_loss(y_pred, y));

    tg_tensor *one_m = tg_rsub_scalar(1.0f, y_pred);
    tg_tensor *dloss_dy_pred = tg_div(tg_sub(y_pred, y), tg_mul(y_pred, one_m));
    tg_tensor *dy_pred_dz = tg_mul(y_pred, tg_rsub_scalar(1.0f, y_pred));
    tg_tensor *dL_dw = tg_mul(tg_mul(dloss_dy_pred, dy_pred_dz), x);
    tg_tensor *dL_db = tg_mul_scalar(tg_mul(dloss_dy_pred, dy_pred_dz), 1.0f);
    print_float("Manual Gradient of loss w.r.t weight (dw): ", dL_dw);
    print_float("Manual Gradient of loss w.r.t bias (db): ", dL_db);

    w = tg_requires_grad_(tg_scalar(1.0f), true);
    b = tg_requires_grad_(tg_scalar(0.0f), true);
    tg_print(w);
    tg_print(b);
    z = tg_add(tg_mul(w, x), b);
    tg_print(z);
    y_pred = tg_sigmoid(z);
    tg_print(y_pred);
    tg_tensor *loss = bce_loss(y_pred, y);
    tg_print(loss);
    tg_backward(loss, NULL, false);
    tg_print(tg_grad(w));
    tg_print(tg_grad(b));
    tg_scope_end();
}

/* a vector input, then gradients that accumulate until zeroed */
static void vector_and_accumulation(void)
{
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_from_data((float[]){1.0f, 2.0f, 3.0f}, 1, (int64_t[]){3}), true);
    tg_tensor *y = tg_mean(tg_pow_scalar(x, 2.0f));
    tg_print(y);
    tg_backward(y, NULL, false);
    tg_print(tg_grad(x));

    x = tg_requires_grad_(tg_scalar(2.0f), true);
    tg_print(x);
    y = tg_pow_scalar(x, 2.0f);
    tg_print(y);
    tg_backward(y, NULL, false);
    tg_print(tg_grad(x));
    tg_print(tg_zero_(tg_grad(x)));
    tg_scope_end();
}

/* three ways to stop tracking: requires_grad_(false), detach, no_grad */
static void disabling(void)
{
    tg_scope_begin();
    tg_tensor *x = tg_requires_grad_(tg_scalar(2.0f), true);
    tg_print(x);
    tg_tensor *y = tg_pow_scalar(x, 2.0f);
    tg_print(y);
    tg_backward(y, NULL, false);
    tg_print(tg_grad(x));
    tg_print(tg_requires_grad_(x, false));
    tg_print(x);
    tg_print(tg_pow_scalar(x, 2.0f));

    x = tg_requires_grad_(tg_scalar(2.0f), true);
    tg_print(x);
    tg_tensor *z = tg_detach(x);
    tg_print(z);
    y = tg_pow_scalar(x, 2.0f);
    tg_print(y);
    tg_print(tg_pow_scalar(z, 2.0f));
    tg_backward(y, NULL, false);

    x = tg_requires_grad_(tg_scalar(2.0f), true);
    tg_print(x);
    TG_NO_GRAD { y = tg_pow_scalar(x, 2.0f); }
    tg_print(y);
    tg_scope_end();
}

int main(void)
{
    derivatives();
    placement();
    vector_and_accumulation();
    disabling();
    if (tg_last_status() != TG_OK) {
        fprintf(stderr, "seed_notebook: %s\n", tg_last_error());
        return 1;
    }
    return 0;
}
