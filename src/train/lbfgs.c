/* L-BFGS (Nocedal & Wright, "Numerical Optimization", 2nd ed., algorithms 7.4 and 7.5) with a
 * line search for the strong Wolfe conditions (algorithms 3.5 and 3.6, cubic interpolation).
 *
 * Every function evaluation is a pass over the data set, so the search tries hard to accept the
 * first step: the unit step of a quasi-Newton direction usually satisfies Wolfe, and c2 = 0.9
 * (the usual quasi-Newton value, as L-BFGS-B) is loose. */
#include "lbfgs.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define C1       1e-4 /* sufficient decrease */
#define C2       0.9  /* curvature */
#define STEP_MAX 1e10
#define F_NOISE  1e-6 /* relative slack for the approximate Wolfe test (Hager-Zhang's epsilon) */

void lbfgs_params_init(lbfgs_params *p)
{
    p->memory = 10;
    p->max_iter = 100;
    p->gtol = 1e-4;
    p->max_ls = 25;
    p->first_step = 0.0;
    p->agree = NULL;
}

/* ---- small vector helpers ---------------------------------------------------------------- */

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0.0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static double max_abs(const double *a, int64_t n)
{
    double m = 0.0;
    for (int64_t i = 0; i < n; i++) {
        double v = fabs(a[i]);
        if (v > m || isnan(v))
            m = v;
    }
    return m;
}

/* ---- state ------------------------------------------------------------------------------- */

typedef struct {
    int64_t n;
    lbfgs_fn f;
    void *ctx;
    double *x, *g; /* current point and gradient */
    double fx;
    double *dir;     /* search direction */
    double *xt, *gt; /* trial point */
    double *g_lo;    /* gradient at the best trial of a zoom */
    double *S, *Y;   /* memory x n ring buffers of steps and gradient changes */
    double *rho, *alpha;
    int mem, used, head; /* capacity, pairs stored, next slot */
    int64_t evals;
} state;

static bool state_alloc(state *s, int64_t n, int mem)
{
    size_t vec = (size_t)n * sizeof(double);
    s->n = n;
    s->mem = mem;
    s->g = malloc(vec);
    s->dir = malloc(vec);
    s->xt = malloc(vec);
    s->gt = malloc(vec);
    s->g_lo = malloc(vec);
    s->S = malloc(vec * (size_t)mem);
    s->Y = malloc(vec * (size_t)mem);
    s->rho = malloc((size_t)mem * sizeof(double));
    s->alpha = malloc((size_t)mem * sizeof(double));
    return s->g && s->dir && s->xt && s->gt && s->g_lo && s->S && s->Y && s->rho && s->alpha;
}

static void state_free(state *s)
{
    free(s->g), free(s->dir), free(s->xt), free(s->gt), free(s->g_lo);
    free(s->S), free(s->Y), free(s->rho), free(s->alpha);
}

/* dir = -H g by the two-loop recursion, H0 = (s'y / y'y) I from the newest pair. */
static void direction(state *s)
{
    const int64_t n = s->n;
    for (int64_t i = 0; i < n; i++)
        s->dir[i] = -s->g[i];
    for (int k = 0; k < s->used; k++) { /* newest to oldest */
        int slot = (s->head - 1 - k + s->mem) % s->mem;
        s->alpha[slot] = s->rho[slot] * dot(s->S + slot * n, s->dir, n);
        const double *y = s->Y + slot * n;
        for (int64_t i = 0; i < n; i++)
            s->dir[i] -= s->alpha[slot] * y[i];
    }
    if (s->used > 0) {
        int newest = (s->head - 1 + s->mem) % s->mem;
        const double *y = s->Y + newest * n;
        double gamma = 1.0 / (s->rho[newest] * dot(y, y, n));
        for (int64_t i = 0; i < n; i++)
            s->dir[i] *= gamma;
    }
    for (int k = s->used - 1; k >= 0; k--) { /* oldest to newest */
        int slot = (s->head - 1 - k + s->mem) % s->mem;
        double beta = s->rho[slot] * dot(s->Y + slot * n, s->dir, n);
        const double *sv = s->S + slot * n;
        for (int64_t i = 0; i < n; i++)
            s->dir[i] += (s->alpha[slot] - beta) * sv[i];
    }
}

/* Stores the pair (xt - x, gt - g) unless it breaks the curvature condition (then H would stop
 * being positive definite); it always holds after a strong Wolfe step, but rounding can break
 * it at the end of a run. */
static void remember(state *s)
{
    const int64_t n = s->n;
    double *sv = s->S + s->head * n, *y = s->Y + s->head * n;
    for (int64_t i = 0; i < n; i++) {
        sv[i] = s->xt[i] - s->x[i];
        y[i] = s->gt[i] - s->g[i];
    }
    double sy = dot(sv, y, n), yy = dot(y, y, n);
    if (!(sy > 1e-10 * yy) || !(yy > 0.0))
        return;
    s->rho[s->head] = 1.0 / sy;
    s->head = (s->head + 1) % s->mem;
    if (s->used < s->mem)
        s->used++;
}

/* ---- line search ------------------------------------------------------------------------- */

typedef struct {
    double a, f, d; /* step, phi(step), phi'(step) */
} ls_point;

/* Evaluates phi at step a into xt/gt. */
static ls_point probe(state *s, double a)
{
    for (int64_t i = 0; i < s->n; i++)
        s->xt[i] = s->x[i] + a * s->dir[i];
    double f = s->f(s->ctx, s->xt, s->gt);
    s->evals++;
    ls_point p = {a, f, dot(s->gt, s->dir, s->n)};
    return p;
}

/* Minimizer of the cubic through (lo, hi) with their slopes, kept 10% inside the interval;
 * bisection when the cubic has no usable minimum. */
static double cubic_step(ls_point lo, ls_point hi)
{
    double lo_a = fmin(lo.a, hi.a), hi_a = fmax(lo.a, hi.a), w = hi_a - lo_a;
    double mid = 0.5 * (lo.a + hi.a);
    double d1 = lo.d + hi.d - 3.0 * (lo.f - hi.f) / (lo.a - hi.a);
    double disc = d1 * d1 - lo.d * hi.d;
    if (!(disc >= 0.0) || !isfinite(hi.f))
        return mid;
    double d2 = copysign(sqrt(disc), hi.a - lo.a);
    double t = hi.a - (hi.a - lo.a) * (hi.d + d2 - d1) / (hi.d - lo.d + 2.0 * d2);
    if (!isfinite(t) || t < lo_a + 0.1 * w || t > hi_a - 0.1 * w)
        return mid;
    return t;
}

/* Sufficient decrease. The second form is Hager and Zhang's "approximate Wolfe" test: when
 * the objective is a float32 sum (as here) its rounding, about 1e-8 relative, swamps the
 * decreases left near the optimum, but the directional derivative, a different sum, still
 * says whether the step went too far. */
static bool armijo(ls_point p, ls_point z)
{
    if (p.f <= z.f + C1 * p.a * z.d)
        return true;
    return p.f <= z.f + F_NOISE * fabs(z.f) && p.d <= (2.0 * C1 - 1.0) * z.d;
}
static bool curvature(ls_point p, ls_point z)
{
    return fabs(p.d) <= -C2 * z.d;
}

/* Zoom between lo (satisfies Armijo, lowest so far) and hi. Invariant: when lo.a > 0, g_lo
 * holds the gradient at lo. On success xt/gt hold the accepted point; when the budget runs out
 * or the interval collapses, lo is accepted if it is a real decrease. */
static bool zoom(state *s, ls_point z, ls_point lo, ls_point hi, int budget, double *f_out)
{
    for (int i = 0; i < budget; i++) {
        if (fabs(hi.a - lo.a) <= 1e-14 * fmax(lo.a, hi.a))
            break;
        ls_point p = probe(s, cubic_step(lo, hi));
        if (!armijo(p, z) || p.f >= lo.f) {
            hi = p;
            continue;
        }
        if (curvature(p, z)) {
            *f_out = p.f;
            return true;
        }
        if (p.d * (hi.a - lo.a) >= 0.0)
            hi = lo;
        lo = p;
        memcpy(s->g_lo, s->gt, (size_t)s->n * sizeof(double));
    }
    if (lo.a > 0.0 && lo.f < z.f) {
        for (int64_t i = 0; i < s->n; i++)
            s->xt[i] = s->x[i] + lo.a * s->dir[i];
        memcpy(s->gt, s->g_lo, (size_t)s->n * sizeof(double));
        *f_out = lo.f;
        return true;
    }
    return false;
}

/* Finds a step along dir satisfying the strong Wolfe conditions, starting from a0. */
static bool line_search(state *s, double a0, int max_ls, double *f_out)
{
    ls_point z = {0.0, s->fx, dot(s->g, s->dir, s->n)};
    ls_point prev = z;
    double a = a0;
    for (int i = 0; i < max_ls; i++) {
        ls_point p = probe(s, a);
        int left = max_ls - i - 1;
        if (!armijo(p, z) || (i > 0 && p.f >= prev.f)) /* NaN fails armijo too */
            return zoom(s, z, prev, p, left, f_out);
        if (curvature(p, z)) {
            *f_out = p.f;
            return true;
        }
        memcpy(s->g_lo, s->gt, (size_t)s->n * sizeof(double));
        if (p.d >= 0.0) /* overshot the minimum along dir: it lies between prev and p */
            return zoom(s, z, p, prev, left, f_out);
        prev = p;
        if (a >= STEP_MAX)
            break;
        a = fmin(2.0 * a, STEP_MAX);
    }
    if (prev.a > 0.0) { /* out of budget while still descending: take the best step */
        for (int64_t i = 0; i < s->n; i++)
            s->xt[i] = s->x[i] + prev.a * s->dir[i];
        memcpy(s->gt, s->g_lo, (size_t)s->n * sizeof(double));
        *f_out = prev.f;
        return true;
    }
    return false;
}

/* ---- driver ------------------------------------------------------------------------------ */

static void accept(state *s, double f)
{
    remember(s);
    memcpy(s->x, s->xt, (size_t)s->n * sizeof(double));
    memcpy(s->g, s->gt, (size_t)s->n * sizeof(double));
    s->fx = f;
}

/* One iteration: direction, line search, update. Falls back to steepest descent once (with
 * the memory cleared) when the quasi-Newton direction fails. */
static bool iterate(state *s, int max_ls, double first_step)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (attempt == 1 || s->used == 0)
            s->used = 0, s->head = 0;
        direction(s);
        double slope = dot(s->g, s->dir, s->n);
        if (!(slope < 0.0)) { /* not a descent direction (rounding): restart */
            if (s->used == 0)
                return false;
            continue;
        }
        /* First step of a steepest-descent direction: the caller's guess of the inverse
         * curvature, else a unit-length move as L-BFGS-B does; a quasi-Newton direction
         * carries its own scale. */
        double a0 = 1.0;
        if (s->used == 0)
            a0 = first_step > 0.0 ? first_step : fmin(1.0, 1.0 / sqrt(dot(s->dir, s->dir, s->n)));
        double f;
        if (line_search(s, a0, max_ls, &f)) {
            accept(s, f);
            return true;
        }
        if (s->used == 0)
            return false;
    }
    return false;
}

lbfgs_status lbfgs_minimize(int64_t n, double *x, lbfgs_fn f, lbfgs_step_fn step, void *ctx,
                            const lbfgs_params *p, lbfgs_report *out)
{
    state s;
    memset(&s, 0, sizeof s);
    memset(out, 0, sizeof *out);
    int mem = p->memory > 0 ? p->memory : 1;
    bool ok = state_alloc(&s, n, mem);
    if (p->agree)
        ok = p->agree(ctx, ok);
    if (!ok) {
        state_free(&s);
        return LBFGS_ENOMEM;
    }
    s.f = f;
    s.ctx = ctx;
    s.x = x;
    s.fx = f(ctx, x, s.g);
    s.evals = 1;
    lbfgs_status st = LBFGS_MAX_ITER;
    int iter = 0;
    if (!isfinite(s.fx))
        st = LBFGS_NO_PROGRESS;
    else if (max_abs(s.g, n) <= p->gtol) /* a NaN gradient never converges */
        st = LBFGS_CONVERGED;
    else
        for (iter = 0; iter < p->max_iter;) {
            if (!iterate(&s, p->max_ls > 0 ? p->max_ls : 1, p->first_step)) {
                st = LBFGS_NO_PROGRESS;
                break;
            }
            iter++;
            if (step && step(ctx, iter, s.x, s.fx, s.g)) {
                st = LBFGS_STOPPED;
                break;
            }
            if (max_abs(s.g, n) <= p->gtol) {
                st = LBFGS_CONVERGED;
                break;
            }
        }
    out->iterations = iter;
    out->evaluations = s.evals;
    out->f = s.fx;
    out->gmax = max_abs(s.g, n);
    s.x = NULL;
    state_free(&s);
    return st;
}
