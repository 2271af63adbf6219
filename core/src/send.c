/* send.c - putting messages into a channel: hop_send() and its batch and
 * durable forms. A send goes to memory while the disk part is empty and
 * memory has room (the fast path: one allocation, one lock); otherwise
 * its record is appended to the queue files through disk.c and published
 * at once, or, durable, queued for the sync that publishes it
 * (group_commit.c). */
#include "channel_state.h"

#include "alloc.h"
#include "disk.h"
#include "group_commit.h"
#include "io.h"
#include "log.h"
#include "recv.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* True if messages costing cost may go to memory now: the channel's memory
 * has room and the shared budget (if any) gave it; the caller then pushes
 * them (or gives the cost back to the budget). Never for a durable channel:
 * its sends must reach a queue file (and its sync). ch->lock held. */
static bool memory_fits_bytes(hop_channel *ch, size_t cost)
{
    size_t used = ch->mem.bytes + ch->held_bytes;
    return !ch->limits.durable && hop__disk_empty(&ch->disk) && cost <= ch->limits.memory_bytes &&
           used <= ch->limits.memory_bytes - cost && hop__budget_reserve(ch->mem.budget, cost);
}

static bool memory_fits(hop_channel *ch, size_t len)
{
    return memory_fits_bytes(ch, hop__message_cost(len));
}

/* n sends were stored where receivers find them: count them and wake
 * receivers; ch->lock (held) is dropped, then armed waiters are served. */
static inline void sent_unlock(hop_channel *ch, size_t n)
{
    ch->sent_total += n;
    bool serve = hop__recv_announce(ch, n);
    pthread_mutex_unlock(&ch->lock);
    if (serve)
        hop__recv_dispatch(ch);
}

/* Plan a run of appends. Called with write_lock and ch->lock held; on
 * HOP_FULL or HOP_NOSPACE returns with both dropped. */
static hop_err append_plan(hop_channel *ch, const hop_buf *msgs, size_t n, hop__disk_run *run)
{
    hop_err err = hop__disk_append_plan(&ch->disk, msgs, n, run);
    if (err != HOP_OK) {
        if (err == HOP_FULL)
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
    hop_err err = append_plan(ch, msgs, n, &run);
    if (err != HOP_OK)
        return err;
    pthread_mutex_unlock(&ch->lock);
    err = append_write(ch, &run, msgs, n, NULL);
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
 * say how it went). *next: whether the caller must start a round
 * (hop__group_commit_start() or _lead()). Called with write_lock
 * and ch->lock held; returns with both dropped. */
static hop_err append_durable(hop_channel *ch, const hop_buf *msgs, size_t n, hop__sync_req *reqs,
                              hop__commit_next *next)
{
    hop__disk_run run;
    hop_err err = append_plan(ch, msgs, n, &run);
    if (err != HOP_OK)
        return err;
    pthread_mutex_unlock(&ch->lock);
    err = append_write(ch, &run, msgs, n, reqs);
    if (err != HOP_OK)
        return append_failed(ch, &run, err);
    pthread_mutex_lock(&ch->lock);
    hop__disk_append_stage(&ch->disk, &run);
    pthread_mutex_unlock(&ch->lock);
    *next = hop__group_commit_enqueue(ch, reqs, n); /* in the order of the appends */
    pthread_mutex_unlock(&ch->write_lock);
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
            hop__budget_release(ch->mem.budget, hop__message_cost(len));
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
    bool settled; /* blocking: hop__group_commit_notify() sets it */
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
    hop__group_commit_notify(g->ch, &g->settled); /* g goes as soon as it is seen */
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

/* Append msgs durably as one run. With fn, return at once (fn says how it
 * went), unless synced is set and no sync was under way: then the sync is
 * made here, *synced set and fn not called. Without fn, wait for the sync,
 * made here too if none was under way. */
static hop_err send_durable(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                            void *arg, bool *synced)
{
    if (synced)
        *synced = false;
    send_group *g = group_new(ch, n, fn, arg);
    if (g == NULL)
        return HOP_NOMEM;
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->lock);
    hop_err err = ch->closed ? HOP_CLOSED : HOP_OK;
    hop__commit_next next = HOP__COMMIT_JOINED;
    if (err != HOP_OK) {
        pthread_mutex_unlock(&ch->lock);
        pthread_mutex_unlock(&ch->write_lock);
    } else {
        err = append_durable(ch, msgs, n, g->reqs, &next);
    }
    if (err != HOP_OK) {
        int saved = errno;
        hop__free(g);
        errno = saved;
        return err;
    }
    bool lead = next == HOP__COMMIT_SOLO && (fn == NULL || synced != NULL);
    if (!lead) {
        if (next != HOP__COMMIT_JOINED)
            hop__group_commit_start(ch);
        if (fn)
            return HOP_OK; /* fn is called once synced */
    } else {
        /* Nobody else settles g before the round below (the channel is
         * handed to no sync thread): it may stop calling fn. */
        g->fn = NULL;
        hop__group_commit_lead(ch);
        if (synced)
            *synced = true;
    }
    hop__group_commit_wait(ch, &g->settled);
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
    return send_durable(ch, &(hop_buf){data, len}, 1, fn, arg, NULL);
}

hop_err hop_send_batch_async(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                             void *arg)
{
    size_t cost;
    if (ch == NULL || fn == NULL || n == 0 || msgs == NULL || !ch->limits.durable)
        return HOP_INVALID;
    hop_err err = batch_check(ch, msgs, n, &cost);
    return err == HOP_OK ? send_durable(ch, msgs, n, fn, arg, NULL) : err;
}

hop_err hop_send_batch_lead(hop_channel *ch, const hop_buf *msgs, size_t n, hop_sent_fn fn,
                            void *arg, bool *synced)
{
    size_t cost;
    if (synced == NULL)
        return HOP_INVALID;
    *synced = false;
    if (ch == NULL || fn == NULL || n == 0 || msgs == NULL || !ch->limits.durable)
        return HOP_INVALID;
    hop_err err = batch_check(ch, msgs, n, &cost);
    return err == HOP_OK ? send_durable(ch, msgs, n, fn, arg, synced) : err;
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
        return send_durable(ch, msgs, n, NULL, NULL, NULL);

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
        return send_durable(ch, &(hop_buf){data, len}, 1, NULL, NULL, NULL);

    /* straight to disk when memory cannot take it: no copy made in vain */
    if (atomic_load_explicit(&ch->disk.busy, memory_order_relaxed) ||
        hop__message_cost(len) > ch->limits.memory_bytes)
        return send_to_disk(ch, data, len, NULL);

    hop__msg *m = hop__msg_copy(data, len);
    if (m == NULL)
        return HOP_NOMEM;
    pthread_mutex_lock(&ch->lock);
    if (ch->closed || !memory_fits(ch, len))
        return send_slow(ch, data, len, m);
    hop__membuf_push_tail(&ch->mem, m);
    sent_unlock(ch, 1);
    return HOP_OK;
}
