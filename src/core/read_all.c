/* Reading a descriptor to its end; see read_all.h. */
#include "read_all.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

int tg_read_all(int fd, size_t size_hint, size_t max, char **data, size_t *len)
{
    /* room for one byte more than the hint, so that a file of that size ends in its first read
     * (read returns 0 on the next) without growing the buffer */
    size_t cap = size_hint && size_hint < SIZE_MAX - 1 ? size_hint + 2 : (size_t)1 << 16, n = 0;
    char *buf = malloc(cap);
    int err = buf ? 0 : ENOMEM;
    while (!err) {
        if (cap - n < 2) { /* keep a byte for the NUL */
            char *b = cap <= max && cap <= SIZE_MAX / 2 ? realloc(buf, 2 * cap) : NULL;
            if (!b) {
                err = cap > max ? EFBIG : ENOMEM;
                break;
            }
            buf = b, cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            err = errno;
        else if (got == 0)
            break;
        else
            n += (size_t)got;
    }
    if (!err && n > max)
        err = EFBIG;
    if (err) {
        free(buf);
        *data = NULL;
        return err;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}
