/* test_peek.c - GET /channels/NAME/messages (server/peek.c): the oldest
 * ready messages as multipart/mixed, with their headers, ids and delivery
 * counts, from memory and queue files, without taking, leasing or
 * reordering anything: a GET afterwards sees exactly what it would have;
 * ?max= bounds; an unknown channel is 404 and not made. */
#include "batch_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#define COUNT 40

static void text_of(int i, char out[32])
{
    snprintf(out, 32, "message %02d", i);
}

/* POST /channels/c message 0..COUNT-1, with an X-Trace header kept. */
static void post_all(const hs_server *s)
{
    for (int i = 0; i < COUNT; i++) {
        char text[32], trace[64];
        text_of(i, text);
        snprintf(trace, sizeof trace, "X-Trace: t%d", i);
        const char *headers[] = {trace, NULL};
        bu_post_one(s, "c", text, strlen(text), "text/plain", headers);
    }
}

/* Peek path must show messages first..first+n-1 in order, each never
 * handed out (count 0) unless it is `released`, with its trace header. */
static void expect_peek(const hs_server *s, const char *path, int first, int n, int released)
{
    bu_batch b;
    bu_get_batch(s, path, &b);
    assert_int_equal(b.count, (size_t)n);
    for (int k = 0; k < n; k++) {
        int i = first + k;
        char text[32], trace[16];
        text_of(i, text);
        snprintf(trace, sizeof trace, "t%d", i);
        bu_expect_part_body(&b.parts[k], text, strlen(text));
        bu_expect_part_header(&b.parts[k], "Content-Type", "text/plain");
        bu_expect_part_header(&b.parts[k], "X-Trace", trace);
        bu_expect_part_header(&b.parts[k], "Hopper-Delivery-Count", i == released ? "1" : "0");
        bu_expect_no_part_header(&b.parts[k], "Hopper-Receipt");
        char id[HS_MESSAGE_ID_LEN + 1];
        bu_part_message_id(&b.parts[k], id);
    }
    bu_batch_free(&b);
}

/* Most of the channel in queue files, the first message leased: peeks show
 * the next ones, again and again; then GETs take every message once, in
 * order, the leased one when its lease is released. */
static void test_peek_changes_nothing(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "2KiB", "--keep-headers", "X-Trace", NULL};
    hs_start_ok(&s, args);
    post_all(&s);
    assert_true(hs_status_value(&s, "c", "disk_files") > 0);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/c?wait=0&lease=30", &r), 0);
    assert_int_equal(r.status, 200);
    char receipt[HS_RECEIPT_LEN + 1];
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, sizeof receipt));
    hs_reply_free(&r);

    expect_peek(&s, "/channels/c/messages", 1, 10, -1); /* the default max */
    expect_peek(&s, "/channels/c/messages?max=3", 1, 3, -1);
    expect_peek(&s, "/channels/c/messages?max=1000", 1, COUNT - 1, -1);
    assert_int_equal(hs_status_value(&s, "c", "messages"), COUNT - 1);
    assert_int_equal(hs_status_value(&s, "c", "leased"), 1);

    char path[256];
    snprintf(path, sizeof path, "/channels/c/messages/%s/release", receipt);
    hs_expect_request(&s, "POST", path, 204);
    expect_peek(&s, "/channels/c/messages?max=5", 0, 5, 0); /* back at the head, count 1 */
    for (int i = 0; i < COUNT; i++) {
        char text[32];
        text_of(i, text);
        hs_expect_get(&s, "c", "0", text);
    }
    hs_expect_request(&s, "GET", "/channels/c/messages", 204); /* empty */
    hs_stop_ok(&s);
}

/* What a peek copies counts on the server's budget while it exists, as a
 * GET's does, and is given back once the response is over: the budget's
 * memory is where it was before, peek after peek. */
static void test_peek_gives_its_memory_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "0", NULL}; /* the messages in queue files */
    hs_start_ok(&s, args);
    enum { N = 20, SIZE = 64 * 1024 };
    static char body[SIZE];
    memset(body, 'p', sizeof body);
    for (int i = 0; i < N; i++)
        hs_expect_post_bytes(&s, "big", body, sizeof body, NULL, 202);
    long long idle = hs_budget_value(&s, "memory_bytes");
    for (int round = 0; round < 3; round++) {
        hs_reply r;
        assert_int_equal(hs_get(&s, "/channels/big/messages?max=1000", &r), 0);
        assert_int_equal(r.status, 200);
        assert_true(r.len > (size_t)N * SIZE); /* every message, with its part headers */
        hs_reply_free(&r);
        double deadline = hs_now() + 5;
        while (hs_budget_value(&s, "memory_bytes") != idle && hs_now() < deadline)
            usleep(10000);
        assert_int_equal(hs_budget_value(&s, "memory_bytes"), idle);
    }
    assert_int_equal(hs_status_value(&s, "big", "messages"), N);
    hs_stop_ok(&s);
}

/* Bad requests: an unknown channel (404, not made), a bad max (400),
 * other methods (405). */
static void test_peek_refusals(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_error(&s, "GET", "/channels/none/messages", 404, "no_channel");
    assert_int_equal(hs_status_value(&s, "none", "messages"), -1);
    hs_expect_post(&s, "c", "x", 202);
    hs_expect_error(&s, "GET", "/channels/c/messages?max=0", 400, "bad_max");
    hs_expect_error(&s, "GET", "/channels/c/messages?max=1001", 400, "bad_max");
    hs_reply r;
    assert_int_equal(hs_request(&s, "POST", "/channels/c/messages", "y", 1, "text/plain", &r), 0);
    assert_true(hs_is_error(&r, 405, "method_not_allowed"));
    char allow[64];
    assert_true(hs_header(&r, "Allow", allow, sizeof allow));
    assert_string_equal(allow, "GET, DELETE");
    hs_reply_free(&r);
    hs_expect_get(&s, "c", "0", "x");
    hs_stop_ok(&s);
}

/* The age of the oldest ready message: in the list, /status and /metrics;
 * 0 for an empty channel. */
static void test_oldest_age(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "old", "first", 202);
    hs_expect_nothing(&s, "empty", "0", NULL);
    usleep(1200 * 1000); /* let it age */
    hs_expect_post(&s, "old", "second", 202);
    long long age_ms = -1;
    hs_reply r;
    assert_int_equal(hs_get(&s, "/metrics", &r), 0);
    const char *line =
        strstr((char *)r.body, "hopper_channel_oldest_age_seconds{channel=\"old\"} ");
    assert_non_null(line);
    double age = 0;
    assert_int_equal(sscanf(strchr(line, '}') + 2, "%lf", &age), 1);
    age_ms = (long long)(age * 1000);
    assert_non_null(
        strstr((char *)r.body, "hopper_channel_oldest_age_seconds{channel=\"empty\"} 0.000"));
    hs_reply_free(&r);
    assert_true(age_ms >= 1200 && age_ms < 10000);
    hs_expect_get(&s, "old", "0", "first");
    assert_int_equal(hs_get(&s, "/metrics", &r), 0);
    line = strstr((char *)r.body, "hopper_channel_oldest_age_seconds{channel=\"old\"} ");
    assert_int_equal(sscanf(strchr(line, '}') + 2, "%lf", &age), 1);
    hs_reply_free(&r);
    assert_true(age < 1.0); /* "second" is the oldest now */
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peek_changes_nothing),
        cmocka_unit_test(test_peek_refusals),
        cmocka_unit_test(test_peek_gives_its_memory_back),
        cmocka_unit_test(test_oldest_age),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
