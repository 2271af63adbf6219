/* test_array.c - tests of core/src/array.c: elements kept in order across
 * growth, the capacity doubling, and out of memory (through the allocation
 * hook) leaving the array as it was. */
#include "test_util.h"

#include "alloc.h"
#include "array.h"

#include <stdint.h>
#include <string.h>

static void test_push_keeps_order_across_growth(void **state)
{
    (void)state;
    hop__array a = {0};
    for (uint64_t i = 0; i < 1000; i++)
        assert_true(hop__array_push(&a, &i, sizeof i));
    assert_int_equal(a.count, 1000);
    assert_true(a.cap >= 1000 && a.cap < 2000);
    const uint64_t *v = a.items;
    for (uint64_t i = 0; i < 1000; i++)
        assert_int_equal(v[i], i);
    hop__array_release(&a);
    assert_null(a.items);
    assert_int_equal(a.count, 0);
    assert_int_equal(a.cap, 0);
    hop__array_release(&a); /* twice is harmless */
}

static void test_reserve_doubles_or_takes_what_is_asked(void **state)
{
    (void)state;
    hop__array a = {0};
    assert_true(hop__array_reserve(&a, 4096, 1));
    assert_int_equal(a.cap, 4096);
    a.count = 4096;
    assert_true(hop__array_reserve(&a, 1, 1));
    assert_int_equal(a.cap, 8192); /* doubles */
    assert_true(hop__array_reserve(&a, 4096, 1));
    assert_int_equal(a.cap, 8192); /* room already */
    assert_true(hop__array_reserve(&a, 20000, 1));
    assert_int_equal(a.cap, 4096 + 20000); /* more than double */
    hop__array_release(&a);
    assert_false(hop__array_reserve(&a, SIZE_MAX / 2, 4)); /* overflow */
    assert_int_equal(a.cap, 0);
}

static void *fail_malloc(size_t n)
{
    (void)n;
    return NULL;
}

static void test_out_of_memory_leaves_it_unchanged(void **state)
{
    (void)state;
    hop__array a = {0};
    uint32_t x = 7;
    assert_true(hop__array_push(&a, &x, sizeof x));
    void *items = a.items;
    size_t cap = a.cap;
    hop__alloc_set_malloc(fail_malloc);
    for (size_t i = a.count; i < cap; i++) /* fills the room it has */
        assert_true(hop__array_push(&a, &x, sizeof x));
    size_t full = a.count;
    assert_false(hop__array_push(&a, &x, sizeof x));
    hop__alloc_set_malloc(NULL);
    assert_ptr_equal(a.items, items);
    assert_int_equal(a.cap, cap);
    assert_int_equal(a.count, full);
    assert_int_equal(((uint32_t *)a.items)[0], 7);
    hop__array_release(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_push_keeps_order_across_growth),
        cmocka_unit_test(test_reserve_doubles_or_takes_what_is_asked),
        cmocka_unit_test(test_out_of_memory_leaves_it_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
