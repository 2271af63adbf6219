/* budget.c - creating and reading a shared budget, and its disk side (see
 * budget.h; the memory side's operations are inline there: they sit on
 * every send). */
#include "budget.h"

#include "alloc.h"

hop_err hop_budget_new(size_t memory_bytes, hop_budget **out)
{
    if (out == NULL || memory_bytes == 0)
        return HOP_INVALID;
    hop_budget *b = hop__malloc(sizeof *b);
    if (b == NULL)
        return HOP_NOMEM;
    atomic_init(&b->used, 0);
    b->limit = memory_bytes;
    atomic_init(&b->disk_used, 0);
    atomic_init(&b->disk_limit, 0);
    *out = b;
    return HOP_OK;
}

void hop_budget_free(hop_budget *b)
{
    hop__free(b);
}

size_t hop_budget_used(const hop_budget *b)
{
    return b ? atomic_load_explicit(&((hop_budget *)b)->used, memory_order_relaxed) : 0;
}

size_t hop_budget_limit(const hop_budget *b)
{
    return b ? b->limit : 0;
}

void hop_budget_charge(hop_budget *b, size_t bytes)
{
    hop__budget_charge(b, bytes);
}

bool hop_budget_reserve(hop_budget *b, size_t bytes)
{
    return hop__budget_reserve(b, bytes);
}

void hop_budget_release(hop_budget *b, size_t bytes)
{
    hop__budget_release(b, bytes);
}

/* ---- the disk side ---- */

hop_err hop_budget_set_disk(hop_budget *b, uint64_t disk_bytes)
{
    if (b == NULL)
        return HOP_INVALID;
    atomic_store_explicit(&b->disk_limit, disk_bytes, memory_order_relaxed);
    return HOP_OK;
}

uint64_t hop_budget_disk_used(const hop_budget *b)
{
    return b ? atomic_load_explicit(&((hop_budget *)b)->disk_used, memory_order_relaxed) : 0;
}

uint64_t hop_budget_disk_limit(const hop_budget *b)
{
    return b ? atomic_load_explicit(&((hop_budget *)b)->disk_limit, memory_order_relaxed) : 0;
}

void hop_budget_disk_charge(hop_budget *b, uint64_t bytes)
{
    hop__budget_disk_charge(b, bytes);
}

void hop_budget_disk_release(hop_budget *b, uint64_t bytes)
{
    hop__budget_disk_release(b, bytes);
}

bool hop__budget_disk_reserve(hop_budget *b, uint64_t bytes)
{
    if (b == NULL)
        return true;
    uint64_t limit = atomic_load_explicit(&b->disk_limit, memory_order_relaxed);
    if (limit == 0) {
        hop__budget_disk_charge(b, bytes);
        return true;
    }
    uint64_t used = atomic_load_explicit(&b->disk_used, memory_order_relaxed);
    do {
        if (bytes > limit || used > limit - bytes)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&b->disk_used, &used, used + bytes,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

void hop__budget_disk_charge(hop_budget *b, uint64_t bytes)
{
    if (b)
        atomic_fetch_add_explicit(&b->disk_used, bytes, memory_order_relaxed);
}

void hop__budget_disk_release(hop_budget *b, uint64_t bytes)
{
    if (b)
        atomic_fetch_sub_explicit(&b->disk_used, bytes, memory_order_relaxed);
}
