/* Thread-local status and message: the library reports failures here instead of aborting. */
#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "thread_exit.h"
#include "tls.h"

#define MESSAGE_CAP 512

/* The two messages of a thread: the last call's and the one tg_clear_error saved. They live on
 * the heap, allocated at the thread's first error, to keep the library's static TLS block
 * small (tls.h); a thread that never fails never allocates them. */
typedef struct {
    char text[2][MESSAGE_CAP];
    int last; /* which text is the last call's; the other is the previous call's */
} messages;

static TG_TLS tg_status last_status = TG_OK;
static TG_TLS bool last_is_null_arg; /* the message only says "argument is NULL" */
static TG_TLS messages *msgs;
static TG_TLS bool armed; /* free_messages runs when this thread exits */

/* What the previous call left behind, saved when the next call clears the status: a NULL that
 * a failed call returned and the next call received can then still report the original cause. */
static TG_TLS tg_status prev_status = TG_OK;
static TG_TLS bool prev_is_null_arg;

/* Said when even the message buffer cannot be allocated; the status is still exact. */
static const char no_room[] = "out of memory (the error message could not be stored)";

static void free_messages(void)
{
    free(msgs);
    msgs = NULL;
    armed = false;
}

static char *last_text(void)
{
    if (!msgs) {
        msgs = calloc(1, sizeof *msgs);
        if (!msgs)
            return NULL;
        tg_thread_exit_arm_once(&armed, free_messages);
    }
    return msgs->text[msgs->last];
}

tg_status tg_set_error(tg_status s, const char *fmt, ...)
{
    char *text = last_text();
    if (text) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, MESSAGE_CAP, fmt, ap);
        va_end(ap);
    }
    last_status = s;
    last_is_null_arg = false;
    return s;
}

void tg_clear_error(void)
{
    prev_status = last_status;
    prev_is_null_arg = last_is_null_arg;
    if (last_status != TG_OK && msgs)
        msgs->last ^= 1; /* the failed call's message becomes the previous one, kept */
    last_status = TG_OK;
    last_is_null_arg = false;
}

bool tg_restore_previous_error(void)
{
    /* "argument is NULL" is no cause: then this NULL is the caller's own */
    if (prev_status == TG_OK || prev_is_null_arg)
        return false;
    last_status = prev_status;
    if (msgs)
        memcpy(msgs->text[msgs->last], msgs->text[msgs->last ^ 1], MESSAGE_CAP);
    return true;
}

void tg_mark_null_arg(void)
{
    last_is_null_arg = true;
}

tg_status tg_last_status(void) { return last_status; }

const char *tg_last_error(void)
{
    if (last_status == TG_OK)
        return "";
    return msgs ? msgs->text[msgs->last] : no_room;
}

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
