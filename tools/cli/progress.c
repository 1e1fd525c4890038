/* A one-line progress display on stderr, drawn only when stderr is a terminal: pipes and log
 * files get no carriage-return noise. */
#include <stdarg.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_SECONDS 0.05

void cli_progress_init(cli_progress *p, bool quiet)
{
    p->on = !quiet && isatty(STDERR_FILENO);
    p->last = 0.0;
    p->width = 30;
    p->drawn = false;
}

void cli_progress_status(cli_progress *p, const char *fmt, ...)
{
    if (!p->on)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("\r\033[K", stderr); /* start of line, clear it */
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_rows(cli_progress *p, const char *path, double mb, int64_t done, int64_t total)
{
    if (!p->on)
        return;
    double t = cli_now();
    if (done < total && t - p->last < REDRAW_SECONDS)
        return;
    p->last = t;
    fprintf(stderr, "\r\033[Kreading %s (%.1f MB): %lld / %lld rows", path, mb, (long long)done,
            (long long)total);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_iter(cli_progress *p, int iter, int max_iter, double loss, double val_loss,
                       bool force)
{
    if (!p->on)
        return;
    double t = cli_now();
    if (!force && t - p->last < REDRAW_SECONDS)
        return;
    p->last = t;
    int filled = max_iter > 0 ? (int)((long long)p->width * iter / max_iter) : 0;
    if (filled > p->width)
        filled = p->width;
    char bar[128];
    for (int i = 0; i < p->width; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[p->width] = '\0';
    fprintf(stderr, "\r\033[K[%s] iter %d/%d  loss %.6f", bar, iter, max_iter, loss);
    if (val_loss == val_loss) /* not NaN */
        fprintf(stderr, "  val %.6f", val_loss);
    fflush(stderr);
    p->drawn = true;
}

void cli_progress_done(cli_progress *p)
{
    if (p->on && p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = false;
}
