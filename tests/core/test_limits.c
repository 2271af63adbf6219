/* test_limits.c - tests of core/src/limits.c and core/src/error.c: the
 * defaults, the validity rules of hop_limits (directly and as
 * hop_channel_open() applies them), and the error vocabulary. */
#include "test_util.h"

#include <string.h>

#define MIB ((size_t)1 << 20)

static void test_defaults(void **state)
{
    (void)state;
    hop_limits l;
    memset(&l, 0xAB, sizeof l);
    hop_limits_default(&l);
    assert_int_equal(l.memory_bytes, 64 * MIB);
    assert_int_equal(l.file_bytes, 64 * MIB);
    assert_null(l.budget); /* no shared budget: the channel behaves as on its own */
    assert_int_equal(l.max_disk_files, 64);
    assert_int_equal(l.max_message_bytes, 1 * MIB);
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    hop_limits_default(NULL); /* no crash */
}

static void test_message_cost(void **state)
{
    (void)state;
    assert_true(hop_message_cost(0) > 0); /* bookkeeping counts */
    for (size_t len = 0; len < 5000; len += 7)
        assert_int_equal(hop_message_cost(len + 1), hop_message_cost(len) + 1);
    assert_true(hop_message_cost(HOP_MAX_MESSAGE_BYTES) > HOP_MAX_MESSAGE_BYTES);
}

static void test_check_rules(void **state)
{
    (void)state;
    hop_limits l;
    assert_int_equal(hop_limits_check(NULL), HOP_INVALID);

    hop_limits_default(&l);
    l.max_message_bytes = 0;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    l.max_message_bytes = 1;
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    l.max_message_bytes = HOP_MAX_MESSAGE_BYTES;
    assert_int_equal(HOP_MAX_MESSAGE_BYTES, (size_t)1 << 30);
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    l.max_message_bytes = HOP_MAX_MESSAGE_BYTES + 1;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    l.max_message_bytes = SIZE_MAX;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);

    /* file_bytes 0 is only meaningless when there are disk files */
    hop_limits_default(&l);
    l.file_bytes = 0;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    l.max_disk_files = SIZE_MAX;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    l.max_disk_files = 0;
    assert_int_equal(hop_limits_check(&l), HOP_OK);

    /* memory only: a largest message must fit, to the byte */
    l = tu_limits(0, 0, 0, 1000);
    l.memory_bytes = hop_message_cost(1000) - 1;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    l.memory_bytes = hop_message_cost(1000);
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    /* with disk files, memory may be smaller than a message, even 0 */
    l = tu_limits(0, 1, 1, 1000);
    assert_int_equal(hop_limits_check(&l), HOP_OK);
}

static void test_error_names_and_texts(void **state)
{
    (void)state;
    struct {
        hop_err err;
        const char *name;
        const char *text;
    } all[] = {
#define ROW(name, text) {HOP_##name, #name, text},
        HOP_ERRORS(ROW)
#undef ROW
    };
    size_t n = sizeof all / sizeof all[0];
    assert_int_equal(n, 9);
    assert_int_equal(HOP_OK, 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(all[i].err, i); /* dense, in list order */
        assert_string_equal(hop_err_name(all[i].err), all[i].name);
        assert_string_equal(hop_strerror(all[i].err), all[i].text);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(hop_strerror(all[i].err), hop_strerror(all[j].err));
    }
    assert_string_equal(hop_err_name(HOP_FULL), "FULL");
    assert_string_equal(hop_err_name(HOP_CLOSED), "CLOSED");
    assert_int_equal(HOP_CLOSED, 7); /* appended codes keep the numbers before them */
    assert_int_equal(HOP_NOSPACE, 8);
    assert_string_equal(hop_err_name(HOP_NOSPACE), "NOSPACE");
    assert_string_equal(hop_strerror(HOP_NOSPACE), "the disk budget is used up");
    assert_string_equal(hop_strerror(HOP_OK), "success");
    static const int outside[] = {9, 10, 100, -1, 0x7fffffff};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        assert_string_equal(hop_strerror((hop_err)outside[i]), "unknown error");
        assert_string_equal(hop_err_name((hop_err)outside[i]), "UNKNOWN");
    }
}

/* hop_channel_open() refuses what hop_limits_check() refuses, bad names,
 * a NULL out and a missing data_dir, leaving *out and the disk alone. */
static void expect_open_invalid(const tu_dir *d, const char *data_dir, const char *name,
                                const hop_limits *limits, const char *what)
{
    hop_channel *sentinel = (hop_channel *)(uintptr_t)0x5151;
    hop_channel *ch = sentinel;
    hop_err err = hop_channel_open(data_dir, name, limits, &ch);
    if (err != HOP_INVALID)
        fail_msg("%s: expected INVALID, got %s", what, hop_err_name(err));
    if (ch != sentinel)
        fail_msg("%s: *out was written", what);
    if (tu_count_entries(d->data) != 0)
        fail_msg("%s: something was created in data_dir", what);
}

static void test_open_rejects_invalid(void **state)
{
    tu_dir *d = *state;
    hop_limits l;

    hop_limits_default(&l);
    l.max_message_bytes = 0;
    expect_open_invalid(d, d->data, "ch", &l, "max_message_bytes 0");
    l.max_message_bytes = HOP_MAX_MESSAGE_BYTES + 1;
    expect_open_invalid(d, d->data, "ch", &l, "max_message_bytes > 1 GiB");
    hop_limits_default(&l);
    l.file_bytes = 0;
    expect_open_invalid(d, d->data, "ch", &l, "file_bytes 0 with disk files");
    l = tu_limits(hop_message_cost(100) - 1, 0, 0, 100);
    expect_open_invalid(d, NULL, "ch", &l, "memory only, too small");
    expect_open_invalid(d, d->data, "ch", &l, "memory only, too small, with data_dir");

    static const char *const names[] = {"", ".", "..", "a/b", "../ch", "%2F", "a b", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        expect_open_invalid(d, d->data, names[i], NULL, names[i]);
    expect_open_invalid(d, d->data, NULL, NULL, "NULL name");

    assert_int_equal(hop_channel_open(d->data, "ch", NULL, NULL), HOP_INVALID);
    assert_int_equal(tu_count_entries(d->data), 0);

    hop_limits_default(&l);
    expect_open_invalid(d, NULL, "ch", &l, "NULL data_dir with disk files");
    expect_open_invalid(d, "", "ch", &l, "empty data_dir with disk files");
    expect_open_invalid(d, NULL, "ch", NULL, "NULL data_dir with default limits");
}

/* The valid edge cases open. */
static void test_open_accepts_edges(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = NULL;
    hop_limits l = tu_limits(hop_message_cost(100), 0, 0, 100);
    assert_int_equal(hop_channel_open(NULL, "mem", &l, &ch), HOP_OK);
    assert_non_null(ch);
    assert_string_equal(hop_channel_name(ch), "mem");
    hop_channel_close(ch);

    /* memory only with a data_dir: no queue file while it runs, but close
     * writes what memory holds, and the next open finds it */
    assert_int_equal(hop_channel_open(d->data, "mem", &l, &ch), HOP_OK);
    assert_int_equal(hop_send(ch, "kept", 4), HOP_OK);
    char mem_dir[PATH_MAX];
    tu_join(mem_dir, d->data, "mem");
    assert_int_equal(tu_count_qfiles(mem_dir), 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(tu_count_qfiles(mem_dir), 1);
    assert_int_equal(hop_channel_open(d->data, "mem", &l, &ch), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_send(ch, "x", 1), HOP_FULL); /* its one file is more than 0 */
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(len, 4);
    assert_memory_equal(data, "kept", 4);
    hop_free(data);
    assert_int_equal(tu_count_qfiles(mem_dir), 0);
    assert_int_equal(hop_send(ch, "x", 1), HOP_OK); /* memory again */
    hop_channel_close(ch);
    tu_rmtree(mem_dir);

    char name[HOP_NAME_MAX + 1];
    memset(name, 'n', HOP_NAME_MAX);
    name[HOP_NAME_MAX] = '\0';
    assert_int_equal(hop_channel_open(d->data, name, NULL, &ch), HOP_OK);
    assert_string_equal(hop_channel_name(ch), name);
    hop_channel_close(ch);
    char path[PATH_MAX];
    tu_join(path, d->data, name);
    assert_true(tu_exists(path));

    assert_null(hop_channel_name(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_message_cost),
        cmocka_unit_test(test_check_rules),
        cmocka_unit_test(test_error_names_and_texts),
        cmocka_unit_test_setup_teardown(test_open_rejects_invalid, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_open_accepts_edges, tu_dir_setup, tu_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
