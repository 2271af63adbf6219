/* schedule_index.c - the index of a schedule's delay files (see
 * schedule_index.h): what each holds, and when it needs work. */
#include "schedule_index.h"

#include "budget.h"
#include "log.h"

#include <errno.h>
#include <string.h>

hop__sfile *hop__sfile_find(hop__schedule *s, hop__delay_id id)
{
    hop__sfile *f = s->files.items;
    for (size_t i = 0; i < s->files.count; i++)
        if (f[i].id.kind == id.kind && f[i].id.start == id.start)
            return &f[i];
    return NULL;
}

hop__sfile *hop__sfile_get(hop__schedule *s, hop__delay_id id)
{
    hop__sfile *f = hop__sfile_find(s, id);
    hop__sfile empty = {
        .id = id,
        .mark = {0, HOP__DELAY_HEADER_SIZE},
        .low = HOP__DELAY_HEADER_SIZE,
        .next_due = UINT64_MAX,
        .sorted = true,
    };
    if (f == NULL && hop__array_push(&s->files, &empty, sizeof empty))
        f = (hop__sfile *)s->files.items + s->files.count - 1;
    return f;
}

void hop__sfile_drop(hop__schedule *s, hop__sfile *f)
{
    hop__sfile *last = (hop__sfile *)s->files.items + s->files.count - 1;
    *f = *last;
    s->files.count--;
}

void hop__sfile_appended(hop__schedule *s, hop__sfile *f, const hop__delay_rec *recs, size_t n,
                         uint64_t added)
{
    uint64_t off = f->bytes ? f->bytes : HOP__DELAY_HEADER_SIZE;
    for (size_t i = 0; i < n; i++) {
        if (f->records == 0)
            f->low = off;
        f->records++;
        if (recs[i].due_ms < f->next_due)
            f->next_due = recs[i].due_ms;
        f->sorted = f->sorted && recs[i].due_ms >= f->last_due;
        f->last_due = recs[i].due_ms;
        off += hop__delay_record_size(recs[i].len);
    }
    f->bytes += added;
    s->records += n;
    s->bytes += added;
}

void hop__sfile_finished(hop__schedule *s, hop__delay_id id)
{
    hop__sfile *f = hop__sfile_find(s, id);
    if (hop__delay_file_unlink(s->dirfd, id) != 0 && errno != ENOENT) {
        hop__schedule_io_error(s->ch, "removing delay file");
        f->promoting = false;
        f->records = 0;
        f->next_due = id.start; /* nothing left in it: tried again, then removed */
        return;
    }
    s->bytes -= f->bytes;
    s->records -= f->records; /* 0 but for corrupt records the scan did not count */
    hop__budget_disk_release(s->ch->limits.budget, f->bytes);
    hop__sfile_drop(s, f);
}

/* When f needs work: a window when it is about to begin, a near file (or
 * a slot of version 1) when the slot of its earliest record ends. */
static uint64_t action_at(const hop__sfile *f)
{
    if (f->id.kind == HOP__DELAY_WINDOW)
        return f->id.start > HOP__SPLIT_AHEAD_MS ? f->id.start - HOP__SPLIT_AHEAD_MS : 0;
    return f->next_due == UINT64_MAX ? HOP__NEVER : hop__delay_slot_end(f->id, f->next_due);
}

hop__sfile *hop__sfile_earliest(hop__schedule *s, uint64_t *at)
{
    hop__sfile *f = s->files.items, *best = NULL;
    *at = HOP__NEVER;
    for (size_t i = 0; i < s->files.count; i++)
        if (!f[i].promoting && action_at(&f[i]) < *at) {
            best = &f[i];
            *at = action_at(best);
        }
    return best;
}

void hop__schedule_reschedule(hop__schedule *s)
{
    if (!s->registered)
        return;
    uint64_t due;
    hop__sfile_earliest(s, &due);
    if (due != HOP__NEVER && s->retry_at > due)
        due = s->retry_at;
    hop__scheduler_set(&s->entry, due);
}

bool hop__schedule_register(hop__schedule *s)
{
    if (!s->registered && hop__scheduler_add(&s->entry))
        s->registered = true;
    return s->registered;
}

void hop__schedule_io_error(hop_channel *ch, const char *what)
{
    int saved = errno;
    pthread_mutex_lock(&ch->lock);
    ch->io_errors_total++;
    pthread_mutex_unlock(&ch->lock);
    hop__log(HOP_LOG_ERROR, ch->name, "%s: %s", what, strerror(saved));
    errno = saved;
}
