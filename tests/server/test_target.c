/* test_target.c - server/target.c: the channel name of /channels/NAME[/...]
 * (%2F, %00 and dot segments never make a name), the decoding of the path,
 * and whole-number query values. tests/fuzz/fuzz_name.c and fuzz_query.c
 * check the same properties on generated inputs. */
#include "target.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* target_channel_name of the C string rest. OUT: out, *segment. */
static bool name_of(const char *rest, char out[HOP_NAME_MAX + 1], size_t *segment)
{
    return target_channel_name(rest, strlen(rest), out, segment);
}

static void test_names_accepted(void **state)
{
    (void)state;
    char name[HOP_NAME_MAX + 1];
    size_t segment;
    assert_true(name_of("jobs", name, &segment));
    assert_string_equal(name, "jobs");
    assert_int_equal(segment, 4);
    assert_true(name_of("%6Aob%73/messages/abc", name, &segment));
    assert_string_equal(name, "jobs");
    assert_int_equal(segment, 8);
    assert_true(name_of("...", name, &segment));
    assert_string_equal(name, "...");
}

static void test_names_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",     "a%2Fb", "a%2fb", "a%00b", "%00", ".",    "..",     "%2E",   "%2E%2E",
        "%2e.", "a b",   "a%20b", "a%",    "a%4", "a%G1", "%C3%A9", "/jobs",
    };
    char name[HOP_NAME_MAX + 1];
    size_t segment;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (name_of(bad[i], name, &segment))
            fail_msg("accepted '%s'", bad[i]);
    /* a NUL in the bytes given stops nothing: it is refused */
    assert_false(target_channel_name("ab\0c", 4, name, &segment));
    assert_int_equal(segment, 4);
}

static void test_name_lengths(void **state)
{
    (void)state;
    char raw[3 * HOP_NAME_MAX + 8], name[HOP_NAME_MAX + 1];
    size_t segment;
    memset(raw, 'x', HOP_NAME_MAX);
    raw[HOP_NAME_MAX] = '\0';
    assert_true(name_of(raw, name, &segment));
    assert_int_equal(strlen(name), HOP_NAME_MAX);
    raw[HOP_NAME_MAX] = 'x';
    raw[HOP_NAME_MAX + 1] = '\0';
    assert_false(name_of(raw, name, &segment));
    /* the longest name, every byte escaped: 3 * HOP_NAME_MAX raw bytes */
    for (size_t i = 0; i < HOP_NAME_MAX; i++)
        memcpy(raw + 3 * i, "%41", 3);
    raw[3 * HOP_NAME_MAX] = '\0';
    assert_true(name_of(raw, name, &segment));
    assert_int_equal(strlen(name), HOP_NAME_MAX);
    assert_int_equal(segment, 3 * HOP_NAME_MAX);
    strcat(raw, "%41");
    assert_false(name_of(raw, name, &segment));
    assert_int_equal(segment, 3 * HOP_NAME_MAX + 3);
}

static void test_decode_path(void **state)
{
    (void)state;
    size_t len;
    char *p = target_decode_path("/channels/a%2Fb%00c%zz%4?x=%41", &len);
    assert_non_null(p);
    assert_int_equal(len, 20);
    assert_memory_equal(p, "/channels/a/b\0c%zz%4", 20);
    free(p);
}

static void test_parse_count(void **state)
{
    (void)state;
    size_t n = 0;
    assert_true(target_parse_count("1", 1000, &n));
    assert_int_equal(n, 1);
    assert_true(target_parse_count("0001000", 1000, &n));
    assert_int_equal(n, 1000);
    static const char *const bad[] = {"",   "0",  "1001", "-1",   "+1",
                                      " 1", "1 ", "1e3",  "0x10", "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (target_parse_count(bad[i], 1000, &n))
            fail_msg("accepted '%s'", bad[i]);
    assert_true(target_parse_count("18446744073709551615", SIZE_MAX, &n));
    assert_true(n == SIZE_MAX);
    assert_false(target_parse_count("18446744073709551616", SIZE_MAX, &n));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_accepted), cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_name_lengths),   cmocka_unit_test(test_decode_path),
        cmocka_unit_test(test_parse_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
