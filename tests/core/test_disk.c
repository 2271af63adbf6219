/* test_disk.c - tests of core/src/disk.c through the public API: queue
 * files appearing and going, a message bigger than a file, corrupt and
 * unframed records met by a receiver, and no descriptor kept open. Each
 * test runs in its own temp dir; the channel is <dir>/ch. */
#include "expect.h"

#include "queue_file.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Queue files appear in <dir>/<name>/ with increasing names, hold what the
 * stats say, and each is deleted as soon as it is drained. */
static void test_files_appear_and_are_deleted(void **state)
{
    tu_dir *d = *state;
    size_t rec = TU_RECORD_SIZE(100);
    size_t file_bytes = TU_FILE_HEADER + 3 * rec;
    hop_channel *ch = tu_open(d, tu_limits(2 * hop_message_cost(100), file_bytes, SIZE_MAX, 1000));
    expect e;
    expect_init(&e, 100);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    for (uint64_t id = 0; id < 17; id++)
        send_ok(ch, &e, id, 100); /* 2 in memory, 15 in 5 files */

    uint64_t seqs[1000], sizes[1000];
    int n = qfiles(d, seqs, sizes);
    assert_int_equal(n, 5);
    assert_int_equal(tu_count_qfiles(d->chan), 5);
    assert_int_equal(tu_count_entries(d->chan), 6); /* and the journal, nothing else */
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.disk_files, 5);
    uint64_t total = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0)
            assert_true(seqs[i] == seqs[i - 1] + 1);
        assert_true(sizes[i] == file_bytes);
        total += sizes[i];
    }
    assert_true(total == s.disk_bytes);
    uint64_t first = seqs[0];

    recv_expected(ch, &e);
    recv_expected(ch, &e); /* memory drained, no file touched */
    assert_int_equal(qfiles(d, seqs, NULL), 5);
    for (int k = 0; k < 15; k++) {
        recv_expected(ch, &e);
        int left_records = 14 - k;
        int want_files = (left_records + 2) / 3;
        n = qfiles(d, seqs, NULL);
        if (n != want_files)
            fail_msg("after %d disk records: %d files, expected %d", k + 1, n, want_files);
        if (n > 0)
            assert_true(seqs[0] == first + (uint64_t)(5 - n));
        s = tu_stats(ch);
        assert_int_equal(s.disk_files, want_files);
        assert_int_equal(s.disk_messages, left_records);
    }
    s = tu_stats(ch);
    assert_int_equal(s.disk_bytes, 0);

    /* an unsealed file is deleted too once drained; numbering goes on */
    for (uint64_t id = 100; id < 104; id++)
        send_ok(ch, &e, id, 100); /* 2 in memory, 2 in a new, unsealed file */
    n = qfiles(d, seqs, sizes);
    assert_int_equal(n, 1);
    assert_true(seqs[0] == first + 5);
    assert_true(sizes[0] == TU_FILE_HEADER + 2 * rec);
    recv_all_expected(ch, &e);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    assert_int_equal(tu_stats(ch).disk_files, 0);
    expect_free(&e);
    hop_channel_close(ch);
}

/* A message bigger than file_bytes gets a file of its own. */
static void test_message_bigger_than_file(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(0, 100, SIZE_MAX, 100000));
    expect e;
    expect_init(&e, 10);
    send_ok(ch, &e, 1, 1000);
    send_ok(ch, &e, 2, 50000);
    send_ok(ch, &e, 3, 8);
    uint64_t seqs[8], sizes[8];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 8), 3);
    assert_true(sizes[0] == TU_FILE_HEADER + TU_RECORD_SIZE(1000));
    assert_true(sizes[1] == TU_FILE_HEADER + TU_RECORD_SIZE(50000));
    assert_true(sizes[2] == TU_FILE_HEADER + TU_RECORD_SIZE(8));
    recv_all_expected(ch, &e);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    expect_free(&e);
    hop_channel_close(ch);
}

/* ---- corruption on disk ---- */

/* Record i of the channel's file seq starts here, for fixed-size records. */
static uint64_t record_offset(size_t payload, int i)
{
    return TU_FILE_HEADER + (uint64_t)i * TU_RECORD_SIZE(payload);
}

static void qfile_path(const tu_dir *d, uint64_t seq, char out[PATH_MAX])
{
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    tu_join(out, d->chan, name);
}

/* Receive until empty. OUT: ids received, count of HOP_IO. */
static int drain(hop_channel *ch, uint64_t *ids, int max, int *io_errors)
{
    int n = 0;
    *io_errors = 0;
    for (;;) {
        void *data;
        size_t len;
        hop_err err = hop_recv(ch, 0, &data, &len);
        if (err == HOP_TIMEOUT)
            break;
        if (err == HOP_IO) {
            assert_int_equal(errno, EIO);
            (*io_errors)++;
            assert_true(*io_errors < 100);
            continue;
        }
        assert_int_equal(err, HOP_OK);
        uint64_t id = tu_id_of(data, len);
        if (id == UINT64_MAX)
            fail_msg("received a message with wrong bytes (%zu bytes)", len);
        assert_true(n < max);
        ids[n++] = id;
        hop_free(data);
    }
    return n;
}

/* A damaged payload byte in a sealed file not yet read: one HOP_IO, counted
 * once, and every other message intact and in order. */
static void test_corrupt_record_on_disk(void **state)
{
    tu_dir *d = *state;
    const size_t len = 64;
    hop_channel *ch = tu_open(d, tu_limits(0, record_offset(len, 4), SIZE_MAX, 1000));
    for (uint64_t id = 0; id < 12; id++)
        assert_int_equal(send_id(ch, id, len), HOP_OK); /* 3 files of 4 */
    void *data;
    size_t n;
    assert_int_equal(hop_recv(ch, 0, &data, &n), HOP_OK); /* reading file 1 */
    hop_free(data);
    uint64_t seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 3);
    char path[PATH_MAX];
    qfile_path(d, seqs[1], path);
    tu_flip_byte(path, record_offset(len, 1) + HOP__RECORD_HEADER_SIZE + 30, 0x04); /* id 5 */

    uint64_t ids[20];
    int io_errors;
    int got = drain(ch, ids, 20, &io_errors);
    assert_int_equal(io_errors, 1);
    assert_int_equal(got, 10);
    uint64_t want = 1;
    for (int i = 0; i < got; i++, want++) {
        if (want == 5)
            want++;
        assert_int_equal(ids[i], want);
    }
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.records_corrupt_total, 1);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 0);
    assert_true(tu_log_contains("corrupt record"));
    hop_channel_close(ch);
}

/* A damaged record magic: the rest of that file cannot be framed and is
 * skipped (counted), the next file reads normally. */
static void test_unframed_record_on_disk(void **state)
{
    tu_dir *d = *state;
    const size_t len = 64;
    hop_channel *ch = tu_open(d, tu_limits(0, record_offset(len, 4), SIZE_MAX, 1000));
    for (uint64_t id = 0; id < 12; id++)
        assert_int_equal(send_id(ch, id, len), HOP_OK);
    uint64_t seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 3);
    char path[PATH_MAX];
    qfile_path(d, seqs[1], path);
    tu_flip_byte(path, record_offset(len, 1), 0xFF); /* magic of id 5 */
    uint64_t ids[20];
    int io_errors;
    int got = drain(ch, ids, 20, &io_errors);
    assert_int_equal(io_errors, 1);
    static const uint64_t want[] = {0, 1, 2, 3, 4, 8, 9, 10, 11};
    assert_int_equal(got, 9);
    for (int i = 0; i < got; i++)
        assert_int_equal(ids[i], want[i]);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.records_corrupt_total, 3);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.disk_files, 0);
    /* the channel goes on: a new send (to disk, memory is 0) arrives */
    assert_int_equal(send_id(ch, 100, len), HOP_OK);
    got = drain(ch, ids, 20, &io_errors);
    assert_int_equal(got, 1);
    assert_int_equal(ids[0], 100);
    hop_channel_close(ch);
}

/* A damaged length, whether it points at a later record, inside one, at
 * the end of the file or beyond it: the header crc rejects it, the rest of
 * that file is skipped and counted, no message has wrong bytes, and the
 * counts end at zero. (Written when a record header had no checksum of its
 * own and a damaged length was followed; kept as a guard.) */
static void test_corrupt_length_on_disk(void **state)
{
    tu_dir *d = *state;
    const size_t len = 52;
    static const struct {
        int byte;
        unsigned char mask;
    } flips[] = {
        {0, 0x40}, /* length 116 */
        {0, 0x80}, /* length 180 */
        {1, 0x01}, /* length 308 */
        {0, 0x01}, /* length 53 */
        {0, 0x08}, /* length 60 */
        {2, 0x01}, /* beyond the file */
    };
    for (size_t variant = 0; variant < sizeof flips / sizeof flips[0]; variant++) {
        hop_limits l = tu_limits(2 * hop_message_cost(len), record_offset(len, 6), SIZE_MAX, 1000);
        hop_channel *ch = tu_open(d, l);
        const int total = 20; /* 2 in memory, 3 files of 6 */
        for (uint64_t id = 0; id < (uint64_t)total; id++)
            assert_int_equal(send_id(ch, id, len), HOP_OK);
        uint64_t seqs[8];
        assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 3);
        char path[PATH_MAX];
        qfile_path(d, seqs[1], path);
        tu_flip_byte(path, record_offset(len, 1) + 4 + flips[variant].byte, flips[variant].mask);

        uint64_t ids[40];
        int io_errors;
        int got = drain(ch, ids, 40, &io_errors);
        hop_stats s = tu_stats(ch);
        for (int i = 1; i < got; i++)
            assert_true(ids[i] > ids[i - 1]);
        assert_true(io_errors >= 1);
        if ((uint64_t)got + s.records_corrupt_total != (uint64_t)total)
            fail_msg("variant %zu: %d received + %llu counted corrupt != %d sent (messages %zu, "
                     "disk_messages %zu, disk_files %zu)",
                     variant, got, (unsigned long long)s.records_corrupt_total, total, s.messages,
                     s.disk_messages, s.disk_files);
        assert_int_equal(s.messages, 0);
        assert_int_equal(s.disk_messages, 0);
        assert_int_equal(s.disk_files, 0);
        /* the channel is whole again: a send goes to memory */
        assert_int_equal(send_id(ch, 1000, len), HOP_OK);
        s = tu_stats(ch);
        assert_int_equal(s.memory_messages, 1);
        assert_int_equal(s.messages, 1);
        got = drain(ch, ids, 40, &io_errors);
        assert_int_equal(got, 1);
        hop_channel_close(ch);
    }
}

/* Descriptors open in this process. */
static int open_fds(void)
{
    return tu_count_entries("/proc/self/fd") - 1; /* minus the one reading it */
}

/* A channel keeps its directory open and no more than the files it is
 * writing and reading; everything is released by draining and closing. */
static void test_no_descriptor_leak(void **state)
{
    tu_dir *d = *state;
    int base = open_fds();
    hop_channel *ch = tu_open(d, tu_limits(hop_message_cost(50), 300, SIZE_MAX, 1000));
    assert_int_equal(open_fds(), base + 2); /* the directory and the journal */
    expect e;
    expect_init(&e, 1000);
    for (uint64_t id = 0; id < 200; id++)
        send_ok(ch, &e, id, 50);                   /* about 50 files */
    assert_int_equal(tu_stats(ch).disk_files, 40); /* 5 records a file */
    assert_true(open_fds() <= base + 3);           /* sealed files are closed */
    for (int i = 0; i < 100; i++)
        recv_expected(ch, &e);
    assert_true(open_fds() <= base + 5);
    recv_all_expected(ch, &e);
    assert_int_equal(open_fds(), base + 2);
    for (uint64_t id = 0; id < 50; id++)
        send_ok(ch, &e, id, 50);
    hop_channel_close(ch); /* with files open for writing and reading */
    assert_int_equal(open_fds(), base);
    expect_free(&e);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_files_appear_and_are_deleted), T(test_message_bigger_than_file),
        T(test_corrupt_record_on_disk),       T(test_unframed_record_on_disk),
        T(test_corrupt_length_on_disk),       T(test_no_descriptor_leak),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
