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
