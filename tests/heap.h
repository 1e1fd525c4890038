/* Bytes in use on the heap, for tests that check that memory comes back: the sanitizer's count
 * under AddressSanitizer (which replaces malloc), glibc's otherwise. */
#ifndef TG_TEST_HEAP_H
#define TG_TEST_HEAP_H

#include <malloc.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__SANITIZE_ADDRESS__)
#define TG_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TG_TEST_ASAN 1
#endif
#endif
#ifdef TG_TEST_ASAN
/* From the sanitizer runtime (declared here: GCC does not always ship its header). */
size_t __sanitizer_get_current_allocated_bytes(void);
#endif

static inline int64_t heap_in_use(void)
{
#ifdef TG_TEST_ASAN
    return (int64_t)__sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return (int64_t)mi.uordblks + (int64_t)mi.hblkhd; /* every arena + mmapped blocks */
#endif
}

#endif
