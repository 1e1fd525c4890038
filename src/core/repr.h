#ifndef TAPEGRAD_CORE_REPR_H
#define TAPEGRAD_CORE_REPR_H

/* Text formatting that matches PyTorch 1.13 / Python 3 output byte for byte,
   so that logs and golden tests can be compared directly against torch. */

#include <stdint.h>
#include <stddef.h>

/* Formats a float32 tensor as PyTorch 1.13's repr() does. data points at element [0,...,0];
   strides are in elements (may be 0 or any positive value). suffix is NULL or text such as
   "requires_grad=True" or "grad_fn=<SinBackward0>", appended as ", suffix" the way PyTorch does.
   Returns a malloc'd NUL-terminated string, or NULL if out of memory. ndim 0..8.
   Also returns NULL for invalid arguments (ndim out of range, negative extent, NULL shape,
   strides or data for a non-empty tensor, element count overflowing int64).
   An empty suffix ("") is treated like NULL. Default print options are used:
   precision 4, threshold 1000, edgeitems 3, linewidth 80, sci_mode None. */
char *tg_format_tensor(int ndim, const int64_t *shape, const int64_t *strides, const float *data, const char *suffix);

/* Writes repr(float(v)) as Python 3 would print it (shortest round-trip digits, Python's choice of
   fixed vs exponent form, 'nan', 'inf', '-inf', '-0.0'). Returns chars written (excl NUL) or -1. */
int tg_format_py_float(double v, char *buf, size_t cap);

#endif /* TAPEGRAD_CORE_REPR_H */
