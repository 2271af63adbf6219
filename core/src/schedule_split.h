/* schedule_split.h - a window of delayed messages streamed into near files
 * (schedule_split.c). */
#ifndef HOP_SCHEDULE_SPLIT_H
#define HOP_SCHEDULE_SPLIT_H

#include "schedule_index.h"

/* Stream window file id into the near files of its records' seconds, in
 * order, and remove it. HOP_OK, or an error: the rest waits (what moved is
 * marked). s->lock held throughout: no send lands in between. */
hop_err hop__schedule_split(hop__schedule *s, hop__delay_id id);

#endif
