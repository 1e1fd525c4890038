/* The tape: recording nodes as ops run, and releasing them without recursion, so a graph of a
 * million nodes is freed with a loop instead of a million nested calls. */
#include <stdlib.h>
#include <string.h>

#include "../core/thread_exit.h"
#include "../core/tls.h"
#include "grad_mode.h"
#include "node.h"

static TG_TLS tg_node *free_nodes;
static TG_TLS int n_free_nodes;
/* Nodes the list keeps; more go back to malloc, so a thread that frees graphs built by other
 * threads does not grow its list for ever (as alloc.c's lists). */
#define FREE_NODES_MAX 16384
static TG_TLS tg_node *pending_release;
static TG_TLS bool draining;
static TG_TLS bool armed; /* release_free_nodes runs when this thread exits */

/* Runs at thread exit (thread_exit.h). A node on the free list was already emptied by node_free:
 * it owns nothing and nothing owns it. pending_release is empty outside tg_node_release. */
static void release_free_nodes(void)
{
    while (free_nodes) {
        tg_node *n = free_nodes;
        free_nodes = n->next_free;
        free(n);
    }
    n_free_nodes = 0;
    armed = false;
}

static tg_node *node_alloc(void)
{
    tg_node *n = free_nodes;
    if (n) {
        free_nodes = n->next_free;
        n_free_nodes--;
    } else if (!(n = malloc(sizeof *n))) {
        return NULL;
    }
    tg_ref_init(&n->refcount, 1);
    n->n_inputs = 0;
    n->n_saved = 0;
    n->freed = false;
    n->mark = 0;
    n->deps = 0;
    n->gacc = NULL;
    n->retain_target = NULL;
    n->next_free = NULL;
    return n;
}

void tg_node_drop_saved(tg_node *n)
{
    for (int i = 0; i < n->n_saved; i++) {
        tg_release(n->saved[i]);
        n->saved[i] = NULL;
    }
}

static void node_free(tg_node *n)
{
    for (int i = 0; i < n->n_inputs; i++) {
        if (n->next[i].node)
            tg_node_release(n->next[i].node);
        tg_release(n->next[i].leaf);
    }
    tg_node_drop_saved(n);
    tg_release(n->gacc);
    if (n_free_nodes >= FREE_NODES_MAX) {
        free(n);
        return;
    }
    n_free_nodes++;
    n->next_free = free_nodes;
    free_nodes = n;
    /* on the push, not the malloc: nodes of other threads end up here too */
    tg_thread_exit_arm_once(&armed, release_free_nodes);
}

/* Frees n, whose last reference was just dropped, and every node that frees in turn. Kept out of
 * tg_node_release so that its common case, a count that does not reach zero, opens no frame. */
__attribute__((noinline)) static void node_drain(tg_node *n)
{
    n->next_free = pending_release;
    pending_release = n;
    if (draining)
        return; /* the outer call's loop will free it */
    draining = true;
    while (pending_release) {
        tg_node *m = pending_release;
        pending_release = m->next_free;
        node_free(m);
    }
    draining = false;
}

void tg_node_release(tg_node *n)
{
    if (n && tg_ref_dec(&n->refcount))
        node_drain(n);
}

bool tg_needs_graph(int n, tg_tensor *const *inputs)
{
    if (!tg_grad_enabled())
        return false;
    for (int i = 0; i < n; i++)
        if (inputs[i] && inputs[i]->requires_grad)
            return true;
    return false;
}

tg_node *tg_record(const tg_node_ops *ops, tg_tensor *out, int n_inputs, tg_tensor *const *inputs)
{
    if (!tg_needs_graph(n_inputs, inputs))
        return NULL;
    tg_node *n = node_alloc();
    if (!n) {
        tg_set_error(TG_ENOMEM, "%s: out of memory recording the graph", ops->name);
        return NULL;
    }
    n->ops = ops;
    n->n_inputs = (int8_t)n_inputs;
    for (int i = 0; i < n_inputs; i++) {
        tg_tensor *in = inputs[i];
        n->next[i] = (tg_edge){NULL, NULL};
        n->in_ndim[i] = in->ndim;
        memcpy(n->in_shape[i], in->shape, sizeof in->shape);
        if (!in->requires_grad)
            continue;
        if (in->grad_fn) {
            tg_ref_inc(&in->grad_fn->refcount);
            n->next[i].node = in->grad_fn;
        } else {
            tg_ref_inc(&in->refcount);
            n->next[i].leaf = in;
        }
    }
    out->grad_fn = n;
    out->requires_grad = true;
    return n;
}

tg_tensor *tg_recorded(tg_tensor *out, const tg_node *node, int n_inputs, tg_tensor *const *inputs)
{
    if (out && !node && tg_needs_graph(n_inputs, inputs)) {
        tg_release(out);
        return NULL;
    }
    return out;
}

bool tg_save(tg_node *n, tg_tensor *t)
{
    if (t)
        tg_ref_inc(&t->refcount);
    n->saved[n->n_saved] = t;
    n->saved_version[n->n_saved] = t ? t->storage->version : 0;
    n->n_saved++;
    return true;
}

bool tg_save_output(tg_node *n, tg_tensor *out)
{
    /* An alias header without grad_fn: the node must not own the tensor that owns the node. */
    tg_tensor *alias = tg_view_of(out, out->ndim, out->shape, out->strides, out->offset);
    if (!alias)
        return false;
    n->saved[n->n_saved] = alias;
    n->saved_version[n->n_saved] = out->storage->version;
    n->n_saved++;
    return true;
}

/* ---- autograd-facing tensor API ---- */

tg_tensor *tg_requires_grad_(tg_tensor *t, bool on)
{
    tg_clear_error();
    if (!t) {
        tg_null_input(TG_EINVAL, "tg_requires_grad_: a tensor argument is NULL");
        return NULL;
    }
    if (t->grad_fn) {
        if (on)
            return t; /* already requires grad through its graph */
        tg_set_error(TG_EGRAPH,
                     "tg_requires_grad_: you can only change requires_grad flags of leaf "
                     "tensors (this one has grad_fn %s); use tg_detach",
                     t->grad_fn->ops->name);
        return NULL;
    }
    t->requires_grad = on;
    return t;
}

bool tg_requires_grad(const tg_tensor *t) { return t && t->requires_grad; }

bool tg_is_leaf(const tg_tensor *t) { return t && !t->grad_fn; }

tg_tensor *tg_grad(const tg_tensor *t) { return t ? t->grad : NULL; }

void tg_grad_reset(tg_tensor *t)
{
    if (!t)
        return;
    tg_release(t->grad);
    t->grad = NULL;
}

const char *tg_grad_fn_name(const tg_tensor *t)
{
    return t && t->grad_fn ? t->grad_fn->ops->name : NULL;
}

tg_tensor *tg_detach(tg_tensor *t)
{
    TG_API_BEGIN;
    if (!t) {
        tg_null_input(TG_EINVAL, "tg_detach: a tensor argument is NULL");
        TG_API_RETURN(NULL);
    }
    TG_API_RETURN(tg_view_of(t, t->ndim, t->shape, t->strides, t->offset));
}

void tg_retain_grad(tg_tensor *t)
{
    tg_clear_error();
    if (!t) {
        (void)tg_null_input(TG_EINVAL, "tg_retain_grad: tensor is NULL");
        return;
    }
    if (!t->requires_grad) {
        tg_set_error(TG_EGRAPH, "tg_retain_grad: can't retain_grad on a tensor that has "
                                "requires_grad=False");
        return;
    }
    if (!t->grad_fn)
        return; /* leaves keep their grad anyway */
    t->retains_grad = true;
    t->grad_fn->retain_target = t;
}
