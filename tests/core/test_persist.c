/* test_persist.c - tests of core/src/persist.c: what a channel finds when
 * it opens on the files of an earlier run. Clean closes and crashes (a
 * channel abandoned with hop__channel_abandon(), which writes nothing, as
 * a killed process would) followed by an open; torn tails, damaged bytes in
 * queue files and in the journal; messages consumed in and out of order,
 * held at close, or given back. Each test runs in its own temp dir; the
 * channel is <dir>/ch. */
#include "test_util.h"

#include "channel.h"
#include "journal.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define FIRST_SEQ ((uint64_t)1 << 62)

static void send_id(hop_channel *ch, uint64_t id, size_t len)
{
    static unsigned char buf[1 << 16];
    assert_true(len <= sizeof buf && len >= 8);
    tu_fill_id(buf, len, id);
    hop_err err = hop_send(ch, buf, len);
    if (err != HOP_OK)
        fail_msg("send of id %llu: %s", (unsigned long long)id, hop_err_name(err));
}

/* Take the next message, which must be id (intact); the caller frees it. */
static void *take(hop_channel *ch, uint64_t id)
{
    void *data = NULL;
    size_t len = 0;
    hop_err err = hop_recv(ch, 0, &data, &len);
    if (err != HOP_OK)
        fail_msg("recv, expecting id %llu: %s", (unsigned long long)id, hop_err_name(err));
    if (tu_id_of(data, len) != id)
        fail_msg("recv: got id %llu, expected %llu", (unsigned long long)tu_id_of(data, len),
                 (unsigned long long)id);
    return data;
}

static void recv_id(hop_channel *ch, uint64_t id)
{
    hop_free(take(ch, id));
}

static void expect_empty(hop_channel *ch)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    assert_int_equal(tu_stats(ch).messages, 0);
}

/* The path of the only (or first) queue file, and its size. */
static uint64_t first_file(const tu_dir *d, char path[PATH_MAX])
{
    uint64_t seqs[8], sizes[8];
    assert_true(tu_list_qfiles(d->chan, seqs, sizes, 8) >= 1);
    char name[32];
    snprintf(name, sizeof name, "%020llu.hq", (unsigned long long)seqs[0]);
    tu_join(path, d->chan, name);
    return sizes[0];
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

/* All on disk, one big file. */
static hop_limits disk_limits(void)
{
    return tu_limits(0, 1 << 20, 8, 1000);
}

/* A new channel numbers its first file 2^62; a close with messages in
 * memory writes them to the number below the oldest file. */
static void test_file_numbers(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(2 * hop_message_cost(100), 1 << 20, 8, 1000);
    hop_channel *ch = tu_open(d, l);
    for (uint64_t id = 0; id < 4; id++)
        send_id(ch, id, 100); /* 0, 1 in memory; 2, 3 on disk */
    uint64_t seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 1);
    assert_true(seqs[0] == FIRST_SEQ);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 2);
    assert_true(seqs[0] == FIRST_SEQ - 1);
    assert_true(seqs[1] == FIRST_SEQ);
    ch = tu_open(d, l);
    for (uint64_t id = 0; id < 4; id++)
        recv_id(ch, id);
    expect_empty(ch);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Consumed messages do not come back, after a close or a crash. */
static void test_consumed_stay_consumed(void **state)
{
    tu_dir *d = *state;
    for (int crash = 0; crash < 2; crash++) {
        hop_channel *ch = tu_open(d, disk_limits());
        for (uint64_t id = 0; id < 10; id++)
            send_id(ch, id, 50);
        for (uint64_t id = 0; id < 4; id++)
            recv_id(ch, id);
        if (crash)
            hop__channel_abandon(ch);
        else
            assert_int_equal(hop_channel_close(ch), HOP_OK);
        ch = tu_open(d, disk_limits());
        assert_int_equal(tu_stats(ch).recovered_total, 6);
        for (uint64_t id = 4; id < 10; id++)
            recv_id(ch, id);
        expect_empty(ch);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
    }
}

/* A crash loses what was only in memory and keeps every record on disk. */
static void test_crash_keeps_disk_loses_memory(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(3 * hop_message_cost(50), 1 << 20, 8, 1000);
    hop_channel *ch = tu_open(d, l);
    for (uint64_t id = 0; id < 8; id++)
        send_id(ch, id, 50); /* 0..2 in memory, 3..7 on disk */
    assert_int_equal(tu_stats(ch).memory_messages, 3);
    hop__channel_abandon(ch);
    ch = tu_open(d, l);
    for (uint64_t id = 3; id < 8; id++)
        recv_id(ch, id);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Consumption out of order: what was freed stays consumed, what was still
 * held comes back (first), after a crash. */
static void test_out_of_order_consumption(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, disk_limits());
    for (uint64_t id = 0; id < 6; id++)
        send_id(ch, id, 64);
    void *a = take(ch, 0), *b = take(ch, 1), *c = take(ch, 2);
    assert_int_equal(tu_stats(ch).in_flight, 3);
    hop_free(c);
    hop_free(a);
    assert_int_equal(tu_stats(ch).in_flight, 1);
    hop__channel_abandon(ch);
    hop_free(b); /* after the crash: only memory */
    ch = tu_open(d, disk_limits());
    assert_int_equal(tu_stats(ch).recovered_total, 4);
    recv_id(ch, 1);
    for (uint64_t id = 3; id < 6; id++)
        recv_id(ch, id);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* At a clean close, a message read from disk and still held comes back
 * first, as if given back; one given back and waiting in memory too. Both
 * are written once. */
static void test_held_and_given_back_at_close(void **state)
{
    tu_dir *d = *state;
    hop_limits l = disk_limits();
    hop_channel *ch = tu_open(d, l);
    for (uint64_t id = 0; id < 5; id++)
        send_id(ch, id, 80);
    void *held = take(ch, 0);
    void *back = take(ch, 1);
    size_t len = 80;
    assert_int_equal(hop_requeue(ch, back, len), HOP_OK);
    assert_int_equal(tu_stats(ch).in_flight, 1);
    tu_log_capture();
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_true(tu_log_contains("2 message(s) written to disk at close"));
    hop_free(held); /* after close: frees memory, consumes nothing */

    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).recovered_total, 5);
    for (uint64_t id = 0; id < 5; id++)
        recv_id(ch, id);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    ch = tu_open(d, l);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* A torn last record, cut anywhere in its header or payload, or junk after
 * the last record, is cut off; every record before it is recovered. */
static void test_torn_tail_cut(void **state)
{
    tu_dir *d = *state;
    static const uint64_t cuts[] = {1, 5, 15, 16, 17, 60, 115};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0] + 1; k++) {
        hop_channel *ch = tu_open(d, disk_limits());
        for (uint64_t id = 0; id < 5; id++)
            send_id(ch, id, 100); /* records of 116 bytes */
        hop__channel_abandon(ch);
        char path[PATH_MAX];
        uint64_t size = first_file(d, path);
        uint64_t whole = TU_FILE_HEADER + 4 * TU_RECORD_SIZE(100);
        if (k < sizeof cuts / sizeof cuts[0]) {
            assert_int_equal(truncate(path, (off_t)(size - cuts[k])), 0);
        } else { /* a whole last record, then junk: only the junk goes */
            FILE *f = fopen(path, "ab");
            assert_non_null(f);
            fwrite("\0\0\0junk after the last record", 1, 30, f);
            fclose(f);
            whole = size;
        }
        tu_log_capture();
        ch = tu_open(d, disk_limits());
        assert_true(tu_log_contains("torn tail"));
        assert_true(file_size(path) == whole);
        uint64_t n = k < sizeof cuts / sizeof cuts[0] ? 4 : 5;
        assert_int_equal(tu_stats(ch).recovered_total, n);
        assert_int_equal(tu_stats(ch).records_corrupt_total, 0);
        for (uint64_t id = 0; id < n; id++)
            recv_id(ch, id);
        send_id(ch, 99, 100); /* appended to the recovered file */
        assert_int_equal(tu_count_qfiles(d->chan), 1);
        recv_id(ch, 99);
        expect_empty(ch);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
        assert_int_equal(tu_count_qfiles(d->chan), 0);
    }
}

/* A flipped byte in a payload in the middle of a file: that message is
 * skipped when its turn comes (logged, counted, never handed out); the
 * others arrive intact. */
static void test_flipped_payload_byte(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, disk_limits());
    for (uint64_t id = 0; id < 5; id++)
        send_id(ch, id, 100);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    char path[PATH_MAX];
    first_file(d, path);
    tu_flip_byte(path, TU_FILE_HEADER + 2 * TU_RECORD_SIZE(100) + 16 + 40, 0x10);
    tu_log_capture();
    ch = tu_open(d, disk_limits());
    recv_id(ch, 0);
    recv_id(ch, 1);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_IO);
    assert_null(data);
    assert_true(tu_log_contains("corrupt record at offset"));
    recv_id(ch, 3);
    recv_id(ch, 4);
    expect_empty(ch);
    assert_int_equal(tu_stats(ch).records_corrupt_total, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* A flipped byte in a record header in the middle: the recovery finds the
 * next valid record and skips the damaged bytes (logged, counted at open);
 * the records after it are not lost. */
static void test_flipped_header_byte_resyncs(void **state)
{
    tu_dir *d = *state;
    for (int field = 0; field < 4; field++) { /* magic, length, payload crc, header crc */
        hop_channel *ch = tu_open(d, disk_limits());
        for (uint64_t id = 0; id < 6; id++)
            send_id(ch, id, 100);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
        char path[PATH_MAX];
        first_file(d, path);
        tu_flip_byte(path, TU_FILE_HEADER + 2 * TU_RECORD_SIZE(100) + 4 * (uint64_t)field + 1,
                     0x04);
        tu_log_capture();
        ch = tu_open(d, disk_limits());
        assert_true(tu_log_contains("damaged byte(s) at offset"));
        hop_stats s = tu_stats(ch);
        assert_int_equal(s.records_corrupt_total, 1);
        assert_int_equal(s.recovered_total, 5);
        recv_id(ch, 0);
        recv_id(ch, 1);
        for (uint64_t id = 3; id < 6; id++)
            recv_id(ch, id);
        expect_empty(ch);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
        assert_int_equal(tu_count_qfiles(d->chan), 0);
    }
}

/* A fully consumed file that a crash left on disk (removed after its last
 * record was journalled) is recognised as consumed and removed at open. */
static void test_consumed_file_left_behind(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, TU_FILE_HEADER + 3 * TU_RECORD_SIZE(40), 8, 1000);
    hop_channel *ch = tu_open(d, l);
    for (uint64_t id = 0; id < 6; id++)
        send_id(ch, id, 40); /* two files of three */
    char path[PATH_MAX], copy[PATH_MAX];
    uint64_t size = first_file(d, path);
    unsigned char *bytes = malloc(size);
    assert_non_null(bytes);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(bytes, 1, size, f), size);
    fclose(f);
    for (uint64_t id = 0; id < 4; id++)
        recv_id(ch, id);
    assert_false(tu_exists(path));
    hop__channel_abandon(ch);
    tu_write_file(path, bytes, size); /* as if the removal had not happened */
    (void)copy;
    free(bytes);
    ch = tu_open(d, l);
    assert_false(tu_exists(path));
    recv_id(ch, 4);
    recv_id(ch, 5);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* A damaged journal entry can only bring a consumed message back, never
 * lose one: exactly the message it named comes again. */
static void test_damaged_journal_entry(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, disk_limits());
    for (uint64_t id = 0; id < 5; id++)
        send_id(ch, id, 64);
    for (uint64_t id = 0; id < 3; id++)
        recv_id(ch, id);
    hop__channel_abandon(ch);
    /* the journal: a header, no START (the file is newer than the last
     * rewrite), and one DONE entry per consumed record */
    char path[PATH_MAX];
    tu_join(path, d->chan, HOP__JOURNAL_NAME);
    assert_true(file_size(path) == HOP__JOURNAL_HEADER_SIZE + 3 * HOP__JOURNAL_ENTRY_SIZE);
    tu_flip_byte(path, HOP__JOURNAL_HEADER_SIZE + HOP__JOURNAL_ENTRY_SIZE + 12, 0x01);
    tu_log_capture();
    ch = tu_open(d, disk_limits());
    assert_true(tu_log_contains("journal: 1 damaged entry ignored"));
    recv_id(ch, 1);
    recv_id(ch, 3);
    recv_id(ch, 4);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Queue files with a journal that has no entry to read (missing, or its
 * header damaged) are recovered whole. Found by tests/fuzz/fuzz_queue_file:
 * the recovery then took an offset of the journal's NULL array of DONE
 * entries, undefined behaviour that clang's UBSan reports. */
static void test_journal_missing_or_unreadable(void **state)
{
    tu_dir *d = *state;
    char path[PATH_MAX];
    tu_join(path, d->chan, HOP__JOURNAL_NAME);
    for (int damaged = 0; damaged < 2; damaged++) {
        hop_channel *ch = tu_open(d, disk_limits());
        for (uint64_t id = 0; id < 3; id++)
            send_id(ch, id, 64);
        hop__channel_abandon(ch);
        if (damaged)
            tu_flip_byte(path, 7, 0xff); /* the version */
        else
            assert_int_equal(unlink(path), 0);
        ch = tu_open(d, disk_limits());
        for (uint64_t id = 0; id < 3; id++)
            recv_id(ch, id);
        expect_empty(ch);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
    }
}

/* Many messages consumed while an older one is held: the journal is
 * rewritten as it grows, stays bounded, and still says exactly what is
 * consumed. */
static void test_journal_rewritten_while_running(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 64 * 1024, SIZE_MAX, 1000);
    hop_channel *ch = tu_open(d, l);
    enum { N = 20000 };
    for (uint64_t id = 0; id < N; id++)
        send_id(ch, id, 8);
    void *held = take(ch, 0);
    char path[PATH_MAX];
    tu_join(path, d->chan, HOP__JOURNAL_NAME);
    uint64_t largest = 0;
    for (uint64_t id = 1; id < N - 5; id++) {
        recv_id(ch, id);
        uint64_t size = file_size(path);
        if (size > largest)
            largest = size;
    }
    /* rewritten at 256 KiB of appends; a rewrite names every record
     * consumed beyond the held one, so it grows with them */
    assert_true(largest < 2 * 1024 * 1024);
    assert_true(file_size(path) < largest);
    hop__channel_abandon(ch);
    hop_free(held);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).recovered_total, 6);
    recv_id(ch, 0);
    for (uint64_t id = N - 5; id < N; id++)
        recv_id(ch, id);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Reopened with smaller limits: recovered files count against
 * max_disk_files, so sends are refused until enough are drained; memory
 * takes sends again once the disk part is empty. */
static void test_reopen_with_smaller_limits(void **state)
{
    tu_dir *d = *state;
    hop_limits big = tu_limits(0, TU_FILE_HEADER + 2 * TU_RECORD_SIZE(50), 8, 1000);
    hop_channel *ch = tu_open(d, big);
    for (uint64_t id = 0; id < 8; id++)
        send_id(ch, id, 50); /* four files */
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    hop_limits small =
        tu_limits(hop_message_cost(50), TU_FILE_HEADER + 2 * TU_RECORD_SIZE(50), 2, 1000);
    ch = tu_open(d, small);
    assert_int_equal(tu_stats(ch).disk_files, 4);
    unsigned char buf[50];
    tu_fill_id(buf, 50, 100);
    assert_int_equal(hop_send(ch, buf, 50), HOP_FULL);
    for (uint64_t id = 0; id < 6; id++)
        recv_id(ch, id);
    send_id(ch, 8, 50); /* one file left: a new one is allowed */
    recv_id(ch, 6);
    recv_id(ch, 7);
    recv_id(ch, 8);
    send_id(ch, 9, 50); /* memory */
    assert_int_equal(tu_stats(ch).memory_messages, 1);
    recv_id(ch, 9);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Restarts in a loop with messages moving between memory and disk: every
 * message comes out once, in order, whatever mix of closes and crashes
 * (crashes only lose what memory held). */
static void test_restart_loop(void **state)
{
    tu_dir *d = *state;
    hop_limits l =
        tu_limits(4 * hop_message_cost(30), TU_FILE_HEADER + 5 * TU_RECORD_SIZE(30), 16, 1000);
    uint64_t next_send = 0, next_recv = 0;
    for (int round = 0; round < 40; round++) {
        hop_channel *ch = tu_open(d, l);
        for (int i = 0; i < 7; i++)
            send_id(ch, next_send++, 30);
        for (int i = 0; i < 6 && next_recv < next_send; i++)
            recv_id(ch, next_recv++);
        assert_int_equal(tu_stats(ch).messages, next_send - next_recv);
        assert_int_equal(hop_channel_close(ch), HOP_OK);
    }
    hop_channel *ch = tu_open(d, l);
    while (next_recv < next_send)
        recv_id(ch, next_recv++);
    expect_empty(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
}

/* A channel directory this process may not read: HOP_IO with EACCES, and
 * nothing in it changed. Root reads anything, so it is skipped there. */
static void test_unreadable_directory(void **state)
{
    tu_dir *d = *state;
    if (geteuid() == 0)
        skip();
    hop_channel *ch = tu_open(d, disk_limits());
    send_id(ch, 1, 20);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(chmod(d->chan, 0), 0);
    hop_limits l = disk_limits();
    errno = 0;
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &ch), HOP_IO);
    assert_int_equal(errno, EACCES);
    assert_int_equal(chmod(d->chan, 0700), 0);
    ch = tu_open(d, l);
    recv_id(ch, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
        T(test_file_numbers),
        T(test_consumed_stay_consumed),
        T(test_crash_keeps_disk_loses_memory),
        T(test_out_of_order_consumption),
        T(test_held_and_given_back_at_close),
        T(test_torn_tail_cut),
        T(test_flipped_payload_byte),
        T(test_flipped_header_byte_resyncs),
        T(test_consumed_file_left_behind),
        T(test_damaged_journal_entry),
        T(test_journal_missing_or_unreadable),
        T(test_journal_rewritten_while_running),
        T(test_reopen_with_smaller_limits),
        T(test_restart_loop),
        T(test_unreadable_directory),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
