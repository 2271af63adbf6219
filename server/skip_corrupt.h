/* skip_corrupt.h - how far a GET reads past corrupt queue-file records.
 * The core skips a corrupt record and says so with HOP_IO; the record after
 * it may be fine, so a receive is tried again, up to SKIP_CORRUPT_LIMIT
 * failures per request. Then HOP_IO stands: a file that bad is an I/O
 * error to answer, not something to read on through. */
#ifndef HOPPER_SERVER_SKIP_CORRUPT_H
#define HOPPER_SERVER_SKIP_CORRUPT_H

#include "hopper/hopper.h"

#include <stdbool.h>

/* Receives one request may see fail with HOP_IO before it gives up. */
#define SKIP_CORRUPT_LIMIT 4

/* After a receive that returned err: true if it is worth trying the next
 * record (err is HOP_IO, counted in *failed, and the limit is not reached
 * yet). *failed starts at 0 for each request. */
static inline bool skip_corrupt(hop_err err, unsigned *failed)
{
    return err == HOP_IO && ++*failed < SKIP_CORRUPT_LIMIT;
}

#endif
