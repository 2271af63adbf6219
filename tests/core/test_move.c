/* test_move.c - tests of core/src/move.c and move_file.c through the
 * public API: hop_move() puts the messages at the tail of the other
 * channel, in order, changed in place as the caller left them, before
 * whatever is sent after; messages from queue files and from memory;
 * refusals leave both channels as they were; and the point of it all, a
 * crash or a failing system call at every step of a move leaves each
 * message in exactly one channel, in order, after the next open (a child
 * process makes the move and dies at the Nth system call; the parent
 * reopens both channels and counts). Each test runs in its own temp dir;
 * the channels are <dir>/from and <dir>/to. */
#include "test_util.h"

#include "io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define LEN 100
#define FROM_IDS 20 /* ids 0..19 in from */
#define TO_BASE 100 /* ids 100.. in to */
#define TO_IDS 10
#define MOVED 8   /* the oldest 8 of from are moved */
#define FLIP 0xff /* the mover flips the last byte of a moved payload with this */

static hop_limits disk_limits(bool durable)
{
    /* memory too small for one message: everything goes to queue files */
    hop_limits l = tu_limits(64, 4096, 64, 1 << 20);
    l.durable = durable;
    return l;
}

static hop_channel *open_named(const tu_dir *d, const char *name, hop_limits l)
{
    hop_channel *ch = NULL;
    hop_err err = hop_channel_open(d->data, name, &l, &ch);
    if (err != HOP_OK)
        fail_msg("open %s: %s (errno %d)", name, hop_err_name(err), errno);
    return ch;
}

static void send_ids(hop_channel *ch, uint64_t from, uint64_t to)
{
    unsigned char buf[LEN];
    for (uint64_t id = from; id < to; id++) {
        tu_fill_id(buf, LEN, id);
        assert_int_equal(hop_send(ch, buf, LEN), HOP_OK);
    }
}

/* Receive n messages of ch into msgs, ids first..first+n-1. */
static void recv_ids(hop_channel *ch, void **msgs, size_t n, uint64_t first)
{
    for (size_t i = 0; i < n; i++) {
        size_t len;
        assert_int_equal(hop_recv(ch, 0, &msgs[i], &len), HOP_OK);
        assert_int_equal(tu_id_of(msgs[i], len), first + i);
    }
}

/* Every message of ch, drained: OUT ids[0..return), changed[i] true if
 * the mover flipped its last byte. */
static size_t drain(hop_channel *ch, uint64_t *ids, bool *changed, size_t max)
{
    size_t n = 0;
    void *data;
    size_t len;
    while (hop_recv(ch, 0, &data, &len) == HOP_OK) {
        assert_true(n < max);
        assert_int_equal(len, LEN);
        unsigned char *p = data;
        changed[n] = tu_id_of(data, len) == UINT64_MAX;
        if (changed[n])
            p[LEN - 1] ^= FLIP;
        ids[n++] = tu_id_of(data, len);
        hop_free(data);
    }
    return n;
}

static void assert_ids(const uint64_t *ids, size_t n, uint64_t first, uint64_t end)
{
    assert_int_equal(n, end - first);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(ids[i], first + i);
}

/* ---- the move ---- */

static void test_move_in_order(void **state)
{
    const tu_dir *d = *state;
    hop_channel *from = open_named(d, "from", disk_limits(false));
    hop_channel *to = open_named(d, "to", tu_limits(1 << 20, 4096, 64, 1 << 20));
    send_ids(from, 0, FROM_IDS);
    send_ids(to, TO_BASE, TO_BASE + TO_IDS); /* in to's memory: older than the move */
    void *msgs[MOVED];
    recv_ids(from, msgs, MOVED, 0);
    for (size_t i = 0; i < MOVED; i++)
        ((unsigned char *)msgs[i])[LEN - 1] ^= FLIP;
    assert_int_equal(hop_move(from, to, msgs, MOVED), HOP_OK);
    send_ids(to, TO_BASE + TO_IDS, TO_BASE + TO_IDS + 2); /* after the move */
    hop_stats s = tu_stats(to);
    assert_int_equal(s.messages, TO_IDS + MOVED + 2);
    assert_int_equal(tu_stats(from).messages, FROM_IDS - MOVED);

    /* and across a reopen, as it was */
    assert_int_equal(hop_channel_close(from), HOP_OK);
    assert_int_equal(hop_channel_close(to), HOP_OK);
    from = open_named(d, "from", disk_limits(false));
    to = open_named(d, "to", tu_limits(1 << 20, 4096, 64, 1 << 20));
    uint64_t ids[64];
    bool changed[64];
    size_t n = drain(to, ids, changed, 64);
    assert_int_equal(n, TO_IDS + MOVED + 2);
    for (size_t i = 0; i < n; i++) {
        uint64_t want = i < TO_IDS           ? TO_BASE + i
                        : i < TO_IDS + MOVED ? i - TO_IDS
                                             : TO_BASE + TO_IDS + (i - TO_IDS - MOVED);
        assert_int_equal(ids[i], want);
        assert_int_equal(changed[i], i >= TO_IDS && i < TO_IDS + MOVED);
    }
    n = drain(from, ids, changed, 64);
    assert_ids(ids, n, MOVED, FROM_IDS);
    assert_int_equal(hop_channel_close(from), HOP_OK);
    assert_int_equal(hop_channel_close(to), HOP_OK);
}

/* Messages from's memory held: they go to a queue file of to, and wait
 * there for a receiver that was blocked. */
static void test_move_from_memory(void **state)
{
    const tu_dir *d = *state;
    hop_channel *from = open_named(d, "from", tu_limits(1 << 20, 4096, 64, 1 << 20));
    hop_channel *to = open_named(d, "to", disk_limits(true));
    send_ids(from, 0, 4);
    void *msgs[4];
    recv_ids(from, msgs, 4, 0);
    assert_int_equal(hop_move(from, to, msgs, 4), HOP_OK);
    assert_int_equal(tu_stats(to).disk_messages, 4);
    assert_int_equal(hop_channel_close(to), HOP_OK); /* durable: nothing to write at close */
    to = open_named(d, "to", disk_limits(true));
    uint64_t ids[8];
    bool changed[8];
    assert_ids(ids, drain(to, ids, changed, 8), 0, 4);
    assert_int_equal(hop_channel_close(from), HOP_OK);
    assert_int_equal(hop_channel_close(to), HOP_OK);
}

static void test_move_refused(void **state)
{
    const tu_dir *d = *state;
    hop_channel *from = open_named(d, "from", disk_limits(false));
    hop_limits one = disk_limits(false);
    one.max_disk_files = 1;
    hop_channel *to = open_named(d, "to", one);
    send_ids(from, 0, 4);
    send_ids(to, TO_BASE, TO_BASE + 1); /* to's only file */
    void *msgs[4];
    recv_ids(from, msgs, 4, 0);
    assert_int_equal(hop_move(from, to, msgs, 4), HOP_FULL);
    assert_int_equal(hop_move(from, from, msgs, 4), HOP_INVALID);
    assert_int_equal(hop_move(from, to, msgs, 0), HOP_INVALID);
    assert_int_equal(hop_move(from, to, msgs, HOP_MOVE_MAX + 1), HOP_INVALID);
    void *other;
    size_t len;
    assert_int_equal(hop_recv(to, 0, &other, &len), HOP_OK);
    assert_int_equal(hop_move(from, to, &other, 1), HOP_INVALID); /* received from to */
    assert_int_equal(hop_requeue(to, other, len), HOP_OK);
    /* still the caller's: given back, from is as it was */
    for (size_t i = 4; i-- > 0;)
        assert_int_equal(hop_requeue(from, msgs[i], LEN), HOP_OK);
    uint64_t ids[8];
    bool changed[8];
    assert_ids(ids, drain(from, ids, changed, 8), 0, 4);
    assert_ids(ids, drain(to, ids, changed, 8), TO_BASE, TO_BASE + 1);
    assert_int_equal(hop_channel_close(from), HOP_OK);
    assert_int_equal(hop_channel_close(to), HOP_OK);
}

/* ---- crashes and failures at every step ---- */

/* The child's hook: the Nth call the move makes dies (or fails). */
static int target, calls;
static bool armed, after, fail_instead;

static bool hit(void)
{
    return armed && ++calls == target;
}

#define DIE_OR_FAIL(call)                                                                          \
    do {                                                                                           \
        if (hit()) {                                                                               \
            if (fail_instead) {                                                                    \
                errno = EIO;                                                                       \
                return -1;                                                                         \
            }                                                                                      \
            if (!after)                                                                            \
                _exit(7);                                                                          \
            (void)(call);                                                                          \
            _exit(7);                                                                              \
        }                                                                                          \
        return call;                                                                               \
    } while (0)

static int h_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    DIE_OR_FAIL(hop__io_system.openat(dirfd, path, flags, mode));
}
static ssize_t h_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    DIE_OR_FAIL(hop__io_system.pwritev(fd, iov, n, off));
}
static int h_ftruncate(int fd, off_t len)
{
    DIE_OR_FAIL(hop__io_system.ftruncate(fd, len));
}
static int h_unlinkat(int dirfd, const char *path, int flags)
{
    DIE_OR_FAIL(hop__io_system.unlinkat(dirfd, path, flags));
}
static int h_fdatasync(int fd)
{
    DIE_OR_FAIL(hop__io_system.fdatasync(fd));
}
static int h_fsync(int fd)
{
    DIE_OR_FAIL(hop__io_system.fsync(fd));
}
static int h_renameat(int od, const char *op, int nd, const char *np)
{
    DIE_OR_FAIL(hop__io_system.renameat(od, op, nd, np));
}

/* In the child: fill both channels, take MOVED from from and move them
 * with the hook armed. Exit 0: the move returned HOP_OK untouched; 2:
 * HOP_OK, with a failure after the commit; 1: it refused (the messages
 * were given back, the channels closed); 7: died. */
static void child(const tu_dir *d, bool durable)
{
    hop_channel *from = NULL, *to = NULL;
    hop_limits l = disk_limits(durable);
    if (hop_channel_open(d->data, "from", &l, &from) != HOP_OK ||
        hop_channel_open(d->data, "to", &l, &to) != HOP_OK)
        _exit(20);
    unsigned char buf[LEN];
    for (uint64_t id = 0; id < FROM_IDS; id++) {
        tu_fill_id(buf, LEN, id);
        if (hop_send(from, buf, LEN) != HOP_OK)
            _exit(21);
    }
    for (uint64_t id = TO_BASE; id < TO_BASE + TO_IDS; id++) {
        tu_fill_id(buf, LEN, id);
        if (hop_send(to, buf, LEN) != HOP_OK)
            _exit(22);
    }
    void *msgs[MOVED];
    size_t len;
    for (size_t i = 0; i < MOVED; i++) {
        if (hop_recv(from, 0, &msgs[i], &len) != HOP_OK)
            _exit(23);
        ((unsigned char *)msgs[i])[LEN - 1] ^= FLIP;
    }
    static const hop__io hook = {
        .openat = h_openat,
        .close = NULL,
        .pwritev = h_pwritev,
        .pread = NULL,
        .ftruncate = h_ftruncate,
        .unlinkat = h_unlinkat,
        .fdatasync = h_fdatasync,
        .fsync = h_fsync,
        .renameat = h_renameat,
    };
    hop__io io = hook;
    io.close = hop__io_system.close;
    io.pread = hop__io_system.pread;
    hop__io_set(&io);
    armed = true;
    hop_err err = hop_move(from, to, msgs, MOVED);
    armed = false;
    if (err == HOP_OK)
        _exit(calls >= target ? 2 : 0); /* 2: a failure after the commit, absorbed */
    for (size_t i = MOVED; i-- > 0;) {
        ((unsigned char *)msgs[i])[LEN - 1] ^= FLIP;
        hop_requeue(from, msgs[i], LEN);
    }
    if (fail_instead) {
        hop__io_set(NULL);
        hop_channel_close(from);
        hop_channel_close(to);
    }
    _exit(1);
}

/* After the child: each message in exactly one channel, in order, the
 * moved ones changed, and no stage or intent left. Returns whether the
 * move happened. */
static bool check_once(const tu_dir *d, bool durable)
{
    hop_limits l = disk_limits(durable);
    hop_channel *from = open_named(d, "from", l), *to = open_named(d, "to", l);
    uint64_t ids[64];
    bool changed[64];
    size_t n = drain(from, ids, changed, 64);
    bool moved = n == FROM_IDS - MOVED;
    if (moved)
        assert_ids(ids, n, MOVED, FROM_IDS);
    else
        assert_ids(ids, n, 0, FROM_IDS);
    for (size_t i = 0; i < n; i++)
        assert_false(changed[i]);
    n = drain(to, ids, changed, 64);
    assert_int_equal(n, TO_IDS + (moved ? MOVED : 0));
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(ids[i], i < TO_IDS ? TO_BASE + i : i - TO_IDS);
        assert_int_equal(changed[i], i >= TO_IDS);
    }
    assert_int_equal(hop_channel_close(from), HOP_OK);
    assert_int_equal(hop_channel_close(to), HOP_OK);
    char path[PATH_MAX], dir[PATH_MAX];
    tu_join(dir, d->data, "from");
    tu_join(path, dir, "moving.hqs");
    assert_false(tu_exists(path));
    tu_join(path, dir, "moving.hqm");
    assert_false(tu_exists(path));
    return moved;
}

static void reset_dirs(const tu_dir *d)
{
    char dir[PATH_MAX];
    tu_join(dir, d->data, "from");
    tu_rmtree(dir);
    tu_join(dir, d->data, "to");
    tu_rmtree(dir);
}

/* Die (or fail) at call 1, 2, ... of the move until a move gets through
 * untouched. Returns the number of calls a whole move made. */
static int sweep(const tu_dir *d, bool durable, bool fail, bool die_after)
{
    int moved = 0, kept = 0;
    for (int k = 1; k < 200; k++) {
        reset_dirs(d);
        fflush(NULL);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            target = k;
            fail_instead = fail;
            after = die_after;
            child(d, durable);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        int code = WEXITSTATUS(status);
        assert_true(code == 0 || code == 1 || code == 2 || code == 7);
        bool happened = check_once(d, durable);
        assert_true((code != 0 && code != 2) || happened); /* HOP_OK means moved */
        assert_true(code != 1 || !happened);               /* a refusal means not moved */
        happened ? moved++ : kept++;
        if (code == 0) {
            assert_true(moved > 0 && kept > 0); /* both sides of the commit were hit */
            print_message("sweep: %d calls, %d runs moved, %d kept\n", k - 1, moved, kept);
            return k - 1;
        }
    }
    fail_msg("the sweep did not end");
    return 0;
}

static void test_move_crash_before_each_call(void **state)
{
    int calls_made = sweep(*state, false, false, false);
    assert_true(calls_made >= 5); /* stage, intent, rename, syncs, removal */
}

static void test_move_crash_after_each_call(void **state)
{
    sweep(*state, false, false, true);
}

static void test_move_crash_durable(void **state)
{
    sweep(*state, true, false, false);
    sweep(*state, true, false, true);
}

static void test_move_fail_each_call(void **state)
{
    sweep(*state, false, true, false);
}

/* A damaged intent (a crash while it was written) is a move that did not
 * commit: the open removes it and the stage, and keeps the records. */
static void test_move_damaged_intent(void **state)
{
    const tu_dir *d = *state;
    hop_channel *from = open_named(d, "from", disk_limits(false));
    send_ids(from, 0, 4);
    assert_int_equal(hop_channel_close(from), HOP_OK);
    char dir[PATH_MAX], path[PATH_MAX];
    tu_join(dir, d->data, "from");
    tu_join(path, dir, "moving.hqm");
    tu_write_file(path, "HOPM\1\0\0\0\1\0\0\0", 12); /* torn: no entries, no checksum */
    tu_join(path, dir, "moving.hqs");
    tu_write_file(path, "junk", 4);
    from = open_named(d, "from", disk_limits(false));
    uint64_t ids[8];
    bool changed[8];
    assert_ids(ids, drain(from, ids, changed, 8), 0, 4);
    assert_false(tu_exists(path));
    assert_int_equal(hop_channel_close(from), HOP_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_move_in_order, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_from_memory, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_refused, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_crash_before_each_call, tu_dir_setup,
                                        tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_crash_after_each_call, tu_dir_setup,
                                        tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_crash_durable, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_fail_each_call, tu_dir_setup, tu_dir_teardown),
        cmocka_unit_test_setup_teardown(test_move_damaged_intent, tu_dir_setup, tu_dir_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
