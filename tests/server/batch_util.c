/* batch_util.c - what the batch tests share (see batch_util.h). */
#include "batch_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* ---- request bodies ---- */

void bu_put(bu_bytes *b, const void *data, size_t len)
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

void bu_put_text(bu_bytes *b, const char *text)
{
    bu_put(b, text, strlen(text));
}

void bu_fill(char *out, size_t len, char filler, const char *label)
{
    memset(out, filler, len);
    memcpy(out, label, strlen(label) < len ? strlen(label) : len);
}

void bu_bytes_free(bu_bytes *b)
{
    free(b->data);
    *b = (bu_bytes){0};
}

void bu_put_part(bu_bytes *b, const char *headers, const void *body, size_t len)
{
    bu_put_text(b, "--" BOUNDARY "\r\n");
    if (headers)
        bu_put_text(b, headers);
    bu_put_text(b, "\r\n");
    bu_put(b, body, len);
    bu_put_text(b, "\r\n");
}

void bu_put_text_part(bu_bytes *b, const char *headers, const char *body)
{
    bu_put_part(b, headers, body, strlen(body));
}

void bu_put_close(bu_bytes *b)
{
    bu_put_text(b, "--" BOUNDARY "--\r\n");
}

void bu_numbered_batch(bu_bytes *body, int n)
{
    for (int i = 0; i < n; i++) {
        char text[32];
        snprintf(text, sizeof text, "part %d", i);
        bu_put_text_part(body, NULL, text);
    }
    bu_put_close(body);
}

void bu_post_body(const hs_server *s, const char *channel, const bu_bytes *body, const char *type,
                  const char *const *headers, hs_reply *r)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    assert_int_equal(hs_post_headers(s, path, body->data, body->len, type, headers, r), 0);
}

void bu_expect_post_body(const hs_server *s, const char *channel, const bu_bytes *body,
                         const char *type, const char *const *headers, long status,
                         const char *code)
{
    hs_reply r;
    bu_post_body(s, channel, body, type, headers, &r);
    bool ok = code ? hs_is_error(&r, status, code) : r.status == status;
    char why[1500] = "";
    if (!ok)
        snprintf(why, sizeof why, "POST to %s as '%s': expected %ld %s, got %ld '%.*s'", channel,
                 type, status, code ? code : "", r.status, (int)(r.len < 200 ? r.len : 200),
                 (const char *)r.body);
    hs_reply_free(&r);
    if (why[0])
        fail_msg("%s", why);
}

long bu_post_batch(const hs_server *s, const char *channel, const bu_bytes *body)
{
    hs_reply r;
    bu_post_body(s, channel, body, BATCH_TYPE, NULL, &r);
    long status = r.status;
    if (status != 202)
        fprintf(stderr, "batch POST to %s: %ld %.*s\n", channel, status, (int)r.len,
                (const char *)r.body);
    hs_reply_free(&r);
    return status;
}

void bu_post_one(const hs_server *s, const char *channel, const void *body, size_t len,
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

void bu_parse_batch(hs_reply *r, bu_batch *b)
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

void bu_get_batch(const hs_server *s, const char *path, bu_batch *b)
{
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    bu_parse_batch(&r, b);
}

void bu_batch_free(bu_batch *b)
{
    hs_reply_free(&b->r);
    free(b->parts);
    b->parts = NULL;
}

size_t bu_part_headers_named(const multipart_part *p, const char *name, multipart_header *first)
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

void bu_expect_part_header(const multipart_part *p, const char *name, const char *value)
{
    multipart_header h;
    size_t n = bu_part_headers_named(p, name, &h);
    if (n != 1)
        fail_msg("%zu '%s' headers in the part:\n%.*s", n, name, (int)p->header_lines_len,
                 p->header_lines);
    if (h.value_len != strlen(value) || memcmp(h.value, value, h.value_len) != 0)
        fail_msg("expected '%s: %s', got '%.*s'", name, value, (int)h.value_len, h.value);
}

void bu_part_message_id(const multipart_part *p, char id[HS_MESSAGE_ID_LEN + 1])
{
    multipart_header h;
    size_t n = bu_part_headers_named(p, "Hopper-Message-Id", &h);
    if (n != 1 || h.value_len != HS_MESSAGE_ID_LEN)
        fail_msg("expected one Hopper-Message-Id of 32 hex digits in the part:\n%.*s",
                 (int)p->header_lines_len, p->header_lines);
    memcpy(id, h.value, HS_MESSAGE_ID_LEN);
    id[HS_MESSAGE_ID_LEN] = '\0';
    if (!hs_is_message_id(id))
        fail_msg("'%s' is not a message id", id);
}

void bu_expect_no_part_header(const multipart_part *p, const char *name)
{
    if (bu_part_headers_named(p, name, NULL) != 0)
        fail_msg("the part has a '%s' header:\n%.*s", name, (int)p->header_lines_len,
                 p->header_lines);
}

void bu_expect_part_body(const multipart_part *p, const void *body, size_t len)
{
    if (p->body_len != len || memcmp(p->body, body, len) != 0)
        fail_msg("expected a body of %zu bytes, got %zu: '%.*s'", len, p->body_len,
                 (int)(p->body_len < 200 ? p->body_len : 200), (const char *)p->body);
}

void bu_expect_text_part(const multipart_part *p, const char *type, const char *body)
{
    bu_expect_part_body(p, body, strlen(body));
    bu_expect_part_header(p, "Content-Type", type);
    bu_expect_part_header(p, "Hopper-Delivery-Count", "1");
}

/* ---- plain responses ---- */

void bu_get_plain(const hs_server *s, const char *channel, const void *body, size_t len,
                  const char *type, hs_reply *r)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s?wait=0", channel);
    assert_int_equal(hs_get(s, path, r), 0);
    if (r->status != 200 || r->len != len || memcmp(r->body, body, len) != 0)
        fail_msg("expected 200 with %zu bytes, got %ld with %zu: '%.*s'", len, r->status, r->len,
                 (int)(r->len < 200 ? r->len : 200), (const char *)r->body);
    assert_string_equal(r->content_type, type);
    assert_int_equal(hs_header_count(r, "Content-Type"), 1);
}

void bu_expect_reply_header(const hs_reply *r, const char *name, const char *value)
{
    char got[1200];
    if (hs_header_count(r, name) != 1 || !hs_header(r, name, got, sizeof got))
        fail_msg("expected one '%s' header:\n%s", name, r->headers);
    assert_string_equal(got, value);
}

void bu_expect_empty(const hs_server *s, const char *channel)
{
    hs_expect_nothing(s, channel, "0", NULL);
    assert_int_equal(hs_status_value(s, channel, "messages"), 0);
}
