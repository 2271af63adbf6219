/* budget.h - the server-wide budget: one hop_budget that every channel is
 * opened on, bounding the RAM that messages of all channels take together
 * (--memory-limit) and the disk that their queue files and journals take
 * (--disk-limit, less the reserve of reserve.h); the RAM the server holds
 * for requests (bodies being received, messages being sent) is charged to
 * it too. And what it says to /status, /metrics, /readyz and the log. */
#ifndef HOPPER_SERVER_BUDGET_H
#define HOPPER_SERVER_BUDGET_H

#include "hopper/hopper.h"
#include "options.h"

#include <stddef.h>
#include <stdint.h>

/* Make the budget from o; reserve_open() must have run (the channels get
 * --disk-limit less the reserve). False if out of memory. */
bool budget_open(const server_options *o);

/* Free it, once every channel is closed. */
void budget_close(void);

/* The budget to open channels on (NULL before budget_open()). */
hop_budget *budget_get(void);

/* RAM the server holds for a request: charged even past the limit (the
 * bytes are in RAM already, or must be, for the request to go on), so that
 * the channels' memory yields to it. Released when the request frees it. */
void budget_charge(size_t bytes);
void budget_release(size_t bytes);

/* What the budget holds now. */
typedef struct budget_numbers {
    uint64_t memory_bytes, memory_limit; /* RAM counted, and --memory-limit */
    uint64_t disk_bytes;                 /* queue files and journals of all channels */
    uint64_t disk_reserved;              /* the reserve file (0 once the stop freed it) */
    uint64_t disk_limit;                 /* --disk-limit */
    uint64_t fs_free_bytes;              /* free on the data directory's file system */
} budget_numbers;

void budget_read(budget_numbers *out);

/* Why a send of the largest message might be refused for want of disk now:
 * "disk_limit" (the disk budget is used up), "file_system" (the file
 * system is full), or NULL. For /readyz. */
const char *budget_full_reason(void);

/* A send was refused as storage_full; counted for budget_log_tick(). */
void budget_note_refused(void);

/* Log, at most once a minute, that the memory budget is used up (sends go
 * to queue files) and that sends were refused for want of disk since the
 * last line. Called from the main thread's idle loop. */
void budget_log_tick(void);

#endif
