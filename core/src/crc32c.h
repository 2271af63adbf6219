/* crc32c.h - CRC-32C (Castagnoli), the checksum of queue file records. */
#ifndef HOP_CRC32C_H
#define HOP_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend crc (0 to start) over buf[0..len). hop__crc32c(0, "123456789", 9)
 * is 0xE3069283. Uses the SSE4.2 instruction where the CPU has it. */
uint32_t hop__crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table version, exposed so tests can compare both paths. */
uint32_t hop__crc32c_sw(uint32_t crc, const void *buf, size_t len);

#endif
