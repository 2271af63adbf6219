/* route.h - what a request is for, from its method and its raw
 * request-target. Pure parsing: no MHD connection, no registry, no data
 * directory, so that it reads (and can be tested) on its own.
 *
 * The routes:
 *   GET, HEAD  /healthz, /readyz, /status, /metrics, /whoami
 *   GET, HEAD  /, /ui/ANYTHING                           (ROUTE_UI: the dashboard,
 *              whose handler answers 404 for a file it does not have)
 *   GET, HEAD  /channels                                  (ROUTE_LIST)
 *   GET, POST, DELETE  /channels/NAME
 *   POST       /channels/NAME/pause, /channels/NAME/resume, /channels/NAME/redrive
 *   GET, DELETE  /channels/NAME/messages                 (ROUTE_PEEK, ROUTE_PURGE)
 *   DELETE     /channels/NAME/messages/RECEIPT           (ROUTE_ACK)
 *   POST       /channels/NAME/messages/RECEIPT/extend
 *   POST       /channels/NAME/messages/RECEIPT/release
 * Errors: a path above with another method is 405 (with its Allow header);
 * NAME followed by anything but /pause, /resume or
 * /messages/RECEIPT[/ACTION] is 400
 * bad_name, as a name with a '/' is (so /channels/a/b and /channels/a%2Fb
 * are both 400); a receipt longer than any receipt is 404 unknown_receipt;
 * any other path is 404.
 *
 * NAME is the first raw segment after "/channels/", percent-decoded on its
 * own (target.h): a decoded %2F cannot make a segment, and a decoded %00
 * does not cut the name short, as it would in MHD's decoded URL. A receipt
 * is hex and is not decoded. */
#ifndef HOPPER_SERVER_ROUTE_H
#define HOPPER_SERVER_ROUTE_H

#include "errors.h"
#include "hopper/hopper.h"
#include "lease.h"

typedef enum route_method {
    METHOD_OTHER, /* any method no route takes */
    METHOD_GET,
    METHOD_HEAD,
    METHOD_POST,
    METHOD_DELETE,
    METHOD_COUNT
} route_method;

typedef enum route_kind {
    ROUTE_ERROR = 0, /* no route: answer route.error */
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_STATUS,
    ROUTE_METRICS,
    ROUTE_LIST,    /* GET /channels */
    ROUTE_PAUSE,   /* POST /channels/NAME/pause */
    ROUTE_RESUME,  /* POST /channels/NAME/resume */
    ROUTE_POST,    /* POST /channels/NAME */
    ROUTE_GET,     /* GET /channels/NAME */
    ROUTE_ACK,     /* DELETE /channels/NAME/messages/RECEIPT */
    ROUTE_EXTEND,  /* POST /channels/NAME/messages/RECEIPT/extend */
    ROUTE_RELEASE, /* POST /channels/NAME/messages/RECEIPT/release */
    ROUTE_DELETE,  /* DELETE /channels/NAME */
    ROUTE_PEEK,    /* GET /channels/NAME/messages */
    ROUTE_PURGE,   /* DELETE /channels/NAME/messages */
    ROUTE_REDRIVE, /* POST /channels/NAME/redrive */
    ROUTE_UI,      /* GET / and /ui/... (ui.h) */
    ROUTE_WHOAMI,  /* GET /whoami */
    ROUTE_KINDS    /* how many there are: auth.c has a row for each */
} route_kind;

typedef struct route {
    route_kind kind;
    api_error error;   /* ROUTE_ERROR: the answer (API_NOMEM included) */
    const char *allow; /* ROUTE_ERROR, API_METHOD_NOT_ALLOWED: the Allow header (static) */
    /* The channel whenever the path names a valid one, even when kind is
     * ROUTE_ERROR (the caller may refuse the name for reasons of its own
     * first); "" otherwise. */
    char name[HOP_NAME_MAX + 1];
    char receipt[LEASE_RECEIPT_LEN + 1]; /* ROUTE_ACK, ROUTE_EXTEND, ROUTE_RELEASE */
} route;

/* The method named by method (as MHD gives it, case-sensitive). */
route_method route_method_of(const char *method);

/* Route method on target (the raw request-target, path and query,
 * borrowed). OUT: *out, always filled in. */
void route_parse(const char *target, route_method method, route *out);

#endif
