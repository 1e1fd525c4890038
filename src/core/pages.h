/* Hints to the kernel about the pages under a buffer. */
#ifndef TG_CORE_PAGES_H
#define TG_CORE_PAGES_H

#include <stddef.h>

/* madvise(advice) over the whole pages inside [p, p + bytes), on Linux: a hint, so a failure
 * (an advice this kernel does not know) is ignored; nothing elsewhere. */
void tg_advise_pages(void *p, size_t bytes, int advice);

/* A transparent huge page: the size from which a buffer asks for them. */
#define TG_HUGE_PAGE ((size_t)2 << 20)

/* Asks for 2 MB (transparent huge) pages under [p, p + bytes) when the buffer is TG_HUGE_PAGE
 * or more: tg_advise_pages with MADV_HUGEPAGE where the system has it. Nothing for a smaller
 * buffer, which could not fill one, nor elsewhere. */
void tg_advise_huge_pages(void *p, size_t bytes);

#endif
