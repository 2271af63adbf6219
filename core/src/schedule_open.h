/* schedule_open.h - a channel's schedule of delayed messages made from the
 * delay files in its directory at open, and freed at close
 * (schedule_open.c). */
#ifndef HOP_SCHEDULE_OPEN_H
#define HOP_SCHEDULE_OPEN_H

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
#endif
