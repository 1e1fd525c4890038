/* Thread-local status and message: the library reports failures here instead of aborting. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>

static _Thread_local tg_status last_status = TG_OK;
static _Thread_local char last_message[512];

tg_status tg_set_error(tg_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_message, sizeof last_message, fmt, ap);
    va_end(ap);
    last_status = s;
    return s;
}

void tg_clear_error(void)
{
    last_status = TG_OK;
    last_message[0] = '\0';
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
