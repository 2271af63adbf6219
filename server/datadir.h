/* datadir.h - the data directory: checks, lock, and the list of channels in
 * it.
 *
 * The rules, checked by datadir_open() in this order. Each refusal is one
 * log line that names the path and says what to do; hopper then exits 1
 * without having changed anything in the directory.
 *   1. It is created if missing (parents 0755, the directory itself 0700).
 *   2. It belongs to the user hopper runs as (geteuid()), and so does every
 *      channel directory in it: files of another user are refused, as
 *      PostgreSQL refuses a data directory it does not own, rather than
 *      half used with permissions that fail later.
 *   3. DATADIR_LOCK_NAME marks the directory as hopper's. One without it
 *      must be empty or hold nothing but channel directories (an earlier
 *      version made those) and lost+found: anything else means --data-dir
 *      points somewhere else than meant, so hopper refuses it, naming the
 *      first foreign entry, and does not create the marker either. In a
 *      directory with the marker, entries that are not channel directories
 *      are left alone, with a warning each.
 *   4. The marker is flocked for as long as hopper runs, so a second hopper
 *      on the same directory exits instead of sharing the queue files.
 *   5. A probe file of DATADIR_PROBE_BYTES is written, synced and removed,
 *      so that missing permissions, a read-only file system or a full disk
 *      stop hopper at start, not at the first message.
 *
 * A channel directory is a directory (not a symbolic link) whose name
 * satisfies hop_name_valid(). */
#ifndef HOPPER_SERVER_DATADIR_H
#define HOPPER_SERVER_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

/* The marker and lock file, and its one line of content. Bump the layout
 * when the directory's arrangement changes so that an older hopper cannot
 * read it: a hopper refuses a layout other than its own. */
#define DATADIR_LOCK_NAME "hopper.lock"
#define DATADIR_LAYOUT 1
#define DATADIR_PROBE_BYTES 4096

/* Apply the rules above to path (borrowed; it must outlive the module) and
 * take the lock. True: the lock is held until datadir_close() and the
 * channel directories are listed. False: why was logged; nothing is held. */
bool datadir_open(const char *path);

/* The channel directories datadir_open() found, sorted by name. OUT:
 * *names, borrowed until datadir_close(). Returns how many. */
size_t datadir_channels(const char *const **names);

/* True if name, though a valid channel name, is a file of the data
 * directory itself and so cannot be a channel's directory. */
bool datadir_name_reserved(const char *name);

/* Release the lock (hopper.lock stays: it marks the directory) and the list.
 * Call once the channels are closed. */
void datadir_close(void);

#endif
