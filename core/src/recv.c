/* recv.c - taking messages from a channel: hop_recv(), the waiters that
 * wait without a thread, the one dispatch loop that serves them, and
 * hop_requeue(). Memory first, then the queue files (through disk.c: a
 * record is reserved, read with the state lock dropped, then committed,
 * and is in flight, flight.c, until its receiver frees it). */
#include "recv.h"

#include "alloc.h"
#include "deadline.h"
#include "disk.h"
#include "flight.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* ---- memory ---- */

/* A message keeps the place in the channel's order it had when it was
 * first taken (take_order, counting from 1; 0: never taken), so that
 * messages requeued at different times, in any order, line up again as
 * they were. Wrap-around safe. */
static inline bool taken_before(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

/* Give m its place in the order of first takes, if it has none yet. */
static inline void take_order_stamp(hop_channel *ch, hop__msg *m)
{
    if (m->take_order == 0 && (m->take_order = ++ch->take_counter) == 0)
        m->take_order = ++ch->take_counter;
}

/* The oldest message in memory, removed; NULL if none. A message read from
 * disk and requeued is in flight again. */
static inline hop__msg *memory_take(hop_channel *ch)
{
    hop__msg *m = hop__membuf_pop_head(&ch->mem);
    if (m == NULL)
        return NULL;
    take_order_stamp(ch, m);
    if (m->flight)
        hop__flight_taken_again(ch, m->flight);
    return m;
}

/* True if m was out with a receiver when ch was last purged (hop_purge()):
 * first taken before it. Such a message is not given back: the purge
 * dropped it, and cut its flight off. Right while fewer than 2^31 messages
 * are taken between m's first take and the check, as the order of give-
 * backs is. (A message in memory at the purge was freed by it, so one
 * taken before it and alive now was out.) ch->lock held. */
static inline bool out_at_purge(const hop_channel *ch, const hop__msg *m)
{
    return ch->purged && m->take_order != 0 && !taken_before(ch->purged_take, m->take_order);
}

/* Free m, out at a purge, instead of giving it back, and its flight (cut
 * off by the purge: nothing else refers to it). Its hold has ended. Takes
 * no lock. */
static void drop_purged(hop__msg *m)
{
    hop__free(m->flight);
    hop__msg_free(m);
}

/* m is requeued to memory, at the head but behind the requeued messages
 * that were taken before it: in the order they first left. */
static void memory_requeue(hop_channel *ch, hop__msg *m)
{
    if (m->flight)
        hop__flight_requeued(ch, m->flight);
    hop__msg *prev = NULL;
    for (hop__msg *p = ch->mem.head;
         p && p->take_order != 0 && taken_before(p->take_order, m->take_order); p = p->next)
        prev = p;
    if (prev == NULL) {
        hop__membuf_push_head(&ch->mem, m);
    } else {
        hop__membuf_insert_after(&ch->mem, prev, m);
    }
}

/* ---- disk ---- */

/* Reserve the next disk record for fl (NULL: out of memory), unless memory
 * holds messages: they are older. Called with read_lock and ch->lock held.
 * HOP_OK: rd says which record. */
static hop_err take_reserve(hop_channel *ch, hop__flight *fl, hop__disk_read *rd)
{
    hop__disk_detach_finished(&ch->disk, &rd->finished);
    /* Memory holds the oldest messages whenever it holds any. It may have
     * filled while the lock was dropped (the disk ran empty and sends went
     * to memory, then to disk again; or a requeue): reading the disk now
     * would hand out a newer message first. take_next() pops memory. */
    if (ch->mem.head != NULL || ch->disk.records == 0)
        return HOP_TIMEOUT;
    if (fl == NULL)
        return HOP_NOMEM;
    return hop__disk_read_reserve(&ch->disk, rd) ? HOP_OK : HOP_TIMEOUT;
}

/* The record read is handed out: it is in flight until the receiver
 * hop_free()s it. Called with ch->lock held. */
static void take_commit(hop_channel *ch, hop__flight *fl, hop__disk_read *rd)
{
    hop__flight_start(ch, fl, rd->file, rd->off, rd->msg);
    take_order_stamp(ch, rd->msg);
}

/* Read disk records into data[*n..max) and lens alike for as long as
 * memory holds nothing, holding read_lock across them all: receivers on
 * other threads wait for it once, not once a record. Called and returns
 * with ch->lock held, drops it around the I/O (and the allocations).
 * HOP_OK: *n says how many (none: nothing on disk after all, another
 * receiver took it, or memory was refilled meanwhile). Else the error of
 * the record that failed (those before it are taken): HOP_IO, a read
 * failed (nothing consumed) or a corrupt record was skipped; HOP_NOMEM. */
static hop_err take_batch_from_disk(hop_channel *ch, void **data, size_t *lens, size_t max,
                                    size_t *n)
{
    pthread_mutex_unlock(&ch->lock);
    hop__flight *fl = hop__malloc(sizeof *fl); /* before anything is consumed */
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->lock);
    hop__qfile *finished = NULL;
    hop_err err = HOP_OK;
    int err_no = 0;
    while (*n < max) {
        hop__disk_read rd = {.finished = finished, .err_no = 0};
        hop__flight *next = NULL;
        err = take_reserve(ch, fl, &rd);
        if (err == HOP_OK) {
            pthread_mutex_unlock(&ch->lock);
            hop__disk_read_record(&ch->disk, &rd);
            if (*n + 1 < max)
                next = hop__malloc(sizeof *next); /* the next record's */
            pthread_mutex_lock(&ch->lock);
            err = hop__disk_read_commit(&ch->disk, &rd);
        }
        finished = rd.finished;
        if (err != HOP_OK) {
            hop__free(next);
            if (err == HOP_TIMEOUT)
                err = HOP_OK; /* nothing more here */
            else if (rd.result == HOP__READ_IO)
                ch->io_errors_total++;
            err_no = rd.err_no;
            break;
        }
        take_commit(ch, fl, &rd);
        fl = next;
        data[*n] = rd.msg->data;
        lens[*n] = rd.msg->len;
        (*n)++;
    }
    bool idle = ch->disk.records == 0;
    pthread_mutex_unlock(&ch->lock);
    hop__free(fl);
    hop__disk_remove(&ch->disk, finished);
    if (idle)
        hop__disk_reader_release(&ch->disk); /* no read-ahead memory while idle */
    pthread_mutex_unlock(&ch->read_lock);
    hop__qfile_free_list(finished);
    pthread_mutex_lock(&ch->lock);
    errno = err_no;
    return err;
}

/* Read the next disk record. Called and returns with ch->lock held, drops
 * it around the I/O. HOP_OK: OUT *out, in flight. HOP_TIMEOUT: nothing on
 * disk after all (another receiver took it). Errors as
 * take_batch_from_disk(). */
static hop_err take_from_disk(hop_channel *ch, hop__msg **out)
{
    void *data;
    size_t len, n = 0;
    hop_err err = take_batch_from_disk(ch, &data, &len, 1, &n);
    if (err == HOP_OK && n == 0)
        return HOP_TIMEOUT;
    if (err == HOP_OK)
        *out = hop__msg_of(data);
    return err;
}

/* ---- receiving ---- */

/* The oldest message. Called and returns with ch->lock held. HOP_TIMEOUT if
 * there is none; errors as take_from_disk(). */
static hop_err take_next(hop_channel *ch, hop__msg **out)
{
    for (;;) {
        hop__msg *m = memory_take(ch);
        if (m) {
            *out = m;
            return HOP_OK;
        }
        if (ch->disk.records == 0)
            return HOP_TIMEOUT;
        hop_err err = take_from_disk(ch, out);
        /* While the lock was dropped a requeue may have refilled memory, or
         * a sender may have published a disk record: its announce did not
         * count this caller as blocked, so look again rather than sleep (or
         * arm a waiter) with a message on disk. */
        if (err != HOP_TIMEOUT || (ch->mem.head == NULL && ch->disk.records == 0))
            return err;
    }
}

/* Leave a receive call: the last one out of a closing channel lets close go on. */
static void leave(hop_channel *ch)
{
    if (--ch->inside == 0 && ch->closed)
        pthread_cond_signal(&ch->drained);
}

/* hop_recv() past its fast path: disk, waiting, closing. Called with
 * ch->lock held; returns without it. */
static __attribute__((noinline)) hop_err recv_slow(hop_channel *ch, int timeout_ms, void **data,
                                                   size_t *len)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        hop__deadline_in(&deadline, (uint64_t)timeout_ms * 1000000u);
    ch->inside++;
    hop_err err;
    bool timed_out = false;
    for (;;) {
        if (ch->closed) {
            err = HOP_CLOSED;
            break;
        }
        hop__msg *m;
        err = take_next(ch, &m);
        if (err == HOP_OK) {
            ch->received_total++;
            *data = m->data;
            *len = m->len;
            break;
        }
        if (err != HOP_TIMEOUT || timeout_ms == 0 || timed_out)
            break;
        ch->blocked++;
        if (timeout_ms < 0)
            pthread_cond_wait(&ch->readable, &ch->lock);
        else
            timed_out = pthread_cond_timedwait(&ch->readable, &ch->lock, &deadline) == ETIMEDOUT;
        ch->blocked--;
    }
    leave(ch);
    pthread_mutex_unlock(&ch->lock);
    return err;
}

hop_err hop_recv(hop_channel *ch, int timeout_ms, void **data, size_t *len)
{
    if (ch == NULL || data == NULL || len == NULL || timeout_ms < -1)
        return HOP_INVALID;
    pthread_mutex_lock(&ch->lock);
    hop__msg *m;
    if (ch->closed || (m = memory_take(ch)) == NULL)
        return recv_slow(ch, timeout_ms, data, len);
    /* the common case, kept short: the oldest message is in memory */
    ch->received_total++;
    pthread_mutex_unlock(&ch->lock);
    *data = m->data;
    *len = m->len;
    return HOP_OK;
}

hop_err hop_recv_batch(hop_channel *ch, size_t max, void **data, size_t *lens, size_t *n)
{
    if (n)
        *n = 0;
    if (ch == NULL || data == NULL || lens == NULL || n == NULL || max == 0)
        return HOP_INVALID;
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        return HOP_CLOSED;
    }
    ch->inside++;
    hop_err err = HOP_OK;
    int err_no = 0;
    while (*n < max) {
        hop__msg *m = memory_take(ch);
        if (m) {
            data[*n] = m->data;
            lens[(*n)++] = m->len;
            continue;
        }
        if (ch->disk.records == 0)
            break;
        size_t before = *n;
        err = take_batch_from_disk(ch, data, lens, max, n);
        err_no = errno;
        /* nothing read and memory still empty: another receiver took them */
        if (err != HOP_OK || (*n == before && ch->mem.head == NULL))
            break;
    }
    ch->received_total += *n;
    leave(ch);
    pthread_mutex_unlock(&ch->lock);
    if (*n > 0)
        return HOP_OK;
    errno = err_no;
    return err != HOP_OK ? err : HOP_TIMEOUT;
}

/* ---- waiters ---- */

/* w waits at the end of ch's armed waiters. ch->lock held. */
static void waiter_arm(hop_channel *ch, hop_waiter *w)
{
    atomic_store(&w->ch, ch);
    w->armed = true;
    w->next = NULL;
    w->prev = ch->waiters_tail;
    if (ch->waiters_tail)
        ch->waiters_tail->next = w;
    else
        ch->waiters_head = w;
    ch->waiters_tail = w;
    ch->waiters++;
}

/* w, armed on ch, waits no more. ch->lock held. */
static void waiter_disarm(hop_channel *ch, hop_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        ch->waiters_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        ch->waiters_tail = w->prev;
    w->next = w->prev = NULL;
    w->armed = false;
    ch->waiters--;
}

/* The waiter armed first, disarmed; NULL if none. ch->lock held. */
static hop_waiter *waiter_pop(hop_channel *ch)
{
    hop_waiter *w = ch->waiters_head;
    if (w)
        waiter_disarm(ch, w);
    return w;
}

void hop__recv_dispatch(hop_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    /* One dispatcher at a time. Two would each take a message and then race
     * for the oldest waiter; the loser, finding no waiter left, would put
     * its older message back behind the newer one the winner handed out.
     * The running loop looks again under the lock before it stops, so what
     * arrives meanwhile is not left behind. (A callback that sends or
     * requeues lands here too and returns at once.) */
    if (ch->dispatching) {
        pthread_mutex_unlock(&ch->lock);
        return;
    }
    ch->dispatching = true;
    ch->inside++;
    while (ch->waiters_head && !ch->closed) {
        hop__msg *m;
        uint64_t corrupt_before = ch->disk.records_corrupt;
        hop_err err = take_next(ch, &m);
        if (err == HOP_IO && ch->disk.records_corrupt != corrupt_before)
            continue; /* a corrupt record was skipped: go on with the next */
        if (err != HOP_OK)
            break; /* nothing left, or a read error the next receiver meets again */
        hop_waiter *w = waiter_pop(ch);
        if (w == NULL) { /* the waiters were cancelled while the lock was dropped */
            if (out_at_purge(ch, m))
                drop_purged(m); /* purged while the lock was dropped */
            else
                memory_requeue(ch, m);
            break;
        }
        ch->received_total++;
        pthread_mutex_unlock(&ch->lock);
        w->fn(w->arg, HOP_OK, m->data, m->len);
        pthread_mutex_lock(&ch->lock);
    }
    ch->dispatching = false;
    leave(ch);
    pthread_mutex_unlock(&ch->lock);
}

hop_err hop_waiter_new(hop_ready_fn fn, void *arg, hop_waiter **out)
{
    if (fn == NULL || out == NULL)
        return HOP_INVALID;
    hop_waiter *w = hop__calloc(1, sizeof *w);
    if (w == NULL)
        return HOP_NOMEM;
    w->fn = fn;
    w->arg = arg;
    *out = w;
    return HOP_OK;
}

void hop_waiter_free(hop_waiter *w)
{
    hop__free(w);
}

hop_err hop_recv_or_arm(hop_channel *ch, hop_waiter *w, void **data, size_t *len)
{
    if (ch == NULL || w == NULL || data == NULL || len == NULL)
        return HOP_INVALID;
    pthread_mutex_lock(&ch->lock);
    hop_err err;
    if (w->armed) {
        err = HOP_INVALID;
        goto out_unlock;
    }
    ch->inside++;
    if (ch->closed) {
        err = HOP_CLOSED;
        goto out_leave;
    }
    hop__msg *m;
    err = take_next(ch, &m);
    if (err == HOP_OK) {
        ch->received_total++;
        *data = m->data;
        *len = m->len;
    } else if (err == HOP_TIMEOUT && !ch->closed) {
        waiter_arm(ch, w);
    } else if (err == HOP_TIMEOUT) {
        err = HOP_CLOSED;
    }
out_leave:
    leave(ch);
out_unlock:
    pthread_mutex_unlock(&ch->lock);
    return err;
}

bool hop_waiter_cancel(hop_waiter *w)
{
    hop_channel *ch = w ? atomic_load(&w->ch) : NULL;
    if (ch == NULL)
        return false;
    pthread_mutex_lock(&ch->lock);
    bool was_armed = w->armed;
    if (was_armed)
        waiter_disarm(ch, w);
    pthread_mutex_unlock(&ch->lock);
    return was_armed;
}

/* ---- requeue and close ---- */

void hop__recv_published(hop_channel *ch, size_t n)
{
    pthread_mutex_lock(&ch->lock);
    bool serve = hop__recv_announce(ch, n);
    pthread_mutex_unlock(&ch->lock);
    if (serve)
        hop__recv_dispatch(ch);
}

/* m is back at the head: count it, wake receivers; ch->lock (held) is
 * dropped, then armed waiters are served. */
static void requeued_unlock(hop_channel *ch, hop__msg *m)
{
    memory_requeue(ch, m);
    ch->requeued_total++;
    bool serve = hop__recv_announce(ch, 1);
    pthread_mutex_unlock(&ch->lock);
    if (serve)
        hop__recv_dispatch(ch);
}

hop_err hop_requeue(hop_channel *ch, void *data, size_t len)
{
    hop__msg *m = hop__msg_of(data);
    if (m == NULL)
        return HOP_INVALID; /* not a message of ours: nothing we may free */
    if (ch == NULL) {
        hop__msg_free(m); /* its record, if any, stays unconsumed */
        return HOP_INVALID;
    }
    pthread_mutex_lock(&ch->lock);
    hop__hold_end(ch, m);
    if (ch->closed) {
        if (m->flight)
            hop__flight_drop(ch, m->flight); /* close writes its record again */
        pthread_mutex_unlock(&ch->lock);
        hop__msg_free(m);
        return HOP_CLOSED;
    }
    if (out_at_purge(ch, m)) {
        pthread_mutex_unlock(&ch->lock);
        drop_purged(m);
        return HOP_OK;
    }
    /* judged now: once requeued, m may be taken and freed at any time */
    hop_err err = len == m->len ? HOP_OK : HOP_INVALID;
    requeued_unlock(ch, m);
    return err;
}

bool hop__recv_drop_purged(hop_channel *ch, void *data)
{
    hop__msg *m = hop__msg_of(data);
    pthread_mutex_lock(&ch->lock);
    bool out = out_at_purge(ch, m);
    if (out)
        hop__hold_end(ch, m);
    pthread_mutex_unlock(&ch->lock);
    if (out)
        drop_purged(m);
    return out;
}

hop_err hop__recv_return(hop_channel *ch, const void *data, size_t len)
{
    hop__msg *m = hop__msg_copy(data, len);
    if (m == NULL)
        return HOP_NOMEM;
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        hop__msg_free(m);
        return HOP_CLOSED;
    }
    take_order_stamp(ch, m); /* behind those given back before it */
    requeued_unlock(ch, m);
    return HOP_OK;
}

void hop__recv_close(hop_channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->closed = true;
    pthread_cond_broadcast(&ch->readable);
    hop_waiter *w = ch->waiters_head;
    ch->waiters_head = ch->waiters_tail = NULL;
    ch->waiters = 0;
    for (hop_waiter *x = w; x; x = x->next)
        x->armed = false;
    while (ch->inside > 0)
        pthread_cond_wait(&ch->drained, &ch->lock);
    pthread_mutex_unlock(&ch->lock);

    while (w) {
        hop_waiter *next = w->next; /* w may be freed by its callback */
        w->fn(w->arg, HOP_CLOSED, NULL, 0);
        w = next;
    }
}
