/* test_forward_util.c - what the forwarding tests share (declared at the
 * end of receiver.h): the --forward value for the receiver, the Hopper-*
 * headers of a recorded request, a delivery that must have come, and the
 * forward object of /status and the samples of /metrics. */
#include "harness.h"
#include "test_forward_util.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

void fw_rule(const rc_receiver *r, const char *name, const char *path, char *out, size_t size)
{
    snprintf(out, size, "%s=%s%s", name, rc_url(r), path);
}

bool fw_is_message_id(const char *text)
{
    if (text == NULL || strlen(text) != 32)
        return false;
    for (size_t i = 0; i < 32; i++) {
        if (!strchr("0123456789abcdef", text[i]))
            return false;
    }
    return true;
}

const char *fw_id(const rc_request *req)
{
    const char *id = rc_header_value(req, "Hopper-Message-Id");
    return id ? id : "";
}

long fw_delivery_count(const rc_request *req)
{
    const char *v = rc_header_value(req, "Hopper-Delivery-Count");
    if (v == NULL || *v < '0' || *v > '9')
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    return *end ? -1 : n;
}

const rc_request *fw_expect_delivery(rc_receiver *r, size_t i, const char *channel,
                                     const char *body, long count)
{
    if (!rc_wait_requests(r, i + 1, HS_PATIENCE_MS))
        fail_msg("request %zu never came (%zu came)", i, rc_count(r));
    const rc_request *req = rc_request_at(r, i);
    const char *got_channel = rc_header_value(req, "Hopper-Channel");
    if (strcmp(req->method, "POST") != 0)
        fail_msg("request %zu: %s, not POST", i, req->method);
    if (got_channel == NULL || strcmp(got_channel, channel) != 0)
        fail_msg("request %zu: Hopper-Channel '%s', expected '%s'", i,
                 got_channel ? got_channel : "(none)", channel);
    if (req->body_len != strlen(body) || memcmp(req->body, body, req->body_len) != 0)
        fail_msg("request %zu: body '%.*s', expected '%s'", i, (int)req->body_len,
                 (const char *)req->body, body);
    if (!fw_is_message_id(fw_id(req)))
        fail_msg("request %zu: Hopper-Message-Id '%s' is not 32 lowercase hex digits", i,
                 fw_id(req));
    if (count != 0 && fw_delivery_count(req) != count)
        fail_msg("request %zu ('%s'): Hopper-Delivery-Count %ld, expected %ld", i, body,
                 fw_delivery_count(req), count);
    return req;
}

/* ---- /status and /metrics ---- */

/* GET /status: channels.<channel>.forward.<field> (new reference), or
 * NULL. */
static json_t *forward_field(const hs_server *s, const char *channel, const char *field)
{
    hs_reply r;
    json_t *value = NULL;
    if (hs_get(s, "/status", &r) == 0 && r.status == 200) {
        json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
        json_t *channels = json_object_get(doc, "channels");
        value =
            json_object_get(json_object_get(json_object_get(channels, channel), "forward"), field);
        json_incref(value);
        json_decref(doc);
    }
    hs_reply_free(&r);
    return value;
}

double fw_forward_number(const hs_server *s, const char *channel, const char *field)
{
    json_t *v = forward_field(s, channel, field);
    double n = json_is_number(v) ? json_number_value(v) : -1;
    json_decref(v);
    return n;
}

bool fw_forward_string(const hs_server *s, const char *channel, const char *field, char *out,
                       size_t size)
{
    json_t *v = forward_field(s, channel, field);
    bool found = json_is_string(v);
    snprintf(out, size, "%s", found ? json_string_value(v) : "");
    json_decref(v);
    return found;
}

double fw_await_forward_number(const hs_server *s, const char *channel, const char *field,
                               double min, int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    double got;
    while ((got = fw_forward_number(s, channel, field)) < min && hs_now() < deadline)
        usleep(10000);
    return got;
}

/* Whether the label set labels[0..len) ("{a="x",b="y"}" without braces)
 * holds label. */
static bool has_label(const char *labels, size_t len, const char *label)
{
    size_t n = strlen(label);
    for (const char *at = labels; at + n <= labels + len; at++) {
        if (memcmp(at, label, n) == 0 && (at == labels || at[-1] == ',') &&
            (at + n == labels + len || at[n] == ','))
            return true;
    }
    return false;
}

double fw_metric(const hs_server *s, const char *name, const char *label1, const char *label2)
{
    hs_reply r;
    double value = -1;
    if (hs_get(s, "/metrics", &r) != 0 || r.status != 200) {
        hs_reply_free(&r);
        return -1;
    }
    size_t n = strlen(name);
    for (const char *line = (const char *)r.body; line && *line;) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, name, n) == 0 && line[n] == '{') {
            const char *labels = line + n + 1;
            const char *close = strchr(labels, '}');
            if (close && (!end || close < end) &&
                has_label(labels, (size_t)(close - labels), label1) &&
                (label2 == NULL || has_label(labels, (size_t)(close - labels), label2))) {
                value = strtod(close + 1, NULL);
                break;
            }
        }
        line = end ? end + 1 : NULL;
    }
    hs_reply_free(&r);
    return value;
}

int fw_fixture_teardown(void **state)
{
    fw_fixture *f = *state;
    rc_stop(f->r);
    hs_remove_tree(f->dir);
    free(f);
    return 0;
}
