/* test_batch_post.c - POST of multipart/mixed against the real binary: one
 * message a part, all or nothing; each part's Content-Type and kept
 * headers (not the outer request's); binary parts; 1000 parts (and 1000 of
 * the largest size), 1001 refused; chunked bodies; the limits of a part's
 * headers and size; malformed bodies and boundaries; a batch memory and
 * the queue files cannot take whole is 507 with its body handed back;
 * --durable across a kill -9; parts kept together while other clients
 * POST. (Batch GETs: test_batch_get.c; what both share: batch_util.c.) */
#include "batch_util.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* Each part becomes a message with its own Content-Type (the default when
 * it has none) and the part headers --keep-headers names; the outer
 * request's kept headers go to none of them, and its own message id. Empty
 * parts are messages too. Order holds. */
static void test_post_batch_types_and_kept_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq,X-Sig-*", NULL};
    hs_start_ok(&s, args);
    bu_bytes body = {0};
    bu_put_text(&body, "a preamble, skipped\r\n");
    bu_put_text_part(&body,
                     "Content-Type: application/json\r\nX-Seq: 0\r\n"
                     "X-Sig-A:  \tsha256=abc, v1=\"q\" \r\nX-Other: dropped\r\n",
                     "{\"n\":0}");
    bu_put_text_part(&body, "x-seq: 1\r\n", "no type");
    bu_put_text_part(&body, NULL, "no headers at all");
    bu_put_text_part(&body, "content-type: text/plain; charset=utf-8\r\nX-Seq: 3\r\nX-Seq: 3b\r\n",
                     "");
    bu_put_text_part(&body, "Content-Type:\r\nX-Seq: 4\r\n", "empty type");
    bu_put_close(&body);
    bu_put_text(&body, "an epilogue, skipped too");
    const char *outer[] = {"X-Seq: outer", "X-Sig-B: outer", NULL};
    bu_expect_post_body(&s, "pt", &body, BATCH_TYPE, outer, 202, NULL);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "pt", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "pt", "sent_total"), 5);

    hs_reply r;
    char ids[5][HS_MESSAGE_ID_LEN + 1];
    bu_get_plain(&s, "pt", "{\"n\":0}", 7, "application/json", &r);
    bu_expect_reply_header(&r, "X-Seq", "0");
    bu_expect_reply_header(&r, "X-Sig-A", "sha256=abc, v1=\"q\"");
    assert_int_equal(hs_header_count(&r, "X-Other"), 0);
    assert_int_equal(hs_header_count(&r, "X-Sig-B"), 0);
    hs_expect_message_id(&r, ids[0]);
    hs_reply_free(&r);
    bu_get_plain(&s, "pt", "no type", 7, "application/octet-stream", &r);
    bu_expect_reply_header(&r, "x-seq", "1");
    hs_expect_message_id(&r, ids[1]);
    hs_reply_free(&r);
    bu_get_plain(&s, "pt", "no headers at all", 17, "application/octet-stream", &r);
    assert_int_equal(hs_header_count(&r, "X-Seq"), 0);
    hs_expect_message_id(&r, ids[2]);
    hs_reply_free(&r);
    bu_get_plain(&s, "pt", "", 0, "text/plain; charset=utf-8", &r);
    assert_int_equal(hs_header_count(&r, "X-Seq"), 2);
    assert_non_null(strstr(r.headers, "X-Seq: 3\r\nX-Seq: 3b\r\n"));
    hs_expect_message_id(&r, ids[3]);
    hs_reply_free(&r);
    bu_get_plain(&s, "pt", "empty type", 10, "application/octet-stream", &r);
    bu_expect_reply_header(&r, "X-Seq", "4");
    hs_expect_message_id(&r, ids[4]);
    hs_reply_free(&r);
    for (int i = 0; i < 5; i++) /* each part a message of its own */
        for (int j = 0; j < i; j++)
            assert_string_not_equal(ids[i], ids[j]);
    bu_expect_empty(&s, "pt");
    hs_stop_ok(&s);
}

/* Parts of any bytes, CRLFs and "--" runs among them, and text that looks
 * like the boundary but is not a delimiter, are stored byte-identical. */
static void test_post_batch_binary_parts(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    unsigned char all[256];
    for (size_t i = 0; i < sizeof all; i++)
        all[i] = (unsigned char)(255 - i);
    static const char near[] = "\r\n--" BOUNDARY "X\r\n--" BOUNDARY "-\r\n" BOUNDARY "--\r\n--";
    static const char lf[] = "\n--" BOUNDARY "\n\n--" BOUNDARY "--\n";
    static const char crlfs[] = "\r\n\r\n";
    const struct {
        const void *data;
        size_t len;
    } parts[] = {
        {all, sizeof all}, {near, strlen(near)},   {lf, strlen(lf)},
        {"--", 2},         {crlfs, strlen(crlfs)}, {"\0\r\n\0", 4},
    };
    size_t n = sizeof parts / sizeof parts[0];
    bu_bytes body = {0};
    for (size_t i = 0; i < n; i++)
        bu_put_part(&body, "Content-Type: application/x-bin\r\n", parts[i].data, parts[i].len);
    bu_put_close(&body);
    assert_int_equal(bu_post_batch(&s, "pb", &body), 202);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "pb", "messages"), (long long)n);
    for (size_t i = 0; i < n; i++) {
        hs_reply r;
        bu_get_plain(&s, "pb", parts[i].data, parts[i].len, "application/x-bin", &r);
        hs_reply_free(&r);
    }
    bu_expect_empty(&s, "pb");
    hs_stop_ok(&s);
}

/* 1000 parts are accepted, and come back in one GET of max=1000; 1001 are
 * 400 bad_batch and store nothing. */
static void test_post_batch_of_1000(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 1001);
    bu_expect_post_body(&s, "k", &body, BATCH_TYPE, NULL, 400, "bad_batch");
    bu_bytes_free(&body);
    assert_true(hs_status_value(&s, "k", "messages") <= 0);

    bu_numbered_batch(&body, 1000);
    assert_int_equal(bu_post_batch(&s, "k", &body), 202);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "k", "messages"), 1000);
    hs_expect_post(&s, "k", "after", 202);

    bu_batch b;
    bu_get_batch(&s, "/channels/k?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    for (size_t i = 0; i < 1000; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %zu", i);
        bu_expect_text_part(&b.parts[i], "application/octet-stream", text);
    }
    bu_batch_free(&b);
    hs_reply r;
    bu_get_plain(&s, "k", "after", 5, "text/plain", &r);
    hs_reply_free(&r);
    bu_expect_empty(&s, "k");
    hs_stop_ok(&s);
}

/* Without a Content-Length (chunked), the body is read as it comes: 1000
 * parts still make 1000 messages. */
static void test_post_batch_chunked(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    bu_bytes body = {0};
    bu_numbered_batch(&body, 1000);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    bu_expect_post_body(&s, "ch", &body, BATCH_TYPE, chunked, 202, NULL);
    bu_bytes_free(&body);
    bu_batch b;
    bu_get_batch(&s, "/channels/ch?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    bu_expect_text_part(&b.parts[0], "application/octet-stream", "part 0");
    bu_expect_text_part(&b.parts[999], "application/octet-stream", "part 999");
    bu_batch_free(&b);
    bu_expect_empty(&s, "ch");
    hs_stop_ok(&s);
}

/* 1000 parts, each of the largest size a message may have, are a batch the
 * server must take: every part fits --max-message-bytes, and there are not
 * more than 1000. (The framing and each part's Content-Type line make the
 * body larger than 1000 x --max-message-bytes.) */
static void test_post_batch_of_1000_largest_parts(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "1KiB", NULL};
    hs_start_ok(&s, args);
    static unsigned char largest[1024];
    bu_bytes body = {0};
    for (int i = 0; i < 1000; i++) {
        memset(largest, 'a' + i % 26, sizeof largest);
        bu_put_part(&body, "Content-Type: application/x-full\r\n", largest, sizeof largest);
    }
    bu_put_close(&body);
    long status = bu_post_batch(&s, "full", &body);
    bu_bytes_free(&body); /* before the check: a failure must not leak it */
    assert_int_equal(status, 202);
    assert_int_equal(hs_status_value(&s, "full", "messages"), 1000);
    bu_batch b;
    bu_get_batch(&s, "/channels/full?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    for (int i = 0; i < 1000; i++) {
        memset(largest, 'a' + i % 26, sizeof largest);
        bu_expect_part_body(&b.parts[i], largest, sizeof largest);
    }
    bu_batch_free(&b);
    hs_stop_ok(&s);
}

/* The outer request's headers are stored with no part, so the limit of
 * stored headers does not apply to them: a batch POST that carries more
 * headers --keep-headers names than a message can store is taken, and its
 * parts have none of them. */
static void test_outer_kept_headers_do_not_count(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-H-*", NULL};
    hs_start_ok(&s, args);
    char lines[64][32];
    const char *outer[65];
    for (int i = 0; i < 64; i++) {
        snprintf(lines[i], sizeof lines[i], "X-H-%d: outer-%d", i, i);
        outer[i] = lines[i];
    }
    outer[64] = NULL;
    bu_bytes body = {0};
    bu_put_text_part(&body, "X-H-0: part\r\n", "one");
    bu_put_close(&body);
    hs_reply r;
    bu_post_body(&s, "outer", &body, BATCH_TYPE, outer, &r);
    bu_bytes_free(&body);
    long status = r.status;
    if (status != 202)
        fprintf(stderr, "%.*s\n", (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    assert_int_equal(status, 202);
    bu_get_plain(&s, "outer", "one", 3, "application/octet-stream", &r);
    bu_expect_reply_header(&r, "X-H-0", "part");
    assert_int_equal(hs_header_count(&r, "X-H-1"), 0);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* A part with a Content-Type beyond 1024 bytes (400 bad_content_type) or
 * more headers to keep than a message stores (400 too_many_headers) makes
 * the whole batch refused, nothing stored. */
static void test_post_batch_part_header_limits(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-H-*", NULL};
    hs_start_ok(&s, args);
    bu_bytes body = {0}, headers = {0};
    bu_put_text(&headers, "Content-Type: text/");
    for (int i = 0; i < 1020; i++)
        bu_put_text(&headers, "x");
    bu_put_text(&headers, "\r\n"); /* 1025 bytes of value */
    bu_put_text_part(&body, NULL, "fine");
    bu_put_text_part(&body, (const char *)headers.data, "long type");
    bu_put_close(&body);
    bu_expect_post_body(&s, "hl", &body, BATCH_TYPE, NULL, 400, "bad_content_type");
    bu_bytes_free(&body);
    bu_bytes_free(&headers);

    /* 63 kept and Content-Type: the most a message stores */
    for (int i = 0; i < 63; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-H-%d: %d\r\n", i, i);
        bu_put_text(&headers, line);
    }
    bu_put_text_part(&body, (const char *)headers.data, "63 kept");
    bu_put_close(&body);
    assert_int_equal(bu_post_batch(&s, "hl", &body), 202);
    bu_bytes_free(&body);
    bu_put_text(&headers, "X-H-63: 63\r\n");
    bu_put_text_part(&body, NULL, "fine");
    bu_put_text_part(&body, (const char *)headers.data, "64 kept");
    bu_put_close(&body);
    bu_expect_post_body(&s, "hl", &body, BATCH_TYPE, NULL, 400, "too_many_headers");
    bu_bytes_free(&body);
    bu_bytes_free(&headers);
    assert_int_equal(hs_status_value(&s, "hl", "messages"), 1);
    hs_reply r;
    bu_get_plain(&s, "hl", "63 kept", 7, "application/octet-stream", &r);
    bu_expect_reply_header(&r, "X-H-62", "62");
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* A malformed batch, or a Content-Type of multipart/mixed without a good
 * boundary, is 400 bad_batch and stores nothing, not even its good parts. */
static void test_post_malformed_batches(void **state)
{
    (void)state;
    hs_server s;
    hs_start_ok(&s, NULL);
    hs_expect_post(&s, "mal", "before", 202);
    static const char good_part[] = "--" BOUNDARY "\r\nContent-Type: text/plain\r\n\r\nfine\r\n";
    static const char close[] = "--" BOUNDARY "--\r\n";
    static const struct {
        const char *what;
        const char *body;
    } bodies[] = {
        {"no close delimiter", "--" BOUNDARY "\r\n\r\nbody\r\n"},
        {"no close delimiter, good part first",
         "--" BOUNDARY "\r\n\r\nfine\r\n--" BOUNDARY "\r\n\r\ncut off"},
        {"cut in the close delimiter", "--" BOUNDARY "\r\n\r\nbody\r\n--" BOUNDARY "-"},
        {"a header line without a colon", "--" BOUNDARY "\r\n\r\nfine\r\n--" BOUNDARY
                                          "\r\nX-Seq 1\r\n\r\nbody\r\n--" BOUNDARY "--\r\n"},
        {"a header name that is not a token",
         "--" BOUNDARY "\r\nX Seq: 1\r\n\r\nbody\r\n--" BOUNDARY "--\r\n"},
        {"a folded header line",
         "--" BOUNDARY "\r\nX-Seq: 1\r\n more\r\n\r\nbody\r\n--" BOUNDARY "--\r\n"},
        {"a header line ending in a bare LF",
         "--" BOUNDARY "\r\nX-Seq: 1\n\r\nbody\r\n--" BOUNDARY "--\r\n"},
        {"no opening delimiter", "just a body\r\n--" BOUNDARY "--\r\n"},
        {"closed before any part", "--" BOUNDARY "--\r\n"},
        {"an empty body", ""},
        {"LF line ends only", "--" BOUNDARY "\n\nbody\n--" BOUNDARY "--\n"},
    };
    long long sent = hs_status_value(&s, "mal", "sent_total");
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        bu_bytes body = {0};
        bu_put_text(&body, bodies[i].body);
        hs_reply r;
        bu_post_body(&s, "mal", &body, BATCH_TYPE, NULL, &r);
        if (!hs_is_error(&r, 400, "bad_batch"))
            fail_msg("%s: not refused with bad_batch", bodies[i].what);
        hs_reply_free(&r);
        bu_bytes_free(&body);
    }
    static const char long_boundary[] =
        "multipart/mixed; boundary=" BOUNDARY "-123456789012345678901234567890123456789012345678"
        "9012345678";
    static const char *const types[] = {
        "multipart/mixed",
        "multipart/mixed; boundary=",
        "multipart/mixed; boundary=\"\"",
        long_boundary, /* 71 characters */
        "multipart/mixed; boundary=\"" BOUNDARY "@\"",
        "multipart/mixed; boundary=\"" BOUNDARY " \"",
        "multipart/mixed; boundary=" BOUNDARY "; boundary=" BOUNDARY,
        "multipart/mixed; charset=utf-8",
        "Multipart/Mixed; Boundary",
    };
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        bu_bytes body = {0};
        bu_put_text(&body, good_part);
        bu_put_text(&body, close);
        hs_reply r;
        bu_post_body(&s, "mal", &body, types[i], NULL, &r);
        if (!hs_is_error(&r, 400, "bad_batch"))
            fail_msg("Content-Type '%s': not refused with bad_batch", types[i]);
        hs_reply_free(&r);
        bu_bytes_free(&body);
    }
    assert_int_equal(hs_status_value(&s, "mal", "messages"), 1);
    assert_int_equal(hs_status_value(&s, "mal", "sent_total"), sent);

    /* the same good part with a good type is stored: the refusals were the
     * malformations */
    bu_bytes body = {0};
    bu_put_text(&body, good_part);
    bu_put_text(&body, close);
    assert_int_equal(bu_post_batch(&s, "mal", &body), 202);
    bu_expect_post_body(&s, "mal", &body, "multipart/mixed; boundary=\"" BOUNDARY "\"", NULL, 202,
                        NULL);
    bu_bytes_free(&body);
    hs_reply r;
    bu_get_plain(&s, "mal", "before", 6, "text/plain", &r);
    hs_reply_free(&r);
    for (int i = 0; i < 2; i++) {
        bu_get_plain(&s, "mal", "fine", 4, "text/plain", &r);
        hs_reply_free(&r);
    }
    bu_expect_empty(&s, "mal");
    hs_stop_ok(&s);
}

/* A part whose body and kept headers pass --max-message-bytes makes the
 * whole batch 413 too_big, nothing stored; headers not kept cost nothing;
 * the outer request's kept headers count for no part. */
static void test_post_batch_part_too_big(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "1KiB", "--keep-headers", "X-Pad", NULL};
    hs_start_ok(&s, args);
    static char big[1100];
    memset(big, 'b', sizeof big);
    char pad19[64], pad20[64], other[1200];
    snprintf(pad19, sizeof pad19, "X-Pad: %019d\r\n", 19); /* 5 + 19 */
    snprintf(pad20, sizeof pad20, "X-Pad: %020d\r\n", 20);
    snprintf(other, sizeof other, "X-Other: %01000d\r\n", 0);

    /* 1000 + 24 = 1024: fits exactly */
    bu_bytes body = {0};
    bu_put_text_part(&body, NULL, "small");
    bu_put_part(&body, pad19, big, 1000);
    bu_put_close(&body);
    assert_int_equal(bu_post_batch(&s, "tb", &body), 202);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "tb", "messages"), 2);

    struct {
        const char *headers;
        size_t len;
    } too_big[] = {{pad20, 1000}, {NULL, 1025}, {other, 1025}};
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        bu_put_text_part(&body, NULL, "small");
        bu_put_part(&body, too_big[i].headers, big, too_big[i].len);
        bu_put_text_part(&body, NULL, "small too");
        bu_put_close(&body);
        hs_reply r;
        bu_post_body(&s, "tb", &body, BATCH_TYPE, NULL, &r);
        if (!hs_is_error(&r, 413, "too_big"))
            fail_msg("case %zu: not refused with too_big", i);
        hs_reply_free(&r);
        bu_bytes_free(&body);
    }
    assert_int_equal(hs_status_value(&s, "tb", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "tb", "rejected_too_big_total"), 3);

    /* a header not kept is free, and so is the outer request's kept one */
    bu_put_part(&body, other, big, 1024);
    bu_put_close(&body);
    char outer_pad[1100];
    snprintf(outer_pad, sizeof outer_pad, "X-Pad: %01000d", 7);
    const char *outer[] = {outer_pad, NULL};
    bu_expect_post_body(&s, "tb", &body, BATCH_TYPE, outer, 202, NULL);
    bu_bytes_free(&body);

    hs_reply r;
    bu_get_plain(&s, "tb", "small", 5, "application/octet-stream", &r);
    hs_reply_free(&r);
    bu_get_plain(&s, "tb", big, 1000, "application/octet-stream", &r);
    bu_expect_reply_header(&r, "X-Pad", "0000000000000000019");
    hs_reply_free(&r);
    bu_get_plain(&s, "tb", big, 1024, "application/octet-stream", &r);
    assert_int_equal(hs_header_count(&r, "X-Pad"), 0);
    assert_int_equal(hs_header_count(&r, "X-Other"), 0);
    hs_reply_free(&r);
    bu_expect_empty(&s, "tb");
    hs_stop_ok(&s);
}

/* Parts of sized_batch(): PART_BYTES each, part i of tag is "<tag><i>:"
 * and then tag to the end. */
#define PART_BYTES 900

static void sized_part(char part[PART_BYTES], char tag, int i)
{
    char label[32];
    snprintf(label, sizeof label, "%c%d:", tag, i);
    bu_fill(part, PART_BYTES, tag, label);
}

/* A batch of n sized parts of tag. OUT: *body. */
static void sized_batch(bu_bytes *body, char tag, int n)
{
    char part[PART_BYTES];
    for (int i = 0; i < n; i++) {
        sized_part(part, tag, i);
        bu_put_part(body, "Content-Type: application/x-sized\r\n", part, sizeof part);
    }
    bu_put_close(body);
}

/* parts[0..n) are those of sized_batch(tag, n). */
static void expect_sized(const multipart_part *parts, char tag, int n)
{
    char part[PART_BYTES];
    for (int i = 0; i < n; i++) {
        sized_part(part, tag, i);
        bu_expect_part_body(&parts[i], part, sizeof part);
        bu_expect_part_header(&parts[i], "Content-Type", "application/x-sized");
    }
}

/* POST body as a batch of type; it must be refused with 507 handing back
 * the whole body, byte-identical, with type. */
static void expect_507(const hs_server *s, const char *channel, const bu_bytes *body,
                       const char *type)
{
    hs_reply r;
    bu_post_body(s, channel, body, type, NULL, &r);
    if (r.status != 507)
        fail_msg("expected 507, got %ld: %.*s", r.status, (int)r.len, (const char *)r.body);
    assert_int_equal(r.len, body->len);
    assert_memory_equal(r.body, body->data, body->len);
    assert_string_equal(r.content_type, type);
    bu_expect_reply_header(&r, "Retry-After", "1");
    hs_reply_free(&r);
}

/* All or nothing: a batch that memory and the one queue file cannot take
 * whole is 507 with its body handed back and nothing of it stored; smaller
 * ones that fit are stored whole, in memory or on disk. */
static void test_batch_all_or_nothing(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {
        "--memory-bytes", "4KiB", "--file-bytes", "4KiB", "--max-disk-files", "1", NULL};
    hs_start_ok(&s, args);
    bu_bytes body = {0};
    sized_batch(&body, 'a', 3); /* ~2.8 KiB: memory takes it */
    assert_int_equal(bu_post_batch(&s, "all", &body), 202);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 3);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 0);

    /* 8 parts need two queue files; one is allowed */
    bu_put_text(&body, "preamble\r\n");
    sized_batch(&body, 'x', 8);
    bu_put_text(&body, "epilogue");
    const char *quoted = "multipart/mixed; boundary=\"" BOUNDARY "\"";
    expect_507(&s, "all", &body, quoted);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 3);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 0);
    assert_int_equal(hs_status_value(&s, "all", "sent_total"), 3);

    sized_batch(&body, 'c', 2); /* ~1.8 KiB: the queue file takes it */
    assert_int_equal(bu_post_batch(&s, "all", &body), 202);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 1);

    sized_batch(&body, 'y', 8); /* would need a second file */
    expect_507(&s, "all", &body, BATCH_TYPE);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "all", "sent_total"), 5);

    bu_batch b;
    bu_get_batch(&s, "/channels/all?wait=0&max=100", &b);
    assert_int_equal(b.count, 5);
    expect_sized(b.parts, 'a', 3);
    expect_sized(b.parts + 3, 'c', 2);
    bu_batch_free(&b);
    bu_expect_empty(&s, "all");
    hs_stop_ok(&s);
}

/* --durable: a batch is answered 202 once synced; a kill -9 right after
 * loses none of it. A batch that does not fit is 507 and leaves nothing,
 * not even after the restart. */
static void test_durable_batch_survives_kill(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(hs_make_dir(dir, sizeof dir), 0);
    hs_server s;
    const char *args[] = {"--durable", "--keep-headers",   "X-Seq", "--file-bytes",
                          "4KiB",      "--max-disk-files", "1",     NULL};
    hs_start_in_ok(&s, dir, args);
    hs_expect_post(&s, "dur", "single", 202);
    long long syncs = hs_status_value(&s, "dur", "syncs_total");
    assert_true(syncs > 0);

    bu_bytes body = {0};
    sized_batch(&body, 'x', 8); /* needs two queue files */
    expect_507(&s, "dur", &body, BATCH_TYPE);
    bu_bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "dur", "messages"), 1);

    enum { COUNT = 5 };
    for (int i = 0; i < COUNT; i++) {
        char headers[64], text[32];
        snprintf(headers, sizeof headers, "Content-Type: text/x-d%d\r\nX-Seq: %d\r\n", i, i);
        snprintf(text, sizeof text, "durable %d", i);
        bu_put_text_part(&body, headers, text);
    }
    bu_put_close(&body);
    assert_int_equal(bu_post_batch(&s, "dur", &body), 202);
    bu_bytes_free(&body);
    assert_true(hs_status_value(&s, "dur", "syncs_total") > syncs);
    hs_stop_with(&s, SIGKILL);

    hs_start_in_ok(&s, dir, args);
    assert_int_equal(hs_status_value(&s, "dur", "messages"), COUNT + 1);
    bu_batch b;
    bu_get_batch(&s, "/channels/dur?wait=0&max=100", &b);
    assert_int_equal(b.count, COUNT + 1);
    bu_expect_part_body(&b.parts[0], "single", 6);
    for (int i = 0; i < COUNT; i++) {
        char type[32], seq[16], text[32];
        snprintf(type, sizeof type, "text/x-d%d", i);
        snprintf(seq, sizeof seq, "%d", i);
        snprintf(text, sizeof text, "durable %d", i);
        bu_expect_part_body(&b.parts[i + 1], text, strlen(text));
        bu_expect_part_header(&b.parts[i + 1], "Content-Type", type);
        bu_expect_part_header(&b.parts[i + 1], "X-Seq", seq);
    }
    bu_batch_free(&b);
    bu_expect_empty(&s, "dur");
    hs_stop_ok(&s);
    hs_remove_tree(dir);
}

/* Batches posted while other clients post single messages keep their
 * parts together and in order: no single lands between two parts. The
 * singles come fast, over kept-alive connections from several threads, so
 * that a batch stored a part at a time would be cut into. */
#define POSTERS 3
#define SINGLES_MAX 20000 /* each poster's at most */
/* Batches are posted until the posters have sent SINGLES_DURING singles
 * meanwhile (at least MIN_BATCHES, at most MAX_BATCHES). */
#define MIN_BATCHES 10
#define MAX_BATCHES 100
#define SINGLES_DURING 500
#define BATCH_PARTS 200

typedef struct poster {
    const hs_server *s;
    int id;
    atomic_bool *done;
    atomic_int posted;
    atomic_bool failed;
} poster;

/* POST "s<id>-<n>" over one connection until done. */
static void *post_singles(void *arg)
{
    poster *p = arg;
    int fd = hs_connect(p->s);
    if (fd < 0) {
        atomic_store(&p->failed, true);
        return NULL;
    }
    for (int i = 0; i < SINGLES_MAX && !atomic_load(p->done); i++) {
        char body[16], req[256], reply[1024];
        int len = snprintf(body, sizeof body, "s%d-%05d", p->id, i);
        int n = snprintf(req, sizeof req,
                         "POST /channels/mix HTTP/1.1\r\nHost: t\r\nContent-Type: text/plain\r\n"
                         "Content-Length: %d\r\n\r\n%s",
                         len, body);
        const char *at;
        if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n ||
            hs_read_response(fd, reply, sizeof reply, HS_PATIENCE_MS, &at) != 202) {
            atomic_store(&p->failed, true);
            break;
        }
        atomic_fetch_add(&p->posted, 1);
    }
    close(fd);
    return NULL;
}

/* What the order of a channel's messages must be: each poster's singles in
 * order, each batch's parts one after another. */
typedef struct order {
    int next_single[POSTERS];
    int batch;       /* the batch being read, -1 between batches */
    int part;        /* its next part */
    int next_batch;  /* the next batch to begin */
    int cut_between; /* gaps between batches that singles filled */
    bool single_since_batch;
} order;

/* One message of the channel, in the order read: fails unless it can come
 * now. */
static void check_next(order *o, const multipart_part *p)
{
    char text[32];
    int len = (int)(p->body_len < sizeof text - 1 ? p->body_len : sizeof text - 1);
    memcpy(text, p->body, (size_t)len);
    text[len] = '\0';
    int a, c;
    if (o->batch >= 0) {
        if (sscanf(text, "b-%d-%d", &a, &c) != 2 || a != o->batch || c != o->part)
            fail_msg("'%s' came where part %d of batch %d was due", text, o->part, o->batch);
        if (++o->part == BATCH_PARTS)
            o->batch = -1;
    } else if (sscanf(text, "s%d-%d", &a, &c) == 2 && a >= 0 && a < POSTERS) {
        if (c != o->next_single[a])
            fail_msg("'%s' came where single %d of poster %d was due", text, o->next_single[a], a);
        o->next_single[a]++;
        o->single_since_batch = true;
    } else if (sscanf(text, "b-%d-%d", &a, &c) == 2 && a == o->next_batch && c == 0) {
        o->cut_between += o->single_since_batch && a > 0;
        o->single_since_batch = false;
        o->batch = a;
        o->part = 1;
        o->next_batch++;
    } else {
        fail_msg("'%s' came where batch %d was due to begin, or a single", text, o->next_batch);
    }
}

static void parts_stay_together(const char *const *args)
{
    hs_server s;
    hs_start_ok(&s, args);
    atomic_bool done;
    atomic_init(&done, false);
    poster posters[POSTERS];
    pthread_t threads[POSTERS];
    for (int i = 0; i < POSTERS; i++) {
        posters[i].s = &s;
        posters[i].id = i;
        posters[i].done = &done;
        atomic_init(&posters[i].posted, 0);
        atomic_init(&posters[i].failed, false);
        assert_int_equal(pthread_create(&threads[i], NULL, post_singles, &posters[i]), 0);
    }
    /* the singles are under way before the first batch */
    double deadline = hs_now() + HS_PATIENCE_MS / 1000.0;
    for (int i = 0; i < POSTERS; i++) {
        while (atomic_load(&posters[i].posted) < 1 && !atomic_load(&posters[i].failed) &&
               hs_now() < deadline)
            usleep(1000);
    }
    long status = 202;
    int batches = 0, singles_before = 0;
    for (int i = 0; i < POSTERS; i++)
        singles_before += atomic_load(&posters[i].posted);
    for (int singles_during = 0; status == 202 && batches < MAX_BATCHES &&
                                 (batches < MIN_BATCHES || singles_during < SINGLES_DURING);
         batches++) {
        int j = batches;
        bu_bytes body = {0};
        for (int k = 0; k < BATCH_PARTS; k++) {
            char text[32];
            snprintf(text, sizeof text, "b-%02d-%03d", j, k);
            bu_put_text_part(&body, "Content-Type: text/plain\r\n", text);
        }
        bu_put_close(&body);
        status = bu_post_batch(&s, "mix", &body);
        bu_bytes_free(&body);
        singles_during = -singles_before;
        for (int i = 0; i < POSTERS; i++)
            singles_during += atomic_load(&posters[i].posted);
    }
    atomic_store(&done, true);
    long long total = (long long)batches * BATCH_PARTS;
    for (int i = 0; i < POSTERS; i++) {
        pthread_join(threads[i], NULL);
        assert_false(atomic_load(&posters[i].failed));
        total += atomic_load(&posters[i].posted);
    }
    assert_int_equal(status, 202);
    assert_int_equal(hs_status_value(&s, "mix", "messages"), total);

    /* read them all back, a batch GET at a time */
    order o = {.batch = -1};
    for (long long seen = 0; seen < total;) {
        bu_batch b;
        bu_get_batch(&s, "/channels/mix?wait=0&max=1000", &b);
        for (size_t i = 0; i < b.count; i++)
            check_next(&o, &b.parts[i]);
        seen += (long long)b.count;
        bu_batch_free(&b);
    }
    assert_int_equal(o.next_batch, batches);
    assert_int_equal(o.batch, -1);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(o.next_single[i], atomic_load(&posters[i].posted));
    print_message("%d batches, %lld singles; %d of the gaps between batches had singles\n", batches,
                  total - (long long)batches * BATCH_PARTS, o.cut_between);
    bu_expect_empty(&s, "mix");
    hs_stop_ok(&s);
}

static void test_batch_parts_stay_together_in_memory(void **state)
{
    (void)state;
    parts_stay_together(NULL);
}

/* In queue files, where a batch takes longer to store. */
static void test_batch_parts_stay_together_on_disk(void **state)
{
    (void)state;
    const char *args[] = {"--memory-bytes", "1KiB", NULL};
    parts_stay_together(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_batch_types_and_kept_headers),
        cmocka_unit_test(test_post_batch_binary_parts),
        cmocka_unit_test(test_post_batch_of_1000),
        cmocka_unit_test(test_post_batch_chunked),
        cmocka_unit_test(test_post_batch_of_1000_largest_parts),
        cmocka_unit_test(test_outer_kept_headers_do_not_count),
        cmocka_unit_test(test_post_batch_part_header_limits),
        cmocka_unit_test(test_post_malformed_batches),
        cmocka_unit_test(test_post_batch_part_too_big),
        cmocka_unit_test(test_batch_all_or_nothing),
        cmocka_unit_test(test_durable_batch_survives_kill),
        cmocka_unit_test(test_batch_parts_stay_together_in_memory),
        cmocka_unit_test(test_batch_parts_stay_together_on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
