/* deadline_heap.c - the min-heap of deadlines (see deadline_heap.h). */
#include "deadline_heap.h"

#include <stdlib.h>
#include <time.h>

uint64_t deadline_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void set(deadline_heap *h, size_t i, deadline_item *it)
{
    h->items[i] = it;
    it->index = i;
}

static void sift_up(deadline_heap *h, size_t i)
{
    deadline_item *it = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->deadline_ms <= it->deadline_ms)
            break;
        set(h, i, h->items[parent]);
        i = parent;
    }
    set(h, i, it);
}

static void sift_down(deadline_heap *h, size_t i)
{
    deadline_item *it = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->count)
            break;
        if (child + 1 < h->count && h->items[child + 1]->deadline_ms < h->items[child]->deadline_ms)
            child++;
        if (it->deadline_ms <= h->items[child]->deadline_ms)
            break;
        set(h, i, h->items[child]);
        i = child;
    }
    set(h, i, it);
}

bool deadline_heap_push(deadline_heap *h, deadline_item *it)
{
    if (h->count == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 256;
        deadline_item **items = realloc(h->items, cap * sizeof *items);
        if (items == NULL)
            return false;
        h->items = items;
        h->cap = cap;
    }
    set(h, h->count++, it);
    sift_up(h, it->index);
    return true;
}

void deadline_heap_update(deadline_heap *h, deadline_item *it)
{
    size_t i = it->index;
    if (i > 0 && h->items[(i - 1) / 2]->deadline_ms > it->deadline_ms)
        sift_up(h, i);
    else
        sift_down(h, i);
}

void deadline_heap_remove(deadline_heap *h, deadline_item *it)
{
    size_t i = it->index;
    if (i == DEADLINE_NOT_IN_HEAP)
        return;
    it->index = DEADLINE_NOT_IN_HEAP;
    deadline_item *last = h->items[--h->count];
    if (last == it)
        return;
    set(h, i, last);
    deadline_heap_update(h, last);
}

deadline_item *deadline_heap_first(const deadline_heap *h)
{
    return h->count ? h->items[0] : NULL;
}

void deadline_heap_clear(deadline_heap *h)
{
    for (size_t i = 0; i < h->count; i++)
        h->items[i]->index = DEADLINE_NOT_IN_HEAP;
    free(h->items);
    *h = (deadline_heap){0};
}
