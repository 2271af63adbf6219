/* receipt.h - the requests on the receipt of a leased message (lease.h):
 *   DELETE /channels/NAME/messages/RECEIPT            acknowledge: consumed
 *   POST   /channels/NAME/messages/RECEIPT/extend?lease=L   the lease ends
 *                                                     L seconds from now
 *   POST   /channels/NAME/messages/RECEIPT/release    back to the channel
 * 204 when done; 404 unknown_receipt, 410 lease_ended. A channel that does
 * not exist has no leases: these requests never create one. */
#ifndef HOPPER_SERVER_RECEIPT_H
#define HOPPER_SERVER_RECEIPT_H

#include "request.h"

#include <stdint.h>

typedef struct receipt_request {
    request base;
    uint64_t lease_ms; /* extend: ?lease= */
    uint64_t delay_ms; /* release: ?delay= or Hopper-Delay */
} receipt_request;

extern const request_handler ack_handler;
extern const request_handler extend_handler;
extern const request_handler release_handler;

#endif
