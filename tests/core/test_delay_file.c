/* test_delay_file.c - tests of core/src/delay_file.c: names, records
 * written and read back in order, the progress mark, the scan at open (a
 * torn tail cut, a corrupt record skipped, a handed-on file done, a file
 * of another version left alone), and a failed write that leaves the file
 * as it was (or removes the file it created). */
#include "test_util.h"

#include "crc32c.h"
#include "delay_file.h"
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    tu_dir d; /* first: tu_dir_teardown() sees a tu_dir */
    int dirfd;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    tu_tmpdir(f->d.data);
    tu_join(f->d.chan, f->d.data, "ch");
    tu_log_capture();
    mkdir(f->d.chan, 0700);
    f->dirfd = open(f->d.chan, O_RDONLY | O_DIRECTORY);
    *state = f;
    return f->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    close(f->dirfd);
    tu_rmtree(f->d.data);
    free(f);
    return 0;
}

static const hop__delay_id SLOT = {HOP__DELAY_NEAR, 1000};

static void append(int dirfd, hop__delay_id id, const char *text, uint64_t due)
{
    hop__delay_rec rec = {due, HOP__DELAY_TAIL, (void *)text, strlen(text)};
    uint64_t added;
    assert_int_equal(hop__delay_file_append(dirfd, id, &rec, 1, false, &added), HOP_OK);
}

static void next_is(hop__delay_reader *r, const char *text, uint64_t due)
{
    hop__delay_rec rec;
    assert_int_equal(hop__delay_reader_next(r, &rec), HOP__DELAY_READ_OK);
    assert_int_equal(rec.due_ms, due);
    assert_int_equal(rec.len, strlen(text));
    assert_memory_equal(rec.data, text, rec.len);
    free(rec.data);
}

static void path_of(const fixture *f, hop__delay_id id, char path[PATH_MAX])
{
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_file_name(name, id);
    tu_join(path, f->d.chan, name);
}

static void test_names(void **state)
{
    (void)state;
    char name[HOP__DELAY_NAME_SIZE];
    hop__delay_id id = {HOP__DELAY_WINDOW, 0x123456789abcull}, back;
    hop__delay_file_name(name, id);
    assert_string_equal(name, "delay-w-0000123456789abc");
    assert_true(hop__delay_file_parse_name(name, &back));
    assert_int_equal(back.kind, HOP__DELAY_WINDOW);
    assert_int_equal(back.start, id.start);
    assert_true(hop__delay_file_parse_name("delay-n-00000000000003e8", &back));
    assert_int_equal(back.kind, HOP__DELAY_NEAR);
    assert_int_equal(back.start, 1000);
    assert_true(hop__delay_file_parse_name("delay-s-00000000000003e8", &back)); /* version 1 */
    assert_int_equal(back.kind, HOP__DELAY_SLOT);
    const char *bad[] = {
        "delay-x-00000000000003e8",  "delay-s-00000000000003e",  "delay-s-",
        "delay-s-00000000000003e8x", "delay-s-00000000000003E8", "00000000000000000001.hq"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(hop__delay_file_parse_name(bad[i], &back));
}

/* Records come back in the order written; the progress mark is where the
 * next read starts after a reopen. */
static void test_order_and_progress(void **state)
{
    fixture *f = *state;
    append(f->dirfd, SLOT, "one", 1001);
    hop__delay_rec two[2] = {{1002, HOP__DELAY_HEAD, "two", 3}, {1003, HOP__DELAY_TAIL, "", 0}};
    uint64_t added;
    assert_int_equal(hop__delay_file_append(f->dirfd, SLOT, two, 2, true, &added), HOP_OK);
    assert_int_equal(added, 2 * HOP__DELAY_RECORD_HEADER_SIZE + 3);
    hop__delay_reader r;
    assert_int_equal(hop__delay_reader_open(f->dirfd, SLOT, &r), HOP_OK);
    next_is(&r, "one", 1001);
    assert_true(hop__delay_reader_mark(&r, (hop__delay_mark){0, r.off}));
    hop__delay_reader_close(&r);

    assert_int_equal(hop__delay_reader_open(f->dirfd, SLOT, &r), HOP_OK);
    hop__delay_rec rec;
    assert_int_equal(hop__delay_reader_next(&r, &rec), HOP__DELAY_READ_OK);
    assert_int_equal(rec.kind, HOP__DELAY_HEAD);
    free(rec.data);
    next_is(&r, "", 1003);
    assert_int_equal(hop__delay_reader_next(&r, &rec), HOP__DELAY_READ_END);
    assert_true(hop__delay_reader_mark(&r, (hop__delay_mark){0, r.off}));
    hop__delay_reader_close(&r);

    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_OK);
    assert_int_equal(scan.records, 0);
    assert_true(scan.done);
}

/* The scan cuts a torn tail and counts a corrupt record apart; reading
 * skips the corrupt one. */
static void test_scan_torn_and_corrupt(void **state)
{
    fixture *f = *state;
    append(f->dirfd, SLOT, "aaaa", 1001);
    append(f->dirfd, SLOT, "bbbb", 1002);
    append(f->dirfd, SLOT, "cccc", 1003);
    char path[PATH_MAX];
    path_of(f, SLOT, path);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size - 1), 0);
    tu_flip_byte(path, HOP__DELAY_HEADER_SIZE + HOP__DELAY_RECORD_HEADER_SIZE, 0x01);
    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_OK);
    assert_int_equal(scan.records, 1);
    assert_int_equal(scan.corrupt, 1);
    assert_int_equal(scan.size, HOP__DELAY_HEADER_SIZE + 2 * (HOP__DELAY_RECORD_HEADER_SIZE + 4));
    hop__delay_reader r;
    assert_int_equal(hop__delay_reader_open(f->dirfd, SLOT, &r), HOP_OK);
    hop__delay_rec rec;
    assert_int_equal(hop__delay_reader_next(&r, &rec), HOP__DELAY_READ_CORRUPT);
    next_is(&r, "bbbb", 1002);
    assert_int_equal(hop__delay_reader_next(&r, &rec), HOP__DELAY_READ_END);
    hop__delay_reader_close(&r);
}

/* A file of another version (or with a bad header) is not read. */
static void test_other_version(void **state)
{
    fixture *f = *state;
    append(f->dirfd, SLOT, "x", 1001);
    char path[PATH_MAX];
    path_of(f, SLOT, path);
    tu_flip_byte(path, 8, 0x02); /* the version byte */
    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_IO);
    assert_int_equal(errno, EINVAL);
    assert_true(tu_exists(path));
}

/* Slots: a near file's 20 slots of 50 ms, a window's one; the end of a
 * slot is when its records go. */
static void test_slots(void **state)
{
    (void)state;
    hop__delay_id n = {HOP__DELAY_NEAR, 1000}, w = {HOP__DELAY_WINDOW, 60000};
    assert_int_equal(hop__delay_slot_of(n, 1000), 0);
    assert_int_equal(hop__delay_slot_of(n, 1049), 0);
    assert_int_equal(hop__delay_slot_of(n, 1050), 1);
    assert_int_equal(hop__delay_slot_of(n, 1999), 19);
    assert_int_equal(hop__delay_slot_of(n, 5000), 19); /* outside: the last */
    assert_int_equal(hop__delay_slot_of(n, 10), 0);
    assert_int_equal(hop__delay_slot_end(n, 1000), 1050);
    assert_int_equal(hop__delay_slot_end(n, 1999), 2000);
    assert_int_equal(hop__delay_slot_of(w, 119999), 0);
    assert_int_equal(hop__delay_slot_end(w, 61000), 120000);
}

/* The mark holds a slot and an offset; the scan counts as still to go the
 * records of later slots and those of the mark's slot from its offset,
 * wherever they lie, and says where the first is, the earliest due time
 * and whether due times ever fall. */
static void test_mark_with_slot(void **state)
{
    fixture *f = *state;
    append(f->dirfd, SLOT, "a", 1100); /* slot 2 */
    append(f->dirfd, SLOT, "b", 1500); /* slot 10 */
    append(f->dirfd, SLOT, "c", 1110); /* slot 2 */
    append(f->dirfd, SLOT, "d", 1000); /* slot 0 */
    uint64_t rec = HOP__DELAY_RECORD_HEADER_SIZE + 1, at_c = HOP__DELAY_HEADER_SIZE + 2 * rec;
    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_OK);
    assert_int_equal(scan.records, 4);
    assert_int_equal(scan.low, HOP__DELAY_HEADER_SIZE);
    assert_int_equal(scan.next_due, 1000);
    assert_false(scan.sorted);
    assert_int_equal(scan.last_due, 1000);

    hop__delay_reader r;
    assert_int_equal(hop__delay_reader_open(f->dirfd, SLOT, &r), HOP_OK);
    assert_true(hop__delay_reader_mark(&r, (hop__delay_mark){2, at_c}));
    hop__delay_reader_close(&r);
    assert_int_equal(hop__delay_reader_open(f->dirfd, SLOT, &r), HOP_OK);
    assert_int_equal(r.mark.slot, 2);
    assert_int_equal(r.mark.off, at_c);
    assert_int_equal(r.off, at_c);
    hop__delay_reader_close(&r);
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_OK);
    assert_int_equal(scan.records, 2); /* b (slot 10), c (slot 2, at the mark) */
    assert_int_equal(scan.low, HOP__DELAY_HEADER_SIZE + rec);
    assert_int_equal(scan.next_due, 1110);
    assert_false(scan.done);

    assert_true(hop__delay_pending(SLOT, (hop__delay_mark){2, at_c}, at_c, 1110));
    assert_false(hop__delay_pending(SLOT, (hop__delay_mark){2, at_c}, at_c - 1, 1110));
    assert_false(hop__delay_pending(SLOT, (hop__delay_mark){2, at_c}, 999999, 1000));
    assert_true(hop__delay_pending(SLOT, (hop__delay_mark){2, at_c}, 0, 1150));
}

/* Rewrite the version byte of file id's header, its checksum made good. */
static void set_version(const fixture *f, hop__delay_id id, unsigned char version)
{
    char path[PATH_MAX];
    path_of(f, id, path);
    int fd = open(path, O_RDWR);
    unsigned char h[HOP__DELAY_HEADER_SIZE];
    assert_int_equal(pread(fd, h, sizeof h, 0), sizeof h);
    h[8] = version;
    uint32_t crc = hop__crc32c(hop__crc32c(0, h, 12), h + 16, 8);
    for (int i = 0; i < 4; i++)
        h[12 + i] = (unsigned char)(crc >> (8 * i));
    assert_int_equal(pwrite(fd, h, sizeof h, 0), sizeof h);
    close(fd);
}

/* A slot file of version 1 is read, its mark an offset as version 1 wrote
 * it; a slot file cannot be of version 2, a near file not of version 1. */
static void test_versions(void **state)
{
    fixture *f = *state;
    hop__delay_id old = {HOP__DELAY_SLOT, 1000};
    append(f->dirfd, old, "x", 1001);
    append(f->dirfd, old, "y", 1002);
    append(f->dirfd, SLOT, "z", 2001);
    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, old, &scan), HOP_IO);
    assert_int_equal(errno, EINVAL);
    set_version(f, old, 1);
    hop__delay_reader r;
    assert_int_equal(hop__delay_reader_open(f->dirfd, old, &r), HOP_OK);
    next_is(&r, "x", 1001);
    assert_true(hop__delay_reader_mark(&r, (hop__delay_mark){0, r.off}));
    hop__delay_reader_close(&r);
    assert_int_equal(hop__delay_file_scan(f->dirfd, old, &scan), HOP_OK);
    assert_int_equal(scan.records, 1);
    assert_int_equal(scan.next_due, 1002);
    assert_true(scan.sorted);
    set_version(f, SLOT, 1);
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_IO);
    assert_int_equal(errno, EINVAL);
}

static int fail_writes;

static ssize_t failing_pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    if (fail_writes > 0 && --fail_writes == 0) {
        errno = ENOSPC;
        return -1;
    }
    return hop__io_system.pwritev(fd, iov, n, off);
}

/* A failed append stores nothing: the file is cut back, or removed if the
 * append created it. */
static void test_failed_append(void **state)
{
    fixture *f = *state;
    hop__io hooked = hop__io_system;
    hooked.pwritev = failing_pwritev;
    hop__io_set(&hooked);
    char path[PATH_MAX];
    path_of(f, SLOT, path);
    hop__delay_rec rec = {1001, HOP__DELAY_TAIL, "data", 4};
    uint64_t added;
    fail_writes = 2; /* the header goes, the record fails */
    assert_int_equal(hop__delay_file_append(f->dirfd, SLOT, &rec, 1, false, &added), HOP_IO);
    assert_false(tu_exists(path));
    append(f->dirfd, SLOT, "kept", 1001);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    hop__delay_rec two[2] = {rec, rec};
    fail_writes = 2; /* the first record goes, the second fails */
    assert_int_equal(hop__delay_file_append(f->dirfd, SLOT, two, 2, false, &added), HOP_IO);
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    hop__io_set(NULL);
    hop__delay_scan scan;
    assert_int_equal(hop__delay_file_scan(f->dirfd, SLOT, &scan), HOP_OK);
    assert_int_equal(scan.records, 1);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names), cmocka_unit_test(test_slots),
        T(test_mark_with_slot),       T(test_versions),
        T(test_order_and_progress),   T(test_scan_torn_and_corrupt),
        T(test_other_version),        T(test_failed_append),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
