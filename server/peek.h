/* peek.h - GET /channels/NAME/messages[?max=N] (peek.c): up to N (1 to
 * 1000, default 10) of the oldest ready messages, as a GET ?max=N would
 * take them, as multipart/mixed (delivery_peek_response()), without
 * taking, leasing or reordering anything, from memory or queue files.
 * Expired messages are not shown (a GET would drop them). 204 when none;
 * 404 no_channel for a channel that does not exist (never created). */
#ifndef HOPPER_SERVER_PEEK_H
#define HOPPER_SERVER_PEEK_H

#include "request.h"

#include <stddef.h>

/* Shown when ?max= is absent. */
#define PEEK_DEFAULT_MAX 10

typedef struct peek_request {
    request base;
    size_t max;
    size_t charged; /* bytes of the response charged to the budget (budget.h) until the end */
} peek_request;

extern const request_handler peek_handler;

#endif
