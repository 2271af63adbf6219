/* test_faults.c - core/src/channel.c and core/src/queue_file.c when system
 * calls and allocations fail: ENOSPC, EIO, short writes, EMFILE, failing
 * ftruncate and pread, out of memory. Faults go in through the hooks of
 * io.h and alloc.h. Every failing call must return its error with nothing
 * stored or consumed, the caller's buffer intact, and the channel usable:
 * every message accepted before and after comes back intact and in order,
 * and no partial record is ever read. The channels count on a budget whose
 * disk side must match the bytes on disk again after every failure (junk
 * a failed cut left behind included). Most tests sweep the fault over
 * every call of its kind that a workload makes. */
#include "test_util.h"

#include "alloc.h"
#include "channel.h"
#include "io.h"
#include "queue_file.h"

#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the fake system calls ---- */

typedef enum op {
    OP_CREATE, /* openat with O_CREAT: a new queue file */
    OP_OPEN,   /* openat without: the reader */
    OP_PWRITEV,
    OP_PREAD,
    OP_FTRUNCATE,
    OP_UNLINKAT,
    OP_FDATASYNC, /* of a queue file */
    OP_FSYNC,     /* of the channel directory */
    OP_JOURNAL,   /* any call on the journal: open, write, read, sync, rename */
    OP_COUNT
} op;

typedef struct fault {
    int nth;           /* fail the nth call from arming (1 = the next); 0 = off */
    int err;           /* errno of the failure */
    int repeat;        /* calls that fail from then on (-1: until disarmed) */
    bool short_first;  /* pwritev/pread: do half the work, fail the call after */
    int calls;         /* calls seen since arming */
    int failed;        /* failures injected */
    bool pending_fail; /* short_first: the next call fails */
} fault;

static fault faults[OP_COUNT];

static void arm(op o, int nth, int err, int repeat, bool short_first)
{
    faults[o] = (fault){.nth = nth, .err = err, .repeat = repeat, .short_first = short_first};
}

static void disarm_all(void)
{
    memset(faults, 0, sizeof faults);
}

/* Should this call of o fail? Counts the call. */
static bool hit(op o)
{
    fault *f = &faults[o];
    f->calls++;
    if (f->nth == 0 || f->calls < f->nth)
        return false;
    if (f->repeat >= 0 && f->failed >= f->repeat)
        return false;
    f->failed++;
    return true;
}

/* Calls on the journal are faults of their own: the queue file faults
 * below count only calls on queue files. */
static bool journal_path(const char *path)
{
    return strstr(path, "consumed.hqc") != NULL;
}

static bool journal_fd(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return journal_path(target);
}

static bool journal_hit(void)
{
    if (!hit(OP_JOURNAL))
        return false;
    errno = faults[OP_JOURNAL].err;
    return true;
}

static int fake_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    if (journal_path(path))
        return journal_hit() ? -1 : hop__io_system.openat(dirfd, path, flags, mode);
    op o = (flags & O_CREAT) ? OP_CREATE : OP_OPEN;
    if (hit(o)) {
        errno = faults[o].err;
        return -1;
    }
    return hop__io_system.openat(dirfd, path, flags, mode);
}

static ssize_t fake_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (journal_fd(fd))
        return journal_hit() ? -1 : hop__io_system.pwritev(fd, iov, n, off);
    fault *f = &faults[OP_PWRITEV];
    if (f->pending_fail) {
        f->pending_fail = false;
        errno = f->err;
        return -1;
    }
    if (!hit(OP_PWRITEV))
        return hop__io_system.pwritev(fd, iov, n, off);
    size_t total = 0;
    for (int i = 0; i < n; i++)
        total += iov[i].iov_len;
    if (!f->short_first || total < 2) {
        errno = f->err;
        return -1;
    }
    /* write the first half for real, then fail the call after */
    struct iovec part[8];
    size_t want = total / 2, got = 0;
    int k = 0;
    for (; k < n && k < 8 && got < want; k++) {
        part[k] = iov[k];
        if (part[k].iov_len > want - got)
            part[k].iov_len = want - got;
        got += part[k].iov_len;
    }
    f->pending_fail = true;
    return hop__io_system.pwritev(fd, part, k, off);
}

static ssize_t fake_pread(int fd, void *buf, size_t count, off_t off)
{
    if (journal_fd(fd))
        return journal_hit() ? -1 : hop__io_system.pread(fd, buf, count, off);
    fault *f = &faults[OP_PREAD];
    if (f->pending_fail) {
        f->pending_fail = false;
        errno = f->err;
        return -1;
    }
    if (!hit(OP_PREAD))
        return hop__io_system.pread(fd, buf, count, off);
    if (f->short_first && count >= 2) {
        f->pending_fail = true;
        return hop__io_system.pread(fd, buf, count / 2, off);
    }
    errno = f->err;
    return -1;
}

static int fake_ftruncate(int fd, off_t len)
{
    if (journal_fd(fd))
        return journal_hit() ? -1 : hop__io_system.ftruncate(fd, len);
    if (hit(OP_FTRUNCATE)) {
        errno = faults[OP_FTRUNCATE].err;
        return -1;
    }
    return hop__io_system.ftruncate(fd, len);
}

static int fake_unlinkat(int dirfd, const char *path, int flags)
{
    if (journal_path(path)) /* only ever a left-over temporary file: not a fault worth a test */
        return hop__io_system.unlinkat(dirfd, path, flags);
    if (hit(OP_UNLINKAT)) {
        errno = faults[OP_UNLINKAT].err;
        return -1;
    }
    return hop__io_system.unlinkat(dirfd, path, flags);
}

static int fake_fdatasync(int fd)
{
    if (journal_fd(fd))
        return journal_hit() ? -1 : hop__io_system.fdatasync(fd);
    if (hit(OP_FDATASYNC)) {
        errno = faults[OP_FDATASYNC].err;
        return -1;
    }
    return hop__io_system.fdatasync(fd);
}

static int fake_fsync(int fd)
{
    if (hit(OP_FSYNC)) {
        errno = faults[OP_FSYNC].err;
        return -1;
    }
    return hop__io_system.fsync(fd);
}

static int fake_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    if (journal_hit())
        return -1;
    return hop__io_system.renameat(olddirfd, oldpath, newdirfd, newpath);
}

static const hop__io fake_io = {
    .openat = fake_openat,
    .close = close,
    .pwritev = fake_pwritev,
    .pread = fake_pread,
    .ftruncate = fake_ftruncate,
    .unlinkat = fake_unlinkat,
    .fdatasync = fake_fdatasync,
    .fsync = fake_fsync,
    .renameat = fake_renameat,
};

/* ---- failing malloc ---- */

static int malloc_nth, malloc_calls, malloc_failed;

static void *fake_malloc(size_t n)
{
    if (malloc_nth > 0 && ++malloc_calls == malloc_nth) {
        malloc_failed++;
        return NULL;
    }
    return malloc(n);
}

static void arm_malloc(int nth)
{
    malloc_nth = nth;
    malloc_calls = 0;
    malloc_failed = 0;
    hop__alloc_set_malloc(fake_malloc);
}

/* The budget of the channels of a test: room for everything in memory,
 * no disk bound; only its counts are checked. */
static hop_budget *budget;

static int fault_setup(void **state)
{
    disarm_all();
    hop__io_set(&fake_io);
    if (hop_budget_new((size_t)1 << 30, &budget) != HOP_OK)
        return -1;
    return tu_dir_setup(state);
}

static int fault_teardown(void **state)
{
    disarm_all();
    hop__io_set(NULL);
    hop__alloc_set_malloc(NULL);
    hop_budget_free(budget);
    budget = NULL;
    return tu_dir_teardown(state);
}

/* Limits with the test's budget. */
static hop_limits on_budget(hop_limits l)
{
    l.budget = budget;
    return l;
}

/* The budget's disk side counts what the channel directory holds now (the
 * channel is open), or nothing (it is closed). */
static void assert_disk_counted(const tu_dir *d, bool open)
{
    assert_int_equal(hop_budget_disk_used(budget), open ? tu_dir_bytes(d->chan) : 0);
}

/* ---- the workload and its checks ---- */

/* What the channel should hold, oldest first. */
typedef struct expect {
    uint64_t id[256];
    size_t len[256];
    int head, tail;
} expect;

typedef struct tally {
    int io, nomem, full; /* failed calls seen */
    int expected_errno;  /* errno every HOP_IO must carry, 0 = any */
} tally;

/* Send message id; on failure check that nothing changed. */
static void send_checked(hop_channel *ch, expect *e, tally *t, uint64_t id, size_t len)
{
    static unsigned char buf[1 << 17], copy[1 << 17];
    tu_fill_id(buf, len, id);
    memcpy(copy, buf, len);
    hop_stats pre = tu_stats(ch);
    errno = 0;
    hop_err err = hop_send(ch, buf, len);
    int saved = errno;
    hop_stats post = tu_stats(ch);
    assert_memory_equal(buf, copy, len); /* never touched */
    if (err == HOP_OK) {
        assert_true(e->tail < 256);
        e->id[e->tail] = id;
        e->len[e->tail++] = len;
        assert_int_equal(post.messages, pre.messages + 1);
        return;
    }
    if (err == HOP_IO) {
        t->io++;
        if (t->expected_errno && saved != t->expected_errno)
            fail_msg("send of id %llu: HOP_IO with errno %d, expected %d", (unsigned long long)id,
                     saved, t->expected_errno);
        assert_int_equal(post.io_errors_total, pre.io_errors_total + 1);
    } else if (err == HOP_NOMEM) {
        t->nomem++;
    } else if (err == HOP_FULL) {
        t->full++;
    } else {
        fail_msg("send of id %llu: %s", (unsigned long long)id, hop_err_name(err));
    }
    /* nothing stored */
    assert_int_equal(post.messages, pre.messages);
    assert_int_equal(post.sent_total, pre.sent_total);
    assert_int_equal(post.memory_bytes, pre.memory_bytes);
    assert_true(post.disk_bytes == pre.disk_bytes);
}

/* Receive; a failure must consume nothing (the same message comes next). */
static void recv_checked(hop_channel *ch, expect *e, tally *t)
{
    void *data = (void *)(uintptr_t)1;
    size_t len = 2;
    hop_stats pre = tu_stats(ch);
    errno = 0;
    hop_err err = hop_recv(ch, 0, &data, &len);
    int saved = errno;
    hop_stats post = tu_stats(ch);
    assert_int_equal(post.records_corrupt_total, 0);
    if (err == HOP_OK) {
        assert_true(e->head < e->tail);
        uint64_t id = tu_id_of(data, len);
        if (id != e->id[e->head] || len != e->len[e->head])
            fail_msg("recv: id %llu (%zu bytes), expected id %llu (%zu bytes)",
                     (unsigned long long)id, len, (unsigned long long)e->id[e->head],
                     e->len[e->head]);
        e->head++;
        hop_free(data);
        return;
    }
    if (err == HOP_TIMEOUT) {
        assert_int_equal(e->head, e->tail);
        return;
    }
    if (err == HOP_IO) {
        t->io++;
        if (t->expected_errno && saved != t->expected_errno)
            fail_msg("recv: HOP_IO with errno %d, expected %d", saved, t->expected_errno);
    } else if (err == HOP_NOMEM) {
        t->nomem++;
    } else {
        fail_msg("recv: %s", hop_err_name(err));
    }
    assert_ptr_equal(data, (void *)(uintptr_t)1); /* outputs untouched */
    assert_int_equal(len, 2);
    assert_int_equal(post.messages, pre.messages); /* nothing consumed */
}

/* The files on disk hold exactly the published bytes (no partial record
 * left behind), unless a truncate failed. */
static uint64_t bytes_on_disk(const tu_dir *d)
{
    uint64_t seqs[64], sizes[64], total = 0;
    int n = tu_list_qfiles(d->chan, seqs, sizes, 64);
    for (int i = 0; i < n; i++)
        total += sizes[i];
    return total;
}

/* Sends through memory and disk, including a record bigger than the read
 * buffer, some receives, more sends. */
static void workload(const tu_dir *d, hop_channel *ch, expect *e, tally *t, bool exact_disk)
{
    uint64_t id = 0;
    for (int i = 0; i < 24; i++, id++)
        send_checked(ch, e, t, id, i == 13 ? 70000 : 8 + (size_t)(i * 37 % 200));
    if (exact_disk)
        assert_true(bytes_on_disk(d) == tu_stats(ch).disk_bytes);
    for (int i = 0; i < 16; i++) /* memory, then disk, the big record too */
        recv_checked(ch, e, t);
    for (int i = 0; i < 12; i++, id++)
        send_checked(ch, e, t, id, 8 + (size_t)(i * 53 % 300));
    if (exact_disk)
        assert_true(bytes_on_disk(d) == tu_stats(ch).disk_bytes);
    for (int i = 0; i < 14; i++)
        recv_checked(ch, e, t);
}

/* With the faults gone: everything accepted comes back, in order, intact,
 * and every file is deleted. */
static void drain_clean(const tu_dir *d, hop_channel *ch, expect *e)
{
    disarm_all();
    hop__alloc_set_malloc(NULL);
    tally t = {0};
    while (e->head < e->tail)
        recv_checked(ch, e, &t);
    assert_int_equal(t.io + t.nomem, 0);
    void *data;
    size_t len;
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_TIMEOUT);
    hop_stats s = tu_stats(ch);
    assert_int_equal(s.messages, 0);
    assert_int_equal(s.records_corrupt_total, 0);
    assert_int_equal(s.disk_files, 0);
    assert_int_equal(tu_list_qfiles(d->chan, (uint64_t[64]){0}, NULL, 64), 0);
    /* still usable: a send and a receive through memory */
    assert_int_equal(hop_send(ch, "after", 5), HOP_OK);
    assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(data, "after", 5);
    hop_free(data);
}

static hop_limits workload_limits(void)
{
    /* 3 small messages in memory, files of about 4 records */
    return on_budget(tu_limits(3 * hop_message_cost(100), TU_FILE_HEADER + 4 * TU_RECORD_SIZE(150),
                               SIZE_MAX, 100000));
}

/* How many calls of o a clean run of the workload makes. */
static int calls_in_clean_run(const tu_dir *d, op o)
{
    hop_channel *ch = tu_open(d, workload_limits());
    expect e = {0};
    tally t = {0};
    disarm_all();
    workload(d, ch, &e, &t, true);
    int calls = faults[o].calls;
    assert_int_equal(t.io + t.nomem + t.full, 0);
    drain_clean(d, ch, &e);
    hop_channel_close(ch);
    return calls;
}

/* Run the workload once per call of o, failing that call. */
static void sweep(const tu_dir *d, op o, int err, bool short_first, int ftruncate_err,
                  const char *what)
{
    int calls = calls_in_clean_run(d, o);
    assert_true(calls > 0);
    for (int nth = 1; nth <= calls; nth++) {
        hop_channel *ch = tu_open(d, workload_limits());
        expect e = {0};
        tally t = {.expected_errno = err};
        arm(o, nth, err, 1, short_first);
        if (ftruncate_err)
            arm(OP_FTRUNCATE, 1, ftruncate_err, -1, false);
        workload(d, ch, &e, &t, ftruncate_err == 0);
        if (faults[o].failed != 1)
            fail_msg("%s, call %d: the fault was not hit", what, nth);
        if (t.io != 1)
            fail_msg("%s, call %d: %d calls failed, expected 1", what, nth, t.io);
        hop_stats s = tu_stats(ch);
        assert_int_equal(s.io_errors_total, 1);
        assert_disk_counted(d, true);
        drain_clean(d, ch, &e);
        assert_disk_counted(d, true);
        hop_channel_close(ch);
        assert_disk_counted(d, false);
    }
    print_message("%s: %d positions\n", what, calls);
}

/* ---- the tests ---- */

static void test_write_enospc_anywhere(void **state)
{
    sweep(*state, OP_PWRITEV, ENOSPC, false, 0, "pwritev ENOSPC");
}

static void test_write_eio_anywhere(void **state)
{
    sweep(*state, OP_PWRITEV, EIO, false, 0, "pwritev EIO");
}

/* A short write and then EIO: the partial record is cut off again. */
static void test_short_write_then_eio_anywhere(void **state)
{
    sweep(*state, OP_PWRITEV, EIO, true, 0, "short pwritev, then EIO");
}

/* A short write, EIO, and the truncate fails too: the junk stays in the
 * file, which is sealed so nothing is appended after it; the reader never
 * reaches it. */
static void test_short_write_and_failed_truncate_anywhere(void **state)
{
    sweep(*state, OP_PWRITEV, EIO, true, EROFS, "short pwritev, EIO, ftruncate fails");
}

static void test_create_emfile_anywhere(void **state)
{
    sweep(*state, OP_CREATE, EMFILE, false, 0, "openat (create) EMFILE");
}

static void test_open_for_read_emfile_anywhere(void **state)
{
    sweep(*state, OP_OPEN, EMFILE, false, 0, "openat (read) EMFILE");
}

static void test_read_eio_anywhere(void **state)
{
    sweep(*state, OP_PREAD, EIO, false, 0, "pread EIO");
}

static void test_short_read_then_eio_anywhere(void **state)
{
    sweep(*state, OP_PREAD, EIO, true, 0, "short pread, then EIO");
}

/* The torn file in detail: junk past the published size is on disk, a new
 * file takes the next sends, nothing of the junk is ever read. */
static void test_torn_write_seals_file(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, on_budget(tu_limits(0, 100000, SIZE_MAX, 1000)));
    expect e = {0};
    tally t = {.expected_errno = EIO};
    send_checked(ch, &e, &t, 1, 100); /* file 1 */
    arm(OP_PWRITEV, 1, EIO, 1, true);
    arm(OP_FTRUNCATE, 1, EIO, -1, false);
    send_checked(ch, &e, &t, 2, 100); /* torn */
    assert_int_equal(t.io, 1);
    disarm_all();
    uint64_t seqs[4], sizes[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 4), 1);
    uint64_t published = TU_FILE_HEADER + TU_RECORD_SIZE(100);
    assert_true(sizes[0] > published); /* the junk is there */
    assert_true(tu_stats(ch).disk_bytes == published);
    assert_disk_counted(d, true);     /* and counted */
    send_checked(ch, &e, &t, 3, 100); /* a new file, not after the junk */
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 4), 2);
    assert_true(sizes[1] == published);
    drain_clean(d, ch, &e);
    assert_disk_counted(d, true); /* the file with junk went, and its count */
    hop_channel_close(ch);
}

/* With one file allowed, a torn write seals it: sends are FULL (not lost,
 * not written after the junk) until it is drained, then accepted again. */
static void test_torn_write_with_one_file(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, tu_limits(0, 100000, 1, 1000));
    expect e = {0};
    tally t = {.expected_errno = EIO};
    send_checked(ch, &e, &t, 1, 100);
    send_checked(ch, &e, &t, 2, 100);
    arm(OP_PWRITEV, 1, EIO, 1, true);
    arm(OP_FTRUNCATE, 1, EIO, -1, false);
    send_checked(ch, &e, &t, 3, 100);
    disarm_all();
    assert_int_equal(t.io, 1);
    send_checked(ch, &e, &t, 4, 100);
    assert_int_equal(t.full, 1);
    recv_checked(ch, &e, &t);
    send_checked(ch, &e, &t, 5, 100);
    assert_int_equal(t.full, 2);
    recv_checked(ch, &e, &t); /* file drained and deleted */
    send_checked(ch, &e, &t, 6, 100);
    assert_int_equal(t.full, 2);
    drain_clean(d, ch, &e);
    hop_channel_close(ch);
}

/* A channel of one record a file: three messages sent, then the first
 * received while removing files fails (fails times, -1: until disarmed).
 * OUT: *l, its limits; *e, what it holds. */
static hop_channel *first_file_not_removed(const tu_dir *d, int fails, hop_limits *l, expect *e)
{
    *l = on_budget(tu_limits(0, 1, SIZE_MAX, 1000));
    hop_channel *ch = tu_open(d, *l);
    tally t = {0};
    for (uint64_t id = 0; id < 3; id++)
        send_checked(ch, e, &t, id, 50);
    arm(OP_UNLINKAT, 1, EACCES, fails, false);
    recv_checked(ch, e, &t);
    assert_int_equal(t.io + t.nomem + t.full, 0);
    return ch;
}

/* A drained file that cannot be deleted: receiving goes on, the failure is
 * logged, and the next open removes the file as stale. */
static void test_unlink_failure(void **state)
{
    tu_dir *d = *state;
    hop_limits l;
    expect e = {0};
    tally t = {0};
    hop_channel *ch = first_file_not_removed(d, 1, &l, &e);
    assert_disk_counted(d, true); /* the file left over stays counted */
    assert_true(tu_log_contains("cannot remove finished queue file"));
    uint64_t seqs[8];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 3); /* 1 left over + 2 */
    assert_int_equal(tu_stats(ch).disk_files, 2);
    disarm_all();
    while (e.head < e.tail)
        recv_checked(ch, &e, &t);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 1);
    assert_disk_counted(d, true);
    hop_channel_close(ch);
    assert_disk_counted(d, false);
    ch = tu_open(d, l);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 0);
    assert_disk_counted(d, true);
    hop_channel_close(ch);
}

/* A consumed file that cannot be removed at open either: the journal
 * must go on saying it is consumed, so the open after that (which can
 * remove it) delivers none of it again. */
static void test_unlink_failure_at_open(void **state)
{
    tu_dir *d = *state;
    hop_limits l;
    expect e = {0};
    hop_channel *ch = first_file_not_removed(d, -1, &l, &e);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    ch = tu_open(d, l); /* cannot remove it either */
    uint64_t seqs[8];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 3);
    assert_int_equal(tu_stats(ch).messages, 2);
    assert_disk_counted(d, true); /* counted: it is on disk */
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    disarm_all();
    ch = tu_open(d, l);
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 2);
    drain_clean(d, ch, &e); /* 1 and 2, not 0 again */
    hop_channel_close(ch);
}

/* A consumed file that cannot be removed, at open either, stays counted
 * while consumption goes on; the journal's live rewrite (after 8192
 * records) removes it at last and gives its bytes back. */
static void test_unremoved_file_goes_at_a_journal_rewrite(void **state)
{
    tu_dir *d = *state;
    hop_channel *ch = tu_open(d, on_budget(tu_limits(0, 1, SIZE_MAX, 1000))); /* a file each */
    expect e = {0};
    tally t = {0};
    send_checked(ch, &e, &t, 0, 50);
    arm(OP_UNLINKAT, 1, EACCES, -1, false);
    recv_checked(ch, &e, &t);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    ch = tu_open(d, on_budget(tu_limits(0, 1 << 20, SIZE_MAX, 1000)));
    disarm_all();
    uint64_t seqs[8];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 1);
    assert_disk_counted(d, true);
    for (uint64_t id = 1; id <= 8300; id++) {
        unsigned char buf[16];
        void *m;
        size_t len;
        tu_fill_id(buf, sizeof buf, id);
        assert_int_equal(hop_send(ch, buf, sizeof buf), HOP_OK);
        assert_int_equal(hop_recv(ch, 0, &m, &len), HOP_OK);
        assert_int_equal(tu_id_of(m, len), id);
        hop_free(m);
    }
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 0);
    assert_disk_counted(d, true);
    hop_channel_close(ch);
}

/* A batch fails after starting new files, and they cannot be removed
 * either: they stay on disk, counted, until the channel closes. */
static void test_rolled_back_files_not_removable(void **state)
{
    tu_dir *d = *state;
    static unsigned char bufs[3][60];
    hop_buf msgs[3];
    for (size_t i = 0; i < 3; i++) {
        tu_fill_id(bufs[i], sizeof bufs[i], i);
        msgs[i] = (hop_buf){bufs[i], sizeof bufs[i]};
    }
    hop_channel *ch = tu_open(d, on_budget(tu_limits(0, 1, 16, 1000))); /* a file each */
    /* writes: header 1, record 0, header 2, record 1 fails */
    arm(OP_PWRITEV, 4, ENOSPC, 1, false);
    arm(OP_UNLINKAT, 1, EACCES, -1, false);
    assert_int_equal(hop_send_batch(ch, msgs, 3), HOP_IO);
    assert_int_equal(tu_stats(ch).messages, 0);
    uint64_t seqs[8];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 8), 2);
    assert_disk_counted(d, true);
    disarm_all();
    hop_channel_close(ch);
    assert_disk_counted(d, false);
}

/* Out of memory at every allocation the workload makes. */
static void test_malloc_failure_anywhere(void **state)
{
    tu_dir *d = *state;
    /* count the allocations of a clean run (armed far beyond them) */
    hop_channel *ch = tu_open(d, workload_limits());
    expect e = {0};
    tally t = {0};
    arm_malloc(1 << 30);
    workload(d, ch, &e, &t, true);
    int calls = malloc_calls;
    hop__alloc_set_malloc(NULL);
    drain_clean(d, ch, &e);
    hop_channel_close(ch);
    assert_true(calls > 20);

    for (int nth = 1; nth <= calls; nth++) {
        ch = tu_open(d, workload_limits());
        memset(&e, 0, sizeof e);
        memset(&t, 0, sizeof t);
        arm_malloc(nth);
        workload(d, ch, &e, &t, true);
        hop__alloc_set_malloc(NULL);
        if (malloc_failed != 1)
            fail_msg("malloc %d: not reached", nth);
        if (t.nomem != 1 || t.io != 0)
            fail_msg("malloc %d: %d NOMEM, %d IO; expected one NOMEM", nth, t.nomem, t.io);
        assert_disk_counted(d, true);
        drain_clean(d, ch, &e);
        hop_channel_close(ch);
        assert_disk_counted(d, false);
        assert_int_equal(hop_budget_used(budget), 0);
    }
    print_message("malloc: %d positions\n", calls);
}

static void never_called(void *arg, hop_err err, void *data, size_t len)
{
    (void)arg;
    (void)err;
    (void)data;
    (void)len;
    abort();
}

/* Out of memory where a channel or waiter is made. */
static void test_malloc_failure_in_constructors(void **state)
{
    tu_dir *d = *state;
    hop_limits l = workload_limits();
    hop_channel *ch = (hop_channel *)(uintptr_t)1;
    arm_malloc(1);
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &ch), HOP_NOMEM);
    hop__alloc_set_malloc(NULL);
    assert_ptr_equal(ch, (hop_channel *)(uintptr_t)1);
    hop_waiter *w = (hop_waiter *)(uintptr_t)1;
    arm_malloc(1);
    assert_int_equal(hop_waiter_new(never_called, NULL, &w), HOP_NOMEM);
    hop__alloc_set_malloc(NULL);
    assert_ptr_equal(w, (hop_waiter *)(uintptr_t)1);
}

/* ---- faults around restarts: the journal, recovery, close ---- */

/* Send ids [from, to) of 40 bytes, all accepted. */
static void send_range(hop_channel *ch, expect *e, uint64_t from, uint64_t to)
{
    tally t = {0};
    for (uint64_t id = from; id < to; id++)
        send_checked(ch, e, &t, id, 40);
    assert_int_equal(t.io + t.nomem + t.full, 0);
}

/* A consumed record whose journal entry cannot be written (ENOSPC) was
 * still delivered; after a crash it comes again (at-least-once), and
 * nothing is lost. */
static void test_journal_append_fails(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 1 << 20, 8, 1000);
    hop_channel *ch = tu_open(d, l);
    expect e = {0};
    send_range(ch, &e, 0, 5);
    tally t = {0};
    arm(OP_JOURNAL, 1, ENOSPC, 1, false);
    recv_checked(ch, &e, &t); /* id 0, delivered */
    assert_int_equal(faults[OP_JOURNAL].failed, 1);
    assert_true(
        tu_log_contains("cannot note 1 consumed record(s) (they may come again after a restart)"));
    assert_int_equal(tu_stats(ch).io_errors_total, 1);
    recv_checked(ch, &e, &t); /* id 1, journalled */
    assert_int_equal(t.io + t.nomem, 0);
    hop__channel_abandon(ch);
    ch = tu_open(d, l);
    expect again = {0};
    again.id[again.tail] = 0;
    again.len[again.tail++] = 40;
    for (uint64_t id = 2; id < 5; id++) {
        again.id[again.tail] = id;
        again.len[again.tail++] = 40;
    }
    drain_clean(d, ch, &again);
    hop_channel_close(ch);
}

/* Every journal call an open makes (reading the journal, writing the new
 * one) may fail: the open fails with HOP_IO, and the next open finds
 * everything as it was. */
static void test_journal_fails_at_open(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 1 << 20, 8, 1000);
    hop_channel *ch = tu_open(d, l);
    expect e = {0};
    send_range(ch, &e, 0, 6);
    tally t = {0};
    recv_checked(ch, &e, &t);
    recv_checked(ch, &e, &t);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    disarm_all();
    ch = tu_open(d, l);
    int calls = faults[OP_JOURNAL].calls;
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    assert_true(calls >= 4); /* open, read, create, write, sync, rename */
    for (int nth = 1; nth <= calls; nth++) {
        arm(OP_JOURNAL, nth, EIO, 1, false);
        hop_channel *bad = (hop_channel *)(uintptr_t)1;
        hop_err err = hop_channel_open(d->data, "ch", &l, &bad);
        if (faults[OP_JOURNAL].failed != 1)
            fail_msg("journal call %d: not reached", nth);
        if (err != HOP_IO)
            fail_msg("journal call %d failed, open said %s", nth, hop_err_name(err));
        assert_ptr_equal(bad, (hop_channel *)(uintptr_t)1);
        disarm_all();
    }
    ch = tu_open(d, l);
    drain_clean(d, ch, &e);
    hop_channel_close(ch);
}

/* Reading a queue file fails during recovery: the open fails, nothing is
 * lost. */
static void test_recovery_read_fails(void **state)
{
    tu_dir *d = *state;
    hop_limits l = tu_limits(0, 1 << 20, 8, 1000);
    hop_channel *ch = tu_open(d, l);
    expect e = {0};
    send_range(ch, &e, 0, 4);
    assert_int_equal(hop_channel_close(ch), HOP_OK);
    arm(OP_PREAD, 1, EIO, 1, false);
    hop_channel *bad = NULL;
    errno = 0;
    assert_int_equal(hop_channel_open(d->data, "ch", &l, &bad), HOP_IO);
    assert_int_equal(errno, EIO);
    assert_null(bad);
    disarm_all();
    ch = tu_open(d, l);
    drain_clean(d, ch, &e);
    hop_channel_close(ch);
}

/* A torn tail that recovery cannot cut off (ftruncate fails): the junk
 * stays on disk, counted, and goes with its file once drained. */
static void test_torn_tail_not_cut_at_open(void **state)
{
    tu_dir *d = *state;
    hop_limits l = on_budget(tu_limits(0, 1 << 20, 8, 1000));
    hop_channel *ch = tu_open(d, l);
    expect e = {0};
    send_range(ch, &e, 0, 3);
    hop__channel_abandon(ch);
    uint64_t seqs[4], sizes[4];
    assert_int_equal(tu_list_qfiles(d->chan, seqs, sizes, 4), 1);
    char name[HOP__QFILE_NAME_SIZE], path[PATH_MAX];
    hop__qfile_name(seqs[0], name);
    tu_join(path, d->chan, name);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "torn", 4), 4); /* half a record header */
    close(fd);
    arm(OP_FTRUNCATE, 1, EIO, -1, false);
    ch = tu_open(d, l);
    disarm_all();
    assert_true(tu_log_contains("cannot cut"));
    assert_int_equal(tu_stats(ch).messages, 3);
    assert_disk_counted(d, true);
    tally t = {0};
    send_checked(ch, &e, &t, 3, 40); /* not after the junk: a new file */
    assert_int_equal(tu_list_qfiles(d->chan, seqs, NULL, 4), 2);
    assert_disk_counted(d, true);
    drain_clean(d, ch, &e);
    assert_disk_counted(d, true);
    hop_channel_close(ch);
}

/* Writing memory to disk at close fails (full disk while writing, or the
 * sync fails): close says HOP_IO and logs what was lost; what was on disk,
 * and a message read from disk and given back, are still there. */
static void test_close_cannot_write_memory(void **state)
{
    tu_dir *d = *state;
    static const op ops[] = {OP_CREATE, OP_PWRITEV, OP_FDATASYNC, OP_FSYNC};
    hop_limits l = on_budget(tu_limits(3 * hop_message_cost(40), 1 << 20, 8, 1000));
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        hop_channel *ch = tu_open(d, l);
        expect e = {0};
        send_range(ch, &e, 0, 3); /* memory */
        send_range(ch, &e, 3, 6); /* disk */
        tally t = {0};
        recv_checked(ch, &e, &t); /* 0, 1, 2 from memory */
        recv_checked(ch, &e, &t);
        recv_checked(ch, &e, &t);
        void *data;
        size_t len;
        assert_int_equal(hop_recv(ch, 0, &data, &len), HOP_OK); /* 3, from disk */
        assert_int_equal(hop_requeue(ch, data, len), HOP_OK);
        send_range(ch, &e, 6, 8); /* behind 4, 5 on disk */
        arm(ops[k], 1, ENOSPC, -1, false);
        errno = 0;
        assert_int_equal(hop_channel_close(ch), HOP_IO);
        assert_int_equal(errno, ENOSPC);
        assert_true(tu_log_contains("at close"));
        assert_disk_counted(d, false);
        assert_int_equal(hop_budget_used(budget), 0);
        disarm_all();
        ch = tu_open(d, l);
        assert_disk_counted(d, true);
        drain_clean(d, ch, &e); /* 3, 4, 5, 6, 7: nothing was only in memory */
        hop_channel_close(ch);
    }
    /* messages only in memory are lost, and said so */
    hop_channel *ch = tu_open(d, l);
    expect e = {0};
    send_range(ch, &e, 0, 2);
    arm(OP_PWRITEV, 1, ENOSPC, -1, false);
    tu_log_capture();
    assert_int_equal(hop_channel_close(ch), HOP_IO);
    assert_true(tu_log_contains("2 of them lost"));
    disarm_all();
    ch = tu_open(d, l);
    assert_int_equal(tu_stats(ch).messages, 0);
    hop_channel_close(ch);
}

/* A batch whose write fails at any of its system calls (a new file, any
 * record, a short write): nothing of it is stored, the files are cut back
 * to what they held before, and what was there before still comes out. */
static void test_batch_write_fails_anywhere(void **state)
{
    tu_dir *d = *state;
    static const op ops[] = {OP_PWRITEV, OP_CREATE};
    static unsigned char bufs[8][60];
    hop_buf msgs[8];
    for (size_t i = 0; i < 8; i++) {
        tu_fill_id(bufs[i], sizeof bufs[i], 100 + i);
        msgs[i] = (hop_buf){bufs[i], sizeof bufs[i]};
    }
    hop_limits l = on_budget(tu_limits(0, TU_FILE_HEADER + 3 * TU_RECORD_SIZE(60), 16, 1000));
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        for (int nth = 1;; nth++) {
            hop_channel *ch = tu_open(d, l);
            expect e = {0};
            send_range(ch, &e, 0, 2); /* the open file holds two of three */
            hop_stats before = tu_stats(ch);
            arm(ops[k], nth, ENOSPC, 1, ops[k] == OP_PWRITEV && nth % 2 == 0);
            errno = 0;
            hop_err err = hop_send_batch(ch, msgs, 8);
            bool hit = faults[ops[k]].failed == 1;
            disarm_all();
            hop_stats after = tu_stats(ch);
            if (!hit) { /* past the last call: the batch went through */
                assert_int_equal(err, HOP_OK);
                hop_channel_close(ch);
                tu_rmtree(d->chan);
                assert_true(nth > 2);
                break;
            }
            if (err != HOP_IO || errno != ENOSPC)
                fail_msg("%s call %d: %s (errno %d)", ops[k] == OP_CREATE ? "create" : "write", nth,
                         hop_err_name(err), errno);
            assert_int_equal(after.messages, before.messages);
            assert_int_equal(after.disk_files, before.disk_files);
            assert_true(after.disk_bytes == before.disk_bytes);
            assert_true(bytes_on_disk(d) == before.disk_bytes); /* cut back */
            assert_disk_counted(d, true);
            drain_clean(d, ch, &e);
            hop_channel_close(ch);
            assert_disk_counted(d, false);
            tu_rmtree(d->chan);
        }
    }
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, fault_setup, fault_teardown)
    const struct CMUnitTest tests[] = {
        T(test_write_enospc_anywhere),
        T(test_write_eio_anywhere),
        T(test_short_write_then_eio_anywhere),
        T(test_short_write_and_failed_truncate_anywhere),
        T(test_create_emfile_anywhere),
        T(test_open_for_read_emfile_anywhere),
        T(test_read_eio_anywhere),
        T(test_short_read_then_eio_anywhere),
        T(test_torn_write_seals_file),
        T(test_torn_write_with_one_file),
        T(test_unlink_failure),
        T(test_unlink_failure_at_open),
        T(test_unremoved_file_goes_at_a_journal_rewrite),
        T(test_rolled_back_files_not_removable),
        T(test_malloc_failure_anywhere),
        T(test_malloc_failure_in_constructors),
        T(test_journal_append_fails),
        T(test_journal_fails_at_open),
        T(test_recovery_read_fails),
        T(test_torn_tail_not_cut_at_open),
        T(test_close_cannot_write_memory),
        T(test_batch_write_fails_anywhere),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
