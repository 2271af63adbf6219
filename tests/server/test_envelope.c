/* test_envelope.c - server/envelope.c: encode, decode, and the refusal of
 * every malformed envelope without reading out of bounds (run it under the
 * sanitizer build). */
#include "envelope.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* An envelope with two headers and body "hello"; OUT: *len. New. */
static unsigned char *sample(size_t *len)
{
    envelope_header h[2] = {{"Content-Type", 12, "text/plain", 10}, {"X-Id", 4, "42", 2}};
    size_t prefix = envelope_prefix_size(h, 2);
    *len = prefix + 5;
    unsigned char *buf = malloc(*len);
    envelope_write_prefix(buf, h, 2);
    memcpy(buf + prefix, "hello", 5);
    return buf;
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    assert_int_equal(buf[0], ENVELOPE_VERSION);
    assert_int_equal(buf[1], 2); /* u16 LE count */
    assert_int_equal(buf[2], 0);
    envelope e;
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.header_count, 2);
    assert_int_equal(e.body_len, 5);
    assert_memory_equal(e.body, "hello", 5);
    size_t vlen;
    const char *v = envelope_find(&e, "content-type", &vlen); /* case-insensitive */
    assert_non_null(v);
    assert_int_equal(vlen, 10);
    assert_memory_equal(v, "text/plain", 10);
    v = envelope_find(&e, "X-Id", &vlen);
    assert_memory_equal(v, "42", 2);
    assert_null(envelope_find(&e, "Missing", &vlen));
    free(buf);
}

static void test_empty_body_and_no_headers(void **state)
{
    (void)state;
    unsigned char buf[3];
    envelope_write_prefix(buf, NULL, 0);
    assert_int_equal(envelope_prefix_size(NULL, 0), 3);
    envelope e;
    assert_true(envelope_decode(buf, 3, &e));
    assert_int_equal(e.header_count, 0);
    assert_int_equal(e.body_len, 0);
}

/* Every cut inside the prefix is refused; cuts in the body only shorten it.
 * Each prefix is copied to a buffer of exactly its size so the sanitizer
 * catches any read beyond. */
static void test_truncations(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    size_t prefix = len - 5;
    for (size_t cut = 0; cut <= len; cut++) {
        unsigned char *copy = malloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        envelope e;
        bool ok = envelope_decode(copy, cut, &e);
        if (cut < prefix) {
            assert_false(ok);
        } else {
            assert_true(ok);
            assert_int_equal(e.body_len, cut - prefix);
        }
        free(copy);
    }
    free(buf);
}

static void test_bad_fields(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    envelope e;

    buf[0] = 0x02; /* unknown version */
    assert_false(envelope_decode(buf, len, &e));
    buf[0] = ENVELOPE_VERSION;

    buf[1] = 0xff; /* more headers than the limit */
    buf[2] = 0xff;
    assert_false(envelope_decode(buf, len, &e));
    buf[1] = ENVELOPE_MAX_HEADERS + 1;
    buf[2] = 0;
    assert_false(envelope_decode(buf, len, &e));
    buf[1] = 3; /* one more header than there is */
    assert_false(envelope_decode(buf, len, &e));
    buf[1] = 2;

    buf[3] = 0xff; /* name length past the end */
    buf[4] = 0xff;
    assert_false(envelope_decode(buf, len, &e));
    buf[3] = 12;
    buf[4] = 0;

    size_t value_len_at = 3 + 2 + 12;
    memset(buf + value_len_at, 0xff, 4); /* value length 4 GiB */
    assert_false(envelope_decode(buf, len, &e));
    buf[value_len_at] = 10;
    memset(buf + value_len_at + 1, 0, 3);
    assert_true(envelope_decode(buf, len, &e));

    assert_false(envelope_decode(NULL, 0, &e));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_empty_body_and_no_headers),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bad_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
