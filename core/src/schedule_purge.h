/* schedule_purge.h - dropping every delayed message of a channel, for
 * hop_purge() (schedule_purge.c). */
#ifndef HOP_SCHEDULE_PURGE_H
#define HOP_SCHEDULE_PURGE_H

#include "channel_state.h"

/* Remove every delay file of ch and empty its schedule's index, under the
 * schedule's lock, once no hand-on is in progress (what one was handing
 * on is in the channel by then). OUT: *dropped, the records the removed
 * files held. HOP_IO (errno set, logged and counted) if a file could not
 * be removed: those removed stay removed, the rest stay in the index,
 * counted. No schedule (memory only): HOP_OK, nothing dropped. Without
 * the channel's locks (the schedule's lock comes first). */
hop_err hop__schedule_purge(hop_channel *ch, uint64_t *dropped);

#endif
