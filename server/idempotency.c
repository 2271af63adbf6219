/* idempotency.c - a POST's key (see idempotency.h). */
#include "idempotency.h"

#include "respond.h"

#include <string.h>

/* The key's header in req: Idempotency-Key, or else --dedup-header's.
 * NULL if neither is there. */
static const char *key_header(const request *req, struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, IDEMPOTENCY_HEADER);
    const char *other = req->server->options.dedup_header;
    if (v == NULL && other != NULL)
        v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, other);
    return v;
}

bool idempotency_read(idempotency *id, request *req, struct MHD_Connection *conn)
{
    id->len = 0;
    id->pending = NULL;
    if (!dedup_enabled())
        return true;
    const char *v = key_header(req, conn);
    if (v == NULL)
        return true;
    size_t len = strlen(v);
    if (len == 0 || len > DEDUP_MAX_KEY) {
        request_fail(req, API_BAD_KEY, "the key (%s%s%s) must be 1 to %d bytes", IDEMPOTENCY_HEADER,
                     req->server->options.dedup_header ? " or " : "",
                     req->server->options.dedup_header ? req->server->options.dedup_header : "",
                     DEDUP_MAX_KEY);
        return false;
    }
    memcpy(id->key, v, len);
    id->len = len;
    return true;
}

/* 200 {"status":"duplicate"} with Hopper-Duplicate: true. */
static enum MHD_Result respond_duplicate(const request *req, struct MHD_Connection *conn)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(
        strlen(DUPLICATE_BODY), (void *)DUPLICATE_BODY, MHD_RESPMEM_PERSISTENT);
    if (r) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        MHD_add_response_header(r, DUPLICATE_HEADER, "true");
    }
    return respond_queue(req, conn, MHD_HTTP_OK, r);
}

/* 409 duplicate_pending, to be tried again in a second. */
static enum MHD_Result respond_pending(const request *req, struct MHD_Connection *conn)
{
    struct MHD_Response *r = api_error_response(API_DUPLICATE_PENDING, NULL);
    if (r)
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, "1");
    return respond_queue(req, conn, api_error_status(API_DUPLICATE_PENDING), r);
}

bool idempotency_reserve(idempotency *id, request *req, struct MHD_Connection *conn,
                         enum MHD_Result *answer)
{
    dedup_store *s = req->entry->dedup;
    if (id->len == 0 || s == NULL)
        return true;
    switch (dedup_reserve(s, id->key, id->len, hop_now_ms(), &id->pending)) {
    case DEDUP_NEW:
        return true;
    case DEDUP_DUPLICATE:
        *answer = respond_duplicate(req, conn);
        return false;
    case DEDUP_PENDING:
        *answer = respond_pending(req, conn);
        return false;
    case DEDUP_NOMEM:
        break;
    }
    *answer = respond_error(req, conn, API_NOMEM);
    return false;
}

void idempotency_settle(idempotency *id, request *req, bool accepted)
{
    if (id->pending == NULL)
        return;
    if (accepted)
        dedup_commit(req->entry->dedup, id->pending, hop_now_ms());
    else
        dedup_cancel(req->entry->dedup, id->pending);
    id->pending = NULL;
}
