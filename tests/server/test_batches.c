/* test_batches.c - batches against the real binary: GET ?max=N hands out
 * the ready messages as one multipart/mixed response (order, Content-Type,
 * kept headers, delivery count and receipts per part, binary bodies, disk
 * and memory mixed, bad max, a client that goes away mid-response), and a
 * multipart/mixed POST stores one message a part, all or nothing (kept
 * headers of the parts, 1000 parts, malformed bodies, parts too big, a 507
 * that hands the whole body back, --durable across a kill -9, parts kept
 * together while other POSTs run).
 *
 * Request bodies are written here by hand, not with the server's builder;
 * responses are read with the server's parser (multipart.c), whose own
 * tests are in test_multipart.c. */
#include "harness.h"
#include "multipart.h"

#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* The boundary of the batches this file POSTs. */
#define BOUNDARY "batch-7f3a91"
#define BATCH_TYPE "multipart/mixed; boundary=" BOUNDARY

static void start(hs_server *s, const char *const *args)
{
    assert_int_equal(hs_start(s, args), 0);
}

static void stop(hs_server *s)
{
    assert_int_equal(hs_stop(s), 0);
}

/* ---- request bodies ---- */

typedef struct bytes {
    unsigned char *data;
    size_t len, cap;
} bytes;

static void put(bytes *b, const void *data, size_t len)
{
    if (b->len + len + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + len + 1)
            cap *= 2;
        b->data = realloc(b->data, cap);
        assert_non_null(b->data);
        b->cap = cap;
    }
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

static void put_text(bytes *b, const char *text)
{
    put(b, text, strlen(text));
}

/* out[0..len) is label (without its NUL), then filler to the end. */
static void fill(char *out, size_t len, char filler, const char *label)
{
    memset(out, filler, len);
    memcpy(out, label, strlen(label) < len ? strlen(label) : len);
}

static void bytes_free(bytes *b)
{
    free(b->data);
    *b = (bytes){0};
}

/* One part: "--BOUNDARY" CRLF, headers (complete lines, each ending in
 * CRLF; NULL for none), CRLF, the body, CRLF. */
static void put_part(bytes *b, const char *headers, const void *body, size_t len)
{
    put_text(b, "--" BOUNDARY "\r\n");
    if (headers)
        put_text(b, headers);
    put_text(b, "\r\n");
    put(b, body, len);
    put_text(b, "\r\n");
}

static void put_text_part(bytes *b, const char *headers, const char *body)
{
    put_part(b, headers, body, strlen(body));
}

static void put_close(bytes *b)
{
    put_text(b, "--" BOUNDARY "--\r\n");
}

/* POST body to channel with Content-Type type and extra request headers
 * (NULL-terminated, may be NULL). OUT: *r. */
static void post_body(const hs_server *s, const char *channel, const bytes *body, const char *type,
                      const char *const *headers, hs_reply *r)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    assert_int_equal(hs_post_headers(s, path, body->data, body->len, type, headers, r), 0);
}

/* POST body as a batch; returns the status. */
static long post_batch(const hs_server *s, const char *channel, const bytes *body)
{
    hs_reply r;
    post_body(s, channel, body, BATCH_TYPE, NULL, &r);
    long status = r.status;
    if (status != 202)
        fprintf(stderr, "batch POST to %s: %ld %.*s\n", channel, status, (int)r.len,
                (const char *)r.body);
    hs_reply_free(&r);
    return status;
}

/* POST one message with a Content-Type (NULL: none) and request headers. */
static void post_one(const hs_server *s, const char *channel, const void *body, size_t len,
                     const char *type, const char *const *headers)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, body, len, type, headers, &r), 0);
    if (r.status != 202)
        fail_msg("POST to %s: %ld %.*s", channel, r.status, (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
}

/* ---- batch responses ---- */

typedef struct batch_reply {
    hs_reply r;
    char boundary[MULTIPART_BOUNDARY_SIZE];
    multipart_part *parts; /* new, MULTIPART_MAX_PARTS of room */
    size_t count;
} batch_reply;

/* Check that r is a 200 multipart/mixed response and parse it into b.
 * b takes r. */
static void parse_batch(hs_reply *r, batch_reply *b)
{
    b->r = *r;
    b->parts = NULL;
    b->count = 0;
    if (r->status != 200)
        fail_msg("expected a 200 batch, got %ld: %.*s", r->status, (int)r->len,
                 (const char *)r->body);
    if (strncasecmp(r->content_type, "multipart/mixed", strlen("multipart/mixed")) != 0 ||
        !multipart_boundary(r->content_type, b->boundary))
        fail_msg("not a multipart/mixed Content-Type: '%s'", r->content_type);
    /* opened by the first delimiter, ended by the close: no preamble, no
     * epilogue */
    char open[MULTIPART_BOUNDARY_SIZE + 8], close[MULTIPART_BOUNDARY_SIZE + 8];
    int open_len = snprintf(open, sizeof open, "--%s\r\n", b->boundary);
    int close_len = snprintf(close, sizeof close, "\r\n--%s--\r\n", b->boundary);
    assert_true(r->len >= (size_t)(open_len + close_len));
    assert_memory_equal(r->body, open, (size_t)open_len);
    assert_memory_equal(r->body + r->len - (size_t)close_len, close, (size_t)close_len);
    b->parts = calloc(MULTIPART_MAX_PARTS, sizeof *b->parts);
    assert_non_null(b->parts);
    multipart_err err = multipart_parse(r->body, r->len, b->boundary, MULTIPART_MAX_HEADERS,
                                        b->parts, MULTIPART_MAX_PARTS, &b->count);
    if (err != MULTIPART_OK)
        fail_msg("the batch does not parse: %s at part %zu", multipart_err_name(err), b->count + 1);
}

/* GET path (a ?max= one): it must be a 200 batch. OUT: *b. */
static void get_batch(const hs_server *s, const char *path, batch_reply *b)
{
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    parse_batch(&r, b);
}

static void batch_free(batch_reply *b)
{
    hs_reply_free(&b->r);
    free(b->parts);
    b->parts = NULL;
}

/* How many headers of p are named name (ASCII case-insensitively).
 * OUT: *first, the first of them, when there is one. */
static size_t part_headers_named(const multipart_part *p, const char *name, multipart_header *first)
{
    size_t n = 0, offset = 0, name_len = strlen(name);
    multipart_header h;
    while (multipart_header_next(p, &offset, &h)) {
        if (h.name_len != name_len || strncasecmp(h.name, name, name_len) != 0)
            continue;
        if (n++ == 0 && first)
            *first = h;
    }
    return n;
}

/* p carries exactly one header name, with exactly value. */
static void expect_part_header(const multipart_part *p, const char *name, const char *value)
{
    multipart_header h;
    size_t n = part_headers_named(p, name, &h);
    if (n != 1)
        fail_msg("%zu '%s' headers in the part:\n%.*s", n, name, (int)p->header_lines_len,
                 p->header_lines);
    if (h.value_len != strlen(value) || memcmp(h.value, value, h.value_len) != 0)
        fail_msg("expected '%s: %s', got '%.*s'", name, value, (int)h.value_len, h.value);
}

static void expect_no_part_header(const multipart_part *p, const char *name)
{
    if (part_headers_named(p, name, NULL) != 0)
        fail_msg("the part has a '%s' header:\n%.*s", name, (int)p->header_lines_len,
                 p->header_lines);
}

static void expect_part_body(const multipart_part *p, const void *body, size_t len)
{
    if (p->body_len != len || memcmp(p->body, body, len) != 0)
        fail_msg("expected a body of %zu bytes, got %zu: '%.*s'", len, p->body_len,
                 (int)(p->body_len < 200 ? p->body_len : 200), (const char *)p->body);
}

/* p is a first hand-out of type with body (text). */
static void expect_text_part(const multipart_part *p, const char *type, const char *body)
{
    expect_part_body(p, body, strlen(body));
    expect_part_header(p, "Content-Type", type);
    expect_part_header(p, "Hopper-Delivery-Count", "1");
}

/* ---- plain responses ---- */

/* How many header lines of r are named name. */
static size_t reply_headers_named(const hs_reply *r, const char *name)
{
    size_t n = 0, name_len = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        if (strncasecmp(line, name, name_len) == 0 && line[name_len] == ':')
            n++;
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return n;
}

/* The next message of channel, taken with a plain GET: it must be a 200
 * with body and Content-Type type. OUT: *r. */
static void get_plain(const hs_server *s, const char *channel, const void *body, size_t len,
                      const char *type, hs_reply *r)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s?wait=0", channel);
    assert_int_equal(hs_get(s, path, r), 0);
    if (r->status != 200 || r->len != len || memcmp(r->body, body, len) != 0)
        fail_msg("expected 200 with %zu bytes, got %ld with %zu: '%.*s'", len, r->status, r->len,
                 (int)(r->len < 200 ? r->len : 200), (const char *)r->body);
    assert_string_equal(r->content_type, type);
    assert_int_equal(reply_headers_named(r, "Content-Type"), 1);
}

/* r carries exactly one header name, with value. */
static void expect_reply_header(const hs_reply *r, const char *name, const char *value)
{
    char got[1200];
    if (reply_headers_named(r, name) != 1 || !hs_header(r, name, got, sizeof got))
        fail_msg("expected one '%s' header:\n%s", name, r->headers);
    assert_string_equal(got, value);
}

static void expect_empty(const hs_server *s, const char *channel)
{
    assert_int_equal(hs_get_text(s, channel, "0", NULL, 0), 204);
    assert_int_equal(hs_status_value(s, channel, "messages"), 0);
}

/* ---- GET ?max=N ---- */

/* Ready messages come as parts in FIFO order, each with its Content-Type
 * (the default where the POST had none), its kept headers only, and a
 * delivery count of 1; no receipt without a lease. */
static void test_get_batch_in_order_with_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq,X-Sig-*", NULL};
    start(&s, args);
    static const char *const types[] = {"text/plain", "application/json", NULL,
                                        "text/csv; charset=utf-8"};
    static const char *const bodies[] = {"first", "{\"n\":2}", "third", "4,four"};
    for (int i = 0; i < 4; i++) {
        char seq[32], sig[64];
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        snprintf(sig, sizeof sig, "X-Sig-A: sha256=%08d, \"quoted\"", i);
        const char *headers[] = {seq, sig, "X-Other: not kept", NULL};
        post_one(&s, "q", bodies[i], strlen(bodies[i]), types[i], headers);
    }
    batch_reply b;
    get_batch(&s, "/channels/q?wait=25&max=10", &b);
    assert_true(b.r.seconds < 25.0); /* all ready: no wait for more */
    assert_int_equal(b.count, 4);
    for (size_t i = 0; i < 4; i++) {
        char seq[16], sig[64];
        snprintf(seq, sizeof seq, "%zu", i);
        snprintf(sig, sizeof sig, "sha256=%08zu, \"quoted\"", i);
        expect_text_part(&b.parts[i], types[i] ? types[i] : "application/octet-stream", bodies[i]);
        expect_part_header(&b.parts[i], "X-Seq", seq);
        expect_part_header(&b.parts[i], "X-Sig-A", sig);
        expect_no_part_header(&b.parts[i], "X-Other");
        expect_no_part_header(&b.parts[i], "Hopper-Receipt");
        /* Content-Type, the two kept, the count: nothing else */
        assert_int_equal(b.parts[i].header_count, 4);
    }
    batch_free(&b);
    expect_empty(&s, "q");
    assert_int_equal(hs_status_value(&s, "q", "received_total"), 4);
    stop(&s);
}

/* ?max=N takes N when more are ready and leaves the rest; max=1 is still
 * a multipart response (of one); without max, a plain response. */
static void test_get_batch_takes_at_most_max(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    for (int i = 0; i < 5; i++) {
        char body[16];
        snprintf(body, sizeof body, "m%d", i);
        assert_int_equal(hs_post_text(&s, "most", body), 202);
    }
    batch_reply b;
    get_batch(&s, "/channels/most?wait=0&max=3", &b);
    assert_int_equal(b.count, 3);
    expect_text_part(&b.parts[0], "text/plain", "m0");
    expect_text_part(&b.parts[1], "text/plain", "m1");
    expect_text_part(&b.parts[2], "text/plain", "m2");
    batch_free(&b);
    assert_int_equal(hs_status_value(&s, "most", "messages"), 2);

    get_batch(&s, "/channels/most?wait=0&max=1", &b);
    assert_int_equal(b.count, 1);
    expect_text_part(&b.parts[0], "text/plain", "m3");
    batch_free(&b);

    hs_reply r;
    get_plain(&s, "most", "m4", 2, "text/plain", &r);
    expect_reply_header(&r, "Hopper-Delivery-Count", "1");
    hs_reply_free(&r);
    expect_empty(&s, "most");
    stop(&s);
}

/* Wait until g's GET waits in channel; fails (once g has finished) if it
 * does not. */
static void await_waiting(const hs_server *s, const char *channel, hs_pending_get *g)
{
    long long waiting = hs_await_status_value(s, channel, "waiting_receivers", 1, HS_PATIENCE_MS);
    if (waiting != 1) {
        hs_get_end(g);
        hs_reply_free(&g->reply);
        fail_msg("the GET is not waiting in %s: waiting_receivers %lld", channel, waiting);
    }
}

/* A batch GET waits only for the first message: with one ready it answers
 * at once with one part; with none it answers 204 when the wait is up; a
 * message that comes while it waits is answered with at once, one part. */
static void test_get_batch_waits_only_for_the_first(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "w", "ready"), 202);
    batch_reply b;
    /* curl gives up at 30 s: a server that waited for more would take 25 */
    get_batch(&s, "/channels/w?wait=25&max=10", &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 1);
    expect_text_part(&b.parts[0], "text/plain", "ready");
    batch_free(&b);

    hs_reply r;
    assert_int_equal(hs_get(&s, "/channels/w?wait=0.5&max=10", &r), 0);
    assert_int_equal(r.status, 204);
    assert_int_equal(r.len, 0);
    assert_true(r.seconds >= 0.45);
    hs_reply_free(&r);

    hs_pending_get g;
    assert_int_equal(hs_get_begin(&g, &s, "/channels/w?wait=25&max=10"), 0);
    await_waiting(&s, "w", &g);
    assert_int_equal(hs_post_text(&s, "w", "late"), 202);
    assert_int_equal(hs_get_end(&g), 0);
    parse_batch(&g.reply, &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 1);
    expect_text_part(&b.parts[0], "text/plain", "late");
    batch_free(&b);
    expect_empty(&s, "w");
    stop(&s);
}

/* max is a whole number from 1 to 1000; anything else is 400 bad_max and
 * takes nothing. */
static void test_bad_max(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "bm", "stays"), 202);
    static const char *const bad[] = {
        "max=0",    "max=-1",   "max=1001", "max=1.5", "max=abc",
        "max=",     "max=%00",  "max=1%00", "max",     "max=+1",
        "max=%201", "max=1%20", "max=0x5",  "max=1e2", "max=99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[200];
        snprintf(path, sizeof path, "/channels/bm?wait=0&%s", bad[i]);
        hs_reply r;
        assert_int_equal(hs_get(&s, path, &r), 0);
        if (!hs_is_error(&r, 400, "bad_max"))
            fail_msg("GET %s was not refused with bad_max", path);
        hs_reply_free(&r);
    }
    assert_int_equal(hs_status_value(&s, "bm", "messages"), 1);
    /* the largest max is allowed */
    batch_reply b;
    get_batch(&s, "/channels/bm?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1);
    expect_text_part(&b.parts[0], "text/plain", "stays");
    batch_free(&b);
    stop(&s);
}

/* Bodies with every byte value, CRLFs, "--" runs and a copy of an earlier
 * response's framing come back byte-identical, and the boundary chosen
 * occurs in none of them. */
static void test_get_batch_binary_bodies(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "bin", "x"), 202);
    batch_reply b;
    get_batch(&s, "/channels/bin?wait=0&max=10", &b);
    char earlier[MULTIPART_BOUNDARY_SIZE];
    memcpy(earlier, b.boundary, sizeof earlier);
    batch_free(&b);

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
        post_one(&s, "bin", bodies[i].data, bodies[i].len, "application/x-bin", NULL);
    get_batch(&s, "/channels/bin?wait=0&max=100", &b);
    assert_int_equal(b.count, n);
    assert_string_not_equal(b.boundary, earlier);
    for (size_t i = 0; i < n; i++) {
        expect_part_body(&b.parts[i], bodies[i].data, bodies[i].len);
        expect_part_header(&b.parts[i], "Content-Type", "application/x-bin");
        assert_null(memmem(bodies[i].data, bodies[i].len, b.boundary, strlen(b.boundary)));
    }
    batch_free(&b);
    expect_empty(&s, "bin");
    stop(&s);
}

/* Messages paged to a queue file and messages in memory come in one batch,
 * in the order they were sent, headers and all. */
static void test_get_batch_mixes_disk_and_memory(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--memory-bytes", "4KiB", "--keep-headers", "X-Seq", NULL};
    start(&s, args);
    enum { COUNT = 16, BODY = 600 };
    char body[BODY], label[16];
    for (int i = 0; i < COUNT; i++) {
        snprintf(label, sizeof label, "%02d|", i);
        fill(body, BODY, (char)('a' + i), label);
        char seq[32];
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        const char *headers[] = {seq, NULL};
        post_one(&s, "paged", body, BODY, "application/x-paged", headers);
    }
    assert_true(hs_status_value(&s, "paged", "memory_bytes") > 0);
    assert_true(hs_status_value(&s, "paged", "disk_files") > 0);
    assert_int_equal(hs_status_value(&s, "paged", "messages"), COUNT);

    batch_reply b;
    get_batch(&s, "/channels/paged?wait=0&max=100", &b);
    assert_int_equal(b.count, COUNT);
    for (int i = 0; i < COUNT; i++) {
        snprintf(label, sizeof label, "%02d|", i);
        fill(body, BODY, (char)('a' + i), label);
        char seq[16];
        snprintf(seq, sizeof seq, "%d", i);
        expect_part_body(&b.parts[i], body, BODY);
        expect_part_header(&b.parts[i], "Content-Type", "application/x-paged");
        expect_part_header(&b.parts[i], "X-Seq", seq);
        expect_part_header(&b.parts[i], "Hopper-Delivery-Count", "1");
    }
    batch_free(&b);
    expect_empty(&s, "paged");
    stop(&s);
}

/* With ?lease=, every part has its own receipt; the messages are invisible
 * while leased, and acknowledging each receipt consumes its message. */
static void test_get_batch_with_lease(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq", NULL};
    start(&s, args);
    enum { COUNT = 3 };
    for (int i = 0; i < COUNT; i++) {
        char body[16], seq[32];
        snprintf(body, sizeof body, "leased %d", i);
        snprintf(seq, sizeof seq, "X-Seq: %d", i);
        const char *headers[] = {seq, NULL};
        post_one(&s, "ls", body, strlen(body), "text/plain", headers);
    }
    batch_reply b;
    get_batch(&s, "/channels/ls?wait=0&max=10&lease=60", &b);
    assert_int_equal(b.count, COUNT);
    char receipts[COUNT][128];
    for (int i = 0; i < COUNT; i++) {
        char body[16], seq[16];
        snprintf(body, sizeof body, "leased %d", i);
        snprintf(seq, sizeof seq, "%d", i);
        expect_text_part(&b.parts[i], "text/plain", body);
        expect_part_header(&b.parts[i], "X-Seq", seq);
        multipart_header h = {0}; /* set when found; -O2 cannot tell */
        assert_int_equal(part_headers_named(&b.parts[i], "Hopper-Receipt", &h), 1);
        assert_true(h.value_len > 0 && h.value_len < sizeof receipts[i]);
        memcpy(receipts[i], h.value, h.value_len);
        receipts[i][h.value_len] = '\0';
        for (int j = 0; j < i; j++)
            assert_string_not_equal(receipts[i], receipts[j]);
    }
    batch_free(&b);
    assert_int_equal(hs_status_value(&s, "ls", "leased"), COUNT);
    assert_int_equal(hs_get_text(&s, "ls", "0", NULL, 0), 204); /* invisible while leased */

    for (int i = 0; i < COUNT; i++) {
        char path[512];
        snprintf(path, sizeof path, "/channels/ls/messages/%s", receipts[i]);
        hs_reply r;
        assert_int_equal(hs_request(&s, "DELETE", path, NULL, 0, NULL, &r), 0);
        assert_int_equal(r.status, 204);
        hs_reply_free(&r);
    }
    assert_int_equal(hs_status_value(&s, "ls", "leased"), 0);
    expect_empty(&s, "ls");
    /* acknowledged once: a second time is no success */
    char path[512];
    snprintf(path, sizeof path, "/channels/ls/messages/%s", receipts[0]);
    hs_reply r;
    assert_int_equal(hs_request(&s, "DELETE", path, NULL, 0, NULL, &r), 0);
    assert_true(r.status == 404 || r.status == 410);
    hs_reply_free(&r);
    stop(&s);
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
    start(&s, args);
    enum { BIG = 3 };
    size_t len = 4u << 20;
    unsigned char *big[BIG];
    for (int k = 0; k < BIG; k++) {
        big[k] = malloc(len);
        assert_non_null(big[k]);
        for (size_t i = 0; i < len; i++)
            big[k][i] = (unsigned char)(i * (unsigned)(7 + 2 * k) + i / 4096 + (unsigned)k);
        post_one(&s, "cut", big[k], len, "application/x-big", NULL);
    }
    assert_int_equal(hs_post_text(&s, "cut", "after"), 202);

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
    batch_reply b;
    get_batch(&s, "/channels/cut?wait=0&max=10", &b);
    assert_int_equal(b.count, BIG + 1);
    for (int k = 0; k < BIG; k++) {
        expect_part_body(&b.parts[k], big[k], len);
        expect_part_header(&b.parts[k], "Content-Type", "application/x-big");
        expect_part_header(&b.parts[k], "Hopper-Delivery-Count", "2");
        free(big[k]);
    }
    expect_text_part(&b.parts[BIG], "text/plain", "after");
    batch_free(&b);
    expect_empty(&s, "cut");
    stop(&s);
}

/* A batch of n parts "part <i>". OUT: *body. */
static void numbered_batch(bytes *body, int n)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %d", i);
        put_text_part(body, NULL, text);
    }
    put_close(body);
}

/* A batch POST wakes a waiting batch GET; every part is in the channel
 * before any is handed out, so the GET gets them all. */
static void test_batch_post_wakes_batch_get(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    hs_pending_get g;
    assert_int_equal(hs_get_begin(&g, &s, "/channels/wake?wait=25&max=10"), 0);
    await_waiting(&s, "wake", &g);
    bytes body = {0};
    numbered_batch(&body, 5);
    long status = post_batch(&s, "wake", &body);
    bytes_free(&body);
    assert_int_equal(hs_get_end(&g), 0);
    assert_int_equal(status, 202);
    batch_reply b;
    parse_batch(&g.reply, &b);
    assert_true(b.r.seconds < 25.0);
    assert_int_equal(b.count, 5);
    for (size_t i = 0; i < 5; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %zu", i);
        expect_text_part(&b.parts[i], "application/octet-stream", text);
    }
    batch_free(&b);
    expect_empty(&s, "wake");
    stop(&s);
}

/* ---- POST multipart/mixed ---- */

/* Each part becomes a message with its own Content-Type (the default when
 * it has none) and the part headers --keep-headers names; the outer
 * request's kept headers go to none of them. Empty parts are messages too.
 * Order holds. */
static void test_post_batch_types_and_kept_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Seq,X-Sig-*", NULL};
    start(&s, args);
    bytes body = {0};
    put_text(&body, "a preamble, skipped\r\n");
    put_text_part(&body,
                  "Content-Type: application/json\r\nX-Seq: 0\r\n"
                  "X-Sig-A:  \tsha256=abc, v1=\"q\" \r\nX-Other: dropped\r\n",
                  "{\"n\":0}");
    put_text_part(&body, "x-seq: 1\r\n", "no type");
    put_text_part(&body, NULL, "no headers at all");
    put_text_part(&body, "content-type: text/plain; charset=utf-8\r\nX-Seq: 3\r\nX-Seq: 3b\r\n",
                  "");
    put_text_part(&body, "Content-Type:\r\nX-Seq: 4\r\n", "empty type");
    put_close(&body);
    put_text(&body, "an epilogue, skipped too");
    hs_reply r;
    const char *outer[] = {"X-Seq: outer", "X-Sig-B: outer", NULL};
    post_body(&s, "pt", &body, BATCH_TYPE, outer, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "pt", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "pt", "sent_total"), 5);

    get_plain(&s, "pt", "{\"n\":0}", 7, "application/json", &r);
    expect_reply_header(&r, "X-Seq", "0");
    expect_reply_header(&r, "X-Sig-A", "sha256=abc, v1=\"q\"");
    assert_int_equal(reply_headers_named(&r, "X-Other"), 0);
    assert_int_equal(reply_headers_named(&r, "X-Sig-B"), 0);
    hs_reply_free(&r);
    get_plain(&s, "pt", "no type", 7, "application/octet-stream", &r);
    expect_reply_header(&r, "x-seq", "1");
    hs_reply_free(&r);
    get_plain(&s, "pt", "no headers at all", 17, "application/octet-stream", &r);
    assert_int_equal(reply_headers_named(&r, "X-Seq"), 0);
    hs_reply_free(&r);
    get_plain(&s, "pt", "", 0, "text/plain; charset=utf-8", &r);
    assert_int_equal(reply_headers_named(&r, "X-Seq"), 2);
    assert_non_null(strstr(r.headers, "X-Seq: 3\r\nX-Seq: 3b\r\n"));
    hs_reply_free(&r);
    get_plain(&s, "pt", "empty type", 10, "application/octet-stream", &r);
    expect_reply_header(&r, "X-Seq", "4");
    hs_reply_free(&r);
    expect_empty(&s, "pt");
    stop(&s);
}

/* Parts of any bytes, CRLFs and "--" runs among them, and text that looks
 * like the boundary but is not a delimiter, are stored byte-identical. */
static void test_post_batch_binary_parts(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
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
    bytes body = {0};
    for (size_t i = 0; i < n; i++)
        put_part(&body, "Content-Type: application/x-bin\r\n", parts[i].data, parts[i].len);
    put_close(&body);
    assert_int_equal(post_batch(&s, "pb", &body), 202);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "pb", "messages"), (long long)n);
    for (size_t i = 0; i < n; i++) {
        hs_reply r;
        get_plain(&s, "pb", parts[i].data, parts[i].len, "application/x-bin", &r);
        hs_reply_free(&r);
    }
    expect_empty(&s, "pb");
    stop(&s);
}

/* 1000 parts are accepted, and come back in one GET of max=1000; 1001 are
 * 400 bad_batch and store nothing. */
static void test_post_batch_of_1000(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    bytes body = {0};
    numbered_batch(&body, 1001);
    hs_reply r;
    post_body(&s, "k", &body, BATCH_TYPE, NULL, &r);
    assert_true(hs_is_error(&r, 400, "bad_batch"));
    hs_reply_free(&r);
    bytes_free(&body);
    assert_true(hs_status_value(&s, "k", "messages") <= 0);

    numbered_batch(&body, 1000);
    assert_int_equal(post_batch(&s, "k", &body), 202);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "k", "messages"), 1000);
    assert_int_equal(hs_post_text(&s, "k", "after"), 202);

    batch_reply b;
    get_batch(&s, "/channels/k?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    for (size_t i = 0; i < 1000; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %zu", i);
        expect_text_part(&b.parts[i], "application/octet-stream", text);
    }
    batch_free(&b);
    get_plain(&s, "k", "after", 5, "text/plain", &r);
    hs_reply_free(&r);
    expect_empty(&s, "k");
    stop(&s);
}

/* Without a Content-Length (chunked), the body is read as it comes: 1000
 * parts still make 1000 messages. */
static void test_post_batch_chunked(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    bytes body = {0};
    numbered_batch(&body, 1000);
    const char *chunked[] = {"Transfer-Encoding: chunked", NULL};
    hs_reply r;
    post_body(&s, "ch", &body, BATCH_TYPE, chunked, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    bytes_free(&body);
    batch_reply b;
    get_batch(&s, "/channels/ch?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    expect_text_part(&b.parts[0], "application/octet-stream", "part 0");
    expect_text_part(&b.parts[999], "application/octet-stream", "part 999");
    batch_free(&b);
    expect_empty(&s, "ch");
    stop(&s);
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
    start(&s, args);
    static unsigned char largest[1024];
    bytes body = {0};
    for (int i = 0; i < 1000; i++) {
        memset(largest, 'a' + i % 26, sizeof largest);
        put_part(&body, "Content-Type: application/x-full\r\n", largest, sizeof largest);
    }
    put_close(&body);
    long status = post_batch(&s, "full", &body);
    bytes_free(&body); /* before the check: a failure must not leak it */
    assert_int_equal(status, 202);
    assert_int_equal(hs_status_value(&s, "full", "messages"), 1000);
    batch_reply b;
    get_batch(&s, "/channels/full?wait=0&max=1000", &b);
    assert_int_equal(b.count, 1000);
    for (int i = 0; i < 1000; i++) {
        memset(largest, 'a' + i % 26, sizeof largest);
        expect_part_body(&b.parts[i], largest, sizeof largest);
    }
    batch_free(&b);
    stop(&s);
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
    start(&s, args);
    char lines[64][32];
    const char *outer[65];
    for (int i = 0; i < 64; i++) {
        snprintf(lines[i], sizeof lines[i], "X-H-%d: outer-%d", i, i);
        outer[i] = lines[i];
    }
    outer[64] = NULL;
    bytes body = {0};
    put_text_part(&body, "X-H-0: part\r\n", "one");
    put_close(&body);
    hs_reply r;
    post_body(&s, "outer", &body, BATCH_TYPE, outer, &r);
    bytes_free(&body);
    long status = r.status;
    if (status != 202)
        fprintf(stderr, "%.*s\n", (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    assert_int_equal(status, 202);
    get_plain(&s, "outer", "one", 3, "application/octet-stream", &r);
    expect_reply_header(&r, "X-H-0", "part");
    assert_int_equal(reply_headers_named(&r, "X-H-1"), 0);
    hs_reply_free(&r);
    stop(&s);
}

/* A part with a Content-Type beyond 1024 bytes (400 bad_content_type) or
 * more headers to keep than a message stores (400 too_many_headers) makes
 * the whole batch refused, nothing stored. */
static void test_post_batch_part_header_limits(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-H-*", NULL};
    start(&s, args);
    bytes body = {0}, headers = {0};
    put_text(&headers, "Content-Type: text/");
    for (int i = 0; i < 1020; i++)
        put_text(&headers, "x");
    put_text(&headers, "\r\n"); /* 1025 bytes of value */
    put_text_part(&body, NULL, "fine");
    put_text_part(&body, (const char *)headers.data, "long type");
    put_close(&body);
    hs_reply r;
    post_body(&s, "hl", &body, BATCH_TYPE, NULL, &r);
    assert_true(hs_is_error(&r, 400, "bad_content_type"));
    hs_reply_free(&r);
    bytes_free(&body);
    bytes_free(&headers);

    /* 63 kept and Content-Type: the most a message stores */
    for (int i = 0; i < 63; i++) {
        char line[32];
        snprintf(line, sizeof line, "X-H-%d: %d\r\n", i, i);
        put_text(&headers, line);
    }
    put_text_part(&body, (const char *)headers.data, "63 kept");
    put_close(&body);
    assert_int_equal(post_batch(&s, "hl", &body), 202);
    bytes_free(&body);
    put_text(&headers, "X-H-63: 63\r\n");
    put_text_part(&body, NULL, "fine");
    put_text_part(&body, (const char *)headers.data, "64 kept");
    put_close(&body);
    post_body(&s, "hl", &body, BATCH_TYPE, NULL, &r);
    assert_true(hs_is_error(&r, 400, "too_many_headers"));
    hs_reply_free(&r);
    bytes_free(&body);
    bytes_free(&headers);
    assert_int_equal(hs_status_value(&s, "hl", "messages"), 1);
    get_plain(&s, "hl", "63 kept", 7, "application/octet-stream", &r);
    expect_reply_header(&r, "X-H-62", "62");
    hs_reply_free(&r);
    stop(&s);
}

/* A malformed batch, or a Content-Type of multipart/mixed without a good
 * boundary, is 400 bad_batch and stores nothing, not even its good parts. */
static void test_post_malformed_batches(void **state)
{
    (void)state;
    hs_server s;
    start(&s, NULL);
    assert_int_equal(hs_post_text(&s, "mal", "before"), 202);
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
        bytes body = {0};
        put_text(&body, bodies[i].body);
        hs_reply r;
        post_body(&s, "mal", &body, BATCH_TYPE, NULL, &r);
        if (!hs_is_error(&r, 400, "bad_batch"))
            fail_msg("%s: not refused with bad_batch", bodies[i].what);
        hs_reply_free(&r);
        bytes_free(&body);
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
        bytes body = {0};
        put_text(&body, good_part);
        put_text(&body, close);
        hs_reply r;
        post_body(&s, "mal", &body, types[i], NULL, &r);
        if (!hs_is_error(&r, 400, "bad_batch"))
            fail_msg("Content-Type '%s': not refused with bad_batch", types[i]);
        hs_reply_free(&r);
        bytes_free(&body);
    }
    assert_int_equal(hs_status_value(&s, "mal", "messages"), 1);
    assert_int_equal(hs_status_value(&s, "mal", "sent_total"), sent);

    /* the same good part with a good type is stored: the refusals were the
     * malformations */
    bytes body = {0};
    put_text(&body, good_part);
    put_text(&body, close);
    assert_int_equal(post_batch(&s, "mal", &body), 202);
    hs_reply r;
    post_body(&s, "mal", &body, "multipart/mixed; boundary=\"" BOUNDARY "\"", NULL, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    bytes_free(&body);
    get_plain(&s, "mal", "before", 6, "text/plain", &r);
    hs_reply_free(&r);
    for (int i = 0; i < 2; i++) {
        get_plain(&s, "mal", "fine", 4, "text/plain", &r);
        hs_reply_free(&r);
    }
    expect_empty(&s, "mal");
    stop(&s);
}

/* A part whose body and kept headers pass --max-message-bytes makes the
 * whole batch 413 too_big, nothing stored; headers not kept cost nothing;
 * the outer request's kept headers count for no part. */
static void test_post_batch_part_too_big(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "1KiB", "--keep-headers", "X-Pad", NULL};
    start(&s, args);
    static char big[1100];
    memset(big, 'b', sizeof big);
    char pad19[64], pad20[64], other[1200];
    snprintf(pad19, sizeof pad19, "X-Pad: %019d\r\n", 19); /* 5 + 19 */
    snprintf(pad20, sizeof pad20, "X-Pad: %020d\r\n", 20);
    snprintf(other, sizeof other, "X-Other: %01000d\r\n", 0);

    /* 1000 + 24 = 1024: fits exactly */
    bytes body = {0};
    put_text_part(&body, NULL, "small");
    put_part(&body, pad19, big, 1000);
    put_close(&body);
    assert_int_equal(post_batch(&s, "tb", &body), 202);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "tb", "messages"), 2);

    struct {
        const char *headers;
        size_t len;
    } too_big[] = {{pad20, 1000}, {NULL, 1025}, {other, 1025}};
    for (size_t i = 0; i < sizeof too_big / sizeof too_big[0]; i++) {
        put_text_part(&body, NULL, "small");
        put_part(&body, too_big[i].headers, big, too_big[i].len);
        put_text_part(&body, NULL, "small too");
        put_close(&body);
        hs_reply r;
        post_body(&s, "tb", &body, BATCH_TYPE, NULL, &r);
        if (!hs_is_error(&r, 413, "too_big"))
            fail_msg("case %zu: not refused with too_big", i);
        hs_reply_free(&r);
        bytes_free(&body);
    }
    assert_int_equal(hs_status_value(&s, "tb", "messages"), 2);
    assert_int_equal(hs_status_value(&s, "tb", "rejected_too_big_total"), 3);

    /* a header not kept is free, and so is the outer request's kept one */
    put_part(&body, other, big, 1024);
    put_close(&body);
    char outer_pad[1100];
    snprintf(outer_pad, sizeof outer_pad, "X-Pad: %01000d", 7);
    const char *outer[] = {outer_pad, NULL};
    hs_reply r;
    post_body(&s, "tb", &body, BATCH_TYPE, outer, &r);
    assert_int_equal(r.status, 202);
    hs_reply_free(&r);
    bytes_free(&body);

    get_plain(&s, "tb", "small", 5, "application/octet-stream", &r);
    hs_reply_free(&r);
    get_plain(&s, "tb", big, 1000, "application/octet-stream", &r);
    expect_reply_header(&r, "X-Pad", "0000000000000000019");
    hs_reply_free(&r);
    get_plain(&s, "tb", big, 1024, "application/octet-stream", &r);
    assert_int_equal(reply_headers_named(&r, "X-Pad"), 0);
    assert_int_equal(reply_headers_named(&r, "X-Other"), 0);
    hs_reply_free(&r);
    expect_empty(&s, "tb");
    stop(&s);
}

/* Parts of sized_batch(): PART_BYTES each, part i of tag is "<tag><i>:"
 * and then tag to the end. */
#define PART_BYTES 900

static void sized_part(char part[PART_BYTES], char tag, int i)
{
    char label[32];
    snprintf(label, sizeof label, "%c%d:", tag, i);
    fill(part, PART_BYTES, tag, label);
}

/* A batch of n sized parts of tag. OUT: *body. */
static void sized_batch(bytes *body, char tag, int n)
{
    char part[PART_BYTES];
    for (int i = 0; i < n; i++) {
        sized_part(part, tag, i);
        put_part(body, "Content-Type: application/x-sized\r\n", part, sizeof part);
    }
    put_close(body);
}

/* parts[0..n) are those of sized_batch(tag, n). */
static void expect_sized(const multipart_part *parts, char tag, int n)
{
    char part[PART_BYTES];
    for (int i = 0; i < n; i++) {
        sized_part(part, tag, i);
        expect_part_body(&parts[i], part, sizeof part);
        expect_part_header(&parts[i], "Content-Type", "application/x-sized");
    }
}

/* POST body as a batch of type; it must be refused with 507 handing back
 * the whole body, byte-identical, with type. */
static void expect_507(const hs_server *s, const char *channel, const bytes *body, const char *type)
{
    hs_reply r;
    post_body(s, channel, body, type, NULL, &r);
    if (r.status != 507)
        fail_msg("expected 507, got %ld: %.*s", r.status, (int)r.len, (const char *)r.body);
    assert_int_equal(r.len, body->len);
    assert_memory_equal(r.body, body->data, body->len);
    assert_string_equal(r.content_type, type);
    expect_reply_header(&r, "Retry-After", "1");
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
    start(&s, args);
    bytes body = {0};
    sized_batch(&body, 'a', 3); /* ~2.8 KiB: memory takes it */
    assert_int_equal(post_batch(&s, "all", &body), 202);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 3);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 0);

    /* 8 parts need two queue files; one is allowed */
    put_text(&body, "preamble\r\n");
    sized_batch(&body, 'x', 8);
    put_text(&body, "epilogue");
    const char *quoted = "multipart/mixed; boundary=\"" BOUNDARY "\"";
    expect_507(&s, "all", &body, quoted);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 3);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 0);
    assert_int_equal(hs_status_value(&s, "all", "sent_total"), 3);

    sized_batch(&body, 'c', 2); /* ~1.8 KiB: the queue file takes it */
    assert_int_equal(post_batch(&s, "all", &body), 202);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "all", "disk_files"), 1);

    sized_batch(&body, 'y', 8); /* would need a second file */
    expect_507(&s, "all", &body, BATCH_TYPE);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "all", "messages"), 5);
    assert_int_equal(hs_status_value(&s, "all", "sent_total"), 5);

    batch_reply b;
    get_batch(&s, "/channels/all?wait=0&max=100", &b);
    assert_int_equal(b.count, 5);
    expect_sized(b.parts, 'a', 3);
    expect_sized(b.parts + 3, 'c', 2);
    batch_free(&b);
    expect_empty(&s, "all");
    stop(&s);
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
    assert_int_equal(hs_start_in(&s, dir, args), 0);
    assert_int_equal(hs_post_text(&s, "dur", "single"), 202);
    long long syncs = hs_status_value(&s, "dur", "syncs_total");
    assert_true(syncs > 0);

    bytes body = {0};
    sized_batch(&body, 'x', 8); /* needs two queue files */
    expect_507(&s, "dur", &body, BATCH_TYPE);
    bytes_free(&body);
    assert_int_equal(hs_status_value(&s, "dur", "messages"), 1);

    enum { COUNT = 5 };
    for (int i = 0; i < COUNT; i++) {
        char headers[64], text[32];
        snprintf(headers, sizeof headers, "Content-Type: text/x-d%d\r\nX-Seq: %d\r\n", i, i);
        snprintf(text, sizeof text, "durable %d", i);
        put_text_part(&body, headers, text);
    }
    put_close(&body);
    assert_int_equal(post_batch(&s, "dur", &body), 202);
    bytes_free(&body);
    assert_true(hs_status_value(&s, "dur", "syncs_total") > syncs);
    hs_stop_with(&s, SIGKILL);

    assert_int_equal(hs_start_in(&s, dir, args), 0);
    assert_int_equal(hs_status_value(&s, "dur", "messages"), COUNT + 1);
    batch_reply b;
    get_batch(&s, "/channels/dur?wait=0&max=100", &b);
    assert_int_equal(b.count, COUNT + 1);
    expect_part_body(&b.parts[0], "single", 6);
    for (int i = 0; i < COUNT; i++) {
        char type[32], seq[16], text[32];
        snprintf(type, sizeof type, "text/x-d%d", i);
        snprintf(seq, sizeof seq, "%d", i);
        snprintf(text, sizeof text, "durable %d", i);
        expect_part_body(&b.parts[i + 1], text, strlen(text));
        expect_part_header(&b.parts[i + 1], "Content-Type", type);
        expect_part_header(&b.parts[i + 1], "X-Seq", seq);
    }
    batch_free(&b);
    expect_empty(&s, "dur");
    stop(&s);
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
    start(&s, args);
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
        bytes body = {0};
        for (int k = 0; k < BATCH_PARTS; k++) {
            char text[32];
            snprintf(text, sizeof text, "b-%02d-%03d", j, k);
            put_text_part(&body, "Content-Type: text/plain\r\n", text);
        }
        put_close(&body);
        status = post_batch(&s, "mix", &body);
        bytes_free(&body);
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
        batch_reply b;
        get_batch(&s, "/channels/mix?wait=0&max=1000", &b);
        for (size_t i = 0; i < b.count; i++)
            check_next(&o, &b.parts[i]);
        seen += (long long)b.count;
        batch_free(&b);
    }
    assert_int_equal(o.next_batch, batches);
    assert_int_equal(o.batch, -1);
    for (int i = 0; i < POSTERS; i++)
        assert_int_equal(o.next_single[i], atomic_load(&posters[i].posted));
    print_message("%d batches, %lld singles; %d of the gaps between batches had singles\n", batches,
                  total - (long long)batches * BATCH_PARTS, o.cut_between);
    expect_empty(&s, "mix");
    stop(&s);
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
        cmocka_unit_test(test_get_batch_in_order_with_headers),
        cmocka_unit_test(test_get_batch_takes_at_most_max),
        cmocka_unit_test(test_get_batch_waits_only_for_the_first),
        cmocka_unit_test(test_bad_max),
        cmocka_unit_test(test_get_batch_binary_bodies),
        cmocka_unit_test(test_get_batch_mixes_disk_and_memory),
        cmocka_unit_test(test_get_batch_with_lease),
        cmocka_unit_test(test_batch_cut_short_gives_all_back),
        cmocka_unit_test(test_batch_post_wakes_batch_get),
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
