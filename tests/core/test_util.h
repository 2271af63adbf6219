/* test_util.h - helpers shared by the core tests: temp dirs, queue file
 * listings, deterministic payloads, a captured log and a seeded generator.
 * Nothing here calls cmocka, so the helpers are safe in any thread. */
#ifndef HOP_TEST_UTIL_H
#define HOP_TEST_UTIL_H

#include "hopper/hopper.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The cmocka header needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

/* A fresh directory under $TMPDIR (or /tmp). OUT: path. Aborts on failure. */
void tu_tmpdir(char path[PATH_MAX]);
/* Remove path and everything below it; errors are ignored. */
void tu_rmtree(const char *path);
/* path + "/" + name into out. */
void tu_join(char out[PATH_MAX], const char *path, const char *name);

/* The queue files of directory dir, ascending. OUT: seqs[0..return) (up to
 * max), sizes (may be NULL) their byte sizes. -1 if dir cannot be read. */
int tu_list_qfiles(const char *dir, uint64_t *seqs, uint64_t *sizes, int max);
/* Queue files (<20 digits>.hq) in dir. -1 if dir cannot be read. */
int tu_count_qfiles(const char *dir);
/* Entries of dir other than "." and "..". -1 if dir cannot be read. */
int tu_count_entries(const char *dir);
/* Bytes of the regular files directly in dir (their st_size), what the
 * disk side of a budget counts for a channel directory; 0 if dir cannot be
 * read. */
uint64_t tu_dir_bytes(const char *dir);
/* True if path exists. */
bool tu_exists(const char *path);
/* Write len bytes of data to path (created or truncated). */
void tu_write_file(const char *path, const void *data, size_t len);
/* XOR mask into the byte at offset of path. */
void tu_flip_byte(const char *path, uint64_t offset, unsigned char mask);

/* A payload fully determined by (key, len), so a receiver can check every
 * byte of a message it never saw sent. */
void tu_fill(void *buf, size_t len, uint64_t key);
bool tu_check(const void *buf, size_t len, uint64_t key);
/* Payload of message id: its first 8 bytes hold id (little-endian) when
 * len >= 8, the rest is tu_fill(key id). tu_id_of() returns the id stored in
 * a message, or UINT64_MAX if it is not well formed. */
void tu_fill_id(void *buf, size_t len, uint64_t id);
uint64_t tu_id_of(const void *buf, size_t len);

/* splitmix64: a small, seedable generator. */
typedef struct tu_rng {
    uint64_t s;
} tu_rng;
uint64_t tu_rand(tu_rng *r);
/* Uniform in [lo, hi]. */
uint64_t tu_range(tu_rng *r, uint64_t lo, uint64_t hi);

/* Milliseconds on the monotonic clock. */
int64_t tu_now_ms(void);
void tu_sleep_ms(int ms);

/* The library's log, captured instead of printed to stderr.
 * tu_log_capture() installs the capture and forgets earlier lines; with
 * HOPPER_TEST_LOG set in the environment each line is also printed. */
void tu_log_capture(void);
/* True if some captured line contains needle. */
bool tu_log_contains(const char *needle);

/* Limits with everything small, for tests to adjust. */
hop_limits tu_limits(size_t memory_bytes, size_t file_bytes, size_t max_disk_files,
                     size_t max_message_bytes);

/* Open the channel "ch" of d with l; fails the test (cmocka: main thread
 * only) if it cannot. */
struct tu_dir;
hop_channel *tu_open(const struct tu_dir *d, hop_limits l);
/* The stats of ch, every field written by the library (the rest would show
 * as 0xA5 bytes). */
hop_stats tu_stats(hop_channel *ch);

/* Bytes a record of len payload bytes takes in a queue file. */
#define TU_RECORD_SIZE(len) (16 + (size_t)(len))
#define TU_FILE_HEADER 16

/* A test's own directory: data dir and the channel dir under it. */
typedef struct tu_dir {
    char data[PATH_MAX];
    char chan[PATH_MAX];
} tu_dir;
/* cmocka setup/teardown making and removing *state as a tu_dir whose
 * channel is named "ch". */
int tu_dir_setup(void **state);
int tu_dir_teardown(void **state);

#endif
