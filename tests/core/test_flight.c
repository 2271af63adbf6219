/* test_flight.c - tests of core/src/flight.c through the public API:
 * holds counting against memory_bytes, holds of records read from disk
 * and of messages from memory, and both outliving a close. (Records in
 * flight and their consumption across restarts are also in
 * test_persist.c and test_faults.c.)
 * Each test runs in its own temp dir; the channel is <dir>/ch. */
#include "expect.h"

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

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_hold_counts_against_memory),
        T(test_hold_of_a_record_across_close),
        T(test_hold_of_a_message_across_close),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
