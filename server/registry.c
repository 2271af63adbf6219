/* registry.c - name -> channel map (see registry.h). A hash table under a
 * read-write lock: lookups of existing channels, the common case, share the
 * lock; creation takes it exclusively and checks again. */
#include "registry.h"

#include "log.h"

#include <errno.h>
#include <pthread.h>
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

/* FNV-1a */
static size_t bucket_of(const char *name)
{
    uint64_t h = 14695981039346656037ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h & (reg.bucket_count - 1);
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

void registry_close(void)
{
    for (size_t b = 0; b < reg.bucket_count; b++) {
        registry_entry *e = reg.buckets[b];
        while (e) {
            registry_entry *next = e->next;
            hop_stats stats;
            hop_channel_stats(e->ch, &stats);
            if (stats.messages > 0)
                log_info("channel %s: %zu message(s) discarded at shutdown",
                         hop_channel_name(e->ch), stats.messages);
            hop_channel_close(e->ch);
            free(e);
            e = next;
        }
    }
    free(reg.buckets);
    reg.buckets = NULL;
    reg.count = 0;
    pthread_rwlock_destroy(&reg.lock);
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
    pthread_rwlock_unlock(&reg.lock);
    return e;
}

api_error registry_get(const char *name, registry_entry **out)
{
    registry_entry *e = registry_find(name);
    if (e) {
        *out = e;
        return API_OK;
    }

    api_error result = API_OK;
    pthread_rwlock_wrlock(&reg.lock);
    e = lookup(name); /* another request may have created it meanwhile */
    if (e)
        goto out_unlock;
    if (reg.count >= reg.max_channels) {
        result = API_TOO_MANY_CHANNELS;
        goto out_unlock;
    }
    e = calloc(1, sizeof *e);
    if (e == NULL) {
        result = API_NOMEM;
        goto out_unlock;
    }
    hop_err err = hop_channel_open(reg.data_dir, name, &reg.limits, &e->ch);
    if (err != HOP_OK) {
        log_error("channel %s: cannot be created: %s%s%s", name, hop_strerror(err),
                  err == HOP_IO ? ": " : "", err == HOP_IO ? strerror(errno) : "");
        free(e);
        e = NULL;
        result = api_error_of_hop(err);
        goto out_unlock;
    }
    atomic_init(&e->too_big_total, 0);
    atomic_init(&e->refusing, false);
    size_t b = bucket_of(name);
    e->next = reg.buckets[b];
    reg.buckets[b] = e;
    reg.count++;
    log_info("channel %s created (%zu of at most %zu)", name, reg.count, reg.max_channels);
out_unlock:
    pthread_rwlock_unlock(&reg.lock);
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
            for (registry_entry *e = reg.buckets[b]; e; e = e->next)
                list[n++] = e;
        }
    }
    pthread_rwlock_unlock(&reg.lock);
    if (n)
        qsort(list, n, sizeof *list, by_name);
    *out = list;
    return n;
}

void registry_note_send(registry_entry *e, hop_err err)
{
    const char *name = hop_channel_name(e->ch);
    if (err == HOP_FULL) {
        if (!atomic_exchange(&e->refusing, true))
            log_warn("channel %s full: refusing messages with 507 until it drains", name);
    } else if (err == HOP_OK) {
        /* cheap load first: the exchange would make every send write the line */
        if (atomic_load(&e->refusing) && atomic_exchange(&e->refusing, false))
            log_info("channel %s accepting messages again", name);
    }
}
