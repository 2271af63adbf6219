/* test_channel.c - tests of core/src/channel.c through the public API:
 * the statistics, close and reopen keeping everything, the opening rules
 * (foreign files, a second open, names that could escape) and invalid
 * arguments. Each test runs in its own temp dir; the channel is <dir>/ch. */
#include "expect.h"

#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Counters and gauges follow every kind of call. */
static void test_stats(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(3 * hop_message_cost(50), 100000, 1, 200));
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.memory_bytes, 0);
    assert_int_equal(s.disk_messages, 0);
    assert_int_equal(s.disk_bytes, 0);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(s.waiting_receivers, 0);
    assert_int_equal(s.sent_total, 0);
    assert_int_equal(s.received_total, 0);
    assert_int_equal(s.requeued_total, 0);
    assert_int_equal(s.rejected_full_total, 0);
    assert_int_equal(s.io_errors_total, 0);
    assert_int_equal(s.records_corrupt_total, 0);

    expect e;
    expect_init(&e, 100);
    send_ok(ch, &e, 1, 10);
    send_ok(ch, &e, 2, 50);
    s = tu_stats(ch);
    assert_int_equal(s.memory_bytes, hop_message_cost(10) + hop_message_cost(50));
    send_ok(ch, &e, 3, 50);
    send_ok(ch, &e, 4, 50); /* does not fit: disk */
    send_ok(ch, &e, 5, 10);
    s = tu_stats(ch);
    assert_int_equal(s.messages, 5);
    assert_int_equal(s.memory_messages, 3);
    assert_int_equal(s.memory_bytes, hop_message_cost(10) + 2 * hop_message_cost(50));
    assert_int_equal(s.disk_messages, 2);
    assert_int_equal(s.disk_files, 1);
    assert_int_equal(s.disk_bytes, TU_FILE_HEADER + TU_RECORD_SIZE(50) + TU_RECORD_SIZE(10));
    assert_int_equal(s.sent_total, 5);
    assert_int_equal(send_id(ch, 6, 201), HOP_TOO_BIG);
    s = tu_stats(ch);
    assert_int_equal(s.sent_total, 5);
    assert_int_equal(s.rejected_full_total, 0);

    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(hop_requeue(ch, data, len), HOP_OK);
    s = tu_stats(ch);
    assert_int_equal(s.received_total, 1);
    assert_int_equal(s.requeued_total, 1);
    assert_int_equal(s.messages, 5);
    recv_all_expected(ch, &e);
    s = tu_stats(ch);
    assert_int_equal(s.received_total, 6);
    assert_int_equal(s.sent_total, 5);
    assert_int_equal(s.io_errors_total, 0);
    expect_free(&e);
    hop_channel_close(ch);
}

/* Close writes memory to a file read before the others; the next open
 * finds every message, in order, with the consumed ones gone. */
static void test_close_and_reopen_keep_everything(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(2 * hop_message_cost(100), 200, SIZE_MAX, 1000);
    hop_channel *ch = tu_open(d, l);
    expect e;
    expect_init(&e, 100);
    for (uint64_t id = 0; id < 9; id++)
        send_ok(ch, &e, id, 100); /* 2 in memory, 7 in 4 files */
    recv_expected(ch, &e);        /* from memory */
    recv_expected(ch, &e);        /* from memory */
    recv_expected(ch, &e);        /* from disk: consumed */
    for (uint64_t id = 9; id < 11; id++)
        send_ok(ch, &e, id, 100); /* to disk, behind the others */
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.disk_messages, 8);
    tu_log_capture();
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    ch = tu_open(d, l);
    s = tu_stats(ch);
    assert_int_equal(s.messages, 8);
    assert_int_equal(s.recovered_total, 8);
    assert_true(tu_log_contains("recovered 8 message(s)"));
    recv_expected(ch, &e); /* id 3 */
    recv_expected(ch, &e); /* id 4 */
    for (uint64_t id = 11; id < 13; id++)
        send_ok(ch, &e, id, 100); /* appended to the newest recovered file */

    /* give one back and close with it in memory: it goes first */
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), 5);
    assert_int_equal(hop_requeue(ch, data, len), HOP_OK);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_true(tu_log_contains("1 message(s) written to disk at close"));

    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).messages, 8);
    recv_all_expected(ch, &e);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    uint64_t seqs[10];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 10), 0);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).messages, 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_channel_close(NULL), HOP_OK);
    hop_free(NULL);
    expect_free(&e);
}

/* ---- opening ---- */

/* Open recovers queue files of this version and numbers new files after
 * the highest; a file cut short while being created is removed; anything
 * else, queue files of another format version too, is left alone. */
static void test_open_recovers_ours_leaves_foreign(void **state)
{
    tu_dir *d = *state;
    assert_int_equal(mkdir(d->chan, 0700), 0);
    char path[PATH_MAX];
    unsigned char header[HOP__FILE_HEADER_SIZE];
    uint64_t top = ((uint64_t)1 << 62) + 7;
    hop__file_header_encode(header, top);
    tu_join(path, d->chan, "04611686018427387911.hq"); /* 2^62 + 7, ours, no record */
    tu_write_file(path, header, sizeof header);
    hop__file_header_encode(header, 3);
    tu_join(path, d->chan, "00000000000000000003.hq");
    tu_write_file(path, header, 9); /* cut short in its header */
    static const char *const foreign[] = {
        "notes.txt",
        "123.hq",
        "00000000000000000005.hq.bak",
        "0000000000000000009.hq",
        "00000000000000000004.hq", /* not a header */
    };
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        tu_join(path, d->chan, foreign[i]);
        tu_write_file(path, foreign[i], strlen(foreign[i]));
    }
    tu_join(path, d->chan, "sub");
    assert_int_equal(mkdir(path, 0700), 0);
    /* a queue file of hopper 0.1.0 (format version 1) is foreign (record.c) */
    unsigned char v1[HOP__FILE_HEADER_SIZE + 4];
    hop__file_header_encode(v1, 9);
    v1[4] = 1;
    memcpy(v1 + HOP__FILE_HEADER_SIZE, "data", 4);
    tu_join(path, d->chan, "00000000000000000009.hq");
    tu_write_file(path, v1, sizeof v1);

    tu_log_capture();
    hop_channel *ch = tu_open(d, tu_limits(0, 1000, 4, 1000));
    uint64_t seqs[10], sizes[10];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 10), 2);
    assert_true(seqs[0] == 4); /* foreign, untouched */
    assert_true(seqs[1] == 9); /* the version 1 file, untouched */
    assert_true(sizes[1] == sizeof v1);
    /* 5 foreign files (one named as a queue file), sub, the version 1 file
     * and the journal; 3 and top are gone */
    assert_int_equal(tu_count_entries(d->chan), 8);
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        char buf[64] = {0};
        tu_join(path, d->chan, foreign[i]);
        FILE *f = fopen(path, "r");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        assert_int_equal(n, strlen(foreign[i]));
        assert_string_equal(buf, foreign[i]);
    }
    tu_join(path, d->chan, "sub");
    assert_true(tu_exists(path));
    assert_true(tu_log_contains("cut short when it was created"));
    assert_true(tu_log_contains("of another format version: left alone"));
    assert_true(tu_log_contains("not a queue file of this channel: left alone"));
    assert_int_equal(tu_stats(ch).disk_files, 0);

    /* numbering continues after the highest queue file name */
    assert_int_equal(send_id(ch, 1, 10), HOP_OK);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 10), 3);
    assert_true(seqs[2] == top + 1);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), 1);
    hop_free(data);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 10), 2); /* consumed: removed */
    hop_channel_close(ch);
}

/* One opener at a time: the second gets HOP_IO/EWOULDBLOCK and disturbs
 * nothing of the first. */
static void test_second_open_fails(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 1000, 4, 1000);
    hop_channel *ch = tu_open(d, l);
    expect e;
    expect_init(&e, 10);
    for (uint64_t id = 0; id < 3; id++)
        send_ok(ch, &e, id, 50); /* on disk */
    hop_channel *second = (hop_channel *)(uintptr_t)0x99;
    errno = 0;
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &second), HOP_IO);
    assert_true(errno == EWOULDBLOCK || errno == EAGAIN);
    assert_ptr_equal(second, (hop_channel *)(uintptr_t)0x99);
    hop_limits other = tu_limits(1 << 20, 1 << 20, 64, 1000);
    assert_int_equal(hop_channel_open(d->data, "ch", &other, &second), HOP_IO);
    uint64_t seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 1); /* not removed as stale */
    recv_all_expected(ch, &e);
    hop_channel_close(ch);
    ch = tu_open(d, l); /* the lock went with the first channel */
    hop_channel_close(ch);
    expect_free(&e);
}

/* Names cannot leave data_dir, not even through a symlink. */
static void test_names_cannot_escape(void **state)
{
    tu_dir *d = *state;
    char outside[PATH_MAX], link[PATH_MAX], path[PATH_MAX];
    tu_tmpdir(outside);
    hop_channel *ch = (hop_channel *)(uintptr_t)0x99;
    static const char *const names[] = {"..", ".", "../x", "a/b", "/tmp", "x/../.."};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        assert_int_equal(hop_channel_open(d->data, names[i], NULL, &ch), HOP_INVALID);

    tu_join(link, d->data, "evil");
    assert_int_equal(symlink(outside, link), 0);
    errno = 0;
    assert_int_equal(hop_channel_open(d->data, "evil", NULL, &ch), HOP_IO);
    assert_true(errno == ENOTDIR || errno == ELOOP); /* O_NOFOLLOW | O_DIRECTORY */
    assert_ptr_equal(ch, (hop_channel *)(uintptr_t)0x99);
    assert_int_equal(tu_count_entries(outside), 0);

    tu_join(path, d->data, "plain");
    tu_write_file(path, "x", 1);
    assert_int_equal(hop_channel_open(d->data, "plain", NULL, &ch), HOP_IO);

    /* data_dir is created one level deep, not more */
    tu_join(path, outside, "new");
    assert_int_equal(hop_channel_open(path, "ch", NULL, &ch), HOP_OK);
    hop_channel_close(ch);
    char chan[PATH_MAX];
    tu_join(chan, path, "ch");
    assert_true(tu_exists(chan));
    tu_join(path, outside, "a/b");
    assert_int_equal(hop_channel_open(path, "ch", NULL, &ch), HOP_IO);
    tu_rmtree(outside);
}

static void test_invalid_arguments(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(1000, 1000, 1, 100));
    assert_int_equal(hop_send(NULL, "x", 1), HOP_INVALID);
    assert_int_equal(hop_send(ch, NULL, 1), HOP_INVALID);
    hop_channel_stats(NULL, NULL);
    hop_channel_stats(ch, NULL);
    assert_int_equal(tu_stats(ch).sent_total, 0);
    hop_channel_close(ch);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_stats),
        T(test_close_and_reopen_keep_everything),
        T(test_open_recovers_ours_leaves_foreign),
        T(test_second_open_fails),
        T(test_names_cannot_escape),
        T(test_invalid_arguments),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
