/* hash.h - the one string hash of the server's hash tables (registry.c's
 * channels, lease.c's receipts): 64-bit FNV-1a, fast on short keys and good
 * enough spread for a power-of-two table masked by its low bits. */
#ifndef HOPPER_SERVER_HASH_H
#define HOPPER_SERVER_HASH_H

#include <stdint.h>

#define HASH_FNV1A_OFFSET 14695981039346656037ull
#define HASH_FNV1A_PRIME 1099511628211ull

/* FNV-1a of the NUL-terminated text (borrowed). */
static inline uint64_t hash_text(const char *text)
{
    uint64_t h = HASH_FNV1A_OFFSET;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++)
        h = (h ^ *p) * HASH_FNV1A_PRIME;
    return h;
}

#endif
