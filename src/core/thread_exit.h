/* Freeing a thread's caches when the thread exits.
 *
 * Modules keep per-thread free lists and scratch arrays in _Thread_local variables. Without a
 * hook they are lost when a thread exits: the thread's TLS goes away and nothing else points
 * at them, so every thread that used the library leaked them (about 7 KB each).
 *
 * A module with such a cache keeps its own `static _Thread_local bool armed` and, whenever it
 * puts something into the cache, calls tg_thread_exit_arm_once(&armed, release) with a
 * function that frees the calling thread's cache and clears armed. That function runs on the
 * thread as it exits (a pthread key destructor: the thread's _Thread_local variables are
 * still valid). It must only free memory that nothing else points to, and must not call back
 * into the library. A cache refilled after its function ran (by another key's destructor)
 * arms again, and the thread runs the functions once more.
 *
 * The main thread's caches are left alone at process exit: they stay reachable from its TLS.
 * The flag lives in the module's own TU because a static TLS variable shares the TLS base the
 * module already computed for its cache: the check costs one load and a predictable branch. */
#ifndef TG_CORE_THREAD_EXIT_H
#define TG_CORE_THREAD_EXIT_H

#include <stdbool.h>

typedef void (*tg_thread_exit_fn)(void);

/* Makes `release` run when the calling thread exits. Cheap enough for once per thread and
 * module, not for a hot path. If no hook can be set up the cache leaks as it did before. */
void tg_thread_exit_arm(tg_thread_exit_fn release);

/* The per-module check: arms `release` once, through the module's own thread-local flag. */
static inline void tg_thread_exit_arm_once(bool *armed, tg_thread_exit_fn release)
{
    if (__builtin_expect(!*armed, 0)) {
        *armed = true;
        tg_thread_exit_arm(release);
    }
}

#endif
