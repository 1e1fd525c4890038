/* Model files: JSON through cJSON.
 *
 *   {"format": "tapegrad-logreg", "version": 1, "label": "placement", ["positive": "yes",]
 *    "features": ["cgpa", ...], "standardization": {"mean": [...], "std": [...]} or null,
 *    "weights": [...], "bias": b, "solver": {"name": "lbfgs", "l2": ..., ...},
 *    "training": {"rows": n, "iterations": k}}
 *
 * Numbers are written with the shortest digits that read back to the same double (as Python's
 * repr), so save + load is exact. The reader trusts nothing: every field is type- and
 * range-checked, and errors name the file and the field. */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cJSON.h>

#include "../core/error.h"
#include "../core/file_replace.h"
#include "../core/fork_guard.h"
#include "../core/read_all.h"
#include "options.h"
#include "tapegrad/train.h"

#define FORMAT_NAME    "tapegrad-logreg"
/* FILL_VERSION: the first with missing_fill, written only by models that have it, so that other
 * files stay version 1 and readable by builds before it. */
#define FORMAT_VERSION 2 /* the newest this build reads */
#define FILL_VERSION   2
#define MAX_FEATURES   (1 << 24)
#define MAX_FILE_BYTES ((size_t)1 << 30)
#define BELOW_ONE      0x1.fffffffffffffp-1 /* the largest double below 1 */

/* ---- writing ----------------------------------------------------------------------------- */

/* A number as raw JSON text with round-trip digits; NULL for NaN/inf (JSON has none). */
static cJSON *number(double v)
{
    char buf[40];
    if (!isfinite(v) || tg_float_repr(v, buf, sizeof buf) < 0)
        return NULL;
    return cJSON_CreateRaw(buf);
}

static bool add_number(cJSON *obj, const char *key, double v)
{
    cJSON *n = number(v);
    if (n && cJSON_AddItemToObject(obj, key, n))
        return true;
    cJSON_Delete(n);
    return false;
}

/* Counts are written as plain integers ("100", not "100.0"). */
static bool add_int(cJSON *obj, const char *key, int64_t v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", (long long)v);
    cJSON *n = cJSON_CreateRaw(buf);
    if (n && cJSON_AddItemToObject(obj, key, n))
        return true;
    cJSON_Delete(n);
    return false;
}

static cJSON *number_array(const double *v, int64_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < n; i++) {
        cJSON *x = number(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *names_array(const tg_logreg_model *m)
{
    cJSON *a = cJSON_CreateArray();
    for (int64_t i = 0; a && i < m->n_features; i++) {
        char def[32];
        snprintf(def, sizeof def, "%lld", (long long)i); /* as the CSV reader names columns */
        cJSON *s = cJSON_CreateString(m->feature_names ? m->feature_names[i] : def);
        if (!s || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static cJSON *solver_object(const tg_logreg_options *o)
{
    cJSON *s = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed); /* 64 bits: a string */
    bool ok = s && cJSON_AddStringToObject(s, "name", tg_solver_name(o->solver)) &&
              add_number(s, "l2", o->l2) && add_number(s, "pos_weight", o->pos_weight) &&
              add_int(s, "max_iter", o->max_iter) && add_number(s, "tol", o->tol) &&
              add_number(s, "lr", o->lr) && add_int(s, "batch_size", o->batch_size) &&
              add_number(s, "momentum", o->momentum) && add_number(s, "beta1", o->beta1) &&
              add_number(s, "beta2", o->beta2) && add_number(s, "eps", o->eps) &&
              add_int(s, "lbfgs_memory", o->lbfgs_memory) &&
              add_number(s, "val_split", o->val_split) && add_int(s, "patience", o->patience) &&
              cJSON_AddStringToObject(s, "seed", seed);
    if (!ok) {
        cJSON_Delete(s);
        return NULL;
    }
    return s;
}

static bool add_item(cJSON *obj, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(obj, key, item))
        return true;
    cJSON_Delete(item);
    return false;
}

static cJSON *standardization_object(const tg_logreg_model *m)
{
    if (!m->mean)
        return cJSON_CreateNull();
    cJSON *s = cJSON_CreateObject();
    if (s && add_item(s, "mean", number_array(m->mean, m->n_features)) &&
        add_item(s, "std", number_array(m->scale, m->n_features)))
        return s;
    cJSON_Delete(s);
    return NULL;
}

static cJSON *training_object(const tg_logreg_model *m)
{
    cJSON *t = cJSON_CreateObject();
    if (t && add_int(t, "rows", m->train_rows) && add_int(t, "iterations", m->iterations))
        return t;
    cJSON_Delete(t);
    return NULL;
}

static tg_status check_model(const tg_logreg_model *m, const char *fn)
{
    if (!m)
        return tg_set_error(TG_EINVAL, "%s: the model is NULL", fn);
    if (!m->weights || m->n_features < 1 || m->n_features > MAX_FEATURES)
        return tg_set_error(TG_EINVAL, "%s: the model is empty", fn);
    if (!m->mean != !m->scale)
        return tg_set_error(TG_EINVAL, "%s: the model has mean without std (or the reverse)", fn);
    if (lr_check_options(&m->options, fn) != TG_OK)
        return tg_last_status();
    if (m->train_rows < 0 || (double)m->train_rows > LR_MAX_EXACT_INT || m->iterations < 0)
        return tg_set_error(TG_EINVAL, "%s: train_rows (%lld) or iterations (%d) out of range", fn,
                            (long long)m->train_rows, m->iterations);
    for (int64_t i = 0; i < m->n_features; i++)
        if (!isfinite(m->weights[i]) || (m->mean && !isfinite(m->mean[i])) ||
            (m->scale && !(isfinite(m->scale[i]) && m->scale[i] > 0.0)) ||
            (m->fill && !isfinite(m->fill[i])))
            return tg_set_error(TG_EINVAL,
                                "%s: feature %lld has a non-finite weight, mean, std or "
                                "fill",
                                fn, (long long)i);
    if (!isfinite(m->bias))
        return tg_set_error(TG_EINVAL, "%s: the bias is not finite", fn);
    /* A missing name would otherwise fail as an allocation failure of the JSON string. */
    for (int64_t i = 0; m->feature_names && i < m->n_features; i++)
        if (!m->feature_names[i])
            return tg_set_error(TG_EINVAL, "%s: feature_names[%lld] is NULL", fn, (long long)i);
    return TG_OK;
}

static cJSON *model_json(const tg_logreg_model *m)
{
    cJSON *root = cJSON_CreateObject();
    bool ok = root && cJSON_AddStringToObject(root, "format", FORMAT_NAME) &&
              add_int(root, "version", m->fill ? FILL_VERSION : 1) &&
              (m->label ? cJSON_AddStringToObject(root, "label", m->label) != NULL
                        : cJSON_AddNullToObject(root, "label") != NULL) &&
              (!m->positive || cJSON_AddStringToObject(root, "positive", m->positive)) &&
              add_item(root, "features", names_array(m)) &&
              add_item(root, "standardization", standardization_object(m)) &&
              (!m->fill || add_item(root, "missing_fill", number_array(m->fill, m->n_features))) &&
              add_item(root, "weights", number_array(m->weights, m->n_features)) &&
              add_number(root, "bias", m->bias) &&
              add_item(root, "solver", solver_object(&m->options)) &&
              add_item(root, "training", training_object(m));
    if (!ok) {
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* tg_logreg_to_json for the public function fn (named in messages). */
static char *to_json(const tg_logreg_model *m, const char *fn)
{
    if (check_model(m, fn) != TG_OK)
        return NULL;
    cJSON *root = model_json(m);
    char *text = root ? cJSON_Print(root) : NULL;
    cJSON_Delete(root);
    /* Hand back plain malloc memory whatever allocator cJSON was given. */
    char *out = text ? malloc(strlen(text) + 2) : NULL;
    if (out) {
        strcpy(out, text);
        strcat(out, "\n");
    }
    cJSON_free(text);
    if (!out)
        tg_set_error(TG_ENOMEM, "%s: out of memory", fn);
    else
        tg_clear_error();
    return out;
}

char *tg_logreg_to_json(const tg_logreg_model *m)
{
    return to_json(m, "tg_logreg_to_json");
}

tg_status tg_logreg_save(const tg_logreg_model *m, const char *path)
{
    if (!path)
        return tg_set_error(TG_EINVAL, "tg_logreg_save: path is NULL");
    char *text = to_json(m, "tg_logreg_save");
    if (!text)
        return tg_last_status();
    int err = tg_replace_file(path, text, strlen(text));
    free(text);
    if (err) /* ENOMEM: no memory for the temporary file's name, not an I/O failure */
        return tg_set_error(err == ENOMEM ? TG_ENOMEM : TG_EIO, "%s: cannot write the model: %s",
                            path, strerror(err));
    tg_clear_error();
    return TG_OK;
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct {
    const char *name; /* file name for messages */
    int version;      /* the file's format version, once read_header has read it */
    tg_status st;
    const char *text, *end; /* the JSON text and the tree parsed from it, to place errors */
    const cJSON *root;
    bool at_key; /* place the next error at the member's name rather than its value */
} reader;

static const char *where_in_text(const reader *r, const cJSON *at);
static void position(const char *text, size_t off, int64_t *line, int64_t *col);

/* Sets the error once: "FILE:LINE:COL: field 'NAME': what", at the value at (or, for a
 * missing field, at the object that lacks it). */
static bool fail(reader *r, const cJSON *at, const char *field, const char *fmt, const char *detail)
{
    if (r->st != TG_OK)
        return false;
    char what[200];
    snprintf(what, sizeof what, fmt, detail);
    const char *p = where_in_text(r, at);
    if (!p) {
        r->st = tg_set_error(TG_EPARSE, "%s: field '%s': %s", r->name, field, what);
        return false;
    }
    int64_t line, col;
    position(r->text, (size_t)(p - r->text), &line, &col);
    r->st = tg_set_error(TG_EPARSE, "%s:%lld:%lld: field '%s': %s", r->name, (long long)line,
                         (long long)col, field, what);
    return false;
}

/* fail, placed at the name of the object member x */
static bool fail_name(reader *r, const cJSON *x, const char *field, const char *fmt,
                      const char *detail)
{
    r->at_key = true;
    fail(r, x, field, fmt, detail);
    r->at_key = false;
    return false;
}

static const cJSON *field(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

/* A field that must be there: placed at the object that lacks it. */
static bool absent(reader *r, const cJSON *obj, const char *key)
{
    return fail(r, obj, key, "missing%s", "");
}

/* Every member of obj is one of keys (NULL-terminated) and none appears twice. An unknown name
 * is most likely a misspelled one, whose field would then silently take its default (a model
 * whose "standardization" is misspelled would be applied to raw features); a repeated one has
 * no agreed value (this reader would take the first, Python's json the last). where: the
 * object's name for messages ("" for the root). */
static bool known_fields(reader *r, const cJSON *obj, const char *where, const char *const *keys)
{
    for (const cJSON *x = obj->child; x; x = x->next) {
        char name[160];
        snprintf(name, sizeof name, "%s%s%.100s", where, *where ? "." : "", x->string);
        bool known = false;
        for (size_t i = 0; keys[i] && !known; i++)
            known = strcmp(x->string, keys[i]) == 0;
        if (!known)
            return fail_name(r, x, name, "not a field of a model file%s (misspelled?)", "");
        /* Only known names get here, so this scans a handful of members. */
        for (const cJSON *y = obj->child; y != x; y = y->next)
            if (strcmp(y->string, x->string) == 0)
                return fail_name(r, x, name, "appears more than once%s", "");
    }
    return true;
}

/* A number the float32 kernels can use: a weight of 1e300 is finite as a double but infinite
 * once it is a float, and every prediction would be NaN or certain. */
static bool float_range(const cJSON *v)
{
    return cJSON_IsNumber(v) && fabs(v->valuedouble) <= FLT_MAX;
}

static bool get_finite(reader *r, const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = field(obj, key);
    if (!v)
        return absent(r, obj, key);
    if (!float_range(v))
        return fail(r, v, key, "expected a finite number in the float32 range%s", "");
    *out = v->valuedouble;
    return true;
}

/* An optional number within [lo, hi]; absent keeps *out. */
static bool opt_number(reader *r, const cJSON *obj, const char *key, double lo, double hi,
                       double *out)
{
    const cJSON *v = field(obj, key);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) ||
        !(v->valuedouble >= lo && v->valuedouble <= hi))
        return fail(r, v, key, "expected a finite number in range%s", "");
    *out = v->valuedouble;
    return true;
}

static bool opt_int(reader *r, const cJSON *obj, const char *key, double lo, double hi,
                    int64_t *out)
{
    double v = (double)*out;
    if (!opt_number(r, obj, key, lo, hi, &v))
        return false;
    if (v != floor(v))
        return fail(r, field(obj, key), key, "expected an integer%s", "");
    *out = (int64_t)v;
    return true;
}

/* An array of exactly n finite numbers (positive ones when positive). */
static double *get_numbers(reader *r, const cJSON *obj, const char *key, int64_t n, bool positive)
{
    const cJSON *a = field(obj, key);
    char want[64];
    snprintf(want, sizeof want, "%lld", (long long)n);
    if (!a) {
        absent(r, obj, key);
        return NULL;
    }
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        fail(r, a, key, "expected an array of %s numbers, one per feature", want);
        return NULL;
    }
    double *v = malloc((size_t)n * sizeof(double));
    if (!v) {
        r->st = tg_set_error(TG_ENOMEM, "%s: out of memory", r->name);
        return NULL;
    }
    int64_t i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        bool ok = float_range(x) && (!positive || x->valuedouble > 0.0);
        if (!ok) {
            free(v);
            fail(r, x, key,
                 positive ? "expected positive numbers in the float32 range%s"
                          : "expected finite numbers in the float32 range%s",
                 "");
            return NULL;
        }
        v[i] = x->valuedouble;
    }
    return v;
}

static bool read_header(reader *r, const cJSON *root)
{
    if (!cJSON_IsObject(root))
        return fail(r, root, "(root)", "expected a JSON object%s", "");
    const cJSON *f = field(root, "format");
    if (!f)
        return absent(r, root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, FORMAT_NAME) != 0)
        return fail(r, f, "format", "expected \"%s\"", FORMAT_NAME);
    const cJSON *v = field(root, "version");
    if (!v)
        return absent(r, root, "version");
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1)
        return fail(r, v, "version", "expected a positive integer%s", "");
    if (v->valuedouble > FORMAT_VERSION) {
        r->st = tg_set_error(TG_EUNSUPPORTED,
                             "%s: model format version %g is newer than this "
                             "tapegrad reads (%d)",
                             r->name, v->valuedouble, FORMAT_VERSION);
        return false;
    }
    r->version = (int)v->valuedouble;
    return true;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Columns are found by name when the model is applied, so a name listed twice would pick one
 * column for two weights; said here rather than later as a fault of the data file. */
static bool names_distinct(reader *r, const cJSON *a, const char **names, int n)
{
    const char **sorted = malloc((size_t)n * sizeof(char *));
    if (!sorted) {
        r->st = tg_set_error(TG_ENOMEM, "%s: out of memory", r->name);
        return false;
    }
    memcpy(sorted, names, (size_t)n * sizeof(char *));
    qsort(sorted, (size_t)n, sizeof(char *), by_name);
    const char *twice = NULL;
    for (int i = 1; i < n && !twice; i++)
        if (strcmp(sorted[i - 1], sorted[i]) == 0)
            twice = sorted[i];
    bool ok = !twice || fail(r, a, "features", "'%s' is listed more than once", twice);
    free(sorted);
    return ok;
}

static bool read_names(reader *r, const cJSON *root, tg_logreg_model *m)
{
    const cJSON *a = field(root, "features");
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : 0;
    if (!a)
        return absent(r, root, "features");
    if (n < 1 || n > MAX_FEATURES)
        return fail(r, a, "features", "expected a non-empty array of names%s", "");
    const char **names = malloc((size_t)n * sizeof(char *));
    if (!names) {
        r->st = tg_set_error(TG_ENOMEM, "%s: out of memory", r->name);
        return false;
    }
    int i = 0;
    for (const cJSON *x = a->child; x; x = x->next, i++) {
        if (!cJSON_IsString(x)) {
            free(names);
            return fail(r, x, "features", "expected strings%s", "");
        }
        names[i] = x->valuestring;
    }
    const cJSON *label = field(root, "label");
    bool ok = names_distinct(r, a, names, n);
    if (ok && label && !cJSON_IsNull(label) && !cJSON_IsString(label))
        ok = fail(r, label, "label", "expected a string or null%s", "");
    if (ok && tg_logreg_model_set_names(m, names, n,
                                        cJSON_IsString(label) ? label->valuestring : NULL) != TG_OK)
        ok = (r->st = tg_last_status(), false);
    const cJSON *positive = field(root, "positive"); /* optional: string labels only */
    if (ok && positive && !cJSON_IsNull(positive) && !cJSON_IsString(positive))
        ok = fail(r, positive, "positive", "expected a string or null%s", "");
    if (ok && cJSON_IsString(positive) &&
        tg_logreg_model_set_positive(m, positive->valuestring) != TG_OK)
        ok = (r->st = tg_last_status(), false);
    free(names);
    return ok;
}

static bool read_standardization(reader *r, const cJSON *root, tg_logreg_model *m)
{
    const cJSON *s = field(root, "standardization");
    if (!s || cJSON_IsNull(s))
        return true;
    if (!cJSON_IsObject(s))
        return fail(r, s, "standardization", "expected an object or null%s", "");
    static const char *const keys[] = {"mean", "std", NULL};
    if (!known_fields(r, s, "standardization", keys))
        return false;
    m->mean = get_numbers(r, s, "mean", m->n_features, false);
    m->scale = m->mean ? get_numbers(r, s, "std", m->n_features, true) : NULL;
    return m->scale != NULL;
}

/* Optional (written only by a fit that filled missing features): n finite numbers. */
static bool read_fill(reader *r, const cJSON *root, tg_logreg_model *m)
{
    const cJSON *f = field(root, "missing_fill");
    if (!f || cJSON_IsNull(f))
        return true;
    if (r->version < FILL_VERSION) /* version 1 */
        return fail_name(r, f, "missing_fill", "not a field of a version 1 model file%s", "");
    m->fill = get_numbers(r, root, "missing_fill", m->n_features, false);
    return m->fill != NULL;
}

static bool read_solver(reader *r, const cJSON *root, tg_logreg_options *o)
{
    const cJSON *s = field(root, "solver");
    if (!s)
        return absent(r, root, "solver");
    if (!cJSON_IsObject(s))
        return fail(r, s, "solver", "expected an object%s", "");
    static const char *const keys[] = {"name",      "l2",       "pos_weight", "max_iter",
                                       "tol",       "lr",       "batch_size", "momentum",
                                       "beta1",     "beta2",    "eps",        "lbfgs_memory",
                                       "val_split", "patience", "seed",       NULL};
    if (!known_fields(r, s, "solver", keys))
        return false;
    const cJSON *name = field(s, "name");
    if (!name)
        return absent(r, s, "solver.name");
    if (!cJSON_IsString(name) || tg_solver_parse(name->valuestring, &o->solver) != TG_OK)
        return fail(r, name, "solver.name", "expected lbfgs, gd, sgd or adam%s", "");
    int64_t max_iter = o->max_iter, bs = o->batch_size, mem = o->lbfgs_memory,
            patience = o->patience;
    /* The ranges are tg_logreg_fit's (lr_check_options), so that every model it makes loads
     * and every model that loads saves. l2 < 0 is the options' "1 / n_train" (a hand-written
     * model may leave it so). */
    bool ok = opt_number(r, s, "l2", -HUGE_VAL, HUGE_VAL, &o->l2) &&
              opt_number(r, s, "pos_weight", DBL_TRUE_MIN, HUGE_VAL, &o->pos_weight) &&
              opt_int(r, s, "max_iter", 0, INT_MAX, &max_iter) &&
              opt_number(r, s, "tol", 0.0, HUGE_VAL, &o->tol) &&
              opt_number(r, s, "lr", 0.0, HUGE_VAL, &o->lr) &&
              opt_int(r, s, "batch_size", 1, LR_MAX_EXACT_INT, &bs) &&
              opt_number(r, s, "momentum", 0.0, BELOW_ONE, &o->momentum) &&
              opt_number(r, s, "beta1", 0.0, BELOW_ONE, &o->beta1) &&
              opt_number(r, s, "beta2", 0.0, BELOW_ONE, &o->beta2) &&
              opt_number(r, s, "eps", DBL_TRUE_MIN, HUGE_VAL, &o->eps) &&
              opt_int(r, s, "lbfgs_memory", 1, INT_MAX, &mem) &&
              opt_number(r, s, "val_split", 0.0, BELOW_ONE, &o->val_split) &&
              opt_int(r, s, "patience", 0, INT_MAX, &patience);
    o->max_iter = (int)max_iter;
    o->batch_size = bs;
    o->lbfgs_memory = (int)mem;
    o->patience = (int)patience;
    const cJSON *seed = field(s, "seed");
    if (ok && seed) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = cJSON_IsString(seed) ? strtoull(seed->valuestring, &end, 10) : 0;
        if (!cJSON_IsString(seed) || !end || end == seed->valuestring || *end || errno ||
            seed->valuestring[0] == '-')
            return fail(r, seed, "solver.seed", "expected a decimal string%s", "");
        o->seed = v;
    }
    return ok;
}

static bool read_training(reader *r, const cJSON *root, tg_logreg_model *m)
{
    const cJSON *t = field(root, "training");
    if (!t || cJSON_IsNull(t))
        return true;
    if (!cJSON_IsObject(t))
        return fail(r, t, "training", "expected an object%s", "");
    static const char *const keys[] = {"rows", "iterations", NULL};
    if (!known_fields(r, t, "training", keys))
        return false;
    int64_t iters = 0;
    bool ok = opt_int(r, t, "rows", 0, LR_MAX_EXACT_INT, &m->train_rows) &&
              opt_int(r, t, "iterations", 0, INT_MAX, &iters);
    m->iterations = (int)iters;
    return ok;
}

static bool read_model(reader *r, const cJSON *root, tg_logreg_model *m)
{
    /* The header first: a newer format version may well have fields this one does not. */
    static const char *const keys[] = {"format",          "version",  "label",        "positive",
                                       "features",        "weights",  "bias",         "solver",
                                       "standardization", "training", "missing_fill", NULL};
    if (!read_header(r, root) || !known_fields(r, root, "", keys) || !read_names(r, root, m))
        return false;
    m->weights = get_numbers(r, root, "weights", m->n_features, false);
    return m->weights && get_finite(r, root, "bias", &m->bias) &&
           read_standardization(r, root, m) && read_fill(r, root, m) &&
           read_solver(r, root, &m->options) && read_training(r, root, m);
}

/* "line:column" of offset in text, for JSON syntax errors. */
static void position(const char *text, size_t off, int64_t *line, int64_t *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (text[i] == '\n') {
            ++*line;
            *col = 1;
        } else {
            ++*col;
        }
    }
}

/* The offset of the first NUL character in the JSON text [json, end) — a raw NUL byte, or a
 * \u0000 escape in a string — or -1. cJSON keeps strings NUL-terminated, so such a string
 * would be cut short where the NUL is: a feature name "cgpa\u0000x" would select the column
 * "cgpa", and a NUL in a key would hide its field. Valid JSON has backslashes only inside
 * strings, so every backslash starts an escape. */
static ptrdiff_t first_nul(const char *json, const char *end)
{
    for (const char *p = json; p < end; p++) {
        if (*p == '\0')
            return p - json;
        if (*p == '\\' && p + 1 < end) {
            if (end - p >= 6 && p[1] == 'u' && memcmp(p + 2, "0000", 4) == 0)
                return p - json;
            p++; /* the escaped character: "\\" is not the start of another escape */
        }
    }
    return -1;
}

/* cJSON's parser records where it failed in a process-wide variable, written on every call
 * (cJSON 1.7.15), so two threads loading models at once would race on it. Parses take turns;
 * the error position comes from return_parse_end, never from that variable. */
static pthread_mutex_t parse_lock = PTHREAD_MUTEX_INITIALIZER;

/* A fork during another thread's parse must not leave the child's lock held (fork_guard.h). */
__attribute__((constructor)) static void parse_fork_guard(void)
{
    tg_fork_guard(&parse_lock);
}

static cJSON *parse_json(const char *json, size_t len, const char **end)
{
    pthread_mutex_lock(&parse_lock);
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, end, false);
    pthread_mutex_unlock(&parse_lock);
    return root;
}

/* ---- placing an error in the text --------------------------------------------------------
 * cJSON keeps no positions, so a value is found by walking the text alongside the tree parsed
 * from it: cJSON parses each member again to say where it ends, and only the separators
 * between members (blanks, ':' and ',') are stepped over here. Errors only; the text is known
 * to be valid JSON. */

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* Past the JSON value (or key string) that starts at p, and the blanks after it; NULL if none. */
static const char *past_value(const char *p, const char *end)
{
    const char *stop = NULL;
    cJSON *v = parse_json(p, (size_t)(end - p), &stop);
    cJSON_Delete(v);
    return v && stop && stop > p && stop <= end ? skip_blanks(stop, end) : NULL;
}

static bool contains(const cJSON *tree, const cJSON *node)
{
    if (tree == node)
        return true;
    for (const cJSON *c = tree->child; c; c = c->next)
        if (contains(c, node))
            return true;
    return false;
}

/* The text of node inside at, whose value starts at p (at_key: of its name, when node is an
 * object's member); NULL when it cannot be placed. */
static const char *locate(const cJSON *at, const char *p, const char *end, const cJSON *node,
                          bool at_key)
{
    p = skip_blanks(p, end);
    if (at == node)
        return p;
    const bool object = cJSON_IsObject(at);
    p = skip_blanks(p + 1, end); /* '{' or '[' */
    for (const cJSON *c = at->child; c && p && p < end; c = c->next) {
        if (object && c == node && at_key)
            return p;
        if (object) { /* "key" : */
            p = past_value(p, end);
            if (!p || p >= end || *p != ':')
                return NULL;
            p = skip_blanks(p + 1, end);
        }
        if (contains(c, node))
            return locate(c, p, end, node, at_key);
        p = past_value(p, end);
        if (p && p < end && *p == ',')
            p = skip_blanks(p + 1, end);
    }
    return NULL;
}

static const char *where_in_text(const reader *r, const cJSON *at)
{
    if (!at || !r->root || !contains(r->root, at))
        return NULL;
    const char *p = r->text;
    if (r->end - p >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
        p += 3; /* cJSON skips a byte-order mark too */
    return locate(r->root, p, r->end, at, r->at_key);
}

tg_status tg_logreg_from_json(tg_logreg_model *m, const char *name, const char *json, size_t len)
{
    reader r = {name ? name : "<buffer>", TG_OK};
    if (!m || !json)
        return tg_set_error(TG_EINVAL, "tg_logreg_from_json: NULL argument");
    const char *end = NULL;
    cJSON *root = parse_json(json, len, &end);
    if (!root) {
        int64_t line, col;
        size_t off = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        position(json, off, &line, &col);
        return tg_set_error(TG_EPARSE, "%s:%lld:%lld: not valid JSON", r.name, (long long)line,
                            (long long)col);
    }
    /* One JSON value and nothing after it but blanks: a second object, or a model file with
     * junk appended, is not a model file. */
    const char *stop = end && end >= json && end <= json + len ? end : json + len;
    ptrdiff_t nul = first_nul(json, stop);
    if (nul >= 0) {
        int64_t line, col;
        position(json, (size_t)nul, &line, &col);
        cJSON_Delete(root);
        return tg_set_error(TG_EPARSE, "%s:%lld:%lld: a NUL character (a damaged file?)", r.name,
                            (long long)line, (long long)col);
    }
    while (stop < json + len &&
           (*stop == ' ' || *stop == '\t' || *stop == '\n' || *stop == '\r' || *stop == '\0'))
        stop++;
    if (stop < json + len) {
        int64_t line, col;
        position(json, (size_t)(stop - json), &line, &col);
        cJSON_Delete(root);
        return tg_set_error(TG_EPARSE, "%s:%lld:%lld: text after the end of the JSON object",
                            r.name, (long long)line, (long long)col);
    }
    r.text = json;
    r.end = stop;
    r.root = root;
    tg_logreg_model tmp;
    tg_logreg_model_init(&tmp);
    bool ok = read_model(&r, root, &tmp);
    cJSON_Delete(root);
    if (!ok) {
        tg_logreg_model_free(&tmp);
        return r.st;
    }
    tg_logreg_model_free(m);
    *m = tmp;
    tg_clear_error();
    return TG_OK;
}

/* Reads a whole model file: a regular file of at most MAX_FILE_BYTES, or a pipe or socket read
 * to its end (a shell's <(...) hands over /dev/fd/N) with the same bound; NUL-terminated. */
static tg_status slurp(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return tg_set_error(TG_EIO, "%s: %s", path, strerror(errno));
    struct stat sb;
    int e = fstat(fd, &sb) != 0 ? errno : 0;
    if (!e && !S_ISREG(sb.st_mode) && !S_ISFIFO(sb.st_mode) && !S_ISSOCK(sb.st_mode))
        e = EINVAL;
    else if (!e && S_ISREG(sb.st_mode) && (size_t)sb.st_size > MAX_FILE_BYTES)
        e = EFBIG;
    if (!e)
        e = tg_read_all(fd, S_ISREG(sb.st_mode) ? (size_t)sb.st_size : 0, MAX_FILE_BYTES, out, len);
    close(fd);
    switch (e) {
    case 0:
        return TG_OK;
    case EINVAL:
        return tg_set_error(TG_EIO, "%s: not a model file (a regular file or a pipe)", path);
    case EFBIG:
        return tg_set_error(TG_EIO, "%s: larger than 1 GiB, not a model file", path);
    case ENOMEM:
        return tg_set_error(TG_ENOMEM, "%s: out of memory", path);
    default:
        return tg_set_error(TG_EIO, "%s: read error", path);
    }
}

tg_status tg_logreg_load(tg_logreg_model *m, const char *path)
{
    if (!m || !path)
        return tg_set_error(TG_EINVAL, "tg_logreg_load: NULL argument");
    char *text = NULL;
    size_t len = 0;
    tg_status st = slurp(path, &text, &len);
    if (st == TG_OK)
        st = tg_logreg_from_json(m, path, text, len);
    free(text);
    return st;
}
