/* schedule.c - a channel's delayed messages: hop_send_at(),
 * hop_send_batch_at(), hop_requeue_at(), and the scheduler's call that
 * hands them on when due.
 *
 * They wait apart from the queue files, so that a message due in a week
 * pins no queue file, in delay files (delay_file.c) of two kinds, and RAM
 * holds one small entry a file (schedule_index.c), none a message:
 *   - a window file per 60 s of due times, for messages due later than
 *     the next second;
 *   - when a window is about to begin (1 s ahead), the scheduler streams
 *     it, in order, into near files of 1 s (schedule_split.c); a message
 *     due in a window already split goes straight to its near file;
 *   - a near file is handed on slot by slot (schedule_hand_on.c): when the
 *     50-ms slot of its earliest record ends, every record of that slot
 *     goes, in file order: never early, at most ~50 ms late, and messages
 *     due at the same time keep the order they arrived in. A second's
 *     messages share one file, read once a slot, rather than a file a
 *     slot: creating and removing files cost more than reading them.
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
 * splits; it is taken before the channel's locks and dropped while records
 * are handed on (a send may wait for a sync, whose callbacks may send
 * again).
 */
#include "schedule.h"

#include "alloc.h"
#include "budget.h"
#include "recv.h"
#include "schedule_hand_on.h"
#include "schedule_index.h"
#include "schedule_split.h"

#include <string.h>

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

/* The file a message due at due goes to: its window, unless the window
 * begins within a second and has no file (split already, or never had
 * one): then its near file. */
static hop__delay_id target(hop__schedule *s, uint64_t due, uint64_t now)
{
    hop__delay_id w = {HOP__DELAY_WINDOW, due - due % HOP__DELAY_WINDOW_MS};
    if (hop__sfile_find(s, w) || w.start > now + HOP__SPLIT_AHEAD_MS)
        return w;
    return (hop__delay_id){HOP__DELAY_NEAR, due - due % HOP__DELAY_NEAR_MS};
}

/* Records whose due time the clock passed on their way here (the
 * scheduler may have handed their slot on meanwhile) are due a moment
 * from now: a slot handed on, or being handed on, never gets a record
 * again, and they still go after the records due before them. The clock
 * is read under s->lock, after the scheduler's pass took its own now. */
static void clamp_due(hop__delay_rec *recs, size_t n)
{
    uint64_t now = hop_now_ms();
    if (recs[0].due_ms <= now)
        for (size_t i = 0; i < n; i++)
            recs[i].due_ms = now + 1;
}

/* Append recs[0..n) (all due at recs[0].due_ms) to the file they belong
 * in: all or none. s->lock held. */
static hop_err store(hop__schedule *s, hop__delay_rec *recs, size_t n, uint64_t now)
{
    hop_budget *budget = s->ch->limits.budget;
    uint64_t need = HOP__DELAY_HEADER_SIZE;
    for (size_t i = 0; i < n; i++)
        need += hop__delay_record_size(recs[i].len);
    hop_err err = reserve(s, need);
    if (err != HOP_OK)
        return err;
    clamp_due(recs, n);
    hop__delay_id id = target(s, recs[0].due_ms, now);
    hop__sfile *f = hop__schedule_register(s) ? hop__sfile_get(s, id) : NULL;
    if (f == NULL) {
        hop__budget_disk_release(budget, need);
        return HOP_NOMEM;
    }
    uint64_t added = 0;
    err = hop__delay_file_append(s->dirfd, id, recs, n, s->ch->limits.durable, &added);
    hop__budget_disk_release(budget, need - added);
    if (err != HOP_OK) {
        if (f->bytes == 0)
            hop__sfile_drop(s, f);
        hop__schedule_io_error(s->ch, "writing delay file");
        return err;
    }
    hop__sfile_appended(s, f, recs, n, added);
    hop__schedule_reschedule(s);
    return HOP_OK;
}

/* Store recs[0..n) in ch's schedule, at the time their due times say. */
static hop_err put(hop_channel *ch, hop__delay_rec *recs, size_t n, uint64_t now)
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
    if (hop__recv_drop_purged(ch, data))
        return HOP_OK; /* out at a purge: dropped, as hop_requeue() does */
    hop_err err = put(ch, &(hop__delay_rec){due_ms, HOP__DELAY_HEAD, data, len}, 1, now);
    if (err == HOP_OK)
        hop_free(data); /* its copy in the delay file stands for it now */
    return err;
}

/* ---- the scheduler's call ---- */

void hop__schedule_run(void *arg, uint64_t now)
{
    hop__schedule *s = arg;
    pthread_mutex_lock(&s->lock);
    if (s->retry_at <= now) {
        s->retry_at = 0;
        hop__sfile *f;
        uint64_t at;
        while ((f = hop__sfile_earliest(s, &at)) != NULL && at <= now) {
            hop__delay_id id = f->id;
            hop_err err = id.kind == HOP__DELAY_WINDOW ? hop__schedule_split(s, id)
                                                       : hop__schedule_hand_on(s, id, now);
            if (err != HOP_OK) {
                s->retry_at = hop_now_ms() + HOP__RETRY_MS;
                break;
            }
        }
    }
    hop__schedule_reschedule(s);
    pthread_mutex_unlock(&s->lock);
}

void hop__schedule_stats(hop_channel *ch, size_t *messages, size_t *bytes, uint64_t *corrupt)
{
    hop__schedule *s = ch->schedule;
    *messages = *bytes = 0;
    *corrupt = 0;
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    *messages = (size_t)(s->records - s->leaving);
    *bytes = (size_t)s->bytes;
    *corrupt = s->corrupt;
    pthread_mutex_unlock(&s->lock);
}
