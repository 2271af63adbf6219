/* multipart_util.c - what the tests of server/multipart.c share (see
 * multipart_util.h). */
#include "multipart_util.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

unsigned char *mu_exact_copy(const void *bytes, size_t len)
{
    unsigned char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len > 0)
        memcpy(copy, bytes, len);
    return copy;
}

void mu_parse_into(mu_parsed *p, const void *body, size_t len, const char *boundary)
{
    p->copy = mu_exact_copy(body, len);
    p->len = len;
    p->err = multipart_parse(p->copy, len, boundary, MULTIPART_MAX_HEADERS, p->parts, MU_MAX_PARTS,
                             &p->count);
}

void mu_parse_ok(mu_parsed *p, const void *body, size_t len, const char *boundary, size_t count)
{
    mu_parse_into(p, body, len, boundary);
    if (p->err != MULTIPART_OK)
        fail_msg("%s", multipart_strerror(p->err));
    assert_int_equal(p->count, count);
}

void mu_expect_body(const multipart_part *part, const void *body, size_t len)
{
    assert_int_equal(part->body_len, len);
    if (len > 0)
        assert_memory_equal(part->body, body, len);
}

void mu_expect_header(const multipart_part *part, size_t *offset, const char *name,
                      const char *value)
{
    multipart_header h;
    assert_true(multipart_header_next(part, offset, &h));
    assert_int_equal(h.name_len, strlen(name));
    assert_memory_equal(h.name, name, h.name_len);
    assert_int_equal(h.value_len, strlen(value));
    if (h.value_len > 0)
        assert_memory_equal(h.value, value, h.value_len);
}

void mu_expect_no_more_headers(const multipart_part *part, size_t *offset)
{
    multipart_header h = {"unchanged", 9, NULL, 0};
    assert_false(multipart_header_next(part, offset, &h));
    assert_string_equal(h.name, "unchanged");
}

void mu_expect_boundary(const char *content_type, const char *boundary)
{
    char out[MULTIPART_BOUNDARY_SIZE];
    bool ok = multipart_boundary(content_type, out);
    if (boundary == NULL) {
        if (ok)
            fail_msg("accepted \"%s\" as boundary \"%s\"", content_type, out);
    } else {
        if (!ok)
            fail_msg("refused \"%s\"", content_type);
        assert_string_equal(out, boundary);
    }
}
