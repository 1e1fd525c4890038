/* Seeded random tensors. The generator is counter based (element i depends only on the seed and
 * i) and uses integer arithmetic plus correctly rounded double functions, so a seed gives the
 * same values on every ISA and with any number of threads. */
#include <math.h>

#include "tensor.h"

/* SplitMix64 finalizer: a well-mixed 64-bit value from any 64-bit input. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t draw(uint64_t seed, uint64_t i)
{
    return mix64(mix64(seed) + (i + 1) * 0x9e3779b97f4a7c15ULL);
}

/* Uniform in [0, 1) with 24 random bits: every float32 value it makes is exact. */
static float uniform24(uint64_t bits) { return (float)(bits >> 40) * 0x1p-24f; }

/* Uniform in (0, 1] with 53 bits, for the logarithm in Box-Muller. */
static double uniform53_open0(uint64_t bits) { return ((double)(bits >> 11) + 1.0) * 0x1p-53; }

tg_tensor *tg_rand(int ndim, const int64_t *shape, uint64_t seed)
{
    TG_API_BEGIN;
    tg_tensor *t = tg_new(ndim, shape, "tg_rand");
    if (t) {
        float *p = tg_ptr(t);
        for (int64_t i = 0; i < t->numel; i++)
            p[i] = uniform24(draw(seed, (uint64_t)i));
    }
    TG_API_RETURN(t);
}

tg_tensor *tg_randn(int ndim, const int64_t *shape, uint64_t seed)
{
    TG_API_BEGIN;
    tg_tensor *t = tg_new(ndim, shape, "tg_randn");
    if (t) {
        float *p = tg_ptr(t);
        const double two_pi = 6.283185307179586;
        /* Box-Muller: each pair of draws gives two normals. */
        for (int64_t i = 0; i < t->numel; i += 2) {
            uint64_t pair = (uint64_t)i / 2;
            double r = sqrt(-2.0 * log(uniform53_open0(draw(seed, 2 * pair))));
            double th = two_pi * ((double)(draw(seed, 2 * pair + 1) >> 11) * 0x1p-53);
            p[i] = (float)(r * cos(th));
            if (i + 1 < t->numel)
                p[i + 1] = (float)(r * sin(th));
        }
    }
    TG_API_RETURN(t);
}
