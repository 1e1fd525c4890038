/* The pairwise combination of leaf sums shared by sum and dot in the SIMD families. Included by
 * each family's source after it defines its vector type vf, add, zero and hsum. Written once,
 * compiled once per family with its own flags. */
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

#endif /* TG_KERNELS_FAMILY_PAIRWISE_H */
