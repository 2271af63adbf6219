/* test_record.c - tests of core/src/record.c: the queue file header and the
 * record framing, byte by byte as record.c documents them. */
#include "test_util.h"

#include "crc32c.h"
#include "record.h"

#include <string.h>

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void test_file_header_layout(void **state)
{
    (void)state;
    unsigned char h[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(h, 0x0102030405060708ull);
    static const unsigned char want[HOP__FILE_HEADER_SIZE] = {
        'H', 'O', 'P', 'Q', 2, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    assert_memory_equal(h, want, sizeof want);
    assert_int_equal(HOP__FORMAT_VERSION, 2);
}

static void test_file_header_round_trip(void **state)
{
    (void)state;
    static const uint64_t seqs[] = {0, 1, 2, 0xFFFFFFFFull, 0x100000000ull + 5, UINT64_MAX};
    for (size_t i = 0; i < sizeof seqs / sizeof seqs[0]; i++) {
        unsigned char h[HOP__FILE_HEADER_SIZE];
        uint64_t seq = 12345;
        hop__file_header_encode(h, seqs[i]);
        assert_true(hop__file_header_decode(h, &seq));
        assert_true(seq == seqs[i]);
    }
}

static void test_file_header_rejects_bad_magic_and_version(void **state)
{
    (void)state;
    unsigned char good[HOP__FILE_HEADER_SIZE], h[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(good, 7);
    for (int i = 0; i < 8; i++) { /* magic and version bytes */
        for (int bit = 0; bit < 8; bit++) {
            memcpy(h, good, sizeof h);
            h[i] ^= (unsigned char)(1u << bit);
            uint64_t seq = 99;
            assert_false(hop__file_header_decode(h, &seq));
            assert_true(seq == 99); /* untouched on failure */
        }
    }
    /* versions 0, 1 (hopper 0.1.0) and 3 explicitly */
    static const uint32_t versions[] = {0, 1, 3, 0x02000000u};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        memcpy(h, good, sizeof h);
        h[4] = (unsigned char)versions[i];
        h[5] = (unsigned char)(versions[i] >> 8);
        h[6] = (unsigned char)(versions[i] >> 16);
        h[7] = (unsigned char)(versions[i] >> 24);
        uint64_t seq;
        assert_false(hop__file_header_decode(h, &seq));
    }
}

/* Another version's header is told apart from a damaged or foreign one. */
static void test_file_header_other_version(void **state)
{
    (void)state;
    unsigned char h[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(h, 3);
    assert_false(hop__file_header_other_version(h)); /* ours */
    h[4] = 1;
    assert_true(hop__file_header_other_version(h));
    h[4] = 0;
    assert_true(hop__file_header_other_version(h));
    h[4] = 2;
    h[7] = 1; /* version 0x01000002 */
    assert_true(hop__file_header_other_version(h));
    hop__file_header_encode(h, 3);
    h[0] = 'X'; /* not our magic: not a queue file of any version */
    assert_false(hop__file_header_other_version(h));
    h[4] = 2;
    assert_false(hop__file_header_other_version(h));
    memset(h, 0, sizeof h);
    assert_false(hop__file_header_other_version(h));
}

static void test_record_header_layout(void **state)
{
    (void)state;
    unsigned char payload[300], h[HOP__RECORD_HEADER_SIZE];
    tu_fill(payload, sizeof payload, 3);
    hop__record_header_encode(h, payload, sizeof payload);
    assert_memory_equal(h, "HOPR", 4); /* magic 0x52504F48, little-endian */
    assert_int_equal(le32(h + 4), sizeof payload);
    /* payload crc, then a crc of the first 12 header bytes */
    assert_int_equal(le32(h + 8), hop__crc32c(0, payload, sizeof payload));
    assert_int_equal(le32(h + 12), hop__crc32c(0, h, 12));
}

static void test_record_round_trip(void **state)
{
    (void)state;
    static unsigned char payload[70000];
    tu_fill(payload, sizeof payload, 11);
    static const uint32_t lens[] = {0, 1, 7, 8, 9, 100, 4096, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        unsigned char h[HOP__RECORD_HEADER_SIZE];
        hop__record_header_encode(h, payload, lens[i]);
        uint32_t len = 0, crc = 0;
        assert_true(hop__record_header_decode(h, &len, &crc));
        assert_int_equal(len, lens[i]);
        assert_true(hop__record_verify(crc, payload, len));
    }
}

/* Any flipped bit of the payload fails verification. */
static void test_flipped_payload_bit_fails_verify(void **state)
{
    (void)state;
    unsigned char payload[40], h[HOP__RECORD_HEADER_SIZE];
    tu_fill(payload, sizeof payload, 5);
    hop__record_header_encode(h, payload, sizeof payload);
    uint32_t len, crc;
    assert_true(hop__record_header_decode(h, &len, &crc));
    for (size_t bit = 0; bit < sizeof payload * 8; bit++) {
        payload[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_false(hop__record_verify(crc, payload, len));
        payload[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_true(hop__record_verify(crc, payload, len));
}

/* Any flipped bit of the length or either crc field makes the header
 * invalid: a damaged length is never trusted, so the reader never jumps by
 * it into the middle of other data. */
static void test_flipped_header_bit_fails_decode(void **state)
{
    (void)state;
    static unsigned char payload[1000];
    tu_fill(payload, sizeof payload, 6);
    unsigned char good[HOP__RECORD_HEADER_SIZE];
    hop__record_header_encode(good, payload, sizeof payload);
    for (int byte = 4; byte < HOP__RECORD_HEADER_SIZE; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            unsigned char h[HOP__RECORD_HEADER_SIZE];
            memcpy(h, good, sizeof h);
            h[byte] ^= (unsigned char)(1u << bit);
            uint32_t len = 77, crc = 88;
            assert_false(hop__record_header_decode(h, &len, &crc));
            assert_int_equal(len, 77); /* outputs untouched */
            assert_int_equal(crc, 88);
        }
    }
}

static void test_record_magic_mismatch(void **state)
{
    (void)state;
    unsigned char good[HOP__RECORD_HEADER_SIZE];
    hop__record_header_encode(good, "x", 1);
    for (int byte = 0; byte < 4; byte++) {
        for (int bit = 0; bit < 8; bit++) {
            unsigned char h[HOP__RECORD_HEADER_SIZE];
            memcpy(h, good, sizeof h);
            h[byte] ^= (unsigned char)(1u << bit);
            uint32_t len = 77, crc = 88;
            assert_false(hop__record_header_decode(h, &len, &crc));
            assert_int_equal(len, 77); /* outputs untouched */
            assert_int_equal(crc, 88);
        }
    }
    /* a file header is not a record header */
    unsigned char fh[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(fh, 1);
    uint32_t len, crc;
    assert_false(hop__record_header_decode(fh, &len, &crc));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_header_layout),
        cmocka_unit_test(test_file_header_round_trip),
        cmocka_unit_test(test_file_header_rejects_bad_magic_and_version),
        cmocka_unit_test(test_file_header_other_version),
        cmocka_unit_test(test_record_header_layout),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_flipped_payload_bit_fails_verify),
        cmocka_unit_test(test_flipped_header_bit_fails_decode),
        cmocka_unit_test(test_record_magic_mismatch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
