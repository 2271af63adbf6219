/* batch.h - the messages of a batch POST: its multipart/mixed body
 * (multipart.h) split into one envelope per part, each with the part's
 * Content-Type (or the default) and the part headers --keep-headers names,
 * all in one buffer, ready for hop_send_batch(). A batch is all or nothing:
 * one bad part refuses the whole body. */
#ifndef HOPPER_SERVER_BATCH_H
#define HOPPER_SERVER_BATCH_H

#include "hopper/hopper.h"
#include "request.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct batch {
    hop_buf *msgs; /* count messages, pointing into store; new */
    size_t count;
    unsigned char *store; /* new */
    size_t charged;       /* bytes of store charged to the budget (budget.h) */
} batch;

/* Split body[0..len) (borrowed), a multipart/mixed body with boundary,
 * into *out, under req's options (--keep-headers, --max-message-bytes) and
 * at most DELIVERY_MAX_BATCH parts, each with the TTL ttl_ms (0: none). False, with req failed and
 * *out empty, when the body is not a good batch: API_BAD_BATCH, API_BAD_CONTENT_TYPE,
 * API_TOO_MANY_HEADERS, API_TOO_BIG (a part and its kept headers are
 * larger than --max-message-bytes), API_NOMEM. */
bool batch_build(request *req, const unsigned char *body, size_t len, const char *boundary,
                 uint64_t ttl_ms, batch *out);

/* Free what batch_build() made; *b is empty afterwards. */
void batch_free(batch *b);

#endif
