/* schedule_hand_on.c - a near file's slots handed on to the channel.
 *
 * A near file holds the records due in one second in the order they
 * arrived, so a slot's records lie among those of other slots. A pass
 * over a slot reads the file from the first record still to go
 * (hop__sfile.low), hands that slot's records on in batches, and notes the
 * earliest record of a later slot, which says when the next pass is due
 * and where it starts. A file whose due times never fall (the usual case
 * for one delay) ends a pass at the first record of a later slot. At most
 * 20 passes read a file; each marks its progress (delay_file.h) as it
 * goes, and at its end moves the mark to the next slot.
 */
#include "schedule_hand_on.h"

#include "alloc.h"
#include "log.h"
#include "recv.h"

/* Put rec into its channel, as it was delayed to do. */
static hop_err hand_on_one(hop_channel *ch, const hop__delay_rec *rec)
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

/* Records handed on together: tail records of the slot in a row (one
 * hop_send_batch(), so a durable channel syncs once for them), or one
 * given back to the head. */
#define BATCH_RECORDS 64
#define BATCH_BYTES ((size_t)1 << 20)

typedef struct batch {
    hop__delay_rec recs[BATCH_RECORDS];
    uint64_t ends[BATCH_RECORDS]; /* the offset after each */
    size_t n;
    size_t bytes;
} batch;

/* Whether rec joins the tail: sent, as a durable channel gives back too. */
static bool to_tail(const hop_channel *ch, const hop__delay_rec *rec)
{
    return rec->kind == HOP__DELAY_TAIL || ch->limits.durable;
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
        if (err != HOP_TOO_BIG) /* else one by one: hand_on_one() drops the big one */
            return err;
    }
    for (err = HOP_OK; *handed < b->n && err == HOP_OK; ++*handed)
        err = hand_on_one(ch, &b->recs[*handed]);
    if (err != HOP_OK)
        --*handed;
    return err;
}

/* One pass over a slot. */
typedef struct pass {
    hop__delay_id id;
    unsigned slot;
    uint64_t from;     /* the slot's records before this offset went already */
    uint64_t next_due; /* the earliest record of a later slot: its due time */
    uint64_t next_low; /* and the offset of the first such record; UINT64_MAX: none */
    batch b;
} pass;

/* Hand on p's batch: s->lock dropped meanwhile. Marks the progress, and
 * counts what went. */
static hop_err pass_flush(hop__schedule *s, pass *p, hop__delay_reader *r)
{
    batch *b = &p->b;
    size_t handed = 0;
    s->leaving += b->n; /* a receiver may see them before the counts below change */
    pthread_mutex_unlock(&s->lock);
    hop_err err = batch_hand_on(s->ch, b, &handed);
    hop__delay_mark m = {p->slot, handed ? b->ends[handed - 1] : 0};
    if (handed > 0 && !hop__delay_reader_mark(r, m))
        hop__schedule_io_error(s->ch, "marking delay file"); /* at worst handed on again */
    for (size_t i = 0; i < b->n; i++)
        hop__free(b->recs[i].data);
    pthread_mutex_lock(&s->lock);
    hop__sfile *f = hop__sfile_find(s, p->id);
    if (handed > 0)
        f->mark = m;
    f->records -= handed;
    s->records -= handed;
    s->leaving -= b->n;
    b->n = b->bytes = 0;
    return err;
}

/* What a pass does with a record. */
typedef enum take { TAKE, PASS_BY, STOP } take;

/* What pass p does with the record rec found at off: its slot's to take;
 * a later slot's noted (and, the file sorted, the pass stops there); one
 * that went already passed by. */
static take pass_sort(const hop__sfile *f, pass *p, uint64_t off, const hop__delay_rec *rec)
{
    unsigned slot = hop__delay_slot_of(p->id, rec->due_ms);
    if (slot > p->slot) {
        if (rec->due_ms < p->next_due)
            p->next_due = rec->due_ms;
        if (off < p->next_low)
            p->next_low = off;
        return f->sorted ? STOP : PASS_BY; /* sorted: every later record is of a later slot too */
    }
    return slot < p->slot || off < p->from ? PASS_BY : TAKE;
}

/* Read the file on r from f->low to its end (or, sorted, to the first
 * record of a later slot), handing on the records of p's slot: tail
 * records in batches, one given back to the head alone. s->lock held,
 * dropped while a batch goes. */
static hop_err pass_read(hop__schedule *s, pass *p, hop__delay_reader *r)
{
    batch *b = &p->b;
    hop_err err = HOP_OK;
    r->off = hop__sfile_find(s, p->id)->low;
    for (take t = PASS_BY; err == HOP_OK && t != STOP;) {
        hop__sfile *f = hop__sfile_find(s, p->id);
        r->size = f->bytes;
        uint64_t at = r->off;
        hop__delay_rec rec;
        hop__delay_read res = hop__delay_reader_next(r, &rec);
        if (res == HOP__DELAY_READ_ERROR) {
            hop__schedule_io_error(s->ch, "reading delay file");
            err = HOP_IO;
            break;
        }
        if (res != HOP__DELAY_READ_OK && res != HOP__DELAY_READ_CORRUPT) {
            /* The end (or junk, which the scan at open cut). What is
             * appended while the batch goes is read before the pass ends,
             * so that it ends having seen the whole file. */
            if (b->n == 0)
                break;
            err = pass_flush(s, p, r);
            continue;
        }
        if (res == HOP__DELAY_READ_CORRUPT && at >= f->counted_to) {
            s->corrupt++;
            hop__log(HOP_LOG_WARN, s->ch->name, "a corrupt record in a delay file: skipped");
        }
        if (r->off > f->counted_to)
            f->counted_to = r->off;
        if (res == HOP__DELAY_READ_CORRUPT)
            continue;
        if ((t = pass_sort(f, p, at, &rec)) != TAKE) {
            hop__free(rec.data);
            continue;
        }
        if (b->n > 0 && !to_tail(s->ch, &rec) && (err = pass_flush(s, p, r)) != HOP_OK) {
            hop__free(rec.data);
            break;
        }
        b->ends[b->n] = r->off;
        b->recs[b->n++] = rec;
        b->bytes += rec.len;
        if (b->n == BATCH_RECORDS || b->bytes >= BATCH_BYTES || !to_tail(s->ch, &rec))
            err = pass_flush(s, p, r);
    }
    if (err == HOP_OK && b->n > 0) /* stopped at a later slot's record: what follows is later */
        err = pass_flush(s, p, r);
    return err;
}

/* Hand on slot `slot` of file id, then move the mark to the next slot or
 * remove the file. s->lock held. */
static hop_err pass_over(hop__schedule *s, hop__delay_id id, hop__delay_reader *r, unsigned slot)
{
    hop__sfile *f = hop__sfile_find(s, id);
    pass p = {.id = id, .slot = slot, .next_due = UINT64_MAX, .next_low = UINT64_MAX};
    p.from = f->mark.slot == slot ? f->mark.off : HOP__DELAY_HEADER_SIZE;
    uint64_t due = f->next_due;
    f->next_due = UINT64_MAX; /* records appended meanwhile lower it */
    hop_err err = pass_read(s, &p, r);
    f = hop__sfile_find(s, id);
    if (p.next_due < f->next_due)
        f->next_due = p.next_due;
    if (err != HOP_OK) { /* the slot's rest waits */
        f->next_due = due;
        return err;
    }
    if (p.next_low == UINT64_MAX) { /* the whole file was read: nothing is left */
        hop__sfile_finished(s, id);
        return HOP_OK;
    }
    /* Slot + 1, not the next slot with a record: a record that arrives
     * later may be due between them. */
    hop__delay_mark m = {slot + 1, HOP__DELAY_HEADER_SIZE};
    if (!hop__delay_reader_mark(r, m))
        hop__schedule_io_error(s->ch, "marking delay file"); /* at worst handed on again */
    f->mark = m;
    f->low = p.next_low; /* what was appended meanwhile lies after it */
    return HOP_OK;
}

hop_err hop__schedule_hand_on(hop__schedule *s, hop__delay_id id, uint64_t now)
{
    hop__delay_reader r;
    if (hop__delay_reader_open(s->dirfd, id, &r) != HOP_OK) {
        hop__schedule_io_error(s->ch, "opening delay file");
        return HOP_IO;
    }
    hop__sfile *f = hop__sfile_find(s, id);
    f->promoting = true;
    hop_err err = HOP_OK;
    while (err == HOP_OK && (f = hop__sfile_find(s, id)) != NULL && f->next_due != UINT64_MAX &&
           hop__delay_slot_end(id, f->next_due) <= now)
        err = pass_over(s, id, &r, hop__delay_slot_of(id, f->next_due));
    hop__delay_reader_close(&r);
    if ((f = hop__sfile_find(s, id)) != NULL)
        f->promoting = false;
    pthread_cond_broadcast(&s->handed); /* a purge may wait for it */
    return err;
}
