/* Library locks across fork(): see fork_guard.h. One set of pthread_atfork handlers serves every
 * guarded lock, rather than a pair of handlers per lock. */
#include "fork_guard.h"

#define MAX_GUARDS 8

static pthread_mutex_t *guards[MAX_GUARDS];
static int n_guards;

static void lock_all(void)
{
    for (int i = 0; i < n_guards; i++)
        pthread_mutex_lock(guards[i]);
}

static void unlock_all(void)
{
    for (int i = n_guards - 1; i >= 0; i--)
        pthread_mutex_unlock(guards[i]);
}

void tg_fork_guard(pthread_mutex_t *mu)
{
    if (n_guards == 0 && pthread_atfork(lock_all, unlock_all, unlock_all) != 0)
        return; /* no handlers: forks stay as unsafe as without them */
    if (n_guards < MAX_GUARDS)
        guards[n_guards++] = mu;
}
