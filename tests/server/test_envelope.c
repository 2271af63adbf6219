/* test_envelope.c - server/envelope.c: encode and decode of version 2,
 * decode of version 1, the returns field rewritten in place, and the
 * refusal of every malformed envelope without reading out of bounds (run it
 * under the sanitizer build). */
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

/* Where the fields of sample() lie (version 2). */
#define COUNT_AT (ENVELOPE_RETURNS_OFFSET + 4)
#define FIRST_NAME_LEN_AT ENVELOPE_FIXED_BYTES
#define FIRST_VALUE_LEN_AT (ENVELOPE_FIXED_BYTES + 2 + 12)

/* The same message as sample() in version 1, as hopper wrote it before the
 * returns field: u8 1, u16 count, the headers, the body. OUT: *len. New. */
static unsigned char *sample_v1(size_t *len)
{
    size_t v2_len;
    unsigned char *v2 = sample(&v2_len);
    size_t dropped = ENVELOPE_FIXED_BYTES - ENVELOPE_V1_FIXED_BYTES; /* the returns field */
    *len = v2_len - dropped;
    unsigned char *buf = malloc(*len);
    buf[0] = ENVELOPE_VERSION_1;
    memcpy(buf + 1, v2 + COUNT_AT, v2_len - COUNT_AT);
    free(v2);
    return buf;
}

/* Decode data[0..len) from a copy of exactly len bytes, so that the
 * sanitizer catches any read beyond. The copy is freed: only the counts and
 * lengths of *e may be read afterwards, never what its pointers point to. */
static bool decode_exact(const unsigned char *data, size_t len, envelope *e)
{
    unsigned char *copy = malloc(len ? len : 1);
    memcpy(copy, data, len);
    bool ok = envelope_decode(copy, len, e);
    free(copy);
    return ok;
}

static void expect_sample(const envelope *e)
{
    assert_int_equal(e->header_count, 2);
    assert_int_equal(e->body_len, 5);
    assert_memory_equal(e->body, "hello", 5);
    size_t vlen;
    const char *v = envelope_find(e, "content-type", &vlen); /* case-insensitive */
    assert_non_null(v);
    assert_int_equal(vlen, 10);
    assert_memory_equal(v, "text/plain", 10);
    v = envelope_find(e, "X-Id", &vlen);
    assert_non_null(v);
    assert_int_equal(vlen, 2);
    assert_memory_equal(v, "42", 2);
    assert_null(envelope_find(e, "Missing", &vlen));
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    assert_int_equal(buf[0], ENVELOPE_VERSION);
    assert_int_equal(buf[0], 0x02);
    for (int i = 0; i < 4; i++)
        assert_int_equal(buf[ENVELOPE_RETURNS_OFFSET + i], 0); /* u32 LE returns, 0 when new */
    assert_int_equal(buf[COUNT_AT], 2);                        /* u16 LE count */
    assert_int_equal(buf[COUNT_AT + 1], 0);
    assert_int_equal(buf[FIRST_NAME_LEN_AT], 12);
    assert_memory_equal(buf + FIRST_NAME_LEN_AT + 2, "Content-Type", 12);
    envelope e;
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.version, ENVELOPE_VERSION);
    assert_int_equal(e.returns, 0);
    expect_sample(&e);
    free(buf);
}

/* Names and values hold any bytes, in order, repeated names included. */
static void test_header_bytes_and_order_kept(void **state)
{
    (void)state;
    static const char odd[] = "t=1,v1=ab;c=\"d\"\t\x80\xff";
    envelope_header h[3] = {
        {"X-Sig", 5, odd, sizeof odd - 1}, {"x-sig", 5, "", 0}, {"X-Sig", 5, "second", 6}};
    size_t prefix = envelope_prefix_size(h, 3);
    unsigned char buf[256];
    envelope_write_prefix(buf, h, 3);
    envelope e;
    assert_true(envelope_decode(buf, prefix, &e));
    assert_int_equal(e.header_count, 3);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(e.headers[i].name_len, h[i].name_len);
        assert_memory_equal(e.headers[i].name, h[i].name, h[i].name_len);
        assert_int_equal(e.headers[i].value_len, h[i].value_len);
        if (h[i].value_len)
            assert_memory_equal(e.headers[i].value, h[i].value, h[i].value_len);
    }
    assert_int_equal(e.body_len, 0);
}

static void test_empty_body_and_no_headers(void **state)
{
    (void)state;
    unsigned char buf[ENVELOPE_FIXED_BYTES];
    envelope_write_prefix(buf, NULL, 0);
    assert_int_equal(envelope_prefix_size(NULL, 0), ENVELOPE_FIXED_BYTES);
    assert_int_equal(ENVELOPE_FIXED_BYTES, 7);
    envelope e;
    assert_true(decode_exact(buf, sizeof buf, &e));
    assert_int_equal(e.header_count, 0);
    assert_int_equal(e.body_len, 0);
}

/* ENVELOPE_MAX_HEADERS headers decode, one more does not; and the
 * allowance is exactly what a largest envelope adds to the bytes that
 * --max-message-bytes counts (body, names and values but Content-Type's). */
static void test_most_headers_and_the_allowance(void **state)
{
    (void)state;
    static char type[ENVELOPE_MAX_CONTENT_TYPE];
    memset(type, 't', sizeof type);
    envelope_header h[ENVELOPE_MAX_HEADERS];
    h[0] =
        (envelope_header){ENVELOPE_CONTENT_TYPE, strlen(ENVELOPE_CONTENT_TYPE), type, sizeof type};
    size_t counted = 0;
    for (size_t i = 1; i < ENVELOPE_MAX_HEADERS; i++) {
        h[i] = (envelope_header){"X-GitHub-Event", 14, "push", 4};
        counted += 14 + 4;
    }
    size_t prefix = envelope_prefix_size(h, ENVELOPE_MAX_HEADERS);
    assert_int_equal(prefix - counted, ENVELOPE_ALLOWANCE);
    unsigned char *buf = malloc(prefix + 1);
    envelope_write_prefix(buf, h, ENVELOPE_MAX_HEADERS);
    buf[prefix] = 'b';
    envelope e;
    assert_true(decode_exact(buf, prefix + 1, &e));
    assert_int_equal(e.header_count, ENVELOPE_MAX_HEADERS);
    assert_int_equal(e.body_len, 1);
    assert_int_equal(e.headers[ENVELOPE_MAX_HEADERS - 1].value_len, 4);

    buf[COUNT_AT] = ENVELOPE_MAX_HEADERS + 1; /* one more than the limit */
    assert_false(decode_exact(buf, prefix + 1, &e));
    free(buf);
}

/* Every cut inside the prefix is refused; cuts in the body only shorten it.
 * Each prefix is copied to a buffer of exactly its size so the sanitizer
 * catches any read beyond. */
static void expect_truncations_refused(const unsigned char *buf, size_t len, size_t prefix)
{
    for (size_t cut = 0; cut <= len; cut++) {
        envelope e;
        bool ok = decode_exact(buf, cut, &e);
        if (cut < prefix) {
            if (ok)
                fail_msg("a cut at %zu of a %zu-byte prefix decoded", cut, prefix);
        } else {
            assert_true(ok);
            assert_int_equal(e.body_len, cut - prefix);
        }
    }
}

static void test_truncations(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    expect_truncations_refused(buf, len, len - 5);
    free(buf);
    buf = sample_v1(&len);
    expect_truncations_refused(buf, len, len - 5);
    free(buf);
}

static void test_bad_fields(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    envelope e;

    const unsigned char versions[] = {0x00, 0x03, 0xff};
    for (size_t i = 0; i < sizeof versions; i++) {
        buf[0] = versions[i]; /* unknown version */
        assert_false(envelope_decode(buf, len, &e));
    }
    buf[0] = ENVELOPE_VERSION;

    buf[COUNT_AT] = 0xff; /* more headers than the limit */
    buf[COUNT_AT + 1] = 0xff;
    assert_false(envelope_decode(buf, len, &e));
    buf[COUNT_AT] = ENVELOPE_MAX_HEADERS + 1;
    buf[COUNT_AT + 1] = 0;
    assert_false(envelope_decode(buf, len, &e));
    buf[COUNT_AT] = 3; /* one more header than there is: the body is too short */
    assert_false(envelope_decode(buf, len, &e));
    buf[COUNT_AT] = 2;

    buf[FIRST_NAME_LEN_AT] = 0xff; /* name length past the end */
    buf[FIRST_NAME_LEN_AT + 1] = 0xff;
    assert_false(envelope_decode(buf, len, &e));
    buf[FIRST_NAME_LEN_AT] = 12;
    buf[FIRST_NAME_LEN_AT + 1] = 0;

    memset(buf + FIRST_VALUE_LEN_AT, 0xff, 4); /* value length 4 GiB */
    assert_false(envelope_decode(buf, len, &e));
    buf[FIRST_VALUE_LEN_AT] = (unsigned char)len; /* past the end by a little */
    memset(buf + FIRST_VALUE_LEN_AT + 1, 0, 3);
    assert_false(envelope_decode(buf, len, &e));
    buf[FIRST_VALUE_LEN_AT] = 10;
    assert_true(envelope_decode(buf, len, &e));

    /* the returns field takes any value */
    memset(buf + ENVELOPE_RETURNS_OFFSET, 0xff, 4);
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.returns, UINT32_MAX);

    assert_false(envelope_decode(NULL, 0, &e));
    assert_false(envelope_decode(buf, 0, &e));
    free(buf);
}

/* Version 1, from queue files written before the returns field: decoded
 * with returns 0, refused as strictly as version 2. */
static void test_version_1_still_decoded(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample_v1(&len);
    envelope e;
    assert_true(decode_exact(buf, len, &e));
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.version, ENVELOPE_VERSION_1);
    assert_int_equal(e.returns, 0);
    expect_sample(&e);

    unsigned char empty[ENVELOPE_V1_FIXED_BYTES] = {ENVELOPE_VERSION_1, 0, 0};
    assert_true(decode_exact(empty, sizeof empty, &e));
    assert_int_equal(e.header_count, 0);
    assert_int_equal(e.body_len, 0);

    buf[1] = ENVELOPE_MAX_HEADERS + 1;
    assert_false(decode_exact(buf, len, &e));
    buf[1] = 3;
    assert_false(decode_exact(buf, len, &e));
    buf[1] = 2;
    buf[ENVELOPE_V1_FIXED_BYTES] = 0xff; /* name length past the end */
    assert_false(decode_exact(buf, len, &e));
    free(buf);
}

static void test_set_returns(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    unsigned char *before = malloc(len);
    memcpy(before, buf, len);
    envelope e;

    const uint32_t values[] = {1, 2, 0x01020304u, UINT32_MAX, 0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        assert_true(envelope_set_returns(buf, len, values[i]));
        assert_true(envelope_decode(buf, len, &e));
        assert_int_equal(e.returns, values[i]);
        expect_sample(&e);
        /* in place, little-endian, and nothing else changed */
        for (int b = 0; b < 4; b++)
            assert_int_equal(buf[ENVELOPE_RETURNS_OFFSET + b], (values[i] >> (8 * b)) & 0xff);
        assert_int_equal(buf[0], before[0]);
        assert_memory_equal(buf + COUNT_AT, before + COUNT_AT, len - COUNT_AT);
    }

    /* a body-only cut is still a valid envelope */
    assert_true(envelope_set_returns(buf, len - 5, 9));
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.returns, 9);

    /* malformed: refused, unchanged */
    memcpy(before, buf, len);
    for (size_t cut = 0; cut < len - 5; cut++)
        assert_false(envelope_set_returns(buf, cut, 7));
    buf[COUNT_AT] = 3;
    assert_false(envelope_set_returns(buf, len, 7));
    buf[COUNT_AT] = 2;
    assert_memory_equal(buf, before, len);
    assert_false(envelope_set_returns(NULL, 0, 7));
    free(buf);
    free(before);

    /* version 1 has no field to rewrite */
    buf = sample_v1(&len);
    before = malloc(len);
    memcpy(before, buf, len);
    assert_false(envelope_set_returns(buf, len, 1));
    assert_memory_equal(buf, before, len);
    free(buf);
    free(before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_header_bytes_and_order_kept),
        cmocka_unit_test(test_empty_body_and_no_headers),
        cmocka_unit_test(test_most_headers_and_the_allowance),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_version_1_still_decoded),
        cmocka_unit_test(test_set_returns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
