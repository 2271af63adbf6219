/* test_flight.c - tests of core/src/flight.c through the public API:
 * holds counting against memory_bytes, holds of records read from disk
 * and of messages from memory, and both outliving a close. (Records in
 * flight and their consumption across restarts are also in
 * test_persist.c and test_faults.c.) hop_free_all(): consuming a batch with
 * one journal write.
 * Each test runs in its own temp dir; the channel is <dir>/ch. */
#include "expect.h"

#include "io.h"

#include <stdatomic.h>

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

/* A record read from a queue file can be held too (the hold has a node of
 * its own beside the flight), not on another channel. Still held at close,
 * it is written again, not consumed: it comes back after the reopen, once.
 * hop_free() after the close only frees it. */
static void test_hold_of_a_record_across_close(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 1 << 20, 4, 1000); /* everything on disk */
    hop_channel *ch = tu_open(d, l);
    hop_channel *other = NULL;
    assert_int_equal(hop_channel_open(d->data, "other", &l, &other), HOP_OK);
    assert_int_equal(send_id(ch, 1, 100), HOP_OK);
    assert_int_equal(send_id(ch, 2, 100), HOP_OK);
    void *a, *b;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &b, &len), HOP_OK);
    assert_int_equal(hop_hold(other, a), HOP_INVALID); /* not its record */
    assert_int_equal(hop_hold(ch, a), HOP_OK);
    assert_int_equal(hop_hold(ch, a), HOP_INVALID);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.held_bytes, hop_message_cost(100));
    assert_int_equal(s.in_flight, 2);
    hop_free(b); /* consumed */
    s = tu_stats(ch);
    assert_int_equal(s.in_flight, 1);
    assert_int_equal(s.held, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_channel_close(other), HOP_OK);
    assert_int_equal(tu_id_of(a, len), 1);
    hop_free(a); /* after the close: frees the hold and the flight (ASan checks) */

    ch = tu_open(d, l);
    void *x;
    assert_int_equal(hop_recv(ch, 0, &x, &len), HOP_OK);
    assert_int_equal(tu_id_of(x, len), 1);
    hop_free(x);
    assert_int_equal(hop_recv(ch, 0, &x, &len), HOP_TIMEOUT);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* A message from memory held at close is the receiver's: the close does
 * not write it (memory-only), and hop_free() after it frees the hold. A
 * requeued one counts no more; its hold ended. */
static void test_hold_of_a_message_across_close(void **state)
{
    (void)state;
    hop_limits l = tu_limits(4 * hop_message_cost(100), 1 << 20, 0, 100);
    hop_channel *ch = NULL;
    assert_int_equal(hop_channel_open(NULL, "mem", &l, &ch), HOP_OK);
    assert_int_equal(send_id(ch, 1, 100), HOP_OK);
    assert_int_equal(send_id(ch, 2, 100), HOP_OK);
    void *a, *b;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &a, &len), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &b, &len), HOP_OK);
    assert_int_equal(hop_hold(ch, a), HOP_OK);
    assert_int_equal(hop_hold(ch, b), HOP_OK);
    assert_int_equal(tu_stats(ch).held, 2);
    assert_int_equal(hop_requeue(ch, b, len), HOP_OK);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.held, 1);
    assert_int_equal(s.held_bytes, hop_message_cost(100));
    assert_int_equal(s.memory_messages, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(tu_id_of(a, len), 1);
    hop_free(a);
}

static atomic_int pwritev_calls;

static ssize_t counting_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    atomic_fetch_add(&pwritev_calls, 1);
    return hop__io_system.pwritev(fd, iov, n, off);
}

/* hop_free_all() consumes as hop_free() would, each message once: records
 * of one channel in a row share a journal write (up to 64 a write), NULL
 * entries are skipped, a message from memory and a held one are freed, and
 * nothing consumed comes back after a reopen. */
static void test_free_all_consumes_together(void **state)
{
    tu_dir *d = *state;
    hop_limits disk = tu_limits(0, 1 << 20, 4, 1000); /* everything on disk */
    hop_limits mem = tu_limits(1 << 20, 1 << 20, 4, 1000);
    hop_channel *ch = tu_open(d, disk), *other = NULL, *inmem = NULL;
    assert_int_equal(hop_channel_open(d->data, "other", &disk, &other), HOP_OK);
    assert_int_equal(hop_channel_open(d->data, "inmem", &mem, &inmem), HOP_OK);
    enum { N = 150, K = 3 };
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(send_id(ch, i, 100), HOP_OK);
    for (uint64_t i = 0; i < K; i++)
        assert_int_equal(send_id(other, 1000 + i, 100), HOP_OK);
    assert_int_equal(send_id(inmem, 2000, 100), HOP_OK);

    /* ch's first half, other's, a NULL, ch's second half, the memory one */
    void *all[N + K + 2];
    size_t k = 0, len;
    for (int i = 0; i < N / 2; i++)
        assert_int_equal(hop_recv(ch, 0, &all[k++], &len), HOP_OK);
    for (int i = 0; i < K; i++)
        assert_int_equal(hop_recv(other, 0, &all[k++], &len), HOP_OK);
    all[k++] = NULL;
    for (int i = N / 2; i < N; i++)
        assert_int_equal(hop_recv(ch, 0, &all[k++], &len), HOP_OK);
    assert_int_equal(hop_recv(inmem, 0, &all[k++], &len), HOP_OK);
    assert_int_equal(hop_hold(ch, all[1]), HOP_OK);
    assert_int_equal(tu_stats(ch).in_flight, N);
    assert_int_equal(tu_stats(ch).held, 1);

    hop__io hooked = hop__io_system;
    hooked.pwritev = counting_pwritev;
    atomic_store(&pwritev_calls, 0);
    hop__io_set(&hooked);
    hop_free_all(all, k);
    hop__io_set(NULL);
    /* ch: 75 = 64 + 11, twice; other: 3 */
    assert_int_equal(atomic_load(&pwritev_calls), 5);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.held, 0);
    assert_int_equal(s.disk_messages, 0);
    assert_int_equal(tu_stats(other).in_flight, 0);
    hop_free_all(NULL, 0);

    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_channel_close(other), HOP_OK);
    assert_int_equal(hop_channel_close(inmem), HOP_OK);
    ch = tu_open(d, disk);
    assert_int_equal(hop_channel_open(d->data, "other", &disk, &other), HOP_OK);
    void *x;
    assert_int_equal(hop_recv(ch, 0, &x, &len), HOP_TIMEOUT);
    assert_int_equal(hop_recv(other, 0, &x, &len), HOP_TIMEOUT);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_channel_close(other), HOP_OK);
}

/* Messages whose channel closed before hop_free_all(): only memory is
 * freed (ASan checks), and the records come back after a reopen. */
static void test_free_all_after_close(void **state)
{
    tu_dir *d = *state;
    hop_limits disk = tu_limits(0, 1 << 20, 4, 1000);
    hop_channel *ch = tu_open(d, disk);
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(send_id(ch, i, 100), HOP_OK);
    void *all[3];
    size_t len;
    for (int i = 0; i < 3; i++)
        assert_int_equal(hop_recv(ch, 0, &all[i], &len), HOP_OK);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    hop_free_all(all, 3);
    ch = tu_open(d, disk);
    for (uint64_t i = 0; i < 3; i++) {
        void *x;
        assert_int_equal(hop_recv(ch, 0, &x, &len), HOP_OK);
        assert_int_equal(tu_id_of(x, len), i);
        hop_free(x);
    }
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_hold_counts_against_memory),     T(test_hold_of_a_record_across_close),
        T(test_hold_of_a_message_across_close), T(test_free_all_consumes_together),
        T(test_free_all_after_close),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
