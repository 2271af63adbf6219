/* schedule_split.c - a window file streamed, 1 s before its window begins,
 * into the near files of its records' seconds (the order of arrival kept
 * within each), so that its records are handed on slot by slot. */
#include "schedule_split.h"

#include "alloc.h"
#include "budget.h"
#include "io.h"

static hop__delay_id near_of(uint64_t due_ms)
{
    return (hop__delay_id){HOP__DELAY_NEAR, due_ms - due_ms % HOP__DELAY_NEAR_MS};
}

/* Move one record of window `from` to its near file. s->lock held. */
static hop_err split_record(hop__schedule *s, hop__delay_id from, const hop__delay_rec *rec)
{
    hop__delay_id to = near_of(rec->due_ms);
    hop__sfile *g = hop__sfile_get(s, to);
    if (g == NULL)
        return HOP_NOMEM;
    uint64_t added;
    hop_err err = hop__delay_file_append(s->dirfd, to, rec, 1, false, &added); /* synced later */
    if (err != HOP_OK) {
        if (g->bytes == 0)
            hop__sfile_drop(s, g);
        hop__schedule_io_error(s->ch, "writing delay file");
        return err;
    }
    hop__budget_disk_charge(s->ch->limits.budget, added); /* moved, not new */
    hop__sfile_appended(s, g, rec, 1, added);
    hop__sfile_find(s, from)->records--;
    s->records--; /* counted once, in the near file now */
    return HOP_OK;
}

/* A split writes the window's progress mark every SPLIT_CHECKPOINT
 * records (durable: once the near files written to are synced), so that
 * a crash repeats at most that many moves, and a durable channel syncs a
 * file once a checkpoint rather than once a record. */
#define SPLIT_CHECKPOINT 64

typedef struct split_state {
    hop__delay_reader r;
    uint64_t moved_to;                       /* the offset after the last record dealt with */
    size_t since;                            /* records dealt with since the last checkpoint */
    hop__delay_id touched[SPLIT_CHECKPOINT]; /* the near files written to since */
    size_t ntouched;
} split_state;

static void split_touch(split_state *sp, hop__delay_id id)
{
    for (size_t i = 0; i < sp->ntouched; i++)
        if (sp->touched[i].start == id.start)
            return;
    sp->touched[sp->ntouched++] = id;
}

/* Everything moved so far is in its near file (durable: synced): mark the
 * window past it. The mark is written even if a sync failed (logged,
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
        hop__schedule_io_error(s->ch, "syncing delay file");
    if (sp->since > 0 && !hop__delay_reader_mark(&sp->r, (hop__delay_mark){0, sp->moved_to}))
        hop__schedule_io_error(s->ch, "marking delay file"); /* at worst moved twice */
    sp->since = sp->ntouched = 0;
    return synced ? HOP_OK : HOP_IO;
}

hop_err hop__schedule_split(hop__schedule *s, hop__delay_id id)
{
    split_state sp = {.since = 0};
    if (hop__delay_reader_open(s->dirfd, id, &sp.r) != HOP_OK) {
        hop__schedule_io_error(s->ch, "opening delay file");
        return HOP_IO;
    }
    sp.moved_to = sp.r.off;
    hop_err err = HOP_OK;
    hop__delay_read res;
    hop__delay_rec rec;
    uint64_t at = sp.r.off;
    while (err == HOP_OK && ((res = hop__delay_reader_next(&sp.r, &rec)) == HOP__DELAY_READ_OK ||
                             res == HOP__DELAY_READ_CORRUPT)) {
        if (res == HOP__DELAY_READ_OK) {
            err = split_record(s, id, &rec);
            if (err == HOP_OK)
                split_touch(&sp, near_of(rec.due_ms));
            hop__free(rec.data);
        } else if (at >= hop__sfile_find(s, id)->counted_to) { /* else counted at open */
            s->corrupt++;
        }
        at = sp.r.off;
        if (err == HOP_OK) {
            sp.moved_to = sp.r.off;
            sp.since++;
        }
        if (err == HOP_OK && sp.since == SPLIT_CHECKPOINT)
            err = split_checkpoint(s, &sp);
    }
    if (err == HOP_OK && res == HOP__DELAY_READ_ERROR) {
        hop__schedule_io_error(s->ch, "reading delay file");
        err = HOP_IO;
    }
    hop_err synced = split_checkpoint(s, &sp);
    hop__delay_reader_close(&sp.r);
    if (err == HOP_OK && synced == HOP_OK)
        hop__sfile_finished(s, id);
    return err != HOP_OK ? err : synced;
}
