/* Memory stays flat over long runs: a 100,000-step training loop with one scope per step, large
 * temporaries, and failing calls inside scopes. Heap use is read from the allocator actually in
 * use (ASan's when built with -fsanitize=address, glibc's otherwise). */
#include <setjmp.h> /* cmocka needs these before its header */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <sys/resource.h>

#include "gradcheck.h"
#include "tapegrad.h"

#include "heap.h"

static int64_t peak_rss_bytes(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (int64_t)ru.ru_maxrss * 1024;
}

/* Growth allowed between the early and the final measurement. A leak of one tensor header
 * (~200 bytes) per step would add ~20 MB over the 99,000 steps in between, one graph node
 * ~40 MB; 256 KB covers allocator bookkeeping noise and nothing that grows with the step
 * count. Peak RSS gets more slack (4 MB) because the kernel accounts it in whole pages. */
#define HEAP_GROWTH_LIMIT ((int64_t)256 * 1024)
#define RSS_GROWTH_LIMIT  ((int64_t)4 * 1024 * 1024)

enum { N_SAMPLES = 32, N_FEATURES = 3, STEPS = 100000, EARLY = 1000 };

typedef struct {
    tg_tensor *x, *y; /* data: y = x w_true + b_true + small noise */
    tg_tensor *w, *b; /* parameters */
} regression;

static void make_problem(regression *r)
{
    const float w_true[N_FEATURES] = {2.0f, -3.0f, 0.5f};
    const float b_true = 1.0f;
    r->x = tg_randn(2, (int64_t[]){N_SAMPLES, N_FEATURES}, 2024);
    tg_tensor *noise = tg_randn(1, (int64_t[]){N_SAMPLES}, 77);
    float y[N_SAMPLES];
    const float *xv = tg_data(r->x), *nv = tg_data(noise);
    for (int i = 0; i < N_SAMPLES; i++) {
        double s = b_true + 0.01 * nv[i];
        for (int j = 0; j < N_FEATURES; j++)
            s += (double)w_true[j] * xv[i * N_FEATURES + j];
        y[i] = (float)s;
    }
    tg_release(noise);
    r->y = tg_from_data(y, 1, (int64_t[]){N_SAMPLES});
    r->w = tg_requires_grad_(tg_zeros(1, (int64_t[]){N_FEATURES}), true);
    r->b = tg_requires_grad_(tg_zeros(0, NULL), true);
}

/* One SGD step inside its own scope; returns the loss before the update. */
static float train_step(regression *r, float lr)
{
    tg_scope_begin();
    tg_tensor *pred = tg_add(tg_matmul(r->x, r->w), r->b);
    tg_tensor *loss = tg_mse_loss(pred, r->y, TG_REDUCE_MEAN);
    float value = tg_item(loss);
    if (tg_backward(loss, NULL, false) != TG_OK)
        value = NAN;
    TG_NO_GRAD
    {
        if (!tg_axpy_(r->w, -lr, tg_grad(r->w)) || !tg_axpy_(r->b, -lr, tg_grad(r->b)))
            value = NAN;
    }
    tg_grad_reset(r->w);
    tg_grad_reset(r->b);
    tg_scope_end();
    return value;
}

static void test_training_loop_memory_is_flat(void **state)
{
    (void)state;
    regression r;
    make_problem(&r);
    const float lr = 0.01f;
    float first = train_step(&r, lr);
    assert_true(isfinite(first));
    for (int s = 1; s < EARLY; s++)
        assert_true(isfinite(train_step(&r, lr)));
    int64_t heap_early = heap_in_use(), rss_early = peak_rss_bytes();
    float last = 0;
    for (int s = EARLY; s < STEPS; s++) {
        last = train_step(&r, lr);
        if (!isfinite(last))
            fail_msg("step %d: loss %g (%s)", s, (double)last, tg_last_error());
    }
    int64_t heap_growth = heap_in_use() - heap_early;
    int64_t rss_growth = peak_rss_bytes() - rss_early;
    print_message("loss %g -> %g; heap growth %lld bytes, peak RSS growth %lld bytes\n",
                  (double)first, (double)last, (long long)heap_growth, (long long)rss_growth);
    assert_true(heap_growth < HEAP_GROWTH_LIMIT);
#ifndef TG_TEST_ASAN
    /* under ASan, freed blocks sit in its quarantine (256 MB by default), so RSS climbs until
     * the quarantine is full whatever the program does; the heap figure above is exact there */
    assert_true(rss_growth < RSS_GROWTH_LIMIT);
#endif
    /* it did learn: the loss fell to the noise floor and w, b match the generating values */
    assert_true(last < 0.01f * first);
    assert_true(last < 1e-3f);
    float w[N_FEATURES];
    tg_copy_to(r.w, w, N_FEATURES);
    assert_true(fabsf(w[0] - 2.0f) < 0.05f && fabsf(w[1] + 3.0f) < 0.05f &&
                fabsf(w[2] - 0.5f) < 0.05f);
    assert_true(fabsf(tg_item(r.b) - 1.0f) < 0.05f);
    assert_null(tg_grad(r.w));
    tg_release(r.x), tg_release(r.y), tg_release(r.w), tg_release(r.b);
}

static void test_large_temporaries_are_recycled(void **state)
{
    (void)state;
    /* 1 MB tensors through ops and a backward, 100 times */
    const int64_t n = 1 << 18;
    tg_tensor *x = tg_requires_grad_(tg_rand(1, &n, 5), true);
    int64_t heap_early = 0;
    for (int s = 0; s < 100; s++) {
        if (s == 10)
            heap_early = heap_in_use();
        tg_scope_begin();
        tg_tensor *y = tg_mean(tg_mul(tg_sigmoid(x), tg_exp(tg_neg(x))));
        assert_int_equal(tg_backward(y, NULL, false), TG_OK);
        tg_grad_reset(x);
        tg_scope_end();
    }
    int64_t growth = heap_in_use() - heap_early;
    print_message("large temporaries: heap growth %lld bytes\n", (long long)growth);
    assert_true(growth < HEAP_GROWTH_LIMIT);
    tg_release(x);
}

static void test_failing_calls_do_not_leak(void **state)
{
    (void)state;
    tg_tensor *a = tg_ones(2, (int64_t[]){2, 3}), *b = tg_ones(1, (int64_t[]){4});
    tg_tensor *w = tg_requires_grad_(tg_ones(1, (int64_t[]){3}), true);
    int64_t heap_early = 0;
    for (int s = 0; s < 20000; s++) {
        if (s == 1000)
            heap_early = heap_in_use();
        tg_scope_begin();
        assert_null(tg_sum(tg_exp(tg_add(a, b)))); /* shape error mid-chain */
        assert_null(tg_matmul(tg_mul(a, w), a));   /* graph built, then failure */
        tg_tensor *y = tg_sum(tg_mul(tg_sin(w), w));
        assert_int_equal(tg_backward(y, NULL, false), TG_OK);
        assert_int_equal(tg_backward(y, NULL, false), TG_EGRAPH); /* freed graph */
        assert_int_equal(tg_backward(tg_mul_scalar(w, 2), NULL, false), TG_ESHAPE);
        tg_grad_reset(w);
        tg_scope_end();
    }
    int64_t growth = heap_in_use() - heap_early;
    print_message("failing calls: heap growth %lld bytes\n", (long long)growth);
    assert_true(growth < HEAP_GROWTH_LIMIT);
    tg_release(a), tg_release(b), tg_release(w);
}

int main(void)
{
    if (tg_test_isa_unavailable())
        return TG_TEST_SKIP;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_training_loop_memory_is_flat),
        cmocka_unit_test(test_large_temporaries_are_recycled),
        cmocka_unit_test(test_failing_calls_do_not_leak),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
