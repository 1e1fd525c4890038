/* UTF-8 checks for what the command writes as JSON and SVG (see utf8.h). */
#include "utf8.h"

#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at p (1 to 4), or 0 when p starts none: a stray
 * continuation byte, an overlong form, a surrogate, a code point past U+10FFFF, a cut-off
 * sequence. */
size_t cli_utf8_len(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    /* the first continuation byte's range depends on the lead byte (Unicode table 3-7) */
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        lo = c == 0xE0 ? 0xA0 : 0x80;
        hi = c == 0xED ? 0x9F : 0xBF;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        lo = c == 0xF0 ? 0x90 : 0x80;
        hi = c == 0xF4 ? 0x8F : 0xBF;
    } else
        return 0;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t k = 2; k < n; k++)
        if (p[k] < 0x80 || p[k] > 0xBF)
            return 0;
    return n;
}

bool cli_utf8_valid(const char *s)
{
    for (size_t n; *s; s += n)
        if (!(n = cli_utf8_len(s)))
            return false;
    return true;
}

char *cli_utf8_clean(const char *s)
{
    size_t len = strlen(s);
    char *out = malloc(3 * len + 1), *o = out; /* each bad byte becomes 3 bytes at most */
    if (!out)
        return NULL;
    while (*s) {
        size_t n = cli_utf8_len(s);
        if (n) {
            memcpy(o, s, n);
            o += n, s += n;
        } else {
            memcpy(o, "\xEF\xBF\xBD", 3); /* U+FFFD REPLACEMENT CHARACTER */
            o += 3, s++;
        }
    }
    *o = '\0';
    return out;
}
