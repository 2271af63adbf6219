/* longpoll.c - waiting GETs: arming, the deadline timer and its heap, and
 * the resume logic (see longpoll.h for who may end a wait and the lock
 * order). */
#include "longpoll.h"

#include "log.h"

#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

/* A corrupt queue file record is skipped with HOP_IO: try the next ones. */
#define IO_RETRIES 4

static struct {
    pthread_mutex_t lock;
    pthread_cond_t changed; /* the earliest deadline changed, or quit */
    deadline_heap heap;
    bool stopping; /* every wait ends at once */
    bool quit;
    bool running;
    pthread_t thread;
} timer = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Read without the lock by longpoll_begin() to skip arming when stopping. */
static atomic_bool stopping_hint;

static longpoll *of_item(deadline_item *it)
{
    return it ? (longpoll *)((char *)it - offsetof(longpoll, item)) : NULL;
}

/* End lp's wait unless its callback has claimed the delivery. Called with
 * timer.lock held, lp off the heap. */
static void expire(longpoll *lp)
{
    if (!hop_waiter_cancel(lp->waiter))
        return; /* the callback delivers (or did): it resumes the connection */
    pthread_mutex_lock(&lp->lock);
    lp->state = LONGPOLL_TIMED_OUT;
    MHD_resume_connection(lp->conn);
    pthread_mutex_unlock(&lp->lock);
}

static void *timer_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&timer.lock);
    while (!timer.quit) {
        longpoll *first = of_item(deadline_heap_first(&timer.heap));
        if (first == NULL) {
            pthread_cond_wait(&timer.changed, &timer.lock);
            continue;
        }
        if (first->item.deadline_ms <= deadline_now_ms()) {
            deadline_heap_remove(&timer.heap, &first->item);
            expire(first);
            continue;
        }
        uint64_t at = first->item.deadline_ms;
        struct timespec ts = {.tv_sec = (time_t)(at / 1000),
                              .tv_nsec = (long)(at % 1000) * 1000000L};
        pthread_cond_timedwait(&timer.changed, &timer.lock, &ts);
    }
    pthread_mutex_unlock(&timer.lock);
    return NULL;
}

bool longpoll_timer_start(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC); /* deadlines ignore clock changes */
    pthread_cond_init(&timer.changed, &attr);
    pthread_condattr_destroy(&attr);
    timer.quit = false;
    if (pthread_create(&timer.thread, NULL, timer_main, NULL) != 0) {
        pthread_cond_destroy(&timer.changed);
        return false;
    }
    timer.running = true;
    return true;
}

void longpoll_timer_stop(void)
{
    if (!timer.running)
        return;
    pthread_mutex_lock(&timer.lock);
    timer.quit = true;
    pthread_cond_signal(&timer.changed);
    pthread_mutex_unlock(&timer.lock);
    pthread_join(timer.thread, NULL);
    timer.running = false;
    pthread_cond_destroy(&timer.changed);
    deadline_heap_release(&timer.heap);
}

void longpoll_stop_waiting(void)
{
    atomic_store(&stopping_hint, true);
    pthread_mutex_lock(&timer.lock);
    timer.stopping = true;
    longpoll *lp;
    while ((lp = of_item(deadline_heap_first(&timer.heap))) != NULL) {
        deadline_heap_remove(&timer.heap, &lp->item);
        expire(lp);
    }
    pthread_mutex_unlock(&timer.lock);
}

/* Put lp's deadline on the timer; when stopping (or out of memory for the
 * heap) end the wait at once instead. Called without lp->lock. */
static void timer_add(longpoll *lp, uint64_t wait_ms)
{
    pthread_mutex_lock(&timer.lock);
    lp->item.deadline_ms = deadline_now_ms() + wait_ms;
    if (timer.stopping || !deadline_heap_push(&timer.heap, &lp->item)) {
        expire(lp);
    } else if (lp->item.index == 0) {
        pthread_cond_signal(&timer.changed);
    }
    pthread_mutex_unlock(&timer.lock);
}

/* ---- giving messages back ---- */

void longpoll_give_back(hop_channel *ch, void *msg, size_t len)
{
    /* From a waiter callback this does not recurse: the core's delivery
     * loop that called us hands the message to the next waiter itself. */
    hop_err err = hop_requeue(ch, msg, len);
    if (err != HOP_OK)
        log_error("channel %s: a message could not be given back: %s", hop_channel_name(ch),
                  hop_strerror(err));
}

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

/* ---- one waiting GET ---- */

/* The waiter's callback, on the thread that made a message available (or
 * that closes the channel). lp->lock orders it after the suspension. */
static void on_ready(void *arg, hop_err err, void *data, size_t len)
{
    longpoll *lp = arg;
    hop_channel *ch = lp->ch;
    pthread_mutex_lock(&lp->lock);
    bool gone = err == HOP_OK && longpoll_client_gone(lp->conn);
    if (gone) {
        lp->state = LONGPOLL_GONE;
    } else if (err == HOP_OK) {
        lp->msg = data;
        lp->len = len;
        lp->state = LONGPOLL_READY;
    } else {
        lp->state = LONGPOLL_CLOSED;
    }
    MHD_resume_connection(lp->conn);
    pthread_mutex_unlock(&lp->lock);
    /* lp may be freed from here on */
    if (gone)
        longpoll_give_back(ch, data, len);
}

void longpoll_init(longpoll *lp, hop_channel *ch, struct MHD_Connection *conn)
{
    pthread_mutex_init(&lp->lock, NULL);
    lp->state = LONGPOLL_IDLE;
    lp->msg = NULL;
    lp->len = 0;
    lp->waiter = NULL;
    lp->ch = ch;
    lp->conn = conn;
    lp->item = (deadline_item){0, DEADLINE_NOT_IN_HEAP};
}

/* Poll once, skipping past corrupt records. */
static longpoll_result poll_now(longpoll *lp, void **msg, size_t *len, hop_err *err)
{
    hop_err e = HOP_IO;
    for (int i = 0; i < IO_RETRIES && e == HOP_IO; i++)
        e = hop_recv(lp->ch, 0, msg, len);
    if (e == HOP_OK)
        return LONGPOLL_GOT;
    if (e == HOP_TIMEOUT)
        return LONGPOLL_EMPTY;
    *err = e;
    return LONGPOLL_FAILED;
}

longpoll_result longpoll_begin(longpoll *lp, uint64_t wait_ms, void **msg, size_t *len,
                               hop_err *err)
{
    if (wait_ms == 0 || atomic_load(&stopping_hint))
        return poll_now(lp, msg, len, err);
    if (lp->waiter == NULL) {
        hop_err e = hop_waiter_new(on_ready, lp, &lp->waiter);
        if (e != HOP_OK) {
            *err = e;
            return LONGPOLL_FAILED;
        }
    }

    pthread_mutex_lock(&lp->lock);
    hop_err e = HOP_IO;
    for (int i = 0; i < IO_RETRIES && e == HOP_IO; i++)
        e = hop_recv_or_arm(lp->ch, lp->waiter, msg, len);
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
    timer_add(lp, wait_ms);
    return LONGPOLL_SUSPENDED;
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

void longpoll_release(longpoll *lp, void **msg, size_t *len)
{
    pthread_mutex_lock(&timer.lock);
    deadline_heap_remove(&timer.heap, &lp->item);
    pthread_mutex_unlock(&timer.lock);

    /* Normally the waiter is idle by now (a suspended connection does not
     * complete). Be safe anyway: disarm it, or wait for a callback that has
     * claimed it to finish with lp. */
    bool disarmed = hop_waiter_cancel(lp->waiter);
    pthread_mutex_lock(&lp->lock);
    if (disarmed)
        lp->state = LONGPOLL_TIMED_OUT;
    while (lp->state == LONGPOLL_WAITING) {
        pthread_mutex_unlock(&lp->lock);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
        pthread_mutex_lock(&lp->lock);
    }
    *msg = lp->msg;
    *len = lp->len;
    lp->msg = NULL;
    pthread_mutex_unlock(&lp->lock);

    hop_waiter_free(lp->waiter);
    lp->waiter = NULL;
    pthread_mutex_destroy(&lp->lock);
}
