/* test_delete.c - DELETE /channels/NAME (server/purge.c, graveyard.c,
 * registry.c's references): everything in the channel goes (memory, queue
 * files, delayed, leased), waiting GETs answer 204, receipts stop working,
 * the directory goes and the name and its --max-channels slot are free at
 * once; an unknown or forwarded channel is refused; a delete cut short by
 * a stop is finished at the next start. */
#include "harness.h"
#include "sse_client.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

/* DELETE /channels/name: 200 {"channel": name, "deleted": true,
 * "purged": purged}. */
static void delete_ok(const hs_server *s, const char *name, long long purged)
{
    char path[256], want[256];
    snprintf(path, sizeof path, "/channels/%s", name);
    hs_reply r;
    assert_int_equal(hs_request(s, "DELETE", path, NULL, 0, NULL, &r), 0);
    snprintf(want, sizeof want, "{\"channel\":\"%s\",\"deleted\":true,\"purged\":%lld}", name,
             purged);
    if (r.status != 200 || strcmp((char *)r.body, want) != 0)
        fail_msg("DELETE %s: %ld %s, not %s", path, r.status, (char *)r.body, want);
    hs_reply_free(&r);
}

static bool dir_exists(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    return stat(path, &st) == 0;
}

/* A leased GET of channel: its receipt into receipt. */
static void lease_one(const hs_server *s, const char *channel, char receipt[HS_RECEIPT_LEN + 1])
{
    char path[256];
    snprintf(path, sizeof path, "/channels/%s?wait=0&lease=30", channel);
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, HS_RECEIPT_LEN + 1));
    hs_reply_free(&r);
}

/* Messages in memory and in queue files, one leased, one delayed: all go,
 * counted; the name comes back empty and new. */
static void test_delete_everything(void **state)
{
    const char *dir = *state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "2KiB", "--file-bytes", "4KiB", NULL};
    hs_start_in_ok(&s, dir, args);
    char body[1000];
    memset(body, 'x', sizeof body);
    for (int i = 0; i < 20; i++)
        hs_expect_post_bytes(&s, "a", body, sizeof body, "text/plain", 202);
    hs_expect_post(&s, "a", "later", 202);
    hs_expect_request(&s, "POST", "/channels/a?delay=600", 202); /* empty body, delayed */
    hs_expect_post(&s, "keep", "kept", 202);
    assert_true(hs_status_value(&s, "a", "disk_files") > 0);
    char receipt[HS_RECEIPT_LEN + 1], path[256];
    lease_one(&s, "a", receipt);

    delete_ok(&s, "a", 22); /* 20 + later (one leased) + the delayed one */
    assert_false(dir_exists(dir, "a"));
    assert_int_equal(hs_status_value(&s, "a", "messages"), -1); /* not listed */
    snprintf(path, sizeof path, "/channels/a/messages/%s", receipt);
    hs_expect_error(&s, "DELETE", path, 404, "unknown_receipt");
    hs_expect_error(&s, "DELETE", "/channels/a", 404, "no_channel");
    hs_expect_nothing(&s, "a", "0", NULL); /* a GET makes it again: empty */
    hs_expect_post(&s, "a", "new", 202);
    hs_expect_get(&s, "a", "0", "new");
    hs_expect_get(&s, "keep", "0", "kept"); /* the others are left alone */
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, args); /* nothing of the old channel comes back */
    hs_expect_nothing(&s, "a", "0", NULL);
    assert_int_equal(hs_metric_value(&s, "hopper_channel_delayed_messages", "a"), 0);
    hs_stop_ok(&s);
}

/* A GET waiting on the channel answers 204 at once, not at its deadline. */
static void test_delete_wakes_waiters(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_nothing(&s, "w", "0", NULL); /* makes w */
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/w?wait=20");
    hs_get_await_waiting(&g, "w", 1);
    double before = hs_now();
    delete_ok(&s, "w", 0);
    hs_get_end_ok(&g, 204);
    hs_reply_free(&g.reply);
    assert_true(hs_now() - before < 5.0);

    /* and one a pause holds back */
    hs_expect_post(&s, "p", "held", 202);
    hs_expect_request(&s, "POST", "/channels/p/pause", 200);
    hs_get_begin_ok(&g, &s, "/channels/p?wait=20");
    hs_get_await_waiting(&g, "p", 1);
    before = hs_now();
    delete_ok(&s, "p", 1);
    hs_get_end_ok(&g, 204);
    hs_reply_free(&g.reply);
    assert_true(hs_now() - before < 5.0);
    hs_stop_ok(&s);
}

/* A stream on the channel ends, cleanly and at once; the server still
 * stops cleanly. */
static void test_delete_ends_streams(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "st", "one", 202);
    sse_client c;
    assert_int_equal(sse_open(&c, &s, "/channels/st", 0), 0);
    sse_block b;
    assert_true(sse_next_event(&c, &b, 5000));
    sse_block_free(&b);
    hs_await_status_ok(&s, "st", "streams", 1);
    double before = hs_now();
    delete_ok(&s, "st", 0);
    while (sse_pump(&c, 5000) && hs_now() - before < 5.0)
        ;
    assert_true(c.ended);
    assert_true(hs_now() - before < 5.0);
    sse_close(&c);
    assert_int_equal(hs_metric_value(&s, "hopper_streams_open", NULL), 0);
    hs_stop_ok(&s);
}

/* The name's --max-channels slot is free once deleted; an unknown channel
 * is 404 and not made; a forwarded one is 409 and stays. */
static void test_delete_frees_slot_and_refuses(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-channels", "2", "--forward", "f=http://127.0.0.1:9/", NULL};
    hs_start_ok(&s, args);
    hs_expect_post(&s, "f", "x", 202);
    hs_expect_post(&s, "b", "y", 202);
    hs_expect_post_error(&s, "/channels/c", "z", 1, "text/plain", 503, "too_many_channels");
    hs_expect_error(&s, "DELETE", "/channels/f", 409, "forwarded");
    hs_expect_error(&s, "DELETE", "/channels/nope", 404, "no_channel");
    assert_int_equal(hs_status_value(&s, "nope", "messages"), -1);
    delete_ok(&s, "b", 1);
    hs_expect_post(&s, "c", "z", 202);
    hs_expect_get(&s, "c", "0", "z");
    hs_stop_ok(&s);
}

/* A directory moved aside by a DELETE that a crash cut short (the rename
 * happened, the removal did not) goes at the next start; the channel is
 * not back. */
static void test_delete_finished_at_start(void **state)
{
    const char *dir = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/hopper+deleted-d-0123456789abcdef", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/hopper+deleted-d-0123456789abcdef/00000000000000000001.hq",
             dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("junk", f);
    fclose(f);
    hs_server s;
    hs_start_in_ok(&s, dir, NULL);
    assert_false(dir_exists(dir, "hopper+deleted-d-0123456789abcdef"));
    hs_expect_nothing(&s, "d", "0", NULL);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delete_everything, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test(test_delete_wakes_waiters),
        cmocka_unit_test(test_delete_ends_streams),
        cmocka_unit_test(test_delete_frees_slot_and_refuses),
        cmocka_unit_test_setup_teardown(test_delete_finished_at_start, hs_dir_setup,
                                        hs_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
