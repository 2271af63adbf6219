/* purge.c - hop_purge(): every message of a channel dropped at once.
 *
 * Oldest first, so that a failure, or a crash, in the middle leaves the
 * newest messages as they were, in order:
 *   1. the delayed messages (schedule_purge.c), before the channel's locks
 *      are taken, as the schedule's lock comes first; what a hand-on in
 *      progress was handing on is in the channel by then, and goes next;
 *   2. under every lock of the channel: the messages in memory (those
 *      given back at the head, then the rest) are freed, and the flights,
 *      the records receivers have, are cut off as a close cuts them off
 *      (flight.c): hop_free() of one then only frees it; every message
 *      handed out so far is marked, so that a give-back drops it (recv.c);
 *   3. the queue files are removed from the oldest on, each taken off the
 *      list once it is gone from the directory; one that cannot be
 *      removed stops the purge there, itself and the newer ones intact;
 *      files whose records wait for a sync (durable sends under way) stay,
 *      their records published so far read to the end;
 *   4. the journal is rewritten from what is left: no entry names a
 *      removed file, the records cut off count as consumed. The rewrite
 *      syncs the directory, so the removals are durable when it returns.
 * A crash before 4 finds the old journal, which names files removed
 * (entries recovery ignores, as after any removal) and files left as they
 * were: the newest messages come back, in order, never one twice.
 *
 * Locks: write_lock, read_lock and journal_lock (in that order) for steps
 * 2 to 4, so that no record is appended, read, consumed or journalled
 * meanwhile; `lock` inside them while the state changes, never while a
 * file is removed or written. Receivers blocked in hop_recv() are not
 * woken: nothing arrived. */
#include "hopper/hopper.h"

#include "channel_state.h"
#include "disk.h"
#include "flight.h"
#include "log.h"
#include "persist.h"
#include "recv.h"
#include "schedule_purge.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

/* Step 2: take the messages in memory (OUT: a chain of them, to free once
 * ch->lock is dropped) and cut the flights off. Returns how many messages
 * memory held. ch->lock held, with read_lock. */
static size_t drop_memory_and_flights(hop_channel *ch, hop__msg **chain)
{
    size_t n = 0;
    hop__msg *m, *last = NULL;
    *chain = NULL;
    while ((m = hop__membuf_pop_head(&ch->mem)) != NULL) { /* its budget given back */
        if (last)
            last->next = m;
        else
            *chain = m;
        last = m;
        n++;
    }
    hop__flight_cut_off(ch); /* frees the flights of requeued messages in the chain */
    hop__disk_forget_in_flight(&ch->disk);
    hop__recv_mark_purge(ch);
    return n;
}

static void free_chain(hop__msg *m)
{
    while (m) {
        hop__msg *next = m->next;
        hop__msg_free(m); /* its flight, if any, is freed already */
        m = next;
    }
}

/* Step 3: remove the queue files, oldest first. OUT: *dropped grows by
 * the records dropped. HOP_IO (errno set, logged): a file could not be
 * removed; it and the newer ones stay as they were. write_lock, read_lock
 * and journal_lock held, ch->lock not. */
static hop_err remove_files(hop_channel *ch, uint64_t *dropped)
{
    for (;;) {
        pthread_mutex_lock(&ch->lock);
        hop__qfile *f = hop__disk_purge_candidate(&ch->disk);
        pthread_mutex_unlock(&ch->lock);
        if (f == NULL)
            break;
        if (hop__qfile_unlink(ch->disk.dirfd, f->seq) != 0 && errno != ENOENT) {
            int saved = errno;
            hop__log(HOP_LOG_ERROR, ch->name,
                     "purge: cannot remove queue file %020" PRIu64 ".hq: %s", f->seq,
                     strerror(saved));
            errno = saved;
            return HOP_IO;
        }
        pthread_mutex_lock(&ch->lock);
        *dropped += hop__disk_purge_detach(&ch->disk, f);
        pthread_mutex_unlock(&ch->lock);
        hop__disk_purge_forget(&ch->disk, f);
    }
    pthread_mutex_lock(&ch->lock);
    *dropped += hop__disk_purge_rest(&ch->disk);
    pthread_mutex_unlock(&ch->lock);
    return HOP_OK;
}

/* Steps 2 to 4. OUT: *dropped grows by the messages dropped. HOP_CLOSED
 * (nothing done), HOP_IO (errno set, counted), HOP_NOMEM (the journal
 * could not be rewritten). */
static hop_err purge_channel(hop_channel *ch, uint64_t *dropped)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->journal_lock);
    pthread_mutex_lock(&ch->lock);
    hop__msg *chain = NULL;
    hop_err err = ch->closed ? HOP_CLOSED : HOP_OK;
    if (err == HOP_OK)
        *dropped += drop_memory_and_flights(ch, &chain);
    pthread_mutex_unlock(&ch->lock);
    free_chain(chain);
    if (err == HOP_OK && ch->disk.dirfd >= 0) {
        err = remove_files(ch, dropped);
        int saved = errno;
        hop_err journal = hop__persist_rewrite_locked(ch); /* after a failure too */
        if (err == HOP_OK)
            err = journal;
        else
            errno = saved;
    }
    hop__disk_reader_release(&ch->disk); /* no read-ahead is left to hold */
    int saved = errno;
    if (err == HOP_IO) {
        pthread_mutex_lock(&ch->lock);
        ch->io_errors_total++;
        pthread_mutex_unlock(&ch->lock);
    }
    pthread_mutex_unlock(&ch->journal_lock);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    errno = saved;
    return err;
}

hop_err hop_purge(hop_channel *ch, uint64_t *purged)
{
    if (purged)
        *purged = 0;
    if (ch == NULL)
        return HOP_INVALID;
    uint64_t delayed = 0, dropped = 0;
    hop_err err = hop__schedule_purge(ch, &delayed);
    if (err == HOP_OK)
        err = purge_channel(ch, &dropped);
    int saved = errno;
    hop__log(HOP_LOG_INFO, ch->name, "purge: %" PRIu64 " message(s) dropped (%" PRIu64 " delayed)",
             delayed + dropped, delayed);
    if (purged)
        *purged = delayed + dropped;
    errno = saved;
    return err;
}
