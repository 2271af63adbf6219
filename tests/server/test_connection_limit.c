/* test_connection_limit.c - the connection limit server/http.c derives
 * from the open-file limit (connection_limit()): the limit less what the
 * server keeps for its own files, FD_RESERVE_FIXED (128) and FD_PER_CHANNEL
 * (4) for each of --max-channels. The whole executable runs with its
 * descriptor limit set to FD_LIMIT, soft and hard, which the servers it
 * starts inherit, so the figure is known in advance; connections beyond it
 * are closed by the server, not left to fail in accept(). */
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
#include <unistd.h>

#include <cmocka.h>

#define FD_LIMIT 400
#define MAX_CHANNELS 16
#define LIMIT 208 /* connections: what is left */
_Static_assert(LIMIT == FD_LIMIT - 128 - 4 * MAX_CHANNELS, "server/http.c's arithmetic");
#define STR2(x) #x
#define STR(x) STR2(x)

/* Descriptors the process pid has open; -1 if unreadable. */
static int open_descriptors(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    char command[128];
    snprintf(command, sizeof command, "ls %s 2>/dev/null | wc -l", path);
    FILE *p = popen(command, "r");
    if (p == NULL)
        return -1;
    int n = -1;
    if (fscanf(p, "%d", &n) != 1)
        n = -1;
    pclose(p);
    return n;
}

/* Without --max-connections: the limit is derived and logged. */
static void test_limit_is_derived_from_the_descriptor_limit(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-channels", STR(MAX_CHANNELS), NULL};
    hs_start_ok(&s, args);
    assert_true(hs_log_wait(&s, "open-file limit " STR(FD_LIMIT), HS_PATIENCE_MS));
    assert_true(hs_log_wait(&s, "at most " STR(LIMIT) " connections", HS_PATIENCE_MS));
    hs_stop_ok(&s);
}

/* A --max-connections beyond what the descriptors allow is lowered to it,
 * with a warning. */
static void test_max_connections_beyond_is_lowered(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-channels", STR(MAX_CHANNELS), "--max-connections", "19000", NULL};
    hs_start_ok(&s, args);
    assert_true(hs_log_wait(&s,
                            "--max-connections 19000 is beyond what the open-file limit "
                            "allows; using " STR(LIMIT),
                            HS_PATIENCE_MS));
    assert_true(hs_log_wait(&s, "at most " STR(LIMIT) " connections", HS_PATIENCE_MS));
    hs_stop_ok(&s);
}

/* LIMIT waiting GETs are held over MAX_CHANNELS channels; MORE beyond are
 * closed at once by the server (not failed in accept(), which MHD would
 * log); the server's descriptors stay under the limit, and the waiting
 * ones are still answered. One thread, so the limit is not split. */
static void test_beyond_the_limit_closed_cleanly(void **state)
{
    (void)state;
    enum { HELD = LIMIT - 2, MORE = 30 }; /* 2 for the harness's own requests */
    hs_server s;
    const char *args[] = {"--max-channels", STR(MAX_CHANNELS), "--threads", "1", NULL};
    hs_start_ok(&s, args);
    assert_true(hs_log_wait(&s, "at most " STR(LIMIT) " connections", HS_PATIENCE_MS));
    int held[HELD], more[MORE];
    for (int i = 0; i < HELD; i++) {
        held[i] = hs_connect(&s);
        assert_true(held[i] >= 0);
        char req[128];
        snprintf(req, sizeof req, "GET /channels/lim-%d?wait=30 HTTP/1.1\r\nHost: a\r\n\r\n",
                 i % MAX_CHANNELS);
        hs_send_all(held[i], req);
    }
    long long waiting = 0;
    double give_up = hs_now() + HS_PATIENCE_MS / 1000.0;
    while (waiting != HELD && hs_now() < give_up) {
        waiting = 0;
        for (int c = 0; c < MAX_CHANNELS; c++) {
            char name[32];
            snprintf(name, sizeof name, "lim-%d", c);
            long long n = hs_status_value(&s, name, "waiting_receivers");
            waiting += n > 0 ? n : 0;
        }
    }
    assert_int_equal(waiting, HELD);
    /* the harness's /status connections are closed; fill the limit */
    for (int i = 0; i < MORE; i++) {
        more[i] = hs_connect(&s); /* the kernel accepts; the server closes */
        assert_true(more[i] >= 0);
        send(more[i], "GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n", 35, MSG_NOSIGNAL);
    }
    int closed = 0;
    for (int i = 0; i < MORE; i++) {
        closed += hs_closed_by_server(more[i], 2000);
        close(more[i]);
    }
    /* up to 2 of them may have been taken, in the room the harness left */
    assert_true(closed >= MORE - 2);
    assert_true(hs_log_wait(&s, "the --max-connections limit", HS_PATIENCE_MS));
    int fds = open_descriptors(s.pid);
    printf("%d waiting, %d of %d beyond closed; the server has %d descriptors open (limit %d)\n",
           HELD, closed, MORE, fds, FD_LIMIT);
    assert_true(fds > 0 && fds < FD_LIMIT);
    /* the waiting ones are still served */
    hs_expect_post(&s, "lim-0", "still there", 202);
    char buf[1024];
    const char *body;
    assert_int_equal(hs_read_response(held[0], buf, sizeof buf, HS_PATIENCE_MS, &body), 200);
    assert_string_equal(body, "still there");
    /* MHD logs "Error accepting connection" when accept() fails */
    FILE *log = fopen(s.log_path, "r");
    assert_non_null(log);
    char line[1024];
    while (fgets(line, sizeof line, log))
        if (strstr(line, "accepting") || strstr(line, "Too many open files"))
            fail_msg("the server failed to accept: %s", line);
    fclose(log);
    for (int i = 0; i < HELD; i++)
        close(held[i]);
    hs_stop_ok(&s);
}

int main(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY &&
        rl.rlim_max < FD_LIMIT) {
        printf("open-file hard limit %llu is below %d: skipped\n", (unsigned long long)rl.rlim_max,
               FD_LIMIT);
        return 0;
    }
    rl = (struct rlimit){FD_LIMIT, FD_LIMIT};
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
        fprintf(stderr, "cannot set the open-file limit to %d: %s\n", FD_LIMIT, strerror(errno));
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_is_derived_from_the_descriptor_limit),
        cmocka_unit_test(test_max_connections_beyond_is_lowered),
        cmocka_unit_test(test_beyond_the_limit_closed_cleanly),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
