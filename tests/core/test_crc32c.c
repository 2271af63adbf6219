/* test_crc32c.c - tests of core/src/crc32c.c: known vectors, the hardware
 * and table paths against a bit-at-a-time reference, incremental use. */
#include "test_util.h"

#include "crc32c.h"

#include <string.h>

/* The definition of CRC-32C, one bit at a time: slow and obviously right. */
static uint32_t crc32c_reference(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    crc = ~crc;
    while (len--) {
        crc ^= *p++;
        for (int k = 0; k < 8; k++)
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
    }
    return ~crc;
}

typedef uint32_t (*crc_fn)(uint32_t, const void *, size_t);

static void check_vectors(crc_fn fn)
{
    unsigned char buf[32];
    assert_int_equal(fn(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(fn(0, "", 0), 0);
    assert_int_equal(fn(0, NULL, 0), 0);
    assert_int_equal(fn(0x12345678u, "", 0), 0x12345678u); /* nothing to add */
    /* RFC 3720 (iSCSI) B.4 */
    memset(buf, 0, sizeof buf);
    assert_int_equal(fn(0, buf, sizeof buf), 0x8A9136AAu);
    memset(buf, 0xFF, sizeof buf);
    assert_int_equal(fn(0, buf, sizeof buf), 0x62A8AB43u);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(fn(0, buf, sizeof buf), 0x46DD794Eu);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    assert_int_equal(fn(0, buf, sizeof buf), 0x113FDB5Cu);
}

static void test_vectors_dispatched(void **state)
{
    (void)state;
    check_vectors(hop__crc32c);
}

static void test_vectors_table(void **state)
{
    (void)state;
    check_vectors(hop__crc32c_sw);
}

static void test_vectors_reference(void **state)
{
    (void)state;
    check_vectors(crc32c_reference); /* the yardstick itself is right */
}

/* Random lengths (crossing every multiple of 8, and the three-block sizes
 * of the hardware path: 3 x 256 and 3 x 8192 bytes) at every alignment,
 * with a random starting crc: both paths equal the reference. */
static void test_paths_agree_on_random_buffers(void **state)
{
    (void)state;
    enum { MAX = 100000 + 16 };
    static unsigned char buf[MAX];
    tu_rng rng = {42};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)tu_rand(&rng);
    for (int round = 0; round < 3000; round++) {
        size_t align = (size_t)tu_range(&rng, 0, 15);
        size_t len = round < 64  ? (size_t)round
                     : round % 4 ? (size_t)tu_range(&rng, 0, 4096)
                                 : (size_t)tu_range(&rng, 0, 100000);
        uint32_t seed = round % 2 ? (uint32_t)tu_rand(&rng) : 0;
        uint32_t want = crc32c_reference(seed, buf + align, len);
        uint32_t sw = hop__crc32c_sw(seed, buf + align, len);
        uint32_t hw = hop__crc32c(seed, buf + align, len);
        if (sw != want || hw != want)
            fail_msg("len %zu align %zu seed %08x: reference %08x table %08x dispatched %08x", len,
                     align, seed, want, sw, hw);
    }
}

/* Extending a crc piece by piece gives the one-shot result. */
static void test_incremental_equals_one_shot(void **state)
{
    (void)state;
    static unsigned char buf[10000];
    tu_rng rng = {7};
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)tu_rand(&rng);
    for (int round = 0; round < 500; round++) {
        size_t len = (size_t)tu_range(&rng, 0, sizeof buf);
        uint32_t whole = hop__crc32c(0, buf, len);
        uint32_t pieces = 0, pieces_sw = 0;
        size_t at = 0;
        while (at < len) {
            size_t n = (size_t)tu_range(&rng, 0, len - at < 300 ? len - at : 300);
            pieces = hop__crc32c(pieces, buf + at, n);
            pieces_sw = hop__crc32c_sw(pieces_sw, buf + at, n);
            at += n;
        }
        assert_int_equal(pieces, whole);
        assert_int_equal(pieces_sw, whole);
    }
}

/* Every single-bit change of a message changes its crc. */
static void test_single_bit_flips_change_crc(void **state)
{
    (void)state;
    unsigned char buf[64];
    tu_fill(buf, sizeof buf, 1);
    uint32_t good = hop__crc32c(0, buf, sizeof buf);
    for (size_t bit = 0; bit < sizeof buf * 8; bit++) {
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        assert_int_not_equal(hop__crc32c(0, buf, sizeof buf), good);
        buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
    }
    assert_int_equal(hop__crc32c(0, buf, sizeof buf), good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_dispatched),
        cmocka_unit_test(test_vectors_table),
        cmocka_unit_test(test_vectors_reference),
        cmocka_unit_test(test_paths_agree_on_random_buffers),
        cmocka_unit_test(test_incremental_equals_one_shot),
        cmocka_unit_test(test_single_bit_flips_change_crc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
