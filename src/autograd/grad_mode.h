/* Thread-local grad mode (PyTorch's torch.no_grad / set_grad_enabled). */
#ifndef TG_AUTOGRAD_GRAD_MODE_H
#define TG_AUTOGRAD_GRAD_MODE_H

#include "tapegrad.h"

#endif
