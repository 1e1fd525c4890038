/* Grad mode is per thread, like PyTorch's: a no-grad block on one thread does not change what
 * another thread records. */
#include "grad_mode.h"

#include "../core/tls.h"

static TG_TLS bool grad_disabled; /* zero-initialized: grad is on by default */

bool tg_grad_enabled(void) { return !grad_disabled; }

bool tg_set_grad_enabled(bool on)
{
    bool prev = !grad_disabled;
    grad_disabled = !on;
    return prev;
}
