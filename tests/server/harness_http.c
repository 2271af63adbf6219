/* harness_http.c - requests to the server with libcurl, their replies, a
 * GET on a thread of its own, and numbers from /status (see harness.h). */
#include "harness.h"

#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define REQUEST_TIMEOUT_MS 30000
#define EXPECT_100_TIMEOUT_MS 20000

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

typedef struct growbuf {
    char *data;
    size_t len, cap;
} growbuf;

static size_t append(growbuf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    return append(userdata, ptr, size * nmemb);
}

typedef struct upload {
    const unsigned char *data;
    size_t len, off;
} upload;

static size_t on_read(char *buffer, size_t size, size_t nitems, void *userdata)
{
    upload *u = userdata;
    size_t n = size * nitems;
    if (n > u->len - u->off)
        n = u->len - u->off;
    if (n > 1000)
        n = 1000; /* several chunks */
    memcpy(buffer, u->data + u->off, n);
    u->off += n;
    return n;
}

static int perform(const hs_server *s, const char *method, const char *path, const void *body,
                   size_t len, const char *content_type, const char *const *extra_headers,
                   bool chunked, bool expect, hs_reply *out)
{
    pthread_once(&curl_once, curl_init);
    memset(out, 0, sizeof *out);
    CURL *c = curl_easy_init();
    if (c == NULL)
        return -1;
    char url[4096];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", s->port, path);
    growbuf data = {0}, headers = {0};
    struct curl_slist *hdrs = NULL;
    upload up = {body, len, 0};
    char type_header[1200];

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* straight to 127.0.0.1, whatever http_proxy says */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)REQUEST_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, (long)EXPECT_100_TIMEOUT_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &data);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &headers);
    /* no 100-continue round trip unless asked for */
    hdrs = curl_slist_append(hdrs, expect ? "Expect: 100-continue" : "Expect:");
    if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "GET") != 0) {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    }
    if (body || chunked) {
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        if (chunked) {
            curl_easy_setopt(c, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(c, CURLOPT_READDATA, &up);
            hdrs = curl_slist_append(hdrs, "Transfer-Encoding: chunked");
        } else {
            curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
        if (content_type) {
            snprintf(type_header, sizeof type_header, "Content-Type: %s", content_type);
            hdrs = curl_slist_append(hdrs, type_header);
        } else {
            hdrs = curl_slist_append(hdrs, "Content-Type:"); /* drop curl's default */
        }
    }
    for (size_t i = 0; extra_headers && extra_headers[i]; i++)
        hdrs = curl_slist_append(hdrs, extra_headers[i]);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);

    double start = hs_now();
    CURLcode rc = curl_easy_perform(c);
    out->seconds = hs_now() - start;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        char *type = NULL;
        curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &type);
        if (type)
            snprintf(out->content_type, sizeof out->content_type, "%s", type);
        curl_off_t uploaded = 0;
        curl_easy_getinfo(c, CURLINFO_SIZE_UPLOAD_T, &uploaded);
        out->uploaded = (double)uploaded;
    } else {
        fprintf(stderr, "harness: %s %s: %s\n", method, path, curl_easy_strerror(rc));
    }
    if (data.data == NULL)
        append(&data, "", 0);
    out->body = (unsigned char *)data.data;
    out->len = data.len;
    out->headers = headers.data ? headers.data : strdup("");
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    return rc == CURLE_OK ? 0 : -1;
}

int hs_request(const hs_server *s, const char *method, const char *path, const void *body,
               size_t len, const char *content_type, hs_reply *out)
{
    return perform(s, method, path, body, len, content_type, NULL, false, false, out);
}

int hs_get(const hs_server *s, const char *path, hs_reply *out)
{
    return perform(s, "GET", path, NULL, 0, NULL, NULL, false, false, out);
}

int hs_post(const hs_server *s, const char *path, const void *body, size_t len,
            const char *content_type, hs_reply *out)
{
    return perform(s, "POST", path, body ? body : "", len, content_type, NULL, false, false, out);
}

int hs_post_headers(const hs_server *s, const char *path, const void *body, size_t len,
                    const char *content_type, const char *const *headers, hs_reply *out)
{
    return perform(s, "POST", path, body ? body : "", len, content_type, headers, false, false,
                   out);
}

int hs_request_headers(const hs_server *s, const char *method, const char *path, const void *body,
                       size_t len, const char *content_type, const char *const *headers,
                       hs_reply *out)
{
    return perform(s, method, path, body, len, content_type, headers, false, false, out);
}

int hs_post_expect_headers(const hs_server *s, const char *path, const void *body, size_t len,
                           const char *const *headers, hs_reply *out)
{
    return perform(s, "POST", path, body, len, "text/plain", headers, false, true, out);
}

int hs_post_chunked(const hs_server *s, const char *path, const void *body, size_t len,
                    hs_reply *out)
{
    return perform(s, "POST", path, body, len, "text/plain", NULL, true, false, out);
}

int hs_post_expect(const hs_server *s, const char *path, const void *body, size_t len,
                   hs_reply *out)
{
    return perform(s, "POST", path, body, len, "text/plain", NULL, false, true, out);
}

void hs_reply_free(hs_reply *r)
{
    free(r->body);
    free(r->headers);
    r->body = NULL;
    r->headers = NULL;
}

bool hs_header(const hs_reply *r, const char *name, char *out, size_t size)
{
    size_t n = strlen(name);
    for (const char *line = r->headers; line && *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        if (len > n && line[n] == ':' && strncasecmp(line, name, n) == 0) {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            size_t vlen = (size_t)(line + len - v);
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' '))
                vlen--;
            snprintf(out, size, "%.*s", (int)vlen, v);
            return true;
        }
        line = end ? end + 1 : NULL;
    }
    return false;
}

size_t hs_header_count(const hs_reply *r, const char *name)
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

static void *pending_get_main(void *arg)
{
    hs_pending_get *g = arg;
    g->rc = hs_get(g->s, g->path, &g->reply);
    return NULL;
}

int hs_get_begin(hs_pending_get *g, const hs_server *s, const char *path)
{
    memset(g, 0, sizeof *g);
    g->s = s;
    g->rc = -1;
    snprintf(g->path, sizeof g->path, "%s", path);
    pthread_t t;
    if (pthread_create(&t, NULL, pending_get_main, g) != 0)
        return -1;
    g->thread = (unsigned long)t;
    return 0;
}

int hs_get_end(hs_pending_get *g)
{
    pthread_join((pthread_t)g->thread, NULL);
    return g->rc;
}

long hs_post_text(const hs_server *s, const char *channel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "/channels/%s", channel);
    hs_reply r;
    long status = hs_post(s, path, text, strlen(text), "text/plain", &r) == 0 ? r.status : -1;
    hs_reply_free(&r);
    return status;
}

long hs_get_text(const hs_server *s, const char *channel, const char *wait, char *out, size_t size)
{
    char path[512];
    snprintf(path, sizeof path, "/channels/%s?wait=%s", channel, wait);
    hs_reply r;
    long status = hs_get(s, path, &r) == 0 ? r.status : -1;
    if (out && size)
        snprintf(out, size, "%.*s", (int)r.len, (const char *)r.body);
    hs_reply_free(&r);
    return status;
}

bool hs_is_error(const hs_reply *r, long status, const char *code)
{
    if (r->status != status) {
        fprintf(stderr, "expected status %ld, got %ld: %.*s\n", status, r->status, (int)r->len,
                (const char *)r->body);
        return false;
    }
    if (strncmp(r->content_type, "application/json", 16) != 0) {
        fprintf(stderr, "expected a JSON error, got Content-Type '%s'\n", r->content_type);
        return false;
    }
    json_error_t e;
    json_t *doc = json_loadb((const char *)r->body, r->len, 0, &e);
    const char *got = json_string_value(json_object_get(doc, "error"));
    bool ok = got && strcmp(got, code) == 0 && json_is_string(json_object_get(doc, "message"));
    if (!ok)
        fprintf(stderr, "expected error '%s', got body: %.*s\n", code, (int)r->len,
                (const char *)r->body);
    json_decref(doc);
    return ok;
}

long long hs_status_value(const hs_server *s, const char *channel, const char *field)
{
    hs_reply r;
    long long value = -1;
    if (hs_get(s, "/status", &r) == 0 && r.status == 200) {
        json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
        json_t *v =
            json_object_get(json_object_get(json_object_get(doc, "channels"), channel), field);
        if (json_is_integer(v))
            value = json_integer_value(v);
        json_decref(doc);
    }
    hs_reply_free(&r);
    return value;
}

long long hs_budget_value(const hs_server *s, const char *field)
{
    hs_reply r;
    long long value = -1;
    if (hs_get(s, "/status", &r) == 0 && r.status == 200) {
        json_t *doc = json_loadb((const char *)r.body, r.len, 0, NULL);
        json_t *v = json_object_get(json_object_get(doc, "budget"), field);
        if (json_is_integer(v))
            value = json_integer_value(v);
        json_decref(doc);
    }
    hs_reply_free(&r);
    return value;
}

long long hs_await_status_value(const hs_server *s, const char *channel, const char *field,
                                long long value, int timeout_ms)
{
    double deadline = hs_now() + timeout_ms / 1000.0;
    long long got;
    while ((got = hs_status_value(s, channel, field)) != value && hs_now() < deadline)
        usleep(10000);
    return got;
}

long long hs_metric_value(const hs_server *s, const char *name, const char *channel)
{
    hs_reply r;
    long long value = -1;
    if (hs_get(s, "/metrics", &r) == 0 && r.status == 200) {
        char key[300];
        if (channel)
            snprintf(key, sizeof key, "\n%s{channel=\"%s\"} ", name, channel);
        else
            snprintf(key, sizeof key, "\n%s ", name);
        const char *at = strstr((const char *)r.body, key);
        value = at ? strtoll(at + strlen(key), NULL, 10) : -1;
    }
    hs_reply_free(&r);
    return value;
}
