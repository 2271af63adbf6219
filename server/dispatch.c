/* dispatch.c - a request's phases (see request.h): routing and the checks
 * of the first call, the body read or dropped, and the calls that answer,
 * each handed to the handler of the request's route.
 *
 * Responses are queued from the last call, so that the connection stays
 * reusable. The body of a refused request is read and dropped first (up to
 * DISCARD_LIMIT); only a client that waits for "100 Continue", or announces
 * a body beyond that limit, is answered from the first call, without
 * reading the body and without keeping the connection. */
#include "dispatch.h"

#include "auth.h"
#include "datadir.h"
#include "get.h"
#include "info.h"
#include "pause.h"
#include "peek.h"
#include "post.h"
#include "purge.h"
#include "receipt.h"
#include "redrive.h"
#include "respond.h"
#include "stream.h"
#include "ui.h"
#include "whoami.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Body bytes of a refused request that are read and dropped so that the
 * client gets its answer on a clean connection; beyond, the connection is
 * closed. */
#define DISCARD_LIMIT ((size_t)64 << 20)

/* Room for the request of any route: each begins with a request. */
typedef union any_request {
    request base;
    post_request post;
    get_request get;
    receipt_request receipt;
    stream_request stream;
    peek_request peek;
    redrive_request redrive;
} any_request;

request *dispatch_new(const server_context *server, const char *target)
{
    request *req = calloc(1, sizeof *req);
    if (req == NULL)
        return NULL;
    if ((req->target = strdup(target)) == NULL) {
        free(req);
        return NULL;
    }
    req->server = server;
    return req;
}

static const request_handler *handler_of(route_kind kind)
{
    switch (kind) {
    case ROUTE_HEALTHZ:
        return &healthz_handler;
    case ROUTE_READYZ:
        return &readyz_handler;
    case ROUTE_STATUS:
        return &status_handler;
    case ROUTE_METRICS:
        return &metrics_handler;
    case ROUTE_LIST:
        return &list_handler;
    case ROUTE_PAUSE:
        return &pause_handler;
    case ROUTE_RESUME:
        return &resume_handler;
    case ROUTE_POST:
        return &post_handler;
    case ROUTE_GET:
        return &get_handler;
    case ROUTE_ACK:
        return &ack_handler;
    case ROUTE_EXTEND:
        return &extend_handler;
    case ROUTE_RELEASE:
        return &release_handler;
    case ROUTE_DELETE:
        return &delete_handler;
    case ROUTE_PEEK:
        return &peek_handler;
    case ROUTE_PURGE:
        return &purge_handler;
    case ROUTE_REDRIVE:
        return &redrive_handler;
    case ROUTE_UI:
        return &ui_handler;
    case ROUTE_WHOAMI:
        return &whoami_handler;
    case ROUTE_ERROR:
    case ROUTE_KINDS:
        break;
    }
    return NULL;
}

/* ---- the first call: headers ---- */

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
 * header name with whitespace or control bytes ("Transfer-Encoding :
 * chunked", which a proxy in front may read as Transfer-Encoding).
 * Answered 400 and the connection closed, as RFC 9112 asks: a request
 * smuggled behind it is never read. */
static bool framing_ambiguous(struct MHD_Connection *conn)
{
    framing f = {0};
    MHD_get_connection_values_n(conn, MHD_HEADER_KIND, count_framing, &f);
    return f.content_lengths > 1 || (f.content_lengths && f.transfer_encodings) ||
           f.transfer_encodings > 1 || f.not_chunked || f.bad_name;
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

/* The bytes the request of handler takes. A GET's only what it needs, as
 * thousands of them may wait at once (about 200 bytes less each than the
 * largest, a POST's); the rest the largest, so that no handler is given
 * less than it casts to. */
static size_t request_size(const request_handler *handler)
{
    if (handler == &get_handler)
        return sizeof(get_request);
    if (handler == &stream_handler)
        return sizeof(stream_request);
    return sizeof(any_request);
}

/* Give *reqp room for the request of its handler, the new bytes zero.
 * False, with *reqp failed (API_NOMEM) and unchanged otherwise, if out of
 * memory. Before begin: nothing holds the request's address yet but MHD's
 * context pointer, which is *reqp. */
static bool grow_request(request **reqp)
{
    size_t size = request_size((*reqp)->handler);
    request *grown = realloc(*reqp, size);
    if (grown == NULL) {
        (*reqp)->handler = NULL; /* its begin never ran */
        request_fail(*reqp, API_NOMEM, NULL);
        return false;
    }
    memset((char *)grown + sizeof *grown, 0, size - sizeof *grown);
    *reqp = grown;
    return true;
}

/* Route req, and begin it with its route's handler. Its token comes
 * first (auth.h): a refused one learns nothing of the route. A valid
 * channel name that is a file of the data directory is refused whatever
 * follows it. */
static void route_request(request **reqp, struct MHD_Connection *conn, const char *method)
{
    request *req = *reqp;
    route *r = &req->route;
    route_parse(req->target, route_method_of(method), r);
    req->phase = REQUEST_BODY;
    if (!auth_check(req, conn))
        return; /* refused: nothing is begun, nothing stored */
    if (r->name[0] && datadir_name_reserved(r->name)) {
        request_fail(req, API_BAD_NAME, "%s is reserved: it is a file of the data directory",
                     r->name);
    } else if (r->kind == ROUTE_ERROR) {
        request_fail(req, r->error, NULL);
    } else {
        req->handler = handler_of(r->kind);
        if (r->kind == ROUTE_GET && stream_wanted(conn))
            req->handler = &stream_handler; /* Accept: text/event-stream */
        if (!grow_request(reqp))
            return;
        req = *reqp;
        if (req->handler->begin)
            req->handler->begin(req, conn);
    }
}

static enum MHD_Result on_headers(request **reqp, struct MHD_Connection *conn, const char *method)
{
    request *req = *reqp;
    if (framing_ambiguous(conn)) {
        request_fail(req, API_BAD_FRAMING, NULL);
        req->phase = REQUEST_ANSWERED;
        return respond_error(req, conn, req->error);
    }
    route_request(reqp, conn, method);
    req = *reqp;
    if (req->phase == REQUEST_REFUSED && answer_before_body(conn)) {
        req->phase = REQUEST_ANSWERED;
        return respond_error(req, conn, req->error);
    }
    return MHD_YES;
}

/* ---- the calls that follow ---- */

/* A chunk of body: the handler's while the request is accepted, else read
 * and dropped. */
static enum MHD_Result on_body(request *req, const char *data, size_t *size)
{
    if (req->phase == REQUEST_BODY && req->handler->upload)
        req->handler->upload(req, data, *size);
    else if ((req->discarded += *size) > DISCARD_LIMIT)
        return MHD_NO; /* an endless body of a refused request: enough */
    *size = 0;
    return MHD_YES;
}

/* A call without body: the body is complete, or the connection resumed. */
static enum MHD_Result on_rest(request *req, struct MHD_Connection *conn)
{
    enum MHD_Result result;
    switch (req->phase) {
    case REQUEST_BODY:
        result = req->handler->finish(req, conn);
        if (req->phase != REQUEST_SUSPENDED)
            req->phase = REQUEST_ANSWERED;
        return result;
    case REQUEST_REFUSED:
        req->phase = REQUEST_ANSWERED;
        return respond_error(req, conn, req->error);
    case REQUEST_SUSPENDED:
        result = req->handler->resume(req, conn);
        req->phase = REQUEST_ANSWERED;
        return result;
    case REQUEST_ANSWERED:
        return MHD_YES; /* answered from the first call */
    case REQUEST_HEADERS:
        break;
    }
    return MHD_NO;
}

enum MHD_Result dispatch_step(request **reqp, struct MHD_Connection *conn, const char *method,
                              const char *upload_data, size_t *upload_data_size)
{
    request *req = *reqp;
    if (req->phase == REQUEST_HEADERS)
        return on_headers(reqp, conn, method);
    if (*upload_data_size > 0)
        return on_body(req, upload_data, upload_data_size);
    return on_rest(req, conn);
}

void dispatch_end(request *req, enum MHD_RequestTerminationCode toe)
{
    if (req->handler && req->handler->end)
        req->handler->end(req, toe);
    registry_put(req->entry);
    auth_release(req);
    free(req->message);
    free(req->target);
    free(req); /* the route's request it begins */
}
