/* JSON and SVG must be UTF-8, while file names and CSV headers need not be. The length of the
 * well-formed sequence at s (1 to 4), 0 if none starts there; whether all of s is well formed;
 * a malloc'd copy with each byte outside a well-formed sequence replaced by U+FFFD (NULL when
 * out of memory). No dependencies: the JSON output's test compiles it in. */
#ifndef TG_CLI_UTF8_H
#define TG_CLI_UTF8_H

#include <stdbool.h>
#include <stddef.h>

size_t cli_utf8_len(const char *s);
bool cli_utf8_valid(const char *s);
char *cli_utf8_clean(const char *s);

#endif
