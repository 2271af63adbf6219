/* idempotency.h - the request side of duplicates refused (dedup.h): the
 * key a POST carries, its reservation on the channel around the send, and
 * the answer to a duplicate.
 *
 * The key is the value of the Idempotency-Key header, always honoured, or
 * else of the header --dedup-header names (for instance
 * X-GitHub-Delivery): 1 to DEDUP_MAX_KEY bytes, compared exactly. A
 * request's key covers all it stores: one message, or a whole batch. */
#ifndef HOPPER_SERVER_IDEMPOTENCY_H
#define HOPPER_SERVER_IDEMPOTENCY_H

#include "dedup.h"
#include "request.h"

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

#define IDEMPOTENCY_HEADER "Idempotency-Key"
/* The header of the answer to a duplicate, whose body is DUPLICATE_BODY. */
#define DUPLICATE_HEADER "Hopper-Duplicate"
#define DUPLICATE_BODY "{\"status\":\"duplicate\"}"

typedef struct idempotency {
    char key[DEDUP_MAX_KEY];
    size_t len;         /* 0: the request has no key (or dedup is off) */
    dedup_key *pending; /* reserved on the channel, until settled */
} idempotency;

/* From the first call: read req's key into id. False, with req failed
 * (400 bad_idempotency_key), if it is empty or longer than DEDUP_MAX_KEY. */
bool idempotency_read(idempotency *id, request *req, struct MHD_Connection *conn);

/* Just before the send: reserve id's key on req's channel. True: send,
 * then idempotency_settle(). False: the request is answered already
 * (OUT: *answer, what the access handler returns): 200 duplicate, 409
 * duplicate_pending or 503 out of memory. */
bool idempotency_reserve(idempotency *id, request *req, struct MHD_Connection *conn,
                         enum MHD_Result *answer);

/* The send's outcome: accepted records the key, anything else forgets it.
 * Nothing once settled, or without a reservation. */
void idempotency_settle(idempotency *id, request *req, bool accepted);

#endif
