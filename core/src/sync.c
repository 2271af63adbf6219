/* sync.c - group commit of durable sends.
 *
 * A durable send appends its record under write_lock, queues a request on
 * the channel and waits here. The first sender to arrive while no sync runs
 * becomes the syncing sender: it takes every request queued so far, syncs
 * the files they wrote (and the directory, for a new file), publishes all
 * of their records at once and wakes their senders. Requests queued while
 * it syncs wait for the next round, which one of them runs. So N concurrent
 * senders share about two syncs, and a record is readable only once it is
 * on stable storage: a receiver never sees a message that a power failure
 * could take back.
 *
 * When a sync fails, what the kernel holds of the file can no longer be
 * trusted (after a failed fsync Linux may drop the dirty pages and report
 * success next time). So every record not yet synced fails, with HOP_IO,
 * and is cut off its file, which is sealed: later sends start a new file.
 */
#include "channel.h"

#include "io.h"
#include "log.h"

#include <errno.h>
#include <string.h>

/* The distinct files of a batch, oldest first: requests are queued in the
 * order their records were appended, so a file's requests are adjacent. */
#define FOR_EACH_FILE(batch, r)                                                                    \
    for (hop__sync_req *r = (batch); r; r = r->next)                                               \
        if (r->next == NULL || r->next->file != r->file)

static void settle(hop_channel *ch, hop__sync_req *batch, hop_err result, int err_no)
{
    pthread_mutex_lock(&ch->sync_lock);
    for (hop__sync_req *r = batch; r;) {
        hop__sync_req *next = r->next; /* r may go as soon as it is settled */
        r->result = result;
        r->err_no = err_no;
        r->settled = true;
        r = next;
    }
    pthread_cond_broadcast(&ch->synced);
    pthread_mutex_unlock(&ch->sync_lock);
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
 * queued since), cut them off their files and seal those files. */
static void fail_unsynced(hop_channel *ch, hop__sync_req *batch, int err_no)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->lock);
    hop__sync_req *rest = ch->sync_head;
    ch->sync_head = ch->sync_tail = NULL;
    if (batch) {
        hop__sync_req *last = batch;
        while (last->next)
            last = last->next;
        last->next = rest;
    } else {
        batch = rest;
    }
    size_t failed = 0;
    for (hop__sync_req *r = batch; r; r = r->next) {
        hop__qfile *f = r->file;
        if (f->written > f->size) {
            if (f->write_fd >= 0 && hop__io_current->ftruncate(f->write_fd, (off_t)f->size) != 0)
                hop__log(HOP_LOG_ERROR, ch->name, "cutting unsynced records off: %s",
                         strerror(errno)); /* the reader stops at size anyway */
            f->written = f->size;
        }
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
    settle(ch, batch, HOP_IO, err_no);
}

/* One round: sync what is queued and publish it. */
static void sync_round(hop_channel *ch)
{
    pthread_mutex_lock(&ch->write_lock);
    hop__sync_req *batch = ch->sync_head;
    ch->sync_head = ch->sync_tail = NULL;
    bool dir = false;
    for (hop__sync_req *r = batch; r; r = r->next) {
        if (r->file->dir_unsynced) {
            dir = true;
            r->file->dir_unsynced = false;
        }
    }
    pthread_mutex_unlock(&ch->write_lock);
    if (batch == NULL)
        return;

    /* The descriptors stay open: only a syncing sender closes those of
     * sealed files, and only one syncs at a time. */
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
        return;
    }

    int fds[16];
    size_t nfds = 0;
    pthread_mutex_lock(&ch->lock);
    bool serve = publish(ch, batch, fds, sizeof fds / sizeof fds[0], &nfds);
    pthread_mutex_unlock(&ch->lock);
    for (size_t i = 0; i < nfds; i++)
        hop__io_current->close(fds[i]);
    settle(ch, batch, HOP_OK, 0);
    if (serve)
        hop__channel_dispatch(ch);
}

hop_err hop__sync_wait(hop_channel *ch, hop__sync_req *req)
{
    pthread_mutex_lock(&ch->sync_lock);
    while (!req->settled) {
        if (ch->syncing) {
            pthread_cond_wait(&ch->synced, &ch->sync_lock);
            continue;
        }
        ch->syncing = true;
        pthread_mutex_unlock(&ch->sync_lock);
        sync_round(ch);
        pthread_mutex_lock(&ch->sync_lock);
        ch->syncing = false;
        pthread_cond_broadcast(&ch->synced);
    }
    hop_err result = req->result;
    pthread_mutex_unlock(&ch->sync_lock);
    return result;
}
