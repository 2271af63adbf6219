/* time_model.c - the reference model of a channel with delayed messages
 * (time_model.h): a deque of visible messages and a list of delayed ones,
 * moved by the rules the core documents. */
#include "time_model.h"

#include "hopper/hopper.h"

#include <stdlib.h>
#include <string.h>

uint64_t tm_slot_end(uint64_t due)
{
    return due - due % TM_SLOT_MS + TM_SLOT_MS;
}

uint64_t tm_limit(const tm_model *t, const tm_msg *m)
{
    uint64_t limit = m->ttl;
    if (t->max_age > 0 && (limit == 0 || t->max_age < limit))
        limit = t->max_age;
    return limit;
}

bool tm_expired(const tm_model *t, const tm_msg *m, uint64_t now)
{
    uint64_t limit = tm_limit(t, m);
    return limit > 0 && now > m->received_at && now - m->received_at > limit;
}

size_t tm_memory_cost(const tm_model *t)
{
    size_t cost = 0;
    for (size_t i = 0; i < t->nqueue; i++)
        cost += t->queue[i].disk ? 0 : hop_message_cost(t->queue[i].len);
    return cost;
}

static void queue_insert(tm_model *t, size_t at, tm_msg m)
{
    if (t->nqueue == TM_MAX_MSGS)
        abort(); /* the test sends fewer */
    memmove(&t->queue[at + 1], &t->queue[at], (t->nqueue - at) * sizeof m);
    t->queue[at] = m;
    t->nqueue++;
}

/* All in memory if all fit there and no queue file holds unread records
 * (never when durable), else all in queue files. */
void tm_send(tm_model *t, const tm_msg *m, size_t n)
{
    size_t cost = 0, used = tm_memory_cost(t);
    for (size_t i = 0; i < n; i++)
        cost += hop_message_cost(m[i].len);
    bool full = cost > t->memory_bytes || used > t->memory_bytes - cost;
    bool disk = t->durable || (t->nqueue > 0 && t->queue[t->nqueue - 1].disk) || full;
    t->memory_full += disk && !t->durable && full;
    for (size_t i = 0; i < n; i++) {
        tm_msg x = m[i];
        x.disk = disk;
        x.flight = false;
        x.take = x.read = 0;
        queue_insert(t, t->nqueue, x);
    }
}

/* Ahead of everything never taken, behind the given-back messages first
 * taken before it (recv.c). */
void tm_requeue(tm_model *t, tm_msg m)
{
    size_t at = 0;
    while (at < t->nqueue && t->queue[at].take != 0 && t->queue[at].take < m.take)
        at++;
    m.disk = false;
    queue_insert(t, at, m);
}

void tm_delay(tm_model *t, tm_msg m, uint64_t due, bool head)
{
    if (t->ndelayed == TM_MAX_MSGS)
        abort();
    t->delayed[t->ndelayed++] = (tm_pending){m, due, head, ++t->seq};
}

/* The next delayed message whose slot has ended at now, in the order of
 * the slots and, within one, as they were delayed: removed into *p.
 * False if none is due. */
static bool next_due(tm_model *t, uint64_t now, tm_pending *p)
{
    size_t best = t->ndelayed;
    for (size_t i = 0; i < t->ndelayed; i++) {
        const tm_pending *x = &t->delayed[i], *b = &t->delayed[best];
        uint64_t end = tm_slot_end(x->due);
        if (end <= now && (best == t->ndelayed || end < tm_slot_end(b->due) ||
                           (end == tm_slot_end(b->due) && x->seq < b->seq)))
            best = i;
    }
    if (best == t->ndelayed)
        return false;
    *p = t->delayed[best];
    t->delayed[best] = t->delayed[--t->ndelayed];
    p->m.visible_at = tm_slot_end(p->due);
    return true;
}

/* Whether p joins the tail (a durable channel gives back there too). */
static bool to_tail(const tm_model *t, const tm_pending *p)
{
    return !p->head || t->durable;
}

/* Slot by slot; a run of up to TM_BATCH_RECORDS tail records of one slot
 * as one batch (all to memory or all to a queue file); a record given back
 * alone, to the head behind earlier give-backs, with a new take number. */
void tm_hand_on(tm_model *t, uint64_t now)
{
    tm_msg batch[TM_BATCH_RECORDS];
    size_t n = 0;
    uint64_t slot = 0;
    tm_pending p;
    while (next_due(t, now, &p)) {
        t->handed_on++;
        t->same_slot += tm_slot_end(p.due) == slot;
        if (n > 0 && (!to_tail(t, &p) || tm_slot_end(p.due) != slot || n == TM_BATCH_RECORDS)) {
            tm_send(t, batch, n);
            n = 0;
        }
        slot = tm_slot_end(p.due);
        if (to_tail(t, &p)) {
            batch[n++] = p.m;
            continue;
        }
        t->to_head++;
        p.m.flight = false;
        p.m.take = ++t->takes;
        tm_requeue(t, p.m);
    }
    if (n > 0)
        tm_send(t, batch, n);
}

bool tm_take(tm_model *t, tm_msg *m)
{
    if (t->nqueue == 0)
        return false;
    *m = t->queue[0];
    memmove(&t->queue[0], &t->queue[1], (t->nqueue - 1) * sizeof *m);
    t->nqueue--;
    if (m->disk) {
        m->disk = false;
        m->flight = true;
        m->read = ++t->reads;
    }
    if (m->take == 0)
        m->take = ++t->takes;
    return true;
}

static int by_read(const void *a, const void *b)
{
    const tm_msg *x = a, *y = b;
    return x->read < y->read ? -1 : x->read > y->read;
}

/* The close writes the held records first, in the order they were read,
 * then memory, to a file read before the others (persist.c); all of it
 * is in queue files after the open, and nothing is taken yet. */
void tm_restart(tm_model *t, const tm_msg *held, size_t n)
{
    tm_msg *back = malloc((n + t->nqueue + 1) * sizeof *back);
    if (back == NULL)
        abort();
    memcpy(back, held, n * sizeof *back);
    qsort(back, n, sizeof *back, by_read);
    memcpy(back + n, t->queue, t->nqueue * sizeof *back);
    n += t->nqueue;
    for (size_t i = 0; i < n; i++) {
        back[i].disk = true;
        back[i].flight = false;
        back[i].take = back[i].read = 0;
    }
    memcpy(t->queue, back, n * sizeof *back);
    t->nqueue = n;
    t->takes = t->reads = 0;
    free(back);
}
