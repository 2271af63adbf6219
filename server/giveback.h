/* giveback.h - the one home of "the message goes back to its channel": what
 * becomes of a message taken from a channel and not consumed.
 *
 * Which function, by what happened to the message:
 *   giveback_unsent      it never went out to a client: its response could
 *                        not be made, or its client had gone before it was
 *                        answered. Back to the head of its channel as it
 *                        was; its count of hand-outs does not change.
 *   giveback_unconsumed  it went out and came back unconsumed: its response
 *                        did not complete, or its lease was released or
 *                        expired. Its count of hand-outs (the envelope's
 *                        returns) grows by one; past --max-deliveries it
 *                        moves to NAME.dead, else back to the head.
 *   giveback_released   the same, for a lease released with ?delay=: back to
 *                        the head once the delay has passed (hop_requeue_at).
 *   giveback_expired    the same, for a lease that ran out: back after the
 *                        redelivery backoff (--retry-delay) for its count.
 *   giveback_dead        a forwarded message its receiver refused for good
 *                        or that ran out of attempts: to NAME.dead at once,
 *                        with a Hopper-Dead-Reason header saying why.
 *   giveback_at_stop     a leased message when the server stops: counted
 *                        as unconsumed, but always back to its own channel,
 *                        whose stop writes it to disk; a dead-letter move
 *                        waits for the hand-out after the next start.
 *
 * Every function takes the message: msg and len exactly as received from
 * e's channel. A message the core refuses to take back is logged (the core
 * frees it). None holds a lock of the server while calling the core; from
 * a waiter callback they do not recurse (the core's delivery loop hands a
 * message given back to the next waiter itself). */
#ifndef HOPPER_SERVER_GIVEBACK_H
#define HOPPER_SERVER_GIVEBACK_H

#include "registry.h"

#include <stdbool.h>
#include <stddef.h>

/* The suffix of a channel's dead-letter channel: NAME.dead. */
#define GIVEBACK_DEAD_SUFFIX ".dead"

void giveback_unsent(registry_entry *e, void *msg, size_t len);

/* max_deliveries: hand-outs after which the message goes to NAME.dead when
 * it comes back once more; 0 = no limit. */
void giveback_unconsumed(registry_entry *e, void *msg, size_t len, size_t max_deliveries);

void giveback_released(registry_entry *e, void *msg, size_t len, size_t max_deliveries,
                       uint64_t delay_ms);
/* The redelivery backoff of --retry-delay and --retry-delay-max. */
typedef struct giveback_backoff {
    uint64_t first_ms; /* after the first hand-out; 0: no backoff */
    uint64_t max_ms;
} giveback_backoff;
/* min(first_ms x 2^(returns - 1), max_ms): the wait of a message handed out
 * returns times (0 counts as 1). */
uint64_t giveback_backoff_ms(const giveback_backoff *b, uint32_t returns);
void giveback_expired(registry_entry *e, void *msg, size_t len, size_t max_deliveries,
                      const giveback_backoff *b);
void giveback_at_stop(registry_entry *e, void *msg, size_t len);

#define GIVEBACK_DEAD_REASON_HEADER "Hopper-Dead-Reason"

/* reason: the header's value (a status or error, the attempts, when). True
 * if msg went to NAME.dead (consumed from e's channel); false if it could
 * not (logged): it stays the caller's. */
bool giveback_dead(registry_entry *e, void *msg, size_t len, const char *reason);

#endif
