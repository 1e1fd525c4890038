/* Output helpers: one-line errors, all-or-nothing file writes, a growable text buffer. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
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

/* Library messages name the C options (tg_csv_options.missing and .positive); a command-line
 * user needs the flags that set them, as the command at hand takes them (predict has no drop,
 * and predict and eval fill with the model's means). Whole phrases only, none of which a file
 * name in the message is likely to hold. cmd NULL: every command. */
typedef struct {
    const char *cmd, *lib, *cli;
} rewording;

#define MISSING_HINT "set the missing-value policy to drop the row or use the column mean"

static const rewording lib_to_flag[] = {
    {"train", MISSING_HINT,
     "use --missing drop to skip such rows or --missing mean to fill in the training rows' "
     "means"},
    {"eval", MISSING_HINT,
     "use --missing drop to skip such rows or --missing mean to fill in the model's training "
     "means"},
    {"predict", MISSING_HINT, "use --missing mean to fill in the model's training means"},
    {NULL, "the mean policy fills features, not labels",
     "--missing mean fills features, not labels"},
    {"train", "the keep policy leaves features missing, not labels",
     "--missing mean fills features, not labels"},
    {NULL, "set positive to the value that means 1",
     "use --positive VALUE to name the value that means 1"},
    /* predict and eval take the features from the model, by name; only eval's --label can be
     * an index */
    {"predict", "select by 0-based index", "rename one: the model finds its columns by name"},
    {"eval", "select by 0-based index",
     "rename one: the model finds its columns by name (--label also takes a 0-based index)"},
    {"train", "standardize them", "train without --no-standardize"},
    {"train", "pos_weight (", "--pos-weight ("},
    {"train", "try a smaller lr", "try a smaller --lr"},
    {"train", "use a smaller validation split or another seed",
     "use a smaller --val-split or another --seed"},
};

/* The rewording of the phrase at msg for cmd, or NULL. */
static const rewording *reword_at(const char *cmd, const char *msg)
{
    for (size_t i = 0; i < sizeof lib_to_flag / sizeof *lib_to_flag; i++) {
        const rewording *w = &lib_to_flag[i];
        if ((!w->cmd || strcmp(w->cmd, cmd) == 0) && strncmp(msg, w->lib, strlen(w->lib)) == 0)
            return w;
    }
    return NULL;
}

/* msg with every phrase of lib_to_flag replaced, and without a leading "tg_name: " (the C
 * function that failed means nothing to the user of the command). */
static void word_for_cli(const char *cmd, const char *msg, char *out, size_t cap)
{
    if (strncmp(msg, "tg_", 3) == 0) {
        size_t n = strspn(msg, "abcdefghijklmnopqrstuvwxyz_");
        if (msg[n] == ':' && msg[n + 1] == ' ')
            msg += n + 2;
    }
    size_t k = 0;
    while (*msg && k + 1 < cap) {
        const rewording *w = reword_at(cmd, msg);
        if (!w) {
            out[k++] = *msg++;
            continue;
        }
        k += (size_t)snprintf(out + k, cap - k, "%s", w->cli);
        k = k < cap ? k : cap - 1;
        msg += strlen(w->lib);
    }
    out[k] = '\0';
}

void cli_lib_error(const char *cmd, const char *context, const char *hint)
{
    char msg[1024];
    word_for_cli(cmd, tg_last_error(), msg, sizeof msg);
    cli_error(cmd, "%s%s%s%s", context ? context : "", msg, hint ? "; " : "", hint ? hint : "");
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

bool cli_model_path_ok(const char *cmd, const char *model)
{
    if (strcmp(model, "-") != 0)
        return true;
    cli_error(cmd, "--model -: a model is read from a file, not standard input");
    return false;
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

static bool std_held[3]; /* descriptors 0-2 that were closed at start and now hold /dev/null */

void cli_hold_std_fds(void)
{
    for (int fd = 0; fd <= 2; fd++)
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            int got = open("/dev/null", O_RDONLY);
            if (got == fd)
                std_held[fd] = true;
            else if (got >= 0)
                close(got); /* a lower one was free after all; leave things as they were */
        }
}

/* The standard descriptor a path names (/dev/stdout, /dev/fd/1, /proc/self/fd/1, ...), or -1.
 * Such a path reaches whatever the descriptor holds: for a held one, /dev/null. */
static int std_fd_named(const char *path)
{
    static const char *const names[3] = {"/dev/stdin", "/dev/stdout", "/dev/stderr"};
    static const char *const dirs[] = {"/dev/fd/", "/proc/self/fd/"};
    for (int fd = 0; fd <= 2; fd++)
        if (strcmp(path, names[fd]) == 0)
            return fd;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        size_t len = strlen(dirs[i]);
        if (strncmp(path, dirs[i], len) == 0 && path[len] >= '0' && path[len] <= '2' &&
            path[len + 1] == '\0')
            return path[len] - '0';
    }
    return -1;
}

bool cli_std_closed(const char *path)
{
    int fd = std_fd_named(path);
    return fd >= 0 && std_held[fd];
}

bool cli_input_open(const char *cmd, const char *path)
{
    if (!cli_std_closed(path))
        return true;
    cli_error(cmd, "%s: cannot read: standard input is closed", path);
    return false;
}

static const char *volatile reading_cmd, *volatile reading_path;

static void put_err(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    (void)!write(STDERR_FILENO, s, n);
}

static void on_sigbus(int sig)
{
    (void)sig;
    put_err("tapegrad ");
    put_err(reading_cmd);
    put_err(": ");
    put_err(reading_path);
    put_err(": the file was cut short while it was being read\n");
    _exit(EXIT_FAIL);
}

/* The handler in place before the read (Open MPI installs its own): put back after it. */
static struct sigaction before_reading;

void cli_reading(const char *cmd, const char *path)
{
    if (!path) {
        (void)sigaction(SIGBUS, &before_reading, NULL);
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    reading_cmd = cmd;
    reading_path = path;
    sa.sa_handler = on_sigbus;
    (void)sigaction(SIGBUS, &sa, &before_reading);
}

void cli_files_discard(cli_file *files, int n)
{
    for (int i = 0; i < n; i++)
        if (files[i].staged) {
            (void)tg_replace_finish(&files[i].r, false);
            files[i].staged = false;
        }
}

bool cli_files_stage(const char *cmd, cli_file *files, int n)
{
    for (int i = 0; i < n; i++) {
        cli_file *f = &files[i];
        f->staged = false;
        if (!f->path)
            continue;
        /* the caller closed it: writing must fail as it would have, not vanish into /dev/null */
        int err = cli_std_closed(f->path) ? EBADF : tg_replace_open(&f->r, f->path);
        if (!err) {
            f->staged = true;
            /* Sync now, so that a full disk shows here, while every file can still be
             * removed, rather than at the rename of the last of them. */
            if (f->r.tmp && !(err = tg_replace_write(&f->r, f->data, f->len)) &&
                fsync(f->r.fd) != 0)
                err = errno;
        }
        if (err) {
            cli_error(cmd, "%s: cannot write: %s", f->path, strerror(err));
            cli_files_discard(files, n);
            return false;
        }
    }
    return true;
}

/* Finishes the staged files for which in_place says whether they are written in place (a
 * device or FIFO: written now) or were staged to a temporary (renamed now). */
static bool finish_files(const char *cmd, cli_file *files, int n, bool in_place)
{
    for (int i = 0; i < n; i++) {
        cli_file *f = &files[i];
        if (!f->staged || (f->r.tmp == NULL) != in_place)
            continue;
        int err = in_place ? tg_replace_write(&f->r, f->data, f->len) : 0;
        int fin = tg_replace_finish(&f->r, err == 0);
        f->staged = false;
        if (err || fin) {
            cli_error(cmd, "%s: cannot write: %s", f->path, strerror(err ? err : fin));
            cli_files_discard(files, n);
            return false;
        }
    }
    return true;
}

bool cli_files_commit(const char *cmd, cli_file *files, int n)
{
    /* Devices first: they are the writes that can still fail (/dev/full), and until the
     * renames nothing is in place. A failed rename removes the later temporaries: the model
     * is last, so no model. */
    return finish_files(cmd, files, n, true) && finish_files(cmd, files, n, false);
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
