/* multipart.h - multipart/mixed bodies (RFC 2046 section 5.1), the format of a
 * batch: parsed from a POST that sends several messages, built for a GET that
 * returns several. Pure code over caller-owned memory: no allocation, no HTTP
 * server.
 *
 * The body, as read and as written:
 *
 *   [preamble CRLF] "--" boundary padding CRLF part
 *   *( CRLF "--" boundary padding CRLF part )
 *   CRLF "--" boundary "--" padding [CRLF epilogue]
 *
 *   part    = *( header-line CRLF ) [ CRLF body ]
 *   padding = *( SP / HTAB )        transport padding, read but never written
 *
 * Decisions the parser makes:
 * - Lines end in CRLF only. A bare LF is not a line end: in part headers it is
 *   a control character (MULTIPART_HEADER_BAD_VALUE), elsewhere it is just a
 *   byte, so an LF-only body finds no delimiter. Being strict keeps one
 *   reading of every body; curl, browsers and every MIME library write CRLF.
 * - "CRLF --boundary" is a delimiter only when followed by padding CRLF (next
 *   part) or by "--" padding and then CRLF or the end of the body (the close).
 *   Anything else, such as "--boundaryX", is content of the part it is in.
 * - The preamble and the epilogue are skipped whatever they hold.
 * - Header lines follow RFC 9110: name is a token, a colon with nothing before
 *   it, the value trimmed of SP/HTAB around it. A line starting with white
 *   space (obsolete folding), a line without a colon, a name that is not a
 *   token and a value holding any control character but HTAB (NUL, CR and LF
 *   among them) are refused rather than repaired, because the server hands
 *   these values back as HTTP headers.
 * - A part whose content is empty, or that has header lines and no empty line
 *   after them, has an empty body; RFC 2046 allows both.
 * - At least one part: a body that closes right after opening is refused. */
#ifndef HOPPER_SERVER_MULTIPART_H
#define HOPPER_SERVER_MULTIPART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The limits the server puts on a batch (issue 5: up to 1000 messages). */
#define MULTIPART_MAX_PARTS 1000
#define MULTIPART_MAX_HEADERS 64

/* RFC 2046: a boundary is 1 to 70 characters. */
#define MULTIPART_BOUNDARY_MAX 70
/* Room for any boundary and its NUL. */
#define MULTIPART_BOUNDARY_SIZE (MULTIPART_BOUNDARY_MAX + 1)
/* Room for the Content-Type of any boundary: prefix, two quotes, NUL. */
#define MULTIPART_CONTENT_TYPE_SIZE                                                                \
    (sizeof "multipart/mixed; boundary=" - 1 + 2 + MULTIPART_BOUNDARY_SIZE)

/* The error vocabulary: one list makes the enum, multipart_strerror() and
 * multipart_err_name(). */
#define MULTIPART_ERRORS(X)                                                                        \
    X(OK, "success")                                                                               \
    X(BAD_BOUNDARY, "the boundary is not 1 to 70 characters allowed by RFC 2046")                  \
    X(NO_OPENING_DELIMITER, "no --boundary line opens the body")                                   \
    X(NO_PARTS, "the body is closed before its first part")                                        \
    X(MISSING_CLOSE_DELIMITER, "the body ends before its closing --boundary-- line")               \
    X(HEADER_FOLDED, "a part header line starts with white space (obsolete line folding)")         \
    X(HEADER_NO_COLON, "a part header line has no colon")                                          \
    X(HEADER_BAD_NAME, "a part header name is not a token")                                        \
    X(HEADER_BAD_VALUE, "a part header value holds a control character such as NUL, CR or LF")     \
    X(HEADER_UNTERMINATED, "a part header line does not end in CRLF")                              \
    X(TOO_MANY_PARTS, "the body has more parts than allowed")                                      \
    X(TOO_MANY_HEADERS, "a part has more header lines than allowed")

typedef enum multipart_err {
#define MULTIPART__ERR_ENUM(name, text) MULTIPART_##name,
    MULTIPART_ERRORS(MULTIPART__ERR_ENUM)
#undef MULTIPART__ERR_ENUM
} multipart_err;

/* A sentence describing err ("unknown error" for values outside the enum). */
const char *multipart_strerror(multipart_err err);
/* The enum name without prefix, e.g. "NO_PARTS" ("UNKNOWN" outside the enum). */
const char *multipart_err_name(multipart_err err);

typedef struct multipart_header {
    const char *name; /* borrowed, not NUL-terminated */
    size_t name_len;
    const char *value; /* borrowed, not NUL-terminated */
    size_t value_len;
} multipart_header;

/* True if h is a header the parser accepts and the builder may write: the
 * name a non-empty token, the value free of control characters but HTAB and
 * of SP/HTAB at either end. */
bool multipart_header_valid(const multipart_header *h);

/* ---- Parsing ---- */

/* Copy the boundary parameter of a Content-Type value into out. True only
 * for media type multipart/mixed (ASCII case-insensitive), parameters
 * "; name=value" with optional white space around the semicolons, exactly one
 * boundary parameter (name case-insensitive; value a token or a quoted
 * string, unescaped), and a boundary RFC 2046 allows. content_type is
 * borrowed and may be NULL (false).
 * OUT: out, a NUL-terminated boundary on success; unspecified on failure. */
bool multipart_boundary(const char *content_type, char out[MULTIPART_BOUNDARY_SIZE]);

/* One part found by multipart_parse. Every pointer is into the parsed body,
 * which must outlive the part. */
typedef struct multipart_part {
    const char *header_lines; /* the part's header lines, each ending in CRLF */
    size_t header_lines_len;  /* 0 when the part has no headers */
    size_t header_count;      /* lines in header_lines */
    const unsigned char *body;
    size_t body_len;
} multipart_part;

/* Find the parts of body[0..len), a multipart/mixed body with this boundary
 * (NUL-terminated, borrowed; as multipart_boundary returns it). Each part's
 * header lines are checked in full, so multipart_header_next cannot meet a bad
 * one later. A part may have at most max_headers header lines; parts has room
 * for max_parts. Nothing outside body[0..len) is read; body may hold any
 * bytes.
 * OUT: parts[0..*count) on success. On failure, *count is the number of parts
 * found whole before the error (so part *count is the culprit, for a message),
 * parts[0..*count) are written and later entries may be partly written. */
multipart_err multipart_parse(const void *body, size_t len, const char *boundary,
                              size_t max_headers, multipart_part *parts, size_t max_parts,
                              size_t *count);

/* The next header of a parsed part, in the order they were sent. Start with
 * *offset = 0; each call moves it past the header returned.
 * OUT: *out (pointers into the part's body), *offset. False, with *out
 * unchanged, when there are no more. */
bool multipart_header_next(const multipart_part *part, size_t *offset, multipart_header *out);

/* The value of the first header of part named name (ASCII case-insensitive,
 * NUL-terminated, borrowed), or NULL. OUT: *value_len when found. */
const char *multipart_part_find(const multipart_part *part, const char *name, size_t *value_len);

/* ---- Building ---- */

/* One part to write. Everything is borrowed; headers must each pass
 * multipart_header_valid (not checked when writing: the server's headers were
 * checked when they were received). */
typedef struct multipart_outgoing_part {
    const multipart_header *headers;
    size_t header_count;
    const void *body;
    size_t body_len;
} multipart_outgoing_part;

/* Length of a boundary multipart_choose_boundary writes. */
#define MULTIPART_GENERATED_BOUNDARY_LEN 39

/* A seed that differs on every call, in every thread (a counter mixed with an
 * address and the clock), for multipart_choose_boundary. Not for secrets:
 * the boundary only has to be absent from the parts, which is checked. */
uint64_t multipart_seed(void);

/* The attempt-th boundary candidate of the sequence seed starts: "hopper-"
 * and 32 hex digits. Distinct attempts give distinct candidates.
 * OUT: out, NUL-terminated. */
void multipart_boundary_candidate(uint64_t seed, uint64_t attempt,
                                  char out[MULTIPART_BOUNDARY_SIZE]);

/* The first candidate of seed's sequence that occurs in no body, header name
 * or header value of parts[0..count). Always succeeds: a candidate collides
 * only by occurring in the parts, which hold fewer distinct strings than
 * there are candidates.
 * OUT: out, NUL-terminated, MULTIPART_GENERATED_BOUNDARY_LEN characters. */
void multipart_choose_boundary(const multipart_outgoing_part *parts, size_t count, uint64_t seed,
                               char out[MULTIPART_BOUNDARY_SIZE]);

/* The Content-Type value for a body built with boundary (valid, borrowed):
 * "multipart/mixed; boundary=B", quoted when B is not a token.
 * OUT: out, NUL-terminated. */
void multipart_content_type(const char *boundary, char out[MULTIPART_CONTENT_TYPE_SIZE]);

/* Bytes of the body multipart_write_body writes for these parts. */
size_t multipart_body_size(const multipart_outgoing_part *parts, size_t count,
                           const char *boundary);

/* Write the multipart/mixed body of parts[0..count) into out, which has room
 * for multipart_body_size(parts, count, boundary) bytes: per part "--B" CRLF,
 * each header as "name: value" CRLF, CRLF, the body, CRLF; then "--B--" CRLF.
 * boundary must occur in no part (multipart_choose_boundary). count should be
 * at least 1: RFC 2046 has no empty multipart, and multipart_parse refuses
 * the body of none with MULTIPART_NO_PARTS.
 * Returns the bytes written. */
size_t multipart_write_body(unsigned char *out, const multipart_outgoing_part *parts, size_t count,
                            const char *boundary);

#endif
