/* test_dead_letters.c - --max-deliveries against the real binary: a
 * message handed out under a lease that many times and never acknowledged
 * goes to the channel NAME.dead, byte-identical with its Content-Type and
 * its message id, and no longer blocks its channel; a dead-letter channel keeps its own
 * messages; a message NAME.dead cannot take goes back to its channel,
 * logged. (The rest of leases: test_leases.c.) */
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

/* ---- dead letters ---- */

static void test_dead_letter_after_max_deliveries(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "2", NULL};
    hs_start_ok(&s, args);
    unsigned char poison[300];
    for (size_t i = 0; i < sizeof poison; i++)
        poison[i] = (unsigned char)(i * 53 + 7); /* zeros and high bytes among them */
    const char *type = "application/x-poison; v=1";
    hs_expect_post_bytes(&s, "hooks", poison, sizeof poison, type, 202);
    hs_expect_post(&s, "hooks", "fine", 202);
    hs_reply r;
    char first[HS_MESSAGE_ID_LEN + 1], id[HS_MESSAGE_ID_LEN + 1];

    /* handed out twice, never acknowledged: each time it comes back ahead
     * of the newer one, with the id it had */
    for (long count = 1; count <= 2; count++) {
        assert_int_equal(hs_get_leased(&s, "hooks", "0", "0.1", &r), 200);
        assert_int_equal(r.len, sizeof poison);
        assert_int_equal(hs_delivery_count(&r), count);
        hs_expect_message_id(&r, count == 1 ? first : id);
        hs_reply_free(&r);
        if (count > 1)
            assert_string_equal(id, first);
        if (count == 1) /* back in the channel (counted before it is) */
            hs_await_status_ok(&s, "hooks", "requeued_total", 1);
    }
    /* then it goes to hooks.dead, byte-identical, with its Content-Type and
     * its id */
    hs_await_status_ok(&s, "hooks", "dead_lettered_total", 1);
    assert_int_equal(hs_status_value(&s, "hooks", "lease_expired_total"), 2);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_dead_lettered_total", "hooks"), 1);
    assert_int_equal(hs_get_leased(&s, "hooks.dead", "0", NULL, &r), 200);
    assert_int_equal(r.len, sizeof poison);
    assert_memory_equal(r.body, poison, sizeof poison);
    assert_string_equal(r.content_type, type);
    hs_expect_message_id(&r, id);
    hs_reply_free(&r);
    assert_string_equal(id, first);
    /* and no longer blocks its channel */
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "hooks", "0", LONG_LEASE, "fine", "text/plain", 1, receipt);
    hs_expect_ack(&s, "hooks", receipt, 204, NULL);
    hs_expect_nothing(&s, "hooks", "0", NULL);
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 0);
    hs_stop_ok(&s);
}

/* A dead-letter channel has no dead-letter channel of its own: its
 * messages come back to it, however often. */
static void test_dead_letter_channel_keeps_its_messages(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "1", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "j.dead", "stays", 202);
    hs_reply r;
    for (long count = 1; count <= 3; count++) {
        assert_int_equal(hs_get_leased(&s, "j.dead", "20", "0.05", &r), 200);
        assert_string_equal((char *)r.body, "stays");
        assert_int_equal(hs_delivery_count(&r), count);
        hs_reply_free(&r);
    }
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "j.dead", "20", LONG_LEASE, "stays", NULL, 4, receipt);
    hs_expect_ack(&s, "j.dead", receipt, 204, NULL);
    assert_int_equal(hs_status_value(&s, "j.dead.dead", "messages"), -1);
    assert_int_equal(hs_status_value(&s, "j.dead", "dead_lettered_total"), 0);
    hs_stop_ok(&s);
}

/* When NAME.dead cannot take the message (here: it cannot be created,
 * --max-channels), the message goes back to its own channel, logged. */
static void test_dead_letter_without_room_goes_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "1", "--max-channels", "1", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "solo", "stuck", 202);
    hs_expect_leased(&s, "solo", "0", "0.05", "stuck", NULL, 1, NULL);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "solo", "20", LONG_LEASE, "stuck", NULL, 2, receipt);
    assert_true(hs_log_wait(&s, "could not go to solo.dead", HS_PATIENCE_MS));
    assert_int_equal(hs_status_value(&s, "solo", "dead_lettered_total"), 0);
    assert_int_equal(hs_status_value(&s, "solo.dead", "messages"), -1);
    hs_expect_ack(&s, "solo", receipt, 204, NULL);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test(test)
    const struct CMUnitTest tests[] = {
        T(test_dead_letter_after_max_deliveries),
        T(test_dead_letter_channel_keeps_its_messages),
        T(test_dead_letter_without_room_goes_back),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*order*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
