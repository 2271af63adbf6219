/* fuzz_multipart.c - libFuzzer harness of the multipart/mixed codec of
 * batch POST bodies (server/multipart.c).
 *
 * Input: a Content-Type value up to the first '\n' (cut at a NUL, as MHD
 * hands header values), then the body, any bytes. The boundary is the one
 * multipart_boundary() finds in the Content-Type, or a fixed one so that
 * the body parser runs on every input. Checked:
 *   - an accepted boundary is 1..70 characters;
 *   - a parsed body has 1..MULTIPART_MAX_PARTS parts, in order, each with
 *     its header lines and body inside the input and not overlapping the
 *     next part; multipart_header_next() walks exactly header_count valid
 *     headers inside the header lines; multipart_part_find() returns a
 *     value inside them;
 *   - round trip: the parts written again with multipart_write_body() (of
 *     exactly multipart_body_size() bytes, under a boundary from
 *     multipart_choose_boundary()) parse to the same headers and bodies. */
#include "multipart.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FALLBACK_BOUNDARY "hopper-fuzz"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_multipart: %s\n", what);
    abort();
}

static bool inside(const void *p, size_t n, const uint8_t *start, size_t len)
{
    const uint8_t *q = p;
    return n == 0 || (q >= start && q <= start + len && n <= (size_t)(start + len - q));
}

static multipart_part parts[MULTIPART_MAX_PARTS], again[MULTIPART_MAX_PARTS];
static multipart_outgoing_part out[MULTIPART_MAX_PARTS];

/* The headers of p, checked. OUT: h (room for MULTIPART_MAX_HEADERS). */
static size_t walk_headers(const multipart_part *p, multipart_header *h)
{
    size_t offset = 0, n = 0;
    multipart_header one;
    while (multipart_header_next(p, &offset, &one)) {
        if (n == MULTIPART_MAX_HEADERS)
            fail("more headers than allowed");
        if (!multipart_header_valid(&one))
            fail("an invalid header was accepted");
        if (!inside(one.name, one.name_len, (const uint8_t *)p->header_lines,
                    p->header_lines_len) ||
            !inside(one.value, one.value_len, (const uint8_t *)p->header_lines,
                    p->header_lines_len))
            fail("a header outside the part's header lines");
        h[n++] = one;
    }
    if (n != p->header_count)
        fail("header_count does not match the headers walked");
    size_t len;
    const char *v = multipart_part_find(p, "Content-Type", &len);
    if (v && !inside(v, len, (const uint8_t *)p->header_lines, p->header_lines_len))
        fail("multipart_part_find outside the header lines");
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t ct_len = nl ? (size_t)(nl - data) : size;
    char *ct = malloc(ct_len + 1);
    if (ct == NULL)
        return 0;
    memcpy(ct, data, ct_len);
    ct[ct_len] = '\0';
    const uint8_t *body = nl ? nl + 1 : data + size;
    size_t body_len = (size_t)(data + size - body);

    char boundary[MULTIPART_BOUNDARY_SIZE];
    if (multipart_boundary(ct, boundary)) {
        size_t n = strnlen(boundary, sizeof boundary);
        if (n == 0 || n > MULTIPART_BOUNDARY_MAX)
            fail("a boundary of a bad length");
    } else {
        strcpy(boundary, FALLBACK_BOUNDARY);
    }
    free(ct);

    size_t count = 0;
    multipart_err err = multipart_parse(body, body_len, boundary, MULTIPART_MAX_HEADERS, parts,
                                        MULTIPART_MAX_PARTS, &count);
    if (err != MULTIPART_OK) {
        if (count >= MULTIPART_MAX_PARTS)
            fail("a failed parse counts too many whole parts");
        return 0;
    }
    if (count == 0 || count > MULTIPART_MAX_PARTS)
        fail("a parsed body with a bad number of parts");

    multipart_header *headers = malloc(count * MULTIPART_MAX_HEADERS * sizeof *headers);
    if (headers == NULL)
        return 0;
    const uint8_t *last = body;
    for (size_t i = 0; i < count; i++) {
        const multipart_part *p = &parts[i];
        if (!inside(p->header_lines, p->header_lines_len, body, body_len) ||
            !inside(p->body, p->body_len, body, body_len))
            fail("a part outside the body");
        if (p->header_lines_len && (const uint8_t *)p->header_lines < last)
            fail("parts out of order or overlapping");
        if (p->body_len && p->body < last)
            fail("parts out of order or overlapping");
        if (p->body_len)
            last = p->body + p->body_len;
        multipart_header *h = headers + i * MULTIPART_MAX_HEADERS;
        size_t nh = walk_headers(p, h);
        out[i] = (multipart_outgoing_part){h, nh, p->body, p->body_len};
    }

    /* round trip */
    char b2[MULTIPART_BOUNDARY_SIZE];
    multipart_choose_boundary(out, count, 42, b2);
    size_t size2 = multipart_body_size(out, count, b2);
    unsigned char *body2 = malloc(size2 ? size2 : 1);
    if (body2 == NULL) {
        free(headers);
        return 0;
    }
    if (multipart_write_body(body2, out, count, b2) != size2)
        fail("multipart_write_body wrote another size than multipart_body_size");
    size_t count2 = 0;
    if (multipart_parse(body2, size2, b2, MULTIPART_MAX_HEADERS, again, MULTIPART_MAX_PARTS,
                        &count2) != MULTIPART_OK ||
        count2 != count)
        fail("the body written again does not parse to as many parts");
    multipart_header h2[MULTIPART_MAX_HEADERS];
    for (size_t i = 0; i < count; i++) {
        if (again[i].body_len != out[i].body_len ||
            (out[i].body_len && memcmp(again[i].body, out[i].body, out[i].body_len) != 0))
            fail("a body changed in the round trip");
        size_t nh = walk_headers(&again[i], h2);
        if (nh != out[i].header_count)
            fail("a header count changed in the round trip");
        for (size_t j = 0; j < nh; j++) {
            const multipart_header *a = &out[i].headers[j], *b = &h2[j];
            if (a->name_len != b->name_len || a->value_len != b->value_len ||
                memcmp(a->name, b->name, a->name_len) != 0 ||
                memcmp(a->value, b->value, a->value_len) != 0)
                fail("a header changed in the round trip");
        }
    }
    free(body2);
    free(headers);
    return 0;
}
