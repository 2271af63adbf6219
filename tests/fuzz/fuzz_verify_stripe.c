/* fuzz_verify_stripe.c - libFuzzer harness of verify_header_stripe(), the
 * parser of Stripe-Signature (server/verify_header.c), read by length.
 * Checked, when accepted: 1 to VERIFY_SIGNATURES_MAX signatures, a
 * timestamp that is not negative whose digits are in the value, and, for each digest, "v1="
 * followed by its 64 hex digits (either case): nothing is invented. */
#include "verify_header.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Whether text[0..size) holds needle, ASCII case-insensitive. */
static bool holds(const char *text, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= size; i++)
        if (strncasecmp(text + i, needle, n) == 0)
            return true;
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    verify_signatures s;
    if (!verify_header_stripe(text, size, &s))
        return 0;
    if (s.count < 1 || s.count > VERIFY_SIGNATURES_MAX || s.timestamp < 0)
        abort();
    char t[32];
    snprintf(t, sizeof t, "%" PRId64, s.timestamp); /* "t=007" holds "7" */
    if (!holds(text, size, t))
        abort();
    for (size_t k = 0; k < s.count; k++) {
        char v1[3 + 2 * VERIFY_DIGEST_SIZE + 1] = "v1=";
        for (size_t i = 0; i < VERIFY_DIGEST_SIZE; i++)
            snprintf(v1 + 3 + 2 * i, 3, "%02x", s.digests[k][i]);
        if (!holds(text, size, v1)) {
            fprintf(stderr, "fuzz_verify_stripe: digest %zu not in the value\n", k);
            abort();
        }
    }
    return 0;
}
