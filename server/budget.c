/* budget.c - the server-wide budget (see budget.h). */
#include "budget.h"

#include "envelope.h"
#include "log.h"
#include "reserve.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <time.h>

/* The log says at most this often that the budget forces sends anywhere. */
#define LOG_INTERVAL_S 60

static struct {
    hop_budget *budget;
    uint64_t disk_limit;          /* --disk-limit */
    uint64_t largest;             /* bytes the largest message takes in a queue file, or so */
    atomic_uint_fast64_t refused; /* storage_full refusals since the last log line */
    time_t last_log;              /* CLOCK_MONOTONIC seconds of the last line */
} B;

bool budget_open(const server_options *o)
{
    if (hop_budget_new(o->memory_limit, &B.budget) != HOP_OK)
        return false;
    uint64_t reserve = reserve_bytes();
    /* options_parse() made sure the limit holds the reserve and a file */
    hop_budget_set_disk(B.budget, o->disk_limit > reserve ? o->disk_limit - reserve : 1);
    B.disk_limit = o->disk_limit;
    B.largest = hop_message_cost(o->max_message_bytes + ENVELOPE_ALLOWANCE);
    atomic_init(&B.refused, 0);
    B.last_log = 0;
    return true;
}

void budget_close(void)
{
    hop_budget_free(B.budget);
    B.budget = NULL;
}

hop_budget *budget_get(void)
{
    return B.budget;
}

void budget_charge(size_t bytes)
{
    hop_budget_charge(B.budget, bytes);
}

void budget_release(size_t bytes)
{
    hop_budget_release(B.budget, bytes);
}

void budget_read(budget_numbers *out)
{
    uint64_t free_now = reserve_fs_free();
    *out = (budget_numbers){
        .memory_bytes = hop_budget_used(B.budget),
        .memory_limit = hop_budget_limit(B.budget),
        .disk_bytes = hop_budget_disk_used(B.budget),
        .disk_reserved = reserve_bytes(),
        .disk_limit = B.disk_limit,
        .fs_free_bytes = free_now == UINT64_MAX ? 0 : free_now,
    };
}

const char *budget_full_reason(void)
{
    uint64_t used = hop_budget_disk_used(B.budget), limit = hop_budget_disk_limit(B.budget);
    if (limit > 0 && (used >= limit || limit - used < B.largest))
        return "disk_limit";
    if (reserve_fs_free() < B.largest) /* unknown is UINT64_MAX: not full */
        return "file_system";
    return NULL;
}

void budget_note_refused(void)
{
    atomic_fetch_add(&B.refused, 1);
}

void budget_log_tick(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (B.last_log != 0 && now.tv_sec - B.last_log < LOG_INTERVAL_S)
        return;
    budget_numbers n;
    budget_read(&n);
    /* used up: within a sixteenth of the limit, where sends start to go to
     * disk (a channel's own --memory-bytes may send them there earlier) */
    bool memory_full = n.memory_bytes > n.memory_limit - n.memory_limit / 16;
    uint64_t refused = atomic_exchange(&B.refused, 0);
    if (!memory_full && refused == 0)
        return;
    B.last_log = now.tv_sec;
    if (memory_full)
        log_warn("memory budget used up (%" PRIu64 " of --memory-limit %" PRIu64
                 " bytes): new messages go to queue files",
                 n.memory_bytes, n.memory_limit);
    if (refused > 0)
        log_warn("%" PRIu64 " send(s) refused with 507 storage_full: queue files take %" PRIu64
                 " of --disk-limit %" PRIu64 " bytes (%" PRIu64 " reserved for a stop), %" PRIu64
                 " bytes free on the file system",
                 refused, n.disk_bytes, n.disk_limit, n.disk_reserved, n.fs_free_bytes);
}
