/* dedup_log.h - the key log: the file in a channel's directory that keeps
 * the keys of its accepted POSTs (dedup.h) across restarts.
 *
 * File <data-dir>/<channel>/DEDUP_LOG_NAME. The name begins with a dot:
 * the core leaves such files alone in a channel's directory, without the
 * warning it gives other files it does not know.
 *
 * Format (all integers little-endian):
 *   header, 8 bytes:  "HPDK", the version (DEDUP_LOG_VERSION), 3 zero bytes
 *   record, 14 + len bytes, one per accepted key, in the order accepted:
 *     0  u32  checksum: the low 32 bits of FNV-1a 64 (hash.h) of bytes 4..
 *     4  u16  len, the key's length, 1 .. DEDUP_MAX_KEY
 *     6  u64  when the POST was accepted, ms since the Unix epoch
 *     14      the key, len bytes
 * A record is valid if it is whole, its len is in range and its checksum
 * matches. Reading stops at the first record that is not valid: a torn
 * tail (a write cut short by a crash) or damage; what follows is dropped,
 * logged and counted. A header of another version is dropped the same way
 * (its keys are lost, never misread). Bump the version when the record
 * changes.
 *
 * The log only grows by appends; it is rewritten with only the live keys
 * (to a temporary file, synced, then renamed over it) when the store
 * opens and when it holds many more records than live keys. */
#ifndef HOPPER_SERVER_DEDUP_LOG_H
#define HOPPER_SERVER_DEDUP_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DEDUP_LOG_NAME ".dedup-keys"
#define DEDUP_LOG_TMP_NAME ".dedup-keys.tmp"
#define DEDUP_LOG_VERSION 1
#define DEDUP_LOG_HEADER_BYTES 8
#define DEDUP_LOG_RECORD_HEADER 14
/* The longest key a record holds. */
#define DEDUP_MAX_KEY 256

/* The bytes a record of a key of len bytes takes. */
#define DEDUP_LOG_RECORD_BYTES(len) (DEDUP_LOG_RECORD_HEADER + (uint64_t)(len))

/* One channel's key log; fd is -1 until the first append. */
typedef struct dedup_log {
    char *dir;      /* the channel's directory; new */
    int fd;         /* open for appending, or -1 */
    uint64_t bytes; /* its size */
    uint64_t records;
    bool unsynced; /* written since the last sync */
} dedup_log;

/* What dedup_log_read() found. */
typedef struct dedup_log_found {
    uint64_t records;       /* valid ones, all handed to the callback */
    uint64_t valid_bytes;   /* the header and the valid records */
    uint64_t dropped_bytes; /* after the last valid record (or the whole file) */
    bool exists;
} dedup_log_found;

/* Called by dedup_log_read() for each valid record, in file order: key
 * (borrowed for the call) of len bytes accepted at accepted_ms. False stops
 * the reading (out of memory). */
typedef bool (*dedup_log_each)(void *arg, const char *key, size_t len, uint64_t accepted_ms);

/* Prepare log for the channel directory dir (copied). False if out of
 * memory. Nothing is opened. */
bool dedup_log_init(dedup_log *log, const char *dir);

/* Read the log of dir, if there is one, handing each valid record to each.
 * Logs (as channel name) what was dropped. OUT: *found. 0, or an errno
 * value (reading failed; the records handed over so far stand). */
int dedup_log_read(const dedup_log *log, const char *name, dedup_log_each each, void *arg,
                   dedup_log_found *found);

/* Append the record of key[0..len) accepted at accepted_ms, creating the
 * file (with its header) if needed; with sync, fdatasync it before
 * returning. 0, or an errno value (the log may then end in a torn record,
 * which reading drops). */
int dedup_log_append(dedup_log *log, const char *key, size_t len, uint64_t accepted_ms, bool sync);

/* A rewrite in progress: records go to the temporary file. */
typedef struct dedup_log_rewrite {
    FILE *out;
    uint64_t bytes, records;
    int error; /* the first errno met, or 0 */
} dedup_log_rewrite;

/* Begin a rewrite of log: DEDUP_LOG_TMP_NAME with a header. 0, or an errno. */
int dedup_log_rewrite_begin(const dedup_log *log, dedup_log_rewrite *rw);
/* Add a record to the rewrite (an error is kept for the end). */
void dedup_log_rewrite_add(dedup_log_rewrite *rw, const char *key, size_t len,
                           uint64_t accepted_ms);
/* Sync the rewrite and rename it over the log, which it then is (an empty
 * one, no records, is removed instead). 0, or an errno value: the log is
 * then as it was and the temporary file gone. */
int dedup_log_rewrite_end(dedup_log *log, dedup_log_rewrite *rw);

/* Sync what was appended since the last sync. 0, or an errno value. */
int dedup_log_sync(dedup_log *log);

/* Close the file (synced if written since the last sync) and free log. */
void dedup_log_close(dedup_log *log);

/* Close log and remove its file. 0, or an errno value. */
int dedup_log_remove(dedup_log *log);

#endif
