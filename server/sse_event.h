/* sse_event.h - the Server-Sent Event of one message, as a stream
 * (stream.h) writes it:
 *
 *   id: <message id>
 *   event: message
 *   data: {"id":..,"content_type":..,"headers":[[name,value],..],
 *          "delivery_count":N,"body":..}            (one line, compact)
 *   <empty line>
 *
 * The JSON holds these fields and no other: id (32 hex digits, as
 * Hopper-Message-Id), content_type (the stored one, or
 * application/octet-stream), headers (the kept headers but Content-Type,
 * in their order, each a [name, value] pair; one whose name or value is
 * not UTF-8 is left out), delivery_count (as Hopper-Delivery-Count), then
 * body (the payload as a string) when it is valid UTF-8, else body_base64
 * (standard base64, with padding), and receipt when leased. The SSE fields
 * are the standard ones only: EventSource drops unknown fields. */
#ifndef HOPPER_SERVER_SSE_EVENT_H
#define HOPPER_SERVER_SSE_EVENT_H

#include <stddef.h>

/* The comment a stream opens with, and its heartbeat: SSE comments, which
 * EventSource ignores. */
#define SSE_OPENING_COMMENT ": hopper stream\n\n"
#define SSE_KEEPALIVE_COMMENT ": keepalive\n\n"

typedef enum sse_event_result {
    SSE_EVENT_OK,
    SSE_EVENT_MALFORMED, /* msg is not a valid envelope */
    SSE_EVENT_NOMEM,
} sse_event_result;

/* The event of the envelope msg[0..len) (borrowed, unchanged), with
 * receipt (a NUL-terminated receipt, or NULL: not leased). OUT: *text
 * (new, free(); not NUL-terminated) and *text_len on SSE_EVENT_OK. */
sse_event_result sse_event_format(const void *msg, size_t len, const char *receipt, char **text,
                                  size_t *text_len);

#endif
