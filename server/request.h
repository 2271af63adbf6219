/* request.h - one HTTP request as a small state machine: the base struct
 * every route's request begins with, its phases, the handler each route
 * gives them, and the server context handlers take their options from.
 *
 * Phases (dispatch.c moves a request along; MHD calls the access handler
 * once per step):
 *   REQUEST_HEADERS    nothing seen yet. The first call comes with the
 *                      headers: routing, then the handler's begin
 *                      (validate, reserve). -> BODY, or REFUSED.
 *   REQUEST_BODY       one call per chunk of body (the handler's upload; a
 *                      handler without one drops the body), then a last
 *                      call: the handler's finish answers (-> ANSWERED) or
 *                      suspends the connection (-> SUSPENDED).
 *   REQUEST_REFUSED    an error to answer (request_fail()): the body is read
 *                      and dropped, and the last call answers it.
 *                      -> ANSWERED.
 *   REQUEST_SUSPENDED  a GET waiting for a message, a durable POST waiting
 *                      for its sync. The call after MHD resumes the
 *                      connection goes to the handler's resume, which
 *                      answers. -> ANSWERED.
 *   REQUEST_ANSWERED   a response is queued; later calls only drop body.
 *                      (A stream, stream.h, has phases of its own from
 *                      here: its content reader suspends and resumes the
 *                      connection, the access handler sees none of it.)
 * Whatever the phase, MHD's completion callback ends the request: the
 * handler's end (if its begin ran) frees what the request holds and
 * settles the fate of the messages its response carried.
 *
 * Each route's request is a struct whose first member is a request (for
 * instance post_request in post.h); its handler casts. dispatch.c
 * allocates the base request when the request line is read and grows it
 * to its route's request once routed (a GET's is smaller than a POST's). */
#ifndef HOPPER_SERVER_REQUEST_H
#define HOPPER_SERVER_REQUEST_H

#include "auth_file.h"
#include "errors.h"
#include "options.h"
#include "registry.h"
#include "route.h"

#include <microhttpd.h>
#include <stdatomic.h>
#include <stddef.h>

/* What every handler may read of the server. One per daemon, owned by
 * http.c; requests borrow it. */
typedef struct server_context {
    server_options options; /* copied at start; read-only while the daemon runs */
    atomic_bool stopping;   /* http_quiesce() was called */
} server_context;

typedef enum request_phase {
    REQUEST_HEADERS = 0,
    REQUEST_BODY,
    REQUEST_REFUSED,
    REQUEST_SUSPENDED,
    REQUEST_ANSWERED,
} request_phase;

typedef struct request request;

/* What a route does in each phase. */
typedef struct request_handler {
    /* REQUEST_HEADERS: validate, look up or create what the request needs;
     * request_fail() to refuse. NULL: nothing to do. */
    void (*begin)(request *req, struct MHD_Connection *conn);
    /* REQUEST_BODY, once per chunk of body (data borrowed for the call);
     * request_fail() refuses the rest. NULL: the body is dropped. */
    void (*upload)(request *req, const char *data, size_t size);
    /* REQUEST_BODY, the last call: queue the answer, or suspend conn and
     * set req->phase to REQUEST_SUSPENDED. */
    enum MHD_Result (*finish)(request *req, struct MHD_Connection *conn);
    /* REQUEST_SUSPENDED, resumed: queue the answer. NULL if finish never
     * suspends. */
    enum MHD_Result (*resume)(request *req, struct MHD_Connection *conn);
    /* The request is over (toe: how, from MHD), in any phase once begin
     * ran: free what it holds. NULL: it holds nothing. */
    void (*end)(request *req, enum MHD_RequestTerminationCode toe);
} request_handler;

struct request {
    request_phase phase;
    const request_handler *handler; /* the route's, once its begin ran; else NULL */
    const server_context *server;   /* borrowed; outlives every request */
    char *target;                   /* the raw request-target (path?query), new */
    route route;                    /* what the request is for: kind, name, receipt */
    registry_entry *entry;          /* the channel, once looked up or created */
    api_error error;                /* REQUEST_REFUSED: the answer */
    auth_set *auth;                 /* the token set it was decided with (auth.h), or NULL */
    const auth_token *token;        /* the token it presented, in auth; or NULL */
    char *message;                  /* its message, new; NULL for the table's. Not
                                     * an array: a waiting GET needs none */
    size_t discarded;               /* body bytes read and dropped */
};

/* Refuse req with err: req->phase becomes REQUEST_REFUSED; the message is
 * fmt's, or the table's (errors.h) when fmt is NULL. */
void request_fail(request *req, api_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Look up req's channel (req->route.name), creating it if needed:
 * req->entry. False, with req failed, when it cannot be (too many
 * channels, or what opening it failed with). */
bool request_open_channel(request *req);

/* Look up req's channel without creating it: req->entry. False, with req
 * failed (API_NO_CHANNEL), when there is none: the requests that act on a
 * channel (pause, peek, purge, delete) never make one. */
bool request_find_channel(request *req);

#endif
