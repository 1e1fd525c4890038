/* Thread-local status and message: the library reports failures here instead of aborting. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local tg_status last_status = TG_OK;
static _Thread_local char last_message[512];
static _Thread_local bool last_is_null_arg; /* the message only says "argument is NULL" */

tg_status tg_set_error(tg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = s;
    last_is_null_arg = false;
    return s;
}

/* What the previous call left behind, saved when the next call clears the status: a NULL that
 * a failed call returned and the next call received can then still report the original cause. */
static _Thread_local tg_status prev_status = TG_OK;
static _Thread_local char prev_message[sizeof last_message];
static _Thread_local bool prev_is_null_arg;

void tg_clear_error(void)
{
    prev_status = last_status;
    prev_is_null_arg = last_is_null_arg;
    if (last_status != TG_OK)
        memcpy(prev_message, last_message, sizeof prev_message);
    last_status = TG_OK;
    last_message[0] = '\0';
    last_is_null_arg = false;
}

bool tg_restore_previous_error(void)
{
    /* "argument is NULL" is no cause: then this NULL is the caller's own */
    if (prev_status == TG_OK || prev_is_null_arg)
        return false;
    last_status = prev_status;
    memcpy(last_message, prev_message, sizeof last_message);
    return true;
}

void tg_set_null_arg_error(const char *fn)
{
    tg_set_error(TG_EINVAL, "%s: a tensor argument is NULL", fn);
    last_is_null_arg = true;
}

void tg_mark_null_arg(void)
{
    last_is_null_arg = true;
}

tg_status tg_last_status(void) { return last_status; }

const char *tg_last_error(void) { return last_message; }

const char *tg_status_name(tg_status s)
{
    static const char *const names[] = {"TG_OK",    "TG_EINVAL", "TG_ESHAPE", "TG_ENOMEM",
                                        "TG_EGRAPH", "TG_EIO",    "TG_EPARSE", "TG_EUNSUPPORTED"};
    if ((unsigned)s < sizeof names / sizeof names[0])
        return names[s];
    return "TG_UNKNOWN";
}

const char *tg_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    size_t used = 0;
    int w = snprintf(buf, cap, "[");
    used = w > 0 ? (size_t)w : 0;
    for (int i = 0; i < ndim && used < cap; i++) {
        w = snprintf(buf + used, cap - used, i ? ", %lld" : "%lld", (long long)shape[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}
