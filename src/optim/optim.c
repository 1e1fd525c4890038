/* Optimizers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW), applied in place to
 * contiguous parameters. Updates bypass the graph on purpose, as under torch.no_grad(). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../core/file_replace.h"
#include "../core/parallel.h"
#include "../core/tensor.h"
#include "../../kernels/kernels.h"

typedef enum { OPT_SGD = 1, OPT_ADAM = 2 } opt_kind;

struct tg_optimizer {
    opt_kind kind;
    int n;
    tg_tensor **params;
    float **buf1; /* SGD momentum buffer, Adam first moment (NULL until first used) */
    float **buf2; /* Adam second moment */
    /* Steps taken by each parameter: as in PyTorch, a step that finds no grad on a parameter
     * does not count for it, so its Adam bias corrections follow its own updates. */
    int64_t *steps;
    tg_sgd_options sgd;
    tg_adam_options adam;
};

void tg_sgd_options_init(tg_sgd_options *o)
{
    if (!o)
        return;
    *o = (tg_sgd_options){.lr = 0.01, .momentum = 0.0, .dampening = 0.0, .weight_decay = 0.0};
}

void tg_adam_options_init(tg_adam_options *o)
{
    if (!o)
        return;
    *o = (tg_adam_options){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8};
}

void tg_adamw_options_init(tg_adam_options *o)
{
    if (!o) /* NULL is a no-op, as for the other option initializers */
        return;
    tg_adam_options_init(o);
    o->weight_decay = 1e-2;
    o->decoupled = true;
}

static bool check_params(tg_tensor *const *params, int n, const char *fn)
{
    if (!params || n <= 0) {
        tg_set_error(TG_EINVAL, "%s: no parameters given", fn);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            tg_null_input(TG_EINVAL, "%s: parameter %d is NULL", fn, i);
            return false;
        }
        if (!params[i]->requires_grad || params[i]->grad_fn) {
            tg_set_error(TG_EINVAL, "%s: parameter %d %s", fn, i,
                         params[i]->grad_fn ? "is not a leaf (it has a grad_fn)"
                                            : "does not require grad");
            return false;
        }
        if (!params[i]->contiguous) {
            tg_set_error(TG_EINVAL, "%s: parameter %d is not contiguous", fn, i);
            return false;
        }
        /* PyTorch warns that this will become an error; each slot would update the tensor
         * again with state of its own, a trajectory PyTorch's shared state does not follow. */
        for (int k = 0; k < i; k++)
            if (params[k] == params[i]) {
                tg_set_error(TG_EINVAL, "%s: parameters %d and %d are the same tensor", fn, k, i);
                return false;
            }
    }
    return true;
}

static tg_optimizer *opt_new(opt_kind kind, tg_tensor *const *params, int n, const char *fn)
{
    tg_clear_error();
    if (!check_params(params, n, fn))
        return NULL;
    tg_optimizer *o = calloc(1, sizeof *o);
    if (o) {
        o->params = calloc((size_t)n, sizeof *o->params);
        o->buf1 = calloc((size_t)n, sizeof *o->buf1);
        o->buf2 = calloc((size_t)n, sizeof *o->buf2);
        o->steps = calloc((size_t)n, sizeof *o->steps);
    }
    if (!o || !o->params || !o->buf1 || !o->buf2 || !o->steps) {
        tg_optimizer_free(o);
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
        return NULL;
    }
    o->kind = kind;
    o->n = n;
    for (int i = 0; i < n; i++)
        o->params[i] = tg_retain(params[i]);
    return o;
}

tg_optimizer *tg_sgd_new(tg_tensor *const *params, int n, const tg_sgd_options *opts)
{
    tg_sgd_options def;
    tg_sgd_options_init(&def);
    const tg_sgd_options *s = opts ? opts : &def;
    if (!(s->lr >= 0.0) || !(s->momentum >= 0.0) || !(s->weight_decay >= 0.0) ||
        (s->nesterov && (s->momentum <= 0.0 || s->dampening != 0.0))) {
        tg_set_error(TG_EINVAL, "tg_sgd_new: invalid options (lr %g, momentum %g, weight_decay %g; "
                                "nesterov needs momentum > 0 and dampening 0)",
                     s->lr, s->momentum, s->weight_decay);
        return NULL;
    }
    tg_optimizer *o = opt_new(OPT_SGD, params, n, "tg_sgd_new");
    if (o)
        o->sgd = *s;
    return o;
}

tg_optimizer *tg_adam_new(tg_tensor *const *params, int n, const tg_adam_options *opts)
{
    tg_adam_options def;
    tg_adam_options_init(&def);
    const tg_adam_options *a = opts ? opts : &def;
    if (!(a->lr >= 0.0) || !(a->beta1 >= 0.0 && a->beta1 < 1.0) ||
        !(a->beta2 >= 0.0 && a->beta2 < 1.0) || !(a->eps >= 0.0) || !(a->weight_decay >= 0.0)) {
        tg_set_error(TG_EINVAL, "tg_adam_new: invalid options (lr %g, betas (%g, %g), eps %g, "
                                "weight_decay %g)",
                     a->lr, a->beta1, a->beta2, a->eps, a->weight_decay);
        return NULL;
    }
    tg_optimizer *o = opt_new(OPT_ADAM, params, n, "tg_adam_new");
    if (o)
        o->adam = *a;
    return o;
}

void tg_optimizer_free(tg_optimizer *o)
{
    if (!o)
        return;
    for (int i = 0; i < o->n && o->params; i++) {
        tg_release(o->params[i]);
        free(o->buf1 ? o->buf1[i] : NULL);
        free(o->buf2 ? o->buf2[i] : NULL);
    }
    free(o->params);
    free(o->buf1);
    free(o->buf2);
    free(o->steps);
    free(o);
}

static float *state_buffer(float **slot, int64_t n)
{
    if (!*slot)
        *slot = calloc((size_t)(n ? n : 1), sizeof(float));
    return *slot;
}

/* One parameter's update, split across the thread pool: every element's formula stands alone,
 * so the result is the same on any number of threads. */
typedef struct {
    const tg_optimizer *o;
    float *p, *b1, *b2;
    const float *g;
    bool first;                /* SGD: the momentum buffer starts as d */
    float bc2_sqrt, step_size; /* Adam's bias corrections for this step */
    float shrink;              /* AdamW's decay factor 1 - lr wd */
} update_job;

/* g + wd p, the gradient with (L2) weight decay, added only when weight_decay != 0, as
 * PyTorch's SGD and Adam do: 0 * p would turn an infinite parameter into NaN. */
static inline float decayed_grad(float g, float p, float wd, bool decay)
{
    return decay ? g + wd * p : g;
}

/* PyTorch's SGD: d = g + wd p (decayed_grad); b = d (first step) or mu b + (1 - dampening) d;
 * d = nesterov ? d + mu b : b; p -= lr d. One loop per case, with the options in locals and
 * restrict pointers: with the options read through a pointer the stores could alias, the
 * compiler reloaded them and branched on every element and did not vectorize (1M floats took
 * 1.17 ms, four times PyTorch). The same operations in the same order: the same floats. */
static void sgd_range(void *ctx, int64_t begin, int64_t end)
{
    const update_job *j = ctx;
    const tg_sgd_options s = j->o->sgd;
    /* PyTorch rounds each scalar to float once; 1 - dampening it computes in double first */
    const float wd = (float)s.weight_decay, mu = (float)s.momentum, lr = (float)s.lr;
    const float keep = (float)(1.0 - s.dampening);
    const bool decay = s.weight_decay != 0.0;
    float *restrict p = j->p, *restrict b = j->b1;
    const float *restrict g = j->g;
    if (!b) {
        for (int64_t k = begin; k < end; k++)
            p[k] -= lr * decayed_grad(g[k], p[k], wd, decay);
    } else if (j->first) { /* b = d */
        for (int64_t k = begin; k < end; k++) {
            float d = decayed_grad(g[k], p[k], wd, decay);
            b[k] = d;
            p[k] -= lr * (s.nesterov ? d + mu * d : d);
        }
    } else if (s.nesterov) {
        for (int64_t k = begin; k < end; k++) {
            float d = decayed_grad(g[k], p[k], wd, decay), bk = mu * b[k] + keep * d;
            b[k] = bk;
            p[k] -= lr * (d + mu * bk);
        }
    } else {
        for (int64_t k = begin; k < end; k++) {
            float d = decayed_grad(g[k], p[k], wd, decay), bk = mu * b[k] + keep * d;
            b[k] = bk;
            p[k] -= lr * bk;
        }
    }
}

static bool sgd_update(tg_optimizer *o, int i, float *p, const float *g, int64_t n)
{
    update_job j = {.o = o, .p = p, .g = g, .first = o->buf1[i] == NULL};
    if (o->sgd.momentum != 0.0 && !(j.b1 = state_buffer(&o->buf1[i], n)))
        return false;
    tg_parallel_for(n, tg_parallel_grain(), sgd_range, &j);
    return true;
}

/* PyTorch's Adam/AdamW (non-amsgrad, non-foreach formulas):
 * AdamW: p *= 1 - lr wd; Adam: g += wd p; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 * p += (-step_size * m) / (sqrt(v) / sqrt(1 - b2^t) + eps), step_size = lr / (1 - b1^t).
 * PyTorch computes the scalars 1 - lr wd and step_size in double (Python floats) and rounds
 * them to float once, and its addcdiv multiplies before it divides; any other order gives
 * results a few ulp away that drift further apart over the steps. */
static void adam_range(void *ctx, int64_t begin, int64_t end)
{
    const update_job *j = ctx;
    const tg_adam_options a = j->o->adam; /* locals, as in sgd_range */
    const float b1 = (float)a.beta1, b2 = (float)a.beta2;
    const float c1 = (float)(1.0 - a.beta1), c2 = (float)(1.0 - a.beta2);
    const float eps = (float)a.eps, wd = (float)a.weight_decay, shrink = j->shrink;
    const bool decay = a.weight_decay != 0.0;
    const float bc2_sqrt = j->bc2_sqrt, step_size = j->step_size;
    float *restrict p = j->p, *restrict m = j->b1, *restrict v = j->b2;
    const float *restrict g = j->g;
    for (int64_t k = begin; k < end; k++) {
        float gk = g[k], pk = p[k];
        if (a.decoupled)
            pk *= shrink;
        else
            gk = decayed_grad(gk, pk, wd, decay);
        float mk = b1 * m[k] + c1 * gk, vk = b2 * v[k] + c2 * gk * gk;
        m[k] = mk, v[k] = vk;
        p[k] = pk - step_size * mk / (sqrtf(vk) / bc2_sqrt + eps);
    }
}

static bool adam_update(tg_optimizer *o, int i, float *p, const float *g, int64_t n)
{
    update_job j = {.o = o, .p = p, .g = g};
    j.b1 = state_buffer(&o->buf1[i], n), j.b2 = state_buffer(&o->buf2[i], n);
    if (!j.b1 || !j.b2)
        return false;
    double t = (double)o->steps[i];
    j.bc2_sqrt = (float)sqrt(1.0 - pow(o->adam.beta2, t));
    j.step_size = (float)(o->adam.lr / (1.0 - pow(o->adam.beta1, t)));
    j.shrink = (float)(1.0 - o->adam.lr * o->adam.weight_decay);
    tg_parallel_for(n, tg_parallel_grain(), adam_range, &j);
    return true;
}

tg_status tg_optimizer_step(tg_optimizer *o)
{
    tg_clear_error();
    if (!o)
        return tg_set_error(TG_EINVAL, "tg_optimizer_step: optimizer is NULL");
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = o->params[i], *g = p->grad;
        if (!g)
            continue; /* PyTorch skips parameters without a grad */
        tg_tensor *gc = tg_as_contiguous(g);
        if (!gc)
            return tg_last_status();
        o->steps[i]++;
        bool ok = o->kind == OPT_SGD ? sgd_update(o, i, tg_ptr(p), tg_ptr(gc), p->numel)
                                     : adam_update(o, i, tg_ptr(p), tg_ptr(gc), p->numel);
        tg_release(gc);
        if (!ok) {
            o->steps[i]--;
            return tg_set_error(TG_ENOMEM, "tg_optimizer_step: out of memory for optimizer state");
        }
        tg_bump_version(p, "tg_optimizer_step");
    }
    return TG_OK;
}

void tg_optimizer_zero_grad(tg_optimizer *o, bool set_to_none)
{
    if (!o)
        return;
    /* A void call leaves the status as it was (tapegrad.h), but tg_zero_ clears it when it
     * succeeds: keep it, so a loop that zeroes the grads between a failed forward and its
     * check still sees why the forward failed. */
    tg_status st = tg_last_status();
    char msg[512];
    if (st != TG_OK)
        snprintf(msg, sizeof msg, "%s", tg_last_error());
    for (int i = 0; i < o->n; i++) {
        tg_tensor *p = o->params[i];
        if (!p->grad)
            continue;
        if (set_to_none) {
            tg_grad_reset(p);
        } else {
            bool prev = tg_set_grad_enabled(false);
            tg_zero_(p->grad);
            tg_set_grad_enabled(prev);
        }
    }
    if (st != TG_OK)
        tg_set_error(st, "%s", msg);
}

/* ---- state file: "TGOPT2\n", kind, n, then per parameter: ndim, shape, values, flags
 * saying which state buffers follow, the parameter's step count, the buffers. Little-endian
 * host layout. Files from before per-parameter step counts ("TGOPT1\n") have one step count
 * after n and none per parameter; they still load, the count going to every parameter with
 * state (those without state have never been updated). ---- */

static const char MAGIC[8] = "TGOPT2\n";
static const char MAGIC_V1[8] = "TGOPT1\n";

static bool write_all(tg_replace *f, const void *p, size_t n)
{
    int err = tg_replace_write(f, p, n);
    if (err)
        errno = err;
    return err == 0;
}

static bool save_param(tg_replace *f, const tg_optimizer *o, int i)
{
    const tg_tensor *p = o->params[i];
    int32_t nd = p->ndim;
    uint8_t has[2] = {o->buf1[i] != NULL, o->buf2[i] != NULL};
    size_t bytes = (size_t)p->numel * sizeof(float);
    return write_all(f, &nd, sizeof nd) && write_all(f, p->shape, sizeof(int64_t) * (size_t)nd) &&
           write_all(f, tg_ptr(p), bytes) && write_all(f, has, sizeof has) &&
           write_all(f, &o->steps[i], sizeof o->steps[i]) &&
           (!has[0] || write_all(f, o->buf1[i], bytes)) &&
           (!has[1] || write_all(f, o->buf2[i], bytes));
}

tg_status tg_optimizer_save(const tg_optimizer *o, const char *path)
{
    tg_clear_error();
    if (!o || !path)
        return tg_set_error(TG_EINVAL, "tg_optimizer_save: %s is NULL", o ? "path" : "optimizer");
    tg_replace f;
    int err = tg_replace_open(&f, path);
    if (err) /* ENOMEM: no memory for the temporary file's name, not an I/O failure */
        return tg_set_error(err == ENOMEM ? TG_ENOMEM : TG_EIO,
                            "tg_optimizer_save: cannot write %s: %s", path, strerror(err));
    int32_t head[2] = {(int32_t)o->kind, o->n};
    bool ok = write_all(&f, MAGIC, sizeof MAGIC) && write_all(&f, head, sizeof head);
    for (int i = 0; ok && i < o->n; i++)
        ok = save_param(&f, o, i);
    err = ok ? 0 : errno;
    int fin = tg_replace_finish(&f, ok);
    if (!ok || fin)
        return tg_set_error(TG_EIO, "tg_optimizer_save: writing %s failed: %s", path,
                            strerror(ok ? fin : err));
    return TG_OK;
}

/* Loaded state for one parameter, applied only once the whole file has checked out. */
typedef struct {
    float *values, *b1, *b2;
    int64_t step;
} loaded_param;

static bool read_all(FILE *f, void *p, size_t n) { return fread(p, 1, n, f) == n; }

/* v1_step: the file's one step count for a version-1 file, -1 for the current format. */
static tg_status load_param(FILE *f, const tg_tensor *p, int i, loaded_param *lp, const char *path,
                            int64_t v1_step)
{
    int32_t nd;
    int64_t shape[TG_MAX_DIMS];
    uint8_t has[2];
    if (!read_all(f, &nd, sizeof nd) || nd != p->ndim ||
        !read_all(f, shape, sizeof(int64_t) * (size_t)nd))
        return tg_set_error(TG_EPARSE, "tg_optimizer_load: %s: parameter %d has a different rank", path, i);
    for (int d = 0; d < nd; d++)
        if (shape[d] != p->shape[d])
            return tg_set_error(TG_EPARSE, "tg_optimizer_load: %s: parameter %d has a different shape", path, i);
    size_t bytes = (size_t)p->numel * sizeof(float);
    lp->values = malloc(bytes ? bytes : 1);
    if (!lp->values) /* not the file's fault: no "truncated" for it */
        return tg_set_error(TG_ENOMEM, "tg_optimizer_load: out of memory for parameter %d", i);
    if (!read_all(f, lp->values, bytes) || !read_all(f, has, sizeof has) ||
        (v1_step < 0 && !read_all(f, &lp->step, sizeof lp->step)))
        return tg_set_error(TG_EPARSE, "tg_optimizer_load: %s: truncated at parameter %d", path, i);
    if (v1_step >= 0)
        lp->step = has[0] || has[1] ? v1_step : 0;
    if (has[0] > 1 || has[1] > 1 || lp->step < 0)
        return tg_set_error(TG_EPARSE, "tg_optimizer_load: %s: corrupt state of parameter %d", path,
                            i);
    float **dst[2] = {&lp->b1, &lp->b2};
    for (int k = 0; k < 2; k++) {
        if (!has[k])
            continue;
        *dst[k] = malloc(bytes ? bytes : 1);
        if (!*dst[k])
            return tg_set_error(TG_ENOMEM,
                                "tg_optimizer_load: out of memory for the state of "
                                "parameter %d",
                                i);
        if (!read_all(f, *dst[k], bytes))
            return tg_set_error(TG_EPARSE, "tg_optimizer_load: %s: truncated state of parameter %d", path, i);
    }
    return TG_OK;
}

static void apply_loaded(tg_optimizer *o, loaded_param *lp)
{
    for (int i = 0; i < o->n; i++) {
        memcpy(tg_ptr(o->params[i]), lp[i].values, (size_t)o->params[i]->numel * sizeof(float));
        tg_bump_version(o->params[i], "tg_optimizer_load");
        free(o->buf1[i]);
        free(o->buf2[i]);
        o->buf1[i] = lp[i].b1;
        o->buf2[i] = lp[i].b2;
        o->steps[i] = lp[i].step;
        free(lp[i].values);
    }
}

tg_status tg_optimizer_load(tg_optimizer *o, const char *path)
{
    tg_clear_error();
    if (!o || !path)
        return tg_set_error(TG_EINVAL, "tg_optimizer_load: %s is NULL", o ? "path" : "optimizer");
    FILE *f = fopen(path, "rb");
    if (!f)
        return tg_set_error(TG_EIO, "tg_optimizer_load: cannot open %s: %s", path, strerror(errno));
    /* fopen opens a directory for reading; its reads then fail, which is an I/O error, not a
     * file in the wrong format. */
    struct stat sb;
    if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
        fclose(f);
        return tg_set_error(TG_EIO, "tg_optimizer_load: cannot read %s: %s", path,
                            strerror(EISDIR));
    }
    char magic[8];
    int32_t head[2];
    int64_t v1_step = -1;
    tg_status st = TG_OK;
    bool v1 = false;
    if (!read_all(f, magic, sizeof magic) ||
        (memcmp(magic, MAGIC, sizeof magic) != 0 &&
         !(v1 = memcmp(magic, MAGIC_V1, sizeof magic) == 0)) ||
        !read_all(f, head, sizeof head) ||
        (v1 && (!read_all(f, &v1_step, sizeof v1_step) || v1_step < 0)))
        st = tg_set_error(TG_EPARSE, "tg_optimizer_load: %s is not a tapegrad optimizer file", path);
    else if (head[0] != (int32_t)o->kind || head[1] != o->n)
        st = tg_set_error(TG_EPARSE, "tg_optimizer_load: %s holds a different optimizer (kind %d, %d "
                                     "parameters; expected kind %d, %d)",
                          path, head[0], head[1], (int)o->kind, o->n);
    loaded_param *lp = st == TG_OK ? calloc((size_t)o->n, sizeof *lp) : NULL;
    if (st == TG_OK && !lp)
        st = tg_set_error(TG_ENOMEM, "tg_optimizer_load: out of memory");
    for (int i = 0; st == TG_OK && i < o->n; i++)
        st = load_param(f, o->params[i], i, &lp[i], path, v1 ? v1_step : -1);
    if (st == TG_OK && fgetc(f) != EOF)
        st = tg_set_error(TG_EPARSE,
                          "tg_optimizer_load: %s: unexpected data after the last parameter", path);
    fclose(f);
    if (st == TG_OK) {
        apply_loaded(o, lp);
    } else if (lp) {
        for (int i = 0; i < o->n; i++)
            free(lp[i].values), free(lp[i].b1), free(lp[i].b2);
    }
    free(lp);
    return st;
}
