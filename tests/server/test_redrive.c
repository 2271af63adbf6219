/* test_redrive.c - POST /channels/NAME/redrive (server/redrive.c): the
 * messages of NAME.dead go to the tail of NAME in order, with their kept
 * headers and their delivery count back to 0; ?max=N moves the oldest N;
 * a full NAME stops the move with nothing lost or reordered; refusals. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

/* POST text to channel with X-Trace: trace. */
static void post_traced(const hs_server *s, const char *channel, const char *text)
{
    char path[256], header[128];
    snprintf(path, sizeof path, "/channels/%s", channel);
    snprintf(header, sizeof header, "X-Trace: %.16s", text);
    const char *headers[] = {header, NULL};
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, text, strlen(text), "text/plain", headers, &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
}

/* POST /channels/name/redrive + query: 200 with moved. */
static void redrive_ok(const hs_server *s, const char *name, const char *query, int moved)
{
    char path[256], want[256];
    snprintf(path, sizeof path, "/channels/%s/redrive%s", name, query);
    hs_reply r;
    assert_int_equal(hs_request(s, "POST", path, NULL, 0, NULL, &r), 0);
    snprintf(want, sizeof want, "{\"channel\":\"%s\",\"from\":\"%s.dead\",\"moved\":%d}", name,
             name, moved);
    if (r.status != 200 || strcmp((char *)r.body, want) != 0)
        fail_msg("POST %s: %ld %s, not %s", path, r.status, (char *)r.body, want);
    hs_reply_free(&r);
}

/* The next GET of channel is text, with its trace and delivery count. */
static void expect_next(const hs_server *s, const char *channel, const char *text, long count)
{
    char path[256], trace[128];
    snprintf(path, sizeof path, "/channels/%s?wait=0", channel);
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    if (r.status != 200 || r.len != strlen(text) || memcmp(r.body, text, r.len) != 0)
        fail_msg("GET %s: %ld %.*s, not %s", path, r.status, (int)r.len, (char *)r.body, text);
    assert_true(hs_header(&r, "X-Trace", trace, sizeof trace));
    assert_int_equal(strncmp(trace, text, 16), 0);
    assert_int_equal(strlen(trace), strlen(text) < 16 ? strlen(text) : 16);
    assert_int_equal(hs_delivery_count(&r), count);
    hs_reply_free(&r);
}

static void test_redrive_in_order(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Trace", NULL};
    hs_start_ok(&s, args);
    post_traced(&s, "jobs", "already");
    const char *dead[] = {"d0", "d1", "d2", "d3", "d4"};
    for (int i = 0; i < 5; i++)
        post_traced(&s, "jobs.dead", dead[i]);
    /* d0 handed out once and released: its count is 1 in jobs.dead */
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/jobs.dead?wait=0&lease=30", &r), 0);
    char receipt[HS_RECEIPT_LEN + 1], path[256];
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, sizeof receipt));
    hs_reply_free(&r);
    snprintf(path, sizeof path, "/channels/jobs.dead/messages/%s/release", receipt);
    hs_expect_request(&s, "POST", path, 204);

    redrive_ok(&s, "jobs", "?max=2", 2);
    assert_int_equal(hs_status_value(&s, "jobs.dead", "messages"), 3);
    redrive_ok(&s, "jobs", "", 3);
    assert_int_equal(hs_status_value(&s, "jobs.dead", "messages"), 0);
    redrive_ok(&s, "jobs", "", 0);
    expect_next(&s, "jobs", "already", 1);
    for (int i = 0; i < 5; i++)
        expect_next(&s, "jobs", dead[i], 1); /* counts reset: d0's too */
    hs_expect_nothing(&s, "jobs", "0", NULL);
    assert_int_equal(hs_metric_value(&s, "hopper_redrives_total", NULL), 3);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_redriven_total", NULL), 5);
    hs_stop_ok(&s);
}

/* NAME full: the move stops with 507; nothing lost, nothing reordered. */
static void test_redrive_into_full(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers",
                          "X-Trace",
                          "--memory-bytes",
                          "4KiB",
                          "--max-disk-files",
                          "0",
                          "--max-message-bytes",
                          "2KiB",
                          NULL};
    hs_start_ok(&s, args);
    char big[4][1100];
    for (int i = 0; i < 4; i++) {
        memset(big[i], 'a' + i, sizeof big[i] - 1);
        big[i][sizeof big[i] - 1] = '\0';
        big[i][0] = (char)('0' + i);
    }
    post_traced(&s, "jobs", big[0]);
    post_traced(&s, "jobs", big[1]);
    post_traced(&s, "jobs.dead", big[2]);
    post_traced(&s, "jobs.dead", big[3]);
    hs_reply r;
    assert_int_equal(hs_request(&s, "POST", "/channels/jobs/redrive", NULL, 0, NULL, &r), 0);
    assert_true(hs_is_error(&r, 507, "full"));
    hs_reply_free(&r);
    long long in_jobs = hs_status_value(&s, "jobs", "messages");
    long long in_dead = hs_status_value(&s, "jobs.dead", "messages");
    assert_int_equal(in_jobs + in_dead, 4);
    assert_true(in_dead >= 1);
    expect_next(&s, "jobs", big[0], 1);
    expect_next(&s, "jobs", big[1], 1);
    if (in_jobs == 3)
        expect_next(&s, "jobs", big[2], 1);
    for (long long i = 4 - in_dead; i < 4; i++)
        expect_next(&s, "jobs.dead", big[i], 1);
    hs_stop_ok(&s);
}

static void test_redrive_refusals(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_error(&s, "POST", "/channels/jobs/redrive", 404, "no_channel");
    assert_int_equal(hs_status_value(&s, "jobs", "messages"), -1); /* not made */
    hs_expect_error(&s, "POST", "/channels/jobs.dead/redrive", 400, "bad_name");
    hs_expect_post(&s, "jobs.dead", "x", 202);
    hs_expect_error(&s, "POST", "/channels/jobs/redrive?max=0", 400, "bad_max");
    hs_expect_error(&s, "POST", "/channels/jobs/redrive?max=x", 400, "bad_max");
    hs_expect_error(&s, "GET", "/channels/jobs/redrive", 405, "method_not_allowed");
    hs_expect_get(&s, "jobs.dead", "0", "x");
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redrive_in_order),
        cmocka_unit_test(test_redrive_into_full),
        cmocka_unit_test(test_redrive_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
