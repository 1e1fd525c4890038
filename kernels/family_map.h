/* The loops of the elementwise kernels of the SIMD families: one shape for every kernel, the
 * body in whole vectors, the tail through the same formula on masked lanes. Included by each
 * family's source after it defines its vector type vf, its width W, ld / st (load and store of
 * r lanes), and for large outputs ldu (a whole vector, unaligned), stream_st (a store that
 * bypasses the caches, to an address aligned to the vector's size), stream_fence,
 * FAMILY_STREAMS (0 where the family has no such stores: the streaming branches then fold
 * away) and FAMILY_PREFETCH (1 where the large loops ask for their inputs ahead). Written once,
 * compiled once per family with its own flags. */
#ifndef TG_KERNELS_FAMILY_MAP_H
#define TG_KERNELS_FAMILY_MAP_H

/* ---- streaming stores ------------------------------------------------------------------- */

#define STREAM_MIN   TG_STREAM_MIN /* kernels.h says why */
#define STREAM_BYTES ((uintptr_t)W * sizeof(float))

/* Elements to handle before y reaches a vector boundary, or -1 if streaming does not apply. */
ALWAYS_INLINE int64_t stream_head(const float *y, int64_t n)
{
    uintptr_t a = (uintptr_t)y;
    if (!FAMILY_STREAMS || n < STREAM_MIN || (a & 3u) != 0)
        return -1;
    return (int64_t)(((STREAM_BYTES - (a & (STREAM_BYTES - 1))) & (STREAM_BYTES - 1)) / 4u);
}

/* ---- software prefetch ------------------------------------------------------------------
 * map1s's loops over large arrays (from STREAM_MIN elements) ask for the input PREFETCH_AHEAD
 * bytes ahead of the vector being read. The hardware prefetcher alone leaves a core that
 * computes between its loads (exp, sigmoid, sin) waiting on memory: on the Intel Xeon VM
 * (family 6 model 207) one thread took 7.96-9.35 ms for the AVX-512 sigmoid of 16M floats and
 * 4.99-5.21 ms with the lines asked 4 KB ahead (exp 8.1-8.6 -> 4.3, sin 11.0-11.6 -> 7.5; AVX2
 * exp 10.9-11.6 -> 7.9-8.1; bench_kernels, alternating rounds). Two-input loops that only move
 * data (add_vv, mul_vv) gained nothing (within the noise, or a little slower), so they have
 * none; map_bwd (family_elementwise.h) has its own. In-cache sizes never take these loops. A
 * prefetch past the end of an array never faults. FAMILY_PREFETCH is 0 in a family where no
 * machine here could measure it (NEON, which runs only under emulation). */
#define PREFETCH_AHEAD 4096

ALWAYS_INLINE void ahead(const float *p)
{
    if (FAMILY_PREFETCH)
        __builtin_prefetch((const char *)p + PREFETCH_AHEAD, 0, 3);
}

/* ---- map helpers: one loop shape for every elementwise kernel ------------------------------ */

typedef vf (*vop1)(vf);
typedef vf (*vop2)(vf, vf);

/* y = op(x). Always inlined so `op` (a constant at every call) is inlined into the loop.
 * stream = 0 keeps a large output's stores in the caches (AVX2's sin and cos: their arithmetic
 * is the limit there, and streaming measured the same). */
ALWAYS_INLINE void map1s(const float *x, float *y, int64_t n, vop1 op, int stream)
{
    int64_t i = 0;
    int64_t head = stream && x != y ? stream_head(y, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(y, op(ld(x, head)), head);
        for (i = head; i + W <= n; i += W) {
            ahead(x + i);
            stream_st(y + i, op(ldu(x + i)));
        }
        stream_fence(); /* order the weakly ordered stores before anything that follows */
    } else if (n >= STREAM_MIN) { /* large, stored through the caches (stream = 0, or in place) */
        for (; i + W <= n; i += W) {
            ahead(x + i);
            st(y + i, op(ldu(x + i)), W);
        }
    }
    for (; i < n; i += W) {
        int64_t r = n - i;
        st(y + i, op(ld(x + i, r)), r);
    }
}

ALWAYS_INLINE void map1(const float *x, float *y, int64_t n, vop1 op)
{
    map1s(x, y, n, op, 1);
}

/* y = op(a, b) elementwise. */
ALWAYS_INLINE void map2(const float *a, const float *b, float *y, int64_t n, vop2 op)
{
    int64_t i = 0;
    int64_t head = (a != y && b != y) ? stream_head(y, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(y, op(ld(a, head), ld(b, head)), head);
        for (i = head; i + W <= n; i += W)
            stream_st(y + i, op(ldu(a + i), ldu(b + i)));
        stream_fence();
    }
    for (; i < n; i += W) {
        int64_t r = n - i;
        st(y + i, op(ld(a + i, r), ld(b + i, r)), r);
    }
}

/* y = op(a, broadcast b): the scalar side is a vector of one value. */
ALWAYS_INLINE void map2_vs(const float *a, vf b, float *y, int64_t n, vop2 op)
{
    int64_t i = 0;
    int64_t head = a != y ? stream_head(y, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(y, op(ld(a, head), b), head);
        for (i = head; i + W <= n; i += W)
            stream_st(y + i, op(ldu(a + i), b));
        stream_fence();
    }
    for (; i < n; i += W) {
        int64_t r = n - i;
        st(y + i, op(ld(a + i, r), b), r);
    }
}

ALWAYS_INLINE void map2_sv(vf a, const float *b, float *y, int64_t n, vop2 op)
{
    int64_t i = 0;
    int64_t head = b != y ? stream_head(y, n) : -1;
    if (head >= 0) {
        if (head > 0)
            st(y, op(a, ld(b, head)), head);
        for (i = head; i + W <= n; i += W)
            stream_st(y + i, op(a, ldu(b + i)));
        stream_fence();
    }
    for (; i < n; i += W) {
        int64_t r = n - i;
        st(y + i, op(a, ld(b + i, r)), r);
    }
}

#endif
