/* test_lease_expiry.c - how a lease ends, against the real binary: an
 * unacknowledged lease expires and its message comes back at the head of
 * its channel, counted, in the order it had, again and again without
 * --max-deliveries, or straight to a GET that waits; extend keeps a lease
 * (or brings its end closer), release gives the message back at once;
 * the message keeps its id however it comes back. (The rest of leases:
 * test_leases.c.)
 *
 * No test sleeps to let the server catch up: a lease that must end is
 * waited for by a GET ?wait= that returns as the message reappears, or by
 * polling /status; a lease that must NOT end is long (60 s) next to the
 * wait that shows it did not. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A lease that must not end while a test looks. */
#define LONG_LEASE "60"

/* ---- expiry, extend, release ---- */

static void test_expired_lease_comes_back_at_the_head(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post_bytes(&s, "exp", "A", 1, "application/x-a", 202);
    char first[HS_RECEIPT_LEN + 1], second[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "exp", "0", "0.2", "A", "application/x-a", 1, first);
    hs_expect_post(&s, "exp", "B", 202);
    /* the lease ends by itself; then A is ahead of B, counted once more
     * (the expiry is counted just before the message is back: wait for
     * the message) */
    hs_await_status_ok(&s, "exp", "requeued_total", 1);
    assert_int_equal(hs_status_value(&s, "exp", "lease_expired_total"), 1);
    hs_expect_leased(&s, "exp", "0", LONG_LEASE, "A", "application/x-a", 2, second);
    assert_string_not_equal(first, second);
    hs_expect_leased(&s, "exp", "0", LONG_LEASE, "B", "text/plain", 1, NULL);
    assert_int_equal(hs_metric_value(&s, "hopper_lease_expired_total", "exp"), 1);
    assert_int_equal(hs_status_value(&s, "exp", "leased"), 2);
    /* the expired receipt is over; the new one holds */
    hs_expect_ack(&s, "exp", first, 410, "lease_ended");
    hs_expect_release(&s, "exp", first, 410, "lease_ended");
    hs_expect_extend(&s, "exp", first, "5", 410, "lease_ended");
    hs_expect_ack(&s, "exp", second, 204, NULL);
    assert_int_equal(hs_metric_value(&s, "hopper_lease_expired_total", "exp"), 1);
    hs_stop_ok(&s);
}

/* Leases that end by themselves put their messages back in the order
 * they had: each one "back at the head of its channel, before anything
 * newer" (issue 5), so the older one ahead of the newer one, as a failed
 * batch response gives its messages back (delivery.c). */
static void test_expired_leases_keep_their_order(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    const char *names[] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++)
        hs_expect_post(&s, "order", names[i], 202);
    for (int i = 0; i < 3; i++)
        hs_expect_leased(&s, "order", "0", "0.1", names[i], NULL, 1, NULL);
    hs_expect_post(&s, "order", "newest", 202);
    hs_await_status_ok(&s, "order", "requeued_total", 3);
    /* after the leases of first, second, third ended */
    for (int i = 0; i < 3; i++)
        hs_expect_get(&s, "order", "0", names[i]);
    hs_expect_get(&s, "order", "0", "newest");
    hs_stop_ok(&s);
}

/* A message alone in its channel: the GET that waits for it returns as it
 * reappears, with a count that grows on each hand-out. Without
 * --max-deliveries it never stops coming back. */
static void test_expiry_repeats_without_max_deliveries(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "again", "boomerang", 202);
    for (long count = 1; count <= 5; count++)
        hs_expect_leased(&s, "again", "20", "0.05", "boomerang", "text/plain", count, NULL);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "again", "20", LONG_LEASE, "boomerang", "text/plain", 6, receipt);
    assert_int_equal(hs_status_value(&s, "again", "lease_expired_total"), 5);
    assert_int_equal(hs_status_value(&s, "again", "dead_lettered_total"), 0);
    assert_int_equal(hs_status_value(&s, "again.dead", "messages"), -1);
    hs_expect_ack(&s, "again", receipt, 204, NULL);
    hs_stop_ok(&s);
}

/* An expired lease hands its message straight to a GET that waits without
 * a lease, which consumes it at once: over and over, the message must come
 * intact, and the server neither touch it after it was handed on (ASan
 * builds abort on that) nor log that it could not be given back. */
#define HAND_ON_ROUNDS 150

static void test_expired_lease_handed_to_a_waiting_get(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int failed = -1;
    long status = 0;
    char got[32] = "";
    for (int i = 0; i < HAND_ON_ROUNDS && failed < 0; i++) {
        char body[32];
        snprintf(body, sizeof body, "round-%d", i);
        hs_expect_post(&s, "relay", body, 202);
        hs_expect_leased(&s, "relay", "0", "0.01", body, NULL, 1, NULL);
        status = hs_get_text(&s, "relay", "20", got, sizeof got);
        if (status != 200 || strcmp(got, body) != 0)
            failed = i;
    }
    bool complained = hs_log_wait(&s, "could not be given back", 0);
    long long expired = hs_status_value(&s, "relay", "lease_expired_total");
    int code = hs_stop(&s); /* prints the server's log (an ASan report) unless 0 */
    if (failed >= 0)
        fail_msg("round %d: %ld '%s'; the server exited with %d", failed, status, got, code);
    if (complained)
        fail_msg("the server logged that an expired message could not be given back, though "
                 "it was (and was delivered)");
    assert_int_equal(expired, HAND_ON_ROUNDS);
    assert_int_equal(code, 0);
}

static void test_extend_keeps_and_release_gives_back(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "slow", "job", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    /* 1 s: long enough for the extend to come first on a loaded machine,
     * short enough that the 3 s wait below would see it end unextended */
    hs_expect_leased(&s, "slow", "0", "1", "job", NULL, 1, receipt);
    hs_expect_extend(&s, "slow", receipt, LONG_LEASE, 204, NULL);
    hs_expect_nothing(&s, "slow", "3", NULL); /* still leased */
    assert_int_equal(hs_status_value(&s, "slow", "lease_expired_total"), 0);
    assert_int_equal(hs_status_value(&s, "slow", "leased"), 1);
    /* release: back at once, counted */
    hs_expect_release(&s, "slow", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "slow", "leased"), 0);
    hs_expect_release(&s, "slow", receipt, 410, "lease_ended");
    hs_expect_extend(&s, "slow", receipt, LONG_LEASE, 410, "lease_ended");
    hs_expect_ack(&s, "slow", receipt, 410, "lease_ended");
    hs_expect_leased(&s, "slow", "0", LONG_LEASE, "job", NULL, 2, receipt);
    /* a release puts it at the head, ahead of newer ones */
    hs_expect_post(&s, "slow", "newer", 202);
    hs_expect_release(&s, "slow", receipt, 204, NULL);
    hs_expect_leased(&s, "slow", "0", LONG_LEASE, "job", NULL, 3, receipt);
    hs_expect_ack(&s, "slow", receipt, 204, NULL);
    hs_expect_leased(&s, "slow", "0", LONG_LEASE, "newer", NULL, 1, receipt);
    hs_expect_ack(&s, "slow", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "slow", "lease_expired_total"), 0);
    hs_stop_ok(&s);
}

/* GET ?lease= on channel: it must hand out a message with body (text) for
 * the count-th time. OUT: id, its Hopper-Message-Id; receipt, its receipt. */
static void lease_with_id(const hs_server *s, const char *channel, const char *lease,
                          const char *body, long count, char id[HS_MESSAGE_ID_LEN + 1],
                          char receipt[HS_RECEIPT_LEN + 1])
{
    hs_reply r;
    assert_int_equal(hs_get_leased(s, channel, "20", lease, &r), 200);
    assert_string_equal((char *)r.body, body);
    assert_int_equal(hs_delivery_count(&r), count);
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, HS_RECEIPT_LEN + 1));
    hs_expect_message_id(&r, id);
    hs_reply_free(&r);
}

/* A message has one id, on every delivery: after a release, after its
 * lease expired, without a lease; another message has another. */
static void test_message_id_is_the_same_on_every_delivery(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "ids", "A", 202);
    char first[HS_MESSAGE_ID_LEN + 1], id[HS_MESSAGE_ID_LEN + 1], receipt[HS_RECEIPT_LEN + 1];
    lease_with_id(&s, "ids", LONG_LEASE, "A", 1, first, receipt);
    hs_expect_release(&s, "ids", receipt, 204, NULL);
    lease_with_id(&s, "ids", "0.1", "A", 2, id, receipt); /* and let it expire */
    assert_string_equal(id, first);
    hs_reply r; /* a GET that waits: A alone, back as its lease ends */
    assert_int_equal(hs_get_leased(&s, "ids", "20", NULL, &r), 200);
    assert_string_equal((char *)r.body, "A");
    assert_int_equal(hs_delivery_count(&r), 3);
    hs_expect_message_id(&r, id);
    hs_reply_free(&r);
    assert_string_equal(id, first);
    hs_expect_post(&s, "ids", "B", 202);
    assert_int_equal(hs_get_leased(&s, "ids", "0", NULL, &r), 200);
    assert_string_equal((char *)r.body, "B");
    hs_expect_message_id(&r, id);
    hs_reply_free(&r);
    assert_string_not_equal(id, first);
    hs_stop_ok(&s);
}

/* extend sets the end from now: it may bring it closer too. */
static void test_extend_can_shorten_a_lease(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "short", "soon", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "short", "0", LONG_LEASE, "soon", NULL, 1, receipt);
    hs_expect_extend(&s, "short", receipt, "0.1", 204, NULL);
    hs_expect_leased(&s, "short", "20", LONG_LEASE, "soon", NULL, 2, receipt);
    assert_int_equal(hs_status_value(&s, "short", "lease_expired_total"), 1);
    hs_expect_ack(&s, "short", receipt, 204, NULL);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test(test)
    const struct CMUnitTest tests[] = {
        T(test_expired_lease_comes_back_at_the_head),
        T(test_expired_leases_keep_their_order),
        T(test_expiry_repeats_without_max_deliveries),
        T(test_expired_lease_handed_to_a_waiting_get),
        T(test_extend_keeps_and_release_gives_back),
        T(test_extend_can_shorten_a_lease),
        T(test_message_id_is_the_same_on_every_delivery),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*order*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
