/* schedule.c - a channel's delayed messages: hop_send_at(),
 * hop_send_batch_at(), hop_requeue_at(), and handing them on when due.
 *
 * They wait apart from the queue files, so that a message due in a week
 * pins no queue file, in delay files (delay_file.c) of two sizes, and RAM
 * holds one small entry a file, none a message:
 *   - a coarse file per window of 60 s of due times, for messages due
 *     later than the next second;
 *   - when a window is about to begin (1 s ahead), the scheduler streams its
 *     coarse file, in order, into fine files of 50 ms slots; a message due
 *     in a window already split goes straight to its fine file;
 *   - a fine slot [t, t + 50 ms) is handed on at t + 50 ms, record by
 *     record in file order: never early, at most ~50 ms late, and messages
 *     due at the same time keep the order they arrived in.
 * Handing on is hop_send() (to the tail), or for a message given back by
 * hop_requeue_at() a return to the head (on a durable channel, a durable
 * send to the tail: the head lives in memory, which a crash loses). A
 * refusal (HOP_FULL, HOP_NOSPACE, an I/O error) leaves the record in its
 * file, tried again 100 ms later: late, never lost.
 *
 * The bytes of the files count against the channel's disk capacity
 * (max_disk_files x file_bytes, with its queue files) and the budget's
 * disk side, as queue files do. The work runs on the library's scheduler
 * thread (scheduler.c), one entry a channel.
 *
 * Lock: the schedule's `lock` guards its index and serialises appends and
 * splits; it is taken before the channel's locks and dropped while a
 * record is handed on (a send may wait for a sync, whose callbacks may
 * send again).
 */
#include "schedule.h"

#include "alloc.h"
#include "array.h"
#include "budget.h"
#include "delay_file.h"
#include "io.h"
#include "log.h"
#include "recv.h"
#include "scheduler.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#define SPLIT_AHEAD_MS 1000u /* a window is split this long before it begins */
#define RETRY_MS 100u        /* a refused hand-on is tried again after this */

/* One delay file of the index. */
typedef struct sfile {
    hop__delay_id id;
    uint64_t records; /* not handed on yet */
    uint64_t bytes;   /* its size */
    bool promoting;   /* being handed on (its records may still grow) */
} sfile;

struct hop__schedule {
    pthread_mutex_t lock;
    hop_channel *ch; /* borrowed */
    int dirfd;       /* the channel's (borrowed) */
    hop__array files;
    uint64_t records, bytes; /* the sums over files; bytes counted on the budget's disk side */
    uint64_t corrupt;        /* records skipped as corrupt */
    uint64_t retry_at;       /* a refused hand-on is tried again then; 0: none */
    hop__sched_entry entry;
    bool registered; /* entry is the scheduler's */
};

/* ---- the index ---- */

static sfile *file_find(hop__schedule *s, hop__delay_id id)
{
    sfile *f = s->files.items;
    for (size_t i = 0; i < s->files.count; i++)
        if (f[i].id.fine == id.fine && f[i].id.start == id.start)
            return &f[i];
    return NULL;
}

/* The entry of id, added empty if missing; NULL if out of memory. */
static sfile *file_get(hop__schedule *s, hop__delay_id id)
{
    sfile *f = file_find(s, id);
    if (f == NULL && hop__array_push(&s->files, &(sfile){.id = id}, sizeof(sfile)))
        f = (sfile *)s->files.items + s->files.count - 1;
    return f;
}

static void file_drop(hop__schedule *s, sfile *f)
{
    sfile *last = (sfile *)s->files.items + s->files.count - 1;
    *f = *last;
    s->files.count--;
}

/* When f needs work: a fine file once its slot ended, a coarse one when
 * its window is about to begin. */
static uint64_t action_at(const sfile *f)
{
    if (f->id.fine)
        return f->id.start + HOP__DELAY_SLOT_MS;
    return f->id.start > SPLIT_AHEAD_MS ? f->id.start - SPLIT_AHEAD_MS : 0;
}

static sfile *file_earliest(hop__schedule *s)
{
    sfile *f = s->files.items, *best = NULL;
    for (size_t i = 0; i < s->files.count; i++)
        if (!f[i].promoting && (best == NULL || action_at(&f[i]) < action_at(best)))
            best = &f[i];
    return best;
}

/* Tell the scheduler when s needs work next. s->lock held. */
static void reschedule(hop__schedule *s)
{
    if (!s->registered)
        return;
    sfile *f = file_earliest(s);
    uint64_t due = f ? action_at(f) : HOP__NEVER;
    if (f && s->retry_at > due)
        due = s->retry_at;
    hop__scheduler_set(&s->entry, due);
}

/* ---- storing ---- */

/* Reserve bytes more on the channel's disk capacity and the budget's disk
 * side: HOP_OK (the budget counts them), HOP_FULL or HOP_NOSPACE (nothing
 * changed). s->lock held. */
static hop_err reserve(hop__schedule *s, uint64_t bytes)
{
    hop_channel *ch = s->ch;
    const hop_limits *l = &ch->limits;
    pthread_mutex_lock(&ch->lock);
    bool full = false;
    if (l->max_disk_files != SIZE_MAX) {
        uint64_t cap = l->file_bytes && l->max_disk_files > UINT64_MAX / l->file_bytes
                           ? UINT64_MAX
                           : (uint64_t)l->max_disk_files * l->file_bytes;
        uint64_t used = ch->disk.bytes + s->bytes;
        full = used > cap || bytes > cap - used;
    }
    if (full)
        ch->rejected_full_total++;
    pthread_mutex_unlock(&ch->lock);
    if (full)
        return HOP_FULL;
    return hop__budget_disk_reserve(l->budget, bytes) ? HOP_OK : HOP_NOSPACE;
}

static bool ensure_registered(hop__schedule *s)
{
    if (!s->registered && hop__scheduler_add(&s->entry))
        s->registered = true;
    return s->registered;
}

/* The file a message due at due goes to: its window's coarse file, unless
 * the window begins within a second and has none (split already, or
 * never had one): then its fine slot. */
static hop__delay_id target(hop__schedule *s, uint64_t due, uint64_t now)
{
    hop__delay_id w = {false, due - due % HOP__DELAY_WINDOW_MS};
    if (file_find(s, w) || w.start > now + SPLIT_AHEAD_MS)
        return w;
    return (hop__delay_id){true, due - due % HOP__DELAY_SLOT_MS};
}

static void count_io_error(hop_channel *ch, const char *what)
{
    int saved = errno;
    pthread_mutex_lock(&ch->lock);
    ch->io_errors_total++;
    pthread_mutex_unlock(&ch->lock);
    hop__log(HOP_LOG_ERROR, ch->name, "%s: %s", what, strerror(saved));
    errno = saved;
}

/* Append recs[0..n) (all due at recs[0].due_ms) to the file they belong
 * in: all or none. s->lock held. */
static hop_err store(hop__schedule *s, const hop__delay_rec *recs, size_t n, uint64_t now)
{
    hop_budget *budget = s->ch->limits.budget;
    uint64_t need = HOP__DELAY_HEADER_SIZE;
    for (size_t i = 0; i < n; i++)
        need += hop__delay_record_size(recs[i].len);
    hop_err err = reserve(s, need);
    if (err != HOP_OK)
        return err;
    hop__delay_id id = target(s, recs[0].due_ms, now);
    sfile *f = ensure_registered(s) ? file_get(s, id) : NULL;
    if (f == NULL) {
        hop__budget_disk_release(budget, need);
        return HOP_NOMEM;
    }
    uint64_t added = 0;
    err = hop__delay_file_append(s->dirfd, id, recs, n, s->ch->limits.durable, &added);
    hop__budget_disk_release(budget, need - added);
    if (err != HOP_OK) {
        if (f->bytes == 0)
            file_drop(s, f);
        count_io_error(s->ch, "writing delay file");
        return err;
    }
    f->records += n;
    f->bytes += added;
    s->records += n;
    s->bytes += added;
    reschedule(s);
    return HOP_OK;
}

/* Store recs[0..n) in ch's schedule, at the time their due times say. */
static hop_err put(hop_channel *ch, const hop__delay_rec *recs, size_t n, uint64_t now)
{
    hop__schedule *s = ch->schedule;
    if (s == NULL) { /* memory only: no room for anything delayed */
        pthread_mutex_lock(&ch->lock);
        ch->rejected_full_total++;
        pthread_mutex_unlock(&ch->lock);
        return HOP_FULL;
    }
    pthread_mutex_lock(&s->lock);
    hop_err err = store(s, recs, n, now);
    pthread_mutex_unlock(&s->lock);
    return err;
}

hop_err hop_send_at(hop_channel *ch, const void *data, size_t len, uint64_t due_ms)
{
    if (ch == NULL || (data == NULL && len > 0))
        return HOP_INVALID;
    if (len > ch->limits.max_message_bytes)
        return HOP_TOO_BIG;
    uint64_t now = hop_now_ms();
    if (due_ms <= now)
        return hop_send(ch, data, len);
    return put(ch, &(hop__delay_rec){due_ms, HOP__DELAY_TAIL, (void *)data, len}, 1, now);
}

hop_err hop_send_batch_at(hop_channel *ch, const hop_buf *msgs, size_t n, uint64_t due_ms)
{
    if (ch == NULL || (msgs == NULL && n > 0))
        return HOP_INVALID;
    uint64_t now = hop_now_ms();
    if (n == 0 || due_ms <= now)
        return hop_send_batch(ch, msgs, n);
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].data == NULL && msgs[i].len > 0)
            return HOP_INVALID;
        if (msgs[i].len > ch->limits.max_message_bytes)
            return HOP_TOO_BIG;
    }
    hop__delay_rec *recs = hop__calloc(n, sizeof *recs);
    if (recs == NULL)
        return HOP_NOMEM;
    for (size_t i = 0; i < n; i++)
        recs[i] = (hop__delay_rec){due_ms, HOP__DELAY_TAIL, (void *)msgs[i].data, msgs[i].len};
    hop_err err = put(ch, recs, n, now);
    hop__free(recs);
    return err;
}

hop_err hop_requeue_at(hop_channel *ch, void *data, size_t len, uint64_t due_ms)
{
    hop__msg *m = hop__msg_of(data);
    if (ch == NULL || m == NULL || len != m->len)
        return HOP_INVALID;
    uint64_t now = hop_now_ms();
    if (due_ms <= now)
        return hop_requeue(ch, data, len);
    hop_err err = put(ch, &(hop__delay_rec){due_ms, HOP__DELAY_HEAD, data, len}, 1, now);
    if (err == HOP_OK)
        hop_free(data); /* its copy in the delay file stands for it now */
    return err;
}

/* ---- handing on ---- */

/* Put rec into its channel, as it was delayed to do. */
static hop_err hand_on(hop_channel *ch, const hop__delay_rec *rec)
{
    if (rec->kind == HOP__DELAY_HEAD && !ch->limits.durable)
        return hop__recv_return(ch, rec->data, rec->len);
    hop_err err = hop_send(ch, rec->data, rec->len);
    if (err == HOP_TOO_BIG) { /* the channel was opened with a smaller bound since */
        hop__log(HOP_LOG_ERROR, ch->name, "delayed message of %zu bytes too big: dropped",
                 rec->len);
        return HOP_OK;
    }
    return err;
}

/* Records handed on together: tail records in a row (one hop_send_batch(),
 * so a durable channel syncs once for them), or one given back to the
 * head. */
#define BATCH_RECORDS 64
#define BATCH_BYTES ((size_t)1 << 20)

typedef struct batch {
    hop__delay_rec recs[BATCH_RECORDS];
    uint64_t start;               /* the offset of the first */
    uint64_t ends[BATCH_RECORDS]; /* the offset after each */
    size_t n;
    size_t corrupt; /* records skipped as corrupt before the first */
} batch;

/* Whether rec joins the tail: sent, as a durable channel gives back too. */
static bool to_tail(const hop_channel *ch, const hop__delay_rec *rec)
{
    return rec->kind == HOP__DELAY_TAIL || ch->limits.durable;
}

/* Read the next batch from r, skipping the corrupt records before it (a
 * corrupt one after its first record ends it). Returns what stopped it:
 * HOP__DELAY_READ_OK when the batch is full or the next record does not
 * join it (r->off is then after the batch); else the end, a torn tail or
 * an error. */
static hop__delay_read batch_read(hop_channel *ch, hop__delay_reader *r, batch *b)
{
    size_t bytes = 0;
    b->n = b->corrupt = 0;
    b->start = r->off;
    for (;;) {
        uint64_t at = r->off;
        hop__delay_rec rec;
        hop__delay_read res = hop__delay_reader_next(r, &rec);
        if (res == HOP__DELAY_READ_CORRUPT && b->n == 0) {
            b->corrupt++;
            continue;
        }
        if (res == HOP__DELAY_READ_CORRUPT ||
            (res == HOP__DELAY_READ_OK && b->n > 0 && !to_tail(ch, &rec))) {
            if (res == HOP__DELAY_READ_OK)
                hop__free(rec.data);
            r->off = at; /* read again as the next batch */
            return HOP__DELAY_READ_OK;
        }
        if (res != HOP__DELAY_READ_OK)
            return res;
        if (b->n == 0)
            b->start = at;
        b->ends[b->n] = r->off;
        b->recs[b->n++] = rec;
        bytes += rec.len;
        if (!to_tail(ch, &rec) || b->n == BATCH_RECORDS || bytes >= BATCH_BYTES)
            return HOP__DELAY_READ_OK;
    }
}

/* Hand on the records of b in order. Returns the first refusal; OUT:
 * *handed, how many went. */
static hop_err batch_hand_on(hop_channel *ch, batch *b, size_t *handed)
{
    hop_err err = HOP_OK;
    *handed = 0;
    if (b->n > 1) {
        hop_buf bufs[BATCH_RECORDS];
        for (size_t i = 0; i < b->n; i++)
            bufs[i] = (hop_buf){b->recs[i].data, b->recs[i].len};
        if ((err = hop_send_batch(ch, bufs, b->n)) == HOP_OK)
            *handed = b->n;
        if (err != HOP_TOO_BIG) /* else one by one: hand_on() drops the big one */
            return err;
    }
    for (err = HOP_OK; *handed < b->n && err == HOP_OK; ++*handed)
        err = hand_on(ch, &b->recs[*handed]);
    if (err != HOP_OK)
        --*handed;
    return err;
}

/* Read and hand on the next batch of r. s->lock held; dropped meanwhile.
 * OUT: *done, the file is finished. */
static hop_err promote_next(hop__schedule *s, hop__delay_id id, hop__delay_reader *r, bool *done)
{
    r->size = file_find(s, id)->bytes;
    if ((*done = r->off >= r->size))
        return HOP_OK;
    pthread_mutex_unlock(&s->lock);
    batch one, *b = &one;
    size_t handed = 0;
    hop_err err = HOP_OK;
    hop__delay_read res = batch_read(s->ch, r, b);
    if (b->n > 0)
        err = batch_hand_on(s->ch, b, &handed);
    else if (res == HOP__DELAY_READ_TORN) /* junk: the scan at open cut torn tails */
        r->off = r->size;
    if (res == HOP__DELAY_READ_ERROR && err == HOP_OK) {
        count_io_error(s->ch, "reading delay file");
        err = HOP_IO;
    }
    if (handed < b->n) /* the rest waits: read again from the mark */
        r->off = handed ? b->ends[handed - 1] : b->start;
    if ((handed > 0 || b->n == 0 || b->corrupt > 0) && !hop__delay_reader_mark(r, r->off))
        count_io_error(s->ch, "marking delay file"); /* at worst handed on again */
    for (size_t i = 0; i < b->n; i++)
        hop__free(b->recs[i].data);
    pthread_mutex_lock(&s->lock);
    file_find(s, id)->records -= handed;
    s->records -= handed;
    s->corrupt += b->corrupt;
    if (b->corrupt)
        hop__log(HOP_LOG_WARN, s->ch->name, "%zu corrupt record(s) in a delay file: skipped",
                 b->corrupt);
    return err;
}

/* The file is done with: remove it and give its bytes back. s->lock held. */
static void file_finished(hop__schedule *s, hop__delay_id id)
{
    sfile *f = file_find(s, id);
    if (hop__delay_file_unlink(s->dirfd, id) != 0 && errno != ENOENT) {
        count_io_error(s->ch, "removing delay file");
        f->promoting = false;
        f->records = 0; /* nothing left in it: tried again, then removed */
        return;
    }
    s->bytes -= f->bytes;
    s->records -= f->records; /* 0 but for corrupt records the scan did not count */
    hop__budget_disk_release(s->ch->limits.budget, f->bytes);
    file_drop(s, f);
}

/* Hand on the records of fine file id, in order. HOP_OK: all went and the
 * file is gone; else a refusal, the rest waits. s->lock held. */
static hop_err promote(hop__schedule *s, hop__delay_id id)
{
    hop__delay_reader r;
    if (hop__delay_reader_open(s->dirfd, id, &r) != HOP_OK) {
        count_io_error(s->ch, "opening delay file");
        return HOP_IO;
    }
    file_find(s, id)->promoting = true;
    hop_err err;
    bool done = false;
    while ((err = promote_next(s, id, &r, &done)) == HOP_OK && !done)
        ;
    hop__delay_reader_close(&r);
    file_find(s, id)->promoting = false;
    if (err == HOP_OK)
        file_finished(s, id);
    return err;
}

/* Move one record of a coarse file to its fine file. s->lock held. */
static hop_err split_record(hop__schedule *s, hop__delay_id from, const hop__delay_rec *rec)
{
    hop__delay_id to = {true, rec->due_ms - rec->due_ms % HOP__DELAY_SLOT_MS};
    sfile *g = file_get(s, to);
    if (g == NULL)
        return HOP_NOMEM;
    uint64_t added;
    hop_err err = hop__delay_file_append(s->dirfd, to, rec, 1, false, &added); /* synced later */
    if (err != HOP_OK) {
        if (g->bytes == 0)
            file_drop(s, g);
        count_io_error(s->ch, "writing delay file");
        return err;
    }
    hop__budget_disk_charge(s->ch->limits.budget, added); /* moved, not new */
    g->records++;
    g->bytes += added;
    s->bytes += added;
    file_find(s, from)->records--;
    return HOP_OK;
}

/* A split writes the coarse file's progress mark every SPLIT_CHECKPOINT
 * records (durable: once the fine files written to are synced), so that
 * a crash repeats at most that many moves, and a durable channel syncs a
 * file once a checkpoint rather than once a record. */
#define SPLIT_CHECKPOINT 64

typedef struct split_state {
    hop__delay_reader r;
    uint64_t moved_to;                       /* the offset after the last record dealt with */
    size_t since;                            /* records dealt with since the last checkpoint */
    hop__delay_id touched[SPLIT_CHECKPOINT]; /* the fine files written to since */
    size_t ntouched;
} split_state;

static void split_touch(split_state *sp, hop__delay_id id)
{
    for (size_t i = 0; i < sp->ntouched; i++)
        if (sp->touched[i].start == id.start)
            return;
    sp->touched[sp->ntouched++] = id;
}

/* Everything moved so far is in its fine file (durable: synced): mark the
 * coarse file past it. The mark is written even if a sync failed (logged,
 * HOP_IO), so that this process does not move the records twice. */
static hop_err split_checkpoint(hop__schedule *s, split_state *sp)
{
    bool synced = true;
    if (s->ch->limits.durable && sp->ntouched > 0) {
        for (size_t i = 0; i < sp->ntouched; i++)
            synced = hop__delay_file_sync(s->dirfd, sp->touched[i]) == 0 && synced;
        synced = hop__io_current->fsync(s->dirfd) == 0 && synced;
    }
    if (!synced)
        count_io_error(s->ch, "syncing delay file");
    if (sp->since > 0 && !hop__delay_reader_mark(&sp->r, sp->moved_to))
        count_io_error(s->ch, "marking delay file"); /* at worst moved twice */
    sp->since = sp->ntouched = 0;
    return synced ? HOP_OK : HOP_IO;
}

/* Stream coarse file id into the fine files of its slots, in order.
 * s->lock held throughout: no send lands in between. */
static hop_err split(hop__schedule *s, hop__delay_id id)
{
    split_state sp = {.since = 0};
    if (hop__delay_reader_open(s->dirfd, id, &sp.r) != HOP_OK) {
        count_io_error(s->ch, "opening delay file");
        return HOP_IO;
    }
    sp.moved_to = sp.r.off;
    hop_err err = HOP_OK;
    hop__delay_read res;
    hop__delay_rec rec;
    while (err == HOP_OK && ((res = hop__delay_reader_next(&sp.r, &rec)) == HOP__DELAY_READ_OK ||
                             res == HOP__DELAY_READ_CORRUPT)) {
        if (res == HOP__DELAY_READ_OK) {
            err = split_record(s, id, &rec);
            if (err == HOP_OK)
                split_touch(&sp,
                            (hop__delay_id){true, rec.due_ms - rec.due_ms % HOP__DELAY_SLOT_MS});
            hop__free(rec.data);
        } else {
            s->corrupt++;
        }
        if (err == HOP_OK) {
            sp.moved_to = sp.r.off;
            sp.since++;
        }
        if (err == HOP_OK && sp.since == SPLIT_CHECKPOINT)
            err = split_checkpoint(s, &sp);
    }
    if (err == HOP_OK && res == HOP__DELAY_READ_ERROR) {
        count_io_error(s->ch, "reading delay file");
        err = HOP_IO;
    }
    hop_err synced = split_checkpoint(s, &sp);
    hop__delay_reader_close(&sp.r);
    if (err == HOP_OK && synced == HOP_OK)
        file_finished(s, id);
    return err != HOP_OK ? err : synced;
}

/* The scheduler's call: do the work due at now, in the order of the
 * files' action times. */
static void run(void *arg, uint64_t now)
{
    hop__schedule *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->retry_at <= now) {
        s->retry_at = 0;
        sfile *f;
        while ((f = file_earliest(s)) != NULL && action_at(f) <= now) {
            hop__delay_id id = f->id;
            if ((id.fine ? promote(s, id) : split(s, id)) != HOP_OK) {
                s->retry_at = hop_now_ms() + RETRY_MS;
                break;
            }
        }
    }
    reschedule(s);
    pthread_mutex_unlock(&s->lock);
}

/* ---- open, close, stats ---- */

/* A delay file found at open: counted, or removed when handed on whole.
 * Files of another version are left alone. s->lock not needed (open). */
static hop_err adopt(hop__schedule *s, const char *name, hop__delay_id id)
{
    hop__delay_scan scan;
    if (hop__delay_file_scan(s->dirfd, id, &scan) != HOP_OK) {
        if (errno != EINVAL)
            return HOP_IO;
        hop__log(HOP_LOG_WARN, s->ch->name, "delay file %s of another format: left alone", name);
        return HOP_OK;
    }
    if (scan.corrupt)
        hop__log(HOP_LOG_WARN, s->ch->name, "%s: %" PRIu64 " corrupt record(s) will be skipped",
                 name, scan.corrupt);
    if (scan.done) {
        hop__delay_file_unlink(s->dirfd, id);
        return HOP_OK;
    }
    sfile f = {.id = id, .records = scan.records, .bytes = scan.size};
    if (!hop__array_push(&s->files, &f, sizeof f))
        return HOP_NOMEM;
    hop__budget_disk_charge(s->ch->limits.budget, scan.size);
    s->records += scan.records;
    s->bytes += scan.size;
    return HOP_OK;
}

static hop_err adopt_all(hop__schedule *s)
{
    int fd = dup(s->dirfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return HOP_IO;
    }
    rewinddir(d);
    hop_err err = HOP_OK;
    struct dirent *e;
    hop__delay_id id;
    while (err == HOP_OK && (e = readdir(d)) != NULL)
        if (hop__delay_file_parse_name(e->d_name, &id))
            err = adopt(s, e->d_name, id);
    int saved = errno;
    closedir(d);
    errno = saved;
    return err;
}

static void schedule_free(hop__schedule *s)
{
    hop__budget_disk_release(s->ch->limits.budget, s->bytes);
    hop__array_release(&s->files);
    pthread_mutex_destroy(&s->lock);
    hop__free(s);
}

hop_err hop__schedule_open(hop_channel *ch)
{
    if (ch->disk.dirfd < 0)
        return HOP_OK;
    hop__schedule *s = hop__calloc(1, sizeof *s);
    if (s == NULL)
        return HOP_NOMEM;
    pthread_mutex_init(&s->lock, NULL);
    s->ch = ch;
    s->dirfd = ch->disk.dirfd;
    s->entry.run = run;
    s->entry.arg = s;
    hop_err err = adopt_all(s);
    if (err == HOP_OK && s->files.count > 0 && !ensure_registered(s))
        err = HOP_NOMEM;
    if (err != HOP_OK) {
        int saved = errno;
        schedule_free(s);
        errno = saved;
        return err;
    }
    if (s->records)
        hop__log(HOP_LOG_INFO, ch->name, "recovered %" PRIu64 " delayed message(s)", s->records);
    pthread_mutex_lock(&s->lock);
    reschedule(s);
    pthread_mutex_unlock(&s->lock);
    ch->schedule = s;
    return HOP_OK;
}

void hop__schedule_close(hop_channel *ch)
{
    hop__schedule *s = ch->schedule;
    if (s == NULL)
        return;
    if (s->registered)
        hop__scheduler_remove(&s->entry);
    ch->schedule = NULL;
    schedule_free(s);
}

void hop__schedule_stats(hop_channel *ch, size_t *messages, size_t *bytes, uint64_t *corrupt)
{
    hop__schedule *s = ch->schedule;
    *messages = *bytes = 0;
    *corrupt = 0;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    *messages = (size_t)s->records;
    *bytes = (size_t)s->bytes;
    *corrupt = s->corrupt;
    pthread_mutex_unlock(&s->lock);
}
