/* test_expiry.c - server/expiry.c against the real binary: a message older
 * than its TTL (?ttl=, Hopper-TTL) or --max-age is dropped where a
 * receiver meets it, and exactly those: in memory and in queue files,
 * across a restart that adds --max-age, for plain, waiting, batch and
 * leased GETs, in NAME.dead; never in a data directory whose messages have
 * no accept time; counted in /status and /metrics, logged at most once a
 * minute, and freed from the budget at once. A bad TTL is 400 and stores
 * nothing. (Forwarding: test_expiry_forward.c.)
 *
 * The TTLs that expire are short (SHORT_TTL) and the test waits them out
 * (EXPIRED_AFTER_MS); the messages that must stay have no TTL, or one far
 * longer than a test, so a slow machine cannot make one expire early. */
#include "batch_util.h"
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#define SHORT_TTL "0.2"
/* Long enough after a POST with SHORT_TTL for it to have expired. */
#define EXPIRED_AFTER_MS 400
#define LONG_TTL "3600"

static void sleep_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
}

/* POST text to channel with ?ttl=<query> and the header Hopper-TTL:
 * <header> (each NULL: not sent): the status must be status. */
static void post_ttl(const hs_server *s, const char *channel, const char *text, const char *query,
                     const char *header, long status)
{
    char path[256], line[128];
    snprintf(path, sizeof path, "/channels/%s%s%s", channel, query ? "?ttl=" : "",
             query ? query : "");
    snprintf(line, sizeof line, "Hopper-TTL: %s", header ? header : "");
    const char *headers[] = {header ? line : NULL, NULL};
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, text, strlen(text), "text/plain", headers, &r), 0);
    if (r.status != status)
        fail_msg("POST %s (%s): expected %ld, got %ld: %s", path, line, status, r.status,
                 (const char *)r.body);
    hs_reply_free(&r);
}

/* A message that expires soon: by ?ttl= or by the header, in turn. */
static void post_short(const hs_server *s, const char *channel, const char *text)
{
    static int n;
    bool by_header = n++ % 2;
    post_ttl(s, channel, text, by_header ? NULL : SHORT_TTL, by_header ? SHORT_TTL : NULL, 202);
}

/* Channel hands out exactly bodies[0..n), in order, then nothing. */
static void expect_only(const hs_server *s, const char *channel, const char *const *bodies,
                        size_t n)
{
    for (size_t i = 0; i < n; i++)
        hs_expect_get(s, channel, "0", bodies[i]);
    hs_expect_nothing(s, channel, "0", NULL);
}

/* Post a mix to channel: "keep-1", two that expire, "keep-2" (a long
 * TTL), one that expires, "keep-3". */
static void post_mix(const hs_server *s, const char *channel)
{
    hs_expect_post(s, channel, "keep-1", 202);
    post_short(s, channel, "gone-1");
    post_short(s, channel, "gone-2");
    post_ttl(s, channel, "keep-2", LONG_TTL, NULL, 202);
    post_short(s, channel, "gone-3");
    hs_expect_post(s, channel, "keep-3", 202);
}

static const char *const KEPT[] = {"keep-1", "keep-2", "keep-3"};

static void test_ttl_drops_exactly_the_expired_in_memory(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_mix(&s, "mem");
    assert_int_equal(hs_status_value(&s, "mem", "disk_files"), 0);
    sleep_ms(EXPIRED_AFTER_MS);
    expect_only(&s, "mem", KEPT, 3);
    assert_int_equal(hs_status_value(&s, "mem", "expired_total"), 3);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_expired_total", "mem"), 3);
    assert_int_equal(hs_status_value(&s, "mem", "messages"), 0);
    hs_stop_ok(&s);
}

static void test_ttl_drops_exactly_the_expired_in_queue_files(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "0", "--file-bytes", "4KiB", NULL};
    hs_start_ok(&s, args);
    post_mix(&s, "disk");
    assert_int_equal(hs_status_value(&s, "disk", "memory_bytes"), 0);
    assert_true(hs_status_value(&s, "disk", "disk_files") >= 1);
    sleep_ms(EXPIRED_AFTER_MS);
    expect_only(&s, "disk", KEPT, 3);
    assert_int_equal(hs_status_value(&s, "disk", "expired_total"), 3);
    hs_await_status_ok(&s, "disk", "disk_files", 0); /* all consumed: removed */
    hs_stop_ok(&s);
}

/* --max-age given at a restart applies to the messages stored before it,
 * counted from when they were accepted, whatever their TTL; in memory (a
 * stop writes it to a queue file) and in queue files alike. */
static void test_max_age_added_at_restart(void **state)
{
    const char *dir = *state;
    hs_server s;
    const char *first[] = {"--memory-bytes", "4KiB", NULL};
    hs_start_in_ok(&s, dir, first);
    double posted = hs_now();
    hs_expect_post(&s, "mem", "old-1", 202);
    post_ttl(&s, "mem", "old-2", LONG_TTL, NULL, 202);
    static char big[3000];
    for (int i = 0; i < 4; i++) {
        bu_fill(big, sizeof big - 1, 'x', i % 2 ? "old-big" : "old-big-ttl");
        post_ttl(&s, "paged", big, i % 2 ? NULL : LONG_TTL, NULL, 202);
    }
    assert_true(hs_status_value(&s, "paged", "disk_files") >= 1);
    hs_stop_ok(&s);

    sleep_ms((long)((posted + 1.7 - hs_now()) * 1000)); /* older than --max-age 1.5 */
    const char *again[] = {"--memory-bytes", "4KiB", "--max-age", "1.5", NULL};
    hs_start_in_ok(&s, dir, again);
    hs_expect_post(&s, "mem", "new", 202);
    hs_expect_post(&s, "paged", "new", 202);
    static const char *const fresh[] = {"new"};
    expect_only(&s, "mem", fresh, 1);
    expect_only(&s, "paged", fresh, 1);
    assert_int_equal(hs_status_value(&s, "mem", "expired_total"), 2);
    assert_int_equal(hs_status_value(&s, "paged", "expired_total"), 4);
    hs_stop_ok(&s);
}

/* g, waiting on "ch", gets the message posted now. */
static void expect_waiter_gets_fresh(hs_pending_get *g, const hs_server *s)
{
    hs_expect_post(s, "ch", "fresh", 202);
    hs_get_end_ok(g, 200);
    assert_string_equal((const char *)g->reply.body, "fresh");
    hs_reply_free(&g->reply);
}

/* A GET that meets only expired messages answers 204; a waiting one waits
 * on past them, for the next message. */
static void test_get_meeting_only_expired_ones(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_short(&s, "ch", "gone-1");
    post_short(&s, "ch", "gone-2");
    sleep_ms(EXPIRED_AFTER_MS);
    hs_expect_nothing(&s, "ch", "0", NULL);
    assert_int_equal(hs_status_value(&s, "ch", "expired_total"), 2);

    post_short(&s, "ch", "gone-3");
    sleep_ms(EXPIRED_AFTER_MS);
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/ch?wait=20");
    hs_get_await_waiting(&g, "ch", 1);
    assert_int_equal(hs_status_value(&s, "ch", "expired_total"), 3);
    expect_waiter_gets_fresh(&g, &s);
    hs_stop_ok(&s);
}

/* A leased message that expired comes back when its lease is released:
 * a waiting GET handed it drops it and waits on, for the next message or
 * to the end of its wait. */
static void test_waiting_get_passes_an_expired_one_given_back(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    char receipt[HS_RECEIPT_LEN + 1];
    for (int round = 0; round < 2; round++) {
        post_short(&s, "ch", "short");
        hs_expect_leased(&s, "ch", "0", "60", "short", NULL, 1, receipt);
        sleep_ms(EXPIRED_AFTER_MS);
        hs_pending_get g;
        hs_get_begin_ok(&g, &s, round == 0 ? "/channels/ch?wait=20" : "/channels/ch?wait=2");
        hs_get_await_waiting(&g, "ch", 1);
        hs_expect_release(&s, "ch", receipt, 204, NULL);
        hs_await_status_ok(&s, "ch", "expired_total", round + 1);
        if (round == 0) {
            hs_await_status_ok(&s, "ch", "waiting_receivers", 1); /* still */
            expect_waiter_gets_fresh(&g, &s);
        } else {
            hs_get_end_ok(&g, 204); /* at the end of its wait */
            hs_reply_free(&g.reply);
        }
    }
    hs_stop_ok(&s);
}

/* A batch GET skips the expired ones, a batch POST gives its TTL to every
 * part. */
static void test_batch_get_and_post(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_mix(&s, "ch");
    bu_bytes body = {0};
    bu_numbered_batch(&body, 3);
    hs_reply r;
    bu_post_body(&s, "ch?ttl=" SHORT_TTL, &body, BATCH_TYPE, NULL, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    const char *header[] = {"Hopper-TTL: " LONG_TTL, NULL};
    bu_post_body(&s, "ch", &body, BATCH_TYPE, header, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    bu_bytes_free(&body);
    sleep_ms(EXPIRED_AFTER_MS);

    bu_batch b;
    bu_get_batch(&s, "/channels/ch?max=100&wait=0", &b);
    static const char *const want[] = {"keep-1", "keep-2", "keep-3", "part 0", "part 1", "part 2"};
    assert_int_equal(b.count, 6);
    for (size_t i = 0; i < b.count; i++) {
        assert_int_equal(b.parts[i].body_len, strlen(want[i]));
        assert_memory_equal(b.parts[i].body, want[i], b.parts[i].body_len);
    }
    bu_batch_free(&b);
    assert_int_equal(hs_status_value(&s, "ch", "expired_total"), 6);
    hs_stop_ok(&s);
}

static void test_leased_get_skips_expired(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_mix(&s, "ch");
    sleep_ms(EXPIRED_AFTER_MS);
    char receipt[HS_RECEIPT_LEN + 1];
    for (int i = 0; i < 3; i++) {
        hs_expect_leased(&s, "ch", "0", "60", KEPT[i], NULL, 1, receipt);
        hs_expect_ack(&s, "ch", receipt, 204, NULL);
    }
    hs_expect_nothing(&s, "ch", "0", "60");
    assert_int_equal(hs_status_value(&s, "ch", "expired_total"), 3);
    hs_stop_ok(&s);
}

/* A TTL that is not a number of seconds above 0 and at most ten years, or
 * a query and a header that differ, are refused before anything is
 * stored: the channel is not even made. */
static void test_bad_ttl_is_400_and_stores_nothing(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    static const char *const bad[] = {"abc",   "0",    "-1",     "",          "nan", "inf",
                                      "1e400", "0x10", "0.0001", "315360001", "1s",  "1,5"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        post_ttl(&s, "never", "x", bad[i], NULL, 400);
        if (bad[i][0])
            post_ttl(&s, "never", "x", NULL, bad[i], 400);
    }
    hs_expect_post_error(&s, "/channels/never?ttl", "x", 1, "text/plain", 400, "bad_ttl");
    hs_expect_post_error(&s, "/channels/never?ttl=1%002", "x", 1, "text/plain", 400, "bad_ttl");
    post_ttl(&s, "never", "x", "1", "2", 400);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 2);
    bu_expect_post_body(&s, "never?ttl=0", &body, BATCH_TYPE, NULL, 400, "bad_ttl");
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "never", "messages"), -1);

    post_ttl(&s, "ok", "same", "1.5", "1.500", 202);
    post_ttl(&s, "ok", "longest", "315360000", NULL, 202);
    static const char *const both[] = {"same", "longest"};
    expect_only(&s, "ok", both, 2);
    hs_stop_ok(&s);
}

/* The log says how many were dropped at most once a minute per channel:
 * the first drop at once, those after it in the next line, at the stop
 * if no minute has passed. */
static void test_counted_and_logged_once_a_minute(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_short(&s, "ch", "gone");
    sleep_ms(EXPIRED_AFTER_MS);
    hs_expect_nothing(&s, "ch", "0", NULL);
    assert_true(hs_log_wait(&s, "channel ch: dropped 1 expired message(s)", HS_PATIENCE_MS));
    for (int i = 0; i < 3; i++)
        post_short(&s, "ch", "gone");
    post_short(&s, "other", "gone");
    sleep_ms(EXPIRED_AFTER_MS);
    hs_expect_nothing(&s, "ch", "0", NULL);
    hs_expect_nothing(&s, "other", "0", NULL);
    assert_int_equal(hs_status_value(&s, "ch", "expired_total"), 4);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_expired_total", "ch"), 4);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_expired_total", "other"), 1);
    assert_true(hs_log_wait(&s, "channel other: dropped 1 expired message(s)", HS_PATIENCE_MS));
    assert_false(hs_log_wait(&s, "channel ch: dropped 3", 0));
    hs_stop_saying(&s, "channel ch: dropped 3 expired message(s)");
}

/* The bytes of an expired message leave the budget as soon as a GET
 * passes it. */
static void test_budget_freed_when_passed(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    long long before = hs_budget_value(&s, "memory_bytes");
    static char big[64 * 1024];
    for (int i = 0; i < 4; i++) {
        bu_fill(big, sizeof big - 1, 'b', "big");
        post_short(&s, "ch", big);
    }
    assert_true(hs_budget_value(&s, "memory_bytes") >= before + 4 * 64 * 1024);
    sleep_ms(EXPIRED_AFTER_MS);
    hs_expect_nothing(&s, "ch", "0", NULL);
    long long after = before + 64 * 1024; /* less than one of them */
    double until = hs_now() + HS_PATIENCE_MS / 1000.0;
    while (hs_budget_value(&s, "memory_bytes") >= after && hs_now() < until)
        sleep_ms(10);
    assert_true(hs_budget_value(&s, "memory_bytes") < after);
    assert_int_equal(hs_status_value(&s, "ch", "memory_bytes"), 0);
    hs_stop_ok(&s);
}

/* A message's TTL goes with it to NAME.dead, where it expires too. */
static void test_dead_letters_keep_their_ttl(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-deliveries", "1", NULL};
    hs_start_ok(&s, args);
    post_ttl(&s, "jobs", "poison", "1", NULL, 202);
    hs_expect_post(&s, "jobs.dead", "older", 202);
    char receipt[HS_RECEIPT_LEN + 1];
    hs_expect_leased(&s, "jobs", "0", "60", "poison", NULL, 1, receipt);
    hs_expect_release(&s, "jobs", receipt, 204, NULL);
    hs_await_status_ok(&s, "jobs", "dead_lettered_total", 1);
    sleep_ms(1200);
    static const char *const left[] = {"older"};
    expect_only(&s, "jobs.dead", left, 1);
    assert_int_equal(hs_status_value(&s, "jobs.dead", "expired_total"), 1);
    hs_stop_ok(&s);
}

/* A copy of fixture (fixtures/) as dir/name. OUT: out, its path. */
static void copy_fixture(const char *fixture, const char *dir, const char *name, char *out,
                         size_t size)
{
    char cmd[1024];
    snprintf(out, size, "%s/%s", dir, name);
    snprintf(cmd, sizeof cmd, "cp -R '%s/%s' '%s'", FIXTURES_DIR, fixture, out);
    assert_int_equal(system(cmd), 0);
}

/* The data directory hopper 6dd1eb2 wrote (envelope version 3: accept
 * times, test_upgrade.c) under --max-age: every message in it is older,
 * dropped; the one of version 2 (no accept times) loses none. */
static void test_max_age_on_data_directories_of_earlier_releases(void **state)
{
    char copy[512];
    copy_fixture("datadir-envelope-v3", *state, "v3", copy, sizeof copy);
    hs_server s;
    const char *args[] = {"--max-age", "1", NULL};
    hs_start_in_ok(&s, copy, args);
    static const struct {
        const char *channel;
        long long expired;
    } v3[] = {{"plain", 5}, {"big", 5}, {"leased", 2}, {"batch", 3}, {"poison.dead", 1}};
    for (size_t i = 0; i < sizeof v3 / sizeof v3[0]; i++) {
        hs_expect_nothing(&s, v3[i].channel, "0", NULL);
        assert_int_equal(hs_status_value(&s, v3[i].channel, "expired_total"), v3[i].expired);
    }
    hs_stop_ok(&s);

    copy_fixture("datadir-envelope-v2", *state, "v2", copy, sizeof copy);
    hs_start_in_ok(&s, copy, args);
    hs_expect_get(&s, "plain", "0", "hello");
    hs_expect_get(&s, "leased", "0", "once");
    hs_expect_get(&s, "poison.dead", "0", "poison");
    assert_int_equal(hs_status_value(&s, "plain", "expired_total"), 0);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ttl_drops_exactly_the_expired_in_memory),
        cmocka_unit_test(test_ttl_drops_exactly_the_expired_in_queue_files),
        cmocka_unit_test_setup_teardown(test_max_age_added_at_restart, hs_dir_setup,
                                        hs_dir_teardown),
        cmocka_unit_test(test_get_meeting_only_expired_ones),
        cmocka_unit_test(test_waiting_get_passes_an_expired_one_given_back),
        cmocka_unit_test(test_batch_get_and_post),
        cmocka_unit_test(test_leased_get_skips_expired),
        cmocka_unit_test(test_bad_ttl_is_400_and_stores_nothing),
        cmocka_unit_test(test_counted_and_logged_once_a_minute),
        cmocka_unit_test(test_budget_freed_when_passed),
        cmocka_unit_test(test_dead_letters_keep_their_ttl),
        cmocka_unit_test_setup_teardown(test_max_age_on_data_directories_of_earlier_releases,
                                        hs_dir_setup, hs_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
