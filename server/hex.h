/* hex.h - bytes as lowercase hexadecimal text, the form of lease receipts
 * (lease.c) and message ids (envelope.c) on the wire. */
#ifndef HOPPER_SERVER_HEX_H
#define HOPPER_SERVER_HEX_H

#include <stddef.h>

/* Write the 2 * n digits of bytes[0..n) and a NUL into out, which has room
 * for 2 * n + 1 characters. */
static inline void hex_encode(const unsigned char *bytes, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * n] = '\0';
}

#endif
