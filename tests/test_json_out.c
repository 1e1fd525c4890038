/* The CLI's --json building: a field that fails to go in (cJSON out of memory) makes
 * json_print fail, for every allocation of the object, instead of printing it without that
 * field. cJSON's own allocation hooks inject the failures. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "json_out.h"

static int fail_at = -1; /* the allocation (counted from 0) that fails; -1: none */
static int allocs_made;

static void *failing_malloc(size_t n)
{
    return allocs_made++ == fail_at ? NULL : malloc(n);
}

static bool build_and_print(void)
{
    json_out j = json_begin();
    json_str(&j, "data", "file.csv");
    json_num(&j, "rows", 3.0);
    json_num(&j, "auc", 0.0 / 0.0); /* null */
    json_str(&j, "model", NULL);    /* null */
    json_out c = json_object(&j, "confusion");
    json_num(&c, "tn", 1.0);
    json_num(&c, "tp", 2.0);
    json_merge(&j, &c);
    return json_print(&j);
}

static void test_every_failed_allocation_fails_the_print(void **state)
{
    (void)state;
    cJSON_Hooks hooks = {failing_malloc, free};
    cJSON_InitHooks(&hooks);
    allocs_made = 0;
    assert_true(build_and_print());
    const int needed = allocs_made; /* object, keys, values and the printed text */
    assert_true(needed >= 8);
    /* One allocation fails and the later ones succeed: the object would print without the
     * field that failed, so json_print must notice. */
    for (fail_at = 0; fail_at < needed; fail_at++) {
        allocs_made = 0;
        assert_false(build_and_print());
    }
    fail_at = -1;
    cJSON_InitHooks(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_failed_allocation_fails_the_print),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
