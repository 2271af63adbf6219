/* sync.c - group commit of durable sends.
 *
 * A durable send appends its record under write_lock and queues a request
 * on the channel; the first request of an idle channel hands the channel
 * to the library's sync threads (syncer.c). A sync thread takes every
 * request queued so far, syncs the files they wrote (and the directory,
 * for a new file), publishes all of their records at once and tells their
 * senders; requests queued meanwhile make the next round. So N concurrent
 * senders share about two syncs, whether they block in hop_send() or are
 * suspended HTTP requests, and a record is readable only once it is on
 * stable storage: a receiver never sees a message that a power failure
 * could take back.
 *
 * When a sync fails, what the kernel holds of the file can no longer be
 * trusted (after a failed fsync Linux may drop the dirty pages and report
 * success next time). So every record not yet synced fails, with HOP_IO,
 * and is cut off its file, which is sealed: later sends start a new file.
 */
#include "channel.h"

#include "io.h"
#include "journal.h"
#include "log.h"

#include <errno.h>
#include <string.h>

/* The distinct files of a batch, oldest first: requests are queued in the
 * order their records were appended, so a file's requests are adjacent. */
#define FOR_EACH_FILE(batch, r)                                                                    \
    for (hop__sync_req *r = (batch); r; r = r->next)                                               \
        if (r->next == NULL || r->next->file != r->file)

/* Tell the senders of batch how it went. Without locks: fn may free its
 * request, and may send again. */
static void settle(hop__sync_req *batch, hop_err result, int err_no)
{
    for (hop__sync_req *r = batch; r;) {
        hop__sync_req *next = r->next;
        r->fn(r->arg, result, err_no);
        r = next;
    }
}

/* Publish the synced records of batch. Returns whether waiters need
 * serving. Called with ch->lock held. OUT: fds of sealed files that are now
 * fully synced, to close (up to max, *nfds of them). */
static bool publish(hop_channel *ch, hop__sync_req *batch, int *fds, size_t max, size_t *nfds)
{
    size_t n = 0;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->file;
        ch->disk_bytes += r->end - f->size;
        f->size = r->end;
        f->records++;
        f->unsynced--;
        ch->disk_records++;
        ch->disk_pending--;
        ch->sent_total++;
        n++;
    }
    *nfds = 0;
    FOR_EACH_FILE(batch, r)
    {
        hop__qfile *f = r->file;
        if (f->sealed && f->unsynced == 0 && f->write_fd >= 0 && *nfds < max) {
            fds[(*nfds)++] = f->write_fd;
            f->write_fd = -1;
        }
    }
    hop__channel_update_disk_busy(ch);
    return hop__channel_announce(ch, n);
}

/* A sync failed: fail every record not synced yet (batch and whatever was
 * queued since), cut them off their files and seal those files. A record
 * that cannot be cut off is whole and valid in its file: it is marked
 * consumed (a skip, and the journal), or a restart would bring back what
 * its sender was told was not stored. */
static void fail_unsynced(hop_channel *ch, hop__sync_req *batch, int err_no)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->sync_lock);
    hop__sync_req *rest = ch->sync_head;
    ch->sync_head = ch->sync_tail = NULL;
    pthread_mutex_unlock(&ch->sync_lock);
    if (batch) {
        hop__sync_req *last = batch;
        while (last->next)
            last = last->next;
        last->next = rest;
    } else {
        batch = rest;
    }
    /* Cut, under write_lock alone: the files' unpublished ends are the
     * writers' (and nobody writes now). */
    hop__qfile *uncut = NULL;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->file;
        if (f->written > f->size) {
            uncut = NULL;
            if (f->write_fd < 0 || hop__io_current->ftruncate(f->write_fd, (off_t)f->size) != 0) {
                hop__log(HOP_LOG_ERROR, ch->name, "cannot cut refused records off: %s",
                         strerror(errno));
                uncut = f;
            }
            f->written = f->size;
        }
        r->start = r->file == uncut ? r->start : UINT64_MAX; /* UINT64_MAX: cut off */
    }
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->journal_lock);
    for (hop__sync_req *r = batch; r; r = r->next) {
        if (r->start == UINT64_MAX)
            continue;
        bool noted =
            hop__qfile_add_skip(r->file, r->start, r->end, true) && ch->journal_fd >= 0 &&
            hop__journal_append(ch->journal_fd, &ch->journal_size,
                                &(hop__jentry){HOP__J_DONE, r->file->seq, r->start}) == HOP_OK;
        if (!noted)
            hop__log(HOP_LOG_ERROR, ch->name,
                     "a refused record could not be marked consumed: it may come back after a "
                     "restart");
    }
    pthread_mutex_unlock(&ch->journal_lock);
    pthread_mutex_lock(&ch->lock);
    size_t failed = 0;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->file;
        f->unsynced--;
        if (!f->sealed) {
            f->sealed = true;
            if (ch->write_file == f)
                ch->write_file = NULL;
        }
        ch->disk_pending--;
        ch->io_errors_total++;
        failed++;
    }
    /* a file of the failed ones that holds no record can go now */
    hop__qfile *done = NULL;
    hop__channel_detach_finished(ch, &done);
    hop__channel_update_disk_busy(ch);
    pthread_mutex_unlock(&ch->lock);
    hop__channel_delete_files(ch, done);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    hop__log(HOP_LOG_ERROR, ch->name, "syncing queue file: %s; %zu message(s) refused",
             strerror(err_no), failed);
    settle(batch, HOP_IO, err_no);
}

bool hop__sync_enqueue(hop_channel *ch, hop__sync_req *req)
{
    req->next = NULL;
    pthread_mutex_lock(&ch->sync_lock);
    if (ch->sync_tail)
        ch->sync_tail->next = req;
    else
        ch->sync_head = req;
    ch->sync_tail = req;
    bool queue = ch->sync_state == HOP__SYNC_IDLE;
    if (queue)
        ch->sync_state = HOP__SYNC_QUEUED;
    pthread_mutex_unlock(&ch->sync_lock);
    return queue;
}

/* One round: sync what is queued and publish it. False if nothing was
 * queued: the channel is idle again. */
static bool sync_round(hop_channel *ch)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->sync_lock);
    hop__sync_req *batch = ch->sync_head;
    ch->sync_head = ch->sync_tail = NULL;
    if (batch == NULL) {
        /* Idle is the last word: a close waiting for it may free ch as
         * soon as sync_lock is free. */
        pthread_mutex_unlock(&ch->write_lock);
        ch->sync_state = HOP__SYNC_IDLE;
        pthread_cond_broadcast(&ch->synced);
        pthread_mutex_unlock(&ch->sync_lock);
        return false;
    }
    ch->sync_state = HOP__SYNC_RUNNING;
    pthread_mutex_unlock(&ch->sync_lock);
    bool dir = false;
    for (hop__sync_req *r = batch; r; r = r->next) {
        if (r->file->dir_unsynced) {
            dir = true;
            r->file->dir_unsynced = false;
        }
    }
    pthread_mutex_unlock(&ch->write_lock);

    /* The descriptors stay open: only a sync thread closes those of sealed
     * files, and only one works on a channel at a time. */
    uint64_t syncs = 0;
    int err_no = 0;
    if (dir) {
        syncs++;
        if (hop__io_current->fsync(ch->dirfd) != 0)
            err_no = errno;
    }
    FOR_EACH_FILE(batch, r)
    {
        if (err_no)
            break;
        syncs++;
        if (hop__io_current->fdatasync(r->file->write_fd) != 0)
            err_no = errno;
    }
    pthread_mutex_lock(&ch->lock);
    ch->syncs_total += syncs;
    pthread_mutex_unlock(&ch->lock);
    if (err_no) {
        fail_unsynced(ch, batch, err_no);
        return true;
    }

    int fds[16];
    size_t nfds = 0;
    pthread_mutex_lock(&ch->lock);
    bool serve = publish(ch, batch, fds, sizeof fds / sizeof fds[0], &nfds);
    pthread_mutex_unlock(&ch->lock);
    for (size_t i = 0; i < nfds; i++)
        hop__io_current->close(fds[i]);
    settle(batch, HOP_OK, 0);
    if (serve)
        hop__channel_dispatch(ch);
    return true;
}

void hop__sync_run(hop_channel *ch)
{
    while (sync_round(ch))
        ;
}

void hop__sync_quiesce(hop_channel *ch)
{
    pthread_mutex_lock(&ch->sync_lock);
    while (ch->sync_state != HOP__SYNC_IDLE)
        pthread_cond_wait(&ch->synced, &ch->sync_lock);
    pthread_mutex_unlock(&ch->sync_lock);
}
