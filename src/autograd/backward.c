/* Reverse-mode backward: counts each node's consumers with an explicit-stack DFS, then runs the
 * nodes in topological order (a node runs once all its consumers have sent their gradient).
 * No recursion anywhere, so a million-node chain needs no deep C stack. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../kernels/kernels.h"
#include "../core/parallel.h" /* tg_cpu_relax */
#include "../core/thread_exit.h"
#include "../core/tls.h"
#include "../ops/ops.h" /* tg_uniform_view_, tg_uniform_grad_, tg_run_vv */
#include "node.h"

typedef struct {
    tg_node **items;
    size_t len, cap;
} node_stack;

/* Reused across calls so a steady-state backward does no malloc. */
static TG_TLS node_stack work, visited;
/* The traversal's mark. Epochs are drawn from one process-wide counter: a node keeps the mark of
 * the last backward that reached it, and a per-thread count would let another thread's backward
 * through the same graph (built or first run on one thread, run again on another) start at a
 * number the nodes already carry, skip them as visited and lose their gradients. */
static _Atomic uint64_t epoch_counter;
static TG_TLS uint64_t epoch;
static TG_TLS bool armed; /* release_stacks runs when this thread exits */

/* Runs at thread exit (thread_exit.h). The stacks only hold borrowed pointers to nodes, which
 * belong to their graphs: only the arrays are freed. */
static void release_stacks(void)
{
    free(work.items);
    free(visited.items);
    work = visited = (node_stack){0};
    armed = false;
}

/* Doubles the stack's capacity; false on OOM. */
static bool grow(node_stack *s)
{
    tg_thread_exit_arm_once(&armed, release_stacks);
    size_t ncap = s->cap ? s->cap * 2 : 256;
    tg_node **p = realloc(s->items, ncap * sizeof *p);
    if (!p)
        return false;
    s->items = p;
    s->cap = ncap;
    return true;
}

static inline bool push(node_stack *s, tg_node *n)
{
    if (s->len == s->cap && !grow(s))
        return false;
    s->items[s->len++] = n;
    return true;
}

static tg_status check_saved(const tg_node *n)
{
    if (n->freed && (n->n_saved > 0 || n->ops->saves_scalar))
        return tg_set_error(
            TG_EGRAPH,
            "tg_backward: trying to backward through the graph a second time (%s's saved tensors "
            "were freed by the first backward); pass retain_graph=true to the first call",
            n->ops->name);
    for (int i = 0; i < n->n_saved; i++) {
        const tg_tensor *s = n->saved[i];
        if (s && s->storage->version != n->saved_version[i]) {
            char buf[160];
            return tg_set_error(
                TG_EGRAPH,
                "tg_backward: a tensor of shape %s needed by %s was modified by an in-place "
                "operation (%s): it is at version %u, expected version %u",
                tg_shape_str(buf, sizeof buf, s->ndim, s->shape), n->ops->name,
                s->storage->last_writer ? s->storage->last_writer : "unknown",
                (unsigned)s->storage->version, (unsigned)n->saved_version[i]);
        }
    }
    return TG_OK;
}

/* Marks every node reachable from root and counts, for each, the edges that point at it. Each
 * node's saved tensors are checked on the way (freed by an earlier backward, or changed in
 * place since), so a graph that cannot be run fails before any .grad has been added to: a
 * backward that failed half-way would leave some leaves' grads summed and others not. */
static tg_status count_dependencies(tg_node *root)
{
    epoch = atomic_fetch_add_explicit(&epoch_counter, 1, memory_order_relaxed) + 1;
    work.len = 0;
    visited.len = 0;
    root->mark = epoch;
    root->deps = 0;
    if (!push(&work, root) || !push(&visited, root))
        return tg_set_error(TG_ENOMEM, "tg_backward: out of memory");
    while (work.len) {
        tg_node *n = work.items[--work.len];
        tg_status st = check_saved(n);
        if (st != TG_OK)
            return st;
        for (int i = 0; i < n->n_inputs; i++) {
            tg_node *c = n->next[i].node;
            if (!c)
                continue;
            if (c->mark != epoch) {
                c->mark = epoch;
                c->deps = 0;
                c->gacc = NULL;
                if (!push(&work, c) || !push(&visited, c))
                    return tg_set_error(TG_ENOMEM, "tg_backward: out of memory");
            }
            c->deps++;
        }
    }
    return TG_OK;
}

/* Can we add into t in place without anyone else seeing the change? */
static bool exclusively_owned(const tg_tensor *t)
{
    return tg_ref_sole(&t->refcount) && tg_ref_sole(&t->storage->refcount) && t->contiguous &&
           !t->grad_fn;
}

/* *acc += g, consuming the reference g. *acc may be NULL (then it takes g). */
static tg_status accumulate(tg_tensor **acc, tg_tensor *g)
{
    if (!*acc) {
        *acc = g;
        return TG_OK;
    }
    if (tg_uniform_view_(*acc) && tg_uniform_view_(g) && tg_same_shape(*acc, g)) {
        /* two gradients of sums: their total is one value too, and stays one */
        tg_tensor *sum =
            tg_uniform_grad_(tg_ptr(*acc)[0] + tg_ptr(g)[0], g->ndim, g->shape, "tg_backward");
        tg_release(g);
        if (!sum)
            return tg_last_status();
        tg_release(*acc);
        *acc = sum;
        return TG_OK;
    }
    if (exclusively_owned(*acc) && tg_same_shape(*acc, g) && g->contiguous) {
        tg_run_vv(tg_kern()->add_vv, tg_ptr(*acc), tg_ptr(g), tg_ptr(*acc), g->numel);
        tg_drop_sum((*acc)->storage);
        tg_release(g);
        return TG_OK;
    }
    tg_tensor *sum = tg_add(*acc, g);
    tg_release(g);
    if (!sum)
        return tg_last_status();
    tg_release(*acc);
    *acc = sum;
    return TG_OK;
}

/* ---- the .grad lock ----
 * Threads that share a leaf that requires grad may run backward at once (README), and each adds
 * into its .grad; the lock makes those updates one after another. A mutex in every header would
 * grow every tensor for the few that are shared, so the tensor's address picks one of a set.
 * A thread holds one of them at a time, across the whole update (which may allocate and use the
 * pool), so they cannot deadlock among themselves.
 * Every backward takes one per leaf, nearly always uncontended, so each is a flag rather than a
 * pthread mutex: taking it is one atomic exchange and dropping it a plain release store, where a
 * mutex costs a second atomic on unlock plus two calls (about 4% of the seed graph). A waiter
 * spins briefly, then yields its core: the holder may be in a long, pooled addition. */
#define GRAD_LOCK_BITS 6
#define GRAD_LOCKS     (1 << GRAD_LOCK_BITS)
#define GRAD_LOCK_SPINS 64

static struct {
    _Alignas(64) atomic_bool held; /* a cache line each: neighbours do not contend */
} grad_locks[GRAD_LOCKS];
static pthread_once_t grad_locks_once = PTHREAD_ONCE_INIT;

static void grad_lock(atomic_bool *l)
{
    for (;;) {
        if (!atomic_exchange_explicit(l, true, memory_order_acquire))
            return;
        for (int i = 0; atomic_load_explicit(l, memory_order_relaxed); i++) {
            if (i < GRAD_LOCK_SPINS)
                tg_cpu_relax();
            else
                sched_yield();
        }
    }
}

static void grad_unlock(atomic_bool *l)
{
    atomic_store_explicit(l, false, memory_order_release);
}

/* A fork while another thread updates a .grad must not leave its lock held in the child, whose
 * backward into a leaf of that set would wait for ever: the fork waits for every lock, and both
 * sides release them (as alloc.c's cache lock). An update may take the cache lock and others
 * inside, so these must be taken before them: fork handlers are called newest first, and these
 * are installed on the first backward, after the library's constructors installed theirs. */
static void grad_locks_fork_prepare(void)
{
    for (int i = 0; i < GRAD_LOCKS; i++)
        grad_lock(&grad_locks[i].held);
}
static void grad_locks_fork_release(void)
{
    for (int i = GRAD_LOCKS - 1; i >= 0; i--)
        grad_unlock(&grad_locks[i].held);
}

static void grad_locks_init(void)
{
    pthread_atfork(grad_locks_fork_prepare, grad_locks_fork_release, grad_locks_fork_release);
}

static atomic_bool *grad_lock_of(const tg_tensor *t)
{
    pthread_once(&grad_locks_once, grad_locks_init);
    /* Fibonacci hashing: headers are a few cache lines apart, so the top bits of the product
     * spread them where the low bits of the address would not. */
    uint64_t h = (uint64_t)(uintptr_t)t * 0x9E3779B97F4A7C15u;
    return &grad_locks[h >> (64 - GRAD_LOCK_BITS)].held;
}

/* Adds g into t->grad (a leaf, or a non-leaf that retains its grad). Borrows g. The stored grad
 * is always a tensor of its own, so zeroing it later cannot touch another tensor's values. Once
 * there, it is added to in place, as PyTorch does: a reference the program keeps (tg_retain of
 * tg_grad, or a view of it) sees the sum, instead of the grad being swapped for a new tensor. */
static tg_status update_grad(tg_tensor *t, tg_tensor *g)
{
    if (!tg_same_shape(t, g)) {
        char a[160], b[160];
        return tg_set_error(TG_EGRAPH, "tg_backward: gradient of shape %s for a tensor of shape %s",
                            tg_shape_str(a, sizeof a, g->ndim, g->shape),
                            tg_shape_str(b, sizeof b, t->ndim, t->shape));
    }
    if (t->grad) {
        if (t->grad->contiguous && !t->grad->grad_fn) {
            tg_tensor *gc = tg_as_contiguous(g);
            if (!gc)
                return tg_last_status();
            tg_run_vv(tg_kern()->add_vv, tg_ptr(t->grad), tg_ptr(gc), tg_ptr(t->grad), g->numel);
            tg_bump_version(t->grad, "tg_backward");
            tg_release(gc);
            return TG_OK;
        }
        tg_ref_inc(&g->refcount);
        return accumulate(&t->grad, g);
    }
    if (exclusively_owned(g) || (tg_ref_sole(&g->refcount) && tg_ref_sole(&g->storage->refcount) &&
                                 g->contiguous && g->offset == 0)) {
        tg_ref_inc(&g->refcount);
        t->grad = g;
        return TG_OK;
    }
    t->grad = tg_contiguous_copy(g);
    return t->grad ? TG_OK : tg_last_status();
}

/* update_grad under t's lock: another thread sharing t may be adding its own gradient. */
static tg_status accumulate_grad(tg_tensor *t, tg_tensor *g)
{
    atomic_bool *l = grad_lock_of(t);
    grad_lock(l);
    tg_status st = update_grad(t, g);
    grad_unlock(l);
    return st;
}

/* Runs one node: its backward formula, then hands each input gradient to the next node or leaf. */
static tg_status run_node(tg_node *n, bool retain_graph)
{
    tg_tensor *g = n->gacc;
    n->gacc = NULL;
    tg_status st = TG_OK;
    if (g && !g->contiguous && !(n->ops->accepts_uniform_grad && tg_is_uniform(g))) {
        /* Backward formulas read g as one dense run. */
        tg_tensor *c = tg_contiguous_copy(g);
        tg_release(g);
        g = c;
        if (!g)
            st = tg_last_status();
    }
    tg_tensor *gin[TG_NODE_INPUTS] = {NULL};
    if (g && st == TG_OK) {
        st = check_saved(n);
        if (st == TG_OK && n->retain_target)
            st = accumulate_grad(n->retain_target, g);
        bool needs[TG_NODE_INPUTS];
        for (int i = 0; i < n->n_inputs; i++)
            needs[i] = n->next[i].node || n->next[i].leaf;
        if (st == TG_OK)
            st = n->ops->backward(n, g, needs, gin);
        tg_release(g);
    }
    for (int i = 0; i < n->n_inputs; i++) {
        tg_edge e = n->next[i];
        /* A leaf whose flag was turned off after the graph was built gets nothing (PyTorch's
         * AccumulateGrad checks the flag when it runs, not when it was recorded). */
        if (st == TG_OK && gin[i] && e.leaf && e.leaf->requires_grad)
            st = accumulate_grad(e.leaf, gin[i]);
        if (e.node) {
            if (st == TG_OK && gin[i]) {
                st = accumulate(&e.node->gacc, gin[i]);
                gin[i] = NULL;
            }
            if (--e.node->deps == 0 && st == TG_OK && !push(&work, e.node))
                st = tg_set_error(TG_ENOMEM, "tg_backward: out of memory");
        }
        tg_release(gin[i]);
    }
    if (!retain_graph && st == TG_OK) {
        tg_node_drop_saved(n);
        n->freed = true;
    }
    return st;
}

static tg_tensor *initial_grad(const tg_tensor *root, const tg_tensor *grad_output)
{
    char a[160], b[160];
    if (grad_output) {
        if (!tg_same_shape(root, grad_output)) {
            tg_set_error(TG_ESHAPE, "tg_backward: grad_output shape %s does not match root shape %s",
                         tg_shape_str(a, sizeof a, grad_output->ndim, grad_output->shape),
                         tg_shape_str(b, sizeof b, root->ndim, root->shape));
            return NULL;
        }
        return tg_contiguous_copy(grad_output);
    }
    if (root->numel != 1) {
        tg_set_error(TG_ESHAPE,
                     "tg_backward: grad can be implicitly created only for scalar outputs (root "
                     "has shape %s); pass grad_output",
                     tg_shape_str(a, sizeof a, root->ndim, root->shape));
        return NULL;
    }
    tg_tensor *one = tg_new(root->ndim, root->shape, "tg_backward");
    if (one)
        tg_ptr(one)[0] = 1.0f;
    return one;
}

static tg_status backward_graph(tg_tensor *root, tg_tensor *g0, bool retain_graph)
{
    tg_node *top = root->grad_fn;
    tg_status st = count_dependencies(top);
    if (st != TG_OK) {
        tg_release(g0);
        return st;
    }
    top->gacc = g0;
    work.len = 0;
    push(&work, top); /* cannot fail: work has capacity from the traversal */
    while (st == TG_OK && work.len) {
        tg_node *n = work.items[--work.len];
        st = run_node(n, retain_graph);
    }
    /* After a failure, drop the gradients still waiting at nodes that never ran. */
    for (size_t i = 0; i < visited.len; i++) {
        tg_release(visited.items[i]->gacc);
        visited.items[i]->gacc = NULL;
    }
    return st;
}

tg_status tg_backward(tg_tensor *root, const tg_tensor *grad_output, bool retain_graph)
{
    tg_api_enter(); /* results made inside are internal: never scope-tracked */
    tg_status st;
    if (!root) {
        /* As for an op's NULL argument: a root that a failed call returned (the loss of
         * tg_backward(tg_mean(tg_add(a, b)), ...)) keeps that call's message, the cause. */
        st = tg_null_input(TG_EINVAL, "tg_backward: root is NULL");
    } else if (!root->requires_grad) {
        st = tg_set_error(TG_EGRAPH, "tg_backward: element 0 of tensors does not require grad "
                                     "and does not have a grad_fn (no path to a leaf that "
                                     "requires grad)");
    } else {
        tg_tensor *g0 = initial_grad(root, grad_output);
        if (!g0) {
            st = tg_last_status();
        } else {
            bool prev = tg_set_grad_enabled(false);
            if (root->grad_fn) {
                st = backward_graph(root, g0, retain_graph);
            } else {
                st = accumulate_grad(root, g0);
                tg_release(g0);
            }
            tg_set_grad_enabled(prev);
        }
    }
    tg_api_leave(NULL);
    if (st == TG_OK)
        tg_clear_error();
    return st;
}
