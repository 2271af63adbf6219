/* alloc.h - every allocation of the library goes through here, so tests can
 * make it fail and show that out-of-memory leaves everything intact. */
#ifndef HOP_ALLOC_H
#define HOP_ALLOC_H

#include <stddef.h>
#include <stdlib.h>

void *hop__malloc(size_t size);
void *hop__calloc(size_t n, size_t size);
/* Releases what hop__malloc() and hop__calloc() gave. */
static inline void hop__free(void *p)
{
    free(p);
}

/* Tests only: replace malloc (NULL restores it). The replacement must
 * return memory that free() releases. */
void hop__alloc_set_malloc(void *(*fn)(size_t));

#endif
