/* test_names.c - what may not pass as a channel name or a wait: slashes,
 * dot segments, encoded '/', '.' and NUL, overlong names, every kind of bad
 * number; plus malformed requests. Nothing of that may create a channel or
 * touch the data directory. */
#include "harness.h"

#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* Entries in the data directory besides its lock file (and "nothing
 * escaped": the parent's count is the caller's business). */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
            strcmp(e->d_name, "hopper.lock") != 0 && strcmp(e->d_name, "hopper+reserve") != 0)
            n++;
    }
    if (d)
        closedir(d);
    return n;
}

static long channel_count(const hs_server *s)
{
    hs_reply r;
    long n = -1;
    if (hs_get(s, "/metrics", &r) == 0) {
        const char *at = strstr((const char *)r.body, "\nhopper_channels ");
        if (at)
            n = strtol(at + 17, NULL, 10);
    }
    hs_reply_free(&r);
    return n;
}

static void test_bad_names(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char long_name[200];
    snprintf(long_name, sizeof long_name, "/channels/");
    memset(long_name + 10, 'n', 129);
    long_name[10 + 129] = '\0';
    const char *paths[] = {
        "/channels/",          /* empty */
        "/channels/a/b",       /* a slash */
        "/channels/a%2Fb",     /* an encoded slash */
        "/channels/a%2fb",     /* lower case too */
        "/channels/%2F",       /* only a slash */
        "/channels/..",        /* dot segments, sent as is */
        "/channels/.",         /* */
        "/channels/%2e%2e",    /* encoded dots */
        "/channels/%2E%2E",    /* */
        "/channels/%2e",       /* */
        "/channels/../etc",    /* */
        "/channels/a%00b",     /* an encoded NUL must not cut the name to "a" */
        "/channels/%00",       /* */
        "/channels/ok%00",     /* */
        "/channels/a%20b",     /* a space */
        "/channels/caf%C3%A9", /* not ASCII */
        "/channels/a:b",       /* */
        "/channels/a%zzb",     /* a broken escape stays a '%' */
        "/channels/a%",        /* */
        long_name,             /* 129 characters */
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s?wait=0", paths[i]);
        hs_expect_error(&s, "GET", path, 400, "bad_name");
        hs_expect_post_error(&s, paths[i], "x", 1, "text/plain", 400, "bad_name");
        hs_expect_error(&s, "DELETE", paths[i], 400, "bad_name");
    }
    /* a valid name, but the data directory's own lock file */
    hs_reply r;
    assert_int_equal(hs_post(&s, "/channels/hopper.lock", "x", 1, "text/plain", &r), 0);
    assert_true(hs_is_error(&r, 400, "bad_name"));
    assert_non_null(strstr((const char *)r.body, "reserved"));
    hs_reply_free(&r);
    assert_int_equal(channel_count(&s), 0);
    assert_int_equal(dir_entries(s.dir), 0);
    /* and "a", which a cut at %00 would have hit, does not exist */
    assert_int_equal(hs_status_value(&s, "a", "messages"), -1);
    hs_stop_ok(&s);
}

static void test_good_names(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char name128[129];
    memset(name128, 'x', 128);
    name128[128] = '\0';
    const char *names[] = {"a", "Z", "0", "a.b", "a-b_c.D-9", "...", ".hidden", "-", "_", name128};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        hs_expect_post(&s, names[i], names[i], 202);
        hs_expect_get(&s, names[i], "0", names[i]);
    }
    /* percent-encoding of allowed characters is the same name */
    hs_expect_post(&s, "%61%62c", "enc", 202);
    hs_expect_get(&s, "abc", "0", "enc");
    hs_stop_ok(&s);
}

static void test_bad_waits(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL); /* --max-wait 60 */
    const char *waits[] = {"-1",       "-0",   "abc",    "nan", "NaN", "inf", "-inf",
                           "infinity", "1e99", "60.001", "61",  "",    "1x",  "%201",
                           "+1",       "0x10", "1%00",   "1,5", "1e",  "."};
    for (size_t i = 0; i < sizeof waits / sizeof waits[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "/channels/w?wait=%s", waits[i]);
        hs_expect_error(&s, "GET", path, 400, "bad_wait");
    }
    hs_expect_error(&s, "GET", "/channels/w?wait", 400, "bad_wait"); /* no value at all */
    /* a bad wait creates no channel */
    assert_int_equal(channel_count(&s), 0);

    const char *good[] = {"0", "0.0", "0.05", ".1", "1e-2", "0.1E0"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
        hs_expect_nothing(&s, "w", good[i], NULL);
    hs_stop_ok(&s);
}

static void test_max_wait_bound(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-wait", "0.5", NULL};
    hs_start_ok(&s, args);
    hs_expect_error(&s, "GET", "/channels/w?wait=0.6", 400, "bad_wait");
    hs_expect_nothing(&s, "w", "0.5", NULL);
    hs_stop_ok(&s);
}

/* Requests MHD itself rejects never reach a handler; the server must answer
 * or close, leak nothing (the sanitizer build checks), and carry on. */
static void test_malformed_requests(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    const char *raw[] = {
        "GET /channels/x?wait=0 HTTP/1.1\r\nthis is no header\r\n\r\n",
        "GET /channels/x?wait=0 HTTP/1.1\r\nHost: a\r\nContent-Length: nope\r\n\r\n",
        "POST /channels/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nshort",
        "BREW /channels/x HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET /channels/x HTTP/9.9\r\nHost: a\r\n\r\n",
        "\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        int fd = hs_connect(&s);
        assert_true(fd >= 0);
        send(fd, raw[i], strlen(raw[i]), MSG_NOSIGNAL);
        /* no half-close: MHD would keep a half-closed upload until its
         * timeout, and shutdown would wait for it */
        char buf[2048];
        hs_read_all(fd, buf, sizeof buf, 300);
        close(fd);
    }
    hs_expect_post(&s, "x", "still fine", 202);
    hs_expect_get(&s, "x", "0", "still fine");
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_names),          cmocka_unit_test(test_good_names),
        cmocka_unit_test(test_bad_waits),          cmocka_unit_test(test_max_wait_bound),
        cmocka_unit_test(test_malformed_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
