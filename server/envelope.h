/* envelope.h - the bytes a message is stored as: the HTTP headers hopper
 * keeps (Content-Type and those --keep-headers names) and a count of how
 * often the message came back, framed ahead of the body, so that the core
 * stores one opaque byte string per message.
 *
 * Format, version 2 (all integers little-endian, never raw structs):
 *
 *   offset 0   u8   version, ENVELOPE_VERSION (0x02)
 *          1   u32  returns: how many times the message was handed out and
 *                   came back (lease expired or released, delivery
 *                   failed); 0 when written, rewritten in place
 *                   (envelope_set_returns) without touching anything else
 *          5   u16  header count N
 *          7   N times:  u16 name length, name bytes,
 *                        u32 value length, value bytes
 *          ..  the body, to the end of the message
 *
 * Version 1, written by hopper before returns existed and still decoded
 * (queue files outlive upgrades), is the same without the returns field:
 * u8 0x01, u16 N at offset 1, the headers from offset 3; it reads as
 * returns 0 and cannot be rewritten.
 *
 * Validity: the version byte is 0x01 or 0x02, N is at most
 * ENVELOPE_MAX_HEADERS, every length fits inside the message. Bump the
 * version when the layout of the prefix changes; storing other headers
 * needs no bump. Names and values are stored as the request had them;
 * their order is the request's. */
#ifndef HOPPER_SERVER_ENVELOPE_H
#define HOPPER_SERVER_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 0x02
#define ENVELOPE_VERSION_1 0x01
/* Where the u32 returns field of a version 2 envelope lies. */
#define ENVELOPE_RETURNS_OFFSET 1
/* Bytes before the first header: version, returns, count (version 2). */
#define ENVELOPE_FIXED_BYTES (1 + 4 + 2)
/* The same for version 1: version, count. */
#define ENVELOPE_V1_FIXED_BYTES (1 + 2)
/* Bytes each header adds besides its name and value: the two lengths. */
#define ENVELOPE_HEADER_FIXED_BYTES (2 + 4)
/* Headers one message may store, Content-Type included: webhook senders
 * such as GitHub send a dozen X-GitHub-* headers and more. */
#define ENVELOPE_MAX_HEADERS 64
#define ENVELOPE_MAX_HEADERS_TEXT "64" /* the same, for messages */
/* Longest header name the format can hold (its length is a u16). */
#define ENVELOPE_MAX_NAME UINT16_MAX
/* Longest Content-Type the server keeps; longer is refused with 400. */
#define ENVELOPE_MAX_CONTENT_TYPE 1024
#define ENVELOPE_CONTENT_TYPE "Content-Type"
#define ENVELOPE_DEFAULT_CONTENT_TYPE "application/octet-stream"

/* Bytes an envelope adds at most to what --max-message-bytes counts (the
 * body and the names and values of the headers kept by --keep-headers):
 * the fixed prefix, the two lengths of each of up to ENVELOPE_MAX_HEADERS
 * headers, and the Content-Type, which does not count against the limit
 * (it has its own, ENVELOPE_MAX_CONTENT_TYPE) and is always stored. The
 * core's max_message_bytes is the server's plus this. */
#define ENVELOPE_ALLOWANCE                                                                         \
    (ENVELOPE_FIXED_BYTES + ENVELOPE_MAX_HEADERS * ENVELOPE_HEADER_FIXED_BYTES +                   \
     (sizeof ENVELOPE_CONTENT_TYPE - 1) + ENVELOPE_MAX_CONTENT_TYPE)

typedef struct envelope_header {
    const char *name; /* borrowed, not NUL-terminated when decoded */
    size_t name_len;
    const char *value; /* borrowed, not NUL-terminated when decoded */
    size_t value_len;
} envelope_header;

/* Bytes of the prefix (everything before the body) for these headers. */
size_t envelope_prefix_size(const envelope_header *headers, size_t count);

/* Write a version 2 prefix with returns 0 for headers into out, which has
 * exactly envelope_prefix_size(headers, count) bytes; the body goes right
 * after. count must be at most ENVELOPE_MAX_HEADERS, names at most
 * ENVELOPE_MAX_NAME bytes, values below 4 GiB. */
void envelope_write_prefix(unsigned char *out, const envelope_header *headers, size_t count);

/* A decoded envelope: pointers into the message, which must outlive it. */
typedef struct envelope {
    unsigned version; /* ENVELOPE_VERSION or ENVELOPE_VERSION_1 */
    uint32_t returns; /* 0 for version 1 */
    envelope_header headers[ENVELOPE_MAX_HEADERS];
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
} envelope;

/* Decode data[0..len), version 1 or 2. False if it is not a valid envelope
 * (see above); every length is checked, nothing is read outside
 * data[0..len). OUT: *out on success, partly written otherwise. */
bool envelope_decode(const void *data, size_t len, envelope *out);

/* Rewrite the returns field of the version 2 envelope data[0..len) in
 * place. False, data unchanged, if data is a version 1 envelope (it has no
 * such field) or not a valid envelope. */
bool envelope_set_returns(void *data, size_t len, uint32_t returns);

/* The value of the first header named name (ASCII case-insensitive), or NULL.
 * OUT: *value_len. */
const char *envelope_find(const envelope *e, const char *name, size_t *value_len);

#endif
