/* Allocation of tensor headers and storages.
 *
 * Headers and small storages come from per-thread free lists: a scalar op then costs a few
 * pointer swaps instead of malloc/free. Large buffers are 64-byte aligned and recycled through a
 * small size-bucketed cache, so a loop that creates and drops a 64 MB tensor each step does not
 * page-fault 64 MB of fresh memory every time. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fork_guard.h"
#include "pages.h"
#include "tensor.h"
#include "thread_exit.h"
#include "tls.h"

/* Free-list entries stay reachable from thread-local roots while the thread lives, so leak
 * checkers see no leak; release_free_lists frees them when the thread exits. */
static TG_TLS tg_storage *free_storages;
static TG_TLS tg_tensor *free_tensors;
static TG_TLS int n_free_storages, n_free_tensors;
static TG_TLS bool armed; /* release_free_lists runs when this thread exits */

/* Entries a list keeps; more go back to malloc. Without a bound a thread that only releases
 * what other threads made (the consumer of a pipeline) would grow its lists for ever, since it
 * never takes from them. 16K entries cover the graphs of a training step many times over. */
#define FREE_LIST_MAX 16384

/* Runs at thread exit (thread_exit.h). Entries on the lists have no owner left: a storage's
 * large buffer went back to the shared cache when it was released. */
static void release_free_lists(void)
{
    while (free_storages) {
        tg_storage *s = free_storages;
        free_storages = s->next_free;
        free(s);
    }
    while (free_tensors) {
        tg_tensor *t = free_tensors;
        free_tensors = t->next_free;
        free(t);
    }
    n_free_storages = n_free_tensors = 0;
    armed = false;
}

/* Called on every push: a thread may fill its lists only with headers that other threads
 * allocated, so arming on the malloc path alone would miss it. One predictable branch; called
 * after the push, so the compiler reuses the TLS address it computed for the list (before it,
 * the slow path's call made it compute the address twice). */
static inline void arm(void)
{
    tg_thread_exit_arm_once(&armed, release_free_lists);
}

static inline void push_storage(tg_storage *s)
{
    if (__builtin_expect(n_free_storages >= FREE_LIST_MAX, 0)) {
        free(s);
        return;
    }
    n_free_storages++;
    s->next_free = free_storages;
    free_storages = s;
    arm();
}

/* ---- large buffer cache ----
 * When the cache is full, the buffer that has waited longest is freed to make room for the one
 * just released: the newest buffers are the ones a loop is about to ask for again. Dropping the
 * newcomer instead let a cache filled once with sizes no longer in use refuse every later
 * buffer, and each op then page-faulted its output afresh (3.7x slower in one measured loop). */
#define CACHE_SLOTS 16
#define CACHE_MAX_BYTES ((size_t)512 << 20)
#define LARGE_ROUND 1024 /* elements: capacities are rounded so near sizes share buffers */

typedef struct {
    float *ptr;
    int64_t capacity;
    uint64_t stamp; /* when it was put: the smallest is evicted first */
} cached_buffer;

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static cached_buffer cache[CACHE_SLOTS];
static size_t cache_bytes;
static uint64_t cache_clock;
static _Atomic int64_t fresh_allocs; /* large buffers that did not come from the cache */

/* A fork while another thread holds the cache's lock would leave it held for ever in the
 * child, whose first large buffer would then hang, and a cache caught half-updated could send
 * cache_put past its slots (fork_guard.h). */
__attribute__((constructor)) static void cache_fork_guard(void)
{
    tg_fork_guard(&cache_lock);
}

int64_t tg_alloc_fresh_count(void)
{
    return fresh_allocs;
}

/* Best-fitting cached buffer of at least n and at most 2n elements, or NULL. */
static float *cache_take(int64_t n, int64_t *capacity)
{
    float *found = NULL;
    pthread_mutex_lock(&cache_lock);
    int best = -1;
    for (int i = 0; i < CACHE_SLOTS; i++) {
        int64_t c = cache[i].capacity;
        if (cache[i].ptr && c >= n && c <= 2 * n && (best < 0 || c < cache[best].capacity))
            best = i;
    }
    if (best >= 0) {
        found = cache[best].ptr;
        *capacity = cache[best].capacity;
        cache[best].ptr = NULL;
        cache_bytes -= (size_t)*capacity * sizeof(float);
    }
    pthread_mutex_unlock(&cache_lock);
    return found;
}

/* Slot of the oldest cached buffer, or -1 when the cache is empty. Caller holds cache_lock. */
static int oldest_slot(void)
{
    int old = -1;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].ptr && (old < 0 || cache[i].stamp < cache[old].stamp))
            old = i;
    return old;
}

/* Keeps the buffer for reuse, evicting the oldest ones while it does not fit; a buffer larger
 * than the whole cache is freed. Evicted buffers are freed after the lock is dropped.
 * Not inlined, nor is large_alloc: inlined, their locks and loops made tg_storage_release and
 * tg_storage_new save six registers and open a stack frame on every call, for the small
 * storages (a scalar's) that never reach them too. */
__attribute__((noinline)) static void cache_put(float *ptr, int64_t capacity)
{
    size_t bytes = (size_t)capacity * sizeof(float);
    float *evicted[CACHE_SLOTS];
    int n_evicted = 0;
    if (bytes > CACHE_MAX_BYTES) {
        free(ptr);
        return;
    }
    pthread_mutex_lock(&cache_lock);
    int slot = -1;
    for (;;) {
        for (int i = 0; slot < 0 && i < CACHE_SLOTS; i++)
            if (!cache[i].ptr)
                slot = i;
        if (slot >= 0 && cache_bytes + bytes <= CACHE_MAX_BYTES)
            break;
        int old = oldest_slot(); /* not -1: an empty cache has a free slot and room */
        evicted[n_evicted++] = cache[old].ptr;
        cache_bytes -= (size_t)cache[old].capacity * sizeof(float);
        cache[old].ptr = NULL;
        if (slot < 0)
            slot = old;
    }
    cache[slot] = (cached_buffer){ptr, capacity, ++cache_clock};
    cache_bytes += bytes;
    pthread_mutex_unlock(&cache_lock);
    for (int i = 0; i < n_evicted; i++)
        free(evicted[i]);
}

/* Buffers of 2 MB or more are 2 MB aligned, a whole number of 2 MB long, and ask for 2 MB
 * pages: a hint, which Linux follows when transparent huge pages are set to "madvise" or
 * "always". The buffer then takes one page fault per 2 MB instead of 512. On a VM that traps
 * every fault to its host (12 us per 4 KB page measured on one), `tapegrad train` on a 1M x 32
 * CSV took 0.400 s instead of 0.540 s when run back to back; passes over a buffer already in
 * memory ran within 3% either way there. Aligned and rounded, a million-float vector (4 MB)
 * sits on two 2 MB pages instead of 977 small ones. */
__attribute__((noinline)) static float *large_alloc(int64_t n, int64_t *capacity)
{
    float *p = cache_take(n, capacity);
    if (p)
        return p;
    fresh_allocs++;
    int64_t cap = (n + LARGE_ROUND - 1) / LARGE_ROUND * LARGE_ROUND;
    if ((uint64_t)cap > (SIZE_MAX - TG_HUGE_PAGE) / sizeof(float))
        return NULL;
    size_t bytes = (size_t)cap * sizeof(float), align = 64;
    if (bytes >= TG_HUGE_PAGE) {
        bytes = (bytes + TG_HUGE_PAGE - 1) / TG_HUGE_PAGE * TG_HUGE_PAGE;
        cap = (int64_t)(bytes / sizeof(float));
        align = TG_HUGE_PAGE;
    }
    p = aligned_alloc(align, bytes);
    if (!p) {
        /* Memory may be sitting in the cache: drop it and try once more. */
        pthread_mutex_lock(&cache_lock);
        for (int i = 0; i < CACHE_SLOTS; i++) {
            free(cache[i].ptr);
            cache[i].ptr = NULL;
        }
        cache_bytes = 0;
        pthread_mutex_unlock(&cache_lock);
        p = aligned_alloc(align, bytes);
    }
    if (p)
        tg_advise_huge_pages(p, bytes);
    *capacity = cap;
    return p;
}

float *tg_scratch_alloc(int64_t n, int64_t *capacity)
{
    return large_alloc(n > 0 ? n : 1, capacity);
}

void tg_scratch_free(float *p, int64_t capacity)
{
    if (p)
        cache_put(p, capacity);
}

tg_storage *tg_storage_new(int64_t n)
{
    tg_storage *s = free_storages;
    if (s) {
        free_storages = s->next_free;
        n_free_storages--;
    } else {
        s = aligned_alloc(64, sizeof(tg_storage));
        if (!s)
            return NULL;
    }
    tg_ref_init(&s->refcount, 1);
    s->version = 0;
    s->last_writer = NULL;
    atomic_store_explicit(&s->known_n, 0, memory_order_relaxed);
    s->next_free = NULL;
    if (n <= TG_SMALL_FLOATS) {
        s->data = s->small;
        s->capacity = TG_SMALL_FLOATS;
        return s;
    }
    s->data = large_alloc(n, &s->capacity);
    if (!s->data) {
        push_storage(s);
        return NULL;
    }
    return s;
}

void tg_storage_release(tg_storage *s)
{
    if (!s || !tg_ref_dec(&s->refcount))
        return;
    if (s->data != s->small)
        cache_put(s->data, s->capacity);
    s->data = NULL;
    push_storage(s);
}

tg_tensor *tg_tensor_header(void)
{
    tg_tensor *t = free_tensors;
    if (t) {
        free_tensors = t->next_free;
        n_free_tensors--;
    } else if (!(t = malloc(sizeof *t))) {
        return NULL;
    }
    /* Only the fields every constructor relies on are reset; shapes are written by callers. */
    t->storage = NULL;
    t->offset = 0;
    t->numel = 1;
    tg_ref_init(&t->refcount, 1);
    t->ndim = 0;
    t->requires_grad = false;
    t->retains_grad = false;
    t->contiguous = true;
    t->grad = NULL;
    t->grad_fn = NULL;
    t->no_grad_base = NULL;
    t->next_free = NULL;
    return t;
}

void tg_tensor_header_free(tg_tensor *t)
{
    if (__builtin_expect(n_free_tensors >= FREE_LIST_MAX, 0)) {
        free(t);
        return;
    }
    n_free_tensors++;
    t->next_free = free_tensors;
    free_tensors = t;
    arm();
}
