/* test_delay.c - delayed messages against the real binary: POST ?delay=S
 * and Hopper-Delay: S (single and batch), bad values, a delayed release
 * back at the head, the redelivery backoff of --retry-delay, restarts
 * (SIGTERM, and kill -9 with --durable) that neither lose nor release
 * early, a channel holding only delayed messages kept at start, and
 * delayed bytes counted against a channel's disk files (507).
 *
 * Times are measured with the real clock: a message must never show
 * before its delay, counted from before the request that delayed it, and
 * must show within TOLERANCE of the delay counted from after it (50 ms of
 * slot, and room for a loaded machine; more under a sanitizer). */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* The bound under no load: a 50-ms slot, and the rest for the wake-up. */
#define TOLERANCE (HS_UNDER_SANITIZER ? 1.0 : 0.1)

/* POST text to path (a channel with its query): the status must be 202. */
static void post_to(const hs_server *s, const char *path, const char *text)
{
    hs_reply r;
    assert_int_equal(hs_post(s, path, text, strlen(text), "text/plain", &r), 0);
    if (r.status != 202)
        fail_msg("POST %s: %ld %s", path, r.status, (char *)r.body);
    hs_reply_free(&r);
}

/* POST text to channel with the header Hopper-Delay: delay. */
static void post_with_header(const hs_server *s, const char *channel, const char *delay,
                             const char *text, long status, const char *code)
{
    char path[256], header[128];
    snprintf(path, sizeof path, "/channels/%s", channel);
    /* curl sends "Name;" as the header with an empty value */
    snprintf(header, sizeof header, delay[0] ? "Hopper-Delay: %s" : "Hopper-Delay;", delay);
    const char *headers[] = {header, NULL};
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, text, strlen(text), "text/plain", headers, &r), 0);
    if (code ? !hs_is_error(&r, status, code) : r.status != status)
        fail_msg("POST %s with %s: %ld %s", path, header, r.status, (char *)r.body);
    hs_reply_free(&r);
}

/* Wait (up to wait seconds) for the next message of channel: it must be
 * text. Returns when it came (hs_now()). */
static double await_text(const hs_server *s, const char *channel, const char *wait,
                         const char *text)
{
    hs_expect_get(s, channel, wait, text);
    return hs_now();
}

/* came - before >= delay (never early) and came - after <= delay + TOLERANCE. */
static void expect_on_time(double before, double after, double came, double delay)
{
    if (came - before < delay)
        fail_msg("came %.3f s after the request began: before its delay of %.3f s", came - before,
                 delay);
    if (came - after > delay + TOLERANCE)
        fail_msg("came %.3f s after the request ended: late for a delay of %.3f s", came - after,
                 delay);
}

static void test_delay_fires_on_time(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    double before = hs_now();
    post_to(&s, "/channels/d?delay=0.5", "later");
    double after = hs_now();
    hs_expect_nothing(&s, "d", "0", NULL);
    assert_int_equal(hs_status_value(&s, "d", "delayed"), 1);
    assert_true(hs_status_value(&s, "d", "delayed_bytes") > 0);
    assert_int_equal(hs_status_value(&s, "d", "messages"), 0);
    assert_int_equal(hs_metric_value(&s, "hopper_channel_delayed_messages", "d"), 1);
    double came = await_text(&s, "d", "5", "later");
    expect_on_time(before, after, came, 0.5);
    assert_int_equal(hs_status_value(&s, "d", "delayed"), 0);

    /* the header does the same; a zero delay is no delay */
    before = hs_now();
    post_with_header(&s, "d", "0.3", "header", 202, NULL);
    after = hs_now();
    post_to(&s, "/channels/d?delay=0", "now");
    hs_expect_get(&s, "d", "0", "now");
    expect_on_time(before, after, await_text(&s, "d", "5", "header"), 0.3);
    hs_stop_ok(&s);
}

/* Messages delayed alike come out in the order they were sent; a batch
 * takes one delay for all its parts. */
static void test_delay_keeps_order(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    const char *texts[] = {"m0", "m1", "m2", "m3", "m4", "m5"};
    for (size_t i = 0; i < 6; i++) {
        if (i % 2)
            post_with_header(&s, "o", "0.4", texts[i], 202, NULL);
        else
            post_to(&s, "/channels/o?delay=0.4", texts[i]);
    }
    hs_expect_nothing(&s, "o", "0", NULL);
    await_text(&s, "o", "5", "m0");
    for (size_t i = 1; i < 6; i++) /* each due a little after the one before */
        hs_expect_get(&s, "o", "5", texts[i]);

    const char body[] = "--b\r\nContent-Type: text/plain\r\n\r\nfirst\r\n"
                        "--b\r\nContent-Type: text/plain\r\n\r\nsecond\r\n"
                        "--b\r\nContent-Type: text/plain\r\n\r\nthird\r\n--b--\r\n";
    hs_reply r;
    double before = hs_now();
    assert_int_equal(hs_post(&s, "/channels/b?delay=0.4", body, sizeof body - 1,
                             "multipart/mixed; boundary=b", &r),
                     0);
    double after = hs_now();
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "b", "delayed"), 3);
    hs_expect_nothing(&s, "b", "0", NULL);
    expect_on_time(before, after, await_text(&s, "b", "5", "first"), 0.4);
    hs_expect_get(&s, "b", "0", "second");
    hs_expect_get(&s, "b", "0", "third");
    hs_stop_ok(&s);
}

/* Bad delays are 400 bad_delay and store nothing. */
static void test_bad_delay(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-delay", "10", NULL};
    hs_start_ok(&s, args);
    const char *bad[] = {"abc", "-1", "10.5", "nan", "1e9", "0x10", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/channels/x?delay=%s", bad[i]);
        hs_expect_post_error(&s, path, "m", 1, "text/plain", 400, "bad_delay");
        post_with_header(&s, "x", bad[i], "m", 400, "bad_delay");
    }
    hs_expect_post_error(&s, "/channels/x?delay", "m", 1, "text/plain", 400, "bad_delay");
    /* both given: they must agree */
    const char *headers[] = {"Hopper-Delay: 2", NULL};
    hs_reply r;
    assert_int_equal(hs_post_headers(&s, "/channels/x?delay=1", "m", 1, "text/plain", headers, &r),
                     0);
    assert_true(hs_is_error(&r, 400, "bad_delay"));
    hs_reply_free(&r);
    assert_int_equal(
        hs_post_headers(&s, "/channels/x?delay=2.0", "m", 1, "text/plain", headers, &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "x", "delayed"), 1);
    assert_int_equal(hs_status_value(&s, "x", "messages"), 0);
    hs_stop_ok(&s);

    /* the flag itself */
    const char *too_long[] = {"--max-delay", "31536001", NULL};
    assert_int_not_equal(hs_start(&s, too_long), 0);
}

/* A release with ?delay= brings the message back at the head after the
 * delay; a bad delay leaves the lease as it was. */
static void test_release_with_delay(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "r", "a", 202);
    hs_expect_post(&s, "r", "b", 202);
    hs_expect_post(&s, "r", "c", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "r", "0", "60", "a", NULL, 1, receipt);
    hs_reply r;
    assert_int_equal(hs_on_receipt(&s, "POST", "r", receipt, "release?delay=x", &r), 400);
    assert_true(hs_is_error(&r, 400, "bad_delay"));
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "r", "leased"), 1);
    double before = hs_now();
    assert_int_equal(hs_on_receipt(&s, "POST", "r", receipt, "release?delay=0.4", &r), 204);
    double after = hs_now();
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "r", "delayed"), 1);
    assert_int_equal(hs_status_value(&s, "r", "leased"), 0);
    hs_expect_get(&s, "r", "0", "b");
    hs_await_status_ok(&s, "r", "delayed", 0);
    double came = hs_now();
    hs_reply got;
    assert_int_equal(hs_get_leased(&s, "r", "0", "60", &got), 200);
    assert_string_equal((char *)got.body, "a"); /* at the head, before c */
    assert_int_equal(hs_delivery_count(&got), 2);
    hs_reply_free(&got);
    expect_on_time(before, after, came, 0.4);
    hs_expect_get(&s, "r", "0", "c");
    hs_stop_ok(&s);
}

/* --retry-delay: a message whose lease ran out comes back after
 * min(0.2 x 2^(count - 1), 0.5) seconds. */
static void test_retry_backoff(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--retry-delay", "0.2", "--retry-delay-max", "0.5", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "t", "job", 202);
    const double lease = 0.1, backoff[] = {0.2, 0.4, 0.5, 0.5};
    double asked = 0, handed = 0; /* before and after the last hand-out */
    for (long count = 1; count <= 5; count++) {
        hs_reply r;
        double asking = hs_now();
        assert_int_equal(hs_get_leased(&s, "t", "10", "0.1", &r), 200);
        double now = hs_now();
        assert_int_equal(hs_delivery_count(&r), count);
        hs_reply_free(&r);
        if (count > 1) {
            double expected = lease + backoff[count - 2];
            if (now - asked < expected || now - handed > expected + TOLERANCE)
                fail_msg("delivery %ld came %.3f s after the last, not %.3f s", count, now - handed,
                         expected);
        }
        asked = asking;
        handed = now;
        if (count == 1)
            hs_expect_nothing(&s, "t", "0.2", NULL); /* gone for 0.1 + 0.2 s */
    }
    hs_stop_ok(&s);
}

/* A clean stop keeps delayed messages (a channel holding nothing else is
 * kept too) and the next start does not release them early. */
static void test_restart_keeps_delayed(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    double before = hs_now();
    post_to(&s, "/channels/only-delayed?delay=2", "kept");
    double after = hs_now();
    hs_stop_ok(&s);
    hs_start_in_ok(&s, dir, NULL);
    assert_int_equal(hs_status_value(&s, "only-delayed", "delayed"), 1);
    assert_int_equal(hs_status_value(&s, "only-delayed", "messages"), 0);
    if (hs_now() - before < 1.8)
        hs_expect_nothing(&s, "only-delayed", "0", NULL);
    expect_on_time(before, after, await_text(&s, "only-delayed", "10", "kept"), 2.0);
    hs_stop_ok(&s);
}

/* With --durable a 202 for a delayed message means it is synced: kill -9
 * loses neither it nor a delayed release, and releases neither early. */
static void test_kill_durable_keeps_delayed(void **state)
{
    const char *dir = *state;
    hs_server s;
    const char *args[] = {"--durable", NULL};
    hs_start_in_ok(&s, dir, args);
    hs_expect_post(&s, "k", "released", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "k", "0", "60", "released", NULL, 1, receipt);
    double before = hs_now();
    post_to(&s, "/channels/k?delay=1.5", "posted");
    hs_reply r;
    assert_int_equal(hs_on_receipt(&s, "POST", "k", receipt, "release?delay=1.5", &r), 204);
    double after = hs_now();
    hs_reply_free(&r);
    assert_int_equal(hs_stop_with(&s, SIGKILL), -1);
    hs_start_in_ok(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "k", "delayed"), 2);
    expect_on_time(before, after, await_text(&s, "k", "10", "posted"), 1.5);
    hs_expect_get(&s, "k", "1", "released"); /* durable: given back to the tail */
    hs_expect_nothing(&s, "k", "0", NULL);
    hs_stop_ok(&s);
}

/* Delayed bytes count against the channel's disk files: a full channel
 * answers 507 with the payload. */
static void test_delayed_fill_a_channel(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-disk-files", "1", "--file-bytes", "2KiB", NULL};
    hs_start_ok(&s, args);
    char body[1200];
    memset(body, 'z', sizeof body);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/f?delay=60", body, sizeof body, "text/plain", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_post(&s, "/channels/f?delay=60", body, sizeof body, "text/plain", &r), 0);
    assert_int_equal(r.status, 507);
    assert_int_equal(r.len, sizeof body);
    assert_memory_equal(r.body, body, sizeof body);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "f", "delayed"), 1);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test(test)
#define D(test) cmocka_unit_test_setup_teardown(test, hs_dir_setup, hs_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_delay_fires_on_time),
        T(test_delay_keeps_order),
        T(test_bad_delay),
        T(test_release_with_delay),
        T(test_retry_backoff),
        D(test_restart_keeps_delayed),
        D(test_kill_durable_keeps_delayed),
        T(test_delayed_fill_a_channel),
    };
#undef T
#undef D
    return cmocka_run_group_tests(tests, NULL, NULL);
}
