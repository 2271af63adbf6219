/* test_send_durable.c - tests of the durable sends of core/src/send.c
 * (hop_limits.durable) through the public API, with the io hook of
 * sync_hook.c: hop_send_async() and its callback, batches synced as one,
 * durable channels never holding messages in memory, the limits durable
 * needs, and every acknowledged message surviving the process being
 * dropped or killed. Each test runs in its own temp dir; the channel is
 * <dir>/ch. */
#include "sync_hook.h"

#include "channel.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- hop_send_async ---- */

typedef struct sent_box {
    atomic_int calls;
    hop_err err;
    int err_no;
} sent_box;

static void sent_fn(void *arg, hop_err err, int err_no)
{
    sent_box *b = arg;
    b->err = err;
    b->err_no = err_no;
    atomic_fetch_add(&b->calls, 1);
}

/* hop_send_async() returns once the record is written; its callback runs
 * once, after the sync (HOP_OK) or its failure (HOP_IO, EIO); receivers see
 * only the synced record; a close waits for every callback. */
static void test_send_async(void **state)
{
    const tu_dir *d = *state;
    const size_t len = 120;
    unsigned char buf[120];
    hop_channel *ch = tu_open(d, durable_limits(1 << 20));
    hook_reset();
    sent_box ok = {0}, bad = {0};

    hook_set(&H.gate_armed, 1);
    tu_fill_id(buf, len, 1);
    assert_int_equal(hop_send_async(ch, buf, len, sent_fn, &ok), HOP_OK);
    WAIT_FOR(hook_get(&H.gate_entered) == 1, "the sync");
    tu_sleep_ms(20);
    assert_int_equal(atomic_load(&ok.calls), 0);
    void *data = NULL;
    size_t got = 0;
    assert_int_equal(hop_recv(ch, 0, &data, &got), HOP_TIMEOUT);
    gate_open(0);
    WAIT_FOR(atomic_load(&ok.calls) == 1, "the callback");
    assert_int_equal(ok.err, HOP_OK);
    assert_int_equal(ok.err_no, 0);
    assert_int_equal(hop_recv(ch, 0, &data, &got), HOP_OK);
    assert_int_equal(tu_id_of(data, got), 1);
    hop_free(data);

    /* a failing sync: the callback says so, nothing is stored */
    hook_set(&H.fail_fdatasync, EIO);
    tu_fill_id(buf, len, 2);
    assert_int_equal(hop_send_async(ch, buf, len, sent_fn, &bad), HOP_OK);
    WAIT_FOR(atomic_load(&bad.calls) == 1, "the failing callback");
    assert_int_equal(bad.err, HOP_IO);
    assert_int_equal(bad.err_no, EIO);
    assert_int_equal(hop_recv(ch, 0, &data, &got), HOP_TIMEOUT);
    assert_int_equal(tu_stats(ch).io_errors_total, 1);

    /* refused up front, with no callback: not durable, no fn */
    assert_int_equal(hop_send_async(ch, buf, len, NULL, &ok), HOP_INVALID);
    assert_int_equal(hop_send_async(ch, buf, 65 * 1024, sent_fn, &ok), HOP_TOO_BIG);

    /* close waits for the callbacks of sends still being synced */
    enum { PENDING = 20 };
    sent_box many[PENDING];
    memset(many, 0, sizeof many);
    for (int i = 0; i < PENDING; i++) {
        tu_fill_id(buf, len, 100 + (uint64_t)i);
        assert_int_equal(hop_send_async(ch, buf, len, sent_fn, &many[i]), HOP_OK);
    }
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    for (int i = 0; i < PENDING; i++) {
        assert_int_equal(atomic_load(&many[i].calls), 1);
        assert_int_equal(many[i].err, HOP_OK);
    }
    assert_int_equal(atomic_load(&ok.calls), 1);
    assert_int_equal(atomic_load(&bad.calls), 1);

    /* and they are all there after the reopen, in order */
    ch = tu_open(d, durable_limits(1 << 20));
    uint64_t want[PENDING];
    for (int i = 0; i < PENDING; i++)
        want[i] = 100 + (uint64_t)i;
    recv_exactly(ch, want, PENDING, len);
    assert_int_equal(hop_channel_close(ch), HOP_OK);

    hop_limits plain = tu_limits(1 << 20, 1 << 20, 4, 1024);
    ch = tu_open(d, plain);
    assert_int_equal(hop_send_async(ch, buf, len, sent_fn, &ok), HOP_INVALID);
    assert_int_equal(atomic_load(&ok.calls), 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* ---- durable never uses memory ---- */

static void test_durable_never_uses_memory(void **state)
{
    const tu_dir *d = *state;
    const size_t len = 100, rec = TU_RECORD_SIZE(100);
    hop_limits l = durable_limits(TU_FILE_HEADER + 10 * rec);
    l.memory_bytes = (size_t)1 << 30;
    l.max_disk_files = 2;
    hop_channel *ch = tu_open(d, l);
    hook_reset();

    send_ok(ch, 0, len);
    assert_int_equal(tu_count_qfiles(d->chan), 1);
    hop_stats st = tu_stats(ch);
    assert_int_equal(st.memory_messages, 0);
    assert_int_equal(st.memory_bytes, 0);
    assert_int_equal(st.disk_messages, 1);

    /* drained and sent again, as a non-durable channel would into memory */
    uint64_t id = 1;
    for (int round = 0; round < 5; round++) {
        const uint64_t one[] = {id - 1};
        recv_exactly(ch, one, 1, len);
        assert_int_equal(tu_stats(ch).disk_messages, 0);
        send_ok(ch, id++, len);
        st = tu_stats(ch);
        assert_int_equal(st.memory_messages, 0);
        assert_int_equal(st.disk_messages, 1);
    }
    int qsyncs, dirsyncs;
    hook_counts(&qsyncs, &dirsyncs);
    assert_int_equal(qsyncs, 6);

    /* the two files full: refused, not taken into the vast memory */
    uint64_t sent = 1;
    hop_err err;
    while ((err = send_id(ch, id, len)) == HOP_OK) {
        id++;
        sent++;
        assert_true(sent <= 20);
    }
    assert_int_equal(err, HOP_FULL);
    st = tu_stats(ch);
    assert_int_equal(st.memory_messages, 0);
    assert_int_equal(st.disk_files, 2);
    assert_int_equal(st.rejected_full_total, 1);
    assert_int_equal(st.disk_messages, sent);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* ---- crashes ---- */

#define CRASH_THREADS 4
#define CRASH_PER_THREAD 100
#define CRASH_LEN 500

typedef struct crash_thread {
    hop_channel *ch;
    uint32_t index;
    pthread_t thread;
    uint32_t acked; /* sends that returned HOP_OK */
    int ack_fd;     /* the child writes each acknowledged id here; -1: none */
    int max;
} crash_thread;

static void *crash_send(void *arg)
{
    crash_thread *t = arg;
    unsigned char buf[CRASH_LEN];
    for (uint32_t seq = 0; (int)seq < t->max; seq++) {
        uint64_t id = (uint64_t)t->index << 32 | seq;
        tu_fill_id(buf, sizeof buf, id);
        if (hop_send(t->ch, buf, sizeof buf) != HOP_OK)
            break;
        t->acked++;
        if (t->ack_fd >= 0 && write(t->ack_fd, &id, sizeof id) != (ssize_t)sizeof id)
            break;
    }
    return NULL;
}

/* Receive everything of a channel written by crash_send threads: each
 * thread's messages must be 0..k-1 with acked[i] <= k <= acked[i] + slack,
 * intact, once each. */
static void recv_crash_survivors(hop_channel *ch, const uint32_t *acked, uint32_t slack)
{
    uint32_t next[CRASH_THREADS] = {0};
    for (;;) {
        void *data = NULL;
        size_t len = 0;
        hop_err err = hop_recv(ch, 0, &data, &len);
        if (err == HOP_TIMEOUT)
            break;
        if (err != HOP_OK)
            fail_msg("recv: %s", hop_err_name(err));
        uint64_t id = tu_id_of(data, len);
        uint32_t who = (uint32_t)(id >> 32), seq = (uint32_t)id;
        if (id == UINT64_MAX || len != CRASH_LEN || who >= CRASH_THREADS)
            fail_msg("a message that was not sent (%zu bytes)", len);
        if (seq != next[who])
            fail_msg("sender %u: message %u arrived, expected %u", who, seq, next[who]);
        next[who]++;
        hop_free(data);
    }
    for (int i = 0; i < CRASH_THREADS; i++)
        if (next[i] < acked[i] || next[i] > acked[i] + slack)
            fail_msg("sender %d: %u messages back, %u acknowledged", i, next[i], acked[i]);
    assert_int_equal(tu_stats(ch).records_corrupt_total, 0);
}

/* Concurrent durable sends, then the channel is dropped as a kill would
 * leave it (nothing written at close): every acknowledged message is back
 * after the reopen, in each sender's order. */
static void test_abandon_keeps_acknowledged(void **state)
{
    const tu_dir *d = *state;
    hop_limits l = durable_limits(64 * 1024);
    hop_channel *ch = tu_open(d, l);
    crash_thread t[CRASH_THREADS];
    for (uint32_t i = 0; i < CRASH_THREADS; i++) {
        t[i] = (crash_thread){.ch = ch, .index = i, .ack_fd = -1, .max = CRASH_PER_THREAD};
        assert_int_equal(pthread_create(&t[i].thread, NULL, crash_send, &t[i]), 0);
    }
    for (uint32_t i = 0; i < CRASH_THREADS; i++)
        assert_int_equal(pthread_join(t[i].thread, NULL), 0);
    uint32_t acked[CRASH_THREADS];
    for (int i = 0; i < CRASH_THREADS; i++) {
        acked[i] = t[i].acked;
        assert_int_equal(acked[i], CRASH_PER_THREAD);
    }
    /* a few consumed first: those stay consumed */
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    uint64_t taken = tu_id_of(data, len);
    hop_free(data);

    hop__channel_abandon(ch);
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).recovered_total, CRASH_THREADS * CRASH_PER_THREAD - 1);
    /* the consumed one was sender taken>>32's first */
    assert_int_equal((uint32_t)taken, 0);
    uint32_t next[CRASH_THREADS] = {0};
    next[taken >> 32] = 1;
    for (;;) {
        hop_err err = hop_recv(ch, 0, &data, &len);
        if (err == HOP_TIMEOUT)
            break;
        assert_int_equal(err, HOP_OK);
        uint64_t id = tu_id_of(data, len);
        uint32_t who = (uint32_t)(id >> 32), seq = (uint32_t)id;
        assert_true(id != UINT64_MAX && who < CRASH_THREADS && len == CRASH_LEN);
        if (seq != next[who])
            fail_msg("sender %u: message %u arrived, expected %u", who, seq, next[who]);
        next[who]++;
        hop_free(data);
    }
    for (int i = 0; i < CRASH_THREADS; i++)
        assert_int_equal(next[i], acked[i]);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* Read one acknowledged id from fd, waiting until deadline at most. False
 * at the end of the pipe or at the deadline. */
static bool read_ack(int fd, uint64_t *id, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - tu_now_ms();
        if (left <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        return read(fd, id, sizeof *id) == (ssize_t)sizeof *id;
    }
}

/* The child of the test below, run as "test_core_send_durable --crash-child
 * <data_dir> <fd>": durable sends from CRASH_THREADS threads into
 * <data_dir>/ch, each acknowledged id written to fd, until it is killed. A
 * fresh process (exec, not only fork): the library's sync threads are
 * process-wide and a forked copy would not have them. */
static int crash_child(const char *data_dir, int ack_fd)
{
    /* never outlive the test: die with it (and by SIGPIPE once the pipe
     * has no reader) */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    hop_set_log(NULL, NULL);
    hop_limits l = durable_limits(32 * 1024);
    hop_channel *ch = NULL;
    if (hop_channel_open(data_dir, "ch", &l, &ch) != HOP_OK)
        return 2;
    crash_thread t[CRASH_THREADS];
    for (uint32_t i = 0; i < CRASH_THREADS; i++) {
        t[i] = (crash_thread){.ch = ch, .index = i, .ack_fd = ack_fd, .max = 100000};
        if (pthread_create(&t[i].thread, NULL, crash_send, &t[i]) != 0)
            return 3;
    }
    for (uint32_t i = 0; i < CRASH_THREADS; i++)
        pthread_join(t[i].thread, NULL);
    return 4; /* only if sends failed: the parent kills it first */
}

/* A real kill: a child process sends durably from several threads and
 * reports each acknowledged id; the test kills it with SIGKILL mid-stream.
 * Every acknowledged message is back, each thread's in order; at most the
 * one send in progress per thread comes back unacknowledged. */
static void test_kill_keeps_acknowledged(void **state)
{
    const tu_dir *d = *state;
    hop__io_set(NULL);
    hop_limits l = durable_limits(32 * 1024);
    int pipefd[2];
    assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", pipefd[1]);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        fcntl(pipefd[1], F_SETFD, 0); /* the write end goes through exec */
        execl("/proc/self/exe", "test_core_send_durable", "--crash-child", d->data, fdarg,
              (char *)NULL);
        _exit(5);
    }
    close(pipefd[1]);
    uint32_t acked[CRASH_THREADS] = {0};
    uint32_t total = 0;
    int64_t deadline = tu_now_ms() + WAIT_MS;
    uint64_t id;
    while (total < 300 && read_ack(pipefd[0], &id, deadline)) {
        uint32_t who = (uint32_t)(id >> 32);
        assert_true(who < CRASH_THREADS);
        assert_int_equal((uint32_t)id, acked[who]); /* each thread acks in order */
        acked[who]++;
        total++;
    }
    kill(pid, SIGKILL);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the child ended on its own (status %d) after %u acks", status, total);
    /* the acks it wrote before it died (the pipe ends: nobody else has
     * its write end) */
    while (read_ack(pipefd[0], &id, tu_now_ms() + WAIT_MS)) {
        uint32_t who = (uint32_t)(id >> 32);
        assert_true(who < CRASH_THREADS);
        assert_int_equal((uint32_t)id, acked[who]);
        acked[who]++;
        total++;
    }
    close(pipefd[0]);
    if (total < 300)
        fail_msg("the child acknowledged only %u sends in %d ms", total, WAIT_MS);
    printf("# killed after %u acknowledged sends\n", total);

    hop_channel *ch = tu_open(d, l);
    recv_crash_survivors(ch, acked, 1);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* ---- batches ---- */

/* A durable batch is one run of records settled by one sync round: HOP_OK
 * only once all are synced, one fdatasync a file it touched; the async
 * form calls back once for the whole batch. */
static void batch_done(void *arg, hop_err err, int err_no)
{
    (void)err_no;
    _Atomic int *out = arg;
    atomic_store(out, (int)err + 1);
}

static void test_batch_is_synced_as_one(void **state)
{
    const tu_dir *d = *state;
    hop_channel *ch = tu_open(d, durable_limits(1 << 20));
    static unsigned char bufs[20][100];
    hop_buf msgs[20];
    uint64_t ids[40];
    for (size_t i = 0; i < 20; i++) {
        tu_fill_id(bufs[i], 100, i);
        msgs[i] = (hop_buf){bufs[i], 100};
        ids[i] = i;
    }
    hook_reset();
    assert_int_equal(hop_send_batch(ch, msgs, 20), HOP_OK);
    int qsyncs, dirsyncs;
    hook_counts(&qsyncs, &dirsyncs);
    assert_int_equal(qsyncs, 1);   /* one file, one sync for all twenty */
    assert_int_equal(dirsyncs, 1); /* the new file's entry */
    assert_int_equal(tu_stats(ch).disk_messages, 20);

    for (size_t i = 0; i < 20; i++) {
        tu_fill_id(bufs[i], 100, 20 + i);
        ids[20 + i] = 20 + i;
    }
    _Atomic int result = 0; /* the hop_err + 1 once called */
    assert_int_equal(hop_send_batch_async(ch, msgs, 20, batch_done, &result), HOP_OK);
    WAIT_FOR(atomic_load(&result) != 0, "the batch's callback");
    assert_int_equal(atomic_load(&result), HOP_OK + 1);
    assert_int_equal(hop_send_batch_async(ch, msgs, 0, batch_done, &result), HOP_INVALID);
    recv_exactly(ch, ids, 40, 100);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
}

/* ---- limits ---- */

static void test_limits_need_disk_files(void **state)
{
    const tu_dir *d = *state;
    hop_limits l = tu_limits(1 << 20, 1 << 20, 0, 1024);
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    l.durable = true;
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    hop_channel *ch = (hop_channel *)(uintptr_t)1;
    assert_int_equal(hop_channel_open(NULL, "ch", &l, &ch), HOP_INVALID);
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &ch), HOP_INVALID);
    assert_ptr_equal(ch, (hop_channel *)(uintptr_t)1);
    assert_false(tu_exists(d->chan));
    l.max_disk_files = 1;
    assert_int_equal(hop_limits_check(&l), HOP_OK);
    l.file_bytes = 0; /* durable does not lift the other rules */
    assert_int_equal(hop_limits_check(&l), HOP_INVALID);
    hop_limits def;
    hop_limits_default(&def);
    assert_false(def.durable);
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "--crash-child") == 0)
        return crash_child(argv[2], atoi(argv[3]));
#define T(name) cmocka_unit_test_setup_teardown(name, sync_setup, sync_teardown)
    const struct CMUnitTest tests[] = {
        T(test_send_async),
        T(test_durable_never_uses_memory),
        T(test_abandon_keeps_acknowledged),
        T(test_kill_keeps_acknowledged),
        T(test_limits_need_disk_files),
        T(test_batch_is_synced_as_one),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
