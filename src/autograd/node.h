/* Graph nodes: one per differentiable op application (PyTorch's grad_fn). */
#ifndef TG_AUTOGRAD_NODE_H
#define TG_AUTOGRAD_NODE_H

#include "../core/tensor.h"

#define TG_NODE_INPUTS 3
#define TG_NODE_SAVED  4

struct tg_node;

/* Computes gradients for the inputs whose needs[i] is true; gin[i] must be a new reference of
 * exactly input i's shape (use tg_reduce_to on broadcast results). Returns TG_OK or a status
 * with tg_set_error called. g is the gradient of the node's output (contiguous). */
typedef tg_status (*tg_backward_fn)(struct tg_node *n, tg_tensor *g, const bool *needs,
                                    tg_tensor **gin);

typedef struct tg_node_ops {
    const char *name; /* PyTorch's grad_fn name, e.g. "SinBackward0" */
    tg_backward_fn backward;
    /* The backward also accepts a g that is one value broadcast over the output (all strides
     * 0), as the gradient of a sum is: then it is not materialized first. */
    bool accepts_uniform_grad;
    /* The node keeps a scalar operand that PyTorch saves as a tensor (x * 2 saves the wrapped 2):
     * like saved tensors, it counts as freed by a backward without retain_graph. */
    bool saves_scalar;
} tg_node_ops;

/* Is t one value broadcast to its shape (every stride 0)? */
static inline bool tg_is_uniform(const tg_tensor *t)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->strides[i] != 0 && t->shape[i] != 1)
            return false;
    return true;
}

/* Where an input's gradient goes: the node that produced it, or the leaf that accumulates it,
 * or nowhere (both NULL) when that input does not require grad. */
typedef struct tg_edge {
    struct tg_node *node;
    tg_tensor *leaf;
} tg_edge;

typedef struct tg_node {
    const tg_node_ops *ops;
    tg_refcount refcount; /* a tensor shared by threads gives its node to each one's graph */
    int8_t n_inputs;
    int8_t n_saved;
    bool freed;      /* saved tensors dropped by a backward without retain_graph */
    tg_edge next[TG_NODE_INPUTS];
    int8_t in_ndim[TG_NODE_INPUTS];
    int64_t in_shape[TG_NODE_INPUTS][TG_MAX_DIMS];
    tg_tensor *saved[TG_NODE_SAVED];
    uint32_t saved_version[TG_NODE_SAVED];
    float fargs[2];  /* op parameters: scalar operands, clamp bounds, ... */
    int64_t iargs[TG_MAX_DIMS + 2];

    /* backward bookkeeping */
    uint64_t mark;   /* traversal epoch */
    int32_t deps;    /* pending consumers in the current traversal */
    tg_tensor *gacc; /* accumulated output gradient in the current traversal */
    tg_tensor *retain_target; /* weak: the output tensor when retain_grad was asked */
    struct tg_node *next_free;
} tg_node;

/* Creates the node for an op whose output is `out` if grad mode is on and an input requires
 * grad: records edges and input shapes, sets out->grad_fn and out->requires_grad, and returns
 * the node (owned by out). Returns NULL when no graph is needed, or on OOM with the error set
 * and out left as it was (pass the result through tg_recorded). */
tg_node *tg_record(const tg_node_ops *ops, tg_tensor *out, int n_inputs, tg_tensor *const *inputs);
/* An op's result after tg_record: out, or NULL (out released) when the graph needed a node for
 * it that could not be allocated. A result without its grad_fn would not fail: it would just
 * require no grad, and backward would silently leave the inputs' gradients out. */
tg_tensor *tg_recorded(tg_tensor *out, const tg_node *node, int n_inputs, tg_tensor *const *inputs);
/* Saves a tensor the backward needs; remembers its version. Returns false on OOM. Saving the
 * op's own output goes through an alias header so the graph never holds itself. t may be NULL:
 * an empty slot, for an operand that only the gradient of an input that does not require grad
 * would read (PyTorch saves nothing for it either, so changing it in place is fine). */
bool tg_save(tg_node *n, tg_tensor *t);
bool tg_save_output(tg_node *n, tg_tensor *out);
/* Does any of the inputs require grad with grad mode on? Lets ops skip graph work early. */
bool tg_needs_graph(int n, tg_tensor *const *inputs);

void tg_node_release(tg_node *n);
/* Drops the saved tensors (after a backward that did not retain the graph). */
void tg_node_drop_saved(tg_node *n);

#endif
