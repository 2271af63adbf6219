/* record.c - queue file format, version 2.
 *
 * A queue file is <data_dir>/<channel>/<seq>.hq, where <seq> is the file's
 * sequence number as 20 decimal digits, so names sort in the order the files
 * are read. A channel appends to one file at a time; once the file holds
 * file_bytes or more it is sealed and the next record starts a new file. The
 * reader consumes files in sequence order and deletes each one once every
 * record in it is consumed. A new channel numbers its first file 2^62, so
 * that a close can write the messages it holds in memory to a file numbered
 * below the oldest one, to be read first (see persist.c).
 *
 * File header, 16 bytes, all integers little-endian:
 *   0  4  magic "HOPQ"
 *   4  4  format version (2)
 *   8  8  seq, the same number as in the file name
 *
 * Then records, back to back, each:
 *   0  4  magic 0x52504F48 ("HOPR" in file order), marks a record start
 *   4  4  len, payload length in bytes
 *   8  4  payload crc, CRC-32C of the payload
 *  12  4  header crc, CRC-32C of bytes 0..11 of this header
 *  16 len payload
 *
 * A record is valid when its magic and header crc match, 16 + len bytes are
 * present, and the payload crc matches. The header has a checksum of its
 * own so that a length is trusted only when it is intact: a record whose
 * payload is damaged is skipped by its (verified) length and never handed
 * out, and the reader never jumps by a damaged length into the middle of
 * other data, where a payload that happens to hold record-shaped bytes
 * could pass for a record. A header that fails its checks means the rest of
 * the file cannot be framed, and the reader abandons that rest.
 *
 * The writer writes header and payload in one call and, if that call fails
 * or writes short, truncates the file back to where the record began, so a
 * failed send leaves no partial record behind. A reader never reads past
 * the bytes the writer has published, so it cannot see a record being
 * written.
 *
 * Recovery (when a channel opens on files of an earlier run) frames each
 * file from its start. A header that fails its checks is either a torn
 * tail (no valid record follows: the file is cut there) or damage in the
 * middle: the recovery looks for the next offset where a record with valid
 * magic, header crc, length and payload crc begins, and skips the bytes
 * between (logged and counted). Which records were consumed is not in these
 * files but in the channel's journal (journal.c).
 *
 * Bump the version when any of this changes; a reader meets files of an
 * unknown version as foreign and leaves them alone. Version 1 files (hopper
 * 0.1.0, which deleted its files at every open) are such foreign files.
 */
#include "record.h"

#include "crc32c.h"
#include "endian.h"

#include <string.h>

#define FILE_MAGIC "HOPQ"

void hop__file_header_encode(unsigned char out[HOP__FILE_HEADER_SIZE], uint64_t seq)
{
    memcpy(out, FILE_MAGIC, 4);
    hop__le32_store(out + 4, HOP__FORMAT_VERSION);
    hop__le64_store(out + 8, seq);
}

bool hop__file_header_decode(const unsigned char in[HOP__FILE_HEADER_SIZE], uint64_t *seq)
{
    if (memcmp(in, FILE_MAGIC, 4) != 0 || hop__le32_load(in + 4) != HOP__FORMAT_VERSION)
        return false;
    *seq = hop__le64_load(in + 8);
    return true;
}

bool hop__file_header_other_version(const unsigned char in[HOP__FILE_HEADER_SIZE])
{
    return memcmp(in, FILE_MAGIC, 4) == 0 && hop__le32_load(in + 4) != HOP__FORMAT_VERSION;
}

void hop__record_header_encode(unsigned char out[HOP__RECORD_HEADER_SIZE], const void *payload,
                               uint32_t len)
{
    hop__le32_store(out, HOP__RECORD_MAGIC);
    hop__le32_store(out + 4, len);
    hop__le32_store(out + 8, hop__crc32c(0, payload, len));
    hop__le32_store(out + 12, hop__crc32c(0, out, 12));
}

bool hop__record_header_decode(const unsigned char in[HOP__RECORD_HEADER_SIZE], uint32_t *len,
                               uint32_t *crc)
{
    if (hop__le32_load(in) != HOP__RECORD_MAGIC ||
        hop__le32_load(in + 12) != hop__crc32c(0, in, 12))
        return false;
    *len = hop__le32_load(in + 4);
    *crc = hop__le32_load(in + 8);
    return true;
}

bool hop__record_verify(uint32_t crc, const void *payload, uint32_t len)
{
    return hop__crc32c(0, payload, len) == crc;
}
