/* budget.h - a budget shared by channels (hop_budget of hopper.h), with a
 * memory side and a disk side.
 *
 * Memory: the bytes that messages of all channels opened on it may hold in
 * RAM together, counted as hop__message_cost() like a channel's own
 * memory_bytes. What counts: messages in a channel's memory FIFO, messages
 * held with hop_hold(), read-ahead buffers (queue_file.c), and what the
 * application charges. A send reserves its cost (hop__budget_reserve(),
 * which never passes the limit) before it goes to memory; a message taken
 * from memory releases it. A message that comes back (hop_requeue()) is
 * charged again whatever the budget says: its bytes were in RAM all along,
 * so the budget may be passed by what receivers had taken out, never by
 * new sends.
 *
 * Disk: the bytes of the channels' queue files and journals (disk.c keeps
 * each channel's share). An append reserves what it will write
 * (hop__budget_disk_reserve()); what must not fail for the budget (the
 * journal, recovery, the close) is charged. With no disk limit every
 * reservation succeeds: the side only counts.
 *
 * The operations are lock-free: the channels sharing a budget share no
 * lock. */
#ifndef HOP_BUDGET_H
#define HOP_BUDGET_H

#include "hopper/hopper.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room between the two sides, so that appends to queue files do not move
 * the cache line that every memory send of every channel touches. */
#define HOP__BUDGET_APART 64

struct hop_budget {
    _Atomic size_t used; /* memory: bytes charged now */
    size_t limit;        /* memory: what reservations may take in all */
    unsigned char apart[HOP__BUDGET_APART];
    _Atomic uint64_t disk_used;  /* disk: bytes counted now */
    _Atomic uint64_t disk_limit; /* disk: what reservations may take in all; 0: no bound */
};

/* Take cost from b if it fits under the limit: true (charged), or false
 * (nothing changed). A NULL budget takes everything. */
static inline bool hop__budget_reserve(hop_budget *b, size_t cost)
{
    if (b == NULL)
        return true;
    size_t used = atomic_load_explicit(&b->used, memory_order_relaxed);
    do {
        if (cost > b->limit || used > b->limit - cost)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&b->used, &used, used + cost,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

/* Charge cost to b even past its limit: a message back in memory. */
static inline void hop__budget_charge(hop_budget *b, size_t cost)
{
    if (b)
        atomic_fetch_add_explicit(&b->used, cost, memory_order_relaxed);
}

/* Give back cost, charged before. */
static inline void hop__budget_release(hop_budget *b, size_t cost)
{
    if (b)
        atomic_fetch_sub_explicit(&b->used, cost, memory_order_relaxed);
}

/* Take bytes from b's disk side if they fit under its limit (or it has
 * none): true (counted), or false (nothing changed). NULL takes all. */
bool hop__budget_disk_reserve(hop_budget *b, uint64_t bytes);
/* Count bytes on b's disk side even past its limit. */
void hop__budget_disk_charge(hop_budget *b, uint64_t bytes);
/* Give back bytes counted before. */
void hop__budget_disk_release(hop_budget *b, uint64_t bytes);

#endif
