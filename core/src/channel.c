/* channel.c - a hopper channel's life: open (with the recovery of its
 * directory, recover.c), close (what memory holds goes to disk,
 * persist.c), its statistics, and removing an empty one. What happens in
 * between is in send.c, recv.c and flight.c; the state they share, and the
 * order of its locks, in channel_state.h.
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
 * (durable: after its sync, see group_commit.c). Readers never read past a
 * file's published size, so they never see a record being written or not
 * synced.
 */
#include "channel.h"

#include "alloc.h"
#include "channel_state.h"
#include "disk.h"
#include "flight.h"
#include "group_commit.h"
#include "io.h"
#include "journal.h"
#include "persist.h"
#include "recover.h"
#include "recv.h"
#include "schedule.h"
#include "schedule_open.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

const char *hop_channel_name(const hop_channel *ch)
{
    return ch ? ch->name : NULL;
}

/* ---- opening and closing ---- */

/* The locks and conditions of ch; condition waits time out on the
 * monotonic clock. */
static bool locks_init(hop_channel *ch)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return false;
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    bool ok = pthread_mutex_init(&ch->write_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->read_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->journal_lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->commit.lock, NULL) == 0;
    ok = ok && pthread_mutex_init(&ch->lock, NULL) == 0;
    ok = ok && pthread_cond_init(&ch->readable, &attr) == 0;
    ok = ok && pthread_cond_init(&ch->drained, &attr) == 0;
    ok = ok && pthread_cond_init(&ch->commit.settled, &attr) == 0;
    ok = ok && pthread_cond_init(&ch->commit.arrived, &attr) == 0;
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
    ch->mem.budget = limits->budget;
    hop__disk_init(&ch->disk, &ch->limits, ch->name);
    if (!locks_init(ch)) {
        hop__free(ch);
        return HOP_NOMEM;
    }
    if (limits->durable && hop__group_commit_open(ch, hop__recv_published) != HOP_OK) {
        hop__channel_abandon(ch);
        return HOP_NOMEM;
    }
    if (data_dir != NULL && data_dir[0] != '\0') {
        hop_err err = hop__recover_open(ch, data_dir);
        if (err != HOP_OK) {
            int saved = errno;
            hop__channel_abandon(ch);
            errno = saved;
            return err;
        }
        err = hop__schedule_open(ch);
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

/* Stop everything running on ch: it is closed to every call, blocked
 * receivers and armed waiters are woken with HOP_CLOSED, receive calls
 * still inside are waited for, and every durable send is settled. */
static void shut(hop_channel *ch)
{
    hop__schedule_close(ch); /* no delayed message is handed on any more */
    hop__recv_close(ch);
    hop__group_commit_close(ch); /* every hop_send_async() callback has run */
}

/* Free ch and what it holds in memory; its directory is left as it is. */
static void release(hop_channel *ch)
{
    hop__flight_release_all(ch);
    hop__membuf_release(&ch->mem);
    if (ch->journal_fd >= 0)
        close(ch->journal_fd);
    hop__disk_release(&ch->disk);
    pthread_cond_destroy(&ch->readable);
    pthread_cond_destroy(&ch->drained);
    pthread_cond_destroy(&ch->commit.settled);
    pthread_cond_destroy(&ch->commit.arrived);
    pthread_mutex_destroy(&ch->lock);
    pthread_mutex_destroy(&ch->commit.lock);
    pthread_mutex_destroy(&ch->journal_lock);
    pthread_mutex_destroy(&ch->read_lock);
    pthread_mutex_destroy(&ch->write_lock);
    hop__free(ch);
}

void hop_channel_shut(hop_channel *ch)
{
    if (ch != NULL)
        shut(ch);
}

hop_err hop_channel_close(hop_channel *ch)
{
    if (ch == NULL)
        return HOP_OK;
    shut(ch);
    hop_err err = ch->disk.dirfd >= 0 ? hop__persist_close(ch) : HOP_OK;
    int saved = errno;
    release(ch);
    errno = saved;
    return err;
}

void hop__channel_abandon(hop_channel *ch)
{
    if (ch == NULL)
        return;
    int saved = errno;
    shut(ch);
    release(ch);
    errno = saved;
}

void hop_channel_stats(hop_channel *ch, hop_stats *s)
{
    if (ch == NULL || s == NULL)
        return;
    uint64_t delayed_corrupt;
    hop__schedule_stats(ch, &s->delayed, &s->delayed_bytes, &delayed_corrupt);
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
    s->records_corrupt_total = ch->disk.records_corrupt + delayed_corrupt;
    s->in_flight = ch->in_flight;
    s->held = ch->held;
    s->held_bytes = ch->held_bytes;
    s->recovered_total = ch->recovered_total;
    s->syncs_total = ch->syncs_total;
    pthread_mutex_unlock(&ch->lock);
}

hop_err hop_channel_remove(const char *data_dir, const char *name)
{
    if (data_dir == NULL || data_dir[0] == '\0' || !hop_name_valid(name))
        return HOP_INVALID;
    int top = open(data_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (top < 0)
        return errno == ENOENT ? HOP_OK : HOP_IO;
    struct stat st;
    if (fstatat(top, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        int saved = errno;
        close(top);
        errno = saved;
        return saved == ENOENT ? HOP_OK : HOP_IO;
    }
    hop_channel *ch;
    hop_err err = hop_channel_open(data_dir, name, NULL, &ch);
    if (err != HOP_OK) {
        int saved = errno;
        close(top);
        errno = saved;
        return err;
    }
    hop_stats s;
    hop_channel_stats(ch, &s);
    if (s.messages > 0 || s.delayed > 0) {
        hop_channel_close(ch);
        close(top);
        return HOP_INVALID;
    }
    /* Holding its lock: the journal (it says nothing now), then the
     * directory, which fails if anything else is in it. */
    int saved = 0;
    if (hop__io_current->unlinkat(ch->disk.dirfd, HOP__JOURNAL_NAME, 0) != 0 && errno != ENOENT) {
        saved = errno;
        err = HOP_IO;
    } else if (unlinkat(top, name, AT_REMOVEDIR) != 0) {
        saved = errno == EEXIST ? ENOTEMPTY : errno;
        err = HOP_IO;
    }
    hop__channel_abandon(ch); /* nothing is left to write */
    close(top);
    errno = saved;
    return err;
}
