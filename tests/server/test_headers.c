/* test_headers.c - --keep-headers against the real binary: signature headers
 * of webhook senders come back byte-identical, prefixes and case-insensitive
 * matching, repeated headers, unlisted headers neither stored nor returned,
 * the limit of stored headers, kept header bytes counted in
 * --max-message-bytes, bad lists refused, and kept headers surviving a
 * restart and a trip through the queue files. */
#include "harness.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cmocka.h>

/* Shapes of real signature headers (GitHub, Stripe, and a signature scheme
 * with quoted parameters), the values hopper must hand back unchanged. */
#define GITHUB_SIGNATURE "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
#define STRIPE_SIGNATURE                                                                           \
    "t=1492774577,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd,"            \
    "v0=6ffbb59b2300aae63f272406069a9788598b792a944a07aba816edb039989a39"
#define HTTP_SIGNATURE                                                                             \
    "keyId=\"hook-1\";algorithm=\"hmac-sha256\";headers=\"(request-target) date\";"                \
    "signature=\"qdx+H7PHHDbQWcAf7WLQ3BC+Eq92PmVdG9UFPVtV5Sg=\""

/* Longest header line a test builds. */
#define LINE_MAX_BYTES 1200

/* One header of a response, as the server wrote it: the name, and the
 * bytes between ": " and the CRLF. Pointers into the reply's headers. */
typedef struct field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
} field;

/* Every header of r named name (ASCII case-insensitively), in the order
 * they came. OUT: out[0..max). Returns how many there are. */
static size_t fields_named(const hs_reply *r, const char *name, field *out, size_t max)
{
    size_t n = 0, name_len = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strstr(line, "\r\n");
        if (end == NULL)
            break;
        const char *colon = memchr(line, ':', (size_t)(end - line));
        if (colon && (size_t)(colon - line) == name_len && strncasecmp(line, name, name_len) == 0) {
            const char *value = colon + 1;
            if (*value == ' ')
                value++;
            if (n < max)
                out[n] = (field){line, name_len, value, (size_t)(end - value)};
            n++;
        }
        line = end + 2;
    }
    return n;
}

/* r must carry exactly one header name, with exactly value (the name
 * spelled as sent). */
static void expect_header(const hs_reply *r, const char *name, const char *value)
{
    field f[2];
    size_t n = fields_named(r, name, f, 2);
    if (n != 1)
        fail_msg("%zu '%s' headers in the response:\n%s", n, name, r->headers);
    if (memcmp(f[0].name, name, f[0].name_len) != 0 || f[0].value_len != strlen(value) ||
        memcmp(f[0].value, value, f[0].value_len) != 0)
        fail_msg("expected '%s: %s', got '%.*s: %.*s'", name, value, (int)f[0].name_len, f[0].name,
                 (int)f[0].value_len, f[0].value);
}

static void expect_no_header(const hs_reply *r, const char *name)
{
    field f[1];
    if (fields_named(r, name, f, 1) != 0)
        fail_msg("the response has a '%s' header:\n%s", name, r->headers);
}

/* POST body (text) to channel with the request headers given. Returns the
 * status; the reply is dropped. */
static long post_with(const hs_server *s, const char *channel, const char *body,
                      const char *const *headers)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, body, strlen(body), "text/plain", headers, &r), 0);
    long status = r.status;
    hs_reply_free(&r);
    return status;
}

/* POST body[0..len) (text/plain) to channel with the request headers
 * given: it must be refused with the JSON error status and code. */
static void post_refused(const hs_server *s, const char *channel, const char *body, size_t len,
                         const char *const *headers, long status, const char *code)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    assert_int_equal(hs_post_headers(s, path, body, len, "text/plain", headers, &r), 0);
    bool refused = hs_is_error(&r, status, code);
    hs_reply_free(&r);
    if (!refused)
        fail_msg("POST %s: expected %ld %s", path, status, code);
}

/* GET the next message of channel into r; it must be there with body. */
static void get_message(const hs_server *s, const char *channel, const char *body, hs_reply *r)
{
    char path[200];
    snprintf(path, sizeof path, "/channels/%s?wait=0", channel);
    assert_int_equal(hs_get(s, path, r), 0);
    if (r->status != 200 || r->len != strlen(body) || memcmp(r->body, body, r->len) != 0)
        fail_msg("expected 200 '%s', got %ld '%.*s'", body, r->status, (int)r->len,
                 (const char *)r->body);
}

/* A header value of len bytes (no blank at either end, as MHD trims those
 * of what it reads): '=', ',', ';', quotes, a tab and bytes above 0x7f
 * among ordinary characters. OUT: out, NUL-terminated. */
static void long_value(char *out, size_t len)
{
    static const char chars[] =
        "abcXYZ0189+/=,;:\"'()[]{}<>?@\\!#$%&*-._^`|~ \t\x80\xbf\xc3\xa9\xff";
    for (size_t i = 0; i < len; i++)
        out[i] = chars[(i * 7 + i / 5) % (sizeof chars - 1)];
    out[0] = 'v';
    out[len - 1] = 'z';
    out[len] = '\0';
}

static void test_signatures_come_back_byte_identical(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Hub-Signature-256,Stripe-Signature,Signature,X-Long",
                          NULL};
    hs_start_ok(&s, args);
    char long_v[501], long_line[LINE_MAX_BYTES];
    long_value(long_v, 500);
    snprintf(long_line, sizeof long_line, "X-Long: %s", long_v);
    const char *headers[] = {"X-Hub-Signature-256: " GITHUB_SIGNATURE,
                             "Stripe-Signature: " STRIPE_SIGNATURE, "Signature: " HTTP_SIGNATURE,
                             long_line, NULL};
    assert_int_equal(post_with(&s, "hooks", "{\"action\":\"opened\"}", headers), 202);

    hs_reply r;
    get_message(&s, "hooks", "{\"action\":\"opened\"}", &r);
    assert_string_equal(r.content_type, "text/plain");
    expect_header(&r, "X-Hub-Signature-256", GITHUB_SIGNATURE);
    expect_header(&r, "Stripe-Signature", STRIPE_SIGNATURE);
    expect_header(&r, "Signature", HTTP_SIGNATURE);
    expect_header(&r, "X-Long", long_v);
    assert_int_equal(fields_named(&r, "Content-Type", NULL, 0), 1);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

static void test_prefixes_and_case(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "x-github-*, X-HUB-SIGNATURE-256", NULL};
    hs_start_ok(&s, args);
    const char *headers[] = {"X-GitHub-Event: push",
                             "X-GitHub-Delivery: 72d3162e-cc78-11e3-81ab-4c9367dc0958",
                             "x-github-hook-id: 292430182",
                             "X-Hub-Signature-256: " GITHUB_SIGNATURE,
                             "X-Other: not kept",
                             "X-GitHu: not kept either",
                             "User-Agent: GitHub-Hookshot/044aadd",
                             NULL};
    assert_int_equal(post_with(&s, "gh", "payload", headers), 202);
    hs_reply r;
    get_message(&s, "gh", "payload", &r);
    expect_header(&r, "X-GitHub-Event", "push");
    expect_header(&r, "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    expect_header(&r, "x-github-hook-id", "292430182"); /* the name as the sender wrote it */
    expect_header(&r, "X-Hub-Signature-256", GITHUB_SIGNATURE);
    expect_no_header(&r, "X-Other");
    expect_no_header(&r, "X-GitHu");
    expect_no_header(&r, "User-Agent");
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

static void test_repeated_headers_each_kept_in_order(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Tag,Content-Type", NULL};
    hs_start_ok(&s, args);
    const char *headers[] = {"X-Tag: first",
                             "X-Other: between",
                             "x-tag: second, with a comma",
                             "X-Tag;", /* curl's way to send an empty value */
                             "X-TAG: last",
                             NULL};
    assert_int_equal(post_with(&s, "tags", "t", headers), 202);
    hs_reply r;
    get_message(&s, "tags", "t", &r);
    /* the empty one is stored but cannot be sent back: libmicrohttpd
     * refuses a response header with an empty value */
    field f[8];
    assert_int_equal(fields_named(&r, "X-Tag", f, 8), 3);
    static const char *const names[] = {"X-Tag", "x-tag", "X-TAG"};
    static const char *const values[] = {"first", "second, with a comma", "last"};
    for (size_t i = 0; i < 3; i++) {
        assert_memory_equal(f[i].name, names[i], f[i].name_len);
        assert_int_equal(f[i].value_len, strlen(values[i]));
        assert_memory_equal(f[i].value, values[i], f[i].value_len);
    }
    /* listing Content-Type keeps it once, as always */
    assert_int_equal(fields_named(&r, "Content-Type", f, 8), 1);
    assert_string_equal(r.content_type, "text/plain");
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* A header the list does not name is neither returned nor stored: the
 * message costs the channel the same memory as one without it. */
static void test_unlisted_headers_are_not_stored(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-Kept", NULL};
    hs_start_ok(&s, args);
    char big[1001], line[LINE_MAX_BYTES];
    long_value(big, 1000);
    snprintf(line, sizeof line, "X-Not-Kept: %s", big);
    const char *with[] = {line, "X-Hub-Signature-256: " GITHUB_SIGNATURE, NULL};
    assert_int_equal(post_with(&s, "with", "same body", with), 202);
    assert_int_equal(post_with(&s, "without", "same body", NULL), 202);
    long long memory = hs_status_value(&s, "without", "memory_bytes");
    assert_true(memory > 0);
    assert_int_equal(hs_status_value(&s, "with", "memory_bytes"), memory);

    hs_reply r;
    get_message(&s, "with", "same body", &r);
    expect_no_header(&r, "X-Not-Kept");
    expect_no_header(&r, "X-Hub-Signature-256");
    hs_reply_free(&r);

    /* and without --keep-headers, nothing but Content-Type */
    hs_stop_ok(&s);
    hs_start_ok(&s, NULL);
    const char *kept_nowhere[] = {"X-Kept: 1", NULL};
    assert_int_equal(post_with(&s, "plain", "body", kept_nowhere), 202);
    get_message(&s, "plain", "body", &r);
    expect_no_header(&r, "X-Kept");
    assert_string_equal(r.content_type, "text/plain");
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* headers[0..n) = "X-H-<i>: value-<i>", NULL-terminated; lines holds them. */
static void numbered_headers(char lines[][64], const char **headers, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(lines[i], 64, "X-H-%zu: value-%zu", i, i);
        headers[i] = lines[i];
    }
    headers[n] = NULL;
}

/* A message stores 64 headers at most, Content-Type included: 63 more that
 * the list keeps fit, 64 are refused with 400 too_many_headers. */
static void test_most_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", "X-H-*", NULL};
    hs_start_ok(&s, args);
    char lines[64][64];
    const char *headers[65];

    numbered_headers(lines, headers, 63);
    assert_int_equal(post_with(&s, "many", "63", headers), 202);
    hs_reply r;
    get_message(&s, "many", "63", &r);
    field f[64];
    assert_int_equal(fields_named(&r, "Content-Type", f, 64), 1);
    for (size_t i = 0; i < 63; i++) {
        char name[32], value[32];
        snprintf(name, sizeof name, "X-H-%zu", i);
        snprintf(value, sizeof value, "value-%zu", i);
        expect_header(&r, name, value);
    }
    /* in the order sent */
    const char *at = r.headers;
    for (size_t i = 0; i < 63; i++) {
        char name[32];
        snprintf(name, sizeof name, "\r\nX-H-%zu:", i);
        const char *next = strstr(at, name);
        if (next == NULL)
            fail_msg("X-H-%zu is missing or out of order:\n%s", i, r.headers);
        at = next + 1;
    }
    hs_reply_free(&r);

    numbered_headers(lines, headers, 64);
    post_refused(&s, "many", "64", 2, headers, 400, "too_many_headers");
    assert_int_equal(hs_status_value(&s, "many", "messages"), 0);
    hs_stop_ok(&s);
}

/* Names and values of kept headers count toward --max-message-bytes with
 * the body; Content-Type and headers not kept do not. */
static void test_size_limit_counts_kept_headers(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--max-message-bytes", "1KiB", "--keep-headers", "X-Pad", NULL};
    hs_start_ok(&s, args);
    static char body[1025], value[1200], line[LINE_MAX_BYTES + 100];
    memset(body, 'b', 1024);
    hs_reply r;

    /* 1000 + "X-Pad" 5 + 19 = 1024: fits exactly */
    body[1000] = '\0';
    long_value(value, 19);
    snprintf(line, sizeof line, "X-Pad: %s", value);
    const char *pad[] = {line, NULL};
    assert_int_equal(post_with(&s, "lim", body, pad), 202);
    /* one byte more of value: 1025 */
    long_value(value, 20);
    snprintf(line, sizeof line, "X-Pad: %s", value);
    post_refused(&s, "lim", body, 1000, pad, 413, "too_big");
    /* the same body alone fits */
    assert_int_equal(post_with(&s, "lim", body, NULL), 202);
    /* headers alone beyond the limit, with an empty body */
    long_value(value, 1100);
    snprintf(line, sizeof line, "X-Pad: %s", value);
    post_refused(&s, "lim", "", 0, pad, 413, "too_big");
    /* a header that is not kept costs nothing: a full-size body still fits */
    body[1000] = 'b';
    body[1024] = '\0';
    const char *unkept[] = {"X-Other: 0123456789012345678901234567890123456789", NULL};
    assert_int_equal(post_with(&s, "lim", body, unkept), 202);
    /* without a Content-Length, found out while the body is read */
    body[1000] = '\0';
    long_value(value, 20);
    snprintf(line, sizeof line, "X-Pad: %s", value);
    const char *chunked[] = {line, "Transfer-Encoding: chunked", NULL};
    post_refused(&s, "lim", body, 1000, chunked, 413, "too_big");
    long_value(value, 19);
    snprintf(line, sizeof line, "X-Pad: %s", value);
    assert_int_equal(post_with(&s, "lim", body, chunked), 202);
    assert_int_equal(hs_status_value(&s, "lim", "messages"), 4);
    assert_int_equal(hs_status_value(&s, "lim", "rejected_too_big_total"), 3);

    body[1000] = '\0';
    long_value(value, 19);
    get_message(&s, "lim", body, &r);
    expect_header(&r, "X-Pad", value);
    hs_reply_free(&r);
    get_message(&s, "lim", body, &r);
    expect_no_header(&r, "X-Pad");
    hs_reply_free(&r);
    body[1000] = 'b';
    get_message(&s, "lim", body, &r);
    hs_reply_free(&r);
    body[1000] = '\0';
    get_message(&s, "lim", body, &r);
    expect_header(&r, "X-Pad", value);
    hs_reply_free(&r);
    hs_stop_ok(&s);
}

/* Run hopper with args and env; it must exit 2 saying text. */
static void expect_refused(const char *const *args, const char *const *env, const char *text)
{
    int code = -2;
    char *output = NULL;
    assert_int_equal(hs_run(args, env, &code, &output), 0);
    if (code != 2 || strstr(output, text) == NULL || strstr(output, "Try 'hopper --help'") == NULL)
        fail_msg("expected exit 2 saying '%s', got exit %d:\n%s", text, code, output);
    free(output);
}

/* "X-0,X-1,...": a list of n distinct names. OUT: out. */
static void list_of(char *out, size_t size, int n)
{
    size_t len = 0;
    out[0] = '\0';
    for (int i = 0; i < n && len < size; i++)
        len += (size_t)snprintf(out + len, size - len, "%sX-%d", i ? "," : "", i);
}

static void test_bad_lists_exit_2(void **state)
{
    (void)state;
    static const struct {
        const char *list;
        const char *message;
    } cases[] = {
        {"X-A,,X-B", "has an empty item"},
        {"X-A,", "has an empty item"},
        {",X-A", "has an empty item"},
        {" , ", "has an empty item"},
        {"X A", "'X A': a header name is letters, digits"},
        {"X-A:", "'X-A:': a header name"},
        {"X-\xc3\xa9", "a header name"},
        {"X-*-Y", "'*' may only end an item"},
        {"**", "'*' may only end an item"},
        {"*", "'*' alone, which would keep every header"},
        {"Connection", "would keep Connection"},
        {"keep-alive", "would keep Keep-Alive"},
        {"Transfer-Encoding", "would keep Transfer-Encoding"},
        {"TE", "would keep TE"},
        {"Trailer", "would keep Trailer"},
        {"Upgrade", "would keep Upgrade"},
        {"content-length", "would keep Content-Length"},
        {"Host", "would keep Host"},
        {"Expect", "would keep Expect"},
        {"Proxy-Authorization", "would keep Proxy-*"},
        {"Proxy-*", "would keep Proxy-*"},
        {"Content-*", "would keep Content-Length"},
        {"Ho*", "would keep Host"},
        {"Hopper-Delivery-Count", "hopper's own response headers"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {"--keep-headers", cases[i].list, NULL};
        expect_refused(args, NULL, cases[i].message);
    }
    /* the environment variable, likewise */
    const char *none[] = {NULL};
    const char *env[] = {"HOPPER_KEEP_HEADERS=X-A,*", NULL};
    expect_refused(none, env, "HOPPER_KEEP_HEADERS: 'X-A,*' has '*' alone");

    char list[65 * 8];
    list_of(list, sizeof list, 65);
    const char *args[] = {"--keep-headers", list, NULL};
    expect_refused(args, NULL, "has more than 64 items");
}

/* limits.keep_headers of the server's /status (new reference). */
static json_t *status_keep_headers(const hs_server *s)
{
    hs_reply r;
    assert_int_equal(hs_get(s, "/status", &r), 0);
    json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
    hs_reply_free(&r);
    json_t *list = json_incref(json_object_get(json_object_get(doc, "limits"), "keep_headers"));
    json_decref(doc);
    assert_true(json_is_array(list));
    return list;
}

/* The list in /status: items as given, blanks trimmed; 64 items are
 * allowed; the default is none; an empty variable means none. */
static void test_status_shows_the_list(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers", " X-A ,\tX-GitHub-*,Content-Type,X-*", NULL};
    hs_start_ok(&s, args);
    json_t *list = status_keep_headers(&s);
    static const char *const want[] = {"X-A", "X-GitHub-*", "Content-Type", "X-*"};
    assert_int_equal(json_array_size(list), 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_array_get(list, i)), want[i]);
    json_decref(list);
    hs_stop_ok(&s);

    char many[64 * 8];
    list_of(many, sizeof many, 64);
    const char *most[] = {"--keep-headers", many, NULL};
    hs_start_ok(&s, most);
    list = status_keep_headers(&s);
    assert_int_equal(json_array_size(list), 64);
    json_decref(list);
    hs_stop_ok(&s);

    const char *empty_env[] = {"HOPPER_KEEP_HEADERS=", NULL};
    hs_start_env_ok(&s, NULL, empty_env);
    list = status_keep_headers(&s);
    assert_int_equal(json_array_size(list), 0);
    json_decref(list);
    hs_stop_ok(&s);
}

/* Message i of the restart and disk tests: a short body, its number in
 * X-Seq and an X-Hub-Signature-256 long enough that a few messages fill a
 * small memory budget. */
#define NUMBERED_TYPE "application/x-numbered"
#define NUMBERED_SIGNATURE_BYTES 400

typedef struct numbered {
    char body[32];
    char seq[16];
    char signature[NUMBERED_SIGNATURE_BYTES + 1];
    char seq_line[64];
    char signature_line[LINE_MAX_BYTES];
    const char *headers[3]; /* the two lines, NULL */
} numbered;

static void numbered_message(int i, numbered *m)
{
    snprintf(m->body, sizeof m->body, "message %d", i);
    snprintf(m->seq, sizeof m->seq, "%d", i);
    long_value(m->signature, NUMBERED_SIGNATURE_BYTES);
    char head[32];
    int n = snprintf(head, sizeof head, "sha256=%08d-", i);
    memcpy(m->signature, head, (size_t)n);
    snprintf(m->seq_line, sizeof m->seq_line, "X-Seq: %s", m->seq);
    snprintf(m->signature_line, sizeof m->signature_line, "X-Hub-Signature-256: %s", m->signature);
    m->headers[0] = m->seq_line;
    m->headers[1] = m->signature_line;
    m->headers[2] = NULL;
}

/* POST message i to channel. OUT: *r. */
static void post_numbered(const hs_server *s, const char *channel, int i, hs_reply *r)
{
    numbered m;
    numbered_message(i, &m);
    char path[200];
    snprintf(path, sizeof path, "/channels/%s", channel);
    assert_int_equal(hs_post_headers(s, path, m.body, strlen(m.body), NUMBERED_TYPE, m.headers, r),
                     0);
}

static void post_numbered_accepted(const hs_server *s, const char *channel, int i)
{
    hs_reply r;
    post_numbered(s, channel, i, &r);
    if (r.status != 202)
        fail_msg("POST of message %d: %ld", i, r.status);
    hs_reply_free(&r);
}

/* The next message of channel must be message i with its headers. */
static void expect_numbered(const hs_server *s, const char *channel, int i)
{
    numbered m;
    numbered_message(i, &m);
    hs_reply r;
    get_message(s, channel, m.body, &r);
    expect_header(&r, "X-Seq", m.seq);
    expect_header(&r, "X-Hub-Signature-256", m.signature);
    assert_string_equal(r.content_type, NUMBERED_TYPE);
    hs_reply_free(&r);
}

/* Kept headers are in the message: a restart (with another list, or none)
 * brings them back with it, from memory written out at the stop and from
 * queue files alike, --durable ones too. */
static void test_headers_survive_a_restart(void **state)
{
    (void)state;
    char dir[256];
    assert_int_equal(hs_make_dir(dir, sizeof dir), 0);
    hs_server s;
    const char *first[] = {"--keep-headers", "X-Seq,X-Hub-Signature-*", "--memory-bytes", "4KiB",
                           NULL};
    hs_start_in_ok(&s, dir, first);
    for (int i = 0; i < 12; i++)
        post_numbered_accepted(&s, "restart", i);
    assert_true(hs_status_value(&s, "restart", "disk_files") > 0);
    assert_true(hs_status_value(&s, "restart", "memory_bytes") > 0);
    hs_stop_ok(&s);

    const char *durable[] = {"--keep-headers", "X-Seq,X-Hub-Signature-*", "--durable", NULL};
    hs_start_in_ok(&s, dir, durable);
    for (int i = 12; i < 15; i++)
        post_numbered_accepted(&s, "restart", i);
    hs_stop_ok(&s);

    hs_start_in_ok(&s, dir, NULL);
    assert_int_equal(hs_status_value(&s, "restart", "messages"), 15);
    for (int i = 0; i < 15; i++)
        expect_numbered(&s, "restart", i);
    hs_expect_nothing(&s, "restart", "0", NULL);
    hs_stop_ok(&s);
    hs_remove_tree(dir);
}

/* A message paged to a queue file keeps its headers; and a 507 still hands
 * back the payload with its Content-Type. */
static void test_headers_of_messages_on_disk(void **state)
{
    (void)state;
    hs_server s;
    const char *args[] = {"--keep-headers",
                          "X-Seq,X-Hub-Signature-256",
                          "--memory-bytes",
                          "4KiB",
                          "--file-bytes",
                          "4KiB",
                          "--max-disk-files",
                          "2",
                          NULL};
    hs_start_ok(&s, args);
    int accepted = 0;
    for (;; accepted++) {
        assert_true(accepted < 100);
        hs_reply r;
        post_numbered(&s, "paged", accepted, &r);
        if (r.status == 507) {
            numbered m;
            numbered_message(accepted, &m);
            assert_int_equal(r.len, strlen(m.body));
            assert_memory_equal(r.body, m.body, r.len);
            assert_string_equal(r.content_type, NUMBERED_TYPE);
            hs_reply_free(&r);
            break;
        }
        assert_int_equal(r.status, 202);
        hs_reply_free(&r);
    }
    assert_true(accepted > 10);
    assert_int_equal(hs_status_value(&s, "paged", "disk_files"), 2);
    for (int i = 0; i < accepted; i++)
        expect_numbered(&s, "paged", i);
    hs_expect_nothing(&s, "paged", "0", NULL);
    hs_stop_ok(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_signatures_come_back_byte_identical),
        cmocka_unit_test(test_prefixes_and_case),
        cmocka_unit_test(test_repeated_headers_each_kept_in_order),
        cmocka_unit_test(test_unlisted_headers_are_not_stored),
        cmocka_unit_test(test_most_headers),
        cmocka_unit_test(test_size_limit_counts_kept_headers),
        cmocka_unit_test(test_bad_lists_exit_2),
        cmocka_unit_test(test_status_shows_the_list),
        cmocka_unit_test(test_headers_survive_a_restart),
        cmocka_unit_test(test_headers_of_messages_on_disk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
