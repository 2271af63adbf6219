/* message.c - message allocation and the in-memory FIFO (see message.h). */
#include "message.h"

#include "alloc.h"

#include <stddef.h>

hop__msg *hop__msg_new(size_t len)
{
    if (len > SIZE_MAX - sizeof(hop__msg))
        return NULL;
    hop__msg *m = hop__malloc(sizeof(hop__msg) + len);
    if (m == NULL)
        return NULL;
    m->next = NULL;
    m->len = len;
    m->magic = HOP__MSG_MAGIC;
    return m;
}

hop__msg *hop__msg_of(void *data)
{
    if (data == NULL)
        return NULL;
    hop__msg *m = (hop__msg *)((unsigned char *)data - offsetof(hop__msg, data));
    return m->magic == HOP__MSG_MAGIC ? m : NULL;
}

void hop__msg_free(hop__msg *m)
{
    if (m == NULL)
        return;
    m->magic = 0; /* a second hop_free() of the same pointer is then caught */
    hop__free(m);
}

void hop__membuf_init(hop__membuf *b)
{
    b->head = b->tail = NULL;
    b->count = 0;
    b->bytes = 0;
}

void hop__membuf_push_tail(hop__membuf *b, hop__msg *m)
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

void hop__membuf_push_head(hop__membuf *b, hop__msg *m)
{
    m->next = b->head;
    b->head = m;
    if (b->tail == NULL)
        b->tail = m;
    b->count++;
    b->bytes += hop__message_cost(m->len);
}

hop__msg *hop__membuf_pop_head(hop__membuf *b)
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
    return m;
}

void hop__membuf_release(hop__membuf *b)
{
    hop__msg *m;
    while ((m = hop__membuf_pop_head(b)) != NULL)
        hop__msg_free(m);
}
