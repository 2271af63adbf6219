/* graveyard.h - the directories of deleted channels (graveyard.c). A
 * DELETE moves a channel's directory aside under a name no channel can
 * have ("hopper+deleted-NAME-<16 hex digits>"), synced: that rename is
 * the moment the channel is gone, also across a crash. The directory is
 * removed when the last request using the channel is done, or at the next
 * start if the server stopped first. */
#ifndef HOPPER_SERVER_GRAVEYARD_H
#define HOPPER_SERVER_GRAVEYARD_H

#include <stdbool.h>

#define GRAVEYARD_PREFIX "hopper+deleted-"

/* Move data_dir/name aside and sync data_dir. Returns the new name (new,
 * the caller frees it), or NULL (errno set; ENOENT: there is no such
 * directory) with nothing moved. */
char *graveyard_bury(const char *data_dir, const char *name);

/* Remove data_dir/gone and the files in it (a channel directory holds
 * files only); failures are logged and leave what could not go. */
void graveyard_remove(const char *data_dir, const char *gone);

/* Whether a data directory entry called name is one of these. */
bool graveyard_holds(const char *name);

#endif
