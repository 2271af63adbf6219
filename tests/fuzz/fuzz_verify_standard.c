/* fuzz_verify_standard.c - libFuzzer harness of the Standard Webhooks
 * header parsers (server/verify_header.c): verify_header_standard() of
 * webhook-signature, and verify_header_timestamp() and
 * verify_header_webhook_id() of the same input, all read by length.
 * Checked, when accepted: 1 to VERIFY_SIGNATURES_MAX digests, each of
 * which, base64-encoded again, is in the value as "v1,<base64>" (the
 * padded standard form is the only one taken); a timestamp that is not
 * negative and prints back as the input; an id of visible ASCII only. */
#include "verify_header.h"

#include <inttypes.h>
#include <nettle/base64.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool holds(const char *text, size_t size, const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= size; i++)
        if (memcmp(text + i, needle, n) == 0)
            return true;
    return false;
}

static void check_signature(const char *text, size_t size)
{
    verify_signatures s;
    if (!verify_header_standard(text, size, &s))
        return;
    if (s.count < 1 || s.count > VERIFY_SIGNATURES_MAX)
        abort();
    for (size_t k = 0; k < s.count; k++) {
        char entry[3 + BASE64_ENCODE_RAW_LENGTH(VERIFY_DIGEST_SIZE) + 1] = "v1,";
        base64_encode_raw(entry + 3, VERIFY_DIGEST_SIZE, s.digests[k]);
        entry[sizeof entry - 1] = '\0';
        if (!holds(text, size, entry)) {
            fprintf(stderr, "fuzz_verify_standard: %s not in the value\n", entry);
            abort();
        }
    }
}

static void check_timestamp_and_id(const char *text, size_t size)
{
    int64_t t;
    if (verify_header_timestamp(text, size, &t)) {
        char back[32];
        int n = snprintf(back, sizeof back, "%" PRId64, t);
        /* leading zeros aside, the digits print back as they came */
        size_t skip = 0;
        while (skip + 1 < size && text[skip] == '0')
            skip++;
        if (t < 0 || (size_t)n != size - skip || memcmp(back, text + skip, (size_t)n) != 0)
            abort();
    }
    if (verify_header_webhook_id(text, size))
        for (size_t i = 0; i < size; i++)
            if (text[i] < 0x21 || text[i] > 0x7e)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_signature((const char *)data, size);
    check_timestamp_and_id((const char *)data, size);
    return 0;
}
