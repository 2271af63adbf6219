/* harness_expect.c - the asserting helpers of harness.h: start and stop a
 * server that must start and stop cleanly, requests whose answer must be
 * a given status, body or JSON error, counts in /status that must be
 * reached, a waiting GET that must wait and then be answered, and the
 * requests of leases (take, acknowledge, release, extend).
 *
 * Each one fails the test with cmocka's fail_msg() when what it checks
 * does not hold, after freeing what it holds (a reply), so that a failure
 * leaks nothing for LeakSanitizer to report on top. */
#include "harness.h"

#include <ctype.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

/* The first bytes of a body, for a failure message. */
#define SHOWN_BYTES 200

static int shown(const hs_reply *r)
{
    return (int)(r->len < SHOWN_BYTES ? r->len : SHOWN_BYTES);
}

/* Free r, then fail with why (when it is not empty). */
static void fail_freeing(hs_reply *r, const char *why)
{
    hs_reply_free(r);
    if (why[0])
        fail_msg("%s", why);
}

/* ---- servers ---- */

void hs_start_ok(hs_server *s, const char *const *args)
{
    assert_int_equal(hs_start(s, args), 0);
}

void hs_start_env_ok(hs_server *s, const char *const *args, const char *const *env)
{
    assert_int_equal(hs_start_env(s, args, env), 0);
}

void hs_start_in_ok(hs_server *s, const char *dir, const char *const *args)
{
    assert_int_equal(hs_start_in(s, dir, args), 0);
}

void hs_start_in_env_ok(hs_server *s, const char *dir, const char *const *args,
                        const char *const *env)
{
    assert_int_equal(hs_start_in_env(s, dir, args, env), 0);
}

void hs_stop_ok(hs_server *s)
{
    assert_int_equal(hs_stop(s), 0);
}

void hs_stop_saying(hs_server *s, const char *line)
{
    kill(s->pid, SIGTERM);
    if (!hs_log_wait(s, line, HS_PATIENCE_MS))
        fail_msg("the shutdown log does not say '%s'", line);
    hs_stop_ok(s);
}

/* ---- requests ---- */

void hs_expect_post_bytes(const hs_server *s, const char *channel, const void *body, size_t len,
                          const char *content_type, long status)
{
    char path[512], why[1024] = "";
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    assert_int_equal(hs_post(s, path, body, len, content_type, &r), 0);
    if (r.status != status)
        snprintf(why, sizeof why, "POST %s: expected %ld, got %ld '%.*s'", path, status, r.status,
                 shown(&r), (const char *)r.body);
    fail_freeing(&r, why);
}

void hs_expect_post(const hs_server *s, const char *channel, const char *text, long status)
{
    hs_expect_post_bytes(s, channel, text, strlen(text), "text/plain", status);
}

void hs_expect_get(const hs_server *s, const char *channel, const char *wait, const char *text)
{
    char path[512], why[1024] = "";
    snprintf(path, sizeof path, "/channels/%s?wait=%s", channel, wait);
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    if (r.status != 200 || r.len != strlen(text) || memcmp(r.body, text, r.len) != 0)
        snprintf(why, sizeof why, "GET %s: expected 200 '%s', got %ld '%.*s'", path, text, r.status,
                 shown(&r), (const char *)r.body);
    fail_freeing(&r, why);
}

void hs_expect_message(const hs_server *s, const char *channel, const void *body, size_t len,
                       const char *content_type)
{
    char path[512], why[4096] = "";
    snprintf(path, sizeof path, "/channels/%s?wait=0", channel);
    hs_reply r;
    assert_int_equal(hs_get(s, path, &r), 0);
    if (r.status != 200 || r.len != len || memcmp(r.body, body, len) != 0)
        snprintf(why, sizeof why, "GET %s: expected 200 with %zu bytes, got %ld with %zu: '%.*s'",
                 path, len, r.status, r.len, shown(&r), (const char *)r.body);
    else if (content_type && strcmp(r.content_type, content_type) != 0)
        snprintf(why, sizeof why, "GET %s: expected Content-Type '%s', got '%s'", path,
                 content_type, r.content_type);
    fail_freeing(&r, why);
}

void hs_expect_nothing(const hs_server *s, const char *channel, const char *wait, const char *lease)
{
    hs_reply r;
    long status = hs_get_leased(s, channel, wait, lease, &r);
    char why[1024] = "";
    if (status != 204)
        snprintf(why, sizeof why, "GET %s?wait=%s%s%s: expected 204, got %ld '%.*s'", channel, wait,
                 lease ? "&lease=" : "", lease ? lease : "", status, shown(&r),
                 (const char *)r.body);
    fail_freeing(&r, why);
}

void hs_expect_request(const hs_server *s, const char *method, const char *path, long status)
{
    hs_reply r;
    assert_int_equal(hs_request(s, method, path, NULL, 0, NULL, &r), 0);
    char why[1024] = "";
    if (r.status != status)
        snprintf(why, sizeof why, "%s %s: expected %ld, got %ld '%.*s'", method, path, status,
                 r.status, shown(&r), (const char *)r.body);
    fail_freeing(&r, why);
}

void hs_expect_error(const hs_server *s, const char *method, const char *path, long status,
                     const char *code)
{
    hs_reply r;
    assert_int_equal(hs_request(s, method, path, NULL, 0, NULL, &r), 0);
    char why[1024] = "";
    if (!hs_is_error(&r, status, code)) /* it printed what differs */
        snprintf(why, sizeof why, "%s %s: expected %ld %s", method, path, status, code);
    fail_freeing(&r, why);
}

void hs_expect_post_error(const hs_server *s, const char *path, const void *body, size_t len,
                          const char *content_type, long status, const char *code)
{
    hs_reply r;
    assert_int_equal(hs_post(s, path, body, len, content_type, &r), 0);
    char why[1024] = "";
    if (!hs_is_error(&r, status, code))
        snprintf(why, sizeof why, "POST %s: expected %ld %s", path, status, code);
    fail_freeing(&r, why);
}

void hs_await_status_ok(const hs_server *s, const char *channel, const char *field, long long value)
{
    long long got = hs_await_status_value(s, channel, field, value, HS_PATIENCE_MS);
    if (got != value)
        fail_msg("%s of %s is %lld, expected %lld", field, channel, got, value);
}

/* ---- a waiting GET ---- */

void hs_get_begin_ok(hs_pending_get *g, const hs_server *s, const char *path)
{
    assert_int_equal(hs_get_begin(g, s, path), 0);
}

void hs_get_await_waiting(hs_pending_get *g, const char *channel, long long n)
{
    long long waiting =
        hs_await_status_value(g->s, channel, "waiting_receivers", n, HS_PATIENCE_MS);
    if (waiting == n)
        return;
    /* not with its thread still writing into g */
    hs_get_end(g);
    hs_reply_free(&g->reply);
    fail_msg("GET %s: waiting_receivers of %s is %lld, expected %lld", g->path, channel, waiting,
             n);
}

void hs_get_end_ok(hs_pending_get *g, long status)
{
    int rc = hs_get_end(g);
    char why[1200] = "";
    if (rc != 0 || g->reply.status != status)
        snprintf(why, sizeof why, "GET %s: expected %ld, got %s%ld '%.*s'", g->path, status,
                 rc != 0 ? "no answer, " : "", g->reply.status, shown(&g->reply),
                 g->reply.body ? (const char *)g->reply.body : "");
    if (why[0])
        fail_freeing(&g->reply, why);
}

/* ---- leases ---- */

/* text is exactly len lowercase hex digits. */
static bool is_hex(const char *text, size_t len)
{
    if (strlen(text) != len)
        return false;
    for (const char *p = text; *p; p++) {
        if (!isdigit((unsigned char)*p) && !(*p >= 'a' && *p <= 'f'))
            return false;
    }
    return true;
}

bool hs_is_receipt(const char *text)
{
    return is_hex(text, HS_RECEIPT_LEN);
}

bool hs_is_message_id(const char *text)
{
    return is_hex(text, HS_MESSAGE_ID_LEN);
}

void hs_expect_message_id(hs_reply *r, char id[HS_MESSAGE_ID_LEN + 1])
{
    char got[64] = "", why[600];
    if (hs_header_count(r, "Hopper-Message-Id") != 1 ||
        !hs_header(r, "Hopper-Message-Id", got, sizeof got) || !hs_is_message_id(got)) {
        snprintf(why, sizeof why, "expected one Hopper-Message-Id of 32 hex digits, headers:\n%s",
                 r->headers);
        fail_freeing(r, why);
    }
    memcpy(id, got, HS_MESSAGE_ID_LEN + 1);
}

long hs_delivery_count(const hs_reply *r)
{
    char v[32];
    if (!hs_header(r, "Hopper-Delivery-Count", v, sizeof v) || !isdigit((unsigned char)v[0]))
        return -1;
    return strtol(v, NULL, 10);
}

long hs_get_leased(const hs_server *s, const char *channel, const char *wait, const char *lease,
                   hs_reply *out)
{
    char path[512];
    if (lease)
        snprintf(path, sizeof path, "/channels/%s?wait=%s&lease=%s", channel, wait, lease);
    else
        snprintf(path, sizeof path, "/channels/%s?wait=%s", channel, wait);
    assert_int_equal(hs_get(s, path, out), 0);
    return out->status;
}

void hs_expect_leased(const hs_server *s, const char *channel, const char *wait, const char *lease,
                      const char *body, const char *content_type, long count,
                      char receipt[HS_RECEIPT_LEN + 1])
{
    hs_reply r;
    long status = hs_get_leased(s, channel, wait, lease, &r);
    char why[2048] = "", got[128] = "";
    if (status != 200 || r.len != strlen(body) || memcmp(r.body, body, r.len) != 0)
        snprintf(why, sizeof why, "GET %s?wait=%s&lease=%s: expected 200 '%s', got %ld '%.*s'",
                 channel, wait, lease, body, status, shown(&r), (const char *)r.body);
    else if (content_type && strcmp(r.content_type, content_type) != 0)
        snprintf(why, sizeof why, "'%s': expected Content-Type %s, got %s", body, content_type,
                 r.content_type);
    else if (hs_delivery_count(&r) != count)
        snprintf(why, sizeof why, "'%s': expected Hopper-Delivery-Count %ld, headers:\n%s", body,
                 count, r.headers);
    else if (!hs_header(&r, "Hopper-Receipt", got, sizeof got) || !hs_is_receipt(got))
        snprintf(why, sizeof why, "'%s': no receipt of 32 lowercase hex digits, headers:\n%s", body,
                 r.headers);
    fail_freeing(&r, why);
    if (receipt)
        memcpy(receipt, got, HS_RECEIPT_LEN + 1);
}

long hs_on_receipt(const hs_server *s, const char *method, const char *channel, const char *receipt,
                   const char *action, hs_reply *out)
{
    char path[512];
    snprintf(path, sizeof path, "/channels/%s/messages/%s%s%s", channel, receipt, action ? "/" : "",
             action ? action : "");
    assert_int_equal(hs_request(s, method, path, NULL, 0, NULL, out), 0);
    return out->status;
}

/* method on a receipt (see hs_on_receipt): status, with code the JSON
 * error, and a 204 empty. */
static void expect_on_receipt(const hs_server *s, const char *method, const char *channel,
                              const char *receipt, const char *action, long status,
                              const char *code)
{
    hs_reply r;
    long got = hs_on_receipt(s, method, channel, receipt, action, &r);
    char why[1024] = "";
    if ((code ? !hs_is_error(&r, status, code) : got != status) || (status == 204 && r.len != 0))
        snprintf(why, sizeof why, "%s %s/messages/%s%s%s: expected %ld %s, got %ld '%.*s'", method,
                 channel, receipt, action ? "/" : "", action ? action : "", status,
                 code ? code : "", got, shown(&r), (const char *)r.body);
    fail_freeing(&r, why);
}

void hs_expect_ack(const hs_server *s, const char *channel, const char *receipt, long status,
                   const char *code)
{
    expect_on_receipt(s, "DELETE", channel, receipt, NULL, status, code);
}

void hs_expect_release(const hs_server *s, const char *channel, const char *receipt, long status,
                       const char *code)
{
    expect_on_receipt(s, "POST", channel, receipt, "release", status, code);
}

void hs_expect_extend(const hs_server *s, const char *channel, const char *receipt,
                      const char *lease, long status, const char *code)
{
    char action[128];
    snprintf(action, sizeof action, "extend?lease=%s", lease);
    expect_on_receipt(s, "POST", channel, receipt, action, status, code);
}

void hs_send_all(int fd, const char *text)
{
    assert_int_equal(send(fd, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}
