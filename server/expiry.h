/* expiry.h - messages that are handed out no later than their limit.
 *
 * A message's limit is the smaller of its own TTL (?ttl=S or Hopper-TTL: S
 * on its POST, stored in its envelope, envelope.h) and the server's
 * --max-age (0: none), both counted from when hopper accepted it
 * (received_at, the wall clock). A message older than its limit is never
 * handed out: whoever takes messages from a channel (a GET, plain, batch,
 * leased or waiting, and the forwarder) takes them through this file,
 * which drops an expired one where it finds it and takes the next, so a
 * GET answers with the first unexpired message, 204 only when none is
 * left, and a waiting GET waits on.
 *
 * Dropped means consumed: hop_free(), so its bytes leave the channel's
 * memory and the server's budget at once, and a queue file's share of it
 * goes the way of any consumed record (the file is removed once all of it
 * is consumed). Each drop is counted per channel (expired_total in
 * /status, hopper_messages_expired_total in /metrics) and logged at most
 * once a minute per channel, the rest at the stop.
 *
 * What expires and what does not:
 *   - --max-age applies to every message of every channel, NAME.dead
 *     included, and to those stored before the flag was given;
 *   - a TTL is the message's: it moves with it to NAME.dead;
 *   - a message stored by hopper before accept times were kept (envelope
 *     versions 1 and 2: received_at unknown) never expires;
 *   - a message is checked when it is taken, and before each forwarding
 *     attempt; one already handed out (in a response being sent, under a
 *     lease) is not taken back: it expires only if it comes back;
 *   - a message nobody takes stays where it is, expired or not, until a
 *     receiver passes it.
 * The age is now - received_at, counted as 0 when the clock was set back
 * below received_at (envelope.h says why a TTL and not an absolute time). */
#ifndef HOPPER_SERVER_EXPIRY_H
#define HOPPER_SERVER_EXPIRY_H

#include "hopper/hopper.h"
#include "registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The request header and query argument of a POST that set its TTL. */
#define EXPIRY_TTL_HEADER "Hopper-TTL"
#define EXPIRY_TTL_ARGUMENT "ttl"
/* The longest TTL and --max-age, in seconds: ten years of 365 days, far
 * beyond any sensible buffer, and far from overflowing milliseconds. */
#define EXPIRY_MAX_SECONDS 315360000
#define EXPIRY_MAX_TEXT "315360000"
/* Drops of one channel are logged at most this often. */
#define EXPIRY_LOG_INTERVAL_MS 60000

/* Set --max-age (0: none), before anything takes messages. */
void expiry_open(uint64_t max_age_ms);

/* Log the drops not logged yet, one line per channel that has some. Call
 * once nothing takes messages any more, before the registry closes. */
void expiry_close(void);

/* True if the envelope msg[0..len) is older than its limit at now_ms (ms
 * since the epoch). False for one whose accept time is unknown, or whose
 * envelope is too damaged to say (its receiver finds that out). */
bool expiry_passed(const void *msg, size_t len, uint64_t now_ms);

/* If msg (len bytes, just taken from e's channel, the caller's) has
 * expired: drop it (hop_free(): consumed), count and log it, and return
 * true: msg is gone. Else false: msg is still the caller's. */
bool expiry_drop_if_expired(registry_entry *e, void *msg, size_t len);

/* hop_recv(e->ch, 0, ...), dropping expired messages on the way. */
hop_err expiry_recv(registry_entry *e, void **msg, size_t *len);
/* Up to max messages of e's channel that have not expired, taken now,
 * in order, as expiry_recv() called until it fails or max are taken, but
 * through hop_recv_batch(). OUT: msgs[0..*n), lens alike. HOP_OK with *n
 * >= 1, else what hop_recv_batch() said (*n 0). */
hop_err expiry_recv_batch(registry_entry *e, void **msgs, size_t *lens, size_t max, size_t *n);

/* hop_recv_or_arm(e->ch, w, ...), dropping expired messages on the way:
 * HOP_OK with an unexpired message, or HOP_TIMEOUT with w armed. A
 * message the armed waiter is called with later is not checked: its
 * callback calls expiry_drop_if_expired(). */
hop_err expiry_recv_or_arm(registry_entry *e, hop_waiter *w, void **msg, size_t *len);

#endif
