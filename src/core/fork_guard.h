/* Library locks across fork().
 *
 * A fork copies a lock as it stands. Had another thread held it at that moment, the child's
 * first use of it would wait for ever on a thread that does not exist there, and what it guards
 * could be caught half-updated. A guarded lock is taken before every fork and released after
 * it, in parent and child, so that both see it free and what it guards whole. */
#ifndef TG_CORE_FORK_GUARD_H
#define TG_CORE_FORK_GUARD_H

#include <pthread.h>

/* Guards mu across forks. Call from a constructor (before other threads exist); up to 8 locks,
 * taken in the order they were guarded and released in reverse. */
void tg_fork_guard(pthread_mutex_t *mu);

#endif
