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

/* Append "name: value" to *list. False if out of memory. */
static bool add_header(struct curl_slist **list, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    char stack[1024];
    size_t need = name_len + value_len + 3;
    char *line = need <= sizeof stack ? stack : malloc(need);
    if (line == NULL)
        return false;
    /* curl sends "Name;" as a header with an empty value, "Name:" not at all */
    snprintf(line, need, "%.*s%s%.*s", (int)name_len, name, value_len ? ": " : ";", (int)value_len,
             value);
    struct curl_slist *more = curl_slist_append(*list, line);
    if (line != stack)
        free(line);
    if (more == NULL)
        return false;
    *list = more;
    return true;
}

static bool add_text(struct curl_slist **list, const char *name, const char *value)
{
    return add_header(list, name, strlen(name), value, strlen(value));
}

/* The stored headers (Content-Type first, the default if none), then
 * hopper's own, then the signature. */
static bool build_headers(forward_request *r, const forward_target *t, const envelope *env,
                          uint32_t count)
{
    size_t type_len;
    const char *type = envelope_find(env, ENVELOPE_CONTENT_TYPE, &type_len);
    bool ok = type ? add_header(&r->headers, ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE),
                                type, type_len)
                   : add_text(&r->headers, ENVELOPE_CONTENT_TYPE, ENVELOPE_DEFAULT_CONTENT_TYPE);
    for (size_t i = 0; ok && i < env->header_count; i++) {
        const envelope_header *h = &env->headers[i];
        if (h->name_len == strlen(ENVELOPE_CONTENT_TYPE) &&
            strncasecmp(h->name, ENVELOPE_CONTENT_TYPE, h->name_len) == 0)
            continue;
        ok = add_header(&r->headers, h->name, h->name_len, h->value, h->value_len);
    }
    char id[ENVELOPE_ID_TEXT_SIZE], number[16], when[TIMESTAMP_TEXT_SIZE];
    envelope_id_text(env, id);
    snprintf(number, sizeof number, "%" PRIu32, count);
    ok = ok && add_text(&r->headers, FORWARD_CHANNEL_HEADER, t->channel) &&
         add_text(&r->headers, MESSAGE_ID_HEADER, id) &&
         add_text(&r->headers, DELIVERY_COUNT_HEADER, number);
    if (ok && env->received_ms > 0) {
        timestamp_text(env->received_ms, when);
        ok = add_text(&r->headers, FORWARD_RECEIVED_AT_HEADER, when);
    }
    /* "Expect:" removes the header: no 100-continue round trip per request */
    ok = ok && (r->headers = curl_slist_append(r->headers, "Expect:")) != NULL;
    if (ok && t->signer) {
        char stamp[24], signature[FORWARD_SIGNATURE_SIZE];
        long long now = (long long)time(NULL);
        snprintf(stamp, sizeof stamp, "%lld", now);
        forward_sign(t->signer, id, now, env->body, env->body_len, signature);
        ok = add_text(&r->headers, "webhook-id", id) &&
             add_text(&r->headers, "webhook-timestamp", stamp) &&
             add_text(&r->headers, "webhook-signature", signature);
    }
    return ok;
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

bool forward_request_begin(forward_request *r, const forward_target *t, const void *msg, size_t len,
                           uint32_t count, void *private, bool *bad)
{
    r->headers = NULL;
    r->retry_after = -1;
    if (r->easy)
        curl_easy_reset(r->easy); /* keeps its connection and DNS caches */
    else
        r->easy = curl_easy_init();
    envelope env;
    *bad = !envelope_decode(msg, len, &env);
    if (*bad || r->easy == NULL || !build_headers(r, t, &env, count)) {
        forward_request_end(r);
        return false;
    }
    CURL *e = r->easy;
    curl_easy_setopt(e, CURLOPT_URL, t->url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, (const char *)env.body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)env.body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(t->timeout * 1000));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "hopper/" HOP_VERSION);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(e, CURLOPT_PRIVATE, private);
    if (t->ca_file) {
        /* both: the system's directory of CAs, and the one given */
        curl_easy_setopt(e, CURLOPT_CAINFO, t->ca_file);
        curl_easy_setopt(e, CURLOPT_CAPATH, "/etc/ssl/certs");
    }
    return true;
}

void forward_request_end(forward_request *r)
{
    curl_slist_free_all(r->headers);
    r->headers = NULL;
}

void forward_request_free(forward_request *r)
{
    forward_request_end(r);
    if (r->easy)
        curl_easy_cleanup(r->easy);
    *r = (forward_request){.retry_after = -1};
}
