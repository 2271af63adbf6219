/* reserve.h - room on disk set aside for a clean stop.
 *
 * A stop writes what memory holds to queue files. If the file system filled
 * up meanwhile (hopper's own files, or another process), that write would
 * fail and lose messages that were answered 202. So at start hopper
 * preallocates a file of options_reserve_bytes() in the data directory,
 * and at the stop removes it just before the channels write their memory:
 * whatever filled the disk, that much room is there. The disk budget counts
 * it (the channels' files get --disk-limit minus the reserve).
 *
 * A reserve file left by a crash is reused. */
#ifndef HOPPER_SERVER_RESERVE_H
#define HOPPER_SERVER_RESERVE_H

#include <stdbool.h>
#include <stdint.h>

/* The reserve file's name: '+' is in no channel name. */
#define RESERVE_NAME "hopper+reserve"

/* Preallocate bytes (0: no reserve, and a stale file is removed) in
 * data_dir. False (logged, naming the bytes needed and the bytes free) if
 * the file system cannot give them: hopper cannot start. */
bool reserve_open(const char *data_dir, uint64_t bytes);

/* The bytes set aside now: those of reserve_open() until reserve_release(),
 * then 0. */
uint64_t reserve_bytes(void);

/* Bytes free for hopper on the data directory's file system now, or
 * UINT64_MAX if unknown (before reserve_open(), after reserve_release(),
 * or statvfs failing). */
uint64_t reserve_fs_free(void);

/* Free the room for the stop's writes. Logged if the file cannot be
 * removed (the stop then goes on: the room may be there anyway). */
void reserve_release(void);

#endif
