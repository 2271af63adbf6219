/* test_peek.c - tests of core/src/peek.c through the public API: what
 * hop_peek() shows (memory, queue files, messages given back at the head;
 * not messages out with receivers), in the order hop_recv() takes them,
 * byte-exact; max and a function that stops; a corrupt record passed over
 * as hop_recv() skips it; the budget as it was after; and that nothing is
 * taken: a full drain after every peek returns every message once, in
 * order, also with a sender and a receiver running meanwhile. Each test
 * runs in its own temp dir; the channel is <dir>/ch. */
#include "test_util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LEN 100
#define MAX_IDS 4096

/* What a peek showed: the ids, each message checked byte for byte. */
typedef struct seen {
    uint64_t ids[MAX_IDS];
    size_t n;
    size_t stop_at;     /* return false on this call (1-based); 0: never */
    bool bad;           /* a message was not exactly what its id says */
    hop_budget *budget; /* if set: the most it counted during a call */
    size_t budget_max;
} seen;

/* True if data[0..len) is exactly message id. */
static bool exact(const void *data, size_t len, uint64_t id)
{
    unsigned char *want = malloc(len ? len : 1);
    tu_fill_id(want, len, id);
    bool same = tu_id_of(data, len) == id && memcmp(want, data, len) == 0;
    free(want);
    return same;
}

static bool collect(void *arg, const void *data, size_t len)
{
    seen *s = arg;
    uint64_t id = tu_id_of(data, len);
    if (id == UINT64_MAX || !exact(data, len, id))
        s->bad = true;
    if (s->n < MAX_IDS)
        s->ids[s->n] = id;
    s->n++;
    if (s->budget && hop_budget_used(s->budget) > s->budget_max)
        s->budget_max = hop_budget_used(s->budget);
    return s->stop_at == 0 || s->n < s->stop_at;
}

static void send_id(hop_channel *ch, uint64_t id, size_t len)
{
    unsigned char buf[4096];
    tu_fill_id(buf, len, id);
    assert_int_equal(hop_send(ch, buf, len), HOP_OK);
}

static void send_ids(hop_channel *ch, uint64_t from, uint64_t to)
{
    for (uint64_t id = from; id < to; id++)
        send_id(ch, id, LEN);
}

/* Take the next message, which must be id (byte-exact); OUT: its data. */
static void *recv_id(hop_channel *ch, uint64_t id)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), id);
    assert_true(exact(data, len, id));
    return data;
}

/* A full peek must show exactly want[0..n), byte-exact. */
static void peek_is(hop_channel *ch, const uint64_t *want, size_t n)
{
    seen *s = calloc(1, sizeof *s);
    size_t shown = 99999;
    assert_int_equal(hop_peek(ch, SIZE_MAX, collect, s, &shown), HOP_OK);
    assert_int_equal(shown, n);
    assert_int_equal(s->n, n);
    assert_false(s->bad);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(s->ids[i], want[i]);
    free(s);
}

/* A full peek must show ids from..to-1. */
static void peek_range(hop_channel *ch, uint64_t from, uint64_t to)
{
    uint64_t *want = calloc(to - from + 1, sizeof *want);
    for (uint64_t id = from; id < to; id++)
        want[id - from] = id;
    peek_is(ch, want, (size_t)(to - from));
    free(want);
}

/* Receive everything: exactly want[0..n), in order, then nothing. */
static void drain_is(hop_channel *ch, const uint64_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        hop_free(recv_id(ch, want[i]));
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
}

static void drain_range(hop_channel *ch, uint64_t from, uint64_t to)
{
    for (uint64_t id = from; id < to; id++)
        hop_free(recv_id(ch, id));
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
}

/* 4 messages in memory, the rest in files of 5 records. */
static hop_limits paged(void)
{
    return tu_limits(4 * hop_message_cost(LEN), TU_FILE_HEADER + 5 * TU_RECORD_SIZE(LEN), SIZE_MAX,
                     1000);
}

/* ---- what is shown ---- */

static void test_memory_only(void **state)
{
    hop_channel *ch = tu_open(*state, tu_limits(1 << 20, 1 << 20, SIZE_MAX, 1000));
    peek_range(ch, 0, 0);
    send_ids(ch, 0, 10);
    peek_range(ch, 0, 10);
    peek_range(ch, 0, 10); /* twice: nothing moved */
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 10);
    assert_int_equal(s.received_total, 0);
    drain_range(ch, 0, 10);
    hop_channel_close(ch);
}

static void test_memory_and_files(void **state)
{
    hop_channel *ch = tu_open(*state, paged());
    send_ids(ch, 0, 50);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.memory_messages, 4);
    assert_int_equal(s.disk_files, 10);
    peek_range(ch, 0, 50);
    for (uint64_t id = 0; id < 7; id++) /* all of memory and 3 records of the first file */
        hop_free(recv_id(ch, id));
    peek_range(ch, 7, 50);
    send_ids(ch, 50, 60); /* behind the disk */
    peek_range(ch, 7, 60);
    s = tu_stats(ch);
    assert_int_equal(s.messages, 53);
    assert_int_equal(s.records_corrupt_total, 0);
    drain_range(ch, 7, 60);
    hop_channel_close(ch);
}

/* Messages out with receivers are not shown; given back, they are, at the
 * head, in the order first taken (from memory and from a file). */
static void test_given_back_and_out(void **state)
{
    hop_channel *ch = tu_open(*state, paged());
    send_ids(ch, 0, 20);
    void *out[6];
    for (uint64_t id = 0; id < 6; id++) /* 0..3 from memory, 4 and 5 from the first file */
        out[id] = recv_id(ch, id);
    peek_range(ch, 6, 20);
    assert_int_equal(tu_stats(ch).in_flight, 2);
    assert_int_equal(hop_requeue(ch, out[5], LEN), HOP_OK);
    assert_int_equal(hop_requeue(ch, out[1], LEN), HOP_OK);
    uint64_t want[] = {1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19};
    peek_is(ch, want, 16);
    peek_is(ch, want, 16);
    assert_int_equal(tu_stats(ch).in_flight, 1); /* 4 is still out */
    drain_is(ch, want, 16);
    hop_free(out[0]);
    hop_free(out[2]);
    hop_free(out[3]);
    hop_free(out[4]);
    hop_channel_close(ch);
}

static void test_max_and_stop(void **state)
{
    hop_channel *ch = tu_open(*state, paged());
    send_ids(ch, 0, 30);
    seen *s = calloc(1, sizeof *s);
    size_t shown;
    assert_int_equal(hop_peek(ch, 5, collect, s, &shown), HOP_OK);
    assert_int_equal(shown, 5);
    for (uint64_t i = 0; i < 5; i++)
        assert_int_equal(s->ids[i], i);
    memset(s, 0, sizeof *s);
    s->stop_at = 7; /* past memory, inside the files */
    assert_int_equal(hop_peek(ch, 100, collect, s, &shown), HOP_OK);
    assert_int_equal(shown, 7);
    assert_int_equal(s->n, 7);
    for (uint64_t i = 0; i < 7; i++)
        assert_int_equal(s->ids[i], i);
    memset(s, 0, sizeof *s);
    s->stop_at = 2; /* inside memory */
    assert_int_equal(hop_peek(ch, 100, collect, s, &shown), HOP_OK);
    assert_int_equal(shown, 2);
    memset(s, 0, sizeof *s);
    assert_int_equal(hop_peek(ch, 0, collect, s, &shown), HOP_OK);
    assert_int_equal(shown, 0);
    assert_int_equal(s->n, 0);
    free(s);
    assert_int_equal(hop_peek(NULL, 5, collect, NULL, &shown), HOP_INVALID);
    assert_int_equal(hop_peek(ch, 5, NULL, NULL, &shown), HOP_INVALID);
    drain_range(ch, 0, 30);
    hop_channel_close(ch);
}

/* A record whose payload is damaged is passed over, as hop_recv() skips
 * it; the peek does not fail, and does not count it. */
static void test_corrupt_record_skipped(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(0, 1 << 20, SIZE_MAX, 1000));
    send_ids(ch, 0, 10);
    uint64_t seqs[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 1);
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "%020llu.hq", (unsigned long long)seqs[0]);
    tu_join(path, d->chan, name);
    tu_flip_byte(path, TU_FILE_HEADER + 3 * TU_RECORD_SIZE(LEN) + 16 + 20, 0x40);
    uint64_t want[] = {0, 1, 2, 4, 5, 6, 7, 8, 9};
    peek_is(ch, want, 9);
    assert_int_equal(tu_stats(ch).records_corrupt_total, 0);
    peek_is(ch, want, 9);
    for (int i = 0; i < 3; i++)
        hop_free(recv_id(ch, want[i]));
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_IO); /* the receiver meets it */
    assert_int_equal(tu_stats(ch).records_corrupt_total, 1);
    peek_is(ch, want + 3, 6);
    drain_is(ch, want + 3, 6);
    hop_channel_close(ch);
}

/* What a peek reads counts while it is held, and is given back: the
 * budget is as it was after, whether the read-ahead buffer was held
 * before (a receiver reading the files) or not. */
static void test_budget_as_before(void **state)
{
    hop_budget *b;
    assert_int_equal(hop_budget_new(1 << 20, &b), HOP_OK);
    hop_limits l = paged();
    l.budget = b;
    hop_channel *ch = tu_open(*state, l);
    send_ids(ch, 0, 40);
    seen *s = calloc(1, sizeof *s);
    size_t before = hop_budget_used(b);
    s->budget = b;
    assert_int_equal(hop_peek(ch, SIZE_MAX, collect, s, NULL), HOP_OK);
    assert_int_equal(s->n, 40);
    assert_true(s->budget_max > before); /* the buffer and the record read, while held */
    assert_int_equal(hop_budget_used(b), before);
    for (uint64_t id = 0; id < 6; id++) /* the receiver now holds the read-ahead buffer */
        hop_free(recv_id(ch, id));
    before = hop_budget_used(b);
    memset(s, 0, sizeof *s);
    assert_int_equal(hop_peek(ch, SIZE_MAX, collect, s, NULL), HOP_OK);
    assert_int_equal(s->n, 34);
    assert_int_equal(hop_budget_used(b), before);
    free(s);
    drain_range(ch, 6, 40);
    hop_channel_close(ch);
    assert_int_equal(hop_budget_used(b), 0);
    hop_budget_free(b);
}

/* ---- with a sender and a receiver running ---- */

#define CONCURRENT 3000

typedef struct race {
    hop_channel *ch;
    atomic_bool done;
    atomic_int errors;
} race;

static void *sender(void *arg)
{
    race *r = arg;
    unsigned char buf[LEN];
    for (uint64_t id = 0; id < CONCURRENT; id++) {
        tu_fill_id(buf, LEN, id);
        if (hop_send(r->ch, buf, LEN) != HOP_OK)
            atomic_fetch_add(&r->errors, 1);
    }
    return NULL;
}

static void *receiver(void *arg)
{
    race *r = arg;
    for (uint64_t want = 0; want < CONCURRENT;) {
        void *data;
        size_t len;
        hop_err err = hop_recv(r->ch, 5000, &data, &len);
        if (err != HOP_OK) {
            atomic_fetch_add(&r->errors, 1);
            break;
        }
        if (!exact(data, len, want))
            atomic_fetch_add(&r->errors, 1);
        want++;
        hop_free(data);
    }
    atomic_store(&r->done, true);
    return NULL;
}

static void test_concurrent_sender_and_receiver(void **state)
{
    hop_limits l = tu_limits(16 * hop_message_cost(LEN), 2048, SIZE_MAX, 1000);
    race r = {.ch = tu_open(*state, l)};
    atomic_init(&r.done, false);
    atomic_init(&r.errors, 0);
    pthread_t ts, tr;
    pthread_create(&ts, NULL, sender, &r);
    pthread_create(&tr, NULL, receiver, &r);
    seen *s = calloc(1, sizeof *s);
    size_t peeks = 0;
    while (!atomic_load(&r.done)) {
        memset(s, 0, sizeof *s);
        size_t shown;
        assert_int_equal(hop_peek(r.ch, 200, collect, s, &shown), HOP_OK);
        assert_int_equal(shown, s->n);
        assert_false(s->bad);
        for (size_t i = 1; i < s->n; i++)
            assert_true(s->ids[i] > s->ids[i - 1]);
        peeks++;
    }
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    free(s);
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_true(peeks > 0);
    hop_stats st = tu_stats(r.ch);
    assert_int_equal(st.messages, 0);
    assert_int_equal(st.received_total, CONCURRENT);
    hop_channel_close(r.ch);
}

int main(void)
{
    tu_log_capture();
#define T(name) cmocka_unit_test_setup_teardown(name, tu_dir_setup, tu_dir_teardown)
    const struct CMUnitTest tests[] = {
        T(test_memory_only),
        T(test_memory_and_files),
        T(test_given_back_and_out),
        T(test_max_and_stop),
        T(test_corrupt_record_skipped),
        T(test_budget_as_before),
        T(test_concurrent_sender_and_receiver),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
