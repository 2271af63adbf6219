/* forward_request.c - the HTTP request of a forwarding attempt (see
 * forward_request.h). */
#include "forward_request.h"

#include "delivery.h"
#include "envelope.h"
#include "timestamp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_AFTER "Retry-After:"

/* Room for hopper's own lines, the signature's and "Expect:", besides the
 * channel's name and the stored headers. */
#define FIXED_TEXT 512

/* The line of len bytes written at the end of the text is the next header
 * line: end it with a NUL and link it. */
static void push(forward_request *r, size_t len)
{
    char *line = r->text + r->text_used;
    line[len] = '\0';
    r->text_used += len + 1;
    struct curl_slist *node = &r->lines[r->nlines];
    *node = (struct curl_slist){line, NULL};
    if (r->nlines > 0)
        r->lines[r->nlines - 1].next = node;
    r->nlines++;
}

/* Append the line "name: value" ("name;" if value is empty: curl sends
 * that as a header with an empty value, and "name:" not at all). The text
 * has room: make_room() made it. */
static void add_line(forward_request *r, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    char *line = r->text + r->text_used;
    size_t n = name_len;
    memcpy(line, name, name_len);
    if (value_len == 0) {
        line[n++] = ';';
    } else {
        line[n++] = ':';
        line[n++] = ' ';
        memcpy(line + n, value, value_len);
        n += value_len;
    }
    push(r, n);
}

static void add_text(forward_request *r, const char *name, const char *value)
{
    add_line(r, name, strlen(name), value, strlen(value));
}

/* Room in r->text for a request of env to t. False if out of memory. */
static bool make_room(forward_request *r, const forward_target *t, const envelope *env)
{
    size_t need = FIXED_TEXT + strlen(t->channel);
    for (size_t i = 0; i < env->header_count; i++)
        need += env->headers[i].name_len + env->headers[i].value_len + 3;
    r->text_used = 0;
    r->nlines = 0;
    if (need <= r->text_size)
        return true;
    char *more = realloc(r->text, need);
    if (more == NULL)
        return false;
    r->text = more;
    r->text_size = need;
    return true;
}

/* The stored headers (Content-Type first, the default if none), then
 * hopper's own, then the signature. */
static bool build_headers(forward_request *r, const forward_target *t, const envelope *env)
{
    if (!make_room(r, t, env))
        return false;
    size_t type_len, ct_len = strlen(ENVELOPE_CONTENT_TYPE);
    const char *type = envelope_find(env, ENVELOPE_CONTENT_TYPE, &type_len);
    if (type)
        add_line(r, ENVELOPE_CONTENT_TYPE, ct_len, type, type_len);
    else
        add_text(r, ENVELOPE_CONTENT_TYPE, ENVELOPE_DEFAULT_CONTENT_TYPE);
    for (size_t i = 0; i < env->header_count; i++) {
        const envelope_header *h = &env->headers[i];
        if (!(h->name_len == ct_len && strncasecmp(h->name, ENVELOPE_CONTENT_TYPE, ct_len) == 0))
            add_line(r, h->name, h->name_len, h->value, h->value_len);
    }
    char id[ENVELOPE_ID_TEXT_SIZE], number[16], when[TIMESTAMP_TEXT_SIZE];
    envelope_id_text(env, id);
    snprintf(number, sizeof number, "%" PRIu32, r->count);
    add_text(r, FORWARD_CHANNEL_HEADER, t->channel);
    add_text(r, MESSAGE_ID_HEADER, id);
    add_text(r, DELIVERY_COUNT_HEADER, number);
    if (env->received_ms > 0) {
        timestamp_text(env->received_ms, when);
        add_text(r, FORWARD_RECEIVED_AT_HEADER, when);
    }
    /* "Expect" with no value removes the header: no 100-continue round
     * trip per request */
    memcpy(r->text + r->text_used, "Expect:", 7);
    push(r, 7);
    if (t->signer) {
        char stamp[24], signature[FORWARD_SIGNATURE_SIZE];
        long long now = (long long)time(NULL);
        snprintf(stamp, sizeof stamp, "%lld", now);
        forward_sign(t->signer, id, now, env->body, env->body_len, signature);
        add_text(r, "webhook-id", id);
        add_text(r, "webhook-timestamp", stamp);
        add_text(r, "webhook-signature", signature);
    }
    return true;
}

/* Seconds a Retry-After value asks for: delta-seconds or an HTTP date;
 * -1 if neither. */
static double parse_retry_after(const char *v, size_t len)
{
    char text[64];
    while (len > 0 && isspace((unsigned char)v[len - 1]))
        len--;
    while (len > 0 && isspace((unsigned char)*v))
        v++, len--;
    if (len == 0 || len >= sizeof text)
        return -1;
    memcpy(text, v, len);
    text[len] = '\0';
    char *end;
    if (isdigit((unsigned char)text[0])) {
        double s = strtod(text, &end);
        return *end == '\0' ? s : -1;
    }
    time_t when = curl_getdate(text, NULL);
    if (when < 0)
        return -1;
    double s = difftime(when, time(NULL));
    return s > 0 ? s : 0;
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    forward_request *r = arg;
    size_t len = size * n, prefix = strlen(RETRY_AFTER);
    if (len > prefix && strncasecmp(line, RETRY_AFTER, prefix) == 0)
        r->retry_after = parse_retry_after(line + prefix, len - prefix);
    return len;
}

static size_t discard(char *data, size_t size, size_t n, void *arg)
{
    (void)data;
    (void)arg;
    return size * n;
}

/* What every request of r to t has: set once, as the easy handle is made. */
static CURL *make_easy(forward_request *r, const forward_target *t)
{
    CURL *e = curl_easy_init();
    if (e == NULL)
        return NULL;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hopper/" HOP_VERSION);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->lines);
    if (t->ca_file) {
        /* both: the system's directory of CAs, and the one given */
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    return e;
}

bool forward_request_begin(forward_request *r, const forward_target *t, const void *msg, size_t len,
                           void *private, bool *bad)
{
    r->retry_after = -1;
    envelope env;
    *bad = !envelope_decode(msg, len, &env);
    if (*bad)
        return false;
    r->count = env.returns + 1;
    if (r->easy == NULL && (r->easy = make_easy(r, t)) == NULL)
        return false;
    if (!build_headers(r, t, &env))
        return false;
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)env.body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)env.body_len);
    curl_easy_setopt(e, CURLOPT_PRIVATE, private);
    return true;
}

void forward_request_end(forward_request *r)
{
    /* the lines are rewritten by the next request; the text is kept */
    r->nlines = 0;
}

void forward_request_free(forward_request *r)
{
    if (r->easy)
        curl_easy_cleanup(r->easy);
    free(r->text);
    r->easy = NULL;
    r->text = NULL;
    r->text_size = r->text_used = r->nlines = 0;
    r->retry_after = -1;
}
