/* test_status.c - GET /healthz, /status (JSON fields) and /metrics
 * (Prometheus text format, checked by promtool). */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

static void test_healthz(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_reply r;
    assert_int_equal(hs_get(&s, "/healthz", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal((char *)r.body, "ok");
    assert_string_equal(r.content_type, "text/plain");
    hs_reply_free(&r);
    assert_int_equal(hs_request(&s, "HEAD", "/healthz", NULL, 0, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.len, 0);
    hs_reply_free(&r);
    hs_expect_post_error(&s, "/healthz", "x", 1, NULL, 405, "method_not_allowed");
    hs_stop_ok(&s);
}

/* Some traffic: channel "a" sent 3, received 1, one full refusal and one
 * too big; channel "b" one message; channel "w" one waiting GET, w. */
static void traffic(const hs_server *s, hs_pending_get *w)
{
    char big[3000];
    memset(big, 'b', sizeof big);
    hs_reply r;
    for (int i = 0; i < 3; i++)
        hs_expect_post(s, "a", "hello", 202);
    hs_expect_get(s, "a", "0", "hello");
    hs_expect_post_bytes(s, "a", big, sizeof big, NULL, 413);
    /* fill a up: 2 KiB of memory holds one more, no disk */
    int full = 0;
    for (int i = 0; i < 20 && !full; i++) {
        assert_int_equal(hs_post(s, "/channels/a", big, 2000, NULL, &r), 0);
        full = r.status == 507;
        hs_reply_free(&r);
    }
    assert_true(full);
    hs_expect_post(s, "b", "x", 202);
    hs_get_begin_ok(w, s, "/channels/w?wait=25");
    hs_get_await_waiting(w, "w", 1);
}

static void test_status_json(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {
        "--max-disk-files", "0", "--memory-bytes", "8KiB", "--max-message-bytes", "2KiB", NULL};
    hs_start_ok(&s, args);
    hs_pending_get w;
    traffic(&s, &w);

    hs_reply r;
    assert_int_equal(hs_get(&s, "/status", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "application/json");
    json_error_t err;
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, &err);
    hs_reply_free(&r);
    assert_non_null(doc);
    assert_true(json_is_string(json_object_get(doc, "version")));
    assert_true(json_is_number(json_object_get(doc, "uptime_seconds")));
    assert_true(json_number_value(json_object_get(doc, "uptime_seconds")) >= 0);
    json_t *limits = json_object_get(doc, "limits");
    const char *limit_fields[] = {
        "memory_bytes", "file_bytes",       "max_disk_files", "max_message_bytes",
        "max_channels", "max_wait_seconds", "threads"};
    for (size_t i = 0; i < sizeof limit_fields / sizeof limit_fields[0]; i++)
        assert_true(json_is_number(json_object_get(limits, limit_fields[i])));
    assert_int_equal(json_integer_value(json_object_get(limits, "memory_bytes")), 8192);
    assert_true(json_is_false(json_object_get(limits, "durable")));

    json_t *channels = json_object_get(doc, "channels");
    assert_int_equal(json_object_size(channels), 3);
    const char *fields[] = {
        "messages",   "memory_bytes",   "disk_bytes",          "disk_files",
        "sent_total", "received_total", "rejected_full_total", "waiting_receivers",
        "in_flight",  "recovered",      "syncs_total",         "records_corrupt_total"};
    const char *names[] = {"a", "b", "w"};
    for (size_t c = 0; c < 3; c++) {
        json_t *ch = json_object_get(channels, names[c]);
        assert_non_null(ch);
        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            if (!json_is_integer(json_object_get(ch, fields[i])))
                fail_msg("channels.%s.%s missing", names[c], fields[i]);
        }
    }
    json_t *a = json_object_get(channels, "a");
    long long sent = json_integer_value(json_object_get(a, "sent_total"));
    assert_true(sent >= 4);
    assert_int_equal(json_integer_value(json_object_get(a, "received_total")), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "messages")), sent - 1);
    assert_int_equal(json_integer_value(json_object_get(a, "rejected_full_total")), 1);
    assert_int_equal(json_integer_value(json_object_get(a, "rejected_too_big_total")), 1);
    assert_true(json_integer_value(json_object_get(a, "memory_bytes")) > 0);
    assert_int_equal(json_integer_value(json_object_get(a, "disk_files")), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "in_flight")), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "recovered")), 0);
    assert_int_equal(json_integer_value(json_object_get(a, "syncs_total")), 0);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(channels, "w"), "waiting_receivers")),
        1);
    json_decref(doc);

    hs_expect_post(&s, "w", "wake", 202);
    hs_get_end_ok(&w, 200);
    hs_reply_free(&w.reply);
    hs_stop_ok(&s);
}

/* Pipe text into promtool check metrics. 0 when it passes. */
static int promtool_check(const char *text, size_t len)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        fail_msg("promtool is missing (Debian package prometheus)");
    FILE *p = popen("promtool check metrics 2>&1", "w");
    assert_non_null(p);
    fwrite(text, 1, len, p);
    int status = pclose(p);
    return status;
}

static void test_metrics(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {
        "--max-disk-files", "0", "--memory-bytes", "8KiB", "--max-message-bytes", "2KiB", NULL};
    hs_start_ok(&s, args);

    /* no channels yet: families without samples must pass too */
    hs_reply r;
    assert_int_equal(hs_get(&s, "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.content_type, "text/plain; version=0.0.4; charset=utf-8");
    assert_int_equal(promtool_check((const char *)r.body, r.len), 0);
    hs_reply_free(&r);

    hs_pending_get w;
    traffic(&s, &w);
    assert_int_equal(hs_get(&s, "/metrics", &r), 0);
    assert_int_equal(r.status, 200);
    const char *text = (const char *)r.body;
    const char *families[] = {
        "hopper_messages_sent_total",
        "hopper_messages_received_total",
        "hopper_messages_rejected_total",
        "hopper_channel_messages",
        "hopper_channel_memory_bytes",
        "hopper_channel_disk_bytes",
        "hopper_channel_disk_files",
        "hopper_channel_waiting_receivers",
        "hopper_channel_in_flight_messages",
        "hopper_messages_recovered_total",
        "hopper_syncs_total",
        "hopper_records_corrupt_total",
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        char line[160];
        snprintf(line, sizeof line, "# TYPE %s ", families[i]);
        if (strstr(text, line) == NULL)
            fail_msg("no TYPE line for %s", families[i]);
        snprintf(line, sizeof line, "# HELP %s ", families[i]);
        assert_non_null(strstr(text, line));
        snprintf(line, sizeof line, "\n%s{channel=\"a\"", families[i]);
        if (strstr(text, line) == NULL)
            fail_msg("no sample of %s for channel a", families[i]);
    }
    assert_non_null(strstr(text, "# TYPE hopper_messages_sent_total counter\n"));
    assert_non_null(strstr(text, "# TYPE hopper_channel_messages gauge\n"));
    assert_non_null(strstr(text, "# TYPE hopper_channel_in_flight_messages gauge\n"));
    assert_non_null(strstr(text, "# TYPE hopper_messages_recovered_total counter\n"));
    assert_non_null(strstr(text, "# TYPE hopper_syncs_total counter\n"));
    assert_non_null(strstr(text, "# TYPE hopper_records_corrupt_total counter\n"));
    assert_non_null(strstr(text, "\nhopper_messages_received_total{channel=\"a\"} 1\n"));
    assert_non_null(
        strstr(text, "\nhopper_messages_rejected_total{channel=\"a\",reason=\"full\"} 1\n"));
    assert_non_null(
        strstr(text, "\nhopper_messages_rejected_total{channel=\"a\",reason=\"too_big\"} 1\n"));
    assert_non_null(strstr(text, "\nhopper_messages_sent_total{channel=\"b\"} 1\n"));
    assert_non_null(strstr(text, "\nhopper_channel_waiting_receivers{channel=\"w\"} 1\n"));
    assert_int_equal(promtool_check(text, r.len), 0);
    hs_reply_free(&r);

    /* promtool does reject what is wrong (the check is not a no-op) */
    const char *bad = "# TYPE broken counter\nbroken{channel=\"a\" 1\n";
    assert_int_not_equal(promtool_check(bad, strlen(bad)), 0);

    hs_expect_post(&s, "w", "wake", 202);
    hs_get_end(&w);
    hs_reply_free(&w.reply);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthz),
        cmocka_unit_test(test_status_json),
        cmocka_unit_test(test_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
