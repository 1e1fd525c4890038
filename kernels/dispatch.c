/* Chooses the kernel family once at start-up (CPUID, then TAPEGRAD_ISA) and lets callers force
 * another with tg_set_isa. Families that were not compiled in report themselves unavailable. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../src/core/error.h"
#include "kernels.h"

#ifndef TG_HAVE_AVX2
int tg_kernels_init_avx2(tg_kernels *k)
{
    (void)k;
    return 0;
}
#endif
#ifndef TG_HAVE_AVX512
int tg_kernels_init_avx512(tg_kernels *k)
{
    (void)k;
    return 0;
}
#endif
#ifndef TG_HAVE_NEON
int tg_kernels_init_neon(tg_kernels *k)
{
    (void)k;
    return 0;
}
#endif

static tg_kernels active;
static int initialized;

/* Does this CPU (and OS) support the family? */
static int cpu_has(const char *name)
{
    if (strcmp(name, "scalar") == 0)
        return 1;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (strcmp(name, "avx2") == 0)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (strcmp(name, "avx512") == 0)
        /* every extension avx512.c is compiled with: the compiler may use any of them */
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    if (strcmp(name, "neon") == 0)
        return 1;
#endif
    return 0;
}

/* Fills t with the named family; 0 if the name is unknown, not compiled, or not supported. */
static int load_family(const char *name, tg_kernels *t)
{
    if (!cpu_has(name))
        return 0;
    if (strcmp(name, "scalar") == 0) {
        tg_kernels_init_scalar(t);
        return 1;
    }
    if (strcmp(name, "avx2") == 0)
        return tg_kernels_init_avx2(t);
    if (strcmp(name, "avx512") == 0)
        return tg_kernels_init_avx512(t);
    if (strcmp(name, "neon") == 0)
        return tg_kernels_init_neon(t);
    return 0;
}

static void load_best(tg_kernels *t)
{
    static const char *const order[] = {"avx512", "avx2", "neon"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (load_family(order[i], t))
            return;
    tg_kernels_init_scalar(t);
}

static void init_once(void)
{
    if (initialized)
        return;
    load_best(&active);
    const char *env = getenv("TAPEGRAD_ISA");
    if (env && *env) {
        tg_kernels forced;
        if (load_family(env, &forced))
            active = forced;
        else
            fprintf(stderr,
                    "tapegrad: warning: TAPEGRAD_ISA=%s is unknown or not supported by this "
                    "CPU/build; using %s\n",
                    env, active.name);
    }
    initialized = 1;
}

/* Run before main so the choice (and any warning) happens once, before threads exist. */
__attribute__((constructor)) static void tg_kernels_startup(void) { init_once(); }

const tg_kernels *tg_kern(void)
{
    if (!initialized)
        init_once();
    return &active;
}

const char *tg_isa(void) { return tg_kern()->name; }

tg_status tg_set_isa(const char *name)
{
    if (!name)
        return tg_set_error(TG_EINVAL, "tg_set_isa: name is NULL");
    tg_kernels t;
    if (!load_family(name, &t))
        return tg_set_error(TG_EUNSUPPORTED,
                            "tg_set_isa: kernel family '%s' is unknown or not supported on this "
                            "CPU/build (known: scalar, avx2, avx512, neon)",
                            name);
    init_once();
    active = t;
    tg_clear_error();
    return TG_OK;
}
