/* recv.h - receiving from a channel (recv.c): what the senders and the
 * close need of it. hop_recv(), the waiters and hop_requeue() are in
 * hopper.h. */
#ifndef HOP_RECV_H
#define HOP_RECV_H

#include "channel_state.h"

/* count messages became available: wake blocked receivers. Returns true if
 * armed waiters need serving: hop__recv_dispatch() once every lock is
 * dropped. ch->lock held. Inline: every send to memory calls it. */
static inline bool hop__recv_announce(hop_channel *ch, size_t count)
{
    if (ch->blocked) {
        if (count == 1)
            pthread_cond_signal(&ch->readable);
        else
            pthread_cond_broadcast(&ch->readable);
    }
    return ch->waiters_head != NULL;
}

/* Hand available messages to armed waiters, one callback at a time.
 * Without locks. */
void hop__recv_dispatch(hop_channel *ch);

/* Records of ch were published by its sync (n of them): wake receivers and
 * serve armed waiters, as a send to memory does. The group commit's
 * hop__published_fn. Without locks. */
void hop__recv_published(hop_channel *ch, size_t n);

/* Put a copy of data[0..len) back at the head of ch, behind the messages
 * given back before it, as hop_requeue() does: a delayed give-back now
 * due (schedule.c). HOP_CLOSED or HOP_NOMEM: nothing changed. Without
 * locks. */
hop_err hop__recv_return(hop_channel *ch, const void *data, size_t len);
/* If data, a message of ch (hop__msg_of(data) not NULL), was out with a
 * receiver when ch was last purged, free it (its hold ends, its cut-off
 * flight goes) and return true: a give-back of it drops it. Else false,
 * nothing changed. Without locks. */
bool hop__recv_drop_purged(hop_channel *ch, void *data);
/* Mark every message handed out so far as out at a purge: given back
 * later, it is dropped. ch->lock held. */
static inline void hop__recv_mark_purge(hop_channel *ch)
{
    ch->purged_take = ch->take_counter;
    ch->purged = true;
}
/* Close ch to every call (sends too): blocked receivers return HOP_CLOSED,
 * receive calls still inside are waited for, and the armed waiters are
 * disarmed and called with HOP_CLOSED (without locks). Without locks. */
void hop__recv_close(hop_channel *ch);

#endif
