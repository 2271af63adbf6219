/* dedup.c - a channel's store of accepted keys (see dedup.h): a hash table
 * of keys, the accepted ones also on a list from oldest to newest, which
 * is the order they expire and are evicted in, and the key log behind. */
#include "dedup.h"

#include "budget.h"
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A log holding this many more records than twice the live keys is
 * rewritten: appends stay cheap, and the file stays within a small
 * multiple of what it must hold. */
#define COMPACT_SLACK 1024
#define FIRST_BUCKETS 16

struct dedup_key {
    dedup_key *next;          /* bucket chain */
    dedup_key *older, *newer; /* accepted keys only */
    uint64_t hash;
    uint64_t accepted_ms; /* 0 while pending */
    bool pending;
    uint16_t len;
    char key[]; /* len bytes, not NUL-terminated */
};

struct dedup_store {
    pthread_mutex_t lock; /* everything below but the atomics */
    char *name;           /* the channel's, for the log; new */
    dedup_key **buckets;  /* bucket_count of them, a power of two; NULL before the first key */
    size_t bucket_count, count;
    dedup_key *oldest, *newest; /* the accepted keys */
    size_t accepted;
    uint64_t memory;       /* charged to the memory budget */
    uint64_t disk_charged; /* the log's bytes, charged to the disk side */
    dedup_log log;
    bool log_failing; /* the last append failed: logged once, until one succeeds */
    atomic_uint_fast64_t duplicates_total, evicted_total, log_corrupt_total;
};

static dedup_config cfg;

void dedup_configure(const dedup_config *config)
{
    cfg = *config;
}

bool dedup_enabled(void)
{
    return cfg.window_ms > 0;
}

/* ---- memory and disk charges ---- */

static void charge(dedup_store *s, size_t bytes)
{
    s->memory += bytes;
    budget_charge(bytes);
}

static void release(dedup_store *s, size_t bytes)
{
    s->memory -= bytes;
    budget_release(bytes);
}

/* Bring the disk side's count to the log's size. */
static void recount_disk(dedup_store *s)
{
    if (s->log.bytes > s->disk_charged)
        hop_budget_disk_charge(budget_get(), s->log.bytes - s->disk_charged);
    else
        hop_budget_disk_release(budget_get(), s->disk_charged - s->log.bytes);
    s->disk_charged = s->log.bytes;
}

/* ---- the table ---- */

static bool live(const dedup_key *k, uint64_t now_ms)
{
    return now_ms < k->accepted_ms || now_ms - k->accepted_ms < cfg.window_ms;
}

static dedup_key **slot_of(dedup_store *s, uint64_t hash, const char *key, size_t len)
{
    dedup_key **p = &s->buckets[hash & (s->bucket_count - 1)];
    while (*p && !((*p)->hash == hash && (*p)->len == len && memcmp((*p)->key, key, len) == 0))
        p = &(*p)->next;
    return p;
}

/* Double the buckets (first: FIRST_BUCKETS). False if out of memory; the
 * table is then as it was. */
static bool grow(dedup_store *s)
{
    size_t n = s->bucket_count ? s->bucket_count * 2 : FIRST_BUCKETS;
    dedup_key **b = calloc(n, sizeof *b);
    if (b == NULL)
        return false;
    for (size_t i = 0; i < s->bucket_count; i++) {
        for (dedup_key *k = s->buckets[i], *next; k; k = next) {
            next = k->next;
            k->next = b[k->hash & (n - 1)];
            b[k->hash & (n - 1)] = k;
        }
    }
    release(s, s->bucket_count * sizeof *b);
    charge(s, n * sizeof *b);
    free(s->buckets);
    s->buckets = b;
    s->bucket_count = n;
    return true;
}

/* Take k out of the accepted list (it stays in the table). */
static void unlink_order(dedup_store *s, dedup_key *k)
{
    if (k->older)
        k->older->newer = k->newer;
    else
        s->oldest = k->newer;
    if (k->newer)
        k->newer->older = k->older;
    else
        s->newest = k->older;
    k->older = k->newer = NULL;
    s->accepted--;
}

static void append_order(dedup_store *s, dedup_key *k)
{
    k->older = s->newest;
    k->newer = NULL;
    if (s->newest)
        s->newest->newer = k;
    else
        s->oldest = k;
    s->newest = k;
    s->accepted++;
}

/* Remove k from the table (and the list if accepted) and free it. */
static void drop(dedup_store *s, dedup_key *k)
{
    dedup_key **p = slot_of(s, k->hash, k->key, k->len);
    *p = k->next;
    s->count--;
    if (!k->pending)
        unlink_order(s, k);
    release(s, sizeof *k + k->len);
    free(k);
}

/* Forget the accepted keys past the window at now_ms, oldest first. */
static void expire(dedup_store *s, uint64_t now_ms)
{
    while (s->oldest && !live(s->oldest, now_ms))
        drop(s, s->oldest);
}

/* Evict the oldest accepted keys beyond cfg.max_keys; returns how many. */
static uint64_t evict(dedup_store *s)
{
    uint64_t n = 0;
    for (; s->accepted > cfg.max_keys; n++)
        drop(s, s->oldest);
    return n;
}

/* A new key in the table, pending. NULL if out of memory. */
static dedup_key *insert(dedup_store *s, uint64_t hash, const char *key, size_t len)
{
    if (s->count >= s->bucket_count && !grow(s) && s->bucket_count == 0)
        return NULL; /* a table that could not grow still works, with longer chains */
    dedup_key *k = malloc(sizeof *k + len);
    if (k == NULL)
        return NULL;
    *k = (dedup_key){.hash = hash, .pending = true, .len = (uint16_t)len};
    memcpy(k->key, key, len);
    dedup_key **p = &s->buckets[hash & (s->bucket_count - 1)];
    k->next = *p;
    *p = k;
    s->count++;
    charge(s, sizeof *k + len);
    return k;
}

/* ---- the log ---- */

/* Rewrite the log with the accepted keys live at now_ms. Logged on
 * failure: the old log then stays. */
static void compact(dedup_store *s, uint64_t now_ms)
{
    dedup_log_rewrite rw;
    int err = dedup_log_rewrite_begin(&s->log, &rw);
    for (dedup_key *k = s->oldest; err == 0 && k; k = k->newer) {
        if (live(k, now_ms))
            dedup_log_rewrite_add(&rw, k->key, k->len, k->accepted_ms);
    }
    if (err == 0)
        err = dedup_log_rewrite_end(&s->log, &rw);
    if (err != 0)
        log_error("channel %s: cannot rewrite its key log in %s: %s", s->name, s->log.dir,
                  strerror(err));
    recount_disk(s);
}

/* dedup_log_read()'s callback: a key of the log, accepted at accepted_ms. */
static bool load_key(void *arg, const char *key, size_t len, uint64_t accepted_ms)
{
    dedup_store *s = arg;
    uint64_t hash = hash_bytes(HASH_FNV1A_OFFSET, key, len);
    dedup_key *k = s->bucket_count ? *slot_of(s, hash, key, len) : NULL;
    if (k) /* accepted again after it expired: the later time counts */
        unlink_order(s, k);
    else if ((k = insert(s, hash, key, len)) == NULL)
        return false;
    k->pending = false;
    k->accepted_ms = accepted_ms;
    append_order(s, k);
    return true;
}

/* Read the log into s, keep what is live at now_ms within the bound, and
 * rewrite the log with only that, unless it holds nothing else. False if
 * out of memory. */
static bool load(dedup_store *s, uint64_t now_ms)
{
    dedup_log_found found;
    int err = dedup_log_read(&s->log, s->name, load_key, s, &found);
    if (err == ENOMEM)
        return false;
    if (err != 0)
        log_error("channel %s: cannot read its key log in %s: %s; %" PRIu64 " key(s) read", s->name,
                  s->log.dir, strerror(err), found.records);
    if (found.dropped_bytes > 0 || err != 0)
        atomic_fetch_add(&s->log_corrupt_total, 1);
    if (!found.exists)
        return true;
    expire(s, now_ms);
    uint64_t over = evict(s);
    if (over > 0)
        log_warn("channel %s: %" PRIu64 " key(s) beyond --dedup-max-keys %zu forgotten", s->name,
                 over, cfg.max_keys);
    if (err == 0 && found.dropped_bytes == 0 && s->accepted == found.records) {
        s->log.bytes = found.valid_bytes; /* appends go on after it */
        s->log.records = found.records;
        recount_disk(s);
        return true;
    }
    compact(s, now_ms);
    return true;
}

/* ---- the store ---- */

bool dedup_open(const char *dir, const char *name, uint64_t now_ms, dedup_store **out)
{
    *out = NULL;
    if (!dedup_enabled())
        return true;
    dedup_store *s = calloc(1, sizeof *s);
    if (s == NULL)
        return false;
    if ((s->name = strdup(name)) == NULL || !dedup_log_init(&s->log, dir)) {
        free(s->name);
        free(s);
        return false;
    }
    pthread_mutex_init(&s->lock, NULL);
    atomic_init(&s->duplicates_total, 0);
    atomic_init(&s->evicted_total, 0);
    atomic_init(&s->log_corrupt_total, 0);
    if (!load(s, now_ms)) {
        dedup_close(s);
        return false;
    }
    *out = s;
    return true;
}

/* Free s's keys and the store itself; its log is closed already. */
static void free_store(dedup_store *s)
{
    for (size_t i = 0; i < s->bucket_count; i++) {
        for (dedup_key *k = s->buckets[i], *next; k; k = next) {
            next = k->next;
            free(k);
        }
    }
    free(s->buckets);
    budget_release(s->memory);
    s->log.bytes = 0;
    recount_disk(s);
    pthread_mutex_destroy(&s->lock);
    free(s->name);
    free(s);
}

void dedup_close(dedup_store *s)
{
    if (s == NULL)
        return;
    dedup_log_close(&s->log);
    free_store(s);
}

void dedup_remove(dedup_store *s)
{
    if (s == NULL)
        return;
    int err = dedup_log_remove(&s->log);
    if (err != 0)
        log_warn("channel %s: cannot remove its key log: %s", s->name, strerror(err));
    free_store(s);
}

bool dedup_holds_keys(dedup_store *s, uint64_t now_ms)
{
    if (s == NULL)
        return false;
    pthread_mutex_lock(&s->lock);
    expire(s, now_ms);
    bool any = s->accepted > 0;
    pthread_mutex_unlock(&s->lock);
    return any;
}

dedup_result dedup_reserve(dedup_store *s, const char *key, size_t len, uint64_t now_ms,
                           dedup_key **pending)
{
    uint64_t hash = hash_bytes(HASH_FNV1A_OFFSET, key, len);
    dedup_result result = DEDUP_NEW;
    pthread_mutex_lock(&s->lock);
    expire(s, now_ms);
    dedup_key *k = s->bucket_count ? *slot_of(s, hash, key, len) : NULL;
    if (k && k->pending) {
        result = DEDUP_PENDING;
    } else if (k) { /* live: expire() took the others */
        result = DEDUP_DUPLICATE;
        atomic_fetch_add(&s->duplicates_total, 1);
    } else if ((*pending = insert(s, hash, key, len)) == NULL) {
        result = DEDUP_NOMEM;
    }
    pthread_mutex_unlock(&s->lock);
    return result;
}

void dedup_commit(dedup_store *s, dedup_key *pending, uint64_t now_ms)
{
    pthread_mutex_lock(&s->lock);
    pending->pending = false;
    pending->accepted_ms = now_ms;
    append_order(s, pending);
    int err = dedup_log_append(&s->log, pending->key, pending->len, now_ms, cfg.durable);
    if (err != 0 && !s->log_failing)
        log_error("channel %s: cannot write its key log in %s: %s (the keys not written are "
                  "kept in memory only: a restart forgets them)",
                  s->name, s->log.dir, strerror(err));
    else if (err == 0 && s->log_failing)
        log_info("channel %s: its key log is written again", s->name);
    s->log_failing = err != 0;
    atomic_fetch_add(&s->evicted_total, evict(s));
    expire(s, now_ms);
    if (s->log.records > 2 * (uint64_t)s->accepted + COMPACT_SLACK)
        compact(s, now_ms);
    recount_disk(s);
    pthread_mutex_unlock(&s->lock);
}

void dedup_cancel(dedup_store *s, dedup_key *pending)
{
    pthread_mutex_lock(&s->lock);
    drop(s, pending);
    pthread_mutex_unlock(&s->lock);
}

void dedup_read(dedup_store *s, dedup_stats *out)
{
    *out = (dedup_stats){0};
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    out->keys = s->accepted;
    out->memory_bytes = s->memory;
    out->log_bytes = s->log.bytes;
    pthread_mutex_unlock(&s->lock);
    out->duplicates_total = atomic_load(&s->duplicates_total);
    out->evicted_total = atomic_load(&s->evicted_total);
    out->log_corrupt_total = atomic_load(&s->log_corrupt_total);
}
