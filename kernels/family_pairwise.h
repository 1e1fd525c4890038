/* The sum and dot kernels of the SIMD families: leaves of SUM_LEAF floats combined pairwise.
 * Included by each family's source after it defines its vector type vf, its width W, SUM_LEAF,
 * ld (a load of r lanes, zero-padded), add, fmadd, zero, hsum and sum_leaf (the family's own,
 * since AVX-512's prefetches). Written once, compiled once per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_PAIRWISE_H
#define TG_KERNELS_FAMILY_PAIRWISE_H

/* Pairwise sum of leaves without recursion: level l holds the sum of 2^l leaves, and a new leaf
 * carries upward like a binary counter. The shape depends only on the number of leaves, so the
 * result is deterministic and independent of alignment; the error grows with log2 of it. The
 * levels are not initialized: only those whose bit is set in full are read. */
typedef struct {
    vf level[64];
    uint64_t full;
} pairwise;

ALWAYS_INLINE void pairwise_push(pairwise *p, vf s)
{
    int l = 0;
    for (; p->full & ((uint64_t)1 << l); l++) {
        s = add(p->level[l], s);
        p->full &= ~((uint64_t)1 << l);
    }
    p->level[l] = s;
    p->full |= (uint64_t)1 << l;
}

/* Smallest partial sums first, visiting only the set bits: a short sum costs an add or two
 * here, not 64 tests (which took most of a sum_dim over rows of 16). */
ALWAYS_INLINE float pairwise_total(const pairwise *p)
{
    vf t = zero();
    for (uint64_t full = p->full; full; full &= full - 1)
        t = add(t, p->level[__builtin_ctzll(full)]);
    return hsum(t);
}

/* The pairwise sum of leaves of SUM_LEAF floats. */
static float v_sum(const float *x, int64_t n)
{
    pairwise p;
    p.full = 0;
    for (int64_t b = 0; b < n; b += SUM_LEAF)
        pairwise_push(&p, sum_leaf(x + b, n - b < SUM_LEAF ? n - b : SUM_LEAF));
    return pairwise_total(&p);
}

/* Stores one vector of map_sums' output: streamed when stream (y then vector-aligned). */
ALWAYS_INLINE void put(float *y, vf v, bool stream)
{
    if (stream)
        stream_st(y, v);
    else
        st(y, v, W);
}

/* y = op(x) over one whole leaf (SUM_LEAF values), returning sum_leaf(y, SUM_LEAF) without
 * reading y back: every family's sum_leaf adds a whole leaf into four accumulators, vector i
 * of each group of 4 into accumulator i, and returns (a0 + a1) + (a2 + a3); the same adds in
 * the same order here give the same bits (test_ops checks them against a sum read from memory).
 * Loads, arithmetic and stores interleave vector by vector, as in map1s: a leaf made by a call
 * to the kernel and then copied out ran in bursts (all loads waiting, then all stores) and
 * took the AVX-512 sigmoid of 16M floats from 4.8 to 7.2 ms. */
ALWAYS_INLINE vf map_full_leaf(const float *x, float *y, vop1 op, bool stream)
{
    vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    for (int64_t i = 0; i < SUM_LEAF; i += 4 * W) {
        for (int64_t o = 0; o < 4 * W; o += 64 / (int64_t)sizeof(float)) /* each line once */
            ahead(x + i + o);
        vf v0 = op(ldu(x + i)), v1 = op(ldu(x + i + W));
        vf v2 = op(ldu(x + i + 2 * W)), v3 = op(ldu(x + i + 3 * W));
        put(y + i, v0, stream);
        put(y + i + W, v1, stream);
        put(y + i + 2 * W, v2, stream);
        put(y + i + 3 * W, v3, stream);
        a0 = add(a0, v0);
        a1 = add(a1, v1);
        a2 = add(a2, v2);
        a3 = add(a3, v3);
    }
    return add(add(a0, a1), add(a2, a3));
}

/* The last, short leaf: made in a buffer and summed there by sum_leaf itself, which knows how
 * to pad a partial vector. */
ALWAYS_INLINE vf map_short_leaf(const float *x, float *y, int64_t len, vop1 op)
{
    _Alignas(64) float leaf[SUM_LEAF];
    for (int64_t i = 0; i < len; i += W) {
        vf v = op(ld(x + i, len - i));
        st(leaf + i, v, len - i);
        st(y + i, v, len - i);
    }
    return sum_leaf(leaf, len);
}

/* y = op(x), and sums[k] = v_sum of block k of y (blocks of `block` values, the last one
 * shorter): the same leaves, carried by the same pairwise counter. One fence for the whole
 * call, after the last streamed store, not one per block. */
ALWAYS_INLINE void map1_sums(const float *x, float *y, int64_t n, int64_t block, float *sums,
                             vop1 op)
{
    bool stream = FAMILY_STREAMS && x != y && ((uintptr_t)y & (STREAM_BYTES - 1)) == 0;
    for (int64_t start = 0; start < n; start += block) {
        int64_t end = n - start < block ? n : start + block;
        pairwise p;
        p.full = 0;
        int64_t b = start;
        for (; b + SUM_LEAF <= end; b += SUM_LEAF)
            pairwise_push(&p, map_full_leaf(x + b, y + b, op, stream));
        if (b < end)
            pairwise_push(&p, map_short_leaf(x + b, y + b, end - b, op));
        *sums++ = pairwise_total(&p);
    }
    if (stream)
        stream_fence();
}

/* kernels.h. The family's own unary kernels get their op inlined into map1_sums; any other f
 * writes y whole and v_sum reads it back. */
static void v_map_sums(tg_unary_fn f, const float *x, float *y, int64_t n, int64_t block,
                       float *sums)
{
#define MAP_SUMS_CASE(k, o)                                                                        \
    if (f == k) {                                                                                  \
        map1_sums(x, y, n, block, sums, o);                                                        \
        return;                                                                                    \
    }
    MAP_SUMS_CASE(v_sigmoid, f_sigmoid)
    MAP_SUMS_CASE(v_exp, f_exp)
    MAP_SUMS_CASE(v_sin, f_sin)
    MAP_SUMS_CASE(v_cos, f_cos)
    MAP_SUMS_CASE(v_tanh, f_tanh)
    MAP_SUMS_CASE(v_log, f_log)
    MAP_SUMS_CASE(v_sqrt, f_sqrt)
    MAP_SUMS_CASE(v_relu, f_relu)
    MAP_SUMS_CASE(v_abs, f_abs)
    MAP_SUMS_CASE(v_neg, f_neg)
#undef MAP_SUMS_CASE
    f(x, y, n);
    for (int64_t start = 0; start < n; start += block)
        *sums++ = v_sum(y + start, n - start < block ? n - start : block);
}

/* dot: the sum's leaves and pairwise carry, with fused multiply-adds in the leaves (4
 * accumulators, each adding at most SUM_LEAF / 4W products, then a fixed tree). One rounding per
 * product and add instead of two, and the shape depends on n alone (kernels.h). */
static vf dot_leaf(const float *x, const float *y, int64_t n)
{
    vf a0 = zero(), a1 = zero(), a2 = zero(), a3 = zero();
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
        a0 = fmadd(ld(x + i, W), ld(y + i, W), a0);
        a1 = fmadd(ld(x + i + W, W), ld(y + i + W, W), a1);
        a2 = fmadd(ld(x + i + 2 * W, W), ld(y + i + 2 * W, W), a2);
        a3 = fmadd(ld(x + i + 3 * W, W), ld(y + i + 3 * W, W), a3);
    }
    int64_t r = n - i; /* the last < 4W products: zero-padded */
    if (r > 0)
        a0 = fmadd(ld(x + i, r), ld(y + i, r), a0);
    if (r > W)
        a1 = fmadd(ld(x + i + W, r - W), ld(y + i + W, r - W), a1);
    if (r > 2 * W)
        a2 = fmadd(ld(x + i + 2 * W, r - 2 * W), ld(y + i + 2 * W, r - 2 * W), a2);
    if (r > 3 * W)
        a3 = fmadd(ld(x + i + 3 * W, r - 3 * W), ld(y + i + 3 * W, r - 3 * W), a3);
    return add(add(a0, a1), add(a2, a3));
}

static float v_dot(const float *x, const float *y, int64_t n)
{
    pairwise p;
    p.full = 0;
    for (int64_t b = 0; b < n; b += SUM_LEAF)
        pairwise_push(&p, dot_leaf(x + b, y + b, n - b < SUM_LEAF ? n - b : SUM_LEAF));
    return pairwise_total(&p);
}

#endif /* TG_KERNELS_FAMILY_PAIRWISE_H */
