/* test_recv.c - tests of core/src/recv.c through the public API: order
 * across memory and disk, requeue (to the head, a wrong length, the order
 * first taken), timeouts, blocked receivers woken by a send or a close.
 * Each test runs in its own temp dir; the channel is <dir>/ch. */
#include "expect.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- order ---- */

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

/* ---- batches ---- */

/* hop_recv_batch() takes what hop_recv() would, in the same order: memory,
 * then queue files across several of them, a requeued message first;
 * nothing is left behind or taken twice, and the consumed ones stay
 * consumed across a reopen (freed with hop_free_all()). */
static void test_recv_batch_in_order(void **state)
{
    tu_dir *d = *state;
    size_t rec = TU_RECORD_SIZE(100);
    hop_limits l = tu_limits(4 * hop_message_cost(100), TU_FILE_HEADER + 5 * rec, SIZE_MAX, 1000);
    hop_channel *ch = tu_open(d, l);
    for (uint64_t id = 0; id < 50; id++)
        assert_int_equal(send_id(ch, id, 100), HOP_OK);
    assert_int_equal(tu_stats(ch).disk_files, 10);

    void *data[64];
    size_t lens[64], n = 99;
    assert_int_equal(hop_recv_batch(ch, 20, data, lens, &n), HOP_OK);
    assert_int_equal(n, 20); /* 4 from memory, 16 from 4 files */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tu_id_of(data[i], lens[i]), i);
    assert_int_equal(hop_requeue(ch, data[19], lens[19]), HOP_OK);
    hop_free_all(data, 19);
    assert_int_equal(hop_recv_batch(ch, 64, data, lens, &n), HOP_OK);
    assert_int_equal(n, 31); /* the requeued one, then the rest */
    for (size_t i = 0; i < n; i++)
        assert_int_equal(tu_id_of(data[i], lens[i]), 19 + i);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.in_flight, 31); /* all from queue files */
    assert_int_equal(s.received_total, 51); /* the requeued one twice */
    assert_int_equal(hop_recv_batch(ch, 64, data + 31, lens + 31, &n), HOP_TIMEOUT);
    assert_int_equal(n, 0);
    hop_free_all(data, 31);
    assert_int_equal(tu_stats(ch).disk_files, 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    ch = tu_open(d, l);
    assert_int_equal(hop_recv_batch(ch, 64, data, lens, &n), HOP_TIMEOUT);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Bad arguments are refused and take nothing; a closed channel says so. */
static void test_recv_batch_refuses(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(100000, 100000, 4, 1000));
    assert_int_equal(send_id(ch, 7, 50), HOP_OK);
    void *data[2];
    size_t lens[2], n = 5;
    assert_int_equal(hop_recv_batch(NULL, 2, data, lens, &n), HOP_INVALID);
    assert_int_equal(n, 0);
    assert_int_equal(hop_recv_batch(ch, 0, data, lens, &n), HOP_INVALID);
    assert_int_equal(hop_recv_batch(ch, 2, NULL, lens, &n), HOP_INVALID);
    assert_int_equal(hop_recv_batch(ch, 2, data, NULL, &n), HOP_INVALID);
    assert_int_equal(hop_recv_batch(ch, 2, data, lens, NULL), HOP_INVALID);
    assert_int_equal(tu_stats(ch).messages, 1);
    assert_int_equal(hop_recv_batch(ch, 2, data, lens, &n), HOP_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tu_id_of(data[0], lens[0]), 7);
    hop_free(data[0]);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_fifo_across_memory_and_disk),
        T(test_requeue_goes_to_head),
        T(test_requeue_wrong_length_keeps_message),
        T(test_recv_timeouts),
        T(test_blocked_recv_wakes_on_send),
        T(test_close_wakes_blocked_recv),
        T(test_requeue_keeps_the_order_taken),
        T(test_recv_batch_in_order),
        T(test_recv_batch_refuses),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
