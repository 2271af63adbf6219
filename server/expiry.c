/* expiry.c - the limit of a message's age, and the drops of those past it
 * (see expiry.h). */
#include "expiry.h"

#include "envelope.h"
#include "log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <time.h>

/* --max-age in ms, 0: none. Written once by expiry_open() before the
 * threads that read it start. */
static uint64_t max_age_ms;

void expiry_open(uint64_t max_age)
{
    max_age_ms = max_age;
}

bool expiry_passed(const void *msg, size_t len, uint64_t now_ms)
{
    uint64_t received_ms, ttl_ms;
    if (!envelope_times(msg, len, &received_ms, &ttl_ms) || received_ms == 0)
        return false;
    uint64_t limit = ttl_ms;
    if (max_age_ms > 0 && (limit == 0 || max_age_ms < limit))
        limit = max_age_ms;
    /* a clock set back below the accept time makes the age 0, never huge */
    uint64_t age = now_ms > received_ms ? now_ms - received_ms : 0;
    return limit > 0 && age > limit;
}

static uint64_t monotonic_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)now.tv_sec * 1000u + (uint64_t)now.tv_nsec / 1000000u;
}

/* Log e's drops not logged yet, if there are any. */
static void log_unlogged(registry_entry *e)
{
    uint64_t n = atomic_exchange(&e->expired_unlogged, 0);
    if (n > 0)
        log_info("channel %s: dropped %" PRIu64 " expired message(s), past their TTL or "
                 "--max-age (%" PRIu64 " in all; logged at most once a minute)",
                 hop_channel_name(e->ch), n, atomic_load(&e->expired_total));
}

/* One more drop on e: counted, and logged with those before it if the last
 * line for e is a minute old (or there was none). */
static void note_drop(registry_entry *e)
{
    atomic_fetch_add(&e->expired_total, 1);
    atomic_fetch_add(&e->expired_unlogged, 1);
    uint64_t now = monotonic_ms(), last = atomic_load(&e->expired_logged_ms);
    if (last != 0 && now - last < EXPIRY_LOG_INTERVAL_MS)
        return;
    /* one thread wins the minute; the others' drops go in its line or the next */
    if (atomic_compare_exchange_strong(&e->expired_logged_ms, &last, now))
        log_unlogged(e);
}

bool expiry_drop_if_expired(registry_entry *e, void *msg, size_t len)
{
    if (!expiry_passed(msg, len, hop_now_ms()))
        return false;
    hop_free(msg); /* consumed: its memory, or its share of a queue file, is freed */
    note_drop(e);
    return true;
}

/* A message of e's channel that has not expired: polled (w NULL), or taken
 * now else w armed. As expiry_recv() and expiry_recv_or_arm(). */
static hop_err take_unexpired(registry_entry *e, hop_waiter *w, void **msg, size_t *len)
{
    void *m;
    size_t n;
    hop_err err;
    do
        err = w ? hop_recv_or_arm(e->ch, w, &m, &n) : hop_recv(e->ch, 0, &m, &n);
    while (err == HOP_OK && expiry_drop_if_expired(e, m, n));
    if (err == HOP_OK) {
        *msg = m;
        *len = n;
    }
    return err;
}

hop_err expiry_recv(registry_entry *e, void **msg, size_t *len)
{
    return take_unexpired(e, NULL, msg, len);
}

hop_err expiry_recv_batch(registry_entry *e, void **msgs, size_t *lens, size_t max, size_t *n)
{
    *n = 0;
    hop_err err = HOP_OK;
    while (*n < max) {
        size_t got;
        err = hop_recv_batch(e->ch, max - *n, msgs + *n, lens + *n, &got);
        if (err != HOP_OK)
            break;
        size_t kept = *n;
        for (size_t i = *n; i < *n + got; i++) {
            if (expiry_drop_if_expired(e, msgs[i], lens[i]))
                continue;
            msgs[kept] = msgs[i];
            lens[kept++] = lens[i];
        }
        *n = kept; /* if some were dropped, more may come after them */
    }
    return *n > 0 ? HOP_OK : err;
}

hop_err expiry_recv_or_arm(registry_entry *e, hop_waiter *w, void **msg, size_t *len)
{
    return take_unexpired(e, w, msg, len);
}

void expiry_close(void)
{
    registry_entry **list;
    size_t n = registry_list(&list);
    for (size_t i = 0; i < n; i++)
        log_unlogged(list[i]);
    registry_list_free(list, n);
}
