/* move_file.h - what a move in progress (move.c) leaves in the directory of
 * the channel it moves from, and what the next open makes of it.
 *
 *   stage   HOP__MOVE_STAGE_NAME: a queue file holding the moved messages,
 *           which becomes a queue file of the other channel by one rename,
 *           the move's commit;
 *   intent  HOP__MOVE_INTENT_NAME: the records of this channel's queue
 *           files that the stage repeats, written and synced before the
 *           rename, removed once they are journalled as consumed.
 *
 * At open: an intent whose stage is still here is a move that did not
 * commit (both go, the records stay); an intent without its stage is one
 * that did (its records are journalled as consumed, then it goes). */
#ifndef HOP_MOVE_FILE_H
#define HOP_MOVE_FILE_H

#include "hopper/hopper.h"

#include <stddef.h>
#include <stdint.h>

#define HOP__MOVE_STAGE_NAME "moving.hqs"
#define HOP__MOVE_INTENT_NAME "moving.hqm"

/* A record of a queue file: file seq, offset off. */
typedef struct hop__move_pos {
    uint64_t seq, off;
} hop__move_pos;

/* Write the intent naming pos[0..n) in dirfd, and sync it and the
 * directory. HOP_IO (errno set) or HOP_NOMEM: it may be left, torn or
 * whole, for the caller to remove. */
hop_err hop__move_intent_write(int dirfd, const hop__move_pos *pos, size_t n);

/* Remove the stage and the intent from dirfd (ENOENT is fine) and sync
 * the directory. HOP_IO (errno set) if one could not go. */
hop_err hop__move_forget(int dirfd);

/* At open, before the journal is read: settle a move the last run left in
 * dirfd, as the header says. name: the channel's, for log lines. HOP_IO
 * (errno set) or HOP_NOMEM: nothing settled, the open fails. */
hop_err hop__move_recover(int dirfd, const char *name);

#endif
