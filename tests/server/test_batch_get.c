/* test_batch_get.c - GET ?max=N against the real binary: the ready
 * messages come as one multipart/mixed response, in order, each part with
 * its Content-Type, its kept headers and its delivery count (and with
 * ?lease= its receipt); at most max of them; a batch GET waits only for
 * the first; bad max values; binary bodies and the boundary that avoids
 * them; messages from queue files and memory in one batch; a response cut
 * short gives all its messages back; a batch POST wakes a batch GET.
 * (Batch POSTs: test_batch_post.c; what both share: batch_util.c.) */
#include "batch_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Ready messages come as parts in FIFO order, each with its Content-Type
 * (the default where the POST had none), its kept headers only, its own
 * message id and a delivery count of 1; no receipt without a lease. */
static void test_get_batch_in_order_with_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq,X-Sig-*", NULL};
    hs_start_ok(&s, args);
    static const char *const types[] = {"text/plain", "application/json", NULL,
                                        "text/csv; charset=utf-8"};
    static const char *const bodies[] = {"first", "{\"n\":2}", "third", "4,four"};
    for (int i = 0; i < 4; i++) {
        char seq[32], sig[64];
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        snprintf(sig, sizeof sig, "X-Sig-A: sha256=%08d, \"quoted\"", i);
        const char *headers[] = {seq, sig, "X-Other: not kept", NULL};
        bu_post_one(&s, "q", bodies[i], strlen(bodies[i]), types[i], headers);
    }
    bu_batch b;
    bu_get_batch(&s, "/channels/q?wait=25&max=10", &b);
    assert_true(b.r.seconds < 25.0); /* all ready: no wait for more */
    assert_int_equal(b.count, 4);
    char ids[4][HS_MESSAGE_ID_LEN + 1];
    for (size_t i = 0; i < 4; i++) {
        char seq[16], sig[64];
        snprintf(seq, sizeof seq, "%zu", i);
        snprintf(sig, sizeof sig, "sha256=%08zu, \"quoted\"", i);
        bu_expect_text_part(&b.parts[i], types[i] ? types[i] : "application/octet-stream",
                            bodies[i]);
        bu_expect_part_header(&b.parts[i], "X-Seq", seq);
        bu_expect_part_header(&b.parts[i], "X-Sig-A", sig);
        bu_expect_no_part_header(&b.parts[i], "X-Other");
        bu_expect_no_part_header(&b.parts[i], "Hopper-Receipt");
        bu_part_message_id(&b.parts[i], ids[i]);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(ids[k], ids[i]);
        /* Content-Type, the two kept, the id, the count: nothing else */
        assert_int_equal(b.parts[i].header_count, 5);
    }
    bu_batch_free(&b);
    bu_expect_empty(&s, "q");
    assert_int_equal(hs_status_value(&s, "q", "received_total"), 4);
    hs_stop_ok(&s);
}

/* ?max=N takes N when more are ready and leaves the rest; max=1 is still
 * a multipart response (of one); without max, a plain response. */
static void test_get_batch_takes_at_most_max(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof body, "m%d", i);
        hs_expect_post(&s, "most", body, 202);
    }
    bu_batch b;
    bu_get_batch(&s, "/channels/most?wait=0&max=3", &b);
    assert_int_equal(b.count, 3);
    bu_expect_text_part(&b.parts[0], "text/plain", "m0");
    bu_expect_text_part(&b.parts[1], "text/plain", "m1");
    bu_expect_text_part(&b.parts[2], "text/plain", "m2");
    bu_batch_free(&b);
    assert_int_equal(hs_status_value(&s, "most", "messages"), 2);

    bu_get_batch(&s, "/channels/most?wait=0&max=1", &b);
    assert_int_equal(b.count, 1);
    bu_expect_text_part(&b.parts[0], "text/plain", "m3");
    bu_batch_free(&b);

    hs_reply r;
    bu_get_plain(&s, "most", "m4", 2, "text/plain", &r);
    bu_expect_reply_header(&r, "Hopper-Delivery-Count", "1");
    hs_reply_free(&r);
    bu_expect_empty(&s, "most");
    hs_stop_ok(&s);
}

/* A batch GET waits only for the first message: with one ready it answers
 * at once with one part; with none it answers 204 when the wait is up; a
 * message that comes while it waits is answered with at once, one part. */
static void test_get_batch_waits_only_for_the_first(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "w", "ready", 202);
    bu_batch b;
    /* curl gives up at 30 s: a server that waited for more would take 25 */
    bu_get_batch(&s, "/channels/w?wait=25&max=10", &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 1);
    bu_expect_text_part(&b.parts[0], "text/plain", "ready");
    bu_batch_free(&b);

    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/w?wait=0.5&max=10", &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    assert_true(r.seconds >= 0.45);
    hs_reply_free(&r);

    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/w?wait=25&max=10");
    hs_get_await_waiting(&g, "w", 1);
    hs_expect_post(&s, "w", "late", 202);
    hs_get_end_ok(&g, 200);
    bu_parse_batch(&g.reply, &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 1);
    bu_expect_text_part(&b.parts[0], "text/plain", "late");
    bu_batch_free(&b);
    bu_expect_empty(&s, "w");
    hs_stop_ok(&s);
}

/* max is a whole number from 1 to 1000; anything else is 400 bad_max and
 * takes nothing. */
static void test_bad_max(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "bm", "stays", 202);
    static const char *const bad[] = {
        "max=0",    "max=-1",   "max=1001", "max=1.5", "max=abc",
        "max=",     "max=%00",  "max=1%00", "max",     "max=+1",
        "max=%201", "max=1%20", "max=0x5",  "max=1e2", "max=99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/channels/bm?wait=0&%s", bad[i]);
        hs_expect_error(&s, "GET", path, 400, "bad_max");
    }
    assert_int_equal(hs_status_value(&s, "bm", "messages"), 1);
    /* the largest max is allowed */
    bu_batch b;
    bu_get_batch(&s, "/channels/bm?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1);
    bu_expect_text_part(&b.parts[0], "text/plain", "stays");
    bu_batch_free(&b);
    hs_stop_ok(&s);
}

/* Bodies with every byte value, CRLFs, "--" runs and a copy of an earlier
 * response's framing come back byte-identical, and the boundary chosen
 * occurs in none of them. */
static void test_get_batch_binary_bodies(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "bin", "x", 202);
    bu_batch b;
    bu_get_batch(&s, "/channels/bin?wait=0&max=10", &b);
    char earlier[MULTIPART_BOUNDARY_SIZE];
    memcpy(earlier, b.boundary, sizeof earlier);
    bu_batch_free(&b);

    unsigned char all[512];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(i < 256 ? i : 511 - i);
    char framing[400];
    snprintf(framing, sizeof framing,
             "\r\n--%s\r\nContent-Type: text/evil\r\n\r\nforged\r\n--%s--\r\n--%s", earlier,
             earlier, earlier);
    static const char crlf[] = "\r\n\r\n\r\n";
    static const char dashes[] = "--\r\n--\r\n----";
    static const char hopperish[] = "--hopper-00000000000000000000000000000000--\r\n";
    const struct {
        const void *data;
        size_t len;
    } bodies[] = {
        {all, sizeof all},
        {crlf, strlen(crlf)},
        {dashes, strlen(dashes)},
        {framing, strlen(framing)},
        {"", 0},
        {hopperish, strlen(hopperish)},
        {"\0\0\r\n\0", 5},
    };
    size_t n = sizeof bodies / sizeof bodies[0];
    for (size_t i = 0; i < n; i++)
        bu_post_one(&s, "bin", bodies[i].data, bodies[i].len, "application/x-bin", NULL);
    bu_get_batch(&s, "/channels/bin?wait=0&max=100", &b);
    assert_int_equal(b.count, n);
    assert_string_not_equal(b.boundary, earlier);
    for (size_t i = 0; i < n; i++) {
        bu_expect_part_body(&b.parts[i], bodies[i].data, bodies[i].len);
        bu_expect_part_header(&b.parts[i], "Content-Type", "application/x-bin");
        assert_null(memmem(bodies[i].data, bodies[i].len, b.boundary, strlen(b.boundary)));
    }
    bu_batch_free(&b);
    bu_expect_empty(&s, "bin");
    hs_stop_ok(&s);
}

/* Messages paged to a queue file and messages in memory come in one batch,
 * in the order they were sent, headers and all. */
static void test_get_batch_mixes_disk_and_memory(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "4KiB", "--keep-headers", "X-Seq", NULL};
    hs_start_ok(&s, args);
    enum { COUNT = 16, BODY = 600 };
    char body[BODY], label[16];
    for (int i = 0; i < COUNT; i++) {
        snprintf(label, sizeof label, "%02d|", i);
        bu_fill(body, BODY, (char)('a' + i), label);
        char seq[32];
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        const char *headers[] = {seq, NULL};
        bu_post_one(&s, "paged", body, BODY, "application/x-paged", headers);
    }
    assert_true(hs_status_value(&s, "paged", "memory_bytes") > 0);
    assert_true(hs_status_value(&s, "paged", "disk_files") > 0);
    assert_int_equal(hs_status_value(&s, "paged", "messages"), COUNT);

    bu_batch b;
    bu_get_batch(&s, "/channels/paged?wait=0&max=100", &b);
    assert_int_equal(b.count, COUNT);
    for (int i = 0; i < COUNT; i++) {
        snprintf(label, sizeof label, "%02d|", i);
        bu_fill(body, BODY, (char)('a' + i), label);
        char seq[16];
        snprintf(seq, sizeof seq, "%d", i);
        bu_expect_part_body(&b.parts[i], body, BODY);
        bu_expect_part_header(&b.parts[i], "Content-Type", "application/x-paged");
        bu_expect_part_header(&b.parts[i], "X-Seq", seq);
        bu_expect_part_header(&b.parts[i], "Hopper-Delivery-Count", "1");
    }
    bu_batch_free(&b);
    bu_expect_empty(&s, "paged");
    hs_stop_ok(&s);
}

/* With ?lease=, every part has its own receipt; the messages are invisible
 * while leased, and acknowledging each receipt consumes its message. */
static void test_get_batch_with_lease(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq", NULL};
    hs_start_ok(&s, args);
    enum { COUNT = 3 };
    for (int i = 0; i < COUNT; i++) {
        char body[16], seq[32];
        snprintf(body, sizeof body, "leased %d", i);
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        const char *headers[] = {seq, NULL};
        bu_post_one(&s, "ls", body, strlen(body), "text/plain", headers);
    }
    bu_batch b;
    bu_get_batch(&s, "/channels/ls?wait=0&max=10&lease=60", &b);
    assert_int_equal(b.count, COUNT);
    char receipts[COUNT][128];
    for (int i = 0; i < COUNT; i++) {
        char body[16], seq[16];
        snprintf(body, sizeof body, "leased %d", i);
        snprintf(seq, sizeof seq, "%d", i);
        bu_expect_text_part(&b.parts[i], "text/plain", body);
        bu_expect_part_header(&b.parts[i], "X-Seq", seq);
        multipart_header h = {0}; /* set when found; -O2 cannot tell */
        assert_int_equal(bu_part_headers_named(&b.parts[i], "Hopper-Receipt", &h), 1);
        assert_true(h.value_len > 0 && h.value_len < sizeof receipts[i]);
        memcpy(receipts[i], h.value, h.value_len);
        receipts[i][h.value_len] = '\0';
        for (int j = 0; j < i; j++)
            assert_string_not_equal(receipts[i], receipts[j]);
    }
    bu_batch_free(&b);
    assert_int_equal(hs_status_value(&s, "ls", "leased"), COUNT);
    hs_expect_nothing(&s, "ls", "0", NULL); /* invisible while leased */

    for (int i = 0; i < COUNT; i++)
        hs_expect_ack(&s, "ls", receipts[i], 204, NULL);
    assert_int_equal(hs_status_value(&s, "ls", "leased"), 0);
    bu_expect_empty(&s, "ls");
    /* acknowledged once: a second time is no success */
    hs_reply r;
    long status = hs_on_receipt(&s, "DELETE", "ls", receipts[0], NULL, &r);
    hs_reply_free(&r);
    assert_true(status == 404 || status == 410);
    hs_stop_ok(&s);
}

/* A batch response that does not reach its client (reset after the status
 * line of a body larger than any socket buffer) consumes nothing: all its
 * messages go back to the head of the channel, in order, intact, ahead of
 * the one that was behind them, counted as handed out once. */
static void test_batch_cut_short_gives_all_back(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "8MiB", NULL};
    hs_start_ok(&s, args);
    enum { BIG = 3 };
    size_t len = 4u << 20;
    unsigned char *big[BIG];
    for (int k = 0; k < BIG; k++) {
        big[k] = malloc(len);
        assert_non_null(big[k]);
        for (size_t i = 0; i < len; i++)
            big[k][i] = (unsigned char)(i * (unsigned)(7 + 2 * k) + i / 4096 + (unsigned)k);
        bu_post_one(&s, "cut", big[k], len, "application/x-big", NULL);
    }
    hs_expect_post(&s, "cut", "after", 202);

    /* 12 MiB cannot all be in the kernel's buffers when the reset comes */
    int status = -1;
    int fd = hs_get_stalled(&s, "/channels/cut?wait=0&max=3", &status);
    assert_true(fd >= 0);
    assert_int_equal(status, 200);
    /* the three are taken, not consumed: only "after" is in the channel */
    assert_int_equal(hs_status_value(&s, "cut", "messages"), 1);
    hs_reset(fd);

    assert_int_equal(hs_await_status_value(&s, "cut", "requeued_total", BIG, HS_PATIENCE_MS), BIG);
    assert_int_equal(hs_status_value(&s, "cut", "messages"), BIG + 1);
    bu_batch b;
    bu_get_batch(&s, "/channels/cut?wait=0&max=10", &b);
    assert_int_equal(b.count, BIG + 1);
    for (int k = 0; k < BIG; k++) {
        bu_expect_part_body(&b.parts[k], big[k], len);
        bu_expect_part_header(&b.parts[k], "Content-Type", "application/x-big");
        bu_expect_part_header(&b.parts[k], "Hopper-Delivery-Count", "2");
        free(big[k]);
    }
    bu_expect_text_part(&b.parts[BIG], "text/plain", "after");
    bu_batch_free(&b);
    bu_expect_empty(&s, "cut");
    hs_stop_ok(&s);
}

/* A batch POST wakes a waiting batch GET; every part is in the channel
 * before any is handed out, so the GET gets them all. */
static void test_batch_post_wakes_batch_get(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_pending_get g;
    hs_get_begin_ok(&g, &s, "/channels/wake?wait=25&max=10");
    hs_get_await_waiting(&g, "wake", 1);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 5);
    long status = bu_post_batch(&s, "wake", &body);
    bu_bytes_free(&body);
    hs_get_end_ok(&g, 200);
    assert_int_equal(status, 202);
    bu_batch b;
    bu_parse_batch(&g.reply, &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 5);
    for (size_t i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %zu", i);
        bu_expect_text_part(&b.parts[i], "application/octet-stream", text);
    }
    bu_batch_free(&b);
    bu_expect_empty(&s, "wake");
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_batch_in_order_with_headers),
        cmocka_unit_test(test_get_batch_takes_at_most_max),
        cmocka_unit_test(test_get_batch_waits_only_for_the_first),
        cmocka_unit_test(test_bad_max),
        cmocka_unit_test(test_get_batch_binary_bodies),
        cmocka_unit_test(test_get_batch_mixes_disk_and_memory),
        cmocka_unit_test(test_get_batch_with_lease),
        cmocka_unit_test(test_batch_cut_short_gives_all_back),
        cmocka_unit_test(test_batch_post_wakes_batch_get),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
