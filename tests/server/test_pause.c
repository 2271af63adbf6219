/* test_pause.c - POST /channels/NAME/pause and /resume: while paused, GETs
 * (plain, leased, batch) take nothing and answer 204 at their deadline,
 * POSTs are accepted, forwarding delivers nothing; on resume a waiting GET
 * gets its message at once and everything comes out in order; the state
 * survives a restart, with messages and without, and shows in /status,
 * /metrics and GET /channels; 404 and 405. */
#include "harness.h"
#include "test_forward_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

/* The deadline of the timed GETs, and how much earlier than it a 204 may
 * not come (the server's timer is precise to a few milliseconds). */
#define WAIT_S 1.0
#define EARLY_S 0.1

/* POST /channels/<channel>/<action> (pause or resume): 200 with exactly
 * {"channel": channel, "paused": paused}. */
static void expect_action(const hs_server *s, const char *channel, const char *action, bool paused)
{
    char path[256];
    snprintf(path, sizeof path, "/channels/%s/%s", channel, action);
    hs_reply r;
    assert_int_equal(hs_request(s, "POST", path, NULL, 0, NULL, &r), 0);
    if (r.status != 200)
        fail_msg("POST %s: %ld %s", path, r.status, (const char *)r.body);
    assert_string_equal(r.content_type, "application/json");
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    assert_non_null(doc);
    assert_int_equal(json_object_size(doc), 2);
    assert_string_equal(json_string_value(json_object_get(doc, "channel")), channel);
    assert_true(json_is_boolean(json_object_get(doc, "paused")));
    assert_int_equal(json_is_true(json_object_get(doc, "paused")), paused);
    json_decref(doc);
}

static void expect_pause(const hs_server *s, const char *channel)
{
    expect_action(s, channel, "pause", true);
}

static void expect_resume(const hs_server *s, const char *channel)
{
    expect_action(s, channel, "resume", false);
}

/* /status channels.<channel>.paused, a boolean: 1 or 0; -1 if the
 * channel or the field is absent or not a boolean. */
static int status_paused(const hs_server *s, const char *channel)
{
    hs_reply r;
    int value = -1;
    if (hs_get(s, "/status", &r) == 0 && r.status == 200) {
        json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
        json_t *v =
            json_object_get(json_object_get(json_object_get(doc, "channels"), channel), "paused");
        if (json_is_boolean(v))
            value = json_is_true(v);
        json_decref(doc);
    }
    hs_reply_free(&r);
    return value;
}

/* The state is the same in /status, /metrics and GET /channels. */
static void expect_paused_everywhere(const hs_server *s, const char *channel, bool paused)
{
    assert_int_equal(status_paused(s, channel), paused);
    assert_int_equal(hs_metric_value(s, "hopper_channel_paused", channel), paused);
    hs_reply r;
    assert_int_equal(hs_get(s, "/channels", &r), 0);
    assert_int_equal(r.status, 200);
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    json_t *list = json_object_get(doc, "channels"), *entry;
    size_t i;
    int seen = -1;
    json_array_foreach(list, i, entry)
    {
        if (strcmp(json_string_value(json_object_get(entry, "name")), channel) == 0)
            seen = json_is_true(json_object_get(entry, "paused"));
    }
    json_decref(doc);
    assert_int_equal(seen, paused);
}

/* GET path must be answered 204, not before WAIT_S - EARLY_S. */
static void expect_204_at_deadline(const hs_server *s, const char *path)
{
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    long status = r.status;
    double took = r.seconds;
    hs_reply_free(&r);
    if (status != 204 || took < WAIT_S - EARLY_S)
        fail_msg("GET %s: %ld after %.3f s, expected 204 after %.1f s", path, status, took, WAIT_S);
}

static void post_numbered(const hs_server *s, const char *channel, int from, int to)
{
    for (int i = from; i < to; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        hs_expect_post(s, channel, text, 202);
    }
}

static void expect_numbered(const hs_server *s, const char *channel, int from, int to)
{
    for (int i = from; i < to; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        hs_expect_get(s, channel, "0", text);
    }
    hs_expect_nothing(s, channel, "0", NULL);
}

/* Paused with messages: every kind of GET waits and answers 204; POSTs go
 * on; pausing twice is fine; a GET waiting since before the resume gets
 * the first message at once; all come in order. */
static void test_paused_gets_wait_and_resume_delivers(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    post_numbered(&s, "p", 0, 2);
    expect_pause(&s, "p");
    expect_pause(&s, "p"); /* idempotent */
    expect_paused_everywhere(&s, "p", true);

    hs_expect_nothing(&s, "p", "0", NULL);
    hs_expect_nothing(&s, "p", "0", "30"); /* leased */
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/p?wait=0&max=5", &r), 0); /* batch */
    assert_int_equal(r.status, 204);
    hs_reply_free(&r);
    expect_204_at_deadline(&s, "/channels/p?wait=1");
    expect_204_at_deadline(&s, "/channels/p?wait=1&lease=30");
    expect_204_at_deadline(&s, "/channels/p?wait=1&max=5");

    post_numbered(&s, "p", 2, 4); /* accepted while paused */
    assert_int_equal(hs_status_value(&s, "p", "messages"), 4);
    assert_int_equal(hs_status_value(&s, "p", "leased"), 0);

    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/p?wait=20");
    hs_get_await_waiting(&g, "p", 1); /* a parked GET counts as waiting */
    double resumed = hs_now();
    expect_resume(&s, "p");
    hs_get_end_ok(&g, 200);
    assert_string_equal((const char *)g.reply.body, "m0");
    double took = hs_now() - resumed;
    hs_reply_free(&g.reply);
    if (took > 5.0)
        fail_msg("the waiting GET got its message %.3f s after the resume", took);
    expect_resume(&s, "p"); /* idempotent */
    expect_numbered(&s, "p", 1, 4);
    expect_paused_everywhere(&s, "p", false);
    hs_stop_ok(&s);
}

/* A GET that waits on an empty channel when it is paused is held back: a
 * POST does not reach it; the resume gives it that message. Also leased. */
static void test_pause_holds_back_a_waiting_get(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_nothing(&s, "w", "0", NULL); /* creates the channel */
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/w?wait=20&lease=30");
    hs_get_await_waiting(&g, "w", 1); /* armed before the pause */
    expect_pause(&s, "w");
    hs_expect_post(&s, "w", "held", 202);
    /* the message stays in the channel, the GET waits on */
    hs_await_status_ok(&s, "w", "messages", 1);
    assert_int_equal(hs_status_value(&s, "w", "waiting_receivers"), 1);
    assert_int_equal(hs_status_value(&s, "w", "leased"), 0);
    expect_resume(&s, "w");
    hs_get_end_ok(&g, 200);
    assert_string_equal((const char *)g.reply.body, "held");
    assert_true(g.reply.seconds < 15.0);
    hs_reply_free(&g.reply);
    assert_int_equal(hs_status_value(&s, "w", "leased"), 1);

    /* a parked GET at the stop does not hold the stop up */
    expect_pause(&s, "w");
    hs_get_begin_ok(&g, &s, "/channels/w?wait=20");
    hs_get_await_waiting(&g, "w", 1);
    hs_stop_ok(&s);
    hs_get_end(&g);
    hs_reply_free(&g.reply);
}

static void test_unknown_channel_and_methods(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_error(&s, "POST", "/channels/nope/pause", 404, "no_channel");
    hs_expect_error(&s, "POST", "/channels/nope/resume", 404, "no_channel");
    assert_int_equal(hs_status_value(&s, "nope", "messages"), -1); /* not created */
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels", &r), 0);
    assert_int_equal(r.status, 200);
    assert_null(strstr((const char *)r.body, "nope"));
    hs_reply_free(&r);

    const char *methods[] = {"GET", "DELETE", "PUT"};
    for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++) {
        hs_expect_error(&s, methods[i], "/channels/x/pause", 405, "method_not_allowed");
        assert_int_equal(hs_request(&s, methods[i], "/channels/x/resume", NULL, 0, NULL, &r), 0);
        char allow[64];
        assert_int_equal(r.status, 405);
        assert_true(hs_header(&r, "Allow", allow, sizeof allow));
        assert_string_equal(allow, "POST");
        hs_reply_free(&r);
    }
    hs_expect_error(&s, "POST", "/channels/x/pauses", 400, "bad_name");
    hs_stop_ok(&s);
}

/* Restarted while paused, with messages and without: still paused (the
 * empty one is not dropped at start), and the resume delivers. */
static void test_pause_survives_a_restart(void **state)
{
    const char *dir = *state;
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    post_numbered(&s, "full", 0, 3);
    hs_expect_post(&s, "empty", "gone", 202);
    hs_expect_get(&s, "empty", "0", "gone");
    hs_expect_post(&s, "other", "x", 202);
    hs_expect_get(&s, "other", "0", "x");
    expect_pause(&s, "full");
    expect_pause(&s, "empty");
    hs_stop_ok(&s);

    char path[512];
    snprintf(path, sizeof path, "%s/empty/.paused", dir);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);

    hs_start_in_ok(&s, dir, NULL);
    expect_paused_everywhere(&s, "full", true);
    expect_paused_everywhere(&s, "empty", true);
    assert_int_equal(hs_status_value(&s, "other", "messages"), -1); /* empty: dropped */
    assert_int_equal(hs_status_value(&s, "full", "messages"), 3);
    hs_expect_nothing(&s, "full", "0", NULL);
    hs_expect_nothing(&s, "empty", "0", NULL);
    hs_expect_post(&s, "empty", "new", 202);
    hs_expect_nothing(&s, "empty", "0", NULL);

    expect_resume(&s, "full");
    expect_resume(&s, "empty");
    assert_int_not_equal(stat(path, &st), 0); /* the mark is gone */
    expect_numbered(&s, "full", 0, 3);
    hs_expect_get(&s, "empty", "0", "new");
    expect_paused_everywhere(&s, "full", false);
    hs_stop_ok(&s);

    /* resumed stays resumed; and an empty resumed channel goes at start */
    hs_start_in_ok(&s, dir, NULL);
    assert_int_equal(hs_status_value(&s, "full", "messages"), -1);
    hs_expect_post(&s, "full", "again", 202);
    hs_expect_get(&s, "full", "0", "again");
    hs_stop_ok(&s);
}

/* A forwarded channel, paused, delivers nothing to its receiver for ~1 s
 * though messages come in; after the resume all of them, in order. */
static void test_paused_forward_delivers_nothing(void **state)
{
    rc_receiver *r = *state;
    char rule[RULE_SIZE];
    fw_rule(r, "hooks", "/hook", rule, sizeof rule);
    const char *args[] = {"--forward", rule, NULL};
    hs_server s;
    hs_start_ok(&s, args);
    hs_expect_post(&s, "hooks", "first", 202);
    fw_expect_delivery(r, 0, "hooks", "first", 1);
    hs_await_status_ok(&s, "hooks", "messages", 0);
    expect_pause(&s, "hooks");
    post_numbered(&s, "hooks", 0, 3);
    double until = hs_now() + WAIT_S;
    while (hs_now() < until) {
        assert_int_equal(rc_count(r), 1);
        usleep(50 * 1000);
    }
    assert_int_equal(hs_status_value(&s, "hooks", "messages"), 3);
    expect_paused_everywhere(&s, "hooks", true);
    /* the list says it is forwarded, with its attempts */
    hs_reply lr;
    assert_int_equal(hs_get(&s, "/channels?prefix=hooks", &lr), 0);
    json_t *doc = json_loadb((const char *)lr.body, lr.len, 0, NULL);
    hs_reply_free(&lr);
    json_t *entry = json_array_get(json_object_get(doc, "channels"), 0);
    assert_true(json_is_true(json_object_get(entry, "forwarded")));
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(entry, "forward"), "attempts_total")),
        1);
    json_decref(doc);
    expect_resume(&s, "hooks");
    for (int i = 0; i < 3; i++) {
        char text[16];
        snprintf(text, sizeof text, "m%d", i);
        fw_expect_delivery(r, 1 + (size_t)i, "hooks", text, 1);
    }
    hs_await_status_ok(&s, "hooks", "messages", 0);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_paused_gets_wait_and_resume_delivers),
        cmocka_unit_test(test_pause_holds_back_a_waiting_get),
        cmocka_unit_test(test_unknown_channel_and_methods),
        cmocka_unit_test_setup_teardown(test_pause_survives_a_restart, hs_dir_setup,
                                        hs_dir_teardown),
        cmocka_unit_test_setup_teardown(test_paused_forward_delivers_nothing, rc_setup,
                                        rc_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
