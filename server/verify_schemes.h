/* verify_schemes.h - the check of one request's signature under a --verify
 * rule (verify.h): its headers parsed (verify_header.h), the HMAC-SHA256
 * of what the scheme signs computed under each of the rule's secrets and
 * compared in constant time, and the timestamp held to the tolerance.
 *
 *   github             HMAC(secret, body); no timestamp
 *   stripe             HMAC(secret, "T.body"), hex; T within the tolerance
 *   standard-webhooks  HMAC(secret, "ID.T.body"), base64; T within it
 *
 * The body is the request's, byte for byte as received (a batch's whole
 * multipart body). */
#ifndef HOPPER_SERVER_VERIFY_SCHEMES_H
#define HOPPER_SERVER_VERIFY_SCHEMES_H

#include "verify.h"

#include <stddef.h>
#include <stdint.h>

/* How far a signed timestamp may be from the server's clock, either way:
 * Stripe's and Standard Webhooks' default tolerance. */
#define VERIFY_TOLERANCE_S 300

typedef enum verify_result {
    VERIFY_OK,
    VERIFY_MISSING,   /* a header the scheme needs is absent */
    VERIFY_MALFORMED, /* present but not the scheme's form, or sent twice */
    VERIFY_STALE,     /* the timestamp is beyond the tolerance */
    VERIFY_MISMATCH,  /* well formed, but no secret makes that signature */
} verify_result;

/* How the check reads a request header: how many times it was sent (0:
 * absent) and the first value. OUT: *value, *len (when not 0). */
typedef unsigned (*verify_header_fn)(void *ctx, const char *name, const char **value, size_t *len);

/* Check the signature of a request (its headers through header(ctx, ...),
 * its body body[0..len)) under rule, at now_ms (hop_now_ms(): the wall
 * clock, milliseconds since the epoch). */
verify_result verify_check(const verify_rule *rule, verify_header_fn header, void *ctx,
                           const void *body, size_t len, uint64_t now_ms);

/* What result means, for a log line or a test ("the signature is stale").  */
const char *verify_result_text(verify_result result);

#endif
