/* purge.h - emptying channels (purge.c):
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

extern const request_handler delete_handler;

#endif
