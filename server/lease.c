/* lease.c - the lease table and its deadlines on the timer (see lease.h). */
#include "lease.h"

#include "giveback.h"
#include "hash.h"
#include "hex.h"
#include "log.h"
#include "random.h"
#include "timer.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 4096 /* a power of two */

typedef struct lease {
    timer_item deadline; /* first: the timer's item is the lease */
    char receipt[LEASE_RECEIPT_LEN + 1];
    registry_entry *entry;
    void *msg;
    size_t len;
    struct lease *next; /* hash chain */
} lease;

static struct {
    pthread_mutex_t lock; /* guards buckets and ended */
    lease *buckets[BUCKETS];
    struct {
        char receipt[LEASE_RECEIPT_LEN + 1];
        registry_entry *entry;
    } ended[LEASE_ENDED_MEMORY]; /* a ring of receipts that ended, with their channel */
    size_t ended_next;
    size_t max_deliveries;
    giveback_backoff backoff; /* of a lease that ran out */
} L = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- receipts ---- */

/* 128 random bits: a receipt cannot be guessed from the ones a client
 * sees (a worker must not be able to acknowledge another's message). */
void lease_new_receipt(char out[LEASE_RECEIPT_LEN + 1])
{
    unsigned char bits[LEASE_RECEIPT_LEN / 2];
    random_bytes(bits, sizeof bits);
    hex_encode(bits, sizeof bits, out);
}

static size_t bucket_of(const char *receipt)
{
    return (size_t)hash_text(receipt) & (BUCKETS - 1);
}

/* ---- the table, under L.lock ---- */

static lease **slot_of(const char *receipt)
{
    lease **p = &L.buckets[bucket_of(receipt)];
    while (*p && strcmp((*p)->receipt, receipt) != 0)
        p = &(*p)->next;
    return p;
}

/* Take l out of the table, and remember its receipt. Its deadline is the
 * caller's business. */
static void unlink_lease(lease *l)
{
    lease **p = slot_of(l->receipt);
    *p = l->next;
    memcpy(L.ended[L.ended_next].receipt, l->receipt, sizeof l->receipt);
    L.ended[L.ended_next].entry = l->entry;
    L.ended_next = (L.ended_next + 1) % LEASE_ENDED_MEMORY;
}

static bool ended_recently(registry_entry *e, const char *receipt)
{
    for (size_t i = 0; i < LEASE_ENDED_MEMORY; i++)
        if (L.ended[i].entry == e && strcmp(L.ended[i].receipt, receipt) == 0)
            return true;
    return false;
}

/* The lease of receipt on e, or an error saying why there is none. */
static lease *find(registry_entry *e, const char *receipt, api_error *err)
{
    lease *l = strlen(receipt) == LEASE_RECEIPT_LEN ? *slot_of(receipt) : NULL;
    if (l && l->entry == e)
        return l;
    *err = l == NULL && ended_recently(e, receipt) ? API_LEASE_ENDED : API_UNKNOWN_RECEIPT;
    return NULL;
}

/* l is done with: its reference to its channel goes with it. */
static void lease_free(lease *l)
{
    registry_put(l->entry);
    free(l);
}

/* ---- deadlines ---- */

/* The timer's callback: l's deadline has passed. The timer took l off its
 * heap before calling, so no request can take l from the table any more
 * (take() fails to remove it from the timer): l is ours. */
static void on_expired(timer_item *it)
{
    lease *l = (lease *)it;
    pthread_mutex_lock(&L.lock);
    unlink_lease(l);
    pthread_mutex_unlock(&L.lock);
    atomic_fetch_add(&l->entry->lease_expired_total, 1);
    giveback_expired(l->entry, l->msg, l->len, L.max_deliveries, &L.backoff);
    lease_free(l);
}

void lease_open(size_t max_deliveries, const giveback_backoff *backoff)
{
    L.max_deliveries = max_deliveries;
    L.backoff = *backoff;
}

void lease_close(void)
{
    /* every lease comes back, as if it had expired (but see
     * giveback_at_stop()): the stop writes the message to disk, the next
     * start hands it out again */
    size_t n = 0;
    for (size_t b = 0; b < BUCKETS; b++) {
        for (;;) {
            pthread_mutex_lock(&L.lock);
            lease *l = L.buckets[b];
            if (l)
                unlink_lease(l);
            pthread_mutex_unlock(&L.lock);
            if (l == NULL)
                break;
            giveback_at_stop(l->entry, l->msg, l->len);
            lease_free(l);
            n++;
        }
    }
    if (n)
        log_info("%zu leased message(s) given back to their channels at shutdown", n);
}

/* ---- the requests ---- */

/* Take the lease of receipt on e out of the table and off the timer. */
static lease *take(registry_entry *e, const char *receipt, api_error *err)
{
    pthread_mutex_lock(&L.lock);
    lease *l = find(e, receipt, err);
    if (l && !timer_remove(&l->deadline)) {
        *err = API_LEASE_ENDED; /* its deadline passed: on_expired() has it */
        l = NULL;
    }
    if (l)
        unlink_lease(l);
    pthread_mutex_unlock(&L.lock);
    return l;
}

api_error lease_hold(registry_entry *e, void *msg)
{
    hop_err held = hop_hold(e->ch, msg);
    if (held == HOP_OK)
        return API_OK;
    return held == HOP_CLOSED ? API_CLOSED : held == HOP_FULL ? API_LEASE_LIMIT : API_NOMEM;
}

api_error lease_grant(registry_entry *e, void *msg, size_t len, uint64_t ms, const char *receipt)
{
    lease *l = calloc(1, sizeof *l);
    if (l == NULL)
        return API_NOMEM;
    l->entry = e;
    l->msg = msg;
    l->len = len;
    timer_item_init(&l->deadline, on_expired);
    snprintf(l->receipt, sizeof l->receipt, "%s", receipt);
    api_error err = API_OK;
    pthread_mutex_lock(&L.lock); /* before the deadline: on_expired() finds l in the table */
    lease **slot = slot_of(l->receipt);
    if (*slot != NULL)
        err = API_INTERNAL; /* 2^-128: never, but a receipt must name one lease */
    else if (!timer_add(&l->deadline, ms))
        err = API_NOMEM; /* the hold ends when the caller frees or gives back msg */
    else
        *slot = l;
    if (err == API_OK)
        registry_hold(e); /* before the deadline can end the lease: under L.lock */
    pthread_mutex_unlock(&L.lock);
    if (err != API_OK)
        free(l);
    return err;
}

bool lease_revoke(registry_entry *e, const char *receipt, void **msg, size_t *len)
{
    api_error err;
    lease *l = take(e, receipt, &err);
    if (l == NULL)
        return false;
    *msg = l->msg;
    *len = l->len;
    lease_free(l);
    return true;
}

api_error lease_ack(registry_entry *e, const char *receipt)
{
    api_error err = API_OK;
    lease *l = take(e, receipt, &err);
    if (l == NULL)
        return err;
    hop_free(l->msg); /* consumed */
    lease_free(l);
    return API_OK;
}

api_error lease_release(registry_entry *e, const char *receipt, uint64_t delay_ms)
{
    api_error err = API_OK;
    lease *l = take(e, receipt, &err);
    if (l == NULL)
        return err;
    giveback_released(e, l->msg, l->len, L.max_deliveries, delay_ms);
    lease_free(l);
    return API_OK;
}

size_t lease_drop_channel(registry_entry *e)
{
    lease *dropped = NULL;
    pthread_mutex_lock(&L.lock);
    for (size_t b = 0; b < BUCKETS; b++) {
        for (lease **p = &L.buckets[b]; *p;) {
            lease *l = *p;
            if (l->entry != e || !timer_remove(&l->deadline)) { /* else on_expired() has it */
                p = &l->next;
                continue;
            }
            unlink_lease(l); /* *p is l->next now */
            l->next = dropped;
            dropped = l;
        }
    }
    pthread_mutex_unlock(&L.lock);
    size_t n = 0;
    for (lease *l = dropped, *next; l; l = next, n++) {
        next = l->next;
        hop_free(l->msg); /* consumed: the channel it came from is going */
        lease_free(l);
    }
    return n;
}

api_error lease_extend(registry_entry *e, const char *receipt, uint64_t ms)
{
    api_error err = API_OK;
    pthread_mutex_lock(&L.lock);
    lease *l = find(e, receipt, &err);
    if (l && !timer_update(&l->deadline, ms)) {
        err = API_LEASE_ENDED; /* its deadline passed: on_expired() has it */
        l = NULL;
    }
    pthread_mutex_unlock(&L.lock);
    return l ? API_OK : err;
}
