/* Building blocks for training: F.linear and optimizers over an array of parameters.
 * Included by tapegrad.h. */
#ifndef TAPEGRAD_NN_H
#define TAPEGRAD_NN_H

#ifdef __cplusplus
extern "C" {
#endif
#ifdef __GNUC__
#pragma GCC visibility push(default)
#endif

/* PyTorch's F.linear: y = x @ W^T + b, with x [..., in], W [out, in], b [out] or NULL. */
tg_tensor *tg_linear(tg_tensor *x, tg_tensor *W, tg_tensor *b);

typedef struct tg_optimizer tg_optimizer;

/* Options are doubles, as PyTorch's are Python floats: its defaults 0.9 and 0.999 have no
 * float, and it computes 1 - beta, the bias corrections and the step size from the doubles,
 * rounding each to float once. The float of an option gives the same results as PyTorch given
 * that float. */

/* torch.optim.SGD. Defaults from tg_sgd_options_init: lr 0.01, no momentum, no decay. */
typedef struct tg_sgd_options {
    double lr, momentum, dampening, weight_decay;
    bool nesterov;
} tg_sgd_options;

/* torch.optim.Adam / AdamW. Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0
 * for Adam (L2 added to the gradient) and 1e-2 for AdamW (decoupled decay). */
typedef struct tg_adam_options {
    double lr, beta1, beta2, eps, weight_decay;
    bool decoupled; /* true: AdamW */
} tg_adam_options;

void tg_sgd_options_init(tg_sgd_options *o);
void tg_adam_options_init(tg_adam_options *o);
void tg_adamw_options_init(tg_adam_options *o);

/* The optimizer keeps a reference to each parameter. Every parameter must be a contiguous
 * leaf that requires grad, given once (an error, not a silent skip, otherwise). */
tg_optimizer *tg_sgd_new(tg_tensor *const *params, int n, const tg_sgd_options *o);
tg_optimizer *tg_adam_new(tg_tensor *const *params, int n, const tg_adam_options *o);
/* One update of every parameter that has a grad, in place and under no-grad. */
tg_status tg_optimizer_step(tg_optimizer *opt);
/* set_to_none: drop the grads (PyTorch 2.x's default; 1.13's is false); otherwise fill them with
 * zeros, which the next backward adds to. */
void tg_optimizer_zero_grad(tg_optimizer *opt, bool set_to_none);
void tg_optimizer_free(tg_optimizer *opt);
/* Parameters and optimizer state (step count, momentum/moment buffers) to and from a file.
 * Saving writes a temporary file and renames it, so a failure never leaves a partial file.
 * Loading checks the optimizer kind and every shape before changing anything. */
tg_status tg_optimizer_save(const tg_optimizer *opt, const char *path);
tg_status tg_optimizer_load(tg_optimizer *opt, const char *path);

#ifdef __GNUC__
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#endif
