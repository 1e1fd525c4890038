/* Whole-or-nothing file writes; see file_replace.h. */
#if !defined(_GNU_SOURCE) && !defined(_XOPEN_SOURCE)
#define _XOPEN_SOURCE 700 /* realpath, when compiled into the tools with plain POSIX */
#endif
#include "file_replace.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Where a symlink points, relative to the link's own directory; NULL on failure. */
static char *link_target(const char *path)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(path, buf, sizeof buf - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    const char *slash = strrchr(path, '/');
    size_t dir = buf[0] == '/' || !slash ? 0 : (size_t)(slash - path) + 1;
    char *out = malloc(dir + (size_t)n + 1);
    if (out) {
        memcpy(out, path, dir);
        memcpy(out + dir, buf, (size_t)n + 1);
    }
    return out;
}

/* The file a path names: a symlink's target, so that the rename replaces that file and keeps
 * the link (a link to a file not yet there names where the file is to be created). */
char *tg_replace_destination(const char *path)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        char *real = realpath(path, NULL);
        /* A link that leads somewhere realpath cannot name is a descriptor's link to a pipe or
         * socket (/dev/fd/63 from a shell's >(...), /proc/self/fd/1 into a pipe), whose target
         * text ("pipe:[123]") is no path: the data goes through the link itself. Only a link to
         * nothing yet (stat fails) names where a new file is to be. */
        if (!real && stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode))
            return strdup(path);
        if (!real)
            real = link_target(path);
        if (real)
            return real;
    }
    return strdup(path);
}

static int open_in_place(tg_replace *r)
{
    r->fd = open(r->dest, O_WRONLY | O_CLOEXEC);
    return r->fd < 0 ? errno : 0;
}

/* A new file beside dest with a unique name of its own, so that a target whose name is near
 * the length limit still gets one; keeps the mode of the file it will replace. */
static int open_temp(tg_replace *r, const struct stat *old)
{
    static unsigned counter;
    const char *slash = strrchr(r->dest, '/');
    int dir = slash ? (int)(slash - r->dest) + 1 : 0;
    size_t cap = (size_t)dir + 64;
    r->tmp = malloc(cap);
    if (!r->tmp)
        return ENOMEM;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(r->tmp, cap, "%.*s.tapegrad-%ld-%u.tmp", dir, r->dest, (long)getpid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED));
        /* 0666 and the umask: the permissions a plain fopen would give a new file */
        r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (r->fd >= 0) {
            if (old)
                (void)fchmod(r->fd, old->st_mode & 07777); /* best effort, like cp */
            return 0;
        }
        if (errno != EEXIST)
            break;
    }
    int err = errno;
    free(r->tmp);
    r->tmp = NULL;
    return err;
}

int tg_replace_open(tg_replace *r, const char *path)
{
    r->fd = -1;
    r->tmp = NULL;
    r->dest = tg_replace_destination(path);
    if (!r->dest)
        return ENOMEM;
    struct stat st;
    bool exists = stat(r->dest, &st) == 0;
    int err;
    if (exists && S_ISDIR(st.st_mode))
        err = EISDIR;
    else if (exists && !S_ISREG(st.st_mode))
        err = open_in_place(r); /* a device or FIFO: a rename would put a file in its place */
    else
        err = open_temp(r, exists ? &st : NULL);
    if (err) {
        free(r->dest);
        r->dest = NULL;
    }
    return err;
}

int tg_replace_write(tg_replace *r, const void *data, size_t len)
{
    const char *s = data;
    while (len > 0) {
        ssize_t w = write(r->fd, s, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        s += w;
        len -= (size_t)w;
    }
    return 0;
}

int tg_replace_finish(tg_replace *r, bool ok)
{
    int err = ok ? 0 : ECANCELED;
    if (r->tmp && !err && fsync(r->fd) != 0)
        err = errno;
    if (close(r->fd) != 0 && !err)
        err = errno;
    if (r->tmp && !err && rename(r->tmp, r->dest) != 0)
        err = errno;
    if (r->tmp && err)
        unlink(r->tmp); /* never leave a partial file behind */
    free(r->tmp);
    free(r->dest);
    r->fd = -1;
    r->tmp = r->dest = NULL;
    return err;
}

int tg_replace_file(const char *path, const void *data, size_t len)
{
    tg_replace r;
    int err = tg_replace_open(&r, path);
    if (err)
        return err;
    err = tg_replace_write(&r, data, len);
    int fin = tg_replace_finish(&r, err == 0);
    return err ? err : fin;
}
