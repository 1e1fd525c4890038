/* Tensor printing that reproduces torch/_tensor_str.py (PyTorch 1.13) for float32
   tensors with the default print options, plus Python's repr(float).

   The structure deliberately mirrors the Python code (formatter, vector, nested
   tensor, suffixes) so that each quirk of torch's output has an obvious home. */

#include "repr.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    PRINT_PRECISION = 4,
    PRINT_THRESHOLD = 1000,
    PRINT_EDGEITEMS = 3,
    PRINT_LINEWIDTH = 80,
    MAX_NDIM = 8,
    NUM_BUF = 64 /* enough for any "%.4f" of a float32 (at most ~47 chars) */
};

static const char TENSOR_PREFIX[] = "tensor(";
#define TENSOR_INDENT ((int)(sizeof TENSOR_PREFIX - 1))

/* ------------------------------------------------------------------ */
/* Growable string buffer; an allocation failure is sticky so callers  */
/* only need to check once at the end.                                */

typedef struct {
    char *buf;
    size_t len;
    size_t cap;
    int failed;
    int fixed; /* buf is caller-owned storage that must not be realloc'd */
} strbuf;

static int sb_reserve(strbuf *sb, size_t extra)
{
    if (sb->failed)
        return 0;
    if (extra > SIZE_MAX - sb->len - 1) {
        sb->failed = 1;
        return 0;
    }
    size_t need = sb->len + extra + 1;
    if (need <= sb->cap)
        return 1;
    if (sb->fixed) {
        sb->failed = 1;
        return 0;
    }
    size_t cap = sb->cap ? sb->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(sb->buf, cap);
    if (!p) {
        sb->failed = 1;
        return 0;
    }
    sb->buf = p;
    sb->cap = cap;
    return 1;
}

static void sb_append_n(strbuf *sb, const char *s, size_t n)
{
    if (!sb_reserve(sb, n))
        return;
    memcpy(sb->buf + sb->len, s, n);
    sb->len += n;
    sb->buf[sb->len] = '\0';
}

static void sb_append(strbuf *sb, const char *s)
{
    sb_append_n(sb, s, strlen(s));
}

static void sb_repeat(strbuf *sb, char c, int count)
{
    if (count <= 0 || !sb_reserve(sb, (size_t)count))
        return;
    memset(sb->buf + sb->len, c, (size_t)count);
    sb->len += (size_t)count;
    sb->buf[sb->len] = '\0';
}

/* ------------------------------------------------------------------ */
/* Number formatting helpers                                          */

/* snprintf honours LC_NUMERIC, Python does not: rewrite whatever the locale
   used as decimal separator (the run of non-digit characters following the
   leading digits) into '.' so output is identical under any locale. */
static void normalize_decimal_point(char *s)
{
    char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    while (*p >= '0' && *p <= '9')
        p++;
    char *sep_end = p;
    while (*sep_end && !(*sep_end >= '0' && *sep_end <= '9') && *sep_end != 'e')
        sep_end++;
    if (sep_end == p)
        return;
    *p = '.';
    memmove(p + 1, sep_end, strlen(sep_end) + 1);
}

/* Python's format() prints 'nan' whatever the sign bit, C may print "-nan". */
static int format_nonfinite(double v, char *out, size_t cap)
{
    const char *s = isnan(v) ? "nan" : (v < 0 ? "-inf" : "inf");
    return snprintf(out, cap, "%s", s);
}

/* Equivalent of Python's '{:.Nf}' / '{:.Ne}' (conv 'f' or 'e'). Both Python
   and glibc round the exact binary value correctly, so the digits agree. */
static int format_number(double v, char conv, int prec, char *out, size_t cap)
{
    if (!isfinite(v))
        return format_nonfinite(v, out, cap);
    int n = conv == 'e' ? snprintf(out, cap, "%.*e", prec, v)
                        : snprintf(out, cap, "%.*f", prec, v);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    normalize_decimal_point(out);
    return (int)strlen(out);
}

/* ------------------------------------------------------------------ */
/* Tensor view and traversal of the elements torch actually looks at.  */

typedef struct {
    int ndim;
    const int64_t *shape;
    const int64_t *strides;
    const float *data;
    int summarize;
} tensor_view;

typedef void (*element_fn)(float value, void *ctx);

/* When summarizing, a dimension longer than 2*edgeitems contributes only its
   first and last edgeitems entries; this skip is shared by the formatter scan
   (torch's get_summarized_data) and by printing, so both see the same set. */
static int64_t next_index(const tensor_view *tv, int dim, int64_t i)
{
    int64_t n = tv->shape[dim];
    i++;
    if (tv->summarize && n > 2 * PRINT_EDGEITEMS && i == PRINT_EDGEITEMS)
        i = n - PRINT_EDGEITEMS;
    return i;
}

static int is_elided(const tensor_view *tv, int dim)
{
    return tv->summarize && tv->shape[dim] > 2 * PRINT_EDGEITEMS;
}

static void visit_elements(const tensor_view *tv, int dim, int64_t offset, element_fn fn, void *ctx)
{
    if (dim == tv->ndim) {
        fn(tv->data[offset], ctx);
        return;
    }
    for (int64_t i = 0; i < tv->shape[dim]; i = next_index(tv, dim, i))
        visit_elements(tv, dim + 1, offset + i * tv->strides[dim], fn, ctx);
}

/* ------------------------------------------------------------------ */
/* _Formatter                                                          */

typedef struct {
    int int_mode;
    int sci_mode;
    int max_width;
} formatter;

typedef struct {
    int any;        /* saw a nonzero finite value */
    int integral;   /* all nonzero finite values are integers */
    double min_abs; /* torch converts |x| to double before min/max/divide */
    double max_abs;
} value_stats;

static void collect_stats(float value, void *ctx)
{
    value_stats *st = ctx;
    if (!isfinite(value) || value == 0.0f)
        return;
    double a = fabs((double)value);
    if (!st->any || a < st->min_abs)
        st->min_abs = a;
    if (!st->any || a > st->max_abs)
        st->max_abs = a;
    st->any = 1;
    if (value != ceilf(value))
        st->integral = 0;
}

static void measure_width(float value, void *ctx)
{
    formatter *f = ctx;
    if (!isfinite(value) || value == 0.0f)
        return;
    char buf[NUM_BUF];
    int len;
    if (f->sci_mode)
        len = format_number(value, 'e', PRINT_PRECISION, buf, sizeof buf);
    else if (f->int_mode)
        len = format_number(value, 'f', 0, buf, sizeof buf) + 1; /* room for '.' */
    else
        len = format_number(value, 'f', PRINT_PRECISION, buf, sizeof buf);
    if (len > f->max_width)
        f->max_width = len;
}

static formatter make_formatter(const tensor_view *tv)
{
    formatter f = {1, 0, 1};
    value_stats st = {0, 1, 0.0, 0.0};
    visit_elements(tv, 0, 0, collect_stats, &st);
    if (!st.any)
        return f; /* torch keeps int_mode with width 1 when nothing is finite+nonzero */
    f.int_mode = st.integral;
    double ratio = st.max_abs / st.min_abs;
    /* Integers never switch to sci for being small; fractions below 1e-4 do. */
    f.sci_mode = ratio > 1000.0 || st.max_abs > 1.0e8 || (!f.int_mode && st.min_abs < 1.0e-4);
    visit_elements(tv, 0, 0, measure_width, &f);
    return f;
}

/* _Formatter.format: the string for one value, left-padded to max_width. */
static void emit_value(strbuf *sb, const formatter *f, float value)
{
    char buf[NUM_BUF + 1];
    double v = value;
    int len;
    if (f->sci_mode) {
        len = format_number(v, 'e', PRINT_PRECISION, buf, sizeof buf - 1);
    } else if (f->int_mode) {
        len = format_number(v, 'f', 0, buf, sizeof buf - 1);
        if (len >= 0 && isfinite(v)) {
            buf[len++] = '.'; /* marks the value as floating point */
            buf[len] = '\0';
        }
    } else {
        len = format_number(v, 'f', PRINT_PRECISION, buf, sizeof buf - 1);
    }
    if (len < 0)
        return; /* unreachable: NUM_BUF fits any float32 */
    sb_repeat(sb, ' ', f->max_width - len);
    sb_append_n(sb, buf, (size_t)len);
}

/* ------------------------------------------------------------------ */
/* _vector_str / _tensor_str_with_formatter                            */

typedef struct {
    tensor_view tv;
    formatter fmt;
    strbuf *out;
} printer;

/* torch chunks a row into lines of per_line items joined by ", " and breaks
   lines with ",\n" plus indentation. */
static void emit_row_separator(printer *p, int64_t item, int per_line, int indent)
{
    if (item == 0)
        return;
    if (item % per_line != 0) {
        sb_append(p->out, ", ");
        return;
    }
    sb_append(p->out, ",\n");
    sb_repeat(p->out, ' ', indent + 1);
}

/* One row. The " ..." marker counts as an element when torch chunks the row
   into lines, so it takes an item slot exactly like a value. */
static void emit_vector(printer *p, int dim, int64_t offset, int indent)
{
    const tensor_view *tv = &p->tv;
    int element_length = p->fmt.max_width + 2;
    int per_line = (PRINT_LINEWIDTH - indent) / element_length;
    if (per_line < 1)
        per_line = 1;
    int64_t item = 0;
    sb_append(p->out, "[");
    for (int64_t i = 0; i < tv->shape[dim]; i = next_index(tv, dim, i)) {
        if (is_elided(tv, dim) && i == tv->shape[dim] - PRINT_EDGEITEMS) {
            emit_row_separator(p, item++, per_line, indent);
            sb_append(p->out, " ...");
        }
        emit_row_separator(p, item++, per_line, indent);
        emit_value(p->out, &p->fmt, tv->data[offset + i * tv->strides[dim]]);
    }
    sb_append(p->out, "]");
}

/* Separator between sub-tensors: a blank line per extra level of nesting. */
static void emit_slice_separator(printer *p, int dim, int indent)
{
    sb_append(p->out, ",");
    sb_repeat(p->out, '\n', p->tv.ndim - dim - 1);
    sb_repeat(p->out, ' ', indent + 1);
}

static void emit_nested(printer *p, int dim, int64_t offset, int indent)
{
    const tensor_view *tv = &p->tv;
    if (dim == tv->ndim - 1) {
        emit_vector(p, dim, offset, indent);
        return;
    }
    sb_append(p->out, "[");
    for (int64_t i = 0; i < tv->shape[dim]; i = next_index(tv, dim, i)) {
        if (i > 0)
            emit_slice_separator(p, dim, indent);
        if (is_elided(tv, dim) && i == tv->shape[dim] - PRINT_EDGEITEMS) {
            sb_append(p->out, "...");
            emit_slice_separator(p, dim, indent);
        }
        emit_nested(p, dim + 1, offset + i * tv->strides[dim], indent + 1);
    }
    sb_append(p->out, "]");
}

/* ------------------------------------------------------------------ */
/* _add_suffixes                                                       */

/* Python measures str length in code points, so count UTF-8 lead bytes. */
static size_t utf8_length(const char *s, size_t nbytes)
{
    size_t n = 0;
    for (size_t i = 0; i < nbytes; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80)
            n++;
    return n;
}

/* torch's last_line_len is the last line's length plus 2 (an off-by-two in
   its rfind arithmetic); it is reproduced because it decides the wrapping. */
static size_t last_line_length(const strbuf *sb)
{
    size_t start = sb->len;
    while (start > 0 && sb->buf[start - 1] != '\n')
        start--;
    return utf8_length(sb->buf + start, sb->len - start) + 2;
}

static void add_suffixes(strbuf *sb, const char *const *suffixes, int count)
{
    size_t line_len = sb->failed ? 0 : last_line_length(sb);
    for (int k = 0; k < count; k++) {
        size_t suffix_len = utf8_length(suffixes[k], strlen(suffixes[k]));
        if (line_len + suffix_len + 2 > PRINT_LINEWIDTH) {
            sb_append(sb, ",\n");
            sb_repeat(sb, ' ', TENSOR_INDENT);
            line_len = TENSOR_INDENT + suffix_len;
        } else {
            sb_append(sb, ", ");
            line_len += suffix_len + 2;
        }
        sb_append(sb, suffixes[k]);
    }
    sb_append(sb, ")");
}

/* ------------------------------------------------------------------ */
/* Entry point                                                         */

/* Returns the element count, or -1 when the shape is invalid or overflows. */
static int64_t checked_numel(int ndim, const int64_t *shape)
{
    int64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] < 0)
            return -1;
        if (shape[d] == 0)
            return 0; /* an empty dimension wins over any overflow elsewhere */
        if (numel > INT64_MAX / shape[d])
            overflow = 1;
        else
            numel *= shape[d];
    }
    return overflow ? -1 : numel;
}

/* "size=(2, 0, 4)" as Python's str(tuple) spells it. */
static void format_size_suffix(char *out, size_t cap, int ndim, const int64_t *shape)
{
    size_t len = (size_t)snprintf(out, cap, "size=(");
    for (int d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(out + len, cap - len, d ? ", %lld" : "%lld", (long long)shape[d]);
    if (len < cap)
        snprintf(out + len, cap - len, ndim == 1 ? ",)" : ")");
}

static void emit_contents(strbuf *sb, const tensor_view *tv)
{
    printer p = {*tv, make_formatter(tv), sb};
    if (tv->ndim == 0)
        emit_value(sb, &p.fmt, tv->data[0]);
    else
        emit_nested(&p, 0, 0, TENSOR_INDENT);
}

char *tg_format_tensor(int ndim, const int64_t *shape, const int64_t *strides, const float *data, const char *suffix)
{
    if (ndim < 0 || ndim > MAX_NDIM || (ndim > 0 && !shape))
        return NULL;
    int64_t numel = checked_numel(ndim, shape);
    if (numel < 0 || (numel > 0 && (!data || (ndim > 0 && !strides))))
        return NULL;

    strbuf sb = {0};
    const char *suffixes[2];
    int nsuffix = 0;
    char size_text[MAX_NDIM * 24 + 16];
    sb_append(&sb, TENSOR_PREFIX);
    if (numel == 0) {
        sb_append(&sb, "[]");
        /* like NumPy, the shape is spelled out unless it is simply (0,) */
        if (ndim != 1) {
            format_size_suffix(size_text, sizeof size_text, ndim, shape);
            suffixes[nsuffix++] = size_text;
        }
    } else {
        tensor_view tv = {ndim, shape, strides, data, numel > PRINT_THRESHOLD};
        emit_contents(&sb, &tv);
    }
    if (suffix && *suffix)
        suffixes[nsuffix++] = suffix;
    add_suffixes(&sb, suffixes, nsuffix);
    if (sb.failed) {
        free(sb.buf);
        return NULL;
    }
    return sb.buf;
}

/* ------------------------------------------------------------------ */
/* Python repr(float)                                                  */

enum { MAX_SIG_DIGITS = 17 };

/* A decimal d1.d2d3...dn x 10^exp10 with n <= 17 significant digits. */
typedef struct {
    char digits[MAX_SIG_DIGITS + 1];
    int ndigits;
    int exp10;
} decimal;

/* Parses snprintf's "%.*e" output for a positive finite number. */
static void parse_exp_form(const char *s, decimal *d)
{
    d->ndigits = 0;
    for (; *s && *s != 'e'; s++)
        if (*s >= '0' && *s <= '9' && d->ndigits < MAX_SIG_DIGITS)
            d->digits[d->ndigits++] = *s;
    d->digits[d->ndigits] = '\0';
    d->exp10 = *s == 'e' ? atoi(s + 1) : 0;
}

/* Reads the decimal back as a double. Written as "<digits>e<exp>" without a
   decimal point so the result cannot depend on LC_NUMERIC. */
static double decimal_value(const decimal *d)
{
    char text[MAX_SIG_DIGITS + 16];
    snprintf(text, sizeof text, "%se%d", d->digits, d->exp10 - (d->ndigits - 1));
    return strtod(text, NULL);
}

/* Moves to the adjacent n-digit decimal, up (+1) or down (-1). */
static void step_decimal(decimal *d, int dir)
{
    int i = d->ndigits - 1;
    char wrap_from = dir > 0 ? '9' : '0';
    char wrap_to = dir > 0 ? '0' : '9';
    while (i >= 0 && d->digits[i] == wrap_from)
        d->digits[i--] = wrap_to;
    if (i >= 0)
        d->digits[i] = (char)(d->digits[i] + dir);
    if (dir > 0 && i < 0) { /* 99..9 -> 100..0 one decade up */
        d->digits[0] = '1';
        d->exp10++;
    } else if (dir < 0 && d->digits[0] == '0') { /* 10..0 -> 99..9 one decade down */
        memset(d->digits, '9', (size_t)d->ndigits);
        d->exp10--;
    }
}

/* Shortest digit string that reads back as v (what Python's repr uses),
   preferring the candidate nearest to v. The correctly rounded n-digit value
   is tried first; its neighbour on the other side of v is also tried because
   at powers of two the rounding interval is lopsided and only the farther
   candidate may round-trip. */
static void shortest_decimal(double v, decimal *out)
{
    for (int n = 1; n <= MAX_SIG_DIGITS; n++) {
        char text[48];
        snprintf(text, sizeof text, "%.*e", n - 1, v);
        parse_exp_form(text, out);
        double back = decimal_value(out);
        if (back == v)
            return;
        decimal other = *out;
        step_decimal(&other, back < v ? 1 : -1);
        if (decimal_value(&other) == v) {
            *out = other;
            return;
        }
    }
    /* 17 significant digits always round-trip, so this is not reached */
}

static void strip_trailing_zeros(decimal *d)
{
    while (d->ndigits > 1 && d->digits[d->ndigits - 1] == '0')
        d->digits[--d->ndigits] = '\0';
}

/* Python switches to exponent form when the decimal point would sit before
   the 4th leading zero or more than 16 places right of the first digit. */
static void render_py_float(const decimal *d, int negative, strbuf *sb)
{
    int decpt = d->exp10 + 1; /* digits read as 0.d1d2... x 10^decpt */
    if (negative)
        sb_append(sb, "-");
    if (decpt <= -4 || decpt > 16) {
        char exp_text[16];
        sb_append_n(sb, d->digits, 1);
        if (d->ndigits > 1) {
            sb_append(sb, ".");
            sb_append_n(sb, d->digits + 1, (size_t)d->ndigits - 1);
        }
        snprintf(exp_text, sizeof exp_text, "e%c%02d", decpt - 1 < 0 ? '-' : '+', abs(decpt - 1));
        sb_append(sb, exp_text);
    } else if (decpt <= 0) {
        sb_append(sb, "0.");
        sb_repeat(sb, '0', -decpt);
        sb_append_n(sb, d->digits, (size_t)d->ndigits);
    } else if (decpt < d->ndigits) {
        sb_append_n(sb, d->digits, (size_t)decpt);
        sb_append(sb, ".");
        sb_append_n(sb, d->digits + decpt, (size_t)(d->ndigits - decpt));
    } else {
        sb_append_n(sb, d->digits, (size_t)d->ndigits);
        sb_repeat(sb, '0', decpt - d->ndigits);
        sb_append(sb, ".0");
    }
}

static int copy_out(const char *s, size_t len, char *buf, size_t cap)
{
    if (!s || !buf || len >= cap || len > (size_t)INT32_MAX)
        return -1;
    memcpy(buf, s, len + 1);
    return (int)len;
}

int tg_format_py_float(double v, char *buf, size_t cap)
{
    if (isnan(v))
        return copy_out("nan", 3, buf, cap);
    if (isinf(v))
        return v < 0 ? copy_out("-inf", 4, buf, cap) : copy_out("inf", 3, buf, cap);
    if (v == 0.0)
        return signbit(v) ? copy_out("-0.0", 4, buf, cap) : copy_out("0.0", 3, buf, cap);

    decimal d;
    shortest_decimal(fabs(v), &d);
    strip_trailing_zeros(&d);

    /* Fixed-size backing store: the longest repr is ~24 chars, and avoiding
       malloc keeps this function usable when memory is exhausted. */
    char text[64];
    strbuf sb = {text, 0, sizeof text, 0, 1};
    text[0] = '\0';
    render_py_float(&d, signbit(v) != 0, &sb);
    return copy_out(sb.failed ? NULL : text, sb.len, buf, cap);
}
