/* keep_headers.h - which request headers a POST stores with its message:
 * the --keep-headers list (header names, or prefixes ending in '*'), the
 * rules of what it may hold, and the match of a request header against it. */
#ifndef HOPPER_SERVER_KEEP_HEADERS_H
#define HOPPER_SERVER_KEEP_HEADERS_H

#include <stdbool.h>
#include <stddef.h>

/* Items a --keep-headers list may hold. */
#define KEEP_HEADERS_MAX_ITEMS 64

typedef struct keep_headers_item {
    const char *text; /* as given, blanks around it trimmed; borrowed from the
                         parsed list, not NUL-terminated */
    size_t len;       /* of text, a trailing '*' included */
    bool prefix;      /* text ends in '*': it matches the names that begin
                         with text[0..len-1) */
} keep_headers_item;

typedef struct keep_headers {
    keep_headers_item items[KEEP_HEADERS_MAX_ITEMS];
    size_t count; /* 0: no header is kept but Content-Type */
} keep_headers;

/* Parse list, comma-separated items with optional blanks (spaces, tabs)
 * around each: a header name, or a prefix ending in '*'. An empty list
 * keeps nothing. Refused: an empty item; a character outside the token
 * characters of RFC 9110; a '*' anywhere but at the end; '*' alone; more
 * than KEEP_HEADERS_MAX_ITEMS items; an item that would match a header that
 * cannot be stored and replayed (hop-by-hop and framing headers:
 * Connection, Keep-Alive, Transfer-Encoding, TE, Trailer, Upgrade,
 * Content-Length, Host, Expect, Proxy-*) or one of hopper's own response
 * headers (Hopper-*). Content-Type may be listed: it is always kept anyway.
 * list is borrowed: *out points into it, so it must outlive *out.
 * True on success. OUT: *out; on failure, why[0..why_size) says what is
 * wrong, to follow "'<list>' " in a message, and *out is undefined. */
bool keep_headers_parse(const char *list, keep_headers *out, char *why, size_t why_size);

/* True if the request header name[0..len) is to be kept: an item names it
 * or is a prefix of it, ASCII case-insensitively. A name that is not made
 * of token characters never matches (it could not be sent back as a
 * response header). Content-Type matches if listed; the caller keeps it
 * once, whatever the list says. */
bool keep_headers_match(const keep_headers *k, const char *name, size_t len);

#endif
