/* recover.h - opening a channel's directory and recovering what it holds
 * (recover.c). */
#ifndef HOP_RECOVER_H
#define HOP_RECOVER_H

#include "channel_state.h"

/* At open, single-threaded: create <data_dir>/<name> if missing (data_dir
 * too, one level), open and flock it (EWOULDBLOCK: open elsewhere), and
 * recover the queue files and journal in it into ch. HOP_IO (errno set) or
 * HOP_NOMEM: ch holds what was recovered so far, for the caller to abandon;
 * nothing on disk changed but torn tails cut off and files consumed or cut
 * short removed. */
hop_err hop__recover_open(hop_channel *ch, const char *data_dir);

#endif
