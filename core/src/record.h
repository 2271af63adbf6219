/* record.h - the on-disk format of queue files: file header and record
 * framing. The format itself is described at the top of record.c. */
#ifndef HOP_RECORD_H
#define HOP_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOP__FILE_HEADER_SIZE 16
#define HOP__RECORD_HEADER_SIZE 16
#define HOP__FORMAT_VERSION 2
/* The first 4 bytes of every record, little-endian ("HOPR" in file order):
 * the recovery finds record starts by it (queue_file.c). */
#define HOP__RECORD_MAGIC 0x52504F48u

/* Write the header of queue file seq into out. */
void hop__file_header_encode(unsigned char out[HOP__FILE_HEADER_SIZE], uint64_t seq);
/* True if in is a valid header of this format version; OUT: *seq. */
bool hop__file_header_decode(const unsigned char in[HOP__FILE_HEADER_SIZE], uint64_t *seq);
/* True if in is the header of a queue file of another format version: a
 * foreign file this version must leave alone. */
bool hop__file_header_other_version(const unsigned char in[HOP__FILE_HEADER_SIZE]);

/* Write the header of a record holding payload[0..len) into out; len must be
 * below 2^32. */
void hop__record_header_encode(unsigned char out[HOP__RECORD_HEADER_SIZE], const void *payload,
                               uint32_t len);

/* Read a record header. False if its magic or header checksum is wrong: no
 * record starts here, or its length cannot be trusted; outputs untouched.
 * OUT: *len, the payload length, and *crc, the payload checksum to verify. */
bool hop__record_header_decode(const unsigned char in[HOP__RECORD_HEADER_SIZE], uint32_t *len,
                               uint32_t *crc);

/* True if payload[0..len) matches the payload crc of its header. */
bool hop__record_verify(uint32_t crc, const void *payload, uint32_t len);

#endif
