/* dedup.h - duplicates refused: per channel, the keys of the POSTs it
 * accepted within --dedup-window, so that a POST with a key already
 * accepted is answered "duplicate" and stores nothing (idempotency.h reads
 * the key from the request).
 *
 * A key goes through two states. dedup_reserve() makes it pending, before
 * the send; the send's outcome then either commits it (accepted: the key
 * is recorded, in memory and in the key log, dedup_log.h) or cancels it (a
 * refused POST leaves no trace: its sender will try again). While a key is
 * pending, another POST with it is told DEDUP_PENDING (the server answers
 * 409, to be retried): it is neither stored (the first may yet succeed) nor
 * told "duplicate" (the first may yet fail, and the message would be lost).
 *
 * The bound: at most --dedup-max-keys accepted keys per channel; a commit
 * beyond evicts the oldest (counted: evicted_total). Keys older than the
 * window are forgotten as they are met. Each key's memory is charged to the
 * server's memory budget (budget.h), and the key log to its disk side.
 *
 * A store is used by many threads; its one lock is held for a lookup, an
 * insertion, and the append (and with --durable the sync) of a record. */
#ifndef HOPPER_SERVER_DEDUP_H
#define HOPPER_SERVER_DEDUP_H

#include "dedup_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dedup_store dedup_store;
typedef struct dedup_key dedup_key;

/* What every store works with, from the options. */
typedef struct dedup_config {
    uint64_t window_ms; /* --dedup-window; 0: no store is made, no key read */
    size_t max_keys;    /* --dedup-max-keys, per channel, at least 1 */
    bool durable;       /* --durable: a commit syncs the key log */
} dedup_config;

/* Keys are stamped with and compared to hop_now_ms(), the library's wall
 * clock. Set the configuration (copied) for the stores opened from now on. */
void dedup_configure(const dedup_config *config);
/* True if keys are kept (the window is not 0). */
bool dedup_enabled(void);

/* Open the store of channel name, whose directory is dir (both copied),
 * with the keys its key log holds that are still inside the window (the
 * log is rewritten with only those; what could not be read is logged and
 * counted). OUT: *out, NULL when dedup is not enabled. False only if out
 * of memory; an unreadable log is logged, and the store starts without. */
bool dedup_open(const char *dir, const char *name, uint64_t now_ms, dedup_store **out);

/* Close s (NULL: nothing), syncing its log, giving back its memory and disk
 * charges. */
void dedup_close(dedup_store *s);
/* Close s and remove its key log: the channel is removed. */
void dedup_remove(dedup_store *s);

/* True if s holds an accepted key inside the window at now_ms (false for
 * NULL): the channel has state to keep. */
bool dedup_holds_keys(dedup_store *s, uint64_t now_ms);

typedef enum dedup_result {
    DEDUP_NEW,       /* reserved: send, then dedup_commit() or dedup_cancel() */
    DEDUP_DUPLICATE, /* accepted within the window: counted in duplicates_total */
    DEDUP_PENDING,   /* another POST holds it and its outcome is not known */
    DEDUP_NOMEM,
} dedup_result;

/* Check key[0..len) (1 .. DEDUP_MAX_KEY bytes) at now_ms and, if new,
 * reserve it. OUT: *pending on DEDUP_NEW, to hand to exactly one of
 * dedup_commit() and dedup_cancel(). */
dedup_result dedup_reserve(dedup_store *s, const char *key, size_t len, uint64_t now_ms,
                           dedup_key **pending);

/* The POST of pending was accepted at now_ms: the key is recorded (with
 * --durable, synced in the key log before this returns), evicting the
 * oldest beyond the bound. A failed write is logged; the key stays in
 * memory. */
void dedup_commit(dedup_store *s, dedup_key *pending, uint64_t now_ms);

/* The POST of pending was not accepted: its key is forgotten. */
void dedup_cancel(dedup_store *s, dedup_key *pending);

/* A store's numbers. */
typedef struct dedup_stats {
    uint64_t keys;              /* accepted keys held (some may be past the window) */
    uint64_t memory_bytes;      /* charged to the memory budget */
    uint64_t log_bytes;         /* the key log's size, charged to the disk side */
    uint64_t duplicates_total;  /* POSTs answered duplicate */
    uint64_t evicted_total;     /* keys evicted inside the window to stay in the bound */
    uint64_t log_corrupt_total; /* key logs found damaged or cut short at open */
} dedup_stats;

/* OUT: *out; all 0 for NULL. */
void dedup_read(dedup_store *s, dedup_stats *out);

#endif
