/* test_schedule.c - tests of core/src/schedule.c (and scheduler.c,
 * delay_file.c, clock.c) through the public API: delayed sends and
 * give-backs with a clock the test moves (hop_set_clock()), never early,
 * handed on when due, FIFO among equal due times and across the split of
 * a coarse file into fine ones, the head and the tail, the limits, close
 * and reopen, a torn file, durable channels, a receiver waiting. Each
 * test runs in its own temp dir; the channel is <dir>/ch. */
#include "delay_util.h"

#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BASE DU_BASE

static hop_limits roomy(void)
{
    return tu_limits(1 << 20, 1 << 20, 16, 4096);
}

static void send_at_ok(hop_channel *ch, const char *text, uint64_t due)
{
    assert_int_equal(hop_send_at(ch, text, strlen(text), BASE + due), HOP_OK);
}

/* Not handed on a moment before its slot ends; handed on when it ends. */
static void test_never_early(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "a", 5000);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.delayed, 1);
    assert_true(s.delayed_bytes > 0);
    assert_int_equal(s.messages, 0);
    du_move_to(4999);
    du_recv_none(ch);
    du_move_to(5049); /* its slot [5000, 5050) has not ended: at most 50 ms late */
    du_recv_none(ch);
    du_move_to(5050);
    du_recv_text(ch, "a");
    s = tu_stats(ch);
    assert_int_equal(s.delayed, 0);
    assert_int_equal(s.delayed_bytes, 0);
    assert_int_equal(du_count_delay_files(d), 0);
    hop_channel_close(ch);
}

/* A due time not in the future is a plain send. */
static void test_due_now_is_a_send(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "now", 0);
    assert_int_equal(hop_send_at(ch, "past", 4, BASE - 10), HOP_OK);
    du_recv_text(ch, "now");
    du_recv_text(ch, "past");
    assert_int_equal(tu_stats(ch).delayed, 0);
    hop_channel_close(ch);
}

/* Earlier due times first; equal due times in the order they were sent,
 * across the split of a coarse window into fine slots. */
static void test_fifo(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "c", 60500);
    send_at_ok(ch, "a1", 120000); /* coarse: its window is far */
    send_at_ok(ch, "b", 60000);
    send_at_ok(ch, "a2", 120000);
    send_at_ok(ch, "a3", 120010); /* the same slot as a1, a2 */
    assert_int_equal(du_count_delay_files(d), 2);
    du_move_to(60499);
    du_recv_text(ch, "b");
    du_recv_none(ch);
    du_move_to(60550);
    du_recv_text(ch, "c");
    du_move_to(119500); /* the window of 120000 is split now */
    assert_int_equal(tu_stats(ch).delayed, 3);
    send_at_ok(ch, "a4", 120000); /* straight to its fine slot, behind the others */
    send_at_ok(ch, "a5", 120049);
    du_recv_none(ch);
    du_move_to(120050);
    du_recv_text(ch, "a1");
    du_recv_text(ch, "a2");
    du_recv_text(ch, "a3");
    du_recv_text(ch, "a4");
    du_recv_text(ch, "a5");
    du_recv_none(ch);
    assert_int_equal(du_count_delay_files(d), 0);
    hop_channel_close(ch);
}

/* A batch: one due time, in order, all or none. */
static void test_batch(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 200, 1, 4096));
    hop_buf msgs[3] = {{"x", 1}, {"y", 1}, {"z", 1}};
    assert_int_equal(hop_send_batch_at(ch, msgs, 3, BASE + 1000), HOP_OK);
    assert_int_equal(tu_stats(ch).delayed, 3);
    char big[100] = {0};
    hop_buf two[2] = {{big, sizeof big}, {big, sizeof big}};
    assert_int_equal(hop_send_batch_at(ch, two, 2, BASE + 1000), HOP_FULL);
    assert_int_equal(tu_stats(ch).delayed, 3);
    du_move_to(1050);
    du_recv_text(ch, "x");
    du_recv_text(ch, "y");
    du_recv_text(ch, "z");
    du_recv_none(ch);
    hop_channel_close(ch);
}

/* A message given back with a delay returns at the head when due, not
 * before; one given back without is at the head at once. */
static void test_requeue_at_head(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    assert_int_equal(hop_send(ch, "x", 1), HOP_OK);
    assert_int_equal(hop_send(ch, "y", 1), HOP_OK);
    assert_int_equal(hop_send(ch, "z", 1), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(hop_requeue_at(ch, data, len + 1, BASE + 1000), HOP_INVALID);
    assert_int_equal(hop_requeue_at(ch, data, len, BASE + 1000), HOP_OK);
    assert_int_equal(tu_stats(ch).delayed, 1);
    du_move_to(999);
    du_recv_text(ch, "y");
    du_move_to(1050);
    du_recv_text(ch, "x");
    du_recv_text(ch, "z");

    /* sends and a give-back in one slot: the give-back at the head, the
     * sends at the tail in their order */
    assert_int_equal(hop_send(ch, "q", 1), HOP_OK);
    assert_int_equal(hop_send(ch, "r", 1), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    send_at_ok(ch, "t1", 2000);
    assert_int_equal(hop_requeue_at(ch, data, len, BASE + 2000), HOP_OK);
    send_at_ok(ch, "t2", 2010);
    du_move_to(2050);
    du_recv_text(ch, "q");
    du_recv_text(ch, "r");
    du_recv_text(ch, "t1");
    du_recv_text(ch, "t2");
    hop_channel_close(ch);
}

/* Delayed bytes count against max_disk_files x file_bytes and the budget's
 * disk side; a refused send stores nothing. A memory-only channel cannot
 * delay. */
static void test_limits(void **state)
{
    tu_dir *d = *state;
    char payload[100];
    memset(payload, 'p', sizeof payload);
    hop_channel *ch = tu_open(d, tu_limits(1 << 20, 200, 1, 4096));
    assert_int_equal(hop_send_at(ch, payload, sizeof payload, BASE + 1000), HOP_OK);
    assert_int_equal(hop_send_at(ch, payload, sizeof payload, BASE + 1000), HOP_FULL);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.delayed, 1);
    assert_int_equal(s.rejected_full_total, 1);
    for (size_t i = 0; i < sizeof payload; i++)
        assert_int_equal(payload[i], 'p');
    hop_channel_close(ch);

    hop_budget *b;
    assert_int_equal(hop_budget_new(1 << 20, &b), HOP_OK);
    assert_int_equal(hop_budget_set_disk(b, 100), HOP_OK);
    hop_limits l = roomy();
    l.budget = b;
    char bdir[PATH_MAX];
    tu_join(bdir, d->data, "b");
    assert_int_equal(hop_channel_open(d->data, "b", &l, &ch), HOP_OK);
    assert_int_equal(hop_send_at(ch, payload, sizeof payload, BASE + 1000), HOP_NOSPACE);
    assert_int_equal(hop_send_at(ch, "s", 1, BASE + 1000), HOP_OK);
    assert_int_equal(hop_budget_disk_used(b), tu_dir_bytes(bdir));
    du_move_to(1050);
    du_recv_text(ch, "s");
    assert_int_equal(hop_budget_disk_used(b), tu_dir_bytes(bdir));
    hop_channel_close(ch);
    assert_int_equal(hop_budget_disk_used(b), 0);
    hop_budget_free(b);

    hop_limits mem = tu_limits(1 << 20, 0, 0, 4096);
    hop_channel *m;
    assert_int_equal(hop_channel_open(NULL, "m", &mem, &m), HOP_OK);
    assert_int_equal(hop_send_at(m, "q", 1, BASE + 5000), HOP_FULL);
    hop_channel_close(m);
}

/* Write the progress mark of near file start (slot, offset) as a crash
 * would have left it. */
static void write_mark(const tu_dir *d, uint64_t start, unsigned slot, uint64_t off)
{
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "delay-n-%016llx", (unsigned long long)(BASE + start));
    tu_join(path, d->chan, name);
    uint64_t v = (uint64_t)slot << 56 | off;
    unsigned char b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 24, SEEK_SET), 0);
    assert_int_equal(fwrite(b, 1, 8, f), 8);
    fclose(f);
}

/* One near file, its slots' records interleaved: each slot goes when it
 * ends, in the order its records arrived, and no record of a later slot
 * with it; a mark a crash left halfway through a slot is where the
 * reopened channel goes on, nothing handed on twice. */
static void test_interleaved_slots(void **state)
{
    tu_dir *d = *state;
    const char *texts[] = {"a", "x", "b", "c", "y", "d"};
    const uint64_t dues[] = {1100, 1250, 1100, 1120, 1260, 1149};
    hop_channel *ch = tu_open(d, roomy());
    for (int i = 0; i < 6; i++)
        send_at_ok(ch, texts[i], dues[i]);
    assert_int_equal(du_count_delay_files(d), 1);
    du_move_to(1149);
    du_recv_none(ch);
    du_move_to(1150); /* slot 2, [1100, 1150) */
    du_recv_text(ch, "a");
    du_recv_text(ch, "b");
    du_recv_text(ch, "c");
    du_recv_text(ch, "d");
    du_recv_none(ch);
    du_move_to(1299);
    du_recv_none(ch);
    du_move_to(1300); /* slot 5 */
    du_recv_text(ch, "x");
    du_recv_text(ch, "y");
    assert_int_equal(du_count_delay_files(d), 0);

    /* again, and a crash after a and b went: the mark says slot 2, from c */
    for (int i = 0; i < 6; i++)
        send_at_ok(ch, texts[i], 1000 + dues[i]);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    write_mark(d, 2000, 2, 32 + 3 * 25);
    ch = tu_open(d, roomy());
    assert_int_equal(tu_stats(ch).delayed, 4);
    du_move_to(2150);
    du_recv_text(ch, "c");
    du_recv_text(ch, "d");
    du_recv_none(ch);
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    /* a crash after x went too: slot 5, from y */
    write_mark(d, 2000, 5, 32 + 4 * 25);
    ch = tu_open(d, roomy());
    assert_int_equal(tu_stats(ch).delayed, 1);
    du_move_to(2300);
    du_recv_text(ch, "y");
    du_recv_none(ch);
    assert_int_equal(tu_stats(ch).delayed, 0);
    assert_int_equal(du_count_delay_files(d), 0);
    hop_channel_close(ch);
}

/* A refused hand-on keeps the record and tries again later: late, never
 * lost, never out of order. */
static void test_refused_hand_on(void **state)
{
    tu_dir *d = *state;
    /* memory for one message, two queue files sealed by one record each */
    hop_channel *ch = tu_open(d, tu_limits(hop_message_cost(1), 130, 2, 100));
    send_at_ok(ch, "1", 1000);
    send_at_ok(ch, "2", 1000);
    assert_int_equal(hop_send(ch, "0", 1), HOP_OK); /* memory is full now */
    char fill[100] = {0};
    assert_int_equal(hop_send(ch, fill, 100), HOP_OK);
    assert_int_equal(hop_send(ch, fill, 100), HOP_OK); /* no queue file left */
    du_move_to(1050);
    assert_int_equal(tu_stats(ch).delayed, 2);
    du_recv_text(ch, "0");
    for (int i = 0; i < 2; i++) {
        void *data;
        size_t len;
        assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
        assert_int_equal(len, 100);
        hop_free(data);
    }
    du_move_to(1200);
    du_recv_text(ch, "1");
    du_recv_text(ch, "2");
    assert_int_equal(tu_stats(ch).delayed, 0);
    hop_channel_close(ch);
}

/* Close and reopen keeps every delayed message, not early, in order. */
static void test_reopen(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "far", 600000);
    send_at_ok(ch, "near", 500);
    send_at_ok(ch, "near2", 500);
    void *data;
    size_t len;
    assert_int_equal(hop_send(ch, "back", 4), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(hop_requeue_at(ch, data, len, BASE + 700), HOP_OK);
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    ch = tu_open(d, roomy());
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.delayed, 4);
    assert_int_equal(s.messages, 0);
    du_move_to(499);
    du_recv_none(ch);
    du_move_to(800);
    du_recv_text(ch, "back");
    du_recv_text(ch, "near");
    du_recv_text(ch, "near2");
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    /* a channel holding only a delayed message is not removed */
    assert_int_equal(hop_channel_remove(d->data, "ch"), HOP_INVALID);
    du_move_to(600000 + 50);
    ch = tu_open(d, roomy());
    hop_clock_moved(); /* due at open: handed on soon after */
    du_recv_text(ch, "far");
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_channel_remove(d->data, "ch"), HOP_OK);
}

/* A torn last record is cut at open; a corrupt one is skipped and counted. */
static void test_torn_and_corrupt(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "one", 1000);
    send_at_ok(ch, "two", 1000);
    send_at_ok(ch, "three", 1000);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "delay-n-%016llx", (unsigned long long)(BASE + 1000));
    tu_join(path, d->chan, name);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 2), 0); /* "three" torn */
    tu_flip_byte(path, 32 + 24 + 1, 0x40);               /* "one" damaged */
    ch = tu_open(d, roomy());
    assert_int_equal(tu_stats(ch).delayed, 1);
    du_move_to(1050);
    du_recv_text(ch, "two");
    du_recv_none(ch);
    assert_int_equal(tu_stats(ch).records_corrupt_total, 1);
    assert_int_equal(du_count_delay_files(d), 0);
    hop_channel_close(ch);
}

/* Durable: a delayed message is on disk when hop_send_at() returns, and
 * survives a channel dropped without its close. */
static void test_durable(void **state)
{
    tu_dir *d = *state;
    hop_limits l = roomy();
    l.durable = true;
    hop_channel *ch = tu_open(d, l);
    send_at_ok(ch, "d", 1000);
    assert_int_equal(du_count_delay_files(d), 1);
    void *data;
    size_t len;
    assert_int_equal(hop_send(ch, "e", 1), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(hop_requeue_at(ch, data, len, BASE + 1000), HOP_OK);
    hop_channel_close(ch);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).delayed, 2);
    du_move_to(1050);
    void *x;
    assert_int_equal(hop_recv(ch, 1000, &x, &len), HOP_OK);
    assert_memory_equal(x, "d", 1);
    hop_free(x);
    du_recv_text(ch, "e"); /* durable: given back to the tail */

    /* a slot of many messages is handed on in batches: a sync each */
    for (int i = 0; i < 100; i++)
        send_at_ok(ch, "b", 2000);
    uint64_t syncs = tu_stats(ch).syncs_total;
    du_move_to(2050);
    assert_true(tu_stats(ch).syncs_total - syncs <= 4);
    for (int i = 0; i < 100; i++)
        du_recv_text(ch, "b");

    /* a window split in checkpoints, then a reopen: nothing lost or doubled */
    char text[16];
    for (int i = 0; i < 70; i++) {
        snprintf(text, sizeof text, "w%d", i);
        send_at_ok(ch, text, 130000 + (uint64_t)i % 3);
    }
    du_move_to(129500);
    assert_int_equal(du_count_delay_files(d), 1);
    hop_channel_close(ch);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).delayed, 70);
    du_move_to(130050);
    for (int i = 0; i < 70; i++) {
        snprintf(text, sizeof text, "w%d", i);
        du_recv_text(ch, text);
    }
    du_recv_none(ch);
    hop_channel_close(ch);
}

static void *blocked_recv(void *arg)
{
    hop_channel *ch = arg;
    void *data;
    size_t len;
    hop_err err = hop_recv(ch, 10000, &data, &len);
    if (err == HOP_OK) {
        err = len == 1 && memcmp(data, "w", 1) == 0 ? HOP_OK : HOP_INVALID;
        hop_free(data);
    }
    return (void *)(intptr_t)err;
}

/* A receiver blocked in hop_recv() gets a message handed on, as if sent. */
static void test_waiting_receiver(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    send_at_ok(ch, "w", 1000);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, blocked_recv, ch), 0);
    while (tu_stats(ch).waiting_receivers == 0)
        tu_sleep_ms(1);
    du_move_to(1050);
    void *res;
    pthread_join(t, &res);
    assert_int_equal((intptr_t)res, HOP_OK);
    hop_channel_close(ch);
}

#define SENDERS 4
#define PER_SENDER 300

static void *delayed_sender(void *arg)
{
    hop_channel *ch = ((void **)arg)[0];
    uintptr_t t = (uintptr_t)((void **)arg)[1];
    for (uint32_t i = 0; i < PER_SENDER; i++) {
        uint32_t payload[2] = {(uint32_t)t, i};
        uint64_t due = du_now() + 1 + (i % 7) * 40;
        if (hop_send_at(ch, payload, sizeof payload, due) != HOP_OK)
            return (void *)1;
    }
    return NULL;
}

/* Senders race the scheduler while the clock moves: every message comes
 * out once, and each sender's messages due alike in the order sent. */
static void test_concurrent(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, roomy());
    pthread_t t[SENDERS];
    void *args[SENDERS][2];
    for (uintptr_t i = 0; i < SENDERS; i++) {
        args[i][0] = ch;
        args[i][1] = (void *)i;
        assert_int_equal(pthread_create(&t[i], NULL, delayed_sender, args[i]), 0);
    }
    for (uint64_t ms = 0; ms < 400; ms += 7)
        du_move_to(ms);
    for (int i = 0; i < SENDERS; i++) {
        void *res;
        pthread_join(t[i], &res);
        assert_null(res);
    }
    du_move_to(100000);
    uint32_t last[SENDERS][7];
    memset(last, 0xff, sizeof last);
    size_t n = 0;
    void *data;
    size_t len;
    while (hop_recv(ch, 0, &data, &len) == HOP_OK) {
        uint32_t p[2];
        assert_int_equal(len, sizeof p);
        memcpy(p, data, sizeof p);
        hop_free(data);
        assert_true(p[0] < SENDERS);
        uint32_t *l = &last[p[0]][p[1] % 7];
        assert_true(*l == UINT32_MAX || *l < p[1]); /* due alike: in order */
        *l = p[1];
        n++;
    }
    assert_int_equal(n, SENDERS * PER_SENDER);
    assert_int_equal(tu_stats(ch).delayed, 0);
    hop_channel_close(ch);
}

/* With the real clock: handed on within the 50 ms of its slot and a
 * margin, never before its due time. */
static void test_real_clock(void **state)
{
    tu_dir *d = *state;
    hop_set_clock(NULL, NULL);
    hop_channel *ch = tu_open(d, roomy());
    uint64_t due = hop_now_ms() + 300;
    assert_int_equal(hop_send_at(ch, "r", 1, due), HOP_OK);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 2000, &data, &len), HOP_OK);
    uint64_t got = hop_now_ms();
    hop_free(data);
    assert_true(got >= due);
    assert_true(got <= due + 50 + 100);
    hop_channel_close(ch);
}

int main(void)
{
    tu_log_capture();
#define T(name) cmocka_unit_test_setup_teardown(name, du_setup, du_teardown)
    const struct CMUnitTest tests[] = {
        T(test_never_early),
        T(test_due_now_is_a_send),
        T(test_fifo),
        T(test_batch),
        T(test_requeue_at_head),
        T(test_limits),
        T(test_interleaved_slots),
        T(test_refused_hand_on),
        T(test_reopen),
        T(test_torn_and_corrupt),
        T(test_durable),
        T(test_waiting_receiver),
        T(test_concurrent),
        T(test_real_clock),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
