/* test_journal.c - tests of core/src/journal.c: the consumed-records
 * journal byte by byte as journal.c documents it, reading it back (order,
 * duplicates, torn and damaged entries, foreign headers), and the failure
 * rules of rewrite (atomic: the old journal survives any failing step) and
 * append (a failed append leaves *size alone and is overwritten by the
 * next). Faults go in through the io table of io.h. Each test works in its
 * own temp dir, which stands for a channel directory. */
#include "test_util.h"

#include "crc32c.h"
#include "io.h"
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- helpers ---- */

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
    put_le32(p, (uint32_t)v);
    put_le32(p + 4, (uint32_t)(v >> 32));
}

/* The test's directory, standing for a channel directory. */
static int open_dir(const tu_dir *d)
{
    int fd = open(d->data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(fd >= 0);
    return fd;
}

static void journal_path(const tu_dir *d, char out[PATH_MAX])
{
    tu_join(out, d->data, HOP__JOURNAL_NAME);
}

static void tmp_path(const tu_dir *d, char out[PATH_MAX])
{
    tu_join(out, d->data, HOP__JOURNAL_TMP_NAME);
}

/* The whole of path (new, free()), its length in *len; NULL if missing. */
static unsigned char *slurp_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    unsigned char *buf = malloc((size_t)st.st_size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

static uint64_t file_size(const char *path)
{
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (uint64_t)st.st_size;
}

static void cut_file(const char *path, uint64_t len)
{
    assert_int_equal(truncate(path, (off_t)len), 0);
}

/* Rewrite the journal of dirfd to entries with the real system calls and
 * close the descriptor it returns. OUT: the journal's size. */
static uint64_t write_journal(int dirfd, const hop__jentry *e, size_t n)
{
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, e, n, &fd, &size), HOP_OK);
    assert_true(fd >= 0);
    assert_true(size == HOP__JOURNAL_HEADER_SIZE + n * HOP__JOURNAL_ENTRY_SIZE);
    close(fd);
    return size;
}

static bool entry_equal(const hop__jentry *a, const hop__jentry *b)
{
    return a->kind == b->kind && a->seq == b->seq && a->off == b->off;
}

static void assert_entries(const hop__jentry *got, size_t ngot, const hop__jentry *want,
                           size_t nwant)
{
    if (ngot != nwant)
        fail_msg("%zu entries read, %zu expected", ngot, nwant);
    for (size_t i = 0; i < nwant; i++)
        if (!entry_equal(&got[i], &want[i]))
            fail_msg("entry %zu: kind %u seq %llu off %llu, expected kind %u seq %llu off %llu", i,
                     got[i].kind, (unsigned long long)got[i].seq, (unsigned long long)got[i].off,
                     want[i].kind, (unsigned long long)want[i].seq,
                     (unsigned long long)want[i].off);
}

/* Read the journal and check it holds exactly starts and done, with no
 * damage or tear unless told. */
static void assert_journal(int dirfd, const hop__jentry *starts, size_t nstarts,
                           const hop__jentry *done, size_t ndone, size_t damaged, bool torn)
{
    hop__jstate s;
    memset(&s, 0xA5, sizeof s);
    assert_int_equal(hop__journal_read(dirfd, &s), HOP_OK);
    assert_entries(s.starts, s.nstarts, starts, nstarts);
    assert_entries(s.done, s.ndone, done, ndone);
    assert_int_equal(s.damaged, damaged);
    assert_int_equal(s.torn, torn);
    hop__journal_state_release(&s);
}

#define START(seq, off) ((hop__jentry){HOP__J_START, (seq), (off)})
#define DONE(seq, off) ((hop__jentry){HOP__J_DONE, (seq), (off)})
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* ---- the io hook: the real table with one call replaced ---- */

static hop__io hooked;
static int hook_errno;  /* errno of the injected failure */
static int hook_calls;  /* calls of the replaced function */
static bool hook_armed; /* the replaced function misbehaves */

static void hook(void)
{
    hooked = hop__io_system;
    hook_errno = EIO;
    hook_calls = 0;
    hook_armed = true;
    hop__io_set(&hooked);
}

static int fail_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
    hook_calls++;
    if (hook_armed) {
        errno = hook_errno;
        return -1;
    }
    return hop__io_system.renameat(olddirfd, oldpath, newdirfd, newpath);
}

static int fail_fdatasync(int fd)
{
    hook_calls++;
    if (hook_armed) {
        errno = hook_errno;
        return -1;
    }
    return hop__io_system.fdatasync(fd);
}

static int fail_fsync(int fd)
{
    hook_calls++;
    if (hook_armed) {
        errno = hook_errno;
        return -1;
    }
    return hop__io_system.fsync(fd);
}

static int fail_openat(int dirfd, const char *path, int flags, mode_t mode)
{
    hook_calls++;
    if (hook_armed) {
        errno = hook_errno;
        return -1;
    }
    return hop__io_system.openat(dirfd, path, flags, mode);
}

static ssize_t fail_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    hook_calls++;
    if (hook_armed) {
        errno = hook_errno;
        return -1;
    }
    return hop__io_system.pwritev(fd, iov, n, off);
}

static int fail_ftruncate(int fd, off_t len)
{
    (void)fd;
    (void)len;
    errno = EIO;
    return -1;
}

/* Writes the first half of the first call's bytes, fails every call after. */
static ssize_t half_then_fail_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (!hook_armed)
        return hop__io_system.pwritev(fd, iov, n, off);
    if (hook_calls++ > 0) {
        errno = hook_errno;
        return -1;
    }
    assert_int_equal(n, 1);
    struct iovec half = {iov[0].iov_base, iov[0].iov_len / 2};
    return hop__io_system.pwritev(fd, &half, 1, off);
}

/* Writes at most 7 bytes a call, and fails the first call with EINTR. */
static ssize_t dribble_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (hook_calls++ == 0) {
        errno = EINTR;
        return -1;
    }
    assert_int_equal(n, 1);
    struct iovec part = {iov[0].iov_base, iov[0].iov_len < 7 ? iov[0].iov_len : 7};
    return hop__io_system.pwritev(fd, &part, 1, off);
}

/* Claims to have written nothing. */
static ssize_t zero_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    (void)fd;
    (void)iov;
    (void)n;
    (void)off;
    hook_calls++;
    return 0;
}

static int journal_setup(void **state)
{
    hop__io_set(NULL);
    return tu_dir_setup(state);
}

static int journal_teardown(void **state)
{
    hop__io_set(NULL);
    return tu_dir_teardown(state);
}

/* ---- layout ---- */

static void test_entry_layout(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    const hop__jentry e[] = {
        START(5, 100),
        DONE(0x0102030405060708ull, 0x1122334455667788ull),
        START(UINT64_MAX - 1, UINT64_MAX),
    };
    uint64_t size = write_journal(dirfd, e, COUNT(e));

    char path[PATH_MAX];
    journal_path(d, path);
    size_t len;
    unsigned char *b = slurp_file(path, &len);
    assert_non_null(b);
    assert_int_equal(len, 16 + 3 * 32);
    assert_true(size == len);

    static const unsigned char header[16] = {'H', 'O', 'P', 'C', 1, 0, 0, 0,
                                             0,   0,   0,   0,   0, 0, 0, 0};
    assert_memory_equal(b, header, 16);

    /* the second entry spelled out byte by byte: little-endian throughout */
    static const unsigned char second[28] = {
        'H',  'O',  'P',  'D',  2,    0,    0,    0,    0x08, 0x07, 0x06, 0x05, 0x04, 0x03,
        0x02, 0x01, 0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0,    0,    0,    0};
    assert_memory_equal(b + 16 + 32, second, sizeof second);

    for (size_t i = 0; i < COUNT(e); i++) {
        const unsigned char *p = b + 16 + 32 * i;
        assert_int_equal(le32(p), 0x44504F48u);
        assert_int_equal(le32(p + 4), e[i].kind);
        assert_true(le64(p + 8) == e[i].seq);
        assert_true(le64(p + 16) == e[i].off);
        assert_int_equal(le32(p + 24), 0);
        assert_int_equal(le32(p + 28), hop__crc32c(0, p, 28));
    }
    /* and the CRC is not a constant: it depends on the bytes before it */
    assert_int_not_equal(le32(b + 16 + 28), le32(b + 16 + 32 + 28));
    free(b);

    /* nothing else is left in the directory: no temporary file */
    assert_int_equal(tu_count_entries(d->data), 1);
    close(dirfd);
}

/* An empty journal is just the header. */
static void test_empty_rewrite_is_header_only(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    assert_true(write_journal(dirfd, NULL, 0) == 16);
    char path[PATH_MAX];
    journal_path(d, path);
    assert_true(file_size(path) == 16);
    assert_journal(dirfd, NULL, 0, NULL, 0, 0, false);
    close(dirfd);
}

/* ---- reading back ---- */

static void test_round_trip_sorted(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    const hop__jentry e[] = {
        START(9, 10),
        DONE(3, 50),
        START(2, 16),
        DONE(3, 20),
        DONE(1, 5),
        DONE(3, 20),
        /* a duplicate */ START(4, UINT64_MAX),
        DONE(9, 7),
        DONE(1, 5),
    };
    write_journal(dirfd, e, COUNT(e));

    const hop__jentry starts[] = {START(2, 16), START(4, UINT64_MAX), START(9, 10)};
    const hop__jentry done[] = {DONE(1, 5), DONE(3, 20), DONE(3, 50), DONE(9, 7)};
    assert_journal(dirfd, starts, COUNT(starts), done, COUNT(done), 0, false);

    hop__jstate s;
    assert_int_equal(hop__journal_read(dirfd, &s), HOP_OK);
    assert_true(hop__journal_start_of(&s, 2) == 16);
    assert_true(hop__journal_start_of(&s, 4) == UINT64_MAX);
    assert_true(hop__journal_start_of(&s, 9) == 10);
    /* absent: 0, below, between and above the present ones */
    assert_true(hop__journal_start_of(&s, 0) == 0);
    assert_true(hop__journal_start_of(&s, 1) == 0);
    assert_true(hop__journal_start_of(&s, 3) == 0);
    assert_true(hop__journal_start_of(&s, 5) == 0);
    assert_true(hop__journal_start_of(&s, 10) == 0);
    assert_true(hop__journal_start_of(&s, UINT64_MAX) == 0);
    hop__journal_state_release(&s);
    assert_null(s.starts);
    assert_int_equal(s.nstarts, 0);

    /* the empty state answers 0 too */
    hop__jstate empty;
    memset(&empty, 0, sizeof empty);
    assert_true(hop__journal_start_of(&empty, 9) == 0);
    close(dirfd);
}

/* Several STARTs of one seq: the last one written wins, whether it is
 * larger or smaller, in the rewrite or appended after it. */
static void test_last_start_wins(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    const hop__jentry e[] = {START(7, 100), START(8, 50), START(7, 200)};
    int fd;
    uint64_t size;
    assert_int_equal(hop__journal_rewrite(dirfd, e, COUNT(e), &fd, &size), HOP_OK);
    const hop__jentry want1[] = {START(7, 200), START(8, 50)};
    assert_journal(dirfd, want1, COUNT(want1), NULL, 0, 0, false);

    const hop__jentry appended[] = {START(8, 400), START(7, 30), START(6, 1)};
    for (size_t i = 0; i < COUNT(appended); i++)
        assert_int_equal(hop__journal_append(fd, &size, &appended[i], 1), HOP_OK);
    const hop__jentry want2[] = {START(6, 1), START(7, 30), START(8, 400)};
    assert_journal(dirfd, want2, COUNT(want2), NULL, 0, 0, false);

    hop__jstate s;
    assert_int_equal(hop__journal_read(dirfd, &s), HOP_OK);
    assert_true(hop__journal_start_of(&s, 7) == 30);
    hop__journal_state_release(&s);
    close(fd);
    close(dirfd);
}

/* Appends after a rewrite land at *size, which grows by one entry each. */
static void test_appends_after_rewrite(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    const hop__jentry e[] = {START(1, 16), DONE(1, 64)};
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, e, COUNT(e), &fd, &size), HOP_OK);
    char path[PATH_MAX];
    journal_path(d, path);

    const hop__jentry more[] = {DONE(1, 32), DONE(2, 16), START(2, 48), DONE(1, 64)};
    for (size_t i = 0; i < COUNT(more); i++) {
        uint64_t before = size;
        assert_int_equal(hop__journal_append(fd, &size, &more[i], 1), HOP_OK);
        assert_true(size == before + 32);
        assert_true(file_size(path) == size);
    }
    const hop__jentry starts[] = {START(1, 16), START(2, 48)};
    const hop__jentry done[] = {DONE(1, 32), DONE(1, 64), DONE(2, 16)};
    assert_journal(dirfd, starts, COUNT(starts), done, COUNT(done), 0, false);
    close(fd);
    close(dirfd);
}

/* A file cut anywhere inside its last entry: torn, every whole entry kept. */
static void test_torn_append_keeps_whole_entries(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    const hop__jentry e[] = {START(3, 16), DONE(3, 80)};
    const hop__jentry last = DONE(3, 160);
    char path[PATH_MAX];
    journal_path(d, path);
    for (uint64_t cut = 1; cut < 32; cut++) {
        int fd;
        uint64_t size;
        assert_int_equal(hop__journal_rewrite(dirfd, e, COUNT(e), &fd, &size), HOP_OK);
        const hop__jentry appended = DONE(3, 48);
        assert_int_equal(hop__journal_append(fd, &size, &appended, 1), HOP_OK);
        assert_int_equal(hop__journal_append(fd, &size, &last, 1), HOP_OK);
        close(fd);
        cut_file(path, size - 32 + cut);

        const hop__jentry starts[] = {START(3, 16)};
        const hop__jentry done[] = {DONE(3, 48), DONE(3, 80)};
        assert_journal(dirfd, starts, 1, done, COUNT(done), 0, true);
    }
    close(dirfd);
}

/* A header cut short: nothing can be read; damaged and torn. */
static void test_torn_header(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(3, 16)};
    for (uint64_t cut = 1; cut < 16; cut++) {
        write_journal(dirfd, e, COUNT(e));
        cut_file(path, cut);
        hop__jstate s;
        assert_int_equal(hop__journal_read(dirfd, &s), HOP_OK);
        assert_int_equal(s.nstarts + s.ndone, 0);
        assert_true(s.damaged > 0);
        assert_true(s.torn);
        hop__journal_state_release(&s);
    }
    close(dirfd);
}

/* Any byte of one entry in the middle flipped: that entry alone is
 * ignored and counted, the others are kept. */
static void test_damaged_entry_alone_ignored(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(1, 16), DONE(1, 40), DONE(1, 90), START(2, 30), DONE(2, 60)};
    const size_t victim = 2; /* DONE(1, 90) */
    const hop__jentry starts[] = {START(1, 16), START(2, 30)};
    const hop__jentry done[] = {DONE(1, 40), DONE(2, 60)};
    static const unsigned char masks[] = {0x01, 0x80, 0xFF};
    for (uint64_t byte = 0; byte < 32; byte++) {
        for (size_t m = 0; m < COUNT(masks); m++) {
            write_journal(dirfd, e, COUNT(e));
            tu_flip_byte(path, 16 + 32 * victim + byte, masks[m]);
            assert_journal(dirfd, starts, COUNT(starts), done, COUNT(done), 1, false);
        }
    }
    close(dirfd);
}

/* A well-formed entry (right magic and CRC) of an unknown kind is damage
 * too, not a third kind of entry. */
static void test_unknown_kind_is_damaged(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(1, 16), DONE(1, 40)};
    uint64_t size = write_journal(dirfd, e, COUNT(e));
    static const uint32_t kinds[] = {0, 3, 0x0100};
    for (size_t k = 0; k < COUNT(kinds); k++) {
        unsigned char entry[32] = {0};
        put_le32(entry, 0x44504F48u);
        put_le32(entry + 4, kinds[k]);
        put_le64(entry + 8, 1);
        put_le64(entry + 16, 200);
        put_le32(entry + 28, hop__crc32c(0, entry, 28));
        int fd = open(path, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, entry, sizeof entry, (off_t)(size + 32 * k)), 32);
        close(fd);
    }
    const hop__jentry starts[] = {START(1, 16)};
    const hop__jentry done[] = {DONE(1, 40)};
    assert_journal(dirfd, starts, 1, done, 1, COUNT(kinds), false);
    close(dirfd);
}

/* A wrong file magic or version: read as an empty journal, damaged. */
static void test_wrong_header_reads_empty(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(1, 16), DONE(1, 40)};
    struct {
        uint64_t offset;
        unsigned char mask;
    } flips[] = {
        {0, 0x01}, {1, 0x20}, {3, 0x80}, /* magic */
        {4, 0x03},                       /* version 2 */
        {4, 0x01},                       /* version 0 */
        {7, 0x01},                       /* version 0x01000001 */
    };
    for (size_t i = 0; i < COUNT(flips); i++) {
        write_journal(dirfd, e, COUNT(e));
        tu_flip_byte(path, flips[i].offset, flips[i].mask);
        hop__jstate s;
        memset(&s, 0xA5, sizeof s);
        assert_int_equal(hop__journal_read(dirfd, &s), HOP_OK);
        assert_int_equal(s.nstarts, 0);
        assert_int_equal(s.ndone, 0);
        assert_true(s.damaged > 0);
        assert_false(s.torn);
        assert_true(hop__journal_start_of(&s, 1) == 0);
        hop__journal_state_release(&s);
    }
    close(dirfd);
}

/* No journal: an empty one, HOP_OK; a leftover temporary file from a
 * rewrite that never finished is not read. */
static void test_missing_journal_is_empty(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    assert_journal(dirfd, NULL, 0, NULL, 0, 0, false);

    /* a whole, valid journal under the temporary name does not count */
    write_journal(dirfd, (hop__jentry[]){START(1, 16)}, 1);
    char path[PATH_MAX], tmp[PATH_MAX];
    journal_path(d, path);
    tmp_path(d, tmp);
    assert_int_equal(rename(path, tmp), 0);
    assert_journal(dirfd, NULL, 0, NULL, 0, 0, false);

    /* and the next rewrite replaces it */
    const hop__jentry e[] = {START(4, 16)};
    write_journal(dirfd, e, 1);
    assert_false(tu_exists(tmp));
    assert_journal(dirfd, e, 1, NULL, 0, 0, false);
    close(dirfd);
}

/* A journal that cannot be opened (not a missing one) is HOP_IO, errno set,
 * and the state empty. */
static void test_unreadable_journal_is_io(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    write_journal(dirfd, (hop__jentry[]){START(1, 16)}, 1);
    hook();
    hooked.openat = fail_openat;
    hook_errno = EACCES;
    hop__jstate s;
    memset(&s, 0xA5, sizeof s);
    errno = 0;
    assert_int_equal(hop__journal_read(dirfd, &s), HOP_IO);
    assert_int_equal(errno, EACCES);
    assert_int_equal(s.nstarts + s.ndone + s.damaged, 0);
    assert_null(s.starts);
    assert_null(s.done);
    hop__journal_state_release(&s);
    close(dirfd);
}

/* ---- rewriting ---- */

/* Rewrite over an existing journal with one system call failing: HOP_IO
 * with its errno, the old journal byte for byte as it was, no temporary
 * file left, the outputs untouched. Then, with the calls working again,
 * the rewrite goes through. */
static void rewrite_fails_atomically(const tu_dir *d, void (*replace)(void), int err,
                                     bool journal_before)
{
    int dirfd = open_dir(d);
    char path[PATH_MAX], tmp[PATH_MAX];
    journal_path(d, path);
    tmp_path(d, tmp);
    const hop__jentry old[] = {START(1, 16), DONE(1, 64), START(2, 16)};
    if (journal_before)
        write_journal(dirfd, old, COUNT(old));
    size_t old_len = 0;
    unsigned char *before = slurp_file(path, &old_len);
    assert_true((before != NULL) == journal_before);

    hook();
    replace();
    hook_errno = err;
    const hop__jentry neu[] = {START(5, 16), DONE(5, 32)};
    int fd = -7;
    uint64_t size = 12345;
    errno = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, neu, COUNT(neu), &fd, &size), HOP_IO);
    assert_int_equal(errno, err);
    assert_true(hook_calls > 0); /* the fault was reached */
    assert_int_equal(fd, -7);
    assert_true(size == 12345);
    hop__io_set(NULL);

    assert_false(tu_exists(tmp));
    size_t after_len = 0;
    unsigned char *after = slurp_file(path, &after_len);
    assert_true((after != NULL) == journal_before);
    if (journal_before) {
        assert_int_equal(after_len, old_len);
        assert_memory_equal(after, before, old_len);
        const hop__jentry starts[] = {START(1, 16), START(2, 16)};
        const hop__jentry done[] = {DONE(1, 64)};
        assert_journal(dirfd, starts, COUNT(starts), done, COUNT(done), 0, false);
    } else {
        assert_journal(dirfd, NULL, 0, NULL, 0, 0, false);
    }
    free(before);
    free(after);

    write_journal(dirfd, neu, COUNT(neu));
    assert_journal(dirfd, neu, 1, neu + 1, 1, 0, false);
    assert_false(tu_exists(tmp));
    close(dirfd);
}

static void replace_renameat(void)
{
    hooked.renameat = fail_renameat;
}

static void replace_fdatasync(void)
{
    hooked.fdatasync = fail_fdatasync;
}

static void replace_pwritev(void)
{
    hooked.pwritev = fail_pwritev;
}

static void replace_pwritev_half(void)
{
    hooked.pwritev = half_then_fail_pwritev;
}

static void replace_pwritev_zero(void)
{
    hooked.pwritev = zero_pwritev;
}

static void replace_openat(void)
{
    hooked.openat = fail_openat;
}

static void test_rewrite_atomic_when_rename_fails(void **state)
{
    rewrite_fails_atomically(*state, replace_renameat, EIO, true);
}

static void test_rewrite_atomic_when_sync_fails(void **state)
{
    rewrite_fails_atomically(*state, replace_fdatasync, EIO, true);
}

static void test_rewrite_atomic_when_write_fails(void **state)
{
    rewrite_fails_atomically(*state, replace_pwritev, ENOSPC, true);
}

static void test_rewrite_atomic_when_write_is_short(void **state)
{
    rewrite_fails_atomically(*state, replace_pwritev_half, ENOSPC, true);
}

/* pwritev returning 0 is no progress: EIO rather than a loop. */
static void test_rewrite_atomic_when_write_makes_no_progress(void **state)
{
    rewrite_fails_atomically(*state, replace_pwritev_zero, EIO, true);
}

static void test_rewrite_atomic_when_create_fails(void **state)
{
    rewrite_fails_atomically(*state, replace_openat, EMFILE, true);
}

/* No journal before: a failed rewrite leaves none (and no temporary). */
static void test_rewrite_failing_without_journal(void **state)
{
    rewrite_fails_atomically(*state, replace_renameat, EIO, false);
}

/* A failing directory sync comes after the rename: the rewrite has
 * happened, and says so (journal.c: the old journal is gone either way). */
static void test_rewrite_ignores_directory_sync_failure(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    write_journal(dirfd, (hop__jentry[]){START(1, 16)}, 1);
    hook();
    hooked.fsync = fail_fsync;
    const hop__jentry e[] = {START(9, 16)};
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, e, 1, &fd, &size), HOP_OK);
    assert_int_equal(hook_calls, 1);
    hop__io_set(NULL);
    assert_true(fd >= 0);
    close(fd);
    assert_journal(dirfd, e, 1, NULL, 0, 0, false);
    close(dirfd);
}

/* Short writes and EINTR are retried until the journal is whole. */
static void test_rewrite_completes_short_writes(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    hook();
    hooked.pwritev = dribble_pwritev;
    const hop__jentry e[] = {START(1, 16), DONE(1, 48), DONE(1, 96)};
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, e, COUNT(e), &fd, &size), HOP_OK);
    assert_true(size == 16 + 3 * 32);
    assert_true(hook_calls >= 1 + (int)((size + 6) / 7));
    const hop__jentry appended = DONE(1, 200);
    assert_int_equal(hop__journal_append(fd, &size, &appended, 1), HOP_OK);
    hop__io_set(NULL);
    close(fd);
    const hop__jentry done[] = {DONE(1, 48), DONE(1, 96), DONE(1, 200)};
    assert_journal(dirfd, e, 1, done, COUNT(done), 0, false);
    close(dirfd);
}

/* The descriptor a rewrite returns is the new journal (not the temporary
 * name's old inode, not a stale one), *size long, and appends through it
 * are read back. A second rewrite replaces the file: appends to the first
 * descriptor no longer reach the journal. */
static void test_rewrite_returns_journal_for_appending(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    write_journal(dirfd, (hop__jentry[]){START(1, 16), DONE(1, 32)}, 2);

    const hop__jentry e[] = {START(2, 16)};
    int fd = -1;
    uint64_t size = 0;
    assert_int_equal(hop__journal_rewrite(dirfd, e, 1, &fd, &size), HOP_OK);
    struct stat by_fd, by_name;
    assert_int_equal(fstat(fd, &by_fd), 0);
    assert_int_equal(stat(path, &by_name), 0);
    assert_true(by_fd.st_ino == by_name.st_ino && by_fd.st_dev == by_name.st_dev);
    assert_true((uint64_t)by_fd.st_size == size);
    int mode = fcntl(fd, F_GETFL) & O_ACCMODE;
    assert_true(mode == O_WRONLY || mode == O_RDWR);

    const hop__jentry a = DONE(2, 64);
    assert_int_equal(hop__journal_append(fd, &size, &a, 1), HOP_OK);
    assert_journal(dirfd, e, 1, &a, 1, 0, false);

    int fd2 = -1;
    uint64_t size2 = 0;
    const hop__jentry e2[] = {START(3, 16)};
    assert_int_equal(hop__journal_rewrite(dirfd, e2, 1, &fd2, &size2), HOP_OK);
    assert_int_not_equal(fd2, fd);
    const hop__jentry stale = DONE(3, 99);
    assert_int_equal(hop__journal_append(fd, &size, &stale, 1), HOP_OK); /* the old inode */
    assert_journal(dirfd, e2, 1, NULL, 0, 0, false);
    close(fd);
    close(fd2);
    close(dirfd);
}

/* ---- appending ---- */

static ssize_t counting_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    hook_calls++;
    return hop__io_system.pwritev(fd, iov, n, off);
}

/* Several entries go in one write (hop_free_all() consumes a batch so),
 * and read back as if appended one by one. A write that fails half way
 * counts none of them and is cut off; more than HOP__JOURNAL_APPEND_MAX at
 * once is refused with nothing written. */
static void test_append_many_in_one_write(void **state)
{
    const tu_dir *d = *state;
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(1, 16)};
    int fd;
    uint64_t size;
    assert_int_equal(hop__journal_rewrite(dirfd, e, 1, &fd, &size), HOP_OK);
    uint64_t before = size;

    hook();
    hooked.pwritev = counting_pwritev;
    hook_calls = 0;
    const hop__jentry three[] = {DONE(1, 40), DONE(1, 80), DONE(1, 120)};
    assert_int_equal(hop__journal_append(fd, &size, three, COUNT(three)), HOP_OK);
    assert_int_equal(hook_calls, 1);
    assert_true(size == before + 3 * HOP__JOURNAL_ENTRY_SIZE);
    assert_true(file_size(path) == size);

    hooked.pwritev = half_then_fail_pwritev;
    hook_armed = true;
    hook_calls = 0;
    const hop__jentry lost[] = {DONE(1, 160), DONE(1, 200), DONE(1, 240)};
    uint64_t good = size;
    assert_int_equal(hop__journal_append(fd, &size, lost, COUNT(lost)), HOP_IO);
    assert_true(size == good);
    assert_true(file_size(path) == good);
    hook_armed = false;

    hop__jentry many[HOP__JOURNAL_APPEND_MAX + 1];
    for (size_t i = 0; i < COUNT(many); i++)
        many[i] = DONE(2, 16 + 32 * i);
    errno = 0;
    assert_int_equal(hop__journal_append(fd, &size, many, COUNT(many)), HOP_IO);
    assert_int_equal(errno, EINVAL);
    assert_true(size == good && file_size(path) == good);
    assert_int_equal(hop__journal_append(fd, &size, many, HOP__JOURNAL_APPEND_MAX), HOP_OK);
    hop__io_set(NULL);

    hop__jentry done[3 + HOP__JOURNAL_APPEND_MAX];
    memcpy(done, three, sizeof three);
    memcpy(done + 3, many, HOP__JOURNAL_APPEND_MAX * sizeof many[0]);
    assert_journal(dirfd, e, 1, done, COUNT(done), 0, false);
    close(fd);
    close(dirfd);
}

/* A failed append: HOP_IO with errno, *size unchanged; whatever part of the
 * entry reached the file is cut off again, so the file is as long as
 * *size says (the budget counts that); if the cut fails too, the part
 * reads as a torn tail, and the next append overwrites it. */
static void append_fails_then_recovers(const tu_dir *d, bool partial, bool cut_fails)
{
    int dirfd = open_dir(d);
    char path[PATH_MAX];
    journal_path(d, path);
    const hop__jentry e[] = {START(1, 16)};
    int fd;
    uint64_t size;
    assert_int_equal(hop__journal_rewrite(dirfd, e, 1, &fd, &size), HOP_OK);
    const hop__jentry first = DONE(1, 40);
    assert_int_equal(hop__journal_append(fd, &size, &first, 1), HOP_OK);
    uint64_t good = size;

    hook();
    hooked.pwritev = partial ? half_then_fail_pwritev : fail_pwritev;
    if (cut_fails)
        hooked.ftruncate = fail_ftruncate;
    hook_errno = ENOSPC;
    const hop__jentry lost = DONE(1, 80);
    errno = 0;
    assert_int_equal(hop__journal_append(fd, &size, &lost, 1), HOP_IO);
    assert_int_equal(errno, ENOSPC);
    assert_true(size == good);
    hop__io_set(NULL);

    /* what a reader sees now: only the whole entries */
    bool left = partial && cut_fails;
    assert_true(file_size(path) == good + (left ? 16 : 0));
    assert_journal(dirfd, e, 1, &first, 1, 0, left);

    const hop__jentry next = DONE(1, 120);
    assert_int_equal(hop__journal_append(fd, &size, &next, 1), HOP_OK);
    assert_true(size == good + 32);
    assert_true(file_size(path) == size);
    const hop__jentry done[] = {DONE(1, 40), DONE(1, 120)};
    assert_journal(dirfd, e, 1, done, COUNT(done), 0, false);
    close(fd);
    close(dirfd);
}

static void test_append_failure_leaves_size(void **state)
{
    append_fails_then_recovers(*state, false, false);
}

static void test_partial_append_is_cut_off(void **state)
{
    append_fails_then_recovers(*state, true, false);
}

static void test_partial_append_is_overwritten(void **state)
{
    append_fails_then_recovers(*state, true, true);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, journal_setup, journal_teardown)
    const struct CMUnitTest tests[] = {
        T(test_entry_layout),
        T(test_empty_rewrite_is_header_only),
        T(test_round_trip_sorted),
        T(test_last_start_wins),
        T(test_appends_after_rewrite),
        T(test_torn_append_keeps_whole_entries),
        T(test_torn_header),
        T(test_damaged_entry_alone_ignored),
        T(test_unknown_kind_is_damaged),
        T(test_wrong_header_reads_empty),
        T(test_missing_journal_is_empty),
        T(test_unreadable_journal_is_io),
        T(test_rewrite_atomic_when_rename_fails),
        T(test_rewrite_atomic_when_sync_fails),
        T(test_rewrite_atomic_when_write_fails),
        T(test_rewrite_atomic_when_write_is_short),
        T(test_rewrite_atomic_when_write_makes_no_progress),
        T(test_rewrite_atomic_when_create_fails),
        T(test_rewrite_failing_without_journal),
        T(test_rewrite_ignores_directory_sync_failure),
        T(test_rewrite_completes_short_writes),
        T(test_rewrite_returns_journal_for_appending),
        T(test_append_many_in_one_write),
        T(test_append_failure_leaves_size),
        T(test_partial_append_is_cut_off),
        T(test_partial_append_is_overwritten),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
