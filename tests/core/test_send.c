/* test_send.c - tests of core/src/send.c through the public API: the
 * memory bound, full at the limits (memory, files, rotation), too big and
 * empty messages, messages bigger than memory, and batches (to memory,
 * across files, all or nothing). Each test runs in its own temp dir; the
 * channel is <dir>/ch. */
#include "expect.h"

#include <stdlib.h>
#include <string.h>

/* The memory_bytes gauge never passes the limit while far more goes
 * through the channel. */
static void test_memory_bound(void **state)
{
    tu_dir *d = *state;
    const size_t limit = 10000;
    hop_channel *ch = tu_open(d, tu_limits(limit, 4096, SIZE_MAX, 3000));
    expect e;
    expect_init(&e, 10000);
    tu_rng rng = {17};
    uint64_t id = 0, bytes_sent = 0;
    for (int op = 0; op < 4000; op++) {
        if (tu_range(&rng, 0, 99) < 60) {
            size_t len = (size_t)tu_range(&rng, 8, 3000);
            send_ok(ch, &e, id++, len);
            bytes_sent += len;
        } else if (expect_size(&e) > 0) {
            recv_expected(ch, &e);
        }
        hop_stats s = tu_stats(ch);
        if (s.memory_bytes > limit)
            fail_msg("op %d: memory_bytes %zu above the limit %zu", op, s.memory_bytes, limit);
    }
    assert_true(bytes_sent > 100 * limit);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

/* ---- full ---- */

/* HOP_FULL exactly when the last allowed file is sealed (the rotation
 * boundary): nothing of the refused message is stored, the caller's buffer
 * is intact, and once a file drains sends are accepted again. Every
 * accepted message comes back once, in order. The hopper crate lost data at
 * this boundary. */
static void full_at_rotation(const tu_dir *d, size_t max_files, long delta)
{
    const size_t len = 100, rec = TU_RECORD_SIZE(100);
    const size_t mem_msgs = 2;
    size_t file_bytes = (size_t)((long)(TU_FILE_HEADER + 3 * rec) + delta);
    size_t per_file = delta > 0 ? 4 : 3; /* sealed once size >= file_bytes */
    hop_channel *ch =
        tu_open(d, tu_limits(mem_msgs * hop_message_cost(len), file_bytes, max_files, 1000));
    expect e;
    expect_init(&e, 10000);
    uint64_t id = 0;
    size_t capacity = mem_msgs + max_files * per_file;
    for (size_t i = 0; i < capacity; i++)
        send_ok(ch, &e, id++, len);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.disk_files, max_files);
    assert_int_equal(s.messages, capacity);

    unsigned char buf[100], copy[100];
    tu_fill_id(buf, sizeof buf, 999999);
    memcpy(copy, buf, sizeof buf);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(hop_send(ch, buf, sizeof buf), HOP_FULL);
        assert_memory_equal(buf, copy, sizeof buf);
    }
    s = tu_stats(ch);
    assert_int_equal(s.rejected_full_total, 3);
    assert_int_equal(s.messages, capacity);
    assert_int_equal(s.sent_total, capacity);
    assert_int_equal(s.disk_files, max_files);
    assert_int_equal(qfiles(d, (uint64_t[1000]){0}, NULL), (int)max_files);

    /* receive one by one: sends stay FULL until the oldest file is drained */
    for (size_t k = 1; k <= mem_msgs + per_file; k++) {
        recv_expected(ch, &e);
        hop_err err = send_id(ch, id, len);
        if (k < mem_msgs + per_file) {
            if (err != HOP_FULL)
                fail_msg("after %zu receives: %s, expected FULL", k, hop_err_name(err));
        } else {
            if (err != HOP_OK)
                fail_msg("after the first file drained: %s, expected OK", hop_err_name(err));
            expect_push(&e, id++, len);
        }
    }
    /* fill up to FULL again, then mix sends and receives for a while */
    hop_err err;
    while ((err = send_id(ch, id, len)) == HOP_OK)
        expect_push(&e, id++, len);
    assert_int_equal(err, HOP_FULL);
    tu_rng rng = {(uint64_t)max_files * 10 + (uint64_t)(delta + 1)};
    for (int op = 0; op < 300; op++) {
        if (tu_range(&rng, 0, 1)) {
            err = send_id(ch, id, len);
            if (err == HOP_OK)
                expect_push(&e, id++, len);
            else
                assert_int_equal(err, HOP_FULL);
        } else if (expect_size(&e) > 0) {
            recv_expected(ch, &e);
        }
        s = tu_stats(ch);
        assert_int_equal(s.messages, expect_size(&e));
        assert_true(s.disk_files <= max_files);
    }
    recv_all_expected(ch, &e);
    assert_int_equal(qfiles(d, (uint64_t[1000]){0}, NULL), 0);
    expect_free(&e);
    hop_channel_close(ch);
}

static void test_full_at_rotation_boundary(void **state)
{
    tu_dir *d = *state;
    for (size_t files = 1; files <= 3; files++)
        for (long delta = -1; delta <= 1; delta++)
            full_at_rotation(d, files, delta);
}

/* A message that is refused keeps nothing: not in memory, not on disk. */
static void test_full_with_big_message_keeps_nothing(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(hop_message_cost(100), 200, 1, 100000));
    expect e;
    expect_init(&e, 100);
    send_ok(ch, &e, 1, 100); /* memory */
    send_ok(ch, &e, 2, 300); /* file 1, sealed at once */
    static unsigned char big[50000], copy[50000];
    tu_fill_id(big, sizeof big, 3);
    memcpy(copy, big, sizeof big);
    hop_stats before = tu_stats(ch);
    assert_int_equal(hop_send(ch, big, sizeof big), HOP_FULL);
    assert_memory_equal(big, copy, sizeof big);
    hop_stats after = tu_stats(ch);
    assert_int_equal(after.disk_bytes, before.disk_bytes);
    assert_int_equal(after.memory_bytes, before.memory_bytes);
    uint64_t sizes[4], seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 4), 1);
    assert_true(sizes[0] == TU_FILE_HEADER + TU_RECORD_SIZE(300));
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

/* max_disk_files 0: memory only, FULL when memory is. */
static void test_memory_only_full(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(3 * hop_message_cost(10), 0, 0, 10);
    hop_channel *ch = NULL;
    assert_int_equal(hop_channel_open(NULL, "mem", &l, &ch), HOP_OK);
    expect e;
    expect_init(&e, 100);
    for (uint64_t id = 0; id < 3; id++)
        send_ok(ch, &e, id, 10);
    unsigned char buf[10], copy[10];
    tu_fill_id(buf, sizeof buf, 77);
    memcpy(copy, buf, sizeof buf);
    assert_int_equal(hop_send(ch, buf, sizeof buf), HOP_FULL);
    assert_memory_equal(buf, copy, sizeof buf);
    /* a smaller one does not fit either */
    assert_int_equal(hop_send(ch, buf, 0), HOP_FULL);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.rejected_full_total, 2);
    assert_int_equal(s.messages, 3);
    assert_int_equal(s.disk_files, 0);
    recv_expected(ch, &e);
    send_ok(ch, &e, 3, 10);
    assert_int_equal(send_id(ch, 4, 10), HOP_FULL);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);

    /* memory only with a data_dir: nothing on disk until the close */
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &ch), HOP_OK);
    for (uint64_t id = 0; id < 3; id++)
        assert_int_equal(send_id(ch, id, 10), HOP_OK);
    assert_int_equal(send_id(ch, 3, 10), HOP_FULL);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    hop_channel_close(ch);
    assert_int_equal(tu_count_qfiles(d->chan), 1);
}

static void test_too_big(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(100000, 100000, 4, 100));
    static unsigned char buf[101], copy[101];
    tu_fill_id(buf, sizeof buf, 5);
    memcpy(copy, buf, sizeof buf);
    assert_int_equal(hop_send(ch, buf, 101), HOP_TOO_BIG);
    assert_int_equal(hop_send(ch, buf, SIZE_MAX), HOP_TOO_BIG);
    assert_memory_equal(buf, copy, sizeof buf);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.sent_total, 0);
    expect e;
    expect_init(&e, 10);
    send_ok(ch, &e, 1, 100);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

/* ---- sizes at the edges ---- */

static void recv_empty(hop_channel *ch)
{
    void *data = NULL;
    size_t len = 99;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(len, 0);
    assert_non_null(data);
    hop_free(data);
}

/* 0-byte messages, in memory and on disk, between ordinary ones. */
static void test_empty_messages(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(2 * hop_message_cost(0), 64, SIZE_MAX, 100));
    assert_int_equal(hop_send(ch, NULL, 0), HOP_OK);
    assert_int_equal(hop_send(ch, "x", 0), HOP_OK);
    assert_int_equal(hop_send(ch, NULL, 0), HOP_OK); /* disk */
    assert_int_equal(send_id(ch, 1, 30), HOP_OK);
    assert_int_equal(hop_send(ch, NULL, 0), HOP_OK);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 2);
    assert_int_equal(s.disk_messages, 3);
    assert_int_equal(s.disk_bytes, 2 * TU_FILE_HEADER + 2 * TU_RECORD_SIZE(0) + TU_RECORD_SIZE(30));
    recv_empty(ch);
    recv_empty(ch);
    recv_empty(ch);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), 1);
    hop_free(data);
    recv_empty(ch);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    assert_int_equal(hop_send(ch, NULL, 1), HOP_INVALID);
    hop_channel_close(ch);
}

/* A message bigger than memory_bytes goes to disk even when memory is
 * empty, and what follows it queues behind it. */
static void test_message_bigger_than_memory(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(3 * hop_message_cost(100), 1 << 20, 4, 100000));
    expect e;
    expect_init(&e, 10);
    send_ok(ch, &e, 1, 10000);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.disk_messages, 1);
    send_ok(ch, &e, 2, 100); /* fits in memory, but must not overtake */
    s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.disk_messages, 2);
    recv_all_expected(ch, &e);
    send_ok(ch, &e, 3, 100); /* disk drained: memory again */
    assert_int_equal(tu_stats(ch).memory_messages, 1);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

/* ---- batches ---- */

/* A batch of messages ids [from, from + n) of len bytes each; the buffers
 * are static, one per message. */
static hop_buf *batch_of(uint64_t from, size_t n, size_t len)
{
    static unsigned char bufs[64][512];
    static hop_buf msgs[64];
    assert_true(n <= 64 && len <= 512);
    for (size_t i = 0; i < n; i++) {
        tu_fill_id(bufs[i], len, from + i);
        msgs[i] = (hop_buf){bufs[i], len};
    }
    return msgs;
}

/* A batch that fits memory goes there whole, in order, and nothing lands
 * between its messages. */
static void test_batch_to_memory(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(10 * hop_message_cost(50), 1000, 4, 1000));
    expect e;
    expect_init(&e, 20);
    send_ok(ch, &e, 0, 50);
    assert_int_equal(hop_send_batch(ch, batch_of(1, 5, 50), 5), HOP_OK);
    for (uint64_t id = 1; id < 6; id++)
        expect_push(&e, id, 50);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 6);
    assert_int_equal(s.sent_total, 6);
    assert_int_equal(hop_send_batch(ch, NULL, 0), HOP_OK);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

/* A batch that does not fit memory goes to queue files whole, across as
 * many new files as it needs, in order. */
static void test_batch_to_disk_across_files(void **state)
{
    tu_dir *d = *state;
    size_t file_bytes = TU_FILE_HEADER + 3 * TU_RECORD_SIZE(100);
    hop_channel *ch = tu_open(d, tu_limits(2 * hop_message_cost(100), file_bytes, 8, 1000));
    expect e;
    expect_init(&e, 40);
    send_ok(ch, &e, 0, 100); /* memory */
    assert_int_equal(hop_send_batch(ch, batch_of(1, 10, 100), 10), HOP_OK);
    for (uint64_t id = 1; id < 11; id++)
        expect_push(&e, id, 100);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 1);
    assert_int_equal(s.disk_messages, 10);
    assert_int_equal(s.disk_files, 4); /* 3 + 3 + 3 + 1 */
    assert_int_equal(tu_count_qfiles(d->chan), 4);
    send_ok(ch, &e, 11, 100); /* appended to the fourth, behind the batch */
    assert_int_equal(tu_stats(ch).disk_files, 4);
    recv_all_expected(ch, &e);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    expect_free(&e);
    hop_channel_close(ch);
}

/* All or nothing: a batch that needs more files than allowed, or holds a
 * message that is too big, stores nothing. */
static void test_batch_all_or_nothing(void **state)
{
    tu_dir *d = *state;
    size_t file_bytes = TU_FILE_HEADER + 3 * TU_RECORD_SIZE(100);
    hop_channel *ch = tu_open(d, tu_limits(0, file_bytes, 2, 200));
    expect e;
    expect_init(&e, 40);
    send_ok(ch, &e, 0, 100);
    hop_stats before = tu_stats(ch);
    assert_int_equal(hop_send_batch(ch, batch_of(1, 6, 100), 6), HOP_FULL); /* 1 + 6 > 6 */
    hop_stats after = tu_stats(ch);
    assert_int_equal(after.messages, before.messages);
    assert_int_equal(after.disk_files, before.disk_files);
    assert_true(after.disk_bytes == before.disk_bytes);
    assert_int_equal(after.rejected_full_total, before.rejected_full_total + 1);
    assert_int_equal(tu_count_qfiles(d->chan), 1);
    hop_buf *msgs = batch_of(1, 3, 100);
    static unsigned char big[201];
    msgs[1] = (hop_buf){big, sizeof big};
    assert_int_equal(hop_send_batch(ch, msgs, 3), HOP_TOO_BIG);
    msgs[1] = (hop_buf){NULL, 5};
    assert_int_equal(hop_send_batch(ch, msgs, 3), HOP_INVALID);
    assert_int_equal(tu_stats(ch).messages, 1);
    assert_int_equal(hop_send_batch(ch, batch_of(1, 5, 100), 5), HOP_OK); /* exactly fits */
    for (uint64_t id = 1; id < 6; id++)
        expect_push(&e, id, 100);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);

    /* memory only: all in memory, or refused */
    ch = tu_open(d, tu_limits(3 * hop_message_cost(100), 0, 0, 100));
    assert_int_equal(hop_send_batch(ch, batch_of(0, 4, 100), 4), HOP_FULL);
    assert_int_equal(tu_stats(ch).messages, 0);
    assert_int_equal(hop_send_batch(ch, batch_of(0, 3, 100), 3), HOP_OK);
    assert_int_equal(tu_stats(ch).messages, 3);
    hop_channel_close(ch);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_memory_bound),
        T(test_full_at_rotation_boundary),
        T(test_full_with_big_message_keeps_nothing),
        T(test_memory_only_full),
        T(test_too_big),
        T(test_empty_messages),
        T(test_message_bigger_than_memory),
        T(test_batch_to_memory),
        T(test_batch_to_disk_across_files),
        T(test_batch_all_or_nothing),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
