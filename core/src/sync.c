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
#include "channel_state.h"

#include "io.h"
#include "journal.h"
#include "log.h"
#include "recv.h"

#include <errno.h>
#include <string.h>

/* The distinct files of a batch, oldest first: requests are queued in the
 * order their records were appended, so a file's requests are adjacent. */
#define FOR_EACH_FILE(batch, r)                                                                    \
    for (hop__sync_req *r = (batch); r; r = r->next)                                               \
        if (r->next == NULL || r->next->span.file != r->span.file)

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
        hop__disk_publish_synced(&ch->disk, &r->span);
        ch->sent_total++;
        n++;
    }
    *nfds = 0;
    FOR_EACH_FILE(batch, r)
    {
        int fd = *nfds < max ? hop__disk_take_synced_fd(r->span.file) : -1;
        if (fd >= 0)
            fds[(*nfds)++] = fd;
    }
    return hop__recv_announce(ch, n);
}

/* The requests queued behind batch (none is synced: the sync of batch
 * failed first) join it, to fail with it. write_lock held. */
static hop__sync_req *take_the_rest(hop_channel *ch, hop__sync_req *batch)
{
    pthread_mutex_lock(&ch->sync_lock);
    hop__sync_req *rest = ch->sync_head;
    ch->sync_head = ch->sync_tail = NULL;
    pthread_mutex_unlock(&ch->sync_lock);
    if (batch == NULL)
        return rest;
    hop__sync_req *last = batch;
    while (last->next)
        last = last->next;
    last->next = rest;
    return batch;
}

/* Cut the records of batch off their files; a request whose record could
 * not be cut off is marked kept. Under write_lock alone: the files'
 * unpublished ends are the writers' (and nobody writes now). */
static void cut_refused(hop_channel *ch, hop__sync_req *batch)
{
    hop__qfile *uncut = NULL;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->span.file;
        if (f->written > f->size)
            uncut = hop__disk_cut_unsynced(&ch->disk, f) ? NULL : f;
        r->kept = f == uncut;
    }
}

/* A record that could not be cut off is whole and valid in its file: mark
 * it consumed (a skip for the reader, DONE in the journal), or a restart
 * would bring back what its sender was told was not stored. read_lock held. */
static void mark_kept_consumed(hop_channel *ch, hop__sync_req *batch)
{
    pthread_mutex_lock(&ch->journal_lock);
    for (hop__sync_req *r = batch; r; r = r->next) {
        if (!r->kept)
            continue;
        hop__disk_span *s = &r->span;
        bool noted =
            hop__qfile_add_skip(s->file, s->start, s->end, true) && ch->journal_fd >= 0 &&
            hop__journal_append(ch->journal_fd, &ch->journal_size,
                                &(hop__jentry){HOP__J_DONE, s->file->seq, s->start}) == HOP_OK;
        if (!noted)
            hop__log(HOP_LOG_ERROR, ch->name,
                     "a refused record could not be marked consumed: it may come back after a "
                     "restart");
    }
    pthread_mutex_unlock(&ch->journal_lock);
}

/* A sync failed: fail every record not synced yet (batch and whatever was
 * queued since), cut them off their files and seal those files. */
static void fail_unsynced(hop_channel *ch, hop__sync_req *batch, int err_no)
{
    pthread_mutex_lock(&ch->write_lock);
    batch = take_the_rest(ch, batch);
    cut_refused(ch, batch);
    pthread_mutex_lock(&ch->read_lock);
    mark_kept_consumed(ch, batch);
    pthread_mutex_lock(&ch->lock);
    size_t failed = 0;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__disk_refuse(&ch->disk, r->span.file);
        ch->io_errors_total++;
        failed++;
    }
    /* a file of the failed ones that holds no record can go now */
    hop__qfile *done = NULL;
    hop__disk_detach_finished(&ch->disk, &done);
    pthread_mutex_unlock(&ch->lock);
    hop__disk_remove(&ch->disk, done);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    hop__log(HOP_LOG_ERROR, ch->name, "syncing queue file: %s; %zu message(s) refused",
             strerror(err_no), failed);
    settle(batch, HOP_IO, err_no);
}

bool hop__sync_enqueue(hop_channel *ch, hop__sync_req *reqs, size_t n)
{
    pthread_mutex_lock(&ch->sync_lock);
    for (size_t i = 0; i < n; i++) {
        reqs[i].next = NULL;
        if (ch->sync_tail)
            ch->sync_tail->next = &reqs[i];
        else
            ch->sync_head = &reqs[i];
        ch->sync_tail = &reqs[i];
    }
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
        if (r->span.file->dir_unsynced) {
            dir = true;
            r->span.file->dir_unsynced = false;
        }
    }
    pthread_mutex_unlock(&ch->write_lock);

    /* The descriptors stay open: only a sync thread closes those of sealed
     * files, and only one works on a channel at a time. */
    uint64_t syncs = 0;
    int err_no = 0;
    if (dir) {
        syncs++;
        if (hop__io_current->fsync(ch->disk.dirfd) != 0)
            err_no = errno;
    }
    FOR_EACH_FILE(batch, r)
    {
        if (err_no)
            break;
        syncs++;
        if (hop__io_current->fdatasync(r->span.file->write_fd) != 0)
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
        hop__recv_dispatch(ch);
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
