/* budget.c - creating and reading a shared memory budget (see budget.h). */
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
