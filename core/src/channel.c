/* channel.c - a hopper channel: the in-memory FIFO, the queue files that
 * take its overflow, the receivers waiting on it, and the rules that keep
 * all three in one strict order. The struct and the lock order are in
 * channel.h; durable syncing is in sync.c, everything that survives a
 * restart (recovery, the journal of consumed records, close) in persist.c.
 *
 * Order. The messages of a channel are, oldest first: those in memory, then
 * those in queue files (oldest file first). A send goes to memory only while
 * the disk part is empty (no unread record, no send writing one), memory
 * has room and the channel is not durable; otherwise it is appended to the
 * newest queue file. Receivers take from memory first, then from disk.
 * hop_requeue() puts a message back in front of memory. So no message
 * overtakes an older one.
 *
 * Consuming. A message from memory is the receiver's once handed out. A
 * record read from a queue file is "in flight" until the receiver
 * hop_free()s it: only then is it written to the journal as consumed, and
 * only when every record of a file is consumed is the file removed. So a
 * crash while a message is being delivered brings it back after a restart.
 *
 * A sender to memory takes only `lock`; a sender to disk reserves its place
 * under `lock`, writes under `write_lock` alone, then publishes under `lock`
 * (durable: after its sync, see sync.c). Readers never read past a file's
 * published size, so they never see a record being written or not synced.
 */
#include "channel.h"

#include "alloc.h"
#include "flight.h"
#include "io.h"
#include "persist.h"
#include "log.h"
#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

const char *hop_channel_name(const hop_channel *ch)
{
    return ch ? ch->name : NULL;
}

/* ---- opening and closing ---- */

static bool sync_init(hop_channel *ch)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&ch->write_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->read_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->journal_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->sync_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->lock, NULL) == 0;
    ok = ok && pthread_cond_init(&ch->readable, &attr) == 0;
    ok = ok && pthread_cond_init(&ch->drained, &attr) == 0;
    ok = ok && pthread_cond_init(&ch->synced, &attr) == 0;
    pthread_condattr_destroy(&attr);
    return ok; /* glibc's init cannot fail for these attributes */
}

hop_err hop_channel_open(const char *data_dir, const char *name, const hop_limits *limits,
                         hop_channel **out)
{
    hop_limits defaults;
    if (limits == NULL) {
        hop_limits_default(&defaults);
        limits = &defaults;
    }
    if (out == NULL || !hop_name_valid(name) || hop_limits_check(limits) != HOP_OK)
        return HOP_INVALID;
    if (limits->max_disk_files > 0 && (data_dir == NULL || data_dir[0] == '\0'))
        return HOP_INVALID;

    hop_channel *ch = hop__calloc(1, sizeof *ch);
    if (ch == NULL)
        return HOP_NOMEM;
    strcpy(ch->name, name);
    ch->limits = *limits;
    ch->journal_fd = -1;
    hop__membuf_init(&ch->mem);
    hop__disk_init(&ch->disk, &ch->limits, ch->name);
    if (!sync_init(ch)) {
        hop__free(ch);
        return HOP_NOMEM;
    }
    if (limits->durable) {
        if (hop__syncer_acquire() != HOP_OK) {
            hop__channel_abandon(ch);
            return HOP_NOMEM;
        }
        ch->syncer = true;
    }
    if (data_dir != NULL && data_dir[0] != '\0') {
        hop_err err = hop__persist_open(ch, data_dir);
        if (err != HOP_OK) {
            int saved = errno;
            hop__channel_abandon(ch);
            errno = saved;
            return err;
        }
    }
    *out = ch;
    return HOP_OK;
}

/* Close without writing anything (abandon) or as hop_channel_close() says. */
static hop_err close_channel(hop_channel *ch, bool abandon)
{
    if (ch == NULL)
        return HOP_OK;
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
    if (ch->syncer) {
        hop__sync_quiesce(ch); /* every hop_send_async() callback has run */
        hop__syncer_release();
    }

    hop_err err = HOP_OK;
    if (ch->disk.dirfd >= 0 && !abandon)
        err = hop__persist_close(ch);
    int saved = errno;
    hop__flight_release_all(ch);
    hop__membuf_release(&ch->mem);
    if (ch->journal_fd >= 0)
        close(ch->journal_fd);
    hop__disk_release(&ch->disk);
    pthread_cond_destroy(&ch->readable);
    pthread_cond_destroy(&ch->drained);
    pthread_cond_destroy(&ch->synced);
    pthread_mutex_destroy(&ch->lock);
    pthread_mutex_destroy(&ch->sync_lock);
    pthread_mutex_destroy(&ch->journal_lock);
    pthread_mutex_destroy(&ch->read_lock);
    pthread_mutex_destroy(&ch->write_lock);
    hop__free(ch);
    errno = saved;
    return err;
}

hop_err hop_channel_close(hop_channel *ch)
{
    return close_channel(ch, false);
}

void hop__channel_abandon(hop_channel *ch)
{
    close_channel(ch, true);
}

/* ---- state helpers, all called with ch->lock held ---- */

/* True if messages costing cost may go to memory now. Never for a durable
 * channel: its sends must reach a queue file (and its sync). */
static bool memory_fits_bytes(const hop_channel *ch, size_t cost)
{
    size_t used = ch->mem.bytes + ch->held_bytes;
    return !ch->limits.durable && hop__disk_empty(&ch->disk) && cost <= ch->limits.memory_bytes &&
           used <= ch->limits.memory_bytes - cost;
}

static bool memory_fits(const hop_channel *ch, size_t len)
{
    return memory_fits_bytes(ch, hop__message_cost(len));
}

/* count messages became available: wake blocked receivers. Returns true if
 * armed waiters need serving (by dispatch, after the lock is dropped). */
bool hop__channel_announce(hop_channel *ch, size_t count)
{
    if (ch->blocked) {
        if (count == 1)
            pthread_cond_signal(&ch->readable);
        else
            pthread_cond_broadcast(&ch->readable);
    }
    return ch->waiters_head != NULL;
}

static hop_waiter *waiter_pop(hop_channel *ch)
{
    hop_waiter *w = ch->waiters_head;
    if (w == NULL)
        return NULL;
    ch->waiters_head = w->next;
    if (ch->waiters_head)
        ch->waiters_head->prev = NULL;
    else
        ch->waiters_tail = NULL;
    w->next = w->prev = NULL;
    w->armed = false;
    ch->waiters--;
    return w;
}

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

/* ---- receiving ---- */

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

/* Read the next disk record. Called and returns with ch->lock held, drops
 * it around the I/O. HOP_OK: OUT *out, in flight. HOP_TIMEOUT: nothing on
 * disk after all (another receiver took it). HOP_IO: a read failed (nothing
 * consumed) or a corrupt record was skipped. HOP_NOMEM. */
static hop_err take_from_disk(hop_channel *ch, hop__msg **out)
{
    pthread_mutex_unlock(&ch->lock);
    hop__flight *fl = hop__malloc(sizeof *fl); /* before anything is consumed */
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->lock);
    hop__disk_read rd = {.finished = NULL, .err_no = 0};
    hop_err err = take_reserve(ch, fl, &rd);
    if (err == HOP_OK) {
        pthread_mutex_unlock(&ch->lock);
        hop__disk_read_record(&ch->disk, &rd);
        pthread_mutex_lock(&ch->lock);
        err = hop__disk_read_commit(&ch->disk, &rd);
        if (err == HOP_OK) {
            take_commit(ch, fl, &rd);
            fl = NULL;
            *out = rd.msg;
        } else if (rd.result == HOP__READ_IO) {
            ch->io_errors_total++;
        }
    }
    bool idle = ch->disk.records == 0;
    pthread_mutex_unlock(&ch->lock);
    hop__free(fl);
    hop__disk_remove(&ch->disk, rd.finished);
    if (idle)
        hop__disk_reader_release(&ch->disk); /* no read-ahead memory while idle */
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_lock(&ch->lock);
    errno = rd.err_no;
    return err;
}

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

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
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
        deadline_after(&deadline, timeout_ms);
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

void hop__channel_dispatch(hop_channel *ch)
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
        w->ch = ch;
        w->armed = true;
        w->next = NULL;
        w->prev = ch->waiters_tail;
        if (ch->waiters_tail)
            ch->waiters_tail->next = w;
        else
            ch->waiters_head = w;
        ch->waiters_tail = w;
        ch->waiters++;
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
    if (w == NULL || w->ch == NULL)
        return false;
    hop_channel *ch = w->ch;
    pthread_mutex_lock(&ch->lock);
    bool was_armed = w->armed;
    if (was_armed) {
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
    pthread_mutex_unlock(&ch->lock);
    return was_armed;
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
    /* judged now: once requeued, m may be taken and freed at any time */
    hop_err err = len == m->len ? HOP_OK : HOP_INVALID;
    memory_requeue(ch, m);
    ch->requeued_total++;
    bool serve = hop__channel_announce(ch, 1);
    pthread_mutex_unlock(&ch->lock);
    if (serve)
        hop__channel_dispatch(ch);
    return err;
}

/* ---- sending ---- */

/* n sends were stored where receivers find them: count them and wake
 * receivers; ch->lock (held) is dropped, then armed waiters are served. */
static inline void sent_unlock(hop_channel *ch, size_t n)
{
    ch->sent_total += n;
    bool serve = hop__channel_announce(ch, n);
    pthread_mutex_unlock(&ch->lock);
    if (serve)
        hop__channel_dispatch(ch);
}

/* Plan a run of appends. Called with write_lock and ch->lock held; on
 * HOP_FULL returns with both dropped. */
static hop_err append_plan(hop_channel *ch, const hop_buf *msgs, size_t n, hop__disk_run *run)
{
    hop_err err = hop__disk_append_plan(&ch->disk, msgs, n, run);
    if (err != HOP_OK) {
        ch->rejected_full_total++;
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->write_lock);
    }
    return err;
}

/* Write msgs[0..n) as the run: all, or (rolled back) none. reqs: durable,
 * one request a message, told where its record went; else NULL. Called with
 * write_lock held alone. */
static hop_err append_write(hop_channel *ch, hop__disk_run *run, const hop_buf *msgs, size_t n,
                            hop__sync_req *reqs)
{
    hop_err err = HOP_OK;
    for (size_t i = 0; i < n && err == HOP_OK; i++)
        err = hop__disk_append_write(&ch->disk, run, msgs[i].data, msgs[i].len,
                                     reqs ? &reqs[i].span : NULL);
    if (err != HOP_OK) {
        int saved = errno;
        hop__disk_append_roll_back(&ch->disk, run);
        errno = saved;
    }
    return err;
}

/* The run could not be written (it was rolled back): nothing was stored.
 * Called with write_lock held alone; returns with it dropped. */
static hop_err append_failed(hop_channel *ch, hop__disk_run *run, hop_err err)
{
    int saved = errno;
    pthread_mutex_lock(&ch->lock);
    int fd = hop__disk_append_cancel(&ch->disk, run);
    if (err == HOP_IO)
        ch->io_errors_total++;
    pthread_mutex_unlock(&ch->lock);
    pthread_mutex_unlock(&ch->write_lock);
    if (fd >= 0)
        hop__io_current->close(fd);
    if (err == HOP_IO)
        hop__log(HOP_LOG_ERROR, ch->name, "writing queue file: %s", strerror(saved));
    errno = saved;
    return err;
}

/* Append msgs[0..n) to the queue files as one run (in order, nothing else
 * between them, all or none) and publish them. Called with write_lock and
 * ch->lock held; returns with both dropped. */
static hop_err append_published(hop_channel *ch, const hop_buf *msgs, size_t n)
{
    hop__disk_run run;
    if (append_plan(ch, msgs, n, &run) != HOP_OK)
        return HOP_FULL;
    pthread_mutex_unlock(&ch->lock);
    hop_err err = append_write(ch, &run, msgs, n, NULL);
    if (err != HOP_OK)
        return append_failed(ch, &run, err);
    hop__disk_append_close_full(&ch->disk, &run);
    pthread_mutex_lock(&ch->lock);
    hop__disk_append_publish(&ch->disk, &run);
    pthread_mutex_unlock(&ch->write_lock);
    sent_unlock(ch, n);
    return HOP_OK;
}

/* Append msgs[0..n) as one run, durably: HOP_OK means the records are
 * written and reqs[0..n) queued for the sync that publishes them (their fn
 * say how it went). Called with write_lock and ch->lock held; returns with
 * both dropped. */
static hop_err append_durable(hop_channel *ch, const hop_buf *msgs, size_t n, hop__sync_req *reqs)
{
    hop__disk_run run;
    if (append_plan(ch, msgs, n, &run) != HOP_OK)
        return HOP_FULL;
    pthread_mutex_unlock(&ch->lock);
    hop_err err = append_write(ch, &run, msgs, n, reqs);
    if (err != HOP_OK)
        return append_failed(ch, &run, err);
    pthread_mutex_lock(&ch->lock);
    hop__disk_append_stage(&ch->disk, &run);
    pthread_mutex_unlock(&ch->lock);
    bool start = hop__sync_enqueue(ch, reqs, n); /* in the order of the appends */
    pthread_mutex_unlock(&ch->write_lock);
    if (start)
        hop__syncer_queue(ch);
    return HOP_OK;
}

/* Append data to the newest queue file, starting a new file when there is
 * none or the last one is sealed. m, if not NULL, is the caller's data
 * already copied for memory: used if memory has room after all, else
 * freed. */
static hop_err send_to_disk(hop_channel *ch, const void *data, size_t len, hop__msg *m)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->write_lock);
        hop__msg_free(m);
        return HOP_CLOSED;
    }
    if (memory_fits(ch, len)) { /* receivers drained everything meanwhile */
        if (m == NULL && (m = hop__msg_new(len)) == NULL) {
            pthread_mutex_unlock(&ch->lock);
            pthread_mutex_unlock(&ch->write_lock);
            return HOP_NOMEM;
        }
        if (len)
            memcpy(m->data, data, len);
        pthread_mutex_unlock(&ch->write_lock);
        hop__membuf_push_tail(&ch->mem, m);
        sent_unlock(ch, 1);
        return HOP_OK;
    }
    hop_err err = append_published(ch, &(hop_buf){data, len}, 1);
    int saved = errno;
    hop__msg_free(m);
    errno = saved;
    return err;
}

/* hop_send() when memory has no room (or the channel is closed). Called
 * with ch->lock held; returns without it. Takes m. */
static __attribute__((noinline)) hop_err send_slow(hop_channel *ch, const void *data, size_t len,
                                                   hop__msg *m)
{
    if (ch->closed) {
        pthread_mutex_unlock(&ch->lock);
        hop__msg_free(m);
        return HOP_CLOSED;
    }
    if (ch->limits.max_disk_files > 0) {
        pthread_mutex_unlock(&ch->lock);
        return send_to_disk(ch, data, len, m);
    }
    ch->rejected_full_total++;
    pthread_mutex_unlock(&ch->lock);
    hop__msg_free(m);
    return HOP_FULL;
}

/* Durable sends of one call (hop_send(), hop_send_async(), a batch): one
 * sync request a message, settled together. Their requests were queued
 * together, so one sync round settles them all, on one thread, one after
 * another: `remaining` needs no lock. */
typedef struct send_group {
    hop_channel *ch;
    size_t remaining;
    hop_err err; /* the first failure, or HOP_OK */
    int err_no;
    hop_sent_fn fn; /* hop_send_async(): told, then the group is freed */
    void *arg;
    bool settled; /* blocking: under ch->sync_lock */
    hop__sync_req reqs[];
} send_group;

static void group_req_done(void *arg, hop_err err, int err_no)
{
    send_group *g = arg;
    if (err != HOP_OK && g->err == HOP_OK) {
        g->err = err;
        g->err_no = err_no;
    }
    if (--g->remaining > 0)
        return;
    if (g->fn) {
        g->fn(g->arg, g->err, g->err_no);
        hop__free(g);
        return;
    }
    hop_channel *ch = g->ch; /* g goes as soon as settled is seen */
    pthread_mutex_lock(&ch->sync_lock);
    g->settled = true;
    pthread_cond_broadcast(&ch->synced);
    pthread_mutex_unlock(&ch->sync_lock);
}

static send_group *group_new(hop_channel *ch, size_t n, hop_sent_fn fn, void *arg)
{
    if (n > (SIZE_MAX - sizeof(send_group)) / sizeof(hop__sync_req))
        return NULL;
    send_group *g = hop__malloc(sizeof *g + n * sizeof g->reqs[0]);
    if (g == NULL)
        return NULL;
    *g = (send_group){.ch = ch, .remaining = n, .err = HOP_OK, .fn = fn, .arg = arg};
    for (size_t i = 0; i < n; i++)
        g->reqs[i] = (hop__sync_req){.fn = group_req_done, .arg = g};
    return g;
}

/* Append msgs durably as one run: with fn, return at once (fn says how it
 * went); without, wait for the sync. */
static hop_err send_durable(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                            void *arg)
{
    send_group *g = group_new(ch, n, fn, arg);
    if (g == NULL)
        return HOP_NOMEM;
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->lock);
    hop_err err = ch->closed ? HOP_CLOSED : HOP_OK;
    if (err != HOP_OK) {
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->write_lock);
    } else {
        err = append_durable(ch, msgs, n, g->reqs);
    }
    if (err != HOP_OK || fn) {
        if (err != HOP_OK) {
            int saved = errno;
            hop__free(g);
            errno = saved;
        }
        return err;
    }
    pthread_mutex_lock(&ch->sync_lock);
    while (!g->settled)
        pthread_cond_wait(&ch->synced, &ch->sync_lock);
    pthread_mutex_unlock(&ch->sync_lock);
    err = g->err;
    int err_no = g->err_no;
    hop__free(g);
    errno = err_no;
    return err;
}

/* Check a batch: OUT *cost, what all of it counts in memory. */
static hop_err batch_check(const hop_channel *ch, const hop_buf *msgs, size_t n, size_t *cost)
{
    *cost = 0;
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].data == NULL && msgs[i].len > 0)
            return HOP_INVALID;
        if (msgs[i].len > ch->limits.max_message_bytes)
            return HOP_TOO_BIG;
        size_t c = hop__message_cost(msgs[i].len);
        *cost = *cost > SIZE_MAX - c ? SIZE_MAX : *cost + c;
    }
    return HOP_OK;
}

hop_err hop_send_async(hop_channel *ch, const void *data, size_t len, hop_sent_fn fn, void *arg)
{
    if (ch == NULL || fn == NULL || (data == NULL && len > 0) || !ch->limits.durable)
        return HOP_INVALID;
    if (len > ch->limits.max_message_bytes)
        return HOP_TOO_BIG;
    return send_durable(ch, &(hop_buf){data, len}, 1, fn, arg);
}

hop_err hop_send_batch_async(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                             void *arg)
{
    size_t cost;
    if (ch == NULL || fn == NULL || n == 0 || msgs == NULL || !ch->limits.durable)
        return HOP_INVALID;
    hop_err err = batch_check(ch, msgs, n, &cost);
    return err == HOP_OK ? send_durable(ch, msgs, n, fn, arg) : err;
}

hop_err hop_send_batch(hop_channel *ch, const hop_buf *msgs, size_t n)
{
    size_t cost;
    if (ch == NULL || (msgs == NULL && n > 0))
        return HOP_INVALID;
    if (n == 0)
        return HOP_OK;
    hop_err err = batch_check(ch, msgs, n, &cost);
    if (err != HOP_OK)
        return err;
    if (ch->limits.durable)
        return send_durable(ch, msgs, n, NULL, NULL);

    /* all to memory if all fit there: copies made first, outside the lock */
    hop__membuf copies;
    hop__membuf_init(&copies);
    if (!atomic_load_explicit(&ch->disk.busy, memory_order_relaxed) &&
        cost <= ch->limits.memory_bytes) {
        for (size_t i = 0; i < n; i++) {
            hop__msg *m = hop__msg_new(msgs[i].len);
            if (m == NULL) {
                hop__membuf_release(&copies);
                return HOP_NOMEM;
            }
            if (msgs[i].len)
                memcpy(m->data, msgs[i].data, msgs[i].len);
            hop__membuf_push_tail(&copies, m);
        }
    }
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->lock);
    if (ch->closed) {
        err = HOP_CLOSED;
    } else if (copies.count == n && memory_fits_bytes(ch, cost)) {
        pthread_mutex_unlock(&ch->write_lock);
        hop__msg *m;
        while ((m = hop__membuf_pop_head(&copies)) != NULL)
            hop__membuf_push_tail(&ch->mem, m);
        sent_unlock(ch, n);
        return HOP_OK;
    } else if (ch->limits.max_disk_files == 0) {
        ch->rejected_full_total++;
        err = HOP_FULL;
    }
    if (err != HOP_OK) {
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->write_lock);
        hop__membuf_release(&copies);
        return err;
    }
    hop__membuf_release(&copies);
    return append_published(ch, msgs, n);
}

hop_err hop_send(hop_channel *ch, const void *data, size_t len)
{
    if (ch == NULL || (data == NULL && len > 0))
        return HOP_INVALID;
    if (len > ch->limits.max_message_bytes)
        return HOP_TOO_BIG;
    if (ch->limits.durable)
        return send_durable(ch, &(hop_buf){data, len}, 1, NULL, NULL);

    /* straight to disk when memory cannot take it: no copy made in vain */
    if (atomic_load_explicit(&ch->disk.busy, memory_order_relaxed) ||
        hop__message_cost(len) > ch->limits.memory_bytes)
        return send_to_disk(ch, data, len, NULL);

    hop__msg *m = hop__msg_new(len);
    if (m == NULL)
        return HOP_NOMEM;
    if (len)
        memcpy(m->data, data, len);
    pthread_mutex_lock(&ch->lock);
    if (ch->closed || !memory_fits(ch, len))
        return send_slow(ch, data, len, m);
    hop__membuf_push_tail(&ch->mem, m);
    sent_unlock(ch, 1);
    return HOP_OK;
}

/* ---- statistics ---- */

void hop_channel_stats(hop_channel *ch, hop_stats *s)
{
    if (ch == NULL || s == NULL)
        return;
    pthread_mutex_lock(&ch->lock);
    s->memory_messages = ch->mem.count;
    s->memory_bytes = ch->mem.bytes;
    s->disk_messages = ch->disk.records;
    s->messages = ch->mem.count + ch->disk.records;
    s->disk_bytes = (size_t)ch->disk.bytes;
    s->disk_files = ch->disk.files;
    s->waiting_receivers = ch->blocked + ch->waiters;
    s->sent_total = ch->sent_total;
    s->received_total = ch->received_total;
    s->requeued_total = ch->requeued_total;
    s->rejected_full_total = ch->rejected_full_total;
    s->io_errors_total = ch->io_errors_total;
    s->records_corrupt_total = ch->disk.records_corrupt;
    s->in_flight = ch->in_flight;
    s->held = ch->held;
    s->held_bytes = ch->held_bytes;
    s->recovered_total = ch->recovered_total;
    s->syncs_total = ch->syncs_total;
    pthread_mutex_unlock(&ch->lock);
}
