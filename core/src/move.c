/* move.c - hop_move(): messages taken from one channel go to the tail of
 * another in one step that a crash cannot split.
 *
 * The step is a rename. The messages are written, as a queue file, to a
 * stage in the directory of the channel they come from; an intent there
 * names the records of its queue files that they were read from. Then,
 * under the other channel's writer lock, the stage is numbered as that
 * channel's next file, synced and renamed into its directory, where it
 * joins the list as the newest file: the move has happened. Last the
 * records are consumed from the first channel, the journal synced, and
 * the intent removed. A crash before the rename leaves the stage where
 * it was (the next open removes it and the records stay); after it, the
 * intent without a stage makes the next open journal them as consumed
 * (move_file.c). Either way each record is in exactly one channel.
 *
 * Messages the first channel held only in memory are in no record: a
 * crash loses them before the rename, as it loses any message only in
 * memory, and they are safe in the other channel's queue file after it.
 *
 * Moves take a library-wide lock: they are rare (an operator's action),
 * and the names of the stage and the intent are fixed. */
#include "channel_state.h"

#include "alloc.h"
#include "group_commit.h"
#include "io.h"
#include "log.h"
#include "move_file.h"
#include "persist.h"
#include "record.h"
#include "recv.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static pthread_mutex_t moving = PTHREAD_MUTEX_INITIALIZER;

/* OUT: pos[0..*npos), the records the messages were read from, and
 * *bytes, what their queue file takes. HOP_INVALID if one is not a message
 * or was read from another channel. */
static hop_err records_of(hop_channel *from, void *const *msgs, size_t n, hop__move_pos *pos,
                          size_t *npos, uint64_t *bytes)
{
    *npos = 0;
    *bytes = HOP__FILE_HEADER_SIZE;
    hop_err err = HOP_OK;
    pthread_mutex_lock(&from->lock);
    for (size_t i = 0; i < n && err == HOP_OK; i++) {
        hop__msg *m = hop__msg_of(msgs[i]);
        if (m == NULL) {
            err = HOP_INVALID;
            break;
        }
        *bytes += HOP__RECORD_HEADER_SIZE + m->len;
        hop__flight *fl = m->flight;
        hop_channel *owner = fl ? __atomic_load_n(&fl->ch, __ATOMIC_ACQUIRE) : NULL;
        if (owner != NULL && owner != from)
            err = HOP_INVALID;
        else if (owner != NULL) /* not cut off by a purge: still a record of from */
            pos[(*npos)++] = (hop__move_pos){fl->file->seq, fl->off};
    }
    pthread_mutex_unlock(&from->lock);
    return err;
}

/* Write the stage: a queue file header (its number is set at the commit)
 * and a record for each message. OUT: *fd, open for writing. */
static hop_err stage_write(int dirfd, void *const *msgs, size_t n, int *fd)
{
    *fd = hop__io_current->openat(dirfd, HOP__MOVE_STAGE_NAME,
                                  O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (*fd < 0)
        return HOP_IO;
    unsigned char header[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(header, 0);
    struct iovec iov[2] = {{header, sizeof header}};
    uint64_t off = 0;
    if (hop__pwrite_all(*fd, iov, 1, off, sizeof header) != sizeof header)
        return HOP_IO;
    off += sizeof header;
    for (size_t i = 0; i < n; i++) {
        hop__msg *m = hop__msg_of(msgs[i]);
        unsigned char rec[HOP__RECORD_HEADER_SIZE];
        hop__record_header_encode(rec, m->data, (uint32_t)m->len);
        iov[0] = (struct iovec){rec, sizeof rec};
        iov[1] = (struct iovec){m->data, m->len};
        size_t total = sizeof rec + m->len;
        if (hop__pwrite_all(*fd, iov, 2, off, total) != total)
            return HOP_IO;
        off += total;
    }
    return HOP_OK;
}

/* Take to's writer and state locks once nothing is pending there: a
 * durable channel's records waiting for their sync are published later,
 * and must come before the moved ones. HOP_CLOSED: no lock held. */
static hop_err lock_idle(hop_channel *to)
{
    for (;;) {
        pthread_mutex_lock(&to->write_lock);
        pthread_mutex_lock(&to->lock);
        if (to->closed) {
            pthread_mutex_unlock(&to->lock);
            pthread_mutex_unlock(&to->write_lock);
            return HOP_CLOSED;
        }
        if (to->disk.pending == 0)
            return HOP_OK;
        pthread_mutex_unlock(&to->lock);
        pthread_mutex_unlock(&to->write_lock);
        hop__group_commit_wait_idle(to);
    }
}

/* The commit: number the stage (fd) as to's next file, sync it, rename it
 * into to's directory and sync both directories; to's receivers find its
 * n records from then on. Before the rename nothing changed on failure. */
static hop_err commit(hop_channel *from, hop_channel *to, int fd, uint64_t bytes, size_t n)
{
    hop__qfile *f = hop__calloc(1, sizeof *f);
    if (f == NULL)
        return HOP_NOMEM;
    hop_err err = lock_idle(to);
    uint64_t seq = 0;
    if (err == HOP_OK && (err = hop__disk_move_plan(&to->disk, bytes, &seq)) != HOP_OK) {
        if (err == HOP_FULL)
            to->rejected_full_total++;
        pthread_mutex_unlock(&to->lock);
        pthread_mutex_unlock(&to->write_lock);
    }
    if (err != HOP_OK) {
        hop__free(f);
        return err;
    }
    pthread_mutex_unlock(&to->lock);
    unsigned char header[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(header, seq);
    struct iovec iov = {header, sizeof header};
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    err = HOP_IO;
    if (hop__pwrite_all(fd, &iov, 1, 0, sizeof header) == sizeof header &&
        hop__io_current->fdatasync(fd) == 0 &&
        hop__io_current->renameat(from->disk.dirfd, HOP__MOVE_STAGE_NAME, to->disk.dirfd, name) ==
            0)
        err = HOP_OK;
    int saved = errno;
    pthread_mutex_lock(&to->lock);
    if (err != HOP_OK) {
        hop__disk_move_cancel(&to->disk, bytes);
        to->io_errors_total++;
        pthread_mutex_unlock(&to->lock);
        pthread_mutex_unlock(&to->write_lock);
        hop__free(f);
        errno = saved;
        return err;
    }
    hop__disk_move_adopt(&to->disk, f, seq, bytes, n);
    to->sent_total += n;
    bool serve = hop__recv_announce(to, n);
    pthread_mutex_unlock(&to->lock);
    /* Both entries must be on disk before from's journal says the records
     * are consumed; if a sync fails the move has happened all the same. */
    if (hop__io_current->fsync(to->disk.dirfd) != 0 ||
        hop__io_current->fsync(from->disk.dirfd) != 0)
        hop__log(HOP_LOG_ERROR, to->name, "move: cannot sync the directories: %s", strerror(errno));
    pthread_mutex_unlock(&to->write_lock);
    if (serve)
        hop__recv_dispatch(to);
    return HOP_OK;
}

/* The move happened: consume the messages from from, sync its journal,
 * and remove the intent. If the journal could not say so, the intent
 * stays for the next open, and from takes no other move meanwhile. */
static void settle(hop_channel *from, void *const *msgs, size_t n, size_t npos)
{
    pthread_mutex_lock(&from->lock);
    uint64_t errors = from->io_errors_total;
    pthread_mutex_unlock(&from->lock);
    for (size_t i = 0; i < n; i++)
        hop_free(msgs[i]);
    if (npos == 0)
        return;
    pthread_mutex_lock(&from->lock);
    bool failed = from->io_errors_total != errors; /* a journal append failed (logged) */
    pthread_mutex_unlock(&from->lock);
    if (!failed && hop__persist_sync(from) == HOP_OK &&
        hop__move_forget(from->disk.dirfd) == HOP_OK)
        return;
    hop__log(HOP_LOG_ERROR, from->name,
             "move: its records are not journalled as consumed; the next open does it, and "
             "until then this channel moves nothing");
    from->move_stuck = true;
}

hop_err hop_move(hop_channel *from, hop_channel *to, void *const *msgs, size_t n)
{
    if (from == NULL || to == NULL || from == to || msgs == NULL || n == 0 || n > HOP_MOVE_MAX ||
        from->disk.dirfd < 0 || to->disk.dirfd < 0)
        return HOP_INVALID;
    hop__move_pos *pos = hop__calloc(n, sizeof *pos);
    if (pos == NULL)
        return HOP_NOMEM;
    size_t npos;
    uint64_t bytes;
    hop_err err = records_of(from, msgs, n, pos, &npos, &bytes);
    pthread_mutex_lock(&moving);
    int fd = -1;
    if (err == HOP_OK && from->move_stuck) {
        errno = EIO;
        err = HOP_IO;
    }
    if (err == HOP_OK)
        err = stage_write(from->disk.dirfd, msgs, n, &fd);
    if (err == HOP_OK && npos > 0)
        err = hop__move_intent_write(from->disk.dirfd, pos, npos);
    if (err == HOP_OK)
        err = commit(from, to, fd, bytes, n);
    int saved = errno;
    if (fd >= 0)
        hop__io_current->close(fd);
    if (err == HOP_OK)
        settle(from, msgs, n, npos);
    else if (err != HOP_INVALID && hop__move_forget(from->disk.dirfd) != HOP_OK)
        hop__log(HOP_LOG_ERROR, from->name, "move: cannot remove its stage: %s", strerror(errno));
    pthread_mutex_unlock(&moving);
    hop__free(pos);
    if (err != HOP_OK && err != HOP_INVALID)
        hop__log(HOP_LOG_WARN, from->name, "move to %s: %s", to->name, hop_strerror(err));
    errno = saved;
    return err;
}
