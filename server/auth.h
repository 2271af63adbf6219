/* auth.h - who may make a request: the one table that gives every route
 * the class of token it needs, and the decision for one request against
 * the token set in force (auth_store.h). Without --auth-file every request
 * is allowed, as before tokens existed.
 *
 * The classes (README "Security" has the same table):
 *   AUTH_PUBLIC   no token: /healthz, /readyz (probes of a load balancer
 *                 or an orchestrator, which have no token; they tell
 *                 whether the process runs and takes messages, nothing
 *                 more), and the dashboard's static files once it has
 *                 routes
 *   AUTH_TOKEN    a valid token, whatever its scopes: /whoami, and a path
 *                 with no route (its 404, 405 or 400 is for token holders)
 *   AUTH_SEND     send:NAME    POST /channels/NAME
 *   AUTH_RECEIVE  receive:NAME GET /channels/NAME (plain, batch, long
 *                 poll, stream), peek, ack, extend, release
 *   AUTH_ADMIN    admin:NAME   purge, delete, redrive, pause, resume
 *   AUTH_METRICS  metrics      /status, /metrics, GET /channels; public
 *                 with --public-metrics
 * Scopes do not imply one another: admin:jobs does not read jobs.
 *
 * A request is decided at its first call, with its headers, before any of
 * its body is read; a refusal is answered as dispatch.c answers any
 * refusal there (at once to a client that sent Expect: 100-continue). */
#ifndef HOPPER_SERVER_AUTH_H
#define HOPPER_SERVER_AUTH_H

#include "auth_file.h"
#include "request.h"
#include "route.h"

#include <microhttpd.h>
#include <stdbool.h>

typedef enum auth_class {
    AUTH_UNLISTED = 0, /* a route the table forgot: refused to every token */
    AUTH_PUBLIC,
    AUTH_TOKEN,
    AUTH_SEND,
    AUTH_RECEIVE,
    AUTH_ADMIN,
    AUTH_METRICS,
} auth_class;

/* The class of kind's requests. */
auth_class auth_class_of(route_kind kind);

typedef enum auth_verdict {
    AUTH_ALLOWED,
    AUTH_NO_TOKEN,  /* 401: no "Authorization: Bearer" */
    AUTH_BAD_TOKEN, /* 401 invalid_token: a token the set does not hold */
    AUTH_NO_SCOPE,  /* 403: a known token without the scope */
} auth_verdict;

/* What a decision reads of a request. */
typedef struct auth_question {
    route_kind kind;
    const char *channel;       /* the route's channel name, "" if none */
    const char *authorization; /* the Authorization header's value, or NULL */
    bool public_metrics;       /* --public-metrics */
    /* A POST to a channel whose senders prove themselves with a webhook
     * signature (--verify) instead of a token: it needs none. */
    bool signed_channel;
} auth_question;

/* Decide q against set (NULL: auth is off, everything is allowed). OUT:
 * *who, the token presented when set holds it (else NULL). */
auth_verdict auth_decide(const auth_set *set, const auth_question *q, const auth_token **who);

/* Decide req (routed, its route's handler not begun) from its headers on
 * conn. It keeps a reference to the set in force in req->auth and its
 * token in req->token, released by auth_release(). False, with req failed
 * (API_UNAUTHORIZED, API_INVALID_TOKEN or API_FORBIDDEN), if refused. */
bool auth_check(request *req, struct MHD_Connection *conn);

/* Give back what auth_check() holds for req. */
void auth_release(request *req);

#endif
