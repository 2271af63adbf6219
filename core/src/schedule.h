/* schedule.h - a channel's delayed messages (schedule.c; opened and
 * closed by schedule_open.h): they wait in delay files (delay_file.c)
 * apart from the queue files until they are due, then join the channel as
 * a send (or, given back, at its head). hop_send_at(),
 * hop_send_batch_at() and hop_requeue_at() are in hopper.h; this is what
 * the rest of the library needs. */
#ifndef HOP_SCHEDULE_H
#define HOP_SCHEDULE_H

#include "channel_state.h"

/* The scheduler's call for a schedule (arg): hand on, or split, what is
 * due by now (schedule.c; registered by schedule_open.c). */
void hop__schedule_run(void *arg, uint64_t now);
/* OUT: *messages and *bytes, what the schedule holds (0 without one);
 * *corrupt, the records it skipped as corrupt. */
void hop__schedule_stats(hop_channel *ch, size_t *messages, size_t *bytes, uint64_t *corrupt);

#endif
