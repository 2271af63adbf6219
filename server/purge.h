/* purge.h - emptying channels (purge.c):
 *   DELETE /channels/NAME/messages   every message goes: ready (memory and
 *                           queue files), delayed, and leased (their
 *                           receipts answer 410); the channel stays, and
 *                           waiting GETs keep waiting. Durable: a crash
 *                           leaves at worst the newest queue files, whole
 *                           and in order (hop_purge()). 200 {"channel",
 *                           "purged": N}.
 *   DELETE /channels/NAME   the channel and everything in it go: waiting
 *                           GETs answer 204, leases end (their receipts
 *                           answer 410), the directory is removed and
 *                           the name (and its --max-channels slot) is
 *                           free at once. 200 {"channel", "deleted": true,
 *                           "purged": N}.
 * 404 no_channel for a channel that does not exist (never created);
 * 409 forwarded for a channel --forward sends to a URL. */
#ifndef HOPPER_SERVER_PURGE_H
#define HOPPER_SERVER_PURGE_H

#include "request.h"

#include <stdint.h>

extern const request_handler delete_handler;
extern const request_handler purge_handler;

/* Server-wide counts since start, for /metrics. */
typedef struct purge_counts {
    uint64_t purges, channels_deleted, messages_purged;
} purge_counts;
void purge_read_counts(purge_counts *out);

#endif
