/* Limited-memory BFGS for smooth unconstrained problems in double precision. Internal. */
#ifndef TG_TRAIN_LBFGS_H
#define TG_TRAIN_LBFGS_H

#include <stdbool.h>
#include <stdint.h>

/* f(x) with its gradient in g (n entries). Must be deterministic. */
typedef double (*lbfgs_fn)(void *ctx, const double *x, double *g);
/* Called after each accepted step with the new point; a non-zero return stops the solver. */
typedef int (*lbfgs_step_fn)(void *ctx, int iter, const double *x, double f, const double *g);

typedef struct lbfgs_params {
    int memory;        /* correction pairs kept (10) */
    int max_iter;      /* accepted steps (100) */
    double gtol;       /* stop when max |g_i| <= gtol */
    int max_ls;        /* function evaluations per line search (25) */
    double first_step; /* first step along -g when no curvature is known yet: a guess of
                        * 1 / (Hessian scale); 0 = a unit-length move (L-BFGS-B's choice) */
    /* Called once the work space is allocated (ok false when that failed), before the first
     * evaluation; returns whether to go on. Lets the ranks of a distributed fit agree, so that
     * none is left waiting in an evaluation another one never starts. NULL: go on when ok. */
    bool (*agree)(void *ctx, bool ok);
} lbfgs_params;

typedef enum {
    LBFGS_CONVERGED = 0,
    LBFGS_MAX_ITER,
    LBFGS_NO_PROGRESS, /* the line search found no acceptable step even from steepest descent */
    LBFGS_STOPPED,     /* the step callback returned non-zero */
    LBFGS_ENOMEM
} lbfgs_status;

typedef struct lbfgs_report {
    int iterations;
    int64_t evaluations;
    double f;    /* at the returned x */
    double gmax; /* max |g_i| at the returned x */
} lbfgs_report;

void lbfgs_params_init(lbfgs_params *p);
/* Minimizes from x (n entries, overwritten with the result). */
lbfgs_status lbfgs_minimize(int64_t n, double *x, lbfgs_fn f, lbfgs_step_fn step, void *ctx,
                            const lbfgs_params *p, lbfgs_report *out);

#endif
