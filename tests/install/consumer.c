/* Links against an installed tapegrad and checks one gradient: d/dx sin(x^2) at 3. */
#include <math.h>
#include <stdio.h>
#include <tapegrad.h>

int main(void)
{
    tg_tensor *x = tg_requires_grad_(tg_scalar(3.0f), true);
    tg_tensor *y = tg_pow_scalar(x, 2.0f);
    tg_tensor *z = tg_sin(y);
    if (tg_backward(z, NULL, false) != TG_OK)
        return 1;
    float g = tg_item(tg_grad(x));
    printf("dz/dx = %.4f (%s kernels)\n", g, tg_isa());
    tg_release(z), tg_release(y), tg_release(x);
    return fabsf(g - 6.0f * cosf(9.0f)) < 1e-4f ? 0 : 1;
}
