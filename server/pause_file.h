/* pause_file.h - whether a channel is paused, kept on disk so that the
 * state survives a restart.
 *
 * The format: a paused channel has an empty file PAUSE_FILE_NAME in its
 * directory (<data-dir>/<channel>/.paused); a channel that is not paused
 * has none. The name starts with '.', so the core's recovery, which skips
 * dot files, never takes it for a queue file.
 *
 * Crash safety: the file is made as PAUSE_FILE_TMP_NAME, synced, renamed to
 * its name, and the directory synced; it is removed by an unlink and a sync
 * of the directory. A crash at any point leaves the channel either paused
 * or not, never a state that cannot be read (a leftover temporary file
 * means nothing and is overwritten by the next pause). */
#ifndef HOPPER_SERVER_PAUSE_FILE_H
#define HOPPER_SERVER_PAUSE_FILE_H

#include <stdbool.h>

#define PAUSE_FILE_NAME ".paused"
#define PAUSE_FILE_TMP_NAME ".paused.tmp"

/* True if channel name under data_dir (both borrowed) is marked paused. A
 * directory that cannot be read counts as not paused. */
bool pause_file_read(const char *data_dir, const char *name);

/* Mark channel name under data_dir paused (paused true) or not, durably.
 * Marking it as it already is changes nothing and succeeds. 0, or an errno
 * value: the state on disk is then as it was. */
int pause_file_write(const char *data_dir, const char *name, bool paused);

#endif
