/* Chooses the kernel family once at start-up (CPUID, then TAPEGRAD_ISA) and lets callers force
 * another with tg_set_isa. Families that were not compiled in report themselves unavailable. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

/* Every family is loaded once into its own table, which then never changes; the family in force
 * is a pointer to one of them. tg_set_isa may run while other threads compute: it swaps the
 * pointer, so each tg_kern() call sees one whole table, old or new, never a mix of two
 * half-copied ones. The acquire load is a plain load on x86-64 (and ldar on aarch64): the same
 * price as the flag check it replaces, once per kernel call, never per element. */
static const char *const family_names[] = {"scalar", "avx2", "avx512", "neon"};
enum { N_FAMILIES = sizeof family_names / sizeof family_names[0] };
static tg_kernels tables[N_FAMILIES];
static bool loaded[N_FAMILIES];
static _Atomic(const tg_kernels *) active; /* NULL until init_tables has run */
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static int family_index(const char *name)
{
    for (int i = 0; i < N_FAMILIES; i++)
        if (strcmp(name, family_names[i]) == 0)
            return i;
    return -1;
}

static void init_tables(void)
{
    for (int i = 0; i < N_FAMILIES; i++)
        loaded[i] = load_family(family_names[i], &tables[i]);
    const tg_kernels *best = &tables[0]; /* scalar: always there */
    static const char *const order[] = {"avx512", "avx2", "neon"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        int f = family_index(order[i]);
        if (loaded[f]) {
            best = &tables[f];
            break;
        }
    }
    const char *env = getenv("TAPEGRAD_ISA");
    if (env && *env) {
        int f = family_index(env);
        if (f >= 0 && loaded[f])
            best = &tables[f];
        else
            fprintf(stderr,
                    "tapegrad: warning: TAPEGRAD_ISA=%s is unknown or not supported by this "
                    "CPU/build; using %s\n",
                    env, best->name);
    }
    atomic_store_explicit(&active, best, memory_order_release);
}

/* Run before main so the choice (and any warning) happens once, before threads exist. */
__attribute__((constructor)) static void tg_kernels_startup(void)
{
    pthread_once(&tables_once, init_tables);
}

const tg_kernels *tg_kern(void)
{
    const tg_kernels *k = atomic_load_explicit(&active, memory_order_acquire);
    if (__builtin_expect(k == NULL, 0)) { /* called from another constructor before ours */
        pthread_once(&tables_once, init_tables);
        k = atomic_load_explicit(&active, memory_order_acquire);
    }
    return k;
}

const char *tg_isa(void) { return tg_kern()->name; }

tg_status tg_set_isa(const char *name)
{
    if (!name)
        return tg_set_error(TG_EINVAL, "tg_set_isa: name is NULL");
    pthread_once(&tables_once, init_tables);
    int f = family_index(name);
    if (f < 0 || !loaded[f])
        return tg_set_error(TG_EUNSUPPORTED,
                            "tg_set_isa: kernel family '%s' is unknown or not supported on this "
                            "CPU/build (known: scalar, avx2, avx512, neon)",
                            name);
    atomic_store_explicit(&active, &tables[f], memory_order_release);
    tg_clear_error();
    return TG_OK;
}
