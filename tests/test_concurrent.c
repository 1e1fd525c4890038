/* Several user threads using the library at once. A fork while another thread is inside the
 * library: the child, alone in its process, must be able to go on.
 *
 * The main thread asserts (cmocka's asserts must not run on other threads or in children). */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tapegrad.h"

#include "tensor.h" /* tg_storage_new: the storage cache without the ops around it */

enum {
    BIG = (1 << 20) + 37, /* above every grain: its ops ask for the pool */
};

/* ---- fork while other threads compute --------------------------------------------------- */

enum {
    CACHED_FLOATS = 300000, /* a large buffer: through the shared cache and its lock */
    FORKS = 40,
    CHILD_SECONDS = 20, /* a child that has not finished by then waits on a lock for ever */
};

/* Takes a buffer from the cache and puts it back, over and over: most of its time is spent
 * holding the cache's lock, so nearly every fork happens while this thread holds it. */
static void *churn_cache(void *arg)
{
    atomic_int *stop = arg;
    while (!atomic_load(stop))
        tg_storage_release(tg_storage_new(CACHED_FLOATS));
    return NULL;
}

/* ThreadSanitizer refuses threads in the child of a process that had threads at the fork,
 * unless told otherwise; the child here starts the pool afresh on purpose. */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
    return "die_after_fork=0";
}

/* The child, alone in its process: large buffers, a pool size, a graph on the pool. */
static int child_work(void)
{
    alarm(CHILD_SECONDS);
    tg_storage *s = tg_storage_new(CACHED_FLOATS);
    if (!s)
        return 1;
    tg_storage_release(s);
    tg_set_num_threads(2);
    int64_t n = BIG;
    tg_tensor *x = tg_requires_grad_(tg_ones(1, &n), true);
    tg_tensor *y = tg_sum(tg_mul_scalar(x, 3.0f));
    bool ok = y && tg_backward(y, NULL, false) == TG_OK && tg_item(y) == 3.0f * (float)BIG &&
              tg_data(tg_grad(x))[BIG - 1] == 3.0f;
    return ok ? 0 : 1;
}

static void test_fork_while_threads_use_the_cache(void **state)
{
    (void)state;
    atomic_int stop = 0;
    pthread_t churner;
    assert_int_equal(pthread_create(&churner, NULL, churn_cache, &stop), 0);
    int hung = 0, failed = 0, forks = 0;
    for (; forks < FORKS && !hung && !failed; forks++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(child_work());
        assert_true(pid > 0);
        int st = 0;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        hung += WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
        failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
    }
    atomic_store(&stop, 1);
    assert_int_equal(pthread_join(churner, NULL), 0);
    print_message("%d forks, %d children stuck, %d failed\n", forks, hung, failed);
    assert_int_equal(hung, 0);
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fork_while_threads_use_the_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
