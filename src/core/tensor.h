/* Internal tensor and storage layout, shared by core, autograd and ops (never by kernels). */
#ifndef TG_CORE_TENSOR_H
#define TG_CORE_TENSOR_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "tapegrad.h"
#include "tls.h"

/* Storages of up to this many floats live inside the storage header itself, so a scalar tensor
 * costs two free-list pops and no malloc. 16 floats = one cache line. */
#define TG_SMALL_FLOATS 16

/* Reference counts of tensors, storages and graph nodes are atomic, so that several threads may
 * take and drop references to one tensor at once (README: threads sharing a tensor). */
typedef _Atomic int32_t tg_refcount;

/* Sets the count of an object no other thread can see yet (a plain store, no fence). */
static inline void tg_ref_init(tg_refcount *rc, int32_t v)
{
    atomic_store_explicit(rc, v, memory_order_relaxed);
}

/* Taking a reference needs no ordering: the caller holds one already, so the object is alive
 * whatever other threads do, and the increment publishes nothing. */
static inline void tg_ref_inc(tg_refcount *rc)
{
    atomic_fetch_add_explicit(rc, 1, memory_order_relaxed);
}

/* Drops a reference; true when it was the last, and the caller then frees the object. The
 * decrement is acq_rel: its release half orders this thread's uses of the object before the
 * drop, its acquire half makes the thread that drops the last reference see every other
 * thread's uses before it frees (a release decrement plus an acquire fence on the last drop
 * would do, but ThreadSanitizer does not model fences). A count of 1 read by the holder of that
 * reference cannot change under it, as adding one needs a reference, so a temporary owned by one
 * thread, the common case, is dropped with an acquire load and a store (plain moves on x86)
 * instead of a locked read-modify-write. The count still ends at 0, as before, so a stray
 * second release of a freed object does not free it twice. */
static inline bool tg_ref_dec(tg_refcount *rc)
{
    if (atomic_load_explicit(rc, memory_order_acquire) == 1) {
        atomic_store_explicit(rc, 0, memory_order_relaxed);
        return true;
    }
    return atomic_fetch_sub_explicit(rc, 1, memory_order_acq_rel) == 1;
}

/* Is the caller's reference the only one? Acquire, so that other threads' uses before they
 * dropped theirs come before the caller's writes into the object. */
static inline bool tg_ref_sole(const tg_refcount *rc)
{
    return atomic_load_explicit(rc, memory_order_acquire) == 1;
}

typedef struct tg_storage {
    float *data;         /* points at small[] or at a 64-byte aligned heap block */
    int64_t capacity;    /* elements */
    tg_refcount refcount;
    uint32_t version;    /* bumped by in-place writes; saved tensors compare against it */
    const char *last_writer; /* name of the last in-place op, for error messages */
    /* The sum of the first known_n floats, kept by the unary op that wrote them (a large one
     * computes it while the values pass through L1 anyway), so that a tg_sum or tg_mean right
     * after does not read them all back from memory. 0: none kept. Atomic because tg_data,
     * which drops it, may be called on one storage from several threads at once. */
    _Atomic int64_t known_n;
    float known_sum;
    uint32_t known_version;    /* the version it was computed at */
    const void *known_kernels; /* the kernel table that computed it (a sum's bits depend on it) */
    struct tg_storage *next_free;
    _Alignas(64) float small[TG_SMALL_FLOATS];
} tg_storage;

struct tg_node;

struct tg_tensor {
    tg_storage *storage;
    int64_t offset; /* elements from storage->data to element [0, ..., 0] */
    int64_t numel;
    tg_refcount refcount;
    int8_t ndim;
    bool requires_grad; /* leaves: the user's flag; non-leaves: grad_fn != NULL */
    bool retains_grad;
    bool contiguous;    /* cached: row-major dense */
    int64_t shape[TG_MAX_DIMS];
    int64_t strides[TG_MAX_DIMS];
    struct tg_tensor *grad;
    struct tg_node *grad_fn;
    /* A view made by a view op while grad mode was off, of a tensor that required grad: that
     * tensor (retained), or its own no_grad_base. PyTorch refuses to change such a view in place
     * with grad mode on while that base requires grad. NULL for every other tensor. */
    struct tg_tensor *no_grad_base;
    struct tg_tensor *next_free;
};

/* ---- allocation (alloc.c) ---- */
tg_storage *tg_storage_new(int64_t n);            /* uninitialized, refcount 1 */
void tg_storage_release(tg_storage *s);
/* Work space of at least n floats from the large-buffer cache, 64-byte aligned (the matrix
 * tiles' packed panels); *capacity is what to hand back to tg_scratch_free. NULL on OOM. Not
 * storages: more callers of tg_storage_new/_release made link-time optimization stop inlining
 * them into the small ops, which slowed the seed graph by 5-9% (same instructions). */
float *tg_scratch_alloc(int64_t n, int64_t *capacity);
void tg_scratch_free(float *p, int64_t capacity);
/* Large buffers allocated so far that the buffer cache could not supply (for tests). */
int64_t tg_alloc_fresh_count(void);
tg_tensor *tg_tensor_header(void);                /* zeroed header, refcount 1, no storage */
void tg_tensor_header_free(tg_tensor *t);

/* ---- construction helpers (tensor.c) ---- */
/* New contiguous tensor with fresh, uninitialized storage; NULL + error on bad shape or OOM. */
tg_tensor *tg_new(int ndim, const int64_t *shape, const char *fn);
/* New header viewing t's storage with the given geometry (storage retained). */
tg_tensor *tg_view_of(const tg_tensor *t, int ndim, const int64_t *shape, const int64_t *strides,
                      int64_t offset);
void tg_set_contiguous_strides(tg_tensor *t);
bool tg_compute_contiguous(const tg_tensor *t);
/* Pointer to element [0,...,0]. */
static inline float *tg_ptr(const tg_tensor *t) { return t->storage->data + t->offset; }
/* ---- a storage's known sum (see tg_storage.known_n) ----
 * Kept only for a fresh contiguous output; dropped by every write that does not bump the
 * version (tg_data's pointer, backward's accumulation into a buffer it owns), and ignored after
 * one that does. */
static inline void tg_keep_sum(tg_tensor *t, float sum, const void *kernels)
{
    t->storage->known_sum = sum;
    t->storage->known_version = t->storage->version;
    t->storage->known_kernels = kernels;
    atomic_store_explicit(&t->storage->known_n, t->numel, memory_order_relaxed);
}

static inline void tg_drop_sum(tg_storage *s)
{
    if (atomic_load_explicit(&s->known_n, memory_order_relaxed) != 0)
        atomic_store_explicit(&s->known_n, 0, memory_order_relaxed);
}

/* The kept sum of all of t's elements, if t covers exactly the floats it was computed over, in
 * the same order, and nothing has written them since. */
static inline bool tg_known_sum(const tg_tensor *t, const void *kernels, float *sum)
{
    const tg_storage *s = t->storage;
    if (!t->contiguous || t->offset != 0 || t->numel == 0 ||
        atomic_load_explicit(&s->known_n, memory_order_relaxed) != t->numel ||
        s->known_version != s->version || s->known_kernels != kernels)
        return false;
    *sum = s->known_sum;
    return true;
}

/* Bumps the storage version after an in-place write by op `name`. */
void tg_bump_version(tg_tensor *t, const char *name);
/* Validates a shape (ndim range, non-negative sizes) and returns its element count, or -1. */
int64_t tg_check_shape(int ndim, const int64_t *shape, const char *fn);
bool tg_same_shape(const tg_tensor *a, const tg_tensor *b);
/* Copies src into dst element by element; same shape, any strides (no graph). */
void tg_copy_strided(tg_tensor *dst, const tg_tensor *src);
/* Contiguous copy of any tensor (no graph); a new reference. A failure (out of memory) is
 * reported as tg_contiguous's; tg_contiguous_copy_for names the public function fn instead. */
tg_tensor *tg_contiguous_copy(const tg_tensor *t);
tg_tensor *tg_contiguous_copy_for(const tg_tensor *t, const char *fn);
/* t itself (retained) if contiguous, else a contiguous copy (no graph). */
tg_tensor *tg_as_contiguous(tg_tensor *t);
/* Final free of a tensor whose refcount reached 0 (graph release is iterative). */
void tg_tensor_destroy(tg_tensor *t);

/* ---- API boundary (scope.c): scopes track results handed to the user, never internals ---- */
extern TG_TLS int tg_api_depth;
static inline void tg_api_enter(void)
{
    if (tg_api_depth++ == 0)
        tg_clear_error();
}
tg_tensor *tg_api_leave(tg_tensor *t);
/* A NULL input a function cannot do without: the failure of the caller's previous call when
 * that produced it (so f(g(x)) reports g's cause), else status s with the message, marked as
 * the caller's own NULL (never restored as a cause). Returns the status set. Every public
 * function that receives a NULL tensor reports it through this (the ops via tg_null_arg). */
tg_status tg_null_input(tg_status s, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
#define TG_API_BEGIN tg_api_enter()
#define TG_API_RETURN(expr)                                                                 \
    do {                                                                                    \
        tg_tensor *tg_api_result_ = (expr);                                                 \
        return tg_api_leave(tg_api_result_);                                                \
    } while (0)

/* ---- strided iteration (iter.c) ---- */
/* Calls fn once per innermost run of an N-d walk over `shape` with nops operands, after
 * collapsing dimensions that are contiguous for every operand. p[k] points at operand k's first
 * element of the run and s[k] is its stride (in elements) inside the run. */
typedef void (*tg_run_fn)(void *ctx, float *const *p, const int64_t *s, int64_t n);
void tg_iter(int nops, int ndim, const int64_t *shape, float *const *base,
             const int64_t *const *strides, tg_run_fn fn, void *ctx);
/* The same walk, the same runs in the same order, handed over as blocks of `rows` consecutive
 * runs along the next dim out: run j of the block starts at p[k] + j * rs[k]. For ops whose
 * runs are short, where a call per run costs more than the run itself. */
typedef void (*tg_rows_fn)(void *ctx, float *const *p, const int64_t *s, int64_t n,
                           const int64_t *rs, int64_t rows);
void tg_iter_rows(int nops, int ndim, const int64_t *shape, float *const *base,
                  const int64_t *const *strides, tg_rows_fn fn, void *ctx);

#endif
