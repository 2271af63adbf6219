/* test_abuse.c - clients that misbehave, on purpose or not: slow ones that
 * never finish their headers or bodies, more connections than the server
 * takes, thousands of connections, thousands of channel names, requests
 * whose length can be read two ways (smuggling), raw bytes that are no
 * HTTP in paths and queries. Each time the server answers or closes as
 * documented, stores nothing it should not, and goes on serving.
 *
 * (Bad names, %2F and %00 in names, and bad wait values are in
 * test_names.c.) */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

/* The server still stores and delivers. */
static void still_serving(hs_server *s, const char *channel)
{
    hs_expect_post(s, channel, "still fine", 202);
    hs_expect_get(s, channel, "0", "still fine");
}

/* ---- slow clients ---- */

/* Headers that never end, and bodies that never end: --idle-timeout
 * closes them, while the server serves others meanwhile, and a POST cut
 * short stores nothing. */
static void test_slow_clients_are_closed(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--idle-timeout", "1", NULL};
    hs_start_ok(&s, args);
    enum { SLOW = 20 };
    int fds[2 * SLOW];
    for (int i = 0; i < SLOW; i++) {
        fds[i] = hs_connect(&s);
        assert_true(fds[i] >= 0);
        hs_send_all(fds[i], "POST /channels/slow HTTP/1.1\r\nHost: a\r\nContent-Le");
        fds[SLOW + i] = hs_connect(&s);
        assert_true(fds[SLOW + i] >= 0);
        hs_send_all(fds[SLOW + i], "POST /channels/slow HTTP/1.1\r\nHost: a\r\n"
                                   "Content-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
                                   "only ten b");
    }
    still_serving(&s, "meanwhile");
    double t0 = hs_now();
    for (int i = 0; i < 2 * SLOW; i++) {
        if (!hs_closed_by_server(fds[i], HS_PATIENCE_MS))
            fail_msg("slow connection %d still open after %.1f s", i, hs_now() - t0);
        close(fds[i]);
    }
    printf("%d slow connections closed by the server after %.1f s (--idle-timeout 1)\n", 2 * SLOW,
           hs_now() - t0);
    assert_true(hs_status_value(&s, "slow", "messages") <= 0); /* nothing stored */
    still_serving(&s, "after");
    hs_stop_ok(&s);
}

/* A waiting GET is not idle: it outlives --idle-timeout and still gets its
 * message, or its 204 when the wait ends. */
static void test_waiting_get_outlives_the_idle_timeout(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--idle-timeout", "1", NULL};
    hs_start_ok(&s, args);
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/patient?wait=3");
    hs_get_end_ok(&g, 204);
    assert_true(g.reply.seconds > 2.5);
    hs_reply_free(&g.reply);

    hs_get_begin_ok(&g, &s, "/channels/patient?wait=10");
    hs_get_await_waiting(&g, "patient", 1);
    struct timespec pause = {2, 0}; /* twice the idle timeout: it must still be there */
    nanosleep(&pause, NULL);
    hs_expect_post(&s, "patient", "worth the wait", 202);
    hs_get_end_ok(&g, 200);
    assert_string_equal((const char *)g.reply.body, "worth the wait");
    hs_reply_free(&g.reply);
    hs_stop_ok(&s);
}

/* ---- many connections ---- */

/* --max-connections: connections beyond it are closed at once, the ones
 * within are served, the server stays up, and once some end new ones are
 * taken again. One thread, so the limit is not split between threads. */
static void test_connection_limit(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-connections", "40", "--threads", "1", NULL};
    hs_start_ok(&s, args);
    assert_true(hs_log_wait(&s, "at most 40 connections", HS_PATIENCE_MS));
    enum { HELD = 40, MORE = 20 };
    int held[HELD], more[MORE];
    /* each connection is known to be taken once it has been answered */
    for (int i = 0; i < HELD; i++) {
        held[i] = hs_connect(&s);
        assert_true(held[i] >= 0);
        hs_send_all(held[i], "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
        char buf[1024];
        const char *body;
        assert_int_equal(hs_read_response(held[i], buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    }
    for (int i = 0; i < MORE; i++) {
        more[i] = hs_connect(&s); /* the kernel accepts; the server closes */
        assert_true(more[i] >= 0);
        send(more[i], "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 35, MSG_NOSIGNAL);
    }
    for (int i = 0; i < MORE; i++) {
        if (!hs_closed_by_server(more[i], HS_PATIENCE_MS))
            fail_msg("connection %d beyond the limit was not closed", HELD + i);
        close(more[i]);
    }
    assert_true(hs_log_wait(&s, "limit", HS_PATIENCE_MS));
    /* the held ones still work */
    hs_send_all(held[0], "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n");
    char buf[1024];
    const char *body;
    assert_int_equal(hs_read_response(held[0], buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    for (int i = 0; i < HELD; i++)
        close(held[i]);
    /* room again: served (the server notices the closes soon, not at once) */
    double give_up = hs_now() + HS_PATIENCE_MS / 1000.0;
    long status = -1;
    while (status != 202 && hs_now() < give_up)
        status = hs_post_text(&s, "again", "room");
    assert_int_equal(status, 202);
    hs_stop_ok(&s);
}

/* Thousands of connections at once, each with a request: every one is
 * answered, and the server stays up. */
static void test_thousands_of_connections(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0); /* raised to the hard limit */
    if (rl.rlim_cur < N + 200) {
        printf("open-file limit %ld is below %d: skipped\n", (long)rl.rlim_cur, N + 200);
        skip();
    }
    hs_server s;
    hs_start_ok(&s, NULL);
    int *fds = calloc(N, sizeof *fds);
    assert_non_null(fds);
    for (int i = 0; i < N; i++) {
        fds[i] = hs_connect(&s);
        if (fds[i] < 0)
            fail_msg("connection %d: %s", i, strerror(errno));
        char req[128];
        snprintf(req, sizeof req, "GET /channels/crowd-%d?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n",
                 i % 100);
        hs_send_all(fds[i], req);
    }
    int answered = 0;
    for (int i = 0; i < N; i++) {
        char buf[1024];
        const char *body;
        answered += hs_read_response(fds[i], buf, sizeof buf, HS_PATIENCE_MS, &body) == 204;
        close(fds[i]);
    }
    free(fds);
    printf("%d of %d connections answered\n", answered, N);
    assert_int_equal(answered, N);
    still_serving(&s, "after");
    hs_stop_ok(&s);
}

/* Thousands of channel names against --max-channels 500: exactly 500 are
 * made, every other name is refused, nothing of it is stored. */
static void test_thousands_of_channel_names(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-channels", "500", NULL};
    hs_start_ok(&s, args);
    int created = 0, refused = 0;
    for (int i = 0; i < 2000; i++) {
        char path[64];
        snprintf(path, sizeof path, "/channels/name-%d", i);
        hs_reply r;
        assert_int_equal(hs_post(&s, path, "x", 1, "text/plain", &r), 0);
        if (r.status == 202)
            created++;
        else if (hs_is_error(&r, 503, "too_many_channels"))
            refused++;
        else
            fail_msg("POST %s: %ld", path, r.status);
        hs_reply_free(&r);
    }
    assert_int_equal(created, 500);
    assert_int_equal(refused, 1500);
    assert_int_equal(hs_status_value(&s, "name-499", "messages"), 1);
    assert_int_equal(hs_status_value(&s, "name-500", "messages"), -1);
    hs_stop_ok(&s);
}

/* ---- requests that could be read two ways ---- */

/* Send raw on a fresh connection; return the status of the first answer
 * (-1 if none). OUT: *closed, whether the server then closed the
 * connection (not looked at when closed is NULL). */
static int raw_exchange(const hs_server *s, const char *raw, size_t len, bool *closed)
{
    int fd = hs_connect(s);
    assert_true(fd >= 0);
    assert_int_equal(send(fd, raw, len, MSG_NOSIGNAL), (ssize_t)len);
    char buf[8192];
    const char *body;
    int status = hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body);
    if (closed)
        *closed = hs_closed_by_server(fd, HS_PATIENCE_MS);
    close(fd);
    return status;
}

static void test_smuggling_shapes_are_refused(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    /* each would smuggle "GET /channels/s?wait=0" behind a POST, or store a
     * body of the wrong length, if its framing were read one way here and
     * another way by a proxy in front */
    static const char *const shapes[] = {
        /* two lengths */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n"
        "GET /channels/s?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n"
        "hello",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhelloX",
        /* a length and chunks */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        "Content-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        /* a coding we cannot decode, or chunked named twice */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        "5\r\nhello\r\n0\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        /* a header name a proxy may read without its space */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n"
        "Content-Length: 3\r\n\r\nabc",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length\t: 3\r\n\r\nabc",
        /* bad chunk sizes */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\nhello\r\n0\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "-1\r\nhello\r\n0\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "FFFFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        "2\r\nhello\r\n0\r\n\r\n",
        /* lengths that are no numbers */
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\nhello",
        "POST /channels/s HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\nabc",
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        bool closed;
        int status = raw_exchange(&s, shapes[i], strlen(shapes[i]), &closed);
        if (status != 400 && status != 413)
            fail_msg("shape %zu: answered %d, not 400 or 413:\n%s", i, status, shapes[i]);
        if (!closed)
            fail_msg("shape %zu: the connection stayed open:\n%s", i, shapes[i]);
    }
    /* nothing was stored, and no smuggled GET took anything */
    assert_true(hs_status_value(&s, "s", "sent_total") <= 0);
    assert_true(hs_status_value(&s, "s", "received_total") <= 0);
    still_serving(&s, "s");
    hs_stop_ok(&s);
}

/* Bytes that are no HTTP in paths and queries: invalid UTF-8, control bytes,
 * NUL. A 400 (the JSON error of a bad name or wait, or libmicrohttpd's
 * own), never a channel made of them. */
static void test_raw_bytes_in_paths_and_queries(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    static const struct {
        const char *raw;
        size_t len;
    } requests[] = {
#define R(text) {text, sizeof text - 1}
        R("GET /channels/\xff\xfe?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/caf\xc3\xa9?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/a\xc0\xaf"
          "b?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"), /* overlong '/' */
        R("GET /channels/a\x01z?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/a\x7f?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/%ff%fe?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/a%c0%afb?wait=0 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=\xff HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=%ff HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=%00 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=0%00 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=1e99 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=-1 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?wait=nan HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?max=%00 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?max=1e3 HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("GET /channels/q?lease=\xff HTTP/1.1\r\nHost: a\r\n\r\n"),
        R("POST /channels/\xff HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"),
        R("POST /channels/%00 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"),
#undef R
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        int status = raw_exchange(&s, requests[i].raw, requests[i].len, NULL);
        if (status != 400)
            fail_msg("request %zu: answered %d, not 400", i, status);
    }
    /* no channel was made of any of it: "q" only by a valid wait */
    hs_reply r;
    assert_int_equal(hs_get(&s, "/status", &r), 0);
    assert_non_null(strstr((const char *)r.body, "\"channels\": {}"));
    hs_reply_free(&r);
    still_serving(&s, "q");
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_clients_are_closed),
        cmocka_unit_test(test_waiting_get_outlives_the_idle_timeout),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_thousands_of_connections),
        cmocka_unit_test(test_thousands_of_channel_names),
        cmocka_unit_test(test_smuggling_shapes_are_refused),
        cmocka_unit_test(test_raw_bytes_in_paths_and_queries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
