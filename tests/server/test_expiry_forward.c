/* test_expiry_forward.c - server/expiry.c in forwarding, against the real
 * binary and a receiver (receiver.c): a message older than its TTL is
 * never forwarded, neither from a backlog found at start nor on a retry
 * after it expired during the backoff; it is counted as expired like one
 * a GET passes. (GETs: test_expiry.c.) */
#include "harness.h"
#include "test_forward_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* A TTL that expires within a test, and how long after its POST it surely
 * has; one that never does. */
#define SHORT_TTL "0.2"
#define EXPIRED_AFTER_MS 400
/* A backoff the short TTL of the retry test ends within. */
#define RETRY_S "2"
#define RETRY_TTL "1"

static int setup(void **state)
{
    fw_fixture *f = calloc(1, sizeof *f);
    if (f == NULL || rc_start(&f->r) != 0 || hs_make_dir(f->dir, sizeof f->dir) != 0) {
        free(f);
        return -1;
    }
    fw_rule(f->r, "hooks", "/hook", f->rule, sizeof f->rule);
    *state = f;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* POST text to "hooks" with ?ttl=<ttl> (NULL: none): 202. */
static void post(const hs_server *s, const char *text, const char *ttl)
{
    char path[128];
    snprintf(path, sizeof path, "/channels/hooks%s%s", ttl ? "?ttl=" : "", ttl ? ttl : "");
    hs_reply r;
    assert_int_equal(hs_post(s, path, text, strlen(text), "text/plain", &r), 0);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
}

/* The receiver gets exactly bodies[0..n), each once, while "hooks" drops
 * `expired` messages and has none left. */
static void expect_only(rc_receiver *r, const hs_server *s, const char *const *bodies, size_t n,
                        long long expired)
{
    for (size_t i = 0; i < n; i++)
        fw_expect_delivery(r, i, "hooks", bodies[i], 1);
    assert_true(rc_wait_answered(r, n, HS_PATIENCE_MS));
    hs_await_status_ok(s, "hooks", "messages", 0);
    /* counted just after the take that left "messages" at 0 */
    hs_await_status_ok(s, "hooks", "expired_total", expired);
    assert_int_equal(rc_count(r), n);
}

/* A backlog stored before forwarding began: only its unexpired messages
 * go out, in order. */
static void test_expired_backlog_is_not_forwarded(void **state)
{
    fw_fixture *f = *state;
    hs_server s;
    hs_start_in_ok(&s, f->dir, NULL);
    post(&s, "keep-1", NULL);
    post(&s, "gone-1", SHORT_TTL);
    post(&s, "gone-2", SHORT_TTL);
    post(&s, "keep-2", "3600");
    post(&s, "gone-3", SHORT_TTL);
    hs_stop_ok(&s);
    sleep_ms(EXPIRED_AFTER_MS);

    const char *args[] = {"--forward", f->rule, NULL};
    hs_start_in_ok(&s, f->dir, args);
    static const char *const sent[] = {"keep-1", "keep-2"};
    expect_only(f->r, &s, sent, 2, 3);
    hs_stop_ok(&s);
}

/* A message that expires while it waits for a retry is dropped, not tried
 * again; the one behind it goes next. */
static void test_expired_during_backoff_is_not_retried(void **state)
{
    fw_fixture *f = *state;
    rc_push_status(f->r, 503, 1);
    hs_server s;
    const char *args[] = {
        "--forward", f->rule, "--forward-retry-min", RETRY_S, "--forward-retry-max", RETRY_S, NULL};
    hs_start_in_ok(&s, f->dir, args);
    post(&s, "short", RETRY_TTL);
    post(&s, "next", NULL);
    static const char *const sent[] = {"short", "next"}; /* "short" once only */
    expect_only(f->r, &s, sent, 2, 1);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_expired_backlog_is_not_forwarded, setup,
                                        fw_fixture_teardown),
        cmocka_unit_test_setup_teardown(test_expired_during_backoff_is_not_retried, setup,
                                        fw_fixture_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
