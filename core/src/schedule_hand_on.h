/* schedule_hand_on.h - handing a near file's due slots on to the channel
 * (schedule_hand_on.c). */
#ifndef HOP_SCHEDULE_HAND_ON_H
#define HOP_SCHEDULE_HAND_ON_H

#include "schedule_index.h"

/* Hand on the records of near file id (or a version-1 slot file) whose
 * slots ended by now, slot by slot, in file order within a slot. HOP_OK:
 * all went (the file is gone when nothing is left in it); else a refusal
 * or an I/O error: the rest waits. s->lock held; dropped while records are
 * handed on. */
hop_err hop__schedule_hand_on(hop__schedule *s, hop__delay_id id, uint64_t now);

#endif
