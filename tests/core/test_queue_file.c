/* test_queue_file.c - tests of core/src/queue_file.c: file names, creating
 * and appending, and reading records back through the buffered reader. */
#include "test_util.h"

#include "queue_file.h"
#include "record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct fixture {
    tu_dir dir; /* dir.data is the directory the files go in */
    int dirfd;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    tu_tmpdir(fx->dir.data);
    fx->dirfd = open(fx->dir.data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    *state = fx;
    return fx->dirfd < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    close(fx->dirfd);
    tu_rmtree(fx->dir.data);
    free(fx);
    return 0;
}

static void file_path(const fixture *fx, uint64_t seq, char out[PATH_MAX])
{
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(seq, name);
    tu_join(out, fx->dir.data, name);
}

static uint64_t file_size(const fixture *fx, uint64_t seq)
{
    char path[PATH_MAX];
    struct stat st;
    file_path(fx, seq, path);
    return stat(path, &st) == 0 ? (uint64_t)st.st_size : UINT64_MAX;
}

/* ---- names ---- */

static void test_name_format(void **state)
{
    (void)state;
    char name[HOP__QFILE_NAME_SIZE];
    hop__qfile_name(0, name);
    assert_string_equal(name, "00000000000000000000.hq");
    hop__qfile_name(42, name);
    assert_string_equal(name, "00000000000000000042.hq");
    hop__qfile_name(UINT64_MAX, name);
    assert_string_equal(name, "18446744073709551615.hq");
    assert_int_equal(strlen(name) + 1, HOP__QFILE_NAME_SIZE);
}

static void test_name_round_trip_and_order(void **state)
{
    (void)state;
    tu_rng rng = {1};
    char prev[HOP__QFILE_NAME_SIZE] = "";
    uint64_t seq_prev = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t seq = i < 500 ? (uint64_t)i : seq_prev + tu_range(&rng, 1, UINT64_MAX / 2000);
        char name[HOP__QFILE_NAME_SIZE];
        hop__qfile_name(seq, name);
        uint64_t back = 0;
        assert_true(hop__qfile_parse_name(name, &back));
        assert_true(back == seq);
        if (i > 0)
            assert_true(strcmp(prev, name) < 0); /* names sort like sequence numbers */
        memcpy(prev, name, sizeof name);
        seq_prev = seq;
    }
}

static void test_parse_rejects_others(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        ".hq",
        "1.hq",
        "0000000000000000001.hq",   /* 19 digits */
        "000000000000000000001.hq", /* 21 digits */
        "00000000000000000001.hqx",
        "00000000000000000001.HQ",
        "00000000000000000001.h",
        "00000000000000000001",
        "00000000000000000001.hq~",
        "00000000000000000001.hq.tmp",
        "0000000000000000000a.hq",
        "+0000000000000000001.hq",
        " 0000000000000000001.hq",
        "-0000000000000000001.hq",
        "99999999999999999999.hq", /* above UINT64_MAX */
        "18446744073709551616.hq", /* UINT64_MAX + 1 */
        "notes.txt",
        "..",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint64_t seq = 777;
        if (hop__qfile_parse_name(bad[i], &seq))
            fail_msg("\"%s\" parsed as a queue file", bad[i]);
        assert_true(seq == 777);
    }
    uint64_t seq;
    assert_true(hop__qfile_parse_name("18446744073709551615.hq", &seq));
    assert_true(seq == UINT64_MAX);
}

/* ---- create and append ---- */

static void test_create_writes_header(void **state)
{
    fixture *fx = *state;
    hop__qfile *f = NULL;
    assert_int_equal(hop__qfile_create(fx->dirfd, 9, &f), HOP_OK);
    assert_non_null(f);
    assert_true(f->seq == 9);
    assert_true(f->size == HOP__FILE_HEADER_SIZE);
    assert_true(f->read_off == HOP__FILE_HEADER_SIZE);
    assert_true(f->write_fd >= 0);
    assert_int_equal(f->read_fd, -1);
    assert_false(f->sealed);
    assert_true(file_size(fx, 9) == HOP__FILE_HEADER_SIZE);

    char path[PATH_MAX];
    file_path(fx, 9, path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    unsigned char h[HOP__FILE_HEADER_SIZE];
    assert_int_equal(read(fd, h, sizeof h), sizeof h);
    close(fd);
    uint64_t seq;
    assert_true(hop__file_header_decode(h, &seq));
    assert_true(seq == 9);

    /* the same file twice: HOP_IO, EEXIST, and the first one is intact */
    hop__qfile *g = (hop__qfile *)(uintptr_t)1;
    errno = 0;
    assert_int_equal(hop__qfile_create(fx->dirfd, 9, &g), HOP_IO);
    assert_int_equal(errno, EEXIST);
    assert_ptr_equal(g, (hop__qfile *)(uintptr_t)1);
    assert_true(file_size(fx, 9) == HOP__FILE_HEADER_SIZE);

    hop__qfile_free(f);
    assert_true(file_size(fx, 9) == HOP__FILE_HEADER_SIZE); /* freeing keeps the file */
    assert_int_equal(hop__qfile_unlink(fx->dirfd, 9), 0);
    assert_true(file_size(fx, 9) == UINT64_MAX);
    errno = 0;
    assert_int_equal(hop__qfile_unlink(fx->dirfd, 9), -1);
    assert_int_equal(errno, ENOENT);
}

/* Append one record and publish it the way the channel does. */
static uint64_t append(hop__qfile *f, const void *payload, uint32_t len)
{
    uint64_t end = 0;
    bool torn = true;
    assert_int_equal(hop__qfile_append(f, payload, len, &end, &torn), HOP_OK);
    assert_false(torn);
    assert_true(end == f->written + HOP__RECORD_HEADER_SIZE + len);
    f->size = f->written = end;
    f->records++;
    return end;
}

/* Read the next record and move on, the way the channel does. */
static hop__msg *read_next(hop__qreader *r, const fixture *fx, hop__qfile *f, uint64_t avail)
{
    hop__msg *m = NULL;
    uint64_t next = 0;
    hop__read_result res =
        hop__qreader_read(r, fx->dirfd, f, f->read_off, avail, HOP_MAX_MESSAGE_BYTES, &m, &next);
    if (res != HOP__READ_OK)
        fail_msg("record at %llu of file %llu: result %d, errno %d",
                 (unsigned long long)f->read_off, (unsigned long long)f->seq, (int)res, errno);
    f->read_off = next;
    f->records_read++;
    return m;
}

static void check_msg(hop__msg *m, size_t len, uint64_t key)
{
    assert_non_null(m);
    assert_int_equal(m->len, len);
    if (!tu_check(m->data, len, key))
        fail_msg("record of %zu bytes, key %llu: payload differs", len, (unsigned long long)key);
    hop__msg_free(m);
}

/* Records bigger and smaller than the 64 KiB read buffer, and records that
 * straddle its edge, all come back byte for byte through a reader whose
 * buffer counts in budget (NULL: none); OUT: *counted, what the budget
 * counted for it while the reader held it. */
static void append_and_read_back(fixture *fx, hop_budget *budget, size_t *counted)
{
    static const size_t lens[] = {
        0,
        1,
        100,
        HOP__READ_BUFFER - 12,
        HOP__READ_BUFFER - 1,
        HOP__READ_BUFFER,
        HOP__READ_BUFFER + 1,
        HOP__READ_BUFFER / 2 - 1,
        HOP__READ_BUFFER / 2,
        3,
        200000,
        0,
        5,
        HOP__READ_BUFFER * 3 + 7,
        17,
    };
    enum { N = sizeof lens / sizeof lens[0] };
    size_t max = 0;
    for (int i = 0; i < N; i++)
        max = lens[i] > max ? lens[i] : max;
    unsigned char *buf = malloc(max);
    assert_non_null(buf);

    hop__qfile *f;
    assert_int_equal(hop__qfile_create(fx->dirfd, 1, &f), HOP_OK);
    uint64_t ends[N];
    for (int i = 0; i < N; i++) {
        tu_fill(buf, lens[i], (uint64_t)i);
        ends[i] = append(f, buf, (uint32_t)lens[i]);
        assert_true(file_size(fx, 1) == ends[i]);
    }
    free(buf);

    size_t before = hop_budget_used(budget);
    hop__qreader r;
    hop__qreader_init(&r, budget);
    for (int i = 0; i < N; i++) {
        hop__msg *m = read_next(&r, fx, f, f->size);
        assert_true(f->read_off == ends[i]);
        check_msg(m, lens[i], (uint64_t)i);
    }
    assert_true(f->read_off == f->size);
    /* nothing after the last record: not a record start */
    hop__msg *m = NULL;
    uint64_t next;
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size + 4, 1000, &m, &next),
                     HOP__READ_UNFRAMED);
    *counted = hop_budget_used(budget) - before;
    hop__qreader_release(&r);
    assert_int_equal(hop_budget_used(budget), before); /* given back */
    hop__qfile_free(f);
    assert_int_equal(hop__qfile_unlink(fx->dirfd, 1), 0);
}

static void test_append_and_read_back(void **state)
{
    size_t counted;
    append_and_read_back(*state, NULL, &counted);
}

/* The buffer counts in the budget: the full one when it has room, else
 * the small one, counted anyway, through which everything reads the same. */
static void test_reader_buffer_counts_in_its_budget(void **state)
{
    hop_budget *b;
    size_t counted;
    assert_int_equal(hop_budget_new(HOP__READ_BUFFER, &b), HOP_OK);
    append_and_read_back(*state, b, &counted);
    assert_int_equal(counted, HOP__READ_BUFFER);
    hop_budget_charge(b, 1); /* no room for the full one now */
    append_and_read_back(*state, b, &counted);
    hop_budget_release(b, 1);
    assert_int_equal(counted, HOP__READ_BUFFER_SMALL);
    hop_budget_free(b);
}

/* Records placed against the edge of the read buffer: a header that ends
 * exactly where the buffered bytes end (the payload starts after them), and
 * a header cut in two by the buffer's end. */
static void test_records_at_buffer_edge(void **state)
{
    fixture *fx = *state;
    const size_t cap = HOP__READ_BUFFER;
    /* the reader's first fill starts at the first record (offset 16) */
    static const size_t layouts[][2] = {
        {cap - 24, cap + 100},    /* header 2 ends at 16 + cap, payload beyond */
        {cap - 24, cap / 2 + 10}, /* the same, payload above half a buffer */
        {cap - 24, cap / 2 - 10}, /* the same, payload below half a buffer */
        {cap - 30, cap + 100},    /* header 2 straddles the end */
        {cap - 30, 10},           {cap - 12, cap * 2 + 1}, /* header 2 starts exactly at the end */
    };
    unsigned char *buf = malloc(3 * cap);
    assert_non_null(buf);
    for (size_t i = 0; i < sizeof layouts / sizeof layouts[0]; i++) {
        hop__qfile *f;
        assert_int_equal(hop__qfile_create(fx->dirfd, 100 + i, &f), HOP_OK);
        for (int k = 0; k < 2; k++) {
            tu_fill(buf, layouts[i][k], i * 10 + (uint64_t)k);
            append(f, buf, (uint32_t)layouts[i][k]);
        }
        tu_fill(buf, 33, i * 10 + 2);
        append(f, buf, 33);
        hop__qreader r;
        hop__qreader_init(&r, NULL);
        for (int k = 0; k < 2; k++)
            check_msg(read_next(&r, fx, f, f->size), layouts[i][k], i * 10 + (uint64_t)k);
        check_msg(read_next(&r, fx, f, f->size), 33, i * 10 + 2);
        hop__qreader_release(&r);
        hop__qfile_free(f);
    }
    free(buf);
}

/* Many small records: read back in order, across many buffer refills, while
 * the file keeps growing (the reader only ever sees the published size). */
static void test_many_small_records_interleaved(void **state)
{
    fixture *fx = *state;
    hop__qfile *f;
    assert_int_equal(hop__qfile_create(fx->dirfd, 2, &f), HOP_OK);
    hop__qreader r;
    hop__qreader_init(&r, NULL);
    tu_rng rng = {5};
    unsigned char buf[300];
    uint64_t written = 0, read = 0;
    size_t lens[20000];
    while (written < 20000) {
        int burst = (int)tu_range(&rng, 1, 200);
        for (int i = 0; i < burst && written < 20000; i++, written++) {
            lens[written] = (size_t)tu_range(&rng, 0, sizeof buf);
            tu_fill(buf, lens[written], written);
            append(f, buf, (uint32_t)lens[written]);
        }
        uint64_t avail = f->size;
        int take = (int)tu_range(&rng, 0, (int)(written - read));
        for (int i = 0; i < take; i++, read++)
            check_msg(read_next(&r, fx, f, avail), lens[read], read);
    }
    while (read < written) {
        check_msg(read_next(&r, fx, f, f->size), lens[read], read);
        read++;
    }
    assert_true(f->read_off == f->size);
    hop__qreader_release(&r);
    hop__qfile_free(f);
}

/* One reader moves from file to file; the buffer of the old one is never
 * taken for the new one. */
static void test_reader_across_files(void **state)
{
    fixture *fx = *state;
    hop__qreader r;
    hop__qreader_init(&r, NULL);
    unsigned char buf[64];
    for (uint64_t seq = 1; seq <= 5; seq++) {
        hop__qfile *f;
        assert_int_equal(hop__qfile_create(fx->dirfd, seq, &f), HOP_OK);
        for (int i = 0; i < 10; i++) {
            tu_fill(buf, sizeof buf, seq * 100 + (uint64_t)i);
            append(f, buf, sizeof buf);
        }
        for (int i = 0; i < 10; i++)
            check_msg(read_next(&r, fx, f, f->size), sizeof buf, seq * 100 + (uint64_t)i);
        hop__qfile_free(f);
        assert_int_equal(hop__qfile_unlink(fx->dirfd, seq), 0);
    }
    hop__qreader_release(&r);
}

/* Write records of the given lengths to file seq; OUT: the record offsets. */
static hop__qfile *write_records(fixture *fx, uint64_t seq, const size_t *lens, int n,
                                 uint64_t *starts)
{
    hop__qfile *f;
    assert_int_equal(hop__qfile_create(fx->dirfd, seq, &f), HOP_OK);
    unsigned char *buf = malloc(200000);
    assert_non_null(buf);
    for (int i = 0; i < n; i++) {
        starts[i] = f->size;
        tu_fill(buf, lens[i], (uint64_t)i);
        append(f, buf, (uint32_t)lens[i]);
    }
    free(buf);
    return f;
}

/* A damaged payload byte: CORRUPT, *next past the record, the records
 * around it intact; for small (buffered) and large (direct) records. */
static void test_corrupt_payload(void **state)
{
    fixture *fx = *state;
    static const size_t lens[] = {10, 50, 20, 100000, 30};
    uint64_t starts[5];
    hop__qfile *f = write_records(fx, 3, lens, 5, starts);
    char path[PATH_MAX];
    file_path(fx, 3, path);
    tu_flip_byte(path, starts[1] + HOP__RECORD_HEADER_SIZE + 49, 0x01);
    tu_flip_byte(path, starts[3] + HOP__RECORD_HEADER_SIZE + 77777, 0x80);

    hop__qreader r;
    hop__qreader_init(&r, NULL);
    check_msg(read_next(&r, fx, f, f->size), lens[0], 0);
    for (int i = 1; i < 5; i++) {
        hop__msg *m = (hop__msg *)(uintptr_t)1;
        uint64_t next = 0;
        hop__read_result res =
            hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1 << 20, &m, &next);
        if (i == 1 || i == 3) {
            assert_int_equal(res, HOP__READ_CORRUPT);
            assert_ptr_equal(m, (hop__msg *)(uintptr_t)1); /* no message handed out */
            assert_true(next == starts[i] + HOP__RECORD_HEADER_SIZE + lens[i]);
            assert_true(f->read_off == starts[i]); /* the caller moves on, not the reader */
            f->read_off = next;
        } else {
            assert_int_equal(res, HOP__READ_OK);
            f->read_off = next;
            check_msg(m, lens[i], (uint64_t)i);
        }
    }
    hop__qreader_release(&r);
    hop__qfile_free(f);
}

/* A damaged payload skips just that record (its length is verified by the
 * header crc); a damaged length fails the header crc, so the reader stops
 * framing there instead of jumping by the damaged length. */
static void test_corrupt_crc_and_length(void **state)
{
    fixture *fx = *state;
    static const size_t lens[] = {40, 40, 40};
    uint64_t starts[3];
    hop__qfile *f = write_records(fx, 4, lens, 3, starts);
    char path[PATH_MAX];
    file_path(fx, 4, path);
    tu_flip_byte(path, starts[0] + HOP__RECORD_HEADER_SIZE + 5, 0x10); /* payload */
    tu_flip_byte(path, starts[1] + 4, 0x01);                           /* length 40 -> 41 */
    hop__qreader r;
    hop__qreader_init(&r, NULL);
    hop__msg *m = NULL;
    uint64_t next;
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1000, &m, &next),
                     HOP__READ_CORRUPT);
    assert_null(m);
    assert_true(next == starts[1]);
    f->read_off = next;
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1000, &m, &next),
                     HOP__READ_UNFRAMED);
    assert_null(m);
    hop__qreader_release(&r);
    hop__qfile_free(f);
}

/* No valid record header at read_off: UNFRAMED, for a bad magic, a length
 * beyond the published bytes, a length above max_len, and a header cut off
 * by the published size. */
static void test_unframed(void **state)
{
    fixture *fx = *state;
    static const size_t lens[] = {30, 30, 30};
    uint64_t starts[3];
    hop__qfile *f = write_records(fx, 5, lens, 3, starts);
    hop__qreader r;
    hop__qreader_init(&r, NULL);
    hop__msg *m = NULL;
    uint64_t next = 4242;

    /* a length above max_len */
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 29, &m, &next),
                     HOP__READ_UNFRAMED);
    /* the record does not fit in what is published */
    assert_int_equal(
        hop__qreader_read(&r, fx->dirfd, f, f->read_off, starts[1] - 1, 1000, &m, &next),
        HOP__READ_UNFRAMED);
    /* not even a header is published */
    f->read_off = starts[2];
    assert_int_equal(
        hop__qreader_read(&r, fx->dirfd, f, f->read_off, starts[2] + 11, 1000, &m, &next),
        HOP__READ_UNFRAMED);
    assert_null(m);
    assert_true(next == 4242);

    /* a bad record magic, seen by a fresh reader */
    hop__qreader_release(&r);
    char path[PATH_MAX];
    file_path(fx, 5, path);
    tu_flip_byte(path, starts[1], 0x20);
    f->read_off = starts[0];
    check_msg(read_next(&r, fx, f, f->size), lens[0], 0);
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1000, &m, &next),
                     HOP__READ_UNFRAMED);
    assert_null(m);
    /* the record after it still reads once the reader is moved past */
    f->read_off = starts[2];
    check_msg(read_next(&r, fx, f, f->size), lens[2], 2);
    hop__qreader_release(&r);
    hop__qfile_free(f);
}

/* I/O trouble while reading: READ_IO with errno, nothing consumed. */
static void test_read_errors(void **state)
{
    fixture *fx = *state;
    static const size_t lens[] = {30, 30};
    uint64_t starts[2];
    hop__qfile *f = write_records(fx, 6, lens, 2, starts);
    hop__qreader r;
    hop__qreader_init(&r, NULL);
    hop__msg *m = NULL;
    uint64_t next;

    /* the file is shorter than published: EIO */
    check_msg(read_next(&r, fx, f, f->size), lens[0], 0);
    hop__qreader_release(&r); /* forget the read-ahead */
    char path[PATH_MAX];
    file_path(fx, 6, path);
    assert_int_equal(truncate(path, (off_t)(starts[1] + 20)), 0);
    errno = 0;
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1000, &m, &next),
                     HOP__READ_IO);
    assert_int_equal(errno, EIO);
    assert_null(m);
    assert_true(f->read_off == starts[1]);
    hop__qreader_release(&r);
    hop__qfile_free(f);

    /* the file is gone before the reader opened it: ENOENT */
    f = write_records(fx, 7, lens, 2, starts);
    assert_int_equal(hop__qfile_unlink(fx->dirfd, 7), 0);
    errno = 0;
    assert_int_equal(hop__qreader_read(&r, fx->dirfd, f, f->read_off, f->size, 1000, &m, &next),
                     HOP__READ_IO);
    assert_int_equal(errno, ENOENT);
    assert_int_equal(f->read_fd, -1);
    hop__qreader_release(&r);
    hop__qfile_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_format),
        cmocka_unit_test(test_name_round_trip_and_order),
        cmocka_unit_test(test_parse_rejects_others),
        cmocka_unit_test_setup_teardown(test_create_writes_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_append_and_read_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_buffer_counts_in_its_budget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_at_buffer_edge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_small_records_interleaved, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_across_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_crc_and_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unframed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
