/* get.h - GET /channels/NAME[?wait=S][&max=N][&lease=L]: take the oldest
 * message (200, delivery.h), or up to N of them, waiting up to S seconds
 * for the first without holding a thread (longpoll.h); 204 when none came.
 * A GET with Accept: text/event-stream is a stream instead (stream.h):
 * dispatch.c gives it that handler.
 *
 * Two traps it keeps clear of:
 *   - libmicrohttpd does not notice that the client of a suspended
 *     connection has gone: a message that arrives for a waiting GET is
 *     handed out only if its client is still there (longpoll_client_gone),
 *     else it goes back to its channel unsent;
 *   - a response that does not complete (MHD reports anything but
 *     MHD_REQUEST_TERMINATED_COMPLETED_OK) may not have reached its client:
 *     its messages go back to the head of their channel (delivery_failed),
 *     never lost. */
#ifndef HOPPER_SERVER_GET_H
#define HOPPER_SERVER_GET_H

#include "delivery.h"
#include "longpoll.h"
#include "request.h"

#include <stddef.h>
#include <stdint.h>

typedef struct get_request {
    request base;
    uint64_t wait_ms;
    size_t max;        /* ?max=: messages at most, 0 when not given (one, plain) */
    uint64_t lease_ms; /* ?lease=, 0 when not given */
    longpoll lp;       /* initialised by begin, ended by end */
    delivery dlv;      /* what a queued 200 hands out; settled by end */
} get_request;

extern const request_handler get_handler;

#endif
