/* Option parsing for the subcommands: "--name value" and "--name=value", typed and range
 * checked, with one-line errors. Small on purpose: getopt_long would not check types. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const cli_opt *find_opt(const cli_opt *opts, const char *name, size_t len)
{
    for (const cli_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0)
            return o;
    return NULL;
}

/* strtoll and strtod skip leading white space; a value with white space at either end is
 * refused alike. */
static bool starts_blank(const char *s)
{
    return *s == ' ' || (*s >= '\t' && *s <= '\r');
}

static bool parse_int64(const char *s, int64_t *out)
{
    if (starts_blank(s))
        return false;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end)
        return false;
    *out = v;
    return true;
}

static bool parse_double(const char *s, double *out)
{
    if (starts_blank(s))
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Stores value into the option's target; false with a message when it does not fit. */
static bool store(const char *cmd, const cli_opt *o, const char *value)
{
    int64_t i;
    double d;
    switch (o->kind) {
    case OPT_FLAG:
        *(bool *)o->target = true;
        return true;
    case OPT_STRING:
        *(const char **)o->target = value;
        return true;
    case OPT_CHAR:
        *(const char **)o->target = value; /* validated by the user of the value */
        return true;
    case OPT_INT:
    case OPT_INT64:
        if (!parse_int64(value, &i) || (double)i < o->lo || (double)i > o->hi) {
            cli_error(cmd, "--%s expects an integer in [%.0f, %.0f], got '%s'", o->name, o->lo,
                      o->hi, value);
            return false;
        }
        if (o->kind == OPT_INT)
            *(int *)o->target = (int)i;
        else
            *(int64_t *)o->target = i;
        return true;
    case OPT_DOUBLE:
        if (!parse_double(value, &d) || d < o->lo || d > o->hi) {
            cli_error(cmd, "--%s expects a number in [%g, %g], got '%s'", o->name, o->lo, o->hi,
                      value);
            return false;
        }
        *(double *)o->target = d;
        return true;
    }
    return false;
}

bool cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, const char **pos,
               int max_pos, int *n_pos, bool *help)
{
    *n_pos = 0;
    *help = false;
    bool options_done = false;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (options_done || a[0] != '-' || strcmp(a, "-") == 0) {
            if (*n_pos >= max_pos) {
                cli_error(cmd, "unexpected argument '%s'", a);
                return false;
            }
            pos[(*n_pos)++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            *help = true;
            return true;
        }
        if (a[1] != '-') {
            cli_error(cmd, "unknown option '%s' (options start with --)", a);
            return false;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const cli_opt *o = find_opt(opts, name, len);
        if (!o) {
            cli_error(cmd, "unknown option '--%.*s' (see tapegrad %s --help)", (int)len, name, cmd);
            return false;
        }
        const char *value = eq ? eq + 1 : NULL;
        if (o->kind == OPT_FLAG && value) {
            cli_error(cmd, "--%s takes no value", o->name);
            return false;
        }
        if (o->kind != OPT_FLAG && !value) {
            if (i + 1 >= argc) {
                cli_error(cmd, "--%s needs a value", o->name);
                return false;
            }
            value = argv[++i];
            /* "--model --json" is a forgotten value far more often than a file named --json */
            if (value[0] == '-' && value[1] == '-' && value[2] != '\0') {
                cli_error(cmd,
                          "--%s needs a value, got the option '%s' (write --%s=%s if it is "
                          "the value)",
                          o->name, value, o->name, value);
                return false;
            }
        }
        if (!store(cmd, o, value))
            return false;
        if (o->seen)
            *o->seen = true;
    }
    return true;
}

/* [*start, *start + n) without the blanks at either end; returns the new length. Column names
 * from the command line are taken so: the reader trims header names too ("a, b" names b). */
static size_t trim_blanks(const char **start, size_t n)
{
    size_t lead = strspn(*start, " \t");
    lead = lead < n ? lead : n;
    *start += lead;
    n -= lead;
    while (n > 0 && ((*start)[n - 1] == ' ' || (*start)[n - 1] == '\t'))
        n--;
    return n;
}

char **cli_split_list(const char *s, int *n)
{
    int count = 1;
    for (const char *p = s; *p; p++)
        count += *p == ',';
    char **list = calloc((size_t)count + 1, sizeof(char *));
    if (!list)
        return NULL;
    const char *start = s;
    for (int k = 0; k < count; k++) {
        const char *end = strchr(start, ',');
        const char *stop = end ? end : start + strlen(start);
        const char *name = start;
        size_t len = trim_blanks(&name, (size_t)(stop - start));
        list[k] = malloc(len + 1);
        if (!list[k]) {
            cli_free_list(list);
            return NULL;
        }
        memcpy(list[k], name, len);
        list[k][len] = '\0';
        start = end ? end + 1 : stop;
    }
    *n = count;
    return list;
}

void cli_trim_name(const char **s)
{
    if (!*s)
        return;
    size_t n = trim_blanks(s, strlen(*s));
    ((char *)*s)[n] = '\0'; /* argv's strings may be written */
}

void cli_free_list(char **list)
{
    for (char **p = list; p && *p; p++)
        free(*p);
    free(list);
}

bool cli_csv_options(const char *cmd, const cli_csv *in, tg_csv_options *opt)
{
    opt->no_header = in->no_header;
    opt->skip_rows = in->skip_rows;
    opt->positive = in->positive;
    if (in->missing) {
        if (strcmp(in->missing, "error") == 0)
            opt->missing = TG_MISSING_ERROR;
        else if (strcmp(in->missing, "drop") == 0)
            opt->missing = TG_MISSING_DROP;
        else if (strcmp(in->missing, "mean") == 0)
            opt->missing = TG_MISSING_MEAN;
        else {
            cli_error(cmd, "--missing expects error, drop or mean, got '%s'", in->missing);
            return false;
        }
    }
    const char *d = in->delimiter;
    if (!d)
        return true;
    if (strcmp(d, "tab") == 0 || strcmp(d, "\\t") == 0)
        opt->delimiter = '\t';
    else if (strcmp(d, "space") == 0)
        opt->delimiter = ' ';
    else if (strlen(d) == 1 && d[0] != '"' && d[0] != '\n' && d[0] != '\r')
        opt->delimiter = d[0];
    else {
        cli_error(cmd, "--delimiter expects one character, 'tab' or 'space', got '%s'", d);
        return false;
    }
    return true;
}

bool cli_csv_valid(const char *cmd, const cli_csv *in)
{
    tg_csv_options scratch;
    tg_csv_options_init(&scratch);
    return cli_csv_options(cmd, in, &scratch);
}
