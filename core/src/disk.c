/* disk.c - the disk part of a channel: the list of its queue files, and
 * appending to, reading from and removing them (see disk.h; the byte
 * format is in record.c).
 *
 * A file's published size and records are what readers may read: an
 * append writes past them under the writer's lock alone and publishes
 * under the state lock (durable: only once synced), so a reader never sees
 * a record being written. A file goes when it is finished: read to its
 * end, every record read consumed, and no more appends to come. */
#include "disk.h"

#include "alloc.h"
#include "io.h"
#include "log.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

/* The hint follows the counts; every function that changes them calls it. */
static void update_busy(hop__disk *d)
{
    atomic_store_explicit(&d->busy, !hop__disk_empty(d), memory_order_relaxed);
}

void hop__disk_init(hop__disk *d, const hop_limits *limits, const char *name)
{
    memset(d, 0, sizeof *d);
    atomic_init(&d->busy, false);
    atomic_init(&d->counted, 0);
    d->limits = limits;
    d->name = name;
    d->dirfd = -1;
    hop__qreader_init(&d->reader, limits->budget);
}

void hop__disk_release(hop__disk *d)
{
    hop__budget_disk_release(d->limits->budget, atomic_exchange(&d->counted, 0));
    while (d->head) {
        hop__qfile *f = d->head;
        d->head = f->next;
        hop__qfile_free(f);
    }
    d->tail = d->write_file = NULL;
    hop__qreader_release(&d->reader);
    hop__array_release(&d->unremoved);
    if (d->dirfd >= 0)
        close(d->dirfd); /* releases the flock */
    d->dirfd = -1;
}

/* ---- the budget's disk side ---- */

void hop__disk_count(hop__disk *d, uint64_t bytes)
{
    hop__budget_disk_charge(d->limits->budget, bytes);
    atomic_fetch_add_explicit(&d->counted, bytes, memory_order_relaxed);
}

void hop__disk_uncount(hop__disk *d, uint64_t bytes)
{
    hop__budget_disk_release(d->limits->budget, bytes);
    atomic_fetch_sub_explicit(&d->counted, bytes, memory_order_relaxed);
}

/* Count bytes if they fit under the budget's disk limit: true, or false
 * (nothing changed). */
static bool reserve(hop__disk *d, uint64_t bytes)
{
    if (!hop__budget_disk_reserve(d->limits->budget, bytes))
        return false;
    atomic_fetch_add_explicit(&d->counted, bytes, memory_order_relaxed);
    return true;
}

/* What f takes on disk: its records, and junk past them. */
static uint64_t on_disk(const hop__qfile *f)
{
    return f->written + f->junk;
}

static void append_to_list(hop__disk *d, hop__qfile *f)
{
    f->next = NULL;
    if (d->tail)
        d->tail->next = f;
    else
        d->head = f;
    d->tail = f;
}

void hop__disk_adopt(hop__disk *d, hop__qfile *f)
{
    append_to_list(d, f);
    d->files++;
    d->bytes += f->size;
    d->records += f->records;
    update_busy(d);
    hop__disk_count(d, on_disk(f));
}

void hop__disk_reopen_tail(hop__disk *d)
{
    hop__qfile *f = d->tail;
    if (f == NULL || f->size >= d->limits->file_bytes || f->junk > 0)
        return; /* never append after junk */
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(f->seq, name);
    int fd = hop__io_current->openat(d->dirfd, name, O_WRONLY, 0);
    if (fd < 0)
        return;
    f->write_fd = fd;
    f->sealed = false;
    d->write_file = f;
}

/* No more appends to f. Its write descriptor stays: the caller closes it
 * when nothing needs it (hop__disk_take_synced_fd(), or when f is freed). */
static void seal(hop__disk *d, hop__qfile *f)
{
    f->sealed = true;
    if (d->write_file == f)
        d->write_file = NULL;
}

/* ---- finished files ---- */

/* True if f has nothing left to read and never will (sealed, or the file
 * being appended to while nobody is writing: the disk part is then empty,
 * and sends go back to memory), and every record read from it is consumed. */
static bool finished(const hop__disk *d, const hop__qfile *f)
{
    return f->read_off == f->size && f->unsynced == 0 && f->in_flight == 0 &&
           (f->sealed || (f == d->write_file && d->pending == 0));
}

void hop__disk_detach_finished(hop__disk *d, hop__qfile **done)
{
    while (d->head && finished(d, d->head)) {
        hop__qfile *f = d->head;
        if (d->write_file == f)
            d->write_file = NULL; /* its write_fd is closed when it is freed */
        d->head = f->next;
        if (d->tail == f)
            d->tail = NULL;
        /* Records the reader never reached: a corrupt record whose damaged
         * length still pointed inside the file made it jump over them. They
         * are skipped too, so count them as corrupt; left in records they
         * would keep the disk part "busy" with nothing in it. */
        if (f->records_read < f->records) {
            size_t missed = f->records - f->records_read;
            hop__log(HOP_LOG_ERROR, d->name,
                     "queue file %020" PRIu64 ".hq: %zu record(s) skipped after a corrupt one",
                     f->seq, missed);
            d->records -= missed;
            d->records_corrupt += missed;
        }
        d->files--;
        d->bytes -= f->size;
        f->next = *done;
        *done = f;
    }
    update_busy(d);
}

void hop__disk_remove(hop__disk *d, hop__qfile *done)
{
    while (done) {
        hop__qfile *next = done->next;
        if (hop__qfile_unlink(d->dirfd, done->seq) == 0) {
            hop__disk_uncount(d, on_disk(done));
        } else {
            /* the journal must go on saying it is consumed (persist.c) */
            hop__log(HOP_LOG_WARN, d->name,
                     "cannot remove finished queue file %020" PRIu64 ".hq: %s", done->seq,
                     strerror(errno));
            hop__unremoved u = {done->seq, on_disk(done)};
            hop__array_push(&d->unremoved, &u, sizeof u);
        }
        done = next;
    }
}

void hop__disk_retry_unremoved(hop__disk *d)
{
    hop__unremoved *files = d->unremoved.items;
    size_t kept = 0;
    for (size_t i = 0; i < d->unremoved.count; i++) {
        if (hop__qfile_unlink(d->dirfd, files[i].seq) != 0 && errno != ENOENT)
            files[kept++] = files[i];
        else
            hop__disk_uncount(d, files[i].bytes);
    }
    d->unremoved.count = kept;
}

bool hop__disk_keep_unremoved(hop__disk *d, uint64_t seq, uint64_t bytes)
{
    hop__unremoved u = {seq, bytes};
    if (!hop__array_push(&d->unremoved, &u, sizeof u))
        return false;
    hop__disk_count(d, bytes);
    return true;
}

/* ---- appending ---- */

hop_err hop__disk_append_plan(hop__disk *d, const hop_buf *msgs, size_t n, hop__disk_run *run)
{
    /* how many new files the run needs, as the appends will go, and the
     * bytes it writes (each new file's header too) */
    size_t new_files = 0;
    bool open = d->write_file != NULL;
    uint64_t size = open ? d->write_file->written : 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (!open) {
            new_files++;
            size = HOP__FILE_HEADER_SIZE;
            bytes += HOP__FILE_HEADER_SIZE;
        }
        size += HOP__RECORD_HEADER_SIZE + msgs[i].len;
        bytes += HOP__RECORD_HEADER_SIZE + msgs[i].len;
        open = size < d->limits->file_bytes;
    }
    size_t max = d->limits->max_disk_files;
    if (new_files > 0 && (d->files >= max || new_files > max - d->files))
        return HOP_FULL; /* the channel's own bound first: the budget is shared */
    if (!reserve(d, bytes))
        return HOP_NOSPACE;
    d->files += new_files;
    d->pending += n;
    update_busy(d);
    hop__qfile *first = d->write_file;
    *run = (hop__disk_run){
        .records = n,
        .new_files = new_files,
        .first = first,
        .first_end = first ? first->written : 0,
        .current = first,
        .bytes = bytes,
    };
    return HOP_OK;
}

hop_err hop__disk_append_write(hop__disk *d, hop__disk_run *run, const void *data, size_t len,
                               hop__disk_span *span)
{
    hop__qfile *f = run->current;
    if (f == NULL) {
        hop_err err = hop__qfile_create(d->dirfd, d->next_seq, &f);
        if (err != HOP_OK)
            return err;
        d->next_seq++;
        f->next = NULL;
        if (run->created_tail)
            run->created_tail->next = f;
        else
            run->created = f;
        run->created_tail = f;
        run->current = f;
    }
    uint64_t end;
    bool cut_failed = false;
    hop_err err = hop__qfile_append(f, data, (uint32_t)len, &end, &cut_failed);
    run->torn = run->torn || cut_failed;
    if (err != HOP_OK)
        return err;
    if (span)
        *span = (hop__disk_span){f, f->written, end};
    f->written = end;
    f->appended++;
    if (end >= d->limits->file_bytes)
        run->current = NULL; /* full: the next record starts a new file */
    return HOP_OK;
}

/* The files of run in order: the one it began in, then those it started
 * (chained by next, as they are once in the list). */
static hop__qfile *run_first(const hop__disk_run *run)
{
    return run->first ? run->first : run->created;
}

static hop__qfile *run_next(const hop__disk_run *run, const hop__qfile *f)
{
    return f == run->first ? run->created : f->next;
}

void hop__disk_append_close_full(hop__disk *d, hop__disk_run *run)
{
    for (hop__qfile *f = run_first(run); f; f = run_next(run, f)) {
        if (f->written >= d->limits->file_bytes && f->write_fd >= 0) {
            hop__io_current->close(f->write_fd);
            f->write_fd = -1;
        }
    }
}

/* The run's new files join the list (their headers count as published). */
static void link_created(hop__disk *d, hop__disk_run *run)
{
    for (hop__qfile *f = run->created, *next; f; f = next) {
        next = f->next;
        append_to_list(d, f);
        d->bytes += f->size;
    }
    run->created = run->created_tail = NULL;
}

/* Every file of the run but the last is full; the last too, maybe. Full
 * ones are sealed, the other one takes the next appends. */
static void seal_full(hop__disk *d, hop__qfile *from)
{
    for (hop__qfile *f = from; f; f = f->next) {
        if (f->written >= d->limits->file_bytes && !f->sealed)
            seal(d, f);
        else if (!f->sealed)
            d->write_file = f;
    }
}

void hop__disk_append_publish(hop__disk *d, hop__disk_run *run)
{
    hop__qfile *from = run_first(run);
    link_created(d, run);
    for (hop__qfile *f = from; f; f = f->next) {
        d->bytes += f->written - f->size;
        f->size = f->written;
        f->records += f->appended;
        d->records += f->appended;
        f->appended = 0;
    }
    seal_full(d, from);
    d->pending -= run->records;
    update_busy(d);
}

void hop__disk_append_stage(hop__disk *d, hop__disk_run *run)
{
    hop__qfile *from = run_first(run);
    link_created(d, run);
    for (hop__qfile *f = from; f; f = f->next) {
        f->unsynced += f->appended;
        f->appended = 0;
    }
    seal_full(d, from);
}

void hop__disk_append_roll_back(hop__disk *d, hop__disk_run *run)
{
    hop__qfile *first = run->first;
    uint64_t kept = 0; /* bytes of the run that stay on disk */
    if (first && first->written > run->first_end) {
        while (hop__io_current->ftruncate(first->write_fd, (off_t)run->first_end) != 0) {
            if (errno != EINTR) {
                run->torn = true; /* junk after first_end: sealed by the cancel */
                break;
            }
        }
        first->written = run->first_end;
    }
    if (first)
        first->appended = 0;
    if (first && run->torn) {
        hop__qfile_measure_junk(first);
        kept += first->junk;
    }
    for (hop__qfile *f = run->created, *next; f; f = next) {
        next = f->next;
        if (hop__qfile_unlink(d->dirfd, f->seq) != 0) {
            hop__qfile_measure_junk(f);
            kept += on_disk(f); /* counted until the channel closes */
        }
        hop__qfile_free(f);
    }
    run->created = run->created_tail = NULL;
    hop__disk_uncount(d, run->bytes);
    hop__disk_count(d, kept);
    run->bytes = 0;
}

int hop__disk_append_cancel(hop__disk *d, hop__disk_run *run)
{
    d->pending -= run->records;
    d->files -= run->new_files;
    update_busy(d);
    hop__qfile *first = run->first;
    if (!run->torn || first == NULL || first->sealed)
        return -1;
    seal(d, first); /* never append after junk */
    if (first->unsynced > 0)
        return -1; /* its sync needs the descriptor, and closes it */
    int fd = first->write_fd;
    first->write_fd = -1;
    return fd;
}

/* ---- a file moved in whole ---- */

hop_err hop__disk_move_plan(hop__disk *d, uint64_t bytes, uint64_t *seq)
{
    if (d->files >= d->limits->max_disk_files)
        return HOP_FULL;
    if (!reserve(d, bytes))
        return HOP_NOSPACE;
    d->files++;
    *seq = d->next_seq++;
    return HOP_OK;
}

void hop__disk_move_cancel(hop__disk *d, uint64_t bytes)
{
    d->files--;
    hop__disk_uncount(d, bytes);
}

void hop__disk_move_adopt(hop__disk *d, hop__qfile *f, uint64_t seq, uint64_t bytes, size_t records)
{
    *f = (hop__qfile){.seq = seq,
                      .write_fd = -1,
                      .read_fd = -1,
                      .size = bytes,
                      .records = records,
                      .read_off = HOP__FILE_HEADER_SIZE,
                      .sealed = true,
                      .written = bytes};
    if (d->write_file)
        seal(d, d->write_file);
    append_to_list(d, f);
    d->bytes += bytes;
    d->records += records;
    update_busy(d);
}

/* ---- durable records, after their sync ---- */

void hop__disk_publish_synced(hop__disk *d, const hop__disk_span *span)
{
    hop__qfile *f = span->file;
    d->bytes += span->end - f->size;
    f->size = span->end;
    f->records++;
    f->unsynced--;
    d->records++;
    d->pending--;
    update_busy(d);
}

int hop__disk_take_synced_fd(hop__qfile *f)
{
    if (!f->sealed || f->unsynced > 0 || f->write_fd < 0)
        return -1;
    int fd = f->write_fd;
    f->write_fd = -1;
    return fd;
}

bool hop__disk_cut_unsynced(hop__disk *d, hop__qfile *f)
{
    bool cut = f->write_fd >= 0 && hop__io_current->ftruncate(f->write_fd, (off_t)f->size) == 0;
    uint64_t before = on_disk(f);
    f->written = f->size;
    f->junk = cut ? 0 : before - f->size;
    if (cut)
        hop__disk_uncount(d, before - f->size);
    else
        hop__log(HOP_LOG_ERROR, d->name, "cannot cut refused records off: %s", strerror(errno));
    return cut;
}

void hop__disk_refuse(hop__disk *d, hop__qfile *f)
{
    f->unsynced--;
    if (!f->sealed)
        seal(d, f);
    d->pending--;
    update_busy(d);
}

/* ---- reading ---- */

bool hop__disk_read_reserve(hop__disk *d, hop__disk_read *rd)
{
    /* records are published in order: the first file with unread ones */
    hop__qfile *f = d->head;
    while (f && f->read_off == f->size)
        f = f->next;
    if (f == NULL)
        return false;
    rd->file = f;
    rd->off = f->read_off;
    rd->avail = f->size;
    rd->records = f->records;
    return true;
}

void hop__disk_read_record(hop__disk *d, hop__disk_read *rd)
{
    rd->msg = NULL;
    rd->next = 0;
    rd->result = hop__qreader_read(&d->reader, d->dirfd, rd->file, rd->off, rd->avail,
                                   HOP_MAX_MESSAGE_BYTES, &rd->msg, &rd->next);
    rd->err_no = errno;
}

/* Move f's read position over the ranges to skip. One may end past the
 * published size: a refused durable record that could not be cut off, at
 * the end of its sealed file. The read stops at the size, where the file
 * ends for readers (past it, it would read beyond what was published). */
static void skip_over(hop__qfile *f)
{
    const hop__skip *skips = f->skips.items;
    while (f->skip_next < f->skips.count && skips[f->skip_next].off <= f->read_off) {
        if (skips[f->skip_next].off == f->read_off) {
            uint64_t to = skips[f->skip_next].to;
            f->read_off = to < f->size ? to : f->size;
        }
        f->skip_next++;
    }
}

/* The reserved record cannot be framed: the rest of what the file had
 * published is skipped. Returns how many records that was. */
static size_t skip_unframed(hop__disk *d, hop__disk_read *rd)
{
    hop__qfile *f = rd->file;
    /* after a damaged length the reader may have counted more "records"
     * than were written: never subtract below zero */
    size_t skipped = rd->records > f->records_read ? rd->records - f->records_read : 0;
    hop__log(HOP_LOG_ERROR, d->name,
             "queue file %020" PRIu64 ".hq: no valid record at offset %" PRIu64
             ", %zu record(s) skipped",
             f->seq, rd->off, skipped);
    f->read_off = rd->avail;
    d->records_corrupt += skipped;
    return skipped;
}

hop_err hop__disk_read_commit(hop__disk *d, hop__disk_read *rd)
{
    hop__qfile *f = rd->file;
    size_t consumed = 0;
    hop_err err = HOP_IO;
    switch (rd->result) {
    case HOP__READ_OK:
        consumed = 1;
        f->read_off = rd->next;
        f->in_flight++;
        err = HOP_OK;
        break;
    case HOP__READ_CORRUPT:
        hop__log(HOP_LOG_ERROR, d->name,
                 "queue file %020" PRIu64 ".hq: corrupt record at offset %" PRIu64 " skipped",
                 f->seq, rd->off);
        consumed = 1;
        f->read_off = rd->next;
        d->records_corrupt++;
        rd->err_no = EIO;
        break;
    case HOP__READ_UNFRAMED:
        consumed = skip_unframed(d, rd);
        rd->err_no = EIO;
        break;
    case HOP__READ_IO:
        hop__log(HOP_LOG_ERROR, d->name, "reading queue file %020" PRIu64 ".hq: %s", f->seq,
                 strerror(rd->err_no));
        break;
    case HOP__READ_NOMEM:
        err = HOP_NOMEM;
        break;
    }
    skip_over(f);
    f->records_read += consumed;
    d->records -= consumed;
    hop__disk_detach_finished(d, &rd->finished);
    return err;
}

void hop__disk_reader_release(hop__disk *d)
{
    hop__qreader_release(&d->reader);
}

bool hop__disk_consumed(hop__disk *d, hop__qfile *f)
{
    f->in_flight--;
    return d->head && finished(d, d->head);
}

/* ---- purging ---- */

hop__qfile *hop__disk_purge_candidate(const hop__disk *d)
{
    hop__qfile *f = d->head;
    return f && f->unsynced == 0 && f->appended == 0 ? f : NULL;
}

/* Records of f published and not read yet (a damaged length may have made
 * the reader count more read than there were). */
static size_t unread(const hop__qfile *f)
{
    return f->records > f->records_read ? f->records - f->records_read : 0;
}

size_t hop__disk_purge_detach(hop__disk *d, hop__qfile *f)
{
    size_t dropped = unread(f);
    d->head = f->next;
    if (d->tail == f)
        d->tail = NULL;
    if (d->write_file == f)
        d->write_file = NULL;
    d->files--;
    d->bytes -= f->size;
    d->records -= dropped;
    update_busy(d);
    f->next = NULL;
    return dropped;
}

void hop__disk_purge_forget(hop__disk *d, hop__qfile *f)
{
    hop__disk_uncount(d, on_disk(f));
    hop__qfile_free(f);
}

size_t hop__disk_purge_rest(hop__disk *d)
{
    size_t dropped = 0;
    for (hop__qfile *f = d->head; f; f = f->next) {
        size_t n = unread(f);
        dropped += n;
        d->records -= n;
        f->records_read += n;
        f->read_off = f->size;
        skip_over(f);
    }
    update_busy(d);
    return dropped;
}

void hop__disk_forget_in_flight(hop__disk *d)
{
    for (hop__qfile *f = d->head; f; f = f->next)
        f->in_flight = 0;
}

/* ---- peeking ---- */

bool hop__disk_cursor_next(const hop__disk *d, hop__disk_cursor *c)
{
    if (c->file && c->off < c->file->size) {
        c->avail = c->file->size;
        return true;
    }
    hop__qfile *f = c->file ? c->file->next : d->head;
    while (f && f->read_off == f->size)
        f = f->next;
    if (f == NULL)
        return false;
    *c = (hop__disk_cursor){f, f->read_off, f->size, f->skip_next};
    return true;
}

/* Move c over the ranges to skip, as skip_over() moves a file's read
 * position. */
static void cursor_skip(hop__disk_cursor *c)
{
    const hop__skip *skips = c->file->skips.items;
    while (c->skip_next < c->file->skips.count && skips[c->skip_next].off <= c->off) {
        if (skips[c->skip_next].off == c->off)
            c->off = skips[c->skip_next].to < c->avail ? skips[c->skip_next].to : c->avail;
        c->skip_next++;
    }
}

hop__read_result hop__disk_cursor_read(hop__disk *d, hop__disk_cursor *c, hop__msg **msg)
{
    uint64_t next = 0;
    *msg = NULL;
    hop__read_result res = hop__qreader_read(&d->reader, d->dirfd, c->file, c->off, c->avail,
                                             HOP_MAX_MESSAGE_BYTES, msg, &next);
    if (res == HOP__READ_OK || res == HOP__READ_CORRUPT)
        c->off = next;
    else if (res == HOP__READ_UNFRAMED)
        c->off = c->avail;
    else
        return res;
    cursor_skip(c);
    return res;
}
