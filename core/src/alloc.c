/* alloc.c - the allocation hook (see alloc.h). */
#include "alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static _Atomic(void *(*)(size_t)) malloc_fn = malloc;

void hop__alloc_set_malloc(void *(*fn)(size_t))
{
    atomic_store(&malloc_fn, fn ? fn : malloc);
}

void *hop__malloc(size_t size)
{
    return atomic_load_explicit(&malloc_fn, memory_order_relaxed)(size);
}

void *hop__calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = hop__malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}
