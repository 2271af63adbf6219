/* envelope.h - the bytes a message is stored as: the HTTP headers hopper
 * keeps (today only Content-Type) framed ahead of the body, so that a later
 * version can keep more headers without changing the core.
 *
 * Format (all integers little-endian, never raw structs):
 *
 *   offset 0   u8   version, ENVELOPE_VERSION (0x01)
 *          1   u16  header count N
 *          3   N times:  u16 name length, name bytes,
 *                        u32 value length, value bytes
 *          ..  the body, to the end of the message
 *
 * Validity: the version byte is 0x01, every length fits inside the message,
 * N is at most ENVELOPE_MAX_HEADERS. Bump the version when the layout of the
 * prefix changes; adding headers needs no bump. */
#ifndef HOPPER_SERVER_ENVELOPE_H
#define HOPPER_SERVER_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 0x01
#define ENVELOPE_MAX_HEADERS 16
/* Longest Content-Type the server keeps; longer is refused with 400. */
#define ENVELOPE_MAX_CONTENT_TYPE 1024
#define ENVELOPE_CONTENT_TYPE "Content-Type"
#define ENVELOPE_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Bytes an envelope adds to a body at most (one Content-Type header of the
 * longest allowed value): the core's max_message_bytes is the server's plus
 * this. */
#define ENVELOPE_ALLOWANCE                                                                         \
    (1 + 2 + 2 + (sizeof ENVELOPE_CONTENT_TYPE - 1) + 4 + ENVELOPE_MAX_CONTENT_TYPE)

typedef struct envelope_header {
    const char *name; /* borrowed, not NUL-terminated when decoded */
    size_t name_len;
    const char *value; /* borrowed, not NUL-terminated when decoded */
    size_t value_len;
} envelope_header;

/* Bytes of the prefix (everything before the body) for these headers. */
size_t envelope_prefix_size(const envelope_header *headers, size_t count);

/* Write the prefix for headers into out, which has exactly
 * envelope_prefix_size(headers, count) bytes; the body goes right after.
 * count must be at most ENVELOPE_MAX_HEADERS, names below 64 KiB. */
void envelope_write_prefix(unsigned char *out, const envelope_header *headers, size_t count);

/* A decoded envelope: pointers into the message, which must outlive it. */
typedef struct envelope {
    envelope_header headers[ENVELOPE_MAX_HEADERS];
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
} envelope;

/* Decode data[0..len). False if it is not a valid envelope (see above);
 * every length is checked, nothing is read outside data[0..len).
 * OUT: *out on success, partly written otherwise. */
bool envelope_decode(const void *data, size_t len, envelope *out);

/* The value of the first header named name (ASCII case-insensitive), or NULL.
 * OUT: *value_len. */
const char *envelope_find(const envelope *e, const char *name, size_t *value_len);

#endif
