/* test_name.c - tests of core/src/name.c: which channel names are valid. A
 * valid name must always be one harmless path component. */
#include "test_util.h"

#include <string.h>

static void test_valid_names(void **state)
{
    (void)state;
    static const char *const ok[] = {
        "a",          "Z",    "0",   "jobs",        "my-channel",
        "my_channel", "v1.2", "...", "..a",         ".hidden",
        "a..b",       "-",    "_",   "A-Z_a-z.0-9", "0000000000000000001.hq",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!hop_name_valid(ok[i]))
            fail_msg("\"%s\" should be valid", ok[i]);
}

static void test_length_limit(void **state)
{
    (void)state;
    char name[HOP_NAME_MAX + 2];
    assert_int_equal(HOP_NAME_MAX, 128);
    memset(name, 'x', sizeof name);
    name[HOP_NAME_MAX] = '\0';
    assert_true(hop_name_valid(name)); /* 128 */
    name[HOP_NAME_MAX] = 'x';
    name[HOP_NAME_MAX + 1] = '\0';
    assert_false(hop_name_valid(name)); /* 129 */
    name[HOP_NAME_MAX - 1] = '\0';
    assert_true(hop_name_valid(name)); /* 127 */
}

static void test_invalid_names(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",      ".",      "..",   "a/b", "/",    "/abs", "../x", "x/..", "%2F",
        "a%2Fb", "%2e%2e", "a b",  " ",   "a\tb", "a\nb", "a\\b", "a:b",  "a*b",
        "~",     "a?b",    "a\"b", "a'b", "a+b",  "a@b",  "a#b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hop_name_valid(bad[i]))
            fail_msg("\"%s\" should be invalid", bad[i]);
    assert_false(hop_name_valid(NULL));
}

/* A NUL cannot be inside a C string: "a\0b" is the valid name "a", which
 * is why the name is the only thing the channel puts in a path. */
static void test_embedded_nul_truncates(void **state)
{
    (void)state;
    static const char name[] = "a\0b";
    assert_true(hop_name_valid(name));
    assert_int_equal(strlen(name), 1);
    static const char dots[] = "..\0x";
    assert_false(hop_name_valid(dots));
}

/* Every byte outside [A-Za-z0-9._-] is refused, alone and inside a name,
 * including all non-ASCII bytes (UTF-8 included). */
static void test_every_byte(void **state)
{
    (void)state;
    for (int c = 1; c < 256; c++) {
        bool allowed = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       c == '.' || c == '_' || c == '-';
        char alone[2] = {(char)c, 0};
        char inside[4] = {'a', (char)c, 'b', 0};
        if (c != '.' && hop_name_valid(alone) != allowed)
            fail_msg("byte 0x%02x alone: expected %s", c, allowed ? "valid" : "invalid");
        if (hop_name_valid(inside) != allowed)
            fail_msg("byte 0x%02x inside: expected %s", c, allowed ? "valid" : "invalid");
    }
    assert_false(hop_name_valid("caf\xc3\xa9"));
    assert_false(hop_name_valid("\xe2\x80\xae"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_names),   cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_invalid_names), cmocka_unit_test(test_embedded_nul_truncates),
        cmocka_unit_test(test_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
