/* test_purge.c - tests of core/src/purge.c (and schedule_purge.c) through
 * the public API: hop_purge() drops memory, queue files, messages given
 * back at the head and delayed ones, counts them exactly, gives the budget
 * back; messages out with receivers stay safe to free and are dropped when
 * given back; nothing comes back after a reopen (durable channels too);
 * a failure to remove a queue file stops the purge after the oldest ones,
 * leaving the newest messages whole and in order; a blocked receiver is
 * not woken. Delayed messages use a clock the test moves. Each test runs
 * in its own temp dir; the channel is <dir>/ch. */
#include "delay_util.h"
#include "sync_hook.h"

#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LEN 100
#define BASE DU_BASE

/* ---- messages ---- */

static bool exact(const void *data, size_t len, uint64_t id)
{
    unsigned char want[LEN];
    if (len != LEN)
        return false;
    tu_fill_id(want, len, id);
    return memcmp(want, data, len) == 0;
}

static void send_ids(hop_channel *ch, uint64_t from, uint64_t to)
{
    unsigned char buf[LEN];
    for (uint64_t id = from; id < to; id++) {
        tu_fill_id(buf, LEN, id);
        assert_int_equal(hop_send(ch, buf, LEN), HOP_OK);
    }
}

static void send_at_ids(hop_channel *ch, uint64_t from, uint64_t to, uint64_t due)
{
    unsigned char buf[LEN];
    for (uint64_t id = from; id < to; id++) {
        tu_fill_id(buf, LEN, id);
        assert_int_equal(hop_send_at(ch, buf, LEN, BASE + due), HOP_OK);
    }
}

/* Take the next message, which must be id; OUT: its data. */
static void *recv_id(hop_channel *ch, uint64_t id)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(tu_id_of(data, len), id);
    assert_true(exact(data, len, id));
    return data;
}

static void assert_empty(hop_channel *ch)
{
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.memory_messages, 0);
    assert_int_equal(s.disk_messages, 0);
    assert_int_equal(s.delayed, 0);
}

/* ids from..to-1 are received in order, then nothing. */
static void drain_range(hop_channel *ch, uint64_t from, uint64_t to)
{
    for (uint64_t id = from; id < to; id++)
        hop_free(recv_id(ch, id));
    assert_empty(ch);
}

/* 4 messages in memory, the rest in files of 5 records. */
static hop_limits paged(void)
{
    return tu_limits(4 * hop_message_cost(LEN), TU_FILE_HEADER + 5 * TU_RECORD_SIZE(LEN), 64, 1000);
}

/* Delay files (delay-*) in the channel directory. */
static int delay_files(const tu_dir *d)
{
    DIR *dir = opendir(d->chan);
    assert_non_null(dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(dir)) != NULL;)
        n += strncmp(e->d_name, "delay-", 6) == 0;
    closedir(dir);
    return n;
}

/* ---- everything dropped ---- */

static void test_purge_everything(void **state)
{
    tu_dir *d = *state;
    hop_budget *b;
    assert_int_equal(hop_budget_new(1 << 20, &b), HOP_OK);
    hop_limits l = paged();
    l.budget = b;
    hop_channel *ch = tu_open(d, l);
    size_t memory0 = hop_budget_used(b);
    uint64_t disk0 = hop_budget_disk_used(b);
    int entries0 = tu_count_entries(d->chan);

    send_ids(ch, 0, 30); /* 4 in memory, 26 in 6 files */
    void *out[6];
    for (uint64_t id = 0; id < 6; id++) /* 4 from memory, 2 from the first file */
        out[id] = recv_id(ch, id);
    for (int i = 5; i >= 0; i--) /* all given back to the head */
        assert_int_equal(hop_requeue(ch, out[i], LEN), HOP_OK);
    send_at_ids(ch, 100, 105, 10000);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 30);
    assert_int_equal(s.delayed, 5);
    assert_true(tu_count_qfiles(d->chan) >= 5);
    assert_true(delay_files(d) >= 1);
    assert_true(hop_budget_disk_used(b) > disk0);

    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 35);
    s = tu_stats(ch);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(s.disk_bytes, 0);
    assert_int_equal(s.memory_bytes, 0);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.delayed_bytes, 0);
    assert_empty(ch);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    assert_int_equal(delay_files(d), 0);
    assert_int_equal(tu_count_entries(d->chan), entries0);
    assert_int_equal(hop_budget_used(b), memory0);
    assert_int_equal(hop_budget_disk_used(b), disk0);

    du_move_to(20000); /* the delayed ones were dropped: nothing is handed on */
    assert_empty(ch);
    assert_int_equal(hop_purge(ch, &purged), HOP_OK); /* an empty purge */
    assert_int_equal(purged, 0);

    send_ids(ch, 200, 230); /* a fresh queue, through memory and files */
    drain_range(ch, 200, 230);
    hop_channel_close(ch);
    assert_int_equal(hop_budget_used(b), 0);
    hop_budget_free(b);
    assert_int_equal(hop_purge(NULL, &purged), HOP_INVALID);
}

/* Messages out with receivers during the purge: freeing one is safe,
 * giving one back drops it, also after a close; none comes back. */
static void test_messages_out(void **state)
{
    tu_dir *d = *state;
    hop_limits l = paged();
    hop_channel *ch = tu_open(d, l);
    send_ids(ch, 0, 20);
    void *out[8];
    for (uint64_t id = 0; id < 8; id++) /* 0..3 from memory, 4..7 from the files */
        out[id] = recv_id(ch, id);
    assert_int_equal(hop_hold(ch, out[1]), HOP_OK);
    assert_int_equal(hop_hold(ch, out[5]), HOP_OK);
    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 12);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.held, 2);

    hop_free(out[0]);                                       /* from memory */
    hop_free(out[4]);                                       /* from a removed file */
    assert_int_equal(hop_requeue(ch, out[2], LEN), HOP_OK); /* dropped */
    assert_int_equal(hop_requeue(ch, out[6], LEN), HOP_OK); /* dropped */
    assert_int_equal(hop_requeue(ch, out[1], LEN), HOP_OK); /* held: its hold ends */
    assert_int_equal(hop_requeue_at(ch, out[5], LEN, BASE + 5000), HOP_OK);
    s = tu_stats(ch);
    assert_int_equal(s.held, 0);
    assert_int_equal(s.held_bytes, 0);
    assert_int_equal(s.delayed, 0);
    assert_empty(ch);

    send_ids(ch, 50, 60);
    void *fresh = recv_id(ch, 50);
    assert_int_equal(hop_requeue(ch, fresh, LEN), HOP_OK); /* taken after: given back */
    du_move_to(6000);
    drain_range(ch, 50, 60);

    hop_channel_close(ch); /* out[3] and out[7] still out */
    ch = tu_open(d, l);
    assert_empty(ch);
    hop_free(out[3]);
    hop_free(out[7]); /* its channel is gone: only freed */
    hop_channel_close(ch);
}

/* Close and reopen after a purge: nothing comes back, delayed ones
 * neither; on a durable channel too. */
static void purge_and_reopen(const tu_dir *d, hop_limits l)
{
    hop_channel *ch = tu_open(d, l);
    send_ids(ch, 0, 40);
    send_at_ids(ch, 100, 103, 3000);
    void *out = recv_id(ch, 0);
    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 42);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    hop_channel_close(ch);
    hop_free(out);
    ch = tu_open(d, l);
    assert_empty(ch);
    du_move_to(4000);
    assert_empty(ch);
    assert_int_equal(tu_stats(ch).recovered_total, 0);
    send_ids(ch, 60, 70);
    drain_range(ch, 60, 70);
    hop_channel_close(ch);
}

static void test_reopen(void **state)
{
    purge_and_reopen(*state, paged());
}

static void test_reopen_durable(void **state)
{
    hop_limits l = paged();
    l.durable = true;
    purge_and_reopen(*state, l);
}

/* A durable send waiting for its sync when the purge runs is not dropped:
 * its file stays, the records published before it in that file go, and
 * once synced it is received, alone; a reopen brings none of them back. */
static void test_durable_send_waiting_for_sync(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, durable_limits(1 << 20));
    for (uint64_t id = 0; id < 5; id++)
        send_ok(ch, id, LEN);
    hook_set(&H.gate_armed, 1);
    sender s;
    sender_start(&s, ch, 100, LEN);
    WAIT_FOR(hook_get(&H.gate_entered) == 1, "the sync held at the gate");
    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 5);
    assert_int_equal(tu_count_qfiles(d->chan), 1); /* the sync needs it */
    assert_int_equal(tu_stats(ch).messages, 0);
    gate_open(0);
    sender_join(&s);
    assert_int_equal(s.err, HOP_OK);
    recv_exactly(ch, (uint64_t[]){100}, 1, LEN);
    assert_int_equal(tu_count_qfiles(d->chan), 0);
    hop_channel_close(ch);
    ch = tu_open(d, durable_limits(1 << 20));
    assert_empty(ch);
    hop_channel_close(ch);
}

/* A memory-only channel: memory is all there is to drop. */
static void test_memory_only(void **state)
{
    (void)state;
    hop_limits l = tu_limits(1 << 20, 1 << 20, 0, 1000);
    hop_channel *ch;
    assert_int_equal(hop_channel_open(NULL, "m", &l, &ch), HOP_OK);
    send_ids(ch, 0, 10);
    void *out = recv_id(ch, 0);
    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 9);
    assert_int_equal(hop_requeue(ch, out, LEN), HOP_OK); /* dropped */
    assert_empty(ch);
    send_ids(ch, 10, 15);
    drain_range(ch, 10, 15);
    hop_channel_close(ch);
}

/* ---- while sending and receiving ---- */

#define RACE 6000

typedef struct race {
    hop_channel *ch;
    atomic_bool sent;
    atomic_int errors;
    uint64_t received;
} race;

static void *race_sender(void *arg)
{
    race *r = arg;
    send_ids(r->ch, 0, RACE);
    atomic_store(&r->sent, true);
    return NULL;
}

/* Receives until the sender is done and nothing is left: ids only grow
 * (the purges leave gaps), each message exact. */
static void *race_receiver(void *arg)
{
    race *r = arg;
    uint64_t last = UINT64_MAX;
    for (;;) {
        void *data;
        size_t len;
        bool sent = atomic_load(&r->sent);
        hop_err err = hop_recv(r->ch, 50, &data, &len);
        if (err == HOP_TIMEOUT && sent)
            return NULL;
        if (err != HOP_OK)
            continue;
        uint64_t id = tu_id_of(data, len);
        if (!exact(data, len, id) || (last != UINT64_MAX && id <= last))
            atomic_fetch_add(&r->errors, 1);
        last = id;
        r->received++;
        hop_free(data);
    }
}

/* Purges while a sender and a receiver run: every message is received
 * once or purged, never both, and the order holds. */
static void test_while_sending_and_receiving(void **state)
{
    hop_limits l = tu_limits(8 * hop_message_cost(LEN), 1024, SIZE_MAX, 1000);
    race r = {.ch = tu_open(*state, l)};
    atomic_init(&r.sent, false);
    atomic_init(&r.errors, 0);
    pthread_t ts, tr;
    pthread_create(&ts, NULL, race_sender, &r);
    pthread_create(&tr, NULL, race_receiver, &r);
    uint64_t purged_total = 0;
    while (!atomic_load(&r.sent)) {
        uint64_t purged = 0;
        assert_int_equal(hop_purge(r.ch, &purged), HOP_OK);
        purged_total += purged;
        tu_sleep_ms(2);
    }
    pthread_join(ts, NULL);
    pthread_join(tr, NULL);
    assert_int_equal(atomic_load(&r.errors), 0);
    assert_int_equal(r.received + purged_total, RACE);
    hop_stats s = tu_stats(r.ch);
    assert_int_equal(s.in_flight, 0);
    assert_int_equal(s.messages, 0);
    hop_channel_close(r.ch);
}

/* ---- a failure in the middle ---- */

static atomic_int qfile_unlinks, fail_at;

static int failing_unlinkat(int dirfd, const char *path, int flags)
{
    size_t n = strlen(path);
    if (n > 3 && strcmp(path + n - 3, ".hq") == 0 &&
        atomic_fetch_add(&qfile_unlinks, 1) + 1 == atomic_load(&fail_at)) {
        errno = EACCES;
        return -1;
    }
    return hop__io_system.unlinkat(dirfd, path, flags);
}

/* The second queue file cannot be removed: the purge stops there. What
 * is left, also after a reopen, is exactly the newest messages, in order,
 * none twice. */
static void test_failure_leaves_newest(void **state)
{
    tu_dir *d = *state;
    hop_limits l =
        tu_limits(2 * hop_message_cost(LEN), TU_FILE_HEADER + 5 * TU_RECORD_SIZE(LEN), 64, 1000);
    hop_channel *ch = tu_open(d, l);
    send_ids(ch, 0, 30); /* 2 in memory, 28 in files of 5 (the last of 3) */
    assert_int_equal(tu_count_qfiles(d->chan), 6);
    static hop__io io;
    io = hop__io_system;
    io.unlinkat = failing_unlinkat;
    atomic_store(&qfile_unlinks, 0);
    atomic_store(&fail_at, 2);
    hop__io_set(&io);
    uint64_t purged = 0;
    errno = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_IO);
    assert_int_equal(errno, EACCES);
    hop__io_set(NULL);
    assert_int_equal(purged, 7); /* memory and the oldest file */
    assert_true(tu_log_contains("purge: cannot remove queue file"));
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 23);
    assert_int_equal(s.disk_files, 5);
    assert_int_equal(s.io_errors_total, 1);
    assert_int_equal(tu_count_qfiles(d->chan), 5);
    hop_channel_close(ch);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).messages, 23);
    drain_range(ch, 7, 30);
    hop_channel_close(ch);
}

/* ---- a blocked receiver ---- */

typedef struct waiting {
    hop_channel *ch;
    hop_err err;
    uint64_t id;
} waiting;

static void *wait_one(void *arg)
{
    waiting *w = arg;
    void *data;
    size_t len;
    w->err = hop_recv(w->ch, 10000, &data, &len);
    if (w->err == HOP_OK) {
        w->id = tu_id_of(data, len);
        hop_free(data);
    }
    return NULL;
}

static void test_waiting_receiver_not_woken(void **state)
{
    hop_channel *ch = tu_open(*state, paged());
    send_at_ids(ch, 0, 3, 1000);
    waiting w = {.ch = ch, .id = UINT64_MAX};
    pthread_t t;
    pthread_create(&t, NULL, wait_one, &w);
    while (tu_stats(ch).waiting_receivers == 0)
        tu_sleep_ms(1);
    uint64_t purged = 0;
    assert_int_equal(hop_purge(ch, &purged), HOP_OK);
    assert_int_equal(purged, 3);
    du_move_to(2000); /* they were due now */
    tu_sleep_ms(100);
    assert_int_equal(tu_stats(ch).waiting_receivers, 1); /* still waiting */
    send_ids(ch, 77, 78);
    pthread_join(t, NULL);
    assert_int_equal(w.err, HOP_OK);
    assert_int_equal(w.id, 77);
    assert_empty(ch);
    hop_channel_close(ch);
}

int main(void)
{
    tu_log_capture();
#define T(name) cmocka_unit_test_setup_teardown(name, du_setup, du_teardown)
    const struct CMUnitTest tests[] = {
        T(test_purge_everything),
        T(test_messages_out),
        T(test_reopen),
        T(test_reopen_durable),
        T(test_memory_only),
        T(test_while_sending_and_receiving),
        T(test_failure_leaves_newest),
        T(test_waiting_receiver_not_woken),
        cmocka_unit_test_setup_teardown(test_durable_send_waiting_for_sync, sync_setup,
                                        sync_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
