/* test_longpoll.c - GET ?wait=S: wake-up by a POST, timeout, competing
 * waiters, waiters whose client went away, and a crowd of waiters that must
 * not cost a thread each. */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

static void test_wakeup(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    /* the wait is long so that a slow machine cannot turn the wake-up into
     * a timeout; a timeout would answer 204, and curl gives up at 30 s */
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/wake?wait=25");
    hs_get_await_waiting(&g, "wake", 1);
    hs_expect_post_bytes(&s, "wake", "ding", 4, "text/x-bell", 202);
    /* woken with the message (a timeout is 204), before its time was up */
    hs_get_end_ok(&g, 200);
    assert_int_equal(g.reply.len, 4);
    assert_memory_equal(g.reply.body, "ding", 4);
    assert_string_equal(g.reply.content_type, "text/x-bell");
    assert_true(g.reply.seconds < 25.0);
    hs_reply_free(&g.reply);
    assert_int_equal(hs_status_value(&s, "wake", "waiting_receivers"), 0);
    assert_int_equal(hs_status_value(&s, "wake", "messages"), 0);
    hs_stop_ok(&s);
}

/* Upper bounds on how long a request may take beyond what the server is
 * meant to wait: wide enough for a loaded machine (the lower bounds are the
 * precise part: a wait never ends early), yet far below the 30 s default
 * wait, which a wait that was not honoured would run into. */
#define LATE_S 8.0

static void test_timeout(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/quiet?wait=1", &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    assert_true(r.seconds >= 0.95);
    assert_true(r.seconds < 1.0 + LATE_S);
    hs_reply_free(&r);

    assert_int_equal(hs_get(&s, "/channels/quiet?wait=0.3", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds >= 0.25);
    assert_true(r.seconds < 0.3 + LATE_S);
    hs_reply_free(&r);

    assert_int_equal(hs_get(&s, "/channels/quiet?wait=0", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds < LATE_S);
    hs_reply_free(&r);

    /* a message that is there already is answered at once, whatever the wait */
    hs_expect_post(&s, "quiet", "here", 202);
    assert_int_equal(hs_get(&s, "/channels/quiet?wait=30", &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(r.seconds < LATE_S);
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "quiet", "waiting_receivers"), 0);
    hs_stop_ok(&s);
}

/* Without ?wait the default (30 s) is held to --max-wait. */
static void test_default_wait_held_to_max_wait(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-wait", "1", NULL};
    hs_start_ok(&s, args);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/d", &r), 0);
    assert_int_equal(r.status, 204);
    assert_true(r.seconds >= 0.95);
    assert_true(r.seconds < 1.0 + LATE_S);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

static void test_competing_waiters_get_distinct_messages(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_pending_get a, b;
    hs_get_begin_ok(&a, &s, "/channels/work?wait=25");
    hs_get_await_waiting(&a, "work", 1);
    hs_get_begin_ok(&b, &s, "/channels/work?wait=25");
    hs_get_await_waiting(&b, "work", 2);
    hs_expect_post(&s, "work", "job-1", 202);
    hs_expect_post(&s, "work", "job-2", 202);
    hs_get_end_ok(&a, 200);
    hs_get_end_ok(&b, 200);
    /* waiters are served in the order they began waiting */
    assert_string_equal((char *)a.reply.body, "job-1");
    assert_string_equal((char *)b.reply.body, "job-2");
    hs_reply_free(&a.reply);
    hs_reply_free(&b.reply);
    assert_int_equal(hs_status_value(&s, "work", "messages"), 0);
    hs_stop_ok(&s);
}

/* The wait of a raw waiter that must not run out while the test goes on,
 * however slow the machine: the longest there is (--max-wait's default). */
#define LONGEST_WAIT "60"

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

/* Close the n waiters' connections (reset instead of FIN where reset[i])
 * and wait until the server's kernel has taken that in. A message must not
 * be handed to a client that is gone, and the server can tell only once the
 * FIN or RST has reached its socket: until then, on a loaded machine, a
 * response written to it would count as delivered. */
static void close_waiters(const hs_server *s, const int *fds, const bool *reset, size_t n)
{
    int *ports = calloc(n, sizeof *ports);
    assert_non_null(ports);
    for (size_t i = 0; i < n; i++) {
        ports[i] = hs_local_port(fds[i]);
        assert_true(ports[i] > 0);
        if (reset && reset[i])
            hs_reset(fds[i]);
        else
            close(fds[i]);
    }
    bool seen = hs_await_server_saw_close(s, ports, n, HS_PATIENCE_MS);
    free(ports);
    assert_true(seen);
}

static void test_disconnected_waiter_loses_nothing(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int fd = raw_waiter(&s, "safe", LONGEST_WAIT);
    hs_await_status_ok(&s, "safe", "waiting_receivers", 1);
    close_waiters(&s, &fd, NULL, 1); /* the client goes away while its GET waits */

    hs_expect_post(&s, "safe", "precious", 202);
    hs_expect_post(&s, "safe", "second", 202);
    /* the message came back to the head: order holds */
    hs_expect_get(&s, "safe", "2", "precious");
    hs_expect_get(&s, "safe", "2", "second");
    assert_int_equal(hs_status_value(&s, "safe", "messages"), 0);
    assert_int_equal(hs_status_value(&s, "safe", "requeued_total"), 1);
    hs_stop_ok(&s);
}

/* A long row of dead waiters ahead of a live one, two messages: both skip
 * the dead, in order, and the server survives (no recursion per waiter). */
#define DEAD_ROW 500

static void test_a_row_of_dead_waiters(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int *fds = calloc(DEAD_ROW, sizeof *fds);
    for (int i = 0; i < DEAD_ROW; i++)
        fds[i] = raw_waiter(&s, "row", LONGEST_WAIT);
    hs_await_status_ok(&s, "row", "waiting_receivers", DEAD_ROW);
    close_waiters(&s, fds, NULL, DEAD_ROW);
    hs_pending_get live;
    hs_get_begin_ok(&live, &s, "/channels/row?wait=25");
    hs_get_await_waiting(&live, "row", DEAD_ROW + 1);
    hs_expect_post(&s, "row", "first", 202);
    hs_expect_post(&s, "row", "second", 202);
    hs_get_end_ok(&live, 200);
    assert_string_equal((char *)live.reply.body, "first");
    hs_reply_free(&live.reply);
    hs_expect_get(&s, "row", "0", "second");
    assert_int_equal(hs_status_value(&s, "row", "waiting_receivers"), 0);
    assert_int_equal(hs_status_value(&s, "row", "messages"), 0);
    /* "first" went to each dead waiter once and came back each time */
    assert_int_equal(hs_status_value(&s, "row", "requeued_total"), DEAD_ROW);
    free(fds);
    hs_stop_ok(&s);
}

/* A response that cannot be written to the end (the client resets the
 * connection after a few bytes of a body larger than any socket buffer)
 * puts its message back at the head of the channel, intact. */
static void test_failed_response_goes_back_to_the_head(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "16MiB", NULL};
    hs_start_ok(&s, args);
    size_t len = 8u << 20;
    unsigned char *big = malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (unsigned char)(i * 7 + i / 4096);
    hs_expect_post_bytes(&s, "big", big, len, "application/x-big", 202);
    hs_expect_post(&s, "big", "after", 202);

    /* a small receive window, set before connecting, keeps the body from
     * fitting into the kernel's buffers; the answer has begun (no pause
     * needed after: whether the server is still writing or already
     * blocked, 8 MiB cannot all be in the kernel's buffers, so the reset
     * below always cuts the body short) */
    int status = 0;
    int fd = hs_get_stalled(&s, "/channels/big?wait=0", &status);
    assert_true(fd >= 0);
    assert_int_equal(status, 200);
    hs_reset(fd);

    hs_await_status_ok(&s, "big", "requeued_total", 1);
    hs_expect_message(&s, "big", big, len, "application/x-big");
    hs_expect_get(&s, "big", "0", "after");
    free(big);
    hs_stop_ok(&s);
}

/* Several dead waiters ahead of a live one: the message skips them all, and
 * a reset (not just closed) connection counts as gone too. */
static void test_dead_waiters_ahead_of_a_live_one(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    int dead[3];
    for (int i = 0; i < 3; i++) {
        dead[i] = raw_waiter(&s, "line", LONGEST_WAIT);
        hs_await_status_ok(&s, "line", "waiting_receivers", i + 1);
    }
    hs_pending_get live;
    hs_get_begin_ok(&live, &s, "/channels/line?wait=25");
    hs_get_await_waiting(&live, "line", 4);
    const bool reset[3] = {false, true, false}; /* one RST instead of FIN */
    close_waiters(&s, dead, reset, 3);
    hs_expect_post(&s, "line", "for-the-living", 202);
    hs_get_end_ok(&live, 200);
    assert_string_equal((char *)live.reply.body, "for-the-living");
    hs_reply_free(&live.reply);
    assert_int_equal(hs_status_value(&s, "line", "messages"), 0);
    hs_stop_ok(&s);
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
    hs_start_ok(&s, args);
    int *fds = calloc(CROWD, sizeof *fds);
    for (int i = 0; i < CROWD; i++)
        fds[i] = raw_waiter(&s, "crowd", LONGEST_WAIT);
    hs_await_status_ok(&s, "crowd", "waiting_receivers", CROWD);
    /* main, timer, 2 MHD workers (+ sanitizer helpers): nowhere near CROWD */
    int threads = thread_count(s.pid);
    assert_true(threads > 0);
    assert_true(threads < 16);

    for (int i = 0; i < CROWD; i++) {
        char text[32];
        snprintf(text, sizeof text, "m%d", i);
        hs_expect_post(&s, "crowd", text, 202);
    }
    char *seen = calloc(CROWD, 1);
    for (int i = 0; i < CROWD; i++) {
        char buf[1024];
        const char *body = "";
        assert_int_equal(hs_read_response(fds[i], buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
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
    hs_stop_ok(&s);
}

/* Many waits with shuffled deadlines: each ends with 204 near its own time,
 * which exercises the timer's heap.
 *
 * "Near" is measured from when the server had armed them all, which the
 * test observes: the moment /status counts as waiting every request that
 * has not been answered yet. Until then a loaded machine may still be
 * reading requests, and a deadline runs from the arming. A timer that keeps
 * its heap wrong fires early deadlines late, by up to the spread of the
 * waits (1 s), in every round; DEADLINE_SLACK is well below that, and far
 * above the few milliseconds a busy machine adds. A stall (a paused VM, a
 * starved CPU) makes a correct timer late the same way, so the stalls seen
 * during the round are allowed on top: a thread keeps asking the server
 * for /healthz, which does not involve the timer, and keeps the longest
 * answer (or its own longest oversleep). A round that still comes out late
 * is run again, up to DEADLINE_ROUNDS times. Answers that are not 204,
 * missing or early fail at once. */
#define DEADLINES 300
#define DEADLINE_SLACK 0.5
#define DEADLINE_ROUNDS 3

typedef struct stall_meter {
    const hs_server *s;
    pthread_t thread;
    atomic_bool stop;
    _Atomic long worst_us; /* the longest /healthz, or 5 ms sleep overrun */
} stall_meter;

static void stall_seen(stall_meter *m, double seconds)
{
    long us = (long)(seconds * 1e6);
    if (us > atomic_load(&m->worst_us))
        atomic_store(&m->worst_us, us);
}

static void *measure_stalls(void *arg)
{
    stall_meter *m = arg;
    while (!atomic_load(&m->stop)) {
        hs_reply r;
        if (hs_get(m->s, "/healthz", &r) == 0)
            stall_seen(m, r.seconds);
        hs_reply_free(&r);
        double before = hs_now();
        usleep(5000);
        stall_seen(m, hs_now() - before - 0.005);
    }
    return NULL;
}

typedef struct clock_waiter {
    int fd;
    double wait;
    double sent;  /* before connecting: no deadline can run from earlier */
    double ended; /* when its whole 204 had arrived; 0 before */
    char buf[512];
    size_t len;
} clock_waiter;

/* Read what w's connection has: 1 once a whole 204 is in, 0 before, -1
 * for anything else (what, in bad). No assertion here: the stall meter's
 * thread must be stopped before the test may fail. */
static int read_answer(clock_waiter *w, char *bad, size_t size)
{
    ssize_t n = recv(w->fd, w->buf + w->len, sizeof w->buf - 1 - w->len, MSG_DONTWAIT);
    if (n < 0)
        return 0;
    if (n == 0) {
        snprintf(bad, size, "wait %.2f: the connection closed without an answer", w->wait);
        return -1;
    }
    w->len += (size_t)n;
    w->buf[w->len] = '\0';
    if (strstr(w->buf, "\r\n\r\n") == NULL && w->len < sizeof w->buf - 1)
        return 0;
    if (strncmp(w->buf, "HTTP/1.1 204 ", 13) != 0) {
        snprintf(bad, size, "wait %.2f: answered %.40s", w->wait, w->buf);
        return -1;
    }
    return 1;
}

/* One round on channel: true if every wait ended in time; what was late
 * goes into why. */
static bool deadlines_round(const hs_server *s, const char *channel, char *why, size_t size)
{
    clock_waiter *w = calloc(DEADLINES, sizeof *w);
    struct pollfd *p = calloc(DEADLINES, sizeof *p);
    int *index = calloc(DEADLINES, sizeof *index);
    assert_true(w && p && index);
    for (int i = 0; i < DEADLINES; i++) {
        w[i].wait = 0.2 + (double)((i * 37) % 100) / 100.0; /* 0.2 .. 1.19 s, shuffled */
        char text[32];
        snprintf(text, sizeof text, "%.2f", w[i].wait);
        w[i].sent = hs_now();
        w[i].fd = raw_waiter(s, channel, text);
    }
    /* (a stall before all are armed only moves armed_by) */
    stall_meter stalls = {.s = s, .worst_us = 0};
    atomic_init(&stalls.stop, false);
    assert_int_equal(pthread_create(&stalls.thread, NULL, measure_stalls, &stalls), 0);
    double armed_by = 0; /* every deadline began by then */
    int left = DEADLINES;
    char bad[128] = "";
    double give_up = hs_now() + HS_PATIENCE_MS / 1000.0;
    while ((left > 0 || armed_by == 0) && !bad[0] && hs_now() < give_up) {
        if (armed_by == 0) {
            /* a request answered is one that had been armed; one counted
             * as waiting is armed: together all of them, then all were */
            int answered = DEADLINES - left;
            long long waiting = hs_status_value(s, channel, "waiting_receivers");
            if (waiting >= 0 && waiting + answered == DEADLINES)
                armed_by = hs_now();
        }
        int n = 0;
        for (int i = 0; i < DEADLINES; i++) {
            if (w[i].ended == 0) {
                p[n] = (struct pollfd){.fd = w[i].fd, .events = POLLIN};
                index[n++] = i;
            }
        }
        if (n == 0)
            continue;
        int ready = poll(p, (nfds_t)n, armed_by == 0 ? 0 : 100);
        double now = hs_now();
        for (int k = 0; ready > 0 && k < n; k++) {
            clock_waiter *c = &w[index[k]];
            int answer = p[k].revents != 0 && !bad[0] ? read_answer(c, bad, sizeof bad) : 0;
            if (answer > 0) {
                c->ended = now;
                left--;
            }
        }
    }
    atomic_store(&stalls.stop, true);
    pthread_join(stalls.thread, NULL);
    double stalled = (double)atomic_load(&stalls.worst_us) / 1e6;
    if (bad[0])
        fail_msg("%s", bad);
    if (left > 0)
        fail_msg("%d of %d waits not answered in %d ms", left, DEADLINES, HS_PATIENCE_MS);
    bool in_time = true;
    double worst = 0;
    for (int i = 0; i < DEADLINES; i++) {
        /* never before its time */
        if (w[i].ended < w[i].sent + w[i].wait - 0.01)
            fail_msg("wait %.2f sent at %+.3f s ended early, at %+.3f s", w[i].wait,
                     w[i].sent - w[0].sent, w[i].ended - w[0].sent);
        /* and not much after the latest its deadline can be */
        double late = w[i].ended - (armed_by + w[i].wait);
        if (late > worst)
            worst = late;
        if (late > DEADLINE_SLACK + stalled && in_time) {
            in_time = false;
            snprintf(why, size,
                     "wait %.2f (all armed at %+.3f s) ended at %+.3f s (stalls up to %.3f s)",
                     w[i].wait, armed_by - w[0].sent, w[i].ended - w[0].sent, stalled);
        }
        close(w[i].fd);
    }
    if (getenv("HOPPER_TEST_DEADLINE_STATS"))
        fprintf(stderr,
                "many_deadlines: all armed after %.3f s, worst lateness %.3f s, stalls %.3f s\n",
                armed_by - w[0].sent, worst, stalled);
    assert_int_equal(hs_status_value(s, channel, "waiting_receivers"), 0);
    free(index);
    free(p);
    free(w);
    return in_time;
}

static void test_many_deadlines(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char why[256] = "";
    bool in_time = false;
    for (int round = 1; round <= DEADLINE_ROUNDS && !in_time; round++) {
        char channel[32];
        snprintf(channel, sizeof channel, "clock-%d", round);
        in_time = deadlines_round(&s, channel, why, sizeof why);
        if (!in_time)
            fprintf(stderr, "many_deadlines: round %d late: %s\n", round, why);
    }
    if (!in_time)
        fail_msg("late in all %d rounds: %s", DEADLINE_ROUNDS, why);
    hs_stop_ok(&s);
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
