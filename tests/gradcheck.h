/* Shared test helpers: a finite-difference gradient checker and a few small utilities used by
 * every test file (ISA selection, seeded values, float comparison).
 *
 * gc_check builds each input as a leaf "base" tensor, optionally viewed through a
 * non-contiguous layout (transposed, narrowed, strided, expanded), calls the function under
 * test, and compares tg_backward's gradient of every base with central finite differences of
 *     L(x) = sum_i w_i * out_i(x)          (w: fixed random weights in [-1, 1])
 * accumulated in double over the float32 outputs. */
#ifndef TG_TESTS_GRADCHECK_H
#define TG_TESTS_GRADCHECK_H

#include <stdbool.h>
#include <stdint.h>

#include "tapegrad.h"

/* How the function under test sees an input. The gradient is always checked on the base. */
typedef enum {
    GC_CONTIGUOUS, /* the base itself */
    GC_TRANSPOSED, /* base has the last two dims swapped; the input is its transpose (ndim >= 2) */
    GC_NARROWED,   /* base is 3 wider in the last dim; the input is narrow(-1, 1, n) */
    GC_STRIDED,    /* base has an extra trailing dim of 2; the input takes every other element */
    GC_EXPANDED,   /* base has size 1 in the first dim of size > 1; the input expands it */
} gc_layout;

#define GC_MAX_KINKS 4

typedef struct {
    int ndim;
    int64_t shape[TG_MAX_DIMS];
    gc_layout layout;
    float lo, hi;              /* values uniform in [lo, hi]; lo == hi means [-1, 1] */
    float kinks[GC_MAX_KINKS]; /* points where the op is not differentiable ... */
    int n_kinks;               /* ... values stay at least 0.1 away from each */
    bool constant;             /* does not require grad (a target, a pos_weight) */
    const float *values;       /* explicit row-major base values; overrides lo/hi */
} gc_input;

/* out = f(x[0], ..., x[n-1]); intermediates may be left to the enclosing scope. */
typedef tg_tensor *(*gc_fn)(tg_tensor *const *x, void *ctx);

/* Step and tolerance of the comparison. An analytic value a passes against the numeric value
 * n when |a - n| <= atol + rtol * max(|a|, |n|). */
typedef struct {
    double h, rtol, atol;
} gc_tol;

/* The default, sized for float32: h = 1e-2 keeps the rounding noise of the difference quotient
 * (about |L| * 2^-24 / h, i.e. ~1e-5 for |L| ~ 1) well below the tolerance, while the
 * truncation error h^2 / 6 * f''' stays ~2e-5 * f''' for inputs kept away from singularities.
 * rtol = 1e-2 and atol = 1e-3 then catch any wrong formula (a missing factor, a sign, a
 * broadcast sum over the wrong dim) yet pass every correct one. */
extern const gc_tol GC_DEFAULT_TOL;

/* Checks every non-constant input; prints each mismatch (op name, input, element, analytic and
 * numeric value) and returns false if any. n <= 4. */
bool gc_check(const char *name, gc_fn f, void *ctx, int n, const gc_input *in, uint64_t seed);
bool gc_check_tol(const char *name, gc_fn f, void *ctx, int n, const gc_input *in, uint64_t seed,
                  const gc_tol *tol);

/* ---- small utilities shared by the test files ---- */

/* If TAPEGRAD_ISA names a family that this build/CPU cannot run, tapegrad falls back to another
 * one; the test then has nothing new to check and main returns this (ctest's SKIP code). */
#define TG_TEST_SKIP 77
bool tg_test_isa_unavailable(void);

/* Deterministic uniform values in [lo, hi] (SplitMix64), independent of the library's RNG. */
uint64_t tg_test_rng_next(uint64_t *state);
double tg_test_uniform(uint64_t *state, double lo, double hi);
void tg_test_fill_uniform(float *out, int64_t n, uint64_t seed, float lo, float hi);

/* A new tensor of the given shape with seeded uniform values in [lo, hi]. */
tg_tensor *tg_test_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi);

/* Row-major copy of any tensor into a malloc'd buffer (caller frees). */
float *tg_test_values(const tg_tensor *t);

/* Is |got - want| <= atol + rtol * |want|? NaNs match NaNs; equal infinities match. */
bool tg_test_close(double got, double want, double rtol, double atol);

/* The row-major product of a [M, K] and b [K, N] in double: want[i N + j] = sum_k a_ik b_kj and
 * mag[i N + j] = sum_k |a_ik b_kj|, the scale of a float sum's rounding error. */
void tg_test_matmul_ref(const float *a, const float *b, int64_t M, int64_t K, int64_t N,
                        double *want, double *mag);

#endif
