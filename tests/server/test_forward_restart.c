/* test_forward_restart.c - forwarding across stops and crashes, against
 * the real binary: stopped (SIGTERM) during a backoff, a message comes
 * back after the restart with its Hopper-Message-Id and a higher
 * Hopper-Delivery-Count; with --durable, kill -9 while an attempt is in
 * flight or during a backoff loses nothing (every message arrives after
 * the restart, in order, with its id); SIGTERM while the receiver hangs
 * stops within 5 s (and a little) and the message is delivered after the
 * restart; an attempt that ends within those 5 s is waited for, and its
 * message not sent again.
 *
 * Each test has its own receiver and data directory (the fixture); the
 * directory outlives the servers started on it. */
#include "harness.h"
#include "test_forward_util.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define QUICK_RETRY                                                                                \
    "--forward-retry-min", "0.05", "--forward-retry-max", "0.5", "--forward-timeout", "1"
/* A backoff that is surely still being waited out when the test acts. */
#define LONG_RETRY "--forward-retry-min", "5", "--forward-retry-max", "5"
/* How long SIGTERM waits for attempts in flight, and what a loaded machine
 * may add. */
#define STOP_WAIT_S 5.0
#define STOP_SLACK_S 2.0
/* A hang longer than any test. */
#define HANG_MS 60000

typedef fw_fixture fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || rc_start(&f->r) != 0 || hs_make_dir(f->dir, sizeof f->dir) != 0) {
        free(f);
        return -1;
    }
    fw_rule(f->r, "hooks", "/hook", f->rule, sizeof f->rule);
    *state = f;
    return 0;
}

/* Start hopper on f's directory forwarding "hooks" to the receiver, with
 * the flags given (NULL-terminated). */
static void start_on_dir(hs_server *s, fixture *f, const char *const *flags)
{
    const char *args[32] = {"--forward", f->rule};
    size_t n = 2;
    for (size_t i = 0; flags[i] && n < 31; i++)
        args[n++] = flags[i];
    args[n] = NULL;
    hs_start_in_ok(s, f->dir, args);
}

static void post_messages(const hs_server *s, int n)
{
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        hs_expect_post(s, "hooks", text, 202);
    }
}

/* After a restart, requests from..from+n-1 must be m0..m(n-1) in order,
 * each a delivery of its own (ids distinct), and m0's id the one of
 * request 0 (the attempt before the restart). */
static void expect_all_after_restart(rc_receiver *r, size_t from, int n)
{
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        fw_expect_delivery(r, from + (size_t)i, "hooks", text, 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(fw_id(rc_request_at(r, from + (size_t)i)),
                                    fw_id(rc_request_at(r, from + (size_t)j)));
    }
    assert_string_equal(fw_id(rc_request_at(r, from)), fw_id(rc_request_at(r, 0)));
}

/* Stopped while a message waits out its backoff: after the restart it
 * comes again, same id, delivery count higher, before the next one. */
static void test_sigterm_in_backoff_keeps_id_and_count(void **state)
{
    fixture *f = *state;
    rc_push_status(f->r, 500, 1);
    hs_server s;
    const char *slow[] = {LONG_RETRY, NULL};
    start_on_dir(&s, f, slow);
    post_messages(&s, 2);
    fw_expect_delivery(f->r, 0, "hooks", "m0", 1);
    assert_true(fw_await_forward_number(&s, "hooks", "consecutive_failures", 1, HS_PATIENCE_MS) ==
                1);
    hs_stop_ok(&s);
    assert_int_equal(rc_count(f->r), 1);

    const char *quick[] = {QUICK_RETRY, NULL};
    start_on_dir(&s, f, quick);
    expect_all_after_restart(f->r, 1, 2);
    long count = fw_delivery_count(rc_request_at(f->r, 1));
    fprintf(stderr, "after SIGTERM in a backoff, m0 came with Hopper-Delivery-Count %ld\n", count);
    if (count < 2)
        fail_msg("Hopper-Delivery-Count %ld after a restart, the first attempt's was 1", count);
    assert_int_equal(fw_delivery_count(rc_request_at(f->r, 2)), 1);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_stop_ok(&s);
}

/* --durable, kill -9 while the receiver holds the first attempt: after
 * the restart all five messages arrive in order, the first with its id. */
static void test_kill9_mid_attempt_loses_nothing(void **state)
{
    fixture *f = *state;
    rc_push_answer(f->r, &(rc_answer){.status = 200, .hang_ms = HANG_MS});
    hs_server s;
    const char *first[] = {"--durable", "--forward-timeout", "30", NULL};
    start_on_dir(&s, f, first);
    post_messages(&s, 5);
    fw_expect_delivery(f->r, 0, "hooks", "m0", 1);
    hs_stop_with(&s, SIGKILL);
    assert_int_equal(rc_count(f->r), 1);

    const char *again[] = {"--durable", QUICK_RETRY, NULL};
    start_on_dir(&s, f, again);
    expect_all_after_restart(f->r, 1, 5);
    fprintf(stderr, "after kill -9 mid-attempt, m0 came with Hopper-Delivery-Count %ld\n",
            fw_delivery_count(rc_request_at(f->r, 1)));
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_true(rc_wait_answered(f->r, 5, HS_PATIENCE_MS)); /* all but the hanging one */
    assert_int_equal(rc_count(f->r), 6);
    hs_stop_ok(&s);
}

/* --durable, kill -9 during a backoff: the same, from a message that had
 * failed once. */
static void test_kill9_mid_backoff_loses_nothing(void **state)
{
    fixture *f = *state;
    rc_push_status(f->r, 503, 1);
    hs_server s;
    const char *first[] = {"--durable", LONG_RETRY, NULL};
    start_on_dir(&s, f, first);
    post_messages(&s, 3);
    fw_expect_delivery(f->r, 0, "hooks", "m0", 1);
    assert_true(fw_await_forward_number(&s, "hooks", "consecutive_failures", 1, HS_PATIENCE_MS) ==
                1);
    hs_stop_with(&s, SIGKILL);
    assert_int_equal(rc_count(f->r), 1);

    const char *again[] = {"--durable", QUICK_RETRY, NULL};
    start_on_dir(&s, f, again);
    expect_all_after_restart(f->r, 1, 3);
    fprintf(stderr, "after kill -9 mid-backoff, m0 came with Hopper-Delivery-Count %ld\n",
            fw_delivery_count(rc_request_at(f->r, 1)));
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(f->r), 4);
    hs_stop_ok(&s);
}

/* SIGTERM while the receiver holds an attempt (and --forward-timeout would
 * let it hold on for 30 s): hopper waits for it at most 5 s, gives the
 * message back and exits 0; after the restart it is delivered. */
static void test_sigterm_while_receiver_hangs(void **state)
{
    fixture *f = *state;
    rc_push_answer(f->r, &(rc_answer){.status = 200, .hang_ms = HANG_MS});
    hs_server s;
    const char *first[] = {"--forward-timeout", "30", NULL};
    start_on_dir(&s, f, first);
    post_messages(&s, 2);
    fw_expect_delivery(f->r, 0, "hooks", "m0", 1);
    double start = hs_now();
    hs_stop_ok(&s);
    double took = hs_now() - start;
    fprintf(stderr, "SIGTERM with an attempt in flight: exited after %.2f s\n", took);
    if (took > STOP_WAIT_S + STOP_SLACK_S)
        fail_msg("hopper took %.2f s to stop, more than %.0f s", took, STOP_WAIT_S);
    assert_int_equal(rc_count(f->r), 1);

    const char *again[] = {QUICK_RETRY, NULL};
    start_on_dir(&s, f, again);
    expect_all_after_restart(f->r, 1, 2);
    fprintf(stderr, "after SIGTERM mid-attempt, m0 came with Hopper-Delivery-Count %ld\n",
            fw_delivery_count(rc_request_at(f->r, 1)));
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_stop_ok(&s);
}

/* SIGTERM while an attempt is in flight that ends within the 5 s: hopper
 * waits for its answer, and the message it consumed is not sent again
 * after the restart. */
static void test_sigterm_waits_for_an_attempt(void **state)
{
    fixture *f = *state;
    rc_push_answer(f->r, &(rc_answer){.status = 200, .hang_ms = 1500});
    hs_server s;
    const char *first[] = {"--forward-timeout", "30", NULL};
    start_on_dir(&s, f, first);
    post_messages(&s, 2);
    fw_expect_delivery(f->r, 0, "hooks", "m0", 1);
    double start = hs_now();
    hs_stop_ok(&s);
    double took = hs_now() - start;
    fprintf(stderr, "SIGTERM with an attempt of 1.5 s in flight: exited after %.2f s\n", took);
    assert_true(rc_wait_answered(f->r, 1, HS_PATIENCE_MS));
    assert_int_equal(rc_request_at(f->r, 0)->status, 200);
    assert_int_equal(rc_count(f->r), 1);

    const char *again[] = {QUICK_RETRY, NULL};
    start_on_dir(&s, f, again);
    fw_expect_delivery(f->r, 1, "hooks", "m1", 1);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(f->r), 2);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, setup, fw_fixture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_sigterm_in_backoff_keeps_id_and_count), T(test_kill9_mid_attempt_loses_nothing),
        T(test_kill9_mid_backoff_loses_nothing),       T(test_sigterm_while_receiver_hangs),
        T(test_sigterm_waits_for_an_attempt),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*kill9*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
