/* test_concurrency.c - core/src/channel.c under threads: producers and
 * competing consumers (blocking receivers, waiters, or both) over small
 * limits, so messages go through memory and disk and sends meet HOP_FULL.
 * Every message must arrive exactly once, byte-identical, and each consumer
 * must see each producer's messages in the order they were sent. */
#include "test_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRODUCERS 4
#define CONSUMERS 4
#define PER_PRODUCER 20000
#define TOTAL (PRODUCERS * PER_PRODUCER)
#define DEADLINE_MS 60000

typedef enum consumer_kind { BLOCKING, WAITER, BATCH } consumer_kind;

typedef struct shared {
    hop_channel *ch;
    int64_t deadline;
    atomic_int received;
    atomic_uchar seen[PRODUCERS][PER_PRODUCER];
    atomic_int duplicates, bad_bytes, out_of_order, unexpected, stalled;
    atomic_int full_retries;
    atomic_int sent;                 /* consumers start once a backlog exists */
    atomic_size_t max_disk_messages; /* proof that the disk was used */
    char first_error[256];
    atomic_flag error_set;
} shared;

static void note_error(shared *sh, atomic_int *counter, const char *what, uint64_t id)
{
    atomic_fetch_add(counter, 1);
    if (!atomic_flag_test_and_set(&sh->error_set))
        snprintf(sh->first_error, sizeof sh->first_error, "%s (message %llu:%llu)", what,
                 (unsigned long long)(id >> 32), (unsigned long long)(id & 0xffffffffu));
}

static size_t length_of(uint32_t seq)
{
    return 16 + seq % 49; /* 16..64 bytes */
}

/* ---- producers ---- */

typedef struct producer {
    shared *sh;
    uint32_t index;
    pthread_t thread;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    unsigned char buf[64];
    for (uint32_t seq = 0; seq < PER_PRODUCER; seq++) {
        uint64_t id = (uint64_t)p->index << 32 | seq;
        size_t len = length_of(seq);
        tu_fill_id(buf, len, id);
        for (;;) {
            hop_err err = hop_send(p->sh->ch, buf, len);
            if (err == HOP_OK)
                break;
            if (err != HOP_FULL || tu_now_ms() > p->sh->deadline) {
                note_error(p->sh, &p->sh->unexpected, hop_err_name(err), id);
                return NULL;
            }
            atomic_fetch_add(&p->sh->full_retries, 1);
            sched_yield(); /* consumers will make room */
        }
        atomic_fetch_add(&p->sh->sent, 1);
        if (seq % 256 == 0) {
            hop_stats s;
            hop_channel_stats(p->sh->ch, &s);
            size_t seen = atomic_load(&p->sh->max_disk_messages);
            while (s.disk_messages > seen &&
                   !atomic_compare_exchange_weak(&p->sh->max_disk_messages, &seen, s.disk_messages))
                ;
        }
    }
    return NULL;
}

/* ---- consumers ---- */

typedef struct consumer {
    shared *sh;
    consumer_kind kind;
    pthread_t thread;
    int64_t last_seq[PRODUCERS];
    hop_waiter *waiter;
    pthread_mutex_t lock; /* the waiter's mailbox */
    pthread_cond_t cond;
    bool delivered;
    hop_err err;
    void *data;
    size_t len;
} consumer;

/* check_message() without the free. */
static void check_only(consumer *c, void *data, size_t len);

static void check_message(consumer *c, void *data, size_t len)
{
    check_only(c, data, len);
    hop_free(data);
}

static void check_only(consumer *c, void *data, size_t len)
{
    shared *sh = c->sh;
    uint64_t id = tu_id_of(data, len);
    uint32_t prod = (uint32_t)(id >> 32), seq = (uint32_t)id;
    if (id == UINT64_MAX || prod >= PRODUCERS || seq >= PER_PRODUCER || len != length_of(seq)) {
        note_error(sh, &sh->bad_bytes, "wrong bytes", id);
    } else {
        if (atomic_exchange(&sh->seen[prod][seq], 1))
            note_error(sh, &sh->duplicates, "received twice", id);
        if ((int64_t)seq <= c->last_seq[prod])
            note_error(sh, &sh->out_of_order, "out of order for one consumer", id);
        c->last_seq[prod] = seq;
    }
    atomic_fetch_add(&sh->received, 1);
}

/* The message that tells one consumer to stop; sent once per consumer after
 * every real message has arrived, so consumers can wait without timeouts and
 * a lost wakeup shows up as a stall. */
#define POISON_ID ((uint64_t)0xFFFFFFFFu << 32)

static bool is_poison(void *data, size_t len)
{
    if (tu_id_of(data, len) != POISON_ID)
        return false;
    hop_free(data);
    return true;
}

static void consume_blocking(consumer *c)
{
    for (;;) {
        void *data;
        size_t len;
        hop_err err = hop_recv(c->sh->ch, -1, &data, &len);
        if (err != HOP_OK) {
            note_error(c->sh, &c->sh->unexpected, hop_err_name(err), 0);
            return;
        }
        if (is_poison(data, len))
            return;
        check_message(c, data, len);
    }
}

static void on_ready(void *arg, hop_err err, void *data, size_t len)
{
    consumer *c = arg;
    pthread_mutex_lock(&c->lock);
    c->delivered = true;
    c->err = err;
    c->data = data;
    c->len = len;
    pthread_cond_signal(&c->cond);
    pthread_mutex_unlock(&c->lock);
}

/* Wait for the mailbox up to ms; true if something was delivered. */
static bool mailbox_wait(consumer *c, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long)ms * 1000000L;
    ts.tv_sec += ts.tv_nsec / 1000000000L;
    ts.tv_nsec %= 1000000000L;
    pthread_mutex_lock(&c->lock);
    while (!c->delivered)
        if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) != 0)
            break;
    bool got = c->delivered;
    pthread_mutex_unlock(&c->lock);
    return got;
}

static void consume_with_waiter(consumer *c)
{
    for (;;) {
        void *data;
        size_t len;
        hop_err err = hop_recv_or_arm(c->sh->ch, c->waiter, &data, &len);
        if (err == HOP_TIMEOUT) {
            /* armed: the callback must come; give up only long after the
             * deadline (the main thread reports the stall) */
            while (!mailbox_wait(c, 100))
                if (tu_now_ms() > c->sh->deadline + 10000)
                    return;
            pthread_mutex_lock(&c->lock);
            c->delivered = false;
            err = c->err;
            data = c->data;
            len = c->len;
            pthread_mutex_unlock(&c->lock);
        }
        if (err != HOP_OK) {
            note_error(c->sh, &c->sh->unexpected, hop_err_name(err), 0);
            return;
        }
        if (is_poison(data, len))
            return;
        check_message(c, data, len);
    }
}

/* Batches of up to 16 (hop_recv_batch(), hop_free_all()); when there is
 * none, one blocking hop_recv() waits for the next message. A poison
 * stops it; what the batch held after it (other consumers' poisons) goes
 * back to the head, last first. */
static void consume_batches(consumer *c)
{
    enum { MAX = 16 };
    for (;;) {
        void *data[MAX];
        size_t lens[MAX], n;
        hop_err err = hop_recv_batch(c->sh->ch, MAX, data, lens, &n);
        if (err == HOP_TIMEOUT) {
            err = hop_recv(c->sh->ch, -1, &data[0], &lens[0]);
            n = 1;
        }
        if (err != HOP_OK) {
            note_error(c->sh, &c->sh->unexpected, hop_err_name(err), 0);
            return;
        }
        for (size_t i = 0; i < n; i++) {
            if (tu_id_of(data[i], lens[i]) != POISON_ID) {
                check_only(c, data[i], lens[i]);
                continue;
            }
            for (size_t j = n; j-- > i + 1;)
                if (hop_requeue(c->sh->ch, data[j], lens[j]) != HOP_OK)
                    note_error(c->sh, &c->sh->unexpected, "requeue", 0);
            hop_free_all(data, i + 1);
            return;
        }
        hop_free_all(data, n);
    }
}

static void *consume(void *arg)
{
    consumer *c = arg;
    /* let a backlog build up first (until the channel is full, at most),
     * so it spills to disk */
    while (atomic_load(&c->sh->sent) < TOTAL / 10 && atomic_load(&c->sh->full_retries) == 0 &&
           tu_now_ms() < c->sh->deadline)
        sched_yield();
    if (c->kind == BLOCKING)
        consume_blocking(c);
    else if (c->kind == BATCH)
        consume_batches(c);
    else
        consume_with_waiter(c);
    return NULL;
}

/* ---- the runs ---- */

static void run(const tu_dir *d, hop_limits limits, const consumer_kind kinds[CONSUMERS],
                const char *what)
{
    shared *sh = calloc(1, sizeof *sh);
    assert_non_null(sh);
    atomic_flag_clear(&sh->error_set);
    sh->deadline = tu_now_ms() + DEADLINE_MS;
    assert_int_equal(hop_channel_open(d->data, "ch", &limits, &sh->ch), HOP_OK);

    consumer c[CONSUMERS];
    producer p[PRODUCERS];
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < CONSUMERS; i++) {
        memset(&c[i], 0, sizeof c[i]);
        c[i].sh = sh;
        c[i].kind = kinds[i];
        for (int k = 0; k < PRODUCERS; k++)
            c[i].last_seq[k] = -1;
        pthread_mutex_init(&c[i].lock, NULL);
        pthread_cond_init(&c[i].cond, NULL);
        assert_int_equal(hop_waiter_new(on_ready, &c[i], &c[i].waiter), HOP_OK);
        assert_int_equal(pthread_create(&c[i].thread, NULL, consume, &c[i]), 0);
    }
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        p[i].sh = sh;
        p[i].index = i;
        assert_int_equal(pthread_create(&p[i].thread, NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(p[i].thread, NULL);
    hop_stats s;
    while (atomic_load(&sh->received) < TOTAL && atomic_load(&sh->unexpected) == 0) {
        if (tu_now_ms() > sh->deadline) {
            hop_channel_stats(sh->ch, &s);
            /* threads are stuck in the channel: fail without closing it */
            fail_msg("%s: stalled with %d of %d received; the channel holds %zu (%zu on disk), "
                     "%zu receivers waiting",
                     what, atomic_load(&sh->received), TOTAL, s.messages, s.disk_messages,
                     s.waiting_receivers);
        }
        tu_sleep_ms(1);
    }
    for (int i = 0; i < CONSUMERS; i++) {
        unsigned char poison[8];
        tu_fill_id(poison, sizeof poison, POISON_ID);
        while (hop_send(sh->ch, poison, sizeof poison) == HOP_FULL)
            tu_sleep_ms(1);
    }
    for (int i = 0; i < CONSUMERS; i++)
        pthread_join(c[i].thread, NULL);
    int64_t elapsed = tu_now_ms() - t0;
    hop_channel_stats(sh->ch, &s);
    print_message("%s: %d messages in %lld ms, %d FULL retries, up to %zu on disk\n", what, TOTAL,
                  (long long)elapsed, atomic_load(&sh->full_retries),
                  atomic_load(&sh->max_disk_messages));
    if (atomic_flag_test_and_set(&sh->error_set))
        fail_msg("%s: %s; duplicates %d, wrong bytes %d, out of order %d, unexpected %d, "
                 "stalled %d, received %d of %d",
                 what, sh->first_error, atomic_load(&sh->duplicates), atomic_load(&sh->bad_bytes),
                 atomic_load(&sh->out_of_order), atomic_load(&sh->unexpected),
                 atomic_load(&sh->stalled), atomic_load(&sh->received), TOTAL);
    assert_int_equal(atomic_load(&sh->received), TOTAL);
    assert_true(atomic_load(&sh->max_disk_messages) > 0);
    for (int k = 0; k < PRODUCERS; k++)
        for (int seq = 0; seq < PER_PRODUCER; seq++)
            if (!atomic_load(&sh->seen[k][seq]))
                fail_msg("%s: message %d:%d never arrived", what, k, seq);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.memory_bytes, 0);
    assert_int_equal(s.waiting_receivers, 0);
    assert_int_equal(s.sent_total, TOTAL + CONSUMERS);
    /* a batch consumer gives back the other consumers' poisons it took */
    assert_int_equal(s.received_total, TOTAL + CONSUMERS + s.requeued_total);
    assert_int_equal(s.records_corrupt_total, 0);
    assert_int_equal(s.io_errors_total, 0);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(tu_count_qfiles(d->chan), 0); /* every file deleted */

    hop_channel_close(sh->ch);
    for (int i = 0; i < CONSUMERS; i++) {
        hop_waiter_free(c[i].waiter);
        pthread_mutex_destroy(&c[i].lock);
        pthread_cond_destroy(&c[i].cond);
    }
    free(sh);
}

static const consumer_kind all_blocking[CONSUMERS] = {BLOCKING, BLOCKING, BLOCKING, BLOCKING};
static const consumer_kind all_waiters[CONSUMERS] = {WAITER, WAITER, WAITER, WAITER};
static const consumer_kind mixed[CONSUMERS] = {BLOCKING, WAITER, BLOCKING, WAITER};
static const consumer_kind with_batches[CONSUMERS] = {BATCH, WAITER, BATCH, BLOCKING};

/* Small memory, files without limit: memory and disk both in play. */
static void test_blocking_consumers(void **state)
{
    run(*state, tu_limits(16 * 1024, 64 * 1024, SIZE_MAX, 64), all_blocking, "blocking");
}

static void test_waiter_consumers(void **state)
{
    run(*state, tu_limits(16 * 1024, 64 * 1024, SIZE_MAX, 64), all_waiters, "waiters");
}

/* Few small files: producers meet HOP_FULL and retry. */
static void test_mixed_consumers_with_full(void **state)
{
    run(*state, tu_limits(4 * 1024, 8 * 1024, 2, 64), mixed, "mixed, FULL");
}

/* No memory at all: every message through the disk. */
static void test_disk_only(void **state)
{
    run(*state, tu_limits(0, 32 * 1024, SIZE_MAX, 64), mixed, "disk only");
}

/* Consumers taking batches beside the others, memory and disk in play and
 * through the disk alone. */
static void test_batch_consumers(void **state)
{
    run(*state, tu_limits(16 * 1024, 64 * 1024, SIZE_MAX, 64), with_batches, "batches");
}

static void test_batch_consumers_disk_only(void **state)
{
    run(*state, tu_limits(0, 32 * 1024, SIZE_MAX, 64), with_batches, "batches, disk only");
}

int main(void)
{
    hop_set_log(NULL, NULL);
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_blocking_consumers), T(test_waiter_consumers), T(test_mixed_consumers_with_full),
        T(test_disk_only),          T(test_batch_consumers),  T(test_batch_consumers_disk_only),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
