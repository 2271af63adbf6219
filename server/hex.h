/* hex.h - bytes as lowercase hexadecimal text, the form of lease receipts
 * (lease.c) and message ids (envelope.c) on the wire, and the reverse for
 * the hex signatures webhook senders put in headers (verify_header.c). */
#ifndef HOPPER_SERVER_HEX_H
#define HOPPER_SERVER_HEX_H

#include <stdbool.h>
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

/* The value of one hex digit, either case; -1 for any other character. */
static inline int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode exactly 2 * n hex digits (either case) at text into bytes[0..n).
 * False if any is not a digit (bytes then partly written). */
static inline bool hex_decode(const char *text, size_t n, unsigned char *bytes)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        bytes[i] = (unsigned char)(hi << 4 | lo);
    }
    return true;
}

#endif
