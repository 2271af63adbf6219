/* multipart_util.h - what test_multipart.c and test_multipart_build.c
 * share: bodies parsed from a heap copy of exactly their size, so that the
 * sanitizer build catches any read outside them, and checks of the parts
 * (cmocka assertions). */
#ifndef HOPPER_TESTS_SERVER_MULTIPART_UTIL_H
#define HOPPER_TESTS_SERVER_MULTIPART_UTIL_H

#include "multipart.h"

#include <stddef.h>

/* The most parts a test parses. */
#define MU_MAX_PARTS 16

/* A string literal with its length, NUL bytes included. */
#define MU_LIT(s) s, sizeof s - 1

/* A heap copy of bytes[0..len) of exactly that size (1 byte for none). New. */
unsigned char *mu_exact_copy(const void *bytes, size_t len);

/* A parse of an exact copy of a body; the parts point into copy (the
 * caller frees it). */
typedef struct mu_parsed {
    unsigned char *copy;
    size_t len;
    multipart_err err;
    multipart_part parts[MU_MAX_PARTS];
    size_t count;
} mu_parsed;

/* Parse an exact copy of body[0..len) with boundary into p. */
void mu_parse_into(mu_parsed *p, const void *body, size_t len, const char *boundary);
/* mu_parse_into, which must succeed with count parts. */
void mu_parse_ok(mu_parsed *p, const void *body, size_t len, const char *boundary, size_t count);

/* part's body is exactly body[0..len). */
void mu_expect_body(const multipart_part *part, const void *body, size_t len);
/* The next header of part, from *offset on, is name: value. */
void mu_expect_header(const multipart_part *part, size_t *offset, const char *name,
                      const char *value);
/* part has no header after *offset. */
void mu_expect_no_more_headers(const multipart_part *part, size_t *offset);

/* multipart_boundary() reads content_type as boundary, or (boundary NULL)
 * refuses it. */
void mu_expect_boundary(const char *content_type, const char *boundary);

#endif
