/* test_forward_retry.c - what hopper does with the outcome of a forwarding
 * attempt, against the real binary: 408, 429 and 5xx are retried with
 * nothing overtaking (--forward-concurrency 1); the backoff stays between
 * --forward-retry-min and --forward-retry-max and grows; Retry-After (in
 * seconds or as an HTTP date) is obeyed, capped at the maximum; another
 * 4xx sends the message to NAME.dead at once, and so do
 * --forward-max-attempts failures, with Hopper-Dead-Reason, readable
 * there with the same id and headers; a refused connection, a connection
 * closed without an answer and an answer later than --forward-timeout are
 * retried, with one log line when the target starts failing and one when
 * it recovers; --max-deliveries does not count forwarding attempts; a
 * backlog in queue files goes out in order, without a pause per message.
 * Each message keeps its Hopper-Message-Id from attempt to attempt, and
 * its Hopper-Delivery-Count rises by one.
 *
 * Each test has its own receiver (receiver.c), started by the fixture. */
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

/* Retries quick enough for a test, an attempt that gives up after 1 s. */
#define RETRY_MIN 0.05
#define RETRY_MAX 0.5
#define QUICK_RETRY                                                                                \
    "--forward-retry-min", "0.05", "--forward-retry-max", "0.5", "--forward-timeout", "1"
/* How much later than its due time an attempt may come on a loaded
 * machine, and how much earlier the receiver may see it (its clock is
 * read before hopper's timer is set). */
#define LATE_SLACK 0.5
#define EARLY_SLACK 0.005

/* Longest a backlog of sixty small messages may take to go out. */
#define BACKLOG_PATIENCE_S 10.0

/* Start hopper forwarding channel "hooks" to the receiver, with
 * QUICK_RETRY, then extra (NULL-terminated, may be NULL). */
static void start_forwarding(hs_server *s, rc_receiver *r, const char *const *extra)
{
    static char rule[RULE_SIZE];
    fw_rule(r, "hooks", "/hook", rule, sizeof rule);
    const char *args[32] = {"--forward", rule, QUICK_RETRY};
    size_t n = 0;
    while (args[n])
        n++;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    hs_start_ok(s, args);
}

/* Seconds from the answer to request i to the arrival of request i + 1:
 * the wait hopper put between the two attempts. */
static double gap_after(rc_receiver *r, size_t i)
{
    assert_true(rc_wait_answered(r, i + 1, HS_PATIENCE_MS));
    assert_true(rc_wait_requests(r, i + 2, HS_PATIENCE_MS));
    return rc_request_at(r, i + 1)->arrived - rc_request_at(r, i)->answered;
}

/* Requests from..from+n-1 must be bodies[k] delivered for the counts[k]-th
 * time; the attempts of one message share an id, two messages never do. */
static void expect_attempts(rc_receiver *r, size_t from, const char *const *bodies,
                            const long *counts, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fw_expect_delivery(r, from + k, "hooks", bodies[k], counts[k]);
    for (size_t a = 0; a < n; a++) {
        for (size_t b = 0; b < a; b++) {
            bool same_message = strcmp(bodies[a], bodies[b]) == 0;
            bool same_id =
                strcmp(fw_id(rc_request_at(r, from + a)), fw_id(rc_request_at(r, from + b))) == 0;
            if (same_message != same_id)
                fail_msg("requests %zu ('%s') and %zu ('%s') %s the id %s", from + a, bodies[a],
                         from + b, bodies[b], same_id ? "share" : "do not share",
                         fw_id(rc_request_at(r, from + a)));
        }
    }
}

/* ---- retries ---- */

/* Under failures, nothing overtakes: message k+1 is sent only once
 * message k is consumed, one request at a time. 408, 429 and the 5xx are
 * all retried. */
static void test_order_under_failures(void **state)
{
    rc_receiver *r = *state;
    const int script[] = {500, 200, 408, 502, 200, 503, 200, 429, 504, 200};
    for (size_t i = 0; i < sizeof script / sizeof script[0]; i++)
        rc_push_status(r, script[i], 1);
    hs_server s;
    start_forwarding(&s, r, NULL);
    const char *messages[] = {"m0", "m1", "m2", "m3", "m4"};
    for (size_t i = 0; i < 5; i++)
        hs_expect_post(&s, "hooks", messages[i], 202);
    const char *bodies[] = {"m0", "m0", "m1", "m1", "m1", "m2", "m2", "m3", "m3", "m3", "m4"};
    const long counts[] = {1, 2, 1, 2, 3, 1, 2, 1, 2, 3, 1};
    expect_attempts(r, 0, bodies, counts, 11);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(r), 11);
    assert_int_equal(rc_max_in_flight(r), 1);
    hs_stop_ok(&s);
}

/* Eight failures in a row: every wait at least the minimum and at most the
 * maximum, and the later ones longer than the first ones (full jitter
 * draws each at random, but below an exponentially growing ceiling: four
 * late waits summing less than the first two is a chance of 1 in 10^4). */
static void test_backoff_within_bounds(void **state)
{
    rc_receiver *r = *state;
    rc_push_status(r, 500, 8);
    hs_server s;
    start_forwarding(&s, r, NULL);
    hs_expect_post(&s, "hooks", "again", 202);
    const char *bodies[9];
    long counts[9];
    for (int i = 0; i < 9; i++) {
        bodies[i] = "again";
        counts[i] = i + 1;
    }
    expect_attempts(r, 0, bodies, counts, 9);
    double gaps[8], early = 0, late = 0;
    for (size_t i = 0; i < 8; i++) {
        gaps[i] = gap_after(r, i);
        fprintf(stderr, "wait %zu: %.3f s\n", i + 1, gaps[i]);
        if (gaps[i] < RETRY_MIN - EARLY_SLACK || gaps[i] > RETRY_MAX + LATE_SLACK)
            fail_msg("wait %zu was %.3f s, outside [%.2f, %.2f]", i + 1, gaps[i], RETRY_MIN,
                     RETRY_MAX);
    }
    early = gaps[0] + gaps[1];
    late = gaps[4] + gaps[5] + gaps[6] + gaps[7];
    if (late <= early)
        fail_msg("the backoff does not grow: waits 5-8 sum to %.3f s, 1-2 to %.3f s", late, early);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_stop_ok(&s);
}

/* An HTTP date (IMF-fixdate) seconds from now. OUT: out. */
static void http_date_in(int seconds, char *out, size_t size)
{
    time_t at = time(NULL) + seconds;
    struct tm tm;
    gmtime_r(&at, &tm);
    strftime(out, size, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* 429 with Retry-After: 1 is not tried again before 1 s; 503 with a
 * Retry-After date 4 s ahead not before that date (give or take the
 * second the date rounds to), though the backoff alone would have waited
 * at most 0.2 s. */
static void test_retry_after_obeyed(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.status = 429, .headers = "Retry-After: 1"});
    hs_server s;
    const char *extra[] = {"--forward-retry-max", "10", NULL};
    start_forwarding(&s, r, extra);
    hs_expect_post(&s, "hooks", "later", 202);
    assert_true(rc_wait_requests(r, 1, HS_PATIENCE_MS));
    char header[128];
    snprintf(header, sizeof header, "Retry-After: ");
    http_date_in(4, header + strlen(header), sizeof header - strlen(header));
    rc_push_answer(r, &(rc_answer){.status = 503, .headers = header});
    const char *bodies[] = {"later", "later", "later"};
    const long counts[] = {1, 2, 3};
    expect_attempts(r, 0, bodies, counts, 3);
    double first = gap_after(r, 0), second = gap_after(r, 1);
    fprintf(stderr, "waits: %.3f s after Retry-After: 1, %.3f s after '%s'\n", first, second,
            header);
    if (first < 1.0 - EARLY_SLACK || first > 1.0 + LATE_SLACK)
        fail_msg("Retry-After: 1 was followed by a wait of %.3f s", first);
    /* the date was 4 s ahead when set, about 1 s before it was sent */
    if (second < 1.5 || second > 4.0 + LATE_SLACK)
        fail_msg("Retry-After: %s was followed by a wait of %.3f s", header + 13, second);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_stop_ok(&s);
}

/* A Retry-After beyond --forward-retry-max waits the maximum. */
static void test_retry_after_capped(void **state)
{
    rc_receiver *r = *state;
    char header[128] = "Retry-After: ";
    http_date_in(60, header + strlen(header), sizeof header - strlen(header));
    rc_push_answer(r, &(rc_answer){.status = 429, .headers = "Retry-After: 30"});
    rc_push_answer(r, &(rc_answer){.status = 503, .headers = header});
    hs_server s;
    start_forwarding(&s, r, NULL);
    hs_expect_post(&s, "hooks", "capped", 202);
    const char *bodies[] = {"capped", "capped", "capped"};
    const long counts[] = {1, 2, 3};
    expect_attempts(r, 0, bodies, counts, 3);
    for (size_t i = 0; i < 2; i++) {
        double gap = gap_after(r, i);
        if (gap < RETRY_MIN - EARLY_SLACK || gap > RETRY_MAX + LATE_SLACK)
            fail_msg("wait %zu after a Retry-After beyond the maximum: %.3f s", i + 1, gap);
    }
    hs_stop_ok(&s);
}

/* ---- dead letters ---- */

/* The next message of hooks.dead must be body with content_type, header
 * X-Sig: sig (unless sig is NULL), the id id and a Hopper-Dead-Reason
 * that mentions every one of words (NULL-terminated). */
static void expect_dead(const hs_server *s, const char *body, const char *content_type,
                        const char *sig, const char *id, const char *const *words)
{
    hs_reply reply;
    char value[512];
    assert_int_equal(hs_get(s, "/channels/hooks.dead?wait=0", &reply), 0);
    assert_int_equal(reply.status, 200);
    assert_string_equal((const char *)reply.body, body);
    assert_string_equal(reply.content_type, content_type);
    if (sig) {
        assert_true(hs_header(&reply, "X-Sig", value, sizeof value));
        assert_string_equal(value, sig);
    }
    assert_true(hs_header(&reply, "Hopper-Message-Id", value, sizeof value));
    assert_string_equal(value, id);
    if (!hs_header(&reply, "Hopper-Dead-Reason", value, sizeof value))
        fail_msg("no Hopper-Dead-Reason on a dead letter:\n%s", reply.headers);
    fprintf(stderr, "Hopper-Dead-Reason: %s\n", value);
    for (size_t i = 0; words[i]; i++) {
        if (strstr(value, words[i]) == NULL)
            fail_msg("Hopper-Dead-Reason '%s' does not say '%s'", value, words[i]);
    }
    hs_reply_free(&reply);
}

/* 400 and 410: the receiver will never take it; NAME.dead at once, and
 * the next message goes on. */
static void test_refused_goes_dead_at_once(void **state)
{
    rc_receiver *r = *state;
    rc_push_answer(r, &(rc_answer){.status = 400, .body = "no such customer"});
    rc_push_status(r, 410, 1);
    hs_server s;
    const char *extra[] = {"--keep-headers", "X-Sig", NULL};
    start_forwarding(&s, r, extra);
    const char *sig[] = {"X-Sig: t=1,v1=abc", NULL};
    hs_reply reply;
    assert_int_equal(
        hs_post_headers(&s, "/channels/hooks", "{\"bad\":1}", 9, "application/json", sig, &reply),
        0);
    assert_int_equal(reply.status, 202);
    hs_reply_free(&reply);
    hs_expect_post(&s, "hooks", "gone", 202);
    hs_expect_post(&s, "hooks", "fine", 202);
    const char *bodies[] = {"{\"bad\":1}", "gone", "fine"};
    const long counts[] = {1, 1, 1};
    expect_attempts(r, 0, bodies, counts, 3);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_await_status_ok(&s, "hooks.dead", "messages", 2);
    assert_int_equal(rc_count(r), 3);
    const char *said_400[] = {"400", NULL}, *said_410[] = {"410", NULL};
    expect_dead(&s, "{\"bad\":1}", "application/json", "t=1,v1=abc", fw_id(rc_request_at(r, 0)),
                said_400);
    expect_dead(&s, "gone", "text/plain", NULL, fw_id(rc_request_at(r, 1)), said_410);
    hs_stop_ok(&s);
}

/* --forward-max-attempts 3: three failures and the message is dead; no
 * fourth attempt comes before the next message. */
static void test_max_attempts_goes_dead(void **state)
{
    rc_receiver *r = *state;
    rc_set_default(r, &(rc_answer){.status = 500});
    hs_server s;
    const char *extra[] = {"--forward-max-attempts", "3", NULL};
    start_forwarding(&s, r, extra);
    hs_expect_post(&s, "hooks", "doomed", 202);
    hs_await_status_ok(&s, "hooks.dead", "messages", 1);
    rc_set_default(r, &(rc_answer){.status = 200});
    hs_expect_post(&s, "hooks", "next", 202);
    const char *bodies[] = {"doomed", "doomed", "doomed", "next"};
    const long counts[] = {1, 2, 3, 1};
    expect_attempts(r, 0, bodies, counts, 4);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    const char *words[] = {"500", "3", NULL};
    expect_dead(&s, "doomed", "text/plain", NULL, fw_id(rc_request_at(r, 0)), words);
    assert_int_equal(rc_count(r), 4);
    hs_stop_ok(&s);
}

/* ---- failures without a status ---- */

/* Lines of s's log that hold text. */
static int log_lines_with(const hs_server *s, const char *text)
{
    FILE *f = fopen(s->log_path, "r");
    assert_non_null(f);
    char line[2048];
    int n = 0;
    while (fgets(line, sizeof line, f))
        n += strstr(line, text) != NULL;
    fclose(f);
    return n;
}

/* The receiver is down (connection refused), then closes the connection
 * without answering, then answers 3 s late, past --forward-timeout 1: all
 * three are retried, and the message then delivered. */
static void test_refused_closed_and_late_are_retried(void **state)
{
    rc_receiver *r = *state;
    rc_down(r);
    hs_server s;
    start_forwarding(&s, r, NULL);
    hs_expect_post(&s, "hooks", "persistent", 202);
    double failures =
        fw_await_forward_number(&s, "hooks", "consecutive_failures", 2, HS_PATIENCE_MS);
    if (failures < 2)
        fail_msg("consecutive_failures %g while the receiver refuses connections", failures);
    char error[256];
    fw_forward_string(&s, "hooks", "last_error", error, sizeof error);
    fprintf(stderr, "last_error while refused: '%s'\n", error);
    if (error[0] == '\0')
        fail_msg("no last_error in /status while connections are refused");
    rc_push_answer(r, &(rc_answer){.close = true});
    rc_push_answer(r, &(rc_answer){.status = 200, .hang_ms = 3000});
    assert_int_equal(rc_up(r), 0);
    const char *bodies[] = {"persistent", "persistent", "persistent"};
    const long counts[] = {0, 0, 0};
    expect_attempts(r, 0, bodies, counts, 3);
    long first = fw_delivery_count(rc_request_at(r, 0));
    if (first < 3)
        fail_msg("Hopper-Delivery-Count %ld after at least 2 refused attempts", first);
    for (size_t i = 1; i < 3; i++)
        assert_int_equal(fw_delivery_count(rc_request_at(r, i)), first + (long)i);
    /* hopper gave up on the late answer after about 1 s, not when it came */
    double late = rc_request_at(r, 2)->arrived - rc_request_at(r, 1)->arrived;
    fprintf(stderr, "retried %.3f s after the attempt that got no answer in time\n", late);
    if (late < 1.0 - EARLY_SLACK || late > 1.0 + RETRY_MAX + LATE_SLACK)
        fail_msg("the attempt after a 1 s timeout came %.3f s after the one that timed out", late);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_true(rc_wait_answered(r, 3, HS_PATIENCE_MS));
    assert_int_equal(rc_count(r), 3);
    /* one log line when the target started failing, one when it recovered */
    assert_true(hs_log_wait(&s, "recovered", HS_PATIENCE_MS));
    assert_int_equal(log_lines_with(&s, "failing"), 1);
    assert_int_equal(log_lines_with(&s, "recovered"), 1);
    hs_stop_ok(&s);
}

/* A connection that hopper keeps alive and the receiver then closes
 * without answering: the message is sent again, with its id. (libcurl
 * sends a request that got nothing on a reused connection again at once
 * on a fresh one, inside the same attempt: the receiver may see the same
 * delivery count twice.) */
static void test_closed_keep_alive_connection(void **state)
{
    rc_receiver *r = *state;
    rc_push_status(r, 200, 1);
    rc_push_answer(r, &(rc_answer){.close = true});
    hs_server s;
    start_forwarding(&s, r, NULL);
    hs_expect_post(&s, "hooks", "first", 202);
    fw_expect_delivery(r, 0, "hooks", "first", 1);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_expect_post(&s, "hooks", "second", 202);
    const char *bodies[] = {"first", "second", "second"};
    const long counts[] = {1, 1, 0};
    expect_attempts(r, 0, bodies, counts, 3);
    long again = fw_delivery_count(rc_request_at(r, 2));
    fprintf(stderr, "sent again with Hopper-Delivery-Count %ld\n", again);
    assert_true(again == 1 || again == 2);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(r), 3);
    hs_stop_ok(&s);
}

/* --max-deliveries counts deliveries to GETs, not forwarding attempts:
 * with 2, a message forwarded a fourth time is still not dead. */
static void test_max_deliveries_does_not_apply(void **state)
{
    rc_receiver *r = *state;
    rc_push_status(r, 500, 3);
    hs_server s;
    const char *extra[] = {"--max-deliveries", "2", NULL};
    start_forwarding(&s, r, extra);
    hs_expect_post(&s, "hooks", "stubborn", 202);
    const char *bodies[] = {"stubborn", "stubborn", "stubborn", "stubborn"};
    const long counts[] = {1, 2, 3, 4};
    expect_attempts(r, 0, bodies, counts, 4);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_true(hs_status_value(&s, "hooks.dead", "messages") <= 0);
    assert_int_equal(hs_status_value(&s, "hooks", "dead_lettered_total"), 0);
    hs_stop_ok(&s);
}

/* A backlog left while the receiver refuses (503; not down: a port given
 * up could be taken by another test's server while it is closed), most of
 * it in queue files (8 KiB of memory); once it answers 204 they all arrive
 * in order, each once, one right after the other. */
static void test_backlog_on_disk_in_order(void **state)
{
    rc_receiver *r = *state;
    const rc_answer busy = {.status = 503, .headers = "Retry-After: 1"};
    rc_set_default(r, &busy);
    hs_server s;
    const char *extra[] = {
        "--memory-bytes", "8KiB", "--file-bytes", "4KiB", "--forward-max-attempts",
        "1000000",        NULL};
    start_forwarding(&s, r, extra);
    enum { N = 60, BODY = 600 };
    char body[BODY + 1];
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof body, "m%02d|", i);
        memset(body + 4, 'a' + i % 26, BODY - 4);
        body[BODY] = '\0';
        hs_expect_post(&s, "hooks", body, 202);
    }
    assert_true(hs_status_value(&s, "hooks", "disk_bytes") > 0);
    const rc_answer ok = {.status = 204};
    rc_set_default(r, &ok);
    /* the first attempt answered 204: every one before it was refused */
    size_t first = 0;
    double start = hs_now();
    for (;; first++) {
        assert_true(rc_wait_answered(r, first + 1, HS_PATIENCE_MS));
        if (rc_request_at(r, first)->status == 204)
            break;
    }
    for (int i = 0; i < N; i++) {
        snprintf(body, sizeof body, "m%02d|", i);
        memset(body + 4, 'a' + i % 26, BODY - 4);
        body[BODY] = '\0';
        fw_expect_delivery(r, first + (size_t)i, "hooks", body, i == 0 ? 0 : 1);
    }
    double took = hs_now() - start;
    fprintf(stderr, "%d messages of the backlog delivered in %.2f s\n", N, took);
    /* one after the other, each answered at once: a fraction of a second
     * (10 s leaves room for a loaded machine, not for a pause per message;
     * the first may wait out one backoff of at most 0.5 s) */
    if (took > BACKLOG_PATIENCE_S)
        fail_msg("%d messages took %.2f s to forward to a receiver that answers at once", N, took);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    assert_int_equal(rc_count(r), first + N);
    hs_stop_ok(&s);
}

int main(void)
{
#define T(test) cmocka_unit_test_setup_teardown(test, rc_setup, rc_teardown)
    const struct CMUnitTest tests[] = {
        T(test_order_under_failures),
        T(test_backoff_within_bounds),
        T(test_retry_after_obeyed),
        T(test_retry_after_capped),
        T(test_refused_goes_dead_at_once),
        T(test_max_attempts_goes_dead),
        T(test_refused_closed_and_late_are_retried),
        T(test_closed_keep_alive_connection),
        T(test_max_deliveries_does_not_apply),
        T(test_backlog_on_disk_in_order),
    };
#undef T
    const char *filter = getenv("HOPPER_TEST_FILTER"); /* e.g. "*backoff*" */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
