/* test_channel.c - tests of core/src/channel.c through the public API: order
 * across memory and disk, the queue files on disk, the limits, requeue,
 * timeouts, close, opening rules and corrupt records. Each test runs in its
 * own temp dir; the channel is <dir>/ch. */
#include "test_util.h"

#include "queue_file.h"
#include "record.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---- */

/* What the channel should hold, oldest first: message ids and lengths. */
typedef struct expect {
    uint64_t *id;
    size_t *len;
    size_t cap, head, tail; /* [head, tail) */
} expect;

static void expect_init(expect *e, size_t cap)
{
    e->id = calloc(2 * cap, sizeof *e->id);
    e->len = calloc(2 * cap, sizeof *e->len);
    assert_non_null(e->id);
    assert_non_null(e->len);
    e->cap = 2 * cap;
    e->head = e->tail = cap; /* room to push at the head too */
}

static void expect_free(expect *e)
{
    free(e->id);
    free(e->len);
}

static size_t expect_size(const expect *e)
{
    return e->tail - e->head;
}

static void expect_push(expect *e, uint64_t id, size_t len)
{
    assert_true(e->tail < e->cap);
    e->id[e->tail] = id;
    e->len[e->tail++] = len;
}

/* Send message id of len bytes (len >= 8 so the id is recoverable). */
static hop_err send_id(hop_channel *ch, uint64_t id, size_t len)
{
    static unsigned char buf[1 << 18];
    assert_true(len <= sizeof buf);
    tu_fill_id(buf, len, id);
    return hop_send(ch, buf, len);
}

static void send_ok(hop_channel *ch, expect *e, uint64_t id, size_t len)
{
    hop_err err = send_id(ch, id, len);
    if (err != HOP_OK)
        fail_msg("send of id %llu (%zu bytes): %s", (unsigned long long)id, len, hop_err_name(err));
    if (e)
        expect_push(e, id, len);
}

/* Receive the next message, which must be the head of e. */
static void recv_expected(hop_channel *ch, expect *e)
{
    assert_true(expect_size(e) > 0);
    void *data = NULL;
    size_t len = 0;
    hop_err err = hop_recv(ch, 0, &data, &len);
    if (err != HOP_OK)
        fail_msg("recv, expecting id %llu: %s", (unsigned long long)e->id[e->head],
                 hop_err_name(err));
    uint64_t id = tu_id_of(data, len);
    if (id != e->id[e->head] || len != e->len[e->head])
        fail_msg("recv: got id %llu (%zu bytes), expected id %llu (%zu bytes)",
                 (unsigned long long)id, len, (unsigned long long)e->id[e->head], e->len[e->head]);
    e->head++;
    hop_free(data);
}

static void recv_all_expected(hop_channel *ch, expect *e)
{
    while (expect_size(e) > 0)
        recv_expected(ch, e);
    void *data = NULL;
    size_t len = 0;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.memory_bytes, 0);
    assert_int_equal(s.disk_messages, 0);
}

static int qfiles(const tu_dir *d, uint64_t *seqs, uint64_t *sizes)
{
    return tu_list_qfiles(d->chan, seqs, sizes, 1000);
}

/* ---- order and files ---- */

/* memory -> disk -> memory, with strict order all along. */
static void test_fifo_across_memory_and_disk(void **state)
{
    tu_dir *d = *state;
    size_t rec = TU_RECORD_SIZE(100);
    hop_channel *ch =
        tu_open(d, tu_limits(4 * hop_message_cost(100), TU_FILE_HEADER + 5 * rec, SIZE_MAX, 1000));
    expect e;
    expect_init(&e, 10000);
    uint64_t id = 0;
    for (; id < 50; id++)
        send_ok(ch, &e, id, 100);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 50);
    assert_int_equal(s.memory_messages, 4);
    assert_int_equal(s.memory_bytes, 4 * hop_message_cost(100));
    assert_int_equal(s.disk_messages, 46);
    assert_int_equal(s.disk_files, 10); /* 5 records a file */
    assert_int_equal(s.disk_bytes, 10 * TU_FILE_HEADER + 46 * rec);
    assert_int_equal(s.sent_total, 50);

    for (int i = 0; i < 10; i++)
        recv_expected(ch, &e); /* 4 from memory, 6 from disk */
    /* memory has room now, but the disk is not drained: sends queue behind it */
    for (; id < 60; id++)
        send_ok(ch, &e, id, 100);
    s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.disk_messages, 50);
    recv_all_expected(ch, &e);
    s = tu_stats(ch);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(s.disk_bytes, 0);
    assert_int_equal(s.received_total, 60);

    /* drained: memory again */
    for (int i = 0; i < 3; i++, id++)
        send_ok(ch, &e, id, 100);
    s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 3);
    assert_int_equal(s.disk_files, 0);

    /* then random bursts of random sizes */
    tu_rng rng = {3};
    for (int round = 0; round < 200; round++) {
        int n = (int)tu_range(&rng, 0, 12);
        for (int i = 0; i < n; i++, id++)
            send_ok(ch, &e, id, (size_t)tu_range(&rng, 8, 1000));
        int m = (int)tu_range(&rng, 0, (uint64_t)expect_size(&e));
        for (int i = 0; i < m; i++)
            recv_expected(ch, &e);
        s = tu_stats(ch);
        assert_int_equal(s.messages, expect_size(&e));
        assert_int_equal(s.memory_messages + s.disk_messages, s.messages);
        assert_true(s.memory_bytes <= 4 * hop_message_cost(100));
    }
    recv_all_expected(ch, &e);
    assert_int_equal(qfiles(d, (uint64_t[1000]){0}, NULL), 0);
    expect_free(&e);
    hop_channel_close(ch);
}

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

/* ---- requeue ---- */

/* A requeued message is the next one out, ahead of what is on disk, even
 * past the memory limit; later sends still queue behind it. */
static void test_requeue_goes_to_head(void **state)
{
    tu_dir *d = *state;
    const size_t limit = 2 * hop_message_cost(100);
    hop_channel *ch = tu_open(d, tu_limits(limit, 1000, SIZE_MAX, 1000));
    expect e;
    expect_init(&e, 100);
    for (uint64_t id = 0; id < 10; id++)
        send_ok(ch, &e, id, 100); /* 2 in memory, 8 on disk */

    /* take 0..4 (2 from memory, 3 from disk), give them back newest first */
    void *data[5];
    size_t len[5];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hop_recv(ch, 0, &data[i], &len[i]), HOP_OK);
        assert_int_equal(tu_id_of(data[i], len[i]), i);
    }
    for (int i = 4; i >= 0; i--)
        assert_int_equal(hop_requeue(ch, data[i], len[i]), HOP_OK);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 5);
    assert_int_equal(s.memory_bytes, 5 * hop_message_cost(100)); /* past the limit, as documented */
    assert_int_equal(s.disk_messages, 5);
    assert_int_equal(s.requeued_total, 5);
    assert_int_equal(s.received_total, 5);
    send_ok(ch, &e, 10, 100); /* behind the disk */
    recv_expected(ch, &e);    /* 0 */

    /* a disk message requeued while disk has more */
    for (int i = 0; i < 5; i++)
        recv_expected(ch, &e); /* 1..4 from memory, 5 from disk */
    void *m;
    size_t n;
    assert_int_equal(hop_recv(ch, 0, &m, &n), HOP_OK);
    assert_int_equal(tu_id_of(m, n), 6);
    assert_int_equal(hop_requeue(ch, m, n), HOP_OK); /* e still has 6 at its head */
    recv_all_expected(ch, &e);
    s = tu_stats(ch);
    assert_int_equal(s.requeued_total, 6);
    assert_int_equal(s.received_total, 5 + 11 + 1);
    expect_free(&e);
    hop_channel_close(ch);
}

/* The wrong length is HOP_INVALID, but the message is back, whole. */
static void test_requeue_wrong_length_keeps_message(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(100000, 100000, 4, 1000));
    assert_int_equal(send_id(ch, 42, 50), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(hop_requeue(ch, data, len - 1), HOP_INVALID);
    assert_int_equal(tu_stats(ch).messages, 1);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(len, 50);
    assert_int_equal(tu_id_of(data, len), 42);
    assert_int_equal(hop_requeue(ch, data, len + 1000), HOP_INVALID);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(len, 50);
    assert_int_equal(tu_id_of(data, len), 42);
    /* not a message: refused, nothing freed */
    assert_int_equal(hop_requeue(ch, NULL, 0), HOP_INVALID);
    /* no channel: the message is freed (ASan would report a leak otherwise) */
    assert_int_equal(hop_requeue(NULL, data, len), HOP_INVALID);
    assert_int_equal(tu_stats(ch).messages, 0);
    hop_channel_close(ch);
}

/* ---- receiving and closing ---- */

static void test_recv_timeouts(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(100000, 100000, 4, 1000));
    void *data = (void *)(uintptr_t)0x77;
    size_t len = 0x88;
    int64_t t0 = tu_now_ms();
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    int64_t t1 = tu_now_ms();
    assert_true(t1 - t0 < 40);
    assert_ptr_equal(data, (void *)(uintptr_t)0x77); /* untouched */
    assert_int_equal(len, 0x88);

    t0 = tu_now_ms();
    assert_int_equal(hop_recv(ch, 50, &data, &len), HOP_TIMEOUT);
    t1 = tu_now_ms();
    if (t1 - t0 < 50 || t1 - t0 > 2000)
        fail_msg("hop_recv(50 ms) took %lld ms", (long long)(t1 - t0));
    assert_ptr_equal(data, (void *)(uintptr_t)0x77);
    assert_int_equal(tu_stats(ch).waiting_receivers, 0);

    assert_int_equal(hop_recv(ch, -2, &data, &len), HOP_INVALID);
    assert_int_equal(hop_recv(ch, 0, NULL, &len), HOP_INVALID);
    assert_int_equal(hop_recv(ch, 0, &data, NULL), HOP_INVALID);
    assert_int_equal(hop_recv(NULL, 0, &data, &len), HOP_INVALID);
    hop_channel_close(ch);
}

typedef struct receiver {
    hop_channel *ch;
    int timeout_ms;
    hop_err err;
    void *data;
    size_t len;
    pthread_t thread;
} receiver;

static void *receive_thread(void *arg)
{
    receiver *r = arg;
    r->err = hop_recv(r->ch, r->timeout_ms, &r->data, &r->len);
    return NULL;
}

static void start_receiver(receiver *r, hop_channel *ch, int timeout_ms)
{
    memset(r, 0, sizeof *r);
    r->ch = ch;
    r->timeout_ms = timeout_ms;
    r->err = (hop_err)-1;
    assert_int_equal(pthread_create(&r->thread, NULL, receive_thread, r), 0);
}

/* Join r's thread, failing if it does not return within ms (a receiver
 * that was never woken is left behind: the test has failed anyway). */
static void join_within(receiver *r, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    if (pthread_timedjoin_np(r->thread, NULL, &ts) != 0)
        fail_msg("the receiver was not woken within %d ms", ms);
}

static void wait_waiting(hop_channel *ch, size_t n)
{
    int64_t until = tu_now_ms() + 10000;
    while (tu_stats(ch).waiting_receivers != n) {
        if (tu_now_ms() > until)
            fail_msg("waiting_receivers never became %zu", n);
        tu_sleep_ms(1);
    }
}

/* A blocked hop_recv() wakes for a message, through memory or disk. */
static void test_blocked_recv_wakes_on_send(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(hop_message_cost(100), 100000, 4, 100000));
    for (int round = 0; round < 2; round++) {
        size_t len = round == 0 ? 50 : 5000; /* the second goes to disk */
        receiver r;
        start_receiver(&r, ch, round == 0 ? -1 : 20000);
        wait_waiting(ch, 1);
        assert_int_equal(send_id(ch, (uint64_t)round, len), HOP_OK);
        join_within(&r, 5000); /* woken, not timed out */
        assert_int_equal(r.err, HOP_OK);
        assert_int_equal(r.len, len);
        assert_int_equal(tu_id_of(r.data, r.len), round);
        hop_free(r.data);
        assert_int_equal(tu_stats(ch).waiting_receivers, 0);
    }
    hop_channel_close(ch);
}

/* Close wakes blocked receivers with HOP_CLOSED. */
static void test_close_wakes_blocked_recv(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(100000, 100000, 4, 1000));
    receiver r1, r2;
    start_receiver(&r1, ch, -1);
    start_receiver(&r2, ch, 60000);
    wait_waiting(ch, 2);
    hop_channel_close(ch);
    join_within(&r1, 5000);
    join_within(&r2, 5000);
    assert_int_equal(r1.err, HOP_CLOSED);
    assert_int_equal(r2.err, HOP_CLOSED);
    assert_null(r1.data);
    assert_null(r2.data);
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

/* ---- batches and holds ---- */

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

/* A held message counts against memory until it is freed or given back:
 * sends find less room meanwhile. */
static void test_hold_counts_against_memory(void **state)
{
    tu_dir *d = *state;
    void *a2;
    hop_channel *ch = tu_open(d, tu_limits(2 * hop_message_cost(100), 1 << 20, 4, 1000));
    assert_int_equal(send_id(ch, 0, 100), HOP_OK);
    assert_int_equal(send_id(ch, 1, 100), HOP_OK);
    void *a, *b;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &b, &len), HOP_OK);
    assert_int_equal(hop_hold(ch, a), HOP_OK);
    assert_int_equal(hop_hold(ch, a), HOP_INVALID); /* once */
    assert_int_equal(hop_hold(ch, b), HOP_OK);      /* two fill memory_bytes */
    assert_int_equal(tu_stats(ch).held, 2);
    assert_int_equal(hop_requeue(ch, b, len), HOP_OK); /* back: the hold ends */
    assert_int_equal(hop_recv(ch, 0, &b, &len), HOP_OK);
    assert_int_equal(send_id(ch, 9, 100), HOP_OK); /* memory: one held, one stored */
    assert_int_equal(hop_recv(ch, 0, &a2, &len), HOP_OK);
    assert_int_equal(hop_hold(ch, a2), HOP_OK);
    assert_int_equal(hop_hold(ch, b), HOP_FULL); /* a third would pass memory_bytes */
    hop_free(a2);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.held_bytes, hop_message_cost(100));
    assert_int_equal(send_id(ch, 2, 100), HOP_OK); /* room for one in memory */
    assert_int_equal(send_id(ch, 3, 100), HOP_OK); /* the held one takes the other: disk */
    s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 1);
    assert_int_equal(s.disk_messages, 1);
    hop_free(a); /* the hold ends */
    assert_int_equal(tu_stats(ch).held, 0);
    assert_int_equal(tu_stats(ch).held_bytes, 0);
    hop_free(b); /* never held: nothing to end */

    /* given back: the hold ends, the message counts in memory again */
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK);
    assert_int_equal(tu_id_of(a, len), 2);
    assert_int_equal(hop_hold(ch, a), HOP_OK);
    assert_int_equal(hop_requeue(ch, a, len), HOP_OK);
    s = tu_stats(ch);
    assert_int_equal(s.held, 0);
    assert_int_equal(s.memory_messages, 1);

    /* a message read from disk, held, then a close: freeing it after the
     * close only frees memory (ASan checks), and it comes back */
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK); /* 2, memory */
    hop_free(a);
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK); /* 3, disk */
    assert_int_equal(tu_id_of(a, len), 3);
    assert_int_equal(hop_hold(ch, a), HOP_OK);
    assert_int_equal(send_id(ch, 4, 100), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &b, &len), HOP_OK); /* 4, memory */
    assert_int_equal(hop_hold(ch, b), HOP_OK);
    assert_int_equal(tu_stats(ch).held, 2);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    hop_free(a);
    hop_free(b);
    ch = tu_open(d, tu_limits(2 * hop_message_cost(100), 1 << 20, 4, 1000));
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK);
    assert_int_equal(tu_id_of(a, len), 3); /* held from disk: back */
    hop_free(a);
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_TIMEOUT); /* 4 was the receiver's */
    assert_int_equal(hop_hold(ch, NULL), HOP_INVALID);
    hop_channel_close(ch);
}

/* Messages given back at different times, in any order, line up again in
 * the order they were first taken, ahead of everything newer; from memory
 * and from disk alike. */
static void test_requeue_keeps_the_order_taken(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(3 * hop_message_cost(40), 1 << 20, 4, 1000));
    for (uint64_t id = 0; id < 6; id++)
        assert_int_equal(send_id(ch, id, 40), HOP_OK); /* 0..2 in memory, 3..5 on disk */
    void *m[5];
    size_t len;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(hop_recv(ch, 0, &m[i], &len), HOP_OK);
        assert_int_equal(tu_id_of(m[i], len), (uint64_t)i);
    }
    static const int back[] = {3, 0, 4, 2, 1};
    for (int i = 0; i < 5; i++)
        assert_int_equal(hop_requeue(ch, m[back[i]], 40), HOP_OK);
    expect e;
    expect_init(&e, 10);
    for (uint64_t id = 0; id < 6; id++)
        expect_push(&e, id, 40);
    recv_all_expected(ch, &e);
    expect_free(&e);
    hop_channel_close(ch);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_fifo_across_memory_and_disk),
        T(test_files_appear_and_are_deleted),
        T(test_stats),
        T(test_memory_bound),
        T(test_full_at_rotation_boundary),
        T(test_full_with_big_message_keeps_nothing),
        T(test_memory_only_full),
        T(test_too_big),
        T(test_empty_messages),
        T(test_message_bigger_than_file),
        T(test_message_bigger_than_memory),
        T(test_requeue_goes_to_head),
        T(test_requeue_wrong_length_keeps_message),
        T(test_recv_timeouts),
        T(test_blocked_recv_wakes_on_send),
        T(test_close_wakes_blocked_recv),
        T(test_close_and_reopen_keep_everything),
        T(test_open_recovers_ours_leaves_foreign),
        T(test_second_open_fails),
        T(test_names_cannot_escape),
        T(test_corrupt_record_on_disk),
        T(test_unframed_record_on_disk),
        T(test_corrupt_length_on_disk),
        T(test_no_descriptor_leak),
        T(test_invalid_arguments),
        T(test_batch_to_memory),
        T(test_batch_to_disk_across_files),
        T(test_batch_all_or_nothing),
        T(test_hold_counts_against_memory),
        T(test_requeue_keeps_the_order_taken),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
