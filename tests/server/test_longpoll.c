/* test_longpoll.c - GET ?wait=S: wake-up by a POST, timeout, competing
 * waiters, waiters whose client went away, and a crowd of waiters that must
 * not cost a thread each. */
#include "harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void start(hs_server *s, const char *const *args)
{
    assert_int_equal(hs_start(s, args), 0);
}

static void stop(hs_server *s)
{
    assert_int_equal(hs_stop(s), 0);
}

/* Poll /status until channel's waiting_receivers is n (up to 5 s). */
static void await_waiting(const hs_server *s, const char *channel, long long n)
{
    double deadline = hs_now() + 5;
    long long got;
    while ((got = hs_status_value(s, channel, "waiting_receivers")) != n && hs_now() < deadline)
        usleep(10000);
    if (got != n)
        fail_msg("waiting_receivers of %s is %lld, expected %lld", channel, got, n);
}

typedef struct getter {
    const hs_server *s;
    const char *path;
    hs_reply reply;
    int rc;
} getter;

static void *get_thread(void *arg)
{
    getter *g = arg;
    g->rc = hs_get(g->s, g->path, &g->reply);
    return NULL;
}

static void test_wakeup(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    getter g = {&s, "/channels/wake?wait=10", {0}, -1};
    pthread_t t;
    double t0 = hs_now();
    pthread_create(&t, NULL, get_thread, &g);
    await_waiting(&s, "wake", 1);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/wake", "ding", 4, "text/x-bell", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    pthread_join(t, NULL);
    double took = hs_now() - t0;
    assert_int_equal(g.rc, 0);
    assert_int_equal(g.reply.status, 200);
    assert_int_equal(g.reply.len, 4);
    assert_memory_equal(g.reply.body, "ding", 4);
    assert_string_equal(g.reply.content_type, "text/x-bell");
    assert_true(took < 3.0); /* woken, not timed out */
    hs_reply_free(&g.reply);
    assert_int_equal(hs_status_value(&s, "wake", "waiting_receivers"), 0);
    assert_int_equal(hs_status_value(&s, "wake", "messages"), 0);
    stop(&s);
}

static void test_timeout(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/quiet?wait=1", &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    assert_true(r.seconds >= 0.95);
    assert_true(r.seconds < 3.0);
    hs_reply_free(&r);

    assert_int_equal(hs_get(&s, "/channels/quiet?wait=0.3", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds >= 0.25);
    assert_true(r.seconds < 2.0);
    hs_reply_free(&r);

    assert_int_equal(hs_get(&s, "/channels/quiet?wait=0", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds < 1.0);
    hs_reply_free(&r);

    /* a message that is there already is answered at once, whatever the wait */
    assert_int_equal(hs_post_text(&s, "quiet", "here"), 202);
    assert_int_equal(hs_get(&s, "/channels/quiet?wait=30", &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.seconds < 1.0);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "quiet", "waiting_receivers"), 0);
    stop(&s);
}

/* Without ?wait the default (30 s) is held to --max-wait. */
static void test_default_wait_held_to_max_wait(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-wait", "1", NULL};
    start(&s, args);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/d", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds >= 0.95);
    assert_true(r.seconds < 3.0);
    hs_reply_free(&r);
    stop(&s);
}

static void test_competing_waiters_get_distinct_messages(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    getter a = {&s, "/channels/work?wait=10", {0}, -1};
    getter b = {&s, "/channels/work?wait=10", {0}, -1};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, get_thread, &a);
    await_waiting(&s, "work", 1);
    pthread_create(&tb, NULL, get_thread, &b);
    await_waiting(&s, "work", 2);
    assert_int_equal(hs_post_text(&s, "work", "job-1"), 202);
    assert_int_equal(hs_post_text(&s, "work", "job-2"), 202);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.reply.status, 200);
    assert_int_equal(b.reply.status, 200);
    /* waiters are served in the order they began waiting */
    assert_string_equal((char *)a.reply.body, "job-1");
    assert_string_equal((char *)b.reply.body, "job-2");
    hs_reply_free(&a.reply);
    hs_reply_free(&b.reply);
    assert_int_equal(hs_status_value(&s, "work", "messages"), 0);
    stop(&s);
}

/* A raw socket that has sent a waiting GET. */
static int raw_waiter(const hs_server *s, const char *channel, const char *wait)
{
    int fd = hs_connect(s);
    assert_true(fd >= 0);
    char req[256];
    int n = snprintf(req, sizeof req, "GET /channels/%s?wait=%s HTTP/1.1\r\nHost: test\r\n\r\n",
                     channel, wait);
    assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
    return fd;
}

static void test_disconnected_waiter_loses_nothing(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    int fd = raw_waiter(&s, "safe", "5");
    await_waiting(&s, "safe", 1);
    close(fd); /* the client goes away while its GET waits */
    usleep(50000);

    assert_int_equal(hs_post_text(&s, "safe", "precious"), 202);
    assert_int_equal(hs_post_text(&s, "safe", "second"), 202);
    /* the message came back to the head: order holds */
    char got[64];
    assert_int_equal(hs_get_text(&s, "safe", "2", got, sizeof got), 200);
    assert_string_equal(got, "precious");
    assert_int_equal(hs_get_text(&s, "safe", "2", got, sizeof got), 200);
    assert_string_equal(got, "second");
    assert_int_equal(hs_status_value(&s, "safe", "messages"), 0);
    assert_int_equal(hs_status_value(&s, "safe", "requeued_total"), 1);
    stop(&s);
}

/* A long row of dead waiters ahead of a live one, two messages: both skip
 * the dead, in order, and the server survives (no recursion per waiter). */
#define DEAD_ROW 500

static void test_a_row_of_dead_waiters(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    int *fds = calloc(DEAD_ROW, sizeof *fds);
    for (int i = 0; i < DEAD_ROW; i++)
        fds[i] = raw_waiter(&s, "row", "30");
    await_waiting(&s, "row", DEAD_ROW);
    for (int i = 0; i < DEAD_ROW; i++)
        close(fds[i]);
    usleep(100000);
    getter live = {&s, "/channels/row?wait=10", {0}, -1};
    pthread_t t;
    pthread_create(&t, NULL, get_thread, &live);
    await_waiting(&s, "row", DEAD_ROW + 1);
    assert_int_equal(hs_post_text(&s, "row", "first"), 202);
    assert_int_equal(hs_post_text(&s, "row", "second"), 202);
    pthread_join(t, NULL);
    assert_int_equal(live.reply.status, 200);
    assert_string_equal((char *)live.reply.body, "first");
    hs_reply_free(&live.reply);
    char got[16];
    assert_int_equal(hs_get_text(&s, "row", "0", got, sizeof got), 200);
    assert_string_equal(got, "second");
    assert_int_equal(hs_status_value(&s, "row", "waiting_receivers"), 0);
    assert_int_equal(hs_status_value(&s, "row", "messages"), 0);
    /* "first" went to each dead waiter once and came back each time */
    assert_int_equal(hs_status_value(&s, "row", "requeued_total"), DEAD_ROW);
    free(fds);
    stop(&s);
}

/* A response that cannot be written to the end (the client resets the
 * connection after a few bytes of a body larger than any socket buffer)
 * puts its message back at the head of the channel, intact. */
static void test_failed_response_goes_back_to_the_head(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "16MiB", NULL};
    start(&s, args);
    size_t len = 8u << 20;
    unsigned char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 7 + i / 4096);
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/big", big, len, "application/x-big", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    assert_int_equal(hs_post_text(&s, "big", "after"), 202);

    /* a small receive window, set before connecting, keeps the body from
     * fitting into the kernel's buffers */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s.port)};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof addr), 0);
    const char *req = "GET /channels/big?wait=0 HTTP/1.1\r\nHost: t\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    char head[1000];
    assert_true(recv(fd, head, sizeof head, 0) > 0);
    assert_memory_equal(head, "HTTP/1.1 200", 12);
    usleep(200000);
    struct linger reset = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);

    double deadline = hs_now() + 5;
    while (hs_status_value(&s, "big", "requeued_total") != 1 && hs_now() < deadline)
        usleep(10000);
    assert_int_equal(hs_status_value(&s, "big", "requeued_total"), 1);
    assert_int_equal(hs_get(&s, "/channels/big?wait=0", &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, big, len);
    assert_string_equal(r.content_type, "application/x-big");
    hs_reply_free(&r);
    char got[16];
    assert_int_equal(hs_get_text(&s, "big", "0", got, sizeof got), 200);
    assert_string_equal(got, "after");
    free(big);
    stop(&s);
}

/* Several dead waiters ahead of a live one: the message skips them all, and
 * a reset (not just closed) connection counts as gone too. */
static void test_dead_waiters_ahead_of_a_live_one(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    int dead[3];
    for (int i = 0; i < 3; i++) {
        dead[i] = raw_waiter(&s, "line", "10");
        await_waiting(&s, "line", i + 1);
    }
    getter live = {&s, "/channels/line?wait=10", {0}, -1};
    pthread_t t;
    pthread_create(&t, NULL, get_thread, &live);
    await_waiting(&s, "line", 4);
    for (int i = 0; i < 3; i++) {
        if (i == 1) { /* RST instead of FIN */
            struct linger l = {1, 0};
            setsockopt(dead[i], SOL_SOCKET, SO_LINGER, &l, sizeof l);
        }
        close(dead[i]);
    }
    usleep(50000);
    assert_int_equal(hs_post_text(&s, "line", "for-the-living"), 202);
    pthread_join(t, NULL);
    assert_int_equal(live.reply.status, 200);
    assert_string_equal((char *)live.reply.body, "for-the-living");
    hs_reply_free(&live.reply);
    assert_int_equal(hs_status_value(&s, "line", "messages"), 0);
    stop(&s);
}

#define CROWD 1000

static int thread_count(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    int threads = -1;
    while (f && fgets(line, sizeof line, f))
        sscanf(line, "Threads: %d", &threads);
    if (f)
        fclose(f);
    return threads;
}

static void test_a_crowd_of_waiters_holds_no_threads(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--threads", "2", NULL};
    start(&s, args);
    int *fds = calloc(CROWD, sizeof *fds);
    for (int i = 0; i < CROWD; i++)
        fds[i] = raw_waiter(&s, "crowd", "30");
    await_waiting(&s, "crowd", CROWD);
    /* main, timer, 2 MHD workers (+ sanitizer helpers): nowhere near CROWD */
    int threads = thread_count(s.pid);
    assert_true(threads > 0);
    assert_true(threads < 16);

    for (int i = 0; i < CROWD; i++) {
        char text[32];
        snprintf(text, sizeof text, "m%d", i);
        assert_int_equal(hs_post_text(&s, "crowd", text), 202);
    }
    char *seen = calloc(CROWD, 1);
    for (int i = 0; i < CROWD; i++) {
        char buf[1024];
        const char *body = "";
        assert_int_equal(hs_read_response(fds[i], buf, sizeof buf, 5000, &body), 200);
        int n = -1;
        assert_int_equal(sscanf(body, "m%d", &n), 1);
        assert_true(n >= 0 && n < CROWD);
        assert_false(seen[n]); /* exactly once */
        seen[n] = 1;
        close(fds[i]);
    }
    assert_int_equal(hs_status_value(&s, "crowd", "messages"), 0);
    assert_int_equal(hs_status_value(&s, "crowd", "waiting_receivers"), 0);
    free(seen);
    free(fds);
    stop(&s);
}

/* Many waits with shuffled deadlines: each ends with 204 near its own time,
 * which exercises the timer's heap. */
#define DEADLINES 300

static void test_many_deadlines(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    int fds[DEADLINES];
    double wait[DEADLINES], ended[DEADLINES];
    double t0 = hs_now();
    for (int i = 0; i < DEADLINES; i++) {
        wait[i] = 0.2 + (double)((i * 37) % 100) / 100.0; /* 0.2 .. 1.19 s, shuffled */
        char text[32];
        snprintf(text, sizeof text, "%.2f", wait[i]);
        fds[i] = raw_waiter(&s, "clock", text);
        ended[i] = 0;
    }
    int left = DEADLINES;
    while (left > 0 && hs_now() - t0 < 10) {
        for (int i = 0; i < DEADLINES; i++) {
            char buf[512];
            const char *body;
            if (ended[i] != 0)
                continue;
            if (hs_read_response(fds[i], buf, sizeof buf, 0, &body) == 204 ||
                strstr(buf, "HTTP/1.1 204") == buf) {
                ended[i] = hs_now() - t0;
                left--;
            }
        }
        usleep(5000);
    }
    assert_int_equal(left, 0);
    for (int i = 0; i < DEADLINES; i++) {
        /* sent within the first fraction of a second, answered after its wait */
        if (ended[i] < wait[i] - 0.01 || ended[i] > wait[i] + 1.5)
            fail_msg("wait %.2f ended after %.3f s", wait[i], ended[i]);
        close(fds[i]);
    }
    stop(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wakeup),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_default_wait_held_to_max_wait),
        cmocka_unit_test(test_competing_waiters_get_distinct_messages),
        cmocka_unit_test(test_disconnected_waiter_loses_nothing),
        cmocka_unit_test(test_dead_waiters_ahead_of_a_live_one),
        cmocka_unit_test(test_a_row_of_dead_waiters),
        cmocka_unit_test(test_failed_response_goes_back_to_the_head),
        cmocka_unit_test(test_a_crowd_of_waiters_holds_no_threads),
        cmocka_unit_test(test_many_deadlines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
