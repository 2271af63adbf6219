/* endian.h - little-endian loads and stores of the integers in the disk
 * formats (record.c, journal.c) and the checksum (crc32c.c): explicit bytes,
 * never raw structs, so the files read the same on any host. */
#ifndef HOP_ENDIAN_H
#define HOP_ENDIAN_H

#include <stdint.h>

static inline void hop__le32_store(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

static inline void hop__le64_store(unsigned char *p, uint64_t v)
{
    hop__le32_store(p, (uint32_t)v);
    hop__le32_store(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t hop__le32_load(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t hop__le64_load(const unsigned char *p)
{
    return (uint64_t)hop__le32_load(p) | (uint64_t)hop__le32_load(p + 4) << 32;
}

#endif
