/* array.h - a growable array of fixed-size elements, for the lists the
 * library builds as it goes (skipped ranges, files found at open, files
 * that could not be removed, the bytes of a journal). It doubles when full;
 * its memory comes from hop__malloc() (alloc.h), so the out-of-memory tests
 * reach every growth. */
#ifndef HOP_ARRAY_H
#define HOP_ARRAY_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hop__array {
    void *items; /* count elements in use, room for cap; NULL while cap is 0 */
    size_t count;
    size_t cap;
} hop__array;

/* Make room for at least more elements of size bytes after the count in
 * use: the capacity doubles, or grows to count + more if that is larger.
 * False if out of memory (or the size would overflow): a is unchanged. */
bool hop__array_reserve(hop__array *a, size_t more, size_t size);

/* Append a copy of the size bytes at item. False if out of memory: a is
 * unchanged. */
bool hop__array_push(hop__array *a, const void *item, size_t size);

/* Free the elements: a is empty again (and may be used again). */
void hop__array_release(hop__array *a);

#endif
