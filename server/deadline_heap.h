/* deadline_heap.h - a min-heap of deadlines, the pending items of the
 * server's timer (timer.c). An item is embedded in the struct it times; the
 * heap keeps its position in it, so removing any item is O(log n). Not
 * locked: its owner's lock guards it. */
#ifndef HOPPER_SERVER_DEADLINE_HEAP_H
#define HOPPER_SERVER_DEADLINE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEADLINE_NOT_IN_HEAP SIZE_MAX

typedef struct deadline_item {
    uint64_t deadline_ms; /* CLOCK_MONOTONIC milliseconds */
    size_t index;         /* DEADLINE_NOT_IN_HEAP when not in a heap */
} deadline_item;

typedef struct deadline_heap {
    deadline_item **items;
    size_t count, cap;
} deadline_heap;

/* Milliseconds of CLOCK_MONOTONIC. */
uint64_t deadline_now_ms(void);

/* Add it (not in a heap). False if out of memory (it stays out). */
bool deadline_heap_push(deadline_heap *h, deadline_item *it);
/* Remove it if it is in the heap. */
void deadline_heap_remove(deadline_heap *h, deadline_item *it);
/* Its deadline changed: restore the order. it must be in the heap. */
void deadline_heap_update(deadline_heap *h, deadline_item *it);
/* The earliest, or NULL when empty. */
deadline_item *deadline_heap_first(const deadline_heap *h);
/* Empty h: every item in it is marked not in a heap (the items are their
 * owners'), and the array is freed. */
void deadline_heap_clear(deadline_heap *h);

#endif
