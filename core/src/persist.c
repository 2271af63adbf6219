/* persist.c - what of a channel survives a restart: the recovery of its
 * directory at open, the journal of consumed records while it runs, and
 * writing what memory holds to disk at close.
 *
 * Open. The channel directory is created if missing and locked (flock).
 * The journal (journal.c) says which records were consumed. Every queue
 * file of this format version is framed (record.c has the rules): a torn
 * tail is cut off, damaged ranges are skipped (logged, counted), and the
 * records neither consumed nor damaged are the channel's messages, read in
 * file number order. New sends go on appending to the newest file while it
 * has room; the others are sealed.
 * Files that are fully consumed are removed; anything else in the directory
 * (other names, other format versions) is left alone and logged. Then the
 * journal is rewritten to match.
 *
 * Close. The messages in memory are older than anything on disk, so they
 * go to a new file numbered just below the oldest one (a new channel
 * numbers its first file 2^62, leaving room below), which is synced before
 * the records it repeats (messages read from disk and given back, or still
 * held by a receiver) are journalled as consumed. A crash in between can
 * only bring such a message twice, never lose it. The journal is rewritten
 * first, so no entry of an earlier file of that number is left to apply.
 */
#include "persist.h"

#include "alloc.h"
#include "array.h"
#include "io.h"
#include "log.h"
#include "record.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* The number of a new channel's first queue file. */
#define FIRST_SEQ ((uint64_t)1 << 62)
/* The journal is rewritten once appends have made it this long. */
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
    const uint64_t *unremoved = ch->disk.unremoved.items;
    for (size_t i = 0; i < ch->disk.unremoved.count; i++)
        e[k++] = (hop__jentry){HOP__J_START, unremoved[i], UINT64_MAX};
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
        ch->journal_fd = fd;
        ch->journal_size = size;
    }
    errno = saved;
    return err;
}

/* Rewrite the journal from the state. Single-threaded. */
static hop_err journal_rewrite(hop_channel *ch)
{
    hop__disk_retry_unremoved(&ch->disk);
    hop__jentry *entries;
    size_t n;
    hop_err err = journal_entries(ch, &entries, &n);
    return err == HOP_OK ? journal_replace(ch, entries, n) : err;
}

/* Rewrite the journal while the channel is in use. write_lock, read_lock
 * and journal_lock keep records from being appended, read or consumed
 * meanwhile; `lock` is held only to read the state, so that memory traffic
 * does not wait for the I/O. */
static void journal_rewrite_live(hop_channel *ch)
{
    pthread_mutex_lock(&ch->write_lock);
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = HOP_OK;
    if (ch->journal_size >= JOURNAL_REWRITE_BYTES) {
        hop__disk_retry_unremoved(&ch->disk);
        hop__jentry *entries = NULL;
        size_t n = 0;
        pthread_mutex_lock(&ch->lock);
        err = journal_entries(ch, &entries, &n);
        pthread_mutex_unlock(&ch->lock);
        if (err == HOP_OK)
            err = journal_replace(ch, entries, n);
    }
    int saved = errno;
    pthread_mutex_unlock(&ch->journal_lock);
    pthread_mutex_unlock(&ch->read_lock);
    pthread_mutex_unlock(&ch->write_lock);
    if (err != HOP_OK) /* appends go on; it is tried again after the next one */
        hop__log(HOP_LOG_WARN, ch->name, "cannot rewrite the journal: %s",
                 err == HOP_IO ? strerror(saved) : hop_strerror(err));
}

/* Append DONE(seq, off) to the journal. journal_lock held. */
static hop_err note_done(hop_channel *ch, uint64_t seq, uint64_t off)
{
    if (ch->journal_fd < 0) {
        errno = EBADF;
        return HOP_IO;
    }
    hop__jentry e = {HOP__J_DONE, seq, off};
    return hop__journal_append(ch->journal_fd, &ch->journal_size, &e);
}

hop_err hop__persist_note_consumed(hop_channel *ch, uint64_t seq, uint64_t off)
{
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = note_done(ch, seq, off);
    int saved = errno;
    pthread_mutex_unlock(&ch->journal_lock);
    errno = saved;
    return err;
}

void hop__persist_consumed(hop_channel *ch, uint64_t seq, uint64_t off)
{
    pthread_mutex_lock(&ch->journal_lock);
    hop_err err = note_done(ch, seq, off);
    int saved = errno;
    bool rewrite = err == HOP_OK && ch->journal_size >= JOURNAL_REWRITE_BYTES;
    pthread_mutex_unlock(&ch->journal_lock);
    if (err != HOP_OK) {
        /* the message was delivered; after a restart it may come again */
        hop__log(HOP_LOG_ERROR, ch->name,
                 "journal: cannot note a consumed record (it may come again after a "
                 "restart): %s",
                 strerror(saved));
        pthread_mutex_lock(&ch->lock);
        ch->io_errors_total++;
        pthread_mutex_unlock(&ch->lock);
    }
    if (rewrite)
        journal_rewrite_live(ch);
}

/* ---- open: the directory and its recovery ---- */

/* Create dir (one level) if missing and open it. Returns the fd or -1. */
static int open_dir_at(int at, const char *path)
{
    if (mkdirat(at, path, 0700) != 0 && errno != EEXIST)
        return -1;
    return openat(at, path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* A queue file found in the directory. */
typedef struct found {
    uint64_t seq;
    int fd;
    uint64_t size;
} found;

typedef enum verdict {
    FILE_OURS,    /* a queue file of this version: recover it */
    FILE_EMPTY,   /* ours, cut short while being created: holds no record */
    FILE_FOREIGN, /* leave it alone */
    FILE_ERROR,   /* it cannot be read (errno set): the open fails */
} verdict;

/* Look at queue file name (number seq). OUT: *fd open for reading and
 * *size, when FILE_OURS. */
static verdict classify(hop_channel *ch, const char *name, uint64_t seq, int *fd, uint64_t *size)
{
    int rfd = hop__io_current->openat(ch->disk.dirfd, name, O_RDONLY | O_NOFOLLOW, 0);
    if (rfd < 0 && errno == ELOOP) {
        hop__log(HOP_LOG_WARN, ch->name, "%s is a symbolic link: left alone", name);
        return FILE_FOREIGN;
    }
    if (rfd < 0)
        return FILE_ERROR;
    struct stat st;
    unsigned char header[HOP__FILE_HEADER_SIZE], expect[HOP__FILE_HEADER_SIZE];
    hop__file_header_encode(expect, seq);
    ssize_t n = -1;
    if (fstat(rfd, &st) != 0) {
        n = -1;
    } else if (!S_ISREG(st.st_mode)) {
        hop__io_current->close(rfd);
        hop__log(HOP_LOG_WARN, ch->name, "%s is not a regular file: left alone", name);
        return FILE_FOREIGN;
    } else {
        do
            n = hop__io_current->pread(rfd, header, sizeof header, 0);
        while (n < 0 && errno == EINTR);
    }
    if (n < 0) {
        int saved = errno;
        hop__io_current->close(rfd);
        errno = saved;
        return FILE_ERROR;
    }
    if (n < (ssize_t)sizeof header && memcmp(header, expect, (size_t)n) == 0) {
        hop__io_current->close(rfd);
        return FILE_EMPTY; /* a crash while its header was written */
    }
    if (n == (ssize_t)sizeof header && memcmp(header, expect, sizeof header) == 0) {
        *fd = rfd;
        *size = (uint64_t)st.st_size;
        return FILE_OURS;
    }
    hop__io_current->close(rfd);
    if (n == (ssize_t)sizeof header && hop__file_header_other_version(header))
        hop__log(HOP_LOG_WARN, ch->name, "queue file %s is of another format version: left alone",
                 name);
    else
        hop__log(HOP_LOG_WARN, ch->name, "%s is not a queue file of this channel: left alone",
                 name);
    return FILE_FOREIGN;
}

static int by_seq(const void *a, const void *b)
{
    const found *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* The queue files of this version in the directory, by number. Removes
 * the ones cut short at creation. OUT: *out (new), *n, *max_seq (the
 * highest number seen, foreign files' too). */
static hop_err list_files(hop_channel *ch, found **out, size_t *n, uint64_t *max_seq)
{
    int fd = dup(ch->disk.dirfd);
    if (fd < 0)
        return HOP_IO;
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return HOP_IO;
    }
    hop__array list = {0};
    hop_err err = HOP_OK;
    *max_seq = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t seq;
        if (!hop__qfile_parse_name(e->d_name, &seq)) {
            if (e->d_name[0] != '.' && strcmp(e->d_name, HOP__JOURNAL_NAME) != 0)
                hop__log(HOP_LOG_WARN, ch->name, "unknown file %s: left alone", e->d_name);
            continue;
        }
        if (seq > *max_seq)
            *max_seq = seq; /* a foreign one's number is not reused either */
        int rfd = -1;
        uint64_t size = 0;
        verdict v = classify(ch, e->d_name, seq, &rfd, &size);
        if (v == FILE_EMPTY) {
            if (hop__qfile_unlink(ch->disk.dirfd, seq) == 0)
                hop__log(HOP_LOG_INFO, ch->name, "removed %s, cut short when it was created",
                         e->d_name);
            continue;
        }
        if (v == FILE_FOREIGN)
            continue;
        if (v == FILE_ERROR) {
            hop__log(HOP_LOG_ERROR, ch->name, "cannot read queue file %s: %s", e->d_name,
                     strerror(errno));
            err = HOP_IO;
            break;
        }
        found fo = {seq, rfd, size};
        if (!hop__array_push(&list, &fo, sizeof fo)) {
            hop__io_current->close(rfd);
            err = HOP_NOMEM;
            break;
        }
    }
    int saved = errno;
    closedir(d);
    errno = saved;
    found *files = list.items;
    if (err != HOP_OK) {
        for (size_t i = 0; i < list.count; i++)
            hop__io_current->close(files[i].fd);
        hop__array_release(&list);
        return err;
    }
    if (list.count)
        qsort(files, list.count, sizeof *files, by_seq);
    *out = files;
    *n = list.count;
    return HOP_OK;
}

/* What the framing of one file finds, given what the journal says. */
typedef struct framing {
    hop_channel *ch;
    uint64_t seq;
    uint64_t start;          /* records before this offset are consumed */
    const hop__jentry *done; /* this file's DONE entries, by offset */
    size_t ndone, done_next;
    uint64_t first;   /* the first unconsumed record, UINT64_MAX if none yet */
    size_t records;   /* unconsumed records */
    hop__array skips; /* hop__skip: the ranges beyond first */
    size_t gaps;
    bool nomem;
} framing;

static void add_skip(framing *fr, uint64_t off, uint64_t to, bool consumed)
{
    if (fr->first == UINT64_MAX)
        return; /* before the first unconsumed record: the read starts past it */
    hop__skip skip = {off, to, consumed};
    if (!hop__array_push(&fr->skips, &skip, sizeof skip))
        fr->nomem = true;
}

static void on_frame(void *arg, uint64_t off, uint64_t next, bool gap)
{
    framing *fr = arg;
    if (gap) {
        fr->gaps++;
        hop__log(HOP_LOG_ERROR, fr->ch->name,
                 "queue file %020" PRIu64 ".hq: %" PRIu64 " damaged byte(s) at offset %" PRIu64
                 " skipped",
                 fr->seq, next - off, off);
        add_skip(fr, off, next, false);
        return;
    }
    while (fr->done_next < fr->ndone && fr->done[fr->done_next].off < off)
        fr->done_next++;
    bool consumed =
        off < fr->start || (fr->done_next < fr->ndone && fr->done[fr->done_next].off == off);
    if (consumed) {
        add_skip(fr, off, next, true);
        return;
    }
    if (fr->first == UINT64_MAX)
        fr->first = off;
    fr->records++;
}

/* Recover file fo into the channel's list, or remove it if it holds
 * nothing unconsumed. Takes fo->fd. */
static hop_err recover_file(hop_channel *ch, const hop__jstate *js, found *fo)
{
    framing fr = {.ch = ch, .seq = fo->seq, .first = UINT64_MAX};
    fr.start = hop__journal_start_of(js, fo->seq);
    size_t i = 0;
    while (i < js->ndone && js->done[i].seq < fo->seq)
        i++;
    fr.done = js->ndone ? js->done + i : NULL; /* no journal: done is NULL, and NULL + 0 is UB */
    while (i < js->ndone && js->done[i].seq == fo->seq)
        i++, fr.ndone++;

    uint64_t valid_end = HOP__FILE_HEADER_SIZE;
    hop_err err = HOP_OK;
    if (fr.start != UINT64_MAX)
        err = hop__qfile_frame(fo->fd, HOP__FILE_HEADER_SIZE, fo->size, HOP_MAX_MESSAGE_BYTES,
                               on_frame, &fr, &valid_end);
    if (err == HOP_OK && fr.nomem)
        err = HOP_NOMEM;
    if (err != HOP_OK) {
        int saved = errno;
        hop__log(HOP_LOG_ERROR, ch->name, "reading queue file %020" PRIu64 ".hq: %s", fo->seq,
                 err == HOP_IO ? strerror(saved) : hop_strerror(err));
        hop__array_release(&fr.skips);
        hop__io_current->close(fo->fd);
        errno = saved;
        return err;
    }
    ch->disk.records_corrupt += fr.gaps;

    if (fr.records == 0) {
        hop__array_release(&fr.skips);
        hop__io_current->close(fo->fd);
        if (hop__qfile_unlink(ch->disk.dirfd, fo->seq) != 0)
            hop__log(HOP_LOG_WARN, ch->name,
                     "cannot remove consumed queue file %020" PRIu64 ".hq: %s", fo->seq,
                     strerror(errno));
        return HOP_OK;
    }
    if (valid_end < fo->size) {
        char name[HOP__QFILE_NAME_SIZE];
        hop__qfile_name(fo->seq, name);
        int wfd = hop__io_current->openat(ch->disk.dirfd, name, O_WRONLY, 0);
        bool cut = wfd >= 0 && hop__io_current->ftruncate(wfd, (off_t)valid_end) == 0;
        int saved = errno;
        if (wfd >= 0)
            hop__io_current->close(wfd);
        hop__log(cut ? HOP_LOG_WARN : HOP_LOG_ERROR, ch->name,
                 "queue file %s: torn tail of %" PRIu64 " byte(s) at offset %" PRIu64 " %s%s", name,
                 fo->size - valid_end, valid_end,
                 cut ? "cut off" : "left (cannot cut: ", cut ? "" : strerror(saved));
    }

    hop__qfile *f = hop__calloc(1, sizeof *f);
    if (f == NULL) {
        hop__array_release(&fr.skips);
        hop__io_current->close(fo->fd);
        return HOP_NOMEM;
    }
    hop__io_current->close(fo->fd); /* the reader opens it when it gets there */
    f->seq = fo->seq;
    f->write_fd = -1;
    f->read_fd = -1;
    f->size = f->written = valid_end;
    f->records = fr.records;
    f->read_off = fr.first;
    f->sealed = true;
    f->skips = fr.skips;
    hop__disk_adopt(&ch->disk, f);
    ch->recovered_total += f->records;
    return HOP_OK;
}

static hop_err recover(hop_channel *ch)
{
    hop__io_current->unlinkat(ch->disk.dirfd, HOP__JOURNAL_TMP_NAME, 0); /* a rewrite cut short */
    hop__jstate js;
    hop_err err = hop__journal_read(ch->disk.dirfd, &js);
    if (err != HOP_OK)
        return err;
    if (js.damaged || js.torn)
        hop__log(HOP_LOG_WARN, ch->name,
                 "journal: %zu damaged entr%s%s ignored (messages consumed before may come "
                 "again)",
                 js.damaged, js.damaged == 1 ? "y" : "ies", js.torn ? " and a torn tail" : "");

    found *files = NULL;
    size_t n = 0;
    uint64_t max_seq = 0;
    err = list_files(ch, &files, &n, &max_seq);
    size_t i = 0;
    for (; err == HOP_OK && i < n; i++)
        err = recover_file(ch, &js, &files[i]);
    int saved = errno;
    for (; i < n; i++)
        hop__io_current->close(files[i].fd);
    hop__free(files);
    hop__journal_state_release(&js);
    ch->disk.next_seq = max_seq >= FIRST_SEQ ? max_seq + 1 : FIRST_SEQ;
    if (err != HOP_OK) {
        errno = saved;
        return err;
    }
    if (ch->disk.records)
        hop__log(HOP_LOG_INFO, ch->name, "recovered %zu message(s) in %zu queue file(s)",
                 ch->disk.records, ch->disk.files);
    hop__disk_reopen_tail(&ch->disk);
    return journal_rewrite(ch);
}

hop_err hop__persist_open(hop_channel *ch, const char *data_dir)
{
    int top = open_dir_at(AT_FDCWD, data_dir);
    if (top < 0)
        return HOP_IO;
    ch->disk.dirfd = open_dir_at(top, ch->name);
    int saved = errno;
    close(top);
    errno = saved;
    if (ch->disk.dirfd < 0)
        return HOP_IO;
    if (flock(ch->disk.dirfd, LOCK_EX | LOCK_NB) != 0)
        return HOP_IO;
    return recover(ch);
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
    if (err != HOP_OK)
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
            hop__journal_append(ch->journal_fd, &ch->journal_size,
                                &(hop__jentry){HOP__J_DONE, fl->file->seq, fl->off});
    }
}

hop_err hop__persist_close(hop_channel *ch)
{
    size_t held = 0;
    for (hop__flight *fl = ch->flights_head; fl; fl = fl->next)
        held += written_again(fl);
    hop_err err = journal_rewrite(ch); /* before a file number is used again */
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
