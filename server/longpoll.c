/* longpoll.c - waiting GETs: arming, their deadlines on the timer, and the
 * resume logic (see longpoll.h for who may end a wait and the lock order). */
#include "longpoll.h"

#include "expiry.h"
#include "giveback.h"
#include "skip_corrupt.h"

#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* Set by longpoll_stop_waiting(): every wait from then on ends at once. */
static atomic_bool stopping;

static longpoll *of_deadline(timer_item *it)
{
    return (longpoll *)((char *)it - offsetof(longpoll, deadline));
}

/* lp waits on without an armed waiter: its channel is paused. lp->lock
 * held. */
static void park(longpoll *lp)
{
    lp->parked = true;
    atomic_fetch_add(&lp->entry->parked, 1);
}

/* lp is parked no longer. lp->lock held. */
static void unpark(longpoll *lp)
{
    lp->parked = false;
    atomic_fetch_sub(&lp->entry->parked, 1);
}

/* lp waits no longer: its waiter is never armed again (a callback that
 * finds its message expired ends the wait instead), and disarmed now if
 * it is armed, or unparked if it is parked. True if it was either:
 * nothing else ends the wait then. Called with lp->lock held: the
 * callback decides under it, so either it sees ended, or it armed the
 * waiter before and this disarms it. */
static bool end_waiting(longpoll *lp)
{
    lp->ended = true;
    if (lp->parked) {
        unpark(lp);
        return true;
    }
    return hop_waiter_cancel(lp->waiter);
}

/* End lp's wait unless its callback has claimed the delivery. */
static void expire(longpoll *lp)
{
    pthread_mutex_lock(&lp->lock);
    /* else the callback delivers (or did): it resumes the connection */
    if (end_waiting(lp)) {
        lp->state = LONGPOLL_TIMED_OUT;
        pthread_cond_signal(&lp->settled);
        MHD_resume_connection(lp->conn);
    }
    pthread_mutex_unlock(&lp->lock);
}

/* The timer's callback: lp's deadline has passed. */
static void on_deadline(timer_item *it)
{
    expire(of_deadline(it));
}

void longpoll_stop_waiting(void)
{
    atomic_store(&stopping, true);
    timer_expire_all(on_deadline);
}

/* Put lp's deadline on the timer; out of memory for it, end the wait at
 * once instead. Called without lp->lock. */
static void deadline_add(longpoll *lp, uint64_t wait_ms)
{
    if (!timer_add(&lp->deadline, wait_ms)) {
        expire(lp);
        return;
    }
    /* longpoll_stop_waiting() may have expired every wait between our look
     * at stopping and this add. It sets stopping before it takes the
     * timer's lock, and we added under that lock: if we came second, we
     * see stopping now, and end the wait ourselves. */
    if (atomic_load(&stopping))
        timer_update(&lp->deadline, 0);
}

/* ---- one waiting GET ---- */

bool longpoll_client_gone(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (info == NULL)
        return false;
    char c;
    ssize_t n = recv(info->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true; /* orderly close */
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* The waiter brought an expired message, dropped, or the channel was
 * resumed: take the next one, or arm the waiter again (park lp if the
 * channel is paused), unless the wait has ended. lp->lock held. True if lp
 * waits on; else OUT: *err, *data, *len, what the wait ends with
 * (HOP_TIMEOUT: it ended). */
static bool wait_on(longpoll *lp, hop_err *err, void **data, size_t *len)
{
    if (lp->ended) {
        *err = HOP_TIMEOUT;
        return false;
    }
    if (atomic_load(&lp->entry->paused)) {
        park(lp);
        *err = HOP_TIMEOUT;
        return true;
    }
    unsigned failed = 0;
    do
        *err = expiry_recv_or_arm(lp->entry, lp->waiter, data, len);
    while (skip_corrupt(*err, &failed));
    return *err == HOP_TIMEOUT;
}

/* The waiter's callback, on the thread that made a message available (or
 * that closes the channel). lp->lock orders it after the suspension. */
static void on_ready(void *arg, hop_err err, void *data, size_t len)
{
    longpoll *lp = arg;
    registry_entry *e = lp->entry;
    pthread_mutex_lock(&lp->lock);
    bool gone = err == HOP_OK && longpoll_client_gone(lp->conn);
    if (!gone && err == HOP_OK && expiry_drop_if_expired(e, data, len) &&
        wait_on(lp, &err, &data, &len)) {
        pthread_mutex_unlock(&lp->lock);
        return; /* armed again: still waiting */
    }
    if (gone) {
        lp->state = LONGPOLL_GONE;
    } else if (err == HOP_OK) {
        lp->msg = data;
        lp->len = len;
        lp->state = LONGPOLL_READY;
    } else if (err == HOP_TIMEOUT) {
        lp->state = LONGPOLL_TIMED_OUT; /* the deadline passed while it waited on */
    } else {
        lp->state = LONGPOLL_CLOSED;
    }
    pthread_cond_signal(&lp->settled);
    MHD_resume_connection(lp->conn);
    pthread_mutex_unlock(&lp->lock);
    /* lp may be freed from here on */
    if (gone)
        giveback_unsent(e, data, len);
}

void longpoll_init(longpoll *lp, struct MHD_Connection *conn)
{
    pthread_mutex_init(&lp->lock, NULL);
    pthread_cond_init(&lp->settled, NULL);
    lp->state = LONGPOLL_IDLE;
    lp->msg = NULL;
    lp->len = 0;
    lp->waiter = NULL;
    lp->entry = NULL;
    lp->ended = false;
    lp->parked = false;
    lp->listed = false;
    lp->prev = lp->next = NULL;
    lp->conn = conn;
    timer_item_init(&lp->deadline, on_deadline);
}

/* ---- the waiters of a channel, for pause and resume ---- */

/* Put lp on its channel's list of waiters, if it is not on it (a stream's
 * longpoll begins again after each longpoll_rearm()). */
static void list_add(longpoll *lp)
{
    if (lp->listed)
        return;
    registry_entry *e = lp->entry;
    pthread_mutex_lock(&e->waiters_lock);
    lp->prev = NULL;
    lp->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = lp;
    e->waiters = lp;
    lp->listed = true;
    pthread_mutex_unlock(&e->waiters_lock);
}

/* Take lp off its channel's list, if it is on it. */
static void list_remove(longpoll *lp)
{
    if (!lp->listed)
        return;
    registry_entry *e = lp->entry;
    pthread_mutex_lock(&e->waiters_lock);
    if (lp->prev)
        lp->prev->next = lp->next;
    else
        e->waiters = lp->next;
    if (lp->next)
        lp->next->prev = lp->prev;
    lp->listed = false;
    pthread_mutex_unlock(&e->waiters_lock);
}

void longpoll_pause(registry_entry *e)
{
    pthread_mutex_lock(&e->waiters_lock);
    /* first: a longpoll_begin() that comes to lp->lock after this sees it */
    atomic_store(&e->paused, true);
    for (longpoll *lp = e->waiters; lp; lp = lp->next) {
        pthread_mutex_lock(&lp->lock);
        /* not armed (done, parked, not yet begun), or its message is on
         * its way: nothing to do */
        if (!lp->ended && !lp->parked && hop_waiter_cancel(lp->waiter))
            park(lp);
        pthread_mutex_unlock(&lp->lock);
    }
    pthread_mutex_unlock(&e->waiters_lock);
}

/* The channel of the parked lp was resumed: take a message for it, or arm
 * its waiter. lp->lock held. */
static void unpark_and_take(longpoll *lp)
{
    unpark(lp);
    hop_err err;
    void *data = NULL;
    size_t len = 0;
    if (wait_on(lp, &err, &data, &len))
        return; /* armed (or paused again): still waiting */
    if (err == HOP_OK) {
        lp->msg = data;
        lp->len = len;
        lp->state = LONGPOLL_READY;
    } else {
        lp->state = LONGPOLL_CLOSED;
    }
    pthread_cond_signal(&lp->settled);
    MHD_resume_connection(lp->conn);
}

void longpoll_resume(registry_entry *e)
{
    pthread_mutex_lock(&e->waiters_lock);
    atomic_store(&e->paused, false);
    /* the oldest waiter first, as the core serves armed waiters */
    longpoll *oldest = e->waiters;
    while (oldest && oldest->next)
        oldest = oldest->next;
    for (longpoll *lp = oldest; lp; lp = lp->prev) {
        pthread_mutex_lock(&lp->lock);
        if (lp->parked && !lp->ended)
            unpark_and_take(lp);
        pthread_mutex_unlock(&lp->lock);
    }
    pthread_mutex_unlock(&e->waiters_lock);
}

/* ---- one GET's wait ---- */

/* Poll once, skipping past corrupt records. */
static longpoll_result poll_now(longpoll *lp, void **msg, size_t *len, hop_err *err)
{
    hop_err e;
    unsigned failed = 0;
    do
        e = expiry_recv(lp->entry, msg, len);
    while (skip_corrupt(e, &failed));
    if (e == HOP_OK)
        return LONGPOLL_GOT;
    if (e == HOP_TIMEOUT)
        return LONGPOLL_EMPTY;
    *err = e;
    return LONGPOLL_FAILED;
}

longpoll_result longpoll_begin(longpoll *lp, registry_entry *entry, uint64_t wait_ms, void **msg,
                               size_t *len, hop_err *err)
{
    lp->entry = entry;
    if (wait_ms == 0 || atomic_load(&stopping)) {
        if (atomic_load(&entry->paused))
            return LONGPOLL_EMPTY;
        return poll_now(lp, msg, len, err);
    }
    if (lp->waiter == NULL) {
        hop_err e = hop_waiter_new(on_ready, lp, &lp->waiter);
        if (e != HOP_OK) {
            *err = e;
            return LONGPOLL_FAILED;
        }
    }
    list_add(lp); /* before looking at paused: see longpoll_pause() */

    pthread_mutex_lock(&lp->lock);
    hop_err e = HOP_TIMEOUT;
    unsigned failed = 0;
    if (atomic_load(&entry->paused))
        park(lp);
    else
        do
            e = expiry_recv_or_arm(lp->entry, lp->waiter, msg, len);
        while (skip_corrupt(e, &failed));
    if (e != HOP_TIMEOUT) {
        pthread_mutex_unlock(&lp->lock);
        if (e == HOP_OK)
            return LONGPOLL_GOT;
        *err = e;
        return LONGPOLL_FAILED;
    }
    /* Armed. The callback may already be blocked on lp->lock: suspending
     * before unlocking makes its resume always come after the suspend. */
    MHD_suspend_connection(lp->conn);
    lp->state = LONGPOLL_WAITING;
    pthread_mutex_unlock(&lp->lock);
    /* Safe without lp->lock: MHD cannot complete (and free) this request
     * while its access handler is still running. */
    deadline_add(lp, wait_ms);
    return LONGPOLL_SUSPENDED;
}

void longpoll_rearm(longpoll *lp)
{
    timer_cancel(&lp->deadline); /* an expire() running now is over */
    pthread_mutex_lock(&lp->lock);
    lp->ended = false;
    lp->state = LONGPOLL_IDLE;
    pthread_mutex_unlock(&lp->lock);
}

longpoll_state longpoll_take(longpoll *lp, void **msg, size_t *len)
{
    pthread_mutex_lock(&lp->lock);
    longpoll_state state = lp->state;
    if (state == LONGPOLL_READY) {
        *msg = lp->msg;
        *len = lp->len;
        lp->msg = NULL;
        lp->state = LONGPOLL_IDLE;
    }
    pthread_mutex_unlock(&lp->lock);
    return state;
}

/* End the wait of lp, which made a waiter: off the timer (an expire()
 * running now is over), the waiter disarmed, or its callback, if it has
 * claimed the wait, waited for. OUT: what longpoll_end() returns. */
static void settle(longpoll *lp, void **msg, size_t *len)
{
    timer_cancel(&lp->deadline);
    /* Normally the waiter is idle by now (a suspended connection does not
     * complete, but when the daemon stops). Disarm it, or wait for a
     * callback that has claimed it to be done with lp. */
    pthread_mutex_lock(&lp->lock);
    if (end_waiting(lp))
        lp->state = LONGPOLL_TIMED_OUT;
    while (lp->state == LONGPOLL_WAITING)
        pthread_cond_wait(&lp->settled, &lp->lock);
    *msg = lp->msg;
    *len = lp->len;
    lp->msg = NULL;
    pthread_mutex_unlock(&lp->lock);
    hop_waiter_free(lp->waiter);
    lp->waiter = NULL;
}

void longpoll_end(longpoll *lp, void **msg, size_t *len)
{
    *msg = NULL;
    *len = 0;
    list_remove(lp); /* from now on pause and resume leave lp alone */
    /* without a waiter lp never waited: nothing to settle */
    if (lp->waiter)
        settle(lp, msg, len);
    pthread_cond_destroy(&lp->settled);
    pthread_mutex_destroy(&lp->lock);
}
