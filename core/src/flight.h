/* flight.h - what a channel tracks of the messages receivers have: the
 * records read from queue files and not yet consumed (flights), and the
 * messages held against memory_bytes (holds). hop_hold() and hop_free()
 * are here. The structs are in channel_state.h. */
#ifndef HOP_FLIGHT_H
#define HOP_FLIGHT_H

#include "channel_state.h"

/* The record of file f at off was read into m and is handed out: fl (new,
 * taken) tracks it until it is consumed. ch->lock held. */
void hop__flight_start(hop_channel *ch, hop__flight *fl, hop__qfile *f, uint64_t off, hop__msg *m);

/* fl's message was requeued: it waits in memory, no longer in flight.
 * ch->lock held. */
static inline void hop__flight_requeued(hop_channel *ch, hop__flight *fl)
{
    fl->state = HOP__FLIGHT_REQUEUED;
    ch->in_flight--;
}

/* fl's message, requeued earlier, is taken again: in flight again.
 * ch->lock held; on every receive from memory, so inline. */
static inline void hop__flight_taken_again(hop_channel *ch, hop__flight *fl)
{
    fl->state = HOP__FLIGHT_OUT;
    ch->in_flight++;
}

/* fl's message was requeued to a closing channel and is freed: the close
 * writes its record again. ch->lock held. */
void hop__flight_drop(hop_channel *ch, hop__flight *fl);

/* The hold of m, if any, ends (m is freed or requeued): it no longer counts
 * against memory_bytes. ch->lock held. */
void hop__hold_end(hop_channel *ch, hop__msg *m);

/* Forget the flights, as a close or a purge does: the nodes of messages
 * receivers still have are cut off from ch (their ch is NULL: hop_free()
 * only frees the node, and touches neither the channel nor the file,
 * which may be gone); the others are freed, so the messages in memory
 * that point to them (requeued ones) must be freed next. in_flight is 0
 * after. Returns how many were cut off. ch->lock held (a purge: with
 * read_lock too, which consuming takes first), or single-threaded. */
size_t hop__flight_cut_off(hop_channel *ch);

/* At close, single-threaded: forget the flights and holds. The nodes of
 * messages receivers still have stay, cut off from ch, for hop_free() to
 * free; the others are freed. */
void hop__flight_release_all(hop_channel *ch);

#endif
