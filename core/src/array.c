/* array.c - the growable array (see array.h). */
#include "array.h"

#include "alloc.h"

#include <stdint.h>
#include <string.h>

bool hop__array_reserve(hop__array *a, size_t more, size_t size)
{
    if (a->cap - a->count >= more)
        return true;
    if (more > SIZE_MAX - a->count)
        return false;
    size_t need = a->count + more;
    size_t cap = a->cap <= SIZE_MAX / 2 ? a->cap * 2 : need;
    if (cap < need)
        cap = need;
    if (size != 0 && cap > SIZE_MAX / size)
        return false;
    /* hop__malloc, not realloc: the allocation hook replaces malloc only */
    void *items = hop__malloc(cap * size);
    if (items == NULL)
        return false;
    if (a->count > 0)
        memcpy(items, a->items, a->count * size);
    hop__free(a->items);
    a->items = items;
    a->cap = cap;
    return true;
}

bool hop__array_push(hop__array *a, const void *item, size_t size)
{
    if (!hop__array_reserve(a, 1, size))
        return false;
    memcpy((unsigned char *)a->items + a->count * size, item, size);
    a->count++;
    return true;
}

void hop__array_release(hop__array *a)
{
    hop__free(a->items);
    a->items = NULL;
    a->count = 0;
    a->cap = 0;
}
