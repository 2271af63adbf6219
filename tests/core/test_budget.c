/* test_budget.c - tests of core/src/budget.c and of channels that share a
 * memory budget: sends past the budget go to queue files in order (or
 * HOP_FULL without files), what comes back is counted even past the limit,
 * holds take from the budget, a close gives back what memory held, and
 * many threads on several channels never pass the limit with new sends.
 * Each test runs in its own temp dir; channels are <dir>/<name>. */
#include "expect.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define LEN 100

static size_t cost(void)
{
    return hop_message_cost(LEN);
}

/* Limits of a channel with room for 8 messages of its own, on b. */
static hop_limits shared(hop_budget *b, size_t max_disk_files)
{
    hop_limits l = tu_limits(8 * cost(), 1 << 20, max_disk_files, 1000);
    l.budget = b;
    return l;
}

static hop_channel *open_on(const tu_dir *d, const char *name, hop_limits l)
{
    hop_channel *ch = NULL;
    assert_int_equal(hop_channel_open(d->data, name, &l, &ch), HOP_OK);
    return ch;
}

/* Channels a and b on a new budget of messages messages of LEN bytes, each
 * with max_disk_files files. */
typedef struct pair {
    hop_budget *budget;
    hop_channel *a, *b;
} pair;

static pair open_pair(const tu_dir *d, size_t messages, size_t max_disk_files)
{
    pair p;
    assert_int_equal(hop_budget_new(messages * cost(), &p.budget), HOP_OK);
    p.a = open_on(d, "a", shared(p.budget, max_disk_files));
    p.b = open_on(d, "b", shared(p.budget, max_disk_files));
    return p;
}

/* Close both: the budget must then count nothing; free it. */
static void close_pair(pair *p)
{
    assert_int_equal(hop_channel_close(p->a), HOP_OK);
    assert_int_equal(hop_channel_close(p->b), HOP_OK);
    assert_int_equal(hop_budget_used(p->budget), 0); /* closing freed memory */
    hop_budget_free(p->budget);
}

static void test_new_and_free(void **state)
{
    (void)state;
    hop_budget *b = NULL;
    assert_int_equal(hop_budget_new(0, &b), HOP_INVALID);
    assert_int_equal(hop_budget_new(100, NULL), HOP_INVALID);
    assert_int_equal(hop_budget_new(12345, &b), HOP_OK);
    assert_int_equal(hop_budget_limit(b), 12345);
    assert_int_equal(hop_budget_used(b), 0);
    assert_int_equal(hop_budget_used(NULL), 0);
    assert_int_equal(hop_budget_limit(NULL), 0);
    hop_budget_free(b);
    hop_budget_free(NULL);
}

/* Two channels, a budget of 5 messages: a fills it; b's sends go to its
 * queue files although its own memory is empty, and come out in order
 * behind nothing; once a is drained the budget is back to 0. */
static void test_sends_past_the_budget_go_to_disk_in_order(void **state)
{
    const tu_dir *d = *state;
    pair p = open_pair(d, 5, 4);
    hop_budget *budget = p.budget;
    hop_channel *a = p.a, *b = p.b;
    expect ea, eb;
    expect_init(&ea, 64);
    expect_init(&eb, 64);
    for (uint64_t i = 0; i < 5; i++)
        send_ok(a, &ea, i, LEN);
    assert_int_equal(hop_budget_used(budget), 5 * cost());
    assert_int_equal(tu_stats(a).memory_messages, 5);
    for (uint64_t i = 0; i < 3; i++)
        send_ok(b, &eb, 100 + i, LEN);
    hop_stats sb = tu_stats(b);
    assert_int_equal(sb.memory_messages, 0);
    assert_int_equal(sb.disk_messages, 3);
    /* a's sends past the budget go to a's files, behind its memory */
    send_ok(a, &ea, 5, LEN);
    assert_int_equal(tu_stats(a).disk_messages, 1);
    assert_true(hop_budget_used(budget) <= hop_budget_limit(budget));

    recv_all_expected(a, &ea);
    assert_int_equal(hop_budget_used(budget), 0);
    /* b's disk part keeps later sends behind it (FIFO), then memory again */
    send_ok(b, &eb, 103, LEN);
    recv_all_expected(b, &eb);
    send_ok(b, &eb, 104, LEN);
    assert_int_equal(tu_stats(b).memory_messages, 1);
    assert_int_equal(hop_budget_used(budget), cost());
    recv_all_expected(b, &eb);
    assert_int_equal(hop_budget_used(budget), 0);

    close_pair(&p);
    expect_free(&ea);
    expect_free(&eb);
}

/* Without queue files a send that finds the budget used up is HOP_FULL,
 * and so is a batch; the caller's data is untouched and nothing counts. */
static void test_memory_only_channel_is_full_at_the_budget(void **state)
{
    const tu_dir *d = *state;
    pair p = open_pair(d, 3, 0);
    hop_budget *budget = p.budget;
    hop_channel *a = p.a, *b = p.b;
    for (uint64_t i = 0; i < 3; i++)
        assert_int_equal(send_id(a, i, LEN), HOP_OK);
    assert_int_equal(send_id(b, 9, LEN), HOP_FULL);
    char one[LEN], two[LEN];
    tu_fill_id(one, LEN, 1);
    tu_fill_id(two, LEN, 2);
    hop_buf batch[2] = {{one, LEN}, {two, LEN}};
    assert_int_equal(hop_send_batch(b, batch, 2), HOP_FULL);
    assert_int_equal(tu_id_of(one, LEN), 1);
    assert_int_equal(tu_stats(b).rejected_full_total, 2);
    assert_int_equal(tu_stats(b).messages, 0);
    assert_int_equal(hop_budget_used(budget), 3 * cost());
    /* room again: b's send goes through */
    void *m;
    size_t len;
    assert_int_equal(hop_recv(a, 0, &m, &len), HOP_OK);
    hop_free(m);
    assert_int_equal(send_id(b, 9, LEN), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 3 * cost());
    close_pair(&p);
}

/* A message taken out and requeued is counted again even past the limit:
 * by at most what was taken out. */
static void test_requeue_may_pass_the_limit_by_what_was_out(void **state)
{
    const tu_dir *d = *state;
    pair p = open_pair(d, 2, 0);
    hop_budget *budget = p.budget;
    hop_channel *a = p.a, *b = p.b;
    assert_int_equal(send_id(a, 1, LEN), HOP_OK);
    assert_int_equal(send_id(a, 2, LEN), HOP_OK);
    void *m;
    size_t len;
    assert_int_equal(hop_recv(a, 0, &m, &len), HOP_OK);
    assert_int_equal(hop_budget_used(budget), cost());
    assert_int_equal(send_id(b, 3, LEN), HOP_OK); /* b takes the room */
    assert_int_equal(send_id(b, 4, LEN), HOP_FULL);
    assert_int_equal(hop_requeue(a, m, len), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 3 * cost()); /* the limit + what was out */
    assert_int_equal(send_id(b, 4, LEN), HOP_FULL);       /* no new send passes it */
    assert_int_equal(hop_recv(a, 0, &m, &len), HOP_OK);
    assert_int_equal(tu_id_of(m, len), 1); /* back at the head */
    hop_free(m);
    close_pair(&p);
}

/* A hold takes from the budget (HOP_FULL when it cannot) and gives it back
 * when the message is freed, also after its channel closed. */
static void test_holds_take_from_the_budget(void **state)
{
    const tu_dir *d = *state;
    pair p = open_pair(d, 2, 0);
    hop_budget *budget = p.budget;
    hop_channel *a = p.a, *b = p.b;
    assert_int_equal(send_id(a, 1, LEN), HOP_OK);
    void *m;
    size_t len;
    assert_int_equal(hop_recv(a, 0, &m, &len), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 0);
    assert_int_equal(send_id(b, 2, LEN), HOP_OK);
    assert_int_equal(send_id(b, 3, LEN), HOP_OK);
    assert_int_equal(hop_hold(a, m), HOP_FULL); /* the budget is b's now */
    void *n;
    assert_int_equal(hop_recv(b, 0, &n, &len), HOP_OK);
    hop_free(n);
    assert_int_equal(hop_hold(a, m), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 2 * cost());
    assert_int_equal(send_id(b, 4, LEN), HOP_FULL);
    assert_int_equal(hop_channel_close(a), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 2 * cost()); /* still held */
    hop_free(m);
    assert_int_equal(hop_budget_used(budget), cost());
    assert_int_equal(hop_channel_close(b), HOP_OK);
    assert_int_equal(hop_budget_used(budget), 0);
    hop_budget_free(budget);
}

/* ---- many threads, several channels, one budget ---- */

enum { CHANNELS = 4, PER_CHANNEL = 3000 };

typedef struct shared_run {
    hop_budget *budget;
    hop_channel *ch[CHANNELS];
    atomic_size_t highest; /* the most hop_budget_used() was seen at */
    atomic_bool done;
    atomic_int failures;
} shared_run;

typedef struct worker {
    shared_run *run;
    int index;
} worker;

static void *producer_main(void *arg)
{
    worker *w = arg;
    for (uint64_t i = 0; i < PER_CHANNEL; i++) {
        unsigned char buf[LEN + 6 * 50]; /* send_id()'s buffer is one for all threads */
        size_t len = LEN + (i % 7) * 50;
        tu_fill_id(buf, len, i);
        hop_err err = hop_send(w->run->ch[w->index], buf, len);
        size_t used = hop_budget_used(w->run->budget);
        if (used > hop_budget_limit(w->run->budget)) {
            fprintf(stderr, "channel %d: the budget holds %zu after send %llu\n", w->index, used,
                    (unsigned long long)i);
            atomic_fetch_add(&w->run->failures, 1);
        }
        if (err != HOP_OK) {
            fprintf(stderr, "channel %d: send %llu: %s\n", w->index, (unsigned long long)i,
                    hop_strerror(err));
            atomic_fetch_add(&w->run->failures, 1);
        }
    }
    return NULL;
}

static void *consumer_main(void *arg)
{
    worker *w = arg;
    for (uint64_t i = 0; i < PER_CHANNEL; i++) {
        void *m;
        size_t len;
        hop_err err = hop_recv(w->run->ch[w->index], 10000, &m, &len);
        if (err != HOP_OK || tu_id_of(m, len) != i || len != LEN + (i % 7) * 50) {
            fprintf(stderr, "channel %d: receive %llu: %s\n", w->index, (unsigned long long)i,
                    err != HOP_OK ? hop_strerror(err) : "not the next message");
            atomic_fetch_add(&w->run->failures, 1);
            return NULL;
        }
        hop_free(m);
    }
    return NULL;
}

static void *watcher_main(void *arg)
{
    shared_run *run = arg;
    while (!atomic_load(&run->done)) {
        size_t used = hop_budget_used(run->budget);
        size_t high = atomic_load(&run->highest);
        while (used > high && !atomic_compare_exchange_weak(&run->highest, &high, used))
            ;
    }
    return NULL;
}

/* New sends never take the budget past its limit (no requeue here), every
 * message of every channel arrives once and in order, and the budget ends
 * at 0. */
static void test_threads_never_pass_the_budget(void **state)
{
    const tu_dir *d = *state;
    shared_run run = {0};
    assert_int_equal(hop_budget_new(40 * cost(), &run.budget), HOP_OK);
    char name[8];
    for (int c = 0; c < CHANNELS; c++) {
        snprintf(name, sizeof name, "c%d", c);
        hop_limits l = shared(run.budget, 64);
        l.memory_bytes = 30 * hop_message_cost(LEN + 300); /* together more than the budget */
        run.ch[c] = open_on(d, name, l);
    }
    pthread_t producers[CHANNELS], consumers[CHANNELS], watcher;
    worker workers[CHANNELS];
    assert_int_equal(pthread_create(&watcher, NULL, watcher_main, &run), 0);
    for (int c = 0; c < CHANNELS; c++) {
        workers[c] = (worker){&run, c};
        assert_int_equal(pthread_create(&producers[c], NULL, producer_main, &workers[c]), 0);
        assert_int_equal(pthread_create(&consumers[c], NULL, consumer_main, &workers[c]), 0);
    }
    for (int c = 0; c < CHANNELS; c++) {
        pthread_join(producers[c], NULL);
        pthread_join(consumers[c], NULL);
    }
    atomic_store(&run.done, true);
    pthread_join(watcher, NULL);
    assert_int_equal(atomic_load(&run.failures), 0);
    assert_true(atomic_load(&run.highest) <= hop_budget_limit(run.budget));
    assert_int_equal(hop_budget_used(run.budget), 0);
    for (int c = 0; c < CHANNELS; c++)
        assert_int_equal(hop_channel_close(run.ch[c]), HOP_OK);
    hop_budget_free(run.budget);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_new_and_free),
        T(test_sends_past_the_budget_go_to_disk_in_order),
        T(test_memory_only_channel_is_full_at_the_budget),
        T(test_requeue_may_pass_the_limit_by_what_was_out),
        T(test_holds_take_from_the_budget),
        T(test_threads_never_pass_the_budget),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
