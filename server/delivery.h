/* delivery.h - what a GET hands out, and what becomes of it.
 *
 * A GET takes one message (a plain response: its body, its Content-Type
 * and kept headers) or, with ?max=N, up to N (a multipart/mixed response,
 * one part per message with its own headers). Every message says its id
 * (Hopper-Message-Id, envelope.h: the same on every delivery) and how often
 * it has been handed out (Hopper-Delivery-Count). With ?lease=L each is put
 * under a lease (lease.h) and says its receipt (Hopper-Receipt).
 *
 * When the response is over, the messages are consumed if it reached its
 * client; if it did not, they come back unconsumed (giveback.h), in their
 * order (leased ones by ending their lease). A leased message that reached
 * its client stays leased until acknowledged, released or expired. */
#ifndef HOPPER_SERVER_DELIVERY_H
#define HOPPER_SERVER_DELIVERY_H

#include "errors.h"
#include "lease.h"
#include "registry.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DELIVERY_RECEIPT_HEADER "Hopper-Receipt"
#define DELIVERY_COUNT_HEADER "Hopper-Delivery-Count"
/* Most messages one GET may take (?max=). */
#define DELIVERY_MAX_BATCH 1000

typedef struct delivery {
    registry_entry *entry;
    uint64_t lease_ms;     /* 0: not leased */
    bool multipart;        /* ?max= was given: a multipart response, even of one */
    size_t max_deliveries; /* --max-deliveries, for messages that come back */
    size_t count;          /* messages in the response */
    void **msgs;           /* not leased: the messages, until the end */
    size_t *lens;
    char (*receipts)[LEASE_RECEIPT_LEN + 1]; /* leased: their receipts */
    size_t charged; /* bytes charged to the budget (budget.h) until the end */
} delivery;

/* The 200 response for msgs[0..n) (n >= 1, just taken from d->entry's
 * channel, in order; for a lease, held with lease_hold()): d takes them.
 * NULL if it cannot be made, OUT *err says why (API_NOMEM): the messages
 * went back to their channel unsent. A message whose stored form is
 * damaged is logged and dropped (API_INTERNAL if that leaves none). */
struct MHD_Response *delivery_respond(delivery *d, void **msgs, size_t *lens, size_t n,
                                      api_error *err);

/* The response is over and reached its client: messages not leased are
 * consumed, leased ones stay leased. */
void delivery_succeeded(delivery *d);

/* The response is over and did not reach its client (MHD reports anything
 * but a complete response): every message comes back unconsumed, leased
 * ones by ending their lease (which may have ended already). */
void delivery_failed(delivery *d);

/* The multipart/mixed response of a peek (peek.h): msgs[0..n) (borrowed,
 * envelopes as stored) as parts with their headers, id and the count of
 * deliveries so far (Hopper-Delivery-Count: 0 for one never handed out);
 * no receipt. OUT: *copied, the bytes of message it copied. NULL if out
 * of memory. */
struct MHD_Response *delivery_peek_response(void **msgs, size_t *lens, size_t n, size_t *copied);

#endif
