/* schedule.h - a channel's delayed messages (schedule.c): they wait in
 * delay files (delay_file.c) apart from the queue files until they are
 * due, then join the channel as a send (or, given back, at its head).
 * hop_send_at(), hop_send_batch_at() and hop_requeue_at() are in
 * hopper.h; this is what channel.c needs. */
#ifndef HOP_SCHEDULE_H
#define HOP_SCHEDULE_H

#include "channel_state.h"

/* Give ch (its directory open and recovered) its schedule: the delay files
 * found in the directory are counted (a torn tail cut off), fully handed
 * on ones removed; the due ones are handed on soon after. Memory-only
 * channels get none. HOP_IO (errno set) or HOP_NOMEM: ch->schedule stays
 * NULL. */
hop_err hop__schedule_open(hop_channel *ch);
/* Stop handing on ch's delayed messages (a hand-on in progress ends
 * first) and free the schedule; the files stay for the next open, and
 * what they counted on the budget's disk side is given back. Before the
 * channel closes to sends. */
void hop__schedule_close(hop_channel *ch);
/* OUT: *messages and *bytes, what the schedule holds (0 without one);
 * *corrupt, the records it skipped as corrupt. */
void hop__schedule_stats(hop_channel *ch, size_t *messages, size_t *bytes, uint64_t *corrupt);

#endif
