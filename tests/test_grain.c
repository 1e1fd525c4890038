/* Which loops are offered to the pool at which grain: the costly elementwise ops split from
 * tg_parallel_grain_heavy() elements, the cheap ones from tg_parallel_grain(). Linked with
 * -Wl,--wrap=tg_parallel_for, so every loop the library hands the pool is seen here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "parallel.h"
#include "tapegrad.h"

static int64_t split_loops; /* tg_parallel_for calls with n >= grain since the last reset */

void __real_tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);
void __wrap_tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx);
void __wrap_tg_parallel_for(int64_t n, int64_t grain, tg_range_fn fn, void *ctx)
{
    split_loops += n >= grain;
    __real_tg_parallel_for(n, grain, fn, ctx);
}

static tg_tensor *vec(float v)
{
    return tg_full(1, (int64_t[]){tg_parallel_grain_heavy()}, v);
}

static bool splits(tg_tensor *(*op)(void))
{
    split_loops = 0;
    tg_scope_begin();
    tg_tensor *y = op();
    assert_non_null(y);
    tg_scope_end();
    return split_loops > 0;
}

static tg_tensor *op_exp(void)
{
    return tg_exp(vec(0.5f));
}
static tg_tensor *op_sin(void)
{
    return tg_sin(vec(0.5f));
}
static tg_tensor *op_sigmoid(void)
{
    return tg_sigmoid(vec(0.5f));
}
static tg_tensor *op_bce(void)
{
    return tg_binary_cross_entropy(vec(0.25f), vec(1.0f), TG_REDUCE_NONE);
}
static tg_tensor *op_bce_logits(void)
{
    return tg_bce_with_logits(vec(0.5f), vec(1.0f), NULL, TG_REDUCE_NONE);
}
static tg_tensor *op_bce_logits_scalar_pw(void)
{
    return tg_bce_with_logits(vec(0.5f), vec(1.0f), tg_full(1, (int64_t[]){1}, 2.0f),
                              TG_REDUCE_NONE);
}
static tg_tensor *op_bce_logits_tensor_pw(void)
{
    return tg_bce_with_logits(vec(0.5f), vec(1.0f), vec(2.0f), TG_REDUCE_NONE);
}
static tg_tensor *op_add(void)
{
    return tg_add(vec(0.5f), vec(1.0f));
}
static tg_tensor *op_mul_scalar(void)
{
    return tg_mul_scalar(vec(0.5f), 3.0f);
}

static void test_costly_ops_split_from_the_heavy_grain(void **state)
{
    (void)state;
    tg_set_num_threads(2);
    assert_true(splits(op_exp));
    assert_true(splits(op_sin));
    assert_true(splits(op_sigmoid));
    assert_true(splits(op_bce));
    assert_true(splits(op_bce_logits));
    assert_true(splits(op_bce_logits_scalar_pw));
    assert_true(splits(op_bce_logits_tensor_pw));
    tg_set_num_threads(0);
}

static void test_cheap_ops_do_not(void **state)
{
    (void)state;
    tg_set_num_threads(2);
    assert_false(splits(op_add));
    assert_false(splits(op_mul_scalar));
    tg_set_num_threads(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_costly_ops_split_from_the_heavy_grain),
        cmocka_unit_test(test_cheap_ops_do_not),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
