/* message.h - a message held in memory, and the in-memory FIFO of them.
 *
 * A message is one allocation: this header followed by the payload. The
 * pointer handed to callers is the payload, so hop_free() and hop_requeue()
 * find the header again without a lookup and hop_requeue() never needs to
 * allocate (it cannot fail for lack of memory). */
#ifndef HOP_MESSAGE_H
#define HOP_MESSAGE_H

#include "alloc.h"
#include "budget.h"

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct hop__flight;
struct hop__hold;

typedef struct hop__msg {
    union {
        struct hop__msg *next;  /* while in a FIFO */
        struct hop__hold *hold; /* while a receiver has it: its hop_hold(), or NULL */
    };
    size_t len;
    uint32_t magic;             /* HOP__MSG_MAGIC while owned by a channel or a caller */
    uint32_t take_order;        /* its place when first taken from its channel, 0: never */
    struct hop__flight *flight; /* the queue file record it was read from, or NULL */
    _Alignas(16) unsigned char data[];
} hop__msg;

#define HOP__MSG_MAGIC 0x6d706f68u /* "hopm" */

/* What malloc keeps beside each block, counted so the memory bound is one of
 * real bytes, not of payloads. */
#define HOP__MALLOC_OVERHEAD 16

/* Bytes a message of len payload bytes counts against memory_bytes. */
static inline size_t hop__message_cost(size_t len)
{
    return sizeof(hop__msg) + len + HOP__MALLOC_OVERHEAD;
}

/* A new message with room for len bytes, payload uninitialised; NULL if out
 * of memory. */
hop__msg *hop__msg_new(size_t len);
/* A new message holding a copy of data[0..len); NULL if out of memory. */
static inline hop__msg *hop__msg_copy(const void *data, size_t len)
{
    hop__msg *m = hop__msg_new(len);
    if (m != NULL && len)
        memcpy(m->data, data, len);
    return m;
}

/* The message whose payload is data, or NULL if data is not one. */
static inline hop__msg *hop__msg_of(void *data)
{
    if (data == NULL)
        return NULL;
    hop__msg *m = (hop__msg *)((unsigned char *)data - offsetof(hop__msg, data));
    return m->magic == HOP__MSG_MAGIC ? m : NULL;
}

static inline void hop__msg_free(hop__msg *m)
{
    if (m == NULL)
        return;
    m->magic = 0; /* a second hop_free() of the same pointer is then caught */
    hop__free(m);
}

/* A FIFO of messages with their cost summed. Not locked: the channel's lock
 * guards it. With a budget, what it holds is charged there too: a message
 * pushed at the tail (a send) must have reserved its cost first
 * (hop__budget_reserve()); one pushed back at the head is charged; one
 * popped is released. */
typedef struct hop__membuf {
    hop__msg *head, *tail;
    size_t count;
    size_t bytes;       /* sum of hop__message_cost() of the messages held */
    hop_budget *budget; /* NULL, or the shared budget (borrowed) */
} hop__membuf;

/* The FIFO operations are inline: they sit on every send and receive. */
static inline void hop__membuf_init(hop__membuf *b)
{
    b->head = b->tail = NULL;
    b->count = 0;
    b->bytes = 0;
    b->budget = NULL;
}

/* A new message, at the tail: its cost was reserved in the budget. */
static inline void hop__membuf_push_tail(hop__membuf *b, hop__msg *m)
{
    m->next = NULL;
    if (b->tail)
        b->tail->next = m;
    else
        b->head = m;
    b->tail = m;
    b->count++;
    b->bytes += hop__message_cost(m->len);
}

/* A message coming back, after prev: charged to the budget. */
static inline void hop__membuf_insert_after(hop__membuf *b, hop__msg *prev, hop__msg *m)
{
    m->next = prev->next;
    prev->next = m;
    if (b->tail == prev)
        b->tail = m;
    b->count++;
    b->bytes += hop__message_cost(m->len);
    hop__budget_charge(b->budget, hop__message_cost(m->len));
}

/* A message coming back, at the head: charged to the budget. */
static inline void hop__membuf_push_head(hop__membuf *b, hop__msg *m)
{
    m->next = b->head;
    b->head = m;
    if (b->tail == NULL)
        b->tail = m;
    b->count++;
    b->bytes += hop__message_cost(m->len);
    hop__budget_charge(b->budget, hop__message_cost(m->len));
}

/* The oldest message, removed; NULL if empty. */
static inline hop__msg *hop__membuf_pop_head(hop__membuf *b)
{
    hop__msg *m = b->head;
    if (m == NULL)
        return NULL;
    b->head = m->next;
    if (b->head == NULL)
        b->tail = NULL;
    m->next = NULL;
    b->count--;
    b->bytes -= hop__message_cost(m->len);
    hop__budget_release(b->budget, hop__message_cost(m->len));
    return m;
}

/* Free every message. */
void hop__membuf_release(hop__membuf *b);

#endif
