/* lease.h - messages handed out under a lease (GET ?lease=L).
 *
 * A leased message stays the server's: it is held (hop_hold(), so it still
 * counts against its channel's memory) in a table under an opaque receipt
 * until one of these ends the lease:
 *   - acknowledged (DELETE .../messages/RECEIPT): consumed, hop_free();
 *   - released (.../release), or the deadline passes (on the server's
 *     timer, timer.h): it comes back unconsumed (giveback.h);
 *   - the server stops: every leased message is given back
 *     (giveback_at_stop()), so that the stop writes it to disk and the next
 *     start delivers it again.
 * A receipt that ended is remembered for a while (LEASE_ENDED_MEMORY of
 * them) so that a late acknowledgement is told 410, not 404.
 *
 * Once a lease's deadline has passed it has ended, even before the timer's
 * callback has given the message back: acknowledging, releasing or
 * extending it is then API_LEASE_ENDED.
 *
 * Locks: the table's lock, then the timer's (timer.h); the table's lock is
 * never held while calling the core. */
#ifndef HOPPER_SERVER_LEASE_H
#define HOPPER_SERVER_LEASE_H

#include "errors.h"
#include "giveback.h"
#include "registry.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A receipt is 32 hexadecimal digits. */
#define LEASE_RECEIPT_LEN 32
#define LEASE_ENDED_MEMORY 4096

/* Prepare the table. max_deliveries: a message handed out that many times
 * goes to <channel>.dead when it comes back once more; 0 = no limit
 * (giveback_unconsumed()). backoff (copied): how long a message whose
 * lease ran out waits before it comes back (giveback_expired()). */
void lease_open(size_t max_deliveries, const giveback_backoff *backoff);

/* End every lease, its message given back with giveback_at_stop(). Call
 * after HTTP and the timer have stopped (timer_stop()) and before the
 * channels close. */
void lease_close(void);

/* A new receipt, unique and not guessable from others. A response names
 * it before the lease begins: the response must not need the message once
 * the table has it (an acknowledgement or the deadline may free it).
 * OUT: receipt (NUL-terminated). */
void lease_new_receipt(char receipt[LEASE_RECEIPT_LEN + 1]);

/* Hold msg (just taken from e's channel) for a lease: from now on it counts
 * against the channel's memory and the server's budget, as if it were
 * still in the channel. API_OK, or API_LEASE_LIMIT (the channel's leased
 * messages fill its memory, or the budget is used up), API_CLOSED,
 * API_NOMEM; msg is then as it was. A held message given back (requeued)
 * is no longer held. */
api_error lease_hold(registry_entry *e, void *msg);

/* Put msg (len bytes, held with lease_hold(), the caller's) under a lease
 * of ms milliseconds and receipt (from lease_new_receipt): the table takes
 * it. API_OK, or an error, and msg is still the caller's (held): API_NOMEM,
 * API_INTERNAL (the receipt is taken). */
api_error lease_grant(registry_entry *e, void *msg, size_t len, uint64_t ms, const char *receipt);

/* Take back a lease just granted, as if it never was (no return counted):
 * for a response that could not be made after all. OUT: *msg, *len, the
 * message, the caller's again. False if there is no such lease any more
 * (its deadline passed, and the message has gone back, counted). */
bool lease_revoke(registry_entry *e, const char *receipt, void **msg, size_t *len);

/* The requests on a receipt of channel e: API_OK; API_UNKNOWN_RECEIPT
 * (never granted, or for another channel); API_LEASE_ENDED (acknowledged,
 * released or expired). */
api_error lease_ack(registry_entry *e, const char *receipt);
/* release: the message comes back to the head delay_ms from now (0: at
 * once). */
api_error lease_release(registry_entry *e, const char *receipt, uint64_t delay_ms);
/* The lease ends ms milliseconds from now. */
api_error lease_extend(registry_entry *e, const char *receipt, uint64_t ms);

/* End every lease of e's channel, for a DELETE (or a purge): their
 * messages are dropped, consumed, and their receipts answer 410 from now
 * on. A lease whose deadline is passing at the same moment is given back
 * to the channel instead (which is going too). Returns how many ended. */
size_t lease_drop_channel(registry_entry *e);

#endif
