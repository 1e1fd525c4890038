/* Writing a file as a whole or not at all: the data goes to a new file beside the target, which
 * is renamed over it once everything is written and synced. A reader never sees a partial file,
 * and a failure leaves the old file (or none) in place.
 *
 * Targets that cannot be replaced by a rename are written in place instead: a symlink's target
 * is replaced (the link stays), and a device or FIFO (/dev/stdout, a pipe) is written directly.
 * Each function returns 0 or an errno value. This file has no other dependency, so the command
 * line tools compile it in as well. */
#ifndef TG_CORE_FILE_REPLACE_H
#define TG_CORE_FILE_REPLACE_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tg_replace {
    int fd;
    char *tmp;  /* the temporary file beside the target; NULL when writing in place */
    char *dest; /* the file that ends up with the data */
} tg_replace;

int tg_replace_open(tg_replace *r, const char *path);
/* The file a write to path replaces: a symlink's target (where it points, when that is not
 * there yet), else path itself. malloc'd; NULL when out of memory. */
char *tg_replace_destination(const char *path);
int tg_replace_write(tg_replace *r, const void *data, size_t len);
/* ok: sync, close and rename into place; !ok (or any failure): close and remove the temporary.
 * Frees what tg_replace_open allocated in both cases. */
int tg_replace_finish(tg_replace *r, bool ok);
/* Open, write len bytes, finish. */
int tg_replace_file(const char *path, const void *data, size_t len);

#endif
