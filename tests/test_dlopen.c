/* The shared library loaded with dlopen after start-up, as a plugin or a Python ctypes binding
 * loads it. Its thread-local variables use the initial-exec model (src/core/tls.h), so dlopen
 * must find room for them in the static TLS area; then every thread, the main one and new ones,
 * must see its own error status and message through the loaded copy. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include <tapegrad.h>

typedef struct {
    tg_tensor *(*zeros)(int, const int64_t *);
    tg_tensor *(*add)(tg_tensor *, tg_tensor *);
    tg_tensor *(*sum)(tg_tensor *);
    float (*item)(const tg_tensor *);
    void (*release)(tg_tensor *);
    tg_status (*last_status)(void);
    const char *(*last_error)(void);
} api;

static void *lib;
static api fn;

static void *must_sym(const char *name)
{
    void *p = dlsym(lib, name);
    if (!p)
        fail_msg("dlsym(%s): %s", name, dlerror());
    return p;
}

static int load(void **state)
{
    (void)state;
    lib = dlopen(TG_SHARED_LIB, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        fprintf(stderr, "dlopen(%s): %s\n", TG_SHARED_LIB, dlerror());
        return -1;
    }
    *(void **)&fn.zeros = must_sym("tg_zeros");
    *(void **)&fn.add = must_sym("tg_add");
    *(void **)&fn.sum = must_sym("tg_sum");
    *(void **)&fn.item = must_sym("tg_item");
    *(void **)&fn.release = must_sym("tg_release");
    *(void **)&fn.last_status = must_sym("tg_last_status");
    *(void **)&fn.last_error = must_sym("tg_last_error");
    return 0;
}

static int unload(void **state)
{
    (void)state;
    return lib && dlclose(lib) == 0 ? 0 : -1;
}

/* A failing call, then a succeeding one, on the calling thread; returns 0 when both reported
 * what they should. */
static int error_then_success(void)
{
    tg_tensor *a = fn.zeros(1, (int64_t[]){2});
    tg_tensor *b = fn.zeros(1, (int64_t[]){3});
    tg_tensor *bad = fn.add(a, b);
    int wrong = bad != NULL || fn.last_status() != TG_ESHAPE ||
                strstr(fn.last_error(), "tg_add") == NULL || strstr(fn.last_error(), "[2]") == NULL;
    tg_tensor *s = fn.sum(a);
    wrong |= s == NULL || fn.item(s) != 0.0f || fn.last_status() != TG_OK ||
             strcmp(fn.last_error(), "") != 0;
    fn.release(s);
    fn.release(b);
    fn.release(a);
    return wrong;
}

static void *thread_main(void *arg)
{
    *(int *)arg = error_then_success();
    return NULL;
}

static void test_errors_on_main_thread(void **state)
{
    (void)state;
    assert_int_equal(error_then_success(), 0);
}

/* A new thread's first error allocates its message buffer; its exit frees it (ASan's leak
 * check runs this test too). */
static void test_errors_on_new_threads(void **state)
{
    (void)state;
    enum { N = 4 };
    pthread_t t[N];
    int wrong[N];
    for (int i = 0; i < N; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &wrong[i]), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(wrong[i], 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errors_on_main_thread),
        cmocka_unit_test(test_errors_on_new_threads),
    };
    return cmocka_run_group_tests(tests, load, unload);
}
