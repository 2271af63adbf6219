/* test_purge.c - DELETE /channels/NAME/messages (server/purge.c): every
 * message goes (memory, queue files, delayed, leased: their receipts then
 * answer 410), counted; the channel stays, a waiting GET keeps waiting and
 * gets the next message sent; nothing comes back after a restart; an
 * unknown channel is 404 and not made; the counters in /metrics. (A purge
 * an I/O error cuts short, then a crash: test_faults.c.) */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static void test_purge_everything(void **state)
{
    const char *dir = *state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "2KiB", "--file-bytes", "4KiB", NULL};
    hs_start_in_ok(&s, dir, args);
    char body[500];
    memset(body, 'p', sizeof body);
    for (int i = 0; i < 30; i++)
        hs_expect_post_bytes(&s, "c", body, sizeof body, "text/plain", 202);
    hs_expect_request(&s, "POST", "/channels/c?delay=600", 202);
    assert_true(hs_status_value(&s, "c", "disk_files") > 0);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/c?wait=0&lease=30", &r), 0);
    char receipt[HS_RECEIPT_LEN + 1], path[256];
    assert_true(hs_header(&r, "Hopper-Receipt", receipt, sizeof receipt));
    hs_reply_free(&r);
    hs_expect_post(&s, "other", "stays", 202);

    assert_int_equal(hs_request(&s, "DELETE", "/channels/c/messages", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "{\"channel\":\"c\",\"purged\":31}");
    hs_reply_free(&r);
    assert_int_equal(hs_status_value(&s, "c", "messages"), 0);
    assert_int_equal(hs_status_value(&s, "c", "delayed"), 0);
    assert_int_equal(hs_status_value(&s, "c", "leased"), 0);
    assert_int_equal(hs_status_value(&s, "c", "disk_files"), 0);
    snprintf(path, sizeof path, "/channels/c/messages/%s", receipt);
    hs_expect_error(&s, "DELETE", path, 410, "lease_ended");
    assert_int_equal(hs_metric_value(&s, "hopper_purges_total", NULL), 1);
    assert_int_equal(hs_metric_value(&s, "hopper_messages_purged_total", NULL), 31);

    /* the channel stays: a waiting GET gets the next message */
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/c?wait=20");
    hs_get_await_waiting(&g, "c", 1);
    hs_expect_post(&s, "c", "after", 202);
    hs_get_end_ok(&g, 200);
    assert_int_equal(g.reply.len, 5);
    assert_memory_equal(g.reply.body, "after", 5);
    hs_reply_free(&g.reply);
    hs_expect_post(&s, "c", "kept", 202);
    hs_expect_get(&s, "other", "0", "stays");
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, args); /* only what came after the purge */
    hs_expect_get(&s, "c", "0", "kept");
    hs_expect_nothing(&s, "c", "0", NULL);
    assert_int_equal(hs_status_value(&s, "c", "delayed"), 0);
    hs_stop_ok(&s);
}

static void test_purge_refusals(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_error(&s, "DELETE", "/channels/none/messages", 404, "no_channel");
    assert_int_equal(hs_status_value(&s, "none", "messages"), -1);
    hs_expect_nothing(&s, "e", "0", NULL);
    hs_reply r;
    assert_int_equal(hs_request(&s, "DELETE", "/channels/e/messages", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "{\"channel\":\"e\",\"purged\":0}");
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_purge_everything, hs_dir_setup, hs_dir_teardown),
        cmocka_unit_test(test_purge_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
