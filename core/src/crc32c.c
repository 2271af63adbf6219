/* crc32c.c - CRC-32C: a slice-by-8 table version everywhere and the SSE4.2
 * crc32 instruction on x86-64 CPUs that have it (chosen once, at first use).
 * Records are checksummed on every send and receive through disk, so the
 * hardware path (three interleaved streams on long buffers) keeps the
 * checksum well below the cost of the write. */
#include "crc32c.h"

#include "endian.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82F63B78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static pthread_once_t table_once = PTHREAD_ONCE_INIT;

static void table_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
}

uint32_t hop__crc32c_sw(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&table_once, table_init);
    const unsigned char *p = buf;
    crc = ~crc;
    while (len >= 8) {
        uint32_t lo = hop__le32_load(p);
        uint32_t hi = hop__le32_load(p + 4);
        lo ^= crc;
        crc = table[7][lo & 0xFF] ^ table[6][(lo >> 8) & 0xFF] ^ table[5][(lo >> 16) & 0xFF] ^
              table[4][lo >> 24] ^ table[3][hi & 0xFF] ^ table[2][(hi >> 8) & 0xFF] ^
              table[1][(hi >> 16) & 0xFF] ^ table[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return ~crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <nmmintrin.h>

/* The crc32 instruction takes three cycles but can start one per cycle, so
 * a long buffer is cut into three blocks whose CRCs run side by side and
 * are then combined. Combining uses linearity: with the register state s
 * (no pre/post inversion), crc(s, A || B) = shift(crc(s, A), |B|) ^
 * crc(0, B), where shift(x, n) is x advanced over n zero bytes, a linear
 * map of 32 bits applied with four 256-entry tables per block size. */
#define LONG_BLOCK 8192
#define SHORT_BLOCK 256
static uint32_t shift_long[4][256], shift_short[4][256];

/* x advanced over n zero bytes, on the raw register (bitwise, for setup). */
static uint32_t zeros_slow(uint32_t x, size_t n)
{
    for (size_t i = 0; i < n * 8; i++)
        x = (x & 1) ? (x >> 1) ^ POLY : x >> 1;
    return x;
}

static void shift_tables_init(uint32_t t[4][256], size_t n)
{
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++)
        basis[bit] = zeros_slow((uint32_t)1 << bit, n);
    for (int k = 0; k < 4; k++)
        for (uint32_t b = 0; b < 256; b++) {
            uint32_t v = 0;
            for (int j = 0; j < 8; j++)
                if (b & (1u << j))
                    v ^= basis[8 * k + j];
            t[k][b] = v;
        }
}

static uint32_t shift(const uint32_t t[4][256], uint32_t x)
{
    return t[0][x & 0xFF] ^ t[1][(x >> 8) & 0xFF] ^ t[2][(x >> 16) & 0xFF] ^ t[3][x >> 24];
}

/* Three blocks of n bytes at p, folded into state c. */
__attribute__((target("sse4.2"))) static uint64_t three_blocks(uint64_t c,
                                                                const unsigned char *p,
                                                                size_t n,
                                                                const uint32_t t[4][256])
{
    uint64_t c1 = 0, c2 = 0;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v0, v1, v2;
        memcpy(&v0, p + i, 8);
        memcpy(&v1, p + n + i, 8);
        memcpy(&v2, p + 2 * n + i, 8);
        c = _mm_crc32_u64(c, v0);
        c1 = _mm_crc32_u64(c1, v1);
        c2 = _mm_crc32_u64(c2, v2);
    }
    c = shift(t, (uint32_t)c) ^ (uint32_t)c1;
    return shift(t, (uint32_t)c) ^ (uint32_t)c2;
}

__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const void *buf,
                                                             size_t len)
{
    const unsigned char *p = buf;
    uint64_t c = ~crc;
    while (len >= 3 * LONG_BLOCK) {
        c = three_blocks(c, p, LONG_BLOCK, shift_long);
        p += 3 * LONG_BLOCK;
        len -= 3 * LONG_BLOCK;
    }
    while (len >= 3 * SHORT_BLOCK) {
        c = three_blocks(c, p, SHORT_BLOCK, shift_short);
        p += 3 * SHORT_BLOCK;
        len -= 3 * SHORT_BLOCK;
    }
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8); /* unaligned-safe; x86-64 is little-endian like the table */
        c = _mm_crc32_u64(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = _mm_crc32_u8(c32, *p++);
    return ~c32;
}

static uint32_t (*crc_impl)(uint32_t, const void *, size_t);
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static void impl_init(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        shift_tables_init(shift_long, LONG_BLOCK);
        shift_tables_init(shift_short, SHORT_BLOCK);
        crc_impl = crc32c_hw;
    } else {
        crc_impl = hop__crc32c_sw;
    }
}

uint32_t hop__crc32c(uint32_t crc, const void *buf, size_t len)
{
    pthread_once(&impl_once, impl_init);
    return crc_impl(crc, buf, len);
}
#else
uint32_t hop__crc32c(uint32_t crc, const void *buf, size_t len)
{
    return hop__crc32c_sw(crc, buf, len);
}
#endif
