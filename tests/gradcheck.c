/* Finite-difference gradient checker and shared test utilities (see gradcheck.h). */
#include "gradcheck.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const gc_tol GC_DEFAULT_TOL = {1e-2, 1e-2, 1e-3};

#define GC_MAX_INPUTS  4
#define GC_KINK_MARGIN 0.1
#define GC_MAX_REPORTS 8 /* mismatches printed per check; the rest are only counted */

/* ---- utilities ---- */

bool tg_test_isa_unavailable(void)
{
    const char *want = getenv("TAPEGRAD_ISA");
    return want && *want && strcmp(want, tg_isa()) != 0;
}

uint64_t tg_test_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double tg_test_uniform(uint64_t *state, double lo, double hi)
{
    double u = (double)(tg_test_rng_next(state) >> 11) * 0x1p-53;
    return lo + (hi - lo) * u;
}

void tg_test_fill_uniform(float *out, int64_t n, uint64_t seed, float lo, float hi)
{
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++)
        out[i] = (float)tg_test_uniform(&st, lo, hi);
}

tg_tensor *tg_test_tensor(int ndim, const int64_t *shape, uint64_t seed, float lo, float hi)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    tg_test_fill_uniform(v, n, seed, lo, hi);
    tg_tensor *t = tg_from_data(v, ndim, shape);
    free(v);
    return t;
}

float *tg_test_values(const tg_tensor *t)
{
    int64_t n = tg_numel(t);
    if (n < 0)
        return NULL;
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (v && tg_copy_to(t, v, n) != n) {
        free(v);
        v = NULL;
    }
    return v;
}

bool tg_test_close(double got, double want, double rtol, double atol)
{
    if (isnan(want))
        return isnan(got);
    if (isinf(want))
        return got == want;
    return fabs(got - want) <= atol + rtol * fabs(want);
}

void tg_test_matmul_ref(const float *a, const float *b, int64_t M, int64_t K, int64_t N,
                        double *want, double *mag)
{
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)a[i * K + k] * b[k * N + j];
                s += p, m += fabs(p);
            }
            want[i * N + j] = s;
            mag[i * N + j] = m;
        }
}

/* ---- inputs ---- */

/* The base tensor's shape for an input of the given layout. Returns its ndim, or -1 when the
 * layout does not apply to the shape (a test bug, reported). */
static int base_shape(const gc_input *in, int64_t *shape)
{
    int nd = in->ndim;
    memcpy(shape, in->shape, sizeof in->shape);
    switch (in->layout) {
    case GC_CONTIGUOUS:
        return nd;
    case GC_TRANSPOSED:
        if (nd < 2)
            return -1;
        shape[nd - 1] = in->shape[nd - 2];
        shape[nd - 2] = in->shape[nd - 1];
        return nd;
    case GC_NARROWED:
        if (nd < 1)
            return -1;
        shape[nd - 1] += 3;
        return nd;
    case GC_STRIDED:
        if (nd >= TG_MAX_DIMS)
            return -1;
        shape[nd] = 2;
        return nd + 1;
    case GC_EXPANDED:
        for (int d = 0; d < nd; d++)
            if (shape[d] > 1) {
                shape[d] = 1;
                return nd;
            }
        return -1;
    }
    return -1;
}

static bool near_kink(const gc_input *in, double v)
{
    for (int k = 0; k < in->n_kinks; k++)
        if (fabs(v - in->kinks[k]) < GC_KINK_MARGIN)
            return true;
    return false;
}

/* Seeded values for the base, kept away from the input's kinks. */
static void base_values(const gc_input *in, float *v, int64_t n, uint64_t seed)
{
    if (in->values) {
        memcpy(v, in->values, (size_t)n * sizeof *v);
        return;
    }
    double lo = in->lo, hi = in->hi;
    if (lo == hi)
        lo = -1.0, hi = 1.0;
    uint64_t st = seed;
    for (int64_t i = 0; i < n; i++) {
        double x = tg_test_uniform(&st, lo, hi);
        for (int tries = 0; tries < 1000 && near_kink(in, x); tries++)
            x = tg_test_uniform(&st, lo, hi);
        v[i] = (float)x;
    }
}

static tg_tensor *make_base(const gc_input *in, uint64_t seed)
{
    int64_t shape[TG_MAX_DIMS];
    int nd = base_shape(in, shape);
    if (nd < 0) {
        fprintf(stderr, "gradcheck: layout %d does not apply to a %d-d input\n", (int)in->layout,
                in->ndim);
        return NULL;
    }
    int64_t n = 1;
    for (int d = 0; d < nd; d++)
        n *= shape[d];
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    if (!v)
        return NULL;
    base_values(in, v, n, seed);
    /* kept out of any scope the caller has open: gc_check releases the bases itself */
    tg_tensor *t = tg_keep(tg_from_data(v, nd, shape));
    free(v);
    if (t && !in->constant)
        tg_requires_grad_(t, true);
    return t;
}

/* The tensor the function sees: the base itself (borrowed) or a view of it that the enclosing
 * scope releases. */
static tg_tensor *make_view(tg_tensor *base, const gc_input *in)
{
    switch (in->layout) {
    case GC_CONTIGUOUS:
        return base;
    case GC_TRANSPOSED:
        return tg_transpose(base, -1, -2);
    case GC_NARROWED:
        return tg_narrow(base, -1, 1, in->shape[in->ndim - 1]);
    case GC_STRIDED:
        return tg_reshape(tg_narrow(base, -1, 1, 1), in->ndim, in->shape);
    case GC_EXPANDED:
        return tg_expand(base, in->ndim, in->shape);
    }
    return NULL;
}

/* ---- the check ---- */

typedef struct {
    const char *name;
    gc_fn f;
    void *ctx;
    int n;
    const gc_input *in;
    tg_tensor *base[GC_MAX_INPUTS];
    float *w;      /* weights of L, one per output element */
    int64_t n_out; /* output elements */
} gc_run;

/* Calls f on views of the bases inside the current scope; NULL (reported) on failure. */
static tg_tensor *call_f(const gc_run *r)
{
    tg_tensor *x[GC_MAX_INPUTS] = {NULL};
    for (int i = 0; i < r->n; i++) {
        x[i] = make_view(r->base[i], &r->in[i]);
        if (!x[i]) {
            fprintf(stderr, "gradcheck %s: building input %d failed: %s\n", r->name, i,
                    tg_last_error());
            return NULL;
        }
    }
    tg_tensor *out = r->f(x, r->ctx);
    if (!out)
        fprintf(stderr, "gradcheck %s: the function failed: %s\n", r->name, tg_last_error());
    return out;
}

/* L = sum_i w_i out_i in double, with grad off; NAN on failure. */
static double eval_loss(const gc_run *r)
{
    double loss = NAN;
    tg_scope_begin();
    TG_NO_GRAD
    {
        tg_tensor *out = call_f(r);
        float *v = out && tg_numel(out) == r->n_out ? tg_test_values(out) : NULL;
        if (v) {
            loss = 0.0;
            for (int64_t i = 0; i < r->n_out; i++)
                loss += (double)r->w[i] * (double)v[i];
        }
        free(v);
    }
    tg_scope_end();
    return loss;
}

/* Runs f with grad on and back-propagates w, filling every base's .grad. */
static bool analytic_pass(gc_run *r, uint64_t seed)
{
    bool ok = false;
    tg_scope_begin();
    tg_tensor *out = call_f(r);
    if (out) {
        r->n_out = tg_numel(out);
        tg_tensor *w = tg_test_tensor(tg_ndim(out), tg_shape(out), seed ^ 0x5eed, -1.0f, 1.0f);
        r->w = w ? tg_test_values(w) : NULL;
        tg_status st = w && r->w ? tg_backward(out, w, false) : TG_ENOMEM;
        if (st != TG_OK)
            fprintf(stderr, "gradcheck %s: tg_backward failed (%s): %s\n", r->name,
                    tg_status_name(st), tg_last_error());
        ok = st == TG_OK;
    }
    tg_scope_end();
    return ok;
}

/* Compares input i's analytic gradient with central differences; returns the mismatch count. */
static int check_input(const gc_run *r, int i, const gc_tol *tol)
{
    tg_tensor *base = r->base[i];
    tg_tensor *g = tg_grad(base);
    int64_t n = tg_numel(base);
    if (!g || tg_ndim(g) != tg_ndim(base) || tg_numel(g) != n) {
        fprintf(stderr, "gradcheck %s: input %d has %s gradient\n", r->name, i,
                g ? "a wrongly shaped" : "no");
        return 1;
    }
    float *ga = tg_test_values(g);
    float *x = tg_data(base);
    int bad = 0;
    for (int64_t j = 0; ga && x && j < n; j++) {
        float orig = x[j];
        float xp = (float)(orig + tol->h), xm = (float)(orig - tol->h);
        x[j] = xp;
        double lp = eval_loss(r);
        x[j] = xm;
        double lm = eval_loss(r);
        x[j] = orig;
        /* divide by the step actually taken after rounding to float */
        double num = (lp - lm) / ((double)xp - (double)xm);
        double an = ga[j];
        double lim = tol->atol + tol->rtol * fmax(fabs(an), fabs(num));
        if (!(fabs(an - num) <= lim)) {
            if (bad < GC_MAX_REPORTS)
                fprintf(stderr,
                        "gradcheck %s: input %d element %lld (x = %g): analytic %.7g, numeric "
                        "%.7g\n",
                        r->name, i, (long long)j, (double)orig, an, num);
            bad++;
        }
    }
    if (!ga || !x)
        bad++;
    free(ga);
    return bad;
}

bool gc_check_tol(const char *name, gc_fn f, void *ctx, int n, const gc_input *in, uint64_t seed,
                  const gc_tol *tol)
{
    gc_run r = {.name = name, .f = f, .ctx = ctx, .n = n, .in = in};
    bool ok = n > 0 && n <= GC_MAX_INPUTS;
    for (int i = 0; ok && i < n; i++)
        ok = (r.base[i] = make_base(&in[i], seed * 31 + (uint64_t)i)) != NULL;
    ok = ok && analytic_pass(&r, seed);
    int bad = 0;
    for (int i = 0; ok && i < n; i++) {
        if (!in[i].constant) {
            bad += check_input(&r, i, tol);
        } else if (tg_grad(r.base[i])) {
            fprintf(stderr, "gradcheck %s: constant input %d received a gradient\n", name, i);
            bad++;
        }
    }
    if (bad > GC_MAX_REPORTS)
        fprintf(stderr, "gradcheck %s: %d mismatches in all\n", name, bad);
    for (int i = 0; i < n && i < GC_MAX_INPUTS; i++)
        tg_release(r.base[i]);
    free(r.w);
    return ok && bad == 0;
}

bool gc_check(const char *name, gc_fn f, void *ctx, int n, const gc_input *in, uint64_t seed)
{
    return gc_check_tol(name, f, ctx, n, in, seed, &GC_DEFAULT_TOL);
}
