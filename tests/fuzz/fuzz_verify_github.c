/* fuzz_verify_github.c - libFuzzer harness of verify_header_github(), the
 * parser of X-Hub-Signature-256 (server/verify_header.c). The input is the
 * header value as MHD hands it over, read by length (no NUL needed).
 * Checked: accepted exactly when the value is "sha256=" and 64 hex digits
 * (reference written here), and the digest is those digits' bytes. */
#include "hex.h"
#include "verify_header.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    unsigned char digest[VERIFY_DIGEST_SIZE];
    bool ok = verify_header_github(text, size, digest);
    bool expect = size == 7 + 64 && memcmp(text, "sha256=", 7) == 0;
    for (size_t i = 7; expect && i < size; i++)
        expect = hex_digit(text[i]) >= 0;
    if (ok != expect) {
        fprintf(stderr, "fuzz_verify_github: %s '%.*s'\n", ok ? "accepted" : "refused", (int)size,
                text);
        abort();
    }
    for (size_t i = 0; ok && i < VERIFY_DIGEST_SIZE; i++)
        if (digest[i] != (hex_digit(text[7 + 2 * i]) << 4 | hex_digit(text[8 + 2 * i])))
            abort();
    return 0;
}
