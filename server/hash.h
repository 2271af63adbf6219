/* hash.h - the server's one hash, 64-bit FNV-1a: of the keys of its hash
 * tables (registry.c's channels, lease.c's receipts), fast on short keys
 * and good enough spread for a power-of-two table masked by its low bits;
 * and of the bytes of a stored message whose id is derived from them
 * (envelope.c, versions 1 and 2). */
#ifndef HOPPER_SERVER_HASH_H
#define HOPPER_SERVER_HASH_H

#include <stddef.h>
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

/* FNV-1a of data[0..len) (borrowed), going on from h: HASH_FNV1A_OFFSET
 * for a new hash, or what an earlier call returned to hash more bytes. */
static inline uint64_t hash_bytes(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * HASH_FNV1A_PRIME;
    return h;
}

#endif
