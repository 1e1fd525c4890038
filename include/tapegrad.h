/* tapegrad — float32 tensors with reverse-mode autograd on the CPU.
 *
 * Conventions (see README.md):
 *  - every function returning tg_tensor * returns a NEW reference the caller owns, or NULL on
 *    failure, except those that return their argument: tg_grad(), tg_requires_grad_() and the
 *    in-place ops (borrowed), tg_retain() and tg_keep() (the reference they add or hand over);
 *  - a NULL tensor argument makes a function return NULL (or an error status) as well, so errors
 *    flow through an expression and can be checked once at the end; when the call just before
 *    failed, its status and message stay (tg_backward(tg_sum(tg_add(a, b)), ...) reports
 *    tg_add's shape error); not so for an optional argument, where NULL means "none"
 *    (tg_linear's b, tg_bce_with_logits's pos_weight, tg_backward's grad_output): check the
 *    call that makes one before passing its result, or a failure there goes unnoticed;
 *  - failures never abort: they set a thread-local status and message (tg_last_status,
 *    tg_last_error) naming the function and the offending shapes or values; a call that
 *    returns a value clears them on success, while void calls (tg_release, tg_scope_end, the
 *    setters) leave them as they were, so a check after cleaning up still sees the failure
 *    (except the void calls' own failures: tg_scope_begin out of memory and tg_scope_end
 *    without an open scope set them; tg_retain_grad clears them and reports a NULL tensor or
 *    one without requires_grad, as PyTorch raises), and so do the calls that only read or count:
 * tg_retain, tg_keep, the accessors (tg_ndim, tg_shape, tg_numel, tg_grad, tg_grad_fn_name,
 * tg_requires_grad, tg_isa, ...) and the queries and formatters that cannot fail (tg_float_repr,
 * tg_status_name, tg_solver_name, tg_get_num_threads, tg_grad_enabled, tg_matmul_backend,
 * tg_version_string, ...);
 *  - several threads may read one tensor at once (use it as an input, view it, retain and
 *    release it); what writes a tensor needs it to itself (README: threads of their own).
 */
#ifndef TAPEGRAD_H
#define TAPEGRAD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* The library is built with hidden visibility: what the public headers declare between this
 * push and its pop is exported, and nothing else is. One pragma per header rather than a mark
 * on each declaration, so that no public function can be left unexported. */
#ifdef __GNUC__
#pragma GCC visibility push(default)
#endif

#define TG_MAX_DIMS 8

typedef struct tg_tensor tg_tensor;

/* ---- Errors ------------------------------------------------------------------------------ */
typedef enum {
    TG_OK = 0,
    TG_EINVAL,
    TG_ESHAPE,
    TG_ENOMEM,
    TG_EGRAPH,
    TG_EIO,
    TG_EPARSE,
    TG_EUNSUPPORTED
} tg_status;

tg_status tg_last_status(void);
const char *tg_last_error(void); /* "" when the last call succeeded */
const char *tg_status_name(tg_status s);

/* ---- Lifetime ---------------------------------------------------------------------------- */
tg_tensor *tg_retain(tg_tensor *t); /* +1, returns t */
void tg_release(tg_tensor *t);      /* -1, NULL-safe; storage goes with its last view */
void tg_scope_begin(void);          /* nestable, thread-local */
void tg_scope_end(void);            /* releases every reference created since the begin ... */
tg_tensor *tg_keep(tg_tensor *t);   /* ... except those kept, which the caller then owns */

/* ---- Creation ---------------------------------------------------------------------------- */
tg_tensor *tg_scalar(float v);
tg_tensor *tg_from_data(const float *data, int ndim, const int64_t *shape); /* copies */
tg_tensor *tg_empty(int ndim, const int64_t *shape);                         /* uninitialized */
tg_tensor *tg_zeros(int ndim, const int64_t *shape);
tg_tensor *tg_ones(int ndim, const int64_t *shape);
tg_tensor *tg_full(int ndim, const int64_t *shape, float value);
tg_tensor *tg_arange(float start, float end, float step);
tg_tensor *tg_rand(int ndim, const int64_t *shape, uint64_t seed);  /* U[0, 1) */
tg_tensor *tg_randn(int ndim, const int64_t *shape, uint64_t seed); /* N(0, 1) */
tg_tensor *tg_clone(tg_tensor *a); /* new contiguous copy; differentiable */

/* ---- Inspection -------------------------------------------------------------------------- */
int tg_ndim(const tg_tensor *t);
const int64_t *tg_shape(const tg_tensor *t);
const int64_t *tg_strides(const tg_tensor *t);
int64_t tg_numel(const tg_tensor *t);
bool tg_is_contiguous(const tg_tensor *t);
float tg_item(const tg_tensor *t); /* one-element tensors; NaN + error otherwise */
float *tg_data(tg_tensor *t);      /* contiguous tensors; NULL + error otherwise */
int64_t tg_copy_to(const tg_tensor *t, float *out, int64_t capacity); /* row-major, any strides */
uint32_t tg_version(const tg_tensor *t); /* bumped by every in-place change of the storage */
char *tg_repr(const tg_tensor *t);       /* malloc'd; exactly PyTorch's repr */
int tg_print(const tg_tensor *t);        /* repr + '\n' on stdout; <0 on failure */

/* ---- Autograd ---------------------------------------------------------------------------- */
tg_tensor *tg_requires_grad_(tg_tensor *t, bool on); /* leaves only; returns t (borrowed) */
bool tg_requires_grad(const tg_tensor *t);
bool tg_is_leaf(const tg_tensor *t);
tg_tensor *tg_grad(const tg_tensor *t); /* borrowed; NULL when there is none */
void tg_grad_reset(tg_tensor *t);       /* grad = None */
const char *tg_grad_fn_name(const tg_tensor *t); /* "PowBackward0", ...; NULL for leaves */
tg_status tg_backward(tg_tensor *root, const tg_tensor *grad_output, bool retain_graph);
tg_tensor *tg_detach(tg_tensor *t); /* shares storage, no grad */
void tg_retain_grad(tg_tensor *t);  /* keep .grad on a non-leaf */
bool tg_grad_enabled(void);
bool tg_set_grad_enabled(bool on); /* thread-local; returns the previous mode */

/* TG_NO_GRAD { ... } runs the block with grad disabled and restores the previous mode when the
 * block is left. With GCC and Clang that holds however it is left (return, goto, break): the
 * saved mode is a variable whose cleanup restores it. The block is a one-pass loop, so break
 * and continue inside it leave the block only, not an enclosing loop. Other compilers restore
 * the mode on normal exit only: code meant for them should not leave the block early. */
/* clang-format off */
#define TG_NO_GRAD_CAT2(a, b) a##b
#define TG_NO_GRAD_CAT(a, b) TG_NO_GRAD_CAT2(a, b)
#if defined(__GNUC__) || defined(__clang__)
static inline void tg_no_grad_restore_(bool *prev)
{
    tg_set_grad_enabled(*prev);
}
/* __COUNTER__ names each block's variables apart, even two blocks on one line. */
#define TG_NO_GRAD TG_NO_GRAD_AT(__COUNTER__)
#define TG_NO_GRAD_AT(n)                                                                    \
    for (bool TG_NO_GRAD_CAT(tg_ng_prev_, n)                                                \
             __attribute__((cleanup(tg_no_grad_restore_), unused)) =                        \
             tg_set_grad_enabled(false),                                                    \
         TG_NO_GRAD_CAT(tg_ng_once_, n) = false;                                            \
         !TG_NO_GRAD_CAT(tg_ng_once_, n); TG_NO_GRAD_CAT(tg_ng_once_, n) = true)
#else
#define TG_NO_GRAD                                                                          \
    for (int TG_NO_GRAD_CAT(tg_ng_once_, __LINE__) = 0,                                     \
             TG_NO_GRAD_CAT(tg_ng_prev_, __LINE__) = tg_set_grad_enabled(false);            \
         !TG_NO_GRAD_CAT(tg_ng_once_, __LINE__);                                            \
         TG_NO_GRAD_CAT(tg_ng_once_, __LINE__) = 1,                                         \
             tg_set_grad_enabled(TG_NO_GRAD_CAT(tg_ng_prev_, __LINE__)))
#endif
/* clang-format on */

/* ---- Operations (new tensors; NumPy broadcasting; differentiable unless noted) ------------- */
typedef enum { TG_REDUCE_MEAN = 0, TG_REDUCE_SUM, TG_REDUCE_NONE } tg_reduction;

tg_tensor *tg_add(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_sub(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_mul(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_div(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_pow(tg_tensor *a, tg_tensor *b);
tg_tensor *tg_add_scalar(tg_tensor *a, float s);
tg_tensor *tg_mul_scalar(tg_tensor *a, float s);
tg_tensor *tg_pow_scalar(tg_tensor *a, float e);
tg_tensor *tg_rsub_scalar(float s, tg_tensor *a); /* s - a */

tg_tensor *tg_neg(tg_tensor *a);
tg_tensor *tg_exp(tg_tensor *a);
tg_tensor *tg_log(tg_tensor *a);
tg_tensor *tg_sin(tg_tensor *a);
tg_tensor *tg_cos(tg_tensor *a);
tg_tensor *tg_tanh(tg_tensor *a);
tg_tensor *tg_sigmoid(tg_tensor *a);
tg_tensor *tg_relu(tg_tensor *a);
tg_tensor *tg_sqrt(tg_tensor *a);
tg_tensor *tg_abs(tg_tensor *a);
tg_tensor *tg_clamp(tg_tensor *a, float lo, float hi); /* NaN bound = no bound */

tg_tensor *tg_sum(tg_tensor *a);
tg_tensor *tg_mean(tg_tensor *a);
tg_tensor *tg_sum_dim(tg_tensor *a, int dim, bool keepdim);
tg_tensor *tg_mean_dim(tg_tensor *a, int dim, bool keepdim);

tg_tensor *tg_matmul(tg_tensor *a, tg_tensor *b); /* torch.matmul */

/* Views share storage with their base (reshape copies only when it must, as PyTorch does).
 * A shape entry of -1 in tg_reshape is inferred. Negative dims count from the end. */
tg_tensor *tg_reshape(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_transpose(tg_tensor *a, int d0, int d1);
tg_tensor *tg_permute(tg_tensor *a, const int *dims);
tg_tensor *tg_narrow(tg_tensor *a, int dim, int64_t start, int64_t length);
tg_tensor *tg_expand(tg_tensor *a, int ndim, const int64_t *shape);
tg_tensor *tg_contiguous(tg_tensor *a);

tg_tensor *tg_binary_cross_entropy(tg_tensor *pred, tg_tensor *target, tg_reduction r);
tg_tensor *tg_bce_with_logits(tg_tensor *logits, tg_tensor *target, tg_tensor *pos_weight,
                              tg_reduction r);
tg_tensor *tg_mse_loss(tg_tensor *pred, tg_tensor *target,
                       tg_reduction r); /* broadcasts, as PyTorch */

/* In place: bump the tensor's version; not recorded in the graph. Each returns t (borrowed) or
 * NULL on failure. In-place changes of a tensor that requires grad are refused while grad mode
 * is on: of a leaf as PyTorch does, and of a non-leaf too, since these ops are not recorded in
 * the graph; use them under TG_NO_GRAD. So are those of a view made under no-grad of a tensor
 * that requires grad (PyTorch refuses them too). So are writes to an expanded view, where
 * several elements share one memory location (TG_EINVAL; clone it first), except by tg_fill_
 * and tg_zero_, which write one value (PyTorch allows those).
 * tg_backward checks, before it adds to any .grad, that the tensors the graph saved are as they
 * were (TG_EGRAPH otherwise), so such a failure changes no .grad; running out of memory part-way
 * can leave some .grad holding part of the pass's sum, as in PyTorch (zero the grads and run the
 * pass again). Ops save what PyTorch's save, with one addition: tg_sigmoid also
 * saves its input (its gradient reads it, for accuracy where sigmoid is near 0 or 1), so
 * changing that input in place fails a backward that PyTorch would run. */
tg_tensor *tg_zero_(tg_tensor *t);
tg_tensor *tg_fill_(tg_tensor *t, float v);
tg_tensor *tg_mul_scalar_(tg_tensor *t, float s);
/* The added tensor may be t itself; one that shares only part of t's memory is refused
 * (TG_EINVAL), as in PyTorch, when both are dense blocks. */
tg_tensor *tg_add_(tg_tensor *t, tg_tensor *other);
tg_tensor *tg_axpy_(tg_tensor *t, float alpha, tg_tensor *x); /* t += alpha * x */

/* ---- Runtime ----------------------------------------------------------------------------- */
void tg_set_num_threads(int n);
int tg_get_num_threads(void);
const char *tg_isa(void);           /* "scalar", "avx2", "avx512", "neon" */
/* Process-wide; may be called while other threads compute (each kernel call uses one whole
 * family, old or new). TAPEGRAD_ISA does the same at start-up. */
tg_status tg_set_isa(const char *name);
/* What runs large matrix products under the family in force: "tiles" (tapegrad's own packed
 * kernels, where OpenBLAS's kernels fall below the family's) or "openblas". TAPEGRAD_GEMM=tiles
 * or =blas at start-up forces one. */
const char *tg_matmul_backend(void);
const char *tg_version_string(void);

/* Writes v as Python's repr(float(v)) does: the shortest digits that read back to the same
 * double ("6.691762447357178", "1e-05", "nan"). Returns the length, or -1 if cap is too small. */
int tg_float_repr(double v, char *buf, size_t cap);

#ifdef __GNUC__
#pragma GCC visibility pop
#endif
#ifdef __cplusplus
}
#endif

#include "tapegrad/io.h"
#include "tapegrad/nn.h"
#include "tapegrad/train.h"
#include "tapegrad/dist.h"

#endif /* TAPEGRAD_H */
