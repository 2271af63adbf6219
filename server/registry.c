/* registry.c - name -> channel map (see registry.h). A hash table under a
 * read-write lock: lookups of existing channels, the common case, share the
 * lock; creation takes it exclusively and checks again. */
#include "registry.h"

#include "budget.h"
#include "dedup.h"
#include "forward.h"
#include "graveyard.h"
#include "hash.h"
#include "log.h"
#include "pause_file.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_BUCKETS 65536

static struct {
    pthread_rwlock_t lock;
    registry_entry **buckets;
    size_t bucket_count; /* a power of two */
    size_t count;
    size_t max_channels;
    hop_limits limits;
    const char *data_dir;
} reg;

static size_t bucket_of(const char *name)
{
    return (size_t)hash_text(name) & (reg.bucket_count - 1);
}

bool registry_open(const char *data_dir, const hop_limits *limits, size_t max_channels)
{
    reg.bucket_count = 16;
    while (reg.bucket_count < max_channels && reg.bucket_count < MAX_BUCKETS)
        reg.bucket_count *= 2;
    reg.buckets = calloc(reg.bucket_count, sizeof *reg.buckets);
    if (reg.buckets == NULL)
        return false;
    pthread_rwlock_init(&reg.lock, NULL);
    reg.count = 0;
    reg.max_channels = max_channels;
    reg.limits = *limits;
    reg.data_dir = data_dir;
    return true;
}

/* Close e's channel and log what became of its messages; returns how many
 * were lost. */
static size_t close_channel(registry_entry *e)
{
    char name[HOP_NAME_MAX + 1]; /* the channel's own copy goes with it */
    snprintf(name, sizeof name, "%s", hop_channel_name(e->ch));
    hop_stats st = {0};
    hop_channel_stats(e->ch, &st);
    /* messages handed out and not consumed come back from their file too */
    size_t held = st.messages + st.in_flight + st.delayed;
    dedup_close(e->dedup); /* while the channel's directory is locked */
    hop_err err = hop_channel_close(e->ch);
    int cause = errno;
    if (err != HOP_OK) {
        log_error("channel %s: %zu message(s) LOST: %s; %zu kept on disk", name, st.memory_messages,
                  err == HOP_IO ? strerror(cause) : hop_strerror(err), held - st.memory_messages);
        return st.memory_messages;
    }
    if (held > 0)
        log_info("channel %s: %zu message(s) kept on disk", name, held);
    return 0;
}

size_t registry_close(void)
{
    size_t lost = 0;
    for (size_t b = 0; b < reg.bucket_count; b++) {
        registry_entry *e = reg.buckets[b];
        while (e) {
            registry_entry *next = e->next;
            lost += close_channel(e);
            pthread_mutex_destroy(&e->waiters_lock);
            free(e);
            e = next;
        }
    }
    free(reg.buckets);
    reg.buckets = NULL;
    reg.count = 0;
    pthread_rwlock_destroy(&reg.lock);
    return lost;
}

/* Called with reg.lock held (either way). */
static registry_entry *lookup(const char *name)
{
    for (registry_entry *e = reg.buckets[bucket_of(name)]; e; e = e->next) {
        if (strcmp(hop_channel_name(e->ch), name) == 0)
            return e;
    }
    return NULL;
}

registry_entry *registry_find(const char *name)
{
    pthread_rwlock_rdlock(&reg.lock);
    registry_entry *e = lookup(name);
    if (e)
        registry_hold(e);
    pthread_rwlock_unlock(&reg.lock);
    return e;
}

void registry_hold(registry_entry *e)
{
    atomic_fetch_add(&e->refs, 1);
}

/* The last reference to deleted e is gone: its messages go with its
 * directory. */
static void reap(registry_entry *e)
{
    dedup_close(e->dedup);
    hop_channel_close(e->ch); /* writes what memory held into the directory removed next */
    graveyard_remove(reg.data_dir, e->gone_dir);
    free(e->gone_dir);
    free(e);
}

void registry_put(registry_entry *e)
{
    if (e && atomic_fetch_sub(&e->refs, 1) == 1)
        reap(e); /* only a deleted entry: a listed one holds the registry's reference */
}

bool registry_unlist(registry_entry *e, char *gone_dir)
{
    pthread_rwlock_wrlock(&reg.lock);
    registry_entry **p = &reg.buckets[bucket_of(hop_channel_name(e->ch))];
    while (*p && *p != e)
        p = &(*p)->next;
    bool listed = *p != NULL;
    if (listed) {
        *p = e->next;
        reg.count--;
        e->gone_dir = gone_dir;
        atomic_store(&e->deleted, true);
    }
    pthread_rwlock_unlock(&reg.lock);
    if (!listed) {
        free(gone_dir);
        return false;
    }
    registry_put(e); /* the registry's; the caller still holds one */
    return true;
}

/* Open the keys (dedup.h) of e's channel name, in its directory. False if
 * out of memory. */
static bool open_dedup(registry_entry *e, const char *name)
{
    char dir[4096];
    int n = snprintf(dir, sizeof dir, "%s/%s", reg.data_dir, name);
    if (n < 0 || (size_t)n >= sizeof dir)
        return false;
    return dedup_open(dir, name, hop_now_ms(), &e->dedup);
}

/* Open channel name and add it. Called with reg.lock held for writing and
 * below max_channels. OUT: *out on HOP_OK. On failure errno is as the core
 * left it. */
static hop_err add_channel(const char *name, registry_entry **out)
{
    registry_entry *e = calloc(1, sizeof *e);
    if (e == NULL)
        return HOP_NOMEM;
    hop_err err = hop_channel_open(reg.data_dir, name, &reg.limits, &e->ch);
    if (err != HOP_OK) {
        int saved = errno;
        free(e);
        errno = saved;
        return err;
    }
    if (!open_dedup(e, name)) {
        hop_channel_close(e->ch);
        free(e);
        errno = ENOMEM;
        return HOP_NOMEM;
    }
    atomic_init(&e->too_big_total, 0);
    atomic_init(&e->storage_full_total, 0);
    atomic_init(&e->signature_failures_total, 0);
    atomic_init(&e->refusing, false);
    atomic_init(&e->lease_expired_total, 0);
    atomic_init(&e->dead_lettered_total, 0);
    atomic_init(&e->expired_total, 0);
    atomic_init(&e->expired_unlogged, 0);
    atomic_init(&e->expired_logged_ms, 0);
    atomic_init(&e->refs, 1); /* the registry's */
    atomic_init(&e->deleted, false);
    atomic_init(&e->paused, pause_file_read(reg.data_dir, name));
    pthread_mutex_init(&e->waiters_lock, NULL);
    e->waiters = NULL;
    atomic_init(&e->parked, 0);
    size_t b = bucket_of(name);
    e->next = reg.buckets[b];
    reg.buckets[b] = e;
    reg.count++;
    *out = e;
    return HOP_OK;
}

/* Why opening a channel failed, for the log. */
static const char *open_failure(hop_err err, int cause)
{
    if (err != HOP_IO)
        return hop_strerror(err);
    if (cause == EWOULDBLOCK)
        return "its directory is locked by another process";
    return strerror(cause);
}

/* Forget the last entry added (the head of its bucket) and close its
 * channel, which holds nothing. */
static void drop_empty(registry_entry *e)
{
    size_t b = bucket_of(hop_channel_name(e->ch));
    reg.buckets[b] = e->next;
    reg.count--;
    dedup_remove(e->dedup); /* the keys it holds are all past the window */
    hop_channel_close(e->ch);
    pthread_mutex_destroy(&e->waiters_lock);
    free(e);
}

bool registry_recover(const char *const *names, size_t count)
{
    uint64_t messages = 0;
    size_t removed = 0;
    for (size_t i = 0; i < count; i++) {
        registry_entry *e = NULL;
        pthread_rwlock_wrlock(&reg.lock);
        hop_err err = add_channel(names[i], &e);
        int cause = errno;
        pthread_rwlock_unlock(&reg.lock);
        if (err != HOP_OK) {
            log_error("channel %s cannot be recovered from %s/%s: %s", names[i], reg.data_dir,
                      names[i], open_failure(err, cause));
            return false;
        }
        hop_stats st = {0};
        hop_channel_stats(e->ch, &st);
        if (st.messages == 0 && st.delayed == 0 && !atomic_load(&e->paused) &&
            !dedup_holds_keys(e->dedup, hop_now_ms())) {
            /* A channel is made again by its first request: an empty one
             * is not kept, so old names never count against
             * --max-channels. Its directory goes if nothing else is in it. */
            pthread_rwlock_wrlock(&reg.lock);
            drop_empty(e);
            pthread_rwlock_unlock(&reg.lock);
            err = hop_channel_remove(reg.data_dir, names[i]);
            if (err == HOP_OK)
                removed++;
            else
                log_warn("channel %s is empty, but its directory stays: %s", names[i],
                         open_failure(err, errno));
            continue;
        }
        dedup_stats keys;
        dedup_read(e->dedup, &keys);
        log_info("channel %s recovered: %" PRIu64 " message(s), %zu file(s), %" PRIu64 " key(s)%s",
                 names[i], st.recovered_total, st.disk_files, keys.keys,
                 atomic_load(&e->paused) ? ", paused" : "");
        forward_attach(e);
        messages += st.recovered_total;
        if (reg.count > reg.max_channels) {
            log_error("%s holds more than --max-channels %zu channels with messages or keys: raise "
                      "--max-channels",
                      reg.data_dir, reg.max_channels);
            return false;
        }
    }
    if (count > 0)
        log_info("recovered %zu channel(s) with %" PRIu64 " message(s) from %s; %zu empty "
                 "one(s) removed",
                 reg.count, messages, reg.data_dir, removed);
    return true;
}

api_error registry_get(const char *name, registry_entry **out)
{
    registry_entry *e = registry_find(name);
    if (e) {
        *out = e;
        return API_OK;
    }

    api_error result = API_OK;
    bool created = false;
    pthread_rwlock_wrlock(&reg.lock);
    e = lookup(name); /* another request may have created it meanwhile */
    if (e)
        goto out_unlock;
    if (reg.count >= reg.max_channels) {
        result = API_TOO_MANY_CHANNELS;
        goto out_unlock;
    }
    hop_err err = add_channel(name, &e);
    if (err != HOP_OK) {
        log_error("channel %s: cannot be created: %s", name, open_failure(err, errno));
        e = NULL;
        result = api_error_of_hop(err);
        goto out_unlock;
    }
    log_info("channel %s created (%zu of at most %zu)", name, reg.count, reg.max_channels);
    created = true;
out_unlock:
    if (e)
        registry_hold(e); /* the caller's */
    pthread_rwlock_unlock(&reg.lock);
    if (created)
        forward_attach(e); /* outside the lock: forwarding reads channels */
    if (result == API_OK)
        *out = e;
    return result;
}

static int by_name(const void *a, const void *b)
{
    const registry_entry *x = *(registry_entry *const *)a;
    const registry_entry *y = *(registry_entry *const *)b;
    return strcmp(hop_channel_name(x->ch), hop_channel_name(y->ch));
}

size_t registry_list(registry_entry ***out)
{
    *out = NULL;
    pthread_rwlock_rdlock(&reg.lock);
    size_t n = 0;
    registry_entry **list = reg.count ? malloc(reg.count * sizeof *list) : NULL;
    if (list) {
        for (size_t b = 0; b < reg.bucket_count; b++) {
            for (registry_entry *e = reg.buckets[b]; e; e = e->next) {
                registry_hold(e);
                list[n++] = e;
            }
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    if (n)
        qsort(list, n, sizeof *list, by_name);
    *out = list;
    return n;
}

void registry_list_free(registry_entry **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        registry_put(list[i]);
    free(list);
}

void registry_note_send(registry_entry *e, api_error api)
{
    const char *name = hop_channel_name(e->ch);
    if (api == API_STORAGE_FULL) {
        atomic_fetch_add(&e->storage_full_total, 1);
        budget_note_refused(); /* the log says so once a minute, for all channels */
    } else if (api == API_FULL) {
        if (!atomic_exchange(&e->refusing, true))
            log_warn("channel %s full: refusing messages with 507 until it drains", name);
    } else if (api == API_OK) {
        /* cheap load first: the exchange would make every send write the line */
        if (atomic_load(&e->refusing) && atomic_exchange(&e->refusing, false))
            log_info("channel %s accepting messages again", name);
    }
}
