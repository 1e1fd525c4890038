#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_scope_begin();                       /* everything made below is released at the end */
    tg_tensor *x = tg_requires_grad_(tg_scalar(3.0f), true);
    tg_tensor *y = tg_pow_scalar(x, 2.0f);  /* y = x^2 */
    tg_tensor *z = tg_sin(y);               /* z = sin(y) */
    tg_print(z);                            /* tensor(0.4121, grad_fn=<SinBackward0>) */
    if (tg_backward(z, NULL, false) != TG_OK) {
        fprintf(stderr, "%s\n", tg_last_error());
        return 1;
    }
    tg_print(tg_grad(x));                   /* tensor(-5.4668) */
    TG_NO_GRAD { tg_print(tg_mul(x, x)); }  /* tensor(9.): not recorded */
    tg_scope_end();
    return 0;
}
