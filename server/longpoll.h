/* longpoll.h - GETs that wait for a message without holding a thread each.
 *
 * A waiting GET is a suspended MHD connection plus an armed hop_waiter, and
 * its deadline on the server's timer (timer.h). Whoever comes first ends
 * the wait and resumes the connection:
 *   - the waiter's callback (on a sender's thread), with a message: READY
 *     (one that has expired is dropped, and the waiter armed again:
 *     expiry.h);
 *   - the timer at the deadline, if hop_waiter_cancel() still disarms the
 *     waiter (else the callback owns delivery): TIMED_OUT;
 *   - longpoll_stop_waiting() at shutdown, the same way as the timer.
 *
 * Pause (registry.h): a waiting GET of a paused channel is parked: it
 * waits without an armed waiter, so that no message reaches it, and only
 * its deadline (or longpoll_resume()) ends the wait. Every GET that may
 * wait is on its channel's list of waiters from longpoll_begin() to
 * longpoll_end(), so that longpoll_pause() can disarm those that wait
 * already and longpoll_resume() can take messages for the parked ones.
 *
 * Locks: the channel's waiters_lock (registry.h), then a longpoll's lock,
 * then the channel's (inside the core): the
 * callback takes and arms, the timer disarms, with the longpoll's held. The timer's
 * lock is never taken with a longpoll's held, nor the other way round: the
 * timer calls its callbacks without its lock.
 *
 * Lifetime: a longpoll lives in the request context; it may be freed only
 * after longpoll_end(), from the MHD completion callback. */
#ifndef HOPPER_SERVER_LONGPOLL_H
#define HOPPER_SERVER_LONGPOLL_H

#include "hopper/hopper.h"
#include "registry.h"
#include "timer.h"

#include <microhttpd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum longpoll_state {
    LONGPOLL_IDLE,      /* not waiting (yet) */
    LONGPOLL_WAITING,   /* armed, connection suspended */
    LONGPOLL_READY,     /* a message arrived: msg, len */
    LONGPOLL_GONE,      /* a message arrived for a client that had gone: given back unsent */
    LONGPOLL_TIMED_OUT, /* the deadline passed, or the server is stopping */
    LONGPOLL_CLOSED,    /* the channel was closed under the waiter */
} longpoll_state;

typedef struct longpoll {
    pthread_mutex_t lock;   /* guards state, msg, len */
    pthread_cond_t settled; /* state left LONGPOLL_WAITING */
    longpoll_state state;
    void *msg; /* a message owned by this longpoll in READY */
    size_t len;
    hop_waiter *waiter; /* created on first arming */
    bool ended;         /* guarded by lock: the deadline passed, or the request ends */
    bool parked;        /* guarded by lock: waiting, not armed, as the channel is paused */
    bool listed;        /* on entry's waiters (entry->waiters_lock) */
    struct longpoll *prev, *next; /* entry->waiters, under entry->waiters_lock */
    registry_entry *entry;
    struct MHD_Connection *conn;
    timer_item deadline; /* the end of the wait, on the timer */
} longpoll;

/* Shutdown: end every wait now (TIMED_OUT, connections resumed), and end
 * any wait that begins from now on at once. */
void longpoll_stop_waiting(void);

/* Prepare lp for a GET from conn. Cannot fail. longpoll_end() ends it,
 * whether it waited or not. */
void longpoll_init(longpoll *lp, struct MHD_Connection *conn);

/* End lp for good: off the timer, waiter disarmed (or, if its callback has
 * claimed it, waited for on a condition variable) and freed. Call from the
 * completion callback. OUT: *msg and *len, a message lp still held that was
 * never answered (NULL if none): the caller gives it back to the channel. */
void longpoll_end(longpoll *lp, void **msg, size_t *len);

typedef enum longpoll_result {
    LONGPOLL_GOT,       /* a message was ready: OUT *msg, *len (new) */
    LONGPOLL_EMPTY,     /* nothing within wait_ms = 0: answer 204 */
    LONGPOLL_SUSPENDED, /* waiting; the connection is suspended, return MHD_YES */
    LONGPOLL_FAILED,    /* OUT: *err */
} longpoll_result;

/* From the access handler (or a stream's content reader, stream.h): take
 * the oldest message of e's channel or wait up to wait_ms for one. Once
 * per longpoll, or once after each longpoll_rearm(). Of a paused channel: take nothing,
 * answer EMPTY or wait. */
longpoll_result longpoll_begin(longpoll *lp, registry_entry *e, uint64_t wait_ms, void **msg,
                               size_t *len, hop_err *err);

/* Make lp, whose wait has ended and whose message (if any) was taken
 * with longpoll_take(), ready for another longpoll_begin(): its deadline
 * off the timer, its state IDLE. Not with lp->lock held, not from the
 * timer thread. The waiter is re-armed by that begin: the core touches a
 * waiter no more once its callback has returned, and the callback touches
 * it no more once it resumed the connection. */
void longpoll_rearm(longpoll *lp);

/* Pause e's channel: GETs from now on wait without taking anything, and
 * those that wait already are disarmed (one whose message is on its way
 * gets it). Idempotent. */
void longpoll_pause(registry_entry *e);

/* Resume e's channel: the parked GETs take a message now if there is one
 * (answered at once) or wait for one as usual. Idempotent. */
void longpoll_resume(registry_entry *e);

/* True if the client of conn has closed or reset its connection; a message
 * must not be sent into the void. conn must be suspended or in its access
 * handler. */
bool longpoll_client_gone(struct MHD_Connection *conn);

/* From the access handler after the connection was resumed: how the wait
 * ended. In READY, OUT *msg and *len: the message, now the caller's. */
longpoll_state longpoll_take(longpoll *lp, void **msg, size_t *len);

#endif
