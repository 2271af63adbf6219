/* test_channels.c - POST and GET of /channels/NAME: round trips, content
 * types, binary and empty bodies, FIFO across the memory/disk boundary, 507
 * with the payload handed back, recovery, 413, 503, 405 and 404. */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_round_trip(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/greetings", "hello", 5, "text/plain", &r), 0);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.content_type, "application/json");
    hs_reply_free(&r);

    hs_expect_message(&s, "greetings", "hello", 5, "text/plain");

    assert_int_equal(hs_get(&s, "/channels/greetings?wait=0", &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

static void test_default_content_type(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post_bytes(&s, "raw", "x", 1, NULL, 202);
    hs_expect_message(&s, "raw", "x", 1, "application/octet-stream");
    hs_stop_ok(&s);
}

static void test_binary_bodies(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    /* every byte value, NUL included, then a large pseudo-random body */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t big_len = 700 * 1000;
    unsigned char *big = malloc(big_len);
    uint32_t x = 12345;
    for (size_t i = 0; i < big_len; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (unsigned char)(x >> 16);
    }
    const char *type = "application/x-hopper-test; charset=binary";
    hs_expect_post_bytes(&s, "bin", all, sizeof all, type, 202);
    hs_expect_post_bytes(&s, "bin", big, big_len, "image/png", 202);
    hs_expect_message(&s, "bin", all, sizeof all, type);
    hs_expect_message(&s, "bin", big, big_len, "image/png");
    free(big);
    hs_stop_ok(&s);
}

static void test_empty_body(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "empty", "", 202);
    hs_expect_message(&s, "empty", "", 0, "text/plain");
    hs_expect_nothing(&s, "empty", "0", NULL);
    hs_stop_ok(&s);
}

static void test_fifo_and_channels_independent(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char text[64];
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof text, "a-%d", i);
        hs_expect_post(&s, "a", text, 202);
        snprintf(text, sizeof text, "b-%d", i);
        hs_expect_post(&s, "b", text, 202);
    }
    for (int i = 0; i < 30; i++) {
        snprintf(text, sizeof text, "b-%d", i);
        hs_expect_get(&s, "b", "0", text);
        snprintf(text, sizeof text, "a-%d", i);
        hs_expect_get(&s, "a", "0", text);
    }
    hs_stop_ok(&s);
}

/* A payload of about 1000 bytes that starts with its number and holds NUL
 * and high bytes, so any mix-up or truncation shows. */
static size_t numbered(unsigned char *buf, int n)
{
    size_t len = 1000 + (size_t)(n % 7);
    int head = snprintf((char *)buf, 32, "%06d:", n);
    for (size_t i = (size_t)head; i < len; i++)
        buf[i] = (unsigned char)((i * 31u + (unsigned)n) & 0xff);
    buf[head] = 0;
    return len;
}

static void expect_numbered(const hs_server *s, const char *channel, int n)
{
    unsigned char want[1100];
    size_t len = numbered(want, n);
    hs_expect_message(s, channel, want, len, "application/x-numbered");
}

/* Post numbered messages from first on until one is refused with 507.
 * Returns how many were accepted; checks the 507 returns the payload. */
static int post_until_full(const hs_server *s, const char *channel, int first, int limit)
{
    char path[128];
    snprintf(path, sizeof path, "/channels/%s", channel);
    for (int n = first; n < first + limit; n++) {
        unsigned char buf[1100];
        size_t len = numbered(buf, n);
        hs_reply r;
        assert_int_equal(hs_post(s, path, buf, len, "application/x-numbered", &r), 0);
        if (r.status == 507) {
            /* the caller gets its exact data back to keep or re-route */
            assert_int_equal(r.len, len);
            assert_memory_equal(r.body, buf, len);
            assert_string_equal(r.content_type, "application/x-numbered");
            char retry[32];
            assert_true(hs_header(&r, "Retry-After", retry, sizeof retry));
            assert_string_equal(retry, "1");
            hs_reply_free(&r);
            return n - first;
        }
        assert_int_equal(r.status, 202);
        hs_reply_free(&r);
    }
    fail_msg("no 507 after %d messages", limit);
    return -1;
}

static void test_fifo_across_memory_and_disk_then_full(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {
        "--memory-bytes", "4KiB", "--file-bytes", "8KiB", "--max-disk-files", "3", NULL};
    hs_start_ok(&s, args);

    int accepted = post_until_full(&s, "q", 0, 200);
    /* a few in 4 KiB of memory, the rest in three files of about 8 KiB */
    assert_true(accepted > 10);
    assert_true(accepted < 60);
    assert_int_equal(hs_status_value(&s, "q", "disk_files"), 3);
    assert_int_equal(hs_status_value(&s, "q", "messages"), accepted);
    assert_int_equal(hs_status_value(&s, "q", "rejected_full_total"), 1);
    assert_true(hs_status_value(&s, "q", "memory_bytes") > 0);
    assert_true(hs_status_value(&s, "q", "disk_bytes") > 8 * 1024);
    assert_true(hs_log_wait(&s, "channel q full", HS_PATIENCE_MS));

    /* a second refusal is not logged again */
    unsigned char buf[1100];
    size_t len = numbered(buf, 9999);
    hs_expect_post_bytes(&s, "q", buf, len, "application/x-numbered", 507);

    for (int n = 0; n < accepted; n++)
        expect_numbered(&s, "q", n);
    hs_expect_nothing(&s, "q", "0", NULL);
    assert_int_equal(hs_status_value(&s, "q", "disk_files"), 0);
    assert_int_equal(hs_status_value(&s, "q", "messages"), 0);

    /* drained: the channel takes as much as before, in order again */
    int again = post_until_full(&s, "q", 1000, 200);
    assert_true(again >= accepted - 1);
    assert_true(hs_log_wait(&s, "channel q accepting messages again", HS_PATIENCE_MS));
    for (int n = 1000; n < 1000 + again; n++)
        expect_numbered(&s, "q", n);
    hs_expect_nothing(&s, "q", "0", NULL);
    hs_stop_ok(&s);
}

static void test_memory_only_full_and_recovery(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {
        "--max-disk-files", "0", "--memory-bytes", "16KiB", "--max-message-bytes", "2KiB", NULL};
    hs_start_ok(&s, args);
    int accepted = post_until_full(&s, "m", 0, 100);
    assert_true(accepted >= 5);
    assert_true(accepted <= 16);
    assert_int_equal(hs_status_value(&s, "m", "disk_files"), 0);
    expect_numbered(&s, "m", 0);
    /* one out, one in */
    assert_int_equal(post_until_full(&s, "m", accepted, 100), 1);
    for (int n = 1; n <= accepted; n++)
        expect_numbered(&s, "m", n);
    hs_expect_nothing(&s, "m", "0", NULL);
    hs_stop_ok(&s);
}

static void test_too_big(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "1KiB", NULL};
    hs_start_ok(&s, args);
    char body[4096];
    memset(body, 'z', sizeof body);
    hs_reply r;

    hs_expect_post_bytes(&s, "big", body, 1024, "text/plain", 202);
    hs_expect_post_error(&s, "/channels/big", body, 1025, "text/plain", 413, "too_big");
    /* no Content-Length: found out while reading */
    assert_int_equal(hs_post_chunked(&s, "/channels/big", body, 1025, &r), 0);
    assert_true(hs_is_error(&r, 413, "too_big"));
    hs_reply_free(&r);
    assert_int_equal(hs_post_chunked(&s, "/channels/big", body, 1000, &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    /* far beyond, announced: refused from the headers, the body read and
     * dropped so the answer arrives on a clean connection */
    size_t huge_len = 8u << 20;
    char *huge = calloc(1, huge_len);
    hs_expect_post_error(&s, "/channels/big", huge, huge_len, "text/plain", 413, "too_big");
    /* a client that waits for 100 Continue never has to send it: curl sends
     * the body when asked to continue, or after 20 s without an answer */
    assert_int_equal(hs_post_expect(&s, "/channels/big", huge, huge_len, &r), 0);
    assert_true(hs_is_error(&r, 413, "too_big"));
    assert_true(r.uploaded == 0);
    assert_true(r.seconds < 15.0);
    hs_reply_free(&r);
    free(huge);
    /* an absurd announced size is answered at once, without reading */
    int fd = hs_connect(&s);
    const char *req = "POST /channels/big HTTP/1.1\r\nHost: t\r\n"
                      "Content-Length: 1073741824\r\n\r\nxyz";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[1024];
    const char *body_at;
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body_at), 413);
    close(fd);

    assert_int_equal(hs_status_value(&s, "big", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "big", "rejected_too_big_total"), 5);
    hs_expect_message(&s, "big", body, 1024, NULL);
    hs_expect_message(&s, "big", body, 1000, NULL);
    hs_stop_ok(&s);
}

static void test_content_type_limit(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char type[1100];
    memset(type, 'a', sizeof type);
    memcpy(type, "text/", 5);
    type[1024] = '\0';
    hs_expect_post_bytes(&s, "ct", "x", 1, type, 202);
    hs_expect_message(&s, "ct", "x", 1, type);

    type[1024] = 'a';
    type[1025] = '\0';
    hs_expect_post_error(&s, "/channels/ct", "x", 1, type, 400, "bad_content_type");
    assert_int_equal(hs_status_value(&s, "ct", "messages"), 0);
    hs_stop_ok(&s);
}

static void test_max_channels(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-channels", "2", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "one", "1", 202);
    hs_expect_nothing(&s, "two", "0", NULL); /* a GET creates too */
    hs_expect_post_error(&s, "/channels/three", "3", 1, "text/plain", 503, "too_many_channels");
    hs_expect_error(&s, "GET", "/channels/three?wait=0", 503, "too_many_channels");
    hs_expect_post(&s, "one", "again", 202);
    hs_expect_post(&s, "two", "2", 202);
    assert_int_equal(hs_status_value(&s, "three", "messages"), -1);
    assert_true(hs_log_wait(&s, "channel two created", HS_PATIENCE_MS));
    hs_stop_ok(&s);
}

static void test_method_not_allowed(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    const char *methods[] = {"PUT", "PATCH", "OPTIONS", "HEAD"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        hs_reply r;
        assert_int_equal(hs_request(&s, methods[i], "/channels/x", NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 405);
        char allow[64];
        assert_true(hs_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "GET, POST, DELETE");
        if (strcmp(methods[i], "HEAD") != 0)
            assert_true(hs_is_error(&r, 405, "method_not_allowed"));
        hs_reply_free(&r);
    }
    /* with a body, too */
    hs_reply r;
    assert_int_equal(hs_request(&s, "PUT", "/channels/x", "data", 4, "text/plain", &r), 0);
    assert_true(hs_is_error(&r, 405, "method_not_allowed"));
    hs_reply_free(&r);
    hs_expect_request(&s, "DELETE", "/status", 405);
    hs_stop_ok(&s);
}

static void test_not_found(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    /* (/channels itself is the list of channels: test_list.c; / is the
     * dashboard, whose files are the only ones under /ui/: tests/ui) */
    const char *paths[] = {"/index.html", "/channels.json", "/channel/x",   "/channelsx/y",
                           "/status/x",   "/healthz/",      "/metrics.txt", "/CHANNELS/x",
                           "/ui",         "/ui/",           "/ui/nope.js",  "/ui/app.js/x"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
        hs_expect_error(&s, "GET", paths[i], 404, "not_found");
    hs_expect_post_error(&s, "/nothing", "body", 4, "text/plain", 404, "not_found");
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_default_content_type),
        cmocka_unit_test(test_binary_bodies),
        cmocka_unit_test(test_empty_body),
        cmocka_unit_test(test_fifo_and_channels_independent),
        cmocka_unit_test(test_fifo_across_memory_and_disk_then_full),
        cmocka_unit_test(test_memory_only_full_and_recovery),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_content_type_limit),
        cmocka_unit_test(test_max_channels),
        cmocka_unit_test(test_method_not_allowed),
        cmocka_unit_test(test_not_found),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
