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
    m->take_order = 0;
    m->flight = NULL;
    return m;
}

void hop__membuf_release(hop__membuf *b)
{
    hop__msg *m;
    while ((m = hop__membuf_pop_head(b)) != NULL)
        hop__msg_free(m);
}
