/* Thread-local error status shared by every module. */
#ifndef TG_CORE_ERROR_H
#define TG_CORE_ERROR_H

#include <stdbool.h>

#include "tapegrad.h"

/* Sets the thread's status and a printf-style message; returns s so callers can write
 * `return tg_set_error(...)`. The message should name the function and the bad shapes/values. */
tg_status tg_set_error(tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Marks the current call as successful (status TG_OK, message ""). */
void tg_clear_error(void);
/* Brings back the status and message that the last tg_clear_error replaced, if they were an
 * error other than a NULL argument; returns whether it did. */
bool tg_restore_previous_error(void);
/* Marks the error just set as a NULL argument of the caller's own (never restored as a cause);
 * tg_null_input (tensor.h) sets and marks in one call. */
void tg_mark_null_arg(void);
/* Formats a shape as "[2, 3]" into buf (always NUL-terminated); returns buf. */
const char *tg_shape_str(char *buf, size_t cap, int ndim, const int64_t *shape);

#endif
