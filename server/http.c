/* http.c - the MHD daemon, routing and every handler (see http.h).
 *
 * Request life: MHD calls on_uri() with the raw request-target as soon as
 * the request line is read; that creates the request context, so the
 * completion callback is its one place of release. The access handler is
 * then called once with the headers (request_begin: route, validate,
 * reserve), once per chunk of body (request_upload), and once more when the
 * request is complete (request_finish), and again after a suspended GET is
 * resumed.
 *
 * Responses are queued from the final call so the connection stays
 * reusable. The body of a refused request is read and dropped first (up to
 * DISCARD_LIMIT); only a client that waits for "100 Continue", or announces
 * a body beyond that limit, is answered from the first call, without
 * reading the body and without keeping the connection.
 *
 * Paths: the name in /channels/NAME is everything after the prefix,
 * percent-decoded by us from the raw target (MHD's decoded URL cuts at a
 * decoded %00, which must not pass). A name with '/', NUL or any character
 * outside [A-Za-z0-9._-] is 400 bad_name, so /channels/a/b and
 * /channels/a%2Fb are both 400. */
#include "http.h"

#include "datadir.h"
#include "envelope.h"
#include "errors.h"
#include "hopper/hopper.h"
#include "keep_headers.h"
#include "log.h"
#include "longpoll.h"
#include "registry.h"
#include "status.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Idle connections are closed after this; suspended (waiting) GETs are not
 * idle, MHD does not time them out. */
#define IDLE_TIMEOUT_SECONDS 60
/* Upper bound of simultaneous connections (also held to 3/4 of the file
 * descriptor limit). */
#define MAX_CONNECTIONS 16384
/* wait of a GET that does not say (held to --max-wait). */
#define DEFAULT_WAIT_SECONDS 30.0
#define RETRY_AFTER_SECONDS "1"
#define CHANNELS_PREFIX "/channels/"
/* Body bytes of a refused request that are read and dropped so that the
 * client gets its answer on a clean connection; beyond, the connection is
 * closed. */
#define DISCARD_LIMIT ((size_t)64 << 20)
/* First buffer of a POST body of unknown length; it doubles as needed. */
#define INITIAL_BODY_BUFFER (64 * 1024)

static struct {
    struct MHD_Daemon *daemon;
    server_options options;
    atomic_bool started; /* MHD messages are rate-limited from then on */
    atomic_bool stopping;
    atomic_size_t in_flight; /* request contexts alive */
} http;

typedef enum route {
    ROUTE_ERROR, /* answer req->error */
    ROUTE_HEALTHZ,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_POST, /* POST /channels/NAME */
    ROUTE_GET,  /* GET /channels/NAME */
} route;

typedef struct request {
    char *target; /* the raw request-target (path?query), new */
    bool started; /* request_begin() ran */
    bool answered_early;
    size_t discarded; /* body bytes of a refused request read and dropped */
    route route;
    api_error error;   /* ROUTE_ERROR: the answer */
    char message[192]; /* ROUTE_ERROR: its message, "" for the table's */
    const char *allow; /* the Allow header of a 405 */
    char name[HOP_NAME_MAX + 1];
    registry_entry *entry; /* the channel, once looked up or created */

    /* POST */
    char *content_type; /* as sent, NULL when absent or empty; new */
    unsigned char *buf; /* the envelope: prefix, then the body as it arrives */
    size_t prefix_len, body_len, cap;
    size_t kept_bytes; /* names and values of the kept headers: they count
                          toward --max-message-bytes with the body */
    /* A durable POST waits for its sync with the connection suspended, so
     * that the senders of a channel share syncs without a thread each. */
    bool syncing;              /* sent with hop_send_async(): sync_lock initialised */
    pthread_mutex_t sync_lock; /* guards synced and sent; orders resume after suspend */
    bool synced;               /* the callback ran: sent is the outcome */
    hop_err sent;
    struct MHD_Connection *conn;

    /* GET */
    uint64_t wait_ms;
    bool polling; /* lp is initialised */
    longpoll lp;
    void *msg; /* the message a queued 200 carries; settled on completion */
    size_t msg_len;
    char *msg_type; /* its Content-Type, NUL-terminated; new */
} request;

/* ---- responses ---- */

static enum MHD_Result queue(struct MHD_Connection *conn, unsigned int status,
                             struct MHD_Response *response)
{
    if (response == NULL)
        return MHD_NO; /* out of memory: drop the connection */
    if (atomic_load(&http.stopping))
        MHD_add_response_header(response, MHD_HTTP_HEADER_CONNECTION, "close");
    enum MHD_Result result = MHD_queue_response(conn, status, response);
    MHD_destroy_response(response);
    return result;
}

static enum MHD_Result respond_static(struct MHD_Connection *conn, unsigned int status,
                                      const char *content_type, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (r && content_type)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return queue(conn, status, r);
}

/* Takes text (malloc'ed); NULL means out of memory. */
static enum MHD_Result respond_owned(struct MHD_Connection *conn, const char *content_type,
                                     char *text, size_t len)
{
    if (text == NULL)
        return queue(conn, api_error_status(API_NOMEM), api_error_response(API_NOMEM, NULL));
    struct MHD_Response *r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (r == NULL) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    return queue(conn, MHD_HTTP_OK, r);
}

static enum MHD_Result respond_error(request *req, struct MHD_Connection *conn, api_error err)
{
    const char *message = req->error == err && req->message[0] ? req->message : NULL;
    struct MHD_Response *r = api_error_response(err, message);
    if (r && err == API_METHOD_NOT_ALLOWED)
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, req->allow);
    return queue(conn, api_error_status(err), r);
}

static enum MHD_Result respond_no_content(struct MHD_Connection *conn)
{
    return respond_static(conn, MHD_HTTP_NO_CONTENT, NULL, "");
}

/* Make req an error to answer; message NULL keeps the table's text. */
static void fail(request *req, api_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void fail(request *req, api_error err, const char *fmt, ...)
{
    req->route = ROUTE_ERROR;
    req->error = err;
    req->message[0] = '\0';
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(req->message, sizeof req->message, fmt, ap);
        va_end(ap);
    }
}

/* ---- routing ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The path of target (up to '?'), percent-decoded; a '%' not followed by
 * two hex digits stays as it is. New; NULL if out of memory. OUT: *len
 * (the result may hold NUL bytes). */
static char *decode_path(const char *target, size_t *len)
{
    size_t n = strcspn(target, "?");
    char *out = malloc(n + 1);
    if (out == NULL)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (target[i] == '%' && i + 2 < n && (hi = hex_value(target[i + 1])) >= 0 &&
            (lo = hex_value(target[i + 2])) >= 0) {
            out[j++] = (char)(hi * 16 + lo);
            i += 2;
        } else {
            out[j++] = target[i];
        }
    }
    out[j] = '\0';
    *len = j;
    return out;
}

static bool path_is(const char *path, size_t len, const char *literal)
{
    return len == strlen(literal) && memcmp(path, literal, len) == 0;
}

/* The paths that describe the server; GET or HEAD only. */
static const struct {
    const char *path;
    route route;
} info_paths[] = {
    {"/healthz", ROUTE_HEALTHZ},
    {"/status", ROUTE_STATUS},
    {"/metrics", ROUTE_METRICS},
};

/* Set req->route (and req->name) from the target and the method. */
static void route_request(request *req, const char *method)
{
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0;
    bool head = strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    size_t len;
    char *path = decode_path(req->target, &len);
    if (path == NULL) {
        fail(req, API_NOMEM, NULL);
        return;
    }
    size_t prefix = strlen(CHANNELS_PREFIX);
    fail(req, API_NOT_FOUND, NULL); /* unless a rule below matches */

    for (size_t i = 0; i < sizeof info_paths / sizeof info_paths[0]; i++) {
        if (!path_is(path, len, info_paths[i].path))
            continue;
        if (get || head) {
            req->route = info_paths[i].route;
        } else {
            req->allow = "GET, HEAD";
            fail(req, API_METHOD_NOT_ALLOWED, NULL);
        }
    }
    if (len >= prefix && memcmp(path, CHANNELS_PREFIX, prefix) == 0) {
        const char *name = path + prefix;
        size_t name_len = len - prefix;
        if (name_len > HOP_NAME_MAX || memchr(name, '\0', name_len) || !hop_name_valid(name)) {
            fail(req, API_BAD_NAME, NULL);
        } else if (datadir_name_reserved(name)) {
            fail(req, API_BAD_NAME, "%s is reserved: it is a file of the data directory", name);
        } else if (get || post) {
            memcpy(req->name, name, name_len + 1);
            req->route = get ? ROUTE_GET : ROUTE_POST;
        } else {
            req->allow = "GET, POST";
            fail(req, API_METHOD_NOT_ALLOWED, NULL);
        }
    }
    free(path);
}

/* True if an error should be answered before the body is read: the client
 * waits for "100 Continue" and so has sent nothing yet, or the declared
 * body is beyond DISCARD_LIMIT. Otherwise the body is read and dropped
 * first: closing a connection with unread data resets it, and the client
 * may then never see its answer. */
static bool answer_before_body(struct MHD_Connection *conn)
{
    const char *expect = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_EXPECT);
    if (expect && strcasecmp(expect, "100-continue") == 0)
        return true;
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    return length && strtoull(length, NULL, 10) > DISCARD_LIMIT;
}

/* ---- POST /channels/NAME ---- */

static void count_too_big(request *req)
{
    /* only for channels that exist: a refused message creates nothing */
    registry_entry *e = req->entry ? req->entry : registry_find(req->name);
    if (e)
        atomic_fetch_add(&e->too_big_total, 1);
}

/* The largest body req may have: --max-message-bytes less its kept
 * headers (which post_begin() checked fit). */
static size_t body_max(const request *req)
{
    return http.options.max_message_bytes - req->kept_bytes;
}

static void fail_too_big(request *req)
{
    count_too_big(req);
    if (req->kept_bytes > 0)
        fail(req, API_TOO_BIG,
             "the body and the %zu bytes of kept headers are larger than --max-message-bytes "
             "(%zu bytes)",
             req->kept_bytes, http.options.max_message_bytes);
    else
        fail(req, API_TOO_BIG, "the message is larger than --max-message-bytes (%zu bytes)",
             http.options.max_message_bytes);
}

/* The headers a POST stores, in the order of the envelope: Content-Type,
 * then the request headers --keep-headers names, in the request's order. */
typedef struct stored_headers {
    envelope_header headers[ENVELOPE_MAX_HEADERS]; /* borrowed from MHD */
    size_t count;
    bool too_many;      /* more to store than ENVELOPE_MAX_HEADERS */
    bool name_too_long; /* a name beyond what the envelope can hold */
    size_t kept_bytes;  /* names and values of those after Content-Type */
} stored_headers;

/* MHD_get_connection_values_n()'s iterator: add a request header to the
 * stored_headers cls if it is to be kept. Names and values are MHD's, with
 * their lengths, so stored exactly as MHD received them. */
static enum MHD_Result store_kept_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                         size_t name_len, const char *value, size_t value_len)
{
    (void)kind;
    stored_headers *st = cls;
    size_t type_len = strlen(ENVELOPE_CONTENT_TYPE);
    if (name_len == type_len && strncasecmp(name, ENVELOPE_CONTENT_TYPE, type_len) == 0)
        return MHD_YES; /* always stored, once, first */
    if (!keep_headers_match(&http.options.keep_headers, name, name_len))
        return MHD_YES;
    if (st->count == ENVELOPE_MAX_HEADERS) {
        st->too_many = true;
        return MHD_NO;
    }
    /* cannot happen while MHD's connection memory (32 KiB by default) holds
     * the whole header block; checked, since the envelope's u16 would wrap */
    if (name_len > ENVELOPE_MAX_NAME) {
        st->name_too_long = true;
        return MHD_NO;
    }
    st->headers[st->count++] = (envelope_header){name, name_len, value, value_len};
    st->kept_bytes += name_len + value_len;
    return MHD_YES;
}

/* Fill st with the headers req stores. False, with req failed, if the
 * request has more than the envelope holds. */
static bool collect_headers(request *req, struct MHD_Connection *conn, stored_headers *st)
{
    st->headers[0] =
        (envelope_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE),
                          req->content_type ? req->content_type : ENVELOPE_DEFAULT_CONTENT_TYPE, 0};
    st->headers[0].value_len = strlen(st->headers[0].value);
    st->count = 1;
    st->too_many = st->name_too_long = false;
    st->kept_bytes = 0;
    if (http.options.keep_headers.count > 0)
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, store_kept_header, st);
    if (st->too_many) {
        fail(req, API_TOO_MANY_HEADERS,
             "the request has more headers that --keep-headers keeps than the %d a message "
             "stores, Content-Type included",
             ENVELOPE_MAX_HEADERS);
        return false;
    }
    if (st->name_too_long) {
        fail(req, API_INTERNAL, "a header name to keep is longer than %d bytes", ENVELOPE_MAX_NAME);
        return false;
    }
    return true;
}

static void post_begin(request *req, struct MHD_Connection *conn)
{
    const char *type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type && type[0] != '\0') {
        if (strlen(type) > ENVELOPE_MAX_CONTENT_TYPE) {
            fail(req, API_BAD_CONTENT_TYPE, NULL);
            return;
        }
        if ((req->content_type = strdup(type)) == NULL) {
            fail(req, API_NOMEM, NULL);
            return;
        }
    }
    stored_headers st;
    if (!collect_headers(req, conn, &st))
        return;
    req->kept_bytes = st.kept_bytes;
    if (req->kept_bytes > http.options.max_message_bytes) {
        fail_too_big(req);
        return;
    }
    size_t max = body_max(req);

    /* a declared length over the limit is refused before any byte is read */
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    size_t declared = 0;
    bool known = false;
    if (length) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(length, &end, 10);
        known = errno == 0 && end != length && *end == '\0' && length[0] != '-';
        if (known && v > max) {
            fail_too_big(req);
            return;
        }
        declared = (size_t)v;
    }

    api_error err = registry_get(req->name, &req->entry);
    if (err != API_OK) {
        if (err == API_TOO_MANY_CHANNELS)
            fail(req, err, "creating channel %s would exceed --max-channels (%zu)", req->name,
                 http.options.max_channels);
        else
            fail(req, err, NULL);
        return;
    }

    req->prefix_len = envelope_prefix_size(st.headers, st.count);
    size_t first = known ? declared : (max < INITIAL_BODY_BUFFER ? max : INITIAL_BODY_BUFFER);
    req->cap = req->prefix_len + first;
    if ((req->buf = malloc(req->cap)) == NULL) {
        fail(req, API_NOMEM, NULL);
        return;
    }
    envelope_write_prefix(req->buf, st.headers, st.count);
}

static void post_upload(request *req, const char *data, size_t size)
{
    size_t max = body_max(req);
    if (size > max - req->body_len) {
        fail_too_big(req); /* the rest of the body is read and dropped */
        return;
    }
    size_t need = req->prefix_len + req->body_len + size;
    if (need > req->cap) {
        size_t cap = req->cap * 2;
        if (cap < need)
            cap = need;
        if (cap > req->prefix_len + max)
            cap = req->prefix_len + max;
        unsigned char *buf = realloc(req->buf, cap);
        if (buf == NULL) {
            fail(req, API_NOMEM, NULL);
            return;
        }
        req->buf = buf;
        req->cap = cap;
    }
    memcpy(req->buf + req->prefix_len + req->body_len, data, size);
    req->body_len += size;
}

/* 507: the caller gets its exact payload back, to keep or send elsewhere. */
static enum MHD_Result respond_full(request *req, struct MHD_Connection *conn)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(req->body_len, req->buf + req->prefix_len,
                                        MHD_RESPMEM_PERSISTENT); /* freed on completion */
    if (r) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                req->content_type ? req->content_type
                                                  : ENVELOPE_DEFAULT_CONTENT_TYPE);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_SECONDS);
    }
    return queue(conn, MHD_HTTP_INSUFFICIENT_STORAGE, r);
}

/* The answer to a POST once the channel has said err. */
static enum MHD_Result post_answer(request *req, struct MHD_Connection *conn, hop_err err)
{
    registry_note_send(req->entry, err);
    switch (err) {
    case HOP_OK:
        return respond_static(conn, MHD_HTTP_ACCEPTED, "application/json",
                              "{\"status\":\"accepted\"}");
    case HOP_FULL:
        return respond_full(req, conn);
    case HOP_TOO_BIG:
        fail_too_big(req);
        return respond_error(req, conn, API_TOO_BIG);
    default: /* HOP_IO is logged by the core */
        return respond_error(req, conn, api_error_of_hop(err));
    }
}

/* hop_send_async()'s callback, on a sync thread: the outcome is in. */
static void on_synced(void *arg, hop_err err, int err_no)
{
    (void)err_no; /* the core logs it */
    request *req = arg;
    pthread_mutex_lock(&req->sync_lock);
    req->sent = err;
    req->synced = true;
    MHD_resume_connection(req->conn);
    pthread_mutex_unlock(&req->sync_lock);
}

/* A durable POST: written now, answered once synced (on resumption). */
static enum MHD_Result post_durable(request *req, struct MHD_Connection *conn)
{
    if (req->syncing) { /* resumed */
        pthread_mutex_lock(&req->sync_lock);
        hop_err err = req->sent;
        pthread_mutex_unlock(&req->sync_lock);
        return post_answer(req, conn, err);
    }
    req->syncing = true;
    req->conn = conn;
    pthread_mutex_init(&req->sync_lock, NULL);
    /* Hold the lock across the send: the callback may come before the
     * connection is suspended, and must resume it only after. */
    pthread_mutex_lock(&req->sync_lock);
    hop_err err =
        hop_send_async(req->entry->ch, req->buf, req->prefix_len + req->body_len, on_synced, req);
    if (err == HOP_OK)
        MHD_suspend_connection(conn);
    pthread_mutex_unlock(&req->sync_lock);
    return err == HOP_OK ? MHD_YES : post_answer(req, conn, err);
}

static enum MHD_Result post_finish(request *req, struct MHD_Connection *conn)
{
    if (http.options.durable)
        return post_durable(req, conn);
    return post_answer(req, conn,
                       hop_send(req->entry->ch, req->buf, req->prefix_len + req->body_len));
}

/* ---- GET /channels/NAME ---- */

static void get_begin(request *req, struct MHD_Connection *conn)
{
    double max_wait = http.options.max_wait;
    double wait = DEFAULT_WAIT_SECONDS < max_wait ? DEFAULT_WAIT_SECONDS : max_wait;
    const char *value = NULL;
    size_t value_len = 0;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, "wait", 4, &value, &value_len) ==
        MHD_YES) {
        /* "?wait" without a value is NULL; a decoded %00 shows as a short strlen */
        if (value == NULL || strlen(value) != value_len ||
            !options_parse_seconds(value, max_wait, &wait)) {
            fail(req, API_BAD_WAIT, "wait must be a number of seconds from 0 to %g", max_wait);
            return;
        }
    }
    req->wait_ms = (uint64_t)(wait * 1000.0 + 0.5);

    api_error err = registry_get(req->name, &req->entry);
    if (err == API_TOO_MANY_CHANNELS)
        fail(req, err, "creating channel %s would exceed --max-channels (%zu)", req->name,
             http.options.max_channels);
    else if (err != API_OK)
        fail(req, err, NULL);
}

static void give_back(request *req, void *msg, size_t len)
{
    longpoll_give_back(req->entry->ch, msg, len);
}

/* Add the headers env stores, but Content-Type, to r: the same names and
 * values, in the same order. MHD copies them. A header with an empty value
 * is left out: libmicrohttpd (0.9.75) refuses to send one, and the message
 * must still go out. False if MHD refuses another, which means out of
 * memory: a POST stores only names that are tokens and values as MHD
 * received them, and --keep-headers cannot name a header MHD manages
 * itself (Content-Length, Transfer-Encoding, Connection). */
static bool add_stored_headers(struct MHD_Response *r, const envelope *env)
{
    size_t longest = 0; /* one buffer holds each name and value in turn */
    for (size_t i = 0; i < env->header_count; i++) {
        size_t n = env->headers[i].name_len + env->headers[i].value_len;
        longest = n > longest ? n : longest;
    }
    char *buf = malloc(longest + 2);
    if (buf == NULL)
        return false;
    bool added = true;
    size_t type_len = strlen(ENVELOPE_CONTENT_TYPE);
    for (size_t i = 0; added && i < env->header_count; i++) {
        const envelope_header *h = &env->headers[i];
        if (h->name_len == type_len && strncasecmp(h->name, ENVELOPE_CONTENT_TYPE, type_len) == 0)
            continue; /* sent by the caller, once */
        if (h->value_len == 0)
            continue;
        memcpy(buf, h->name, h->name_len);
        buf[h->name_len] = '\0';
        char *value = buf + h->name_len + 1;
        memcpy(value, h->value, h->value_len);
        value[h->value_len] = '\0';
        added = MHD_add_response_header(r, buf, value) == MHD_YES;
    }
    free(buf);
    return added;
}

/* 200 with the message: the body points into msg, which req keeps until the
 * completion callback frees it (delivered) or gives it back (not). Its
 * headers are the stored ones. */
static enum MHD_Result respond_message(request *req, struct MHD_Connection *conn, void *msg,
                                       size_t len)
{
    envelope env;
    if (!envelope_decode(msg, len, &env)) {
        log_error("channel %s: dropped a stored message with a malformed envelope", req->name);
        hop_free(msg);
        return respond_error(req, conn, API_INTERNAL);
    }
    size_t type_len;
    const char *type = envelope_find(&env, ENVELOPE_CONTENT_TYPE, &type_len);
    req->msg_type = type ? strndup(type, type_len) : strdup(ENVELOPE_DEFAULT_CONTENT_TYPE);
    struct MHD_Response *r = req->msg_type
                                 ? MHD_create_response_from_buffer(env.body_len, (void *)env.body,
                                                                   MHD_RESPMEM_PERSISTENT)
                                 : NULL;
    if (r != NULL &&
        (MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, req->msg_type) != MHD_YES ||
         !add_stored_headers(r, &env))) {
        MHD_destroy_response(r);
        r = NULL;
    }
    if (r == NULL) {
        give_back(req, msg, len);
        return MHD_NO;
    }
    req->msg = msg;
    req->msg_len = len;
    return queue(conn, MHD_HTTP_OK, r);
}

static enum MHD_Result get_finish(request *req, struct MHD_Connection *conn)
{
    void *msg = NULL;
    size_t len = 0;
    if (!req->polling) {
        req->polling = true;
        longpoll_init(&req->lp, req->entry->ch, conn);
        hop_err err = HOP_OK;
        switch (longpoll_begin(&req->lp, req->wait_ms, &msg, &len, &err)) {
        case LONGPOLL_GOT:
            return respond_message(req, conn, msg, len);
        case LONGPOLL_EMPTY:
            return respond_no_content(conn);
        case LONGPOLL_SUSPENDED:
            return MHD_YES;
        case LONGPOLL_FAILED:
            return respond_error(req, conn, api_error_of_hop(err));
        }
        return respond_error(req, conn, API_INTERNAL);
    }

    /* resumed */
    switch (longpoll_take(&req->lp, &msg, &len)) {
    case LONGPOLL_READY:
        if (longpoll_client_gone(conn)) { /* went away after the message came */
            give_back(req, msg, len);
            return MHD_NO;
        }
        return respond_message(req, conn, msg, len);
    case LONGPOLL_GONE:
        return MHD_NO; /* the message is back in the channel already */
    case LONGPOLL_TIMED_OUT:
        return respond_no_content(conn);
    case LONGPOLL_CLOSED:
        return respond_error(req, conn, API_CLOSED);
    case LONGPOLL_IDLE:
    case LONGPOLL_WAITING:
        break;
    }
    return respond_error(req, conn, API_INTERNAL);
}

/* ---- the MHD callbacks ---- */

static enum MHD_Result request_begin(request *req, struct MHD_Connection *conn, const char *method)
{
    route_request(req, method);
    /* A POST that begins once the server is stopping is refused, not
     * stored: the drain may have ended already, and a message stored now
     * could lose its 202 to the stop, and then be sent again by a client
     * that never heard of it. One that began before is drained. */
    if (req->route == ROUTE_POST && atomic_load(&http.stopping))
        fail(req, API_CLOSED, NULL);
    if (req->route == ROUTE_POST)
        post_begin(req, conn);
    else if (req->route == ROUTE_GET)
        get_begin(req, conn);
    if (req->route == ROUTE_ERROR && answer_before_body(conn)) {
        req->answered_early = true;
        return respond_error(req, conn, req->error);
    }
    return MHD_YES;
}

static enum MHD_Result request_finish(request *req, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text;
    switch (req->route) {
    case ROUTE_ERROR:
        return respond_error(req, conn, req->error);
    case ROUTE_HEALTHZ:
        return respond_static(conn, MHD_HTTP_OK, "text/plain", "ok");
    case ROUTE_STATUS:
        text = status_json();
        return respond_owned(conn, "application/json", text, text ? strlen(text) : 0);
    case ROUTE_METRICS:
        text = status_metrics(&len);
        return respond_owned(conn, STATUS_METRICS_CONTENT_TYPE, text, len);
    case ROUTE_POST:
        return post_finish(req, conn);
    case ROUTE_GET:
        return get_finish(req, conn);
    }
    return MHD_NO;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)url; /* decoded by MHD; we route on the raw target instead */
    (void)version;
    request *req = *req_cls;
    if (req == NULL)
        return MHD_NO; /* on_uri() ran out of memory */
    if (!req->started) {
        req->started = true;
        return request_begin(req, conn, method);
    }
    if (*upload_data_size > 0) {
        if (req->route == ROUTE_POST) {
            post_upload(req, upload_data, *upload_data_size);
        } else if ((req->discarded += *upload_data_size) > DISCARD_LIMIT) {
            return MHD_NO; /* an endless body of a refused request: enough */
        }
        *upload_data_size = 0; /* consumed, or dropped after an error */
        return MHD_YES;
    }
    if (req->answered_early)
        return MHD_YES;
    return request_finish(req, conn);
}

/* The accept policy: once stopping, a new connection is closed as soon as
 * it is accepted. This is how the server stops taking connections, rather
 * than MHD_quiesce_daemon(): on an epoll daemon with internal threads (ours)
 * that races with the threads' own removal of the listen socket from their
 * epoll sets, and the loser calls MHD_PANIC ("Failed to remove listen FD
 * from epoll set"), aborting the process. Seen with libmicrohttpd 0.9.75 as
 * a SIGTERM that killed the server with SIGABRT about once in some thousand
 * stops. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    (void)cls;
    (void)addr;
    (void)addrlen;
    return atomic_load(&http.stopping) ? MHD_NO : MHD_YES;
}

/* MHD_OPTION_URI_LOG_CALLBACK: the raw target, before MHD decodes it. The
 * returned context reaches the access handler and the completion callback. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    request *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    if ((req->target = strdup(uri)) == NULL) {
        free(req);
        return NULL;
    }
    atomic_fetch_add(&http.in_flight, 1);
    return req;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    request *req = *req_cls;
    if (req == NULL)
        return;
    *req_cls = NULL;
    if (req->polling) {
        void *msg;
        size_t len;
        longpoll_release(&req->lp, &msg, &len);
        if (msg)
            give_back(req, msg, len); /* arrived, but never answered */
    }
    if (req->msg) {
        if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
            hop_free(req->msg); /* delivered */
        else
            give_back(req, req->msg, req->msg_len); /* back to the head of its channel */
    }
    if (req->syncing)
        pthread_mutex_destroy(&req->sync_lock);
    free(req->msg_type);
    free(req->buf);
    free(req->content_type);
    free(req->target);
    free(req);
    atomic_fetch_sub(&http.in_flight, 1);
}

/* MHD's own messages: all of them while starting (why it cannot listen),
 * then at most one per MHD_LOG_INTERVAL seconds, since most are about one
 * bad client request and the log is not a per-request log. */
#define MHD_LOG_INTERVAL 10

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static time_t last;
    static unsigned long suppressed;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';

    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    pthread_mutex_lock(&lock);
    bool quiet = http.started && now.tv_sec - last < MHD_LOG_INTERVAL;
    unsigned long dropped = suppressed;
    if (quiet) {
        suppressed++;
    } else {
        last = now.tv_sec;
        suppressed = 0;
    }
    pthread_mutex_unlock(&lock);
    if (quiet)
        return;
    if (dropped)
        log_warn("http: %s (and %lu similar message(s) in the last %d s not shown)", line, dropped,
                 MHD_LOG_INTERVAL);
    else
        log_warn("http: %s", line);
}

/* ---- start and stop ---- */

/* Raise the descriptor limit to its maximum and derive the connection limit
 * from it, keeping a quarter for queue files and everything else. */
static unsigned int connection_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        struct rlimit raised = {rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
            rl = raised;
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 4 * 3 > MAX_CONNECTIONS)
        return MAX_CONNECTIONS;
    return (unsigned int)(rl.rlim_cur / 4 * 3);
}

static void log_listening(void)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http.daemon, MHD_DAEMON_INFO_LISTEN_FD);
    struct sockaddr_storage addr;
    socklen_t len = sizeof addr;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (info && getsockname(info->listen_fd, (struct sockaddr *)&addr, &len) == 0) {
        if (addr.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&addr;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
            log_info("listening on [%s]:%u", host, port);
            return;
        }
        struct sockaddr_in *a = (struct sockaddr_in *)&addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    }
    log_info("listening on %s:%u", host, port);
}

bool http_start(const server_options *o)
{
    http.options = *o;
    unsigned int connections = connection_limit();
    unsigned int flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    flags |= MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL : MHD_USE_AUTO;
    if (o->listen_addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* the logger goes first so that MHD reports even option errors through it */
    // clang-format off
    http.daemon = MHD_start_daemon(
        flags, 0, on_accept, NULL, on_access, NULL,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
        MHD_OPTION_SOCK_ADDR, (const struct sockaddr *)&http.options.listen_addr,
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, NULL,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
        MHD_OPTION_THREAD_POOL_SIZE, o->threads > 1 ? o->threads : 0u, /* 1: no pool */
        MHD_OPTION_CONNECTION_LIMIT, connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)IDLE_TIMEOUT_SECONDS,
        MHD_OPTION_END);
    // clang-format on
    if (http.daemon == NULL) {
        log_error("cannot start the HTTP server on %s", o->listen);
        return false;
    }
    atomic_store(&http.started, true);
    log_listening();
    return true;
}

void http_quiesce(void)
{
    /* no MHD_quiesce_daemon(): see on_accept() */
    atomic_store(&http.stopping, true);
}

void http_drain(unsigned timeout_ms)
{
    struct timespec tick = {.tv_nsec = 10 * 1000000L};
    for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
        if (atomic_load(&http.in_flight) == 0)
            return;
        nanosleep(&tick, NULL);
    }
    log_warn("%zu request(s) still in progress after %u ms; closing them",
             atomic_load(&http.in_flight), timeout_ms);
}

void http_stop(void)
{
    if (http.daemon)
        MHD_stop_daemon(http.daemon);
    http.daemon = NULL;
}
