/* test_envelope.c - server/envelope.c: encode and decode of version 4,
 * decode of version 3 (no TTL) and of versions 2 and 1 with their derived
 * ids, the times read alone, the returns field rewritten in place, ids
 * and times, and the refusal of every malformed envelope without reading
 * out of bounds (run it under the sanitizer build). */
#include "envelope.h"
#include "hopper/hopper.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

/* The id, receive time (2026-12-03T17:05:09.123Z) and TTL (a day and a
 * bit, in every byte but the top ones) of sample(). */
static const unsigned char SAMPLE_ID[ENVELOPE_ID_LEN] = {
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff};
#define SAMPLE_ID_TEXT "00112233445566778899aabbccddeeff"
#define SAMPLE_RECEIVED_MS 1796317509123ull
#define SAMPLE_TTL_MS 0x0000010203040506ull

/* An envelope with two headers and body "hello"; OUT: *len. New. */
static unsigned char *sample(size_t *len)
{
    envelope_header h[2] = {{"Content-Type", 12, "text/plain", 10}, {"X-Id", 4, "42", 2}};
    size_t prefix = envelope_prefix_size(h, 2);
    *len = prefix + 5;
    unsigned char *buf = malloc(*len);
    envelope_write_prefix(buf, h, 2, SAMPLE_ID, SAMPLE_RECEIVED_MS, SAMPLE_TTL_MS);
    memcpy(buf + prefix, "hello", 5);
    return buf;
}

/* Where the fields of sample() lie (version 4). */
#define COUNT_AT ENVELOPE_COUNT_OFFSET
#define FIRST_NAME_LEN_AT ENVELOPE_FIXED_BYTES
#define FIRST_VALUE_LEN_AT (ENVELOPE_FIXED_BYTES + 2 + 12)

/* Where the u16 header count lies in each version, 1 to 4. */
static size_t count_at_of(unsigned version)
{
    static const size_t at[] = {0, ENVELOPE_V1_FIXED_BYTES - 2, ENVELOPE_V2_FIXED_BYTES - 2,
                                ENVELOPE_V3_COUNT_OFFSET, ENVELOPE_COUNT_OFFSET};
    return at[version];
}

/* The same message as sample() in an earlier version, as hopper wrote it
 * then: version 3 (u8 3, u32 returns, the id, u64 received_at, u16 count,
 * the headers, the body), version 2 (u8 2, u32 returns, u16 count, ...) or
 * version 1 (u8 1, u16 count, ...). OUT: *len. New. */
static unsigned char *sample_legacy(unsigned version, size_t *len)
{
    size_t v4_len;
    unsigned char *v4 = sample(&v4_len);
    size_t count_at = count_at_of(version);
    *len = v4_len - COUNT_AT + count_at;
    unsigned char *buf = malloc(*len);
    buf[0] = (unsigned char)version;
    /* the fields before the count lie where version 4's do */
    memcpy(buf + 1, v4 + 1, count_at - 1);
    memcpy(buf + count_at, v4 + COUNT_AT, v4_len - COUNT_AT);
    free(v4);
    return buf;
}

/* Decode data[0..len) from a copy of exactly len bytes, so that the
 * sanitizer catches any read beyond. The copy is freed: only the counts,
 * lengths, id and time of *e may be read afterwards, never what its
 * pointers point to. */
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

static void expect_id_text(const envelope *e, const char *text)
{
    char got[ENVELOPE_ID_TEXT_SIZE];
    envelope_id_text(e, got);
    assert_string_equal(got, text);
}

static void test_round_trip(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    assert_int_equal(buf[0], ENVELOPE_VERSION);
    assert_int_equal(buf[0], 0x04);
    for (int i = 0; i < 4; i++)
        assert_int_equal(buf[ENVELOPE_RETURNS_OFFSET + i], 0); /* u32 LE returns, 0 when new */
    assert_int_equal(ENVELOPE_ID_OFFSET, 5);
    assert_memory_equal(buf + ENVELOPE_ID_OFFSET, SAMPLE_ID, ENVELOPE_ID_LEN);
    assert_int_equal(ENVELOPE_RECEIVED_OFFSET, 21);
    for (int i = 0; i < 8; i++) /* u64 LE */
        assert_int_equal(buf[ENVELOPE_RECEIVED_OFFSET + i], (SAMPLE_RECEIVED_MS >> (8 * i)) & 0xff);
    assert_int_equal(ENVELOPE_TTL_OFFSET, 29);
    for (int i = 0; i < 8; i++) /* u64 LE */
        assert_int_equal(buf[ENVELOPE_TTL_OFFSET + i], (SAMPLE_TTL_MS >> (8 * i)) & 0xff);
    assert_int_equal(COUNT_AT, 37);
    assert_int_equal(buf[COUNT_AT], 2); /* u16 LE count */
    assert_int_equal(buf[COUNT_AT + 1], 0);
    assert_int_equal(buf[FIRST_NAME_LEN_AT], 12);
    assert_memory_equal(buf + FIRST_NAME_LEN_AT + 2, "Content-Type", 12);
    envelope e;
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.version, ENVELOPE_VERSION);
    assert_int_equal(e.returns, 0);
    assert_memory_equal(e.id, SAMPLE_ID, ENVELOPE_ID_LEN);
    assert_int_equal(e.received_ms, SAMPLE_RECEIVED_MS);
    assert_true(e.ttl_ms == SAMPLE_TTL_MS);
    expect_id_text(&e, SAMPLE_ID_TEXT);
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
    envelope_write_prefix(buf, h, 3, SAMPLE_ID, 0, 0);
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
    envelope_write_prefix(buf, NULL, 0, SAMPLE_ID, SAMPLE_RECEIVED_MS, 0);
    assert_int_equal(envelope_prefix_size(NULL, 0), ENVELOPE_FIXED_BYTES);
    assert_int_equal(ENVELOPE_FIXED_BYTES, 39);
    envelope e;
    assert_true(decode_exact(buf, sizeof buf, &e));
    assert_int_equal(e.header_count, 0);
    assert_int_equal(e.body_len, 0);
    assert_memory_equal(e.id, SAMPLE_ID, ENVELOPE_ID_LEN);
    assert_int_equal(e.received_ms, SAMPLE_RECEIVED_MS);
    assert_int_equal(e.ttl_ms, 0);
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
    envelope_write_prefix(buf, h, ENVELOPE_MAX_HEADERS, SAMPLE_ID, SAMPLE_RECEIVED_MS,
                          SAMPLE_TTL_MS);
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
    buf = sample(&len); /* without headers: the cuts inside the fixed fields */
    envelope_write_prefix(buf, NULL, 0, SAMPLE_ID, SAMPLE_RECEIVED_MS, SAMPLE_TTL_MS);
    expect_truncations_refused(buf, ENVELOPE_FIXED_BYTES, ENVELOPE_FIXED_BYTES);
    free(buf);
    for (unsigned version = 1; version <= 3; version++) {
        buf = sample_legacy(version, &len);
        expect_truncations_refused(buf, len, len - 5);
        free(buf);
    }
}

static void test_bad_fields(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    envelope e;

    const unsigned char versions[] = {0x00, 0x05, 0xff};
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

    /* the returns, the id, the time and the TTL take any value */
    memset(buf + ENVELOPE_RETURNS_OFFSET, 0xff, 4 + ENVELOPE_ID_LEN + 8 + 8);
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.returns, UINT32_MAX);
    expect_id_text(&e, "ffffffffffffffffffffffffffffffff");
    assert_true(e.received_ms == UINT64_MAX);
    assert_true(e.ttl_ms == UINT64_MAX);
    memset(buf + ENVELOPE_ID_OFFSET, 0, ENVELOPE_ID_LEN + 8 + 8);
    assert_true(envelope_decode(buf, len, &e));
    expect_id_text(&e, "00000000000000000000000000000000");
    assert_int_equal(e.received_ms, 0);
    assert_int_equal(e.ttl_ms, 0);

    assert_false(envelope_decode(NULL, 0, &e));
    assert_false(envelope_decode(buf, 0, &e));
    free(buf);
}

/* FNV-1a 64 of the bytes a[0..an) then b[0..bn), from basis: written out
 * here apart from server/hash.h, so that a change there shows. */
static uint64_t fnv1a(uint64_t h, const unsigned char *a, size_t an, const unsigned char *b,
                      size_t bn)
{
    for (size_t i = 0; i < an + bn; i++)
        h = (h ^ (i < an ? a[i] : b[i - an])) * 1099511628211ull;
    return h;
}

/* The id envelope.h says a version 1 or 2 envelope has. */
static void expect_derived_id(const envelope *e, const unsigned char *buf, size_t len)
{
    size_t rest = buf[0] == 2 ? 5 : 1; /* version 2: the returns left out */
    uint64_t h[2] = {14695981039346656037ull, 0x9e3779b97f4a7c15ull};
    unsigned char want[ENVELOPE_ID_LEN];
    for (int k = 0; k < 2; k++) {
        uint64_t v = fnv1a(h[k], buf, 1, buf + rest, len - rest);
        for (int i = 0; i < 8; i++)
            want[8 * k + i] = (unsigned char)(v >> (8 * i));
    }
    assert_memory_equal(e->id, want, ENVELOPE_ID_LEN);
}

/* buf[0..len) is sample() in an earlier version: it decodes as that
 * version, with returns 0, no time and an id derived from its bytes.
 * OUT: *e. */
static void expect_legacy_sample(unsigned version, const unsigned char *buf, size_t len,
                                 envelope *e)
{
    assert_true(decode_exact(buf, len, e));
    assert_true(envelope_decode(buf, len, e));
    assert_int_equal(e->version, version);
    assert_int_equal(e->returns, 0);
    assert_int_equal(e->received_ms, 0);
    assert_int_equal(e->ttl_ms, 0);
    expect_sample(e);
    expect_derived_id(e, buf, len);
}

/* sample() (in any version) with a bad header count at count_at, or a
 * first name past the end, is refused; buf is left as it was. */
static void expect_bad_counts_refused(unsigned char *buf, size_t len, size_t count_at)
{
    envelope e;
    buf[count_at] = ENVELOPE_MAX_HEADERS + 1;
    assert_false(decode_exact(buf, len, &e));
    buf[count_at] = 3;
    assert_false(decode_exact(buf, len, &e));
    buf[count_at] = 2;
    buf[count_at + 2] = 0xff; /* name length past the end */
    assert_false(decode_exact(buf, len, &e));
    buf[count_at + 2] = 12;
}

/* Version 3, from queue files written before TTLs: its returns, id and
 * time decoded as stored, no TTL; refused as strictly as version 4. */
static void test_version_3_still_decoded(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample_legacy(3, &len);
    assert_int_equal(len, ENVELOPE_V3_FIXED_BYTES + 2 + 12 + 4 + 10 + 2 + 4 + 4 + 2 + 5);
    envelope e;
    assert_true(decode_exact(buf, len, &e));
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.version, ENVELOPE_VERSION_3);
    assert_int_equal(e.returns, 0);
    expect_id_text(&e, SAMPLE_ID_TEXT); /* stored, not derived */
    assert_int_equal(e.received_ms, SAMPLE_RECEIVED_MS);
    assert_int_equal(e.ttl_ms, 0);
    expect_sample(&e);
    expect_bad_counts_refused(buf, len, ENVELOPE_V3_COUNT_OFFSET);
    free(buf);
}

/* Version 2, from queue files written before message ids: its returns
 * decoded, no time, an id derived from the bytes; refused as strictly as
 * version 4. */
static void test_version_2_still_decoded(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample_legacy(2, &len);
    envelope e;
    expect_legacy_sample(ENVELOPE_VERSION_2, buf, len, &e);
    /* pinned: a change to the derivation would change ids handed out */
    expect_id_text(&e, "15e0a734201ce91a8578b02546a616c8");

    /* the same whatever the returns: it stays as the message comes back */
    assert_true(envelope_set_returns(buf, len, 7));
    envelope again;
    assert_true(envelope_decode(buf, len, &again));
    assert_int_equal(again.returns, 7);
    assert_memory_equal(again.id, e.id, ENVELOPE_ID_LEN);
    /* another byte anywhere else, another id */
    for (size_t i = 0; i < len; i++) {
        if (i >= ENVELOPE_RETURNS_OFFSET && i < ENVELOPE_RETURNS_OFFSET + 4)
            continue;
        buf[i] ^= 0x20;
        if (envelope_decode(buf, len, &again) && memcmp(again.id, e.id, ENVELOPE_ID_LEN) == 0)
            fail_msg("a change at byte %zu kept the id", i);
        buf[i] ^= 0x20;
    }

    expect_bad_counts_refused(buf, len, ENVELOPE_V2_FIXED_BYTES - 2);
    free(buf);
}

/* Version 1, from queue files written before the returns field: decoded
 * with returns 0, no time, an id derived from the bytes; refused as
 * strictly as version 4. */
static void test_version_1_still_decoded(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample_legacy(1, &len);
    envelope e;
    expect_legacy_sample(ENVELOPE_VERSION_1, buf, len, &e);

    unsigned char empty[ENVELOPE_V1_FIXED_BYTES] = {ENVELOPE_VERSION_1, 0, 0};
    assert_true(decode_exact(empty, sizeof empty, &e));
    assert_int_equal(e.header_count, 0);
    assert_int_equal(e.body_len, 0);
    expect_derived_id(&e, empty, sizeof empty);

    expect_bad_counts_refused(buf, len, ENVELOPE_V1_FIXED_BYTES - 2);
    free(buf);
}

/* Two legacy messages of the same bytes share their id, as envelope.h
 * warns; the same message in versions 1 and 2 does not. */
static void test_identical_legacy_messages_share_an_id(void **state)
{
    (void)state;
    size_t len1, len2, len3;
    unsigned char *a = sample_legacy(2, &len2), *b = sample_legacy(2, &len3);
    unsigned char *v1 = sample_legacy(1, &len1);
    envelope ea, eb, e1;
    assert_true(envelope_decode(a, len2, &ea));
    assert_true(envelope_decode(b, len3, &eb));
    assert_true(envelope_decode(v1, len1, &e1));
    assert_memory_equal(ea.id, eb.id, ENVELOPE_ID_LEN);
    assert_memory_not_equal(ea.id, e1.id, ENVELOPE_ID_LEN);
    free(a);
    free(b);
    free(v1);
}

/* In place on versions 4, 3 and 2, little-endian, nothing else changed. */
static void expect_set_returns(unsigned char *buf, size_t len)
{
    unsigned char *before = malloc(len);
    memcpy(before, buf, len);
    envelope e, first;
    assert_true(envelope_decode(buf, len, &first));
    const uint32_t values[] = {1, 2, 0x01020304u, UINT32_MAX, 0};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        assert_true(envelope_set_returns(buf, len, values[i]));
        assert_true(envelope_decode(buf, len, &e));
        assert_int_equal(e.returns, values[i]);
        assert_memory_equal(e.id, first.id, ENVELOPE_ID_LEN);
        assert_true(e.received_ms == first.received_ms);
        assert_true(e.ttl_ms == first.ttl_ms);
        expect_sample(&e);
        for (int b = 0; b < 4; b++)
            assert_int_equal(buf[ENVELOPE_RETURNS_OFFSET + b], (values[i] >> (8 * b)) & 0xff);
        assert_int_equal(buf[0], before[0]);
        assert_memory_equal(buf + ENVELOPE_RETURNS_OFFSET + 4, before + ENVELOPE_RETURNS_OFFSET + 4,
                            len - ENVELOPE_RETURNS_OFFSET - 4);
    }

    /* a body-only cut is still a valid envelope */
    assert_true(envelope_set_returns(buf, len - 5, 9));
    assert_true(envelope_decode(buf, len, &e));
    assert_int_equal(e.returns, 9);

    /* malformed: refused, unchanged */
    memcpy(before, buf, len);
    for (size_t cut = 0; cut < len - 5; cut++)
        assert_false(envelope_set_returns(buf, cut, 7));
    size_t count_at = count_at_of(buf[0]);
    buf[count_at] = 3;
    assert_false(envelope_set_returns(buf, len, 7));
    buf[count_at] = 2;
    assert_memory_equal(buf, before, len);
    free(before);
}

static void test_set_returns(void **state)
{
    (void)state;
    size_t len;
    unsigned char *buf = sample(&len);
    expect_set_returns(buf, len);
    free(buf);
    for (unsigned version = 2; version <= 3; version++) {
        buf = sample_legacy(version, &len);
        expect_set_returns(buf, len);
        free(buf);
    }
    assert_false(envelope_set_returns(NULL, 0, 7));

    /* version 1 has no field to rewrite */
    buf = sample_legacy(1, &len);
    unsigned char *before = malloc(len);
    memcpy(before, buf, len);
    assert_false(envelope_set_returns(buf, len, 1));
    assert_memory_equal(buf, before, len);
    free(buf);
    free(before);
}

/* envelope_times() reads the fixed fields of any version and nothing
 * else: a damaged header after them does not matter; a cut inside them,
 * or an unknown version, does. */
static void test_times_alone(void **state)
{
    (void)state;
    for (unsigned version = 1; version <= 4; version++) {
        size_t len;
        unsigned char *buf = version == 4 ? sample(&len) : sample_legacy(version, &len);
        size_t count_at = count_at_of(version);
        uint64_t received = 7, ttl = 7;
        buf[count_at] = 0xff; /* too many headers: not looked at */
        assert_true(envelope_times(buf, count_at + 2, &received, &ttl));
        assert_true(received == (version >= 3 ? SAMPLE_RECEIVED_MS : 0));
        assert_true(ttl == (version == 4 ? SAMPLE_TTL_MS : 0));
        for (size_t cut = 0; cut < count_at + 2; cut++) {
            unsigned char *copy = malloc(cut ? cut : 1); /* exactly: the sanitizer sees */
            memcpy(copy, buf, cut);
            assert_false(envelope_times(copy, cut, &received, &ttl));
            free(copy);
        }
        buf[0] = 0x05;
        assert_false(envelope_times(buf, len, &received, &ttl));
        free(buf);
    }
    uint64_t received, ttl;
    assert_false(envelope_times(NULL, 0, &received, &ttl));
}

/* New ids differ, and their text is 32 lowercase hex digits; the time is
 * the wall clock's, in milliseconds. */
static void test_new_ids_and_now(void **state)
{
    (void)state;
    envelope a, b;
    envelope_new_id(a.id);
    envelope_new_id(b.id);
    assert_memory_not_equal(a.id, b.id, ENVELOPE_ID_LEN);
    char text[ENVELOPE_ID_TEXT_SIZE];
    envelope_id_text(&a, text);
    assert_int_equal(strlen(text), 32);
    assert_int_equal(strspn(text, "0123456789abcdef"), 32);

    uint64_t before = (uint64_t)time(NULL) * 1000u;
    uint64_t now = hop_now_ms();
    uint64_t after = (uint64_t)time(NULL) * 1000u + 1000u;
    assert_true(now >= before && now < after);
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
        cmocka_unit_test(test_version_3_still_decoded),
        cmocka_unit_test(test_version_2_still_decoded),
        cmocka_unit_test(test_version_1_still_decoded),
        cmocka_unit_test(test_identical_legacy_messages_share_an_id),
        cmocka_unit_test(test_set_returns),
        cmocka_unit_test(test_times_alone),
        cmocka_unit_test(test_new_ids_and_now),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
