/* receipt.c - acknowledge, extend and release a lease (see receipt.h). */
#include "receipt.h"

#include "lease.h"
#include "query.h"
#include "respond.h"

static void receipt_begin(request *req, struct MHD_Connection *conn)
{
    (void)conn;
    if ((req->entry = registry_find(req->route.name)) == NULL)
        request_fail(req, API_UNKNOWN_RECEIPT, NULL); /* not made: it has no leases */
}

static void extend_begin(request *req, struct MHD_Connection *conn)
{
    receipt_request *r = (receipt_request *)req;
    if (query_lease_required(req, conn, &r->lease_ms))
        receipt_begin(req, conn);
}

/* 204 when the lease table said API_OK, else its error. */
static enum MHD_Result answer(request *req, struct MHD_Connection *conn, api_error err)
{
    if (err != API_OK)
        return respond_error(req, conn, err);
    return respond_no_content(req, conn);
}

static enum MHD_Result ack_finish(request *req, struct MHD_Connection *conn)
{
    return answer(req, conn, lease_ack(req->entry, req->route.receipt));
}

static enum MHD_Result extend_finish(request *req, struct MHD_Connection *conn)
{
    receipt_request *r = (receipt_request *)req;
    return answer(req, conn, lease_extend(req->entry, req->route.receipt, r->lease_ms));
}

static void release_begin(request *req, struct MHD_Connection *conn)
{
    receipt_request *r = (receipt_request *)req;
    if (query_delay(req, conn, &r->delay_ms))
        receipt_begin(req, conn);
}

static enum MHD_Result release_finish(request *req, struct MHD_Connection *conn)
{
    receipt_request *r = (receipt_request *)req;
    return answer(req, conn, lease_release(req->entry, req->route.receipt, r->delay_ms));
}

const request_handler ack_handler = {.begin = receipt_begin, .finish = ack_finish};
const request_handler extend_handler = {.begin = extend_begin, .finish = extend_finish};
const request_handler release_handler = {.begin = release_begin, .finish = release_finish};
