/* test_budget.c - tests of core/src/budget.c and of channels that share a
 * budget. Memory: sends past the budget go to queue files in order (or
 * HOP_FULL without files), what comes back is counted even past the limit,
 * holds take from the budget, read-ahead buffers count, a close gives back
 * what memory held, and many threads on several channels never pass the
 * limit with new sends. Disk: the budget counts exactly the bytes of the
 * files in the channels' directories (queue files and journals), through
 * sends, removals, journal rewrites, close and reopen; a send that does not
 * fit is HOP_NOSPACE and changes nothing. Each test runs in its own temp
 * dir; channels are <dir>/<name>. */
#include "expect.h"

#include "queue_file.h"

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

/* The directory of channel name of d. */
static void chan_dir(const tu_dir *d, const char *name, char out[PATH_MAX])
{
    tu_join(out, d->data, name);
}

/* The disk side of b counts exactly the files of channels names[0..n). */
static void assert_disk_counted(const tu_dir *d, const hop_budget *b, const char *const *names,
                                size_t n)
{
    uint64_t total = 0;
    char dir[PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        chan_dir(d, names[i], dir);
        total += tu_dir_bytes(dir);
    }
    assert_int_equal(hop_budget_disk_used(b), total);
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

/* The disk side is unbounded until set; the application's own counts
 * (charge, reserve, release) move the memory side, and a NULL budget
 * counts nothing. */
static void test_disk_side_and_application_counts(void **state)
{
    (void)state;
    hop_budget *b = NULL;
    assert_int_equal(hop_budget_set_disk(NULL, 10), HOP_INVALID);
    assert_int_equal(hop_budget_disk_used(NULL), 0);
    assert_int_equal(hop_budget_disk_limit(NULL), 0);
    assert_int_equal(hop_budget_new(1000, &b), HOP_OK);
    assert_int_equal(hop_budget_disk_limit(b), 0);
    assert_int_equal(hop_budget_set_disk(b, 5000), HOP_OK);
    assert_int_equal(hop_budget_disk_limit(b), 5000);
    assert_int_equal(hop_budget_disk_used(b), 0);

    assert_true(hop_budget_reserve(b, 600));
    assert_false(hop_budget_reserve(b, 401)); /* 1001: nothing changes */
    assert_int_equal(hop_budget_used(b), 600);
    assert_true(hop_budget_reserve(b, 400)); /* the limit exactly */
    hop_budget_charge(b, 50);                /* past it */
    assert_int_equal(hop_budget_used(b), 1050);
    assert_false(hop_budget_reserve(b, 1));
    hop_budget_release(b, 1050);
    assert_int_equal(hop_budget_used(b), 0);
    assert_int_equal(hop_budget_disk_used(b), 0); /* the memory side only */

    assert_true(hop_budget_reserve(NULL, SIZE_MAX));
    hop_budget_charge(NULL, 5);
    hop_budget_release(NULL, 5);
    assert_int_equal(hop_budget_used(NULL), 0);
    hop_budget_free(b);
}

/* What the application charges takes room from the channels: a memory-only
 * channel is full while it is charged, and not once it is released. */
static void test_application_charges_take_room_from_channels(void **state)
{
    const tu_dir *d = *state;
    pair p = open_pair(d, 3, 0);
    hop_budget_charge(p.budget, 2 * cost());
    assert_int_equal(send_id(p.a, 1, LEN), HOP_OK);
    assert_int_equal(send_id(p.a, 2, LEN), HOP_FULL);
    assert_false(hop_budget_reserve(p.budget, 1));
    hop_budget_release(p.budget, 2 * cost());
    assert_int_equal(send_id(p.a, 2, LEN), HOP_OK);
    void *m;
    size_t len;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(hop_recv(p.a, 0, &m, &len), HOP_OK);
        hop_free(m);
    }
    close_pair(&p);
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
    assert_int_equal(send_id(b, 4, LEN), HOP_FULL);        /* no new send passes it */
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

/* ---- read-ahead buffers ---- */

/* Channel "a" on a new budget of memory_bytes, everything sent going to
 * its queue files (no memory of its own). OUT: *budget. */
static hop_channel *open_disk_only(const tu_dir *d, size_t memory_bytes, size_t file_bytes,
                                   size_t max_disk_files, hop_budget **budget)
{
    assert_int_equal(hop_budget_new(memory_bytes, budget), HOP_OK);
    hop_limits l = tu_limits(0, file_bytes, max_disk_files, 100000);
    l.budget = *budget;
    return open_on(d, "a", l);
}

/* Send messages of lens[0..n) to the queue files of a channel on a budget
 * of memory_bytes, then read them back: once the first is read, the
 * budget counts buffer, the reader's; drained, nothing. */
static void read_ahead_counted(const tu_dir *d, size_t memory_bytes, const size_t *lens, size_t n,
                               size_t buffer)
{
    hop_budget *b;
    hop_channel *ch = open_disk_only(d, memory_bytes, 1 << 20, 4, &b);
    expect e;
    expect_init(&e, n);
    for (size_t i = 0; i < n; i++)
        send_ok(ch, &e, i, lens[i]);
    assert_int_equal(hop_budget_used(b), 0);
    recv_expected(ch, &e);
    assert_int_equal(hop_budget_used(b), buffer);
    recv_all_expected(ch, &e);
    assert_int_equal(hop_budget_used(b), 0);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    hop_budget_free(b);
    expect_free(&e);
}

/* A channel reading its files holds its 64 KiB read-ahead buffer, counted
 * on the memory side, while records are left to read; drained, it gives
 * it back. */
static void test_read_ahead_counts_in_memory(void **state)
{
    static const size_t lens[] = {LEN, LEN, LEN};
    read_ahead_counted(*state, HOP__READ_BUFFER + 10 * cost(), lens, 3, HOP__READ_BUFFER);
}

/* A budget with no room for 64 KiB: the reader takes a small buffer,
 * counted anyway, and every message comes out whole and in order, those
 * far bigger than the buffer too. */
static void test_read_ahead_falls_back_to_a_small_buffer(void **state)
{
    static const size_t lens[] = {LEN, 300, 511, 512, 700, 5000, 70000, 9, 256, 257, LEN};
    read_ahead_counted(*state, 10 * cost(), lens, sizeof lens / sizeof lens[0],
                       HOP__READ_BUFFER_SMALL);
}

/* ---- the disk side ---- */

/* Bound b's disk side to what it counts now and room bytes more. */
static void bound_disk(hop_budget *b, uint64_t room)
{
    assert_int_equal(hop_budget_set_disk(b, hop_budget_disk_used(b) + room), HOP_OK);
}

/* Close ch, the last channel on b: b counts nothing any more; free it. */
static void close_last(hop_channel *ch, hop_budget *b)
{
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_int_equal(hop_budget_disk_used(b), 0);
    assert_int_equal(hop_budget_used(b), 0);
    hop_budget_free(b);
}

/* A send that does not fit on the disk side is HOP_NOSPACE: nothing is
 * stored, the caller's data and the files are as they were, and it is not
 * counted as full. Once a consumed file is removed the room is back. */
static void test_disk_limit_refuses_with_nospace(void **state)
{
    const tu_dir *d = *state;
    static const char *const names[] = {"a"};
    hop_budget *b;
    hop_channel *ch = open_disk_only(d, 1 << 20, 1, 16, &b); /* a file a message */
    char dir[PATH_MAX];
    chan_dir(d, "a", dir);
    uint64_t journal = tu_dir_bytes(dir); /* written at open */
    assert_true(journal > 0);
    assert_int_equal(hop_budget_disk_used(b), journal);
    /* room for two files of a message, and 64 bytes */
    bound_disk(b, 2 * (TU_FILE_HEADER + TU_RECORD_SIZE(LEN)) + 64);
    expect e;
    expect_init(&e, 8);
    send_ok(ch, &e, 1, LEN);
    send_ok(ch, &e, 2, LEN);
    assert_disk_counted(d, b, names, 1);

    hop_stats before = tu_stats(ch);
    char buf[LEN];
    tu_fill_id(buf, LEN, 3);
    assert_int_equal(hop_send(ch, buf, LEN), HOP_NOSPACE);
    assert_int_equal(tu_id_of(buf, LEN), 3);
    hop_stats after = tu_stats(ch);
    assert_int_equal(after.messages, before.messages);
    assert_int_equal(after.sent_total, before.sent_total);
    assert_int_equal(after.disk_files, before.disk_files);
    assert_int_equal(after.disk_bytes, before.disk_bytes);
    assert_int_equal(after.rejected_full_total, 0);
    assert_int_equal(tu_count_qfiles(dir), 2);
    assert_disk_counted(d, b, names, 1);

    /* 1 consumed: its file goes, the journal grows by an entry (32 bytes) */
    recv_expected(ch, &e);
    assert_int_equal(tu_count_qfiles(dir), 1);
    assert_disk_counted(d, b, names, 1);
    send_ok(ch, &e, 3, LEN);
    assert_int_equal(send_id(ch, 4, LEN), HOP_NOSPACE);
    assert_true(hop_budget_disk_used(b) <= hop_budget_disk_limit(b));
    recv_all_expected(ch, &e); /* 2, 3 */
    assert_disk_counted(d, b, names, 1);
    close_last(ch, b);
    expect_free(&e);
}

static void never_called(void *arg, hop_err err, int err_no)
{
    (void)arg;
    (void)err;
    (void)err_no;
    fail_msg("a refused async send called its callback");
}

/* Durable sends reserve before they write too: blocking and async ones
 * are HOP_NOSPACE (the callback is not called) and store nothing. */
static void test_durable_sends_meet_nospace(void **state)
{
    const tu_dir *d = *state;
    static const char *const names[] = {"a"};
    hop_budget *b;
    assert_int_equal(hop_budget_new(1 << 20, &b), HOP_OK);
    hop_limits l = tu_limits(0, 1 << 20, 4, 1000);
    l.durable = true;
    l.budget = b;
    hop_channel *ch = open_on(d, "a", l);
    bound_disk(b, TU_FILE_HEADER + TU_RECORD_SIZE(LEN));
    expect e;
    expect_init(&e, 4);
    send_ok(ch, &e, 1, LEN);
    assert_int_equal(send_id(ch, 2, LEN), HOP_NOSPACE);
    char buf[LEN];
    tu_fill_id(buf, LEN, 3);
    assert_int_equal(hop_send_async(ch, buf, LEN, never_called, NULL), HOP_NOSPACE);
    assert_int_equal(tu_stats(ch).messages, 1);
    assert_disk_counted(d, b, names, 1);
    recv_all_expected(ch, &e);
    close_last(ch, b);
    expect_free(&e);
}

/* Both bounds apply: the channel's own max_disk_files is said first. */
static void test_full_comes_before_nospace(void **state)
{
    const tu_dir *d = *state;
    hop_budget *b;
    hop_channel *ch = open_disk_only(d, 1 << 20, 1, 2, &b);
    bound_disk(b, 2 * (TU_FILE_HEADER + TU_RECORD_SIZE(LEN)));
    assert_int_equal(send_id(ch, 1, LEN), HOP_OK);
    assert_int_equal(send_id(ch, 2, LEN), HOP_OK);
    assert_int_equal(send_id(ch, 3, LEN), HOP_FULL);
    assert_int_equal(tu_stats(ch).rejected_full_total, 1);
    close_last(ch, b);
}

/* A batch that does not fit whole is refused whole; one that fits to the
 * byte goes through. */
static void test_batch_refused_whole(void **state)
{
    const tu_dir *d = *state;
    static const char *const names[] = {"a"};
    hop_budget *b;
    hop_channel *ch = open_disk_only(d, 1 << 20, 1 << 20, 4, &b);
    uint64_t journal = hop_budget_disk_used(b);
    bound_disk(b, TU_FILE_HEADER + 3 * TU_RECORD_SIZE(LEN));
    static char bufs[4][LEN];
    hop_buf msgs[4];
    for (int i = 0; i < 4; i++) {
        tu_fill_id(bufs[i], LEN, (uint64_t)i);
        msgs[i] = (hop_buf){bufs[i], LEN};
    }
    assert_int_equal(hop_send_batch(ch, msgs, 4), HOP_NOSPACE);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(hop_budget_disk_used(b), journal);
    assert_disk_counted(d, b, names, 1);
    assert_int_equal(hop_send_batch(ch, msgs, 3), HOP_OK);
    assert_int_equal(hop_budget_disk_used(b), hop_budget_disk_limit(b));
    assert_disk_counted(d, b, names, 1);
    expect e;
    expect_init(&e, 4);
    for (uint64_t i = 0; i < 3; i++)
        expect_push(&e, i, LEN);
    recv_all_expected(ch, &e);
    close_last(ch, b);
    expect_free(&e);
}

/* Two channels on a budget with no disk bound: it counts the bytes of
 * every file in their directories, as sends add files, receives remove
 * them and the journals grow; a close gives them all back (the files
 * stay), a reopen counts them again (memory written at close included). */
static void test_disk_used_is_the_files_on_disk(void **state)
{
    const tu_dir *d = *state;
    static const char *const names[] = {"a", "b"};
    hop_budget *budget;
    assert_int_equal(hop_budget_new(5 * cost(), &budget), HOP_OK);
    hop_limits l = shared(budget, 64);
    l.file_bytes = TU_FILE_HEADER + 3 * TU_RECORD_SIZE(LEN); /* 3 messages a file */
    hop_channel *ch[2] = {open_on(d, "a", l), open_on(d, "b", l)};
    expect e[2];
    for (int c = 0; c < 2; c++) {
        expect_init(&e[c], 64);
        for (uint64_t i = 0; i < 20; i++)
            send_ok(ch[c], &e[c], i, LEN + (size_t)c * 7);
    }
    assert_true(tu_stats(ch[0]).disk_files > 3);
    assert_disk_counted(d, budget, names, 2);
    for (int i = 0; i < 12; i++)
        recv_expected(ch[0], &e[0]);
    assert_disk_counted(d, budget, names, 2);
    void *held;
    size_t len;
    assert_int_equal(hop_recv(ch[1], 0, &held, &len), HOP_OK); /* from memory */
    assert_int_equal(hop_requeue(ch[1], held, len), HOP_OK);

    for (int c = 0; c < 2; c++)
        assert_int_equal(hop_channel_close(ch[c]), HOP_OK);
    assert_int_equal(hop_budget_disk_used(budget), 0);
    assert_int_equal(hop_budget_used(budget), 0);
    char dir[PATH_MAX];
    chan_dir(d, "b", dir);
    assert_true(tu_dir_bytes(dir) > 0); /* the files stay */

    for (int c = 0; c < 2; c++)
        ch[c] = open_on(d, names[c], l);
    assert_disk_counted(d, budget, names, 2);
    for (int c = 0; c < 2; c++) {
        recv_all_expected(ch[c], &e[c]);
        assert_disk_counted(d, budget, names, 2);
    }
    assert_int_equal(hop_channel_close(ch[0]), HOP_OK);
    assert_disk_counted(d, budget, names + 1, 1); /* b's alone now */
    assert_int_equal(hop_channel_close(ch[1]), HOP_OK);
    assert_int_equal(hop_budget_disk_used(budget), 0);
    expect_free(&e[0]);
    expect_free(&e[1]);
    hop_budget_free(budget);
}

/* Consuming from disk grows the journal until it is rewritten, while the
 * channel runs (after 8192 records): the rewrite's new size replaces the
 * old one in the count. */
static void test_journal_rewrite_is_counted(void **state)
{
    const tu_dir *d = *state;
    static const char *const names[] = {"a"};
    enum { N = 8300 };
    hop_budget *b;
    hop_channel *ch = open_disk_only(d, 1 << 20, 1 << 20, 4, &b);
    for (uint64_t i = 0; i < N; i++)
        assert_int_equal(send_id(ch, i, 8), HOP_OK);
    for (uint64_t i = 0; i < N; i++) {
        void *m;
        size_t len;
        assert_int_equal(hop_recv(ch, 0, &m, &len), HOP_OK);
        assert_int_equal(tu_id_of(m, len), i);
        hop_free(m);
    }
    char dir[PATH_MAX];
    chan_dir(d, "a", dir);
    assert_int_equal(tu_count_qfiles(dir), 0);
    assert_true(tu_dir_bytes(dir) < (uint64_t)(N - 8192 + 8) * 32); /* rewritten */
    assert_disk_counted(d, b, names, 1);
    close_last(ch, b);
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

/* What the budget may hold at most with no requeue: its limit, and the
 * small read buffers of the channels that read their files while it had
 * no room for a full one. */
static size_t most_without_requeue(const shared_run *run)
{
    return hop_budget_limit(run->budget) + CHANNELS * HOP__READ_BUFFER_SMALL;
}

static void *producer_main(void *arg)
{
    worker *w = arg;
    for (uint64_t i = 0; i < PER_CHANNEL; i++) {
        unsigned char buf[LEN + 6 * 50]; /* send_id()'s buffer is one for all threads */
        size_t len = LEN + (i % 7) * 50;
        tu_fill_id(buf, len, i);
        hop_err err = hop_send(w->run->ch[w->index], buf, len);
        size_t used = hop_budget_used(w->run->budget);
        if (used > most_without_requeue(w->run)) {
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

/* New sends never take the budget past its limit (no requeue here; the
 * small read buffers aside), every message of every channel arrives once
 * and in order, and the budget ends at 0. */
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
    assert_true(atomic_load(&run.highest) <= most_without_requeue(&run));
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
        T(test_disk_side_and_application_counts),
        T(test_application_charges_take_room_from_channels),
        T(test_sends_past_the_budget_go_to_disk_in_order),
        T(test_memory_only_channel_is_full_at_the_budget),
        T(test_requeue_may_pass_the_limit_by_what_was_out),
        T(test_holds_take_from_the_budget),
        T(test_read_ahead_counts_in_memory),
        T(test_read_ahead_falls_back_to_a_small_buffer),
        T(test_disk_limit_refuses_with_nospace),
        T(test_durable_sends_meet_nospace),
        T(test_full_comes_before_nospace),
        T(test_batch_refused_whole),
        T(test_disk_used_is_the_files_on_disk),
        T(test_journal_rewrite_is_counted),
        T(test_threads_never_pass_the_budget),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
