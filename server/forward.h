/* forward.h - hopper delivering channels to URLs itself (--forward).
 *
 * Two threads run every attempt of every forwarded channel, each on its own
 * libcurl multi handle (keep-alive connections to each target, no thread
 * per channel; slot i of a channel is thread i % 2's). A forwarded channel has
 * --forward-concurrency slots; a slot takes the channel's oldest message and holds it until it is
 * consumed (a 2xx), moved to NAME.dead (another 4xx, or --forward-max-attempts failed attempts), or
 * given back at a stop. Between failed attempts the slot waits out a backoff, so with one slot
 * nothing overtakes a message that is being retried: FIFO. A message is consumed only after a 2xx;
 * until then a crash brings it back (at least once). The RAM of messages in slots is charged to the
 * server's budget.
 *
 * Backoff after the n-th failed attempt of a message: a random time in
 * [--forward-retry-min, min(--forward-retry-max, retry-min x 2^n)] (full
 * jitter above the minimum); a Retry-After on 429 or 503 replaces it,
 * within [retry-min, retry-max]. The attempt count is the envelope's
 * returns, so it survives a clean restart (a crash may repeat a count). */
#ifndef HOPPER_SERVER_FORWARD_H
#define HOPPER_SERVER_FORWARD_H

#include "options.h"
#include "registry.h"

#include <stdbool.h>
#include <stdint.h>

/* Start the forwarding thread for o's --forward rules (kept: o must
 * outlive the module). With no rule nothing starts. False (logged) if it
 * cannot: the key of --forward-secret unreadable, libcurl or the thread
 * failing. Call before any channel is opened: forward_attach() follows. */
bool forward_start(const server_options *o);

/* Called for every channel the registry opens: if a rule forwards it, its
 * messages go to the rule's URL from now on. */
void forward_attach(registry_entry *e);

/* Pause (registry.h): from forward_pause() on, no message of e's channel
 * is taken into a slot (those in slots already go on to their end) and a
 * message handed to the forwarder but not yet in a slot goes back to the
 * head of the channel; forward_resume() makes the threads take messages
 * again at once. Both do nothing for a channel that is not forwarded.
 * Call them after e->paused is changed. */
void forward_pause(registry_entry *e);
void forward_resume(registry_entry *e);

/* True if a rule forwards the channel called name (GET on it is 409). */
bool forward_is_forwarded(const char *name);

/* The stop, in two halves around the HTTP drain: first no attempt begins
 * any more; then attempts in flight get until deadline_ms (CLOCK_MONOTONIC
 * milliseconds, see forward_now_ms()) to end, the others are cut off, and
 * every message in a slot goes back to the head of its channel in order.
 * After forward_stop() no channel is touched by forwarding. */
void forward_stop_taking(void);
void forward_stop(uint64_t deadline_ms);
uint64_t forward_now_ms(void);

/* Upper bounds (seconds) of the duration histogram's buckets; one more
 * bucket, +Inf, follows. */
#define FORWARD_BUCKETS 12
extern const double forward_buckets[FORWARD_BUCKETS];

/* What /status and /metrics say of a forwarded channel. */
typedef struct forward_status {
    char target[256];    /* the URL without user:password@ */
    const char *state;   /* "ok", "retrying" or "failing" */
    long last_status;    /* the last answer's status code, 0 if none */
    char last_error[96]; /* the last failure that had no status, "" if none */
    uint64_t attempts_ok, attempts_retry, attempts_dead; /* attempts by outcome */
    uint64_t consecutive_failures;
    double next_attempt_seconds;           /* until a message waiting out a backoff is tried; 0 */
    uint64_t buckets[FORWARD_BUCKETS + 1]; /* attempts by duration (not cumulative) */
    double duration_sum;                   /* seconds, all attempts */
} forward_status;

/* False if e is not forwarded. OUT: *out. */
bool forward_describe(const registry_entry *e, forward_status *out);

#endif
