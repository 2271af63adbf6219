/* flight.c - the messages receivers have: a record read from a queue file
 * is in flight until its receiver hop_free()s it, and only then consumed:
 * written to the journal, and its file removed once all of its records are
 * (so a crash while a message is being delivered brings it back after a
 * restart). A message held with hop_hold() counts against memory_bytes
 * until it is freed or requeued.
 *
 * The channel keeps its flights in the order they were read, which is file
 * order; a consumed one stays in the list while an older one is not, so
 * that the journal can still name it (persist.c). */
#include "flight.h"

#include "alloc.h"
#include "disk.h"
#include "journal.h"
#include "persist.h"

void hop__flight_start(hop_channel *ch, hop__flight *fl, hop__qfile *f, uint64_t off, hop__msg *m)
{
    *fl = (hop__flight){.ch = ch, .file = f, .off = off, .state = HOP__FLIGHT_OUT};
    if (ch->flights_tail)
        ch->flights_tail->next = fl;
    else
        ch->flights_head = fl;
    ch->flights_tail = fl;
    ch->in_flight++;
    m->flight = fl;
}

void hop__flight_drop(hop_channel *ch, hop__flight *fl)
{
    fl->state = HOP__FLIGHT_DROPPED;
    ch->in_flight--;
}

/* Free the consumed flights at the head of the list: nothing older is in
 * flight, so the journal no longer needs them. ch->lock held. */
static void release_consumed_head(hop_channel *ch)
{
    while (ch->flights_head && ch->flights_head->state == HOP__FLIGHT_DONE) {
        hop__flight *first = ch->flights_head;
        ch->flights_head = first->next;
        if (ch->flights_head == NULL)
            ch->flights_tail = NULL;
        hop__free(first);
    }
}

/* The records of fls[0..n), all read from ch's queue files, are consumed:
 * files now finished go, and the journal says so, in one append. Without
 * locks. */
static void consume(hop_channel *ch, hop__flight **fls, size_t n)
{
    hop__consumed done[HOP__JOURNAL_APPEND_MAX];
    size_t k = 0;
    bool finishing = false;
    pthread_mutex_lock(&ch->lock);
    for (size_t i = 0; i < n; i++) {
        hop__flight *fl = fls[i];
        if (fl->ch == NULL) { /* purged while the lock was taken: its file may be gone */
            hop__free(fl);
            continue;
        }
        hop__qfile *f = fl->file;
        done[k++] = (hop__consumed){f->seq, fl->off};
        fl->state = HOP__FLIGHT_DONE;
        ch->in_flight--;
        finishing |= hop__disk_consumed(&ch->disk, f);
    }
    release_consumed_head(ch); /* any of fls may be freed here */
    pthread_mutex_unlock(&ch->lock);
    /* Only a file that is finished now needs the reader's lock, to go: the
     * reader holds it while it reads a batch, and waiting for it every
     * time would make a receiver's free wait for another's read. */
    if (finishing) {
        hop__qfile *finished = NULL;
        pthread_mutex_lock(&ch->read_lock);
        pthread_mutex_lock(&ch->lock);
        hop__disk_detach_finished(&ch->disk, &finished);
        pthread_mutex_unlock(&ch->lock);
        hop__disk_remove(&ch->disk, finished);
        pthread_mutex_unlock(&ch->read_lock);
        hop__qfile_free_list(finished);
    }
    if (k > 0)
        hop__persist_consumed(ch, done, k);
}

/* Flights of one channel waiting to be consumed together (hop_free_all()). */
typedef struct consuming {
    hop_channel *ch;
    hop__flight *fls[HOP__JOURNAL_APPEND_MAX];
    size_t n;
} consuming;

static void consuming_flush(consuming *c)
{
    if (c->n > 0)
        consume(c->ch, c->fls, c->n);
    c->n = 0;
}

/* fl's record is consumed, with those of c when they are of one channel. */
static void consuming_add(consuming *c, hop__flight *fl)
{
    hop_channel *ch = __atomic_load_n(&fl->ch, __ATOMIC_ACQUIRE);
    if (ch == NULL) { /* the channel was closed, or purged, meanwhile */
        hop__free(fl);
        return;
    }
    if (c->n == HOP__JOURNAL_APPEND_MAX || (c->n > 0 && c->ch != ch))
        consuming_flush(c);
    c->ch = ch;
    c->fls[c->n++] = fl;
}

/* True if a hold of cost more fits: the held messages may count up to
 * memory_bytes, and one is always allowed; then the shared budget must give
 * cost (it is charged: the caller holds the message). ch->lock held. */
static bool hold_fits(const hop_channel *ch, size_t cost)
{
    return (ch->held == 0 || (cost <= ch->limits.memory_bytes &&
                              ch->held_bytes <= ch->limits.memory_bytes - cost)) &&
           hop__budget_reserve(ch->limits.budget, cost);
}

hop_err hop_hold(hop_channel *ch, void *data)
{
    hop__msg *m = hop__msg_of(data);
    if (ch == NULL || m == NULL ||
        (m->flight && __atomic_load_n(&m->flight->ch, __ATOMIC_ACQUIRE) != ch))
        return HOP_INVALID;
    hop__hold *h = hop__malloc(sizeof *h);
    if (h == NULL)
        return HOP_NOMEM;
    size_t cost = hop__message_cost(m->len);
    pthread_mutex_lock(&ch->lock);
    hop_err err = ch->closed ? HOP_CLOSED : m->hold ? HOP_INVALID : HOP_OK;
    if (err == HOP_OK && !hold_fits(ch, cost))
        err = HOP_FULL;
    if (err == HOP_OK) {
        *h = (hop__hold){
            .prev = NULL, .next = ch->holds, .ch = ch, .cost = cost, .budget = ch->limits.budget};
        if (ch->holds)
            ch->holds->prev = h;
        ch->holds = h;
        ch->held++;
        ch->held_bytes += cost;
        m->hold = h;
    }
    pthread_mutex_unlock(&ch->lock);
    if (err != HOP_OK)
        hop__free(h);
    return err;
}

void hop__hold_end(hop_channel *ch, hop__msg *m)
{
    hop__hold *h = m->hold;
    if (h == NULL)
        return;
    if (h->prev)
        h->prev->next = h->next;
    else
        ch->holds = h->next;
    if (h->next)
        h->next->prev = h->prev;
    ch->held--;
    ch->held_bytes -= h->cost;
    hop__budget_release(h->budget, h->cost);
    m->hold = NULL;
    hop__free(h);
}

/* The hold of m ends, from hop_free(): its channel may be closed. */
static void hold_end_unlocked(hop__msg *m)
{
    hop_channel *ch = m->hold->ch;
    if (ch == NULL) { /* closed: only the node is left */
        hop__budget_release(m->hold->budget, m->hold->cost);
        hop__free(m->hold);
        m->hold = NULL;
        return;
    }
    pthread_mutex_lock(&ch->lock);
    hop__hold_end(ch, m);
    pthread_mutex_unlock(&ch->lock);
}

void hop_free(void *data)
{
    hop_free_all(&data, 1);
}

void hop_free_all(void *const *data, size_t n)
{
    consuming c = {.n = 0};
    for (size_t i = 0; i < n; i++) {
        hop__msg *m = hop__msg_of(data[i]);
        if (m == NULL)
            continue;
        if (m->hold)
            hold_end_unlocked(m);
        if (m->flight) /* the flight is the channel's: it outlives m */
            consuming_add(&c, m->flight);
        hop__msg_free(m);
    }
    consuming_flush(&c);
}

size_t hop__flight_cut_off(hop_channel *ch)
{
    size_t out = 0;
    hop__flight *fl = ch->flights_head;
    ch->flights_head = ch->flights_tail = NULL;
    while (fl) {
        hop__flight *next = fl->next;
        if (fl->state == HOP__FLIGHT_OUT) {
            /* a receiver has its message: hop_free() frees the node, which
             * it may do as soon as it sees ch NULL (so that comes last) */
            fl->file = NULL;
            __atomic_store_n(&fl->ch, NULL, __ATOMIC_RELEASE);
            out++;
        } else {
            hop__free(fl); /* nothing refers to it (the caller frees memory next) */
        }
        fl = next;
    }
    ch->in_flight = 0;
    return out;
}

void hop__flight_release_all(hop_channel *ch)
{
    for (hop__hold *h = ch->holds; h; h = h->next)
        h->ch = NULL; /* hop_free() frees the node */
    ch->holds = NULL;
    hop__flight_cut_off(ch);
}
