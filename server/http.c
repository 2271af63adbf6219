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
 * Paths: route.h. */
#include "http.h"

#include "datadir.h"
#include "delivery.h"
#include "envelope.h"
#include "errors.h"
#include "giveback.h"
#include "hopper/hopper.h"
#include "keep_headers.h"
#include "lease.h"
#include "log.h"
#include "longpoll.h"
#include "multipart.h"
#include "registry.h"
#include "route.h"
#include "skip_corrupt.h"
#include "status.h"
#include "target.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <math.h>
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

/* Idle connections are closed after --idle-timeout; suspended (waiting)
 * GETs are not idle, MHD does not time them out. Upper bound of simultaneous connections (also held
 * to 3/4 of the file descriptor limit). */
#define MAX_CONNECTIONS 16384
/* Connections MHD may hold beyond --max-connections: those on_accept()
 * is about to close. Taken from the quarter of descriptors kept free. */
#define ACCEPT_SLACK 64
/* wait of a GET that does not say (held to --max-wait). */
#define DEFAULT_WAIT_SECONDS 30.0
#define RETRY_AFTER_SECONDS "1"
#define LIMIT_LOG_INTERVAL_S 60
/* The JSON code of the error a refused POST's payload came back with. */
#define HOPPER_ERROR_HEADER "Hopper-Error"
/* Memory one batch POST may take for its body. */
#define BATCH_BODY_LIMIT ((size_t)64 << 20)
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
    atomic_size_t in_flight;   /* request contexts alive */
    atomic_size_t connections; /* open, from MHD's connection notifications */
    unsigned int max_connections;
} http;

typedef struct request {
    char *target; /* the raw request-target (path?query), new */
    bool started; /* request_begin() ran */
    bool answered_early;
    size_t discarded;      /* body bytes of a refused request read and dropped */
    route route;           /* kind (ROUTE_ERROR: answer error), name, receipt */
    api_error error;       /* ROUTE_ERROR: the answer */
    char message[192];     /* ROUTE_ERROR: its message, "" for the table's */
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

    bool batch; /* POST: a multipart/mixed body, one message a part */
    char boundary[MULTIPART_BOUNDARY_SIZE];

    /* GET */
    uint64_t wait_ms;
    size_t max;   /* ?max=: messages at most, 0 when not given (one, plain) */
    bool polling; /* lp is initialised */
    longpoll lp;
    delivery dlv; /* what a queued 200 hands out; settled on completion */

    /* the requests on a receipt */
    uint64_t lease_ms; /* GET ?lease=, extend ?lease= */
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
        MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, req->route.allow);
    /* after a request whose end is unknown, what follows on the connection
     * cannot be told apart from it: no second request is read there */
    if (r && err == API_BAD_FRAMING)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
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
    req->route.kind = ROUTE_ERROR;
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

/* Set req->route from the target and the method (route.h). A valid channel
 * name that is a file of the data directory is refused whatever follows. */
static void route_request(request *req, const char *method)
{
    route *r = &req->route;
    route_parse(req->target, route_method_of(method), r);
    if (r->name[0] && datadir_name_reserved(r->name))
        fail(req, API_BAD_NAME, "%s is reserved: it is a file of the data directory", r->name);
    else if (r->kind == ROUTE_ERROR)
        fail(req, r->error, NULL);
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
    registry_entry *e = req->entry ? req->entry : registry_find(req->route.name);
    if (e)
        atomic_fetch_add(&e->too_big_total, 1);
}

/* Framing a part may add to its message in a batch body: the delimiter
 * line, and the part's Content-Type line (its kept headers count in the
 * message). */
#define BATCH_PART_FRAMING (2 * MULTIPART_BOUNDARY_SIZE + ENVELOPE_MAX_CONTENT_TYPE + 64)

/* The largest body of a batch POST: room for a full batch of the largest
 * messages with their framing, but no more than BATCH_BODY_LIMIT of memory
 * per request. */
static size_t batch_body_max(void)
{
    size_t one = http.options.max_message_bytes + BATCH_PART_FRAMING;
    return one > BATCH_BODY_LIMIT / DELIVERY_MAX_BATCH ? BATCH_BODY_LIMIT
                                                       : one * DELIVERY_MAX_BATCH;
}

/* The largest body req may have: --max-message-bytes less its kept
 * headers (which post_begin() checked fit); for a batch, batch_body_max(). */
static size_t body_max(const request *req)
{
    if (req->batch)
        return batch_body_max();
    return http.options.max_message_bytes - req->kept_bytes;
}

static void fail_too_big(request *req)
{
    count_too_big(req);
    if (req->batch)
        fail(req, API_TOO_BIG,
             "a batch may be %zu bytes (1000 messages of --max-message-bytes, at most %zu MiB)",
             batch_body_max(), BATCH_BODY_LIMIT >> 20);
    else if (req->kept_bytes > 0)
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
    if (http.options.keep_headers.count > 0 && !req->batch) /* a batch keeps its parts' */
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
        /* multipart/mixed: a batch, one message a part (the boundary is
         * checked here; the parts once the body is in) */
        size_t media = strlen("multipart/mixed");
        req->batch = strncasecmp(type, "multipart/mixed", media) == 0 &&
                     strchr(" \t;", type[media]) != NULL; /* NUL too: strchr finds it */
        if (req->batch && !multipart_boundary(type, req->boundary)) {
            fail(req, API_BAD_BATCH, "a multipart/mixed body needs a valid boundary parameter");
            return;
        }
    }
    stored_headers st;
    if (!collect_headers(req, conn, &st))
        return;
    req->kept_bytes = req->batch ? 0 : st.kept_bytes; /* a batch keeps its parts' headers */
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

    api_error err = registry_get(req->route.name, &req->entry);
    if (err != API_OK) {
        if (err == API_TOO_MANY_CHANNELS)
            fail(req, err, "creating channel %s would exceed --max-channels (%zu)", req->route.name,
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

/* A POST the channel refused (507, or a 5xx: an I/O error, out of memory,
 * the server stopping) after its body came: the caller gets its exact
 * payload back, to keep or send elsewhere, with the request's Content-Type;
 * what went wrong is in the status and in Hopper-Error (the JSON code of
 * errors.h). A 507 or 503 says when to try again. */
static enum MHD_Result respond_refused(request *req, struct MHD_Connection *conn, api_error err)
{
    unsigned int status = api_error_status(err);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(req->body_len, req->buf + req->prefix_len,
                                        MHD_RESPMEM_PERSISTENT); /* freed on completion */
    if (r) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                req->content_type ? req->content_type
                                                  : ENVELOPE_DEFAULT_CONTENT_TYPE);
        MHD_add_response_header(r, HOPPER_ERROR_HEADER, api_error_code(err));
        if (status == MHD_HTTP_INSUFFICIENT_STORAGE || status == MHD_HTTP_SERVICE_UNAVAILABLE)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_SECONDS);
    }
    return queue(conn, status, r);
}

/* The answer to a POST once the channel has said err. */
static enum MHD_Result post_answer(request *req, struct MHD_Connection *conn, hop_err err)
{
    registry_note_send(req->entry, err);
    api_error api = api_error_of_hop(err);
    switch (err) {
    case HOP_OK:
        return respond_static(conn, MHD_HTTP_ACCEPTED, "application/json",
                              "{\"status\":\"accepted\"}");
    case HOP_TOO_BIG:
        fail_too_big(req);
        return respond_error(req, conn, API_TOO_BIG);
    default: /* HOP_IO is logged by the core */
        if (api_error_status(api) >= 500)
            return respond_refused(req, conn, api);
        return respond_error(req, conn, api);
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

/* A durable POST of msgs[0..n): written now, answered once synced (on
 * resumption, when msgs is not needed: the records are written). */
static enum MHD_Result post_durable(request *req, struct MHD_Connection *conn, const hop_buf *msgs,
                                    size_t n)
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
    hop_err err = hop_send_batch_async(req->entry->ch, msgs, n, on_synced, req);
    if (err == HOP_OK)
        MHD_suspend_connection(conn);
    pthread_mutex_unlock(&req->sync_lock);
    return err == HOP_OK ? MHD_YES : post_answer(req, conn, err);
}

/* The messages of a batch POST: one envelope a part, all in one buffer. */
typedef struct batch {
    hop_buf *msgs;
    size_t count;
    unsigned char *store;
} batch;

/* The headers part i stores: its Content-Type (or the default) and the
 * ones --keep-headers names. False, with req failed, if there are too
 * many, or they and the body pass --max-message-bytes. */
static bool part_headers(request *req, const multipart_part *part, size_t i, envelope_header *hs,
                         size_t *count)
{
    size_t type_len = 0;
    const char *type = multipart_part_find(part, ENVELOPE_CONTENT_TYPE, &type_len);
    if (type == NULL || type_len == 0) {
        type = ENVELOPE_DEFAULT_CONTENT_TYPE;
        type_len = strlen(type);
    }
    if (type_len > ENVELOPE_MAX_CONTENT_TYPE) {
        fail(req, API_BAD_CONTENT_TYPE, "part %zu: the Content-Type is longer than %d bytes", i + 1,
             ENVELOPE_MAX_CONTENT_TYPE);
        return false;
    }
    hs[0] = (envelope_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE), type, type_len};
    *count = 1;
    size_t kept = 0, offset = 0;
    multipart_header h;
    while (multipart_header_next(part, &offset, &h)) {
        size_t n = strlen(ENVELOPE_CONTENT_TYPE);
        if ((h.name_len == n && strncasecmp(h.name, ENVELOPE_CONTENT_TYPE, n) == 0) ||
            !keep_headers_match(&http.options.keep_headers, h.name, h.name_len))
            continue;
        if (*count == ENVELOPE_MAX_HEADERS) {
            fail(req, API_TOO_MANY_HEADERS, "part %zu has more headers to keep than %d", i + 1,
                 ENVELOPE_MAX_HEADERS);
            return false;
        }
        hs[(*count)++] = (envelope_header){h.name, h.name_len, h.value, h.value_len};
        kept += h.name_len + h.value_len;
    }
    if (kept > http.options.max_message_bytes ||
        part->body_len > http.options.max_message_bytes - kept) {
        count_too_big(req);
        fail(req, API_TOO_BIG,
             "part %zu: its body and kept headers are larger than --max-message-bytes (%zu "
             "bytes)",
             i + 1, http.options.max_message_bytes);
        return false;
    }
    return true;
}

/* Parse req's body into b. False, with req failed, if it is not a good
 * batch: then nothing is sent. */
static bool batch_build(request *req, batch *b)
{
    *b = (batch){0};
    multipart_part *parts = malloc(DELIVERY_MAX_BATCH * sizeof *parts);
    envelope_header *hs = malloc(ENVELOPE_MAX_HEADERS * sizeof *hs);
    bool ok = false;
    size_t count = 0, total = 0, n;
    if (parts == NULL || hs == NULL) {
        fail(req, API_NOMEM, NULL);
        goto out;
    }
    multipart_err err = multipart_parse(req->buf + req->prefix_len, req->body_len, req->boundary,
                                        MULTIPART_MAX_HEADERS, parts, DELIVERY_MAX_BATCH, &count);
    if (err != MULTIPART_OK) {
        fail(req, API_BAD_BATCH, "part %zu: %s", count + 1, multipart_strerror(err));
        goto out;
    }
    for (size_t i = 0; i < count; i++) { /* check them all, and size the store */
        if (!part_headers(req, &parts[i], i, hs, &n))
            goto out;
        total += envelope_prefix_size(hs, n) + parts[i].body_len;
    }
    b->msgs = malloc(count * sizeof *b->msgs);
    b->store = malloc(total ? total : 1);
    if (b->msgs == NULL || b->store == NULL) {
        fail(req, API_NOMEM, NULL);
        goto out;
    }
    unsigned char *p = b->store;
    for (size_t i = 0; i < count; i++) {
        part_headers(req, &parts[i], i, hs, &n); /* checked above */
        size_t prefix = envelope_prefix_size(hs, n);
        envelope_write_prefix(p, hs, n);
        memcpy(p + prefix, parts[i].body, parts[i].body_len);
        b->msgs[i] = (hop_buf){p, prefix + parts[i].body_len};
        p += prefix + parts[i].body_len;
    }
    b->count = count;
    ok = true;
out:
    if (!ok) {
        free(b->msgs);
        free(b->store);
        *b = (batch){0};
    }
    free(parts);
    free(hs);
    return ok;
}

static enum MHD_Result post_finish(request *req, struct MHD_Connection *conn)
{
    hop_buf one = {req->buf, req->prefix_len + req->body_len};
    batch b = {.msgs = &one, .count = 1};
    if (req->batch && !req->syncing && !batch_build(req, &b))
        return respond_error(req, conn, req->error);
    enum MHD_Result result;
    if (http.options.durable)
        result = post_durable(req, conn, b.msgs, b.count);
    else if (!req->batch)
        result = post_answer(req, conn, hop_send(req->entry->ch, one.data, one.len));
    else
        result = post_answer(req, conn, hop_send_batch(req->entry->ch, b.msgs, b.count));
    if (b.msgs != &one) {
        free(b.msgs);
        free(b.store);
    }
    return result;
}

/* ---- GET /channels/NAME ---- */

/* A query argument as text: NULL when absent. *bad when present without a
 * value or with a decoded NUL in it. */
static const char *query_value(struct MHD_Connection *conn, const char *key, bool *bad)
{
    const char *value = NULL;
    size_t value_len = 0;
    *bad = false;
    if (MHD_lookup_connection_value_n(conn, MHD_GET_ARGUMENT_KIND, key, strlen(key), &value,
                                      &value_len) != MHD_YES)
        return NULL;
    /* "?key" without a value is NULL; a decoded %00 shows as a short strlen */
    *bad = value == NULL || strlen(value) != value_len;
    return value;
}

/* ?lease=SECONDS: more than 0, at most --max-lease. OUT: *ms (0 when not
 * given). False (req failed) when bad. */
static bool parse_lease(request *req, struct MHD_Connection *conn, bool required, uint64_t *ms)
{
    double max_lease = http.options.max_lease;
    bool bad;
    const char *value = query_value(conn, "lease", &bad);
    double seconds = 0;
    *ms = 0;
    if (value == NULL && !bad && !required)
        return true;
    if (value == NULL || bad || !options_parse_seconds(value, max_lease, &seconds) ||
        (*ms = (uint64_t)(seconds * 1000.0 + 0.5)) == 0) {
        fail(req, API_BAD_LEASE, "lease must be a number of seconds above 0 and at most %g",
             max_lease);
        return false;
    }
    return true;
}

static void get_begin(request *req, struct MHD_Connection *conn)
{
    double max_wait = http.options.max_wait;
    double wait = DEFAULT_WAIT_SECONDS < max_wait ? DEFAULT_WAIT_SECONDS : max_wait;
    bool bad;
    const char *value = query_value(conn, "wait", &bad);
    if ((value || bad) && (bad || !options_parse_seconds(value, max_wait, &wait))) {
        fail(req, API_BAD_WAIT, "wait must be a number of seconds from 0 to %g", max_wait);
        return;
    }
    req->wait_ms = (uint64_t)(wait * 1000.0 + 0.5);
    value = query_value(conn, "max", &bad);
    if (value || bad) {
        size_t n;
        if (bad || !target_parse_count(value, DELIVERY_MAX_BATCH, &n)) {
            fail(req, API_BAD_MAX, "max must be a whole number from 1 to %d", DELIVERY_MAX_BATCH);
            return;
        }
        req->max = n;
    }
    if (!parse_lease(req, conn, false, &req->lease_ms))
        return;

    api_error err = registry_get(req->route.name, &req->entry);
    if (err == API_TOO_MANY_CHANNELS)
        fail(req, err, "creating channel %s would exceed --max-channels (%zu)", req->route.name,
             http.options.max_channels);
    else if (err != API_OK)
        fail(req, err, NULL);
}

/* 200 with msg and, for ?max=N, up to N - 1 more that are ready now. */
static enum MHD_Result respond_messages(request *req, struct MHD_Connection *conn, void *msg,
                                        size_t len)
{
    size_t max = req->max ? req->max : 1;
    void **msgs = malloc(max * sizeof *msgs);
    size_t *lens = malloc(max * sizeof *lens);
    if (msgs == NULL || lens == NULL) {
        free(msgs);
        free(lens);
        giveback_unsent(req->entry, msg, len);
        return respond_error(req, conn, API_NOMEM);
    }
    size_t n = 0;
    msgs[n] = msg;
    lens[n++] = len;
    unsigned failed = 0; /* for the whole batch */
    while (n < max) {
        hop_err err = hop_recv(req->entry->ch, 0, &msgs[n], &lens[n]);
        if (err == HOP_OK)
            n++;
        else if (!skip_corrupt(err, &failed))
            break;
    }
    req->dlv.entry = req->entry;
    req->dlv.lease_ms = req->lease_ms;
    req->dlv.multipart = req->max > 0;
    req->dlv.max_deliveries = http.options.max_deliveries;
    api_error err;
    struct MHD_Response *r = delivery_respond(&req->dlv, msgs, lens, n, &err);
    free(msgs);
    free(lens);
    if (r == NULL)
        return respond_error(req, conn, err);
    return queue(conn, MHD_HTTP_OK, r);
}

static enum MHD_Result get_finish(request *req, struct MHD_Connection *conn)
{
    void *msg = NULL;
    size_t len = 0;
    if (!req->polling) {
        req->polling = true;
        longpoll_init(&req->lp, req->entry, conn);
        hop_err err = HOP_OK;
        switch (longpoll_begin(&req->lp, req->wait_ms, &msg, &len, &err)) {
        case LONGPOLL_GOT:
            return respond_messages(req, conn, msg, len);
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
            giveback_unsent(req->entry, msg, len);
            return MHD_NO;
        }
        return respond_messages(req, conn, msg, len);
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

/* ---- the requests on a receipt ---- */

static void receipt_begin(request *req, struct MHD_Connection *conn)
{
    if (req->route.kind == ROUTE_EXTEND && !parse_lease(req, conn, true, &req->lease_ms))
        return;
    /* a channel that does not exist has no leases: it is not made */
    if ((req->entry = registry_find(req->route.name)) == NULL)
        fail(req, API_UNKNOWN_RECEIPT, NULL);
}

static enum MHD_Result receipt_finish(request *req, struct MHD_Connection *conn)
{
    api_error err;
    if (req->route.kind == ROUTE_ACK)
        err = lease_ack(req->entry, req->route.receipt);
    else if (req->route.kind == ROUTE_EXTEND)
        err = lease_extend(req->entry, req->route.receipt, req->lease_ms);
    else
        err = lease_release(req->entry, req->route.receipt);
    if (err != API_OK)
        return respond_error(req, conn, err);
    return respond_no_content(conn);
}

/* ---- the MHD callbacks ---- */

/* What framing_ambiguous() counts, header by header. */
typedef struct framing {
    unsigned content_lengths, transfer_encodings;
    bool bad_name, not_chunked;
} framing;

static enum MHD_Result count_framing(void *cls, enum MHD_ValueKind kind, const char *name,
                                     size_t name_len, const char *value, size_t value_len)
{
    (void)kind;
    framing *f = cls;
    if (name_len == strlen(MHD_HTTP_HEADER_CONTENT_LENGTH) &&
        strncasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH, name_len) == 0)
        f->content_lengths++;
    if (name_len == strlen(MHD_HTTP_HEADER_TRANSFER_ENCODING) &&
        strncasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING, name_len) == 0) {
        f->transfer_encodings++;
        /* chunked is the one coding there is a decoder for */
        f->not_chunked |= value == NULL || value_len != strlen("chunked") ||
                          strncasecmp(value, "chunked", value_len) != 0;
    }
    for (size_t i = 0; i < name_len; i++)
        if ((unsigned char)name[i] <= ' ' || name[i] == 0x7f)
            f->bad_name = true;
    return MHD_YES;
}

/* True if the request's body could be framed in more than one way: two
 * Content-Length headers (libmicrohttpd takes the first), Content-Length
 * and Transfer-Encoding together, a Transfer-Encoding other than chunked
 * (libmicrohttpd then waits for a body it cannot find the end of), or a
 * header name with whitespace or control bytes ("Transfer-Encoding : chunked", which a proxy in
 * front may read as Transfer-Encoding). Answered 400 and the connection closed, as RFC 9112 asks: a
 * request smuggled behind it is never read. */
static bool framing_ambiguous(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, count_framing, &f);
    return f.content_lengths > 1 || (f.content_lengths && f.transfer_encodings) ||
           f.transfer_encodings > 1 || f.not_chunked || f.bad_name;
}

static enum MHD_Result request_begin(request *req, struct MHD_Connection *conn, const char *method)
{
    if (framing_ambiguous(conn)) {
        fail(req, API_BAD_FRAMING, NULL);
        req->answered_early = true;
        return respond_error(req, conn, req->error);
    }
    route_request(req, method);
    /* A POST that begins once the server is stopping is refused, not
     * stored: the drain may have ended already, and a message stored now
     * could lose its 202 to the stop, and then be sent again by a client
     * that never heard of it. One that began before is drained. */
    if (req->route.kind == ROUTE_POST && atomic_load(&http.stopping))
        fail(req, API_CLOSED, NULL);
    if (req->route.kind == ROUTE_POST)
        post_begin(req, conn);
    else if (req->route.kind == ROUTE_GET)
        get_begin(req, conn);
    else if (req->route.kind == ROUTE_ACK || req->route.kind == ROUTE_EXTEND ||
             req->route.kind == ROUTE_RELEASE)
        receipt_begin(req, conn);
    if (req->route.kind == ROUTE_ERROR && answer_before_body(conn)) {
        req->answered_early = true;
        return respond_error(req, conn, req->error);
    }
    return MHD_YES;
}

static enum MHD_Result request_finish(request *req, struct MHD_Connection *conn)
{
    size_t len = 0;
    char *text;
    switch (req->route.kind) {
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
    case ROUTE_ACK:
    case ROUTE_EXTEND:
    case ROUTE_RELEASE:
        return receipt_finish(req, conn);
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
        if (req->route.kind == ROUTE_POST) {
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

/* One line when connections hit --max-connections, then at most one a
 * minute while they go on doing so. */
static void log_limit_reached(void)
{
    static atomic_llong last = -LIMIT_LOG_INTERVAL_S;
    static atomic_ulong refused;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    unsigned long n = atomic_fetch_add(&refused, 1) + 1;
    long long seen = atomic_load(&last);
    if (now.tv_sec - seen >= LIMIT_LOG_INTERVAL_S &&
        atomic_compare_exchange_strong(&last, &seen, (long long)now.tv_sec))
        log_warn("%u connections open, the --max-connections limit: new connections are "
                 "closed at once (%lu so far)",
                 http.max_connections, n);
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
    if (atomic_load(&http.stopping))
        return MHD_NO;
    /* At the limit a new connection is closed at once, so its client knows
     * and can come back later; left to MHD it would wait unseen in the
     * listen queue until some other connection ends. */
    if (atomic_load(&http.connections) >= http.max_connections) {
        log_limit_reached();
        return MHD_NO;
    }
    return MHD_YES;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    (void)conn;
    (void)socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED)
        atomic_fetch_add(&http.connections, 1);
    else if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&http.connections, 1);
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
        longpoll_end(&req->lp, &msg, &len);
        if (msg)
            giveback_unsent(req->entry, msg, len); /* arrived, but never answered */
    }
    /* a response that did not complete may not have reached its client */
    if (req->dlv.count && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        delivery_succeeded(&req->dlv);
    else if (req->dlv.count)
        delivery_failed(&req->dlv);
    if (req->syncing)
        pthread_mutex_destroy(&req->sync_lock);
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
 * from it, keeping a quarter for queue files and everything else; a
 * --max-connections beyond that is lowered to it (with a warning), since
 * connections past it would fail in accept() instead of closing cleanly. */
static unsigned int connection_limit(size_t wanted)
{
    unsigned int limit = 1024;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit raised = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                rl = raised;
        }
        limit = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur / 4 * 3 > MAX_CONNECTIONS
                    ? MAX_CONNECTIONS
                    : (unsigned int)(rl.rlim_cur / 4 * 3);
    }
    if (wanted == 0)
        return limit;
    if (wanted > limit) {
        log_warn("--max-connections %zu is beyond what the open-file limit allows; using %u",
                 wanted, limit);
        return limit;
    }
    return (unsigned int)wanted;
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
    unsigned int connections = connection_limit(o->max_connections);
    http.max_connections = connections;
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
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL,
        /* room above our own limit (on_accept()), so that MHD takes the
         * connections we close rather than leave them queued */
        MHD_OPTION_CONNECTION_LIMIT, connections + ACCEPT_SLACK,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)ceil(o->idle_timeout),
        MHD_OPTION_END);
    // clang-format on
    if (http.daemon == NULL) {
        log_error("cannot start the HTTP server on %s", o->listen);
        return false;
    }
    atomic_store(&http.started, true);
    log_listening();
    log_info("at most %u connections; idle ones closed after %g s", connections,
             ceil(o->idle_timeout));
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
