/* peek.c - hop_peek(): the oldest ready messages of a channel shown, in the
 * order hop_recv() would take them, without taking any.
 *
 * hop_recv() takes memory first (messages given back at its head, then
 * the ones sent there), then the queue files, oldest first, from each
 * file's read position (recv.c). A peek walks the same way: memory under
 * the state lock, then the files with a cursor of its own (disk.c) that
 * starts at each read position and jumps the same skips, reading records
 * through the channel's read-ahead buffer. Nothing it does moves a read
 * position, a count, a flight or a take order.
 *
 * Locks: read_lock for the whole peek, as a receiver takes it to read
 * files: no receiver reads, consumes or removes a queue file meanwhile,
 * so the records being shown stay unread and their files stay; `lock`
 * (inside it) while memory is shown and while the cursor looks at the
 * files' published sizes, never while a file is read. Memory may still
 * be received from, and sent to, between the two parts. */
#include "hopper/hopper.h"

#include "budget.h"
#include "channel_state.h"
#include "disk.h"

#include <errno.h>

/* A peek under way: the caller's function, and how far it got. */
typedef struct peek {
    hop_peek_fn fn;
    void *arg;
    size_t max;
    size_t shown;
    bool stopped; /* fn returned false */
} peek;

static bool wants_more(const peek *p)
{
    return !p->stopped && p->shown < p->max;
}

static void show(peek *p, const void *data, size_t len)
{
    p->shown++;
    p->stopped = !p->fn(p->arg, data, len);
}

/* The messages in memory, oldest first. ch->lock held. */
static void peek_memory(hop_channel *ch, peek *p)
{
    for (hop__msg *m = ch->mem.head; m && wants_more(p); m = m->next)
        show(p, m->data, m->len);
}

/* Show the record read into m: its cost is charged to the budget while
 * fn has it, as a read message is (and m is freed). */
static void show_read(hop_channel *ch, peek *p, hop__msg *m)
{
    size_t cost = hop__message_cost(m->len);
    hop__budget_charge(ch->limits.budget, cost);
    show(p, m->data, m->len);
    hop__budget_release(ch->limits.budget, cost);
    hop__msg_free(m);
}

/* The unread records of the queue files, oldest first. A corrupt record,
 * or what follows a damaged length, is passed over as a receiver skips it.
 * HOP_IO (errno set) if a file cannot be read; HOP_NOMEM. read_lock held,
 * ch->lock not. */
static hop_err peek_disk(hop_channel *ch, peek *p)
{
    hop__disk_cursor c = {0};
    for (;;) {
        pthread_mutex_lock(&ch->lock);
        bool more = hop__disk_cursor_next(&ch->disk, &c);
        pthread_mutex_unlock(&ch->lock);
        if (!more)
            return HOP_OK;
        while (c.off < c.avail && wants_more(p)) {
            hop__msg *m;
            hop__read_result res = hop__disk_cursor_read(&ch->disk, &c, &m);
            if (res == HOP__READ_OK)
                show_read(ch, p, m);
            else if (res == HOP__READ_IO)
                return HOP_IO;
            else if (res == HOP__READ_NOMEM)
                return HOP_NOMEM;
        }
        if (!wants_more(p))
            return HOP_OK;
    }
}

hop_err hop_peek(hop_channel *ch, size_t max, hop_peek_fn fn, void *arg, size_t *shown)
{
    if (shown)
        *shown = 0;
    if (ch == NULL || fn == NULL)
        return HOP_INVALID;
    peek p = {.fn = fn, .arg = arg, .max = max};
    pthread_mutex_lock(&ch->read_lock);
    pthread_mutex_lock(&ch->lock);
    hop_err err = ch->closed ? HOP_CLOSED : HOP_OK;
    if (err == HOP_OK)
        peek_memory(ch, &p);
    pthread_mutex_unlock(&ch->lock);
    /* the read-ahead buffer is the receivers': one taken for the peek only
     * goes again, so that the budget is as it was */
    bool had_buffer = ch->disk.reader.buf != NULL;
    if (err == HOP_OK && wants_more(&p))
        err = peek_disk(ch, &p);
    int saved = errno;
    if (err == HOP_IO) {
        pthread_mutex_lock(&ch->lock);
        ch->io_errors_total++;
        pthread_mutex_unlock(&ch->lock);
    }
    if (!had_buffer)
        hop__disk_reader_release(&ch->disk);
    pthread_mutex_unlock(&ch->read_lock);
    if (shown)
        *shown = p.shown;
    errno = saved;
    return err;
}
