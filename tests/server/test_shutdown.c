/* test_shutdown.c - SIGTERM and SIGINT: waiting GETs are answered, requests
 * in progress finish, idle connections do not hold the exit, exit code 0. */
#include "harness.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_waiting_get_is_answered_on_sigterm(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/patient?wait=30");
    hs_get_await_waiting(&g, "patient", 1);
    kill(s.pid, SIGTERM);
    /* answered by the shutdown (a wait that ran out would say nothing of
     * closing, and this one had 30 s to go; one the drain gave up on would
     * get no answer at all) */
    hs_get_end_ok(&g, 204);
    assert_true(g.reply.seconds < 25.0);
    char connection[32];
    assert_true(hs_header(&g.reply, "Connection", connection, sizeof connection));
    assert_string_equal(connection, "close");
    hs_reply_free(&g.reply);
    assert_true(hs_log_wait(&s, "stopping on SIGTERM", HS_PATIENCE_MS));
    assert_true(hs_log_wait(&s, "stopped", HS_PATIENCE_MS));
    assert_false(hs_log_wait(&s, "still in progress", 0));
    hs_stop_ok(&s);
}

static void test_many_waiters_are_answered_on_sigint(void **state)
{
    (void)state;
    enum { N = 200 };
    hs_server s;
    hs_start_ok(&s, NULL);
    int fds[N];
    const char *channels[] = {"c0", "c1", "c2"};
    for (int i = 0; i < N; i++) {
        fds[i] = hs_connect(&s);
        assert_true(fds[i] >= 0);
        char req[128];
        int n = snprintf(req, sizeof req, "GET /channels/%s?wait=%d HTTP/1.1\r\nHost: t\r\n\r\n",
                         channels[i % 3], 30 + i % 30);
        assert_int_equal(send(fds[i], req, (size_t)n, MSG_NOSIGNAL), n);
    }
    for (int c = 0; c < 3; c++)
        hs_await_status_ok(&s, channels[c], "waiting_receivers", (N - c + 2) / 3);
    assert_int_equal(hs_stop_with(&s, SIGINT), 0);
    for (int i = 0; i < N; i++) {
        char buf[512];
        const char *body;
        /* the server has exited: every answer is in the socket already */
        assert_int_equal(hs_read_response(fds[i], buf, sizeof buf, 2000, &body), 204);
        close(fds[i]);
    }
}

static void test_request_in_progress_finishes(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int fd = hs_connect(&s);
    assert_true(fd >= 0);
    const char *head = "POST /channels/inflight HTTP/1.1\r\nHost: t\r\n"
                       "Content-Type: text/plain\r\nContent-Length: 10\r\n\r\n01234";
    assert_int_equal(send(fd, head, strlen(head), MSG_NOSIGNAL), (ssize_t)strlen(head));
    assert_true(hs_log_wait(&s, "channel inflight created", HS_PATIENCE_MS));
    kill(s.pid, SIGTERM);
    /* The server logs this, then stops listening and begins to drain, all
     * at once; by the time the line has gone through the log file to us it
     * is draining. (No pause here: the drain lasts 5 s at most, and the
     * rest of the upload must come within it however slow the machine.
     * Should the rest come before the drain, the answer is the same.) */
    assert_true(hs_log_wait(&s, "stopping on SIGTERM", HS_PATIENCE_MS));
    /* A new connection is now closed without an answer (at once: were it
     * held until the exit, the drain would wait for the upload below and
     * the upload for this). The line is logged just before the server
     * stops taking connections, so one made meanwhile may still be served:
     * try again until one is refused. */
    for (int served = 0;; served++) {
        assert_true(served < 100);
        int late = hs_connect(&s);
        if (late < 0)
            break; /* refused outright: as good */
        const char *get = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
        send(late, get, strlen(get), MSG_NOSIGNAL);
        char answer[1024];
        const char *body;
        int status = hs_read_response(late, answer, sizeof answer, HS_PATIENCE_MS, &body);
        close(late);
        if (status < 0)
            break;
    }
    /* the upload goes on and is answered */
    assert_int_equal(send(fd, "56789", 5, MSG_NOSIGNAL), 5);
    char buf[1024];
    const char *body;
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 202);
    close(fd);
    /* the message accepted during the drain is kept for the next start */
    assert_true(hs_log_wait(&s, "channel inflight: 1 message(s) kept on disk", HS_PATIENCE_MS));
    assert_true(hs_log_wait(&s, "stopped", HS_PATIENCE_MS));
    assert_false(hs_log_wait(&s, "still in progress", 0));
    hs_stop_ok(&s);
}

static void test_idle_connection_does_not_hold_the_exit(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int fd = hs_connect(&s);
    const char *req = "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char buf[512];
    const char *body;
    assert_int_equal(hs_read_response(fd, buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    /* the connection stays open (keep-alive), and the server does not wait
     * for it: no drain that runs out (5 s, then a warning) */
    kill(s.pid, SIGTERM);
    assert_true(hs_log_wait(&s, "stopped", HS_PATIENCE_MS));
    assert_false(hs_log_wait(&s, "still in progress", 0));
    hs_stop_ok(&s);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waiting_get_is_answered_on_sigterm),
        cmocka_unit_test(test_many_waiters_are_answered_on_sigint),
        cmocka_unit_test(test_request_in_progress_finishes),
        cmocka_unit_test(test_idle_connection_does_not_hold_the_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
