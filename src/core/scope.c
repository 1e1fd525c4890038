/* Scopes: every tensor handed to the user between tg_scope_begin and tg_scope_end is released at
 * the end unless tg_keep takes it out. Only results crossing the public API boundary are
 * tracked (tg_api_depth == 0), never the library's own temporaries. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "tensor.h"
#include "thread_exit.h"
#include "tls.h"

TG_TLS int tg_api_depth;

/* The first scopes' marks need no allocation, so the outermost tg_scope_begin cannot fail: a
 * scope that could not be opened at depth 0 would leave its results tracked by none. */
#define INLINE_MARKS 4

typedef struct {
    tg_tensor **items;
    size_t len, cap;
    size_t *marks; /* start index of each open scope past the first INLINE_MARKS */
    size_t depth, marks_cap;
    size_t merged; /* innermost begins that could not get a mark (see tg_scope_begin) */
} scope_stack;

static TG_TLS scope_stack scopes;
static TG_TLS size_t inline_marks[INLINE_MARKS];

static size_t *mark_at(size_t i)
{
    return i < INLINE_MARKS ? &inline_marks[i] : &scopes.marks[i - INLINE_MARKS];
}
static TG_TLS bool armed; /* release_stack runs when this thread exits */

/* Runs at thread exit (thread_exit.h). Only the arrays go. A scope left open holds references
 * the user may still share with other threads, so its tensors are not released here: exiting
 * inside a scope keeps them alive, as leaving the scope open always did. */
static void release_stack(void)
{
    free(scopes.items);
    free(scopes.marks);
    scopes = (scope_stack){0};
    armed = false;
}

static bool grow(void **ptr, size_t *cap, size_t elem)
{
    tg_thread_exit_arm_once(&armed, release_stack);
    size_t ncap = *cap ? *cap * 2 : 64;
    void *p = realloc(*ptr, ncap * elem);
    if (!p)
        return false;
    *ptr = p;
    *cap = ncap;
    return true;
}

tg_status tg_null_input(tg_status s, const char *fmt, ...)
{
    /* only the outermost call cleared the status on entry: there "the call before" is the
     * caller's last call, the one whose failure may have produced this NULL */
    if (tg_api_depth <= 1 && tg_restore_previous_error())
        return tg_last_status();
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    tg_set_error(s, "%s", msg);
    tg_mark_null_arg();
    return s;
}

tg_tensor *tg_api_leave(tg_tensor *t)
{
    if (--tg_api_depth > 0 || !t || scopes.depth == 0)
        return t;
    if (scopes.len == scopes.cap && !grow((void **)&scopes.items, &scopes.cap, sizeof(tg_tensor *))) {
        /* Cannot track it: fail the call rather than leak silently. */
        tg_release(t);
        tg_set_error(TG_ENOMEM, "tg_scope: out of memory tracking a result");
        return NULL;
    }
    scopes.items[scopes.len++] = t;
    return t;
}

/* A begin that cannot store its mark (out of memory, nested more than INLINE_MARKS deep) merges
 * into the enclosing scope: its results are released when that one ends, and its own end does
 * nothing. Ending the enclosing scope early instead would release results still in use. */
void tg_scope_begin(void)
{
    bool full = scopes.depth >= INLINE_MARKS && scopes.depth - INLINE_MARKS == scopes.marks_cap;
    if (full && scopes.merged == 0) {
        if (grow((void **)&scopes.marks, &scopes.marks_cap, sizeof(size_t)))
            full = false;
        else
            tg_set_error(TG_ENOMEM, "tg_scope_begin: out of memory; the scope's results are "
                                    "released with the enclosing scope's");
    }
    if (full || scopes.merged > 0) {
        scopes.merged++;
        return;
    }
    *mark_at(scopes.depth++) = scopes.len;
}

void tg_scope_end(void)
{
    if (scopes.merged > 0) {
        scopes.merged--;
        return;
    }
    if (scopes.depth == 0) {
        tg_set_error(TG_EINVAL, "tg_scope_end: no open scope");
        return;
    }
    size_t start = *mark_at(--scopes.depth);
    /* Newest first, so results are dropped before the inputs they were computed from. */
    while (scopes.len > start) {
        tg_tensor *t = scopes.items[--scopes.len];
        tg_release(t);
    }
}

tg_tensor *tg_keep(tg_tensor *t)
{
    if (!t)
        return NULL;
    for (size_t i = scopes.len; i > 0; i--) {
        if (scopes.items[i - 1] == t) {
            scopes.items[i - 1] = NULL; /* tg_release(NULL) is a no-op at scope end */
            return t;
        }
    }
    return t;
}
