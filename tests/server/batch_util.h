/* batch_util.h - what test_batch_get.c and test_batch_post.c share: request
 * bodies of multipart/mixed batches written by hand (not with the server's
 * builder), batch POSTs, batch responses read with the server's parser
 * (server/multipart.c, whose own tests are test_multipart*.c), and checks
 * of the parts and of plain responses. The checks assert (cmocka). */
#ifndef HOPPER_TESTS_SERVER_BATCH_UTIL_H
#define HOPPER_TESTS_SERVER_BATCH_UTIL_H

#include "harness.h"
#include "multipart.h"

#include <stddef.h>

/* The boundary of the batches the tests POST. */
#define BOUNDARY "batch-7f3a91"
#define BATCH_TYPE "multipart/mixed; boundary=" BOUNDARY

/* ---- request bodies ---- */

/* Bytes that grow: start from {0}, free with bu_bytes_free(). data is
 * NUL-terminated beyond len. */
typedef struct bu_bytes {
    unsigned char *data;
    size_t len, cap;
} bu_bytes;

/* Append data[0..len), or text. */
void bu_put(bu_bytes *b, const void *data, size_t len);
void bu_put_text(bu_bytes *b, const char *text);
void bu_bytes_free(bu_bytes *b);
/* One part: "--BOUNDARY" CRLF, headers (complete lines, each ending in
 * CRLF; NULL for none), CRLF, the body, CRLF. */
void bu_put_part(bu_bytes *b, const char *headers, const void *body, size_t len);
void bu_put_text_part(bu_bytes *b, const char *headers, const char *body);
/* The close delimiter, "--BOUNDARY--" CRLF. */
void bu_put_close(bu_bytes *b);
/* A batch of n parts "part <i>" without headers, closed. OUT: *body. */
void bu_numbered_batch(bu_bytes *body, int n);
/* out[0..len) is label (without its NUL), then filler to the end. */
void bu_fill(char *out, size_t len, char filler, const char *label);

/* ---- POSTs ---- */

/* POST body to channel with Content-Type type and extra request headers
 * (NULL-terminated, may be NULL). OUT: *r. */
void bu_post_body(const hs_server *s, const char *channel, const bu_bytes *body, const char *type,
                  const char *const *headers, hs_reply *r);
/* POST body as a batch (BATCH_TYPE); returns the status (printing the
 * body when it is not 202). */
long bu_post_batch(const hs_server *s, const char *channel, const bu_bytes *body);
/* bu_post_body() that must answer status and, unless code is NULL, the
 * JSON error code. */
void bu_expect_post_body(const hs_server *s, const char *channel, const bu_bytes *body,
                         const char *type, const char *const *headers, long status,
                         const char *code);
/* POST one message with a Content-Type (NULL: none) and request headers:
 * it must be 202. */
void bu_post_one(const hs_server *s, const char *channel, const void *body, size_t len,
                 const char *type, const char *const *headers);

/* ---- batch responses ---- */

typedef struct bu_batch {
    hs_reply r;
    char boundary[MULTIPART_BOUNDARY_SIZE];
    multipart_part *parts; /* new, MULTIPART_MAX_PARTS of room */
    size_t count;
} bu_batch;

/* Check that r is a 200 multipart/mixed response, opened by its first
 * delimiter and ended by its close, and parse it into b. b takes r. */
void bu_parse_batch(hs_reply *r, bu_batch *b);
/* GET path (a ?max= one): it must be a 200 batch. OUT: *b. */
void bu_get_batch(const hs_server *s, const char *path, bu_batch *b);
void bu_batch_free(bu_batch *b);

/* How many headers of p are named name (ASCII case-insensitively).
 * OUT: *first, the first of them, when there is one. */
size_t bu_part_headers_named(const multipart_part *p, const char *name, multipart_header *first);
/* p carries exactly one header name, with exactly value. */
void bu_expect_part_header(const multipart_part *p, const char *name, const char *value);
/* The Hopper-Message-Id of p into id: it must carry one, a message id. */
void bu_part_message_id(const multipart_part *p, char id[HS_MESSAGE_ID_LEN + 1]);
/* p carries no header name. */
void bu_expect_no_part_header(const multipart_part *p, const char *name);
/* p's body is exactly body[0..len). */
void bu_expect_part_body(const multipart_part *p, const void *body, size_t len);
/* p is a first hand-out of type with body (text). */
void bu_expect_text_part(const multipart_part *p, const char *type, const char *body);

/* ---- plain responses ---- */

/* The next message of channel, taken with a plain GET: it must be a 200
 * with body and Content-Type type (one Content-Type header). OUT: *r. */
void bu_get_plain(const hs_server *s, const char *channel, const void *body, size_t len,
                  const char *type, hs_reply *r);
/* r carries exactly one header name, with value. */
void bu_expect_reply_header(const hs_reply *r, const char *name, const char *value);
/* channel answers a GET ?wait=0 with 204 and holds no message. */
void bu_expect_empty(const hs_server *s, const char *channel);

#endif
