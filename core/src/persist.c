/* persist.c - what of a channel survives a restart, while it runs and at
 * close: the journal of consumed records (its format is in journal.c), and
 * writing what memory holds to disk at close. The recovery at open is in
 * recover.c.
 *
 * Journal. A record consumed is appended to the journal as DONE; once the
 * appends have made it long, it is rewritten from the state (and at every
 * open and close): START for every file, DONE for records consumed out of
 * order beyond, START of the whole file for files that could not be
 * removed.
 *
 * Budget. The journal's size is counted on the disk side of the channel's
 * budget (disk.h) whatever its limit, since recording consumption must
 * never fail for the budget: journals may pass the limit by what appends
 * add between rewrites, at most JOURNAL_REWRITE_BYTES a channel while
 * rewrites succeed. The temporary file of a rewrite is not counted: it
 * exists only inside the rewrite. What a close writes from memory is
 * counted too, whatever the limit (the server keeps disk in reserve for
 * it), and given back with the rest when the channel is released.
 *
 * Close. The messages in memory are older than anything on disk, so they
 * go to a new file numbered just below the oldest one (a new channel
 * numbers its first file 2^62, leaving room below), which is synced before
 * the records it repeats (messages read from disk and requeued, or still
 * held by a receiver) are journalled as consumed. A crash in between can
 * only bring such a message twice, never lose it. The journal is rewritten
 * first, so no entry of an earlier file of that number is left to apply.
 */
#include "persist.h"

#include "alloc.h"
#include "array.h"
#include "disk.h"
#include "io.h"
#include "journal.h"
#include "log.h"
#include "queue_file.h"

#include <errno.h>
#include <string.h>

/* The journal is rewritten once appends have made it this long: 8192
 * records consumed from disk. It is also what a journal may pass the
 * budget's disk side by; a smaller value would bound that tighter, at the
 * price of a rewrite (a write, two syncs, a rename) that much more often. */
#define JOURNAL_REWRITE_BYTES (256 * 1024)
/* Numbers below the oldest file tried for the file written at close. */
#define SPILL_SEQ_TRIES 16

/* ---- the journal's entries from the channel's state ---- */

/* The entries that describe what is consumed now: START for every file
 * (records before the oldest one in flight, or before the read position),
 * START of the whole file for consumed files that could not be removed,
 * DONE for records consumed beyond those. OUT: *out (new), *n. Called with
 * every lock held, or single-threaded. */
static hop_err journal_entries(hop_channel *ch, hop__jentry **out, size_t *n)
{
    size_t cap = ch->disk.unremoved.count;
    for (hop__qfile *f = ch->disk.head; f; f = f->next)
        cap += 1 + f->skips.count;
    for (hop__flight *fl = ch->flights_head; fl; fl = fl->next)
        cap++;
    hop__jentry *e = hop__calloc(cap ? cap : 1, sizeof *e);
    if (e == NULL)
        return HOP_NOMEM;
    size_t k = 0;
    hop__flight *fl = ch->flights_head;
    for (hop__qfile *f = ch->disk.head; f; f = f->next) {
        uint64_t low = f->read_off;
        for (hop__flight *x = fl; x && x->file == f; x = x->next) {
            if (x->state != HOP__FLIGHT_DONE) {
                low = x->off;
                break;
            }
        }
        e[k++] = (hop__jentry){HOP__J_START, f->seq, low};
        for (; fl && fl->file == f; fl = fl->next)
            if (fl->state == HOP__FLIGHT_DONE && fl->off >= low)
                e[k++] = (hop__jentry){HOP__J_DONE, f->seq, fl->off};
        const hop__skip *skips = f->skips.items;
        for (size_t i = 0; i < f->skips.count; i++)
            if (skips[i].consumed && skips[i].off >= low)
                e[k++] = (hop__jentry){HOP__J_DONE, f->seq, skips[i].off};
    }
    const hop__unremoved *unremoved = ch->disk.unremoved.items;
    for (size_t i = 0; i < ch->disk.unremoved.count; i++)
        e[k++] = (hop__jentry){HOP__J_START, unremoved[i].seq, UINT64_MAX};
    *out = e;
    *n = k;
    return HOP_OK;
}

/* Replace the journal with entries (taken) and use the new one. With
 * journal_lock held, or single-threaded. */
static hop_err journal_replace(hop_channel *ch, hop__jentry *entries, size_t n)
{
    int fd;
    uint64_t size;
    hop_err err = hop__journal_rewrite(ch->disk.dirfd, entries, n, &fd, &size);
    int saved = errno;
    hop__free(entries);
    if (err == HOP_OK) {
        if (ch->journal_fd >= 0)
            hop__io_current->close(ch->journal_fd);
        hop__disk_count(&ch->disk, size);
        hop__disk_uncount(&ch->disk, ch->journal_size); /* the old one is gone */
        ch->journal_fd = fd;
        ch->journal_size = size;
    }
    errno = saved;
    return err;
}

hop_err hop__persist_rewrite(hop_channel *ch)
{
    hop__disk_retry_unremoved(&ch->disk);
    hop__jentry *entries;
    size_t n;
    hop_err err = journal_entries(ch, &entries, &n);
    return err == HOP_OK ? journal_replace(ch, entries, n) : err;
}

hop_err hop__persist_rewrite_locked(hop_channel *ch)
{
    hop__disk_retry_unremoved(&ch->disk);
    hop__jentry *entries = NULL;
    size_t n = 0;
    pthread_mutex_lock(&ch->lock);
    hop_err err = journal_entries(ch, &entries, &n);
    pthread_mutex_unlock(&ch->lock);
    return err == HOP_OK ? journal_replace(ch, entries, n) : err;
}

/* Rewrite the journal while the channel is in use, once appends made it
 * long. */
static void journal_rewrite_live(hop_channel *ch)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = HOP_OK;
    if (ch->journal_size >= JOURNAL_REWRITE_BYTES)
        err = hop__persist_rewrite_locked(ch);
    int saved = errno;
    pthread_mutex_unlock(&ch->journal_lock);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    if (err != HOP_OK) /* appends go on; it is tried again after the next one */
        hop__log(HOP_LOG_WARN, ch->name, "cannot rewrite the journal: %s",
                 err == HOP_IO ? strerror(saved) : hop_strerror(err));
}

/* Append DONE(seq, off) of c[0..n) to the journal, counted. journal_lock
 * held, or single-threaded. */
static hop_err note_done(hop_channel *ch, const hop__consumed *c, size_t n)
{
    if (ch->journal_fd < 0) {
        errno = EBADF;
        return HOP_IO;
    }
    hop__jentry e[HOP__JOURNAL_APPEND_MAX];
    for (size_t i = 0; i < n; i++)
        e[i] = (hop__jentry){HOP__J_DONE, c[i].seq, c[i].off};
    uint64_t before = ch->journal_size;
    hop_err err = hop__journal_append(ch->journal_fd, &ch->journal_size, e, n);
    hop__disk_count(&ch->disk, ch->journal_size - before);
    return err;
}

hop_err hop__persist_note_consumed(hop_channel *ch, uint64_t seq, uint64_t off)
{
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = note_done(ch, &(hop__consumed){seq, off}, 1);
    int saved = errno;
    pthread_mutex_unlock(&ch->journal_lock);
    errno = saved;
    return err;
}

void hop__persist_consumed(hop_channel *ch, const hop__consumed *c, size_t n)
{
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = note_done(ch, c, n);
    int saved = errno;
    bool rewrite = err == HOP_OK && ch->journal_size >= JOURNAL_REWRITE_BYTES;
    pthread_mutex_unlock(&ch->journal_lock);
    if (err != HOP_OK) {
        /* the message was delivered; after a restart it may come again */
        hop__log(HOP_LOG_ERROR, ch->name,
                 "journal: cannot note %zu consumed record(s) (they may come again after a "
                 "restart): %s",
                 n, strerror(saved));
        pthread_mutex_lock(&ch->lock);
        ch->io_errors_total += n;
        pthread_mutex_unlock(&ch->lock);
    }
    if (rewrite)
        journal_rewrite_live(ch);
}

hop_err hop__persist_sync(hop_channel *ch)
{
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = HOP_IO;
    if (ch->journal_fd < 0)
        errno = EBADF;
    else if (hop__io_current->fdatasync(ch->journal_fd) == 0)
        err = HOP_OK;
    pthread_mutex_unlock(&ch->journal_lock);
    return err;
}

/* ---- close: what memory holds goes to disk ---- */

/* True if fl's record is written again at close: a receiver still has its
 * message, or it was requeued to the closing channel (and freed). */
static bool written_again(const hop__flight *fl)
{
    return fl->state == HOP__FLIGHT_OUT || fl->state == HOP__FLIGHT_DROPPED;
}

/* The file of the close: numbered just below the oldest, so that it is
 * read first. OUT: *out. */
static hop_err spill_create(hop_channel *ch, hop__qfile **out)
{
    uint64_t seq = ch->disk.head ? ch->disk.head->seq - 1 : ch->disk.next_seq++;
    hop_err err = HOP_IO;
    for (int i = 0; i < SPILL_SEQ_TRIES && seq > 0; i++, seq--) {
        err = hop__qfile_create(ch->disk.dirfd, seq, out);
        if (err != HOP_IO || errno != EEXIST)
            break;
    }
    return err;
}

/* Append the records receivers still have to f, read again from their
 * files; the flights of those written go on *spilled (room reserved). One
 * that cannot be read again stays where it is. OUT: *written counts them. */
static hop_err spill_flights(hop_channel *ch, hop__qfile *f, hop__array *spilled, size_t *written)
{
    hop_err err = HOP_OK;
    for (hop__flight *fl = ch->flights_head; fl && err == HOP_OK; fl = fl->next) {
        if (!written_again(fl))
            continue;
        hop__msg *m = NULL;
        uint64_t next, end;
        bool torn;
        hop__read_result res =
            hop__qreader_read(&ch->disk.reader, ch->disk.dirfd, fl->file, fl->off, fl->file->size,
                              HOP_MAX_MESSAGE_BYTES, &m, &next);
        if (res != HOP__READ_OK) {
            hop__log(HOP_LOG_WARN, ch->name,
                     "a message held by a receiver at close could not be read again");
            continue;
        }
        err = hop__qfile_append(f, m->data, (uint32_t)m->len, &end, &torn);
        f->written = end;
        if (err == HOP_OK)
            hop__array_push(spilled, &fl, sizeof fl);
        (*written)++;
        hop__msg_free(m);
    }
    return err;
}

/* Write the records receivers still have (as if requeued: in front) and
 * the messages in memory to a new file below the oldest, and sync it.
 * OUT: *spilled, the flights written again (room for all reserved);
 * *written, how many messages. Single-threaded. */
static hop_err spill(hop_channel *ch, hop__array *spilled, size_t *written)
{
    *written = 0;
    hop__qfile *f = NULL;
    hop_err err = spill_create(ch, &f);
    if (err != HOP_OK)
        return err;
    /* held records first: they were older than anything in memory */
    err = spill_flights(ch, f, spilled, written);
    for (hop__msg *m = ch->mem.head; m && err == HOP_OK; m = m->next) {
        uint64_t end;
        bool torn;
        err = hop__qfile_append(f, m->data, (uint32_t)m->len, &end, &torn);
        f->written = end;
        (*written)++;
    }
    if (err == HOP_OK && hop__io_current->fdatasync(f->write_fd) != 0)
        err = HOP_IO;
    if (err == HOP_OK && hop__io_current->fsync(ch->disk.dirfd) != 0)
        err = HOP_IO;
    int saved = errno;
    if (err == HOP_OK)
        hop__disk_count(&ch->disk, f->written); /* whatever the limit */
    else
        hop__qfile_unlink(ch->disk.dirfd, f->seq);
    hop__qfile_free(f);
    errno = saved;
    return err;
}

/* The spilled records that repeat queue file records are consumed now,
 * in the order of the flights: those written again, and those requeued
 * (their messages were in memory). A failure here only makes them come
 * twice. */
static void journal_spilled(hop_channel *ch, const hop__array *spilled)
{
    hop__flight *const *again = spilled->items;
    size_t k = 0;
    for (hop__flight *fl = ch->flights_head; fl; fl = fl->next) {
        bool repeated = fl->state == HOP__FLIGHT_REQUEUED;
        if (k < spilled->count && again[k] == fl) {
            repeated = true;
            k++;
        }
        if (repeated)
            note_done(ch, &(hop__consumed){fl->file->seq, fl->off}, 1);
    }
}

hop_err hop__persist_close(hop_channel *ch)
{
    size_t held = 0;
    for (hop__flight *fl = ch->flights_head; fl; fl = fl->next)
        held += written_again(fl);
    hop_err err = hop__persist_rewrite(ch); /* before a file number is used again */
    if (err != HOP_OK) {
        int saved = errno;
        hop__log(HOP_LOG_ERROR, ch->name, "cannot rewrite the journal at close: %s",
                 err == HOP_IO ? strerror(saved) : hop_strerror(err));
        errno = saved;
    }
    if (ch->mem.count == 0 && held == 0)
        return err;

    hop__array spilled = {0};
    size_t written = 0;
    if (err == HOP_OK)
        err = hop__array_reserve(&spilled, held, sizeof(hop__flight *))
                  ? spill(ch, &spilled, &written)
                  : HOP_NOMEM;
    if (err != HOP_OK) {
        int saved = errno;
        size_t lost = 0; /* records requeued or held stay unconsumed in their files */
        for (hop__msg *m = ch->mem.head; m; m = m->next)
            lost += m->flight == NULL;
        hop__log(HOP_LOG_ERROR, ch->name,
                 "cannot write %zu message(s) from memory at close: %s; %zu of them lost",
                 ch->mem.count + held, strerror(saved), lost);
        hop__array_release(&spilled);
        errno = saved;
        return HOP_IO;
    }
    journal_spilled(ch, &spilled);
    hop__array_release(&spilled);
    hop__log(HOP_LOG_INFO, ch->name, "%zu message(s) written to disk at close", written);
    return HOP_OK;
}
