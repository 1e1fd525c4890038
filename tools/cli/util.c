/* Output helpers: one-line errors, all-or-nothing file writes, a growable text buffer. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "file_replace.h"

static bool muted;

bool cli_mute_errors(bool on)
{
    bool was = muted;
    muted = on;
    return was;
}

void cli_error(const char *cmd, const char *fmt, ...)
{
    if (muted)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* Keep it one line whatever the message carried. */
    for (char *p = msg; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    fflush(stdout);
    fprintf(stderr, "tapegrad %s: %s\n", cmd, msg);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

const char *cli_data_path(const char *path)
{
    return strcmp(path, "-") == 0 ? "/dev/stdin" : path;
}

bool cli_stdout_done(const char *cmd)
{
    int earlier = ferror(stdout) ? errno : 0; /* a failed fwrite's reason, if it was one */
    errno = 0;
    if (fflush(stdout) == 0 && !ferror(stdout))
        return true;
    if (!errno)
        errno = earlier;
    cli_error(cmd, "cannot write to standard output: %s", errno ? strerror(errno) : "write error");
    return false;
}

bool cli_write_file(const char *cmd, const char *path, const char *data, size_t len)
{
    int err = tg_replace_file(path, data, len);
    if (err)
        cli_error(cmd, "%s: cannot write: %s", path, strerror(err));
    return err == 0;
}

void cli_buf_printf(cli_buf *b, const char *fmt, ...)
{
    if (b->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        size_t room = b->cap - b->len;
        int n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0) {
            b->oom = true;
            return;
        }
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap - b->len <= (size_t)n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
}

void cli_buf_free(cli_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
