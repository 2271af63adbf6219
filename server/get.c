/* get.c - GET /channels/NAME (see get.h): the query read from the first
 * call, the message taken or waited for from the last, the wait's outcome
 * answered from the resumption, the messages settled at the end. */
#include "get.h"

#include "expiry.h"
#include "forward.h"

#include "giveback.h"
#include "query.h"
#include "respond.h"
#include "skip_corrupt.h"

#include <stdlib.h>

static get_request *get_of(request *req)
{
    return (get_request *)req;
}

static void get_begin(request *req, struct MHD_Connection *conn)
{
    get_request *g = get_of(req);
    longpoll_init(&g->lp, conn);
    if (!query_wait(req, conn, &g->wait_ms) || !query_max(req, conn, DELIVERY_MAX_BATCH, &g->max) ||
        !query_lease(req, conn, &g->lease_ms))
        return;
    if (forward_is_forwarded(req->route.name)) {
        request_fail(req, API_FORWARDED, NULL); /* its messages are the forwarder's */
        return;
    }
    request_open_channel(req);
}

/* Take the messages of e's channel that are ready now into msgs[n..max)
 * (lens alike); for a lease, only as many as can be held (lease_hold():
 * the channel's memory and the server's budget count them), so that a
 * batch gets fewer messages rather than more than the budget. Returns how
 * many msgs holds then. */
static size_t take_ready(registry_entry *e, void **msgs, size_t *lens, size_t n, size_t max,
                         bool leased)
{
    unsigned failed = 0; /* for the whole batch */
    while (n < max) {
        size_t got = 1;
        /* expired ones dropped; a lease holds them one by one */
        hop_err err = leased ? expiry_recv(e, &msgs[n], &lens[n])
                             : expiry_recv_batch(e, msgs + n, lens + n, max - n, &got);
        if (err == HOP_OK && leased && lease_hold(e, msgs[n]) != API_OK) {
            giveback_unsent(e, msgs[n], lens[n]); /* back at the head, in order */
            break;
        }
        if (err == HOP_OK)
            n += got;
        else if (!skip_corrupt(err, &failed))
            break;
    }
    return n;
}

/* 200 with msg (taken) and, for ?max=N, up to N - 1 more that are ready
 * now. */
static enum MHD_Result respond_messages(get_request *g, struct MHD_Connection *conn, void *msg,
                                        size_t len)
{
    request *req = &g->base;
    size_t max = g->max ? g->max : 1;
    void **msgs = malloc(max * sizeof *msgs);
    size_t *lens = malloc(max * sizeof *lens);
    if (msgs == NULL || lens == NULL) {
        free(msgs);
        free(lens);
        giveback_unsent(req->entry, msg, len);
        return respond_error(req, conn, API_NOMEM);
    }
    api_error held = g->lease_ms ? lease_hold(req->entry, msg) : API_OK;
    if (held != API_OK) {
        free(msgs);
        free(lens);
        giveback_unsent(req->entry, msg, len);
        return respond_error(req, conn, held);
    }
    msgs[0] = msg;
    lens[0] = len;
    size_t n = take_ready(req->entry, msgs, lens, 1, max, g->lease_ms > 0);
    g->dlv.entry = req->entry;
    g->dlv.lease_ms = g->lease_ms;
    g->dlv.multipart = g->max > 0;
    g->dlv.max_deliveries = req->server->options.max_deliveries;
    api_error err;
    struct MHD_Response *r = delivery_respond(&g->dlv, msgs, lens, n, &err);
    free(msgs);
    free(lens);
    if (r == NULL)
        return respond_error(req, conn, err);
    return respond_queue(req, conn, MHD_HTTP_OK, r);
}

static enum MHD_Result get_finish(request *req, struct MHD_Connection *conn)
{
    get_request *g = get_of(req);
    void *msg = NULL;
    size_t len = 0;
    hop_err err = HOP_OK;
    switch (longpoll_begin(&g->lp, req->entry, g->wait_ms, &msg, &len, &err)) {
    case LONGPOLL_GOT:
        return respond_messages(g, conn, msg, len);
    case LONGPOLL_EMPTY:
        return respond_no_content(req, conn);
    case LONGPOLL_SUSPENDED:
        req->phase = REQUEST_SUSPENDED;
        return MHD_YES;
    case LONGPOLL_FAILED:
        if (err == HOP_CLOSED && atomic_load(&req->entry->deleted))
            return respond_no_content(req, conn); /* deleted as it came */
        return respond_error(req, conn, api_error_of_hop(err));
    }
    return respond_error(req, conn, API_INTERNAL);
}

/* The wait ended: a message came, the deadline passed (or the server is
 * stopping), or the channel closed. */
static enum MHD_Result get_resume(request *req, struct MHD_Connection *conn)
{
    get_request *g = get_of(req);
    void *msg = NULL;
    size_t len = 0;
    switch (longpoll_take(&g->lp, &msg, &len)) {
    case LONGPOLL_READY:
        if (longpoll_client_gone(conn)) { /* went away after the message came */
            giveback_unsent(req->entry, msg, len);
            return MHD_NO;
        }
        return respond_messages(g, conn, msg, len);
    case LONGPOLL_GONE:
        return MHD_NO; /* the message is back in the channel already */
    case LONGPOLL_TIMED_OUT:
        return respond_no_content(req, conn);
    case LONGPOLL_CLOSED: /* the server is stopping, or the channel was deleted */
        if (atomic_load(&req->entry->deleted))
            return respond_no_content(req, conn);
        return respond_error(req, conn, API_CLOSED);
    case LONGPOLL_IDLE:
    case LONGPOLL_WAITING:
        break;
    }
    return respond_error(req, conn, API_INTERNAL);
}

static void get_end(request *req, enum MHD_RequestTerminationCode toe)
{
    get_request *g = get_of(req);
    void *msg;
    size_t len;
    longpoll_end(&g->lp, &msg, &len);
    if (msg)
        giveback_unsent(req->entry, msg, len); /* arrived, but never answered */
    if (g->dlv.count == 0)
        return;
    /* a response that did not complete may not have reached its client */
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        delivery_succeeded(&g->dlv);
    else
        delivery_failed(&g->dlv);
}

const request_handler get_handler = {
    .begin = get_begin,
    .finish = get_finish,
    .resume = get_resume,
    .end = get_end,
};
