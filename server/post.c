/* post.c - POST /channels/NAME (see post.h): headers checked and the
 * envelope begun from the first call, the body read into it, the message
 * (or batch) sent from the last call, or from the resumption of a durable
 * one. */
#include "post.h"

#include "batch.h"
#include "budget.h"
#include "delivery.h"
#include "envelope.h"
#include "keep_headers.h"
#include "query.h"
#include "registry.h"
#include "respond.h"
#include "thread_conns.h"
#include "verify_schemes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_SECONDS "1"
/* The JSON code of the error a refused POST's payload came back with. */
#define HOPPER_ERROR_HEADER "Hopper-Error"
/* The challenge of a 401 bad_signature (RFC 9110 asks for one): the scheme
 * the channel's --verify rule expects. */
#define SIGNATURE_CHALLENGE "Signature scheme=\"%s\""
/* Memory one batch POST may take for its body. */
#define BATCH_BODY_LIMIT ((size_t)64 << 20)
/* First buffer of a POST body of unknown length; it doubles as needed. */
#define INITIAL_BODY_BUFFER (64 * 1024)
/* Framing a part may add to its message in a batch body: the delimiter
 * line, and the part's Content-Type line (its kept headers count in the
 * message). */
#define BATCH_PART_FRAMING (2 * MULTIPART_BOUNDARY_SIZE + ENVELOPE_MAX_CONTENT_TYPE + 64)
#define MULTIPART_MIXED "multipart/mixed"

static post_request *post_of(request *req)
{
    return (post_request *)req;
}

/* ---- limits ---- */

static void count_too_big(request *req)
{
    /* only for channels that exist: a refused message creates nothing */
    if (req->entry) {
        atomic_fetch_add(&req->entry->too_big_total, 1);
        return;
    }
    registry_entry *e = registry_find(req->route.name);
    if (e)
        atomic_fetch_add(&e->too_big_total, 1);
    registry_put(e);
}

/* The largest body of a batch POST: room for a full batch of the largest
 * messages with their framing, but no more than BATCH_BODY_LIMIT of memory
 * per request. */
static size_t batch_body_max(const server_options *o)
{
    size_t one = o->max_message_bytes + BATCH_PART_FRAMING;
    return one > BATCH_BODY_LIMIT / DELIVERY_MAX_BATCH ? BATCH_BODY_LIMIT
                                                       : one * DELIVERY_MAX_BATCH;
}

/* The largest body p may have: --max-message-bytes less its kept headers
 * (which post_begin() checked fit); for a batch, batch_body_max(). */
static size_t body_max(const post_request *p)
{
    const server_options *o = &p->base.server->options;
    return p->batch ? batch_body_max(o) : o->max_message_bytes - p->kept_bytes;
}

static void fail_too_big(post_request *p)
{
    const server_options *o = &p->base.server->options;
    count_too_big(&p->base);
    if (p->batch)
        request_fail(&p->base, API_TOO_BIG,
                     "a batch may be %zu bytes (1000 messages of --max-message-bytes, at most "
                     "%zu MiB)",
                     batch_body_max(o), BATCH_BODY_LIMIT >> 20);
    else if (p->kept_bytes > 0)
        request_fail(&p->base, API_TOO_BIG,
                     "the body and the %zu bytes of kept headers are larger than "
                     "--max-message-bytes (%zu bytes)",
                     p->kept_bytes, o->max_message_bytes);
    else
        request_fail(&p->base, API_TOO_BIG,
                     "the message is larger than --max-message-bytes (%zu bytes)",
                     o->max_message_bytes);
}

/* ---- the headers a message stores ---- */

/* The headers a POST stores, in the order of the envelope: Content-Type,
 * then the request headers --keep-headers names, in the request's order. */
typedef struct stored_headers {
    const keep_headers *keep;                      /* --keep-headers */
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
    if (!keep_headers_match(st->keep, name, name_len))
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

/* Fill st with the headers p stores. False, with p failed, if the request
 * has more than the envelope holds. */
static bool collect_headers(post_request *p, struct MHD_Connection *conn, stored_headers *st)
{
    const char *type = p->content_type ? p->content_type : ENVELOPE_DEFAULT_CONTENT_TYPE;
    /* field by field: the array is filled as far as needed, never cleared */
    st->keep = &p->base.server->options.keep_headers;
    st->headers[0] =
        (envelope_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE), type, strlen(type)};
    st->count = 1;
    st->too_many = st->name_too_long = false;
    st->kept_bytes = 0;
    if (st->keep->count > 0 && !p->batch) /* a batch keeps its parts' */
        MHD_get_connection_values_n(conn, MHD_HEADER_KIND, store_kept_header, st);
    if (st->too_many) {
        request_fail(&p->base, API_TOO_MANY_HEADERS,
                     "the request has more headers that --keep-headers keeps than the %d a "
                     "message stores, Content-Type included",
                     ENVELOPE_MAX_HEADERS);
        return false;
    }
    if (st->name_too_long) {
        request_fail(&p->base, API_INTERNAL, "a header name to keep is longer than %d bytes",
                     ENVELOPE_MAX_NAME);
        return false;
    }
    return true;
}

/* ---- the first call: headers ---- */

/* Keep the Content-Type (if any); multipart/mixed makes p a batch, whose
 * boundary is checked here (its parts once the body is in). False, with p
 * failed, if it is too long or a batch without a valid boundary. */
static bool read_content_type(post_request *p, struct MHD_Connection *conn)
{
    const char *type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type == NULL || type[0] == '\0')
        return true;
    if (strlen(type) > ENVELOPE_MAX_CONTENT_TYPE) {
        request_fail(&p->base, API_BAD_CONTENT_TYPE, NULL);
        return false;
    }
    if ((p->content_type = strdup(type)) == NULL) {
        request_fail(&p->base, API_NOMEM, NULL);
        return false;
    }
    size_t media = strlen(MULTIPART_MIXED);
    p->batch = strncasecmp(type, MULTIPART_MIXED, media) == 0 &&
               strchr(" \t;", type[media]) != NULL; /* NUL too: strchr finds it */
    if (p->batch && !multipart_boundary(type, p->boundary)) {
        request_fail(&p->base, API_BAD_BATCH,
                     "a multipart/mixed body needs a valid boundary parameter");
        return false;
    }
    return true;
}

/* The size of the body's first buffer: the declared Content-Length, or
 * INITIAL_BODY_BUFFER (at most max) when there is none that parses, the
 * buffer then doubling as needed. False, with p failed, if the declared
 * length is over max: refused before any byte is read. OUT: *first. */
static bool first_buffer_size(post_request *p, struct MHD_Connection *conn, size_t max,
                              size_t *first)
{
    const char *length =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    *first = max < INITIAL_BODY_BUFFER ? max : INITIAL_BODY_BUFFER;
    if (length == NULL)
        return true;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(length, &end, 10);
    bool known = errno == 0 && end != length && *end == '\0' && length[0] != '-';
    if (known && v > max) {
        fail_too_big(p);
        return false;
    }
    if (known)
        *first = (size_t)v;
    return true;
}

/* Begin the envelope: room for its prefix for st's headers, and for a body
 * of first bytes. The prefix is written once the body is in
 * (finish_envelope()), when the message is accepted. False, with p failed,
 * if out of memory. */
static bool begin_envelope(post_request *p, const stored_headers *st, size_t first)
{
    p->prefix_len = envelope_prefix_size(st->headers, st->count);
    p->cap = p->prefix_len + first;
    if ((p->buf = malloc(p->cap)) == NULL) {
        request_fail(&p->base, API_NOMEM, NULL);
        return false;
    }
    budget_charge(p->cap); /* RAM the channels' memory yields to, until post_end() */
    return true;
}

static void post_begin(request *req, struct MHD_Connection *conn)
{
    post_request *p = post_of(req);
    if (req->server->options.durable)
        pthread_mutex_init(&p->sync_lock, NULL); /* destroyed by post_end() */
    /* A POST that begins once the server is stopping is refused, not
     * stored: the drain may have ended already, and a message stored now
     * could lose its 202 to the stop, and then be sent again by a client
     * that never heard of it. One that began before is drained. */
    if (atomic_load(&req->server->stopping)) {
        request_fail(req, API_CLOSED, NULL);
        return;
    }
    stored_headers st;
    if (!query_delay(req, conn, &p->delay_ms) || !query_ttl(req, conn, &p->ttl_ms) ||
        !read_content_type(p, conn) || !collect_headers(p, conn, &st))
        return;
    p->kept_bytes = p->batch ? 0 : st.kept_bytes; /* a batch keeps its parts' headers */
    if (p->kept_bytes > req->server->options.max_message_bytes) {
        fail_too_big(p);
        return;
    }
    size_t first;
    if (!idempotency_read(&p->idem, req, conn) || !first_buffer_size(p, conn, body_max(p), &first))
        return;
    /* a covered channel is opened once the signature is found good: a
     * POST refused for it makes no channel (post_finish()) */
    p->verify = verify_match(&req->server->options.verify, req->route.name);
    if (p->verify == NULL && !request_open_channel(req))
        return;
    begin_envelope(p, &st, first);
}

/* ---- the body ---- */

static void post_upload(request *req, const char *data, size_t size)
{
    post_request *p = post_of(req);
    size_t max = body_max(p);
    if (size > max - p->body_len) {
        fail_too_big(p); /* the rest of the body is read and dropped */
        return;
    }
    size_t need = p->prefix_len + p->body_len + size;
    if (need > p->cap) {
        size_t cap = p->cap * 2;
        if (cap < need)
            cap = need;
        if (cap > p->prefix_len + max)
            cap = p->prefix_len + max;
        unsigned char *buf = realloc(p->buf, cap);
        if (buf == NULL) {
            request_fail(req, API_NOMEM, NULL);
            return;
        }
        budget_charge(cap - p->cap);
        p->buf = buf;
        p->cap = cap;
    }
    memcpy(p->buf + p->prefix_len + p->body_len, data, size);
    p->body_len += size;
}

/* ---- the answer ---- */

/* A POST the channel refused (507, or a 5xx: an I/O error, out of memory,
 * the server stopping) after its body came: the caller gets its exact
 * payload back, to keep or send elsewhere, with the request's Content-Type;
 * what went wrong is in the status and in Hopper-Error (the JSON code of
 * errors.h). A 507 or 503 says when to try again. */
static enum MHD_Result respond_refused(post_request *p, struct MHD_Connection *conn, api_error err)
{
    unsigned int status = api_error_status(err);
    struct MHD_Response *r = MHD_create_response_from_buffer(
        p->body_len, p->buf + p->prefix_len, MHD_RESPMEM_PERSISTENT); /* freed on completion */
    if (r) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
                                p->content_type ? p->content_type : ENVELOPE_DEFAULT_CONTENT_TYPE);
        MHD_add_response_header(r, HOPPER_ERROR_HEADER, api_error_code(err));
        if (status == MHD_HTTP_INSUFFICIENT_STORAGE || status == MHD_HTTP_SERVICE_UNAVAILABLE)
            MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, RETRY_AFTER_SECONDS);
        if (err == API_BAD_SIGNATURE) {
            char challenge[64];
            snprintf(challenge, sizeof challenge, SIGNATURE_CHALLENGE,
                     verify_scheme_name(p->verify->scheme));
            MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, challenge);
        }
    }
    return respond_queue(&p->base, conn, status, r);
}

/* The answer to a POST once the channel has said err (err_no: the errno
 * that came with HOP_IO). */
static enum MHD_Result post_answer(post_request *p, struct MHD_Connection *conn, hop_err err,
                                   int err_no)
{
    api_error api = api_error_of_send(err, err_no);
    idempotency_settle(&p->idem, &p->base, err == HOP_OK); /* before the 202 */
    registry_note_send(p->base.entry, api);
    switch (err) {
    case HOP_OK:
        return respond_static(&p->base, conn, MHD_HTTP_ACCEPTED, "application/json",
                              "{\"status\":\"accepted\"}");
    case HOP_TOO_BIG:
        fail_too_big(p);
        return respond_error(&p->base, conn, API_TOO_BIG);
    default: /* HOP_IO is logged by the core; ENOSPC is a 507 storage_full */
        if (api_error_status(api) >= 500)
            return respond_refused(p, conn, api);
        return respond_error(&p->base, conn, api);
    }
}

/* hop_send_batch_async()'s callback, on a sync thread: the outcome is in. */
static void on_synced(void *arg, hop_err err, int err_no)
{
    post_request *p = arg;
    pthread_mutex_lock(&p->sync_lock);
    p->sent = err;
    p->sent_errno = err_no;
    p->synced = true;
    MHD_resume_connection(p->conn);
    pthread_mutex_unlock(&p->sync_lock);
}

/* A durable POST of msgs[0..n): written now and answered once synced.
 * When no sync of the channel is under way and this thread serves no other
 * connection, it makes the sync and answers at once (a sender waiting for
 * each answer then costs no hand-off between threads; thread_conns.c says
 * why not with other connections); else the connection waits, suspended,
 * for the sync thread's callback, and post_resume() answers (msgs is not
 * needed then: the records are written). */
static enum MHD_Result send_durable(post_request *p, struct MHD_Connection *conn,
                                    const hop_buf *msgs, size_t n)
{
    p->conn = conn;
    /* Hold the lock across the send: the callback may come before the
     * connection is suspended, and must resume it only after. */
    pthread_mutex_lock(&p->sync_lock);
    bool synced = false;
    hop_err err = thread_conns_alone()
                      ? hop_send_batch_lead(p->base.entry->ch, msgs, n, on_synced, p, &synced)
                      : hop_send_batch_async(p->base.entry->ch, msgs, n, on_synced, p);
    int err_no = errno;
    bool wait = err == HOP_OK && !synced;
    if (wait) {
        MHD_suspend_connection(conn);
        p->base.phase = REQUEST_SUSPENDED;
    } else if (synced) { /* as on_synced() would: post_end() settles the key by it */
        p->sent = err;
        p->sent_errno = err_no;
        p->synced = true;
    }
    pthread_mutex_unlock(&p->sync_lock);
    return wait ? MHD_YES : post_answer(p, conn, err, err_no);
}

/* Send msgs[0..n) as the options say: answered now, or once synced. */
static enum MHD_Result send_messages(post_request *p, struct MHD_Connection *conn,
                                     const hop_buf *msgs, size_t n)
{
    hop_channel *ch = p->base.entry->ch;
    if (p->delay_ms > 0) { /* durable too: hop_send_at() syncs before it returns */
        uint64_t due = hop_now_ms() + p->delay_ms;
        hop_err err = hop_send_batch_at(ch, msgs, n, due);
        return post_answer(p, conn, err, errno);
    }
    if (p->base.server->options.durable)
        return send_durable(p, conn, msgs, n);
    hop_err err = p->batch ? hop_send_batch(ch, msgs, n) : hop_send(ch, msgs[0].data, msgs[0].len);
    return post_answer(p, conn, err, errno); /* errno says why, on HOP_IO */
}

/* Write the envelope's prefix ahead of the body that came in: the headers
 * post_begin() collected (collected again: MHD keeps them for the request,
 * they fit as they did then), a new id, the time now as the time the
 * message was accepted, and its TTL. False, with p failed, if they no
 * longer fit. */
static bool finish_envelope(post_request *p, struct MHD_Connection *conn)
{
    stored_headers st;
    if (!collect_headers(p, conn, &st))
        return false;
    if (envelope_prefix_size(st.headers, st.count) != p->prefix_len) {
        request_fail(&p->base, API_INTERNAL, "the headers to keep changed during the request");
        return false;
    }
    unsigned char id[ENVELOPE_ID_LEN];
    envelope_new_id(id);
    envelope_write_prefix(p->buf, st.headers, st.count, id, hop_now_ms(), p->ttl_ms);
    return true;
}

/* ---- the signature (--verify) ---- */

/* What header_of() looks for and finds. */
typedef struct header_probe {
    const char *name;
    unsigned count;
    const char *value;
    size_t len;
} header_probe;

static enum MHD_Result probe_header(void *cls, enum MHD_ValueKind kind, const char *name,
                                    size_t name_len, const char *value, size_t value_len)
{
    (void)kind;
    header_probe *h = cls;
    if (name_len != strlen(h->name) || strncasecmp(name, h->name, name_len) != 0)
        return MHD_YES;
    if (h->count++ == 0) {
        h->value = value ? value : "";
        h->len = value ? value_len : 0;
    }
    return MHD_YES;
}

/* verify_header_fn over the request headers of the connection ctx. */
static unsigned header_of(void *ctx, const char *name, const char **value, size_t *len)
{
    header_probe h = {.name = name};
    MHD_get_connection_values_n(ctx, MHD_HEADER_KIND, probe_header, &h);
    *value = h.value;
    *len = h.len;
    return h.count;
}

/* A refusal for a bad signature, counted on the channel if it exists
 * (the POST did not make it), else server-wide. */
static void count_bad_signature(request *req)
{
    registry_entry *e = registry_find(req->route.name);
    if (e)
        atomic_fetch_add(&e->signature_failures_total, 1);
    else
        verify_count_failure_without_channel();
    registry_put(e);
}

/* For a channel --verify covers: the signature over the body as received,
 * then the channel opened. True to go on storing; false once answered
 * (*answer): 401 bad_signature, or the channel refused, with the body
 * back either way. */
static bool verified(post_request *p, struct MHD_Connection *conn, enum MHD_Result *answer)
{
    if (p->verify == NULL)
        return true;
    verify_result result =
        verify_check(p->verify, header_of, conn, p->buf + p->prefix_len, p->body_len, hop_now_ms());
    if (result != VERIFY_OK) {
        count_bad_signature(&p->base);
        *answer = respond_refused(p, conn, API_BAD_SIGNATURE);
        return false;
    }
    if (!request_open_channel(&p->base)) {
        *answer = respond_refused(p, conn, p->base.error);
        return false;
    }
    return true;
}

static enum MHD_Result post_finish(request *req, struct MHD_Connection *conn)
{
    post_request *p = post_of(req);
    enum MHD_Result answer;
    if (!verified(p, conn, &answer))
        return answer;
    if (!p->batch) {
        if (!finish_envelope(p, conn))
            return respond_error(req, conn, req->error);
        if (!idempotency_reserve(&p->idem, req, conn, &answer))
            return answer;
        hop_buf one = {p->buf, p->prefix_len + p->body_len};
        return send_messages(p, conn, &one, 1);
    }
    batch b;
    if (!batch_build(req, p->buf + p->prefix_len, p->body_len, p->boundary, p->ttl_ms, &b)) {
        if (req->error == API_TOO_BIG)
            count_too_big(req);
        return respond_error(req, conn, req->error);
    }
    if (!idempotency_reserve(&p->idem, req, conn, &answer)) {
        batch_free(&b);
        return answer;
    }
    enum MHD_Result result = send_messages(p, conn, b.msgs, b.count);
    batch_free(&b);
    return result;
}

/* A durable POST, resumed by on_synced(). */
static enum MHD_Result post_resume(request *req, struct MHD_Connection *conn)
{
    post_request *p = post_of(req);
    pthread_mutex_lock(&p->sync_lock);
    hop_err err = p->sent;
    int err_no = p->sent_errno;
    pthread_mutex_unlock(&p->sync_lock);
    return post_answer(p, conn, err, err_no);
}

static void post_end(request *req, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    post_request *p = post_of(req);
    /* a durable POST whose connection went before its answer: the sync's
     * outcome settles its key all the same */
    idempotency_settle(&p->idem, req, p->synced && p->sent == HOP_OK);
    if (req->server->options.durable)
        pthread_mutex_destroy(&p->sync_lock);
    if (p->buf)
        budget_release(p->cap);
    free(p->buf);
    free(p->content_type);
}

const request_handler post_handler = {
    .begin = post_begin,
    .upload = post_upload,
    .finish = post_finish,
    .resume = post_resume,
    .end = post_end,
};
