/* peek.c - looking at what a channel holds without taking it (see
 * peek.h). The core shows messages to a callback under the channel's
 * locks (hop_peek()); the callback copies them, and the response is built
 * after, from the copies: at most N of them, like a GET ?max=N. Like a
 * GET's, the copies and the response are charged to the server's budget
 * while they exist, so that the channels' memory yields to them. */
#include "peek.h"

#include "budget.h"
#include "delivery.h"
#include "expiry.h"
#include "log.h"
#include "query.h"
#include "respond.h"

#include <stdlib.h>
#include <string.h>

static void peek_begin(request *req, struct MHD_Connection *conn)
{
    peek_request *p = (peek_request *)req;
    if (!query_max(req, conn, DELIVERY_MAX_BATCH, &p->max))
        return;
    if (p->max == 0)
        p->max = PEEK_DEFAULT_MAX;
    request_find_channel(req);
}

/* The copies hop_peek() makes for us. */
typedef struct shown {
    void **msgs;
    size_t *lens;
    size_t n, max;
    size_t charged; /* what the copies are charged to the budget */
    uint64_t now_ms;
    bool nomem;
} shown;

/* hop_peek()'s callback: copy data unless it has expired. */
static bool keep(void *arg, const void *data, size_t len)
{
    shown *s = arg;
    if (expiry_passed(data, len, s->now_ms))
        return true; /* a GET would drop it: not shown, not counted */
    void *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        s->nomem = true;
        return false;
    }
    memcpy(copy, data, len);
    s->charged += hop_message_cost(len);
    budget_charge(hop_message_cost(len));
    s->msgs[s->n] = copy;
    s->lens[s->n++] = len;
    return s->n < s->max;
}

static enum MHD_Result peek_finish(request *req, struct MHD_Connection *conn)
{
    peek_request *p = (peek_request *)req;
    shown s = {.max = p->max, .now_ms = hop_now_ms()};
    s.msgs = calloc(p->max, sizeof *s.msgs);
    s.lens = calloc(p->max, sizeof *s.lens);
    hop_err err = s.msgs && s.lens ? hop_peek(req->entry->ch, SIZE_MAX, keep, &s, NULL) : HOP_NOMEM;
    enum MHD_Result result;
    if (err == HOP_OK && s.nomem)
        err = HOP_NOMEM;
    if (err != HOP_OK) {
        if (err == HOP_IO)
            log_error("channel %s: peek: a queue file could not be read", req->route.name);
        result = respond_error(req, conn, api_error_of_hop(err));
    } else if (s.n == 0) {
        result = respond_no_content(req, conn);
    } else {
        size_t copied;
        struct MHD_Response *r = delivery_peek_response(s.msgs, s.lens, s.n, &copied);
        p->charged = r ? copied : 0; /* the response's copy, until the request ends */
        budget_charge(p->charged);
        result = respond_queue(req, conn, MHD_HTTP_OK, r);
    }
    for (size_t i = 0; i < s.n; i++)
        free(s.msgs[i]);
    budget_release(s.charged);
    free(s.msgs);
    free(s.lens);
    return result;
}

static void peek_end(request *req, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    peek_request *p = (peek_request *)req;
    budget_release(p->charged);
    p->charged = 0;
}

const request_handler peek_handler = {.begin = peek_begin, .finish = peek_finish, .end = peek_end};
