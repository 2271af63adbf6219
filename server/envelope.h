/* envelope.h - the bytes a message is stored as: its id, when hopper
 * accepted it, a count of how often it came back, and the HTTP headers
 * hopper keeps (Content-Type and those --keep-headers names), framed ahead
 * of the body, so that the core stores one opaque byte string per message.
 *
 * Format, version 4 (all integers little-endian, never raw structs):
 *
 *   offset 0   u8   version, ENVELOPE_VERSION (0x04)
 *          1   u32  returns: how many times the message was handed out and
 *                   came back (lease expired or released, delivery
 *                   failed); 0 when written, rewritten in place
 *                   (envelope_set_returns) without touching anything else
 *          5   16 bytes  id: random (envelope_new_id), given when the
 *                   message is accepted; the same on every delivery, after
 *                   restarts and in NAME.dead (the bytes move as they are)
 *         21   u64  received_at: when hopper accepted the message, in
 *                   milliseconds since the Unix epoch (UTC)
 *         29   u64  ttl: how many milliseconds after received_at the
 *                   message may still be handed out (?ttl= or Hopper-TTL
 *                   on its POST, expiry.h); 0: no TTL of its own
 *         37   u16  header count N
 *         39   N times:  u16 name length, name bytes,
 *                        u32 value length, value bytes
 *          ..  the body, to the end of the message
 *
 * The TTL is stored as a duration beside received_at, not as an absolute
 * expiry time: both limits on a message (its TTL, and --max-age, which
 * applies to messages stored before it was given too) are then limits on
 * one quantity, its age (now - received_at), compared the same way; and
 * when the wall clock is set back below received_at that age counts as 0,
 * so a clock that moves never makes a message look older than it can be
 * (an absolute time could not tell a clock set back from a message not
 * yet expired). A clock set forward ages every message alike, as it would
 * an absolute time. The TTL is also what the client asked for, kept as
 * it said it.
 *
 * Earlier versions are still decoded: queue files outlive upgrades.
 *   Version 3 (hopper before TTLs): version 4 without the ttl field: u16
 *   N at offset 29, the headers from offset 31; it reads as ttl 0, and its
 *   returns can be rewritten as version 4's.
 *   Version 2 (hopper before message ids): u8 0x02, u32 returns at offset
 *   1, u16 N at offset 5, the headers from offset 7. Its returns can be
 *   rewritten as version 4's.
 *   Version 1 (before returns): u8 0x01, u16 N at offset 1, the headers
 *   from offset 3; it reads as returns 0 and cannot be rewritten.
 * Versions 1 and 2 read as received_at 0 (unknown: such a message never
 * expires, expiry.h), and their id is derived from the
 * bytes, so that it too stays the same on every delivery and after
 * restarts: FNV-1a 64 (hash.h) of the message without its returns field
 * (all of version 1; byte 0, then offset 5 to the end, of version 2),
 * once from the standard offset basis and once from
 * ENVELOPE_LEGACY_ID_BASIS, the two hashes in that order as 8 bytes
 * little-endian each. Two stored messages with the same bytes (returns
 * aside) therefore share an id: the same body and headers sent twice to a
 * channel by a hopper of those versions. Never change this derivation:
 * ids already handed out would change with it.
 *
 * Validity: the version byte is 0x01 to 0x04, N is at most
 * ENVELOPE_MAX_HEADERS, every length fits inside the message; the id,
 * received_at and ttl take any value. Bump the version when the layout of the
 * prefix changes, keep decoding the old one, and keep a data directory
 * written by the release before as a test fixture (test_upgrade.c);
 * storing other headers needs no bump. Names and values are stored as the
 * request had them; their order is the request's. */
#ifndef HOPPER_SERVER_ENVELOPE_H
#define HOPPER_SERVER_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENVELOPE_VERSION 0x04
#define ENVELOPE_VERSION_3 0x03
#define ENVELOPE_VERSION_2 0x02
#define ENVELOPE_VERSION_1 0x01
/* Bytes of a message id, and of its text: 32 lowercase hex digits and NUL. */
#define ENVELOPE_ID_LEN 16
#define ENVELOPE_ID_TEXT_SIZE 33
/* The response header that carries a message's id on GET. */
#define MESSAGE_ID_HEADER "Hopper-Message-Id"
/* Where the fields of version 4 lie; returns, id and received_at lie at
 * the same offsets in version 3, returns in version 2. */
#define ENVELOPE_RETURNS_OFFSET 1
#define ENVELOPE_ID_OFFSET (ENVELOPE_RETURNS_OFFSET + 4)
#define ENVELOPE_RECEIVED_OFFSET (ENVELOPE_ID_OFFSET + ENVELOPE_ID_LEN)
#define ENVELOPE_TTL_OFFSET (ENVELOPE_RECEIVED_OFFSET + 8)
#define ENVELOPE_COUNT_OFFSET (ENVELOPE_TTL_OFFSET + 8)
/* Bytes before the first header: version, returns, id, received_at, ttl,
 * count (version 4). */
#define ENVELOPE_FIXED_BYTES (ENVELOPE_COUNT_OFFSET + 2)
/* The same for version 3: version, returns, id, received_at, count; for
 * version 2: version, returns, count; and version 1: version, count. */
#define ENVELOPE_V3_COUNT_OFFSET ENVELOPE_TTL_OFFSET
#define ENVELOPE_V3_FIXED_BYTES (ENVELOPE_V3_COUNT_OFFSET + 2)
#define ENVELOPE_V2_FIXED_BYTES (1 + 4 + 2)
#define ENVELOPE_V1_FIXED_BYTES (1 + 2)
/* The offset basis of the second hash of a derived id (versions 1 and 2;
 * see above): 2^64 divided by the golden ratio, any odd constant but the
 * standard basis would do. Part of the format: never change it. */
#define ENVELOPE_LEGACY_ID_BASIS 0x9e3779b97f4a7c15ull
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
 * the fixed prefix (of version 4: the earlier ones are shorter), the two
 * lengths of each of up to ENVELOPE_MAX_HEADERS
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

/* Write a version 4 prefix with returns 0 for headers into out, which has
 * exactly envelope_prefix_size(headers, count) bytes; the body goes right
 * after. id (copied), received_ms and ttl_ms (0: none) are stored as
 * given: a new message takes envelope_new_id() and hop_now_ms() (the
 * library's wall clock, which tests can move).
 * count must be at most ENVELOPE_MAX_HEADERS, names at most
 * ENVELOPE_MAX_NAME bytes, values below 4 GiB. */
void envelope_write_prefix(unsigned char *out, const envelope_header *headers, size_t count,
                           const unsigned char id[ENVELOPE_ID_LEN], uint64_t received_ms,
                           uint64_t ttl_ms);

/* A new message id: ENVELOPE_ID_LEN random bytes (random.h), which no
 * client can guess or make collide. OUT: id. */
void envelope_new_id(unsigned char id[ENVELOPE_ID_LEN]);

/* A decoded envelope: pointers into the message, which must outlive it. */
typedef struct envelope {
    unsigned version;                  /* ENVELOPE_VERSION, _3, _2 or _1 */
    uint32_t returns;                  /* 0 for version 1 */
    unsigned char id[ENVELOPE_ID_LEN]; /* stored (v3, v4) or derived from the bytes (v1, v2) */
    uint64_t received_ms;              /* ms since the epoch; 0: unknown (v1, v2) */
    uint64_t ttl_ms;                   /* ms after received_ms; 0: none (v1 to v3) */
    envelope_header headers[ENVELOPE_MAX_HEADERS];
    size_t header_count;
    const unsigned char *body;
    size_t body_len;
} envelope;

/* Decode data[0..len), version 1 to 4. False if it is not a valid
 * envelope (see above); every length is checked, nothing is read outside
 * data[0..len). The id of a version 1 or 2 envelope is derived from all
 * of its bytes: decoding one costs a pass over the body. OUT: *out on
 * success, partly written otherwise. */
bool envelope_decode(const void *data, size_t len, envelope *out);

/* The accept time and TTL of the envelope data[0..len), read from its
 * fixed fields only (cheap: neither the headers nor, for versions 1 and 2,
 * the id are looked at; a damaged envelope is found when it is decoded).
 * False if data is too short for its version's fixed fields, or of no
 * version known. OUT: *received_ms (0: unknown), *ttl_ms (0: none). */
bool envelope_times(const void *data, size_t len, uint64_t *received_ms, uint64_t *ttl_ms);

/* Rewrite the returns field of the version 2, 3 or 4 envelope data[0..len) in
 * place. False, data unchanged, if data is a version 1 envelope (it has no
 * such field) or not a valid envelope. */
bool envelope_set_returns(void *data, size_t len, uint32_t returns);

/* The id of e as text: ENVELOPE_ID_LEN * 2 lowercase hex digits and a NUL.
 * OUT: out. */
void envelope_id_text(const envelope *e, char out[ENVELOPE_ID_TEXT_SIZE]);

/* The value of the first header named name (ASCII case-insensitive), or NULL.
 * OUT: *value_len. */
const char *envelope_find(const envelope *e, const char *name, size_t *value_len);

#endif
