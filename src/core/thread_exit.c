/* One pthread key for the whole library, whose destructor runs every registered release
 * function (contract in thread_exit.h). Each function frees only its own module's cache of the
 * calling thread, so running the ones a thread never armed costs an empty-list check. */
#include "fork_guard.h"
#include "thread_exit.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define MAX_HOOKS 8 /* modules with a thread cache; a ninth is not freed at thread exit */

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t key;
static bool key_ok;

static pthread_mutex_t hooks_mu = PTHREAD_MUTEX_INITIALIZER;
static tg_thread_exit_fn hooks[MAX_HOOKS];
static atomic_int n_hooks; /* hooks[i] for i < n_hooks is set before n_hooks is raised */

/* A fork while another thread registers a hook must not leave hooks_mu locked in the child,
 * whose own first registration would then wait for ever (fork_guard.h). */
__attribute__((constructor)) static void hooks_fork_guard(void)
{
    tg_fork_guard(&hooks_mu);
}

static void run_hooks(void *unused)
{
    (void)unused;
    int n = atomic_load_explicit(&n_hooks, memory_order_acquire);
    for (int i = 0; i < n; i++)
        hooks[i]();
}

static void make_key(void)
{
    key_ok = pthread_key_create(&key, run_hooks) == 0;
}

/* Adds release to hooks once; false when the table is full. */
static bool add_hook(tg_thread_exit_fn release)
{
    bool ok = false;
    pthread_mutex_lock(&hooks_mu);
    int n = atomic_load_explicit(&n_hooks, memory_order_relaxed);
    for (int i = 0; i < n && !ok; i++)
        ok = hooks[i] == release;
    if (!ok && n < MAX_HOOKS) {
        hooks[n] = release;
        atomic_store_explicit(&n_hooks, n + 1, memory_order_release);
        ok = true;
    }
    pthread_mutex_unlock(&hooks_mu);
    return ok;
}

void tg_thread_exit_arm(tg_thread_exit_fn release)
{
    pthread_once(&key_once, make_key);
    /* Any non-NULL value: the destructor only runs for threads whose value is set. */
    if (key_ok && add_hook(release))
        pthread_setspecific(key, &key);
}
