/* Hints to the kernel about the pages under a buffer (pages.h). */
#include "pages.h"

#include <stdint.h>
#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

void tg_advise_pages(void *p, size_t bytes, int advice)
{
#if defined(__linux__)
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = ((uintptr_t)p + page - 1) & ~(page - 1);
    uintptr_t hi = ((uintptr_t)p + bytes) & ~(page - 1);
    if (hi > lo)
        (void)madvise((void *)lo, hi - lo, advice);
#else
    (void)p, (void)bytes, (void)advice;
#endif
}

void tg_advise_huge_pages(void *p, size_t bytes)
{
#if defined(MADV_HUGEPAGE)
    if (bytes >= TG_HUGE_PAGE)
        tg_advise_pages(p, bytes, MADV_HUGEPAGE);
#else
    (void)p, (void)bytes;
#endif
}
