/* Reading a descriptor to its end (a pipe, standard input, a file of unknown size) into memory.
 * No other dependency, so the command line tools compile it in as well (as file_replace.c). */
#ifndef TG_CORE_READ_ALL_H
#define TG_CORE_READ_ALL_H

#include <stddef.h>

/* Reads fd to its end into *data (malloc'd, NUL-terminated; *len bytes before the NUL).
 * size_hint: the expected length (a regular file's size), 0 when unknown; more than max bytes
 * is refused. 0 or an errno value: ENOMEM, EFBIG (past max), or the read's own; *data is NULL
 * then. */
int tg_read_all(int fd, size_t size_hint, size_t max, char **data, size_t *len);

#endif
